//! Whole runs of the model, without the simulator ([`walk`]): every
//! PostgreSQL rule that `[rules]` can switch off is caught by its invariant
//! within a stated number of seeds, the same settings with the rule on
//! pass, and the failback strategies end as the findings say they do.
//! Each test is a property of whole runs, so a bug anywhere on the path
//! (not only in the function that names the rule) fails it.

use crate::event::RefusalKind;
use crate::invariants::Invariant;
use crate::marks::{Mark, Marks};
use crate::settings::Settings;
use crate::testkit::{End, Walk, settings, walk};

const CONFIGS: &[(&str, &[&str])] = &[
    ("default", &[]),
    (
        "single",
        &[
            "cluster.standbys=0",
            "operator=[]",
            "synchronous_standby_names=\"\"",
            "faults.power_loss=0.01",
            "faults.process_crash=0.01",
            "scheduler.weights.checkpoint_request=5",
        ],
    ),
    (
        "nofpw",
        &[
            "cluster.standbys=0",
            "operator=[]",
            "synchronous_standby_names=\"\"",
            "full_page_writes=false",
            "faults.process_crash=0.01",
        ],
    ),
    (
        "hint",
        &[
            "synchronous_commit=\"off\"",
            "full_page_writes=false",
            "faults.process_crash=0",
            "faults.power_loss=0.01",
            "cluster.rel_pages=4",
            "workload.select_percent=50",
            "scheduler.weights.wal_writer=1",
            "scheduler.weights.bgwriter=10",
            "operator=[]",
        ],
    ),
    (
        "ctl",
        &[
            "wal_segment_size=\"16kB\"",
            "max_wal_size=\"32kB\"",
            "min_wal_size=\"32kB\"",
            "scheduler.steps=8000",
            "scheduler.weights.checkpoint_request=4",
            "faults.power_loss=0.005",
        ],
    ),
    (
        "keep",
        &[
            "wal_segment_size=\"16kB\"",
            "max_wal_size=\"32kB\"",
            "min_wal_size=\"32kB\"",
            "synchronous_standby_names=\"\"",
            "operator=[]",
            "scheduler.steps=4000",
            "scheduler.weights.checkpoint_request=4",
            "wal_keep_size=\"4MB\"",
        ],
    ),
    ("rewind", &["failover.failback=\"rewind\"", "wal_log_hints=true", "wal_keep_size=\"256kB\""]),
    ("rewind_nohints", &["failover.failback=\"rewind\"", "wal_keep_size=\"256kB\""]),
    ("truncate_df", &["failover.failback=\"truncate\"", "synchronous_transfer=\"data_flush\""]),
    ("two", &["cluster.standbys=2", "wal_keep_size=\"256kB\"", "faults.power_loss=0.005"]),
    (
        "archive",
        &[
            "archive_mode=\"on\"",
            "restore_command=true",
            "failover.failback=\"rewind\"",
            "wal_log_hints=true",
        ],
    ),
    ("basebackup", &["failover.failback=\"basebackup\"", "faults.power_loss=0.005"]),
    (
        "images",
        &[
            "cluster.standbys=0",
            "operator=[]",
            "synchronous_standby_names=\"\"",
            "faults.power_loss=0.01",
            "faults.process_crash=0.002",
            "faults.crash_images=8",
        ],
    ),
    (
        "apply",
        &[
            "synchronous_commit=\"remote_apply\"",
            "failover.failback=\"rewind\"",
            "wal_log_hints=true",
            "wal_keep_size=\"256kB\"",
        ],
    ),
];

/// Where each configuration comes from is said at its use.
fn config(name: &str) -> &'static [&'static str] {
    CONFIGS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s).expect("a known configuration")
}

fn walks(s: &Settings, seeds: u64) -> Vec<Walk> {
    (1..=seeds).map(|seed| walk(s, seed, false)).collect()
}

fn union(ws: &[Walk]) -> Marks {
    ws.iter().fold(Marks::default(), |m, w| m.union(w.marks))
}

/// Switching `rule` off in configuration `cfg` breaks `want` within
/// `within` seeds, and no other invariant breaks first; with the rule on,
/// the same seeds break nothing.
fn caught(rule: &str, cfg: &str, want: Invariant, within: u64) {
    let on = config(cfg);
    let off_set = format!("rules.{rule}=false");
    let mut off = on.to_vec();
    off.push(&off_set);
    let s = settings(&off);
    let hit = (1..=within).find_map(|seed| match walk(&s, seed, false).end {
        End::Violation(v) => Some((seed, v)),
        _ => None,
    });
    let (seed, v) = hit.unwrap_or_else(|| panic!("{rule} off in {cfg}: no violation within {within} seeds"));
    assert_eq!(v.invariant, want, "{rule} off in {cfg}, seed {seed}: {v}");
    let s = settings(on);
    for seed in 1..=seed {
        if let End::Violation(v) = walk(&s, seed, false).end {
            panic!("{cfg} with every rule on, seed {seed}: {v}");
        }
    }
}

#[test]
fn wal_before_data_off_is_caught() {
    caught("wal_before_data", "single", Invariant::WalBeforeData, 10);
}

#[test]
fn fsync_before_control_update_off_loses_acknowledged_commits() {
    caught("fsync_before_control_update", "single", Invariant::AcknowledgedCommitsSurvive, 30);
}

#[test]
fn checkpoint_not_waiting_for_commits_loses_acknowledged_commits() {
    caught("checkpoint_waits_for_commits", "rewind", Invariant::AcknowledgedCommitsSurvive, 30);
}

#[test]
fn redo_without_the_page_lsn_check_is_caught() {
    // Without full-page images replay meets pages newer than the record.
    caught("redo_skips_newer_pages", "nofpw", Invariant::RecoveryIsExact, 10);
}

#[test]
fn hint_bits_before_the_commit_flush_are_caught() {
    caught("hint_bits_wait_for_commit_flush", "hint", Invariant::RecoveryIsExact, 30);
}

#[test]
fn no_sync_of_the_data_directory_after_a_crash_is_caught() {
    caught("sync_data_directory_after_crash", "keep", Invariant::Converges, 30);
}

#[test]
fn sending_unflushed_wal_is_caught() {
    caught("walsender_sends_only_flushed", "two", Invariant::NoSilentDivergence, 30);
}

#[test]
fn reporting_before_fsync_loses_acknowledged_commits() {
    caught("walreceiver_reports_after_fsync", "basebackup", Invariant::AcknowledgedCommitsSurvive, 30);
}

#[test]
fn removing_wal_a_standby_needs_is_caught() {
    caught("keep_wal_for_standbys", "default", Invariant::WalSegmentsKept, 5);
}

#[test]
fn pg_control_left_unsynced_is_caught() {
    caught("fsync_control_file", "single", Invariant::WalSegmentsKept, 10);
}

/// Every walk of `cfg` ends `Ok`; the marks every walk and the walks
/// together must reach.
fn all_ok(cfg: &str, seeds: u64, each: &[Mark], together: &[Mark]) -> Vec<Walk> {
    let ws = walks(&settings(config(cfg)), seeds);
    for (i, w) in ws.iter().enumerate() {
        assert_eq!(w.end, End::Ok, "{cfg} seed {}", i + 1);
        for m in each {
            assert!(w.marks.contains(*m), "{cfg} seed {}: {} not reached", i + 1, m.name());
        }
    }
    let all = union(&ws);
    for m in together {
        assert!(all.contains(*m), "{cfg}: no seed reached {}", m.name());
    }
    ws
}

#[test]
fn crashes_and_power_losses_on_one_node_lose_nothing() {
    all_ok("single", 12, &[], &[Mark::PowerLossHitUnsyncedWrite, Mark::SegmentRemoved]);
}

#[test]
fn stock_postgres_with_pg_rewind_converges_when_wal_is_kept() {
    // Finding 1: pg_rewind with wal_log_hints, the old primary's WAL kept.
    all_ok(
        "rewind",
        10,
        &[Mark::FailbackConverged, Mark::SyncRepWaited],
        &[Mark::Restartpoint, Mark::PowerLossHitUnsyncedWrite],
    );
}

#[test]
fn remote_apply_with_pg_rewind_converges() {
    all_ok("apply", 10, &[Mark::FailbackConverged, Mark::SyncRepWaited], &[]);
}

#[test]
fn a_fresh_base_backup_always_converges() {
    // Whatever the old primary had, a base backup replaces it.
    all_ok("basebackup", 10, &[Mark::FailbackConverged], &[Mark::Restartpoint]);
}

#[test]
fn pg_rewind_refuses_without_wal_log_hints() {
    // pg_rewind: "target server needs to use either data checksums or
    // wal_log_hints = on"; walsim has no data checksums.
    for (i, w) in walks(&settings(config("rewind_nohints")), 10).iter().enumerate() {
        assert_eq!(w.end, End::Refused(RefusalKind::RewindNeedsHints), "seed {}", i + 1);
        assert!(!w.marks.contains(Mark::FailbackConverged), "seed {}", i + 1);
    }
}

#[test]
fn naive_failback_is_refused_by_postgres_checks_never_silently_wrong() {
    // Stock PostgreSQL without pg_rewind: the old primary's extra WAL makes
    // the standby refuse the new timeline (the seed experiment's "requested
    // timeline 2 forked off ... before current recovery point", or "not in
    // this server's history"); it never streams a diverged history.
    let ws = walks(&settings(config("default")), 30);
    let mut kinds = std::collections::BTreeSet::new();
    for (i, w) in ws.iter().enumerate() {
        match &w.end {
            End::Refused(k) => {
                kinds.insert(*k);
            }
            End::Ok => assert!(w.marks.contains(Mark::FailbackConverged), "seed {}", i + 1),
            e => panic!("seed {}: {e:?}", i + 1),
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [RefusalKind::NotInHistory, RefusalKind::ForkedBeforeRecoveryPoint]
    );
    let refused = ws.iter().filter(|w| matches!(w.end, End::Refused(_))).count();
    assert!(refused >= 20, "naive failback refused in {refused} of 30");
}

#[test]
fn the_proposal_without_rewind_breaks_its_own_premise() {
    // Finding 3: data_flush with the WAL after the fork point dropped.
    let ws = walks(&settings(config("truncate_df")), 20);
    let mut seen = std::collections::BTreeSet::new();
    for (i, w) in ws.iter().enumerate() {
        match &w.end {
            End::Violation(v) => {
                assert!(
                    matches!(v.invariant, Invariant::StandbyCoversPrimaryData | Invariant::WalBeforeData),
                    "seed {}: {v}",
                    i + 1
                );
                seen.insert(v.invariant.name());
            }
            End::Ok => {}
            e => panic!("seed {}: {e:?}", i + 1),
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["standby_covers_primary_data", "wal_before_data"]);
}

#[test]
fn two_standbys_never_break_an_invariant() {
    for (i, w) in walks(&settings(config("two")), 10).iter().enumerate() {
        assert!(!matches!(w.end, End::Violation(_) | End::Stuck), "seed {}: {:?}", i + 1, w.end);
    }
}

#[test]
fn an_archive_lets_pg_rewind_converge() {
    let ws = walks(&settings(config("archive")), 10);
    for (i, w) in ws.iter().enumerate() {
        assert!(
            matches!(w.end, End::Ok | End::Refused(RefusalKind::RewindWalMissing)),
            "seed {}: {:?}",
            i + 1,
            w.end
        );
    }
    assert!(ws.iter().filter(|w| w.end == End::Ok).count() >= 9);
}

/// `%X/%X` as PostgreSQL prints an LSN.
fn lsn_at_end(line: &str) -> u64 {
    let t = line.rsplit(' ').next().expect("a word");
    let (hi, lo) = t.split_once('/').unwrap_or_else(|| panic!("an LSN in {line:?}"));
    (u64::from_str_radix(hi, 16).expect("hex") << 32) | u64::from_str_radix(lo, 16).expect("hex")
}

#[test]
fn crash_recovery_logs_what_postgres_logs_in_order() {
    // StartupXLOG after a crash: the "interrupted" and "not properly shut
    // down" lines, redo from the checkpoint's REDO to the end of valid WAL
    // ("invalid record length", then "redo done at" the last record
    // replayed), the end-of-recovery checkpoint, then connections.
    let want = [
        "startup LOG: database system was interrupted; last known up at checkpoint ",
        "startup LOG: database system was not properly shut down; automatic recovery in progress",
        "startup LOG: redo starts at ",
        "startup LOG: redo done at ",
        "checkpointer LOG: checkpoint starting: end-of-recovery immediate wait",
        "postmaster LOG: database system is ready to accept connections",
    ];
    let mut recoveries = 0;
    for seed in 1..=3 {
        let w = walk(&settings(config("single")), seed, true);
        let crashes: Vec<usize> = (0..w.lines.len())
            .filter(|&i| w.lines[i].ends_with("database system is shut down (crashed)"))
            .collect();
        for (k, &c) in crashes.iter().enumerate() {
            // The restart until the next crash; judged only if it got as far
            // as accepting connections.
            let stop = crashes.get(k + 1).copied().unwrap_or(w.lines.len());
            let seg = &w.lines[c + 1..stop];
            if !seg.iter().any(|l| l.ends_with(want[5])) {
                continue;
            }
            let mut at = 0;
            let mut found = Vec::new();
            for msg in want {
                let redo_skipped =
                    seg[at..].iter().position(|l| l.ends_with("startup LOG: redo is not required"));
                if msg.contains("redo")
                    && redo_skipped.is_some()
                    && !seg[at..].iter().any(|l| l.contains(msg))
                {
                    continue;
                }
                let i = (at..seg.len()).find(|&i| seg[i].contains(msg));
                let i = i.unwrap_or_else(|| panic!("seed {seed}: no {msg:?} after line {c}: {seg:#?}"));
                found.push(i);
                at = i + 1;
            }
            if found.len() < want.len() {
                recoveries += 1;
                continue;
            }
            let (starts, done) = (lsn_at_end(&seg[found[2]]), lsn_at_end(&seg[found[3]]));
            assert!(starts <= done, "seed {seed}: redo starts at {starts:X}, done at {done:X}");
            if let Some(end) =
                seg[found[2]..found[3]].iter().find(|l| l.contains("invalid record length at "))
            {
                let end = end.split("invalid record length at ").nth(1).expect("text");
                let end = lsn_at_end(end.split(':').next().expect("an LSN"));
                assert!(done < end, "seed {seed}: redo done at {done:X}, not before the end of WAL {end:X}");
            }
            recoveries += 1;
        }
    }
    assert!(recoveries >= 3, "{recoveries} crash recoveries in 3 seeds");
}

#[test]
#[should_panic(expected = "not enabled")]
fn applying_an_event_the_model_did_not_offer_is_refused_in_debug_builds() {
    // A stopped cluster's node cannot run its WAL writer: the scheduler may
    // only apply what `enabled` offered, and `apply` asserts it.
    let mut c = crate::testkit::quiesced(1, 200);
    let mut evs = Vec::new();
    c.enabled(&mut evs);
    assert!(evs.is_empty(), "quiesced: nothing enabled");
    let _ = c.apply(crate::event::Event::WalWriter { node: crate::ids::NodeId(0) }, 0);
}

#[test]
fn a_streaming_standby_has_its_connection_listed() {
    let c = crate::testkit::quiesced(2, 300);
    let pairs: Vec<(u8, u8)> = c.connections().iter().map(|k| (k.upstream.0, k.downstream.0)).collect();
    assert_eq!(pairs, [(0, 1), (0, 2)]);
}

#[test]
fn power_losses_that_keep_part_of_the_unsynced_writes_lose_nothing() {
    // faults.crash_images: a power loss keeps any subset of the pages
    // written since their fsync and WAL up to any record end; recovery
    // must still keep every acknowledged commit and be exact.
    all_ok("images", 12, &[], &[Mark::PowerLossHitUnsyncedWrite]);
}

#[test]
fn crash_images_find_a_pg_control_left_unsynced() {
    caught("fsync_control_file", "images", Invariant::WalSegmentsKept, 10);
}

#[test]
fn crash_images_find_data_written_before_its_wal() {
    caught("wal_before_data", "images", Invariant::WalBeforeData, 5);
}
