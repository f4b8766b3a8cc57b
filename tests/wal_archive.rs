//! The WAL archive (issue 11): archive_mode / archive_command, the
//! archiver and its failures, `.ready` segments kept by RemoveOldXlogFiles
//! (rule `remove_checks_archive_done`, invariant `wal_segments_kept`),
//! restore_command for a standby whose upstream removed a segment, for
//! findNewestTimeLine, and pg_rewind's --restore-target-wal.

mod common;
use common::{cli, run, settings};
use walsim_model::Invariant;

fn scenario(name: &str, sets: &[&str], seed: u64) -> serde_json::Value {
    let seed = seed.to_string();
    let mut args = vec!["run", "--scenario", name, "--seed", &seed, "--json"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let (_, out, _) = cli(&args);
    serde_json::from_str(&out).unwrap()
}

fn log_of(name: &str, sets: &[&str], seed: u64) -> String {
    let seed = seed.to_string();
    let mut args = vec!["run", "--scenario", name, "--seed", &seed, "--log"];
    for s in sets {
        args.extend(["--set", s]);
    }
    cli(&args).1
}

const DOWN: &str = "standby-down-archive";

#[test]
fn a_standby_down_too_long_restores_from_the_archive_and_catches_up() {
    for seed in 1..=4 {
        let v = scenario(DOWN, &[], seed);
        assert_eq!(v["outcome"], "ok", "seed {seed}: {}", v["detail"]);
        let v = scenario(DOWN, &["restore_command=false"], seed);
        assert_eq!(v["outcome"], "refused", "seed {seed}: {}", v["detail"]);
        let msgs: Vec<&str> =
            v["refusals"].as_array().unwrap().iter().map(|r| r["message"].as_str().unwrap()).collect();
        assert!(
            msgs.iter().any(|m| m.starts_with("ERROR: requested WAL segment 0000000100000000000000")
                && m.ends_with(" has already been removed")),
            "{msgs:?}"
        );
    }
    let log = log_of(DOWN, &[], 1);
    assert!(
        log.contains("node1 archiver DEBUG:  archived write-ahead log file \"000000010000000000000001\"")
    );
    assert!(log.contains("node2 startup LOG:  restored log file \"000000010000000000000001\" from archive"));
    // The standby streams again once the archive has nothing more for it.
    let restored = log.rfind("restored log file").unwrap();
    assert!(log[restored..].contains("node2 walreceiver LOG:  started streaming WAL from primary at"));
}

#[test]
fn the_archive_first_then_streaming() {
    // WaitForWALToBecomeAvailable tries the archive before streaming: a
    // standby with restore_command never asks its primary for a segment
    // the archive has, so it is never refused here.
    for seed in 1..=4 {
        let v = scenario(DOWN, &[], seed);
        let refusals = v["refusals"].as_array().unwrap();
        assert!(refusals.iter().all(|r| r["kind"] != "segment_removed"), "seed {seed}: {refusals:?}");
    }
}

#[test]
fn unarchived_segments_are_kept_and_removing_them_is_caught() {
    // archive_command not set: every completed segment stays `.ready`, so
    // no checkpoint removes it (XLogArchiveCheckDone), and the standby
    // catches up by streaming.
    for seed in 1..=3 {
        let v = scenario(DOWN, &["archive_command=false", "restore_command=false"], seed);
        assert_eq!(v["outcome"], "ok", "seed {seed}: {}", v["detail"]);
    }
    // Planted bug: RemoveOldXlogFiles ignores `.ready`.
    let v = scenario(DOWN, &["archive_command=false", "rules.remove_checks_archive_done=false"], 1);
    assert_eq!(v["outcome"], "violation", "{}", v["detail"]);
    assert_eq!(v["invariant"], "wal_segments_kept");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("are not archived yet (archive_status .ready)"), "{detail}");
    // The same bug with a lagging archiver (weight 0: it runs only when
    // nothing else can).
    let v = scenario(DOWN, &["scheduler.weights.archiver=0", "rules.remove_checks_archive_done=false"], 1);
    assert_eq!(v["invariant"], "wal_segments_kept", "{}", v["detail"]);
    let v = scenario(DOWN, &["scheduler.weights.archiver=0"], 1);
    assert_eq!(v["outcome"], "ok", "{}", v["detail"]);
}

#[test]
fn a_failing_archive_command_is_logged_as_postgres_logs_it() {
    let log = log_of(DOWN, &["faults.archive_command=0.05"], 1);
    assert!(log.contains("node1 archiver LOG:  archive command failed with exit code 1"));
    // The DETAIL names the file twice, as `cp %p /archive/%f` expands.
    let detail = log
        .lines()
        .find_map(|l| l.split("node1 archiver DETAIL:  The failed archive command was: cp pg_wal/").nth(1))
        .expect("the failed command is shown");
    let (src, dst) = detail.split_once(" /archive/").expect("cp SRC /archive/DST");
    assert!(src.len() == 24 && src.starts_with("0000000100000000") && src == dst, "{detail}");
    let warn = log.lines().find(|l| l.contains("WARNING")).expect("three failures in a row");
    assert!(
        warn.contains("archiver WARNING:  archiving write-ahead log file \"0000000100000000000000")
            && warn.ends_with("\" failed too many times, will try again later"),
        "{warn}"
    );
    // Archiving is late, never lost: the standby still catches up.
    let v = scenario(DOWN, &["faults.archive_command=0.05"], 1);
    assert_eq!(v["outcome"], "ok", "{}", v["detail"]);
}

#[test]
fn two_promotions_with_one_archive_choose_distinct_timelines() {
    for seed in 1..=6 {
        let v = scenario("double-promotion-archive", &[], seed);
        assert_eq!(v["outcome"], "ok", "seed {seed}: {}", v["detail"]);
    }
    let log = log_of("double-promotion-archive", &[], 1);
    assert!(log.contains("node2 archiver DEBUG:  archived write-ahead log file \"00000002.history\""));
    assert!(log.contains("node3 startup LOG:  restored log file \"00000002.history\" from archive"));
    assert!(log.contains("node3 startup LOG:  selected new timeline ID: 3"));
    // Without restore_command, findNewestTimeLine sees only pg_wal: the
    // timelines_consistent finding stands.
    let bad = (1..=6).find(|&seed| {
        scenario("double-promotion-archive", &["restore_command=false"], seed)["invariant"]
            == "timelines_consistent"
    });
    assert!(bad.is_some(), "no seed in 1..=6 created timeline 2 twice without restore_command");
}

#[test]
fn pg_rewind_restores_the_targets_removed_wal_with_restore_target_wal() {
    let name = "rewind-restore-target-wal";
    for seed in 1..=4 {
        let v = scenario(name, &[], seed);
        assert_eq!(v["outcome"], "ok", "seed {seed}: {}", v["detail"]);
        assert_eq!(v["failbacks"][0]["result"], "converged", "seed {seed}: {}", v["failbacks"]);
    }
    // The segment holding the last common checkpoint was removed (it was
    // archived first).
    let log = log_of(name, &[], 1);
    assert!(
        log.contains("node1 checkpointer DEBUG:  recycled write-ahead log file \"000000010000000000000000\"")
    );
    // Without --restore-target-wal: PostgreSQL 15's failure.
    let dir = common::temp_dir("rewind-no-restore");
    let text = walsim::scenario::BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
    let path = dir.join("s.toml");
    std::fs::write(&path, text.replace("restore_target_wal = true\n", "")).unwrap();
    let v = scenario(path.to_str().unwrap(), &[], 1);
    let fb = &v["failbacks"][0];
    assert_eq!(fb["result"], "refused", "{fb}");
    assert_eq!(v["outcome"], "refused");
    let msgs: Vec<&str> = fb["messages"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(
        msgs.contains(
            &"pg_rewind: error: could not open file \"node1/pg_wal/000000010000000000000000\": No such file or directory"
        ),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.starts_with("pg_rewind: error: could not find previous WAL record at 0/")));
    // --restore-target-wal needs restore_command in the target cluster.
    let v = scenario(name, &["restore_command=false"], 1);
    let msgs = v["failbacks"][0]["messages"].to_string();
    assert!(msgs.contains("pg_rewind: error: restore_command is not set in the target cluster"), "{msgs}");
}

#[test]
fn archiving_is_off_by_default_and_touches_nothing() {
    let s = settings(&[]);
    assert_eq!(s.archive_mode, walsim_model::settings::ArchiveMode::Off);
    let c = walsim_model::Cluster::new(s.clone(), false);
    assert!(c.archive.is_empty());
    // Small segments, archive on, no standby reading it: the primary
    // still removes archived segments at checkpoints, and every
    // invariant holds with archiving failures as faults.
    let s = settings(&[
        "wal_segment_size=\"16kB\"",
        "max_wal_size=\"32kB\"",
        "min_wal_size=\"32kB\"",
        "archive_mode=\"on\"",
        "restore_command=true",
        "faults.archive_command=0.01",
        "synchronous_standby_names=",
        "scheduler.steps=3000",
    ]);
    for seed in 1..=6 {
        let r = run(&s, seed);
        assert_ne!(r.invariant(), Some(Invariant::WalSegmentsKept), "seed {seed}: {}", r.detail);
        assert_ne!(r.invariant(), Some(Invariant::AcknowledgedCommitsSurvive), "seed {seed}: {}", r.detail);
    }
}

#[test]
fn the_history_file_fetched_from_the_archive_leads_to_the_same_hazard() {
    // history-file-before-start's route through an archive: recovery
    // restores 00000002.history, crash recovery targets timeline 2 and
    // replays the old primary's diverged WAL past the fork.
    let name = "history-file-from-archive";
    for seed in 1..=4 {
        let v = scenario(name, &[], seed);
        assert_eq!(v["outcome"], "stuck", "seed {seed}: {}", v["detail"]);
    }
    let log = log_of(name, &[], 1);
    assert!(log.contains("node1 startup LOG:  restored log file \"00000002.history\" from archive"));
    assert!(
        log.contains("node1 startup LOG:  crash recovery starts in timeline 1 and has target timeline 2")
    );
    // Seed 31 with the table it was found with (100,000 keys, before issue
    // 11's defaults): timeline 2's archived segment frames at node1's end
    // of WAL; restoring it would mix two histories, and
    // no_silent_divergence says so.
    let v = scenario(name, &["workload.key_space=100000"], 31);
    assert_eq!(v["invariant"], "no_silent_divergence", "{}", v["detail"]);
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("node1 restores 000000020000000000000002 from the archive"), "{detail}");
}

#[test]
fn acknowledged_commits_survive_archive_recovery_and_promotion() {
    // The standby that caught up through the archive is promoted once it
    // replayed everything: the promotion's check (every acknowledged
    // commit is on the new primary) holds, on every seed tried.
    let dir = common::temp_dir("archive-promote");
    let text = walsim::scenario::BUILTIN.iter().find(|(n, _)| *n == DOWN).unwrap().1;
    let text = format!(
        "{text}\n[[operator]]\naction = \"stop_load\"\nnode = \"node1\"\n\n[[operator]]\naction = \"promote\"\nnode = \"node2\"\nwhen = \"node_replayed_all\"\n"
    );
    let path = dir.join("s.toml");
    std::fs::write(&path, text).unwrap();
    for seed in 1..=6 {
        let v = scenario(path.to_str().unwrap(), &[], seed);
        assert_ne!(v["outcome"], "violation", "seed {seed}: {}", v["detail"]);
        let log = log_of(path.to_str().unwrap(), &[], seed);
        assert!(log.contains("node2 startup LOG:  restored log file"), "seed {seed}");
        assert!(log.contains("node2 startup LOG:  selected new timeline ID: 2"), "seed {seed}");
    }
}
