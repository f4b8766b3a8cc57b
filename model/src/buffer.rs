//! Shared buffers (bufmgr.c, freelist.c): a fixed pool of frames over the
//! table's blocks, with page LSN, dirty flag and clock-sweep eviction.
//!
//! The pool only holds state; *writing* a buffer (FlushBuffer: WAL first,
//! then the data file) is done by the process that evicts or checkpoints,
//! in `node.rs`, because who waits for what is process business.

use crate::heap::Page;
use crate::ids::BlockNumber;

/// One buffer (`BufferDesc` + its page).
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct BufferDesc {
    /// The block held, if any (`BufferTag`).
    pub tag: Option<BlockNumber>,
    /// `BM_DIRTY`.
    pub dirty: bool,
    /// Clock-sweep usage count (max `BM_MAX_USAGE_COUNT` = 5).
    pub usage: u8,
    pub page: Page,
}

const BM_MAX_USAGE_COUNT: u8 = 5;
const NO_FRAME: u32 = u32::MAX;

/// The buffer pool.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct BufferPool {
    frames: Vec<BufferDesc>,
    /// Block number → frame (`BufTable`), dense because the table is small.
    lookup: Vec<u32>,
    /// `nextVictimBuffer`.
    hand: u32,
}

impl BufferPool {
    pub fn new(frames: u32, blocks: u32) -> BufferPool {
        BufferPool {
            frames: vec![BufferDesc::default(); frames as usize],
            lookup: vec![NO_FRAME; blocks as usize],
            hand: 0,
        }
    }

    pub fn frames(&self) -> &[BufferDesc] {
        &self.frames
    }

    pub fn frame(&self, f: usize) -> &BufferDesc {
        &self.frames[f]
    }

    pub fn frame_mut(&mut self, f: usize) -> &mut BufferDesc {
        &mut self.frames[f]
    }

    /// The frame holding `blk`, if resident.
    pub fn lookup(&self, blk: BlockNumber) -> Option<usize> {
        let f = self.lookup[blk.index()];
        (f != NO_FRAME).then_some(f as usize)
    }

    /// Marks a use of a frame (PinBuffer bumps the usage count).
    pub fn touch(&mut self, f: usize) {
        let d = &mut self.frames[f];
        d.usage = (d.usage + 1).min(BM_MAX_USAGE_COUNT);
    }

    /// `StrategyGetBuffer`'s clock sweep without side effects: the frame the
    /// sweep would pick next. Used to ask "must a dirty page be written
    /// before a block can be read?" before committing to it.
    pub fn peek_victim(&self) -> usize {
        let n = self.frames.len();
        assert!(n > 0, "pool has frames");
        // A frame with usage u is picked on the sweep's (u+1)-th visit, so
        // the victim is the one minimising (usage, distance from the hand):
        // the first frame from the hand on with the lowest usage (two
        // passes without a division: this runs on every buffer read).
        let eff = |fr: &BufferDesc| if fr.tag.is_none() { 0 } else { fr.usage };
        let min = self.frames.iter().map(eff).min().unwrap_or(0);
        let hand = self.hand as usize;
        let after = self.frames[hand..].iter().position(|fr| eff(fr) == min).map(|i| hand + i);
        after.or_else(|| self.frames[..hand].iter().position(|fr| eff(fr) == min)).expect("pool has frames")
    }

    /// Runs the clock sweep for real: decrements usage counts on the way,
    /// and returns the victim [`Self::peek_victim`] predicted.
    pub fn take_victim(&mut self) -> usize {
        let victim = self.peek_victim();
        self.sweep_to(victim);
        victim
    }

    /// [`Self::take_victim`] when the caller already has
    /// [`Self::peek_victim`]'s answer (and changed nothing since).
    pub fn take_peeked_victim(&mut self, victim: usize) -> usize {
        debug_assert_eq!(victim, self.peek_victim());
        self.sweep_to(victim);
        victim
    }

    fn sweep_to(&mut self, victim: usize) {
        let n = self.frames.len();
        let hand = self.hand as usize;
        let usage = self.frames[victim].usage as usize;
        let dist = (victim + n - hand) % n;
        // Frames passed over lose one usage point per full round the sweep
        // makes, and the frames before the victim in the last round one more.
        for d in 0..n {
            let f = if hand + d >= n { hand + d - n } else { hand + d };
            if f == victim || self.frames[f].tag.is_none() {
                continue;
            }
            let rounds = usage + usize::from(d < dist);
            let fr = &mut self.frames[f];
            fr.usage = fr.usage.saturating_sub(rounds.min(u8::MAX as usize) as u8);
        }
        self.frames[victim].usage = 0;
        self.hand = ((victim + 1) % n) as u32;
    }

    /// Puts a copy of `page` of block `blk` into frame `f`, which must be
    /// clean, reusing the frame's tuple storage (no allocation per read in
    /// the steady state). The same state as `install(f, blk, page.clone())`.
    pub fn install_copy(&mut self, f: usize, blk: BlockNumber, page: &Page) {
        let d = &mut self.frames[f];
        assert!(!d.dirty, "installing over a dirty buffer would lose a change");
        if let Some(old) = d.tag {
            self.lookup[old.index()] = NO_FRAME;
        }
        d.tag = Some(blk);
        d.dirty = false;
        d.usage = 1;
        d.page.lsn = page.lsn;
        d.page.tuples.clone_from(&page.tuples);
        self.lookup[blk.index()] = f as u32;
    }

    /// Puts `page` of block `blk` into frame `f`, which must be clean.
    pub fn install(&mut self, f: usize, blk: BlockNumber, page: Page) {
        let d = &mut self.frames[f];
        assert!(!d.dirty, "installing over a dirty buffer would lose a change");
        if let Some(old) = d.tag {
            self.lookup[old.index()] = NO_FRAME;
        }
        *d = BufferDesc { tag: Some(blk), dirty: false, usage: 1, page };
        self.lookup[blk.index()] = f as u32;
    }

    /// Shared memory is lost (crash).
    pub fn clear(&mut self) {
        for d in &mut self.frames {
            *d = BufferDesc::default();
        }
        self.lookup.iter_mut().for_each(|f| *f = NO_FRAME);
        self.hand = 0;
    }

    /// Dirty frames, in frame order (the checkpoint's to-do list).
    pub fn dirty_frames(&self) -> impl Iterator<Item = usize> + '_ {
        self.frames.iter().enumerate().filter(|(_, d)| d.dirty).map(|(i, _)| i)
    }

    /// The page a reader sees for `blk`: the buffer if resident.
    pub fn resident_page(&self, blk: BlockNumber) -> Option<&Page> {
        self.lookup(blk).map(|f| &self.frames[f].page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_sweep_prefers_free_then_cold_frames() {
        let mut p = BufferPool::new(3, 10);
        for blk in 0..3 {
            let f = p.take_victim();
            p.install(f, BlockNumber(blk), Page::default());
        }
        // All usage 1; touch frame 0 twice so it is hottest.
        p.touch(0);
        p.touch(0);
        let v = p.peek_victim();
        assert_eq!(v, p.take_victim());
        assert_ne!(v, 0);
        p.install(v, BlockNumber(7), Page::default());
        assert_eq!(p.lookup(BlockNumber(7)), Some(v));
        assert_eq!(p.resident_page(BlockNumber(7)), Some(&Page::default()));
        for blk in 0..3 {
            if p.lookup(BlockNumber(blk)).is_none() {
                assert!(blk != 0);
            }
        }
    }

    fn usages(p: &BufferPool) -> Vec<u8> {
        p.frames().iter().map(|d| d.usage).collect()
    }

    /// StrategyGetBuffer's clock sweep, step by step against the real
    /// one: from the hand, each frame with a usage count loses one and
    /// the first found at zero is the victim; the hand stops after it.
    #[test]
    fn the_clock_sweep_decrements_usage_as_the_real_one() {
        let mut p = BufferPool::new(4, 10);
        for blk in 0..4 {
            let f = p.take_victim();
            assert_eq!(f, blk as usize, "empty frames first, in order");
            p.install(f, BlockNumber(blk), Page::default());
        }
        assert_eq!((usages(&p), p.hand), (vec![1, 1, 1, 1], 0));
        p.touch(0);
        p.touch(0);
        p.touch(2);
        assert_eq!(usages(&p), [3, 1, 2, 1]);
        // Hand 0: 3->2, 1->0, 2->1, 1->0, 2->1, then frame 1 at zero.
        assert_eq!(p.peek_victim(), 1);
        assert_eq!(p.take_victim(), 1);
        assert_eq!((usages(&p), p.hand), (vec![1, 0, 1, 0], 2));
        p.install(1, BlockNumber(7), Page::default());
        assert_eq!(p.lookup(BlockNumber(1)), None, "the old block left the buffer table");
        assert_eq!(p.lookup(BlockNumber(7)), Some(1));
        // Hand 2: 1->0, then frame 3 at zero.
        assert_eq!(p.take_peeked_victim(3), 3);
        assert_eq!((usages(&p), p.hand), (vec![1, 1, 0, 0], 0));
        p.install(3, BlockNumber(8), Page::default());
        p.install(2, BlockNumber(9), Page::default());
        p.touch(3);
        // Hand 0: usages 1, 1, 1, 2: 1->0, 1->0, 1->0, 2->1, frame 0 at zero.
        assert_eq!(p.take_victim(), 0);
        assert_eq!((usages(&p), p.hand), (vec![0, 0, 0, 1], 1));
        // Wrapping round: hand 3 over frames 3 and 0 to frame 1.
        let mut p = BufferPool::new(4, 10);
        for (f, u) in [(0, 1), (1, 0), (2, 1), (3, 1)] {
            p.install(f, BlockNumber(f as u32), Page::default());
            p.frames[f].usage = u;
        }
        p.hand = 3;
        assert_eq!(p.take_victim(), 1);
        assert_eq!((usages(&p), p.hand), (vec![0, 0, 1, 0], 2));
        // Two full rounds before a frame at usage 2 reaches zero.
        for (f, u) in [(0, 3), (1, 2), (2, 3), (3, 2)] {
            p.frames[f].usage = u;
        }
        p.hand = 1;
        assert_eq!(p.take_victim(), 1);
        assert_eq!((usages(&p), p.hand), (vec![1, 0, 1, 0], 2));
    }

    /// A usage count saturates at BM_MAX_USAGE_COUNT (5); an empty frame
    /// is taken before any used one; a crash empties the pool.
    #[test]
    fn usage_saturates_and_empty_frames_go_first() {
        let mut p = BufferPool::new(3, 10);
        p.install(1, BlockNumber(4), Page::default());
        for _ in 0..10 {
            p.touch(1);
        }
        assert_eq!(p.frame(1).usage, 5);
        p.hand = 1;
        assert_eq!(p.take_victim(), 2, "the first empty frame from the hand");
        // The model has no freelist: the sweep passed frame 1 on its way.
        assert_eq!((p.frame(1).usage, p.hand), (4, 0));
        let page = Page { lsn: crate::lsn::Lsn(8), tuples: Vec::new() };
        p.install_copy(2, BlockNumber(5), &page);
        p.frame_mut(2).dirty = true;
        assert_eq!(
            p.frame(2),
            &BufferDesc { tag: Some(BlockNumber(5)), dirty: true, usage: 1, page: page.clone() }
        );
        assert_eq!(p.resident_page(BlockNumber(5)), Some(&page));
        assert_eq!(p.resident_page(BlockNumber(6)), None);
        assert_eq!(p.dirty_frames().collect::<Vec<_>>(), [2]);
        p.frame_mut(2).dirty = false;
        p.install_copy(2, BlockNumber(6), &Page::default());
        assert_eq!(p.lookup(BlockNumber(5)), None);
        assert_eq!(p.lookup(BlockNumber(6)), Some(2));
        p.clear();
        assert_eq!(p, BufferPool::new(3, 10));
        assert_eq!(p.lookup(BlockNumber(4)), None);
    }
}
