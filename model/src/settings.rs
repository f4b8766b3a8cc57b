//! The configuration of one run: PostgreSQL settings (top-level keys named
//! exactly as the GUCs) and walsim's own settings (in sections).
//!
//! Every struct denies unknown fields so a misspelt key is an error, not a
//! silently ignored setting. Ranges are checked by [`Settings::validate`],
//! which names the offending key.

use crate::lsn::{LsnFormat, XLOG_BLCKSZ};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// `synchronous_commit`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynchronousCommit {
    Off,
    Local,
    RemoteWrite,
    On,
    RemoteApply,
}

impl SynchronousCommit {
    pub fn name(self) -> &'static str {
        match self {
            SynchronousCommit::Off => "off",
            SynchronousCommit::Local => "local",
            SynchronousCommit::RemoteWrite => "remote_write",
            SynchronousCommit::On => "on",
            SynchronousCommit::RemoteApply => "remote_apply",
        }
    }
}

/// Which server's behaviour to follow where PostgreSQL releases differ in
/// something walsim models. Only differences confirmed from the source or
/// a real server's log sit behind it (docs/model.md).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum ServerVersion {
    /// PostgreSQL 15 (what `walsim conform` runs).
    #[default]
    #[serde(rename = "15")]
    V15,
    /// The 9.4 development snapshot of the 2013 experiment: its walsender
    /// had no "not in this server's history" check, its end-of-WAL message
    /// was "record with zero length", and pg_rewind was not in core.
    #[serde(rename = "9.4devel")]
    V94Devel,
}

impl ServerVersion {
    pub fn name(self) -> &'static str {
        match self {
            ServerVersion::V15 => "15",
            ServerVersion::V94Devel => "9.4devel",
        }
    }
}

/// `synchronous_transfer`, the 2013 proposal: what waits for the sync standby.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynchronousTransfer {
    /// Stock PostgreSQL: only commits wait (per `synchronous_commit`).
    Commit,
    /// Writes of data files wait for the standby to flush WAL up to the
    /// page LSN; commits do not wait.
    DataFlush,
    /// Both.
    All,
}

impl SynchronousTransfer {
    pub fn name(self) -> &'static str {
        match self {
            SynchronousTransfer::Commit => "commit",
            SynchronousTransfer::DataFlush => "data_flush",
            SynchronousTransfer::All => "all",
        }
    }
    /// Whether file writes wait for the sync standby.
    pub fn covers_data(self) -> bool {
        !matches!(self, SynchronousTransfer::Commit)
    }
    /// Whether commits wait for the sync standby.
    pub fn covers_commit(self) -> bool {
        !matches!(self, SynchronousTransfer::DataFlush)
    }
}

/// A size in bytes, written as PostgreSQL writes memory settings: an
/// integer in the setting's base unit, or a string with a unit (`"16MB"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Bytes(pub u64);

impl Bytes {
    /// Parses `"<n><unit>"` with PostgreSQL's case-sensitive units.
    pub fn parse(s: &str) -> Result<Bytes, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size \"{s}\": expected a number with a unit such as 16MB"))?;
        let mult = match unit.trim() {
            "" | "B" => 1,
            "kB" => 1 << 10,
            "MB" => 1 << 20,
            "GB" => 1 << 30,
            other => {
                return Err(format!(
                    "invalid size unit \"{other}\" in \"{s}\": valid units are B, kB, MB and GB"
                ));
            }
        };
        n.checked_mul(mult).map(Bytes).ok_or_else(|| format!("size \"{s}\" is too large"))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n != 0 && n.is_multiple_of(1 << 30) {
            write!(f, "{}GB", n >> 30)
        } else if n != 0 && n.is_multiple_of(1 << 20) {
            write!(f, "{}MB", n >> 20)
        } else if n != 0 && n.is_multiple_of(1 << 10) {
            write!(f, "{}kB", n >> 10)
        } else {
            write!(f, "{n}B")
        }
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        deserialize_size(d, 1)
    }
}

/// A size as PostgreSQL reads one: a string with a unit (`"16MB"`), or an
/// integer in the setting's base unit of `unit` bytes.
fn deserialize_size<'de, D: Deserializer<'de>>(d: D, unit: u64) -> Result<Bytes, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Str(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => n
            .checked_mul(unit)
            .map(Bytes)
            .ok_or_else(|| serde::de::Error::custom(format!("size {n} (× {unit} bytes) is too large"))),
        Raw::Str(s) => Bytes::parse(&s).map_err(serde::de::Error::custom),
    }
}

/// All settings of a run. Defaults are PostgreSQL's where PostgreSQL has
/// one, scaled down where sizes would make a run slow (see docs/model.md).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The PostgreSQL release whose behaviour to follow: `"15"` or
    /// `"9.4devel"` (the seed experiment's server).
    pub server_version: ServerVersion,
    /// `synchronous_commit`: off | local | remote_write | on | remote_apply.
    pub synchronous_commit: SynchronousCommit,
    /// `wal_log_hints`: WAL-log a full-page image on the first hint-bit
    /// change of a page after a checkpoint.
    pub wal_log_hints: bool,
    /// `full_page_writes`: a full-page image with the first change of a page
    /// after a checkpoint.
    pub full_page_writes: bool,
    /// `synchronous_standby_names`: empty (asynchronous), `*`, a name list,
    /// `FIRST n (...)` or `ANY n (...)`. Servers are named `node1` (the
    /// first primary), `node2`, ... (each standby's `application_name`).
    pub synchronous_standby_names: String,
    /// `synchronous_transfer` (2013 proposal): commit | data_flush | all.
    pub synchronous_transfer: SynchronousTransfer,
    /// `wal_segment_size` (initdb --wal-segsize), bytes or with a unit.
    /// The model allows segments below PostgreSQL's 1 MB minimum, down to
    /// two WAL pages (docs/model.md).
    pub wal_segment_size: Bytes,
    /// `wal_block_size`: the WAL page size (`XLOG_BLCKSZ`, PostgreSQL's
    /// `configure --with-wal-blocksize`, 1..64 kB; read-only on a real
    /// server). Defaults to 1 kB so that segments can be small
    /// (docs/model.md); the real server's is 8 kB.
    pub wal_block_size: Bytes,
    /// `shared_buffers`, in 8 kB buffers as PostgreSQL counts them.
    pub shared_buffers: u32,
    /// `max_wal_size`: WAL written since the last checkpoint's REDO that
    /// triggers a checkpoint. An integer is in MB, as PostgreSQL reads it.
    pub max_wal_size: WalSize,
    /// `min_wal_size`: below this much WAL since REDO, a checkpoint recycles
    /// old segments as future ones rather than removing them (XLOGfileslop);
    /// it decides only which DEBUG line is logged. An integer is in MB.
    pub min_wal_size: WalSize,
    /// `wal_keep_size`: WAL a checkpoint keeps behind its record for
    /// standbys, whatever their position (KeepLogSeg). An integer is in MB.
    pub wal_keep_size: WalSize,
    /// `max_slot_wal_keep_size` in MB: a replication slot whose
    /// `restart_lsn` lags the checkpoint by more is invalidated; -1: no
    /// limit (PostgreSQL's default).
    pub max_slot_wal_keep_size: i64,
    /// `archive_mode`: off | on (the primary archives completed segments
    /// and history files) | always (standbys archive what they receive too).
    pub archive_mode: ArchiveMode,
    /// `archive_command` is set (`cp %p /archive/%f` into the archive all
    /// nodes share). `false` with `archive_mode` on: nothing is archived
    /// and `.ready` segments pile up in pg_wal. Failures are a fault
    /// (`faults.archive_command`).
    pub archive_command: bool,
    /// `restore_command` is set (`cp /archive/%f %p`): recovery, a standby
    /// whose upstream removed a segment, findNewestTimeLine and
    /// rescanLatestTimeLine read the shared archive.
    pub restore_command: bool,
    #[serde(rename = "cluster")]
    pub cluster: ClusterSettings,
    pub workload: WorkloadSettings,
    pub faults: FaultSettings,
    pub rules: Rules,
    pub scheduler: SchedulerSettings,
    pub log: LogSettings,
    pub design: DesignSettings,
    pub failover: FailoverSettings,
    /// The operator's script, in order (`[[operator]]`).
    pub operator: Vec<crate::script::Step>,
}

/// `max_wal_size`, whose base unit is MB.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WalSize(pub Bytes);

impl Serialize for WalSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for WalSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WalSize, D::Error> {
        deserialize_size(d, 1 << 20).map(WalSize)
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            server_version: ServerVersion::V15,
            synchronous_commit: SynchronousCommit::On,
            wal_log_hints: false,
            full_page_writes: true,
            synchronous_standby_names: "*".to_string(),
            synchronous_transfer: SynchronousTransfer::Commit,
            wal_segment_size: Bytes(4 << 10),
            wal_block_size: Bytes(1 << 10),
            shared_buffers: 16,
            max_wal_size: WalSize(Bytes(8 << 10)),
            min_wal_size: WalSize(Bytes(8 << 10)),
            wal_keep_size: WalSize(Bytes(8 << 10)),
            max_slot_wal_keep_size: -1,
            archive_mode: ArchiveMode::Off,
            archive_command: true,
            restore_command: false,
            cluster: ClusterSettings::default(),
            workload: WorkloadSettings::default(),
            faults: FaultSettings::default(),
            rules: Rules::default(),
            scheduler: SchedulerSettings::default(),
            log: LogSettings::default(),
            design: DesignSettings::default(),
            failover: FailoverSettings::default(),
            operator: crate::script::default_story(),
        }
    }
}

/// `archive_mode`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveMode {
    #[default]
    Off,
    /// The archiver runs on a server not in recovery.
    On,
    /// The archiver runs in recovery too (a standby archives the segments
    /// its walreceiver completes).
    Always,
}

pub use crate::script::Failback;

/// `[failover]`: operator actions and how an old primary rejoins.
#[derive(Clone, Default, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverSettings {
    /// Strategy used when the old primary rejoins.
    pub failback: Failback,
    /// `pg_rewind --restore-target-wal`: WAL the target no longer has in
    /// pg_wal is fetched from the archive with its `restore_command`.
    pub restore_target_wal: bool,
}

/// Files whose writes `synchronous_transfer = data_flush` may hold back.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Table and index pages (relation data files).
    Data,
    /// CLOG (`pg_xact`) pages.
    Clog,
    /// `global/pg_control`.
    Control,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Data => "data page",
            FileKind::Clog => "CLOG page",
            FileKind::Control => "pg_control",
        }
    }
}

/// `[design]`: variants of the synchronous_transfer proposal, so designs
/// can be compared side by side.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DesignSettings {
    /// What `data_flush` (and `all`) hold back until the sync standby has
    /// flushed WAL up to the file's LSN. The 2013 patch covered data pages
    /// and CLOG (SLRU) pages.
    pub data_flush_covers: Vec<FileKind>,
}

impl Default for DesignSettings {
    fn default() -> Self {
        DesignSettings { data_flush_covers: vec![FileKind::Data, FileKind::Clog] }
    }
}

impl DesignSettings {
    pub fn covers(&self, kind: FileKind) -> bool {
        self.data_flush_covers.contains(&kind)
    }
}

/// `[cluster]`: the shape of the simulated installation.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Number of standbys streaming from the primary.
    pub standbys: u8,
    /// Pages in the one simulated table (`test`).
    pub rel_pages: u32,
    /// Transaction statuses per CLOG page (32768 in PostgreSQL; small here
    /// so runs use several CLOG pages).
    pub clog_xids_per_page: u32,
    /// Each initial standby streams through a physical replication slot
    /// named after it, created on the primary before its base backup
    /// (`pg_basebackup --create-slot --slot=node2`, `primary_slot_name`).
    pub replication_slots: bool,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings { standbys: 1, rel_pages: 32, clog_xids_per_page: 64, replication_slots: false }
    }
}

/// `[workload]`: the seed experiment's pgbench load.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSettings {
    /// Concurrent client sessions (one backend each).
    pub clients: u8,
    /// Keys are drawn from 1..=key_space (`test.id`, the primary key).
    pub key_space: u32,
    /// Percent of transactions that update one of the client's own rows
    /// instead of inserting a new key.
    pub update_percent: u8,
    /// Percent of transactions that only read one row (`SELECT`): no WAL,
    /// but readers set hint bits.
    pub select_percent: u8,
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        WorkloadSettings { clients: 4, key_space: 2_000, update_percent: 20, select_percent: 10 }
    }
}

/// `[faults]`: per-step probabilities of each fault.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    /// `pg_ctl stop -m immediate` / kill -9: shared memory is lost, the OS
    /// cache survives.
    pub process_crash: f64,
    /// Machine crash: everything not fsynced is lost too.
    pub power_loss: f64,
    /// A replication connection drops (what is in flight is lost).
    pub disconnect: f64,
    /// Two nodes cannot reach each other until the partition heals.
    pub partition: f64,
    /// `archive_command` fails (exit code 1) on the archiver's next
    /// `.ready` file; 0 (the default): archiving always succeeds.
    pub archive_command: f64,
    /// Crash images: 0 (the default) = a power loss loses every write not
    /// fsynced. N > 0 = a power loss picks (by a drawn argument) one of up
    /// to N distinct durable images: any subset of the data and CLOG pages
    /// written since their last fsync reached the disk, and WAL written
    /// but not flushed survives up to any record end (per file, page
    /// granular; fsyncs issued are barriers). Enumerated when there are at
    /// most N, else N of them sampled.
    pub crash_images: u32,
}

impl Default for FaultSettings {
    fn default() -> Self {
        FaultSettings {
            process_crash: 0.002,
            power_loss: 0.001,
            disconnect: 0.002,
            partition: 0.001,
            archive_command: 0.0,
            crash_images: 0,
        }
    }
}

/// `[rules]`: PostgreSQL rules that can be switched off to ask "what breaks
/// if PostgreSQL did not do this?". All on by default.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// FlushBuffer flushes WAL up to the page LSN before writing the page
    /// (bufmgr.c); likewise for CLOG pages and their group LSN (slru.c).
    pub wal_before_data: bool,
    /// A checkpoint fsyncs data files and CLOG before it points pg_control
    /// at its REDO (CreateCheckPoint, CheckPointGuts).
    pub fsync_before_control_update: bool,
    /// A checkpoint waits for transactions that inserted their commit
    /// record but have not yet set it in the CLOG when REDO is taken
    /// (delayChkptFlags / DELAY_CHKPT_START, CreateCheckPoint).
    pub checkpoint_waits_for_commits: bool,
    /// Redo skips a record when the page LSN is already at or past it
    /// (XLogReadBufferForRedo returns BLK_DONE).
    pub redo_skips_newer_pages: bool,
    /// Hint bits for a commit are set only once its commit record is
    /// flushed (SetHintBits, XLogNeedsFlush).
    pub hint_bits_wait_for_commit_flush: bool,
    /// After a crash, startup fsyncs the data directory before recovery
    /// (SyncDataDirectory), so WAL read during recovery is durable.
    pub sync_data_directory_after_crash: bool,
    /// The walsender refuses a start point not in its timeline history, or
    /// ahead of its flush position (walsender.c StartReplication).
    pub walsender_checks_start_point: bool,
    /// A standby does not follow a new timeline that forked before its
    /// replay position, and does not start when its checkpoint lies past
    /// the fork (xlogrecovery.c rescanLatestTimeLine, StartupXLOG).
    pub startup_checks_timeline_fork: bool,
    /// A walsender sends only WAL its server has flushed (walsender.c).
    pub walsender_sends_only_flushed: bool,
    /// A walreceiver reports a flush position only after fsync
    /// (XLogWalRcvFlush, XLogWalRcvSendReply).
    pub walreceiver_reports_after_fsync: bool,
    /// Promotion picks the newest timeline ID known + 1 (findNewestTimeLine).
    pub promotion_picks_newest_timeline: bool,
    /// pg_rewind refuses a target without data checksums or wal_log_hints.
    pub rewind_requires_wal_log_hints: bool,
    /// Fast shutdown waits until connected standbys have received all WAL
    /// (WalSndDone).
    pub shutdown_sends_all_wal: bool,
    /// A crashed primary started with `standby.signal` (no valid
    /// minRecoveryPoint, not shut down cleanly) does crash recovery through
    /// all of its local WAL first and enters archive recovery only at its
    /// end, with minRecoveryPoint there (InitWalRecovery, ReadRecord).
    pub crash_recovery_before_archive_recovery: bool,
    /// The WAL reader validates each record's position, length, resource
    /// manager and prev-link (xlogreader.c), so WAL of another history read
    /// where a node's own WAL ended does not parse.
    pub wal_reader_checks_framing: bool,
    /// Redo checks a checkpoint record's timeline against the replay
    /// timeline, and timeline switches against the recovery target's
    /// history (xlog_redo, checkTimeLineSwitch).
    pub redo_checks_checkpoint_timeline: bool,
    /// A starting walsender takes the lowest free slot of
    /// `WalSndCtl->walsnds` (InitWalSenderSlot), and FIRST breaks priority
    /// ties by slot (standby_priority_comparator); off: connection order.
    pub walsender_takes_lowest_free_slot: bool,
    /// A walsender that has not reported a valid flush position is not a
    /// synchronous candidate (SyncRepGetCandidateStandbys).
    pub sync_candidates_need_flush_position: bool,
    /// The positions up to which sync-rep waiters are released only
    /// advance (`WalSndCtl->lsn[mode]`, SyncRepReleaseWaiters), and a
    /// commit at or below them does not wait (SyncRepWaitForLSN); off: the
    /// release position is recomputed from the standbys' current reports.
    pub sync_released_positions_only_advance: bool,
    /// A checkpoint or restartpoint keeps the segments `wal_keep_size` and
    /// replication slots hold behind its record (KeepLogSeg); off: it
    /// removes every segment before its REDO's.
    pub keep_wal_for_standbys: bool,
    /// A checkpoint removes no segment whose `.ready` file says it is not
    /// archived yet (RemoveOldXlogFiles → XLogArchiveCheckDone); off: it
    /// removes them as if archiving were off.
    pub remove_checks_archive_done: bool,
    /// A restartpoint skipped because no newer checkpoint was replayed
    /// still raises minRecoveryPoint to the replay position
    /// (CreateRestartPoint: UpdateMinRecoveryPoint(InvalidXLogRecPtr,
    /// true)), so a standby stopped fast is consistent at its end of WAL
    /// when it starts again; off: minRecoveryPoint stays where the last
    /// buffer write left it.
    pub skipped_restartpoint_updates_min_recovery_point: bool,
    /// pg_control is fsynced as it is written (update_controlfile's
    /// pg_fsync under UpdateControlFile); off: the write stays in the OS
    /// cache until something else syncs it, so a power loss can lose it.
    pub fsync_control_file: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            wal_before_data: true,
            fsync_before_control_update: true,
            checkpoint_waits_for_commits: true,
            redo_skips_newer_pages: true,
            hint_bits_wait_for_commit_flush: true,
            sync_data_directory_after_crash: true,
            walsender_checks_start_point: true,
            startup_checks_timeline_fork: true,
            walsender_sends_only_flushed: true,
            walreceiver_reports_after_fsync: true,
            promotion_picks_newest_timeline: true,
            rewind_requires_wal_log_hints: true,
            shutdown_sends_all_wal: true,
            crash_recovery_before_archive_recovery: true,
            wal_reader_checks_framing: true,
            redo_checks_checkpoint_timeline: true,
            walsender_takes_lowest_free_slot: true,
            sync_candidates_need_flush_position: true,
            sync_released_positions_only_advance: true,
            keep_wal_for_standbys: true,
            remove_checks_archive_done: true,
            skipped_restartpoint_updates_min_recovery_point: true,
            fsync_control_file: true,
        }
    }
}

/// `[scheduler]`: run length and how often each kind of event is picked.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// Events in the main phase (faults and workload on).
    pub steps: u64,
    /// Upper bound on events in the quiesce phase (no faults, no new
    /// transactions; work in flight finishes, crashed nodes restart).
    pub quiesce_steps: u64,
    /// Relative weights of the event kinds.
    pub weights: Weights,
    /// How the next event is chosen among the enabled ones.
    pub policy: SchedulerPolicy,
    /// PCT's depth d: d − 1 priority change points (`policy = "pct"`).
    pub pct_depth: u32,
    /// PCT: change points are drawn among the first `pct_steps` events.
    pub pct_steps: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            steps: 2_000,
            quiesce_steps: 20_000,
            weights: Weights::default(),
            policy: SchedulerPolicy::default(),
            pct_depth: 3,
            pct_steps: 2_000,
        }
    }
}

/// `scheduler.policy`: the strategy that turns draws into choices.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerPolicy {
    /// A weighted random pick among the enabled events (`[scheduler.weights]`).
    #[default]
    Random,
    /// Probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010):
    /// the enabled process (node × process kind) with the highest priority
    /// runs; priorities and `pct_depth − 1` change points are drawn.
    Pct,
}

impl SchedulerPolicy {
    pub fn name(self) -> &'static str {
        match self {
            SchedulerPolicy::Random => "random",
            SchedulerPolicy::Pct => "pct",
        }
    }
}

/// Relative weights with which the scheduler picks among enabled events of
/// each kind. A kind weighted zero runs only when nothing else can (e.g.
/// `checkpoint_request = 0`: checkpoint_timeout never elapses during a
/// short story).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub backend: u32,
    pub wal_writer: u32,
    pub bgwriter: u32,
    pub checkpointer: u32,
    pub checkpoint_request: u32,
    pub startup: u32,
    /// `pg_ctl start` of a node that is down (after a crash).
    pub start: u32,
    /// A walsender sends WAL.
    pub walsender: u32,
    /// A walreceiver flushes WAL or sends a reply.
    pub walreceiver: u32,
    /// The network delivers the next message of a connection.
    pub network: u32,
    /// A walreceiver (re)connects.
    pub connect: u32,
    /// The operator takes the next step of the script.
    pub operator: u32,
    /// A network partition heals.
    pub heal: u32,
    /// The archiver archives one `.ready` file (only with `archive_mode`).
    pub archiver: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            backend: 20,
            wal_writer: 4,
            bgwriter: 2,
            checkpointer: 6,
            checkpoint_request: 1,
            startup: 20,
            start: 2,
            walsender: 8,
            walreceiver: 8,
            network: 12,
            connect: 2,
            operator: 2,
            heal: 1,
            archiver: 2,
        }
    }
}

/// `[log]`: how the `--log` output looks.
#[derive(Clone, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `"%X/%X"` (PostgreSQL 17 and earlier) or `"%X/%08X"` (newer).
    pub lsn_format: LsnFormat,
}

/// A setting with a value out of range.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvalidSetting {
    /// Dotted key, e.g. `cluster.rel_pages`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid value for {}: {}", self.key, self.message)
    }
}

impl Settings {
    /// Checks every range; the error names the key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        fn bad(key: impl Into<String>, message: impl Into<String>) -> Result<(), InvalidSetting> {
            Err(InvalidSetting { key: key.into(), message: message.into() })
        }
        let blk = self.wal_block_size.0;
        if !blk.is_power_of_two() || !(1 << 10..=8 * XLOG_BLCKSZ).contains(&blk) {
            return bad(
                "wal_block_size",
                format!("{} is not a power of two between 1kB and 64kB", self.wal_block_size),
            );
        }
        let seg = self.wal_segment_size.0;
        if !seg.is_power_of_two() || !(2 * blk..=1 << 30).contains(&seg) {
            return bad(
                "wal_segment_size",
                format!(
                    "{} is not a power of two between two WAL pages (2 × wal_block_size = {}) and 1GB",
                    self.wal_segment_size,
                    Bytes(2 * blk)
                ),
            );
        }
        if self.shared_buffers < 2 || self.shared_buffers > 1 << 16 {
            return bad("shared_buffers", format!("{} is outside 2..65536", self.shared_buffers));
        }
        if self.max_wal_size.0.0 < seg {
            return bad("max_wal_size", "must be at least one WAL segment");
        }
        if let Err(e) = crate::syncrep::StandbyNames::parse(&self.synchronous_standby_names) {
            return bad("synchronous_standby_names", e);
        }
        let c = &self.cluster;
        if c.standbys > 8 {
            return bad("cluster.standbys", format!("{} is outside 0..8", c.standbys));
        }
        if c.rel_pages == 0 || c.rel_pages > 1 << 16 {
            return bad("cluster.rel_pages", format!("{} is outside 1..65536", c.rel_pages));
        }
        if c.clog_xids_per_page < 4 || c.clog_xids_per_page > 32_768 {
            return bad(
                "cluster.clog_xids_per_page",
                format!("{} is outside 4..32768", c.clog_xids_per_page),
            );
        }
        let w = &self.workload;
        if w.clients == 0 || w.clients > 64 {
            return bad("workload.clients", format!("{} is outside 1..64", w.clients));
        }
        if w.key_space == 0 {
            return bad("workload.key_space", "must be at least 1");
        }
        if w.update_percent > 100 {
            return bad("workload.update_percent", format!("{} is above 100", w.update_percent));
        }
        let rw = u16::from(w.update_percent) + u16::from(w.select_percent);
        if rw > 100 {
            return bad(
                "workload.select_percent",
                format!("update_percent + select_percent = {rw} is above 100"),
            );
        }
        for (key, p) in [
            ("faults.process_crash", self.faults.process_crash),
            ("faults.power_loss", self.faults.power_loss),
            ("faults.disconnect", self.faults.disconnect),
            ("faults.partition", self.faults.partition),
            ("faults.archive_command", self.faults.archive_command),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(key, format!("{p} is not a probability in 0..1"));
            }
        }
        let f = &self.faults;
        if f.process_crash + f.power_loss + f.disconnect + f.partition + f.archive_command > 1.0 {
            return bad("faults", "fault probabilities add up to more than 1");
        }
        if self.scheduler.steps == 0 {
            return bad("scheduler.steps", "must be at least 1");
        }
        if !(1..=64).contains(&self.scheduler.pct_depth) {
            return bad("scheduler.pct_depth", "must be between 1 and 64");
        }
        if self.scheduler.pct_steps == 0 {
            return bad("scheduler.pct_steps", "must be at least 1");
        }
        let wt = &self.scheduler.weights;
        for (key, v) in [
            ("scheduler.weights.backend", wt.backend),
            ("scheduler.weights.wal_writer", wt.wal_writer),
            ("scheduler.weights.checkpointer", wt.checkpointer),
            ("scheduler.weights.startup", wt.startup),
            ("scheduler.weights.start", wt.start),
            ("scheduler.weights.walsender", wt.walsender),
            ("scheduler.weights.walreceiver", wt.walreceiver),
            ("scheduler.weights.network", wt.network),
            ("scheduler.weights.connect", wt.connect),
            ("scheduler.weights.operator", wt.operator),
            ("scheduler.weights.heal", wt.heal),
        ] {
            if v == 0 {
                return bad(key, "must be positive: without it the cluster cannot make progress");
            }
        }
        let nodes = 1 + usize::from(self.cluster.standbys);
        for (i, step) in self.operator.iter().enumerate() {
            let names = [
                ("node", Some(step.node.as_str())),
                ("upstream", step.upstream.as_deref().filter(|u| *u != "none")),
                ("from", step.from.as_deref()),
            ];
            for (field, name) in names {
                let Some(name) = name else { continue };
                match crate::script::node_index(name) {
                    Some(n) if n.index() < nodes => {}
                    _ => {
                        return bad(
                            format!("operator[{i}].{field}"),
                            format!(
                                "step {}: no node named \"{name}\" (nodes are node1..node{nodes})",
                                i + 1
                            ),
                        );
                    }
                }
            }
        }
        for (i, step) in self.operator.iter().enumerate() {
            let reload_only = [
                ("synchronous_standby_names", step.synchronous_standby_names.is_some()),
                ("synchronous_commit", step.synchronous_commit.is_some()),
                ("synchronous_transfer", step.synchronous_transfer.is_some()),
            ];
            for (key, set) in reload_only {
                if set && step.action != crate::script::Action::Reload {
                    return bad(
                        format!("operator[{i}].{key}"),
                        format!("step {}: only a reload step sets {key}", i + 1),
                    );
                }
            }
            if let Some(Err(e)) =
                step.synchronous_standby_names.as_deref().map(crate::syncrep::StandbyNames::parse)
            {
                return bad(format!("operator[{i}].synchronous_standby_names"), e);
            }
        }
        if self.operator.len() > 200 {
            return bad("operator", "at most 200 steps");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_integer_size_is_in_the_settings_base_unit() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StrDeserializer, U64Deserializer};
        let int = |n: u64| -> U64Deserializer<Error> { n.into_deserializer() };
        let text = |t: &'static str| -> StrDeserializer<'static, Error> { t.into_deserializer() };
        // wal_segment_size: bytes; max_wal_size and friends: MB, as PostgreSQL reads them.
        assert_eq!(Bytes::deserialize(int(16384)), Ok(Bytes(16384)));
        assert_eq!(WalSize::deserialize(int(64)), Ok(WalSize(Bytes(64 << 20))));
        assert_eq!(WalSize::deserialize(text("32kB")), Ok(WalSize(Bytes(32 << 10))));
        assert_eq!(Bytes::deserialize(text("1GB")), Ok(Bytes(1 << 30)));
        // Too large to count in bytes: refused, not wrapped.
        let err = WalSize::deserialize(int(u64::MAX >> 10)).unwrap_err().to_string();
        assert!(err.contains("is too large"), "{err}");
        assert_eq!(Bytes::deserialize(int(u64::MAX)), Ok(Bytes(u64::MAX)));
        assert!(Bytes::deserialize(text("16 parsecs")).is_err());
    }

    #[test]
    fn sizes_parse_like_postgres() {
        assert_eq!(Bytes::parse("16MB"), Ok(Bytes(16 << 20)));
        assert_eq!(Bytes::parse("64kB"), Ok(Bytes(64 << 10)));
        assert_eq!(Bytes::parse("8192"), Ok(Bytes(8192)));
        assert!(Bytes::parse("16mb").is_err());
        assert!(Bytes::parse("lots").is_err());
        assert_eq!(Bytes(16 << 20).to_string(), "16MB");
        assert_eq!(Bytes(100).to_string(), "100B");
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn validation_names_the_key() {
        let s = Settings { wal_segment_size: Bytes(3000), ..Settings::default() };
        assert_eq!(s.validate().unwrap_err().key, "wal_segment_size");
        // A segment must hold two WAL pages; pages are 1..64 kB powers of two.
        let s = Settings {
            wal_segment_size: Bytes(16 << 10),
            wal_block_size: Bytes(16 << 10),
            ..Settings::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "wal_segment_size");
        for blk in [512, 3 << 10, 128 << 10] {
            let s = Settings { wal_block_size: Bytes(blk), ..Settings::default() };
            assert_eq!(s.validate().unwrap_err().key, "wal_block_size", "{blk}");
        }
        let mut s = Settings {
            wal_segment_size: Bytes(16 << 10),
            wal_block_size: Bytes(8 << 10),
            ..Settings::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "max_wal_size", "8kB is less than one 16kB segment");
        s.max_wal_size = WalSize(Bytes(32 << 10));
        s.validate().unwrap();
        let mut s = Settings::default();
        s.workload.update_percent = 101;
        assert_eq!(s.validate().unwrap_err().key, "workload.update_percent");
        s.workload.update_percent = 95;
        assert_eq!(s.validate().unwrap_err().key, "workload.select_percent");
    }

    #[test]
    fn reload_steps_are_validated() {
        use crate::script::{Action, Step};
        let mut s = Settings::default();
        let mut step = Step::new(Action::Reload, "node1");
        step.synchronous_standby_names = Some("ANY 0 (a)".into());
        s.operator = vec![step.clone()];
        assert_eq!(s.validate().unwrap_err().key, "operator[0].synchronous_standby_names");
        step.synchronous_standby_names = Some("ANY 1 (node2)".into());
        s.operator = vec![step.clone()];
        s.validate().unwrap();
        let mut stop = Step::new(Action::StopFast, "node1");
        stop.synchronous_commit = Some(SynchronousCommit::Local);
        s.operator = vec![stop];
        assert_eq!(s.validate().unwrap_err().key, "operator[0].synchronous_commit");
    }

    /// `cluster.clog_xids_per_page` is accepted from 4 to 32768 (PostgreSQL's
    /// CLOG_XACTS_PER_PAGE) and refused just outside.
    #[test]
    fn clog_xids_per_page_bounds() {
        let with = |n: u32| {
            let mut s = Settings::default();
            s.cluster.clog_xids_per_page = n;
            s.validate().map_err(|e| e.key)
        };
        assert!(with(4).is_ok() && with(32_768).is_ok());
        assert_eq!(with(3).unwrap_err(), "cluster.clog_xids_per_page");
        assert_eq!(with(32_769).unwrap_err(), "cluster.clog_xids_per_page");
    }

    /// Every numeric bound of `validate`, at the limit (accepted) and just
    /// outside (refused, naming the key).
    #[test]
    fn every_bound_is_accepted_at_the_limit_and_refused_just_outside() {
        fn check(set: impl Fn(&mut Settings)) -> Result<(), String> {
            let mut s = crate::testkit::real_geometry();
            set(&mut s);
            s.validate().map_err(|e| e.key)
        }
        let err = |k: &str| Err(k.to_string());
        assert_eq!(check(|s| s.wal_segment_size = Bytes(16 << 10)), Ok(()));
        assert_eq!(check(|s| s.wal_segment_size = Bytes(8 << 10)), err("wal_segment_size"));
        let huge = |s: &mut Settings, seg: u64| {
            s.wal_segment_size = Bytes(seg);
            s.max_wal_size = WalSize(Bytes(4 << 30));
        };
        assert_eq!(check(|s| huge(s, 1 << 30)), Ok(()));
        assert_eq!(check(|s| huge(s, 2 << 30)), err("wal_segment_size"));
        assert_eq!(check(|s| s.shared_buffers = 2), Ok(()));
        assert_eq!(check(|s| s.shared_buffers = 1), err("shared_buffers"));
        assert_eq!(check(|s| s.shared_buffers = 65_536), Ok(()));
        assert_eq!(check(|s| s.shared_buffers = 65_537), err("shared_buffers"));
        assert_eq!(check(|s| s.max_wal_size = WalSize(s.wal_segment_size)), Ok(()));
        assert_eq!(check(|s| s.max_wal_size = WalSize(Bytes(s.wal_segment_size.0 - 1))), err("max_wal_size"));
        assert_eq!(check(|s| s.cluster.standbys = 8), Ok(()));
        assert_eq!(check(|s| s.cluster.standbys = 9), err("cluster.standbys"));
        assert_eq!(check(|s| s.cluster.rel_pages = 1), Ok(()));
        assert_eq!(check(|s| s.cluster.rel_pages = 0), err("cluster.rel_pages"));
        assert_eq!(check(|s| s.cluster.rel_pages = 65_536), Ok(()));
        assert_eq!(check(|s| s.cluster.rel_pages = 65_537), err("cluster.rel_pages"));
        assert_eq!(check(|s| s.workload.clients = 1), Ok(()));
        assert_eq!(check(|s| s.workload.clients = 0), err("workload.clients"));
        assert_eq!(check(|s| s.workload.clients = 64), Ok(()));
        assert_eq!(check(|s| s.workload.clients = 65), err("workload.clients"));
        assert_eq!(check(|s| s.workload.key_space = 1), Ok(()));
        assert_eq!(check(|s| s.workload.key_space = 0), err("workload.key_space"));
        let mix = |s: &mut Settings, u: u8, r: u8| {
            s.workload.update_percent = u;
            s.workload.select_percent = r;
        };
        assert_eq!(check(|s| mix(s, 100, 0)), Ok(()));
        assert_eq!(check(|s| mix(s, 40, 60)), Ok(()));
        assert_eq!(check(|s| mix(s, 41, 60)), err("workload.select_percent"));
        let no_faults = |s: &mut Settings| {
            let f = &mut s.faults;
            (f.process_crash, f.power_loss, f.disconnect, f.partition, f.archive_command) =
                (0.0, 0.0, 0.0, 0.0, 0.0);
        };
        assert_eq!(check(|s| (no_faults(s), s.faults.partition = 1.0).1), Ok(()));
        assert_eq!(check(|s| (no_faults(s), s.faults.partition = 1.01).1), err("faults.partition"));
        assert_eq!(check(|s| (no_faults(s), s.faults.power_loss = -0.01).1), err("faults.power_loss"));
        assert_eq!(check(|s| (no_faults(s), s.faults.disconnect = 0.5, s.faults.partition = 0.5).2), Ok(()));
        assert_eq!(
            check(|s| (no_faults(s), s.faults.disconnect = 0.5, s.faults.partition = 0.6).2),
            err("faults")
        );
        assert_eq!(check(|s| s.scheduler.steps = 1), Ok(()));
        assert_eq!(check(|s| s.scheduler.steps = 0), err("scheduler.steps"));
        assert_eq!(check(|s| s.scheduler.pct_depth = 1), Ok(()));
        assert_eq!(check(|s| s.scheduler.pct_depth = 0), err("scheduler.pct_depth"));
        assert_eq!(check(|s| s.scheduler.pct_depth = 64), Ok(()));
        assert_eq!(check(|s| s.scheduler.pct_depth = 65), err("scheduler.pct_depth"));
        assert_eq!(check(|s| s.scheduler.pct_steps = 1), Ok(()));
        assert_eq!(check(|s| s.scheduler.pct_steps = 0), err("scheduler.pct_steps"));
        assert_eq!(check(|s| s.scheduler.weights.heal = 0), err("scheduler.weights.heal"));
        assert_eq!(check(|s| s.scheduler.weights.backend = 0), err("scheduler.weights.backend"));
        let steps = |n: usize| vec![crate::script::Step::new(crate::script::Action::Checkpoint, "node1"); n];
        assert_eq!(check(|s| s.operator = steps(200)), Ok(()));
        assert_eq!(check(|s| s.operator = steps(201)), err("operator"));
        let mut up = crate::script::Step::new(crate::script::Action::Checkpoint, "node2");
        assert_eq!(check(|s| s.operator = vec![up.clone()]), Ok(()));
        up.node = "node3".into();
        assert_eq!(check(|s| s.operator = vec![up.clone()]), err("operator[0].node"));
        up.node = "node1".into();
        up.upstream = Some("none".into());
        assert_eq!(check(|s| s.operator = vec![up.clone()]), Ok(()));
        up.upstream = Some("node3".into());
        assert_eq!(check(|s| s.operator = vec![up.clone()]), err("operator[0].upstream"));
    }

    /// The names settings print under (trace files, `config` output).
    #[test]
    fn policy_and_transfer_names() {
        assert_eq!((SchedulerPolicy::Random.name(), SchedulerPolicy::Pct.name()), ("random", "pct"));
        let t = [SynchronousTransfer::Commit, SynchronousTransfer::DataFlush, SynchronousTransfer::All];
        assert_eq!(t.map(|t| t.name()), ["commit", "data_flush", "all"]);
    }

    /// The values as `postgresql.conf` spells them (guc_tables.c's
    /// synchronous_commit options), and the version names trace files use.
    #[test]
    fn setting_values_print_as_postgresql_spells_them() {
        use SynchronousCommit as C;
        let c = [C::Off, C::Local, C::RemoteWrite, C::On, C::RemoteApply];
        assert_eq!(c.map(|c| c.name()), ["off", "local", "remote_write", "on", "remote_apply"]);
        assert_eq!((ServerVersion::V15.name(), ServerVersion::V94Devel.name()), ("15", "9.4devel"));
        let k = [FileKind::Data, FileKind::Clog, FileKind::Control];
        assert_eq!(k.map(|k| k.name()), ["data page", "CLOG page", "pg_control"]);
    }

    /// `synchronous_transfer`: `commit` holds back commits only,
    /// `data_flush` file writes only, `all` both; the 2013 patch's
    /// `data_flush` covered data and CLOG pages, not pg_control.
    #[test]
    fn synchronous_transfer_covers_commits_or_files() {
        use SynchronousTransfer as T;
        let t = [T::Commit, T::DataFlush, T::All];
        assert_eq!(
            t.map(|t| (t.covers_commit(), t.covers_data())),
            [(true, false), (false, true), (true, true)]
        );
        let d = DesignSettings::default();
        assert!(d.covers(FileKind::Data) && d.covers(FileKind::Clog) && !d.covers(FileKind::Control));
        let only_control = DesignSettings { data_flush_covers: vec![FileKind::Control] };
        assert!(only_control.covers(FileKind::Control) && !only_control.covers(FileKind::Data));
    }

    /// A size prints in the largest unit that divides it, zero in bytes.
    #[test]
    fn sizes_print_in_the_largest_whole_unit() {
        let shown = |n: u64| Bytes(n).to_string();
        assert_eq!(shown(0), "0B");
        assert_eq!(shown(1 << 30), "1GB");
        assert_eq!(shown(3 << 30), "3GB");
        assert_eq!(shown((1 << 30) + (1 << 20)), "1025MB");
        assert_eq!(shown(64 << 10), "64kB");
        assert_eq!(shown((1 << 20) + (1 << 10)), "1025kB");
        assert_eq!(shown(1536), "1536B");
        assert_eq!(Bytes::parse("2GB"), Ok(Bytes(2 << 30)));
        assert_eq!(Bytes::parse("3kB"), Ok(Bytes(3 << 10)));
    }

    /// An invalid setting prints its key and why.
    #[test]
    fn an_invalid_setting_prints_its_key_and_message() {
        let s = Settings { shared_buffers: 1, ..Settings::default() };
        let e = s.validate().unwrap_err();
        assert_eq!(e.to_string(), "invalid value for shared_buffers: 1 is outside 2..65536");
    }

    /// The fault probabilities are summed over every kind: any two that
    /// add up to more than 1 are refused together.
    #[test]
    fn every_fault_probability_counts_in_the_sum() {
        let with = |pairs: &[(usize, f64)]| {
            let mut s = Settings::default();
            let f = &mut s.faults;
            (f.process_crash, f.power_loss, f.disconnect, f.partition, f.archive_command) =
                (0.0, 0.0, 0.0, 0.0, 0.0);
            for &(i, p) in pairs {
                *[
                    &mut f.process_crash,
                    &mut f.power_loss,
                    &mut f.disconnect,
                    &mut f.partition,
                    &mut f.archive_command,
                ][i] = p;
            }
            s.validate().map_err(|e| e.key)
        };
        for a in 0..5 {
            for b in 0..5 {
                if a == b {
                    continue;
                }
                assert_eq!(with(&[(a, 0.6), (b, 0.5)]), Err("faults".to_string()), "kinds {a} and {b}");
                assert_eq!(with(&[(a, 0.5), (b, 0.5)]), Ok(()), "kinds {a} and {b}");
            }
        }
    }

    /// Sizes are written back as PostgreSQL writes them: a string with the
    /// largest whole unit (so a written settings file reads back the same).
    #[test]
    fn sizes_serialize_as_strings_with_a_unit() {
        assert_eq!(toml::Value::try_from(Bytes(16 << 20)), Ok(toml::Value::from("16MB")));
        assert_eq!(toml::Value::try_from(WalSize(Bytes(64 << 20))), Ok(toml::Value::from("64MB")));
        assert_eq!(toml::Value::try_from(WalSize(Bytes(1536))), Ok(toml::Value::from("1536B")));
    }
}
