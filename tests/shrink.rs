//! `walsim shrink`: a rules.wal_before_data=false failure shrinks to a few
//! events that fail the same invariant, deterministically, and the shrunk
//! trace replays exactly; a story-shaped failure (promote, crash, fail
//! back) shrinks by dropping whole transactions and the operator's waits.

mod common;
use common::{cli, explore_failures, temp_dir};

#[test]
fn a_wal_before_data_failure_shrinks_to_at_most_15_events() {
    let dir = temp_dir("shrink");
    let v = explore_failures(&dir, &["--count", "5", "--matrix", "synchronous_commit=on"]);
    let failure = &v["failures"][0];
    let input = failure["file"].as_str().unwrap();
    let (a, b) = (dir.join("a.walsim"), dir.join("b.walsim"));
    let (code, out, err) = cli(&["shrink", input, "-o", a.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["invariant"], "wal_before_data");
    assert_eq!(s["before"]["events"], failure["events"]);
    let after = s["after"]["events"].as_u64().unwrap();
    assert!(after <= 15, "{after} events");

    let (code, out, _) = cli(&["replay", a.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((r["invariant"].as_str(), r["events"].as_u64()), (Some("wal_before_data"), Some(after)));
    assert_eq!(r["trace_hash"], s["after"]["trace_hash"]);
    assert_eq!(r["reproduced"], true);

    let (code, text, _) = cli(&["shrink", input, "-o", b.to_str().unwrap(), "--log"]);
    assert_eq!(code, 0);
    assert!(text.contains(&format!("events → {after} events")), "{text}");
    assert!(text.contains("background writer"), "the log of the shrunk run: {text}");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "shrinking is deterministic");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_story_shrinks_by_whole_transactions_to_the_same_bytes_twice() {
    // docs/findings.md, finding 4: truncate failback under data_flush.
    let dir = temp_dir("shrink-story");
    let input = dir.join("in.walsim");
    let sets = [
        "failover.failback=truncate",
        "faults.disconnect=0.0",
        "faults.process_crash=0.001",
        "synchronous_commit=local",
        "synchronous_transfer=data_flush",
        "wal_log_hints=true",
        // The geometry and table the finding was found with (before issue
        // 11's defaults), as in tests/regressions/truncate-wal-before-data.toml.
        "wal_block_size=8kB",
        "wal_segment_size=1MB",
        "max_wal_size=2MB",
        "min_wal_size=2MB",
        "wal_keep_size=0",
        "workload.key_space=100000",
    ];
    let mut run = vec!["run", "--seed", "39", "--save-trace", input.to_str().unwrap()];
    for s in &sets {
        run.extend(["--set", s]);
    }
    assert_eq!(cli(&run).0, 1, "the finding's run fails");
    let (a, b) = (dir.join("a.walsim"), dir.join("b.walsim"));
    let (code, out, err) = cli(&["shrink", input.to_str().unwrap(), "-o", a.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["invariant"], "wal_before_data");
    let (before, after) = (s["before"]["events"].as_u64().unwrap(), s["after"]["events"].as_u64().unwrap());
    // Before the semantic passes this stopped at 16 events, with the
    // promotion after 40 commits kept as commits.
    assert!(before > 400 && after <= 12, "{before} → {after} events");
    let story: Vec<&str> = s["story"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let commits = story.iter().filter(|l| l.contains("commits acknowledged")).count();
    assert!(commits <= 1, "the transactions the failure does not need are gone: {story:#?}");
    for step in ["pg_ctl promote", "failback on node1", "truncate: removed WAL"] {
        assert!(story.iter().any(|l| l.contains(step)), "the story keeps {step}: {story:#?}");
    }
    let changes = s["config_changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["key"] == "operator" && c["to"].as_str().unwrap().contains("promote node2")),
        "the promotion comes earlier: {changes:?}"
    );

    let (code, _, _) = cli(&["shrink", input.to_str().unwrap(), "-o", b.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "same input, same output bytes");
    let (code, out, _) = cli(&["replay", a.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((r["events"].as_u64(), &r["trace_hash"]), (Some(after), &s["after"]["trace_hash"]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shrink_refuses_bad_input() {
    let dir = temp_dir("shrink-bad");
    let junk = dir.join("junk.walsim");
    std::fs::write(&junk, "not a trace").unwrap();
    let out = dir.join("out.walsim");
    let (code, _, err) = cli(&["shrink", junk.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not a walsim trace"), "{err}");
    assert_eq!(cli(&["shrink", junk.to_str().unwrap()]).0, 2, "-o is required");
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
