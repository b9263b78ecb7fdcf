//! Tenant filtering over an archive: which rows of each owned table belong to the chosen
//! tenants, without a database to join in.
//!
//! Tables are taken in the order of their primary ownership chains (the root, then the
//! tables one step below it, and so on); the tables of one level are filtered in parallel on
//! rayon. A row's tenant comes from its chain's first step: the tenant ID itself (the root's
//! key, a tenant column, an FK onto the root's key) or the key of its parent row, looked up
//! in the map the parent's level exported (raw COPY text → the parent row's tenant). Keys are
//! compared as raw COPY text, never decoded. Secondary chains (a link row reaching another
//! tenant) use the same maps; one whose parent comes later is filtered in a second look at
//! the table once every level is done.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use rayon::prelude::*;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_plan::{Ownership, RelationOrigin, Role, SchemaPlan, TablePlan};

use super::keys::{KeyBudget, KeyMap, KeyMapBuilder};
use super::tables::TableSource;
use crate::selection::Selection;
use crate::store::StoreWriter;
use crate::{Error, Result};

/// The chosen tenants' IDs as raw COPY text → their index.
type Chosen = FxHashMap<Vec<u8>, usize>;
/// Maps exported by filtered tables, by (table, key columns).
type Maps = HashMap<(QualifiedName, Vec<String>), KeyMap>;

/// How a chain's first step finds a row's tenant.
#[derive(Debug, Clone)]
enum Hop {
    /// The field holds the tenant ID.
    TenantId {
        position: usize,
        condition: Option<(usize, Vec<u8>)>,
    },
    /// The fields reference a parent row, whose tenant the parent's map gives.
    Parent {
        positions: Vec<usize>,
        map: (QualifiedName, Vec<String>),
        condition: Option<(usize, Vec<u8>)>,
    },
}

struct Job<'p> {
    table: &'p TablePlan,
    level: usize,
    primary: Hop,
    /// Secondary chains with the level of their parent.
    secondary: Vec<(Hop, usize)>,
}

/// Filters the archive for tenants `ids` (canonical text), its key maps holding at most
/// `key_memory` bytes in memory (the rest spills to disk).
pub fn select(
    source: &TableSource,
    catalog: &Catalog,
    plan: &SchemaPlan,
    ids: &[String],
    key_memory: usize,
) -> Result<Selection> {
    let budget = KeyBudget::new(key_memory);
    let chosen: Chosen = ids
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let mut raw = Vec::new();
            salvage_copy::encode(Some(id.as_bytes()), &mut raw);
            (raw, index)
        })
        .collect();
    let jobs = jobs(plan)?;
    let mut wanted: BTreeMap<QualifiedName, BTreeSet<Vec<String>>> = BTreeMap::new();
    for job in &jobs {
        for hop in std::iter::once(&job.primary).chain(job.secondary.iter().map(|(hop, _)| hop)) {
            if let Hop::Parent { map, .. } = hop {
                wanted
                    .entry(map.0.clone())
                    .or_default()
                    .insert(map.1.clone());
            }
        }
    }
    let levels: BTreeSet<usize> = jobs.iter().map(|job| job.level).collect();
    let mut maps: Maps = HashMap::new();
    let mut writers: HashMap<QualifiedName, StoreWriter> = HashMap::new();
    let mut second_look: Vec<&Job<'_>> = Vec::new();
    for level in levels {
        let this_level: Vec<&Job<'_>> = jobs.iter().filter(|job| job.level == level).collect();
        let results: Vec<Result<Filtered>> = this_level
            .par_iter()
            .map(|job| {
                let exports = wanted.get(&job.table.name).cloned().unwrap_or_default();
                filter_table(
                    source,
                    catalog,
                    job,
                    &Lookup {
                        chosen: &chosen,
                        maps: &maps,
                    },
                    ids.len(),
                    (&exports, &budget),
                    None,
                )
            })
            .collect();
        for (job, result) in this_level.into_iter().zip(results) {
            let filtered = result?;
            for (columns, map) in filtered.exports {
                maps.insert((job.table.name.clone(), columns), map);
            }
            writers.insert(job.table.name.clone(), filtered.writer);
            if job
                .secondary
                .iter()
                .any(|(_, parent_level)| *parent_level >= job.level)
            {
                second_look.push(job);
            }
        }
    }
    for job in second_look {
        let writer = writers
            .remove(&job.table.name)
            .ok_or_else(|| Error::Aborted("a filtered table went missing".to_owned()))?;
        let filtered = filter_table(
            source,
            catalog,
            job,
            &Lookup {
                chosen: &chosen,
                maps: &maps,
            },
            ids.len(),
            (&BTreeSet::new(), &budget),
            Some(writer),
        )?;
        writers.insert(job.table.name.clone(), filtered.writer);
    }
    let mut stores = HashMap::new();
    for (name, writer) in writers {
        let store = writer
            .finish()
            .map_err(|error| Error::Io(format!("keep the rows of {name}: {error}")))?;
        stores.insert(name, store);
    }
    Ok(Selection {
        ids: ids.to_vec(),
        stores,
        reach: HashMap::new(),
    })
}

/// One job per owned table the snapshot has, with how each of its chains starts.
fn jobs(plan: &SchemaPlan) -> Result<Vec<Job<'_>>> {
    let mut jobs = Vec::new();
    for table in &plan.tables {
        if table.role == Role::Shared || !table.in_snapshot {
            continue;
        }
        let Some(primary) = &table.ownership else {
            continue;
        };
        let level = |ownership: &Ownership| ownership.chain.len();
        let secondary = table
            .secondary
            .iter()
            .map(|ownership| {
                Ok((
                    hop(plan, table, ownership)?,
                    level(ownership).saturating_sub(1),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        jobs.push(Job {
            table,
            level: level(primary),
            primary: hop(plan, table, primary)?,
            secondary,
        });
    }
    Ok(jobs)
}

fn hop(plan: &SchemaPlan, table: &TablePlan, ownership: &Ownership) -> Result<Hop> {
    let position = |column: &str| {
        table.column_index(column).ok_or_else(|| {
            Error::Aborted(format!(
                "{} has no column {column} in the archive",
                table.name
            ))
        })
    };
    let Some(first) = ownership.chain.first() else {
        // The root: its key is the tenant ID.
        return Ok(Hop::TenantId {
            position: position(&plan.root.key_column)?,
            condition: None,
        });
    };
    let condition = match &first.condition {
        Some(condition) => {
            let mut raw = Vec::new();
            salvage_copy::encode(Some(condition.value.as_bytes()), &mut raw);
            Some((position(&condition.column)?, raw))
        }
        None => None,
    };
    let holds_tenant_id = first.origin == RelationOrigin::TenantColumn
        || (first.parent == plan.root.table
            && first.parent_columns == [plan.root.key_column.clone()]);
    if holds_tenant_id {
        return Ok(Hop::TenantId {
            position: position(&first.child_columns[0])?,
            condition,
        });
    }
    Ok(Hop::Parent {
        positions: first
            .child_columns
            .iter()
            .map(|column| position(column))
            .collect::<Result<_>>()?,
        map: (first.parent.clone(), first.parent_columns.clone()),
        condition,
    })
}

struct Filtered {
    writer: StoreWriter,
    exports: Vec<(Vec<String>, KeyMap)>,
}

/// What a row's tenant is looked up in.
struct Lookup<'a> {
    chosen: &'a Chosen,
    maps: &'a Maps,
}

/// Reads a table once, keeping its chosen tenants' rows and building the key maps `exports`
/// asks for within the budget. On the second look (`again`), only tenants reached through
/// chains whose parent came later are added.
fn filter_table(
    source: &TableSource,
    catalog: &Catalog,
    job: &Job<'_>,
    lookup: &Lookup<'_>,
    tenants: usize,
    (exports, budget): (&BTreeSet<Vec<String>>, &Arc<KeyBudget>),
    again: Option<StoreWriter>,
) -> Result<Filtered> {
    let keys_error =
        |error: std::io::Error| Error::Io(format!("keep the keys of {}: {error}", job.table.name));
    let table = job.table;
    let second_look = again.is_some();
    let mut writer = match again {
        Some(writer) => writer,
        None => StoreWriter::new(tenants)
            .map_err(|error| Error::Io(format!("keep the rows of {}: {error}", table.name)))?,
    };
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|column| column.name.clone())
        .collect();
    let mut exported: Vec<(Vec<usize>, KeyMapBuilder)> = exports
        .iter()
        .map(|columns| {
            let positions = columns
                .iter()
                .filter_map(|column| table.column_index(column))
                .collect();
            (positions, KeyMapBuilder::new(Arc::clone(budget)))
        })
        .collect();
    let inline: Vec<&Hop> = job
        .secondary
        .iter()
        .filter(|(_, parent_level)| *parent_level < job.level)
        .map(|(hop, _)| hop)
        .collect();
    let later: Vec<&Hop> = job
        .secondary
        .iter()
        .filter(|(_, parent_level)| *parent_level >= job.level)
        .map(|(hop, _)| hop)
        .collect();
    // Rows are split only up to the last column any step or export looks at.
    let needed = std::iter::once(&job.primary)
        .chain(job.secondary.iter().map(|(hop, _)| hop))
        .flat_map(Hop::positions)
        .chain(
            exported
                .iter()
                .flat_map(|(positions, _)| positions.iter().copied()),
        )
        .max()
        .map_or(0, |last| last + 1);
    let started = std::time::Instant::now();
    let mut read = 0u64;
    let mut rows = source.plan_rows(source.parts_of(catalog, &table.name, &columns)?);
    let mut key = Vec::new();
    let mut reached: Vec<usize> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(needed);
    while let Some(row) = rows.next_row()? {
        read += 1;
        let fields = Fields::split(row, needed, &mut spans);
        reached.clear();
        let primary = tenant_of(&job.primary, &fields, lookup, &mut key).map_err(keys_error)?;
        reached.extend(primary);
        for hop in &inline {
            if let Some(tenant) = tenant_of(hop, &fields, lookup, &mut key).map_err(keys_error)? {
                if !reached.contains(&tenant) {
                    reached.push(tenant);
                }
            }
        }
        if second_look {
            for hop in &later {
                if let Some(tenant) =
                    tenant_of(hop, &fields, lookup, &mut key).map_err(keys_error)?
                {
                    if !reached.contains(&tenant) {
                        reached.push(tenant);
                        writer.push(tenant, row).map_err(|error| {
                            Error::Io(format!("keep the rows of {}: {error}", table.name))
                        })?;
                    }
                }
            }
            continue;
        }
        for &tenant in &reached {
            writer
                .push(tenant, row)
                .map_err(|error| Error::Io(format!("keep the rows of {}: {error}", table.name)))?;
        }
        if let Some(tenant) = primary {
            for (positions, map) in &mut exported {
                if raw_key(positions, |position| fields.get(position), &mut key) {
                    map.insert(&key, tenant).map_err(keys_error)?;
                }
            }
        }
    }
    tracing::info!(
        table = %table.name,
        rows = read,
        second_look,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "filtered"
    );
    let mut maps = Vec::with_capacity(exported.len());
    for (columns, (_, builder)) in exports.iter().zip(exported) {
        let map = builder.finish().map_err(keys_error)?;
        if let KeyMap::Disk(disk) = &map {
            tracing::info!(
                table = %table.name,
                columns = %columns.join(", "),
                keys = disk.len(),
                "kept keys on disk"
            );
        }
        maps.push((columns.clone(), map));
    }
    Ok(Filtered {
        writer,
        exports: maps,
    })
}

/// The tenant a row reaches through `hop`, if a chosen one.
fn tenant_of(
    hop: &Hop,
    fields: &Fields<'_>,
    lookup: &Lookup<'_>,
    key: &mut Vec<u8>,
) -> std::io::Result<Option<usize>> {
    let holds = |condition: &Option<(usize, Vec<u8>)>| match condition {
        Some((position, value)) => fields
            .get(*position)
            .is_some_and(|field| field == value.as_slice()),
        None => true,
    };
    match hop {
        Hop::TenantId {
            position,
            condition,
        } => {
            if !holds(condition) {
                return Ok(None);
            }
            Ok(fields
                .get(*position)
                .and_then(|field| lookup.chosen.get(field).copied()))
        }
        Hop::Parent {
            positions,
            map,
            condition,
        } => {
            if !holds(condition) || !raw_key(positions, |position| fields.get(position), key) {
                return Ok(None);
            }
            match lookup.maps.get(map) {
                Some(map) => map.get(key),
                None => Ok(None),
            }
        }
    }
}

/// Builds the raw key of the fields at `positions` into `key` (tab-separated, as in the
/// row); false when a field is NULL: a NULL reference points nowhere.
pub(super) fn raw_key<'f>(
    positions: &[usize],
    fields: impl Fn(usize) -> Option<&'f [u8]>,
    key: &mut Vec<u8>,
) -> bool {
    key.clear();
    for (index, &position) in positions.iter().enumerate() {
        let Some(field) = fields(position) else {
            return false;
        };
        if salvage_copy::is_null(field) {
            return false;
        }
        if index > 0 {
            key.push(b'\t');
        }
        key.extend_from_slice(field);
    }
    true
}

impl Hop {
    /// The row positions this step reads.
    fn positions(&self) -> Vec<usize> {
        let (mut positions, condition) = match self {
            Self::TenantId {
                position,
                condition,
            } => (vec![*position], condition),
            Self::Parent {
                positions,
                condition,
                ..
            } => (positions.clone(), condition),
        };
        positions.extend(condition.iter().map(|(position, _)| *position));
        positions
    }
}

/// The first fields of a raw COPY row, split at tabs once per row into reused spans.
struct Fields<'r> {
    row: &'r [u8],
    spans: &'r [(usize, usize)],
}

impl<'r> Fields<'r> {
    fn split(row: &'r [u8], needed: usize, spans: &'r mut Vec<(usize, usize)>) -> Self {
        spans.clear();
        let mut start = 0;
        for tab in memchr::memchr_iter(b'\t', row) {
            if spans.len() + 1 >= needed {
                break;
            }
            spans.push((start, tab));
            start = tab + 1;
        }
        if spans.len() < needed {
            spans.push((
                start,
                memchr::memchr(b'\t', &row[start..]).map_or(row.len(), |tab| start + tab),
            ));
        }
        Self { row, spans }
    }

    fn get(&self, position: usize) -> Option<&'r [u8]> {
        self.spans
            .get(position)
            .map(|&(start, end)| &self.row[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::Fields;

    #[test]
    fn splits_only_the_fields_needed() {
        let mut spans = Vec::new();
        let fields = Fields::split(b"a\tbb\t\\N\tlast", 3, &mut spans);
        assert_eq!(fields.get(0), Some(&b"a"[..]));
        assert_eq!(fields.get(1), Some(&b"bb"[..]));
        assert_eq!(fields.get(2), Some(&b"\\N"[..]));
        assert_eq!(fields.get(3), None);
        let fields = Fields::split(b"only", 1, &mut spans);
        assert_eq!(fields.get(0), Some(&b"only"[..]));
        let fields = Fields::split(b"x\ty", 5, &mut spans);
        assert_eq!((fields.get(1), fields.get(2)), (Some(&b"y"[..]), None));
    }
}
