//! Snapshot sources: where the chosen tenants' rows are read from.
//!
//! A snapshot is a database reachable by URL (a PITR-restored instance, a paused replica, a
//! branch) or, later, a pg_dump archive. Whatever it is, it offers the same reads, all as COPY
//! text in the pinned session format: a tenant's rows of an owned table, rows of a table by
//! key, and projections of a few columns for planning. Nothing here writes.

mod archive;
mod database;
mod error;
mod selection;
pub mod sql;
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
pub use selection::on_rayon;

/// COPY text rows in chunks of one or more complete rows (each row ends with a newline, and a
/// raw newline only ever ends a row).
pub type RowStream<'a> = BoxStream<'a, Result<Bytes>>;

/// The rows of a chunk of a [`RowStream`], without their newlines.
pub fn rows_of(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let rows = memchr::memchr_iter(b'\n', chunk).count();
    chunk.split(|&byte| byte == b'\n').take(rows)
}

/// How many rows a chunk of a [`RowStream`] holds.
#[must_use]
pub fn row_count(chunk: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', chunk).count() as u64
}

/// One owned table's rows of the chosen tenants as a database holds them at one moment,
/// kept per tenant in a temporary file: what verification compares the snapshot with.
#[derive(Debug)]
pub struct KeptRows {
    store: store::TableStore,
}

impl KeptRows {
    /// Reads, in one tagged COPY on `connection`, the rows of `table` (its `columns`, in
    /// that order) that its ownership chains lead to one of `ids` on the database `catalog`
    /// describes. A row is kept once for each distinct tenant it reaches.
    pub async fn read(
        connection: &mut sqlx::postgres::PgConnection,
        catalog: &Catalog,
        plan: &SchemaPlan,
        table: &TablePlan,
        columns: &[String],
        ids: &[String],
    ) -> Result<Self> {
        let context = format!("read {} from live", table.name);
        let (store, _) =
            database::keep_owned(connection, catalog, plan, table, columns, ids, &context).await?;
        Ok(Self { store })
    }

    /// The rows of the tenant at position `tenant` of the `ids` read, as chunks of complete
    /// COPY rows.
    pub fn tenant_rows(&self, tenant: usize) -> Result<Vec<Bytes>> {
        self.store
            .read(tenant)
            .map_err(|error| Error::Io(format!("read the kept live rows: {error}")))
    }
}

/// Which tenants a read is for.
#[derive(Debug, Clone, Copy)]
pub enum Tenants<'a> {
    One(&'a str),
    Many(&'a [String]),
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

    /// For a database snapshot, what identifies the database (see
    /// `salvage_pg::database_identity`).
    #[must_use]
    pub fn database_identity(&self) -> Option<&str> {
        match &*self.inner {
            Source::Database(database) => Some(database.identity()),
            Source::Archive(_) => None,
        }
    }

    /// A reader with its own connection (or file handles): one per worker.
    pub async fn reader(&self) -> Result<SnapshotReader> {
        match &*self.inner {
            Source::Database(database) => Ok(SnapshotReader {
                inner: ReaderInner::Database(database.reader().await?),
            }),
            Source::Archive(archive) => Ok(SnapshotReader {
                inner: ReaderInner::Archive(archive::ArchiveReader::new(Arc::clone(archive))),
            }),
        }
    }
}

/// Reads from a snapshot; every read is COPY text in snapshot column order.
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

/// A row of an owned table with the tenant each of its ownership chains leads to (one chain
/// for most tables; `None` where a chain leads nowhere, e.g. through a NULL reference).
#[derive(Debug, Clone)]
pub struct OwnedRow {
    pub tenants: Vec<Option<String>>,
    pub values: TextRow,
}

impl SnapshotReader {
    /// Tells the snapshot which tenants (canonical IDs) will be read: their rows of every
    /// owned table are read here, once (one tagged COPY per table from a database, one
    /// filtering pass over an archive), and every later read of an owned table is served
    /// from what was kept.
    pub async fn select_tenants(&mut self, plan: &SchemaPlan, ids: &[String]) -> Result<()> {
        match &mut self.inner {
            ReaderInner::Database(reader) => reader.select_tenants(plan, ids).await,
            ReaderInner::Archive(reader) => reader.select_tenants(plan, ids).await,
        }
    }

    /// Root rows for the given tenant IDs: `(id, label)` for each ID the snapshot has.
    pub async fn root_rows(&mut self, plan: &SchemaPlan, ids: &[String]) -> Result<Vec<TextRow>> {
        match &mut self.inner {
            ReaderInner::Database(reader) => reader.root_rows(plan, ids).await,
            ReaderInner::Archive(reader) => reader.root_rows(plan, ids).await,
        }
    }

    /// What `select_tenants` kept, which every read of an owned table is served from.
    fn selection(&self) -> Result<Arc<selection::Selection>> {
        match &self.inner {
            ReaderInner::Database(reader) => reader.selection(),
            ReaderInner::Archive(reader) => reader.selection(),
        }
    }

    /// The chosen tenants' rows of an owned table projected on `columns`, each with the
    /// tenants its ownership chains lead to.
    pub async fn project_owned(
        &mut self,
        table: &TablePlan,
        columns: &[String],
        on_row: &mut (dyn FnMut(OwnedRow) -> Result<()> + Send),
    ) -> Result<()> {
        selection::project_kept(self.selection()?, table, columns, on_row).await
    }

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

    /// A tenant's rows of an owned table (or the root), all columns of the plan.
    pub async fn copy_owned(&mut self, table: &TablePlan, tenant: &str) -> Result<RowStream<'_>> {
        selection::copy_kept(self.selection()?, table, tenant).await
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
