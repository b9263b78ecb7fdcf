//! What a base backup is: a `pg_basebackup` directory in plain format, one in tar format
//! (`base.tar` and tablespace tars, `pg_wal.tar`, each maybe compressed), or a pgBackRest
//! stanza — and what its `backup_label` says about it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compress::Compression;
use crate::{Error, Result};

/// A base backup as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backup {
    /// `pg_basebackup -Fp`: a copy of the data directory, `backup_label` at its top.
    Plain(PathBuf),
    /// `pg_basebackup -Ft`: `base.tar[.gz|.lz4|.zst]`, `<oid>.tar…` per tablespace, and
    /// `pg_wal.tar…` with `-X stream`.
    Tar { dir: PathBuf, base: PathBuf },
    /// `pgbackrest:STANZA`: restored by `pgbackrest restore`.
    PgBackRest { stanza: String },
}

const PGBACKREST: &str = "pgbackrest:";

impl Backup {
    /// Recognises a base backup in what `--snapshot` was given; `None` for anything else (a
    /// URL, a pg_dump archive). A directory with `PG_VERSION` is a plain backup; one with a
    /// `base.tar…` (or that file itself) a tar backup.
    #[must_use]
    pub fn recognise(text: &str) -> Option<Self> {
        if let Some(stanza) = text.strip_prefix(PGBACKREST) {
            return Some(Self::PgBackRest {
                stanza: stanza.to_owned(),
            });
        }
        let path = Path::new(text);
        if path.is_dir() {
            if path.join("PG_VERSION").is_file() {
                return Some(Self::Plain(path.to_owned()));
            }
            return base_tar(path).map(|base| Self::Tar {
                dir: path.to_owned(),
                base,
            });
        }
        let name = path.file_name()?.to_str()?;
        if path.is_file() && Compression::strip(name).0 == "base.tar" {
            let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
            let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_owned);
            return Some(Self::Tar {
                dir,
                base: path.to_owned(),
            });
        }
        None
    }

    /// Checks what can be checked before anything is copied.
    pub fn check(&self) -> Result<()> {
        match self {
            Self::Plain(dir) => {
                if !dir.join("backup_label").is_file() {
                    return Err(Error::Backup {
                        path: dir.clone(),
                        reason: "has PG_VERSION but no backup_label: a data directory, not a base backup (pg_basebackup writes backup_label)".to_owned(),
                    });
                }
                if dir.join("postmaster.pid").exists() {
                    return Err(Error::Backup {
                        path: dir.clone(),
                        reason: "has a postmaster.pid: a running server's data directory, not a base backup".to_owned(),
                    });
                }
                Ok(())
            }
            Self::Tar { .. } => Ok(()),
            Self::PgBackRest { stanza } => {
                if stanza.is_empty() || stanza.contains(['/', ' ', '\'', '"']) {
                    return Err(Error::Invalid(format!(
                        "`pgbackrest:{stanza}` does not name a stanza (pgbackrest:STANZA)"
                    )));
                }
                Ok(())
            }
        }
    }

    /// What kind of backup it is, for people.
    #[must_use]
    pub fn format(&self) -> String {
        match self {
            Self::Plain(_) => "pg_basebackup, plain format".to_owned(),
            Self::Tar { base, .. } => {
                let name = base
                    .file_name()
                    .and_then(|name| name.to_str())
                    .unwrap_or("");
                match Compression::strip(name).1 {
                    Compression::None => "pg_basebackup, tar format".to_owned(),
                    compression => format!("pg_basebackup, tar format, {compression}"),
                }
            }
            Self::PgBackRest { .. } => "pgBackRest".to_owned(),
        }
    }
}

impl fmt::Display for Backup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(dir) | Self::Tar { dir, .. } => write!(f, "{}", dir.display()),
            Self::PgBackRest { stanza } => write!(f, "{PGBACKREST}{stanza}"),
        }
    }
}

/// `base.tar`, `base.tar.gz`, `base.tar.lz4` or `base.tar.zst` in `dir`.
fn base_tar(dir: &Path) -> Option<PathBuf> {
    Compression::ALL
        .iter()
        .map(|compression| dir.join(format!("base.tar{}", compression.extension())))
        .find(|path| path.is_file())
}

/// What `backup_label` says: where the backup's WAL starts, when, its label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupLabel {
    pub label: Option<String>,
    pub start_time: Option<String>,
    pub start_wal_location: Option<String>,
    pub start_timeline: Option<u32>,
}

impl BackupLabel {
    /// Parses `backup_label` (`START WAL LOCATION: 0/2000028 (file 0000…)`, `LABEL: …`).
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut label = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            let value = value.trim();
            match key {
                "START WAL LOCATION" => {
                    label.start_wal_location =
                        value.split_whitespace().next().map(ToOwned::to_owned);
                }
                "START TIME" => label.start_time = Some(value.to_owned()),
                "LABEL" => label.label = Some(value.to_owned()),
                "START TIMELINE" => label.start_timeline = value.parse().ok(),
                _ => {}
            }
        }
        label
    }
}

/// The major version in a `PG_VERSION` file's text (`15`, or `9.6` as 9).
pub(crate) fn major_version(text: &str, file: &Path) -> Result<u32> {
    let text = text.trim();
    text.split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .filter(|_| !text.is_empty())
        .ok_or_else(|| Error::Backup {
            path: file.to_owned(),
            reason: format!("`{text}` is not a PostgreSQL version"),
        })
}

#[cfg(test)]
mod tests {
    use super::{Backup, BackupLabel};

    #[test]
    fn reads_backup_label() {
        let label = BackupLabel::parse(
            "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
             CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n\
             START TIME: 2026-12-01 22:18:37 UTC\nLABEL: pg_basebackup base backup\n\
             START TIMELINE: 1\n",
        );
        assert_eq!(label.start_wal_location.as_deref(), Some("0/2000028"));
        assert_eq!(label.start_time.as_deref(), Some("2026-12-01 22:18:37 UTC"));
        assert_eq!(label.label.as_deref(), Some("pg_basebackup base backup"));
        assert_eq!(label.start_timeline, Some(1));
    }

    #[test]
    fn recognises_backups_and_nothing_else() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        assert_eq!(Backup::recognise(dir.path().to_str().expect("UTF-8")), None);
        std::fs::write(dir.path().join("base.tar.gz"), b"").expect("write");
        let text = dir.path().to_str().expect("UTF-8");
        assert!(matches!(Backup::recognise(text), Some(Backup::Tar { .. })));
        let file = dir.path().join("base.tar.gz");
        assert!(matches!(
            Backup::recognise(file.to_str().expect("UTF-8")),
            Some(Backup::Tar { .. })
        ));
        std::fs::write(dir.path().join("PG_VERSION"), b"15\n").expect("write");
        let plain = Backup::recognise(text).expect("a plain backup");
        assert!(plain.check().is_err(), "no backup_label");
        assert_eq!(
            Backup::recognise("pgbackrest:main"),
            Some(Backup::PgBackRest {
                stanza: "main".to_owned()
            })
        );
        assert_eq!(Backup::recognise("postgres://h/db"), None);
        assert_eq!(Backup::recognise("/no/such/dump"), None);
    }
}
