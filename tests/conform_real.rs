//! Runs every story against the real PostgreSQL server, if one is installed, and
//! checks that each outcome has the shape observed with PostgreSQL 15 (class,
//! messages, where they were printed, the rejoining node's mechanism, and every
//! checked relation).
//!
//! It is `#[ignore]`d, so a plain `cargo test --workspace` needs no server and
//! reports it as ignored, with the reason, instead of a silent "ok"; CI runs
//! the real server through `walsim conform` instead. Run it with
//! `WALSIM_REAL_POSTGRES=1 cargo test --test conform_real -- --ignored`; asked
//! for explicitly, it fails (with the reason) when no server is installed.

use std::time::Instant;

use walsim::conform::{self, MessageKind, Options, OutcomeClass, RealOutcome, Story};

use MessageKind::*;
use OutcomeClass::*;

/// The shape of an outcome: everything except LSN values and row counts.
struct Shape {
    class: OutcomeClass,
    messages: &'static [(MessageKind, &'static str)],
    relations: &'static [(&'static str, bool)],
    /// The rejoining node's mechanism kinds, in order of first appearance.
    mechanism: &'static [&'static str],
}

const DIVERGED: &[(&str, bool)] = &[
    ("old primary's end of WAL > fork point", true),
    ("old primary's end of WAL is in a later WAL segment than the fork point", true),
];

const NAIVE_REJOIN: &[(&str, bool)] = &[
    ("upstream's pg_stat_replication showed the rejoining node streaming", false),
    ("row count and hash equal on both nodes", false),
    ("requested start is the start of the WAL segment holding the old primary's end of WAL", true),
    ("requested start > fork point", true),
    ("walsender's \"history forked from timeline 1 at\" equals the fork point", true),
    ("\"before current recovery point\" equals the old primary's end of WAL", true),
];

const CONVERGED_REJOIN: &[(&str, bool)] = &[
    ("upstream's pg_stat_replication showed the rejoining node streaming", true),
    ("rejoined node replayed up to the upstream's current LSN", true),
    ("row count and hash equal on both nodes", true),
];

const CONSISTENT_AT_END: &[(&str, bool)] = &[
    ("startup's end of local WAL equals the rejoining node's end of local WAL", true),
    ("consistency point equals the rejoining node's end of local WAL", true),
];

const STREAMS_FROM_SEGMENT_START: (&str, bool) = (
    "walreceiver's start point is the start of the WAL segment holding the rejoining node's end of local WAL",
    true,
);

const HISTORY_COPIED: (&str, bool) =
    ("00000002.history is in the rejoining node's pg_wal before its first start as a standby", true);

const NAIVE_MESSAGES: &[(MessageKind, &str)] =
    &[(NotInHistory, "a server log, b server log"), (ForkedBeforeRecoveryPoint, "a server log")];

/// Crash recovery (immediate stop) then a refused naive rejoin.
const NAIVE_AFTER_CRASH: &[&str] = &[
    "entering_standby_mode",
    "redo_starts",
    "end_of_local_wal",
    "consistent_recovery_state",
    "fetching_history_file",
    "new_timeline_forked_off",
];

fn expected(story: Story) -> Shape {
    let cat = |parts: &[&[(&'static str, bool)]]| -> &'static [(&'static str, bool)] {
        Box::leak(parts.concat().into_boxed_slice())
    };
    match story {
        Story::DivergedNaiveAfterImmediate => Shape {
            class: Refused,
            messages: NAIVE_MESSAGES,
            relations: cat(&[DIVERGED, NAIVE_REJOIN, CONSISTENT_AT_END]),
            mechanism: NAIVE_AFTER_CRASH,
        },
        // After a clean shutdown the node is consistent at once (its checkpoint is
        // the end of its WAL), before it reads past that end.
        Story::DivergedNaiveAfterFast => Shape {
            class: Refused,
            messages: NAIVE_MESSAGES,
            relations: cat(&[DIVERGED, NAIVE_REJOIN, CONSISTENT_AT_END]),
            mechanism: &[
                "entering_standby_mode",
                "consistent_recovery_state",
                "end_of_local_wal",
                "fetching_history_file",
                "new_timeline_forked_off",
            ],
        },
        Story::DivergedRewind => Shape {
            class: Converged,
            messages: &[],
            relations: cat(&[
                DIVERGED,
                &[
                    ("source's pg_control shows timeline 2 before pg_rewind", true),
                    ("pg_rewind succeeded", true),
                    ("pg_rewind's divergence point equals the fork point", true),
                ],
                CONVERGED_REJOIN,
            ]),
            mechanism: &[
                "entering_standby_mode",
                "redo_starts",
                "consistent_recovery_state",
                "end_of_local_wal",
                "started_streaming",
            ],
        },
        Story::CleanSwitchover => Shape {
            class: Converged,
            messages: &[],
            relations: cat(&[
                &[
                    (
                        "standby replayed the old primary's whole WAL (shutdown checkpoint included) before promotion",
                        true,
                    ),
                    ("fork point equals the old primary's end of WAL", true),
                ],
                CONVERGED_REJOIN,
                CONSISTENT_AT_END,
                &[STREAMS_FROM_SEGMENT_START],
            ]),
            mechanism: &[
                "entering_standby_mode",
                "consistent_recovery_state",
                "end_of_local_wal",
                "fetching_history_file",
                "started_streaming",
                "replication_terminated",
                "new_target_timeline",
                "redo_starts",
            ],
        },
        Story::LaggingStandbyAhead => Shape {
            class: Refused,
            messages: &[(AheadOfFlush, "a server log, b server log")],
            relations: cat(&[
                &[
                    (
                        "old primary's end of WAL is in a later WAL segment than the lagging standby's replay position",
                        true,
                    ),
                    ("upstream's pg_stat_replication showed the rejoining node streaming", false),
                    ("row count and hash equal on both nodes", false),
                    (
                        "requested start is the start of the WAL segment holding the old primary's end of WAL",
                        true,
                    ),
                    ("requested start > server flush", true),
                    ("server flush equals the lagging standby's replay position", true),
                ],
                CONSISTENT_AT_END,
                &[STREAMS_FROM_SEGMENT_START],
            ]),
            mechanism: &[
                "entering_standby_mode",
                "redo_starts",
                "end_of_local_wal",
                "consistent_recovery_state",
                "started_streaming",
            ],
        },
        Story::SyncStandbyDown => Shape {
            class: Stuck,
            messages: &[(CommitWaitsForSyncRep, "pg_stat_activity on a, psql client on a")],
            relations: &[
                ("insert still waiting 0.5 s after its backend showed wait_event SyncRep", true),
                ("client was told the wait was cancelled after a local commit", true),
                ("cancelled insert's row is visible on the primary (committed locally before waiting)", true),
            ],
            mechanism: &[],
        },
        Story::StandbyDownArchive => Shape {
            class: Converged,
            messages: &[],
            relations: &[
                ("a removed the segment b needs after it archived it", true),
                ("the archive holds the segment b needs", true),
                ("b restored the segment it needs from the archive", true),
                ("row count and hash equal on both nodes", true),
            ],
            // No rejoin after a failover: the mechanism comparison has nothing to say.
            mechanism: &[],
        },
        Story::SyncFirstRestart => Shape {
            class: Converged,
            messages: &[(NowSynchronousStandby, "a server log")],
            relations: &[
                ("commits return while b is stopped", true),
                ("while b is stopped, c is the synchronous standby", true),
                ("after b restarts, b is the synchronous standby again", true),
                ("after b restarts, c is a potential standby", true),
            ],
            // No rejoin: the mechanism comparison has nothing to say.
            mechanism: &[],
        },
        Story::SyncAnyBothDown => Shape {
            class: Stuck,
            messages: &[
                (CommitWaitsForSyncRep, "pg_stat_activity on a, psql client on a, a server log"),
                (QuorumCandidate, "a server log"),
            ],
            relations: &[
                ("b and c are both quorum standbys while they stream", true),
                ("a commit waits with wait_event SyncRep while b and c are down", true),
            ],
            // No rejoin: the mechanism comparison has nothing to say.
            mechanism: &[],
        },
        Story::RemoteApplyReplayPaused => Shape {
            class: Converged,
            messages: &[
                (CommitWaitsForSyncRep, "pg_stat_activity on a"),
                (NowSynchronousStandby, "a server log"),
            ],
            relations: &[
                ("b is the synchronous standby", true),
                ("a commit waits with wait_event SyncRep while replay is paused on b", true),
                ("the waiting commit returns after pg_wal_replay_resume()", true),
            ],
            // No rejoin: the mechanism comparison has nothing to say.
            mechanism: &[],
        },
        Story::RewindWithoutHints => Shape {
            class: Refused,
            messages: &[(RewindNeedsHints, "pg_rewind output")],
            relations: cat(&[
                DIVERGED,
                &[
                    ("source's pg_control shows timeline 2 before pg_rewind", true),
                    ("pg_rewind succeeded", false),
                ],
            ]),
            mechanism: &[],
        },
        // Crash recovery targets timeline 2, replays A's own WAL past the fork, is
        // consistent at A's end E, streams timeline 2 from E's segment start and
        // loops on a framing error at E; no refusal, no exit.
        Story::HistoryFileBeforeStart => Shape {
            class: Stuck,
            messages: &[],
            relations: cat(&[
                DIVERGED,
                &[
                    ("new primary's WAL flush position > the old primary's end of WAL", true),
                    HISTORY_COPIED,
                    ("replay position unchanged over 3 s", true),
                    ("upstream's pg_stat_replication showed the rejoining node streaming", false),
                    ("rejoining node replayed past its end of local WAL", false),
                    ("row count and hash equal on both nodes", false),
                    ("startup process logged the framing error more than once at the same position", true),
                ],
                CONSISTENT_AT_END,
                &[
                    STREAMS_FROM_SEGMENT_START,
                    ("framing error position equals the rejoining node's end of local WAL", true),
                ],
            ]),
            mechanism: &[
                "entering_standby_mode",
                "crash_recovery_starts",
                "redo_starts",
                "end_of_local_wal",
                "consistent_recovery_state",
                "started_streaming",
                "framing_error",
            ],
        },
        Story::SecondStartAfterHistoryFetch => Shape {
            class: Refused,
            messages: &[
                (NotInHistory, "a server log, b server log"),
                (ForkedBeforeRecoveryPoint, "a server log"),
                (MinRecoveryPointNotOnTimeline, "a server log"),
            ],
            relations: cat(&[
                DIVERGED,
                NAIVE_REJOIN,
                &[
                    (
                        "walreceiver fetched 00000002.history into the rejoining node's pg_wal during the first rejoin",
                        true,
                    ),
                    (
                        "pg_controldata's minimum recovery point after the first rejoin equals the old primary's end of WAL",
                        true,
                    ),
                    ("upstream's pg_stat_replication showed the node streaming after its last start", false),
                    ("server exited after the startup process's FATAL", true),
                ],
                CONSISTENT_AT_END,
                &[
                    ("minimum recovery point in the FATAL equals the old primary's end of WAL", true),
                    ("minimum recovery point in the FATAL > fork point", true),
                ],
            ]),
            mechanism: Box::leak(
                [NAIVE_AFTER_CRASH, &["min_recovery_point_not_on_timeline"]].concat().into(),
            ),
        },
        Story::HistoryFileCleanShutdown => Shape {
            class: Refused,
            messages: &[(NotAChild, "a server log")],
            relations: cat(&[
                DIVERGED,
                &[
                    ("pg_controldata's latest checkpoint > fork point", true),
                    HISTORY_COPIED,
                    ("upstream's pg_stat_replication showed the node streaming after its last start", false),
                    ("server exited after the startup process's FATAL", true),
                    ("DETAIL's latest checkpoint equals pg_controldata's latest checkpoint", true),
                    ("DETAIL's latest checkpoint > fork point", true),
                    ("DETAIL's fork point equals the fork point", true),
                ],
            ]),
            mechanism: &["entering_standby_mode", "not_a_child"],
        },
        // Segments and slots: 1 MB segments, wal_keep_size = 0.
        Story::SegmentRemovedStandbyDown => Shape {
            class: Refused,
            messages: &[(SegmentRemoved, "b server log, a server log")],
            relations: &[
                (
                    "primary's insert position is at least 3 WAL segments past the stopped standby's end of WAL",
                    true,
                ),
                (
                    "the segment holding the stopped standby's end of WAL is still in the primary's pg_wal",
                    false,
                ),
                ("upstream's pg_stat_replication showed the rejoining node streaming", false),
                ("row count and hash equal on both nodes", false),
                ("the removed segment named is the one holding the standby's end of WAL", true),
                ("startup's end of local WAL equals the rejoining node's end of local WAL", true),
                ("consistency point equals the rejoining node's end of local WAL", true),
                (
                    "walreceiver's start point is the start of the WAL segment holding the rejoining node's end of local WAL",
                    true,
                ),
            ],
            mechanism: &[
                "entering_standby_mode",
                "redo_starts",
                "consistent_recovery_state",
                "end_of_local_wal",
                "started_streaming",
            ],
        },
        Story::SlotKeepsStandbyDown => Shape {
            class: Converged,
            messages: &[],
            relations: &[
                (
                    "primary's insert position is at least 3 WAL segments past the stopped standby's end of WAL",
                    true,
                ),
                (
                    "the segment holding the stopped standby's end of WAL is still in the primary's pg_wal",
                    true,
                ),
                ("the slot's wal_status is lost", false),
                ("upstream's pg_stat_replication showed the rejoining node streaming", true),
                ("rejoined node replayed up to the upstream's current LSN", true),
                ("row count and hash equal on both nodes", true),
                ("startup's end of local WAL equals the rejoining node's end of local WAL", true),
                ("consistency point equals the rejoining node's end of local WAL", true),
                (
                    "walreceiver's start point is the start of the WAL segment holding the rejoining node's end of local WAL",
                    true,
                ),
            ],
            mechanism: &[
                "entering_standby_mode",
                "redo_starts",
                "consistent_recovery_state",
                "end_of_local_wal",
                "started_streaming",
            ],
        },
        Story::SlotInvalidatedStandbyDown => Shape {
            class: Refused,
            messages: &[(SlotInvalidated, "a server log"), (SegmentRemoved, "b server log, a server log")],
            relations: &[
                (
                    "primary's insert position is at least 3 WAL segments past the stopped standby's end of WAL",
                    true,
                ),
                (
                    "the segment holding the stopped standby's end of WAL is still in the primary's pg_wal",
                    false,
                ),
                ("the slot's wal_status is lost", true),
                ("upstream's pg_stat_replication showed the rejoining node streaming", false),
                ("row count and hash equal on both nodes", false),
                ("the removed segment named is the one holding the standby's end of WAL", true),
                ("startup's end of local WAL equals the rejoining node's end of local WAL", true),
                ("consistency point equals the rejoining node's end of local WAL", true),
                (
                    "walreceiver's start point is the start of the WAL segment holding the rejoining node's end of local WAL",
                    true,
                ),
            ],
            mechanism: &[
                "entering_standby_mode",
                "redo_starts",
                "consistent_recovery_state",
                "end_of_local_wal",
                "started_streaming",
            ],
        },
        Story::SegmentRemovedSwitchover => Shape {
            class: Refused,
            messages: &[(SegmentRemoved, "a server log, b server log")],
            relations: &[
                (
                    "standby replayed the old primary's whole WAL (shutdown checkpoint included) before promotion",
                    true,
                ),
                ("fork point equals the old primary's end of WAL", true),
                ("the new primary's segment holding the fork point is still in its pg_wal", false),
                ("upstream's pg_stat_replication showed the rejoining node streaming", false),
                ("row count and hash equal on both nodes", false),
                ("startup's end of local WAL equals the rejoining node's end of local WAL", true),
                ("consistency point equals the rejoining node's end of local WAL", true),
                (
                    "walreceiver's start point is the start of the WAL segment holding the rejoining node's end of local WAL",
                    true,
                ),
            ],
            mechanism: &[
                "entering_standby_mode",
                "consistent_recovery_state",
                "end_of_local_wal",
                "fetching_history_file",
                "started_streaming",
                "new_target_timeline",
            ],
        },
        Story::RewindTargetWalRemoved => Shape {
            class: Refused,
            messages: &[(RewindWalMissing, "pg_rewind output")],
            relations: &[
                ("old primary's end of WAL > fork point", true),
                ("the old primary's segment holding the fork point is still in its pg_wal", false),
                ("pg_rewind's \"could not find previous WAL record at\" equals the fork point", true),
                ("pg_rewind succeeded", false),
            ],
            mechanism: &[],
        },
    }
}

fn check(outcome: &RealOutcome, shape: &Shape) -> Vec<String> {
    let mut problems = Vec::new();
    if outcome.class != shape.class {
        problems.push(format!("class {:?}, expected {:?}", outcome.class, shape.class));
    }
    let messages: Vec<(MessageKind, &str)> =
        outcome.messages.iter().copied().zip(outcome.message_sources.iter().map(String::as_str)).collect();
    if messages != shape.messages {
        problems.push(format!("messages {messages:?}, expected {:?}", shape.messages));
    }
    if outcome.message_text.len() != outcome.messages.len() {
        problems.push("message_text and messages differ in length".into());
    }
    let mechanism: Vec<&str> = outcome.mechanism.iter().map(|m| m.name()).collect();
    if mechanism != shape.mechanism {
        problems.push(format!("mechanism {mechanism:?}, expected {:?}", shape.mechanism));
    }
    if outcome.mechanism_text.len() != outcome.mechanism.len() {
        problems.push("mechanism_text and mechanism differ in length".into());
    }
    if outcome.story == Story::HistoryFileBeforeStart {
        // Which framing text appears depends on the bytes at E; one of the three must.
        let text = outcome.facts.framing_error_text.as_deref().unwrap_or_default();
        let known =
            ["record with incorrect prev-link", "invalid record length at", "invalid resource manager ID"];
        if !known.iter().any(|k| text.contains(k)) {
            problems.push(format!("framing error text {text:?} is none of {known:?}"));
        }
    }
    let relations: Vec<(&str, bool)> =
        outcome.facts.relations.iter().map(|(name, holds)| (name.as_str(), *holds)).collect();
    if relations != shape.relations {
        problems.push(format!("relations {relations:#?}, expected {:#?}", shape.relations));
    }
    problems
}

#[test]
#[ignore = "needs WALSIM_REAL_POSTGRES=1 and a PostgreSQL server (run with -- --ignored)"]
fn stories_against_real_server() {
    assert!(
        std::env::var_os("WALSIM_REAL_POSTGRES").is_some(),
        "set WALSIM_REAL_POSTGRES=1 to run the real-server stories (they start PostgreSQL servers)"
    );
    let install = match conform::find_install(None) {
        Ok(install) => install,
        Err(e) => panic!("the real-server stories need a PostgreSQL server: {e:#}"),
    };
    conform::install_interrupt_handler();
    let pg15 = install.major() == Some(15);
    let suite = Instant::now();
    let mut problems = Vec::new();
    for story in Story::ALL {
        let started = Instant::now();
        let outcome = match conform::run_story(&install, story, &Options::default()) {
            Ok(outcome) => outcome,
            Err(e) => {
                problems.push(format!("{}: {e:#}", story.name()));
                continue;
            }
        };
        eprintln!(
            "{:<32} {:?} {:?} ({:.1}s)",
            story.name(),
            outcome.class,
            outcome.messages,
            started.elapsed().as_secs_f64()
        );
        let shape = expected(story);
        let found = if pg15 {
            check(&outcome, &shape)
        } else if outcome.class != shape.class {
            vec![format!("class {:?}, expected {:?}", outcome.class, shape.class)]
        } else {
            Vec::new()
        };
        problems.extend(found.into_iter().map(|p| format!("{}: {p}", story.name())));
    }
    eprintln!("suite took {:.1}s", suite.elapsed().as_secs_f64());
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("walsim-conform-{}-", std::process::id()))
        })
        .map(|entry| entry.path())
        .collect();
    if !leftovers.is_empty() {
        problems.push(format!("temp directories left behind: {leftovers:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
