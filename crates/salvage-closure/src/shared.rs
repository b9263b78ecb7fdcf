//! Shared rows: the rows of shared tables that the tenants' rows reference and live is
//! missing, followed upwards — a missing user invited by another missing user brings both —
//! as a worklist until nothing new is missing. They are only ever added, never overwritten.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use salvage_catalog::Catalog;
use salvage_plan::{Relation, SchemaPlan};
use salvage_source::{Snapshot, TextRow};
use sqlx::postgres::PgConnection;

use crate::Result;
use crate::closure::{Pending, PlanReporter};
use crate::live::existing_keys;
use crate::model::{TableCounts, TenantClosure};

/// What closing over the shared tables found besides the counts.
pub struct Shared {
    /// For each shared table (by index), the columns its rows are fetched by.
    pub key_columns: BTreeMap<usize, Vec<String>>,
    pub dangling: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn close(
    schema: &SchemaPlan,
    snapshot: &Snapshot,
    live: &mut PgConnection,
    live_catalog: &Catalog,
    tenants: &mut [TenantClosure],
    totals: &mut [TableCounts],
    mut pending: Pending,
    reporter: &dyn PlanReporter,
) -> Result<Shared> {
    let mut reader = None;
    let mut shared = Shared {
        key_columns: BTreeMap::new(),
        dangling: Vec::new(),
    };
    let mut processed: HashMap<(usize, Vec<String>), HashMap<TextRow, BTreeSet<usize>>> =
        HashMap::new();
    let mut to_add: BTreeMap<(usize, usize), BTreeSet<TextRow>> = BTreeMap::new();
    let mut distinct: BTreeMap<usize, (HashSet<TextRow>, HashSet<TextRow>)> = BTreeMap::new();
    while let Some((entry, keys)) = pending.pop_first() {
        let (table_index, lookup_columns) = entry.clone();
        let table = &schema.tables[table_index];
        let done = processed.entry(entry).or_default();
        let work: Vec<(TextRow, BTreeSet<usize>)> = keys
            .into_iter()
            .filter_map(|(key, tenants)| {
                let seen = done.entry(key.clone()).or_default();
                let new: BTreeSet<usize> = tenants.difference(seen).copied().collect();
                seen.extend(&new);
                (!new.is_empty()).then_some((key, new))
            })
            .collect();
        if work.is_empty() {
            continue;
        }
        reporter.reading(&table.name);
        let keys: Vec<TextRow> = work.iter().map(|(key, _)| key.clone()).collect();
        let present = if table.in_live {
            existing_keys(live, live_catalog, &table.name, &lookup_columns, &keys).await?
        } else {
            vec![false; keys.len()]
        };
        let mut missing: HashMap<TextRow, BTreeSet<usize>> = HashMap::new();
        let (referenced, live_has) = distinct.entry(table_index).or_default();
        for ((key, tenants_of_key), present) in work.into_iter().zip(present) {
            for &tenant in &tenants_of_key {
                let counts = &mut tenants[tenant].tables[table_index];
                counts.snapshot += 1;
                counts.in_live += u64::from(present);
            }
            referenced.insert(key.clone());
            if present {
                live_has.insert(key.clone());
            } else {
                missing.insert(key, tenants_of_key);
            }
        }
        if missing.is_empty() || !table.in_snapshot {
            continue;
        }
        let fetch_key = shared
            .key_columns
            .entry(table_index)
            .or_insert_with(|| {
                table
                    .key
                    .as_ref()
                    .map_or_else(|| lookup_columns.clone(), |key| key.columns.clone())
            })
            .clone();
        let (mut columns, positions) = projection(&fetch_key, &table.shared_references);
        let lookup_positions: Vec<usize> = lookup_columns
            .iter()
            .map(|column| {
                columns.iter().position(|c| c == column).unwrap_or_else(|| {
                    columns.push(column.clone());
                    columns.len() - 1
                })
            })
            .collect();
        let missing_keys: Vec<TextRow> = missing.keys().cloned().collect();
        let mut rows = Vec::new();
        if reader.is_none() {
            reader = Some(snapshot.reader());
        }
        if let Some(reader) = reader.as_mut() {
            reader
                .project_by_keys(
                    table,
                    &lookup_columns,
                    &missing_keys,
                    &columns,
                    &mut |row| {
                        rows.push(row);
                        Ok(())
                    },
                )
                .await?;
        }
        let mut found = HashSet::new();
        for row in rows {
            let lookup: TextRow = lookup_positions
                .iter()
                .map(|&position| row[position].clone())
                .collect();
            let Some(tenants_of_key) = missing.get(&lookup) else {
                continue;
            };
            found.insert(lookup);
            let key: TextRow = row[..fetch_key.len()].to_vec();
            for &tenant in tenants_of_key {
                to_add
                    .entry((tenant, table_index))
                    .or_default()
                    .insert(key.clone());
            }
            note_references(
                &mut pending,
                schema,
                &table.shared_references,
                &positions,
                &row,
                tenants_of_key,
            );
        }
        for key in missing.keys().filter(|key| !found.contains(*key)) {
            let values: Vec<&str> = key
                .iter()
                .map(|value| value.as_deref().unwrap_or("NULL"))
                .collect();
            shared.dangling.push(format!(
                "{}({}) = ({}) is referenced by restored rows but is in neither live nor the snapshot",
                table.name,
                lookup_columns.join(", "),
                values.join(", ")
            ));
        }
    }
    let mut added: BTreeMap<usize, HashSet<TextRow>> = BTreeMap::new();
    for ((tenant, table_index), keys) in to_add {
        let tenant = &mut tenants[tenant];
        tenant.tables[table_index].to_add = keys.len() as u64;
        added
            .entry(table_index)
            .or_default()
            .extend(keys.iter().cloned());
        tenant
            .shared_rows
            .insert(table_index, keys.into_iter().collect());
    }
    // A shared row many tenants need is one row: the totals count it once.
    for (table_index, (referenced, live_has)) in distinct {
        let total = &mut totals[table_index];
        total.snapshot = referenced.len() as u64;
        total.in_live = live_has.len() as u64;
        total.to_add = added.get(&table_index).map_or(0, |keys| keys.len() as u64);
    }
    Ok(shared)
}

/// The columns to read for a table: `first`, then every shared reference's columns (and the
/// columns of their conditions), each once. Returns them with each reference's positions.
fn projection(first: &[String], references: &[Relation]) -> (Vec<String>, Vec<ReferencePositions>) {
    let mut columns: Vec<String> = first.to_vec();
    let position = |column: &String, columns: &mut Vec<String>| {
        columns.iter().position(|c| c == column).unwrap_or_else(|| {
            columns.push(column.clone());
            columns.len() - 1
        })
    };
    let positions = references
        .iter()
        .map(|relation| ReferencePositions {
            columns: relation
                .child_columns
                .iter()
                .map(|column| position(column, &mut columns))
                .collect(),
            condition: relation.condition.as_ref().map(|condition| {
                (
                    position(&condition.column, &mut columns),
                    condition.value.clone(),
                )
            }),
        })
        .collect();
    (columns, positions)
}

struct ReferencePositions {
    columns: Vec<usize>,
    condition: Option<(usize, String)>,
}

impl ReferencePositions {
    /// The referenced key of `row`, unless a column is NULL or the condition does not hold.
    fn key(&self, row: &[Option<String>]) -> Option<TextRow> {
        if let Some((position, value)) = &self.condition {
            if row[*position].as_deref() != Some(value.as_str()) {
                return None;
            }
        }
        let key: TextRow = self
            .columns
            .iter()
            .map(|&position| row[position].clone())
            .collect();
        key.iter().all(Option::is_some).then_some(key)
    }
}

/// Collects references from a shared row into the pending shared keys.
fn note_references(
    pending: &mut Pending,
    schema: &SchemaPlan,
    references: &[Relation],
    positions: &[ReferencePositions],
    row: &[Option<String>],
    tenants: &BTreeSet<usize>,
) {
    for (relation, positions) in references.iter().zip(positions) {
        let (Some(key), Some(parent)) = (positions.key(row), schema.table_index(&relation.parent))
        else {
            continue;
        };
        pending
            .entry((parent, relation.parent_columns.clone()))
            .or_default()
            .entry(key)
            .or_default()
            .extend(tenants);
    }
}
