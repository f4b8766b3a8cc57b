//! The scheduler: the one place where choices are made.
//!
//! Every nondeterministic decision is a *draw* from a [`ChoiceSource`]: a
//! seeded ChaCha generator when exploring, a recorded sequence when
//! replaying or shrinking. A run is therefore its sequence of draws. Each
//! draw is made through the [`Policy`] (chosen by `scheduler.policy`) and
//! carries a [`Tag`]: what it decides ([`DrawKind`]) and the index of the
//! event it belongs to, so tools that edit draws (the shrinker) know the
//! boundaries instead of guessing them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use walsim_model::event::{Event, EventKind, FaultKind};
use walsim_model::ids::NodeId;
use walsim_model::settings::{FaultSettings, SchedulerPolicy, Settings, Weights};

/// What a draw decides.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum DrawKind {
    /// Which enabled event runs next.
    Pick,
    /// Whether a fault strikes this step, and of which kind.
    FaultRoll,
    /// Which node (or pair) the fault strikes.
    FaultTarget,
    /// The event's argument (a transaction's key and payload).
    Argument,
    /// A policy's own setup (PCT's priorities and change points).
    Setup,
}

impl DrawKind {
    pub fn name(self) -> &'static str {
        match self {
            DrawKind::Pick => "pick",
            DrawKind::FaultRoll => "fault_roll",
            DrawKind::FaultTarget => "fault_target",
            DrawKind::Argument => "argument",
            DrawKind::Setup => "setup",
        }
    }
}

/// A draw's kind and the index of the event it belongs to (the event the
/// run applies next; setup draws belong to event 0).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tag {
    pub kind: DrawKind,
    pub event: u64,
}

/// Where draws come from.
pub trait ChoiceSource {
    /// A value in `0..bound` (`bound` ≥ 1).
    fn draw(&mut self, bound: u64, tag: Tag) -> u64;
}

/// The draws of a run and their tags, as recorded.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Recording {
    pub draws: Vec<u64>,
    pub tags: Vec<Tag>,
}

impl Recording {
    fn push(&mut self, v: u64, tag: Tag) {
        self.draws.push(v);
        self.tags.push(tag);
    }
}

/// Seeded draws, optionally recorded.
pub struct SeededSource {
    rng: ChaCha8Rng,
    record: Option<Recording>,
}

impl SeededSource {
    pub fn new(seed: u64, record: bool) -> SeededSource {
        SeededSource { rng: ChaCha8Rng::seed_from_u64(seed), record: record.then(Recording::default) }
    }

    /// The draws made so far, if recording.
    pub fn into_record(self) -> Option<Vec<u64>> {
        self.record.map(|r| r.draws)
    }

    /// The draws made so far and their tags, if recording.
    pub fn recording(&self) -> Option<&Recording> {
        self.record.as_ref()
    }
}

impl ChoiceSource for SeededSource {
    #[inline]
    fn draw(&mut self, bound: u64, tag: Tag) -> u64 {
        debug_assert!(bound >= 1);
        // Multiply-shift: unbiased enough, stable across rand releases.
        let v = ((u128::from(self.rng.next_u64()) * u128::from(bound)) >> 64) as u64;
        if let Some(r) = &mut self.record {
            r.push(v, tag);
        }
        v
    }
}

/// Draws from a recorded sequence. Past its end every draw is 0; a value
/// out of range is reduced. So any sequence (a shrunk one included) is a
/// valid run. With [`ReplaySource::tagged`], the tag of each draw made is
/// kept.
pub struct ReplaySource<'a> {
    draws: &'a [u64],
    pos: usize,
    tags: Option<Vec<Tag>>,
}

impl<'a> ReplaySource<'a> {
    pub fn new(draws: &'a [u64]) -> ReplaySource<'a> {
        ReplaySource { draws, pos: 0, tags: None }
    }

    /// A replay that keeps the tag of every draw made.
    pub fn tagged(draws: &'a [u64]) -> ReplaySource<'a> {
        ReplaySource { draws, pos: 0, tags: Some(Vec::new()) }
    }

    /// Draws consumed so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// The tags of the draws made (with [`ReplaySource::tagged`]).
    pub fn into_tags(self) -> Vec<Tag> {
        self.tags.unwrap_or_default()
    }
}

impl ChoiceSource for ReplaySource<'_> {
    fn draw(&mut self, bound: u64, tag: Tag) -> u64 {
        let v = self.draws.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        if let Some(t) = &mut self.tags {
            t.push(tag);
        }
        if v < bound { v } else { v % bound }
    }
}

/// Turns draws into choices: every decision of a run goes through one
/// policy, which takes its draws from the source with their tags.
pub trait Policy {
    /// Index into `enabled` (non-empty): the event to run as event `event`.
    fn pick(&mut self, enabled: &[Event], src: &mut dyn ChoiceSource, event: u64) -> usize;

    /// Whether a fault of some kind strikes as event `event`.
    fn fault_roll(&mut self, dice: &FaultDice, src: &mut dyn ChoiceSource, event: u64) -> Option<FaultKind> {
        dice.roll(src, event)
    }

    /// Which of the possible `faults` (non-empty) strikes.
    fn fault_target(&mut self, faults: &[Event], src: &mut dyn ChoiceSource, event: u64) -> usize {
        src.draw(faults.len() as u64, Tag { kind: DrawKind::FaultTarget, event }) as usize
    }

    /// The argument of `ev` (a transaction's key and payload).
    fn argument(&mut self, _ev: &Event, src: &mut dyn ChoiceSource, event: u64) -> u64 {
        src.draw(u64::MAX, Tag { kind: DrawKind::Argument, event })
    }
}

/// The policy `settings.scheduler.policy` names.
pub fn policy_for(settings: &Settings) -> Box<dyn Policy> {
    match settings.scheduler.policy {
        SchedulerPolicy::Random => Box::new(WeightedRandom::new(settings.scheduler.weights.clone())),
        SchedulerPolicy::Pct => Box::new(Pct::new(settings)),
    }
}

/// PCT, probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi,
/// Nagarakatte, "A randomized scheduler with probabilistic guarantees of
/// finding bugs", ASPLOS 2010). A *process* is a node × process kind
/// (node2's walsender, node1's backends, the operator). Each gets a random
/// priority ≥ d when it is first enabled; the enabled process with the
/// highest priority runs. At each of d − 1 change points, drawn among the
/// first `scheduler.pct_steps` events, the process that runs drops to
/// priority i (the i-th change point), below every initial one. A bug that
/// needs d ordering constraints among n processes in k steps is then found
/// with probability at least 1/(n·k^(d−1)) per run.
///
/// Every value comes from the run's draws (tagged [`DrawKind::Setup`]):
/// the change points first, then a priority when a process is first seen.
/// Faults and arguments are drawn as by the weighted random policy; a kind
/// weighted zero still runs only when nothing else can.
pub struct Pct {
    filter: WeightedRandom,
    depth: u32,
    steps: u64,
    /// Change points (event indices), ascending; `None` until drawn.
    change_points: Option<Vec<u64>>,
    /// The next change point not yet passed.
    next_change: usize,
    /// (process, priority), in order of first sight.
    priorities: Vec<((NodeId, EventKind), u64)>,
}

impl Pct {
    pub fn new(settings: &Settings) -> Pct {
        Pct {
            filter: WeightedRandom::new(settings.scheduler.weights.clone()),
            depth: settings.scheduler.pct_depth,
            steps: settings.scheduler.pct_steps,
            change_points: None,
            next_change: 0,
            priorities: Vec::new(),
        }
    }

    fn priority(&mut self, p: (NodeId, EventKind), src: &mut dyn ChoiceSource, event: u64) -> u64 {
        if let Some(&(_, prio)) = self.priorities.iter().find(|(q, _)| *q == p) {
            return prio;
        }
        let prio = u64::from(self.depth) + src.draw(1 << 32, Tag { kind: DrawKind::Setup, event });
        self.priorities.push((p, prio));
        prio
    }
}

impl Policy for Pct {
    fn pick(&mut self, enabled: &[Event], src: &mut dyn ChoiceSource, event: u64) -> usize {
        if self.change_points.is_none() {
            let mut cps: Vec<u64> =
                (1..self.depth).map(|_| src.draw(self.steps, Tag { kind: DrawKind::Setup, event })).collect();
            cps.sort_unstable();
            self.change_points = Some(cps);
        }
        let mut best: Option<(u64, usize)> = None;
        for i in 0..enabled.len() {
            if !self.filter.can_pick(enabled, i) {
                continue;
            }
            let p = (enabled[i].node(), enabled[i].kind());
            let prio = self.priority(p, src, event);
            if best.is_none_or(|(b, _)| prio > b) {
                best = Some((prio, i));
            }
        }
        let (_, i) = best.expect("an enabled event can be picked");
        let cps = self.change_points.as_deref().unwrap_or(&[]);
        if self.next_change < cps.len() && event >= cps[self.next_change] {
            self.next_change += 1;
            let p = (enabled[i].node(), enabled[i].kind());
            let low = self.next_change as u64;
            if let Some(e) = self.priorities.iter_mut().find(|(q, _)| *q == p) {
                e.1 = low;
            }
        }
        i
    }
}

/// Uniform random choice weighted by event kind.
pub struct WeightedRandom {
    weights: Weights,
    /// `weight(kind)` by `kind as usize` (one load per event in `pick`).
    table: [u64; EventKind::COUNT],
}

impl WeightedRandom {
    pub fn new(weights: Weights) -> WeightedRandom {
        let mut r = WeightedRandom { weights, table: [0; EventKind::COUNT] };
        for k in EventKind::ALL {
            r.table[k as usize] = r.weight(k);
        }
        r
    }

    /// Whether the policy can pick `enabled[i]`: a kind weighted zero only
    /// when every enabled event weighs zero.
    pub fn can_pick(&self, enabled: &[Event], i: usize) -> bool {
        self.weight(enabled[i].kind()) > 0 || enabled.iter().all(|e| self.weight(e.kind()) == 0)
    }

    /// The draw that picks `enabled[i]` (the lowest in its band).
    pub fn draw_for(&self, enabled: &[Event], i: usize) -> u64 {
        let floor = u64::from(enabled.iter().all(|e| self.weight(e.kind()) == 0));
        enabled[..i].iter().map(|e| self.weight(e.kind()).max(floor)).sum()
    }

    fn weight(&self, kind: EventKind) -> u64 {
        u64::from(kind.weight(&self.weights))
    }
}

impl Policy for WeightedRandom {
    fn pick(&mut self, enabled: &[Event], src: &mut dyn ChoiceSource, event: u64) -> usize {
        // A kind weighted zero runs only when nothing else can (all enabled
        // events weigh zero: then they count as one each). Weights are
        // never negative, so "all zero" is "total zero". The pick is the
        // first event whose running total exceeds the draw (what a
        // partition point over the running totals gave, without storing
        // them: no per-step buffer).
        let w = &self.table;
        let mut total: u64 = enabled.iter().map(|e| w[e.kind() as usize]).sum();
        let floor = u64::from(total == 0);
        if floor == 1 {
            total = enabled.len() as u64;
        }
        let r = src.draw(total, Tag { kind: DrawKind::Pick, event });
        let mut run = 0u64;
        for (i, e) in enabled.iter().enumerate() {
            run += w[e.kind() as usize].max(floor);
            if run > r {
                return i;
            }
        }
        enabled.len()
    }
}

/// Fault decisions: one draw per step in `0..2^32`. A fault happens when
/// the draw is at the *top* of the range, so lowering draws (what the
/// shrinker does) removes faults rather than adding them.
#[derive(Clone, Debug)]
pub struct FaultDice {
    /// (lowest draw that means this fault, fault), highest band first.
    bands: Vec<(u64, FaultKind)>,
}

const FAULT_RANGE: u64 = 1 << 32;

impl FaultDice {
    pub fn new(f: &FaultSettings) -> FaultDice {
        let scale = |p: f64| (p * FAULT_RANGE as f64).round() as u64;
        let mut from = FAULT_RANGE;
        let mut bands = Vec::new();
        for (p, kind) in [
            (f.power_loss, FaultKind::PowerLoss),
            (f.process_crash, FaultKind::ProcessCrash),
            (f.disconnect, FaultKind::Disconnect),
            (f.partition, FaultKind::Partition),
            (f.archive_command, FaultKind::ArchiveCommand),
        ] {
            if p > 0.0 {
                from = from.saturating_sub(scale(p));
                bands.push((from, kind));
            }
        }
        FaultDice { bands }
    }

    pub fn any(&self) -> bool {
        !self.bands.is_empty()
    }

    /// The fault this step (event `event`), if any.
    pub fn roll(&self, src: &mut dyn ChoiceSource, event: u64) -> Option<FaultKind> {
        let x = src.draw(FAULT_RANGE, Tag { kind: DrawKind::FaultRoll, event });
        self.bands.iter().find(|&&(from, _)| x >= from).map(|&(_, k)| k)
    }

    /// The fault kinds that can strike, in roll order.
    pub fn kinds(&self) -> impl Iterator<Item = FaultKind> + '_ {
        self.bands.iter().map(|&(_, k)| k)
    }

    /// The roll that means `kind` (`None`: the roll that means no fault).
    pub fn draw_for(&self, kind: Option<FaultKind>) -> u64 {
        kind.and_then(|k| self.bands.iter().find(|&&(_, b)| b == k)).map_or(0, |&(from, _)| from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tag = Tag { kind: DrawKind::Pick, event: 0 };

    #[test]
    fn seeded_draws_are_reproducible_and_recorded() {
        let mut a = SeededSource::new(7, true);
        let mut b = SeededSource::new(7, false);
        let xs: Vec<u64> = (0..100).map(|_| a.draw(10, T)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.draw(10, T)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|&x| x < 10));
        assert_eq!(a.into_record().unwrap(), xs);
        let mut r = ReplaySource::new(&xs);
        let zs: Vec<u64> = (0..100).map(|_| r.draw(10, T)).collect();
        assert_eq!(zs, xs);
        assert_eq!(r.draw(10, T), 0, "past the end draws are zero");
    }

    #[test]
    fn a_zero_weight_runs_only_when_nothing_else_can() {
        use walsim_model::Event;
        let weights = Weights { checkpoint_request: 0, ..Weights::default() };
        let mut p = WeightedRandom::new(weights);
        let both = [Event::RequestCheckpoint { node: NodeId(0) }, Event::WalWriter { node: NodeId(0) }];
        let mut src = SeededSource::new(3, false);
        assert!((0..200).all(|_| p.pick(&both, &mut src, 0) == 1), "a zero-weight kind was picked");
        let alone = [Event::RequestCheckpoint { node: NodeId(0) }];
        assert_eq!(p.pick(&alone, &mut src, 0), 0);
    }

    #[test]
    fn pct_runs_the_highest_priority_process_until_a_change_point() {
        let s = Settings {
            scheduler: walsim_model::settings::SchedulerSettings {
                pct_depth: 2,
                pct_steps: 100,
                ..Default::default()
            },
            ..Settings::default()
        };
        let mut p = Pct::new(&s);
        let evs = [Event::WalWriter { node: NodeId(0) }, Event::BgWriter { node: NodeId(0) }];
        // Draws: the one change point (event 3), then the priorities of the
        // WAL writer (5) and the background writer (9).
        let draws = [3, 5, 9];
        let mut src = ReplaySource::tagged(&draws);
        let picks: Vec<usize> = (0..6).map(|e| p.pick(&evs, &mut src, e)).collect();
        assert_eq!(
            picks,
            [1, 1, 1, 1, 0, 0],
            "bgwriter until the change point at event 3, then the WAL writer"
        );
        let kinds: Vec<DrawKind> = src.into_tags().iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [DrawKind::Setup; 3]);
    }

    #[test]
    fn zero_draws_mean_no_fault() {
        let f = FaultSettings {
            process_crash: 0.5,
            power_loss: 0.25,
            disconnect: 0.0,
            partition: 0.0,
            archive_command: 0.0,
            crash_images: 0,
        };
        let dice = FaultDice::new(&f);
        let zeros = [0u64; 4];
        assert_eq!(dice.roll(&mut ReplaySource::new(&zeros), 0), None);
        let top = [FAULT_RANGE - 1];
        assert_eq!(dice.roll(&mut ReplaySource::new(&top), 0), Some(FaultKind::PowerLoss));
        let mid = [FAULT_RANGE / 2];
        assert_eq!(dice.roll(&mut ReplaySource::new(&mid), 0), Some(FaultKind::ProcessCrash));
        let none = FaultSettings {
            process_crash: 0.0,
            power_loss: 0.0,
            disconnect: 0.0,
            partition: 0.0,
            archive_command: 0.0,
            crash_images: 0,
        };
        assert!(!FaultDice::new(&none).any());
    }
}
