//! The WAL archive all nodes share (xlogarchive.c, pgarch.c, shell_archive.c).
//!
//! With `archive_mode` on, a server not in recovery marks each segment it
//! has completely flushed `.ready` (XLogArchiveNotifySeg, from XLogWrite),
//! and so the history file of a timeline it creates (writeTimeLineHistory).
//! The archiver (pgarch_ArchiverCopyLoop) copies one `.ready` file per
//! event into the archive with `archive_command` (`cp %p /archive/%f`) and
//! marks it `.done`; history files go first (pgarch_readyXlog). When the
//! scheduler runs the archiver is its choice, so the archive lags by as
//! much as the schedule lets it; a failing `archive_command` is a fault
//! (`faults.archive_command`), logged as PostgreSQL 15 logs it.
//! RemoveOldXlogFiles removes no segment still `.ready`
//! (XLogArchiveCheckDone).
//!
//! With `restore_command`, recovery reads the archive: a standby whose
//! local WAL is used up restores the next segment from it before it
//! streams (WaitForWALToBecomeAvailable tries XLOG_FROM_ARCHIVE first, and
//! again after streaming fails — "requested WAL segment ... has already
//! been removed"), choosing the file of the newest timeline of its
//! recovery target's history that covers the segment (XLogFileReadAnyTLI);
//! findNewestTimeLine and rescanLatestTimeLine see history files in the
//! archive; pg_rewind's `--restore-target-wal` reads the target's missing
//! WAL from it.
//!
//! Archived segments are kept as the records that start in them: the
//! model's WAL is records, not bytes (docs/model.md).

use crate::archive::ReadyFile;
use crate::cluster::Cluster;
use crate::log::Process;
use crate::lsn::Lsn;
use crate::node::{Node, NodeId, Status};
use crate::settings::{ArchiveMode, Settings};
use crate::slog;
use crate::timeline::History;
use crate::violation::{Invariant, Violation};
use crate::wal::Record;

impl Node {
    /// XLogArchivingActive for this server now: the archiver runs (and
    /// marks segments `.ready`) on a server not in recovery with
    /// `archive_mode = on`, on any running server with `always`.
    pub fn archiving_active(&self, settings: &Settings) -> bool {
        match settings.archive_mode {
            ArchiveMode::Off => false,
            ArchiveMode::On => self.is_primary_or_shutting_down(),
            ArchiveMode::Always => self.status != Status::Down,
        }
    }

    /// The file the archiver would archive next (history files first,
    /// then the oldest `.ready` segment), if any.
    pub fn next_ready(&self, settings: &Settings) -> Option<ReadyFile> {
        if !self.archiving_active(settings) || !settings.archive_command {
            return None;
        }
        if let Some(&t) = self.archive_status.history_ready.first() {
            return Some(ReadyFile::History(t));
        }
        let complete = self.wal.geometry().segno(self.wal.flush_lsn());
        (self.archive_status.next_seg < complete).then_some(ReadyFile::Segment(self.archive_status.next_seg))
    }

    /// XLogArchiveCheckDone for the oldest segment that RemoveOldXlogFiles
    /// may not remove: `None` when every segment may go (archiving off, or
    /// archive recovery with `archive_mode` not `always`).
    pub fn oldest_not_archived(&self, settings: &Settings) -> Option<u64> {
        match settings.archive_mode {
            ArchiveMode::Off => None,
            ArchiveMode::On if self.is_standby() => None,
            _ => Some(self.archive_status.next_seg),
        }
    }

    /// The name a segment file of this node's WAL has: the timeline of the
    /// last record starting in it (a promoted server copies the segment
    /// holding the switch point into a file of its new timeline), or the
    /// node's timeline if none does.
    pub fn segment_file_name(&self, segno: u64) -> (String, Vec<Record>) {
        let g = self.wal.geometry();
        let start = Lsn(segno * g.segment_size());
        let end = Lsn((segno + 1) * g.segment_size());
        let recs = self.wal.records_from(start);
        let recs: Vec<Record> = recs[..recs.partition_point(|r| r.lsn < end)].to_vec();
        let tli = recs.last().map_or(self.tli, |r| r.tli);
        (g.wal_file_name(tli, start), recs)
    }
}

impl Cluster {
    /// What `d`'s startup process would restore now (RestoreArchivedFile
    /// from WaitForWALToBecomeAvailable): with `restore_command`, in
    /// standby mode, local WAL used up and not streaming, the archived
    /// segment holding the end of its WAL (XLogFileReadAnyTLI) if it
    /// continues that WAL (the next record starts there and its prev-link
    /// names the last one). Returns the file's name and the index of that
    /// record in it.
    pub(crate) fn restorable(&self, d: &Node) -> Option<(String, usize)> {
        if !self.settings.restore_command || self.archive.is_empty() {
            return None;
        }
        let st = d.startup.as_ref()?;
        if d.status != Status::Recovery || !st.standby || st.promote || st.read_error.is_some() {
            return None;
        }
        if st.next < d.wal.end_index() || self.conns.iter().any(|c| c.downstream == d.id) {
            return None;
        }
        let g = d.wal.geometry();
        let end = d.wal.end();
        let (name, recs) = self.archive.read_any_tli(g, &d.history, d.walrcv.target_tli, g.segno(end))?;
        let pos = g.recptr_to_bytepos(end);
        let k = recs.iter().position(|r| g.recptr_to_bytepos(r.lsn) == pos)?;
        (recs[k].prev == d.wal.last_start()).then_some((name, k))
    }

    /// The startup process restores a segment from the archive into
    /// pg_wal (a standby keeps it: KeepFileRestoredFromArchive) and goes
    /// on replaying from it.
    pub(crate) fn restore_wal(&mut self, id: NodeId) {
        let i = id.index();
        let Some((name, k)) = self.restorable(&self.nodes[i]) else { return };
        let file = self.archive.segment(&name).expect("restorable");
        let recs = file[k..].to_vec();
        slog!(self.log, id, Process::Startup, Log, "restored log file \"{}\" from archive", name);
        // `no_silent_divergence`, as for streamed WAL: the file continues this
        // node's WAL by its prev-link, but does its history contain the last
        // record the node replayed? (A file of another timeline whose record
        // happens to frame at the node's end of WAL.)
        let n = &self.nodes[i];
        let last = n.wal.last_start();
        if let Some(mine) = n.wal.record_at(last)
            && let Some(theirs) = file.iter().find(|r| r.lsn == last)
            && theirs != mine
        {
            self.fx.violations.push(Violation {
                invariant: Invariant::NoSilentDivergence,
                node: Some(id),
                detail: format!(
                    "{} restores {name} from the archive, whose record at {} continues its WAL, but the file's record at {last} (timeline {}) is not its own (timeline {}): two histories are mixed without any message",
                    n.name,
                    file[k].lsn,
                    theirs.tli,
                    mine.tli
                ),
            });
            return;
        }
        let n = &mut self.nodes[i];
        for r in recs {
            n.wal.append_received(r);
        }
        let end = n.wal.end();
        n.wal.flush_upto(end);
    }

    /// restoreTimeLineHistoryFiles: history files of timelines newer than
    /// any `d` knows, from the archive into its pg_wal (findNewestTimeLine
    /// probes `newest + 1`, `+ 2`, ...). Returns whether any was found.
    pub(crate) fn restore_history_files(&mut self, id: NodeId) -> bool {
        if !self.settings.restore_command || self.archive.is_empty() {
            return false;
        }
        let i = id.index();
        let newer = self.archive.newer_timelines(self.nodes[i].history.newest());
        for &t in &newer {
            let entries = self.archive.history(t).expect("probed").to_vec();
            slog!(
                self.log,
                id,
                Process::Startup,
                Log,
                "restored log file \"{}\" from archive",
                History::file_name(t)
            );
            self.nodes[i].history.insert_file(t, entries);
        }
        !newer.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::{ArchiveMode, Settings};
    use crate::testkit::quiesced;

    /// XLogArchiveCheckDone: with archiving off nothing holds segments; with
    /// `archive_mode = on` a standby does not archive (so holds none); with
    /// `always`, or on a primary, the first segment not archived yet holds.
    #[test]
    fn the_oldest_segment_not_archived_holds_only_where_archiving_runs() {
        let mut c = quiesced(1, 100);
        c.nodes[0].archive_status.next_seg = 3;
        c.nodes[1].archive_status.next_seg = 2;
        let with = |mode| Settings { archive_mode: mode, ..Settings::default() };
        let held = |c: &crate::cluster::Cluster, s: &Settings| {
            (c.nodes[0].oldest_not_archived(s), c.nodes[1].oldest_not_archived(s))
        };
        assert_eq!(held(&c, &with(ArchiveMode::Off)), (None, None));
        assert_eq!(held(&c, &with(ArchiveMode::On)), (Some(3), None));
        assert_eq!(held(&c, &with(ArchiveMode::Always)), (Some(3), Some(2)));
    }
}
