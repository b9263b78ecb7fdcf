//! One tenant's transaction: stage, insert step by step, check, advance sequences, commit —
//! or roll back.

use std::time::Duration;

use futures_util::StreamExt;
use salvage_catalog::Catalog;
use salvage_closure::{Multiset, RestorePlan, TenantClosure};
use salvage_pg::{Error as PgError, Params, SqlState, quote_ident};
use salvage_plan::{Relation, Role, TablePlan};
use salvage_source::sql::owned_select;
use salvage_source::{RowStream, SnapshotReader, Tenants};
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
    /// For the catch-up pass: what the first pass wrote. Only tables that left rows waiting
    /// for another tenant are restored again, and only those rows can go in.
    pub catch_up: Option<&'a [TableOutcome]>,
    pub live_catalog: &'a Catalog,
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
                Err(self.diagnose(error).await)
            }
        }
    }

    async fn begin(&mut self) -> Result<(), TenantError> {
        sqlx::query("BEGIN")
            .execute(&mut *self.connection)
            .await
            .map_err(PgError::query("begin the tenant's transaction"))?;
        sqlx::query(
            "SELECT pg_catalog.set_config('lock_timeout', $1, true), pg_catalog.set_config('statement_timeout', $2, true)",
        )
        .bind(millis(self.options.lock_timeout))
        .bind(millis(self.options.statement_timeout))
        .execute(&mut *self.connection)
        .await
        .map_err(PgError::query("set the tenant's timeouts"))?;
        let deferred = &self.plan.schema.deferred;
        if !deferred.is_empty() {
            let names: Vec<String> = deferred
                .iter()
                .map(|constraint| {
                    format!(
                        "{}.{}",
                        quote_ident(&constraint.table.schema),
                        quote_ident(&constraint.name)
                    )
                })
                .collect();
            sqlx::query(&format!("SET CONSTRAINTS {} DEFERRED", names.join(", ")))
                .execute(&mut *self.connection)
                .await
                .map_err(PgError::query("defer the cycles' constraints"))?;
        }
        Ok(())
    }

    async fn body(&mut self) -> Result<Written, TenantError> {
        let plan = self.plan;
        let mut tables = vec![TableOutcome::default(); plan.schema.tables.len()];
        let mut advance = Vec::new();
        let mut maxima = Vec::new();
        for step in &plan.schema.steps {
            if let [index] = step.as_slice() {
                if self.direct(*index) {
                    let (copied, table_maxima) = self.copy_direct(*index).await?;
                    tables[*index] = TableOutcome {
                        copied,
                        inserted: copied,
                        already_present: 0,
                        waiting: 0,
                    };
                    self.check_counts(*index, &tables[*index])?;
                    maxima.extend(table_maxima);
                    continue;
                }
            }
            let mut staged = Vec::new();
            for &index in step {
                if self
                    .catch_up
                    .is_some_and(|previous| previous[index].waiting == 0)
                {
                    continue;
                }
                let started = std::time::Instant::now();
                if let Some(copied) = self.stage(index).await? {
                    tracing::debug!(table = %plan.schema.tables[index].name, copied, elapsed_us = started.elapsed().as_micros() as u64, "staged");
                    tables[index].copied = copied;
                    staged.push(index);
                }
            }
            if staged.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            let inserted: Vec<(u64, u64)> = if staged.len() == 1 {
                vec![self.insert_one(staged[0], step).await?]
            } else {
                self.insert_together(&staged, step).await?
            };
            tracing::debug!(
                tables = staged.len(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "inserted"
            );
            for (&index, (inserted, waiting)) in staged.iter().zip(inserted) {
                let table = &plan.schema.tables[index];
                let outcome = &mut tables[index];
                outcome.inserted = inserted;
                outcome.waiting = waiting;
                outcome.already_present = outcome
                    .copied
                    .checked_sub(inserted + waiting)
                    .ok_or_else(|| TenantError::LiveChanged {
                        table: table.name.clone(),
                        expected: outcome.copied,
                        inserted,
                    })?;
                self.check_counts(index, outcome)?;
                if table.role == Role::Owned && table.key.is_some() && outcome.already_present > 0 {
                    self.check_keys_are_ours(index).await?;
                }
                if inserted > 0 {
                    advance.push(index);
                }
            }
        }
        let sequences = self.advance_sequences(&advance, &maxima).await?;
        Ok(Written { tables, sequences })
    }

    /// Whether a table's rows can go straight into the live table: the plan found none of
    /// them in live, so `ON CONFLICT DO NOTHING` would have nothing to skip — staging and
    /// inserting would write every row twice for the same result. A key that appeared since
    /// the plan fails the COPY, and the tenant, as the staged path's count check would.
    fn direct(&self, index: usize) -> bool {
        let table = &self.plan.schema.tables[index];
        let counts = self.tenant.tables[index];
        table.role != Role::Shared
            && table.in_live
            && table.in_snapshot
            && table.guards.is_empty()
            && self.catch_up.is_none()
            && counts.snapshot > 0
            && counts.in_live == 0
    }

    /// COPYs a tenant's rows of a table straight into the live table (written columns only),
    /// noting the largest value of each sequence-backed column on the way. Returns the rows
    /// copied and `(sequence position, maximum)` pairs.
    async fn copy_direct(
        &mut self,
        index: usize,
    ) -> Result<(u64, Vec<(usize, usize, i64)>), TenantError> {
        let plan = self.plan;
        let tenant = self.tenant;
        let table = &plan.schema.tables[index];
        let written: Vec<usize> = (0..table.columns.len())
            .filter(|&position| table.columns[position].write)
            .collect();
        let all_written = written.len() == table.columns.len();
        let sequences: Vec<(usize, usize)> = table
            .sequences
            .iter()
            .enumerate()
            .filter(|(_, sequence)| sequence.increment > 0)
            .filter_map(|(number, sequence)| {
                table
                    .column_index(&sequence.column)
                    .map(|position| (number, position))
            })
            .collect();
        let mut maxima: Vec<Option<i64>> = vec![None; sequences.len()];
        let names: Vec<String> = written
            .iter()
            .map(|&position| quote_ident(&table.columns[position].name))
            .collect();
        let statement = format!(
            "COPY {} ({}) FROM STDIN",
            table.name.quoted(),
            names.join(", ")
        );
        let expected = tenant.tables[index].snapshot;
        let mut rows = self.reader.copy_owned(table, &tenant.id).await?;
        let mut copy = self
            .connection
            .copy_in_raw(&statement)
            .await
            .map_err(|error| insert_error(table, error))?;
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
            if all_written && sequences.is_empty() {
                buffer.extend_from_slice(&chunk);
                buffered_rows += salvage_source::row_count(&chunk);
            } else {
                let mut fields: Vec<&[u8]> = Vec::new();
                for row in salvage_source::rows_of(&chunk) {
                    fields.clear();
                    fields.extend(salvage_copy::fields(row));
                    for ((_, position), maximum) in sequences.iter().zip(maxima.iter_mut()) {
                        let value = fields
                            .get(*position)
                            .and_then(|field| std::str::from_utf8(field).ok()?.parse::<i64>().ok());
                        if let Some(value) = value {
                            *maximum = Some(maximum.map_or(value, |current| current.max(value)));
                        }
                    }
                    if all_written {
                        buffer.extend_from_slice(row);
                    } else {
                        for (number, &position) in written.iter().enumerate() {
                            if number > 0 {
                                buffer.push(b'\t');
                            }
                            buffer.extend_from_slice(
                                fields.get(position).copied().unwrap_or(salvage_copy::NULL),
                            );
                        }
                    }
                    buffer.push(b'\n');
                    buffered_rows += 1;
                }
            }
            if buffer.len() >= COPY_BATCH {
                copy.send(buffer.as_slice())
                    .await
                    .map_err(|error| insert_error(table, error))?;
                self.reporter.rows_copied(&tenant.id, buffered_rows);
                buffer.clear();
                buffered_rows = 0;
            }
        }
        if !buffer.is_empty() {
            copy.send(buffer.as_slice())
                .await
                .map_err(|error| insert_error(table, error))?;
            self.reporter.rows_copied(&tenant.id, buffered_rows);
        }
        let copied = copy
            .finish()
            .await
            .map_err(|error| insert_error(table, error))?;
        if copied != expected {
            return Err(TenantError::SnapshotChanged {
                table: table.name.clone(),
                expected,
                copied,
            });
        }
        let maxima = sequences
            .iter()
            .zip(maxima)
            .filter_map(|((number, _), maximum)| maximum.map(|maximum| (index, *number, maximum)))
            .collect();
        Ok((copied, maxima))
    }

    /// Streams the tenant's rows of a table into its staging table; `None` when the tenant
    /// has none there.
    async fn stage(&mut self, index: usize) -> Result<Option<u64>, TenantError> {
        let plan = self.plan;
        let tenant = self.tenant;
        let table = &plan.schema.tables[index];
        if !table.in_live || !table.in_snapshot {
            return Ok(None);
        }
        let (rows, expected): (RowStream<'_>, u64) = match table.role {
            Role::Shared => {
                let (Some(keys), Some(key_columns)) = (
                    tenant.shared_rows.get(&index),
                    plan.shared_key_columns.get(&index),
                ) else {
                    return Ok(None);
                };
                if keys.is_empty() {
                    return Ok(None);
                }
                (
                    self.reader.copy_by_keys(table, key_columns, keys).await?,
                    keys.len() as u64,
                )
            }
            Role::Root | Role::Owned => {
                let counts = tenant.tables[index];
                if counts.snapshot == 0 {
                    return Ok(None);
                }
                (
                    self.reader.copy_owned(table, &tenant.id).await?,
                    counts.snapshot,
                )
            }
        };
        let reporter = self.reporter;
        let copied = copy_rows(rows, self.connection, index, table, &|rows| {
            reporter.rows_copied(&tenant.id, rows);
        })
        .await?;
        if copied != expected {
            return Err(TenantError::SnapshotChanged {
                table: table.name.clone(),
                expected,
                copied,
            });
        }
        Ok(Some(copied))
    }

    /// The guards that apply to a table inserted in a step: parents inserted by the same
    /// statement are not visible to it yet, so guards on them are left to the foreign key.
    fn guards<'p>(&self, table: &'p TablePlan, step: &[usize]) -> Vec<&'p Relation> {
        let same_step: Vec<&salvage_catalog::QualifiedName> = step
            .iter()
            .map(|&index| &self.plan.schema.tables[index].name)
            .collect();
        table
            .guards
            .iter()
            .filter(|relation| !same_step.contains(&&relation.parent))
            .collect()
    }

    fn guard_sql(&self, table: &TablePlan, step: &[usize]) -> Option<String> {
        let guards = self.guards(table, step);
        sql::guards_hold(&guards, &|relation: &Relation| {
            self.live_catalog.from_item(&relation.parent)
        })
    }

    /// The INSERT for one table: ON CONFLICT on its key, or as a multiset without one.
    fn insert_statement(
        &self,
        index: usize,
        step: &[usize],
    ) -> Result<(String, Params), TenantError> {
        let table = &self.plan.schema.tables[index];
        if table.key.is_some() {
            return Ok((
                sql::insert_from_staging(index, table, self.guard_sql(table, step).as_deref()),
                Params::default(),
            ));
        }
        let multiset =
            Multiset::new(table, self.live_catalog, &self.plan.by_value).ok_or_else(|| {
                TenantError::Source(salvage_source::Error::MissingTable(table.name.clone()))
            })?;
        let mut params = Params::default();
        let live = if table.role == Role::Shared {
            self.live_catalog.from_item(&table.name)
        } else {
            let columns = multiset.column_names();
            let select = owned_select(
                self.live_catalog,
                &self.plan.schema,
                table,
                &columns,
                false,
                Tenants::One(&self.tenant.id),
                &mut params,
            )?;
            format!("({select})")
        };
        let snapshot = format!("(SELECT * FROM {})", sql::staging_name(index));
        Ok((multiset.insert(table, &snapshot, &live), params))
    }

    /// Inserts one table; returns (rows inserted, rows waiting for another tenant's rows).
    async fn insert_one(
        &mut self,
        index: usize,
        step: &[usize],
    ) -> Result<(u64, u64), TenantError> {
        let table = &self.plan.schema.tables[index];
        let (statement, params) = self.insert_statement(index, step)?;
        let guards = self.guard_sql(table, step).filter(|_| table.key.is_some());
        let Some(guards) = guards else {
            let mut query = sqlx::query(&statement);
            for value in &params.values {
                query = query.bind(value);
            }
            let inserted = query
                .execute(&mut *self.connection)
                .await
                .map_err(|error| insert_error(table, error))?
                .rows_affected();
            return Ok((inserted, 0));
        };
        // The rows inserted and the rows left waiting must come from the same snapshot, or a
        // parent another tenant commits in between would count a row as both: one statement.
        let waiting = sql::count_waiting(
            index,
            table,
            &self.live_catalog.from_item(&table.name),
            &guards,
        );
        let combined = sql::insert_counting(&statement, &waiting);
        let mut query = sqlx::query_as::<_, (i64, i64)>(&combined);
        for value in &params.values {
            query = query.bind(value);
        }
        let (inserted, waiting) = query
            .fetch_one(&mut *self.connection)
            .await
            .map_err(|error| insert_error(table, error))?;
        Ok((inserted as u64, waiting as u64))
    }

    /// Inserts the tables of a cycle in one statement.
    async fn insert_together(
        &mut self,
        staged: &[usize],
        step: &[usize],
    ) -> Result<Vec<(u64, u64)>, TenantError> {
        let mut inserts = Vec::new();
        for &index in staged {
            let (statement, params) = self.insert_statement(index, step)?;
            if !params.values.is_empty() {
                // The plan refuses cycles with keyless tables, the only inserts with parameters.
                unreachable!("cycle inserts take no parameters");
            }
            inserts.push(statement);
        }
        let first = &self.plan.schema.tables[staged[0]];
        let counts: Vec<i64> = sqlx::query_scalar(&sql::insert_together(&inserts))
            .fetch_one(&mut *self.connection)
            .await
            .map_err(|error| insert_error(first, error))?;
        Ok(counts.into_iter().map(|count| (count as u64, 0)).collect())
    }

    /// Every write is checked against the plan before commit.
    fn check_counts(&self, index: usize, outcome: &TableOutcome) -> Result<(), TenantError> {
        let table = &self.plan.schema.tables[index];
        let written = outcome.inserted + outcome.waiting;
        if let Some(previous) = self.catch_up {
            // Only rows that were waiting can go in now.
            let expected = previous[index].waiting;
            return if written <= expected {
                Ok(())
            } else {
                Err(TenantError::LiveChanged {
                    table: table.name.clone(),
                    expected,
                    inserted: outcome.inserted,
                })
            };
        }
        let expected = self.tenant.tables[index].to_add;
        let consistent = match table.role {
            // Another tenant of this run may have added a shared row first, or a row that
            // reaches both tenants (the keys found present are checked to be the tenant's).
            Role::Shared => outcome.inserted <= expected,
            Role::Owned if !table.secondary.is_empty() => written <= expected,
            Role::Root | Role::Owned => written == expected,
        };
        if consistent {
            Ok(())
        } else {
            Err(TenantError::LiveChanged {
                table: table.name.clone(),
                expected,
                inserted: outcome.inserted,
            })
        }
    }

    /// Keys live already had must be this tenant's rows, not another's (a reused ID).
    async fn check_keys_are_ours(&mut self, index: usize) -> Result<(), TenantError> {
        let table = &self.plan.schema.tables[index];
        let Some(key) = &table.key else { return Ok(()) };
        let mut params = Params::default();
        let owned = owned_select(
            self.live_catalog,
            &self.plan.schema,
            table,
            &key.columns,
            false,
            Tenants::One(&self.tenant.id),
            &mut params,
        )?;
        let statement = sql::keys_held_elsewhere(
            index,
            table,
            &self.live_catalog.from_item(&table.name),
            &owned,
        );
        let mut query = sqlx::query_scalar::<_, String>(&statement);
        for value in &params.values {
            query = query.bind(value);
        }
        let keys = query
            .fetch_all(&mut *self.connection)
            .await
            .map_err(|source| {
                statement_error(table, "check that existing keys are the tenant's", source)
            })?;
        if keys.is_empty() {
            return Ok(());
        }
        Err(TenantError::KeyHeldByAnotherTenant {
            table: table.name.clone(),
            columns: key.columns.join(", "),
            keys,
        })
    }

    /// Moves the sequences of the tables that got rows ahead of the restored values, in one
    /// statement before commit: from the staging tables of the staged tables (they still hold
    /// the tenant's rows), and from the maxima noted while the others were copied.
    async fn advance_sequences(
        &mut self,
        staged: &[usize],
        maxima: &[(usize, usize, i64)],
    ) -> Result<Vec<(String, i64)>, TenantError> {
        let tables = &self.plan.schema.tables;
        let mut items: Vec<sql::SequenceSource<'_>> = Vec::new();
        let mut names: Vec<(String, String)> = Vec::new();
        for &index in staged {
            for sequence in tables[index]
                .sequences
                .iter()
                .filter(|sequence| sequence.increment > 0)
            {
                names.push((sequence.sequence.to_string(), sequence.sequence.quoted()));
                items.push(sql::SequenceSource::Staging {
                    index,
                    column: &sequence.column,
                });
            }
        }
        for &(index, number, maximum) in maxima {
            let sequence = &tables[index].sequences[number];
            names.push((sequence.sequence.to_string(), sequence.sequence.quoted()));
            items.push(sql::SequenceSource::Value(maximum));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let statement = sql::advance_sequences(
            &items,
            &names
                .iter()
                .map(|(_, quoted)| quoted.as_str())
                .collect::<Vec<_>>(),
        );
        let mut query = sqlx::query_scalar::<_, Vec<Option<i64>>>(&statement);
        for (_, quoted) in &names {
            query = query.bind(quoted);
        }
        for item in &items {
            if let sql::SequenceSource::Value(maximum) = item {
                query = query.bind(*maximum);
            }
        }
        let values = query
            .fetch_one(&mut *self.connection)
            .await
            .map_err(|source| {
                TenantError::Database(PgError::query("advance the sequences")(source))
            })?;
        Ok(names
            .into_iter()
            .zip(values)
            .filter_map(|((name, _), value)| value.map(|value| (name, value)))
            .collect())
    }

    /// For a unique conflict, finds the live row that holds the key: the rolled-back
    /// transaction's staging is gone, so the table's rows are staged again in a throwaway
    /// transaction. Best effort: the original error stands if this fails.
    async fn diagnose(&mut self, error: TenantError) -> TenantError {
        let TenantError::UniqueConflict {
            table,
            constraint,
            detail,
            holder: None,
        } = error
        else {
            return error;
        };
        let found = self.find_holder(&table, &constraint).await.ok().flatten();
        let _ = sqlx::query("ROLLBACK").execute(&mut *self.connection).await;
        TenantError::UniqueConflict {
            table,
            constraint,
            detail,
            holder: found,
        }
    }

    async fn find_holder(
        &mut self,
        name: &salvage_catalog::QualifiedName,
        constraint: &str,
    ) -> Result<Option<String>, TenantError> {
        let Some(index) = self.plan.schema.table_index(name) else {
            return Ok(None);
        };
        let Some(live) = self.live_catalog.table(name) else {
            return Ok(None);
        };
        let Some(unique) = live
            .unique_keys
            .iter()
            .chain(&live.primary_key)
            .find(|key| key.name == constraint)
        else {
            return Ok(None);
        };
        let live_key: Vec<String> = live
            .identity_key()
            .map(|key| key.columns.clone())
            .unwrap_or_default();
        sqlx::query("BEGIN")
            .execute(&mut *self.connection)
            .await
            .map_err(PgError::query("begin"))?;
        if self.stage(index).await?.is_none() {
            return Ok(None);
        }
        let table = &self.plan.schema.tables[index];
        let statement = sql::unique_holder(
            index,
            table,
            &self.live_catalog.from_item(name),
            &unique.columns,
            &live_key,
        );
        let row: Option<(String, String)> = sqlx::query_as(&statement)
            .fetch_optional(&mut *self.connection)
            .await
            .map_err(|source| {
                statement_error(table, "find the live row holding the key", source)
            })?;
        Ok(row.map(|(values, holder)| {
            let key_names = if live_key.is_empty() {
                "ctid".to_owned()
            } else {
                live_key.join(", ")
            };
            format!(
                "({})=({values}) is held in live by the {name} row ({key_names})=({holder})",
                unique.columns.join(", ")
            )
        }))
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
    let mut copy = connection
        .copy_in_raw(&sql::copy_into_staging(index))
        .await
        .map_err(|source| statement_error(table, "copy rows into staging", source))?;
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
        buffered_rows += salvage_source::row_count(&chunk);
        if buffer.len() >= COPY_BATCH {
            copy.send(buffer.as_slice())
                .await
                .map_err(|source| statement_error(table, "copy rows into staging", source))?;
            on_rows(buffered_rows);
            buffer.clear();
            buffered_rows = 0;
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.as_slice())
            .await
            .map_err(|source| statement_error(table, "copy rows into staging", source))?;
        on_rows(buffered_rows);
    }
    copy.finish()
        .await
        .map_err(|source| statement_error(table, "copy rows into staging", source))
}

fn statement_error(table: &TablePlan, context: &str, source: sqlx::Error) -> TenantError {
    TenantError::Statement {
        table: table.name.clone(),
        source: PgError::query(context.to_owned())(source),
    }
}

/// A unique violation on another key than the conflict target is a cross-tenant conflict.
fn insert_error(table: &TablePlan, error: sqlx::Error) -> TenantError {
    if salvage_pg::sqlstate(&error) == Some(SqlState::UniqueViolation) {
        if let sqlx::Error::Database(db) = &error {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                let table_name = pg
                    .table()
                    .and_then(|name| {
                        pg.schema()
                            .map(|schema| salvage_catalog::QualifiedName::new(schema, name))
                    })
                    .unwrap_or_else(|| table.name.clone());
                return TenantError::UniqueConflict {
                    table: table_name,
                    constraint: pg.constraint().unwrap_or("?").to_owned(),
                    detail: pg.detail().unwrap_or(pg.message()).to_owned(),
                    holder: None,
                };
            }
        }
    }
    statement_error(table, "insert rows", error)
}

fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}
