//! A snapshot that is a database: a PITR-restored instance, a paused replica, a branch.
//! Every read is a `COPY (SELECT ...) TO STDOUT` on a read-only session.

use std::sync::Arc;

use futures_util::StreamExt;
use salvage_catalog::Catalog;
use salvage_pg::{ConnectionRole, CopyQuery, DatabaseUrl, OnFirstUse};
use salvage_plan::{SchemaPlan, TablePlan};
use salvage_sql::keys::rows_by_keys;
use salvage_sql::reach::{Drive, Match, drive_for, rows_matching_any};
use salvage_sql::{Binder, bound_array, from_item};

use crate::members::{Reading, Selected, decode_key};
use crate::{Error, KeyFilter, Result, RowStream, TextRow};

/// Keys per query when reading rows by key: bounds the size of one bound value.
const KEYS_PER_QUERY: usize = 50_000;

#[derive(Debug)]
pub struct DatabaseSnapshot {
    url: DatabaseUrl,
    catalog: Arc<Catalog>,
    identity: String,
    /// The cluster's system identifier and the database's name.
    system: (String, String),
}

impl DatabaseSnapshot {
    /// Connects and reads the catalog.
    pub async fn open(url: DatabaseUrl) -> Result<Self> {
        let mut connection = salvage_pg::connect(&url, ConnectionRole::ReadOnly).await?;
        let catalog = salvage_pg::introspect(&mut connection).await?;
        let identity = salvage_pg::database_identity(&mut connection).await?;
        let system = salvage_pg::system_identity(&mut connection).await?;
        salvage_pg::close(connection).await;
        Ok(Self {
            url,
            catalog: Arc::new(catalog),
            identity,
            system,
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

    /// The cluster's system identifier and the database's name.
    #[must_use]
    pub fn system(&self) -> &(String, String) {
        &self.system
    }

    /// See `salvage_pg::database_identity`.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The chosen tenants' rows of every owned table, all snapshot columns.
    pub(crate) async fn select(
        &self,
        plan: &SchemaPlan,
        ids: &[String],
        reading: Reading,
    ) -> Result<Selected> {
        let mut connection = salvage_pg::connect(&self.url, ConnectionRole::ReadOnly).await?;
        let keep = |table: &TablePlan| -> Vec<String> {
            table
                .columns
                .iter()
                .map(|column| column.name.clone())
                .collect()
        };
        // Its second connection opens for the first table read by more than one statement
        // (halves of a large key set, or one per relation).
        let mut second = OnFirstUse::new(self.url.clone(), ConnectionRole::ReadOnly);
        let selected = crate::members::database::select(
            (&mut connection, Some(&mut second)),
            &self.catalog,
            plan,
            ids,
            &keep,
            "the snapshot",
            reading,
        )
        .await;
        salvage_pg::close(connection).await;
        second.close().await;
        selected
    }

    /// Every tenant ID of the root table.
    pub(crate) async fn root_ids(&self, plan: &SchemaPlan) -> Result<Vec<String>> {
        let mut connection = salvage_pg::connect(&self.url, ConnectionRole::ReadOnly).await?;
        let ids = crate::members::database::root_ids(
            &mut connection,
            &self.catalog,
            plan,
            "the snapshot",
        )
        .await;
        salvage_pg::close(connection).await;
        ids
    }

    /// A reader that connects on its first read.
    pub(crate) fn reader(&self) -> DatabaseReader {
        DatabaseReader {
            connection: OnFirstUse::new(self.url.clone(), ConnectionRole::ReadOnly),
            catalog: Arc::clone(&self.catalog),
        }
    }
}

#[derive(Debug)]
pub(crate) struct DatabaseReader {
    /// Opened by the first read: a restore's worker whose tenants' rows are all in the plan
    /// never reads the snapshot.
    connection: OnFirstUse,
    catalog: Arc<Catalog>,
}

impl DatabaseReader {
    /// `SELECT <columns> FROM table WHERE (key columns) IN (<keys, bound>)`.
    fn by_keys(
        &self,
        table: &TablePlan,
        key_columns: &[String],
        keys: &[TextRow],
        columns: &[String],
        query: &mut CopyQuery,
    ) -> Result<String> {
        let definition = self
            .catalog
            .table(&table.name)
            .ok_or_else(|| Error::MissingTable(table.name.clone()))?;
        let mut arrays = Vec::with_capacity(key_columns.len());
        for (position, column) in key_columns.iter().enumerate() {
            let type_name = &definition
                .column(column)
                .ok_or_else(|| Error::MissingColumn {
                    table: table.name.clone(),
                    column: column.clone(),
                    side: "the snapshot".to_owned(),
                })?
                .type_name;
            arrays.push(bound_array(
                query,
                keys.iter()
                    .map(|key| key.get(position).and_then(Option::as_deref)),
                type_name,
            ));
        }
        Ok(rows_by_keys(
            &from_item(&self.catalog, &table.name),
            columns,
            key_columns,
            &arrays,
        ))
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
            let select = self.by_keys(table, key_columns, chunk, columns, &mut query)?;
            let context = format!("read {} by key from the snapshot", table.name);
            let stream = query
                .copy_out(self.connection.get().await?, &select, &context)
                .await?;
            decode_stream(stream, &table.name, columns.len(), on_row).await?;
        }
        Ok(())
    }

    pub async fn rows_matching(
        &mut self,
        table: &TablePlan,
        columns: &[String],
        filters: &[KeyFilter],
    ) -> Result<Vec<bytes::Bytes>> {
        let definition = self
            .catalog
            .table(&table.name)
            .ok_or_else(|| Error::MissingTable(table.name.clone()))?;
        let mut query = CopyQuery::new();
        let mut matches = Vec::new();
        for filter in filters.iter().filter(|filter| !filter.keys.is_empty()) {
            let values: Vec<TextRow> = filter.keys.iter().map(|key| decode_key(key)).collect();
            let mut arrays = Vec::with_capacity(filter.columns.len());
            for (position, column) in filter.columns.iter().enumerate() {
                let type_name = &definition
                    .column(column)
                    .ok_or_else(|| Error::MissingColumn {
                        table: table.name.clone(),
                        column: column.clone(),
                        side: "the snapshot".to_owned(),
                    })?
                    .type_name;
                arrays.push(bound_array(
                    &mut query,
                    values
                        .iter()
                        .map(|key| key.get(position).and_then(Option::as_deref)),
                    type_name,
                ));
            }
            let condition = filter
                .condition
                .as_ref()
                .map(|(column, value)| (column.clone(), query.bind(value.clone())));
            matches.push(Match {
                columns: filter.columns.clone(),
                arrays,
                condition,
                keys: filter.keys.len(),
            });
        }
        // Probed or read: by how many keys there are against the rows of the table they are
        // keys of (the parent's, else this one's): one relation with many keys makes it a
        // scan; a single relation is probed (on its index, when it has one).
        let drives: Vec<Drive> = filters
            .iter()
            .filter(|filter| !filter.keys.is_empty())
            .map(|filter| {
                let of = filter.parent.as_ref().unwrap_or(&table.name);
                let rows = self
                    .catalog
                    .table(of)
                    .map_or(-1, |table| table.estimated_rows);
                drive_for(
                    filter.keys.len(),
                    rows,
                    definition.has_index_on(&filter.columns),
                )
            })
            .collect();
        let drive = match drives.as_slice() {
            _ if drives.contains(&Drive::Scan) => Drive::Scan,
            [one] => *one,
            _ => Drive::Probe,
        };
        let select = rows_matching_any(
            &from_item(&self.catalog, &table.name),
            columns,
            &matches,
            drive,
        );
        let context = format!("read {} from the snapshot", table.name);
        let mut stream = query
            .copy_out(self.connection.get().await?, &select, &context)
            .await?;
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            chunks.push(chunk?);
        }
        Ok(chunks)
    }

    pub async fn copy_by_keys(
        &mut self,
        table: &TablePlan,
        key_columns: &[String],
        keys: &[TextRow],
    ) -> Result<RowStream<'_>> {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|column| column.name.clone())
            .collect();
        let mut query = CopyQuery::new();
        let select = self.by_keys(table, key_columns, keys, &columns, &mut query)?;
        let context = format!("copy {} rows by key from the snapshot", table.name);
        let stream = query
            .copy_out(self.connection.get().await?, &select, &context)
            .await?;
        Ok(stream.map(|chunk| chunk.map_err(Error::from)).boxed())
    }
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
                side: "the snapshot".to_owned(),
                expected,
                found: row.len(),
            });
        }
        on_row(row)?;
    }
    Ok(())
}
