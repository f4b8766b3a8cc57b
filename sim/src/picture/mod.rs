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

use crate::report::step_lines;
use crate::run::{Observer, Phase, RunResult};
use crate::view::{self, NodeView};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use walsim_model::ids::NodeId;
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
    queued: BTreeMap<(NodeId, NodeId, Dir), VecDeque<u64>>,
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
                let (from, to) = (from.index(), node.index());
                self.messages.push(Message { kind, from, to, sent, end: step, lost: false, pending: false });
            }
        }
        let mut live: BTreeMap<(NodeId, NodeId, Dir), usize> = BTreeMap::new();
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
        let gone: Vec<(NodeId, NodeId, Dir)> =
            self.queued.keys().filter(|k| !live.contains_key(k)).copied().collect();
        for key in gone {
            for sent in self.queued.remove(&key).unwrap_or_default() {
                self.messages.push(lost(key, sent, step));
            }
        }
    }

    /// Marks for what the step did beyond moving positions.
    fn track_marks(&mut self, step: u64, ev: &Event, raw: &[walsim_model::log::LogLine], cluster: &Cluster) {
        let me = ev.node().index();
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
                let label = format!("partition {node} | {peer}");
                self.mark(step, node.index(), MarkKind::Partition, label.clone());
                self.mark(step, peer.index(), MarkKind::Partition, label);
            }
            Event::Heal { node, peer } => {
                let label = format!("partition {node} | {peer} heals");
                self.mark(step, node.index(), MarkKind::Heal, label.clone());
                self.mark(step, peer.index(), MarkKind::Heal, label);
            }
            Event::Connect { node } => {
                if let Some(up) = cluster.nodes[node.index()].upstream {
                    let (from, to) = (node.index(), up.index());
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
            if n.tli > Tli(1)
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
                let (node, label) = (n.id.index(), self.styled(label));
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
                && d.index() == node
                && let Some(up) = cluster.nodes[node].upstream
            {
                let from = up.index();
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
            let node = o.node.map_or(me, walsim_model::ids::NodeId::index);
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
            let node = v.node.map_or(self.steps[last].event.node().index(), walsim_model::ids::NodeId::index);
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

fn lost((up, down, dir): (NodeId, NodeId, Dir), sent: u64, step: u64) -> Message {
    let (from, to, kind) = match dir {
        Dir::ToStandby => (up, down, MsgKind::Wal),
        Dir::ToUpstream => (down, up, MsgKind::Feedback),
    };
    Message { kind, from: from.index(), to: to.index(), sent, end: step, lost: true, pending: false }
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
    fn step(
        &mut self,
        step: u64,
        phase: Phase,
        ev: &Event,
        _arg: Option<u64>,
        cluster: &Cluster,
        raw: &[walsim_model::log::LogLine],
    ) {
        self.seen += 1;
        if self.steps.len() >= self.limit {
            return;
        }
        let lines = step_lines(step, ev, raw, self.style);
        self.track_messages(step, ev, cluster);
        self.track_marks(step, ev, raw, cluster);
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

mod geometry;
mod render;

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

#[cfg(test)]
mod tests {
    use super::geometry::*;
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
