//! Merging tenants into the live database: one transaction per tenant, `--jobs` tenants at a
//! time, each on its own connections.
//!
//! The plan says which of a tenant's kept rows to write (those live does not have). In FK
//! order, each goes in once every parent it references is present: rows only the tenant
//! reaches are copied (COPY) straight into the live table, rows other chosen tenants reach too (and
//! shared rows) are inserted from bound arrays with `ON CONFLICT (key) DO NOTHING`, a cycle's
//! tables in one statement. The rows each statement wrote are checked before commit;
//! sequences are moved ahead of the restored values. The live database stays in use: no
//! table locks, no DDL, no temporary tables, no disabled triggers or constraints, bounded
//! waits, and a tenant that loses a deadlock is retried.

mod change;
mod control;
mod diagnose;
mod error;
mod group;
mod outcome;
mod rows;
mod tenant;
mod worker;
mod write;

use std::sync::Arc;
use std::time::Duration;

pub use change::{ChangedTable, ImageTarget, UpdatedRow};
pub use control::{Ledger, STOP_GRACE, Stop};
pub use error::{Error, Result, TenantError};
pub use outcome::{TableOutcome, TenantOutcome, TenantStatus};
pub use worker::restore;

/// How a restore runs.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Tenants restored concurrently.
    pub jobs: usize,
    /// Longest wait for a row lock before the tenant's attempt gives up (and is retried).
    pub lock_timeout: Duration,
    /// Longest single statement.
    pub statement_timeout: Duration,
    /// Attempts per tenant when another transaction is in the way (deadlock, serialization
    /// failure, lock timeout).
    pub max_attempts: u32,
    /// Tenants committed together at most (each still all or nothing, in a savepoint).
    pub group_tenants: usize,
    /// The run's journal: claims, and a row per tenant written in its transaction.
    pub ledger: Option<Arc<Ledger>>,
    /// Heeded between groups; tenants in flight get [`STOP_GRACE`] to finish.
    pub stop: Stop,
}

impl Default for MergeOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(600),
            max_attempts: 5,
            group_tenants: group::GROUP_TENANTS,
            ledger: None,
            stop: Stop::default(),
        }
    }
}

/// Told how a restore goes; implemented by the command line with progress bars.
pub trait RestoreReporter: Send + Sync {
    /// A tenant's attempt begins; `rows` is how many rows it will read.
    fn tenant_started(&self, tenant: &str, label: Option<&str>, rows: u64, attempt: u32);
    /// More rows of the tenant went into staging.
    fn rows_copied(&self, tenant: &str, rows: u64);
    /// The attempt hit a transient error and will be retried.
    fn tenant_retrying(&self, tenant: &str, attempt: u32, reason: &str);
    /// The tenant is done, restored or failed.
    fn tenant_finished(&self, outcome: &TenantOutcome);
}
