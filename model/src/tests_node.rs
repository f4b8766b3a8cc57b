//! A server's state predicates and lifecycle (node.rs).

use crate::cluster::Cluster;
use crate::event::{CrashKind, Event};
use crate::ids::{NodeId, Xid};
use crate::log::{Log, Process};
use crate::lsn::Lsn;
use crate::marks::Mark;
use crate::node::{Gucs, ReplSlot, Status};
use crate::settings::{Settings, SynchronousCommit, SynchronousTransfer};
use crate::syncrep::WaitMode;
use crate::testkit::quiesced;

/// SyncRepWaitMode: `remote_write` waits for the standby's write, `on`
/// for its flush, `remote_apply` for its replay; `local` and `off` wait
/// for no standby.
#[test]
fn what_a_commit_waits_for_by_synchronous_commit() {
    let mut g = Gucs::of(&Settings::default());
    let modes: Vec<_> = [
        SynchronousCommit::RemoteWrite,
        SynchronousCommit::On,
        SynchronousCommit::RemoteApply,
        SynchronousCommit::Local,
        SynchronousCommit::Off,
    ]
    .into_iter()
    .map(|c| {
        g.synchronous_commit = c;
        g.wait_mode()
    })
    .collect();
    assert_eq!(modes, [Some(WaitMode::Write), Some(WaitMode::Flush), Some(WaitMode::Apply), None, None]);
}

/// A node's reloadable settings start as the run's.
#[test]
fn gucs_start_as_the_runs_settings() {
    let s = Settings {
        synchronous_standby_names: "FIRST 1 (node2)".into(),
        synchronous_commit: SynchronousCommit::RemoteApply,
        synchronous_transfer: SynchronousTransfer::All,
        ..Settings::default()
    };
    let g = Gucs::of(&s);
    assert_eq!(g.synchronous_standby_names, "FIRST 1 (node2)");
    assert_eq!(
        (g.synchronous_commit, g.synchronous_transfer),
        (SynchronousCommit::RemoteApply, SynchronousTransfer::All)
    );
    assert!(g.names.is_sync());
}

/// KeepLogSeg's slot horizon: the oldest `restart_lsn` among slots that
/// are valid and reserve WAL.
#[test]
fn the_slot_horizon_is_the_oldest_valid_reserving_slot() {
    let mut c = quiesced(0, 0);
    let slot = |name: &str, lsn: u64, invalidated| ReplSlot {
        name: name.into(),
        restart_lsn: Lsn(lsn),
        invalidated,
    };
    let n = &mut c.nodes[0];
    assert_eq!(n.slots_min_restart_lsn(), None);
    n.slots = vec![slot("a", 0x300, false), slot("b", 0x200, false)];
    assert_eq!(n.slots_min_restart_lsn(), Some(Lsn(0x200)));
    n.slots.push(slot("c", 0x100, true));
    assert_eq!(n.slots_min_restart_lsn(), Some(Lsn(0x200)), "an invalidated slot holds nothing");
    n.slots.push(slot("d", 0, false));
    assert_eq!(n.slots_min_restart_lsn(), Some(Lsn(0x200)), "a slot that reserves no WAL holds nothing");
    n.slots = vec![slot("c", 0x100, true), slot("d", 0, false)];
    assert_eq!(n.slots_min_restart_lsn(), None);
}

/// The status predicates on a primary, a consistent hot standby, a
/// standby not yet consistent, a server down and one shutting down.
#[test]
fn status_predicates_of_primaries_standbys_and_stopped_servers() {
    let mut c = quiesced(1, 100);
    let (p, s) = (&c.nodes[0], &c.nodes[1]);
    assert!(p.is_running() && p.is_primary() && !p.in_recovery() && !p.is_standby());
    assert!(p.accepts_connections() && p.is_primary_or_shutting_down());
    assert!(s.is_running() && !s.is_primary() && s.in_recovery() && s.is_standby());
    assert!(s.accepts_connections(), "a consistent hot standby");
    assert!(!s.is_primary_or_shutting_down());
    c.nodes[1].startup.as_mut().unwrap().consistent = false;
    assert!(!c.nodes[1].accepts_connections(), "not consistent yet");
    c.nodes[1].startup.as_mut().unwrap().consistent = true;
    c.nodes[1].startup.as_mut().unwrap().standby = false;
    assert!(!c.nodes[1].accepts_connections(), "crash recovery");
    assert!(!c.nodes[1].is_standby());
    // A standby shutting down is not a primary shutting down.
    c.nodes[1].status = Status::ShuttingDown;
    assert!(!c.nodes[1].is_primary_or_shutting_down());
    c.nodes[0].status = Status::ShuttingDown;
    assert!(c.nodes[0].is_primary_or_shutting_down());
    assert!(c.nodes[0].is_running() && !c.nodes[0].is_primary() && !c.nodes[0].accepts_connections());
    c.nodes[0].status = Status::Down;
    assert!(!c.nodes[0].is_running() && !c.nodes[0].is_primary_or_shutting_down());
}

/// XLogFlush on a primary flushes WAL; on a standby it flushes nothing
/// and raises minRecoveryPoint instead, to the later of the LSN and the
/// replay position, and only when the LSN is beyond it; crash recovery
/// does not raise it.
#[test]
fn xlog_flush_flushes_on_a_primary_and_raises_min_recovery_point_on_a_standby() {
    let mut c = quiesced(1, 100);
    let mut log = Log::new(false);
    let p = &mut c.nodes[0];
    let tli = p.tli;
    let end = p.wal.insert(tli, Xid(0), crate::wal::RecordBody::Commit).end;
    p.wal.write_upto(end);
    assert!(p.wal.flush_lsn() < end);
    p.xlog_flush(end, &mut log, Process::Backend(0));
    assert_eq!(p.wal.flush_lsn(), end);

    let s = &mut c.nodes[1];
    let flush = s.wal.flush_lsn();
    let replayed = s.startup.as_ref().unwrap().replayed;
    s.control.min_recovery_point = Lsn(0x100);
    s.xlog_flush(Lsn(0x80), &mut log, Process::Startup);
    assert_eq!(s.control.min_recovery_point, Lsn(0x100), "already past it");
    s.xlog_flush(Lsn(0x100), &mut log, Process::Startup);
    assert_eq!(s.control.min_recovery_point, Lsn(0x100), "exactly at it: not beyond");
    s.xlog_flush(Lsn(0x101), &mut log, Process::Startup);
    assert_eq!(s.control.min_recovery_point, replayed.max(Lsn(0x101)));
    let beyond = Lsn(replayed.0 + 0x1000);
    s.xlog_flush(beyond, &mut log, Process::Startup);
    assert_eq!(s.control.min_recovery_point, beyond);
    assert_eq!(s.wal.flush_lsn(), flush, "a standby flushes no WAL");
    s.startup.as_mut().unwrap().standby = false;
    s.control.min_recovery_point = Lsn(0x100);
    s.xlog_flush(beyond, &mut log, Process::Startup);
    assert_eq!(s.control.min_recovery_point, Lsn(0x100), "crash recovery");
    assert_eq!(s.wal.flush_lsn(), flush);
}

/// Transaction IDs are handed out in order and leave the ProcArray one
/// by one.
#[test]
fn xids_are_assigned_in_order_and_leave_the_proc_array() {
    let mut c = quiesced(0, 0);
    let n = &mut c.nodes[0];
    let first = n.next_xid;
    let (a, b) = (n.assign_xid(), n.assign_xid());
    assert_eq!((a, b), (first, first.next()));
    assert_eq!(n.next_xid, b.next());
    assert_eq!(n.running, [a, b]);
    n.end_xid(a);
    assert_eq!(n.running, [b]);
}

/// Drives `c` (quiesced) until node `i` is down after a fast shutdown.
fn stop_fast(c: &mut Cluster, i: usize) {
    c.with_node(i, |n, ctx| n.begin_fast_shutdown(ctx));
    let mut evs = Vec::new();
    for j in 0..10_000 {
        if c.nodes[i].status == Status::Down {
            return;
        }
        c.enabled(&mut evs);
        let ev = *evs.first().expect("the shutdown goes on");
        c.apply(ev, j).expect("no violation");
    }
    panic!("the shutdown never finished");
}

fn start(c: &mut Cluster, i: usize) -> Vec<String> {
    c.log = Log::new(true);
    c.apply(Event::Start { node: NodeId(i as u8) }, 0).expect("no violation");
    c.log.drain().map(|l| l.message).collect()
}

/// After a clean shutdown a primary starts without recovery; after a
/// crash it runs crash recovery; with `standby.signal` a cleanly stopped
/// server starts as a standby.
#[test]
fn a_server_starts_by_how_it_stopped_and_its_signal_file() {
    let mut c = quiesced(0, 100);
    stop_fast(&mut c, 0);
    assert!(c.nodes[0].control.state.is_clean_shutdown());
    let ckpt = c.nodes[0].control.checkpoint;
    let lines = start(&mut c, 0);
    assert!(lines.contains(&format!("database system was shut down at checkpoint {ckpt}")), "{lines:?}");
    assert!(lines.contains(&"database system is ready to accept connections".to_string()));
    assert_eq!(c.nodes[0].status, Status::Production);

    let mut c = quiesced(0, 100);
    c.set_quiesce(false);
    c.apply(Event::Crash { node: NodeId(0), kind: CrashKind::Immediate }, 0).expect("no violation");
    let ckpt = c.nodes[0].control.checkpoint;
    let lines = start(&mut c, 0);
    assert!(
        lines.contains(&format!("database system was interrupted; last known up at checkpoint {ckpt}")),
        "{lines:?}"
    );
    assert_eq!(c.nodes[0].status, Status::Recovery, "crash recovery first");
    assert!(!c.nodes[0].is_standby());

    let mut c = quiesced(0, 100);
    stop_fast(&mut c, 0);
    c.nodes[0].standby_signal = true;
    start(&mut c, 0);
    assert_eq!(c.nodes[0].status, Status::Recovery);
    assert!(c.nodes[0].is_standby(), "standby.signal");
}

/// A power loss marks `power_loss_hit_unsynced_write` only when some
/// write was not durable: WAL written but not flushed, or a data or CLOG
/// page in the OS cache only.
#[test]
fn a_power_loss_marks_an_unsynced_write_only_if_there_was_one() {
    let power = Event::Crash { node: NodeId(0), kind: CrashKind::PowerLoss };
    let synced = || {
        let mut c = quiesced(0, 100);
        c.set_quiesce(false);
        let n = &mut c.nodes[0];
        let w = n.wal.write_lsn();
        n.wal.flush_upto(w);
        n.data.fsync();
        n.clog.file.fsync();
        assert!(!c.marks().contains(Mark::PowerLossHitUnsyncedWrite));
        c
    };
    let hit = |mut c: Cluster| {
        let before = c.nodes[0].power_losses;
        c.apply(power, 0).expect("no violation");
        assert_eq!(c.nodes[0].power_losses, before + 1);
        c.marks().contains(Mark::PowerLossHitUnsyncedWrite)
    };
    assert!(!hit(synced()), "everything durable");
    let mut c = synced();
    let n = &mut c.nodes[0];
    let tli = n.tli;
    let end = n.wal.insert(tli, Xid(0), crate::wal::RecordBody::Commit).end;
    n.wal.write_upto(end);
    assert!(hit(c), "WAL written, not flushed");
    let mut c = synced();
    let page = c.nodes[0].data.read(crate::ids::BlockNumber(0)).clone();
    c.nodes[0].data.write(crate::ids::BlockNumber(0), page);
    assert!(hit(c), "a data page in the OS cache");
    let mut c = synced();
    let page = c.nodes[0].clog.file.read(crate::ids::BlockNumber(0)).clone();
    c.nodes[0].clog.file.write(crate::ids::BlockNumber(0), page);
    assert!(hit(c), "a CLOG page in the OS cache");
}
