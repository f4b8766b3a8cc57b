//! Recognising the rejoining node's startup and walreceiver messages: the
//! *mechanism* by which a node got to its outcome, not just the outcome.
//!
//! Same approach as [`super::messages`]: stable substrings of PostgreSQL 15's
//! English texts (xlogrecovery.c, xlogreader.c, walreceiver.c), so a log prefix,
//! a level or a `FATAL:` wrapper do not matter and the same recogniser reads a
//! real server log and the model's log lines.
//!
//! What is compared is the *sequence of distinct kinds in order of first
//! appearance* in the rejoining node's own log from its rejoin on; see
//! [`MechanismTrace`].

use serde::{Deserialize, Serialize};

use super::lsn::{Lsn, Segments};

/// One kind of startup/walreceiver message of the rejoining node.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// Startup: "entering standby mode" (standby.signal present).
    EnteringStandbyMode,
    /// Startup: "crash recovery starts in timeline N and has target timeline M".
    CrashRecoveryStarts,
    /// Startup: "redo starts at X".
    RedoStarts,
    /// A WAL framing text (see [`FramingError`](Mechanism::FramingError)) read
    /// before the walreceiver streamed anything: where the node's own WAL ends
    /// (usually "invalid record length at E: wanted 24, got 0"). Told apart from
    /// a framing error only by that context ([`MechanismTrace::of`]).
    EndOfLocalWal,
    /// Startup: "consistent recovery state reached at X".
    ConsistentRecoveryState,
    /// Startup: "redo done at X system usage: ...".
    RedoDone,
    /// Walreceiver: "started streaming WAL from primary at X on timeline T" (a new
    /// walreceiver) or "restarted WAL streaming at X on timeline T" (the same one
    /// going on to the next timeline): both mean streaming began at X.
    StartedStreaming,
    /// Walreceiver: "fetching timeline history file for timeline N from primary server".
    FetchingHistoryFile,
    /// Startup: "new target timeline is N".
    NewTargetTimeline,
    /// Walreceiver: "replication terminated by primary server".
    ReplicationTerminated,
    /// Startup: "new timeline N forked off current database system timeline T
    /// before current recovery point X".
    NewTimelineForkedOff,
    /// Startup FATAL: "requested timeline N does not contain minimum recovery point
    /// X on timeline T".
    MinRecoveryPointNotOnTimeline,
    /// Startup FATAL: "requested timeline N is not a child of this server's history".
    NotAChild,
    /// A WAL framing text read after the walreceiver started streaming, i.e. in WAL
    /// that came from the upstream: "record with incorrect prev-link X at E",
    /// "invalid record length at E: wanted 24, got N" or "invalid resource manager ID
    /// N at E" (xlogreader.c). Which of the three appears depends on the bytes found
    /// at E, so they are one kind.
    FramingError,
    /// Startup PANIC: "unexpected timeline ID N (should be T) in ... checkpoint record".
    UnexpectedTimelineId,
}

impl Mechanism {
    /// The snake_case name (the JSON form).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::EnteringStandbyMode => "entering_standby_mode",
            Mechanism::CrashRecoveryStarts => "crash_recovery_starts",
            Mechanism::RedoStarts => "redo_starts",
            Mechanism::EndOfLocalWal => "end_of_local_wal",
            Mechanism::ConsistentRecoveryState => "consistent_recovery_state",
            Mechanism::RedoDone => "redo_done",
            Mechanism::StartedStreaming => "started_streaming",
            Mechanism::FetchingHistoryFile => "fetching_history_file",
            Mechanism::NewTargetTimeline => "new_target_timeline",
            Mechanism::ReplicationTerminated => "replication_terminated",
            Mechanism::NewTimelineForkedOff => "new_timeline_forked_off",
            Mechanism::MinRecoveryPointNotOnTimeline => "min_recovery_point_not_on_timeline",
            Mechanism::NotAChild => "not_a_child",
            Mechanism::FramingError => "framing_error",
            Mechanism::UnexpectedTimelineId => "unexpected_timeline_id",
        }
    }
}

/// Substrings that identify each kind; checked in order, first match wins. The
/// framing texts all map to `FramingError` here; [`MechanismTrace::of`] turns the
/// ones read before streaming into `EndOfLocalWal`.
const PATTERNS: &[(&str, Mechanism)] = &[
    ("entering standby mode", Mechanism::EnteringStandbyMode),
    ("crash recovery starts in timeline ", Mechanism::CrashRecoveryStarts),
    ("redo starts at ", Mechanism::RedoStarts),
    ("consistent recovery state reached at ", Mechanism::ConsistentRecoveryState),
    ("redo done at ", Mechanism::RedoDone),
    ("started streaming WAL from primary at ", Mechanism::StartedStreaming),
    ("restarted WAL streaming at ", Mechanism::StartedStreaming),
    ("fetching timeline history file for timeline ", Mechanism::FetchingHistoryFile),
    ("new target timeline is ", Mechanism::NewTargetTimeline),
    ("replication terminated by primary server", Mechanism::ReplicationTerminated),
    ("forked off current database system timeline ", Mechanism::NewTimelineForkedOff),
    ("does not contain minimum recovery point ", Mechanism::MinRecoveryPointNotOnTimeline),
    ("is not a child of this server's history", Mechanism::NotAChild),
    ("record with incorrect prev-link ", Mechanism::FramingError),
    ("invalid record length at ", Mechanism::FramingError),
    ("unexpected timeline ID ", Mechanism::UnexpectedTimelineId),
];

/// "invalid resource manager ID N at E" — but not "invalid resource manager ID in
/// checkpoint record", which is a different (startup, checkpoint-reading) error.
const RMGR: &str = "invalid resource manager ID ";

/// The kind of mechanism message a line carries, if any (framing texts give
/// `FramingError`, whatever their context).
pub fn recognise_mechanism(line: &str) -> Option<Mechanism> {
    if let Some(kind) = PATTERNS.iter().find(|(needle, _)| line.contains(needle)).map(|&(_, kind)| kind) {
        return Some(kind);
    }
    let rest = &line[line.find(RMGR)? + RMGR.len()..];
    rest.starts_with(|c: char| c.is_ascii_digit()).then_some(Mechanism::FramingError)
}

/// Position E that a framing text names: "... prev-link X at E", "invalid record
/// length at E: ...", "invalid resource manager ID N at E".
pub fn framing_position(line: &str) -> Option<Lsn> {
    if let Some(at) = Lsn::after(line, "invalid record length at ") {
        return Some(at);
    }
    for marker in ["record with incorrect prev-link ", RMGR] {
        if let Some(i) = line.find(marker) {
            return Lsn::after(&line[i + marker.len()..], " at ");
        }
    }
    None
}

/// (X, T, F) in the DETAIL "Latest checkpoint is at X on timeline T, but in the
/// history of the requested timeline, the server forked off from that timeline at F.".
pub fn not_a_child_detail(line: &str) -> Option<(Lsn, u32, Lsn)> {
    const MARKER: &str = "Latest checkpoint is at ";
    let rest = &line[line.find(MARKER)? + MARKER.len()..];
    let (checkpoint, used) = Lsn::parse_prefix(rest)?;
    let rest = rest[used..].strip_prefix(" on timeline ")?;
    let (tli, rest) = rest.split_once(',')?;
    let tli = tli.trim().parse().ok()?;
    let fork = Lsn::after(rest, "forked off from that timeline at ")?;
    Some((checkpoint, tli, fork))
}

/// The positions quoted in a node's mechanism messages (first occurrence of each).
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MechanismPositions {
    /// E in the end-of-local-WAL framing text.
    #[serde(serialize_with = "super::lsn::text")]
    pub end_of_local_wal: Option<Lsn>,
    /// X in "consistent recovery state reached at X".
    #[serde(serialize_with = "super::lsn::text")]
    pub consistent_at: Option<Lsn>,
    /// X in "started streaming WAL from primary at X" / "restarted WAL streaming at X".
    #[serde(serialize_with = "super::lsn::text")]
    pub streaming_start: Option<Lsn>,
    /// E in the first framing error in streamed WAL.
    #[serde(serialize_with = "super::lsn::text")]
    pub framing_error_at: Option<Lsn>,
    /// How many framing-error lines name that same position (a loop repeats it).
    pub framing_error_repeats: usize,
    /// X in "does not contain minimum recovery point X".
    #[serde(serialize_with = "super::lsn::text")]
    pub min_recovery_point: Option<Lsn>,
    /// X in the not-a-child DETAIL "Latest checkpoint is at X".
    #[serde(serialize_with = "super::lsn::text")]
    pub detail_checkpoint: Option<Lsn>,
    /// F in the not-a-child DETAIL "... forked off from that timeline at F".
    #[serde(serialize_with = "super::lsn::text")]
    pub detail_fork: Option<Lsn>,
}

/// The mechanism of one node: the distinct kinds in order of first appearance,
/// the first line of each, and the positions they quote.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MechanismTrace {
    pub kinds: Vec<Mechanism>,
    /// The first line of each kind (same index as `kinds`).
    pub lines: Vec<String>,
    pub positions: MechanismPositions,
}

impl MechanismTrace {
    /// Reads a node's log lines in order. A framing text before the first
    /// "started streaming" is the end of the node's local WAL
    /// (`EndOfLocalWal`); after it, it is a `FramingError` in streamed WAL.
    pub fn of<'a>(lines: impl IntoIterator<Item = &'a str>) -> MechanismTrace {
        let mut t = MechanismTrace::default();
        let mut streamed = false;
        for line in lines {
            let Some(mut kind) = recognise_mechanism(line) else {
                // The not-a-child DETAIL is its own line on a real server.
                if let Some((checkpoint, _, fork)) = not_a_child_detail(line) {
                    let p = &mut t.positions;
                    p.detail_checkpoint = p.detail_checkpoint.or(Some(checkpoint));
                    p.detail_fork = p.detail_fork.or(Some(fork));
                }
                continue;
            };
            let p = &mut t.positions;
            match kind {
                Mechanism::FramingError if !streamed => {
                    kind = Mechanism::EndOfLocalWal;
                    p.end_of_local_wal = p.end_of_local_wal.or(framing_position(line));
                }
                Mechanism::FramingError => {
                    let at = framing_position(line);
                    if p.framing_error_at.is_none() {
                        p.framing_error_at = at;
                    }
                    if at.is_some() && at == p.framing_error_at {
                        p.framing_error_repeats += 1;
                    }
                }
                Mechanism::StartedStreaming => {
                    streamed = true;
                    let at = Lsn::after(line, "started streaming WAL from primary at ")
                        .or_else(|| Lsn::after(line, "restarted WAL streaming at "));
                    p.streaming_start = p.streaming_start.or(at);
                }
                Mechanism::ConsistentRecoveryState => {
                    p.consistent_at =
                        p.consistent_at.or(Lsn::after(line, "consistent recovery state reached at "));
                }
                Mechanism::MinRecoveryPointNotOnTimeline => {
                    p.min_recovery_point =
                        p.min_recovery_point.or(Lsn::after(line, "does not contain minimum recovery point "));
                }
                _ => {}
            }
            // The model prints the DETAIL on the FATAL's line in some places.
            if let Some((checkpoint, _, fork)) = not_a_child_detail(line) {
                p.detail_checkpoint = p.detail_checkpoint.or(Some(checkpoint));
                p.detail_fork = p.detail_fork.or(Some(fork));
            }
            if !t.kinds.contains(&kind) {
                t.kinds.push(kind);
                t.lines.push(line.to_string());
            }
        }
        t
    }
}

/// The first place where two kind sequences differ, as "first difference at #N:
/// PostgreSQL A, walsim B" (`None` if equal). A sequence that ended is "nothing more".
pub fn first_difference(postgres: &[Mechanism], walsim: &[Mechanism]) -> Option<String> {
    let i = postgres.iter().zip(walsim).take_while(|(a, b)| a == b).count();
    if i == postgres.len() && i == walsim.len() {
        return None;
    }
    let show = |s: &[Mechanism]| s.get(i).map_or("nothing more", |k| k.name());
    Some(format!("first difference at #{}: PostgreSQL {}, walsim {}", i + 1, show(postgres), show(walsim)))
}

/// The relations between the mechanism's positions and the positions a story
/// measured, by name; only those whose two positions are both known.
///
/// `end_of_local_wal` is where the rejoining node's own WAL ended when it started
/// as a standby (in every story the rejoining node is the old primary, so this is
/// also "the old primary's end of WAL"; `None` after pg_rewind replaced its WAL),
/// `fork_point` timeline 1's switch point in the new primary's history.
pub fn mechanism_relations(
    p: &MechanismPositions,
    end_of_local_wal: Option<Lsn>,
    fork_point: Option<Lsn>,
    segment: u64,
) -> Vec<(String, bool)> {
    fn both(a: Option<Lsn>, b: Option<Lsn>, f: impl Fn(Lsn, Lsn) -> bool) -> Option<bool> {
        a.zip(b).map(|(a, b)| f(a, b))
    }
    let end = end_of_local_wal;
    let candidates = [
        (
            "startup's end of local WAL equals the rejoining node's end of local WAL",
            both(p.end_of_local_wal, end, |a, b| a == b),
        ),
        (
            "consistency point equals the rejoining node's end of local WAL",
            both(p.consistent_at, end, |a, b| a == b),
        ),
        (
            "walreceiver's start point is the start of the WAL segment holding the rejoining node's end of local WAL",
            both(p.streaming_start, end, |s, e| s == e.segment_start(segment)),
        ),
        (
            "framing error position equals the rejoining node's end of local WAL",
            both(p.framing_error_at, end, |a, b| a == b),
        ),
        (
            "minimum recovery point in the FATAL equals the old primary's end of WAL",
            both(p.min_recovery_point, end, |a, b| a == b),
        ),
        (
            "minimum recovery point in the FATAL > fork point",
            both(p.min_recovery_point, fork_point, |m, f| m > f),
        ),
        ("DETAIL's latest checkpoint > fork point", both(p.detail_checkpoint, fork_point, |c, f| c > f)),
        ("DETAIL's fork point equals the fork point", both(p.detail_fork, fork_point, |a, b| a == b)),
    ];
    candidates.into_iter().filter_map(|(name, holds)| holds.map(|h| (name.to_string(), h))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mechanism::*;

    // Lines in the shape of PostgreSQL 15.18's server log (log_line_prefix '%m [%p] %b ').
    const STANDBY: &str = "2026-12-02 18:00:00.001 UTC [100] startup LOG:  entering standby mode";
    const CRASH: &str = "2026-12-02 18:00:00.002 UTC [100] startup LOG:  crash recovery starts in timeline 1 and has target timeline 2";
    const REDO: &str = "2026-12-02 18:00:00.003 UTC [100] startup LOG:  redo starts at 0/3000108";
    const END: &str = "2026-12-02 18:00:00.004 UTC [100] startup LOG:  invalid record length at 0/4012A90: wanted 24, got 0";
    const CONSISTENT: &str =
        "2026-12-02 18:00:00.005 UTC [100] startup LOG:  consistent recovery state reached at 0/4012A90";
    const STREAMING: &str = "2026-12-02 18:00:00.006 UTC [101] walreceiver LOG:  started streaming WAL from primary at 0/4000000 on timeline 2";
    const PREV_LINK: &str = "2026-12-02 18:00:00.007 UTC [100] startup LOG:  record with incorrect prev-link 0/4012A18 at 0/4012A90";
    const LENGTH: &str = "2026-12-02 18:00:00.008 UTC [100] startup LOG:  invalid record length at 0/4012A90: wanted 24, got 77";
    const RMGR_LINE: &str =
        "2026-12-02 18:00:00.009 UTC [100] startup LOG:  invalid resource manager ID 47 at 0/4012A90";
    const MIN_RECOVERY: &str = "2026-12-02 18:00:01.000 UTC [200] startup FATAL:  requested timeline 2 does not contain minimum recovery point 0/4012A90 on timeline 1";
    const NOT_A_CHILD: &str = "2026-12-02 18:00:02.000 UTC [300] startup FATAL:  requested timeline 2 is not a child of this server's history";
    const DETAIL: &str = "2026-12-02 18:00:02.000 UTC [300] startup DETAIL:  Latest checkpoint is at 0/4012B08 on timeline 1, but in the history of the requested timeline, the server forked off from that timeline at 0/3012AB8.";

    #[test]
    fn recognises_real_lines() {
        let cases = [
            (STANDBY, EnteringStandbyMode),
            (CRASH, CrashRecoveryStarts),
            (REDO, RedoStarts),
            (END, FramingError),
            (CONSISTENT, ConsistentRecoveryState),
            (STREAMING, StartedStreaming),
            (PREV_LINK, FramingError),
            (LENGTH, FramingError),
            (RMGR_LINE, FramingError),
            (MIN_RECOVERY, MinRecoveryPointNotOnTimeline),
            (NOT_A_CHILD, NotAChild),
            (
                "2026-12-02 18:00:00.000 UTC [1] startup LOG:  redo done at 0/4012A18 system usage: CPU: user: 0.00 s",
                RedoDone,
            ),
            (
                "2026-12-02 18:00:00.000 UTC [1] walreceiver LOG:  fetching timeline history file for timeline 2 from primary server",
                FetchingHistoryFile,
            ),
            ("2026-12-02 18:00:00.000 UTC [1] startup LOG:  new target timeline is 2", NewTargetTimeline),
            (
                "2026-12-02 18:00:00.000 UTC [1] walreceiver LOG:  replication terminated by primary server",
                ReplicationTerminated,
            ),
            (
                "2026-12-02 18:00:00.000 UTC [1] walreceiver LOG:  restarted WAL streaming at 0/5000000 on timeline 3",
                StartedStreaming,
            ),
            (
                "2026-12-02 18:00:00.000 UTC [1] startup LOG:  new timeline 2 forked off current database system timeline 1 before current recovery point 0/4012A90",
                NewTimelineForkedOff,
            ),
            (
                "2026-12-02 18:00:00.000 UTC [1] startup PANIC:  unexpected timeline ID 2 (should be 1) in online checkpoint record",
                UnexpectedTimelineId,
            ),
        ];
        for (line, kind) in cases {
            assert_eq!(recognise_mechanism(line), Some(kind), "{line}");
        }
        for line in [
            DETAIL,
            "2026-12-02 18:00:00.000 UTC [1] startup LOG:  invalid resource manager ID in checkpoint record",
            "2026-12-02 18:00:00.000 UTC [1] postmaster LOG:  database system is ready to accept read-only connections",
            "",
        ] {
            assert_eq!(recognise_mechanism(line), None, "{line}");
        }
    }

    #[test]
    fn positions_of_framing_texts() {
        for line in [END, PREV_LINK, LENGTH, RMGR_LINE] {
            assert_eq!(framing_position(line), Some(Lsn(0x401_2A90)), "{line}");
        }
        assert_eq!(framing_position(STREAMING), None);
        assert_eq!(not_a_child_detail(DETAIL), Some((Lsn(0x401_2B08), 1, Lsn(0x301_2AB8))));
        assert_eq!(not_a_child_detail("Latest checkpoint is at 0/1 on timeline x, but"), None);
        assert_eq!(not_a_child_detail(NOT_A_CHILD), None);
    }

    #[test]
    fn framing_text_before_streaming_is_the_end_of_local_wal() {
        let log = [STANDBY, CRASH, REDO, END, CONSISTENT, STREAMING, PREV_LINK, PREV_LINK, LENGTH];
        let t = MechanismTrace::of(log);
        assert_eq!(
            t.kinds,
            [
                EnteringStandbyMode,
                CrashRecoveryStarts,
                RedoStarts,
                EndOfLocalWal,
                ConsistentRecoveryState,
                StartedStreaming,
                FramingError
            ]
        );
        assert_eq!(t.lines[6], PREV_LINK);
        let p = t.positions;
        assert_eq!(p.end_of_local_wal, Some(Lsn(0x401_2A90)));
        assert_eq!(p.consistent_at, Some(Lsn(0x401_2A90)));
        assert_eq!(p.streaming_start, Some(Lsn(0x400_0000)));
        assert_eq!(p.framing_error_at, Some(Lsn(0x401_2A90)));
        assert_eq!(p.framing_error_repeats, 3);
        // Without streaming, the same text is only the end of local WAL.
        let t = MechanismTrace::of([REDO, LENGTH]);
        assert_eq!(t.kinds, [RedoStarts, EndOfLocalWal]);
        assert_eq!(t.positions.framing_error_at, None);
    }

    #[test]
    fn first_difference_names_the_message() {
        let pg = [EnteringStandbyMode, RedoStarts, ConsistentRecoveryState];
        assert_eq!(first_difference(&pg, &pg), None);
        assert_eq!(
            first_difference(&pg, &[EnteringStandbyMode, RedoStarts, StartedStreaming]).unwrap(),
            "first difference at #3: PostgreSQL consistent_recovery_state, walsim started_streaming"
        );
        assert_eq!(
            first_difference(&pg[..2], &pg).unwrap(),
            "first difference at #3: PostgreSQL nothing more, walsim consistent_recovery_state"
        );
        assert_eq!(first_difference(&[], &[]), None);
    }

    #[test]
    fn relations_only_when_both_positions_are_known() {
        let log = [REDO, END, CONSISTENT, STREAMING, PREV_LINK, MIN_RECOVERY, NOT_A_CHILD, DETAIL];
        let p = MechanismTrace::of(log).positions;
        let seg = 16 * 1024 * 1024;
        let all = mechanism_relations(&p, Some(Lsn(0x401_2A90)), Some(Lsn(0x301_2AB8)), seg);
        assert_eq!(all.len(), 8, "{all:?}");
        assert!(all.iter().all(|(_, holds)| *holds), "{all:?}");
        // A different end of WAL breaks the equalities.
        let off = mechanism_relations(&p, Some(Lsn(0x401_2B08)), None, seg);
        assert_eq!(off.len(), 5, "{off:?}");
        assert!(off.iter().all(|(name, holds)| !holds || name.starts_with("walreceiver")), "{off:?}");
        assert!(mechanism_relations(&p, None, None, seg).is_empty());
        assert!(
            mechanism_relations(&MechanismPositions::default(), Some(Lsn(1)), Some(Lsn(1)), seg).is_empty()
        );
    }
}
