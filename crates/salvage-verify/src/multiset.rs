//! Tables without a key, checked as multisets: a tenant's snapshot rows (with the copies the
//! plan left behind) against its live rows, both bound as arrays.

use salvage_closure::multiset_of;
use salvage_pg::OnFirstUse;
use salvage_plan::Role;
use salvage_source::{SnapshotReader, TextRow};
use sqlx::postgres::PgConnection;

use crate::check::{Context, EXAMPLES};
use crate::model::TableCheck;
use crate::{Error, Result};

/// One tenant's rows of a keyless table, ready to compare.
struct Sides<'a> {
    /// Its snapshot rows to find in live (the copies left behind among them).
    rows: Vec<TextRow>,
    waiting: u64,
    left: Vec<&'a TextRow>,
    live: Vec<TextRow>,
}

impl Context {
    /// One keyless table of a batch of tenants (`indexes`), compared as multisets in one
    /// statement, rows tagged with their tenant's place in the batch: each tenant's snapshot
    /// rows (with the copies the plan left behind) against its live rows, both bound as
    /// arrays. `None` for a tenant with nothing of a shared table.
    pub(crate) async fn check_multisets(
        &self,
        table_index: usize,
        indexes: &[usize],
        connection: &mut OnFirstUse,
        reader: &mut SnapshotReader,
    ) -> Result<Vec<Option<TableCheck>>> {
        let plan = &self.plan;
        let table = &plan.schema.tables[table_index];
        let multiset = multiset_of(table, &self.live_catalog, &plan.by_value)?;
        let columns = multiset.column_names();
        let mut sides: Vec<Option<Sides<'_>>> = Vec::with_capacity(indexes.len());
        for &index in indexes {
            sides.push(
                self.multiset_sides(table_index, index, &columns, connection, reader)
                    .await?,
            );
        }
        // Each tenant's (matched, missing, extra), by its place in the batch.
        let mut totals: Vec<(i64, i64, i64)> = vec![(0, 0, 0); indexes.len()];
        if sides
            .iter()
            .flatten()
            .any(|side| !side.rows.is_empty() || !side.live.is_empty())
        {
            let mut snapshot = Tagged::new(columns.len());
            let mut live = Tagged::new(columns.len());
            for (place, side) in sides.iter().enumerate() {
                let Some(side) = side else { continue };
                let tag = i32::try_from(place)
                    .map_err(|_| Error::Inconsistent("a batch too large to tag".to_owned()))?;
                for row in &side.rows {
                    snapshot.push(tag, row);
                }
                for row in &side.live {
                    live.push(tag, row);
                }
            }
            let found = totals_by_tenant(
                connection.get().await?,
                &multiset.totals_by_tenant(),
                &table.name,
                snapshot,
                live,
            )
            .await?;
            for (tag, matched, missing, extra) in found {
                let slot = usize::try_from(tag)
                    .ok()
                    .and_then(|place| totals.get_mut(place))
                    .ok_or_else(|| {
                        Error::Inconsistent(format!("live answered for no tenant {tag}"))
                    })?;
                *slot = (matched, missing, extra);
            }
        }
        let mut checks = Vec::with_capacity(indexes.len());
        for ((&index, side), (matched, missing, extra)) in indexes.iter().zip(sides).zip(totals) {
            let Some(side) = side else {
                checks.push(None);
                continue;
            };
            let left_missing = (missing as u64).min(side.left.len() as u64);
            let mut examples = Vec::new();
            for values in side
                .left
                .iter()
                .take(if left_missing > 0 { EXAMPLES } else { 0 })
            {
                let field = |column: &str| {
                    let place = columns.iter().position(|name| name == column)?;
                    let mut raw = Vec::new();
                    salvage_copy::encode(values[place].as_deref().map(str::as_bytes), &mut raw);
                    Some(raw)
                };
                let chain = self
                    .reached
                    .chain(&self.plan.schema, reader, table_index, &field, index as u32)
                    .await?;
                let text: Vec<&str> = values
                    .iter()
                    .map(|value| value.as_deref().unwrap_or("NULL"))
                    .collect();
                examples.push(format!(
                    "({})=({}) left behind: {chain}",
                    columns.join(", "),
                    text.join(", ")
                ));
            }
            checks.push(Some(TableCheck {
                table: Some(table.name.clone()),
                snapshot: side.rows.len() as u64 + side.waiting,
                equal: matched as u64,
                missing: missing as u64,
                left_behind: left_missing,
                live_only: (table.role != Role::Shared).then_some(extra as u64),
                waiting: side.waiting,
                missing_examples: examples,
                multiset: true,
                ..TableCheck::default()
            }));
        }
        Ok(checks)
    }

    /// A tenant's rows of a keyless table on both sides (`None`: a shared table it has
    /// nothing of).
    async fn multiset_sides(
        &self,
        table_index: usize,
        index: usize,
        columns: &[String],
        connection: &mut OnFirstUse,
        reader: &mut SnapshotReader,
    ) -> Result<Option<Sides<'_>>> {
        let plan = &self.plan;
        let table = &plan.schema.tables[table_index];
        let tenant = &plan.tenants[index];
        let snapshot_places: Vec<usize> = columns
            .iter()
            .map(|name| {
                table.column_index(name).ok_or_else(|| {
                    Error::Inconsistent(format!(
                        "{} has no column {name} in the snapshot",
                        table.name
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let mut rows: Vec<TextRow> = Vec::new();
        match self
            .snapshot_rows(table_index, index, tenant, reader)
            .await?
        {
            Some(chunks) => {
                for chunk in &chunks {
                    for line in salvage_source::rows_of(chunk) {
                        let fields: Vec<&[u8]> = salvage_copy::fields(line).collect();
                        rows.push(
                            snapshot_places
                                .iter()
                                .map(|&place| {
                                    fields
                                        .get(place)
                                        .and_then(|field| salvage_copy::decode_text(field))
                                })
                                .collect(),
                        );
                    }
                }
            }
            None if table.role == Role::Shared => return Ok(None),
            None => {}
        }
        let waiting = self
            .set_aside_waiting(table_index, index, columns, &mut rows, connection)
            .await?;
        let left: Vec<&TextRow> = self
            .left
            .get(&table_index)
            .map(|left| left.values[index].iter().collect())
            .unwrap_or_default();
        rows.extend(left.iter().map(|values| (*values).clone()));
        let mut live: Vec<TextRow> = Vec::new();
        if table.role != Role::Shared {
            if let Some(kept) = self.live_rows.table(&table.name) {
                let places = salvage_closure::guards::positions(table, kept.columns(), columns)?;
                for chunk in kept.all_rows(index)? {
                    for line in salvage_source::rows_of(&chunk) {
                        let fields: Vec<&[u8]> = salvage_copy::fields(line).collect();
                        live.push(
                            places
                                .iter()
                                .map(|&place| {
                                    fields
                                        .get(place)
                                        .and_then(|field| salvage_copy::decode_text(field))
                                })
                                .collect(),
                        );
                    }
                }
            }
        }
        Ok(Some(Sides {
            rows,
            waiting,
            left,
            live,
        }))
    }

    /// Takes out of `rows` (one copy each) the rows the plan found waiting for a parent that
    /// is still not in live, and counts them: they are waiting, not missing. A parent that
    /// is in live now makes its row one to find like any other.
    async fn set_aside_waiting(
        &self,
        table_index: usize,
        index: usize,
        columns: &[String],
        rows: &mut Vec<TextRow>,
        connection: &mut OnFirstUse,
    ) -> Result<u64> {
        let plan = &self.plan;
        let Some(waits) = plan.keyless_waiting.get(&(table_index, index)) else {
            return Ok(0);
        };
        let table = &plan.schema.tables[table_index];
        let Some(kept) = plan.selected.table(&table.name) else {
            return Ok(0);
        };
        let places = salvage_closure::guards::positions(table, kept.columns(), columns)?;
        let mut by_parent: std::collections::BTreeMap<_, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (number, wait) in waits.iter().enumerate() {
            by_parent
                .entry(wait.parent.clone())
                .or_default()
                .push(number);
        }
        let mut still_waiting = vec![false; waits.len()];
        for ((parent, parent_columns), numbers) in by_parent {
            let keys: Vec<TextRow> = numbers
                .iter()
                .map(|&number| {
                    salvage_copy::fields(&waits[number].key)
                        .map(salvage_copy::decode_text)
                        .collect()
                })
                .collect();
            let present = salvage_closure::existing_keys(
                connection.get().await?,
                &self.live_catalog,
                &parent,
                &parent_columns,
                &keys,
            )
            .await?;
            for (&number, present) in numbers.iter().zip(present) {
                still_waiting[number] = !present;
            }
        }
        // The copies to set aside, by row: one pass over the rows, however many wait.
        let mut aside: rustc_hash::FxHashMap<TextRow, u64> = rustc_hash::FxHashMap::default();
        for (wait, still) in waits.iter().zip(still_waiting) {
            if !still {
                continue;
            }
            let fields: Vec<&[u8]> = salvage_copy::fields(&wait.row).collect();
            let row: TextRow = places
                .iter()
                .map(|&place| {
                    fields
                        .get(place)
                        .and_then(|field| salvage_copy::decode_text(field))
                })
                .collect();
            *aside.entry(row).or_default() += 1;
        }
        let mut waiting = 0;
        rows.retain(|row| match aside.get_mut(row) {
            Some(copies) if *copies > 0 => {
                *copies -= 1;
                waiting += 1;
                false
            }
            _ => true,
        });
        Ok(waiting)
    }
}

/// One side of [`totals_by_tenant`]: rows of several tenants, each tagged with its tenant,
/// one text array per column.
pub(crate) struct Tagged {
    tags: Vec<i32>,
    columns: Vec<Vec<Option<String>>>,
}

impl Tagged {
    pub(crate) fn new(width: usize) -> Self {
        Self {
            tags: Vec::new(),
            columns: vec![Vec::new(); width],
        }
    }

    pub(crate) fn push(&mut self, tag: i32, row: &TextRow) {
        self.tags.push(tag);
        for (column, values) in self.columns.iter_mut().enumerate() {
            values.push(row.get(column).cloned().flatten());
        }
    }
}

/// Per tenant tag, `(matched, missing, extra)` of the rows of each side, compared by
/// `statement` ([`salvage_sql::multiset::Multiset::totals_by_tenant`]) in one statement. A
/// tag without a row on either side is not answered.
pub(crate) async fn totals_by_tenant(
    connection: &mut PgConnection,
    statement: &str,
    table: &salvage_catalog::QualifiedName,
    snapshot: Tagged,
    live: Tagged,
) -> Result<Vec<(i32, i64, i64, i64)>> {
    let mut query = sqlx::query_as::<_, (i32, i64, i64, i64)>(statement).bind(snapshot.tags);
    for values in snapshot.columns {
        query = query.bind(values);
    }
    query = query.bind(live.tags);
    for values in live.columns {
        query = query.bind(values);
    }
    Ok(query
        .fetch_all(&mut *connection)
        .await
        .map_err(salvage_pg::Error::query(format!(
            "compare {table}'s rows with live"
        )))?)
}
