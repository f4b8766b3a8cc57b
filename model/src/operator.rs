//! The operator: runs the script's steps (pg_ctl stop/start/promote,
//! CHECKPOINT, pg_switch_wal, failback), each when its condition holds and
//! the previous step has finished. A step that blocks in PostgreSQL (a fast
//! shutdown, `pg_ctl promote -w`, CHECKPOINT) finishes only when the server
//! is done, so a hang shows up as a stuck run, as the blog saw.

use crate::cluster::Cluster;
use crate::event::CrashKind;
use crate::ids::{NodeId, Tli, Xid};
use crate::log::Process;
use crate::node::Status;
use crate::script::Failback;
use crate::script::{Action, Condition, Step, node_index};
use crate::slog;
use crate::wal::CkptKind;
use crate::wal::RecordBody;

/// What a read-only query returned (the `query` operator action).
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
pub struct QueryResult {
    pub node: String,
    /// Event index.
    pub at: u64,
    pub count: u64,
    pub sum: i64,
    /// Rows visible here that the current primary does not show (none when
    /// there is no other primary to compare with).
    pub not_on_primary: Option<usize>,
}

/// Where the script is.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct ScriptState {
    /// Index of the next step.
    pub next: usize,
    /// Event count when the previous step finished.
    pub last_done_at: u64,
    /// A started step that finishes when the server is done.
    pub in_progress: Option<Completion>,
    /// `stop_load` ran (and no `start_load` since): clients start nothing.
    pub load_stopped: bool,
}

/// What a started step waits for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Completion {
    /// The node is down (fast shutdown finished).
    Down(NodeId),
    /// The node accepts writes (promotion finished).
    Production(NodeId),
    /// The node completed one more checkpoint than it had.
    Checkpoint(NodeId, u32),
}

impl Cluster {
    /// The node an HA tool would call the primary: the one accepting
    /// writes on the newest timeline, other than `except`.
    pub fn current_primary(&self, except: Option<NodeId>) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.status == Status::Production && Some(n.id) != except)
            .max_by_key(|n| (n.tli, std::cmp::Reverse(n.id)))
            .map(|n| n.id)
    }

    fn step_node(step: &Step) -> NodeId {
        node_index(&step.node).expect("validated node name")
    }

    /// The upstream a `start`/`failback` step names, or the current primary.
    pub(crate) fn step_upstream(&self, step: &Step, n: NodeId) -> Option<NodeId> {
        match step.upstream.as_deref() {
            Some("none") => None,
            Some(name) => node_index(name),
            None => self.current_primary(Some(n)),
        }
    }

    /// Whether the script's next step may happen now. `idle`: nothing else
    /// can happen, so time passes and `after_events` is met.
    pub(crate) fn operator_ready(&self, idle: bool) -> Option<usize> {
        if self.script.in_progress.is_some() {
            return None;
        }
        let i = self.script.next;
        let step = self.settings().operator.get(i)?;
        let waited = self.now - self.script.last_done_at >= step.after_events || idle;
        (waited && self.ledger.acks >= step.after_commits && self.step_possible(step)).then_some(i)
    }

    fn step_possible(&self, step: &Step) -> bool {
        let id = Self::step_node(step);
        let n = &self.nodes[id.index()];
        let when = match step.when {
            None => true,
            Some(Condition::NodeDown) => n.status == Status::Down,
            Some(Condition::NodeReplayedAll) => {
                n.startup.as_ref().is_some_and(|s| s.next >= n.wal.end_index())
            }
            Some(Condition::NodeReplayedUpstream) => {
                n.startup.as_ref().is_some_and(|s| s.next >= n.wal.end_index())
                    && n.upstream.is_some_and(|u| n.wal.flush_lsn() >= self.nodes[u.index()].wal.flush_lsn())
            }
            Some(Condition::NodeKnowsNewerTimeline) => n.history.newest() > n.tli,
            Some(Condition::RewindSourceCheckpointed) => {
                let strategy = step.strategy.unwrap_or(self.settings().failover.failback);
                strategy != Failback::Rewind
                    || self.step_upstream(step, id).is_some_and(|u| {
                        let src = &self.nodes[u.index()];
                        src.control.tli == src.tli
                    })
            }
            Some(Condition::PrimaryPassedEndOfWal) => self
                .current_primary(Some(id))
                .is_some_and(|p| self.nodes[p.index()].wal.flush_lsn() > n.wal.end()),
            Some(Condition::StandbyFlushedPastCheckpoint) => self.nodes.iter().any(|s| {
                s.is_standby()
                    && s.upstream
                        .is_some_and(|u| s.wal.flush_lsn() > self.nodes[u.index()].control.checkpoint)
            }),
            Some(Condition::StandbysStreaming) => self.nodes.iter().filter(|s| s.is_standby()).all(|s| {
                s.upstream.is_none_or(|u| {
                    self.nodes[u.index()].walsenders.iter().any(|w| w.peer == s.id && w.streaming)
                })
            }),
            Some(Condition::ArchiverCaughtUp) => {
                self.nodes.iter().all(|x| x.next_ready(self.settings()).is_none())
            }
            Some(Condition::StandbyCaughtUp) => self.nodes.iter().filter(|s| s.is_standby()).all(|s| {
                s.upstream.is_none_or(|u| s.wal.flush_lsn() >= self.nodes[u.index()].wal.flush_lsn())
            }),
        };
        when && match step.action {
            Action::StopFast | Action::Checkpoint => n.status == Status::Production || n.is_standby(),
            Action::StopImmediate | Action::PowerLoss => n.is_running(),
            Action::Start => n.status == Status::Down,
            Action::Promote => n.is_standby() && n.startup.as_ref().is_some_and(|s| !s.promote),
            // The operator runs the tool whenever the step comes; whether
            // the source is ready is the tool's business (pg_rewind's own
            // checks), or the step's `when`.
            Action::Failback => {
                n.status == Status::Down && self.step_upstream(step, id).is_some_and(|u| u != id)
            }
            Action::SwitchWal => n.status == Status::Production,
            Action::CopyHistoryFile => {
                step.from.as_deref().and_then(node_index).is_some_and(|f| {
                    self.nodes[f.index()].history.newest() > Tli(1) || step.timeline.is_some()
                })
            }
            Action::Query => n.accepts_connections(),
            Action::StopLoad | Action::StartLoad => true,
            Action::Reload => n.is_running(),
            // pg_wal_replay_pause() errors out unless in recovery and not
            // being promoted.
            Action::PauseReplay | Action::ResumeReplay => {
                n.is_standby() && n.startup.as_ref().is_some_and(|s| !s.promote)
            }
            Action::CreateSlot | Action::DropSlot => n.is_running() && step.slot.is_some(),
        }
    }

    /// Advances the script when a started step has finished.
    pub(crate) fn settle_script(&mut self) {
        let done = match self.script.in_progress {
            None => return,
            Some(Completion::Down(n)) => self.nodes[n.index()].status == Status::Down,
            Some(Completion::Production(n)) => self.nodes[n.index()].status == Status::Production,
            Some(Completion::Checkpoint(n, before)) => self.nodes[n.index()].checkpointer.completed > before,
        };
        if done {
            self.script.in_progress = None;
            self.script.next += 1;
            self.script.last_done_at = self.now;
        }
    }

    /// Whether every step has run.
    pub fn script_done(&self) -> bool {
        self.script.in_progress.is_none() && self.script.next >= self.settings().operator.len()
    }

    /// Takes step `i` of the script.
    pub(crate) fn operator_step(&mut self, i: usize) {
        let step = self.settings().operator[i].clone();
        let id = Self::step_node(&step);
        let n = id.index();
        slog!(
            self.log,
            id,
            Process::Operator,
            Log,
            "step {}: {} on {}",
            i + 1,
            step.action.name(),
            step.node
        );
        let mut completion = None;
        match step.action {
            Action::StopFast => {
                self.drop_conns_where(|c| c.downstream == id, "walreceiver stopped for shutdown");
                self.with_node(n, |node, ctx| node.begin_fast_shutdown(ctx));
                self.nodes[n].operator_stopped = true;
                completion = Some(Completion::Down(id));
            }
            Action::StopImmediate | Action::PowerLoss => {
                let kind = if step.action == Action::PowerLoss {
                    CrashKind::PowerLoss
                } else {
                    CrashKind::Immediate
                };
                self.crash_node(id, kind);
                self.nodes[n].operator_stopped = true;
            }
            Action::Start => {
                let upstream = self.step_upstream(&step, id);
                let node = &mut self.nodes[n];
                if let Some(s) = &step.slot {
                    node.primary_slot_name = (!s.is_empty()).then(|| s.clone());
                }
                node.standby_signal |= step.standby;
                node.upstream = if node.standby_signal { upstream } else { None };
                node.operator_stopped = false;
                self.with_node(n, |node, ctx| node.start(ctx));
            }
            Action::Promote => {
                self.promote(id);
                completion = Some(Completion::Production(id));
            }
            Action::Failback => {
                let strategy = step.strategy.unwrap_or(self.settings().failover.failback);
                let upstream = self.step_upstream(&step, id).expect("step_possible");
                if let Some(s) = &step.slot {
                    self.nodes[n].primary_slot_name = (!s.is_empty()).then(|| s.clone());
                }
                let restore = step.restore_target_wal || self.settings().failover.restore_target_wal;
                self.failback(id, strategy, upstream, restore);
            }
            Action::Checkpoint => {
                let node = &mut self.nodes[n];
                let kind = if node.is_standby() { CkptKind::Restartpoint } else { CkptKind::Online };
                node.checkpointer.request(kind);
                completion = Some(Completion::Checkpoint(id, node.checkpointer.completed));
            }
            Action::CopyHistoryFile => self.copy_history_file(&step, id),
            Action::Query => self.query(id),
            Action::StopLoad | Action::StartLoad => {
                self.script.load_stopped = step.action == Action::StopLoad
            }
            Action::SwitchWal => {
                let node = &mut self.nodes[n];
                let end = node.xlog_insert(Xid::INVALID, RecordBody::Switch).end;
                node.wal.flush_upto(end);
                slog!(
                    self.log,
                    id,
                    Process::Backend(0),
                    Log,
                    "pg_switch_wal(): the next record starts at {}",
                    end
                );
            }
            Action::Reload => self.reload(id, &step),
            Action::PauseReplay => {
                self.nodes[n].replay_pause = true;
                slog!(self.log, id, Process::Startup, Log, "recovery has paused");
            }
            Action::ResumeReplay => self.nodes[n].replay_pause = false,
            Action::CreateSlot => self.create_slot(id, step.slot.as_deref().expect("step_possible")),
            Action::DropSlot => self.drop_slot(id, step.slot.as_deref().expect("step_possible")),
        }
        match completion.filter(|_| step.wait) {
            Some(c) => self.script.in_progress = Some(c),
            None => {
                self.script.next += 1;
                self.script.last_done_at = self.now;
            }
        }
    }

    /// pg_create_physical_replication_slot(name, immediately_reserve =>
    /// true): ReplicationSlotReserveWal takes the last REDO on a primary,
    /// the replay position on a standby.
    fn create_slot(&mut self, id: NodeId, name: &str) {
        let n = &mut self.nodes[id.index()];
        if n.slots.iter().any(|s| s.name == name) {
            let msg = format!("replication slot \"{name}\" already exists");
            slog!(self.log, id, Process::Operator, Error, "{}", msg);
            return;
        }
        let restart_lsn = n.startup.as_ref().filter(|_| n.is_standby()).map_or(n.redo_ptr, |s| s.replayed);
        n.slots.push(crate::node::ReplSlot { name: name.to_string(), restart_lsn, invalidated: false });
        slog!(
            self.log,
            id,
            Process::Operator,
            Log,
            "created physical replication slot \"{}\" at {}",
            name,
            restart_lsn
        );
    }

    /// pg_drop_replication_slot(name).
    fn drop_slot(&mut self, id: NodeId, name: &str) {
        let n = &mut self.nodes[id.index()];
        let before = n.slots.len();
        n.slots.retain(|s| s.name != name);
        if n.slots.len() == before {
            slog!(self.log, id, Process::Operator, Error, "replication slot \"{}\" does not exist", name);
        }
    }

    /// Copies a history file from the step's `from` node into `id`'s
    /// pg_wal (a missing one is an operator error: logged, nothing copied).
    fn copy_history_file(&mut self, step: &Step, id: NodeId) {
        let from = node_index(step.from.as_deref().expect("step_possible")).expect("validated");
        let src = &self.nodes[from.index()].history;
        let tli = step.timeline.unwrap_or_else(|| src.newest());
        let name = crate::timeline::History::file_name(tli);
        if tli < Tli(2) || !src.has(tli) {
            slog!(
                self.log,
                id,
                Process::Operator,
                Log,
                "cp: cannot stat '{}/pg_wal/{name}': No such file",
                from
            );
            return;
        }
        let entries = src.entries(tli).to_vec();
        self.nodes[id.index()].history.insert_file(tli, entries);
        slog!(self.log, id, Process::Operator, Log, "copied {name} from {} into pg_wal", from);
        self.fx.checks.push(crate::event::Check::Timelines(id));
    }

    /// A read-only query on `id`: what a client would be served, and how
    /// many of those rows the current primary does not show.
    fn query(&mut self, id: NodeId) {
        let rows = self.nodes[id.index()].visible_rows();
        let primary = self.current_primary(Some(id)).map(|p| self.nodes[p.index()].visible_rows());
        let not_on_primary =
            primary.as_ref().map(|p| rows.iter().filter(|r| p.binary_search(r).is_err()).count());
        let sum = crate::heap::RowSummary::of(&rows);
        slog!(
            self.log,
            id,
            Process::Operator,
            Log,
            "query: count={} sum={} ({} of them not on the primary)",
            sum.count,
            sum.sum,
            not_on_primary.map_or("no primary to compare".to_string(), |n| n.to_string())
        );
        self.queries.push(QueryResult {
            node: self.nodes[id.index()].name.clone(),
            at: self.now,
            count: sum.count,
            sum: sum.sum,
            not_on_primary,
        });
    }

    /// `pg_ctl reload` after editing the step's settings into the node's
    /// configuration: each changed parameter is logged, the checkpointer
    /// updates `sync_standbys_defined` (waking every waiter if the names
    /// were cleared), walsenders take their new priorities.
    fn reload(&mut self, id: NodeId, step: &Step) {
        slog!(self.log, id, Process::Postmaster, Log, "received SIGHUP, reloading configuration files");
        let node = &mut self.nodes[id.index()];
        let g = &mut node.gucs;
        let mut changed = Vec::new();
        if let Some(names) =
            step.synchronous_standby_names.as_ref().filter(|n| **n != g.synchronous_standby_names)
        {
            g.names = crate::syncrep::StandbyNames::parse(names).expect("validated step");
            g.synchronous_standby_names = names.clone();
            changed.push(("synchronous_standby_names", names.clone()));
        }
        if let Some(c) = step.synchronous_commit.filter(|c| *c != g.synchronous_commit) {
            g.synchronous_commit = c;
            changed.push(("synchronous_commit", c.name().to_string()));
        }
        if let Some(t) = step.synchronous_transfer.filter(|t| *t != g.synchronous_transfer) {
            g.synchronous_transfer = t;
            changed.push(("synchronous_transfer", t.name().to_string()));
        }
        if node.is_running() {
            node.update_sync_standbys_defined();
        }
        for (name, value) in changed {
            slog!(self.log, id, Process::Postmaster, Log, "parameter \"{}\" changed to \"{}\"", name, value);
        }
    }

    /// `pg_ctl promote`: the walreceiver stops, the startup process
    /// replays what is left and promotes. Other standbys are repointed at
    /// the new primary, as an HA tool would.
    fn promote(&mut self, id: NodeId) {
        slog!(self.log, id, Process::Startup, Log, "received promote request");
        slog!(
            self.log,
            id,
            Process::WalReceiver,
            Fatal,
            "terminating walreceiver process due to administrator command"
        );
        self.drop_conns_where(|c| c.downstream == id, "promotion");
        let n = &mut self.nodes[id.index()];
        n.promote_signal = true;
        if let Some(st) = n.startup.as_mut() {
            st.promote = true;
        }
        for other in 0..self.nodes.len() {
            let o = &mut self.nodes[other];
            if o.id != id && o.standby_signal && o.upstream.is_some() {
                o.upstream = Some(id);
                o.synced_to = None;
                let oid = o.id;
                self.drop_conns_where(|c| c.downstream == oid, "primary_conninfo changed to the new primary");
            }
        }
    }

    /// A node goes down abruptly; its connections go with it.
    pub(crate) fn crash_node(&mut self, id: NodeId, kind: CrashKind) {
        // Crash first: the node's own walreceiver dies without flushing.
        self.with_node(id.index(), |n, ctx| n.crash(kind, ctx));
        self.drop_conns_where(|c| c.touches(id), "server crashed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use crate::script::{Action, default_story};
    use crate::testkit::quiesced;

    fn step(action: Action, node: &str) -> Step {
        let mut s = default_story()[0].clone();
        s.action = action;
        s.node = node.into();
        s.when = None;
        s
    }

    /// `cp` of a history file the source does not have (timeline 1 has
    /// none; timeline 2 does not exist yet) copies nothing; once the
    /// source has it, the copy equals the source's file.
    #[test]
    fn copying_a_history_file_the_source_lacks_copies_nothing() {
        let mut c = quiesced(1, 100);
        let mut s = step(Action::CopyHistoryFile, "node2");
        s.from = Some("node1".into());
        for tli in [1, 2] {
            s.timeline = Some(Tli(tli));
            c.copy_history_file(&s, NodeId(1));
            assert_eq!(c.nodes[1].history.timelines().count(), 0, "timeline {tli}");
        }
        c.nodes[0].history.add_child(Tli(2), Tli(1), Lsn(0x100), "x");
        c.copy_history_file(&s, NodeId(1));
        assert!(c.nodes[1].history.timelines().eq([Tli(2)]));
        assert_eq!(c.nodes[1].history.entries(Tli(2)), c.nodes[0].history.entries(Tli(2)));
    }

    /// `pg_ctl promote` applies to a standby that is not promoting yet —
    /// not to a server in crash recovery, nor twice.
    #[test]
    fn promote_is_possible_only_on_a_standby_not_promoting() {
        let mut c = quiesced(1, 100);
        let s = step(Action::Promote, "node2");
        assert!(c.step_possible(&s));
        c.nodes[1].startup.as_mut().unwrap().promote = true;
        assert!(!c.step_possible(&s), "promoting already");
        c.nodes[1].startup.as_mut().unwrap().promote = false;
        c.nodes[1].startup.as_mut().unwrap().standby = false;
        assert!(!c.step_possible(&s), "crash recovery");
        assert!(!c.step_possible(&step(Action::Promote, "node1")), "a primary");
    }

    /// Each `when` condition of an operator step, at its boundary, on a
    /// quiesced primary (node1) and streaming standby (node2).
    #[test]
    fn step_conditions_hold_exactly_at_their_boundaries() {
        use crate::script::{Condition as C, Failback};
        use crate::wal::RecordBody;
        let on = |cond, node: &str| {
            let mut s = step(Action::StopLoad, node);
            s.when = Some(cond);
            s
        };
        let base = quiesced(1, 100);
        let mut c = base.clone();
        assert!(c.step_possible(&on(C::NodeReplayedAll, "node2")));
        assert!(c.step_possible(&on(C::NodeReplayedUpstream, "node2")));
        assert!(c.step_possible(&on(C::StandbyCaughtUp, "node1")));
        assert!(!c.step_possible(&on(C::PrimaryPassedEndOfWal, "node2")), "exactly at its end");
        assert!(c.step_possible(&on(C::StandbysStreaming, "node1")));
        assert!(c.step_possible(&on(C::ArchiverCaughtUp, "node1")));
        assert!(!c.step_possible(&on(C::NodeDown, "node2")));
        assert!(!c.step_possible(&on(C::NodeKnowsNewerTimeline, "node2")));

        // The primary's WAL one record further, flushed.
        let tli = c.nodes[0].tli;
        let end = c.nodes[0].wal.insert(tli, Xid(0), RecordBody::Switch).end;
        c.nodes[0].wal.write_upto(end);
        c.nodes[0].wal.flush_upto(end);
        assert!(c.step_possible(&on(C::PrimaryPassedEndOfWal, "node2")));
        assert!(!c.step_possible(&on(C::StandbyCaughtUp, "node1")));
        assert!(c.step_possible(&on(C::NodeReplayedAll, "node2")), "all of its own WAL");
        assert!(!c.step_possible(&on(C::NodeReplayedUpstream, "node2")));

        // node2 has a record it has not replayed; its upstream no more.
        let mut c = base.clone();
        c.nodes[1].startup.as_mut().unwrap().next -= 1;
        assert!(!c.step_possible(&on(C::NodeReplayedAll, "node2")));
        assert!(!c.step_possible(&on(C::NodeReplayedUpstream, "node2")));

        // A standby flushed past its upstream's checkpoint: exactly at it
        // is not past it.
        let mut c = base.clone();
        let flushed = c.nodes[1].wal.flush_lsn();
        c.nodes[0].control.checkpoint = Lsn(flushed.0 - 1);
        assert!(c.step_possible(&on(C::StandbyFlushedPastCheckpoint, "node1")));
        c.nodes[0].control.checkpoint = flushed;
        assert!(!c.step_possible(&on(C::StandbyFlushedPastCheckpoint, "node1")));

        // Walsenders not streaming; a standby without upstream.
        let mut c = base.clone();
        c.nodes[0].walsenders.iter_mut().for_each(|w| w.streaming = false);
        assert!(!c.step_possible(&on(C::StandbysStreaming, "node1")));
        c.nodes[1].upstream = None;
        assert!(c.step_possible(&on(C::StandbysStreaming, "node1")));

        let mut c = base.clone();
        c.nodes[1].status = Status::Down;
        assert!(c.step_possible(&on(C::NodeDown, "node2")));
        c.nodes[1].history.add_child(Tli(2), Tli(1), Lsn(0x100), "x");
        assert!(c.step_possible(&on(C::NodeKnowsNewerTimeline, "node2")));

        // pg_rewind's source must have checkpointed on its own timeline;
        // other strategies do not wait for it.
        let mut c = base.clone();
        let mut rw = on(C::RewindSourceCheckpointed, "node2");
        rw.strategy = Some(Failback::Rewind);
        assert!(c.step_possible(&rw));
        c.nodes[0].control.tli = Tli(c.nodes[0].tli.0 + 1);
        assert!(!c.step_possible(&rw));
        rw.strategy = Some(Failback::Naive);
        assert!(c.step_possible(&rw));
    }

    /// What each action needs of its node.
    #[test]
    fn each_action_applies_only_where_postgres_allows_it() {
        let base = quiesced(1, 100);
        let mut c = base.clone();
        let ok = |c: &Cluster, a: Action, node: &str| c.step_possible(&step(a, node));
        for a in [Action::StopFast, Action::Checkpoint, Action::StopImmediate, Action::PowerLoss] {
            assert!(ok(&c, a, "node1") && ok(&c, a, "node2"), "{a:?}");
        }
        assert!(ok(&c, Action::SwitchWal, "node1") && !ok(&c, Action::SwitchWal, "node2"));
        assert!(ok(&c, Action::Query, "node1") && ok(&c, Action::Query, "node2"));
        assert!(ok(&c, Action::Reload, "node1") && ok(&c, Action::Reload, "node2"));
        assert!(ok(&c, Action::PauseReplay, "node2") && !ok(&c, Action::PauseReplay, "node1"));
        assert!(ok(&c, Action::ResumeReplay, "node2") && !ok(&c, Action::ResumeReplay, "node1"));
        assert!(!ok(&c, Action::Start, "node2") && !ok(&c, Action::Failback, "node2"));
        let mut slot = step(Action::CreateSlot, "node1");
        assert!(!c.step_possible(&slot), "no slot named");
        slot.slot = Some("s".into());
        assert!(c.step_possible(&slot));
        c.nodes[1].startup.as_mut().unwrap().promote = true;
        assert!(!ok(&c, Action::PauseReplay, "node2"), "being promoted");

        // A stopped standby: only start and failback apply.
        let mut c = base.clone();
        c.nodes[1].status = Status::Down;
        c.nodes[1].startup = None;
        for a in [
            Action::StopFast,
            Action::Checkpoint,
            Action::StopImmediate,
            Action::PowerLoss,
            Action::Reload,
            Action::Query,
            Action::SwitchWal,
        ] {
            assert!(!ok(&c, a, "node2"), "{a:?}");
        }
        let mut slot = step(Action::CreateSlot, "node2");
        slot.slot = Some("s".into());
        assert!(!c.step_possible(&slot));
        assert!(ok(&c, Action::Start, "node2") && ok(&c, Action::Failback, "node2"));
        let mut fb = step(Action::Failback, "node2");
        fb.upstream = Some("node2".into());
        assert!(!c.step_possible(&fb), "its own upstream");
        fb.upstream = Some("none".into());
        assert!(!c.step_possible(&fb), "no upstream");
        // A primary shutting down takes no fast stop or CHECKPOINT.
        c.nodes[0].status = Status::ShuttingDown;
        assert!(!ok(&c, Action::StopFast, "node1") && !ok(&c, Action::Checkpoint, "node1"));
        assert!(ok(&c, Action::StopImmediate, "node1"));
    }

    /// A step waits for `after_commits` acknowledged commits and
    /// `after_events` events since the previous step (or nothing else to
    /// do), both inclusive.
    #[test]
    fn a_step_runs_once_its_commits_and_events_are_reached() {
        let mut c = quiesced(1, 300);
        let acks = c.ledger.acks;
        assert!(acks > 0);
        let mut s = step(Action::StopLoad, "node1");
        s.after_commits = acks;
        s.after_events = c.now - c.script.last_done_at;
        std::sync::Arc::make_mut(&mut c.settings).operator = vec![s.clone()];
        assert_eq!(c.operator_ready(false), Some(0));
        s.after_commits = acks + 1;
        std::sync::Arc::make_mut(&mut c.settings).operator = vec![s.clone()];
        assert_eq!(c.operator_ready(true), None, "one commit short");
        s.after_commits = acks;
        s.after_events += 1;
        std::sync::Arc::make_mut(&mut c.settings).operator = vec![s.clone()];
        assert_eq!(c.operator_ready(false), None, "one event short");
        assert_eq!(c.operator_ready(true), Some(0), "nothing else can happen");
    }

    /// A reload logs "parameter … changed" only for a value that changed,
    /// and the node runs with the new values.
    #[test]
    fn a_reload_logs_only_the_parameters_it_changed() {
        use crate::settings::{SynchronousCommit, SynchronousTransfer};
        let mut c = quiesced(1, 100);
        c.log = crate::log::Log::new(true);
        let lines = |c: &mut Cluster, s: &Step| {
            c.reload(NodeId(0), s);
            c.log.drain().map(|l| l.message).collect::<Vec<_>>()
        };
        let g = c.nodes[0].gucs.clone();
        let mut same = step(Action::Reload, "node1");
        same.synchronous_standby_names = Some(g.synchronous_standby_names.clone());
        same.synchronous_commit = Some(g.synchronous_commit);
        same.synchronous_transfer = Some(g.synchronous_transfer);
        assert_eq!(lines(&mut c, &same), ["received SIGHUP, reloading configuration files"]);
        let mut new = same.clone();
        new.synchronous_standby_names = Some("FIRST 1 (node2)".into());
        new.synchronous_commit = Some(SynchronousCommit::Local);
        new.synchronous_transfer = Some(SynchronousTransfer::All);
        assert_eq!(
            lines(&mut c, &new),
            [
                "received SIGHUP, reloading configuration files",
                "parameter \"synchronous_standby_names\" changed to \"FIRST 1 (node2)\"",
                "parameter \"synchronous_commit\" changed to \"local\"",
                "parameter \"synchronous_transfer\" changed to \"all\"",
            ]
        );
        let g = &c.nodes[0].gucs;
        assert_eq!(g.synchronous_standby_names, "FIRST 1 (node2)");
        assert_eq!(
            (g.synchronous_commit, g.synchronous_transfer),
            (SynchronousCommit::Local, SynchronousTransfer::All)
        );
        assert_eq!(lines(&mut c, &new).len(), 1, "the same again changes nothing");
    }

    /// The HA tool's primary: the newest-timeline node accepting writes,
    /// other than the one asked about.
    #[test]
    fn the_current_primary_is_a_production_node_other_than_the_one_excluded() {
        let mut c = quiesced(1, 100);
        assert_eq!(c.current_primary(None), Some(NodeId(0)));
        assert_eq!(c.current_primary(Some(NodeId(1))), Some(NodeId(0)));
        assert_eq!(c.current_primary(Some(NodeId(0))), None, "the standby is not a primary");
        c.nodes[0].status = Status::Down;
        assert_eq!(c.current_primary(None), None);
    }

    /// pg_create_physical_replication_slot then pg_drop_replication_slot:
    /// the slot is gone; dropping it again is an ERROR.
    #[test]
    fn a_dropped_slot_is_gone_and_dropping_it_again_errs() {
        let mut c = quiesced(1, 100);
        c.log = crate::log::Log::new(true);
        c.create_slot(NodeId(0), "s");
        assert_eq!(c.nodes[0].slots.len(), 1);
        c.drop_slot(NodeId(0), "other");
        assert_eq!(c.nodes[0].slots.len(), 1);
        c.drop_slot(NodeId(0), "s");
        assert!(c.nodes[0].slots.is_empty());
        let lines: Vec<_> = c.log.drain().map(|l| (l.level, l.message)).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1], (crate::log::Level::Error, "replication slot \"other\" does not exist".into()));
    }

    /// recoveryPausesHere: a pause request holds replay only on a
    /// consistent standby that is not being promoted.
    #[test]
    fn replay_pauses_only_on_a_consistent_standby_not_promoting() {
        let mut c = quiesced(1, 100);
        c.nodes[0].replay_pause = true;
        c.nodes[1].replay_pause = true;
        assert!(!c.nodes[0].replay_paused(), "a primary");
        assert!(c.nodes[1].replay_paused());
        let st = c.nodes[1].startup.as_mut().unwrap();
        st.consistent = false;
        assert!(!c.nodes[1].replay_paused(), "not consistent");
        let st = c.nodes[1].startup.as_mut().unwrap();
        (st.consistent, st.promote) = (true, true);
        assert!(!c.nodes[1].replay_paused(), "being promoted");
        let st = c.nodes[1].startup.as_mut().unwrap();
        (st.promote, st.standby) = (false, false);
        assert!(!c.nodes[1].replay_paused(), "crash recovery");
        c.nodes[1].replay_pause = false;
        c.nodes[1].startup.as_mut().unwrap().standby = true;
        assert!(!c.nodes[1].replay_paused(), "no request");
    }

    /// `after_events` counts from the end of the previous step, not from
    /// the start of the run.
    #[test]
    fn after_events_count_from_the_previous_step() {
        let mut c = quiesced(1, 300);
        assert!(c.now > 20);
        c.script.last_done_at = c.now - 10;
        let mut s = step(Action::StopLoad, "node1");
        s.after_commits = 0;
        s.after_events = 11;
        std::sync::Arc::make_mut(&mut c.settings).operator = vec![s.clone()];
        assert_eq!(c.operator_ready(false), None, "10 events since the previous step");
        s.after_events = 10;
        std::sync::Arc::make_mut(&mut c.settings).operator = vec![s];
        assert_eq!(c.operator_ready(false), Some(0));
        c.script.in_progress = Some(Completion::Down(NodeId(1)));
        assert_eq!(c.operator_ready(true), None, "the previous step has not finished");
    }
}
