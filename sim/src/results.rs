//! The results of a sweep (`walsim explore`, `walsim merge`): the JSON
//! schema, and the table as text or Markdown.
//!
//! Everything except `perf` is a function of the configuration, the matrix
//! and the seeds, so it is identical for any `--jobs` and for the same
//! seeds split into shards and merged; wall-clock figures live only under
//! `perf`.

use crate::args::SeedRange;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One sweep's results.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepResults {
    pub walsim_version: String,
    /// The effective configuration before the matrix and swarm apply.
    pub config: serde_json::Value,
    pub matrix: Vec<AxisValues>,
    pub seeds: SeedRange,
    /// Which shards these results cover, when not all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    pub swarm: bool,
    /// Failures listed (and saved) per cell and invariant: the lowest seeds.
    pub save_limit: usize,
    /// Ctrl-C (or SIGTERM) stopped the sweep early.
    pub interrupted: bool,
    pub totals: Counts,
    pub cells: Vec<CellResult>,
    pub failures: Vec<Failure>,
    pub perf: Perf,
}

/// A matrix axis: dotted key and values.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxisValues {
    pub key: String,
    pub values: Vec<String>,
}

/// The shards (`K` of `N`) that results include.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    pub shards: u64,
    pub included: Vec<u64>,
}

/// Run counts by outcome.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub runs: u64,
    pub ok: u64,
    pub refused: u64,
    pub stuck: u64,
    pub violations: u64,
    /// Runs in which the proposal's premise (`standby_covers_primary_data`)
    /// failed, whether expected to hold there (a violation) or not (an
    /// observation under `commit`).
    #[serde(default)]
    pub premise_broken: u64,
    /// Runs in which an old primary rejoined with pages beyond the fork
    /// point in its data files (`failback_premise`, observed).
    #[serde(default)]
    pub failback_premise_broken: u64,
    /// Events applied, all runs together.
    pub events: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.runs += o.runs;
        self.ok += o.ok;
        self.refused += o.refused;
        self.stuck += o.stuck;
        self.violations += o.violations;
        self.premise_broken += o.premise_broken;
        self.failback_premise_broken += o.failback_premise_broken;
        self.events += o.events;
    }
}

/// The counts of all cells together.
pub fn totals(cells: &[CellResult]) -> Counts {
    let mut t = Counts::default();
    cells.iter().for_each(|c| t.add(&c.counts));
    t
}

/// One cell of the matrix.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellResult {
    /// One value per matrix axis, in the matrix's order.
    pub values: Vec<String>,
    #[serde(flatten)]
    pub counts: Counts,
    /// Per violated invariant (by name).
    pub invariants: BTreeMap<String, InvariantCount>,
    /// Per coverage mark (by name, every mark): the runs that reached it
    /// (model/src/marks.rs).
    #[serde(default)]
    pub marks: BTreeMap<String, u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvariantCount {
    pub count: u64,
    pub first_seed: u64,
}

/// A failing run, re-run with recording.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// Index into `cells`.
    pub cell: usize,
    pub seed: u64,
    pub invariant: String,
    pub detail: String,
    pub events: u64,
    pub trace_hash: String,
    /// The fault rates the run used (after swarm).
    pub faults: BTreeMap<String, f64>,
    /// The `walsim run` command that reproduces it.
    pub command: String,
    /// The saved trace file, with `--save-failures`.
    pub file: Option<String>,
}

/// Timing: the only part that differs between equal sweeps.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Perf {
    /// Wall-clock time (summed over merged inputs).
    pub wall_seconds: f64,
    /// CPU time the worker threads spent inside runs, summed over threads
    /// and cells (thread CPU clock; wall time where there is none).
    pub cpu_seconds: f64,
    pub jobs: usize,
    pub runs_per_second: f64,
    /// Events per second of wall-clock time.
    pub events_per_second: f64,
    /// Per cell: events per CPU second (one thread's speed).
    pub cells: Vec<CellPerf>,
}

#[derive(Clone, Copy, PartialEq, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellPerf {
    /// CPU time of this cell's runs.
    pub cpu_seconds: f64,
    pub events_per_second: f64,
}

impl CellPerf {
    pub fn new(cpu_seconds: f64, events: u64) -> CellPerf {
        CellPerf { cpu_seconds, events_per_second: per_second(events as f64, cpu_seconds) }
    }
}

impl Perf {
    /// Rates from totals.
    pub fn new(wall_seconds: f64, jobs: usize, totals: &Counts, cells: Vec<CellPerf>) -> Perf {
        Perf {
            wall_seconds,
            cpu_seconds: cells.iter().map(|c| c.cpu_seconds).sum(),
            jobs,
            runs_per_second: per_second(totals.runs as f64, wall_seconds),
            events_per_second: per_second(totals.events as f64, wall_seconds),
            cells,
        }
    }
}

fn per_second(n: f64, secs: f64) -> f64 {
    if secs > 0.0 { n / secs } else { 0.0 }
}

/// How results are printed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// `1234567.0` → `1.23M`.
pub fn si(x: f64) -> String {
    match x {
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

/// A matrix value as the table shows it: booleans PostgreSQL-style.
fn show_value(v: &str) -> &str {
    match v {
        "true" => "on",
        "false" => "off",
        v => v,
    }
}

impl SweepResults {
    /// Invariants violated anywhere, in a fixed order.
    fn violated(&self) -> Vec<&str> {
        let mut names: Vec<&str> =
            self.cells.iter().flat_map(|c| c.invariants.keys().map(String::as_str)).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The table: a header row and one row per cell.
    fn rows(&self) -> Vec<Vec<String>> {
        let violated = self.violated();
        let mut head: Vec<String> =
            self.matrix.iter().map(|a| a.key.rsplit('.').next().unwrap_or(&a.key).to_string()).collect();
        head.extend(
            ["runs", "ok", "refused", "stuck", "premise broken", "failback premise broken"].map(String::from),
        );
        if violated.is_empty() {
            head.push("violations".into());
        }
        head.extend(violated.iter().map(|s| s.to_string()));
        head.push("events/s".into());
        let mut rows = vec![head];
        for (i, c) in self.cells.iter().enumerate() {
            let mut row: Vec<String> = c.values.iter().map(|v| show_value(v).to_string()).collect();
            let n = &c.counts;
            row.extend(
                [n.runs, n.ok, n.refused, n.stuck, n.premise_broken, n.failback_premise_broken]
                    .map(|x| x.to_string()),
            );
            if violated.is_empty() {
                row.push("0".into());
            }
            for inv in &violated {
                row.push(match c.invariants.get(*inv) {
                    Some(v) => format!("{} (seed {})", v.count, v.first_seed),
                    None => "-".into(),
                });
            }
            row.push(self.perf.cells.get(i).map_or("-".into(), |p| si(p.events_per_second)));
            rows.push(row);
        }
        rows
    }

    fn summary(&self) -> Vec<String> {
        let t = &self.totals;
        let mut lines = vec![format!(
            "{} runs ({} cells, seeds {}{}{}): {} ok, {} refused, {} stuck, {} violations",
            t.runs,
            self.cells.len(),
            self.seeds,
            match &self.coverage {
                Some(c) => format!(", shards {:?} of {}", c.included, c.shards),
                None => String::new(),
            },
            if self.swarm { ", swarm" } else { "" },
            t.ok,
            t.refused,
            t.stuck,
            t.violations
        )];
        let p = &self.perf;
        lines.push(format!(
            "{:.1} s wall on {} jobs: {} runs/s, {} events/s",
            p.wall_seconds,
            p.jobs,
            si(p.runs_per_second),
            si(p.events_per_second)
        ));
        lines.extend(self.marks_lines());
        let saved = self.failures.iter().filter(|f| f.file.is_some()).count();
        if saved > 0 {
            lines.push(format!(
                "saved {saved} failing traces (walsim replay FILE --log; walsim shrink FILE -o OUT)"
            ));
        } else if t.violations > 0 {
            lines.push(
                "to reproduce a failure: --save-failures DIR, or --json for each one's walsim run command \
                 (swarm included)"
                    .into(),
            );
        }
        if self.interrupted {
            lines.push("interrupted: the table covers the runs that finished".into());
        }
        lines
    }

    /// Runs that reached each coverage mark, all cells together, in the
    /// order the cells list them (results of older versions have none).
    pub fn mark_totals(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for c in &self.cells {
            for (m, n) in &c.marks {
                match out.iter_mut().find(|(k, _)| k == m) {
                    Some((_, t)) => *t += n,
                    None => out.push((m.clone(), *n)),
                }
            }
        }
        out
    }

    /// "sometimes: …" (each mark reached, with its run count) and "never
    /// reached: …" — a sweep whose invariants held proves little about a
    /// state it never reached.
    fn marks_lines(&self) -> Vec<String> {
        let totals = self.mark_totals();
        if totals.is_empty() {
            return Vec::new();
        }
        let reached: Vec<String> =
            totals.iter().filter(|(_, n)| *n > 0).map(|(m, n)| format!("{m} {n}")).collect();
        let never: Vec<&str> = totals.iter().filter(|(_, n)| *n == 0).map(|(m, _)| m.as_str()).collect();
        let mut lines = vec![format!(
            "sometimes (runs reaching each mark): {}",
            if reached.is_empty() { "none".to_string() } else { reached.join(", ") }
        )];
        if !never.is_empty() {
            lines.push(format!("never reached: {} (no run of this sweep got there)", never.join(", ")));
        }
        lines
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => serde_json::to_string_pretty(self).expect("results serialize") + "\n",
            Format::Text => self.render_text(),
            Format::Markdown => self.render_markdown(),
        }
    }

    fn render_text(&self) -> String {
        let rows = self.rows();
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
            .collect();
        let mut s = String::new();
        for row in &rows {
            let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(s, "{}", line.join("  ").trim_end());
        }
        for l in self.summary() {
            let _ = writeln!(s, "{l}");
        }
        s
    }

    fn render_markdown(&self) -> String {
        let rows = self.rows();
        let mut s = String::new();
        for (i, row) in rows.iter().enumerate() {
            let _ = writeln!(s, "| {} |", row.join(" | "));
            if i == 0 {
                let _ = writeln!(s, "|{}", "---|".repeat(row.len()));
            }
        }
        s.push('\n');
        for l in self.summary() {
            let _ = writeln!(s, "{l}  ");
        }
        s
    }
}
