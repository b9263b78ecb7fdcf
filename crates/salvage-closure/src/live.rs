//! Which keys the live database already has: one statement per table and key set, each key
//! probed on the table's index.

use salvage_catalog::{Catalog, QualifiedName};
use salvage_pg::Error as PgError;
use salvage_sql::from_item;
use salvage_sql::keys::present_keys;
use sqlx::postgres::PgConnection;

use crate::{Error, Result};

/// Keys per statement: bounds one statement's bound arrays.
const KEYS_PER_QUERY: usize = 100_000;

/// For each key (text values in `columns` order), whether a row of live's `table` has it.
/// Keys with a NULL never match.
pub async fn existing_keys(
    connection: &mut PgConnection,
    catalog: &Catalog,
    table: &QualifiedName,
    columns: &[String],
    keys: &[impl AsRef<[Option<String>]>],
) -> Result<Vec<bool>> {
    let mut found = vec![false; keys.len()];
    if keys.is_empty() {
        return Ok(found);
    }
    let definition = catalog
        .table(table)
        .ok_or_else(|| Error::Inconsistent(format!("live has no table {table}")))?;
    let types = columns
        .iter()
        .map(|column| {
            definition
                .column(column)
                .map(|column| column.type_name.clone())
                .ok_or_else(|| {
                    Error::Inconsistent(format!("live's {table} has no column {column}"))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let sql = present_keys(
        &from_item(catalog, table),
        columns,
        &types,
        definition.has_index_on(columns),
    );
    for (chunk_index, chunk) in keys.chunks(KEYS_PER_QUERY).enumerate() {
        let offset = chunk_index * KEYS_PER_QUERY;
        let mut query = sqlx::query_scalar::<_, i32>(&sql);
        for position in 0..columns.len() {
            let column: Vec<Option<String>> = chunk
                .iter()
                .map(|key| key.as_ref().get(position).cloned().flatten())
                .collect();
            query = query.bind(column);
        }
        let present = query
            .fetch_all(&mut *connection)
            .await
            .map_err(PgError::query(format!("look up keys of {table} in live")))?;
        for number in present {
            // WITH ORDINALITY counts from 1.
            found[offset + number as usize - 1] = true;
        }
    }
    Ok(found)
}
