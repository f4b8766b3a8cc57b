//! Operator script vocabulary: names, node names, the default story, and
//! a step's defaults when read from a scenario.

use crate::ids::NodeId;
use crate::script::{Action, Condition, Failback, Step, default_story, node_index};

/// The strategy names are the `failover.failback` values.
#[test]
fn failback_strategies_are_named_as_configured() {
    let names: Vec<_> = [Failback::Naive, Failback::Rewind, Failback::Basebackup, Failback::Truncate]
        .map(|f| f.name())
        .into();
    assert_eq!(names, ["naive", "rewind", "basebackup", "truncate"]);
}

/// Each action is named by the command an operator would type.
#[test]
fn actions_are_named_by_their_commands() {
    let all = [
        (Action::StopFast, "pg_ctl stop -m fast"),
        (Action::StopImmediate, "pg_ctl stop -m immediate"),
        (Action::PowerLoss, "power loss"),
        (Action::Start, "pg_ctl start"),
        (Action::Promote, "pg_ctl promote"),
        (Action::Failback, "failback"),
        (Action::Checkpoint, "CHECKPOINT"),
        (Action::SwitchWal, "SELECT pg_switch_wal()"),
        (Action::CopyHistoryFile, "cp TLI.history pg_wal/"),
        (Action::Query, "SELECT count(*), sum(hashtext(test::text)) FROM test"),
        (Action::StopLoad, "pgbench finishes"),
        (Action::StartLoad, "pgbench starts"),
        (Action::Reload, "pg_ctl reload"),
        (Action::PauseReplay, "SELECT pg_wal_replay_pause()"),
        (Action::ResumeReplay, "SELECT pg_wal_replay_resume()"),
        (Action::CreateSlot, "SELECT pg_create_physical_replication_slot()"),
        (Action::DropSlot, "SELECT pg_drop_replication_slot()"),
    ];
    for (a, name) in all {
        assert_eq!(a.name(), name, "{a:?}");
    }
}

/// `node1` is the first node; anything else is no node name.
#[test]
fn node_names_count_from_one() {
    assert_eq!(node_index("node1"), Some(NodeId(0)));
    assert_eq!(node_index("node3"), Some(NodeId(2)));
    assert_eq!(node_index("node12"), Some(NodeId(11)));
    for bad in ["node0", "node", "Node1", "1", "nodex", "node-1", ""] {
        assert_eq!(node_index(bad), None, "{bad:?}");
    }
}

/// The seed experiment's story: node2 promoted after 40 commits, node1
/// stopped immediately 100 events later, then failed back 20 events
/// after that once the new primary checkpointed on its timeline.
#[test]
fn the_default_story_is_the_seed_experiments_failover() {
    let s = default_story();
    let what: Vec<_> = s
        .iter()
        .map(|x| (x.action, x.node.as_str(), x.after_commits, x.after_events, x.when, x.wait))
        .collect();
    assert_eq!(
        what,
        [
            (Action::Promote, "node2", 40, 0, None, true),
            (Action::StopImmediate, "node1", 0, 100, None, true),
            (Action::Failback, "node1", 0, 20, Some(Condition::RewindSourceCheckpointed), true),
        ]
    );
}

/// A step read from a scenario with only its action and node: every
/// option at its default, `wait` on (a blocking step is waited for).
#[test]
fn a_step_read_with_only_action_and_node_has_the_defaults() {
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, MapDeserializer};
    let read = |pairs: &[(&'static str, &'static str)]| {
        let d: MapDeserializer<'_, _, Error> =
            MapDeserializer::new(pairs.iter().map(|&(k, v)| (k, v.into_deserializer())));
        Step::deserialize(d)
    };
    let s = read(&[("action", "stop_fast"), ("node", "node2")]).expect("valid");
    assert_eq!(s, Step::new(Action::StopFast, "node2"));
    assert!(s.wait);
    assert!(read(&[("action", "stop_fast"), ("node", "node2"), ("nonsense", "1")]).is_err(), "unknown field");
}

/// A step is written back with only what differs from the defaults
/// (`after_commits`/`after_events` 0, `wait` on, no options), so scenario
/// files stay as short as they were written.
#[test]
fn a_step_serializes_only_what_differs_from_the_defaults() {
    // The keys a step is written with (sorted: a TOML table's order).
    let fields = |s: &Step| -> Vec<String> {
        match toml::Value::try_from(s).expect("a step serializes") {
            toml::Value::Table(t) => t.keys().cloned().collect(),
            v => panic!("not a table: {v:?}"),
        }
    };
    assert_eq!(fields(&Step::new(Action::Promote, "node2")), ["action", "node"]);
    let s = Step {
        after_commits: 1,
        after_events: 2,
        wait: false,
        standby: true,
        slot: Some("s".into()),
        ..Step::new(Action::Start, "node1")
    };
    assert_eq!(fields(&s), ["action", "after_commits", "after_events", "node", "slot", "standby", "wait"]);
}
