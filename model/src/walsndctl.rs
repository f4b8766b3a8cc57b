//! The walsender array in a primary's shared memory (`WalSndCtl`,
//! walsender_private.h: a node's `WalSndInfo`s and its released positions,
//! the `WalSndCtl` data type of syncrep.rs) and the synchronous-replication
//! functions that act on it (syncrep.c, walsender.c): which slot a walsender takes
//! (InitWalSenderSlot), whether a waiter is released (SyncRepWaitForLSN),
//! SyncRepReleaseWaiters, SyncRepUpdateSyncStandbysDefined, and the wait
//! `synchronous_transfer` adds to a file write. An `impl Node` block over
//! the state `node.rs` holds (`Node::walsenders`, `Node::walsndctl`); the
//! parsing of `synchronous_standby_names` and the choice of synchronous
//! standbys are data-only, in `syncrep.rs`, which the settings and events
//! use without reaching the node.

use crate::ids::NodeId;
use crate::log::{Log, Process};
use crate::lsn::Lsn;
use crate::node::{Env, Node, Status};
use crate::settings::{FileKind, Rules};
use crate::slog;
use crate::syncrep::{ReportedPositions, SlotView, WaitMode, WalSndCtl, WalSndState};

/// A standby as its primary's walsender sees it (`WalSnd`): who it is and
/// the positions it last reported.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct WalSndInfo {
    /// Index in `WalSndCtl->walsnds` (InitWalSenderSlot takes the lowest
    /// free one); `Node::walsenders` is kept in slot order.
    pub slot: usize,
    pub peer: NodeId,
    pub name: String,
    pub reported: ReportedPositions,
    /// `WALSNDSTATE_STREAMING`: the walsender has caught up once. Only
    /// such standbys can be synchronous (SyncRepGetCandidateStandbys).
    pub streaming: bool,
    /// The walsender's `announce_next_takeover` (syncrep.c): log when it
    /// next finds itself synchronous.
    pub announce_next_takeover: bool,
}

impl WalSndInfo {
    /// A walsender just past START_REPLICATION: catching up, nothing
    /// reported yet.
    pub fn new(peer: NodeId, name: String) -> WalSndInfo {
        WalSndInfo {
            slot: 0,
            peer,
            name,
            reported: ReportedPositions::default(),
            streaming: false,
            announce_next_takeover: true,
        }
    }
}

impl Node {
    /// Whether this server would make anything wait for a standby: a
    /// primary with `synchronous_standby_names` set (SyncRepRequested and
    /// `WalSndCtl->sync_standbys_defined`).
    pub fn sync_rep_active(&self) -> bool {
        self.is_primary_or_shutting_down() && !self.single_user && self.walsndctl.sync_standbys_defined
    }

    /// `WalSnd->state` of walsender `w`: catchup until it caught up once,
    /// then streaming; stopping once its server shuts down
    /// (WalSndInitStopping).
    pub fn walsender_state(&self, w: &WalSndInfo) -> WalSndState {
        if self.status == Status::ShuttingDown {
            WalSndState::Stopping
        } else if w.streaming {
            WalSndState::Streaming
        } else {
            WalSndState::Catchup
        }
    }

    /// The walsender slots as the sync-rep functions read them.
    pub fn slot_views(&self) -> Vec<SlotView<'_>> {
        self.walsenders
            .iter()
            .map(|w| SlotView {
                slot: w.slot,
                name: &w.name,
                state: self.walsender_state(w),
                pos: w.reported,
            })
            .collect()
    }

    /// A walsender starts for `peer` (InitWalSenderSlot): it takes the
    /// lowest free slot, or with `rules.walsender_takes_lowest_free_slot`
    /// off the one after the highest in use (connection order).
    pub fn add_walsender(&mut self, mut w: WalSndInfo, rules: &Rules) {
        w.slot = if rules.walsender_takes_lowest_free_slot {
            (0..).find(|i| !self.walsenders.iter().any(|x| x.slot == *i)).expect("a free slot")
        } else {
            self.walsenders.iter().map(|x| x.slot + 1).max().unwrap_or(0)
        };
        let at = self.walsenders.iter().position(|x| x.slot > w.slot).unwrap_or(self.walsenders.len());
        self.walsenders.insert(at, w);
    }

    /// Whether a sync-rep waiter for `lsn` in `mode` is released: nothing
    /// to wait for, or `WalSndCtl->lsn[mode]` has reached it
    /// (SyncRepWaitForLSN, SyncRepWakeQueue). With
    /// `rules.sync_released_positions_only_advance` off, the position is
    /// recomputed from the standbys' current reports instead.
    pub fn sync_released(&self, rules: &Rules, lsn: Lsn, mode: WaitMode) -> bool {
        if !self.sync_rep_active() {
            return true;
        }
        if rules.sync_released_positions_only_advance {
            return lsn <= self.walsndctl.released(mode);
        }
        let need_flush = rules.sync_candidates_need_flush_position;
        self.gucs.names.release_position(&self.slot_views(), mode, need_flush).is_some_and(|p| p >= lsn)
    }

    /// What SyncRepReleaseWaiters would do for the walsender serving
    /// `peer`: the new `WalSndCtl` (released positions only advance), the
    /// walsender's new `announce_next_takeover`, and the line to log.
    pub fn release_outcome(&self, peer: NodeId, rules: &Rules) -> (WalSndCtl, bool, Option<String>) {
        let mut ctl = self.walsndctl;
        let Some(me) = self.walsenders.iter().position(|w| w.peer == peer) else {
            return (ctl, true, None);
        };
        let w = &self.walsenders[me];
        if !self.is_primary_or_shutting_down() {
            // A cascading walsender does not run SyncRepReleaseWaiters.
            return (ctl, w.announce_next_takeover, None);
        }
        let names = &self.gucs.names;
        let state = self.walsender_state(w);
        if names.priority(&w.name) == 0
            || !matches!(state, WalSndState::Streaming | WalSndState::Stopping)
            || w.reported.flush == Lsn(0)
        {
            return (ctl, true, None);
        }
        let need_flush = rules.sync_candidates_need_flush_position;
        let (ptr, am_sync) = names.sync_rec_ptr(&self.slot_views(), me, need_flush);
        let mut announce = w.announce_next_takeover;
        let mut line = None;
        if announce && am_sync {
            announce = false;
            line = Some(if names.is_quorum() {
                format!("standby \"{}\" is now a candidate for quorum synchronous standby", w.name)
            } else {
                format!(
                    "standby \"{}\" is now a synchronous standby with priority {}",
                    w.name,
                    names.priority(&w.name)
                )
            });
        }
        match ptr {
            Some(p) if am_sync => {
                for mode in [WaitMode::Write, WaitMode::Flush, WaitMode::Apply] {
                    let l = &mut ctl.lsn[mode as usize];
                    *l = (*l).max(p.get(mode));
                }
            }
            _ => announce = !am_sync,
        }
        (ctl, announce, line)
    }

    /// SyncRepReleaseWaiters, run by the walsender serving `peer` when a
    /// reply arrives: announce a takeover, advance the released positions.
    pub fn release_waiters(&mut self, peer: NodeId, rules: &Rules, log: &mut Log) {
        let (ctl, announce, line) = self.release_outcome(peer, rules);
        // SyncRepReleaseWaiters: walsndctl->lsn[mode] only advances.
        for mode in [WaitMode::Write, WaitMode::Flush, WaitMode::Apply] {
            debug_assert!(ctl.released(mode) >= self.walsndctl.released(mode), "released {mode:?} went back");
        }
        self.walsndctl = ctl;
        if let Some(w) = self.walsenders.iter_mut().find(|w| w.peer == peer) {
            w.announce_next_takeover = announce;
        }
        if let Some(line) = line {
            slog!(log, self.id, Process::WalSender(peer), Log, "{}", line);
        }
    }

    /// SyncRepUpdateSyncStandbysDefined (the checkpointer, at start and
    /// after a reload): when `synchronous_standby_names` becomes empty,
    /// every waiter is woken (SyncRepWakeQueue(true)).
    pub fn update_sync_standbys_defined(&mut self) {
        let defined = self.gucs.names.is_sync();
        if defined == self.walsndctl.sync_standbys_defined {
            return;
        }
        if !defined {
            for b in &mut self.backends {
                b.wake();
            }
        }
        self.walsndctl.sync_standbys_defined = defined;
    }

    /// `synchronous_transfer`: must a file write of something with `lsn`
    /// wait for the sync standby? Returns the LSN to wait for.
    pub fn transfer_wait(&self, env: Env<'_>, lsn: Lsn, what: FileKind) -> Option<Lsn> {
        let covered = self.gucs.synchronous_transfer.covers_data() && env.settings.design.covers(what);
        (covered && !self.in_recovery() && !self.sync_released(&env.settings.rules, lsn, WaitMode::Flush))
            .then_some(lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::ids::Xid;
    use crate::settings::Settings;
    use crate::syncrep::StandbyNames;

    /// A primary with `synchronous_standby_names = names` and walsenders
    /// for `standbys` (peer, name, flush), all streaming, in that order.
    fn primary(names: &str, standbys: &[(NodeId, &str, u64)]) -> (Node, Rules) {
        let settings = Settings { synchronous_standby_names: names.into(), ..Settings::default() };
        let rules = settings.rules.clone();
        let mut n = Node::initdb(NodeId(0), &settings);
        n.status = Status::Production;
        n.update_sync_standbys_defined();
        for &(peer, name, flush) in standbys {
            let mut w = WalSndInfo::new(peer, name.into());
            w.streaming = true;
            w.reported = ReportedPositions { write: Lsn(flush), flush: Lsn(flush), apply: Lsn(flush) };
            n.add_walsender(w, &rules);
        }
        (n, rules)
    }

    fn reply(n: &mut Node, peer: NodeId, flush: u64, rules: &Rules, log: &mut Log) {
        let w = n.walsenders.iter_mut().find(|w| w.peer == peer).unwrap();
        w.reported = ReportedPositions { write: Lsn(flush), flush: Lsn(flush), apply: Lsn(flush) };
        n.release_waiters(peer, rules, log);
    }

    /// WalSndCtl->lsn[mode] only advances: once node2 (sync) released up
    /// to 0/100 and went away, node3 (now sync, at 0/50) does not take the
    /// released position back, so a commit ending at 0/80 returns at once.
    /// Recomputing from current reports (the old model) makes it wait.
    #[test]
    fn released_positions_only_advance() {
        let (mut n, rules) =
            primary("FIRST 1 (node2, node3)", &[(NodeId(1), "node2", 0x100), (NodeId(2), "node3", 0x50)]);
        let mut log = Log::new(true);
        n.release_waiters(NodeId(1), &rules, &mut log);
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0x100));
        n.walsenders.retain(|w| w.peer != NodeId(1));
        reply(&mut n, NodeId(2), 0x50, &rules, &mut log);
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0x100));
        assert!(n.sync_released(&rules, Lsn(0x80), WaitMode::Flush));
        assert!(!n.sync_released(&rules, Lsn(0x101), WaitMode::Flush));
        let old = Rules { sync_released_positions_only_advance: false, ..rules.clone() };
        assert!(!n.sync_released(&old, Lsn(0x80), WaitMode::Flush), "the planted bug makes it wait");
        // A restart resets shared memory.
        n.walsndctl = WalSndCtl::default();
        n.update_sync_standbys_defined();
        assert!(!n.sync_released(&rules, Lsn(0x80), WaitMode::Flush));
    }

    /// Only a synchronous walsender releases, and it logs its takeover
    /// once; in ANY mode every candidate is a quorum candidate.
    #[test]
    fn takeover_lines_and_who_releases() {
        let (mut n, rules) =
            primary("FIRST 1 (node2, node3)", &[(NodeId(1), "node2", 0x100), (NodeId(2), "node3", 0x200)]);
        let mut log = Log::new(true);
        n.release_waiters(NodeId(2), &rules, &mut log);
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0), "node3 is only potential");
        n.release_waiters(NodeId(1), &rules, &mut log);
        n.release_waiters(NodeId(1), &rules, &mut log);
        let lines: Vec<String> = log.drain().map(|l| l.message).collect();
        assert_eq!(lines, ["standby \"node2\" is now a synchronous standby with priority 1"]);
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0x100));

        let (mut n, rules) =
            primary("ANY 1 (node2, node3)", &[(NodeId(1), "node2", 0x100), (NodeId(2), "node3", 0x200)]);
        n.release_waiters(NodeId(1), &rules, &mut log);
        n.release_waiters(NodeId(2), &rules, &mut log);
        let lines: Vec<String> = log.drain().map(|l| l.message).collect();
        assert_eq!(
            lines,
            [
                "standby \"node2\" is now a candidate for quorum synchronous standby",
                "standby \"node3\" is now a candidate for quorum synchronous standby"
            ]
        );
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0x200), "ANY 1: the latest");
    }

    /// A reconnecting walsender takes the lowest free slot, so with equal
    /// priorities ('*') the standby that left and came back is the
    /// synchronous one again; in connection order it would not be.
    #[test]
    fn reconnecting_walsender_takes_the_lowest_free_slot() {
        let (mut n, rules) =
            primary("FIRST 1 (*)", &[(NodeId(1), "node2", 0x100), (NodeId(2), "node3", 0x100)]);
        let mut log = Log::new(false);
        n.walsenders.retain(|w| w.peer != NodeId(1));
        let mut w = WalSndInfo::new(NodeId(1), "node2".into());
        w.streaming = true;
        w.reported.flush = Lsn(0x100);
        let mut off = n.clone();
        n.add_walsender(w.clone(), &rules);
        assert_eq!(
            n.walsenders.iter().map(|w| (w.slot, w.peer)).collect::<Vec<_>>(),
            [(0, NodeId(1)), (1, NodeId(2))]
        );
        n.release_waiters(NodeId(1), &rules, &mut log);
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0x100), "node2 is sync again");
        let conn_order = Rules { walsender_takes_lowest_free_slot: false, ..rules.clone() };
        off.add_walsender(w, &conn_order);
        assert_eq!(
            off.walsenders.iter().map(|w| (w.slot, w.peer)).collect::<Vec<_>>(),
            [(1, NodeId(2)), (2, NodeId(1))]
        );
        off.release_waiters(NodeId(1), &rules, &mut log);
        assert_eq!(off.walsndctl.released(WaitMode::Flush), Lsn(0), "node3 stays sync");
    }

    /// A walsender that caught up but has not reported a flush position
    /// is no candidate: node2 (priority 1) at 0/0 does not displace node3.
    #[test]
    fn caught_up_without_flush_is_no_candidate() {
        let (mut n, rules) =
            primary("FIRST 1 (node2, node3)", &[(NodeId(1), "node2", 0), (NodeId(2), "node3", 0x80)]);
        let mut log = Log::new(false);
        n.release_waiters(NodeId(2), &rules, &mut log);
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0x80));
        let (mut n, _) =
            primary("FIRST 1 (node2, node3)", &[(NodeId(1), "node2", 0), (NodeId(2), "node3", 0x80)]);
        let off = Rules { sync_candidates_need_flush_position: false, ..rules };
        n.release_waiters(NodeId(2), &off, &mut log);
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0), "the planted bug picks node2 at 0/0");
    }

    /// Clearing synchronous_standby_names wakes every waiter, even if the
    /// names come back before it runs (SyncRepUpdateSyncStandbysDefined).
    #[test]
    fn clearing_the_names_wakes_every_waiter() {
        let (mut n, rules) = primary("FIRST 1 (node2)", &[]);
        let env = Env { settings: &Settings::default(), archive: &Default::default() };
        let op = crate::event::Op { client: 0, kind: crate::event::OpKind::Insert, key: 1, payload: 1 };
        n.backends[0] =
            Backend::SyncRepWait { xid: Xid(900), op, end: Lsn(0x100), mode: WaitMode::Flush, woken: false };
        assert!(!n.backend_ready(0, env, true));
        n.gucs.names = StandbyNames::Async;
        n.update_sync_standbys_defined();
        n.gucs.names = StandbyNames::parse("FIRST 1 (node2)").unwrap();
        n.update_sync_standbys_defined();
        assert!(n.backend_ready(0, env, true));
        assert!(!n.sync_released(&rules, Lsn(0x100), WaitMode::Flush));
    }

    /// SyncRepRequested and `sync_standbys_defined`: only a primary (also
    /// in fast shutdown) with names set makes anything wait; not a server
    /// in single-user mode, not a standby. When nothing waits, every LSN
    /// is released at once.
    #[test]
    fn sync_rep_is_active_only_on_a_primary_with_names() {
        let (n, rules) = primary("FIRST 1 (node2)", &[]);
        assert!(n.sync_rep_active());
        assert!(!n.sync_released(&rules, Lsn(0x10), WaitMode::Flush));
        let mut m = n.clone();
        m.status = Status::ShuttingDown;
        assert!(m.sync_rep_active(), "a primary in fast shutdown");
        let mut m = n.clone();
        m.single_user = true;
        assert!(!m.sync_rep_active());
        assert!(m.sync_released(&rules, Lsn(0x10), WaitMode::Flush));
        let mut m = n.clone();
        m.status = Status::Recovery;
        assert!(!m.sync_rep_active());
        let (m, _) = primary("", &[]);
        assert!(!m.sync_rep_active());
    }

    /// WalSnd->state: catchup until caught up once, then streaming;
    /// stopping while the server shuts down.
    #[test]
    fn walsender_states() {
        let (mut n, _) = primary("FIRST 1 (node2)", &[(NodeId(1), "node2", 0x100)]);
        let mut w = n.walsenders[0].clone();
        assert_eq!(n.walsender_state(&w), WalSndState::Streaming);
        w.streaming = false;
        assert_eq!(n.walsender_state(&w), WalSndState::Catchup);
        n.status = Status::ShuttingDown;
        assert_eq!(n.walsender_state(&w), WalSndState::Stopping);
        let views = n.slot_views();
        assert_eq!(views.len(), 1);
        assert_eq!((views[0].slot, views[0].name, views[0].state), (0, "node2", WalSndState::Stopping));
        assert_eq!(views[0].pos.flush, Lsn(0x100));
    }

    /// A cascading standby's walsender releases nothing and keeps its
    /// announcement (SyncRepReleaseWaiters runs on a primary only).
    #[test]
    fn a_cascading_walsender_releases_nothing() {
        let (mut n, rules) = primary("FIRST 1 (node2)", &[(NodeId(1), "node2", 0x100)]);
        n.status = Status::Recovery;
        n.walsenders[0].announce_next_takeover = false;
        let (ctl, announce, line) = n.release_outcome(NodeId(1), &rules);
        assert_eq!((ctl, announce, line), (n.walsndctl, false, None));
        assert_eq!(n.release_outcome(NodeId(5), &rules), (n.walsndctl, true, None), "no such walsender");
    }

    /// `synchronous_transfer = data_flush`: a write of a covered file whose
    /// LSN the sync standby has not flushed waits for it; nothing waits
    /// under `commit`, for a file the design does not cover, in recovery,
    /// or once the standby flushed that far.
    #[test]
    fn transfer_waits_only_for_covered_unreleased_writes() {
        use crate::settings::SynchronousTransfer as T;
        let (mut n, rules) = primary("FIRST 1 (node2)", &[(NodeId(1), "node2", 0x100)]);
        n.release_waiters(NodeId(1), &rules, &mut Log::new(false));
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0x100));
        let settings = Settings::default();
        let env = Env { settings: &settings, archive: &Default::default() };
        n.gucs.synchronous_transfer = T::DataFlush;
        assert_eq!(n.transfer_wait(env, Lsn(0x180), FileKind::Data), Some(Lsn(0x180)));
        assert_eq!(n.transfer_wait(env, Lsn(0x180), FileKind::Clog), Some(Lsn(0x180)));
        assert_eq!(n.transfer_wait(env, Lsn(0x100), FileKind::Data), None, "flushed by the standby");
        assert_eq!(n.transfer_wait(env, Lsn(0x180), FileKind::Control), None, "not covered");
        n.gucs.synchronous_transfer = T::All;
        assert_eq!(n.transfer_wait(env, Lsn(0x180), FileKind::Data), Some(Lsn(0x180)));
        n.gucs.synchronous_transfer = T::Commit;
        assert_eq!(n.transfer_wait(env, Lsn(0x180), FileKind::Data), None);
        n.gucs.synchronous_transfer = T::DataFlush;
        n.status = Status::Recovery;
        assert_eq!(n.transfer_wait(env, Lsn(0x180), FileKind::Data), None, "in recovery");
    }

    /// SyncRepReleaseWaiters returns at once for a walsender whose standby
    /// has not reported a flush position — also under the planted bug
    /// that lets such a standby be a candidate: it announces nothing and
    /// stays armed to announce.
    #[test]
    fn a_walsender_without_a_flush_position_announces_nothing() {
        let (mut n, rules) =
            primary("FIRST 1 (node2, node3)", &[(NodeId(1), "node2", 0), (NodeId(2), "node3", 0x80)]);
        let off = Rules { sync_candidates_need_flush_position: false, ..rules };
        let mut log = Log::new(true);
        n.release_waiters(NodeId(1), &off, &mut log);
        assert_eq!(log.drain().count(), 0);
        assert!(n.walsenders[0].announce_next_takeover);
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0));
    }

    /// FIRST 2 with one synchronous standby connected: it announces itself
    /// once, and releases nothing until a second one is there.
    #[test]
    fn a_synchronous_standby_announces_itself_once_while_too_few_are_there() {
        let (mut n, rules) = primary("FIRST 2 (node2, node3)", &[(NodeId(1), "node2", 0x100)]);
        let mut log = Log::new(true);
        n.release_waiters(NodeId(1), &rules, &mut log);
        n.release_waiters(NodeId(1), &rules, &mut log);
        let lines: Vec<String> = log.drain().map(|l| l.message).collect();
        assert_eq!(lines, ["standby \"node2\" is now a synchronous standby with priority 1"]);
        assert_eq!(n.walsndctl.released(WaitMode::Flush), Lsn(0));
        // A potential standby stays armed: once it is synchronous, it says so.
        let (mut n, rules) =
            primary("FIRST 1 (node2, node3)", &[(NodeId(1), "node2", 0x100), (NodeId(2), "node3", 0x100)]);
        n.release_waiters(NodeId(2), &rules, &mut log);
        assert!(n.walsenders[1].announce_next_takeover);
        n.walsenders.retain(|w| w.peer != NodeId(1));
        n.release_waiters(NodeId(2), &rules, &mut log);
        let lines: Vec<String> = log.drain().map(|l| l.message).collect();
        assert_eq!(lines, ["standby \"node3\" is now a synchronous standby with priority 2"]);
    }

    /// Setting synchronous_standby_names wakes nobody; clearing it wakes a
    /// waiting commit at once.
    #[test]
    fn only_clearing_the_names_wakes_waiters() {
        let (mut n, _) = primary("FIRST 1 (node2)", &[]);
        let env = Env { settings: &Settings::default(), archive: &Default::default() };
        let op = crate::event::Op { client: 0, kind: crate::event::OpKind::Insert, key: 1, payload: 1 };
        n.backends[0] =
            Backend::SyncRepWait { xid: Xid(900), op, end: Lsn(0x100), mode: WaitMode::Flush, woken: false };
        n.walsndctl.sync_standbys_defined = false;
        n.update_sync_standbys_defined();
        assert!(n.walsndctl.sync_standbys_defined);
        assert!(!n.backend_ready(0, env, true), "defining the names wakes nobody");
        n.gucs.names = StandbyNames::Async;
        n.update_sync_standbys_defined();
        assert!(!n.walsndctl.sync_standbys_defined);
        assert!(n.backend_ready(0, env, true), "woken");
    }
}
