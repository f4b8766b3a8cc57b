//! The sim crate's view of the cluster after a step: one place that reads
//! each node's positions, for every observer that exports or draws them
//! (`--trace-jsonl`'s [`crate::report::JsonlWriter`] and `walsim
//! picture`'s [`crate::picture::Recorder`]).
//!
//! Positions are kept as [`Lsn`]s (the picture plots them); they
//! serialize as `%X/%X` text (the JSONL export prints them).

use serde::{Serialize, Serializer};
use walsim_model::cluster::WalSenderSnapshot;
use walsim_model::ids::NodeId;
use walsim_model::lsn::{Lsn, Tli};
use walsim_model::node::{Node, Status};
use walsim_model::{Cluster, Event};

use crate::run::Phase;

fn lsn_text<S: Serializer>(l: &Lsn, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(l)
}

fn opt_lsn_text<S: Serializer>(l: &Option<Lsn>, s: S) -> Result<S::Ok, S::Error> {
    match l {
        Some(l) => s.collect_str(l),
        None => s.serialize_none(),
    }
}

/// A node's role as the picture's band and the JSONL `status` name it.
pub fn role_name(n: &Node) -> &'static str {
    match n.status {
        Status::Down => "down",
        Status::Recovery if n.is_standby() => "standby",
        Status::Recovery => "recovery",
        Status::Production => "primary",
        Status::ShuttingDown => "shutting down",
    }
}

/// One node after a step.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct NodeView {
    pub node: String,
    /// `primary`, `standby`, `recovery` (crash recovery), `down`,
    /// `shutting down`.
    pub status: &'static str,
    pub timeline: Tli,
    #[serde(rename = "insert_lsn", serialize_with = "lsn_text")]
    pub insert: Lsn,
    #[serde(rename = "write_lsn", serialize_with = "lsn_text")]
    pub write: Lsn,
    #[serde(rename = "flush_lsn", serialize_with = "lsn_text")]
    pub flush: Lsn,
    /// End of the last record the startup process replayed
    /// (`lastReplayedEndRecPtr`); none when no startup process runs.
    #[serde(rename = "replay_lsn", serialize_with = "opt_lsn_text")]
    pub replay: Option<Lsn>,
    /// The highest page LSN in the data file as the OS cache holds it.
    #[serde(rename = "max_page_lsn_os", serialize_with = "lsn_text")]
    pub max_page_os: Lsn,
    /// The highest page LSN that survives a power loss.
    #[serde(rename = "max_page_lsn_durable", serialize_with = "lsn_text")]
    pub max_page_durable: Lsn,
    pub control: ControlView,
    /// The oldest WAL segment still in pg_wal (checkpoints removed the ones
    /// before it), named as its file.
    pub oldest_wal_segment: String,
    /// Physical replication slots: name and restart_lsn (`null` once
    /// invalidated), as `pg_replication_slots` shows them.
    pub slots: Vec<(String, Option<String>)>,
    /// The node's `pg_stat_replication` rows, in walsender slot order
    /// (pg_stat_get_wal_senders, computed by the model).
    pub walsenders: Vec<WalSenderSnapshot>,
    /// `primary_conninfo`'s node (not exported).
    #[serde(skip)]
    pub upstream: Option<NodeId>,
}

/// pg_control fields.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ControlView {
    pub state: &'static str,
    #[serde(serialize_with = "lsn_text")]
    pub checkpoint: Lsn,
    #[serde(serialize_with = "lsn_text")]
    pub redo: Lsn,
    pub timeline: Tli,
    #[serde(serialize_with = "lsn_text")]
    pub min_recovery_point: Lsn,
}

impl NodeView {
    pub fn of(cluster: &Cluster, n: &Node) -> NodeView {
        let max_os = n.data.max_lsn_read();
        NodeView {
            node: n.name.clone(),
            status: role_name(n),
            timeline: n.tli,
            insert: n.wal.insert_lsn(),
            write: n.wal.write_lsn(),
            flush: n.wal.flush_lsn(),
            replay: n.startup.as_ref().map(|s| s.replayed),
            max_page_os: max_os,
            max_page_durable: n.data.max_lsn_durable(),
            control: ControlView {
                state: n.control.state.name(),
                checkpoint: n.control.checkpoint,
                redo: n.control.redo,
                timeline: n.control.tli,
                min_recovery_point: n.control.min_recovery_point,
            },
            oldest_wal_segment: n.wal.geometry().wal_file_name(n.tli, n.wal.kept_from()),
            slots: n
                .slots
                .iter()
                .map(|s| (s.name.clone(), s.restart_lsn.is_valid().then(|| s.restart_lsn.to_string())))
                .collect(),
            walsenders: cluster.walsender_rows(n.id),
            upstream: n.upstream,
        }
    }
}

/// Every node, in order.
pub fn nodes(cluster: &Cluster) -> Vec<NodeView> {
    cluster.nodes.iter().map(|n| NodeView::of(cluster, n)).collect()
}

/// One step as `--trace-jsonl` writes it.
#[derive(Serialize)]
pub struct StepView<'a> {
    pub step: u64,
    pub phase: &'static str,
    pub event: &'a Event,
    pub arg: Option<u64>,
    pub nodes: Vec<NodeView>,
}

impl<'a> StepView<'a> {
    pub fn capture(step: u64, phase: Phase, event: &'a Event, arg: Option<u64>, cluster: &Cluster) -> Self {
        StepView { step, phase: phase_name(phase), event, arg, nodes: nodes(cluster) }
    }
}

pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Main => "main",
        Phase::Quiesce => "quiesce",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walsim_model::Settings;

    #[test]
    fn lsns_serialize_as_text_and_replay_is_null_on_a_primary() {
        let c = Cluster::new(Settings::default(), false);
        let v = serde_json::to_value(nodes(&c)).unwrap();
        assert_eq!(v[0]["status"], "primary");
        assert!(v[0]["replay_lsn"].is_null());
        assert!(v[0]["insert_lsn"].as_str().unwrap().contains('/'));
        assert_eq!(v[1]["status"], "standby");
        assert!(v[1]["replay_lsn"].as_str().unwrap().contains('/'));
        assert!(v[1]["control"]["min_recovery_point"].is_string());
    }
}
