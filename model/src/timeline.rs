//! Timelines and their history files (timeline.c).
//!
//! Promotion starts a new timeline whose history file is the parent's
//! history plus one line: `parentTLI<TAB>switchpoint<TAB>reason`. The
//! switch point is where the parent timeline ended in the new timeline's
//! history (the end of the last record the promoted standby replayed).

use crate::ids::Tli;
use crate::lsn::Lsn;
use std::collections::BTreeMap;

/// One line of a history file.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct HistoryEntry {
    /// The ancestor timeline that ended.
    pub tli: Tli,
    /// Where it ended (exclusive).
    pub switchpoint: Lsn,
    pub reason: String,
}

/// The `%08X.history` files a node has in `pg_wal`.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct History {
    files: BTreeMap<Tli, Vec<HistoryEntry>>,
}

impl History {
    /// `%08X.history`.
    pub fn file_name(tli: Tli) -> String {
        format!("{tli:08X}.history")
    }

    /// The entries of the history file of `tli` (empty for timeline 1 or
    /// when the file is missing).
    pub fn entries(&self, tli: Tli) -> &[HistoryEntry] {
        self.files.get(&tli).map_or(&[], Vec::as_slice)
    }

    pub fn has(&self, tli: Tli) -> bool {
        tli == Tli(1) || self.files.contains_key(&tli)
    }

    /// Timelines with a history file, ascending.
    pub fn timelines(&self) -> impl Iterator<Item = Tli> + '_ {
        self.files.keys().copied()
    }

    /// The newest timeline this node knows of (`findNewestTimeLine`).
    pub fn newest(&self) -> Tli {
        self.files.keys().next_back().copied().unwrap_or(Tli(1))
    }

    /// Writes the history file of a new timeline `new` forked from `parent`
    /// at `switchpoint` (writeTimeLineHistory).
    pub fn add_child(&mut self, new: Tli, parent: Tli, switchpoint: Lsn, reason: &str) {
        let mut entries = self.entries(parent).to_vec();
        entries.push(HistoryEntry { tli: parent, switchpoint, reason: reason.to_string() });
        self.files.insert(new, entries);
    }

    /// Copies a history file received from another server
    /// (walreceiver's TIMELINE_HISTORY, pg_rewind, a base backup).
    pub fn insert_file(&mut self, tli: Tli, entries: Vec<HistoryEntry>) {
        self.files.insert(tli, entries);
    }

    /// The file's text as PostgreSQL writes it.
    pub fn render(&self, tli: Tli) -> String {
        self.entries(tli).iter().map(|e| format!("{}\t{}\t{}\n", e.tli, e.switchpoint, e.reason)).collect()
    }

    /// Whether `tli` is `target` or one of its ancestors (tliInHistory).
    pub fn in_history_of(&self, target: Tli, tli: Tli) -> bool {
        tli == target || self.entries(target).iter().any(|e| e.tli == tli)
    }

    /// Where `tli` ended in the history of `target` (tliSwitchPoint): `None`
    /// if `tli` is `target` itself (it has not ended), or not an ancestor.
    pub fn switch_point(&self, target: Tli, tli: Tli) -> Option<Lsn> {
        self.entries(target).iter().find(|e| e.tli == tli).map(|e| e.switchpoint)
    }

    /// The timeline that followed `tli` in `target`'s history (tliSwitchPoint's
    /// `nextTLI`): `None` if `tli` is `target` itself or not an ancestor.
    pub fn next_tli(&self, target: Tli, tli: Tli) -> Option<Tli> {
        let entries = self.entries(target);
        let i = entries.iter().position(|e| e.tli == tli)?;
        Some(entries.get(i + 1).map_or(target, |e| e.tli))
    }

    /// Which timeline of `target`'s history WAL position `lsn` belongs to
    /// (tliOfPointInHistory).
    pub fn tli_of_point(&self, target: Tli, lsn: Lsn) -> Tli {
        self.entries(target).iter().find(|e| lsn < e.switchpoint).map_or(target, |e| e.tli)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_files_chain() {
        let mut h = History::default();
        h.add_child(Tli(2), Tli(1), Lsn(0x45AD_5F80), "no recovery target specified");
        h.add_child(Tli(3), Tli(2), Lsn(0x5000_0000), "no recovery target specified");
        assert_eq!(
            h.render(Tli(3)),
            "1\t0/45AD5F80\tno recovery target specified\n2\t0/50000000\tno recovery target specified\n"
        );
        assert!(h.in_history_of(Tli(3), Tli(1)));
        assert!(h.in_history_of(Tli(3), Tli(3)));
        assert!(!h.in_history_of(Tli(2), Tli(3)));
        assert_eq!(h.switch_point(Tli(3), Tli(1)), Some(Lsn(0x45AD_5F80)));
        assert_eq!(h.switch_point(Tli(3), Tli(3)), None);
        assert_eq!(h.tli_of_point(Tli(3), Lsn(0x4000_0000)), Tli(1));
        assert_eq!(h.tli_of_point(Tli(3), Lsn(0x4800_0000)), Tli(2));
        assert_eq!(h.tli_of_point(Tli(3), Lsn(0x6000_0000)), Tli(3));
        assert_eq!(h.newest(), Tli(3));
        assert_eq!(History::file_name(Tli(2)), "00000002.history");
    }

    /// tliSwitchPoint's next timeline, tliOfPointInHistory at a switch
    /// point (the byte at the switch point is the child's: `ptr < end`),
    /// which files a node has (timeline 1 never has one), and a file
    /// copied from another server.
    #[test]
    fn next_timelines_switch_points_and_files() {
        let mut h = History::default();
        assert_eq!((h.newest(), h.timelines().count()), (Tli(1), 0));
        assert!(h.has(Tli(1)) && !h.has(Tli(2)));
        h.add_child(Tli(2), Tli(1), Lsn(0x100), "a");
        h.add_child(Tli(3), Tli(2), Lsn(0x200), "b");
        assert_eq!(h.timelines().collect::<Vec<_>>(), [Tli(2), Tli(3)]);
        assert!(h.has(Tli(1)) && h.has(Tli(3)) && !h.has(Tli(4)));
        assert_eq!(h.next_tli(Tli(3), Tli(1)), Some(Tli(2)));
        assert_eq!(h.next_tli(Tli(3), Tli(2)), Some(Tli(3)));
        assert_eq!(h.next_tli(Tli(3), Tli(3)), None);
        assert_eq!(h.next_tli(Tli(2), Tli(1)), Some(Tli(2)));
        assert_eq!(h.tli_of_point(Tli(3), Lsn(0xFF)), Tli(1));
        assert_eq!(h.tli_of_point(Tli(3), Lsn(0x100)), Tli(2));
        assert_eq!(h.tli_of_point(Tli(3), Lsn(0x200)), Tli(3));
        assert_eq!(h.tli_of_point(Tli(1), Lsn(0x300)), Tli(1));
        assert_eq!(h.switch_point(Tli(3), Tli(2)), Some(Lsn(0x200)));
        assert_eq!(h.switch_point(Tli(2), Tli(3)), None);
        assert!(h.in_history_of(Tli(2), Tli(1)) && !h.in_history_of(Tli(1), Tli(2)));
        let mut other = History::default();
        other.insert_file(Tli(3), h.entries(Tli(3)).to_vec());
        assert_eq!(other.render(Tli(3)), "1\t0/100\ta\n2\t0/200\tb\n");
        assert!(other.has(Tli(3)) && !other.has(Tli(2)));
        assert_eq!(other.newest(), Tli(3));
    }
}
