//! A keyed table of every tenant in scope, compared: on rayon, tenant by tenant, its snapshot
//! rows are matched with its live rows by the raw COPY text of the key (same text of every
//! written column: equal — see [`crate::matching`]); the rest go to live in shared
//! statements of [`ROWS_PER_CHUNK`] rows of any tenants, compared by key and typed value
//! (missing, equal, different). A tenant's live rows whose key none of its snapshot rows has
//! are live-only. Tenants are matched in batches of about [`ROWS_PER_BATCH`] rows, the next
//! batch on rayon while the last one's rows are compared in live: memory holds a batch, never
//! a table.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use salvage_plan::TablePlan;
use salvage_source::{TextRow, rows_of};
use sqlx::postgres::PgConnection;

use super::Sides;
use super::model::TableDiff;
use crate::compare::{ChunkComparison, ChunkResult};
use crate::matching::{Layout, key_of, same_text};
use crate::{Error, Result};

/// Rows compared in live per statement.
const ROWS_PER_CHUNK: usize = 2_000;
/// Rows (both sides) of the tenants matched together.
pub(super) const ROWS_PER_BATCH: u64 = 100_000;
/// Examples kept per kind, table and tenant.
pub(super) const EXAMPLES: usize = 3;

/// One tenant's rows of the table, matched by text.
#[derive(Debug, Default)]
struct Matched {
    tenant: usize,
    snapshot: u64,
    live: u64,
    equal: u64,
    live_only: u64,
    live_only_examples: Vec<String>,
    /// Snapshot rows not settled by text (decoded, snapshot column order).
    unsettled: Vec<TextRow>,
}

/// Compares `table` (it has a key) for every tenant: one result per tenant of `sides`.
pub(super) async fn compare(
    table: &TablePlan,
    sides: &Sides,
    comparison: &ChunkComparison,
    connection: &mut PgConnection,
) -> Result<Vec<TableDiff>> {
    let layout = Arc::new(Layout::new(table).ok_or_else(|| {
        Error::Inconsistent(format!("{}: its key is not among its columns", table.name))
    })?);
    let key_names = Arc::new(
        table
            .key
            .as_ref()
            .map_or_else(String::new, |key| key.columns.join(", ")),
    );
    let mut results = vec![TableDiff::default(); sides.tenants];
    let batches = sides.batches(&table.name, ROWS_PER_BATCH);
    let start = |batch: &Vec<usize>| {
        let (layout, key_names, sides) =
            (Arc::clone(&layout), Arc::clone(&key_names), sides.clone());
        let name = table.name.clone();
        let batch = batch.clone();
        super::spawn_rayon(move || {
            batch
                .par_iter()
                .map(|&tenant| {
                    let (snapshot, live) = sides.rows(&name, tenant)?;
                    Ok(match_tenant(&layout, &key_names, tenant, &snapshot, &live))
                })
                .collect::<Result<Vec<Matched>>>()
        })
    };
    let mut next = batches.first().map(start);
    let mut pending: Vec<(usize, TextRow)> = Vec::with_capacity(ROWS_PER_CHUNK);
    for number in 0..batches.len() {
        let Some(running) = next.take() else { break };
        let matched = running.await.map_err(|_| {
            Error::Inconsistent("a matching task stopped without an answer".into())
        })??;
        if let Some(batch) = batches.get(number + 1) {
            next = Some(start(batch));
        }
        for tenant in matched {
            let result = &mut results[tenant.tenant];
            result.snapshot = tenant.snapshot;
            result.live = tenant.live;
            result.equal = tenant.equal;
            result.live_only = tenant.live_only;
            result.live_only_examples = tenant.live_only_examples;
            for row in tenant.unsettled {
                pending.push((tenant.tenant, row));
                if pending.len() >= ROWS_PER_CHUNK {
                    let chunk = std::mem::take(&mut pending);
                    apply(
                        comparison.run(connection, &chunk, &|_, _| false).await?,
                        &mut results,
                        &key_names,
                    );
                }
            }
        }
    }
    if !pending.is_empty() {
        apply(
            comparison.run(connection, &pending, &|_, _| false).await?,
            &mut results,
            &key_names,
        );
    }
    Ok(results)
}

/// Adds the typed comparison's answers to the tenants' results.
fn apply(answers: Vec<(usize, ChunkResult)>, results: &mut [TableDiff], key_names: &str) {
    let shown = |key: String| format!("({key_names})=({key})");
    for (tenant, answer) in answers {
        let Some(result) = results.get_mut(tenant) else {
            continue;
        };
        result.equal += answer.equal;
        result.missing += answer.missing;
        result.different += answer.different;
        let room = EXAMPLES.saturating_sub(result.missing_examples.len());
        result
            .missing_examples
            .extend(answer.missing_examples.into_iter().take(room).map(shown));
        let room = EXAMPLES.saturating_sub(result.different_examples.len());
        result
            .different_examples
            .extend(answer.different_examples.into_iter().take(room).map(shown));
    }
}

/// A live row, its place in reading order, and whether a snapshot row has its key.
type LiveRow<'a> = (&'a [u8], u64, bool);

/// Matches one tenant's snapshot rows (all snapshot columns) with its live rows (the
/// layout's live columns) by key text.
fn match_tenant(
    layout: &Layout,
    key_names: &str,
    tenant: usize,
    snapshot: &[Bytes],
    live: &[Bytes],
) -> Matched {
    let mut matched = Matched {
        tenant,
        ..Matched::default()
    };
    // Live rows by key, each with its place in reading order and whether a snapshot row of
    // the tenant has its key.
    let mut by_key: FxHashMap<Cow<'_, [u8]>, LiveRow<'_>> = FxHashMap::default();
    let mut fields: Vec<&[u8]> = Vec::new();
    for row in live.iter().flat_map(|chunk| rows_of(chunk)) {
        fields.clear();
        fields.extend(salvage_copy::fields(row));
        if let Some(key) = key_of(&fields, &layout.live_key) {
            by_key.insert(key, (row, matched.live, false));
        }
        matched.live += 1;
    }
    let mut live_fields: Vec<&[u8]> = Vec::new();
    for row in snapshot.iter().flat_map(|chunk| rows_of(chunk)) {
        matched.snapshot += 1;
        fields.clear();
        fields.extend(salvage_copy::fields(row));
        let found = key_of(&fields, &layout.snapshot_key).and_then(|key| by_key.get_mut(&key));
        if let Some((live_row, _, seen)) = found {
            *seen = true;
            live_fields.clear();
            live_fields.extend(salvage_copy::fields(live_row));
            if same_text(layout, &fields, &live_fields) {
                matched.equal += 1;
                continue;
            }
        }
        matched.unsettled.push(
            fields
                .iter()
                .map(|field| salvage_copy::decode_text(field))
                .collect(),
        );
    }
    // Live rows without a key (a NULL in a unique key) match nothing: live-only too.
    let unkeyed = matched.live - by_key.len() as u64;
    let mut only: Vec<(u64, &[u8])> = by_key
        .into_values()
        .filter(|(_, _, seen)| !seen)
        .map(|(row, place, _)| (place, row))
        .collect();
    matched.live_only = only.len() as u64 + unkeyed;
    // The first keys in reading order, so examples do not change from run to run.
    only.sort_unstable_by_key(|(place, _)| *place);
    matched.live_only_examples = only
        .iter()
        .take(EXAMPLES)
        .map(|(_, row)| {
            let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
            let values: Vec<String> = layout
                .live_key
                .iter()
                .map(|&position| {
                    fields
                        .get(position)
                        .and_then(|field| salvage_copy::decode_text(field))
                        .unwrap_or_default()
                })
                .collect();
            format!("({key_names})=({})", values.join(", "))
        })
        .collect();
    matched
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::match_tenant;
    use crate::matching::Layout;

    fn chunk(rows: &[&str]) -> Bytes {
        Bytes::from(rows.iter().flat_map(|row| [*row, "\n"]).collect::<String>())
    }

    #[test]
    fn same_text_is_equal_the_rest_unsettled_and_unmatched_live_rows_live_only() {
        let layout = Layout {
            live_columns: vec!["id".into(), "name".into()],
            snapshot_written: vec![0, 1],
            snapshot_key: vec![0],
            live_key: vec![0],
        };
        let snapshot = [chunk(&["1\ta", "2\tb", "3\tc"])];
        let live = [chunk(&["1\ta", "3\tchanged", "8\tnew", "9\tnewer"])];
        let matched = match_tenant(&layout, "id", 4, &snapshot, &live);
        assert_eq!(matched.tenant, 4);
        assert_eq!(
            (
                matched.snapshot,
                matched.live,
                matched.equal,
                matched.live_only
            ),
            (3, 4, 1, 2)
        );
        let unsettled: Vec<Option<String>> =
            matched.unsettled.iter().map(|row| row[0].clone()).collect();
        assert_eq!(unsettled, [Some("2".into()), Some("3".into())]);
        assert_eq!(matched.live_only_examples, ["(id)=(8)", "(id)=(9)"]);
    }
}
