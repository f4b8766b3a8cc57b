//! Helpers for the model's unit tests: clusters driven to a known state
//! by a fixed rotation of events (no randomness, no scheduler).

use crate::cluster::Cluster;
use crate::settings::Settings;

/// A cluster of a primary and `standbys` standbys (no operator script)
/// that took `steps` events in a fixed rotation, then quiesced: every
/// standby streams the primary's timeline and has replayed everything.
pub(crate) fn quiesced(standbys: u8, steps: u64) -> Cluster {
    quiesced_with(standbys, steps, |_| {})
}

/// [`quiesced`] with settings changed by `f` first.
pub(crate) fn quiesced_with(standbys: u8, steps: u64, f: impl FnOnce(&mut Settings)) -> Cluster {
    let mut s = Settings { operator: Vec::new(), ..Settings::default() };
    s.cluster.standbys = standbys;
    if standbys == 0 {
        s.synchronous_standby_names = String::new();
    }
    f(&mut s);
    let mut c = Cluster::new(s, false);
    let mut evs = Vec::new();
    for i in 0..steps {
        c.enabled(&mut evs);
        assert!(!evs.is_empty(), "something can happen");
        let ev = evs[(i as usize * 7) % evs.len()];
        c.apply(ev, i).expect("no violation while running");
    }
    settle(&mut c);
    c
}

/// Quiesces `c` with the first enabled event each step. The model's own
/// unit tests quiesce within 300 steps; the bound of 10,000 leaves a wide
/// margin and makes a mutant that never quiesces fail in seconds (caught),
/// rather than run into cargo-mutants' timeout.
pub(crate) fn settle(c: &mut Cluster) {
    let mut evs = Vec::new();
    c.set_quiesce(true);
    for i in 0..10_000 {
        c.enabled(&mut evs);
        let Some(&ev) = evs.first() else { break };
        c.apply(ev, i).expect("no violation while quiescing");
    }
    assert!(c.is_idle(), "quiesced: {:?}", c.waits());
}

/// The defaults before issue 11 (PostgreSQL's own WAL geometry: 8 kB WAL
/// pages, 1 MB segments, `max_wal_size`/`min_wal_size` 2 MB, no
/// `wal_keep_size`, 100,000 keys): for unit tests whose exact positions
/// and sizes were written against it.
pub(crate) fn real_geometry() -> Settings {
    use crate::settings::{Bytes, WalSize};
    let mut s = Settings {
        wal_block_size: Bytes(8 << 10),
        wal_segment_size: Bytes(1 << 20),
        max_wal_size: WalSize(Bytes(2 << 20)),
        min_wal_size: WalSize(Bytes(2 << 20)),
        wal_keep_size: WalSize(Bytes(0)),
        ..Settings::default()
    };
    s.workload.key_space = 100_000;
    s
}

/// How a [`walk`] ended, as `walsim run` would report it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum End {
    /// Quiesced, every invariant and the final checks held, nothing refused.
    Ok,
    /// An invariant broke (during a step or in the final checks).
    Violation(crate::invariants::Violation),
    /// A rejoin was refused by a PostgreSQL check and is still refused at
    /// the end (whether or not the cluster quiesced).
    Refused(crate::event::RefusalKind),
    /// Could not quiesce.
    Stuck,
}

/// One walk: its ending, the marks it reached, every refusal of the run,
/// what still waits at the end, and (if asked) its log lines as `node process LEVEL: message`.
pub(crate) struct Walk {
    pub(crate) end: End,
    pub(crate) marks: crate::marks::Marks,
    pub(crate) refusals: Vec<crate::event::RefusalKind>,
    pub(crate) waits: Vec<String>,
    pub(crate) lines: Vec<String>,
}

/// SplitMix64: a small seeded generator for test walks (the simulator's own
/// ChaCha source lives in `sim`; the model crate depends on nothing).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// A seeded run of the whole model, as `walsim run` takes one (same
/// phases, same weights, same fault dice semantics; a different generator,
/// so not the same runs): the main phase of `scheduler.steps` steps (longer
/// while the operator script is unfinished), faults at their configured
/// rates; then the quiesce phase without faults or new transactions, and
/// the final checks once idle. The enabled set comes from
/// `Cluster::enabled_cached`, as in the simulator, so debug builds check
/// the cache against the from-scratch set on every step. The model crate's oracle for behaviour that
/// only a whole run shows: its unit tests drive it without the simulator.
pub(crate) fn walk(settings: &Settings, seed: u64, log: bool) -> Walk {
    use crate::event::FaultKind;
    let s = settings;
    let mut rng = SplitMix(seed);
    let mut c = Cluster::new(s.clone(), log);
    let mut evs = Vec::new();
    let mut faults = Vec::new();
    let mut lines = Vec::new();
    let rates = [
        (s.faults.power_loss, FaultKind::PowerLoss),
        (s.faults.process_crash, FaultKind::ProcessCrash),
        (s.faults.disconnect, FaultKind::Disconnect),
        (s.faults.partition, FaultKind::Partition),
        (s.faults.archive_command, FaultKind::ArchiveCommand),
    ];
    let (steps, quiesce) = (s.scheduler.steps, s.scheduler.quiesce_steps);
    let mut main = 0u64;
    let mut quiescing = false;
    let mut taken = 0u64;
    let end = loop {
        if !(quiescing || main < steps || !c.script_done() && main < steps + quiesce) {
            quiescing = true;
            c.set_quiesce(true);
        }
        if quiescing && taken >= quiesce {
            break End::Stuck;
        }
        c.enabled_cached(&mut evs);
        if evs.is_empty() && !quiescing && c.is_idle() {
            quiescing = true;
            c.set_quiesce(true);
            continue;
        }
        if evs.is_empty() {
            if !quiescing || !c.is_idle() {
                break End::Stuck;
            }
            if let Err(v) = c.check_final() {
                break End::Violation(v);
            }
            break End::Ok;
        }
        let mut ev = None;
        if !quiescing {
            let x = rng.next() as f64 / u64::MAX as f64;
            let mut from = 1.0;
            for (p, kind) in rates {
                from -= p;
                if p > 0.0 && x >= from {
                    c.enabled_faults(kind, &mut faults);
                    if !faults.is_empty() {
                        ev = Some(faults[rng.below(faults.len() as u64) as usize]);
                    }
                    break;
                }
            }
        }
        let ev = ev.unwrap_or_else(|| {
            let w = |e: &crate::event::Event| u64::from(e.kind().weight(&s.scheduler.weights));
            let total: u64 = evs.iter().map(w).sum();
            if total == 0 {
                return evs[rng.below(evs.len() as u64) as usize];
            }
            let mut r = rng.below(total);
            *evs.iter()
                .find(|e| {
                    let hit = r < w(e);
                    r = r.saturating_sub(w(e));
                    hit
                })
                .expect("a weighted pick lands on an event")
        });
        if quiescing {
            taken += 1;
        } else {
            main += 1;
        }
        let arg = if c.takes_argument(&ev) { rng.next() } else { 0 };
        let res = c.apply(ev, arg);
        for l in c.log.drain() {
            lines.push(format!("{} {} {}: {}", l.node, l.process.backend_type(), l.level.name(), l.message));
        }
        if let Err(v) = res {
            break End::Violation(v);
        }
    };
    // As `walsim run` reports it: a refusal outranks quiescing or not.
    let end = match (end, c.open_refusals().first()) {
        (End::Violation(v), _) => End::Violation(v),
        (_, Some(r)) => End::Refused(r.kind),
        (end, None) => end,
    };
    let refusals = c.refusals.iter().map(|r| r.kind).collect();
    Walk { end, marks: c.marks(), refusals, waits: c.waits(), lines }
}

/// Settings from `--set`-style assignments (TOML dotted keys, e.g.
/// `rules.wal_before_data=false`) on top of the defaults, validated.
pub(crate) fn settings(sets: &[&str]) -> Settings {
    let s: Settings = toml::from_str(&sets.join("\n")).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
    s.validate().unwrap_or_else(|e| panic!("{sets:?}: {e}"));
    s
}

/// Runs `f` on node `i` of `c` with logging on and fresh effects (the
/// cluster's own log and effects are left alone). Returns what `f`
/// returned, the messages logged and the effects.
pub(crate) fn logged<R>(
    c: &mut Cluster,
    i: usize,
    f: impl FnOnce(&mut crate::node::Node, &mut crate::node::Ctx<'_>) -> R,
) -> (R, Vec<String>, crate::event::Effects) {
    let (mut log, mut fx) = (crate::log::Log::new(true), crate::event::Effects::default());
    let settings = c.settings().clone();
    let archive = c.archive.clone();
    let mut ctx = crate::node::Ctx {
        env: crate::node::Env { settings: &settings, archive: &archive },
        log: &mut log,
        fx: &mut fx,
    };
    let r = f(&mut c.nodes[i], &mut ctx);
    (r, log.drain().map(|l| l.message).collect(), fx)
}

/// Runs `f` on a node outside any cluster (an empty archive), with
/// logging on. Returns what `f` returned and the messages logged.
pub(crate) fn on_node<R>(
    settings: &Settings,
    n: &mut crate::node::Node,
    f: impl FnOnce(&mut crate::node::Node, &mut crate::node::Ctx<'_>) -> R,
) -> (R, Vec<String>) {
    let (mut log, mut fx) = (crate::log::Log::new(true), crate::event::Effects::default());
    let archive = crate::archive::Archive::default();
    let mut ctx = crate::node::Ctx {
        env: crate::node::Env { settings, archive: &archive },
        log: &mut log,
        fx: &mut fx,
    };
    let r = f(n, &mut ctx);
    (r, log.drain().map(|l| l.message).collect())
}

/// Runs `c`'s operator script to its end in the fixed rotation of
/// [`quiesced`], calling `after(c, event)` right after each event.
pub(crate) fn run_script_rotation(c: &mut Cluster, mut after: impl FnMut(&mut Cluster, crate::event::Event)) {
    let mut evs = Vec::new();
    let mut i = 0u64;
    while !c.script_done() {
        c.enabled(&mut evs);
        assert!(!evs.is_empty(), "stuck: {:?}", c.waits());
        let ev = evs[(i as usize * 7) % evs.len()];
        c.apply(ev, i).expect("no violation while the script runs");
        after(c, ev);
        i += 1;
        assert!(i < 100_000, "the script never finished: {:?}", c.waits());
    }
}
