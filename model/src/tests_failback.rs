//! Failback after the default story's failover (node2 promoted while
//! node1 keeps taking writes, node1 stopped immediately, then rejoined by
//! a strategy), by each strategy, with the messages PostgreSQL and its
//! tools print.

use crate::cluster::Cluster;
use crate::event::RefusalKind;
use crate::ids::NodeId;
use crate::lsn::Lsn;
use crate::marks::Mark;
use crate::node::Status;
use crate::script::{AttemptResult, Failback, default_story};
use crate::settings::{ServerVersion, Settings, SynchronousTransfer};

/// A primary and one standby run the default story in a fixed rotation
/// until the script is done, then quiesce (without asserting that the run
/// ends idle: a refused rejoin leaves the new primary's commits waiting
/// for their synchronous standby).
fn story(f: impl FnOnce(&mut Settings)) -> Cluster {
    let mut s = Settings { operator: default_story(), ..Settings::default() };
    s.cluster.standbys = 1;
    f(&mut s);
    let mut c = Cluster::new(s, false);
    crate::testkit::run_script_rotation(&mut c, |_, _| {});
    let mut evs = Vec::new();
    c.set_quiesce(true);
    for j in 0..100_000 {
        c.enabled(&mut evs);
        let Some(&ev) = evs.first() else { break };
        c.apply(ev, j).expect("no violation while quiescing");
    }
    c
}

fn with(strategy: Failback, f: impl FnOnce(&mut Settings)) -> Cluster {
    story(|s| {
        s.failover.failback = strategy;
        f(s)
    })
}

fn kinds(c: &Cluster) -> Vec<RefusalKind> {
    c.refusals.iter().map(|r| r.kind).collect()
}

/// Naive failback of an old primary that wrote WAL past the fork point:
/// its walreceiver asks for the segment holding its end of WAL on
/// timeline 1, which the new primary's history left at the fork
/// (walsender.c), and its startup process refuses timeline 2, which
/// forked before its recovery point (xlogrecovery.c). The attempt is
/// refused, both refusals stay open, and the run's end is legitimate.
#[test]
fn naive_failback_past_the_fork_is_refused_by_both_checks() {
    let mut c = with(Failback::Naive, |_| {});
    assert_eq!(c.attempts.len(), 1);
    let a = c.attempts[0].clone();
    assert_eq!((a.node.as_str(), a.upstream.as_str(), a.strategy), ("node1", "node2", Failback::Naive));
    let fork = a.fork_point.expect("timeline 1 is an ancestor of node2's timeline 2");
    assert!(a.end_of_wal > fork, "node1 wrote past the fork: {} > {fork}", a.end_of_wal);
    let start = c.nodes[0].wal.geometry().segment_start(a.end_of_wal);
    let want = [
        format!(
            "ERROR: requested starting point {start} on timeline 1 is not in this server's history \
             DETAIL: This server's history forked from timeline 1 at {fork}."
        ),
        format!(
            "new timeline 2 forked off current database system timeline 1 before current recovery point {}",
            a.end_of_wal
        ),
    ];
    assert_eq!(kinds(&c), [RefusalKind::NotInHistory, RefusalKind::ForkedBeforeRecoveryPoint]);
    let messages: Vec<_> = c.refusals.iter().map(|r| r.message.clone()).collect();
    assert_eq!(messages, want);
    assert_eq!(a.result, AttemptResult::Refused);
    assert_eq!(a.messages, want);
    assert!(c.refusals.iter().all(|r| r.node == "node1" && r.at > a.at), "booked after the attempt");
    let open: Vec<_> = c.open_refusals().into_iter().map(|r| r.kind).collect();
    assert_eq!(open, kinds(&c));
    let m = c.marks();
    assert!(m.contains(Mark::Refused(RefusalKind::NotInHistory)));
    assert!(m.contains(Mark::Refused(RefusalKind::ForkedBeforeRecoveryPoint)));
    assert!(!m.contains(Mark::FailbackConverged));
    // node1 kept pages past the fork: the proposal's premise fails there
    // (only observed: stock PostgreSQL promises nothing of the kind).
    // Each observed once, in the order first seen; neither is expected
    // under `synchronous_transfer = commit`.
    use crate::invariants::Invariant;
    let observed: Vec<_> = c.observations.iter().map(|o| o.invariant).collect();
    assert_eq!(observed, [Invariant::StandbyCoversPrimaryData, Invariant::FailbackPremise]);
    assert!(!c.premise_expected(None));
    assert_eq!(c.check_final(), Ok(()));
    assert_eq!(c.attempts[0].result, AttemptResult::Refused, "a refused attempt does not converge");
    assert!(!c.is_idle(), "node2's commits wait for their synchronous standby");
}

/// The 9.4 development server had no "not in this server's history"
/// check: its walsender refuses the start point only because it is ahead
/// of its flush position; the startup check is the same.
#[test]
fn naive_failback_on_94devel_is_refused_as_ahead_of_flush() {
    let c = with(Failback::Naive, |s| s.server_version = ServerVersion::V94Devel);
    let a = &c.attempts[0];
    let start = c.nodes[0].wal.geometry().segment_start(a.end_of_wal);
    assert_eq!(kinds(&c), [RefusalKind::AheadOfFlush, RefusalKind::ForkedBeforeRecoveryPoint]);
    let prefix =
        format!("ERROR: requested starting point {start} is ahead of the WAL flush position of this server ");
    assert!(c.refusals[0].message.starts_with(&prefix), "{}", c.refusals[0].message);
    let flush = Lsn::after(&c.refusals[0].message, &prefix).expect("an LSN");
    assert!(flush < start && flush >= a.fork_point.unwrap(), "node2's flush {flush}");
    assert_eq!(a.result, AttemptResult::Refused);
}

/// When the failover lost nothing (node1's WAL ends at the fork point),
/// naive failback works: node1 streams timeline 2 and converges.
#[test]
fn naive_failback_with_nothing_past_the_fork_converges() {
    let mut c = with(Failback::Naive, |s| s.wal_log_hints = true);
    let a = c.attempts[0].clone();
    assert_eq!(a.fork_point, Some(a.end_of_wal));
    assert_eq!(c.refusals, []);
    assert_eq!(a.result, AttemptResult::Streaming, "streaming before the final check");
    assert!(c.is_idle());
    assert_eq!(c.check_final(), Ok(()));
    assert_eq!(c.attempts[0].result, AttemptResult::Converged);
    assert!(c.marks().contains(Mark::FailbackConverged));
    assert!(c.open_refusals().is_empty());
    let n = &c.nodes[0];
    assert!(n.is_standby() && n.upstream == Some(NodeId(1)) && n.tli == crate::ids::Tli(2));
}

/// pg_rewind's sanityChecks: without checksums or `wal_log_hints` it
/// refuses, after it ran crash recovery on the target (stopped
/// immediately) in single-user mode; the node is not started.
#[test]
fn rewind_without_wal_log_hints_is_refused_after_crash_recovery() {
    let c = with(Failback::Rewind, |_| {});
    let a = &c.attempts[0];
    let msg = "pg_rewind: error: target server needs to use either data checksums or \"wal_log_hints = on\"";
    assert_eq!(
        a.messages,
        ["pg_rewind: executing \"postgres\" for target server to complete crash recovery", msg]
    );
    assert_eq!(a.result, AttemptResult::Refused);
    assert_eq!(kinds(&c), [RefusalKind::RewindNeedsHints]);
    assert_eq!(c.refusals[0].message, msg);
    assert_eq!(c.refusals[0].at, a.at, "refused within the operator's step");
    // Still open: the node's attempt was refused (its walreceiver never ran).
    assert!(c.nodes[0].walrcv.refused.is_none());
    let open: Vec<_> = c.open_refusals().into_iter().map(|r| r.kind).collect();
    assert_eq!(open, [RefusalKind::RewindNeedsHints]);
    let n = &c.nodes[0];
    assert_eq!(n.status, Status::Down);
    assert!(n.control.state.is_clean_shutdown(), "single-user recovery shut it down cleanly");
    assert!(!n.standby_signal && !n.single_user);
}

/// pg_rewind with `wal_log_hints`: it finds where the histories diverge
/// (node2's switch to timeline 2), rewinds from the last common
/// checkpoint, copies, and node1 follows timeline 2 and converges.
#[test]
fn rewind_with_wal_log_hints_rewinds_from_the_last_common_checkpoint() {
    let mut c = with(Failback::Rewind, |s| s.wal_log_hints = true);
    let a = c.attempts[0].clone();
    let fork = a.fork_point.unwrap();
    assert_eq!(a.messages.len(), 5, "{:?}", a.messages);
    assert_eq!(
        a.messages[0],
        "pg_rewind: executing \"postgres\" for target server to complete crash recovery"
    );
    assert_eq!(a.messages[1], format!("pg_rewind: servers diverged at WAL location {fork} on timeline 1"));
    let chkpt = Lsn::after(&a.messages[2], "pg_rewind: rewinding from last common checkpoint at ").unwrap();
    assert!(a.messages[2].ends_with(" on timeline 1"));
    assert!(chkpt < fork, "the last checkpoint before the fork: {chkpt}");
    assert!(a.messages[3].starts_with("pg_rewind: copied "), "{}", a.messages[3]);
    assert!(
        a.messages[3]
            .contains(" changed blocks, pg_xact, pg_wal and pg_control from node2; backup label at ")
    );
    assert_eq!(a.messages[4], "pg_rewind: Done!");
    // The backup label names that checkpoint's REDO: the source checkpointed
    // on its new timeline since (RewindSourceCheckpointed), later.
    let rec = c.nodes[1].wal.record_at(chkpt).expect("the common checkpoint record");
    let redo = rec.body.checkpoint().expect("a checkpoint").redo;
    assert!(a.messages[3].ends_with(&format!("; backup label at {redo}")), "{}", a.messages[3]);
    assert!(c.nodes[1].control.redo > redo);
    assert_eq!(c.check_final(), Ok(()));
    assert_eq!(c.attempts[0].result, AttemptResult::Converged);
    assert!(c.nodes[0].slots.is_empty(), "pg_replslot is not copied");
}

/// PostgreSQL 9.4 had no pg_rewind in core: the attempt fails and the
/// node stays down.
#[test]
fn rewind_on_94devel_is_not_found() {
    let c = with(Failback::Rewind, |s| {
        s.server_version = ServerVersion::V94Devel;
        s.operator[2].slot = Some("fb".into());
    });
    let a = &c.attempts[0];
    assert_eq!(c.nodes[0].primary_slot_name.as_deref(), Some("fb"), "the step's slot, set first");
    assert_eq!(a.messages, ["pg_rewind: command not found (not in PostgreSQL 9.4's core)"]);
    assert_eq!(a.result, AttemptResult::Failed);
    assert_eq!(c.refusals, [], "a tool that fails is no refusal");
    assert_eq!(c.nodes[0].status, Status::Down);
    let open: Vec<_> = c.open_refusals();
    assert!(open.is_empty());
}

/// A fresh base backup of the new primary always rejoins: node1's WAL
/// ends where node2 had flushed, and its rows converge.
#[test]
fn a_base_backup_rejoins_past_the_fork() {
    let mut c = with(Failback::Basebackup, |_| {});
    let a = c.attempts[0].clone();
    assert!(a.end_of_wal > a.fork_point.unwrap(), "node1 wrote past the fork");
    assert_eq!(a.messages.len(), 1);
    let flush = Lsn::after(&a.messages[0], "pg_basebackup: copied node1 from node2 (WAL up to ").unwrap();
    assert!(flush >= a.fork_point.unwrap(), "{flush}");
    assert_eq!(c.refusals, []);
    assert_eq!(c.check_final(), Ok(()));
    assert_eq!(c.attempts[0].result, AttemptResult::Converged);
}

/// The proposal's missing step, with `synchronous_transfer = all`: node1's
/// WAL after the fork point is removed, its data files kept, and it
/// converges (no data page of node1 is past the fork: no premise
/// observation).
#[test]
fn truncating_at_the_fork_converges_under_synchronous_transfer_all() {
    let mut c = with(Failback::Truncate, |s| s.synchronous_transfer = SynchronousTransfer::All);
    let a = c.attempts[0].clone();
    let fork = a.fork_point.unwrap();
    assert!(a.end_of_wal > fork);
    assert_eq!(
        a.messages,
        [format!(
            "truncate: removed WAL from {fork} to {}; data files, pg_xact and pg_control are kept",
            a.end_of_wal
        )]
    );
    assert_eq!(c.observations, []);
    assert_eq!(c.check_final(), Ok(()));
    assert_eq!(c.attempts[0].result, AttemptResult::Converged);
}

/// The failover story with an asynchronous standby, so the old primary
/// keeps committing on timeline 1 for `events` events after the
/// promotion: its checkpoints remove the segments around the fork point.
/// Then pg_rewind (with `wal_log_hints`).
fn rewind_after_long_split(events: u64, f: impl FnOnce(&mut Settings)) -> Cluster {
    use crate::script::{Action, Condition, Step};
    with(Failback::Rewind, |s| {
        s.wal_log_hints = true;
        s.synchronous_standby_names = String::new();
        s.operator = vec![
            Step { after_commits: 40, ..Step::new(Action::Promote, "node2") },
            Step { after_events: events, ..Step::new(Action::StopImmediate, "node1") },
            Step {
                after_events: 20,
                when: Some(Condition::RewindSourceCheckpointed),
                ..Step::new(Action::Failback, "node1")
            },
        ];
        f(s)
    })
}

/// findLastCheckpoint reads the target's WAL backwards from the fork:
/// when the segment holding the fork point is gone from its pg_wal,
/// pg_rewind cannot open it and gives up (pg_fatal): the rejoin is
/// refused until the WAL is back.
#[test]
fn rewind_refuses_when_the_targets_wal_at_the_fork_is_gone() {
    let c = rewind_after_long_split(1500, |_| {});
    let a = &c.attempts[0];
    let fork = a.fork_point.unwrap();
    let file = c.nodes[0].wal.geometry().wal_file_name(crate::ids::Tli(1), fork);
    let missing = format!("pg_rewind: error: could not find previous WAL record at {fork}");
    assert_eq!(
        a.messages,
        [
            "pg_rewind: executing \"postgres\" for target server to complete crash recovery".to_string(),
            format!("pg_rewind: servers diverged at WAL location {fork} on timeline 1"),
            format!(
                "pg_rewind: error: could not open file \"node1/pg_wal/{file}\": No such file or directory"
            ),
            missing.clone(),
        ]
    );
    assert!(c.nodes[0].wal.kept_from() > fork, "the segment was removed");
    assert_eq!(kinds(&c), [RefusalKind::RewindWalMissing]);
    assert_eq!(c.refusals[0].message, missing);
    assert_eq!(a.result, AttemptResult::Refused);
    assert_eq!(c.nodes[0].status, Status::Down);
}

/// `--restore-target-wal` needs the target's `restore_command`.
#[test]
fn rewind_restoring_target_wal_needs_a_restore_command() {
    let c = rewind_after_long_split(1500, |s| s.failover.restore_target_wal = true);
    let a = &c.attempts[0];
    assert_eq!(
        a.messages.last().map(String::as_str),
        Some("pg_rewind: error: restore_command is not set in the target cluster")
    );
    assert_eq!(a.messages.len(), 3);
    assert_eq!(a.result, AttemptResult::Failed);
    assert_eq!(c.refusals, []);
}

/// With `--restore-target-wal` and an archive holding every segment,
/// pg_rewind fetches the target's removed segments, newest first, until
/// one holds a checkpoint before the fork, and rewinds from there.
#[test]
fn rewind_restores_the_targets_removed_wal_from_the_archive() {
    let c = rewind_after_long_split(1500, |s| {
        s.failover.restore_target_wal = true;
        s.archive_mode = crate::settings::ArchiveMode::On;
        s.restore_command = true;
    });
    let a = &c.attempts[0];
    let fork = a.fork_point.unwrap();
    assert!(a.messages.len() >= 5, "{:?}", a.messages);
    assert_eq!(a.messages[1], format!("pg_rewind: servers diverged at WAL location {fork} on timeline 1"));
    let chkpt = Lsn::after(&a.messages[2], "pg_rewind: rewinding from last common checkpoint at ").unwrap();
    assert!(chkpt < fork);
    assert!(a.messages[3].starts_with("pg_rewind: copied "));
    assert_eq!(a.messages[4], "pg_rewind: Done!");
    assert!(!kinds(&c).contains(&RefusalKind::RewindWalMissing));
}

/// When the archive lacks a segment pg_rewind needs (here: nothing was
/// archived, `archive_mode = off`), it says which file it could not
/// restore, then cannot find the previous record: refused.
#[test]
fn rewind_refuses_when_the_archive_lacks_the_segment() {
    let c = rewind_after_long_split(1500, |s| {
        s.failover.restore_target_wal = true;
        s.restore_command = true;
    });
    let a = &c.attempts[0];
    let fork = a.fork_point.unwrap();
    let n = &c.nodes[0];
    // The newest segment before the oldest one kept.
    let g = n.wal.geometry();
    let seg = g.segno(n.wal.kept_from()) - 1;
    let file = g.wal_file_name(crate::ids::Tli(1), Lsn(seg * g.segment_size()));
    assert_eq!(a.messages[2], format!("pg_rewind: error: could not restore file \"{file}\" from archive"));
    let searchptr = n.wal.records().first().map_or(fork, |r| r.prev.min(fork));
    let missing = format!("pg_rewind: error: could not find previous WAL record at {searchptr}");
    assert_eq!(a.messages[3], missing);
    assert_eq!(kinds(&c), [RefusalKind::RewindWalMissing]);
    assert_eq!(a.result, AttemptResult::Refused);
}

/// The default story (with `wal_log_hints`) run until only the failback
/// step is left, node1 down.
fn before_failback() -> Cluster {
    let mut s = Settings { operator: default_story(), wal_log_hints: true, ..Settings::default() };
    s.cluster.standbys = 1;
    let mut c = Cluster::new(s, false);
    let mut evs = Vec::new();
    let mut i = 0u64;
    while c.script.next < 2 || c.script.in_progress.is_some() {
        c.enabled(&mut evs);
        let ev = evs[(i as usize * 7) % evs.len()];
        c.apply(ev, i).expect("no violation while running");
        i += 1;
        assert!(i < 100_000);
    }
    assert_eq!(c.nodes[0].status, Status::Down);
    c
}

/// pg_rewind's `--source-server` is a libpq connection: a source cut off
/// by a partition, or not accepting connections, fails the tool; the node
/// is not started.
#[test]
fn rewind_fails_when_it_cannot_connect_to_the_source() {
    let msg = "pg_rewind: error: could not connect to server: connection to node2 failed";
    let mut c = before_failback();
    c.partitions.cut(NodeId(1), NodeId(0));
    c.failback(NodeId(0), Failback::Rewind, NodeId(1), false);
    assert_eq!(c.attempts[0].messages, [msg]);
    assert_eq!(c.attempts[0].result, AttemptResult::Failed);
    assert_eq!(c.nodes[0].status, Status::Down);
    let mut c = before_failback();
    c.nodes[1].status = Status::ShuttingDown;
    c.failback(NodeId(0), Failback::Rewind, NodeId(1), false);
    assert_eq!(c.attempts[0].messages, [msg]);
    // Reachable and accepting connections: it proceeds.
    let mut c = before_failback();
    c.failback(NodeId(0), Failback::Rewind, NodeId(1), false);
    assert_eq!(c.attempts[0].messages.last().map(String::as_str), Some("pg_rewind: Done!"));
    assert!(c.nodes[0].is_running(), "started as a standby");
}

/// The proposal's step without its premise (`synchronous_transfer =
/// commit`): node1 wrote data pages past the fork, so once its WAL is cut
/// back to the fork point a page on its disk is ahead of its WAL:
/// `wal_before_data` fails, and `apply` reports it.
#[test]
fn truncating_without_the_premise_breaks_wal_before_data() {
    let mut s = Settings { operator: default_story(), ..Settings::default() };
    s.cluster.standbys = 1;
    s.failover.failback = Failback::Truncate;
    let mut c = Cluster::new(s, false);
    let mut evs = Vec::new();
    let mut i = 0u64;
    let v = loop {
        c.enabled(&mut evs);
        let ev = evs[(i as usize * 7) % evs.len()];
        if let Err(v) = c.apply(ev, i) {
            break v;
        }
        i += 1;
        assert!(i < 100_000, "no violation");
    };
    assert_eq!(v.invariant, crate::invariants::Invariant::WalBeforeData);
    assert_eq!(v.node, Some(NodeId(0)));
    let a = &c.attempts[0];
    assert_eq!(a.strategy, Failback::Truncate);
    let fork = a.fork_point.unwrap();
    assert!(v.detail.starts_with("node1: block "), "{}", v.detail);
    let flushed = Lsn::after(&v.detail, "but WAL is flushed only to ").expect("an LSN");
    assert!(flushed <= fork, "node1's WAL ends at the fork: {flushed} <= {fork}");
}

/// pg_rewind runs crash recovery on a target that was not shut down
/// cleanly; when that fails (its pg_control points at no checkpoint
/// record: PANIC), pg_rewind gives up and the node stays down.
#[test]
fn rewind_fails_when_single_user_crash_recovery_fails() {
    let mut c = before_failback();
    assert!(!c.nodes[0].control.state.is_clean_shutdown(), "stopped immediately");
    let bad = Lsn(c.nodes[0].control.checkpoint.0 + 8);
    c.nodes[0].control.checkpoint = bad;
    c.failback(NodeId(0), Failback::Rewind, NodeId(1), false);
    assert_eq!(
        c.attempts[0].messages,
        [
            "pg_rewind: executing \"postgres\" for target server to complete crash recovery",
            "pg_rewind: error: postgres single-user mode in target cluster failed",
        ]
    );
    assert_eq!(c.attempts[0].result, AttemptResult::Failed);
    let n = &c.nodes[0];
    assert_eq!(n.status, Status::Down);
    assert_eq!(
        n.failed.as_deref(),
        Some(format!("could not locate a valid checkpoint record at {bad}").as_str())
    );
    assert!(!n.single_user, "single-user mode ended");
}
