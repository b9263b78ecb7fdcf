//! Errors of a restore. A tenant's failure is a [`TenantError`], recorded in its outcome while
//! the others go on; [`Error`] stops the whole restore (no worker could connect).

use salvage_catalog::QualifiedName;
use salvage_pg::SqlState;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] salvage_pg::Error),
    #[error(transparent)]
    Source(#[from] salvage_source::Error),
}

/// Why a tenant was rolled back.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("{table}: {source}")]
    Statement {
        table: QualifiedName,
        #[source]
        source: salvage_pg::Error,
    },
    #[error(transparent)]
    Database(#[from] salvage_pg::Error),
    #[error(transparent)]
    Source(#[from] salvage_source::Error),
    #[error(transparent)]
    Plan(#[from] salvage_closure::Error),
    /// The plan and what was read disagree: a bug, named so it can be reported.
    #[error("inconsistent plan: {0}")]
    Inconsistent(String),
    /// The transaction the tenant was written in with others could not commit (or its
    /// connection failed): the tenant is tried again on its own.
    #[error("its group of tenants could not be committed: {0}")]
    Group(String),
    #[error(
        "{table}: the snapshot gave {copied} rows where the plan counted {expected}; the snapshot changed since the plan"
    )]
    SnapshotChanged {
        table: QualifiedName,
        expected: u64,
        copied: u64,
    },
    #[error(
        "{table}: {what} {changed} rows where the plan expected {expected}; live changed since the plan (run again to re-plan)"
    )]
    LiveChanged {
        table: QualifiedName,
        /// What the statement did to the rows: `inserted`, `updated`, `deleted`, `found to
        /// record`.
        what: &'static str,
        expected: u64,
        changed: u64,
    },
    #[error("{table}: unique constraint {constraint}: {}", .holder.as_deref().unwrap_or(detail))]
    UniqueConflict {
        table: QualifiedName,
        constraint: String,
        detail: String,
        /// The live row that holds the key, when it could be found.
        holder: Option<String>,
    },
    #[error("{}; they are not overwritten, so the tenant cannot be restored whole", keys.join("; "))]
    KeyHeldByAnotherTenant { keys: Vec<String> },
}

impl TenantError {
    /// The SQLSTATE behind the failure, if a statement failed.
    #[must_use]
    pub fn sqlstate(&self) -> Option<SqlState> {
        match self {
            Self::Statement { source, .. }
            | Self::Database(source)
            | Self::Source(salvage_source::Error::Database(source)) => source.sqlstate(),
            Self::UniqueConflict { .. } => Some(SqlState::UniqueViolation),
            _ => None,
        }
    }

    /// Talking to a database failed without the server saying why (a dropped connection, a
    /// protocol error): the connection may be gone, and is not used again.
    #[must_use]
    pub fn connection_lost(&self) -> bool {
        match self {
            Self::Statement { source, .. }
            | Self::Database(source)
            | Self::Source(salvage_source::Error::Database(source)) => source.sqlstate().is_none(),
            _ => false,
        }
    }

    /// Another transaction was in the way — a lock, a deadlock, a serialization failure,
    /// or a parent row it removed between the check and the insert: worth another attempt,
    /// which looks at live again.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        self.sqlstate()
            .is_some_and(|state| state.is_transient() || state == SqlState::ForeignKeyViolation)
    }
}
