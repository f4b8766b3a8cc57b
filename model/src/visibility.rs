//! Tuple visibility and hint bits (heapam_visibility.c): whether a
//! transaction counts as committed (TransactionIdIsInProgress, then the
//! CLOG), `SetHintBits` and its full-page image under `wal_log_hints`, and
//! the rows a query sees (HeapTupleSatisfiesMVCC).

use crate::clog::XidStatus;
use crate::heap::{
    HEAP_XMAX_COMMITTED, HEAP_XMAX_INVALID, HEAP_XMIN_COMMITTED, HEAP_XMIN_INVALID, Page, Row,
};
use crate::ids::{BlockNumber, Xid};
use crate::log::Process;
use crate::node::{Ctx, Node};
use crate::slog;
use crate::wal::RecordBody;

impl Node {
    /// Committed and no longer running (what a reader may treat as
    /// committed: TransactionIdIsInProgress first, then the CLOG).
    pub fn xid_committed(&self, xid: Xid) -> bool {
        !self.running.contains(&xid) && self.clog.get(xid) == XidStatus::Committed
    }

    /// Ended without committing, or crashed while in progress.
    pub fn xid_aborted(&self, xid: Xid) -> bool {
        !self.running.contains(&xid) && self.clog.get(xid) != XidStatus::Committed
    }

    /// `SetHintBits` for every tuple of the page in frame `f`: a reader
    /// caches commit status in the tuple. Not WAL-logged, except that with
    /// `wal_log_hints` the first hint change after a checkpoint logs a
    /// full-page image (MarkBufferDirtyHint, XLogSaveBufferForHint).
    pub fn set_hint_bits(&mut self, f: usize, proc: Process, ctx: &mut Ctx<'_>) {
        let mut changed = false;
        let tuples = self.buffers.frame(f).page.tuples.len();
        for t in 0..tuples {
            let tup = self.buffers.frame(f).page.tuples[t];
            let mut mask = tup.infomask;
            if mask & (HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID) == 0 {
                if self.hint_committed(tup.xmin, ctx) {
                    mask |= HEAP_XMIN_COMMITTED;
                } else if self.xid_aborted(tup.xmin) && !self.xid_in_progress(tup.xmin) {
                    mask |= HEAP_XMIN_INVALID;
                }
            }
            if tup.xmax.is_valid() && mask & (HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID) == 0 {
                if self.hint_committed(tup.xmax, ctx) {
                    mask |= HEAP_XMAX_COMMITTED;
                } else if self.xid_aborted(tup.xmax) && !self.xid_in_progress(tup.xmax) {
                    mask |= HEAP_XMAX_INVALID;
                }
            }
            if mask != tup.infomask {
                self.buffers.frame_mut(f).page.tuples[t].infomask = mask;
                changed = true;
            }
        }
        if !changed {
            return;
        }
        let needs_fpi = ctx.env.settings.wal_log_hints && self.buffers.frame(f).page.lsn <= self.redo_ptr;
        if needs_fpi && !self.in_recovery() {
            let blk = self.buffers.frame(f).tag.expect("resident");
            let image = std::sync::Arc::new(self.buffers.frame(f).page.clone());
            let end = self.xlog_insert(Xid::INVALID, RecordBody::FpiForHint { block: blk, image }).end;
            self.buffers.frame_mut(f).page.lsn = end;
            slog!(
                ctx.log,
                self.id,
                proc,
                Debug,
                "logged full-page image of block {} for hint bits, ending at {}",
                blk,
                end
            );
        }
        self.buffers.frame_mut(f).dirty = true;
    }

    /// A transaction that has not ended (running, or in the CLOG as in
    /// progress and not yet known to be dead).
    fn xid_in_progress(&self, xid: Xid) -> bool {
        self.running.contains(&xid)
    }

    /// Whether a hint bit "committed" may be set for `xid`: committed, and
    /// (the rule) its commit record is flushed, since a hint must never
    /// outlive a commit that a crash could lose.
    fn hint_committed(&self, xid: Xid, ctx: &Ctx<'_>) -> bool {
        if !self.xid_committed(xid) {
            return false;
        }
        if !ctx.env.settings.rules.hint_bits_wait_for_commit_flush {
            return true;
        }
        let group_lsn = self.clog.page(self.clog.page_of(xid)).lsn;
        !self.wal.needs_flush(group_lsn)
    }

    /// The page a reader sees: the buffer if resident, else the OS cache.
    pub fn current_page(&self, blk: BlockNumber) -> &Page {
        self.buffers.resident_page(blk).unwrap_or_else(|| self.data.read(blk))
    }

    /// The table's rows as a query would see them once nothing is running:
    /// hint bits first, then the CLOG (HeapTupleSatisfiesMVCC). Sorted.
    pub fn visible_rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for blk in BlockNumber::all(self.data.len()) {
            rows.extend(self.visible_rows_of_page(self.current_page(blk)));
        }
        rows.sort_unstable();
        rows
    }

    /// The rows of `page` a query would see, in page order (what
    /// [`Node::visible_rows`] collects from every block).
    pub fn visible_rows_of_page<'a>(&'a self, page: &'a Page) -> impl Iterator<Item = Row> + 'a {
        page.tuples.iter().filter_map(move |t| {
            let xmin_ok = if t.infomask & HEAP_XMIN_COMMITTED != 0 {
                true
            } else if t.infomask & HEAP_XMIN_INVALID != 0 {
                false
            } else {
                self.xid_committed(t.xmin)
            };
            let deleted = t.xmax.is_valid()
                && if t.infomask & HEAP_XMAX_COMMITTED != 0 {
                    true
                } else if t.infomask & HEAP_XMAX_INVALID != 0 {
                    false
                } else {
                    self.xid_committed(t.xmax)
                };
            (xmin_ok && !deleted).then_some((t.key, t.payload))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::quiesced;

    /// SetHintBits on a page whose hints were cleared: every committed
    /// xmin and xmax gets its "committed" hint, every aborted one its
    /// "invalid" hint, and the buffer is dirtied; a second call changes
    /// nothing.
    #[test]
    fn set_hint_bits_caches_each_ended_transaction() {
        let mut c = quiesced(0, 400);
        let frames: Vec<usize> = (0..c.nodes[0].buffers.frames().len())
            .filter(|&f| !c.nodes[0].buffers.frame(f).page.tuples.is_empty())
            .collect();
        assert!(!frames.is_empty());
        // One tuple deleted by a transaction that aborted.
        let aborted = Xid(100_000);
        let n = &mut c.nodes[0];
        n.clog.set(aborted, crate::clog::XidStatus::Aborted, crate::lsn::Lsn(0));
        let t =
            n.buffers.frame_mut(frames[0]).page.tuples.iter_mut().find(|t| t.xmax == Xid::INVALID).unwrap();
        t.xmax = aborted;
        let (mut xmin_hinted, mut xmax_hinted, mut xmax_invalid) = (0, 0, 0);
        for f in frames {
            let n = &mut c.nodes[0];
            for t in &mut n.buffers.frame_mut(f).page.tuples {
                t.infomask = 0;
            }
            n.buffers.frame_mut(f).dirty = false;
            c.with_node(0, |n, ctx| n.set_hint_bits(f, Process::Backend(0), ctx));
            let n = &c.nodes[0];
            assert!(n.buffers.frame(f).dirty);
            for t in &n.buffers.frame(f).page.tuples {
                let mut want = 0;
                if n.xid_committed(t.xmin) {
                    want |= HEAP_XMIN_COMMITTED;
                    xmin_hinted += 1;
                } else if n.xid_aborted(t.xmin) {
                    want |= HEAP_XMIN_INVALID;
                }
                if t.xmax.is_valid() && n.xid_committed(t.xmax) {
                    want |= HEAP_XMAX_COMMITTED;
                    xmax_hinted += 1;
                } else if t.xmax.is_valid() && n.xid_aborted(t.xmax) {
                    want |= HEAP_XMAX_INVALID;
                    xmax_invalid += 1;
                }
                assert_eq!(t.infomask, want, "{t:?}");
            }
            c.nodes[0].buffers.frame_mut(f).dirty = false;
            c.with_node(0, |n, ctx| n.set_hint_bits(f, Process::Backend(0), ctx));
            assert!(!c.nodes[0].buffers.frame(f).dirty, "nothing new to hint");
        }
        assert!(
            xmin_hinted > 0 && xmax_hinted > 0 && xmax_invalid > 0,
            "{xmin_hinted} {xmax_hinted} {xmax_invalid}"
        );
    }

    use crate::heap::Tuple;
    use crate::ids::NodeId;
    use crate::lsn::Lsn;
    use crate::settings::Settings;

    /// A fresh node (block data in the OS cache) with xid 10 committed
    /// (its commit flushed), 11 aborted, 12 running.
    fn node() -> Node {
        let mut n = Node::initdb(NodeId(0), &Settings::default());
        n.status = crate::node::Status::Production;
        let flushed = n.wal.flush_lsn();
        n.clog.set(Xid(10), XidStatus::Committed, flushed);
        n.clog.set(Xid(11), XidStatus::Aborted, Lsn(0));
        n.running.push(Xid(12));
        n
    }

    fn tup(key: u32, xmin: u32, xmax: u32, infomask: u8) -> Tuple {
        Tuple { key, payload: u64::from(key) * 100, xmin: Xid(xmin), xmax: Xid(xmax), infomask }
    }

    /// HeapTupleSatisfiesMVCC: a hint bit, when set, is believed over the
    /// CLOG; without one, a running transaction counts as not committed.
    #[test]
    fn visibility_believes_hint_bits_then_the_clog() {
        let n = node();
        let page = Page {
            lsn: Lsn(0),
            tuples: vec![
                tup(1, 10, 0, 0),                    // committed insert: seen
                tup(2, 11, 0, 0),                    // aborted insert
                tup(3, 11, 0, HEAP_XMIN_COMMITTED),  // hint says committed: seen
                tup(4, 10, 0, HEAP_XMIN_INVALID),    // hint says aborted
                tup(5, 10, 10, 0),                   // deleted by a commit
                tup(6, 10, 10, HEAP_XMAX_INVALID),   // hint: the delete aborted: seen
                tup(7, 10, 11, HEAP_XMAX_COMMITTED), // hint: the delete committed
                tup(8, 10, 11, 0),                   // the delete aborted: seen
                tup(9, 12, 0, 0),                    // inserter still running
                tup(10, 10, 12, 0),                  // deleter still running: seen
            ],
        };
        let keys: Vec<u32> = n.visible_rows_of_page(&page).map(|r| r.0).collect();
        assert_eq!(keys, [1, 3, 6, 8, 10]);
        assert!(n.xid_committed(Xid(10)) && !n.xid_committed(Xid(11)) && !n.xid_committed(Xid(12)));
        assert!(n.xid_aborted(Xid(11)) && !n.xid_aborted(Xid(10)) && !n.xid_aborted(Xid(12)));
    }

    /// A query reads a resident block from its buffer, any other from the
    /// OS cache, and returns the rows of all blocks sorted.
    #[test]
    fn visible_rows_read_buffers_first_and_are_sorted() {
        let mut n = node();
        let on_disk = |key| Page { lsn: Lsn(0), tuples: vec![tup(key, 10, 0, 0)] };
        n.data.write(BlockNumber(2), on_disk(50));
        n.data.write(BlockNumber(5), on_disk(20));
        n.data.write(BlockNumber(7), on_disk(30));
        let f = n.buffers.take_victim();
        n.buffers.install(f, BlockNumber(7), on_disk(31));
        assert_eq!(n.current_page(BlockNumber(7)).tuples[0].key, 31);
        assert_eq!(n.current_page(BlockNumber(5)).tuples[0].key, 20);
        assert_eq!(n.visible_rows(), [(20, 2000), (31, 3100), (50, 5000)]);
    }

    /// SetHintBits may mark a commit only once its commit record is
    /// flushed (rule `hint_bits_wait_for_commit_flush`): else a crash
    /// could lose the commit but keep the hint.
    #[test]
    fn a_commit_is_hinted_only_once_its_record_is_flushed() {
        for rule in [true, false] {
            let mut s = Settings::default();
            s.rules.hint_bits_wait_for_commit_flush = rule;
            let mut n = node();
            let tli = n.tli;
            let end = n.wal.insert(tli, Xid(13), RecordBody::Commit).end;
            n.clog.set(Xid(13), XidStatus::Committed, end);
            let f = n.buffers.take_victim();
            n.buffers.install(f, BlockNumber(1), Page { lsn: Lsn(0), tuples: vec![tup(1, 13, 0, 0)] });
            let ((), lines) =
                crate::testkit::on_node(&s, &mut n, |n, ctx| n.set_hint_bits(f, Process::Backend(0), ctx));
            let mask = n.buffers.frame(f).page.tuples[0].infomask;
            assert!(lines.is_empty());
            if rule {
                assert_eq!(mask, 0, "commit record not flushed: no hint");
                assert!(!n.buffers.frame(f).dirty);
                n.wal.flush_upto(end);
                crate::testkit::on_node(&s, &mut n, |n, ctx| n.set_hint_bits(f, Process::Backend(0), ctx));
                assert_eq!(n.buffers.frame(f).page.tuples[0].infomask, HEAP_XMIN_COMMITTED);
            } else {
                assert_eq!(mask, HEAP_XMIN_COMMITTED);
            }
            assert!(n.buffers.frame(f).dirty);
        }
    }

    /// With `wal_log_hints`, the first hint change to a page since REDO
    /// (page LSN at or before it) logs a full-page image and the page
    /// takes its LSN; a later one does not, nor does a server in
    /// recovery (it cannot write WAL).
    #[test]
    fn wal_log_hints_logs_an_image_on_the_first_hint_since_redo() {
        let s = Settings { wal_log_hints: true, ..Settings::default() };
        let mut n = node();
        let f = n.buffers.take_victim();
        let page = |lsn| Page { lsn, tuples: vec![tup(1, 10, 0, 0)] };
        n.redo_ptr = Lsn(0x40);
        n.buffers.install(f, BlockNumber(1), page(Lsn(0x40)));
        let wal_end = n.wal.end();
        let ((), lines) =
            crate::testkit::on_node(&s, &mut n, |n, ctx| n.set_hint_bits(f, Process::Backend(3), ctx));
        let rec = n.wal.records().last().unwrap();
        assert_eq!((rec.lsn, rec.body.name()), (wal_end, "XLOG/FPI_FOR_HINT"));
        assert!(
            matches!(&rec.body, RecordBody::FpiForHint { block: BlockNumber(1), image } if image.tuples[0].infomask == HEAP_XMIN_COMMITTED)
        );
        assert_eq!(n.buffers.frame(f).page.lsn, rec.end);
        assert_eq!(
            lines,
            [format!("logged full-page image of block 1 for hint bits, ending at {}", rec.end)]
        );

        // Past REDO: the hint needs no image.
        let mut n = node();
        n.redo_ptr = Lsn(0x40);
        n.buffers.install(f, BlockNumber(1), page(Lsn(0x41)));
        let wal_end = n.wal.end();
        crate::testkit::on_node(&s, &mut n, |n, ctx| n.set_hint_bits(f, Process::Backend(3), ctx));
        assert_eq!((n.wal.end(), n.buffers.frame(f).page.lsn), (wal_end, Lsn(0x41)));
        assert!(n.buffers.frame(f).dirty);

        // In recovery: no WAL.
        let mut n = node();
        n.status = crate::node::Status::Recovery;
        n.redo_ptr = Lsn(0x40);
        n.buffers.install(f, BlockNumber(1), page(Lsn(0x40)));
        crate::testkit::on_node(&s, &mut n, |n, ctx| n.set_hint_bits(f, Process::Backend(3), ctx));
        assert_eq!(n.wal.end(), wal_end);
        assert_eq!(n.buffers.frame(f).page.tuples[0].infomask, HEAP_XMIN_COMMITTED);
    }

    /// A hint bit once set is believed, never re-derived from the CLOG:
    /// SetHintBits only looks at a tuple's xmin (xmax) while neither of
    /// its two hints is set, so a page carrying hints that disagree with
    /// this node's CLOG (a page image from another history) keeps them.
    #[test]
    fn set_hints_are_not_recomputed() {
        let s = Settings::default();
        let mut n = node();
        let f = n.buffers.take_victim();
        let tuples = vec![
            tup(1, 11, 0, HEAP_XMIN_COMMITTED), // CLOG: aborted
            tup(2, 10, 0, HEAP_XMIN_INVALID),   // CLOG: committed
            tup(3, 10, 11, HEAP_XMIN_COMMITTED | HEAP_XMAX_COMMITTED),
            tup(4, 10, 10, HEAP_XMIN_COMMITTED | HEAP_XMAX_INVALID),
        ];
        n.buffers.install(f, BlockNumber(1), Page { lsn: Lsn(0), tuples: tuples.clone() });
        crate::testkit::on_node(&s, &mut n, |n, ctx| n.set_hint_bits(f, Process::Backend(0), ctx));
        assert_eq!(n.buffers.frame(f).page.tuples, tuples);
        assert!(!n.buffers.frame(f).dirty, "nothing changed");
    }

    /// A delete committed but not yet flushed gets no hint at all: not
    /// "committed" (the rule), and certainly not "invalid" (it did not
    /// abort), or the deleted row would come back.
    #[test]
    fn an_unflushed_delete_gets_no_xmax_hint() {
        let s = Settings::default();
        let mut n = node();
        let tli = n.tli;
        let end = n.wal.insert(tli, Xid(13), RecordBody::Commit).end;
        n.clog.set(Xid(13), XidStatus::Committed, end);
        let f = n.buffers.take_victim();
        n.buffers.install(f, BlockNumber(1), Page { lsn: Lsn(0), tuples: vec![tup(1, 10, 13, 0)] });
        crate::testkit::on_node(&s, &mut n, |n, ctx| n.set_hint_bits(f, Process::Backend(0), ctx));
        // (No xmin hint either: xid 10 shares the CLOG page, whose group
        // LSN is now that of the unflushed commit.)
        assert_eq!(n.buffers.frame(f).page.tuples[0].infomask, 0);
        assert!(n.visible_rows_of_page(&n.buffers.frame(f).page).next().is_none(), "deleted");
    }
}
