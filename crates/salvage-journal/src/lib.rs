//! The journal a restore keeps in the target database, in a schema of its own (`salvage` by
//! default): a row per run, a row per tenant of the run, a row per attempt at a tenant, and a
//! row per worker (a `salvage restore` process) that took part; since layout 2, the row images
//! each tenant's transaction wrote, which `salvage undo` puts back ([`UndoRun`]).
//!
//! It is what makes a restore resumable and shareable:
//! - a tenant's row says `done` only if the tenant's transaction committed: it is written by
//!   the statement that ends that transaction's work, in it ([`Run::settle_in`]);
//! - workers claim tenants with session advisory locks (`pg_try_advisory_lock(run key,
//!   position)`), so no two work on one tenant at once and a worker that dies — its
//!   connection gone — leaves its tenants to the others, with nothing to clean up;
//! - a run is found again by the digest of what it restores (the plan), so the same restore
//!   run again continues it.
//!
//! Everything is bound, the schema name quoted; the journal never holds a password (callers
//! pass redacted text).

mod claims;
mod runs;
mod schema;
mod undo;

pub use claims::Claimed;
pub use runs::{
    AttemptEnd, NewRun, Run, RunState, RunSummary, Settled, TenantEnd, TenantRow, TenantState,
    WaitingFor, WorkerInfo,
};
pub use schema::JOURNAL_VERSION;
pub use undo::{
    Conflict, ImageTable, NewUndo, TenantUndo, UndoCounts, UndoError, UndoRun, UndoTenant,
    UndoneRun, image_table_problems, table_right_problems,
};

use salvage_quote::quote_ident;

pub type Result<T, E = salvage_pg::Error> = std::result::Result<T, E>;

/// The journal's schema in one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    schema: String,
    quoted: String,
}

/// The default schema.
pub const DEFAULT_SCHEMA: &str = "salvage";

impl Journal {
    #[must_use]
    pub fn new(schema: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            quoted: quote_ident(schema),
        }
    }

    /// The schema's name, unquoted.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// `"schema"."row_images"`: where a tenant's transaction keeps what it inserted,
    /// updated and deleted, for undo.
    #[must_use]
    pub fn row_images(&self) -> String {
        self.table("row_images")
    }

    /// `"schema".table`, for statements.
    fn table(&self, name: &str) -> String {
        format!("{}.{}", self.quoted, quote_ident(name))
    }
}
