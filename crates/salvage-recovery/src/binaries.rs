//! The server binaries of the backup's major version, and the OS user they run as.
//!
//! A backup of PostgreSQL N is only readable by a `postgres` of major version N. It is looked
//! for, in this order: `--pg-bin DIR` (only there, when given), every directory of `PATH`
//! with a `postgres`, `pg_config --bindir`, Debian's `/usr/lib/postgresql/N/bin`, and the
//! PGDG RPMs' `/usr/pgsql-N/bin`. PostgreSQL refuses to run as root: run as root, salvage
//! runs the server (and `pg_ctl`, pgBackRest) as the `postgres` OS user and gives it the
//! instance's files.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

/// The oldest major version replayed: the first with `recovery.signal`.
pub const OLDEST: u32 = 12;

/// A directory with `postgres`, `pg_ctl` and `pg_controldata` of one major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBinaries {
    pub dir: PathBuf,
    /// As `postgres --version` says it: `15.18`.
    pub version: String,
    pub major: u32,
}

impl ServerBinaries {
    #[must_use]
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Finds the binaries of `major`; `version_file` names where the version was read.
pub fn find(major: u32, pg_bin: Option<&Path>, version_file: &Path) -> Result<ServerBinaries> {
    if major < OLDEST {
        return Err(Error::Invalid(format!(
            "the backup is PostgreSQL {major} ({}): salvage replays backups of PostgreSQL {OLDEST} and later (recovery.signal)",
            version_file.display()
        )));
    }
    let mut looked = Vec::new();
    let candidates: Vec<PathBuf> = if let Some(dir) = pg_bin {
        vec![dir.to_owned()]
    } else {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        dirs.retain(|dir| dir.join("postgres").is_file());
        if let Some(dir) = pg_config_bindir() {
            dirs.push(dir);
        }
        dirs.push(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
        dirs.push(PathBuf::from(format!("/usr/pgsql-{major}/bin")));
        dirs
    };
    for dir in candidates {
        match server_version(&dir) {
            Some((version, found)) if found == major => {
                let missing: Vec<&str> = ["pg_ctl", "pg_controldata"]
                    .into_iter()
                    .filter(|tool| !dir.join(tool).is_file())
                    .collect();
                if missing.is_empty() {
                    return Ok(ServerBinaries {
                        dir,
                        version,
                        major,
                    });
                }
                looked.push(format!(
                    "{} (postgres {version} without {})",
                    dir.display(),
                    missing.join(", ")
                ));
            }
            Some((version, _)) => looked.push(format!("{} (postgres {version})", dir.display())),
            None => looked.push(format!("{} (no postgres)", dir.display())),
        }
    }
    looked.dedup();
    Err(Error::NoBinaries {
        major,
        version_file: version_file.display().to_string(),
        looked: looked.join(", "),
    })
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| PathBuf::from(text.trim()))
}

/// `postgres --version` in `dir`: (`15.18`, 15).
fn server_version(dir: &Path) -> Option<(String, u32)> {
    let output = Command::new(dir.join("postgres"))
        .arg("--version")
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let version = text.split_whitespace().nth(2)?.to_owned();
    let major = version
        .split(|ch: char| !ch.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((version, major))
}

/// The OS user the server runs as: `postgres` when salvage runs as root, else salvage's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerUser {
    /// `Some((uid, gid))` when salvage is root and drops to the `postgres` user.
    pub ids: Option<(u32, u32)>,
}

impl ServerUser {
    /// Looks up who we are, and the `postgres` user when we are root.
    pub fn detect() -> Result<Self> {
        if id(&["-u"])? != 0 {
            return Ok(Self { ids: None });
        }
        let uid = id(&["-u", "postgres"]).map_err(|_| {
            Error::program(
                "id postgres",
                "salvage runs as root, and PostgreSQL refuses to: it runs the recovery instance as the `postgres` OS user, which does not exist (create it, e.g. `useradd --system postgres`, or run salvage as another user)",
            )
        })?;
        let gid = id(&["-g", "postgres"])?;
        Ok(Self {
            ids: Some((uid, gid)),
        })
    }

    /// Makes `command` run as this user.
    pub fn apply<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        use std::os::unix::process::CommandExt;
        if let Some((uid, gid)) = self.ids {
            // Setting the uid from root also drops the supplementary groups.
            command.gid(gid).uid(uid);
        }
        command
    }

    /// The same for a tokio command.
    pub fn apply_async<'c>(
        &self,
        command: &'c mut tokio::process::Command,
    ) -> &'c mut tokio::process::Command {
        if let Some((uid, gid)) = self.ids {
            command.gid(gid).uid(uid);
        }
        command
    }

    /// Gives `path` (not following a symlink) to this user.
    pub fn own(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .map_err(Error::io("change the owner of", path))?;
        }
        Ok(())
    }
}

fn id(args: &[&str]) -> Result<u32> {
    let output = Command::new("id")
        .args(args)
        .output()
        .map_err(|error| Error::program("id", error.to_string()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::program(
            format!("id {}", args.join(" ")),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    text.trim()
        .parse()
        .map_err(|_| Error::program("id", format!("unexpected output `{}`", text.trim())))
}
