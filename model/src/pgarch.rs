//! The archiver process (pgarch.c, shell_archive.c): one `.ready` file
//! per event, a failing `archive_command` as a fault. The archive itself
//! and `.ready` bookkeeping are in xlogarchive.rs.

use crate::archive::{ArchivedFile, NUM_ARCHIVE_RETRIES, ReadyFile};
use crate::cluster::Cluster;
use crate::log::Process;
use crate::node::{Node, NodeId};
use crate::slog;
use crate::timeline::History;

/// `archive_command` as the model's runs print it (`%p` and `%f` expanded).
fn archive_command(file: &str) -> String {
    format!("cp pg_wal/{file} /archive/{file}")
}

impl Node {
    /// The file name of a `.ready` file.
    fn ready_name(&self, f: ReadyFile) -> String {
        match f {
            ReadyFile::History(t) => History::file_name(t),
            ReadyFile::Segment(seg) => self.segment_file_name(seg).0,
        }
    }
}

impl Cluster {
    /// Whether node `n`'s archiver has a file to archive.
    pub(crate) fn archiver_ready(&self, n: &Node) -> bool {
        n.next_ready(&self.settings).is_some()
    }

    /// pgarch_ArchiverCopyLoop for one file: `archive_command` copies it
    /// into the archive, then pgarch_archiveDone marks it `.done`. A
    /// segment already removed from pg_wal cannot be copied (only when
    /// `rules.remove_checks_archive_done` is off): cp fails.
    pub(crate) fn archiver_step(&mut self, id: NodeId) {
        let i = id.index();
        let Some(f) = self.nodes[i].next_ready(&self.settings) else { return };
        let n = &self.nodes[i];
        let (name, file) = match f {
            ReadyFile::History(t) => {
                (History::file_name(t), Some(ArchivedFile::History(n.history.entries(t).to_vec())))
            }
            ReadyFile::Segment(seg) => {
                let g = n.wal.geometry();
                let (name, recs) = n.segment_file_name(seg);
                let gone = n.wal.segment_removed(crate::lsn::Lsn(seg * g.segment_size()));
                (name, (!gone).then(|| ArchivedFile::Segment(recs.into())))
            }
        };
        let Some(file) = file else {
            self.archive_failed(id, &name);
            return;
        };
        self.archive.store(name.clone(), file);
        let st = &mut self.nodes[i].archive_status;
        st.failures = 0;
        match f {
            ReadyFile::History(_) => {
                st.history_ready.remove(0);
            }
            ReadyFile::Segment(seg) => st.next_seg = seg + 1,
        }
        slog!(self.log, id, Process::Archiver, Debug, "archived write-ahead log file \"{}\"", name);
    }

    /// Fault: `archive_command` exits with code 1 on the next `.ready` file.
    pub(crate) fn archive_failure(&mut self, id: NodeId) {
        let n = &self.nodes[id.index()];
        let Some(f) = n.next_ready(&self.settings) else { return };
        let name = n.ready_name(f);
        self.archive_failed(id, &name);
    }

    fn archive_failed(&mut self, id: NodeId, name: &str) {
        slog!(self.log, id, Process::Archiver, Log, "archive command failed with exit code 1");
        slog!(
            self.log,
            id,
            Process::Archiver,
            Detail,
            "The failed archive command was: {}",
            archive_command(name)
        );
        let st = &mut self.nodes[id.index()].archive_status;
        st.failures += 1;
        if st.failures >= NUM_ARCHIVE_RETRIES {
            st.failures = 0;
            slog!(
                self.log,
                id,
                Process::Archiver,
                Warning,
                "archiving write-ahead log file \"{}\" failed too many times, will try again later",
                name
            );
        }
    }

    /// Fault targets for `faults.archive_command`: nodes whose archiver has
    /// a file to archive.
    pub(crate) fn archive_failure_targets(&self, out: &mut Vec<crate::event::Event>) {
        for n in &self.nodes {
            if self.archiver_ready(n) {
                out.push(crate::event::Event::ArchiveFailure { node: n.id });
            }
        }
    }
}
