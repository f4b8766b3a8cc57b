//! One PostgreSQL server: its files, its shared memory and its postmaster
//! (postmaster.c).
//!
//! Each PostgreSQL part lives in the module named after it, and adds an
//! `impl Node` block: the processes (`backend`, `checkpointer`, `recovery`,
//! `walsender`, `walreceiver`, `walwriter`, `bgwriter`, `pgarch`), the
//! buffer read/write path (`bufmgr`) and tuple visibility with hint bits
//! (`visibility`). This file holds what they share: the node's state,
//! starting, stopping and crashing the server (and the crash images a power
//! loss chooses among), WAL insert/flush, transaction IDs, and the
//! synchronous-replication state the walsenders and backends share
//! (`WalSndCtl`, SyncRepReleaseWaiters, `synchronous_transfer`).

use crate::backend::Backend;
use crate::buffer::BufferPool;
use crate::checkpointer::Checkpointer;
use crate::clog::Clog;
use crate::control::{ControlFileData, DbState};
use crate::event::{CrashKind, Effects};
use crate::heap::{Page, Xid};
use crate::ids::Tli;
use crate::log::{Log, Process};
use crate::lsn::{Lsn, WalGeometry};
use crate::marks::Mark;
use crate::recovery::Startup;
use crate::settings::{FileKind, Settings};
use crate::settings::{Rules, SynchronousCommit, SynchronousTransfer};
use crate::slog;
use crate::storage::{BlockFile, HasLsn};
use crate::syncrep::{ReportedPositions, SlotView, StandbyNames, WaitMode, WalSndCtl, WalSndState};
use crate::timeline::History;
use crate::wal::{Record, RecordBody, Wal};

impl HasLsn for Page {
    fn lsn(&self) -> Lsn {
        self.lsn
    }
}

pub use crate::ids::NodeId;

/// A standby's walreceiver state.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct WalRcv {
    /// Positions last reported to the upstream.
    pub reported: ReportedPositions,
    /// Recovery target timeline (`recovery_target_timeline = 'latest'`).
    pub target_tli: Tli,
    /// The world as it was at the last refusal. PostgreSQL retries every
    /// `wal_retrieve_retry_interval`; the model retries only once something
    /// the checks look at has changed, so a refused run still quiesces.
    pub refused: Option<RefusalMemo>,
}

/// What a refused START_REPLICATION depended on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RefusalMemo {
    pub upstream: NodeId,
    pub upstream_flush: Lsn,
    pub upstream_tli: Tli,
    pub local_end: Lsn,
}

/// What the postmaster is doing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Status {
    /// Not running.
    Down,
    /// The startup process runs (crash recovery, or a standby).
    Recovery,
    /// A primary accepting writes.
    Production,
    /// A fast shutdown: the shutdown checkpoint is under way.
    ShuttingDown,
}

/// The run's configuration, as every process reads it. The settings a
/// reload can change are the node's own ([`Node::gucs`]).
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub settings: &'a Settings,
    /// The WAL archive all nodes share (read by `restore_command`).
    pub archive: &'a crate::archive::Archive,
}

/// The reloadable settings a server runs with (initialised from the run's
/// settings; an operator `reload` step changes them on one node).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Gucs {
    /// Parsed `synchronous_standby_names`.
    pub names: StandbyNames,
    /// The text it was parsed from.
    pub synchronous_standby_names: String,
    pub synchronous_commit: SynchronousCommit,
    pub synchronous_transfer: SynchronousTransfer,
}

impl Gucs {
    pub fn of(settings: &Settings) -> Gucs {
        Gucs {
            names: StandbyNames::parse(&settings.synchronous_standby_names).expect("validated settings"),
            synchronous_standby_names: settings.synchronous_standby_names.clone(),
            synchronous_commit: settings.synchronous_commit,
            synchronous_transfer: settings.synchronous_transfer,
        }
    }

    /// `SyncRepWaitMode` (assign_synchronous_commit): what a commit waits
    /// for, if anything.
    pub fn wait_mode(&self) -> Option<WaitMode> {
        match self.synchronous_commit {
            SynchronousCommit::RemoteWrite => Some(WaitMode::Write),
            SynchronousCommit::On => Some(WaitMode::Flush),
            SynchronousCommit::RemoteApply => Some(WaitMode::Apply),
            SynchronousCommit::Off | SynchronousCommit::Local => None,
        }
    }
}

/// What a process needs while it acts: the configuration, the log, and
/// where to report effects outside its node.
pub struct Ctx<'a> {
    pub env: Env<'a>,
    pub log: &'a mut Log,
    pub fx: &'a mut Effects,
}

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

/// A server.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Node {
    pub id: NodeId,
    /// `application_name` / `cluster_name`: `node1`, `node2`, ...
    pub name: String,
    pub status: Status,
    // --- files ---
    pub wal: Wal,
    pub data: BlockFile<Page>,
    pub clog: Clog,
    pub control: ControlFileData,
    /// The durable pg_control while the OS cache holds a newer write that
    /// was not fsynced (only with `rules.fsync_control_file` off); `None`:
    /// what `control` holds is on disk.
    pub control_unsynced: Option<ControlFileData>,
    /// Timeline history files in `pg_wal`.
    pub history: History,
    /// `pg_wal/archive_status` and the archiver (xlogarchive.rs).
    pub archive_status: crate::archive::ArchiveStatus,
    /// `standby.signal` present: start as a standby.
    pub standby_signal: bool,
    // --- shared memory ---
    pub buffers: BufferPool,
    /// Timeline WAL is inserted on (primary) or replayed on (standby).
    pub tli: Tli,
    /// `RedoRecPtr`: the REDO of the latest checkpoint started; a page
    /// whose LSN is at or before it needs a full-page image on next change.
    pub redo_ptr: Lsn,
    /// `nextXid`.
    pub next_xid: Xid,
    /// `ProcArray`: transactions in progress.
    pub running: Vec<Xid>,
    // --- processes ---
    pub backends: Vec<Backend>,
    pub checkpointer: Checkpointer,
    pub startup: Option<Startup>,
    /// Connected standbys, as walsenders know them, in slot order.
    pub walsenders: Vec<WalSndInfo>,
    /// Sync-rep shared state (`WalSndCtl->lsn[]`, `sync_standbys_defined`).
    pub walsndctl: WalSndCtl,
    /// The settings a reload can change.
    pub gucs: Gucs,
    /// `pg_wal_replay_pause()` was called (RecoveryPauseState): a
    /// consistent standby's startup process replays nothing until
    /// `pg_wal_replay_resume()`.
    pub replay_pause: bool,
    /// Times the node lost power.
    pub power_losses: u32,
    /// Why the server cannot start (a PANIC or FATAL at startup), until an
    /// operator changes its files.
    pub failed: Option<String>,
    /// `primary_conninfo`: the node a standby streams from.
    pub upstream: Option<NodeId>,
    /// Walreceiver and recovery-target state of a standby.
    pub walrcv: WalRcv,
    /// Stopped by the operator: not restarted automatically.
    pub operator_stopped: bool,
    /// Running in single-user mode (pg_rewind's crash recovery): no
    /// replication, so nothing waits for a standby.
    pub single_user: bool,
    /// The shutdown checkpoint is done; walsenders finish sending.
    pub shutdown_ckpt_done: bool,
    /// The `promote` signal file: survives a crash, consumed by promotion.
    pub promote_signal: bool,
    /// The primary this standby caught up with as a synchronous candidate,
    /// while its WAL is still that primary's (for the proposal's premise).
    pub synced_to: Option<NodeId>,
    /// Physical replication slots in `pg_replslot` (kept across restarts;
    /// not copied by a base backup, skipped by pg_rewind).
    pub slots: Vec<ReplSlot>,
    /// `primary_slot_name`: the upstream's slot this standby streams
    /// through.
    pub primary_slot_name: Option<String>,
}

/// A physical replication slot (slot.c `ReplicationSlotPersistentData`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ReplSlot {
    pub name: String,
    /// WAL from here on is kept (KeepLogSeg); advanced by the standby's
    /// flush feedback (PhysicalConfirmReceivedLocation). Invalid once
    /// invalidated.
    pub restart_lsn: Lsn,
    /// Invalidated by `max_slot_wal_keep_size` (InvalidateObsoleteReplicationSlots).
    pub invalidated: bool,
}

impl Node {
    /// The oldest `restart_lsn` of a valid slot that holds WAL.
    pub fn slots_min_restart_lsn(&self) -> Option<Lsn> {
        self.slots.iter().filter(|s| !s.invalidated && s.restart_lsn.is_valid()).map(|s| s.restart_lsn).min()
    }
}

impl Node {
    /// `initdb`: an empty table, and WAL that starts with a shutdown
    /// checkpoint on timeline 1.
    pub fn initdb(id: NodeId, settings: &Settings) -> Node {
        let geometry = WalGeometry::new(settings.wal_segment_size.0);
        let mut wal = Wal::new(geometry);
        let redo = wal.insert_lsn();
        let ckpt = crate::wal::CheckPoint {
            redo,
            tli: Tli(1),
            prev_tli: Tli(1),
            next_xid: crate::heap::FIRST_NORMAL_XID,
        };
        let lsn = wal.insert(Tli(1), 0, RecordBody::CheckpointShutdown(ckpt)).lsn;
        wal.flush_upto(Lsn(u64::MAX));
        let control = ControlFileData {
            system_identifier: 7_000_000_000_000_000_001,
            state: DbState::Shutdowned,
            checkpoint: lsn,
            redo,
            tli: Tli(1),
            prev_tli: Tli(1),
            next_xid: ckpt.next_xid,
            min_recovery_point: Lsn(0),
            min_recovery_point_tli: Tli(0),
            backup_start: Lsn(0),
            backup_end_required: false,
        };
        let clients = settings.workload.clients;
        Node {
            id,
            name: id.name(),
            status: Status::Down,
            wal,
            data: BlockFile::new(settings.cluster.rel_pages),
            clog: Clog::new(settings.cluster.clog_xids_per_page),
            control,
            control_unsynced: None,
            history: History::default(),
            archive_status: Default::default(),
            standby_signal: false,
            buffers: BufferPool::new(settings.shared_buffers, settings.cluster.rel_pages),
            tli: Tli(1),
            redo_ptr: redo,
            next_xid: ckpt.next_xid,
            running: Vec::new(),
            backends: (0..clients).map(|_| Backend::default()).collect(),
            checkpointer: Checkpointer::default(),
            startup: None,
            walsenders: Vec::new(),
            walsndctl: WalSndCtl::default(),
            gucs: Gucs::of(settings),
            replay_pause: false,
            power_losses: 0,
            failed: None,
            upstream: None,
            walrcv: WalRcv::default(),
            operator_stopped: false,
            single_user: false,
            shutdown_ckpt_done: false,
            promote_signal: false,
            synced_to: None,
            slots: Vec::new(),
            primary_slot_name: None,
        }
    }

    /// A copy of `source`'s files as a base backup taken while it is shut
    /// down cleanly (the cluster's initial standbys, and the `basebackup`
    /// failback): same data, WAL and history, a fresh node identity.
    pub fn copy_of(id: NodeId, source: &Node, settings: &Settings) -> Node {
        let mut n = Node::initdb(id, settings);
        n.wal = source.wal.clone();
        n.data = source.data.clone();
        n.data.fsync();
        n.clog = source.clog.clone();
        n.clog.file.fsync();
        n.control = source.control;
        n.history = source.history.clone();
        n.tli = source.control.tli;
        // pg_basebackup marks the WAL it copies `.done`.
        n.archive_status.next_seg = n.wal.geometry().segno(n.wal.flush_lsn());
        n
    }

    pub fn is_running(&self) -> bool {
        self.status != Status::Down
    }

    /// Accepts client connections: a primary, or a hot standby once
    /// consistent.
    pub fn accepts_connections(&self) -> bool {
        self.status == Status::Production || self.startup.as_ref().is_some_and(|s| s.standby && s.consistent)
    }

    /// A primary accepting writes.
    pub fn is_primary(&self) -> bool {
        self.status == Status::Production
    }

    /// `RecoveryInProgress()`.
    pub fn in_recovery(&self) -> bool {
        self.status == Status::Recovery
    }

    /// Replay is paused (recoveryPausesHere): requested, and the standby
    /// is consistent (hot standby active) and not being promoted.
    pub fn replay_paused(&self) -> bool {
        self.replay_pause
            && self.status == Status::Recovery
            && self.startup.as_ref().is_some_and(|s| s.standby && s.consistent && !s.promote)
    }

    /// A standby (archive recovery with `standby.signal`).
    pub fn is_standby(&self) -> bool {
        self.startup.as_ref().is_some_and(|s| s.standby)
    }

    // ---------------------------------------------------------------
    // WAL
    // ---------------------------------------------------------------

    /// `XLogInsert` on the current timeline; returns the record.
    pub fn xlog_insert(&mut self, xid: Xid, body: RecordBody) -> &Record {
        self.wal.insert(self.tli, xid, body)
    }

    /// `XLogFlush(lsn)`. Outside recovery this writes and fsyncs WAL; in
    /// recovery it instead raises minRecoveryPoint (UpdateMinRecoveryPoint),
    /// because a standby must not start up before replaying past any page
    /// it has already written.
    pub fn xlog_flush(&mut self, lsn: Lsn, log: &mut Log, proc: Process) {
        if let Some(st) = self.startup.as_ref().filter(|_| !self.xlog_insert_allowed()) {
            if lsn > self.control.min_recovery_point && st.standby {
                let new = st.replayed.max(lsn);
                self.control.min_recovery_point = new;
                self.control.min_recovery_point_tli = self.tli;
                slog!(
                    log,
                    self.id,
                    proc,
                    Debug,
                    "updated min recovery point to {} on timeline {}",
                    new,
                    self.tli
                );
            }
            return;
        }
        if self.wal.needs_flush(lsn) {
            self.wal.flush_upto(lsn);
        }
    }

    // ---------------------------------------------------------------
    // Synchronous replication
    // ---------------------------------------------------------------

    /// Whether this server would make anything wait for a standby: a
    /// primary with `synchronous_standby_names` set (SyncRepRequested and
    /// `WalSndCtl->sync_standbys_defined`).
    pub fn sync_rep_active(&self) -> bool {
        self.is_primary_or_shutting_down() && !self.single_user && self.walsndctl.sync_standbys_defined
    }

    /// A primary, possibly in fast shutdown (not a standby shutting down).
    pub fn is_primary_or_shutting_down(&self) -> bool {
        match self.status {
            Status::Production => true,
            Status::ShuttingDown => self.startup.is_none(),
            _ => false,
        }
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

    // ---------------------------------------------------------------
    // Transaction IDs (varsup.c, procarray.c)
    // ---------------------------------------------------------------

    /// A new transaction ID (GetNewTransactionId).
    pub fn assign_xid(&mut self) -> Xid {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.running.push(xid);
        xid
    }

    /// The transaction left the ProcArray.
    pub fn end_xid(&mut self, xid: Xid) {
        self.running.retain(|&x| x != xid);
    }

    // ---------------------------------------------------------------
    // Lifecycle
    // ---------------------------------------------------------------

    /// `pg_ctl start`: the postmaster starts the startup process, which
    /// decides between no recovery (clean shutdown of a primary), crash
    /// recovery and standby mode.
    pub fn start(&mut self, ctx: &mut Ctx<'_>) {
        debug_assert_eq!(self.status, Status::Down);
        let clean = self.control.state.is_clean_shutdown();
        slog!(
            ctx.log,
            self.id,
            Process::Postmaster,
            Log,
            "starting PostgreSQL (walsim model) on {}",
            self.name
        );
        if !clean {
            slog!(
                ctx.log,
                self.id,
                Process::Startup,
                Log,
                "database system was interrupted; last known up at checkpoint {}",
                self.control.checkpoint
            );
            if ctx.env.settings.rules.sync_data_directory_after_crash {
                // SyncDataDirectory: fsync everything so recovery reads
                // only durable WAL and data.
                self.data.fsync();
                self.clog.file.fsync();
                self.wal.mark_written_durable();
                self.control_unsynced = None;
                slog!(
                    ctx.log,
                    self.id,
                    Process::Startup,
                    Debug,
                    "syncing data directory (fsync), elapsed time: 0.00 s"
                );
            }
        } else {
            slog!(
                ctx.log,
                self.id,
                Process::Startup,
                Log,
                "database system was shut down at checkpoint {}",
                self.control.checkpoint
            );
        }
        self.buffers.clear();
        self.clog.reload();
        self.running.clear();
        self.walsenders.clear();
        self.walsndctl = WalSndCtl::default();
        self.replay_pause = false;
        self.shutdown_ckpt_done = false;
        self.walrcv = WalRcv::default();
        self.checkpointer = Checkpointer::default();
        for b in &mut self.backends {
            *b = Backend::default();
        }
        self.tli = self.control.tli;
        self.next_xid = self.control.next_xid;
        self.redo_ptr = self.control.redo;
        self.update_sync_standbys_defined();
        if clean && !self.standby_signal {
            self.status = Status::Production;
            self.control.state = DbState::InProduction;
            slog!(
                ctx.log,
                self.id,
                Process::Postmaster,
                Log,
                "database system is ready to accept connections"
            );
            return;
        }
        self.begin_recovery(ctx);
    }

    /// The WAL ends a power loss may keep, the unsynced data and CLOG pages,
    /// and the number of distinct images (`u64::MAX`: 2^60 or more). An
    /// unsynced pg_control write (`rules.fsync_control_file` off) is one
    /// more page that reached the disk or not.
    fn crash_image_space(&self) -> (Vec<Lsn>, u32, u32, u64) {
        let (flush, write) = (self.wal.flush_lsn(), self.wal.write_lsn());
        let mut wal_ends = vec![flush];
        wal_ends.extend(self.wal.records().iter().map(|r| r.end).filter(|&e| e > flush && e <= write));
        let (kd, kc) = (self.data.unsynced().len() as u32, self.clog.file.unsynced().len() as u32);
        let bits = kd + kc + u32::from(self.control_unsynced.is_some());
        let total = if bits >= 60 { u64::MAX } else { (wal_ends.len() as u64).saturating_mul(1 << bits) };
        (wal_ends, kd, kc, total)
    }

    /// After a step, with `rules.fsync_control_file` off: pg_control changed
    /// since `before` by a write without fsync, so its durable image stays
    /// where it was (the oldest lost update's predecessor); `synced`: the
    /// writer synced it after all (pg_rewind and base backups sync what
    /// they copy).
    pub fn note_control_write(&mut self, before: ControlFileData, synced: bool) {
        if self.control == before {
            return;
        }
        if synced || self.control_unsynced == Some(self.control) {
            self.control_unsynced = None;
        } else if self.control_unsynced.is_none() {
            self.control_unsynced = Some(before);
        }
    }

    /// How many distinct crash images a power loss now chooses among, with
    /// `faults.crash_images = bound` (the arguments `0..` that number give
    /// each once).
    pub fn crash_image_count(&self, bound: u32) -> u64 {
        self.crash_image_space().3.min(u64::from(bound.max(1)))
    }

    /// The writes that reached the disk before a power loss, as crash image
    /// `arg` of at most `bound` (`faults.crash_images`): a subset of the
    /// unsynced data and CLOG pages, and the unflushed WAL up to one of its
    /// record ends. Image 0 of an enumeration is "nothing reached the
    /// disk" (what a power loss without crash images leaves).
    pub fn reach_disk(&mut self, arg: u64, bound: u32, ctx: &mut Ctx<'_>) {
        let (wal_ends, kd, kc, total) = self.crash_image_space();
        let bound = u64::from(bound.max(1));
        let (image, mut x) = if total <= bound {
            let i = arg % total;
            (i, i)
        } else {
            // Sampled: N images, each a hash of its number, but image 0 is
            // always "nothing reached the disk" (the single image's), so
            // the images include the default's.
            let i = arg % bound;
            (i, if i == 0 { 0 } else { mix(i ^ 0x696d_6167_6573) })
        };
        let w = (x % wal_ends.len() as u64) as usize;
        x /= wal_ends.len() as u64;
        // One bit per unsynced page, 48 from each word of a mixed stream.
        let mut next_bit = {
            let mut word = x;
            let mut n = 0u32;
            move || {
                if n > 0 && n.is_multiple_of(48) {
                    word = mix(word ^ u64::from(n));
                }
                let b = (word >> (n % 48)) & 1 == 1;
                n += 1;
                b
            }
        };
        let data_bits: Vec<bool> = (0..kd).map(|_| next_bit()).collect();
        let clog_bits: Vec<bool> = (0..kc).map(|_| next_bit()).collect();
        let control = self.control_unsynced.is_some().then(&mut next_bit);
        self.data.sync_some(|i| data_bits[i]);
        self.clog.file.sync_some(|i| clog_bits[i]);
        self.wal.flush_upto(wal_ends[w]);
        if control == Some(true) {
            self.control_unsynced = None;
        }
        slog!(
            ctx.log,
            self.id,
            Process::Postmaster,
            Log,
            "crash image {image} of {}: {} of {kd} unsynced data pages and {} of {kc} CLOG pages reached the disk{}, WAL to {}",
            if total == u64::MAX { "2^60+".to_string() } else { total.min(bound).to_string() },
            data_bits.iter().filter(|&&b| b).count(),
            clog_bits.iter().filter(|&&b| b).count(),
            match control {
                Some(true) => ", pg_control's unsynced update too",
                Some(false) => ", pg_control's unsynced update did not",
                None => "",
            },
            wal_ends[w]
        );
    }

    /// Crash: shared memory and every process are gone; with power loss,
    /// so is everything not fsynced. Client sessions in the middle of a
    /// commit are left not knowing whether it committed.
    pub fn crash(&mut self, kind: CrashKind, ctx: &mut Ctx<'_>) {
        match kind {
            CrashKind::Immediate => {
                slog!(ctx.log, self.id, Process::Postmaster, Log, "received immediate shutdown request");
                self.wal.lose_unwritten();
            }
            CrashKind::PowerLoss => {
                slog!(
                    ctx.log,
                    self.id,
                    Process::Postmaster,
                    Log,
                    "power loss: OS cache lost (WAL durable to {}, written to {})",
                    self.wal.flush_lsn(),
                    self.wal.write_lsn()
                );
                if self.wal.write_lsn() > self.wal.flush_lsn()
                    || !self.data.unsynced().is_empty()
                    || !self.clog.file.unsynced().is_empty()
                {
                    ctx.fx.marks.hit(Mark::PowerLossHitUnsyncedWrite);
                }
                self.wal.lose_unflushed();
                self.data.lose_unsynced();
                self.clog.file.lose_unsynced();
                if let Some(durable) = self.control_unsynced.take() {
                    slog!(
                        ctx.log,
                        self.id,
                        Process::Postmaster,
                        Log,
                        "power loss: pg_control's unsynced update is lost (on disk: latest checkpoint {}, {}; lost: latest checkpoint {}, {})",
                        durable.checkpoint,
                        durable.state.name(),
                        self.control.checkpoint,
                        self.control.state.name()
                    );
                    self.control = durable;
                    // The REDO pg_control on disk names must still be in
                    // pg_wal: a checkpoint that removed its segment trusted
                    // a pg_control update that never reached the disk.
                    if self.wal.segment_removed(self.control.redo) {
                        let g = *self.wal.geometry();
                        ctx.fx.violations.push(crate::violation::Violation {
                            invariant: crate::violation::Invariant::WalSegmentsKept,
                            node: Some(self.id),
                            detail: format!(
                                "{}: after a power loss pg_control on disk names REDO {}, but its segment {} was removed by a checkpoint whose pg_control update never reached the disk: crash recovery will not find its checkpoint",
                                self.name,
                                self.control.redo,
                                g.wal_file_name(self.control.tli, self.control.redo)
                            ),
                        });
                    }
                }
                self.power_losses += 1;
                ctx.fx.power_loss.push(self.id);
            }
        }
        for (i, b) in self.backends.iter_mut().enumerate() {
            if let Some(op) = b.abandon() {
                ctx.fx.in_doubt.push((i as u8, op));
            }
        }
        self.buffers.clear();
        self.running.clear();
        self.walsenders.clear();
        self.walsndctl = WalSndCtl::default();
        self.replay_pause = false;
        self.checkpointer = Checkpointer::default();
        self.startup = None;
        self.shutdown_ckpt_done = false;
        self.single_user = false;
        self.status = Status::Down;
        slog!(ctx.log, self.id, Process::Postmaster, Log, "database system is shut down (crashed)");
    }

    /// `pg_ctl stop -m fast`: sessions are terminated (a commit whose record
    /// is flushed stays committed locally, but its client is left in
    /// doubt), then the checkpointer writes the shutdown checkpoint (a
    /// shutdown restartpoint on a standby).
    pub fn begin_fast_shutdown(&mut self, ctx: &mut Ctx<'_>) {
        slog!(ctx.log, self.id, Process::Postmaster, Log, "received fast shutdown request");
        for b in 0..self.backends.len() {
            self.terminate_backend(b, ctx);
        }
        self.running.clear();
        let kind = if self.startup.is_some() {
            crate::wal::CkptKind::ShutdownRestartpoint
        } else {
            crate::wal::CkptKind::Shutdown
        };
        self.checkpointer.request(kind);
        self.status = Status::ShuttingDown;
    }
}

/// SplitMix64's finaliser: a fixed, platform-independent mixing of a number.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Backend::SyncRepWait { xid: 900, op, end: Lsn(0x100), mode: WaitMode::Flush, woken: false };
        assert!(!n.backend_ready(0, env, true));
        n.gucs.names = StandbyNames::Async;
        n.update_sync_standbys_defined();
        n.gucs.names = StandbyNames::parse("FIRST 1 (node2)").unwrap();
        n.update_sync_standbys_defined();
        assert!(n.backend_ready(0, env, true));
        assert!(!n.sync_released(&rules, Lsn(0x100), WaitMode::Flush));
    }

    /// The crash-image sampler's `mix` is SplitMix64's output function
    /// (the same as the client's): its reference values. Which images a
    /// power loss samples depends on it.
    #[test]
    fn crash_image_mix_is_splitmix64() {
        assert_eq!(mix(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(mix(1), 0x910A_2DEC_8902_5CC1);
        assert_eq!(mix(12_345), 0x2211_8258_A9D1_11A0);
    }
}
