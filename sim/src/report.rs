//! Output of a run: PostgreSQL-style log lines, the JSON summary, the
//! human summary, and the per-event JSONL export.

use crate::run::{Observer, Phase, RunResult};
use crate::view::StepView;
use serde_json::{Value, json};
use std::io::Write;
use walsim_model::log::LogLine;
use walsim_model::lsn::LsnFormat;
use walsim_model::{Cluster, Event, Settings};

/// Simulated milliseconds per step.
pub const MS_PER_STEP: u64 = 1;

/// `%m` for a step: PostgreSQL's epoch (2000-01-01 UTC) plus simulated
/// time.
pub fn timestamp(step: u64) -> String {
    let ms = step * MS_PER_STEP;
    let (secs, milli) = (ms / 1000, ms % 1000);
    let days = (secs / 86_400) as i64 + 10_957; // 1970-01-01 → 2000-01-01
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{milli:03} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Rewrites every `%X/%X` token to `%X/%08X` (newer servers' style).
pub fn repad_lsns(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len() + 8);
    let bytes = msg.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let is_hex = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
        let start_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric());
        if start_ok && is_hex(bytes[i]) {
            let mut j = i;
            while j < bytes.len() && is_hex(bytes[j]) {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'/' && j - i <= 8 {
                let mut k = j + 1;
                while k < bytes.len() && is_hex(bytes[k]) {
                    k += 1;
                }
                let end_ok = k == bytes.len() || !bytes[k].is_ascii_alphanumeric();
                if k > j + 1 && k - j - 1 <= 8 && end_ok {
                    out.push_str(&msg[i..=j]);
                    for _ in 0..(8 - (k - j - 1)) {
                        out.push('0');
                    }
                    out.push_str(&msg[j + 1..k]);
                    i = k;
                    continue;
                }
            }
            out.push_str(&msg[i..j]);
            i = j;
            continue;
        }
        let ch = msg[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Formats one line as `log_line_prefix = '%m [%p] %b '` would, with the
/// node's name.
pub fn format_line(step: u64, line: &LogLine, style: LsnFormat) -> String {
    let node = line.node;
    let msg = match style {
        LsnFormat::Classic => line.message.clone(),
        LsnFormat::Padded => repad_lsns(&line.message),
    };
    format!(
        "{} [{}] {} {} {}:  {}",
        timestamp(step),
        line.process.pid(node),
        node,
        line.process.backend_type(),
        line.level.name(),
        msg
    )
}

/// Writes the log of every step (`--log`). A step whose event logged
/// nothing gets a DEBUG line naming the event, so there is at least one
/// line per event.
pub struct LogWriter<'a> {
    pub out: &'a mut dyn Write,
    pub style: LsnFormat,
    pub error: Option<std::io::Error>,
}

impl Observer for LogWriter<'_> {
    fn step(
        &mut self,
        step: u64,
        _phase: Phase,
        ev: &Event,
        _arg: Option<u64>,
        _: &Cluster,
        lines: &[LogLine],
    ) {
        for line in step_lines(step, ev, lines, self.style) {
            self.emit(line);
        }
    }
}

/// The log of one step as `--log` prints it (and `walsim picture` shows
/// on hover): its lines, or, when the event logged nothing, one DEBUG line
/// naming the event, so there is at least one line per event.
pub fn step_lines(step: u64, ev: &Event, lines: &[LogLine], style: LsnFormat) -> Vec<String> {
    if lines.is_empty() {
        let pid = walsim_model::log::Process::Postmaster.pid(ev.node());
        return vec![format!("{} [{pid}] {} postmaster DEBUG:  event: {ev}", timestamp(step), ev.node())];
    }
    lines.iter().map(|l| format_line(step, l, style)).collect()
}

impl LogWriter<'_> {
    fn emit(&mut self, line: String) {
        if self.error.is_none()
            && let Err(e) = writeln!(self.out, "{line}")
        {
            self.error = Some(e);
        }
    }
}

/// Writes one JSON line per event with every node's positions
/// ([`StepView`], the same view `walsim picture` draws).
pub struct JsonlWriter<W: Write> {
    pub out: W,
    pub error: Option<std::io::Error>,
}

impl<W: Write> Observer for JsonlWriter<W> {
    fn step(
        &mut self,
        step: u64,
        phase: Phase,
        ev: &Event,
        arg: Option<u64>,
        cluster: &Cluster,
        _: &[LogLine],
    ) {
        if self.error.is_some() {
            return;
        }
        let view = StepView::capture(step, phase, ev, arg, cluster);
        let res = serde_json::to_writer(&mut self.out, &view)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(self.out));
        if let Err(e) = res {
            self.error = Some(e);
        }
    }
}

/// Runs several observers.
pub struct Tee<'a>(pub Vec<&'a mut dyn Observer>);

impl Observer for Tee<'_> {
    fn step(
        &mut self,
        step: u64,
        phase: Phase,
        ev: &Event,
        arg: Option<u64>,
        cluster: &Cluster,
        log: &[LogLine],
    ) {
        for o in &mut self.0 {
            o.step(step, phase, ev, arg, cluster, log);
        }
    }
}

/// `trace_hash` as printed: 16 hex digits.
pub fn hash_hex(h: u64) -> String {
    format!("{h:016x}")
}

/// The `--json` summary of a run.
pub fn summary_json(r: &RunResult, settings: &Settings) -> Value {
    json!({
        "seed": r.seed,
        "outcome": r.outcome.name(),
        "invariant": r.invariant().map(|i| i.name()),
        "node": r.violation.as_ref().and_then(|v| v.node).map(|n| n.name()),
        "detail": r.detail,
        "events": r.events,
        "trace_hash": hash_hex(r.trace_hash),
                "stats": r.stats,
        "failbacks": r.failbacks,
        "refusals": r.refusals,
        "observations": r.observations.iter().map(|o| json!({"invariant": o.invariant.name(), "detail": o.detail})).collect::<Vec<_>>(),
        "config": serde_json::to_value(settings).expect("settings serialize"),
    })
}

/// The default human summary.
pub fn summary_text(r: &RunResult) -> String {
    let mut s =
        format!("walsim run: seed {}, {} events, trace_hash {}\n", r.seed, r.events, hash_hex(r.trace_hash));
    match r.invariant() {
        Some(inv) => s.push_str(&format!("outcome: violation of {inv}\n  {}\n", r.detail)),
        None => s.push_str(&format!("outcome: {} ({})\n", r.outcome.name(), r.detail)),
    }
    for a in &r.failbacks {
        s.push_str(&format!(
            "failback of {} by {} onto {}: {:?}\n",
            a.node,
            a.strategy.name(),
            a.upstream,
            a.result
        ));
    }
    for o in &r.observations {
        s.push_str(&format!("observed (not expected to hold here): {o}\n"));
    }
    let st = &r.stats;
    s.push_str(&format!(
        "commits acknowledged {}, in doubt {}, failed {}; process crashes {}, power losses {}\n",
        st.commits_acknowledged,
        st.commits_in_doubt,
        st.transactions_failed,
        st.process_crashes,
        st.power_losses
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_start_at_the_postgres_epoch() {
        assert_eq!(timestamp(0), "2000-01-01 00:00:00.000 UTC");
        assert_eq!(timestamp(86_400_000 + 61_001), "2000-01-02 00:01:01.001 UTC");
        assert_eq!(timestamp(60 * 86_400_000), "2000-03-01 00:00:00.000 UTC");
    }

    #[test]
    fn repads_only_lsns() {
        assert_eq!(repad_lsns("redo starts at 0/3000060"), "redo starts at 0/03000060");
        assert_eq!(repad_lsns("at 0/2D0C99D8 and 1/28."), "at 0/2D0C99D8 and 1/00000028.");
        assert_eq!(repad_lsns("3/4 of x/y AB/CDx"), "3/00000004 of x/y AB/CDx");
    }
}
