//! Model versus real server: each conformance story is also a built-in
//! scenario of the same name. The model runs it over many seeds (it must
//! predict the same class every time, or the scenario is not pinned down);
//! the real server runs it once ([`crate::conform`]). They agree when the
//! outcome class, the kinds of PostgreSQL message seen, and every relation
//! between positions that both sides checked are the same, and the rejoining
//! node's *mechanism* — the sequence of its startup/walreceiver message kinds in
//! order of first appearance — is the same too. LSNs themselves are never
//! compared: sizes and timings differ, relations must not.

use crate::conform::Segments;
use crate::conform::{
    self, Lsn, Mechanism, MechanismTrace, MessageKind, OutcomeClass, RealOutcome, Story, first_difference,
    history_forked_at, mechanism_relations, recognise, recovery_point, removed_segment, requested_start,
    rewind_diverged_at, rewind_missing_at, server_flush,
};
use crate::report::Tee;
use crate::run::{Observer, Outcome, Phase, RunOptions, RunResult, run_seed};
use crate::scenario;
use serde::Serialize;
use std::collections::BTreeSet;
use walsim_model::cluster::Cluster;
use walsim_model::event::Event;
use walsim_model::ids::NodeId;
use walsim_model::log::LogLine;
use walsim_model::node::Status;
use walsim_model::settings::Failback;

/// The model's prediction for one story.
#[derive(Clone, Debug, Serialize)]
pub struct ModelOutcome {
    /// `converged` | `refused` | `stuck`, or `violation` (an invariant
    /// failed, which no real run can show), or `inconsistent` when seeds
    /// disagree. Seeds ending in one of the scenario's documented rarer
    /// endings (`[scenario] also`) only count in `spread`; the class, messages,
    /// relations and mechanism come from the other seeds.
    pub class: String,
    /// Message kinds seen (union over seeds), in first-seen order.
    pub messages: Vec<MessageKind>,
    /// Relations between positions, from the first (not rarer) seed.
    pub relations: Vec<(String, bool)>,
    /// The rejoining node's mechanism in the first (not rarer) seed: distinct kinds of its
    /// startup/walreceiver log lines from its first failback on, in order of first
    /// appearance.
    pub mechanism: Vec<Mechanism>,
    /// Seeds whose mechanism differs from the first (not rarer) seed's: the first seed of each
    /// different sequence, with that sequence.
    pub mechanism_variants: Vec<(u64, Vec<Mechanism>)>,
    pub seeds: u64,
    /// Outcomes over the seeds, e.g. `20 refused`.
    pub spread: String,
}

/// One row of the comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub postgres: RealSummary,
    pub walsim: ModelOutcome,
    pub agree: bool,
    /// Why they disagree (empty when they agree).
    pub differences: Vec<String>,
}

/// What the real server did, as compared.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct RealSummary {
    pub class: OutcomeClass,
    pub messages: Vec<MessageKind>,
    pub relations: Vec<(String, bool)>,
    /// The rejoining node's mechanism (node `a`'s log from its first rejoin on).
    /// Recordings made before it existed have none; an empty one is compared too.
    #[serde(default)]
    pub mechanism: Vec<Mechanism>,
}

impl RealSummary {
    pub fn of(r: &RealOutcome) -> RealSummary {
        RealSummary {
            class: r.class,
            messages: r.messages.clone(),
            relations: r.facts.relations.clone(),
            mechanism: r.mechanism.clone(),
        }
    }
}

fn class_name(c: OutcomeClass) -> &'static str {
    match c {
        OutcomeClass::Converged => "converged",
        OutcomeClass::Refused => "refused",
        OutcomeClass::Stuck => "stuck",
    }
}

fn model_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "converged",
        Outcome::Refused => "refused",
        Outcome::Stuck => "stuck",
        Outcome::Violation => "violation",
    }
}

/// Every line a run "printed" that the recogniser knows: refusals,
/// pg_rewind's output, and what is stuck.
fn model_lines(r: &RunResult) -> Vec<String> {
    let mut lines: Vec<String> = r.refusals.iter().map(|x| x.message.clone()).collect();
    lines.extend(r.failbacks.iter().flat_map(|a| a.messages.iter().cloned()));
    if r.outcome == Outcome::Stuck {
        lines.extend(r.detail.split("; ").map(str::to_string));
    }
    lines
}

/// Collects the log lines of the node that fails back, from the step its first
/// failback attempt started on (DEBUG lines excluded: a real server at the
/// default `log_min_messages` does not print them).
///
/// In a story where a standby is stopped and started again with no failback
/// ([`restarted_standby`]), that standby is the rejoining node, from the first
/// step it is seen down on (the real driver reads its log from its restart on).
#[derive(Default)]
struct RejoinLog {
    node: Option<NodeId>,
    lines: Vec<String>,
    /// The standby that rejoins by a plain restart, if the story has one.
    restarted: Option<NodeId>,
    /// Log lines of every node that the recogniser knows and that only a
    /// server log shows (the checkpointer's slot invalidation).
    server_lines: Vec<String>,
    /// The restarted standby's end of local WAL when it was seen down.
    restarted_end: Option<Lsn>,
}

/// The standby (model node index) that a story stops and starts again as the
/// rejoining node, without a failback.
fn restarted_standby(story: Story) -> Option<NodeId> {
    match story {
        Story::SegmentRemovedStandbyDown
        | Story::SlotKeepsStandbyDown
        | Story::SlotInvalidatedStandbyDown => Some(NodeId(1)),
        _ => None,
    }
}

impl Observer for RejoinLog {
    fn step(&mut self, _: u64, _: Phase, _: &Event, _: Option<u64>, c: &Cluster, lines: &[LogLine]) {
        for line in lines {
            if line.level != walsim_model::log::Level::Debug
                && recognise(&line.message) == Some(MessageKind::SlotInvalidated)
            {
                self.server_lines.push(line.message.clone());
            }
        }
        if self.node.is_none()
            && let Some(n) = self.restarted
            && c.nodes[n.index()].status == Status::Down
        {
            self.node = Some(n);
            self.restarted_end = Some(Lsn(c.nodes[n.index()].wal.end().0));
        }
        if self.node.is_none()
            && let Some(attempt) = c.attempts.first()
        {
            self.node = c.nodes.iter().position(|n| n.name == attempt.node).map(NodeId::from_index);
        }
        for line in lines {
            if Some(line.node) == self.node && line.level != walsim_model::log::Level::Debug {
                self.lines.push(line.message.clone());
            }
        }
    }
}

/// The relations the real driver checks, computed from a model run.
fn model_relations(
    r: &RunResult,
    segment: u64,
    mechanism: &MechanismTrace,
    restarted_end: Option<Lsn>,
) -> Vec<(String, bool)> {
    let lines = model_lines(r);
    let find = |f: fn(&str) -> Option<Lsn>| lines.iter().find_map(|l| f(l));
    let start = find(requested_start);
    let flush = find(server_flush);
    let point = find(recovery_point);
    let forked_at = lines.iter().find_map(|l| history_forked_at(l)).map(|(_, f)| f);
    let diverged = find(rewind_diverged_at);
    let attempt = r.failbacks.first();
    let a_end = attempt.map(|a| Lsn(a.end_of_wal.0));
    let fork = attempt.and_then(|a| a.fork_point).map(|f| Lsn(f.0));
    let upstream = attempt.map(|a| Lsn(a.upstream_position.0));
    let mut out = Vec::new();
    let mut rel = |name: &str, holds: Option<bool>| {
        if let Some(h) = holds {
            out.push((name.to_string(), h));
        }
    };
    fn both(a: Option<Lsn>, b: Option<Lsn>, f: impl Fn(Lsn, Lsn) -> bool) -> Option<bool> {
        a.zip(b).map(|(a, b)| f(a, b))
    }
    rel("old primary's end of WAL > fork point", both(a_end, fork, |a, f| a > f));
    rel("fork point equals the old primary's end of WAL", both(fork, a_end, |f, a| f == a));
    rel(
        "old primary's end of WAL is in a later WAL segment than the lagging standby's replay position",
        both(a_end, upstream, |a, u| a.0 / segment > u.0 / segment),
    );
    rel(
        "requested start is the start of the WAL segment holding the old primary's end of WAL",
        both(start, a_end, |s, a| s == a.segment_start(segment)),
    );
    rel("requested start > fork point", both(start, fork, |s, f| s > f));
    rel("requested start > server flush", both(start, flush, |s, f| s > f));
    rel("server flush equals the lagging standby's replay position", both(flush, upstream, |f, u| f == u));
    rel(
        "walsender's \"history forked from timeline 1 at\" equals the fork point",
        both(forked_at, fork, |a, f| a == f),
    );
    rel(
        "\"before current recovery point\" equals the old primary's end of WAL",
        both(point, a_end, |p, a| p == a),
    );
    rel("pg_rewind's divergence point equals the fork point", both(diverged, fork, |d, f| d == f));
    rel(
        "pg_rewind's \"could not find previous WAL record at\" equals the fork point",
        both(find(rewind_missing_at), fork, |m, f| m == f),
    );
    let converged = r.failbacks.iter().any(|a| a.result == walsim_model::failback::AttemptResult::Converged);
    if attempt.is_some() && r.outcome != Outcome::Violation {
        rel("row count and hash equal on both nodes", Some(converged));
    }
    // After pg_rewind (or any tool that replaces its WAL) the node's old end of WAL
    // is not where its own WAL ends when it starts as a standby.
    let local_end = attempt.filter(|a| a.strategy == Failback::Naive).map(|a| Lsn(a.end_of_wal.0));
    if let (Some(end), Some(removed)) = (restarted_end, lines.iter().find_map(|l| removed_segment(l))) {
        out.push((
            "the removed segment named is the one holding the standby's end of WAL".to_string(),
            removed == end.segment_file_name(1, segment),
        ));
    }
    out.extend(mechanism_relations(&mechanism.positions, local_end.or(restarted_end), fork, segment));
    out
}

/// Whether walsim has the story's built-in scenario (a story's real side can be
/// written before its model scenario exists).
pub fn has_scenario(story: Story) -> bool {
    scenario::BUILTIN.iter().any(|(name, _)| *name == story.name())
}

impl ModelOutcome {
    /// The row's walsim half for a story without a built-in scenario: class
    /// `no_scenario`, which never agrees with a real outcome.
    pub fn missing(story: Story) -> ModelOutcome {
        ModelOutcome {
            class: "no_scenario".into(),
            messages: Vec::new(),
            relations: Vec::new(),
            mechanism: Vec::new(),
            mechanism_variants: Vec::new(),
            seeds: 0,
            spread: format!("no built-in scenario {} yet", story.name()),
        }
    }
}

/// The synchronous-replication stories: three nodes, the model's `node2`
/// and `node3` being the real `b` and `c`.
fn is_sync_story(story: Story) -> bool {
    matches!(story, Story::SyncFirstRestart | Story::SyncAnyBothDown | Story::RemoteApplyReplayPaused)
}

/// What a sync story's model run showed, watched step by step: the
/// primary's `pg_stat_replication.sync_state` of each standby, commits
/// acknowledged and waiting, and the walsenders' log lines.
#[derive(Default, Debug)]
pub struct SyncWatch {
    /// Log lines of the primary's walsenders (LOG level and above) and
    /// what waits while replay is paused, in order.
    pub lines: Vec<String>,
    /// `sync_state` of node2 and node3 on node1 after the last step.
    pub last_state: [Option<&'static str>; 2],
    /// Both standbys were `quorum` at once.
    pub both_quorum: bool,
    /// Synchronous standbys seen while node2 was down after it had run
    /// (by name), and commits acknowledged then.
    pub sync_while_b_down: Vec<String>,
    pub acks_while_b_down: u64,
    b_was_down: bool,
    /// Lines of any node that only a server log shows and the recogniser
    /// knows (the checkpointer's "invalidating slot"), in order.
    pub server_lines: Vec<String>,
    /// The end of local WAL of a standby the story restarts (its rejoin).
    pub restarted_end: Option<Lsn>,
    /// node2's replay was paused: a commit was waiting (SyncRep) when it
    /// was resumed, and commits acknowledged after the resume. (Commits
    /// already replayed before the pause may still return during it.)
    pub waited_until_resume: bool,
    pub acks_after_resume: u64,
    paused_seen: bool,
    last_acks: u64,
    /// node1's sync standby when node2's replay was paused.
    pub sync_when_paused: Option<String>,
}

impl Observer for SyncWatch {
    fn step(&mut self, _: u64, _: Phase, _: &Event, _: Option<u64>, c: &Cluster, lines: &[LogLine]) {
        for l in lines {
            let walsender = matches!(l.process, walsim_model::log::Process::WalSender(_));
            if l.node == NodeId(0) && walsender && l.level != walsim_model::log::Level::Debug {
                self.lines.push(l.message.clone());
            }
        }
        let state = |peer| c.sync_state_of(NodeId(0), peer);
        self.last_state = [state(NodeId(1)), state(NodeId(2))];
        self.both_quorum |= self.last_state == [Some("quorum"), Some("quorum")];
        let sync: Vec<String> = NodeId::all(c.nodes.len())
            .skip(1)
            .filter(|&p| state(p) == Some("sync"))
            .map(|p| c.nodes[p.index()].name.clone())
            .collect();
        let acks = c.ledger.acks;
        let new_acks = acks - self.last_acks.min(acks);
        self.last_acks = acks;
        let b = &c.nodes[1];
        let b_down = b.status == Status::Down && b.operator_stopped;
        if b_down && !self.b_was_down {
            // A new downtime: the relations are about the last one.
            self.sync_while_b_down.clear();
            self.acks_while_b_down = 0;
        }
        self.b_was_down = b_down;
        if b_down {
            for name in sync.clone() {
                if !self.sync_while_b_down.contains(&name) {
                    self.sync_while_b_down.push(name);
                }
            }
            self.acks_while_b_down += new_acks;
        }
        if b.replay_pause {
            if !self.paused_seen {
                self.sync_when_paused = sync.first().cloned();
            }
            self.paused_seen = true;
            let wait = c.waits().into_iter().find(|w| w.contains("wait_event=SyncRep"));
            if !self.waited_until_resume {
                self.lines.extend(wait.clone());
            }
            self.waited_until_resume = wait.is_some();
        } else if self.paused_seen {
            self.acks_after_resume += new_acks;
        }
    }
}

impl SyncWatch {
    /// The relations the real driver checks in `story`, from this run.
    pub fn relations(&self, story: Story, r: &RunResult) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = Vec::new();
        let mut rel = |name: &str, holds: bool| out.push((name.to_string(), holds));
        match story {
            Story::SyncFirstRestart => {
                rel("while b is stopped, c is the synchronous standby", self.sync_while_b_down == ["node3"]);
                rel("commits return while b is stopped", self.acks_while_b_down > 0);
                rel(
                    "after b restarts, b is the synchronous standby again",
                    self.last_state[0] == Some("sync"),
                );
                rel("after b restarts, c is a potential standby", self.last_state[1] == Some("potential"));
            }
            Story::SyncAnyBothDown => {
                rel("b and c are both quorum standbys while they stream", self.both_quorum);
                let waits = r.outcome == Outcome::Stuck && r.detail.contains("wait_event=SyncRep");
                rel("a commit waits with wait_event SyncRep while b and c are down", waits);
            }
            Story::RemoteApplyReplayPaused => {
                rel("b is the synchronous standby", self.sync_when_paused.as_deref() == Some("node2"));
                rel(
                    "a commit waits with wait_event SyncRep while replay is paused on b",
                    self.waited_until_resume,
                );
                rel("the waiting commit returns after pg_wal_replay_resume()", self.acks_after_resume > 0);
            }
            _ => {}
        }
        out
    }
}

/// Runs the story's scenario over `seeds` seeds (`sets` apply on top).
pub fn model_outcome(story: Story, seeds: u64, sets: &[String]) -> Result<ModelOutcome, String> {
    let sc = scenario::load(story.name(), toml::Table::new(), sets).map_err(|e| e.0)?;
    // Seeds ending in one of the scenario's documented rarer endings (`also`,
    // e.g. a violation where WAL framing happens to coincide) are counted in the
    // spread but predict nothing: the class, messages, relations and mechanism
    // come from the other seeds — unless every seed ended so, when they are all
    // the model has to say.
    let runs: Vec<(RunResult, MechanismTrace, SyncWatch)> = (1..=seeds)
        .map(|seed| {
            let mut rejoin = RejoinLog { restarted: restarted_standby(story), ..RejoinLog::default() };
            let mut sync = SyncWatch::default();
            let mut both = Tee(vec![&mut rejoin, &mut sync]);
            let r =
                run_seed(&sc.settings, seed, RunOptions { log: true, ..RunOptions::default() }, &mut both);
            // What only a server log shows is a message too (e.g. the slot
            // invalidation the real driver reads from the primary's log).
            sync.server_lines = std::mem::take(&mut rejoin.server_lines);
            sync.restarted_end = rejoin.restarted_end;
            (r, MechanismTrace::of(rejoin.lines.iter().map(String::as_str)), sync)
        })
        .collect();
    let rarer = |o: Outcome| sc.meta.also.contains(&o);
    let mut all = std::collections::BTreeMap::<&str, (u64, bool)>::new();
    for (r, _, _) in &runs {
        all.entry(model_class(r.outcome)).or_insert((0, rarer(r.outcome))).0 += 1;
    }
    let spread = all
        .iter()
        .map(
            |(c, (n, rare))| {
                if *rare { format!("{n} {c} (a documented rarer ending)") } else { format!("{n} {c}") }
            },
        )
        .collect::<Vec<_>>()
        .join(", ");
    let mut predicting: Vec<&(RunResult, MechanismTrace, SyncWatch)> =
        runs.iter().filter(|(r, _, _)| !rarer(r.outcome)).collect();
    if predicting.is_empty() {
        predicting = runs.iter().collect();
    }
    let classes: BTreeSet<&str> = predicting.iter().map(|(r, _, _)| model_class(r.outcome)).collect();
    let class = match classes.len() {
        1 => classes.first().expect("one").to_string(),
        _ => "inconsistent".into(),
    };
    let mut messages: Vec<MessageKind> = Vec::new();
    for (r, _, sync) in &predicting {
        let sync_lines = sync.lines.iter().filter(|_| is_sync_story(story));
        let run_lines = model_lines(r);
        let lines = sync_lines.chain(&sync.server_lines).chain(&run_lines);
        for kind in lines.filter_map(|l| recognise(l)) {
            if !messages.contains(&kind) {
                messages.push(kind);
            }
        }
    }
    let segment = sc.settings.wal_segment_size.0;
    let (relations, mechanism) = match predicting.first() {
        Some((r, trace, sync)) => {
            let mut relations = model_relations(r, segment, trace, sync.restarted_end);
            relations.extend(sync.relations(story, r));
            (relations, trace.kinds.clone())
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut mechanism_variants: Vec<(u64, Vec<Mechanism>)> = Vec::new();
    for (r, trace, _) in predicting.iter().skip(1) {
        if trace.kinds != mechanism && !mechanism_variants.iter().any(|(_, v)| *v == trace.kinds) {
            mechanism_variants.push((r.seed, trace.kinds.clone()));
        }
    }
    Ok(ModelOutcome { class, messages, relations, mechanism, mechanism_variants, seeds, spread })
}

/// Compares; returns the differences (none: they agree).
pub fn compare(real: &RealSummary, model: &ModelOutcome) -> Vec<String> {
    if model.class == "no_scenario" {
        return vec![format!("walsim cannot compare: {}", model.spread)];
    }
    let mut diffs = Vec::new();
    if class_name(real.class) != model.class {
        diffs.push(format!(
            "PostgreSQL {} but walsim {} ({})",
            class_name(real.class),
            model.class,
            model.spread
        ));
    }
    let kinds = |v: &[MessageKind]| v.iter().copied().map(|k| format!("{k:?}")).collect::<BTreeSet<_>>();
    let (rk, mk) = (kinds(&real.messages), kinds(&model.messages));
    if rk != mk {
        diffs.push(format!("messages: PostgreSQL {rk:?}, walsim {mk:?}"));
    }
    if let Some(d) = first_difference(&real.mechanism, &model.mechanism) {
        diffs.push(format!("mechanism: {d}"));
    }
    for (seed, variant) in &model.mechanism_variants {
        if let Some(d) = first_difference(&real.mechanism, variant) {
            diffs.push(format!("mechanism (seed {seed}): {d}"));
        }
    }
    for (name, holds) in &real.relations {
        if let Some((_, m)) = model.relations.iter().find(|(n, _)| n == name)
            && m != holds
        {
            diffs.push(format!("relation \"{name}\": PostgreSQL {holds}, walsim {m}"));
        }
    }
    diffs
}

/// Runs the suite: every story (or the named ones) on the real server and
/// in the model.
pub fn run_suite(
    install: &conform::PgInstall,
    stories: &[Story],
    opts: &conform::Options,
    seeds: u64,
    sets: &[String],
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &story in stories {
        progress(story.name());
        let walsim = if has_scenario(story) {
            model_outcome(story, seeds, sets).map_err(anyhow::Error::msg)?
        } else {
            ModelOutcome::missing(story)
        };
        let real = conform::run_story(install, story, opts)?;
        let postgres = RealSummary::of(&real);
        let differences = compare(&postgres, &walsim);
        rows.push(Row {
            name: story.name().to_string(),
            postgres,
            walsim,
            agree: differences.is_empty(),
            differences,
        });
    }
    Ok(rows)
}

/// The comparison table (scenario | PostgreSQL | walsim | agree).
pub fn table(rows: &[Row], version: &str) -> String {
    let show = |class: &str, m: &[MessageKind]| {
        let kinds: Vec<String> = m.iter().map(|k| format!("{k:?}")).collect();
        if kinds.is_empty() { class.to_string() } else { format!("{class} ({})", kinds.join(", ")) }
    };
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                show(class_name(r.postgres.class), &r.postgres.messages),
                show(&r.walsim.class, &r.walsim.messages),
                if r.agree { "yes" } else { "NO" }.to_string(),
            ]
        })
        .collect();
    let head = ["scenario", "PostgreSQL", "walsim", "agree"].map(String::from);
    let width = |i: usize| cells.iter().chain([&head]).map(|c| c[i].len()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut out = format!("PostgreSQL {version} on loopback vs walsim\n");
    for (i, c) in std::iter::once(&head).chain(&cells).enumerate() {
        out.push_str(&format!("{:w0$}  {:w1$}  {:w2$}  {}\n", c[0], c[1], c[2], c[3]));
        if i > 0 {
            for d in &rows[i - 1].differences {
                out.push_str(&format!("    {d}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_side_reads_the_failing_back_node_from_its_failback_on() {
        let sc = scenario::load("diverged-naive-after-immediate", toml::Table::new(), &[]).unwrap();
        let mut log = RejoinLog::default();
        let r = run_seed(&sc.settings, 1, RunOptions { log: true, ..RunOptions::default() }, &mut log);
        assert_eq!(r.failbacks.first().map(|a| a.node.as_str()), Some("node1"));
        assert_eq!(log.node, Some(NodeId(0)));
        // Nothing from node1's life as a primary (its checkpoints, its stop), no
        // DEBUG lines: the first line is the operator's failback itself.
        assert!(log.lines[0].ends_with("failback on node1"), "{:?}", log.lines);
        assert!(!log.lines.iter().any(|l| l.starts_with("event:")), "{:?}", log.lines);
        let trace = MechanismTrace::of(log.lines.iter().map(String::as_str));
        assert_eq!(trace.kinds.first(), Some(&Mechanism::EnteringStandbyMode));
        // The same run without logging has no lines to read.
        let mut quiet = RejoinLog::default();
        run_seed(&sc.settings, 1, RunOptions::default(), &mut quiet);
        assert!(quiet.lines.is_empty());
    }
}
