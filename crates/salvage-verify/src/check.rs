//! Checking every tenant, `jobs` at a time, each worker on its own connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_closure::{Multiset, RestorePlan, TenantClosure};
use salvage_pg::{ConnectionRole, DatabaseUrl, Params};
use salvage_plan::{Role, TablePlan};
use salvage_source::sql::owned_select;
use salvage_source::{KeptRows, RowStream, Snapshot, SnapshotReader, Tenants, TextRow};
use serde::Serialize;
use sqlx::postgres::PgConnection;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::Result;
use crate::compare::ChunkComparison;
use crate::matching::{Layout, match_rows};

/// Rows compared per statement.
const ROWS_PER_CHUNK: usize = 2_000;
/// Tenants checked together: their rows of a table go to live in shared statements.
const TENANTS_PER_BATCH: usize = 32;

/// One table of one tenant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableCheck {
    pub table: Option<QualifiedName>,
    /// The tenant's rows in the snapshot (shared tables: the rows the restore adds).
    pub snapshot: u64,
    /// Present in live with the same values.
    pub equal: u64,
    /// Present in live with other values (kept, in mode `missing`).
    pub different: u64,
    /// In the snapshot, not in live: verification fails.
    pub missing: u64,
    /// The tenant's live rows the snapshot does not have (written after it).
    pub live_only: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_examples: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub different_examples: Vec<String>,
    /// In the snapshot, not in live, because a parent row of another tenant is not in live
    /// yet: restored with that tenant ("both ends present").
    #[serde(skip_serializing_if = "is_zero")]
    pub waiting: u64,
    /// The table has no key: rows were compared as a multiset (duplicates count).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub multiset: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantCheck {
    pub tenant: String,
    pub label: Option<String>,
    /// Aligned with the plan's tables; `None` for tables not checked.
    pub tables: Vec<Option<TableCheck>>,
    /// The check itself could not run.
    pub error: Option<String>,
}

impl TenantCheck {
    #[must_use]
    pub fn missing(&self) -> u64 {
        self.tables
            .iter()
            .flatten()
            .map(|table| table.missing)
            .sum()
    }

    #[must_use]
    pub fn different(&self) -> u64 {
        self.tables
            .iter()
            .flatten()
            .map(|table| table.different)
            .sum()
    }

    /// Every snapshot key is in live.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.missing() == 0
    }
}

pub trait VerifyReporter: Send + Sync {
    fn tenant_checked(&self, check: &TenantCheck);
}

struct Context {
    plan: Arc<RestorePlan>,
    snapshot: Snapshot,
    target: DatabaseUrl,
    live_catalog: Arc<Catalog>,
    comparisons: Vec<Option<ChunkComparison>>,
    /// Per keyed owned table (and the root): where its columns are, and every chosen
    /// tenant's live rows, read once before the tenants are checked.
    live_rows: Vec<Option<(Arc<Layout>, Arc<KeptRows>)>>,
    reporter: Arc<dyn VerifyReporter>,
    next: AtomicUsize,
}

/// Verifies every tenant of the plan; one check per tenant, in plan order.
pub async fn verify(
    plan: Arc<RestorePlan>,
    snapshot: Snapshot,
    target: DatabaseUrl,
    live_catalog: Arc<Catalog>,
    jobs: usize,
    reporter: Arc<dyn VerifyReporter>,
) -> Result<Vec<TenantCheck>> {
    let comparisons: Vec<Option<ChunkComparison>> = plan
        .schema
        .tables
        .iter()
        .map(|table| ChunkComparison::new(table, &live_catalog, &plan.by_value))
        .collect();
    let live_rows = read_live_rows(&plan, &target, &live_catalog, &comparisons, jobs).await?;
    let context = Arc::new(Context {
        plan: Arc::clone(&plan),
        snapshot,
        target,
        live_catalog,
        comparisons,
        live_rows,
        reporter,
        next: AtomicUsize::new(0),
    });
    let mut workers = JoinSet::new();
    for worker in 0..jobs.clamp(1, plan.tenants.len().max(1)) {
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

impl Context {
    /// Takes batches of tenants until none are left.
    async fn work(&self) -> Result<Vec<(usize, TenantCheck)>> {
        let mut connection = salvage_pg::connect(&self.target, ConnectionRole::ReadOnly).await?;
        let mut reader = self.snapshot.reader().await?;
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
            for (index, check) in indexes.into_iter().zip(checks) {
                self.reporter.tenant_checked(&check);
                done.push((index, check));
            }
        }
        salvage_pg::close(connection).await;
        Ok(done)
    }

    /// Checks a batch of tenants table by table; keyed tables are compared for the whole
    /// batch in shared statements, grouped by tenant.
    async fn check_batch(
        &self,
        indexes: &[usize],
        checks: &mut [TenantCheck],
        connection: &mut PgConnection,
        reader: &mut SnapshotReader,
    ) -> Result<()> {
        let plan = &self.plan;
        for (table_index, table) in plan.schema.tables.iter().enumerate() {
            if !table.in_live || !table.in_snapshot {
                continue;
            }
            let Some(comparison) = &self.comparisons[table_index] else {
                for (position, &index) in indexes.iter().enumerate() {
                    checks[position].tables[table_index] = self
                        .check_multiset(table_index, index, connection, reader)
                        .await?;
                }
                continue;
            };
            let mut table_checks: Vec<Option<TableCheck>> = vec![None; indexes.len()];
            let mut live_counts: Vec<Option<u64>> = vec![None; indexes.len()];
            let mut unsettled: Vec<(usize, TextRow)> = Vec::with_capacity(ROWS_PER_CHUNK);
            for (position, &index) in indexes.iter().enumerate() {
                let tenant = &plan.tenants[index];
                let mut rows = match self.snapshot_rows(table_index, tenant, reader).await? {
                    Some(rows) => rows,
                    None if table.role == Role::Shared => continue,
                    None => futures_util::stream::empty().boxed(),
                };
                table_checks[position] = Some(TableCheck {
                    table: Some(table.name.clone()),
                    ..TableCheck::default()
                });
                // Counted here; the typed comparison adds its results as its chunks run.
                let (mut read, mut equal) = (0, 0);
                if let Some((layout, live)) = &self.live_rows[table_index] {
                    let mut snapshot = Vec::new();
                    while let Some(data) = rows.next().await {
                        snapshot.push(data?);
                    }
                    let (layout, live) = (Arc::clone(layout), Arc::clone(live));
                    let matched = salvage_source::on_rayon(move || {
                        live.tenant_rows(index)
                            .map(|live| match_rows(&layout, &snapshot, &live))
                    })
                    .await??;
                    (read, equal) = (matched.snapshot, matched.equal);
                    live_counts[position] = Some(matched.live);
                    for row in matched.unsettled {
                        unsettled.push((position, row));
                        if unsettled.len() >= ROWS_PER_CHUNK {
                            let results = comparison.run(connection, &unsettled).await?;
                            apply(results, &mut table_checks);
                            unsettled.clear();
                        }
                    }
                } else {
                    while let Some(data) = rows.next().await {
                        let data = data?;
                        for line in salvage_source::rows_of(&data) {
                            unsettled.push((
                                position,
                                salvage_copy::fields(line)
                                    .map(salvage_copy::decode_text)
                                    .collect(),
                            ));
                            read += 1;
                        }
                        if unsettled.len() >= ROWS_PER_CHUNK {
                            let results = comparison.run(connection, &unsettled).await?;
                            apply(results, &mut table_checks);
                            unsettled.clear();
                        }
                    }
                }
                if let Some(check) = table_checks[position].as_mut() {
                    check.snapshot += read;
                    check.equal += equal;
                }
            }
            if !unsettled.is_empty() {
                apply(
                    comparison.run(connection, &unsettled).await?,
                    &mut table_checks,
                );
            }
            for (check, live) in table_checks.iter_mut().zip(&live_counts) {
                if let (Some(check), Some(live)) = (check, live) {
                    check.live_only = Some(live.saturating_sub(check.equal + check.different));
                }
            }
            for (position, check) in table_checks.into_iter().enumerate() {
                checks[position].tables[table_index] = check;
            }
        }
        Ok(())
    }

    /// The snapshot rows of a tenant to check in a table: its owned rows, or the shared rows
    /// the restore added for it. `None` when there are none.
    async fn snapshot_rows<'r>(
        &self,
        table_index: usize,
        tenant: &TenantClosure,
        reader: &'r mut SnapshotReader,
    ) -> Result<Option<RowStream<'r>>> {
        let plan = &self.plan;
        let table = &plan.schema.tables[table_index];
        Ok(match table.role {
            Role::Shared => match (
                tenant.shared_rows.get(&table_index),
                plan.shared_key_columns.get(&table_index),
            ) {
                (Some(keys), Some(key_columns)) if !keys.is_empty() => {
                    Some(reader.copy_by_keys(table, key_columns, keys).await?)
                }
                _ => None,
            },
            Role::Root | Role::Owned if tenant.tables[table_index].snapshot > 0 => {
                Some(reader.copy_owned(table, &tenant.id).await?)
            }
            Role::Root | Role::Owned => None,
        })
    }

    /// One keyless table of one tenant, compared as multisets.
    async fn check_multiset(
        &self,
        table_index: usize,
        index: usize,
        connection: &mut PgConnection,
        reader: &mut SnapshotReader,
    ) -> Result<Option<TableCheck>> {
        let table = &self.plan.schema.tables[table_index];
        let tenant = &self.plan.tenants[index];
        let rows = match self.snapshot_rows(table_index, tenant, reader).await? {
            Some(mut rows) => {
                let mut decoded = Vec::new();
                while let Some(data) = rows.next().await {
                    let data = data?;
                    for line in salvage_source::rows_of(&data) {
                        decoded.push(
                            salvage_copy::fields(line)
                                .map(salvage_copy::decode_text)
                                .collect(),
                        );
                    }
                }
                decoded
            }
            None if table.role == Role::Shared => return Ok(None),
            None => Vec::new(),
        };
        let mut check = TableCheck {
            table: Some(table.name.clone()),
            ..TableCheck::default()
        };
        self.compare_multiset(table, tenant, rows, connection, &mut check)
            .await?;
        Ok(Some(check))
    }

    /// A keyless table: the tenant's snapshot rows against its live rows, as multisets.
    async fn compare_multiset(
        &self,
        table: &TablePlan,
        tenant: &TenantClosure,
        rows: Vec<Vec<Option<String>>>,
        connection: &mut PgConnection,
        check: &mut TableCheck,
    ) -> Result<()> {
        check.multiset = true;
        check.snapshot = rows.len() as u64;
        let Some(multiset) = Multiset::new(table, &self.live_catalog, &self.plan.by_value) else {
            return Ok(());
        };
        let written = multiset.column_names();
        let mut params = Params::default();
        let live = if table.role == Role::Shared {
            self.live_catalog.from_item(&table.name)
        } else {
            let select = owned_select(
                &self.live_catalog,
                &self.plan.schema,
                table,
                &written,
                false,
                Tenants::One(&tenant.id),
                &mut params,
            )?;
            format!("({select})")
        };
        let sql = multiset.totals(&multiset.from_arrays(params.values.len() + 1), &live);
        let mut query = sqlx::query_as::<_, (i64, i64, i64)>(&sql);
        for value in &params.values {
            query = query.bind(value);
        }
        for name in &written {
            let position = table.column_index(name).unwrap_or(0);
            let values: Vec<Option<String>> = rows
                .iter()
                .map(|row| row.get(position).cloned().flatten())
                .collect();
            query = query.bind(values);
        }
        let (matched, missing, extra) =
            query
                .fetch_one(&mut *connection)
                .await
                .map_err(salvage_pg::Error::query(format!(
                    "compare {}'s rows with live",
                    table.name
                )))?;
        check.equal = matched as u64;
        check.missing = missing as u64;
        check.live_only = (table.role != Role::Shared).then_some(extra as u64);
        Ok(())
    }
}

/// Every chosen tenant's live rows of each keyed table the comparison covers (owned tables
/// and the root), one tagged COPY per table, on up to `jobs` connections: with them most
/// rows are settled by their text, without a statement per chunk of rows.
async fn read_live_rows(
    plan: &RestorePlan,
    target: &DatabaseUrl,
    live_catalog: &Catalog,
    comparisons: &[Option<ChunkComparison>],
    jobs: usize,
) -> Result<Vec<Option<(Arc<Layout>, Arc<KeptRows>)>>> {
    let mut wanted = Vec::new();
    for (index, (table, comparison)) in plan.schema.tables.iter().zip(comparisons).enumerate() {
        if table.in_live && table.in_snapshot && table.role != Role::Shared && comparison.is_some()
        {
            if let Some(layout) = Layout::new(table) {
                wanted.push((index, layout));
            }
        }
    }
    let ids: Vec<String> = plan
        .tenants
        .iter()
        .map(|tenant| tenant.id.clone())
        .collect();
    let started = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let queue = &wanted;
    let readers = (0..jobs.clamp(1, queue.len().max(1))).map(|_| async {
        let mut read = Vec::new();
        if next.load(Ordering::SeqCst) >= queue.len() {
            return Ok(read);
        }
        let mut connection = salvage_pg::connect(target, ConnectionRole::ReadOnly).await?;
        while let Some((index, layout)) = queue.get(next.fetch_add(1, Ordering::SeqCst)) {
            let table = &plan.schema.tables[*index];
            let started = std::time::Instant::now();
            let rows = KeptRows::read(
                &mut connection,
                live_catalog,
                &plan.schema,
                table,
                &layout.live_columns,
                &ids,
            )
            .await?;
            tracing::debug!(table = %table.name, elapsed_ms = started.elapsed().as_millis() as u64, "read live rows");
            read.push((*index, rows));
        }
        salvage_pg::close(connection).await;
        Ok::<_, crate::Error>(read)
    });
    let read: Vec<(usize, KeptRows)> = futures_util::future::try_join_all(readers)
        .await?
        .into_iter()
        .flatten()
        .collect();
    tracing::info!(
        tables = read.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read the chosen tenants' live rows"
    );
    let mut live_rows: Vec<Option<(Arc<Layout>, Arc<KeptRows>)>> =
        (0..plan.schema.tables.len()).map(|_| None).collect();
    let mut layouts: HashMap<usize, Layout> = wanted.into_iter().collect();
    for (index, rows) in read {
        if let Some(layout) = layouts.remove(&index) {
            live_rows[index] = Some((Arc::new(layout), Arc::new(rows)));
        }
    }
    Ok(live_rows)
}

/// Adds a comparison's results to the checks of the batch's tenants.
fn apply(results: Vec<(usize, crate::compare::ChunkResult)>, checks: &mut [Option<TableCheck>]) {
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
    const KEPT: usize = 3;
    let room = KEPT.saturating_sub(examples.len());
    examples.extend(more.into_iter().take(room));
}
