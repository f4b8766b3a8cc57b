//! The startup process (xlogrecovery.c, xlogutils.c): crash recovery and
//! standby replay, one record per event.
//!
//! Redo starts at the REDO pointer of the checkpoint pg_control names and
//! runs to the end of valid WAL (crash recovery) or to what the walreceiver
//! has flushed (standby). A record is skipped when the page LSN shows the
//! change is already there (XLogReadBufferForRedo's BLK_DONE); a full-page
//! image is always restored.

use crate::checkpointer::CkptKind;
use crate::clog::XidStatus;
use crate::control::DbState;
use crate::event::{Check, RefusalKind};
use crate::heap::{Page, Row, Tuple, Xid};
use crate::invariants::{Invariant, Violation};
use crate::log::Process;
use crate::lsn::Lsn;
use crate::node::{Ctx, Node, Status};
use crate::slog;
use crate::wal::{CheckPoint, Record, RecordBody, Wal};
use std::sync::Arc;

/// Where the startup process is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum StartupPhase {
    /// Replaying WAL.
    Redo,
    /// Crash recovery reached the end of WAL; the end-of-recovery
    /// checkpoint runs (WAL insertion is allowed for it).
    EndOfRecovery,
}

/// The startup process.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Startup {
    /// Standby mode (`standby.signal`) rather than crash recovery.
    pub standby: bool,
    pub phase: StartupPhase,
    /// Index in the node's WAL of the next record to replay.
    pub next: usize,
    /// End of the last record replayed (`lastReplayedEndRecPtr`).
    pub replayed: Lsn,
    /// Start of the last record replayed (`lastReplayedReadRecPtr`), if any.
    pub replayed_start: Option<Lsn>,
    /// The last checkpoint record replayed (start, end, contents), which a
    /// restartpoint can complete.
    pub last_checkpoint: Option<(Lsn, Lsn, CheckPoint)>,
    /// Replay passed minRecoveryPoint (hot standby could open).
    pub consistent: bool,
    /// `pg_ctl promote` was requested: replay what is left, then promote.
    pub promote: bool,
}

impl Node {
    /// StartupXLOG up to the redo loop.
    pub fn begin_recovery(&mut self, ctx: &mut Ctx<'_>) {
        let proc = Process::Startup;
        let standby = self.standby_signal;
        if standby {
            slog!(ctx.log, self.id, proc, Log, "entering standby mode");
        }
        let Some(ckpt) =
            self.wal.record_at(self.control.checkpoint).and_then(|r| r.body.checkpoint()).copied()
        else {
            slog!(
                ctx.log,
                self.id,
                proc,
                Panic,
                "could not locate a valid checkpoint record at {}",
                self.control.checkpoint
            );
            self.fail(
                format!("could not locate a valid checkpoint record at {}", self.control.checkpoint),
                ctx,
            );
            return;
        };
        if standby && !self.choose_recovery_target(ctx) {
            return;
        }
        if !self.control.state.is_clean_shutdown() {
            slog!(
                ctx.log,
                self.id,
                proc,
                Log,
                "database system was not properly shut down; automatic recovery in progress"
            );
        }
        self.control.state = if standby { DbState::InArchiveRecovery } else { DbState::InCrashRecovery };
        self.next_xid = self.next_xid.max(ckpt.next_xid);
        let next = self.wal.index_at(ckpt.redo);
        slog!(ctx.log, self.id, proc, Log, "redo starts at {}", ckpt.redo);
        self.startup = Some(Startup {
            standby,
            phase: StartupPhase::Redo,
            next,
            replayed: ckpt.redo,
            replayed_start: None,
            last_checkpoint: None,
            consistent: false,
            promote: standby && self.promote_signal,
        });
        self.status = Status::Recovery;
    }

    /// `recovery_target_timeline = 'latest'`: the newest timeline with a
    /// history file in pg_wal. Its history must contain the checkpoint we
    /// start from, else FATAL "requested timeline N is not a child of this
    /// server's history". Returns whether startup may go on.
    fn choose_recovery_target(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let target = self.history.newest().max(self.control.tli);
        self.walrcv.target_tli = target;
        let ckpt_tli = self.control.tli;
        if target == ckpt_tli || !ctx.env.settings.rules.startup_checks_timeline_fork {
            return true;
        }
        if self.history.tli_of_point(target, self.control.checkpoint) == ckpt_tli {
            // The minimum recovery point must be on the target's history too.
            let mrp = self.control.min_recovery_point;
            let mrp_tli = self.control.min_recovery_point_tli;
            if !mrp.is_valid() || self.history.tli_of_point(target, Lsn(mrp.0 - 1)) == mrp_tli {
                return true;
            }
            let msg = format!(
                "requested timeline {target} does not contain minimum recovery point {mrp} on timeline {mrp_tli}"
            );
            slog!(ctx.log, self.id, Process::Startup, Fatal, "{}", msg);
            ctx.fx.refusals.push((
                self.id,
                RefusalKind::MinRecoveryPointNotOnTimeline,
                format!("FATAL: {msg}"),
            ));
            self.fail(msg, ctx);
            return false;
        }
        let fork = self.history.switch_point(target, ckpt_tli).unwrap_or(Lsn(0));
        let msg = format!("requested timeline {target} is not a child of this server's history");
        let detail = format!(
            "Latest checkpoint is at {} on timeline {ckpt_tli}, but in the history of the requested timeline, the server forked off from that timeline at {fork}.",
            self.control.checkpoint
        );
        slog!(ctx.log, self.id, Process::Startup, Fatal, "{}", msg);
        slog!(ctx.log, self.id, Process::Startup, Detail, "{}", detail);
        ctx.fx.refusals.push((self.id, RefusalKind::NotAChild, format!("FATAL: {msg} DETAIL: {detail}")));
        self.fail(format!("{msg}: {detail}"), ctx);
        false
    }

    /// The server cannot start (PANIC/FATAL in the startup process): it
    /// stays down until an operator changes its files.
    pub fn fail(&mut self, message: String, ctx: &mut Ctx<'_>) {
        self.status = Status::Down;
        self.startup = None;
        self.buffers.clear();
        ctx.fx.startup_failures.push((self.id, message.clone()));
        self.failed = Some(message);
    }

    /// How far the startup process may read: all local WAL in crash
    /// recovery, what the walreceiver has flushed on a standby.
    fn replay_limit(&self, st: &Startup) -> Lsn {
        if st.standby && !st.promote { self.wal.flush_lsn() } else { self.wal.end() }
    }

    /// Whether the startup process can take a step.
    pub fn startup_ready(&self) -> bool {
        match &self.startup {
            Some(st) if st.phase == StartupPhase::Redo && self.status == Status::Recovery => {
                match self.wal.records().get(st.next) {
                    Some(r) => r.end <= self.replay_limit(st),
                    // End of WAL: crash recovery finishes; a standby waits.
                    None => !st.standby || st.promote,
                }
            }
            _ => false,
        }
    }

    /// Replays one record, or finishes crash recovery at the end of WAL.
    pub fn startup_step(&mut self, ctx: &mut Ctx<'_>) {
        let st = self.startup.as_ref().expect("startup_ready");
        let Some(rec) = self.wal.records().get(st.next).cloned() else {
            if st.promote {
                return self.finish_promotion(ctx);
            }
            return self.end_of_crash_recovery(ctx);
        };
        self.redo(&rec, ctx);
        if self.status != Status::Recovery {
            return; // redo failed
        }
        let min_rp = self.control.min_recovery_point;
        let st = self.startup.as_mut().expect("still recovering");
        st.next += 1;
        st.replayed = rec.end;
        st.replayed_start = Some(rec.lsn);
        if !st.consistent && st.standby && rec.end >= min_rp {
            st.consistent = true;
            slog!(
                ctx.log,
                self.id,
                Process::Startup,
                Log,
                "consistent recovery state reached at {}",
                rec.end
            );
        }
    }

    /// Logs the end of redo ("redo done at").
    fn log_redo_done(&self, ctx: &mut Ctx<'_>) {
        let st = self.startup.as_ref().expect("recovering");
        match st.replayed_start {
            Some(last) => {
                slog!(
                    ctx.log,
                    self.id,
                    Process::Startup,
                    Log,
                    "invalid record length at {}: wanted 24, got 0",
                    st.replayed
                );
                slog!(ctx.log, self.id, Process::Startup, Log, "redo done at {}", last);
            }
            None => slog!(ctx.log, self.id, Process::Startup, Log, "redo is not required"),
        }
    }

    fn end_of_crash_recovery(&mut self, ctx: &mut Ctx<'_>) {
        self.log_redo_done(ctx);
        let st = self.startup.as_mut().expect("recovering");
        st.phase = StartupPhase::EndOfRecovery;
        self.checkpointer.request(CkptKind::EndOfRecovery);
    }

    /// Promotion (StartupXLOG after redo): a new timeline, newest known + 1;
    /// its history file, ending the parent at the end of the last record
    /// replayed; an end-of-recovery record on the new timeline; open for
    /// writes; a checkpoint is requested (pg_control keeps the old timeline
    /// until it completes, as pg_rewind notices).
    fn finish_promotion(&mut self, ctx: &mut Ctx<'_>) {
        self.log_redo_done(ctx);
        let st = self.startup.take().expect("recovering");
        self.promote_signal = false;
        let parent = self.tli;
        let newest = if ctx.env.settings.rules.promotion_picks_newest_timeline {
            self.history.newest().max(parent)
        } else {
            parent
        };
        let new_tli = newest + 1;
        let switchpoint = st.replayed;
        slog!(ctx.log, self.id, Process::Startup, Log, "selected new timeline ID: {}", new_tli);
        self.history.add_child(new_tli, parent, switchpoint, "no recovery target specified");
        slog!(ctx.log, self.id, Process::Startup, Log, "archive recovery complete");
        self.tli = new_tli;
        self.walrcv.target_tli = new_tli;
        let body = RecordBody::EndOfRecovery { tli: new_tli, prev_tli: parent };
        let end = self.xlog_insert(0, body).end;
        self.wal.flush_upto(end);
        self.standby_signal = false;
        self.upstream = None;
        self.status = Status::Production;
        self.control.state = DbState::InProduction;
        self.control.min_recovery_point = Lsn(0);
        // A pending restartpoint request is moot now; ask for a checkpoint.
        self.checkpointer.requested = Some(CkptKind::Online);
        slog!(ctx.log, self.id, Process::Postmaster, Log, "database system is ready to accept connections");
        ctx.fx.checks.push(Check::AfterPromotion(self.id));
        ctx.fx.checks.push(Check::Timelines(self.id));
    }

    /// The end-of-recovery checkpoint is durable: open for writes.
    pub fn end_of_recovery_checkpoint_done(&mut self, ctx: &mut Ctx<'_>) {
        self.startup = None;
        self.status = Status::Production;
        slog!(ctx.log, self.id, Process::Postmaster, Log, "database system is ready to accept connections");
        ctx.fx.checks.push(Check::AfterCrashRecovery(self.id));
    }

    /// Whether WAL may be inserted: outside recovery, and for the
    /// end-of-recovery checkpoint (LocalSetXLogInsertAllowed).
    pub fn xlog_insert_allowed(&self) -> bool {
        self.startup.as_ref().is_none_or(|s| s.phase == StartupPhase::EndOfRecovery)
    }

    /// Applies one record (the rmgr redo routines).
    fn redo(&mut self, rec: &Record, ctx: &mut Ctx<'_>) {
        self.next_xid = self.next_xid.max(rec.xid + 1);
        match &rec.body {
            RecordBody::HeapInsert { block, offnum, tuple, image } => {
                self.redo_heap(rec, *block, image, ctx, |p| add_tuple(p, *offnum, *tuple));
            }
            RecordBody::HeapUpdate { block, old_offnum, new_offnum, tuple, image } => {
                self.redo_heap(rec, *block, image, ctx, |p| {
                    let old = p
                        .tuples
                        .get_mut(usize::from(*old_offnum) - 1)
                        .ok_or_else(|| format!("invalid old offset {old_offnum} in block"))?;
                    old.set_xmax(rec.xid);
                    add_tuple(p, *new_offnum, *tuple)
                });
            }
            RecordBody::FpiForHint { block, image } => {
                self.redo_heap(rec, *block, &Some(image.clone()), ctx, |_| Ok(()));
            }
            RecordBody::Commit => self.clog.set(rec.xid, XidStatus::Committed, rec.end),
            RecordBody::Abort => self.clog.set(rec.xid, XidStatus::Aborted, Lsn(0)),
            RecordBody::CheckpointOnline(c) | RecordBody::CheckpointShutdown(c) => {
                if let Some(st) = self.startup.as_mut() {
                    st.last_checkpoint = Some((rec.lsn, rec.end, *c));
                }
            }
            RecordBody::EndOfRecovery { .. } | RecordBody::Switch => {}
        }
        // Replay follows timeline switches in the WAL (an end-of-recovery
        // record starts the new one), in crash recovery too: a node that
        // crashed right after promotion comes back on its new timeline.
        if rec.tli != self.tli {
            slog!(ctx.log, self.id, Process::Startup, Log, "switched to timeline {} at {}", rec.tli, rec.lsn);
            self.tli = rec.tli;
        }
    }

    /// XLogReadBufferForRedo and the change.
    fn redo_heap(
        &mut self,
        rec: &Record,
        block: u32,
        image: &Option<Arc<Page>>,
        ctx: &mut Ctx<'_>,
        apply: impl FnOnce(&mut Page) -> Result<(), String>,
    ) {
        let f = self
            .read_buffer(block, Process::Startup, ctx)
            .expect("nothing waits for a standby during recovery");
        let page = &mut self.buffers.frame_mut(f).page;
        if let Some(img) = image {
            *page = Page::clone(img);
        } else if ctx.env.settings.rules.redo_skips_newer_pages && page.lsn >= rec.end {
            return; // BLK_DONE: the change is already on the page
        } else if let Err(why) = apply(page) {
            let page_lsn = page.lsn;
            let msg = format!(
                "failed to add tuple: redo of {} at {} on block {block} ({why}); the page LSN {page_lsn} shows the page already holds changes up to there",
                rec.body.name(),
                rec.lsn
            );
            slog!(ctx.log, self.id, Process::Startup, Panic, "{}", msg);
            ctx.fx.violations.push(Violation {
                invariant: Invariant::RecoveryIsExact,
                node: Some(self.id),
                detail: format!("{}: {msg}", self.name),
            });
            self.fail(msg, ctx);
            return;
        }
        let d = self.buffers.frame_mut(f);
        d.page.lsn = rec.end;
        d.dirty = true;
    }
}

/// PageAddItem at a given offset during redo: the offset must be the next
/// free one, else PostgreSQL PANICs ("failed to add tuple").
fn add_tuple(p: &mut Page, offnum: u16, tuple: Tuple) -> Result<(), String> {
    if offnum != p.next_offnum() {
        return Err(format!("offset {offnum} requested, page has {} tuples", p.tuples.len()));
    }
    p.tuples.push(tuple);
    Ok(())
}

/// The rows a WAL stream implies: every change replayed from the first
/// record on empty pages, commit status from commit/abort records only
/// (a transaction without either did not commit). What crash recovery
/// must reproduce exactly.
pub fn rows_implied_by_wal(wal: &Wal, rel_pages: u32) -> Vec<Row> {
    let mut pages: Vec<Vec<Tuple>> = vec![Vec::new(); rel_pages as usize];
    let mut committed: Vec<bool> = Vec::new();
    let mark = |committed: &mut Vec<bool>, xid: Xid| {
        let i = xid as usize;
        if committed.len() <= i {
            committed.resize(i + 1, false);
        }
        committed[i] = true;
    };
    for rec in wal.records() {
        match &rec.body {
            RecordBody::HeapInsert { block, tuple, image, .. } => match image {
                Some(img) => pages[*block as usize] = img.tuples.clone(),
                None => pages[*block as usize].push(*tuple),
            },
            RecordBody::HeapUpdate { block, old_offnum, tuple, image, .. } => match image {
                Some(img) => pages[*block as usize] = img.tuples.clone(),
                None => {
                    let p = &mut pages[*block as usize];
                    if let Some(old) = p.get_mut(usize::from(*old_offnum) - 1) {
                        old.xmax = rec.xid;
                    }
                    p.push(*tuple);
                }
            },
            RecordBody::FpiForHint { block, image } => pages[*block as usize] = image.tuples.clone(),
            RecordBody::Commit => mark(&mut committed, rec.xid),
            _ => {}
        }
    }
    let is_committed = |x: Xid| committed.get(x as usize).copied().unwrap_or(false);
    let mut rows: Vec<Row> = pages
        .iter()
        .flatten()
        .filter(|t| is_committed(t.xmin) && !(t.xmax != 0 && is_committed(t.xmax)))
        .map(|t| (t.key, t.payload))
        .collect();
    rows.sort_unstable();
    rows
}
