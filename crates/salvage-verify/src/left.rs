//! The rows the independent check ([`crate::proof`]) reaches that the plan does not hold —
//! rows the restore left behind — fetched from the snapshot (the chain that ties one to its
//! tenant is worked out when a report names it), and the keys of every verified row by the
//! columns children reference them by.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use salvage_closure::{RestorePlan, raw_key};
use salvage_source::{KeyFilter, SnapshotReader, TextRow};

use crate::Result;
use crate::compare::{ChunkComparison, ParentKey};
use crate::proof::Reached;

/// tables) or the written columns' values (tables without a key).
#[derive(Debug, Default)]
pub struct LeftBehind {
    pub rows: Vec<Vec<Vec<u8>>>,
    pub values: Vec<Vec<TextRow>>,
}

/// comparisons' guarded parents are referenced.
pub fn verified_keys(
    plan: &RestorePlan,
    comparisons: &[Option<ChunkComparison>],
    left: &HashMap<usize, LeftBehind>,
) -> Result<HashMap<ParentKey, FxHashSet<Box<[u8]>>>> {
    let mut wanted: Vec<ParentKey> = comparisons
        .iter()
        .flatten()
        .flat_map(|comparison| {
            comparison
                .parents()
                .iter()
                .map(|(parent, _)| parent.clone())
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    let mut keys = HashMap::new();
    for (table_name, columns) in wanted {
        let Some(index) = plan.schema.table_index(&table_name) else {
            continue;
        };
        let table = &plan.schema.tables[index];
        let mut found: FxHashSet<Box<[u8]>> = FxHashSet::default();
        if let Some(kept) = plan.selected.table(&table_name) {
            let places = salvage_closure::guards::positions(table, kept.columns(), &columns)?;
            for number in 0..plan.tenants.len() {
                for chunk in kept.all_rows(number)? {
                    for row in salvage_source::rows_of(&chunk) {
                        let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                        found.extend(raw_key(&fields, &places));
                    }
                }
            }
        }
        if let Some(left) = left.get(&index) {
            let places: Vec<usize> = columns
                .iter()
                .filter_map(|column| table.column_index(column))
                .collect();
            for row in left.rows.iter().flatten() {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                found.extend(raw_key(&fields, &places));
            }
        }
        // A row that waits (its parent is another tenant's, missing in live) is no row
        // verified: what hangs under it waits with it, it is not missing.
        if let Some(waiting) = plan
            .waiting_keys
            .get(&(table_name.clone(), columns.clone()))
        {
            found.retain(|key| !waiting.contains(key));
        }
        keys.insert((table_name, columns), found);
    }
    Ok(keys)
}

/// The rows the independent check reached that the plan does not hold, per table and tenant.
pub async fn left_behind(
    plan: &RestorePlan,
    reached: &Reached,
    reader: &mut SnapshotReader,
) -> Result<HashMap<usize, LeftBehind>> {
    let tenants = plan.tenants.len();
    let mut left = HashMap::new();
    for (&index, found) in &reached.tables {
        let table = &plan.schema.tables[index];
        if !table.in_live || !table.in_snapshot {
            continue;
        }
        // The plan's rows of each tenant, by the same identity.
        let mut planned: Vec<FxHashMap<Box<[u8]>, u32>> = vec![FxHashMap::default(); tenants];
        if let Some(kept) = plan.selected.table(&table.name) {
            let places =
                salvage_closure::guards::positions(table, kept.columns(), &found.identity)?;
            for (number, held) in planned.iter_mut().enumerate() {
                for chunk in kept.all_rows(number)? {
                    for row in salvage_source::rows_of(&chunk) {
                        let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                        let id: Option<Box<[u8]>> = if found.keyless {
                            Some(join_all(&fields, &places))
                        } else {
                            raw_key(&fields, &places)
                        };
                        if let Some(id) = id {
                            *held.entry(id).or_default() += 1;
                        }
                    }
                }
            }
        }
        let mut missing: Vec<Vec<(Box<[u8]>, u32)>> = vec![Vec::new(); tenants];
        for (id, row) in &found.rows {
            for &tenant in row.tenants.as_slice() {
                let held = planned[tenant as usize].get(id).copied().unwrap_or(0);
                let wanted = if found.keyless { row.copies } else { 1 };
                if held < wanted {
                    missing[tenant as usize].push((id.clone(), wanted - held));
                }
            }
        }
        if missing.iter().all(Vec::is_empty) {
            continue;
        }
        let mut entry = LeftBehind {
            rows: vec![Vec::new(); tenants],
            values: vec![Vec::new(); tenants],
        };
        if found.keyless {
            for (tenant, ids) in missing.into_iter().enumerate() {
                for (id, copies) in ids {
                    let values: TextRow = salvage_copy::fields(&id)
                        .map(salvage_copy::decode_text)
                        .collect();
                    for _ in 0..copies {
                        entry.values[tenant].push(values.clone());
                    }
                }
            }
        } else {
            let keys: FxHashSet<Box<[u8]>> =
                missing.iter().flatten().map(|(id, _)| id.clone()).collect();
            let columns: Vec<String> = table
                .columns
                .iter()
                .map(|column| column.name.clone())
                .collect();
            let chunks = reader
                .rows_matching(
                    table,
                    &columns,
                    &[KeyFilter {
                        columns: found.identity.clone(),
                        condition: None,
                        keys: Arc::new(keys),
                        parent: None,
                    }],
                )
                .await?;
            let places: Vec<usize> = found
                .identity
                .iter()
                .filter_map(|column| table.column_index(column))
                .collect();
            let mut rows: FxHashMap<Box<[u8]>, Vec<u8>> = FxHashMap::default();
            for chunk in &chunks {
                for row in salvage_source::rows_of(chunk) {
                    let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                    if let Some(id) = raw_key(&fields, &places) {
                        rows.insert(id, row.to_vec());
                    }
                }
            }
            for (tenant, ids) in missing.into_iter().enumerate() {
                for (id, _) in ids {
                    if let Some(row) = rows.get(&id) {
                        entry.rows[tenant].push(row.clone());
                    }
                }
            }
        }
        left.insert(index, entry);
    }
    Ok(left)
}

fn join_all(fields: &[&[u8]], places: &[usize]) -> Box<[u8]> {
    places
        .iter()
        .map(|&place| fields.get(place).copied().unwrap_or(salvage_copy::NULL))
        .collect::<Vec<_>>()
        .join(&b'\t')
        .into()
}
