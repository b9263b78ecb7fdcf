//! What a tenant's transaction keeps in the journal's `row_images` so `salvage undo` can put
//! it back, and the changes of modes overwrite and exact: the rows it inserted (key and the
//! md5 of the row as written), the rows it updated (their version before, the md5 after, the
//! columns that changed), the rows it deleted (their version before) — each written by the
//! same statement as the change, in the tenant's transaction (its savepoint in a group), so
//! a tenant that rolls back leaves none.

use salvage_catalog::{Catalog, QualifiedName};
use salvage_closure::RestorePlan;
use salvage_pg::Error as PgError;
use salvage_plan::TablePlan;
use salvage_source::TextRow;
use salvage_sql::from_item;
use salvage_sql::images::{
    ImageTable, Inserted, Typed, delete_keeping_images, record_inserts, update_keeping_images,
};
use serde::Serialize;
use sqlx::postgres::PgConnection;

use crate::TenantError;
use crate::rows::{Row, Shape};

/// Where a tenant's images go: the run, its position in the run, the journal's table.
#[derive(Debug, Clone)]
pub struct ImageTarget {
    pub run_id: String,
    pub position: i32,
    pub table: ImageTable,
}

/// The last step of images the tenant's earlier transactions of the run wrote (0: none).
pub async fn last_step(
    connection: &mut PgConnection,
    target: &ImageTarget,
) -> Result<i32, TenantError> {
    sqlx::query_scalar::<_, i32>(&format!(
        "SELECT coalesce(max(step), 0) FROM {} WHERE run_id = $1 AND position = $2",
        target.table.quoted
    ))
    .bind(&target.run_id)
    .bind(target.position)
    .fetch_one(connection)
    .await
    .map_err(|error| {
        TenantError::Database(PgError::query("read the tenant's last step of images")(
            error,
        ))
    })
}

/// Rows bound per statement.
const ROWS_PER_STATEMENT: usize = 10_000;

/// A row the restore updated: its key and the columns whose values changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdatedRow {
    pub key: Vec<String>,
    pub columns: Vec<String>,
}

/// The rows of one table a tenant's restore changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedTable {
    pub table: QualifiedName,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub updated: Vec<UpdatedRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<Vec<String>>,
}

/// One statement's fixed parameters: run, position, step, table, key columns.
struct Fixed<'a> {
    target: &'a ImageTarget,
    step: i32,
    table: &'a QualifiedName,
    key_columns: Vec<String>,
}

fn bind_fixed_as<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    fixed: &Fixed<'_>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(fixed.target.run_id.clone())
        .bind(fixed.target.position)
        .bind(fixed.step)
        .bind(fixed.table.schema.clone())
        .bind(fixed.table.name.clone())
        .bind(fixed.key_columns.clone())
}

/// The live types of `columns` of `table`.
pub(crate) fn typed(
    live: &Catalog,
    table: &QualifiedName,
    columns: &[String],
) -> Result<Vec<Typed>, TenantError> {
    let definition = live
        .table(table)
        .ok_or_else(|| TenantError::Inconsistent(format!("live has no table {table}")))?;
    columns
        .iter()
        .map(|name| {
            definition
                .column(name)
                .map(|column| Typed {
                    name: name.clone(),
                    live_type: column.type_name.clone(),
                    by_value: true,
                })
                .ok_or_else(|| {
                    TenantError::Inconsistent(format!("live's {table} has no column {name}"))
                })
        })
        .collect()
}

/// The written columns at `places` (per `shape`) of `rows`, one text array per column, for
/// binding.
fn arrays_at(shape: &Shape, rows: &[Row], places: &[usize]) -> Vec<Vec<Option<String>>> {
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(rows.len()); places.len()];
    for row in rows {
        let values = shape.decode(&row.row);
        for (column, &place) in columns.iter_mut().zip(places) {
            column.push(values.get(place).cloned().flatten());
        }
    }
    columns
}

/// The rows a statement changed are the rows it was given, or live changed since the plan.
fn expect_rows(
    table: &QualifiedName,
    what: &'static str,
    expected: u64,
    changed: u64,
) -> Result<(), TenantError> {
    if changed == expected {
        return Ok(());
    }
    Err(TenantError::LiveChanged {
        table: table.clone(),
        what,
        expected,
        changed,
    })
}

fn statement_error(table: &QualifiedName, what: &str, error: sqlx::Error) -> TenantError {
    TenantError::Statement {
        table: table.clone(),
        source: PgError::query(what.to_owned())(error),
    }
}

/// The rows a tenant inserted, table by table, recorded in one statement before its
/// transaction ends (a statement per insert step cost a round trip per table and tenant).
#[derive(Debug, Default)]
pub struct InsertRecords {
    tables: Vec<RecordedTable>,
}

#[derive(Debug)]
struct RecordedTable {
    step: i32,
    table: QualifiedName,
    key_columns: Vec<String>,
    inserted: Inserted,
    /// One array per key column.
    keys: Vec<Vec<Option<String>>>,
    rows: u64,
}

impl InsertRecords {
    /// Whether no rows wait to be recorded.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Notes `rows` (written columns per `shape`, just inserted or found there) as inserted
    /// by the tenant at `step`. Tables without a key are not recorded: their rows cannot be
    /// found again.
    pub fn add(
        &mut self,
        live: &Catalog,
        step: i32,
        table: &TablePlan,
        shape: &Shape,
        rows: &[Row],
    ) -> Result<(), TenantError> {
        let Some(key) = &table.key else {
            return Ok(());
        };
        if rows.is_empty() {
            return Ok(());
        }
        let places: Vec<usize> = key
            .columns
            .iter()
            .map(|column| {
                shape
                    .written_names
                    .iter()
                    .position(|name| name == column)
                    .ok_or_else(|| {
                        TenantError::Inconsistent(format!(
                            "{}: the key column {column} is not written",
                            table.name
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        let keys = arrays_at(shape, rows, &places);
        self.tables.push(RecordedTable {
            step,
            table: table.name.clone(),
            key_columns: key.columns.clone(),
            inserted: Inserted {
                from: from_item(live, &table.name),
                key: typed(live, &table.name, &key.columns)?,
            },
            keys,
            rows: rows.len() as u64,
        });
        Ok(())
    }

    /// Writes the records noted so far into the journal, checking that every row was found.
    pub async fn flush(
        &mut self,
        connection: &mut PgConnection,
        target: &ImageTarget,
    ) -> Result<(), TenantError> {
        let tables = std::mem::take(&mut self.tables);
        if tables.is_empty() {
            return Ok(());
        }
        let inserted: Vec<Inserted> = tables.iter().map(|table| table.inserted.clone()).collect();
        let sql = record_inserts(&inserted, &target.table);
        let mut query = sqlx::query_scalar::<_, i64>(&sql)
            .bind(target.run_id.clone())
            .bind(target.position);
        let expected: u64 = tables.iter().map(|table| table.rows).sum();
        let first = tables[0].table.clone();
        for table in tables {
            query = query
                .bind(table.step)
                .bind(table.table.schema.clone())
                .bind(table.table.name.clone())
                .bind(table.key_columns);
            for column in table.keys {
                query = query.bind(column);
            }
        }
        let recorded = query
            .fetch_one(&mut *connection)
            .await
            .map_err(|error| statement_error(&first, "record the rows inserted", error))?;
        expect_rows(&first, "found to record", expected, recorded as u64)
    }
}

/// Sets the tenant's `rows` (kept rows whose live version differs) to the snapshot's
/// values, keeping each live version; returns the rows updated.
pub async fn update_rows(
    connection: &mut PgConnection,
    live: &Catalog,
    target: &ImageTarget,
    step: i32,
    table: &TablePlan,
    shape: &Shape,
    rows: &[Row],
) -> Result<Vec<UpdatedRow>, TenantError> {
    let key = table.key.as_ref().ok_or_else(|| {
        TenantError::Inconsistent(format!("{} has no key to update by", table.name))
    })?;
    let live_table = live
        .table(&table.name)
        .ok_or_else(|| TenantError::Inconsistent(format!("live has no table {}", table.name)))?;
    let key_places: Vec<usize> = key
        .columns
        .iter()
        .filter_map(|column| shape.written_names.iter().position(|name| name == column))
        .collect();
    if key_places.len() != key.columns.len() {
        return Err(TenantError::Inconsistent(format!(
            "{}: a key column is not written",
            table.name
        )));
    }
    // Identity ALWAYS columns take no value in an UPDATE; they are keys in practice.
    let set_places: Vec<usize> = (0..shape.written_names.len())
        .filter(|place| !key_places.contains(place))
        .filter(|&place| {
            live_table
                .column(&shape.written_names[place])
                .is_some_and(|column| {
                    !matches!(column.identity, Some(salvage_catalog::Identity::Always))
                })
        })
        .collect();
    let set_names: Vec<String> = set_places
        .iter()
        .map(|&place| shape.written_names[place].clone())
        .collect();
    if set_names.is_empty() {
        return Ok(Vec::new());
    }
    let sql = update_keeping_images(
        &table.name,
        &typed(live, &table.name, &key.columns)?,
        &typed(live, &table.name, &set_names)?,
        &target.table,
    );
    let fixed = Fixed {
        target,
        step,
        table: &table.name,
        key_columns: key.columns.clone(),
    };
    let bound: Vec<usize> = key_places.iter().chain(&set_places).copied().collect();
    let mut updated = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let columns = arrays_at(shape, chunk, &bound);
        let mut query = bind_fixed_as(
            sqlx::query_as::<_, (Vec<String>, Vec<String>)>(&sql),
            &fixed,
        );
        for column in columns {
            query = query.bind(column);
        }
        let answers = query
            .fetch_all(&mut *connection)
            .await
            .map_err(|error| statement_error(&table.name, "update rows", error))?;
        expect_rows(
            &table.name,
            "updated",
            chunk.len() as u64,
            answers.len() as u64,
        )?;
        updated.extend(
            answers
                .into_iter()
                .map(|(key, columns)| UpdatedRow { key, columns }),
        );
    }
    Ok(updated)
}

/// Deletes the tenant's live rows with `keys` (text, the key's columns), keeping each
/// version; returns the keys deleted.
pub async fn delete_rows(
    connection: &mut PgConnection,
    live: &Catalog,
    target: &ImageTarget,
    step: i32,
    table: &TablePlan,
    keys: &[TextRow],
) -> Result<Vec<Vec<String>>, TenantError> {
    let key = table.key.as_ref().ok_or_else(|| {
        TenantError::Inconsistent(format!("{} has no key to delete by", table.name))
    })?;
    let sql = delete_keeping_images(
        &table.name,
        &typed(live, &table.name, &key.columns)?,
        &target.table,
    );
    let fixed = Fixed {
        target,
        step,
        table: &table.name,
        key_columns: key.columns.clone(),
    };
    let mut deleted = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let mut query = bind_fixed_as(sqlx::query_as::<_, (Vec<String>,)>(&sql), &fixed);
        for position in 0..key.columns.len() {
            let column: Vec<Option<String>> = chunk
                .iter()
                .map(|key| key.get(position).cloned().flatten())
                .collect();
            query = query.bind(column);
        }
        let answers = query
            .fetch_all(&mut *connection)
            .await
            .map_err(|error| statement_error(&table.name, "delete rows", error))?;
        expect_rows(
            &table.name,
            "deleted",
            chunk.len() as u64,
            answers.len() as u64,
        )?;
        deleted.extend(answers.into_iter().map(|(key,)| key));
    }
    Ok(deleted)
}

/// The tenant's kept rows of table `index` that the plan updates.
pub fn rows_to_update(
    plan: &RestorePlan,
    number: usize,
    index: usize,
    shape: &Shape,
) -> Result<Vec<Row>, TenantError> {
    let tenant = &plan.tenants[number];
    let Some(changes) = tenant.changes.get(index) else {
        return Ok(Vec::new());
    };
    if changes.updates.is_empty() {
        return Ok(Vec::new());
    }
    let table = &plan.schema.tables[index];
    let kept = plan.selected.table(&table.name).ok_or_else(|| {
        TenantError::Inconsistent(format!(
            "the snapshot's rows of {} were not read",
            table.name
        ))
    })?;
    let Some(places) = &shape.key else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::with_capacity(changes.updates.len());
    for chunk in kept.all_rows(number)? {
        for row in salvage_source::rows_of(&chunk) {
            let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
            if salvage_closure::raw_key(&fields, places)
                .is_some_and(|key| changes.updates.contains_key(&key))
            {
                rows.push(Row {
                    row: row.to_vec(),
                    joint: false,
                });
            }
        }
    }
    if rows.len() != changes.updates.len() {
        return Err(TenantError::Inconsistent(format!(
            "{}: {} rows to update planned, {} found among the tenant's snapshot rows",
            table.name,
            changes.updates.len(),
            rows.len()
        )));
    }
    Ok(rows)
}
