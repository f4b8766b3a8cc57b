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

/// The JSONL export shows the primary's pg_stat_replication: at the end of
/// `sync-first-restart`, node2 is `sync` again and node3 `potential`.
#[test]
fn trace_jsonl_shows_pg_stat_replication() {
    let path = std::env::temp_dir().join(format!("walsim-trace-sync-{}.jsonl", std::process::id()));
    let p = path.to_str().unwrap();
    let (code, _, err) = cli(&["run", "--scenario", "sync-first-restart", "--seed", "1", "--trace-jsonl", p]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let rows = last["nodes"][0]["walsenders"].as_array().unwrap();
    let row = |i: usize, k: &str| rows[i][k].clone();
    assert_eq!(rows.len(), 2);
    assert_eq!((row(0, "application_name"), row(0, "sync_state")), ("node2".into(), "sync".into()));
    assert_eq!((row(1, "application_name"), row(1, "sync_state")), ("node3".into(), "potential".into()));
    for i in 0..2 {
        assert_eq!(row(i, "state"), "streaming");
        assert_eq!(row(i, "sync_priority"), 1);
        for k in ["sent_lsn", "write_lsn", "flush_lsn", "replay_lsn"] {
            assert!(row(i, k).as_str().is_some_and(|l| l.contains('/')), "{k}: {}", row(i, k));
        }
    }
    // Standbys have no walsenders of their own here.
    assert_eq!(last["nodes"][1]["walsenders"].as_array().unwrap().len(), 0);
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
    assert!(node["walsenders"].is_array());
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
fn endless_inputs_fail_fast() {
    let start = std::time::Instant::now();
    let dir = common::temp_dir("endless");
    let out = dir.join("out.walsim");
    for (args, want) in [
        (
            vec!["run", "--config", "/dev/zero"],
            "walsim: config file /dev/zero is larger than 4 MiB, walsim's limit for it (is it the right file?)",
        ),
        (
            vec!["run", "--scenario", "/dev/zero"],
            "walsim: scenario file /dev/zero is larger than 4 MiB, walsim's limit for it (is it the right file?)",
        ),
        (vec!["replay", "/dev/zero"], "walsim: /dev/zero: not a walsim trace file (wrong magic bytes)"),
        (
            vec!["shrink", "/dev/zero", "-o", out.to_str().unwrap()],
            "walsim: /dev/zero: not a walsim trace file (wrong magic bytes)",
        ),
        (vec!["merge", "/dev/zero"], "walsim: /dev/zero: not the JSON of walsim explore --json"),
    ] {
        let (code, _, err) = cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert!(start.elapsed().as_secs() < 20, "bounded reads are quick: {:?}", start.elapsed());
}

#[test]
fn save_failures_dir_is_checked_before_the_first_run() {
    let dir = common::temp_dir("save-check");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let file_arg = file.to_str().unwrap().to_string();
    for (target, why) in
        [(file_arg.as_str(), "exists and is not a directory"), ("/proc/x", "cannot create the directory")]
    {
        let start = std::time::Instant::now();
        let (code, out, err) = cli(&[
            "explore",
            "--count",
            "300",
            "--matrix",
            "synchronous_commit=on",
            "--set",
            "rules.wal_before_data=false",
            "--save-failures",
            target,
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.starts_with(&format!("walsim: --save-failures {target}: {why}")), "{err}");
        assert!(start.elapsed().as_secs() < 5, "refused before sweeping: {:?}", start.elapsed());
    }
    // A directory that does not exist yet is created, and the sweep saves there.
    let fresh = dir.join("new/sub");
    let (code, _, err) = cli(&[
        "explore",
        "--count",
        "2",
        "--matrix",
        "synchronous_commit=on",
        "--set",
        "scheduler.steps=200",
        "--save-failures",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(fresh.is_dir());
}

#[test]
fn steps_jobs_and_seed_ranges_are_bounded() {
    let (code, _, err) = cli(&["run", "--steps", "1000000000000"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("walsim: --steps 1000000000000 is more than 1000000000 ("), "{err}");
    let (code, _, err) = cli(&["run", "--set", "scheduler.steps=1000000000000"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("walsim: --set: invalid value for scheduler.steps: 1000000000000 is more than"),
        "{err}"
    );
    let (code, _, err) = cli(&["explore", "--jobs", "100000", "--count", "1"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("walsim: --jobs 100000 is more than 1024: runs are CPU-bound"), "{err}");
    // A huge range warns (here the bad key then stops it before any run).
    let (code, _, err) = cli(&["explore", "--seeds", "0..18446744073709551615", "--set", "nonsense=1"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(
            "walsim: warning: --seeds 0..18446744073709551615 is 18446744073709551615 seeds per cell"
        ),
        "{err}"
    );
    let (code, _, err) = cli(&["explore", "--seeds", "0..=18446744073709551615"]);
    assert_eq!(code, 2);
    assert!(err.contains("2^64 seeds"), "{err}");
    // The last seed is reachable.
    let (code, out, err) = cli(&[
        "explore",
        "--seeds",
        "18446744073709551615..=18446744073709551615",
        "--matrix",
        "synchronous_commit=on",
        "--set",
        "scheduler.steps=100",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["totals"]["runs"], 1);
    assert_eq!(v["seeds"]["start"].as_u64(), Some(u64::MAX));
    let (code, out, _) = cli(&["run", "--seed", "18446744073709551615", "--steps", "100", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"seed\":18446744073709551615"), "{out}");
}

#[test]
fn json_keeps_stdout_clean_and_the_log_goes_to_stderr() {
    let (code, out, err) = cli(&["run", "--seed", "3", "--steps", "200", "--json", "--log"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is only the JSON");
    assert!(err.lines().count() as u64 >= v["events"].as_u64().unwrap(), "a log line per event on stderr");
    assert!(err.starts_with("2000-01-01 00:00:00.000 UTC ["), "{}", &err[..80.min(err.len())]);
    let (_, plain, _) = cli(&["run", "--seed", "3", "--steps", "200", "--log"]);
    assert!(plain.starts_with(err.as_str()), "the same log, on stdout without --json");
}

/// Accepts `room` bytes, then fails as a closed pipe does.
struct ClosedPipe {
    room: usize,
}

impl std::io::Write for ClosedPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_pipe_ends_quietly_with_exit_0() {
    for args in [
        &["walsim", "run", "--log"][..],
        &["walsim", "run", "--json"][..],
        &["walsim", "config", "--print-defaults"][..],
        &["walsim", "scenario", "list"][..],
    ] {
        let argv: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let mut err = Vec::new();
        let code = walsim::cli::main_with(argv, &mut ClosedPipe { room: 100 }, &mut err);
        assert_eq!(code, 0, "{args:?}");
        assert!(err.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&err));
    }
    // `walsim run --json --log 2>&1 | head -1`: the log on stderr meets the closed pipe.
    let argv: Vec<std::ffi::OsString> = ["walsim", "run", "--json", "--log"].iter().map(Into::into).collect();
    let code = walsim::cli::main_with(argv, &mut Vec::new(), &mut ClosedPipe { room: 100 });
    assert_eq!(code, 0);
}

#[test]
fn a_replay_that_does_not_reproduce_exits_3() {
    use walsim::run::{NoObserver, RunOptions, run_seed};
    use walsim::trace::Trace;
    let dir = common::temp_dir("not-reproduced");
    let s = common::settings(&["scheduler.steps=200"]);
    let r = run_seed(&s, 4, RunOptions { record: true, log: false, max_events: None }, &mut NoObserver);
    let good = Trace::of_run(&s, &r, "test".into());
    let path = dir.join("t.walsim");
    let file = path.to_str().unwrap();
    good.save(&path).unwrap();
    assert_eq!(cli(&["replay", file]).0, 0);

    // Same draws and hash, but another recorded outcome: not the same run.
    let mut t = good.clone();
    t.recorded.outcome = "violation".into();
    t.recorded.invariant = Some("wal_before_data".into());
    t.save(&path).unwrap();
    let (code, out, _) = cli(&["replay", file]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(
            "NOT reproduced: outcome refused, recorded violation; invariant none, recorded wal_before_data"
        ),
        "{out}"
    );
    let (code, out, _) = cli(&["replay", file, "--json"]);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reproduced"], false);
    assert_eq!(v["differences"].as_array().unwrap().len(), 2);

    let mut t = good.clone();
    t.recorded.trace_hash ^= 1;
    t.save(&path).unwrap();
    let (code, out, _) = cli(&["replay", file]);
    assert_eq!(code, 3);
    assert!(out.contains("NOT reproduced: trace_hash "), "{out}");
}

#[test]
fn print_defaults_applies_set() {
    let (code, out, err) = cli(&["config", "--print-defaults", "--set", "wal_log_hints=on"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\nwal_log_hints = true\n"), "{out}");
    assert!(out.contains("# Differs from the defaults in: wal_log_hints\n"), "{out}");
    let (_, defaults, _) = cli(&["config", "--print-defaults"]);
    assert!(defaults.contains("\nwal_log_hints = false\n"));
    let (code, _, err) = cli(&["config", "--print-defaults", "--set", "wal_log_hints=maybe"]);
    assert_eq!(code, 2);
    assert!(err.contains("wal_log_hints"), "{err}");
}

#[test]
fn run_scenario_checks_the_files_expectations() {
    let dir = common::temp_dir("scenario-expect");
    let text = walsim::scenario::BUILTIN.iter().find(|(n, _)| *n == "blog-failback-commit").unwrap().1;
    let path = dir.join("s.toml");
    let file = path.to_str().unwrap();
    std::fs::write(&path, text).unwrap();
    let (code, _, err) = cli(&["run", "--scenario", file, "--seed", "2"]);
    assert_eq!(code, 0, "the file's expectations hold: {err}");
    assert!(err.is_empty(), "{err}");

    let wrong = text.replace("expect = \"refused\"", "expect = \"ok\"");
    std::fs::write(&path, wrong).unwrap();
    let (code, _, err) = cli(&["run", "--scenario", file, "--seed", "2"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(
            "walsim: scenario blog-failback-commit: expectation failed: expect = \"ok\", but the run ended refused: "
        ),
        "{err}"
    );

    let wrong =
        text.replace("expect_refusals = [\"not_in_history\",", "expect_refusals = [\"rewind_needs_hints\",");
    std::fs::write(&path, wrong).unwrap();
    let (code, out, err) = cli(&["run", "--scenario", file, "--seed", "2", "--json"]);
    assert_eq!(code, 1);
    assert!(err.contains("expectation failed: expect_refusals: no rewind_needs_hints refusal"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["scenario"]["expectations_failed"].as_array().unwrap().len(), 1);

    let wrong =
        text.replace("expect = \"refused\"", "expect = \"refused\"\nexpect_waits = [\"no such wait\"]");
    std::fs::write(&path, wrong).unwrap();
    let (code, _, err) = cli(&["run", "--scenario", file, "--seed", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("expectation failed: expect_waits: \"no such wait\" is not in"), "{err}");
}

#[test]
fn messages_name_what_the_user_wrote() {
    for (set, want) in [
        ("wal_segment_size=1GB", "--set: max_wal_size (8kB) must be at least wal_segment_size (1GB)"),
        (
            "faults.process_crash=NaN",
            "--set: invalid value for faults.process_crash: NaN is not a probability in 0..1",
        ),
        (
            "faults.process_crash=inf",
            "--set: invalid value for faults.process_crash: inf is not a probability in 0..1",
        ),
        (
            "faults.process_crash=x",
            "--set: invalid value for faults.process_crash: \"x\" is not a number, e.g. 0.01",
        ),
        (
            "cluster.rel_pages=18446744073709551615",
            "--set: invalid value for cluster.rel_pages: 18446744073709551615 is not a whole number in 0..4294967295",
        ),
        (
            "workload.clients=-1",
            "--set: invalid value for workload.clients: -1 is not a whole number in 0..255",
        ),
        (
            "wal_log_hints=maybe",
            "--set: invalid value for wal_log_hints: \"maybe\" is not a boolean (on, off, true or false)",
        ),
    ] {
        let (code, _, err) = cli(&["run", "--set", set]);
        assert_eq!(code, 2, "{set}");
        assert_eq!(err.trim_end(), format!("walsim: {want}"), "{set}");
    }
    let (code, _, err) = cli(&["run", "--set", "cluster.standbys=0"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("walsim: --set: invalid value for operator[0].node: step 1: no node named \"node2\""),
        "{err}"
    );
    assert!(err.contains("names a node that does not exist") && err.contains("--set operator=[]"), "{err}");
    assert_eq!(cli(&["run", "--set", "cluster.standbys=0", "--set", "operator=[]", "--steps", "100"]).0, 0);

    let dir = common::temp_dir("messages");
    let path = dir.join("s.toml");
    std::fs::write(&path, "[scenario]\ndescription = \"x\"\n").unwrap();
    let (code, _, err) = cli(&["run", "--scenario", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.trim_end().ends_with("s.toml at line 1: [scenario]: missing field `name`"), "{err}");
}

/// The design reference ships with the repository and names files that exist.
#[test]
fn architecture_doc_is_in_the_repository_and_accurate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("docs/architecture.md");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("(docs/architecture.md)"), "README points at docs/architecture.md");
    for dir in ["docs", "sim/src", "model/src"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(!text.contains("DESIGN.md"), "{} points outside the repository", path.display());
        }
    }
    // Every `model/src/x.rs` or `sim/src/x.rs` the doc names exists, and so
    // does every `x.rs` listed after one of them (`storage.rs`, `clog.rs`).
    let mut named = 0;
    for word in doc.split(|c: char| c == '`' || c.is_whitespace() || c == ',' || c == '(' || c == ')') {
        let Some(file) = word.strip_suffix(".rs").filter(|w| !w.is_empty()) else { continue };
        let file = format!("{file}.rs");
        let found = if file.contains('/') {
            root.join(&file).exists()
        } else {
            root.join("model/src").join(&file).exists() || root.join("sim/src").join(&file).exists()
        };
        assert!(found, "docs/architecture.md names {file}, which does not exist");
        named += 1;
    }
    assert!(named > 30, "the doc maps concerns to modules ({named} files named)");
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
