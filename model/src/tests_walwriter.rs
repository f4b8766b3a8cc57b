//! Unit tests of `walwriter.rs`, `bgwriter.rs` and `control.rs`: the
//! background writers' work and steps, pg_control's state names.

use crate::control::DbState;
use crate::ids::Xid;
use crate::node::Status;
use crate::testkit::{logged, quiesced};
use crate::wal::RecordBody;

/// XLogBackgroundFlush: with WAL inserted and not written, one step
/// writes it all; with WAL written and not flushed, one step fsyncs it;
/// then there is no work. Only a primary (or one shutting down) has a
/// WAL writer.
#[test]
fn the_wal_writer_writes_then_flushes() {
    let mut c = quiesced(1, 200);
    assert!(!c.nodes[0].walwriter_has_work(), "quiesced: all flushed");
    let tli = c.nodes[0].tli;
    let end = c.nodes[0].wal.insert(tli, Xid(0), RecordBody::Abort).end;
    assert!(c.nodes[0].walwriter_has_work());
    let flushed = c.nodes[0].wal.flush_lsn();
    let ((), lines, _) = logged(&mut c, 0, |n, ctx| n.walwriter_step(ctx));
    assert_eq!(lines, [format!("wrote WAL up to {end}")]);
    assert_eq!((c.nodes[0].wal.write_lsn(), c.nodes[0].wal.flush_lsn()), (end, flushed));
    assert!(c.nodes[0].walwriter_has_work(), "written, not flushed");
    let ((), lines, _) = logged(&mut c, 0, |n, ctx| n.walwriter_step(ctx));
    assert_eq!(lines, [format!("flushed WAL up to {end}")]);
    assert_eq!(c.nodes[0].wal.flush_lsn(), end);
    assert!(!c.nodes[0].walwriter_has_work());
    // Shutting down, a primary still has its WAL writer; a standby never.
    c.nodes[0].wal.insert(tli, Xid(0), RecordBody::Abort);
    c.nodes[0].status = Status::ShuttingDown;
    assert!(c.nodes[0].walwriter_has_work());
    let standby_tli = c.nodes[1].tli;
    c.nodes[1].wal.insert(standby_tli, Xid(0), RecordBody::Abort);
    assert!(!c.nodes[1].walwriter_has_work());
}

fn victim(c: &crate::cluster::Cluster) -> Option<usize> {
    c.nodes[0].bgwriter_victim(crate::node::Env { settings: &c.settings, archive: &c.archive })
}

/// BgBufferSync writes the first dirty buffer from frame 0 on, under the
/// WAL rule (the WAL is flushed up to the page's LSN first); a server
/// that is down has no bgwriter.
#[test]
fn the_bgwriter_writes_the_first_dirty_buffer() {
    let mut c = quiesced(0, 200);
    let n = &mut c.nodes[0];
    for f in 0..n.buffers.frames().len() {
        n.buffers.frame_mut(f).dirty = false;
    }
    assert_eq!(victim(&c), None);
    let (used, _, _) = logged(&mut c, 0, |n, ctx| {
        let mut used: Vec<usize> = (0..2)
            .map(|b| n.read_buffer(crate::ids::BlockNumber(b), crate::log::Process::Backend(0), ctx).unwrap())
            .collect();
        used.sort_unstable();
        used
    });
    let tli = c.nodes[0].tli;
    let lsn = c.nodes[0].wal.insert(tli, Xid(0), RecordBody::Abort).end;
    for &f in &used {
        c.nodes[0].buffers.frame_mut(f).dirty = true;
    }
    c.nodes[0].buffers.frame_mut(used[0]).page.lsn = lsn;
    assert_eq!(victim(&c), Some(used[0]));
    let blk = c.nodes[0].buffers.frame(used[0]).tag.unwrap();
    let ((), lines, _) = logged(&mut c, 0, |n, ctx| n.bgwriter_step(ctx));
    let n = &c.nodes[0];
    assert_eq!(lines.last().unwrap(), &format!("wrote block {blk} of relation test (page LSN {lsn})"));
    assert!(n.wal.flush_lsn() >= lsn, "WAL before data");
    assert!(!n.buffers.frame(used[0]).dirty);
    assert_eq!(n.data.read(blk), &n.buffers.frame(used[0]).page);
    assert_eq!(victim(&c), Some(used[1]));
    c.nodes[0].status = Status::Down;
    assert_eq!(victim(&c), None);
    let ((), lines, _) = logged(&mut c, 0, |n, ctx| n.bgwriter_step(ctx));
    assert!(lines.is_empty());
    assert!(c.nodes[0].buffers.frame(used[1]).dirty);
}

/// pg_controldata's "Database cluster state" strings, and which states
/// are a clean shutdown (no recovery needed at the next start).
#[test]
fn database_states_print_as_pg_controldata() {
    let all = [
        (DbState::Startup, "starting up", false),
        (DbState::Shutdowned, "shut down", true),
        (DbState::ShutdownedInRecovery, "shut down in recovery", true),
        (DbState::Shutdowning, "shutting down", false),
        (DbState::InCrashRecovery, "in crash recovery", false),
        (DbState::InArchiveRecovery, "in archive recovery", false),
        (DbState::InProduction, "in production", false),
    ];
    for (state, name, clean) in all {
        assert_eq!((state.name(), state.is_clean_shutdown()), (name, clean));
    }
}
