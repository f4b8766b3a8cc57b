//! Operator scripts: the ordered steps an operator (or an HA tool) takes
//! during a run — stop, start, promote, fail back — each with the
//! condition that must hold before it may happen. The scheduler still
//! decides *when* an enabled step happens, and everything around it.

use crate::ids::{NodeId, Tli};
use crate::lsn::Lsn;
use crate::settings::{SynchronousCommit, SynchronousTransfer};
use serde::{Deserialize, Serialize};

/// How an old primary rejoins after a failover.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failback {
    /// Restart it as a standby of the new primary and let PostgreSQL's
    /// checks decide.
    #[default]
    Naive,
    /// pg_rewind, then restart as a standby.
    Rewind,
    /// A fresh base backup of the new primary.
    Basebackup,
    /// The proposal's missing step: drop WAL after the fork point, then
    /// restart as a standby.
    Truncate,
}

impl Failback {
    pub fn name(self) -> &'static str {
        match self {
            Failback::Naive => "naive",
            Failback::Rewind => "rewind",
            Failback::Basebackup => "basebackup",
            Failback::Truncate => "truncate",
        }
    }
}

/// One failback attempt and what became of it.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct FailbackAttempt {
    pub node: String,
    pub strategy: Failback,
    /// Event index at which it started.
    pub at: u64,
    pub upstream: String,
    pub result: AttemptResult,
    /// What PostgreSQL said (refusals, pg_rewind's decisions).
    pub messages: Vec<String>,
    /// Where the node's WAL ended when the attempt started (where its next
    /// record would begin).
    pub end_of_wal: Lsn,
    /// Where the node's timeline ends in its new upstream's history (the
    /// fork point), if it is an ancestor there.
    pub fork_point: Option<Lsn>,
    /// How far the new upstream had replayed (a standby) or flushed (a
    /// primary) when the attempt started.
    pub upstream_position: Lsn,
}

/// The result of a failback attempt.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// Started; not yet streaming.
    Pending,
    /// Streaming from its new upstream on the new timeline.
    Streaming,
    /// Streaming, caught up, and its rows equal its upstream's.
    Converged,
    /// Streaming, but the startup process cannot read what it receives
    /// (WAL of another history where its own ended): it loops forever.
    Stuck,
    /// A PostgreSQL check refused it.
    Refused,
    /// The server could not start.
    Failed,
}

/// What the operator does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `pg_ctl stop -m fast`: shutdown checkpoint; walsenders first send all
    /// remaining WAL to connected standbys.
    StopFast,
    /// `pg_ctl stop -m immediate`.
    StopImmediate,
    /// The machine loses power.
    PowerLoss,
    /// `pg_ctl start` (as a standby if `standby.signal` is present, or if
    /// the step sets `standby = true`).
    Start,
    /// `pg_ctl promote` of a standby.
    Promote,
    /// Rejoin a stopped node as a standby by the failback strategy.
    Failback,
    /// `CHECKPOINT`.
    Checkpoint,
    /// `SELECT pg_switch_wal()`.
    SwitchWal,
    /// Copy a timeline history file (`%08X.history`) from the node `from`
    /// names into this node's `pg_wal` — by hand, or as a `restore_command`
    /// reading an archive that holds it would.
    CopyHistoryFile,
    /// The load generator (pgbench) finishes: clients start no new
    /// transactions until `start_load`; those in flight finish. The real
    /// conformance driver's loads are finite runs, so its primaries are idle
    /// between them.
    StopLoad,
    /// The load generator starts again.
    StartLoad,
    /// `SELECT count(*), sum(hashtext(test::text)) FROM test` on a primary
    /// or a consistent hot standby: what a read-only client sees.
    Query,
    /// Edit the node's settings (the step's `synchronous_standby_names`,
    /// `synchronous_commit`, `synchronous_transfer`) and `pg_ctl reload`.
    Reload,
    /// `SELECT pg_wal_replay_pause()` on a standby.
    PauseReplay,
    /// `SELECT pg_wal_replay_resume()` on a standby.
    ResumeReplay,
    /// `SELECT pg_create_physical_replication_slot(slot, true)`: a slot
    /// that reserves WAL at once (restart_lsn = the last REDO).
    CreateSlot,
    /// `SELECT pg_drop_replication_slot(slot)`.
    DropSlot,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::StopFast => "pg_ctl stop -m fast",
            Action::StopImmediate => "pg_ctl stop -m immediate",
            Action::PowerLoss => "power loss",
            Action::Start => "pg_ctl start",
            Action::Promote => "pg_ctl promote",
            Action::Failback => "failback",
            Action::Checkpoint => "CHECKPOINT",
            Action::SwitchWal => "SELECT pg_switch_wal()",
            Action::CopyHistoryFile => "cp TLI.history pg_wal/",
            Action::Query => "SELECT count(*), sum(hashtext(test::text)) FROM test",
            Action::StopLoad => "pgbench finishes",
            Action::StartLoad => "pgbench starts",
            Action::Reload => "pg_ctl reload",
            Action::PauseReplay => "SELECT pg_wal_replay_pause()",
            Action::ResumeReplay => "SELECT pg_wal_replay_resume()",
            Action::CreateSlot => "SELECT pg_create_physical_replication_slot()",
            Action::DropSlot => "SELECT pg_drop_replication_slot()",
        }
    }
}

/// A state the cluster must be in before a step.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Some standby has flushed WAL past the primary's latest checkpoint.
    StandbyFlushedPastCheckpoint,
    /// Every standby streaming from the primary has flushed all its WAL.
    StandbyCaughtUp,
    /// The step's node is down.
    NodeDown,
    /// The step's node is a standby that replayed everything it received.
    NodeReplayedAll,
    /// The step's node is a standby that has received, flushed and
    /// replayed everything its upstream has flushed (what the conformance
    /// driver waits for with `pg_last_wal_replay_lsn()` before stopping a
    /// standby).
    NodeReplayedUpstream,
    /// The step's node has a history file for a newer timeline than the
    /// one it is on (it learned of a promotion but has not followed yet).
    NodeKnowsNewerTimeline,
    /// For a `failback` by `rewind`: the upstream's pg_control already
    /// shows its current timeline (its first checkpoint after promotion is
    /// done), which is what an HA tool such as Patroni waits for before
    /// running pg_rewind. Always true for other strategies. Without it,
    /// pg_rewind runs whenever the step comes, and PostgreSQL 15's may
    /// find both pg_controls on the same timeline: "no rewind required".
    RewindSourceCheckpointed,
    /// Another node is a primary whose flushed WAL reaches past the end of
    /// the step's node's WAL (it holds WAL at the position the node would
    /// read next).
    PrimaryPassedEndOfWal,
    /// Every running standby that has an upstream shows `streaming` in its
    /// upstream's `pg_stat_replication` (its walsender caught up).
    StandbysStreaming,
    /// No node's archiver has a `.ready` file left (`pg_stat_archiver`
    /// caught up: every completed segment and history file is archived).
    ArchiverCaughtUp,
}

/// One step of a script.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub action: Action,
    /// The node acted on: `node1`, `node2`, ...
    pub node: String,
    /// At least this many commits acknowledged to clients since the start.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub after_commits: u64,
    /// At least this many events since the previous step (or the start).
    /// Time passes while nothing else can happen, so this never blocks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub after_events: u64,
    /// A further condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// For `start` and `failback`: the node to stream from
    /// (`primary_conninfo`); default: the current primary. `"none"`
    /// starts a standby with no upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// For `failback`: overrides `failover.failback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Failback>,
    /// For `copy_history_file`: the node whose `pg_wal` holds the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For `copy_history_file`: which timeline's file; default: the newest
    /// the `from` node has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Tli>,
    /// For `start`: create `standby.signal` first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// Wait for a blocking step (fast stop, promote, CHECKPOINT) to finish
    /// before the next step; `false` runs the next one from another
    /// terminal, as the blog did with `pg_ctl stop` while CHECKPOINT hung.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub wait: bool,
    /// For `reload`: the new `synchronous_standby_names` of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_standby_names: Option<String>,
    /// For `reload`: the new `synchronous_commit` of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_commit: Option<SynchronousCommit>,
    /// For `reload`: the new `synchronous_transfer` of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_transfer: Option<SynchronousTransfer>,
    /// For `create_slot` / `drop_slot`: the slot's name. For `start` and
    /// `failback`: the node's `primary_slot_name` from then on (`""`:
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// For `failback` by `rewind`: `pg_rewind --restore-target-wal`
    /// (also set for every rewind by `failover.restore_target_wal`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore_target_wal: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Step {
    pub fn new(action: Action, node: &str) -> Step {
        Step {
            action,
            node: node.to_string(),
            after_commits: 0,
            after_events: 0,
            when: None,
            upstream: None,
            strategy: None,
            from: None,
            timeline: None,
            standby: false,
            wait: true,
            synchronous_standby_names: None,
            synchronous_commit: None,
            synchronous_transfer: None,
            slot: None,
            restore_target_wal: false,
        }
    }
}

/// Parses a node name (`node1` → 0).
pub fn node_index(name: &str) -> Option<NodeId> {
    let n: u8 = name.strip_prefix("node")?.parse().ok()?;
    n.checked_sub(1).map(NodeId)
}

/// The default story of a run: the seed experiment's failover. The standby
/// is promoted while the old primary keeps taking writes, the old primary
/// is stopped, then rejoins by the configured failback strategy.
pub fn default_story() -> Vec<Step> {
    vec![
        Step { after_commits: 40, ..Step::new(Action::Promote, "node2") },
        Step { after_events: 100, ..Step::new(Action::StopImmediate, "node1") },
        Step {
            after_events: 20,
            when: Some(Condition::RewindSourceCheckpointed),
            ..Step::new(Action::Failback, "node1")
        },
    ]
}
