//! Several tenants in one transaction, each in a savepoint of its own: one commit (one WAL
//! flush) for many small tenants, and every tenant still all or nothing. A tenant that fails
//! is rolled back to its savepoint and the others go on; one that hit another transaction (a
//! lock, a deadlock) is rolled back and tried again on its own, after the group commits and
//! its locks are gone. Deferred constraints are checked at the end of each tenant's savepoint,
//! so a violation is that tenant's, not the group's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use salvage_catalog::Catalog;
use salvage_closure::RestorePlan;
use salvage_pg::Error as PgError;
use salvage_source::SnapshotReader;
use salvage_sql::session;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

use crate::rows::Row;
use crate::tenant::{
    Gathered, Maxima, SMALL_ROWS, Shortcut, TenantRun, Written, begin_statement, deferred_names,
};
use crate::write::{Record, Small, insert_small};
use crate::{MergeOptions, RestoreReporter, TenantError};

/// Tenants in one group at most.
pub const GROUP_TENANTS: usize = 64;
/// Rows a group writes at most (a tenant with more is a group of its own): bounds how long a
/// group holds its row locks.
pub const GROUP_ROWS: u64 = 10_000;

/// A tenant of a group.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// Its number in the plan.
    pub number: usize,
    /// Attempts made so far.
    pub attempts: u32,
    /// A catch-up pass: per table, the rows that waited the last time.
    pub retry: Option<&'a [Vec<Row>]>,
    /// In a journaled run: the tenant's position in the run and this attempt's ID.
    pub journal: Option<(i32, i64)>,
}

/// How a tenant of a group ended.
#[derive(Debug)]
pub enum Ended {
    Done(Written, std::time::Duration),
    Failed(TenantError, std::time::Duration),
    /// Another transaction was in the way, or the group could not commit: try it again, alone.
    Again(TenantError),
}

/// What a group needs.
pub struct Group<'a> {
    pub plan: &'a RestorePlan,
    pub live_catalog: &'a Catalog,
    pub options: &'a MergeOptions,
    pub reporter: &'a dyn RestoreReporter,
    /// The run's journal, where each tenant that commits is marked done in its transaction.
    pub run: Option<&'a salvage_journal::Run>,
}

impl Group<'_> {
    /// Runs `members` in one transaction on `connection`; one result per member, in order.
    /// The second value is false when the connection may be broken.
    pub async fn run(
        &self,
        connection: &mut PgConnection,
        reader: &mut SnapshotReader,
        members: &[Member<'_>],
    ) -> (Vec<Ended>, bool) {
        let mut ended: Vec<Option<Ended>> = members.iter().map(|_| None).collect();
        // Tenants settled without a statement.
        let mut work = Vec::new();
        for (place, member) in members.iter().enumerate() {
            match TenantRun::shortcut(self.plan, member.number, member.retry.is_some()) {
                Some(Shortcut::Refused(error)) => {
                    ended[place] = Some(Ended::Failed(error, std::time::Duration::ZERO));
                }
                Some(Shortcut::Nothing(written)) => {
                    ended[place] = Some(Ended::Done(written, std::time::Duration::ZERO));
                }
                None => work.push(place),
            }
        }
        if work.is_empty() {
            // Nothing to write: marked done on its own (no transaction of the tenant's).
            let ends = self.ends(members, &ended, &[]);
            if let (Some(run), false) = (self.run, ends.is_empty()) {
                if let Err(error) = run.settle_in(connection, &ends).await {
                    let healthy = error.sqlstate().is_some();
                    let reason = error.to_string();
                    settled_again(&mut ended, &reason);
                    return (
                        ended.into_iter().map(Option::unwrap_or_else_none).collect(),
                        healthy,
                    );
                }
            }
            return (
                ended.into_iter().map(Option::unwrap_or_else_none).collect(),
                true,
            );
        }
        let mut healthy = true;
        let began = connection
            .begin_with(begin_statement(self.plan, self.options))
            .await;
        let mut transaction = match began {
            Ok(transaction) => transaction,
            Err(error) => {
                let error = TenantError::Database(PgError::query("begin the transaction")(error));
                let healthy = !error.connection_lost();
                for place in work {
                    ended[place] = Some(Ended::Again(TenantError::Group(error.to_string())));
                }
                return (
                    ended.into_iter().map(Option::unwrap_or_else_none).collect(),
                    healthy,
                );
            }
        };
        let deferred = deferred_names(self.plan);
        // The previous tenant's savepoint is released when the next one opens (or by the
        // commit): a round trip per tenant less.
        let mut savepoint_open = false;
        let mut committed: Vec<(usize, Written, std::time::Duration)> = Vec::new();
        // Tenants whose whole write is one small statement go in several at a time, each
        // batch in one statement and one savepoint; a batch that fails is rolled back and its
        // tenants run alone, so a tenant's failure is still its own.
        let (batches, mut alone) = match self.gather(&mut transaction, reader, members, &work).await
        {
            Ok(gathered) => gathered,
            Err(error) => {
                // Nothing is written yet; the transaction may be unusable: everyone tries
                // again, alone.
                let reason = error.to_string();
                group_again(&mut ended, work.iter().copied(), &reason);
                drop(transaction);
                return (
                    ended.into_iter().map(Option::unwrap_or_else_none).collect(),
                    !error.connection_lost(),
                );
            }
        };
        for batch in batches {
            let places: Vec<usize> = batch.iter().map(|(place, _)| *place).collect();
            match self
                .batch(&mut transaction, members, batch, &mut savepoint_open)
                .await
            {
                Ok(done) => committed.extend(done),
                Err(None) => alone.extend(places),
                Err(Some(reason)) => {
                    // The connection may be gone: everyone in the group tries again, alone.
                    group_again(&mut ended, work.iter().copied(), &reason);
                    committed.clear();
                    alone.clear();
                    healthy = false;
                    break;
                }
            }
        }
        alone.sort_unstable();
        for (position, &place) in alone.iter().enumerate() {
            let member = members[place];
            let tenant = &self.plan.tenants[member.number];
            let started = Instant::now();
            self.reporter.tenant_started(
                &tenant.id,
                tenant.label.as_deref(),
                self.plan.rows_to_copy(tenant),
                member.attempts + 1,
            );
            let result = self
                .one(
                    &mut transaction,
                    reader,
                    member,
                    &deferred,
                    &mut savepoint_open,
                )
                .await;
            match result {
                Ok(written) => committed.push((place, written, started.elapsed())),
                Err(error) if error.connection_lost() => {
                    // Not a server's refusal: the connection may be gone. Everyone still in
                    // the group tries again, alone.
                    let reason = error.to_string();
                    ended[place] = Some(Ended::Again(error));
                    let rest = alone[position + 1..].iter().copied();
                    let committed = committed.drain(..).map(|(place, _, _)| place);
                    group_again(&mut ended, rest.chain(committed), &reason);
                    healthy = false;
                    break;
                }
                Err(error) if error.is_transient() => {
                    ended[place] = Some(Ended::Again(error));
                }
                Err(error) => {
                    let error = TenantRun::diagnose(
                        error,
                        self.plan,
                        member.number,
                        self.live_catalog,
                        &mut transaction,
                    )
                    .await;
                    ended[place] = Some(Ended::Failed(error, started.elapsed()));
                }
            }
        }
        if healthy {
            // The journal's rows of the tenants that got in, in the same transaction.
            let settled = match self.run {
                Some(run) => {
                    let ends = self.ends(members, &ended, &committed);
                    run.settle_in(&mut transaction, &ends).await
                }
                None => Ok(()),
            };
            // On failure, why, and whether the connection is still good.
            let outcome: Result<(), (String, bool)> = match settled {
                Ok(()) => transaction.commit().await.map_err(|error| {
                    (PgError::query("commit the group")(error).to_string(), false)
                }),
                Err(error) => {
                    let sound = error.sqlstate().is_some();
                    drop(transaction);
                    Err((error.to_string(), sound))
                }
            };
            match outcome {
                Ok(()) => {
                    for (place, written, elapsed) in committed {
                        ended[place] = Some(Ended::Done(written, elapsed));
                    }
                }
                Err((reason, sound)) => {
                    healthy = sound;
                    let committed = committed.into_iter().map(|(place, _, _)| place);
                    group_again(&mut ended, committed, &reason);
                }
            }
        } else {
            drop(transaction);
        }
        (
            ended.into_iter().map(Option::unwrap_or_else_none).collect(),
            healthy,
        )
    }

    /// The journal's end of each member that is done: settled without a statement
    /// (`ended`), or written in this transaction (`committed`).
    fn ends(
        &self,
        members: &[Member<'_>],
        ended: &[Option<Ended>],
        committed: &[(usize, Written, std::time::Duration)],
    ) -> Vec<salvage_journal::TenantEnd> {
        let settled = ended
            .iter()
            .enumerate()
            .filter_map(|(place, end)| match end {
                Some(Ended::Done(written, _)) => Some((place, written)),
                _ => None,
            });
        let written = committed
            .iter()
            .map(|(place, written, _)| (*place, written));
        settled
            .chain(written)
            .filter_map(|(place, written)| {
                let (position, attempt) = members[place].journal?;
                let mut rows = serde_json::Map::new();
                for (table, outcome) in self.plan.schema.tables.iter().zip(&written.tables) {
                    if outcome.inserted > 0 {
                        rows.insert(table.name.to_string(), outcome.inserted.into());
                    }
                }
                Some(salvage_journal::TenantEnd {
                    position,
                    attempt,
                    rows_inserted: written
                        .tables
                        .iter()
                        .map(|table| table.inserted)
                        .sum::<u64>() as i64,
                    rows_waiting: written.waiting.iter().map(Vec::len).sum::<usize>() as i64,
                    waiting_for: waiting_for(written),
                    rows: serde_json::Value::Object(rows).to_string(),
                })
            })
            .collect()
    }

    /// Where a member's undo images go, in a journaled run.
    fn images(&self, member: Member<'_>) -> Option<crate::ImageTarget> {
        self.run
            .zip(member.journal)
            .map(|(run, (position, _))| crate::ImageTarget {
                run_id: run.id.clone(),
                position,
                table: salvage_sql::images::ImageTable {
                    quoted: run.journal.row_images(),
                },
            })
    }

    /// The members of `work` (places in `members`) whose whole write is one small
    /// statement, in batches to write together, and the others (to run alone). Nothing is
    /// written; an error is a failed read of live.
    async fn gather(
        &self,
        transaction: &mut PgConnection,
        reader: &mut SnapshotReader,
        members: &[Member<'_>],
        work: &[usize],
    ) -> Result<(Vec<Vec<(usize, Gathered)>>, Vec<usize>), TenantError> {
        let mut alone = Vec::new();
        let mut batches: Vec<Vec<(usize, Gathered)>> = Vec::new();
        let mut rows = 0;
        // Tenants of a journaled run are recorded by their position: all of a batch have one.
        let journaled = self.run.is_some();
        for &place in work {
            let member = members[place];
            if member.retry.is_some() || member.journal.is_some() != journaled {
                alone.push(place);
                continue;
            }
            let images = self.images(member);
            let run = TenantRun {
                plan: self.plan,
                number: member.number,
                retry: None,
                live_catalog: self.live_catalog,
                connection: &mut *transaction,
                reader: &mut *reader,
                reporter: self.reporter,
                images: images.as_ref(),
            };
            let Some(gathered) = run.gather().await? else {
                alone.push(place);
                continue;
            };
            if !self.recordable(&gathered) {
                alone.push(place);
                continue;
            }
            let tenant_rows: usize = gathered.tables.iter().map(|table| table.rows.len()).sum();
            match batches.last_mut() {
                Some(batch) if rows + tenant_rows <= SMALL_ROWS => {
                    rows += tenant_rows;
                    batch.push((place, gathered));
                }
                _ => {
                    rows = tenant_rows;
                    batches.push(vec![(place, gathered)]);
                }
            }
        }
        // A batch of one is written as the tenant would be alone.
        batches.retain(|batch| {
            if let [(place, _)] = batch.as_slice() {
                alone.push(*place);
                false
            } else {
                true
            }
        });
        Ok((batches, alone))
    }

    /// Whether a gathered tenant's recorded rows can be matched with their images by key:
    /// each recorded table's key columns are among those written.
    fn recordable(&self, gathered: &Gathered) -> bool {
        gathered.tables.iter().all(|pending| {
            let table = &self.plan.schema.tables[pending.index];
            match (&table.key, pending.step) {
                (Some(key), Some(_)) => key
                    .columns
                    .iter()
                    .all(|column| pending.shape.written_names.contains(column)),
                _ => true,
            }
        })
    }

    /// Several tenants' rows in one statement, in a savepoint: each tenant done, or `Err`
    /// after the savepoint was rolled back (`None`: they can run alone; `Some(why)`: the
    /// connection may be gone).
    async fn batch(
        &self,
        transaction: &mut PgConnection,
        members: &[Member<'_>],
        batch: Vec<(usize, Gathered)>,
        savepoint_open: &mut bool,
    ) -> Result<Vec<(usize, Written, std::time::Duration)>, Option<String>> {
        let started = Instant::now();
        let plan = self.plan;
        for (place, _) in &batch {
            let member = members[*place];
            let tenant = &plan.tenants[member.number];
            self.reporter.tenant_started(
                &tenant.id,
                tenant.label.as_deref(),
                plan.rows_to_copy(tenant),
                member.attempts + 1,
            );
        }
        // Per table, in the order first met: the rows of every tenant, tagged with the
        // tenant's position and its step for the journal.
        let mut order: Vec<usize> = Vec::new();
        let mut rows: Vec<Vec<Row>> = vec![Vec::new(); plan.schema.tables.len()];
        let mut positions: Vec<Vec<i32>> = vec![Vec::new(); plan.schema.tables.len()];
        let mut steps: Vec<Vec<i32>> = vec![Vec::new(); plan.schema.tables.len()];
        let mut recorded = vec![false; plan.schema.tables.len()];
        let mut shapes: Vec<Option<&crate::rows::Shape>> = vec![None; plan.schema.tables.len()];
        let mut maxima: Maxima = BTreeMap::new();
        for (place, gathered) in &batch {
            let position = members[*place].journal.map_or(0, |(position, _)| position);
            for pending in &gathered.tables {
                let index = pending.index;
                if shapes[index].is_none() {
                    order.push(index);
                    shapes[index] = Some(&pending.shape);
                }
                rows[index].extend(pending.rows.iter().cloned());
                if let Some(step) = pending.step {
                    recorded[index] = true;
                    positions[index].extend(std::iter::repeat_n(position, pending.rows.len()));
                    steps[index].extend(std::iter::repeat_n(step, pending.rows.len()));
                }
            }
            for (name, &maximum) in &gathered.maxima {
                let entry = maxima.entry(name.clone()).or_insert(maximum);
                *entry = (*entry).max(maximum);
            }
        }
        let tables: Vec<Small<'_>> = order
            .iter()
            .filter_map(|&index| {
                Some(Small {
                    table: &plan.schema.tables[index],
                    shape: shapes[index]?,
                    rows: &rows[index],
                    record: if recorded[index] {
                        Record::Rows {
                            positions: &positions[index],
                            steps: &steps[index],
                        }
                    } else {
                        Record::No
                    },
                })
            })
            .collect();
        let sequences: Vec<(String, i64)> = maxima
            .iter()
            .map(|((_, quoted), maximum)| (quoted.clone(), *maximum))
            .collect();
        let images = self.run.map(|run| crate::ImageTarget {
            run_id: run.id.clone(),
            position: 0,
            table: salvage_sql::images::ImageTable {
                quoted: run.journal.row_images(),
            },
        });
        let deferred = deferred_names(plan);
        let open = session::open_tenant_savepoint(*savepoint_open, &deferred);
        if let Err(error) = transaction.execute(open.as_str()).await {
            let error = TenantError::Database(PgError::query("open the batch's savepoint")(error));
            return Err(Some(error.to_string()));
        }
        *savepoint_open = true;
        let written = insert_small(
            transaction,
            &tables,
            self.live_catalog,
            images.as_ref(),
            &sequences,
        )
        .await;
        let expected_records: u64 = tables
            .iter()
            .filter(|small| matches!(small.record, Record::Rows { .. }))
            .map(|small| small.rows.len() as u64)
            .sum();
        // What the batch wrote, or why its tenants run alone.
        let outcome: Result<_, String> = match written {
            Err(error) if error.connection_lost() => return Err(Some(error.to_string())),
            Err(error) => Err(error.to_string()),
            Ok(written) => {
                let all_in = tables
                    .iter()
                    .zip(&written.inserted)
                    .all(|(small, &inserted)| inserted == small.rows.len() as u64);
                if all_in && written.recorded == expected_records {
                    Ok(written)
                } else {
                    Err("the batch's statement wrote other counts than it was sent".to_owned())
                }
            }
        };
        let outcome = match outcome {
            // Checked now, in the batch's savepoint: a violation sends its tenants alone.
            Ok(written) if !deferred.is_empty() => match transaction
                .execute(session::constraints_now(&deferred).as_str())
                .await
            {
                Ok(_) => Ok(written),
                Err(error) => {
                    let error = TenantError::Database(PgError::query(
                        "check the deferred constraints",
                    )(error));
                    if error.connection_lost() {
                        return Err(Some(error.to_string()));
                    }
                    Err(error.to_string())
                }
            },
            outcome => outcome,
        };
        let written = match outcome {
            Ok(written) => written,
            Err(reason) => {
                tracing::debug!(
                    tenants = batch.len(),
                    reason = %reason,
                    "a batch of small tenants failed: its tenants run alone"
                );
                let rollback = format!("ROLLBACK TO SAVEPOINT {}", session::TENANT_SAVEPOINT);
                if let Err(error) = transaction.execute(rollback.as_str()).await {
                    let error = TenantError::Database(PgError::query("roll the batch back")(error));
                    return Err(Some(error.to_string()));
                }
                return Err(None);
            }
        };
        tracing::debug!(
            tenants = batch.len(),
            tables = tables.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "a batch of small tenants written"
        );
        let moved: BTreeMap<&str, i64> = maxima
            .keys()
            .zip(&written.sequences)
            .filter_map(|((name, _), value)| value.map(|value| (name.as_str(), value)))
            .collect();
        // Each tenant's share of the statement's time.
        let tenants = batch.len() as u32;
        let share = started.elapsed() / tenants;
        Ok(batch
            .into_iter()
            .map(|(place, gathered)| {
                let tenant = &plan.tenants[members[place].number];
                let sent: usize = gathered.tables.iter().map(|table| table.rows.len()).sum();
                self.reporter.rows_copied(&tenant.id, sent as u64);
                let mut written = gathered.written;
                written.batch = Some(tenants);
                written.sequences = gathered
                    .maxima
                    .keys()
                    .filter_map(|(name, _)| {
                        moved.get(name.as_str()).map(|value| (name.clone(), *value))
                    })
                    .collect();
                (place, written, share)
            })
            .collect())
    }

    /// One tenant in a savepoint of the group's transaction (`savepoint_open`: the previous
    /// tenant's is still there, to release first).
    async fn one(
        &self,
        transaction: &mut PgConnection,
        reader: &mut SnapshotReader,
        member: Member<'_>,
        deferred: &[(salvage_catalog::QualifiedName, String)],
        savepoint_open: &mut bool,
    ) -> Result<Written, TenantError> {
        let images = self.images(member);
        let open = session::open_tenant_savepoint(*savepoint_open, deferred);
        transaction
            .execute(open.as_str())
            .await
            .map_err(PgError::query("open the tenant's savepoint"))?;
        *savepoint_open = true;
        let run = TenantRun {
            plan: self.plan,
            number: member.number,
            retry: member.retry,
            live_catalog: self.live_catalog,
            connection: &mut *transaction,
            reader,
            reporter: self.reporter,
            images: images.as_ref(),
        };
        match run.run().await {
            Ok(written) => Ok(written),
            Err(error) => {
                let rollback = format!("ROLLBACK TO SAVEPOINT {}", session::TENANT_SAVEPOINT);
                let _ = transaction.execute(rollback.as_str()).await;
                Err(error)
            }
        }
    }
}

/// The group's transaction did not commit: the members at `places` try again, and so do
/// those settled without a statement, whose journal rows it was to write.
fn group_again(ended: &mut [Option<Ended>], places: impl IntoIterator<Item = usize>, reason: &str) {
    for place in places {
        ended[place] = Some(Ended::Again(TenantError::Group(reason.to_owned())));
    }
    settled_again(ended, reason);
}

/// The members settled without a statement try again (see [`group_again`]).
fn settled_again(ended: &mut [Option<Ended>], reason: &str) {
    for slot in ended {
        if matches!(slot, Some(Ended::Done(..))) {
            *slot = Some(Ended::Again(TenantError::Group(reason.to_owned())));
        }
    }
}

/// Every member has ended once the group has run.
trait Settled {
    fn unwrap_or_else_none(self) -> Ended;
}

impl Settled for Option<Ended> {
    fn unwrap_or_else_none(self) -> Ended {
        self.unwrap_or_else(|| {
            Ended::Again(TenantError::Group(
                "a tenant of the group was left unsettled".to_owned(),
            ))
        })
    }
}

/// The most parent keys kept per tenant of what its waiting rows wait for: past that, a rerun
/// plans the tenant again rather than probe them all.
const WAITING_KEYS_KEPT: usize = 10_000;

/// What a tenant's waiting rows wait for, as the journal keeps it (JSON); `None` when none
/// wait, when there are more keys than are kept, or when a key is not UTF-8 (a rerun then
/// plans the tenant again, as it would without the record).
fn waiting_for(written: &Written) -> Option<String> {
    let keys: usize = written.waiting_for.values().map(BTreeSet::len).sum();
    if keys == 0 || keys > WAITING_KEYS_KEPT {
        return None;
    }
    let mut parents = Vec::with_capacity(written.waiting_for.len());
    for ((table, columns), keys) in &written.waiting_for {
        let keys = keys
            .iter()
            .map(|key| std::str::from_utf8(key).ok().map(str::to_owned))
            .collect::<Option<Vec<String>>>()?;
        parents.push(salvage_journal::WaitingFor {
            schema: table.schema.clone(),
            table: table.name.clone(),
            columns: columns.clone(),
            keys,
        });
    }
    serde_json::to_string(&parents).ok()
}
