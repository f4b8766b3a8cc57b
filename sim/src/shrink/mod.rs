//! `walsim shrink`: minimise a failing run while the same invariant still
//! fails, the way Hypothesis shrinks: by editing the choice sequence and
//! replaying, so it works for any model without hand-written shrinkers.
//!
//! Passes, repeated to a fixed point (or until the attempt budget is
//! spent):
//! - semantic ([`semantic`]): the run as a list of events, re-encoded into
//!   draws after each edit, so an edit keeps the rest of the story: drop a
//!   whole transaction, a client, a checkpoint, a process's activity (a
//!   background writer ...), a fault, two of those at once (while the run
//!   is small), runs of events; drop operator steps the failure does not
//!   need — when the same events do not fail without a step, fresh runs
//!   without it are searched (fixed seeds) and the shortest failing one is
//!   shrunk by a look-ahead, kept only if it ends with fewer events;
//! - config: switch off each fault kind (`[faults]` rates to 0), lower the
//!   operator's triggers (`after_commits`, `after_events`: a step comes
//!   earlier) and `workload.clients`, `cluster.rel_pages`,
//!   `cluster.standbys` and `scheduler.steps` by binary search, where the
//!   settings stay valid; each change is tried with the same draws and
//!   with the same events;
//! - delete runs of whole events' draws (a fault roll, a pick, an
//!   argument), large to small, so what follows stays aligned; then runs
//!   of up to 4 single draws;
//! - zero each event's draws, then each draw (a zero fault roll is "no
//!   fault", a zero pick is the first enabled event);
//! - lower each pick by binary search.
//!
//! A candidate is kept only if it fails the same invariant and is smaller
//! in the order (events, config, number of draws, draws), so every kept
//! step is strictly smaller and the search ends. A config change shifts
//! what every draw means, so one that does not directly give a smaller run
//! is judged by a bounded look-ahead (see `Shrinker::try_knob`). The only
//! seeds are fixed ones and there is no time limit: the same input always
//! gives the same output.

mod semantic;

use crate::config;
use crate::report::hash_hex;
use crate::run::{NoObserver, Observer, Phase, RunOptions, RunResult, run_choices, run_seed, tags_of};
use crate::scheduler::{DrawKind, Tag};
use crate::trace::Trace;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::rc::Rc;
use walsim_model::ids::NodeId;
use walsim_model::log::LogLine;
use walsim_model::{Cluster, Event, Invariant, Settings};

/// Integer settings that make a run smaller when lowered; `scheduler.steps`
/// last, so fresh draws for the others still have room to fail.
const SMALLER_WHEN_LOWER: &[&str] =
    &["workload.clients", "cluster.rel_pages", "cluster.standbys", "scheduler.steps"];

/// Fresh seeds tried for a config change the current draws do not fail.
const RESEEDS: u64 = 8;

/// Replays a look-ahead may spend on one config change.
const LOOKAHEAD: u64 = 2_000;

/// Fresh seeds tried for an operator step the failure may not need when
/// the same events do not fail without it (see
/// `Shrinker::operator_pass`): a fresh run is cheap next to a look-ahead,
/// and a failure that is a coincidence of positions is rare per seed.
const STEP_RESEEDS: u64 = 256;

const RECORD: RunOptions = RunOptions { record: true, log: false, max_events: None };

/// Default bound on replays.
pub const DEFAULT_MAX_ATTEMPTS: u64 = 50_000;

/// A config knob the shrinker may lower: a fault rate (to 0) or an
/// integer (by binary search).
#[derive(Clone, Debug)]
struct Knob {
    key: String,
}

/// The smallest failing run found.
#[derive(Clone, Debug)]
struct Best {
    table: toml::Table,
    settings: Settings,
    result: RunResult,
}

impl Best {
    fn choices(&self) -> &[u64] {
        self.result.choices.as_deref().expect("recorded")
    }
}

/// What shrinking gave.
#[derive(Clone, Debug)]
pub struct Shrunk {
    pub invariant: Invariant,
    /// (events, draws) of the input run.
    pub before: (u64, usize),
    pub settings: Settings,
    /// The shrunk run, recorded.
    pub result: RunResult,
    pub attempts: u64,
    /// Settings changed: (key, from, to).
    pub config_changes: Vec<(String, String, String)>,
    /// The shrunk run told as a story (see [`story`]).
    pub story: Vec<String>,
}

/// The story of a run, for a person: the operator's steps and what the
/// tools said, the faults, the transactions acknowledged (counted between
/// the other lines), and every ERROR, FATAL or PANIC, in order, each with
/// its event number.
pub fn story(settings: &Settings, seed: u64, choices: &[u64]) -> Vec<String> {
    #[derive(Default)]
    struct Teller {
        lines: Vec<String>,
        commits: Vec<(NodeId, u64)>,
    }
    impl Teller {
        fn flush_commits(&mut self) {
            if self.commits.is_empty() {
                return;
            }
            let mut per_node: Vec<(NodeId, u64)> = Vec::new();
            for &(n, _) in &self.commits {
                match per_node.iter_mut().find(|(m, _)| *m == n) {
                    Some(c) => c.1 += 1,
                    None => per_node.push((n, 1)),
                }
            }
            let (first, last) = (self.commits[0].1, self.commits[self.commits.len() - 1].1);
            let what: Vec<String> = per_node.iter().map(|(n, c)| format!("{c} on {n}")).collect();
            let when =
                if first == last { format!("event {first}") } else { format!("events {first}–{last}") };
            self.lines.push(format!("{when}: commits acknowledged: {}", what.join(", ")));
            self.commits.clear();
        }
    }
    impl Observer for Teller {
        fn step(&mut self, step: u64, _: Phase, ev: &Event, _: Option<u64>, _: &Cluster, log: &[LogLine]) {
            use walsim_model::log::{Level, Process};
            if ev.kind() == walsim_model::EventKind::Fault {
                self.flush_commits();
                self.lines.push(format!("event {step}: fault: {ev}"));
            }
            for l in log {
                let operator = l.process == Process::Operator && l.level != Level::Debug;
                // A client's own errors (duplicate keys) are its business;
                // a server's refusals and failures are the story's.
                let severe = matches!(l.level, Level::Error | Level::Fatal | Level::Panic)
                    && !matches!(l.process, Process::Backend(_));
                if l.message.contains("COMMIT acknowledged") {
                    self.commits.push((l.node, step));
                } else if operator || severe {
                    self.flush_commits();
                    let level = l.level.name();
                    self.lines.push(format!("event {step}: {} {level}: {}", l.node, l.message));
                }
            }
        }
    }
    let mut t = Teller::default();
    let opts = RunOptions { record: false, log: true, max_events: None };
    let r = run_choices(settings, seed, choices, opts, &mut t);
    t.flush_commits();
    t.lines.push(format!("event {}: {}", r.events.saturating_sub(1), r.detail));
    t.lines
}

struct Shrinker {
    target: Invariant,
    seed: u64,
    /// The input's settings.
    input: toml::Table,
    knobs: Vec<Knob>,
    best: Best,
    attempts: u64,
    max_attempts: u64,
    /// Whether a config change may be judged by shrinking under it first.
    lookahead: bool,
    /// (knob, value) already judged by look-ahead.
    looked: BTreeSet<(usize, u64)>,
    /// Operator scripts (as text) already judged by look-ahead.
    looked_scripts: BTreeSet<String>,
    /// [`Shrinker::units`] of the best run.
    units_cache: Option<(bool, Rc<Vec<usize>>)>,
    /// [`Shrinker::tags`] of the best run.
    tags_cache: Option<Rc<Vec<Tag>>>,
    /// [`Shrinker::script`] of the best run.
    script_cache: Option<Rc<Vec<semantic::Step>>>,
}

impl Shrinker {
    fn new(target: Invariant, seed: u64, input: toml::Table, knobs: Vec<Knob>, best: Best) -> Shrinker {
        Shrinker {
            target,
            seed,
            input,
            knobs,
            best,
            attempts: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            lookahead: true,
            looked: BTreeSet::new(),
            looked_scripts: BTreeSet::new(),
            units_cache: None,
            tags_cache: None,
            script_cache: None,
        }
    }

    /// Knob values, in knob order (non-negative floats order like their
    /// bit patterns).
    fn cost(&self, table: &toml::Table) -> Vec<u64> {
        self.knobs.iter().map(|k| knob_get(table, &k.key).map_or(0, value_key)).collect()
    }

    fn spent(&self) -> bool {
        self.attempts >= self.max_attempts
    }

    /// A candidate's table and settings (`None`: the best ones); `None` if
    /// the table is not valid settings.
    fn candidate(&self, table: Option<toml::Table>) -> Option<(toml::Table, Settings)> {
        match table {
            Some(t) => {
                let s = config::settings_from_table(t.clone(), None, &[]).ok()?;
                Some((t, s))
            }
            None => Some((self.best.table.clone(), self.best.settings.clone())),
        }
    }

    /// Replays a candidate (`None`: the best settings); `Some` if it fails
    /// the same invariant.
    fn test(&mut self, table: Option<toml::Table>, choices: &[u64]) -> Option<Best> {
        if self.spent() {
            return None;
        }
        self.attempts += 1;
        let (table, settings) = self.candidate(table)?;
        // A candidate longer than the best cannot be smaller: cut it there.
        let opts = RunOptions { max_events: Some(self.best.result.events), ..RECORD };
        let result = run_choices(&settings, self.seed, choices, opts, &mut NoObserver);
        (result.invariant() == Some(self.target)).then_some(Best { table, settings, result })
    }

    /// Keeps `cand` if it is smaller: fewer events, then a smaller config,
    /// then fewer and lower draws.
    fn offer(&mut self, cand: Best) -> bool {
        let (c, b) = (&cand, &self.best);
        let smaller = (c.result.events, self.cost(&c.table), c.choices().len(), c.choices())
            < (b.result.events, self.cost(&b.table), b.choices().len(), b.choices());
        if smaller {
            self.best = cand;
            self.units_cache = None;
            self.tags_cache = None;
            self.script_cache = None;
        }
        smaller
    }

    fn try_choices(&mut self, choices: &[u64]) -> bool {
        self.test(None, choices).is_some_and(|c| self.offer(c))
    }

    /// Tries knob `k` at `value`. A config change shifts what each draw
    /// means, so when the current draws do not give a smaller run, it is
    /// judged by look-ahead: starting from the current draws (if they still
    /// fail) or a fresh seed's, with the knobs after `k` back at their input
    /// values (room for a fresh run to fail), the draws are shrunk within a
    /// small budget, and the change is kept if that ends smaller.
    fn try_knob(&mut self, k: usize, value: toml::Value) -> bool {
        let with = |table: &toml::Table, key: &str, v: toml::Value| {
            let mut t = table.clone();
            knob_set(&mut t, key, v).map(|()| t)
        };
        let vkey = value_key(&value);
        let Some(table) = with(&self.best.table, &self.knobs[k].key, value) else { return false };
        let current = self.best.choices().to_vec();
        let mut start = self.test(Some(table.clone()), &current);
        if let Some(c) = &start
            && self.offer(c.clone())
        {
            return true;
        }
        // The same events under the new config (they keep their meaning
        // where the draws do not): e.g. a promotion after fewer commits,
        // with the same transactions before it, until the semantic pass
        // drops those no longer needed.
        let script = self.script();
        let played = self.test_script(Some(table.clone()), &script);
        if let Some(c) = &played
            && self.offer(c.clone())
        {
            return true;
        }
        start = start.or(played);
        if !self.lookahead || !self.looked.insert((k, vkey)) {
            return false;
        }
        if start.is_none() {
            let mut roomy = table;
            for later in &self.knobs[k + 1..] {
                let input = knob_get(&self.input, &later.key).cloned();
                if let Some(t) = input.and_then(|v| with(&roomy, &later.key, v)) {
                    roomy = t;
                }
            }
            let Ok(settings) = config::settings_from_table(roomy.clone(), None, &[]) else { return false };
            for n in 0..RESEEDS {
                if self.spent() {
                    return false;
                }
                self.attempts += 1;
                let fresh = run_seed(&settings, self.seed.wrapping_add(n), RECORD, &mut NoObserver);
                if fresh.invariant() == Some(self.target) {
                    start = self.test(Some(roomy), &fresh.choices.expect("recorded"));
                    break;
                }
            }
        }
        let Some(start) = start else { return false };
        let mut sub =
            Shrinker::new(self.target, self.seed, self.input.clone(), self.knobs[k + 1..].to_vec(), start);
        sub.lookahead = false;
        sub.max_attempts = LOOKAHEAD.min(self.max_attempts - self.attempts);
        sub.run();
        self.attempts += sub.attempts;
        self.offer(sub.best)
    }

    fn config_pass(&mut self) -> bool {
        let mut improved = false;
        for k in 0..self.knobs.len() {
            let cur = knob_get(&self.best.table, &self.knobs[k].key).cloned();
            match cur {
                Some(toml::Value::Float(f)) if f != 0.0 => {
                    improved |= self.try_knob(k, toml::Value::Float(0.0));
                }
                Some(toml::Value::Integer(cur)) if cur > 0 => {
                    improved |= self.bisect(cur as u64, |s, v| s.try_knob(k, toml::Value::Integer(v as i64)));
                }
                _ => {}
            }
        }
        improved
    }

    /// Lowers a value from `hi` by binary search: the lowest `v` in
    /// `0..hi` for which `attempt(v)` succeeds (kept), assuming success is
    /// monotone. True if any attempt succeeded.
    fn bisect(&mut self, hi: u64, mut attempt: impl FnMut(&mut Self, u64) -> bool) -> bool {
        let (mut lo, mut hi) = (0u64, hi);
        let mut improved = false;
        while lo < hi && !self.spent() {
            let mid = lo + (hi - lo) / 2;
            if attempt(self, mid) {
                hi = mid;
                improved = true;
            } else {
                lo = mid + 1;
            }
        }
        improved
    }

    /// All passes, to a fixed point or until the budget is spent: the
    /// semantic ones first (they cut the most, and make every later
    /// replay cheaper), then the config, then the draw-level ones.
    fn run(&mut self) {
        loop {
            let mut improved = self.semantic_pass();
            improved |= self.operator_pass();
            improved |= self.config_pass();
            improved |= self.delete_pass(true, usize::MAX);
            improved |= self.delete_pass(false, 4);
            improved |= self.zero_pass(true);
            improved |= self.zero_pass(false);
            improved |= self.lower_pass();
            if !improved || self.spent() {
                break;
            }
        }
    }

    /// Where each unit of the best draws ends: every draw, or every
    /// event's draws (a fault roll, a pick, an argument), so a deletion
    /// can remove whole events and keep the rest aligned.
    fn units(&mut self, by_event: bool) -> Rc<Vec<usize>> {
        if let Some((b, u)) = &self.units_cache
            && *b == by_event
        {
            return Rc::clone(u);
        }
        let u = Rc::new(self.compute_units(by_event));
        self.units_cache = Some((by_event, Rc::clone(&u)));
        u
    }

    /// The tag of each of the best run's draws (what it decides, which
    /// event it belongs to), from the runner itself.
    fn tags(&mut self) -> Rc<Vec<Tag>> {
        if let Some(t) = &self.tags_cache {
            return Rc::clone(t);
        }
        let mut t = tags_of(&self.best.settings, self.seed, self.best.choices());
        t.truncate(self.best.choices().len());
        let t = Rc::new(t);
        self.tags_cache = Some(Rc::clone(&t));
        t
    }

    fn compute_units(&mut self, by_event: bool) -> Vec<usize> {
        let len = self.best.choices().len();
        if !by_event {
            return (1..=len).collect();
        }
        // A unit ends where the next draw belongs to another event.
        let tags = self.tags();
        let mut ends: Vec<usize> = (1..tags.len()).filter(|&i| tags[i].event != tags[i - 1].event).collect();
        if !tags.is_empty() {
            ends.push(tags.len());
        }
        ends
    }

    /// The best draws without units `i..i + n`, or zeroed there.
    fn edited(&mut self, by_event: bool, i: usize, n: usize, zero: bool) -> Option<Vec<u64>> {
        let ends = self.units(by_event);
        let end = *ends.get(i + n - 1)?;
        let start = if i == 0 { 0 } else { ends[i - 1] };
        let c = self.best.choices();
        if zero {
            let mut cand = c.to_vec();
            cand[start..end].fill(0);
            (cand != c).then_some(cand)
        } else {
            Some(c[..start].iter().chain(&c[end..]).copied().collect())
        }
    }

    /// Deletes runs of up to `max_size` units, large to small, each size
    /// from the end backwards (overlapping by half a run).
    fn delete_pass(&mut self, by_event: bool, max_size: usize) -> bool {
        let mut improved = false;
        let mut size = self.units(by_event).len().next_power_of_two().min(max_size);
        while size >= 1 && !self.spent() {
            let step = if size > 4 { size / 2 } else { 1 };
            let mut i = self.units(by_event).len().saturating_sub(size);
            loop {
                if let Some(cand) = self.edited(by_event, i, size, false) {
                    improved |= self.try_choices(&cand);
                }
                if i == 0 || self.spent() {
                    break;
                }
                i = i.saturating_sub(step).min(self.units(by_event).len().saturating_sub(1));
            }
            size /= 2;
        }
        improved
    }

    /// Zeroes each unit: no fault, the first enabled event.
    fn zero_pass(&mut self, by_event: bool) -> bool {
        let mut improved = false;
        let mut i = 0;
        while i < self.units(by_event).len() && !self.spent() {
            if let Some(cand) = self.edited(by_event, i, 1, true) {
                improved |= self.try_choices(&cand);
            }
            i += 1;
        }
        improved
    }

    /// Lowers each pick and fault target by binary search; fault rolls and
    /// arguments only go to zero in `Shrinker::zero_pass` (their order
    /// means nothing).
    fn lower_pass(&mut self) -> bool {
        let mut improved = false;
        let mut i = 0;
        while i < self.best.choices().len() && !self.spent() {
            let kind = self.tags().get(i).map(|t| t.kind);
            if matches!(kind, Some(DrawKind::Pick | DrawKind::FaultTarget)) {
                improved |= self.bisect(self.best.choices()[i], |s, v| {
                    let mut cand = s.best.choices().to_vec();
                    i < cand.len() && {
                        cand[i] = v;
                        s.try_choices(&cand)
                    }
                });
            }
            i += 1;
        }
        improved
    }
}

/// Shrinks the run of `settings` with `choices`, which must violate an
/// invariant.
pub fn shrink(settings: &Settings, seed: u64, choices: &[u64], max_attempts: u64) -> Result<Shrunk, String> {
    let first = run_choices(settings, seed, choices, RECORD, &mut NoObserver);
    let target = first.invariant().ok_or_else(|| {
        format!("the run violates no invariant ({}): nothing to shrink", first.outcome.name())
    })?;
    let table = config::to_table(settings);
    let before = (first.events, first.choices.as_ref().map_or(0, Vec::len));
    // Two orders of the config knobs lead to different local minima: the
    // operator's triggers before the sizes (a story told earlier), or after
    // them. Both run, each with half the budget; the smaller result wins
    // (the same order every shrink uses, so the output is deterministic).
    let (sizes_first, triggers_first) = knobs_of(&table);
    let mut attempts = 0;
    let mut s: Option<Shrinker> = None;
    for knobs in [sizes_first, triggers_first] {
        let best = Best { table: table.clone(), settings: settings.clone(), result: first.clone() };
        let mut one = Shrinker::new(target, seed, table.clone(), knobs, best);
        one.max_attempts = max_attempts / 2;
        one.run();
        attempts += one.attempts;
        let key = |b: &Best| (b.result.events, b.choices().len(), b.choices().to_vec());
        if s.as_ref().is_none_or(|b| key(&one.best) < key(&b.best)) {
            s = Some(one);
        }
    }
    let mut s = s.expect("two orders ran");
    s.attempts = attempts;
    // The operator's script, with its triggers: one change if the shrinker
    // dropped a step or moved one earlier.
    let script = |t: &toml::Table| {
        let steps = t.get("operator").and_then(toml::Value::as_array).map_or(&[][..], Vec::as_slice);
        let names: Vec<String> = steps
            .iter()
            .filter_map(|st| {
                let st = st.as_table()?;
                let mut name = format!("{} {}", st.get("action")?.as_str()?, st.get("node")?.as_str()?);
                for f in ["after_commits", "after_events"] {
                    if let Some(v) = st.get(f).and_then(toml::Value::as_integer).filter(|&v| v > 0) {
                        name.push_str(&format!(" {f}={v}"));
                    }
                }
                Some(name)
            })
            .collect();
        format!("[{}]", names.join(", "))
    };
    let mut config_changes: Vec<(String, String, String)> = Vec::new();
    if script(&table) != script(&s.best.table) {
        config_changes.push(("operator".into(), script(&table), script(&s.best.table)));
    }
    config_changes.extend(s.knobs.iter().filter_map(|k| {
        let from = knob_get(&table, &k.key).map(config::value_text)?;
        let to = knob_get(&s.best.table, &k.key).map(config::value_text)?;
        (from != to && step_key(&k.key).is_none()).then(|| (k.key.clone(), from, to))
    }));
    // The draws written are replayed as they will be read: the same run.
    let replayed = run_choices(&s.best.settings, seed, s.best.choices(), RECORD, &mut NoObserver);
    if replayed.trace_hash != s.best.result.trace_hash {
        return Err("internal error: the shrunk draws do not replay the shrunk run".into());
    }
    let story = story(&s.best.settings, seed, s.best.choices());
    Ok(Shrunk {
        invariant: target,
        before,
        settings: s.best.settings,
        result: s.best.result,
        attempts: s.attempts,
        story,
        config_changes,
    })
}

/// A knob value as a number that orders like it.
fn value_key(v: &toml::Value) -> u64 {
    match v {
        toml::Value::Integer(i) => *i as u64,
        toml::Value::Float(f) => f.to_bits(),
        _ => 0,
    }
}

/// The knobs this configuration has: the integer keys of
/// [`SMALLER_WHEN_LOWER`] and every fault rate in `[faults]`.
/// The config knobs in two orders: sizes before the operator's triggers,
/// and triggers before sizes.
fn knobs_of(table: &toml::Table) -> (Vec<Knob>, Vec<Knob>) {
    // The operator's triggers first: a story whose steps come earlier is a
    // shorter story (a semantic pass: it moves a promotion or a crash
    // earlier, which deleting draws cannot do).
    let steps = table.get("operator").and_then(toml::Value::as_array).map_or(0, Vec::len);
    let triggers = (0..steps).flat_map(|i| {
        ["after_commits", "after_events"].into_iter().map(move |f| format!("operator[{i}].{f}"))
    });
    let triggers: Vec<Knob> = triggers
        .filter(|k| knob_get(table, k).and_then(toml::Value::as_integer).is_some_and(|v| v > 0))
        .map(|key| Knob { key })
        .collect();
    let ints = SMALLER_WHEN_LOWER
        .iter()
        .filter(|k| knob_get(table, k).is_some_and(toml::Value::is_integer))
        .map(|k| Knob { key: k.to_string() });
    let floats = table
        .get("faults")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(|t| t.iter().filter(|(_, v)| v.is_float()))
        .map(|(k, _)| Knob { key: format!("faults.{k}") });
    let floats: Vec<Knob> = floats.collect();
    let ints: Vec<Knob> = ints.collect();
    let sizes_first = floats.iter().chain(&ints).chain(&triggers).cloned().collect();
    let triggers_first = floats.into_iter().chain(triggers).chain(ints).collect();
    (sizes_first, triggers_first)
}

/// `operator[I].FIELD` → (I, FIELD).
fn step_key(key: &str) -> Option<(usize, &str)> {
    let rest = key.strip_prefix("operator[")?;
    let (i, field) = rest.split_once("].")?;
    Some((i.parse().ok()?, field))
}

/// A knob's value: a dotted setting, or an operator step's field.
fn knob_get<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    match step_key(key) {
        Some((i, field)) => table.get("operator")?.as_array()?.get(i)?.as_table()?.get(field),
        None => config::get_dotted(table, key),
    }
}

fn knob_set(table: &mut toml::Table, key: &str, v: toml::Value) -> Option<()> {
    match step_key(key) {
        Some((i, field)) => {
            let step = table.get_mut("operator")?.as_array_mut()?.get_mut(i)?.as_table_mut()?;
            step.insert(field.to_string(), v);
            Some(())
        }
        None => config::set_dotted(table, key, v).ok(),
    }
}

/// Shrinks the trace in `input` and writes the result to `output`.
pub fn shrink_file(input: &Path, output: &Path, max_attempts: u64) -> Result<Shrunk, String> {
    let trace = Trace::load(input)?;
    let settings = trace.settings().map_err(|e| format!("{}: {e}", input.display()))?;
    let shrunk = shrink(&settings, trace.seed, &trace.choices, max_attempts)
        .map_err(|e| format!("{}: {e}", input.display()))?;
    let note =
        format!("walsim shrink: {} of a {}-event run ({})", shrunk.invariant, shrunk.before.0, trace.note);
    Trace::of_run(&shrunk.settings, &shrunk.result, note).save(output)?;
    Ok(shrunk)
}

impl Shrunk {
    pub fn text(&self, output: &Path) -> String {
        let r = &self.result;
        let mut s = format!(
            "walsim shrink: {} still fails: {} events → {} events, {} draws → {} draws ({} attempts)\n",
            self.invariant,
            self.before.0,
            r.events,
            self.before.1,
            r.choices.as_ref().map_or(0, Vec::len),
            self.attempts
        );
        if !self.config_changes.is_empty() {
            let changes: Vec<String> =
                self.config_changes.iter().map(|(k, from, to)| format!("{k} {from} → {to}")).collect();
            s.push_str(&format!("config: {}\n", changes.join(", ")));
        }
        s.push_str(&format!("  {}\n", r.detail));
        s.push_str("story:\n");
        for line in &self.story {
            s.push_str(&format!("  {line}\n"));
        }
        s.push_str(&format!(
            "wrote {} (trace_hash {}); see it with: walsim replay {} --log\n",
            output.display(),
            hash_hex(r.trace_hash),
            output.display()
        ));
        s
    }

    pub fn json(&self, output: &Path) -> Value {
        let r = &self.result;
        json!({
            "invariant": self.invariant.name(),
            "file": output.display().to_string(),
            "before": { "events": self.before.0, "draws": self.before.1 },
            "after": {
                "events": r.events,
                "draws": r.choices.as_ref().map_or(0, Vec::len),
                "trace_hash": hash_hex(r.trace_hash),
                "detail": r.detail,
            },
            "config_changes": self.config_changes.iter()
                .map(|(k, from, to)| json!({ "key": k, "from": from, "to": to }))
                .collect::<Vec<_>>(),
            "attempts": self.attempts,
            "story": self.story,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_a_wal_before_data_failure_deterministically() {
        // A one-node bug in the default story (a standby, a promotion, a
        // failback): the event-level passes move the background writer's
        // write before the commits and drop the operator's steps the bug
        // does not need.
        let s = config::load(None, &["rules.wal_before_data=false".into()]).unwrap();
        let (seed, r) = (1..50)
            .map(|seed| {
                (
                    seed,
                    run_seed(
                        &s,
                        seed,
                        RunOptions { record: true, log: false, max_events: None },
                        &mut NoObserver,
                    ),
                )
            })
            .find(|(_, r)| r.invariant() == Some(Invariant::WalBeforeData))
            .expect("a failing seed");
        let choices = r.choices.unwrap();
        let a = shrink(&s, seed, &choices, 5_000).unwrap();
        assert_eq!(a.invariant, Invariant::WalBeforeData);
        assert!(a.result.events <= 15, "{} events", a.result.events);
        assert!(a.result.events < r.events);
        assert!(a.settings.operator.len() < s.operator.len(), "a step the bug does not need is dropped");
        assert!(a.config_changes.iter().any(|(k, _, _)| k == "operator"), "{:?}", a.config_changes);
        let b = shrink(&s, seed, &choices, 5_000).unwrap();
        assert_eq!(
            (a.result.trace_hash, a.result.choices, a.settings),
            (b.result.trace_hash, b.result.choices, b.settings)
        );
    }

    #[test]
    fn a_passing_run_is_not_shrunk() {
        let s = config::load(None, &["scheduler.steps=50".into()]).unwrap();
        let r = run_seed(&s, 1, RunOptions { record: true, log: false, max_events: None }, &mut NoObserver);
        assert!(shrink(&s, 1, &r.choices.unwrap(), 10).unwrap_err().contains("nothing to shrink"));
    }
}
