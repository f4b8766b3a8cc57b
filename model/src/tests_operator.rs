//! Operator scripts run through the cluster: each action's effect, seen
//! right after the operator's step is applied.

use crate::cluster::Cluster;
use crate::event::Event;
use crate::ids::NodeId;
use crate::script::{Action, Step};
use crate::settings::Settings;

/// Runs `script` on a primary and `standbys` standbys (fixed rotation,
/// logging on) until it is done, calling `check(i, cluster, log lines)`
/// right after step `i` is applied.
fn run_script(
    standbys: u8,
    script: Vec<Step>,
    mut check: impl FnMut(usize, &mut Cluster, Vec<String>),
) -> Cluster {
    let mut s = Settings { operator: script, ..Settings::default() };
    s.cluster.standbys = standbys;
    let mut c = Cluster::new(s, true);
    crate::testkit::run_script_rotation(&mut c, |c, ev| {
        let lines: Vec<String> = c.log.drain().map(|l| format!("{} {}", l.node, l.message)).collect();
        if let Event::Operator { step, .. } = ev {
            check(step as usize, c, lines);
        }
    });
    c
}

fn step(action: Action, node: &str) -> Step {
    Step::new(action, node)
}

fn slot_step(action: Action, node: &str, name: &str) -> Step {
    Step { slot: Some(name.into()), ..step(action, node) }
}

/// A script through most actions on a primary (node1) and two standbys,
/// each step's effect checked right after it ran.
#[test]
fn each_operator_action_does_what_its_command_does() {
    use crate::node::Status;
    use crate::operator::Completion;
    let script = vec![
        Step { after_commits: 5, ..slot_step(Action::CreateSlot, "node1", "s1") },
        slot_step(Action::CreateSlot, "node1", "s1"),
        slot_step(Action::CreateSlot, "node2", "sb"),
        slot_step(Action::DropSlot, "node2", "sb"),
        step(Action::Checkpoint, "node1"),
        Step { after_events: 50, ..step(Action::SwitchWal, "node1") },
        step(Action::PauseReplay, "node2"),
        step(Action::ResumeReplay, "node2"),
        step(Action::StopLoad, "node1"),
        step(Action::Query, "node2"),
        step(Action::StartLoad, "node1"),
        step(Action::StopImmediate, "node3"),
        Step { standby: true, ..step(Action::Start, "node3") },
        step(Action::PowerLoss, "node3"),
        slot_step(Action::Start, "node3", ""),
        Step { when: Some(crate::script::Condition::StandbysStreaming), ..step(Action::StopFast, "node2") },
        step(Action::Start, "node2"),
        Step { when: Some(crate::script::Condition::StandbysStreaming), ..step(Action::Promote, "node3") },
        Step { after_events: 50, ..step(Action::StopFast, "node1") },
        Step { standby: true, ..slot_step(Action::Start, "node1", "s1") },
    ];
    let (n1, n2, n3) = (NodeId(0), NodeId(1), NodeId(2));
    let mut prev_done = 0;
    let mut ckpt_before = None;
    let c = run_script(2, script, |i, c, lines| {
        let ran_at = c.now;
        let said = |l: &str| lines.iter().any(|x| x == l);
        match i {
            0 => {
                // Reserved at once from the last REDO (primary).
                let redo = c.nodes[0].redo_ptr;
                assert_eq!(c.nodes[0].slots.len(), 1);
                assert_eq!(c.nodes[0].slots[0].restart_lsn, redo);
                assert!(
                    said(&format!("node1 created physical replication slot \"s1\" at {redo}")),
                    "{lines:?}"
                );
                assert!(c.ledger.acks >= 5, "after 5 commits");
            }
            1 => {
                assert!(said("node1 replication slot \"s1\" already exists"), "{lines:?}");
                assert_eq!(c.nodes[0].slots.len(), 1);
            }
            2 => {
                // On a standby: from its replay position.
                let replayed = c.nodes[1].startup.as_ref().unwrap().replayed;
                assert_eq!(c.nodes[1].slots.len(), 1);
                assert_eq!(c.nodes[1].slots[0].restart_lsn, replayed);
            }
            3 => {
                assert!(c.nodes[1].slots.is_empty());
                assert!(!lines.iter().any(|l| l.contains("does not exist")), "{lines:?}");
            }
            4 => {
                let before = c.nodes[0].checkpointer.completed;
                assert_eq!(c.script.in_progress, Some(Completion::Checkpoint(n1, before)));
                assert_eq!(c.script.next, 4, "waits for the checkpoint");
                ckpt_before = Some(before);
            }
            5 => {
                // Ran after the checkpoint completed, and at least 50
                // events after it.
                assert_eq!(c.nodes[0].checkpointer.completed, ckpt_before.unwrap() + 1);
                assert!(ran_at - prev_done >= 50, "{ran_at} - {prev_done}");
                let at = lines
                    .iter()
                    .find_map(|l| crate::lsn::Lsn::after(l, "pg_switch_wal(): the next record starts at "))
                    .expect("logged");
                let g = c.nodes[0].wal.geometry();
                assert_eq!(g.segment_start(at), at, "the next segment");
                assert!(c.nodes[0].wal.flush_lsn() >= at, "flushed");
            }
            6 => {
                assert!(c.nodes[1].replay_pause && said("node2 recovery has paused"));
            }
            7 => assert!(!c.nodes[1].replay_pause),
            8 => assert!(c.script.load_stopped),
            9 => {
                let rows = c.nodes[1].visible_rows();
                let sum = crate::heap::RowSummary::of(&rows);
                let q = c.queries.last().expect("a query result");
                assert_eq!(c.queries.len(), 1);
                assert_eq!((q.node.as_str(), q.at, q.count, q.sum), ("node2", ran_at, sum.count, sum.sum));
                assert!(q.count > 0);
                let on_primary = c.nodes[0].visible_rows();
                let missing = rows.iter().filter(|r| on_primary.binary_search(r).is_err()).count();
                assert_eq!(q.not_on_primary, Some(missing));
            }
            10 => assert!(!c.script.load_stopped),
            11 => {
                let n = &c.nodes[2];
                assert_eq!(n.status, Status::Down);
                assert!(n.operator_stopped && n.power_losses == 0);
                assert!(!c.connections().iter().any(|x| x.touches(n3)));
            }
            12 => {
                let n = &c.nodes[2];
                assert!(n.is_running() && n.standby_signal && !n.operator_stopped);
                assert_eq!(n.upstream, Some(n1), "the current primary");
            }
            13 => {
                let n = &c.nodes[2];
                assert_eq!((n.status, n.power_losses), (Status::Down, 1));
                assert!(n.operator_stopped);
            }
            14 => {
                assert!(c.nodes[2].is_running());
                assert_eq!(c.nodes[2].primary_slot_name, None, "slot \"\": none");
            }
            15 => {
                assert_eq!(c.script.in_progress, Some(Completion::Down(n2)));
                assert!(c.nodes[1].operator_stopped);
                assert!(!c.connections().iter().any(|x| x.downstream == n2));
                assert!(c.connections().iter().any(|x| x.downstream == n3), "node3 still streams");
            }
            16 => {
                assert_eq!(c.nodes[1].status, Status::Recovery, "stopped, then started again");
                assert!(c.nodes[1].is_standby() && !c.nodes[1].operator_stopped);
            }
            17 => {
                assert_eq!(c.script.in_progress, Some(Completion::Production(n3)));
                assert!(c.nodes[2].promote_signal);
                assert!(said("node3 received promote request"), "{lines:?}");
                // node3's walreceiver stops; node2 is repointed at node3
                // (its stream from node1 ends); node1 is left alone, and
                // node3 keeps its own primary_conninfo.
                assert_eq!(c.connections(), [], "no stream left");
                assert_eq!(c.nodes[1].upstream, Some(n3));
                assert_eq!(c.nodes[2].upstream, Some(n1));
                assert_eq!(c.nodes[0].upstream, None);
            }
            18 => {
                assert_eq!(c.nodes[2].status, Status::Production, "the promotion finished first");
                assert_eq!(c.script.in_progress, Some(Completion::Down(n1)));
                assert!(c.nodes[0].operator_stopped);
            }
            19 => {
                // `standby = true` creates standby.signal: node1 starts as
                // a standby of the current primary, through slot s1.
                let n = &c.nodes[0];
                assert!(n.standby_signal && n.is_running() && !n.operator_stopped);
                assert_eq!(n.upstream, Some(n3));
                assert_eq!(n.primary_slot_name.as_deref(), Some("s1"));
            }
            _ => unreachable!(),
        }
        assert_eq!(c.script.last_done_at == ran_at, c.script.in_progress.is_none(), "step {i}");
        prev_done = c.script.last_done_at;
    });
    assert!(c.script_done());
    assert_eq!(c.script.next, 20);
    let n = &c.nodes[2];
    assert_eq!((n.status, n.tli), (Status::Production, crate::ids::Tli(2)));
    assert_eq!(c.current_primary(None), Some(n3), "the newest timeline");
}
