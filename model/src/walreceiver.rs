//! The walreceiver and the standby's side of streaming (walreceiver.c,
//! walreceiverfuncs.c, xlogrecovery.c's WaitForWALToBecomeAvailable and
//! rescanLatestTimeLine).
//!
//! Connecting is one event that plays the whole handshake: IDENTIFY_SYSTEM,
//! fetching missing timeline history files, START_REPLICATION at the start
//! of the segment holding the standby's end of WAL, and the checks both
//! sides make, in PostgreSQL's order, with PostgreSQL's messages.

use crate::cluster::Cluster;
use crate::event::RefusalKind;
use crate::ids::NodeId;
use crate::ids::Tli;
use crate::log::Process;
use crate::lsn::Lsn;
use crate::network::{Conn, Msg};
use crate::node::{Node, Status};
use crate::slog;
use crate::syncrep::ReportedPositions;
use crate::violation::{Invariant, Violation};
use crate::wal::{Record, RecordBody};
use crate::walsndctl::WalSndInfo;

pub use crate::node::{RefusalMemo, WalRcv};

impl Node {
    /// The highest position this node may send to a standby. A primary:
    /// its flushed WAL (GetFlushRecPtr), or everything inserted with the
    /// rule off. A cascading standby: the larger of what its walreceiver
    /// flushed and what it replayed (GetStandbyFlushRecPtr); with no
    /// walreceiver, what it replayed.
    pub fn send_upto(&self, only_flushed: bool, streaming: bool) -> Lsn {
        match &self.startup {
            Some(st) if !self.is_primary_or_shutting_down() => {
                if streaming {
                    st.replayed.max(self.wal.flush_lsn())
                } else {
                    st.replayed
                }
            }
            _ if !only_flushed => self.wal.end(),
            _ => self.wal.flush_lsn(),
        }
    }

    /// Whether a walsender on this node accepts a new connection.
    pub fn accepts_replication(&self) -> bool {
        match self.status {
            Status::Production => true,
            Status::Recovery => {
                self.startup.as_ref().is_some_and(|s| s.standby && s.consistent && !s.promote)
            }
            Status::Down | Status::ShuttingDown => false,
        }
    }

    /// Where streaming must start: the start of the segment holding the end
    /// of this node's WAL (RequestXLogStreaming), and its timeline in the
    /// recovery target's history.
    pub fn streaming_start(&self) -> (Lsn, Tli) {
        let end = self.wal.end();
        let start = self.wal.geometry().segment_start(end);
        // The timeline is that of the record the startup process waits for
        // (WaitForWALToBecomeAvailable's tliRecPtr), not of the segment start.
        (start, self.history.tli_of_point(self.walrcv.target_tli, end))
    }

    /// The positions a status update reports now. Write and flush count
    /// only WAL received on this connection (`received`, from the start
    /// point on), as the walreceiver's LogstreamResult does: a standby's
    /// own WAL beyond that is not its upstream's.
    pub fn receiver_positions(&self, received: Lsn, report_unflushed: bool) -> ReportedPositions {
        let write = self.wal.write_lsn().min(received);
        let flush = if report_unflushed { write } else { self.wal.flush_lsn().min(received) };
        ReportedPositions { write, flush, apply: self.startup.as_ref().map_or(flush, |s| s.replayed) }
    }
}

impl Cluster {
    /// Whether standby `d`'s walreceiver can (re)connect now.
    pub(crate) fn can_connect(&self, d: &Node) -> bool {
        let Some(u) = d.upstream else { return false };
        let Some(st) = d.startup.as_ref() else { return false };
        if d.status != Status::Recovery || !st.standby || st.promote || st.read_error.is_some() || u == d.id {
            return false;
        }
        let up = &self.nodes[u.index()];
        if !up.accepts_replication()
            || self.partitions.is_cut(d.id, u)
            || self.conns.iter().any(|c| c.downstream == d.id)
        {
            return false;
        }
        // The startup process asks for streaming once local WAL is used up,
        // and the archive has nothing more (XLOG_FROM_ARCHIVE is tried
        // first).
        if st.next < d.wal.end_index() || self.restorable(d).is_some() {
            return false;
        }
        d.walrcv.refused.is_none_or(|m| m != self.refusal_memo(d, up))
    }

    fn refusal_memo(&self, d: &Node, up: &Node) -> RefusalMemo {
        RefusalMemo {
            upstream: up.id,
            upstream_flush: self.sendable_upto(up),
            upstream_tli: up.tli,
            local_end: d.wal.end(),
        }
    }

    /// The walreceiver connects and asks to stream.
    pub(crate) fn connect(&mut self, d: NodeId) {
        let di = d.index();
        let u = self.nodes[di].upstream.expect("can_connect");
        let ui = u.index();
        let rules = self.settings().rules.clone();
        let (start, start_tli) = self.nodes[di].streaming_start();
        let up_tli = self.nodes[ui].tli;
        let up_flush = self.sendable_upto(&self.nodes[ui]);
        let dname = self.nodes[di].name.clone();
        self.with_node(di, |n, ctx| n.note_end_of_local_wal(ctx));

        // IDENTIFY_SYSTEM, then TIMELINE_HISTORY for timelines the standby lacks.
        if up_tli > self.nodes[di].walrcv.target_tli {
            for t in (2..=up_tli.0).map(Tli) {
                if !self.nodes[di].history.has(t) && self.nodes[ui].history.has(t) {
                    slog!(
                        self.log,
                        d,
                        Process::WalReceiver,
                        Log,
                        "fetching timeline history file for timeline {}",
                        t
                    );
                    let entries = self.nodes[ui].history.entries(t).to_vec();
                    self.nodes[di].history.insert_file(t, entries);
                    self.fx.checks.push(crate::event::Check::Timelines(d));
                }
            }
        }

        // START_REPLICATION: the walsender's checks.
        let mut refusal: Option<(RefusalKind, String)> = None;

        // PostgreSQL 9.4devel's walsender had no "not in this server's
        // history" check; it compared any start with its flush position.
        let v94 = self.settings().server_version == crate::settings::ServerVersion::V94Devel;
        if start_tli != up_tli && !v94 {
            let up_hist = &self.nodes[ui].history;
            let switch = up_hist.switch_point(up_tli, start_tli);
            match switch {
                None if rules.walsender_checks_start_point => {
                    let msg = format!("requested timeline {start_tli} is not in this server's history");
                    refusal = Some((RefusalKind::NotInHistory, msg));
                }
                Some(sp) if sp < start && rules.walsender_checks_start_point => {
                    let msg = format!(
                        "requested starting point {start} on timeline {start_tli} is not in this server's history"
                    );
                    let detail = format!("This server's history forked from timeline {start_tli} at {sp}.");
                    slog!(self.log, u, Process::WalSender(d), Error, "{}", msg);
                    slog!(self.log, u, Process::WalSender(d), Detail, "{}", detail);
                    refusal = Some((RefusalKind::NotInHistory, format!("ERROR: {msg} DETAIL: {detail}")));
                }
                _ => {}
            }
            if let Some((_, m)) = &refusal {
                slog!(self.log, d, Process::WalReceiver, Fatal, "could not start WAL streaming: {}", m);
            }
        } else {
            self.log_started_streaming(d, start, start_tli);
            if start > up_flush && rules.walsender_checks_start_point {
                let msg = format!(
                    "requested starting point {start} is ahead of the WAL flush position of this server {up_flush}"
                );
                refusal = Some((RefusalKind::AheadOfFlush, self.walsender_error(u, d, &msg)));
            }
        }
        if refusal.is_none() && start_tli != up_tli {
            self.log_started_streaming(d, start, start_tli);
        }
        // START_REPLICATION SLOT: ReplicationSlotAcquire.
        if refusal.is_none()
            && let Some(slot) = self.nodes[di].primary_slot_name.clone()
            && !self.nodes[ui].slots.iter().any(|s| s.name == slot)
        {
            let msg = format!("replication slot \"{slot}\" does not exist");
            slog!(self.log, u, Process::WalSender(d), Error, "{}", msg);
            slog!(self.log, d, Process::WalReceiver, Fatal, "could not start WAL streaming: ERROR:  {}", msg);
            refusal = Some((RefusalKind::SlotDoesNotExist, format!("ERROR: {msg}")));
        }
        // The walsender's first read: the segment holding the start point
        // must still be in its pg_wal (WalSndSegmentOpen).
        if refusal.is_none() && self.nodes[ui].wal.segment_removed(start) {
            let seg = self.walsender_segment_file(u, start_tli, start);
            refusal = Some((RefusalKind::SegmentRemoved, self.segment_removed_error(u, d, &seg)));
        }

        // The startup process looks for a newer timeline to follow.
        if let Some((kind, msg)) = refusal {
            self.refuse(d, kind, msg);
            self.rescan_latest_timeline(d);
            return;
        }
        // The timeline requested is streamed; if it is historic for the
        // upstream, the stream ends at its switch point and only then does
        // the startup process look for a newer timeline (rescanLatestTimeLine
        // when the walreceiver has ended).
        let cursor = self.nodes[ui].wal.index_at(start);
        self.conns.push(Conn::new(u, d, cursor, start, start_tli));
        let rules = &self.settings.rules;
        self.nodes[ui].add_walsender(WalSndInfo::new(d, dname.clone()), rules);
        if self.nodes[di].synced_to != Some(u) {
            self.nodes[di].synced_to = None;
        }
        self.nodes[di].walrcv.reported = ReportedPositions::default();
        self.nodes[di].walrcv.refused = None;
        slog!(
            self.log,
            u,
            Process::WalSender(d),
            Debug,
            "walsender for {} started at {} on timeline {}",
            dname,
            start,
            start_tli
        );
    }

    fn log_started_streaming(&mut self, d: NodeId, start: Lsn, tli: Tli) {
        slog!(
            self.log,
            d,
            Process::WalReceiver,
            Log,
            "started streaming WAL from primary at {} on timeline {}",
            start,
            tli
        );
    }

    /// rescanLatestTimeLine: adopt the newest timeline with a history file
    /// unless it forked off before what this standby already replayed.
    /// Returns whether the standby can follow its upstream's timeline.
    pub(crate) fn rescan_latest_timeline(&mut self, d: NodeId) -> bool {
        let check = self.settings().rules.startup_checks_timeline_fork;
        self.restore_history_files(d);
        let n = &mut self.nodes[d.index()];
        let newest = n.history.newest();
        if newest <= n.walrcv.target_tli {
            return true;
        }
        let replayed = n.startup.as_ref().map_or(n.wal.end(), |s| s.replayed);
        let cur = n.tli;
        let fork = n.history.switch_point(newest, cur);
        let ok = match fork {
            Some(f) => f >= replayed,
            None => n.history.in_history_of(newest, cur),
        };
        if ok || !check {
            n.walrcv.target_tli = newest;
            slog!(self.log, d, Process::Startup, Log, "new target timeline is {}", newest);
            return true;
        }
        let msg = match fork {
            Some(_) => format!(
                "new timeline {newest} forked off current database system timeline {cur} before current recovery point {replayed}"
            ),
            None => format!("new timeline {newest} is not a child of database system timeline {cur}"),
        };
        slog!(self.log, d, Process::Startup, Log, "{}", msg);
        self.refuse(d, RefusalKind::ForkedBeforeRecoveryPoint, msg);
        false
    }

    /// The walsender cannot open a removed segment: ERROR on the upstream,
    /// FATAL in the walreceiver (which retries). Returns the message.
    pub(crate) fn segment_removed_error(&mut self, u: NodeId, d: NodeId, seg: &str) -> String {
        let msg = format!("requested WAL segment {seg} has already been removed");
        self.walsender_error(u, d, &msg)
    }

    /// An ERROR of the walsender on `u` serving `d`, and the walreceiver's
    /// FATAL that reports it. Returns the refusal's text.
    fn walsender_error(&mut self, u: NodeId, d: NodeId, msg: &str) -> String {
        slog!(self.log, u, Process::WalSender(d), Error, "{}", msg);
        slog!(
            self.log,
            d,
            Process::WalReceiver,
            Fatal,
            "could not receive data from WAL stream: ERROR:  {}",
            msg
        );
        format!("ERROR: {msg}")
    }

    /// Records a refusal and what it depended on.
    pub(crate) fn refuse(&mut self, d: NodeId, kind: RefusalKind, msg: String) {
        let n = &self.nodes[d.index()];
        let up = &self.nodes[(n.upstream.expect("streaming needs an upstream")).index()];
        let memo = self.refusal_memo(n, up);
        self.nodes[d.index()].walrcv.refused = Some(memo);
        self.fx.refusals.push((d, kind, msg));
    }

    /// Standby `d` receives WAL. PostgreSQL writes it into segment files of
    /// the received timeline and the startup process reads its next record
    /// from the newest timeline's file (XLogFileReadAnyTLI), so what
    /// matters is what the reader finds at its replay position R:
    /// - WAL wholly before R was written but is never read again;
    /// - a received record spanning R, or one starting at R whose prev-link
    ///   is not the last record replayed, does not parse there
    ///   (xlogreader): the startup process logs it and retries forever;
    /// - a record starting at R with the right prev-link is replayed — and
    ///   if the node replayed WAL the sender's history does not contain,
    ///   two histories are silently mixed (`no_silent_divergence`).
    ///
    /// Records the node has not replayed yet are replaced from the first
    /// one that differs.
    pub(crate) fn receive_wal(&mut self, d: NodeId, from: NodeId, records: Vec<Record>) -> Option<Violation> {
        let checks = self.settings().rules.wal_reader_checks_framing;
        for rec in records {
            let n = &self.nodes[d.index()];
            let Some(st) = n.startup.as_ref().filter(|s| s.read_error.is_none()) else { break };
            let g = *n.wal.geometry();
            let pos = |l: Lsn| g.recptr_to_bytepos(l);
            let (reader, last_start) = (st.replayed, st.replayed_start);
            if rec.lsn < n.wal.end() && n.wal.record_at(rec.lsn) == Some(&rec) {
                self.note_received(d, rec.end);
                continue;
            }
            if pos(rec.end) <= pos(reader) {
                // Below the reader: written to the timeline's file, not read.
                self.note_received(d, rec.end);
                continue;
            }
            if pos(rec.lsn) < pos(reader) {
                if checks {
                    let why = framing_error_inside(&rec, reader);
                    self.wal_read_error(d, why);
                    break;
                }
            } else if rec.lsn < n.wal.end() {
                self.supersede_unreplayed(d, from, rec.lsn);
            }
            let n = &self.nodes[d.index()];
            let own_end = n.wal.end();
            let prev = n.wal.last_start();
            if checks && pos(rec.lsn) != pos(own_end) {
                let why = format!("invalid record length at {own_end}: wanted 24, got 0");
                self.wal_read_error(d, why);
                break;
            }
            if checks && rec.prev != prev {
                let why = format!("record with incorrect prev-link {} at {}", rec.prev, rec.lsn);
                self.wal_read_error(d, why);
                break;
            }
            if pos(rec.lsn) <= pos(reader)
                && let Some(v) = self.mixes_histories(d, from, reader, last_start)
            {
                return Some(v);
            }
            let end = rec.end;
            self.nodes[d.index()].wal.append_received(rec);
            self.note_received(d, end);
        }
        let n = &mut self.nodes[d.index()];
        let end = n.wal.end();
        n.wal.write_upto(end);
        None
    }

    /// The node's own WAL from `p` on, not replayed yet, gives way to what
    /// its upstream sends (the reader will read the received timeline's
    /// file there).
    fn supersede_unreplayed(&mut self, d: NodeId, from: NodeId, p: Lsn) {
        let n = &mut self.nodes[d.index()];
        n.wal.truncate(p);
        let len = n.wal.end_index();
        if let Some(st) = n.startup.as_mut() {
            st.next = st.next.min(len);
        }
        self.ledger.forget_after(d, p);
        slog!(
            self.log,
            d,
            Process::WalReceiver,
            Debug,
            "WAL from {} on will be read from what {} sent",
            p,
            from
        );
        // Anything streamed onwards from this node is now stale.
        self.drop_conns_where(|c| c.upstream == d, "upstream WAL was replaced");
    }

    /// `no_silent_divergence`: the record about to be read at the replay
    /// position continues the sender's history; does that history contain
    /// the last record this node replayed? If not, the node applies one
    /// history on top of another without any message.
    fn mixes_histories(&self, d: NodeId, from: NodeId, reader: Lsn, last_start: Lsn) -> Option<Violation> {
        let n = &self.nodes[d.index()];
        let up = &self.nodes[from.index()];
        let mine = n.wal.record_at(last_start)?;
        if up.wal.record_at(last_start) == Some(mine) {
            return None;
        }
        // The upstream removed that segment since: judge by timelines (one
        // timeline's WAL at a position is the same everywhere unless two
        // servers chose the same timeline, which timelines_consistent
        // catches).
        if up.wal.segment_removed(last_start) && up.history.tli_of_point(up.tli, last_start) == mine.tli {
            return None;
        }
        let on_disk = n.data.max_lsn_read();
        Some(Violation {
            invariant: Invariant::NoSilentDivergence,
            node: Some(d),
            detail: format!(
                "{} replays WAL from {} at {reader} (timeline {}) right after its own record at {last_start} (timeline {}), which {}'s history does not contain; its data files hold page LSN {on_disk}: two histories are mixed without any message",
                n.name, from, up.tli, mine.tli, from
            ),
        })
    }

    /// The startup process cannot parse the WAL at its replay position: it
    /// logs why at LOG level, the walreceiver is restarted, and the same
    /// happens again, forever (no FATAL). The model records the loop once
    /// and does not reconnect: nothing the upstream sends can change the
    /// bytes there.
    fn wal_read_error(&mut self, d: NodeId, why: String) {
        slog!(self.log, d, Process::Startup, Log, "{}", why);
        let n = &mut self.nodes[d.index()];
        let st = n.startup.as_mut().expect("a standby reads WAL");
        st.read_error = Some(why);
        self.drop_conns_where(|c| c.downstream == d, "the startup process cannot read the WAL received");
        self.set_attempt_result(d, crate::failback::AttemptResult::Stuck);
    }

    fn note_received(&mut self, d: NodeId, end: Lsn) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.downstream == d) {
            c.received = c.received.max(end);
        }
    }

    /// Whether `d`'s walreceiver has something to do: fsync received WAL,
    /// or report new positions.
    pub(crate) fn walreceiver_ready(&self, d: &Node) -> bool {
        self.conns.iter().any(|c| c.downstream == d.id)
            && (d.wal.flush_lsn() < d.wal.write_lsn() || self.reply_due(d))
    }

    fn reply_positions(&self, d: &Node) -> Option<ReportedPositions> {
        let c = self.conns.iter().find(|c| c.downstream == d.id)?;
        Some(d.receiver_positions(c.received, !self.settings().rules.walreceiver_reports_after_fsync))
    }

    fn reply_due(&self, d: &Node) -> bool {
        self.reply_positions(d).is_some_and(|p| p != d.walrcv.reported) || self.status_reply_due(d)
    }

    /// XLogWalRcvFlush, then a status update if anything moved.
    pub(crate) fn walreceiver_step(&mut self, d: NodeId) {
        let n = &mut self.nodes[d.index()];
        if n.wal.flush_lsn() < n.wal.write_lsn() {
            let w = n.wal.write_lsn();
            n.wal.flush_upto(w);
            slog!(self.log, d, Process::WalReceiver, Debug, "flushed received WAL up to {}", w);
        }
        self.send_reply(d);
    }

    /// Queues a standby status update for the upstream.
    pub(crate) fn send_reply(&mut self, d: NodeId) {
        let Some(pos) = self.reply_positions(&self.nodes[d.index()]) else { return };
        if pos == self.nodes[d.index()].walrcv.reported && !self.status_reply_due(&self.nodes[d.index()]) {
            return;
        }
        let n = &mut self.nodes[d.index()];
        n.walrcv.reported = pos;
        if let Some(c) = self.conns.iter_mut().find(|c| c.downstream == d) {
            c.to_upstream.push_back(Msg::Reply(pos));
        }
    }
}

/// What xlogreader reports when the replay position `at` falls inside
/// `rec`, a record of another history: the bytes there are part of its
/// body. walsim holds no bytes, so the text is a deterministic stand-in
/// for them: inside a tuple's data (md5 text, ASCII) the byte read as the
/// resource manager ID is a hex digit, beyond RM_MAX_ID; elsewhere the
/// length field reads as a small number.
fn framing_error_inside(rec: &Record, at: Lsn) -> String {
    let offset = at.0.saturating_sub(rec.lsn.0);
    match &rec.body {
        RecordBody::HeapInsert { tuple, .. } | RecordBody::HeapUpdate { tuple, .. } => {
            let digit = (tuple.payload >> ((offset / 8 % 16) * 4)) & 0xF;
            let rmid = b"0123456789abcdef"[digit as usize];
            format!("invalid resource manager ID {rmid} at {at}")
        }
        _ => format!("invalid record length at {at}: wanted 24, got {}", offset % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Xid;
    use crate::testkit::{quiesced, settle};

    /// A quiesced primary and standby whose connection was dropped.
    fn disconnected() -> Cluster {
        let mut c = quiesced(1, 300);
        c.drop_conns_where(|x| x.downstream == NodeId(1), "test");
        c.fx.clear();
        c
    }

    #[test]
    fn only_a_running_consistent_server_accepts_replication() {
        let c = quiesced(1, 300);
        assert!(c.nodes[0].accepts_replication(), "a primary");
        assert!(c.nodes[1].accepts_replication(), "a consistent standby (cascading)");
        for status in [Status::Down, Status::ShuttingDown] {
            let mut n = c.nodes[0].clone();
            n.status = status;
            assert!(!n.accepts_replication(), "{status:?}");
        }
        let change: [fn(&mut Node); 4] = [
            |n| n.startup.as_mut().unwrap().consistent = false,
            |n| n.startup.as_mut().unwrap().promote = true,
            |n| n.startup.as_mut().unwrap().standby = false,
            |n| n.startup = None,
        ];
        for (i, f) in change.iter().enumerate() {
            let mut n = c.nodes[1].clone();
            f(&mut n);
            assert!(!n.accepts_replication(), "case {i}");
        }
    }

    #[test]
    fn a_standby_connects_only_to_a_reachable_accepting_upstream_once() {
        let mut c = disconnected();
        assert!(c.can_connect(&c.nodes[1]));
        c.partitions.cut(NodeId(1), NodeId(0));
        assert!(!c.can_connect(&c.nodes[1]), "through a partition");
        c.partitions.heal(NodeId(1), NodeId(0));
        c.nodes[0].status = Status::ShuttingDown;
        assert!(!c.can_connect(&c.nodes[1]), "upstream shutting down");
        c.nodes[0].status = Status::Production;
        c.nodes[1].startup.as_mut().unwrap().read_error = Some("x".into());
        assert!(!c.can_connect(&c.nodes[1]), "startup cannot read WAL");
        c.nodes[1].startup.as_mut().unwrap().read_error = None;
        c.nodes[1].upstream = Some(NodeId(1));
        assert!(!c.can_connect(&c.nodes[1]), "itself");
        c.nodes[1].upstream = Some(NodeId(0));
        c.connect(NodeId(1));
        assert!(c.fx.refusals.is_empty());
        assert!(!c.can_connect(&c.nodes[1]), "connected already");
    }

    #[test]
    fn after_a_refusal_a_standby_retries_once_something_changed() {
        let mut c = disconnected();
        c.refuse(NodeId(1), RefusalKind::AheadOfFlush, "test".into());
        assert!(!c.can_connect(&c.nodes[1]), "nothing changed");
        let tli = c.nodes[0].tli;
        c.nodes[0].wal.insert(tli, Xid(0), RecordBody::Abort);
        let end = c.nodes[0].wal.end();
        c.nodes[0].wal.flush_upto(end);
        assert!(c.can_connect(&c.nodes[1]), "the upstream flushed more");
    }

    #[test]
    fn streaming_may_start_exactly_at_the_upstreams_flush_position() {
        let mut c = quiesced(1, 300);
        let tli = c.nodes[0].tli;
        c.nodes[0].wal.insert(tli, Xid(0), RecordBody::Switch);
        let end = c.nodes[0].wal.end();
        c.nodes[0].wal.flush_upto(end);
        settle(&mut c);
        assert_eq!(c.nodes[1].wal.end(), end, "the standby received the switch");
        assert_eq!(c.nodes[1].wal.geometry().segment_start(end), end, "a switch ends a segment");
        c.drop_conns_where(|x| x.downstream == NodeId(1), "test");
        c.fx.clear();
        assert_eq!(c.nodes[1].streaming_start(), (end, tli));
        assert_eq!(c.sendable_upto(&c.nodes[0]), end);
        c.connect(NodeId(1));
        assert!(c.fx.refusals.is_empty(), "{:?}", c.fx.refusals);
        assert!(c.nodes[1].walrcv.refused.is_none());
        assert!(c.conns.iter().any(|x| x.downstream == NodeId(1)));
    }

    /// node1's WAL where node2's last replayed record starts is another
    /// record (of timeline 2), so the WAL node1 sends next, though it
    /// starts exactly at node2's replay position with the right prev-link,
    /// continues another history.
    fn diverged_at_the_last_replayed_record() -> (Cluster, Lsn, Lsn) {
        let mut c = disconnected();
        let st = c.nodes[1].startup.as_ref().unwrap();
        let (reader, last_start) = (st.replayed, st.replayed_start);
        assert_eq!(c.nodes[1].wal.end(), reader);
        let mine = c.nodes[1].wal.record_at(last_start).unwrap().clone();
        let up = &mut c.nodes[0].wal;
        up.truncate(last_start);
        let other = up.insert(mine.tli.next(), mine.xid, mine.body.clone()).clone();
        assert_eq!((other.lsn, other.end), (mine.lsn, mine.end));
        assert_ne!(other, mine);
        (c, reader, last_start)
    }

    #[test]
    fn replaying_another_history_at_the_replay_position_is_reported() {
        let (mut c, reader, last_start) = diverged_at_the_last_replayed_record();
        let next = c.nodes[0].wal.insert(Tli(2), Xid(0), RecordBody::Abort).clone();
        assert_eq!(next.lsn.0, reader.0.next_multiple_of(8), "starts at the reader");
        let v = c.receive_wal(NodeId(1), NodeId(0), vec![next]).expect("silent divergence");
        assert_eq!((v.invariant, v.node), (Invariant::NoSilentDivergence, Some(NodeId(1))));
        assert!(v.detail.contains(&format!("right after its own record at {last_start}")), "{}", v.detail);
    }

    #[test]
    fn the_same_history_at_the_replay_position_is_replayed() {
        let mut c = disconnected();
        let reader = c.nodes[1].startup.as_ref().unwrap().replayed;
        let tli = c.nodes[0].tli;
        let next = c.nodes[0].wal.insert(tli, Xid(0), RecordBody::Abort).clone();
        assert_eq!(c.receive_wal(NodeId(1), NodeId(0), vec![next.clone()]), None);
        assert_eq!(c.nodes[1].wal.records().last(), Some(&next));
        assert!(next.lsn >= reader);
    }

    #[test]
    fn a_record_spanning_the_replay_position_does_not_parse() {
        let (mut c, reader, last_start) = diverged_at_the_last_replayed_record();
        c.nodes[0].wal.truncate(last_start);
        let big = c.nodes[0].wal.insert(Tli(2), Xid(0), RecordBody::Switch).clone();
        assert!(big.lsn < reader && big.end > reader);
        assert_eq!(c.receive_wal(NodeId(1), NodeId(0), vec![big]), None);
        let why = c.nodes[1].startup.as_ref().unwrap().read_error.clone().expect("cannot read");
        assert!(why.starts_with(&format!("invalid record length at {reader}")), "{why}");
        assert_eq!(c.nodes[1].wal.end(), reader, "nothing appended");
    }

    /// A standby asks for a timeline its upstream has never heard of
    /// (timeline 3, where the upstream is on 1): the walsender refuses
    /// ("requested timeline 3 is not in this server's history") — unless
    /// `rules.walsender_checks_start_point` is off, the planted bug.
    #[test]
    fn a_timeline_unknown_to_the_upstream_is_refused_only_with_the_check() {
        for check in [true, false] {
            let mut c =
                crate::testkit::quiesced_with(1, 300, |s| s.rules.walsender_checks_start_point = check);
            c.drop_conns_where(|x| x.downstream == NodeId(1), "test");
            c.fx.clear();
            let end = c.nodes[1].wal.end();
            c.nodes[1].history.add_child(Tli(3), Tli(1), Lsn(end.0 + 0x1000), "x");
            c.nodes[1].walrcv.target_tli = Tli(3);
            assert_eq!(c.nodes[1].streaming_start().1, Tli(1), "the record it waits for is on timeline 1");
            c.nodes[1].history = crate::timeline::History::default();
            c.nodes[1].history.add_child(Tli(3), Tli(2), Lsn(0), "x");
            assert_eq!(c.nodes[1].streaming_start().1, Tli(3));
            c.connect(NodeId(1));
            let refused: Vec<_> = c.fx.refusals.iter().map(|r| r.2.clone()).collect();
            if check {
                assert_eq!(refused, ["requested timeline 3 is not in this server's history"]);
            } else {
                assert!(refused.is_empty(), "{refused:?}");
            }
        }
    }

    /// Where a standby reads into the middle of a record of another
    /// history, the error names what PostgreSQL's xlogreader would have
    /// read there: inside a tuple's md5 text, a hex digit taken for the
    /// resource manager ID (one nibble of the payload per 8 bytes of
    /// offset); elsewhere, a length field.
    #[test]
    fn a_framing_error_names_the_byte_read_there() {
        use crate::heap::Tuple;
        let tuple =
            Tuple { key: 1, payload: 0xFEDC_BA98_7654_3210, xmin: Xid(3), xmax: Xid::INVALID, infomask: 0 };
        let rec = |body| Record {
            lsn: Lsn(0x1000),
            end: Lsn(0x1100),
            tli: Tli(1),
            prev: Lsn(0),
            xid: Xid(3),
            body,
        };
        let insert =
            rec(RecordBody::HeapInsert { block: crate::ids::BlockNumber(0), offnum: 1, tuple, image: None });
        assert_eq!(framing_error_inside(&insert, Lsn(0x1000)), "invalid resource manager ID 48 at 0/1000");
        assert_eq!(framing_error_inside(&insert, Lsn(0x1008)), "invalid resource manager ID 49 at 0/1008");
        assert_eq!(framing_error_inside(&insert, Lsn(0x1050)), "invalid resource manager ID 97 at 0/1050");
        assert_eq!(framing_error_inside(&insert, Lsn(0x1080)), "invalid resource manager ID 48 at 0/1080");
        let commit = rec(RecordBody::Commit);
        assert_eq!(
            framing_error_inside(&commit, Lsn(0x1020)),
            "invalid record length at 0/1020: wanted 24, got 8"
        );
    }

    /// How far a walsender may send: a primary its flushed WAL (or all it
    /// inserted with the rule off); a cascading standby the larger of its
    /// received-and-flushed and replayed WAL, or only what it replayed
    /// once its walreceiver is gone (GetStandbyFlushRecPtr).
    #[test]
    fn send_upto_is_flush_on_a_primary_and_replay_or_flush_on_a_cascading_standby() {
        let mut c = quiesced(1, 200);
        let p = &mut c.nodes[0];
        let tli = p.tli;
        let end = p.wal.insert(tli, Xid(0), RecordBody::Abort).end;
        let flushed = p.wal.flush_lsn();
        assert!(flushed < end);
        assert_eq!((p.send_upto(true, true), p.send_upto(false, true)), (flushed, end));
        let s = &mut c.nodes[1];
        let flushed = s.wal.flush_lsn();
        let replayed = Lsn(flushed.0 - 8);
        s.startup.as_mut().unwrap().replayed = replayed;
        assert_eq!(s.send_upto(true, true), flushed);
        assert_eq!(s.send_upto(true, false), replayed);
        assert_eq!(s.send_upto(false, false), replayed);
        // Promoted, its end-of-recovery checkpoint still to come (the
        // startup process not gone yet): a primary sends what it flushed.
        s.status = Status::Production;
        assert_eq!(s.send_upto(true, false), flushed);
    }

    /// START_REPLICATION through a slot the upstream does not have is
    /// refused with ReplicationSlotAcquire's ERROR; through one it has, it
    /// streams.
    #[test]
    fn streaming_through_a_missing_slot_is_refused() {
        let mut c = disconnected();
        c.nodes[1].primary_slot_name = Some("nope".into());
        c.connect(NodeId(1));
        let refused: Vec<_> = c.fx.refusals.iter().map(|r| (r.1, r.2.clone())).collect();
        assert_eq!(
            refused,
            [(RefusalKind::SlotDoesNotExist, "ERROR: replication slot \"nope\" does not exist".into())]
        );
        assert!(c.nodes[1].walrcv.refused.is_some());
        assert!(!c.conns.iter().any(|x| x.downstream == NodeId(1)));
        let mut c = disconnected();
        c.nodes[0].slots.push(crate::node::ReplSlot {
            name: "s".into(),
            restart_lsn: Lsn(0),
            invalidated: false,
        });
        c.nodes[1].primary_slot_name = Some("s".into());
        c.connect(NodeId(1));
        assert!(c.fx.refusals.is_empty(), "{:?}", c.fx.refusals);
        assert!(c.conns.iter().any(|x| x.downstream == NodeId(1)));
    }

    /// A standby whose next segment its upstream already removed is refused
    /// at START_REPLICATION (the walsender's first read fails): "requested
    /// WAL segment %s has already been removed", naming the segment file
    /// of the start point.
    #[test]
    fn streaming_from_a_removed_segment_is_refused() {
        let mut c = disconnected();
        let (start, tli) = c.nodes[1].streaming_start();
        let p = &mut c.nodes[0];
        for _ in 0..3 {
            p.wal.insert(tli, Xid(0), RecordBody::Switch);
        }
        let end = p.wal.end();
        p.wal.flush_upto(end);
        assert!(p.wal.remove_before(end).is_some());
        assert!(p.wal.segment_removed(start));
        let seg = p.wal.geometry().wal_file_name(tli, start);
        c.connect(NodeId(1));
        let refused: Vec<_> = c.fx.refusals.iter().map(|r| (r.1, r.2.clone())).collect();
        let msg = format!("ERROR: requested WAL segment {seg} has already been removed");
        assert_eq!(refused, [(RefusalKind::SegmentRemoved, msg)]);
        assert!(!c.conns.iter().any(|x| x.downstream == NodeId(1)));
    }

    /// What the reader finds where its own WAL ends: a record that starts
    /// later (a gap) reads as zeroes there, one with a prev-link that is
    /// not the last record is refused (xlogreader's messages); a record
    /// already there is taken as received again, not appended twice.
    /// Without the framing checks (the planted bug) both are appended.
    #[test]
    fn received_wal_must_continue_the_standbys_own() {
        for checks in [true, false] {
            let mut c = crate::testkit::quiesced_with(1, 300, |s| s.rules.wal_reader_checks_framing = checks);
            c.drop_conns_where(|x| x.downstream == NodeId(1), "test");
            let n = &c.nodes[1];
            let (end, last) = (n.wal.end(), n.wal.last_start());
            let tli = n.tli;
            let at = |lsn: u64, prev: Lsn| Record {
                lsn: Lsn(lsn),
                end: Lsn(lsn + 40),
                tli,
                prev,
                xid: Xid(0),
                body: RecordBody::Abort,
            };
            // Already there: nothing changes.
            let mine = n.wal.records().last().unwrap().clone();
            assert_eq!(c.receive_wal(NodeId(1), NodeId(0), vec![mine]), None);
            assert_eq!(c.nodes[1].wal.end(), end);
            assert!(c.nodes[1].startup.as_ref().unwrap().read_error.is_none());
            let mut gap = c.clone();
            gap.receive_wal(NodeId(1), NodeId(0), vec![at(end.0 + 64, last)]);
            let mut bad_prev = c.clone();
            bad_prev.receive_wal(NodeId(1), NodeId(0), vec![at(end.0, Lsn(8))]);
            let why = |c: &Cluster| c.nodes[1].startup.as_ref().unwrap().read_error.clone();
            if checks {
                assert_eq!(why(&gap), Some(format!("invalid record length at {end}: wanted 24, got 0")));
                assert_eq!(why(&bad_prev), Some(format!("record with incorrect prev-link 0/8 at {end}")));
                assert_eq!((gap.nodes[1].wal.end(), bad_prev.nodes[1].wal.end()), (end, end));
            } else {
                assert_eq!((why(&gap), why(&bad_prev)), (None, None));
                assert_eq!(gap.nodes[1].wal.end(), Lsn(end.0 + 104));
                assert_eq!(bad_prev.nodes[1].wal.end(), Lsn(end.0 + 40));
            }
            // The right record is appended and written (not yet flushed).
            c.receive_wal(NodeId(1), NodeId(0), vec![at(end.0, last)]);
            let w = &c.nodes[1].wal;
            assert_eq!((w.end(), w.write_lsn()), (Lsn(end.0 + 40), Lsn(end.0 + 40)));
            assert_eq!(w.flush_lsn(), end);
        }
    }

    /// The startup process asks for streaming only once its local WAL is
    /// replayed (WaitForWALToBecomeAvailable tries pg_wal first).
    #[test]
    fn a_standby_with_local_wal_to_replay_does_not_connect_yet() {
        let mut c = disconnected();
        assert!(c.can_connect(&c.nodes[1]));
        c.nodes[1].startup.as_mut().unwrap().next -= 1;
        assert!(!c.can_connect(&c.nodes[1]));
    }

    /// A standby whose WAL goes further than its upstream flushed (here:
    /// into the next segment) is refused on the same timeline:
    /// "requested starting point %X/%X is ahead of the WAL flush position
    /// of this server %X/%X".
    #[test]
    fn a_standby_ahead_of_its_upstream_is_refused() {
        let mut c = disconnected();
        c.log = crate::log::Log::new(true);
        let s = &mut c.nodes[1];
        let tli = s.tli;
        s.wal.insert(tli, Xid(0), RecordBody::Switch);
        let end = s.wal.end();
        s.wal.flush_upto(end);
        let (start, _) = c.nodes[1].streaming_start();
        assert_eq!(start, end, "a switch ends a segment");
        let flush = c.sendable_upto(&c.nodes[0]);
        assert!(start > flush);
        c.connect(NodeId(1));
        let msg = format!(
            "requested starting point {start} is ahead of the WAL flush position of this server {flush}"
        );
        let refused: Vec<_> = c.fx.refusals.iter().map(|r| (r.1, r.2.clone())).collect();
        assert_eq!(refused, [(RefusalKind::AheadOfFlush, format!("ERROR: {msg}"))]);
        let lines: Vec<_> =
            c.log.drain().map(|l| format!("{} {}: {}", l.node.name(), l.level.name(), l.message)).collect();
        assert!(lines.contains(&format!("node1 ERROR: {msg}")), "{lines:#?}");
        assert!(
            lines.contains(&format!("node2 FATAL: could not receive data from WAL stream: ERROR:  {msg}")),
            "{lines:#?}"
        );
        assert!(!c.conns.iter().any(|x| x.downstream == NodeId(1)));
    }

    /// Received WAL that starts inside the standby's own WAL beyond what it
    /// replayed replaces its own from there (the reader reads the received
    /// timeline's file); WAL appended at the end replaces nothing.
    #[test]
    fn received_wal_supersedes_the_standbys_unreplayed_own() {
        let mut c = disconnected();
        c.log = crate::log::Log::new(true);
        let s = &mut c.nodes[1];
        let (p, last) = (s.wal.end(), s.wal.last_start());
        let tli = s.tli;
        s.wal.insert(tli, Xid(9), RecordBody::Commit);
        assert_eq!(s.startup.as_ref().unwrap().replayed, p, "its own record at {p} is not replayed");
        // The same record as its own unreplayed one: taken as received,
        // nothing replaced.
        let own = c.nodes[1].wal.records().last().unwrap().clone();
        assert_eq!(c.receive_wal(NodeId(1), NodeId(0), vec![own.clone()]), None);
        assert_eq!(c.nodes[1].wal.records().last(), Some(&own));
        assert!(!c.log.drain().any(|l| l.message.contains("will be read from")));
        let rec =
            Record { lsn: p, end: Lsn(p.0 + 40), tli, prev: last, xid: Xid(0), body: RecordBody::Abort };
        assert_eq!(c.receive_wal(NodeId(1), NodeId(0), vec![rec.clone()]), None);
        let s = &c.nodes[1];
        assert_eq!(s.wal.records().last(), Some(&rec));
        assert!(s.startup.as_ref().unwrap().read_error.is_none());
        let lines: Vec<_> = c.log.drain().map(|l| l.message).collect();
        assert!(lines.contains(&format!("WAL from {p} on will be read from what node1 sent")), "{lines:#?}");
        // The next record, at the end: appended, nothing replaced.
        let next = Record { lsn: rec.end, end: Lsn(rec.end.0 + 40), prev: rec.lsn, ..rec.clone() };
        assert_eq!(c.receive_wal(NodeId(1), NodeId(0), vec![next.clone()]), None);
        assert_eq!(c.nodes[1].wal.records().last(), Some(&next));
        assert!(!c.log.drain().any(|l| l.message.contains("will be read from")));
    }

    /// WAL the reader cannot parse ends the streaming connection (the
    /// startup process restarts the walreceiver, forever).
    #[test]
    fn a_read_error_drops_the_connection() {
        let mut c = quiesced(1, 300);
        assert!(c.conns.iter().any(|x| x.downstream == NodeId(1)));
        let s = &c.nodes[1];
        let end = s.wal.end();
        let rec = Record {
            lsn: end,
            end: Lsn(end.0 + 40),
            tli: s.tli,
            prev: Lsn(8),
            xid: Xid(0),
            body: RecordBody::Abort,
        };
        c.receive_wal(NodeId(1), NodeId(0), vec![rec]);
        assert!(c.nodes[1].startup.as_ref().unwrap().read_error.is_some());
        assert!(!c.conns.iter().any(|x| x.downstream == NodeId(1)));
    }

    /// "Caught up with this primary as a synchronous candidate" survives a
    /// reconnection to the same upstream and is forgotten on connecting to
    /// another (whose WAL it has not caught up with yet).
    #[test]
    fn a_reconnection_keeps_what_the_standby_caught_up_with_only_for_the_same_upstream() {
        let mut c = quiesced(2, 200);
        assert_eq!(c.nodes[1].synced_to, Some(NodeId(0)));
        c.drop_conns_where(|x| x.downstream == NodeId(1), "test");
        c.connect(NodeId(1));
        assert!(c.fx.refusals.is_empty());
        assert_eq!(c.nodes[1].synced_to, Some(NodeId(0)), "same upstream");
        c.drop_conns_where(|x| x.downstream == NodeId(2), "test");
        c.nodes[2].upstream = Some(NodeId(1));
        assert!(c.can_connect(&c.nodes[2]));
        c.connect(NodeId(2));
        assert!(c.conns.iter().any(|x| x.upstream == NodeId(1) && x.downstream == NodeId(2)));
        assert_eq!(c.nodes[2].synced_to, None, "a cascading upstream");
    }
}
