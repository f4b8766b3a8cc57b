//! Running PostgreSQL's programs with deadlines, as the `postgres` OS user when we are root.
//!
//! Output goes to files rather than pipes so that a daemon which inherits a
//! descriptor (or a child that outlives `runuser`) can never block us reading it.

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::{Interrupted, interrupted};

/// A command line plus how long it may take.
pub(super) struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    timeout: Duration,
    log_hint: Option<PathBuf>,
    interruptible: bool,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            timeout: Duration::from_secs(60),
            log_hint: None,
            interruptible: true,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Server log whose tail explains a failure of this command.
    pub fn log_hint(mut self, log: &Path) -> Self {
        self.log_hint = Some(log.to_path_buf());
        self
    }

    /// Teardown commands must finish even after Ctrl-C.
    pub fn uninterruptible(mut self) -> Self {
        self.interruptible = false;
        self
    }

    /// The command line as a person would type it.
    pub fn display(&self) -> String {
        let mut words = vec![self.program.display().to_string()];
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains([' ', '\'', '"']) {
                words.push(format!("'{}'", arg.replace('\'', "'\\''")));
            } else {
                words.push(arg.into_owned());
            }
        }
        words.join(" ")
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub(super) struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Lines of stdout then stderr.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.stdout.lines().chain(self.stderr.lines())
    }
}

/// Spawns commands: through `runuser -u postgres --` when running as root, because
/// the server and its tools refuse to run as root.
pub(super) struct Runner {
    runuser: Option<PathBuf>,
    out_dir: PathBuf,
    cwd: PathBuf,
    verbose: bool,
    seq: Cell<u64>,
}

impl Runner {
    /// `out_dir` receives the temporary stdout/stderr files; `cwd` must be usable by
    /// the `postgres` user (initdb and pg_ctl complain about an unreadable cwd).
    pub fn new(runuser: Option<PathBuf>, out_dir: PathBuf, cwd: PathBuf, verbose: bool) -> Self {
        Runner { runuser, out_dir, cwd, verbose, seq: Cell::new(0) }
    }

    /// Starts `cmd` without waiting for it.
    pub fn spawn(&self, cmd: Cmd) -> Result<Background> {
        let n = self.seq.get();
        self.seq.set(n + 1);
        let out_path = self.out_dir.join(format!("cmd-{n}.out"));
        let err_path = self.out_dir.join(format!("cmd-{n}.err"));
        let stdout =
            File::create(&out_path).with_context(|| format!("cannot create {}", out_path.display()))?;
        let stderr =
            File::create(&err_path).with_context(|| format!("cannot create {}", err_path.display()))?;
        let mut command = match &self.runuser {
            Some(runuser) => {
                let mut c = Command::new(runuser);
                c.arg("-u").arg("postgres").arg("--").arg(&cmd.program);
                c
            }
            None => Command::new(&cmd.program),
        };
        command
            .args(&cmd.args)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Message texts are matched literally, so no translations.
            .env("LC_ALL", "C")
            .env("LANG", "C");
        // A stray PGHOST/PGPORT/PGDATA from the caller must not redirect any tool.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                command.env_remove(key);
            }
        }
        let display = cmd.display();
        if self.verbose {
            eprintln!("conform: {} $ {display}", clock());
        }
        let child = command.spawn().with_context(|| format!("cannot start `{display}`"))?;
        Ok(Background {
            child: Some(child),
            out_path,
            err_path,
            cmd,
            started: Instant::now(),
            verbose: self.verbose,
        })
    }

    /// Runs `cmd` to completion (or its deadline); any exit status is returned.
    pub fn output(&self, cmd: Cmd) -> Result<CmdOutput> {
        let timeout = cmd.timeout;
        self.spawn(cmd)?.wait(timeout)
    }

    /// Runs `cmd` to completion and fails unless it exited successfully.
    pub fn run(&self, cmd: Cmd) -> Result<CmdOutput> {
        let timeout = cmd.timeout;
        let mut running = self.spawn(cmd)?;
        let out = running.wait(timeout)?;
        if out.success() {
            Ok(out)
        } else {
            Err(running.failure(&format!("exited with {}", out.status), Some(&out)))
        }
    }
}

/// A running command; terminated on drop so no client outlives its story.
pub(super) struct Background {
    child: Option<Child>,
    out_path: PathBuf,
    err_path: PathBuf,
    cmd: Cmd,
    started: Instant,
    verbose: bool,
}

impl Background {
    /// The output if the command has exited, without waiting.
    pub fn try_finish(&mut self) -> Result<Option<CmdOutput>> {
        let Some(child) = self.child.as_mut() else {
            bail!("`{}` was already collected", self.cmd.display());
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Ok(Some(self.collect(status)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(anyhow!(e).context(format!("waiting for `{}`", self.cmd.display()))),
        }
    }

    /// Waits up to `timeout`; on timeout or Ctrl-C the command is terminated.
    pub fn wait(&mut self, timeout: Duration) -> Result<CmdOutput> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(out) = self.try_finish()? {
                return Ok(out);
            }
            if self.cmd.interruptible && interrupted() {
                self.terminate();
                return Err(anyhow!(Interrupted).context(format!("while running `{}`", self.cmd.display())));
            }
            if Instant::now() >= deadline {
                self.terminate();
                return Err(self.failure(&format!("did not finish within {:.0?}", timeout), None));
            }
            sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }

    /// Stops the command: SIGTERM first (runuser passes it on to its child, which a
    /// SIGKILL of runuser would orphan), SIGKILL after a grace period.
    pub fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            self.discard_files();
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.discard_files();
                return;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        self.discard_files();
    }

    fn collect(&mut self, status: ExitStatus) -> CmdOutput {
        let read = |path: &Path| {
            fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
        };
        let out = CmdOutput { status, stdout: read(&self.out_path), stderr: read(&self.err_path) };
        self.discard_files();
        if self.verbose {
            eprintln!("conform:   ({:.2}s, {})", self.started.elapsed().as_secs_f64(), out.status);
        }
        out
    }

    fn discard_files(&self) {
        let _ = fs::remove_file(&self.out_path);
        let _ = fs::remove_file(&self.err_path);
    }

    /// An error naming the command, what it printed and the end of the server log.
    pub fn failure(&self, what: &str, out: Option<&CmdOutput>) -> anyhow::Error {
        let mut text = format!("`{}` {what}", self.cmd.display());
        if let Some(out) = out {
            for (name, stream) in [("stderr", &out.stderr), ("stdout", &out.stdout)] {
                let stream = stream.trim();
                if !stream.is_empty() {
                    text.push_str(&format!("\n{name}:\n{}", tail(stream, 40)));
                }
            }
        }
        if let Some(log) = &self.cmd.log_hint {
            text.push_str(&log_tail_note(log));
        }
        anyhow!(text)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Wall-clock time of day (UTC, to the millisecond) for verbose output, to line it
/// up with the `%m` stamps in the server logs.
fn clock() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    format!("{:02}:{:02}:{:02}.{:03}", secs / 3600, secs / 60 % 60, secs % 60, now.subsec_millis())
}

/// The last `lines` lines of `text`.
pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// "server log X ends with: ..." for error messages. The log is deleted with the
/// sandbox unless `keep_data` is set, so its tail is quoted here.
pub(super) fn log_tail_note(log: &Path) -> String {
    match fs::read(log) {
        Ok(bytes) => format!(
            "\nserver log {} (deleted after the run unless keep_data is set) ends with:\n{}",
            log.display(),
            tail(&String::from_utf8_lossy(&bytes), 25)
        ),
        Err(e) => format!("\nserver log {}: {e}", log.display()),
    }
}

/// Effective uid of this process (from /proc, falling back to `id -u`).
pub(super) fn effective_uid() -> Option<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        let uid = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|euid| euid.parse().ok());
        if uid.is_some() {
            return uid;
        }
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Uid and gid of the `postgres` OS user, which must own the sandbox.
pub(super) fn postgres_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").arg(flag).arg("postgres").output().context("cannot run `id`")?;
        if !out.status.success() {
            bail!(
                "`id {flag} postgres` failed: {} (the server refuses to run as root, so an OS user `postgres` is needed)",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .with_context(|| format!("`id {flag} postgres` printed no number"))
    };
    Ok((id("-u")?, id("-g")?))
}

/// Location of `runuser` (util-linux), searched on PATH and in the sbin directories.
pub(super) fn find_runuser() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join("runuser"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| anyhow!("running as root but `runuser` (util-linux) was not found; it is needed to run PostgreSQL as user postgres"))
}

/// Whether a process with this pid exists and is not a zombie (a stopped postmaster
/// is reparented, and may stay a zombie for a while if its new parent reaps slowly).
pub(super) fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return match fs::read_to_string(format!("/proc/{pid}/stat")) {
            // "pid (comm) S ...": the state follows the last ')'.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        };
    }
    Command::new("kill")
        .arg("-0")
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Sends SIGKILL to a process we did not spawn (a postmaster left behind).
pub(super) fn kill_hard(pid: u32) {
    let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).stderr(Stdio::null()).status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes() {
        let cmd = Cmd::new("/bin/psql").arg("-c").arg("select 'x'").arg("").arg("plain");
        assert_eq!(cmd.display(), "/bin/psql -c 'select '\\''x'\\''' '' plain");
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn runs_and_times_out() {
        let dir = std::env::temp_dir().join(format!("conform-proc-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let runner = Runner::new(None, dir.clone(), dir.clone(), false);
        let out = runner.run(Cmd::new("echo").arg("hello")).unwrap();
        assert_eq!(out.stdout.trim(), "hello");
        let err = runner.run(Cmd::new("false")).unwrap_err();
        assert!(format!("{err:#}").contains("`false` exited with"), "{err:#}");
        let started = Instant::now();
        let err = runner.run(Cmd::new("sleep").arg("10").timeout(Duration::from_millis(200))).unwrap_err();
        assert!(format!("{err:#}").contains("did not finish"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(effective_uid().is_some());
        fs::remove_dir_all(&dir).unwrap();
    }
}
