//! WAL segments as PostgreSQL manages them (issue 11): checkpoints remove
//! segments before REDO's (RemoveOldXlogFiles) unless `wal_keep_size`
//! holds them (KeepLogSeg); a standby that needs a removed segment is
//! refused with PostgreSQL's message; the rule switch
//! `keep_wal_for_standbys` is caught by `wal_segments_kept`.

mod common;
use common::{cli, run, settings};
use std::sync::Arc;
use walsim_model::Invariant;
use walsim_model::event::RefusalKind;
use walsim_model::heap::{Page, Tuple};
use walsim_model::ids::{BlockNumber, NodeId, Tli, Xid};
use walsim_model::lsn::WalGeometry;
use walsim_model::recovery::rows_implied_by_wal;
use walsim_model::wal::{RecordBody, Wal};

/// Small segments, an asynchronous standby (the primary goes on writing
/// while it lags), frequent checkpoints.
const SMALL_SEGMENTS: &[&str] = &[
    "wal_segment_size=\"16kB\"",
    "max_wal_size=\"32kB\"",
    "min_wal_size=\"32kB\"",
    "synchronous_standby_names=",
    "operator=[]",
    "scheduler.steps=4000",
    "scheduler.weights.checkpoint_request=4",
];

fn with(extra: &[&str]) -> walsim_model::Settings {
    let mut sets = SMALL_SEGMENTS.to_vec();
    sets.extend_from_slice(extra);
    settings(&sets)
}

fn segment_refusals(r: &walsim::run::RunResult) -> Vec<String> {
    r.refusals.iter().filter(|f| f.kind == RefusalKind::SegmentRemoved).map(|f| f.message.clone()).collect()
}

#[test]
fn removed_records_keep_the_oracle_and_indices() {
    // Records removed with their segments are folded into the base that
    // rows_implied_by_wal starts from: the rows it implies do not change,
    // and absolute indices still name the same records.
    let mut w = Wal::new(WalGeometry::new(1 << 14));
    let mut xid = 3;
    for i in 0..400u32 {
        let tuple =
            Tuple { key: i + 1, payload: u64::from(i) * 7, xmin: Xid(xid), xmax: Xid::INVALID, infomask: 0 };
        let image = (i % 50 == 0).then(|| Arc::new(Page { lsn: walsim_model::Lsn(0), tuples: vec![tuple] }));
        let block = i % 4;
        let image = image.filter(|_| i < 4);
        w.insert(
            Tli(1),
            Xid(xid),
            RecordBody::HeapInsert { block: BlockNumber(block), offnum: 1, tuple, image },
        );
        if i % 3 != 0 {
            w.insert(Tli(1), Xid(xid), RecordBody::Commit);
        } else {
            w.insert(Tli(1), Xid(xid), RecordBody::Abort);
        }
        xid += 1;
    }
    w.flush_upto(w.end());
    let before = rows_implied_by_wal(&w, 4);
    let mid = w.records()[w.records().len() / 2].lsn;
    let idx = w.index_at(mid);
    let rec = w.get(idx).cloned();
    let removed = w.remove_before(mid).expect("segments removed");
    assert!(removed.1 >= removed.0);
    assert!(w.first_index() > 0);
    assert!(w.records()[0].lsn >= w.kept_from());
    assert!(w.segment_removed(walsim_model::Lsn(w.kept_from().0 - 1)));
    assert_eq!(w.get(idx).cloned(), rec, "absolute index names the same record");
    assert_eq!(w.get(0), None, "a removed record is gone");
    assert_eq!(rows_implied_by_wal(&w, 4), before);
    // Unflushed WAL is never removed.
    let end = w.end();
    w.insert(Tli(1), Xid(xid), RecordBody::Commit);
    w.remove_before(walsim_model::Lsn(end.0 + (1 << 20)));
    assert!(w.kept_from() <= end);
    assert!(w.get(w.end_index() - 1).is_some_and(|r| r.lsn >= end));
}

#[test]
fn checkpoints_remove_segments_at_debug() {
    let (code, out, _) = cli(&[
        "run",
        "--seed",
        "1",
        "--set",
        "wal_segment_size=\"16kB\"",
        "--set",
        "max_wal_size=\"32kB\"",
        "--set",
        "operator=[]",
        "--set",
        "synchronous_standby_names=",
        "--set",
        "scheduler.steps=3000",
        "--log",
    ]);
    assert!(code == 0 || code == 1, "{code}");
    let removal = out
        .lines()
        .find(|l| l.contains("write-ahead log file \"0000000100000000000000"))
        .expect("a checkpoint removed or recycled a segment");
    assert!(removal.contains("checkpointer DEBUG:"), "{removal}");
    assert!(out.contains("attempting to remove WAL segments older than log file"));
}

#[test]
fn a_lagging_standby_is_refused_with_postgres_message() {
    let s = with(&[]);
    let refused: Vec<String> = (1..=30).flat_map(|seed| segment_refusals(&run(&s, seed))).collect();
    let m = refused.first().expect("some standby fell behind a removed segment within 30 seeds");
    assert!(m.starts_with("ERROR: requested WAL segment 0000000"), "{m}");
    assert!(m.ends_with(" has already been removed"), "{m}");
    assert_eq!(
        m.len(),
        "ERROR: requested WAL segment 000000010000000000000003 has already been removed".len()
    );
}

#[test]
fn wal_keep_size_keeps_what_standbys_need() {
    // Same seeds, with wal_keep_size holding far more WAL than a run
    // writes between a standby's crash and its catch-up.
    let s = with(&["wal_keep_size=\"4MB\""]);
    for seed in 1..=30 {
        let r = run(&s, seed);
        assert!(segment_refusals(&r).is_empty(), "seed {seed}: {:?}", segment_refusals(&r));
        assert_eq!(r.violation, None, "seed {seed}");
    }
}

#[test]
fn keep_wal_for_standbys_off_is_caught() {
    // Planted bug: the checkpoint ignores wal_keep_size (KeepLogSeg).
    // The rule's home configuration, as `walsim bench-search --homes` runs it.
    let mut sets = walsim::bench::home_of("keep_wal_for_standbys").expect("a home").sets.to_vec();
    sets.push("rules.keep_wal_for_standbys=false");
    let s = settings(&sets);
    let (seed, r) = (1..=10)
        .map(|seed| (seed, run(&s, seed)))
        .find(|(_, r)| r.violation.is_some())
        .expect("a violation within 10 seeds");
    assert_eq!(r.invariant(), Some(Invariant::WalSegmentsKept), "seed {seed}: {}", r.detail);
    assert!(
        r.detail.contains("wal_keep_size (4MB) and replication slots hold WAL from segment"),
        "{}",
        r.detail
    );
}

#[test]
fn rewind_fails_when_the_targets_wal_is_gone() {
    // diverged-rewind keeps WAL as the conformance cluster does
    // (wal_keep_size = '1GB'); without it, the old primary's shutdown
    // checkpoint after pg_switch_wal() removes the segment holding the
    // fork point, and pg_rewind cannot read back to a common checkpoint.
    let (code, out, _) = cli(&["run", "--scenario", "diverged-rewind", "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["failbacks"][0]["result"], "converged", "{}", v["failbacks"]);
    let (_, out, _) = cli(&["run", "--scenario", "diverged-rewind", "--set", "wal_keep_size=0", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fb = &v["failbacks"][0];
    // pg_rewind's pg_fatal is a refusal of the rejoin (rewind_wal_missing),
    // so the run ends refused rather than ok with a failed attempt.
    assert_eq!(fb["result"], "refused", "{fb}");
    assert_eq!(v["outcome"], "refused", "{v}");
    let msgs: Vec<&str> = fb["messages"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(
        msgs.iter().any(|m| m.starts_with("pg_rewind: error: could not find previous WAL record at 0/")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("No such file or directory")), "{msgs:?}");
}

#[test]
fn pruning_full_pages_keeps_every_invariant() {
    // Two blocks and 150 keys: pages fill (107 tuples) within a few
    // thousand steps, so backends prune (XLOG_HEAP2_PRUNE) again and
    // again; crash recovery, the standby's replay and the final checks
    // must agree with it (recovery_is_exact replays the prune records in
    // its oracle too).
    let s = settings(&[
        "cluster.rel_pages=2",
        "workload.key_space=150",
        "workload.update_percent=60",
        "operator=[]",
        "synchronous_standby_names=",
        "wal_keep_size=\"64MB\"",
        "scheduler.steps=6000",
        "faults.process_crash=0.004",
        "faults.power_loss=0.002",
    ]);
    for seed in 1..=12 {
        let r = run(&s, seed);
        assert_eq!(r.violation, None, "seed {seed}: {}", r.detail);
    }
}

#[test]
fn page_prune_renumbers_and_checks_offsets() {
    let t = |k: u32| Tuple { key: k, payload: 0, xmin: Xid(3), xmax: Xid::INVALID, infomask: 0 };
    let mut p = Page { lsn: walsim_model::Lsn(0), tuples: (1..=5).map(t).collect() };
    p.prune(&[1, 3]).unwrap();
    assert_eq!(p.tuples.iter().map(|x| x.key).collect::<Vec<_>>(), vec![2, 4, 5]);
    assert_eq!(p.next_offnum(), 4);
    assert!(p.prune(&[4]).is_err());
    assert!(p.prune(&[0]).is_err());
}

const DOWN: &str = "tests/scenarios/standby-down-segment-removed.toml";

fn scenario_json(sets: &[&str], seed: u64) -> serde_json::Value {
    let seed = seed.to_string();
    let mut args = vec!["run", "--scenario", DOWN, "--seed", &seed, "--json"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let (_, out, _) = cli(&args);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_standby_down_too_long_is_refused_and_a_slot_lets_it_catch_up() {
    for seed in 1..=4 {
        let v = scenario_json(&[], seed);
        assert_eq!(v["outcome"], "refused", "seed {seed}: {}", v["detail"]);
        let v = scenario_json(&["cluster.replication_slots=true"], seed);
        assert_eq!(v["outcome"], "ok", "seed {seed}: {}", v["detail"]);
    }
}

#[test]
fn max_slot_wal_keep_size_invalidates_the_slot() {
    let (_, out, _) = cli(&[
        "run",
        "--scenario",
        DOWN,
        "--set",
        "cluster.replication_slots=true",
        "--set",
        "max_slot_wal_keep_size=0",
        "--log",
    ]);
    assert!(
        out.contains("checkpointer LOG:  invalidating slot \"node2\" because its restart_lsn 0/"),
        "no invalidation line"
    );
    assert!(out.contains("exceeds max_slot_wal_keep_size"));
    assert!(out.contains("outcome: refused"), "{}", out.lines().rev().take(5).collect::<Vec<_>>().join("\n"));
}

#[test]
fn keep_wal_for_standbys_off_ignores_slots_and_is_caught() {
    let v = scenario_json(&["cluster.replication_slots=true", "rules.keep_wal_for_standbys=false"], 1);
    assert_eq!(v["outcome"], "violation", "{}", v["detail"]);
    assert_eq!(v["invariant"], "wal_segments_kept");
}

#[test]
fn a_missing_slot_is_refused_with_postgres_message() {
    // The standby asks for a slot its primary does not have (dropped by
    // the operator before it starts again).
    let dir = common::temp_dir("missing-slot");
    let text = std::fs::read_to_string(DOWN).unwrap().replace(
        "[[operator]]\naction = \"start\"",
        "[[operator]]\naction = \"drop_slot\"\nnode = \"node1\"\nslot = \"node2\"\n\n[[operator]]\naction = \"start\"",
    );
    let path = dir.join("s.toml");
    std::fs::write(&path, text).unwrap();
    let (_, out, _) = cli(&[
        "run",
        "--scenario",
        path.to_str().unwrap(),
        "--set",
        "cluster.replication_slots=true",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let msgs: Vec<&str> =
        v["refusals"].as_array().unwrap().iter().map(|r| r["message"].as_str().unwrap()).collect();
    assert!(msgs.contains(&"ERROR: replication slot \"node2\" does not exist"), "{msgs:?}");
}

#[test]
fn a_base_backup_copies_no_slots() {
    let s = settings(&["cluster.replication_slots=true"]);
    let c = walsim_model::Cluster::new(s.clone(), false);
    assert_eq!(c.nodes[0].slots.len(), 1, "the primary has the standby's slot");
    assert!(c.nodes[1].slots.is_empty());
    let copy = walsim_model::node::Node::copy_of(NodeId(2), &c.nodes[0], &s);
    assert!(copy.slots.is_empty(), "pg_basebackup does not copy pg_replslot");
}

#[test]
fn pg_rewind_removes_the_targets_slots() {
    // node1 (the old primary) holds node2's slot; pg_rewind excludes
    // pg_replslot from the copy and removes the target's contents there.
    let dir = common::temp_dir("rewind-slots");
    let jsonl = dir.join("t.jsonl");
    let (code, out, err) = cli(&[
        "run",
        "--scenario",
        "diverged-rewind",
        "--set",
        "cluster.replication_slots=true",
        "--trace-jsonl",
        jsonl.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let slots = |r: &serde_json::Value| r["nodes"][0]["slots"].as_array().unwrap().len();
    assert_eq!(slots(&rows[0]), 1, "node1 starts with node2's slot");
    let rewound = rows
        .iter()
        .position(|r| {
            r["event"]["event"] == "operator" && r["nodes"][0]["control"]["state"] == "in archive recovery"
        })
        .expect("the rewind step");
    assert_eq!(slots(&rows[rewound]), 0, "pg_rewind removed node1's slots");
    assert!(out.contains("by rewind onto node2: Converged"), "{out}");
}

#[test]
fn a_removed_upstream_segment_is_not_a_silent_divergence() {
    // Found with 16kB segments: node1 (rewound onto node2) had received
    // node2's timeline-2 record at 0/3850; node2 crashed, recovered and
    // checkpointed, removing that segment. no_silent_divergence compared
    // node1's record with node2's (gone) and reported a divergence that
    // is not there; PostgreSQL refuses the segment instead.
    let s = settings(&[
        "failover.failback=rewind",
        "faults.disconnect=0.0005",
        "faults.partition=0.0005",
        "faults.power_loss=0.0",
        "faults.process_crash=0.001",
        "max_wal_size=\"32kB\"",
        "min_wal_size=\"32kB\"",
        "wal_log_hints=true",
        "wal_segment_size=\"16kB\"",
    ]);
    let r = run(&s, 72);
    assert_eq!(r.violation, None, "{}", r.detail);
    assert!(!segment_refusals(&r).is_empty(), "{}", r.detail);
}

#[test]
fn segment_and_slot_marks_are_reached_where_they_can_be() {
    use walsim_model::marks::Mark;
    let reached = |s: &walsim_model::Settings, m: Mark| (1..=30).any(|seed| run(s, seed).marks.contains(m));
    let small = with(&[]);
    assert!(reached(&small, Mark::SegmentRemoved), "checkpoints remove segments");
    assert!(reached(&small, Mark::Refused(RefusalKind::SegmentRemoved)));
    assert!(!reached(&small, Mark::SlotHeldWal), "no slots, nothing held by one");
    let slots = with(&["cluster.replication_slots=true"]);
    assert!(reached(&slots, Mark::SlotHeldWal), "a lagging standby's slot holds WAL");
    // The marks agree with the run's records.
    for seed in 1..=10 {
        let r = run(&small, seed);
        assert_eq!(
            r.marks.contains(Mark::Refused(RefusalKind::SegmentRemoved)),
            !segment_refusals(&r).is_empty()
        );
    }
}

/// Issue 11's done-when for the defaults: a default run (the seed
/// experiment's story, nothing set) crosses several 4 kB segments, takes a
/// WAL-triggered checkpoint ("checkpoint starting: wal" or a restartpoint)
/// and removes or recycles segments, and its JSONL shows the oldest kept
/// segment moving.
#[test]
fn a_default_run_crosses_segments_and_removes_them() {
    let defaults = walsim_model::Settings::default();
    let seg = defaults.wal_segment_size.0;
    let mut crossed = Vec::new();
    for seed in 1..=9u64 {
        let path =
            std::env::temp_dir().join(format!("walsim-default-segs-{}-{seed}.jsonl", std::process::id()));
        let p = path.to_str().unwrap();
        let s = seed.to_string();
        let (code, log, err) = cli(&["run", "--seed", &s, "--log", "--trace-jsonl", p]);
        assert!(code == 0 || code == 1, "seed {seed}: {err}");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (mut max_lsn, mut oldest) = (0u64, std::collections::BTreeSet::new());
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for n in v["nodes"].as_array().into_iter().flatten() {
                let lsn = walsim_model::Lsn::parse(n["insert_lsn"].as_str().unwrap()).unwrap();
                max_lsn = max_lsn.max(lsn.0);
                if let Some(o) = n["oldest_wal_segment"].as_str() {
                    oldest.insert((n["node"].as_str().unwrap().to_string(), o.to_string()));
                }
            }
        }
        crossed.push(max_lsn / seg);
        assert!(
            log.contains("checkpoint starting: wal") || log.contains("restartpoint starting: wal"),
            "seed {seed}: no WAL-triggered checkpoint"
        );
        assert!(
            log.contains("removing write-ahead log file") || log.contains("recycled write-ahead log file"),
            "seed {seed}: no segment removed"
        );
        let nodes: std::collections::BTreeSet<_> = oldest.iter().map(|(n, _)| n.clone()).collect();
        assert!(oldest.len() > nodes.len(), "seed {seed}: the JSONL's oldest_wal_segment never moved");
        // The story itself is the seed experiment's: no segment-removed refusal.
        assert!(!log.contains("has already been removed"), "seed {seed}");
    }
    crossed.sort_unstable();
    assert!(crossed[crossed.len() / 2] >= 3, "median segments crossed {crossed:?}");
}
