//! `walsim shrink`: a rules.wal_before_data=false failure shrinks to a few
//! events that fail the same invariant, deterministically, and the shrunk
//! trace replays exactly.

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
