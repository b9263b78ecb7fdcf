//! Which rows to add can go in, as the plan sees it: a row goes in once every parent it
//! references (through the relations the plan guards) exists in live after the run — already
//! there, or restored by this run, in any order the foreign keys accept. A row whose parent
//! neither live has nor this run restores (a row of a tenant not being restored) waits for
//! it; the plan counts those and names the parent, so they are never dropped silently.
//!
//! Taken phase by phase, in restore order (a phase is one step, or the steps a relation
//! checked at commit joins): what earlier phases restore is known; inside a phase rows are
//! worked out to a fixpoint ([`crate::guards::held_back`]).

use std::collections::HashMap;

use rustc_hash::{FxHashMap, FxHashSet};
use salvage_catalog::Catalog;
use salvage_plan::SchemaPlan;
use salvage_source::{Reach, Selected, SelectedTable, TextRow};
use sqlx::postgres::PgConnection;

use crate::closure::is_owned;
use crate::guards::{
    Asked, Candidate, Exports, Guards, ParentKey, describe_wait, exports_of, guards_of, held_back,
    keys_to_ask, positions,
};
use crate::live::existing_keys;
use crate::model::{KeylessWait, RowFilter, TableCounts, TenantClosure};
use crate::owned::raw_key;
use crate::{Error, Result};

/// Examples of waiting rows kept per tenant.
const EXAMPLES: usize = 10;

/// What verification needs of the rows that would wait.
#[derive(Debug, Default)]
pub struct Waiting {
    /// Their keys, by the parent and columns children reference them by: a row under a
    /// waiting row waits too.
    pub keys: HashMap<ParentKey, FxHashSet<Box<[u8]>>>,
    /// The rows of keyless tables, by (table index, tenant position).
    pub keyless: HashMap<(usize, usize), Vec<KeylessWait>>,
}

/// Counts the rows that would wait, per tenant and table, and returns what verification
/// needs of them.
pub async fn mark(
    schema: &SchemaPlan,
    selected: &Selected,
    live: &mut PgConnection,
    live_catalog: &Catalog,
    tenants: &mut [TenantClosure],
    totals: &mut [TableCounts],
) -> Result<Waiting> {
    // Keys of the rows this run restores, by parent and columns.
    let mut restored: FxHashMap<ParentKey, FxHashSet<Box<[u8]>>> = FxHashMap::default();
    let mut waiting = Waiting::default();
    for phase in &schema.phases {
        let step: Vec<usize> = phase
            .iter()
            .flat_map(|&step| schema.steps[step].iter().copied())
            .collect();
        let step = step.as_slice();
        let members: Vec<usize> = step
            .iter()
            .copied()
            .filter(|&index| {
                let table = &schema.tables[index];
                is_owned(table) && table.in_live && table.in_snapshot
            })
            .collect();
        if members.is_empty() {
            continue;
        }
        let mut kept: HashMap<usize, &SelectedTable> = HashMap::new();
        let mut guards = Guards::new();
        let mut exports = Exports::new();
        for &index in &members {
            let table = &schema.tables[index];
            let rows = selected.table(&table.name).ok_or_else(|| {
                Error::Inconsistent(format!(
                    "the snapshot's rows of {} were not read",
                    table.name
                ))
            })?;
            kept.insert(index, rows);
            guards.insert(index, guards_of(schema, step, index, rows.columns())?);
            exports.insert(index, exports_of(table, rows.columns())?);
        }
        let mut chunks: Vec<(usize, usize, bytes::Bytes)> = Vec::new();
        for &index in &members {
            let rows = kept[&index];
            let table = &schema.tables[index];
            let key_positions = match &table.key {
                Some(key) => Some(positions(table, rows.columns(), &key.columns)?),
                None => None,
            };
            for (number, tenant) in tenants.iter().enumerate() {
                if !tenant.held_elsewhere.is_empty() {
                    // This tenant's restore fails: none of its rows go in, and none waits.
                    continue;
                }
                let filter = &tenant.filters[index];
                if matches!(filter, RowFilter::All) {
                    // Every row goes in: the chunks as they are, no row split or copied.
                    for chunk in rows.all_rows(number)? {
                        if !chunk.is_empty() {
                            chunks.push((index, number, chunk));
                        }
                    }
                    continue;
                }
                let mut position = 0u64;
                for reach in [Reach::Sole, Reach::Joint] {
                    for chunk in rows.rows(number, reach)? {
                        let mut keptrows = Vec::new();
                        for row in salvage_source::rows_of(&chunk) {
                            let here = position;
                            position += 1;
                            let key = key_positions.as_ref().and_then(|positions| {
                                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                                raw_key(&fields, positions)
                            });
                            if filter.keeps(here, key.as_deref()) {
                                keptrows.extend_from_slice(row);
                                keptrows.push(b'\n');
                            }
                        }
                        if !keptrows.is_empty() {
                            chunks.push((index, number, bytes::Bytes::from(keptrows)));
                        }
                    }
                }
            }
        }
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        for (index, number, chunk) in &chunks {
            for row in salvage_source::rows_of(chunk) {
                candidates.push(Candidate {
                    table: *index,
                    fields: salvage_copy::fields(row).collect(),
                });
                owners.push(*number);
            }
        }
        let known = |parent: &ParentKey, key: &[u8]| {
            restored.get(parent).is_some_and(|keys| keys.contains(key))
        };
        let in_live = ask_live(
            live,
            live_catalog,
            keys_to_ask(&candidates, &guards, None, &known),
        )
        .await?;
        let present = |parent: &ParentKey, key: &[u8]| {
            known(parent, key) || in_live.get(parent).is_some_and(|keys| keys.contains(key))
        };
        let held = held_back(&candidates, &guards, &exports, &present);
        // A row reaching several tenants waits once in the totals; exact copies of a row of a
        // table without a key are rows of their own: per row text, the most copies any one
        // tenant has.
        let mut counted: HashMap<(usize, Vec<u8>), HashMap<usize, u64>> = HashMap::new();
        for ((candidate, owner), reason) in candidates.iter().zip(&owners).zip(&held) {
            let table = &schema.tables[candidate.table];
            match reason {
                Some((guard, key)) => {
                    for (parent, places) in &exports[&candidate.table] {
                        if let Some(key) = raw_key(&candidate.fields, places) {
                            waiting.keys.entry(parent.clone()).or_default().insert(key);
                        }
                    }
                    if table.key.is_none() {
                        waiting
                            .keyless
                            .entry((candidate.table, *owner))
                            .or_default()
                            .push(KeylessWait {
                                row: candidate.fields.join(&b'\t').into_boxed_slice(),
                                parent: guards[&candidate.table][*guard].parent(),
                                key: key.clone(),
                            });
                    }
                    let tenant = &mut tenants[*owner];
                    tenant.tables[candidate.table].waiting += 1;
                    *counted
                        .entry((candidate.table, candidate.fields.join(&b'\t')))
                        .or_default()
                        .entry(*owner)
                        .or_default() += 1;
                    if tenant.waiting_examples.len() < EXAMPLES {
                        let columns = kept[&candidate.table].columns();
                        tenant.waiting_examples.push(format!(
                            "{}, which live does not have and this run does not restore",
                            describe_wait(
                                table,
                                columns,
                                &candidate.fields,
                                &guards[&candidate.table][*guard],
                                key
                            )
                        ));
                    }
                }
                // What this phase restores, for the phases after it.
                None => {
                    for (parent, places) in &exports[&candidate.table] {
                        if let Some(key) = raw_key(&candidate.fields, places) {
                            // The parent named once per table, not cloned per row.
                            match restored.get_mut(parent) {
                                Some(keys) => {
                                    keys.insert(key);
                                }
                                None => {
                                    restored.entry(parent.clone()).or_default().insert(key);
                                }
                            }
                        }
                    }
                }
            }
        }
        for ((table, _), copies) in counted {
            totals[table].waiting += copies.values().copied().max().unwrap_or(0);
        }
    }
    Ok(waiting)
}

/// Which of the asked parent keys live has, per parent.
pub async fn ask_live(
    live: &mut PgConnection,
    live_catalog: &Catalog,
    asked: Asked,
) -> Result<FxHashMap<ParentKey, FxHashSet<Box<[u8]>>>> {
    let mut found_keys = FxHashMap::default();
    for ((parent, columns), keys) in asked {
        let decoded: Vec<TextRow> = keys
            .iter()
            .map(|key| {
                salvage_copy::fields(key)
                    .map(salvage_copy::decode_text)
                    .collect()
            })
            .collect();
        let found = existing_keys(live, live_catalog, &parent, &columns, &decoded).await?;
        found_keys.insert(
            (parent, columns),
            keys.into_iter()
                .zip(found)
                .filter_map(|(key, found)| found.then_some(key))
                .collect(),
        );
    }
    Ok(found_keys)
}
