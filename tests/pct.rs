//! PCT (`scheduler.policy = "pct"`): deterministic, replayable, and it
//! finds a planted bug.

mod common;
use common::{cli, first_violation, settings};
use walsim::run::{NoObserver, RunOptions, run_choices, run_seed};
use walsim_model::Invariant;

#[test]
fn pct_runs_are_deterministic_and_replay_from_their_draws() {
    let s = settings(&["scheduler.policy=pct", "faults.process_crash=0.01", "scheduler.steps=800"]);
    let rec = RunOptions { record: true, ..RunOptions::default() };
    for seed in 1..=4 {
        let a = run_seed(&s, seed, rec, &mut NoObserver);
        let b = run_seed(&s, seed, rec, &mut NoObserver);
        assert_eq!((a.trace_hash, &a.choices), (b.trace_hash, &b.choices), "seed {seed}");
        let r = run_choices(&s, seed, a.choices.as_ref().unwrap(), RunOptions::default(), &mut NoObserver);
        assert_eq!((r.trace_hash, r.events, r.outcome), (a.trace_hash, a.events, a.outcome), "seed {seed}");
    }
    let random = settings(&["faults.process_crash=0.01", "scheduler.steps=800"]);
    let (p, q) = (run_seed(&s, 1, rec, &mut NoObserver), run_seed(&random, 1, rec, &mut NoObserver));
    assert_ne!(p.trace_hash, q.trace_hash, "another policy, another schedule");
    // The JSON of a run is byte-identical too, and names the policy.
    let args = ["run", "--seed", "3", "--json", "--set", "scheduler.policy=pct"];
    assert_eq!(cli(&args), cli(&args));
    assert!(cli(&args).1.contains(r#""policy":"pct""#));
}

#[test]
fn pct_finds_the_planted_wal_before_data_bug() {
    let s = settings(&["scheduler.policy=pct", "rules.wal_before_data=false"]);
    let (_, r) = first_violation(&s, 5).expect("PCT finds wal_before_data=false within 5 seeds");
    assert_eq!(r.invariant(), Some(Invariant::WalBeforeData));
    // With the rule on, the same seeds are clean of it.
    let ok = settings(&["scheduler.policy=pct"]);
    for seed in 1..=5 {
        assert_ne!(common::run(&ok, seed).invariant(), Some(Invariant::WalBeforeData));
    }
}

#[test]
fn pct_is_a_matrix_axis_and_swarm_still_applies() {
    let (code, out, err) = cli(&[
        "explore",
        "--matrix",
        "scheduler.policy=random,pct",
        "--count",
        "6",
        "--set",
        "scheduler.steps=300",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[1]["values"][0], "pct");
    assert_eq!(v["swarm"], true);
    let (code, _, err) = cli(&["run", "--set", "scheduler.pct_depth=0"]);
    assert_eq!(code, 2);
    assert!(err.contains("scheduler.pct_depth"), "{err}");
}

#[test]
fn pct_sweeps_are_the_same_for_any_number_of_jobs() {
    let run = |jobs: &str| {
        let (code, out, err) = cli(&[
            "explore",
            "--matrix",
            "scheduler.policy=random,pct",
            "--count",
            "12",
            "--set",
            "scheduler.steps=300",
            "--jobs",
            jobs,
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_object_mut().unwrap().remove("perf");
        v
    };
    assert_eq!(run("1"), run("2"));
}
