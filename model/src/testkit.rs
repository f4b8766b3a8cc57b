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
