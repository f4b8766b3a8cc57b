//! The startup process (xlogrecovery.c, xlogutils.c): crash recovery and
//! standby replay, one record per event.
//!
//! Startup follows PostgreSQL 15's InitWalRecovery: with `standby.signal`
//! (archive recovery requested) a server enters archive recovery at once
//! only when pg_control says how far it must replay (a valid
//! minRecoveryPoint, a backup end, or a clean shutdown); otherwise — a
//! crashed primary restarted as a standby — it does crash recovery first,
//! through all of its local WAL, and switches to archive recovery at its
//! end (ReadRecord, SwitchIntoArchiveRecovery), with minRecoveryPoint
//! there. Consistency (CheckRecoveryConsistency) is reached once replay
//! passes minRecoveryPoint, never earlier.
//!
//! A record is skipped when the page LSN shows the change is already there
//! (XLogReadBufferForRedo's BLK_DONE); a full-page image is always
//! restored.

use crate::clog::XidStatus;
use crate::control::DbState;
use crate::event::{Check, RefusalKind};
use crate::heap::{Page, Row, Tuple};
use crate::ids::Tli;
use crate::ids::{BlockNumber, Xid};
use crate::log::Process;
use crate::lsn::Lsn;
use crate::node::{Ctx, Node, Status};
use crate::slog;
use crate::violation::{Invariant, Violation};
use crate::wal::CkptKind;
use crate::wal::{CheckPoint, Record, RecordBody, RemovedWal, Wal};
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
    /// In archive recovery in standby mode (`StandbyMode`): replay what
    /// the walreceiver brings and wait for more. False during crash
    /// recovery, including the crash recovery a standby does first.
    pub standby: bool,
    /// `standby.signal` was present (`ArchiveRecoveryRequested`): at the
    /// end of local WAL, switch to archive recovery instead of ending.
    pub archive_requested: bool,
    pub phase: StartupPhase,
    /// Index in the node's WAL of the next record to replay.
    pub next: usize,
    /// End of the last record replayed (`lastReplayedEndRecPtr`; at start,
    /// the end of the checkpoint record read).
    pub replayed: Lsn,
    /// Start of the last record replayed (`lastReplayedReadRecPtr`): what
    /// the next record's prev-link must name.
    pub replayed_start: Lsn,
    /// Whether any record was replayed ("redo starts at" is logged then).
    pub redo_started: bool,
    /// The last checkpoint record replayed (start, end, contents), which a
    /// restartpoint can complete.
    pub last_checkpoint: Option<(Lsn, Lsn, CheckPoint)>,
    /// Replay passed minRecoveryPoint (hot standby could open).
    pub consistent: bool,
    /// `pg_ctl promote` was requested: replay what is left, then promote.
    pub promote: bool,
    /// The reader has reported the end of local WAL (pg_wal) once; it then
    /// waits for WAL from the walreceiver.
    pub local_wal_ended: bool,
    /// The WAL at the replay position does not parse (xlogreader): the
    /// startup process retries forever and logs this at LOG level.
    pub read_error: Option<String>,
}

impl Node {
    /// StartupXLOG and InitWalRecovery up to the redo loop.
    pub fn begin_recovery(&mut self, ctx: &mut Ctx<'_>) {
        let proc = Process::Startup;
        let requested = self.standby_signal;
        if requested {
            slog!(ctx.log, self.id, proc, Log, "entering standby mode");
        }
        let Some(ckpt_rec) =
            self.wal.record_at(self.control.checkpoint).filter(|r| r.body.checkpoint().is_some())
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
        let (ckpt_lsn, ckpt_end) = (ckpt_rec.lsn, ckpt_rec.end);
        let ckpt = *ckpt_rec.body.checkpoint().expect("filtered");
        // InArchiveRecovery from the start only when pg_control says how far
        // replay must go; a crashed primary does crash recovery first.
        let ctl = &self.control;
        let archive = requested
            && (ctl.min_recovery_point.is_valid()
                || ctl.backup_end_required
                || ctl.state == DbState::Shutdowned
                || !ctx.env.settings.rules.crash_recovery_before_archive_recovery);
        let target = self.recovery_target_tli(requested, ctx);
        if !self.check_recovery_target(target, ctx) {
            return;
        }
        if !archive {
            slog!(
                ctx.log,
                self.id,
                proc,
                Log,
                "database system was not properly shut down; automatic recovery in progress"
            );
            if target > self.control.tli {
                slog!(
                    ctx.log,
                    self.id,
                    proc,
                    Log,
                    "crash recovery starts in timeline {} and has target timeline {}",
                    self.control.tli,
                    target
                );
            }
        }
        self.control.state = if archive { DbState::InArchiveRecovery } else { DbState::InCrashRecovery };
        if archive && self.control.min_recovery_point < ckpt.redo {
            // "initialize minRecoveryPoint if not set yet"
            self.control.min_recovery_point = ckpt.redo;
            self.control.min_recovery_point_tli = ckpt.tli;
        }
        self.next_xid = self.next_xid.max(ckpt.next_xid);
        // Replay reads from REDO if it lies before the checkpoint record,
        // else from the record after it.
        let next =
            if ckpt.redo < ckpt_lsn { self.wal.index_at(ckpt.redo) } else { self.wal.index_at(ckpt_lsn) + 1 };
        self.startup = Some(Startup {
            standby: archive && requested,
            archive_requested: requested,
            phase: StartupPhase::Redo,
            next,
            replayed: ckpt_end,
            replayed_start: ckpt_lsn,
            redo_started: false,
            last_checkpoint: None,
            consistent: false,
            promote: requested && self.promote_signal,
            local_wal_ended: false,
            read_error: None,
        });
        self.status = Status::Recovery;
        self.check_recovery_consistency(ctx);
    }

    /// `recovery_target_timeline = 'latest'` in archive recovery: the
    /// newest timeline with a history file in pg_wal (findNewestTimeLine).
    /// Without it, the timeline pg_control names (InitWalRecovery).
    fn recovery_target_tli(&mut self, requested: bool, ctx: &mut Ctx<'_>) -> Tli {
        if requested && ctx.env.settings.restore_command {
            // restoreTimeLineHistoryFiles: history files of newer timelines
            // come from the archive too.
            let archive = ctx.env.archive;
            for t in archive.newer_timelines(self.history.newest()) {
                let file = crate::timeline::History::file_name(t);
                slog!(ctx.log, self.id, Process::Startup, Log, "restored log file \"{}\" from archive", file);
                self.history.insert_file(t, archive.history(t).expect("probed").to_vec());
            }
        }
        let ctl = &self.control;
        let mut target = ctl.tli.max(ctl.min_recovery_point_tli);
        if requested {
            target = target.max(self.history.newest());
        }
        self.walrcv.target_tli = target;
        target
    }

    /// InitWalRecovery's checks of the recovery target: the checkpoint and
    /// minRecoveryPoint must lie on the target's history, else FATAL
    /// "requested timeline N is not a child of this server's history" or
    /// "requested timeline N does not contain minimum recovery point X on
    /// timeline T". Returns whether startup may go on.
    fn check_recovery_target(&mut self, target: Tli, ctx: &mut Ctx<'_>) -> bool {
        if !ctx.env.settings.rules.startup_checks_timeline_fork {
            return true;
        }
        let ckpt_tli = self.control.tli;
        if self.history.tli_of_point(target, self.control.checkpoint) != ckpt_tli {
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
            return false;
        }
        let mrp = self.control.min_recovery_point;
        let mrp_tli = self.control.min_recovery_point_tli;
        if mrp.is_valid() && self.history.tli_of_point(target, Lsn(mrp.0 - 1)) != mrp_tli {
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
        true
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
                if st.read_error.is_some() {
                    return false;
                }
                match self.wal.get(st.next) {
                    Some(r) => r.end <= self.replay_limit(st),
                    // End of local WAL: crash recovery finishes or switches
                    // to archive recovery; a standby waits.
                    None => !st.standby || st.promote,
                }
            }
            _ => false,
        }
    }

    /// Replays one record, or acts at the end of local WAL.
    pub fn startup_step(&mut self, ctx: &mut Ctx<'_>) {
        let st = self.startup.as_ref().expect("startup_ready");
        let Some(rec) = self.wal.get(st.next).cloned() else {
            if st.archive_requested && !st.standby {
                return self.switch_into_archive_recovery(ctx);
            }
            if st.promote {
                return self.finish_promotion(ctx);
            }
            return self.end_of_crash_recovery(ctx);
        };
        if !st.redo_started {
            slog!(ctx.log, self.id, Process::Startup, Log, "redo starts at {}", rec.lsn);
        }
        self.redo(&rec, ctx);
        if self.status != Status::Recovery {
            return; // redo failed
        }
        let st = self.startup.as_mut().expect("still recovering");
        // lastReplayedEndRecPtr only moves forward once redo started (it
        // starts at the checkpoint record's end, and redo from an earlier
        // REDO point goes back first, in PostgreSQL too).
        debug_assert!(
            !st.redo_started || rec.end > st.replayed,
            "replayed {} after {}",
            rec.end,
            st.replayed
        );
        st.redo_started = true;
        st.next += 1;
        st.replayed = rec.end;
        st.replayed_start = rec.lsn;
        self.check_recovery_consistency(ctx);
    }

    /// CheckRecoveryConsistency: in archive recovery, consistent once
    /// replay has passed minRecoveryPoint.
    fn check_recovery_consistency(&mut self, ctx: &mut Ctx<'_>) {
        let mrp = self.control.min_recovery_point;
        let Some(st) = self.startup.as_mut() else { return };
        if st.consistent || !st.standby || st.replayed < mrp {
            return;
        }
        st.consistent = true;
        let at = st.replayed;
        slog!(ctx.log, self.id, Process::Startup, Log, "consistent recovery state reached at {}", at);
    }

    /// ReadRecord at the end of local WAL during the crash recovery a
    /// standby does first: "We have now replayed all the valid WAL in
    /// pg_wal, so we are presumably now consistent." Archive recovery
    /// starts, minRecoveryPoint moves to the end of local WAL on the
    /// replay timeline (SwitchIntoArchiveRecovery), and standby mode goes
    /// on from there.
    fn switch_into_archive_recovery(&mut self, ctx: &mut Ctx<'_>) {
        let st = self.startup.as_ref().expect("recovering");
        let end = st.replayed;
        self.log_end_of_wal(end, ctx);
        slog!(
            ctx.log,
            self.id,
            Process::Startup,
            Debug,
            "reached end of WAL in pg_wal, entering archive recovery"
        );
        self.control.state = DbState::InArchiveRecovery;
        if self.control.min_recovery_point < end {
            self.control.min_recovery_point = end;
            self.control.min_recovery_point_tli = self.tli;
        }
        let st = self.startup.as_mut().expect("recovering");
        st.standby = true;
        st.local_wal_ended = true;
        self.check_recovery_consistency(ctx);
    }

    /// A standby's reader reaches the end of its local WAL and turns to
    /// streaming: it says so once (emode_for_corrupt_record logs a repeat at
    /// the same position at DEBUG1 only).
    pub fn note_end_of_local_wal(&mut self, ctx: &mut Ctx<'_>) {
        let Some(st) = self.startup.as_mut().filter(|s| !s.local_wal_ended) else { return };
        st.local_wal_ended = true;
        let at = st.replayed;
        self.log_end_of_wal(at, ctx);
    }

    /// What the reader says where local WAL ends (zeroes follow): PostgreSQL
    /// 15's xlogreader, or 9.4's ReadRecord as the 2013 log shows it.
    fn log_end_of_wal(&self, at: Lsn, ctx: &mut Ctx<'_>) {
        if ctx.env.settings.server_version == crate::settings::ServerVersion::V94Devel {
            slog!(ctx.log, self.id, Process::Startup, Log, "record with zero length at {}", at);
        } else {
            slog!(
                ctx.log,
                self.id,
                Process::Startup,
                Log,
                "invalid record length at {}: wanted 24, got 0",
                at
            );
        }
    }

    /// Logs the end of redo ("redo done at").
    fn log_redo_done(&self, ctx: &mut Ctx<'_>) {
        let st = self.startup.as_ref().expect("recovering");
        if st.redo_started {
            self.log_end_of_wal(st.replayed, ctx);
            slog!(ctx.log, self.id, Process::Startup, Log, "redo done at {}", st.replayed_start);
        } else {
            slog!(ctx.log, self.id, Process::Startup, Log, "redo is not required");
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
            let mut newest = self.history.newest().max(parent);
            if ctx.env.settings.restore_command {
                // findNewestTimeLine probes the archive too
                // (existsTimeLineHistory restores each file it finds).
                for t in ctx.env.archive.newer_timelines(newest) {
                    let file = crate::timeline::History::file_name(t);
                    slog!(
                        ctx.log,
                        self.id,
                        Process::Startup,
                        Log,
                        "restored log file \"{}\" from archive",
                        file
                    );
                    newest = t;
                }
            }
            newest
        } else {
            parent
        };
        let new_tli = newest.next();
        let switchpoint = st.replayed;
        slog!(ctx.log, self.id, Process::Startup, Log, "selected new timeline ID: {}", new_tli);
        self.history.add_child(new_tli, parent, switchpoint, "no recovery target specified");
        if ctx.env.settings.archive_mode != crate::settings::ArchiveMode::Off {
            // writeTimeLineHistory: XLogArchiveNotify; segments from the
            // switch point's on are this timeline's to archive.
            self.archive_status.history_ready.push(new_tli);
            self.archive_status.next_seg = self.wal.geometry().segno(switchpoint);
        }
        slog!(ctx.log, self.id, Process::Startup, Log, "archive recovery complete");
        self.tli = new_tli;
        self.walrcv.target_tli = new_tli;
        let body = RecordBody::EndOfRecovery { tli: new_tli, prev_tli: parent };
        let end = self.xlog_insert(Xid::INVALID, body).end;
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

    /// Applies one record (ApplyWalRecord and the rmgr redo routines).
    fn redo(&mut self, rec: &Record, ctx: &mut Ctx<'_>) {
        self.next_xid = self.next_xid.max(rec.xid.next());
        // The replay timeline changes only at a shutdown checkpoint or an
        // end-of-recovery record naming a new one (ApplyWalRecord,
        // checkTimeLineSwitch), not with each record's page.
        let switch = match &rec.body {
            RecordBody::CheckpointShutdown(c) if c.tli != self.tli => Some((c.tli, c.prev_tli)),
            RecordBody::EndOfRecovery { tli, prev_tli } if *tli != self.tli => Some((*tli, *prev_tli)),
            _ => None,
        };
        if let Some((new_tli, prev_tli)) = switch {
            if let Err(msg) = self.check_timeline_switch(rec.lsn, new_tli, prev_tli, ctx) {
                return self.redo_panic(msg, ctx);
            }
            slog!(
                ctx.log,
                self.id,
                Process::Startup,
                Debug,
                "switched to timeline {} at {}",
                new_tli,
                rec.lsn
            );
            self.tli = new_tli;
        }
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
            RecordBody::HeapPrune { block, offnums, image } => {
                self.redo_heap(rec, *block, image, ctx, |p| p.prune(offnums));
            }
            RecordBody::FpiForHint { block, image } => {
                self.redo_heap(rec, *block, &Some(image.clone()), ctx, |_| Ok(()));
            }
            RecordBody::Commit => self.clog.set(rec.xid, XidStatus::Committed, rec.end),
            RecordBody::Abort => self.clog.set(rec.xid, XidStatus::Aborted, Lsn(0)),
            RecordBody::CheckpointOnline(c) | RecordBody::CheckpointShutdown(c) => {
                // xlog_redo: a checkpoint must be on the replay timeline.
                if c.tli != self.tli && ctx.env.settings.rules.redo_checks_checkpoint_timeline {
                    let kind = if matches!(rec.body, RecordBody::CheckpointOnline(_)) {
                        "online"
                    } else {
                        "shutdown"
                    };
                    let msg = format!(
                        "unexpected timeline ID {} (should be {}) in {kind} checkpoint record",
                        c.tli, self.tli
                    );
                    return self.redo_panic(msg, ctx);
                }
                if let Some(st) = self.startup.as_mut() {
                    st.last_checkpoint = Some((rec.lsn, rec.end, *c));
                }
            }
            RecordBody::EndOfRecovery { .. } | RecordBody::Switch => {}
        }
    }

    /// checkTimeLineSwitch: a timeline switch in replayed WAL must follow
    /// the replay timeline and, in archive recovery, lead along the
    /// recovery target's history, and not before minRecoveryPoint.
    fn check_timeline_switch(
        &self,
        lsn: Lsn,
        new_tli: Tli,
        prev_tli: Tli,
        ctx: &Ctx<'_>,
    ) -> Result<(), String> {
        if !ctx.env.settings.rules.redo_checks_checkpoint_timeline {
            return Ok(());
        }
        if prev_tli != self.tli {
            return Err(format!(
                "unexpected previous timeline ID {prev_tli} (current timeline ID {}) in checkpoint record",
                self.tli
            ));
        }
        // In crash recovery the model follows the switch whatever the target
        // (a server that crashed right after its promotion comes back on its
        // new timeline); the target's history is checked in archive recovery.
        if self.startup.as_ref().is_some_and(|s| s.standby) {
            let target = self.walrcv.target_tli;
            if !self.history.in_history_of(target, new_tli) {
                return Err(format!(
                    "unexpected timeline ID {new_tli} (after {}) in checkpoint record",
                    self.tli
                ));
            }
            let (mrp, mrp_tli) = (self.control.min_recovery_point, self.control.min_recovery_point_tli);
            if mrp.is_valid() && lsn < mrp && new_tli > mrp_tli {
                return Err(format!(
                    "unexpected timeline ID {new_tli} in checkpoint record, before reaching minimum recovery point {mrp} on timeline {mrp_tli}"
                ));
            }
        }
        Ok(())
    }

    /// A PANIC in the startup process during redo: the server goes down and
    /// cannot start until its files change.
    fn redo_panic(&mut self, msg: String, ctx: &mut Ctx<'_>) {
        slog!(ctx.log, self.id, Process::Startup, Panic, "{}", msg);
        self.fail(msg, ctx);
    }

    /// XLogReadBufferForRedo and the change.
    fn redo_heap(
        &mut self,
        rec: &Record,
        block: BlockNumber,
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
    // Removed segments were folded into a base when they went; replay the
    // retained records on top of it. O(retained WAL + table), not
    // O(everything the node ever wrote).
    let base = wal.removed_base();
    let mut implied = RemovedWal { pages: base.pages.clone(), committed: Vec::new() };
    if implied.pages.len() < rel_pages as usize {
        implied.pages.resize(rel_pages as usize, Vec::new());
    }
    for rec in wal.records() {
        implied.apply(rec);
    }
    let is_committed = |x: Xid| base.is_committed(x) || implied.is_committed(x);
    let mut rows: Vec<Row> = implied
        .pages
        .iter()
        .flatten()
        .filter(|t| is_committed(t.xmin) && !(t.xmax.is_valid() && is_committed(t.xmax)))
        .map(|t| (t.key, t.payload))
        .collect();
    rows.sort_unstable();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Effects;
    use crate::ids::NodeId;
    use crate::log::Log;
    use crate::node::Env;
    use crate::settings::Settings;

    /// A crashed primary on timeline 1 whose WAL, after its own records,
    /// holds an online checkpoint record of timeline 2 — what a silent mix
    /// of histories brings to the reader. Returns the node's failure after
    /// crash recovery ran to the end, if any.
    fn replay_foreign_checkpoint(check: bool) -> Option<String> {
        let mut settings = Settings::default();
        settings.rules.redo_checks_checkpoint_timeline = check;
        let mut n = Node::initdb(NodeId(0), &settings);
        let c = CheckPoint { redo: n.wal.insert_lsn(), tli: Tli(2), prev_tli: Tli(1), next_xid: Xid(3) };
        n.wal.insert(Tli(2), Xid(0), RecordBody::CheckpointOnline(c));
        n.wal.flush_upto(Lsn(u64::MAX));
        n.control.state = DbState::InProduction;
        let (mut log, mut fx) = (Log::new(true), Effects::default());
        let mut ctx = Ctx {
            env: Env { settings: &settings, archive: &Default::default() },
            log: &mut log,
            fx: &mut fx,
        };
        n.start(&mut ctx);
        for _ in 0..10 {
            if n.startup_ready() {
                n.startup_step(&mut ctx);
            }
        }
        n.failed.clone()
    }

    #[test]
    fn a_checkpoint_record_of_another_timeline_panics_redo() {
        let why = replay_foreign_checkpoint(true).expect("redo PANICs");
        assert_eq!(why, "unexpected timeline ID 2 (should be 1) in online checkpoint record");
        assert_eq!(replay_foreign_checkpoint(false), None, "with the check off, redo goes on");
    }

    /// validateRecoveryParameters/StartupXLOG's checks of the requested
    /// timeline: the latest checkpoint must lie before the fork, and the
    /// minimum recovery point's last byte (`minRecoveryPoint - 1`) on its
    /// timeline; a minimum recovery point exactly at the fork is fine.
    #[test]
    fn the_requested_timeline_must_contain_checkpoint_and_min_recovery_point() {
        let settings = Settings::default();
        assert!(settings.rules.startup_checks_timeline_fork);
        let node = || {
            let mut n = Node::initdb(NodeId(1), &settings);
            n.history.add_child(Tli(2), Tli(1), Lsn(0x300_0000), "no recovery target specified");
            n
        };
        let check = |n: &mut Node| {
            let (mut log, mut fx) = (Log::new(true), Effects::default());
            let mut ctx = Ctx {
                env: Env { settings: &settings, archive: &Default::default() },
                log: &mut log,
                fx: &mut fx,
            };
            let ok = n.check_recovery_target(Tli(2), &mut ctx);
            (ok, n.failed.clone())
        };
        let mut n = node();
        assert!(n.control.checkpoint < Lsn(0x300_0000));
        assert_eq!(check(&mut n), (true, None));
        n.control.min_recovery_point = Lsn(0x300_0000);
        n.control.min_recovery_point_tli = Tli(1);
        assert_eq!(check(&mut n), (true, None), "ends exactly at the fork");
        n.control.min_recovery_point = Lsn(0x300_0008);
        assert_eq!(
            check(&mut n),
            (
                false,
                Some(
                    "requested timeline 2 does not contain minimum recovery point 0/3000008 on timeline 1"
                        .into()
                )
            )
        );
        let mut n = node();
        n.control.checkpoint = Lsn(0x300_0000);
        assert_eq!(
            check(&mut n),
            (
                false,
                Some(
                    "requested timeline 2 is not a child of this server's history: Latest checkpoint is at 0/3000000 on timeline 1, but in the history of the requested timeline, the server forked off from that timeline at 0/3000000."
                        .into()
                )
            )
        );
    }
}
