//! The invariants: named checks, each stated as a sentence a PostgreSQL
//! developer would write in a bug report when it fails.
//!
//! Cheap checks run after every step on the node the step touched; the
//! costly ones (comparing rows) run when something finishes that they
//! judge (crash recovery, the end of a run).

use crate::cluster::Cluster;
use crate::ids::{BlockNumber, NodeId};
use crate::lsn::Lsn;
use crate::node::{Node, Status};
use crate::recovery::rows_implied_by_wal;

pub use crate::violation::{Invariant, Violation};

/// When a check runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum When {
    /// After every step, on the node the step touched.
    EveryStepOnTouchedNode,
    /// After every step, on every node writing data files.
    EveryStep,
    /// When its process reaches the state it judges: named in `at`.
    At(&'static str),
    /// Once the cluster quiesced, at the end of a run.
    AtTheEnd,
}

/// One row of the table: an invariant, when it is checked, the function
/// (`file.rs: fn`) that checks it, and whether a failure ends the run (a
/// violation) or is only recorded (an observation, `Cluster::observe`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Checker {
    pub invariant: Invariant,
    pub when: &'static [When],
    /// `file.rs: fn_name` for each place that judges it (a test checks each
    /// function exists in that file).
    pub checked_by: &'static [&'static str],
    pub observation_only: bool,
}

/// Every invariant, when it is checked and by what: the one place to read
/// (docs/invariants.md says why each holds). `tests::the_table_names_*`
/// keep it true: each invariant once, each function present.
pub const TABLE: [Checker; 9] = [
    Checker {
        invariant: Invariant::WalBeforeData,
        when: &[When::EveryStepOnTouchedNode],
        checked_by: &["invariants.rs: check_wal_before_data"],
        observation_only: false,
    },
    Checker {
        invariant: Invariant::StandbyCoversPrimaryData,
        when: &[When::EveryStep],
        // A violation where `synchronous_transfer` covers data writes
        // (Cluster::premise_expected), otherwise an observation.
        checked_by: &["invariants.rs: check_standby_covers_primary_data"],
        observation_only: false,
    },
    Checker {
        invariant: Invariant::AcknowledgedCommitsSurvive,
        when: &[When::At("after crash recovery"), When::At("after promotion"), When::AtTheEnd],
        checked_by: &[
            "invariants.rs: check_after_crash_recovery",
            "invariants.rs: check_acknowledged",
            "invariants.rs: check_final",
        ],
        observation_only: false,
    },
    Checker {
        invariant: Invariant::NoSilentDivergence,
        when: &[When::At("when the walreceiver hands over the record at the replay position")],
        checked_by: &["walreceiver.rs: mixes_histories"],
        observation_only: false,
    },
    Checker {
        invariant: Invariant::Converges,
        when: &[When::AtTheEnd],
        checked_by: &["invariants.rs: check_converges", "invariants.rs: not_following"],
        observation_only: false,
    },
    Checker {
        invariant: Invariant::RecoveryIsExact,
        when: &[When::At("after crash recovery"), When::At("when redo cannot apply a record")],
        checked_by: &["invariants.rs: check_after_crash_recovery", "recovery.rs: redo_heap"],
        observation_only: false,
    },
    Checker {
        invariant: Invariant::TimelinesConsistent,
        when: &[When::At("when a history file is written or copied")],
        checked_by: &["invariants.rs: check_timelines"],
        observation_only: false,
    },
    Checker {
        invariant: Invariant::FailbackPremise,
        when: &[When::At("when a failback attempt starts")],
        checked_by: &["invariants.rs: check_failback_premise"],
        observation_only: true,
    },
    Checker {
        invariant: Invariant::WalSegmentsKept,
        when: &[When::At("when a checkpoint or restartpoint removes segments")],
        checked_by: &["checkpointer.rs: remove_old_wal"],
        observation_only: false,
    },
];

/// The row of `inv`.
pub fn checker(inv: Invariant) -> &'static Checker {
    TABLE.iter().find(|c| c.invariant == inv).expect("every invariant has a row")
}

/// `wal_before_data` on one node: data and CLOG pages in the OS cache
/// must not be ahead of flushed WAL. O(1) unless the cached maximum is
/// ahead, when it is recomputed before judging.
pub fn check_wal_before_data(node: &mut Node) -> Option<Violation> {
    let flush = node.wal.flush_lsn();
    if let Some((blk, lsn)) = node.data.highest_above(flush) {
        return Some(Violation {
            invariant: Invariant::WalBeforeData,
            node: Some(node.id),
            detail: format!(
                "{}: block {blk} of relation test is in the data file with page LSN {lsn}, but WAL is flushed only to {flush} (written to {}); a crash now leaves a page that depends on WAL the server may not have",
                node.name,
                node.wal.write_lsn()
            ),
        });
    }
    node.clog.file.highest_above(flush).map(|(p, lsn)| Violation {
        invariant: Invariant::WalBeforeData,
        node: Some(node.id),
        detail: format!(
            "{}: CLOG page {p} was written with group LSN {lsn}, but WAL is flushed only to {flush}; a crash could leave a transaction committed in pg_xact whose commit record is gone",
            node.name
        ),
    })
}

/// After crash recovery of `id`: first `acknowledged_commits_survive` (what
/// the node held when it acknowledged commits must be there), then
/// `recovery_is_exact` (the rows are exactly what its WAL commits).
pub fn check_after_crash_recovery(cluster: &Cluster, id: NodeId) -> Option<Violation> {
    let node = &cluster.nodes[id.index()];
    // Fast path (issue 11): when the WAL's implied table is cached
    // (`Wal::refresh_implied`, which the cluster runs before this check),
    // judge without sorting or copying the table. It decides only what it
    // can decide exactly; anything else falls through to the full check
    // below, which gives the same verdict and message as always.
    if let Some(implied) = node.wal.implied()
        && let Some(verdict) = fast_after_crash_recovery(cluster, node, implied)
    {
        return verdict;
    }
    let rows = node.visible_rows();
    if let Some(v) = check_acknowledged_rows(cluster, node, &rows, "crash recovery") {
        return Some(v);
    }
    let expected = rows_implied_by_wal(&node.wal, node.data.len());
    if rows != expected {
        return Some(Violation {
            invariant: Invariant::RecoveryIsExact,
            node: Some(id),
            detail: format!(
                "{}: after crash recovery (redo to {}) the table holds {} rows, but its WAL commits {} rows: {}",
                node.name,
                node.wal.end(),
                rows.len(),
                expected.len(),
                first_difference(&rows, &expected)
            ),
        });
    }
    None
}

/// [`check_after_crash_recovery`] without sorting the table (unless its
/// keys are sparse): one pass over the node's visible rows, block by
/// block, that (1) collects them for the ledger, which gets them tallied
/// by key (or sorted, for sparse keys: a short run's table) with the same
/// first lost write and message as `Ledger::check_node` on the sorted
/// rows, and (2) compares each block's
/// visible rows, in page order, with the rows the WAL implies for that
/// block. Equal blocks mean equal sorted tables, so `recovery_is_exact`
/// holds. `Some(verdict)` when that decides it; `None` (a block differs:
/// the full comparison words the difference) to fall back.
fn fast_after_crash_recovery(
    cluster: &Cluster,
    node: &Node,
    implied: &crate::wal::RemovedWal,
) -> Option<Option<Violation>> {
    let mut rows: Vec<crate::heap::Row> = Vec::new();
    let mut blocks_equal = true;
    let blocks = (node.data.len() as usize).max(implied.pages.len());
    for blk in (0..blocks).map(BlockNumber::from_index) {
        let mut expected = implied.visible_rows_of_block(blk);
        let mine = (blk.0 < node.data.len())
            .then(|| node.visible_rows_of_page(node.current_page(blk)))
            .into_iter()
            .flatten();
        for row in mine {
            // Compared until the first difference.
            if blocks_equal && Some(row) != expected.next() {
                blocks_equal = false;
            }
            rows.push(row);
        }
        if blocks_equal && expected.next().is_some() {
            blocks_equal = false;
        }
    }
    // The ledger wants the rows by key: a dense tally when the keys are
    // dense enough (a long run's table), else sorted (a short run's).
    let max_key = rows.iter().map(|r| r.0 as usize).max().unwrap_or(0);
    let lost = if max_key <= 4 * rows.len() + 1024 {
        // Per key: how many visible rows, and the payload of the last one.
        let mut by_key: Vec<(u32, u64)> = vec![(0, 0); max_key + 1];
        for &(key, payload) in &rows {
            let e = &mut by_key[key as usize];
            e.0 += 1;
            e.1 = payload;
        }
        let seen = |key: u32| by_key.get(key as usize).map_or((0, 0), |&(n, p)| (n as usize, p));
        cluster.ledger.check_node_by_key(node.id, &node.name, seen)
    } else {
        rows.sort_unstable();
        cluster.ledger.check_node(node.id, &node.name, &rows)
    };
    if let Some(detail) = lost {
        return Some(Some(Violation {
            invariant: Invariant::AcknowledgedCommitsSurvive,
            node: Some(node.id),
            detail: format!("after crash recovery: {detail}"),
        }));
    }
    blocks_equal.then_some(None)
}

/// `acknowledged_commits_survive` on one node.
pub fn check_acknowledged(cluster: &Cluster, node: &Node, when: &str) -> Option<Violation> {
    check_acknowledged_rows(cluster, node, &node.visible_rows(), when)
}

fn check_acknowledged_rows(
    cluster: &Cluster,
    node: &Node,
    rows: &[crate::heap::Row],
    when: &str,
) -> Option<Violation> {
    cluster.ledger.check_node(node.id, &node.name, rows).map(|detail| Violation {
        invariant: Invariant::AcknowledgedCommitsSurvive,
        node: Some(node.id),
        detail: format!("after {when}: {detail}"),
    })
}

/// Checks at the end of a run, once the cluster quiesced.
pub fn check_final(cluster: &Cluster) -> Option<Violation> {
    cluster
        .nodes
        .iter()
        .filter(|n| n.status != Status::Down)
        .find_map(|n| check_acknowledged(cluster, n, "the run quiesced"))
}

/// `standby_covers_primary_data`, the 2013 proposal's premise: no page in
/// a primary's data files (or one in crash recovery) is ahead of what its
/// synchronous standby candidates have flushed. O(nodes) per step.
pub fn check_standby_covers_primary_data(cluster: &mut Cluster) -> Option<Violation> {
    find_uncovered_data(cluster).map(|u| describe_uncovered_data(cluster, u))
}

/// What [`check_standby_covers_primary_data`] found, before it is worded:
/// (node, block, page LSN, covered up to, the covering standby).
pub type UncoveredData = (usize, BlockNumber, Lsn, Lsn, NodeId);

/// [`check_standby_covers_primary_data`] without building the message
/// (the cluster words it only when it will keep it: an observation already
/// made is not worded again every step, issue 11).
pub fn find_uncovered_data(cluster: &mut Cluster) -> Option<UncoveredData> {
    for p in 0..cluster.nodes.len() {
        if !cluster.nodes[p].gucs.names.is_sync() {
            continue;
        }
        let Some((covered, standby)) = covering_standby(cluster, p) else { continue };
        let node = &mut cluster.nodes[p];
        if let Some((blk, lsn)) = node.data.highest_above(covered) {
            return Some((p, blk, lsn, covered, standby));
        }
    }
    None
}

/// The violation for what [`find_uncovered_data`] found.
pub fn describe_uncovered_data(
    cluster: &Cluster,
    (p, blk, lsn, covered, standby): UncoveredData,
) -> Violation {
    let node = &cluster.nodes[p];
    let when = if node.status == Status::Recovery {
        " during crash recovery, when nothing waits for a standby,"
    } else {
        ""
    };
    let standby = &cluster.nodes[standby.index()].name;
    let name = &node.name;
    Violation {
        invariant: Invariant::StandbyCoversPrimaryData,
        node: Some(NodeId::from_index(p)),
        detail: format!(
            "{name} has{when} block {blk} of relation test in its data file with page LSN {lsn}, but its synchronous standby {standby} has flushed WAL only to {covered}: if {name} failed now and {standby} were promoted, {name}'s data files would be ahead of the new primary"
        ),
    }
}

/// For node `p` writing data files (a primary, or a former one in crash
/// recovery): the highest WAL flushed by a synchronous standby candidate
/// that caught up with it and still follows its history, and which one.
fn covering_standby(cluster: &Cluster, p: usize) -> Option<(Lsn, NodeId)> {
    let node = &cluster.nodes[p];
    let writer =
        node.is_primary_or_shutting_down() || (node.status == Status::Recovery && !node.is_standby());
    if !writer {
        return None;
    }
    let names = &node.gucs.names;
    cluster
        .nodes
        .iter()
        .filter(|s| s.synced_to == Some(node.id) && s.standby_signal && names.priority(&s.name) > 0)
        .filter(|s| follows(s, node))
        .map(|s| (s.wal.flush_lsn(), s.id))
        .max()
}

/// Whether standby `s`'s WAL is a prefix of `p`'s history: nothing on a
/// timeline `p` left, past the point where `p` left it. (A rejoining old
/// primary with diverged WAL is not yet covering anything.)
fn follows(s: &Node, p: &Node) -> bool {
    let Some(last) = s.wal.records().last() else { return true };
    if last.tli == p.tli {
        return true;
    }
    p.history.switch_point(p.tli, last.tli).is_some_and(|sp| s.wal.end() <= sp)
}

/// `timelines_consistent`: every history file node `id` has equals the
/// file of the same timeline on every other node.
pub fn check_timelines(cluster: &Cluster, id: NodeId) -> Option<Violation> {
    let n = &cluster.nodes[id.index()];
    for tli in n.history.timelines() {
        for other in cluster.nodes.iter().filter(|o| o.id != id && o.history.has(tli)) {
            if other.history.entries(tli) != n.history.entries(tli) {
                return Some(Violation {
                    invariant: Invariant::TimelinesConsistent,
                    node: Some(id),
                    detail: format!(
                        "{} and {} both have {} but they differ: {} says {:?}, {} says {:?}; two servers created timeline {tli} independently",
                        n.name,
                        other.name,
                        crate::timeline::History::file_name(tli),
                        n.name,
                        n.history.render(tli),
                        other.name,
                        other.history.render(tli)
                    ),
                });
            }
        }
    }
    None
}

/// `converges`: once quiesced, every standby streaming from the current
/// primary has replayed all of its WAL and shows exactly its rows (the
/// seed experiment's `count(*), sum(hashtext(test::text))`), and every
/// standby whose upstream is up streams that upstream's current timeline
/// unless its rejoin was refused or its startup process cannot read the
/// WAL it has (the outcomes `refused` and `stuck`). Returns the names of
/// the standbys that converged.
pub fn check_converges(cluster: &Cluster) -> Result<Vec<String>, Violation> {
    let Some(p) = cluster.current_primary(None) else { return Ok(Vec::new()) };
    let primary = &cluster.nodes[p.index()];
    let want = primary.visible_rows();
    let want_sum = crate::heap::RowSummary::of(&want);
    let mut converged = Vec::new();
    for s in &cluster.nodes {
        if !s.is_standby() || s.walrcv.refused.is_some() {
            continue;
        }
        let streaming = cluster.conns.iter().any(|c| c.downstream == s.id && cluster.on_current_timeline(c));
        if !streaming {
            if let Some(v) = not_following(cluster, s) {
                return Err(v);
            }
            continue;
        }
        let replayed = s.startup.as_ref().map_or(Lsn(0), |st| st.replayed);
        let rows = s.visible_rows();
        let got = crate::heap::RowSummary::of(&rows);
        if replayed < primary.wal.flush_lsn() || rows != want {
            let why = if rows == want {
                format!("the rows agree, but {} has not replayed the primary's WAL to its end", s.name)
            } else {
                differ(
                    &rows,
                    &want,
                    &format!("is visible on {} but not on the primary", s.name),
                    &format!("is visible on the primary but not on {}", s.name),
                )
            };
            return Err(Violation {
                invariant: Invariant::Converges,
                node: Some(s.id),
                detail: format!(
                    "after the cluster quiesced, {} (replayed to {replayed}) shows count={} sum={} but the primary {} (flushed to {}) shows count={} sum={}: {}",
                    s.name,
                    got.count,
                    got.sum,
                    primary.name,
                    primary.wal.flush_lsn(),
                    want_sum.count,
                    want_sum.sum,
                    why
                ),
            });
        }
        converged.push(s.name.clone());
    }
    Ok(converged)
}

/// A standby that ended neither refused nor stuck reading WAL, whose
/// upstream is up and accepts replication, but that does not stream that
/// upstream's current timeline: it stays behind on an old timeline (or
/// disconnected) without any message, so it has not converged.
fn not_following(cluster: &Cluster, s: &Node) -> Option<Violation> {
    let stuck_reading = s.startup.as_ref().is_some_and(|st| st.read_error.is_some());
    if s.status != Status::Recovery || stuck_reading {
        return None;
    }
    let up = &cluster.nodes[(s.upstream?).index()];
    if !up.accepts_replication() || cluster.partitions.is_cut(s.id, up.id) {
        return None;
    }
    let how = match cluster.conns.iter().find(|c| c.downstream == s.id) {
        Some(c) => format!("still streams timeline {} from {} (sent up to {})", c.tli, up.name, c.sent),
        None => format!("is not connected to {}", up.name),
    };
    Some(Violation {
        invariant: Invariant::Converges,
        node: Some(s.id),
        detail: format!(
            "after the cluster quiesced, {} (timeline {}, replayed to {}) {how}, whose current timeline is {}: it has not refused and is not stuck, yet it does not follow its upstream",
            s.name,
            s.tli,
            s.startup.as_ref().map_or(Lsn(0), |st| st.replayed),
            up.tli
        ),
    })
}

fn first_difference(have: &[crate::heap::Row], want: &[crate::heap::Row]) -> String {
    differ(
        have,
        want,
        "is visible but no committed WAL record wrote it",
        "was committed in WAL but is not visible",
    )
}

/// The first row that `have` and `want` disagree on, in the words of the
/// comparison: `extra` for a row only `have` shows, `missing` for one
/// only `want` has.
fn differ(have: &[crate::heap::Row], want: &[crate::heap::Row], extra: &str, missing: &str) -> String {
    use crate::heap::md5_text;
    for (k, p) in have {
        if want.binary_search(&(*k, *p)).is_err() {
            return format!("row id={k} info='{}' {extra}", md5_text(*p));
        }
    }
    for (k, p) in want {
        if have.binary_search(&(*k, *p)).is_err() {
            return format!("row id={k} info='{}' {missing}", md5_text(*p));
        }
    }
    "the rows differ".to_string()
}

/// `failback_premise` for old primary `id` rejoining after a failover whose
/// timeline ends at `fork` in its new upstream's history: the first page
/// of its data files (OS cache, then disk) beyond the fork point.
pub fn check_failback_premise(node: &Node, fork: Lsn) -> Option<Violation> {
    let page = |image: &dyn Fn(BlockNumber) -> Lsn| {
        BlockNumber::all(node.data.len()).map(|b| (b, image(b))).find(|&(_, l)| l > fork)
    };
    let os = page(&|b| node.data.read(b).lsn);
    let disk = page(&|b| node.data.durable(b).lsn);
    let (where_, (blk, lsn)) = match (os, disk) {
        (_, Some(d)) => ("on disk", d),
        (Some(o), None) => ("in the OS cache", o),
        (None, None) => return None,
    };
    Some(Violation {
        invariant: Invariant::FailbackPremise,
        node: Some(node.id),
        detail: format!(
            "{} rejoins after a failover that forked its timeline at {fork}, but block {blk} of relation test {where_} has page LSN {lsn}: its data files are ahead of the new primary's history",
            node.name
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::Page;
    use crate::ids::Tli;
    use crate::syncrep::StandbyNames;
    use crate::testkit::quiesced;

    #[test]
    fn the_table_names_each_invariant_once() {
        for inv in Invariant::ALL {
            assert_eq!(TABLE.iter().filter(|c| c.invariant == inv).count(), 1, "{inv}");
            assert_eq!(checker(inv).invariant, inv);
            assert!(!checker(inv).when.is_empty() && !checker(inv).checked_by.is_empty(), "{inv}");
        }
        assert_eq!(TABLE.len(), Invariant::ALL.len());
        let observed: Vec<_> = TABLE.iter().filter(|c| c.observation_only).map(|c| c.invariant).collect();
        assert_eq!(observed, [Invariant::FailbackPremise]);
    }

    #[test]
    fn the_table_names_functions_that_exist() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for c in TABLE {
            for site in c.checked_by {
                let (file, f) = site.split_once(": ").expect("file.rs: fn");
                let text = std::fs::read_to_string(src.join(file)).unwrap();
                assert!(
                    text.contains(&format!("fn {f}(")) || text.contains(&format!("fn {f}<")),
                    "{}: {file} has no fn {f}",
                    c.invariant
                );
                // And that function names the invariant, or calls one that does.
                assert!(
                    text.contains(&format!("Invariant::{:?}", c.invariant)),
                    "{file} never builds {}",
                    c.invariant
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_print() {
        for inv in Invariant::ALL {
            assert_eq!(Invariant::from_name(inv.name()), Some(inv));
            assert_eq!(inv.to_string(), inv.name());
        }
        assert_eq!(Invariant::from_name("converges"), Some(Invariant::Converges));
        assert_eq!(Invariant::from_name("Converges"), None);
        assert_eq!(Invariant::from_name(""), None);
        let names: std::collections::BTreeSet<_> = Invariant::ALL.iter().map(|i| i.name()).collect();
        assert_eq!(names.len(), Invariant::ALL.len(), "names are distinct");
        assert_eq!(Invariant::NoSilentDivergence.name(), "no_silent_divergence");
        let v = Violation { invariant: Invariant::WalBeforeData, node: None, detail: "x".into() };
        assert_eq!(v.to_string(), "wal_before_data: x");
    }

    #[test]
    fn a_streaming_standby_that_replayed_everything_converges() {
        let c = quiesced(2, 400);
        assert!(c.nodes[0].wal.flush_lsn() > Lsn(0));
        assert!(!c.nodes[0].visible_rows().is_empty(), "the load committed rows");
        assert_eq!(check_converges(&c).unwrap(), ["node2", "node3"]);
        assert_eq!(check_final(&c), None);
    }

    #[test]
    fn a_standby_behind_or_with_other_rows_does_not_converge() {
        // Replay stopped short of the primary's flushed WAL.
        let mut c = quiesced(1, 400);
        let st = c.nodes[1].startup.as_mut().unwrap();
        let end = st.replayed;
        st.replayed = Lsn(end.0 - 1);
        let v = check_converges(&c).unwrap_err();
        assert_eq!((v.invariant, v.node), (Invariant::Converges, Some(NodeId(1))));
        assert!(v.detail.contains(&format!("replayed to {}", Lsn(end.0 - 1))), "{}", v.detail);
        assert!(
            v.detail.ends_with("the rows agree, but node2 has not replayed the primary's WAL to its end"),
            "{}",
            v.detail
        );
        // Replayed to the end but a row is missing.
        let mut c = quiesced(1, 400);
        let b = (0..c.nodes[1].data.len())
            .find(|&b| !c.nodes[1].data.read(BlockNumber(b)).tuples.is_empty())
            .unwrap();
        let lsn = c.nodes[1].data.read(BlockNumber(b)).lsn;
        c.nodes[1].data.replace_block(BlockNumber(b), Page { lsn, tuples: Vec::new() });
        c.nodes[1].buffers.clear();
        let v = check_converges(&c).unwrap_err();
        assert!(v.detail.contains("is visible on the primary but not on node2"), "{}", v.detail);
        assert!(
            !v.detail.contains("WAL"),
            "converges compares rows with the primary's, not WAL: {}",
            v.detail
        );
        // And the rows acknowledged on node2... the ledger knows only the primary's acks.
    }

    #[test]
    fn a_standby_left_on_an_old_timeline_does_not_converge() {
        // The walsender never ended the historic timeline: the connection
        // streams a timeline the upstream left.
        let mut c = quiesced(1, 400);
        let up_tli = c.nodes[0].tli;
        c.conns[0].tli = up_tli.next();
        let v = check_converges(&c).unwrap_err();
        assert_eq!((v.invariant, v.node), (Invariant::Converges, Some(NodeId(1))));
        assert!(v.detail.contains(&format!("still streams timeline {}", up_tli.next())), "{}", v.detail);
        // Not connected at all, though the upstream accepts replication.
        let mut c = quiesced(1, 400);
        c.conns.clear();
        let v = check_converges(&c).unwrap_err();
        assert!(v.detail.contains("is not connected to node1"), "{}", v.detail);
    }

    #[test]
    fn refused_stuck_or_orphaned_standbys_are_legitimate_endings() {
        let memo = crate::node::RefusalMemo {
            upstream: NodeId(0),
            upstream_flush: Lsn(0),
            upstream_tli: Tli(1),
            local_end: Lsn(0),
        };
        // Refused: even connected on an old timeline, not reported.
        let mut c = quiesced(1, 400);
        c.conns[0].tli = c.conns[0].tli.next();
        c.nodes[1].walrcv.refused = Some(memo);
        assert_eq!(check_converges(&c).unwrap(), Vec::<String>::new());
        // Refused and behind: not judged either.
        let mut c = quiesced(1, 400);
        c.nodes[1].walrcv.refused = Some(memo);
        c.nodes[1].startup.as_mut().unwrap().replayed = Lsn(0);
        assert_eq!(check_converges(&c).unwrap(), Vec::<String>::new());
        // Stuck reading WAL, not connected.
        let mut c = quiesced(1, 400);
        c.conns.clear();
        c.nodes[1].startup.as_mut().unwrap().read_error = Some("invalid record length".into());
        assert_eq!(check_converges(&c).unwrap(), Vec::<String>::new());
        // The upstream is down: nothing to follow.
        let mut c = quiesced(1, 400);
        c.conns.clear();
        c.nodes[1].upstream = Some(NodeId(0));
        let mut c2 = c.clone();
        c2.nodes[0].status = Status::ShuttingDown;
        assert_eq!(check_converges(&c2).unwrap(), Vec::<String>::new(), "no primary");
        // With two standbys, one cascading from the other that is not
        // consistent yet: the cascading one is not reported.
        let mut c = quiesced(2, 400);
        c.conns.retain(|x| x.downstream != NodeId(2));
        c.nodes[2].upstream = Some(NodeId(1));
        c.nodes[1].startup.as_mut().unwrap().consistent = false;
        assert_eq!(check_converges(&c).unwrap(), ["node2"]);
        c.nodes[1].startup.as_mut().unwrap().consistent = true;
        assert!(check_converges(&c).unwrap_err().detail.contains("node3"));
        // Partitioned from its upstream: not reported.
        c.partitions.cut(NodeId(2), NodeId(1));
        assert_eq!(check_converges(&c).unwrap(), ["node2"]);
        // A node that is not a standby (down) is not judged.
        let mut c = quiesced(1, 400);
        c.conns.clear();
        c.nodes[1].status = Status::Down;
        assert_eq!(check_converges(&c).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn follows_is_about_the_switch_point() {
        let mut c = quiesced(1, 400);
        let end = c.nodes[1].wal.end();
        assert!(follows(&c.nodes[1], &c.nodes[0]), "same timeline");
        // The primary moved to timeline 2 at the standby's end: a prefix.
        c.nodes[0].tli = Tli(2);
        c.nodes[0].history.add_child(Tli(2), Tli(1), end, "no recovery target specified");
        assert!(follows(&c.nodes[1], &c.nodes[0]), "switch point at the end");
        c.nodes[0].history.add_child(Tli(2), Tli(1), Lsn(end.0 - 1), "no recovery target specified");
        assert!(!follows(&c.nodes[1], &c.nodes[0]), "WAL beyond the switch point");
        // A timeline the primary's history does not know.
        c.nodes[0].history = crate::timeline::History::default();
        assert!(!follows(&c.nodes[1], &c.nodes[0]));
        // No WAL at all follows anything.
        c.nodes[1].wal.truncate(Lsn(0));
        assert!(follows(&c.nodes[1], &c.nodes[0]));
    }

    #[test]
    fn covering_standby_is_the_furthest_sync_candidate_following_the_writer() {
        let mut c = quiesced(2, 400);
        for s in 1..=2 {
            c.nodes[s].synced_to = Some(NodeId(0));
        }
        let flush = c.nodes[1].wal.flush_lsn();
        assert_eq!(covering_standby(&c, 0).map(|x| x.0), Some(flush));
        // node3 lags: node2 covers.
        let early = c.nodes[2].wal.records()[3].end;
        c.nodes[2].wal.truncate(early);
        assert_eq!(covering_standby(&c, 0), Some((flush, NodeId(1))));
        // node2 not a sync candidate (priority 0): node3 covers.
        c.nodes[0].gucs.names = StandbyNames::parse("node3").unwrap();
        assert_eq!(covering_standby(&c, 0), Some((early, NodeId(2))));
        // node3 not caught up with node1: nothing covers.
        c.nodes[2].synced_to = None;
        assert_eq!(covering_standby(&c, 0), None);
        c.nodes[2].synced_to = Some(NodeId(0));
        c.nodes[2].standby_signal = false;
        assert_eq!(covering_standby(&c, 0), None, "no standby.signal");
        c.nodes[2].standby_signal = true;
        // A standby is not a writer; a primary in crash recovery is.
        assert_eq!(covering_standby(&c, 1), None);
        c.nodes[0].status = Status::Down;
        assert_eq!(covering_standby(&c, 0), None);
        c.nodes[0].status = Status::Recovery;
        assert_eq!(covering_standby(&c, 0), Some((early, NodeId(2))));
        // Diverged: node3's WAL runs past node1's switch to timeline 2.
        c.nodes[0].tli = Tli(2);
        c.nodes[0].history.add_child(Tli(2), Tli(1), Lsn(early.0 - 1), "x");
        assert_eq!(covering_standby(&c, 0), None);
    }

    #[test]
    fn standby_covers_primary_data_names_the_page_beyond_the_standby() {
        let mut c = quiesced(1, 400);
        c.nodes[1].synced_to = Some(NodeId(0));
        assert_eq!(check_standby_covers_primary_data(&mut c), None);
        let covered = c.nodes[1].wal.flush_lsn();
        let page = c.nodes[0].data.read(BlockNumber(0)).clone();
        c.nodes[0].data.replace_block(BlockNumber(0), Page { lsn: covered, ..page.clone() });
        assert_eq!(check_standby_covers_primary_data(&mut c), None, "at the boundary");
        c.nodes[0].data.replace_block(BlockNumber(0), Page { lsn: Lsn(covered.0 + 8), ..page });
        let v = check_standby_covers_primary_data(&mut c).unwrap();
        assert_eq!((v.invariant, v.node), (Invariant::StandbyCoversPrimaryData, Some(NodeId(0))));
        assert!(v.detail.starts_with("node1 has block 0 of relation test"), "{}", v.detail);
        c.nodes[0].status = Status::Recovery;
        let v = check_standby_covers_primary_data(&mut c).unwrap();
        assert!(v.detail.starts_with("node1 has during crash recovery"), "{}", v.detail);
        // Asynchronous: not judged.
        c.nodes[0].gucs.names = StandbyNames::parse("").unwrap();
        assert_eq!(check_standby_covers_primary_data(&mut c), None);
    }

    #[test]
    fn wal_before_data_names_a_page_or_clog_page_ahead_of_flushed_wal() {
        let mut c = quiesced(0, 200);
        let n = &mut c.nodes[0];
        assert_eq!(check_wal_before_data(n), None);
        let flush = n.wal.flush_lsn();
        let page = n.data.read(BlockNumber(1)).clone();
        n.data.write(BlockNumber(1), Page { lsn: flush, ..page.clone() });
        assert_eq!(check_wal_before_data(n), None, "at the boundary");
        n.data.write(BlockNumber(1), Page { lsn: Lsn(flush.0 + 8), ..page.clone() });
        let v = check_wal_before_data(n).unwrap();
        assert_eq!(v.invariant, Invariant::WalBeforeData);
        assert!(v.detail.starts_with("node1: block 1 of relation test"), "{}", v.detail);
        n.data.write(BlockNumber(1), page);
        n.data.recompute_max_lsn();
        let mut clog = n.clog.file.read(BlockNumber(0)).clone();
        clog.lsn = Lsn(flush.0 + 8);
        n.clog.file.write(BlockNumber(0), clog);
        let v = check_wal_before_data(n).unwrap();
        assert!(v.detail.starts_with("node1: CLOG page 0"), "{}", v.detail);
    }

    #[test]
    fn recovery_is_exact_and_acknowledged_commits() {
        let mut c = quiesced(0, 300);
        assert_eq!(check_after_crash_recovery(&c, NodeId(0)), None);
        // Rows no WAL commits.
        let first_commit =
            c.nodes[0].wal.records().iter().find(|r| matches!(r.body, crate::wal::RecordBody::Commit));
        let keep = first_commit.unwrap().end;
        let mut d = c.clone();
        d.nodes[0].wal.truncate(keep);
        let v = check_after_crash_recovery(&d, NodeId(0)).unwrap();
        assert_eq!(v.invariant, Invariant::RecoveryIsExact);
        assert!(v.detail.contains("is visible but no committed WAL record wrote it"), "{}", v.detail);
        // Acknowledged rows gone.
        for b in 0..c.nodes[0].data.len() {
            let lsn = c.nodes[0].data.read(BlockNumber(b)).lsn;
            c.nodes[0].data.replace_block(BlockNumber(b), Page { lsn, tuples: Vec::new() });
        }
        c.nodes[0].buffers.clear();
        let v = check_after_crash_recovery(&c, NodeId(0)).unwrap();
        assert_eq!(v.invariant, Invariant::AcknowledgedCommitsSurvive);
        assert!(v.detail.starts_with("after crash recovery: "), "{}", v.detail);
        assert_eq!(check_final(&c).unwrap().invariant, Invariant::AcknowledgedCommitsSurvive);
        c.nodes[0].status = Status::Down;
        assert_eq!(check_final(&c), None, "a node that is down is not judged");
    }

    #[test]
    fn timelines_consistent_compares_history_files() {
        let mut c = quiesced(1, 100);
        assert_eq!(check_timelines(&c, NodeId(0)), None);
        c.nodes[0].history.add_child(Tli(2), Tli(1), Lsn(0x100), "a");
        assert_eq!(check_timelines(&c, NodeId(0)), None, "only node1 has timeline 2");
        c.nodes[1].history.add_child(Tli(2), Tli(1), Lsn(0x100), "a");
        assert_eq!(check_timelines(&c, NodeId(1)), None, "equal files");
        c.nodes[1].history.add_child(Tli(2), Tli(1), Lsn(0x200), "b");
        let v = check_timelines(&c, NodeId(1)).unwrap();
        assert_eq!((v.invariant, v.node), (Invariant::TimelinesConsistent, Some(NodeId(1))));
        assert!(v.detail.starts_with("node2 and node1 both have 00000002.history"), "{}", v.detail);
    }

    #[test]
    fn failback_premise_names_disk_before_os_cache() {
        let mut c = quiesced(0, 300);
        let n = &mut c.nodes[0];
        let top = (0..n.data.len()).map(|b| n.data.read(BlockNumber(b)).lsn).max().unwrap();
        assert_eq!(check_failback_premise(n, top), None, "nothing beyond the fork");
        let page = n.data.read(BlockNumber(2)).clone();
        n.data.write(BlockNumber(2), Page { lsn: Lsn(top.0 + 8), ..page.clone() });
        let v = check_failback_premise(n, top).unwrap();
        assert_eq!(v.invariant, Invariant::FailbackPremise);
        assert!(v.detail.contains("block 2 of relation test in the OS cache"), "{}", v.detail);
        n.data.fsync();
        let v = check_failback_premise(n, top).unwrap();
        assert!(v.detail.contains("block 2 of relation test on disk"), "{}", v.detail);
    }
}
