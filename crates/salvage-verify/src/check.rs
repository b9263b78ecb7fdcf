//! Checking every tenant, `jobs` at a time, each worker on its own connections.
//!
//! The rows checked for a tenant are the plan's rows of it and the rows the independent
//! check ([`crate::proof`]) reaches that the plan does not hold ("left behind"): every one of
//! them must be in live — equal, or reported as different — unless a parent it needs is not
//! there (waiting).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use rustc_hash::{FxHashMap, FxHashSet};
use salvage_catalog::{Catalog, QualifiedName};
use salvage_closure::{RestorePlan, TenantClosure};
use salvage_pg::{ConnectionRole, DatabaseUrl, OnFirstUse};
use salvage_plan::{Role, TablePlan};
use salvage_source::{Selected, Snapshot, SnapshotReader, TextRow};
use sqlx::postgres::PgConnection;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::compare::{ChunkComparison, ChunkResult, ParentKey};
use crate::left::{LeftBehind, left_behind, verified_keys};
use crate::matching::{Layout, match_rows};
use crate::model::{TableCheck, TenantCheck, VerifyReporter};
use crate::proof::{self, Reached};
use crate::{Error, Result};

/// Rows compared per statement.
const ROWS_PER_CHUNK: usize = 2_000;
/// Tenants checked together: their rows of a table go to live in shared statements.
const TENANTS_PER_BATCH: usize = 32;
/// A tenant's snapshot rows of a table up to this size are matched with its live rows on the
/// worker itself, not on rayon.
const INLINE_MATCH_BYTES: usize = 16 * 1024;
/// Examples kept per kind, table and tenant.
pub(crate) const EXAMPLES: usize = 3;

pub(crate) struct Context {
    pub(crate) plan: Arc<RestorePlan>,
    pub(crate) snapshot: Snapshot,
    pub(crate) target: DatabaseUrl,
    pub(crate) live_catalog: Arc<Catalog>,
    pub(crate) comparisons: Vec<Option<ChunkComparison>>,
    /// Per keyed table: where its columns are in snapshot and live rows.
    pub(crate) layouts: Vec<Option<Arc<Layout>>>,
    /// The chosen tenants' live rows of every owned table, read once.
    pub(crate) live_rows: Arc<Selected>,
    pub(crate) left: HashMap<usize, LeftBehind>,
    /// What the completeness check reached: chains of the rows a report names.
    pub(crate) reached: Reached,
    /// The keys, by the columns children reference them by, of every row verified: a row
    /// whose missing parent is one of them is missing too, not waiting for another tenant.
    pub(crate) verified_keys: HashMap<ParentKey, FxHashSet<Box<[u8]>>>,
    pub(crate) reporter: Arc<dyn VerifyReporter>,
    pub(crate) next: AtomicUsize,
}

/// The completeness check, running on its own: it reads only the snapshot, so it can go on
/// while the restore writes live. [`verify`] waits for it.
#[derive(Debug)]
pub struct Completeness {
    task: tokio::task::JoinHandle<Result<(HashMap<usize, LeftBehind>, Reached)>>,
}

/// The completeness check's first half, the independent walk of the tenants' chains, started
/// before the plan exists (it needs only the schema and the tenants): it then runs while the
/// plan reads, on a connection of its own, rather than while the restore writes.
#[derive(Debug)]
pub struct Reaching {
    ids: Vec<String>,
    task: Option<tokio::task::JoinHandle<Result<(Reached, SnapshotReader)>>>,
    started: std::time::Instant,
}

impl Reaching {
    /// Starts the walk from the roots `ids` (the tenants' IDs as the plan will name them).
    #[must_use]
    pub fn start(schema: salvage_plan::SchemaPlan, ids: Vec<String>, snapshot: Snapshot) -> Self {
        let walked = ids.clone();
        let task = tokio::spawn(
            async move { walk(&schema, &walked, &snapshot).await }
                .instrument(tracing::info_span!("completeness")),
        );
        Self {
            ids,
            task: Some(task),
            started: std::time::Instant::now(),
        }
    }

    /// The whole check of `plan`, from this walk — or from a walk of its own when the plan's
    /// tenants are not those walked.
    #[must_use]
    pub fn with_plan(mut self, plan: Arc<RestorePlan>, snapshot: Snapshot) -> Completeness {
        let same = plan.tenants.len() == self.ids.len()
            && plan
                .tenants
                .iter()
                .zip(&self.ids)
                .all(|(tenant, id)| tenant.id == *id);
        let (Some(task), true) = (self.task.take(), same) else {
            return Completeness::start(plan, snapshot);
        };
        let started = self.started;
        Completeness::spawn(plan, started, async move {
            match task.await {
                Ok(walked) => walked,
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            }
        })
    }
}

/// The walk from the roots `ids`, on a reader of its own (kept for the rows left behind).
async fn walk(
    schema: &salvage_plan::SchemaPlan,
    ids: &[String],
    snapshot: &Snapshot,
) -> Result<(Reached, SnapshotReader)> {
    let mut reader = snapshot.reader();
    let reached = proof::reach(schema, ids, &mut reader).await?;
    Ok((reached, reader))
}

impl Drop for Reaching {
    fn drop(&mut self) {
        // Not taken by a plan (the command ended first): nothing waits for it.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Completeness {
    /// Starts the check of `plan`'s tenants on `snapshot`, on a connection (or file handles)
    /// of its own.
    #[must_use]
    pub fn start(plan: Arc<RestorePlan>, snapshot: Snapshot) -> Self {
        let ids: Vec<String> = plan
            .tenants
            .iter()
            .map(|tenant| tenant.id.clone())
            .collect();
        let schema = Arc::clone(&plan);
        Self::spawn(plan, std::time::Instant::now(), async move {
            walk(&schema.schema, &ids, &snapshot).await
        })
    }

    /// The check: the walk `reaching`, then the rows it reached that the plan does not hold.
    fn spawn(
        plan: Arc<RestorePlan>,
        started: std::time::Instant,
        reaching: impl Future<Output = Result<(Reached, SnapshotReader)>> + Send + 'static,
    ) -> Self {
        let task = tokio::spawn(
            async move {
                let (reached, mut reader) = reaching.await?;
                let left = left_behind(&plan, &reached, &mut reader).await?;
                tracing::info!(
                    tables = reached.tables.len(),
                    left_behind = left
                        .values()
                        .map(|left| left.rows.iter().map(Vec::len).sum::<usize>()
                            + left.values.iter().map(Vec::len).sum::<usize>())
                        .sum::<usize>(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "the independent check reached the tenants' rows"
                );
                Ok((left, reached))
            }
            .instrument(tracing::info_span!("completeness")),
        );
        Self { task }
    }

    async fn finish(self) -> Result<(HashMap<usize, LeftBehind>, Reached)> {
        match self.task.await {
            Ok(left) => left,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}

/// Verifies every tenant of the plan; one check per tenant, in plan order. `completeness`
/// is the check started for the same plan (see [`Completeness::start`]).
pub async fn verify(
    plan: Arc<RestorePlan>,
    snapshot: Snapshot,
    target: DatabaseUrl,
    live_catalog: Arc<Catalog>,
    jobs: usize,
    reporter: Arc<dyn VerifyReporter>,
    completeness: Completeness,
) -> Result<Vec<TenantCheck>> {
    let mut comparisons = Vec::with_capacity(plan.schema.tables.len());
    let mut layouts = Vec::with_capacity(plan.schema.tables.len());
    for table in &plan.schema.tables {
        let checked = table.in_live && table.in_snapshot;
        comparisons.push(match (&table.key, checked) {
            (Some(_), true) => Some(ChunkComparison::new(table, &live_catalog, &plan.by_value)?),
            _ => None,
        });
        layouts.push(match (&table.key, checked) {
            (Some(_), true) => Some(Arc::new(Layout::new(table).ok_or_else(|| {
                Error::Inconsistent(format!("{}: its key is not among its columns", table.name))
            })?)),
            _ => None,
        });
    }
    let live_rows = read_live(&plan, &target, &live_catalog, &layouts).await?;
    let (left, reached) = completeness.finish().await?;
    let verified_keys = verified_keys(&plan, &comparisons, &left)?;
    let context = Arc::new(Context {
        plan: Arc::clone(&plan),
        snapshot,
        target,
        live_catalog,
        comparisons,
        layouts,
        live_rows: Arc::new(live_rows),
        left,
        reached,
        verified_keys,
        reporter,
        next: AtomicUsize::new(0),
    });
    let mut workers = JoinSet::new();
    for worker in 0..jobs.clamp(1, plan.tenants.len().div_ceil(TENANTS_PER_BATCH).max(1)) {
        let context = Arc::clone(&context);
        workers.spawn(
            async move { context.work().await }.instrument(tracing::info_span!("verifier", worker)),
        );
    }
    let mut checks = Vec::with_capacity(plan.tenants.len());
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(finished) => checks.extend(finished?),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    checks.sort_by_key(|(index, _)| *index);
    Ok(checks.into_iter().map(|(_, check)| check).collect())
}

/// The chosen tenants' live rows of every owned table, by the membership rule: the written
/// and key columns of keyed tables, the written columns of the others.
async fn read_live(
    plan: &RestorePlan,
    target: &DatabaseUrl,
    live_catalog: &Catalog,
    layouts: &[Option<Arc<Layout>>],
) -> Result<Selected> {
    let started = std::time::Instant::now();
    let ids: Vec<String> = plan
        .tenants
        .iter()
        .map(|tenant| tenant.id.clone())
        .collect();
    let columns: HashMap<QualifiedName, Vec<String>> = plan
        .schema
        .tables
        .iter()
        .zip(layouts)
        .map(|(table, layout)| {
            let columns = match layout {
                Some(layout) => layout.live_columns.clone(),
                None => table
                    .written_columns()
                    .map(|column| column.name.clone())
                    .collect(),
            };
            (table.name.clone(), columns)
        })
        .collect();
    // Every table of the plan has an entry: the map was built from them all.
    let keep = |table: &TablePlan| columns.get(&table.name).cloned().unwrap_or_default();
    let mut connection = salvage_pg::connect(target, ConnectionRole::ReadOnly).await?;
    // Nothing else runs while verification reads live: large key sets are read in halves on
    // a second connection at the same time.
    let mut second = OnFirstUse::new(target.clone(), ConnectionRole::ReadOnly);
    let rows = salvage_source::read_members(
        (&mut connection, Some(&mut second)),
        live_catalog,
        &plan.schema,
        &ids,
        &keep,
        "live",
        salvage_source::Reading::ByParentKeys,
    )
    .await;
    salvage_pg::close(connection).await;
    second.close().await;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read the chosen tenants' live rows"
    );
    Ok(rows?)
}

/// The keys of the verified rows (the plan's, and those left behind) by which the
impl Context {
    /// Compares a chunk, telling the comparison which parents are verified rows.
    async fn compare(
        &self,
        comparison: &ChunkComparison,
        connection: &mut PgConnection,
        rows: &[(usize, TextRow)],
    ) -> Result<Vec<(usize, ChunkResult)>> {
        let parents = comparison.parents();
        let expected = |number: usize, key: &[u8]| {
            self.verified_keys
                .get(&parents[number].0)
                .is_some_and(|keys| keys.contains(key))
        };
        comparison.run(connection, rows, &expected).await
    }

    /// Takes batches of tenants until none are left.
    async fn work(&self) -> Result<Vec<(usize, TenantCheck)>> {
        // Opened by the first statement: a batch whose rows all match on the client needs none.
        let mut connection = OnFirstUse::new(self.target.clone(), ConnectionRole::ReadOnly);
        let mut reader = self.snapshot.reader();
        let mut done = Vec::new();
        let tenants = self.plan.tenants.len();
        loop {
            let start = self.next.fetch_add(1, Ordering::SeqCst) * TENANTS_PER_BATCH;
            if start >= tenants {
                break;
            }
            let indexes: Vec<usize> = (start..tenants.min(start + TENANTS_PER_BATCH)).collect();
            let mut checks: Vec<TenantCheck> = indexes
                .iter()
                .map(|&index| {
                    let tenant = &self.plan.tenants[index];
                    TenantCheck {
                        tenant: tenant.id.clone(),
                        label: tenant.label.clone(),
                        tables: vec![None; self.plan.schema.tables.len()],
                        error: None,
                        mode_problems: Vec::new(),
                    }
                })
                .collect();
            let span = tracing::info_span!("batch", first = start, tenants = indexes.len());
            if let Err(error) = self
                .check_batch(&indexes, &mut checks, &mut connection, &mut reader)
                .instrument(span)
                .await
            {
                for check in &mut checks {
                    check.error = Some(error.to_string());
                }
            }
            for (index, mut check) in indexes.into_iter().zip(checks) {
                let left_alone: Vec<u64> = self.plan.tenants[index]
                    .tables
                    .iter()
                    .map(|counts| counts.left_alone)
                    .collect();
                check.check_mode(self.plan.mode, &self.plan.schema.tables, &left_alone);
                self.reporter.tenant_checked(&check);
                done.push((index, check));
            }
        }
        connection.close().await;
        Ok(done)
    }

    /// Checks a batch of tenants table by table; keyed tables are compared for the whole
    /// batch in shared statements, grouped by tenant (the plan's rows of tenant `p` as `p`,
    /// the rows it left behind as `batch + p`).
    async fn check_batch(
        &self,
        indexes: &[usize],
        checks: &mut [TenantCheck],
        connection: &mut OnFirstUse,
        reader: &mut SnapshotReader,
    ) -> Result<()> {
        let plan = &self.plan;
        let batch = indexes.len();
        for (table_index, table) in plan.schema.tables.iter().enumerate() {
            if !table.in_live || !table.in_snapshot {
                continue;
            }
            let Some(comparison) = &self.comparisons[table_index] else {
                let found = self
                    .check_multisets(table_index, indexes, connection, reader)
                    .await?;
                for (check, found) in checks.iter_mut().zip(found) {
                    check.tables[table_index] = found;
                }
                continue;
            };
            let left = self.left.get(&table_index);
            let mut table_checks: Vec<Option<TableCheck>> = vec![None; batch * 2];
            let mut live_counts: Vec<Option<u64>> = vec![None; batch];
            // The left-behind rows by (position, key text), for the chains of examples.
            let mut left_by_key: FxHashMap<(usize, String), &[u8]> = FxHashMap::default();
            let mut unsettled: Vec<(usize, TextRow)> = Vec::with_capacity(ROWS_PER_CHUNK);
            for (position, &index) in indexes.iter().enumerate() {
                let tenant = &plan.tenants[index];
                let snapshot = self
                    .snapshot_rows(table_index, index, tenant, reader)
                    .await?;
                let left_rows: Vec<&Vec<u8>> = left
                    .map(|left| left.rows[index].iter().collect())
                    .unwrap_or_default();
                if snapshot.is_none() && left_rows.is_empty() && table.role == Role::Shared {
                    continue;
                }
                for slot in [position, batch + position] {
                    table_checks[slot] = Some(TableCheck {
                        table: Some(table.name.clone()),
                        ..TableCheck::default()
                    });
                }
                let mut parts: Vec<(usize, Vec<Bytes>)> =
                    vec![(position, snapshot.unwrap_or_default())];
                if !left_rows.is_empty() {
                    let mut data = Vec::new();
                    for row in &left_rows {
                        data.extend_from_slice(row);
                        data.push(b'\n');
                        let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                        let key = key_text(table, &fields);
                        left_by_key.insert((position, key), row.as_slice());
                    }
                    parts.push((batch + position, vec![Bytes::from(data)]));
                }
                for (slot, rows) in parts {
                    let snapshot_bytes: usize = rows.iter().map(Bytes::len).sum();
                    let (read, equal, live) = if let Some(layout) = &self.layouts[table_index]
                        .clone()
                        .filter(|_| table.role != Role::Shared)
                    {
                        let layout = Arc::clone(layout);
                        let live_rows = Arc::clone(&self.live_rows);
                        let name = table.name.clone();
                        let work = move || {
                            let live = match live_rows.table(&name) {
                                Some(kept) => kept.all_rows(index)?,
                                None => Vec::new(),
                            };
                            Ok::<_, salvage_source::Error>(match_rows(&layout, &rows, &live))
                        };
                        // A few rows are matched in less time than a hop to rayon and back.
                        let matched = if snapshot_bytes < INLINE_MATCH_BYTES {
                            work()?
                        } else {
                            salvage_source::on_rayon(work).await??
                        };
                        for row in matched.unsettled {
                            unsettled.push((slot, row));
                            if unsettled.len() >= ROWS_PER_CHUNK {
                                apply(
                                    self.compare(comparison, connection.get().await?, &unsettled)
                                        .await?,
                                    &mut table_checks,
                                );
                                unsettled.clear();
                            }
                        }
                        (matched.snapshot, matched.equal, Some(matched.live))
                    } else {
                        let mut read = 0;
                        for chunk in &rows {
                            for line in salvage_source::rows_of(chunk) {
                                unsettled.push((
                                    slot,
                                    salvage_copy::fields(line)
                                        .map(salvage_copy::decode_text)
                                        .collect(),
                                ));
                                read += 1;
                            }
                            if unsettled.len() >= ROWS_PER_CHUNK {
                                apply(
                                    self.compare(comparison, connection.get().await?, &unsettled)
                                        .await?,
                                    &mut table_checks,
                                );
                                unsettled.clear();
                            }
                        }
                        (read, 0, None)
                    };
                    if let Some(check) = table_checks[slot].as_mut() {
                        check.snapshot += read;
                        check.equal += equal;
                    }
                    if slot == position {
                        live_counts[position] = live;
                    }
                }
            }
            if !unsettled.is_empty() {
                apply(
                    self.compare(comparison, connection.get().await?, &unsettled)
                        .await?,
                    &mut table_checks,
                );
            }
            for position in 0..batch {
                let (Some(mut check), extra) = (
                    table_checks[position].take(),
                    table_checks[batch + position].take(),
                ) else {
                    continue;
                };
                if let Some(extra) = extra {
                    check.snapshot += extra.snapshot;
                    check.equal += extra.equal;
                    check.different += extra.different;
                    check.waiting += extra.waiting;
                    check.missing += extra.missing;
                    check.left_behind += extra.missing;
                    let mut examples: Vec<String> = Vec::new();
                    for key in &extra.missing_examples {
                        let chain = match left_by_key.get(&(position, key.clone())) {
                            Some(row) => {
                                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                                let field = |column: &str| {
                                    let place = table.column_index(column)?;
                                    fields.get(place).map(|field| field.to_vec())
                                };
                                self.reached
                                    .chain(
                                        &plan.schema,
                                        reader,
                                        table_index,
                                        &field,
                                        indexes[position] as u32,
                                    )
                                    .await?
                            }
                            None => String::new(),
                        };
                        examples.push(format!(
                            "({})=({key}) left behind: {chain}",
                            key_names(table)
                        ));
                    }
                    examples.extend(
                        check
                            .missing_examples
                            .iter()
                            .map(|key| format!("({})=({key})", key_names(table))),
                    );
                    examples.truncate(EXAMPLES);
                    check.missing_examples = examples;
                    extend_examples(&mut check.different_examples, extra.different_examples);
                } else {
                    check.missing_examples = check
                        .missing_examples
                        .iter()
                        .map(|key| format!("({})=({key})", key_names(table)))
                        .collect();
                }
                check.different_examples = check
                    .different_examples
                    .iter()
                    .map(|key| {
                        if key.starts_with('(') {
                            key.clone()
                        } else {
                            format!("({})=({key})", key_names(table))
                        }
                    })
                    .collect();
                if let Some(live) = live_counts[position] {
                    check.live_only = Some(live.saturating_sub(check.equal + check.different));
                }
                checks[position].tables[table_index] = Some(check);
            }
        }
        Ok(())
    }

    /// The snapshot rows of a tenant to check in a table: its rows the plan holds, or the
    /// shared rows the restore added for it. `None` when there are none.
    pub(crate) async fn snapshot_rows(
        &self,
        table_index: usize,
        number: usize,
        tenant: &TenantClosure,
        reader: &mut SnapshotReader,
    ) -> Result<Option<Vec<Bytes>>> {
        let plan = &self.plan;
        let table = &plan.schema.tables[table_index];
        Ok(match table.role {
            Role::Shared => match (
                tenant.shared_rows.get(&table_index),
                plan.shared_key_columns.get(&table_index),
            ) {
                (Some(keys), Some(key_columns)) if !keys.is_empty() => {
                    let mut stream = reader.copy_by_keys(table, key_columns, keys).await?;
                    let mut chunks = Vec::new();
                    while let Some(chunk) = stream.next().await {
                        chunks.push(chunk?);
                    }
                    Some(chunks)
                }
                _ => None,
            },
            Role::Root | Role::Owned => match plan.selected.table(&table.name) {
                Some(kept) if kept.total(number) > 0 => Some(kept.all_rows(number)?),
                _ => None,
            },
        })
    }
}

/// `id, payment_date` — the key's column names, for examples.
fn key_names(table: &TablePlan) -> String {
    table
        .key
        .as_ref()
        .map_or_else(String::new, |key| key.columns.join(", "))
}

/// The key's values as the comparison shows them: decoded, joined by `, `.
fn key_text(table: &TablePlan, fields: &[&[u8]]) -> String {
    table
        .key
        .iter()
        .flat_map(|key| &key.columns)
        .filter_map(|column| table.column_index(column))
        .map(|place| {
            fields
                .get(place)
                .and_then(|field| salvage_copy::decode_text(field))
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds a comparison's results to the checks of the batch's tenants.
fn apply(results: Vec<(usize, ChunkResult)>, checks: &mut [Option<TableCheck>]) {
    for (position, result) in results {
        let Some(Some(check)) = checks.get_mut(position) else {
            continue;
        };
        check.missing += result.missing;
        check.equal += result.equal;
        check.different += result.different;
        check.waiting += result.waiting;
        extend_examples(&mut check.missing_examples, result.missing_examples);
        extend_examples(&mut check.different_examples, result.different_examples);
    }
}

fn extend_examples(examples: &mut Vec<String>, more: Vec<String>) {
    let room = EXAMPLES.saturating_sub(examples.len());
    examples.extend(more.into_iter().take(room));
}
