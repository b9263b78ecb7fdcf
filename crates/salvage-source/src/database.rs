//! A snapshot that is a database: a PITR-restored instance, a paused replica, a branch.
//! Every read is a `COPY (SELECT ...) TO STDOUT` on a read-only session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use futures_util::StreamExt;
use salvage_catalog::Catalog;
use salvage_pg::{ConnectionRole, CopyQuery, DatabaseUrl};
use salvage_plan::{Role, SchemaPlan, TablePlan};
use sqlx::postgres::PgConnection;

use crate::selection::Selection;
use crate::sql::{by_keys_select, owned_select};
use crate::store::{StoreWriter, TableStore};
use crate::{Error, Result, RowStream, Tenants, TextRow};

/// Keys per query when reading rows by key: bounds the size of one bound value.
const KEYS_PER_QUERY: usize = 50_000;

#[derive(Debug)]
pub struct DatabaseSnapshot {
    url: DatabaseUrl,
    catalog: Arc<Catalog>,
    identity: String,
    selection: Arc<Mutex<Option<Arc<Selection>>>>,
}

impl DatabaseSnapshot {
    /// Connects and reads the catalog.
    pub async fn open(url: DatabaseUrl) -> Result<Self> {
        let mut connection = salvage_pg::connect(&url, ConnectionRole::ReadOnly).await?;
        let catalog = salvage_catalog::introspect(&mut connection).await?;
        let identity = salvage_pg::database_identity(&mut connection).await?;
        salvage_pg::close(connection).await;
        Ok(Self {
            url,
            catalog: Arc::new(catalog),
            identity,
            selection: Arc::new(Mutex::new(None)),
        })
    }

    #[must_use]
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    #[must_use]
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// See `salvage_pg::database_identity`.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub(crate) async fn reader(&self) -> Result<DatabaseReader> {
        Ok(DatabaseReader {
            connection: salvage_pg::connect(&self.url, ConnectionRole::ReadOnly).await?,
            catalog: Arc::clone(&self.catalog),
            selection: Arc::clone(&self.selection),
        })
    }
}

#[derive(Debug)]
pub(crate) struct DatabaseReader {
    connection: PgConnection,
    catalog: Arc<Catalog>,
    selection: Arc<Mutex<Option<Arc<Selection>>>>,
}

impl DatabaseReader {
    pub(crate) fn selection(&self) -> Result<Arc<Selection>> {
        self.selection
            .lock()
            .map_err(|_| Error::Aborted("the selection lock is poisoned".to_owned()))?
            .clone()
            .ok_or_else(|| {
                Error::Aborted("the snapshot was read before its tenants were chosen".to_owned())
            })
    }

    /// Reads the chosen tenants' rows of every owned table, one tagged COPY per table, into
    /// the selection every later read is served from.
    pub async fn select_tenants(&mut self, plan: &SchemaPlan, ids: &[String]) -> Result<()> {
        if let Ok(existing) = self.selection() {
            if existing.ids == ids {
                return Ok(());
            }
        }
        let mut stores = HashMap::new();
        let mut reach = HashMap::new();
        for table in plan.tables.iter().filter(|table| {
            table.role != Role::Shared && table.in_snapshot && table.ownership.is_some()
        }) {
            let columns = column_names(table);
            let context = format!("read {} from the snapshot", table.name);
            let (store, crossing) = keep_owned(
                &mut self.connection,
                &self.catalog,
                plan,
                table,
                &columns,
                ids,
                &context,
            )
            .await?;
            stores.insert(table.name.clone(), store);
            if !crossing.is_empty() {
                reach.insert(table.name.clone(), crossing);
            }
        }
        *self
            .selection
            .lock()
            .map_err(|_| Error::Aborted("the selection lock is poisoned".to_owned()))? =
            Some(Arc::new(Selection {
                ids: ids.to_vec(),
                stores,
                reach,
            }));
        Ok(())
    }

    pub async fn root_rows(&mut self, plan: &SchemaPlan, ids: &[String]) -> Result<Vec<TextRow>> {
        let root = plan
            .table(&plan.root.table)
            .ok_or_else(|| Error::MissingTable(plan.root.table.clone()))?;
        let mut columns = vec![plan.root.key_column.clone()];
        columns.extend(plan.root.label_column.clone());
        let keys: Vec<TextRow> = ids.iter().map(|id| vec![Some(id.clone())]).collect();
        let mut rows = Vec::new();
        self.project_by_keys(
            root,
            std::slice::from_ref(&plan.root.key_column),
            &keys,
            &columns,
            &mut |row| {
                rows.push(row);
                Ok(())
            },
        )
        .await?;
        Ok(rows)
    }

    pub async fn project_by_keys(
        &mut self,
        table: &TablePlan,
        key_columns: &[String],
        keys: &[TextRow],
        columns: &[String],
        on_row: &mut (dyn FnMut(TextRow) -> Result<()> + Send),
    ) -> Result<()> {
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let mut query = CopyQuery::new();
            let select = by_keys_select(
                &self.catalog,
                &table.name,
                key_columns,
                chunk,
                columns,
                &mut query,
            )?;
            let context = format!("read {} by key from the snapshot", table.name);
            let stream = query
                .copy_out(&mut self.connection, &select, &context)
                .await?;
            decode_stream(stream, &table.name, columns.len(), on_row).await?;
        }
        Ok(())
    }

    pub async fn copy_by_keys(
        &mut self,
        table: &TablePlan,
        key_columns: &[String],
        keys: &[TextRow],
    ) -> Result<RowStream<'_>> {
        let columns = column_names(table);
        let mut query = CopyQuery::new();
        let select = by_keys_select(
            &self.catalog,
            &table.name,
            key_columns,
            keys,
            &columns,
            &mut query,
        )?;
        let context = format!("copy {} rows by key from the snapshot", table.name);
        let stream = query
            .copy_out(&mut self.connection, &select, &context)
            .await?;
        Ok(stream.map(|chunk| chunk.map_err(Error::from)).boxed())
    }
}

/// Rows reaching several tenants, with all of them.
type Reach = HashMap<Vec<u8>, Vec<String>>;

/// The chosen tenants' rows of one owned table, `columns` of them, in one tagged COPY on
/// `connection` (whichever database `catalog` describes), kept per tenant (by position in
/// `ids`); rows reaching several tenants are also noted with all of them.
pub(crate) async fn keep_owned(
    connection: &mut PgConnection,
    catalog: &Catalog,
    plan: &SchemaPlan,
    table: &TablePlan,
    columns: &[String],
    ids: &[String],
    context: &str,
) -> Result<(TableStore, Reach)> {
    let mut query = CopyQuery::new();
    let select = owned_select(
        catalog,
        plan,
        table,
        columns,
        true,
        Tenants::Many(ids),
        &mut query,
    )?;
    let mut stream = query.copy_out(connection, &select, context).await?;
    // Parsing and writing happen on a blocking thread; the stream feeds it.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(64);
    let chains = 1 + table.secondary.len();
    let chosen = ids.to_vec();
    let keeper = tokio::task::spawn_blocking(move || keep_tagged(receiver, chains, &chosen));
    while let Some(chunk) = stream.next().await {
        if sender.send(chunk?).await.is_err() {
            break;
        }
    }
    drop(sender);
    keeper.await.map_err(|error| {
        Error::Aborted(format!(
            "keeping the rows of {} failed: {error}",
            table.name
        ))
    })?
}

/// Routes rows of a tagged COPY (each row starts with the tenant of each ownership chain) to
/// the chosen tenants they reach; rows reaching several tenants are noted with all of them.
fn keep_tagged(
    mut receiver: tokio::sync::mpsc::Receiver<Bytes>,
    chains: usize,
    ids: &[String],
) -> Result<(TableStore, Reach)> {
    let index_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(index, id)| (id.as_str(), index))
        .collect();
    let io = |error: std::io::Error| Error::Io(format!("keep the snapshot's rows: {error}"));
    let mut writer = StoreWriter::new(ids.len()).map_err(io)?;
    let mut crossing = HashMap::new();
    let mut reached: Vec<String> = Vec::with_capacity(chains);
    while let Some(chunk) = receiver.blocking_recv() {
        for line in crate::rows_of(&chunk) {
            reached.clear();
            let mut rest = line;
            for _ in 0..chains {
                let (field, after) = match memchr::memchr(b'\t', rest) {
                    Some(tab) => (&rest[..tab], &rest[tab + 1..]),
                    None => (rest, &rest[rest.len()..]),
                };
                if let Some(tenant) = salvage_copy::decode_text(field) {
                    if !reached.contains(&tenant) {
                        reached.push(tenant);
                    }
                }
                rest = after;
            }
            for tenant in &reached {
                if let Some(&index) = index_of.get(tenant.as_str()) {
                    writer.push(index, rest).map_err(io)?;
                }
            }
            if reached.len() > 1 {
                crossing.insert(rest.to_vec(), reached.clone());
            }
        }
    }
    Ok((writer.finish().map_err(io)?, crossing))
}

fn column_names(table: &TablePlan) -> Vec<String> {
    table
        .columns
        .iter()
        .map(|column| column.name.clone())
        .collect()
}

/// Decodes COPY text rows (one per message) into text values.
async fn decode_stream(
    mut stream: futures_util::stream::BoxStream<'_, salvage_pg::Result<bytes::Bytes>>,
    table: &salvage_catalog::QualifiedName,
    expected: usize,
    on_row: &mut (dyn FnMut(TextRow) -> Result<()> + Send),
) -> Result<()> {
    while let Some(chunk) = stream.next().await {
        // COPY TO sends one message per row, newline included; a row whose only field is
        // an empty string is an empty line, so only the final newline is stripped.
        let chunk = chunk?;
        let line = chunk.strip_suffix(b"\n").unwrap_or(&chunk);
        let row: TextRow = salvage_copy::fields(line)
            .map(salvage_copy::decode_text)
            .collect();
        if row.len() != expected {
            return Err(Error::BadRow {
                table: table.clone(),
                expected,
                found: row.len(),
            });
        }
        on_row(row)?;
    }
    Ok(())
}
