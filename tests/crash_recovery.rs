//! Crash recovery for both crash kinds, driven event by event through the
//! model's public API.

mod common;
use common::{run, single_node};
use walsim_model::event::CrashKind;
use walsim_model::ids::NodeId;
use walsim_model::invariants;
use walsim_model::node::Status;
use walsim_model::recovery::rows_implied_by_wal;
use walsim_model::{Cluster, Event, Lsn};

/// Takes `n` steps choosing enabled events round-robin (a simple fair
/// policy, deterministic without a generator).
fn steps(c: &mut Cluster, n: usize, counter: &mut u64) {
    let mut evs = Vec::new();
    for _ in 0..n {
        c.enabled(&mut evs);
        if evs.is_empty() {
            return;
        }
        *counter += 1;
        let ev = evs[*counter as usize % evs.len()];
        let arg = counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        c.apply(ev, arg).unwrap_or_else(|v| panic!("violation after {ev}: {v}"));
    }
}

/// Restarts node 1 and lets recovery finish; returns whether it did.
fn recover(c: &mut Cluster, counter: &mut u64) {
    c.set_quiesce(true);
    c.apply(Event::Start { node: NodeId(0) }, 0).expect("start");
    for _ in 0..100_000 {
        if c.nodes[0].status == Status::Production {
            break;
        }
        steps(c, 1, counter);
    }
    assert_eq!(c.nodes[0].status, Status::Production, "crash recovery finished");
}

/// Runs async commits until some WAL is written but not flushed. A key
/// space far larger than the commits makes every insert a new row, so a
/// lost commit is a lost row (the checks below count rows).
fn cluster_with_unflushed_wal() -> (Cluster, u64) {
    let s = single_node(&[
        "synchronous_commit=off",
        "faults.process_crash=0",
        "faults.power_loss=0",
        "workload.key_space=100000",
    ]);
    let mut c = Cluster::new(s, false);
    let mut counter = 0;
    for _ in 0..10_000 {
        steps(&mut c, 1, &mut counter);
        let w = &c.nodes[0].wal;
        if c.ledger.acks > 30 && w.write_lsn() > w.flush_lsn() && w.end() > w.write_lsn() {
            return (c, counter);
        }
    }
    panic!("never saw written-but-unflushed WAL");
}

#[test]
fn process_crash_keeps_written_wal_and_power_loss_loses_it() {
    let (base, counter) = cluster_with_unflushed_wal();
    let (write, flush) = (base.nodes[0].wal.write_lsn(), base.nodes[0].wal.flush_lsn());
    assert!(write > flush);

    let mut crashed = base.clone();
    crashed.apply(Event::Crash { node: NodeId(0), kind: CrashKind::Immediate }, 0).unwrap();
    assert_eq!(crashed.nodes[0].wal.end(), write, "immediate stop keeps WAL in the OS cache");

    let mut powered = base.clone();
    powered.apply(Event::Crash { node: NodeId(0), kind: CrashKind::PowerLoss }, 0).unwrap();
    assert_eq!(powered.nodes[0].wal.end(), flush, "power loss keeps only fsynced WAL");

    let (mut c1, mut c2) = (counter, counter);
    recover(&mut crashed, &mut c1);
    recover(&mut powered, &mut c2);
    for c in [&crashed, &powered] {
        let n = &c.nodes[0];
        assert_eq!(n.visible_rows(), rows_implied_by_wal(&n.wal, n.data.len()));
        assert!(invariants::check_after_crash_recovery(c, NodeId(0)).is_none());
    }
    let more = crashed.nodes[0].visible_rows();
    let fewer = powered.nodes[0].visible_rows();
    assert!(fewer.len() < more.len(), "the power loss lost the unflushed async commits");
    assert!(fewer.iter().all(|r| more.contains(r)));
    // Recovery ended with an end-of-recovery checkpoint (a shutdown record).
    let ctl = &crashed.nodes[0].control;
    assert!(ctl.checkpoint >= write && ctl.redo >= write && ctl.redo != Lsn(0));
}

#[test]
fn synchronous_commits_survive_power_loss() {
    let s = single_node(&["synchronous_commit=local", "faults.process_crash=0", "faults.power_loss=0"]);
    let mut c = Cluster::new(s, false);
    let mut counter = 0;
    while c.ledger.acks < 50 {
        steps(&mut c, 1, &mut counter);
    }
    c.apply(Event::Crash { node: NodeId(0), kind: CrashKind::PowerLoss }, 0).unwrap();
    recover(&mut c, &mut counter);
    assert!(invariants::check_after_crash_recovery(&c, NodeId(0)).is_none());
    let keys = c.ledger.acked_keys();
    assert!(keys >= 30, "{keys} keys acknowledged");
    assert!(c.nodes[0].visible_rows().len() >= keys, "acknowledged rows are there");
}

#[test]
fn random_runs_with_each_crash_kind_recover_exactly() {
    for (sets, what) in [
        (["faults.process_crash=0.01", "faults.power_loss=0"], "process crashes"),
        (["faults.process_crash=0", "faults.power_loss=0.01"], "power losses"),
    ] {
        let s = single_node(&sets);
        let mut crashes = 0;
        for seed in 1..=20 {
            let r = run(&s, seed);
            assert!(r.violation.is_none(), "{what}, seed {seed}: {}", r.detail);
            crashes += r.stats.process_crashes + r.stats.power_losses;
        }
        assert!(crashes >= 100, "{what}: only {crashes} crashes in 20 runs");
    }
}
