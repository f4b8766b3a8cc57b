//! Bounded reads of the files users name (configs, scenarios, explore
//! results, trace files): no read is allowed to run until memory is gone,
//! so `/dev/zero` or a runaway file is a one-line error, not an OOM.

use std::io::Read;
use std::path::Path;

/// Largest config or scenario file (TOML) walsim reads: 4 MiB, far above
/// any real one (the defaults are about 2 KiB).
pub const TOML_LIMIT: u64 = 4 << 20;
/// Largest `explore --json` output `walsim merge` reads: 256 MiB (a sweep
/// of the default matrix with `--save-limit 1000` is a few MiB).
pub const JSON_LIMIT: u64 = 256 << 20;

/// Reads at most `limit` bytes of `path`; a longer file is an error that
/// names the limit. `what` names the file in messages ("config file").
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{what} {} is larger than {}, walsim's limit for it (is it the right file?)",
            path.display(),
            size_text(limit)
        ));
    }
    Ok(bytes)
}

/// Parses JSON from at most `limit` bytes of `path`, streaming (a file of
/// NUL bytes fails at its first byte). `Err` is one line naming the file;
/// a parse error reads "{path}: not {what_json}: {serde's message}".
pub fn read_json_limited<T: serde::de::DeserializeOwned>(
    path: &Path,
    limit: u64,
    what: &str,
    what_json: &str,
) -> Result<T, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let mut r = std::io::BufReader::new(f.take(limit + 1));
    let res: Result<T, serde_json::Error> = serde_json::from_reader(&mut r);
    if r.get_ref().limit() == 0 {
        return Err(format!(
            "{what} {} is larger than {}, walsim's limit for it (is it the right file?)",
            path.display(),
            size_text(limit)
        ));
    }
    res.map_err(|e| match e.io_error_kind() {
        Some(_) => format!("cannot read {what} {}: {e}", path.display()),
        None => format!("{}: not {what_json}: {e}", path.display()),
    })
}

/// [`read_limited`] as UTF-8 text.
pub fn read_text_limited(path: &Path, limit: u64, what: &str) -> Result<String, String> {
    let bytes = read_limited(path, limit, what)?;
    String::from_utf8(bytes).map_err(|_| format!("{what} {} is not UTF-8 text", path.display()))
}

/// `4194304` → `4 MiB`.
pub fn size_text(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_zero_is_refused_at_the_limit() {
        let e = read_limited(Path::new("/dev/zero"), 1000, "config file").unwrap_err();
        assert_eq!(
            e,
            "config file /dev/zero is larger than 1000 bytes, walsim's limit for it (is it the right file?)"
        );
        assert!(
            read_limited(Path::new("/nonexistent/x"), 10, "config file")
                .unwrap_err()
                .contains("/nonexistent/x")
        );
        assert_eq!(size_text(TOML_LIMIT), "4 MiB");
    }
}
