//! The conformance comparison, against a recorded run of the real server
//! (tests/fixtures/conform-pg15.json, from `walsim conform --json` with
//! Debian's PostgreSQL 15): the model agrees with it, and switching off a
//! rule a story depends on makes the comparison report the disagreement.
//! (`walsim conform` itself, in CI, runs the real server.)

use walsim::conform::Story;
use walsim::conformance::{RealSummary, compare, model_outcome};

fn recorded(name: &str) -> RealSummary {
    let text = std::fs::read_to_string("tests/fixtures/conform-pg15.json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let row = v["scenarios"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap();
    serde_json::from_value(row["postgres"].clone()).unwrap()
}

#[test]
fn the_model_agrees_with_the_recorded_server() {
    for story in Story::ALL {
        let real = recorded(story.name());
        let model = model_outcome(story, 5, &[]).unwrap();
        let diffs = compare(&real, &model);
        assert!(diffs.is_empty(), "{}: {diffs:?}", story.name());
    }
}

#[test]
fn switching_off_a_rule_the_story_depends_on_is_a_disagreement() {
    // Without the walsender's start-point checks, PostgreSQL's refusal
    // "requested starting point ... is not in this server's history" is
    // missing from what the model predicts.
    let real = recorded("diverged-naive-after-immediate");
    let sets = ["rules.walsender_checks_start_point=false".to_string()];
    let model = model_outcome(Story::DivergedNaiveAfterImmediate, 5, &sets).unwrap();
    let diffs = compare(&real, &model);
    assert!(!diffs.is_empty(), "expected a disagreement, model said {model:?}");
    assert!(diffs.iter().any(|d| d.contains("NotInHistory")), "{diffs:?}");

    // Without "fast shutdown sends all WAL", the clean switchover leaves
    // the old primary ahead of the promoted standby: refused.
    let real = recorded("clean-switchover");
    let sets = ["rules.shutdown_sends_all_wal=false".to_string()];
    let model = model_outcome(Story::CleanSwitchover, 20, &sets).unwrap();
    assert!(!compare(&real, &model).is_empty(), "{model:?}");
}

#[test]
fn switching_off_the_walsender_slot_rule_is_a_disagreement() {
    // In connection order the restarted standby b does not become
    // synchronous again; PostgreSQL puts it back into the lowest free slot.
    let real = recorded("sync-first-restart");
    let sets = ["rules.walsender_takes_lowest_free_slot=false".to_string()];
    let model = model_outcome(Story::SyncFirstRestart, 3, &sets).unwrap();
    let diffs = compare(&real, &model);
    assert!(
        diffs.iter().any(|d| d.contains("after b restarts, b is the synchronous standby again")),
        "{diffs:?}"
    );
}

#[test]
fn relations_not_classes_are_compared_for_positions() {
    let real = recorded("lagging-standby-ahead");
    assert!(real.relations.iter().any(|(n, h)| n == "requested start > server flush" && *h));
    let model = model_outcome(Story::LaggingStandbyAhead, 3, &[]).unwrap();
    let mine: Vec<&str> = model.relations.iter().map(|(n, _)| n.as_str()).collect();
    assert!(mine.contains(&"requested start > server flush"), "{mine:?}");
    assert!(
        mine.contains(
            &"requested start is the start of the WAL segment holding the old primary's end of WAL"
        )
    );
}
