//! Which rows belong to the chosen tenants, read once per table from a database (the
//! snapshot, or live) or an archive.
//!
//! The rule: a root row belongs to its own key; any other owned row belongs to every tenant
//! any of its parents belongs to, over every relation it has (declared FK, configured
//! relation, tenant column), transitively. Tables are taken in the plan's membership order —
//! parents first — so when a table is read, its parents' keys are already known with their
//! tenants (kept in maps: raw COPY text of the key → the set of tenants). A table whose rows
//! reach tenants through rows of their own (a reply to a comment, two tables referencing each
//! other) is worked out to a fixpoint. Each table is read once (an archive) or once per
//! relation (a database, each read an index-friendly lookup of the parent keys), never once
//! per tenant or per chain.
//!
//! What is kept is a [`Selected`]: per table and tenant, the rows in temporary files, those
//! reaching one chosen tenant apart from those reaching several.

pub(crate) mod archive;
pub(crate) mod database;
mod fixpoint;
mod tenants;

use std::collections::HashMap;
use std::io;

use bytes::Bytes;
use salvage_catalog::QualifiedName;
use salvage_plan::{Relation, SchemaPlan};

pub use tenants::{SetId, TenantSets};

use crate::store::{StoreWriter, TableStore};
use crate::{Error, Result};

/// The chosen tenants' rows of every owned table, as one read found them. Only a selection
/// can read them: it is what selecting tenants returns.
#[derive(Debug)]
pub struct Selected {
    ids: Vec<String>,
    tables: HashMap<QualifiedName, SelectedTable>,
}

/// How a database is read for the chosen tenants' rows. Either way each table is read in one
/// pass and every row's tenants are worked out by the same rule, on the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reading {
    /// Each table by the keys of its parents' chosen rows, bound as arrays, one statement per
    /// relation: what a restore of some tenants wants (index probes, or a scan filtered by
    /// the keys when they are many).
    #[default]
    ByParentKeys,
    /// Each table whole, one statement, its rows' tenants looked up in the parents' maps as
    /// an archive's are: for every tenant there is, when binding every key of every parent
    /// would only make the server test each row against all of them.
    WholeTables,
}

/// Which of a tenant's rows: those reaching it alone, or those reaching other chosen
/// tenants too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Sole,
    Joint,
}

/// One table's rows of the chosen tenants.
#[derive(Debug)]
pub struct SelectedTable {
    columns: Vec<String>,
    sole: TableStore,
    joint: TableStore,
    joint_rows: u64,
}

impl Selected {
    /// The chosen tenants (canonical IDs); tenants are numbered by position here.
    #[must_use]
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The number of tenant `id`.
    #[must_use]
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|chosen| chosen == id)
    }

    /// A table's rows; `None` when the table was not read (not owned, or not on that side).
    #[must_use]
    pub fn table(&self, name: &QualifiedName) -> Option<&SelectedTable> {
        self.tables.get(name)
    }

    pub(crate) fn new(ids: Vec<String>) -> Self {
        Self {
            ids,
            tables: HashMap::new(),
        }
    }

    pub(crate) fn insert(&mut self, name: QualifiedName, table: SelectedTable) {
        self.tables.insert(name, table);
    }
}

impl SelectedTable {
    /// The columns of the kept rows, in their order.
    #[must_use]
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// A tenant's rows of one reach, as chunks of complete COPY rows.
    pub fn rows(&self, tenant: usize, reach: Reach) -> Result<Vec<Bytes>> {
        self.store(reach)
            .read(tenant)
            .map_err(Error::io("read kept rows"))
    }

    /// All of a tenant's rows: those it alone reaches, then the others.
    pub fn all_rows(&self, tenant: usize) -> Result<Vec<Bytes>> {
        let mut chunks = self.rows(tenant, Reach::Sole)?;
        chunks.extend(self.rows(tenant, Reach::Joint)?);
        Ok(chunks)
    }

    /// How many rows of one reach the tenant has.
    #[must_use]
    pub fn count(&self, tenant: usize, reach: Reach) -> u64 {
        self.store(reach).count(tenant)
    }

    /// How many of the tenant's rows there are.
    #[must_use]
    pub fn total(&self, tenant: usize) -> u64 {
        self.count(tenant, Reach::Sole) + self.count(tenant, Reach::Joint)
    }

    /// Distinct rows that reach more than one chosen tenant.
    #[must_use]
    pub fn joint_rows(&self) -> u64 {
        self.joint_rows
    }

    fn store(&self, reach: Reach) -> &TableStore {
        match reach {
            Reach::Sole => &self.sole,
            Reach::Joint => &self.joint,
        }
    }
}

/// Writes a table's rows as their tenants are known.
#[derive(Debug)]
pub(crate) struct TableWriter {
    columns: Vec<String>,
    sole: StoreWriter,
    joint: StoreWriter,
    joint_rows: u64,
}

impl TableWriter {
    pub fn new(columns: Vec<String>, tenants: usize) -> Result<Self> {
        Ok(Self {
            columns,
            sole: StoreWriter::new(tenants).map_err(Error::io("keep rows"))?,
            joint: StoreWriter::new(tenants).map_err(Error::io("keep rows"))?,
            joint_rows: 0,
        })
    }

    /// Keeps `row` for every tenant of `set`.
    pub fn push(&mut self, row: &[u8], set: SetId, sets: &TenantSets) -> Result<()> {
        if sets.is_single(set) {
            return self
                .sole
                .push(set as usize, row)
                .map_err(Error::io("keep rows"));
        }
        self.joint_rows += 1;
        for tenant in sets.members(set) {
            self.joint
                .push(tenant as usize, row)
                .map_err(Error::io("keep rows"))?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<SelectedTable> {
        Ok(SelectedTable {
            columns: self.columns,
            sole: self.sole.finish().map_err(Error::io("keep rows"))?,
            joint: self.joint.finish().map_err(Error::io("keep rows"))?,
            joint_rows: self.joint_rows,
        })
    }
}

/// Which map a parent's tenants are looked up in: the parent table and the columns a child
/// references it by.
pub(crate) type MapKey = (QualifiedName, Vec<String>);

/// A polymorphic relation's condition on the row: the field at a position must hold the
/// value (raw COPY text).
pub(crate) type Condition = Option<(usize, Vec<u8>)>;

/// How one relation of a row gives tenants.
#[derive(Debug, Clone)]
pub(crate) enum Hop {
    /// The field holds a tenant ID (a tenant column, or a reference to the root's key).
    TenantId {
        position: usize,
        condition: Condition,
    },
    /// The fields reference a parent row, whose tenants the parent's map gives.
    Parent {
        positions: Vec<usize>,
        map: MapKey,
        condition: Condition,
    },
}

impl Hop {
    /// The hop of `relation`, with `position` giving a column's place in the rows read.
    pub fn new(
        plan: &SchemaPlan,
        relation: &Relation,
        position: &mut dyn FnMut(&str) -> Result<usize>,
    ) -> Result<Self> {
        let condition = match &relation.condition {
            Some(condition) => {
                let mut raw = Vec::new();
                salvage_copy::encode(Some(condition.value.as_bytes()), &mut raw);
                Some((position(&condition.column)?, raw))
            }
            None => None,
        };
        if is_tenant_id(plan, relation) {
            return Ok(Self::TenantId {
                position: position(&relation.child_columns[0])?,
                condition,
            });
        }
        Ok(Self::Parent {
            positions: relation
                .child_columns
                .iter()
                .map(|column| position(column))
                .collect::<Result<_>>()?,
            map: (relation.parent.clone(), relation.parent_columns.clone()),
            condition,
        })
    }

    /// The row positions this hop reads.
    pub fn positions(&self) -> Vec<usize> {
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

    /// Whether the row follows this relation at all (its condition holds).
    fn applies(&self, fields: &Fields<'_>) -> bool {
        let condition = match self {
            Self::TenantId { condition, .. } | Self::Parent { condition, .. } => condition,
        };
        match condition {
            Some((position, value)) => fields
                .get(*position)
                .is_some_and(|field| field == value.as_slice()),
            None => true,
        }
    }

    /// The tenants the row reaches through this relation.
    pub fn tenants(
        &self,
        fields: &Fields<'_>,
        lookup: &dyn Lookup,
        key: &mut Vec<u8>,
    ) -> io::Result<Option<SetId>> {
        if !self.applies(fields) {
            return Ok(None);
        }
        match self {
            Self::TenantId { position, .. } => {
                Ok(fields.get(*position).and_then(|field| lookup.tenant(field)))
            }
            Self::Parent { positions, map, .. } => {
                if !raw_key(positions, |position| fields.get(position), key) {
                    return Ok(None);
                }
                lookup.parent(map, key)
            }
        }
    }

    /// The raw key of the parent this row references through the relation, when it applies
    /// and no part of it is NULL.
    pub fn parent_key(&self, fields: &Fields<'_>, key: &mut Vec<u8>) -> bool {
        if !self.applies(fields) {
            return false;
        }
        match self {
            Self::TenantId { position, .. } => {
                raw_key(std::slice::from_ref(position), |p| fields.get(p), key)
            }
            Self::Parent { positions, .. } => raw_key(positions, |p| fields.get(p), key),
        }
    }
}

/// Whether a relation's columns hold the tenant ID itself: it references the root's key.
pub(crate) fn is_tenant_id(plan: &SchemaPlan, relation: &Relation) -> bool {
    relation.parent == plan.root.table
        && relation.parent_columns.len() == 1
        && relation.parent_columns[0] == plan.root.key_column
}

/// Where a row's tenants are looked up.
pub(crate) trait Lookup {
    /// The tenant whose ID is `raw` (COPY text), if chosen.
    fn tenant(&self, raw: &[u8]) -> Option<SetId>;
    /// The tenants of the parent row with key `key` in `map`.
    fn parent(&self, map: &MapKey, key: &[u8]) -> io::Result<Option<SetId>>;
}

/// The chosen tenants' IDs as raw COPY text → their number.
pub(crate) fn chosen_ids(ids: &[String]) -> rustc_hash::FxHashMap<Vec<u8>, usize> {
    ids.iter()
        .enumerate()
        .map(|(index, id)| {
            let mut raw = Vec::new();
            salvage_copy::encode(Some(id.as_bytes()), &mut raw);
            (raw, index)
        })
        .collect()
}

/// The union of the tenants a row reaches through `hops`.
pub(crate) fn tenants_of(
    hops: &[Hop],
    fields: &Fields<'_>,
    lookup: &dyn Lookup,
    sets: &TenantSets,
    key: &mut Vec<u8>,
) -> io::Result<Option<SetId>> {
    let mut reached = None;
    for hop in hops {
        let found = hop.tenants(fields, lookup, key)?;
        reached = sets.join(reached, found);
    }
    Ok(reached)
}

/// Builds the raw key of the fields at `positions` into `key` (tab-separated, as in the
/// row); false when a field is NULL or missing: a NULL reference points nowhere.
pub(crate) fn raw_key<'f>(
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

/// A key's raw text (tab-separated COPY fields) decoded into one text value per column.
pub(crate) fn decode_key(key: &[u8]) -> Vec<Option<String>> {
    salvage_copy::fields(key)
        .map(salvage_copy::decode_text)
        .collect()
}

/// The first fields of a raw COPY row, split at tabs once per row into reused spans.
pub(crate) struct Fields<'r> {
    row: &'r [u8],
    spans: &'r [(usize, usize)],
}

impl<'r> Fields<'r> {
    /// Splits `row` up to field `needed` (exclusive).
    pub fn split(row: &'r [u8], needed: usize, spans: &'r mut Vec<(usize, usize)>) -> Self {
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

    pub fn get(&self, position: usize) -> Option<&'r [u8]> {
        self.spans
            .get(position)
            .map(|&(start, end)| &self.row[start..end])
    }
}

/// The fields one past the last any of `hops` and `exports` reads.
pub(crate) fn needed_fields(hops: &[&Hop], exports: &[Vec<usize>]) -> usize {
    hops.iter()
        .flat_map(|hop| hop.positions())
        .chain(exports.iter().flatten().copied())
        .max()
        .map_or(0, |last| last + 1)
}

/// When set (debug builds only), the planner follows only each table's first relation, as a
/// one-chain planner would: the tests use it to show that verification, which does not share
/// the planner's idea of a tenant, finds the rows it leaves behind.
#[must_use]
pub fn first_relation_only() -> bool {
    cfg!(debug_assertions)
        && std::env::var("SALVAGE_DEBUG_MEMBERSHIP").is_ok_and(|value| value == "first-chain-only")
}

/// The relations the planner follows for a table (see [`first_relation_only`]).
pub(crate) fn followed(parents: &[Relation]) -> &[Relation] {
    if first_relation_only() {
        &parents[..parents.len().min(1)]
    } else {
        parents
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
