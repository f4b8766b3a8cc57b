//! `walsim merge`: combine shard results (`walsim explore --shard K/N
//! --json`) into one table.
//!
//! Counts add up and first failing seeds take the minimum, so merging all
//! N shards gives exactly the results (all but `perf`) of the unsharded
//! sweep. Inputs must be the same sweep (version, config, matrix, seeds,
//! swarm) and must not overlap; missing shards are allowed and shown.

use crate::results::{CellPerf, CellResult, Counts, Coverage, Failure, Perf, SweepResults, totals};
use std::collections::BTreeSet;
use std::path::Path;
use walsim_model::Invariant;

/// Reads one `explore --json` output.
pub fn load(path: &Path) -> Result<SweepResults, String> {
    crate::input::read_json_limited(
        path,
        crate::input::JSON_LIMIT,
        "results file",
        "the JSON of walsim explore --json",
    )
}

/// The shards an input covers.
fn shards_of(r: &SweepResults) -> (u64, Vec<u64>) {
    match &r.coverage {
        Some(c) => (c.shards, c.included.clone()),
        None => (1, vec![1]),
    }
}

/// Merges `inputs` (name, results).
pub fn merge(inputs: &[(String, SweepResults)]) -> Result<SweepResults, String> {
    let ((first_name, first), _) = inputs.split_first().ok_or("merge needs at least one input")?;
    let (count, _) = shards_of(first);
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    for (name, r) in inputs {
        let differs =
            |what: &str| format!("{name} is not the same sweep as {first_name}: the {what} differs");
        if r.walsim_version != first.walsim_version {
            return Err(differs("walsim version"));
        }
        if r.config != first.config {
            return Err(differs("config"));
        }
        if r.matrix != first.matrix || r.cells.len() != first.cells.len() {
            return Err(differs("matrix"));
        }
        if r.seeds != first.seeds || r.swarm != first.swarm || r.save_limit != first.save_limit {
            return Err(differs("seed range, swarm or save limit"));
        }
        let (n, included) = shards_of(r);
        if n != count {
            return Err(format!("{name} is split into {n} shards, {first_name} into {count}"));
        }
        for k in included {
            if !seen.insert(k) {
                return Err(format!("{name}: shard {k}/{count} is given twice"));
            }
        }
    }
    let mut out = first.clone();
    out.cells = merge_cells(inputs);
    out.totals = totals(&out.cells);
    out.failures = merge_failures(inputs, first.save_limit);
    out.interrupted = inputs.iter().any(|(_, r)| r.interrupted);
    out.coverage = (seen.len() as u64 != count)
        .then(|| Coverage { shards: count, included: seen.into_iter().collect() });
    out.perf = merge_perf(inputs, &out.totals);
    Ok(out)
}

fn merge_cells(inputs: &[(String, SweepResults)]) -> Vec<CellResult> {
    let mut cells = inputs[0].1.cells.clone();
    for (_, r) in &inputs[1..] {
        for (cell, o) in cells.iter_mut().zip(&r.cells) {
            cell.counts.add(&o.counts);
            for (m, n) in &o.marks {
                *cell.marks.entry(m.clone()).or_default() += n;
            }
            for (inv, v) in &o.invariants {
                cell.invariants
                    .entry(inv.clone())
                    .and_modify(|e| {
                        e.count += v.count;
                        e.first_seed = e.first_seed.min(v.first_seed);
                    })
                    .or_insert(*v);
            }
        }
    }
    cells
}

/// The lowest `limit` seeds per cell and invariant, in explore's order.
fn merge_failures(inputs: &[(String, SweepResults)], limit: usize) -> Vec<Failure> {
    let rank = |name: &str| Invariant::from_name(name).map_or(usize::MAX, |i| i as usize);
    let mut all: Vec<Failure> = inputs.iter().flat_map(|(_, r)| r.failures.iter().cloned()).collect();
    all.sort_by(|a, b| {
        (a.cell, rank(&a.invariant), &a.invariant, a.seed).cmp(&(
            b.cell,
            rank(&b.invariant),
            &b.invariant,
            b.seed,
        ))
    });
    let mut out: Vec<Failure> = Vec::new();
    let mut run = 0;
    for f in all {
        let same = out.last().is_some_and(|p| p.cell == f.cell && p.invariant == f.invariant);
        run = if same { run + 1 } else { 1 };
        if run <= limit {
            out.push(f);
        }
    }
    out
}

fn merge_perf(inputs: &[(String, SweepResults)], totals: &Counts) -> Perf {
    let n = inputs[0].1.cells.len();
    let cells = (0..n)
        .map(|i| {
            let cpu: f64 =
                inputs.iter().filter_map(|(_, r)| r.perf.cells.get(i)).map(|c| c.cpu_seconds).sum();
            let events: u64 = inputs.iter().map(|(_, r)| r.cells[i].counts.events).sum();
            CellPerf::new(cpu, events)
        })
        .collect();
    let wall = inputs.iter().map(|(_, r)| r.perf.wall_seconds).sum();
    let jobs = inputs.iter().map(|(_, r)| r.perf.jobs).max().unwrap_or(1);
    Perf::new(wall, jobs, totals, cells)
}
