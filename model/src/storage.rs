//! Files as the OS and the disk see them (md.c, sync.c, fd.c).
//!
//! Every block has an OS-cache image (what a read returns, what survives a
//! process crash) and a durable image (what survives power loss). A write
//! changes the OS image and joins an *ordered* list of unsynced writes;
//! fsync makes them durable. Keeping the list ordered (not a dirty bit) is
//! what later lets crash-image enumeration pick which unsynced writes
//! survived.

use crate::ids::BlockNumber;
use crate::lsn::Lsn;

/// Something stored in a block that carries an LSN (heap pages, CLOG pages).
pub trait HasLsn {
    fn lsn(&self) -> Lsn;
}

/// A file of blocks. Equality and the hash (the state fingerprint) cover
/// the two images and the unsynced list, not the cached LSN bound: two
/// equal files may carry different (valid) bounds.
#[derive(Clone, Debug)]
pub struct BlockFile<T> {
    os: Vec<T>,
    durable: Vec<T>,
    /// Blocks written since the last fsync, in write order, each once.
    unsynced: Vec<BlockNumber>,
    /// Membership flags for `unsynced`.
    is_unsynced: Vec<bool>,
    /// Upper bound of the LSNs of blocks in the OS cache (exact after
    /// [`BlockFile::recompute_max_lsn`]); kept so the `wal_before_data`
    /// check costs O(1) per step.
    max_lsn_os: Lsn,
}

impl<T: PartialEq> PartialEq for BlockFile<T> {
    fn eq(&self, other: &Self) -> bool {
        // `is_unsynced` follows from `unsynced`; `max_lsn_os` is a cache.
        self.os == other.os && self.durable == other.durable && self.unsynced == other.unsynced
    }
}

impl<T: Eq> Eq for BlockFile<T> {}

impl<T: std::hash::Hash> std::hash::Hash for BlockFile<T> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.os.hash(h);
        self.durable.hash(h);
        self.unsynced.hash(h);
    }
}

impl<T: Clone + Default + HasLsn> BlockFile<T> {
    pub fn new(blocks: u32) -> BlockFile<T> {
        BlockFile {
            os: vec![T::default(); blocks as usize],
            durable: vec![T::default(); blocks as usize],
            unsynced: Vec::new(),
            is_unsynced: vec![false; blocks as usize],
            max_lsn_os: Lsn(0),
        }
    }

    pub fn len(&self) -> u32 {
        self.os.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.os.is_empty()
    }

    /// What a read returns.
    pub fn read(&self, blk: BlockNumber) -> &T {
        &self.os[blk.index()]
    }

    /// What is on disk.
    pub fn durable(&self, blk: BlockNumber) -> &T {
        &self.durable[blk.index()]
    }

    /// A write reaches the OS cache.
    pub fn write(&mut self, blk: BlockNumber, data: T) {
        self.max_lsn_os = self.max_lsn_os.max(data.lsn());
        self.os[blk.index()] = data;
        if !self.is_unsynced[blk.index()] {
            self.is_unsynced[blk.index()] = true;
            self.unsynced.push(blk);
        }
    }

    /// [`BlockFile::write`] of a copy of `data`, reusing the block's
    /// storage (`clone_from`).
    pub fn write_from(&mut self, blk: BlockNumber, data: &T) {
        self.max_lsn_os = self.max_lsn_os.max(data.lsn());
        self.os[blk.index()].clone_from(data);
        if !self.is_unsynced[blk.index()] {
            self.is_unsynced[blk.index()] = true;
            self.unsynced.push(blk);
        }
    }

    /// Grows the file by one block (both images), returning its number.
    pub fn extend(&mut self, data: T) -> BlockNumber {
        self.os.push(data.clone());
        self.durable.push(data);
        self.is_unsynced.push(false);
        BlockNumber::from_index(self.os.len() - 1)
    }

    /// fsync: every unsynced write becomes durable.
    pub fn fsync(&mut self) {
        for blk in self.unsynced.drain(..) {
            self.is_unsynced[blk.index()] = false;
            self.durable[blk.index()].clone_from(&self.os[blk.index()]);
        }
    }

    /// Some unsynced writes reach the disk (a crash image): those whose
    /// position in [`BlockFile::unsynced`] `reached` accepts become durable;
    /// the rest stay unsynced, in order.
    pub fn sync_some(&mut self, mut reached: impl FnMut(usize) -> bool) {
        let list = std::mem::take(&mut self.unsynced);
        for (i, blk) in list.into_iter().enumerate() {
            if reached(i) {
                self.is_unsynced[blk.index()] = false;
                self.durable[blk.index()].clone_from(&self.os[blk.index()]);
            } else {
                self.unsynced.push(blk);
            }
        }
    }

    /// Writes not yet fsynced, oldest first.
    pub fn unsynced(&self) -> &[BlockNumber] {
        &self.unsynced
    }

    /// Power loss: the OS cache is gone; unsynced writes are lost.
    pub fn lose_unsynced(&mut self) {
        for blk in self.unsynced.drain(..) {
            self.is_unsynced[blk.index()] = false;
            self.os[blk.index()].clone_from(&self.durable[blk.index()]);
        }
        self.recompute_max_lsn();
    }

    /// Replaces both images block for block (a base backup or pg_rewind
    /// copy), as if written and fsynced.
    pub fn replace_block(&mut self, blk: BlockNumber, data: T) {
        self.max_lsn_os = self.max_lsn_os.max(data.lsn());
        self.os[blk.index()] = data.clone();
        self.durable[blk.index()] = data;
        if self.is_unsynced[blk.index()] {
            self.is_unsynced[blk.index()] = false;
            self.unsynced.retain(|&b| b != blk);
        }
    }

    /// Highest LSN of a block in the OS cache: an upper bound, exact after
    /// a recompute.
    pub fn max_lsn_os(&self) -> Lsn {
        self.max_lsn_os
    }

    /// The block with the highest LSN in the OS cache, if that LSN is above
    /// `bound`: O(1) while the cached upper bound is at or below `bound`.
    pub fn highest_above(&mut self, bound: Lsn) -> Option<(BlockNumber, Lsn)> {
        if self.max_lsn_os <= bound {
            return None;
        }
        self.recompute_max_lsn().filter(|&(_, lsn)| lsn > bound)
    }

    /// Exact highest LSN in the OS cache and the block that has it.
    pub fn recompute_max_lsn(&mut self) -> Option<(BlockNumber, Lsn)> {
        let best = self
            .os
            .iter()
            .enumerate()
            .map(|(i, b)| (BlockNumber::from_index(i), b.lsn()))
            .max_by_key(|&(i, l)| (l, std::cmp::Reverse(i)));
        self.max_lsn_os = best.map_or(Lsn(0), |b| b.1);
        best
    }

    /// Exact highest LSN of a block in the OS cache (what reads return),
    /// without touching the cached bound.
    pub fn max_lsn_read(&self) -> Lsn {
        self.os.iter().map(HasLsn::lsn).max().unwrap_or(Lsn(0))
    }

    /// Highest LSN of a durable block.
    pub fn max_lsn_durable(&self) -> Lsn {
        self.durable.iter().map(HasLsn::lsn).max().unwrap_or(Lsn(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
    struct B(u64);
    impl HasLsn for B {
        fn lsn(&self) -> Lsn {
            Lsn(self.0)
        }
    }

    #[test]
    fn fsync_and_power_loss() {
        let mut f: BlockFile<B> = BlockFile::new(3);
        f.write(BlockNumber(2), B(5));
        f.write(BlockNumber(0), B(7));
        f.write(BlockNumber(2), B(9));
        assert_eq!(f.unsynced(), &[BlockNumber(2), BlockNumber(0)]);
        assert_eq!(f.max_lsn_os(), Lsn(9));
        f.fsync();
        assert_eq!(f.durable(BlockNumber(2)), &B(9));
        f.write(BlockNumber(1), B(11));
        f.lose_unsynced();
        assert_eq!(f.read(BlockNumber(1)), &B(0));
        assert_eq!(f.read(BlockNumber(2)), &B(9));
        assert_eq!(f.max_lsn_os(), Lsn(9));
        assert_eq!(f.max_lsn_durable(), Lsn(9));
    }

    #[test]
    fn some_unsynced_writes_reach_the_disk() {
        let mut f: BlockFile<B> = BlockFile::new(3);
        f.write(BlockNumber(2), B(5));
        f.write(BlockNumber(0), B(7));
        f.write(BlockNumber(1), B(9));
        f.sync_some(|i| i == 1);
        assert_eq!(f.unsynced(), &[BlockNumber(2), BlockNumber(1)]);
        f.lose_unsynced();
        assert_eq!(
            (f.read(BlockNumber(0)), f.read(BlockNumber(1)), f.read(BlockNumber(2))),
            (&B(7), &B(0), &B(0))
        );
    }

    #[test]
    fn the_cached_bound_is_not_part_of_the_state() {
        use std::hash::{Hash, Hasher};
        let fp = |f: &BlockFile<B>| {
            let mut h = crate::cluster::StableHasher::default();
            f.hash(&mut h);
            h.finish()
        };
        // The same blocks, reached two ways: one file's bound is stale
        // (a copied-over block lowered the top LSN), the other's exact.
        let mut a: BlockFile<B> = BlockFile::new(2);
        a.replace_block(BlockNumber(1), B(8));
        a.replace_block(BlockNumber(1), B(3));
        let mut b: BlockFile<B> = BlockFile::new(2);
        b.replace_block(BlockNumber(1), B(3));
        assert_ne!(a.max_lsn_os(), b.max_lsn_os(), "the caches differ");
        assert_eq!(a, b);
        assert_eq!(fp(&a), fp(&b));
        b.write(BlockNumber(0), B(1));
        assert_ne!(a, b);
        assert_ne!(fp(&a), fp(&b), "a real difference still shows");
    }

    #[test]
    fn highest_above_sees_every_way_a_block_changes() {
        let mut f: BlockFile<B> = BlockFile::new(3);
        f.write(BlockNumber(1), B(4));
        assert_eq!(f.highest_above(Lsn(4)), None);
        assert_eq!(f.highest_above(Lsn(3)), Some((BlockNumber(1), Lsn(4))));
        // A copied block (pg_rewind, base backup) must raise the bound too.
        f.replace_block(BlockNumber(2), B(8));
        assert_eq!(f.highest_above(Lsn(4)), Some((BlockNumber(2), Lsn(8))));
        // Replaced by an older page: the stale bound is recomputed, not believed.
        f.replace_block(BlockNumber(2), B(1));
        assert_eq!(f.highest_above(Lsn(4)), None);
        assert_eq!(f.max_lsn_os(), Lsn(4));
    }

    /// Two files are equal when their OS images, durable images and
    /// unsynced lists are: a difference in any one of the three shows.
    #[test]
    fn each_image_and_the_unsynced_list_count_for_equality() {
        let mut base: BlockFile<B> = BlockFile::new(2);
        base.write(BlockNumber(0), B(5));
        // The OS image alone differs.
        let mut os = BlockFile::new(2);
        os.write(BlockNumber(0), B(6));
        // The durable image alone differs (B(3) reached the disk first).
        let mut durable = BlockFile::new(2);
        durable.write(BlockNumber(0), B(3));
        durable.fsync();
        durable.write(BlockNumber(0), B(5));
        // The unsynced list alone differs (block 1 rewritten as it was).
        let mut unsynced = BlockFile::new(2);
        unsynced.write(BlockNumber(0), B(5));
        unsynced.write(BlockNumber(1), B(0));
        for (what, other) in [("os", &os), ("durable", &durable), ("unsynced", &unsynced)] {
            assert_ne!(&base, other, "{what}");
        }
        let mut same = BlockFile::new(2);
        same.write_from(BlockNumber(0), &B(5));
        assert_eq!(base, same);
    }

    #[test]
    fn extending_copying_and_reading_blocks() {
        let mut f: BlockFile<B> = BlockFile::new(0);
        assert!(f.is_empty());
        assert_eq!((f.len(), f.max_lsn_read(), f.max_lsn_durable()), (0, Lsn(0), Lsn(0)));
        assert_eq!(f.extend(B(2)), BlockNumber(0));
        assert_eq!(f.extend(B(1)), BlockNumber(1));
        assert_eq!(f.extend(B(0)), BlockNumber(2));
        assert!(!f.is_empty());
        assert_eq!(f.len(), 3);
        assert_eq!(f.durable(BlockNumber(1)), &B(1), "a new block is on disk at once");
        assert!(f.unsynced().is_empty());
        // write_from joins the unsynced list once per block, like write.
        f.write_from(BlockNumber(2), &B(7));
        f.write_from(BlockNumber(1), &B(6));
        f.write_from(BlockNumber(2), &B(8));
        assert_eq!(f.unsynced(), &[BlockNumber(2), BlockNumber(1)]);
        assert_eq!(f.read(BlockNumber(2)), &B(8));
        assert_eq!(f.durable(BlockNumber(2)), &B(0));
        assert_eq!((f.max_lsn_os(), f.max_lsn_read(), f.max_lsn_durable()), (Lsn(8), Lsn(8), Lsn(2)));
        // A block copied over (rewind) is durable at once and leaves the
        // unsynced list; the others stay in it.
        f.replace_block(BlockNumber(2), B(4));
        assert_eq!(f.unsynced(), &[BlockNumber(1)]);
        assert_eq!((f.read(BlockNumber(2)), f.durable(BlockNumber(2))), (&B(4), &B(4)));
        // The cached bound is still 8; the exact maximum of what reads
        // return is 6, without touching the bound.
        assert_eq!((f.max_lsn_os(), f.max_lsn_read()), (Lsn(8), Lsn(6)));
        assert_eq!(f.max_lsn_durable(), Lsn(4));
        assert_eq!(f.recompute_max_lsn(), Some((BlockNumber(1), Lsn(6))));
        assert_eq!(f.max_lsn_os(), Lsn(6));
    }
}
