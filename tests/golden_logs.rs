//! Golden logs: the PostgreSQL-level lines of `walsim run --scenario NAME
//! --seed 1 --log` for one scenario of each family, compared with
//! tests/golden/NAME.log. A message that disappears, changes or appears
//! twice ("redo done at", "started streaming WAL", a checkpoint's reason)
//! fails here.
//!
//! Kept: lines at LOG, WARNING, ERROR, DETAIL, FATAL and PANIC from every
//! process but client backends (whose lines narrate the workload), without
//! the timestamp and pid. To regenerate after a deliberate change, run
//!
//!     WALSIM_BLESS=1 cargo test -p walsim-suite --test golden_logs
//!
//! and review the diff of tests/golden/ before committing it.

mod common;

/// One scenario per family (the built-ins' name prefixes).
const FAMILIES: &[&str] = &[
    "blog-failback-commit",
    "clean-switchover",
    "diverged-rewind",
    "history-file-clean-shutdown",
    "lagging-standby-ahead",
    "remote-apply-replay-paused",
    "rewind-after-divergence",
    "second-start-after-history-fetch",
    "sync-first-restart",
    "truncate-data-flush",
];

const LEVELS: &[&str] = &["LOG", "WARNING", "ERROR", "DETAIL", "FATAL", "PANIC"];

/// `2000-01-01 00:00:00.000 UTC [1004] node1 startup LOG:  msg` →
/// `node1 startup LOG:  msg`, for the kept levels and processes.
fn postgres_lines(log: &str) -> String {
    let mut out = String::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("] ") else { continue };
        let kept = LEVELS.iter().any(|l| rest.contains(&format!(" {l}:  ")));
        if kept && !rest.contains(" client backend ") {
            out.push_str(rest);
            out.push('\n');
        }
    }
    out
}

#[test]
fn postgres_log_lines_match_the_golden_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("WALSIM_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for name in FAMILIES {
        let (code, stdout, stderr) = common::cli(&["run", "--scenario", name, "--seed", "1", "--log"]);
        assert_eq!(code, 0, "{name}: {stderr}");
        let got = postgres_lines(&stdout);
        assert!(got.lines().count() > 10, "{name}: too few lines to compare:\n{got}");
        let path = dir.join(format!("{name}.log"));
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (WALSIM_BLESS=1 cargo test -p walsim-suite --test golden_logs)", path.display())
        });
        if got != want {
            let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
            let i = g.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
            failures.push(format!(
                "{name}: line {} differs\n  got:  {}\n  want: {}",
                i + 1,
                g.get(i).unwrap_or(&"(end of log)"),
                w.get(i).unwrap_or(&"(end of log)")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(if the change is deliberate: WALSIM_BLESS=1 cargo test -p walsim-suite --test golden_logs, then review git diff tests/golden/)",
        failures.join("\n")
    );
}

#[test]
fn the_filter_keeps_postgres_lines_only() {
    let log = "2000-01-01 00:00:00.000 UTC [1004] node1 startup LOG:  redo done at 0/A0\n\
               2000-01-01 00:00:00.000 UTC [1101] node1 client backend LOG:  waiting for 0/498\n\
               2000-01-01 00:00:00.000 UTC [1011] node1 walsender DEBUG:  sent WAL\n\
               2000-01-01 00:00:00.000 UTC [1011] node1 walsender ERROR:  requested starting point\n";
    assert_eq!(
        postgres_lines(log),
        "node1 startup LOG:  redo done at 0/A0\nnode1 walsender ERROR:  requested starting point\n"
    );
}
