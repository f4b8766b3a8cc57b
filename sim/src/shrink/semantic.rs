//! Semantic shrinking: the run as a list of *events* (which process did
//! what, with which argument), edited as a person would edit a story, and
//! encoded back into draws.
//!
//! A draw is an index into the events enabled at that moment, so deleting
//! a draw shifts the meaning of every later one. An event keeps its
//! meaning: [`play`] replays a list of events by finding each one among
//! the events enabled when its turn comes (skipping it when it is not
//! enabled any more, e.g. the commit of a transaction whose begin was
//! dropped) and writing down the draws that choose it. So a whole
//! transaction, a client, a checkpoint, a background-writer pass or a
//! fault can be dropped as a unit, and the rest of the story stays what it
//! was.

use super::{Best, Shrinker};
use crate::run::{Choice, NoObserver, Observer, Phase, RunOptions, RunResult, Runner, run_choices, run_seed};
use crate::scheduler::{ChoiceSource, Policy, ReplaySource, WeightedRandom, policy_for};
use std::rc::Rc;
use walsim_model::event::EventKind;
use walsim_model::ids::NodeId;
use walsim_model::log::LogLine;
use walsim_model::settings::SchedulerPolicy;
use walsim_model::{Cluster, Event, Settings};

/// Most groups [`Shrinker::pair_pass`] pairs up.
const PAIR_GROUPS: usize = 48;

/// One event of a run and its argument, if it took one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Step {
    pub ev: Event,
    pub arg: Option<u64>,
}

/// Whether runs of `settings` can be replayed from events: the weighted
/// random policy (PCT's draws are priorities, not picks).
pub(super) fn supported(settings: &Settings) -> bool {
    settings.scheduler.policy == SchedulerPolicy::Random
}

/// The events of the run of `choices`, in order.
pub(super) fn script_of(settings: &Settings, seed: u64, choices: &[u64]) -> Vec<Step> {
    struct Rec(Vec<Step>);
    impl Observer for Rec {
        fn step(&mut self, _: u64, _: Phase, ev: &Event, arg: Option<u64>, _: &Cluster, _: &[LogLine]) {
            self.0.push(Step { ev: *ev, arg });
        }
    }
    let mut rec = Rec(Vec::new());
    run_choices(settings, seed, choices, RunOptions::default(), &mut rec);
    rec.0
}

/// Hands the runner the argument a step wants (the event's own draw,
/// written down as such).
struct Feed {
    want: Option<u64>,
    taken: Option<u64>,
}

impl Policy for Feed {
    fn pick(&mut self, _: &[Event], _: &mut dyn ChoiceSource, _: u64) -> usize {
        unreachable!("a scripted step is chosen by play()")
    }

    fn argument(&mut self, _: &Event, _: &mut dyn ChoiceSource, _: u64) -> u64 {
        // An event that took no argument in the script but takes one now
        // (a backend that is idle again) gets 0: any value is a valid run.
        let v = self.want.unwrap_or(0);
        self.taken = Some(v);
        v
    }
}

/// Runs `script` under `settings` (supported, validated): each step in
/// turn is chosen if it is enabled and skipped if not; when the script
/// is spent, the run goes on with zero draws (the first enabled event, no
/// fault), as a replay past its recorded draws does. The result carries
/// the draws that replay this run exactly (`run_choices`).
pub(super) fn play(settings: &Settings, seed: u64, script: &[Step], max_events: Option<u64>) -> RunResult {
    let weights = WeightedRandom::new(settings.scheduler.weights.clone());
    let mut runner = Runner::new(settings, RunOptions { record: false, log: false, max_events });
    let mut draws: Vec<u64> = Vec::with_capacity(script.len() * 3);
    let mut feed = Feed { want: None, taken: None };
    let mut none = ReplaySource::new(&[]);
    for want in script {
        if runner.is_done() {
            break;
        }
        let rolls = runner.phase() == Phase::Main && runner.dice().any();
        let enabled = runner.enabled();
        let choice = match enabled.iter().position(|e| *e == want.ev) {
            Some(i) if weights.can_pick(enabled, i) => {
                if rolls {
                    draws.push(runner.dice().draw_for(None));
                }
                draws.push(weights.draw_for(enabled, i));
                Choice::Event(i)
            }
            Some(_) => continue,
            None if rolls && want.ev.kind() == EventKind::Fault => {
                let found = runner.choices().into_iter().find_map(|c| match c {
                    Choice::Fault(kind, i) => (runner.event_of(c) == want.ev).then_some((kind, i)),
                    Choice::Event(_) => None,
                });
                let Some((kind, i)) = found else { continue };
                draws.push(runner.dice().draw_for(Some(kind)));
                draws.push(i as u64);
                Choice::Fault(kind, i)
            }
            None => continue,
        };
        feed.want = want.arg;
        feed.taken = None;
        runner.step(choice, &mut feed, &mut none, &mut NoObserver);
        draws.extend(feed.taken);
    }
    let mut policy = policy_for(settings);
    while runner.next(policy.as_mut(), &mut none, &mut NoObserver) {}
    let mut r = runner.finish(seed);
    // Zero draws at the end are what a replay reads past the end anyway.
    while draws.last() == Some(&0) {
        draws.pop();
    }
    r.choices = Some(draws);
    r
}

/// Groups of steps that mean one thing, each a candidate to drop as a
/// unit, largest first (ties: earliest first): each client's
/// transactions (begin to the next begin of the same backend), each
/// client as a whole, each checkpoint (a request and the checkpointer's
/// steps up to the next request), every process's whole activity (a
/// background writer, a WAL writer, a walsender ...), and each fault.
pub(super) fn groups(script: &[Step]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    // Transactions: per (node, backend), a new group at each begin (a
    // step that took an argument).
    let mut open: Vec<((NodeId, u8), usize)> = Vec::new();
    let mut clients: Vec<(u8, Vec<usize>)> = Vec::new();
    let mut checkpoints: Vec<(NodeId, usize)> = Vec::new();
    let mut processes: Vec<((NodeId, u64), Vec<usize>)> = Vec::new();
    for (i, s) in script.iter().enumerate() {
        let node = s.ev.node();
        match s.ev {
            Event::Backend { backend, .. } => {
                let key = (node, backend);
                match open.iter().position(|(k, _)| *k == key) {
                    Some(g) if s.arg.is_none() => out[open[g].1].push(i),
                    Some(g) => {
                        open[g].1 = out.len();
                        out.push(vec![i]);
                    }
                    None => {
                        open.push((key, out.len()));
                        out.push(vec![i]);
                    }
                }
                match clients.iter_mut().find(|(b, _)| *b == backend) {
                    Some((_, v)) => v.push(i),
                    None => clients.push((backend, vec![i])),
                }
            }
            Event::RequestCheckpoint { .. } | Event::Checkpointer { .. } => {
                let starts = matches!(s.ev, Event::RequestCheckpoint { .. });
                match checkpoints.iter().position(|(n, _)| *n == node) {
                    Some(g) if !starts => out[checkpoints[g].1].push(i),
                    Some(g) => {
                        checkpoints[g].1 = out.len();
                        out.push(vec![i]);
                    }
                    None => {
                        checkpoints.push((node, out.len()));
                        out.push(vec![i]);
                    }
                }
            }
            _ => {}
        }
        if s.ev.kind() == EventKind::Fault {
            out.push(vec![i]);
        }
        // A process: the event with its argument-free identity (node,
        // kind, detail), e.g. node1's background writer.
        let key = (node, s.ev.code());
        match processes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => processes.push((key, vec![i])),
        }
    }
    out.extend(clients.into_iter().map(|(_, v)| v));
    out.extend(processes.into_iter().map(|(_, v)| v).filter(|v| v.len() > 1));
    out.retain(|g| !g.is_empty() && g.len() < script.len());
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    out.dedup();
    out
}

/// `script` without the steps in `drop` (sorted).
pub(super) fn without(script: &[Step], drop: &[usize]) -> Vec<Step> {
    let mut d = drop.iter().peekable();
    let mut out = Vec::with_capacity(script.len());
    for (i, s) in script.iter().enumerate() {
        if d.peek() == Some(&&i) {
            d.next();
        } else {
            out.push(*s);
        }
    }
    out
}

impl Shrinker {
    /// The best run's events.
    pub(super) fn script(&mut self) -> Rc<Vec<Step>> {
        if let Some(s) = &self.script_cache {
            return Rc::clone(s);
        }
        let s = Rc::new(script_of(&self.best.settings, self.seed, self.best.choices()));
        self.script_cache = Some(Rc::clone(&s));
        s
    }

    /// Plays `script` (`table` `None`: the best settings); `Some` if it
    /// fails the same invariant.
    pub(super) fn test_script(&mut self, table: Option<toml::Table>, script: &[Step]) -> Option<Best> {
        if self.spent() {
            return None;
        }
        let (table, settings) = self.candidate(table)?;
        if !supported(&settings) {
            return None;
        }
        self.attempts += 1;
        let result = play(&settings, self.seed, script, Some(self.best.result.events));
        (result.invariant() == Some(self.target)).then_some(Best { table, settings, result })
    }

    fn try_script(&mut self, script: &[Step]) -> bool {
        self.test_script(None, script).is_some_and(|c| self.offer(c))
    }

    /// Drops each operator step (last first) the failure does not need:
    /// the script's later steps are renumbered and the same events played
    /// under the shorter script. A step the failure needs (the promotion,
    /// the failback) stays; one that only made the run longer goes.
    pub(super) fn operator_pass(&mut self) -> bool {
        if !supported(&self.best.settings) {
            return false;
        }
        let mut improved = false;
        let steps = |t: &toml::Table| t.get("operator").and_then(toml::Value::as_array).map_or(0, Vec::len);
        let mut j = steps(&self.best.table);
        while j > 0 && !self.spent() {
            j -= 1;
            let mut table = self.best.table.clone();
            let Some(list) = table.get_mut("operator").and_then(toml::Value::as_array_mut) else { break };
            if j >= list.len() {
                continue;
            }
            list.remove(j);
            let script: Vec<Step> = self
                .script()
                .iter()
                .filter_map(|s| match s.ev {
                    Event::Operator { step, .. } if usize::from(step) == j => None,
                    Event::Operator { node, step } if usize::from(step) > j => {
                        Some(Step { ev: Event::Operator { node, step: step - 1 }, arg: s.arg })
                    }
                    _ => Some(*s),
                })
                .collect();
            if let Some(c) = self.test_script(Some(table.clone()), &script) {
                improved |= self.offer(c);
            } else {
                improved |= self.reseed_without_step(table);
            }
        }
        improved
    }

    /// A step whose removal the same events do not survive may still be
    /// one the failure does not need: the events were chosen with the step
    /// there (a `pg_switch_wal()` moves every later WAL position, so a
    /// failure that is a coincidence of positions is lost with it). Fresh
    /// runs without the step (seeds `seed`, `seed + 1`, ...,
    /// [`STEP_RESEEDS`](super::STEP_RESEEDS) of them) look for the same
    /// invariant failing; the shortest that does is replayed under this shrink's seed
    /// (validated, not assumed), shrunk within a small budget
    /// ([`LOOKAHEAD`](super::LOOKAHEAD)) and kept if it ends with fewer
    /// events than the best run. Each script is judged once; only the top-level
    /// shrinker does this (not a look-ahead's).
    fn reseed_without_step(&mut self, table: toml::Table) -> bool {
        let key = table.get("operator").map(toml::Value::to_string).unwrap_or_default();
        if !self.lookahead || !self.looked_scripts.insert(key) {
            return false;
        }
        let Ok(settings) = crate::config::settings_from_table(table.clone(), None, &[]) else { return false };
        // The shortest failing fresh run (the earliest seed of those as
        // short): the cheapest start, and the nearest to a small run.
        let mut shortest: Option<RunResult> = None;
        for n in 0..super::STEP_RESEEDS {
            if self.spent() {
                return false;
            }
            self.attempts += 1;
            let fresh = run_seed(&settings, self.seed.wrapping_add(n), super::RECORD, &mut NoObserver);
            if fresh.invariant() == Some(self.target)
                && shortest.as_ref().is_none_or(|s| fresh.events < s.events)
            {
                shortest = Some(fresh);
            }
        }
        let Some(fresh) = shortest else { return false };
        self.attempts += 1;
        let choices = fresh.choices.expect("recorded");
        let result = run_choices(&settings, self.seed, &choices, super::RECORD, &mut NoObserver);
        if result.invariant() != Some(self.target) {
            return false;
        }
        let knobs = super::knobs_of(&table).0;
        let start = Best { table, settings, result };
        let mut sub = Shrinker::new(self.target, self.seed, self.input.clone(), knobs, start);
        sub.lookahead = false;
        sub.max_attempts = super::LOOKAHEAD.min(self.max_attempts - self.attempts);
        sub.run();
        self.attempts += sub.attempts;
        // A fresh run is another run: kept only if it has fewer events
        // (not merely a smaller config), so a story is replaced only by a
        // shorter one.
        sub.best.result.events < self.best.result.events && self.offer(sub.best)
    }

    /// Drops two groups ([`groups`]) at once, each pair tried once per
    /// best run (first group earliest in the list, the list's order): a
    /// failure that is a coincidence of WAL positions on two nodes (a
    /// record of one starting exactly where the other's WAL ends) survives
    /// dropping a transaction on each node whose WAL is the same size, and
    /// dropping either alone. Only while there are at most [`PAIR_GROUPS`]
    /// groups (a quadratic pass, for runs already small).
    fn pair_pass(&mut self) -> bool {
        let mut improved = false;
        let (mut i, mut j) = (0, 1);
        loop {
            let script = self.script();
            let gs = groups(&script);
            if gs.len() > PAIR_GROUPS || self.spent() {
                break;
            }
            if j >= gs.len() {
                i += 1;
                j = i + 1;
                if j >= gs.len() {
                    break;
                }
            }
            let mut both: Vec<usize> = gs[i].iter().chain(&gs[j]).copied().collect();
            both.sort_unstable();
            both.dedup();
            if both.len() < script.len() && self.try_script(&without(&script, &both)) {
                // The groups are renumbered: go on from the same first
                // group.
                improved = true;
                j = i + 1;
            } else {
                j += 1;
            }
        }
        improved
    }

    /// Drops groups of events that mean one thing ([`groups`]), then runs
    /// of events, large to small; each kept if the same invariant still
    /// fails and the run is smaller.
    pub(super) fn semantic_pass(&mut self) -> bool {
        if !supported(&self.best.settings) {
            return false;
        }
        let mut improved = false;
        let mut g = 0;
        loop {
            let script = self.script();
            let gs = groups(&script);
            let Some(group) = gs.get(g) else { break };
            if self.spent() {
                break;
            }
            if self.try_script(&without(&script, group)) {
                improved = true;
            } else {
                g += 1;
            }
        }
        improved |= self.pair_pass();
        let mut size = self.script().len().next_power_of_two() / 2;
        while size >= 1 && !self.spent() {
            let step = if size > 4 { size / 2 } else { 1 };
            let mut i = self.script().len().saturating_sub(size);
            loop {
                let script = self.script();
                if i < script.len() {
                    let end = (i + size).min(script.len());
                    let drop: Vec<usize> = (i..end).collect();
                    improved |= self.try_script(&without(&script, &drop));
                }
                if i == 0 || self.spent() {
                    break;
                }
                i = i.saturating_sub(step).min(self.script().len().saturating_sub(1));
            }
            size /= 2;
        }
        improved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::run::run_seed;

    #[test]
    fn playing_a_runs_events_gives_the_same_run_and_draws_that_replay_it() {
        for (seed, extra) in [(3, vec![]), (7, vec!["faults.process_crash=0.01".to_string()])] {
            let mut set = vec!["scheduler.steps=300".to_string()];
            set.extend(extra);
            let s = config::load(None, &set).unwrap();
            let r = run_seed(&s, seed, RunOptions { record: true, ..Default::default() }, &mut NoObserver);
            let script = script_of(&s, seed, r.choices.as_deref().unwrap());
            assert_eq!(script.len() as u64, r.events);
            let p = play(&s, seed, &script, None);
            assert_eq!((p.trace_hash, p.events), (r.trace_hash, r.events));
            let again =
                run_choices(&s, seed, p.choices.as_deref().unwrap(), RunOptions::default(), &mut NoObserver);
            assert_eq!(again.trace_hash, r.trace_hash, "the encoded draws replay the run");
        }
    }

    fn begins(script: &[Step]) -> usize {
        script.iter().filter(|st| matches!(st.ev, Event::Backend { .. }) && st.arg.is_some()).count()
    }

    #[test]
    fn a_transaction_is_one_group_from_its_begin_to_the_next() {
        let s = config::load(None, &["scheduler.steps=200".into(), "operator=[]".into()]).unwrap();
        let r = run_seed(&s, 1, RunOptions { record: true, ..Default::default() }, &mut NoObserver);
        let script = script_of(&s, 1, r.choices.as_deref().unwrap());
        let gs = groups(&script);
        // The groups that start with a begin and hold one backend's steps:
        // the transactions. Each holds exactly one begin, and together they
        // hold every begin.
        let xacts: Vec<&Vec<usize>> = gs
            .iter()
            .filter(|g| matches!(script[g[0]].ev, Event::Backend { .. }) && script[g[0]].arg.is_some())
            .filter(|g| g.iter().all(|&i| script[i].ev == script[g[0]].ev))
            .filter(|g| g.iter().filter(|&&i| script[i].arg.is_some()).count() == 1)
            .collect();
        assert!(begins(&script) >= 5);
        assert_eq!(xacts.len(), begins(&script), "one group per transaction");
    }

    #[test]
    fn the_semantic_pass_drops_whole_transactions() {
        use super::super::{Best, Shrinker, knobs_of};
        use walsim_model::Invariant;
        // One node, a planted bug (a page written before its WAL): the
        // first failing run with some transactions before the bad write.
        let sets: Vec<String> =
            ["rules.wal_before_data=false", "cluster.standbys=0", "operator=[]"].map(String::from).to_vec();
        let s = config::load(None, &sets).unwrap();
        let opts = RunOptions { record: true, ..Default::default() };
        let (seed, first) = (1..300)
            .map(|seed| (seed, run_seed(&s, seed, opts, &mut NoObserver)))
            .find(|(seed, r)| {
                r.invariant() == Some(Invariant::WalBeforeData)
                    && begins(&script_of(&s, *seed, r.choices.as_deref().unwrap())) >= 4
            })
            .expect("a failing run with transactions");
        let table = config::to_table(&s);
        let knobs = knobs_of(&table).0;
        let best = Best { table: table.clone(), settings: s.clone(), result: first.clone() };
        let mut sh = Shrinker::new(Invariant::WalBeforeData, seed, table, knobs, best);
        let before = sh.script();
        assert!(sh.semantic_pass(), "the semantic pass alone shrinks the run");
        let after = sh.script();
        assert!(begins(&after) < begins(&before), "{} → {} transactions", begins(&before), begins(&after));
        assert!(sh.best.result.events < first.events);
        assert_eq!(sh.best.result.invariant(), Some(Invariant::WalBeforeData));
        // The draws written for the edited run replay it exactly.
        let again = run_choices(&s, seed, sh.best.choices(), RunOptions::default(), &mut NoObserver);
        assert_eq!((again.trace_hash, again.events), (sh.best.result.trace_hash, sh.best.result.events));
    }
}

#[cfg(test)]
mod step_lookahead_tests {
    use super::super::{Best, RECORD, Shrinker, knobs_of};
    use super::*;
    use crate::config;
    use crate::run::run_seed;
    use walsim_model::Invariant;

    #[test]
    fn a_step_the_events_need_but_the_failure_does_not_is_dropped_by_fresh_runs() {
        // The history-file coincidence (seed 2): node1's pg_switch_wal()
        // after the fork moves every later WAL position, so the same
        // events without it lose the coincidence; fresh runs without it
        // fail the same way with far fewer events.
        // (The key space the finding was found with, as its corpus entry.)
        let sets = ["workload.key_space=100000".to_string()];
        let sc = crate::scenario::load("history-file-before-start", toml::Table::new(), &sets).unwrap();
        let first = run_seed(&sc.settings, 2, RECORD, &mut NoObserver);
        assert_eq!(first.invariant(), Some(Invariant::NoSilentDivergence));
        let table = config::to_table(&sc.settings);
        let knobs = knobs_of(&table).0;
        let best = Best { table: table.clone(), settings: sc.settings.clone(), result: first.clone() };
        let mut sh = Shrinker::new(Invariant::NoSilentDivergence, 2, table.clone(), knobs, best);
        // Without the switch (step 1), its triggers at 0 and one main step:
        // short fresh runs.
        let mut without = table;
        let ops = without.get_mut("operator").and_then(toml::Value::as_array_mut).unwrap();
        assert_eq!(ops.remove(1).get("action").and_then(toml::Value::as_str), Some("switch_wal"));
        for op in ops.iter_mut() {
            let op = op.as_table_mut().unwrap();
            op.remove("after_commits");
            op.remove("after_events");
        }
        config::set_dotted(&mut without, "scheduler.steps", toml::Value::Integer(1)).unwrap();
        // The premise: the same events under that script do not fail.
        let script: Vec<Step> = sh
            .script()
            .iter()
            .filter_map(|s| match s.ev {
                Event::Operator { step: 1, .. } => None,
                Event::Operator { node, step } if step > 1 => {
                    Some(Step { ev: Event::Operator { node, step: step - 1 }, arg: s.arg })
                }
                _ => Some(*s),
            })
            .collect();
        assert!(sh.test_script(Some(without.clone()), &script).is_none(), "the same events need the switch");
        assert!(sh.reseed_without_step(without.clone()), "a fresh run without the switch is kept");
        assert!(sh.best.result.events < first.events / 4, "{} events", sh.best.result.events);
        let ops = sh.best.table.get("operator").and_then(toml::Value::as_array).unwrap();
        assert!(ops.iter().all(|op| op.get("action").and_then(toml::Value::as_str) != Some("switch_wal")));
        // Kept only after being replayed: the draws give the same failing run.
        let again =
            run_choices(&sh.best.settings, 2, sh.best.choices(), RunOptions::default(), &mut NoObserver);
        assert_eq!(again.trace_hash, sh.best.result.trace_hash);
        assert_eq!(again.invariant(), Some(Invariant::NoSilentDivergence));
        // Judged once: the same script is not searched again.
        assert!(!sh.reseed_without_step(without));
    }
}
