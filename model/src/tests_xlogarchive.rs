//! Unit tests of `xlogarchive.rs`: where archiving runs, which file is
//! `.ready` next, segment file names, and recovery reading the archive
//! (`restore_command`).

use crate::archive::{Archive, ArchivedFile, ReadyFile};
use crate::cluster::Cluster;
use crate::ids::{NodeId, Tli, Xid};
use crate::lsn::Lsn;
use crate::node::Status;
use crate::settings::{ArchiveMode, Settings};
use crate::tests_pgarch::{archiving, complete_a_segment};
use crate::wal::RecordBody;
use std::sync::Arc;

fn mode(m: ArchiveMode) -> Settings {
    Settings { archive_mode: m, archive_command: true, ..Settings::default() }
}

/// XLogArchivingActive: `on` archives on a primary (also while it shuts
/// down), not on a standby; `always` on any running server; `off`
/// nowhere, and nothing at all on a server that is down.
#[test]
fn archiving_runs_on_a_primary_or_everywhere_with_always() {
    let mut c = crate::testkit::quiesced(1, 100);
    let active = |c: &Cluster, m| {
        let s = mode(m);
        (c.nodes[0].archiving_active(&s), c.nodes[1].archiving_active(&s))
    };
    assert_eq!(active(&c, ArchiveMode::Off), (false, false));
    assert_eq!(active(&c, ArchiveMode::On), (true, false));
    assert_eq!(active(&c, ArchiveMode::Always), (true, true));
    c.nodes[0].status = Status::ShuttingDown;
    assert_eq!(active(&c, ArchiveMode::On), (true, false));
    c.nodes[0].status = Status::Down;
    c.nodes[1].status = Status::ShuttingDown;
    assert_eq!(active(&c, ArchiveMode::Always), (false, true));
}

/// The next `.ready` file: none without an `archive_command` or where
/// archiving does not run; else a history file first, then the oldest
/// segment not archived if it is complete (flushed past its end).
#[test]
fn the_next_ready_file_is_a_history_file_then_a_complete_segment() {
    let mut c = archiving(200);
    let s = c.settings().clone();
    assert_eq!(c.nodes[0].next_ready(&s), None, "all archived");
    let seg = complete_a_segment(&mut c);
    assert_eq!(c.nodes[0].next_ready(&s), Some(ReadyFile::Segment(seg)));
    let no_command = Settings { archive_command: false, ..s.clone() };
    assert_eq!(c.nodes[0].next_ready(&no_command), None);
    assert_eq!(c.nodes[0].next_ready(&mode(ArchiveMode::Off)), None);
    assert_eq!(c.nodes[1].next_ready(&s), None, "a standby with archive_mode = on");
    c.nodes[0].archive_status.history_ready = vec![Tli(2), Tli(3)];
    assert_eq!(c.nodes[0].next_ready(&s), Some(ReadyFile::History(Tli(2))));
    c.nodes[0].archive_status.history_ready.clear();
    // The segment the flush position is in is not complete.
    c.nodes[0].archive_status.next_seg = seg + 1;
    assert_eq!(c.nodes[0].next_ready(&s), None);
}

/// A segment file holds the records that start in it and is named after
/// the timeline of the last of them (the node's timeline when none
/// does).
#[test]
fn segment_files_hold_their_records_and_the_last_ones_timeline() {
    let c = archiving(300);
    let n = &c.nodes[0];
    let g = *n.wal.geometry();
    let last = g.segno(n.wal.flush_lsn());
    let first = g.segno(n.wal.kept_from());
    for seg in first..last {
        let (name, recs) = n.segment_file_name(seg);
        assert_eq!(name, g.wal_file_name(Tli(1), Lsn(seg * g.segment_size())));
        let (start, end) = (seg * g.segment_size(), (seg + 1) * g.segment_size());
        let want: Vec<_> =
            n.wal.records().iter().filter(|r| (start..end).contains(&r.lsn.0)).cloned().collect();
        assert!(!want.is_empty());
        assert_eq!(recs, want, "segment {seg}");
    }
    // A promoted node's copy of the segment holding the switch point is
    // a file of its new timeline.
    let mut n = c.nodes[0].clone();
    let seg = g.segno(n.wal.insert_lsn());
    n.wal.insert(Tli(2), Xid(0), RecordBody::Abort);
    assert_eq!(n.segment_file_name(seg).0, g.wal_file_name(Tli(2), Lsn(seg * g.segment_size())));
    n.tli = Tli(3);
    assert_eq!(
        n.segment_file_name(seg + 5),
        (g.wal_file_name(Tli(3), Lsn((seg + 5) * g.segment_size())), Vec::new()),
        "no record in it"
    );
}

/// A standby that has replayed all its WAL and does not stream, with the
/// primary's next segments archived: the archived segment holding its end
/// of WAL continues it.
/// Also returns the standby's replication connection, removed.
fn standby_behind_the_archive() -> (Cluster, Vec<crate::network::Conn>) {
    let mut c = archiving(300);
    let conns = c.conns.iter().filter(|x| x.downstream == NodeId(1)).cloned().collect();
    c.conns.retain(|x| x.downstream != NodeId(1));
    assert_eq!(c.nodes[1].wal.end(), c.nodes[0].wal.end(), "caught up");
    for _ in 0..3 {
        let tli = c.nodes[0].tli;
        c.nodes[0].wal.insert(tli, Xid(0), RecordBody::Abort);
    }
    complete_a_segment(&mut c);
    c.archiver_step(NodeId(0));
    assert_eq!(c.nodes[0].next_ready(c.settings()), None);
    (c, conns)
}

/// RestoreArchivedFile: the file is the archived segment holding the
/// standby's end of WAL, from the record starting there; restoring it
/// appends those records to pg_wal, flushed.
#[test]
fn a_standby_restores_the_segment_that_continues_its_wal() {
    let (mut c, _) = standby_behind_the_archive();
    let d = &c.nodes[1];
    let (end, last) = (d.wal.end(), d.wal.last_start());
    let g = *d.wal.geometry();
    let name = g.wal_file_name(Tli(1), end);
    let file = c.archive.segment(&name).expect("archived").to_vec();
    let k = file.iter().position(|r| r.lsn == end).expect("a record starts at the end of WAL");
    assert_eq!(file[k].prev, last);
    assert_eq!(c.restorable(d), Some((name.clone(), k)));
    c.log = crate::log::Log::new(true);
    c.restore_wal(NodeId(1));
    let lines: Vec<_> = c.log.drain().map(|l| l.message).collect();
    assert_eq!(lines, [format!("restored log file \"{name}\" from archive")]);
    let d = &c.nodes[1];
    assert_eq!(d.wal.end(), file.last().unwrap().end);
    assert_eq!(d.wal.flush_lsn(), d.wal.end());
    assert_eq!(d.wal.records_from(end), &file[k..]);
    assert_eq!(c.restorable(&c.nodes[1]), None, "WAL not replayed yet");
}

/// When recovery does not read the archive: no `restore_command`, an
/// empty archive, a server not a standby in recovery or being promoted,
/// WAL left to replay, a walreceiver streaming, no such file, or a file
/// whose record at the end of WAL does not link back to the last one.
#[test]
fn the_archive_is_read_only_by_an_idle_standby_with_restore_command() {
    let (base, conns) = standby_behind_the_archive();
    assert_eq!(conns.len(), 1);
    assert!(base.restorable(&base.nodes[1]).is_some());
    let none = |f: &dyn Fn(&mut Cluster)| {
        let mut c = base.clone();
        f(&mut c);
        c.restorable(&c.nodes[1])
    };
    assert_eq!(none(&|c| Arc::make_mut(&mut c.settings).restore_command = false), None);
    assert_eq!(none(&|c| c.archive = Archive::default()), None);
    assert_eq!(none(&|c| c.nodes[1].status = Status::ShuttingDown), None);
    assert_eq!(none(&|c| c.nodes[1].startup.as_mut().unwrap().standby = false), None);
    assert_eq!(none(&|c| c.nodes[1].startup.as_mut().unwrap().promote = true), None);
    assert_eq!(none(&|c| c.nodes[1].startup.as_mut().unwrap().read_error = Some("x".into())), None);
    assert_eq!(none(&|c| c.nodes[1].startup.as_mut().unwrap().next -= 1), None);
    assert_eq!(none(&|c| c.conns.extend(conns.iter().cloned())), None);
    let name = base.restorable(&base.nodes[1]).unwrap().0;
    let edit = |f: &dyn Fn(&mut Vec<crate::wal::Record>)| {
        let mut c = base.clone();
        let mut recs = c.archive.segment(&name).unwrap().to_vec();
        f(&mut recs);
        c.archive.store(name.clone(), ArchivedFile::Segment(recs.into()));
        c
    };
    let end = base.nodes[1].wal.end();
    let c = edit(&|r| r.retain(|r| r.lsn != end));
    assert_eq!(c.restorable(&c.nodes[1]), None, "no record starts at the end of WAL");
    let c = edit(&|r| r.iter_mut().filter(|r| r.lsn == end).for_each(|r| r.prev = Lsn(8)));
    assert_eq!(c.restorable(&c.nodes[1]), None, "its prev-link names another record");
    let c = edit(&|r| r.iter_mut().filter(|r| r.lsn > end).for_each(|r| r.prev = Lsn(8)));
    assert!(c.restorable(&c.nodes[1]).is_some(), "only the first record's link counts");
}

/// `no_silent_divergence`: a file whose record at the standby's last
/// record differs from the standby's own (another history) is not
/// appended, and the violation names both timelines.
#[test]
fn restoring_a_file_of_another_history_is_a_violation() {
    let (mut c, _) = standby_behind_the_archive();
    let name = c.restorable(&c.nodes[1]).unwrap().0;
    let last = c.nodes[1].wal.last_start();
    let mut recs = c.archive.segment(&name).unwrap().to_vec();
    let theirs = recs.iter_mut().find(|r| r.lsn == last).expect("the file holds the last record");
    theirs.tli = Tli(2);
    c.archive.store(name.clone(), ArchivedFile::Segment(recs.into()));
    let end = c.nodes[1].wal.end();
    c.restore_wal(NodeId(1));
    assert_eq!(c.nodes[1].wal.end(), end, "nothing appended");
    let v = &c.fx.violations;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].invariant, crate::violation::Invariant::NoSilentDivergence);
    assert_eq!(v[0].node, Some(NodeId(1)));
    assert!(
        v[0].detail.starts_with(&format!("node2 restores {name} from the archive, whose record at {end}")),
        "{}",
        v[0].detail
    );
    assert!(
        v[0].detail
            .contains(&format!("the file's record at {last} (timeline 2) is not its own (timeline 1)"))
    );
}

/// restoreTimeLineHistoryFiles: history files of timelines newer than
/// the node knows come from the archive into pg_wal, once.
#[test]
fn newer_history_files_are_restored_from_the_archive() {
    let mut c = archiving(100);
    let mut h = crate::timeline::History::default();
    h.add_child(Tli(2), Tli(1), Lsn(0x100), "no recovery target specified");
    h.add_child(Tli(3), Tli(2), Lsn(0x200), "no recovery target specified");
    for t in [Tli(2), Tli(3)] {
        c.archive.store(crate::timeline::History::file_name(t), ArchivedFile::History(h.entries(t).to_vec()));
    }
    let mut off = c.clone();
    Arc::make_mut(&mut off.settings).restore_command = false;
    assert!(!off.restore_history_files(NodeId(1)));
    assert_eq!(off.nodes[1].history.newest(), Tli(1));
    c.log = crate::log::Log::new(true);
    assert!(c.restore_history_files(NodeId(1)));
    let lines: Vec<_> = c.log.drain().map(|l| l.message).collect();
    assert_eq!(
        lines,
        [
            "restored log file \"00000002.history\" from archive",
            "restored log file \"00000003.history\" from archive"
        ]
    );
    assert_eq!(c.nodes[1].history.entries(Tli(3)), h.entries(Tli(3)));
    assert!(!c.restore_history_files(NodeId(1)), "nothing newer now");
    let mut empty = archiving(100);
    empty.archive = Archive::default();
    assert!(!empty.restore_history_files(NodeId(1)));
}
