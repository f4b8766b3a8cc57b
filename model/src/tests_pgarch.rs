//! Unit tests of `pgarch.rs`: the archiver copying `.ready` files into the
//! archive, and a failing `archive_command`.

use crate::archive::{ArchivedFile, ReadyFile};
use crate::cluster::Cluster;
use crate::event::Event;
use crate::ids::{NodeId, Tli, Xid};
use crate::log::Level;
use crate::settings::ArchiveMode;
use crate::wal::RecordBody;

/// A primary and a standby with `archive_mode = on` and an
/// `archive_command`, quiesced: every completed segment is archived.
pub(crate) fn archiving(steps: u64) -> Cluster {
    crate::testkit::quiesced_with(1, steps, |s| {
        s.archive_mode = ArchiveMode::On;
        s.archive_command = true;
        s.restore_command = true;
    })
}

/// Ends the primary's current segment (an XLOG_SWITCH, flushed): it
/// becomes `.ready`. Returns its number.
pub(crate) fn complete_a_segment(c: &mut Cluster) -> u64 {
    let n = &mut c.nodes[0];
    let seg = n.wal.geometry().segno(n.wal.insert_lsn());
    let tli = n.tli;
    n.wal.insert(tli, Xid(0), RecordBody::Switch);
    let end = n.wal.end();
    n.wal.flush_upto(end);
    assert_eq!(n.wal.geometry().segno(n.wal.flush_lsn()), seg + 1);
    seg
}

fn lines(c: &mut Cluster) -> Vec<(Level, String)> {
    c.log.drain().map(|l| (l.level, l.message)).collect()
}

/// The archive holds each segment the primary completed, once, named
/// as pg_wal names it, with its records; the standby (archive_mode = on)
/// archives nothing. A newly completed segment is `.ready` and the next
/// archiver step copies it and marks it `.done`.
#[test]
fn the_archiver_copies_each_completed_segment() {
    let mut c = archiving(300);
    let n = &c.nodes[0];
    let g = *n.wal.geometry();
    let complete = g.segno(n.wal.flush_lsn());
    assert!(complete >= 3, "the run completed segments");
    assert_eq!(n.archive_status.next_seg, complete);
    assert!(!c.archiver_ready(n) && !c.archiver_ready(&c.nodes[1]));
    let names: Vec<String> = (0..complete).map(|seg| n.segment_file_name(seg).0).collect();
    assert_eq!(c.archive.names().collect::<Vec<_>>(), names);
    let mut out = Vec::new();
    c.archive_failure_targets(&mut out);
    assert!(out.is_empty());

    let seg = complete_a_segment(&mut c);
    assert!(c.archiver_ready(&c.nodes[0]));
    c.archive_failure_targets(&mut out);
    assert_eq!(out, [Event::ArchiveFailure { node: NodeId(0) }]);
    c.log = crate::log::Log::new(true);
    c.archiver_step(NodeId(0));
    let (name, recs) = c.nodes[0].segment_file_name(seg);
    assert_eq!(lines(&mut c), [(Level::Debug, format!("archived write-ahead log file \"{name}\""))]);
    assert_eq!(c.archive.segment(&name), Some(&recs[..]));
    assert!(!recs.is_empty());
    assert_eq!(c.nodes[0].archive_status.next_seg, seg + 1);
    assert!(!c.archiver_ready(&c.nodes[0]));
}

/// shell_archive.c's messages for a failing `archive_command`, and
/// pgarch.c's warning after NUM_ARCHIVE_RETRIES (3) failures in a row,
/// which starts the count again; a success also resets it.
#[test]
fn a_failing_archive_command_gives_up_after_three_tries() {
    let mut c = archiving(200);
    let seg = complete_a_segment(&mut c);
    let name = c.nodes[0].segment_file_name(seg).0;
    c.log = crate::log::Log::new(true);
    let failed = [
        (Level::Log, "archive command failed with exit code 1".to_string()),
        (Level::Detail, format!("The failed archive command was: cp pg_wal/{name} /archive/{name}")),
    ];
    for tries in 1..=2 {
        c.archive_failure(NodeId(0));
        assert_eq!(lines(&mut c), failed);
        assert_eq!(c.nodes[0].archive_status.failures, tries);
    }
    c.archive_failure(NodeId(0));
    let mut third = failed.to_vec();
    third.push((
        Level::Warning,
        format!("archiving write-ahead log file \"{name}\" failed too many times, will try again later"),
    ));
    assert_eq!(lines(&mut c), third);
    assert_eq!(c.nodes[0].archive_status.failures, 0);
    c.archive_failure(NodeId(0));
    assert_eq!(c.nodes[0].archive_status.failures, 1);
    assert!(c.archive.segment(&name).is_none(), "not archived");
    c.archiver_step(NodeId(0));
    assert_eq!(c.nodes[0].archive_status.failures, 0);
    assert!(c.archive.segment(&name).is_some());
    // Nothing ready: no failure to have.
    c.archive_failure(NodeId(0));
    assert_eq!(c.nodes[0].archive_status.failures, 0);
    lines(&mut c);
}

/// History files go first (pgarch_readyXlog), under their own name.
#[test]
fn a_ready_history_file_is_archived_before_segments() {
    let mut c = archiving(200);
    let seg = complete_a_segment(&mut c);
    let n = &mut c.nodes[0];
    let switch = n.wal.flush_lsn();
    n.history.add_child(Tli(2), Tli(1), switch, "no recovery target specified");
    n.archive_status.history_ready = vec![Tli(2)];
    assert_eq!(c.nodes[0].next_ready(c.settings()), Some(ReadyFile::History(Tli(2))));
    c.log = crate::log::Log::new(true);
    c.archive_failure(NodeId(0));
    let l = lines(&mut c);
    assert_eq!(
        l[1].1,
        "The failed archive command was: cp pg_wal/00000002.history /archive/00000002.history"
    );
    c.archiver_step(NodeId(0));
    let entries = c.nodes[0].history.entries(Tli(2)).to_vec();
    assert_eq!(c.archive.get("00000002.history"), Some(&ArchivedFile::History(entries)));
    assert!(c.nodes[0].archive_status.history_ready.is_empty());
    assert_eq!(c.nodes[0].archive_status.next_seg, seg, "no segment archived yet");
    assert_eq!(c.nodes[0].next_ready(c.settings()), Some(ReadyFile::Segment(seg)));
}

/// A `.ready` segment already gone from pg_wal cannot be copied: cp
/// fails, and the segment stays `.ready`.
#[test]
fn a_removed_segment_cannot_be_archived() {
    let mut c = archiving(300);
    let n = &c.nodes[0];
    let g = *n.wal.geometry();
    let first_kept = g.segno(n.wal.kept_from());
    assert!(first_kept >= 1, "the run removed segments");
    let gone = first_kept - 1;
    let name = n.segment_file_name(gone).0;
    let archived = c.archive.get(&name).cloned();
    c.nodes[0].archive_status.next_seg = gone;
    c.log = crate::log::Log::new(true);
    c.archiver_step(NodeId(0));
    let l = lines(&mut c);
    assert_eq!(l[0], (Level::Log, "archive command failed with exit code 1".to_string()));
    assert_eq!(l[1].1, format!("The failed archive command was: cp pg_wal/{name} /archive/{name}"));
    assert_eq!(c.nodes[0].archive_status.next_seg, gone);
    assert_eq!(c.nodes[0].archive_status.failures, 1);
    assert_eq!(c.archive.get(&name).cloned(), archived, "the archived copy is not overwritten");
}
