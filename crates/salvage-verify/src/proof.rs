//! The completeness check's own idea of a tenant: every snapshot row that references a row of
//! a chosen tenant, directly or through other rows, found by a fixpoint over the schema's
//! relations that starts from the chosen root rows — without the plan's membership order,
//! groups, maps or readers. Each table is read for the rows referencing keys found so far
//! (once, when all its parents are known; in rounds while it is part of a cycle), through the
//! snapshot's plainest read: rows whose columns hold one of a set of keys. What it finds and
//! the plan does not hold are rows the restore left behind; verification checks them in live
//! like the others and names the chain that ties each to its tenant.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use salvage_catalog::QualifiedName;
use salvage_plan::{Relation, RelationOrigin, SchemaPlan};
use salvage_source::{KeyFilter, SnapshotReader};

use crate::Result;

/// Tenants by number (positions in the chosen IDs), sorted: most rows reach one, which
/// takes no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Tenants {
    #[default]
    None,
    One(u32),
    Many(Vec<u32>),
}

impl Tenants {
    /// Adds `tenant`; whether it was new.
    fn insert(&mut self, tenant: u32) -> bool {
        match self {
            Self::None => {
                *self = Self::One(tenant);
                true
            }
            Self::One(one) if *one == tenant => false,
            Self::One(one) => {
                let mut many = vec![*one, tenant];
                many.sort_unstable();
                *self = Self::Many(many);
                true
            }
            Self::Many(many) => match many.binary_search(&tenant) {
                Ok(_) => false,
                Err(at) => {
                    many.insert(at, tenant);
                    true
                }
            },
        }
    }

    #[must_use]
    pub fn contains(&self, tenant: u32) -> bool {
        match self {
            Self::None => false,
            Self::One(one) => *one == tenant,
            Self::Many(many) => many.binary_search(&tenant).is_ok(),
        }
    }

    #[must_use]
    pub fn as_slice(&self) -> &[u32] {
        match self {
            Self::None => &[],
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        }
    }
}

/// A table (by index) and the columns rows are referenced by.
type Referenced = (usize, Vec<String>);
/// Raw keys, by the table and columns they are keys of.
type KeySets = HashMap<Referenced, FxHashSet<Box<[u8]>>>;
/// Keys of reached rows by the table and columns they are keys of, with their tenants.
type ReachedKeys = HashMap<Referenced, FxHashMap<Box<[u8]>, Tenants>>;

/// A row the check reached.
#[derive(Debug, Default)]
pub struct ReachedRow {
    pub tenants: Tenants,
    /// A table without a key: how many identical rows (they are told apart by nothing).
    pub copies: u32,
}

/// One table's reached rows, by identity (the key's raw COPY text, or the whole row read for
/// a table without a key).
#[derive(Debug, Default)]
pub struct ReachedTable {
    /// The columns rows are identified by.
    pub identity: Vec<String>,
    pub keyless: bool,
    pub rows: FxHashMap<Box<[u8]>, ReachedRow>,
}

/// Everything the check reached, per plan table (by index).
#[derive(Debug)]
pub struct Reached {
    pub tables: HashMap<usize, ReachedTable>,
    relations: Vec<Relation>,
    /// The keys rows are referenced by, with their tenants: what chains are walked up by.
    keys: ReachedKeys,
    root: usize,
    ids: Vec<String>,
}

/// The relations the check follows: every relation of the schema, except those from the
/// root (a root row belongs to its own key) and from tables the configuration keeps out.
fn followed(plan: &SchemaPlan) -> Vec<Relation> {
    let kept_out: BTreeSet<&QualifiedName> =
        plan.excluded.iter().chain(&plan.forced_shared).collect();
    plan.relations
        .iter()
        .filter(|relation| {
            relation.child != plan.root.table
                && !kept_out.contains(&relation.child)
                && !kept_out.contains(&relation.parent)
                && plan
                    .table(&relation.child)
                    .is_some_and(|table| table.in_snapshot)
                && plan.table(&relation.parent).is_some()
        })
        .cloned()
        .collect()
}

/// Finds every row the chosen tenants `ids` reach in the snapshot.
pub async fn reach(
    plan: &SchemaPlan,
    ids: &[String],
    reader: &mut SnapshotReader,
) -> Result<Reached> {
    let relations = followed(plan);
    let index = |name: &QualifiedName| plan.table_index(name).unwrap_or(usize::MAX);
    let root = index(&plan.root.table);
    let mut state = State {
        plan,
        relations: &relations,
        keys: HashMap::new(),
        fresh: HashMap::new(),
        tables: HashMap::new(),
    };
    // The root's rows are the tenants themselves.
    let mut ids_raw = FxHashMap::default();
    for (number, id) in ids.iter().enumerate() {
        let mut raw = Vec::new();
        salvage_copy::encode(Some(id.as_bytes()), &mut raw);
        ids_raw.insert(raw.into_boxed_slice(), Tenants::One(number as u32));
    }
    state
        .keys
        .insert((root, vec![plan.root.key_column.clone()]), ids_raw.clone());
    state.fresh.insert(
        (root, vec![plan.root.key_column.clone()]),
        ids_raw.keys().cloned().collect(),
    );

    // Tables are read once all their parents are known; what is left forms cycles, read in
    // rounds until nothing new turns up.
    let children: BTreeSet<usize> = relations
        .iter()
        .map(|relation| index(&relation.child))
        .collect();
    let mut pending: BTreeSet<usize> = children
        .into_iter()
        .filter(|table| *table != root)
        .collect();
    while !pending.is_empty() {
        let ready: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&table| {
                relations
                    .iter()
                    .filter(|relation| index(&relation.child) == table)
                    .all(|relation| {
                        let parent = index(&relation.parent);
                        parent != table && !pending.contains(&parent)
                    })
            })
            .collect();
        if ready.is_empty() {
            // A cycle (or a table referencing itself) whose tables wait for nothing outside
            // it: read in rounds; the tables below it wait for it.
            let cycle = first_cycle(&pending, &relations, &index);
            state.rounds(&cycle, reader).await?;
            for table in &cycle {
                pending.remove(table);
            }
            continue;
        }
        for table in ready {
            state.read(table, None, reader).await?;
            state.fresh.clear();
            pending.remove(&table);
        }
    }
    let (tables, keys) = (state.tables, state.keys);
    Ok(Reached {
        tables,
        relations,
        keys,
        root,
        ids: ids.to_vec(),
    })
}

struct State<'a> {
    plan: &'a SchemaPlan,
    relations: &'a [Relation],
    /// Keys of reached rows by (table, columns), with their tenants.
    keys: ReachedKeys,
    /// Keys that gained tenants since the tables referencing them were last read.
    fresh: KeySets,
    tables: HashMap<usize, ReachedTable>,
}

impl State<'_> {
    fn index(&self, name: &QualifiedName) -> usize {
        self.plan.table_index(name).unwrap_or(usize::MAX)
    }

    /// The tables of a cycle (or a table referencing itself), in rounds: first for every
    /// key known, then for the keys the last round found, until a round finds nothing.
    async fn rounds(&mut self, tables: &[usize], reader: &mut SnapshotReader) -> Result<()> {
        self.fresh.clear();
        for &table in tables {
            reader.read_again(&self.plan.tables[table]);
        }
        for &table in tables {
            self.read(table, None, reader).await?;
        }
        loop {
            let delta = std::mem::take(&mut self.fresh);
            if delta.values().all(FxHashSet::is_empty) {
                return Ok(());
            }
            for &table in tables {
                self.read(table, Some(&delta), reader).await?;
            }
        }
    }

    /// Reads the rows of `table` referencing the keys found so far (or only those in `delta`);
    /// keys that gain tenants are noted in `fresh`.
    async fn read(
        &mut self,
        table: usize,
        delta: Option<&KeySets>,
        reader: &mut SnapshotReader,
    ) -> Result<()> {
        let plan = self.plan;
        let definition = &plan.tables[table];
        let relations: Vec<(usize, &Relation)> = self
            .relations
            .iter()
            .enumerate()
            .filter(|(_, relation)| self.index(&relation.child) == table)
            .collect();
        let mut filters = Vec::new();
        for (_, relation) in &relations {
            let parent = (
                self.index(&relation.parent),
                relation.parent_columns.clone(),
            );
            let keys: FxHashSet<Box<[u8]>> = match delta {
                None => self
                    .keys
                    .get(&parent)
                    .map(|keys| keys.keys().cloned().collect())
                    .unwrap_or_default(),
                Some(delta) => delta.get(&parent).cloned().unwrap_or_default(),
            };
            filters.push(KeyFilter {
                columns: relation.child_columns.clone(),
                condition: relation
                    .condition
                    .as_ref()
                    .map(|condition| (condition.column.clone(), condition.value.clone())),
                keys: Arc::new(keys),
                parent: Some(relation.parent.clone()),
            });
        }
        let (identity, keyless) = match &definition.key {
            Some(key) => (key.columns.clone(), false),
            None => (
                definition
                    .written_columns()
                    .map(|column| column.name.clone())
                    .collect(),
                true,
            ),
        };
        // What is read: the identity, each relation's columns, the columns others reference.
        let mut columns = identity.clone();
        let add = |column: &String, columns: &mut Vec<String>| {
            if !columns.contains(column) {
                columns.push(column.clone());
            }
        };
        for (_, relation) in &relations {
            for column in &relation.child_columns {
                add(column, &mut columns);
            }
            if let Some(condition) = &relation.condition {
                add(&condition.column, &mut columns);
            }
        }
        let exported: Vec<Vec<String>> = self
            .relations
            .iter()
            .filter(|relation| self.index(&relation.parent) == table)
            .map(|relation| relation.parent_columns.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for set in &exported {
            for column in set {
                add(column, &mut columns);
            }
        }
        let chunks = reader.rows_matching(definition, &columns, &filters).await?;
        let place = |column: &String| {
            columns
                .iter()
                .position(|c| c == column)
                .expect("every column looked at was added to the columns read")
        };
        let identity_places: Vec<usize> = identity.iter().map(place).collect();
        // A table without a key: identical rows come back together (they match the same
        // keys), so a read's count of a row is its number of copies, however many reads
        // (a cycle's rounds) return it again.
        let mut copies_read: FxHashMap<Box<[u8]>, u32> = FxHashMap::default();
        for chunk in &chunks {
            for row in salvage_source::rows_of(chunk) {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                let mut tenants = Tenants::None;
                for (_, relation) in &relations {
                    if let Some(condition) = &relation.condition {
                        let mut value = Vec::new();
                        salvage_copy::encode(Some(condition.value.as_bytes()), &mut value);
                        if fields.get(place(&condition.column)).copied() != Some(value.as_slice()) {
                            continue;
                        }
                    }
                    let places: Vec<usize> = relation.child_columns.iter().map(place).collect();
                    let Some(key) = joined(&fields, &places) else {
                        continue;
                    };
                    let parent = (
                        self.index(&relation.parent),
                        relation.parent_columns.clone(),
                    );
                    let Some(reached) = self.keys.get(&parent).and_then(|keys| keys.get(&key))
                    else {
                        continue;
                    };
                    for &tenant in reached.as_slice() {
                        tenants.insert(tenant);
                    }
                }
                if tenants == Tenants::None {
                    continue;
                }
                let id: Box<[u8]> = if keyless {
                    joined_all(&fields, &identity_places)
                } else {
                    match joined(&fields, &identity_places) {
                        Some(id) => id,
                        None => continue,
                    }
                };
                let rows = &mut self
                    .tables
                    .entry(table)
                    .or_insert_with(|| ReachedTable {
                        identity: identity.clone(),
                        keyless,
                        rows: FxHashMap::default(),
                    })
                    .rows;
                let entry = rows.entry(id.clone()).or_default();
                if keyless {
                    let read = copies_read.entry(id).or_default();
                    *read += 1;
                    entry.copies = entry.copies.max(*read);
                }
                let mut new = false;
                for &tenant in tenants.as_slice() {
                    new |= entry.tenants.insert(tenant);
                }
                if !new {
                    continue;
                }
                let all_tenants = entry.tenants.clone();
                for set in &exported {
                    let places: Vec<usize> = set.iter().map(place).collect();
                    let Some(key) = joined(&fields, &places) else {
                        continue;
                    };
                    let map = (table, set.clone());
                    let known = self.keys.entry(map.clone()).or_default();
                    let holder = known.entry(key.clone()).or_default();
                    let mut grew = false;
                    for &tenant in all_tenants.as_slice() {
                        grew |= holder.insert(tenant);
                    }
                    if grew {
                        self.fresh.entry(map).or_default().insert(key);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Reached {
    /// `payment (payment_id)=(7) → rental (rental_id)=(3) → inventory (inventory_id)=(5) →
    /// store 2`: how a row of `table` — whose columns `field` gives — reaches tenant `tenant`.
    /// Walked up through the keys the check noted; each parent row is read from the snapshot
    /// (this is for the few rows named in a report).
    pub async fn chain(
        &self,
        plan: &SchemaPlan,
        reader: &mut SnapshotReader,
        table: usize,
        field: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync),
        tenant: u32,
    ) -> Result<String> {
        let mut text = String::new();
        let mut current: (usize, FxHashMap<String, Vec<u8>>) = (table, FxHashMap::default());
        let mut first = true;
        let mut visited: FxHashSet<(usize, Vec<String>, Box<[u8]>)> = FxHashSet::default();
        for _ in 0..32 {
            let (table, row) = &current;
            let value = |column: &str| -> Option<Vec<u8>> {
                if first {
                    field(column)
                } else {
                    row.get(column).cloned()
                }
            };
            let definition = &plan.tables[*table];
            let identity: Vec<String> = match &definition.key {
                Some(key) => key.columns.clone(),
                None => Vec::new(),
            };
            if !text.is_empty() {
                text.push_str(" → ");
            }
            let shown: Vec<String> = identity
                .iter()
                .map(|column| value(column).map_or_else(|| "?".to_owned(), |raw| decode(&raw)))
                .collect();
            if identity.is_empty() {
                // A table without a key: the row is named by its values, before the chain.
                text.push_str(&definition.name.name);
            } else {
                text.push_str(&format!(
                    "{} ({})=({})",
                    definition.name.name,
                    identity.join(", "),
                    shown.join(", ")
                ));
            }
            // The relation through which the row reaches the tenant: straight to the root
            // first, then along the table's ownership chain, then any other; never back to
            // a row the walk has passed (a cycle would go round forever).
            let definition_chain = definition
                .ownership
                .as_ref()
                .and_then(|ownership| ownership.chain.first())
                .map(|relation| relation.name.clone());
            let mut options: Vec<&Relation> = self
                .relations
                .iter()
                .filter(|relation| plan.table_index(&relation.child) == Some(*table))
                .collect();
            options.sort_by_key(|relation| {
                if plan.table_index(&relation.parent) == Some(self.root) {
                    0
                } else if definition_chain.as_deref() == Some(relation.name.as_str()) {
                    1
                } else {
                    2
                }
            });
            let step = options.into_iter().find_map(|relation| {
                if let Some(condition) = &relation.condition {
                    let mut expected = Vec::new();
                    salvage_copy::encode(Some(condition.value.as_bytes()), &mut expected);
                    if value(&condition.column)? != expected {
                        return None;
                    }
                }
                let parts: Option<Vec<Vec<u8>>> = relation
                    .child_columns
                    .iter()
                    .map(|column| value(column))
                    .collect();
                let key: Box<[u8]> = parts?.join(&b'\t').into();
                let parent = plan.table_index(&relation.parent)?;
                if visited.contains(&(parent, relation.parent_columns.clone(), key.clone())) {
                    return None;
                }
                let tenants = self
                    .keys
                    .get(&(parent, relation.parent_columns.clone()))?
                    .get(&key)?;
                tenants.contains(tenant).then_some((relation, parent, key))
            });
            if let Some((relation, parent, key)) = &step {
                visited.insert((*parent, relation.parent_columns.clone(), key.clone()));
            }
            first = false;
            let Some((relation, parent, key)) = step else {
                return Ok(text);
            };
            if parent == self.root {
                text.push_str(&format!(
                    " → {} {}",
                    relation.parent.name,
                    self.ids.get(tenant as usize).map_or("?", String::as_str)
                ));
                if relation.origin == RelationOrigin::TenantColumn {
                    text.push_str(&format!(" (tenant column {})", relation.child_columns[0]));
                }
                return Ok(text);
            }
            // The parent row, read back with every column the walk looks at.
            let parent_table = &plan.tables[parent];
            let columns: Vec<String> = parent_table
                .columns
                .iter()
                .map(|column| column.name.clone())
                .collect();
            let chunks = reader
                .rows_matching(
                    parent_table,
                    &columns,
                    &[KeyFilter {
                        columns: relation.parent_columns.clone(),
                        condition: None,
                        keys: Arc::new(FxHashSet::from_iter([key])),
                        parent: None,
                    }],
                )
                .await?;
            let Some(row) = chunks
                .iter()
                .flat_map(|chunk| salvage_source::rows_of(chunk))
                .next()
            else {
                return Ok(text);
            };
            let values: FxHashMap<String, Vec<u8>> = columns
                .iter()
                .cloned()
                .zip(salvage_copy::fields(row).map(<[u8]>::to_vec))
                .collect();
            current = (parent, values);
        }
        Ok(text)
    }
}

/// The fields at `places`, tab-joined; `None` when one is NULL.
fn joined(fields: &[&[u8]], places: &[usize]) -> Option<Box<[u8]>> {
    let mut key = Vec::new();
    for (number, &place) in places.iter().enumerate() {
        let field = fields.get(place)?;
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

/// The fields at `places`, tab-joined, NULLs included.
fn joined_all(fields: &[&[u8]], places: &[usize]) -> Box<[u8]> {
    places
        .iter()
        .map(|&place| fields.get(place).copied().unwrap_or(salvage_copy::NULL))
        .collect::<Vec<_>>()
        .join(&b'\t')
        .into()
}

fn decode(raw: &[u8]) -> String {
    salvage_copy::fields(raw)
        .map(|field| salvage_copy::decode_text(field).unwrap_or_else(|| "NULL".to_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first cycle of `pending` whose tables reference no pending table outside it: the
/// tables that reach each other through the relations, as a strongly connected component.
fn first_cycle(
    pending: &BTreeSet<usize>,
    relations: &[Relation],
    index: &dyn Fn(&QualifiedName) -> usize,
) -> Vec<usize> {
    let parents = |table: usize| -> BTreeSet<usize> {
        relations
            .iter()
            .filter(|relation| index(&relation.child) == table)
            .map(|relation| index(&relation.parent))
            .filter(|parent| pending.contains(parent))
            .collect()
    };
    // Every pending table reachable upwards from each.
    let above = |table: usize| -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = parents(table).into_iter().collect();
        while let Some(next) = stack.pop() {
            if seen.insert(next) {
                stack.extend(parents(next));
            }
        }
        seen
    };
    let reach: HashMap<usize, BTreeSet<usize>> =
        pending.iter().map(|&table| (table, above(table))).collect();
    for &table in pending {
        let mut component: BTreeSet<usize> = reach[&table]
            .iter()
            .copied()
            .filter(|other| reach[other].contains(&table))
            .collect();
        component.insert(table);
        if component
            .iter()
            .all(|&member| parents(member).is_subset(&component))
        {
            return component.into_iter().collect();
        }
    }
    // Unreachable with a finite graph; read everything left together rather than stop.
    pending.iter().copied().collect()
}
