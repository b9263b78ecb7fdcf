//! What a recovery instance is a snapshot of, for the plan and the report: the backup, its
//! label and start time (from `backup_label`), the recovery target, and where replay
//! actually stopped.

use serde::{Deserialize, Serialize};

use crate::backup::BackupLabel;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFacts {
    /// The backup as given: a directory, or `pgbackrest:STANZA`.
    pub backup: String,
    /// `pg_basebackup, tar format, gzip`, `pgBackRest`…
    pub format: String,
    #[serde(flatten)]
    pub label: BackupLabel,
    /// The server version that replayed it (`15.18`).
    pub server_version: String,
    /// Where WAL came from: the archive directory, the restore command.
    pub wal: String,
    /// The target as asked, in words.
    pub target: String,
    pub stopped: StopPoint,
    /// The database read as the snapshot.
    pub database: String,
}

/// Where replay stopped, as the instance says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopPoint {
    /// `pg_last_wal_replay_lsn()`: the end of the last record replayed.
    pub lsn: String,
    /// `pg_last_xact_replay_timestamp()`: the commit time of the last transaction replayed
    /// (none when replay stopped before any).
    pub last_transaction_at: Option<String>,
    /// What the server logged: "before commit of transaction 726, time 2026-…".
    pub reason: String,
}

impl SnapshotFacts {
    /// One line on where replay stopped.
    #[must_use]
    pub fn stopped_line(&self) -> String {
        let last = self
            .stopped
            .last_transaction_at
            .as_deref()
            .map(|time| format!(", last replayed transaction committed at {time}"))
            .unwrap_or_default();
        format!(
            "WAL location {}{last} (recovery stopped {})",
            self.stopped.lsn, self.stopped.reason
        )
    }
}
