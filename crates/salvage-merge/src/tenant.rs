//! One tenant's transaction: its rows go in step by step, parents first — COPY straight into
//! the table for the rows only it reaches, an insert that skips rows already there for those
//! reaching other tenants too and for shared rows, one statement for the tables of a cycle —
//! each row only once every parent it references is present; then sequences, then commit.
//! The transaction is sqlx's: dropped without a commit (an error, a cancelled task), it is
//! rolled back.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_closure::RestorePlan;
use salvage_closure::guards::{
    Candidate, Exports, Guards, exports_of, guards_of, held_back, keys_to_ask,
};
use salvage_pg::{Error as PgError, SqlState};
use salvage_plan::{Role, TablePlan};
use salvage_source::SnapshotReader;
use salvage_sql::session;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgDatabaseError};

use crate::outcome::TableOutcome;
use crate::rows::{Row, Shape, planned_rows};
use crate::write::{copy_rows, insert_cycle, insert_rows};
use crate::{MergeOptions, RestoreReporter, TenantError, diagnose};

/// What a committed tenant wrote.
#[derive(Debug)]
pub struct Written {
    pub tables: Vec<TableOutcome>,
    pub sequences: Vec<(String, i64)>,
    /// Per table, the rows that waited for a parent: a catch-up pass tries them again.
    pub waiting: Vec<Vec<Row>>,
}

pub struct TenantRun<'a> {
    pub plan: &'a RestorePlan,
    /// The tenant's number in the plan.
    pub number: usize,
    /// For a catch-up pass: per table, the rows that waited the last time; only those can
    /// go in now.
    pub retry: Option<&'a [Vec<Row>]>,
    pub live_catalog: &'a Catalog,
    pub connection: &'a mut PgConnection,
    pub reader: &'a mut SnapshotReader,
    pub options: &'a MergeOptions,
    pub reporter: &'a dyn RestoreReporter,
}

/// A table's rows of one step, ready to go in.
struct Ready<'p> {
    index: usize,
    table: &'p TablePlan,
    shape: Shape,
    rows: Vec<Row>,
}

impl TenantRun<'_> {
    /// Runs the tenant in one transaction; on any error it is rolled back.
    pub async fn run(self) -> Result<Written, TenantError> {
        let tenant = &self.plan.tenants[self.number];
        if self.retry.is_none() && !tenant.held_elsewhere.is_empty() {
            return Err(TenantError::KeyHeldByAnotherTenant {
                keys: tenant.held_elsewhere.clone(),
            });
        }
        let mut transaction = self
            .connection
            .begin()
            .await
            .map_err(PgError::query("begin the tenant's transaction"))?;
        let mut body = Body {
            plan: self.plan,
            number: self.number,
            retry: self.retry,
            live_catalog: self.live_catalog,
            reader: self.reader,
            reporter: self.reporter,
            maxima: BTreeMap::new(),
        };
        let result = match body.prepare(&mut transaction, self.options).await {
            Ok(()) => body.steps(&mut transaction).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(mut written) => {
                written.sequences = body.advance_sequences(&mut transaction).await?;
                transaction
                    .commit()
                    .await
                    .map_err(PgError::query("commit the tenant"))?;
                Ok(written)
            }
            Err(error) => {
                // A broken connection fails here too; the worker reconnects.
                let _ = transaction.rollback().await;
                Err(diagnose::holder(
                    error,
                    self.plan,
                    self.number,
                    self.live_catalog,
                    self.connection,
                )
                .await)
            }
        }
    }
}

struct Body<'a> {
    plan: &'a RestorePlan,
    number: usize,
    retry: Option<&'a [Vec<Row>]>,
    live_catalog: &'a Catalog,
    reader: &'a mut SnapshotReader,
    reporter: &'a dyn RestoreReporter,
    /// The largest restored value of each sequence, by quoted name.
    maxima: BTreeMap<(String, String), i64>,
}

impl<'a> Body<'a> {
    async fn prepare(
        &mut self,
        connection: &mut PgConnection,
        options: &MergeOptions,
    ) -> Result<(), TenantError> {
        sqlx::query(session::TIMEOUTS)
            .bind(millis(options.lock_timeout))
            .bind(millis(options.statement_timeout))
            .execute(&mut *connection)
            .await
            .map_err(PgError::query("set the tenant's timeouts"))?;
        let deferred = &self.plan.schema.deferred;
        if !deferred.is_empty() {
            let constraints: Vec<(QualifiedName, String)> = deferred
                .iter()
                .map(|constraint| (constraint.table.clone(), constraint.name.clone()))
                .collect();
            sqlx::query(&session::defer_constraints(&constraints))
                .execute(&mut *connection)
                .await
                .map_err(PgError::query("defer the cycles' constraints"))?;
        }
        Ok(())
    }

    fn tenant_id(&self) -> &str {
        &self.plan.tenants[self.number].id
    }

    async fn steps(&mut self, connection: &mut PgConnection) -> Result<Written, TenantError> {
        let plan = self.plan;
        let tables = plan.schema.tables.len();
        let mut written = Written {
            tables: vec![TableOutcome::default(); tables],
            sequences: Vec::new(),
            waiting: vec![Vec::new(); tables],
        };
        for step in &plan.schema.steps {
            let members: Vec<usize> = step
                .iter()
                .copied()
                .filter(|&index| {
                    let table = &plan.schema.tables[index];
                    table.in_live && table.in_snapshot
                })
                .collect();
            let shared: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&index| plan.schema.tables[index].role == Role::Shared)
                .collect();
            for index in shared {
                if self.retry.is_none() {
                    written.tables[index] = self.shared_rows(connection, index).await?;
                }
            }
            let mut ready = Vec::new();
            for &index in &members {
                if plan.schema.tables[index].role != Role::Shared {
                    if let Some(rows) = self.owned_rows(index)? {
                        ready.push(rows);
                    }
                }
            }
            if ready.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            let ready = self
                .hold_back(connection, step, ready, &mut written)
                .await?;
            if let [one] = ready.as_slice() {
                written.tables[one.index] = self.insert_one(connection, one).await?;
            } else if !ready.is_empty() {
                self.insert_together(connection, &ready, &mut written)
                    .await?;
            }
            tracing::debug!(
                tables = ready.len(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "step written"
            );
            for table in &ready {
                self.note_maxima(table);
            }
        }
        for (outcome, waiting) in written.tables.iter_mut().zip(&written.waiting) {
            outcome.waiting = waiting.len() as u64;
        }
        if self.retry.is_none() {
            // The rows the plan found in live were never sent: they are kept as they are.
            for (outcome, counts) in written
                .tables
                .iter_mut()
                .zip(&plan.tenants[self.number].tables)
            {
                outcome.already_present += counts.in_live;
            }
        }
        Ok(written)
    }

    /// The tenant's rows of an owned table this pass writes; `None` when there are none.
    fn owned_rows(&self, index: usize) -> Result<Option<Ready<'a>>, TenantError> {
        let plan: &'a RestorePlan = self.plan;
        let table = &plan.schema.tables[index];
        let rows_planned = plan.tenants[self.number].tables[index].to_add;
        let retry = self.retry.map(|retry| &retry[index]);
        if retry.map_or(rows_planned == 0, Vec::is_empty) {
            return Ok(None);
        }
        let kept = plan.selected.table(&table.name).ok_or_else(|| {
            TenantError::Inconsistent(format!(
                "the snapshot's rows of {} were not read",
                table.name
            ))
        })?;
        let shape = Shape::new(table, kept.columns())?;
        let rows = match retry {
            Some(rows) => rows.clone(),
            None => planned_rows(plan, index, self.number, kept, &shape)?,
        };
        Ok(Some(Ready {
            index,
            table,
            shape,
            rows,
        }))
    }

    /// Keeps back the rows a parent of which is not in live and not going in with them; the
    /// parents are looked up inside the transaction, so the tenant's own earlier rows count.
    async fn hold_back<'r>(
        &self,
        connection: &mut PgConnection,
        step: &[usize],
        mut ready: Vec<Ready<'r>>,
        written: &mut Written,
    ) -> Result<Vec<Ready<'r>>, TenantError> {
        let plan = self.plan;
        if ready.iter().all(|table| table.table.guards.is_empty()) {
            return Ok(ready);
        }
        let mut guards = Guards::new();
        let mut exports = Exports::new();
        for table in &ready {
            let kept = plan
                .selected
                .table(&table.table.name)
                .map(salvage_source::SelectedTable::columns)
                .ok_or_else(|| {
                    TenantError::Inconsistent(format!(
                        "the snapshot's rows of {} were not read",
                        table.table.name
                    ))
                })?;
            guards.insert(
                table.index,
                guards_of(&plan.schema, step, table.index, kept)?,
            );
            exports.insert(table.index, exports_of(table.table, kept)?);
        }
        let held = {
            let candidates: Vec<Candidate<'_>> = ready
                .iter()
                .flat_map(|table| {
                    table.rows.iter().map(|row| Candidate {
                        table: table.index,
                        fields: salvage_copy::fields(&row.row).collect(),
                    })
                })
                .collect();
            let asked = keys_to_ask(&candidates, &guards, &|_, _| false);
            let in_live = salvage_closure::ask_live(connection, self.live_catalog, asked).await?;
            let present = |parent: &(QualifiedName, Vec<String>), key: &[u8]| {
                in_live.get(parent).is_some_and(|keys| keys.contains(key))
            };
            held_back(&candidates, &guards, &exports, &present)
        };
        let mut held = held.into_iter();
        for table in &mut ready {
            let rows = std::mem::take(&mut table.rows);
            for row in rows {
                if held.next().flatten().is_some() {
                    written.waiting[table.index].push(row);
                } else {
                    table.rows.push(row);
                }
            }
        }
        ready.retain(|table| !table.rows.is_empty());
        Ok(ready)
    }

    /// One table's rows: those only this tenant reaches straight in with COPY, the others
    /// with an insert that skips what another tenant already wrote.
    async fn insert_one(
        &mut self,
        connection: &mut PgConnection,
        ready: &Ready<'_>,
    ) -> Result<TableOutcome, TenantError> {
        let (sole, joint): (Vec<Row>, Vec<Row>) =
            ready.rows.iter().cloned().partition(|row| !row.joint);
        let reporter = self.reporter;
        let tenant = self.tenant_id().to_owned();
        let copied = copy_rows(connection, ready.table, &ready.shape, &sole, &|rows| {
            reporter.rows_copied(&tenant, rows);
        })
        .await?;
        if copied != sole.len() as u64 {
            return Err(TenantError::LiveChanged {
                table: ready.table.name.clone(),
                expected: sole.len() as u64,
                inserted: copied,
            });
        }
        let inserted = insert_rows(
            connection,
            ready.table,
            &ready.shape,
            self.live_catalog,
            &joint,
        )
        .await?;
        self.reporter.rows_copied(&tenant, joint.len() as u64);
        Ok(TableOutcome {
            copied: ready.rows.len() as u64,
            inserted: copied + inserted,
            already_present: joint.len() as u64 - inserted,
            waiting: 0,
        })
    }

    /// The tables of a cycle, in one statement.
    async fn insert_together(
        &mut self,
        connection: &mut PgConnection,
        ready: &[Ready<'_>],
        written: &mut Written,
    ) -> Result<(), TenantError> {
        let tables: Vec<(&TablePlan, &Shape, &[Row])> = ready
            .iter()
            .map(|table| (table.table, &table.shape, table.rows.as_slice()))
            .collect();
        let counts = insert_cycle(connection, &tables, self.live_catalog).await?;
        for (table, inserted) in ready.iter().zip(counts) {
            let sole = table.rows.iter().filter(|row| !row.joint).count() as u64;
            let sent = table.rows.len() as u64;
            if inserted < sole || inserted > sent {
                return Err(TenantError::LiveChanged {
                    table: table.table.name.clone(),
                    expected: sent,
                    inserted,
                });
            }
            self.reporter.rows_copied(self.tenant_id(), sent);
            written.tables[table.index] = TableOutcome {
                copied: sent,
                inserted,
                already_present: sent - inserted,
                waiting: 0,
            };
        }
        Ok(())
    }

    /// The shared rows this tenant's rows need that live was missing: inserted unless
    /// another tenant's transaction got there first.
    async fn shared_rows(
        &mut self,
        connection: &mut PgConnection,
        index: usize,
    ) -> Result<TableOutcome, TenantError> {
        let plan = self.plan;
        let tenant = &plan.tenants[self.number];
        let table = &plan.schema.tables[index];
        let (Some(keys), Some(key_columns)) = (
            tenant.shared_rows.get(&index),
            plan.shared_key_columns.get(&index),
        ) else {
            return Ok(TableOutcome::default());
        };
        if keys.is_empty() {
            return Ok(TableOutcome::default());
        }
        let mut rows = Vec::new();
        let mut stream = self.reader.copy_by_keys(table, key_columns, keys).await?;
        while let Some(chunk) = stream.next().await {
            for row in salvage_source::rows_of(&chunk?) {
                rows.push(Row {
                    row: row.to_vec(),
                    joint: true,
                });
            }
        }
        drop(stream);
        let expected = keys.len() as u64;
        if rows.len() as u64 != expected {
            return Err(TenantError::SnapshotChanged {
                table: table.name.clone(),
                expected,
                copied: rows.len() as u64,
            });
        }
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|column| column.name.clone())
            .collect();
        let shape = Shape::new(table, &columns)?;
        let inserted = insert_rows(connection, table, &shape, self.live_catalog, &rows).await?;
        self.reporter.rows_copied(&tenant.id, expected);
        let ready = Ready {
            index,
            table,
            shape,
            rows,
        };
        if inserted > 0 {
            self.note_maxima(&ready);
        }
        Ok(TableOutcome {
            copied: expected,
            inserted,
            already_present: expected - inserted,
            waiting: 0,
        })
    }

    fn note_maxima(&mut self, ready: &Ready<'_>) {
        if ready.shape.sequences.is_empty() {
            return;
        }
        let mut maxima = vec![None; ready.shape.sequences.len()];
        for row in &ready.rows {
            ready.shape.note_maxima(&row.row, &mut maxima);
        }
        for ((number, _), maximum) in ready.shape.sequences.iter().zip(maxima) {
            let Some(maximum) = maximum else { continue };
            let sequence = &ready.table.sequences[*number].sequence;
            let entry = self
                .maxima
                .entry((sequence.to_string(), sequence.quoted()))
                .or_insert(maximum);
            *entry = (*entry).max(maximum);
        }
    }

    /// Moves the sequences behind restored columns ahead of the restored values, in one
    /// statement before commit.
    async fn advance_sequences(
        &mut self,
        connection: &mut PgConnection,
    ) -> Result<Vec<(String, i64)>, TenantError> {
        if self.maxima.is_empty() {
            return Ok(Vec::new());
        }
        let quoted: Vec<String> = self
            .maxima
            .keys()
            .map(|(_, quoted)| quoted.clone())
            .collect();
        let statement = session::advance_sequences(&quoted);
        let mut query = sqlx::query_scalar::<_, Vec<Option<i64>>>(&statement);
        for name in &quoted {
            query = query.bind(name);
        }
        for maximum in self.maxima.values() {
            query = query.bind(*maximum);
        }
        let values = query.fetch_one(&mut *connection).await.map_err(|source| {
            TenantError::Database(PgError::query("advance the sequences")(source))
        })?;
        Ok(self
            .maxima
            .keys()
            .zip(values)
            .filter_map(|((name, _), value)| value.map(|value| (name.clone(), value)))
            .collect())
    }
}

/// A unique violation on another key than the conflict target is a cross-tenant conflict.
pub fn insert_error(table: &TablePlan, error: sqlx::Error) -> TenantError {
    if salvage_pg::sqlstate(&error) == Some(SqlState::UniqueViolation) {
        if let sqlx::Error::Database(db) = &error {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                let table_name = pg
                    .table()
                    .and_then(|name| pg.schema().map(|schema| QualifiedName::new(schema, name)))
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
    TenantError::Statement {
        table: table.name.clone(),
        source: PgError::query("insert rows")(error),
    }
}

fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}
