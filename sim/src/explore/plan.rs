//! Planning a sweep: the matrix of cells, the seeds, which swarm draw each
//! (cell, seed) runs with, and the order runs are handed out in. Pure
//! computation: no threads, clock or I/O (the config file the [`Spec`]
//! names is read by [`Plan::new`] through [`config::load_table`]; the rest
//! works on what that returned).

use crate::args::{Axis, SeedRange, Shard};
use crate::config;
use crate::swarm::{Swarm, SwarmSpace};
use std::borrow::Cow;
use std::path::PathBuf;
use walsim_model::Settings;

/// The built-in matrix: the synchronous_transfer design space. One list,
/// so it is easy to retune.
pub const DEFAULT_MATRIX: &[(&str, &[&str])] = &[
    ("synchronous_commit", &["local", "on"]),
    ("synchronous_transfer", &["commit", "data_flush", "all"]),
    ("failover.failback", &["naive", "rewind", "truncate"]),
    ("wal_log_hints", &["off", "on"]),
];

/// Seeds per cell when neither `--seeds` nor `--count` is given: sized so
/// the default matrix takes about a minute on 2 cores (docs/PERFORMANCE.md).
pub const DEFAULT_SEEDS_PER_CELL: u64 = 5_000;

/// What to explore, as given on the command line.
#[derive(Clone, Debug)]
pub struct Spec {
    pub config: Option<PathBuf>,
    pub sets: Vec<String>,
    /// Empty: the default matrix, less the keys pinned with `--set`.
    pub matrix: Vec<Axis>,
    pub seeds: SeedRange,
    pub shard: Shard,
    pub swarm: bool,
    pub save_limit: usize,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            config: None,
            sets: Vec::new(),
            matrix: Vec::new(),
            seeds: SeedRange::first(DEFAULT_SEEDS_PER_CELL).expect("positive"),
            shard: Shard::ALL,
            swarm: true,
            save_limit: 1,
        }
    }
}

/// One cell: its matrix values and settings.
#[derive(Clone, Debug)]
pub struct Cell {
    pub values: Vec<String>,
    pub settings: Settings,
    space: SwarmSpace,
}

impl Cell {
    /// The cell's settings under a swarm draw (or as configured, if the
    /// swarmed ones are invalid).
    fn swarmed(&self, w: &Swarm) -> Settings {
        self.space.settings(w).unwrap_or_else(|| self.settings.clone())
    }
}

/// A validated sweep: every cell's settings are known to be valid before
/// anything runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub base: Settings,
    pub axes: Vec<Axis>,
    pub cells: Vec<Cell>,
    pub seeds: SeedRange,
    pub shard: Shard,
    pub swarm: bool,
    pub save_limit: usize,
}

impl Plan {
    /// Reads the config the spec names, applies its `--set`s, and plans.
    pub fn new(spec: &Spec) -> Result<Plan, String> {
        // Validate first: errors then name the config file and its line.
        let loaded = config::load_table(spec.config.as_deref(), &spec.sets).map_err(|e| e.0)?;
        Plan::of(spec, loaded)
    }

    /// The plan for `spec` over an already loaded config.
    pub fn of(spec: &Spec, loaded: config::Loaded) -> Result<Plan, String> {
        let base = loaded.settings(loaded.table.clone()).map_err(|e| e.0)?;
        let (table, set_keys) = (loaded.table, loaded.set_keys);
        let axes = if spec.matrix.is_empty() {
            DEFAULT_MATRIX
                .iter()
                .filter(|(key, _)| !set_keys.iter().any(|k| k == key))
                .map(|(key, values)| Axis {
                    key: key.to_string(),
                    values: values.iter().map(|v| v.to_string()).collect(),
                })
                .collect()
        } else {
            spec.matrix.clone()
        };
        for (i, a) in axes.iter().enumerate() {
            if axes[..i].iter().any(|b| b.key == a.key) {
                return Err(format!("--matrix {}: the key is given twice", a.key));
            }
            if set_keys.contains(&a.key) {
                return Err(format!("--matrix {}: the key is also given with --set", a.key));
            }
        }
        let mut cells = Vec::new();
        for values in cartesian(&axes) {
            let mut t = table.clone();
            let mut what = Vec::new();
            for (a, v) in axes.iter().zip(&values) {
                config::set_dotted(&mut t, &a.key, config::parse_value_for(&a.key, v)).map_err(|e| e.0)?;
                what.push(format!("{}={v}", a.key));
            }
            let settings = config::settings_from_table(t, None, &[])
                .map_err(|e| format!("--matrix cell {}: {e}", what.join(" ")))?;
            let space = SwarmSpace::of(&settings);
            cells.push(Cell { values, settings, space });
        }
        if spec.shard.len(spec.seeds).checked_mul(cells.len() as u64).is_none() {
            return Err(format!(
                "--seeds {} × {} cells is more runs than walsim can count (2^64); use a smaller range",
                spec.seeds,
                cells.len()
            ));
        }
        Ok(Plan {
            base,
            axes,
            cells,
            seeds: spec.seeds,
            shard: spec.shard,
            swarm: spec.swarm,
            save_limit: spec.save_limit,
        })
    }

    /// Runs in this shard: every cell × every seed of the shard.
    pub fn runs(&self) -> u64 {
        self.shard.len(self.seeds) * self.cells.len() as u64
    }

    /// Run `i`: seed-major, so an interrupted sweep has covered every cell
    /// about equally.
    pub(super) fn item(&self, i: u64) -> (usize, u64) {
        let n = self.cells.len() as u64;
        ((i % n) as usize, self.shard.nth(self.seeds, i / n))
    }

    /// The settings seed `seed` runs with in cell `c` (swarmed).
    pub fn settings_for(&self, c: usize, seed: u64) -> Settings {
        self.settings_of(c, seed).into_owned()
    }

    /// [`Plan::settings_for`] without a copy when not swarming. Swarmed
    /// settings are cheap to build (SwarmSpace's fast path) and are not
    /// cached, so memory stays flat in the number of seeds.
    pub(super) fn settings_of(&self, c: usize, seed: u64) -> Cow<'_, Settings> {
        let cell = &self.cells[c];
        if self.swarm {
            Cow::Owned(cell.swarmed(&cell.space.draw(seed)))
        } else {
            Cow::Borrowed(&cell.settings)
        }
    }

    /// Cell `c` for people: `synchronous_commit=on wal_log_hints=off`.
    pub(super) fn describe(&self, c: usize) -> String {
        let cell = &self.cells[c];
        self.axes
            .iter()
            .zip(&cell.values)
            .map(|(a, v)| format!("{}={v}", a.key))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Every combination of the axes' values, the last axis varying fastest.
fn cartesian(axes: &[Axis]) -> Vec<Vec<String>> {
    axes.iter().fold(vec![Vec::new()], |acc, a| {
        acc.iter()
            .flat_map(|prefix| {
                a.values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect()
    })
}
