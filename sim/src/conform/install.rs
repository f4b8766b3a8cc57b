//! Finding a PostgreSQL installation to test against.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

/// Programs without which no story can even start.
const REQUIRED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// A PostgreSQL installation: its `bin` directory and server version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgInstall {
    pub bindir: PathBuf,
    /// Version number from `postgres --version`, e.g. "15.18".
    pub version: String,
}

impl PgInstall {
    /// Path of a program in this installation (not checked).
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bindir.join(program)
    }

    /// Major version (15 for "15.18"), if the version string parses.
    pub fn major(&self) -> Option<u32> {
        self.version.split('.').next()?.parse().ok()
    }
}

/// Finds the installation to use: `pg_bin` if given (and nothing else), else the
/// directory `pg_config --bindir` names, else the highest `/usr/lib/postgresql/*/bin`
/// (Debian keeps the server binaries off `PATH`). The error names everything tried.
pub fn find_install(pg_bin: Option<&Path>) -> Result<PgInstall> {
    if let Some(dir) = pg_bin {
        return match check_dir(dir) {
            Ok(install) => Ok(install),
            Err(why) => bail!("--pg-bin {}: {why}", dir.display()),
        };
    }
    let mut tried = Vec::new();
    match Command::new("pg_config").arg("--bindir").output() {
        Ok(out) if out.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            match check_dir(&dir) {
                Ok(install) => return Ok(install),
                Err(why) => tried.push(format!("`pg_config --bindir` named {}: {why}", dir.display())),
            }
        }
        Ok(out) => tried.push(format!("`pg_config --bindir` failed with {}", out.status)),
        Err(e) => tried.push(format!("`pg_config --bindir` could not run: {e}")),
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let key = name.split('.').map(|part| part.parse().ok()).collect::<Option<Vec<u32>>>()?;
            Some((key, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    if versions.is_empty() {
        tried.push(format!("{}/*/bin: none found", root.display()));
    }
    for (_, dir) in versions.iter().rev() {
        match check_dir(dir) {
            Ok(install) => return Ok(install),
            Err(why) => tried.push(format!("{}: {why}", dir.display())),
        }
    }
    bail!(
        "no usable PostgreSQL installation found (need {} in one directory); tried: {}",
        REQUIRED.join(", "),
        tried.join("; ")
    )
}

/// Accepts `dir` if it holds the required programs and `postgres --version` works.
fn check_dir(dir: &Path) -> std::result::Result<PgInstall, String> {
    if !dir.is_dir() {
        return Err("not a directory".into());
    }
    let missing: Vec<&str> =
        REQUIRED.iter().copied().filter(|program| !dir.join(program).is_file()).collect();
    if !missing.is_empty() {
        return Err(format!("missing {}", missing.join(", ")));
    }
    let postgres = dir.join("postgres");
    let out = Command::new(&postgres)
        .arg("--version")
        .output()
        .map_err(|e| format!("could not run {} --version: {e}", postgres.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = parse_version(&text).ok_or_else(|| {
        format!("{} --version printed {:?}, not a PostgreSQL version", postgres.display(), text.trim())
    })?;
    Ok(PgInstall { bindir: dir.to_path_buf(), version })
}

/// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> "15.18".
fn parse_version(text: &str) -> Option<String> {
    let rest = &text[text.find("(PostgreSQL)")? + "(PostgreSQL)".len()..];
    let version = rest.split_whitespace().next()?;
    version.starts_with(|c: char| c.is_ascii_digit()).then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bogus_pg_bin_is_a_clear_error() {
        let err = find_install(Some(Path::new("/nonexistent/pg/bin"))).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("--pg-bin /nonexistent/pg/bin"), "{text}");
        assert!(text.contains("not a directory"), "{text}");

        let empty = std::env::temp_dir().join(format!("conform-empty-bin-{}", std::process::id()));
        fs::create_dir_all(&empty).unwrap();
        let err = find_install(Some(&empty)).unwrap_err();
        fs::remove_dir_all(&empty).unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("missing initdb, pg_ctl, postgres"), "{text}");
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n").as_deref(),
            Some("15.18")
        );
        assert_eq!(parse_version("postgres (PostgreSQL) 17devel").as_deref(), Some("17devel"));
        assert_eq!(parse_version("bash 5.2"), None);
        let install = PgInstall { bindir: PathBuf::from("/x"), version: "15.18".into() };
        assert_eq!(install.major(), Some(15));
        assert_eq!(install.bin("psql"), PathBuf::from("/x/psql"));
    }
}
