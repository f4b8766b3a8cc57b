//! The runner's refactorings change no outcome: fixed seeds under several
//! configurations give the `trace_hash` recorded before them
//! (tests/fixtures/trace_hashes.txt: `sets|seed|outcome|events|trace_hash`,
//! written by `walsim run --seed N ... --json`; first at commit 46777f1,
//! regenerated when the model changed on purpose after it — rerun each
//! line's command and rewrite it), and
//! saved trace files (tests/fixtures/traces, written by `explore
//! --save-failures` then) replay to the hash they recorded.

mod common;
use common::cli;

#[test]
fn fixed_seeds_keep_their_trace_hashes() {
    let text = include_str!("fixtures/trace_hashes.txt");
    let mut checked = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        let (sets, seed, outcome, events, hash) = (f[0], f[1], f[2], f[3], f[4]);
        let mut args = vec!["run", "--seed", seed, "--json"];
        args.extend(sets.split_whitespace());
        let (_, out, err) = cli(&args);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{line}: {e}: {err}"));
        let got =
            (v["outcome"].as_str().unwrap(), v["events"].to_string(), v["trace_hash"].as_str().unwrap());
        assert_eq!(got, (outcome, events.to_string(), hash), "{line}");
        checked += 1;
    }
    assert!(checked >= 80, "{checked} lines");
}

#[test]
fn saved_trace_files_replay_to_their_recorded_hash() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/traces");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    for line in expected.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let path = dir.join(f[0]);
        let (code, out, err) = cli(&["replay", path.to_str().unwrap(), "--json"]);
        assert_eq!(code, 1, "{line}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["trace_hash"].as_str().unwrap(), f[1], "{line}");
        assert_eq!(v["reproduced"], true, "{line}");
        assert_eq!(v["events"].to_string(), f[3], "{line}");
    }
}
