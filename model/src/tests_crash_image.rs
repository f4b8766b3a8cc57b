//! Unit tests of `crash_image.rs`: the crash images a power loss chooses
//! among, and pg_control written without fsync.

use crate::ids::{BlockNumber, NodeId, Xid};
use crate::lsn::{Lsn, Tli};
use crate::node::Node;
use crate::settings::Settings;
use crate::wal::RecordBody;

/// Runs `f` on `n` with logging on; returns the messages.
fn logged(s: &Settings, n: &mut Node, f: impl FnOnce(&mut Node, &mut crate::node::Ctx<'_>)) -> Vec<String> {
    crate::testkit::on_node(s, n, f).1
}

/// A fresh node with everything durable, then three WAL records written
/// but not flushed and a fourth only inserted, data blocks 4 and 9
/// written (in that order) and one CLOG page written, none fsynced.
/// Returns the node, the flush position and the three written ends.
fn node_with_unsynced_writes(s: &Settings) -> (Node, Lsn, [Lsn; 3]) {
    let mut n = Node::initdb(NodeId(0), s);
    n.data.fsync();
    n.clog.file.fsync();
    let end = n.wal.insert(Tli(1), Xid(3), RecordBody::Commit).end;
    n.wal.flush_upto(end);
    let flush = n.wal.flush_lsn();
    assert_eq!(flush, end);
    assert_eq!(n.crash_image_count(1000), 1, "everything is durable: one image");
    let ends = [(); 3].map(|()| n.wal.insert(Tli(1), Xid(3), RecordBody::Commit).end);
    n.wal.write_upto(ends[2]);
    n.wal.insert(Tli(1), Xid(3), RecordBody::Commit);
    for b in [4, 9] {
        let mut page = n.data.read(BlockNumber(b)).clone();
        page.lsn = flush;
        n.data.write(BlockNumber(b), page);
    }
    n.clog.set(Xid(3), crate::clog::XidStatus::Committed, flush);
    n.clog.write_page(BlockNumber(0));
    assert_eq!((n.data.unsynced().len(), n.clog.file.unsynced().len()), (2, 1));
    (n, flush, ends)
}

/// The images: the WAL may end at the flush position or at any written
/// record's end (4 choices: a record only inserted is not in the OS
/// cache), and each of the 3 unsynced pages reached the disk or not:
/// 4 * 2^3 = 32. An unsynced pg_control update doubles that. The count
/// is capped by `faults.crash_images` (at least 1).
#[test]
fn the_images_are_wal_ends_times_subsets_of_unsynced_pages() {
    let s = crate::testkit::real_geometry();
    let (mut n, _, _) = node_with_unsynced_writes(&s);
    assert_eq!(n.crash_image_count(1000), 32);
    assert_eq!(n.crash_image_count(32), 32);
    assert_eq!(n.crash_image_count(10), 10);
    assert_eq!(n.crash_image_count(0), 1);
    n.control_unsynced = Some(n.control);
    assert_eq!(n.crash_image_count(1000), 64);
}

/// With at most `bound` images, image `i` is numbered directly: the WAL
/// end is `i % 4` (0: the flush position), the rest of the number's bits
/// pick the pages that reached the disk, data pages first, in write
/// order. Image 23 = 3 + 4 * 0b101: WAL to the third written end, the
/// first data page and the CLOG page.
#[test]
fn an_enumerated_image_is_its_number_in_wal_end_and_page_bits() {
    let s = crate::testkit::real_geometry();
    let (mut n, _, ends) = node_with_unsynced_writes(&s);
    let lines = logged(&s, &mut n, |n, ctx| n.reach_disk(32 + 23, 100, ctx));
    assert_eq!(
        lines,
        [format!(
            "crash image 23 of 32: 1 of 2 unsynced data pages and 1 of 1 CLOG pages reached the disk, WAL to {}",
            ends[2]
        )]
    );
    assert_eq!(n.wal.flush_lsn(), ends[2]);
    assert_eq!(n.data.unsynced(), [BlockNumber(9)], "block 4 reached the disk");
    assert_eq!(n.data.durable(BlockNumber(4)), n.data.read(BlockNumber(4)));
    assert!(n.clog.file.unsynced().is_empty());

    // Image 6 = 2 + 4 * 0b001: the second written end, block 4 only.
    let (mut n, _, ends) = node_with_unsynced_writes(&s);
    let lines = logged(&s, &mut n, |n, ctx| n.reach_disk(6, 32, ctx));
    assert_eq!(
        lines,
        [format!(
            "crash image 6 of 32: 1 of 2 unsynced data pages and 0 of 1 CLOG pages reached the disk, WAL to {}",
            ends[1]
        )]
    );
    assert_eq!(n.data.unsynced(), [BlockNumber(9)]);
    assert_eq!(n.clog.file.unsynced(), [BlockNumber(0)]);

    // With an unsynced pg_control update, the bit after the pages says
    // whether it reached the disk: image 33 = 1 + 4 * 0b1000.
    let (mut n, _, ends) = node_with_unsynced_writes(&s);
    n.control_unsynced = Some(n.control);
    let lines = logged(&s, &mut n, |n, ctx| n.reach_disk(33, 64, ctx));
    assert_eq!(
        lines,
        [format!(
            "crash image 33 of 64: 0 of 2 unsynced data pages and 0 of 1 CLOG pages reached the disk, pg_control's unsynced update too, WAL to {}",
            ends[0]
        )]
    );
    assert_eq!(n.control_unsynced, None, "the update is durable");
    let (mut n, flush, _) = node_with_unsynced_writes(&s);
    n.control_unsynced = Some(n.control);
    let lines = logged(&s, &mut n, |n, ctx| n.reach_disk(0, 64, ctx));
    assert_eq!(
        lines,
        [format!(
            "crash image 0 of 64: 0 of 2 unsynced data pages and 0 of 1 CLOG pages reached the disk, pg_control's unsynced update did not, WAL to {flush}"
        )]
    );
    assert!(n.control_unsynced.is_some());
}

/// More images than `bound`: image `i` is `i % bound`, image 0 is
/// "nothing reached the disk", any other the bits of
/// `mix(i ^ 0x696d_6167_6573)` ("images" in ASCII).
#[test]
fn a_sampled_image_is_a_hash_of_its_number_and_image_0_is_nothing() {
    let s = crate::testkit::real_geometry();
    let (mut n, flush, _) = node_with_unsynced_writes(&s);
    let lines = logged(&s, &mut n, |n, ctx| n.reach_disk(8, 4, ctx));
    assert_eq!(
        lines,
        [format!(
            "crash image 0 of 4: 0 of 2 unsynced data pages and 0 of 1 CLOG pages reached the disk, WAL to {flush}"
        )]
    );
    assert_eq!(n.wal.flush_lsn(), flush);
    assert_eq!(n.data.unsynced().len(), 2);

    let (mut n, flush, ends) = node_with_unsynced_writes(&s);
    let x = crate::client::mix(3 ^ 0x696d_6167_6573);
    let wal_ends = [flush, ends[0], ends[1], ends[2]];
    let (w, bits) = ((x % 4) as usize, x / 4);
    let lines = logged(&s, &mut n, |n, ctx| n.reach_disk(7, 4, ctx));
    let bit = |k: u32| (bits >> k) & 1 == 1;
    let data = u32::from(bit(0)) + u32::from(bit(1));
    assert_eq!(
        lines,
        [format!(
            "crash image 3 of 4: {data} of 2 unsynced data pages and {} of 1 CLOG pages reached the disk, WAL to {}",
            u32::from(bit(2)),
            wal_ends[w]
        )]
    );
    assert_eq!(n.wal.flush_lsn(), wal_ends[w]);
}

/// 64 unsynced pages: 2^60 images or more, always sampled. The pages'
/// bits come 48 from each word of a stream: the image's hash, then
/// `mix(word ^ k)` at bit k = 48. (Image 0 is not "nothing reached the
/// disk" here, against the doc comment of `reach_disk`: the second word
/// is `mix(0 ^ 48)`, so some of pages 48 to 63 reach the disk; reported,
/// not asserted.)
#[test]
fn with_sixty_or_more_unsynced_pages_images_are_sampled() {
    use crate::client::mix;
    let mut s = crate::testkit::real_geometry();
    s.cluster.rel_pages = 64;
    let fresh = || {
        let mut n = Node::initdb(NodeId(0), &s);
        n.data.fsync();
        n.clog.file.fsync();
        let end = n.wal.end();
        n.wal.flush_upto(end);
        for b in 0..64 {
            let page = n.data.read(BlockNumber(b)).clone();
            n.data.write(BlockNumber(b), page);
        }
        n
    };
    let mut n = fresh();
    assert_eq!(n.crash_image_count(u32::MAX), u64::from(u32::MAX));
    let flush = n.wal.flush_lsn();
    let lines = logged(&s, &mut n, |n, ctx| n.reach_disk(0, 1000, ctx));
    assert!(lines[0].starts_with("crash image 0 of 2^60+: "), "{lines:?}");
    assert!(lines[0].ends_with(&format!(
        "of 64 unsynced data pages and 0 of 0 CLOG pages reached the disk, WAL to {flush}"
    )));
    assert!(n.data.unsynced()[..48].iter().copied().eq(BlockNumber::all(48)), "the first word is 0");

    let mut n = fresh();
    let mut word = mix(5 ^ 0x696d_6167_6573);
    let reached: Vec<bool> = (0..64u32)
        .map(|k| {
            if k == 48 {
                word = mix(word ^ 48);
            }
            (word >> (k % 48)) & 1 == 1
        })
        .collect();
    let lines = logged(&s, &mut n, |n, ctx| n.reach_disk(1005, 1000, ctx));
    let count = reached.iter().filter(|&&r| r).count();
    assert_eq!(
        lines,
        [format!(
            "crash image 5 of 2^60+: {count} of 64 unsynced data pages and 0 of 0 CLOG pages reached the disk, WAL to {flush}"
        )]
    );
    let left: Vec<BlockNumber> = BlockNumber::all(64).filter(|b| !reached[b.index()]).collect();
    assert_eq!(n.data.unsynced(), left);
}

/// pg_control written without fsync (`fsync_control_file` off): the
/// durable image stays the one before the first unsynced write, until a
/// synced write or a write back to that image.
#[test]
fn an_unsynced_control_write_keeps_the_oldest_durable_image() {
    let s = Settings::default();
    let mut n = Node::initdb(NodeId(0), &s);
    let first = n.control;
    n.note_control_write(first, false);
    assert_eq!(n.control_unsynced, None, "nothing changed");
    n.control.checkpoint = Lsn(0x100);
    n.note_control_write(first, false);
    assert_eq!(n.control_unsynced, Some(first));
    let second = n.control;
    n.control.checkpoint = Lsn(0x200);
    n.note_control_write(second, false);
    assert_eq!(n.control_unsynced, Some(first), "the disk still has the first");
    n.control = first;
    n.note_control_write(second, false);
    assert_eq!(n.control_unsynced, None, "written back to what the disk has");
    n.control.checkpoint = Lsn(0x300);
    n.note_control_write(first, true);
    assert_eq!(n.control_unsynced, None, "synced");
    let synced = n.control;
    n.control.checkpoint = Lsn(0x400);
    n.note_control_write(synced, false);
    n.control.checkpoint = Lsn(0x500);
    n.note_control_write(synced, true);
    assert_eq!(n.control_unsynced, None, "a synced write makes every update durable");
}
