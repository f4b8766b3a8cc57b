//! The built-in scenarios (`sim/scenarios/*.toml`, the stories `walsim run
//! --scenario NAME` tells) walked by the model's own unit tests: each says
//! how *every* seed must end, so any scheduler's choices must end that way,
//! including [`walk`]'s. A scenario's `[rules]`-free settings with one rule
//! switched off must break the invariant that rule protects (the homes of
//! the rules the default walks cannot reach).

use crate::event::RefusalKind;
use crate::invariants::Invariant;
use crate::settings::Settings;
use crate::testkit::{End, Walk, walk};

/// Seeds walked per scenario.
const SEEDS: u64 = 6;

/// The scenario's settings (its `[scenario]` table removed, `sets` applied
/// on top) and that table.
fn load(text: &str, sets: &[&str]) -> (Settings, toml::Table) {
    let mut t: toml::Table = text.parse().expect("a scenario is TOML");
    let meta = match t.remove("scenario") {
        Some(toml::Value::Table(m)) => m,
        _ => panic!("a [scenario] table"),
    };
    for set in sets {
        let over: toml::Table = set.parse().expect("a dotted-key assignment");
        merge(&mut t, over);
    }
    let s: Settings = toml::Value::Table(t).try_into().expect("scenario settings");
    s.validate().expect("valid scenario settings");
    (s, meta)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn outcome(e: &End) -> &'static str {
    match e {
        End::Ok => "ok",
        End::Violation(_) => "violation",
        End::Refused(_) => "refused",
        End::Stuck => "stuck",
    }
}

fn strings(meta: &toml::Table, key: &str) -> Vec<String> {
    meta.get(key)
        .and_then(|v| v.as_array())
        .map(|a| a.iter().map(|x| x.as_str().expect("a string").to_string()).collect())
        .unwrap_or_default()
}

/// `scenario::Meta::check`'s rules: the ending is `expect` (or one of the
/// documented `also`), with every `expect_refusals` kind among the run's
/// refusals and every `expect_waits` text among what still waits.
fn judge(name: &str, seed: u64, meta: &toml::Table, w: &Walk) {
    let got = outcome(&w.end);
    if strings(meta, "also").iter().any(|a| a == got) {
        return;
    }
    if let Some(want) = meta.get("expect").and_then(|v| v.as_str()) {
        assert_eq!(got, want, "{name} seed {seed}: {:?} (waits {:?})", w.end, w.waits);
    }
    for kind in strings(meta, "expect_refusals") {
        let kind: RefusalKind = toml::Value::String(kind).try_into().expect("a refusal kind");
        assert!(w.refusals.contains(&kind), "{name} seed {seed}: no {kind:?} refusal in {:?}", w.refusals);
    }
    let waits = w.waits.join("; ");
    for text in strings(meta, "expect_waits") {
        assert!(waits.contains(&text), "{name} seed {seed}: {text:?} not in {waits:?}");
    }
}

macro_rules! scenarios {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let (s, meta) = load(include_str!(concat!("../../sim/scenarios/", $file, ".toml")), &[]);
                for seed in 1..=SEEDS {
                    judge($file, seed, &meta, &walk(&s, seed, false));
                }
            }
        )*
    };
}

scenarios! {
    blog_data_flush_standby_down => "blog-data-flush-standby-down",
    blog_failback_commit => "blog-failback-commit",
    blog_failback_data_flush => "blog-failback-data-flush",
    rewind_after_divergence => "rewind-after-divergence",
    rewind_without_hints => "rewind-without-hints",
    clean_switchover => "clean-switchover",
    truncate_data_flush => "truncate-data-flush",
    diverged_naive_after_immediate => "diverged-naive-after-immediate",
    diverged_naive_after_fast => "diverged-naive-after-fast",
    diverged_rewind => "diverged-rewind",
    lagging_standby_ahead => "lagging-standby-ahead",
    sync_standby_down => "sync-standby-down",
    history_file_before_start => "history-file-before-start",
    second_start_after_history_fetch => "second-start-after-history-fetch",
    history_file_clean_shutdown => "history-file-clean-shutdown",
    rewind_before_checkpoint => "rewind-before-checkpoint",
    sync_first_restart => "sync-first-restart",
    sync_any_both_down => "sync-any-both-down",
    remote_apply_replay_paused => "remote-apply-replay-paused",
    standby_down_archive => "standby-down-archive",
    double_promotion_archive => "double-promotion-archive",
    rewind_restore_target_wal => "rewind-restore-target-wal",
    history_file_from_archive => "history-file-from-archive",
    segment_removed_standby_down => "segment-removed-standby-down",
    slot_keeps_standby_down => "slot-keeps-standby-down",
    slot_invalidated_standby_down => "slot-invalidated-standby-down",
    segment_removed_switchover => "segment-removed-switchover",
    rewind_target_wal_removed => "rewind-target-wal-removed",
}

/// The first seed (up to `within`) whose walk of scenario `text` with
/// `sets` breaks an invariant, and the invariant.
fn first_violation(text: &str, sets: &[&str], within: u64) -> Option<(u64, Invariant)> {
    let (s, _) = load(text, sets);
    (1..=within).find_map(|seed| match walk(&s, seed, false).end {
        End::Violation(v) => Some((seed, v.invariant)),
        _ => None,
    })
}

macro_rules! scenario_text {
    ($file:literal) => {
        include_str!(concat!("../../sim/scenarios/", $file, ".toml"))
    };
}

#[test]
fn a_diverged_node_streams_only_through_the_timeline_checks() {
    // Without the walsender's start-point check and the startup process's
    // fork check the old primary streams the new timeline from the start of
    // its own segment: WAL below its replay position is flushed and
    // reported but never replayed.
    let off = ["rules.walsender_checks_start_point=false", "rules.startup_checks_timeline_fork=false"];
    let hit = first_violation(scenario_text!("blog-failback-commit"), &off, 6);
    assert_eq!(hit.map(|h| h.1), Some(Invariant::AcknowledgedCommitsSurvive), "{hit:?}");
}

#[test]
fn promotion_must_pick_the_newest_timeline() {
    let off = ["rules.promotion_picks_newest_timeline=false"];
    let hit = first_violation(scenario_text!("double-promotion-archive"), &off, 6);
    assert_eq!(hit.map(|h| h.1), Some(Invariant::TimelinesConsistent), "{hit:?}");
}

#[test]
fn wal_framing_checks_keep_another_history_from_being_replayed() {
    let off = ["rules.wal_reader_checks_framing=false"];
    let hit = first_violation(scenario_text!("history-file-before-start"), &off, 3);
    assert_eq!(hit.map(|h| h.1), Some(Invariant::NoSilentDivergence), "{hit:?}");
}

#[test]
fn removing_unarchived_segments_is_caught() {
    // archive_command unset: every completed segment stays `.ready`, and
    // RemoveOldXlogFiles must keep it (XLogArchiveCheckDone).
    let text = scenario_text!("standby-down-archive");
    assert_eq!(first_violation(text, &["archive_command=false"], SEEDS), None);
    let off = ["archive_command=false", "rules.remove_checks_archive_done=false"];
    let hit = first_violation(text, &off, 3);
    assert_eq!(hit.map(|h| h.1), Some(Invariant::WalSegmentsKept), "{hit:?}");
}

#[test]
fn every_built_in_scenario_is_walked() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/scenarios");
    let src = include_str!("tests_scenarios.rs");
    for e in std::fs::read_dir(dir).expect("sim/scenarios") {
        let name = e.expect("an entry").path().file_stem().expect("a name").to_string_lossy().to_string();
        assert!(src.contains(&format!("=> \"{name}\"")), "{name} is not walked here");
    }
}
