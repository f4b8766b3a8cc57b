//! "Sometimes" coverage marks: interesting states a run may or may not
//! reach — a failback that converged, each kind of refusal, a power loss
//! that hit a write not yet fsynced, a WAL segment removed, a replication
//! slot holding WAL, a commit waiting for a synchronous standby. An
//! invariant says what must *always* hold; a mark says what a sweep must
//! *sometimes* reach, or its passing invariants prove little (TigerBeetle's
//! `src/testing/marks.zig` ties log lines to the tests that must reach
//! them; `walsim explore` counts, per mark, the runs that reached it and
//! names the marks no run reached).
//!
//! Marks are observations, not events: setting one is a bit set in a
//! run-long set, never read by the model, never hashed into a trace or a
//! state fingerprint, so they cannot change what a run does.

use crate::event::RefusalKind;
use crate::script::{AttemptResult, FailbackAttempt};
use std::fmt;

/// A state worth reaching (docs/invariants.md, "Coverage marks").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Mark {
    /// A failback attempt ended with the old primary streaming from its new
    /// upstream and showing its rows (`converged`).
    FailbackConverged,
    /// PostgreSQL's checks refused something, of this kind.
    Refused(RefusalKind),
    /// A power loss struck while WAL was written but not flushed, or a data
    /// or CLOG page was in the OS cache but not on disk.
    PowerLossHitUnsyncedWrite,
    /// A checkpoint or restartpoint removed or recycled WAL segments
    /// (RemoveOldXlogFiles).
    SegmentRemoved,
    /// A replication slot held WAL a checkpoint would otherwise have
    /// removed (KeepLogSeg, slot's `restart_lsn` before REDO's segment).
    SlotHeldWal,
    /// A commit waited for a synchronous standby (SyncRepWaitForLSN).
    SyncRepWaited,
    /// A standby completed a restartpoint (CreateRestartPoint), not at
    /// shutdown.
    Restartpoint,
}

const REFUSALS: [RefusalKind; 10] = [
    RefusalKind::NotAChild,
    RefusalKind::MinRecoveryPointNotOnTimeline,
    RefusalKind::NotInHistory,
    RefusalKind::ForkedBeforeRecoveryPoint,
    RefusalKind::AheadOfFlush,
    RefusalKind::RewindNeedsHints,
    RefusalKind::StartupFailed,
    RefusalKind::SegmentRemoved,
    RefusalKind::SlotDoesNotExist,
    RefusalKind::RewindWalMissing,
];

impl Mark {
    /// Every mark, in the order `explore` reports them.
    pub fn all() -> Vec<Mark> {
        let mut all = vec![Mark::FailbackConverged];
        all.extend(REFUSALS.map(Mark::Refused));
        all.extend([
            Mark::PowerLossHitUnsyncedWrite,
            Mark::SegmentRemoved,
            Mark::SlotHeldWal,
            Mark::SyncRepWaited,
            Mark::Restartpoint,
        ]);
        all
    }

    /// Position in [`Mark::all`] and bit in [`Marks`].
    fn index(self) -> u32 {
        let refusal = |k: RefusalKind| match k {
            RefusalKind::NotAChild => 0,
            RefusalKind::MinRecoveryPointNotOnTimeline => 1,
            RefusalKind::NotInHistory => 2,
            RefusalKind::ForkedBeforeRecoveryPoint => 3,
            RefusalKind::AheadOfFlush => 4,
            RefusalKind::RewindNeedsHints => 5,
            RefusalKind::StartupFailed => 6,
            RefusalKind::SegmentRemoved => 7,
            RefusalKind::SlotDoesNotExist => 8,
            RefusalKind::RewindWalMissing => 9,
        };
        match self {
            Mark::FailbackConverged => 0,
            Mark::Refused(k) => 1 + refusal(k),
            Mark::PowerLossHitUnsyncedWrite => 11,
            Mark::SegmentRemoved => 12,
            Mark::SlotHeldWal => 13,
            Mark::SyncRepWaited => 14,
            Mark::Restartpoint => 15,
        }
    }

    /// The name `explore` prints (snake_case, like the invariants').
    pub fn name(self) -> String {
        let refusal = |k: RefusalKind| match k {
            RefusalKind::NotAChild => "not_a_child",
            RefusalKind::MinRecoveryPointNotOnTimeline => "min_recovery_point_not_on_timeline",
            RefusalKind::NotInHistory => "not_in_history",
            RefusalKind::ForkedBeforeRecoveryPoint => "forked_before_recovery_point",
            RefusalKind::AheadOfFlush => "ahead_of_flush",
            RefusalKind::RewindNeedsHints => "rewind_needs_hints",
            RefusalKind::StartupFailed => "startup_failed",
            RefusalKind::SegmentRemoved => "segment_removed",
            RefusalKind::SlotDoesNotExist => "slot_does_not_exist",
            RefusalKind::RewindWalMissing => "rewind_wal_missing",
        };
        match self {
            Mark::FailbackConverged => "failback_converged".into(),
            Mark::Refused(k) => format!("refused_{}", refusal(k)),
            Mark::PowerLossHitUnsyncedWrite => "power_loss_hit_unsynced_write".into(),
            Mark::SegmentRemoved => "segment_removed".into(),
            Mark::SlotHeldWal => "slot_held_wal".into(),
            Mark::SyncRepWaited => "sync_rep_waited".into(),
            Mark::Restartpoint => "restartpoint".into(),
        }
    }

    pub fn from_name(s: &str) -> Option<Mark> {
        Mark::all().into_iter().find(|m| m.name() == s)
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The marks a run reached: one bit each.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Marks(u32);

impl Marks {
    /// Notes that the run reached `m`.
    #[inline]
    pub fn hit(&mut self, m: Mark) {
        self.0 |= 1 << m.index();
    }

    pub fn contains(self, m: Mark) -> bool {
        self.0 & (1 << m.index()) != 0
    }

    pub fn union(self, o: Marks) -> Marks {
        Marks(self.0 | o.0)
    }

    /// The marks reached, in [`Mark::all`]'s order.
    pub fn reached(self) -> Vec<Mark> {
        Mark::all().into_iter().filter(|m| self.contains(*m)).collect()
    }
}

/// A run's marks: those the steps hit, with those its records show (a
/// converged failback, each refusal kind booked).
pub fn of_run(
    hit: Marks,
    attempts: &[FailbackAttempt],
    refusals: impl Iterator<Item = RefusalKind>,
) -> Marks {
    let mut m = hit;
    if attempts.iter().any(|a| a.result == AttemptResult::Converged) {
        m.hit(Mark::FailbackConverged);
    }
    for k in refusals {
        m.hit(Mark::Refused(k));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_marks_include_what_its_records_show() {
        use crate::lsn::Lsn;
        use crate::script::Failback;
        let attempt = |result| FailbackAttempt {
            node: "node1".into(),
            strategy: Failback::Rewind,
            at: 7,
            upstream: "node2".into(),
            result,
            messages: Vec::new(),
            end_of_wal: Lsn(0),
            fork_point: None,
            upstream_position: Lsn(0),
        };
        let mut hit = Marks::default();
        hit.hit(Mark::SyncRepWaited);
        let none = of_run(hit, &[attempt(AttemptResult::Streaming)], std::iter::empty());
        assert_eq!(none.reached(), [Mark::SyncRepWaited], "a streaming attempt has not converged");
        let m = of_run(
            hit,
            &[attempt(AttemptResult::Refused), attempt(AttemptResult::Converged)],
            [RefusalKind::NotAChild, RefusalKind::AheadOfFlush].into_iter(),
        );
        assert_eq!(
            m.reached(),
            [
                Mark::FailbackConverged,
                Mark::Refused(RefusalKind::NotAChild),
                Mark::Refused(RefusalKind::AheadOfFlush),
                Mark::SyncRepWaited
            ]
        );
    }

    #[test]
    fn every_mark_has_its_own_bit_and_name() {
        let all = Mark::all();
        for (i, m) in all.iter().enumerate() {
            assert_eq!(m.index() as usize, i, "{m}: index is the position in all()");
            assert_eq!(Mark::from_name(&m.name()), Some(*m));
        }
        assert_eq!(all.len(), 16);
        assert!(all.len() <= 32, "fits the bit set");
        let mut s = Marks::default();
        assert!(s.reached().is_empty());
        s.hit(Mark::SlotHeldWal);
        s.hit(Mark::Refused(RefusalKind::NotAChild));
        s.hit(Mark::SlotHeldWal);
        assert_eq!(s.reached(), [Mark::Refused(RefusalKind::NotAChild), Mark::SlotHeldWal]);
        assert!(!s.contains(Mark::SegmentRemoved));
        let mut t = Marks::default();
        t.hit(Mark::SegmentRemoved);
        assert_eq!(s.union(t).reached().len(), 3);
        assert_eq!(s.union(s), s, "a mark reached twice is reached");
        assert_eq!(Mark::Refused(RefusalKind::AheadOfFlush).to_string(), "refused_ahead_of_flush");
        assert_eq!(Mark::from_name("nonsense"), None);
    }
}
