//! Client backends running the seed experiment's workload (postgres.c,
//! xact.c, heapam.c, syncrep.c's waiting side).
//!
//! One transaction is: insert a random key into `test` (or update one of
//! the client's own rows), then COMMIT. Each step below is one event:
//! DML, inserting the commit record, flushing it, and finishing the
//! sync-rep wait, so crashes and other processes can fall between them.

use crate::clog::XidStatus;
use crate::event::{Ack, CommitRecord, Failure, Op, OpKind, Wait};
use crate::heap::Tuple;
use crate::ids::{BlockNumber, Xid};
use crate::log::Process;
use crate::lsn::Lsn;
use crate::marks::Mark;
use crate::node::{Ctx, Env, Node};
use crate::settings::SynchronousCommit;
use crate::slog;
use crate::syncrep::WaitMode;
use crate::wal::RecordBody;
use std::sync::Arc;

/// A backend's state machine.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub enum Backend {
    /// Between transactions.
    #[default]
    Idle,
    /// Blocked before its DML could run.
    Blocked { op: Op, wait: Wait },
    /// DML done; COMMIT is next.
    InXact { xid: Xid, op: Op },
    /// Commit record inserted, ending at `end`; XLogFlush is next.
    Committing { xid: Xid, op: Op, end: Lsn },
    /// In SyncRepWaitForLSN. `woken`: SyncRepWakeQueue(true) set it to
    /// SYNC_REP_WAIT_COMPLETE (`synchronous_standby_names` was cleared).
    SyncRepWait { xid: Xid, op: Op, end: Lsn, mode: WaitMode, woken: bool },
}

impl Backend {
    /// The session dies. Returns the transaction if it is in doubt: its
    /// commit record was inserted, so it may or may not have committed.
    pub fn abandon(&mut self) -> Option<Op> {
        match std::mem::take(self) {
            Backend::Committing { op, .. } | Backend::SyncRepWait { op, .. } => Some(op),
            _ => None,
        }
    }

    /// What the process title would show.
    pub fn wait(&self) -> Option<Wait> {
        match *self {
            Backend::Blocked { wait, .. } => Some(wait),
            Backend::SyncRepWait { end, mode, .. } => Some(Wait::SyncRep { lsn: end, mode }),
            _ => None,
        }
    }

    pub fn is_idle(&self) -> bool {
        matches!(self, Backend::Idle)
    }

    /// SyncRepWakeQueue(true): a waiter is released whatever it waits for.
    pub fn wake(&mut self) {
        if let Backend::SyncRepWait { woken, .. } = self {
            *woken = true;
        }
    }
}

impl Node {
    /// The transactions between inserting their commit record and marking
    /// it in CLOG, which a checkpoint must wait for (`DELAY_CHKPT_START`,
    /// GetVirtualXIDsDelayingChkpt).
    pub fn committing_xids(&self) -> impl Iterator<Item = Xid> + '_ {
        self.backends.iter().filter_map(|b| match *b {
            Backend::Committing { xid, .. } => Some(xid),
            _ => None,
        })
    }

    /// Terminates backend `b` (fast shutdown). An open transaction is
    /// aborted; one that inserted its commit record finishes committing
    /// locally, but the client never hears back.
    pub fn terminate_backend(&mut self, b: usize, ctx: &mut Ctx<'_>) {
        let proc = Process::Backend(b as u8);
        match std::mem::take(&mut self.backends[b]) {
            Backend::Idle => {}
            Backend::Blocked { op, .. } => ctx.fx.failed.push((op.client, op, Failure::Terminated)),
            Backend::InXact { xid, op } => {
                self.xlog_insert(xid, RecordBody::Abort);
                self.clog.set(xid, XidStatus::Aborted, Lsn(0));
                self.end_xid(xid);
                ctx.fx.failed.push((op.client, op, Failure::Terminated));
            }
            Backend::Committing { xid, op, end } | Backend::SyncRepWait { xid, op, end, .. } => {
                self.xlog_flush(end, ctx.log, proc);
                self.clog.set(xid, XidStatus::Committed, end);
                self.end_xid(xid);
                slog!(
                    ctx.log,
                    self.id,
                    proc,
                    Log,
                    "terminating connection due to administrator command: the transaction has already committed locally, but might not have been replicated to the standby"
                );
                ctx.fx.in_doubt.push((op.client, op));
            }
        }
        slog!(ctx.log, self.id, proc, Fatal, "terminating connection due to administrator command");
    }

    /// Whether backend `b` can take a step. `allow_new`: may an idle
    /// backend start a transaction (not while the cluster quiesces).
    pub fn backend_ready(&self, b: usize, env: Env<'_>, allow_new: bool) -> bool {
        if !self.is_primary() {
            return false;
        }
        match self.backends[b] {
            Backend::Idle => allow_new,
            Backend::InXact { .. } | Backend::Committing { .. } => true,
            Backend::SyncRepWait { end, mode, woken, .. } => {
                woken || self.sync_released(&env.settings.rules, end, mode)
            }
            Backend::Blocked { wait, .. } => !self.still_blocked(wait, env),
        }
    }

    fn still_blocked(&self, wait: Wait, env: Env<'_>) -> bool {
        match wait {
            Wait::Standby { lsn, what } => self.transfer_wait(env, lsn, what).is_some(),
            Wait::SyncRep { lsn, mode } => !self.sync_released(&env.settings.rules, lsn, mode),
            Wait::Xact { xid } => self.running.contains(&xid),
        }
    }

    /// Whether the backend's next step starts a transaction (and so takes a
    /// drawn argument).
    pub fn backend_starts_xact(&self, b: usize) -> bool {
        self.backends[b].is_idle()
    }

    /// One step of backend `b`. `new_op` is the transaction to start when
    /// the backend is idle.
    pub fn backend_step(&mut self, b: usize, new_op: Option<Op>, ctx: &mut Ctx<'_>) {
        match self.backends[b] {
            Backend::Idle => {
                let op = new_op.expect("an idle backend starts a transaction");
                self.exec_dml(b, op, ctx);
            }
            Backend::Blocked { op, .. } => self.exec_dml(b, op, ctx),
            Backend::InXact { xid, op } => self.commit(b, xid, op, ctx),
            Backend::Committing { xid, op, end } => self.commit_flush(b, xid, op, end, ctx),
            Backend::SyncRepWait { xid, op, end, .. } => {
                slog!(
                    ctx.log,
                    self.id,
                    Process::Backend(b as u8),
                    Debug,
                    "released from synchronous replication wait for {}",
                    end
                );
                self.finish_commit(b, xid, op, end, ctx);
            }
        }
    }

    /// INSERT or UPDATE: read the block, check the key, log and apply the
    /// change.
    fn exec_dml(&mut self, b: usize, op: Op, ctx: &mut Ctx<'_>) {
        let proc = Process::Backend(b as u8);
        let blk = BlockNumber(op.key % self.data.len());
        let f = match self.read_buffer(blk, proc, ctx) {
            Ok(f) => f,
            Err(wait) => return self.block(b, op, wait, ctx),
        };
        self.set_hint_bits(f, proc, ctx);
        if op.kind == OpKind::Select {
            slog!(ctx.log, self.id, proc, Log, "SELECT * FROM test WHERE id = {} (block {})", op.key, blk);
            self.backends[b] = Backend::Idle;
            return;
        }
        let tuples = &self.buffers.frame(f).page.tuples;
        let same_key = || tuples.iter().enumerate().filter(|(_, t)| t.key == op.key);
        if let Some((_, t)) = same_key().find(|(_, t)| self.running.contains(&t.xmin)) {
            return self.block(b, op, Wait::Xact { xid: t.xmin }, ctx);
        }
        match op.kind {
            OpKind::Insert => {
                let duplicate = same_key().any(|(_, t)| self.xid_committed(t.xmin));
                let xid = self.assign_xid();
                let tuple =
                    Tuple { key: op.key, payload: op.payload, xmin: xid, xmax: Xid::INVALID, infomask: 0 };
                let end = self.heap_change(f, xid, None, tuple, ctx);
                if duplicate {
                    // The heap tuple is in, then the unique index check fails.
                    slog!(
                        ctx.log,
                        self.id,
                        proc,
                        Error,
                        "duplicate key value violates unique constraint \"test_pkey\" (Key (id)=({}) already exists)",
                        op.key
                    );
                    let end = self.xlog_insert(xid, RecordBody::Abort).end;
                    self.clog.set(xid, XidStatus::Aborted, Lsn(0));
                    self.end_xid(xid);
                    self.backends[b] = Backend::Idle;
                    ctx.fx.failed.push((op.client, op, Failure::DuplicateKey));
                    slog!(
                        ctx.log,
                        self.id,
                        proc,
                        Debug,
                        "abort record of transaction {} ends at {}",
                        xid,
                        end
                    );
                } else {
                    slog!(
                        ctx.log,
                        self.id,
                        proc,
                        Log,
                        "xid {}: INSERT INTO test VALUES ({}, '{}') in block {}, record ends at {}",
                        xid,
                        op.key,
                        crate::heap::md5_text(op.payload),
                        blk,
                        end
                    );
                    self.backends[b] = Backend::InXact { xid, op };
                }
            }
            OpKind::Select => unreachable!("handled above"),
            OpKind::Update => {
                let live = same_key()
                    .find(|(_, t)| {
                        self.xid_committed(t.xmin) && (!t.xmax.is_valid() || self.xid_aborted(t.xmax))
                    })
                    .map(|(i, _)| i);
                let Some(old) = live else {
                    slog!(
                        ctx.log,
                        self.id,
                        proc,
                        Log,
                        "UPDATE test SET info = ... WHERE id = {}: UPDATE 0",
                        op.key
                    );
                    self.backends[b] = Backend::Idle;
                    ctx.fx.failed.push((op.client, op, Failure::NoRow));
                    return;
                };
                let xid = self.assign_xid();
                let tuple =
                    Tuple { key: op.key, payload: op.payload, xmin: xid, xmax: Xid::INVALID, infomask: 0 };
                let end = self.heap_change(f, xid, Some(old), tuple, ctx);
                slog!(
                    ctx.log,
                    self.id,
                    proc,
                    Log,
                    "xid {}: UPDATE test SET info = '{}' WHERE id = {} in block {}, record ends at {}",
                    xid,
                    crate::heap::md5_text(op.payload),
                    op.key,
                    blk,
                    end
                );
                self.backends[b] = Backend::InXact { xid, op };
            }
        }
    }

    fn block(&mut self, b: usize, op: Op, wait: Wait, ctx: &mut Ctx<'_>) {
        slog!(ctx.log, self.id, Process::Backend(b as u8), Log, "{}", wait);
        self.backends[b] = Backend::Blocked { op, wait };
    }

    /// Applies an insert (or an update of the tuple at index `old`) to the
    /// page in frame `f` and logs it, with a full-page image if this is the
    /// page's first change since the checkpoint's REDO.
    fn heap_change(&mut self, f: usize, xid: Xid, old: Option<usize>, tuple: Tuple, ctx: &Ctx<'_>) -> Lsn {
        let old = self.prune_if_full(f, old, ctx);
        let needs_image =
            ctx.env.settings.full_page_writes && self.buffers.frame(f).page.lsn <= self.redo_ptr;
        let blk = self.buffers.frame(f).tag.expect("resident");
        let page = &mut self.buffers.frame_mut(f).page;
        let offnum = page.next_offnum();
        if let Some(o) = old {
            page.tuples[o].set_xmax(xid);
        }
        page.tuples.push(tuple);
        let image = needs_image.then(|| Arc::new(page.clone()));
        let body = match old {
            None => RecordBody::HeapInsert { block: blk, offnum, tuple, image },
            Some(o) => RecordBody::HeapUpdate {
                block: blk,
                old_offnum: o as u16 + 1,
                new_offnum: offnum,
                tuple,
                image,
            },
        };
        let end = self.xlog_insert(xid, body).end;
        let d = self.buffers.frame_mut(f);
        d.page.lsn = end;
        d.dirty = true;
        end
    }

    /// heap_page_prune_opt: a page with no room left first loses its dead
    /// tuples — inserted by a transaction that did not commit, or deleted
    /// (updated) by one that did — in one WAL-logged step
    /// (`XLOG_HEAP2_PRUNE`, with a full-page image if it is the page's
    /// first change since REDO), so redo and standbys remove the same ones.
    /// Returns where the tuple at `old` is after the page is compacted.
    /// A page this full never occurs in a default-length run; it bounds the
    /// table (and a run's memory) in long ones.
    fn prune_if_full(&mut self, f: usize, old: Option<usize>, ctx: &Ctx<'_>) -> Option<usize> {
        let page = &self.buffers.frame(f).page;
        if page.tuples.len() < crate::heap::TUPLES_PER_PAGE {
            return old;
        }
        let dead = |t: &Tuple| {
            !self.running.contains(&t.xmin)
                && (!self.xid_committed(t.xmin) || (t.xmax.is_valid() && self.xid_committed(t.xmax)))
        };
        let offnums: Vec<u16> = page
            .tuples
            .iter()
            .enumerate()
            .filter(|&(i, t)| Some(i) != old && dead(t))
            .map(|(i, _)| i as u16 + 1)
            .collect();
        if offnums.is_empty() {
            return old;
        }
        let shift = old.map(|o| offnums.iter().filter(|&&x| usize::from(x) <= o).count());
        let needs_image = ctx.env.settings.full_page_writes && page.lsn <= self.redo_ptr;
        let blk = self.buffers.frame(f).tag.expect("resident");
        let d = self.buffers.frame_mut(f);
        d.page.prune(&offnums).expect("offsets from the page");
        let image = needs_image.then(|| Arc::new(d.page.clone()));
        let body = RecordBody::HeapPrune { block: blk, offnums: offnums.into(), image };
        let end = self.xlog_insert(Xid::INVALID, body).end;
        let d = self.buffers.frame_mut(f);
        d.page.lsn = end;
        d.dirty = true;
        old.zip(shift).map(|(o, s)| o - s)
    }

    /// COMMIT: insert the commit record. With `synchronous_commit = off`
    /// the client is told at once; otherwise the flush comes next.
    fn commit(&mut self, b: usize, xid: Xid, op: Op, ctx: &mut Ctx<'_>) {
        let end = self.xlog_insert(xid, RecordBody::Commit).end;
        slog!(
            ctx.log,
            self.id,
            Process::Backend(b as u8),
            Debug,
            "commit record of transaction {} ends at {}",
            xid,
            end
        );
        if self.gucs.synchronous_commit == SynchronousCommit::Off {
            self.clog.set(xid, XidStatus::Committed, end);
            self.finish_commit(b, xid, op, end, ctx);
        } else {
            ctx.fx.commits_started.push(op);
            self.backends[b] = Backend::Committing { xid, op, end };
        }
    }

    /// XLogFlush of the commit record, the CLOG update, then the sync-rep
    /// wait if `synchronous_commit` and `synchronous_transfer` ask for one.
    fn commit_flush(&mut self, b: usize, xid: Xid, op: Op, end: Lsn, ctx: &mut Ctx<'_>) {
        self.xlog_flush(end, ctx.log, Process::Backend(b as u8));
        self.clog.set(xid, XidStatus::Committed, end);
        let rules = &ctx.env.settings.rules;
        match self.gucs.wait_mode() {
            Some(mode)
                if self.gucs.synchronous_transfer.covers_commit()
                    && !self.sync_released(rules, end, mode) =>
            {
                let proc = Process::Backend(b as u8);
                slog!(ctx.log, self.id, proc, Log, "{}", Wait::SyncRep { lsn: end, mode });
                self.backends[b] = Backend::SyncRepWait { xid, op, end, mode, woken: false };
                ctx.fx.marks.hit(Mark::SyncRepWaited);
            }
            _ => self.finish_commit(b, xid, op, end, ctx),
        }
    }

    /// The transaction leaves the ProcArray and the client hears "COMMIT".
    fn finish_commit(&mut self, b: usize, xid: Xid, op: Op, end: Lsn, ctx: &mut Ctx<'_>) {
        self.end_xid(xid);
        self.backends[b] = Backend::Idle;
        let (durable_on, written_on) = self.holders_of(end);
        ctx.fx.acks.push(Ack {
            op,
            record: CommitRecord { node: self.id, commit_end: end, durable_on, written_on },
        });
        slog!(
            ctx.log,
            self.id,
            Process::Backend(b as u8),
            Log,
            "xid {}: COMMIT acknowledged (commit record ends at {}, WAL flushed to {})",
            xid,
            end,
            self.wal.flush_lsn()
        );
    }

    /// Nodes known to hold WAL up to `lsn`: flushed, and at least written
    /// (bit = node id).
    pub fn holders_of(&self, lsn: Lsn) -> (u16, u16) {
        let me = self.id.bit();
        let mut durable = if self.wal.flush_lsn() >= lsn { me } else { 0 };
        let mut written = if self.wal.write_lsn() >= lsn { me } else { 0 };
        for w in &self.walsenders {
            if w.reported.flush >= lsn {
                durable |= w.peer.bit();
            }
            if w.reported.write >= lsn {
                written |= w.peer.bit();
            }
        }
        (durable, written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CrashKind, Event};
    use crate::ids::NodeId;
    use crate::testkit::quiesced;

    /// A crash while sessions are between their commit record and the
    /// client's acknowledgement leaves those transactions in doubt (they
    /// may or may not have committed); sessions before their commit
    /// record fail plainly.
    #[test]
    fn a_crash_during_commit_leaves_the_transaction_in_doubt() {
        let mut c = quiesced(1, 200);
        let op = Op { client: 0, kind: OpKind::Insert, key: 1, payload: 2 };
        let end = c.nodes[0].wal.end();
        c.nodes[0].backends[0] = Backend::Committing { xid: Xid(90), op, end };
        c.nodes[0].backends[1] =
            Backend::SyncRepWait { xid: Xid(91), op, end, mode: WaitMode::Flush, woken: false };
        c.nodes[0].backends[2] = Backend::InXact { xid: Xid(92), op };
        let before = c.ledger.in_doubt_count;
        c.set_quiesce(false); // faults are enabled again
        c.apply(Event::Crash { node: NodeId(0), kind: CrashKind::Immediate }, 0).unwrap();
        assert_eq!(c.ledger.in_doubt_count, before + 2);
        assert!(c.nodes[0].backends.iter().all(|b| *b == Backend::Idle));
        let mut b = Backend::InXact { xid: Xid(92), op };
        assert_eq!(b.abandon(), None);
        assert_eq!(b, Backend::Idle);
    }

    /// A commit's WAL is held by the primary and by each standby that
    /// reported flushing (durable) or writing it: one bit per node.
    #[test]
    fn holders_of_names_each_node_holding_the_wal() {
        let mut c = quiesced(2, 300);
        let end = c.nodes[0].wal.flush_lsn();
        assert_eq!(c.nodes[0].walsenders.len(), 2);
        assert_eq!(c.nodes[0].holders_of(end), (0b111, 0b111));
        assert_eq!(c.nodes[0].holders_of(Lsn(end.0 + 8)), (0, 0));
        let w = c.nodes[0].walsenders.iter_mut().find(|w| w.peer == NodeId(2)).unwrap();
        w.reported.flush = Lsn(end.0 - 8);
        assert_eq!(c.nodes[0].holders_of(end), (0b011, 0b111), "node3 wrote but did not flush");
    }

    /// A backend blocked before its DML runs once what it waits for is
    /// over (a transaction ended, the synchronous standby confirmed), and
    /// `ps` shows what it waits for meanwhile.
    #[test]
    fn a_blocked_backend_runs_once_its_wait_is_over() {
        let mut c = quiesced(1, 200);
        let op = Op { client: 0, kind: OpKind::Insert, key: 1, payload: 2 };
        let released = c.nodes[0].walsndctl.released(WaitMode::Flush);
        assert!(released > Lsn(0));
        let ready = |c: &crate::cluster::Cluster| {
            c.nodes[0].backend_ready(0, Env { settings: &c.settings, archive: &c.archive }, false)
        };
        let block =
            |c: &mut crate::cluster::Cluster, wait| c.nodes[0].backends[0] = Backend::Blocked { op, wait };
        block(&mut c, Wait::SyncRep { lsn: released, mode: WaitMode::Flush });
        assert!(ready(&c), "confirmed up to {released}");
        block(&mut c, Wait::SyncRep { lsn: Lsn(released.0 + 8), mode: WaitMode::Flush });
        assert!(!ready(&c));
        assert_eq!(
            c.waits(),
            [format!("node1 client backend 0 waiting for {} (wait_event=SyncRep)", Lsn(released.0 + 8))]
        );
        block(&mut c, Wait::Xact { xid: Xid(4242) });
        c.nodes[0].running.push(Xid(4242));
        assert!(!ready(&c));
        assert_eq!(c.waits(), ["node1 client backend 0 waiting for transaction 4242"]);
        c.nodes[0].running.retain(|&x| x != Xid(4242));
        assert!(ready(&c));
    }

    const OP: Op = Op { client: 1, kind: OpKind::Insert, key: 7, payload: 70 };

    /// What `ps` shows: a blocked session its wait, a session in
    /// SyncRepWaitForLSN "waiting for" its commit's end; others nothing.
    /// SyncRepWakeQueue(true) only touches sessions in that wait.
    #[test]
    fn wait_idle_and_wake_follow_the_state() {
        let sync =
            Backend::SyncRepWait { xid: Xid(5), op: OP, end: Lsn(80), mode: WaitMode::Write, woken: false };
        assert_eq!(sync.wait(), Some(Wait::SyncRep { lsn: Lsn(80), mode: WaitMode::Write }));
        let blocked = Backend::Blocked { op: OP, wait: Wait::Xact { xid: Xid(4) } };
        assert_eq!(blocked.wait(), Some(Wait::Xact { xid: Xid(4) }));
        let in_xact = Backend::InXact { xid: Xid(5), op: OP };
        let committing = Backend::Committing { xid: Xid(5), op: OP, end: Lsn(80) };
        for b in [Backend::Idle, in_xact, committing] {
            assert_eq!(b.wait(), None, "{b:?}");
        }
        assert!(Backend::Idle.is_idle());
        for b in [sync, blocked, in_xact, committing] {
            assert!(!b.is_idle(), "{b:?}");
        }
        let mut b = sync;
        b.wake();
        assert!(matches!(b, Backend::SyncRepWait { woken: true, .. }));
        let mut b = in_xact;
        b.wake();
        assert_eq!(b, in_xact);
    }

    /// Fast shutdown terminates each session with PostgreSQL's FATAL line:
    /// a blocked one or one with an open transaction fails (the open one
    /// is aborted, in WAL and CLOG); one past its commit record commits
    /// locally (flushed, CLOG) and leaves its client in doubt.
    #[test]
    fn terminating_a_backend_ends_its_transaction_by_its_state() {
        let mut c = quiesced(1, 200);
        const FATAL: &str = "terminating connection due to administrator command";
        let (xid, commit_end) = {
            let n = &mut c.nodes[0];
            let xid = n.assign_xid();
            let end = n.xlog_insert(xid, RecordBody::Commit).end;
            (xid, end)
        };
        assert!(c.nodes[0].wal.flush_lsn() < commit_end);
        c.nodes[0].backends[0] = Backend::Committing { xid, op: OP, end: commit_end };
        let ((), lines, fx) = crate::testkit::logged(&mut c, 0, |n, ctx| n.terminate_backend(0, ctx));
        let n = &c.nodes[0];
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], FATAL);
        assert!(n.wal.flush_lsn() >= commit_end, "the commit record is flushed");
        assert_eq!(n.clog.get(xid), XidStatus::Committed);
        assert!(!n.running.contains(&xid));
        assert_eq!(fx.in_doubt, [(1, OP)]);
        assert!(fx.failed.is_empty());
        assert_eq!(n.backends[0], Backend::Idle);

        let xid = c.nodes[0].assign_xid();
        assert!(c.nodes[0].running.contains(&xid));
        c.nodes[0].backends[0] = Backend::InXact { xid, op: OP };
        let ((), lines, fx) = crate::testkit::logged(&mut c, 0, |n, ctx| n.terminate_backend(0, ctx));
        let n = &c.nodes[0];
        assert_eq!(lines, [FATAL]);
        let last = n.wal.records().last().unwrap();
        assert_eq!((last.xid, last.body.name()), (xid, "Transaction/ABORT"));
        assert_eq!(n.clog.get(xid), XidStatus::Aborted);
        assert!(!n.running.contains(&xid));
        assert_eq!(fx.failed, [(1, OP, Failure::Terminated)]);
        assert!(fx.in_doubt.is_empty());

        let end = c.nodes[0].wal.end();
        c.nodes[0].backends[0] = Backend::Blocked { op: OP, wait: Wait::Xact { xid: Xid(4) } };
        let ((), lines, fx) = crate::testkit::logged(&mut c, 0, |n, ctx| n.terminate_backend(0, ctx));
        assert_eq!(lines, [FATAL]);
        assert_eq!(fx.failed, [(1, OP, Failure::Terminated)]);
        assert_eq!(c.nodes[0].wal.end(), end, "nothing logged");

        let ((), lines, fx) = crate::testkit::logged(&mut c, 0, |n, ctx| n.terminate_backend(0, ctx));
        assert_eq!(lines, [FATAL]);
        assert!(fx.failed.is_empty() && fx.in_doubt.is_empty());
    }

    /// One step of backend `b` on node1, logged.
    fn step(
        c: &mut crate::cluster::Cluster,
        b: usize,
        op: Option<Op>,
    ) -> (Vec<String>, crate::event::Effects) {
        let ((), lines, fx) = crate::testkit::logged(c, 0, |n, ctx| n.backend_step(b, op, ctx));
        (lines, fx)
    }

    /// The seed experiment's transactions on a lone primary, step by step:
    /// INSERT (a full-page image as the page's first change since REDO),
    /// COMMIT's record, its flush and acknowledgement; a second INSERT of
    /// the key fails on the unique index after its heap tuple is in; an
    /// UPDATE of the row waits for nobody, sets the old version's xmax,
    /// and blocks an INSERT of the same key until it ends; an UPDATE of a
    /// key with no row reports UPDATE 0; a SELECT logs nothing.
    #[test]
    fn a_session_runs_inserts_updates_and_selects_step_by_step() {
        let mut c = quiesced(0, 100);
        let key = 999_999; // block 999_999 % 32 = 31
        assert_eq!(c.nodes[0].data.len(), 32);
        let ins = |client: u8, payload: u64| Op { client, kind: OpKind::Insert, key, payload };
        let md5 = crate::heap::md5_text;
        c.nodes[0].redo_ptr = c.nodes[0].wal.insert_lsn();

        // INSERT: the heap record, with an image of the page.
        let (lines, _) = step(&mut c, 0, Some(ins(0, 5)));
        let n = &c.nodes[0];
        let Backend::InXact { xid, .. } = n.backends[0] else { panic!("{:?}", n.backends[0]) };
        let rec = n.wal.records().last().unwrap();
        let RecordBody::HeapInsert { block, offnum, tuple, image } = &rec.body else {
            panic!("{:?}", rec.body)
        };
        assert_eq!((*block, *offnum, tuple.key, tuple.xmin), (BlockNumber(31), 1, key, xid));
        assert!(image.is_some(), "first change since REDO");
        assert_eq!(
            lines,
            [format!(
                "xid {xid}: INSERT INTO test VALUES ({key}, '{}') in block 31, record ends at {}",
                md5(5),
                rec.end
            )]
        );
        let f = n.buffers.lookup(BlockNumber(31)).unwrap();
        assert_eq!(n.buffers.frame(f).page.lsn, rec.end);
        assert!(n.buffers.frame(f).dirty);

        // COMMIT: the record, then XLogFlush and the acknowledgement.
        let (lines, fx) = step(&mut c, 0, None);
        let end = c.nodes[0].wal.end();
        assert_eq!(c.nodes[0].backends[0], Backend::Committing { xid, op: ins(0, 5), end });
        assert_eq!(fx.commits_started, [ins(0, 5)]);
        assert_eq!(lines, [format!("commit record of transaction {xid} ends at {end}")]);
        let (lines, fx) = step(&mut c, 0, None);
        let n = &c.nodes[0];
        assert!(n.backends[0].is_idle());
        assert_eq!(n.clog.get(xid), XidStatus::Committed);
        assert!(!n.running.contains(&xid));
        assert_eq!(n.wal.flush_lsn(), end);
        assert_eq!(fx.acks.len(), 1);
        assert_eq!(
            (fx.acks[0].op, fx.acks[0].record),
            (ins(0, 5), CommitRecord { node: NodeId(0), commit_end: end, durable_on: 1, written_on: 1 })
        );
        assert_eq!(
            lines.last().unwrap(),
            &format!("xid {xid}: COMMIT acknowledged (commit record ends at {end}, WAL flushed to {end})")
        );

        // The same key again: the tuple goes in, the index check fails.
        let (lines, fx) = step(&mut c, 1, Some(ins(1, 6)));
        let n = &c.nodes[0];
        assert!(n.backends[1].is_idle());
        assert_eq!(fx.failed, [(1, ins(1, 6), Failure::DuplicateKey)]);
        let recs = n.wal.records();
        let (heap, abort) = (&recs[recs.len() - 2], &recs[recs.len() - 1]);
        assert_eq!((heap.body.name(), abort.body.name()), ("Heap/INSERT", "Transaction/ABORT"));
        assert!(matches!(heap.body, RecordBody::HeapInsert { offnum: 2, image: None, .. }));
        assert_eq!(n.clog.get(abort.xid), XidStatus::Aborted);
        assert!(!n.running.contains(&abort.xid));
        assert_eq!(
            lines,
            [
                format!(
                    "duplicate key value violates unique constraint \"test_pkey\" (Key (id)=({key}) already exists)"
                ),
                format!("abort record of transaction {} ends at {}", abort.xid, abort.end),
            ]
        );

        // UPDATE the row: the new version at offset 3, the old one's xmax set.
        let upd = Op { client: 0, kind: OpKind::Update, key, payload: 8 };
        let (lines, _) = step(&mut c, 0, Some(upd));
        let n = &c.nodes[0];
        let Backend::InXact { xid: uxid, .. } = n.backends[0] else { panic!("{:?}", n.backends[0]) };
        let rec = n.wal.records().last().unwrap();
        assert!(
            matches!(rec.body, RecordBody::HeapUpdate { old_offnum: 1, new_offnum: 3, image: None, .. }),
            "{:?}",
            rec.body
        );
        let f = n.buffers.lookup(BlockNumber(31)).unwrap();
        assert_eq!(n.buffers.frame(f).page.tuples[0].xmax, uxid);
        assert_eq!(
            lines,
            [format!(
                "xid {uxid}: UPDATE test SET info = '{}' WHERE id = {key} in block 31, record ends at {}",
                md5(8),
                rec.end
            )]
        );

        // An INSERT of the key waits for the updater (XactLockTableWait).
        let (lines, _) = step(&mut c, 1, Some(ins(1, 9)));
        assert_eq!(
            c.nodes[0].backends[1],
            Backend::Blocked { op: ins(1, 9), wait: Wait::Xact { xid: uxid } }
        );
        assert_eq!(lines, [format!("waiting for transaction {uxid}")]);
        let env = |c: &crate::cluster::Cluster| {
            c.nodes[0].backend_ready(1, Env { settings: &c.settings, archive: &c.archive }, false)
        };
        assert!(!env(&c));
        assert!(!c.nodes[0].backend_starts_xact(1));
        step(&mut c, 0, None);
        step(&mut c, 0, None);
        assert!(c.nodes[0].backends[0].is_idle());
        assert!(env(&c), "the updater ended");
        let (_, fx) = step(&mut c, 1, None);
        assert_eq!(fx.failed, [(1, ins(1, 9), Failure::DuplicateKey)], "its row is there now");

        // No row with that id: UPDATE 0, nothing logged in WAL.
        let wal_end = c.nodes[0].wal.end();
        let none = Op { client: 0, kind: OpKind::Update, key: key - 32, payload: 1 };
        let (lines, fx) = step(&mut c, 0, Some(none));
        assert_eq!(fx.failed, [(0, none, Failure::NoRow)]);
        assert_eq!(lines, [format!("UPDATE test SET info = ... WHERE id = {}: UPDATE 0", key - 32)]);
        let sel = Op { client: 0, kind: OpKind::Select, key, payload: 0 };
        let (lines, fx) = step(&mut c, 0, Some(sel));
        assert_eq!(lines, [format!("SELECT * FROM test WHERE id = {key} (block 31)")]);
        assert!(fx.failed.is_empty() && fx.acks.is_empty());
        assert!(c.nodes[0].backends[0].is_idle() && c.nodes[0].backend_starts_xact(0));
        assert_eq!(c.nodes[0].wal.end(), wal_end);
    }

    /// heap_page_prune_opt: an UPDATE on a page with no room first removes
    /// the dead tuples — inserted by an aborted transaction, or deleted by
    /// a committed one; not those of running transactions, nor those
    /// whose deleter aborted or still runs — in one PRUNE record (with
    /// the page's image: its first change since REDO), then logs the
    /// update against the compacted page's offsets.
    #[test]
    fn a_full_page_is_pruned_before_the_change() {
        use crate::heap::{TUPLES_PER_PAGE, Tuple};
        let mut c = quiesced(0, 100);
        let key = 999_999; // block 31
        let ((), _, _) = crate::testkit::logged(&mut c, 0, |n, ctx| {
            n.read_buffer(BlockNumber(31), crate::log::Process::Backend(0), ctx).map(|_| ()).unwrap()
        });
        let n = &mut c.nodes[0];
        let flushed = n.wal.flush_lsn();
        let xid = |n: &mut Node, st: Option<XidStatus>| {
            let x = n.assign_xid();
            if let Some(st) = st {
                n.clog.set(x, st, flushed);
                n.end_xid(x);
            }
            x
        };
        let (cm, cm2, ab) = (
            xid(n, Some(XidStatus::Committed)),
            xid(n, Some(XidStatus::Committed)),
            xid(n, Some(XidStatus::Aborted)),
        );
        let run = xid(n, None);
        let t = |key, xmin, xmax| Tuple { key, payload: 1, xmin, xmax, infomask: 0 };
        let mut tuples = vec![
            t(1000, ab, Xid::INVALID), // dead: its inserter aborted
            t(1001, cm, cm2),          // dead: deleted by a commit
            t(key, cm, Xid::INVALID),  // the row to update
            t(1003, run, Xid::INVALID),
            t(1004, cm, ab),
            t(1005, cm, run),
        ];
        tuples.extend((tuples.len()..TUPLES_PER_PAGE).map(|i| t(2000 + i as u32, cm, Xid::INVALID)));
        let f = n.buffers.lookup(BlockNumber(31)).unwrap();
        let at = n.wal.insert_lsn();
        n.redo_ptr = at;
        n.buffers.frame_mut(f).page = crate::heap::Page { lsn: at, tuples };
        let start = n.wal.end_index();
        let upd = Op { client: 0, kind: OpKind::Update, key, payload: 8 };
        step(&mut c, 0, Some(upd));
        let n = &c.nodes[0];
        let recs = n.wal.from_index(start);
        assert_eq!(recs.len(), 2, "{recs:?}");
        let RecordBody::HeapPrune { block, offnums, image } = &recs[0].body else {
            panic!("{:?}", recs[0].body)
        };
        assert_eq!((*block, &offnums[..]), (BlockNumber(31), &[1, 2][..]));
        assert_eq!(image.as_ref().map(|p| p.tuples.len()), Some(TUPLES_PER_PAGE - 2), "the pruned page");
        let Backend::InXact { xid: ux, .. } = n.backends[0] else { panic!() };
        assert!(
            matches!(
                recs[1].body,
                RecordBody::HeapUpdate { old_offnum: 1, new_offnum: 106, image: None, .. }
            ),
            "{:?}",
            recs[1].body
        );
        let page = &n.buffers.frame(f).page;
        assert_eq!(page.tuples.len(), TUPLES_PER_PAGE - 1);
        assert_eq!((page.tuples[0].key, page.tuples[0].xmax), (key, ux));
        assert_eq!(page.tuples[1].key, 1003, "a running inserter's tuple stays");
        assert_eq!(page.lsn, recs[1].end);

        // A full page with nothing dead: no PRUNE, the tuple is added.
        let n = &mut c.nodes[0];
        let tuples: Vec<_> = (0..TUPLES_PER_PAGE).map(|i| t(3000 + i as u32, cm, Xid::INVALID)).collect();
        n.buffers.frame_mut(f).page.tuples = tuples;
        let start = n.wal.end_index();
        step(&mut c, 1, Some(Op { client: 1, kind: OpKind::Insert, key, payload: 9 }));
        let n = &c.nodes[0];
        let names: Vec<_> = n.wal.from_index(start).iter().map(|r| r.body.name()).collect();
        assert_eq!(names, ["Heap/INSERT"]);
        assert_eq!(n.buffers.frame(f).page.tuples.len(), TUPLES_PER_PAGE + 1);

        // Changed since REDO already: the PRUNE record has no image.
        let n = &mut c.nodes[0];
        assert!(n.buffers.frame(f).page.lsn > n.redo_ptr);
        n.buffers.frame_mut(f).page.tuples.truncate(TUPLES_PER_PAGE);
        n.buffers.frame_mut(f).page.tuples[5] = t(1000, ab, Xid::INVALID);
        let start = n.wal.end_index();
        step(&mut c, 2, Some(Op { client: 2, kind: OpKind::Insert, key: key - 32, payload: 9 }));
        let recs = c.nodes[0].wal.from_index(start);
        assert!(
            matches!(&recs[0].body, RecordBody::HeapPrune { offnums, image: None, .. } if offnums[..] == [6]),
            "{:?}",
            recs[0].body
        );
        assert_eq!(recs[1].body.name(), "Heap/INSERT");
    }

    /// `synchronous_commit = off`: the commit is marked in CLOG and
    /// acknowledged as soon as its record is inserted, before any flush.
    #[test]
    fn an_asynchronous_commit_is_acknowledged_at_once() {
        let mut c = quiesced(0, 100);
        c.nodes[0].gucs.synchronous_commit = crate::settings::SynchronousCommit::Off;
        step(&mut c, 0, Some(OP));
        let Backend::InXact { xid, .. } = c.nodes[0].backends[0] else { panic!() };
        let (lines, fx) = step(&mut c, 0, None);
        let n = &c.nodes[0];
        let end = n.wal.end();
        assert!(n.backends[0].is_idle());
        assert!(n.wal.flush_lsn() < end, "not flushed");
        assert_eq!(n.clog.get(xid), XidStatus::Committed);
        assert_eq!(n.clog.page(n.clog.page_of(xid)).lsn, end, "the CLOG page waits for the commit's WAL");
        assert!(fx.commits_started.is_empty());
        assert_eq!(fx.acks.len(), 1);
        assert_eq!(fx.acks[0].record.durable_on, 0, "acknowledged before it was durable anywhere");
        assert_eq!(lines[0], format!("commit record of transaction {xid} ends at {end}"));
    }

    /// SyncRepWaitForLSN: with a synchronous standby, the commit waits
    /// after its local flush until the standby confirms; it is not ready
    /// meanwhile, unless SyncRepWakeQueue released it. With
    /// `synchronous_transfer = data_flush` commits do not wait.
    #[test]
    fn a_commit_waits_for_the_synchronous_standby() {
        for transfer in
            [crate::settings::SynchronousTransfer::Commit, crate::settings::SynchronousTransfer::DataFlush]
        {
            let mut c = crate::testkit::quiesced_with(1, 100, |s| s.synchronous_transfer = transfer);
            step(&mut c, 0, Some(OP));
            step(&mut c, 0, None);
            let end = c.nodes[0].wal.end();
            let (lines, fx) = step(&mut c, 0, None);
            let n = &c.nodes[0];
            assert_eq!(n.wal.flush_lsn(), end);
            if transfer == crate::settings::SynchronousTransfer::DataFlush {
                assert!(n.backends[0].is_idle());
                assert_eq!(fx.acks.len(), 1);
                continue;
            }
            assert!(matches!(n.backends[0], Backend::SyncRepWait { end: e, woken: false, .. } if e == end));
            assert_eq!(lines, [format!("waiting for {end}")]);
            assert!(fx.marks.contains(Mark::SyncRepWaited));
            assert!(fx.acks.is_empty());
            let ready = |c: &crate::cluster::Cluster| {
                c.nodes[0].backend_ready(0, Env { settings: &c.settings, archive: &c.archive }, false)
            };
            assert!(!ready(&c));
            let mut woken = c.clone();
            woken.nodes[0].backends[0].wake();
            assert!(ready(&woken), "released by SyncRepWakeQueue");
            let (lines, fx) = step(&mut woken, 0, None);
            assert_eq!(lines[0], format!("released from synchronous replication wait for {end}"));
            assert_eq!(fx.acks.len(), 1);
            crate::testkit::settle(&mut c);
            assert!(c.nodes[0].backends[0].is_idle(), "the standby confirmed");
        }
    }

    /// The row an UPDATE finds is the version inserted by a committed
    /// transaction and not deleted by one (no xmax, or its deleter
    /// aborted): a version deleted by a commit, or inserted by an abort,
    /// is no row.
    #[test]
    fn an_update_finds_only_the_live_version() {
        use crate::heap::Tuple;
        let mut c = quiesced(0, 100);
        let ((), _, _) = crate::testkit::logged(&mut c, 0, |n, ctx| {
            n.read_buffer(BlockNumber(31), crate::log::Process::Backend(0), ctx).map(|_| ()).unwrap()
        });
        let n = &mut c.nodes[0];
        let flushed = n.wal.flush_lsn();
        let mut ended = |st| {
            let x = n.assign_xid();
            n.clog.set(x, st, flushed);
            n.end_xid(x);
            x
        };
        let (cm, cm2, ab) =
            (ended(XidStatus::Committed), ended(XidStatus::Committed), ended(XidStatus::Aborted));
        let (deleted, undeleted, aborted) = (999_999, 999_999 - 32, 999_999 - 64); // block 31
        let t = |key, xmin, xmax| Tuple { key, payload: 1, xmin, xmax, infomask: 0 };
        let f = n.buffers.lookup(BlockNumber(31)).unwrap();
        n.buffers.frame_mut(f).page.tuples =
            vec![t(deleted, cm, cm2), t(undeleted, cm, ab), t(aborted, ab, Xid::INVALID)];
        for key in [deleted, aborted] {
            let op = Op { client: 0, kind: OpKind::Update, key, payload: 5 };
            let (_, fx) = step(&mut c, 0, Some(op));
            assert_eq!(fx.failed, [(0, op, Failure::NoRow)], "key {key}");
        }
        step(&mut c, 0, Some(Op { client: 0, kind: OpKind::Update, key: undeleted, payload: 5 }));
        let n = &c.nodes[0];
        assert!(matches!(n.backends[0], Backend::InXact { .. }));
        let rec = n.wal.records().last().unwrap();
        assert!(
            matches!(rec.body, RecordBody::HeapUpdate { old_offnum: 2, new_offnum: 4, .. }),
            "{:?}",
            rec.body
        );
    }
}
