//! Events (what the scheduler chooses among) and effects (what applying one
//! reports beyond its node).

use crate::heap::Xid;
use crate::invariants::Violation;
use crate::lsn::Lsn;
use crate::node::NodeId;
use crate::settings::FileKind;
use crate::syncrep::WaitMode;
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
    /// `pg_ctl start` of a node that is down.
    Start { node: NodeId },
    /// A fault.
    Crash { node: NodeId, kind: CrashKind },
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
    Fault,
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
            Event::Crash { .. } => EventKind::Fault,
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
            | Event::Crash { node, .. } => node,
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
        };
        (tag << 56) | (u64::from(node) << 48) | detail
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Backend { node, backend } => write!(f, "node{} backend {}", node + 1, backend),
            Event::WalWriter { node } => write!(f, "node{} walwriter", node + 1),
            Event::BgWriter { node } => write!(f, "node{} bgwriter", node + 1),
            Event::Checkpointer { node } => write!(f, "node{} checkpointer", node + 1),
            Event::RequestCheckpoint { node } => write!(f, "node{} checkpoint request", node + 1),
            Event::Startup { node } => write!(f, "node{} startup", node + 1),
            Event::Start { node } => write!(f, "node{} pg_ctl start", node + 1),
            Event::Crash { node, kind: CrashKind::Immediate } => {
                write!(f, "node{} pg_ctl stop -m immediate", node + 1)
            }
            Event::Crash { node, kind: CrashKind::PowerLoss } => write!(f, "node{} power loss", node + 1),
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
    pub node: NodeId,
    pub commit_end: Lsn,
    /// Nodes that had the commit record flushed when it was acknowledged
    /// (bit = node id): the primary itself, and standbys that reported it.
    pub durable_on: u16,
    /// Nodes that had it at least written (not yet flushed).
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
}

/// Effects of one step beyond the node it happened on.
#[derive(Clone, Default, Debug)]
pub struct Effects {
    pub acks: Vec<Ack>,
    pub failed: Vec<(u8, Op, Failure)>,
    /// Sessions lost during a commit: the client does not know the result.
    pub in_doubt: Vec<(u8, Op)>,
    pub checks: Vec<Check>,
    pub violations: Vec<Violation>,
    pub power_loss: Vec<NodeId>,
    /// Servers that could not start, and why.
    pub startup_failures: Vec<(NodeId, String)>,
}

impl Effects {
    pub fn clear(&mut self) {
        self.acks.clear();
        self.failed.clear();
        self.in_doubt.clear();
        self.checks.clear();
        self.violations.clear();
        self.power_loss.clear();
        self.startup_failures.clear();
    }
}
