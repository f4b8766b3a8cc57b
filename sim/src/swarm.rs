//! Swarm testing (Groce et al., ISSTA 2012): besides its schedule, each
//! seed draws which fault kinds are switched on and at what rate, so runs
//! with rare combinations (power loss but no crashes, one fault kind at a
//! high rate) are explored instead of always the configured mix.
//!
//! A fault kind is every number in `[faults]` between 0 and 1 (a per-step
//! probability), so kinds the model adds later are swarmed without a
//! change here. The configured rate is the kind's upper bound.
//!
//! Each seed also draws the WAL's geometry (issue 11), so outcomes that
//! depend on a segment boundary or on a removed segment are explored:
//! `wal_segment_size` is the configured size times ½, 1, 2 or 4 (never
//! below two WAL pages; `max_wal_size` and `min_wal_size` scale with it,
//! keeping their size in segments), and `wal_keep_size` is 0
//! (PostgreSQL's default: a standby or pg_rewind can find its segment
//! removed), as configured, or [`KEEP_MANY_SEGMENTS`] segments (enough
//! that a rewind cell's target keeps its WAL back to the last common
//! checkpoint). The draw
//! depends only on the seed and the kind's key, never on the thread or
//! the cell, and the swarmed settings are what reports and trace files
//! hold, so a replay needs nothing from here.

use crate::config;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::hash::Hasher;
use walsim_model::Settings;
use walsim_model::cluster::StableHasher;

/// Keeps swarm draws apart from the run's own draws for the same seed.
const DOMAIN: u64 = 0x5357_4152_4d00_0001; // "SWARM", v1

/// Draw levels: below `OFF_BELOW` the kind is off (so each kind is on for
/// half the seeds); above, the rate is the bound divided by 8, 4, 2 or 1.
const LEVELS: u64 = 8;
const OFF_BELOW: u64 = 4;

/// The largest `wal_keep_size` a seed draws, in segments.
pub const KEEP_MANY_SEGMENTS: u64 = 64;

/// The fault kinds of one configuration and their bounds.
#[derive(Clone, Debug)]
pub struct SwarmSpace {
    table: toml::Table,
    kinds: Vec<(String, f64)>,
    /// The settings the space was made from (the fast path of
    /// [`SwarmSpace::settings`]).
    base: Settings,
}

/// One seed's draw.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Swarm {
    /// Per fault kind, 0 (off) or 1..=4 (bound / 8, 4, 2, 1).
    pub faults: Vec<u8>,
    /// `wal_segment_size`: 0..=3 for the configured size × ½, 1, 2, 4.
    pub segment: u8,
    /// `wal_keep_size`: 0 (none), 1 (as configured), 2 (KEEP_MANY_SEGMENTS).
    pub keep: u8,
}

/// A draw from `seed`'s stream for `key`, below `bound`.
fn draw_for(seed: u64, key: &str, bound: u64) -> u64 {
    let mut h = StableHasher::default();
    h.write(key.as_bytes());
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ DOMAIN);
    rng.set_stream(h.finish());
    rng.next_u64() % bound
}

impl SwarmSpace {
    pub fn of(settings: &Settings) -> SwarmSpace {
        let table = config::to_table(settings);
        let kinds = table
            .get("faults")
            .and_then(toml::Value::as_table)
            .map(|t| {
                t.iter()
                    .filter_map(|(k, v)| v.as_float().map(|p| (format!("faults.{k}"), p)))
                    .filter(|(_, p)| (0.0..=1.0).contains(p))
                    .collect()
            })
            .unwrap_or_default();
        SwarmSpace { table, kinds, base: settings.clone() }
    }

    /// The fault kinds' keys and configured bounds.
    pub fn kinds(&self) -> &[(String, f64)] {
        &self.kinds
    }

    /// What `seed` draws.
    pub fn draw(&self, seed: u64) -> Swarm {
        Swarm {
            faults: self
                .kinds
                .iter()
                .map(|(key, _)| {
                    let level = draw_for(seed, key, LEVELS);
                    if level < OFF_BELOW { 0 } else { (level - OFF_BELOW + 1) as u8 }
                })
                .collect(),
            segment: draw_for(seed, "wal_segment_size", 4) as u8,
            keep: draw_for(seed, "wal_keep_size", 3) as u8,
        }
    }

    /// Sets the drawn WAL geometry on `s` (a swarmed copy of the base).
    fn set_geometry(&self, s: &mut Settings, swarm: &Swarm) {
        let base = &self.base;
        let seg = base.wal_segment_size.0;
        let drawn = match swarm.segment {
            0 => seg / 2,
            n => seg << (n - 1),
        };
        if drawn >= 2 * base.wal_block_size.0 && drawn <= 1 << 30 {
            let scale = |x: u64| if drawn >= seg { x * (drawn / seg) } else { x / (seg / drawn) };
            s.wal_segment_size.0 = drawn;
            s.max_wal_size.0.0 = scale(base.max_wal_size.0.0).max(drawn);
            s.min_wal_size.0.0 = scale(base.min_wal_size.0.0);
        }
        s.wal_keep_size.0.0 = match swarm.keep {
            0 => 0,
            1 => base.wal_keep_size.0.0,
            _ => KEEP_MANY_SEGMENTS * s.wal_segment_size.0,
        };
    }

    /// The rate of each kind under `swarm`.
    pub fn rates(&self, swarm: &Swarm) -> BTreeMap<String, f64> {
        self.kinds
            .iter()
            .zip(&swarm.faults)
            .map(|((key, bound), &level)| {
                let rate = if level == 0 { 0.0 } else { bound / f64::from(1u32 << (4 - level)) };
                (key.clone(), rate)
            })
            .collect()
    }

    /// The settings with the swarmed rates. `None` if they fail validation
    /// (a rule the model may add about fault combinations); the caller then
    /// runs the configured settings.
    pub fn settings(&self, swarm: &Swarm) -> Option<Settings> {
        // Fast path (a sweep calls this once per run; the TOML round trip
        // was 5 % of `walsim explore`): set the known rates on a copy of
        // the settings and validate. The same result as the round trip
        // (the table holds the same f64); a kind this does not know takes
        // the generic path.
        let mut s = self.base.clone();
        let mut known = true;
        for (key, rate) in self.rates(swarm) {
            let field = match key.as_str() {
                "faults.process_crash" => &mut s.faults.process_crash,
                "faults.power_loss" => &mut s.faults.power_loss,
                "faults.disconnect" => &mut s.faults.disconnect,
                "faults.partition" => &mut s.faults.partition,
                "faults.archive_command" => &mut s.faults.archive_command,
                _ => {
                    known = false;
                    break;
                }
            };
            *field = rate;
        }
        if known {
            self.set_geometry(&mut s, swarm);
            return s.validate().is_ok().then_some(s);
        }
        self.settings_via_table(swarm)
    }

    /// [`SwarmSpace::settings`] through the TOML table (any `[faults]` key).
    pub fn settings_via_table(&self, swarm: &Swarm) -> Option<Settings> {
        let mut table = self.table.clone();
        for (key, rate) in self.rates(swarm) {
            config::set_dotted(&mut table, &key, toml::Value::Float(rate)).ok()?;
        }
        let mut s = config::settings_from_table(table, None, &[]).ok()?;
        self.set_geometry(&mut s, swarm);
        s.validate().is_ok().then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn draws_depend_on_the_seed_only_and_stay_within_bounds() {
        let s = config::load(None, &["faults.process_crash=0.01".into()]).unwrap();
        let space = SwarmSpace::of(&s);
        let keys: Vec<&str> = space.kinds().iter().map(|(k, _)| k.as_str()).collect();
        // Every rate of `[faults]`; `archive_command`'s bound is 0 by default,
        // so it always draws 0 there.
        assert_eq!(
            keys,
            [
                "faults.archive_command",
                "faults.disconnect",
                "faults.partition",
                "faults.power_loss",
                "faults.process_crash"
            ]
        );
        let other = SwarmSpace::of(&config::load(None, &["synchronous_commit=local".into()]).unwrap());
        let mut seen_off_on = [false; 2];
        for seed in 0..64 {
            let w = space.draw(seed);
            assert_eq!(w, other.draw(seed), "the same seed draws the same swarm in every cell");
            let swarmed = space.settings(&w).unwrap();
            assert!(swarmed.faults.process_crash <= 0.01 && swarmed.faults.power_loss <= 0.001);
            seen_off_on[usize::from(swarmed.faults.process_crash > 0.0)] = true;
            assert_eq!(space.rates(&w)["faults.process_crash"], swarmed.faults.process_crash);
        }
        assert_eq!(seen_off_on, [true, true]);
        // The WAL geometry: segments of 2..16 kB around the default 4 kB,
        // max_wal_size keeping its two segments, wal_keep_size from three.
        let base = Settings::default();
        let (mut segments, mut keeps) = (BTreeSet::new(), BTreeSet::new());
        for seed in 0..64 {
            let s = space.settings(&space.draw(seed)).unwrap();
            assert_eq!(
                s.max_wal_size.0.0 * base.wal_segment_size.0,
                base.max_wal_size.0.0 * s.wal_segment_size.0
            );
            segments.insert(s.wal_segment_size.0);
            let keep = s.wal_keep_size.0.0;
            assert!([0, base.wal_keep_size.0.0, KEEP_MANY_SEGMENTS * s.wal_segment_size.0].contains(&keep));
            keeps.insert(keep.min(1).max(u64::from(keep == KEEP_MANY_SEGMENTS * s.wal_segment_size.0) * 2));
        }
        let wanted_segments: BTreeSet<u64> = [2, 4, 8, 16].iter().map(|k| k << 10).collect();
        assert_eq!(segments, wanted_segments);
        assert_eq!(keeps, [0, 1, 2].into(), "none, as configured and many segments are all drawn");
        assert_ne!((0..16).map(|s| space.draw(s)).collect::<Vec<_>>(), vec![space.draw(0); 16]);
    }

    #[test]
    fn the_fast_path_gives_the_settings_of_the_toml_round_trip() {
        for set in [
            vec![],
            vec!["faults.process_crash=0.01".to_string(), "cluster.standbys=2".to_string()],
            vec!["faults.archive_command=0.01".to_string()],
        ] {
            let space = SwarmSpace::of(&config::load(None, &set).unwrap());
            for seed in 0..200 {
                let w = space.draw(seed);
                let (fast, slow) = (space.settings(&w), space.settings_via_table(&w));
                assert!(fast.is_some());
                assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "seed {seed}");
            }
        }
    }
}
