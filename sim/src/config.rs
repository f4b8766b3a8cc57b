//! Loading settings: built-in defaults, then a TOML file, then `--set
//! KEY=VALUE` overrides on the same dotted keys. Unknown keys and bad
//! values are errors that name the key (and the file or flag).

use std::fmt;
use std::path::Path;
use walsim_model::Settings;

/// A configuration error: one line naming the key or file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Parses a `--set` value: any TOML value (`true`, `42`, `0.5`, `"x"`,
/// `["data", "clog"]`), or else the bare text as a string (`on`, `*`).
pub fn parse_value(text: &str) -> toml::Value {
    let doc = format!("v = {text}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(text.to_string())),
        Err(_) => toml::Value::String(text.to_string()),
    }
}

/// Splits `a.b.c=value`.
pub fn split_assignment(s: &str) -> Result<(&str, &str), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v.trim())),
        _ => Err(ConfigError(format!("--set {s}: expected KEY=VALUE, e.g. --set synchronous_commit=local"))),
    }
}

/// Sets a dotted key in a table, creating sections as needed.
pub fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("split yields at least one part");
    let mut t = table;
    let mut path = String::new();
    for p in parts {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(p);
        let entry = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| ConfigError(format!("--set {key}: {path} is a setting, not a section")))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}

/// Parses TOML text; a syntax error names `origin` and the line.
pub fn parse_table(origin: &str, text: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().to_string();
        let at = e.span().map(|s| format!(" at line {}", line_at(text, s.start))).unwrap_or_default();
        ConfigError(format!("{origin}{at}: {msg}"))
    })
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Reads a TOML config file into a table (and its text, for messages).
pub fn read_table(path: &Path) -> Result<(toml::Table, String), ConfigError> {
    let text = crate::input::read_text_limited(path, crate::input::TOML_LIMIT, "config file")
        .map_err(ConfigError)?;
    let table = parse_table(&format!("config file {}", path.display()), &text)?;
    Ok((table, text))
}

/// The line of `text` that sets dotted `key` (`workload.clients`,
/// `operator[1].action`), or else the header of its table; for messages.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let mut section = String::new();
    let mut arrays: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut header_line = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = name.trim().to_string();
            let n = arrays.entry(name.clone()).and_modify(|n| *n += 1).or_insert(0);
            section = format!("{name}[{n}]");
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            section = name.trim().to_string();
        } else {
            if let Some((k, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
                let k = k.trim().trim_matches('"');
                let full = if section.is_empty() { k.to_string() } else { format!("{section}.{k}") };
                if full == key {
                    return Some(i + 1);
                }
            }
            continue;
        }
        let within = key == section || key.starts_with(&format!("{section}."));
        if within && header_line.is_none() {
            header_line = Some(i + 1);
        }
    }
    header_line
}

/// Turns a table into validated settings. `source` is where the table came
/// from (a name and its text), to name the line of a bad key; `set_keys`
/// are the keys given with `--set`.
pub fn settings_from_table(
    table: toml::Table,
    source: Option<(&str, &str)>,
    set_keys: &[String],
) -> Result<Settings, ConfigError> {
    let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner.lines().next().unwrap_or("").trim().to_string();
        // serde names an unknown field in the message; make it a full key
        // (the path may already end with it).
        let key = match inner.strip_prefix("unknown field `").and_then(|r| r.split_once('`')) {
            Some((field, _)) if path == "." || path.is_empty() => field.to_string(),
            Some((field, _)) if path == field || path.ends_with(&format!(".{field}")) => path,
            Some((field, _)) => format!("{path}.{field}"),
            None => path,
        };
        let what = if inner.starts_with("unknown field") {
            format!("unknown key {key}")
        } else {
            format!("invalid value for {key}: {}", type_error_text(&inner))
        };
        ConfigError(format!("{}{what}", source_of(&key, source, set_keys)))
    })?;
    settings.validate().map_err(|e| {
        let (keys, text) = cross_field(&e, &settings);
        ConfigError(format!("{}{text}", source_of_any(&keys, source, set_keys)))
    })?;
    if settings.scheduler.steps > crate::args::MAX_STEPS {
        let key = "scheduler.steps";
        return Err(ConfigError(format!(
            "{}invalid value for {key}: {} is more than {} (10^9 events take about a quarter of an hour; \
             run more seeds instead)",
            source_of(key, source, set_keys),
            settings.scheduler.steps,
            crate::args::MAX_STEPS
        )));
    }
    Ok(settings)
}

/// serde's type errors (`invalid type: string "x", expected f64`) as a
/// user reads them (`"x" is not a number, e.g. 0.01`).
fn type_error_text(inner: &str) -> String {
    let Some((got, want)) = inner
        .strip_prefix("invalid type: ")
        .or_else(|| inner.strip_prefix("invalid value: "))
        .and_then(|r| r.rsplit_once(", expected "))
    else {
        return inner.to_string();
    };
    let want = match want {
        "u8" => "a whole number in 0..255".to_string(),
        "u16" => "a whole number in 0..65535".to_string(),
        "u32" => "a whole number in 0..4294967295".to_string(),
        // TOML integers are signed 64-bit.
        "u64" | "usize" => format!("a whole number in 0..{}", i64::MAX),
        "f64" | "f32" => "a number, e.g. 0.01".to_string(),
        "a boolean" => "a boolean (on, off, true or false)".to_string(),
        other => other.to_string(),
    };
    let got = if let Some(s) = got.strip_prefix("string ") {
        // A number too large for TOML arrives as text: show it as a number.
        let bare = s.trim_matches('"');
        if !bare.is_empty() && bare.parse::<f64>().is_ok() { bare.to_string() } else { s.to_string() }
    } else if let Some(n) = got.split('`').nth(1) {
        n.to_string() // integer `5000000000`, floating point `1.5`, boolean `true`
    } else {
        got.to_string()
    };
    format!("{got} is not {want}")
}

/// A validation error as a sentence, and every key it depends on: a
/// cross-field rule names the keys on both sides, so the error is blamed
/// on (and names) the one the user set.
fn cross_field(e: &walsim_model::settings::InvalidSetting, s: &Settings) -> (Vec<String>, String) {
    let one = |e: &walsim_model::settings::InvalidSetting| (vec![e.key.clone()], e.to_string());
    match e.key.as_str() {
        "max_wal_size" if s.max_wal_size.0.0 < s.wal_segment_size.0 => (
            vec!["max_wal_size".into(), "wal_segment_size".into()],
            format!(
                "max_wal_size ({}) must be at least wal_segment_size ({})",
                s.max_wal_size.0, s.wal_segment_size
            ),
        ),
        "workload.select_percent" => {
            (vec!["workload.select_percent".into(), "workload.update_percent".into()], e.to_string())
        }
        k if k.starts_with("operator[") && e.message.contains("no node named") => (
            vec![e.key.clone(), "cluster.standbys".into(), "operator".into()],
            format!(
                "{e}: the operator script names a node that does not exist with cluster.standbys = {}; \
                 drop the script with --set operator=[] or raise cluster.standbys",
                s.cluster.standbys
            ),
        ),
        _ => one(e),
    }
}

/// [`source_of`] for the first of `keys` the user set (or, failing that,
/// found in the file).
fn source_of_any(keys: &[String], source: Option<(&str, &str)>, set_keys: &[String]) -> String {
    let from_set = keys.iter().find(|k| !source_of(k, None, set_keys).is_empty());
    match from_set {
        Some(k) => source_of(k, source, set_keys),
        None => {
            let in_file =
                keys.iter().find(|k| source.is_some_and(|(_, text)| line_of_key(text, k).is_some()));
            source_of(in_file.unwrap_or(&keys[0]), source, set_keys)
        }
    }
}

fn source_of(key: &str, source: Option<(&str, &str)>, set_keys: &[String]) -> String {
    let from_set = set_keys
        .iter()
        .any(|k| k == key || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}.")));
    if from_set {
        return "--set: ".to_string();
    }
    match source {
        Some((origin, text)) => match line_of_key(text, key) {
            Some(l) => format!("{origin} at line {l}: "),
            None => format!("{origin}: "),
        },
        None => String::new(),
    }
}

/// `table`, then `sets` (each `KEY=VALUE`), as validated settings.
pub fn settings_with_overrides(
    mut table: toml::Table,
    sets: &[String],
    source: Option<(&str, &str)>,
) -> Result<Settings, ConfigError> {
    let keys = apply_sets(&mut table, sets)?;
    settings_from_table(table, source, &keys)
}

/// Applies `sets` (each `KEY=VALUE`) to `table`; returns the keys set.
fn apply_sets(table: &mut toml::Table, sets: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut keys = Vec::new();
    for s in sets {
        let (k, v) = split_assignment(s)?;
        set_dotted(table, k, parse_value_for(k, v))?;
        keys.push(k.to_string());
    }
    Ok(keys)
}

/// Defaults, then `file`, then `sets` (each `KEY=VALUE`).
pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Settings, ConfigError> {
    let loaded = load_table(file, sets)?;
    loaded.settings(loaded.table.clone())
}

/// A config file and `--set` assignments read into one table, not yet
/// validated; for commands that vary settings further (`explore`).
pub struct Loaded {
    pub table: toml::Table,
    /// The keys given with `--set`.
    pub set_keys: Vec<String>,
    /// The file's name and text, to name the line of a bad key.
    file: Option<(String, String)>,
}

impl Loaded {
    /// `table` (this one, or one derived from it) as validated settings;
    /// a bad key is named by its line in the file, or as from `--set`.
    pub fn settings(&self, table: toml::Table) -> Result<Settings, ConfigError> {
        let source = self.file.as_ref().map(|(origin, text)| (origin.as_str(), text.as_str()));
        settings_from_table(table, source, &self.set_keys)
    }
}

/// `file` then `sets`, read once.
pub fn load_table(file: Option<&Path>, sets: &[String]) -> Result<Loaded, ConfigError> {
    let (mut table, file) = match file {
        Some(p) => {
            let (table, text) = read_table(p)?;
            (table, Some((format!("config file {}", p.display()), text)))
        }
        None => (toml::Table::new(), None),
    };
    let set_keys = apply_sets(&mut table, sets)?;
    Ok(Loaded { table, set_keys, file })
}

/// [`parse_value`], but a boolean setting also takes PostgreSQL's
/// spellings (`on`, `off`, `yes`, `no`), as `postgresql.conf` does.
///
/// A number setting (a probability) also takes what Rust reads as a
/// float (`NaN`, `inf`, `1e400`), so validation can say why it is out of
/// range instead of a type error.
pub fn parse_value_for(key: &str, text: &str) -> toml::Value {
    let v = parse_value(text);
    let default = to_table(&Settings::default());
    let default = get_dotted(&default, key);
    let is_bool = default.is_some_and(toml::Value::is_bool);
    let is_float = default.is_some_and(toml::Value::is_float);
    match (is_bool, v.as_str().map(str::to_ascii_lowercase).as_deref()) {
        (true, Some("on" | "yes")) => toml::Value::Boolean(true),
        (true, Some("off" | "no")) => toml::Value::Boolean(false),
        _ => match (is_float, v.as_str().map(|t| t.trim().parse::<f64>())) {
            (true, Some(Ok(x))) => toml::Value::Float(x),
            _ => v,
        },
    }
}

/// A value in a table by dotted key.
pub fn get_dotted<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let (sections, last) = match key.rsplit_once('.') {
        Some((s, l)) => (Some(s), l),
        None => (None, key),
    };
    let mut t = table;
    for p in sections.into_iter().flat_map(|s| s.split('.')) {
        t = t.get(p)?.as_table()?;
    }
    t.get(last)
}

/// Every setting as a table (the form `--set` and config files edit).
pub fn to_table(s: &Settings) -> toml::Table {
    toml::Table::try_from(s).expect("settings serialize to TOML")
}

/// Every setting of a table by dotted key.
pub fn flatten(table: &toml::Table) -> std::collections::BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut std::collections::BTreeMap<String, toml::Value>) {
        for (k, v) in t {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v.as_table() {
                Some(sub) => walk(&key, sub, out),
                None => {
                    out.insert(key, v.clone());
                }
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk("", table, &mut out);
    out
}

/// The settings that differ from the defaults, as `--set KEY=VALUE`
/// arguments (`KEY=VALUE` each), so `walsim run` can reproduce them.
pub fn sets_from_defaults(s: &Settings) -> Vec<String> {
    let defaults = flatten(&to_table(&Settings::default()));
    flatten(&to_table(s))
        .into_iter()
        .filter(|(k, v)| defaults.get(k) != Some(v))
        .map(|(k, v)| format!("{k}={}", value_text(&v)))
        .collect()
}

/// The `walsim run` command line of a run.
pub fn run_command(s: &Settings, seed: u64) -> String {
    let mut cmd = format!("walsim run --seed {seed}");
    for set in sets_from_defaults(s) {
        cmd.push_str(&format!(" --set '{set}'"));
    }
    cmd
}

/// A value as a user writes it after `KEY=`: strings bare, the rest as TOML.
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The complete default configuration as TOML.
pub fn defaults_toml() -> String {
    let body = toml::to_string(&Settings::default()).expect("defaults serialize");
    format!(
        "# walsim default configuration. PostgreSQL settings are top-level keys named as\n\
         # the GUCs; walsim's own settings are in sections. See docs/configuration.md.\n\n{body}"
    )
}

/// Every setting of `s` as TOML, headed like [`defaults_toml`]: what
/// `config --print-defaults` prints when `--config` or `--set` is given.
pub fn effective_toml(s: &Settings) -> String {
    let body = toml::to_string(s).expect("settings serialize");
    let changed = sets_from_defaults(s);
    let mut head = String::from(
        "# walsim effective configuration: the defaults with --config and --set applied.\n\
         # See docs/configuration.md.\n",
    );
    if !changed.is_empty() {
        head.push_str("# Differs from the defaults in: ");
        let keys: Vec<&str> = changed.iter().map(|c| c.split('=').next().unwrap_or(c)).collect();
        head.push_str(&keys.join(", "));
        head.push('\n');
    }
    format!("{head}\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_overrides_and_errors_name_the_key() {
        let s =
            load(None, &["synchronous_commit=local".into(), "rules.wal_before_data=false".into()]).unwrap();
        assert_eq!(s.synchronous_commit, walsim_model::settings::SynchronousCommit::Local);
        assert!(!s.rules.wal_before_data);
        let e = load(None, &["synchronous_commit=bogus".into()]).unwrap_err().0;
        assert!(e.contains("synchronous_commit") && e.contains("bogus"), "{e}");
        let e = load(None, &["workload.nonsense=1".into()]).unwrap_err().0;
        assert_eq!(e, "--set: unknown key workload.nonsense");
        let e = load(None, &["nonsense=1".into()]).unwrap_err().0;
        assert_eq!(e, "--set: unknown key nonsense");
        let e = load(None, &["cluster.rel_pages=0".into()]).unwrap_err().0;
        assert!(e.contains("cluster.rel_pages"), "{e}");
        let e = load(None, &["novalue".into()]).unwrap_err().0;
        assert!(e.contains("KEY=VALUE"), "{e}");
    }

    #[test]
    fn booleans_take_postgres_spellings_only_where_boolean() {
        assert_eq!(parse_value_for("wal_log_hints", "on"), toml::Value::Boolean(true));
        assert_eq!(parse_value_for("rules.wal_before_data", "off"), toml::Value::Boolean(false));
        assert_eq!(parse_value_for("synchronous_commit", "on"), toml::Value::String("on".into()));
        let s = load(None, &["wal_log_hints=on".into()]).unwrap();
        assert!(s.wal_log_hints);
    }

    #[test]
    fn dotted_lookup_and_value_text() {
        let t = to_table(&Settings::default());
        assert_eq!(get_dotted(&t, "failover.failback").map(value_text).as_deref(), Some("naive"));
        assert_eq!(get_dotted(&t, "wal_log_hints").map(value_text).as_deref(), Some("false"));
        assert!(get_dotted(&t, "failover.nonsense").is_none());
        assert!(get_dotted(&t, "wal_log_hints.x").is_none());
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = defaults_toml();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let s = settings_from_table(table, None, &[]).unwrap();
        assert_eq!(s, Settings::default());
    }

    /// An operator step is written back with only what differs from a
    /// step's defaults: `wait = true` (the default) is left out,
    /// `wait = false` kept, and both read back as they were.
    #[test]
    fn operator_steps_round_trip_writing_only_non_defaults() {
        use walsim_model::script::{Action, Step};
        let mut s = Settings::default();
        let waits = Step::new(Action::Checkpoint, "node1");
        assert!(waits.wait);
        let mut detached = waits.clone();
        detached.wait = false;
        s.operator = vec![waits, detached];
        let text = toml::to_string(&s).unwrap();
        assert_eq!(text.matches("wait = false").count(), 1, "{text}");
        assert!(!text.contains("wait = true"), "{text}");
        let back = settings_from_table(toml::from_str(&text).unwrap(), None, &[]).unwrap();
        assert_eq!(back, s);
    }
}
