//! What a story is and what the real server did in it.

use serde::{Deserialize, Serialize};

use super::mechanism::{Mechanism, MechanismPositions};
use super::messages::MessageKind;

/// One fully scripted scenario run against a fresh primary (`a`) / standby (`b`) pair.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum Story {
    /// B promoted, A writes on, A crashes (`-m immediate`) and rejoins B naively.
    DivergedNaiveAfterImmediate,
    /// As above, but A is shut down cleanly (`-m fast`) before rejoining.
    DivergedNaiveAfterFast,
    /// Same divergence, A shut down cleanly, `pg_rewind` from B, then A rejoins.
    DivergedRewind,
    /// A shut down cleanly while B streams (B gets everything), B promoted, A rejoins.
    CleanSwitchover,
    /// B stops, A writes on and crashes, B restarts as an unpromoted standby and A
    /// tries to follow B (cascading): A asks for WAL that B never got.
    LaggingStandbyAhead,
    /// Synchronous replication with the only synchronous standby stopped: commits hang.
    SyncStandbyDown,
    /// As `DivergedRewind`, but the cluster runs with `wal_log_hints = off` and no
    /// data checksums, which pg_rewind refuses.
    RewindWithoutHints,
    /// Two standbys `b`, `c` (connected in that order), `FIRST 1 (*)`: `b` is
    /// synchronous, stops (`c` takes over), restarts into the lowest free walsender
    /// slot and is synchronous again.
    SyncFirstRestart,
    /// Two standbys, `ANY 1 (b, c)`, both stopped: a commit waits.
    SyncAnyBothDown,
    /// Two standbys, `FIRST 1 (b, c)`, `synchronous_commit = remote_apply`, replay
    /// paused on `b`: a commit waits until `pg_wal_replay_resume()`.
    RemoteApplyReplayPaused,
    /// A diverged and crashed (`-m immediate`) old primary gets the new primary's
    /// `00000002.history` copied into its pg_wal before it first starts as a standby
    /// of the new primary, which has by then written past A's end of WAL: crash
    /// recovery targets timeline 2, replays A's own WAL past the fork and streams
    /// timeline 2 from the segment start; the startup process loops on a framing
    /// error at A's end of WAL.
    HistoryFileBeforeStart,
    /// As `DivergedNaiveAfterImmediate` (the refused first rejoin fetches
    /// `00000002.history`), then A is stopped (`-m fast`) and started again: its
    /// minimum recovery point is not on timeline 2.
    SecondStartAfterHistoryFetch,
    /// A diverges, is shut down cleanly (`-m fast`, its latest checkpoint lies past
    /// the fork), gets `00000002.history` in its pg_wal and starts as a standby:
    /// not a child of this server's history.
    HistoryFileCleanShutdown,
    /// A WAL archive (`archive_mode = on`, `archive_command = 'cp %p ARCHIVE/%f'`,
    /// `restore_command = 'cp ARCHIVE/%f %p'`, `wal_keep_size = 0`): B stopped while
    /// A switches segments, archives them and checkpoints them away; B starts,
    /// restores the removed segments from the archive and streams the rest.
    StandbyDownArchive,
    /// 1 MB segments, `wal_keep_size = 0`, no slot: B stopped, A switches through
    /// several segments and checkpoints, B started again: "requested WAL segment S
    /// has already been removed", never catches up.
    SegmentRemovedStandbyDown,
    /// The same with a physical slot for B created before B went down
    /// (`primary_slot_name`): the slot holds B's WAL, B catches up.
    SlotKeepsStandbyDown,
    /// The same with the slot and `max_slot_wal_keep_size = 1MB`: the checkpoint
    /// invalidates the slot ("invalidating slot ... exceeds max_slot_wal_keep_size"),
    /// removes B's segment, and B is refused.
    SlotInvalidatedStandbyDown,
    /// Clean switchover (A stopped fast, B promoted) but B switches through several
    /// segments and checkpoints before A follows it: A's start segment is gone.
    SegmentRemovedSwitchover,
    /// A diverges after B's promotion, writes through several segments with
    /// checkpoints (its WAL before the fork is removed), stopped fast; pg_rewind
    /// cannot read the target's WAL back to the last common checkpoint.
    RewindTargetWalRemoved,
}

impl Story {
    /// Every story, in the order the suite runs them.
    pub const ALL: [Story; 19] = [
        Story::DivergedNaiveAfterImmediate,
        Story::DivergedNaiveAfterFast,
        Story::DivergedRewind,
        Story::CleanSwitchover,
        Story::LaggingStandbyAhead,
        Story::SyncStandbyDown,
        Story::RewindWithoutHints,
        Story::SyncFirstRestart,
        Story::SyncAnyBothDown,
        Story::RemoteApplyReplayPaused,
        Story::HistoryFileBeforeStart,
        Story::SecondStartAfterHistoryFetch,
        Story::HistoryFileCleanShutdown,
        Story::StandbyDownArchive,
        Story::SegmentRemovedStandbyDown,
        Story::SlotKeepsStandbyDown,
        Story::SlotInvalidatedStandbyDown,
        Story::SegmentRemovedSwitchover,
        Story::RewindTargetWalRemoved,
    ];

    /// Kebab-case name, identical to the JSON form.
    pub fn name(self) -> &'static str {
        match self {
            Story::DivergedNaiveAfterImmediate => "diverged-naive-after-immediate",
            Story::DivergedNaiveAfterFast => "diverged-naive-after-fast",
            Story::DivergedRewind => "diverged-rewind",
            Story::CleanSwitchover => "clean-switchover",
            Story::LaggingStandbyAhead => "lagging-standby-ahead",
            Story::SyncStandbyDown => "sync-standby-down",
            Story::RewindWithoutHints => "rewind-without-hints",
            Story::SyncFirstRestart => "sync-first-restart",
            Story::SyncAnyBothDown => "sync-any-both-down",
            Story::RemoteApplyReplayPaused => "remote-apply-replay-paused",
            Story::HistoryFileBeforeStart => "history-file-before-start",
            Story::SecondStartAfterHistoryFetch => "second-start-after-history-fetch",
            Story::HistoryFileCleanShutdown => "history-file-clean-shutdown",
            Story::StandbyDownArchive => "standby-down-archive",
            Story::SegmentRemovedStandbyDown => "segment-removed-standby-down",
            Story::SlotKeepsStandbyDown => "slot-keeps-standby-down",
            Story::SlotInvalidatedStandbyDown => "slot-invalidated-standby-down",
            Story::SegmentRemovedSwitchover => "segment-removed-switchover",
            Story::RewindTargetWalRemoved => "rewind-target-wal-removed",
        }
    }

    /// The story with this kebab-case name.
    pub fn from_name(name: &str) -> Option<Story> {
        Story::ALL.into_iter().find(|story| story.name() == name)
    }
}

/// How a story ended on the real server.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    /// The rejoining node streams from its upstream, has replayed everything and
    /// holds the same rows.
    Converged,
    /// A node or tool refused (a recognised refusal message was seen).
    Refused,
    /// Nothing refused, but nothing completed either (e.g. a commit waiting forever).
    Stuck,
}

/// The real server's answer to one story.
#[derive(Serialize, Clone, Debug)]
pub struct RealOutcome {
    pub story: Story,
    /// `postgres --version` number of the server that produced this outcome.
    pub server_version: String,
    pub class: OutcomeClass,
    /// Every recognised message kind, in first-seen order, deduplicated.
    pub messages: Vec<MessageKind>,
    /// The raw line behind each entry of `messages` (same index).
    pub message_text: Vec<String>,
    /// Every source that printed each kind, comma-separated, the quoted one first,
    /// e.g. "a server log, b server log" (same index as `messages`).
    pub message_sources: Vec<String>,
    /// The rejoining node's startup/walreceiver mechanism: distinct kinds in order of
    /// first appearance in its own server log from its (first) rejoin on.
    pub mechanism: Vec<Mechanism>,
    /// The first line of each entry of `mechanism` (same index).
    pub mechanism_text: Vec<String>,
    /// The positions those lines quote.
    pub mechanism_positions: MechanismPositions,
    pub facts: Facts,
}

/// Positions and checks gathered along the way. LSNs are `%X/%X` strings.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Facts {
    /// Switch point of timeline 1 in the new primary's `00000002.history`.
    pub fork_point: Option<String>,
    /// Full content of that history file.
    pub history_file: Option<String>,
    /// Where node a's WAL on disk ends once it is stopped: the LSN at which its next
    /// record would start (what a restarted standby replays up to). Taken by running
    /// `pg_waldump -s H` on the stopped node's pg_wal, H being
    /// `pg_current_wal_insert_lsn()` sampled just before the stop, and reading the
    /// position where pg_waldump found no further valid record. H alone would miss a
    /// fast stop's shutdown checkpoint; pg_controldata alone says nothing useful after
    /// an immediate stop.
    pub old_primary_end_of_wal: Option<String>,
    /// X in "requested starting point X ..." if seen.
    pub requested_start: Option<String>,
    /// Y in "... the WAL flush position of this server Y" if seen.
    pub server_flush: Option<String>,
    /// `count(*), sum(hashtext(test::text))` on the upstream of the rejoining node.
    pub rows_primary: Option<(i64, i64)>,
    /// The same on the rejoining node.
    pub rows_rejoined: Option<(i64, i64)>,
    /// The framing error the rejoining node's startup process reported in streamed
    /// WAL, verbatim (which of the three texts appears depends on the bytes at E).
    pub framing_error_text: Option<String>,
    /// `pg_last_wal_replay_lsn()` on the rejoining node, sampled twice ~3 s apart
    /// once it was consistent (stories judged by replay progress).
    pub replay_samples: Vec<String>,
    /// Named relations that were checked, with their result.
    pub relations: Vec<(String, bool)>,
    /// Every line a tool the story ran printed (pg_rewind in the segment stories),
    /// verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_output: Vec<String>,
}

impl Facts {
    pub(super) fn relate(&mut self, name: &str, holds: bool) {
        self.relations.push((name.to_string(), holds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_json() {
        for story in Story::ALL {
            let json = serde_json::to_string(&story).unwrap();
            assert_eq!(json, format!("\"{}\"", story.name()));
            assert_eq!(Story::from_name(story.name()), Some(story));
        }
        assert_eq!(Story::from_name("no-such-story"), None);
        assert_eq!(serde_json::to_string(&OutcomeClass::Refused).unwrap(), "\"refused\"");
        assert_eq!(
            serde_json::to_string(&MessageKind::ForkedBeforeRecoveryPoint).unwrap(),
            "\"forked_before_recovery_point\""
        );
    }
}
