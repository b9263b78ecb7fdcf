//! `salvage diff`: every tenant in scope, snapshot against live — deleted, damaged, changed,
//! intact or new — with per-table counts of the rows missing, different and live-only.
//!
//! The cost does not grow with the number of tenants. Both sides are read once by the
//! membership rule a restore uses ([`salvage_source::members`]), for all the tenants at
//! once and concurrently: the snapshot through [`Snapshot::select_reading`], live through
//! [`salvage_source::read_members`] — for every tenant there is, each table whole in one
//! statement ([`Reading::WholeTables`]), for chosen ones by their parents' keys. What is
//! read is kept in temporary files, per tenant. Then each table is compared once: tenant by
//! tenant on rayon by the text of the key and values, and what text does not settle in
//! shared statements of rows of any tenants, by key and typed value, as `verify` compares
//! ([`crate::compare`], [`salvage_sql::multiset`] for tables without a key). No statement is
//! per tenant; nothing is written on either side.

mod keyed;
mod keyless;
mod model;
mod scope;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_pg::{ConnectionRole, DatabaseUrl};
use salvage_plan::{Role, SchemaPlan, TablePlan};
use salvage_source::{Reach, Reading, Selected, Snapshot};

pub use model::{
    Diff, DiffReporter, DiffTable, SkippedTable, TableDiff, TenantDiff, TenantState, id_order,
};
pub use scope::Scope;

use crate::compare::ChunkComparison;
use crate::matching::Layout;
use crate::{Error, Result};

/// What to compare.
#[derive(Debug, Clone, Copy)]
pub struct DiffRequest<'a> {
    pub schema: &'a SchemaPlan,
    pub snapshot: &'a Snapshot,
    pub target: &'a DatabaseUrl,
    pub live_catalog: &'a Catalog,
    pub scope: &'a Scope,
}

/// Compares every tenant of the request's scope, snapshot against live.
pub async fn diff(request: DiffRequest<'_>, reporter: &dyn DiffReporter) -> Result<Diff> {
    let DiffRequest {
        schema,
        snapshot,
        target,
        live_catalog,
        scope,
    } = request;
    let (compared, skipped) = tables(schema);
    let mut live = salvage_pg::connect(target, ConnectionRole::ReadOnly).await?;
    let outcome = async {
        let by_value = salvage_closure::comparison_modes(&mut live, live_catalog, schema).await?;
        let keep = live_columns(schema);
        let keep = |table: &TablePlan| keep.get(&table.name).cloned().unwrap_or_default();
        let reading = if scope.everyone {
            Reading::WholeTables
        } else {
            Reading::ByParentKeys
        };
        reporter.reading(scope.ids.len());
        let started = std::time::Instant::now();
        let (snapshot_rows, live_rows) = tokio::try_join!(
            async {
                snapshot
                    .select_reading(schema, &scope.ids, reading)
                    .await
                    .map_err(Error::from)
            },
            async {
                salvage_source::read_members(
                    (&mut live, None),
                    live_catalog,
                    schema,
                    &scope.ids,
                    &keep,
                    "live",
                    reading,
                )
                .await
                .map_err(Error::from)
            },
        )?;
        tracing::info!(
            tenants = scope.ids.len(),
            ?reading,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read both sides' rows of the tenants"
        );
        let sides = Sides {
            snapshot: snapshot_rows,
            live: Arc::new(live_rows),
            tenants: scope.ids.len(),
        };
        let mut per_table = Vec::with_capacity(compared.len());
        for (number, &index) in compared.iter().enumerate() {
            let table = &schema.tables[index];
            reporter.comparing(&table.name, number + 1, compared.len());
            let started = std::time::Instant::now();
            let results = if table.key.is_some() {
                let comparison = ChunkComparison::unguarded(table, live_catalog, &by_value)?;
                keyed::compare(table, &sides, &comparison, &mut live).await?
            } else {
                let multiset = salvage_closure::multiset_of(table, live_catalog, &by_value)?;
                let places = keyless::Places {
                    snapshot: places(table, &sides.snapshot, &multiset.column_names())?,
                    live: places(table, &sides.live, &multiset.column_names())?,
                };
                keyless::compare(table, &sides, &multiset, places, &mut live).await?
            };
            tracing::info!(
                table = %table.name,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "compared"
            );
            per_table.push(results);
        }
        Ok::<_, Error>((sides, per_table))
    }
    .await;
    salvage_pg::close(live).await;
    let (sides, per_table) = outcome?;
    assemble(schema, scope, &compared, skipped, &sides, per_table)
}

/// The owned tables compared (on both sides), and those that cannot be.
fn tables(schema: &SchemaPlan) -> (Vec<usize>, Vec<SkippedTable>) {
    let mut compared = Vec::new();
    let mut skipped = Vec::new();
    for (index, table) in schema.tables.iter().enumerate() {
        if table.role == Role::Shared {
            continue;
        }
        let reason = match (table.in_snapshot, table.in_live) {
            (true, true) => {
                compared.push(index);
                continue;
            }
            (true, false) => "only in the snapshot: live has no such table",
            (false, true) => "only in live: the snapshot has no such table",
            (false, false) => continue,
        };
        skipped.push(SkippedTable {
            table: table.name.clone(),
            reason: reason.to_owned(),
        });
    }
    (compared, skipped)
}

/// The columns kept of each owned table's live rows: the written columns then the key's
/// (the layout text matching reads), and the root's label.
fn live_columns(schema: &SchemaPlan) -> HashMap<QualifiedName, Vec<String>> {
    schema
        .tables
        .iter()
        .filter(|table| table.role != Role::Shared && table.in_snapshot && table.in_live)
        .map(|table| {
            let mut columns = match Layout::new(table) {
                Some(layout) if table.key.is_some() => layout.live_columns,
                _ => table
                    .written_columns()
                    .map(|column| column.name.clone())
                    .collect(),
            };
            if table.role == Role::Root {
                if let Some(label) = &schema.root.label_column {
                    if !columns.contains(label) {
                        columns.push(label.clone());
                    }
                }
            }
            (table.name.clone(), columns)
        })
        .collect()
}

/// The tenants' results, with their states and the root rows' labels.
fn assemble(
    schema: &SchemaPlan,
    scope: &Scope,
    compared: &[usize],
    skipped: Vec<SkippedTable>,
    sides: &Sides,
    per_table: Vec<Vec<TableDiff>>,
) -> Result<Diff> {
    let root = &schema.root;
    let snapshot_labels = RootRows::read(&sides.snapshot, root, sides.tenants)?;
    let live_labels = RootRows::read(&sides.live, root, sides.tenants)?;
    let tables = compared
        .iter()
        .map(|&index| {
            let table = &schema.tables[index];
            DiffTable {
                table: table.name.clone(),
                keyless: table.key.is_none(),
                snapshot_rows: distinct_rows(&sides.snapshot, &table.name, sides.tenants),
                live_rows: distinct_rows(&sides.live, &table.name, sides.tenants),
            }
        })
        .collect();
    let mut columns: Vec<std::vec::IntoIter<TableDiff>> =
        per_table.into_iter().map(Vec::into_iter).collect();
    let tenants = scope
        .ids
        .iter()
        .enumerate()
        .map(|(number, id)| {
            let tables: Vec<TableDiff> = columns
                .iter_mut()
                .map(|column| column.next().unwrap_or_default())
                .collect();
            let (in_snapshot, in_live) =
                (snapshot_labels.present[number], live_labels.present[number]);
            TenantDiff {
                tenant: id.clone(),
                label: snapshot_labels.labels[number]
                    .clone()
                    .or_else(|| live_labels.labels[number].clone()),
                state: TenantState::of(in_snapshot, in_live, &tables),
                in_snapshot,
                in_live,
                tables,
            }
        })
        .collect();
    Ok(Diff {
        tables,
        skipped,
        tenants,
    })
}

/// Each tenant's root row on one side: whether there is one, and its label.
struct RootRows {
    present: Vec<bool>,
    labels: Vec<Option<String>>,
}

impl RootRows {
    fn read(selected: &Selected, root: &salvage_plan::RootInfo, tenants: usize) -> Result<Self> {
        let mut rows = Self {
            present: vec![false; tenants],
            labels: vec![None; tenants],
        };
        let Some(table) = selected.table(&root.table) else {
            return Ok(rows);
        };
        let label = root
            .label_column
            .as_ref()
            .and_then(|label| table.columns().iter().position(|column| column == label));
        for tenant in 0..tenants {
            rows.present[tenant] = table.total(tenant) > 0;
            let Some(label) = label else { continue };
            if let Some(row) = table
                .all_rows(tenant)?
                .first()
                .and_then(|chunk| salvage_source::rows_of(chunk).next())
            {
                rows.labels[tenant] = salvage_copy::fields(row)
                    .nth(label)
                    .and_then(salvage_copy::decode_text);
            }
        }
        Ok(rows)
    }
}

/// The rows of a table read on one side, each once however many tenants it belongs to.
fn distinct_rows(selected: &Selected, table: &QualifiedName, tenants: usize) -> u64 {
    selected.table(table).map_or(0, |kept| {
        (0..tenants)
            .map(|tenant| kept.count(tenant, Reach::Sole))
            .sum::<u64>()
            + kept.joint_rows()
    })
}

/// Both sides' rows of the tenants, per table and tenant.
#[derive(Debug, Clone)]
pub(super) struct Sides {
    snapshot: Arc<Selected>,
    live: Arc<Selected>,
    tenants: usize,
}

impl Sides {
    /// A tenant's rows of a table: the snapshot's, then live's.
    fn rows(&self, table: &QualifiedName, tenant: usize) -> Result<(Vec<Bytes>, Vec<Bytes>)> {
        let of = |selected: &Selected| -> Result<Vec<Bytes>> {
            Ok(match selected.table(table) {
                Some(kept) => kept.all_rows(tenant)?,
                None => Vec::new(),
            })
        };
        Ok((of(&self.snapshot)?, of(&self.live)?))
    }

    /// The tenants with rows of `table` on either side, in groups of about `budget` rows.
    fn batches(&self, table: &QualifiedName, budget: u64) -> Vec<Vec<usize>> {
        let count = |selected: &Selected, tenant: usize| {
            selected
                .table(table)
                .map_or(0, |kept: &salvage_source::SelectedTable| kept.total(tenant))
        };
        let mut batches = Vec::new();
        let (mut batch, mut rows) = (Vec::new(), 0u64);
        for tenant in 0..self.tenants {
            let here = count(&self.snapshot, tenant) + count(&self.live, tenant);
            if here == 0 {
                continue;
            }
            if rows > 0 && rows + here > budget {
                batches.push(std::mem::take(&mut batch));
                rows = 0;
            }
            batch.push(tenant);
            rows += here;
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        batches
    }
}

/// Where `columns` are in the rows one side kept of `table`.
fn places(table: &TablePlan, selected: &Selected, columns: &[String]) -> Result<Vec<usize>> {
    let kept = selected
        .table(&table.name)
        .map_or(&[][..], |kept| kept.columns());
    columns
        .iter()
        .map(|column| {
            kept.iter().position(|name| name == column).ok_or_else(|| {
                Error::Inconsistent(format!(
                    "{}'s rows were read without their column {column}",
                    table.name
                ))
            })
        })
        .collect()
}

/// Runs `work` on rayon at once; its answer comes through the receiver.
fn spawn_rayon<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::sync::oneshot::Receiver<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
}
