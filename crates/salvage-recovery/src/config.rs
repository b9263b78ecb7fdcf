//! The recovery instance's configuration, all of it salvage's own: a `postgresql.conf` outside
//! the data directory (the backup's own settings — its port, archive command, preloaded
//! libraries, a `primary_conninfo` that would stream from the live server — are never used),
//! trust authentication on a private socket directory and no TCP, archiving off, hot standby
//! on, replay to the target and pause there. The backup's `postgresql.auto.conf` is kept
//! aside as `postgresql.auto.conf.salvage-backup`, its `standby.signal` removed, and a
//! `recovery.signal` written: targeted archive recovery, not standby mode, so a target that
//! the WAL never reaches ends recovery with an error instead of waiting for ever.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::binaries::ServerBinaries;
use crate::target::RecoveryTarget;
use crate::{Error, Result};

/// The port in the socket's name (`.s.PGSQL.5432`); nothing listens on TCP.
pub const PORT: u16 = 5432;

/// Settings a hot standby must have at least as high as the backed-up server had them
/// (`pg_controldata` tells those), or it refuses to start.
#[allow(clippy::struct_field_names, reason = "the settings' own names")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ControlSettings {
    pub max_connections: u32,
    pub max_worker_processes: u32,
    pub max_wal_senders: u32,
    pub max_prepared_transactions: u32,
    pub max_locks_per_transaction: u32,
}

impl ControlSettings {
    /// Runs `pg_controldata` on `data`.
    pub(crate) fn read(binaries: &ServerBinaries, data: &Path) -> Result<Self> {
        let program = binaries.program("pg_controldata");
        let output = Command::new(&program)
            .arg("-D")
            .arg(data)
            .env("LC_ALL", "C")
            .output()
            .map_err(|error| Error::program(program.display().to_string(), error.to_string()))?;
        if !output.status.success() {
            return Err(Error::program(
                program.display().to_string(),
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ));
        }
        Ok(Self::parse(&String::from_utf8_lossy(&output.stdout)))
    }

    fn parse(text: &str) -> Self {
        let value = |name: &str, default: u32| {
            text.lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    (key.trim() == name).then(|| value.trim().parse().ok())?
                })
                .unwrap_or(default)
        };
        Self {
            max_connections: value("max_connections setting", 100),
            max_worker_processes: value("max_worker_processes setting", 8),
            max_wal_senders: value("max_wal_senders setting", 10),
            max_prepared_transactions: value("max_prepared_xacts setting", 0),
            max_locks_per_transaction: value("max_locks_per_xact setting", 64),
        }
    }
}

/// The files of one instance's directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    #[must_use]
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    #[must_use]
    pub fn tablespaces(&self) -> PathBuf {
        self.root.join("tablespaces")
    }
    #[must_use]
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("socket")
    }
    #[must_use]
    pub fn config_file(&self) -> PathBuf {
        self.root.join("postgresql.conf")
    }
    #[must_use]
    pub fn log(&self) -> PathBuf {
        self.root.join("postgres.log")
    }
}

/// Writes the configuration and prepares the data directory for targeted recovery.
pub(crate) fn write(
    layout: &Layout,
    target: &RecoveryTarget,
    restore_command: &str,
    controls: ControlSettings,
) -> Result<()> {
    let data = layout.data();
    let auto = data.join("postgresql.auto.conf");
    if auto.exists() {
        let aside = data.join("postgresql.auto.conf.salvage-backup");
        std::fs::rename(&auto, &aside).map_err(Error::io("move aside", &auto))?;
    }
    write_file(
        &auto,
        "# salvage's recovery instance: its settings are in ../postgresql.conf\n",
    )?;
    for stale in [
        "standby.signal",
        "recovery.conf",
        "postmaster.pid",
        "postmaster.opts",
    ] {
        let path = data.join(stale);
        if path.exists() {
            std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
        }
    }
    write_file(&data.join("recovery.signal"), "")?;

    let hba = layout.root.join("pg_hba.conf");
    write_file(
        &hba,
        "# Only the socket, in a directory only the instance's owner can enter.\nlocal all all trust\n",
    )?;
    let ident = layout.root.join("pg_ident.conf");
    write_file(&ident, "")?;

    let socket = layout.socket_dir();
    let mut settings: Vec<(&str, String)> = vec![
        ("listen_addresses", String::new()),
        ("port", PORT.to_string()),
        ("unix_socket_directories", path_text(&socket)),
        ("unix_socket_permissions", "0700".to_owned()),
        ("hba_file", path_text(&hba)),
        ("ident_file", path_text(&ident)),
        ("ssl", "off".to_owned()),
        ("hot_standby", "on".to_owned()),
        ("archive_mode", "off".to_owned()),
        ("primary_conninfo", String::new()),
        ("primary_slot_name", String::new()),
        ("restore_command", restore_command.to_owned()),
        ("recovery_target_action", "pause".to_owned()),
        ("recovery_target_timeline", "latest".to_owned()),
        // The copy is thrown away: no durability needed.
        ("fsync", "off".to_owned()),
        ("shared_preload_libraries", String::new()),
        (
            "max_connections",
            controls.max_connections.max(50).to_string(),
        ),
        (
            "max_worker_processes",
            controls.max_worker_processes.to_string(),
        ),
        ("max_wal_senders", controls.max_wal_senders.to_string()),
        (
            "max_prepared_transactions",
            controls.max_prepared_transactions.to_string(),
        ),
        (
            "max_locks_per_transaction",
            controls.max_locks_per_transaction.to_string(),
        ),
        ("shared_buffers", "128MB".to_owned()),
        ("max_standby_archive_delay", "-1".to_owned()),
        ("max_standby_streaming_delay", "-1".to_owned()),
        ("hot_standby_feedback", "off".to_owned()),
        // The log is read for where replay stopped: plain English, UTC, to stderr (a file).
        ("logging_collector", "off".to_owned()),
        ("log_destination", "stderr".to_owned()),
        ("log_line_prefix", "%m [%p] ".to_owned()),
        ("lc_messages", "C".to_owned()),
        ("log_timezone", "UTC".to_owned()),
        ("timezone", "UTC".to_owned()),
        ("log_checkpoints", "off".to_owned()),
        ("cluster_name", "salvage-recovery".to_owned()),
    ];
    settings.extend(target.settings());
    let mut text =
        String::from("# Written by salvage for a private, paused, read-only recovery instance.\n");
    for (name, value) in settings {
        text.push_str(&format!("{name} = {}\n", quote(&value)));
    }
    write_file(&layout.config_file(), &text)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(Error::io("write", path))
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A value for postgresql.conf: single-quoted, quotes doubled, backslashes escaped.
pub(crate) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::{ControlSettings, quote};

    #[test]
    fn quotes_values() {
        assert_eq!(quote("cp %p /a/%f"), "'cp %p /a/%f'");
        assert_eq!(quote(r"it's a\b"), r"'it''s a\\b'");
    }

    #[test]
    fn reads_pg_controldata() {
        let controls = ControlSettings::parse(
            "max_connections setting:              300\nmax_worker_processes setting:         16\nmax_wal_senders setting:              10\nmax_prepared_xacts setting:           5\nmax_locks_per_xact setting:           128\n",
        );
        assert_eq!(controls.max_connections, 300);
        assert_eq!(controls.max_worker_processes, 16);
        assert_eq!(controls.max_prepared_transactions, 5);
        assert_eq!(controls.max_locks_per_transaction, 128);
    }
}
