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

/// A fresh, empty directory under the system temp dir for one test,
/// removed when dropped (also when the test fails).
pub struct TestDir(std::path::PathBuf);

impl std::ops::Deref for TestDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TestDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(name: &str) -> TestDir {
    let dir = std::env::temp_dir().join(format!("walsim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TestDir(dir)
}

/// Parses JSON output and drops its timing figures (`perf`), which are
/// the only part allowed to differ between equal sweeps.
pub fn without_perf(json: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    v.as_object_mut().unwrap().remove("perf").expect("a perf key");
    v
}

/// `walsim explore --json` with `rules.wal_before_data=false` (every seed
/// soon fails), failures saved in `dir`; `extra` adds arguments. Returns
/// the parsed results.
pub fn explore_failures(dir: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["explore", "--set", "rules.wal_before_data=false", "--json", "--save-failures"];
    args.push(dir.to_str().unwrap());
    args.extend(extra);
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}
