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
    assert_eq!(cells.len(), 2 * 5);
    for c in cells.iter().filter(|c| c["rule"] == "wal_before_data") {
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
}
