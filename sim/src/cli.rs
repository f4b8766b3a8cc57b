//! The `walsim` command line.
//!
//! Exit codes (docs/cli.md): 0 = done, no invariant violated (`picture`:
//! the picture was written); 1 = an invariant was violated; 2 = bad input
//! (unknown key, bad value, missing or unreadable file, bad range) or an
//! I/O error; 3 = `replay` (or `picture FILE`) did not reproduce the
//! recorded run; 130 = `explore` was interrupted.

use crate::args::{Axis, SeedRange, Shard};
use crate::config;
use crate::report::{self, JsonlWriter, LogWriter, Tee};
use crate::results::Format;
use crate::run::{NoObserver, Observer, Outcome, RunOptions, run_seed};
use crate::{explore, merge, replay, shrink};
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Exit code: success (violations found by `explore` count as success).
pub const EXIT_OK: i32 = 0;
/// Exit code: an invariant was violated.
pub const EXIT_VIOLATION: i32 = 1;
/// Exit code: bad input or I/O error.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code: `replay` ran, but the run is not the recorded one (another
/// outcome, invariant, event count or trace_hash).
pub const EXIT_NOT_REPRODUCED: i32 = 3;
/// Exit code: `explore` stopped by Ctrl-C or SIGTERM (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "walsim",
    version,
    about = "Deterministic simulator of PostgreSQL primary/standby WAL replication"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one seed and report the outcome.
    Run(RunArgs),
    /// Show the configuration.
    Config(ConfigArgs),
    /// Built-in scenarios.
    Scenario(ScenarioArgs),
    /// Sweep seeds over a matrix of settings, in parallel (the main job).
    Explore(ExploreArgs),
    /// Replay a saved trace file exactly.
    Replay(ReplayArgs),
    /// Minimise a failing trace while the same invariant still fails.
    Shrink(ShrinkArgs),
    /// Draw a run (a trace file, or a seed with run options) as a
    /// space-time diagram: one self-contained HTML file (or --svg).
    Picture(PictureArgs),
    /// Combine shard results (explore --json) into one table.
    Merge(MergeArgs),
    /// Check the model against a real PostgreSQL primary/standby on loopback.
    Conform(ConformArgs),
    /// Runs to the first violation per planted bug (each rule off) and strategy.
    BenchSearch(BenchArgs),
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Override a setting for every cell (as for run).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Runs per (rule, strategy) before giving up.
    #[arg(long, default_value_t = 200)]
    budget: u64,
    /// Events per exhaustive window (the window strategy).
    #[arg(long, default_value_t = 4)]
    window: u32,
    /// Only these rules (comma-separated); default: every rule switch.
    #[arg(long, value_delimiter = ',')]
    rules: Vec<String>,
    /// Run each rule that has one in its home configuration (the settings
    /// or scenario its own test catches it in) instead of the defaults.
    #[arg(long)]
    homes: bool,
    /// Only these strategies (comma-separated); default: all of them.
    #[arg(long, value_delimiter = ',')]
    strategies: Vec<String>,
    /// Print JSON instead of the Markdown table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ConformArgs {
    /// Directory with initdb, pg_ctl, postgres, pg_basebackup, pg_rewind, psql
    /// (default: `pg_config --bindir`, else /usr/lib/postgresql/*/bin).
    #[arg(long, value_name = "DIR")]
    pg_bin: Option<PathBuf>,
    /// Run only this story (repeatable); default: all.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Keep the temporary data directories and server logs.
    #[arg(long)]
    keep_data: bool,
    /// Print every command run against the server.
    #[arg(long)]
    verbose: bool,
    /// Seeds the model runs each story with (it must agree with itself).
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Override a model setting (e.g. switch a rule off to see a disagreement).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run the real server only (no model, no comparison) and print what it did
    /// as one JSON object: every story's full outcome (messages with their lines,
    /// mechanism, positions, relations) and its comparable summary.
    #[arg(long, conflicts_with_all = ["seeds", "set"])]
    real_only: bool,
}

#[derive(Args, Debug)]
struct ScenarioArgs {
    #[command(subcommand)]
    command: ScenarioCommand,
}

#[derive(Subcommand, Debug)]
enum ScenarioCommand {
    /// One line per built-in scenario.
    List,
    /// Print a built-in scenario's TOML (a starting point for your own).
    Show { name: String },
}

/// Settings shared by commands that build a configuration.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigSource {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Override one setting (dotted key), e.g. --set synchronous_commit=local.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// What a run is made of, as `run` and `picture` take it: settings, a
/// scenario, the main phase's length.
#[derive(Args, Debug)]
struct RunSpec {
    #[command(flatten)]
    source: ConfigSource,
    /// A built-in scenario's name, or a scenario file (.toml): its settings
    /// and operator script, on top of --config; --set still applies last.
    #[arg(long, value_name = "NAME|FILE.toml")]
    scenario: Option<String>,
    /// Events in the main phase (overrides scheduler.steps).
    #[arg(long)]
    steps: Option<u64>,
}

impl RunSpec {
    /// The effective settings, and the scenario's `[scenario]` table if any.
    fn load(&self) -> Result<(walsim_model::Settings, Option<crate::scenario::Meta>), BadInput> {
        let (mut settings, meta) = load_settings(&self.source, self.scenario.as_deref())?;
        apply_steps(&mut settings, self.steps)?;
        Ok((settings, meta))
    }

    /// Whether any option was given.
    fn given(&self) -> bool {
        self.source.config.is_some()
            || !self.source.set.is_empty()
            || self.scenario.is_some()
            || self.steps.is_some()
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The seed of the scheduler's generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    spec: RunSpec,
    /// Print one PostgreSQL-style log line per event.
    #[arg(long)]
    log: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Write one JSON line per event with every node's positions.
    #[arg(long, value_name = "FILE")]
    trace_jsonl: Option<PathBuf>,
    /// Save the run as a trace file (replay, shrink, picture read it).
    #[arg(long, value_name = "FILE.walsim")]
    save_trace: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ConfigArgs {
    /// Print the complete default configuration as TOML (with --config or
    /// --set: the complete effective configuration).
    #[arg(long)]
    print_defaults: bool,
    #[command(flatten)]
    source: ConfigSource,
}

/// A failure to report on stderr with exit code 2.
pub struct BadInput(pub String);

impl<E: std::fmt::Display> From<E> for BadInput {
    fn from(e: E) -> Self {
        BadInput(e.to_string())
    }
}

/// Runs the CLI with `args` (including the program name), writing to the
/// given streams; returns the exit code. `main` is a thin wrapper, so
/// tests drive exactly this.
pub fn main_with(args: Vec<OsString>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_BAD_INPUT } else { EXIT_OK };
            let text = e.render().to_string();
            let _ = if e.use_stderr() { write!(err, "{text}") } else { write!(out, "{text}") };
            return code;
        }
    };
    let mut pipe = PipeWatch { inner: out, broken: false };
    let out: &mut dyn Write = &mut pipe;
    // The log may go to stderr (`--json --log 2>&1 | head -1`): watch it too.
    let mut err_pipe = PipeWatch { inner: err, broken: false };
    let err: &mut dyn Write = &mut err_pipe;
    let res = match cli.command {
        Command::Run(a) => cmd_run(a, out, err),
        Command::Config(a) => cmd_config(a, out),
        Command::Scenario(a) => cmd_scenario(a, out),
        Command::Explore(a) => cmd_explore(a, out, err),
        Command::BenchSearch(a) => cmd_bench(a, out, err),
        Command::Replay(a) => cmd_replay(a, out, err),
        Command::Shrink(a) => cmd_shrink(a, out, err),
        Command::Picture(a) => cmd_picture(a, out, err),
        Command::Merge(a) => cmd_merge(a, out),
        Command::Conform(a) => cmd_conform(a, out, err),
    };
    match res {
        Ok(code) => code,
        // The reader went away (`walsim run --log | head -1`): stop quietly,
        // as Unix filters do.
        Err(_) if pipe.broken || err_pipe.broken => EXIT_OK,
        Err(BadInput(msg)) => {
            let _ = writeln!(err_pipe, "walsim: {msg}");
            EXIT_BAD_INPUT
        }
    }
}

/// Standard output that notes when its reader has gone (EPIPE), so the
/// command's write error ends the process quietly with exit 0.
struct PipeWatch<'a> {
    inner: &'a mut dyn Write,
    broken: bool,
}

impl PipeWatch<'_> {
    fn note<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            self.broken = true;
        }
        r
    }
}

impl Write for PipeWatch<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.note(r)
    }
}

fn cmd_config(a: ConfigArgs, out: &mut dyn Write) -> Result<i32, BadInput> {
    let overridden = a.source.config.is_some() || !a.source.set.is_empty();
    if a.print_defaults && !overridden {
        write!(out, "{}", config::defaults_toml())?;
    } else if a.print_defaults {
        // --print-defaults with --config/--set: every setting, as the
        // defaults are printed, with the overrides applied.
        let s = config::load(a.source.config.as_deref(), &a.source.set)?;
        write!(out, "{}", config::effective_toml(&s))?;
    } else {
        let s = config::load(a.source.config.as_deref(), &a.source.set)?;
        write!(out, "{}", toml::to_string(&s)?)?;
    }
    Ok(EXIT_OK)
}

fn cmd_scenario(a: ScenarioArgs, out: &mut dyn Write) -> Result<i32, BadInput> {
    match a.command {
        ScenarioCommand::List => write!(out, "{}", crate::scenario::list())?,
        ScenarioCommand::Show { name } => {
            let (_, text) = crate::scenario::BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| BadInput(format!("no built-in scenario named {name}")))?;
            write!(out, "{text}")?;
        }
    }
    Ok(EXIT_OK)
}

/// Settings from `--config`, an optional `--scenario`, and `--set`; with
/// a scenario, also its `[scenario]` table (what the run should end in).
pub fn load_settings(
    source: &ConfigSource,
    scenario: Option<&str>,
) -> Result<(walsim_model::Settings, Option<crate::scenario::Meta>), BadInput> {
    match scenario {
        None => Ok((config::load(source.config.as_deref(), &source.set)?, None)),
        Some(s) => {
            let base = match &source.config {
                Some(p) => config::read_table(p)?.0,
                None => toml::Table::new(),
            };
            let sc = crate::scenario::load(s, base, &source.set)?;
            Ok((sc.settings, Some(sc.meta)))
        }
    }
}

/// `--steps N` (1 ≤ N ≤ 10^9) into `scheduler.steps`.
fn apply_steps(settings: &mut walsim_model::Settings, steps: Option<u64>) -> Result<(), BadInput> {
    if let Some(steps) = steps {
        if steps == 0 {
            return Err(BadInput("--steps must be at least 1".into()));
        }
        if steps > crate::args::MAX_STEPS {
            return Err(BadInput(format!(
                "--steps {steps} is more than {} (10^9 events take about a quarter of an hour; \
                 run more seeds instead)",
                crate::args::MAX_STEPS
            )));
        }
        settings.scheduler.steps = steps;
    }
    Ok(())
}

fn cmd_run(a: RunArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, BadInput> {
    let (settings, meta) = a.spec.load()?;
    let mut out = BufWriter::new(out);
    let opts = RunOptions { record: a.save_trace.is_some(), log: a.log, max_events: None };
    let mut jsonl = match &a.trace_jsonl {
        Some(p) => Some(JsonlWriter {
            out: BufWriter::new(
                std::fs::File::create(p)
                    .map_err(|e| BadInput(format!("cannot create {}: {e}", p.display())))?,
            ),
            error: None,
        }),
        None => None,
    };
    let style = settings.log.lsn_format;
    let result = {
        // With --json, stdout holds only the JSON: the log goes to stderr.
        let mut err = BufWriter::new(&mut *err);
        let log_to: &mut dyn Write = if a.json { &mut err } else { &mut out };
        let mut logw = LogWriter { out: log_to, style, error: None };
        let mut none = NoObserver;
        let mut observers: Vec<&mut dyn Observer> = Vec::new();
        if a.log {
            observers.push(&mut logw);
        }
        if let Some(j) = jsonl.as_mut() {
            observers.push(j);
        }
        let r = if observers.is_empty() {
            run_seed(&settings, a.seed, opts, &mut none)
        } else {
            run_seed(&settings, a.seed, opts, &mut Tee(observers))
        };
        if let Some(e) = logw.error {
            return Err(BadInput(format!("writing the log: {e}")));
        }
        err.flush()?;
        r
    };
    if let Some(mut j) = jsonl {
        if let Some(e) = j.error.take() {
            return Err(BadInput(format!("writing the JSONL trace: {e}")));
        }
        j.out.flush()?;
    }
    if let Some(path) = &a.save_trace {
        let note = format!("walsim run --seed {}", a.seed);
        crate::trace::Trace::of_run(&settings, &result, note).save(path).map_err(BadInput)?;
    }
    // A scenario says what its runs end in: check it (docs/scenarios.md).
    let failed = meta.as_ref().map(|m| m.check(&result)).unwrap_or_default();
    if a.json {
        let mut v = report::summary_json(&result, &settings);
        if let Some(m) = &meta {
            v["scenario"] = serde_json::json!({ "name": m.name, "expectations_failed": failed });
        }
        writeln!(out, "{v}")?;
    } else {
        write!(out, "{}", report::summary_text(&result))?;
    }
    out.flush()?;
    if let Some(m) = &meta {
        for f in &failed {
            writeln!(err, "walsim: scenario {}: expectation failed: {f}", m.name)?;
        }
    }
    Ok(if result.outcome == Outcome::Violation || !failed.is_empty() { EXIT_VIOLATION } else { EXIT_OK })
}

// ---- exploration at scale: explore, replay, shrink, merge ----

#[derive(Args, Debug)]
struct ExploreArgs {
    #[command(flatten)]
    source: ConfigSource,
    /// A matrix axis (repeatable; replaces the default matrix), e.g.
    /// --matrix synchronous_commit=local,on.
    #[arg(long = "matrix", value_name = "KEY=V1,V2")]
    matrix: Vec<Axis>,
    /// Seeds A..B (B excluded) or A..=B, in every cell.
    #[arg(long, value_name = "A..B", conflicts_with = "count")]
    seeds: Option<SeedRange>,
    /// Seeds 1..=N in every cell.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Print the results as JSON (timing figures under "perf").
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print the table as Markdown.
    #[arg(long)]
    markdown: bool,
    /// Save the traces of failing runs in DIR.
    #[arg(long, value_name = "DIR")]
    save_failures: Option<PathBuf>,
    /// Failures listed (and saved) per cell and invariant: the lowest seeds.
    #[arg(long, value_name = "N", default_value_t = 1)]
    save_limit: usize,
    /// Run only shard K of N of the seeds (1 ≤ K ≤ N).
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Run every seed with the configured fault rates (no swarm testing).
    #[arg(long)]
    no_swarm: bool,
    /// Exit 1 when any invariant was violated (for CI).
    #[arg(long)]
    fail_on_violation: bool,
    /// Enumerate every sequence of the next N choices (events and faults)
    /// around a trigger, instead of sweeping seeds (needs --around).
    #[arg(long, value_name = "N", requires = "around")]
    window: Option<u32>,
    /// Where the window goes: promote, crash, failback, or an event index.
    #[arg(long, value_name = "promote|crash|failback|power-loss|STEP", requires = "window")]
    around: Option<crate::window::Trigger>,
    /// Seeds of the random prefixes, one window each (default 1..=1).
    #[arg(long, value_name = "A..B", requires = "window")]
    prefix_seeds: Option<SeedRange>,
    /// A built-in scenario's name or a scenario file (with --window).
    #[arg(long, value_name = "NAME|FILE.toml", requires = "window")]
    scenario: Option<String>,
    /// Distinct states per window before it is cut (with --window).
    #[arg(long, value_name = "N", default_value_t = crate::window::DEFAULT_MAX_STATES)]
    max_states: u64,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// A trace file (explore --save-failures, shrink -o).
    file: PathBuf,
    /// Print one PostgreSQL-style log line per event.
    #[arg(long)]
    log: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ShrinkArgs {
    /// A failing trace file.
    file: PathBuf,
    /// Where to write the shrunk trace.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: PathBuf,
    /// Bound on replays tried.
    #[arg(long, value_name = "N", default_value_t = shrink::DEFAULT_MAX_ATTEMPTS)]
    max_attempts: u64,
    /// Print the shrunk run's log.
    #[arg(long)]
    log: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write the picture of the shrunk run (HTML, as `walsim picture`).
    #[arg(long, value_name = "OUT.html")]
    picture: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct PictureArgs {
    /// A trace file (explore --save-failures, shrink -o); without it, the
    /// run given by --seed and the run options.
    file: Option<PathBuf>,
    /// The seed of the run to draw (default 1).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    spec: RunSpec,
    /// Where to write the picture.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: PathBuf,
    /// Write a bare SVG file instead of an HTML page.
    #[arg(long)]
    svg: bool,
}

#[derive(Args, Debug)]
struct MergeArgs {
    /// Outputs of explore --json (one per shard).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print the merged results as JSON.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print the table as Markdown.
    #[arg(long)]
    markdown: bool,
}

fn format_of(json: bool, markdown: bool) -> Format {
    if json {
        Format::Json
    } else if markdown {
        Format::Markdown
    } else {
        Format::Text
    }
}

fn cmd_bench(a: BenchArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, BadInput> {
    use crate::bench;
    if a.budget == 0 || a.window == 0 || a.window > crate::window::MAX_WINDOW {
        return Err(BadInput(
            "bench-search: --budget must be at least 1 and --window between 1 and 32".into(),
        ));
    }
    let base = config::load(None, &a.set)?;
    let all = bench::rules_of(&base);
    let rules = if a.rules.is_empty() { all.clone() } else { a.rules.clone() };
    if let Some(bad) = rules.iter().find(|r| !all.contains(r)) {
        return Err(BadInput(format!(
            "bench-search: --rules {bad}: not a rule switch that is on (known: {})",
            all.join(", ")
        )));
    }
    // One line per cell on stderr as it finishes (the table can take a minute).
    let err = std::cell::RefCell::new(err);
    let cells = bench::bench(&a.set, &rules, a.budget, a.window, a.homes, &a.strategies, &|c| {
        let found = c.runs.map_or_else(|| format!("not found in {}", c.spent), |n| format!("{n} runs"));
        let _ = writeln!(err.borrow_mut(), "walsim bench-search: {} / {}: {found}", c.rule, c.strategy);
    })?;
    if a.json {
        writeln!(out, "{}", bench::json(&cells, a.budget, a.window))?;
    } else {
        write!(out, "{}", bench::markdown(&cells, a.budget, a.window))?;
    }
    Ok(EXIT_OK)
}

fn cmd_window(a: ExploreArgs, out: &mut dyn Write) -> Result<i32, BadInput> {
    use crate::window;
    let depth = a.window.expect("--window");
    if depth == 0 || depth > window::MAX_WINDOW {
        return Err(BadInput(format!("--window {depth}: must be between 1 and {}", window::MAX_WINDOW)));
    }
    if !a.matrix.is_empty() || a.seeds.is_some() || a.count.is_some() || a.shard.is_some() {
        return Err(BadInput(
            "--window runs one configuration: use --set/--scenario, and --prefix-seeds instead of --seeds/--count"
                .into(),
        ));
    }
    let (settings, _) = load_settings(&a.source, a.scenario.as_deref())?;
    let range = match a.prefix_seeds {
        Some(r) => r,
        None => SeedRange::first(1)?,
    };
    if range.len() > 1_000_000 {
        return Err(BadInput(format!("--prefix-seeds: {} windows is too many (at most 10^6)", range.len())));
    }
    let seeds: Vec<u64> = (0..range.len()).map(|i| range.start + i).collect();
    if let Some(dir) = &a.save_failures {
        explore::check_save_dir(dir)?;
    }
    let spec = window::WindowSpec {
        settings,
        depth,
        trigger: a.around.expect("--around"),
        seeds,
        max_states: a.max_states.max(1),
        stop_at_violation: false,
        max_sequences: u64::MAX,
    };
    let bar = explore::progress_spinner("states");
    let on_state = || {
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    let jobs = a.jobs.unwrap_or_else(explore::default_jobs);
    if jobs == 0 || jobs > crate::args::MAX_JOBS {
        return Err(BadInput(format!("--jobs {jobs}: must be between 1 and {}", crate::args::MAX_JOBS)));
    }
    let results =
        window::windows(&spec, a.save_failures.as_deref(), explore::stop_on_ctrl_c(), &on_state, jobs)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if a.json {
        writeln!(out, "{}", window::json(&spec, &results))?;
    } else {
        write!(out, "{}", window::text(&spec, &results))?;
    }
    let violated = results.iter().any(|(r, _)| !r.violating.is_empty());
    Ok(if results.iter().any(|(r, _)| r.interrupted) {
        EXIT_INTERRUPTED
    } else if a.fail_on_violation && violated {
        EXIT_VIOLATION
    } else {
        EXIT_OK
    })
}

fn cmd_explore(a: ExploreArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, BadInput> {
    if a.window.is_some() {
        return cmd_window(a, out);
    }
    let seeds = match (a.seeds, a.count) {
        (Some(s), _) => s,
        (None, Some(n)) => SeedRange::first(n)?,
        (None, None) => explore::Spec::default().seeds,
    };
    let spec = explore::Spec {
        config: a.source.config,
        sets: a.source.set,
        matrix: a.matrix,
        seeds,
        shard: a.shard.unwrap_or(Shard::ALL),
        swarm: !a.no_swarm,
        save_limit: a.save_limit,
    };
    let jobs = a.jobs.unwrap_or_else(explore::default_jobs);
    if jobs > crate::args::MAX_JOBS {
        return Err(BadInput(format!(
            "--jobs {jobs} is more than {}: runs are CPU-bound, so threads beyond the cores ({}) only cost memory",
            crate::args::MAX_JOBS,
            explore::default_jobs()
        )));
    }
    if let Some(w) = seeds.size_warning() {
        writeln!(err, "walsim: {w}")?;
    }
    let res = explore::explore(&spec, jobs, a.save_failures.as_deref())?;
    write!(out, "{}", res.render(format_of(a.json, a.markdown)))?;
    Ok(if res.interrupted {
        EXIT_INTERRUPTED
    } else if a.fail_on_violation && res.totals.violations > 0 {
        EXIT_VIOLATION
    } else {
        EXIT_OK
    })
}

fn cmd_replay(a: ReplayArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, BadInput> {
    let mut out = BufWriter::new(out);
    let mut err = BufWriter::new(err);
    // With --json, stdout holds only the JSON: the log goes to stderr.
    let log_to: &mut dyn Write = if a.json { &mut err } else { &mut out };
    let r = replay::replay(&a.file, a.log.then_some(log_to))?;
    err.flush()?;
    if let Some(w) = r.version_warning() {
        writeln!(err, "{w}")?;
    }
    if a.json {
        writeln!(out, "{}", r.json(&a.file))?;
    } else {
        write!(out, "{}", r.text(&a.file))?;
    }
    out.flush()?;
    Ok(if !r.reproduced() {
        EXIT_NOT_REPRODUCED
    } else if r.result.outcome == Outcome::Violation {
        EXIT_VIOLATION
    } else {
        EXIT_OK
    })
}

fn cmd_shrink(a: ShrinkArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, BadInput> {
    let shrunk = shrink::shrink_file(&a.file, &a.output, a.max_attempts)?;
    let mut out = BufWriter::new(out);
    if a.log {
        // With --json, stdout holds only the JSON: the log goes to stderr.
        let mut err = BufWriter::new(err);
        let log_to: &mut dyn Write = if a.json { &mut err } else { &mut out };
        replay::replay(&a.output, Some(log_to))?;
        err.flush()?;
    }
    if let Some(path) = &a.picture {
        let trace = crate::trace::Trace::load(&a.output)?;
        let settings = trace.settings().map_err(|e| BadInput(format!("{}: {e}", a.output.display())))?;
        let name = a.output.display().to_string();
        let meta = crate::picture::Meta {
            title: format!("{name} (shrunk from {}, seed {})", a.file.display(), trace.seed),
            command: format!(
                "walsim picture {}{} -o {}",
                shell_word(&name),
                if path.extension().is_some_and(|e| e == "svg") { " --svg" } else { "" },
                shell_word(&path.display().to_string())
            ),
            settings: crate::picture::settings_line(&settings),
        };
        let (pic, _) = crate::picture::of_trace(&trace, &settings, &meta);
        // OUT.svg: the bare SVG, as `walsim picture --svg`.
        write_picture(&pic, path.extension().is_some_and(|e| e == "svg"), path)?;
    }
    if a.json {
        let mut v = shrunk.json(&a.output);
        if let Some(path) = &a.picture {
            v["picture"] = serde_json::json!(path.display().to_string());
        }
        writeln!(out, "{v}")?;
    } else {
        write!(out, "{}", shrunk.text(&a.output))?;
        if let Some(path) = &a.picture {
            writeln!(out, "picture: {}", path.display())?;
        }
    }
    out.flush()?;
    Ok(EXIT_OK)
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
    if plain { w.to_string() } else { format!("'{}'", w.replace('\'', "'\\''")) }
}

fn write_picture(p: &crate::picture::Picture, svg: bool, path: &std::path::Path) -> Result<usize, BadInput> {
    let format = if svg { crate::picture::Format::Svg } else { crate::picture::Format::Html };
    let text = p.render(format);
    std::fs::write(path, &text).map_err(|e| BadInput(format!("cannot write {}: {e}", path.display())))?;
    Ok(text.len())
}

fn cmd_picture(a: PictureArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, BadInput> {
    use crate::picture::{self, Meta};
    let out_word = shell_word(&a.output.display().to_string());
    let svg_flag = if a.svg { " --svg" } else { "" };
    let (pic, result, reproduced) = match &a.file {
        Some(file) => {
            if a.seed.is_some() || a.spec.given() {
                return Err(BadInput(format!(
                    "{}: a trace file holds its own settings and draws; give either FILE or --seed with \
                     --config/--set/--scenario/--steps, not both",
                    file.display()
                )));
            }
            let trace = crate::trace::Trace::load(file)?;
            let settings = trace.settings().map_err(|e| BadInput(format!("{}: {e}", file.display())))?;
            let name = file.display().to_string();
            let meta = Meta {
                title: format!("{name} (seed {}, {})", trace.seed, trace.note),
                command: format!("walsim picture {}{svg_flag} -o {out_word}", shell_word(&name)),
                settings: picture::settings_line(&settings),
            };
            let (pic, r) = picture::of_trace(&trace, &settings, &meta);
            let diff = trace.differences(&r);
            if !diff.is_empty() {
                writeln!(
                    err,
                    "walsim: {name}: the replay is not the recorded run ({}); the picture shows the replay",
                    diff.join("; ")
                )?;
            }
            (pic, r, diff.is_empty())
        }
        None => {
            let (settings, _) = a.spec.load()?;
            let seed = a.seed.unwrap_or(1);
            let mut cmd = vec!["walsim".to_string(), "picture".to_string()];
            let mut title = format!("seed {seed}");
            if let Some(s) = &a.spec.scenario {
                cmd.push(format!("--scenario {}", shell_word(s)));
                title.push_str(&format!(", scenario {s}"));
            }
            if let Some(c) = &a.spec.source.config {
                cmd.push(format!("--config {}", shell_word(&c.display().to_string())));
            }
            for kv in &a.spec.source.set {
                cmd.push(format!("--set {}", shell_word(kv)));
                title.push_str(&format!(", {kv}"));
            }
            if let Some(st) = a.spec.steps {
                cmd.push(format!("--steps {st}"));
            }
            cmd.push(format!("--seed {seed}{svg_flag} -o {out_word}"));
            let meta = Meta { title, command: cmd.join(" "), settings: picture::settings_line(&settings) };
            let (pic, r) = picture::of_seed(&settings, seed, &meta);
            (pic, r, true)
        }
    };
    let bytes = write_picture(&pic, a.svg, &a.output)?;
    let what = match result.invariant() {
        Some(inv) => format!("violation of {inv}"),
        None => result.outcome.name().to_string(),
    };
    writeln!(
        out,
        "walsim picture: wrote {} ({} events, {} marks, {} kB); outcome: {what}",
        a.output.display(),
        result.events,
        pic.marks().len(),
        bytes.div_ceil(1024)
    )?;
    Ok(if reproduced { EXIT_OK } else { EXIT_NOT_REPRODUCED })
}

fn cmd_merge(a: MergeArgs, out: &mut dyn Write) -> Result<i32, BadInput> {
    let inputs = a
        .files
        .iter()
        .map(|p| merge::load(p).map(|r| (p.display().to_string(), r)))
        .collect::<Result<Vec<_>, String>>()?;
    let merged = merge::merge(&inputs)?;
    write!(out, "{}", merged.render(format_of(a.json, a.markdown)))?;
    Ok(EXIT_OK)
}

/// `walsim conform --real-only`: the real side of the stories, as JSON.
fn real_only(
    install: &crate::conform::PgInstall,
    stories: &[crate::conform::Story],
    opts: &crate::conform::Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, BadInput> {
    use crate::conform;
    let mut outcomes = Vec::new();
    for &story in stories {
        let _ = writeln!(err, "walsim conform: {} (real server only)", story.name());
        match conform::run_story(install, story, opts) {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) if e.downcast_ref::<conform::Interrupted>().is_some() => {
                let _ =
                    writeln!(err, "walsim conform: interrupted; servers stopped and temporary data removed");
                return Ok(EXIT_INTERRUPTED);
            }
            Err(e) => return Err(BadInput(format!("conformance run failed: {e:#}"))),
        }
    }
    let v = serde_json::json!({
        "postgres_version": install.version,
        "stories": outcomes.iter().map(|o| serde_json::json!({
            "name": o.story.name(),
            "summary": crate::conformance::RealSummary::of(o),
            "outcome": o,
        })).collect::<Vec<_>>(),
    });
    writeln!(out, "{v}")?;
    Ok(EXIT_OK)
}

fn cmd_conform(a: ConformArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, BadInput> {
    use crate::conform::{self, Story};
    let stories: Vec<Story> = if a.scenarios.is_empty() {
        Story::ALL.to_vec()
    } else {
        a.scenarios
            .iter()
            .map(|n| {
                Story::from_name(n).ok_or_else(|| {
                    let names: Vec<&str> = Story::ALL.iter().map(|s| s.name()).collect();
                    BadInput(format!(
                        "--scenario {n}: no such conformance story (stories: {})",
                        names.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    if a.seeds == 0 {
        return Err(BadInput("--seeds must be at least 1".into()));
    }
    // Settings errors are input errors: check them before starting servers.
    if !a.real_only
        && let Some(&story) = stories.iter().find(|&&s| crate::conformance::has_scenario(s))
    {
        crate::conformance::model_outcome(story, 1, &a.set).map_err(BadInput)?;
    }
    let install = conform::find_install(a.pg_bin.as_deref()).map_err(|e| BadInput(format!("{e:#}")))?;
    conform::install_interrupt_handler();
    let opts = conform::Options { keep_data: a.keep_data, verbose: a.verbose };
    if a.real_only {
        return real_only(&install, &stories, &opts, out, err);
    }
    let mut progress = |name: &str| {
        let _ = writeln!(err, "walsim conform: {name}");
    };
    let rows = match crate::conformance::run_suite(&install, &stories, &opts, a.seeds, &a.set, &mut progress)
    {
        Ok(rows) => rows,
        Err(e) if e.downcast_ref::<conform::Interrupted>().is_some() => {
            let _ = writeln!(err, "walsim conform: interrupted; servers stopped and temporary data removed");
            return Ok(EXIT_INTERRUPTED);
        }
        Err(e) => return Err(BadInput(format!("conformance run failed: {e:#}"))),
    };
    if a.json {
        let v = serde_json::json!({
            "postgres_version": install.version,
            "scenarios": rows.iter().map(|r| serde_json::json!({
                "name": r.name,
                "postgres": r.postgres,
                "walsim": r.walsim,
                "agree": r.agree,
                "differences": r.differences,
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
    } else {
        write!(out, "{}", crate::conformance::table(&rows, &install.version))?;
    }
    Ok(if rows.iter().all(|r| r.agree) { EXIT_OK } else { EXIT_VIOLATION })
}
