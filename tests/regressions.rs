//! The regression corpus: the shrunk trace of every violation finding in
//! docs/findings.md (tests/regressions/NAME.walsim, with a sidecar
//! NAME.toml naming the finding, its command, the invariant, and what the
//! shrunk run gave). Each replays to the same outcome, invariant, events
//! and trace hash. When the model changes a finding's meaning on purpose,
//! `tests/regressions/refresh.sh` regenerates them and the change shows in
//! review.

mod common;
use common::cli;

#[test]
fn every_finding_replays_as_recorded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut sidecars: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    sidecars.sort();
    assert!(sidecars.len() >= 6, "{} findings in the corpus", sidecars.len());
    for side in sidecars {
        let t: toml::Table = std::fs::read_to_string(&side).unwrap().parse().unwrap();
        let trace = side.with_extension("walsim");
        let (code, out, err) = cli(&["replay", trace.to_str().unwrap(), "--json"]);
        let name = side.display();
        assert_eq!(code, 1, "{name}: a violation, reproduced: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["reproduced"], true, "{name}");
        assert_eq!(v["outcome"], t["outcome"].as_str().unwrap(), "{name}");
        assert_eq!(v["invariant"], t["invariant"].as_str().unwrap(), "{name}");
        assert_eq!(v["events"].as_u64(), t["events"].as_integer().map(|e| e as u64), "{name}");
        assert_eq!(v["trace_hash"], t["trace_hash"].as_str().unwrap(), "{name}");
        // The finding's own command still shows the invariant.
        let args: Vec<&str> = t["command"].as_str().unwrap().split_whitespace().chain(["--json"]).collect();
        let (_, out, _) = cli(&args);
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["invariant"], t["invariant"].as_str().unwrap(), "{name}: {}", r["detail"]);
    }
}
