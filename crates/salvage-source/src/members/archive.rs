//! Membership read from a pg_dump archive, without a database to join in.
//!
//! Groups are taken level by level (the root, then the tables whose parents are all known,
//! and so on); the groups of one level are filtered in parallel on rayon. A row's tenants
//! come from each of its relations: the tenant ID itself (a tenant column, a reference to the
//! root's key) or the parent row's tenants, looked up by the raw COPY text of the key in the
//! map the parent's level exported. Keys are compared as raw text, never decoded; only the
//! fields up to the last one looked at are split. A group whose rows reach tenants through
//! rows of their own is read twice: once to note, for every row that has tenants from outside
//! the group or references a row inside it, those tenants and references; then, after the
//! tenants are worked out to a fixpoint in memory, once more to keep the rows that have some.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_plan::{MembershipGroup, SchemaPlan, TablePlan};

use super::{
    Fields, Hop, Lookup, MapKey, Selected, SelectedTable, SetId, TableWriter, TenantSets,
    chosen_ids, followed, needed_fields, raw_key, tenants_of,
};
use crate::archive::keys::{KeyBudget, KeyMap, KeyMapBuilder};
use crate::archive::tables::TableSource;
use crate::{Error, Result};

/// Maps exported by filtered tables.
type Maps = HashMap<MapKey, KeyMap>;

/// One filtered table: its rows and the maps its children need.
type FilteredTable = (QualifiedName, SelectedTable, Vec<(Vec<String>, KeyMap)>);
/// What one filtered group gives.
type Filtered = Vec<FilteredTable>;
/// (member, export number, raw key) → the rows of the group referencing that key.
type Children = HashMap<(usize, usize, Box<[u8]>), Vec<usize>>;

/// Filters the archive for tenants `ids` (canonical text), its key maps holding at most
/// `key_memory` bytes in memory (the rest spills to disk).
pub fn select(
    source: &TableSource,
    catalog: &Catalog,
    plan: &SchemaPlan,
    ids: &[String],
    key_memory: usize,
) -> Result<Selected> {
    let context = Context {
        source,
        catalog,
        plan,
        tenants: ids.len(),
        chosen: chosen_ids(ids),
        sets: Arc::new(TenantSets::new(ids.len())),
        budget: KeyBudget::new(key_memory),
    };
    let mut maps: Maps = HashMap::new();
    let mut selected = Selected::new(ids.to_vec());
    let levels: BTreeSet<usize> = plan.membership.iter().map(|group| group.level).collect();
    for level in levels {
        let groups: Vec<&MembershipGroup> = plan
            .membership
            .iter()
            .filter(|group| group.level == level)
            .collect();
        let results: Vec<Result<Filtered>> = groups
            .par_iter()
            .map(|group| context.group(group, &maps))
            .collect();
        for result in results {
            for (name, table, exports) in result? {
                for (columns, map) in exports {
                    maps.insert((name.clone(), columns), map);
                }
                selected.insert(name, table);
            }
        }
    }
    Ok(selected)
}

struct Context<'a> {
    source: &'a TableSource,
    catalog: &'a Catalog,
    plan: &'a SchemaPlan,
    tenants: usize,
    chosen: FxHashMap<Vec<u8>, usize>,
    sets: Arc<TenantSets>,
    budget: Arc<KeyBudget>,
}

/// Where a row's tenants are looked up while a level is filtered.
struct Found<'a> {
    context: &'a Context<'a>,
    maps: &'a Maps,
}

impl Lookup for Found<'_> {
    fn tenant(&self, raw: &[u8]) -> Option<SetId> {
        self.context
            .chosen
            .get(raw)
            .map(|&index| self.context.sets.single(index))
    }

    fn parent(&self, map: &MapKey, key: &[u8]) -> std::io::Result<Option<SetId>> {
        match self.maps.get(map) {
            Some(map) => Ok(map.get(key)?.map(|set| set as SetId)),
            None => Ok(None),
        }
    }
}

/// How a table's rows are read: its hops (all relations followed), where the exported keys
/// are, how far rows are split.
struct Layout<'p> {
    table: &'p TablePlan,
    columns: Vec<String>,
    hops: Vec<Hop>,
    /// For each hop, the member (of a recursive group) its parent is, if any.
    internal: Vec<Option<usize>>,
    exports: Vec<(Vec<String>, Vec<usize>)>,
    needed: usize,
}

impl Context<'_> {
    fn group(&self, group: &MembershipGroup, maps: &Maps) -> Result<Filtered> {
        let members: Vec<&TablePlan> = group
            .tables
            .iter()
            .map(|&index| &self.plan.tables[index])
            .filter(|table| table.in_snapshot)
            .collect();
        let layouts = members
            .iter()
            .map(|table| self.layout(table, &members))
            .collect::<Result<Vec<_>>>()?;
        let found = Found {
            context: self,
            maps,
        };
        if group.recursive {
            return self.recursive(&layouts, &found);
        }
        layouts
            .iter()
            .map(|layout| self.filter(layout, &found))
            .collect()
    }

    fn layout<'p>(&self, table: &'p TablePlan, members: &[&TablePlan]) -> Result<Layout<'p>> {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|column| column.name.clone())
            .collect();
        let position = |column: &str| {
            table
                .column_index(column)
                .ok_or_else(|| Error::MissingColumn {
                    table: table.name.clone(),
                    column: column.to_owned(),
                    side: "the archive".to_owned(),
                })
        };
        let mut hops = Vec::new();
        let mut internal = Vec::new();
        if table.name == self.plan.root.table {
            hops.push(Hop::TenantId {
                position: position(&self.plan.root.key_column)?,
                condition: None,
            });
            internal.push(None);
        } else {
            for relation in followed(&table.parents) {
                hops.push(Hop::new(self.plan, relation, &mut |column: &str| {
                    position(column)
                })?);
                internal.push(
                    members
                        .iter()
                        .position(|member| member.name == relation.parent),
                );
            }
        }
        let exports: Vec<(Vec<String>, Vec<usize>)> = table
            .exports
            .iter()
            .map(|set| {
                let positions = set
                    .iter()
                    .map(|column| position(column))
                    .collect::<Result<Vec<_>>>()?;
                Ok((set.clone(), positions))
            })
            .collect::<Result<_>>()?;
        let hop_refs: Vec<&Hop> = hops.iter().collect();
        let export_positions: Vec<Vec<usize>> = exports
            .iter()
            .map(|(_, positions)| positions.clone())
            .collect();
        let needed = needed_fields(&hop_refs, &export_positions);
        Ok(Layout {
            table,
            columns,
            hops,
            internal,
            exports,
            needed,
        })
    }

    fn builders(&self, layout: &Layout<'_>) -> Vec<KeyMapBuilder> {
        layout
            .exports
            .iter()
            .map(|_| KeyMapBuilder::new(Arc::clone(&self.budget), Arc::clone(&self.sets)))
            .collect()
    }

    fn rows<'s>(&'s self, layout: &Layout<'_>) -> Result<crate::archive::tables::PlanRows<'s>> {
        Ok(self.source.plan_rows(self.source.parts_of(
            self.catalog,
            &layout.table.name,
            &layout.columns,
        )?))
    }

    /// Reads a table once, keeping its chosen tenants' rows and building its maps.
    fn filter(&self, layout: &Layout<'_>, found: &Found<'_>) -> Result<FilteredTable> {
        let name = &layout.table.name;
        let keys_error = Error::io(format!("keep the keys of {name}"));
        let started = std::time::Instant::now();
        let mut writer = TableWriter::new(layout.columns.clone(), self.tenants)?;
        let mut builders = self.builders(layout);
        let mut rows = self.rows(layout)?;
        let (mut spans, mut key) = (Vec::with_capacity(layout.needed), Vec::new());
        let mut read = 0u64;
        while let Some(row) = rows.next_row()? {
            read += 1;
            let fields = Fields::split(row, layout.needed, &mut spans);
            let Some(set) = tenants_of(&layout.hops, &fields, found, &self.sets, &mut key)
                .map_err(Error::io(format!("look up the parents of {name}'s rows")))?
            else {
                continue;
            };
            writer.push(row, set, &self.sets)?;
            for ((_, positions), builder) in layout.exports.iter().zip(&mut builders) {
                if raw_key(positions, |position| fields.get(position), &mut key) {
                    builder
                        .insert(&key, set as usize)
                        .map_err(Error::io(format!("keep the keys of {name}")))?;
                }
            }
        }
        tracing::info!(
            table = %name,
            rows = read,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "filtered"
        );
        let maps = finish_maps(layout, builders).map_err(keys_error)?;
        Ok((name.clone(), writer.finish()?, maps))
    }

    /// A group whose rows reach tenants through rows of their own: noted, worked out, kept.
    fn recursive(&self, layouts: &[Layout<'_>], found: &Found<'_>) -> Result<Filtered> {
        // First pass: every row with tenants from outside the group, or a reference inside.
        let mut nodes: Vec<Node> = Vec::new();
        let mut by_row: Vec<Vec<(u64, usize)>> = vec![Vec::new(); layouts.len()];
        let mut children: Children = HashMap::new();
        for (member, layout) in layouts.iter().enumerate() {
            let name = &layout.table.name;
            let mut rows = self.rows(layout)?;
            let (mut spans, mut key) = (Vec::with_capacity(layout.needed), Vec::new());
            let mut ordinal = 0u64;
            while let Some(row) = rows.next_row()? {
                let fields = Fields::split(row, layout.needed, &mut spans);
                let mut outside = None;
                let mut references = Vec::new();
                for (hop, parent) in layout.hops.iter().zip(&layout.internal) {
                    match parent {
                        None => {
                            let reached = hop.tenants(&fields, found, &mut key).map_err(
                                Error::io(format!("look up the parents of {name}'s rows")),
                            )?;
                            outside = self.sets.join(outside, reached);
                        }
                        Some(parent) => {
                            if hop.parent_key(&fields, &mut key) {
                                let Hop::Parent { map, .. } = hop else {
                                    continue;
                                };
                                let set = layouts[*parent]
                                    .exports
                                    .iter()
                                    .position(|(columns, _)| *columns == map.1)
                                    .ok_or_else(|| {
                                        Error::Inconsistent(format!(
                                            "{} exports no key ({})",
                                            layouts[*parent].table.name,
                                            map.1.join(", ")
                                        ))
                                    })?;
                                references.push((*parent, set, key.as_slice().into()));
                            }
                        }
                    }
                }
                if outside.is_some() || !references.is_empty() {
                    let node = nodes.len();
                    for reference in references {
                        children.entry(reference).or_default().push(node);
                    }
                    let mut exports = Vec::new();
                    for (set, (_, positions)) in layout.exports.iter().enumerate() {
                        if raw_key(positions, |position| fields.get(position), &mut key) {
                            exports.push((set, key.as_slice().into()));
                        }
                    }
                    nodes.push(Node {
                        member,
                        tenants: outside,
                        exports,
                    });
                    by_row[member].push((ordinal, node));
                }
                ordinal += 1;
            }
        }
        // The fixpoint: a row's tenants flow to the rows referencing it.
        let mut queue: Vec<usize> = (0..nodes.len())
            .filter(|&node| nodes[node].tenants.is_some())
            .collect();
        while let Some(node) = queue.pop() {
            let Some(set) = nodes[node].tenants else {
                continue;
            };
            let member = nodes[node].member;
            for (export, key) in nodes[node].exports.clone() {
                let Some(referencing) = children.get(&(member, export, key)) else {
                    continue;
                };
                for &child in referencing {
                    let joined = self.sets.join(nodes[child].tenants, Some(set));
                    if joined != nodes[child].tenants {
                        nodes[child].tenants = joined;
                        queue.push(child);
                    }
                }
            }
        }
        // Second pass: keep the rows that have tenants, export their keys.
        let mut filtered = Vec::with_capacity(layouts.len());
        for (member, layout) in layouts.iter().enumerate() {
            let name = &layout.table.name;
            let mut writer = TableWriter::new(layout.columns.clone(), self.tenants)?;
            let mut builders = self.builders(layout);
            let mut rows = self.rows(layout)?;
            let mut noted = by_row[member].iter().peekable();
            let mut ordinal = 0u64;
            while let Some(row) = rows.next_row()? {
                let here = ordinal;
                ordinal += 1;
                let Some(&&(at, node)) = noted.peek() else {
                    break;
                };
                if at != here {
                    continue;
                }
                noted.next();
                let Some(set) = nodes[node].tenants else {
                    continue;
                };
                writer.push(row, set, &self.sets)?;
                for (export, key) in &nodes[node].exports {
                    builders[*export]
                        .insert(key, set as usize)
                        .map_err(Error::io(format!("keep the keys of {name}")))?;
                }
            }
            let maps = finish_maps(layout, builders)
                .map_err(Error::io(format!("keep the keys of {name}")))?;
            filtered.push((name.clone(), writer.finish()?, maps));
        }
        Ok(filtered)
    }
}

/// A row of a recursive group noted in the first pass.
struct Node {
    member: usize,
    tenants: Option<SetId>,
    /// (export number, raw key) for each key of the row others may reference.
    exports: Vec<(usize, Box<[u8]>)>,
}

fn finish_maps(
    layout: &Layout<'_>,
    builders: Vec<KeyMapBuilder>,
) -> std::io::Result<Vec<(Vec<String>, KeyMap)>> {
    let mut maps = Vec::with_capacity(builders.len());
    for ((columns, _), builder) in layout.exports.iter().zip(builders) {
        let map = builder.finish()?;
        if let KeyMap::Disk(disk) = &map {
            tracing::info!(
                table = %layout.table.name,
                columns = %columns.join(", "),
                keys = disk.len(),
                "kept keys on disk"
            );
        }
        maps.push((columns.clone(), map));
    }
    Ok(maps)
}
