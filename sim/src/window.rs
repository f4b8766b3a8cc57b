//! `walsim explore --window N --around TRIGGER`: every ordering of N
//! events around a point of a run, not a sample of them.
//!
//! A seeded random prefix runs to the trigger (an operator step of that
//! kind starting, a crash, or an event index); the window starts
//! `N / 2` events before the trigger (at the index itself for a number).
//! From there an *odometer* over the choice sequence enumerates every
//! sequence of the next N choices: each position holds (value, bound),
//! where the bound is the number of choices the runner offers there (every
//! enabled event the weighted policy can pick, and in the main phase every
//! fault of every kind whose rate is above 0); after a sequence, the
//! rightmost position below its bound advances and everything right of it
//! is dropped (TigerBeetle's exhaustigen, after matklad's "generate all
//! the things"). Each sequence restarts from a copy of the window's first
//! state, so a sequence is a pure function of its choice values.
//!
//! States are deduplicated by fingerprint per depth: when a step reaches a
//! state already reached at the same depth, everything after it was
//! already enumerated, so the odometer skips that subtree (the position
//! advances). Invariants are checked at every step (the runner does); a
//! sequence that survives N steps, or ends the run earlier, is finished
//! with the seeded random policy to get its verdict (ok, refused, stuck,
//! violation). Arguments inside the window (a transaction's key) are a
//! fixed function of the prefix seed and the depth, not enumerated.
//!
//! Every path is replayable: the draws are the prefix's, then for each
//! window step the draws the weighted random policy would have made to
//! choose it (a fault roll at the fault's band, a target or a pick at the
//! start of its band) and its argument, then the finishing run's.

use crate::run::{Choice, NoObserver, Outcome, RunOptions, RunResult, Runner};
use crate::scheduler::{ChoiceSource, SeededSource, Tag, WeightedRandom};
use crate::trace::Trace;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::Hasher;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use walsim_model::cluster::StableHasher;
use walsim_model::event::FaultKind;
use walsim_model::script::Action;
use walsim_model::settings::SchedulerPolicy;
use walsim_model::{Event, Settings};

/// Where a window goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Trigger {
    /// The operator's `promote` step starts.
    Promote,
    /// A node crashes: a fault (process crash or power loss) or the
    /// operator's `stop_immediate` / `power_loss`.
    Crash,
    /// The operator's `failback` step starts.
    Failback,
    /// A node loses power: a fault or the operator's `power_loss`.
    PowerLoss,
    /// Event index N: the window starts there.
    Step(u64),
}

impl std::str::FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Trigger, String> {
        match s {
            "promote" => Ok(Trigger::Promote),
            "crash" => Ok(Trigger::Crash),
            "failback" => Ok(Trigger::Failback),
            "power-loss" => Ok(Trigger::PowerLoss),
            _ => s.parse::<u64>().map(Trigger::Step).map_err(|_| {
                format!("--around {s}: expected promote, crash, failback, power-loss or an event index")
            }),
        }
    }
}

impl Trigger {
    pub fn name(self) -> String {
        match self {
            Trigger::Promote => "promote".into(),
            Trigger::Crash => "crash".into(),
            Trigger::Failback => "failback".into(),
            Trigger::PowerLoss => "power-loss".into(),
            Trigger::Step(n) => n.to_string(),
        }
    }

    fn fires(self, settings: &Settings, ev: &Event) -> bool {
        let action = |step: u8| settings.operator.get(step as usize).map(|s| s.action);
        match (self, ev) {
            (Trigger::Crash, Event::Crash { .. }) => true,
            (Trigger::Crash, Event::Operator { step, .. }) => {
                matches!(action(*step), Some(Action::StopImmediate | Action::PowerLoss))
            }
            (Trigger::Promote, Event::Operator { step, .. }) => action(*step) == Some(Action::Promote),
            (Trigger::Failback, Event::Operator { step, .. }) => action(*step) == Some(Action::Failback),
            (Trigger::PowerLoss, Event::Crash { kind, .. }) => *kind == walsim_model::CrashKind::PowerLoss,
            (Trigger::PowerLoss, Event::Operator { step, .. }) => action(*step) == Some(Action::PowerLoss),
            _ => false,
        }
    }
}

/// Largest window: the number of sequences grows like choices^N.
pub const MAX_WINDOW: u32 = 32;

/// Default bound on distinct states per window.
pub const DEFAULT_MAX_STATES: u64 = 2_000_000;

/// What to enumerate.
#[derive(Clone, Debug)]
pub struct WindowSpec {
    pub settings: Settings,
    pub depth: u32,
    pub trigger: Trigger,
    /// Prefix seeds, one window each.
    pub seeds: Vec<u64>,
    /// Distinct states per window before it is cut (reported incomplete).
    pub max_states: u64,
    /// Stop a window at its first violating sequence, or after this many
    /// sequences (the search benchmark).
    pub stop_at_violation: bool,
    pub max_sequences: u64,
}

/// One window's results.
#[derive(Clone, Debug, Default)]
pub struct WindowResult {
    pub seed: u64,
    /// Why there is no window (the prefix never reached the trigger).
    pub skipped: Option<String>,
    /// Event index of the trigger in the prefix, and of the window's start.
    pub trigger_at: u64,
    pub start_at: u64,
    /// Steps of the prefix undone because they violated an invariant (the
    /// prefix steers around violations so the window can look for them).
    pub prefix_violations: BTreeMap<String, u64>,
    pub distinct_states: u64,
    pub transitions: u64,
    /// Steps that reached a state already seen at that depth.
    pub pruned: u64,
    /// Sequences that ended (window end, run end or violation).
    pub sequences: u64,
    /// Verdicts of the sequences, by class.
    pub verdicts: BTreeMap<String, u64>,
    /// (class, draws, result) of the first sequence of each violating class.
    pub violating: Vec<(String, Vec<u64>, RunResult)>,
    pub complete: bool,
    pub interrupted: bool,
    /// Sequences run when the first violation was found.
    pub first_violation_at: Option<u64>,
}

/// A source that keeps what it gave, and can forget the tail.
struct Recorder<'a> {
    inner: &'a mut dyn ChoiceSource,
    draws: Vec<u64>,
}

impl ChoiceSource for Recorder<'_> {
    fn draw(&mut self, bound: u64, tag: Tag) -> u64 {
        let v = self.inner.draw(bound, tag);
        self.draws.push(v);
        v
    }
}

/// The arguments inside a window: a fixed function of the seed and depth,
/// or, for a power loss with crash images, the image being enumerated.
struct FixedArg(u64, Option<u64>);

impl ChoiceSource for FixedArg {
    fn draw(&mut self, bound: u64, _: Tag) -> u64 {
        if let Some(v) = self.1 {
            return v % bound;
        }
        let mut h = StableHasher::default();
        h.write_u64(self.0);
        h.finish() % bound
    }
}

/// One option at a window position: a choice, and the crash image when it
/// is a power loss with `faults.crash_images` > 0.
type WindowOption = (Choice, Option<u64>);

/// The prefix: runs `seed` with the weighted random policy until the
/// trigger, steering around violations (a violating step is undone and
/// redrawn). Returns the state `depth / 2` events before the trigger event
/// (at the index itself for `Trigger::Step`) and the draws leading to it.
fn prefix(spec: &WindowSpec, seed: u64, res: &mut WindowResult) -> Option<(Runner, Vec<u64>)> {
    let s = &spec.settings;
    // The window starts `before` events before the trigger event.
    let before = u64::from(spec.depth / 2);
    let mut policy = WeightedRandom::new(s.scheduler.weights.clone());
    let mut seeded = SeededSource::new(seed, false);
    let mut src = Recorder { inner: &mut seeded, draws: Vec::new() };
    let mut runner = Runner::new(s, RunOptions::default());
    // The states before each of the last `before` events, and their draws.
    let mut ring: VecDeque<(Runner, usize)> = VecDeque::new();
    let mut redraws = 0;
    loop {
        if let Trigger::Step(n) = spec.trigger
            && runner.events() == n
        {
            res.trigger_at = n;
            res.start_at = n;
            return Some((runner, src.draws));
        }
        if runner.is_done() {
            res.skipped = Some(format!(
                "the prefix ended after {} events without reaching the trigger",
                runner.events()
            ));
            return None;
        }
        let saved = (runner.clone(), src.draws.len());
        let choice = runner.choose(&mut policy, &mut src);
        let ev = runner.event_of(choice);
        runner.step(choice, &mut policy, &mut src, &mut NoObserver);
        if let Some(v) = runner.violation() {
            *res.prefix_violations.entry(v.invariant.name().to_string()).or_default() += 1;
            redraws += 1;
            if redraws > 64 {
                res.skipped = Some(format!(
                    "the prefix cannot avoid {} at event {}",
                    v.invariant.name(),
                    saved.0.events()
                ));
                return None;
            }
            runner = saved.0;
            src.draws.truncate(saved.1);
            continue;
        }
        redraws = 0;
        let fired = spec.trigger.fires(s, &ev);
        ring.push_back(saved);
        if ring.len() as u64 > before + 1 {
            ring.pop_front();
        }
        if fired {
            res.trigger_at = runner.events() - 1;
            let (start, len) = ring.pop_front().expect("pushed");
            res.start_at = start.events();
            src.draws.truncate(len);
            return Some((start, src.draws));
        }
    }
}

/// The choices the weighted random policy can make at `r` (a zero-weight
/// kind only when nothing else can); a power loss once per crash image
/// when `faults.crash_images` > 0.
fn choices(r: &mut Runner, w: &WeightedRandom, images: u32) -> Vec<WindowOption> {
    let all = r.choices();
    let mut out = Vec::with_capacity(all.len());
    for c in all {
        match c {
            Choice::Event(i) if !w.can_pick(r.enabled(), i) => {}
            Choice::Fault(FaultKind::PowerLoss, _) if images > 0 => {
                let node = r.event_of(c).node().index();
                let n = r.cluster().nodes[node].crash_image_count(images);
                out.extend((0..n).map(|j| (c, Some(j))));
            }
            _ => out.push((c, None)),
        }
    }
    out
}

/// Takes `choice` and appends the draws that make the weighted random
/// policy take it (so the path replays).
fn step_encoded(
    r: &mut Runner,
    (choice, image): WindowOption,
    w: &mut WeightedRandom,
    arg: u64,
    draws: &mut Vec<u64>,
) {
    let main_with_faults = r.phase() == crate::run::Phase::Main && r.dice().any();
    match choice {
        Choice::Event(i) => {
            if main_with_faults {
                draws.push(r.dice().draw_for(None));
            }
            draws.push(w.draw_for(r.enabled(), i));
        }
        Choice::Fault(kind, i) => {
            draws.push(r.dice().draw_for(Some(kind)));
            draws.push(i as u64);
        }
    }
    let mut fixed = FixedArg(arg, image);
    let mut rec = Recorder { inner: &mut fixed, draws: Vec::new() };
    r.step(choice, w, &mut rec, &mut NoObserver);
    draws.extend(rec.draws);
}

/// The identity of a state for deduplication: the cluster's fingerprint
/// and what the verdict also depends on (refusals, observations).
fn state_key(r: &Runner) -> u64 {
    let c = r.cluster();
    let mut h = StableHasher::default();
    h.write_u64(c.fingerprint());
    h.write_u64(c.refusals.len() as u64);
    h.write_u64(c.observations.len() as u64);
    h.write_u64(u64::from(r.is_done()));
    h.finish()
}

/// Runs the rest of a sequence with the seeded random policy; its verdict
/// class and the run's result (with all draws).
fn finish(mut r: Runner, seed: u64, mut draws: Vec<u64>, w: &mut WeightedRandom) -> (String, RunResult) {
    let mut seeded = SeededSource::new(seed ^ 0x5749_4e44_4f57, false);
    let mut src = Recorder { inner: &mut seeded, draws: Vec::new() };
    while r.next(w, &mut src, &mut NoObserver) {}
    draws.extend(src.draws);
    let mut res = r.finish(seed);
    res.choices = Some(draws);
    (class_of(&res), res)
}

fn class_of(r: &RunResult) -> String {
    match r.outcome {
        Outcome::Violation => format!("violation: {}", r.invariant().map_or("?", |i| i.name())),
        o => o.name().to_string(),
    }
}

/// Enumerates one window.
pub fn window(spec: &WindowSpec, seed: u64, stop: &AtomicBool, on_state: &(dyn Fn() + Sync)) -> WindowResult {
    let mut res = WindowResult { seed, ..WindowResult::default() };
    let Some((start, prefix_draws)) = prefix(spec, seed, &mut res) else { return res };
    let mut w = WeightedRandom::new(spec.settings.scheduler.weights.clone());
    let n = spec.depth as usize;
    let images = spec.settings.faults.crash_images;
    let mut visited: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); n];
    // The odometer: (value, bound) per position.
    let mut odo: Vec<(u64, u64)> = Vec::new();
    // The current sequence's states: `path[d]` is the state (and draws)
    // after its first d choices. A sequence shares the positions left of
    // the one that advanced with the one before, so it resumes from there
    // (the same as replaying them from the start: they are deterministic).
    let mut path: Vec<(Runner, Vec<u64>)> = vec![(start, prefix_draws)];
    loop {
        if stop.load(Ordering::Relaxed) {
            res.interrupted = true;
            return res;
        }
        if res.distinct_states >= spec.max_states || res.sequences >= spec.max_sequences {
            return res;
        }
        let (mut r, mut draws) = path.last().cloned().expect("the window's start");
        let mut depth = path.len() - 1;
        // Where this sequence ended: `None` if pruned (no verdict).
        let mut ended = true;
        while depth < n {
            let options = choices(&mut r, &w, images);
            if options.is_empty() {
                break;
            }
            if depth == odo.len() {
                odo.push((0, options.len() as u64));
            }
            let pick = options[odo[depth].0 as usize];
            let arg = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (r.events() << 1);
            step_encoded(&mut r, pick, &mut w, arg, &mut draws);
            res.transitions += 1;
            depth += 1;
            if r.violation().is_some() {
                break;
            }
            if !visited[depth - 1].insert(state_key(&r)) {
                res.pruned += 1;
                ended = false;
                break;
            }
            res.distinct_states += 1;
            on_state();
            if depth < n {
                path.push((r.clone(), draws.clone()));
            }
        }
        if ended {
            res.sequences += 1;
            let (class, result) = if r.violation().is_some() {
                let mut result = r.finish(seed);
                result.choices = Some(draws);
                (format!("{} (in the window)", class_of(&result)), result)
            } else {
                finish(r, seed, draws, &mut w)
            };
            let count = res.verdicts.entry(class.clone()).or_default();
            *count += 1;
            if *count == 1 && result.outcome == Outcome::Violation {
                res.violating.push((class, result.choices.clone().unwrap_or_default(), result));
                res.first_violation_at.get_or_insert(res.sequences);
                if spec.stop_at_violation {
                    return res;
                }
            }
        }
        // Advance: drop positions past where this sequence ended, then the
        // rightmost position below its bound moves on.
        odo.truncate(depth);
        loop {
            match odo.last_mut() {
                None => {
                    res.complete = true;
                    return res;
                }
                Some(last) if last.0 + 1 < last.1 => {
                    last.0 += 1;
                    break;
                }
                Some(_) => {
                    odo.pop();
                }
            }
        }
        // Resume from the state before the position that advanced.
        path.truncate(odo.len());
    }
}

/// Every window of the spec, with the violating paths saved to `save_dir`.
/// The prefix seeds run in parallel on `jobs` threads; the results (and
/// the files saved) come in prefix-seed order, so the output is the same
/// for any `jobs`. After a stop request, the windows from the first
/// interrupted one on are left out of the results, as a sequential run
/// would leave them.
pub fn windows(
    spec: &WindowSpec,
    save_dir: Option<&Path>,
    stop: &AtomicBool,
    on_state: &(dyn Fn() + Sync),
    jobs: usize,
) -> Result<Vec<(WindowResult, Vec<String>)>, String> {
    use rayon::prelude::*;
    if spec.settings.scheduler.policy != SchedulerPolicy::Random {
        return Err(
            "--window enumerates the weighted random policy's choices: use scheduler.policy=random".into()
        );
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| format!("cannot start {jobs} worker threads: {e}"))?;
    let mut results: Vec<WindowResult> =
        pool.install(|| spec.seeds.par_iter().map(|&seed| window(spec, seed, stop, on_state)).collect());
    if let Some(i) = results.iter().position(|r| r.interrupted) {
        results.truncate(i + 1);
    }
    let mut out = Vec::new();
    for r in results {
        let seed = r.seed;
        let mut files = Vec::new();
        if let Some(dir) = save_dir {
            for (i, (class, draws, result)) in r.violating.iter().enumerate() {
                let inv = result.invariant().map_or("violation", |v| v.name());
                let path = dir.join(format!("window-{}-seed{seed}-{inv}-{i}.walsim", spec.trigger.name()));
                let mut rr = result.clone();
                rr.choices = Some(draws.clone());
                let note = format!(
                    "walsim explore --window {} --around {}: prefix seed {seed}, {class}",
                    spec.depth,
                    spec.trigger.name()
                );
                Trace::of_run(&spec.settings, &rr, note).save(&path)?;
                files.push(path.display().to_string());
            }
        }
        out.push((r, files));
    }
    Ok(out)
}

/// The text report.
pub fn text(spec: &WindowSpec, results: &[(WindowResult, Vec<String>)]) -> String {
    let mut s = format!(
        "walsim explore --window {} --around {}: every sequence of {} choices (events and faults), states deduplicated by fingerprint\n",
        spec.depth,
        spec.trigger.name(),
        spec.depth
    );
    for (r, files) in results {
        if let Some(why) = &r.skipped {
            s.push_str(&format!("prefix seed {}: no window: {why}\n", r.seed));
            continue;
        }
        s.push_str(&format!(
            "prefix seed {}: trigger at event {}, window from event {}: {} distinct states, {} transitions, {} pruned, {} sequences{}\n",
            r.seed,
            r.trigger_at,
            r.start_at,
            r.distinct_states,
            r.transitions,
            r.pruned,
            r.sequences,
            if r.interrupted {
                " (interrupted)"
            } else if r.complete {
                " (complete)"
            } else {
                " (cut at --max-states)"
            }
        ));
        for (class, n) in &r.verdicts {
            s.push_str(&format!("  {class}: {n}\n"));
        }
        for (inv, n) in &r.prefix_violations {
            s.push_str(&format!("  (the prefix steered around {n} step(s) violating {inv})\n"));
        }
        for f in files {
            s.push_str(&format!("  saved {f} (walsim replay {f} --log)\n"));
        }
    }
    s
}

/// The JSON report.
pub fn json(spec: &WindowSpec, results: &[(WindowResult, Vec<String>)]) -> Value {
    json!({
        "window": spec.depth,
        "around": spec.trigger.name(),
        "windows": results.iter().map(|(r, files)| json!({
            "seed": r.seed,
            "skipped": r.skipped,
            "trigger_at": r.trigger_at,
            "start_at": r.start_at,
            "distinct_states": r.distinct_states,
            "transitions": r.transitions,
            "pruned": r.pruned,
            "sequences": r.sequences,
            "verdicts": r.verdicts,
            "prefix_violations": r.prefix_violations,
            "complete": r.complete,
            "interrupted": r.interrupted,
            "violations": r.violating.iter().map(|(class, _, res)| json!({
                "class": class,
                "detail": res.detail,
                "events": res.events,
                "trace_hash": crate::report::hash_hex(res.trace_hash),
            })).collect::<Vec<_>>(),
            "files": files,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sets: &[&str], depth: u32, trigger: Trigger) -> WindowSpec {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let settings = crate::config::load(None, &sets).unwrap();
        WindowSpec {
            settings,
            depth,
            trigger,
            seeds: vec![1],
            max_states: DEFAULT_MAX_STATES,
            stop_at_violation: false,
            max_sequences: u64::MAX,
        }
    }

    /// Every state reachable in `depth` choices, per depth, without the
    /// odometer or pruning: plain recursion over copies.
    fn brute(
        r: &Runner,
        w: &mut WeightedRandom,
        depth: usize,
        sets: &mut [BTreeSet<u64>],
        arg_seed: u64,
        images: u32,
    ) {
        if depth == sets.len() {
            return;
        }
        let mut here = r.clone();
        for c in choices(&mut here, w, images) {
            let mut next = r.clone();
            let arg = arg_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (next.events() << 1);
            step_encoded(&mut next, c, w, arg, &mut Vec::new());
            if next.violation().is_some() {
                continue;
            }
            sets[depth].insert(state_key(&next));
            brute(&next, w, depth + 1, sets, arg_seed, images);
        }
    }

    #[test]
    fn the_odometer_visits_exactly_the_reachable_states() {
        let sp = spec(&["scheduler.steps=300", "faults.process_crash=0.01"], 3, Trigger::Step(20));
        exactly_the_reachable_states(&sp, 0);
        // With crash images, a power loss is one choice per image.
        let sp = spec(&["scheduler.steps=300", "faults.crash_images=8"], 2, Trigger::Step(40));
        let with = exactly_the_reachable_states(&sp, 8);
        let sp0 = spec(&["scheduler.steps=300"], 2, Trigger::Step(40));
        let without = window(&sp0, 1, &AtomicBool::new(false), &|| {});
        assert!(
            with.distinct_states > without.distinct_states,
            "{} vs {}",
            with.distinct_states,
            without.distinct_states
        );
    }

    fn exactly_the_reachable_states(sp: &WindowSpec, images: u32) -> WindowResult {
        let res = window(sp, 1, &AtomicBool::new(false), &|| {});
        assert!(res.complete);
        let mut r0 = WindowResult::default();
        let (start, _) = prefix(sp, 1, &mut r0).unwrap();
        let mut w = WeightedRandom::new(sp.settings.scheduler.weights.clone());
        let mut sets = vec![BTreeSet::new(); sp.depth as usize];
        brute(&start, &mut w, 0, &mut sets, 1, images);
        let total: u64 = sets.iter().map(|s| s.len() as u64).sum();
        assert_eq!(
            res.distinct_states,
            total,
            "per depth: {:?}",
            sets.iter().map(BTreeSet::len).collect::<Vec<_>>()
        );
        assert!(res.pruned > 0, "some orders commute");
        assert_eq!(res.transitions, res.distinct_states + res.pruned);
        res
    }

    #[test]
    fn windows_are_deterministic_and_their_paths_replay() {
        let sp = spec(&["scheduler.steps=300", "rules.wal_before_data=false"], 3, Trigger::Crash);
        let a = window(&sp, 1, &AtomicBool::new(false), &|| {});
        let b = window(&sp, 1, &AtomicBool::new(false), &|| {});
        assert_eq!(
            (a.distinct_states, a.transitions, &a.verdicts),
            (b.distinct_states, b.transitions, &b.verdicts)
        );
        assert!(a.trigger_at > a.start_at);
        let (class, draws, r) = a.violating.first().expect("the planted bug is found");
        assert!(class.contains("wal_before_data"), "{class}");
        let again = crate::run::run_choices(&sp.settings, 1, draws, RunOptions::default(), &mut NoObserver);
        assert_eq!((again.trace_hash, again.events, again.outcome), (r.trace_hash, r.events, r.outcome));
        // The rule on: the same window finds nothing.
        let ok = spec(&["scheduler.steps=300"], 3, Trigger::Crash);
        assert!(window(&ok, 1, &AtomicBool::new(false), &|| {}).violating.is_empty());
    }

    #[test]
    fn a_stop_request_interrupts() {
        let sp = spec(&["scheduler.steps=300"], 3, Trigger::Step(5));
        let r = window(&sp, 1, &AtomicBool::new(true), &|| {});
        assert!(r.interrupted && !r.complete);
    }
}
