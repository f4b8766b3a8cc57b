//! Trace files: a saved failure replays to the same trace_hash; a damaged,
//! foreign or wrong-version file is exit 2 with a one-line reason.

mod common;
use common::{cli, explore_failures, temp_dir};
use std::path::{Path, PathBuf};

/// A small failing sweep: (explore JSON, saved trace files).
fn saved_failures(dir: &Path) -> (serde_json::Value, Vec<PathBuf>) {
    let v = explore_failures(
        dir,
        &["--count", "3", "--set", "scheduler.steps=300", "--matrix", "synchronous_commit=local,on"],
    );
    let files = v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| PathBuf::from(f["file"].as_str().unwrap()))
        .collect();
    (v, files)
}

#[test]
fn saved_failures_replay_exactly() {
    let dir = temp_dir("replay");
    let (v, files) = saved_failures(&dir);
    assert_eq!(files.len(), 2, "one per cell: {v}");
    for (f, file) in v["failures"].as_array().unwrap().iter().zip(&files) {
        let (code, out, err) = cli(&["replay", file.to_str().unwrap(), "--json"]);
        assert_eq!(code, 1, "a violation replays as a violation: {err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["trace_hash"], f["trace_hash"]);
        assert_eq!(r["reproduced"], true);
        assert_eq!(r["invariant"], "wal_before_data");
        assert_eq!(r["config"]["rules"]["wal_before_data"], false, "the effective config is in the file");
        let (_, log, _) = cli(&["replay", file.to_str().unwrap(), "--log"]);
        assert!(log.lines().count() as u64 > f["events"].as_u64().unwrap(), "a log line per event");
        assert!(log.contains("reproduced: the same trace_hash"), "{log}");
    }
    assert!(
        std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.'))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_files_exit_2_with_one_line() {
    let dir = temp_dir("corrupt");
    let (_, files) = saved_failures(&dir);
    let good = std::fs::read(&files[0]).unwrap();
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 1;
    let mut version = good.clone();
    version[8] = 2;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "not a walsim trace"),
        ("foreign", b"synchronous_commit = \"on\"\n".to_vec(), "not a walsim trace"),
        ("truncated", good[..good.len() - 20].to_vec(), "truncated"),
        ("header-only", good[..10].to_vec(), "truncated"),
        ("flipped", flipped, "checksum"),
        ("version", version, "format version 2 (written by walsim 0.1.0) is not supported"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let (code, out, err) = cli(&["replay", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}");
        assert!(out.is_empty(), "{name}: {out}");
        assert!(err.contains(want) && err.contains(name), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }
    let (code, _, err) = cli(&["replay", "/nonexistent/x.walsim"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/x.walsim"), "{err}");
    let (code, _, _) = cli(&["replay", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "a directory");
    std::fs::remove_dir_all(&dir).unwrap();
}
