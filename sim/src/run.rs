//! One run: settings + choices → outcome + trace.
//!
//! Phases: the *main* phase takes `scheduler.steps` events with workload
//! and faults on; the *quiesce* phase stops faults and new transactions,
//! restarts crashed nodes and lets work in flight finish, then the final
//! checks run. A run that cannot make progress is `stuck`.

use crate::scheduler::{ChoiceSource, FaultDice, Policy, ReplaySource, SeededSource, WeightedRandom};
use serde::Serialize;
use std::hash::Hasher;
use walsim_model::cluster::Refusal;
use walsim_model::cluster::StableHasher;
use walsim_model::event::CrashKind;
use walsim_model::failback::FailbackAttempt;
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
/// applied, with the cluster's log lines for the step still undrained.
pub trait Observer {
    fn step(&mut self, step: u64, phase: Phase, ev: &Event, arg: Option<u64>, cluster: &mut Cluster);
}

/// An observer that does nothing (the fast path).
pub struct NoObserver;

impl Observer for NoObserver {
    fn step(&mut self, _: u64, _: Phase, _: &Event, _: Option<u64>, _: &mut Cluster) {}
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

struct Runner<'a> {
    cluster: Cluster,
    src: &'a mut dyn ChoiceSource,
    policy: WeightedRandom,
    obs: &'a mut dyn Observer,
    enabled: Vec<Event>,
    faults: Vec<Event>,
    hash: StableHasher,
    events: u64,
    stats: RunStats,
    cap: Option<u64>,
}

enum Stop {
    Violation(Violation),
    Stuck(String),
}

impl Runner<'_> {
    fn apply(&mut self, phase: Phase, ev: Event) -> Result<(), Stop> {
        let arg = self.cluster.takes_argument(&ev).then(|| self.src.draw(u64::MAX));
        self.hash.write_u64(ev.code());
        self.hash.write_u64(arg.unwrap_or(0));
        match ev {
            Event::Crash { kind: CrashKind::Immediate, .. } => self.stats.process_crashes += 1,
            Event::Crash { kind: CrashKind::PowerLoss, .. } => self.stats.power_losses += 1,
            _ => {}
        }
        let res = self.cluster.apply(ev, arg.unwrap_or(0));
        self.obs.step(self.events, phase, &ev, arg, &mut self.cluster);
        self.events += 1;
        res.map_err(Stop::Violation)
    }

    fn check_cap(&self) -> Result<(), Stop> {
        match self.cap {
            Some(cap) if self.events >= cap => Err(Stop::Stuck(format!("cut at {cap} events"))),
            _ => Ok(()),
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

    /// `steps` events, then on until the operator's script has run
    /// (at most `extra` more events).
    fn main_phase(&mut self, steps: u64, extra: u64, dice: &FaultDice) -> Result<(), Stop> {
        let mut step = 0;
        while step < steps || (!self.cluster.script_done() && step < steps + extra) {
            step += 1;
            self.check_cap()?;
            self.cluster.enabled(&mut self.enabled);
            if self.enabled.is_empty() {
                // Nothing mid-flight (e.g. the load was stopped): the main
                // phase is over early, not stuck.
                if self.cluster.is_idle() {
                    return Ok(());
                }
                return Err(Stop::Stuck(self.stuck_reason("stuck")));
            }
            if let Some(kind) = dice.any().then(|| dice.roll(self.src)).flatten() {
                self.cluster.enabled_faults(kind, &mut self.faults);
                if !self.faults.is_empty() {
                    let i = self.src.draw(self.faults.len() as u64) as usize;
                    let ev = self.faults[i];
                    self.apply(Phase::Main, ev)?;
                    continue;
                }
            }
            let i = self.policy.pick(&self.enabled, self.src);
            let ev = self.enabled[i];
            self.apply(Phase::Main, ev)?;
        }
        Ok(())
    }

    fn quiesce_phase(&mut self, max_steps: u64) -> Result<(), Stop> {
        self.cluster.set_quiesce(true);
        for _ in 0..max_steps {
            self.check_cap()?;
            self.cluster.enabled(&mut self.enabled);
            if self.enabled.is_empty() {
                if self.cluster.is_idle() {
                    return self.cluster.check_final().map_err(Stop::Violation);
                }
                return Err(Stop::Stuck(self.stuck_reason("stuck after faults stopped")));
            }
            let i = self.policy.pick(&self.enabled, self.src);
            let ev = self.enabled[i];
            self.apply(Phase::Quiesce, ev)?;
        }
        Err(Stop::Stuck(self.stuck_reason(&format!("did not quiesce within {max_steps} steps"))))
    }
}

/// Runs with any source of draws (the shrinker wraps a replay to see
/// which draws each event consumed).
pub fn execute(
    settings: &Settings,
    seed: u64,
    src: &mut dyn ChoiceSource,
    opts: RunOptions,
    obs: &mut dyn Observer,
) -> RunResult {
    let dice = FaultDice::new(&settings.faults);
    let mut runner = Runner {
        cluster: Cluster::new(settings.clone(), opts.log),
        src,
        policy: WeightedRandom::new(settings.scheduler.weights.clone()),
        obs,
        enabled: Vec::with_capacity(32),
        faults: Vec::with_capacity(8),
        hash: StableHasher::default(),
        events: 0,
        stats: RunStats::default(),
        cap: opts.max_events,
    };
    let res = runner
        .main_phase(settings.scheduler.steps, settings.scheduler.quiesce_steps, &dice)
        .and_then(|()| runner.quiesce_phase(settings.scheduler.quiesce_steps));
    let refusal =
        runner.cluster.open_refusals().first().map(|r| format!("{} refused: {}", r.node, r.message));
    let (outcome, violation, detail) = match (res, refusal) {
        (Err(Stop::Violation(v)), _) => {
            let d = v.to_string();
            (Outcome::Violation, Some(v), d)
        }
        (_, Some(msg)) => (Outcome::Refused, None, msg),
        (Err(Stop::Stuck(why)), None) => (Outcome::Stuck, None, why),
        (Ok(()), None) => {
            let l = &runner.cluster.ledger;
            let detail = format!(
                "all invariants held; {} commits acknowledged, {} in doubt, {} transactions failed",
                l.acks, l.in_doubt_count, l.failures
            );
            (Outcome::Ok, None, detail)
        }
    };
    let l = &runner.cluster.ledger;
    let mut stats = runner.stats;
    stats.commits_acknowledged = l.acks;
    stats.commits_in_doubt = l.in_doubt_count;
    stats.transactions_failed = l.failures;
    stats.checkpoints = runner.cluster.nodes.iter().map(|n| u64::from(n.checkpointer.completed)).sum();
    let c = runner.cluster;
    RunResult {
        seed,
        outcome,
        violation,
        detail,
        events: runner.events,
        trace_hash: runner.hash.finish(),
        choices: None,
        stats,
        failbacks: c.attempts,
        refusals: c.refusals,
        observations: c.observations,
    }
}
