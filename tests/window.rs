//! `walsim explore --window N --around ...` on the command line.

mod common;
use common::{cli, temp_dir};

#[test]
fn a_crash_window_finds_the_planted_bug_and_saves_a_replayable_path() {
    let dir = temp_dir("window");
    let d = dir.to_str().unwrap();
    let args = [
        "explore",
        "--window",
        "3",
        "--around",
        "crash",
        "--set",
        "rules.wal_before_data=false",
        "--set",
        "scheduler.steps=300",
        "--json",
        "--save-failures",
        d,
    ];
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let w = &v["windows"][0];
    assert_eq!(w["complete"], true);
    assert!(w["distinct_states"].as_u64().unwrap() > 0);
    assert!(w["verdicts"].as_object().unwrap().keys().any(|k| k.contains("wal_before_data")), "{w}");
    let file = w["files"][0].as_str().unwrap();
    let (code, out, err) = cli(&["replay", file, "--json"]);
    assert_eq!(code, 1, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["reproduced"], true);
    assert_eq!(r["invariant"], "wal_before_data");
    // --fail-on-violation makes it exit 1; the same command is deterministic.
    let mut strict = args.to_vec();
    strict.push("--fail-on-violation");
    assert_eq!(cli(&strict).0, 1);
    assert_eq!(cli(&args).1, out_of(&args));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn out_of(args: &[&str]) -> String {
    cli(args).1
}

#[test]
fn window_bad_input_is_exit_2() {
    for args in [
        &["explore", "--window", "0", "--around", "crash"][..],
        &["explore", "--window", "40", "--around", "crash"],
        &["explore", "--window", "2", "--around", "sideways"],
        &["explore", "--window", "2"],
        &["explore", "--window", "2", "--around", "crash", "--count", "5"],
        &["explore", "--window", "2", "--around", "crash", "--set", "scheduler.policy=pct"],
    ] {
        let (code, _, err) = cli(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}

/// Prefix seeds run in parallel; the report (and the files saved) come in
/// prefix-seed order, so `--jobs 1` and `--jobs 2` print the same bytes.
#[test]
fn windows_in_parallel_print_what_one_thread_prints() {
    let base = [
        "explore",
        "--window",
        "3",
        "--around",
        "crash",
        "--prefix-seeds",
        "1..=4",
        "--set",
        "rules.sync_data_directory_after_crash=false",
        "--set",
        "scheduler.steps=200",
    ];
    let with_jobs = |jobs: &str, json: bool| {
        let mut a = base.to_vec();
        a.extend(["--jobs", jobs]);
        if json {
            a.push("--json");
        }
        let (code, out, err) = cli(&a);
        assert_eq!(code, 0, "{err}");
        out
    };
    let one = with_jobs("1", true);
    assert_eq!(one, with_jobs("2", true));
    let v: serde_json::Value = serde_json::from_str(&one).unwrap();
    let seeds: Vec<u64> =
        v["windows"].as_array().unwrap().iter().map(|w| w["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [1, 2, 3, 4]);
    assert_eq!(with_jobs("1", false), with_jobs("2", false));
    let (code, _, err) = cli(&[&base[..], &["--jobs", "0"]].concat());
    assert_eq!(code, 2, "{err}");
}
