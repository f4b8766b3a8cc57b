//! `faults.crash_images`: a power loss picks one of the durable images the
//! fsyncs issued allow, instead of always losing every unsynced write.

mod common;
use common::{run, settings};
use std::collections::BTreeSet;
use walsim_model::{Cluster, CrashKind, Event};

/// A cluster driven until its primary has at least 3 unsynced data pages.
fn with_unsynced(sets: &[&str]) -> Cluster {
    let s = settings(sets);
    let mut c = Cluster::new(s, false);
    let mut evs = Vec::new();
    for i in 0..5_000u64 {
        if c.nodes[0].data.unsynced().len() >= 3 && c.nodes[0].wal.write_lsn() > c.nodes[0].wal.flush_lsn() {
            return c;
        }
        c.enabled(&mut evs);
        evs.retain(|e| !matches!(e, Event::Checkpointer { .. } | Event::Operator { .. }));
        let ev = evs[(i as usize * 5) % evs.len()];
        c.apply(ev, i.wrapping_mul(0x9E37_79B9)).unwrap();
    }
    panic!("no state with unsynced pages and unflushed WAL");
}

#[test]
fn a_power_loss_has_many_images_and_image_0_is_the_single_one() {
    let c = with_unsynced(&[
        "faults.crash_images=1000000",
        "operator=[]",
        "cluster.standbys=0",
        "synchronous_standby_names=",
    ]);
    let power = Event::Crash { node: 0, kind: CrashKind::PowerLoss };
    assert!(c.takes_argument(&power));
    let mut images = BTreeSet::new();
    for arg in 0..64 {
        let mut d = c.clone();
        d.apply(power, arg).unwrap();
        images.insert(d.fingerprint());
    }
    assert!(images.len() > 8, "{} distinct images", images.len());
    // Image 0 is what the default (crash_images = 0) power loss leaves.
    let mut single = with_unsynced(&["operator=[]", "cluster.standbys=0", "synchronous_standby_names="]);
    assert!(!single.takes_argument(&power));
    single.apply(power, 0).unwrap();
    let mut zero = c.clone();
    zero.apply(power, 0).unwrap();
    assert_eq!(zero.nodes[0].data, single.nodes[0].data);
    assert_eq!(zero.nodes[0].wal.records().len(), single.nodes[0].wal.records().len());
}

#[test]
fn with_every_rule_on_no_crash_image_breaks_an_invariant() {
    let s = settings(&[
        "faults.crash_images=64",
        "faults.power_loss=0.02",
        "faults.process_crash=0.01",
        "scheduler.steps=600",
    ]);
    for seed in 1..=40 {
        let r = run(&s, seed);
        assert!(r.violation.is_none(), "seed {seed}: {}", r.detail);
    }
}

#[test]
fn the_default_is_one_image_and_draws_nothing_more() {
    // crash_images = 0 keeps every run as it was (tests/trace_hashes.rs pins
    // the hashes); with images, a power loss draws its image.
    let base = settings(&["faults.power_loss=0.05", "scheduler.steps=300"]);
    let imgs = settings(&["faults.power_loss=0.05", "scheduler.steps=300", "faults.crash_images=8"]);
    let differ = (1..=10).filter(|&seed| run(&base, seed).trace_hash != run(&imgs, seed).trace_hash).count();
    assert!(differ > 0, "power losses happened and drew an image");
}
