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

    /// The position up to which waiters of `mode` are released, given the
    /// connected standbys (name, reported positions), or `None` if not
    /// enough synchronous standbys are connected (then waiters wait on).
    /// FIRST: the minimum over the chosen ones; ANY: the n-th highest.
    pub fn release_position<'a>(
        &self,
        standbys: impl Iterator<Item = (&'a str, ReportedPositions)>,
        mode: WaitMode,
    ) -> Option<Lsn> {
        let (num, quorum) = match self {
            StandbyNames::Async => return None,
            StandbyNames::First { num, .. } => (*num, false),
            StandbyNames::Any { num, .. } => (*num, true),
        };
        let mut cands: Vec<(usize, usize, Lsn)> = standbys
            .enumerate()
            .filter_map(|(i, (name, pos))| {
                let p = self.priority(name);
                (p > 0).then_some((p, i, pos.get(mode)))
            })
            .collect();
        if cands.len() < num {
            return None;
        }
        if quorum {
            cands.sort_by_key(|c| std::cmp::Reverse(c.2));
            Some(cands[num - 1].2)
        } else {
            cands.sort_by_key(|&(p, i, _)| (p, i));
            cands.iter().take(num).map(|c| c.2).min()
        }
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

    #[test]
    fn release_is_min_of_first_and_nth_of_any() {
        let first = StandbyNames::parse("FIRST 2 (a, b, c)").unwrap();
        let list = [("c", pos(30)), ("a", pos(10)), ("b", pos(20))];
        assert_eq!(
            first.release_position(list.iter().map(|(n, p)| (*n, *p)), WaitMode::Flush),
            Some(Lsn(10))
        );
        let any = StandbyNames::parse("ANY 2 (a, b, c)").unwrap();
        assert_eq!(any.release_position(list.iter().map(|(n, p)| (*n, *p)), WaitMode::Flush), Some(Lsn(20)));
        let none: [(&str, ReportedPositions); 1] = [("z", pos(5))];
        assert_eq!(first.release_position(none.iter().map(|(n, p)| (*n, *p)), WaitMode::Flush), None);
        assert_eq!(
            StandbyNames::Async.release_position(none.iter().map(|(n, p)| (*n, *p)), WaitMode::Write),
            None
        );
    }
}
