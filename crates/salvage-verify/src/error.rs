//! Errors that stop verification as a whole (a tenant's own failure is recorded in its check).

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] salvage_pg::Error),
    #[error(transparent)]
    Source(#[from] salvage_source::Error),
}
