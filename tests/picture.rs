//! `walsim picture`: one self-contained, deterministic HTML file per run,
//! checked as text and, where Chromium is installed, in a real headless
//! browser (no console error, the lanes, the fork marker and the
//! refusal or violation label in the DOM the page builds).
//!
//! The browser test is skipped, with a message, when no Chromium is found,
//! so `cargo test --workspace` needs no browser; with
//! `WALSIM_BROWSER_TEST=1` (as `.ci/run` sets it) a missing browser fails
//! the test instead. `WALSIM_CHROMIUM=/path/to/chromium` picks the binary.

mod common;
use common::{cli, explore_failures, temp_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FAILBACK: &[&str] = &["--scenario", "blog-failback-commit", "--seed", "1"];
const VIOLATION: &[&str] = &["--set", "rules.wal_before_data=false", "--seed", "1"];
/// docs/findings.md's command for the history-file finding's coincidence:
/// WAL of timeline 2 framed right where node1's own WAL ended.
const FINDING: &[&str] =
    &["--scenario", "history-file-before-start", "--seed", "2", "--set", "workload.key_space=100000"];

fn picture(args: &[&str], out: &Path) -> String {
    let mut all = vec!["picture"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", out.to_str().unwrap()]);
    let (code, stdout, err) = cli(&all);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.starts_with("walsim picture: wrote "), "{stdout}");
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn the_same_run_gives_the_same_bytes_and_nothing_is_fetched() {
    let dir = temp_dir("picture-det");
    // The same command twice (the output path is part of the page: the
    // command that redraws it).
    let a = dir.join("a.html");
    let html = picture(FAILBACK, &a);
    let again = picture(FAILBACK, &a);
    assert!(html == again, "the same run gives a byte-identical file");
    assert!(html.len() < 400 * 1024, "{} bytes", html.len());
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Self-contained: no URL, no external resource of any kind.
    for bad in ["http:", "https:", "src=", "href=", "@import", "url(", "<link", "<iframe", "<img"] {
        assert!(!html.contains(bad), "the page contains {bad}");
    }
    assert_eq!(html.matches("<g class=\"lane\"").count(), 2, "one lane per node");
    assert!(html.contains("class=\"mark fork\""), "the fork marker");
    assert!(html.contains("is not in this server's history"), "the refusal's message");

    // --svg: the bare SVG, also deterministic.
    let svg = dir.join("a.svg");
    let (code, _, err) =
        cli(&["picture", "--scenario", "blog-failback-commit", "--svg", "-o", svg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<?xml") && text.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(!text.contains("<script"), "the bare SVG has no script");
    assert!(text.contains("class=\"mark fork\"") && text.contains("class=\"mark refusal\""));
}

#[test]
fn a_trace_file_and_a_shrunk_run_get_pictures() {
    let dir = temp_dir("picture-trace");
    let v = explore_failures(&dir, &["--count", "3", "--matrix", "synchronous_commit=on"]);
    let input = v["failures"][0]["file"].as_str().unwrap().to_string();
    let out = dir.join("trace.html");
    let html = picture(&[&input], &out);
    assert!(html.contains("VIOLATION of wal_before_data"), "the violation's label");
    assert!(html.contains(&format!("walsim picture {input}")), "the command that redraws it");

    let (shrunk, pic) = (dir.join("s.walsim"), dir.join("s.html"));
    let (code, text, err) =
        cli(&["shrink", &input, "-o", shrunk.to_str().unwrap(), "--picture", pic.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains(&format!("picture: {}", pic.display())), "{text}");
    let html = std::fs::read_to_string(&pic).unwrap();
    assert!(html.contains("VIOLATION of wal_before_data"));
    // The shrunk run's picture is the picture of the shrunk trace file.
    let again = dir.join("again.html");
    let (code, _, _) = cli(&["picture", shrunk.to_str().unwrap(), "-o", again.to_str().unwrap()]);
    assert_eq!(code, 0);
    let events =
        |h: &str| h.split(" events. One lane").next().unwrap().rsplit('>').next().unwrap().to_string();
    assert_eq!(events(&html), events(&std::fs::read_to_string(&again).unwrap()));
}

#[test]
fn bad_input_is_exit_2_with_one_line() {
    let dir = temp_dir("picture-bad");
    let out = dir.join("x.html");
    let o = out.to_str().unwrap();
    let junk = dir.join("junk.walsim");
    std::fs::write(&junk, "not a trace").unwrap();
    let j = junk.to_str().unwrap();
    for (args, want) in [
        (vec!["picture", j, "-o", o], "not a walsim trace"),
        (vec!["picture", j, "--seed", "3", "-o", o], "not both"),
        (vec!["picture", "/nonexistent/t.walsim", "-o", o], "/nonexistent/t.walsim"),
        (vec!["picture", "--steps", "0", "-o", o], "--steps"),
        (vec!["picture", "--set", "synchronous_commit=bogus", "-o", o], "bogus"),
        (vec!["picture", "--scenario", "no-such-story", "-o", o], "no-such-story"),
        (vec!["picture", "--seed", "1", "-o", "/nonexistent/dir/p.html"], "/nonexistent/dir/p.html"),
    ] {
        let (code, stdout, err) = cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(stdout.is_empty(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    assert!(!out.exists());
    assert_eq!(cli(&["picture", "--seed", "1"]).0, 2, "-o is required");
}

// ---- the real browser ----

/// A Chromium binary: `WALSIM_CHROMIUM`, else the first of Debian's names
/// on PATH.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WALSIM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in ["chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "headless_shell"]
    {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Loads `page` headless; returns (the DOM after the scripts ran, the
/// browser's console lines).
fn load(chromium: &Path, page: &Path, fragment: &str, profile: &Path) -> (String, Vec<String>) {
    let url = format!("file://{}{fragment}", page.display());
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Any attempt to fetch from the network fails, and the failure
            // shows on the console.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    // Read both pipes on threads, so a chatty browser cannot block.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut so, &mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut se, &mut s).ok();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish loading {url} within 120 s", chromium.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (dom, err) = (t_out.join().unwrap(), t_err.join().unwrap());
    assert!(status.success(), "{} exited with {status}: {err}", chromium.display());
    // Chromium logs every console message as `...:CONSOLE...] "text",
    // source: ...`, whatever its level; the page itself never logs, so
    // every such line is an error or a warning.
    let console = err.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    (dom, console)
}

#[test]
fn the_picture_opens_in_headless_chromium_without_errors() {
    let required = std::env::var("WALSIM_BROWSER_TEST").is_ok_and(|v| v == "1");
    let Some(chromium) = find_chromium() else {
        assert!(
            !required,
            "WALSIM_BROWSER_TEST=1 but no chromium found (install Debian's chromium or \
             chromium-headless-shell, or set WALSIM_CHROMIUM)"
        );
        // Straight to stderr, not through eprintln!, which the test
        // harness captures and hides for a passing test.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"the_picture_opens_in_headless_chromium_without_errors: skipped: no chromium found (install \
              Debian's chromium or chromium-headless-shell, or set WALSIM_CHROMIUM; WALSIM_BROWSER_TEST=1 \
              makes this a failure)\n",
        );
        return;
    };
    let dir = temp_dir("picture-browser");
    let cases: [(&str, &[&str], &[&str]); 3] = [
        (
            "failback",
            FAILBACK,
            &[
                "class=\"mark fork\"",
                "fork point 0/",
                "class=\"mark refusal\"",
                "is not in this server's history",
                "class=\"m m-refusal\"",
            ],
        ),
        (
            "violation",
            VIOLATION,
            &["class=\"mark violation\"", "VIOLATION of wal_before_data", "but WAL is flushed only to"],
        ),
        (
            "finding",
            FINDING,
            &["class=\"mark fork\"", "pg_ctl promote on node2", "VIOLATION of no_silent_divergence"],
        ),
    ];
    for (name, args, wants) in cases {
        let page = dir.join(format!("{name}.html"));
        picture(args, &page);
        let (dom, console) = load(&chromium, &page, "", &dir.join(format!("profile-{name}")));
        assert!(console.is_empty(), "{name}: console messages:\n{}", console.join("\n"));
        assert!(
            dom.contains("<body data-ready=\"1\">"),
            "{name}: the page's script did not finish: {dom:.2000}"
        );
        assert!(dom.contains("<pre id=\"js-errors\"></pre>"), "{name}: script errors in the page");
        for node in ["node1", "node2"] {
            assert!(dom.contains(&format!("<g class=\"lane\" id=\"lane-{node}\"")), "{name}: lane of {node}");
        }
        for w in wants {
            assert!(dom.contains(w), "{name}: {w} missing from the DOM");
        }
        // The script showed the key event's log lines in the panel.
        let panel =
            dom.split("<pre id=\"panel\">").nth(1).expect("the panel").split("</pre>").next().unwrap();
        assert!(panel.starts_with("event ") && panel.contains("2000-01-01 00:00:0"), "{name}: panel {panel}");
    }
    // `#event=N` opens the page at event N.
    let page = dir.join("failback.html");
    let (dom, console) = load(&chromium, &page, "#event=12", &dir.join("profile-hash"));
    assert!(console.is_empty(), "console messages:\n{}", console.join("\n"));
    let panel = dom.split("<pre id=\"panel\">").nth(1).expect("the panel").split("</pre>").next().unwrap();
    assert!(panel.starts_with("event 12 (main phase): "), "{panel}");
    assert!(
        panel.contains("2000-01-01 00:00:00.012 UTC ["),
        "the event's log line with its timestamp: {panel}"
    );
    // ... and every node's exact positions after it.
    assert!(panel.contains("\nnode1 (primary · TLI 1): insert 0/"), "{panel}");
    assert!(panel.contains("\nnode2 (standby · TLI 1): insert 0/"), "{panel}");
}
