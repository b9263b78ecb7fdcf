//! Which keys the live database already has: one statement per table and key set, each key
//! probed on the table's index.

use salvage_catalog::{Catalog, QualifiedName};
use salvage_pg::{Error as PgError, OnFirstUse};
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
    let probe = Probe::new(catalog, table, columns, values)?;
    let mut found = vec![false; probe.count];
    probe.run(connection, 0..probe.count, &mut found).await?;
    Ok(found)
}

/// [`existing_keys_by_column`] with a second connection to live (opened on first use) for a
/// large key set: the keys' second half is probed there, at the same time as the first half
/// on `connection` — the server's work on two cores while the client waits for both. When the
/// second cannot be opened, every key is probed on `connection`.
pub async fn existing_keys_by_column_on_two(
    connection: &mut PgConnection,
    second: &mut OnFirstUse,
    catalog: &Catalog,
    table: &QualifiedName,
    columns: &[String],
    values: &[Vec<Option<String>>],
) -> Result<Vec<bool>> {
    let probe = Probe::new(catalog, table, columns, values)?;
    let mut found = vec![false; probe.count];
    let other = match probe.count {
        count if count < SPLIT_KEYS => None,
        _ => second.try_get().await,
    };
    let Some(other) = other else {
        probe.run(connection, 0..probe.count, &mut found).await?;
        return Ok(found);
    };
    let middle = probe.count / 2;
    let (first, rest) = found.split_at_mut(middle);
    futures_util::future::try_join(
        probe.run(connection, 0..middle, first),
        probe.run(other, middle..probe.count, rest),
    )
    .await?;
    Ok(found)
}

/// Keys from this many on are probed on two connections at once.
const SPLIT_KEYS: usize = 10_000;

/// One key set's existence probe: its statement and bound columns.
struct Probe<'a> {
    table: &'a QualifiedName,
    sql: String,
    values: &'a [Vec<Option<String>>],
    count: usize,
}

impl<'a> Probe<'a> {
    fn new(
        catalog: &Catalog,
        table: &'a QualifiedName,
        columns: &[String],
        values: &'a [Vec<Option<String>>],
    ) -> Result<Self> {
        let count = values.first().map_or(0, Vec::len);
        if count == 0 {
            return Ok(Self {
                table,
                sql: String::new(),
                values,
                count,
            });
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
        Ok(Self {
            table,
            sql,
            values,
            count,
        })
    }

    /// Probes the keys `range` on `connection`, marking in `found` (indexed from the range's
    /// start) those live has.
    async fn run(
        &self,
        connection: &mut PgConnection,
        range: std::ops::Range<usize>,
        found: &mut [bool],
    ) -> Result<()> {
        for start in range.clone().step_by(KEYS_PER_QUERY) {
            let end = (start + KEYS_PER_QUERY).min(range.end);
            let mut query = sqlx::query_scalar::<_, i32>(&self.sql);
            for column in self.values {
                query = query.bind(&column[start..end]);
            }
            let present = query
                .fetch_all(&mut *connection)
                .await
                .map_err(PgError::query(format!(
                    "look up keys of {} in live",
                    self.table
                )))?;
            for number in present {
                // WITH ORDINALITY counts from 1.
                found[start - range.start + number as usize - 1] = true;
            }
        }
        Ok(())
    }
}
