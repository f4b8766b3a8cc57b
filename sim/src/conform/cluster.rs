//! A throw-away directory holding the nodes of one story, and the operations on them.
//!
//! Every server started here is registered by data directory, so that teardown (on
//! success, error, panic or Ctrl-C) can stop it with `pg_ctl -D DIR stop -m immediate`
//! even if the story lost track of it.

use std::cell::{Cell, RefCell};
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::install::PgInstall;
use super::lsn::Lsn;
use super::process::{
    Background, Cmd, CmdOutput, Runner, effective_uid, find_runuser, kill_hard, log_tail_note, postgres_ids,
    process_alive,
};
use super::{Options, check_interrupted};

static SANDBOX_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// How a server is shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StopMode {
    /// Clean: shutdown checkpoint, walsenders send everything first.
    Fast,
    /// Crash-like: no checkpoint, recovery on next start.
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// What `start` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StartWait {
    /// Accepting connections (postmaster.pid says "ready" or "standby").
    Ready,
    /// Merely running: a rejoining standby may never become consistent.
    Running,
    /// Only launched (`pg_ctl -W start` returned): for a start that is expected to
    /// end in a FATAL, which the story reads from the log.
    Launched,
}

/// One PostgreSQL server of a story.
#[derive(Clone, Debug)]
pub(super) struct Node {
    /// "a" or "b"; also the walreceiver's `application_name`.
    pub name: &'static str,
    pub data: PathBuf,
    pub log: PathBuf,
    pub port: u16,
}

/// The temp directory of one story and everything running out of it.
pub(super) struct Sandbox {
    pub root: PathBuf,
    sock: PathBuf,
    bindir: PathBuf,
    runner: Runner,
    owner: Option<(u32, u32)>,
    keep: bool,
    data_dirs: RefCell<Vec<PathBuf>>,
    ports: RefCell<Vec<u16>>,
    done: Cell<bool>,
}

impl Sandbox {
    /// Creates `<tmp>/walsim-conform-<pid>-<n>`, owned by `postgres` when we are root.
    pub fn new(install: &PgInstall, opts: &Options) -> Result<Sandbox> {
        let as_root = effective_uid() == Some(0);
        let (runuser, owner) =
            if as_root { (Some(find_runuser()?), Some(postgres_ids()?)) } else { (None, None) };
        let pid = std::process::id();
        let root = loop {
            let n = SANDBOX_COUNTER.fetch_add(1, Ordering::SeqCst);
            let candidate = std::env::temp_dir().join(format!("walsim-conform-{pid}-{n}"));
            match fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => continue,
                Err(e) => {
                    return Err(anyhow!(e).context(format!("cannot create sandbox {}", candidate.display())));
                }
            }
        };
        let out_dir = root.join("out");
        let sandbox = Sandbox {
            sock: root.join("sock"),
            runner: Runner::new(runuser, out_dir.clone(), root.clone(), opts.verbose),
            bindir: install.bindir.clone(),
            owner,
            keep: opts.keep_data,
            data_dirs: RefCell::new(Vec::new()),
            ports: RefCell::new(Vec::new()),
            done: Cell::new(false),
            root,
        };
        // From here on, dropping `sandbox` removes the directory again.
        sandbox.chown(&sandbox.root)?;
        fs::create_dir(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
        fs::create_dir(&sandbox.sock).with_context(|| format!("cannot create {}", sandbox.sock.display()))?;
        sandbox.chown(&sandbox.sock)?;
        if opts.verbose {
            eprintln!("conform: sandbox {}", sandbox.root.display());
        }
        Ok(sandbox)
    }

    fn chown(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("cannot chown {} to postgres", path.display()))?;
        }
        Ok(())
    }

    /// Path of a PostgreSQL program, checked to exist.
    fn bin(&self, program: &str) -> Result<PathBuf> {
        let path = self.bindir.join(program);
        if path.is_file() {
            Ok(path)
        } else {
            bail!("{program} not found in {} (the conformance stories need it)", self.bindir.display())
        }
    }

    /// Writes a file that the server (running as `postgres`) must read or delete.
    pub fn write_file(&self, path: &Path, content: &str) -> Result<()> {
        fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))?;
        self.chown(path)
    }

    /// A directory the server user owns (e.g. a WAL archive).
    pub fn make_dir(&self, path: &Path) -> Result<()> {
        fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
        self.chown(path)
    }

    fn append(&self, path: &Path, content: &str) -> Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.write_all(content.as_bytes()).with_context(|| format!("cannot append to {}", path.display()))?;
        self.chown(path)
    }

    /// Appends settings to the node's `postgresql.auto.conf`. It is read after
    /// `postgresql.conf` and the last occurrence of a setting wins, so this overrides
    /// whatever pg_basebackup or pg_rewind copied over from another node.
    pub fn set_conf(&self, node: &Node, settings: &str) -> Result<()> {
        self.append(&node.data.join("postgresql.auto.conf"), settings)
    }

    /// A new node (not yet created on disk) with a free loopback port.
    pub fn node(&self, name: &'static str) -> Result<Node> {
        let port = self.free_port()?;
        let node =
            Node { name, data: self.root.join(name), log: self.root.join(format!("{name}.log")), port };
        self.data_dirs.borrow_mut().push(node.data.clone());
        Ok(node)
    }

    /// A port nothing listens on right now (the kernel picks it), distinct from the
    /// ports already handed out in this sandbox.
    fn free_port(&self) -> Result<u16> {
        for _ in 0..50 {
            let listener = TcpListener::bind(("127.0.0.1", 0))
                .context("cannot bind a loopback port to find a free one")?;
            let port = listener.local_addr()?.port();
            drop(listener);
            let mut ports = self.ports.borrow_mut();
            if !ports.contains(&port) {
                ports.push(port);
                return Ok(port);
            }
        }
        bail!("could not find a free loopback port")
    }

    /// `initdb`, with extra arguments (e.g. `--wal-segsize=1` for 1 MB segments,
    /// the smallest PostgreSQL allows), then the settings every story shares.
    pub fn initdb_with(&self, node: &Node, wal_log_hints: bool, extra: &[&str]) -> Result<()> {
        self.runner.run(
            Cmd::new(self.bin("initdb")?)
                .arg("-D")
                .arg(&node.data)
                .args(["-U", "postgres", "--auth=trust", "--no-locale", "--encoding=UTF8", "--no-sync"])
                .args(extra.iter().copied())
                .timeout(Duration::from_secs(120)),
        )?;
        let hints = if wal_log_hints { "on" } else { "off" };
        let conf = format!(
            "\n# walsim conformance settings\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{sock}'\n\
             wal_level = replica\n\
             wal_log_hints = {hints}\n\
             full_page_writes = on\n\
             max_wal_senders = 10\n\
             wal_keep_size = '1GB'\n\
             hot_standby = on\n\
             wal_retrieve_retry_interval = '1s'\n\
             log_line_prefix = '%m [%p] %b '\n\
             log_checkpoints = on\n\
             log_timezone = 'UTC'\n\
             lc_messages = 'C'\n\
             fsync = off\n\
             logging_collector = off\n\
             autovacuum = off\n\
             max_connections = 40\n\
             shared_buffers = '32MB'\n",
            sock = self.sock.display()
        );
        // autovacuum is off so that no background WAL appears at random moments.
        self.append(&node.data.join("postgresql.conf"), &conf)?;
        self.set_conf(node, &format!("port = {}\n", node.port))
    }

    /// Clones `from` into `to` as a streaming standby of `from`.
    pub fn basebackup(&self, from: &Node, to: &Node) -> Result<()> {
        self.runner.run(
            Cmd::new(self.bin("pg_basebackup")?)
                .arg("-D")
                .arg(&to.data)
                .args(["-h", "127.0.0.1", "-p"])
                .arg(from.port.to_string())
                .args(["-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync"])
                .timeout(Duration::from_secs(120))
                .log_hint(&from.log),
        )?;
        self.set_conf(to, &format!("port = {}\n", to.port))?;
        self.make_standby(to, Some(from))
    }

    /// Makes `node` start as a standby: `standby.signal` plus `primary_conninfo` naming
    /// `upstream` (with the node's name as application_name so the upstream's
    /// `pg_stat_replication` identifies it), or an empty `primary_conninfo` for a
    /// standby that must not connect anywhere.
    pub fn make_standby(&self, node: &Node, upstream: Option<&Node>) -> Result<()> {
        let conninfo = match upstream {
            Some(up) => {
                format!("host=127.0.0.1 port={} user=postgres application_name={}", up.port, node.name)
            }
            None => String::new(),
        };
        self.set_conf(
            node,
            &format!("primary_conninfo = '{conninfo}'\nrecovery_target_timeline = 'latest'\n"),
        )?;
        self.write_file(&node.data.join("standby.signal"), "")
    }

    /// Size of node's server log now, to read only what comes after.
    pub fn log_offset(&self, node: &Node) -> u64 {
        fs::metadata(&node.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The node's server log from `offset` on.
    pub fn read_log(&self, node: &Node, offset: u64) -> Result<String> {
        let mut file = match fs::File::open(&node.log) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
            Err(e) => return Err(anyhow!(e).context(format!("cannot read {}", node.log.display()))),
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Starts the server (`pg_ctl -W`) and waits, polling postmaster.pid.
    pub fn start(&self, node: &Node, wait: StartWait) -> Result<()> {
        let offset = self.log_offset(node);
        self.runner.run(
            Cmd::new(self.bin("pg_ctl")?)
                .arg("-D")
                .arg(&node.data)
                .arg("-l")
                .arg(&node.log)
                .args(["-W", "start"])
                .timeout(Duration::from_secs(30))
                .log_hint(&node.log),
        )?;
        if wait == StartWait::Launched {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        let mut seen_pid_file = false;
        loop {
            check_interrupted()?;
            match read_pid_file(&node.data) {
                Some(pid_file) => {
                    seen_pid_file = true;
                    if !process_alive(pid_file.pid) {
                        bail!(
                            "server {} (pid {}) died while starting{}",
                            node.name,
                            pid_file.pid,
                            log_tail_note(&node.log)
                        );
                    }
                    let ready = matches!(pid_file.status.as_str(), "ready" | "standby");
                    if wait == StartWait::Running || ready {
                        return Ok(());
                    }
                }
                None if seen_pid_file => {
                    bail!("server {} exited while starting{}", node.name, log_tail_note(&node.log))
                }
                None if started.elapsed() > Duration::from_millis(500) => {
                    let log = self.read_log(node, offset)?;
                    if log.contains("FATAL:") || log.contains("PANIC:") {
                        bail!("server {} failed to start{}", node.name, log_tail_note(&node.log));
                    }
                }
                None => {}
            }
            if Instant::now() >= deadline {
                bail!(
                    "server {} did not become {} within 60s{}",
                    node.name,
                    if wait == StartWait::Ready { "ready" } else { "running" },
                    log_tail_note(&node.log)
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&self, node: &Node, mode: StopMode) -> Result<()> {
        self.runner.run(
            Cmd::new(self.bin("pg_ctl")?)
                .arg("-D")
                .arg(&node.data)
                .arg("-m")
                .arg(mode.as_str())
                .args(["-w", "-t", "60", "stop"])
                .timeout(Duration::from_secs(70))
                .log_hint(&node.log),
        )?;
        Ok(())
    }

    /// Promotes a standby and waits until it accepts writes.
    pub fn promote(&self, node: &Node) -> Result<()> {
        self.runner.run(
            Cmd::new(self.bin("pg_ctl")?)
                .arg("-D")
                .arg(&node.data)
                .args(["-w", "-t", "60", "promote"])
                .timeout(Duration::from_secs(70))
                .log_hint(&node.log),
        )?;
        self.poll(
            &format!("{} to leave recovery after promotion", node.name),
            Duration::from_secs(30),
            || Ok((self.sql(node, "select pg_is_in_recovery()")? == "f").then_some(())),
        )
    }

    fn psql_cmd(&self, node: &Node, sql: &str) -> Result<Cmd> {
        Ok(Cmd::new(self.bin("psql")?)
            .args(["-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(node.port.to_string())
            .args(["-U", "postgres", "-d", "postgres", "-c"])
            .arg(sql)
            .timeout(Duration::from_secs(30))
            .log_hint(&node.log))
    }

    /// Runs one SQL command; returns its unaligned output (fields split by `|`), trimmed.
    pub fn sql(&self, node: &Node, sql: &str) -> Result<String> {
        let out = self.runner.run(self.psql_cmd(node, sql)?)?;
        Ok(out.stdout.trim().to_string())
    }

    /// Runs one SQL command in the background (for a commit expected to hang).
    pub fn sql_background(&self, node: &Node, sql: &str) -> Result<Background> {
        self.runner.spawn(self.psql_cmd(node, sql)?)
    }

    /// A query returning one `pg_lsn` (NULL gives `None`).
    pub fn sql_lsn(&self, node: &Node, sql: &str) -> Result<Option<Lsn>> {
        let text = self.sql(node, sql)?;
        if text.is_empty() {
            return Ok(None);
        }
        Lsn::parse(&text)
            .map(Some)
            .ok_or_else(|| anyhow!("`{sql}` on {} returned {text:?}, not an LSN", node.name))
    }

    /// `count(*), sum(hashtext(test::text))` of the workload table: equal pairs mean
    /// equal contents (the seed experiment's check).
    pub fn rows(&self, node: &Node) -> Result<(i64, i64)> {
        let text = self.sql(node, "select count(*), coalesce(sum(hashtext(test::text)), 0) from test")?;
        let parse = || -> Option<(i64, i64)> {
            let (count, sum) = text.split_once('|')?;
            Some((count.parse().ok()?, sum.parse().ok()?))
        };
        parse().ok_or_else(|| anyhow!("row summary of {} is {text:?}, not `count|sum`", node.name))
    }

    /// A short pgbench run of `script`: `clients` clients, `txns` transactions each.
    pub fn pgbench(&self, node: &Node, script: &Path, clients: u32, txns: u32) -> Result<()> {
        self.runner.run(
            Cmd::new(self.bin("pgbench")?)
                .args(["-n", "-h", "127.0.0.1", "-p"])
                .arg(node.port.to_string())
                .args(["-U", "postgres", "-c"])
                .arg(clients.to_string())
                .arg("-j")
                .arg(clients.min(2).to_string())
                .arg("-t")
                .arg(txns.to_string())
                .arg("-f")
                .arg(script)
                .arg("postgres")
                .timeout(Duration::from_secs(120))
                .log_hint(&node.log),
        )?;
        Ok(())
    }

    /// Runs pg_rewind on the stopped `target` from the running `source`; returns its
    /// output whatever the exit status, because a refusal is a result, not an error.
    pub fn rewind(&self, target: &Node, source: &Node) -> Result<CmdOutput> {
        self.runner.output(
            Cmd::new(self.bin("pg_rewind")?)
                .arg(format!("--target-pgdata={}", target.data.display()))
                .arg(format!(
                    "--source-server=host=127.0.0.1 port={} user=postgres dbname=postgres",
                    source.port
                ))
                .arg("--no-sync")
                .timeout(Duration::from_secs(120)),
        )
    }

    /// `pg_controldata` of a node as (key, value) pairs.
    pub fn controldata(&self, node: &Node) -> Result<Vec<(String, String)>> {
        let out = self.runner.run(
            Cmd::new(self.bin("pg_controldata")?).arg("-D").arg(&node.data).timeout(Duration::from_secs(30)),
        )?;
        Ok(out
            .stdout
            .lines()
            .filter_map(|line| {
                let (key, value) = line.split_once(':')?;
                Some((key.trim().to_string(), value.trim().to_string()))
            })
            .collect())
    }

    /// WAL segment size of a node, from pg_controldata.
    pub fn segment_size(&self, node: &Node) -> Result<u64> {
        let control = self.controldata(node)?;
        control
            .iter()
            .find(|(key, _)| key == "Bytes per WAL segment")
            .and_then(|(_, value)| value.parse().ok())
            .ok_or_else(|| anyhow!("pg_controldata of {} shows no WAL segment size", node.name))
    }

    /// Where the stopped node's WAL on disk ends: the LSN at which its next record
    /// would start, which is where a restarted standby's startup process stops and
    /// asks a walreceiver for more.
    ///
    /// `hint` is `pg_current_wal_insert_lsn()` taken just before the stop. It is not
    /// enough alone: a fast stop appends a shutdown checkpoint, and an immediate stop
    /// may lose unflushed non-commit records. So pg_waldump reads from `hint` to the
    /// end and we take the position of its final "invalid record length at X" (or
    /// the like); if it finds no record after `hint`, `hint` is the end.
    pub fn wal_end(&self, node: &Node, hint: Lsn) -> Result<Lsn> {
        let out = self.runner.output(
            Cmd::new(self.bin("pg_waldump")?)
                .arg("-p")
                .arg(node.data.join("pg_wal"))
                .arg("-s")
                .arg(hint.to_string())
                .timeout(Duration::from_secs(60)),
        )?;
        let error = out.stderr.lines().rev().find(|line| line.contains("error")).unwrap_or_default();
        if let Some(end) = Lsn::after(error, "could not find a valid record after ") {
            return Ok(end);
        }
        if let Some(at) = error.find("error in WAL record at ") {
            let rest = &error[at + "error in WAL record at ".len()..];
            // First LSN is the last good record's start; the last one is where the
            // reader found no valid record.
            let lsns = Lsn::find_all(rest);
            if lsns.len() >= 2 {
                return Ok(lsns[lsns.len() - 1]);
            }
        }
        bail!(
            "cannot tell where {}'s WAL ends: pg_waldump -s {hint} ended with {:?}",
            node.name,
            out.stderr.trim()
        )
    }

    /// Copies `from`'s timeline history file `0000000N.history` into `to`'s pg_wal, as
    /// an operator (or a `restore_command`) would: owned by `postgres`, mode 0600.
    pub fn copy_history_file(&self, from: &Node, to: &Node, tli: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let name = format!("{tli:08X}.history");
        let (src, dst) = (from.data.join("pg_wal").join(&name), to.data.join("pg_wal").join(&name));
        fs::copy(&src, &dst)
            .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot chmod {}", dst.display()))?;
        self.chown(&dst)
    }

    /// Content of a timeline history file in a node's pg_wal.
    pub fn history_file(&self, node: &Node, tli: u32) -> Result<String> {
        let path = node.data.join("pg_wal").join(format!("{tli:08X}.history"));
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// Polls `probe` every 100 ms until it yields a value, Ctrl-C, or `limit`.
    pub fn poll<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + limit;
        loop {
            check_interrupted()?;
            if let Some(value) = probe()? {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                bail!("timed out after {limit:.0?} waiting for {what}");
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Stops every registered server and removes the directory (unless `keep_data`).
    /// Runs once; later calls (e.g. from `Drop`) do nothing.
    pub fn teardown(&self) -> Result<()> {
        if self.done.replace(true) {
            return Ok(());
        }
        let mut problems = Vec::new();
        for dir in self.data_dirs.borrow().iter() {
            if let Err(e) = self.force_stop(dir) {
                problems.push(format!("{e:#}"));
            }
        }
        if self.keep {
            eprintln!("conform: kept data and logs in {}", self.root.display());
        } else if problems.is_empty() {
            if let Err(e) = fs::remove_dir_all(&self.root) {
                problems.push(format!("cannot remove {}: {e}", self.root.display()));
            }
        } else {
            problems.push(format!("left {} in place", self.root.display()));
        }
        if problems.is_empty() { Ok(()) } else { bail!("teardown problems: {}", problems.join("; ")) }
    }

    /// `pg_ctl stop -m immediate` by data directory, then SIGKILL if that did not work.
    fn force_stop(&self, data: &Path) -> Result<()> {
        let Some(pid_file) = read_pid_file(data) else {
            return Ok(());
        };
        if !process_alive(pid_file.pid) {
            return Ok(());
        }
        if let Ok(pg_ctl) = self.bin("pg_ctl") {
            let _ = self.runner.output(
                Cmd::new(pg_ctl)
                    .arg("-D")
                    .arg(data)
                    .args(["-m", "immediate", "-w", "-t", "20", "stop"])
                    .timeout(Duration::from_secs(30))
                    .uninterruptible(),
            );
        }
        if process_alive(pid_file.pid) {
            kill_hard(pid_file.pid);
            let deadline = Instant::now() + Duration::from_secs(5);
            while process_alive(pid_file.pid) && Instant::now() < deadline {
                sleep(Duration::from_millis(20));
            }
        }
        if process_alive(pid_file.pid) {
            bail!("postmaster {} of {} is still running", pid_file.pid, data.display());
        }
        Ok(())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("conform: {e:#}");
        }
    }
}

/// The fields of postmaster.pid we use.
struct PidFile {
    pid: u32,
    /// Line 8: "starting", "ready", "standby" or "stopping" (may be absent early).
    status: String,
}

fn read_pid_file(data: &Path) -> Option<PidFile> {
    let text = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let status = lines.nth(6).unwrap_or_default().trim().to_string();
    Some(PidFile { pid, status })
}
