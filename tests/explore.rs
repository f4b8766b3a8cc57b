//! `walsim explore` and `walsim merge`: the table, determinism across
//! --jobs and shards, swarm, interruption, and bad input.

mod common;
use common::{cli, temp_dir, without_perf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use walsim::args::SeedRange;
use walsim::explore::{Plan, Spec, SweepOptions, results, sweep};

/// Short runs so the whole matrix takes well under a second in debug.
const SHORT: [&str; 2] = ["--set", "scheduler.steps=150"];

fn explore(extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["explore"];
    args.extend(SHORT);
    args.extend(extra);
    cli(&args)
}

#[test]
fn default_matrix_prints_one_row_per_cell() {
    let (code, out, err) = explore(&["--count", "2"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    for col in ["synchronous_commit", "synchronous_transfer", "failback", "wal_log_hints", "runs", "ok"] {
        assert!(lines[0].contains(col), "header lacks {col}: {}", lines[0]);
    }
    for col in ["refused", "stuck", "events/s"] {
        assert!(lines[0].contains(col), "header lacks {col}");
    }
    // One column per violated invariant, or a single empty "violations" one.
    let inv = walsim_model::Invariant::ALL.iter().any(|i| lines[0].contains(i.name()));
    assert!(inv || lines[0].contains("violations"), "{}", lines[0]);
    let rows: Vec<&&str> =
        lines[1..].iter().filter(|l| l.starts_with("local") || l.starts_with("on ")).collect();
    assert_eq!(rows.len(), 2 * 3 * 3 * 2, "{out}");
    assert!(out.contains("72 runs (36 cells, seeds 1..3, swarm)"), "{out}");
}

#[test]
fn results_are_identical_for_any_number_of_jobs() {
    let one = explore(&["--count", "4", "--jobs", "1", "--json"]);
    let two = explore(&["--count", "4", "--jobs", "2", "--json"]);
    assert_eq!((one.0, two.0), (0, 0));
    assert_eq!(without_perf(&one.1), without_perf(&two.1));
}

#[test]
fn shards_merge_into_the_unsharded_results() {
    let dir = temp_dir("shards");
    let fail = ["--set", "rules.wal_before_data=false", "--matrix", "synchronous_commit=local,on"];
    let mut files = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let mut args = vec!["--seeds", "5..15", "--json", "--save-limit", "2", "--shard", &shard];
        args.extend(fail);
        let (code, out, err) = explore(&args);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["coverage"]["included"], serde_json::json!([k]));
        let path = dir.join(format!("shard{k}.json"));
        std::fs::write(&path, out).unwrap();
        files.push(path.to_str().unwrap().to_string());
    }
    let mut args = vec!["--seeds", "5..15", "--json", "--save-limit", "2"];
    args.extend(fail);
    let whole = explore(&args).1;
    let f: Vec<&str> = files.iter().map(String::as_str).collect();
    let (code, merged, err) = cli(&[&["merge", "--json"][..], &f].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(without_perf(&merged), without_perf(&whole));
    assert!(without_perf(&whole)["totals"]["violations"].as_u64().unwrap() > 0);

    // Two of three shards: shown as partial; a shard twice: an error.
    let (code, partial, _) = cli(&["merge", f[0], f[2]]);
    assert_eq!(code, 0);
    assert!(partial.contains("shards [1, 3] of 3"), "{partial}");
    let (code, _, err) = cli(&["merge", f[0], f[0]]);
    assert_eq!(code, 2);
    assert!(err.contains("given twice"), "{err}");
    let (code, md, _) = cli(&["merge", "--markdown", f[0], f[1], f[2]]);
    assert_eq!(code, 0);
    assert!(md.starts_with("| synchronous_commit | runs |"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn merge_refuses_foreign_or_mismatched_inputs() {
    let dir = temp_dir("merge-bad");
    let a = dir.join("a.json");
    let b = dir.join("b.json");
    std::fs::write(&a, explore(&["--count", "1", "--json", "--matrix", "wal_log_hints=off,on"]).1).unwrap();
    std::fs::write(&b, explore(&["--count", "1", "--json", "--matrix", "wal_log_hints=off"]).1).unwrap();
    let (code, _, err) = cli(&["merge", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("matrix differs"), "{err}");
    std::fs::write(&b, "{\"cells\": 3}").unwrap();
    let (code, _, err) = cli(&["merge", b.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not the JSON of walsim explore"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(cli(&["merge", "/nonexistent.json"]).0, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn violations_are_findings_unless_fail_on_violation() {
    let args = ["--count", "3", "--set", "rules.wal_before_data=false", "--matrix", "wal_log_hints=off,on"];
    let (code, out, _) = explore(&args);
    assert_eq!(code, 0);
    assert!(out.contains("wal_before_data"), "{out}");
    assert!(out.contains("(seed 1)"), "first failing seed: {out}");
    let (code, _, _) = explore(&[&args[..], &["--fail-on-violation"]].concat());
    assert_eq!(code, 1);
}

#[test]
fn set_pins_a_default_matrix_key() {
    let (code, out, _) = explore(&["--count", "1", "--set", "failover.failback=rewind", "--markdown"]);
    assert_eq!(code, 0);
    let header = out.lines().next().unwrap();
    assert!(!header.split('|').any(|cell| cell.trim() == "failback"), "{header}");
    assert_eq!(out.lines().filter(|l| l.starts_with("| local") || l.starts_with("| on")).count(), 12);
}

#[test]
fn swarm_draws_fault_rates_within_the_bounds() {
    let base = ["--count", "12", "--set", "rules.wal_before_data=false", "--matrix", "wal_log_hints=off"];
    let args = [&base[..], &["--json", "--save-limit", "12", "--set", "faults.process_crash=0.004"]].concat();
    let v = without_perf(&explore(&args).1);
    let rates: Vec<f64> = v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["faults"]["faults.process_crash"].as_f64().unwrap())
        .collect();
    assert!(rates.len() >= 6, "{v}");
    assert!(rates.iter().all(|&r| r <= 0.004));
    assert!(rates.contains(&0.0) && rates.iter().any(|&r| r > 0.0), "{rates:?}");
    // Each failure names the `walsim run` that reproduces it, swarm included.
    for f in v["failures"].as_array().unwrap().iter().take(3) {
        let cmd = f["command"].as_str().unwrap();
        let mut args: Vec<String> = Vec::new();
        for part in cmd.strip_prefix("walsim ").unwrap().split(" --set ") {
            match part.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')) {
                Some(set) => args.extend(["--set".to_string(), set.to_string()]),
                None => args.extend(part.split(' ').map(String::from)),
            }
        }
        args.push("--json".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, _) = cli(&args);
        assert_eq!(code, 1, "{cmd}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["trace_hash"], f["trace_hash"], "{cmd}");
    }
    let args = [&base[..], &["--json", "--save-limit", "12", "--no-swarm"]].concat();
    let v = without_perf(&explore(&args).1);
    assert_eq!(v["swarm"], false);
    assert!(v["failures"].as_array().unwrap().iter().all(|f| f["faults"]["faults.process_crash"] == 0.002));
}

#[test]
fn an_interrupted_sweep_keeps_what_ran() {
    let dir = temp_dir("interrupt");
    let spec = Spec {
        sets: vec!["scheduler.steps=150".into(), "rules.wal_before_data=false".into()],
        seeds: SeedRange::first(50).unwrap(),
        ..Spec::default()
    };
    let plan = Plan::new(&spec).unwrap();
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let on_run = || {
        if done.fetch_add(1, Ordering::SeqCst) + 1 == 100 {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let sw = sweep(&plan, &SweepOptions { jobs: 1, stop: &stop, on_run: &on_run }).unwrap();
    assert!(sw.interrupted);
    let r = results(&plan, &sw, Some(&dir)).unwrap();
    assert!(r.interrupted);
    assert_eq!(r.totals.runs, 100, "one job stops right after the run that set the flag");
    assert!(!r.failures.is_empty());
    for f in &r.failures {
        assert!(std::path::Path::new(f.file.as_ref().unwrap()).exists());
    }
    assert!(r.render(walsim::results::Format::Text).contains("interrupted"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_exits_2() {
    for (args, want) in [
        (&["--seeds", "5..3"][..], "5..3"),
        (&["--shard", "0/4"], "0/4"),
        (&["--shard", "3/2"], "3/2"),
        (&["--count", "0"], "--count"),
        (&["--jobs", "0"], "--jobs"),
        (&["--matrix", "synchronous_commit=local,bogus"], "bogus"),
        (&["--matrix", "nonsense=1,2"], "unknown key nonsense\n"),
        (&["--matrix", "wal_log_hints=on", "--matrix", "wal_log_hints=off"], "twice"),
        (&["--set", "synchronous_commit=on", "--matrix", "synchronous_commit=local"], "--set"),
        (&["--set", "workload.clients=0"], "workload.clients"),
        (&["--seeds", "1..3", "--count", "2"], "--count"),
    ] {
        let (code, out, err) = explore(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// Runs reaching `mark`, all cells together, from `--json` output.
fn mark_total(json: &str, mark: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["cells"].as_array().unwrap().iter().map(|c| c["marks"][mark].as_u64().expect("every mark listed")).sum()
}

#[test]
fn the_default_sweep_reaches_its_marks_and_names_those_it_cannot() {
    // The default matrix fails back and waits for synchronous standbys:
    // a sweep that never got there would prove nothing about them.
    let (code, json, err) = explore(&["--count", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    for m in ["failback_converged", "sync_rep_waited", "power_loss_hit_unsynced_write"] {
        assert!(mark_total(&json, m) > 0, "the default sweep never reached {m}");
    }
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names = v["cells"][0]["marks"].as_object().unwrap();
    assert_eq!(names.len(), walsim_model::marks::Mark::all().len(), "every mark, reached or not");
    let (_, text, _) = explore(&["--count", "2"]);
    let sometimes = text.lines().find(|l| l.starts_with("sometimes (runs reaching each mark): ")).unwrap();
    assert!(sometimes.contains("sync_rep_waited "), "{sometimes}");
    // Asynchronous replication: no commit can wait for a standby, and the
    // summary says the sweep never got there.
    let (code, text, err) = explore(&["--count", "2", "--set", "synchronous_standby_names="]);
    assert_eq!(code, 0, "{err}");
    let sometimes = text.lines().find(|l| l.starts_with("sometimes")).unwrap();
    assert!(!sometimes.contains("sync_rep_waited"), "{sometimes}");
    let never = text.lines().find(|l| l.starts_with("never reached: ")).expect("a never-reached line");
    assert!(never.contains("sync_rep_waited"), "{never}");
    assert!(never.ends_with("(no run of this sweep got there)"), "{never}");
}
