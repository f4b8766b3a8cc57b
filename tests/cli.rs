//! Bad input gets a clear one-line error and exit code 2; good input works.

mod common;
use common::cli;

#[test]
fn bad_values_name_the_key() {
    let (code, out, err) = cli(&["run", "--set", "synchronous_commit=bogus"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("synchronous_commit") && err.contains("bogus"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unknown_keys_are_errors() {
    for (key, want) in
        [("nonsense=1", "unknown key nonsense"), ("faults.meteor=0.1", "unknown key faults.meteor")]
    {
        let (code, _, err) = cli(&["run", "--set", key]);
        assert_eq!(code, 2);
        assert_eq!(err.trim_end(), format!("walsim: --set: {want}"));
    }
}

#[test]
fn out_of_range_values_are_errors() {
    for (set, key) in [
        ("cluster.rel_pages=0", "cluster.rel_pages"),
        ("faults.power_loss=2", "faults.power_loss"),
        ("wal_segment_size=1000", "wal_segment_size"),
        ("synchronous_standby_names=FIRST x (a)", "synchronous_standby_names"),
        ("max_wal_size=lots", "max_wal_size"),
    ] {
        let (code, _, err) = cli(&["run", "--set", set]);
        assert_eq!(code, 2, "{set}");
        assert!(err.contains(key), "{set}: {err}");
    }
}

#[test]
fn missing_and_malformed_files_are_errors() {
    let (code, _, err) = cli(&["run", "--config", "/nonexistent/walsim.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/walsim.toml"), "{err}");

    let dir = std::env::temp_dir().join(format!("walsim-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "synchronous_commit = \"on\"\n[workload]\nclients = \"four\"\n").unwrap();
    let (code, _, err) = cli(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("workload.clients") && err.contains("bad.toml"), "{err}");
    std::fs::write(&bad, "synchronous_commit = \"on\"\n[workload]\nclients = 4\nbogus = 1\n").unwrap();
    let (code, _, err) = cli(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.trim_end().ends_with("bad.toml at line 4: unknown key workload.bogus"), "{err}");
    std::fs::write(&bad, "[workload\n").unwrap();
    let (code, _, err) = cli(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("line 1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_flags_are_errors() {
    assert_eq!(cli(&["run", "--seed", "-3"]).0, 2);
    assert_eq!(cli(&["run", "--steps", "0"]).0, 2);
    assert_eq!(cli(&["run", "--set", "novalue"]).0, 2);
    assert_eq!(cli(&["frobnicate"]).0, 2);
    assert_eq!(cli(&["--help"]).0, 0);
}

#[test]
fn print_defaults_is_a_loadable_config() {
    let (code, toml_text, _) = cli(&["config", "--print-defaults"]);
    assert_eq!(code, 0);
    for key in [
        "synchronous_commit",
        "wal_log_hints",
        "full_page_writes",
        "[rules]",
        "[faults]",
        "[scheduler]",
        "[workload]",
        "[cluster]",
    ] {
        assert!(toml_text.contains(key), "defaults lack {key}");
    }
    let path = std::env::temp_dir().join(format!("walsim-defaults-{}.toml", std::process::id()));
    std::fs::write(&path, &toml_text).unwrap();
    let a = cli(&["run", "--config", path.to_str().unwrap(), "--json"]);
    let b = cli(&["run", "--json"]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(a.1, b.1, "the printed defaults are the defaults");
}

#[test]
fn json_summary_has_the_documented_fields() {
    let (code, out, _) = cli(&["run", "--seed", "1", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in ["seed", "outcome", "invariant", "detail", "events", "trace_hash", "config"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert!(["ok", "violation", "stuck", "refused"].contains(&v["outcome"].as_str().unwrap()));
    assert!(v["failbacks"].is_array() && v["refusals"].is_array());
    assert_eq!(v["config"]["synchronous_commit"], "on");
}

#[test]
fn trace_jsonl_has_a_line_per_event() {
    let path = std::env::temp_dir().join(format!("walsim-trace-{}.jsonl", std::process::id()));
    let (code, out, _) =
        cli(&["run", "--seed", "2", "--steps", "300", "--json", "--trace-jsonl", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, v["events"].as_u64().unwrap());
    let node = &lines[10]["nodes"][0];
    for k in ["insert_lsn", "write_lsn", "flush_lsn", "max_page_lsn_os", "max_page_lsn_durable", "timeline"] {
        assert!(node.get(k).is_some(), "missing {k}");
    }
    assert!(node["control"].get("min_recovery_point").is_some());
    let (code, _, err) = cli(&["run", "--trace-jsonl", "/nonexistent/dir/t.jsonl"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/dir/t.jsonl"), "{err}");
}

#[test]
fn scenarios_are_listed_and_bad_scenario_files_name_the_line() {
    let (code, out, _) = cli(&["scenario", "list"]);
    assert_eq!(code, 0);
    assert!(out.lines().count() >= 7);
    for name in [
        "blog-data-flush-standby-down",
        "blog-failback-commit",
        "rewind-without-hints",
        "truncate-data-flush",
    ] {
        assert!(out.contains(name), "{name} missing from {out}");
    }
    let (code, out, _) = cli(&["run", "--scenario", "blog-failback-commit", "--seed", "2", "--json"]);
    assert_eq!(code, 0, "refused is a result, not an error");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"], "refused");
    assert_eq!(v["failbacks"][0]["strategy"], "naive");

    let path = std::env::temp_dir().join(format!("walsim-bad-scenario-{}.toml", std::process::id()));
    std::fs::write(&path, "[scenario]\nname = \"x\"\ndescription = \"y\"\n\n[[operator]]\naction = \"promote\"\nnode = \"node7\"\n").unwrap();
    let (code, _, err) = cli(&["run", "--scenario", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("node7") && err.contains("line 7"), "{err}");
    std::fs::remove_file(&path).unwrap();
    let (code, _, err) = cli(&["run", "--scenario", "no-such-thing"]);
    assert_eq!(code, 2);
    assert!(err.contains("no scenario named no-such-thing"), "{err}");
}

#[test]
fn conform_real_only_takes_no_model_options() {
    // --real-only runs no model: model settings with it are an input error, found
    // before any server is started.
    for extra in [["--set", "rules.walsender_checks_start_point=false"], ["--seeds", "3"]] {
        let mut args = vec!["conform", "--real-only", "--scenario", "history-file-before-start"];
        args.extend(extra);
        let (code, out, err) = cli(&args);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(out.is_empty());
        assert!(err.contains("'--real-only' cannot be used with"), "{extra:?}: {err}");
    }
    let (code, _, err) = cli(&["conform", "--real-only", "--scenario", "history-file-somewhere"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no such conformance story") && err.contains("history-file-clean-shutdown"),
        "{err}"
    );
}
