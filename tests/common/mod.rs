//! Helpers shared by the integration tests.
#![allow(dead_code)]

use walsim::run::{NoObserver, RunOptions, RunResult, run_seed};
use walsim_model::Settings;

/// Runs the CLI in-process; returns (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let mut argv: Vec<std::ffi::OsString> = vec!["walsim".into()];
    argv.extend(args.iter().map(|a| a.into()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = walsim::cli::main_with(argv, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

/// `--set` assignments for a single server with no replication and no
/// operator script (the storage model alone).
pub const SINGLE_NODE: &[&str] = &["cluster.standbys=0", "operator=[]", "synchronous_standby_names="];

/// `SINGLE_NODE` plus `extra`.
pub fn single_node(extra: &[&str]) -> Settings {
    let mut sets = SINGLE_NODE.to_vec();
    sets.extend_from_slice(extra);
    settings(&sets)
}

/// Settings from `--set` style assignments on top of the defaults.
pub fn settings(sets: &[&str]) -> Settings {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    walsim::config::load(None, &sets).expect("valid test settings")
}

pub fn run(s: &Settings, seed: u64) -> RunResult {
    run_seed(s, seed, RunOptions::default(), &mut NoObserver)
}

/// The first seed in `1..=max` whose run violates an invariant.
pub fn first_violation(s: &Settings, max: u64) -> Option<(u64, RunResult)> {
    (1..=max).map(|seed| (seed, run(s, seed))).find(|(_, r)| r.violation.is_some())
}
