//! What can go wrong while a recovery instance is built, started and checked. Every variant
//! names the file, directory, version, LSN or time it is about; all of them happen before
//! anything is written to the live database.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backup is not one salvage can read (no `backup_label`, an unknown file, ...).
    #[error("{path}: {reason}")]
    Backup { path: PathBuf, reason: String },

    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A tar file of the backup is damaged.
    #[error("{path}: {reason}")]
    Tar { path: PathBuf, reason: String },

    /// No `postgres` binary of the backup's major version.
    #[error(
        "the backup is PostgreSQL {major} ({version_file}), but no PostgreSQL {major} server binary was found (looked at {looked}); install PostgreSQL {major}'s server (e.g. apt-get install postgresql-{major}) or give its bin directory with --pg-bin DIR"
    )]
    NoBinaries {
        major: u32,
        version_file: String,
        looked: String,
    },

    /// A program salvage runs failed or is missing.
    #[error("{program}: {reason}")]
    Program { program: String, reason: String },

    /// A user-given value that cannot be used (a target, a directory).
    #[error("{0}")]
    Invalid(String),

    /// The server stopped, or never started, before replay reached the target.
    #[error(
        "replay did not reach {target}: {reason}; last replayed WAL location {lsn}, last replayed transaction committed at {time}{detail}"
    )]
    NotReached {
        target: String,
        reason: String,
        lsn: String,
        time: String,
        detail: String,
    },

    /// The server could not be started at all.
    #[error("the recovery instance did not start: {reason} (log: {log})")]
    Start { reason: String, log: PathBuf },

    /// Replay made no progress for too long.
    #[error(
        "replay made no progress for {seconds} seconds (last replayed WAL location {lsn}); is the restore command waiting? (log: {log})"
    )]
    Stalled {
        seconds: u64,
        lsn: String,
        log: PathBuf,
    },

    /// The instance answered, but not as expected.
    #[error("the recovery instance: {0}")]
    Query(String),

    /// The run was cancelled (Ctrl-C) while the instance was being prepared.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn program(program: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Program {
            program: program.into(),
            reason: reason.into(),
        }
    }
}
