//! Behaviours the test suite once let through (issue 12, "Bugs the tests
//! let through"): each test here asserts something PostgreSQL does and
//! fails when the model stops doing it (docs/testing.md lists the
//! mutation each one was checked against).

mod common;
use walsim::run::{NoObserver, Outcome, RunOptions, RunResult, run_seed};
use walsim::scenario::{self, BUILTIN, Scenario};
use walsim_model::failback::AttemptResult;

fn builtin_text(name: &str) -> &'static str {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).expect("a built-in scenario")
}

/// Built-in scenario `name` with `from` replaced by `to` in its text, and
/// `sets` applied.
fn variant(name: &str, from: &str, to: &str, sets: &[&str]) -> Scenario {
    let text = builtin_text(name);
    assert!(text.contains(from), "{name} has {from:?}");
    let text = text.replacen(from, to, 1);
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    scenario::parse(name, &text, toml::Table::new(), &sets).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run(s: &Scenario, seed: u64) -> RunResult {
    run_seed(&s.settings, seed, RunOptions::default(), &mut NoObserver)
}

/// The old primary's WAL went past the fork: a naive restart as a standby
/// is refused, but a fresh base backup of the new primary replaces its
/// files and it converges. A base backup that copied nothing would leave
/// the diverged WAL in place and be refused like the naive restart.
#[test]
fn base_backup_failback_converges_where_naive_is_refused() {
    let naive = variant("blog-failback-commit", "strategy = \"naive\"", "strategy = \"naive\"", &[]);
    let bb = variant("blog-failback-commit", "strategy = \"naive\"", "strategy = \"basebackup\"", &[]);
    for seed in 1..=4 {
        let r = run(&naive, seed);
        assert_eq!(r.outcome, Outcome::Refused, "naive, seed {seed}: {}", r.detail);
        let r = run(&bb, seed);
        assert_eq!(r.outcome, Outcome::Ok, "basebackup, seed {seed}: {}", r.detail);
        assert!(r.refusals.is_empty(), "seed {seed}: {:?}", r.refusals);
        let a = &r.failbacks[0];
        assert_eq!((a.node.as_str(), a.strategy.name()), ("node1", "basebackup"));
        assert_eq!(a.result, AttemptResult::Converged, "seed {seed}");
        assert!(
            a.messages[0].starts_with("pg_basebackup: copied node1 from node2 (WAL up to "),
            "{:?}",
            a.messages
        );
    }
}

/// An asynchronous switchover: the old primary rejoins as a standby of
/// the promoted one and must end streaming the new timeline with the new
/// primary's rows. A walsender that never ends the historic timeline
/// leaves it connected on timeline 1: `converges` must say so.
#[test]
fn async_switchover_follows_the_new_timeline_to_the_end() {
    let s = variant(
        "clean-switchover",
        "synchronous_standby_names = \"*\"",
        "synchronous_standby_names = \"\"",
        &[],
    );
    for seed in 1..=4 {
        let r = run(&s, seed);
        assert_eq!(r.outcome, Outcome::Ok, "seed {seed}: {}", r.detail);
        assert_eq!(r.failbacks[0].result, AttemptResult::Converged, "seed {seed}");
    }
}
