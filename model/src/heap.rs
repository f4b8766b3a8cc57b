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
}
