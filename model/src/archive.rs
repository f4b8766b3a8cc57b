//! The WAL archive's data (xlogarchive.c's files, pg_wal/archive_status):
//! the store all nodes share and each node's `.ready`/`.done` state. Data
//! only, so `node` and `cluster` can hold it without importing the
//! functions in `xlogarchive` (no import cycle, model/tests/import_graph.rs).

use crate::lsn::{Lsn, Tli, WalGeometry};
use crate::timeline::{History, HistoryEntry};
use crate::wal::Record;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `NUM_ARCHIVE_RETRIES`: failures in a row before the archiver gives up
/// for a while ("failed too many times, will try again later").
pub const NUM_ARCHIVE_RETRIES: u32 = 3;

/// A file in the archive.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ArchivedFile {
    /// A WAL segment: the records that start in it.
    Segment(Arc<[Record]>),
    /// A timeline history file.
    History(Vec<HistoryEntry>),
}

/// The archive directory all nodes' `archive_command` copy into and their
/// `restore_command` read from, keyed by file name.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct Archive {
    files: BTreeMap<String, ArchivedFile>,
}

impl Archive {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// File names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<&ArchivedFile> {
        self.files.get(name)
    }

    /// `cp %p /archive/%f`: a file of the same name is overwritten.
    pub fn store(&mut self, name: String, file: ArchivedFile) {
        self.files.insert(name, file);
    }

    /// The records of segment file `name`, if archived.
    pub fn segment(&self, name: &str) -> Option<&[Record]> {
        match self.files.get(name) {
            Some(ArchivedFile::Segment(r)) => Some(r),
            _ => None,
        }
    }

    /// The entries of `%08X.history` for `tli`, if archived.
    pub fn history(&self, tli: Tli) -> Option<&[HistoryEntry]> {
        match self.files.get(&History::file_name(tli)) {
            Some(ArchivedFile::History(e)) => Some(e),
            _ => None,
        }
    }

    /// findNewestTimeLine's probe of the archive: starting after `from`,
    /// the last timeline whose history file the archive has (probing
    /// `from + 1`, `from + 2`, ... until one is missing). Returns the
    /// timelines found.
    pub fn newer_timelines(&self, from: Tli) -> Vec<Tli> {
        (from.0 + 1..).map(Tli).take_while(|&t| self.history(t).is_some()).collect()
    }

    /// XLogFileReadAnyTLI: the segment `segno` as the reader of `target`'s
    /// history finds it: the file of the newest timeline of that history
    /// that began at or before the segment. Returns its name and records.
    pub fn read_any_tli(
        &self,
        g: &WalGeometry,
        history: &History,
        target: Tli,
        segno: u64,
    ) -> Option<(String, &[Record])> {
        let entries = history.entries(target);
        // Timeline `target` began where its parent ended; each ancestor
        // where its own parent ended (the first at 0).
        let mut begins: Vec<(Tli, Lsn)> = Vec::with_capacity(entries.len() + 1);
        let mut begin = Lsn(0);
        for e in entries {
            begins.push((e.tli, begin));
            begin = e.switchpoint;
        }
        begins.push((target, begin));
        let start = Lsn(segno * g.segment_size());
        for &(tli, begin) in begins.iter().rev() {
            if g.segno(begin) <= segno {
                let name = g.wal_file_name(tli, start);
                if let Some(r) = self.segment(&name) {
                    return Some((name, r));
                }
            }
        }
        None
    }
}

/// A file with a `.ready` status file (pgarch_readyXlog's pick).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReadyFile {
    History(Tli),
    Segment(u64),
}

/// A node's `pg_wal/archive_status` and its archiver.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct ArchiveStatus {
    /// Segments before this one are `.done` (or were never this node's to
    /// archive); from it up to the last completely flushed segment,
    /// `.ready` while the node archives.
    pub next_seg: u64,
    /// History files marked `.ready`, oldest first.
    pub history_ready: Vec<Tli>,
    /// `archive_command` failures in a row on the current file.
    pub failures: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Xid;
    use crate::wal::{RecordBody, Wal};

    #[test]
    fn read_any_tli_prefers_the_newest_timeline_covering_the_segment() {
        let g = WalGeometry::new(1 << 14);
        let mut w = Wal::new(g);
        for _ in 0..3 {
            w.insert(Tli(1), Xid(3), RecordBody::Commit);
        }
        let recs: Arc<[Record]> = w.records().to_vec().into();
        let mut a = Archive::default();
        a.store(g.wal_file_name(Tli(1), Lsn(0)), ArchivedFile::Segment(recs.clone()));
        a.store(g.wal_file_name(Tli(1), Lsn(1 << 14)), ArchivedFile::Segment(recs.clone()));
        a.store(g.wal_file_name(Tli(2), Lsn(1 << 14)), ArchivedFile::Segment(recs));
        let mut h = History::default();
        // Timeline 2 began in segment 1.
        h.add_child(Tli(2), Tli(1), Lsn((1 << 14) + 100), "x");
        assert_eq!(a.read_any_tli(&g, &h, Tli(2), 0).unwrap().0, "000000010000000000000000");
        assert_eq!(a.read_any_tli(&g, &h, Tli(2), 1).unwrap().0, "000000020000000000000001");
        assert_eq!(a.read_any_tli(&g, &h, Tli(1), 1).unwrap().0, "000000010000000000000001");
        assert!(a.read_any_tli(&g, &h, Tli(2), 2).is_none());
        assert_eq!(a.history(Tli(2)), None, "no history file archived yet");
        a.store(History::file_name(Tli(2)), ArchivedFile::History(h.entries(Tli(2)).to_vec()));
        assert_eq!(a.newer_timelines(Tli(1)), vec![Tli(2)]);
        assert!(a.newer_timelines(Tli(2)).is_empty());
    }

    #[test]
    fn the_archive_is_a_directory_of_named_files_overwritten_by_name() {
        let g = WalGeometry::new(1 << 14);
        let mut w = Wal::new(g);
        w.insert(Tli(1), Xid(3), RecordBody::Commit);
        let recs: Arc<[Record]> = w.records().to_vec().into();
        let mut a = Archive::default();
        assert!(a.is_empty(), "a new archive holds no file");
        assert_eq!(a.names().count(), 0);
        let seg0 = g.wal_file_name(Tli(1), Lsn(0));
        let seg1 = g.wal_file_name(Tli(1), Lsn(1 << 14));
        // Stored out of order: names() lists them in file-name order,
        // which for WAL files is timeline then segment order.
        a.store(seg1.clone(), ArchivedFile::Segment(recs.clone()));
        a.store(seg0.clone(), ArchivedFile::Segment(Arc::from(Vec::new())));
        assert!(!a.is_empty());
        assert_eq!(a.names().collect::<Vec<_>>(), ["000000010000000000000000", "000000010000000000000001"]);
        assert_eq!(a.get(&seg1), Some(&ArchivedFile::Segment(recs.clone())));
        assert_eq!(a.get("000000010000000000000002"), None);
        // `cp` over an existing name replaces the file.
        a.store(seg0.clone(), ArchivedFile::Segment(recs.clone()));
        assert_eq!(a.names().count(), 2);
        assert_eq!(a.segment(&seg0).map(<[Record]>::len), Some(1));
        // A history file is not a segment, and a segment not a history.
        let mut h = History::default();
        h.add_child(Tli(2), Tli(1), Lsn(100), "x");
        a.store(History::file_name(Tli(2)), ArchivedFile::History(h.entries(Tli(2)).to_vec()));
        assert_eq!(a.segment("00000002.history"), None);
        assert_eq!(a.history(Tli(2)).map(<[HistoryEntry]>::len), Some(1));
        a.store(History::file_name(Tli(3)), ArchivedFile::Segment(recs));
        assert_eq!(a.history(Tli(3)), None);
        assert_eq!(a.names().nth(2), Some("00000002.history"));
        assert_eq!(a.names().count(), 4);
    }
}
