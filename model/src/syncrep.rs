//! Synchronous replication (syncrep.c, syncrep_gram.y): which standbys are
//! synchronous, and up to which position waiters are released.

use crate::lsn::Lsn;

/// Parsed `synchronous_standby_names`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum StandbyNames {
    /// Empty: asynchronous replication, nobody waits.
    Async,
    /// `FIRST n (a, b, ...)` (also the plain list and `n (list)` forms): the
    /// first `n` connected standbys in list order are synchronous.
    First { num: usize, names: Vec<String> },
    /// `ANY n (a, b, ...)`: quorum; any `n` of the listed ones.
    Any { num: usize, names: Vec<String> },
}

/// Which WAL position of a standby a waiter needs (`SYNC_REP_WAIT_*`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum WaitMode {
    Write,
    Flush,
    Apply,
}

/// The positions a standby last reported (a `pg_stat_replication` row).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct ReportedPositions {
    pub write: Lsn,
    pub flush: Lsn,
    pub apply: Lsn,
}

impl ReportedPositions {
    pub fn get(&self, mode: WaitMode) -> Lsn {
        match mode {
            WaitMode::Write => self.write,
            WaitMode::Flush => self.flush,
            WaitMode::Apply => self.apply,
        }
    }
}

impl StandbyNames {
    /// Parses the setting; the error says what is wrong, like the GUC check
    /// hook's message.
    pub fn parse(s: &str) -> Result<StandbyNames, String> {
        let t = s.trim();
        if t.is_empty() {
            return Ok(StandbyNames::Async);
        }
        let (method, rest) = match first_word(t) {
            Some((w, rest)) if w.eq_ignore_ascii_case("first") => ("first", rest.trim_start()),
            Some((w, rest)) if w.eq_ignore_ascii_case("any") => ("any", rest.trim_start()),
            _ => ("", t),
        };
        let (num, list) = match rest.find('(') {
            Some(open) => {
                let num_text = rest[..open].trim();
                let num: usize = num_text
                    .parse()
                    .map_err(|_| format!("syntax error in \"{s}\": expected a number before \"(\""))?;
                let close = rest
                    .rfind(')')
                    .filter(|&c| c > open && rest[c + 1..].trim().is_empty())
                    .ok_or_else(|| format!("syntax error in \"{s}\": missing \")\""))?;
                (Some(num), &rest[open + 1..close])
            }
            None if method.is_empty() => (None, rest),
            None => {
                return Err(format!("syntax error in \"{s}\": expected \"(\" after the number"));
            }
        };
        let names: Vec<String> = list
            .split(',')
            .map(|n| {
                let n = n.trim();
                if let Some(q) = n.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
                    q.to_string()
                } else {
                    n.to_ascii_lowercase()
                }
            })
            .collect();
        if names.iter().any(|n| n.is_empty()) {
            return Err(format!("syntax error in \"{s}\": empty standby name"));
        }
        let num = num.unwrap_or(1);
        if num == 0 {
            return Err(format!("number of synchronous standbys (0) must be greater than zero in \"{s}\""));
        }
        Ok(if method == "any" {
            StandbyNames::Any { num, names }
        } else {
            StandbyNames::First { num, names }
        })
    }

    pub fn is_sync(&self) -> bool {
        !matches!(self, StandbyNames::Async)
    }

    /// Priority of a standby by name (lower is more preferred; 0 = not a
    /// candidate), as `SyncRepGetStandbyPriority`.
    pub fn priority(&self, name: &str) -> usize {
        let names = match self {
            StandbyNames::Async => return 0,
            StandbyNames::First { names, .. } | StandbyNames::Any { names, .. } => names,
        };
        names
            .iter()
            .position(|n| n == "*" || n.eq_ignore_ascii_case(name))
            .map(|i| match self {
                StandbyNames::Any { .. } => 1,
                _ => i + 1,
            })
            .unwrap_or(0)
    }

    /// `SyncRepConfig->syncrep_method == SYNC_REP_QUORUM`.
    pub fn is_quorum(&self) -> bool {
        matches!(self, StandbyNames::Any { .. })
    }

    /// `SyncRepConfig->num_sync`.
    pub fn num_sync(&self) -> usize {
        match self {
            StandbyNames::Async => 0,
            StandbyNames::First { num, .. } | StandbyNames::Any { num, .. } => *num,
        }
    }

    /// SyncRepGetCandidateStandbys: indices into `slots` (which must be in
    /// walsender slot order) of the standbys considered synchronous now.
    /// A candidate has a listed name, is `streaming` or `stopping`, and
    /// (with `need_flush`) has reported a valid flush position. In quorum
    /// mode every candidate is returned; in priority mode, if there are
    /// more than `num_sync`, the `num_sync` of highest priority, ties
    /// broken by slot (standby_priority_comparator).
    pub fn candidates(&self, slots: &[SlotView<'_>], need_flush: bool) -> Vec<usize> {
        if !self.is_sync() {
            return Vec::new();
        }
        let mut c: Vec<usize> = (0..slots.len())
            .filter(|&i| {
                let s = &slots[i];
                matches!(s.state, WalSndState::Streaming | WalSndState::Stopping)
                    && self.priority(s.name) > 0
                    && (!need_flush || s.pos.flush != Lsn(0))
            })
            .collect();
        if !self.is_quorum() && c.len() > self.num_sync() {
            c.sort_by_key(|&i| (self.priority(slots[i].name), slots[i].slot));
            c.truncate(self.num_sync());
        }
        c
    }

    /// SyncRepGetSyncRecPtr for the walsender at index `me` of `slots`:
    /// whether it is among the candidates (`am_sync`), and, if it is and
    /// there are enough, the positions up to which waiters may be released
    /// — the oldest of the chosen ones (FIRST, SyncRepGetOldestSyncRecPtr)
    /// or the `num_sync`-th latest of each (ANY,
    /// SyncRepGetNthLatestSyncRecPtr).
    pub fn sync_rec_ptr(
        &self,
        slots: &[SlotView<'_>],
        me: usize,
        need_flush: bool,
    ) -> (Option<ReportedPositions>, bool) {
        let cands = self.candidates(slots, need_flush);
        let am_sync = cands.contains(&me);
        if !am_sync || cands.len() < self.num_sync() {
            return (None, am_sync);
        }
        let pos: Vec<ReportedPositions> = cands.iter().map(|&i| slots[i].pos).collect();
        (Some(Self::combine(&pos, self.is_quorum(), self.num_sync())), am_sync)
    }

    /// Oldest of each position (priority mode) or the `n`-th latest of
    /// each (quorum mode). `pos` has at least `n` entries.
    fn combine(pos: &[ReportedPositions], quorum: bool, n: usize) -> ReportedPositions {
        let pick = |f: fn(&ReportedPositions) -> Lsn| -> Lsn {
            let mut v: Vec<Lsn> = pos.iter().map(f).collect();
            if quorum {
                v.sort_unstable_by(|a, b| b.cmp(a));
                v[n - 1]
            } else {
                v.into_iter().min().unwrap_or(Lsn(0))
            }
        };
        ReportedPositions { write: pick(|p| p.write), flush: pick(|p| p.flush), apply: pick(|p| p.apply) }
    }

    /// The position up to which waiters of `mode` would be released if it
    /// were recomputed from the current reports (what walsim did before
    /// `rules.sync_released_positions_only_advance`; used with that rule
    /// off). `None` if not enough synchronous standbys are candidates.
    pub fn release_position(&self, slots: &[SlotView<'_>], mode: WaitMode, need_flush: bool) -> Option<Lsn> {
        let cands = self.candidates(slots, need_flush);
        if !self.is_sync() || cands.len() < self.num_sync() {
            return None;
        }
        let pos: Vec<ReportedPositions> = cands.iter().map(|&i| slots[i].pos).collect();
        Some(Self::combine(&pos, self.is_quorum(), self.num_sync()).get(mode))
    }

    /// `sync_state` of the walsender at index `i` of `slots`, as
    /// pg_stat_get_wal_senders computes it: `async` (priority 0), `sync` or
    /// `quorum` (among the candidates), else `potential`.
    pub fn sync_state(&self, slots: &[SlotView<'_>], i: usize, need_flush: bool) -> &'static str {
        if self.priority(slots[i].name) == 0 {
            "async"
        } else if self.candidates(slots, need_flush).contains(&i) {
            if self.is_quorum() { "quorum" } else { "sync" }
        } else {
            "potential"
        }
    }
}

/// A walsender's state (`WalSndState`), as `pg_stat_replication.state`
/// shows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum WalSndState {
    Startup,
    Catchup,
    Streaming,
    Stopping,
}

impl WalSndState {
    /// WalSndGetStateString.
    pub fn name(self) -> &'static str {
        match self {
            WalSndState::Startup => "startup",
            WalSndState::Catchup => "catchup",
            WalSndState::Streaming => "streaming",
            WalSndState::Stopping => "stopping",
        }
    }
}

/// One walsender slot as the sync-rep functions read it.
#[derive(Clone, Copy, Debug)]
pub struct SlotView<'a> {
    /// Index in `WalSndCtl->walsnds`.
    pub slot: usize,
    /// `application_name`.
    pub name: &'a str,
    pub state: WalSndState,
    pub pos: ReportedPositions,
}

/// The sync-rep part of a server's `WalSndCtl`: the positions up to which
/// waiters of each mode have been released (`lsn[mode]`, which only
/// advance), and `sync_standbys_defined`. Shared memory: reset when the
/// server starts.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct WalSndCtl {
    pub lsn: [Lsn; 3],
    pub sync_standbys_defined: bool,
}

impl WalSndCtl {
    pub fn released(&self, mode: WaitMode) -> Lsn {
        self.lsn[mode as usize]
    }
}

fn first_word(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !c.is_ascii_alphabetic())?;
    (end > 0).then(|| s.split_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(l: u64) -> ReportedPositions {
        ReportedPositions { write: Lsn(l), flush: Lsn(l), apply: Lsn(l) }
    }

    #[test]
    fn parses_the_forms() {
        assert_eq!(StandbyNames::parse("").unwrap(), StandbyNames::Async);
        assert_eq!(
            StandbyNames::parse("*").unwrap(),
            StandbyNames::First { num: 1, names: vec!["*".into()] }
        );
        assert_eq!(
            StandbyNames::parse("FIRST 2 (s1, S2)").unwrap(),
            StandbyNames::First { num: 2, names: vec!["s1".into(), "s2".into()] }
        );
        assert_eq!(
            StandbyNames::parse("any 1 (\"Node A\", b)").unwrap(),
            StandbyNames::Any { num: 1, names: vec!["Node A".into(), "b".into()] }
        );
        assert_eq!(
            StandbyNames::parse("2 (a, b)").unwrap(),
            StandbyNames::First { num: 2, names: vec!["a".into(), "b".into()] }
        );
        assert!(StandbyNames::parse("FIRST x (a)").is_err());
        assert!(StandbyNames::parse("FIRST 1 (a").is_err());
        assert!(StandbyNames::parse("ANY 0 (a)").is_err());
        assert!(StandbyNames::parse("a,,b").is_err());
    }

    fn slot(slot: usize, name: &str, flush: u64) -> SlotView<'_> {
        SlotView { slot, name, state: WalSndState::Streaming, pos: pos(flush) }
    }

    #[test]
    fn release_is_min_of_first_and_nth_of_any() {
        let first = StandbyNames::parse("FIRST 2 (a, b, c)").unwrap();
        let list = [slot(0, "c", 30), slot(1, "a", 10), slot(2, "b", 20)];
        assert_eq!(first.release_position(&list, WaitMode::Flush, true), Some(Lsn(10)));
        let any = StandbyNames::parse("ANY 2 (a, b, c)").unwrap();
        assert_eq!(any.release_position(&list, WaitMode::Flush, true), Some(Lsn(20)));
        let none = [slot(0, "z", 5)];
        assert_eq!(first.release_position(&none, WaitMode::Flush, true), None);
        assert_eq!(StandbyNames::Async.release_position(&none, WaitMode::Write, true), None);
    }

    /// FIRST picks by priority, not by who is furthest behind or ahead; a
    /// tie in priority goes to the lower walsender slot, whatever the
    /// order the standbys connected in.
    #[test]
    fn first_orders_by_priority_then_slot() {
        let names = StandbyNames::parse("FIRST 1 (b, a)").unwrap();
        // b has priority 1 but is the one furthest behind: still b.
        let list = [slot(0, "a", 50), slot(1, "b", 10)];
        assert_eq!(names.candidates(&list, true), vec![1]);
        assert_eq!(names.sync_rec_ptr(&list, 1, true), (Some(pos(10)), true));
        assert_eq!(names.sync_rec_ptr(&list, 0, true), (None, false));
        assert_eq!(names.sync_state(&list, 0, true), "potential");
        assert_eq!(names.sync_state(&list, 1, true), "sync");
        // '*': equal priorities; slot 0 wins even when listed second (it
        // reconnected last, into the lowest free slot).
        let star = StandbyNames::parse("FIRST 1 (*)").unwrap();
        let list = [slot(1, "node3", 40), slot(0, "node2", 20)];
        assert_eq!(star.candidates(&list, true), vec![1]);
        assert_eq!(star.sync_state(&list, 1, true), "sync");
        assert_eq!(star.sync_state(&list, 0, true), "potential");
    }

    /// A walsender that has not reported a flush position is no candidate
    /// (XLogRecPtrIsInvalid(flush)): counting it at 0/0 would make it the
    /// synchronous one and hold every waiter back.
    #[test]
    fn a_standby_without_a_flush_position_is_no_candidate() {
        let names = StandbyNames::parse("FIRST 1 (b, a)").unwrap();
        let list = [slot(0, "a", 50), slot(1, "b", 0)];
        assert_eq!(names.candidates(&list, true), vec![0]);
        assert_eq!(names.release_position(&list, WaitMode::Flush, true), Some(Lsn(50)));
        assert_eq!(names.sync_state(&list, 1, true), "potential");
        // The planted bug: counted at 0/0, b is chosen and releases nothing.
        assert_eq!(names.candidates(&list, false), vec![1]);
        assert_eq!(names.release_position(&list, WaitMode::Flush, false), Some(Lsn(0)));
        let any = StandbyNames::parse("ANY 1 (a, b)").unwrap();
        assert_eq!(any.sync_state(&list, 0, true), "quorum");
        assert_eq!(any.sync_state(&list, 1, true), "potential");
        let catchup = [SlotView { state: WalSndState::Catchup, ..slot(0, "a", 50) }];
        assert_eq!(any.candidates(&catchup, true), Vec::<usize>::new());
        let stopping = [SlotView { state: WalSndState::Stopping, ..slot(0, "a", 50) }];
        assert_eq!(any.candidates(&stopping, true), vec![0]);
    }

    /// FIRST 2 waits for the two standbys of highest priority: the release
    /// position is the older of theirs. Here the highest-priority standby
    /// is the furthest ahead and the one of lowest priority the furthest
    /// behind, so waiting for one standby fewer (or one more) shows.
    #[test]
    fn first_n_waits_for_exactly_n_standbys() {
        let first = StandbyNames::parse("FIRST 2 (a, b, c)").unwrap();
        let list = [slot(0, "c", 10), slot(1, "b", 20), slot(2, "a", 30)];
        assert_eq!(first.candidates(&list, true), [2, 1], "a and b, by priority");
        assert_eq!(first.release_position(&list, WaitMode::Flush, true), Some(Lsn(20)));
        let (rel, am_sync) = first.sync_rec_ptr(&list, 2, true);
        assert_eq!((rel.map(|p| p.flush), am_sync), (Some(Lsn(20)), true));
        assert_eq!(first.sync_rec_ptr(&list, 0, true), (None, false), "c is only potential");
        // With one candidate, FIRST 2 releases nothing.
        let one = [slot(0, "a", 30), slot(1, "z", 40)];
        assert_eq!(first.release_position(&one, WaitMode::Flush, true), None);
        assert_eq!(first.sync_rec_ptr(&one, 0, true), (None, true));
        // FIRST 1 of the same list: only a.
        let first1 = StandbyNames::parse("FIRST 1 (a, b, c)").unwrap();
        assert_eq!(first1.release_position(&list, WaitMode::Flush, true), Some(Lsn(30)));
    }

    /// The other spellings syncrep_gram.y accepts or refuses: a plain list
    /// is `FIRST 1`, names fold to lower case unless quoted, the keywords
    /// are case-insensitive; a method keyword needs a parenthesized list,
    /// and nothing may follow the closing parenthesis.
    #[test]
    fn plain_lists_keywords_and_trailing_text() {
        let first = |num, names: &[&str]| StandbyNames::First {
            num,
            names: names.iter().map(|n| n.to_string()).collect(),
        };
        assert_eq!(StandbyNames::parse("node2, Node3"), Ok(first(1, &["node2", "node3"])));
        assert_eq!(StandbyNames::parse("  \"Node2\"  "), Ok(first(1, &["Node2"])));
        assert_eq!(StandbyNames::parse("first 1 (a)"), Ok(first(1, &["a"])));
        assert_eq!(
            StandbyNames::parse("ANY 2 (a,b)"),
            Ok(StandbyNames::Any { num: 2, names: vec!["a".into(), "b".into()] })
        );
        // FIRST and ANY are keywords (syncrep_scanner.l): as standby names
        // they must be quoted.
        assert!(StandbyNames::parse("first, any").is_err());
        assert_eq!(StandbyNames::parse("\"first\", \"any\""), Ok(first(1, &["first", "any"])));
        assert_eq!(
            StandbyNames::parse("FIRST 2"),
            Err("syntax error in \"FIRST 2\": expected \"(\" after the number".into())
        );
        assert_eq!(
            StandbyNames::parse("ANY 1 (a) b"),
            Err("syntax error in \"ANY 1 (a) b\": missing \")\"".into())
        );
        assert_eq!(
            StandbyNames::parse("FIRST 1 (a, )"),
            Err("syntax error in \"FIRST 1 (a, )\": empty standby name".into())
        );
        assert_eq!(
            StandbyNames::parse("FIRST 0 (a)"),
            Err("number of synchronous standbys (0) must be greater than zero in \"FIRST 0 (a)\"".into())
        );
        assert_eq!(StandbyNames::parse("   "), Ok(StandbyNames::Async));
        assert!(!StandbyNames::Async.is_sync() && first(1, &["a"]).is_sync());
    }

    /// SyncRepGetStandbyPriority: the 1-based position of the first
    /// matching entry (`*` matches any name, case-insensitively), 0 when
    /// not listed; in quorum mode every listed standby has priority 1.
    #[test]
    fn priority_is_list_position_or_one_in_quorum_mode() {
        let first = StandbyNames::parse("FIRST 1 (a, B, *)").unwrap();
        assert_eq!(["a", "b", "zz"].map(|n| first.priority(n)), [1, 2, 3]);
        let listed = StandbyNames::parse("FIRST 1 (a, b, c)").unwrap();
        assert_eq!(["A", "c", "d"].map(|n| listed.priority(n)), [1, 3, 0]);
        let any = StandbyNames::parse("ANY 1 (a, b, c)").unwrap();
        assert_eq!(["a", "c", "d"].map(|n| any.priority(n)), [1, 1, 0]);
        assert_eq!(StandbyNames::Async.priority("a"), 0);
        assert_eq!((any.num_sync(), listed.num_sync(), StandbyNames::Async.num_sync()), (1, 1, 0));
        assert!(any.is_quorum() && !listed.is_quorum() && !StandbyNames::Async.is_quorum());
    }

    /// Each wait mode reads its own reported position; the released
    /// positions are kept per mode.
    #[test]
    fn positions_per_wait_mode() {
        let p = ReportedPositions { write: Lsn(30), flush: Lsn(20), apply: Lsn(10) };
        assert_eq!(
            [WaitMode::Write, WaitMode::Flush, WaitMode::Apply].map(|m| p.get(m)),
            [Lsn(30), Lsn(20), Lsn(10)]
        );
        let ctl = WalSndCtl { lsn: [Lsn(3), Lsn(2), Lsn(1)], sync_standbys_defined: true };
        assert_eq!(
            [WaitMode::Write, WaitMode::Flush, WaitMode::Apply].map(|m| ctl.released(m)),
            [Lsn(3), Lsn(2), Lsn(1)]
        );
        // FIRST: the oldest of each position separately.
        let names = StandbyNames::parse("FIRST 2 (a, b)").unwrap();
        let a = ReportedPositions { write: Lsn(50), flush: Lsn(40), apply: Lsn(5) };
        let b = ReportedPositions { write: Lsn(45), flush: Lsn(42), apply: Lsn(7) };
        let list = [SlotView { pos: a, ..slot(0, "a", 0) }, SlotView { pos: b, ..slot(1, "b", 0) }];
        let want = ReportedPositions { write: Lsn(45), flush: Lsn(40), apply: Lsn(5) };
        assert_eq!(names.sync_rec_ptr(&list, 0, true), (Some(want), true));
        assert_eq!(names.release_position(&list, WaitMode::Apply, true), Some(Lsn(5)));
    }

    /// pg_stat_replication.state (WalSndGetStateString).
    #[test]
    fn walsender_states_print_as_pg_stat_replication_shows_them() {
        use WalSndState as S;
        let all = [S::Startup, S::Catchup, S::Streaming, S::Stopping];
        assert_eq!(all.map(|s| s.name()), ["startup", "catchup", "streaming", "stopping"]);
    }
}
