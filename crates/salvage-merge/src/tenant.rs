//! One tenant's transaction: stage, insert, check, advance sequences, commit — or roll back.

use std::time::Duration;

use futures_util::StreamExt;
use salvage_closure::{RestorePlan, TenantClosure};
use salvage_pg::{Error as PgError, SqlState};
use salvage_plan::{Role, TablePlan};
use salvage_source::{RowStream, SnapshotReader};
use sqlx::postgres::{PgConnection, PgDatabaseError};

use crate::outcome::TableOutcome;
use crate::{MergeOptions, RestoreReporter, TenantError, sql};

/// Bytes of COPY data sent per message.
const COPY_BATCH: usize = 256 * 1024;

/// What a committed tenant wrote.
pub struct Written {
    pub tables: Vec<TableOutcome>,
    pub sequences: Vec<(String, i64)>,
}

pub struct TenantRun<'a> {
    pub plan: &'a RestorePlan,
    pub tenant: &'a TenantClosure,
    pub connection: &'a mut PgConnection,
    pub reader: &'a mut SnapshotReader,
    pub options: &'a MergeOptions,
    pub reporter: &'a dyn RestoreReporter,
}

impl TenantRun<'_> {
    /// Runs the tenant in one transaction; on any error the transaction is rolled back.
    pub async fn run(mut self) -> Result<Written, TenantError> {
        self.begin().await?;
        match self.body().await {
            Ok(written) => {
                sqlx::query("COMMIT")
                    .execute(&mut *self.connection)
                    .await
                    .map_err(PgError::query("commit the tenant"))?;
                Ok(written)
            }
            Err(error) => {
                // A broken connection fails here too; the worker reconnects.
                let _ = sqlx::query("ROLLBACK").execute(&mut *self.connection).await;
                Err(error)
            }
        }
    }

    async fn begin(&mut self) -> Result<(), TenantError> {
        sqlx::query("BEGIN")
            .execute(&mut *self.connection)
            .await
            .map_err(PgError::query("begin the tenant's transaction"))?;
        sqlx::query("SELECT pg_catalog.set_config('lock_timeout', $1, true), pg_catalog.set_config('statement_timeout', $2, true)")
            .bind(millis(self.options.lock_timeout))
            .bind(millis(self.options.statement_timeout))
            .execute(&mut *self.connection)
            .await
            .map_err(PgError::query("set the tenant's timeouts"))?;
        Ok(())
    }

    async fn body(&mut self) -> Result<Written, TenantError> {
        let plan = self.plan;
        let tenant = self.tenant;
        let mut tables = vec![TableOutcome::default(); plan.schema.tables.len()];
        let mut sequences = Vec::new();
        for (index, table) in plan.schema.tables.iter().enumerate() {
            if !table.in_live || !table.in_snapshot {
                continue;
            }
            let counts = tenant.tables[index];
            let (rows, expected_copied): (RowStream<'_>, u64) = match table.role {
                Role::Shared => {
                    let (Some(keys), Some(key_columns)) = (
                        tenant.shared_rows.get(&index),
                        plan.shared_key_columns.get(&index),
                    ) else {
                        continue;
                    };
                    if keys.is_empty() {
                        continue;
                    }
                    (
                        self.reader.copy_by_keys(table, key_columns, keys).await?,
                        keys.len() as u64,
                    )
                }
                Role::Root | Role::Owned => {
                    if counts.snapshot == 0 {
                        continue;
                    }
                    (
                        self.reader
                            .copy_owned(&plan.schema, table, &tenant.id)
                            .await?,
                        counts.snapshot,
                    )
                }
            };
            let copied = copy_rows(rows, self.connection, index, table, &|rows| {
                self.reporter.rows_copied(&tenant.id, rows);
            })
            .await?;
            if copied != expected_copied {
                return Err(TenantError::SnapshotChanged {
                    table: table.name.clone(),
                    expected: expected_copied,
                    copied,
                });
            }
            let inserted = sqlx::query(&sql::insert_from_staging(index, table))
                .execute(&mut *self.connection)
                .await
                .map_err(|error| insert_error(table, error))?
                .rows_affected();
            if table.role != Role::Shared && table.key.is_some() && inserted != counts.to_add {
                return Err(TenantError::LiveChanged {
                    table: table.name.clone(),
                    expected: counts.to_add,
                    inserted,
                });
            }
            tables[index] = TableOutcome {
                copied,
                inserted,
                already_present: copied - inserted,
            };
            if inserted > 0 {
                self.advance_sequences(index, table, &mut sequences).await?;
            }
        }
        Ok(Written { tables, sequences })
    }

    async fn advance_sequences(
        &mut self,
        index: usize,
        table: &TablePlan,
        advanced: &mut Vec<(String, i64)>,
    ) -> Result<(), TenantError> {
        for sequence in table
            .sequences
            .iter()
            .filter(|sequence| sequence.increment > 0)
        {
            let quoted = sequence.sequence.quoted();
            let value: Option<i64> =
                sqlx::query_scalar(&sql::advance_sequence(index, &sequence.column, &quoted))
                    .bind(&quoted)
                    .fetch_one(&mut *self.connection)
                    .await
                    .map_err(|source| TenantError::Statement {
                        table: table.name.clone(),
                        source: PgError::query(format!("advance sequence {}", sequence.sequence))(
                            source,
                        ),
                    })?;
            if let Some(value) = value {
                advanced.push((sequence.sequence.to_string(), value));
            }
        }
        Ok(())
    }
}

/// Streams snapshot rows into the table's staging table; returns the rows COPY took.
async fn copy_rows(
    mut rows: RowStream<'_>,
    connection: &mut PgConnection,
    index: usize,
    table: &TablePlan,
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<u64, TenantError> {
    let statement_error = |source: sqlx::Error| TenantError::Statement {
        table: table.name.clone(),
        source: PgError::query("copy rows into staging")(source),
    };
    let mut copy = connection
        .copy_in_raw(&sql::copy_into_staging(index))
        .await
        .map_err(statement_error)?;
    let mut buffer: Vec<u8> = Vec::with_capacity(COPY_BATCH + 4096);
    let mut buffered_rows = 0u64;
    while let Some(chunk) = rows.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                let _ = copy.abort("salvage: reading the snapshot failed").await;
                return Err(error.into());
            }
        };
        buffer.extend_from_slice(&chunk);
        buffered_rows += 1;
        if buffer.len() >= COPY_BATCH {
            copy.send(buffer.as_slice())
                .await
                .map_err(statement_error)?;
            on_rows(buffered_rows);
            buffer.clear();
            buffered_rows = 0;
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.as_slice())
            .await
            .map_err(statement_error)?;
        on_rows(buffered_rows);
    }
    copy.finish().await.map_err(statement_error)
}

/// A unique violation on another key than the conflict target is a cross-tenant conflict.
fn insert_error(table: &TablePlan, error: sqlx::Error) -> TenantError {
    if salvage_pg::sqlstate(&error) == Some(SqlState::UniqueViolation) {
        if let sqlx::Error::Database(db) = &error {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                return TenantError::UniqueConflict {
                    table: table.name.clone(),
                    constraint: pg.constraint().unwrap_or("?").to_owned(),
                    detail: pg.detail().unwrap_or(pg.message()).to_owned(),
                };
            }
        }
    }
    TenantError::Statement {
        table: table.name.clone(),
        source: PgError::query("insert rows")(error),
    }
}

fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}
