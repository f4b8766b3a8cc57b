//! Heap pages and tuples (bufpage.h, htup_details.h, heapam_visibility.c).
//!
//! The one simulated table is the seed experiment's
//! `test(id int primary key, info text, crt_time timestamp)`: a tuple holds
//! the key (`id`) and a payload standing for `md5(random()::text)`.

use crate::lsn::Lsn;

use crate::ids::Xid;

/// Hint bits (`t_infomask`): cached commit status, set without WAL.
pub const HEAP_XMIN_COMMITTED: u8 = 0x01;
pub const HEAP_XMIN_INVALID: u8 = 0x02;
pub const HEAP_XMAX_COMMITTED: u8 = 0x04;
pub const HEAP_XMAX_INVALID: u8 = 0x08;

/// A heap tuple version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tuple {
    pub key: u32,
    /// Stands for the md5 text; printed as 32 hex digits by [`md5_text`].
    pub payload: u64,
    pub xmin: Xid,
    /// Deleting/updating transaction, or `Xid::INVALID`.
    pub xmax: Xid,
    pub infomask: u8,
}

/// Bytes of one tuple on a page (header, id, 32-char text, timestamp,
/// aligned) plus its line pointer: sizes full-page images.
pub const TUPLE_SPACE: u64 = 72 + 4;
/// `SizeOfPageHeaderData`.
pub const PAGE_HEADER: u64 = 24;
/// `BLCKSZ`.
pub const BLCKSZ: u64 = 8192;
/// Tuples of this table that fit on one page (`MaxHeapTuplesPerPage` for
/// its tuple size): when an insert finds the page this full, it prunes
/// first (heap_page_prune_opt).
pub const TUPLES_PER_PAGE: usize = ((BLCKSZ - PAGE_HEADER) / TUPLE_SPACE) as usize;

/// A heap page: its LSN and its tuples (offset number = index + 1).
#[derive(Default, PartialEq, Eq, Hash, Debug)]
pub struct Page {
    pub lsn: Lsn,
    pub tuples: Vec<Tuple>,
}

/// `Clone` by hand for `clone_from`, which reuses the tuple vector's
/// storage: pages are copied between buffers, the OS cache and the disk
/// on every read, write and fsync (no allocation per step, issue 11).
impl Clone for Page {
    fn clone(&self) -> Page {
        Page { lsn: self.lsn, tuples: self.tuples.clone() }
    }

    fn clone_from(&mut self, source: &Page) {
        self.lsn = source.lsn;
        self.tuples.clone_from(&source.tuples);
    }
}

impl Tuple {
    /// Marks the tuple deleted/updated by `xid`, dropping stale xmax hint
    /// bits (heap_update and heap_xlog_update both clear HEAP_XMAX_BITS).
    pub fn set_xmax(&mut self, xid: Xid) {
        self.xmax = xid;
        self.infomask &= !(HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID);
    }
}

impl Page {
    /// Bytes of a full-page image with the hole removed, as
    /// XLogRecordAssemble compresses the free space out.
    pub fn image_len(&self) -> u64 {
        (PAGE_HEADER + self.tuples.len() as u64 * TUPLE_SPACE).min(BLCKSZ)
    }

    /// Removes the tuples at the given offset numbers (ascending) and
    /// compacts the page (heap_page_prune_execute + PageRepairFragmentation;
    /// the model renumbers the remaining tuples instead of leaving unused
    /// line pointers). Errors if an offset is not on the page.
    pub fn prune(&mut self, offnums: &[u16]) -> Result<(), String> {
        if let Some(&o) = offnums.iter().find(|&&o| o == 0 || usize::from(o) > self.tuples.len()) {
            return Err(format!("invalid offset {o} to prune, page has {} tuples", self.tuples.len()));
        }
        let mut i = 0u16;
        self.tuples.retain(|_| {
            i += 1;
            offnums.binary_search(&i).is_err()
        });
        Ok(())
    }

    /// The offset number the next tuple gets (`PageAddItem`).
    pub fn next_offnum(&self) -> u16 {
        self.tuples.len() as u16 + 1
    }
}

/// `md5(random()::text)`-like text for a payload: 32 hex digits.
pub fn md5_text(payload: u64) -> String {
    let a = payload;
    let b = payload.rotate_left(29) ^ 0x9E37_79B9_7F4A_7C15;
    format!("{a:016x}{b:016x}")
}

/// A row as a client sees it: `(id, info)`.
pub type Row = (u32, u64);

/// `hashtext(test::text)`-like hash of a row, summed by the convergence
/// check as the seed experiment's `sum(hashtext(test.*::text))`.
pub fn row_hash(row: Row) -> i64 {
    // SplitMix64 finaliser: stable, platform-independent.
    let mut z = (u64::from(row.0) << 32) ^ row.1 ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    i64::from(z as i32)
}

/// `count(*), sum(hashtext(test::text))` of a set of rows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct RowSummary {
    pub count: u64,
    pub sum: i64,
}

impl RowSummary {
    pub fn of(rows: &[Row]) -> RowSummary {
        RowSummary {
            count: rows.len() as u64,
            sum: rows.iter().map(|&r| row_hash(r)).fold(0i64, i64::wrapping_add),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text printed for a row's `info` (log lines, `converges`): the
    /// payload, then the payload rotated by 29 bits xor the golden ratio.
    #[test]
    fn md5_text_is_pinned() {
        assert_eq!(md5_text(0), "00000000000000009e3779b97f4a7c15");
        assert_eq!(md5_text(1), "00000000000000019e3779b95f4a7c15");
        assert_eq!(md5_text(0xDEAD_BEEF), "00000000deadbeef85e2ce649f4a7c15");
    }

    /// The `sum(hashtext(test.*::text))` that `converges` prints: the
    /// SplitMix64 finaliser of `(id << 32) ^ info`, cut to an `int4`.
    #[test]
    fn row_hash_is_pinned() {
        assert_eq!(row_hash((0, 0)), 2_065_550_767);
        assert_eq!(row_hash((1, 0)), 1_808_117_781);
        assert_eq!(row_hash((7, 0xDEAD_BEEF)), 1_322_040_006);
        assert_eq!(row_hash((3, 5)), -1_916_792_835);
    }

    fn tuple(key: u32, xmin: u32) -> Tuple {
        Tuple { key, payload: u64::from(key) * 10, xmin: Xid(xmin), xmax: Xid::INVALID, infomask: 0 }
    }

    /// A tuple takes 72 bytes (23-byte header aligned to 24, the int4 id,
    /// the 32-character text with its 1-byte header, the timestamp, all
    /// MAXALIGNed) plus its 4-byte line pointer; a page keeps 24 bytes of
    /// header, so (8192 - 24) / 76 = 107 tuples fit.
    #[test]
    fn page_geometry_and_image_sizes() {
        assert_eq!(TUPLE_SPACE, 76);
        assert_eq!(TUPLES_PER_PAGE, 107);
        let mut p = Page::default();
        assert_eq!(p.image_len(), 24, "an empty page's image is its header");
        assert_eq!(p.next_offnum(), 1, "offset numbers start at 1 (FirstOffsetNumber)");
        p.tuples.push(tuple(1, 3));
        p.tuples.push(tuple(2, 3));
        p.tuples.push(tuple(3, 3));
        assert_eq!(p.image_len(), 24 + 3 * 76);
        assert_eq!(p.next_offnum(), 4);
        // A full page's image: 24 + 107 * 76 = 8156 bytes; one tuple more
        // could not fit, and the image never exceeds BLCKSZ.
        p.tuples = (0..107).map(|k| tuple(k, 3)).collect();
        assert_eq!(p.image_len(), 8156);
        p.tuples.push(tuple(200, 3));
        assert_eq!(p.image_len(), BLCKSZ);
    }

    /// heap_update clears the old version's xmax hint bits
    /// (HEAP_XMAX_BITS) and keeps its xmin ones.
    #[test]
    fn set_xmax_drops_only_the_xmax_hint_bits() {
        let mut t = tuple(1, 3);
        t.infomask = HEAP_XMIN_COMMITTED | HEAP_XMAX_INVALID | HEAP_XMAX_COMMITTED;
        t.set_xmax(Xid(9));
        assert_eq!(t.xmax, Xid(9));
        assert_eq!(t.infomask, HEAP_XMIN_COMMITTED);
        let mut t = tuple(1, 3);
        t.infomask = HEAP_XMIN_INVALID | HEAP_XMAX_INVALID;
        t.set_xmax(Xid(10));
        assert_eq!((t.xmax, t.infomask), (Xid(10), HEAP_XMIN_INVALID));
    }

    /// Pruning removes exactly the offsets named (1-based), keeps the
    /// others in order, and refuses an offset that is not on the page.
    #[test]
    fn prune_removes_the_named_offsets_and_checks_them() {
        let three = Page { lsn: Lsn(8), tuples: vec![tuple(1, 3), tuple(2, 4), tuple(3, 5)] };
        let mut p = three.clone();
        assert_eq!(p, three, "a clone is equal");
        assert_eq!(p.prune(&[1, 3]), Ok(()));
        assert_eq!(p.tuples, [tuple(2, 4)]);
        assert_eq!(p.lsn, Lsn(8));
        let mut p = three.clone();
        assert_eq!(p.prune(&[3]), Ok(()), "the last offset is on the page");
        assert_eq!(p.tuples, [tuple(1, 3), tuple(2, 4)]);
        let mut p = three.clone();
        assert_eq!(p.prune(&[2]), Ok(()));
        assert_eq!(p.tuples, [tuple(1, 3), tuple(3, 5)]);
        let mut p = three.clone();
        assert_eq!(p.prune(&[0]), Err("invalid offset 0 to prune, page has 3 tuples".to_string()));
        assert_eq!(p.prune(&[2, 4]), Err("invalid offset 4 to prune, page has 3 tuples".to_string()));
        assert_eq!(p, three, "a refused prune changes nothing");
        // clone_from gives the same page as clone.
        let mut q = Page::default();
        q.clone_from(&three);
        assert_eq!(q, three);
    }

    /// `count(*), sum(hashtext(...))`: the count and the wrapping sum of
    /// the rows' hashes.
    #[test]
    fn row_summary_counts_and_sums_the_hashes() {
        assert_eq!(RowSummary::of(&[]), RowSummary { count: 0, sum: 0 });
        let rows = [(0, 0), (1, 0), (3, 5)];
        assert_eq!(
            RowSummary::of(&rows),
            RowSummary { count: 3, sum: 2_065_550_767 + 1_808_117_781 - 1_916_792_835 }
        );
    }
}
