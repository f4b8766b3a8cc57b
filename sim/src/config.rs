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

/// Reads a TOML file into a table.
pub fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().to_string();
        let at = e
            .span()
            .map(|s| format!(" at line {}", text[..s.start.min(text.len())].lines().count().max(1)))
            .unwrap_or_default();
        ConfigError(format!("config file {}{at}: {msg}", path.display()))
    })
}

/// Turns a table into validated settings. `origin` says where keys came
/// from, for messages; `set_keys` are the keys given with `--set`.
pub fn settings_from_table(
    table: toml::Table,
    origin: Option<&Path>,
    set_keys: &[String],
) -> Result<Settings, ConfigError> {
    let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner.lines().next().unwrap_or("").trim().to_string();
        // serde names an unknown field in the message; make it a full key.
        let key = match inner.strip_prefix("unknown field `").and_then(|r| r.split_once('`')) {
            Some((field, _)) if path == "." || path.is_empty() => field.to_string(),
            Some((field, _)) => format!("{path}.{field}"),
            None => path,
        };
        let what = if inner.starts_with("unknown field") {
            format!("unknown key {key}")
        } else {
            format!("invalid value for {key}: {inner}")
        };
        ConfigError(format!("{}{what}", source_of(&key, origin, set_keys)))
    })?;
    settings.validate().map_err(|e| ConfigError(format!("{}{e}", source_of(e.key, origin, set_keys))))?;
    Ok(settings)
}

fn source_of(key: &str, origin: Option<&Path>, set_keys: &[String]) -> String {
    if set_keys
        .iter()
        .any(|k| k == key || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}.")))
    {
        "--set: ".to_string()
    } else if let Some(p) = origin {
        format!("config file {}: ", p.display())
    } else {
        String::new()
    }
}

/// Defaults, then `file`, then `sets` (each `KEY=VALUE`).
pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Settings, ConfigError> {
    let mut table = match file {
        Some(p) => read_table(p)?,
        None => toml::Table::new(),
    };
    let mut keys = Vec::new();
    for s in sets {
        let (k, v) = split_assignment(s)?;
        set_dotted(&mut table, k, parse_value(v))?;
        keys.push(k.to_string());
    }
    settings_from_table(table, file, &keys)
}

/// The complete default configuration as TOML.
pub fn defaults_toml() -> String {
    let body = toml::to_string(&Settings::default()).expect("defaults serialize");
    format!(
        "# walsim default configuration. PostgreSQL settings are top-level keys named as\n\
         # the GUCs; walsim's own settings are in sections. See docs/configuration.md.\n\n{body}"
    )
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
        assert!(e.contains("unknown key workload.nonsense"), "{e}");
        let e = load(None, &["nonsense=1".into()]).unwrap_err().0;
        assert!(e.contains("unknown key nonsense"), "{e}");
        let e = load(None, &["cluster.rel_pages=0".into()]).unwrap_err().0;
        assert!(e.contains("cluster.rel_pages"), "{e}");
        let e = load(None, &["novalue".into()]).unwrap_err().0;
        assert!(e.contains("KEY=VALUE"), "{e}");
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = defaults_toml();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let s = settings_from_table(table, None, &[]).unwrap();
        assert_eq!(s, Settings::default());
    }
}
