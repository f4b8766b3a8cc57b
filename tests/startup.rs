//! Startup as PostgreSQL 15 does it (xlogrecovery.c InitWalRecovery and
//! ReadRecord): a crashed primary started with standby.signal does crash
//! recovery through all of its local WAL first, and is consistent only at
//! its end; a standby in archive recovery never holds a page beyond its
//! minimum recovery point (or its replay position).

mod common;
use common::settings;
use walsim::run::{Observer, Phase, RunOptions, run_seed};
use walsim_model::ids::NodeId;
use walsim_model::log::{Level, LogLine, Process};
use walsim_model::{Cluster, Event, Lsn, Settings};

/// Watches every step: for each node that entered crash recovery with
/// standby.signal, the end of its local WAL when it started and where it
/// reported consistency; and any standby state with a page ahead of both
/// minRecoveryPoint and the replay position.
#[derive(Default)]
struct Watch {
    /// (node, end of local WAL when crash recovery began).
    crash_first: Vec<(NodeId, Lsn)>,
    /// (node, end of local WAL at the start, consistency point).
    consistent: Vec<(NodeId, Lsn, Lsn)>,
    /// Standby states PostgreSQL never reaches.
    pages_ahead: Vec<String>,
}

impl Observer for Watch {
    fn step(&mut self, step: u64, _: Phase, _: &Event, _: Option<u64>, c: &Cluster, lines: &[LogLine]) {
        for l in lines.iter().filter(|l| l.process == Process::Startup && l.level == Level::Log) {
            let n = &c.nodes[l.node.index()];
            if l.message.starts_with("database system was not properly shut down") && n.standby_signal {
                self.crash_first.retain(|(id, _)| *id != l.node);
                self.crash_first.push((l.node, n.wal.end()));
            }
            if let Some(at) = l.message.strip_prefix("consistent recovery state reached at ")
                && let Some(&(_, end)) = self.crash_first.iter().find(|(id, _)| *id == l.node)
            {
                self.consistent.push((l.node, end, Lsn::parse(at).expect("an LSN")));
                self.crash_first.retain(|(id, _)| *id != l.node);
            }
        }
        for n in &c.nodes {
            let Some(st) = n.startup.as_ref().filter(|s| s.standby) else { continue };
            let bound = n.control.min_recovery_point.max(st.replayed);
            let top = n.data.max_lsn_read();
            if top > bound {
                self.pages_ahead.push(format!(
                    "step {step}: {} in archive recovery has a page at {top}, beyond minRecoveryPoint {} and replay {}",
                    n.name, n.control.min_recovery_point, st.replayed
                ));
            }
        }
    }
}

fn watch(s: &Settings, seeds: std::ops::RangeInclusive<u64>) -> Watch {
    let mut w = Watch::default();
    for seed in seeds {
        run_seed(s, seed, RunOptions { log: true, ..RunOptions::default() }, &mut w);
    }
    w
}

#[test]
fn a_crashed_primary_is_consistent_only_at_the_end_of_its_local_wal() {
    // The default story: node1 is stopped immediately after the failover
    // and fails back naively; faults add crashes of standbys too.
    let w = watch(&settings(&[]), 1..=40);
    assert!(w.consistent.len() >= 10, "only {} crash-recovery-first starts", w.consistent.len());
    for (node, end, at) in &w.consistent {
        assert_eq!(at, end, "{node} reported consistency at {at}, its local WAL ended at {end}");
    }
    assert!(w.pages_ahead.is_empty(), "{}", w.pages_ahead.join("\n"));
}

#[test]
fn without_crash_recovery_first_a_standby_holds_pages_beyond_its_minimum_recovery_point() {
    // The planted bug: archive recovery from the checkpoint, consistent at
    // once. The old primary's data files still hold its pages from before
    // the crash, ahead of where it claims to be consistent.
    let w = watch(&settings(&["rules.crash_recovery_before_archive_recovery=false"]), 1..=40);
    assert!(!w.pages_ahead.is_empty(), "no standby state with pages beyond minRecoveryPoint");
}

#[test]
fn the_second_start_after_a_fetched_history_file_is_refused() {
    let s = walsim::scenario::load("second-start-after-history-fetch", toml::Table::new(), &[]).unwrap();
    let r = run_seed(&s.settings, 1, RunOptions::default(), &mut walsim::run::NoObserver);
    let fatal = r
        .refusals
        .iter()
        .find(|x| x.message.contains("does not contain minimum recovery point"))
        .unwrap_or_else(|| panic!("no FATAL in {:?}", r.refusals));
    assert!(
        fatal.message.starts_with("FATAL: requested timeline 2 does not contain minimum recovery point ")
    );
    assert!(fatal.message.ends_with(" on timeline 1"), "{}", fatal.message);
    // Its minimum recovery point is where its local WAL ended.
    let a = &r.failbacks[0];
    let mrp = fatal
        .message
        .split("minimum recovery point ")
        .nth(1)
        .and_then(|t| Lsn::parse(&t[..t.find(' ').unwrap()]));
    assert_eq!(mrp, Some(a.end_of_wal), "{}", fatal.message);
}
