//! Sweeping a [`Plan`]: running it in parallel with rayon, per-cell
//! tallies (counts, marks, the lowest failing seeds), the CPU clock, and
//! afterwards the results, with each listed failure re-run with recording
//! and its trace saved. Also the terminal side: progress bars and Ctrl-C.

use super::plan::Plan;
use crate::args::Shard;
use crate::config;
use crate::report::hash_hex;
use crate::results::{
    AxisValues, CellPerf, CellResult, Counts, Coverage, Failure, InvariantCount, Perf, SweepResults, totals,
};
use crate::run::{NoObserver, Outcome, RunOptions, RunResult, run_seed};
use crate::swarm::SwarmSpace;
use crate::trace::{Trace, WALSIM_VERSION};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use walsim_model::Invariant;
use walsim_model::marks::Mark;

/// Counts of one cell, and the lowest failing seeds per invariant.
#[derive(Clone, Default, Debug)]
struct Tally {
    counts: Counts,
    cpu: Duration,
    invariants: BTreeMap<Invariant, (u64, Vec<u64>)>,
    /// Runs that reached each mark, in `Mark::all()`'s order.
    marks: Vec<u64>,
}

impl Tally {
    fn add(&mut self, r: &RunResult, keep: usize, took: Duration) {
        let c = &mut self.counts;
        c.runs += 1;
        c.events += r.events;
        match r.outcome {
            Outcome::Ok => c.ok += 1,
            Outcome::Refused => c.refused += 1,
            Outcome::Stuck => c.stuck += 1,
            Outcome::Violation => c.violations += 1,
        }
        let premise = walsim_model::Invariant::StandbyCoversPrimaryData;
        if r.invariant() == Some(premise) || r.observations.iter().any(|o| o.invariant == premise) {
            c.premise_broken += 1;
        }
        if r.observations.iter().any(|o| o.invariant == walsim_model::Invariant::FailbackPremise) {
            c.failback_premise_broken += 1;
        }
        self.cpu += took;
        let all = Mark::all();
        self.marks.resize(all.len(), 0);
        for (n, m) in self.marks.iter_mut().zip(all) {
            *n += u64::from(r.marks.contains(m));
        }
        if let Some(inv) = r.invariant() {
            let (n, lowest) = self.invariants.entry(inv).or_default();
            *n += 1;
            keep_lowest(lowest, &[r.seed], keep);
        }
    }

    fn merge(mut self, o: Tally, keep: usize) -> Tally {
        self.counts.add(&o.counts);
        self.cpu += o.cpu;
        self.marks.resize(self.marks.len().max(o.marks.len()), 0);
        for (n, m) in self.marks.iter_mut().zip(o.marks) {
            *n += m;
        }
        for (inv, (n, seeds)) in o.invariants {
            let (m, lowest) = self.invariants.entry(inv).or_default();
            *m += n;
            keep_lowest(lowest, &seeds, keep);
        }
        self
    }
}

fn mark_index(m: Mark) -> usize {
    Mark::all().iter().position(|&x| x == m).expect("a mark")
}

/// Adds `seeds` to the sorted `lowest` and keeps the `keep` lowest.
fn keep_lowest(lowest: &mut Vec<u64>, seeds: &[u64], keep: usize) {
    lowest.extend_from_slice(seeds);
    lowest.sort_unstable();
    lowest.dedup();
    lowest.truncate(keep);
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), so
/// `perf.cpu_seconds` is time the workers computed, not time they waited
/// for a core. `None` where the platform has no such clock.
pub fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
        }
    }
    None
}

/// Measures one run: thread CPU time where available, else wall time.
struct CpuClock {
    cpu: Option<Duration>,
    wall: Instant,
}

impl CpuClock {
    fn start() -> CpuClock {
        CpuClock { cpu: thread_cpu_time(), wall: Instant::now() }
    }

    fn elapsed(&self) -> Duration {
        match (self.cpu, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => self.wall.elapsed(),
        }
    }
}

/// How to run a sweep.
pub struct SweepOptions<'a> {
    pub jobs: usize,
    /// Checked before each run: once set, no new run starts.
    pub stop: &'a AtomicBool,
    /// Called after each run (progress).
    pub on_run: &'a (dyn Fn() + Sync),
}

/// What a sweep ran.
#[derive(Clone, Debug)]
pub struct Sweep {
    tallies: Vec<Tally>,
    pub wall: Duration,
    pub jobs: usize,
    pub interrupted: bool,
}

/// Runs the plan on `opts.jobs` threads.
pub fn sweep(plan: &Plan, opts: &SweepOptions<'_>) -> Result<Sweep, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs)
        .build()
        .map_err(|e| format!("cannot start {} worker threads: {e}", opts.jobs))?;
    let keep = plan.save_limit.max(1);
    let n = plan.cells.len();
    let start = Instant::now();
    let tallies = pool.install(|| {
        (0..plan.runs())
            .into_par_iter()
            .fold(
                || vec![Tally::default(); n],
                |mut tallies, i| {
                    if opts.stop.load(Ordering::Relaxed) {
                        return tallies;
                    }
                    let (c, seed) = plan.item(i);
                    let t0 = CpuClock::start();
                    let settings = plan.settings_of(c, seed);
                    let r = run_seed(&settings, seed, RunOptions::default(), &mut NoObserver);
                    tallies[c].add(&r, keep, t0.elapsed());
                    (opts.on_run)();
                    tallies
                },
            )
            .reduce(
                || vec![Tally::default(); n],
                |a, b| a.into_iter().zip(b).map(|(x, y)| x.merge(y, keep)).collect(),
            )
    });
    let done: u64 = tallies.iter().map(|t| t.counts.runs).sum();
    Ok(Sweep { tallies, wall: start.elapsed(), jobs: opts.jobs, interrupted: done < plan.runs() })
}

/// The results of a sweep. Re-runs the listed failures with recording and,
/// with `save_dir`, saves their traces there.
pub fn results(plan: &Plan, sw: &Sweep, save_dir: Option<&Path>) -> Result<SweepResults, String> {
    let wanted: Vec<(usize, Invariant, u64)> = sw
        .tallies
        .iter()
        .enumerate()
        .flat_map(|(c, t)| {
            t.invariants.iter().flat_map(move |(&inv, (_, seeds))| {
                seeds.iter().take(plan.save_limit).map(move |&s| (c, inv, s))
            })
        })
        .collect();
    if let Some(dir) = save_dir
        && !wanted.is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let failures = wanted
        .par_iter()
        .map(|&(c, inv, seed)| failure(plan, c, inv, seed, save_dir))
        .collect::<Result<Vec<_>, String>>()?;
    let cells: Vec<CellResult> = plan
        .cells
        .iter()
        .zip(&sw.tallies)
        .map(|(cell, t)| CellResult {
            values: cell.values.clone(),
            counts: t.counts,
            invariants: t
                .invariants
                .iter()
                .map(|(inv, (n, seeds))| {
                    (inv.name().to_string(), InvariantCount { count: *n, first_seed: seeds[0] })
                })
                .collect(),
            marks: Mark::all()
                .into_iter()
                .map(|m| (m.name(), t.marks.get(mark_index(m)).copied().unwrap_or(0)))
                .collect(),
        })
        .collect();
    let totals = totals(&cells);
    let cell_perf = sw.tallies.iter().map(|t| CellPerf::new(t.cpu.as_secs_f64(), t.counts.events)).collect();
    Ok(SweepResults {
        walsim_version: WALSIM_VERSION.to_string(),
        config: serde_json::to_value(&plan.base).expect("settings serialize"),
        matrix: plan
            .axes
            .iter()
            .map(|a| AxisValues { key: a.key.clone(), values: a.values.clone() })
            .collect(),
        seeds: plan.seeds,
        coverage: (plan.shard != Shard::ALL)
            .then(|| Coverage { shards: plan.shard.count, included: vec![plan.shard.index] }),
        swarm: plan.swarm,
        save_limit: plan.save_limit,
        interrupted: sw.interrupted,
        totals,
        cells,
        failures,
        perf: Perf::new(sw.wall.as_secs_f64(), sw.jobs, &totals, cell_perf),
    })
}

/// Re-runs one failing seed with recording, and saves its trace.
fn failure(plan: &Plan, c: usize, inv: Invariant, seed: u64, dir: Option<&Path>) -> Result<Failure, String> {
    let settings = plan.settings_for(c, seed);
    let r =
        run_seed(&settings, seed, RunOptions { record: true, log: false, max_events: None }, &mut NoObserver);
    if r.invariant() != Some(inv) {
        return Err(format!(
            "nondeterminism: seed {seed} in cell {} violated {inv} but its re-run gave {}",
            plan.describe(c),
            r.detail
        ));
    }
    let faults = SwarmSpace::of(&settings).kinds().iter().cloned().collect();
    let file = match dir {
        Some(dir) => {
            let name = format!("{inv}-{}-seed{seed}.walsim", slug(&plan.cells[c].values));
            let path = dir.join(name);
            let note = format!("walsim explore: cell {}, seed {seed}", plan.describe(c));
            Trace::of_run(&settings, &r, note).save(&path)?;
            Some(path.display().to_string())
        }
        None => None,
    };
    Ok(Failure {
        cell: c,
        seed,
        invariant: inv.name().to_string(),
        detail: r.detail,
        events: r.events,
        trace_hash: hash_hex(r.trace_hash),
        faults,
        command: config::run_command(&settings, seed),
        file,
    })
}

/// Matrix values as a file-name part: `on-data_flush-naive-off`.
fn slug(values: &[String]) -> String {
    let clean = |v: &String| -> String {
        v.chars().map(|ch| if ch.is_ascii_alphanumeric() || "_.".contains(ch) { ch } else { '_' }).collect()
    };
    let parts: Vec<String> = values.iter().map(clean).collect();
    if parts.is_empty() { "base".into() } else { parts.join("-") }
}

/// Set by Ctrl-C (and SIGTERM): the sweep stops starting runs.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler once per process and clears [`STOP`]. A
/// second Ctrl-C exits at once.
pub fn stop_on_ctrl_c() -> &'static AtomicBool {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    });
    STOP.store(false, Ordering::SeqCst);
    &STOP
}

/// A progress bar on stderr when it is a terminal; `None` otherwise.
pub fn progress_bar(total: u64) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} runs, eta {eta}")
        .expect("valid template");
    bar.set_style(style);
    Some(bar)
}

/// A counter on stderr when it is a terminal (no known total); `None`
/// otherwise.
pub fn progress_spinner(what: &str) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template(&format!("{{elapsed_precise}} {{spinner}} {{pos}} {what}, {{per_sec}}"))
            .expect("valid template");
    bar.set_style(style);
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_excludes_waiting() {
        let Some(t0) = thread_cpu_time() else { return };
        std::thread::sleep(Duration::from_millis(300));
        let slept = thread_cpu_time().unwrap() - t0;
        assert!(slept < Duration::from_millis(100), "sleeping is not CPU time: {slept:?}");
        let c = CpuClock::start();
        let mut x = 0u64;
        while c.wall.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(c.elapsed() > Duration::from_millis(5), "a busy loop is: {:?}", c.elapsed());
    }
}
