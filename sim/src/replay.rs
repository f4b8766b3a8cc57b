//! `walsim replay FILE`: run a saved trace's draws again and say whether
//! the run is the recorded one (same outcome, invariant, events and
//! `trace_hash`); `walsim replay` exits 3 when it is not.

use crate::report::{self, LogWriter, hash_hex};
use crate::run::{NoObserver, RunOptions, RunResult};
use crate::trace::{Trace, WALSIM_VERSION};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use walsim_model::Settings;

/// A replayed trace.
pub struct Replayed {
    pub trace: Trace,
    pub settings: Settings,
    pub result: RunResult,
}

/// Loads and replays `path`; with `log`, writes the run's log there.
pub fn replay(path: &Path, log: Option<&mut dyn Write>) -> Result<Replayed, String> {
    let trace = Trace::load(path)?;
    let settings = trace.settings().map_err(|e| format!("{}: {e}", path.display()))?;
    let result = match log {
        Some(out) => {
            let opts = RunOptions { record: false, log: true, max_events: None };
            let mut w = LogWriter { out, style: settings.log.lsn_format, error: None };
            let r = trace.replay(&settings, opts, &mut w);
            if let Some(e) = w.error {
                return Err(format!("writing the log: {e}"));
            }
            r
        }
        None => trace.replay(&settings, RunOptions::default(), &mut NoObserver),
    };
    Ok(Replayed { trace, settings, result })
}

impl Replayed {
    pub fn reproduced(&self) -> bool {
        self.trace.reproduced_by(&self.result)
    }

    /// A warning when the file comes from another walsim release.
    pub fn version_warning(&self) -> Option<String> {
        (self.trace.walsim_version != WALSIM_VERSION).then(|| {
            format!(
                "warning: the trace was written by walsim {}, this is {WALSIM_VERSION}: the replay may differ",
                self.trace.walsim_version
            )
        })
    }

    /// `walsim run --json`'s summary plus the replay's verdict.
    pub fn json(&self, path: &Path) -> Value {
        let mut v = report::summary_json(&self.result, &self.settings);
        let rec = &self.trace.recorded;
        v["file"] = json!(path.display().to_string());
        v["note"] = json!(self.trace.note);
        v["reproduced"] = json!(self.reproduced());
        v["differences"] = json!(self.trace.differences(&self.result));
        v["recorded"] = json!({
            "outcome": rec.outcome,
            "invariant": rec.invariant,
            "events": rec.events,
            "trace_hash": hash_hex(rec.trace_hash),
        });
        v
    }

    pub fn text(&self, path: &Path) -> String {
        let mut s = format!("walsim replay: {} ({})\n", path.display(), self.trace.note);
        s.push_str(&report::summary_text(&self.result));
        let rec = &self.trace.recorded;
        let diff = self.trace.differences(&self.result);
        if diff.is_empty() {
            s.push_str("reproduced: the same trace_hash as the recorded run\n");
        } else {
            s.push_str(&format!(
                "NOT reproduced: {} (the recorded run: {}, {} events, trace_hash {})\n",
                diff.join("; "),
                rec.outcome,
                rec.events,
                hash_hex(rec.trace_hash)
            ));
        }
        s
    }
}
