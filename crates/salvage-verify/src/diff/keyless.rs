//! A table without a key, compared as multisets for every tenant in scope: on rayon, tenant
//! by tenant, rows of the same COPY text on both sides cancel out; when what is left has rows
//! on both sides, they may still be equal by typed value (`1.50` and `1.5`), and go to live in
//! a statement shared by the tenants of a chunk, which groups each tenant's rows by every
//! column (`Multiset::totals_by_tenant`: no table is read). What is left on one side only is
//! missing, or live-only.

use std::sync::Arc;

use bytes::Bytes;
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use salvage_plan::TablePlan;
use salvage_source::{TextRow, rows_of};
use salvage_sql::multiset::Multiset;
use sqlx::postgres::PgConnection;

use super::Sides;
use super::keyed::ROWS_PER_BATCH;
use super::model::TableDiff;
use crate::multiset::{Tagged, totals_by_tenant};
use crate::{Error, Result};

/// Rows (both sides) sent to live per statement, about: a tenant's rows are never split.
const ROWS_PER_CHUNK: usize = 4_000;

/// One tenant's rows, cancelled out by text.
#[derive(Debug, Default)]
struct Matched {
    tenant: usize,
    snapshot: u64,
    live: u64,
    equal: u64,
    /// The rows left on each side (decoded, the multiset's columns).
    snapshot_left: Vec<TextRow>,
    live_left: Vec<TextRow>,
}

/// Where the multiset's columns are in the rows of each side.
#[derive(Debug)]
pub(super) struct Places {
    pub snapshot: Vec<usize>,
    pub live: Vec<usize>,
}

/// Compares the keyless `table` for every tenant: one result per tenant of `sides`.
pub(super) async fn compare(
    table: &TablePlan,
    sides: &Sides,
    multiset: &Multiset,
    places: Places,
    connection: &mut PgConnection,
) -> Result<Vec<TableDiff>> {
    let places = Arc::new(places);
    let statement = multiset.totals_by_tenant();
    let width = multiset.width();
    let mut results = vec![TableDiff::default(); sides.tenants];
    let mut pending: Vec<Matched> = Vec::new();
    let mut pending_rows = 0usize;
    for batch in sides.batches(&table.name, ROWS_PER_BATCH) {
        let (sides, places, name) = (sides.clone(), Arc::clone(&places), table.name.clone());
        let matched = super::spawn_rayon(move || {
            batch
                .par_iter()
                .map(|&tenant| {
                    let (snapshot, live) = sides.rows(&name, tenant)?;
                    Ok(match_tenant(&places, tenant, &snapshot, &live))
                })
                .collect::<Result<Vec<Matched>>>()
        })
        .await
        .map_err(|_| Error::Inconsistent("a matching task stopped without an answer".into()))??;
        for tenant in matched {
            let result = &mut results[tenant.tenant];
            result.snapshot = tenant.snapshot;
            result.live = tenant.live;
            result.equal = tenant.equal;
            if tenant.snapshot_left.is_empty() || tenant.live_left.is_empty() {
                result.missing = tenant.snapshot_left.len() as u64;
                result.live_only = tenant.live_left.len() as u64;
                continue;
            }
            pending_rows += tenant.snapshot_left.len() + tenant.live_left.len();
            pending.push(tenant);
            if pending_rows >= ROWS_PER_CHUNK {
                let chunk = std::mem::take(&mut pending);
                pending_rows = 0;
                run(&statement, width, &chunk, connection, &mut results, table).await?;
            }
        }
    }
    if !pending.is_empty() {
        run(&statement, width, &pending, connection, &mut results, table).await?;
    }
    Ok(results)
}

/// Compares what text left of some tenants' rows by typed value, in one statement.
async fn run(
    statement: &str,
    width: usize,
    tenants: &[Matched],
    connection: &mut PgConnection,
    results: &mut [TableDiff],
    table: &TablePlan,
) -> Result<()> {
    let mut snapshot = Tagged::new(width);
    let mut live = Tagged::new(width);
    for tenant in tenants {
        for row in &tenant.snapshot_left {
            snapshot.push(tenant.tenant as i32, row);
        }
        for row in &tenant.live_left {
            live.push(tenant.tenant as i32, row);
        }
    }
    let answers = totals_by_tenant(connection, statement, &table.name, snapshot, live).await?;
    for (tenant, matched, missing, extra) in answers {
        if let Some(result) = results.get_mut(tenant as usize) {
            result.equal += matched as u64;
            result.missing += missing as u64;
            result.live_only += extra as u64;
        }
    }
    Ok(())
}

/// Cancels a tenant's snapshot rows against its live rows by the text of the multiset's
/// columns.
fn match_tenant(places: &Places, tenant: usize, snapshot: &[Bytes], live: &[Bytes]) -> Matched {
    let mut matched = Matched {
        tenant,
        ..Matched::default()
    };
    let project = |row: &[u8], positions: &[usize]| -> Vec<u8> {
        let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
        let mut out = Vec::with_capacity(row.len());
        for (number, &position) in positions.iter().enumerate() {
            if number > 0 {
                out.push(b'\t');
            }
            out.extend_from_slice(fields.get(position).copied().unwrap_or(salvage_copy::NULL));
        }
        out
    };
    // Text → how many more copies the snapshot has than live (so far).
    let mut balance: FxHashMap<Vec<u8>, i64> = FxHashMap::default();
    for row in snapshot.iter().flat_map(|chunk| rows_of(chunk)) {
        matched.snapshot += 1;
        *balance.entry(project(row, &places.snapshot)).or_default() += 1;
    }
    for row in live.iter().flat_map(|chunk| rows_of(chunk)) {
        matched.live += 1;
        *balance.entry(project(row, &places.live)).or_default() -= 1;
    }
    let decode = |text: &[u8]| -> TextRow {
        salvage_copy::fields(text)
            .map(salvage_copy::decode_text)
            .collect()
    };
    for (text, count) in balance {
        let copies = count.unsigned_abs() as usize;
        let left = if count > 0 {
            &mut matched.snapshot_left
        } else {
            &mut matched.live_left
        };
        if copies > 0 {
            let row = decode(&text);
            left.extend(std::iter::repeat_n(row, copies));
        }
    }
    // What cancelled out, pair by pair (as many on either side).
    matched.equal = matched.snapshot - matched.snapshot_left.len() as u64;
    matched
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::{Places, match_tenant};

    fn chunk(rows: &[&str]) -> Bytes {
        Bytes::from(rows.iter().flat_map(|row| [*row, "\n"]).collect::<String>())
    }

    #[test]
    fn copies_cancel_out_by_text_and_the_rest_is_left_on_its_side() {
        // Snapshot rows (note, kind); live rows (kind, note): columns kind, note.
        let places = Places {
            snapshot: vec![1, 0],
            live: vec![0, 1],
        };
        let snapshot = [chunk(&["x\ta", "x\ta", "y\tb", "1.50\tc"])];
        let live = [chunk(&["a\tx", "b\ty", "b\ty", "c\t1.5"])];
        let matched = match_tenant(&places, 2, &snapshot, &live);
        assert_eq!((matched.snapshot, matched.live, matched.equal), (4, 4, 2));
        let mut snapshot_left = matched.snapshot_left.clone();
        snapshot_left.sort();
        assert_eq!(
            snapshot_left,
            [
                vec![Some("a".to_owned()), Some("x".to_owned())],
                vec![Some("c".to_owned()), Some("1.50".to_owned())]
            ]
        );
        let mut live_left = matched.live_left.clone();
        live_left.sort();
        assert_eq!(
            live_left,
            [
                vec![Some("b".to_owned()), Some("y".to_owned())],
                vec![Some("c".to_owned()), Some("1.5".to_owned())]
            ]
        );
    }
}
