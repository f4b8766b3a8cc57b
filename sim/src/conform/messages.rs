//! Recognising the server and tool messages that the conformance stories are about.
//!
//! Matching is on stable substrings of PostgreSQL 15's English message texts (the
//! driver forces `lc_messages='C'` and `LC_ALL=C`), so a log prefix, a `FATAL:`
//! wrapper added by the walreceiver or a `pg_rewind: error:` prefix do not matter.

use serde::{Deserialize, Serialize};

use super::lsn::Lsn;

/// The kinds of message the simulator is expected to predict.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Upstream walsender: "requested starting point X on timeline T is not in this
    /// server's history" (the requester's WAL runs past the fork point).
    NotInHistory,
    /// Rejoining node's startup process: "new timeline N forked off current database
    /// system timeline T before current recovery point Y".
    ForkedBeforeRecoveryPoint,
    /// Upstream walsender: "requested starting point X is ahead of the WAL flush
    /// position of this server Y".
    AheadOfFlush,
    /// Rejoining node's startup process (InitWalRecovery in xlogrecovery.c), FATAL:
    /// "requested timeline N is not a child of this server's history", with DETAIL
    /// "Latest checkpoint is at X on timeline T, but in the history of the requested
    /// timeline, the server forked off from that timeline at F." (its latest
    /// checkpoint lies past the fork point of the target timeline's history).
    NotAChild,
    /// Rejoining node's startup process (InitWalRecovery), FATAL: "requested timeline
    /// N does not contain minimum recovery point X on timeline T".
    MinRecoveryPointNotOnTimeline,
    /// pg_rewind: "target server needs to use either data checksums or \"wal_log_hints = on\"".
    RewindNeedsHints,
    /// pg_rewind: "no rewind required".
    NoRewindRequired,
    /// A committing backend waits for a synchronous standby (`wait_event = SyncRep`,
    /// or the "canceling wait for synchronous replication" warning).
    CommitWaitsForSyncRep,
    /// Primary's walsender: "standby \"X\" is now a synchronous standby with priority N"
    /// (FIRST, SyncRepReleaseWaiters).
    NowSynchronousStandby,
    /// Primary's walsender: "standby \"X\" is now a candidate for quorum synchronous
    /// standby" (ANY, SyncRepReleaseWaiters).
    QuorumCandidate,
    /// Upstream's walsender (WalSndSegmentOpen → XLogReadDetermineTimeline /
    /// WALReadRaiseError, ERROR), and the walreceiver's FATAL "could not receive data
    /// from WAL stream: ERROR:  ...": "requested WAL segment S has already been
    /// removed" (a checkpoint removed or recycled it).
    SegmentRemoved,
    /// Checkpointer (InvalidatePossiblyObsoleteSlot, LOG): "invalidating slot \"S\"
    /// because its restart_lsn X exceeds max_slot_wal_keep_size".
    SlotInvalidated,
    /// pg_rewind (findLastCheckpoint in parsexlog.c): "could not find previous WAL
    /// record at X" — the target's WAL back to the last common checkpoint is gone.
    RewindWalMissing,
}

impl MessageKind {
    /// Whether this message means a node or tool refused to go on.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            MessageKind::NotInHistory
                | MessageKind::ForkedBeforeRecoveryPoint
                | MessageKind::AheadOfFlush
                | MessageKind::NotAChild
                | MessageKind::MinRecoveryPointNotOnTimeline
                | MessageKind::RewindNeedsHints
                | MessageKind::SegmentRemoved
                | MessageKind::RewindWalMissing
        )
    }
}

/// Substrings that identify each kind; checked in order, first match wins.
const PATTERNS: &[(&str, MessageKind)] = &[
    ("is ahead of the WAL flush position of this server", MessageKind::AheadOfFlush),
    ("is not in this server's history", MessageKind::NotInHistory),
    ("is not a child of this server's history", MessageKind::NotAChild),
    ("does not contain minimum recovery point", MessageKind::MinRecoveryPointNotOnTimeline),
    ("before current recovery point", MessageKind::ForkedBeforeRecoveryPoint),
    ("needs to use either data checksums or", MessageKind::RewindNeedsHints),
    ("no rewind required", MessageKind::NoRewindRequired),
    ("wait_event=SyncRep", MessageKind::CommitWaitsForSyncRep),
    ("wait for synchronous replication", MessageKind::CommitWaitsForSyncRep),
    ("is now a synchronous standby with priority", MessageKind::NowSynchronousStandby),
    ("is now a candidate for quorum synchronous standby", MessageKind::QuorumCandidate),
    ("has already been removed", MessageKind::SegmentRemoved),
    ("exceeds max_slot_wal_keep_size", MessageKind::SlotInvalidated),
    ("could not find previous WAL record", MessageKind::RewindWalMissing),
];

/// The kind of message a log or tool-output line carries, if it is one we know.
pub fn recognise(line: &str) -> Option<MessageKind> {
    PATTERNS.iter().find(|(needle, _)| line.contains(needle)).map(|&(_, kind)| kind)
}

/// X in "requested starting point X ...".
pub fn requested_start(line: &str) -> Option<Lsn> {
    Lsn::after(line, "requested starting point ")
}

/// Y in "... the WAL flush position of this server Y".
pub fn server_flush(line: &str) -> Option<Lsn> {
    Lsn::after(line, "WAL flush position of this server ")
}

/// Y in "... forked off current database system timeline T before current recovery point Y".
pub fn recovery_point(line: &str) -> Option<Lsn> {
    Lsn::after(line, "before current recovery point ")
}

/// (T, F) in the walsender's DETAIL "This server's history forked from timeline T at F.".
pub fn history_forked_at(line: &str) -> Option<(u32, Lsn)> {
    const MARKER: &str = "history forked from timeline ";
    let rest = &line[line.find(MARKER)? + MARKER.len()..];
    let (tli, rest) = rest.split_once(" at ")?;
    let tli = tli.trim().parse().ok()?;
    Some((tli, Lsn::parse_prefix(rest)?.0))
}

/// X in pg_rewind's "could not find previous WAL record at X".
pub fn rewind_missing_at(line: &str) -> Option<Lsn> {
    Lsn::after(line, "could not find previous WAL record at ")
}

/// S in "requested WAL segment S has already been removed".
pub fn removed_segment(line: &str) -> Option<&str> {
    const MARKER: &str = "requested WAL segment ";
    let rest = &line[line.find(MARKER)? + MARKER.len()..];
    let (name, tail) = rest.split_once(' ')?;
    tail.starts_with("has already been removed").then_some(name)
}

/// X in pg_rewind's "servers diverged at WAL location X on timeline T".
pub fn rewind_diverged_at(line: &str) -> Option<Lsn> {
    Lsn::after(line, "servers diverged at WAL location ")
}

/// Switch point of timeline `tli` in a timeline history file (`TLI<tab>LSN<tab>reason` lines).
pub fn history_switch_point(history: &str, tli: u32) -> Option<Lsn> {
    history.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let line_tli: u32 = fields.next()?.parse().ok()?;
        if line_tli != tli {
            return None;
        }
        Lsn::parse(fields.next()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AHEAD: &str = "2026-11-26 04:00:00.000 UTC [123] walreceiver FATAL:  could not receive data from WAL stream: ERROR:  requested starting point 0/52000000 is ahead of the WAL flush position of this server 0/45AD6088";
    const NOT_IN_HISTORY_A: &str = "2026-11-26 04:00:00.000 UTC [4711] walreceiver FATAL:  could not start WAL streaming: ERROR:  requested starting point 0/4000000 on timeline 1 is not in this server's history";
    const NOT_IN_HISTORY_B: &str = "2026-11-26 04:00:00.001 UTC [4712] walsender ERROR:  requested starting point 0/4000000 on timeline 1 is not in this server's history";
    const DETAIL: &str = "2026-11-26 04:00:00.001 UTC [4712] walsender DETAIL:  This server's history forked from timeline 1 at 0/3012AB8.";
    const FORKED: &str = "2026-11-26 04:00:00.050 UTC [4700] startup LOG:  new timeline 2 forked off current database system timeline 1 before current recovery point 0/4000A28";

    #[test]
    fn recognises_real_lines() {
        assert_eq!(recognise(AHEAD), Some(MessageKind::AheadOfFlush));
        assert_eq!(recognise(NOT_IN_HISTORY_A), Some(MessageKind::NotInHistory));
        assert_eq!(recognise(NOT_IN_HISTORY_B), Some(MessageKind::NotInHistory));
        assert_eq!(recognise(FORKED), Some(MessageKind::ForkedBeforeRecoveryPoint));
        assert_eq!(
            recognise(
                "2026-12-02 18:00:02.000 UTC [9] startup FATAL:  requested timeline 2 is not a child of this server's history"
            ),
            Some(MessageKind::NotAChild)
        );
        assert_eq!(
            recognise(
                "2026-12-02 18:00:01.000 UTC [8] startup FATAL:  requested timeline 2 does not contain minimum recovery point 0/4012A90 on timeline 1"
            ),
            Some(MessageKind::MinRecoveryPointNotOnTimeline)
        );
        assert_eq!(
            recognise(
                "pg_rewind: error: target server needs to use either data checksums or \"wal_log_hints = on\""
            ),
            Some(MessageKind::RewindNeedsHints)
        );
        assert_eq!(recognise("pg_rewind: no rewind required"), Some(MessageKind::NoRewindRequired));
        assert_eq!(
            recognise(
                "pid=77 backend_type=client backend state=active wait_event_type=IPC wait_event=SyncRep query=insert"
            ),
            Some(MessageKind::CommitWaitsForSyncRep)
        );
        assert_eq!(
            recognise("WARNING:  canceling wait for synchronous replication due to user request"),
            Some(MessageKind::CommitWaitsForSyncRep)
        );
        assert_eq!(
            recognise(
                "2026-12-02 18:00:00.000 UTC [9] walsender LOG:  standby \"b\" is now a synchronous standby with priority 1"
            ),
            Some(MessageKind::NowSynchronousStandby)
        );
        assert_eq!(
            recognise(
                "2026-12-02 18:00:00.000 UTC [9] walsender LOG:  standby \"c\" is now a candidate for quorum synchronous standby"
            ),
            Some(MessageKind::QuorumCandidate)
        );
        assert_eq!(recognise(DETAIL), None);
        assert_eq!(recognise("2026-11-26 04:00:00.000 UTC [1] startup LOG:  redo starts at 0/2000028"), None);
        assert_eq!(recognise(""), None);
    }

    #[test]
    fn recognises_segment_and_slot_lines() {
        let removed = "2026-12-02 20:12:10.251 UTC [6327] walreceiver FATAL:  could not receive data from WAL stream: ERROR:  requested WAL segment 000000010000000000000008 has already been removed";
        assert_eq!(recognise(removed), Some(MessageKind::SegmentRemoved));
        assert_eq!(removed_segment(removed), Some("000000010000000000000008"));
        assert_eq!(removed_segment("requested WAL segment x is fine"), None);
        let invalidated = "2026-12-02 20:12:21.476 UTC [6980] checkpointer LOG:  invalidating slot \"b\" because its restart_lsn 0/84DB50 exceeds max_slot_wal_keep_size";
        assert_eq!(recognise(invalidated), Some(MessageKind::SlotInvalidated));
        let missing = "pg_rewind: error: could not find previous WAL record at 0/84FD10";
        assert_eq!(recognise(missing), Some(MessageKind::RewindWalMissing));
        assert_eq!(rewind_missing_at(missing), Some(Lsn(0x84_FD10)));
        assert!(MessageKind::SegmentRemoved.is_refusal());
        assert!(MessageKind::RewindWalMissing.is_refusal());
        assert!(!MessageKind::SlotInvalidated.is_refusal());
    }

    #[test]
    fn refusals() {
        assert!(MessageKind::NotInHistory.is_refusal());
        assert!(MessageKind::RewindNeedsHints.is_refusal());
        assert!(MessageKind::MinRecoveryPointNotOnTimeline.is_refusal());
        assert!(MessageKind::NotAChild.is_refusal());
        assert!(!MessageKind::NoRewindRequired.is_refusal());
        assert!(!MessageKind::CommitWaitsForSyncRep.is_refusal());
    }

    #[test]
    fn extracts_positions() {
        assert_eq!(requested_start(AHEAD), Some(Lsn(0x5200_0000)));
        assert_eq!(server_flush(AHEAD), Some(Lsn(0x45AD_6088)));
        assert_eq!(requested_start(NOT_IN_HISTORY_B), Some(Lsn(0x400_0000)));
        assert_eq!(server_flush(NOT_IN_HISTORY_B), None);
        assert_eq!(recovery_point(FORKED), Some(Lsn(0x400_0A28)));
        assert_eq!(history_forked_at(DETAIL), Some((1, Lsn(0x301_2AB8))));
        assert_eq!(history_forked_at("history forked from timeline x at 0/1"), None);
        assert_eq!(
            rewind_diverged_at("pg_rewind: servers diverged at WAL location 0/3012AB8 on timeline 1"),
            Some(Lsn(0x301_2AB8))
        );
    }

    #[test]
    fn history_files() {
        let history = "1\t0/3012AB8\tno recovery target specified\n";
        assert_eq!(history_switch_point(history, 1), Some(Lsn(0x301_2AB8)));
        assert_eq!(history_switch_point(history, 2), None);
        let two =
            "1\t0/3000000\tno recovery target specified\n\n2\t0/5000148\tno recovery target specified\n";
        assert_eq!(history_switch_point(two, 2), Some(Lsn(0x500_0148)));
        assert_eq!(history_switch_point("garbage", 1), None);
    }
}
