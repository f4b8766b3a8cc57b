//! `faults.crash_images`: a power loss picks one of the durable images the
//! fsyncs issued allow, instead of always losing every unsynced write.

mod common;
use common::{run, settings};
use std::collections::BTreeSet;
use walsim_model::ids::NodeId;
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
    let power = Event::Crash { node: NodeId(0), kind: CrashKind::PowerLoss };
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

/// Sampled images (more images than `faults.crash_images`) still include
/// image 0, the single image, so the crash-image mode's images contain the
/// default's.
#[test]
fn sampled_images_include_the_single_one() {
    let c = with_unsynced(&[
        "faults.crash_images=2",
        "operator=[]",
        "cluster.standbys=0",
        "synchronous_standby_names=",
    ]);
    assert!(c.nodes[0].crash_image_count(u32::MAX) > 2, "sampled, not enumerated");
    let power = Event::Crash { node: NodeId(0), kind: CrashKind::PowerLoss };
    let mut single = with_unsynced(&["operator=[]", "cluster.standbys=0", "synchronous_standby_names="]);
    single.apply(power, 0).unwrap();
    let mut zero = c.clone();
    zero.apply(power, 0).unwrap();
    assert_eq!(zero.nodes[0].data, single.nodes[0].data);
    assert_eq!(zero.nodes[0].wal.records().len(), single.nodes[0].wal.records().len());
}

/// `rules.fsync_control_file=false`: pg_control's write stays in the OS
/// cache. The single image loses it (pg_control goes back to the last one
/// on disk); a crash image may keep it or lose it, one more page.
/// A cluster driven until a checkpoint's pg_control update is unsynced.
fn with_unsynced_control(sets: &[&str]) -> Cluster {
    let mut c = Cluster::new(settings(sets), false);
    let mut evs = Vec::new();
    let mut i = 0u64;
    while c.nodes[0].control_unsynced.is_none_or(|d| d.checkpoint == c.nodes[0].control.checkpoint) {
        c.enabled(&mut evs);
        let ckpt = evs
            .iter()
            .copied()
            .find(|e| matches!(e, Event::Checkpointer { .. } | Event::RequestCheckpoint { .. }));
        let ev = if i.is_multiple_of(3) { ckpt.unwrap_or(evs[0]) } else { evs[(i as usize * 7) % evs.len()] };
        c.apply(ev, i.wrapping_mul(0x9E37_79B9)).unwrap();
        i += 1;
        assert!(i < 20_000, "no checkpoint wrote pg_control");
    }
    c
}

#[test]
fn an_unsynced_pg_control_update_is_lost_or_kept_by_a_power_loss() {
    let sets =
        ["rules.fsync_control_file=false", "operator=[]", "cluster.standbys=0", "synchronous_standby_names="];
    let c = with_unsynced_control(&sets);
    let (os, disk) = (c.nodes[0].control, c.nodes[0].control_unsynced.unwrap());
    assert_ne!(os.checkpoint, disk.checkpoint);
    let power = Event::Crash { node: NodeId(0), kind: CrashKind::PowerLoss };
    let mut single = c.clone();
    single.apply(power, 0).unwrap();
    assert_eq!(single.nodes[0].control, disk, "the single image loses the update");
    assert!(single.nodes[0].control_unsynced.is_none());
    // With images, some keep it and some lose it (image 0 loses it).
    let imgs = with_unsynced_control(&[&sets[..], &["faults.crash_images=1048576"]].concat());
    assert_eq!(imgs.nodes[0].control, os);
    let kept: BTreeSet<bool> = (0..64)
        .map(|arg| {
            let mut d = imgs.clone();
            d.apply(power, arg).unwrap();
            d.nodes[0].control.checkpoint == os.checkpoint
        })
        .collect();
    assert_eq!(kept, BTreeSet::from([false, true]));
    // With the rule on, pg_control is never left unsynced.
    let on = settings(&[
        "operator=[]",
        "cluster.standbys=0",
        "synchronous_standby_names=",
        "faults.power_loss=0.02",
    ]);
    let mut c = Cluster::new(on, false);
    let mut evs = Vec::new();
    for i in 0..3_000u64 {
        c.enabled(&mut evs);
        if evs.is_empty() {
            break;
        }
        let _ = c.apply(evs[(i as usize * 7) % evs.len()], i);
        assert!(c.nodes.iter().all(|n| n.control_unsynced.is_none()));
    }
}

/// A missing flush that only a partial image shows: a reader sets a hint
/// bit for an asynchronous commit whose record is not yet flushed
/// (`rules.hint_bits_wait_for_commit_flush=false`), and the page is
/// written. With power losses only, the single image loses that page
/// along with the commit record; a crash image where the page reached the
/// disk and the record did not shows the committed-looking row without its
/// commit (recovery_is_exact). Over the same 60 seeds the crash images
/// find it many times more often.
#[test]
fn crash_images_find_hint_bits_set_before_the_commit_flush() {
    // The rule's home configuration, as `walsim bench-search --homes` runs it.
    let home = walsim::bench::home_of("hint_bits_wait_for_commit_flush").expect("a home");
    let mut base = vec!["rules.hint_bits_wait_for_commit_flush=false"];
    base.extend_from_slice(home.sets);
    let count = |extra: &str| {
        let mut sets = base.to_vec();
        sets.push(extra);
        let s = settings(&sets);
        (1..=60)
            .filter(|&seed| {
                run(&s, seed).violation.is_some_and(|v| v.invariant.name() == "recovery_is_exact")
            })
            .count()
    };
    let (single, images) = (count("faults.crash_images=0"), count("faults.crash_images=64"));
    assert!(images >= 5 * single.max(1), "single image {single}, crash images {images}");
}
