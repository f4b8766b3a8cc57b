//! The stories. Node `a` is always the original primary, `b` its streaming standby.
//!
//! Each story is arranged so its outcome does not depend on timing: e.g. after a
//! promotion the old primary switches to a new WAL segment and writes a little more,
//! so its end of WAL (and hence the segment start a walreceiver asks for) lies in a
//! later segment than the fork point. Waits poll with deadlines; nothing sleeps blindly.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use super::check_interrupted;
use super::cluster::{Node, Sandbox, StartWait, StopMode};
use super::install::PgInstall;
use super::lsn::{Lsn, Segments};
use super::mechanism::{Mechanism, MechanismTrace, mechanism_relations};
use super::messages::{self, MessageKind};
use super::outcome::{Facts, OutcomeClass, RealOutcome, Story};
use super::process::CmdOutput;

/// The seed experiment's table.
const SCHEMA: &str = "create table test(id int primary key, info text, crt_time timestamp)";

/// The seed experiment's transaction; `on conflict` keeps random-id collisions from
/// aborting pgbench clients.
const WORKLOAD: &str = "insert into test values ((random()*1000000)::int, md5(random()::text), clock_timestamp()) on conflict do nothing;\n";

/// How long a rejoin may take before we call it stuck.
const REJOIN_LIMIT: Duration = Duration::from_secs(30);

/// Once a refusal is seen, how long we keep watching for the other expected messages.
const AFTER_REFUSAL: Duration = Duration::from_secs(5);

/// How long the replay position must stay unchanged for a node to count as stuck.
const NO_PROGRESS: Duration = Duration::from_secs(3);

/// How long a start that should end in a startup FATAL may take to log it.
const FATAL_LIMIT: Duration = Duration::from_secs(15);

pub(super) fn run(sb: &Sandbox, install: &PgInstall, story: Story) -> Result<RealOutcome> {
    let mut report = Report {
        story,
        version: install.version.clone(),
        class: OutcomeClass::Stuck,
        obs: Observer::default(),
        facts: Facts::default(),
        rejoin: None,
        mechanism: MechanismTrace::default(),
    };
    match story {
        Story::DivergedNaiveAfterImmediate => diverged_naive(sb, &mut report, StopMode::Immediate)?,
        Story::DivergedNaiveAfterFast => diverged_naive(sb, &mut report, StopMode::Fast)?,
        Story::DivergedRewind => diverged_rewind(sb, &mut report, true)?,
        Story::CleanSwitchover => clean_switchover(sb, &mut report)?,
        Story::LaggingStandbyAhead => lagging_standby_ahead(sb, &mut report)?,
        Story::SyncStandbyDown => sync_standby_down(sb, &mut report)?,
        Story::RewindWithoutHints => diverged_rewind(sb, &mut report, false)?,
        Story::SyncFirstRestart => sync_first_restart(sb, &mut report)?,
        Story::SyncAnyBothDown => sync_any_both_down(sb, &mut report)?,
        Story::RemoteApplyReplayPaused => remote_apply_replay_paused(sb, &mut report)?,
        Story::HistoryFileBeforeStart => history_file_before_start(sb, &mut report)?,
        Story::SecondStartAfterHistoryFetch => second_start_after_history_fetch(sb, &mut report)?,
        Story::HistoryFileCleanShutdown => history_file_clean_shutdown(sb, &mut report)?,
        Story::StandbyDownArchive => standby_down_archive(sb, &mut report)?,
        Story::SegmentRemovedStandbyDown => standby_down(sb, &mut report, SlotUse::None)?,
        Story::SlotKeepsStandbyDown => standby_down(sb, &mut report, SlotUse::Slot)?,
        Story::SlotInvalidatedStandbyDown => standby_down(sb, &mut report, SlotUse::SlotLimited)?,
        Story::SegmentRemovedSwitchover => segment_removed_switchover(sb, &mut report)?,
        Story::RewindTargetWalRemoved => rewind_target_wal_removed(sb, &mut report)?,
    }
    report.read_mechanism(sb)?;
    Ok(report.finish())
}

/// Stories 1 and 2: B promoted, A diverges, A stopped (`stop`), A follows B naively.
fn diverged_naive(sb: &Sandbox, r: &mut Report, stop: StopMode) -> Result<()> {
    let p = setup_pair(sb, true)?;
    let d = diverge(sb, &p, stop, r)?;
    rejoin(
        sb,
        r,
        &p.a,
        &p.b,
        &[MessageKind::NotInHistory, MessageKind::ForkedBeforeRecoveryPoint],
        d.positions(),
    )
}

/// Stories 3 and 7: same divergence, A stopped cleanly, pg_rewind from B, A follows B.
fn diverged_rewind(sb: &Sandbox, r: &mut Report, wal_log_hints: bool) -> Result<()> {
    let p = setup_pair(sb, wal_log_hints)?;
    // pg_rewind insists on a cleanly shut down target.
    let d = diverge(sb, &p, StopMode::Fast, r)?;
    // pg_rewind 15 takes the source's timeline from its pg_control, which a promotion
    // updates only at its first checkpoint; the one the promotion requests is spread
    // out, so without this pg_rewind may (depending on timing) see timeline 1 on both
    // sides and say "no rewind required" (observed). PostgreSQL's docs ask for it too.
    sb.sql(&p.b, "checkpoint")?;
    let source_tli = sb
        .controldata(&p.b)?
        .into_iter()
        .find(|(key, _)| key == "Latest checkpoint's TimeLineID")
        .map(|(_, value)| value);
    r.facts
        .relate("source's pg_control shows timeline 2 before pg_rewind", source_tli.as_deref() == Some("2"));
    let Some(out) = rewind(sb, r, &p.a, &p.b, |_, _| ())? else { return Ok(()) };
    if let Some(at) = out.lines().find_map(messages::rewind_diverged_at) {
        r.facts.relate("pg_rewind's divergence point equals the fork point", at == d.fork_point);
    }
    // pg_rewind copied B's configuration files: give A back its own port and make it
    // follow B (B's copied primary_conninfo pointed at A).
    sb.set_conf(&p.a, &format!("port = {}\n", p.a.port))?;
    // pg_rewind replaced A's WAL after the fork: its old end says nothing now.
    rejoin(sb, r, &p.a, &p.b, &[], Positions { local_end: None, ..d.positions() })
}

/// pg_rewind `target` from `source`: each line of its output goes to the
/// observer, then to `each_line`. `None` when it refused with a message the
/// observer knows (the story's class is then Refused); an error when it failed
/// otherwise.
fn rewind(
    sb: &Sandbox,
    r: &mut Report,
    target: &Node,
    source: &Node,
    mut each_line: impl FnMut(&mut Report, &str),
) -> Result<Option<CmdOutput>> {
    let out = sb.rewind(target, source)?;
    for line in out.lines() {
        r.obs.feed("pg_rewind output", line);
        each_line(r, line);
    }
    r.facts.relate("pg_rewind succeeded", out.success());
    if !out.success() {
        if r.obs.any_refusal() {
            r.class = OutcomeClass::Refused;
            return Ok(None);
        }
        bail!(
            "pg_rewind failed with a message this driver does not know:\n{}{}",
            out.stderr.trim(),
            out.stdout.trim()
        );
    }
    Ok(Some(out))
}

/// Story 4: A shut down cleanly while B streams, B promoted, A follows B naively.
fn clean_switchover(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let p = setup_pair(sb, true)?;
    let positions = switch_over(sb, r, &p)?;
    rejoin(sb, r, &p.a, &p.b, &[], positions)
}

/// A clean switchover, the start of story 4 and `segment-removed-switchover`:
/// A stopped fast while B streams (A's walsender sends everything, shutdown
/// checkpoint included, before exiting), B replays it all and is promoted.
/// Returns the positions for A's rejoin: A's end of WAL, which is also its
/// local end, and the fork point.
fn switch_over(sb: &Sandbox, r: &mut Report, p: &Pair) -> Result<Positions> {
    let hint = current_lsn(sb, &p.a, "pg_current_wal_insert_lsn()")?;
    sb.stop(&p.a, StopMode::Fast)?;
    let a_end = sb.wal_end(&p.a, hint)?;
    let segment = sb.segment_size(&p.a)?;
    r.facts.old_primary_end_of_wal = Some(a_end.to_string());
    let received = replay_reaches(sb, &p.b, a_end, Duration::from_secs(15))?;
    r.facts.relate(
        "standby replayed the old primary's whole WAL (shutdown checkpoint included) before promotion",
        received,
    );
    sb.promote(&p.b)?;
    let fork_point = read_fork_point(sb, &p.b, r)?;
    r.facts.relate("fork point equals the old primary's end of WAL", fork_point == a_end);
    Ok(Positions {
        a_end: Some(a_end),
        local_end: Some(a_end),
        fork_point: Some(fork_point),
        segment,
        upstream_flush: None,
    })
}

/// Story 5: B stops, A writes on (into a later segment) and crashes; B comes back as
/// an unpromoted standby that connects nowhere, so it stays on timeline 1 with what
/// it had; A then tries to follow B (cascading replication from a standby).
fn lagging_standby_ahead(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let p = setup_pair(sb, true)?;
    sb.stop(&p.b, StopMode::Fast)?;
    write_past_segment_end(sb, &p)?;
    let hint = current_lsn(sb, &p.a, "pg_current_wal_insert_lsn()")?;
    sb.stop(&p.a, StopMode::Immediate)?;
    let a_end = sb.wal_end(&p.a, hint)?;
    let segment = sb.segment_size(&p.a)?;
    r.facts.old_primary_end_of_wal = Some(a_end.to_string());
    sb.make_standby(&p.b, None)?;
    sb.start(&p.b, StartWait::Ready)?;
    let b_replay = current_lsn(sb, &p.b, "pg_last_wal_replay_lsn()")?;
    r.facts.relate(
        "old primary's end of WAL is in a later WAL segment than the lagging standby's replay position",
        a_end.segment_no(segment) > b_replay.segment_no(segment),
    );
    let positions = Positions {
        a_end: Some(a_end),
        local_end: Some(a_end),
        fork_point: None,
        segment,
        upstream_flush: Some(b_replay),
    };
    rejoin(sb, r, &p.a, &p.b, &[MessageKind::AheadOfFlush], positions)
}

/// Story 6: synchronous replication to B, B stopped, a commit on A waits for it.
fn sync_standby_down(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let p = setup_pair(sb, true)?;
    // Only now that B streams: before that even the DDL in setup would wait.
    sb.sql(&p.a, "alter system set synchronous_standby_names = '*'")?;
    sb.sql(&p.a, "select pg_reload_conf()")?;
    sb.poll("b to become the synchronous standby", Duration::from_secs(30), || {
        let state =
            sb.sql(&p.a, "select sync_state from pg_stat_replication where application_name = 'b'")?;
        Ok(state.lines().any(|s| s == "sync").then_some(()))
    })?;
    sb.stop(&p.b, StopMode::Fast)?;
    let mut client =
        sb.sql_background(&p.a, "insert into test values (-1, 'sync probe', clock_timestamp())")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let waiting = loop {
        check_interrupted()?;
        if let Some(out) = client.try_finish()? {
            // The commit came back although no synchronous standby was there.
            r.facts.relate("insert returned while the synchronous standby was down", out.success());
            r.class = OutcomeClass::Converged;
            return Ok(());
        }
        let row = sb.sql(
            &p.a,
            "select pid, backend_type, state, wait_event_type, wait_event, query \
             from pg_stat_activity where wait_event = 'SyncRep'",
        )?;
        if let Some(row) = row.lines().next() {
            break Some(row.to_string());
        }
        if Instant::now() >= deadline {
            break None;
        }
        sleep(Duration::from_millis(100));
    };
    r.class = OutcomeClass::Stuck;
    let Some(row) = waiting else {
        r.facts.relate("insert neither returned nor showed wait_event SyncRep within 10 s", true);
        return Ok(());
    };
    let fields: Vec<&str> = row.splitn(6, '|').collect();
    let [pid, backend_type, state, wait_type, wait_event, query] = fields[..] else {
        bail!("unexpected pg_stat_activity row {row:?}");
    };
    r.obs.feed(
        "pg_stat_activity on a",
        &format!(
            "pid={pid} backend_type={backend_type} state={state} wait_event_type={wait_type} wait_event={wait_event} query={query}"
        ),
    );
    sleep(Duration::from_millis(500));
    r.facts.relate(
        "insert still waiting 0.5 s after its backend showed wait_event SyncRep",
        client.try_finish()?.is_none(),
    );
    // Cancelling the wait lets the client go; the transaction is already committed
    // locally, which the model may want to know.
    sb.sql(&p.a, &format!("select pg_cancel_backend({pid})"))?;
    let out = client.wait(Duration::from_secs(10))?;
    for line in out.lines() {
        r.obs.feed("psql client on a", line);
    }
    r.facts.relate(
        "client was told the wait was cancelled after a local commit",
        out.stderr.contains("canceling wait for synchronous replication"),
    );
    let visible = sb.sql(&p.a, "select count(*) from test where id = -1")? == "1";
    r.facts.relate(
        "cancelled insert's row is visible on the primary (committed locally before waiting)",
        visible,
    );
    Ok(())
}

/// A primary `a` with standbys `b` and `c`, connected in that order (so `b`'s
/// walsender has slot 0 and `c`'s slot 1); both have replayed the load.
struct Trio {
    a: Node,
    b: Node,
    c: Node,
}

fn setup_trio(sb: &Sandbox) -> Result<Trio> {
    let p = setup_pair(sb, true)?;
    let c = sb.node("c")?;
    sb.basebackup(&p.a, &c)?;
    sb.start(&c, StartWait::Ready)?;
    sb.poll("c to stream from a", Duration::from_secs(30), || {
        Ok(replication_state(sb, &p.a, &c)?.then_some(()))
    })?;
    let target = current_lsn(sb, &p.a, "pg_current_wal_lsn()")?;
    if !replay_reaches(sb, &c, target, Duration::from_secs(30))? {
        bail!("c did not replay a's initial load (up to {target}) within 30 s");
    }
    Ok(Trio { a: p.a, b: p.b, c })
}

/// `sync_state` of each standby in `a`'s `pg_stat_replication`, by application_name.
fn sync_states(sb: &Sandbox, a: &Node) -> Result<Vec<(String, String)>> {
    let out = sb.sql(a, "select application_name, sync_state from pg_stat_replication order by 1")?;
    Ok(out.lines().filter_map(|l| l.split_once('|')).map(|(n, s)| (n.to_string(), s.to_string())).collect())
}

/// Waits (up to `limit`) until `a`'s `pg_stat_replication` shows exactly `want`
/// (application_name, sync_state), sorted by name; whether it did.
fn sync_states_become(sb: &Sandbox, a: &Node, want: &[(&str, &str)], limit: Duration) -> Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        check_interrupted()?;
        let now = sync_states(sb, a)?;
        if now.len() == want.len() && now.iter().zip(want).all(|((n, s), (wn, ws))| n == wn && s == ws) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        sleep(Duration::from_millis(100));
    }
}

/// Waits (up to 15 s, more than `wal_receiver_status_interval`) until `node`'s log
/// from `offset` on has a line containing each of `needles`; whether it did. A
/// walsender announces a takeover only when its standby's next reply arrives.
fn log_shows(sb: &Sandbox, node: &Node, offset: u64, needles: &[&str]) -> Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        check_interrupted()?;
        let log = sb.read_log(node, offset)?;
        if needles.iter().all(|n| log.contains(n)) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        sleep(Duration::from_millis(100));
    }
}

/// Sets synchronous replication settings on `a` and reloads.
fn set_sync(sb: &Sandbox, a: &Node, settings: &[(&str, &str)]) -> Result<()> {
    for (name, value) in settings {
        sb.sql(a, &format!("alter system set {name} = '{value}'"))?;
    }
    sb.sql(a, "select pg_reload_conf()")?;
    Ok(())
}

/// A one-row insert running in the background on the primary.
struct Probe {
    client: super::process::Background,
    /// Pid of its backend once seen waiting with `wait_event = SyncRep`.
    pid: Option<String>,
    done: Option<super::process::CmdOutput>,
}

impl Probe {
    /// Still waiting in SyncRep (it was seen there and has not returned).
    fn still_waiting(&mut self) -> Result<bool> {
        if self.done.is_none() {
            self.done = self.client.try_finish()?;
        }
        Ok(self.pid.is_some() && self.done.is_none())
    }

    fn finish(&mut self, timeout: Duration) -> Result<super::process::CmdOutput> {
        match self.done.take() {
            Some(out) => Ok(out),
            None => self.client.wait(timeout),
        }
    }
}

/// Starts a one-row insert on `a` in the background and waits (up to 10 s) for its
/// backend to show `wait_event = SyncRep`, feeding that row to the observer.
fn insert_and_watch_syncrep(sb: &Sandbox, a: &Node, r: &mut Report, id: i32) -> Result<Probe> {
    let client =
        sb.sql_background(a, &format!("insert into test values ({id}, 'sync probe', clock_timestamp())"))?;
    let mut probe = Probe { client, pid: None, done: None };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        check_interrupted()?;
        probe.done = probe.client.try_finish()?;
        if probe.done.is_some() {
            return Ok(probe);
        }
        let row = sb.sql(
            a,
            "select pid, backend_type, state, wait_event_type, wait_event, query \
             from pg_stat_activity where wait_event = 'SyncRep'",
        )?;
        if let Some(row) = row.lines().next() {
            let fields: Vec<&str> = row.splitn(6, '|').collect();
            let [pid, backend_type, state, wait_type, wait_event, query] = fields[..] else {
                bail!("unexpected pg_stat_activity row {row:?}");
            };
            r.obs.feed(
                &format!("pg_stat_activity on {}", a.name),
                &format!(
                    "pid={pid} backend_type={backend_type} state={state} wait_event_type={wait_type} wait_event={wait_event} query={query}"
                ),
            );
            probe.pid = Some(pid.to_string());
            return Ok(probe);
        }
        if Instant::now() >= deadline {
            return Ok(probe);
        }
        sleep(Duration::from_millis(100));
    }
}

/// The synchronous-replication lines of `node`'s log from `offset` on.
fn scan_sync_log(sb: &Sandbox, node: &Node, offset: u64, r: &mut Report) -> Result<()> {
    let obs = scan_logs(sb, &[(node, offset)])?;
    r.obs.absorb(&obs);
    Ok(())
}

/// Story 8: FIRST 1 (*), `b` (slot 0) synchronous; `b` stops, `c` takes over and
/// commits go on; `b` restarts into the lowest free slot and is synchronous again.
fn sync_first_restart(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let t = setup_trio(sb)?;
    let offset = sb.log_offset(&t.a);
    set_sync(sb, &t.a, &[("synchronous_standby_names", "FIRST 1 (*)")])?;
    let limit = Duration::from_secs(20);
    if !sync_states_become(sb, &t.a, &[("b", "sync"), ("c", "potential")], limit)? {
        bail!("b did not become the synchronous standby: {:?}", sync_states(sb, &t.a)?);
    }
    sb.sql(&t.a, "insert into test values (-1, 'b is sync', clock_timestamp())")?;
    log_shows(sb, &t.a, offset, &["standby \"b\" is now a synchronous standby"])?;
    sb.stop(&t.b, StopMode::Fast)?;
    let mut client =
        sb.sql_background(&t.a, "insert into test values (-2, 'b is down', clock_timestamp())")?;
    let returned = client.wait(Duration::from_secs(10)).map(|o| o.success()).unwrap_or(false);
    r.facts.relate("commits return while b is stopped", returned);
    let c_sync = sync_states_become(sb, &t.a, &[("c", "sync")], limit)?;
    r.facts.relate("while b is stopped, c is the synchronous standby", c_sync);
    log_shows(sb, &t.a, offset, &["standby \"c\" is now a synchronous standby"])?;
    sb.start(&t.b, StartWait::Ready)?;
    sb.poll("b to stream from a again", Duration::from_secs(30), || {
        Ok(replication_state(sb, &t.a, &t.b)?.then_some(()))
    })?;
    sb.sql(&t.a, "insert into test values (-3, 'b is back', clock_timestamp())")?;
    let back = sync_states_become(sb, &t.a, &[("b", "sync"), ("c", "potential")], limit)?;
    let b_lines = |log: &str| log.matches("standby \"b\" is now a synchronous standby").count();
    let deadline = Instant::now() + Duration::from_secs(15);
    while b_lines(&sb.read_log(&t.a, offset)?) < 2 && Instant::now() < deadline {
        check_interrupted()?;
        sleep(Duration::from_millis(100));
    }
    let states = sync_states(sb, &t.a)?;
    let state_of = |name: &str| states.iter().find(|(n, _)| n == name).map(|(_, s)| s.as_str());
    r.facts.relate(
        "after b restarts, b is the synchronous standby again",
        back || state_of("b") == Some("sync"),
    );
    r.facts.relate("after b restarts, c is a potential standby", state_of("c") == Some("potential"));
    scan_sync_log(sb, &t.a, offset, r)?;
    r.class = if returned { OutcomeClass::Converged } else { OutcomeClass::Stuck };
    Ok(())
}

/// Story 9: ANY 1 (b, c), both stopped: a commit on `a` waits (SyncRep).
fn sync_any_both_down(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let t = setup_trio(sb)?;
    let offset = sb.log_offset(&t.a);
    set_sync(sb, &t.a, &[("synchronous_standby_names", "ANY 1 (b, c)")])?;
    let both = sync_states_become(sb, &t.a, &[("b", "quorum"), ("c", "quorum")], Duration::from_secs(20))?;
    r.facts.relate("b and c are both quorum standbys while they stream", both);
    sb.sql(&t.a, "insert into test values (-1, 'quorum', clock_timestamp())")?;
    log_shows(
        sb,
        &t.a,
        offset,
        &[
            "standby \"b\" is now a candidate for quorum synchronous standby",
            "standby \"c\" is now a candidate for quorum synchronous standby",
        ],
    )?;
    sb.stop(&t.b, StopMode::Fast)?;
    sb.stop(&t.c, StopMode::Fast)?;
    let mut probe = insert_and_watch_syncrep(sb, &t.a, r, -4)?;
    sleep(Duration::from_millis(500));
    let waiting = probe.still_waiting()?;
    r.facts.relate("a commit waits with wait_event SyncRep while b and c are down", waiting);
    if let Some(pid) = &probe.pid {
        sb.sql(&t.a, &format!("select pg_cancel_backend({pid})"))?;
    }
    let out = probe.finish(Duration::from_secs(10))?;
    for line in out.lines() {
        r.obs.feed("psql client on a", line);
    }
    scan_sync_log(sb, &t.a, offset, r)?;
    r.class = if waiting { OutcomeClass::Stuck } else { OutcomeClass::Converged };
    Ok(())
}

/// Story 10: FIRST 1 (b, c) with `synchronous_commit = remote_apply`; replay paused
/// on `b`: a commit waits (SyncRep) until `pg_wal_replay_resume()`.
fn remote_apply_replay_paused(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let t = setup_trio(sb)?;
    let offset = sb.log_offset(&t.a);
    set_sync(
        sb,
        &t.a,
        &[("synchronous_standby_names", "FIRST 1 (b, c)"), ("synchronous_commit", "remote_apply")],
    )?;
    let b_sync = sync_states_become(sb, &t.a, &[("b", "sync"), ("c", "potential")], Duration::from_secs(20))?;
    r.facts.relate("b is the synchronous standby", b_sync);
    sb.sql(&t.a, "insert into test values (-1, 'b applies', clock_timestamp())")?;
    log_shows(sb, &t.a, offset, &["standby \"b\" is now a synchronous standby"])?;
    sb.sql(&t.b, "select pg_wal_replay_pause()")?;
    let mut probe = insert_and_watch_syncrep(sb, &t.a, r, -5)?;
    sleep(Duration::from_millis(500));
    let waiting = probe.still_waiting()?;
    r.facts.relate("a commit waits with wait_event SyncRep while replay is paused on b", waiting);
    sb.sql(&t.b, "select pg_wal_replay_resume()")?;
    let returned = probe.finish(Duration::from_secs(10)).map(|o| o.success()).unwrap_or(false);
    r.facts.relate("the waiting commit returns after pg_wal_replay_resume()", returned);
    scan_sync_log(sb, &t.a, offset, r)?;
    r.class = if returned { OutcomeClass::Converged } else { OutcomeClass::Stuck };
    Ok(())
}

/// Story 8: B promoted, A diverges and crashes; B writes on past A's end of WAL E;
/// B's `00000002.history` is copied into A's pg_wal; A starts as a standby of B.
///
/// PostgreSQL 15 does crash recovery first (targeting timeline 2, whose history
/// lets it replay A's own timeline-1 WAL past the fork), is consistent at E, asks B
/// for timeline 2 from the start of E's segment, and then cannot read a record at E
/// in what B sent: a framing error at LOG level, retried forever. The node does not
/// exit, so it is judged by replay progress, not by a process ending.
fn history_file_before_start(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let p = setup_pair(sb, true)?;
    let d = diverge(sb, &p, StopMode::Immediate, r)?;
    // B must hold WAL at E, else the walsender refuses "ahead of the WAL flush position".
    let b_flush = write_beyond(sb, &p, d.a_end, d.segment)?;
    r.facts.relate("new primary's WAL flush position > the old primary's end of WAL", b_flush > d.a_end);
    sb.copy_history_file(&p.b, &p.a, 2)?;
    r.facts.relate(
        "00000002.history is in the rejoining node's pg_wal before its first start as a standby",
        sb.history_file(&p.a, 2).is_ok(),
    );
    let offsets = [(&p.a, sb.log_offset(&p.a)), (&p.b, sb.log_offset(&p.b))];
    r.note_rejoin(&p.a, offsets[0].1, d.positions());
    sb.make_standby(&p.a, Some(&p.b))?;
    sb.start(&p.a, StartWait::Running)?;
    let started = Instant::now();
    loop {
        check_interrupted()?;
        let trace = MechanismTrace::of(sb.read_log(&p.a, offsets[0].1)?.lines());
        if trace.positions.framing_error_repeats >= 2
            || scan_logs(sb, &offsets)?.any_refusal()
            || replayed(sb, &p.a).is_some_and(|at| at > d.a_end)
            || started.elapsed() > REJOIN_LIMIT
        {
            break;
        }
        sleep(Duration::from_millis(200));
    }
    let progress = watch_replay(sb, r, &p.a)?;
    let streaming = replication_state(sb, &p.b, &p.a)?;
    r.facts.relate("upstream's pg_stat_replication showed the rejoining node streaming", streaming);
    let past_end = progress.last.is_some_and(|at| at > d.a_end);
    r.facts.relate("rejoining node replayed past its end of local WAL", past_end);
    let rows_equal = compare_rows(sb, r, &p.b, &p.a);
    let obs = scan_logs(sb, &offsets)?;
    r.obs.absorb(&obs);
    let trace = MechanismTrace::of(sb.read_log(&p.a, offsets[0].1)?.lines());
    if let Some(i) = trace.kinds.iter().position(|&k| k == Mechanism::FramingError) {
        r.facts.framing_error_text = Some(trace.lines[i].clone());
    }
    r.facts.relate(
        "startup process logged the framing error more than once at the same position",
        trace.positions.framing_error_repeats >= 2,
    );
    r.class = if r.obs.any_refusal() {
        OutcomeClass::Refused
    } else if past_end && rows_equal {
        OutcomeClass::Converged
    } else {
        // Replay stopped (framing loop), or it went on over mixed histories: not
        // converged either way; the relations above say which.
        OutcomeClass::Stuck
    };
    relate_positions(r, d.positions());
    Ok(())
}

/// Story 9: the naive rejoin of `DivergedNaiveAfterImmediate` (refused; its
/// walreceiver fetches `00000002.history` meanwhile), then A stopped cleanly and
/// started again: its minimum recovery point (E on timeline 1) is not on timeline 2.
fn second_start_after_history_fetch(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let p = setup_pair(sb, true)?;
    let d = diverge(sb, &p, StopMode::Immediate, r)?;
    rejoin(
        sb,
        r,
        &p.a,
        &p.b,
        &[MessageKind::NotInHistory, MessageKind::ForkedBeforeRecoveryPoint],
        d.positions(),
    )?;
    r.facts.relate(
        "walreceiver fetched 00000002.history into the rejoining node's pg_wal during the first rejoin",
        sb.history_file(&p.a, 2).is_ok(),
    );
    sb.stop(&p.a, StopMode::Fast)?;
    let control = sb.controldata(&p.a)?;
    let min_recovery = control_lsn(&control, "Minimum recovery ending location");
    if let Some(point) = min_recovery {
        r.facts.relate(
            "pg_controldata's minimum recovery point after the first rejoin equals the old primary's end of WAL",
            point == d.a_end,
        );
    }
    start_expecting_fatal(sb, r, &p.a, &p.b)
}

/// Story 10: A diverges and is shut down cleanly (its latest checkpoint, the
/// shutdown checkpoint, lies past the fork); B's `00000002.history` is copied into
/// A's pg_wal; A starts as a standby of B: not a child of this server's history.
fn history_file_clean_shutdown(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let p = setup_pair(sb, true)?;
    let d = diverge(sb, &p, StopMode::Fast, r)?;
    let control = sb.controldata(&p.a)?;
    let checkpoint = control_lsn(&control, "Latest checkpoint location");
    if let Some(checkpoint) = checkpoint {
        r.facts.relate("pg_controldata's latest checkpoint > fork point", checkpoint > d.fork_point);
    }
    sb.copy_history_file(&p.b, &p.a, 2)?;
    r.facts.relate(
        "00000002.history is in the rejoining node's pg_wal before its first start as a standby",
        sb.history_file(&p.a, 2).is_ok(),
    );
    let offset = sb.log_offset(&p.a);
    r.note_rejoin(&p.a, offset, d.positions());
    start_expecting_fatal(sb, r, &p.a, &p.b)?;
    let trace = MechanismTrace::of(sb.read_log(&p.a, offset)?.lines());
    if let (Some(detail), Some(control)) = (trace.positions.detail_checkpoint, checkpoint) {
        r.facts.relate(
            "DETAIL's latest checkpoint equals pg_controldata's latest checkpoint",
            detail == control,
        );
    }
    relate_positions(r, d.positions());
    Ok(())
}

/// Starts `node` as a standby of `upstream` when its startup process is expected to
/// refuse (a FATAL): waits for a recognised refusal in its log, for the server to
/// end, or for `FATAL_LIMIT`; the class is `refused` if a refusal was logged by this
/// start, else `converged`/`stuck` by the upstream's view.
fn start_expecting_fatal(sb: &Sandbox, r: &mut Report, node: &Node, upstream: &Node) -> Result<()> {
    let offsets = [(node, sb.log_offset(node)), (upstream, sb.log_offset(upstream))];
    sb.make_standby(node, Some(upstream))?;
    sb.start(node, StartWait::Launched)?;
    let started = Instant::now();
    let this_start = loop {
        check_interrupted()?;
        let obs = scan_logs(sb, &offsets)?;
        let ended = obs.any_refusal()
            || sb.read_log(node, offsets[0].1)?.contains("database system is shut down")
            || started.elapsed() > FATAL_LIMIT;
        if ended {
            break obs;
        }
        sleep(Duration::from_millis(200));
    };
    let streaming = replication_state(sb, upstream, node)?;
    r.facts
        .relate("upstream's pg_stat_replication showed the node streaming after its last start", streaming);
    r.facts.relate(
        "server exited after the startup process's FATAL",
        sb.read_log(node, offsets[0].1)?.contains("database system is shut down"),
    );
    r.obs.absorb(&this_start);
    r.class = if this_start.any_refusal() {
        OutcomeClass::Refused
    } else if streaming {
        OutcomeClass::Converged
    } else {
        OutcomeClass::Stuck
    };
    Ok(())
}

/// Makes B write (and flush) beyond `target`, switching segments until it is in
/// `target`'s segment; returns B's flush position.
fn write_beyond(sb: &Sandbox, p: &Pair, target: Lsn, segment: u64) -> Result<Lsn> {
    for _ in 0..60 {
        check_interrupted()?;
        let flush = current_lsn(sb, &p.b, "pg_current_wal_flush_lsn()")?;
        // A margin so that B has whole records beyond E (a record header is 24
        // bytes; the workload's records are some 100-200 bytes).
        if flush.0 > target.0 + 512 {
            return Ok(flush);
        }
        if flush.segment_no(segment) < target.segment_no(segment) {
            sb.pgbench(&p.b, &p.script, 1, 5)?;
            sb.sql(&p.b, "select pg_switch_wal()")?;
        } else {
            sb.pgbench(&p.b, &p.script, 2, 25)?;
        }
    }
    bail!("b did not write past a's end of WAL {target}")
}

/// What the replay position did while watched for `NO_PROGRESS`.
struct Progress {
    last: Option<Lsn>,
}

/// Samples `pg_last_wal_replay_lsn()` on `node` twice, `NO_PROGRESS` apart, and
/// records whether it moved.
fn watch_replay(sb: &Sandbox, r: &mut Report, node: &Node) -> Result<Progress> {
    let first = replayed(sb, node);
    let until = Instant::now() + NO_PROGRESS;
    while Instant::now() < until {
        check_interrupted()?;
        sleep(Duration::from_millis(100));
    }
    let second = replayed(sb, node);
    r.facts.replay_samples =
        [first, second].iter().map(|l| l.map_or_else(|| "NULL".to_string(), |l| l.to_string())).collect();
    if first.is_some() && second.is_some() {
        r.facts.relate("replay position unchanged over 3 s", first == second);
    }
    Ok(Progress { last: second.or(first) })
}

/// Row summaries of `upstream` and `node` into the facts; whether they are equal.
fn compare_rows(sb: &Sandbox, r: &mut Report, upstream: &Node, node: &Node) -> bool {
    let (up, mine) = (sb.rows(upstream).ok(), sb.rows(node).ok());
    r.facts.rows_primary = up;
    r.facts.rows_rejoined = mine;
    let equal = up.is_some() && up == mine;
    if up.is_some() && mine.is_some() {
        r.facts.relate("row count and hash equal on both nodes", equal);
    }
    equal
}

/// `pg_last_wal_replay_lsn()` on `node`, if it answers.
fn replayed(sb: &Sandbox, node: &Node) -> Option<Lsn> {
    sb.sql_lsn(node, "select pg_last_wal_replay_lsn()").ok().flatten()
}

/// An LSN-valued pg_controldata field.
fn control_lsn(control: &[(String, String)], key: &str) -> Option<Lsn> {
    control.iter().find(|(k, _)| k == key).and_then(|(_, v)| Lsn::parse(v))
}

/// Story `standby-down-archive`: the WAL archive (the model's scenario of that
/// name). A archives into a directory both nodes share and keeps no extra WAL; B
/// stops; A completes and archives several segments, then two CHECKPOINTs remove
/// them (the segment B needs among them); B starts and, with restore_command,
/// restores them from the archive before it streams the rest.
fn standby_down_archive(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let archive = sb.root.join("archive");
    sb.make_dir(&archive)?;
    let dir = archive.display();
    // pg_basebackup copies postgresql.auto.conf: b gets the same settings.
    let conf = format!(
        "archive_mode = on\narchive_command = 'cp %p {dir}/%f'\nrestore_command = 'cp {dir}/%f %p'\nwal_keep_size = 0\n"
    );
    let (Pair { a, b, script }, b_pos) = start_pair(
        sb,
        PairSpec { wal_log_hints: true, initdb_args: &[], conf: &conf, slot: false, txns: 100 },
    )?;
    sb.stop(&b, StopMode::Fast)?;
    let needed = sb.sql(&a, &format!("select pg_walfile_name('{b_pos}')"))?;
    for _ in 0..3 {
        sb.pgbench(&a, &script, 2, 50)?;
        sb.sql(&a, "select pg_switch_wal()")?;
    }
    sb.pgbench(&a, &script, 2, 50)?;
    sb.poll("a's archiver to archive every completed segment", Duration::from_secs(30), || {
        let ready = sb.sql(&a, "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'")?;
        Ok((ready == "0").then_some(()))
    })?;
    sb.sql(&a, "checkpoint")?;
    sb.sql(&a, "checkpoint")?;
    let still = sb.sql(&a, &format!("select count(*) from pg_ls_waldir() where name = '{needed}'"))?;
    r.facts.relate("a removed the segment b needs after it archived it", still == "0");
    r.facts.relate("the archive holds the segment b needs", archive.join(&needed).is_file());
    let offset = sb.log_offset(&b);
    sb.start(&b, StartWait::Running)?;
    let target = current_lsn(sb, &a, "pg_current_wal_lsn()")?;
    let caught_up = replay_reaches(sb, &b, target, REJOIN_LIMIT)?;
    let streaming = caught_up
        && sb
            .poll("b to stream from a again", Duration::from_secs(30), || {
                Ok(replication_state(sb, &a, &b)?.then_some(()))
            })
            .is_ok();
    let log = sb.read_log(&b, offset)?;
    r.facts.relate(
        "b restored the segment it needs from the archive",
        log.contains(&format!("restored log file \"{needed}\" from archive")),
    );
    r.obs.absorb(&scan_logs(sb, &[(&a, 0), (&b, offset)])?);
    let equal = compare_rows(sb, r, &a, &b);
    r.class = if r.obs.any_refusal() {
        OutcomeClass::Refused
    } else if streaming && equal {
        OutcomeClass::Converged
    } else {
        OutcomeClass::Stuck
    };
    Ok(())
}

/// Nodes of a freshly set up pair; `b` streams from `a` and has replayed the load.
struct Pair {
    a: Node,
    b: Node,
    script: PathBuf,
}

/// How [`start_pair`] builds a pair.
struct PairSpec<'a> {
    wal_log_hints: bool,
    /// Extra `initdb` arguments for A (B is a base backup of it).
    initdb_args: &'a [&'a str],
    /// Settings for A's postgresql.auto.conf ("" for none); pg_basebackup copies
    /// them to B.
    conf: &'a str,
    /// Slot `b` created on A and used by B (`primary_slot_name = 'b'`).
    slot: bool,
    /// pgbench transactions per client (4 clients) of the initial load.
    txns: u32,
}

/// A new pair: A initialized and started with the schema, B a base backup of A
/// streaming from it, the initial load written on A and replayed on B. Returns
/// the pair and A's WAL position after the load.
fn start_pair(sb: &Sandbox, spec: PairSpec<'_>) -> Result<(Pair, Lsn)> {
    let a = sb.node("a")?;
    let b = sb.node("b")?;
    sb.initdb_with(&a, spec.wal_log_hints, spec.initdb_args)?;
    if !spec.conf.is_empty() {
        sb.set_conf(&a, spec.conf)?;
    }
    sb.start(&a, StartWait::Ready)?;
    sb.sql(&a, SCHEMA)?;
    if spec.slot {
        sb.sql(&a, "select pg_create_physical_replication_slot('b', true)")?;
    }
    let script = sb.root.join("workload.sql");
    sb.write_file(&script, WORKLOAD)?;
    sb.basebackup(&a, &b)?;
    if spec.slot {
        sb.set_conf(&b, "primary_slot_name = 'b'\n")?;
    }
    sb.start(&b, StartWait::Ready)?;
    sb.poll("b to stream from a", Duration::from_secs(30), || {
        Ok(replication_state(sb, &a, &b)?.then_some(()))
    })?;
    sb.pgbench(&a, &script, 4, spec.txns)?;
    let target = current_lsn(sb, &a, "pg_current_wal_lsn()")?;
    if !replay_reaches(sb, &b, target, Duration::from_secs(30))? {
        bail!("b did not replay a's initial load (up to {target}) within 30 s");
    }
    Ok((Pair { a, b, script }, target))
}

fn setup_pair(sb: &Sandbox, wal_log_hints: bool) -> Result<Pair> {
    let spec = PairSpec { wal_log_hints, initdb_args: &[], conf: "", slot: false, txns: 250 };
    Ok(start_pair(sb, spec)?.0)
}

/// A's writes after B stopped following it: some load, a segment switch, a little
/// more load, so that A's end of WAL is in a later segment than anything B has.
fn write_past_segment_end(sb: &Sandbox, p: &Pair) -> Result<()> {
    sb.pgbench(&p.a, &p.script, 4, 100)?;
    sb.sql(&p.a, "select pg_switch_wal()")?;
    sb.pgbench(&p.a, &p.script, 2, 50)
}

/// LSN positions a rejoin's messages are checked against.
#[derive(Clone, Copy)]
struct Positions {
    a_end: Option<Lsn>,
    /// Where the rejoining node's own WAL ends when it starts as a standby: the old
    /// primary's end of WAL, unless a tool (pg_rewind) replaced its WAL meanwhile.
    local_end: Option<Lsn>,
    fork_point: Option<Lsn>,
    segment: u64,
    /// Flush position of a standby upstream, if the upstream is one.
    upstream_flush: Option<Lsn>,
}

struct Divergence {
    fork_point: Lsn,
    a_end: Lsn,
    segment: u64,
}

impl Divergence {
    fn positions(&self) -> Positions {
        Positions {
            a_end: Some(self.a_end),
            local_end: Some(self.a_end),
            fork_point: Some(self.fork_point),
            segment: self.segment,
            upstream_flush: None,
        }
    }
}

/// Promotes B, lets A write on past a segment boundary, stops A with `stop`.
fn diverge(sb: &Sandbox, p: &Pair, stop: StopMode, r: &mut Report) -> Result<Divergence> {
    sb.promote(&p.b)?;
    write_past_segment_end(sb, p)?;
    let d = stop_diverged(sb, p, stop, r)?;
    r.facts.relate(
        "old primary's end of WAL is in a later WAL segment than the fork point",
        d.a_end.segment_no(d.segment) > d.fork_point.segment_no(d.segment),
    );
    Ok(d)
}

/// After B's promotion and A's writes on its own: stops A with `stop`, reads
/// A's end of WAL and B's fork point into the facts.
fn stop_diverged(sb: &Sandbox, p: &Pair, stop: StopMode, r: &mut Report) -> Result<Divergence> {
    let hint = current_lsn(sb, &p.a, "pg_current_wal_insert_lsn()")?;
    sb.stop(&p.a, stop)?;
    let a_end = sb.wal_end(&p.a, hint)?;
    let segment = sb.segment_size(&p.a)?;
    let fork_point = read_fork_point(sb, &p.b, r)?;
    r.facts.old_primary_end_of_wal = Some(a_end.to_string());
    r.facts.relate("old primary's end of WAL > fork point", a_end > fork_point);
    Ok(Divergence { fork_point, a_end, segment })
}

/// Reads the promoted node's `00000002.history` into the facts; returns timeline 1's
/// switch point.
fn read_fork_point(sb: &Sandbox, promoted: &Node, r: &mut Report) -> Result<Lsn> {
    let history = sb.history_file(promoted, 2)?;
    let fork_point = messages::history_switch_point(&history, 1)
        .ok_or_else(|| anyhow!("no switch point for timeline 1 in {history:?}"))?;
    r.facts.fork_point = Some(fork_point.to_string());
    r.facts.history_file = Some(history);
    Ok(fork_point)
}

/// Restarts `node` as a standby of `upstream` and watches what happens, recording
/// messages, the class and the relations between the LSNs seen.
///
/// It stops as soon as the upstream's `pg_stat_replication` shows `node` streaming
/// (then checks catch-up and rows), as soon as every kind in `expected` was seen, 5 s
/// after the first refusal, or after 30 s.
fn rejoin(
    sb: &Sandbox,
    r: &mut Report,
    node: &Node,
    upstream: &Node,
    expected: &[MessageKind],
    pos: Positions,
) -> Result<()> {
    let offsets = [(node, sb.log_offset(node)), (upstream, sb.log_offset(upstream))];
    r.note_rejoin(node, offsets[0].1, pos);
    sb.make_standby(node, Some(upstream))?;
    sb.start(node, StartWait::Running)?;
    let started = Instant::now();
    let mut first_refusal: Option<Instant> = None;
    let mut streaming = false;
    loop {
        check_interrupted()?;
        let obs = scan_logs(sb, &offsets)?;
        if replication_state(sb, upstream, node)? {
            streaming = true;
            break;
        }
        if !expected.is_empty() && expected.iter().all(|&kind| obs.has(kind)) {
            break;
        }
        if obs.any_refusal() && first_refusal.get_or_insert_with(Instant::now).elapsed() > AFTER_REFUSAL {
            break;
        }
        if started.elapsed() > REJOIN_LIMIT {
            break;
        }
        sleep(Duration::from_millis(200));
    }
    r.facts.relate("upstream's pg_stat_replication showed the rejoining node streaming", streaming);
    let mut caught_up = false;
    if streaming {
        // Make the upstream write something new, then wait for it to be replayed.
        sb.sql(upstream, "checkpoint")?;
        sb.sql(
            upstream,
            "insert into test select -1000 - g, 'catch-up', clock_timestamp() \
             from generate_series(1, 10) g on conflict do nothing",
        )?;
        let target = current_lsn(sb, upstream, "pg_current_wal_lsn()")?;
        caught_up = replay_reaches(sb, node, target, REJOIN_LIMIT)?;
        r.facts.relate("rejoined node replayed up to the upstream's current LSN", caught_up);
    }
    // The rejoining node is a hot standby once consistent, so both can be counted.
    let rows_up = sb.rows(upstream).ok();
    let rows_node = sb.rows(node).ok();
    r.facts.rows_primary = rows_up;
    r.facts.rows_rejoined = rows_node;
    let rows_equal = rows_up.is_some() && rows_up == rows_node;
    if rows_up.is_some() && rows_node.is_some() {
        r.facts.relate("row count and hash equal on both nodes", rows_equal);
    }
    let obs = scan_logs(sb, &offsets)?;
    r.obs.absorb(&obs);
    r.class = if streaming && caught_up && rows_equal {
        OutcomeClass::Converged
    } else if r.obs.any_refusal() {
        OutcomeClass::Refused
    } else {
        OutcomeClass::Stuck
    };
    relate_positions(r, pos);
    Ok(())
}

/// Checks the LSNs quoted in messages against the positions the driver measured.
fn relate_positions(r: &mut Report, pos: Positions) {
    let obs = &r.obs;
    let facts = &mut r.facts;
    if let Some(start) = obs.requested_start {
        if let Some(end) = pos.a_end {
            facts.relate(
                "requested start is the start of the WAL segment holding the old primary's end of WAL",
                start == end.segment_start(pos.segment),
            );
        }
        if let Some(fork) = pos.fork_point {
            facts.relate("requested start > fork point", start > fork);
        }
        if let Some(flush) = obs.server_flush {
            facts.relate("requested start > server flush", start > flush);
        }
    }
    if let (Some(flush), Some(expected)) = (obs.server_flush, pos.upstream_flush) {
        facts.relate("server flush equals the lagging standby's replay position", flush == expected);
    }
    if let (Some(at), Some(fork)) = (obs.history_forked_at, pos.fork_point) {
        facts.relate("walsender's \"history forked from timeline 1 at\" equals the fork point", at == fork);
    }
    if let (Some(point), Some(end)) = (obs.recovery_point, pos.a_end) {
        facts.relate("\"before current recovery point\" equals the old primary's end of WAL", point == end);
    }
}

/// Whether `downstream` streams from `upstream` right now (by the upstream's view).
fn replication_state(sb: &Sandbox, upstream: &Node, downstream: &Node) -> Result<bool> {
    let states = sb.sql(
        upstream,
        &format!("select state from pg_stat_replication where application_name = '{}'", downstream.name),
    )?;
    Ok(states.lines().any(|state| state == "streaming"))
}

/// One LSN-valued expression evaluated on `node`.
fn current_lsn(sb: &Sandbox, node: &Node, expr: &str) -> Result<Lsn> {
    sb.sql_lsn(node, &format!("select {expr}"))?.ok_or_else(|| anyhow!("{expr} is NULL on {}", node.name))
}

/// Waits until `node` has replayed up to `target`; false if it did not within `limit`.
fn replay_reaches(sb: &Sandbox, node: &Node, target: Lsn, limit: Duration) -> Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        check_interrupted()?;
        let replayed = sb.sql_lsn(node, "select pg_last_wal_replay_lsn()").ok().flatten();
        if replayed.is_some_and(|lsn| lsn >= target) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        sleep(Duration::from_millis(100));
    }
}

/// Recognised messages in the logs of `logs`, read from each offset on.
///
/// The logs are read one after the other, in the order given (the rejoining node
/// first), rather than merged by timestamp: the quoted line and the order of kinds
/// then do not depend on which of two processes logged a millisecond earlier.
fn scan_logs(sb: &Sandbox, logs: &[(&Node, u64)]) -> Result<Observer> {
    let mut obs = Observer::default();
    for &(node, offset) in logs {
        let source = format!("{} server log", node.name);
        for line in sb.read_log(node, offset)?.lines() {
            obs.feed(&source, line);
        }
    }
    Ok(obs)
}

/// Recognised messages (the first line of each kind, and every source that printed
/// that kind) and the LSNs quoted in them.
#[derive(Default, Clone)]
struct Observer {
    seen: Vec<Seen>,
    requested_start: Option<Lsn>,
    server_flush: Option<Lsn>,
    recovery_point: Option<Lsn>,
    history_forked_at: Option<Lsn>,
    /// S in "requested WAL segment S has already been removed".
    removed_segment: Option<String>,
}

#[derive(Clone)]
struct Seen {
    kind: MessageKind,
    line: String,
    sources: Vec<String>,
}

impl Observer {
    fn feed(&mut self, source: &str, line: &str) {
        if let Some(kind) = messages::recognise(line) {
            self.note(kind, line, source);
        }
        self.requested_start = self.requested_start.or(messages::requested_start(line));
        self.server_flush = self.server_flush.or(messages::server_flush(line));
        self.recovery_point = self.recovery_point.or(messages::recovery_point(line));
        self.history_forked_at =
            self.history_forked_at.or(messages::history_forked_at(line).map(|(_, at)| at));
        if self.removed_segment.is_none() {
            self.removed_segment = messages::removed_segment(line).map(str::to_string);
        }
    }

    fn note(&mut self, kind: MessageKind, line: &str, source: &str) {
        match self.seen.iter_mut().find(|seen| seen.kind == kind) {
            Some(seen) => {
                if !seen.sources.iter().any(|s| s == source) {
                    seen.sources.push(source.to_string());
                }
            }
            None => self.seen.push(Seen { kind, line: line.to_string(), sources: vec![source.to_string()] }),
        }
    }

    fn absorb(&mut self, other: &Observer) {
        for seen in &other.seen {
            for source in &seen.sources {
                self.note(seen.kind, &seen.line, source);
            }
        }
        self.requested_start = self.requested_start.or(other.requested_start);
        self.server_flush = self.server_flush.or(other.server_flush);
        self.recovery_point = self.recovery_point.or(other.recovery_point);
        self.history_forked_at = self.history_forked_at.or(other.history_forked_at);
        if self.removed_segment.is_none() {
            self.removed_segment.clone_from(&other.removed_segment);
        }
    }

    fn has(&self, kind: MessageKind) -> bool {
        self.seen.iter().any(|seen| seen.kind == kind)
    }

    fn any_refusal(&self) -> bool {
        self.seen.iter().any(|seen| seen.kind.is_refusal())
    }
}

/// The outcome under construction.
struct Report {
    story: Story,
    version: String,
    class: OutcomeClass,
    obs: Observer,
    facts: Facts,
    /// The rejoining node, where its log stood when it first rejoined, and the
    /// positions its mechanism is related to.
    rejoin: Option<(Node, u64, Positions)>,
    mechanism: MechanismTrace,
}

impl Report {
    /// Remembers the first rejoin (later ones, e.g. a second start, are part of it).
    fn note_rejoin(&mut self, node: &Node, offset: u64, pos: Positions) {
        if self.rejoin.is_none() {
            self.rejoin = Some((node.clone(), offset, pos));
        }
    }

    /// Reads the rejoining node's own log from its first rejoin on: the mechanism
    /// kinds and the relations between their positions and the measured ones.
    fn read_mechanism(&mut self, sb: &Sandbox) -> Result<()> {
        let Some((node, offset, pos)) = &self.rejoin else {
            return Ok(());
        };
        let log = sb.read_log(node, *offset)?;
        self.mechanism = MechanismTrace::of(log.lines());
        for (name, holds) in
            mechanism_relations(&self.mechanism.positions, pos.local_end, pos.fork_point, pos.segment)
        {
            self.facts.relate(&name, holds);
        }
        Ok(())
    }

    fn finish(mut self) -> RealOutcome {
        self.facts.requested_start = self.obs.requested_start.map(|l| l.to_string());
        self.facts.server_flush = self.obs.server_flush.map(|l| l.to_string());
        let (mut messages, mut text, mut sources) = (Vec::new(), Vec::new(), Vec::new());
        for seen in self.obs.seen {
            messages.push(seen.kind);
            text.push(seen.line);
            sources.push(seen.sources.join(", "));
        }
        RealOutcome {
            story: self.story,
            server_version: self.version,
            class: self.class,
            messages,
            message_text: text,
            message_sources: sources,
            mechanism: self.mechanism.kinds,
            mechanism_text: self.mechanism.lines,
            mechanism_positions: self.mechanism.positions,
            facts: self.facts,
        }
    }
}

// ---- Segments and slots (1 MB segments, WAL removed at checkpoints) ----

/// Settings of the segment stories: nothing kept for standbys beyond what a slot
/// holds, recycling bounded by 2 segments, no WAL-triggered checkpoint in between.
const SMALL_WAL: &str = "wal_keep_size = 0\nmin_wal_size = '2MB'\nmax_wal_size = '64MB'\n";

/// Whether (and how) B has a physical replication slot on A.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotUse {
    None,
    /// Slot `b` created before B goes down, `primary_slot_name = 'b'` on B.
    Slot,
    /// The same with `max_slot_wal_keep_size = '1MB'` on A.
    SlotLimited,
}

/// A pair as [`setup_pair`] builds it, with 1 MB segments and [`SMALL_WAL`] (plus
/// `extra`) on A, and optionally slot `b` on A used by B.
fn setup_small_pair(sb: &Sandbox, extra: &str, slot: bool) -> Result<Pair> {
    let conf = format!("{SMALL_WAL}{extra}");
    let spec =
        PairSpec { wal_log_hints: true, initdb_args: &["--wal-segsize=1"], conf: &conf, slot, txns: 250 };
    Ok(start_pair(sb, spec)?.0)
}

/// Load on `node` through `rounds` WAL segments (pgbench, `pg_switch_wal()`), then
/// two checkpoints, each removing or recycling the segments before its REDO's.
fn write_through_segments(sb: &Sandbox, node: &Node, script: &std::path::Path, rounds: u32) -> Result<()> {
    for _ in 0..rounds {
        sb.pgbench(node, script, 2, 50)?;
        sb.sql(node, "select pg_switch_wal()")?;
    }
    sb.sql(node, "checkpoint")?;
    sb.pgbench(node, script, 2, 50)?;
    sb.sql(node, "checkpoint")?;
    Ok(())
}

/// Name of the WAL segment file holding `lsn` on timeline `tli`.
fn segment_file(tli: u32, lsn: Lsn, segment: u64) -> String {
    lsn.segment_file_name(tli, segment)
}

/// Whether `node`'s pg_wal holds the segment file `name`.
fn has_segment(node: &Node, name: &str) -> bool {
    node.data.join("pg_wal").join(name).exists()
}

/// Stories `segment-removed-standby-down`, `slot-keeps-standby-down`,
/// `slot-invalidated-standby-down`: B stopped fast, A writes through several
/// segments and checkpoints twice, B started again as A's standby.
fn standby_down(sb: &Sandbox, r: &mut Report, slot: SlotUse) -> Result<()> {
    let extra = if slot == SlotUse::SlotLimited { "max_slot_wal_keep_size = '1MB'\n" } else { "" };
    let p = setup_small_pair(sb, extra, slot != SlotUse::None)?;
    let hint = current_lsn(sb, &p.b, "pg_last_wal_replay_lsn()")?;
    sb.stop(&p.b, StopMode::Fast)?;
    let b_end = sb.wal_end(&p.b, hint)?;
    let segment = sb.segment_size(&p.a)?;
    r.facts.old_primary_end_of_wal = None;
    let a_offset = sb.log_offset(&p.a);
    write_through_segments(sb, &p.a, &p.script, 4)?;
    let a_now = current_lsn(sb, &p.a, "pg_current_wal_lsn()")?;
    r.facts.relate(
        "primary's insert position is at least 3 WAL segments past the stopped standby's end of WAL",
        a_now.segment_no(segment) >= b_end.segment_no(segment) + 3,
    );
    let needed = segment_file(1, b_end, segment);
    r.facts.relate(
        "the segment holding the stopped standby's end of WAL is still in the primary's pg_wal",
        has_segment(&p.a, &needed),
    );
    if slot != SlotUse::None {
        let state = sb.sql(&p.a, "select wal_status from pg_replication_slots where slot_name = 'b'")?;
        r.facts.relate("the slot's wal_status is lost", state.trim() == "lost");
    }
    scan_sync_log(sb, &p.a, a_offset, r)?;
    let positions =
        Positions { a_end: None, local_end: Some(b_end), fork_point: None, segment, upstream_flush: None };
    let expected: &[MessageKind] = match slot {
        SlotUse::Slot => &[],
        _ => &[MessageKind::SegmentRemoved],
    };
    rejoin(sb, r, &p.b, &p.a, expected, positions)?;
    if let Some(start) = r.obs.removed_segment.clone() {
        r.facts
            .relate("the removed segment named is the one holding the standby's end of WAL", start == needed);
    }
    Ok(())
}

/// Story `segment-removed-switchover`: A stopped fast while B streams (B receives
/// everything), B promoted, B writes through several segments and checkpoints,
/// A follows B naively.
fn segment_removed_switchover(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let p = setup_small_pair(sb, "", false)?;
    let positions = switch_over(sb, r, &p)?;
    let (fork_point, segment) =
        (positions.fork_point.expect("a switchover has a fork point"), positions.segment);
    write_through_segments(sb, &p.b, &p.script, 4)?;
    r.facts.relate(
        "the new primary's segment holding the fork point is still in its pg_wal",
        has_segment(&p.b, &segment_file(2, fork_point, segment))
            || has_segment(&p.b, &segment_file(1, fork_point, segment)),
    );
    rejoin(sb, r, &p.a, &p.b, &[MessageKind::SegmentRemoved], positions)
}

/// Story `rewind-target-wal-removed`: B promoted, A writes on through several
/// segments with checkpoints (removing its WAL before the fork), A stopped fast,
/// CHECKPOINT on B, pg_rewind: the target's WAL back to the last common checkpoint
/// is gone.
fn rewind_target_wal_removed(sb: &Sandbox, r: &mut Report) -> Result<()> {
    let p = setup_small_pair(sb, "", false)?;
    sb.promote(&p.b)?;
    write_through_segments(sb, &p.a, &p.script, 4)?;
    let Divergence { fork_point, a_end, segment } = stop_diverged(sb, &p, StopMode::Fast, r)?;
    r.facts.relate(
        "the old primary's segment holding the fork point is still in its pg_wal",
        has_segment(&p.a, &segment_file(1, fork_point, segment)),
    );
    sb.sql(&p.b, "checkpoint")?;
    let rewound = rewind(sb, r, &p.a, &p.b, |r, line| {
        r.facts.tool_output.push(line.to_string());
        if let Some(at) = messages::rewind_missing_at(line) {
            r.facts.relate(
                "pg_rewind's \"could not find previous WAL record at\" equals the fork point",
                at == fork_point,
            );
        }
    })?;
    if rewound.is_none() {
        return Ok(());
    }
    sb.set_conf(&p.a, &format!("port = {}\n", p.a.port))?;
    let positions = Positions {
        a_end: Some(a_end),
        local_end: None,
        fork_point: Some(fork_point),
        segment,
        upstream_flush: None,
    };
    rejoin(sb, r, &p.a, &p.b, &[], positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observer_dedups_and_keeps_first() {
        let mut obs = Observer::default();
        obs.feed("b server log", "2026-01-01 00:00:00.001 UTC [2] walsender ERROR:  requested starting point 0/4000000 on timeline 1 is not in this server's history");
        obs.feed("b server log", "2026-01-01 00:00:00.001 UTC [2] walsender DETAIL:  This server's history forked from timeline 1 at 0/3000148.");
        obs.feed("a server log", "2026-01-01 00:00:01.001 UTC [3] walsender ERROR:  requested starting point 0/5000000 on timeline 1 is not in this server's history");
        assert_eq!(obs.seen.len(), 1);
        assert_eq!(obs.seen[0].sources, ["b server log", "a server log"]);
        assert!(obs.seen[0].line.contains("0/4000000"));
        assert_eq!(obs.requested_start, Some(Lsn(0x400_0000)));
        assert_eq!(obs.history_forked_at, Some(Lsn(0x300_0148)));
        assert!(obs.any_refusal());
        assert!(!obs.has(MessageKind::AheadOfFlush));
    }
}
