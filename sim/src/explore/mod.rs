//! `walsim explore`: many seeds over a matrix of settings, in parallel.
//!
//! Every (cell, seed) run is independent, and the per-cell tallies combine
//! by sums and minima, so the results do not depend on how rayon splits
//! the work, on `--jobs`, or on sharding. Runs do not record their draws
//! (it is the fast path); a failing seed is re-run with recording
//! afterwards to save its trace, which is exact because runs are
//! deterministic. Memory stays flat in the number of seeds: only counts
//! and the lowest failing seeds are kept.
//!
//! Two parts: `plan.rs` says what runs (the cells, the seeds, each run's
//! swarm draw; no I/O), `sweep.rs` runs it (rayon, tallies, the failures
//! re-run and saved, progress and Ctrl-C). This module is the entry that
//! puts them together for the command line.

mod plan;
mod sweep;

pub use plan::{Cell, DEFAULT_MATRIX, DEFAULT_SEEDS_PER_CELL, Plan, Spec};
pub use sweep::{
    STOP, Sweep, SweepOptions, progress_bar, progress_spinner, results, stop_on_ctrl_c, sweep,
    thread_cpu_time,
};

use crate::results::SweepResults;
use std::path::Path;

/// The whole command: plan, sweep with a progress bar and Ctrl-C
/// handling, results (failures saved to `save_dir`).
pub fn explore(spec: &Spec, jobs: usize, save_dir: Option<&Path>) -> Result<SweepResults, String> {
    if jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let plan = Plan::new(spec)?;
    if let Some(dir) = save_dir {
        check_save_dir(dir)?;
    }
    let bar = progress_bar(plan.runs());
    let on_run = || {
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    let sw = sweep(&plan, &SweepOptions { jobs, stop: stop_on_ctrl_c(), on_run: &on_run })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    results(&plan, &sw, save_dir)
}

/// Makes sure failures can be saved in `dir` before a sweep starts, so a
/// bad `--save-failures` costs nothing: creates it if need be, and checks
/// that it is a directory one can write a file in.
pub fn check_save_dir(dir: &Path) -> Result<(), String> {
    let bad = |why: String| format!("--save-failures {}: {why}", dir.display());
    if dir.exists() && !dir.is_dir() {
        return Err(bad("exists and is not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create the directory: {e}")))?;
    let probe = dir.join(format!(".walsim-write-check-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| bad(format!("cannot write in the directory: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// One worker per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
