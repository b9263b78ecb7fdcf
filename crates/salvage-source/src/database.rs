//! A snapshot that is a database: a PITR-restored instance, a paused replica, a branch.
//! Every read is a `COPY (SELECT ...) TO STDOUT` on a read-only session.

use std::sync::Arc;

use futures_util::StreamExt;
use salvage_catalog::Catalog;
use salvage_pg::{ConnectionRole, CopyQuery, DatabaseUrl};
use salvage_plan::{SchemaPlan, TablePlan};
use sqlx::postgres::PgConnection;

use crate::sql::{by_keys_select, owned_select};
use crate::{Error, OwnedRow, Result, RowStream, Tenants, TextRow};

/// Keys per query when reading rows by key: bounds the size of one bound value.
const KEYS_PER_QUERY: usize = 50_000;

#[derive(Debug)]
pub struct DatabaseSnapshot {
    url: DatabaseUrl,
    catalog: Arc<Catalog>,
    identity: String,
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
        })
    }
}

#[derive(Debug)]
pub(crate) struct DatabaseReader {
    connection: PgConnection,
    catalog: Arc<Catalog>,
}

impl DatabaseReader {
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

    pub async fn project_owned(
        &mut self,
        plan: &SchemaPlan,
        table: &TablePlan,
        columns: &[String],
        tenants: &[String],
        on_row: &mut (dyn FnMut(OwnedRow) -> Result<()> + Send),
    ) -> Result<()> {
        let mut query = CopyQuery::new();
        let select = owned_select(
            &self.catalog,
            plan,
            table,
            columns,
            true,
            Tenants::Many(tenants),
            &mut query,
        )?;
        let context = format!("read {} from the snapshot", table.name);
        let stream = query
            .copy_out(&mut self.connection, &select, &context)
            .await?;
        let chains = 1 + table.secondary.len();
        decode_stream(
            stream,
            &table.name,
            columns.len() + chains,
            &mut |mut values| {
                let tenants = values.drain(..chains).collect();
                on_row(OwnedRow { tenants, values })
            },
        )
        .await
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

    pub async fn copy_owned(
        &mut self,
        plan: &SchemaPlan,
        table: &TablePlan,
        tenants: Tenants<'_>,
    ) -> Result<RowStream<'_>> {
        let columns = column_names(table);
        let mut query = CopyQuery::new();
        let select = owned_select(
            &self.catalog,
            plan,
            table,
            &columns,
            false,
            tenants,
            &mut query,
        )?;
        let context = format!("copy {} rows from the snapshot", table.name);
        let stream = query
            .copy_out(&mut self.connection, &select, &context)
            .await?;
        Ok(stream.map(|chunk| chunk.map_err(Error::from)).boxed())
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
