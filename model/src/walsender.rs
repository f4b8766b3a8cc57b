//! The walsender (walsender.c): streams WAL its server has flushed to a
//! connected standby, takes the standby's status updates (which release
//! sync-rep waiters), and at fast shutdown sends everything left before
//! the server may exit (WalSndDone).

use crate::cluster::Cluster;
use crate::ids::NodeId;
use crate::log::Process;
use crate::network::{Conn, Msg};
use crate::node::Status;
use crate::slog;
use crate::violation::Violation;

/// Records per XLogData message (a stand-in for MAX_SEND_SIZE).
const SEND_BATCH: usize = 8;

impl Cluster {
    /// Whether the walsender of `c` has WAL to send.
    pub(crate) fn walsender_ready(&self, c: &Conn) -> bool {
        let up = &self.nodes[c.upstream.index()];
        if c.cursor < up.wal.first_index() {
            return true; // the next read fails: the segment was removed
        }
        let limit = self.send_limit(c);
        up.wal.get(c.cursor).is_some_and(|r| r.end <= limit)
    }

    /// How far the walsender of `c` may send: its server's flushed WAL, and
    /// no further than the end of the timeline streamed.
    fn send_limit(&self, c: &Conn) -> crate::lsn::Lsn {
        let up = &self.nodes[c.upstream.index()];
        let upto = self.sendable_upto(up);
        self.timeline_end(c).map_or(upto, |end| end.min(upto))
    }

    /// How far node `up`'s walsenders may send.
    pub(crate) fn sendable_upto(&self, up: &crate::node::Node) -> crate::lsn::Lsn {
        let streaming = self.conns.iter().any(|c| c.downstream == up.id);
        up.send_upto(self.settings().rules.walsender_sends_only_flushed, streaming)
    }

    /// Where the streamed timeline ends, if it is historic for the upstream.
    fn timeline_end(&self, c: &Conn) -> Option<crate::lsn::Lsn> {
        let up = &self.nodes[c.upstream.index()];
        (c.tli != up.tli).then(|| up.history.switch_point(up.tli, c.tli).unwrap_or(crate::lsn::Lsn(0)))
    }

    /// Whether `c` streams its upstream's current timeline.
    pub(crate) fn on_current_timeline(&self, c: &Conn) -> bool {
        self.timeline_end(c).is_none()
    }

    /// Connections whose historic timeline has been sent to its end and
    /// delivered end (the walsender sends end-of-timeline; the walreceiver
    /// starts over with START_REPLICATION, so the checks run again).
    pub(crate) fn end_finished_timelines(&mut self) {
        let done: Vec<NodeId> = self
            .conns
            .iter()
            .filter(|c| c.to_standby.is_empty())
            .filter(|c| {
                self.timeline_end(c).is_some_and(|end| {
                    let up = &self.nodes[c.upstream.index()];
                    up.wal.get(c.cursor).is_none_or(|r| r.end > end)
                })
            })
            .map(|c| c.downstream)
            .collect();
        if !done.is_empty() {
            self.invalidate_enabled();
        }
        for d in done {
            let tli = self.conns[self.conn_index(d).expect("listed")].tli;
            slog!(
                self.log,
                d,
                Process::WalReceiver,
                Log,
                "replication terminated by primary server: end of WAL reached on timeline {}",
                tli
            );
            self.drop_conns_where(|c| c.downstream == d, "end of timeline");
            self.rescan_latest_timeline(d);
        }
    }

    /// WalSndSegmentOpen: the name of the segment file the walsender on `u`
    /// opens for `lsn` while streaming timeline `tli`. On a historic
    /// timeline the segment holding its switch point is read from the next
    /// timeline's file, which holds the same WAL up to the switch
    /// (`sendTimeLineNextTLI`); this is the name "requested WAL segment %s
    /// has already been removed" quotes.
    pub(crate) fn walsender_segment_file(
        &self,
        u: NodeId,
        tli: crate::lsn::Tli,
        lsn: crate::lsn::Lsn,
    ) -> String {
        let up = &self.nodes[u.index()];
        let g = up.wal.geometry();
        let file_tli = match (up.history.switch_point(up.tli, tli), up.history.next_tli(up.tli, tli)) {
            (Some(end), Some(next)) if g.segno(end) == g.segno(lsn) => next,
            _ => tli,
        };
        g.wal_file_name(file_tli, lsn)
    }

    /// XLogSendPhysical: the next batch of records.
    pub(crate) fn walsender_send(&mut self, up: NodeId, down: NodeId) {
        let i = self.conn_index(down).expect("enabled walsender has a connection");
        let limit = self.send_limit(&self.conns[i]);
        let c = &self.conns[i];
        let upw = &self.nodes[up.index()].wal;
        if c.cursor < upw.first_index() {
            // The standby lagged behind a checkpoint that removed the
            // segment it needs next: the walsender's read fails, the
            // connection ends, and the walreceiver's retry is refused.
            let seg = self.walsender_segment_file(up, c.tli, c.sent);
            self.segment_removed_error(up, down, &seg);
            self.drop_conns_where(|c| c.downstream == down, "requested WAL segment has already been removed");
            return;
        }
        let batch: Vec<_> = self.nodes[up.index()]
            .wal
            .from_index(c.cursor)
            .iter()
            .take_while(|r| r.end <= limit)
            .take(SEND_BATCH)
            .cloned()
            .collect();
        let (first, last) = (batch[0].lsn, batch[batch.len() - 1].end);
        debug_assert!(last <= limit, "sent {last} beyond the send limit {limit}");
        let c = &mut self.conns[i];
        // A walsender's sent position only moves forward on a connection
        // (unless the planted bug streams from before the start point).
        debug_assert!(
            last > c.sent || !self.settings.rules.walsender_checks_start_point,
            "sent WAL up to {last} after {}",
            c.sent
        );
        c.cursor += batch.len();
        c.sent = last;
        c.to_standby.push_back(Msg::WalData(batch));
        slog!(self.log, up, Process::WalSender(down), Debug, "sent WAL {}..{} to {}", first, last, down);
    }

    pub(crate) fn conn_index(&self, downstream: NodeId) -> Option<usize> {
        self.conns.iter().position(|c| c.downstream == downstream)
    }

    /// Delivers the next message from `from` to `to`.
    pub(crate) fn deliver(&mut self, to: NodeId, from: NodeId) -> Option<Violation> {
        let i = self.conns.iter().position(|c| c.joins(to, from)).expect("enabled delivery has a connection");
        if self.conns[i].downstream == to {
            let Some(Msg::WalData(records)) = self.conns[i].to_standby.pop_front() else {
                unreachable!("only WAL flows to a standby")
            };
            let v = self.receive_wal(to, from, records);
            if v.is_none() {
                self.send_reply(to);
            }
            v
        } else {
            let Some(Msg::Reply(pos)) = self.conns[i].to_upstream.pop_front() else {
                unreachable!("only replies flow upstream")
            };
            // PhysicalConfirmReceivedLocation: the standby's slot keeps WAL
            // from its flush position on.
            let slot = self.nodes[from.index()].primary_slot_name.clone();
            let up = &mut self.nodes[to.index()];
            if let Some(w) = up.walsenders.iter_mut().find(|w| w.peer == from) {
                w.reported = pos;
            }
            if let Some(s) = slot.and_then(|name| up.slots.iter_mut().find(|s| s.name == name))
                && !s.invalidated
                && pos.flush.is_valid()
            {
                s.restart_lsn = pos.flush;
            }
            slog!(
                self.log,
                to,
                Process::WalSender(from),
                Debug,
                "standby {} reports write {} flush {} apply {}",
                from,
                pos.write,
                pos.flush,
                pos.apply
            );
            // ProcessStandbyReplyMessage: a primary's walsender releases
            // waiters (a cascading one does not).
            let rules = &self.settings.rules;
            self.nodes[to.index()].release_waiters(from, rules, &mut self.log);
            None
        }
    }

    /// Whether `d`'s walreceiver would send a status update now although
    /// its positions have not changed: wal_receiver_status_interval
    /// passes, and the reply would change what its upstream's walsender
    /// did last (release waiters, or announce a takeover), so only a
    /// reply that matters is an event.
    pub(crate) fn status_reply_due(&self, d: &crate::node::Node) -> bool {
        let Some(c) = self.conns.iter().find(|c| c.downstream == d.id) else { return false };
        if !c.to_upstream.is_empty() {
            return false;
        }
        let up = &self.nodes[c.upstream.index()];
        let Some(w) = up.walsenders.iter().find(|w| w.peer == d.id) else { return false };
        let (ctl, announce, line) = up.release_outcome(d.id, &self.settings.rules);
        ctl != up.walsndctl || announce != w.announce_next_takeover || line.is_some()
    }

    /// A walsender that has sent everything it can on its upstream's
    /// current timeline is caught up: it moves from catchup to streaming
    /// and its standby becomes a synchronous candidate.
    pub(crate) fn mark_caught_up(&mut self) {
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let (u, d) = (c.upstream, c.downstream);
            // Runs every step: the cheap test (still in catchup) first.
            let fresh = self.nodes[u.index()].walsenders.iter().any(|w| w.peer == d && !w.streaming);
            if fresh && self.on_current_timeline(c) && !self.walsender_ready(c) {
                self.invalidate_enabled();
                let w = self.nodes[u.index()].walsenders.iter_mut().find(|w| w.peer == d).expect("listed");
                w.streaming = true;
                self.nodes[d.index()].synced_to = Some(u);
                slog!(
                    self.log,
                    u,
                    Process::WalSender(d),
                    Debug,
                    "\"{}\" has now caught up with upstream server",
                    d
                );
            }
        }
    }

    /// Drops connections matching `pred` (their in-flight messages are
    /// lost) and the walsender entries behind them.
    pub(crate) fn drop_conns_where(&mut self, pred: impl Fn(&Conn) -> bool, why: &str) {
        let mut i = 0;
        while i < self.conns.len() {
            if pred(&self.conns[i]) {
                self.invalidate_enabled();
                let c = self.conns.remove(i);
                self.nodes[c.upstream.index()].walsenders.retain(|w| w.peer != c.downstream);
                // An exiting walreceiver flushes what it wrote (WalRcvDie).
                let d = &mut self.nodes[c.downstream.index()];
                if d.is_running() {
                    let w = d.wal.write_lsn();
                    d.wal.flush_upto(w);
                }
                slog!(
                    self.log,
                    c.downstream,
                    Process::WalReceiver,
                    Log,
                    "replication connection to {} lost: {}",
                    c.upstream,
                    why
                );
            } else {
                i += 1;
            }
        }
    }

    /// Fast shutdown of a primary ends once every walsender has sent all
    /// WAL and its standby confirmed flushing it (WalSndDone), or lost its
    /// connection.
    pub(crate) fn finish_shutdowns(&mut self) {
        for n in 0..self.nodes.len() {
            let node = &self.nodes[n];
            if node.status != Status::ShuttingDown || !node.shutdown_ckpt_done {
                continue;
            }
            let end = node.wal.end();
            let done = self.conns.iter().filter(|c| c.upstream.index() == n).all(|c| {
                let sent_all = c.cursor >= node.wal.end_index() || !self.on_current_timeline(c);
                sent_all
                    && c.to_standby.is_empty()
                    && node.walsenders.iter().any(|w| w.peer == c.downstream && w.reported.flush >= end)
            });
            if done {
                let id = node.id;
                self.invalidate_enabled();
                self.drop_conns_where(|c| c.touches(id), "server shut down");
                self.with_node(n, |node, ctx| node.finish_shutdown(ctx));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ids::{NodeId, Tli};
    use crate::lsn::Lsn;
    use crate::testkit::quiesced;

    /// wal_receiver_status_interval: with nothing new received, a status
    /// reply is an event only when it would change what the primary's
    /// walsender did last — release waiters further, or announce the
    /// standby as synchronous — and only over a live connection.
    #[test]
    fn a_status_reply_with_nothing_new_is_due_only_when_it_matters() {
        let base = quiesced(1, 300);
        assert!(!base.status_reply_due(&base.nodes[1]), "quiesced: the reply changes nothing");
        let mut c = base.clone();
        c.nodes[0].walsenders.iter_mut().for_each(|w| w.announce_next_takeover = true);
        assert!(c.status_reply_due(&c.nodes[1]), "announces the synchronous standby");
        // No longer a candidate (reloaded names leave it out): the next
        // reply re-arms the takeover announcement, with no line to log.
        let mut c = base.clone();
        c.nodes[0].gucs.names = crate::syncrep::StandbyNames::parse("FIRST 1 (other)").unwrap();
        assert!(!c.nodes[0].walsenders[0].announce_next_takeover);
        assert!(c.status_reply_due(&c.nodes[1]), "re-arms the announcement");
        let mut c = base.clone();
        let released = c.nodes[0].walsndctl.lsn[0];
        assert!(released > Lsn(0));
        c.nodes[0].walsndctl.lsn = [Lsn(0); 3];
        assert!(c.status_reply_due(&c.nodes[1]), "releases waiters up to {released}");
        c.drop_conns_where(|x| x.downstream == NodeId(1), "test");
        assert!(!c.status_reply_due(&c.nodes[1]), "no connection");
    }

    /// WalSndSegmentOpen on a historic timeline: the segment holding the
    /// switch point is read from the next timeline's file (which holds the
    /// same WAL up to the switch); earlier segments from the timeline's
    /// own; the current timeline's from its own.
    #[test]
    fn a_historic_timelines_last_segment_is_the_next_timelines_file() {
        use crate::script::{Action, Step};
        let mut c = quiesced(2, 200);
        std::sync::Arc::make_mut(&mut c.settings).operator =
            vec![Step::new(Action::StopImmediate, "node1"), Step::new(Action::Promote, "node2")];
        crate::testkit::settle(&mut c);
        let up = &c.nodes[1];
        assert_eq!(up.tli, Tli(2));
        let sp = up.history.switch_point(Tli(2), Tli(1)).expect("forked");
        let g = *up.wal.geometry();
        let file = |tli, lsn| c.walsender_segment_file(NodeId(1), tli, lsn);
        assert_eq!(file(Tli(1), sp), g.wal_file_name(Tli(2), sp));
        let seg_start = g.segment_start(sp);
        assert_eq!(file(Tli(1), seg_start), g.wal_file_name(Tli(2), seg_start));
        let before = Lsn(seg_start.0 - 1);
        assert_eq!(file(Tli(1), before), g.wal_file_name(Tli(1), before));
        assert_eq!(file(Tli(2), sp), g.wal_file_name(Tli(2), sp));
        assert_ne!(g.wal_file_name(Tli(1), sp), g.wal_file_name(Tli(2), sp));
    }

    /// PhysicalConfirmReceivedLocation: a standby's flush reports move its
    /// slot's restart_lsn to the flushed position; an invalidated slot
    /// stays as it is.
    #[test]
    fn flush_reports_advance_the_standbys_slot() {
        let c = crate::testkit::quiesced_with(1, 300, |s| s.cluster.replication_slots = true);
        let flushed = c.nodes[1].wal.flush_lsn();
        assert_eq!(c.nodes[0].walsenders[0].reported.flush, flushed);
        let slot = &c.nodes[0].slots[0];
        assert_eq!((slot.name.as_str(), slot.restart_lsn), ("node2", flushed));
        assert!(flushed > c.nodes[0].wal.records()[0].end, "moved on from the backup's REDO");
        // An invalidated slot does not move.
        let mut c = crate::testkit::quiesced_with(1, 0, |s| s.cluster.replication_slots = true);
        let before = c.nodes[0].slots[0].restart_lsn;
        c.nodes[0].slots[0].invalidated = true;
        c.set_quiesce(false);
        let mut evs = Vec::new();
        for i in 0..300u64 {
            c.enabled(&mut evs);
            let ev = evs[(i as usize * 7) % evs.len()];
            c.apply(ev, i).expect("no violation");
        }
        crate::testkit::settle(&mut c);
        assert!(c.nodes[0].walsenders[0].reported.flush > before);
        assert_eq!(c.nodes[0].slots[0].restart_lsn, before);
    }

    /// A walsender whose standby has everything has nothing to do, also
    /// when every segment before its position was removed (its next read
    /// is not of a removed segment).
    #[test]
    fn a_caught_up_walsender_after_segment_removal_is_idle() {
        let mut c = quiesced(1, 300);
        let p = &mut c.nodes[0];
        let tli = p.tli;
        p.wal.insert(tli, crate::ids::Xid(0), crate::wal::RecordBody::Switch);
        let end = p.wal.end();
        p.wal.flush_upto(end);
        crate::testkit::settle(&mut c);
        assert_eq!(c.nodes[1].wal.flush_lsn(), end);
        assert!(c.nodes[0].wal.remove_before(end).is_some());
        let p = &c.nodes[0];
        assert_eq!(p.wal.first_index(), p.wal.end_index(), "no record retained");
        let conn = c.conns.iter().find(|x| x.downstream == NodeId(1)).expect("streaming");
        assert_eq!(conn.cursor, p.wal.first_index());
        assert!(!c.walsender_ready(conn));
    }

    /// A cascading standby's walsender sends up to what its server
    /// replayed, or also what its walreceiver flushed while one is
    /// connected to its own upstream (GetStandbyFlushRecPtr).
    #[test]
    fn a_cascading_walsender_counts_received_wal_only_while_receiving() {
        let mut c = quiesced(2, 200);
        c.drop_conns_where(|x| x.downstream == NodeId(2), "test");
        c.nodes[2].upstream = Some(NodeId(1));
        crate::testkit::settle(&mut c);
        assert!(c.conns.iter().any(|x| x.upstream == NodeId(1) && x.downstream == NodeId(2)), "cascading");
        let flushed = c.nodes[1].wal.flush_lsn();
        let replayed = Lsn(flushed.0 - 8);
        c.nodes[1].startup.as_mut().unwrap().replayed = replayed;
        assert_eq!(c.sendable_upto(&c.nodes[1]), flushed, "receiving from node1");
        c.drop_conns_where(|x| x.downstream == NodeId(1), "test");
        assert_eq!(c.sendable_upto(&c.nodes[1]), replayed, "no walreceiver");
    }

    /// A connection streaming a historic timeline ends once everything up
    /// to the switch point was sent: not while the record ending exactly
    /// at the switch point is still to send, and as soon as the next
    /// record to send is past it.
    #[test]
    fn a_historic_timeline_ends_after_its_last_record() {
        use crate::network::Conn;
        use crate::script::{Action, Step};
        let mut c = quiesced(2, 200);
        std::sync::Arc::make_mut(&mut c.settings).operator =
            vec![Step::new(Action::StopImmediate, "node1"), Step::new(Action::Promote, "node2")];
        crate::testkit::settle(&mut c);
        c.drop_conns_where(|x| x.downstream == NodeId(2), "test");
        let up = &c.nodes[1];
        let sp = up.history.switch_point(Tli(2), Tli(1)).expect("promoted");
        let last = up.wal.index_at(sp) - 1;
        assert_eq!(
            up.wal.get(last).map(|r| r.end),
            Some(sp),
            "the last record of timeline 1 ends at the switch"
        );
        let conn = |cursor| Conn::new(NodeId(1), NodeId(2), cursor, sp, Tli(1));
        c.conns.push(conn(last));
        c.end_finished_timelines();
        assert_eq!(
            c.conns.iter().filter(|x| x.downstream == NodeId(2)).count(),
            1,
            "its last record is still to send"
        );
        c.conns.retain(|x| x.downstream != NodeId(2));
        c.conns.push(conn(last + 1));
        // Everything up to the switch sent: not caught up with node2 (that
        // is its current timeline's WAL), no synchronous candidate.
        let rules = c.settings.rules.clone();
        c.nodes[1].add_walsender(crate::walsndctl::WalSndInfo::new(NodeId(2), "node3".into()), &rules);
        c.mark_caught_up();
        assert!(c.nodes[1].walsenders.iter().all(|w| w.peer != NodeId(2) || !w.streaming));
        c.end_finished_timelines();
        assert!(!c.conns.iter().any(|x| x.downstream == NodeId(2)), "everything up to the switch was sent");
    }

    /// A standby that lagged behind the promoted one streams the rest of
    /// the old timeline from it, up to the switch point and no further,
    /// then "end of WAL reached on timeline 1", and follows timeline 2:
    /// it ends with the new primary's WAL.
    #[test]
    fn a_lagging_standby_gets_the_old_timeline_to_its_end_then_the_new_one() {
        use crate::event::Event;
        use crate::script::{Action, Step};
        let mut c = quiesced(2, 200);
        c.set_quiesce(false);
        c.partitions.cut(NodeId(2), NodeId(0));
        c.drop_conns_where(|x| x.downstream == NodeId(2), "test");
        let mut evs = Vec::new();
        for i in 0..200u64 {
            c.enabled(&mut evs);
            let ev = evs[(i as usize * 7) % evs.len()];
            c.apply(ev, i).expect("no violation");
        }
        let behind = c.nodes[2].wal.end();
        assert!(behind < c.nodes[1].wal.end(), "node3 lags behind node2");
        std::sync::Arc::make_mut(&mut c.settings).operator =
            vec![Step::new(Action::StopImmediate, "node1"), Step::new(Action::Promote, "node2")];
        c.apply(Event::Operator { node: NodeId(0), step: 0 }, 0).expect("no violation");
        c.log = crate::log::Log::new(true);
        crate::testkit::settle(&mut c);
        let lines: Vec<String> = c.log.drain().map(|l| format!("{}: {}", l.node.name(), l.message)).collect();
        let (p, s) = (&c.nodes[1], &c.nodes[2]);
        let sp = p.history.switch_point(Tli(2), Tli(1)).expect("promoted");
        assert!(behind < sp, "node3 had not all of timeline 1");
        assert_eq!((p.tli, s.tli), (Tli(2), Tli(2)));
        assert_eq!(s.wal.end(), p.wal.end());
        let from = s.wal.records()[0].lsn.max(p.wal.records()[0].lsn);
        assert_eq!(s.wal.records_from(from), p.wal.records_from(from));
        let ended = "node3: replication terminated by primary server: end of WAL reached on timeline 1";
        assert_eq!(lines.iter().filter(|l| *l == ended).count(), 1, "{lines:#?}");
    }

    /// A standby whose next WAL was removed by a checkpoint while it
    /// lagged: the walsender's read fails ("requested WAL segment %s has
    /// already been removed", the segment of what it sent last) and that
    /// connection, only that one, ends.
    #[test]
    fn a_walsender_whose_next_segment_was_removed_ends_its_connection() {
        let mut c = quiesced(2, 300);
        let p = &mut c.nodes[0];
        let tli = p.tli;
        p.wal.insert(tli, crate::ids::Xid(0), crate::wal::RecordBody::Switch);
        let end = p.wal.end();
        p.wal.flush_upto(end);
        assert!(p.wal.remove_before(end).is_some());
        let conn = c.conns.iter().find(|x| x.downstream == NodeId(1)).expect("streaming").clone();
        assert!(conn.cursor < c.nodes[0].wal.first_index());
        assert!(c.walsender_ready(&conn), "its next read fails");
        let seg = c.nodes[0].wal.geometry().wal_file_name(tli, conn.sent);
        c.log = crate::log::Log::new(true);
        c.walsender_send(NodeId(0), NodeId(1));
        let lines: Vec<_> =
            c.log.drain().map(|l| format!("{} {}: {}", l.node.name(), l.level.name(), l.message)).collect();
        let msg = format!("requested WAL segment {seg} has already been removed");
        assert!(lines.contains(&format!("node1 ERROR: {msg}")), "{lines:#?}");
        assert!(
            lines.contains(&format!("node2 FATAL: could not receive data from WAL stream: ERROR:  {msg}"))
        );
        assert!(!c.conns.iter().any(|x| x.downstream == NodeId(1)));
        assert!(c.conns.iter().any(|x| x.downstream == NodeId(2)), "the other standby's connection stays");
    }

    /// A reply without a flush position (nothing fsynced yet) leaves the
    /// slot's restart_lsn where it is (PhysicalConfirmReceivedLocation
    /// only moves it to a valid position), while the walsender records
    /// the positions.
    #[test]
    fn a_reply_without_a_flush_position_keeps_the_slot() {
        use crate::network::Msg;
        use crate::syncrep::ReportedPositions;
        let mut c = crate::testkit::quiesced_with(1, 300, |s| s.cluster.replication_slots = true);
        let kept = c.nodes[0].slots[0].restart_lsn;
        assert!(kept.is_valid());
        let pos = ReportedPositions { write: Lsn(kept.0 + 8), flush: Lsn(0), apply: Lsn(0) };
        let i = c.conn_index(NodeId(1)).expect("streaming");
        c.conns[i].to_upstream.push_back(Msg::Reply(pos));
        assert_eq!(c.deliver(NodeId(0), NodeId(1)), None);
        assert_eq!(c.nodes[0].walsenders[0].reported, pos);
        assert_eq!(c.nodes[0].slots[0].restart_lsn, kept);
    }

    /// A walsender moves from catchup to streaming once it has sent all it
    /// can ("\"%s\" has now caught up with upstream server"), once: not
    /// while WAL is left to send, and a standby already streaming is not
    /// caught up again when another one connects.
    #[test]
    fn a_walsender_is_caught_up_once_it_sent_everything() {
        let mut c = quiesced(2, 200);
        c.drop_conns_where(|x| x.downstream == NodeId(2), "test");
        let p = &mut c.nodes[0];
        let tli = p.tli;
        for _ in 0..3 {
            p.wal.insert(tli, crate::ids::Xid(0), crate::wal::RecordBody::Abort);
        }
        let end = p.wal.end();
        p.wal.flush_upto(end);
        let conn = |c: &crate::cluster::Cluster, d: u8| {
            c.conns.iter().find(|x| x.downstream == NodeId(d)).unwrap().clone()
        };
        while c.walsender_ready(&conn(&c, 1)) {
            c.walsender_send(NodeId(0), NodeId(1));
        }
        c.connect(NodeId(2));
        assert!(c.walsender_ready(&conn(&c, 2)), "node3 is behind");
        c.log = crate::log::Log::new(true);
        c.mark_caught_up();
        let streaming = |c: &crate::cluster::Cluster| {
            c.nodes[0].walsenders.iter().map(|w| (w.name.clone(), w.streaming)).collect::<Vec<_>>()
        };
        assert_eq!(streaming(&c), [("node2".to_string(), true), ("node3".to_string(), false)]);
        assert_eq!(c.log.drain().count(), 0, "nobody caught up just now");
        while c.walsender_ready(&conn(&c, 2)) {
            c.walsender_send(NodeId(0), NodeId(2));
        }
        c.mark_caught_up();
        assert_eq!(streaming(&c), [("node2".to_string(), true), ("node3".to_string(), true)]);
        let lines: Vec<_> = c.log.drain().map(|l| l.message).filter(|m| m.contains("caught up")).collect();
        assert_eq!(lines, ["\"node3\" has now caught up with upstream server"]);
        assert_eq!(c.nodes[2].synced_to, Some(NodeId(0)));
    }

    /// WalSndDone: at a fast shutdown the primary exits only once its
    /// standby has confirmed flushing all WAL, the shutdown checkpoint
    /// included — its report of that comes before "database system is
    /// shut down".
    #[test]
    fn a_fast_shutdown_waits_for_the_standby_to_confirm_the_flush() {
        use crate::script::{Action, Step};
        let mut c = quiesced(1, 200);
        std::sync::Arc::make_mut(&mut c.settings).operator = vec![Step::new(Action::StopFast, "node1")];
        c.log = crate::log::Log::new(true);
        crate::testkit::settle(&mut c);
        let end = c.nodes[0].wal.end();
        assert!(matches!(
            c.nodes[0].wal.records().last().unwrap().body,
            crate::wal::RecordBody::CheckpointShutdown(_)
        ));
        let lines: Vec<_> = c.log.drain().map(|l| format!("{} {}", l.node.name(), l.message)).collect();
        let down = lines.iter().position(|l| l == "node1 database system is shut down").expect("shut down");
        let confirmed = lines
            .iter()
            .position(|l| l.starts_with("node1 standby") && l.contains(&format!(" flush {end} ")));
        assert!(confirmed.is_some_and(|i| i < down), "{lines:#?}");
    }
}
