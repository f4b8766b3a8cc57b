//! What a failed check is: the invariants' names and the violation they
//! report. Data only (it imports nothing but the ids), so every part of
//! the model that finds a violation can build one without depending on the
//! checks themselves (invariants.rs) or the cluster they look at.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The invariants walsim checks (docs/invariants.md).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invariant {
    /// Every page on disk has LSN ≤ that node's flushed WAL.
    WalBeforeData,
    /// The proposal's premise: every page on the primary's disk has LSN ≤
    /// the sync standby's flushed WAL.
    StandbyCoversPrimaryData,
    /// Acknowledged commits survive what their level promises.
    AcknowledgedCommitsSurvive,
    /// No node replays WAL from a server whose history does not contain
    /// everything it already applied or wrote.
    NoSilentDivergence,
    /// After faults stop and the cluster quiesces, every node has the
    /// primary's rows.
    Converges,
    /// After crash recovery, a node's rows equal the commits in its WAL.
    RecoveryIsExact,
    /// History files agree and timeline IDs only grow.
    TimelinesConsistent,
    /// The proposal's premise where it matters: when an old primary
    /// rejoins after a failover, the data files it keeps (OS cache and
    /// disk) hold no page beyond the fork point. Only observed: stock
    /// PostgreSQL promises nothing of the kind.
    FailbackPremise,
    /// No WAL segment is removed while REDO or `wal_keep_size` still
    /// needs it (KeepLogSeg, RemoveOldXlogFiles).
    WalSegmentsKept,
}

impl Invariant {
    pub const ALL: [Invariant; 9] = [
        Invariant::WalBeforeData,
        Invariant::StandbyCoversPrimaryData,
        Invariant::AcknowledgedCommitsSurvive,
        Invariant::NoSilentDivergence,
        Invariant::Converges,
        Invariant::RecoveryIsExact,
        Invariant::TimelinesConsistent,
        Invariant::FailbackPremise,
        Invariant::WalSegmentsKept,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::WalBeforeData => "wal_before_data",
            Invariant::StandbyCoversPrimaryData => "standby_covers_primary_data",
            Invariant::AcknowledgedCommitsSurvive => "acknowledged_commits_survive",
            Invariant::NoSilentDivergence => "no_silent_divergence",
            Invariant::Converges => "converges",
            Invariant::RecoveryIsExact => "recovery_is_exact",
            Invariant::TimelinesConsistent => "timelines_consistent",
            Invariant::FailbackPremise => "failback_premise",
            Invariant::WalSegmentsKept => "wal_segments_kept",
        }
    }

    pub fn from_name(s: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.name() == s)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed check.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Violation {
    pub invariant: Invariant,
    pub node: Option<NodeId>,
    /// What went wrong, naming the node, page or transaction and the LSNs.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}
