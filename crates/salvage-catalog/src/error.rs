//! Errors of catalog introspection and name parsing.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] salvage_pg::Error),
    /// A table name given by a user that is not `name` or `schema.name`.
    #[error("`{0}` is not a table name (expected `table` or `schema.table`)")]
    BadName(String),
}
