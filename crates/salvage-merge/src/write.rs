//! The two ways rows go into a live table: `COPY` straight into it (rows live does not have,
//! that no other transaction of the run writes), and an `INSERT` from bound arrays with
//! `ON CONFLICT DO NOTHING` (rows another tenant's transaction may write first, and the
//! tables of a cycle, inserted together in one statement). Each returns the rows the server
//! says it wrote.

use salvage_catalog::Catalog;
use salvage_plan::TablePlan;
use salvage_sql::images::{BatchTable, Tenants, Typed, insert_batch};
use salvage_sql::insert::{Written, copy_in, insert_from_arrays, insert_together};
use sqlx::postgres::PgConnection;

use crate::TenantError;
use crate::change::ImageTarget;
use crate::rows::{Row, Shape};
use crate::tenant::{error_table, insert_error};

/// Bytes of COPY data sent per message.
const COPY_BATCH: usize = 256 * 1024;

/// COPYs `rows` (kept rows) into the live table, written columns only; returns the rows
/// the server took.
pub async fn copy_rows(
    connection: &mut PgConnection,
    table: &TablePlan,
    shape: &Shape,
    rows: &[Row],
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<u64, TenantError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut copy = connection
        .copy_in_raw(&copy_in(&table.name, &shape.written_names))
        .await
        .map_err(|error| insert_error(table, error))?;
    let mut buffer: Vec<u8> = Vec::with_capacity(COPY_BATCH + 4096);
    let mut buffered = 0u64;
    for row in rows {
        shape.write_into(&row.row, &mut buffer);
        buffered += 1;
        if buffer.len() >= COPY_BATCH {
            if let Err(error) = copy.send(buffer.as_slice()).await {
                return Err(insert_error(table, error));
            }
            on_rows(buffered);
            buffer.clear();
            buffered = 0;
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.as_slice())
            .await
            .map_err(|error| insert_error(table, error))?;
        on_rows(buffered);
    }
    copy.finish()
        .await
        .map_err(|error| insert_error(table, error))
}

/// The live types of a table's written columns.
pub fn written_columns(
    table: &TablePlan,
    shape: &Shape,
    live: &Catalog,
) -> Result<Vec<Written>, TenantError> {
    let live_table = live
        .table(&table.name)
        .ok_or_else(|| TenantError::Inconsistent(format!("live has no table {}", table.name)))?;
    shape
        .written_names
        .iter()
        .map(|name| {
            let column = live_table.column(name).ok_or_else(|| {
                TenantError::Inconsistent(format!("live's {} has no column {name}", table.name))
            })?;
            Ok(Written {
                name: name.clone(),
                live_type: column.type_name.clone(),
            })
        })
        .collect()
}

/// `INSERT … FROM unnest(arrays) ON CONFLICT (key) DO NOTHING` of `rows`; returns the rows
/// inserted (the others were there already).
pub async fn insert_rows(
    connection: &mut PgConnection,
    table: &TablePlan,
    shape: &Shape,
    live: &Catalog,
    rows: &[Row],
) -> Result<u64, TenantError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let columns = written_columns(table, shape, live)?;
    let key = table.key.as_ref().map(|key| key.columns.as_slice());
    let statement = insert_from_arrays(&table.name, &columns, 1, key, table.identity_always);
    let mut query = sqlx::query(&statement);
    for column in arrays(shape, rows) {
        query = query.bind(column);
    }
    Ok(query
        .execute(&mut *connection)
        .await
        .map_err(|error| insert_error(table, error))?
        .rows_affected())
}

/// The tables of a cycle inserted in one statement; returns the rows inserted per table.
pub async fn insert_cycle(
    connection: &mut PgConnection,
    tables: &[(&TablePlan, &Shape, &[Row])],
    live: &Catalog,
) -> Result<Vec<u64>, TenantError> {
    let mut inserts = Vec::new();
    let mut parameters: Vec<Vec<Option<String>>> = Vec::new();
    for (table, shape, rows) in tables {
        let columns = written_columns(table, shape, live)?;
        let key = table.key.as_ref().map(|key| key.columns.as_slice());
        inserts.push(insert_from_arrays(
            &table.name,
            &columns,
            parameters.len() + 1,
            key,
            table.identity_always,
        ));
        parameters.extend(arrays(shape, rows));
    }
    let statement = insert_together(&inserts);
    let mut query = sqlx::query_scalar::<_, Vec<i64>>(&statement);
    for column in parameters {
        query = query.bind(column);
    }
    let counts = query
        .fetch_one(&mut *connection)
        .await
        .map_err(|error| insert_error(tables[0].0, error))?;
    Ok(counts.into_iter().map(|count| count as u64).collect())
}

/// One table's rows in [`insert_small`], and how they are recorded for undo.
pub struct Small<'r> {
    pub table: &'r TablePlan,
    pub shape: &'r Shape,
    pub rows: &'r [Row],
    pub record: Record<'r>,
}

/// Whether and how a table's rows in [`insert_small`] are recorded for undo.
#[derive(Clone, Copy)]
pub enum Record<'r> {
    /// Not recorded (no journal, or the table has no key).
    No,
    /// One tenant's rows, recorded at that step.
    Step(i32),
    /// Several tenants' rows: per row, its tenant's position in the run and its step.
    Rows {
        positions: &'r [i32],
        steps: &'r [i32],
    },
}

impl Record<'_> {
    fn is_recorded(self) -> bool {
        !matches!(self, Self::No)
    }
}

/// What [`insert_small`] wrote: rows inserted per table, rows recorded, the new value of
/// each sequence moved (`None`: it was ahead already).
pub struct SmallWritten {
    pub inserted: Vec<u64>,
    pub recorded: u64,
    pub sequences: Vec<Option<i64>>,
}

/// Several tables' rows, none that live may have already (what `COPY` would take), of one
/// tenant or of several (as `tables`' records say), inserted in one statement, each recorded
/// for undo from what it inserted, and `sequences` (quoted name, restored maximum) moved
/// ahead by the same statement.
pub async fn insert_small(
    connection: &mut PgConnection,
    tables: &[Small<'_>],
    live: &Catalog,
    images: Option<&ImageTarget>,
    sequences: &[(String, i64)],
) -> Result<SmallWritten, TenantError> {
    let several = tables
        .iter()
        .any(|small| matches!(small.record, Record::Rows { .. }));
    let mut columns = Vec::with_capacity(tables.len());
    let mut keys: Vec<Option<Vec<Typed>>> = Vec::with_capacity(tables.len());
    for small in tables {
        columns.push(written_columns(small.table, small.shape, live)?);
        keys.push(match (&small.table.key, small.record.is_recorded()) {
            (Some(key), true) => Some(crate::change::typed(live, &small.table.name, &key.columns)?),
            _ => None,
        });
    }
    let batch: Vec<BatchTable<'_>> = tables
        .iter()
        .zip(&columns)
        .zip(&keys)
        .map(|((small, columns), key)| BatchTable {
            table: &small.table.name,
            columns,
            overriding: small.table.identity_always,
            recorded: key.as_deref(),
        })
        .collect();
    let tenants = if several {
        Tenants::Several
    } else {
        Tenants::One
    };
    let quoted: Vec<String> = sequences.iter().map(|(quoted, _)| quoted.clone()).collect();
    let statement = insert_batch(&batch, images.map(|images| &images.table), tenants, &quoted);
    let mut query = sqlx::query_as::<_, (Vec<i64>, i64, Vec<Option<i64>>)>(&statement);
    if let Some(images) = images {
        query = query.bind(images.run_id.clone());
        if !several {
            query = query.bind(images.position);
        }
    }
    for (small, key) in tables.iter().zip(&keys) {
        match (small.record, images, &small.table.key) {
            (Record::Step(step), Some(_), Some(key)) => {
                query = query
                    .bind(step)
                    .bind(small.table.name.schema.clone())
                    .bind(small.table.name.name.clone())
                    .bind(key.columns.clone());
            }
            (Record::Rows { positions, steps }, Some(_), Some(key)) => {
                query = query
                    .bind(small.table.name.schema.clone())
                    .bind(small.table.name.name.clone())
                    .bind(key.columns.clone())
                    .bind(positions.to_vec())
                    .bind(steps.to_vec());
            }
            _ => debug_assert!(key.is_none()),
        }
        for column in arrays(small.shape, small.rows) {
            query = query.bind(column);
        }
    }
    for quoted in &quoted {
        query = query.bind(quoted.clone());
    }
    for (_, maximum) in sequences {
        query = query.bind(*maximum);
    }
    let (inserted, recorded, moved) = query.fetch_one(&mut *connection).await.map_err(|error| {
        // The table the server names (the row's own for a unique key, the referencing one
        // for a foreign key), else the first.
        let named = error_table(&error);
        let table = tables
            .iter()
            .find(|small| named.as_ref() == Some(&small.table.name))
            .map_or(tables[0].table, |small| small.table);
        insert_error(table, error)
    })?;
    Ok(SmallWritten {
        inserted: inserted.into_iter().map(|count| count as u64).collect(),
        recorded: recorded as u64,
        sequences: moved,
    })
}

/// The rows' written columns, one text array per column.
fn arrays(shape: &Shape, rows: &[Row]) -> Vec<Vec<Option<String>>> {
    let mut columns: Vec<Vec<Option<String>>> =
        vec![Vec::with_capacity(rows.len()); shape.written_names.len()];
    for row in rows {
        for (column, value) in columns.iter_mut().zip(shape.decode(&row.row)) {
            column.push(value);
        }
    }
    columns
}
