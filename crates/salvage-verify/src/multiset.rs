//! Tables without a key, checked as multisets: a tenant's snapshot rows (with the copies the
//! plan left behind) against its live rows, both bound as arrays.

use salvage_closure::multiset_of;
use salvage_plan::Role;
use salvage_source::{SnapshotReader, TextRow};
use sqlx::postgres::PgConnection;

use crate::check::{Context, EXAMPLES};
use crate::model::TableCheck;
use crate::{Error, Result};

impl Context {
    /// One keyless table of one tenant, compared as multisets: its snapshot rows (with the
    /// copies the plan left behind) against its live rows, both bound as arrays.
    pub(crate) async fn check_multiset(
        &self,
        table_index: usize,
        index: usize,
        connection: &mut PgConnection,
        reader: &mut SnapshotReader,
    ) -> Result<Option<TableCheck>> {
        let plan = &self.plan;
        let table = &plan.schema.tables[table_index];
        let tenant = &plan.tenants[index];
        let multiset = multiset_of(table, &self.live_catalog, &plan.by_value)?;
        let columns = multiset.column_names();
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
            .set_aside_waiting(table_index, index, &columns, &mut rows, connection)
            .await?;
        let left: Vec<&TextRow> = self
            .left
            .get(&table_index)
            .map(|left| left.values[index].iter().collect())
            .unwrap_or_default();
        rows.extend(left.iter().map(|values| (*values).clone()));
        let mut live_rows: Vec<TextRow> = Vec::new();
        if table.role != Role::Shared {
            if let Some(kept) = self.live_rows.table(&table.name) {
                let places = salvage_closure::guards::positions(table, kept.columns(), &columns)?;
                for chunk in kept.all_rows(index)? {
                    for line in salvage_source::rows_of(&chunk) {
                        let fields: Vec<&[u8]> = salvage_copy::fields(line).collect();
                        live_rows.push(
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
        let sql = multiset.totals();
        let mut query = sqlx::query_as::<_, (i64, i64, i64)>(&sql);
        for column in 0..columns.len() {
            query = query.bind(
                rows.iter()
                    .map(|row| row[column].clone())
                    .collect::<Vec<_>>(),
            );
        }
        for column in 0..columns.len() {
            query = query.bind(
                live_rows
                    .iter()
                    .map(|row| row[column].clone())
                    .collect::<Vec<_>>(),
            );
        }
        let (matched, missing, extra) =
            query
                .fetch_one(&mut *connection)
                .await
                .map_err(salvage_pg::Error::query(format!(
                    "compare {}'s rows with live",
                    table.name
                )))?;
        let left_missing = (missing as u64).min(left.len() as u64);
        let mut examples = Vec::new();
        for values in left
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
        Ok(Some(TableCheck {
            table: Some(table.name.clone()),
            snapshot: rows.len() as u64 + waiting,
            equal: matched as u64,
            missing: missing as u64,
            left_behind: left_missing,
            live_only: (table.role != Role::Shared).then_some(extra as u64),
            waiting,
            missing_examples: examples,
            multiset: true,
            ..TableCheck::default()
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
        connection: &mut PgConnection,
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
                connection,
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
