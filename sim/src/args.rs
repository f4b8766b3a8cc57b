//! Values several commands take on the command line: seed ranges
//! (`A..B`), shards (`K/N`) and matrix axes (`KEY=v1,v2`). Each parses from
//! text with a one-line error, so a bad value is exit 2, never a panic.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Seeds `start..=last` (both included, so seed 2^64−1 is reachable).
/// In JSON it is `{"start": A, "end": B}` with `B` excluded, as written
/// on the command line (`B` may be 2^64).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(into = "SeedRangeJson", try_from = "SeedRangeJson")]
pub struct SeedRange {
    pub start: u64,
    pub last: u64,
}

/// Upper bound on events in a run's main phase (`--steps`,
/// `scheduler.steps`): 10^9 events take about a quarter of an hour in a
/// release build; a longer run is better spent on more seeds.
pub const MAX_STEPS: u64 = 1_000_000_000;

/// Upper bound on `explore --jobs`: runs are CPU-bound, so threads beyond
/// the cores only cost memory (`--jobs 100000` once made 15,000 threads).
pub const MAX_JOBS: usize = 1024;

/// Above this many seeds per cell, `explore` warns on stderr that the sweep
/// will not finish in any useful time (the default is 5,000).
pub const HUGE_SEED_RANGE: u64 = 100_000_000;

impl SeedRange {
    /// Seeds `1..=n`, what `--count N` means.
    pub fn first(n: u64) -> Result<SeedRange, String> {
        if n == 0 {
            return Err("--count must be at least 1".into());
        }
        Ok(SeedRange { start: 1, last: n })
    }

    /// How many seeds: at most 2^64−1 (the parser refuses `0..=2^64−1`).
    pub fn len(&self) -> u64 {
        self.last - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// A warning for a range too large to finish, for stderr.
    /// The estimate takes half a millisecond of one core per run
    /// (docs/PERFORMANCE.md: 0.4–0.8 ms with the default settings).
    pub fn size_warning(&self) -> Option<String> {
        (self.len() > HUGE_SEED_RANGE).then(|| {
            let core_seconds = self.len() as f64 * 0.0005;
            format!(
                "warning: --seeds {self} is {} seeds per cell, about {} of one core per cell \
                 (0.5 ms a run); Ctrl-C stops the sweep and prints what ran",
                self.len(),
                duration_text(core_seconds)
            )
        })
    }
}

/// `90000.0` → `25 hours`, for estimates.
fn duration_text(secs: f64) -> String {
    const HOUR: f64 = 3600.0;
    const DAY: f64 = 24.0 * HOUR;
    const YEAR: f64 = 365.25 * DAY;
    match secs {
        s if s >= 10.0 * YEAR => format!("{:.1e} years", s / YEAR),
        s if s >= YEAR => format!("{:.0} years", s / YEAR),
        s if s >= 2.0 * DAY => format!("{:.0} days", s / DAY),
        s => format!("{:.0} hours", s / HOUR),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRangeJson {
    start: u64,
    end: u128,
}

impl From<SeedRange> for SeedRangeJson {
    fn from(r: SeedRange) -> SeedRangeJson {
        SeedRangeJson { start: r.start, end: u128::from(r.last) + 1 }
    }
}

impl TryFrom<SeedRangeJson> for SeedRange {
    type Error = String;
    fn try_from(j: SeedRangeJson) -> Result<SeedRange, String> {
        let last = j.end.checked_sub(1).and_then(|l| u64::try_from(l).ok());
        match last {
            Some(last) if last >= j.start && !(j.start == 0 && last == u64::MAX) => {
                Ok(SeedRange { start: j.start, last })
            }
            _ => Err(format!("bad seed range {}..{}", j.start, j.end)),
        }
    }
}

impl fmt::Display for SeedRange {
    /// `A..B` (B excluded) as users write it, or `A..=B` when B would be 2^64.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last.checked_add(1) {
            Some(end) => write!(f, "{}..{end}", self.start),
            None => write!(f, "{}..={}", self.start, self.last),
        }
    }
}

impl FromStr for SeedRange {
    type Err = String;

    /// `A..B` (B excluded, as in Rust) or `A..=B`.
    fn from_str(s: &str) -> Result<SeedRange, String> {
        let bad = || format!("seed range {s}: expected A..B (B excluded) or A..=B, e.g. 1..1001");
        let (a, b, inclusive) = match s.split_once("..") {
            Some((a, b)) => match b.strip_prefix('=') {
                Some(b) => (a, b, true),
                None => (a, b, false),
            },
            None => return Err(bad()),
        };
        let num = |t: &str| t.trim().parse::<u64>().map_err(|_| bad());
        let (start, b) = (num(a)?, num(b)?);
        let last = if inclusive { Some(b) } else { b.checked_sub(1) };
        match last {
            Some(last) if last >= start => {
                if start == 0 && last == u64::MAX {
                    return Err(format!(
                        "seed range {s} holds 2^64 seeds, one more than walsim can count; \
                         start at 1 (1..={last})"
                    ));
                }
                Ok(SeedRange { start, last })
            }
            _ => Err(format!("seed range {s} is empty: the start must be below the end")),
        }
    }
}

/// Shard `index` of `count` (1-based): the seeds whose position in the
/// range is `index - 1` modulo `count`. Interleaving keeps shards equally
/// costly, and every seed is in exactly one shard.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole range as one shard.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// How many seeds of `range` this shard holds.
    pub fn len(&self, range: SeedRange) -> u64 {
        let offset = self.index - 1;
        if range.len() <= offset { 0 } else { (range.len() - offset).div_ceil(self.count) }
    }

    /// The `i`-th seed of this shard (`i < self.len(range)`).
    pub fn nth(&self, range: SeedRange, i: u64) -> u64 {
        range.start + (self.index - 1) + i * self.count
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("shard {s}: expected K/N with 1 ≤ K ≤ N, e.g. 3/8");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("shard {s}: N must be at least 1"));
        }
        if index == 0 {
            return Err(format!("shard {s}: K counts from 1 (1 ≤ K ≤ N)"));
        }
        if index > count {
            return Err(format!("shard {s}: K is larger than N"));
        }
        Ok(Shard { index, count })
    }
}

/// One matrix axis: a dotted config key and the values it takes, as the
/// text after `--set KEY=`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

impl Axis {
    /// The column title: the last part of the key (`failover.failback` →
    /// `failback`).
    pub fn name(&self) -> &str {
        self.key.rsplit('.').next().unwrap_or(&self.key)
    }
}

impl FromStr for Axis {
    type Err = String;

    /// `KEY=v1,v2,...`; commas inside `[...]` or quotes belong to a value.
    fn from_str(s: &str) -> Result<Axis, String> {
        let (key, rest) = match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => (k.trim(), v),
            _ => {
                return Err(format!("--matrix {s}: expected KEY=v1,v2,... e.g. synchronous_commit=local,on"));
            }
        };
        let values = split_top_level(rest);
        if values.iter().any(String::is_empty) {
            return Err(format!("--matrix {s}: empty value"));
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(format!("--matrix {s}: {v} is listed twice"));
            }
        }
        Ok(Axis { key: key.to_string(), values })
    }
}

/// Splits on commas outside brackets and quotes.
fn split_top_level(s: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut depth, mut quote) = (0i32, None);
    for c in s.chars() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges() {
        assert_eq!("1..5".parse::<SeedRange>(), Ok(SeedRange { start: 1, last: 4 }));
        assert_eq!("1..=5".parse::<SeedRange>(), Ok(SeedRange { start: 1, last: 5 }));
        for bad in ["5..3", "3..3", "x..4", "4", "0..=18446744073709551615", "-1..3", "0..0"] {
            let e = bad.parse::<SeedRange>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(SeedRange::first(3), Ok(SeedRange { start: 1, last: 3 }));
        assert!(SeedRange::first(0).is_err());
        // Seed 2^64−1 is reachable, and the range prints and round-trips.
        let max: SeedRange = "18446744073709551615..=18446744073709551615".parse().unwrap();
        assert_eq!((max.start, max.last, max.len()), (u64::MAX, u64::MAX, 1));
        assert_eq!(max.to_string(), "18446744073709551615..=18446744073709551615");
        let json = serde_json::to_string(&max).unwrap();
        assert_eq!(json, r#"{"start":18446744073709551615,"end":18446744073709551616}"#);
        assert_eq!(serde_json::from_str::<SeedRange>(&json).unwrap(), max);
        let r: SeedRange = "1..=18446744073709551615".parse().unwrap();
        assert_eq!(r.len(), u64::MAX);
        assert!(r.size_warning().unwrap().contains("18446744073709551615 seeds per cell"));
        assert!(
            r.size_warning().unwrap().contains("about 2.9e8 years of one core per cell"),
            "{:?}",
            r.size_warning()
        );
        let big: SeedRange = "1..=200000000".parse().unwrap();
        assert!(
            big.size_warning().unwrap().contains("about 28 hours of one core"),
            "{:?}",
            big.size_warning()
        );
        assert!("1..5001".parse::<SeedRange>().unwrap().size_warning().is_none());
        assert_eq!("1..5".parse::<SeedRange>().unwrap().to_string(), "1..5");
        assert!(serde_json::from_str::<SeedRange>(r#"{"start":5,"end":5}"#).is_err());
    }

    #[test]
    fn shards_partition_the_seeds() {
        for bad in ["0/4", "3/2", "1/0", "a/b", "2"] {
            assert!(bad.parse::<Shard>().unwrap_err().contains(bad));
        }
        let range: SeedRange = "10..27".parse().unwrap();
        let mut all: Vec<u64> = Vec::new();
        for k in 1..=4 {
            let sh: Shard = format!("{k}/4").parse().unwrap();
            all.extend((0..sh.len(range)).map(|i| sh.nth(range, i)));
        }
        all.sort_unstable();
        assert_eq!(all, (10..27).collect::<Vec<_>>());
        assert_eq!(Shard { index: 5, count: 5 }.len(SeedRange { start: 0, last: 2 }), 0);
    }

    #[test]
    fn axes() {
        let a: Axis = "failover.failback=naive, rewind".parse().unwrap();
        assert_eq!((a.name(), a.values.len()), ("failback", 2));
        let a: Axis = r#"design.data_flush_covers=["data"],["data","clog"]"#.parse().unwrap();
        assert_eq!(a.values, vec![r#"["data"]"#, r#"["data","clog"]"#]);
        assert!("x".parse::<Axis>().is_err());
        assert!("k=a,,b".parse::<Axis>().is_err());
        assert!("k=a,a".parse::<Axis>().is_err());
    }
}
