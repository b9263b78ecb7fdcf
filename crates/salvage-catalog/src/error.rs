//! Errors of the schema model: names a user typed that cannot be table names.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A table name given by a user that is not `name` or `schema.name`.
    #[error("`{0}` is not a table name (expected `table` or `schema.table`)")]
    BadName(String),
}
