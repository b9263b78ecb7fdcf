//! Checking every tenant, `jobs` at a time, each worker on its own connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_closure::{Multiset, RestorePlan, TenantClosure};
use salvage_pg::{ConnectionRole, DatabaseUrl, Params};
use salvage_plan::{Role, TablePlan};
use salvage_source::sql::owned_select;
use salvage_source::{RowStream, Snapshot, SnapshotReader, Tenants};
use serde::Serialize;
use sqlx::postgres::PgConnection;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::Result;
use crate::compare::ChunkComparison;

/// Rows compared per statement.
const ROWS_PER_CHUNK: usize = 2_000;

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
    let comparisons = plan
        .schema
        .tables
        .iter()
        .map(|table| ChunkComparison::new(table, &live_catalog, &plan.by_value))
        .collect();
    let context = Arc::new(Context {
        plan: Arc::clone(&plan),
        snapshot,
        target,
        live_catalog,
        comparisons,
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
    async fn work(&self) -> Result<Vec<(usize, TenantCheck)>> {
        let mut connection = salvage_pg::connect(&self.target, ConnectionRole::ReadOnly).await?;
        let mut reader = self.snapshot.reader().await?;
        let mut checks = Vec::new();
        loop {
            let index = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(tenant) = self.plan.tenants.get(index) else {
                break;
            };
            let mut check = TenantCheck {
                tenant: tenant.id.clone(),
                label: tenant.label.clone(),
                tables: vec![None; self.plan.schema.tables.len()],
                error: None,
            };
            let span = tracing::info_span!("tenant", id = %tenant.id);
            if let Err(error) = self
                .check_tenant(tenant, &mut connection, &mut reader, &mut check)
                .instrument(span)
                .await
            {
                check.error = Some(error.to_string());
            }
            self.reporter.tenant_checked(&check);
            checks.push((index, check));
        }
        salvage_pg::close(connection).await;
        Ok(checks)
    }

    async fn check_tenant(
        &self,
        tenant: &TenantClosure,
        connection: &mut PgConnection,
        reader: &mut SnapshotReader,
        check: &mut TenantCheck,
    ) -> Result<()> {
        let plan = &self.plan;
        for (index, table) in plan.schema.tables.iter().enumerate() {
            if !table.in_live || !table.in_snapshot {
                continue;
            }
            let mut table_check = TableCheck {
                table: Some(table.name.clone()),
                ..TableCheck::default()
            };
            let rows: Option<RowStream<'_>> = match table.role {
                Role::Shared => match (
                    tenant.shared_rows.get(&index),
                    plan.shared_key_columns.get(&index),
                ) {
                    (Some(keys), Some(key_columns)) if !keys.is_empty() => {
                        Some(reader.copy_by_keys(table, key_columns, keys).await?)
                    }
                    _ => continue,
                },
                Role::Root | Role::Owned => {
                    if tenant.tables[index].snapshot > 0 {
                        Some(reader.copy_owned(&plan.schema, table, &tenant.id).await?)
                    } else {
                        None
                    }
                }
            };
            if let Some(comparison) = &self.comparisons[index] {
                if let Some(rows) = rows {
                    compare_rows(rows, comparison, connection, &mut table_check).await?;
                }
            } else {
                let rows = match rows {
                    Some(rows) => collect_rows(rows).await?,
                    None => Vec::new(),
                };
                self.compare_multiset(table, tenant, rows, connection, &mut table_check)
                    .await?;
                check.tables[index] = Some(table_check);
                continue;
            }
            if table.role != Role::Shared {
                let live = self.live_rows(table, tenant, connection).await?;
                table_check.live_only =
                    Some(live.saturating_sub(table_check.equal + table_check.different));
            }
            check.tables[index] = Some(table_check);
        }
        Ok(())
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

    /// The tenant's rows of `table` in live, found through the same ownership joins.
    async fn live_rows(
        &self,
        table: &TablePlan,
        tenant: &TenantClosure,
        connection: &mut PgConnection,
    ) -> Result<u64> {
        let mut params = Params::default();
        let Some(first) = table.columns.first() else {
            return Ok(0);
        };
        let select = owned_select(
            &self.live_catalog,
            &self.plan.schema,
            table,
            std::slice::from_ref(&first.name),
            false,
            Tenants::One(&tenant.id),
            &mut params,
        )?;
        let sql = format!("SELECT count(*)::int8 FROM ({select}) AS owned");
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for value in params.values {
            query = query.bind(value);
        }
        let count = query
            .fetch_one(&mut *connection)
            .await
            .map_err(salvage_pg::Error::query(format!(
                "count {}'s live rows",
                table.name
            )))?;
        Ok(count as u64)
    }
}

async fn compare_rows(
    mut rows: RowStream<'_>,
    comparison: &ChunkComparison,
    connection: &mut PgConnection,
    check: &mut TableCheck,
) -> Result<()> {
    let mut chunk: Vec<Vec<Option<String>>> = Vec::with_capacity(ROWS_PER_CHUNK);
    loop {
        let next = rows.next().await;
        if let Some(data) = &next {
            let data = data
                .as_ref()
                .map_err(|error| salvage_source::Error::Aborted(error.to_string()))?;
            for line in salvage_source::rows_of(data) {
                chunk.push(
                    salvage_copy::fields(line)
                        .map(salvage_copy::decode_text)
                        .collect(),
                );
                check.snapshot += 1;
            }
        }
        if chunk.len() >= ROWS_PER_CHUNK || (next.is_none() && !chunk.is_empty()) {
            let result = comparison.run(connection, &chunk).await?;
            check.missing += result.missing;
            check.equal += result.equal;
            check.different += result.different;
            check.waiting += result.waiting;
            extend_examples(&mut check.missing_examples, result.missing_examples);
            extend_examples(&mut check.different_examples, result.different_examples);
            chunk.clear();
        }
        if next.is_none() {
            return Ok(());
        }
    }
}

async fn collect_rows(mut rows: RowStream<'_>) -> Result<Vec<Vec<Option<String>>>> {
    let mut decoded = Vec::new();
    while let Some(chunk) = rows.next().await {
        let chunk = chunk?;
        for row in salvage_source::rows_of(&chunk) {
            decoded.push(
                salvage_copy::fields(row)
                    .map(salvage_copy::decode_text)
                    .collect(),
            );
        }
    }
    Ok(decoded)
}

fn extend_examples(examples: &mut Vec<String>, more: Vec<String>) {
    const KEPT: usize = 3;
    let room = KEPT.saturating_sub(examples.len());
    examples.extend(more.into_iter().take(room));
}
