//! Events (what the scheduler chooses among) and effects (what applying one
//! reports beyond its node).

use crate::ids::NodeId;
use crate::ids::Xid;
use crate::lsn::Lsn;
use crate::marks::Marks;
use crate::settings::FileKind;
use crate::syncrep::WaitMode;
use crate::violation::Violation;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a node goes down abruptly.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashKind {
    /// `pg_ctl stop -m immediate`, kill -9, a backend crash: shared memory
    /// is lost, the OS cache survives.
    Immediate,
    /// The machine loses power: also everything not fsynced is lost.
    PowerLoss,
}

/// One atomic step of one process (or of the operator, or a fault).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A client backend takes its next step (begin + DML, commit, flush,
    /// or finish a wait). Starting a transaction consumes a drawn argument.
    Backend { node: NodeId, backend: u8 },
    /// The WAL writer writes or flushes WAL.
    WalWriter { node: NodeId },
    /// The background writer writes one dirty buffer.
    BgWriter { node: NodeId },
    /// The checkpointer takes its next checkpoint step.
    Checkpointer { node: NodeId },
    /// A checkpoint is requested (checkpoint_timeout elapsed, or CHECKPOINT).
    RequestCheckpoint { node: NodeId },
    /// The startup process replays the next record or finishes recovery.
    Startup { node: NodeId },
    /// `pg_ctl start` of a node that is down (after a crash).
    Start { node: NodeId },
    /// The walsender on `node` sends WAL to `standby`.
    WalSender { node: NodeId, standby: NodeId },
    /// The network delivers the next message from `from` to `node`.
    Deliver { node: NodeId, from: NodeId },
    /// The walreceiver flushes received WAL or reports its positions.
    WalReceiver { node: NodeId },
    /// The walreceiver connects to its upstream (START_REPLICATION).
    Connect { node: NodeId },
    /// The operator takes step `step` of the script.
    Operator { node: NodeId, step: u8 },
    /// A network partition between `node` and `peer` heals.
    Heal { node: NodeId, peer: NodeId },
    /// Fault: the node crashes.
    Crash { node: NodeId, kind: CrashKind },
    /// Fault: the standby's replication connection drops.
    Disconnect { node: NodeId },
    /// Fault: `node` and `peer` cannot reach each other.
    Partition { node: NodeId, peer: NodeId },
    /// The archiver runs `archive_command` on its next `.ready` file
    /// (pgarch_ArchiverCopyLoop, one file).
    Archiver { node: NodeId },
    /// The startup process restores the next WAL segment it needs from the
    /// archive with `restore_command` (RestoreArchivedFile).
    RestoreWal { node: NodeId },
    /// Fault: `archive_command` fails on the archiver's next `.ready` file.
    ArchiveFailure { node: NodeId },
}

/// Kinds of fault the scheduler may inject.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FaultKind {
    ProcessCrash,
    PowerLoss,
    Disconnect,
    Partition,
    ArchiveCommand,
}

impl FaultKind {
    /// Every fault kind, in declaration order.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::ProcessCrash,
        FaultKind::PowerLoss,
        FaultKind::Disconnect,
        FaultKind::Partition,
        FaultKind::ArchiveCommand,
    ];
}

/// Event kinds, for weights and statistics.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum EventKind {
    Backend,
    WalWriter,
    BgWriter,
    Checkpointer,
    CheckpointRequest,
    Startup,
    Start,
    WalSender,
    Network,
    WalReceiver,
    Connect,
    Operator,
    Heal,
    Fault,
    Archiver,
}

// A kind added to `EventKind` (at its end) must be added to `EventKind::ALL` too (the
// scheduler's weight table is indexed by `kind as usize`): this fails to
// compile until `COUNT` and `ALL` follow.
const _: () = {
    assert!(EventKind::Archiver as usize + 1 == EventKind::COUNT);
    let mut i = 0;
    while i < EventKind::COUNT {
        assert!(EventKind::ALL[i] as usize == i);
        i += 1;
    }
};

impl EventKind {
    /// Number of kinds (`kind as usize` is below it).
    pub const COUNT: usize = 15;
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; EventKind::COUNT] = [
        EventKind::Backend,
        EventKind::WalWriter,
        EventKind::BgWriter,
        EventKind::Checkpointer,
        EventKind::CheckpointRequest,
        EventKind::Startup,
        EventKind::Start,
        EventKind::WalSender,
        EventKind::Network,
        EventKind::WalReceiver,
        EventKind::Connect,
        EventKind::Operator,
        EventKind::Heal,
        EventKind::Fault,
        EventKind::Archiver,
    ];
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Backend { .. } => EventKind::Backend,
            Event::WalWriter { .. } => EventKind::WalWriter,
            Event::BgWriter { .. } => EventKind::BgWriter,
            Event::Checkpointer { .. } => EventKind::Checkpointer,
            Event::RequestCheckpoint { .. } => EventKind::CheckpointRequest,
            Event::Startup { .. } => EventKind::Startup,
            Event::Start { .. } => EventKind::Start,
            Event::WalSender { .. } => EventKind::WalSender,
            Event::Deliver { .. } => EventKind::Network,
            Event::WalReceiver { .. } => EventKind::WalReceiver,
            Event::Connect { .. } => EventKind::Connect,
            Event::Operator { .. } => EventKind::Operator,
            Event::Heal { .. } => EventKind::Heal,
            Event::Crash { .. }
            | Event::Disconnect { .. }
            | Event::Partition { .. }
            | Event::ArchiveFailure { .. } => EventKind::Fault,
            Event::Archiver { .. } => EventKind::Archiver,
            Event::RestoreWal { .. } => EventKind::Startup,
        }
    }

    /// The node the event happens on.
    pub fn node(&self) -> NodeId {
        match *self {
            Event::Backend { node, .. }
            | Event::WalWriter { node }
            | Event::BgWriter { node }
            | Event::Checkpointer { node }
            | Event::RequestCheckpoint { node }
            | Event::Startup { node }
            | Event::Start { node }
            | Event::WalSender { node, .. }
            | Event::Deliver { node, .. }
            | Event::WalReceiver { node }
            | Event::Connect { node }
            | Event::Operator { node, .. }
            | Event::Heal { node, .. }
            | Event::Crash { node, .. }
            | Event::Disconnect { node }
            | Event::Partition { node, .. }
            | Event::Archiver { node }
            | Event::RestoreWal { node }
            | Event::ArchiveFailure { node } => node,
        }
    }

    /// A compact, stable encoding (kind tag, node, detail) for trace hashes.
    pub fn code(&self) -> u64 {
        let (tag, node, detail): (u64, NodeId, u64) = match *self {
            Event::Backend { node, backend } => (1, node, u64::from(backend)),
            Event::WalWriter { node } => (2, node, 0),
            Event::BgWriter { node } => (3, node, 0),
            Event::Checkpointer { node } => (4, node, 0),
            Event::RequestCheckpoint { node } => (5, node, 0),
            Event::Startup { node } => (6, node, 0),
            Event::Start { node } => (7, node, 0),
            Event::Crash { node, kind } => (8, node, kind as u64),
            Event::WalSender { node, standby } => (9, node, u64::from(standby.0)),
            Event::Deliver { node, from } => (10, node, u64::from(from.0)),
            Event::WalReceiver { node } => (11, node, 0),
            Event::Connect { node } => (12, node, 0),
            Event::Operator { node, step } => (13, node, u64::from(step)),
            Event::Heal { node, peer } => (14, node, u64::from(peer.0)),
            Event::Disconnect { node } => (15, node, 0),
            Event::Partition { node, peer } => (16, node, u64::from(peer.0)),
            Event::Archiver { node } => (17, node, 0),
            Event::RestoreWal { node } => (18, node, 0),
            Event::ArchiveFailure { node } => (19, node, 0),
        };
        (tag << 56) | (u64::from(node.0) << 48) | detail
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Backend { node, backend } => write!(f, "{} backend {}", node, backend),
            Event::WalWriter { node } => write!(f, "{} walwriter", node),
            Event::BgWriter { node } => write!(f, "{} bgwriter", node),
            Event::Checkpointer { node } => write!(f, "{} checkpointer", node),
            Event::RequestCheckpoint { node } => write!(f, "{} checkpoint request", node),
            Event::Startup { node } => write!(f, "{} startup", node),
            Event::Start { node } => write!(f, "{} pg_ctl start", node),
            Event::Crash { node, kind: CrashKind::Immediate } => {
                write!(f, "{} pg_ctl stop -m immediate", node)
            }
            Event::Crash { node, kind: CrashKind::PowerLoss } => write!(f, "{} power loss", node),
            Event::WalSender { node, standby } => {
                write!(f, "{} walsender to {}", node, standby)
            }
            Event::Deliver { node, from } => {
                write!(f, "network delivers {} -> {}", from, node)
            }
            Event::WalReceiver { node } => write!(f, "{} walreceiver", node),
            Event::Connect { node } => write!(f, "{} walreceiver connects", node),
            Event::Operator { node, step } => write!(f, "{} operator step {}", node, step + 1),
            Event::Heal { node, peer } => write!(f, "partition {} | {} heals", node, peer),
            Event::Disconnect { node } => write!(f, "{} replication connection drops", node),
            Event::Partition { node, peer } => write!(f, "partition {} | {}", node, peer),
            Event::Archiver { node } => write!(f, "{} archiver", node),
            Event::RestoreWal { node } => write!(f, "{} startup restore_command", node),
            Event::ArchiveFailure { node } => write!(f, "{} archive_command fails", node),
        }
    }
}

/// What a process is blocked on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Wait {
    /// `synchronous_transfer`: a file write waits for the sync standby to
    /// flush WAL up to `lsn`.
    Standby { lsn: Lsn, what: FileKind },
    /// A commit waits in SyncRepWaitForLSN.
    SyncRep { lsn: Lsn, mode: WaitMode },
    /// XactLockTableWait: another transaction touching the same key.
    Xact { xid: Xid },
}

impl fmt::Display for Wait {
    /// As the process title shows it (`waiting for 0/2D0C99D8`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Standby { lsn, what } => {
                write!(f, "waiting for {lsn} (synchronous_transfer, {})", what.name())
            }
            Wait::SyncRep { lsn, .. } => write!(f, "waiting for {lsn}"),
            Wait::Xact { xid } => write!(f, "waiting for transaction {xid}"),
        }
    }
}

/// What a client asked for in one transaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Op {
    pub client: u8,
    pub kind: OpKind,
    pub key: u32,
    pub payload: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OpKind {
    Insert,
    Update,
    /// A read-only `SELECT ... WHERE id = k`: no WAL, but it sets hint bits.
    Select,
}

/// A commit the client saw succeed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ack {
    pub op: Op,
    pub record: CommitRecord,
}

/// Where an acknowledged commit's record was when the client heard back:
/// what the ledger (client.rs) keeps of each acknowledged write.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CommitRecord {
    /// The server that acknowledged it.
    pub node: NodeId,
    pub commit_end: Lsn,
    /// Nodes that had the commit record flushed when it was acknowledged
    /// (bit = node id): the primary itself, and standbys that reported it.
    pub durable_on: u16,
    /// Nodes that had it at least written (not yet flushed); cleared for a
    /// node that loses power.
    pub written_on: u16,
}

/// Why a transaction failed (the client knows it did not commit).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Failure {
    /// `duplicate key value violates unique constraint "test_pkey"`.
    DuplicateKey,
    /// UPDATE found no row (the client's row was lost earlier).
    NoRow,
    /// The session was terminated before COMMIT.
    Terminated,
}

/// A check to run now that something finished.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Check {
    /// Crash recovery of the node finished.
    AfterCrashRecovery(NodeId),
    /// The node finished promotion.
    AfterPromotion(NodeId),
    /// A history file was written or copied on the node.
    Timelines(NodeId),
}

/// Which PostgreSQL check refused a rejoin (the message kinds the
/// conformance suite compares).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// "requested timeline N is not a child of this server's history"
    NotAChild,
    /// "requested timeline N does not contain minimum recovery point X on
    /// timeline T"
    MinRecoveryPointNotOnTimeline,
    /// "requested starting point X on timeline T is not in this server's history"
    NotInHistory,
    /// "new timeline N forked off current database system timeline T before
    /// current recovery point X"
    ForkedBeforeRecoveryPoint,
    /// "requested starting point X is ahead of the WAL flush position of
    /// this server Y"
    AheadOfFlush,
    /// pg_rewind: target server needs data checksums or wal_log_hints
    RewindNeedsHints,
    /// The server could not start (e.g. no valid checkpoint record).
    StartupFailed,
    /// "requested WAL segment %s has already been removed" (walsender.c
    /// WalSndSegmentOpen, xlog.c CheckXLogRemoved)
    SegmentRemoved,
    /// "replication slot \"%s\" does not exist" (START_REPLICATION SLOT)
    SlotDoesNotExist,
    /// pg_rewind: "could not find previous WAL record at %X/%X" (parsexlog.c
    /// findLastCheckpoint: the target's WAL back to the last common
    /// checkpoint was removed)
    RewindWalMissing,
}

/// Effects of one step beyond the node it happened on.
#[derive(Clone, Default, Debug)]
pub struct Effects {
    /// Commit records inserted whose clients have not heard back yet.
    pub commits_started: Vec<Op>,
    pub acks: Vec<Ack>,
    pub failed: Vec<(u8, Op, Failure)>,
    /// Sessions lost during a commit: the client does not know the result.
    pub in_doubt: Vec<(u8, Op)>,
    pub checks: Vec<Check>,
    pub violations: Vec<Violation>,
    pub power_loss: Vec<NodeId>,
    /// Servers that could not start, and why.
    pub startup_failures: Vec<(NodeId, String)>,
    /// Rejoins refused by PostgreSQL's checks: node, check, message.
    pub refusals: Vec<(NodeId, RefusalKind, String)>,
    /// Coverage marks hit so far: run-long, not cleared by [`Effects::clear`]
    /// (an observation; nothing in the model reads it).
    pub marks: Marks,
}

impl Effects {
    pub fn clear(&mut self) {
        self.commits_started.clear();
        self.acks.clear();
        self.failed.clear();
        self.in_doubt.clear();
        self.checks.clear();
        self.violations.clear();
        self.power_loss.clear();
        self.startup_failures.clear();
        self.refusals.clear();
    }
}

impl EventKind {
    /// How often the weighted-random scheduler picks an event of this kind
    /// (`[scheduler.weights]`; a fault is drawn by its own dice, weight 1
    /// when it is among the enabled events).
    pub fn weight(self, w: &crate::settings::Weights) -> u32 {
        match self {
            EventKind::Backend => w.backend,
            EventKind::WalWriter => w.wal_writer,
            EventKind::BgWriter => w.bgwriter,
            EventKind::Checkpointer => w.checkpointer,
            EventKind::CheckpointRequest => w.checkpoint_request,
            EventKind::Startup => w.startup,
            EventKind::Start => w.start,
            EventKind::WalSender => w.walsender,
            EventKind::Network => w.network,
            EventKind::WalReceiver => w.walreceiver,
            EventKind::Connect => w.connect,
            EventKind::Operator => w.operator,
            EventKind::Heal => w.heal,
            EventKind::Fault => 1,
            EventKind::Archiver => w.archiver,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trace hash is only as good as the encoding: distinct events
    /// (kind, node, detail) must have distinct codes.
    #[test]
    fn event_codes_are_distinct() {
        let mut events = Vec::new();
        for node in 0..3 {
            for other in 0..3 {
                events.extend([
                    Event::Backend { node: NodeId(node), backend: other },
                    Event::WalSender { node: NodeId(node), standby: NodeId(other) },
                    Event::Deliver { node: NodeId(node), from: NodeId(other) },
                    Event::Operator { node: NodeId(node), step: other },
                    Event::Heal { node: NodeId(node), peer: NodeId(other) },
                    Event::Partition { node: NodeId(node), peer: NodeId(other) },
                ]);
            }
            events.extend([
                Event::WalWriter { node: NodeId(node) },
                Event::BgWriter { node: NodeId(node) },
                Event::Checkpointer { node: NodeId(node) },
                Event::RequestCheckpoint { node: NodeId(node) },
                Event::Startup { node: NodeId(node) },
                Event::Start { node: NodeId(node) },
                Event::WalReceiver { node: NodeId(node) },
                Event::Connect { node: NodeId(node) },
                Event::Disconnect { node: NodeId(node) },
                Event::Crash { node: NodeId(node), kind: CrashKind::Immediate },
                Event::Crash { node: NodeId(node), kind: CrashKind::PowerLoss },
            ]);
        }
        let codes: std::collections::BTreeSet<u64> = events.iter().map(Event::code).collect();
        assert_eq!(codes.len(), events.len());
    }

    /// Every event names its node, its kind (the scheduler's weight
    /// class: faults together, restoring from the archive as the startup
    /// process) and prints as the trace shows it; codes carry the node.
    #[test]
    fn events_know_their_node_kind_and_text() {
        let (n, p) = (NodeId(2), NodeId(1));
        let table: [(Event, EventKind, &str); 20] = [
            (Event::Backend { node: n, backend: 4 }, EventKind::Backend, "node3 backend 4"),
            (Event::WalWriter { node: n }, EventKind::WalWriter, "node3 walwriter"),
            (Event::BgWriter { node: n }, EventKind::BgWriter, "node3 bgwriter"),
            (Event::Checkpointer { node: n }, EventKind::Checkpointer, "node3 checkpointer"),
            (Event::RequestCheckpoint { node: n }, EventKind::CheckpointRequest, "node3 checkpoint request"),
            (Event::Startup { node: n }, EventKind::Startup, "node3 startup"),
            (Event::Start { node: n }, EventKind::Start, "node3 pg_ctl start"),
            (
                Event::Crash { node: n, kind: CrashKind::Immediate },
                EventKind::Fault,
                "node3 pg_ctl stop -m immediate",
            ),
            (Event::Crash { node: n, kind: CrashKind::PowerLoss }, EventKind::Fault, "node3 power loss"),
            (Event::WalSender { node: n, standby: p }, EventKind::WalSender, "node3 walsender to node2"),
            (Event::Deliver { node: n, from: p }, EventKind::Network, "network delivers node2 -> node3"),
            (Event::WalReceiver { node: n }, EventKind::WalReceiver, "node3 walreceiver"),
            (Event::Connect { node: n }, EventKind::Connect, "node3 walreceiver connects"),
            (Event::Operator { node: n, step: 0 }, EventKind::Operator, "node3 operator step 1"),
            (Event::Heal { node: n, peer: p }, EventKind::Heal, "partition node3 | node2 heals"),
            (Event::Disconnect { node: n }, EventKind::Fault, "node3 replication connection drops"),
            (Event::Partition { node: n, peer: p }, EventKind::Fault, "partition node3 | node2"),
            (Event::Archiver { node: n }, EventKind::Archiver, "node3 archiver"),
            (Event::RestoreWal { node: n }, EventKind::Startup, "node3 startup restore_command"),
            (Event::ArchiveFailure { node: n }, EventKind::Fault, "node3 archive_command fails"),
        ];
        for (ev, kind, text) in table {
            assert_eq!(ev.node(), n, "{ev:?}");
            assert_eq!(ev.kind(), kind, "{ev:?}");
            assert_eq!(ev.to_string(), text);
            assert_eq!((ev.code() >> 48) & 0xFF, 2, "{ev:?}");
        }
        assert_eq!(Event::Backend { node: n, backend: 4 }.code(), (1 << 56) | (2 << 48) | 4);
    }

    /// What `ps` shows for each wait.
    #[test]
    fn waits_print_as_the_process_title() {
        use crate::settings::FileKind;
        use crate::syncrep::WaitMode;
        assert_eq!(
            Wait::SyncRep { lsn: Lsn(0x2D0C_99D8), mode: WaitMode::Flush }.to_string(),
            "waiting for 0/2D0C99D8"
        );
        assert_eq!(Wait::Xact { xid: crate::ids::Xid(42) }.to_string(), "waiting for transaction 42");
        assert_eq!(
            Wait::Standby { lsn: Lsn(0x100), what: FileKind::Clog }.to_string(),
            "waiting for 0/100 (synchronous_transfer, CLOG page)"
        );
    }

    /// A step's effects are cleared before the next one, but the marks
    /// reached stay for the whole run.
    #[test]
    fn clearing_effects_keeps_the_marks() {
        let op = Op { client: 0, kind: OpKind::Insert, key: 1, payload: 2 };
        let mut fx = Effects::default();
        fx.commits_started.push(op);
        fx.failed.push((0, op, Failure::Terminated));
        fx.in_doubt.push((0, op));
        fx.power_loss.push(NodeId(1));
        fx.startup_failures.push((NodeId(1), "x".into()));
        fx.marks.hit(crate::marks::Mark::Restartpoint);
        fx.clear();
        assert!(fx.commits_started.is_empty() && fx.failed.is_empty() && fx.in_doubt.is_empty());
        assert!(fx.power_loss.is_empty() && fx.startup_failures.is_empty());
        assert!(
            fx.acks.is_empty() && fx.checks.is_empty() && fx.violations.is_empty() && fx.refusals.is_empty()
        );
        assert!(fx.marks.contains(crate::marks::Mark::Restartpoint));
    }
}
