//! Values several commands take on the command line: seed ranges
//! (`A..B`), shards (`K/N`) and matrix axes (`KEY=v1,v2`). Each parses from
//! text with a one-line error, so a bad value is exit 2, never a panic.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Seeds `start..end` (`end` excluded).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl SeedRange {
    /// Seeds `1..=n`, what `--count N` means.
    pub fn first(n: u64) -> Result<SeedRange, String> {
        if n == 0 {
            return Err("--count must be at least 1".into());
        }
        Ok(SeedRange { start: 1, end: n.checked_add(1).ok_or("--count is too large")? })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
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
        let (start, last) = (num(a)?, num(b)?);
        let end = if inclusive {
            last.checked_add(1).ok_or_else(|| format!("seed range {s}: the end is too large"))?
        } else {
            last
        };
        if end <= start {
            return Err(format!("seed range {s} is empty: the start must be below the end"));
        }
        Ok(SeedRange { start, end })
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
        assert_eq!("1..5".parse::<SeedRange>(), Ok(SeedRange { start: 1, end: 5 }));
        assert_eq!("1..=5".parse::<SeedRange>(), Ok(SeedRange { start: 1, end: 6 }));
        for bad in ["5..3", "3..3", "x..4", "4", "1..=18446744073709551615", "-1..3"] {
            let e = bad.parse::<SeedRange>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(SeedRange::first(3), Ok(SeedRange { start: 1, end: 4 }));
        assert!(SeedRange::first(0).is_err());
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
        assert_eq!(Shard { index: 5, count: 5 }.len(SeedRange { start: 0, end: 3 }), 0);
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
