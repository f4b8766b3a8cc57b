//! `walsim bench-search`: how fast each search strategy finds each planted
//! bug. For every rule switch in `[rules]` turned off alone, and every
//! strategy, runs until the first violation within a fixed budget of runs
//! and reports the runs and wall time it took (or that it did not find it).
//!
//! Strategies (each gets the same budget of runs; a window's sequence is
//! finished to a verdict, so it counts as a run):
//! - `random`: the weighted random policy, configured fault rates;
//! - `swarm`: the same with swarm testing's per-seed fault mix;
//! - `pct`: `scheduler.policy = "pct"` (depth 3), configured rates;
//! - `window`: exhaustive windows of `--window` events around the first
//!   crash (the default story's `stop_immediate`), prefix seeds 1, 2, ...;
//! - `images`: `random` with `faults.crash_images = 64`.

use crate::config;
use crate::run::{NoObserver, RunOptions, run_seed};
use crate::swarm::SwarmSpace;
use crate::window::{Trigger, WindowSpec, window};
use serde_json::{Value, json};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use walsim_model::Settings;
use walsim_model::settings::SchedulerPolicy;

pub const STRATEGIES: &[&str] = &["random", "swarm", "pct", "window", "images"];

/// One cell of the table.
#[derive(Clone, Debug)]
pub struct Cell {
    pub rule: String,
    pub strategy: String,
    /// Runs until the first violation (1-based), if found in the budget.
    pub runs: Option<u64>,
    pub invariant: Option<String>,
    /// Runs made (the budget when not found).
    pub spent: u64,
    pub wall: Duration,
}

/// The rule switches of the configuration (`[rules]` booleans that are on).
pub fn rules_of(s: &Settings) -> Vec<String> {
    let table = config::to_table(s);
    table
        .get("rules")
        .and_then(toml::Value::as_table)
        .map(|t| t.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default()
}

fn with(sets: &[String], extra: &[String]) -> Result<Settings, String> {
    let all: Vec<String> = sets.iter().chain(extra).cloned().collect();
    config::load(None, &all).map_err(|e| e.to_string())
}

/// One (rule, strategy) cell.
pub fn measure(sets: &[String], rule: &str, strategy: &str, budget: u64, depth: u32) -> Result<Cell, String> {
    let off = format!("rules.{rule}=false");
    let t0 = Instant::now();
    let mut cell = Cell {
        rule: rule.to_string(),
        strategy: strategy.to_string(),
        runs: None,
        invariant: None,
        spent: 0,
        wall: Duration::ZERO,
    };
    match strategy {
        "random" | "swarm" | "pct" | "images" => {
            let extra: Vec<String> = match strategy {
                "pct" => vec![off, "scheduler.policy=pct".into()],
                "images" => vec![off, "faults.crash_images=64".into()],
                _ => vec![off],
            };
            let s = with(sets, &extra)?;
            let space = SwarmSpace::of(&s);
            for seed in 1..=budget {
                cell.spent = seed;
                let swarmed;
                let settings = if strategy == "swarm" {
                    swarmed = space.settings(&space.draw(seed)).unwrap_or_else(|| s.clone());
                    &swarmed
                } else {
                    &s
                };
                let r = run_seed(settings, seed, RunOptions::default(), &mut NoObserver);
                if let Some(v) = r.invariant() {
                    cell.runs = Some(seed);
                    cell.invariant = Some(v.name().to_string());
                    break;
                }
            }
        }
        "window" => {
            let s = with(sets, &[off])?;
            if s.scheduler.policy != SchedulerPolicy::Random {
                return Err("bench-search: the window strategy needs scheduler.policy=random".into());
            }
            let stop = AtomicBool::new(false);
            let mut seed = 1;
            while cell.spent < budget {
                let spec = WindowSpec {
                    settings: s.clone(),
                    depth,
                    trigger: Trigger::Crash,
                    seeds: vec![seed],
                    max_states: crate::window::DEFAULT_MAX_STATES,
                    stop_at_violation: true,
                    max_sequences: budget - cell.spent,
                };
                let r = window(&spec, seed, &stop, &|| {});
                if let Some(at) = r.first_violation_at {
                    cell.runs = Some(cell.spent + at);
                    cell.invariant = r
                        .violating
                        .first()
                        .and_then(|(_, _, res)| res.invariant())
                        .map(|i| i.name().to_string());
                    cell.spent += at;
                    break;
                }
                // A window without a trigger still costs one run (its prefix).
                cell.spent += r.sequences.max(1);
                seed += 1;
            }
        }
        other => return Err(format!("bench-search: unknown strategy {other}")),
    }
    cell.wall = t0.elapsed();
    Ok(cell)
}

/// The whole table.
pub fn bench(
    sets: &[String],
    rules: &[String],
    budget: u64,
    depth: u32,
    on_cell: &dyn Fn(&Cell),
) -> Result<Vec<Cell>, String> {
    let mut out = Vec::new();
    for rule in rules {
        for st in STRATEGIES {
            let c = measure(sets, rule, st, budget, depth)?;
            on_cell(&c);
            out.push(c);
        }
    }
    Ok(out)
}

fn cell_text(c: &Cell) -> String {
    let secs = c.wall.as_secs_f64();
    match (&c.runs, &c.invariant) {
        (Some(n), Some(inv)) => format!("{n} ({secs:.2} s) {inv}"),
        _ => format!("— ({} runs, {secs:.2} s)", c.spent),
    }
}

/// The table as Markdown: one row per rule, one column per strategy; a
/// cell is runs to the first violation (wall time) and the invariant, or
/// "—" with the budget spent.
pub fn markdown(cells: &[Cell], budget: u64, depth: u32) -> String {
    let mut s = format!(
        "Runs to the first violation (wall time, invariant); — = not found in {budget} runs. Window: {depth} events around the first crash.\n\n| rule off | {} |\n|---|{}\n",
        STRATEGIES.join(" | "),
        "---|".repeat(STRATEGIES.len())
    );
    let mut rules: Vec<&str> = Vec::new();
    for c in cells {
        if !rules.contains(&c.rule.as_str()) {
            rules.push(&c.rule);
        }
    }
    for r in rules {
        let row: Vec<String> = STRATEGIES
            .iter()
            .map(|st| cells.iter().find(|c| c.rule == r && c.strategy == *st).map_or("".into(), cell_text))
            .collect();
        s.push_str(&format!("| `{r}` | {} |\n", row.join(" | ")));
    }
    let found: Vec<usize> = STRATEGIES
        .iter()
        .map(|st| cells.iter().filter(|c| c.strategy == *st && c.runs.is_some()).count())
        .collect();
    let n = cells.iter().filter(|c| c.strategy == STRATEGIES[0]).count();
    let summary: Vec<String> = STRATEGIES.iter().zip(&found).map(|(st, f)| format!("{st} {f}/{n}")).collect();
    s.push_str(&format!("\nFound: {}.\n", summary.join(", ")));
    s
}

pub fn json(cells: &[Cell], budget: u64, depth: u32) -> Value {
    json!({
        "budget": budget,
        "window": depth,
        "strategies": STRATEGIES,
        "cells": cells.iter().map(|c| json!({
            "rule": c.rule,
            "strategy": c.strategy,
            "runs": c.runs,
            "invariant": c.invariant,
            "spent": c.spent,
            "wall_seconds": c.wall.as_secs_f64(),
        })).collect::<Vec<_>>(),
    })
}
