//! The write-ahead log of one node (xlog.c, xloginsert.c): records, and the
//! insert ≥ write ≥ flush positions (`XLogCtl->Insert`, `LogwrtResult`).
//!
//! Records are kept whole in a vector ordered by LSN; write and flush
//! positions always fall on record ends (the model writes whole records, see
//! docs/model.md). What lies between `flush` and `write` is in the OS cache;
//! what lies between `write` and the insert position is only in WAL buffers.
//!
//! WAL lives in segment files: a checkpoint (or restartpoint) removes the
//! segments before the one it must keep (RemoveOldXlogFiles, see
//! checkpointer.rs), and [`Wal::remove_before`] drops their records. Record
//! indices are absolute (they count removed records too), so a walsender's
//! cursor or the startup process's next record stay valid across a
//! removal, and an index below [`Wal::first_index`] names a removed
//! record. What the removed records implied for the table is folded into
//! [`RemovedWal`], so `recovery_is_exact` can still replay "all the WAL"
//! from the base it left: memory per node is bounded by the retained WAL.

use crate::heap::{Page, Tuple};
use crate::ids::Tli;
use crate::ids::{BlockNumber, Xid};
use crate::lsn::{Lsn, WalGeometry, maxalign};
use std::sync::Arc;

/// The contents of a checkpoint record (`CheckPoint`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CheckPoint {
    pub redo: Lsn,
    pub tli: Tli,
    pub prev_tli: Tli,
    pub next_xid: Xid,
}

/// What a record says (rmgr + info).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum RecordBody {
    /// `XLOG_HEAP_INSERT`; `image` is the full-page image taken when this
    /// was the first change of the page after a checkpoint.
    HeapInsert { block: BlockNumber, offnum: u16, tuple: Tuple, image: Option<Arc<Page>> },
    /// `XLOG_HEAP_UPDATE` within one page: sets xmax of the old version and
    /// adds the new one.
    HeapUpdate {
        block: BlockNumber,
        old_offnum: u16,
        new_offnum: u16,
        tuple: Tuple,
        image: Option<Arc<Page>>,
    },
    /// `XLOG_XACT_COMMIT`.
    Commit,
    /// `XLOG_XACT_ABORT`.
    Abort,
    /// `XLOG_HEAP2_PRUNE`: dead tuples removed from a full page, by offset
    /// number (ascending); `image` as for an insert.
    HeapPrune { block: BlockNumber, offnums: Arc<[u16]>, image: Option<Arc<Page>> },
    /// `XLOG_FPI_FOR_HINT`: the page image logged on the first hint-bit change
    /// after a checkpoint when `wal_log_hints` is on.
    FpiForHint { block: BlockNumber, image: Arc<Page> },
    /// `XLOG_CHECKPOINT_ONLINE`.
    CheckpointOnline(CheckPoint),
    /// `XLOG_CHECKPOINT_SHUTDOWN` (also written at the end of crash recovery).
    CheckpointShutdown(CheckPoint),
    /// `XLOG_END_OF_RECOVERY`: written by a promoted standby on its new
    /// timeline.
    EndOfRecovery { tli: Tli, prev_tli: Tli },
    /// `XLOG_SWITCH` (`pg_switch_wal()`): the rest of the segment is unused.
    Switch,
}

/// `SizeOfXLogRecord`.
const SIZE_OF_XLOG_RECORD: u64 = 24;
/// A block reference (header, RelFileNode, block number).
const BLOCK_REF: u64 = 21;

impl RecordBody {
    /// Record length before alignment: realistic sizes, so LSNs advance as
    /// they do on a real server.
    pub fn size(&self) -> u64 {
        let image = |i: &Option<Arc<Page>>| i.as_ref().map_or(0, |p| p.image_len() + 5);
        SIZE_OF_XLOG_RECORD
            + match self {
                RecordBody::HeapInsert { image: i, .. } => BLOCK_REF + 5 + 68 + image(i),
                RecordBody::HeapUpdate { image: i, .. } => BLOCK_REF + 16 + 68 + image(i),
                RecordBody::HeapPrune { offnums, image: i, .. } => {
                    BLOCK_REF + 8 + 2 * offnums.len() as u64 + image(i)
                }
                RecordBody::Commit | RecordBody::Abort => 10,
                RecordBody::FpiForHint { image, .. } => BLOCK_REF + image.image_len() + 5,
                RecordBody::CheckpointOnline(_) | RecordBody::CheckpointShutdown(_) => 90,
                RecordBody::EndOfRecovery { .. } => 18,
                RecordBody::Switch => 0,
            }
    }

    /// The rmgr/description as pg_waldump would name it.
    pub fn name(&self) -> &'static str {
        match self {
            RecordBody::HeapInsert { .. } => "Heap/INSERT",
            RecordBody::HeapUpdate { .. } => "Heap/HOT_UPDATE",
            RecordBody::HeapPrune { .. } => "Heap2/PRUNE",
            RecordBody::Commit => "Transaction/COMMIT",
            RecordBody::Abort => "Transaction/ABORT",
            RecordBody::FpiForHint { .. } => "XLOG/FPI_FOR_HINT",
            RecordBody::CheckpointOnline(_) => "XLOG/CHECKPOINT_ONLINE",
            RecordBody::CheckpointShutdown(_) => "XLOG/CHECKPOINT_SHUTDOWN",
            RecordBody::EndOfRecovery { .. } => "XLOG/END_OF_RECOVERY",
            RecordBody::Switch => "XLOG/SWITCH",
        }
    }

    /// The heap block the record changes, if any.
    pub fn block(&self) -> Option<BlockNumber> {
        match self {
            RecordBody::HeapInsert { block, .. }
            | RecordBody::HeapUpdate { block, .. }
            | RecordBody::HeapPrune { block, .. }
            | RecordBody::FpiForHint { block, .. } => Some(*block),
            _ => None,
        }
    }

    pub fn checkpoint(&self) -> Option<&CheckPoint> {
        match self {
            RecordBody::CheckpointOnline(c) | RecordBody::CheckpointShutdown(c) => Some(c),
            _ => None,
        }
    }
}

/// A WAL record at its position.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Record {
    /// Start (`ReadRecPtr`).
    pub lsn: Lsn,
    /// End (`EndRecPtr`): what a page LSN is set to.
    pub end: Lsn,
    /// Timeline the record was written on.
    pub tli: Tli,
    /// `xl_prev`: where the previous record of the WAL it was written in
    /// starts. xlogreader checks it, which is what catches WAL of another
    /// history read where a node's own WAL ended.
    pub prev: Lsn,
    pub xid: Xid,
    pub body: RecordBody,
}

/// What the records removed from a node's WAL implied for the table, for
/// the invariant oracle only (`recovery_is_exact` replays the whole WAL;
/// the removed part starts from here). Not something PostgreSQL has.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct RemovedWal {
    /// Each block's tuples as replaying the removed records left them.
    pub pages: Vec<Vec<Tuple>>,
    /// Bitset of xids with a commit record in removed WAL.
    pub committed: Vec<u64>,
}

impl RemovedWal {
    /// Replays one record into the table it implies (no CLOG, no hint
    /// bits: just tuples and commits).
    pub fn apply(&mut self, rec: &Record) {
        fn page(pages: &mut Vec<Vec<Tuple>>, b: BlockNumber) -> &mut Vec<Tuple> {
            let b = b.index();
            if pages.len() <= b {
                pages.resize(b + 1, Vec::new());
            }
            &mut pages[b]
        }
        let pages = &mut self.pages;
        match &rec.body {
            RecordBody::HeapInsert { block, tuple, image, .. } => match image {
                Some(img) => img.tuples.clone_into(page(pages, *block)),
                None => page(pages, *block).push(*tuple),
            },
            RecordBody::HeapUpdate { block, old_offnum, tuple, image, .. } => match image {
                Some(img) => img.tuples.clone_into(page(pages, *block)),
                None => {
                    let p = page(pages, *block);
                    if let Some(old) = p.get_mut(usize::from(*old_offnum) - 1) {
                        old.xmax = rec.xid;
                    }
                    p.push(*tuple);
                }
            },
            RecordBody::HeapPrune { block, offnums, image } => match image {
                Some(img) => img.tuples.clone_into(page(pages, *block)),
                None => {
                    let p = page(pages, *block);
                    let mut i = 0u16;
                    p.retain(|_| {
                        i += 1;
                        offnums.binary_search(&i).is_err()
                    });
                }
            },
            RecordBody::FpiForHint { block, image } => image.tuples.clone_into(page(pages, *block)),
            RecordBody::Commit => {
                let (w, bit) = (rec.xid.index() / 64, rec.xid.index() % 64);
                if self.committed.len() <= w {
                    self.committed.resize(w + 1, 0);
                }
                self.committed[w] |= 1 << bit;
            }
            _ => {}
        }
    }

    pub fn is_committed(&self, xid: Xid) -> bool {
        self.committed.get(xid.index() / 64).is_some_and(|w| w & (1 << (xid.index() % 64)) != 0)
    }

    /// The rows block `blk` holds by this replay alone (commit status from
    /// `committed` only), in page order; what `rows_implied_by_wal`
    /// collects when `self` is the whole WAL's replay.
    pub fn visible_rows_of_block(&self, blk: BlockNumber) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.pages.get(blk.index()).into_iter().flatten().filter_map(move |t| {
            (self.is_committed(t.xmin) && !(t.xmax.is_valid() && self.is_committed(t.xmax)))
                .then_some((t.key, t.payload))
        })
    }
}

/// A cache of what the whole WAL implies (the removed base plus every
/// retained record, replayed), for `recovery_is_exact`: brought up to date
/// by [`Wal::refresh_implied`] before the check, so each record is replayed
/// once rather than at every crash recovery (issue 11: that replay was
/// O(retained WAL) per check). Not state: equal to every other cache and
/// hashed as nothing, so it never changes an equality or a fingerprint.
#[derive(Clone, Default, Debug)]
pub struct ImpliedCache(Option<Arc<(usize, RemovedWal)>>);

impl PartialEq for ImpliedCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ImpliedCache {}

impl std::hash::Hash for ImpliedCache {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// One node's WAL.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Wal {
    geometry: WalGeometry,
    /// The retained records; `records[0]` has absolute index `first`.
    records: Vec<Record>,
    /// Records removed with their segments (absolute index of `records[0]`).
    first: usize,
    /// Start of the oldest segment still in pg_wal (`XLogCtl->lastRemovedSegNo`
    /// + 1); 0 while nothing was removed.
    kept_from: Lsn,
    /// Start and end of the last removed record (for `xl_prev` and the end
    /// of WAL once every retained record is truncated away).
    removed_last: (Lsn, Lsn),
    /// What the removed records implied (see [`RemovedWal`]).
    removed: std::sync::Arc<RemovedWal>,
    /// `Insert->CurrBytePos`, in usable bytes.
    insert_bytepos: u64,
    /// What the WAL implies up to an absolute record index (a cache; see
    /// [`ImpliedCache`]). Invalidated by [`Wal::truncate`] below its end
    /// and by [`Wal::remove_before`] past its end.
    implied: ImpliedCache,
    /// Written to the OS (`LogwrtResult.Write`).
    write: Lsn,
    /// fsynced (`LogwrtResult.Flush`).
    flush: Lsn,
}

impl Wal {
    /// A fresh WAL whose first record will start after the segment's long
    /// page header (initdb starts at the first segment).
    pub fn new(geometry: WalGeometry) -> Wal {
        Wal {
            geometry,
            records: Vec::new(),
            first: 0,
            kept_from: Lsn(0),
            removed_last: (Lsn(0), Lsn(0)),
            removed: Default::default(),
            insert_bytepos: 0,
            implied: ImpliedCache::default(),
            write: Lsn(0),
            flush: Lsn(0),
        }
    }

    /// Absolute index of the oldest retained record.
    pub fn first_index(&self) -> usize {
        self.first
    }

    /// Absolute index one past the last record.
    pub fn end_index(&self) -> usize {
        self.first + self.records.len()
    }

    /// The record with absolute index `i`, if it is retained.
    pub fn get(&self, i: usize) -> Option<&Record> {
        i.checked_sub(self.first).and_then(|j| self.records.get(j))
    }

    /// Retained records from absolute index `i` on.
    pub fn from_index(&self, i: usize) -> &[Record] {
        &self.records[i.saturating_sub(self.first).min(self.records.len())..]
    }

    /// Retained records that start before `lsn`.
    pub fn records_before(&self, lsn: Lsn) -> &[Record] {
        &self.records[..self.records.partition_point(|r| r.lsn < lsn)]
    }

    /// Retained records that start at or after `lsn`.
    pub fn records_from(&self, lsn: Lsn) -> &[Record] {
        &self.records[self.records.partition_point(|r| r.lsn < lsn)..]
    }

    /// Start of the oldest segment still present (0/0 while none was
    /// removed): WAL before it "has already been removed".
    pub fn kept_from(&self) -> Lsn {
        self.kept_from
    }

    /// Whether the segment holding `lsn` was removed.
    pub fn segment_removed(&self, lsn: Lsn) -> bool {
        lsn < self.kept_from
    }

    /// What the removed records implied for the table.
    pub fn removed_base(&self) -> &RemovedWal {
        &self.removed
    }

    /// Brings the cache of what the WAL implies up to the last record:
    /// replays the records appended since the last refresh (or, after an
    /// invalidation, every retained record on a copy of the removed base).
    pub fn refresh_implied(&mut self) {
        let end = self.end_index();
        let mut cache = self.implied.0.take().filter(|c| c.0 >= self.first && c.0 <= end);
        if cache.as_ref().is_some_and(|c| c.0 == end) {
            self.implied.0 = cache;
            return;
        }
        let c = Arc::make_mut(cache.get_or_insert_with(|| Arc::new((self.first, (*self.removed).clone()))));
        for r in &self.records[c.0 - self.first..] {
            c.1.apply(r);
        }
        c.0 = end;
        self.implied.0 = cache;
    }

    /// What the whole WAL implies (removed base + retained records
    /// replayed), if [`Wal::refresh_implied`] ran since the last change.
    pub fn implied(&self) -> Option<&RemovedWal> {
        self.implied.0.as_ref().filter(|c| c.0 == self.end_index()).map(|c| &c.1)
    }

    /// Start of the last record (`xl_prev` of the next one).
    pub fn last_start(&self) -> Lsn {
        self.records.last().map_or(self.removed_last.0, |r| r.lsn)
    }

    /// RemoveOldXlogFiles: removes every segment before the one holding
    /// `keep` (a segment start), dropping the records that start in them.
    /// Returns the segment numbers removed (first, last), if any. Never
    /// removes WAL that is not flushed.
    pub fn remove_before(&mut self, keep: Lsn) -> Option<(u64, u64)> {
        let keep = self.geometry.segment_start(keep.min(self.flush));
        if keep <= self.kept_from {
            return None;
        }
        let from_seg = self.geometry.segno(self.kept_from);
        let to_seg = self.geometry.segno(keep) - 1;
        let n = self.records.partition_point(|r| r.lsn < keep);
        if n > 0 {
            let base = std::sync::Arc::make_mut(&mut self.removed);
            for r in &self.records[..n] {
                base.apply(r);
            }
            let last = &self.records[n - 1];
            self.removed_last = (last.lsn, last.end);
            self.records.drain(..n);
            self.first += n;
            // The cache stays valid while it covers every removed record.
            if self.implied.0.as_ref().is_some_and(|c| c.0 < self.first) {
                self.implied.0 = None;
            }
        }
        self.kept_from = keep;
        debug_assert!(self.records.first().is_none_or(|r| r.lsn >= keep), "a record before {keep} survived");
        debug_assert!(from_seg <= to_seg, "removed segments {from_seg}..={to_seg}");
        self.debug_check_positions();
        Some((from_seg, to_seg))
    }

    pub fn geometry(&self) -> &WalGeometry {
        &self.geometry
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Where the next record will start (`pg_current_wal_insert_lsn`).
    pub fn insert_lsn(&self) -> Lsn {
        self.geometry.bytepos_to_recptr(self.insert_bytepos)
    }

    /// End of the last record inserted.
    pub fn end(&self) -> Lsn {
        self.records.last().map_or(self.removed_last.1, |r| r.end)
    }

    pub fn write_lsn(&self) -> Lsn {
        self.write
    }

    pub fn flush_lsn(&self) -> Lsn {
        self.flush
    }

    /// `XLogInsert`: appends a record at the insert position and returns
    /// its index.
    pub fn insert(&mut self, tli: Tli, xid: Xid, body: RecordBody) -> &Record {
        let start = self.geometry.bytepos_to_recptr(self.insert_bytepos);
        self.insert_bytepos = match body {
            RecordBody::Switch => self.geometry.bytepos_of_next_segment(start),
            _ => self.insert_bytepos + maxalign(body.size()),
        };
        let end = self.geometry.bytepos_to_endrecptr(self.insert_bytepos);
        let prev = self.last_start();
        debug_assert!(
            start >= self.end(),
            "XLogInsert at {start} before the last record's end {}",
            self.end()
        );
        debug_assert!(end > start && prev <= start, "record {start}..{end} with xl_prev {prev}");
        self.records.push(Record { lsn: start, end, tli, prev, xid, body });
        self.debug_check_positions();
        self.records.last().expect("just pushed")
    }

    /// Appends a record received from an upstream server (walreceiver
    /// write). It continues this WAL; only when PostgreSQL's streaming
    /// checks are switched off can there be a gap (old bytes the record
    /// boundaries no longer match), which the model leaves as a hole.
    pub fn append_received(&mut self, rec: Record) {
        debug_assert!(rec.end > rec.lsn, "received record {}..{}", rec.lsn, rec.end);
        self.insert_bytepos = self.geometry.recptr_to_bytepos(rec.end);
        self.records.push(rec);
        self.debug_check_positions();
    }

    /// `XLogWrite` up to `upto` (clamped to what is inserted): the records
    /// reach the OS cache.
    pub fn write_upto(&mut self, upto: Lsn) {
        self.write = self.write.max(upto.min(self.end()));
        self.debug_check_positions();
    }

    /// `XLogFlush`: write and fsync up to `upto`.
    pub fn flush_upto(&mut self, upto: Lsn) {
        self.write_upto(upto);
        self.flush = self.flush.max(upto.min(self.write));
        self.debug_check_positions();
    }

    /// Whether `lsn` is not yet durable (`XLogNeedsFlush`).
    pub fn needs_flush(&self, lsn: Lsn) -> bool {
        lsn > self.flush
    }

    /// Drops every record that ends after `keep_upto` (a crash losing WAL
    /// buffers or unsynced WAL, or failback removing WAL past a fork).
    pub fn truncate(&mut self, keep_upto: Lsn) {
        let keep = self.records.partition_point(|r| r.end <= keep_upto);
        self.records.truncate(keep);
        if self.implied.0.as_ref().is_some_and(|c| c.0 > self.first + keep) {
            self.implied.0 = None;
        }
        let end = self.end();
        self.insert_bytepos = if end == Lsn(0) { 0 } else { self.geometry.recptr_to_bytepos(end) };
        self.write = self.write.min(end);
        self.flush = self.flush.min(end);
        debug_assert!(self.records.last().is_none_or(|r| r.end <= keep_upto), "truncated past {keep_upto}");
        self.debug_check_positions();
    }

    /// Process crash: WAL buffers are lost, written WAL stays in the OS.
    pub fn lose_unwritten(&mut self) {
        let w = self.write;
        self.truncate(w);
    }

    /// Power loss: everything not fsynced is lost.
    pub fn lose_unflushed(&mut self) {
        let f = self.flush;
        self.truncate(f);
    }

    /// After `SyncDataDirectory`: all WAL in the OS cache is durable.
    pub fn mark_written_durable(&mut self) {
        self.flush = self.write;
        self.debug_check_positions();
    }

    /// The order of WAL positions (`LogwrtResult`): flushed ≤ written ≤
    /// the end of the last record ≤ the insert position. Checked after
    /// every change in debug builds (a second oracle in tests).
    #[inline]
    fn debug_check_positions(&self) {
        debug_assert!(
            self.flush <= self.write,
            "WAL flushed to {} but written only to {}",
            self.flush,
            self.write
        );
        debug_assert!(self.write <= self.end(), "WAL written to {} past its end {}", self.write, self.end());
        debug_assert!(
            self.end() <= self.insert_lsn(),
            "WAL ends at {} past the insert position {}",
            self.end(),
            self.insert_lsn()
        );
    }

    /// Absolute index of the first record starting at or after `lsn`.
    pub fn index_at(&self, lsn: Lsn) -> usize {
        self.first + self.records.partition_point(|r| r.lsn < lsn)
    }

    /// The record starting exactly at `lsn`, if retained.
    pub fn record_at(&self, lsn: Lsn) -> Option<&Record> {
        self.get(self.index_at(lsn)).filter(|r| r.lsn == lsn)
    }
}

/// Why a checkpoint runs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CkptKind {
    /// checkpoint_timeout or max_wal_size on a primary.
    Online,
    /// Restartpoint on a standby, at the last replayed checkpoint.
    Restartpoint,
    /// Written at the end of crash recovery (a shutdown-type record).
    EndOfRecovery,
    /// Fast shutdown of a standby: a last restartpoint, then "shut down in
    /// recovery".
    ShutdownRestartpoint,
    /// Fast shutdown.
    Shutdown,
}

impl CkptKind {
    pub(crate) fn flags(self) -> &'static str {
        match self {
            CkptKind::Online => "time",
            CkptKind::Restartpoint => "time",
            CkptKind::EndOfRecovery => "end-of-recovery immediate wait",
            CkptKind::Shutdown | CkptKind::ShutdownRestartpoint => "shutdown immediate",
        }
    }
    pub(crate) fn noun(self) -> &'static str {
        if self.is_restartpoint() { "restartpoint" } else { "checkpoint" }
    }

    /// Restartpoints complete a replayed checkpoint; they write no record.
    pub fn is_restartpoint(self) -> bool {
        matches!(self, CkptKind::Restartpoint | CkptKind::ShutdownRestartpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RemoveOldXlogFiles on the WAL: whole segments go, with the records
    /// that start in them; absolute indices, the removed commits and the
    /// last record's start and end survive.
    #[test]
    fn removing_segments_keeps_indices_and_what_the_records_implied() {
        let seg = 1u64 << 14;
        let mut w = Wal::new(WalGeometry::new(seg));
        for x in 0..1000u32 {
            w.insert(Tli(1), Xid(x), RecordBody::Commit);
        }
        assert_eq!((w.first_index(), w.end_index()), (0, 1000));
        assert_eq!((w.kept_from(), w.segment_removed(Lsn(0))), (Lsn(0), false));
        assert_eq!(w.remove_before(Lsn(2 * seg)), None, "nothing flushed, nothing removed");
        w.write_upto(Lsn(3 * seg));
        assert!(w.needs_flush(w.end()) && !w.needs_flush(Lsn(0)));
        w.flush_upto(w.end());
        assert!(!w.needs_flush(w.end()) && w.needs_flush(Lsn(w.end().0 + 1)));
        let gone = w.records_before(Lsn(2 * seg)).len();
        assert!(gone > 400 && gone < 1000, "{gone}");
        assert_eq!(w.records_from(Lsn(2 * seg)).len(), 1000 - gone);
        assert!(w.records_before(Lsn(2 * seg)).iter().all(|r| r.lsn < Lsn(2 * seg)));
        // At a record's exact start: it is not before, it is the first from.
        let r7 = w.records()[7].clone();
        assert_eq!(w.records_before(r7.lsn).len(), 7);
        assert_eq!(w.records_from(r7.lsn)[0], r7);
        assert_eq!(w.remove_before(Lsn(2 * seg)), Some((0, 1)));
        assert_eq!((w.first_index(), w.end_index()), (gone, 1000));
        assert_eq!(w.kept_from(), Lsn(2 * seg));
        assert!(w.segment_removed(Lsn(2 * seg - 1)) && !w.segment_removed(Lsn(2 * seg)));
        assert!(w.records_before(Lsn(2 * seg)).is_empty());
        assert_eq!(w.records().len(), 1000 - gone);
        assert_eq!(w.get(gone - 1), None);
        assert_eq!(w.get(gone).map(|r| r.xid), Some(Xid(gone as u32)));
        let base = w.removed_base();
        assert!(
            base.is_committed(Xid(0))
                && base.is_committed(Xid(gone as u32 - 1))
                && !base.is_committed(Xid(gone as u32))
        );
        assert_eq!(w.remove_before(Lsn(2 * seg)), None, "already removed");
        assert_eq!(w.remove_before(Lsn(9 * seg)), None, "not past the flushed segment");
        // Everything: the last record's start and end outlive it.
        let sw = w.insert(Tli(1), Xid(0), RecordBody::Switch).clone();
        w.flush_upto(sw.end);
        assert_eq!(w.remove_before(Lsn(9 * seg)), Some((2, sw.end.0 / seg - 1)));
        assert!(w.records().is_empty());
        assert_eq!((w.first_index(), w.end_index()), (1001, 1001));
        assert_eq!((w.last_start(), w.end()), (sw.lsn, sw.end));
    }

    #[test]
    fn a_process_crash_loses_what_was_not_written() {
        let mut w = Wal::new(WalGeometry::new(1 << 20));
        let first = w.insert(Tli(1), Xid(3), RecordBody::Commit).clone();
        w.insert(Tli(1), Xid(4), RecordBody::Commit);
        w.write_upto(first.end);
        w.lose_unwritten();
        assert_eq!((w.end(), w.end_index(), w.last_start()), (first.end, 1, first.lsn));
        // SyncDataDirectory after the crash: what is written is durable.
        assert_eq!(w.flush_lsn(), Lsn(0));
        w.mark_written_durable();
        assert_eq!(w.flush_lsn(), first.end);
    }

    /// Record sizes per type (pg_waldump's `len (rec/tot)` is this before
    /// MAXALIGN): a 24-byte header, a 21-byte block reference, the type's
    /// main data, and a full-page image of `24 + 76 × tuples` bytes plus
    /// its 5-byte image header.
    #[test]
    fn record_sizes_names_and_blocks_are_pinned() {
        let tuple = Tuple { key: 1, payload: 2, xmin: Xid(3), xmax: Xid::INVALID, infomask: 0 };
        let page = Arc::new(Page { lsn: Lsn(0), tuples: vec![tuple, tuple] });
        assert_eq!(page.image_len(), 24 + 2 * 76);
        let img = 24 + 2 * 76 + 5;
        let c = CheckPoint { redo: Lsn(40), tli: Tli(1), prev_tli: Tli(1), next_xid: Xid(3) };
        let cases: Vec<(RecordBody, u64, &str, Option<BlockNumber>)> = vec![
            (
                RecordBody::HeapInsert { block: BlockNumber(4), offnum: 1, tuple, image: None },
                24 + 21 + 5 + 68,
                "Heap/INSERT",
                Some(BlockNumber(4)),
            ),
            (
                RecordBody::HeapInsert { block: BlockNumber(4), offnum: 1, tuple, image: Some(page.clone()) },
                24 + 21 + 5 + 68 + img,
                "Heap/INSERT",
                Some(BlockNumber(4)),
            ),
            (
                RecordBody::HeapUpdate {
                    block: BlockNumber(5),
                    old_offnum: 1,
                    new_offnum: 2,
                    tuple,
                    image: None,
                },
                24 + 21 + 16 + 68,
                "Heap/HOT_UPDATE",
                Some(BlockNumber(5)),
            ),
            (
                RecordBody::HeapUpdate {
                    block: BlockNumber(5),
                    old_offnum: 1,
                    new_offnum: 2,
                    tuple,
                    image: Some(page.clone()),
                },
                24 + 21 + 16 + 68 + img,
                "Heap/HOT_UPDATE",
                Some(BlockNumber(5)),
            ),
            (
                RecordBody::HeapPrune { block: BlockNumber(6), offnums: Arc::from([1u16, 3]), image: None },
                24 + 21 + 8 + 2 * 2,
                "Heap2/PRUNE",
                Some(BlockNumber(6)),
            ),
            (
                RecordBody::HeapPrune {
                    block: BlockNumber(6),
                    offnums: Arc::from([1u16, 3, 4]),
                    image: Some(page.clone()),
                },
                24 + 21 + 8 + 3 * 2 + img,
                "Heap2/PRUNE",
                Some(BlockNumber(6)),
            ),
            (RecordBody::Commit, 24 + 10, "Transaction/COMMIT", None),
            (RecordBody::Abort, 24 + 10, "Transaction/ABORT", None),
            (
                RecordBody::FpiForHint { block: BlockNumber(7), image: page.clone() },
                24 + 21 + img,
                "XLOG/FPI_FOR_HINT",
                Some(BlockNumber(7)),
            ),
            (RecordBody::CheckpointOnline(c), 24 + 90, "XLOG/CHECKPOINT_ONLINE", None),
            (RecordBody::CheckpointShutdown(c), 24 + 90, "XLOG/CHECKPOINT_SHUTDOWN", None),
            (
                RecordBody::EndOfRecovery { tli: Tli(2), prev_tli: Tli(1) },
                24 + 18,
                "XLOG/END_OF_RECOVERY",
                None,
            ),
            (RecordBody::Switch, 24, "XLOG/SWITCH", None),
        ];
        for (body, size, name, block) in cases {
            assert_eq!((body.size(), body.name(), body.block()), (size, name, block), "{body:?}");
        }
    }

    #[test]
    fn removed_wal_grows_its_table_to_the_block_changed() {
        let tuple = Tuple { key: 9, payload: 8, xmin: Xid(5), xmax: Xid::INVALID, infomask: 0 };
        let rec = |block, body| Record {
            lsn: Lsn(40),
            end: Lsn(80),
            tli: Tli(1),
            prev: Lsn(0),
            xid: Xid(5),
            body: match body {
                0 => RecordBody::HeapInsert { block, offnum: 1, tuple, image: None },
                _ => RecordBody::Commit,
            },
        };
        let mut r = RemovedWal::default();
        r.apply(&rec(BlockNumber(2), 0));
        assert_eq!(r.pages, [vec![], vec![], vec![tuple]]);
        r.apply(&rec(BlockNumber(0), 0));
        assert_eq!(r.pages.len(), 3, "an earlier block does not shrink the table");
        assert_eq!(r.pages[0], [tuple]);
        assert!(!r.is_committed(Xid(5)));
        r.apply(&rec(BlockNumber(0), 1));
        assert!(r.is_committed(Xid(5)) && !r.is_committed(Xid(4)) && !r.is_committed(Xid(69)));
        // A hint-bit full-page image replaces the block's tuples.
        let hinted = Tuple { infomask: 1, ..tuple };
        let image = Arc::new(Page { lsn: Lsn(0), tuples: vec![hinted, tuple] });
        r.apply(&Record {
            body: RecordBody::FpiForHint { block: BlockNumber(1), image },
            ..rec(BlockNumber(0), 1)
        });
        assert_eq!(r.pages[1], [hinted, tuple]);
    }

    #[test]
    fn positions_advance_and_truncate() {
        let g = WalGeometry::new(1 << 20);
        let mut w = Wal::new(g);
        let c = CheckPoint { redo: Lsn(40), tli: Tli(1), prev_tli: Tli(1), next_xid: Xid(3) };
        let r = w.insert(Tli(1), Xid(0), RecordBody::CheckpointShutdown(c)).clone();
        assert_eq!(r.lsn, Lsn(40));
        assert_eq!(r.end, Lsn(40 + 120));
        assert_eq!(w.insert_lsn(), r.end);
        w.insert(Tli(1), Xid(3), RecordBody::Commit);
        w.write_upto(Lsn(u64::MAX));
        w.flush_upto(r.end);
        assert_eq!(w.flush_lsn(), r.end);
        assert!(w.write_lsn() > w.flush_lsn());
        w.lose_unflushed();
        assert_eq!(w.records().len(), 1);
        assert_eq!(w.insert_lsn(), r.end);
        assert_eq!(w.write_lsn(), r.end);
    }

    #[test]
    fn switch_skips_to_next_segment() {
        let g = WalGeometry::new(1 << 20);
        let mut w = Wal::new(g);
        w.insert(Tli(1), Xid(3), RecordBody::Commit);
        let s = w.insert(Tli(1), Xid(0), RecordBody::Switch).clone();
        assert_eq!(s.end, Lsn(1 << 20));
        assert_eq!(w.insert_lsn(), Lsn((1 << 20) + 40));
    }

    /// What the whole WAL implies, kept up to date incrementally: absent
    /// until refreshed and after any change, then the same table a replay
    /// from scratch gives, also once segments were removed from under it.
    /// The replay follows updates (xmax of the old version, at its offset)
    /// and prunes (tuples removed by offset); a row is visible when its
    /// inserter committed and no committed transaction deleted it.
    #[test]
    fn the_implied_table_follows_inserts_updates_prunes_and_removal() {
        let seg = 1u64 << 14;
        let mut w = Wal::new(WalGeometry::new(seg));
        let t = |key: u32, xmin: u32| Tuple {
            key,
            payload: u64::from(key) * 10,
            xmin: Xid(xmin),
            xmax: Xid::INVALID,
            infomask: 0,
        };
        let ins = |w: &mut Wal, key: u32, xid: u32, offnum: u16| {
            w.insert(
                Tli(1),
                Xid(xid),
                RecordBody::HeapInsert { block: BlockNumber(1), offnum, tuple: t(key, xid), image: None },
            );
        };
        assert!(w.implied().is_none(), "never refreshed");
        // Three rows by xids 3 (committed), 4 (never commits), 5 (committed).
        ins(&mut w, 1, 3, 1);
        ins(&mut w, 2, 4, 2);
        ins(&mut w, 3, 5, 3);
        w.insert(Tli(1), Xid(3), RecordBody::Commit);
        w.insert(Tli(1), Xid(5), RecordBody::Commit);
        w.refresh_implied();
        let rows = |w: &Wal| {
            w.implied().expect("refreshed").visible_rows_of_block(BlockNumber(1)).collect::<Vec<_>>()
        };
        assert_eq!(rows(&w), [(1, 10), (3, 30)]);
        assert!(w.implied().unwrap().visible_rows_of_block(BlockNumber(7)).next().is_none(), "no such block");
        // xid 6 updates row 3 (offset 3) into a new version, then commits;
        // xid 7 updates row 1 (offset 1) but never commits.
        let upd = |w: &mut Wal, xid: u32, old: u16, new: u16, key: u32| {
            let tuple = Tuple { payload: 99, ..t(key, xid) };
            w.insert(
                Tli(1),
                Xid(xid),
                RecordBody::HeapUpdate {
                    block: BlockNumber(1),
                    old_offnum: old,
                    new_offnum: new,
                    tuple,
                    image: None,
                },
            );
        };
        upd(&mut w, 6, 3, 4, 3);
        assert!(w.implied().is_none(), "stale after an insert");
        w.insert(Tli(1), Xid(6), RecordBody::Commit);
        upd(&mut w, 7, 1, 5, 1);
        w.refresh_implied();
        assert_eq!(rows(&w), [(1, 10), (3, 99)]);
        let xmaxes = |w: &Wal| w.implied().unwrap().pages[1].iter().map(|t| t.xmax.0).collect::<Vec<_>>();
        assert_eq!(xmaxes(&w), [7, 0, 6, 0, 0]);
        // Prune offsets 2 and 3 (the aborted row, the dead version).
        w.insert(
            Tli(1),
            Xid(0),
            RecordBody::HeapPrune { block: BlockNumber(1), offnums: Arc::from([2u16, 3]), image: None },
        );
        w.refresh_implied();
        assert_eq!(w.implied().unwrap().pages[1].iter().map(|t| t.key).collect::<Vec<_>>(), [1, 3, 1]);
        assert_eq!(rows(&w), [(1, 10), (3, 99)]);
        // Remove the first segment under the cache, then add more: the
        // refresh replays only the new records on top.
        for x in 100..800u32 {
            w.insert(Tli(1), Xid(x), RecordBody::Commit);
        }
        w.flush_upto(w.end());
        w.refresh_implied();
        assert!(w.remove_before(Lsn(seg)).is_some());
        assert!(w.first_index() > 0);
        assert!(w.implied().is_some(), "still covers every record");
        ins(&mut w, 4, 800, 4);
        w.refresh_implied();
        assert_eq!(rows(&w), [(1, 10), (3, 99)], "xid 800 did not commit");
        w.insert(Tli(1), Xid(800), RecordBody::Commit);
        w.refresh_implied();
        assert_eq!(rows(&w), [(1, 10), (3, 99), (4, 40)]);
        assert!(w.implied().unwrap().is_committed(Xid(799)) && !w.implied().unwrap().is_committed(Xid(801)));
    }

    /// The flags and noun checkpoint log lines print (LogCheckpointStart:
    /// "checkpoint starting: time", "end-of-recovery immediate wait",
    /// "shutdown immediate"; restartpoints say "restartpoint").
    #[test]
    fn checkpoint_kinds_print_as_postgresql_logs_them() {
        use CkptKind as K;
        let all = [K::Online, K::Restartpoint, K::EndOfRecovery, K::ShutdownRestartpoint, K::Shutdown];
        assert_eq!(
            all.map(|k| (k.flags(), k.noun(), k.is_restartpoint())),
            [
                ("time", "checkpoint", false),
                ("time", "restartpoint", true),
                ("end-of-recovery immediate wait", "checkpoint", false),
                ("shutdown immediate", "restartpoint", true),
                ("shutdown immediate", "checkpoint", false),
            ]
        );
    }

    /// The implied-table cache after truncation: records replaced by others
    /// (a crash losing WAL, then new WAL) must not leave the lost ones'
    /// effects behind, even when the record count comes back to where the
    /// cache was; truncating nothing, or removing every segment the cache
    /// covers, keeps it.
    #[test]
    fn the_implied_cache_forgets_truncated_records() {
        let mut w = Wal::new(WalGeometry::new(1 << 14));
        let tuple = Tuple { key: 1, payload: 10, xmin: Xid(3), xmax: Xid::INVALID, infomask: 0 };
        w.insert(Tli(1), Xid(0), RecordBody::Abort);
        let kept = w.end();
        w.insert(
            Tli(1),
            Xid(3),
            RecordBody::HeapInsert { block: BlockNumber(0), offnum: 1, tuple, image: None },
        );
        w.insert(Tli(1), Xid(3), RecordBody::Commit);
        w.refresh_implied();
        let rows = |w: &Wal| w.implied().map(|i| i.visible_rows_of_block(BlockNumber(0)).collect::<Vec<_>>());
        assert_eq!(rows(&w), Some(vec![(1, 10)]));
        w.truncate(w.end());
        assert_eq!(rows(&w), Some(vec![(1, 10)]), "nothing truncated: still valid");
        w.truncate(kept);
        w.insert(Tli(1), Xid(4), RecordBody::Abort);
        w.insert(Tli(1), Xid(5), RecordBody::Abort);
        assert_eq!(w.end_index(), 3);
        assert_eq!(rows(&w), None, "the cache was of other records");
        w.refresh_implied();
        assert_eq!(rows(&w), Some(vec![]));
        assert!(!w.implied().unwrap().is_committed(Xid(3)));
        // Every record removed with its segment: the cache still covers it.
        w.insert(
            Tli(1),
            Xid(3),
            RecordBody::HeapInsert { block: BlockNumber(0), offnum: 1, tuple, image: None },
        );
        w.insert(Tli(1), Xid(3), RecordBody::Commit);
        w.insert(Tli(1), Xid(0), RecordBody::Switch);
        w.flush_upto(w.end());
        w.refresh_implied();
        assert!(w.remove_before(w.end()).is_some());
        assert_eq!((w.first_index(), w.end_index()), (6, 6));
        assert_eq!(rows(&w), Some(vec![(1, 10)]));
    }
}
