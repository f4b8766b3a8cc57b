//! One PostgreSQL server: its files, its shared memory and its postmaster
//! (postmaster.c).
//!
//! Each PostgreSQL part lives in the module named after it, and adds an
//! `impl Node` block: the processes (`backend`, `checkpointer`, `recovery`,
//! `walsender`, `walreceiver`, `walwriter`, `bgwriter`, `pgarch`), the
//! buffer read/write path (`bufmgr`), tuple visibility with hint bits
//! (`visibility`), the synchronous-replication state the walsenders and
//! backends share (`walsndctl`: `WalSndCtl`, SyncRepReleaseWaiters,
//! `synchronous_transfer`) and the crash images a power loss chooses among
//! (`crash_image`). This file holds what they share: the node's state,
//! starting, stopping and crashing the server, WAL insert/flush and
//! transaction IDs.

use crate::backend::Backend;
use crate::buffer::BufferPool;
use crate::checkpointer::Checkpointer;
use crate::clog::Clog;
use crate::control::{ControlFileData, DbState};
use crate::event::{CrashKind, Effects};
use crate::heap::Page;
use crate::ids::{Tli, Xid};
use crate::log::{Log, Process};
use crate::lsn::{Lsn, WalGeometry};
use crate::marks::Mark;
use crate::recovery::Startup;
use crate::settings::Settings;
use crate::settings::{SynchronousCommit, SynchronousTransfer};
use crate::slog;
use crate::storage::{BlockFile, HasLsn};
use crate::syncrep::{ReportedPositions, StandbyNames, WaitMode, WalSndCtl};
use crate::timeline::History;
use crate::wal::{Record, RecordBody, Wal};
use crate::walsndctl::WalSndInfo;

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
        let geometry = WalGeometry::with_block_size(settings.wal_segment_size.0, settings.wal_block_size.0);
        let mut wal = Wal::new(geometry);
        let redo = wal.insert_lsn();
        let ckpt =
            crate::wal::CheckPoint { redo, tli: Tli(1), prev_tli: Tli(1), next_xid: Xid::FIRST_NORMAL };
        let lsn = wal.insert(Tli(1), Xid::INVALID, RecordBody::CheckpointShutdown(ckpt)).lsn;
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

    /// A primary, possibly in fast shutdown (not a standby shutting down).
    pub fn is_primary_or_shutting_down(&self) -> bool {
        match self.status {
            Status::Production => true,
            Status::ShuttingDown => self.startup.is_none(),
            _ => false,
        }
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
    // Transaction IDs (varsup.c, procarray.c)
    // ---------------------------------------------------------------

    /// A new transaction ID (GetNewTransactionId).
    pub fn assign_xid(&mut self) -> Xid {
        let xid = self.next_xid;
        self.next_xid = xid.next();
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
