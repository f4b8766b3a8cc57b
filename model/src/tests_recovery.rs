//! Crash recovery, standby startup and promotion (recovery.rs), driven
//! through the cluster: which recovery a start begins with
//! (InitWalRecovery), where replay starts, and how it ends.

use crate::archive::ArchivedFile;
use crate::cluster::Cluster;
use crate::control::DbState;
use crate::event::{CrashKind, Event};
use crate::heap::Tuple;
use crate::ids::{BlockNumber, NodeId, Tli, Xid};
use crate::log::Log;
use crate::lsn::Lsn;
use crate::node::Status;
use crate::recovery::StartupPhase;
use crate::settings::Settings;
use crate::testkit::{quiesced, quiesced_with, settle};
use crate::timeline::HistoryEntry;
use crate::wal::{CheckPoint, RecordBody};

/// The lines logged since the last call, as `nodeN process LEVEL: message`.
fn lines(c: &mut Cluster) -> Vec<String> {
    c.log
        .drain()
        .map(|l| format!("{} {} {}: {}", l.node.name(), l.process.backend_type(), l.level.name(), l.message))
        .collect()
}

fn has(lines: &[String], line: &str) -> bool {
    lines.iter().any(|l| l == line)
}

fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

/// `kill -9` of node `i` (logging from here on).
fn crash(c: &mut Cluster, i: u8) {
    c.log = Log::new(true);
    c.set_quiesce(false);
    c.apply(Event::Crash { node: NodeId(i), kind: CrashKind::Immediate }, 0).expect("no violation");
}

/// `pg_ctl start` of node `i`; returns the lines it logged.
fn start(c: &mut Cluster, i: u8) -> Vec<String> {
    lines(c);
    c.apply(Event::Start { node: NodeId(i) }, 0).expect("no violation");
    lines(c)
}

/// One startup-process step of node `i`.
fn startup_step(c: &mut Cluster, i: u8) -> Vec<String> {
    assert!(c.nodes[usize::from(i)].startup_ready(), "the startup process can step");
    c.apply(Event::Startup { node: NodeId(i) }, 0).expect("no violation");
    lines(c)
}

/// The end of the checkpoint record pg_control names.
fn checkpoint_end(c: &Cluster, i: usize) -> Lsn {
    let n = &c.nodes[i];
    n.wal.record_at(n.control.checkpoint).expect("checkpoint record").end
}

/// A standby made from a base backup of a cleanly shut down primary:
/// pg_control says "shut down", so with `standby.signal` it enters archive
/// recovery (standby mode) at once, without crash recovery; minRecoveryPoint
/// is initialised to the checkpoint's REDO and is reached at once (replay
/// starts at the end of the checkpoint record).
#[test]
fn a_standby_from_a_base_backup_enters_standby_mode_at_once() {
    let mut s = Settings { operator: Vec::new(), ..Settings::default() };
    s.cluster.standbys = 1;
    let mut c = Cluster::new(s, true);
    let l = lines(&mut c);
    let end = checkpoint_end(&c, 1);
    let n = &c.nodes[1];
    assert_eq!(n.status, Status::Recovery);
    assert_eq!(n.control.state, DbState::InArchiveRecovery);
    assert_eq!(n.control.min_recovery_point, n.control.redo, "initialised to the checkpoint's REDO");
    assert_eq!(n.control.min_recovery_point_tli, Tli(1));
    let st = n.startup.as_ref().expect("startup process");
    assert!(st.standby && st.archive_requested && st.consistent && !st.promote);
    assert_eq!(st.phase, StartupPhase::Redo);
    // initdb's shutdown checkpoint has REDO at itself: replay starts with
    // the record after it.
    assert_eq!(n.wal.get(0).map(|r| r.lsn), Some(n.control.checkpoint));
    assert_eq!(st.next, 1);
    assert_eq!((st.replayed, st.replayed_start), (end, n.control.checkpoint));
    assert!(has(&l, "node2 startup LOG: entering standby mode"), "{l:#?}");
    assert!(has(&l, &format!("node2 startup LOG: consistent recovery state reached at {end}")), "{l:#?}");
    assert!(!l.iter().any(|l| l.contains("automatic recovery in progress")), "{l:#?}");
    // The primary was not in recovery at all.
    assert!(c.nodes[0].startup.is_none());
    assert!(!has(&l, "node1 startup LOG: entering standby mode"));
}

/// A standby that crashed restarts straight into archive recovery: its
/// pg_control has a valid minRecoveryPoint (and says "in archive
/// recovery", not "shut down").
#[test]
fn a_crashed_standby_restarts_in_standby_mode() {
    let mut c = quiesced(1, 300);
    crash(&mut c, 1);
    let n = &c.nodes[1];
    assert!(n.control.min_recovery_point.is_valid());
    assert_eq!(n.control.state, DbState::InArchiveRecovery);
    assert!(!n.control.backup_end_required);
    let l = start(&mut c, 1);
    let n = &c.nodes[1];
    assert_eq!(n.control.state, DbState::InArchiveRecovery);
    let wal_end = n.wal.end();
    assert!(n.startup.as_ref().is_some_and(|s| s.standby && s.archive_requested));
    assert!(has(&l, "node2 startup LOG: entering standby mode"), "{l:#?}");
    assert!(!l.iter().any(|l| l.contains("automatic recovery in progress")), "{l:#?}");
    // The reader reports the end of pg_wal once, when it turns to
    // streaming; a reconnection later does not report it again.
    settle(&mut c);
    assert!(c.nodes[1].is_standby());
    let l = lines(&mut c);
    let eow = format!("node2 startup LOG: invalid record length at {wal_end}: wanted 24, got 0");
    assert_eq!(count(&l, &eow), 1, "{l:#?}");
    c.set_quiesce(false);
    c.apply(Event::Disconnect { node: NodeId(1) }, 0).expect("no violation");
    settle(&mut c);
    let l = lines(&mut c);
    assert!(l.iter().any(|l| l.starts_with("node2 walreceiver LOG: started streaming WAL")), "{l:#?}");
    assert!(!l.iter().any(|l| l.contains("invalid record length")), "{l:#?}");
}

/// A standby reports reaching consistency once: replaying more records
/// after that says nothing more.
#[test]
fn consistency_is_reported_once() {
    let mut c = quiesced(1, 0);
    c.log = Log::new(true);
    c.set_quiesce(false);
    let mut evs = Vec::new();
    let mut replayed = 0;
    for i in 0..400u64 {
        c.enabled(&mut evs);
        let ev = evs[(i as usize * 7) % evs.len()];
        replayed += usize::from(matches!(ev, Event::Startup { node: NodeId(1) }));
        c.apply(ev, i).expect("no violation");
    }
    assert!(replayed > 10, "the standby replayed {replayed} records");
    let l = lines(&mut c);
    assert!(!l.iter().any(|l| l.contains("consistent recovery state reached")), "{l:#?}");
}

/// A crashed primary restarted with `standby.signal` (pg_control: "in
/// production", no minRecoveryPoint) first does crash recovery through all
/// of its local WAL (InArchiveRecovery is false, minRecoveryPoint stays
/// unset), then switches to archive recovery at the end of pg_wal
/// (SwitchIntoArchiveRecovery), where minRecoveryPoint is set and reached.
#[test]
fn a_crashed_primary_restarted_as_standby_does_crash_recovery_first() {
    for newer_history in [false, true] {
        let mut c = quiesced(1, 300);
        crash(&mut c, 0);
        let end = c.nodes[0].wal.end();
        {
            let n = &mut c.nodes[0];
            assert_eq!(n.control.state, DbState::InProduction);
            assert!(!n.control.min_recovery_point.is_valid());
            n.standby_signal = true;
            n.upstream = Some(NodeId(1));
            if newer_history {
                // A history file of a timeline 2 forking after this node's
                // WAL: the target timeline is 2.
                n.history.add_child(Tli(2), Tli(1), Lsn(end.0 + 0x10_0000), "no recovery target specified");
            }
        }
        let l = start(&mut c, 0);
        // Logged only when the target is newer than pg_control's timeline.
        let target_lines: Vec<_> =
            l.iter().filter(|l| l.contains("crash recovery starts in timeline")).collect();
        let expected = ["node1 startup LOG: crash recovery starts in timeline 1 and has target timeline 2"];
        assert_eq!(target_lines, expected[..usize::from(newer_history)], "{l:#?}");
        assert!(has(&l, "node1 startup LOG: entering standby mode"), "{l:#?}");
        assert!(
            has(
                &l,
                "node1 startup LOG: database system was not properly shut down; automatic recovery in progress"
            ),
            "{l:#?}"
        );
        let n = &c.nodes[0];
        assert_eq!(n.walrcv.target_tli, if newer_history { Tli(2) } else { Tli(1) });
        assert_eq!(n.control.state, DbState::InCrashRecovery);
        assert_eq!(n.control.min_recovery_point, Lsn(0), "crash recovery leaves minRecoveryPoint unset");
        let st = n.startup.as_ref().expect("startup process");
        assert!(!st.standby && st.archive_requested && !st.consistent);
        assert!(!n.is_standby());
        // Replay all local WAL, one record per step; "redo starts at" once.
        let first = n.wal.get(st.next).expect("WAL after the checkpoint").lsn;
        let mut all = Vec::new();
        for _ in 0..10_000 {
            if c.nodes[0].is_standby() {
                break;
            }
            all.extend(startup_step(&mut c, 0));
        }
        assert_eq!(count(&all, &format!("node1 startup LOG: redo starts at {first}")), 1, "{all:#?}");
        assert_eq!(all.iter().filter(|l| l.contains("redo starts at")).count(), 1);
        assert!(has(&all, &format!("node1 startup LOG: invalid record length at {end}: wanted 24, got 0")));
        assert!(has(&all, "node1 startup DEBUG: reached end of WAL in pg_wal, entering archive recovery"));
        assert!(has(&all, &format!("node1 startup LOG: consistent recovery state reached at {end}")));
        assert!(!all.iter().any(|l| l.contains("redo done")), "{all:#?}");
        let n = &c.nodes[0];
        assert_eq!(n.control.state, DbState::InArchiveRecovery);
        assert_eq!((n.control.min_recovery_point, n.control.min_recovery_point_tli), (end, Tli(1)));
        let st = n.startup.as_ref().expect("still recovering");
        assert!(st.standby && st.consistent && st.local_wal_ended);
        assert_eq!(st.replayed, end);
        assert_eq!(n.status, Status::Recovery);
    }
}

/// A standby that crashed and was restarted without `standby.signal`:
/// archive recovery is not requested, so it does crash recovery although
/// its pg_control has a minRecoveryPoint, and then opens for writes on its
/// timeline. A `promote` file left behind does nothing outside standby
/// mode (only standby mode looks for it).
#[test]
fn a_crashed_standby_started_without_standby_signal_does_crash_recovery() {
    let mut c = quiesced(1, 300);
    crash(&mut c, 1);
    {
        let n = &mut c.nodes[1];
        assert!(n.control.min_recovery_point.is_valid());
        n.standby_signal = false;
        n.upstream = None;
        n.promote_signal = true;
    }
    let end = c.nodes[1].wal.end();
    let last = c.nodes[1].wal.last_start();
    let l = start(&mut c, 1);
    assert!(!has(&l, "node2 startup LOG: entering standby mode"), "{l:#?}");
    assert!(has(
        &l,
        "node2 startup LOG: database system was not properly shut down; automatic recovery in progress"
    ));
    let n = &c.nodes[1];
    assert_eq!(n.control.state, DbState::InCrashRecovery);
    let st = n.startup.as_ref().expect("startup process");
    assert!(!st.standby && !st.archive_requested && !st.promote);
    settle(&mut c);
    let l = lines(&mut c);
    let n = &c.nodes[1];
    assert_eq!(n.status, Status::Production);
    assert_eq!(n.tli, Tli(1), "not promoted: {l:#?}");
    assert!(!n.history.has(Tli(2)));
    assert!(!l.iter().any(|l| l.contains("selected new timeline ID")), "{l:#?}");
    assert!(has(&l, "node2 postmaster LOG: database system is ready to accept connections"));
    assert!(
        has(&l, &format!("node2 startup LOG: invalid record length at {end}: wanted 24, got 0")),
        "{l:#?}"
    );
    assert!(has(&l, &format!("node2 startup LOG: redo done at {last}")), "{l:#?}");
}

/// A primary that crashed right after its last checkpoint has nothing to
/// replay: "redo is not required", and it opens after the end-of-recovery
/// checkpoint.
#[test]
fn crash_recovery_without_wal_after_the_checkpoint_needs_no_redo() {
    let mut c = quiesced(0, 0);
    crash(&mut c, 0);
    let n = &c.nodes[0];
    assert_eq!(n.wal.records().last().map(|r| r.lsn), Some(n.control.checkpoint));
    let l = start(&mut c, 0);
    assert!(has(
        &l,
        "node1 startup LOG: database system was not properly shut down; automatic recovery in progress"
    ));
    let l = startup_step(&mut c, 0);
    assert_eq!(l, ["node1 startup LOG: redo is not required"]);
    assert_eq!(c.nodes[0].startup.as_ref().map(|s| s.phase), Some(StartupPhase::EndOfRecovery));
    settle(&mut c);
    assert_eq!(c.nodes[0].status, Status::Production);
}

/// Crash recovery of a primary without `standby.signal` does not look at
/// the archive for history files, even with `restore_command` set
/// (restoreTimeLineHistoryFiles runs in archive recovery only).
#[test]
fn crash_recovery_restores_no_history_file() {
    let mut c = quiesced_with(0, 100, |s| s.restore_command = true);
    let entries = vec![HistoryEntry { tli: Tli(1), switchpoint: Lsn(0x10_0000), reason: "x".into() }];
    c.archive.store("00000002.history".into(), ArchivedFile::History(entries));
    crash(&mut c, 0);
    let l = start(&mut c, 0);
    assert!(!l.iter().any(|l| l.contains("restored log file")), "{l:#?}");
    assert!(!c.nodes[0].history.has(Tli(2)));
    assert_eq!(c.nodes[0].walrcv.target_tli, Tli(1));
}

/// An online checkpoint's REDO lies before its record: crash recovery
/// replays from REDO (the records between REDO and the checkpoint record
/// too), not from the record after the checkpoint.
#[test]
fn crash_recovery_replays_from_an_online_checkpoints_redo() {
    let mut c = quiesced(0, 0);
    let (redo, ckpt_lsn) = {
        let n = &mut c.nodes[0];
        let xid = n.assign_xid();
        let tuple = Tuple { key: 1, payload: 7, xmin: xid, xmax: Xid::INVALID, infomask: 0 };
        let redo = n
            .xlog_insert(xid, RecordBody::HeapInsert { block: BlockNumber(0), offnum: 1, tuple, image: None })
            .lsn;
        n.xlog_insert(xid, RecordBody::Commit);
        n.end_xid(xid);
        let ckpt = CheckPoint { redo, tli: Tli(1), prev_tli: Tli(1), next_xid: n.next_xid };
        let ckpt_lsn = n.xlog_insert(Xid::INVALID, RecordBody::CheckpointOnline(ckpt)).lsn;
        n.wal.flush_upto(Lsn(u64::MAX));
        n.control.checkpoint = ckpt_lsn;
        n.control.redo = redo;
        (redo, ckpt_lsn)
    };
    assert!(redo < ckpt_lsn);
    crash(&mut c, 0);
    start(&mut c, 0);
    let l = startup_step(&mut c, 0);
    assert_eq!(l, [format!("node1 startup LOG: redo starts at {redo}")]);
    settle(&mut c);
    let n = &c.nodes[0];
    assert_eq!(n.status, Status::Production);
    assert_eq!(n.visible_rows(), [(1, 7)], "the insert before the checkpoint record was replayed");
}

/// Crash recovery reads all WAL in pg_wal, also what was written but not
/// yet fsynced (an immediate crash leaves it in the OS cache, and without
/// the data-directory sync it is not made durable first): replay is not
/// held back at the flush position as a standby's is.
#[test]
fn crash_recovery_replays_written_but_unflushed_wal() {
    let mut c = quiesced_with(0, 0, |s| s.rules.sync_data_directory_after_crash = false);
    let end = {
        let n = &mut c.nodes[0];
        let xid = n.assign_xid();
        let tuple = Tuple { key: 5, payload: 9, xmin: xid, xmax: Xid::INVALID, infomask: 0 };
        n.xlog_insert(xid, RecordBody::HeapInsert { block: BlockNumber(0), offnum: 1, tuple, image: None });
        let end = n.xlog_insert(xid, RecordBody::Commit).end;
        n.end_xid(xid);
        n.wal.write_upto(end);
        end
    };
    crash(&mut c, 0);
    let n = &c.nodes[0];
    assert_eq!((n.wal.end(), n.wal.write_lsn()), (end, end));
    assert!(n.wal.flush_lsn() < end, "not fsynced");
    start(&mut c, 0);
    for _ in 0..2 {
        startup_step(&mut c, 0);
    }
    assert_eq!(c.nodes[0].startup.as_ref().map(|s| s.replayed), Some(end));
    startup_step(&mut c, 0);
    assert_eq!(c.nodes[0].startup.as_ref().map(|s| s.phase), Some(StartupPhase::EndOfRecovery));
    // (The end-of-recovery checkpoint would now write the page before its
    // WAL is durable: the WAL-before-data violation this planted bug is
    // about.)
}

/// The startup process takes no step once crash recovery has reached the
/// end of WAL (the end-of-recovery checkpoint runs), nor while its server
/// shuts down.
#[test]
fn the_startup_process_waits_during_the_end_of_recovery_checkpoint_and_shutdown() {
    let mut c = quiesced(0, 100);
    crash(&mut c, 0);
    start(&mut c, 0);
    for _ in 0..10_000 {
        if c.nodes[0].startup.as_ref().is_none_or(|s| s.phase != StartupPhase::Redo) {
            break;
        }
        startup_step(&mut c, 0);
    }
    let n = &c.nodes[0];
    assert_eq!(n.startup.as_ref().map(|s| s.phase), Some(StartupPhase::EndOfRecovery));
    assert!(n.xlog_insert_allowed(), "the end-of-recovery checkpoint may insert WAL");
    assert!(!n.startup_ready());
    // A standby in fast shutdown: the startup process is still there, with
    // WAL to replay, but does not replay it.
    let mut c = quiesced(1, 100);
    let n = &mut c.nodes[1];
    assert!(n.is_standby());
    n.startup.as_mut().unwrap().next -= 1;
    assert!(n.startup_ready(), "a record to replay");
    assert!(!n.xlog_insert_allowed());
    n.status = Status::ShuttingDown;
    assert!(!n.startup_ready());
}

/// The old primary (node1) stops, node2 is promoted, node3 follows it.
/// Returns the cluster, quiesced, and the lines logged.
fn failover(f: impl FnOnce(&mut Settings)) -> (Cluster, Vec<String>) {
    failover_at(f, false)
}

/// [`failover`]; with `at_segment_end`, node1's last record is a WAL
/// switch, so timeline 2 forks exactly at a segment start.
fn failover_at(f: impl FnOnce(&mut Settings), at_segment_end: bool) -> (Cluster, Vec<String>) {
    use crate::script::{Action, Step};
    let mut c = quiesced_with(2, 200, f);
    if at_segment_end {
        let n = &mut c.nodes[0];
        n.xlog_insert(Xid::INVALID, RecordBody::Switch);
        n.wal.flush_upto(Lsn(u64::MAX));
        settle(&mut c);
    }
    std::sync::Arc::make_mut(&mut c.settings).operator =
        vec![Step::new(Action::StopImmediate, "node1"), Step::new(Action::Promote, "node2")];
    c.log = Log::new(true);
    settle(&mut c);
    let l = lines(&mut c);
    (c, l)
}

/// Promotion (StartupXLOG after redo): replay ends at the end of local
/// WAL, the new timeline is the newest known + 1, its history file ends
/// timeline 1 at the end of the last record replayed, an end-of-recovery
/// record of timeline 2 starts there, and the server opens for writes,
/// out of recovery. A standby of the new primary fetches the history file
/// and switches timeline where the end-of-recovery record is.
#[test]
fn promotion_starts_a_timeline_that_a_standby_follows() {
    let (c, l) = failover(|_| {});
    let n = &c.nodes[1];
    let eor =
        n.wal.records().iter().find(|r| matches!(r.body, RecordBody::EndOfRecovery { .. })).expect("EOR");
    let switchpoint = eor.lsn;
    assert_eq!(eor.body, RecordBody::EndOfRecovery { tli: Tli(2), prev_tli: Tli(1) });
    assert_eq!(eor.tli, Tli(2));
    let last_replayed = n.wal.records().iter().rev().find(|r| r.end <= switchpoint).expect("replayed").lsn;
    for line in [
        format!("node2 startup LOG: invalid record length at {switchpoint}: wanted 24, got 0"),
        format!("node2 startup LOG: redo done at {last_replayed}"),
        "node2 startup LOG: selected new timeline ID: 2".to_string(),
        "node2 startup LOG: archive recovery complete".to_string(),
        "node2 postmaster LOG: database system is ready to accept connections".to_string(),
        "node3 walreceiver LOG: fetching timeline history file for timeline 2".to_string(),
        format!("node3 startup DEBUG: switched to timeline 2 at {switchpoint}"),
    ] {
        assert!(has(&l, &line), "{line} in {l:#?}");
    }
    assert_eq!((n.status, n.tli, n.control.state), (Status::Production, Tli(2), DbState::InProduction));
    assert!(n.startup.is_none() && !n.standby_signal && !n.promote_signal && n.upstream.is_none());
    assert_eq!(n.control.min_recovery_point, Lsn(0));
    assert_eq!(n.history.render(Tli(2)), format!("1\t{switchpoint}\tno recovery target specified\n"));
    assert!(n.archive_status.history_ready.is_empty() && c.archive.is_empty(), "archive_mode is off");
    let s = &c.nodes[2];
    assert_eq!((s.tli, s.walrcv.target_tli), (Tli(2), Tli(2)));
    assert_eq!(s.history.render(Tli(2)), n.history.render(Tli(2)));
    assert!(s.startup.as_ref().is_some_and(|st| st.replayed > switchpoint));
}

/// With `archive_mode = on` the new timeline's history file is marked
/// `.ready` at promotion (writeTimeLineHistory's XLogArchiveNotify) and
/// so archived.
#[test]
fn a_promoted_server_archives_its_history_file() {
    let (c, _) = failover(|s| s.archive_mode = crate::settings::ArchiveMode::On);
    assert!(c.archive.history(Tli(2)).is_some(), "{:?}", c.archive.names().collect::<Vec<_>>());
    assert_eq!(c.archive.history(Tli(2)), Some(c.nodes[1].history.entries(Tli(2))));
}

/// A standby replaying its primary's shutdown checkpoint (a fast stop)
/// stays on its timeline: a shutdown checkpoint switches timeline only
/// when it names another one.
#[test]
fn a_shutdown_checkpoint_of_the_same_timeline_switches_nothing() {
    use crate::script::{Action, Step};
    let mut c = quiesced(1, 200);
    std::sync::Arc::make_mut(&mut c.settings).operator = vec![Step::new(Action::StopFast, "node1")];
    c.log = Log::new(true);
    settle(&mut c);
    let l = lines(&mut c);
    let n = &c.nodes[1];
    let last = n.wal.records().last().expect("WAL");
    assert!(matches!(last.body, RecordBody::CheckpointShutdown(_)), "{:?}", last.body);
    assert_eq!(n.startup.as_ref().map(|s| s.replayed), Some(last.end), "replayed");
    assert_eq!(n.tli, Tli(1));
    assert!(!l.iter().any(|l| l.contains("switched to timeline")), "{l:#?}");
}

/// checkTimeLineSwitch on a standby about to replay the end-of-recovery
/// record of timeline 2 (rewound to just before it): PostgreSQL's PANICs
/// when the switch does not follow the replay timeline, is not in the
/// recovery target's history, or comes before minRecoveryPoint while
/// minRecoveryPoint lies on an older timeline. Returns the failure.
fn switch_with(check: bool, f: impl FnOnce(&mut crate::node::Node, Lsn)) -> Option<String> {
    let (mut c, _) = failover(|s| s.rules.redo_checks_checkpoint_timeline = check);
    let n = &mut c.nodes[2];
    let k =
        n.wal.records().iter().position(|r| matches!(r.body, RecordBody::EndOfRecovery { .. })).expect("EOR");
    let (prev, eor) = (n.wal.records()[k - 1].clone(), n.wal.records()[k].clone());
    let st = n.startup.as_mut().expect("standby");
    st.next = n.wal.first_index() + k;
    (st.replayed, st.replayed_start) = (prev.end, prev.lsn);
    n.tli = Tli(1);
    n.control.min_recovery_point = prev.end;
    n.control.min_recovery_point_tli = Tli(1);
    f(n, eor.lsn);
    c.with_node(2, |n, ctx| n.startup_step(ctx));
    let n = &c.nodes[2];
    assert_eq!(n.failed.is_none(), n.tli == Tli(2), "switched unless failed");
    n.failed.clone()
}

#[test]
fn a_timeline_switch_is_checked_against_history_and_min_recovery_point() {
    assert_eq!(switch_with(true, |_, _| {}), None);
    assert_eq!(
        switch_with(true, |n, _| n.tli = Tli(3)),
        Some("unexpected previous timeline ID 1 (current timeline ID 3) in checkpoint record".into())
    );
    assert_eq!(
        switch_with(true, |n, _| n.walrcv.target_tli = Tli(1)),
        Some("unexpected timeline ID 2 (after 1) in checkpoint record".into())
    );
    // minRecoveryPoint exactly at the switch: reached, fine.
    assert_eq!(switch_with(true, |n, eor| n.control.min_recovery_point = eor), None);
    let beyond = |n: &mut crate::node::Node, eor: Lsn| n.control.min_recovery_point = Lsn(eor.0 + 0x100);
    let msg = |eor: Lsn| {
        format!(
            "unexpected timeline ID 2 in checkpoint record, before reaching minimum recovery point {} on timeline 1",
            Lsn(eor.0 + 0x100)
        )
    };
    let mut at = Lsn(0);
    let why = switch_with(true, |n, eor| {
        at = eor;
        beyond(n, eor)
    });
    assert_eq!(why, Some(msg(at)));
    // ... unless minRecoveryPoint is on the new timeline itself.
    assert_eq!(
        switch_with(true, |n, eor| {
            beyond(n, eor);
            n.control.min_recovery_point_tli = Tli(2);
        }),
        None
    );
    // Without the checks (the planted bug) nothing is refused.
    assert_eq!(switch_with(false, |n, _| n.walrcv.target_tli = Tli(1)), None);
    assert_eq!(switch_with(false, beyond), None);
}

/// After the failover, the old primary (node1) is restarted as a standby
/// of the new one (node2). `ahead`: its WAL goes on past the switch point
/// into the next segment (it wrote WAL node2 never received).
fn old_primary_rejoins(ahead: bool) -> (Cluster, Vec<String>, Lsn) {
    old_primary_rejoins_at(ahead, false)
}

fn old_primary_rejoins_at(ahead: bool, at_segment_end: bool) -> (Cluster, Vec<String>, Lsn) {
    let (mut c, _) = failover_at(|_| {}, at_segment_end);
    let sp = c.nodes[1].history.switch_point(Tli(2), Tli(1)).expect("timeline 2 forked from 1");
    let n = &mut c.nodes[0];
    assert_eq!(n.status, Status::Down);
    assert_eq!(n.wal.end(), sp, "node2 had received all of node1's WAL");
    if ahead {
        n.wal.insert(Tli(1), Xid(0), RecordBody::Switch);
        let end = n.wal.end();
        n.wal.flush_upto(end);
    }
    n.standby_signal = true;
    n.upstream = Some(NodeId(1));
    n.operator_stopped = false;
    settle(&mut c);
    let l = lines(&mut c);
    (c, l, sp)
}

/// An old primary whose WAL ends at the switch point streams the rest of
/// timeline 1 (nothing), then follows timeline 2.
#[test]
fn an_old_primary_not_ahead_follows_the_new_timeline() {
    let (c, l, _) = old_primary_rejoins(false);
    let n = &c.nodes[0];
    assert!(c.refusals.is_empty(), "{:?}", c.refusals);
    assert_eq!((n.tli, n.walrcv.target_tli), (Tli(2), Tli(2)));
    assert!(has(&l, "node1 walreceiver LOG: fetching timeline history file for timeline 2"), "{l:#?}");
    assert!(has(&l, "node1 startup LOG: new target timeline is 2"), "{l:#?}");
    let started: Vec<_> = l.iter().filter(|l| l.contains("started streaming WAL")).collect();
    let start1 = n.wal.geometry().segment_start(n.history.switch_point(Tli(2), Tli(1)).unwrap());
    assert_eq!(
        started,
        [
            &format!("node1 walreceiver LOG: started streaming WAL from primary at {start1} on timeline 1"),
            &format!("node1 walreceiver LOG: started streaming WAL from primary at {start1} on timeline 2"),
        ],
        "{l:#?}"
    );
}

/// The walsender refuses a start point only past the switch point
/// (`switchpoint < startpoint`): an old primary whose WAL ends exactly at
/// the fork, a segment start, streams timeline 1 from there.
#[test]
fn an_old_primary_ending_exactly_at_the_fork_is_not_refused() {
    let (c, l, sp) = old_primary_rejoins_at(false, true);
    let n = &c.nodes[0];
    assert_eq!(n.wal.geometry().segment_start(sp), sp, "the fork is at a segment start");
    assert!(c.refusals.is_empty(), "{:?}", c.refusals);
    assert_eq!((n.tli, n.walrcv.target_tli), (Tli(2), Tli(2)));
    let started = format!("node1 walreceiver LOG: started streaming WAL from primary at {sp} on timeline 1");
    assert!(has(&l, &started), "{l:#?}");
}

/// An old primary ahead of the switch point asks to stream timeline 1 from
/// a point past where timeline 2 forked: the walsender refuses
/// (StartReplication: "requested starting point %X/%X on timeline %u is
/// not in this server's history", DETAIL "This server's history forked
/// from timeline %u at %X/%X."), and the startup process will not adopt
/// timeline 2 (rescanLatestTimeLine: "new timeline %u forked off current
/// database system timeline %u before current recovery point %X/%X").
#[test]
fn an_old_primary_ahead_of_the_switch_point_is_refused() {
    let (c, l, sp) = old_primary_rejoins(true);
    let n = &c.nodes[0];
    let end = n.wal.end();
    let start = n.wal.geometry().segment_start(end);
    assert!(start > sp);
    let msg = format!("requested starting point {start} on timeline 1 is not in this server's history");
    let detail = format!("This server's history forked from timeline 1 at {sp}.");
    assert!(has(&l, &format!("node2 walsender ERROR: {msg}")), "{l:#?}");
    assert!(has(&l, &format!("node2 walsender DETAIL: {detail}")), "{l:#?}");
    let fork = format!(
        "new timeline 2 forked off current database system timeline 1 before current recovery point {end}"
    );
    assert!(has(&l, &format!("node1 startup LOG: {fork}")), "{l:#?}");
    let refusals: Vec<_> = c.refusals.iter().map(|r| (r.node.as_str(), r.kind, r.message.clone())).collect();
    use crate::event::RefusalKind as K;
    assert_eq!(
        refusals,
        [
            ("node1", K::NotInHistory, format!("ERROR: {msg} DETAIL: {detail}")),
            ("node1", K::ForkedBeforeRecoveryPoint, fork),
        ]
    );
    assert_eq!((n.tli, n.walrcv.target_tli), (Tli(1), Tli(1)));
    assert!(!c.conns.iter().any(|x| x.downstream == NodeId(0)));
    assert_eq!(count(&l, "node1 walreceiver LOG: fetching timeline history file for timeline 2"), 1);
    // Another attempt: the history file is there already, not fetched again.
    let mut c = c;
    c.connect(NodeId(0));
    let l = lines(&mut c);
    assert!(!l.iter().any(|l| l.contains("fetching timeline history file")), "{l:#?}");
    assert!(has(&l, &format!("node2 walsender ERROR: {msg}")), "{l:#?}");
}

/// What a WAL stream implies for the table (the oracle of
/// `recovery_is_exact`): a row is there when its inserting transaction
/// has a commit record and no transaction with a commit record deleted
/// it (updated it away), also when the commit lies in a removed segment.
#[test]
fn rows_implied_by_wal_count_committed_changes_only() {
    use crate::lsn::WalGeometry;
    use crate::recovery::rows_implied_by_wal;
    use crate::wal::Wal;
    let mut w = Wal::new(WalGeometry::new(1 << 14));
    let t = |key: u32, payload: u64, xmin: u32| Tuple {
        key,
        payload,
        xmin: Xid(xmin),
        xmax: Xid::INVALID,
        infomask: 0,
    };
    let b = BlockNumber(1);
    let ins = |w: &mut Wal, tuple: Tuple, offnum| {
        w.insert(Tli(1), tuple.xmin, RecordBody::HeapInsert { block: b, offnum, tuple, image: None });
    };
    let upd = |w: &mut Wal, tuple: Tuple, old_offnum, new_offnum| {
        let body = RecordBody::HeapUpdate { block: b, old_offnum, new_offnum, tuple, image: None };
        w.insert(Tli(1), tuple.xmin, body);
    };
    ins(&mut w, t(1, 10, 3), 1);
    w.insert(Tli(1), Xid(3), RecordBody::Commit);
    // Everything so far goes with its segment.
    w.insert(Tli(1), Xid(0), RecordBody::Switch);
    ins(&mut w, t(2, 20, 4), 2);
    w.insert(Tli(1), Xid(4), RecordBody::Abort);
    ins(&mut w, t(3, 30, 5), 3);
    upd(&mut w, t(1, 11, 6), 1, 4);
    w.insert(Tli(1), Xid(6), RecordBody::Commit);
    upd(&mut w, t(1, 12, 7), 4, 5);
    w.flush_upto(w.end());
    let seg2 = Lsn(1 << 14);
    assert_eq!(w.remove_before(seg2), Some((0, 0)));
    assert!(w.removed_base().is_committed(Xid(3)));
    // (1,10) was updated by the committed 6; (2,20) aborted; (3,30) never
    // committed; (1,12) by 7, not committed, so (1,11) stays.
    assert_eq!(rows_implied_by_wal(&w, 4), [(1, 11)]);
    w.insert(Tli(1), Xid(7), RecordBody::Commit);
    w.insert(Tli(1), Xid(5), RecordBody::Commit);
    assert_eq!(rows_implied_by_wal(&w, 4), [(1, 12), (3, 30)]);
}

/// Crash recovery replays an update at the offsets its record names:
/// xmax on the old version (offset 2), the new version at the next free
/// offset; the table then holds what the WAL commits
/// (`recovery_is_exact` is checked when it ends).
#[test]
fn crash_recovery_replays_updates_at_their_offsets() {
    let mut c = quiesced(0, 0);
    {
        let n = &mut c.nodes[0];
        let t = |key: u32, payload: u64, xid: Xid| Tuple {
            key,
            payload,
            xmin: xid,
            xmax: Xid::INVALID,
            infomask: 0,
        };
        let b = BlockNumber(0);
        let x = n.assign_xid();
        n.xlog_insert(x, RecordBody::HeapInsert { block: b, offnum: 1, tuple: t(1, 10, x), image: None });
        n.xlog_insert(x, RecordBody::HeapInsert { block: b, offnum: 2, tuple: t(2, 20, x), image: None });
        n.xlog_insert(x, RecordBody::Commit);
        n.end_xid(x);
        let y = n.assign_xid();
        let body = RecordBody::HeapUpdate {
            block: b,
            old_offnum: 2,
            new_offnum: 3,
            tuple: t(2, 21, y),
            image: None,
        };
        n.xlog_insert(y, body);
        n.xlog_insert(y, RecordBody::Commit);
        n.end_xid(y);
        n.wal.flush_upto(Lsn(u64::MAX));
    }
    crash(&mut c, 0);
    start(&mut c, 0);
    settle(&mut c);
    let n = &c.nodes[0];
    assert_eq!(n.status, Status::Production);
    assert!(n.failed.is_none(), "{:?}", n.failed);
    assert_eq!(n.visible_rows(), [(1, 10), (2, 21)]);
    let page = n.current_page(BlockNumber(0));
    let xmaxes: Vec<_> = page.tuples.iter().map(|t| t.xmax).collect();
    assert_eq!(xmaxes, [Xid::INVALID, Xid(4), Xid::INVALID]);
}
