//! Errors of the archive reader. A damaged archive is reported with the file, the byte offset
//! where reading failed and, when it happened inside one, the TOC entry being read, so a user
//! can tell a truncated download from a bug.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in an archive something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file being read (for a directory archive, the member file).
    pub file: PathBuf,
    /// Byte offset in that file (for compressed files, in the compressed bytes).
    pub offset: u64,
    /// The TOC entry being read: its dump ID and a description (`TABLE DATA public.sites`).
    pub entry: Option<(i32, String)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.file.display(), self.offset)?;
        if let Some((dump_id, what)) = &self.entry {
            write!(f, " (TOC entry {dump_id}, {what})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read at all.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The archive is damaged or cut short: what was expected, and where.
    #[error("corrupt archive: {location}: {message}")]
    Corrupt { location: Location, message: String },
    /// Neither a pg_dump archive (custom, directory, tar) nor a plain SQL dump.
    #[error("{}: not a pg_dump archive or SQL dump ({reason})", path.display())]
    UnknownFormat { path: PathBuf, reason: String },
    /// An archive version this reader does not know (it reads 1.12 to 1.16).
    #[error("{}: unsupported archive version {version} (this reader knows 1.12 to 1.16)", path.display())]
    UnsupportedVersion { path: PathBuf, version: String },
    /// Something valid that this reader does not do (a compression method, a data layout).
    #[error("{}: {what} is not supported", path.display())]
    Unsupported { path: PathBuf, what: String },
    /// A table whose data was dumped as INSERT statements (`pg_dump --inserts`) rather than
    /// COPY: salvage streams COPY rows only. Re-dump without `--inserts`/`--column-inserts`.
    #[error(
        "{}: the data of {table} (TOC entry {dump_id}) was dumped as INSERT statements \
         (pg_dump --inserts); only COPY data can be read: dump again without --inserts",
        path.display()
    )]
    InsertsNotSupported {
        path: PathBuf,
        dump_id: i32,
        table: String,
    },
    /// The data of a TOC entry is not in the archive (a directory archive missing its file,
    /// a custom archive without that block).
    #[error("{}: no data for TOC entry {dump_id} ({table}): {reason}", path.display())]
    MissingData {
        path: PathBuf,
        dump_id: i32,
        table: String,
        reason: String,
    },
    /// The dump's text is in an encoding this reader cannot deliver as UTF-8 (salvage's
    /// sessions are always UTF-8; it reads UTF8, `SQL_ASCII` and LATIN1 dumps).
    #[error(
        "{}: the dump is in encoding {encoding}, which salvage cannot read (it reads UTF8, \
         SQL_ASCII and LATIN1 dumps): dump the database again with pg_dump --encoding=UTF8, \
         or restore this dump into a UTF-8 database (pg_restore, or psql for a plain dump) \
         and use that database as the snapshot",
        path.display()
    )]
    UnsupportedEncoding { path: PathBuf, encoding: String },
    /// A DDL statement of the archive that the schema reader could not understand.
    #[error("TOC entry {dump_id} ({desc} {tag}): cannot read its definition: {message}")]
    Definition {
        dump_id: i32,
        desc: String,
        tag: String,
        message: String,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(location: Location, message: impl Into<String>) -> Self {
        Self::Corrupt {
            location,
            message: message.into(),
        }
    }

    /// The location of a corrupt archive error, for callers that report it their own way.
    #[must_use]
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Corrupt { location, .. } => Some(location),
            _ => None,
        }
    }
}
