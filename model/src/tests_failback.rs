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
    let mut evs = Vec::new();
    let mut i = 0u64;
    while !c.script_done() {
        c.enabled(&mut evs);
        assert!(!evs.is_empty(), "stuck: {:?}", c.waits());
        let ev = evs[(i as usize * 7) % evs.len()];
        c.apply(ev, i).expect("no violation while running");
        i += 1;
        assert!(i < 100_000, "the script never finished");
    }
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
    assert_eq!(c.check_final(), Ok(()));
    assert_eq!(c.attempts[0].result, AttemptResult::Converged);
    assert!(c.nodes[0].slots.is_empty(), "pg_replslot is not copied");
}

/// PostgreSQL 9.4 had no pg_rewind in core: the attempt fails and the
/// node stays down.
#[test]
fn rewind_on_94devel_is_not_found() {
    let c = with(Failback::Rewind, |s| s.server_version = ServerVersion::V94Devel);
    let a = &c.attempts[0];
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
