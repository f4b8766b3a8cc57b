//! The checkpointer (checkpointer.c, xlog.c CreateCheckPoint /
//! CreateRestartPoint): checkpoints on a primary, restartpoints on a
//! standby, the shutdown checkpoint, and the end-of-recovery checkpoint.
//!
//! Order, as in CreateCheckPoint: take REDO (the insert position); write
//! CLOG pages and every buffer dirty at the start, one per event, each
//! under the WAL rule; fsync; insert the checkpoint record and flush it;
//! then point pg_control at it. Only then may WAL before REDO be dropped.

use crate::control::DbState;
use crate::event::Wait;
use crate::ids::Tli;
use crate::ids::{BlockNumber, Xid};
use crate::log::Process;
use crate::lsn::Lsn;
use crate::marks::Mark;
use crate::node::{Ctx, Env, Node, Status};
use crate::settings::FileKind;
use crate::slog;
use crate::wal::{CheckPoint, RecordBody};

pub use crate::wal::CkptKind;

/// Where a checkpoint is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Phase {
    /// CheckPointCLOG: dirty CLOG pages.
    Clog,
    /// CheckPointBuffers: the buffers dirty at the start, one per event.
    Buffers,
    /// ProcessSyncRequests: fsync data files and CLOG.
    Sync,
    /// Insert the checkpoint record and flush it (not for restartpoints).
    Record,
    /// UpdateControlFile.
    Control,
    /// Only with `rules.fsync_before_control_update = false`: the fsync
    /// happens after pg_control already points at the new REDO.
    LateSync,
}

/// A checkpoint in progress.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Ckpt {
    pub kind: CkptKind,
    pub redo: Lsn,
    pub phase: Phase,
    /// Transactions between inserting their commit record and updating the
    /// CLOG when REDO was taken (`delayChkptFlags`): the checkpoint waits
    /// for them, or it could miss a commit that lies before its REDO.
    delaying: Vec<Xid>,
    /// Buffers dirty when the checkpoint started (frame, block).
    todo: Vec<(usize, BlockNumber)>,
    next: usize,
    written: u32,
    /// The checkpoint record (start, end, contents): inserted by this
    /// checkpoint, or for a restartpoint the replayed one it completes.
    record: Option<(Lsn, Lsn, CheckPoint)>,
    pub wait: Option<Wait>,
}

/// The checkpointer process.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct Checkpointer {
    /// Highest-priority pending request.
    pub requested: Option<CkptKind>,
    pub current: Option<Ckpt>,
    /// Checkpoints (or restartpoints) completed since start.
    pub completed: u32,
}

impl Checkpointer {
    /// Adds a request; a shutdown or end-of-recovery request outranks a
    /// timed one.
    pub fn request(&mut self, kind: CkptKind) {
        self.requested = Some(self.requested.map_or(kind, |k| k.max(kind)));
    }
}

impl Node {
    /// Whether the checkpointer can take a step now.
    pub fn checkpointer_ready(&self, env: Env<'_>) -> bool {
        if !self.is_running() {
            return false;
        }
        match &self.checkpointer.current {
            Some(c) => match c.wait {
                Some(Wait::Standby { lsn, what }) => self.transfer_wait(env, lsn, what).is_none(),
                _ => self.delaying_xid(c).is_none(),
            },
            None => self.checkpointer.requested.is_some_and(|k| self.may_start(k)),
        }
    }

    fn may_start(&self, kind: CkptKind) -> bool {
        match kind {
            CkptKind::Online => self.status == Status::Production,
            CkptKind::Restartpoint => self.is_standby(),
            CkptKind::EndOfRecovery => self.status == Status::Recovery,
            CkptKind::Shutdown => self.status == Status::ShuttingDown && self.startup.is_none(),
            CkptKind::ShutdownRestartpoint => self.status == Status::ShuttingDown && self.startup.is_some(),
        }
    }

    /// Whether a timed checkpoint request would do anything: a primary with
    /// WAL since the last checkpoint, or a standby that replayed a newer
    /// checkpoint record than its last restartpoint.
    pub fn checkpoint_request_useful(&self) -> bool {
        if self.checkpointer.requested.is_some() || self.checkpointer.current.is_some() {
            return false;
        }
        match self.status {
            // Skipped when nothing was logged since the last checkpoint.
            Status::Production => self.wal.records().last().is_some_and(|r| r.lsn > self.control.checkpoint),
            Status::Recovery => self.startup.as_ref().is_some_and(|s| {
                s.standby && s.last_checkpoint.is_some_and(|c| c.0 > self.control.checkpoint)
            }),
            _ => false,
        }
    }

    /// Requests a checkpoint when WAL since REDO exceeds `max_wal_size`.
    pub fn request_checkpoint_if_wal_full(&mut self, ctx: &mut Ctx<'_>) {
        let used = self.wal.insert_lsn().0.saturating_sub(self.redo_ptr.0);
        if used > ctx.env.settings.max_wal_size.0.0
            && self.checkpointer.requested.is_none()
            && self.checkpointer.current.is_none()
        {
            let kind = if self.is_standby() { CkptKind::Restartpoint } else { CkptKind::Online };
            self.checkpointer.request(kind);
            slog!(
                ctx.log,
                self.id,
                Process::Checkpointer,
                Log,
                "{}s are occurring too frequently (WAL since REDO exceeds max_wal_size)",
                kind.noun()
            );
        }
    }

    /// One checkpointer step.
    pub fn checkpointer_step(&mut self, ctx: &mut Ctx<'_>) {
        let Some(mut c) = self.checkpointer.current.take() else {
            let kind = self.checkpointer.requested.take().expect("checkpointer_ready");
            if let Some(c) = self.begin_checkpoint(kind, ctx) {
                self.checkpointer.current = Some(c);
            }
            return;
        };
        c.wait = None;
        let proc = Process::Checkpointer;
        let next_clog = self.clog.dirty_pages().next();
        match c.phase {
            Phase::Clog => match next_clog {
                Some(p) => {
                    if let Err(w) = self.write_clog_page(p, proc, ctx) {
                        self.ckpt_wait(&mut c, w, ctx);
                    }
                }
                None => c.phase = Phase::Buffers,
            },
            Phase::Buffers => {
                if let Some(&(f, blk)) = c.todo.get(c.next) {
                    let d = self.buffers.frame(f);
                    if d.dirty && d.tag == Some(blk) {
                        match self.flush_buffer(f, proc, ctx) {
                            Ok(()) => {
                                c.written += 1;
                                c.next += 1;
                            }
                            Err(w) => self.ckpt_wait(&mut c, w, ctx),
                        }
                    } else {
                        c.next += 1;
                    }
                } else {
                    c.phase = Phase::Sync;
                }
            }
            Phase::Sync => {
                if ctx.env.settings.rules.fsync_before_control_update {
                    self.data.fsync();
                    self.clog.file.fsync();
                }
                c.phase = if c.kind.is_restartpoint() { Phase::Control } else { Phase::Record };
            }
            Phase::Record => {
                let ckpt = CheckPoint {
                    redo: c.redo,
                    tli: self.tli,
                    prev_tli: self.control_prev_tli(),
                    next_xid: self.next_xid,
                };
                let body = if c.kind == CkptKind::Online {
                    RecordBody::CheckpointOnline(ckpt)
                } else {
                    RecordBody::CheckpointShutdown(ckpt)
                };
                let rec = self.xlog_insert(Xid::INVALID, body);
                let (start, end) = (rec.lsn, rec.end);
                self.xlog_flush(end, ctx.log, proc);
                c.record = Some((start, end, ckpt));
                c.phase = Phase::Control;
            }
            Phase::Control => {
                let (_, end, _) = c.record.expect("checkpoint record known");
                if let Some(w) = self.transfer_wait(ctx.env, end, FileKind::Control) {
                    self.ckpt_wait(&mut c, Wait::Standby { lsn: w, what: FileKind::Control }, ctx);
                } else {
                    self.update_control_for(&c);
                    if ctx.env.settings.rules.fsync_before_control_update {
                        return self.finish_checkpoint(c, ctx);
                    }
                    c.phase = Phase::LateSync;
                }
            }
            Phase::LateSync => {
                self.data.fsync();
                self.clog.file.fsync();
                return self.finish_checkpoint(c, ctx);
            }
        }
        self.checkpointer.current = Some(c);
    }

    /// A transaction the checkpoint must still wait for before writing
    /// anything (GetVirtualXIDsDelayingChkpt), if the rule is on.
    fn delaying_xid(&self, c: &Ckpt) -> Option<Xid> {
        if c.phase != Phase::Clog {
            return None;
        }
        c.delaying.iter().copied().find(|&x| self.committing_xids().any(|xid| xid == x))
    }

    fn control_prev_tli(&self) -> Tli {
        if self.control.tli == self.tli { self.control.prev_tli } else { self.control.tli }
    }

    fn ckpt_wait(&mut self, c: &mut Ckpt, w: Wait, ctx: &mut Ctx<'_>) {
        slog!(ctx.log, self.id, Process::Checkpointer, Log, "{}", w);
        c.wait = Some(w);
    }

    /// CreateRestartPoint with no newer checkpoint replayed:
    /// UpdateMinRecoveryPoint(InvalidXLogRecPtr, true) raises
    /// minRecoveryPoint to the replay position (rule
    /// `skipped_restartpoint_updates_min_recovery_point`).
    fn skipped_restartpoint(&mut self, ctx: &mut Ctx<'_>) {
        if !ctx.env.settings.rules.skipped_restartpoint_updates_min_recovery_point {
            return;
        }
        let Some(replayed) = self.startup.as_ref().map(|s| s.replayed) else { return };
        if self.control.min_recovery_point < replayed {
            self.control.min_recovery_point = replayed;
            self.control.min_recovery_point_tli = self.tli;
            slog!(
                ctx.log,
                self.id,
                Process::Checkpointer,
                Debug,
                "updated min recovery point to {} on timeline {}",
                replayed,
                self.tli
            );
        }
    }

    fn begin_checkpoint(&mut self, kind: CkptKind, ctx: &mut Ctx<'_>) -> Option<Ckpt> {
        let record = if kind.is_restartpoint() {
            let last = self.startup.as_ref().and_then(|s| s.last_checkpoint);
            match last {
                Some(l) if l.0 > self.control.checkpoint => Some(l),
                _ if kind == CkptKind::ShutdownRestartpoint => {
                    self.skipped_restartpoint(ctx);
                    self.control.state = DbState::ShutdownedInRecovery;
                    self.shutdown_complete(ctx);
                    return None;
                }
                _ => {
                    slog!(
                        ctx.log,
                        self.id,
                        Process::Checkpointer,
                        Debug,
                        "skipping restartpoint, already performed at {}",
                        self.control.checkpoint
                    );
                    self.skipped_restartpoint(ctx);
                    return None;
                }
            }
        } else {
            None
        };
        let redo = match record {
            Some((_, _, ckpt)) => ckpt.redo,
            None => self.wal.insert_lsn(),
        };
        // CHECKPOINT_CAUSE_XLOG: an online checkpoint (restartpoint) begun
        // while the WAL since REDO exceeds max_wal_size is the one
        // request_checkpoint_if_wal_full asked for; LogCheckpointStart
        // prints its cause as "wal".
        let flags = match kind {
            CkptKind::Online | CkptKind::Restartpoint
                if self.wal.insert_lsn().0.saturating_sub(self.redo_ptr.0)
                    > ctx.env.settings.max_wal_size.0.0 =>
            {
                "wal"
            }
            _ => kind.flags(),
        };
        if !kind.is_restartpoint() {
            self.redo_ptr = redo;
        }
        let delaying = if ctx.env.settings.rules.checkpoint_waits_for_commits {
            self.committing_xids().collect()
        } else {
            Vec::new()
        };
        let todo = self
            .buffers
            .dirty_frames()
            .map(|f| (f, self.buffers.frame(f).tag.expect("dirty frame has a tag")))
            .collect();
        slog!(ctx.log, self.id, Process::Checkpointer, Log, "{} starting: {}", kind.noun(), flags);
        Some(Ckpt { kind, redo, phase: Phase::Clog, delaying, todo, next: 0, written: 0, record, wait: None })
    }

    fn update_control_for(&mut self, c: &Ckpt) {
        let (start, end, ckpt) = c.record.expect("checkpoint record known");
        let ctl = &mut self.control;
        ctl.checkpoint = start;
        ctl.redo = ckpt.redo;
        ctl.tli = ckpt.tli;
        ctl.prev_tli = ckpt.prev_tli;
        ctl.next_xid = ckpt.next_xid;
        match c.kind {
            CkptKind::Shutdown => ctl.state = DbState::Shutdowned,
            CkptKind::EndOfRecovery | CkptKind::Online => ctl.state = DbState::InProduction,
            CkptKind::Restartpoint | CkptKind::ShutdownRestartpoint => {
                ctl.state = if c.kind == CkptKind::Restartpoint {
                    DbState::InArchiveRecovery
                } else {
                    DbState::ShutdownedInRecovery
                };
                if ctl.min_recovery_point < end {
                    ctl.min_recovery_point = end;
                    ctl.min_recovery_point_tli = ckpt.tli;
                }
            }
        }
    }

    fn finish_checkpoint(&mut self, c: Ckpt, ctx: &mut Ctx<'_>) {
        self.checkpointer.completed += 1;
        // CreateCheckPoint / CreateRestartPoint: KeepLogSeg from the
        // checkpoint record (a restartpoint: from the replay position),
        // then RemoveOldXlogFiles before REDO's segment.
        let recptr = if c.kind.is_restartpoint() {
            self.startup.as_ref().map_or(self.wal.flush_lsn(), |s| s.replayed)
        } else {
            c.record.map_or(c.redo, |(start, _, _)| start)
        };
        debug_assert!(
            c.kind.is_restartpoint() || c.redo <= recptr,
            "checkpoint record at {recptr} before its REDO {}",
            c.redo
        );
        self.remove_old_wal(c.redo, recptr, ctx);
        let pct = 100.0 * f64::from(c.written) / self.buffers.frames().len() as f64;
        slog!(
            ctx.log,
            self.id,
            Process::Checkpointer,
            Log,
            "{} complete: wrote {} buffers ({:.1}%); lsn={}, redo lsn={}",
            c.kind.noun(),
            c.written,
            pct,
            self.control.checkpoint,
            c.redo
        );
        if c.kind.is_restartpoint() {
            slog!(ctx.log, self.id, Process::Checkpointer, Log, "recovery restart point at {}", c.redo);
            if c.kind == CkptKind::Restartpoint {
                ctx.fx.marks.hit(Mark::Restartpoint);
            }
        }
        match c.kind {
            CkptKind::Shutdown | CkptKind::ShutdownRestartpoint => self.shutdown_complete(ctx),
            CkptKind::EndOfRecovery => self.end_of_recovery_checkpoint_done(ctx),
            CkptKind::Online | CkptKind::Restartpoint => {}
        }
    }

    /// KeepLogSeg: the first segment a checkpoint at `recptr` must keep for
    /// standbys — the oldest valid slot's `restart_lsn`, no further back
    /// than `max_slot_wal_keep_size`, and `wal_keep_size` behind it.
    /// `u64::MAX` when nothing is held.
    pub fn keep_log_seg(&self, recptr: Lsn, settings: &crate::settings::Settings) -> u64 {
        let g = self.wal.geometry();
        let curr = g.segno(recptr);
        let mut segno = u64::MAX;
        if let Some(keep) = self.slots_min_restart_lsn() {
            segno = g.segno(keep);
            if settings.max_slot_wal_keep_size >= 0 {
                let slot_keep_segs = ((settings.max_slot_wal_keep_size as u64) << 20) / g.segment_size();
                if curr.saturating_sub(segno) > slot_keep_segs {
                    segno = curr - slot_keep_segs;
                }
            }
        }
        let keep_segs = settings.wal_keep_size.0.0 / g.segment_size();
        if keep_segs > 0 {
            // "if (currSegNo - segno < keep_segs) segno = currSegNo - keep_segs"
            // (at least the first segment, which is 0 here, 1 in PostgreSQL).
            segno = segno.min(curr.saturating_sub(keep_segs));
        }
        segno
    }

    /// InvalidateObsoleteReplicationSlots: slots whose `restart_lsn` lies
    /// before segment `oldest` (what `max_slot_wal_keep_size` let KeepLogSeg
    /// keep) lose their reservation, with PostgreSQL's LOG line.
    fn invalidate_obsolete_slots(&mut self, oldest: u64, ctx: &mut Ctx<'_>) {
        let g = *self.wal.geometry();
        let limit = Lsn(oldest.saturating_mul(g.segment_size()));
        for s in self.slots.iter_mut().filter(|s| !s.invalidated && s.restart_lsn.is_valid()) {
            if s.restart_lsn < limit {
                slog!(
                    ctx.log,
                    self.id,
                    Process::Checkpointer,
                    Log,
                    "invalidating slot \"{}\" because its restart_lsn {} exceeds max_slot_wal_keep_size",
                    s.name,
                    s.restart_lsn
                );
                s.invalidated = true;
                s.restart_lsn = Lsn::INVALID;
            }
        }
    }

    /// RemoveOldXlogFiles after a checkpoint with REDO `redo` whose record
    /// (or replay position) is `recptr`: every segment before REDO's,
    /// or before what KeepLogSeg holds, is removed or recycled (DEBUG2
    /// lines, as PostgreSQL logs them). `wal_segments_kept` is judged here:
    /// a removal past what `wal_keep_size` holds is a violation.
    fn remove_old_wal(&mut self, redo: Lsn, recptr: Lsn, ctx: &mut Ctx<'_>) {
        let settings = ctx.env.settings;
        let g = *self.wal.geometry();
        let redo_seg = g.segno(redo);
        let held = self.keep_log_seg(recptr, settings);
        let needed = redo_seg.min(held);
        if settings.max_slot_wal_keep_size >= 0 {
            self.invalidate_obsolete_slots(needed, ctx);
        }
        let mut keep = if settings.rules.keep_wal_for_standbys { needed } else { redo_seg };
        if keep < redo_seg && self.slots_min_restart_lsn().is_some_and(|l| g.segno(l) < redo_seg) {
            ctx.fx.marks.hit(Mark::SlotHeldWal);
        }
        // XLogArchiveCheckDone: a segment still `.ready` stays.
        let unarchived = self.oldest_not_archived(settings);
        if let Some(u) = unarchived
            && settings.rules.remove_checks_archive_done
        {
            keep = keep.min(u);
        }
        if keep == 0 {
            return;
        }
        let before = self.wal.kept_from();
        let Some((first, last)) = self.wal.remove_before(Lsn(keep * g.segment_size())) else { return };
        ctx.fx.marks.hit(Mark::SegmentRemoved);
        let proc = Process::Checkpointer;
        let name = |seg: u64| g.wal_file_name(self.tli, Lsn(seg * g.segment_size()));
        slog!(
            ctx.log,
            self.id,
            proc,
            Debug,
            "attempting to remove WAL segments older than log file {}",
            name(keep - 1)
        );
        // XLOGfileslop: recycled as future segments while below
        // min_wal_size ahead of REDO, removed beyond it.
        let recycle_upto = redo_seg + (settings.min_wal_size.0.0 / g.segment_size()).max(1) - 1;
        let mut future = g.segno(self.wal.insert_lsn()) + 1;
        for seg in first.max(g.segno(before))..=last {
            if future <= recycle_upto {
                slog!(ctx.log, self.id, proc, Debug, "recycled write-ahead log file \"{}\"", name(seg));
                future += 1;
            } else {
                slog!(ctx.log, self.id, proc, Debug, "removing write-ahead log file \"{}\"", name(seg));
            }
        }
        if self.wal.kept_from() > Lsn(needed * g.segment_size()).max(before) {
            let why = if held < redo_seg {
                format!(
                    "wal_keep_size ({}) and replication slots hold WAL from segment {} on",
                    settings.wal_keep_size.0,
                    name(held)
                )
            } else {
                format!("its REDO {redo} lies in segment {}", name(redo_seg))
            };
            ctx.fx.violations.push(crate::violation::Violation {
                invariant: crate::violation::Invariant::WalSegmentsKept,
                node: Some(self.id),
                detail: format!(
                    "{}: a checkpoint removed WAL segments up to {}, but {why}: a standby or crash recovery that needs them finds them gone",
                    self.name,
                    name(last)
                ),
            });
        }
        if let Some(u) = unarchived
            && self.wal.kept_from() > Lsn(u * g.segment_size()).max(before)
        {
            ctx.fx.violations.push(crate::violation::Violation {
                invariant: crate::violation::Invariant::WalSegmentsKept,
                node: Some(self.id),
                detail: format!(
                    "{}: a checkpoint removed WAL segments up to {}, but segments from {} on are not archived yet (archive_status .ready): the archive will never have them",
                    self.name,
                    name(last),
                    name(u)
                ),
            });
        }
    }

    /// The shutdown checkpoint is durable. A primary's walsenders still
    /// send what is left (the cluster finishes the shutdown when they are
    /// done); everything else exits now.
    fn shutdown_complete(&mut self, ctx: &mut Ctx<'_>) {
        self.shutdown_ckpt_done = true;
        if self.startup.is_some() || self.single_user || !ctx.env.settings.rules.shutdown_sends_all_wal {
            self.finish_shutdown(ctx);
        }
    }

    /// The postmaster exits after a fast shutdown.
    pub fn finish_shutdown(&mut self, ctx: &mut Ctx<'_>) {
        self.status = Status::Down;
        self.startup = None;
        self.shutdown_ckpt_done = false;
        self.buffers.clear();
        self.walsenders.clear();
        self.checkpointer = Checkpointer::default();
        slog!(ctx.log, self.id, Process::Postmaster, Log, "database system is shut down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Cluster;
    use crate::testkit::quiesced;

    /// Requests `kind` on node `i` and runs its checkpointer while it can.
    fn run_checkpoint(c: &mut Cluster, i: usize, kind: CkptKind) {
        c.with_node(i, |n, ctx| {
            n.checkpointer.request(kind);
            for _ in 0..10_000 {
                if !n.checkpointer_ready(ctx.env) {
                    break;
                }
                n.checkpointer_step(ctx);
            }
        });
    }

    #[test]
    fn a_timed_checkpoint_is_useful_only_after_new_wal() {
        let mut c = quiesced(1, 300);
        let before = c.nodes[0].checkpointer.completed;
        assert!(c.nodes[0].checkpoint_request_useful(), "WAL since the last checkpoint");
        run_checkpoint(&mut c, 0, CkptKind::Online);
        assert_eq!(c.nodes[0].checkpointer.completed, before + 1);
        assert!(c.nodes[0].checkpointer.current.is_none());
        // The checkpoint record itself is the last WAL: no storm of
        // checkpoints with nothing logged in between.
        assert_eq!(c.nodes[0].wal.records().last().map(|r| r.lsn), Some(c.nodes[0].control.checkpoint));
        assert!(!c.nodes[0].checkpoint_request_useful());
        let tli = c.nodes[0].tli;
        c.nodes[0].wal.insert(tli, Xid(0), crate::wal::RecordBody::Abort);
        assert!(c.nodes[0].checkpoint_request_useful());
        c.nodes[0].checkpointer.request(CkptKind::Online);
        assert!(!c.nodes[0].checkpoint_request_useful(), "one request at a time");
    }

    #[test]
    fn a_standby_restartpoints_at_the_checkpoint_it_replayed() {
        // max_wal_size large enough that settling takes no WAL-triggered
        // restartpoint of its own.
        let mut c = crate::testkit::quiesced_with(1, 300, |s| s.max_wal_size.0.0 = 2 << 20);
        run_checkpoint(&mut c, 1, CkptKind::Restartpoint);
        assert!(!c.nodes[1].checkpoint_request_useful(), "caught up with the replayed checkpoints");
        let before = c.nodes[1].checkpointer.completed;
        run_checkpoint(&mut c, 0, CkptKind::Online);
        let ckpt = c.nodes[0].control.checkpoint;
        crate::testkit::settle(&mut c);
        let st = c.nodes[1].startup.as_ref().unwrap();
        assert_eq!(st.last_checkpoint.map(|l| l.0), Some(ckpt), "replayed");
        assert!(c.nodes[1].checkpoint_request_useful(), "a newer checkpoint replayed");
        assert!(c.nodes[1].may_start(CkptKind::Restartpoint));
        assert!(!c.nodes[0].may_start(CkptKind::Restartpoint), "a primary does not restartpoint");
        run_checkpoint(&mut c, 1, CkptKind::Restartpoint);
        let n = &c.nodes[1];
        assert_eq!(n.checkpointer.completed, before + 1);
        assert_eq!(n.control.checkpoint, ckpt, "pg_control points at the replayed checkpoint");
        assert_eq!(n.status, Status::Recovery);
        assert!(!n.checkpoint_request_useful(), "done: nothing newer");
    }

    #[test]
    fn an_empty_restartpoint_is_skipped_but_a_shutdown_one_shuts_down() {
        let mut c = quiesced(1, 300);
        run_checkpoint(&mut c, 1, CkptKind::Restartpoint);
        let before = c.nodes[1].checkpointer.completed;
        run_checkpoint(&mut c, 1, CkptKind::Restartpoint);
        let n = &c.nodes[1];
        assert_eq!(
            (n.checkpointer.completed, n.status),
            (before, Status::Recovery),
            "skipped, still running"
        );
        assert!(n.checkpointer.current.is_none() && n.checkpointer.requested.is_none());
        c.nodes[1].status = Status::ShuttingDown;
        run_checkpoint(&mut c, 1, CkptKind::ShutdownRestartpoint);
        let n = &c.nodes[1];
        assert_eq!(n.status, Status::Down);
        assert_eq!(n.control.state, DbState::ShutdownedInRecovery);
    }

    #[test]
    fn checkpoint_kinds_log_their_reason() {
        assert_eq!(CkptKind::Online.flags(), "time");
        assert_eq!(CkptKind::Restartpoint.flags(), "time");
        assert_eq!(CkptKind::EndOfRecovery.flags(), "end-of-recovery immediate wait");
        assert_eq!(CkptKind::Shutdown.flags(), "shutdown immediate");
        assert_eq!(CkptKind::ShutdownRestartpoint.flags(), "shutdown immediate");
        assert_eq!(CkptKind::ShutdownRestartpoint.noun(), "restartpoint");
        assert_eq!(CkptKind::EndOfRecovery.noun(), "checkpoint");
        assert!(CkptKind::Shutdown > CkptKind::Online, "a shutdown request outranks a timed one");
    }

    /// After a promotion to timeline 2, checkpoints on timeline 2 name
    /// timeline 1 as the previous one (CreateCheckPoint's
    /// PrevTimeLineID), in the record and then in pg_control.
    #[test]
    fn checkpoints_after_a_promotion_name_the_previous_timeline() {
        let mut c = quiesced(1, 300);
        c.nodes[1].startup.as_mut().unwrap().promote = true;
        crate::testkit::settle(&mut c);
        assert_eq!((c.nodes[1].status, c.nodes[1].tli), (Status::Production, Tli(2)), "promoted");
        for _ in 0..2 {
            let tli = c.nodes[1].tli;
            c.nodes[1].wal.insert(tli, Xid(0), RecordBody::Abort);
            run_checkpoint(&mut c, 1, CkptKind::Online);
            let n = &c.nodes[1];
            let rec = n.wal.record_at(n.control.checkpoint).unwrap();
            let ckpt = rec.body.checkpoint().copied().unwrap();
            assert_eq!((ckpt.tli, ckpt.prev_tli), (Tli(2), Tli(1)));
            assert_eq!((n.control.tli, n.control.prev_tli), (Tli(2), Tli(1)));
        }
    }

    /// More WAL since REDO than `max_wal_size` requests a checkpoint (a
    /// restartpoint on a standby); exactly `max_wal_size` does not.
    #[test]
    fn wal_beyond_max_wal_size_requests_a_checkpoint() {
        let small = crate::settings::WalSize(crate::settings::Bytes(8192));
        let mut c = crate::testkit::quiesced_with(1, 300, |s| s.max_wal_size = small);
        let max = c.settings().max_wal_size.0.0;
        for (i, kind) in [(0, CkptKind::Online), (1, CkptKind::Restartpoint)] {
            let insert = c.nodes[i].wal.insert_lsn().0;
            assert!(insert > max, "the test needs a small max_wal_size ({max})");
            c.nodes[i].redo_ptr = Lsn(insert - max);
            c.with_node(i, |n, ctx| n.request_checkpoint_if_wal_full(ctx));
            assert_eq!(c.nodes[i].checkpointer.requested, None, "node{}: at max_wal_size", i + 1);
            c.nodes[i].redo_ptr = Lsn(insert - max - 1);
            c.with_node(i, |n, ctx| n.request_checkpoint_if_wal_full(ctx));
            assert_eq!(c.nodes[i].checkpointer.requested, Some(kind), "node{}", i + 1);
        }
    }

    /// Runs `f` on a fresh primary (initdb) with a logging context.
    fn on_node<R>(
        settings: &crate::settings::Settings,
        n: &mut Node,
        f: impl FnOnce(&mut Node, &mut Ctx<'_>) -> R,
    ) -> (R, Vec<String>) {
        let (mut log, mut fx) = (crate::log::Log::new(true), crate::event::Effects::default());
        let archive = crate::archive::Archive::default();
        let mut ctx =
            Ctx { env: crate::node::Env { settings, archive: &archive }, log: &mut log, fx: &mut fx };
        let r = f(n, &mut ctx);
        (r, log.drain().map(|l| l.message).collect())
    }

    /// KeepLogSeg: a slot holds WAL from its restart_lsn's segment, but no
    /// more than max_slot_wal_keep_size behind the checkpoint;
    /// wal_keep_size holds that many segments behind it.
    #[test]
    fn keep_log_seg_holds_slots_within_max_slot_wal_keep_size() {
        use crate::node::ReplSlot;
        use crate::settings::WalSize;
        let mut s = crate::testkit::real_geometry();
        assert_eq!(s.wal_segment_size.0, 1 << 20);
        let mut n = Node::initdb(crate::ids::NodeId(0), &s);
        let at = Lsn(10 << 20);
        assert_eq!(n.keep_log_seg(at, &s), u64::MAX, "nothing held");
        s.wal_keep_size = WalSize(crate::settings::Bytes(3 << 20));
        assert_eq!(n.keep_log_seg(at, &s), 7);
        s.wal_keep_size = WalSize(crate::settings::Bytes(0));
        n.slots = vec![ReplSlot { name: "s".into(), restart_lsn: Lsn((1 << 20) + 100), invalidated: false }];
        s.max_slot_wal_keep_size = -1;
        assert_eq!(n.keep_log_seg(at, &s), 1);
        s.max_slot_wal_keep_size = 2;
        assert_eq!(n.keep_log_seg(at, &s), 8);
        s.max_slot_wal_keep_size = 9;
        assert_eq!(n.keep_log_seg(at, &s), 1, "exactly max_slot_wal_keep_size behind");
        s.max_slot_wal_keep_size = 8;
        assert_eq!(n.keep_log_seg(at, &s), 2);
        s.max_slot_wal_keep_size = -1;
        s.wal_keep_size = WalSize(crate::settings::Bytes(3 << 20));
        assert_eq!(n.keep_log_seg(at, &s), 1, "the slot holds more");
    }

    /// A slot whose restart_lsn lies before the oldest kept segment is
    /// invalidated, with PostgreSQL's line; one exactly at it is not.
    #[test]
    fn slots_before_the_oldest_kept_segment_are_invalidated() {
        use crate::node::ReplSlot;
        let s = crate::testkit::real_geometry();
        let mut n = Node::initdb(crate::ids::NodeId(0), &s);
        let slot =
            |name: &str, at: u64| ReplSlot { name: name.into(), restart_lsn: Lsn(at), invalidated: false };
        n.slots = vec![slot("behind", (8 << 20) - 8), slot("at", 8 << 20)];
        let ((), lines) = on_node(&s, &mut n, |n, ctx| n.invalidate_obsolete_slots(8, ctx));
        assert_eq!(
            lines,
            ["invalidating slot \"behind\" because its restart_lsn 0/7FFFF8 exceeds max_slot_wal_keep_size"]
        );
        assert_eq!(
            n.slots[0],
            ReplSlot { name: "behind".into(), restart_lsn: Lsn::INVALID, invalidated: true }
        );
        assert_eq!(n.slots[1], slot("at", 8 << 20));
    }

    /// RemoveOldXlogFiles: every segment before REDO's goes (recycled while
    /// below min_wal_size ahead of REDO, removed beyond), named as
    /// PostgreSQL names the files.
    #[test]
    fn old_wal_before_the_redo_segment_is_removed() {
        let s = crate::testkit::real_geometry();
        let mut n = Node::initdb(crate::ids::NodeId(0), &s);
        for _ in 0..5 {
            n.wal.insert(Tli(1), Xid(0), RecordBody::Switch);
        }
        let end = n.wal.insert(Tli(1), Xid(0), RecordBody::Abort).end;
        n.wal.flush_upto(end);
        assert_eq!(n.wal.geometry().segno(end), 5);
        let redo = Lsn((4 << 20) + 40);
        let ((), lines) = on_node(&s, &mut n, |n, ctx| n.remove_old_wal(redo, redo, ctx));
        assert_eq!(n.wal.kept_from(), Lsn(4 << 20));
        assert_eq!(
            lines,
            [
                "attempting to remove WAL segments older than log file 000000010000000000000003",
                "removing write-ahead log file \"000000010000000000000000\"",
                "removing write-ahead log file \"000000010000000000000001\"",
                "removing write-ahead log file \"000000010000000000000002\"",
                "removing write-ahead log file \"000000010000000000000003\"",
            ]
        );
    }

    /// [`on_node`], also returning the effects (marks, violations).
    fn on_node_fx<R>(
        settings: &crate::settings::Settings,
        n: &mut Node,
        f: impl FnOnce(&mut Node, &mut Ctx<'_>) -> R,
    ) -> (R, Vec<String>, crate::event::Effects) {
        let (mut log, mut fx) = (crate::log::Log::new(true), crate::event::Effects::default());
        let archive = crate::archive::Archive::default();
        let mut ctx =
            Ctx { env: crate::node::Env { settings, archive: &archive }, log: &mut log, fx: &mut fx };
        let r = f(n, &mut ctx);
        (r, log.drain().map(|l| l.message).collect(), fx)
    }

    /// A fresh primary (PostgreSQL's geometry: 1 MB segments) whose WAL
    /// reaches into segment 5, flushed; REDO at 0/400028, in segment 4.
    fn primary_with_six_segments(s: &crate::settings::Settings) -> (Node, Lsn) {
        let mut n = Node::initdb(crate::ids::NodeId(0), s);
        for _ in 0..5 {
            n.wal.insert(Tli(1), Xid(0), RecordBody::Switch);
        }
        let end = n.wal.insert(Tli(1), Xid(0), RecordBody::Abort).end;
        n.wal.flush_upto(end);
        assert_eq!(n.wal.geometry().segno(end), 5);
        (n, Lsn((4 << 20) + 40))
    }

    fn seg_name(seg: u64) -> String {
        format!("0000000100000000000000{seg:02X}")
    }

    /// XLOGfileslop: with `min_wal_size` = 4 MB, segments are recycled as
    /// future ones while the next future segment (6: the insert position
    /// is in 5) stays within REDO's segment + 4 - 1 = 7, so segments 0 and
    /// 1 become 6 and 7, and 2 and 3 are removed.
    #[test]
    fn old_segments_are_recycled_up_to_min_wal_size_ahead_of_redo() {
        let mut s = crate::testkit::real_geometry();
        s.min_wal_size = crate::settings::WalSize(crate::settings::Bytes(4 << 20));
        let (mut n, redo) = primary_with_six_segments(&s);
        let ((), lines, fx) = on_node_fx(&s, &mut n, |n, ctx| n.remove_old_wal(redo, redo, ctx));
        assert_eq!(n.wal.kept_from(), Lsn(4 << 20));
        assert_eq!(
            lines,
            [
                format!("attempting to remove WAL segments older than log file {}", seg_name(3)),
                format!("recycled write-ahead log file \"{}\"", seg_name(0)),
                format!("recycled write-ahead log file \"{}\"", seg_name(1)),
                format!("removing write-ahead log file \"{}\"", seg_name(2)),
                format!("removing write-ahead log file \"{}\"", seg_name(3)),
            ]
        );
        assert!(fx.marks.contains(Mark::SegmentRemoved));
        assert!(!fx.marks.contains(Mark::SlotHeldWal));
        assert!(fx.violations.is_empty());
    }

    /// KeepLogSeg: a slot whose restart_lsn is in segment 2 keeps segments
    /// 2 and 3 although REDO is in 4 (mark `slot_held_wal`); without the
    /// rule, they go and `wal_segments_kept` names the slot's segment.
    #[test]
    fn a_slot_holds_wal_behind_redo_and_removing_it_is_a_violation() {
        use crate::node::ReplSlot;
        let slot = ReplSlot { name: "node2".into(), restart_lsn: Lsn((2 << 20) + 8), invalidated: false };
        let mut s = crate::testkit::real_geometry();
        let (mut n, redo) = primary_with_six_segments(&s);
        n.slots = vec![slot.clone()];
        let ((), lines, fx) = on_node_fx(&s, &mut n, |n, ctx| n.remove_old_wal(redo, redo, ctx));
        assert_eq!(n.wal.kept_from(), Lsn(2 << 20));
        assert_eq!(
            lines[0],
            format!("attempting to remove WAL segments older than log file {}", seg_name(1))
        );
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(fx.marks.contains(Mark::SlotHeldWal));
        assert!(fx.violations.is_empty(), "{:?}", fx.violations);
        assert_eq!(n.slots, std::slice::from_ref(&slot), "max_slot_wal_keep_size = -1: no invalidation");

        s.rules.keep_wal_for_standbys = false;
        let (mut n, redo) = primary_with_six_segments(&s);
        n.slots = vec![slot.clone()];
        let ((), lines, fx) = on_node_fx(&s, &mut n, |n, ctx| n.remove_old_wal(redo, redo, ctx));
        assert_eq!(n.wal.kept_from(), Lsn(4 << 20));
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(!fx.marks.contains(Mark::SlotHeldWal), "nothing was held");
        let v: Vec<_> = fx.violations.iter().map(|v| (v.invariant, v.detail.as_str())).collect();
        assert_eq!(
            v,
            [(
                crate::violation::Invariant::WalSegmentsKept,
                "node1: a checkpoint removed WAL segments up to 000000010000000000000003, but wal_keep_size (0B) and replication slots hold WAL from segment 000000010000000000000002 on: a standby or crash recovery that needs them finds them gone"
            )]
        );
    }

    /// `wal_keep_size` (3 MB: segments 1 on, behind the checkpoint's
    /// segment 4) holds WAL although the slot, at REDO's segment, does
    /// not: no `slot_held_wal` mark.
    #[test]
    fn wal_keep_size_holding_is_not_a_slot_holding() {
        use crate::node::ReplSlot;
        let mut s = crate::testkit::real_geometry();
        s.wal_keep_size = crate::settings::WalSize(crate::settings::Bytes(3 << 20));
        let (mut n, redo) = primary_with_six_segments(&s);
        n.slots = vec![ReplSlot { name: "s".into(), restart_lsn: Lsn((4 << 20) + 8), invalidated: false }];
        let ((), _, fx) = on_node_fx(&s, &mut n, |n, ctx| n.remove_old_wal(redo, redo, ctx));
        assert_eq!(n.wal.kept_from(), Lsn(1 << 20));
        assert!(!fx.marks.contains(Mark::SlotHeldWal));
        assert!(fx.violations.is_empty());
    }

    /// With `max_slot_wal_keep_size` = 1 MB, a checkpoint in segment 4
    /// keeps no more than segment 3 for a slot in segment 2: the slot is
    /// invalidated and segments up to 2 go.
    #[test]
    fn a_checkpoint_invalidates_a_slot_beyond_max_slot_wal_keep_size() {
        use crate::node::ReplSlot;
        let mut s = crate::testkit::real_geometry();
        s.max_slot_wal_keep_size = 1;
        let (mut n, redo) = primary_with_six_segments(&s);
        n.slots =
            vec![ReplSlot { name: "node2".into(), restart_lsn: Lsn((2 << 20) + 8), invalidated: false }];
        let ((), lines, fx) = on_node_fx(&s, &mut n, |n, ctx| n.remove_old_wal(redo, redo, ctx));
        assert_eq!(
            lines[0],
            "invalidating slot \"node2\" because its restart_lsn 0/200008 exceeds max_slot_wal_keep_size"
        );
        assert!(n.slots[0].invalidated);
        assert_eq!(n.wal.kept_from(), Lsn(3 << 20));
        assert!(fx.violations.is_empty());
    }

    /// XLogArchiveCheckDone: segments from the oldest `.ready` one on stay;
    /// without the rule they go, and `wal_segments_kept` says the archive
    /// will never have them.
    #[test]
    fn segments_not_archived_yet_are_kept() {
        let mut s = crate::testkit::real_geometry();
        s.archive_mode = crate::settings::ArchiveMode::On;
        let (mut n, redo) = primary_with_six_segments(&s);
        n.status = Status::Production;
        n.archive_status.next_seg = 2;
        let ((), _, fx) = on_node_fx(&s, &mut n, |n, ctx| n.remove_old_wal(redo, redo, ctx));
        assert_eq!(n.wal.kept_from(), Lsn(2 << 20));
        assert!(fx.violations.is_empty(), "{:?}", fx.violations);

        s.rules.remove_checks_archive_done = false;
        let (mut n, redo) = primary_with_six_segments(&s);
        n.status = Status::Production;
        n.archive_status.next_seg = 2;
        let ((), _, fx) = on_node_fx(&s, &mut n, |n, ctx| n.remove_old_wal(redo, redo, ctx));
        assert_eq!(n.wal.kept_from(), Lsn(4 << 20));
        let v: Vec<_> = fx.violations.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(
            v,
            [
                "node1: a checkpoint removed WAL segments up to 000000010000000000000003, but segments from 000000010000000000000002 on are not archived yet (archive_status .ready): the archive will never have them"
            ]
        );
    }

    /// A slot never reserved (no restart_lsn) or already invalidated is
    /// left alone: no second "invalidating slot" line.
    #[test]
    fn only_reserved_valid_slots_are_invalidated() {
        use crate::node::ReplSlot;
        let s = crate::testkit::real_geometry();
        let mut n = Node::initdb(crate::ids::NodeId(0), &s);
        let unreserved = ReplSlot { name: "new".into(), restart_lsn: Lsn::INVALID, invalidated: false };
        let done = ReplSlot { name: "old".into(), restart_lsn: Lsn::INVALID, invalidated: true };
        n.slots = vec![unreserved.clone(), done.clone()];
        let ((), lines) = on_node(&s, &mut n, |n, ctx| n.invalidate_obsolete_slots(8, ctx));
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(n.slots, [unreserved, done]);
    }

    /// Requests `kind` on node `i` and steps its checkpointer while it is
    /// ready, with logging on: the steps taken, the messages, the effects.
    fn logged_checkpoint(
        c: &mut Cluster,
        i: usize,
        kind: CkptKind,
    ) -> (u32, Vec<String>, crate::event::Effects) {
        let s = c.settings().clone();
        let (steps, lines, fx) = on_node_fx(&s, &mut c.nodes[i], |n, ctx| {
            n.checkpointer.request(kind);
            let mut steps = 0;
            while n.checkpointer_ready(ctx.env) {
                n.checkpointer_step(ctx);
                steps += 1;
                assert!(steps < 10_000, "the checkpoint ends");
            }
            steps
        });
        (steps, lines, fx)
    }

    /// CreateCheckPoint: REDO is the insert position when it starts; each
    /// buffer dirty then is written once, one per step, unless it was
    /// written meanwhile; the count and share of buffers written is
    /// logged (2 of 16 = 12.5 %); the record is an online checkpoint that
    /// pg_control then points at.
    #[test]
    fn a_checkpoint_writes_each_buffer_dirty_at_its_start_once() {
        let mut c = quiesced(1, 300);
        run_checkpoint(&mut c, 0, CkptKind::Online);
        let s = c.settings().clone();
        let n = &mut c.nodes[0];
        assert_eq!((n.buffers.dirty_frames().count(), n.clog.dirty_pages().count()), (0, 0));
        assert_eq!(n.buffers.frames().len(), 16);
        // Blocks 0 to 2 resident (read in if need be), then dirtied.
        on_node(&s, n, |n, ctx| {
            for b in 0..3 {
                n.read_buffer(crate::ids::BlockNumber(b), Process::Checkpointer, ctx).unwrap();
            }
        });
        let used: Vec<usize> =
            (0..3).map(|b| n.buffers.lookup(crate::ids::BlockNumber(b)).expect("resident")).collect();
        for &f in &used {
            n.buffers.frame_mut(f).dirty = true;
        }
        let tli = n.tli;
        n.wal.insert(tli, Xid(0), RecordBody::Abort);
        let insert = n.wal.insert_lsn();
        let completed = n.checkpointer.completed;
        let ((steps, redo), lines, _) = on_node_fx(&s, n, |n, ctx| {
            n.checkpointer.request(CkptKind::Online);
            n.checkpointer_step(ctx);
            let redo = n.checkpointer.current.as_ref().expect("begun").redo;
            assert_eq!(n.redo_ptr, redo, "RedoRecPtr moves at the start");
            // The bgwriter writes the second of them while the checkpoint runs.
            n.flush_buffer(used[1], Process::BgWriter, ctx).unwrap();
            let mut steps = 1;
            while n.checkpointer_ready(ctx.env) {
                n.checkpointer_step(ctx);
                steps += 1;
            }
            (steps, redo)
        });
        assert_eq!(redo, insert);
        // Begin; CLOG (nothing dirty); the three (the second skipped); then
        // fsync, the record, pg_control.
        assert_eq!(steps, 1 + 1 + 3 + 1 + 1 + 1 + 1);
        assert_eq!(n.checkpointer.completed, completed + 1);
        assert_eq!(n.buffers.dirty_frames().count(), 0);
        let ckpt_lines: Vec<_> = lines.iter().filter(|l| l.starts_with("checkpoint")).cloned().collect();
        assert_eq!(
            ckpt_lines,
            [
                "checkpoint starting: time".to_string(),
                format!(
                    "checkpoint complete: wrote 2 buffers (12.5%); lsn={}, redo lsn={redo}",
                    n.control.checkpoint
                )
            ]
        );
        let rec = n.wal.record_at(n.control.checkpoint).unwrap();
        assert!(matches!(rec.body, RecordBody::CheckpointOnline(ck) if ck.redo == redo), "{:?}", rec.body);
        assert_eq!((n.control.redo, n.control.state), (redo, DbState::InProduction));
    }

    /// A fast shutdown's checkpoint writes a shutdown checkpoint record
    /// and marks pg_control shut down; the primary waits for its
    /// walsenders before it exits (shutdown_sends_all_wal), or exits at
    /// once without that rule.
    #[test]
    fn the_shutdown_checkpoint_writes_a_shutdown_record() {
        for sends_all in [true, false] {
            let mut c = crate::testkit::quiesced_with(1, 300, |s| s.rules.shutdown_sends_all_wal = sends_all);
            c.with_node(0, |n, ctx| n.begin_fast_shutdown(ctx));
            let (_, lines, _) = logged_checkpoint(&mut c, 0, CkptKind::Shutdown);
            let n = &c.nodes[0];
            assert!(lines.contains(&"checkpoint starting: shutdown immediate".to_string()), "{lines:?}");
            let rec = n.wal.record_at(n.control.checkpoint).unwrap();
            assert_eq!(rec.body.name(), "XLOG/CHECKPOINT_SHUTDOWN");
            assert_eq!(n.control.state, DbState::Shutdowned);
            assert!(n.checkpointer.current.is_none());
            if sends_all {
                assert!(n.shutdown_ckpt_done);
                assert_eq!(n.status, Status::ShuttingDown, "walsenders still send");
            } else {
                assert_eq!(n.status, Status::Down);
                assert_eq!(lines.last().unwrap(), "database system is shut down");
            }
        }
    }

    /// Which checkpoint each state of the server may start.
    #[test]
    fn each_kind_of_checkpoint_starts_only_in_its_state() {
        use CkptKind::*;
        let kinds = [Online, Restartpoint, EndOfRecovery, Shutdown, ShutdownRestartpoint];
        let may = |n: &Node| kinds.map(|k| n.may_start(k));
        let mut c = quiesced(1, 200);
        assert_eq!(may(&c.nodes[0]), [true, false, false, false, false], "a primary");
        assert_eq!(may(&c.nodes[1]), [false, true, true, false, false], "a standby (in recovery)");
        c.nodes[0].status = Status::ShuttingDown;
        c.nodes[1].status = Status::ShuttingDown;
        assert_eq!(may(&c.nodes[0]), [false, false, false, true, false]);
        // A standby shutting down is still in recovery: a restartpoint
        // request is still its kind of checkpoint.
        assert_eq!(may(&c.nodes[1]), [false, true, false, false, true]);
        c.nodes[0].status = Status::Down;
        assert!(!c.with_node(0, |n, ctx| {
            n.checkpointer.request(Online);
            n.checkpointer_ready(ctx.env)
        }));
    }

    /// A checkpoint under way makes a timed request useless; so does a
    /// newer checkpoint replayed by crash recovery (not a standby): only
    /// a standby restartpoints.
    #[test]
    fn a_timed_request_is_useless_during_a_checkpoint_or_crash_recovery() {
        let mut c = crate::testkit::quiesced_with(1, 300, |s| s.max_wal_size.0.0 = 2 << 20);
        run_checkpoint(&mut c, 1, CkptKind::Restartpoint);
        run_checkpoint(&mut c, 0, CkptKind::Online);
        crate::testkit::settle(&mut c);
        assert!(c.nodes[1].checkpoint_request_useful());
        c.nodes[1].startup.as_mut().unwrap().standby = false;
        assert!(!c.nodes[1].checkpoint_request_useful(), "crash recovery does not restartpoint");
        c.nodes[1].startup.as_mut().unwrap().standby = true;
        let tli = c.nodes[0].tli;
        c.nodes[0].wal.insert(tli, Xid(0), RecordBody::Abort);
        assert!(c.nodes[0].checkpoint_request_useful());
        c.with_node(0, |n, ctx| {
            n.checkpointer.request(CkptKind::Online);
            n.checkpointer_step(ctx);
        });
        assert!(c.nodes[0].checkpointer.requested.is_none() && c.nodes[0].checkpointer.current.is_some());
        assert!(!c.nodes[0].checkpoint_request_useful(), "one checkpoint at a time");
    }

    /// DELAY_CHKPT_START: a checkpoint waits, before writing anything, for
    /// the sessions that had inserted their commit record but not yet
    /// updated CLOG when it took REDO; not for later ones, and not
    /// without the rule.
    #[test]
    fn a_checkpoint_waits_for_commits_in_progress_at_its_start() {
        use crate::backend::Backend;
        use crate::event::{Op, OpKind};
        for rule in [true, false] {
            let mut c =
                crate::testkit::quiesced_with(1, 200, |s| s.rules.checkpoint_waits_for_commits = rule);
            let op = Op { client: 0, kind: OpKind::Insert, key: 1, payload: 2 };
            let end = c.nodes[0].wal.end();
            c.nodes[0].backends[0] = Backend::Committing { xid: Xid(90), op, end };
            let ready = c.with_node(0, |n, ctx| {
                n.checkpointer.request(CkptKind::Online);
                n.checkpointer_step(ctx);
                n.checkpointer_ready(ctx.env)
            });
            let ck = c.nodes[0].checkpointer.current.as_ref().unwrap();
            assert_eq!(ck.phase, Phase::Clog);
            if rule {
                assert!(!ready, "waits for xid 90");
                assert_eq!(c.nodes[0].delaying_xid(ck), Some(Xid(90)));
            } else {
                assert!(ready);
            }
            c.nodes[0].backends[0] = Backend::Idle;
            assert!(c.with_node(0, |n, ctx| n.checkpointer_ready(ctx.env)), "xid 90 finished");
            // A commit that began after REDO does not hold it up.
            c.nodes[0].backends[1] = Backend::Committing { xid: Xid(91), op, end };
            assert!(c.with_node(0, |n, ctx| n.checkpointer_ready(ctx.env)));
        }
    }

    /// CreateRestartPoint with nothing new replayed: "skipping
    /// restartpoint", and minRecoveryPoint is raised to the replay
    /// position once (rule `skipped_restartpoint_updates_min_recovery_point`).
    #[test]
    fn a_skipped_restartpoint_raises_min_recovery_point_to_the_replay_position() {
        for rule in [true, false] {
            let mut c = crate::testkit::quiesced_with(1, 300, |s| {
                s.rules.skipped_restartpoint_updates_min_recovery_point = rule
            });
            run_checkpoint(&mut c, 1, CkptKind::Restartpoint);
            let replayed = c.nodes[1].startup.as_ref().unwrap().replayed;
            c.nodes[1].control.min_recovery_point = Lsn(replayed.0 - 8);
            let before = c.nodes[1].checkpointer.completed;
            let (_, lines, _) = logged_checkpoint(&mut c, 1, CkptKind::Restartpoint);
            let n = &c.nodes[1];
            assert_eq!(n.checkpointer.completed, before, "skipped");
            let mut expected =
                vec![format!("skipping restartpoint, already performed at {}", n.control.checkpoint)];
            if rule {
                expected.push(format!("updated min recovery point to {replayed} on timeline 1"));
                assert_eq!(n.control.min_recovery_point, replayed);
            } else {
                assert_eq!(n.control.min_recovery_point, Lsn(replayed.0 - 8));
            }
            assert_eq!(lines, expected);
            // Already there: nothing to update.
            let (_, lines, _) = logged_checkpoint(&mut c, 1, CkptKind::Restartpoint);
            assert_eq!(lines.len(), 1, "{lines:?}");
        }
    }

    /// A restartpoint points pg_control at the replayed checkpoint, in
    /// archive recovery, with minRecoveryPoint at least the record's end;
    /// a shutdown restartpoint leaves it "shut down in recovery" and is
    /// no `restartpoint` mark.
    #[test]
    fn a_restartpoint_sets_pg_control_from_the_replayed_checkpoint() {
        for kind in [CkptKind::Restartpoint, CkptKind::ShutdownRestartpoint] {
            let mut c = crate::testkit::quiesced_with(1, 300, |s| s.max_wal_size.0.0 = 2 << 20);
            run_checkpoint(&mut c, 1, CkptKind::Restartpoint);
            run_checkpoint(&mut c, 0, CkptKind::Online);
            crate::testkit::settle(&mut c);
            let (start, end, ckpt) = c.nodes[1].startup.as_ref().unwrap().last_checkpoint.unwrap();
            c.nodes[1].control.min_recovery_point = Lsn(0);
            if kind == CkptKind::ShutdownRestartpoint {
                c.nodes[1].status = Status::ShuttingDown;
            }
            let (_, lines, fx) = logged_checkpoint(&mut c, 1, kind);
            let n = &c.nodes[1];
            assert_eq!((n.control.checkpoint, n.control.redo), (start, ckpt.redo));
            assert_eq!(n.control.min_recovery_point, end, "raised to the record's end");
            assert!(lines.contains(&format!("recovery restart point at {}", ckpt.redo)), "{lines:?}");
            assert!(
                lines.contains(&"restartpoint starting: time".to_string()) || kind != CkptKind::Restartpoint
            );
            if kind == CkptKind::Restartpoint {
                assert_eq!(n.control.state, DbState::InArchiveRecovery);
                assert!(fx.marks.contains(Mark::Restartpoint));
            } else {
                assert_eq!(n.control.state, DbState::ShutdownedInRecovery);
                assert!(!fx.marks.contains(Mark::Restartpoint));
                assert_eq!(n.status, Status::Down);
            }
        }
        // A minRecoveryPoint beyond the record's end stays.
        let mut c = crate::testkit::quiesced_with(1, 300, |s| s.max_wal_size.0.0 = 2 << 20);
        run_checkpoint(&mut c, 1, CkptKind::Restartpoint);
        run_checkpoint(&mut c, 0, CkptKind::Online);
        crate::testkit::settle(&mut c);
        let (_, end, _) = c.nodes[1].startup.as_ref().unwrap().last_checkpoint.unwrap();
        c.nodes[1].control.min_recovery_point = Lsn(end.0 + 800);
        run_checkpoint(&mut c, 1, CkptKind::Restartpoint);
        assert_eq!(c.nodes[1].control.min_recovery_point, Lsn(end.0 + 800));
    }

    /// LogCheckpointStart prints the cause "wal" for a checkpoint begun
    /// with more WAL since REDO than max_wal_size, "time" otherwise.
    #[test]
    fn a_checkpoint_begun_beyond_max_wal_size_is_caused_by_wal() {
        let small = crate::settings::WalSize(crate::settings::Bytes(8192));
        for (over, cause) in [(0, "time"), (1, "wal")] {
            let mut c = crate::testkit::quiesced_with(1, 300, |s| s.max_wal_size = small);
            let insert = c.nodes[0].wal.insert_lsn().0;
            c.nodes[0].redo_ptr = Lsn(insert - 8192 - over);
            let s = c.settings().clone();
            let ((), lines, _) = on_node_fx(&s, &mut c.nodes[0], |n, ctx| {
                n.checkpointer.request(CkptKind::Online);
                n.checkpointer_step(ctx);
            });
            assert_eq!(lines, [format!("checkpoint starting: {cause}")]);
        }
    }

    /// `synchronous_transfer = data_flush`: a checkpoint's buffer write
    /// waits until the synchronous standby has flushed WAL up to the
    /// page's LSN; the checkpointer shows the wait and is not ready until
    /// the standby confirms, then finishes.
    #[test]
    fn a_checkpoint_write_waits_for_the_standby_under_synchronous_transfer() {
        use crate::settings::SynchronousTransfer;
        let mut c = crate::testkit::quiesced_with(1, 300, |s| {
            s.synchronous_transfer = SynchronousTransfer::DataFlush
        });
        run_checkpoint(&mut c, 0, CkptKind::Online);
        let n = &mut c.nodes[0];
        let f = (0..16).find(|&f| n.buffers.frame(f).tag.is_some()).unwrap();
        let tli = n.tli;
        let lsn = n.wal.insert(tli, Xid(0), RecordBody::Abort).end;
        n.buffers.frame_mut(f).page.lsn = lsn;
        n.buffers.frame_mut(f).dirty = true;
        let completed = n.checkpointer.completed;
        let (_, lines, _) = logged_checkpoint(&mut c, 0, CkptKind::Online);
        let n = &c.nodes[0];
        let ck = n.checkpointer.current.as_ref().expect("waiting");
        let wait = Wait::Standby { lsn, what: FileKind::Data };
        assert_eq!((ck.phase, ck.wait), (Phase::Buffers, Some(wait)));
        assert_eq!(lines.last().unwrap(), &format!("waiting for {lsn} (synchronous_transfer, data page)"));
        assert!(!c.with_node(0, |n, ctx| n.checkpointer_ready(ctx.env)));
        crate::testkit::settle(&mut c);
        assert_eq!(c.nodes[0].checkpointer.completed, completed + 1, "the standby confirmed");
        assert!(!c.nodes[0].buffers.frame(f).dirty);
    }
}
