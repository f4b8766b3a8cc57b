//! The commit log (clog.c, slru.c): two bits of status per transaction in
//! pages that are files too.
//!
//! Each CLOG page carries a group LSN: the latest commit record whose
//! status it holds. Like a data page, a CLOG page may reach disk only after
//! WAL is flushed up to that LSN (SlruPhysicalWritePage), which matters for
//! asynchronous commits. All pages stay in memory (the SLRU is assumed big
//! enough); they are written by checkpoints.

use crate::ids::{BlockNumber, Xid};
use crate::lsn::Lsn;
use crate::storage::{BlockFile, HasLsn};

/// `XidStatus`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub enum XidStatus {
    #[default]
    InProgress,
    Committed,
    Aborted,
}

/// One CLOG page.
#[derive(Default, PartialEq, Eq, Hash, Debug)]
pub struct ClogPage {
    pub status: Vec<XidStatus>,
    pub lsn: Lsn,
}

/// `Clone` by hand for a `clone_from` that reuses the page's storage: a
/// restart reloads every CLOG page, and the CLOG grows with the run
/// (issue 11: allocating each page anew was most of a long run's time).
impl Clone for ClogPage {
    fn clone(&self) -> ClogPage {
        ClogPage { status: self.status.clone(), lsn: self.lsn }
    }

    fn clone_from(&mut self, source: &ClogPage) {
        self.status.clone_from(&source.status);
        self.lsn = source.lsn;
    }
}

impl HasLsn for ClogPage {
    fn lsn(&self) -> Lsn {
        self.lsn
    }
}

/// The CLOG of a node: shared-memory pages and the `pg_xact` file.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Clog {
    xids_per_page: u32,
    pages: Vec<ClogPage>,
    dirty: Vec<bool>,
    pub file: BlockFile<ClogPage>,
}

impl Clog {
    pub fn new(xids_per_page: u32) -> Clog {
        Clog { xids_per_page, pages: Vec::new(), dirty: Vec::new(), file: BlockFile::new(0) }
    }

    fn locate(&self, xid: Xid) -> (usize, usize) {
        let per = self.xids_per_page as usize;
        (xid.index() / per, xid.index() % per)
    }

    /// The page that holds `xid`'s status (`TransactionIdToPage`).
    pub fn page_of(&self, xid: Xid) -> BlockNumber {
        BlockNumber::from_index(self.locate(xid).0)
    }

    pub fn get(&self, xid: Xid) -> XidStatus {
        let (p, i) = self.locate(xid);
        self.pages.get(p).map_or(XidStatus::InProgress, |pg| pg.status[i])
    }

    /// `TransactionIdSetTreeStatus`: records the status, raising the page's
    /// group LSN to the commit record's end.
    pub fn set(&mut self, xid: Xid, status: XidStatus, lsn: Lsn) {
        let (p, i) = self.locate(xid);
        while self.pages.len() <= p {
            // ExtendCLOG: a zeroed page, also in the file so reads find it.
            let zero =
                ClogPage { status: vec![XidStatus::InProgress; self.xids_per_page as usize], lsn: Lsn(0) };
            self.file.extend(zero.clone());
            self.pages.push(zero);
            self.dirty.push(false);
        }
        let pg = &mut self.pages[p];
        pg.status[i] = status;
        pg.lsn = pg.lsn.max(lsn);
        self.dirty[p] = true;
    }

    /// Pages changed since they were last written, lowest first.
    pub fn dirty_pages(&self) -> impl Iterator<Item = BlockNumber> + '_ {
        self.dirty.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| BlockNumber::from_index(i))
    }

    pub fn page(&self, p: BlockNumber) -> &ClogPage {
        &self.pages[p.index()]
    }

    /// `SlruPhysicalWritePage` (the caller has applied the WAL rule).
    pub fn write_page(&mut self, p: BlockNumber) {
        self.file.write_from(p, &self.pages[p.index()]);
        self.dirty[p.index()] = false;
    }

    /// Shared memory lost: reload every page from the file (OS cache).
    pub fn reload(&mut self) {
        // Copied into the pages' existing storage (no allocation per page).
        let n = self.file.len() as usize;
        self.pages.truncate(n);
        for p in 0..n {
            let src = self.file.read(BlockNumber::from_index(p));
            match self.pages.get_mut(p) {
                Some(pg) => pg.clone_from(src),
                None => self.pages.push(src.clone()),
            }
        }
        self.dirty.clear();
        self.dirty.resize(n, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_survives_only_when_written() {
        let mut c = Clog::new(4);
        c.set(Xid(5), XidStatus::Committed, Lsn(100));
        assert_eq!(c.get(Xid(5)), XidStatus::Committed);
        assert_eq!(c.dirty_pages().collect::<Vec<_>>(), vec![BlockNumber(1)]);
        c.write_page(BlockNumber(1));
        c.set(Xid(6), XidStatus::Aborted, Lsn(0));
        c.reload();
        assert_eq!(c.get(Xid(5)), XidStatus::Committed);
        assert_eq!(c.get(Xid(6)), XidStatus::InProgress);
        assert_eq!(c.get(Xid(1000)), XidStatus::InProgress);
    }

    /// TransactionIdToPage / TransactionIdToPgIndex: with 4 transactions
    /// per page, xid 9 is entry 1 of page 2. A page's group LSN only
    /// rises, and a written page is clean until set again.
    #[test]
    fn pages_hold_xids_per_page_and_the_highest_lsn() {
        let mut c = Clog::new(4);
        assert_eq!(c.page_of(Xid(3)), BlockNumber(0));
        assert_eq!(c.page_of(Xid(4)), BlockNumber(1));
        assert_eq!(c.page_of(Xid(9)), BlockNumber(2));
        c.set(Xid(9), XidStatus::Committed, Lsn(300));
        assert_eq!(c.file.len(), 3, "ExtendCLOG zeroes every page up to xid 9's");
        assert_eq!(c.dirty_pages().collect::<Vec<_>>(), [BlockNumber(2)]);
        assert_eq!(
            c.page(BlockNumber(2)).status,
            [XidStatus::InProgress, XidStatus::Committed, XidStatus::InProgress, XidStatus::InProgress]
        );
        assert_eq!(c.get(Xid(8)), XidStatus::InProgress);
        assert_eq!(c.get(Xid(10)), XidStatus::InProgress);
        assert_eq!(c.get(Xid(1)), XidStatus::InProgress);
        c.set(Xid(8), XidStatus::Aborted, Lsn(0));
        assert_eq!(c.page(BlockNumber(2)).lsn, Lsn(300), "an abort does not lower the group LSN");
        assert_eq!(c.page(BlockNumber(2)).lsn(), Lsn(300));
        c.set(Xid(1), XidStatus::Committed, Lsn(200));
        assert_eq!(c.get(Xid(1)), XidStatus::Committed);
        assert_eq!(c.get(Xid(9)), XidStatus::Committed);
        assert_eq!(c.get(Xid(8)), XidStatus::Aborted);
        assert_eq!(c.dirty_pages().collect::<Vec<_>>(), [BlockNumber(0), BlockNumber(2)]);
        c.write_page(BlockNumber(2));
        assert_eq!(c.dirty_pages().collect::<Vec<_>>(), [BlockNumber(0)]);
        assert_eq!(c.file.read(BlockNumber(2)), c.page(BlockNumber(2)));
        assert_eq!(c.file.max_lsn_os(), Lsn(300), "the file knows the written page's LSN");
        let copy = c.page(BlockNumber(2)).clone();
        assert_eq!(&copy, c.page(BlockNumber(2)));
        // Shared memory lost: page 0's unwritten commit is gone, page 2's
        // written statuses remain, nothing is dirty.
        c.reload();
        assert_eq!(c.get(Xid(1)), XidStatus::InProgress);
        assert_eq!((c.get(Xid(8)), c.get(Xid(9))), (XidStatus::Aborted, XidStatus::Committed));
        assert_eq!(c.dirty_pages().count(), 0);
    }
}
