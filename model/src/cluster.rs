//! The whole simulated installation, and the model's two answers to the
//! scheduler: which events are enabled now, and what applying one does.
//!
//! This is the stateright-style `Model`: it never chooses. The sim crate's
//! scheduler picks among [`Cluster::enabled`] and draws the argument an
//! event needs; everything here is a pure function of the state and those
//! choices.

use crate::client::Ledger;
use crate::event::{Check, CrashKind, Effects, Event, FaultKind, RefusalKind};
use crate::invariants::{self, Violation};
use crate::log::Log;
use crate::lsn::Lsn;
use crate::network::{Conn, Partitions};
use crate::node::{Ctx, Env, Node, NodeId, Status};
use crate::operator::ScriptState;
use crate::script::{AttemptResult, FailbackAttempt};
use crate::settings::Settings;
use crate::syncrep::StandbyNames;
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A rejoin PostgreSQL refused.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct Refusal {
    pub node: String,
    pub kind: RefusalKind,
    pub message: String,
    /// Event index.
    pub at: u64,
}

/// The cluster.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub(crate) settings: Arc<Settings>,
    /// Parsed `synchronous_standby_names` of the run's settings (each node
    /// runs with its own copy, [`Node::gucs`], which a reload changes).
    names: StandbyNames,
    pub nodes: Vec<Node>,
    pub ledger: Ledger,
    /// Log lines of the current step (drained by the caller).
    pub log: Log,
    pub(crate) fx: Effects,
    pub(crate) conns: Vec<Conn>,
    pub(crate) partitions: Partitions,
    pub(crate) script: ScriptState,
    /// Events applied so far.
    pub(crate) now: u64,
    /// Every failback attempt, in order.
    pub attempts: Vec<FailbackAttempt>,
    /// Every refusal, in order (repeats of the same one are kept once).
    pub refusals: Vec<Refusal>,
    /// Invariants that failed where they are not expected to hold (first
    /// failure of each): reported, not treated as a model bug.
    pub observations: Vec<Violation>,
    /// Results of the operator's read-only queries, in order.
    pub queries: Vec<crate::operator::QueryResult>,
    /// No new transactions, checkpoint requests or faults: let work finish.
    quiesce: bool,
    /// The WAL archive all nodes share (xlogarchive.rs).
    pub archive: crate::archive::Archive,
    /// Each node's own enabled events, kept between steps: neither hashed
    /// nor compared (derived from the state).
    enabled_cache: EnabledCache,
}

/// Each node's own events ([`Cluster::enabled_cached`]), kept from one
/// step to the next (issue 11: `Cluster::enabled` recomputed every
/// predicate of every node each step). A node is marked dirty before any
/// step that may change its state ([`Cluster::invalidate_for`]), and every
/// node when the connections, the switches or several nodes change
/// (dropped connections, a walsender caught up, a shutdown finished, a
/// refusal); a dirty node's events are recomputed at the next call.
#[derive(Clone, Default)]
struct EnabledCache {
    nodes: Vec<NodeEnabled>,
    dirty: Vec<bool>,
}

#[derive(Clone, Default)]
struct NodeEnabled {
    /// What `push_node_local` pushed.
    local: Vec<Event>,
    /// The node is not down.
    up: bool,
    /// Its archiver has a file to archive.
    archiver: bool,
}

impl EnabledCache {
    fn fit(&mut self, nodes: usize) {
        if self.nodes.len() != nodes {
            self.nodes.resize_with(nodes, NodeEnabled::default);
            self.dirty.clear();
            self.dirty.resize(nodes, true);
        }
    }

    fn invalidate(&mut self, n: NodeId) {
        if let Some(d) = self.dirty.get_mut(n.index()) {
            *d = true;
        }
    }

    fn invalidate_all(&mut self) {
        self.dirty.fill(true);
    }
}

/// Derived state: printed as nothing, so a cluster's `Debug` is its state.
impl std::fmt::Debug for EnabledCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnabledCache")
    }
}

impl Cluster {
    /// `initdb` on the primary, then each standby from a base backup of it,
    /// and everything started. `settings` must be valid.
    pub fn new(settings: Settings, log_enabled: bool) -> Cluster {
        let names = StandbyNames::parse(&settings.synchronous_standby_names).expect("validated settings");
        let primary = Node::initdb(NodeId(0), &settings);
        let mut nodes = vec![primary];
        for i in 1..=settings.cluster.standbys {
            let mut s = Node::copy_of(NodeId(i), &nodes[0], &settings);
            s.standby_signal = true;
            s.upstream = Some(NodeId(0));
            if settings.cluster.replication_slots {
                // pg_basebackup --create-slot: the slot reserves WAL from
                // the backup's start (the primary's REDO) on.
                let slot = crate::node::ReplSlot {
                    name: s.name.clone(),
                    restart_lsn: nodes[0].redo_ptr,
                    invalidated: false,
                };
                nodes[0].slots.push(slot);
                s.primary_slot_name = Some(s.name.clone());
            }
            nodes.push(s);
        }
        let ledger = Ledger::new(settings.workload.clients);
        let mut c = Cluster {
            settings: Arc::new(settings),
            names,
            nodes,
            ledger,
            log: Log::new(log_enabled),
            fx: Effects::default(),
            conns: Vec::new(),
            partitions: Partitions::default(),
            script: ScriptState::default(),
            now: 0,
            attempts: Vec::new(),
            refusals: Vec::new(),
            observations: Vec::new(),
            queries: Vec::new(),
            quiesce: false,
            archive: Default::default(),
            enabled_cache: EnabledCache::default(),
        };
        for i in 0..c.nodes.len() {
            c.with_node(i, |n, ctx| n.start(ctx));
        }
        c
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The coverage marks the run reached so far (marks.rs).
    pub fn marks(&self) -> crate::marks::Marks {
        crate::marks::of_run(self.fx.marks, &self.attempts, self.refusals.iter().map(|r| r.kind))
    }

    /// Whether `ev` is among the enabled events or faults (debug builds
    /// check it before applying: the scheduler only picks what the model
    /// offered).
    fn debug_is_enabled(&self, ev: Event) -> bool {
        let mut out = Vec::new();
        self.enabled(&mut out);
        if out.contains(&ev) {
            return true;
        }
        FaultKind::ALL.into_iter().any(|k| {
            self.enabled_faults(k, &mut out);
            out.contains(&ev)
        })
    }

    /// Parsed `synchronous_standby_names` of the run's settings.
    pub fn standby_names(&self) -> &StandbyNames {
        &self.names
    }

    /// The replication connections, in order (read-only, for observers:
    /// the picture counts the messages queued each way).
    pub fn connections(&self) -> &[Conn] {
        &self.conns
    }

    /// Enters the quiesce phase: no new transactions and no faults;
    /// partitions heal, crashed nodes restart and work in flight finishes.
    pub fn set_quiesce(&mut self, on: bool) {
        self.quiesce = on;
        self.enabled_cache.invalidate_all();
        if on {
            self.partitions.heal_all();
        }
    }

    /// Every node's own events may have changed (see [`EnabledCache`]).
    pub(crate) fn invalidate_enabled(&mut self) {
        self.enabled_cache.invalidate_all();
    }

    fn env(&self) -> Env<'_> {
        Env { settings: &self.settings, archive: &self.archive }
    }

    /// Runs `f` on node `i` with a context.
    pub(crate) fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, &mut Ctx<'_>) -> R) -> R {
        let mut ctx = Ctx {
            env: Env { settings: &self.settings, archive: &self.archive },
            log: &mut self.log,
            fx: &mut self.fx,
        };
        f(&mut self.nodes[i], &mut ctx)
    }

    /// Events that can happen now, in a fixed order (node by node, process
    /// by process, then connections, then the operator), excluding faults.
    /// Computed from scratch: the oracle of [`Cluster::enabled_cached`].
    pub fn enabled(&self, out: &mut Vec<Event>) {
        out.clear();
        for n in &self.nodes {
            if self.push_node_local(n, out) {
                self.push_node_shared(n, self.archiver_ready(n), out);
            }
        }
        self.push_rest(out);
    }

    /// [`Cluster::enabled`], with each node's own events (those whose
    /// predicates read only that node, the settings and the quiesce and
    /// load switches) kept from the last step unless the node may have
    /// changed since ([`EnabledCache`]). The same list, in the same order:
    /// debug builds compare it with the from-scratch computation.
    pub fn enabled_cached(&mut self, out: &mut Vec<Event>) {
        out.clear();
        let mut cache = std::mem::take(&mut self.enabled_cache);
        cache.fit(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            let e = &mut cache.nodes[i];
            if cache.dirty[i] {
                e.local.clear();
                e.up = self.push_node_local(n, &mut e.local);
                e.archiver = e.up && self.archiver_ready(n);
                cache.dirty[i] = false;
            }
            out.extend_from_slice(&e.local);
            if e.up {
                self.push_node_shared(n, e.archiver, out);
            }
        }
        self.enabled_cache = cache;
        self.push_rest(out);
        debug_assert!(
            {
                let mut fresh = Vec::with_capacity(out.len());
                self.enabled(&mut fresh);
                fresh == *out
            },
            "the enabled set kept incrementally differs from the one computed from scratch: {out:?}"
        );
    }

    /// Node `n`'s own events: `Start` if it is down (then returns false:
    /// nothing else of the node can happen), else its backends, walwriter,
    /// bgwriter, checkpointer, checkpoint request and startup process.
    /// Their predicates read `n`, the settings, and the quiesce and load
    /// switches only (what [`EnabledCache`] relies on).
    fn push_node_local(&self, n: &Node, out: &mut Vec<Event>) -> bool {
        let env = self.env();
        let node = n.id;
        if n.status == Status::Down {
            if n.failed.is_none() && !n.operator_stopped {
                out.push(Event::Start { node });
            }
            return false;
        }
        let allow_new = !self.quiesce && !self.script.load_stopped;
        for b in 0..n.backends.len() {
            if n.backend_ready(b, env, allow_new) {
                out.push(Event::Backend { node, backend: b as u8 });
            }
        }
        if n.walwriter_has_work() {
            out.push(Event::WalWriter { node });
        }
        if n.bgwriter_victim(env).is_some() {
            out.push(Event::BgWriter { node });
        }
        if n.checkpointer_ready(env) {
            out.push(Event::Checkpointer { node });
        }
        if !self.quiesce && n.checkpoint_request_useful() {
            out.push(Event::RequestCheckpoint { node });
        }
        if n.startup_ready() && !n.replay_paused() {
            out.push(Event::Startup { node });
        }
        true
    }

    /// The events of running node `n` that depend on other nodes, the
    /// connections or the archive (recomputed every step), and its
    /// archiver (`archiver`: whether it has a file to archive).
    fn push_node_shared(&self, n: &Node, archiver: bool, out: &mut Vec<Event>) {
        let node = n.id;
        if self.can_connect(n) {
            out.push(Event::Connect { node });
        }
        if self.walreceiver_ready(n) {
            out.push(Event::WalReceiver { node });
        }
        if archiver {
            out.push(Event::Archiver { node });
        }
        if self.restorable(n).is_some() {
            out.push(Event::RestoreWal { node });
        }
    }

    /// The connections', partitions' and operator's events.
    fn push_rest(&self, out: &mut Vec<Event>) {
        for c in &self.conns {
            if self.walsender_ready(c) {
                out.push(Event::WalSender { node: c.upstream, standby: c.downstream });
            }
            if !c.to_standby.is_empty() {
                out.push(Event::Deliver { node: c.downstream, from: c.upstream });
            }
            if !c.to_upstream.is_empty() {
                out.push(Event::Deliver { node: c.upstream, from: c.downstream });
            }
        }
        for &(a, b) in self.partitions.pairs() {
            out.push(Event::Heal { node: a, peer: b });
        }
        if let Some(i) = self.operator_ready(out.is_empty()) {
            let node = crate::script::node_index(&self.settings.operator[i].node).expect("validated");
            out.push(Event::Operator { node, step: i as u8 });
        }
    }

    /// Marks the nodes whose own events `ev` may change (before applying
    /// it): its node for a process of that node, both ends for the
    /// replication traffic between two nodes, every node otherwise.
    fn invalidate_for(&mut self, ev: Event) {
        match ev {
            Event::Backend { node, .. }
            | Event::WalWriter { node }
            | Event::BgWriter { node }
            | Event::Checkpointer { node }
            | Event::RequestCheckpoint { node }
            | Event::Startup { node }
            | Event::Start { node } => self.enabled_cache.invalidate(node),
            Event::WalSender { node, standby: peer } | Event::Deliver { node, from: peer } => {
                self.enabled_cache.invalidate(node);
                self.enabled_cache.invalidate(peer);
            }
            Event::WalReceiver { node } => {
                self.enabled_cache.invalidate(node);
                for c in self.conns.iter().filter(|c| c.touches(node)) {
                    self.enabled_cache.invalidate(c.upstream);
                }
            }
            _ => self.enabled_cache.invalidate_all(),
        }
    }

    /// Fault events of one kind that could happen now.
    pub fn enabled_faults(&self, kind: FaultKind, out: &mut Vec<Event>) {
        out.clear();
        if self.quiesce {
            return;
        }
        match kind {
            FaultKind::ProcessCrash | FaultKind::PowerLoss => {
                let kind =
                    if kind == FaultKind::PowerLoss { CrashKind::PowerLoss } else { CrashKind::Immediate };
                out.extend(
                    self.nodes.iter().filter(|n| n.is_running()).map(|n| Event::Crash { node: n.id, kind }),
                );
            }
            FaultKind::Disconnect => {
                out.extend(self.conns.iter().map(|c| Event::Disconnect { node: c.downstream }))
            }
            FaultKind::Partition => {
                for a in &self.nodes {
                    for b in self.nodes.iter().filter(|b| b.id > a.id) {
                        if a.is_running() && b.is_running() && !self.partitions.is_cut(a.id, b.id) {
                            out.push(Event::Partition { node: a.id, peer: b.id });
                        }
                    }
                }
            }
            FaultKind::ArchiveCommand => self.archive_failure_targets(out),
        }
    }

    /// Whether applying `ev` consumes a drawn argument (a backend starting
    /// a transaction draws its key and payload).
    pub fn takes_argument(&self, ev: &Event) -> bool {
        match *ev {
            Event::Backend { node, backend } => {
                self.nodes[node.index()].backend_starts_xact(backend as usize)
            }
            // Which crash image (faults.crash_images).
            Event::Crash { kind: CrashKind::PowerLoss, .. } => self.settings.faults.crash_images > 0,
            _ => false,
        }
    }

    /// Applies one enabled event and checks the invariants it may affect.
    pub fn apply(&mut self, ev: Event, arg: u64) -> Result<(), Violation> {
        debug_assert!(self.debug_is_enabled(ev), "apply({ev:?}): the event is not enabled");
        self.invalidate_for(ev);
        self.fx.clear();
        self.now += 1;
        let i = ev.node().index();
        let mut violation = None;
        // rules.fsync_control_file off: pg_control before the step, to tell
        // which nodes wrote it without fsync.
        let controls = (!self.settings.rules.fsync_control_file && !matches!(ev, Event::Crash { .. }))
            .then(|| self.nodes.iter().map(|n| n.control).collect::<Vec<_>>());
        match ev {
            Event::Backend { backend, .. } => {
                let b = backend as usize;
                let op = self.nodes[i]
                    .backend_starts_xact(b)
                    .then(|| self.ledger.make_op(backend, arg, &self.settings.workload));
                self.with_node(i, |n, ctx| {
                    n.backend_step(b, op, ctx);
                    n.request_checkpoint_if_wal_full(ctx);
                });
            }
            Event::WalWriter { .. } => self.with_node(i, |n, ctx| n.walwriter_step(ctx)),
            Event::BgWriter { .. } => self.with_node(i, |n, ctx| n.bgwriter_step(ctx)),
            Event::Checkpointer { .. } => self.with_node(i, |n, ctx| n.checkpointer_step(ctx)),
            Event::RequestCheckpoint { .. } => self.with_node(i, |n, ctx| {
                let kind = if n.is_standby() {
                    crate::checkpointer::CkptKind::Restartpoint
                } else {
                    crate::checkpointer::CkptKind::Online
                };
                n.checkpointer.request(kind);
                crate::slog!(
                    ctx.log,
                    n.id,
                    crate::log::Process::Checkpointer,
                    Debug,
                    "checkpoint_timeout reached: {kind:?} requested"
                );
            }),
            Event::Startup { .. } => self.with_node(i, |n, ctx| {
                n.startup_step(ctx);
                if n.is_standby() {
                    n.request_checkpoint_if_wal_full(ctx);
                }
            }),
            Event::Start { .. } => self.with_node(i, |n, ctx| n.start(ctx)),
            Event::WalSender { node, standby } => self.walsender_send(node, standby),
            Event::Deliver { node, from } => violation = self.deliver(node, from),
            Event::WalReceiver { node } => self.walreceiver_step(node),
            Event::Connect { node } => self.connect(node),
            Event::Operator { step, .. } => self.operator_step(step as usize),
            Event::Heal { node, peer } => self.partitions.heal(node, peer),
            Event::Crash { node, kind } => {
                let images = self.settings.faults.crash_images;
                if kind == CrashKind::PowerLoss && images > 0 {
                    self.with_node(node.index(), |n, ctx| n.reach_disk(arg, images, ctx));
                }
                self.crash_node(node, kind)
            }
            Event::Disconnect { node } => self.drop_conns_where(|c| c.downstream == node, "connection lost"),
            Event::Partition { node, peer } => {
                self.partitions.cut(node, peer);
                self.drop_conns_where(|c| c.joins(node, peer), "network partition");
            }
            Event::Archiver { node } => self.archiver_step(node),
            Event::RestoreWal { node } => self.restore_wal(node),
            Event::ArchiveFailure { node } => self.archive_failure(node),
        }
        if let Some(before) = controls {
            let synced = matches!(ev, Event::Operator { .. });
            for (n, b) in self.nodes.iter_mut().zip(before) {
                n.note_control_write(b, synced);
            }
        }
        if let Some(v) = violation {
            self.fx.violations.push(v);
        }
        self.settle(i)
    }

    /// Books the step's effects and runs the checks.
    fn settle(&mut self, touched: usize) -> Result<(), Violation> {
        self.end_finished_timelines();
        self.mark_caught_up();
        self.finish_shutdowns();
        self.settle_script();
        // The effects are read in place (no copy of `Effects` per step);
        // nothing below adds to them.
        let fx = &self.fx;
        for op in &fx.commits_started {
            self.ledger.on_commit_started(op);
        }
        for a in &fx.acks {
            self.ledger.on_ack(a);
        }
        for (c, op) in &fx.in_doubt {
            self.ledger.on_in_doubt(*c, op);
        }
        for (c, op, why) in &fx.failed {
            self.ledger.on_failed(*c, op, *why);
        }
        for &n in &fx.power_loss {
            self.ledger.on_power_loss(n);
        }
        if !fx.refusals.is_empty() || !fx.startup_failures.is_empty() {
            self.enabled_cache.invalidate_all();
            let refusals = std::mem::take(&mut self.fx.refusals);
            for (n, kind, msg) in &refusals {
                self.book_refusal(*n, *kind, msg);
            }
            self.fx.refusals = refusals;
            let failures = std::mem::take(&mut self.fx.startup_failures);
            for (n, msg) in &failures {
                if self.attempts.iter().any(|a| a.node == self.nodes[(*n).index()].name) {
                    self.book_refusal(*n, RefusalKind::StartupFailed, msg);
                    self.set_attempt_result(*n, AttemptResult::Failed);
                }
            }
            self.fx.startup_failures = failures;
        }
        self.update_attempts();
        let violations = std::mem::take(&mut self.fx.violations);
        let checks = std::mem::take(&mut self.fx.checks);
        let result = self.check_step(&violations, &checks, touched);
        self.fx.violations = violations;
        self.fx.checks = checks;
        result
    }

    fn book_refusal(&mut self, n: NodeId, kind: RefusalKind, msg: &str) {
        let name = self.nodes[n.index()].name.clone();
        let repeat = self
            .refusals
            .iter()
            .rev()
            .find(|r| r.node == name)
            .is_some_and(|r| r.kind == kind && r.message == msg);
        if !repeat {
            self.refusals.push(Refusal { node: name, kind, message: msg.to_string(), at: self.now });
        }
        self.attempt_refused(n, msg);
    }

    /// A pending attempt becomes `streaming` once its node streams and can
    /// follow the new timeline.
    fn update_attempts(&mut self) {
        if !self.attempts.iter().any(|a| a.result == AttemptResult::Pending) {
            return;
        }
        // No list of names per step (this runs on every step while an
        // attempt is pending).
        for k in 0..self.attempts.len() {
            if self.attempts[k].result != AttemptResult::Pending {
                continue;
            }
            let name = &self.attempts[k].node;
            let streaming = self.nodes.iter().any(|n| {
                n.name == *name
                    && n.walrcv.refused.is_none()
                    && self.conns.iter().any(|c| c.downstream == n.id && self.on_current_timeline(c))
            });
            if streaming {
                self.attempts[k].result = AttemptResult::Streaming;
            }
        }
    }

    fn check_step(
        &mut self,
        violations: &[Violation],
        checks: &[Check],
        touched: usize,
    ) -> Result<(), Violation> {
        if let Some(v) = violations.first() {
            return Err(v.clone());
        }
        if let Some(v) = invariants::check_wal_before_data(&mut self.nodes[touched]) {
            return Err(v);
        }
        if let Some(u) = invariants::find_uncovered_data(self) {
            let node = Some(NodeId::from_index(u.0));
            if self.premise_expected(node) {
                return Err(invariants::describe_uncovered_data(self, u));
            }
            // Only the first observation of an invariant is kept: word it
            // only then (not on every step after, issue 11).
            if !self
                .observations
                .iter()
                .any(|o| o.invariant == invariants::Invariant::StandbyCoversPrimaryData)
            {
                let v = invariants::describe_uncovered_data(self, u);
                self.observe(v);
            }
        }
        for c in checks {
            let v = match *c {
                Check::AfterCrashRecovery(n) => {
                    // The check's fast path uses the WAL's implied table.
                    self.nodes[n.index()].wal.refresh_implied();
                    invariants::check_after_crash_recovery(self, n)
                }
                Check::AfterPromotion(n) => {
                    invariants::check_acknowledged(self, &self.nodes[n.index()], "promotion")
                }
                Check::Timelines(n) => invariants::check_timelines(self, n),
            };
            if let Some(v) = v {
                return Err(v);
            }
        }
        Ok(())
    }

    /// Keeps the first failure of each invariant that is only observed.
    pub(crate) fn observe(&mut self, v: Violation) {
        if !self.observations.iter().any(|o| o.invariant == v.invariant) {
            self.observations.push(v);
        }
    }

    /// Whether `standby_covers_primary_data` is expected to hold on
    /// `node` (any node if `None`): writes of data pages wait for a
    /// synchronous standby there.
    pub fn premise_expected(&self, node: Option<NodeId>) -> bool {
        let holds = |n: &Node| n.gucs.synchronous_transfer.covers_data() && n.gucs.names.is_sync();
        match node {
            Some(n) => holds(&self.nodes[n.index()]),
            None => self.nodes.iter().any(holds),
        }
    }

    /// Final checks once the run has quiesced: acknowledged commits on every
    /// node, then `converges`.
    pub fn check_final(&mut self) -> Result<(), Violation> {
        if let Some(v) = invariants::check_final(self) {
            return Err(v);
        }
        let converged = invariants::check_converges(self)?;
        for name in converged {
            if let Some(a) = self.attempts.iter_mut().rev().find(|a| a.node == name)
                && a.result == AttemptResult::Streaming
            {
                a.result = AttemptResult::Converged;
            }
        }
        Ok(())
    }

    /// Rejoins still refused: failback attempts refused or failed, and
    /// standbys whose last connection was refused.
    pub fn open_refusals(&self) -> Vec<&Refusal> {
        let mut out: Vec<&Refusal> = Vec::new();
        for n in &self.nodes {
            let attempt_bad = self
                .attempts
                .iter()
                .rev()
                .find(|a| a.node == n.name)
                .is_some_and(|a| matches!(a.result, AttemptResult::Refused | AttemptResult::Failed));
            if attempt_bad || n.walrcv.refused.is_some() {
                out.extend(self.refusals.iter().filter(|r| r.node == n.name));
            }
        }
        out.sort_by_key(|r| r.at);
        out
    }

    /// True when nothing is mid-flight: every backend idle, no checkpoint
    /// running, no crash recovery or shutdown pending, the script done.
    /// With no enabled events and this false, the cluster is stuck.
    pub fn is_idle(&self) -> bool {
        self.script_done()
            && self.nodes.iter().all(|n| {
                n.backends.iter().all(|b| b.is_idle())
                    && n.checkpointer.current.is_none()
                    && n.status != Status::ShuttingDown
                    && (n.status != Status::Recovery || n.is_standby())
                    && n.startup.as_ref().is_none_or(|s| s.read_error.is_none())
            })
    }

    /// What each blocked process waits for, as `ps` would show it
    /// (`node1 checkpointer waiting for 0/2D0C99D8`).
    pub fn waits(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for (i, b) in n.backends.iter().enumerate() {
                match b.wait() {
                    Some(w @ crate::event::Wait::SyncRep { .. }) => {
                        out.push(format!("{} client backend {i} {w} (wait_event=SyncRep)", n.name));
                    }
                    Some(w) => out.push(format!("{} client backend {i} {w}", n.name)),
                    None => {}
                }
            }
            if let Some(w) = n.checkpointer.current.as_ref().and_then(|c| c.wait) {
                out.push(format!("{} checkpointer {w}", n.name));
            }
            if n.status == Status::ShuttingDown {
                out.push(format!("{}: fast shutdown cannot finish", n.name));
            }
            if let Some(why) = n.startup.as_ref().and_then(|s| s.read_error.as_ref()) {
                out.push(format!("{} startup process cannot read WAL, retrying forever: {why}", n.name));
            }
        }
        if !self.script_done() {
            let i = self.script.next;
            if let Some(step) = self.settings.operator.get(i) {
                let what = if self.script.in_progress.is_some() { "has not finished" } else { "cannot run" };
                out.push(format!("operator step {} ({} on {}) {what}", i + 1, step.action.name(), step.node));
            }
        }
        out
    }

    /// A stable fingerprint of the whole state (for state hashing and
    /// determinism checks): the same on every platform.
    pub fn fingerprint(&self) -> u64 {
        let mut h = StableHasher::default();
        self.nodes.hash(&mut h);
        self.ledger.hash(&mut h);
        self.conns.hash(&mut h);
        self.partitions.hash(&mut h);
        self.script.hash(&mut h);
        self.quiesce.hash(&mut h);
        if !self.archive.is_empty() {
            self.archive.hash(&mut h);
        }
        h.finish()
    }

    /// `pg_stat_replication` on node `id`.
    pub fn walsender_rows(&self, id: NodeId) -> Vec<WalSenderSnapshot> {
        let n = &self.nodes[id.index()];
        let need_flush = self.settings.rules.sync_candidates_need_flush_position;
        let slots = n.slot_views();
        let valid = |l: Lsn| (l != Lsn(0)).then(|| l.to_string());
        n.walsenders
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let sent =
                    self.conns.iter().find(|c| c.upstream == id && c.downstream == w.peer).map(|c| c.sent);
                // A cascading walsender has priority 0 (SyncRepGetStandbyPriority).
                let cascading = !n.is_primary_or_shutting_down();
                let priority = if cascading { 0 } else { n.gucs.names.priority(&w.name) };
                WalSenderSnapshot {
                    application_name: w.name.clone(),
                    state: slots[i].state.name(),
                    sent_lsn: sent.and_then(valid),
                    write_lsn: valid(w.reported.write),
                    flush_lsn: valid(w.reported.flush),
                    replay_lsn: valid(w.reported.apply),
                    sync_priority: priority,
                    sync_state: if cascading {
                        "async"
                    } else {
                        n.gucs.names.sync_state(&slots, i, need_flush)
                    },
                }
            })
            .collect()
    }

    /// The `sync_state` of the walsender serving `peer` on node `id`
    /// (`None` if there is none).
    pub fn sync_state_of(&self, id: NodeId, peer: NodeId) -> Option<&'static str> {
        let n = &self.nodes[id.index()];
        let i = n.walsenders.iter().position(|w| w.peer == peer)?;
        Some(self.walsender_rows(id)[i].sync_state)
    }
}

/// One `pg_stat_replication` row (pg_stat_get_wal_senders), JSONL export.
/// Positions a standby has not reported yet are `null`, as in the view.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct WalSenderSnapshot {
    pub application_name: String,
    /// startup | catchup | streaming | stopping.
    pub state: &'static str,
    pub sent_lsn: Option<String>,
    pub write_lsn: Option<String>,
    pub flush_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    pub sync_priority: usize,
    /// async | potential | sync | quorum.
    pub sync_state: &'static str,
}

/// FNV-1a, with `usize` hashed as 64 bits, so fingerprints do not depend
/// on the platform or the Rust release (unlike `DefaultHasher`).
#[derive(Clone, Copy, Debug)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    /// The same value as `write(&n.to_le_bytes())`, faster: a zero byte
    /// only multiplies by the FNV prime, so a run of `k` zero bytes is one
    /// multiplication by `prime^k`. Event codes and most arguments are
    /// mostly zero bytes, and the trace hash takes two per step (perf:
    /// issue 11's per-step cost).
    #[inline]
    fn write_u64(&mut self, n: u64) {
        let mut x = self.0;
        let mut rest = n;
        let mut left = 8u32;
        while left > 0 {
            if rest == 0 {
                x = x.wrapping_mul(FNV_PRIME_POW[left as usize]);
                break;
            }
            let zeros = (rest.trailing_zeros() / 8).min(left);
            if zeros > 0 {
                x = x.wrapping_mul(FNV_PRIME_POW[zeros as usize]);
                rest >>= 8 * zeros;
                left -= zeros;
            } else {
                x ^= rest & 0xff;
                x = x.wrapping_mul(FNV_PRIME);
                rest >>= 8;
                left -= 1;
            }
        }
        self.0 = x;
    }
    fn write_u32(&mut self, n: u32) {
        self.write(&n.to_le_bytes());
    }
    fn write_u16(&mut self, n: u16) {
        self.write(&n.to_le_bytes());
    }
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as i64 as u64);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// `FNV_PRIME^k` for `k` in 0..=8 (wrapping).
const FNV_PRIME_POW: [u64; 9] = {
    let mut t = [1u64; 9];
    let mut k = 1;
    while k < 9 {
        t[k] = t[k - 1].wrapping_mul(FNV_PRIME);
        k += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The zero-run shortcut of `write_u64` gives exactly the byte-wise
    /// FNV-1a value (trace hashes must not change).
    #[test]
    fn stable_hasher_u64_shortcut_equals_bytewise_fnv() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut values =
            vec![0, 1, 0xff, 0x100, u64::MAX, 1 << 63, 0x0100_0000_0000_0000, 0x00ff_0000_0000_0007];
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Random values with random bytes zeroed.
            values.push(x & (x >> 3).wrapping_mul(0x0101_0101_0101_0101) & 0xff00_ff00_00ff_00ff);
            values.push(x);
        }
        for &v in &values {
            let (mut a, mut b) = (StableHasher::default(), StableHasher::default());
            a.write(&0xdead_beefu32.to_le_bytes());
            b.write(&0xdead_beefu32.to_le_bytes());
            a.write_u64(v);
            b.write(&v.to_le_bytes());
            assert_eq!(a.finish(), b.finish(), "value {v:#x}");
        }
    }

    /// The enabled set kept per node between steps is the from-scratch set
    /// at every step of a run with two standbys, faults included (asserted
    /// here explicitly, so also in release test builds).
    #[test]
    fn cached_enabled_set_equals_the_from_scratch_one() {
        let mut s = Settings { operator: Vec::new(), ..Settings::default() };
        s.cluster.standbys = 2;
        let mut c = Cluster::new(s, false);
        let (mut cached, mut fresh, mut faults) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..3_000usize {
            c.enabled_cached(&mut cached);
            c.enabled(&mut fresh);
            assert_eq!(cached, fresh, "step {i}");
            // Now and then a fault, so every kind of invalidation runs.
            let kind = FaultKind::ALL[i % FaultKind::ALL.len()];
            c.enabled_faults(kind, &mut faults);
            if fresh.is_empty() {
                // Everything waits (the run is over); enough steps ran.
                assert!(i > 2_000, "the run ended after only {i} steps");
                break;
            }
            let ev = if i % 97 == 0 && !faults.is_empty() {
                faults[i % faults.len()]
            } else {
                fresh[(i * 7) % fresh.len()]
            };
            if c.apply(ev, i as u64).is_err() {
                break;
            }
        }
    }

    /// Planted bug: a node's state changes without its cached events being
    /// marked dirty. The debug assertion in `enabled_cached` (the
    /// from-scratch oracle) catches it.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "kept incrementally differs")]
    fn a_stale_cached_node_is_caught_by_the_oracle() {
        let mut c = crate::testkit::quiesced(1, 200);
        c.set_quiesce(false);
        let mut evs = Vec::new();
        c.enabled_cached(&mut evs);
        // The primary's state changes behind the cache's back: a backend
        // can no longer start a transaction.
        c.script.load_stopped = true;
        c.enabled_cached(&mut evs);
    }

    fn attempt(node: &str) -> crate::script::FailbackAttempt {
        crate::script::FailbackAttempt {
            node: node.into(),
            strategy: crate::script::Failback::Naive,
            at: 0,
            upstream: "node1".into(),
            result: AttemptResult::Pending,
            messages: Vec::new(),
            end_of_wal: Lsn(0),
            fork_point: None,
            upstream_position: Lsn(0),
        }
    }

    /// A refusal is booked once per run of the same refusal on a node: the
    /// same kind and text again is not booked, another text or kind is, and
    /// another node's refusals in between do not hide a node's last one.
    /// The node's latest failback attempt is refused with the message.
    #[test]
    fn refusals_are_booked_once_per_repeat_and_refuse_the_attempt() {
        use crate::event::RefusalKind as K;
        let mut c = crate::testkit::quiesced(2, 100);
        c.attempts = vec![attempt("node2"), attempt("node3"), attempt("node2")];
        let booked = |c: &Cluster| {
            c.refusals.iter().map(|r| (r.node.clone(), r.kind, r.message.clone())).collect::<Vec<_>>()
        };
        c.book_refusal(NodeId(1), K::AheadOfFlush, "a");
        c.book_refusal(NodeId(1), K::AheadOfFlush, "a");
        c.book_refusal(NodeId(2), K::AheadOfFlush, "a");
        c.book_refusal(NodeId(1), K::AheadOfFlush, "a");
        c.book_refusal(NodeId(1), K::AheadOfFlush, "b");
        c.book_refusal(NodeId(1), K::NotInHistory, "b");
        let n = |s: &str| s.to_string();
        assert_eq!(
            booked(&c),
            [
                (n("node2"), K::AheadOfFlush, n("a")),
                (n("node3"), K::AheadOfFlush, n("a")),
                (n("node2"), K::AheadOfFlush, n("b")),
                (n("node2"), K::NotInHistory, n("b")),
            ]
        );
        let results: Vec<_> = c.attempts.iter().map(|a| (a.result, a.messages.clone())).collect();
        assert_eq!(
            results,
            [
                (AttemptResult::Pending, vec![]),
                (AttemptResult::Refused, vec![n("a")]),
                (AttemptResult::Refused, vec![n("a"), n("b")]),
            ]
        );
        // The latest attempt's result is what is set, on that node only.
        c.set_attempt_result(NodeId(1), AttemptResult::Stuck);
        let results: Vec<_> = c.attempts.iter().map(|a| a.result).collect();
        assert_eq!(results, [AttemptResult::Pending, AttemptResult::Refused, AttemptResult::Stuck]);
    }

    /// A pending attempt becomes `Streaming` once its node streams the
    /// current timeline, not while its walreceiver is refused, and an
    /// attempt that ended stays as it ended.
    #[test]
    fn a_pending_attempt_streams_once_its_node_streams_the_current_timeline() {
        let mut c = crate::testkit::quiesced(2, 100);
        c.attempts = vec![attempt("node2"), attempt("node3")];
        c.attempts[1].result = AttemptResult::Failed;
        c.nodes[1].walrcv.refused = Some(crate::node::RefusalMemo {
            upstream: NodeId(0),
            upstream_flush: Lsn(0),
            upstream_tli: crate::ids::Tli(1),
            local_end: Lsn(0),
        });
        c.update_attempts();
        assert_eq!(c.attempts[0].result, AttemptResult::Pending, "refused");
        c.nodes[1].walrcv.refused = None;
        c.update_attempts();
        let results: Vec<_> = c.attempts.iter().map(|a| a.result).collect();
        assert_eq!(results, [AttemptResult::Streaming, AttemptResult::Failed]);
        // Not streaming at all: stays pending.
        let mut c = crate::testkit::quiesced(2, 100);
        c.attempts = vec![attempt("node2"), attempt("node3")];
        c.drop_conns_where(|x| x.downstream == NodeId(1), "test");
        c.update_attempts();
        let results: Vec<_> = c.attempts.iter().map(|a| a.result).collect();
        assert_eq!(results, [AttemptResult::Pending, AttemptResult::Streaming]);
    }

    /// What a stuck run prints for each blocked process; nothing when all
    /// is idle.
    #[test]
    fn waits_name_each_blocked_process() {
        let mut c = crate::testkit::quiesced(1, 100);
        assert_eq!(c.waits(), Vec::<String>::new());
        c.nodes[0].status = Status::ShuttingDown;
        c.nodes[1].startup.as_mut().unwrap().read_error = Some("invalid record length".into());
        assert_eq!(
            c.waits(),
            [
                "node1: fast shutdown cannot finish",
                "node2 startup process cannot read WAL, retrying forever: invalid record length",
            ]
        );
        let mut c = crate::testkit::quiesced(1, 100);
        let step = crate::script::Step::new(crate::script::Action::Checkpoint, "node2");
        Arc::make_mut(&mut c.settings).operator = vec![step];
        assert_eq!(c.waits(), ["operator step 1 (CHECKPOINT on node2) cannot run"]);
        c.script.in_progress = Some(crate::operator::Completion::Down(NodeId(1)));
        assert_eq!(c.waits(), ["operator step 1 (CHECKPOINT on node2) has not finished"]);
    }

    /// A partition fault is offered once per unordered pair of running
    /// nodes not already cut off from each other, never a node from itself.
    #[test]
    fn partitions_are_offered_once_per_pair_of_running_nodes() {
        let mut c = crate::testkit::quiesced(2, 100);
        c.set_quiesce(false);
        let mut out = Vec::new();
        let pairs = |c: &Cluster, out: &mut Vec<Event>| {
            c.enabled_faults(FaultKind::Partition, out);
            out.iter()
                .map(|e| match *e {
                    Event::Partition { node, peer } => (node.0, peer.0),
                    _ => panic!("{e:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&c, &mut out), [(0, 1), (0, 2), (1, 2)]);
        c.partitions.cut(NodeId(2), NodeId(0));
        c.nodes[1].status = Status::Down;
        assert_eq!(pairs(&c, &mut out), Vec::<(u8, u8)>::new());
        c.set_quiesce(true);
        c.partitions.heal_all();
        c.nodes[1].status = Status::Production;
        assert_eq!(pairs(&c, &mut out), Vec::<(u8, u8)>::new(), "no faults while quiescing");
    }

    /// Idle: the script is done and no node has work left — not while a
    /// shutdown is unfinished or a backend waits.
    #[test]
    fn idle_needs_the_script_done_and_every_node_at_rest() {
        let mut c = crate::testkit::quiesced(1, 100);
        assert!(c.is_idle());
        c.nodes[0].status = Status::ShuttingDown;
        assert!(!c.is_idle(), "a shutdown in progress");
        let mut c = crate::testkit::quiesced(1, 100);
        Arc::make_mut(&mut c.settings).operator =
            vec![crate::script::Step::new(crate::script::Action::Checkpoint, "node1")];
        assert!(!c.is_idle(), "a step left");
    }

    /// pg_stat_replication on the primary: one row per walsender, each
    /// with its own connection's sent position.
    #[test]
    fn walsender_rows_show_each_connections_own_sent_position() {
        let mut c = crate::testkit::quiesced(2, 200);
        let flushed = c.nodes[0].wal.flush_lsn().to_string();
        for conn in c.conns.iter_mut().filter(|x| x.downstream == NodeId(2)) {
            conn.sent = Lsn(0x100);
        }
        let rows = c.walsender_rows(NodeId(0));
        let sent: Vec<_> = rows.iter().map(|r| (r.application_name.as_str(), r.sent_lsn.clone())).collect();
        assert_eq!(sent, [("node2", Some(flushed)), ("node3", Some("0/100".to_string()))]);
        assert_eq!(rows.iter().map(|r| r.sync_state).collect::<Vec<_>>(), ["sync", "potential"]);
    }

    /// pg_control written without fsync is remembered (its durable image
    /// stays behind) only under the planted bug `fsync_control_file =
    /// false`; with the rule on, every write is durable.
    #[test]
    fn control_writes_are_unsynced_only_without_fsync_control_file() {
        for fsync in [true, false] {
            let mut c = crate::testkit::quiesced_with(1, 0, |s| s.rules.fsync_control_file = fsync);
            c.set_quiesce(false);
            let mut evs = Vec::new();
            let (mut changed, mut unsynced) = (0, 0);
            for i in 0..600u64 {
                c.enabled(&mut evs);
                let ev = evs[(i as usize * 7) % evs.len()];
                let before: Vec<_> = c.nodes.iter().map(|n| n.control).collect();
                c.apply(ev, i).expect("no violation");
                changed += c.nodes.iter().zip(&before).filter(|(n, b)| n.control != **b).count();
                unsynced += c.nodes.iter().filter(|n| n.control_unsynced.is_some()).count();
            }
            assert!(changed > 0, "pg_control was written");
            assert_eq!(unsynced > 0, !fsync, "fsync_control_file = {fsync}");
        }
    }

    /// With a synchronous standby named, commits wait for it
    /// (SyncRepWaitForLSN): the run's marks show it. Without one, no
    /// commit waits. A converged failback and each refusal booked are
    /// marks too.
    #[test]
    fn a_runs_marks_show_sync_waits_converged_failbacks_and_refusals() {
        use crate::event::RefusalKind;
        use crate::marks::Mark;
        let c = crate::testkit::quiesced(1, 200);
        assert!(c.ledger.acked_keys() > 0, "commits were acknowledged");
        assert!(c.marks().contains(Mark::SyncRepWaited));
        let mut c = crate::testkit::quiesced(0, 200);
        assert!(!c.marks().contains(Mark::SyncRepWaited), "no synchronous standby: nothing waits");
        assert!(!c.marks().contains(Mark::FailbackConverged));
        // Booked before the attempt: a refusal refuses the node's attempt.
        c.book_refusal(NodeId(0), RefusalKind::NotInHistory, "x");
        c.attempts = vec![attempt("node1")];
        c.attempts[0].result = AttemptResult::Converged;
        assert!(c.marks().contains(Mark::FailbackConverged));
        assert!(c.marks().contains(Mark::Refused(RefusalKind::NotInHistory)));
        assert!(!c.marks().contains(Mark::Refused(RefusalKind::NotAChild)));
    }

    /// The scheduler only applies what the model offered: debug builds
    /// refuse an event that is not enabled (starting a running server).
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "the event is not enabled")]
    fn applying_an_event_that_is_not_enabled_is_refused_in_debug_builds() {
        let mut c = crate::testkit::quiesced(1, 50);
        let _ = c.apply(Event::Start { node: NodeId(0) }, 0);
    }

    /// A fault is enabled too: `debug_is_enabled` accepts it (it is not
    /// among `enabled`, but among `enabled_faults`).
    #[test]
    fn faults_count_as_enabled_and_other_events_do_not() {
        let mut c = crate::testkit::quiesced(1, 50);
        c.set_quiesce(false);
        assert!(c.debug_is_enabled(Event::Crash { node: NodeId(1), kind: CrashKind::Immediate }));
        assert!(c.debug_is_enabled(Event::Disconnect { node: NodeId(1) }));
        assert!(!c.debug_is_enabled(Event::Start { node: NodeId(1) }), "node2 is running");
        assert!(!c.debug_is_enabled(Event::Heal { node: NodeId(0), peer: NodeId(1) }), "no partition");
    }

    /// One streaming connection per standby, each from the primary.
    #[test]
    fn connections_list_one_stream_per_standby() {
        let c = crate::testkit::quiesced(2, 100);
        let pairs: Vec<_> = c.connections().iter().map(|x| (x.upstream.0, x.downstream.0)).collect();
        assert_eq!(pairs, [(0, 1), (0, 2)]);
    }

    /// A server that is down is started again automatically (`Start`)
    /// unless the operator stopped it or it cannot start (its startup
    /// failed until an operator changes its files); nothing else of it
    /// runs.
    #[test]
    fn a_down_node_restarts_unless_stopped_by_the_operator_or_failed() {
        let mut c = crate::testkit::quiesced(1, 50);
        let node = NodeId(1);
        c.nodes[1].status = Status::Down;
        let own = |c: &Cluster| {
            let mut out = Vec::new();
            c.enabled(&mut out);
            out.into_iter().filter(|e| e.node() == node).collect::<Vec<_>>()
        };
        assert_eq!(own(&c), [Event::Start { node }]);
        c.nodes[1].operator_stopped = true;
        assert_eq!(own(&c), [], "pg_ctl stop: stays down");
        c.nodes[1].operator_stopped = false;
        c.nodes[1].failed = Some("PANIC".into());
        assert_eq!(own(&c), [], "startup failed: stays down");
    }

    /// Only an idle backend's step draws an argument (the key and payload
    /// of the transaction it starts), and a power loss when crash images
    /// are drawn (`faults.crash_images`); nothing else does.
    #[test]
    fn arguments_are_drawn_by_new_transactions_and_power_loss_images() {
        let mut c = crate::testkit::quiesced(1, 100);
        c.set_quiesce(false);
        let b = Event::Backend { node: NodeId(0), backend: 0 };
        assert!(c.nodes[0].backends[0].is_idle());
        assert!(c.takes_argument(&b), "an idle backend starts a transaction");
        c.apply(b, 5).expect("no violation");
        assert!(!c.nodes[0].backends[0].is_idle(), "in its transaction");
        assert!(!c.takes_argument(&b), "a backend in a transaction draws nothing");
        assert!(!c.takes_argument(&Event::WalWriter { node: NodeId(0) }));
        let power = Event::Crash { node: NodeId(1), kind: CrashKind::PowerLoss };
        let immediate = Event::Crash { node: NodeId(1), kind: CrashKind::Immediate };
        assert!(!c.takes_argument(&power), "no crash images");
        Arc::make_mut(&mut c.settings).faults.crash_images = 2;
        assert!(c.takes_argument(&power), "which of the crash images");
        assert!(!c.takes_argument(&immediate), "a process crash loses no OS cache");
    }

    /// Every applied event counts: the event index that refusals and
    /// failback attempts record.
    #[test]
    fn applied_events_are_counted() {
        let mut c = crate::testkit::quiesced(1, 0);
        let start = c.now;
        c.set_quiesce(false);
        let mut evs = Vec::new();
        for i in 0..5u64 {
            c.enabled(&mut evs);
            c.apply(evs[0], i).expect("no violation");
        }
        assert_eq!(c.now, start + 5);
        c.book_refusal(NodeId(1), crate::event::RefusalKind::AheadOfFlush, "x");
        assert_eq!(c.refusals[0].at, start + 5);
    }

    /// `standby_covers_primary_data` is expected only where data-page
    /// writes wait for a synchronous standby: `synchronous_transfer` set to
    /// `data_flush` or `all` and a synchronous standby named.
    #[test]
    fn the_premise_is_expected_only_where_data_writes_wait_for_a_sync_standby() {
        use crate::settings::SynchronousTransfer as T;
        let expected = |t: T, names: &str| {
            let c = crate::testkit::quiesced_with(1, 0, |s| {
                s.synchronous_transfer = t;
                s.synchronous_standby_names = names.into();
            });
            (c.premise_expected(None), c.premise_expected(Some(NodeId(0))))
        };
        assert_eq!(expected(T::Commit, "*"), (false, false));
        assert_eq!(expected(T::All, "*"), (true, true));
        assert_eq!(expected(T::DataFlush, "node2"), (true, true));
        assert_eq!(expected(T::All, ""), (false, false), "no synchronous standby");
        // Per node: a reload on node2 alone.
        let mut c = crate::testkit::quiesced(1, 0);
        c.nodes[1].gucs.synchronous_transfer = T::All;
        assert!(!c.premise_expected(Some(NodeId(0))));
        assert!(c.premise_expected(Some(NodeId(1))));
        assert!(c.premise_expected(None), "some node");
    }

    /// Idle needs every backend idle, no checkpoint running, no crash
    /// recovery (a standby's recovery is its normal state) and no startup
    /// process stuck on unreadable WAL.
    #[test]
    fn idle_needs_idle_backends_no_checkpoint_no_crash_recovery_and_readable_wal() {
        let fresh = || {
            let c = crate::testkit::quiesced(1, 100);
            assert!(c.is_idle());
            c
        };
        let mut c = fresh();
        c.set_quiesce(false);
        c.apply(Event::Backend { node: NodeId(0), backend: 0 }, 3).expect("no violation");
        assert!(!c.is_idle(), "a backend in a transaction");
        let mut c = fresh();
        c.nodes[0].checkpointer.request(crate::checkpointer::CkptKind::Online);
        let mut evs = Vec::new();
        c.enabled(&mut evs);
        assert!(evs.contains(&Event::Checkpointer { node: NodeId(0) }));
        c.apply(Event::Checkpointer { node: NodeId(0) }, 0).expect("no violation");
        assert!(c.nodes[0].checkpointer.current.is_some());
        assert!(!c.is_idle(), "a checkpoint running");
        let mut c = fresh();
        assert_eq!(c.nodes[1].status, Status::Recovery, "a standby recovers");
        c.nodes[0].status = Status::Recovery;
        assert!(!c.is_idle(), "the primary in crash recovery");
        let mut c = fresh();
        c.nodes[1].startup.as_mut().unwrap().read_error = Some("invalid record length".into());
        assert!(!c.is_idle(), "a startup process retrying forever");
    }

    /// The same state has the same fingerprint; any difference in the
    /// nodes, the archive or the quiesce switch changes it.
    #[test]
    fn fingerprints_tell_states_apart() {
        let a = crate::testkit::quiesced(1, 100);
        let b = crate::testkit::quiesced(1, 100);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut c = a.clone();
        c.nodes[1].replay_pause = true;
        assert_ne!(c.fingerprint(), a.fingerprint());
        let mut c = a.clone();
        c.set_quiesce(false);
        assert_ne!(c.fingerprint(), a.fingerprint());
        let a = crate::testkit::quiesced_with(1, 300, |s| s.archive_mode = crate::settings::ArchiveMode::On);
        assert!(!a.archive.is_empty(), "segments were archived");
        let mut c = a.clone();
        c.archive = Default::default();
        assert_ne!(c.fingerprint(), a.fingerprint(), "the archive is part of the state");
        let mut c = a.clone();
        c.archive.store("00000002.history".into(), crate::archive::ArchivedFile::History(Vec::new()));
        assert_ne!(c.fingerprint(), a.fingerprint(), "one more archived file");
    }

    /// `sync_state` of the walsender serving a standby: the first listed
    /// connected standby is `sync`, the next `potential`; a node with no
    /// walsender for it has none.
    #[test]
    fn sync_state_of_each_walsender() {
        let c = crate::testkit::quiesced(2, 200);
        assert_eq!(c.sync_state_of(NodeId(0), NodeId(1)), Some("sync"));
        assert_eq!(c.sync_state_of(NodeId(0), NodeId(2)), Some("potential"));
        assert_eq!(c.sync_state_of(NodeId(0), NodeId(0)), None);
        assert_eq!(c.sync_state_of(NodeId(1), NodeId(2)), None, "node2 serves no one");
    }

    /// FNV-1a 64 test vectors (the FNV reference's: "" and "a", "foobar"),
    /// and every integer width hashed as its little-endian bytes, `usize`
    /// and `isize` as 64 bits.
    #[test]
    fn stable_hasher_is_fnv1a_64_with_fixed_integer_widths() {
        let fnv = |bytes: &[u8]| {
            let mut h = StableHasher::default();
            h.write(bytes);
            h.finish()
        };
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
        let one = |f: &dyn Fn(&mut StableHasher)| {
            let mut h = StableHasher::default();
            f(&mut h);
            h.finish()
        };
        assert_eq!(one(&|h| h.write_u32(0x0102_0304)), fnv(&0x0102_0304u32.to_le_bytes()));
        assert_eq!(one(&|h| h.write_u16(0x0102)), fnv(&0x0102u16.to_le_bytes()));
        assert_eq!(one(&|h| h.write_usize(0x0102_0304)), fnv(&0x0102_0304u64.to_le_bytes()));
        assert_eq!(one(&|h| h.write_isize(-2)), fnv(&(-2i64).to_le_bytes()));
        assert_eq!(one(&|h| h.write_i64(-3)), fnv(&(-3i64).to_le_bytes()));
        assert_eq!(one(&|h| h.write_u64(7)), fnv(&7u64.to_le_bytes()));
    }

    /// A primary with unsynced data pages and WAL written but not flushed,
    /// crash images on (`faults.crash_images`), no standby.
    fn with_unsynced_writes() -> Cluster {
        let mut c = crate::testkit::quiesced_with(0, 0, |s| s.faults.crash_images = 1_000_000);
        c.set_quiesce(false);
        let mut evs = Vec::new();
        for i in 0..5_000u64 {
            let n = &c.nodes[0];
            if n.data.unsynced().len() >= 2 && n.wal.write_lsn() > n.wal.flush_lsn() {
                return c;
            }
            c.enabled(&mut evs);
            evs.retain(|e| !matches!(e, Event::Checkpointer { .. }));
            let ev = evs[(i as usize * 5) % evs.len()];
            c.apply(ev, i.wrapping_mul(0x9E37_79B9)).expect("no violation");
        }
        panic!("no state with unsynced pages and unflushed WAL");
    }

    /// A power loss applies the crash image its argument picks: the last
    /// image keeps everything written (every unsynced page and all WAL
    /// written), image 0 nothing unsynced. A process crash (`pg_ctl stop
    /// -m immediate`) picks no image: the OS cache survives it, still
    /// unsynced.
    #[test]
    fn a_power_loss_keeps_what_its_crash_image_says_a_process_crash_no_image() {
        let c = with_unsynced_writes();
        let n = &c.nodes[0];
        let (flush, write) = (n.wal.flush_lsn(), n.wal.write_lsn());
        let unsynced = n.data.unsynced().len();
        let last = n.crash_image_count(c.settings.faults.crash_images) - 1;
        let power = Event::Crash { node: NodeId(0), kind: CrashKind::PowerLoss };
        let mut all = c.clone();
        all.apply(power, last).expect("no violation");
        assert_eq!(all.nodes[0].wal.end(), write, "all written WAL reached the disk");
        let mut none = c.clone();
        none.apply(power, 0).expect("no violation");
        assert_eq!(none.nodes[0].wal.end(), flush, "only flushed WAL survives");
        assert_ne!(
            all.nodes[0].data, none.nodes[0].data,
            "{unsynced} unsynced pages reached the disk or not"
        );
        let mut crash = c.clone();
        let before = c.nodes[0].data.unsynced();
        crash
            .apply(Event::Crash { node: NodeId(0), kind: CrashKind::Immediate }, last)
            .expect("no violation");
        assert_eq!(crash.nodes[0].data.unsynced(), before, "still in the OS cache, not synced");
        assert_eq!(crash.nodes[0].wal.flush_lsn(), flush);
    }

    /// A server whose pg_control points at no checkpoint record cannot
    /// start (xlogrecovery.c: PANIC "could not locate a valid checkpoint
    /// record"): it stays down. During a failback attempt of that node
    /// the failure is booked as a `startup_failed` refusal and the attempt
    /// fails; without an attempt, nothing is booked.
    #[test]
    fn a_startup_failure_fails_the_nodes_failback_attempt() {
        use crate::event::RefusalKind;
        for with_attempt in [true, false] {
            let mut c = crate::testkit::quiesced(1, 100);
            c.set_quiesce(false);
            c.apply(Event::Crash { node: NodeId(1), kind: CrashKind::Immediate }, 0).expect("no violation");
            if with_attempt {
                c.attempts = vec![attempt("node2")];
            }
            let bad = Lsn(c.nodes[1].control.checkpoint.0 + 8);
            c.nodes[1].control.checkpoint = bad;
            c.apply(Event::Start { node: NodeId(1) }, 0).expect("no violation");
            let msg = format!("could not locate a valid checkpoint record at {bad}");
            assert_eq!(c.nodes[1].status, Status::Down);
            assert_eq!(c.nodes[1].failed.as_deref(), Some(msg.as_str()));
            let booked: Vec<_> =
                c.refusals.iter().map(|r| (r.node.as_str(), r.kind, r.message.as_str())).collect();
            if with_attempt {
                assert_eq!(booked, [("node2", RefusalKind::StartupFailed, msg.as_str())]);
                assert_eq!(c.attempts[0].result, AttemptResult::Failed);
            } else {
                assert_eq!(booked, []);
            }
            let mut evs = Vec::new();
            c.enabled(&mut evs);
            assert!(!evs.contains(&Event::Start { node: NodeId(1) }), "not restarted");
        }
    }

    /// Without crash images (the default), a power loss logs no crash
    /// image: the logs stay as they were before the option existed.
    #[test]
    fn without_crash_images_a_power_loss_logs_none() {
        let mut c = with_unsynced_writes();
        Arc::make_mut(&mut c.settings).faults.crash_images = 0;
        c.log = Log::new(true);
        c.apply(Event::Crash { node: NodeId(0), kind: CrashKind::PowerLoss }, 7).expect("no violation");
        let lines: Vec<_> = c.log.drain().map(|l| l.message).collect();
        assert!(!lines.is_empty(), "the crash is logged");
        assert!(!lines.iter().any(|l| l.contains("crash image")), "{lines:?}");
        let mut c = with_unsynced_writes();
        c.log = Log::new(true);
        c.apply(Event::Crash { node: NodeId(0), kind: CrashKind::PowerLoss }, 7).expect("no violation");
        assert!(c.log.drain().any(|l| l.message.starts_with("crash image 7 of ")), "with images, it is");
    }

    /// A lost connection drops that standby's stream only; a partition
    /// cuts the pair and drops the streams between them only (and heals
    /// on `Heal`).
    #[test]
    fn disconnects_and_partitions_drop_only_their_own_streams() {
        let streams = |c: &Cluster| c.connections().iter().map(|x| x.downstream.0).collect::<Vec<_>>();
        let mut c = crate::testkit::quiesced(2, 100);
        c.set_quiesce(false);
        assert_eq!(streams(&c), [1, 2]);
        c.apply(Event::Disconnect { node: NodeId(1) }, 0).expect("no violation");
        assert_eq!(streams(&c), [2]);
        let mut c = crate::testkit::quiesced(2, 100);
        c.set_quiesce(false);
        c.apply(Event::Partition { node: NodeId(0), peer: NodeId(2) }, 0).expect("no violation");
        assert_eq!(streams(&c), [1]);
        assert!(c.partitions.is_cut(NodeId(2), NodeId(0)));
        c.apply(Event::Heal { node: NodeId(0), peer: NodeId(2) }, 0).expect("no violation");
        assert!(c.partitions.pairs().is_empty());
    }

    /// Under `synchronous_transfer = commit` the primary writes data pages
    /// its synchronous standby has not flushed WAL for: observed once (not
    /// a violation there), whatever other invariant was observed before.
    #[test]
    fn uncovered_data_is_observed_once_whatever_was_observed_before() {
        use crate::invariants::Invariant;
        for earlier in [false, true] {
            let mut c = crate::testkit::quiesced(1, 0);
            c.set_quiesce(false);
            if earlier {
                c.observe(Violation {
                    invariant: Invariant::FailbackPremise,
                    node: None,
                    detail: "x".into(),
                });
            }
            let mut evs = Vec::new();
            for i in 0..3_000u64 {
                c.enabled(&mut evs);
                let ev = evs[(i as usize * 7) % evs.len()];
                c.apply(ev, i).expect("not a violation under synchronous_transfer = commit");
            }
            let seen: Vec<_> = c.observations.iter().map(|o| o.invariant).collect();
            let want: &[Invariant] = if earlier {
                &[Invariant::FailbackPremise, Invariant::StandbyCoversPrimaryData]
            } else {
                &[Invariant::StandbyCoversPrimaryData]
            };
            assert_eq!(seen, want);
        }
    }

    /// When a stream reaches the end of its timeline (the upstream was
    /// promoted and everything of the old timeline was sent), the stream
    /// ends and the standby's walreceiver flushes what it wrote (WalRcvDie):
    /// its startup process may then replay more. The enabled set kept per
    /// node sees it (every node is marked dirty), not only the event's.
    #[test]
    fn the_kept_enabled_set_sees_a_stream_ended_at_the_end_of_its_timeline() {
        use crate::ids::{Tli, Xid};
        let mut c = crate::testkit::quiesced(1, 200);
        // node2 wrote a record it has not flushed: not replayable yet.
        let n = &mut c.nodes[1];
        let end = n.wal.insert(Tli(1), Xid(0), crate::wal::RecordBody::Commit).end;
        n.wal.write_upto(end);
        // node1 switched to timeline 2 where node2's stream stands.
        let p = &mut c.nodes[0];
        let switch = p.wal.end();
        p.history.add_child(Tli(2), Tli(1), switch, "promotion");
        p.tli = Tli(2);
        let startup = Event::Startup { node: NodeId(1) };
        let (mut kept, mut fresh) = (Vec::new(), Vec::new());
        c.enabled_cached(&mut kept);
        assert!(!kept.contains(&startup), "nothing flushed to replay");
        c.end_finished_timelines();
        assert_eq!(c.connections(), [], "the stream ended");
        assert_eq!(c.nodes[1].wal.flush_lsn(), end, "what it wrote is flushed");
        c.enabled(&mut fresh);
        assert!(fresh.contains(&startup));
        c.enabled_cached(&mut kept);
        assert_eq!(kept, fresh);
    }
}
