//! Trace files: one run, saved so it replays exactly.
//!
//! A run is its settings plus its draws (docs/architecture.md, "the one
//! rule of determinism"), so that is what a file holds, with what the run gave
//! when it was recorded so a replay can say whether it reproduced it.
//!
//! Layout (integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `\x89WALSIM\n` (the high byte and newline catch text-mode copies) |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 32 | the walsim release that wrote it, ASCII, NUL-padded |
//! | 8 | payload length |
//! | n | payload: [`Trace`], serde + bincode 2 standard config |
//! | 8 | FNV-1a 64 of everything before it |
//!
//! The config is stored as TOML text, not as the `Settings` struct, so a
//! file stays readable when settings are added, and loading it reports a
//! bad key as `walsim run --config` would.

use crate::config;
use crate::run::{Observer, RunOptions, RunResult, run_choices};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::hash::Hasher;
use std::io::{Read, Write};
use std::path::Path;
use walsim_model::Settings;
use walsim_model::cluster::StableHasher;

pub const MAGIC: [u8; 8] = *b"\x89WALSIM\n";
pub const FORMAT_VERSION: u32 = 1;
/// The walsim release that writes files; determinism is promised per release.
pub const WALSIM_VERSION: &str = env!("CARGO_PKG_VERSION");

const VERSION_FIELD: usize = 32;
const HEADER: usize = 8 + 4 + VERSION_FIELD + 8;
const CHECKSUM: usize = 8;
/// Bound on what decoding may allocate, so a corrupt length cannot exhaust
/// memory.
const DECODE_LIMIT: usize = 1 << 28;

/// A saved run.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Trace {
    /// In the header, not the payload.
    #[serde(skip)]
    pub walsim_version: String,
    pub seed: u64,
    /// The effective settings (swarmed, shrunk) as TOML.
    pub config_toml: String,
    /// Every draw the run made.
    pub choices: Vec<u64>,
    /// What the run gave when recorded.
    pub recorded: Recorded,
    /// Where the run came from, for people (`explore cell ...`).
    pub note: String,
}

/// The result a trace was recorded with.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Recorded {
    pub outcome: String,
    pub invariant: Option<String>,
    pub detail: String,
    pub events: u64,
    pub trace_hash: u64,
}

/// Why a trace file could not be read: one line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TraceError {
    Io(String),
    Foreign,
    Truncated {
        have: usize,
        need: usize,
    },
    Version {
        format: u32,
        walsim: String,
    },
    Checksum,
    Trailing(usize),
    Payload(String),
    /// The header states a payload larger than [`DECODE_LIMIT`].
    TooLarge(u64),
    Config(String),
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io(e) => write!(f, "cannot read: {e}"),
            TraceError::Foreign => f.write_str("not a walsim trace file (wrong magic bytes)"),
            TraceError::Truncated { have, need } => {
                write!(f, "truncated trace file: {have} bytes, the header promises {need}")
            }
            TraceError::Version { format, walsim } => write!(
                f,
                "trace format version {format} (written by walsim {walsim}) is not supported (this walsim {WALSIM_VERSION} reads version {FORMAT_VERSION})"
            ),
            TraceError::Checksum => f.write_str("corrupt trace file: checksum mismatch"),
            TraceError::Trailing(n) => write!(f, "corrupt trace file: {n} unexpected bytes after the trace"),
            TraceError::Payload(e) => write!(f, "corrupt trace file: {e}"),
            TraceError::TooLarge(n) => write!(
                f,
                "corrupt trace file: the header states a {n}-byte payload, more than the {} limit",
                crate::input::size_text(DECODE_LIMIT as u64)
            ),
            TraceError::Config(e) => write!(f, "the trace's config is invalid: {e}"),
        }
    }
}

impl std::error::Error for TraceError {}

fn checksum(bytes: &[u8]) -> u64 {
    let mut h = StableHasher::default();
    h.write(bytes);
    h.finish()
}

fn one_line(e: impl fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// A bincode decode error as a sentence: its variant names
/// (`UnexpectedEnd { additional: 1 }`) mean nothing to a user.
fn decode_error_text(e: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as D;
    match e {
        D::UnexpectedEnd { .. } => "the payload ends in the middle of a value".into(),
        D::LimitExceeded => "the payload claims more data than a trace may hold".into(),
        D::Utf8 { .. } | D::InvalidCharEncoding(_) => "the payload holds text that is not UTF-8".into(),
        D::InvalidBooleanValue(_) | D::UnexpectedVariant { .. } | D::InvalidIntegerType { .. } => {
            "the payload holds a value of the wrong kind".into()
        }
        _ => "the payload does not decode as a walsim trace".into(),
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

impl Trace {
    /// The trace of a run made with `RunOptions { record: true, .. }`.
    pub fn of_run(settings: &Settings, r: &RunResult, note: String) -> Trace {
        Trace {
            walsim_version: WALSIM_VERSION.to_string(),
            seed: r.seed,
            config_toml: toml::to_string(settings).expect("settings serialize"),
            choices: r.choices.clone().expect("a recorded run"),
            recorded: Recorded {
                outcome: r.outcome.name().to_string(),
                invariant: r.invariant().map(|i| i.name().to_string()),
                detail: r.detail.clone(),
                events: r.events,
                trace_hash: r.trace_hash,
            },
            note,
        }
    }

    /// The settings the run used.
    pub fn settings(&self) -> Result<Settings, TraceError> {
        let mut table: toml::Table =
            toml::from_str(&self.config_toml).map_err(|e| TraceError::Config(one_line(e)))?;
        // Files written before `wal_block_size` existed ran with 8 kB WAL
        // pages (today's default is 1 kB): they replay as recorded.
        if !table.contains_key("wal_block_size") {
            table.insert("wal_block_size".into(), toml::Value::String("8kB".into()));
        }
        config::settings_from_table(table, None, &[]).map_err(|e| TraceError::Config(e.0))
    }

    /// Runs the recorded draws again.
    pub fn replay(&self, settings: &Settings, opts: RunOptions, obs: &mut dyn Observer) -> RunResult {
        run_choices(settings, self.seed, &self.choices, opts, obs)
    }

    /// Whether `r` is the recorded run: the same events and `trace_hash`,
    /// and the same outcome and invariant.
    pub fn reproduced_by(&self, r: &RunResult) -> bool {
        self.differences(r).is_empty()
    }

    /// How `r` differs from the recorded run, one phrase each
    /// (`outcome ok, recorded violation`); empty when it reproduces it.
    pub fn differences(&self, r: &RunResult) -> Vec<String> {
        let rec = &self.recorded;
        let mut d = Vec::new();
        if r.outcome.name() != rec.outcome {
            d.push(format!("outcome {}, recorded {}", r.outcome.name(), rec.outcome));
        }
        let inv = r.invariant().map(|i| i.name().to_string());
        if inv != rec.invariant {
            let show = |i: &Option<String>| i.clone().unwrap_or_else(|| "none".into());
            d.push(format!("invariant {}, recorded {}", show(&inv), show(&rec.invariant)));
        }
        if r.events != rec.events {
            d.push(format!("{} events, recorded {}", r.events, rec.events));
        }
        if r.trace_hash != rec.trace_hash {
            d.push(format!(
                "trace_hash {}, recorded {}",
                crate::report::hash_hex(r.trace_hash),
                crate::report::hash_hex(rec.trace_hash)
            ));
        }
        d
    }

    pub fn encode(&self) -> Vec<u8> {
        let payload = bincode::serde::encode_to_vec(self, bincode_config()).expect("a trace encodes");
        let mut out = Vec::with_capacity(HEADER + payload.len() + CHECKSUM);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let mut version = [0u8; VERSION_FIELD];
        let v = self.walsim_version.as_bytes();
        let n = v.len().min(VERSION_FIELD);
        version[..n].copy_from_slice(&v[..n]);
        out.extend_from_slice(&version);
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload);
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Checks the magic bytes and the format version of a header.
    fn check_header(bytes: &[u8]) -> Result<(), TraceError> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(if MAGIC.starts_with(bytes) && !bytes.is_empty() {
                TraceError::Truncated { have: bytes.len(), need: HEADER }
            } else {
                TraceError::Foreign
            });
        }
        if bytes.len() < HEADER {
            return Err(TraceError::Truncated { have: bytes.len(), need: HEADER });
        }
        let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if format != FORMAT_VERSION {
            let field = &bytes[12..12 + VERSION_FIELD];
            let walsim =
                String::from_utf8_lossy(field.split(|&b| b == 0).next().unwrap_or_default()).into_owned();
            return Err(TraceError::Version { format, walsim });
        }
        Ok(())
    }

    pub fn decode(bytes: &[u8]) -> Result<Trace, TraceError> {
        Trace::check_header(bytes)?;
        let word =
            |at: usize, n: usize| bytes[at..at + n].iter().rev().fold(0u64, |a, &b| a << 8 | u64::from(b));
        let field = &bytes[12..12 + VERSION_FIELD];
        let walsim =
            String::from_utf8_lossy(field.split(|&b| b == 0).next().unwrap_or_default()).into_owned();
        let len = word(12 + VERSION_FIELD, 8);
        let need = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(HEADER + CHECKSUM))
            .ok_or(TraceError::Truncated { have: bytes.len(), need: usize::MAX })?;
        if bytes.len() < need {
            return Err(TraceError::Truncated { have: bytes.len(), need });
        }
        if bytes.len() > need {
            return Err(TraceError::Trailing(bytes.len() - need));
        }
        let body = need - CHECKSUM;
        if checksum(&bytes[..body]) != word(body, 8) {
            return Err(TraceError::Checksum);
        }
        let (mut trace, used): (Trace, usize) =
            bincode::serde::decode_from_slice(&bytes[HEADER..body], bincode_config())
                .map_err(|e| TraceError::Payload(decode_error_text(&e)))?;
        if used != body - HEADER {
            return Err(TraceError::Trailing(body - HEADER - used));
        }
        trace.walsim_version = walsim;
        Ok(trace)
    }

    /// Reads a trace file; errors are one line naming the file.
    ///
    /// Reads are bounded: the header first (a foreign file stops at its
    /// magic bytes), then only the length the header states (at most
    /// [`DECODE_LIMIT`]), so `/dev/zero` or a huge file fails at once.
    pub fn load(path: &Path) -> Result<Trace, String> {
        let named = |e: TraceError| format!("{}: {e}", path.display());
        let io = |e: std::io::Error| named(TraceError::Io(e.to_string()));
        let mut f = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::with_capacity(HEADER);
        (&mut f).take(HEADER as u64).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() == HEADER {
            // Let decode judge magic and version before trusting the length.
            Trace::check_header(&bytes).map_err(named)?;
            let len = u64::from_le_bytes(bytes[HEADER - 8..HEADER].try_into().expect("8 bytes"));
            if len > DECODE_LIMIT as u64 {
                return Err(named(TraceError::TooLarge(len)));
            }
            // The payload, the checksum, and one byte more to notice trailing data.
            (&mut f).take(len + CHECKSUM as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
            let need = HEADER + len as usize + CHECKSUM;
            if bytes.len() > need {
                let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len() as usize);
                let extra = size.map_or(bytes.len() - need, |s| s.saturating_sub(need).max(1));
                return Err(named(TraceError::Trailing(extra)));
            }
        }
        Trace::decode(&bytes).map_err(named)
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        write_atomic(path, &self.encode()).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames
/// it over `path`, so a reader (or a crash) never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| std::io::Error::other("not a file name"))?;
    let tmp = path.with_file_name(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{NoObserver, run_seed};

    fn sample() -> (Settings, Trace) {
        let s =
            config::load(None, &["scheduler.steps=200".into(), "faults.process_crash=0.02".into()]).unwrap();
        let r = run_seed(&s, 5, RunOptions { record: true, log: false, max_events: None }, &mut NoObserver);
        let t = Trace::of_run(&s, &r, "test".into());
        (s, t)
    }

    #[test]
    fn round_trips_and_replays_exactly() {
        let (s, t) = sample();
        let back = Trace::decode(&t.encode()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.settings().unwrap(), s);
        let r = back.replay(&s, RunOptions::default(), &mut NoObserver);
        assert!(back.reproduced_by(&r));
    }

    #[test]
    fn damage_is_a_one_line_error() {
        let (_, t) = sample();
        let good = t.encode();
        let mut flipped = good.clone();
        flipped[HEADER + 10] ^= 0x40;
        let mut version = good.clone();
        version[8] = 9;
        let mut trailing = good.clone();
        trailing.push(0);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "not a walsim trace"),
            (b"PK\x03\x04 zip".to_vec(), "not a walsim trace"),
            (good[..5].to_vec(), "truncated"),
            (good[..HEADER + 3].to_vec(), "truncated"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            (flipped, "checksum"),
            (version, "version 9 (written by walsim 0.1.0)"),
            (trailing, "unexpected bytes"),
        ];
        for (bytes, want) in cases {
            let e = Trace::decode(&bytes).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
            assert_eq!(e.lines().count(), 1);
        }
        // A payload that checks out but does not decode (a bogus length).
        // Decoder errors are sentences, not bincode's variant names.
        for (payload, want) in [
            (&[0xff, 0xff, 0xff][..], "the payload holds a value of the wrong kind"),
            (&[0x05][..], "the payload ends in the middle of a value"),
        ] {
            let mut forged = good[..HEADER].to_vec();
            forged[HEADER - 8..HEADER].copy_from_slice(&(payload.len() as u64).to_le_bytes());
            forged.extend_from_slice(payload);
            let sum = checksum(&forged);
            forged.extend_from_slice(&sum.to_le_bytes());
            let e = Trace::decode(&forged).unwrap_err();
            assert!(matches!(e, TraceError::Payload(_)), "{e:?}");
            assert_eq!(e.to_string(), format!("corrupt trace file: {want}"));
        }
    }

    #[test]
    fn load_reads_only_what_the_header_states() {
        let dir = std::env::temp_dir().join(format!("walsim-trace-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_, t) = sample();
        let good = t.encode();
        let path = dir.join("t.walsim");
        std::fs::write(&path, &good).unwrap();
        assert_eq!(Trace::load(&path).unwrap(), t);
        // A header claiming an enormous payload is refused before reading it.
        let mut huge = good[..HEADER].to_vec();
        huge[HEADER - 8..HEADER].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        let e = Trace::load(&path).unwrap_err();
        assert!(e.contains("more than the 256 MiB limit"), "{e}");
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 5]);
        std::fs::write(&path, &trailing).unwrap();
        let e = Trace::load(&path).unwrap_err();
        assert!(e.ends_with("corrupt trace file: 5 unexpected bytes after the trace"), "{e}");
        let e = Trace::load(Path::new("/dev/zero")).unwrap_err();
        assert!(e.ends_with("not a walsim trace file (wrong magic bytes)"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
