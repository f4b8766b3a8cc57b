//! Scenarios are data: a TOML file with settings, an ordered operator
//! script (`[[operator]]`), and a `[scenario]` table naming it and saying
//! what every seed should end in. The built-in ones are such files, shipped
//! in `sim/scenarios/`; users run their own with `--scenario FILE.toml`.

use crate::config::{self, ConfigError};
use crate::run::{Outcome, RunResult};
use serde::Deserialize;
use std::path::Path;
use walsim_model::Settings;
use walsim_model::event::RefusalKind;

/// The `[scenario]` table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub name: String,
    pub description: String,
    /// The outcome every seed should end in.
    #[serde(default)]
    pub expect: Option<Outcome>,
    /// Refusal kinds that must all appear (when `expect = "refused"`).
    #[serde(default)]
    pub expect_refusals: Vec<RefusalKind>,
    /// Texts that must appear in what is stuck (when `expect = "stuck"`).
    #[serde(default)]
    pub expect_waits: Vec<String>,
    /// Rarer endings some seeds may have instead, each a real outcome of
    /// the story (e.g. `violation` where WAL framing happens to coincide).
    #[serde(default)]
    pub also: Vec<Outcome>,
}

impl Meta {
    /// The expectations `r` fails, one sentence each, naming the key
    /// (`expect`, `expect_refusals`, `expect_waits`); empty when the run
    /// ends as the scenario says. `walsim run --scenario` and the tests
    /// both judge runs with this.
    pub fn check(&self, r: &RunResult) -> Vec<String> {
        let mut failed = Vec::new();
        if self.also.contains(&r.outcome) {
            return failed; // a documented rarer ending
        }
        if let Some(expect) = self.expect
            && r.outcome != expect
        {
            failed.push(format!(
                "expect = \"{}\", but the run ended {}: {}",
                expect.name(),
                r.outcome.name(),
                r.detail
            ));
        }
        for kind in &self.expect_refusals {
            if !r.refusals.iter().any(|x| x.kind == *kind) {
                let name = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(String::from));
                let seen: Vec<String> = r
                    .refusals
                    .iter()
                    .filter_map(|x| serde_json::to_value(x.kind).ok()?.as_str().map(String::from))
                    .collect();
                failed.push(format!(
                    "expect_refusals: no {} refusal (the run's refusals: {})",
                    name.unwrap_or_else(|| format!("{kind:?}")),
                    if seen.is_empty() { "none".into() } else { seen.join(", ") }
                ));
            }
        }
        for w in &self.expect_waits {
            if !r.detail.contains(w.as_str()) {
                failed.push(format!("expect_waits: {w:?} is not in what the run ended with: {}", r.detail));
            }
        }
        failed
    }
}

/// A loaded scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub meta: Meta,
    pub settings: Settings,
    /// The TOML text it came from.
    pub text: String,
}

/// `(name, text)` of built-in scenarios, each read from
/// `scenarios/NAME.toml`, so a name cannot drift from its file.
macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../scenarios/", $name, ".toml")))),*]
    };
}

/// The built-in scenarios: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = builtin![
    "blog-data-flush-standby-down",
    "blog-failback-commit",
    "blog-failback-data-flush",
    "rewind-after-divergence",
    "rewind-without-hints",
    "clean-switchover",
    "truncate-data-flush",
    "diverged-naive-after-immediate",
    "diverged-naive-after-fast",
    "diverged-rewind",
    "lagging-standby-ahead",
    "sync-standby-down",
    "history-file-before-start",
    "second-start-after-history-fetch",
    "history-file-clean-shutdown",
    "rewind-before-checkpoint",
    "sync-first-restart",
    "sync-any-both-down",
    "remote-apply-replay-paused",
    "standby-down-archive",
    "double-promotion-archive",
    "rewind-restore-target-wal",
    "history-file-from-archive",
    "segment-removed-standby-down",
    "slot-keeps-standby-down",
    "slot-invalidated-standby-down",
    "segment-removed-switchover",
    "rewind-target-wal-removed",
];

/// Loads a built-in scenario by name, or a file by path. `base` is the
/// table of an optional `--config` file; `sets` are `--set` overrides,
/// applied last.
pub fn load(name_or_path: &str, base: toml::Table, sets: &[String]) -> Result<Scenario, ConfigError> {
    let (origin, text) = match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
        Some((n, t)) => (format!("built-in scenario {n}"), (*t).to_string()),
        None => {
            let p = Path::new(name_or_path);
            if !name_or_path.ends_with(".toml") && !p.exists() {
                let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                return Err(ConfigError(format!(
                    "no scenario named {name_or_path} (built-in: {}; or give a .toml file)",
                    names.join(", ")
                )));
            }
            let text = crate::input::read_text_limited(p, crate::input::TOML_LIMIT, "scenario file")
                .map_err(ConfigError)?;
            (format!("scenario file {name_or_path}"), text)
        }
    };
    parse(&origin, &text, base, sets)
}

/// Parses scenario text. Errors name the file (or built-in) and the line.
pub fn parse(
    origin: &str,
    text: &str,
    mut base: toml::Table,
    sets: &[String],
) -> Result<Scenario, ConfigError> {
    let mut table = config::parse_table(origin, text)?;
    let meta_value = table.remove("scenario").ok_or_else(|| {
        ConfigError(format!("{origin}: missing the [scenario] table (name, description, expect)"))
    })?;
    let meta: Meta = serde_path_to_error::deserialize(meta_value).map_err(|e| {
        let path = e.path().to_string();
        let key = format!("scenario.{path}");
        let line = config::line_of_key(text, &key).map(|l| format!(" at line {l}")).unwrap_or_default();
        // serde_path_to_error's path is "." for the table itself.
        let at = if path == "." { String::new() } else { format!(" {path}") };
        ConfigError(format!("{origin}{line}: [scenario]{at}: {}", first_line(&e.into_inner().to_string())))
    })?;
    for (k, v) in table {
        base.insert(k, v);
    }
    let settings = config::settings_with_overrides(base, sets, Some((origin, text)))?;
    Ok(Scenario { meta, settings, text: text.to_string() })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

/// One line per built-in scenario: name and description.
pub fn list() -> String {
    let mut out = String::new();
    for (name, text) in BUILTIN {
        let desc = parse(name, text, toml::Table::new(), &[]).map(|s| s.meta.description).unwrap_or_default();
        out.push_str(&format!("{name:32} {desc}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_are_named_like_their_files() {
        for (name, text) in BUILTIN {
            let s = parse(name, text, toml::Table::new(), &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&s.meta.name, name);
            assert!(s.meta.expect.is_some(), "{name} says what to expect");
        }
    }

    #[test]
    fn bad_files_name_the_line() {
        let text = "synchronous_commit = \"on\"\n\n[scenario]\nname = \"x\"\ndescription = \"y\"\n\n[workload]\nclients = \"many\"\n";
        let e = parse("f.toml", text, toml::Table::new(), &[]).unwrap_err().0;
        assert!(e.contains("f.toml") && e.contains("line 8") && e.contains("workload.clients"), "{e}");
        let e = parse("f.toml", "[scenario]\nname = \"x\"\n", toml::Table::new(), &[]).unwrap_err().0;
        assert!(e.contains("description"), "{e}");
        let e = parse("f.toml", "[scenario\n", toml::Table::new(), &[]).unwrap_err().0;
        assert!(e.contains("line 1"), "{e}");
        let text = "[scenario]\nname = \"x\"\ndescription = \"y\"\n\n[[operator]]\naction = \"explode\"\nnode = \"node1\"\n";
        let e = parse("f.toml", text, toml::Table::new(), &[]).unwrap_err().0;
        assert!(e.contains("line 6") && e.contains("explode"), "{e}");
        assert!(load("no-such-scenario", toml::Table::new(), &[]).unwrap_err().0.contains("built-in"));
    }
}
