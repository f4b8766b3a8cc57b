//! Rendering the picture: the SVG and the HTML page around it.

use super::geometry::*;
use super::{Format, Mark, MarkKind, MsgKind, Picture};
use crate::report::timestamp;
use crate::run::Phase;
use crate::view::NodeView;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use walsim_model::lsn::{Lsn, LsnFormat};

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
    pub(super) fn count_text(&self) -> String {
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
                kind => {
                    let _ = write!(
                        g,
                        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>",
                        n1(x),
                        n1(x),
                        n1(top),
                        n1(bottom)
                    );
                    // A crash or power loss: a red cross on top of the line.
                    if matches!(kind, MarkKind::Crash | MarkKind::PowerLoss) {
                        let _ = write!(
                            g,
                            "<path d=\"M{} {}l10 10m0 -10l-10 10\" style=\"stroke:#d00;stroke-width:2.5\"/>",
                            n1(x - 5.0),
                            n1(top + 5.0)
                        );
                    }
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
