//! Modes `overwrite` and `exact`: which of the chosen tenants' live rows the restore changes.
//!
//! Both sides' rows of the chosen tenants are already read by the membership rule (the
//! snapshot's kept columns; live's key and written columns). Per owned table with a key and
//! per tenant:
//! - a snapshot row whose key the tenant's live rows hold with other text is asked in live,
//!   typed (probed by key, in chunks): the columns whose values differ, if any, make it an
//!   update;
//! - mode exact: a live row of the tenant whose key no chosen tenant's snapshot rows have is
//!   a delete.
//!
//! Rows are never changed when that would reach past the chosen tenants: a row one of whose
//! parents (either version's) is not among the chosen tenants' rows reaches a tenant not being
//! restored; an update of a column other rows reference would move or orphan them; a row to
//! delete that a row staying in live references (by its values after the restore) must stay
//! too — worked out to a fixpoint, and for references from tables outside the tenants'
//! rows asked in live. Each such row is counted as left alone and named. A row reaching
//! several chosen tenants is changed by the first of them only. Tables without a key are
//! not changed (their rows cannot be told apart to update or delete one).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use salvage_catalog::QualifiedName;
use salvage_plan::{Mode, Relation, TablePlan};
use salvage_source::{SelectedTable, TextRow};
use salvage_sql::from_item;
use salvage_sql::images::{Typed, changed_columns};
use sqlx::postgres::PgConnection;

use crate::closure::is_owned;
use crate::live::existing_keys;
use crate::model::{KeysByParent, TableChanges, TableCounts, TenantClosure};
use crate::owned::{Sides, positions_in, raw_key};
use crate::{Error, Result};

/// Rows compared in live per statement.
const ROWS_PER_QUERY: usize = 5_000;
/// Examples of rows left alone kept per table and tenant.
const EXAMPLES: usize = 3;

/// A candidate: the tenant, the raw key, the key as text, and (updates) the columns that
/// differ.
struct Candidate {
    tenant: usize,
    key: TextRow,
    columns: Vec<String>,
    /// The live row (the tenant's live rows' columns).
    live_row: Box<[u8]>,
    /// Updates: the snapshot row (the snapshot's kept columns).
    snapshot_row: Option<Box<[u8]>>,
}

/// One table's changes while they are worked out.
#[derive(Default)]
struct Pending {
    updates: FxHashMap<Box<[u8]>, Candidate>,
    deletes: FxHashMap<Box<[u8]>, Candidate>,
    /// Raw keys of rows left alone, with the tenant and why.
    left: Vec<(usize, String)>,
}

/// Works out the changes of `mode` for every tenant into `tenants[..].changes` and the
/// counts.
pub async fn compute(
    sides: &Sides<'_>,
    live: &mut PgConnection,
    mode: Mode,
    tenants: &mut [TenantClosure],
    totals: &mut [TableCounts],
) -> Result<()> {
    for tenant in tenants.iter_mut() {
        tenant.changes = vec![TableChanges::default(); sides.schema.tables.len()];
    }
    if !mode.changes_live_rows() {
        return Ok(());
    }
    let schema = sides.schema;
    let mut pending: Vec<Pending> = (0..schema.tables.len())
        .map(|_| Pending::default())
        .collect();
    let live_spread = Spread::of(sides, true)?;
    let snapshot_spread = Spread::of(sides, false)?;
    for (index, table) in schema.tables.iter().enumerate() {
        if !is_owned(table) || !table.in_snapshot || !table.in_live || table.key.is_none() {
            continue;
        }
        let (snapshot, live_rows) = both(sides, table)?;
        let compared = compared_columns(table, snapshot, live_rows);
        let found = candidates(table, (snapshot, live_rows), &compared, mode, tenants.len())?;
        let mut table_pending = Pending::default();
        let updates = typed_updates(sides, live, table, &compared, found.0).await?;
        let referenced = referenced_columns(sides, &table.name);
        for (raw, candidate) in updates {
            let reason = if let Some(column) = candidate
                .columns
                .iter()
                .find(|column| referenced.contains(*column))
            {
                Some(format!("other rows reference its column {column}"))
            } else {
                live_spread
                    .reason(&table.name, &candidate.live_row)
                    .or_else(|| {
                        candidate
                            .snapshot_row
                            .as_ref()
                            .and_then(|row| snapshot_spread.reason(&table.name, row))
                    })
            };
            match reason {
                Some(reason) => table_pending.left.push((
                    candidate.tenant,
                    format!(
                        "{}: update of {} left alone: {reason}",
                        table.name,
                        shown(table, &candidate.key)
                    ),
                )),
                None => {
                    table_pending.updates.insert(raw, candidate);
                }
            }
        }
        for (raw, candidate) in found.1 {
            match live_spread.reason(&table.name, &candidate.live_row) {
                Some(reason) => table_pending.left.push((
                    candidate.tenant,
                    format!(
                        "{}: delete of {} left alone: {reason}",
                        table.name,
                        shown(table, &candidate.key)
                    ),
                )),
                None => {
                    table_pending.deletes.insert(raw, candidate);
                }
            }
        }
        pending[index] = table_pending;
    }
    if mode.deletes() {
        keep_referenced(sides, live, &mut pending).await?;
    }
    for (index, table_pending) in pending.into_iter().enumerate() {
        let mut updates: Vec<FxHashMap<Box<[u8]>, Vec<String>>> =
            vec![FxHashMap::default(); tenants.len()];
        for (raw, candidate) in table_pending.updates {
            tenants[candidate.tenant].tables[index].to_update += 1;
            totals[index].to_update += 1;
            updates[candidate.tenant].insert(raw, candidate.columns);
        }
        for (tenant, updates) in tenants.iter_mut().zip(updates) {
            tenant.changes[index].updates = Arc::new(updates);
        }
        let mut deletes: Vec<Candidate> = table_pending.deletes.into_values().collect();
        deletes.sort_by(|a, b| a.key.cmp(&b.key));
        for candidate in deletes {
            let tenant = &mut tenants[candidate.tenant];
            tenant.tables[index].to_delete += 1;
            totals[index].to_delete += 1;
            tenant.changes[index].deletes.push(candidate.key);
        }
        let mut shown_per_tenant: HashMap<usize, usize> = HashMap::new();
        for (number, text) in table_pending.left {
            tenants[number].tables[index].left_alone += 1;
            totals[index].left_alone += 1;
            let shown = shown_per_tenant.entry(number).or_default();
            if *shown < EXAMPLES {
                *shown += 1;
                tenants[number].left_as_they_are.push(text);
            }
        }
    }
    Ok(())
}

fn both<'s>(
    sides: &'s Sides<'_>,
    table: &TablePlan,
) -> Result<(&'s SelectedTable, &'s SelectedTable)> {
    let snapshot = sides.selected.table(&table.name).ok_or_else(|| {
        Error::Inconsistent(format!(
            "the snapshot's rows of {} were not read",
            table.name
        ))
    })?;
    let live = sides.live_members.table(&table.name).ok_or_else(|| {
        Error::Inconsistent(format!("live's rows of {} were not read", table.name))
    })?;
    Ok((snapshot, live))
}

/// `(id)=(5)`.
fn shown(table: &TablePlan, key: &TextRow) -> String {
    let columns = table
        .key
        .as_ref()
        .map_or_else(String::new, |key| key.columns.join(", "));
    let values: Vec<&str> = key.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
    format!("({columns})=({})", values.join(", "))
}

/// The columns compared for updates: the written columns both sides' rows carry, not the
/// key's.
fn compared_columns(
    table: &TablePlan,
    snapshot: &SelectedTable,
    live: &SelectedTable,
) -> Vec<String> {
    let key: &[String] = table.key.as_ref().map_or(&[], |key| key.columns.as_slice());
    table
        .written_columns()
        .map(|column| column.name.clone())
        .filter(|name| {
            !key.contains(name)
                && snapshot.columns().contains(name)
                && live.columns().contains(name)
        })
        .collect()
}

type Found = (
    Vec<(Box<[u8]>, Candidate, TextRow)>,
    Vec<(Box<[u8]>, Candidate)>,
);

/// Per tenant: snapshot rows whose key its live rows hold with other text (with the
/// snapshot's values of the compared columns), and (exact) its live rows no chosen tenant's
/// snapshot rows have. Each key once, for the first tenant that has it.
fn candidates(
    table: &TablePlan,
    (snapshot, live): (&SelectedTable, &SelectedTable),
    compared: &[String],
    mode: Mode,
    tenants: usize,
) -> Result<Found> {
    let key_columns = &table.key.as_ref().expect("a keyed table").columns;
    let snapshot_key = positions_in(snapshot, table, key_columns)?;
    let live_key = positions_in(live, table, key_columns)?;
    let snapshot_compared = positions_in(snapshot, table, compared)?;
    let live_compared = positions_in(live, table, compared)?;
    let mut all_snapshot_keys: FxHashSet<Box<[u8]>> = FxHashSet::default();
    if mode.deletes() {
        for tenant in 0..tenants {
            for chunk in snapshot.all_rows(tenant)? {
                for row in salvage_source::rows_of(&chunk) {
                    let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                    if let Some(key) = raw_key(&fields, &snapshot_key) {
                        all_snapshot_keys.insert(key);
                    }
                }
            }
        }
    }
    let mut assigned: FxHashSet<Box<[u8]>> = FxHashSet::default();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();
    for tenant in 0..tenants {
        let live_chunks = live.all_rows(tenant)?;
        let mut by_key: FxHashMap<Box<[u8]>, &[u8]> = FxHashMap::default();
        for row in live_chunks
            .iter()
            .flat_map(|chunk| salvage_source::rows_of(chunk))
        {
            let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
            if let Some(key) = raw_key(&fields, &live_key) {
                by_key.insert(key, row);
            }
        }
        let mut own: FxHashSet<Box<[u8]>> = FxHashSet::default();
        for chunk in snapshot.all_rows(tenant)? {
            for row in salvage_source::rows_of(&chunk) {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                let Some(key) = raw_key(&fields, &snapshot_key) else {
                    continue;
                };
                own.insert(key.clone());
                let Some(live_row) = by_key.get(&key) else {
                    continue;
                };
                let live_fields: Vec<&[u8]> = salvage_copy::fields(live_row).collect();
                let same = snapshot_compared
                    .iter()
                    .zip(&live_compared)
                    .all(|(&s, &l)| fields.get(s) == live_fields.get(l));
                if same || !assigned.insert(key.clone()) {
                    continue;
                }
                let values: TextRow = snapshot_key
                    .iter()
                    .chain(&snapshot_compared)
                    .map(|&position| {
                        fields
                            .get(position)
                            .and_then(|f| salvage_copy::decode_text(f))
                    })
                    .collect();
                let key_text: TextRow = values[..snapshot_key.len()].to_vec();
                updates.push((
                    key,
                    Candidate {
                        tenant,
                        key: key_text,
                        columns: Vec::new(),
                        live_row: (*live_row).into(),
                        snapshot_row: Some(row.into()),
                    },
                    values,
                ));
            }
        }
        if mode.deletes() {
            for (key, live_row) in by_key {
                if own.contains(&key)
                    || all_snapshot_keys.contains(&key)
                    || !assigned.insert(key.clone())
                {
                    continue;
                }
                let fields: Vec<&[u8]> = salvage_copy::fields(live_row).collect();
                let key_text: TextRow = live_key
                    .iter()
                    .map(|&position| {
                        fields
                            .get(position)
                            .and_then(|f| salvage_copy::decode_text(f))
                    })
                    .collect();
                deletes.push((
                    key,
                    Candidate {
                        tenant,
                        key: key_text,
                        columns: Vec::new(),
                        live_row: live_row.into(),
                        snapshot_row: None,
                    },
                ));
            }
        }
    }
    Ok((updates, deletes))
}

/// The candidates live holds with other typed values, each with the columns that differ
/// (of `compared`, whose snapshot values follow the key's in each candidate's values).
async fn typed_updates(
    sides: &Sides<'_>,
    live: &mut PgConnection,
    table: &TablePlan,
    compared: &[String],
    candidates: Vec<(Box<[u8]>, Candidate, TextRow)>,
) -> Result<Vec<(Box<[u8]>, Candidate)>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let live_table = sides
        .live_catalog
        .table(&table.name)
        .ok_or_else(|| Error::Inconsistent(format!("live has no table {}", table.name)))?;
    let typed = |name: &String| {
        live_table
            .column(name)
            .map(|column| Typed {
                name: name.clone(),
                live_type: column.type_name.clone(),
                by_value: sides.by_value.contains(&column.type_name),
            })
            .ok_or_else(|| {
                Error::Inconsistent(format!("live's {} has no column {name}", table.name))
            })
    };
    let key_columns = &table.key.as_ref().expect("a keyed table").columns;
    let key: Vec<Typed> = key_columns.iter().map(typed).collect::<Result<_>>()?;
    let compared: Vec<Typed> = compared.iter().map(typed).collect::<Result<_>>()?;
    let sql = changed_columns(&from_item(sides.live_catalog, &table.name), &key, &compared);
    let mut out = Vec::new();
    let mut rest = candidates;
    while !rest.is_empty() {
        let take = rest.len().min(ROWS_PER_QUERY);
        let chunk: Vec<_> = rest.drain(..take).collect();
        let mut query = sqlx::query_as::<_, (i32, Vec<String>)>(&sql);
        for position in 0..key.len() + compared.len() {
            let column: Vec<Option<String>> = chunk
                .iter()
                .map(|(_, _, values)| values.get(position).cloned().flatten())
                .collect();
            query = query.bind(column);
        }
        let answers = query
            .fetch_all(&mut *live)
            .await
            .map_err(salvage_pg::Error::query(format!(
                "compare the tenants' rows of {} with live",
                table.name
            )))?;
        let mut by_number: FxHashMap<usize, Vec<String>> = answers
            .into_iter()
            .filter(|(_, changed)| !changed.is_empty())
            .map(|(number, changed)| (number as usize - 1, changed))
            .collect();
        for (number, (raw, mut candidate, _)) in chunk.into_iter().enumerate() {
            if let Some(changed) = by_number.remove(&number) {
                candidate.columns = changed;
                out.push((raw, candidate));
            }
        }
    }
    Ok(out)
}

/// The columns of `table` other rows reference: by the plan's relations, or by live's
/// foreign keys.
fn referenced_columns(sides: &Sides<'_>, table: &QualifiedName) -> BTreeSet<String> {
    let mut columns: BTreeSet<String> = sides
        .schema
        .relations
        .iter()
        .filter(|relation| &relation.parent == table)
        .flat_map(|relation| relation.parent_columns.iter().cloned())
        .collect();
    for child in sides.live_catalog.tables.values() {
        for key in &child.foreign_keys {
            if &key.referenced_table == table {
                columns.extend(key.referenced_columns.iter().cloned());
            }
        }
    }
    columns
}

/// Which of the chosen tenants' rows reach a tenant not chosen, on one side: a row whose
/// parent over one of its table's membership relations is not among the chosen tenants'
/// rows, or is such a row itself — transitively, to a fixpoint (self-references, cycles).
/// Rows are known by their bytes, with the reason.
struct Spread {
    /// Per table: the rows that reach elsewhere, and why.
    elsewhere: HashMap<QualifiedName, FxHashMap<Box<[u8]>, String>>,
}

impl Spread {
    fn of(sides: &Sides<'_>, live: bool) -> Result<Self> {
        let schema = sides.schema;
        let source = if live {
            sides.live_members
        } else {
            sides.selected
        };
        let tenants = source.ids().len();
        let present = |table: &TablePlan| {
            is_owned(table)
                && if live {
                    table.in_live
                } else {
                    table.in_snapshot
                }
        };
        // The projections parents are looked up by: (table, columns) → values of the chosen
        // tenants' rows, and of those that reach elsewhere.
        let mut members = KeysByParent::new();
        let mut tainted = KeysByParent::new();
        for table in schema.tables.iter().filter(|table| present(table)) {
            for relation in &table.parents {
                members
                    .entry((relation.parent.clone(), relation.parent_columns.clone()))
                    .or_default();
            }
        }
        for ((parent, columns), set) in &mut members {
            let Some(plan) = schema.table(parent) else {
                continue;
            };
            let Some(rows) = source.table(parent) else {
                continue;
            };
            let Ok(positions) = positions_in(rows, plan, columns) else {
                continue;
            };
            for tenant in 0..tenants {
                for chunk in rows.all_rows(tenant)? {
                    for row in salvage_source::rows_of(&chunk) {
                        let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                        if let Some(value) = raw_key(&fields, &positions) {
                            set.insert(value);
                        }
                    }
                }
            }
        }
        let mut elsewhere: HashMap<QualifiedName, FxHashMap<Box<[u8]>, String>> = HashMap::new();
        loop {
            let mut changed = false;
            for table in schema.tables.iter().filter(|table| present(table)) {
                let Some(rows) = source.table(&table.name) else {
                    continue;
                };
                let exported: Vec<(Vec<String>, Vec<usize>)> = members
                    .keys()
                    .filter(|(parent, _)| parent == &table.name)
                    .filter_map(|(_, columns)| {
                        positions_in(rows, table, columns)
                            .ok()
                            .map(|positions| (columns.clone(), positions))
                    })
                    .collect();
                let relations: Vec<(&Relation, Vec<usize>)> = table
                    .parents
                    .iter()
                    .filter_map(|relation| {
                        positions_in(rows, table, &relation.child_columns)
                            .ok()
                            .map(|positions| (relation, positions))
                    })
                    .collect();
                let known = elsewhere.entry(table.name.clone()).or_default();
                for tenant in 0..tenants {
                    for chunk in rows.all_rows(tenant)? {
                        for row in salvage_source::rows_of(&chunk) {
                            if known.contains_key(row) {
                                continue;
                            }
                            let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                            let mut reason = None;
                            for (relation, positions) in &relations {
                                if !applies(relation, rows, &fields) {
                                    continue;
                                }
                                let Some(value) = raw_key(&fields, positions) else {
                                    continue;
                                };
                                let entry =
                                    (relation.parent.clone(), relation.parent_columns.clone());
                                let outside =
                                    !members.get(&entry).is_some_and(|set| set.contains(&value));
                                let through =
                                    tainted.get(&entry).is_some_and(|set| set.contains(&value));
                                if outside || through {
                                    let values: Vec<String> = salvage_copy::fields(&value)
                                        .map(|field| {
                                            salvage_copy::decode_text(field)
                                                .unwrap_or_else(|| "NULL".into())
                                        })
                                        .collect();
                                    reason = Some(format!(
                                        "{} row of {} ({})=({}) {}",
                                        if live {
                                            "it reaches, in live, the"
                                        } else {
                                            "its snapshot version reaches the"
                                        },
                                        relation.parent,
                                        relation.parent_columns.join(", "),
                                        values.join(", "),
                                        if outside {
                                            "that is no chosen tenant's"
                                        } else {
                                            "that reaches a tenant not chosen"
                                        }
                                    ));
                                    break;
                                }
                            }
                            if let Some(reason) = reason {
                                for (columns, positions) in &exported {
                                    if let Some(value) = raw_key(&fields, positions) {
                                        tainted
                                            .entry((table.name.clone(), columns.clone()))
                                            .or_default()
                                            .insert(value);
                                    }
                                }
                                known.insert(row.into(), reason);
                                changed = true;
                            }
                        }
                    }
                }
            }
            if !changed {
                return Ok(Self { elsewhere });
            }
        }
    }

    /// Why `row` of `table` reaches a tenant not chosen, if it does.
    fn reason(&self, table: &QualifiedName, row: &[u8]) -> Option<String> {
        self.elsewhere.get(table)?.get(row).cloned()
    }
}

/// Whether a relation's condition (if any) holds for the row.
fn applies(relation: &Relation, rows: &SelectedTable, fields: &[&[u8]]) -> bool {
    let Some(condition) = &relation.condition else {
        return true;
    };
    rows.columns()
        .iter()
        .position(|name| name == &condition.column)
        .and_then(|position| fields.get(position))
        .and_then(|field| salvage_copy::decode_text(field))
        .is_some_and(|value| value == condition.value)
}

/// Mode exact: the rows to delete that a row staying in live references are kept, to a
/// fixpoint. References from the chosen tenants' rows over membership relations are
/// checked by the rows' values after the restore (an updated row by its snapshot version);
/// all others (rows of other tenants, of tables outside the plan) are asked in live.
async fn keep_referenced(
    sides: &Sides<'_>,
    live: &mut PgConnection,
    pending: &mut [Pending],
) -> Result<()> {
    let schema = sides.schema;
    // Asked in live once: references no chosen tenant's row accounts for.
    for (index, table) in schema.tables.iter().enumerate() {
        if pending[index].deletes.is_empty() {
            continue;
        }
        let mut outside: Vec<(QualifiedName, Vec<String>, Vec<String>)> = Vec::new();
        for relation in schema.relations.iter().filter(|r| r.parent == table.name) {
            let member = schema.table(&relation.child).is_some_and(|child| {
                is_owned(child) && child.in_live && child.parents.contains(relation)
            });
            if !member {
                outside.push((
                    relation.child.clone(),
                    relation.child_columns.clone(),
                    relation.parent_columns.clone(),
                ));
            }
        }
        for child in sides.live_catalog.tables.values() {
            for key in child
                .foreign_keys
                .iter()
                .filter(|key| key.referenced_table == table.name)
            {
                let planned = schema.relations.iter().any(|relation| {
                    relation.child == child.name
                        && relation.parent == table.name
                        && relation.child_columns == key.columns
                });
                if !planned {
                    outside.push((
                        child.name.clone(),
                        key.columns.clone(),
                        key.referenced_columns.clone(),
                    ));
                }
            }
        }
        if outside.is_empty() {
            continue;
        }
        let (_, live_rows) = both(sides, table)?;
        for (child, child_columns, parent_columns) in outside {
            let Ok(positions) = positions_in(live_rows, table, &parent_columns) else {
                continue;
            };
            let raws: Vec<Box<[u8]>> = pending[index].deletes.keys().cloned().collect();
            let keys: Vec<TextRow> = raws
                .iter()
                .map(|raw| {
                    let candidate = &pending[index].deletes[raw];
                    let fields: Vec<&[u8]> = salvage_copy::fields(&candidate.live_row).collect();
                    positions
                        .iter()
                        .map(|&p| fields.get(p).and_then(|f| salvage_copy::decode_text(f)))
                        .collect()
                })
                .collect();
            if sides.live_catalog.table(&child).is_none() {
                continue;
            }
            let found =
                existing_keys(live, sides.live_catalog, &child, &child_columns, &keys).await?;
            for (raw, found) in raws.into_iter().zip(found) {
                if found {
                    if let Some(candidate) = pending[index].deletes.remove(&raw) {
                        let text = format!(
                            "{}: delete of {} left alone: rows of {child} ({}) reference it",
                            table.name,
                            shown(table, &candidate.key),
                            child_columns.join(", ")
                        );
                        pending[index].left.push((candidate.tenant, text));
                    }
                }
            }
        }
    }
    // The chosen tenants' own rows that stay, by their values after the restore.
    loop {
        let mut changed = false;
        for (parent_index, parent) in schema.tables.iter().enumerate() {
            if pending[parent_index].deletes.is_empty() {
                continue;
            }
            let (_, parent_live) = both(sides, parent)?;
            for relation in schema.relations.iter().filter(|r| r.parent == parent.name) {
                let Some(child_index) = schema.table_index(&relation.child) else {
                    continue;
                };
                let child = &schema.tables[child_index];
                if !(is_owned(child) && child.in_live && child.parents.contains(relation)) {
                    continue;
                }
                let referenced = staying_references(sides, child, child_index, relation, pending)?;
                let positions = positions_in(parent_live, parent, &relation.parent_columns)?;
                let held: Vec<Box<[u8]>> = pending[parent_index]
                    .deletes
                    .iter()
                    .filter(|(_, candidate)| {
                        let fields: Vec<&[u8]> =
                            salvage_copy::fields(&candidate.live_row).collect();
                        raw_key(&fields, &positions)
                            .is_some_and(|value| referenced.contains(&value))
                    })
                    .map(|(raw, _)| raw.clone())
                    .collect();
                for raw in held {
                    if let Some(candidate) = pending[parent_index].deletes.remove(&raw) {
                        let text = format!(
                            "{}: delete of {} left alone: a row of {} that stays references it",
                            parent.name,
                            shown(parent, &candidate.key),
                            relation.child
                        );
                        pending[parent_index].left.push((candidate.tenant, text));
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return Ok(());
        }
    }
}

/// The values at `relation`'s child columns of the chosen tenants' live rows of `child`
/// that stay: not deleted; an updated row by its snapshot version.
fn staying_references(
    sides: &Sides<'_>,
    child: &TablePlan,
    child_index: usize,
    relation: &Relation,
    pending: &[Pending],
) -> Result<FxHashSet<Box<[u8]>>> {
    let (snapshot, live_rows) = both(sides, child)?;
    let key_columns: Vec<String> = child
        .key
        .as_ref()
        .map(|key| key.columns.clone())
        .unwrap_or_default();
    let live_key = if key_columns.is_empty() {
        Vec::new()
    } else {
        positions_in(live_rows, child, &key_columns)?
    };
    let live_positions = positions_in(live_rows, child, &relation.child_columns)?;
    let snapshot_positions = positions_in(snapshot, child, &relation.child_columns).ok();
    let mut values = FxHashSet::default();
    for tenant in 0..sides.live_members.ids().len() {
        for chunk in live_rows.all_rows(tenant)? {
            for row in salvage_source::rows_of(&chunk) {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                let key = if live_key.is_empty() {
                    None
                } else {
                    raw_key(&fields, &live_key)
                };
                if let Some(key) = &key {
                    if pending[child_index].deletes.contains_key(key) {
                        continue;
                    }
                    if let (Some(candidate), Some(positions)) =
                        (pending[child_index].updates.get(key), &snapshot_positions)
                    {
                        if let Some(snapshot_row) = &candidate.snapshot_row {
                            let snapshot_fields: Vec<&[u8]> =
                                salvage_copy::fields(snapshot_row).collect();
                            if applies(relation, snapshot, &snapshot_fields) {
                                if let Some(value) = raw_key(&snapshot_fields, positions) {
                                    values.insert(value);
                                }
                            }
                            continue;
                        }
                    }
                }
                if applies(relation, live_rows, &fields) {
                    if let Some(value) = raw_key(&fields, &live_positions) {
                        values.insert(value);
                    }
                }
            }
        }
    }
    Ok(values)
}
