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
//! - `images`: `random` with `faults.crash_images = 64`;
//! - `window-power`: exhaustive windows around the first power loss with
//!   `faults.crash_images = 16`, so every crash image of every power loss
//!   in the window is a choice of its own.
//!
//! With `--homes`, a rule that no strategy can find on the defaults runs
//! in its home configuration (`HOMES`: the settings or scenario its own
//! test catches it in) instead, with `--set` on top.

use crate::config;
use crate::run::{NoObserver, RunOptions, run_seed};
use crate::swarm::SwarmSpace;
use crate::window::{Trigger, WindowSpec, window};
use serde_json::{Value, json};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use walsim_model::Settings;
use walsim_model::settings::SchedulerPolicy;

pub const STRATEGIES: &[&str] = &["random", "swarm", "pct", "window", "images", "window-power"];

/// Distinct states per window in the benchmark (a window in a scenario
/// with many processes can otherwise take minutes; a cut window still
/// counts its sequences).
pub const BENCH_MAX_STATES: u64 = 100_000;

/// Crash images per power loss for the `window-power` strategy.
pub const WINDOW_IMAGES: u32 = 16;

/// A rule's home configuration: where its planted bug can show (a
/// scenario, or none for the defaults, and settings), from the test that
/// catches it.
pub struct Home {
    pub rule: &'static str,
    pub scenario: Option<&'static str>,
    pub sets: &'static [&'static str],
    /// The test that catches the bug there.
    pub test: &'static str,
}

/// Home configurations of the rules that need more than the defaults.
pub const HOMES: &[Home] = &[
    Home {
        rule: "hint_bits_wait_for_commit_flush",
        scenario: None,
        sets: &[
            "synchronous_commit=off",
            "full_page_writes=false",
            "faults.process_crash=0",
            "faults.power_loss=0.01",
            "cluster.rel_pages=4",
            "workload.select_percent=50",
            "scheduler.weights.wal_writer=1",
            "scheduler.weights.bgwriter=10",
            "operator=[]",
        ],
        test: "tests/crash_images.rs crash_images_find_hint_bits_set_before_the_commit_flush",
    },
    Home {
        rule: "fsync_control_file",
        scenario: None,
        sets: &[
            "wal_segment_size=\"16kB\"",
            "max_wal_size=\"32kB\"",
            "min_wal_size=\"32kB\"",
            "scheduler.steps=8000",
            "scheduler.weights.checkpoint_request=4",
            "faults.power_loss=0.005",
        ],
        test: "tests/rule_switches.rs fsync_control_file_off_is_caught",
    },
    Home {
        rule: "promotion_picks_newest_timeline",
        scenario: Some("tests/scenarios/double-promotion.toml"),
        sets: &[],
        test: "tests/replication.rs promotion_must_pick_the_newest_timeline",
    },
    Home {
        rule: "rewind_requires_wal_log_hints",
        scenario: Some("tests/scenarios/rewind-hint-bits.toml"),
        sets: &[],
        test: "tests/replication.rs pg_rewind_must_refuse_without_wal_log_hints",
    },
    Home {
        rule: "wal_reader_checks_framing",
        scenario: Some("history-file-before-start"),
        sets: &[],
        test: "tests/replication.rs wal_framing_checks_keep_another_history_from_being_replayed",
    },
    Home {
        rule: "keep_wal_for_standbys",
        scenario: None,
        sets: &[
            "wal_segment_size=\"16kB\"",
            "max_wal_size=\"32kB\"",
            "min_wal_size=\"32kB\"",
            "synchronous_standby_names=",
            "operator=[]",
            "scheduler.steps=4000",
            "scheduler.weights.checkpoint_request=4",
            "wal_keep_size=\"4MB\"",
        ],
        test: "tests/wal_segments.rs keep_wal_for_standbys_off_is_caught",
    },
];

/// A home as text: the scenario and the settings.
pub fn describe(h: &Home) -> String {
    let sets: Vec<String> = h.sets.iter().map(|s| format!("`{s}`")).collect();
    match (h.scenario, sets.is_empty()) {
        (Some(sc), true) => format!("scenario `{sc}` ({})", h.test),
        (Some(sc), false) => format!("scenario `{sc}`, {} ({})", sets.join(" "), h.test),
        (None, _) => format!("{} ({})", sets.join(" "), h.test),
    }
}

/// The home of `rule`, if it has one.
pub fn home_of(rule: &str) -> Option<&'static Home> {
    HOMES.iter().find(|h| h.rule == rule)
}

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
    /// The home configuration the cell ran in (`--homes`), if not the defaults.
    pub home: Option<String>,
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

fn with(home: Option<&Home>, sets: &[String], extra: &[String]) -> Result<Settings, String> {
    let all: Vec<String> = home
        .map_or(&[][..], |h| h.sets)
        .iter()
        .map(|s| s.to_string())
        .chain(sets.iter().cloned())
        .chain(extra.iter().cloned())
        .collect();
    match home.and_then(|h| h.scenario) {
        Some(sc) => {
            crate::scenario::load(sc, toml::Table::new(), &all).map(|s| s.settings).map_err(|e| e.to_string())
        }
        None => config::load(None, &all).map_err(|e| e.to_string()),
    }
}

/// One (rule, strategy) cell.
pub fn measure(
    sets: &[String],
    home: Option<&Home>,
    rule: &str,
    strategy: &str,
    budget: u64,
    depth: u32,
) -> Result<Cell, String> {
    let off = format!("rules.{rule}=false");
    let t0 = Instant::now();
    let mut cell = Cell {
        rule: rule.to_string(),
        strategy: strategy.to_string(),
        runs: None,
        invariant: None,
        spent: 0,
        wall: Duration::ZERO,
        home: home.map(describe),
    };
    match strategy {
        "random" | "swarm" | "pct" | "images" => {
            let extra: Vec<String> = match strategy {
                "pct" => vec![off, "scheduler.policy=pct".into()],
                "images" => vec![off, "faults.crash_images=64".into()],
                _ => vec![off],
            };
            let s = with(home, sets, &extra)?;
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
        "window" | "window-power" => {
            let (extra, trigger) = if strategy == "window" {
                (vec![off], Trigger::Crash)
            } else {
                (vec![off, format!("faults.crash_images={WINDOW_IMAGES}")], Trigger::PowerLoss)
            };
            let s = with(home, sets, &extra)?;
            if s.scheduler.policy != SchedulerPolicy::Random {
                return Err("bench-search: the window strategy needs scheduler.policy=random".into());
            }
            let stop = AtomicBool::new(false);
            let mut seed = 1;
            while cell.spent < budget {
                let spec = WindowSpec {
                    settings: s.clone(),
                    depth,
                    trigger,
                    seeds: vec![seed],
                    max_states: BENCH_MAX_STATES,
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
    homes: bool,
    strategies: &[String],
    on_cell: &dyn Fn(&Cell),
) -> Result<Vec<Cell>, String> {
    if let Some(bad) = strategies.iter().find(|s| !STRATEGIES.contains(&s.as_str())) {
        return Err(format!("bench-search: unknown strategy {bad} (known: {})", STRATEGIES.join(", ")));
    }
    let mut out = Vec::new();
    for rule in rules {
        let home = if homes { home_of(rule) } else { None };
        for st in STRATEGIES.iter().filter(|s| strategies.is_empty() || strategies.iter().any(|x| x == *s)) {
            let c = measure(sets, home, rule, st, budget, depth)?;
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
        "Runs to the first violation (wall time, invariant); — = not found in {budget} runs. Window: {depth} events around the first crash; window-power: {depth} events around the first power loss, {WINDOW_IMAGES} crash images each.\n\n| rule off | {} |\n|---|{}\n",
        STRATEGIES.join(" | "),
        "---|".repeat(STRATEGIES.len())
    );
    let mut rules: Vec<&str> = Vec::new();
    for c in cells {
        if !rules.contains(&c.rule.as_str()) {
            rules.push(&c.rule);
        }
    }
    for r in rules.iter().copied() {
        let row: Vec<String> = STRATEGIES
            .iter()
            .map(|st| cells.iter().find(|c| c.rule == r && c.strategy == *st).map_or("".into(), cell_text))
            .collect();
        let at = cells.iter().find(|c| c.rule == r).and_then(|c| c.home.as_deref());
        let name = if at.is_some() { format!("`{r}` (home)") } else { format!("`{r}`") };
        s.push_str(&format!("| {name} | {} |\n", row.join(" | ")));
    }
    let found: Vec<usize> = STRATEGIES
        .iter()
        .map(|st| cells.iter().filter(|c| c.strategy == *st && c.runs.is_some()).count())
        .collect();
    let n = rules.len();
    let summary: Vec<String> = STRATEGIES.iter().zip(&found).map(|(st, f)| format!("{st} {f}/{n}")).collect();
    s.push_str(&format!("\nFound: {}.\n", summary.join(", ")));
    let mut homes: Vec<(&str, &str)> = Vec::new();
    for c in cells {
        if let Some(h) = &c.home
            && !homes.iter().any(|(r, _)| *r == c.rule)
        {
            homes.push((&c.rule, h));
        }
    }
    if !homes.is_empty() {
        s.push_str("\n(home): run in the rule's home configuration (`--homes`), not the defaults:\n\n");
        for (r, h) in homes {
            s.push_str(&format!("- `{r}`: {h}\n"));
        }
    }
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
            "home": c.home,
            "wall_seconds": c.wall.as_secs_f64(),
        })).collect::<Vec<_>>(),
    })
}
