//! Errors reading a snapshot.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] salvage_pg::Error),
    #[error(transparent)]
    Catalog(#[from] salvage_catalog::Error),
    #[error(
        "`{0}` is not a snapshot salvage can read: neither a postgres:// URL nor an existing dump file or directory (or - for standard input)"
    )]
    UnknownSource(String),
    #[error(transparent)]
    Archive(#[from] salvage_archive::Error),
    #[error("{0}")]
    Io(String),
    #[error("the snapshot has no table {0}")]
    MissingTable(salvage_catalog::QualifiedName),
    #[error("{table}: the snapshot sent a row with {found} fields where {expected} were expected")]
    BadRow {
        table: salvage_catalog::QualifiedName,
        expected: usize,
        found: usize,
    },
    /// Raised by a row callback to stop a read.
    #[error("{0}")]
    Aborted(String),
}
