//! Errors that stop verification as a whole (a tenant's own failure is recorded in its check).

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] salvage_pg::Error),
    #[error(transparent)]
    Source(#[from] salvage_source::Error),
    #[error(transparent)]
    Plan(#[from] salvage_closure::Error),
    /// The plan and what was read disagree: a bug, named so it can be reported.
    #[error("inconsistent plan: {0}")]
    Inconsistent(String),
}
