//! `walsim picture`: a space-time diagram of one run, as one
//! self-contained HTML file (inline SVG, CSS and a little JavaScript; no
//! network fetches) or a bare SVG file.
//!
//! One horizontal lane per node, time (event index) left to right. Each
//! lane has a band with the node's role and timeline, and below it the
//! node's WAL positions and page LSNs as step lines against LSN, on one
//! LSN scale shared by all lanes (long empty LSN ranges, such as a
//! `pg_switch_wal()` jump, are cut out and marked). Messages between nodes
//! are arrows from the step that queued them to the step that delivered
//! them. Operator steps, crashes, power losses, the fork point, refusals
//! and violations are marks with their PostgreSQL message.
//!
//! The [`Recorder`] is an [`Observer`]: it draws from the same stream as
//! `--trace-jsonl` (each node's positions come from
//! [`crate::view::NodeView`]) and the same log lines as `--log`
//! ([`crate::report::step_lines`]). Everything is a function of the run:
//! no clock, no hash-map order, coordinates printed with fixed precision,
//! so the same run gives the same bytes.

use crate::report::{step_lines, timestamp};
use crate::run::{Observer, Phase, RunResult};
use crate::view::{self, NodeView};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use walsim_model::log::Process;
use walsim_model::lsn::{Lsn, LsnFormat, Tli};
use walsim_model::{Cluster, CrashKind, Event};

/// What to write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// An HTML page: the SVG, a list of the marks, and every event's log
    /// lines on hover.
    Html,
    /// The bare SVG (hover text on the marks only).
    Svg,
}

/// Which way a message travels on a replication connection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Dir {
    /// WAL, upstream → standby.
    ToStandby,
    /// Standby status updates, standby → upstream.
    ToUpstream,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MsgKind {
    Wal,
    Feedback,
    /// START_REPLICATION (the walreceiver connects).
    Connect,
    /// The walsender's ERROR back to a walreceiver.
    Refusal,
}

#[derive(Clone, Debug)]
struct Message {
    kind: MsgKind,
    from: usize,
    to: usize,
    sent: u64,
    /// The step that delivered it; for a lost message, the step that
    /// dropped it.
    end: u64,
    lost: bool,
    /// Still queued when the run ended.
    pending: bool,
}

/// Kinds of marks, in drawing order (later on top).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum MarkKind {
    Start,
    Heal,
    Partition,
    Disconnect,
    Operator,
    Crash,
    PowerLoss,
    Fork,
    Observation,
    Refusal,
    Violation,
}

impl MarkKind {
    pub fn class(self) -> &'static str {
        match self {
            MarkKind::Start => "start",
            MarkKind::Heal => "heal",
            MarkKind::Partition => "partition",
            MarkKind::Disconnect => "disconnect",
            MarkKind::Operator => "operator",
            MarkKind::Crash => "crash",
            MarkKind::PowerLoss => "power-loss",
            MarkKind::Fork => "fork",
            MarkKind::Observation => "observation",
            MarkKind::Refusal => "refusal",
            MarkKind::Violation => "violation",
        }
    }

    fn title(self) -> &'static str {
        match self {
            MarkKind::Start => "start",
            MarkKind::Heal => "partition heals",
            MarkKind::Partition => "partition",
            MarkKind::Disconnect => "disconnect",
            MarkKind::Operator => "operator",
            MarkKind::Crash => "crash",
            MarkKind::PowerLoss => "power loss",
            MarkKind::Fork => "fork point",
            MarkKind::Observation => "observation",
            MarkKind::Refusal => "refusal",
            MarkKind::Violation => "violation",
        }
    }

    /// Marks whose label is long and always shown in full.
    fn is_message(self) -> bool {
        matches!(self, MarkKind::Refusal | MarkKind::Violation | MarkKind::Observation)
    }
}

/// Something that happened at one step on one node.
#[derive(Clone, Debug)]
pub struct Mark {
    pub step: u64,
    pub node: usize,
    pub kind: MarkKind,
    pub label: String,
    /// The fork point's LSN.
    pub lsn: Option<Lsn>,
}

struct StepRec {
    event: Event,
    phase: Phase,
    /// `--log`'s lines for the step.
    lines: Vec<String>,
    nodes: Vec<NodeView>,
}

/// Collects a run for the picture (an [`Observer`]; the run must log,
/// `RunOptions { log: true, .. }`, for the hover text).
pub struct Recorder {
    style: LsnFormat,
    steps: Vec<StepRec>,
    /// Messages queued and not yet delivered, by connection and direction:
    /// the step that queued each.
    queued: BTreeMap<(u8, u8, Dir), VecDeque<u64>>,
    messages: Vec<Message>,
    marks: Vec<Mark>,
    refusals_seen: usize,
    observations_seen: usize,
    forks_seen: BTreeSet<Tli>,
    /// Events the run had (the picture keeps the first `limit`).
    seen: u64,
    limit: usize,
}

/// The picture draws at most this many events (about 7 MB of HTML); a
/// longer run is drawn up to there, and the page says so.
pub const MAX_EVENTS: usize = 50_000;

impl Recorder {
    pub fn new(style: LsnFormat) -> Recorder {
        Recorder {
            style,
            steps: Vec::new(),
            queued: BTreeMap::new(),
            messages: Vec::new(),
            marks: Vec::new(),
            refusals_seen: 0,
            observations_seen: 0,
            forks_seen: BTreeSet::new(),
            seen: 0,
            limit: MAX_EVENTS,
        }
    }

    /// Keeps only the first `limit` events (default [`MAX_EVENTS`]).
    pub fn with_limit(mut self, limit: usize) -> Recorder {
        self.limit = limit;
        self
    }

    fn mark(&mut self, step: u64, node: usize, kind: MarkKind, label: String) {
        let label = self.styled(label);
        self.marks.push(Mark { step, node, kind, label, lsn: None });
    }

    /// LSNs in a message as `log.lsn_format` asks (as `--log` prints them).
    fn styled(&self, s: String) -> String {
        match self.style {
            LsnFormat::Classic => s,
            LsnFormat::Padded => crate::report::repad_lsns(&s),
        }
    }

    /// Pairs queued messages with deliveries and losses, FIFO per
    /// connection and direction, from the queue lengths after the step.
    fn track_messages(&mut self, step: u64, ev: &Event, cluster: &Cluster) {
        if let Event::Deliver { node, from } = *ev {
            let (key, kind) = if self.queued.get(&(from, node, Dir::ToStandby)).is_some_and(|q| !q.is_empty())
            {
                ((from, node, Dir::ToStandby), MsgKind::Wal)
            } else {
                ((node, from, Dir::ToUpstream), MsgKind::Feedback)
            };
            if let Some(sent) = self.queued.get_mut(&key).and_then(VecDeque::pop_front) {
                let (from, to) = (usize::from(from), usize::from(node));
                self.messages.push(Message { kind, from, to, sent, end: step, lost: false, pending: false });
            }
        }
        let mut live: BTreeMap<(u8, u8, Dir), usize> = BTreeMap::new();
        for c in cluster.connections() {
            live.insert((c.upstream, c.downstream, Dir::ToStandby), c.to_standby.len());
            live.insert((c.upstream, c.downstream, Dir::ToUpstream), c.to_upstream.len());
        }
        for (&key, &len) in &live {
            let q = self.queued.entry(key).or_default();
            // Fewer queued than known: the connection was replaced within
            // the step, and what was in flight is lost.
            while q.len() > len {
                let sent = q.pop_front().expect("non-empty");
                self.messages.push(lost(key, sent, step));
            }
            while q.len() < len {
                q.push_back(step);
            }
        }
        let gone: Vec<(u8, u8, Dir)> =
            self.queued.keys().filter(|k| !live.contains_key(k)).copied().collect();
        for key in gone {
            for sent in self.queued.remove(&key).unwrap_or_default() {
                self.messages.push(lost(key, sent, step));
            }
        }
    }

    /// Marks for what the step did beyond moving positions.
    fn track_marks(&mut self, step: u64, ev: &Event, raw: &[walsim_model::log::LogLine], cluster: &Cluster) {
        let me = usize::from(ev.node());
        match *ev {
            Event::Operator { .. } => {
                let label = raw
                    .iter()
                    .find(|l| l.process == Process::Operator)
                    .map(|l| l.message.clone())
                    .unwrap_or_else(|| without_node(&ev.to_string()));
                self.mark(step, me, MarkKind::Operator, label);
            }
            Event::Crash { kind: CrashKind::Immediate, .. } => {
                self.mark(step, me, MarkKind::Crash, "crash".into())
            }
            Event::Crash { kind: CrashKind::PowerLoss, .. } => {
                self.mark(step, me, MarkKind::PowerLoss, "power loss".into())
            }
            Event::Start { .. } => self.mark(step, me, MarkKind::Start, "pg_ctl start".into()),
            Event::Disconnect { .. } => {
                self.mark(step, me, MarkKind::Disconnect, "replication connection drops".into())
            }
            Event::Partition { node, peer } => {
                let label = format!("partition node{} | node{}", node + 1, peer + 1);
                self.mark(step, usize::from(node), MarkKind::Partition, label.clone());
                self.mark(step, usize::from(peer), MarkKind::Partition, label);
            }
            Event::Heal { node, peer } => {
                let label = format!("partition node{} | node{} heals", node + 1, peer + 1);
                self.mark(step, usize::from(node), MarkKind::Heal, label.clone());
                self.mark(step, usize::from(peer), MarkKind::Heal, label);
            }
            Event::Connect { node } => {
                if let Some(up) = cluster.nodes[usize::from(node)].upstream {
                    let (from, to) = (usize::from(node), usize::from(up));
                    self.messages.push(Message {
                        kind: MsgKind::Connect,
                        from,
                        to,
                        sent: step,
                        end: step,
                        lost: false,
                        pending: false,
                    });
                }
            }
            _ => {}
        }
        // A new timeline's history file on the node that created it: the
        // fork point is its switch point.
        for n in &cluster.nodes {
            if n.tli > 1
                && !self.forks_seen.contains(&n.tli)
                && n.status != walsim_model::node::Status::Down
                && let Some(e) = n.history.entries(n.tli).last()
            {
                self.forks_seen.insert(n.tli);
                let label = format!(
                    "fork point {}: timeline {} ends, timeline {} begins ({}: {}\t{}\t{})",
                    e.switchpoint,
                    e.tli,
                    n.tli,
                    walsim_model::timeline::History::file_name(n.tli),
                    e.tli,
                    e.switchpoint,
                    e.reason
                );
                let (node, label) = (usize::from(n.id), self.styled(label));
                self.marks.push(Mark { step, node, kind: MarkKind::Fork, label, lsn: Some(e.switchpoint) });
            }
        }
        for r in &cluster.refusals[self.refusals_seen..] {
            let node = cluster.nodes.iter().position(|n| n.name == r.node).unwrap_or(me);
            self.marks.push(Mark {
                step,
                node,
                kind: MarkKind::Refusal,
                label: self.styled(format!("{} refused: {}", r.node, r.message)),
                lsn: None,
            });
            if let Event::Connect { node: d } = *ev
                && usize::from(d) == node
                && let Some(up) = cluster.nodes[node].upstream
            {
                let from = usize::from(up);
                self.messages.push(Message {
                    kind: MsgKind::Refusal,
                    from,
                    to: node,
                    sent: step,
                    end: step,
                    lost: false,
                    pending: false,
                });
            }
        }
        self.refusals_seen = cluster.refusals.len();
        for o in &cluster.observations[self.observations_seen..] {
            let node = o.node.map_or(me, usize::from);
            self.mark(
                step,
                node,
                MarkKind::Observation,
                format!("observed (not expected to hold here): {o}"),
            );
        }
        self.observations_seen = cluster.observations.len();
    }

    /// The picture of the recorded run.
    pub fn finish(mut self, result: &RunResult, meta: &Meta) -> Picture {
        if let Some(v) = &result.violation
            && let Some(last) = self.steps.len().checked_sub(1)
            && self.seen as usize == self.steps.len()
        {
            let node = v.node.map_or(usize::from(self.steps[last].event.node()), usize::from);
            self.mark(last as u64, node, MarkKind::Violation, format!("VIOLATION of {v}"));
        }
        // Messages still queued when the run ended: in flight to the end.
        let end = self.steps.len() as u64;
        for (key, q) in std::mem::take(&mut self.queued) {
            for sent in q {
                let mut m = lost(key, sent, end);
                (m.lost, m.pending) = (false, true);
                self.messages.push(m);
            }
        }
        Picture { rec: self, meta: meta.clone(), outcome: outcome_line(result) }
    }
}

fn lost((up, down, dir): (u8, u8, Dir), sent: u64, step: u64) -> Message {
    let (from, to, kind) = match dir {
        Dir::ToStandby => (up, down, MsgKind::Wal),
        Dir::ToUpstream => (down, up, MsgKind::Feedback),
    };
    Message {
        kind,
        from: usize::from(from),
        to: usize::from(to),
        sent,
        end: step,
        lost: true,
        pending: false,
    }
}

/// `node2 operator step 1` → `operator step 1`.
fn without_node(s: &str) -> String {
    match s.split_once(' ') {
        Some((first, rest)) if first.starts_with("node") => rest.to_string(),
        _ => s.to_string(),
    }
}

fn outcome_line(r: &RunResult) -> String {
    match &r.violation {
        Some(v) => format!("violation of {v}"),
        None => format!("{}: {}", r.outcome.name(), r.detail),
    }
}

impl Observer for Recorder {
    fn step(&mut self, step: u64, phase: Phase, ev: &Event, _arg: Option<u64>, cluster: &mut Cluster) {
        let raw: Vec<walsim_model::log::LogLine> = cluster.log.drain().collect();
        self.seen += 1;
        if self.steps.len() >= self.limit {
            return;
        }
        let lines = step_lines(step, ev, &raw, self.style);
        self.track_messages(step, ev, cluster);
        self.track_marks(step, ev, &raw, cluster);
        self.steps.push(StepRec { event: *ev, phase, lines, nodes: view::nodes(cluster) });
    }
}

/// What the page says about the run, besides the picture.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// `seed 1, scenario blog-failback-commit`.
    pub title: String,
    /// The command that reproduces the run.
    pub command: String,
    /// The settings that matter most, one line.
    pub settings: String,
}

/// A recorded run, ready to render.
pub struct Picture {
    rec: Recorder,
    meta: Meta,
    outcome: String,
}

// ---------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------

const LEFT: f64 = 150.0;
const RIGHT: f64 = 40.0;
const HEADER: f64 = 78.0;
const BAND: f64 = 20.0;
const PLOT: f64 = 160.0;
const GAP: f64 = 46.0;
const AXIS: f64 = 40.0;
/// Target width of the time axis.
const PLOT_W: f64 = 1300.0;
/// Runs longer than this get idle stretches compressed.
const COMPRESS_ABOVE: usize = 700;
/// Steps kept at full width on each side of something worth seeing.
const NEAR: usize = 12;
/// Width of a step in a compressed stretch, relative to a full one.
const QUIET: f64 = 0.2;
const CHAR_W: f64 = 6.7;
/// Width given to the state after the last event.
const TAIL: f64 = 18.0;
const ROW_H: f64 = 13.0;
/// At most this many label rows above a lane.
const MAX_ROWS: usize = 16;

/// A lane's band text: `primary · TLI 2`, `crash recovery · TLI 1`, `down`.
fn role_text(status: &str, tli: Tli) -> String {
    match status {
        "down" => "down".to_string(),
        "recovery" => format!("crash recovery · TLI {tli}"),
        _ => format!("{status} · TLI {tli}"),
    }
}

/// Formats a coordinate with at most one decimal (`12`, `12.5`).
fn n1(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() { format!("{}", r as i64) } else { format!("{r:.1}") }
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(c),
        }
    }
    o
}

/// Event index → x.
struct TimeMap {
    /// x of each step's start; one more entry for the end.
    xs: Vec<f64>,
    /// Compressed stretches (first step, last step + 1).
    quiet: Vec<(usize, usize)>,
    factor: f64,
}

impl TimeMap {
    fn new(n: usize, interesting: &[bool]) -> TimeMap {
        let mut weight = vec![1.0; n];
        if n > COMPRESS_ABOVE {
            let mut near = vec![false; n];
            for (i, _) in interesting.iter().enumerate().filter(|(_, b)| **b) {
                for flag in &mut near[i.saturating_sub(NEAR)..(i + NEAR + 1).min(n)] {
                    *flag = true;
                }
            }
            for (w, keep) in weight.iter_mut().zip(&near) {
                if !keep {
                    *w = QUIET;
                }
            }
        }
        let total: f64 = weight.iter().sum::<f64>().max(1.0);
        let scale = (PLOT_W / total).clamp(0.5, 14.0);
        let mut xs = Vec::with_capacity(n + 1);
        let mut x = LEFT;
        for w in &weight {
            xs.push(x);
            x += w * scale;
        }
        // The state after the last event gets room of its own, so a value
        // that changed at the very end (often the violation) shows.
        xs.push(x + if n > 0 { TAIL } else { 0.0 });
        let mut quiet = Vec::new();
        let mut i = 0;
        while i < n {
            if weight[i] < 1.0 {
                let s = i;
                while i < n && weight[i] < 1.0 {
                    i += 1;
                }
                if i - s >= 2 * NEAR {
                    quiet.push((s, i));
                }
            } else {
                i += 1;
            }
        }
        TimeMap { xs, quiet, factor: 1.0 / QUIET }
    }

    fn x(&self, step: u64) -> f64 {
        self.xs[(step as usize).min(self.xs.len() - 1)]
    }

    fn end(&self) -> f64 {
        *self.xs.last().expect("at least one entry")
    }
}

/// LSN → height within a plot, with long empty ranges cut out.
struct LsnMap {
    /// Continuous ranges of LSNs, ascending.
    segments: Vec<Seg>,
}

/// A continuous LSN range and where it is drawn.
#[derive(Clone, Copy, Debug)]
struct Seg {
    a: u64,
    b: u64,
    /// Height of `a` above the plot's bottom.
    base: f64,
    /// Height of the range in pixels.
    h: f64,
}

const BREAK_PX: f64 = 12.0;
const PLOT_PAD: f64 = 6.0;
/// A continuous range is at least this high, however few bytes it spans.
const MIN_SEG: f64 = 24.0;

impl LsnMap {
    fn new(values: &BTreeSet<u64>) -> LsnMap {
        let v: Vec<u64> = values.iter().copied().collect();
        let room0 = PLOT - 2.0 * PLOT_PAD;
        if v.is_empty() {
            return LsnMap { segments: vec![Seg { a: 0, b: 0, base: PLOT_PAD, h: room0 }] };
        }
        // Cut the largest empty range while it is more than 40% of what
        // is left (at most 3 cuts).
        // A cut must also be far wider than a typical step between values.
        let mut gaps: Vec<u64> = v.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        let typical = gaps.get(gaps.len() / 2).copied().unwrap_or(0);
        let mut cuts: BTreeSet<usize> = BTreeSet::new();
        for _ in 0..3 {
            let span = v[v.len() - 1] - v[0];
            let cut: u64 = cuts.iter().map(|&i| v[i + 1] - v[i]).sum();
            let left = span - cut;
            let best = (0..v.len() - 1)
                .filter(|i| !cuts.contains(i))
                .max_by_key(|&i| (v[i + 1] - v[i], usize::MAX - i));
            match best {
                Some(i) if v[i + 1] - v[i] > 16 * typical && (v[i + 1] - v[i]) as f64 > 0.4 * left as f64 => {
                    cuts.insert(i);
                }
                _ => break,
            }
        }
        let mut ranges = Vec::new();
        let mut start = v[0];
        for &i in &cuts {
            ranges.push((start, v[i]));
            start = v[i + 1];
        }
        ranges.push((start, v[v.len() - 1]));
        // Heights in proportion to the bytes spanned, but none below
        // MIN_SEG.
        let room = room0 - BREAK_PX * (ranges.len() - 1) as f64;
        let mut fixed = vec![false; ranges.len()];
        let mut heights = vec![0.0; ranges.len()];
        for _ in 0..=ranges.len() {
            let free: u64 = ranges.iter().zip(&fixed).filter(|(_, f)| !**f).map(|(r, _)| r.1 - r.0).sum();
            let nfixed = fixed.iter().filter(|f| **f).count() as f64;
            let ppb = if free == 0 { 0.0 } else { (room - MIN_SEG * nfixed) / free as f64 };
            let mut changed = false;
            for (k, r) in ranges.iter().enumerate() {
                if fixed[k] {
                    heights[k] = MIN_SEG;
                } else if ranges.len() > 1 && ((r.1 - r.0) as f64 * ppb) < MIN_SEG {
                    fixed[k] = true;
                    changed = true;
                } else {
                    heights[k] = (r.1 - r.0) as f64 * ppb;
                }
            }
            if !changed {
                break;
            }
        }
        if ranges.len() == 1 {
            heights[0] = room;
        }
        let mut base = PLOT_PAD;
        let mut segments = Vec::new();
        for (&(a, b), &h) in ranges.iter().zip(&heights) {
            segments.push(Seg { a, b, base, h });
            base += h + BREAK_PX;
        }
        LsnMap { segments }
    }

    /// Height above the plot's bottom.
    fn h(&self, l: u64) -> f64 {
        let within = |s: &Seg, l: u64| {
            if s.b == s.a {
                s.base + s.h / 2.0
            } else {
                s.base + (l.clamp(s.a, s.b) - s.a) as f64 / (s.b - s.a) as f64 * s.h
            }
        };
        for (k, s) in self.segments.iter().enumerate() {
            if l <= s.b || k == self.segments.len() - 1 {
                return within(s, l);
            }
            let next = self.segments[k + 1];
            if l < next.a {
                // Inside a cut: within the break.
                let frac = (l - s.b) as f64 / (next.a - s.b) as f64;
                return s.base + s.h + frac * BREAK_PX;
            }
        }
        PLOT / 2.0
    }

    /// Heights of the breaks (the middle of each cut), with the LSN
    /// range each cuts out.
    fn breaks(&self) -> Vec<(f64, (u64, u64))> {
        self.segments.windows(2).map(|w| (w[0].base + w[0].h + BREAK_PX / 2.0, (w[0].b, w[1].a))).collect()
    }

    /// Axis ticks: LSNs at round hexadecimal values, at least 24 px apart.
    fn ticks(&self) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        let mut last_h = f64::NEG_INFINITY;
        for s in &self.segments {
            let mut cands = vec![s.a];
            if s.b > s.a {
                let ppb = s.h / (s.b - s.a) as f64;
                let want = (30.0 / ppb).max(1.0) as u64;
                let step = want.next_power_of_two().max(8);
                let mut t = s.a.div_ceil(step) * step;
                while t < s.b {
                    cands.push(t);
                    t += step;
                }
                cands.push(s.b);
            }
            for t in cands {
                let h = self.h(t);
                if h - last_h >= 24.0 || out.is_empty() {
                    out.push(t);
                    last_h = h;
                } else if t == s.b && h - last_h >= 12.0 && out.len() > 1 {
                    // The top of a range wins over a round tick below it.
                    out.pop();
                    out.push(t);
                    last_h = h;
                }
            }
        }
        out
    }
}

/// A mark's label: its rows above the lane's plot.
struct Label {
    mark: usize,
    row: usize,
    x0: f64,
    w: f64,
    lines: Vec<String>,
}

/// Vertical layout: each lane is its band, its label rows, its plot.
struct Layout {
    tops: Vec<f64>,
    zones: Vec<f64>,
    labels: Vec<Label>,
    /// Bottom of the last lane.
    end: f64,
}

impl Layout {
    fn top(&self, i: usize) -> f64 {
        self.tops[i]
    }

    fn plot_top(&self, i: usize) -> f64 {
        self.tops[i] + BAND + self.zones[i]
    }

    fn plot_bottom(&self, i: usize) -> f64 {
        self.plot_top(i) + PLOT
    }
}

/// Free horizontal room per text row, for placing labels without overlap.
struct Rows {
    rows: Vec<Vec<(f64, f64)>>,
}

impl Rows {
    fn new(n: usize) -> Rows {
        Rows { rows: vec![Vec::new(); n] }
    }

    /// The first row where `k` consecutive rows are free over [x0, x1];
    /// the last possible row when none is.
    fn place(&mut self, x0: f64, x1: f64, k: usize) -> usize {
        let n = self.rows.len();
        let k = k.min(n);
        let free = |r: &Vec<(f64, f64)>| r.iter().all(|&(a, b)| x1 + 4.0 < a || b + 4.0 < x0);
        let r = (0..=n - k).find(|&r| self.rows[r..r + k].iter().all(free)).unwrap_or(n - k);
        for row in &mut self.rows[r..r + k] {
            row.push((x0, x1));
        }
        r
    }

    /// Rows holding at least one label.
    fn used(&self) -> usize {
        self.rows.iter().rposition(|r| !r.is_empty()).map_or(0, |i| i + 1)
    }
}

/// Splits `s` into lines of at most `width` characters at spaces.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in s.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
        while cur.chars().count() > width {
            let head: String = cur.chars().take(width).collect();
            let tail: String = cur.chars().skip(width).collect();
            out.push(head);
            cur = tail;
        }
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// The lines drawn on each lane.
#[derive(Clone, Copy)]
struct Series {
    key: &'static str,
    name: &'static str,
    /// In the hover panel.
    short: &'static str,
    get: fn(&NodeView) -> Option<Lsn>,
}

fn valid(l: Lsn) -> Option<Lsn> {
    (l.0 > 0).then_some(l)
}

const SERIES: [Series; 6] = [
    Series { key: "flush", short: "flush", name: "WAL flush", get: |n| valid(n.flush) },
    Series { key: "insert", short: "insert", name: "WAL insert", get: |n| valid(n.insert) },
    Series {
        key: "replay",
        short: "replay",
        name: "replay (startup process)",
        get: |n| n.replay.and_then(valid),
    },
    Series {
        key: "mrp",
        short: "minRecoveryPoint",
        name: "minRecoveryPoint",
        get: |n| valid(n.control.min_recovery_point),
    },
    Series {
        key: "page-os",
        short: "max page LSN (OS cache)",
        name: "max page LSN, OS cache",
        get: |n| valid(n.max_page_os),
    },
    Series {
        key: "page-disk",
        short: "(on disk)",
        name: "max page LSN, on disk",
        get: |n| valid(n.max_page_durable),
    },
];

/// The series in the hover panel: insert, flush, replay,
/// minRecoveryPoint, page LSNs.
const PANEL_ORDER: [usize; 6] = [1, 0, 2, 3, 4, 5];

const CSS: &str = "
.walsim text{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:11px;fill:#222}
.walsim .title{font-size:14px;font-weight:bold}
.walsim .node-name{font-size:13px;font-weight:bold}
.walsim .axis{stroke:#888;stroke-width:1;fill:none}
.walsim .grid{stroke:#e4e4e4;stroke-width:1}
.walsim .tick{fill:#555;font-size:10px}
.walsim .plot-bg{fill:#fff;stroke:#ccc}
.walsim .quiet{fill:#f1f1f1}
.walsim .lsn-break{stroke:#aaa;stroke-dasharray:2 3}\n.walsim .axis-cut{stroke:#555;fill:none;stroke-width:1.5}\n.walsim .zone-line{stroke:#ddd}
.walsim .band text{font-size:11px}
.walsim .role-primary{fill:#b9e4b9}
.walsim .role-standby{fill:#bcd8f5}
.walsim .role-recovery{fill:#ffd59a}
.walsim .role-down{fill:#d6d6d6}
.walsim .role-shutting-down{fill:#f3eaa0}
.walsim .s{fill:none;stroke-width:1.5}
.walsim .s-flush{stroke:#7cc4bb;stroke-width:4}
.walsim .s-insert{stroke:#1f4e9c}
.walsim .s-replay{stroke:#8e44ad;stroke-width:1.8}
.walsim .s-mrp{stroke:#e67e22;stroke-dasharray:6 3;stroke-width:1.8}
.walsim .s-page-os{stroke:#a0522d;stroke-dasharray:3 2;stroke-width:1.8}
.walsim .s-page-disk{stroke:#d62728;stroke-width:1.2}
.walsim .m{fill:none;stroke-width:.8}
.walsim .m-wal{stroke:#1f4e9c;opacity:.5}
.walsim .m-feedback{stroke:#2e8b57;opacity:.5}
.walsim .m-lost{stroke:#999;stroke-dasharray:2 2}
.walsim .m-pending{stroke:#999;stroke-dasharray:5 3}
.walsim .m-connect{stroke:#000;stroke-width:1.3}
.walsim .m-refusal{stroke:#d00;stroke-width:2}
.walsim .mark line{stroke-width:1.2}
.walsim .operator line{stroke:#333;stroke-dasharray:4 2}
.walsim .crash line,.walsim .power-loss line{stroke:#000;stroke-width:2}
.walsim .start line,.walsim .heal line,.walsim .disconnect line,.walsim .partition line{stroke:#777;stroke-dasharray:1 2}
.walsim .fork-line{stroke:#c2185b;stroke-width:1.2;stroke-dasharray:8 3;fill:none}
.walsim .fork path{fill:#c2185b}
.walsim .refusal line,.walsim .violation line{stroke:#d00;stroke-width:2}
.walsim .observation line{stroke:#e67e22;stroke-width:1.5;stroke-dasharray:3 2}
.walsim .label rect{fill:#fff;fill-opacity:.88;stroke:#bbb}
.walsim .refusal .label rect,.walsim .violation .label rect{stroke:#d00;fill:#fff0f0;fill-opacity:.95}
.walsim .refusal .label text,.walsim .violation .label text{fill:#a00}
.walsim .observation .label rect{stroke:#e67e22;fill:#fff6ea}
.walsim .fork .label rect{stroke:#c2185b;fill:#fdeef4}
.walsim .fork .label text{fill:#880e4f}
.walsim .cursor{stroke:#000;stroke-width:1;opacity:.35}
";

impl Picture {
    /// Marks of the run, in step order.
    pub fn marks(&self) -> &[Mark] {
        &self.rec.marks
    }

    pub fn events(&self) -> usize {
        self.rec.steps.len()
    }

    /// `491 events`, or `the first 50000 of 60000 events`.
    fn count_text(&self) -> String {
        let drawn = self.rec.steps.len();
        if self.rec.seen as usize > drawn {
            format!(
                "the first {drawn} of {} events (a picture draws at most {})",
                self.rec.seen, self.rec.limit
            )
        } else {
            format!("{drawn} events")
        }
    }

    fn node_names(&self) -> Vec<String> {
        self.rec.steps.first().map(|s| s.nodes.iter().map(|n| n.node.clone()).collect()).unwrap_or_default()
    }

    fn interesting(&self) -> Vec<bool> {
        let n = self.rec.steps.len();
        let mut out = vec![false; n];
        for m in &self.rec.marks {
            if let Some(f) = out.get_mut(m.step as usize) {
                *f = true;
            }
        }
        for msg in &self.rec.messages {
            if matches!(msg.kind, MsgKind::Connect | MsgKind::Refusal) || msg.lost {
                for s in [msg.sent, msg.end] {
                    if let Some(f) = out.get_mut(s as usize) {
                        *f = true;
                    }
                }
            }
        }
        for (i, w) in self.rec.steps.windows(2).enumerate() {
            let changed = w[0]
                .nodes
                .iter()
                .zip(&w[1].nodes)
                .any(|(x, y)| x.status != y.status || x.timeline != y.timeline);
            if changed || w[0].phase != w[1].phase {
                out[i + 1] = true;
            }
        }
        out
    }

    fn lsn_values(&self) -> BTreeSet<u64> {
        let mut v = BTreeSet::new();
        for s in &self.rec.steps {
            for n in &s.nodes {
                for series in &SERIES {
                    if let Some(l) = (series.get)(n) {
                        v.insert(l.0);
                    }
                }
            }
        }
        for m in &self.rec.marks {
            if let Some(l) = m.lsn {
                v.insert(l.0);
            }
        }
        v
    }

    /// Where everything goes: label rows per lane (above the lane's
    /// plot, so labels never hide a line), then the lanes' heights.
    fn layout(&self, tm: &TimeMap, width: f64) -> Layout {
        let lanes = self.node_names().len();
        let mut rows: Vec<Rows> = (0..lanes).map(|_| Rows::new(MAX_ROWS)).collect();
        let mut order: Vec<usize> = (0..self.rec.marks.len()).collect();
        // Messages and the fork first (they get the top rows), then by step.
        order.sort_by_key(|&k| {
            let m = &self.rec.marks[k];
            (std::cmp::Reverse(m.kind.is_message() || m.kind == MarkKind::Fork), m.step, k)
        });
        let mid = (LEFT + tm.end()) / 2.0;
        let mut labels = Vec::new();
        for k in order {
            let m = &self.rec.marks[k];
            if m.node >= lanes || matches!(m.kind, MarkKind::Start | MarkKind::Heal) {
                continue;
            }
            let x = tm.x(m.step);
            let right = x > mid;
            let room = if right { x - 12.0 } else { width - x - 12.0 };
            let max_chars = ((room / CHAR_W) as usize).clamp(24, 110);
            let lines = if m.kind.is_message() || m.kind == MarkKind::Fork {
                wrap(&m.label, max_chars)
            } else {
                vec![truncate(&m.label, max_chars)]
            };
            let w = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64 * CHAR_W + 8.0;
            let x0 = if right { x - 3.0 - w } else { x + 3.0 };
            let row = rows[m.node].place(x0, x0 + w, lines.len());
            labels.push(Label { mark: k, row, x0, w, lines });
        }
        let mut tops = Vec::with_capacity(lanes);
        let mut zones = Vec::with_capacity(lanes);
        let mut y = HEADER;
        for r in &rows {
            tops.push(y);
            let zone = r.used() as f64 * ROW_H + 4.0;
            zones.push(zone);
            y += BAND + zone + PLOT + GAP;
        }
        Layout { tops, zones, labels, end: y - GAP }
    }

    /// The SVG element (no XML declaration). `standalone` adds the SVG
    /// namespace and a title line, for a file of its own.
    pub fn svg(&self, standalone: bool) -> String {
        let names = self.node_names();
        let n = self.rec.steps.len();
        let tm = TimeMap::new(n, &self.interesting());
        let lm = LsnMap::new(&self.lsn_values());
        let width = (tm.end() + RIGHT).max(1100.0);
        let lay = self.layout(&tm, width);
        let lanes_end = lay.end;
        let height = lanes_end + AXIS + 8.0;
        let mut o = String::with_capacity(64 * 1024);
        let xmlns = if standalone { " xmlns=\"http://www.w3.org/2000/svg\"" } else { "" };
        let _ = write!(
            o,
            "<svg{xmlns} class=\"walsim\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\">",
            n1(width),
            n1(height),
            n1(width),
            n1(height)
        );
        let _ = write!(o, "<style>{CSS}</style>");
        let _ = write!(o, "<title>walsim picture: {}</title>", esc(&self.meta.title));
        let _ = write!(o, "<rect width=\"{}\" height=\"{}\" fill=\"#fff\"/>", n1(width), n1(height));
        if standalone {
            let _ = write!(
                o,
                "<text class=\"title\" x=\"8\" y=\"18\">walsim: {} · {}</text>",
                esc(&self.meta.title),
                esc(&truncate(&self.outcome, ((width - 16.0) / 8.8) as usize))
            );
        }
        self.legend(&mut o);

        // Messages first: the lanes cover them, so an arrow between lanes
        // that are not neighbours shows in the gaps, not over the lanes
        // it passes.
        self.arrows(&mut o, &tm, &lay);
        // Time grid and compressed stretches behind the lines.
        let ticks = time_ticks(&tm, n);
        for i in 0..names.len() {
            let (top, bottom) = (lay.top(i) + BAND, lay.plot_bottom(i));
            let _ = write!(
                o,
                "<rect class=\"plot-bg\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                n1(LEFT),
                n1(top),
                n1(tm.end() - LEFT),
                n1(bottom - top)
            );
            for &(a, b) in &tm.quiet {
                let _ = write!(
                    o,
                    "<rect class=\"quiet\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                    n1(tm.x(a as u64)),
                    n1(top),
                    n1(tm.x(b as u64) - tm.x(a as u64)),
                    n1(bottom - top)
                );
            }
            let _ = write!(
                o,
                "<path class=\"zone-line\" d=\"M{} {}H{}\"/>",
                n1(LEFT),
                n1(lay.plot_top(i)),
                n1(tm.end())
            );
        }
        o.push_str("<path class=\"grid\" d=\"");
        for &t in &ticks {
            let x = n1(tm.x(t));
            for i in 0..names.len() {
                let _ = write!(o, "M{x} {}V{}", n1(lay.plot_top(i)), n1(lay.plot_bottom(i)));
            }
        }
        o.push_str("\"/>");

        for (i, name) in names.iter().enumerate() {
            self.lane(&mut o, i, name, &tm, &lm, &lay);
        }
        self.fork_lines(&mut o, &tm, &lm, &lay);
        self.marks_svg(&mut o, &tm, &lm, &lay);

        // Time axis.
        let y = lanes_end + 4.0;
        let _ = write!(o, "<path class=\"axis\" d=\"M{} {}H{}\"/>", n1(LEFT), n1(y), n1(tm.end()));
        for &t in &ticks {
            let x = tm.x(t);
            let _ = write!(
                o,
                "<path class=\"axis\" d=\"M{} {}v4\"/><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{t}</text>",
                n1(x),
                n1(y),
                n1(x),
                n1(y + 15.0)
            );
        }
        for &(a, b) in tm.quiet.iter().filter(|&&(a, b)| tm.x(b as u64) - tm.x(a as u64) >= 90.0) {
            let x = (tm.x(a as u64) + tm.x(b as u64)) / 2.0;
            let _ = write!(
                o,
                "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#999\">{}× compressed</text>",
                n1(x),
                n1(y + 28.0),
                tm.factor
            );
        }
        let _ = write!(
            o,
            "<text class=\"tick\" x=\"8\" y=\"{}\">event index</text><text class=\"tick\" x=\"8\" y=\"{}\">(1 event = 1 ms)</text>",
            n1(y + 15.0),
            n1(y + 28.0)
        );
        // The hover cursor (moved by the page's script).
        let _ = write!(
            o,
            "<line id=\"cursor\" class=\"cursor\" x1=\"-10\" x2=\"-10\" y1=\"{}\" y2=\"{}\"/>",
            n1(HEADER),
            n1(lanes_end)
        );
        o.push_str("</svg>");
        o
    }

    fn legend(&self, o: &mut String) {
        let mut x = 8.0;
        let y = 40.0;
        o.push_str("<g class=\"legend\">");
        for s in &SERIES {
            let _ = write!(
                o,
                "<path class=\"s s-{}\" d=\"M{} {}h22\"/><text x=\"{}\" y=\"{}\">{}</text>",
                s.key,
                n1(x),
                n1(y - 4.0),
                n1(x + 26.0),
                n1(y),
                esc(s.name)
            );
            x += 26.0 + s.name.chars().count() as f64 * CHAR_W + 16.0;
        }
        let mut x = 8.0;
        let y = 60.0;
        for (class, name) in [
            ("role-primary", "primary"),
            ("role-standby", "standby"),
            ("role-recovery", "crash recovery"),
            ("role-down", "down"),
        ] {
            let _ = write!(
                o,
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"22\" height=\"11\"/><text x=\"{}\" y=\"{}\">{name}</text>",
                n1(x),
                n1(y - 10.0),
                n1(x + 26.0),
                n1(y)
            );
            x += 26.0 + name.len() as f64 * CHAR_W + 14.0;
        }
        x += 10.0;
        for (class, name) in [
            ("m-wal", "WAL sent → received"),
            ("m-feedback", "standby feedback"),
            ("m-connect", "START_REPLICATION"),
            ("m-refusal", "refused"),
            ("m-lost", "lost in flight"),
            ("m-pending", "in flight at the end"),
        ] {
            let _ = write!(
                o,
                "<path class=\"m {class}\" d=\"M{} {}l22 -6\" style=\"opacity:1\"/><text x=\"{}\" y=\"{}\">{name}</text>",
                n1(x),
                n1(y - 1.0),
                n1(x + 26.0),
                n1(y)
            );
            x += 26.0 + name.chars().count() as f64 * CHAR_W + 14.0;
        }
        let _ = write!(
            o,
            "<path class=\"fork-line\" d=\"M{} {}h22\"/><text x=\"{}\" y=\"{}\">fork point</text>",
            n1(x),
            n1(y - 4.0),
            n1(x + 26.0),
            n1(y)
        );
        o.push_str("</g>");
    }

    fn lane(&self, o: &mut String, i: usize, name: &str, tm: &TimeMap, lm: &LsnMap, lay: &Layout) {
        let top = lay.top(i);
        let ptop = lay.plot_top(i);
        let bottom = lay.plot_bottom(i);
        let y = |l: u64| bottom - lm.h(l);
        let _ = write!(o, "<g class=\"lane\" id=\"lane-{}\" data-node=\"{}\">", esc(name), esc(name));
        let _ = write!(o, "<text class=\"node-name\" x=\"8\" y=\"{}\">{}</text>", n1(top + 15.0), esc(name));
        // Role and timeline band.
        o.push_str("<g class=\"band\">");
        let steps = &self.rec.steps;
        let mut s = 0;
        while s < steps.len() {
            let (role, tli) = (steps[s].nodes[i].status, steps[s].nodes[i].timeline);
            let mut e = s + 1;
            while e < steps.len() && steps[e].nodes[i].status == role && steps[e].nodes[i].timeline == tli {
                e += 1;
            }
            let (x0, x1) = (tm.x(s as u64), tm.x(e as u64));
            let text = role_text(role, tli);
            let _ = write!(
                o,
                "<rect class=\"role-{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{name}: {text}, events {s}–{}</title></rect>",
                role.replace(' ', "-"),
                n1(x0),
                n1(top),
                n1(x1 - x0),
                n1(BAND),
                e - 1
            );
            if (x1 - x0) > text.chars().count() as f64 * CHAR_W + 8.0 {
                let _ =
                    write!(o, "<text x=\"{}\" y=\"{}\">{}</text>", n1(x0 + 4.0), n1(top + 14.0), esc(&text));
            }
            s = e;
        }
        o.push_str("</g>");
        // LSN axis: ticks and cut-out ranges.
        let _ = write!(
            o,
            "<path class=\"axis\" d=\"M{} {}V{}\"/><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">LSN</text>",
            n1(LEFT),
            n1(ptop),
            n1(bottom),
            n1(LEFT - 6.0),
            n1(ptop - 3.0)
        );
        for t in lm.ticks() {
            let yy = y(t);
            let _ = write!(
                o,
                "<path class=\"axis\" d=\"M{} {}h-4\"/><text class=\"tick lsn\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                n1(LEFT),
                n1(yy),
                n1(LEFT - 6.0),
                n1(yy + 3.5),
                Lsn(t).fmt_with(self.rec.style)
            );
        }
        for (h, (a, b)) in lm.breaks() {
            let yy = bottom - h;
            let _ = write!(
                o,
                "<g class=\"lsn-cut\"><title>no position between {} and {}: this LSN range is cut out</title>\
                 <path class=\"lsn-break\" d=\"M{} {}H{}\"/><path class=\"axis-cut\" d=\"M{} {}l4 -3l4 3l4 -3\"/></g>",
                Lsn(a).fmt_with(self.rec.style),
                Lsn(b).fmt_with(self.rec.style),
                n1(LEFT),
                n1(yy),
                n1(tm.end()),
                n1(LEFT - 6.0),
                n1(yy + 1.5)
            );
        }
        // Position lines: step functions, a point only where the drawn
        // value changes.
        for series in &SERIES {
            let mut d = String::new();
            let mut pen: Option<(String, String)> = None;
            for (k, st) in steps.iter().enumerate() {
                let x = n1(tm.x(k as u64));
                match (series.get)(&st.nodes[i]) {
                    Some(l) => {
                        let yy = n1(y(l.0));
                        match &pen {
                            None => {
                                let _ = write!(d, "M{x} {yy}");
                            }
                            Some((px, py)) if *py != yy => {
                                if *px != x {
                                    let _ = write!(d, "H{x}");
                                }
                                let _ = write!(d, "V{yy}");
                            }
                            _ => {}
                        }
                        pen = Some((x, yy));
                    }
                    None => {
                        if pen.is_some() {
                            let _ = write!(d, "H{x}");
                        }
                        pen = None;
                    }
                }
            }
            if pen.is_some() {
                let _ = write!(d, "H{}", n1(tm.end()));
            }
            if !d.is_empty() {
                let _ = write!(
                    o,
                    "<path class=\"s s-{}\" d=\"{d}\"><title>{name}: {}</title></path>",
                    series.key, series.name
                );
            }
        }
        o.push_str("</g>");
    }

    fn arrows(&self, o: &mut String, tm: &TimeMap, lay: &Layout) {
        let mut paths: BTreeMap<&'static str, String> = BTreeMap::new();
        for m in &self.rec.messages {
            if m.from == m.to {
                continue;
            }
            let (y1, y2) = if m.to > m.from {
                (lay.plot_bottom(m.from), lay.top(m.to))
            } else {
                (lay.top(m.from), lay.plot_bottom(m.to))
            };
            let x1 = tm.x(m.sent);
            let x2 =
                if matches!(m.kind, MsgKind::Connect | MsgKind::Refusal) { x1 + 0.01 } else { tm.x(m.end) };
            let class = if m.lost {
                "m-lost"
            } else if m.pending {
                "m-pending"
            } else {
                match m.kind {
                    MsgKind::Wal => "m-wal",
                    MsgKind::Feedback => "m-feedback",
                    MsgKind::Connect => "m-connect",
                    MsgKind::Refusal => "m-refusal",
                }
            };
            let d = paths.entry(class).or_default();
            if m.lost {
                // Half-way, then an x where it was dropped.
                let (xm, ym) = ((x1 + tm.x(m.end)) / 2.0, (y1 + y2) / 2.0);
                let _ = write!(
                    d,
                    "M{} {}L{} {}M{} {}l6 6m0 -6l-6 6",
                    n1(x1),
                    n1(y1),
                    n1(xm),
                    n1(ym),
                    n1(xm - 3.0),
                    n1(ym - 3.0)
                );
                continue;
            }
            if m.pending {
                // Half-way by the end of the run: still on its way.
                let _ = write!(d, "M{} {}L{} {}", n1(x1), n1(y1), n1(x2), n1((y1 + y2) / 2.0));
                continue;
            }
            let (dx, dy) = (x2 - x1, y2 - y1);
            let len = (dx * dx + dy * dy).sqrt().max(0.001);
            let (ux, uy) = (dx / len, dy / len);
            let (hx, hy) = (x2 - ux * 6.0, y2 - uy * 6.0);
            let _ = write!(
                d,
                "M{} {}L{} {}M{} {}L{} {}L{} {}",
                n1(x1),
                n1(y1),
                n1(x2),
                n1(y2),
                n1(hx - uy * 3.0),
                n1(hy + ux * 3.0),
                n1(x2),
                n1(y2),
                n1(hx + uy * 3.0),
                n1(hy - ux * 3.0)
            );
        }
        for (class, d) in paths {
            let _ = write!(o, "<path class=\"m {class}\" d=\"{d}\"/>");
        }
    }

    fn fork_lines(&self, o: &mut String, tm: &TimeMap, lm: &LsnMap, lay: &Layout) {
        for m in self.rec.marks.iter().filter(|m| m.kind == MarkKind::Fork) {
            let Some(l) = m.lsn else { continue };
            let x = tm.x(m.step);
            let mut d = String::new();
            for i in 0..lay.tops.len() {
                let yy = lay.plot_bottom(i) - lm.h(l.0);
                let _ = write!(d, "M{} {}H{}", n1(x), n1(yy), n1(tm.end()));
            }
            let _ = write!(
                o,
                "<path class=\"fork-line\" d=\"{d}\"><title>{}: WAL above this line written on the old timeline after the fork is not in the new timeline's history</title></path>",
                esc(&m.label)
            );
        }
    }

    fn marks_svg(&self, o: &mut String, tm: &TimeMap, lm: &LsnMap, lay: &Layout) {
        let lanes = lay.tops.len();
        let mut groups: Vec<(MarkKind, usize, String)> = Vec::new();
        for (k, m) in self.rec.marks.iter().enumerate() {
            if m.node >= lanes {
                continue;
            }
            let top = lay.top(m.node);
            let bottom = lay.plot_bottom(m.node);
            let x = tm.x(m.step);
            let mut g = String::new();
            let _ = write!(
                g,
                "<g class=\"mark {}\" data-step=\"{}\" data-node=\"{}\"><title>{} at event {}:\n{}</title>",
                m.kind.class(),
                m.step,
                m.node,
                m.kind.title(),
                m.step,
                esc(&self.rec.steps.get(m.step as usize).map(|s| s.lines.join("\n")).unwrap_or_default())
            );
            match m.kind {
                MarkKind::Fork => {
                    let yy = bottom - lm.h(m.lsn.map_or(0, |l| l.0));
                    let _ = write!(
                        g,
                        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/><path d=\"M{} {}l6 6l-6 6l-6 -6z\"/>",
                        n1(x),
                        n1(x),
                        n1(top + BAND),
                        n1(yy),
                        n1(x),
                        n1(yy - 6.0)
                    );
                }
                MarkKind::Crash | MarkKind::PowerLoss => {
                    let _ = write!(
                        g,
                        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>",
                        n1(x),
                        n1(x),
                        n1(top),
                        n1(bottom)
                    );
                    let _ = write!(
                        g,
                        "<path d=\"M{} {}l10 10m0 -10l-10 10\" style=\"stroke:#d00;stroke-width:2.5\"/>",
                        n1(x - 5.0),
                        n1(top + 5.0)
                    );
                }
                _ => {
                    let _ = write!(
                        g,
                        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>",
                        n1(x),
                        n1(x),
                        n1(top),
                        n1(bottom)
                    );
                }
            }
            if let Some(lab) = lay.labels.iter().find(|l| l.mark == k) {
                let ly = top + BAND + 2.0 + lab.row as f64 * ROW_H;
                let _ = write!(
                    g,
                    "<g class=\"label\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"2\"/>",
                    n1(lab.x0),
                    n1(ly),
                    n1(lab.w),
                    n1(lab.lines.len() as f64 * ROW_H)
                );
                let _ = write!(g, "<text x=\"{}\" y=\"{}\">", n1(lab.x0 + 4.0), n1(ly + 10.0));
                for (j, l) in lab.lines.iter().enumerate() {
                    if j == 0 {
                        let _ = write!(g, "<tspan>{}</tspan>", esc(l));
                    } else {
                        let _ = write!(
                            g,
                            "<tspan x=\"{}\" dy=\"{}\">{}</tspan>",
                            n1(lab.x0 + 4.0),
                            n1(ROW_H),
                            esc(l)
                        );
                    }
                }
                g.push_str("</text></g>");
            }
            g.push_str("</g>");
            groups.push((m.kind, k, g));
        }
        // Draw in kind order, so refusals and violations are on top.
        groups.sort_by_key(|(kind, k, _)| (*kind, *k));
        for (_, _, g) in groups {
            o.push_str(&g);
        }
    }

    /// The bare SVG file.
    pub fn svg_file(&self) -> String {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", self.svg(true))
    }

    /// The HTML page.
    pub fn html(&self) -> String {
        let mut o = String::with_capacity(256 * 1024);
        o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        // Errors from the page's own script land in the page (the browser
        // test reads them from the DOM).
        o.push_str(
            "<script>function walsimError(t){var e=document.getElementById('js-errors');if(e){e.textContent+=t+'\\n';}}\
             window.onerror=function(m,s,l){walsimError('error: '+m+' (line '+l+')');return false;};\
             (function(){var ce=console.error;console.error=function(){walsimError('console.error: '+\
             Array.prototype.join.call(arguments,' '));return ce.apply(console,arguments);};})();</script>",
        );
        let _ = write!(o, "<title>walsim picture: {}</title>", esc(&self.meta.title));
        o.push_str(
            "<style>body{font-family:system-ui,sans-serif;margin:12px;color:#222}\
             h1{font-size:18px;margin:4px 0}p{margin:4px 0}code,pre{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:12px}\
             .outcome{font-weight:bold}.outcome.bad{color:#a00}\
             #wrap{overflow-x:auto;border:1px solid #ddd;margin:8px 0}\
             #panel{position:sticky;bottom:0;background:#fffff4;border:1px solid #cc9;padding:6px;white-space:pre-wrap;min-height:3.2em;max-height:12em;overflow:auto;margin:0}\
             table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}\
             td.msg{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace}\
             tr.refusal td,tr.violation td{color:#a00}tr[data-step]{cursor:pointer}tr[data-step]:hover{background:#f4f4ff}#js-errors:empty{display:none}#js-errors{color:#d00}</style>",
        );
        o.push_str("</head><body>");
        let _ = write!(o, "<h1>walsim picture: {}</h1>", esc(&self.meta.title));
        let bad = self.outcome.starts_with("violation") || self.outcome.starts_with("refused");
        let _ = write!(
            o,
            "<p class=\"outcome{}\" id=\"outcome\">outcome: {}</p>",
            if bad { " bad" } else { "" },
            esc(&self.outcome)
        );
        if !self.meta.settings.is_empty() {
            let _ = write!(o, "<p>settings: <code>{}</code></p>", esc(&self.meta.settings));
        }
        if !self.meta.command.is_empty() {
            let _ = write!(o, "<p>reproduce: <code>{}</code></p>", esc(&self.meta.command));
        }
        let _ = write!(
            o,
            "<p>{}. One lane per node: its role and timeline (band), its WAL positions and page LSNs against LSN \
             (the same LSN scale on every lane; a long empty LSN range is cut out where the axis shows a zigzag); grey stretches \
             of time are compressed. Hover anywhere for that event's log lines (in the panel below the picture); hover a mark \
             for its own; click a row of the marks table to show its event; add <code>#event=N</code> to the address to open \
             at event N.</p>",
            self.count_text()
        );
        o.push_str("<pre id=\"js-errors\"></pre><div id=\"wrap\">");
        o.push_str(&self.svg(false));
        o.push_str("</div><pre id=\"panel\">hover over the picture to see the log lines of an event</pre>");
        o.push_str("<h2 style=\"font-size:15px\">Marks</h2><table id=\"marks\"><tr><th>event</th><th>node</th><th>what</th><th>message</th></tr>");
        let names = self.node_names();
        let mut marks: Vec<&Mark> = self.rec.marks.iter().filter(|m| m.kind != MarkKind::Start).collect();
        marks.sort_by_key(|m| m.step);
        for m in marks {
            let _ = write!(
                o,
                "<tr class=\"{}\" data-step=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                m.kind.class(),
                m.step,
                m.step,
                esc(names.get(m.node).map_or("?", |s| s.as_str())),
                m.kind.title(),
                esc(&m.label)
            );
        }
        o.push_str("</table>");
        // Per-event data for the hover panel: x of each event, the event,
        // its log lines without the timestamp (the script adds it back).
        let xs: Vec<f64> = {
            let names_n = self.rec.steps.len();
            let tm = TimeMap::new(names_n, &self.interesting());
            tm.xs.iter().map(|x| (x * 10.0).round() / 10.0).collect()
        };
        // Every distinct text once (`u`); events and log lines point into
        // it (a loop that logs the same lines costs little).
        let mut texts = Interner::default();
        let events: Vec<usize> = self.rec.steps.iter().map(|s| texts.id(s.event.to_string())).collect();
        let logs: Vec<Vec<usize>> = self
            .rec
            .steps
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let ts = timestamp(k as u64);
                s.lines
                    .iter()
                    .map(|l| texts.id(l.strip_prefix(&ts).unwrap_or(l).trim_start().to_string()))
                    .collect()
            })
            .collect();
        let quiesce = self.rec.steps.iter().position(|s| s.phase == Phase::Quiesce);
        // Shown first: the violation, else the first refusal, else the fork.
        let first = [MarkKind::Violation, MarkKind::Refusal, MarkKind::Fork]
            .iter()
            .find_map(|k| self.rec.marks.iter().filter(|m| m.kind == *k).map(|m| m.step).min());
        // Each node's role and positions, as change points (step delta,
        // value), for the panel's exact LSNs.
        let names = self.node_names();
        let steps = &self.rec.steps;
        let mut positions = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let track = |get: &dyn Fn(&NodeView) -> serde_json::Value| -> Vec<serde_json::Value> {
                let mut out = Vec::new();
                let (mut last, mut at) = (None::<serde_json::Value>, 0usize);
                for (k, st) in steps.iter().enumerate() {
                    let v = get(&st.nodes[i]);
                    if last.as_ref() != Some(&v) {
                        out.push(serde_json::json!(k - at));
                        out.push(v.clone());
                        (last, at) = (Some(v), k);
                    }
                }
                out
            };
            let lsn = |l: Option<Lsn>| match l {
                None => serde_json::json!(-1),
                Some(l) if l.0 < (1 << 53) => serde_json::json!(l.0),
                Some(l) => serde_json::json!(l.fmt_with(self.rec.style).to_string()),
            };
            let role = track(&|n: &NodeView| serde_json::json!(role_text(n.status, n.timeline)));
            let series: Vec<Vec<serde_json::Value>> =
                PANEL_ORDER.iter().map(|&k| track(&|n: &NodeView| lsn((SERIES[k].get)(n)))).collect();
            positions.push(serde_json::json!({ "n": name, "r": role, "s": series }));
        }
        let series_names: Vec<&str> = PANEL_ORDER.iter().map(|&k| SERIES[k].short).collect();
        let padded = self.rec.style == LsnFormat::Padded;
        let data = serde_json::json!({
            "u": texts.list, "x": xs, "e": events, "l": logs, "q": quiesce, "s": first,
            "p": positions, "sn": series_names, "pad": padded,
        });
        let data = data.to_string().replace("</", "<\\/");
        let _ = write!(o, "<script type=\"application/json\" id=\"walsim-data\">{data}</script>");
        o.push_str(SCRIPT);
        o.push_str("</body></html>\n");
        o
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Html => self.html(),
            Format::Svg => self.svg_file(),
        }
    }
}

const SCRIPT: &str = "<script>(function(){
var d=JSON.parse(document.getElementById('walsim-data').textContent);
var svg=document.querySelector('svg.walsim'),cur=document.getElementById('cursor'),panel=document.getElementById('panel');
if(!svg||!cur||!panel)return;
function ts(s){var t=new Date(Date.UTC(2000,0,1)+s).toISOString();return t.slice(0,10)+' '+t.slice(11,23)+' UTC';}
function at(x){var lo=0,hi=d.e.length-1;if(hi<0||x<d.x[0])return -1;while(lo<hi){var m=(lo+hi+1)>>1;if(d.x[m]<=x)lo=m;else hi=m-1;}return lo;}
function dec(a){var r=[],s=0;for(var j=0;j<a.length;j+=2){s+=a[j];r.push([s,a[j+1]]);}return r;}
var P=d.p.map(function(n){return {n:n.n,r:dec(n.r),s:n.s.map(dec)};});
function at2(r,i){var lo=0,hi=r.length-1,b=-1;while(lo<=hi){var m=(lo+hi)>>1;if(r[m][0]<=i){b=m;lo=m+1;}else hi=m-1;}return b<0?null:r[b][1];}
function lsn(v){if(v===null||v===-1)return '-';if(typeof v==='string')return v;
 var l=(v%4294967296).toString(16).toUpperCase();if(d.pad)l=('00000000'+l).slice(-8);
 return Math.floor(v/4294967296).toString(16).toUpperCase()+'/'+l;}
function where(i){return P.map(function(n){var parts=n.s.map(function(r,k){return d.sn[k]+' '+lsn(at2(r,i));});
 return n.n+' ('+at2(n.r,i)+'): '+parts.join(', ');}).join('\\n');}
function show(i){
 if(i<0||i>=d.e.length)return;
 var x=(d.x[i]+d.x[i+1])/2;cur.setAttribute('x1',x);cur.setAttribute('x2',x);
 var ph=(d.q!==null&&i>=d.q)?'quiesce':'main';
 panel.textContent='event '+i+' ('+ph+' phase): '+d.u[d.e[i]]+'\\n'+d.l[i].map(function(k){return ts(i)+' '+d.u[k];}).join('\\n')+
  '\\nafter it:\\n'+where(i);
}
var last=-2;
svg.addEventListener('mousemove',function(ev){
 var p=svg.createSVGPoint();p.x=ev.clientX;p.y=ev.clientY;
 var i=at(p.matrixTransform(svg.getScreenCTM().inverse()).x);
 if(i!==last){last=i;show(i);}
});
var rows=document.querySelectorAll('#marks tr[data-step]');
for(var k=0;k<rows.length;k++){rows[k].addEventListener('click',function(){show(+this.getAttribute('data-step'));panel.scrollIntoView({block:'nearest'});});}
var h=/^#event=([0-9]+)$/.exec(location.hash);
if(h)show(+h[1]);else if(d.s!==null)show(d.s);
window.addEventListener('hashchange',function(){var h=/^#event=([0-9]+)$/.exec(location.hash);if(h)show(+h[1]);});
document.body.setAttribute('data-ready','1');
})();</script>";

/// Runs `settings` with `seed` and records its picture.
pub fn of_seed(settings: &walsim_model::Settings, seed: u64, meta: &Meta) -> (Picture, RunResult) {
    let mut rec = Recorder::new(settings.log.lsn_format);
    let opts = crate::run::RunOptions { record: false, log: true, max_events: None };
    let r = crate::run::run_seed(settings, seed, opts, &mut rec);
    (rec.finish(&r, meta), r)
}

/// Replays a trace file's run and records its picture.
pub fn of_trace(
    trace: &crate::trace::Trace,
    settings: &walsim_model::Settings,
    meta: &Meta,
) -> (Picture, RunResult) {
    let mut rec = Recorder::new(settings.log.lsn_format);
    let opts = crate::run::RunOptions { record: false, log: true, max_events: None };
    let r = trace.replay(settings, opts, &mut rec);
    (rec.finish(&r, meta), r)
}

/// The settings a reader of the picture needs first, one line.
pub fn settings_line(settings: &walsim_model::Settings) -> String {
    let Ok(v) = toml::Value::try_from(settings) else { return String::new() };
    let get = |path: &[&str]| -> Option<String> {
        let mut cur = &v;
        for k in path {
            cur = cur.get(k)?;
        }
        Some(match cur {
            toml::Value::String(s) => format!("'{s}'"),
            other => other.to_string(),
        })
    };
    let keys: [&[&str]; 7] = [
        &["synchronous_commit"],
        &["synchronous_transfer"],
        &["synchronous_standby_names"],
        &["wal_log_hints"],
        &["failover", "failback"],
        &["cluster", "standbys"],
        &["scheduler", "steps"],
    ];
    keys.iter()
        .filter_map(|k| get(k).map(|val| format!("{} = {}", k.join("."), val)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Distinct strings in order of first use.
#[derive(Default)]
struct Interner {
    list: Vec<String>,
    index: BTreeMap<String, usize>,
}

impl Interner {
    fn id(&mut self, s: String) -> usize {
        if let Some(&i) = self.index.get(&s) {
            return i;
        }
        self.list.push(s.clone());
        self.index.insert(s, self.list.len() - 1);
        self.list.len() - 1
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Time ticks at round event indices, at least 56 px apart.
fn time_ticks(tm: &TimeMap, n: usize) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    let full = (tm.end() - LEFT) / n.max(1) as f64;
    let scale = if tm.quiet.is_empty() { full } else { full * 1.5 };
    let want = 60.0 / scale.max(0.001);
    let step = [1u64, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000]
        .into_iter()
        .find(|&s| s as f64 >= want)
        .unwrap_or(100_000);
    let mut out = Vec::new();
    let mut last = f64::NEG_INFINITY;
    let mut t = 0;
    while (t as usize) < n {
        let x = tm.x(t);
        if x - last >= 56.0 {
            out.push(t);
            last = x;
        }
        t += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{RunOptions, run_seed};

    fn picture(settings: &walsim_model::Settings, seed: u64) -> Picture {
        let mut rec = Recorder::new(settings.log.lsn_format);
        let opts = RunOptions { record: false, log: true, max_events: None };
        let r = run_seed(settings, seed, opts, &mut rec);
        rec.finish(&r, &Meta { title: format!("seed {seed}"), ..Meta::default() })
    }

    fn failback() -> walsim_model::Settings {
        crate::scenario::load("blog-failback-commit", toml::Table::new(), &[]).unwrap().settings
    }

    #[test]
    fn one_lane_per_node_with_lsn_labels_as_x_slash_x() {
        let mut s = walsim_model::Settings::default();
        s.cluster.standbys = 2;
        s.scheduler.steps = 200;
        s.operator.clear();
        let p = picture(&s, 3);
        let svg = p.svg(false);
        assert_eq!(svg.matches("<g class=\"lane\"").count(), 3, "one lane per node");
        for name in ["node1", "node2", "node3"] {
            assert!(svg.contains(&format!("id=\"lane-{name}\"")), "lane of {name}");
        }
        // Every LSN tick label is %X/%X: hex digits, one slash, hex digits.
        let labels: Vec<&str> = svg
            .split("class=\"tick lsn\"")
            .skip(1)
            .map(|s| s.split('>').nth(1).unwrap().split('<').next().unwrap())
            .collect();
        assert!(labels.len() >= 3 * 3, "{labels:?}");
        for l in labels {
            let (a, b) = l.split_once('/').unwrap_or_else(|| panic!("{l} has no slash"));
            let hex = |t: &str| {
                !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
            };
            assert!(hex(a) && hex(b), "{l} is not %X/%X");
        }
        assert!(!svg.contains("class=\"mark fork\""), "no promotion, no fork");
    }

    #[test]
    fn a_promotion_draws_the_fork_point_and_the_refusal_with_its_message() {
        let p = picture(&failback(), 1);
        let fork = p.marks().iter().find(|m| m.kind == MarkKind::Fork).expect("a fork mark");
        assert_eq!(fork.node, 1, "node2 was promoted");
        assert!(fork.label.starts_with("fork point 0/"), "{}", fork.label);
        assert!(fork.label.contains("00000002.history"), "{}", fork.label);
        let svg = p.svg(false);
        assert!(svg.contains("class=\"mark fork\""));
        assert!(svg.contains("class=\"fork-line\""));
        assert!(
            svg.contains("is not in this server&#39;s history")
                || svg.contains("is not in this server's history")
        );
        assert!(svg.contains("class=\"mark refusal\""));
        assert!(svg.contains("class=\"m m-refusal\""), "a refusal arrow");
        assert!(svg.contains("class=\"m m-wal\"") && svg.contains("class=\"m m-feedback\""));
        assert!(svg.contains("class=\"mark operator\""));
        assert!(svg.contains("pg_ctl promote on node2"));
    }

    #[test]
    fn a_violation_is_labelled_with_its_sentence() {
        let mut s = walsim_model::Settings::default();
        s.rules.wal_before_data = false;
        let p = picture(&s, 1);
        let v = p.marks().iter().find(|m| m.kind == MarkKind::Violation).expect("a violation mark");
        assert!(v.label.contains("wal_before_data"), "{}", v.label);
        assert!(v.label.contains("but WAL is flushed only to"), "{}", v.label);
        assert_eq!(v.step as usize, p.events() - 1);
    }

    #[test]
    fn a_long_run_is_drawn_up_to_the_limit_and_says_so() {
        let s = walsim_model::Settings {
            rules: walsim_model::settings::Rules { wal_before_data: false, ..Default::default() },
            ..Default::default()
        };
        let mut rec = Recorder::new(s.log.lsn_format).with_limit(40);
        let r = run_seed(&s, 1, RunOptions { record: false, log: true, max_events: None }, &mut rec);
        assert!(r.events > 40 && r.violation.is_some());
        let p = rec.finish(&r, &Meta::default());
        assert_eq!(p.events(), 40);
        assert!(
            p.count_text().starts_with(&format!("the first 40 of {} events", r.events)),
            "{}",
            p.count_text()
        );
        assert!(
            !p.marks().iter().any(|m| m.kind == MarkKind::Violation),
            "the violation is past the drawn part"
        );
        assert!(p.html().contains("the first 40 of"));
    }

    #[test]
    fn a_run_of_no_events_still_renders() {
        let s = walsim_model::Settings::default();
        let mut rec = Recorder::new(s.log.lsn_format);
        let r = run_seed(&s, 1, RunOptions { record: false, log: true, max_events: Some(0) }, &mut rec);
        assert_eq!(r.events, 0);
        let p = rec.finish(&r, &Meta::default());
        assert!(p.html().contains("0 events"));
        assert!(p.svg_file().ends_with("</svg>\n"));
    }

    #[test]
    fn lsn_map_cuts_long_empty_ranges_and_keeps_order() {
        // As after pg_switch_wal(): dense up to 0/2360, then a jump to the
        // next 64kB segment.
        let vals: BTreeSet<u64> = (0x28..=0x2360).step_by(0x38).chain([0x10000, 0x10028, 0x100A0]).collect();
        let m = LsnMap::new(&vals);
        assert_eq!(m.segments.len(), 2, "{:?}", m.segments);
        assert!(m.segments[1].h >= MIN_SEG, "a short range still gets room: {:?}", m.segments);
        assert_eq!(m.breaks().len(), 1);
        let hs: Vec<f64> = vals.iter().map(|&v| m.h(v)).collect();
        assert!(hs.windows(2).all(|w| w[0] < w[1]), "{hs:?}");
        assert!(hs[hs.len() - 1] <= PLOT - PLOT_PAD + 0.01 && hs[0] >= PLOT_PAD - 0.01, "{hs:?}");
        // Evenly spread values are never cut.
        let even: BTreeSet<u64> = (0..100u64).map(|i| 0x28 + i * 0x100).collect();
        assert_eq!(LsnMap::new(&even).segments.len(), 1);
        let single = LsnMap::new(&[0x28].into_iter().collect());
        assert_eq!(single.h(0x28), PLOT / 2.0);
    }

    #[test]
    fn text_is_escaped_and_wrapped() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        let w = wrap("requested starting point 0/10000 on timeline 1 is not in this server's history", 30);
        assert!(w.iter().all(|l| l.chars().count() <= 30), "{w:?}");
        assert_eq!(
            w.join(" "),
            "requested starting point 0/10000 on timeline 1 is not in this server's history"
        );
        assert_eq!(n1(12.0), "12");
        assert_eq!(n1(12.25), "12.3");
        assert_eq!(n1(-0.04), "0");
    }
}
