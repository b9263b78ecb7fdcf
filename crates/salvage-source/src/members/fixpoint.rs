//! Groups of tables whose rows reach tenants through rows of their own group — a reply to a
//! comment, two tables referencing each other — read from a database in rounds (the rows
//! referencing, from inside the group, what the last round found) until a round finds
//! nothing new; their tenants are then worked out to a fixpoint in memory. Read whole
//! ([`Reading::WholeTables`]), every row of the group is read once and the fixpoint sorts
//! them out.

use std::collections::HashMap;

use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use salvage_catalog::QualifiedName;
use salvage_pg::CopyQuery;
use salvage_plan::{MembershipGroup, Relation, TablePlan};
use salvage_sql::from_item;
use salvage_sql::reach::whole_table;

use super::database::{KeepColumns, Layout, Reader, fetch};
use super::{Fields, Reading, SetId, TableWriter, raw_key};
use crate::{Error, Result};

impl Reader<'_> {
    /// A group of tables that reach tenants through rows of their own.
    pub(super) async fn recursive_group(
        &mut self,
        group: &MembershipGroup,
        keep: KeepColumns<'_>,
    ) -> Result<()> {
        let plan = self.plan;
        let members: Vec<&TablePlan> = group
            .tables
            .iter()
            .map(|&index| &plan.tables[index])
            .filter(|table| self.catalog.table(&table.name).is_some())
            .collect();
        let names: Vec<&QualifiedName> = members.iter().map(|table| &table.name).collect();
        let mut nodes = Nodes::default();
        let mut layouts = Vec::with_capacity(members.len());
        for table in &members {
            layouts.push(Layout::new(plan, table, keep(table), false)?);
        }
        if self.reading == Reading::WholeTables {
            // Every row of the group, once: the fixpoint below finds which have tenants.
            for (number, (table, layout)) in members.iter().zip(&layouts).enumerate() {
                let select = whole_table(&from_item(self.catalog, &table.name), &layout.selected);
                let context = format!("read {} from {}", table.name, self.side);
                let rows = fetch(self.connection, &CopyQuery::new(), &select, &context).await?;
                nodes.add(number, layout, &rows);
            }
            return self.settle(&members, &names, &layouts, &nodes);
        }
        // Round 0: rows reached from outside the group.
        let mut fresh: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
        for (number, (table, layout)) in members.iter().zip(&layouts).enumerate() {
            let external: Vec<&Relation> = layout
                .relations
                .iter()
                .filter(|relation| !names.contains(&&relation.parent))
                .collect();
            for (position, relation) in external.iter().enumerate() {
                let statements = self.statements(
                    &table.name,
                    &layout.selected,
                    relation,
                    None,
                    &external[..position],
                )?;
                if statements.is_empty() {
                    continue;
                }
                let context = format!("read {} from {}", table.name, self.side);
                let rows = self.fetch_all(&statements, &context).await?;
                fresh[number].extend(nodes.add(number, layout, &rows));
            }
        }
        // Then rounds: the rows referencing, from inside the group, what the last round found.
        while fresh.iter().any(|found| !found.is_empty()) {
            let mut next: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
            for (number, (table, layout)) in members.iter().zip(&layouts).enumerate() {
                for relation in &layout.relations {
                    let Some(parent) = names.iter().position(|name| **name == relation.parent)
                    else {
                        continue;
                    };
                    let keys =
                        nodes.exported(&layouts[parent], &relation.parent_columns, &fresh[parent]);
                    if keys.is_empty() {
                        continue;
                    }
                    let outside: Vec<&Relation> = layout
                        .relations
                        .iter()
                        .filter(|other| !names.contains(&&other.parent))
                        .collect();
                    let statements = self.statements(
                        &table.name,
                        &layout.selected,
                        relation,
                        Some(&keys),
                        &outside,
                    )?;
                    if statements.is_empty() {
                        continue;
                    }
                    let context = format!("read {} from {}", table.name, self.side);
                    let rows = self.fetch_all(&statements, &context).await?;
                    next[number].extend(nodes.add(number, layout, &rows));
                }
            }
            fresh = next;
        }
        self.settle(&members, &names, &layouts, &nodes)
    }

    /// Works out the tenants of a recursive group's rows to a fixpoint, keeps them, and
    /// exports their keys.
    fn settle(
        &mut self,
        members: &[&TablePlan],
        names: &[&QualifiedName],
        layouts: &[Layout],
        nodes: &Nodes,
    ) -> Result<()> {
        let state = &self.state;
        let sets = &state.sets;
        let mut spans = Vec::new();
        let mut key = Vec::new();
        // Each row's own tenants (from outside the group), and its references inside it.
        let mut tenants: Vec<Option<SetId>> = Vec::with_capacity(nodes.rows.len());
        let mut children: Children = HashMap::new();
        for (node, (table, row)) in nodes.rows.iter().enumerate() {
            let layout = &layouts[*table];
            let fields = Fields::split(row, layout.needed, &mut spans);
            let mut reached = None;
            for (relation, hop) in layout.relations.iter().zip(&layout.hops) {
                if let Some(parent) = names.iter().position(|name| **name == relation.parent) {
                    if hop.parent_key(&fields, &mut key) {
                        children
                            .entry((
                                parent,
                                relation.parent_columns.clone(),
                                key.as_slice().into(),
                            ))
                            .or_default()
                            .push(node);
                    }
                } else {
                    let found = hop
                        .tenants(&fields, state, &mut key)
                        .map_err(Error::io("look up parent keys"))?;
                    reached = sets.join(reached, found);
                }
            }
            tenants.push(reached);
        }
        let mut queue: Vec<usize> = (0..nodes.rows.len())
            .filter(|&node| tenants[node].is_some())
            .collect();
        while let Some(node) = queue.pop() {
            let Some(set) = tenants[node] else { continue };
            let (table, row) = &nodes.rows[node];
            let layout = &layouts[*table];
            let fields = Fields::split(row, layout.needed, &mut spans);
            for (columns, positions) in &layout.exports {
                if !raw_key(positions, |position| fields.get(position), &mut key) {
                    continue;
                }
                let Some(referencing) =
                    children.get(&(*table, columns.clone(), key.as_slice().into()))
                else {
                    continue;
                };
                for &child in referencing {
                    let joined = sets.join(tenants[child], Some(set));
                    if joined != tenants[child] {
                        tenants[child] = joined;
                        queue.push(child);
                    }
                }
            }
        }
        let mut writers: Vec<TableWriter> = members
            .iter()
            .zip(layouts)
            .map(|(_, layout)| {
                TableWriter::new(layout.selected[..layout.kept].to_vec(), self.ids.len())
            })
            .collect::<Result<_>>()?;
        let mut exports: Vec<Vec<FxHashMap<Box<[u8]>, SetId>>> = layouts
            .iter()
            .map(|layout| vec![FxHashMap::default(); layout.exports.len()])
            .collect();
        for (node, (table, row)) in nodes.rows.iter().enumerate() {
            let Some(set) = tenants[node] else { continue };
            let layout = &layouts[*table];
            writers[*table].push(layout.kept_part(row), set, sets)?;
            let fields = Fields::split(row, layout.needed, &mut spans);
            for ((_, positions), map) in layout.exports.iter().zip(&mut exports[*table]) {
                if raw_key(positions, |position| fields.get(position), &mut key) {
                    let entry = map.entry(key.as_slice().into()).or_insert(set);
                    *entry = sets.union(*entry, set);
                }
            }
        }
        for (table, writer) in members.iter().zip(writers) {
            self.selected.insert(table.name.clone(), writer.finish()?);
        }
        for ((table, layout), maps) in members.iter().zip(layouts).zip(exports) {
            for ((columns, _), map) in layout.exports.iter().zip(maps) {
                self.state
                    .maps
                    .insert((table.name.clone(), columns.clone()), map);
            }
        }
        Ok(())
    }
}

/// (member, columns, raw key) → the rows of the group referencing that key.
type Children = HashMap<(usize, Vec<String>, Box<[u8]>), Vec<usize>>;

/// The rows of a recursive group read so far, told apart by their key.
#[derive(Default)]
struct Nodes {
    /// (member table, the row as read).
    rows: Vec<(usize, Vec<u8>)>,
    seen: FxHashSet<(usize, Box<[u8]>)>,
}

impl Nodes {
    /// Adds the rows not seen before; returns their node numbers.
    fn add(&mut self, table: usize, layout: &Layout, chunks: &[Bytes]) -> Vec<usize> {
        let mut added = Vec::new();
        let mut spans = Vec::new();
        let mut key = Vec::new();
        for chunk in chunks {
            for row in crate::rows_of(chunk) {
                let fields = Fields::split(row, layout.needed, &mut spans);
                let identity = if raw_key(&layout.key, |position| fields.get(position), &mut key) {
                    key.as_slice().into()
                } else {
                    // No key to tell it by (a NULL in a unique key): the row itself.
                    row.into()
                };
                if self.seen.insert((table, identity)) {
                    added.push(self.rows.len());
                    self.rows.push((table, row.to_vec()));
                }
            }
        }
        added
    }

    /// The distinct keys (by `columns`) of the given rows of member `table`.
    fn exported(
        &self,
        layout: &Layout,
        columns: &[String],
        rows: &[usize],
    ) -> FxHashSet<Box<[u8]>> {
        let Some((_, positions)) = layout.exports.iter().find(|(set, _)| set == columns) else {
            return FxHashSet::default();
        };
        let mut keys = FxHashSet::default();
        let mut spans = Vec::new();
        let mut key = Vec::new();
        for &node in rows {
            let row = &self.rows[node].1;
            let fields = Fields::split(row, layout.needed, &mut spans);
            if raw_key(positions, |position| fields.get(position), &mut key) {
                keys.insert(key.as_slice().into());
            }
        }
        keys
    }
}
