//! Snapshot sources: where the chosen tenants' rows are read from.
//!
//! A snapshot is a database reachable by URL (a PITR-restored instance, a paused replica, a
//! branch) or a pg_dump archive. Whatever it is, it offers the same reads, all as COPY text in
//! the pinned session format: the chosen tenants' rows of every owned table, read once by the
//! membership rule ([`members`]) into a [`Selected`], and rows of a table by key (shared
//! rows). The same membership read finds the chosen tenants' rows in live. Nothing here
//! writes.

mod archive;
mod database;
mod error;
pub mod members;
mod store;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use salvage_catalog::Catalog;
use salvage_pg::DatabaseUrl;
use salvage_plan::{SchemaPlan, TablePlan};

pub use archive::ArchiveSnapshot;
pub use database::DatabaseSnapshot;
pub use error::{Error, Result};
pub use members::{Reach, Reading, Selected, SelectedTable};

/// COPY text rows in chunks of one or more complete rows (each row ends with a newline, and a
/// raw newline only ever ends a row).
pub type RowStream<'a> = BoxStream<'a, Result<Bytes>>;

/// The rows of a chunk of a [`RowStream`], without their newlines.
pub fn rows_of(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', chunk).map(move |end| {
        let row = &chunk[start..end];
        start = end + 1;
        row
    })
}

/// How many rows a chunk of a [`RowStream`] holds.
#[must_use]
pub fn row_count(chunk: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', chunk).count() as u64
}

/// Reads, on `connection`, the rows of tenants `ids` of every owned table the database
/// `catalog` describes has — by the same membership rule as a snapshot's — keeping the
/// columns `keep` names for each table, as `reading` says. `side` names the database in
/// messages. This is how the live database's rows of the chosen tenants are found. With a
/// `second` connection to the same database (opened when first needed), large key sets are
/// read in halves on both at once.
pub async fn read_members(
    connections: (
        &mut sqlx::postgres::PgConnection,
        Option<&mut salvage_pg::OnFirstUse>,
    ),
    catalog: &Catalog,
    plan: &SchemaPlan,
    ids: &[String],
    keep: members::database::KeepColumns<'_>,
    side: &str,
    reading: Reading,
) -> Result<Selected> {
    members::database::select(connections, catalog, plan, ids, keep, side, reading).await
}

/// Every tenant ID the root table of the database on `connection` holds (as text, in the
/// order read). `side` names the database in messages.
pub async fn root_ids(
    connection: &mut sqlx::postgres::PgConnection,
    catalog: &Catalog,
    plan: &SchemaPlan,
    side: &str,
) -> Result<Vec<String>> {
    members::database::root_ids(connection, catalog, plan, side).await
}

/// A snapshot, cheap to clone and share between workers.
#[derive(Debug, Clone)]
pub struct Snapshot {
    inner: Arc<Source>,
}

#[derive(Debug)]
enum Source {
    Database(DatabaseSnapshot),
    Archive(Arc<ArchiveSnapshot>),
}

/// How a snapshot is read.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotOptions {
    /// Bytes the key maps of an archive's filter may hold in memory; beyond, they spill to
    /// temporary files.
    pub key_memory: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            key_memory: 1 << 30,
        }
    }
}

/// What identifies a snapshot: a database by its cluster's system identifier and its name;
/// an archive by its header (the database dumped, when) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity {
    pub kind: &'static str,
    pub system_identifier: Option<String>,
    pub database: Option<String>,
    pub dumped_at: Option<String>,
    pub bytes: Option<u64>,
}

impl Snapshot {
    /// Opens a snapshot: a `postgres://` URL (connects and reads its catalog), or a pg_dump
    /// archive — a file, a directory, or `-` for standard input (reads its table of contents).
    pub async fn open(text: &str) -> Result<Self> {
        Self::open_with(text, SnapshotOptions::default()).await
    }

    /// [`Snapshot::open`] with `options`.
    pub async fn open_with(text: &str, options: SnapshotOptions) -> Result<Self> {
        let source = if let Some(url) = DatabaseUrl::parse(text) {
            Source::Database(DatabaseSnapshot::open(url).await?)
        } else {
            if text != "-" && !std::path::Path::new(text).exists() {
                return Err(Error::UnknownSource(text.to_owned()));
            }
            Source::Archive(ArchiveSnapshot::open(text, options.key_memory).await?)
        };
        Ok(Self {
            inner: Arc::new(source),
        })
    }

    /// A database snapshot already resolved (a recovery instance's, say).
    pub async fn open_database(url: DatabaseUrl) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Source::Database(DatabaseSnapshot::open(url).await?)),
        })
    }

    #[must_use]
    pub fn catalog(&self) -> &Catalog {
        match &*self.inner {
            Source::Database(database) => database.catalog(),
            Source::Archive(archive) => archive.catalog(),
        }
    }

    /// What the snapshot is, safe to show (URLs redacted).
    #[must_use]
    pub fn describe(&self) -> String {
        match &*self.inner {
            Source::Database(database) => database.url().redacted().to_owned(),
            Source::Archive(archive) => archive.describe().to_owned(),
        }
    }

    /// The database URL when the snapshot is a database.
    #[must_use]
    pub fn database_url(&self) -> Option<&DatabaseUrl> {
        match &*self.inner {
            Source::Database(database) => Some(database.url()),
            Source::Archive(_) => None,
        }
    }

    /// What the snapshot is, to tell later whether it is the same one.
    #[must_use]
    pub fn identity(&self) -> SourceIdentity {
        match &*self.inner {
            Source::Database(database) => {
                let (system, name) = database.system().clone();
                SourceIdentity {
                    kind: "database",
                    system_identifier: Some(system),
                    database: Some(name),
                    dumped_at: None,
                    bytes: None,
                }
            }
            Source::Archive(archive) => {
                let (database, dumped_at, bytes) = archive.facts();
                SourceIdentity {
                    kind: "archive",
                    system_identifier: None,
                    database,
                    dumped_at,
                    bytes,
                }
            }
        }
    }

    /// For a database snapshot, what identifies the database (see
    /// `salvage_pg::database_identity`).
    #[must_use]
    pub fn database_identity(&self) -> Option<&str> {
        match &*self.inner {
            Source::Database(database) => Some(database.identity()),
            Source::Archive(_) => None,
        }
    }

    /// Reads the rows of tenants `ids` (canonical) of every owned table, once: from a
    /// database, a few statements per table; from an archive, one filtering pass. What it
    /// returns is the only way to read those rows, and every phase reads the same ones.
    pub async fn select(&self, plan: &SchemaPlan, ids: &[String]) -> Result<Arc<Selected>> {
        self.select_reading(plan, ids, Reading::ByParentKeys).await
    }

    /// [`Snapshot::select`], a database read as `reading` says (an archive is always read
    /// whole, once).
    pub async fn select_reading(
        &self,
        plan: &SchemaPlan,
        ids: &[String],
        reading: Reading,
    ) -> Result<Arc<Selected>> {
        let selected = match &*self.inner {
            Source::Database(database) => database.select(plan, ids, reading).await?,
            Source::Archive(archive) => archive.select(plan, ids).await?,
        };
        Ok(Arc::new(selected))
    }

    /// Every tenant ID of the snapshot's root table (as text, in the order read): from a
    /// database one statement, from an archive one pass over the root's data.
    pub async fn root_ids(&self, plan: &SchemaPlan) -> Result<Vec<String>> {
        match &*self.inner {
            Source::Database(database) => database.root_ids(plan).await,
            Source::Archive(archive) => archive.root_ids(plan).await,
        }
    }

    /// A reader with its own connection (or file handles): one per worker. A database's
    /// connects on its first read (a failure to connect is that read's error): a worker
    /// that reads nothing costs the snapshot no session.
    #[must_use]
    pub fn reader(&self) -> SnapshotReader {
        match &*self.inner {
            Source::Database(database) => SnapshotReader {
                inner: ReaderInner::Database(database.reader()),
            },
            Source::Archive(archive) => SnapshotReader {
                inner: ReaderInner::Archive(archive::ArchiveReader::new(Arc::clone(archive))),
            },
        }
    }
}

/// Reads rows by key from a snapshot; every read is COPY text in snapshot column order.
#[derive(Debug)]
pub struct SnapshotReader {
    inner: ReaderInner,
}

#[derive(Debug)]
enum ReaderInner {
    Database(database::DatabaseReader),
    Archive(archive::ArchiveReader),
}

/// A decoded row of a projection: text values, `None` for NULL.
pub type TextRow = Vec<Option<String>>;

/// A filter on a table's rows: its `columns` hold one of `keys` (raw COPY text of the
/// columns, tab-joined), and, when given, the `condition` column holds the value.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    pub columns: Vec<String>,
    pub condition: Option<(String, String)>,
    pub keys: Arc<rustc_hash::FxHashSet<Box<[u8]>>>,
    /// The table the keys are keys of, when they reference one: how many rows it has
    /// decides whether a database probes for the keys or reads the table.
    pub parent: Option<salvage_catalog::QualifiedName>,
}

impl SnapshotReader {
    /// Rows of `table` whose `key_columns` equal one of `keys`, projected on `columns`.
    pub async fn project_by_keys(
        &mut self,
        table: &TablePlan,
        key_columns: &[String],
        keys: &[TextRow],
        columns: &[String],
        on_row: &mut (dyn FnMut(TextRow) -> Result<()> + Send),
    ) -> Result<()> {
        match &mut self.inner {
            ReaderInner::Database(reader) => {
                reader
                    .project_by_keys(table, key_columns, keys, columns, on_row)
                    .await
            }
            ReaderInner::Archive(reader) => {
                reader
                    .project_by_keys(table, key_columns, keys, columns, on_row)
                    .await
            }
        }
    }

    /// The rows of `table`, projected on `columns` (raw COPY text), that any of `filters`
    /// matches, each once: one statement from a database, one pass over an archive.
    pub async fn rows_matching(
        &mut self,
        table: &TablePlan,
        columns: &[String],
        filters: &[KeyFilter],
    ) -> Result<Vec<Bytes>> {
        if filters.iter().all(|filter| filter.keys.is_empty()) {
            return Ok(Vec::new());
        }
        match &mut self.inner {
            ReaderInner::Database(reader) => reader.rows_matching(table, columns, filters).await,
            ReaderInner::Archive(reader) => reader.rows_matching(table, columns, filters).await,
        }
    }

    /// Marks `table` as one the caller will read again, in rounds: an archive keeps the fields
    /// its first pass looks at in a temporary file, for the passes after it; a database needs
    /// nothing.
    pub fn read_again(&mut self, table: &TablePlan) {
        if let ReaderInner::Archive(reader) = &mut self.inner {
            reader.read_again(table);
        }
    }

    /// Rows of `table` by key, all columns of the plan.
    pub async fn copy_by_keys(
        &mut self,
        table: &TablePlan,
        key_columns: &[String],
        keys: &[TextRow],
    ) -> Result<RowStream<'_>> {
        match &mut self.inner {
            ReaderInner::Database(reader) => reader.copy_by_keys(table, key_columns, keys).await,
            ReaderInner::Archive(reader) => reader.copy_by_keys(table, key_columns, keys).await,
        }
    }
}

/// Runs `work` on rayon and waits for it without blocking the async runtime.
pub async fn on_rayon<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .await
        .map_err(|_| Error::Worker("a rayon task stopped without an answer".to_owned()))
}

/// Positions of `columns` in the plan table's snapshot rows.
pub(crate) fn positions(table: &TablePlan, columns: &[String]) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|column| {
            table
                .column_index(column)
                .ok_or_else(|| Error::MissingColumn {
                    table: table.name.clone(),
                    column: column.clone(),
                    side: "the snapshot".to_owned(),
                })
        })
        .collect()
}

/// The fields at `positions`, decoded.
pub(crate) fn decode_at(fields: &[&[u8]], positions: &[usize]) -> TextRow {
    positions
        .iter()
        .map(|&position| {
            fields
                .get(position)
                .and_then(|field| salvage_copy::decode_text(field))
        })
        .collect()
}
