//! Geometry of the picture: where an event, an LSN and a label go.

use std::collections::BTreeSet;
use walsim_model::lsn::Tli;

pub(super) const LEFT: f64 = 150.0;
pub(super) const RIGHT: f64 = 40.0;
pub(super) const HEADER: f64 = 78.0;
pub(super) const BAND: f64 = 20.0;
pub(super) const PLOT: f64 = 160.0;
pub(super) const GAP: f64 = 46.0;
pub(super) const AXIS: f64 = 40.0;
/// Target width of the time axis.
pub(super) const PLOT_W: f64 = 1300.0;
/// Runs longer than this get idle stretches compressed.
pub(super) const COMPRESS_ABOVE: usize = 700;
/// Steps kept at full width on each side of something worth seeing.
pub(super) const NEAR: usize = 12;
/// Width of a step in a compressed stretch, relative to a full one.
pub(super) const QUIET: f64 = 0.2;
pub(super) const CHAR_W: f64 = 6.7;
/// Width given to the state after the last event.
pub(super) const TAIL: f64 = 18.0;
pub(super) const ROW_H: f64 = 13.0;
/// At most this many label rows above a lane.
pub(super) const MAX_ROWS: usize = 16;

/// A lane's band text: `primary · TLI 2`, `crash recovery · TLI 1`, `down`.
pub(super) fn role_text(status: &str, tli: Tli) -> String {
    match status {
        "down" => "down".to_string(),
        "recovery" => format!("crash recovery · TLI {tli}"),
        _ => format!("{status} · TLI {tli}"),
    }
}

/// Formats a coordinate with at most one decimal (`12`, `12.5`).
pub(super) fn n1(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() { format!("{}", r as i64) } else { format!("{r:.1}") }
}

pub(super) fn esc(s: &str) -> String {
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
pub(super) struct TimeMap {
    /// x of each step's start; one more entry for the end.
    pub(super) xs: Vec<f64>,
    /// Compressed stretches (first step, last step + 1).
    pub(super) quiet: Vec<(usize, usize)>,
    pub(super) factor: f64,
}

impl TimeMap {
    pub(super) fn new(n: usize, interesting: &[bool]) -> TimeMap {
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

    pub(super) fn x(&self, step: u64) -> f64 {
        self.xs[(step as usize).min(self.xs.len() - 1)]
    }

    pub(super) fn end(&self) -> f64 {
        *self.xs.last().expect("at least one entry")
    }
}

/// LSN → height within a plot, with long empty ranges cut out.
pub(super) struct LsnMap {
    /// Continuous ranges of LSNs, ascending.
    pub(super) segments: Vec<Seg>,
}

/// A continuous LSN range and where it is drawn.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seg {
    pub(super) a: u64,
    pub(super) b: u64,
    /// Height of `a` above the plot's bottom.
    pub(super) base: f64,
    /// Height of the range in pixels.
    pub(super) h: f64,
}

pub(super) const BREAK_PX: f64 = 12.0;
pub(super) const PLOT_PAD: f64 = 6.0;
/// A continuous range is at least this high, however few bytes it spans.
pub(super) const MIN_SEG: f64 = 24.0;

impl LsnMap {
    pub(super) fn new(values: &BTreeSet<u64>) -> LsnMap {
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
    pub(super) fn h(&self, l: u64) -> f64 {
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
    pub(super) fn breaks(&self) -> Vec<(f64, (u64, u64))> {
        self.segments.windows(2).map(|w| (w[0].base + w[0].h + BREAK_PX / 2.0, (w[0].b, w[1].a))).collect()
    }

    /// Axis ticks: LSNs at round hexadecimal values, at least 24 px apart.
    pub(super) fn ticks(&self) -> Vec<u64> {
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
pub(super) struct Label {
    pub(super) mark: usize,
    pub(super) row: usize,
    pub(super) x0: f64,
    pub(super) w: f64,
    pub(super) lines: Vec<String>,
}

/// Vertical layout: each lane is its band, its label rows, its plot.
pub(super) struct Layout {
    pub(super) tops: Vec<f64>,
    pub(super) zones: Vec<f64>,
    pub(super) labels: Vec<Label>,
    /// Bottom of the last lane.
    pub(super) end: f64,
}

impl Layout {
    pub(super) fn top(&self, i: usize) -> f64 {
        self.tops[i]
    }

    pub(super) fn plot_top(&self, i: usize) -> f64 {
        self.tops[i] + BAND + self.zones[i]
    }

    pub(super) fn plot_bottom(&self, i: usize) -> f64 {
        self.plot_top(i) + PLOT
    }
}

/// Free horizontal room per text row, for placing labels without overlap.
pub(super) struct Rows {
    pub(super) rows: Vec<Vec<(f64, f64)>>,
}

impl Rows {
    pub(super) fn new(n: usize) -> Rows {
        Rows { rows: vec![Vec::new(); n] }
    }

    /// The first row where `k` consecutive rows are free over [x0, x1];
    /// the last possible row when none is.
    pub(super) fn place(&mut self, x0: f64, x1: f64, k: usize) -> usize {
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
    pub(super) fn used(&self) -> usize {
        self.rows.iter().rposition(|r| !r.is_empty()).map_or(0, |i| i + 1)
    }
}

/// Splits `s` into lines of at most `width` characters at spaces.
pub(super) fn wrap(s: &str, width: usize) -> Vec<String> {
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

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Time ticks at round event indices, at least 56 px apart.
pub(super) fn time_ticks(tm: &TimeMap, n: usize) -> Vec<u64> {
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
