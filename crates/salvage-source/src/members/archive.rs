//! Membership read from a pg_dump archive, without a database to join in.
//!
//! Groups are taken level by level (the root, then the tables whose parents are all known,
//! and so on); the groups of one level are filtered in parallel on rayon. A row's tenants
//! come from each of its relations: the tenant ID itself (a tenant column, a reference to the
//! root's key) or the parent row's tenants, looked up by the raw COPY text of the key in the
//! map the parent's level exported. Keys are compared as raw text, never decoded; only the
//! fields up to the last one looked at are split. A group whose rows reach tenants through
//! rows of their own is worked out in [`tree`], in memory that grows with the rows found.

use std::collections::BTreeSet;
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

mod tree;

/// Maps exported by filtered tables.
type Maps = FxHashMap<MapKey, KeyMap>;

/// One filtered table: its rows and the maps its children need.
type FilteredTable = (QualifiedName, SelectedTable, Vec<(Vec<String>, KeyMap)>);
/// What one filtered group gives.
type Filtered = Vec<FilteredTable>;

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
    let mut maps: Maps = FxHashMap::default();
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
                .map_err(Error::io_with(|| {
                    format!("look up the parents of {name}'s rows")
                }))?
            else {
                continue;
            };
            writer.push(row, set, &self.sets)?;
            for ((_, positions), builder) in layout.exports.iter().zip(&mut builders) {
                if raw_key(positions, |position| fields.get(position), &mut key) {
                    builder
                        .insert(&key, set as usize)
                        .map_err(Error::io_with(|| format!("keep the keys of {name}")))?;
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
