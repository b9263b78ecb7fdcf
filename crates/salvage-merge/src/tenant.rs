//! One tenant's writes, inside its own savepoint (see [`crate::group`]): its rows go in step
//! by step, parents first — COPY straight into the table for the rows only it reaches, an
//! insert that skips rows already there for those reaching other tenants too and for shared
//! rows, one statement for the tables of a cycle — each row only once every parent it
//! references is present; then the deferred constraints are checked and the sequences moved.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rustc_hash::FxHashSet;
use std::time::Duration;

use futures_util::StreamExt;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_closure::RestorePlan;
use salvage_closure::guards::{
    Candidate, Exports, Guards, ParentKey, exports_of, guards_of, held_back, keys_to_ask,
};
use salvage_pg::{Error as PgError, SqlState};
use salvage_plan::{Role, TablePlan};
use salvage_source::SnapshotReader;
use salvage_sql::session;
use sqlx::postgres::{PgConnection, PgDatabaseError};

use crate::change::{self, ImageTarget};
use crate::outcome::TableOutcome;
use crate::rows::{Row, Shape, planned_rows};
use crate::write::{Record, Small, copy_rows, insert_cycle, insert_rows, insert_small};
use crate::{MergeOptions, RestoreReporter, TenantError, diagnose};

/// What a committed tenant wrote.
#[derive(Debug)]
pub struct Written {
    pub tables: Vec<TableOutcome>,
    pub sequences: Vec<(String, i64)>,
    /// Per table, the rows that waited for a parent: a catch-up pass tries them again.
    pub waiting: Vec<Vec<Row>>,
    /// The parent keys (COPY text) those rows wait for, by parent and columns: what a rerun
    /// asks live for before it plans them again.
    pub waiting_for: BTreeMap<ParentKey, BTreeSet<Box<[u8]>>>,
    /// Modes overwrite and exact: the rows changed, per table changed.
    pub changed: Vec<crate::ChangedTable>,
    /// Written by one statement with other tenants' rows: how many tenants it wrote.
    pub batch: Option<u32>,
}

pub struct TenantRun<'a> {
    pub plan: &'a RestorePlan,
    /// The tenant's number in the plan.
    pub number: usize,
    /// For a catch-up pass: per table, the rows that waited the last time; only those can
    /// go in now.
    pub retry: Option<&'a [Vec<Row>]>,
    pub live_catalog: &'a Catalog,
    /// In an open transaction or savepoint.
    pub connection: &'a mut PgConnection,
    pub reader: &'a mut SnapshotReader,
    pub reporter: &'a dyn RestoreReporter,
    /// A journaled run: where the rows inserted, updated and deleted are kept for undo.
    pub images: Option<&'a ImageTarget>,
}

/// A table's rows of one step, ready to go in.
struct Ready<'p> {
    index: usize,
    table: &'p TablePlan,
    shape: Shape,
    rows: Vec<Row>,
}

/// What a tenant needs before any statement: nothing to write, or a refusal.
pub enum Shortcut {
    /// The plan found one of its keys held by another tenant's row: it fails, writing nothing.
    Refused(TenantError),
    /// Everything is in live already: no statement at all.
    Nothing(Written),
}

/// A tenant whose whole write is one small statement, gathered to go in with other such
/// tenants' rows (see [`crate::group`]): what it will have written once that statement
/// has run, and what the statement writes for it.
pub struct Gathered {
    /// Its outcome, the sequences aside (the statement moves them).
    pub written: Written,
    /// Its small tables' rows, in the order it would write them.
    pub(crate) tables: Vec<Pending>,
    /// The largest restored value of each sequence, by name and quoted name.
    pub maxima: Maxima,
}

/// The largest restored value of each sequence, by name and quoted name.
pub type Maxima = BTreeMap<(String, String), i64>;

impl<'a> TenantRun<'a> {
    /// Whether the tenant can be settled without a statement.
    #[must_use]
    pub fn shortcut(plan: &RestorePlan, number: usize, retrying: bool) -> Option<Shortcut> {
        let tenant = &plan.tenants[number];
        if retrying {
            return None;
        }
        if !tenant.held_elsewhere.is_empty() {
            return Some(Shortcut::Refused(TenantError::KeyHeldByAnotherTenant {
                keys: tenant.held_elsewhere.clone(),
            }));
        }
        if plan.rows_to_copy(tenant) == 0 {
            return Some(Shortcut::Nothing(Written {
                tables: tenant
                    .tables
                    .iter()
                    .map(|counts| TableOutcome {
                        already_present: counts.in_live,
                        ..TableOutcome::default()
                    })
                    .collect(),
                sequences: Vec::new(),
                waiting: vec![Vec::new(); tenant.tables.len()],
                waiting_for: BTreeMap::new(),
                changed: Vec::new(),
                batch: None,
            }));
        }
        None
    }

    /// Writes the tenant's rows in the transaction (or savepoint) open on `connection`; the
    /// caller commits, or rolls back on an error — after which [`TenantRun::diagnose`] may
    /// name what got in the way.
    pub async fn run(self) -> Result<Written, TenantError> {
        // A catch-up pass writes after the tenant's first transaction committed its images:
        // its steps follow those, so every step of a tenant stays one table and one action.
        let step = match (self.retry, self.images) {
            (Some(_), Some(images)) => change::last_step(&mut *self.connection, images).await?,
            _ => 0,
        };
        let plan = self.plan;
        let (mut body, connection) = self.split(step, false);
        let mut written = body.steps(connection).await?;
        if !plan.schema.deferred.is_empty() {
            // Checked now, inside the tenant's own savepoint, not at the group's commit.
            sqlx::query(&session::constraints_now(&deferred_names(plan)))
                .execute(&mut *connection)
                .await
                .map_err(|error| {
                    insert_error_without_table(error, "check the deferred constraints")
                })?;
        }
        let mut sequences = std::mem::take(&mut body.moved);
        sequences.extend(body.advance_sequences(connection).await?);
        written.sequences = sequences;
        Ok(written)
    }

    /// The tenant's rows when all it writes is one small statement (a first pass, nothing
    /// to change, no shared row to add) and the deferred constraints' check: worked out as
    /// [`TenantRun::run`] would, without writing (the parents it needs are asked in live).
    /// `None`: it needs more, and runs alone. `Err`: the pass failed otherwise — perhaps a
    /// read of live, which leaves the transaction unusable.
    pub async fn gather(self) -> Result<Option<Gathered>, TenantError> {
        let plan = self.plan;
        if self.retry.is_some() || plan.rows_to_copy(&plan.tenants[self.number]) > SMALL_ROWS as u64
        {
            return Ok(None);
        }
        let (mut body, connection) = self.split(0, true);
        let written = match body.steps(connection).await {
            Ok(written) => written,
            Err(_) if body.gave_up => return Ok(None),
            Err(error) => return Err(error),
        };
        let Some((tables, maxima)) = body.gathered.take() else {
            return Ok(None);
        };
        // Every sequence goes with the gathered statement (it takes the maxima noted so far).
        Ok(body.maxima.is_empty().then_some(Gathered {
            written,
            tables,
            maxima,
        }))
    }

    /// The tenant's writing state, and its connection.
    fn split(self, step: i32, dry: bool) -> (Body<'a>, &'a mut PgConnection) {
        let body = Body {
            plan: self.plan,
            number: self.number,
            retry: self.retry,
            live_catalog: self.live_catalog,
            reader: self.reader,
            reporter: self.reporter,
            maxima: BTreeMap::new(),
            written: HashMap::new(),
            images: self.images,
            step,
            records: change::InsertRecords::default(),
            small: Vec::new(),
            moved: Vec::new(),
            dry,
            gave_up: false,
            gathered: None,
        };
        (body, self.connection)
    }

    /// After a rollback: a unique conflict with the live row that holds the key.
    pub async fn diagnose(
        error: TenantError,
        plan: &RestorePlan,
        number: usize,
        live_catalog: &Catalog,
        connection: &mut PgConnection,
    ) -> TenantError {
        diagnose::holder(error, plan, number, live_catalog, connection).await
    }
}

/// The plan's deferred constraints, for `SET CONSTRAINTS`.
pub fn deferred_names(plan: &RestorePlan) -> Vec<(QualifiedName, String)> {
    plan.schema
        .deferred
        .iter()
        .map(|constraint| (constraint.table.clone(), constraint.name.clone()))
        .collect()
}

/// `BEGIN`, the timeouts and the deferred constraints, in one round trip.
pub fn begin_statement(plan: &RestorePlan, options: &MergeOptions) -> String {
    session::begin(
        &millis(options.lock_timeout),
        &millis(options.statement_timeout),
        &deferred_names(plan),
    )
}

struct Body<'a> {
    plan: &'a RestorePlan,
    number: usize,
    retry: Option<&'a [Vec<Row>]>,
    live_catalog: &'a Catalog,
    reader: &'a mut SnapshotReader,
    reporter: &'a dyn RestoreReporter,
    /// The largest restored value of each sequence.
    maxima: Maxima,
    /// The keys (by the columns children reference them by) of the rows this transaction
    /// wrote in earlier steps: parents that need no lookup in live.
    written: HashMap<ParentKey, FxHashSet<Box<[u8]>>>,
    images: Option<&'a ImageTarget>,
    /// The last step of images written.
    step: i32,
    /// The rows inserted so far, recorded before the inserts' phase ends.
    records: change::InsertRecords,
    /// Small tables' rows not written yet: they go in together, in one statement, before
    /// any other write (see [`Body::flush_small`]).
    small: Vec<Pending>,
    /// The sequences the small tables' statement moved, when it was the tenant's last write.
    moved: Vec<(String, i64)>,
    /// A gathering pass ([`TenantRun::gather`]): no statement that writes runs (parents are
    /// still asked in live); the one that would be the tenant's only write is kept in
    /// `gathered` instead.
    dry: bool,
    /// A gathering pass met a statement it does not run.
    gave_up: bool,
    gathered: Option<(Vec<Pending>, Maxima)>,
}

/// A small table's rows waiting to go in with others; with `step`, recorded at that step.
pub(crate) struct Pending {
    pub(crate) index: usize,
    pub(crate) shape: Shape,
    pub(crate) rows: Vec<Row>,
    pub(crate) step: Option<i32>,
}

/// The most rows of one table that wait to go in with others: beyond, `COPY` (which streams
/// and inserts rows in batches) pays for its two round trips.
const SMALL_TABLE_ROWS: usize = 1_000;
/// The most rows written together in one statement.
pub(crate) const SMALL_ROWS: usize = 4_000;
/// The most parameters bound to one statement (the protocol allows 65,535).
const SMALL_PARAMETERS: usize = 20_000;

impl<'a> Body<'a> {
    fn tenant_id(&self) -> &str {
        &self.plan.tenants[self.number].id
    }

    /// In a gathering pass, a statement (for `what`) ends it: the tenant runs alone.
    fn may_write(&mut self, what: &'static str) -> Result<(), TenantError> {
        if self.dry {
            self.gave_up = true;
            tracing::trace!(tenant = self.tenant_id(), what, "runs alone");
            return Err(TenantError::Inconsistent(format!(
                "a gathering pass has no statement to run for {what}"
            )));
        }
        Ok(())
    }

    async fn steps(&mut self, connection: &mut PgConnection) -> Result<Written, TenantError> {
        let plan = self.plan;
        let tables = plan.schema.tables.len();
        let mut written = Written {
            tables: vec![TableOutcome::default(); tables],
            sequences: Vec::new(),
            waiting: vec![Vec::new(); tables],
            waiting_for: BTreeMap::new(),
            changed: Vec::new(),
            batch: None,
        };
        let writable = |index: &usize| {
            let table = &plan.schema.tables[*index];
            table.in_live && table.in_snapshot
        };
        for phase in &plan.schema.phases {
            let steps: Vec<&[usize]> = phase
                .iter()
                .map(|&step| plan.schema.steps[step].as_slice())
                .collect();
            let tables: Vec<usize> = steps
                .iter()
                .flat_map(|step| step.iter().copied())
                .filter(writable)
                .collect();
            if self.retry.is_none() {
                for &index in &tables {
                    if plan.schema.tables[index].role == Role::Shared {
                        written.tables[index] = self.shared_rows(connection, index).await?;
                    }
                }
            }
            let mut ready = Vec::new();
            for &index in &tables {
                if plan.schema.tables[index].role != Role::Shared {
                    if let Some(rows) = self.owned_rows(index)? {
                        ready.push(rows);
                    }
                }
            }
            if ready.is_empty() {
                continue;
            }
            // Which rows go in is decided for the whole phase: a row of an earlier step may
            // need one of a later step by commit.
            let ready = self
                .hold_back(connection, &tables, ready, &mut written)
                .await?;
            let mut by_step: Vec<Vec<Ready<'_>>> = steps.iter().map(|_| Vec::new()).collect();
            for table in ready {
                if let Some(place) = steps.iter().position(|step| step.contains(&table.index)) {
                    by_step[place].push(table);
                }
            }
            for ready in by_step {
                let started = std::time::Instant::now();
                if let [one] = ready.as_slice() {
                    written.tables[one.index] = self.insert_one(connection, one).await?;
                } else if !ready.is_empty() {
                    self.insert_together(connection, &ready, &mut written)
                        .await?;
                } else {
                    continue;
                }
                tracing::debug!(
                    tables = ready.len(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "step written"
                );
                for table in &ready {
                    self.note_maxima(table);
                    self.note_written(table)?;
                }
            }
        }
        // With nothing to write after them, the small tables' statement moves the sequences.
        // (A batch checks the deferred constraints after its statement, which moves the
        // sequences too.)
        let last = self.records.is_empty()
            && (plan.schema.deferred.is_empty() || self.dry)
            && (self.retry.is_some()
                || plan.tenants[self.number]
                    .changes
                    .iter()
                    .all(salvage_closure::TableChanges::is_empty));
        self.write_small(connection, last).await?;
        if let Some(images) = self.images {
            if !self.records.is_empty() {
                self.may_write("rows recorded apart")?;
            }
            self.records.flush(connection, images).await?;
        }
        if self.retry.is_none() {
            self.change_rows(connection, &mut written).await?;
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

    /// Keeps back the rows a parent of which is not in live and not going in with them (in
    /// `phase`, the tables written together); the parents are looked up inside the
    /// transaction, so the tenant's own earlier rows count.
    async fn hold_back<'r>(
        &self,
        connection: &mut PgConnection,
        phase: &[usize],
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
                guards_of(&plan.schema, phase, table.index, kept)?,
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
            let written = |parent: &ParentKey, key: &[u8]| {
                self.written
                    .get(parent)
                    .is_some_and(|keys| keys.contains(key))
            };
            let asked = keys_to_ask(&candidates, &guards, Some(&exports), &written);
            // A read, so a gathering pass asks too: a batch's foreign keys are checked at
            // its statement's end all the same, and a parent gone by then fails the batch.
            let in_live = salvage_closure::ask_live(connection, self.live_catalog, asked).await?;
            let present = |parent: &ParentKey, key: &[u8]| {
                written(parent, key) || in_live.get(parent).is_some_and(|keys| keys.contains(key))
            };
            held_back(&candidates, &guards, &exports, &present)
        };
        let mut held = held.into_iter();
        for table in &mut ready {
            let rows = std::mem::take(&mut table.rows);
            for row in rows {
                if let Some((guard, key)) = held.next().flatten() {
                    written
                        .waiting_for
                        .entry(guards[&table.index][guard].parent())
                        .or_default()
                        .insert(key);
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
        if let Some(outcome) = self.write_later(connection, ready).await? {
            return Ok(outcome);
        }
        self.may_write("a table written apart")?;
        self.flush_small(connection).await?;
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
                what: "inserted",
                expected: sole.len() as u64,
                changed: copied,
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
        self.note_inserted(ready)?;
        Ok(TableOutcome {
            copied: ready.rows.len() as u64,
            inserted: copied + inserted,
            already_present: joint.len() as u64 - inserted,
            ..TableOutcome::default()
        })
    }

    /// The tables of a cycle, in one statement.
    async fn insert_together(
        &mut self,
        connection: &mut PgConnection,
        ready: &[Ready<'_>],
        written: &mut Written,
    ) -> Result<(), TenantError> {
        self.may_write("a cycle's tables")?;
        self.flush_small(connection).await?;
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
                    what: "inserted",
                    expected: sent,
                    changed: inserted,
                });
            }
            self.reporter.rows_copied(self.tenant_id(), sent);
            written.tables[table.index] = TableOutcome {
                copied: sent,
                inserted,
                already_present: sent - inserted,
                ..TableOutcome::default()
            };
        }
        for table in ready {
            self.note_inserted(table)?;
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
        self.may_write("shared rows")?;
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
        self.flush_small(connection).await?;
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
            ..TableOutcome::default()
        })
    }

    /// A small table's rows, all only this tenant's (what `COPY` would take), held to go in
    /// with the next ones in one statement: its outcome, as the statement must confirm it.
    /// `None`: the table is written now, on its own.
    async fn write_later(
        &mut self,
        connection: &mut PgConnection,
        ready: &Ready<'_>,
    ) -> Result<Option<TableOutcome>, TenantError> {
        let rows = ready.rows.len();
        let parameters = ready.shape.written_names.len() + 4;
        // Bound as text: rows whose bytes are not UTF-8 (a SQL_ASCII database) go by COPY.
        if rows > SMALL_TABLE_ROWS
            || ready
                .rows
                .iter()
                .any(|row| row.joint || std::str::from_utf8(&row.row).is_err())
        {
            return Ok(None);
        }
        let held_rows: usize = self.small.iter().map(|held| held.rows.len()).sum();
        let held_parameters: usize = self
            .small
            .iter()
            .map(|held| held.shape.written_names.len() + 4)
            .sum();
        if held_rows + rows > SMALL_ROWS || held_parameters + parameters > SMALL_PARAMETERS {
            self.flush_small(connection).await?;
        }
        let step = self.images.map(|_| {
            self.step += 1;
            self.step
        });
        self.small.push(Pending {
            index: ready.index,
            shape: ready.shape.clone(),
            rows: ready.rows.clone(),
            step: step.filter(|_| ready.table.key.is_some()),
        });
        Ok(Some(TableOutcome {
            copied: rows as u64,
            inserted: rows as u64,
            ..TableOutcome::default()
        }))
    }

    /// Writes the small tables' rows held so far, in one statement, each recorded for undo
    /// from what it inserted; every row must go in.
    async fn flush_small(&mut self, connection: &mut PgConnection) -> Result<(), TenantError> {
        self.write_small(connection, false).await
    }

    /// [`Body::flush_small`]; with `sequences`, the same statement moves the sequences
    /// behind the rows written so far.
    async fn write_small(
        &mut self,
        connection: &mut PgConnection,
        sequences: bool,
    ) -> Result<(), TenantError> {
        if self.small.is_empty() {
            return Ok(());
        }
        if self.dry {
            // The tenant's only statement: kept, to go in with other tenants' rows.
            if !sequences {
                return self.may_write("more than one statement of small tables");
            }
            self.gathered = Some((
                std::mem::take(&mut self.small),
                std::mem::take(&mut self.maxima),
            ));
            return Ok(());
        }
        let maxima: Vec<(String, i64)> = if sequences {
            self.maxima
                .iter()
                .map(|((_, quoted), maximum)| (quoted.clone(), *maximum))
                .collect()
        } else {
            Vec::new()
        };
        let held = std::mem::take(&mut self.small);
        let plan = self.plan;
        let tables: Vec<Small<'_>> = held
            .iter()
            .map(|held| Small {
                table: &plan.schema.tables[held.index],
                shape: &held.shape,
                rows: &held.rows,
                record: held.step.map_or(Record::No, Record::Step),
            })
            .collect();
        let started = std::time::Instant::now();
        let written =
            insert_small(connection, &tables, self.live_catalog, self.images, &maxima).await?;
        tracing::debug!(
            tables = tables.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "small tables written"
        );
        for (small, &inserted) in tables.iter().zip(&written.inserted) {
            let sent = small.rows.len() as u64;
            if inserted != sent {
                return Err(TenantError::LiveChanged {
                    table: small.table.name.clone(),
                    what: "inserted",
                    expected: sent,
                    changed: inserted,
                });
            }
            self.reporter.rows_copied(self.tenant_id(), sent);
        }
        let expected: u64 = tables
            .iter()
            .filter(|small| matches!(small.record, Record::Step(_)))
            .map(|small| small.rows.len() as u64)
            .sum();
        if written.recorded != expected {
            return Err(TenantError::LiveChanged {
                table: tables[0].table.name.clone(),
                what: "recorded",
                expected,
                changed: written.recorded,
            });
        }
        if sequences {
            let names = std::mem::take(&mut self.maxima).into_keys();
            self.moved = names
                .zip(written.sequences)
                .filter_map(|((name, _), value)| value.map(|value| (name, value)))
                .collect();
        }
        Ok(())
    }

    /// A journaled run: records the rows of `ready` (inserted now, or by another tenant of
    /// the run just before) as inserted by this tenant, for undo.
    fn note_inserted(&mut self, ready: &Ready<'_>) -> Result<(), TenantError> {
        if self.images.is_none() {
            return Ok(());
        }
        self.step += 1;
        self.records.add(
            self.live_catalog,
            self.step,
            ready.table,
            &ready.shape,
            &ready.rows,
        )
    }

    /// Modes overwrite and exact, after every insert: the planned updates, parents first,
    /// then the planned deletes, children first; each statement keeps what it replaces.
    async fn change_rows(
        &mut self,
        connection: &mut PgConnection,
        written: &mut Written,
    ) -> Result<(), TenantError> {
        let plan = self.plan;
        let tenant = &plan.tenants[self.number];
        if tenant
            .changes
            .iter()
            .all(salvage_closure::TableChanges::is_empty)
        {
            return Ok(());
        }
        self.may_write("rows to change")?;
        let images = self.images.ok_or_else(|| {
            TenantError::Inconsistent(format!(
                "mode {} changes live rows, and this run keeps no journal to keep them in",
                plan.mode.name()
            ))
        })?;
        let mut changed: Vec<crate::ChangedTable> = Vec::new();
        for (index, table) in plan.schema.tables.iter().enumerate() {
            if tenant.changes[index].updates.is_empty() {
                continue;
            }
            let kept = plan.selected.table(&table.name).ok_or_else(|| {
                TenantError::Inconsistent(format!(
                    "the snapshot's rows of {} were not read",
                    table.name
                ))
            })?;
            let shape = Shape::new(table, kept.columns())?;
            let rows = change::rows_to_update(plan, self.number, index, &shape)?;
            self.step += 1;
            let updated = change::update_rows(
                connection,
                self.live_catalog,
                images,
                self.step,
                table,
                &shape,
                &rows,
            )
            .await?;
            written.tables[index].updated = updated.len() as u64;
            let place = entry(&mut changed, table);
            changed[place].updated = updated;
        }
        for (index, table) in plan.schema.tables.iter().enumerate().rev() {
            let keys = &tenant.changes[index].deletes;
            if keys.is_empty() {
                continue;
            }
            self.step += 1;
            let deleted = change::delete_rows(
                connection,
                self.live_catalog,
                images,
                self.step,
                table,
                keys,
            )
            .await?;
            written.tables[index].deleted = deleted.len() as u64;
            let place = entry(&mut changed, table);
            changed[place].deleted = deleted;
        }
        written.changed = changed;
        Ok(())
    }

    /// Notes the keys of rows written, for the parent checks of later steps.
    fn note_written(&mut self, ready: &Ready<'_>) -> Result<(), TenantError> {
        if ready.table.exports.is_empty() {
            return Ok(());
        }
        let kept = self
            .plan
            .selected
            .table(&ready.table.name)
            .map(salvage_source::SelectedTable::columns)
            .ok_or_else(|| {
                TenantError::Inconsistent(format!(
                    "the snapshot's rows of {} were not read",
                    ready.table.name
                ))
            })?;
        for (parent, places) in exports_of(ready.table, kept)? {
            let keys = self.written.entry(parent).or_default();
            for row in &ready.rows {
                let fields: Vec<&[u8]> = salvage_copy::fields(&row.row).collect();
                keys.extend(salvage_closure::raw_key(&fields, &places));
            }
        }
        Ok(())
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

/// The place of `table` among the tables changed, added when new.
fn entry(changed: &mut Vec<crate::ChangedTable>, table: &TablePlan) -> usize {
    if let Some(place) = changed.iter().position(|c| c.table == table.name) {
        return place;
    }
    changed.push(crate::ChangedTable {
        table: table.name.clone(),
        updated: Vec::new(),
        deleted: Vec::new(),
    });
    changed.len() - 1
}

/// A failure of a statement that belongs to no one table (the deferred constraints' check).
fn insert_error_without_table(error: sqlx::Error, context: &str) -> TenantError {
    if let Some(table) = error_table(&error) {
        return TenantError::Statement {
            table,
            source: PgError::query(context.to_owned())(error),
        };
    }
    TenantError::Database(PgError::query(context.to_owned())(error))
}

/// The table a server error names (the row's own for a unique key, the referencing one for a
/// foreign key).
pub fn error_table(error: &sqlx::Error) -> Option<QualifiedName> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    let pg = db.try_downcast_ref::<PgDatabaseError>()?;
    Some(QualifiedName::new(pg.schema()?, pg.table()?))
}

/// A unique violation on another key than the conflict target is a cross-tenant conflict.
pub fn insert_error(table: &TablePlan, error: sqlx::Error) -> TenantError {
    if salvage_pg::sqlstate(&error) == Some(SqlState::UniqueViolation) {
        if let sqlx::Error::Database(db) = &error {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                let table_name = error_table(&error).unwrap_or_else(|| table.name.clone());
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
