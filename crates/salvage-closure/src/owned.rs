//! Counting each tenant's rows of the owned tables: which the snapshot has, which live already
//! has as the tenant's (kept as they are), which live has on another tenant's row (the
//! tenant cannot be restored whole), and which the restore adds. Tables without a key are
//! compared as multisets. References to shared tables are collected on the way.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rustc_hash::FxHashSet;
use salvage_catalog::Catalog;
use salvage_pg::OnFirstUse;
use salvage_plan::{Relation, SchemaPlan, TablePlan};
use salvage_source::{Reach, Selected, SelectedTable, TextRow};
use salvage_sql::multiset::Multiset;
use sqlx::postgres::PgConnection;

use crate::closure::{Pending, PlanReporter, is_owned};
use crate::live::existing_keys_by_column_on_two;
use crate::model::{CrossTenantRows, RowFilter, TableCounts, TenantClosure};
use crate::{Error, Result};

/// Examples of a kind kept per table and tenant.
const EXAMPLES: usize = 3;

/// Both sides' rows of the chosen tenants, and how live compares values.
pub struct Sides<'a> {
    pub schema: &'a SchemaPlan,
    pub selected: &'a Selected,
    pub live_members: &'a Selected,
    pub live_catalog: &'a Catalog,
    pub by_value: &'a BTreeSet<String>,
}

/// What counting found besides the counts.
pub struct Counted {
    pub cross_tenant: Vec<CrossTenantRows>,
}

pub async fn count(
    sides: &Sides<'_>,
    (live, second): (&mut PgConnection, &mut OnFirstUse),
    tenants: &mut [TenantClosure],
    totals: &mut [TableCounts],
    pending: &mut Pending,
    reporter: &dyn PlanReporter,
) -> Result<Counted> {
    let mut cross_tenant = Vec::new();
    for (index, table) in sides.schema.tables.iter().enumerate() {
        if !is_owned(table) || !table.in_snapshot {
            continue;
        }
        reporter.reading(&table.name);
        let snapshot = sides.selected.table(&table.name).ok_or_else(|| {
            Error::Inconsistent(format!(
                "the snapshot's rows of {} were not read",
                table.name
            ))
        })?;
        collect_references(sides.schema, table, snapshot, tenants.len(), pending)?;
        if !table.in_live {
            unplaceable(table, snapshot, tenants)?;
            continue;
        }
        let live_rows = sides.live_members.table(&table.name).ok_or_else(|| {
            Error::Inconsistent(format!("live's rows of {} were not read", table.name))
        })?;
        if snapshot.joint_rows() > 0 {
            cross_tenant.push(crossing(table, snapshot, tenants)?);
        }
        match &table.key {
            Some(key) => {
                keyed(
                    sides,
                    (live, second),
                    index,
                    &key.columns,
                    (snapshot, live_rows),
                    tenants,
                    &mut totals[index],
                )
                .await?;
            }
            None => {
                keyless(
                    sides,
                    live,
                    index,
                    (snapshot, live_rows),
                    tenants,
                    &mut totals[index],
                )
                .await?;
            }
        }
    }
    Ok(Counted { cross_tenant })
}

/// The positions of `columns` in a kept table's rows.
pub(crate) fn positions_in(
    rows: &SelectedTable,
    table: &TablePlan,
    columns: &[String],
) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|column| {
            rows.columns()
                .iter()
                .position(|name| name == column)
                .ok_or_else(|| {
                    Error::Inconsistent(format!(
                        "{}'s rows were read without their column {column}",
                        table.name
                    ))
                })
        })
        .collect()
}

/// The raw key (tab-joined COPY fields) at `positions`; `None` when a field is NULL.
#[must_use]
pub fn raw_key(fields: &[&[u8]], positions: &[usize]) -> Option<Box<[u8]>> {
    let mut key = Vec::new();
    for (number, &position) in positions.iter().enumerate() {
        let field = *fields.get(position)?;
        if salvage_copy::is_null(field) {
            return None;
        }
        if number > 0 {
            key.push(b'\t');
        }
        key.extend_from_slice(field);
    }
    Some(key.into())
}

fn decode(fields: &[&[u8]], positions: &[usize]) -> TextRow {
    positions
        .iter()
        .map(|&position| {
            fields
                .get(position)
                .and_then(|field| salvage_copy::decode_text(field))
        })
        .collect()
}

/// A reference to a shared table: the relation, the parent's index, where the columns are
/// in the rows, and its condition (position, value).
type Reference<'r> = (&'r Relation, usize, Vec<usize>, Option<(usize, &'r str)>);

/// Every tenant's references from its rows of `table` to shared tables.
fn collect_references(
    schema: &SchemaPlan,
    table: &TablePlan,
    rows: &SelectedTable,
    tenants: usize,
    pending: &mut Pending,
) -> Result<()> {
    if table.shared_references.is_empty() {
        return Ok(());
    }
    let references: Vec<Reference<'_>> = table
        .shared_references
        .iter()
        .map(|relation| {
            let parent = schema.table_index(&relation.parent).ok_or_else(|| {
                Error::Inconsistent(format!("{} is not a table of the plan", relation.parent))
            })?;
            let columns = positions_in(rows, table, &relation.child_columns)?;
            let condition = match &relation.condition {
                Some(condition) => Some((
                    positions_in(rows, table, std::slice::from_ref(&condition.column))?[0],
                    condition.value.as_str(),
                )),
                None => None,
            };
            Ok((relation, parent, columns, condition))
        })
        .collect::<Result<_>>()?;
    // Only the fields up to the last one a reference looks at are split.
    let needed = references
        .iter()
        .flat_map(|(_, _, columns, condition)| {
            columns.iter().copied().chain(condition.map(|(at, _)| at))
        })
        .max()
        .map_or(0, |last| last + 1);
    for tenant in 0..tenants {
        for chunk in rows.all_rows(tenant)? {
            let mut fields: Vec<&[u8]> = Vec::with_capacity(needed);
            for row in salvage_source::rows_of(&chunk) {
                fields.clear();
                fields.extend(salvage_copy::fields(row).take(needed));
                for (relation, parent, columns, condition) in &references {
                    if let Some((position, value)) = condition {
                        let holds = fields
                            .get(*position)
                            .and_then(|field| salvage_copy::decode_text(field))
                            .is_some_and(|text| text == *value);
                        if !holds {
                            continue;
                        }
                    }
                    let key = decode(&fields, columns);
                    if key.iter().any(Option::is_none) {
                        continue;
                    }
                    pending
                        .entry((*parent, relation.parent_columns.clone()))
                        .or_default()
                        .entry(key)
                        .or_default()
                        .insert(tenant);
                }
            }
        }
    }
    Ok(())
}

/// A table live no longer has: any row of the chosen tenants in it cannot be placed.
fn unplaceable(table: &TablePlan, rows: &SelectedTable, tenants: &[TenantClosure]) -> Result<()> {
    let holding: Vec<String> = tenants
        .iter()
        .enumerate()
        .filter(|(number, _)| rows.total(*number) > 0)
        .map(|(_, tenant)| tenant.id.clone())
        .collect();
    if holding.is_empty() {
        return Ok(());
    }
    Err(Error::Unplaceable {
        table: table.name.clone(),
        rows: (0..tenants.len()).map(|number| rows.total(number)).sum(),
        tenants: holding,
    })
}

/// Rows reaching several chosen tenants, with examples naming them.
fn crossing(
    table: &TablePlan,
    rows: &SelectedTable,
    tenants: &[TenantClosure],
) -> Result<CrossTenantRows> {
    let key_columns: Vec<String> = table
        .key
        .as_ref()
        .map_or_else(|| rows.columns().to_vec(), |key| key.columns.clone());
    let positions = positions_in(rows, table, &key_columns)?;
    let mut reached: HashMap<Box<[u8]>, Vec<&str>> = HashMap::new();
    let mut order: Vec<Box<[u8]>> = Vec::new();
    for (number, tenant) in tenants.iter().enumerate() {
        for chunk in rows.rows(number, Reach::Joint)? {
            for row in salvage_source::rows_of(&chunk) {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                let key: Box<[u8]> = positions
                    .iter()
                    .map(|&position| fields.get(position).copied().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(&b'\t')
                    .into();
                let entry = reached.entry(key.clone()).or_default();
                if entry.is_empty() && order.len() < 5 {
                    order.push(key);
                }
                entry.push(&tenant.id);
            }
        }
    }
    let examples = order
        .iter()
        .map(|key| {
            let values: Vec<String> = salvage_copy::fields(key)
                .map(|field| salvage_copy::decode_text(field).unwrap_or_else(|| "NULL".to_owned()))
                .collect();
            format!(
                "({})=({}) reaches tenants {}",
                key_columns.join(", "),
                values.join(", "),
                reached[key].join(", ")
            )
        })
        .collect();
    Ok(CrossTenantRows {
        table: table.name.clone(),
        rows: rows.joint_rows(),
        examples,
    })
}

/// A table with a key: rows per tenant, and which keys live already has and as whose.
async fn keyed(
    sides: &Sides<'_>,
    (live, second): (&mut PgConnection, &mut OnFirstUse),
    index: usize,
    key_columns: &[String],
    (snapshot, live_rows): (&SelectedTable, &SelectedTable),
    tenants: &mut [TenantClosure],
    total: &mut TableCounts,
) -> Result<()> {
    let table = &sides.schema.tables[index];
    let snapshot_key = positions_in(snapshot, table, key_columns)?;
    let live_key = positions_in(live_rows, table, key_columns)?;
    // Live's rows of any chosen tenant: a key among them is one of the restore's own.
    let mut ours: FxHashSet<Box<[u8]>> = FxHashSet::default();
    for number in 0..tenants.len() {
        for chunk in live_rows.all_rows(number)? {
            for row in salvage_source::rows_of(&chunk) {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                if let Some(key) = raw_key(&fields, &live_key) {
                    ours.insert(key);
                }
            }
        }
    }
    // Other unique keys of the live table (a slug): a row to add whose value a live row
    // already holds fails its tenant as surely as a held key, so it is looked up too.
    let others = other_unique_keys(sides.live_catalog, table, key_columns, snapshot);
    let bound_columns: Vec<String> = key_columns
        .iter()
        .chain(others.iter().flat_map(|(_, columns)| columns))
        .fold(Vec::new(), |mut all, column| {
            if !all.contains(column) {
                all.push(column.clone());
            }
            all
        });
    let bound_positions = if others.is_empty() {
        Vec::new()
    } else {
        positions_in(snapshot, table, &bound_columns)?
    };
    // The others are looked up in live: present there, they are another tenant's.
    // Each unknown row: its tenant, raw key, whether it reaches several tenants, and its other
    // unique keys' values; its key's values go straight to the arrays live is asked with.
    let mut unknown: Vec<(usize, Box<[u8]>, bool, TextRow)> = Vec::new();
    let mut asked: Vec<Vec<Option<String>>> = vec![Vec::new(); snapshot_key.len()];
    let mut present: Vec<FxHashSet<Box<[u8]>>> = vec![FxHashSet::default(); tenants.len()];
    let mut counted_joint: FxHashSet<Box<[u8]>> = FxHashSet::default();
    let needed = snapshot_key
        .iter()
        .chain(&bound_positions)
        .max()
        .map_or(0, |last| last + 1);
    for (number, tenant) in tenants.iter_mut().enumerate() {
        let counts = &mut tenant.tables[index];
        for reach in [Reach::Sole, Reach::Joint] {
            for chunk in snapshot.rows(number, reach)? {
                let mut fields: Vec<&[u8]> = Vec::with_capacity(needed);
                for row in salvage_source::rows_of(&chunk) {
                    fields.clear();
                    fields.extend(salvage_copy::fields(row).take(needed));
                    let key = raw_key(&fields, &snapshot_key).ok_or_else(|| {
                        Error::Inconsistent(format!("a row of {} has a NULL key", table.name))
                    })?;
                    counts.snapshot += 1;
                    let first = reach == Reach::Sole || counted_joint.insert(key.clone());
                    if reach == Reach::Joint {
                        counts.joint += 1;
                    }
                    if first {
                        total.snapshot += 1;
                    }
                    if ours.contains(&key) {
                        counts.in_live += 1;
                        total.in_live += u64::from(first);
                        present[number].insert(key);
                    } else {
                        for (values, &position) in asked.iter_mut().zip(&snapshot_key) {
                            values.push(
                                fields
                                    .get(position)
                                    .and_then(|field| salvage_copy::decode_text(field)),
                            );
                        }
                        unknown.push((
                            number,
                            key,
                            reach == Reach::Joint,
                            decode(&fields, &bound_positions),
                        ));
                    }
                }
            }
        }
    }
    // Every key of a tenant deleted from live is asked: a large set is probed on two
    // connections at once.
    let found = existing_keys_by_column_on_two(
        live,
        second,
        sides.live_catalog,
        &table.name,
        key_columns,
        &asked,
    )
    .await?;
    // A row reaching one tenant is one row of the totals; one reaching several, once.
    let mut counted: FxHashSet<Box<[u8]>> = FxHashSet::default();
    let mut to_add: Vec<(usize, bool, TextRow)> = Vec::new();
    for (row, ((number, raw, joint, bound), found)) in unknown.into_iter().zip(found).enumerate() {
        let tenant = &mut tenants[number];
        let counts = &mut tenant.tables[index];
        let first = !joint || counted.insert(raw.clone());
        if found {
            counts.held_elsewhere += 1;
            total.held_elsewhere += u64::from(first);
            if tenant.held_elsewhere.len() < EXAMPLES * 4 {
                let values: Vec<&str> = asked
                    .iter()
                    .map(|column| column[row].as_deref().unwrap_or("NULL"))
                    .collect();
                tenant.held_elsewhere.push(format!(
                    "{}: live already has ({})=({}) but on another tenant's rows",
                    table.name,
                    key_columns.join(", "),
                    values.join(", ")
                ));
            }
            present[number].insert(raw);
        } else {
            counts.to_add += 1;
            total.to_add += u64::from(first);
            if !others.is_empty() {
                to_add.push((number, first, bound));
            }
        }
    }
    if !to_add.is_empty() {
        let rows: Vec<TextRow> = to_add.iter().map(|(_, _, bound)| bound.clone()).collect();
        let holders = unique_key_holders(
            live,
            sides.live_catalog,
            table,
            (&bound_columns, key_columns.len()),
            &others,
            &rows,
        )
        .await?;
        for (row, (key_number, holder)) in holders {
            let (number, first, bound) = &to_add[row];
            let tenant = &mut tenants[*number];
            let counts = &mut tenant.tables[index];
            counts.to_add -= 1;
            counts.held_elsewhere += 1;
            total.to_add -= u64::from(*first);
            total.held_elsewhere += u64::from(*first);
            if tenant.held_elsewhere.len() < EXAMPLES * 4 {
                let (name, columns) = &others[key_number];
                let values: Vec<&str> = columns
                    .iter()
                    .map(|column| {
                        bound_columns
                            .iter()
                            .position(|bound| bound == column)
                            .and_then(|position| bound[position].as_deref())
                            .unwrap_or("NULL")
                    })
                    .collect();
                tenant.held_elsewhere.push(format!(
                    "{}: ({})=({}) is already held in live by the row ({})=({}) (unique constraint {name})",
                    table.name,
                    columns.join(", "),
                    values.join(", "),
                    key_columns.join(", "),
                    holder
                        .iter()
                        .map(|value| value.as_deref().unwrap_or("NULL"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    for (tenant, present) in tenants.iter_mut().zip(present) {
        if !present.is_empty() {
            tenant.filters[index] = RowFilter::SkipKeys(Arc::new(present));
        }
    }
    Ok(())
}

/// The live table's unique keys other than `key_columns` (constraint or index name, columns)
/// whose columns the snapshot's rows all have.
fn other_unique_keys(
    live: &Catalog,
    table: &TablePlan,
    key_columns: &[String],
    snapshot: &SelectedTable,
) -> Vec<(String, Vec<String>)> {
    let Some(live_table) = live.table(&table.name) else {
        return Vec::new();
    };
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for key in live_table.primary_key.iter().chain(&live_table.unique_keys) {
        let same = key.columns.len() == key_columns.len()
            && key
                .columns
                .iter()
                .all(|column| key_columns.contains(column));
        let readable = key
            .columns
            .iter()
            .all(|column| snapshot.columns().contains(column));
        if !same && readable && !keys.iter().any(|(_, columns)| *columns == key.columns) {
            keys.push((key.name.clone(), key.columns.clone()));
        }
    }
    keys
}

/// A row (by position) whose other unique key a live row holds: the key's number and the
/// holder's key.
type Holder = (usize, (usize, TextRow));

/// For each of `rows` (values of `columns.0`, whose first `columns.1` are the table's key)
/// that a live row other than itself already holds on one of `unique_keys`: its position in
/// `rows`, the key's number, and the holder's key. One statement per chunk of rows, each key
/// probed on its index.
async fn unique_key_holders(
    live: &mut PgConnection,
    catalog: &Catalog,
    table: &TablePlan,
    (columns, key_length): (&[String], usize),
    unique_keys: &[(String, Vec<String>)],
    rows: &[TextRow],
) -> Result<Vec<Holder>> {
    const ROWS_PER_QUERY: usize = 50_000;
    let definition = catalog
        .table(&table.name)
        .ok_or_else(|| Error::Inconsistent(format!("live has no table {}", table.name)))?;
    let typed: Vec<(String, String)> = columns
        .iter()
        .map(|column| {
            definition
                .column(column)
                .map(|found| (column.clone(), found.type_name.clone()))
                .ok_or_else(|| {
                    Error::Inconsistent(format!("live's {} has no column {column}", table.name))
                })
        })
        .collect::<Result<_>>()?;
    let key_positions: Vec<Vec<usize>> = unique_keys
        .iter()
        .map(|(_, key)| {
            key.iter()
                .filter_map(|column| columns.iter().position(|bound| bound == column))
                .collect()
        })
        .collect();
    let sql = salvage_sql::keys::unique_key_holders(
        &salvage_sql::from_item(catalog, &table.name),
        &typed,
        &(0..key_length).collect::<Vec<_>>(),
        &key_positions,
    );
    let mut holders: Vec<Holder> = Vec::new();
    let mut named: std::collections::HashSet<usize> = std::collections::HashSet::new();
    for (chunk_index, chunk) in rows.chunks(ROWS_PER_QUERY).enumerate() {
        let mut query = sqlx::query_as::<_, (i32, i32, Vec<Option<String>>)>(&sql);
        for position in 0..columns.len() {
            let values: Vec<Option<String>> = chunk
                .iter()
                .map(|row| row.get(position).cloned().flatten())
                .collect();
            query = query.bind(values);
        }
        let found = query
            .fetch_all(&mut *live)
            .await
            .map_err(salvage_pg::Error::query(format!(
                "look up the unique keys of {} in live",
                table.name
            )))?;
        for (number, key, holder) in found {
            // WITH ORDINALITY counts from 1; a row is named by its first conflict only.
            let row = chunk_index * ROWS_PER_QUERY + number as usize - 1;
            if named.insert(row) {
                holders.push((row, (key as usize, holder)));
            }
        }
    }
    Ok(holders)
}

/// A table without a key: each tenant's rows compared with its live rows as multisets; the
/// copies live lacks are the ones to add. A row reaching several chosen tenants goes in once,
/// with the first of them.
async fn keyless(
    sides: &Sides<'_>,
    live: &mut PgConnection,
    index: usize,
    (snapshot, live_rows): (&SelectedTable, &SelectedTable),
    tenants: &mut [TenantClosure],
    total: &mut TableCounts,
) -> Result<()> {
    let table = &sides.schema.tables[index];
    let multiset = multiset_of(table, sides.live_catalog, sides.by_value)?;
    let columns = multiset.column_names();
    let snapshot_positions = positions_in(snapshot, table, &columns)?;
    let live_positions = positions_in(live_rows, table, &columns)?;
    let statement = multiset.rows_to_add();
    let mut claimed: HashMap<Vec<u8>, u64> = HashMap::new();
    // Many tenants' rows go to live in one statement, each row tagged with its tenant: a
    // statement per tenant cost a thousand tiny tenants a fifth of a second.
    let mut batch = KeylessBatch::new(columns.len());
    let mut compared = vec![0u64; tenants.len()];
    let mut added: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); tenants.len()];
    for (number, tenant) in tenants.iter_mut().enumerate() {
        let tag = i32::try_from(number)
            .map_err(|_| Error::Inconsistent("more tenants than a statement can tag".into()))?;
        // Its rows in reading order (as the merge reads them), numbered.
        let mut position = 0i32;
        let mut joint = 0u64;
        for reach in [Reach::Sole, Reach::Joint] {
            for chunk in snapshot.rows(number, reach)? {
                for row in salvage_source::rows_of(&chunk) {
                    let here = position;
                    position += 1;
                    if reach == Reach::Joint {
                        joint += 1;
                        // Written by the first tenant that has it.
                        if let Some(count) = claimed.get_mut(row).filter(|count| **count > 0) {
                            *count -= 1;
                            continue;
                        }
                    }
                    let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                    batch.snapshot(tag, here, decode(&fields, &snapshot_positions));
                    compared[number] += 1;
                }
            }
        }
        for chunk in snapshot.rows(number, Reach::Joint)? {
            for row in salvage_source::rows_of(&chunk) {
                *claimed.entry(row.to_vec()).or_default() += 1;
            }
        }
        for chunk in live_rows.all_rows(number)? {
            for row in salvage_source::rows_of(&chunk) {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                batch.live(tag, decode(&fields, &live_positions));
            }
        }
        let counts = &mut tenant.tables[index];
        counts.snapshot = position as u64;
        counts.joint = joint;
        if batch.rows >= KEYLESS_ROWS_PER_STATEMENT {
            batch.ask(live, &statement, &table.name, &mut added).await?;
        }
    }
    batch.ask(live, &statement, &table.name, &mut added).await?;
    for ((tenant, add), compared) in tenants.iter_mut().zip(added).zip(compared) {
        let counts = &mut tenant.tables[index];
        counts.to_add = add.len() as u64;
        counts.in_live = compared - counts.to_add;
        total.snapshot += compared;
        total.to_add += counts.to_add;
        total.in_live += counts.in_live;
        tenant.filters[index] = RowFilter::Take(Arc::new(add));
    }
    Ok(())
}

/// Rows (both sides) compared by one statement at most.
const KEYLESS_ROWS_PER_STATEMENT: usize = 50_000;

/// Several tenants' rows of a keyless table, bound as [`salvage_sql::multiset::Multiset::
/// rows_to_add`] takes them.
struct KeylessBatch {
    snapshot_tenants: Vec<i32>,
    numbers: Vec<i32>,
    snapshot_columns: Vec<Vec<Option<String>>>,
    live_tenants: Vec<i32>,
    live_columns: Vec<Vec<Option<String>>>,
    rows: usize,
}

impl KeylessBatch {
    fn new(width: usize) -> Self {
        Self {
            snapshot_tenants: Vec::new(),
            numbers: Vec::new(),
            snapshot_columns: vec![Vec::new(); width],
            live_tenants: Vec::new(),
            live_columns: vec![Vec::new(); width],
            rows: 0,
        }
    }

    fn snapshot(&mut self, tenant: i32, number: i32, row: TextRow) {
        self.snapshot_tenants.push(tenant);
        self.numbers.push(number);
        for (column, value) in self.snapshot_columns.iter_mut().zip(row) {
            column.push(value);
        }
        self.rows += 1;
    }

    fn live(&mut self, tenant: i32, row: TextRow) {
        self.live_tenants.push(tenant);
        for (column, value) in self.live_columns.iter_mut().zip(row) {
            column.push(value);
        }
        self.rows += 1;
    }

    /// Asks live which snapshot rows it lacks, per tenant (into `added`), and empties the
    /// batch.
    async fn ask(
        &mut self,
        live: &mut PgConnection,
        statement: &str,
        table: &salvage_catalog::QualifiedName,
        added: &mut [BTreeSet<u64>],
    ) -> Result<()> {
        if self.snapshot_tenants.is_empty() {
            *self = Self::new(self.snapshot_columns.len());
            return Ok(());
        }
        let width = self.snapshot_columns.len();
        let taken = std::mem::replace(self, Self::new(width));
        let mut query = sqlx::query_as::<_, (i32, i32)>(statement)
            .bind(taken.snapshot_tenants)
            .bind(taken.numbers);
        for column in taken.snapshot_columns {
            query = query.bind(column);
        }
        query = query.bind(taken.live_tenants);
        for column in taken.live_columns {
            query = query.bind(column);
        }
        let rows = query
            .fetch_all(&mut *live)
            .await
            .map_err(salvage_pg::Error::query(format!(
                "compare {table}'s rows with live"
            )))?;
        for (tenant, number) in rows {
            let set = usize::try_from(tenant)
                .ok()
                .and_then(|tenant| added.get_mut(tenant))
                .ok_or_else(|| {
                    Error::Inconsistent(format!("live answered for no tenant {tenant}"))
                })?;
            set.insert(number as u64);
        }
        Ok(())
    }
}

/// The multiset view of a keyless table: its written columns with their live types.
pub fn multiset_of(
    table: &TablePlan,
    live: &Catalog,
    by_value: &BTreeSet<String>,
) -> Result<Multiset> {
    let live_table = live
        .table(&table.name)
        .ok_or_else(|| Error::Inconsistent(format!("live has no table {}", table.name)))?;
    let columns = table
        .written_columns()
        .map(|column| {
            let type_name = live_table
                .column(&column.name)
                .ok_or_else(|| {
                    Error::Inconsistent(format!(
                        "{} writes {}, which live's table lacks",
                        table.name, column.name
                    ))
                })?
                .type_name
                .clone();
            let typed = by_value.contains(&type_name);
            Ok((column.name.clone(), type_name, typed))
        })
        .collect::<Result<_>>()?;
    Ok(Multiset::new(columns))
}
