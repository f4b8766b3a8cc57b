//! Rejoining an old primary after failover, by strategy: `naive` (restart
//! as a standby and let PostgreSQL's checks decide), `rewind` (pg_rewind.c),
//! `basebackup` (pg_basebackup), and `truncate` (the 2013 proposal's missing
//! step: drop WAL after the fork point, then restart as a standby).

use crate::cluster::Cluster;
use crate::event::RefusalKind;
use crate::ids::Tli;
use crate::ids::{BlockNumber, NodeId};
use crate::log::{Level, Process};
use crate::lsn::Lsn;
use crate::node::{Node, Status};
use crate::script::Failback;

use crate::storage::BlockFile;
use crate::timeline::History;
use std::collections::BTreeSet;

pub use crate::script::{AttemptResult, FailbackAttempt};

impl Cluster {
    /// Runs strategy `strategy` on the stopped node `id`, then starts it as
    /// a standby of `upstream` (unless pg_rewind refused). `restore`:
    /// pg_rewind's `--restore-target-wal`.
    pub(crate) fn failback(&mut self, id: NodeId, strategy: Failback, upstream: NodeId, restore: bool) {
        let (n, up) = (&self.nodes[id.index()], &self.nodes[upstream.index()]);
        self.attempts.push(FailbackAttempt {
            node: n.name.clone(),
            strategy,
            at: self.now,
            upstream: up.name.clone(),
            result: AttemptResult::Pending,
            messages: Vec::new(),
            end_of_wal: n.wal.end(),
            fork_point: up.history.switch_point(up.tli, n.control.tli),
            upstream_position: up.startup.as_ref().map_or(up.wal.flush_lsn(), |s| s.replayed),
        });
        let premise = self
            .attempts
            .last()
            .and_then(|a| a.fork_point)
            .and_then(|fork| crate::invariants::check_failback_premise(&self.nodes[id.index()], fork));
        if let Some(v) = premise {
            self.observe(v);
        }
        let proceed = match strategy {
            Failback::Naive => true,
            Failback::Rewind
                if self.settings().server_version == crate::settings::ServerVersion::V94Devel =>
            {
                self.attempt_fails(id, "pg_rewind: command not found (not in PostgreSQL 9.4's core)".into())
            }
            Failback::Rewind => self.pg_rewind(id, upstream, restore),
            Failback::Basebackup => {
                self.base_backup(id, upstream);
                true
            }
            Failback::Truncate => self.truncate_after_fork(id, upstream),
        };
        if !proceed {
            return;
        }
        let n = &mut self.nodes[id.index()];
        n.standby_signal = true;
        n.upstream = Some(upstream);
        n.synced_to = None;
        n.operator_stopped = false;
        self.with_node(id.index(), |n, ctx| n.start(ctx));
    }

    /// Logs a pg_rewind-style line and keeps it with the attempt.
    fn tool_says(&mut self, id: NodeId, level: Level, msg: String) {
        if self.log.enabled() {
            self.log.push(id, Process::Operator, level, format_args!("{msg}"));
        }
        if let Some(a) = self.attempts.last_mut() {
            a.messages.push(msg);
        }
    }

    /// pg_rewind (pg_rewind.c, PostgreSQL 15). Returns whether the node
    /// should be started as a standby afterwards.
    fn pg_rewind(&mut self, id: NodeId, source: NodeId, restore: bool) -> bool {
        let (t, s) = (id.index(), source.index());
        // --source-server: a libpq connection to the running source.
        if !self.nodes[s].accepts_connections() || self.partitions.is_cut(id, source) {
            let msg = format!(
                "pg_rewind: error: could not connect to server: connection to {} failed",
                self.nodes[s].name
            );
            return self.attempt_fails(id, msg);
        }
        if !self.nodes[t].control.state.is_clean_shutdown() {
            self.tool_says(
                id,
                Level::Log,
                "pg_rewind: executing \"postgres\" for target server to complete crash recovery".into(),
            );
            if !self.single_user_recovery(id) {
                return self.attempt_fails(
                    id,
                    "pg_rewind: error: postgres single-user mode in target cluster failed".into(),
                );
            }
        }
        // sanityChecks
        if self.settings().rules.rewind_requires_wal_log_hints && !self.settings().wal_log_hints {
            let msg = "pg_rewind: error: target server needs to use either data checksums or \"wal_log_hints = on\"";
            self.tool_says(id, Level::Fatal, msg.into());
            self.fx.refusals.push((id, RefusalKind::RewindNeedsHints, msg.into()));
            self.set_attempt_result(id, AttemptResult::Refused);
            return false;
        }
        let (target, src) = (&self.nodes[t], &self.nodes[s]);
        // Timelines come from the control files: a freshly promoted source
        // still shows its old timeline until its first checkpoint.
        if target.control.tli == src.control.tli {
            self.tool_says(
                id,
                Level::Log,
                "pg_rewind: source and target cluster are on the same timeline".into(),
            );
            self.tool_says(id, Level::Log, "pg_rewind: no rewind required".into());
            return true;
        }
        let Some((diverge, common_tli)) = common_ancestor(target, src) else {
            let msg = "pg_rewind: error: could not find common ancestor of the source and target cluster's timelines";
            return self.attempt_fails(id, msg.into());
        };
        self.tool_says(
            id,
            Level::Log,
            format!("pg_rewind: servers diverged at WAL location {diverge} on timeline {common_tli}"),
        );
        let target = &self.nodes[t];
        let chkpt_end =
            target.wal.record_at(target.control.checkpoint).map_or(target.control.checkpoint, |r| r.end);
        let target_end = target.control.min_recovery_point.max(chkpt_end);
        if target_end <= diverge {
            self.tool_says(id, Level::Log, "pg_rewind: no rewind required".into());
            return true;
        }
        // findLastCheckpoint: the last checkpoint record before the fork,
        // read backwards from it through xl_prev. A record in a removed
        // segment cannot be read (SimpleXLogPageRead) unless
        // --restore-target-wal fetches its segment from the archive with
        // the target's restore_command.
        let mut last = target
            .wal
            .records_before(diverge)
            .iter()
            .rev()
            .find_map(|r| r.body.checkpoint().map(|c| (r.lsn, r.tli, c.redo)));
        let mut restored: Vec<crate::wal::Record> = Vec::new();
        if last.is_none() && target.wal.kept_from().is_valid() && restore {
            if !self.settings().restore_command {
                let msg = "pg_rewind: error: restore_command is not set in the target cluster";
                return self.attempt_fails(id, msg.into());
            }
            match self.rewind_restore(id, diverge) {
                Ok((recs, found)) => (restored, last) = (recs, found),
                Err(file) => {
                    self.tool_says(
                        id,
                        Level::Error,
                        format!("pg_rewind: error: could not restore file \"{file}\" from archive"),
                    );
                    let target = &self.nodes[t];
                    let searchptr = target.wal.records().first().map_or(diverge, |r| r.prev.min(diverge));
                    let msg = format!("pg_rewind: error: could not find previous WAL record at {searchptr}");
                    self.fx.refusals.push((id, RefusalKind::RewindWalMissing, msg.clone()));
                    return self.attempt_fails(id, msg);
                }
            }
        }
        let target = &self.nodes[t];
        if last.is_none() && target.wal.kept_from().is_valid() {
            let first = target.wal.records().first();
            let searchptr = match first {
                Some(r) if r.lsn < diverge => r.prev,
                _ => diverge,
            };
            let g = target.wal.geometry();
            let tli = target.history.tli_of_point(target.tli, searchptr);
            let file = g.wal_file_name(tli, searchptr);
            let name = target.name.clone();
            self.tool_says(
                id,
                Level::Error,
                format!("pg_rewind: error: could not open file \"{name}/pg_wal/{file}\": No such file or directory"),
            );
            // pg_fatal: the rejoin is refused until the WAL is back (an
            // archive and --restore-target-wal, or a new base backup).
            let msg = format!("pg_rewind: error: could not find previous WAL record at {searchptr}");
            self.fx.refusals.push((id, RefusalKind::RewindWalMissing, msg.clone()));
            return self.attempt_fails(id, msg);
        }
        let Some((mut chkpt, mut chkpt_tli, mut redo)) = last else {
            return self.attempt_fails(id, "pg_rewind: error: could not find previous WAL record".into());
        };
        self.tool_says(
            id,
            Level::Log,
            format!("pg_rewind: rewinding from last common checkpoint at {chkpt} on timeline {chkpt_tli}"),
        );
        // extractPageMap: every block the target's WAL touched since.
        let target = &self.nodes[t];
        let blocks: BTreeSet<BlockNumber> = restored
            .iter()
            .filter(|r| r.lsn >= chkpt)
            .chain(target.wal.records_from(chkpt))
            .filter_map(|r| r.body.block())
            .collect();
        let src = &self.nodes[s];
        if src.control.redo < redo {
            (redo, chkpt_tli, chkpt) = (src.control.redo, src.control.tli, src.control.checkpoint);
        }
        let copied: Vec<_> = blocks.iter().map(|&b| (b, src.data.read(b).clone())).collect();
        // The source's current position: its insert LSN, or on a standby
        // its replay LSN (libpq_get_current_wal_insert_lsn).
        let src_end = src.startup.as_ref().map_or(src.wal.insert_lsn(), |st| st.replayed);
        let (src_wal, src_clog, src_history, src_control, src_tli) =
            (src.wal.clone(), src.clog.file.clone(), src.history.clone(), src.control, src.tli);
        let n_blocks = copied.len();
        let target = &mut self.nodes[t];
        for (b, page) in copied {
            target.data.replace_block(b, page);
        }
        // Non-relation files come whole from the source; pg_control last.
        target.wal = src_wal;
        let written = target.wal.write_lsn();
        target.wal.truncate(written);
        target.wal.mark_written_durable();
        install_clog(target, src_clog);
        // pg_replslot is in filemap.c's excludeDirContents: not copied from
        // the source, and the target's own slots are removed
        // (decide_file_action: excluded paths that exist in the target).
        target.slots.clear();
        target.history = src_history;
        target.control = src_control;
        target.control.checkpoint = chkpt;
        target.control.redo = redo;
        target.control.tli = chkpt_tli;
        target.control.min_recovery_point = src_end;
        target.control.min_recovery_point_tli = src_tli;
        target.control.state = crate::control::DbState::InArchiveRecovery;
        target.failed = None;
        self.ledger.forget_node(id);
        self.tool_says(id, Level::Log, format!("pg_rewind: copied {n_blocks} changed blocks, pg_xact, pg_wal and pg_control from {}; backup label at {redo}", self.nodes[s].name));
        self.tool_says(id, Level::Log, "pg_rewind: Done!".into());
        self.fx.checks.push(crate::event::Check::Timelines(id));
        true
    }

    /// `--restore-target-wal`: the target's segments before the oldest it
    /// still has, newest first, from the archive (the file of its
    /// timeline history that covers each, as XLogFileReadAnyTLI picks),
    /// until one holds a checkpoint record before `diverge`. Returns the
    /// restored records in order and that checkpoint (start, timeline,
    /// REDO), or the name of the first file the archive lacks.
    #[allow(clippy::type_complexity)]
    fn rewind_restore(
        &self,
        id: NodeId,
        diverge: Lsn,
    ) -> Result<(Vec<crate::wal::Record>, Option<(Lsn, Tli, Lsn)>), String> {
        let target = &self.nodes[id.index()];
        let g = *target.wal.geometry();
        let mut restored: Vec<crate::wal::Record> = Vec::new();
        let mut seg = g.segno(target.wal.kept_from());
        while seg > 0 {
            seg -= 1;
            let Some((_, recs)) = self.archive.read_any_tli(&g, &target.history, target.tli, seg) else {
                let tli = target.history.tli_of_point(target.tli, Lsn(seg * g.segment_size()));
                return Err(g.wal_file_name(tli, Lsn(seg * g.segment_size())));
            };
            let found = recs
                .iter()
                .rev()
                .filter(|r| r.lsn < diverge)
                .find_map(|r| r.body.checkpoint().map(|c| (r.lsn, r.tli, c.redo)));
            restored.splice(0..0, recs.iter().cloned());
            if found.is_some() {
                return Ok((restored, found));
            }
        }
        Ok((restored, None))
    }

    /// PostgreSQL 13+ pg_rewind runs crash recovery in single-user mode on
    /// a target that was not shut down cleanly, and shuts it down. Runs the
    /// startup process and checkpointer to completion within this step.
    fn single_user_recovery(&mut self, id: NodeId) -> bool {
        let i = id.index();
        let standby = std::mem::replace(&mut self.nodes[i].standby_signal, false);
        self.nodes[i].single_user = true;
        let queued = self.fx.checks.len();
        self.with_node(i, |n, ctx| {
            n.start(ctx);
            let env = ctx.env;
            let mut ended = false;
            for _ in 0..10_000_000 {
                match n.status {
                    Status::Recovery if n.startup_ready() => n.startup_step(ctx),
                    Status::Recovery | Status::ShuttingDown if n.checkpointer_ready(env) => {
                        n.checkpointer_step(ctx)
                    }
                    Status::Production => n.begin_fast_shutdown(ctx),
                    _ => {
                        ended = true;
                        break;
                    }
                }
            }
            debug_assert!(ended, "single-user crash recovery of {} did not finish", n.name);
        });
        // Judge the recovery now, before pg_rewind replaces the files.
        self.fx.checks.truncate(queued);
        self.nodes[i].wal.refresh_implied();
        if let Some(v) = crate::invariants::check_after_crash_recovery(self, id) {
            self.fx.violations.push(v);
        }
        let n = &mut self.nodes[i];
        n.single_user = false;
        n.standby_signal = standby;
        n.status == Status::Down && n.control.state.is_clean_shutdown()
    }

    /// pg_basebackup of `source` onto `id`: its files as they are in the OS,
    /// WAL up to what the source has flushed, replay from the source's last
    /// checkpoint to the backup's end.
    fn base_backup(&mut self, id: NodeId, source: NodeId) {
        let src = self.nodes[source.index()].clone();
        let n = &mut self.nodes[id.index()];
        for b in BlockNumber::all(src.data.len()) {
            n.data.replace_block(b, src.data.read(b).clone());
        }
        n.wal = src.wal.clone();
        let flush = n.wal.flush_lsn();
        n.wal.truncate(flush);
        install_clog(n, src.clog.file.clone());
        n.history = src.history.clone();
        n.control = src.control;
        n.control.min_recovery_point = flush;
        n.control.min_recovery_point_tli = src.tli;
        n.control.state = crate::control::DbState::InArchiveRecovery;
        n.failed = None;
        self.ledger.forget_node(id);
        self.tool_says(
            id,
            Level::Log,
            format!(
                "pg_basebackup: copied {} from {} (WAL up to {flush})",
                self.nodes[id.index()].name,
                src.name
            ),
        );
        self.fx.checks.push(crate::event::Check::Timelines(id));
    }

    /// The proposal's path: remove the old primary's WAL after the point
    /// where its timeline ends in the new primary's history, keep its data
    /// files, and restart it as a standby. Returns false if there is no
    /// such point (the node's timeline is not an ancestor).
    fn truncate_after_fork(&mut self, id: NodeId, upstream: NodeId) -> bool {
        let up = &self.nodes[upstream.index()];
        let n = &self.nodes[id.index()];
        let Some(fork) = up.history.switch_point(up.tli, n.control.tli) else {
            let msg = format!(
                "truncate: timeline {} of {} is not in the history of {}",
                n.control.tli, n.name, up.name
            );
            return self.attempt_fails(id, msg);
        };
        // The WAL to keep must still be there: a checkpoint after the fork
        // may have removed the segment holding it.
        if n.wal.segment_removed(fork) {
            let msg = format!(
                "truncate: {}'s WAL at the fork point {fork} is gone (the oldest segment kept starts at {})",
                n.name,
                n.wal.kept_from()
            );
            return self.attempt_fails(id, msg);
        }
        let old_end = n.wal.end();
        let n = &mut self.nodes[id.index()];
        n.wal.truncate(fork);
        self.ledger.forget_after(id, fork);
        self.tool_says(
            id,
            Level::Log,
            format!(
                "truncate: removed WAL from {fork} to {old_end}; data files, pg_xact and pg_control are kept"
            ),
        );
        true
    }

    /// The tool gave up: says why, marks the attempt failed; the node is
    /// not started (returns false, for the strategy's caller).
    fn attempt_fails(&mut self, id: NodeId, msg: String) -> bool {
        self.tool_says(id, Level::Fatal, msg);
        self.set_attempt_result(id, AttemptResult::Failed);
        false
    }

    /// Sets the result of `id`'s latest attempt.
    pub(crate) fn set_attempt_result(&mut self, id: NodeId, r: AttemptResult) {
        let name = &self.nodes[id.index()].name;
        if let Some(a) = self.attempts.iter_mut().rev().find(|a| &a.node == name) {
            a.result = r;
        }
    }

    /// Books a refusal against `id`'s latest attempt, with where its
    /// upstream stood then.
    pub(crate) fn attempt_refused(&mut self, id: NodeId, msg: &str) {
        let name = self.nodes[id.index()].name.clone();
        let up_pos = self.nodes[id.index()].upstream.map(|u| {
            let up = &self.nodes[u.index()];
            up.startup.as_ref().map_or(up.wal.flush_lsn(), |s| s.replayed)
        });
        if let Some(a) = self.attempts.iter_mut().rev().find(|a| a.node == name) {
            a.result = AttemptResult::Refused;
            a.upstream_position = up_pos.unwrap_or(a.upstream_position);
            if !a.messages.iter().any(|m| m == msg) {
                a.messages.push(msg.to_string());
            }
        }
    }
}

/// Replaces the CLOG file with a copy and reloads shared memory from it.
fn install_clog(n: &mut Node, mut file: BlockFile<crate::clog::ClogPage>) {
    file.fsync();
    n.clog.file = file;
    n.clog.reload();
}

/// findCommonAncestorTimeline: where the two servers' histories diverge,
/// and on which timeline.
fn common_ancestor(target: &Node, source: &Node) -> Option<(Lsn, Tli)> {
    let list = |h: &History, tli: Tli| -> Vec<(Tli, Lsn, Lsn)> {
        let mut begin = Lsn(0);
        let mut out = Vec::new();
        for e in h.entries(tli) {
            out.push((e.tli, begin, e.switchpoint));
            begin = e.switchpoint;
        }
        out.push((tli, begin, Lsn(u64::MAX)));
        out
    };
    let th = list(&target.history, target.control.tli);
    let sh = list(&source.history, source.control.tli);
    let same = th.iter().zip(&sh).take_while(|(a, b)| a.0 == b.0 && a.1 == b.1).count();
    let i = same.checked_sub(1)?;
    Some((th[i].2.min(sh[i].2), th[i].0))
}
