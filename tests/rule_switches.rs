//! Every invariant catches a planted bug: switching off the PostgreSQL
//! rule that protects it must lead to a violation of that invariant within
//! a stated number of seeds. (And with the rule on, the same settings
//! pass: see tests/properties.rs and `rules_on_pass_the_same_settings`.)

mod common;
use common::{cli, first_violation, run, single_node};
use walsim_model::Invariant;

fn assert_caught(sets: &[&str], want: Invariant, within: u64) {
    let s = single_node(sets);
    let (seed, r) =
        first_violation(&s, within).unwrap_or_else(|| panic!("{sets:?}: no violation within {within} seeds"));
    assert_eq!(r.invariant(), Some(want), "{sets:?}, seed {seed}: {}", r.detail);
}

#[test]
fn wal_before_data_off_is_caught_at_once() {
    // The acceptance check, through the CLI: exit code 1.
    let found = (1..=50).find_map(|seed| {
        let (code, out, _) =
            cli(&["run", "--seed", &seed.to_string(), "--set", "rules.wal_before_data=false", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (v["outcome"] == "violation").then_some((code, v))
    });
    let (code, v) = found.expect("a violation among the first 50 seeds");
    assert_eq!(code, 1);
    assert_eq!(v["invariant"], "wal_before_data");
    assert!(v["detail"].as_str().unwrap().contains("but WAL is flushed only to"));
}

#[test]
fn fsync_before_control_update_off_loses_acknowledged_commits() {
    assert_caught(
        &["rules.fsync_before_control_update=false", "faults.power_loss=0.01"],
        Invariant::AcknowledgedCommitsSurvive,
        60,
    );
}

#[test]
fn checkpoint_not_waiting_for_commits_loses_acknowledged_commits() {
    assert_caught(
        &[
            "rules.checkpoint_waits_for_commits=false",
            "faults.power_loss=0.02",
            "scheduler.weights.checkpoint_request=5",
        ],
        Invariant::AcknowledgedCommitsSurvive,
        1000,
    );
}

#[test]
fn redo_without_page_lsn_check_is_caught() {
    // With full_page_writes on, every page's first change after REDO is an
    // image, so replay never needs the check; without them it does.
    assert_caught(
        &["rules.redo_skips_newer_pages=false", "full_page_writes=false"],
        Invariant::RecoveryIsExact,
        10,
    );
}

/// Settings where a reader often sets a hint bit on a page whose inserting
/// transaction's asynchronous commit record is still in WAL buffers, and
/// the page is written before the WAL writer writes that record. (With
/// full_page_writes, replay would restore the page from its image.)
const HINT_RACE: &[&str] = &[
    "synchronous_commit=off",
    "full_page_writes=false",
    "faults.process_crash=0.01",
    "cluster.rel_pages=4",
    "workload.select_percent=50",
    "scheduler.weights.wal_writer=1",
    "scheduler.weights.bgwriter=10",
];

#[test]
fn hint_bits_before_commit_flush_are_caught() {
    let mut sets = HINT_RACE.to_vec();
    sets.push("rules.hint_bits_wait_for_commit_flush=false");
    assert_caught(&sets, Invariant::RecoveryIsExact, 20);
}

#[test]
fn rules_on_pass_the_same_settings() {
    for sets in [
        &["faults.power_loss=0.01", "scheduler.weights.checkpoint_request=5"][..],
        &["full_page_writes=false", "faults.process_crash=0.01"][..],
        HINT_RACE,
    ] {
        let s = single_node(sets);
        for seed in 1..=40 {
            let r = run(&s, seed);
            assert!(r.violation.is_none(), "{sets:?} seed {seed}: {}", r.detail);
        }
    }
}

/// `rules.fsync_control_file=false`: a checkpoint's pg_control update stays
/// in the OS cache while the checkpoint removes the WAL segments before its
/// REDO (durable_unlink). A power loss takes pg_control back to a REDO whose
/// segment is gone: `wal_segments_kept`. With the rule on, never.
#[test]
fn fsync_control_file_off_is_caught() {
    // The rule's home configuration, as `walsim bench-search --homes` runs it.
    let small = walsim::bench::home_of("fsync_control_file").expect("a home").sets;
    let mut off = small.to_vec();
    off.push("rules.fsync_control_file=false");
    assert_caught(&off, Invariant::WalSegmentsKept, 10);
    let on = single_node(small);
    for seed in 1..=10 {
        let r = run(&on, seed);
        assert!(r.violation.is_none(), "seed {seed}: {}", r.detail);
    }
}
