//! `walsim bench-search`: the table has every (rule, strategy) cell, and a
//! planted bug every strategy must find is found.

mod common;
use common::cli;

#[test]
fn bench_search_reports_every_strategy_for_the_rules_asked() {
    let (code, out, err) = cli(&[
        "bench-search",
        "--budget",
        "20",
        "--window",
        "2",
        "--rules",
        "wal_before_data,walsender_takes_lowest_free_slot",
        "--set",
        "scheduler.steps=300",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2 * 6);
    // window-power needs a power loss in the prefix (rate 0.001 here).
    for c in cells.iter().filter(|c| c["rule"] == "wal_before_data" && c["strategy"] != "window-power") {
        assert_eq!(c["invariant"], "wal_before_data", "{c}");
        assert!(c["runs"].as_u64().unwrap() <= 20);
    }
    // A bug that needs two standbys is not found with one: reported, not hidden.
    for c in cells.iter().filter(|c| c["rule"] == "walsender_takes_lowest_free_slot") {
        assert!(c["runs"].is_null(), "{c}");
        assert_eq!(c["spent"], 20, "{c}");
    }
    let (code, _, err) = cli(&["bench-search", "--rules", "no_such_rule"]);
    assert_eq!(code, 2);
    assert!(err.contains("no_such_rule"), "{err}");
    let (code, _, err) = cli(&["bench-search", "--rules", "wal_before_data", "--strategies", "sideways"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown strategy sideways"), "{err}");
    // --strategies keeps the columns and fills only those asked for.
    let (code, out, err) = cli(&[
        "bench-search",
        "--budget",
        "5",
        "--rules",
        "wal_before_data",
        "--strategies",
        "random,images",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Found: random 1/1, swarm 0/1, pct 0/1, window 0/1, images 1/1, window-power 0/1."),
        "{out}"
    );
}

/// The check: within the same budget, the crash-image mode finds a
/// planted bug the single "lose everything unsynced" image does not. In
/// its home configuration (power losses only), a hint bit set before its
/// asynchronous commit is flushed shows only when the hinted page reached
/// the disk and the commit record did not.
#[test]
fn crash_images_find_what_the_single_image_does_not_in_the_same_budget() {
    let (code, out, err) = cli(&[
        "bench-search",
        "--homes",
        "--budget",
        "20",
        "--rules",
        "hint_bits_wait_for_commit_flush",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cell =
        |st: &str| v["cells"].as_array().unwrap().iter().find(|c| c["strategy"] == st).unwrap().clone();
    let (random, images) = (cell("random"), cell("images"));
    assert!(random["runs"].is_null(), "{random}");
    assert_eq!(images["invariant"], "recovery_is_exact", "{images}");
    assert!(images["runs"].as_u64().unwrap() <= 5, "{images}");
    assert!(images["home"].as_str().unwrap().contains("synchronous_commit=off"), "{images}");
}
