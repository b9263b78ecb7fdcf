//! A physical base backup and its WAL, replayed to a chosen moment, as a snapshot.
//!
//! salvage copies (or clones) a `pg_basebackup` backup — plain or tar format — or has
//! pgBackRest restore one, into a private directory of its own; configures targeted recovery
//! (`recovery_target_action = pause`, hot standby, archiving off, a private socket, no TCP);
//! runs the `postgres` of the backup's major version; waits until replay has paused; checks
//! that it paused where asked; and hands out a socket URL that the database snapshot code
//! reads like any other database. The [`RecoveryInstance`] stops the server and removes the
//! directory when it is dropped. Nothing here prints: progress goes through
//! [`RecoveryReporter`].

mod backup;
mod binaries;
mod compress;
mod config;
mod error;
mod facts;
mod instance;
mod log;
mod materialise;
mod pgbackrest;
mod process;
pub mod state;
mod target;
mod wait;
pub mod wal;

pub use backup::{Backup, BackupLabel};
pub use compress::Compression;
pub use error::{Error, Result};
pub use facts::{SnapshotFacts, StopPoint};
pub use instance::{RecoveryInstance, RecoveryOptions, WalSource, stop_instance};
pub use state::InstanceState;
pub use target::{Lsn, RecoveryTarget};

/// A step of building an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Copying or unpacking `bytes` of the backup.
    Copying { from: String, bytes: u64 },
    /// `pgbackrest restore` is writing the backup.
    PgBackRestRestore { stanza: String },
    /// The server (of this version) is starting.
    Starting { version: String },
    /// Replaying WAL toward the target.
    Replaying,
}

/// How far replay got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayProgress {
    /// WAL files restored from the archive so far.
    pub restored: u64,
    pub last_restored: Option<String>,
    /// The last replayed WAL location, once the server accepts connections.
    pub lsn: Option<String>,
    pub last_transaction_at: Option<String>,
}

/// Progress of an instance being built; implemented by the command line.
pub trait RecoveryReporter: Send + Sync {
    fn step(&self, step: Step);
    /// `done` of `total` bytes copied.
    fn copied(&self, done: u64, total: u64);
    fn replaying(&self, progress: &ReplayProgress);
}

/// A reporter that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl RecoveryReporter for Silent {
    fn step(&self, _: Step) {}
    fn copied(&self, _: u64, _: u64) {}
    fn replaying(&self, _: &ReplayProgress) {}
}
