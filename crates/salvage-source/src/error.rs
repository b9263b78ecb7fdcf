//! Errors reading a snapshot (or, with the same machinery, the live database's rows).

use salvage_catalog::QualifiedName;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] salvage_pg::Error),
    #[error(transparent)]
    Catalog(#[from] salvage_catalog::Error),
    #[error(
        "{0} is not a snapshot salvage can read: neither a postgres:// URL nor an existing dump file or directory (or - for standard input)"
    )]
    UnknownSource(String),
    #[error(transparent)]
    Archive(#[from] salvage_archive::Error),
    /// Reading or writing salvage's own temporary files.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the snapshot has no table {0}")]
    MissingTable(QualifiedName),
    #[error("{table} has no column {column} in {side}")]
    MissingColumn {
        table: QualifiedName,
        column: String,
        side: String,
    },
    #[error("{table}: {side} sent a row with {found} fields where {expected} were expected")]
    BadRow {
        table: QualifiedName,
        side: String,
        expected: usize,
        found: usize,
    },
    /// The plan and what was read disagree: a bug, named so it can be reported.
    #[error("inconsistent plan: {0}")]
    Inconsistent(String),
    /// A worker thread stopped without an answer (it panicked).
    #[error("a worker thread stopped: {0}")]
    Worker(String),
}

impl Error {
    /// Wraps an I/O error of salvage's temporary files with what was being done. The context
    /// becomes a `String` only when there is an error: calls on every row cost nothing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io {
            context: context.into(),
            source,
        }
    }

    /// [`Error::io`] with a context that is formatted only when there is an error (a table's
    /// name in a message, on a path taken for every row).
    pub fn io_with<C: Into<String>>(
        context: impl FnOnce() -> C,
    ) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io {
            context: context().into(),
            source,
        }
    }
}
