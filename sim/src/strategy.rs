//! proptest strategies for configurations, seeds and runs, so properties
//! of the model are one line:
//!
//! ```no_run
//! use proptest::prelude::*;
//! proptest! {
//!     #[test]
//!     fn acknowledged_commits_survive(run in walsim::strategy::runs()) {
//!         let r = run.run();
//!         let lost = r.invariant() == Some(walsim::model::Invariant::AcknowledgedCommitsSurvive);
//!         prop_assert!(!lost, "{:?}: {}", run, r.detail);
//!     }
//! }
//! ```
//!
//! Every dimension shrinks toward the simple end (the base value of an
//! enum setting, `false`, one client, one page, no faults, few steps), so
//! a failing property comes back as a small config, printed as the
//! `walsim run` flags that reproduce it. Dimensions are named by dotted
//! config keys and only used where the base settings have that key, so
//! the strategies follow the settings as the model grows.

use crate::config;
use crate::run::{NoObserver, RunOptions, RunResult, run_seed};
use proptest::prelude::*;
use proptest::sample::select;
use std::fmt;
use walsim_model::Settings;

/// Main-phase steps of [`runs`]: short, so properties run fast in debug builds.
pub const RUN_STEPS: u64 = 400;

/// Enum settings and their values; the base value is put first, so it is
/// what they shrink to.
const CHOICES: &[(&str, &[&str])] = &[
    ("synchronous_commit", &["off", "local", "remote_write", "on", "remote_apply"]),
    ("synchronous_transfer", &["commit", "data_flush", "all"]),
    ("failover.failback", &["naive", "rewind", "basebackup", "truncate"]),
];

/// Boolean settings (shrink to `false`).
const FLAGS: &[&str] = &["wal_log_hints", "full_page_writes"];

/// Integer settings and their ranges; `None` for "up to the base value".
const RANGES: &[(&str, i64, Option<i64>)] = &[
    ("workload.clients", 1, Some(8)),
    ("cluster.rel_pages", 1, Some(64)),
    ("shared_buffers", 2, Some(32)),
    ("cluster.standbys", 0, None),
    ("scheduler.steps", 1, None),
];

/// Fault rates range up to this multiple of the base rate (runs are short).
const FAULT_SCALE: f64 = 10.0;

/// One run to make: settings and seed.
#[derive(Clone, PartialEq)]
pub struct Run {
    pub settings: Settings,
    pub seed: u64,
}

impl Run {
    /// Runs it (no recording, no log).
    pub fn run(&self) -> RunResult {
        run_seed(&self.settings, self.seed, RunOptions::default(), &mut NoObserver)
    }
}

impl fmt::Debug for Run {
    /// As the command that reproduces it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&config::run_command(&self.settings, self.seed))
    }
}

/// Seeds; they shrink toward 0.
pub fn seeds() -> impl Strategy<Value = u64> {
    any::<u64>()
}

/// Configurations around the defaults.
pub fn configs() -> BoxedStrategy<Settings> {
    configs_from(Settings::default())
}

/// Runs (config and seed) around the defaults, with [`RUN_STEPS`] steps.
pub fn runs() -> BoxedStrategy<Run> {
    let mut base = Settings::default();
    base.scheduler.steps = RUN_STEPS;
    runs_from(base)
}

/// Runs around `base` (its step count is the most a run takes).
pub fn runs_from(base: Settings) -> BoxedStrategy<Run> {
    (configs_from(base), seeds()).prop_map(|(settings, seed)| Run { settings, seed }).boxed()
}

/// Configurations around `base`: each dimension varies, shrinking toward
/// the simple end; combinations the settings reject are skipped.
pub fn configs_from(base: Settings) -> BoxedStrategy<Settings> {
    let table = config::to_table(&base);
    let dims = dimensions(&table);
    let keys: Vec<String> = dims.iter().map(|(k, _)| k.clone()).collect();
    let values: Vec<BoxedStrategy<toml::Value>> = dims.into_iter().map(|(_, s)| s).collect();
    values
        .prop_filter_map("settings reject this combination", move |vals| {
            let mut t = table.clone();
            for (k, v) in keys.iter().zip(vals) {
                config::set_dotted(&mut t, k, v).ok()?;
            }
            config::settings_from_table(t, None, &[]).ok()
        })
        .boxed()
}

/// The dimensions `table` has, each a strategy over its TOML values.
fn dimensions(table: &toml::Table) -> Vec<(String, BoxedStrategy<toml::Value>)> {
    let mut dims = Vec::new();
    let has = |key: &str, pred: fn(&toml::Value) -> bool| config::get_dotted(table, key).filter(|v| pred(v));
    for (key, values) in CHOICES {
        if let Some(cur) = has(key, toml::Value::is_str).and_then(toml::Value::as_str) {
            let mut order: Vec<toml::Value> = vec![toml::Value::String(cur.to_string())];
            order.extend(values.iter().filter(|v| **v != cur).map(|v| toml::Value::String(v.to_string())));
            dims.push((key.to_string(), select(order).boxed()));
        }
    }
    for key in FLAGS {
        if has(key, toml::Value::is_bool).is_some() {
            dims.push((key.to_string(), any::<bool>().prop_map(toml::Value::Boolean).boxed()));
        }
    }
    for &(key, lo, hi) in RANGES {
        if let Some(cur) = has(key, toml::Value::is_integer).and_then(toml::Value::as_integer) {
            let hi = hi.unwrap_or(cur).max(lo);
            dims.push((key.to_string(), (lo..=hi).prop_map(toml::Value::Integer).boxed()));
        }
    }
    let faults = table.get("faults").and_then(toml::Value::as_table).into_iter().flatten();
    for (k, v) in faults {
        if let Some(p) = v.as_float() {
            let hi = (p * FAULT_SCALE).min(1.0 / 8.0);
            let rate = prop_oneof![Just(0.0), 0.0..=hi].prop_map(toml::Value::Float);
            dims.push((format!("faults.{k}"), rate.boxed()));
        }
    }
    dims
}
