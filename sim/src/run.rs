//! One run: settings + choices → outcome + trace.
//!
//! Phases: the *main* phase takes `scheduler.steps` events with workload
//! and faults on; the *quiesce* phase stops faults and new transactions,
//! restarts crashed nodes and lets work in flight finish, then the final
//! checks run. A run that cannot make progress is `stuck`.

use crate::scheduler::{ChoiceSource, FaultDice, Policy, ReplaySource, SeededSource, Tag, policy_for};
use serde::Serialize;
use std::hash::Hasher;
use walsim_model::cluster::Refusal;
use walsim_model::cluster::StableHasher;
use walsim_model::event::{CrashKind, FaultKind};
use walsim_model::failback::FailbackAttempt;
use walsim_model::log::LogLine;
use walsim_model::marks::Marks;
use walsim_model::{Cluster, Event, Invariant, Settings, Violation};

/// How a run ended.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every invariant held and the cluster quiesced.
    Ok,
    /// An invariant failed.
    Violation,
    /// The cluster could not make progress (a process waits forever).
    Stuck,
    /// A failback was refused by PostgreSQL's checks.
    Refused,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Violation => "violation",
            Outcome::Stuck => "stuck",
            Outcome::Refused => "refused",
        }
    }
}

/// Which phase a step belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Main,
    Quiesce,
}

/// Sees every step (logging, JSONL export). Called after the event was
/// applied, with the cluster as it is then (read-only) and the log lines
/// the step produced, in order (the runner drains them from the cluster;
/// empty unless the run logs, `RunOptions::log`).
pub trait Observer {
    fn step(
        &mut self,
        step: u64,
        phase: Phase,
        ev: &Event,
        arg: Option<u64>,
        cluster: &Cluster,
        log: &[LogLine],
    );
}

/// An observer that does nothing (the fast path).
pub struct NoObserver;

impl Observer for NoObserver {
    fn step(&mut self, _: u64, _: Phase, _: &Event, _: Option<u64>, _: &Cluster, _: &[LogLine]) {}
}

/// Counters of one run.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Serialize)]
pub struct RunStats {
    pub commits_acknowledged: u64,
    pub commits_in_doubt: u64,
    pub transactions_failed: u64,
    pub process_crashes: u64,
    pub power_losses: u64,
    pub checkpoints: u64,
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub seed: u64,
    pub outcome: Outcome,
    pub violation: Option<Violation>,
    /// One sentence: the violation, what is stuck, or a summary.
    pub detail: String,
    /// Events applied (both phases).
    pub events: u64,
    /// Stable hash of the whole event sequence (events and drawn arguments).
    pub trace_hash: u64,
    /// The draws, when recorded.
    pub choices: Option<Vec<u64>>,
    pub stats: RunStats,
    /// Every failback attempt and its result.
    pub failbacks: Vec<FailbackAttempt>,
    /// Every refusal PostgreSQL's checks made, in order.
    pub refusals: Vec<Refusal>,
    /// Invariants that failed where they are not expected to hold
    /// (`standby_covers_primary_data` without `data_flush`).
    pub observations: Vec<Violation>,
    /// The coverage marks the run reached (model/src/marks.rs).
    pub marks: Marks,
}

impl RunResult {
    pub fn invariant(&self) -> Option<Invariant> {
        self.violation.as_ref().map(|v| v.invariant)
    }
}

/// Options of a run beyond the settings.
#[derive(Clone, Copy, Default, Debug)]
pub struct RunOptions {
    /// Keep the draws (for trace files and shrinking).
    pub record: bool,
    /// Produce log lines (for `--log`).
    pub log: bool,
    /// Stop after this many events (the shrinker: a candidate longer than
    /// the best run so far cannot win). The run then ends `stuck`.
    pub max_events: Option<u64>,
}

/// Runs `settings` (validated) with `seed`.
pub fn run_seed(settings: &Settings, seed: u64, opts: RunOptions, obs: &mut dyn Observer) -> RunResult {
    let mut src = SeededSource::new(seed, opts.record);
    let mut r = execute(settings, seed, &mut src, opts, obs);
    r.choices = src.into_record();
    r
}

/// Replays recorded draws exactly.
pub fn run_choices(
    settings: &Settings,
    seed: u64,
    draws: &[u64],
    opts: RunOptions,
    obs: &mut dyn Observer,
) -> RunResult {
    let mut src = ReplaySource::new(draws);
    let mut r = execute(settings, seed, &mut src, opts, obs);
    if opts.record {
        r.choices = Some(draws[..src.consumed().min(draws.len())].to_vec());
    }
    r
}

/// Replays recorded draws and returns the tag of each draw the run made
/// (draws past the end of `draws` included: they read as 0).
pub fn tags_of(settings: &Settings, seed: u64, draws: &[u64]) -> Vec<Tag> {
    let mut src = ReplaySource::tagged(draws);
    execute(settings, seed, &mut src, RunOptions::default(), &mut NoObserver);
    src.into_tags()
}

/// One choice at a step: what [`Runner::choices`] lists and
/// [`Runner::step`] takes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Choice {
    /// The `i`-th enabled event ([`Runner::enabled`]).
    Event(usize),
    /// A fault of this kind strikes: the `i`-th of the faults of that kind
    /// possible now (`Cluster::enabled_faults`). Main phase only.
    Fault(FaultKind, usize),
}

/// Why a run stopped early.
#[derive(Clone, Debug)]
pub enum Stop {
    Violation(Violation),
    Stuck(String),
}

/// A run, one step at a time: `Runner::new`, then while
/// [`Runner::choices`] is not empty, [`Runner::step`] (or
/// [`Runner::next`], which lets a [`Policy`] choose), then
/// [`Runner::finish`]. A runner is `Clone`: a search copies it at a state
/// and tries each choice ([`Runner::fingerprint`] is the state's identity).
#[derive(Clone)]
pub struct Runner {
    cluster: Cluster,
    dice: FaultDice,
    enabled: Vec<Event>,
    faults: Vec<Event>,
    /// The log lines of the step just taken.
    lines: Vec<LogLine>,
    hash: StableHasher,
    events: u64,
    stats: RunStats,
    cap: Option<u64>,
    phase: Phase,
    /// Main-phase steps started; quiesce-phase steps taken.
    main_steps: u64,
    quiesce_taken: u64,
    steps: u64,
    quiesce_steps: u64,
    /// `enabled` is current and non-empty: a choice can be made.
    ready: bool,
    /// How the run ended, once it has.
    done: Option<Result<(), Stop>>,
}

impl Runner {
    /// A run of `settings` (validated), before its first event.
    pub fn new(settings: &Settings, opts: RunOptions) -> Runner {
        let mut r = Runner {
            cluster: Cluster::new(settings.clone(), opts.log),
            dice: FaultDice::new(&settings.faults),
            enabled: Vec::with_capacity(32),
            faults: Vec::with_capacity(8),
            lines: Vec::new(),
            hash: StableHasher::default(),
            events: 0,
            stats: RunStats::default(),
            cap: opts.max_events,
            phase: Phase::Main,
            main_steps: 0,
            quiesce_taken: 0,
            steps: settings.scheduler.steps,
            quiesce_steps: settings.scheduler.quiesce_steps,
            ready: false,
            done: None,
        };
        r.prepare();
        r
    }

    /// The cluster as it is now.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The state's identity: [`Cluster::fingerprint`].
    pub fn fingerprint(&self) -> u64 {
        self.cluster.fingerprint()
    }

    /// Events applied so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The phase the next step belongs to.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the run has ended (a violation, stuck, or quiesced and
    /// checked).
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }

    /// The violation that ended the run, if one did.
    pub fn violation(&self) -> Option<&Violation> {
        match &self.done {
            Some(Err(Stop::Violation(v))) => Some(v),
            _ => None,
        }
    }

    /// The enabled events now (empty once the run has ended).
    pub fn enabled(&self) -> &[Event] {
        if self.ready { &self.enabled } else { &[] }
    }

    /// The fault strategy of this run (`[faults]` rates as roll bands).
    pub fn dice(&self) -> &FaultDice {
        &self.dice
    }

    /// Every choice possible now: each enabled event, and in the main
    /// phase each fault of each kind whose rate is above zero.
    pub fn choices(&mut self) -> Vec<Choice> {
        if !self.ready {
            return Vec::new();
        }
        let mut out: Vec<Choice> = (0..self.enabled.len()).map(Choice::Event).collect();
        if self.phase == Phase::Main {
            let kinds: Vec<FaultKind> = self.dice.kinds().collect();
            for kind in kinds {
                self.cluster.enabled_faults(kind, &mut self.faults);
                out.extend((0..self.faults.len()).map(|i| Choice::Fault(kind, i)));
            }
        }
        out
    }

    /// The event `choice` stands for now.
    pub fn event_of(&mut self, choice: Choice) -> Event {
        match choice {
            Choice::Event(i) => self.enabled[i],
            Choice::Fault(kind, i) => {
                self.cluster.enabled_faults(kind, &mut self.faults);
                self.faults[i]
            }
        }
    }

    /// Lets `policy` choose the next step, with its draws from `src`, and
    /// takes it. False once the run has ended.
    pub fn next(
        &mut self,
        policy: &mut dyn Policy,
        src: &mut dyn ChoiceSource,
        obs: &mut dyn Observer,
    ) -> bool {
        if !self.ready {
            return false;
        }
        let choice = self.choose(policy, src);
        self.step(choice, policy, src, obs);
        true
    }

    /// What `policy` chooses now (draws: a fault roll when faults are on in
    /// the main phase, a fault target if one strikes, else a pick).
    pub fn choose(&mut self, policy: &mut dyn Policy, src: &mut dyn ChoiceSource) -> Choice {
        let event = self.events;
        if self.phase == Phase::Main
            && self.dice.any()
            && let Some(kind) = policy.fault_roll(&self.dice, src, event)
        {
            self.cluster.enabled_faults(kind, &mut self.faults);
            if !self.faults.is_empty() {
                return Choice::Fault(kind, policy.fault_target(&self.faults, src, event));
            }
        }
        Choice::Event(policy.pick(&self.enabled, src, event))
    }

    /// Takes `choice` (one of [`Runner::choices`]); an argument, if the
    /// event takes one, is drawn through `policy`.
    pub fn step(
        &mut self,
        choice: Choice,
        policy: &mut dyn Policy,
        src: &mut dyn ChoiceSource,
        obs: &mut dyn Observer,
    ) {
        assert!(self.ready, "a step after the run ended");
        let ev = self.event_of(choice);
        match self.phase {
            Phase::Main => self.main_steps += 1,
            Phase::Quiesce => self.quiesce_taken += 1,
        }
        let arg = self.cluster.takes_argument(&ev).then(|| policy.argument(&ev, src, self.events));
        self.hash.write_u64(ev.code());
        self.hash.write_u64(arg.unwrap_or(0));
        match ev {
            Event::Crash { kind: CrashKind::Immediate, .. } => self.stats.process_crashes += 1,
            Event::Crash { kind: CrashKind::PowerLoss, .. } => self.stats.power_losses += 1,
            _ => {}
        }
        let res = self.cluster.apply(ev, arg.unwrap_or(0));
        self.lines.clear();
        self.lines.extend(self.cluster.log.drain());
        obs.step(self.events, self.phase, &ev, arg, &self.cluster, &self.lines);
        self.events += 1;
        self.ready = false;
        match res {
            Err(v) => self.done = Some(Err(Stop::Violation(v))),
            Ok(()) => self.prepare(),
        }
    }

    fn stuck_reason(&self, what: &str) -> String {
        let waits = self.cluster.waits();
        if waits.is_empty() {
            format!("{what}: no process can make progress")
        } else {
            format!("{what}: {}", waits.join("; "))
        }
    }

    fn end(&mut self, how: Result<(), Stop>) {
        self.done = Some(how);
        self.ready = false;
    }

    /// Moves to the next decision point: the phase change, the end checks
    /// (cap, stuck, quiesced), or the enabled events of the next step.
    fn prepare(&mut self) {
        loop {
            if self.done.is_some() {
                return;
            }
            if self.phase == Phase::Main {
                let more = self.main_steps < self.steps
                    || (!self.cluster.script_done() && self.main_steps < self.steps + self.quiesce_steps);
                if !more {
                    self.phase = Phase::Quiesce;
                    self.cluster.set_quiesce(true);
                    continue;
                }
            } else if self.quiesce_taken >= self.quiesce_steps {
                let why = self.stuck_reason(&format!("did not quiesce within {} steps", self.quiesce_steps));
                return self.end(Err(Stop::Stuck(why)));
            }
            if let Some(cap) = self.cap
                && self.events >= cap
            {
                return self.end(Err(Stop::Stuck(format!("cut at {cap} events"))));
            }
            self.cluster.enabled_cached(&mut self.enabled);
            if self.enabled.is_empty() && self.phase == Phase::Main && self.cluster.is_idle() {
                // Nothing mid-flight (e.g. the load was stopped): the main
                // phase is over early, not stuck.
                self.phase = Phase::Quiesce;
                self.cluster.set_quiesce(true);
                continue;
            }
            if self.enabled.is_empty() {
                let how = match self.phase {
                    Phase::Main => Err(Stop::Stuck(self.stuck_reason("stuck"))),
                    Phase::Quiesce if self.cluster.is_idle() => {
                        self.cluster.check_final().map_err(Stop::Violation)
                    }
                    Phase::Quiesce => Err(Stop::Stuck(self.stuck_reason("stuck after faults stopped"))),
                };
                return self.end(how);
            }
            self.ready = true;
            return;
        }
    }

    /// The result. A run that has not ended is reported stuck ("cut").
    pub fn finish(mut self, seed: u64) -> RunResult {
        let res =
            self.done.take().unwrap_or_else(|| Err(Stop::Stuck(format!("cut at {} events", self.events))));
        let refusal =
            self.cluster.open_refusals().first().map(|r| format!("{} refused: {}", r.node, r.message));
        let (outcome, violation, detail) = match (res, refusal) {
            (Err(Stop::Violation(v)), _) => {
                let d = v.to_string();
                (Outcome::Violation, Some(v), d)
            }
            (_, Some(msg)) => (Outcome::Refused, None, msg),
            (Err(Stop::Stuck(why)), None) => (Outcome::Stuck, None, why),
            (Ok(()), None) => {
                let l = &self.cluster.ledger;
                let detail = format!(
                    "all invariants held; {} commits acknowledged, {} in doubt, {} transactions failed",
                    l.acks, l.in_doubt_count, l.failures
                );
                (Outcome::Ok, None, detail)
            }
        };
        let l = &self.cluster.ledger;
        let mut stats = self.stats;
        stats.commits_acknowledged = l.acks;
        stats.commits_in_doubt = l.in_doubt_count;
        stats.transactions_failed = l.failures;
        stats.checkpoints = self.cluster.nodes.iter().map(|n| u64::from(n.checkpointer.completed)).sum();
        let c = self.cluster;
        let marks = c.marks();
        RunResult {
            seed,
            outcome,
            violation,
            detail,
            events: self.events,
            trace_hash: self.hash.finish(),
            choices: None,
            stats,
            failbacks: c.attempts,
            refusals: c.refusals,
            observations: c.observations,
            marks,
        }
    }
}

/// Runs with any source of draws, the policy `scheduler.policy` names
/// making every choice.
pub fn execute(
    settings: &Settings,
    seed: u64,
    src: &mut dyn ChoiceSource,
    opts: RunOptions,
    obs: &mut dyn Observer,
) -> RunResult {
    let mut policy = policy_for(settings);
    let mut runner = Runner::new(settings, opts);
    while runner.next(policy.as_mut(), src, obs) {}
    runner.finish(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{DrawKind, WeightedRandom};

    fn settings(sets: &[&str]) -> Settings {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        crate::config::load(None, &sets).unwrap()
    }

    #[test]
    fn stepping_by_hand_is_the_same_run() {
        let s = settings(&["faults.process_crash=0.02", "faults.power_loss=0.01", "scheduler.steps=600"]);
        let whole = run_seed(&s, 9, RunOptions { record: true, ..RunOptions::default() }, &mut NoObserver);
        let mut src = SeededSource::new(9, false);
        let mut policy = policy_for(&s);
        let mut r = Runner::new(&s, RunOptions::default());
        while !r.is_done() {
            let look = r.events().is_multiple_of(97);
            let options = if look { r.choices() } else { Vec::new() };
            let c = r.choose(policy.as_mut(), &mut src);
            if look {
                assert!(options.contains(&c), "{c:?} is not among {options:?}");
                assert_eq!(r.clone().fingerprint(), r.fingerprint());
            }
            r.step(c, policy.as_mut(), &mut src, &mut NoObserver);
        }
        let parts = r.finish(9);
        assert_eq!(
            (parts.trace_hash, parts.events, parts.outcome),
            (whole.trace_hash, whole.events, whole.outcome)
        );
    }

    #[test]
    fn every_draw_is_tagged_with_its_kind_and_event() {
        let s = settings(&["faults.process_crash=0.05", "faults.power_loss=0.02", "scheduler.steps=400"]);
        let r = run_seed(&s, 3, RunOptions { record: true, ..RunOptions::default() }, &mut NoObserver);
        let draws = r.choices.unwrap();
        let tags = tags_of(&s, 3, &draws);
        assert_eq!(tags.len(), draws.len());
        assert!(tags.windows(2).all(|w| w[0].event <= w[1].event), "events in order");
        assert_eq!(tags.last().unwrap().event + 1, r.events);
        // Each event: at most one roll, then a target or a pick, then maybe an argument.
        let mut i = 0;
        while i < tags.len() {
            let ev = tags[i].event;
            let kinds: Vec<DrawKind> =
                tags[i..].iter().take_while(|t| t.event == ev).map(|t| t.kind).collect();
            i += kinds.len();
            let ok = matches!(
                kinds.as_slice(),
                [DrawKind::FaultRoll, DrawKind::FaultTarget]
                    | [DrawKind::FaultRoll, DrawKind::Pick]
                    | [DrawKind::FaultRoll, DrawKind::Pick, DrawKind::Argument]
                    | [DrawKind::Pick]
                    | [DrawKind::Pick, DrawKind::Argument]
            );
            assert!(ok, "event {ev}: {kinds:?}");
        }
        assert!(tags.iter().any(|t| t.kind == DrawKind::FaultTarget), "a fault struck");
        assert!(tags.iter().any(|t| t.kind == DrawKind::Argument));
    }

    #[test]
    fn a_choice_encodes_as_the_draws_that_make_it() {
        let s = settings(&["faults.process_crash=0.05", "faults.power_loss=0.02"]);
        let w = WeightedRandom::new(s.scheduler.weights.clone());
        let mut r = Runner::new(&s, RunOptions::default());
        for _ in 0..50 {
            let mut src = SeededSource::new(1, false);
            let mut p = policy_for(&s);
            r.next(p.as_mut(), &mut src, &mut NoObserver);
        }
        for c in r.choices() {
            let draws = match c {
                Choice::Event(i) if w.can_pick(r.enabled(), i) => {
                    vec![r.dice().draw_for(None), w.draw_for(r.enabled(), i)]
                }
                Choice::Event(_) => continue,
                Choice::Fault(kind, i) => vec![r.dice().draw_for(Some(kind)), i as u64],
            };
            let mut p = policy_for(&s);
            let got = r.clone().choose(p.as_mut(), &mut ReplaySource::new(&draws));
            assert_eq!(got, c);
        }
    }
}
