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
    let by_column: Vec<Vec<Option<String>>> = (0..columns.len())
        .map(|position| {
            keys.iter()
                .map(|key| key.as_ref().get(position).cloned().flatten())
                .collect()
        })
        .collect();
    existing_keys_by_column(connection, catalog, table, columns, &by_column).await
}

/// [`existing_keys`] for keys given column by column (`values[c][k]`: column `c` of key `k`),
/// as they are bound: no key is copied to ask for it.
pub async fn existing_keys_by_column(
    connection: &mut PgConnection,
    catalog: &Catalog,
    table: &QualifiedName,
    columns: &[String],
    values: &[Vec<Option<String>>],
) -> Result<Vec<bool>> {
    let count = values.first().map_or(0, Vec::len);
    let mut found = vec![false; count];
    if count == 0 {
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
    for start in (0..count).step_by(KEYS_PER_QUERY) {
        let end = (start + KEYS_PER_QUERY).min(count);
        let mut query = sqlx::query_scalar::<_, i32>(&sql);
        for column in values {
            query = query.bind(&column[start..end]);
        }
        let present = query
            .fetch_all(&mut *connection)
            .await
            .map_err(PgError::query(format!("look up keys of {table} in live")))?;
        for number in present {
            // WITH ORDINALITY counts from 1.
            found[start + number as usize - 1] = true;
        }
    }
    Ok(found)
}
