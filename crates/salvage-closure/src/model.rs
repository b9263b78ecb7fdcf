//! The restore plan: the schema plan plus, per tenant, what will be written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashSet;
use salvage_catalog::QualifiedName;
use salvage_plan::{Role, SchemaPlan};
use salvage_source::{Selected, TextRow};
use serde::{Deserialize, Serialize};

/// Rows of one table for one tenant (or, in totals, for the whole restore: rows counted once
/// however many tenants they reach).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableCounts {
    /// Owned table: the tenant's rows in the snapshot. Shared table: distinct rows its rows
    /// reference.
    pub snapshot: u64,
    /// How many of those live already has, as the tenant's (kept as they are).
    pub in_live: u64,
    /// How many of those live has on another tenant's row: the tenant cannot be restored
    /// whole (its restore fails, naming them).
    #[serde(skip_serializing_if = "is_zero")]
    pub held_elsewhere: u64,
    /// Rows the restore will insert (owned: including those that wait, below).
    pub to_add: u64,
    /// Of the rows to add, those a parent of which is neither in live nor restored by this
    /// run: they wait for it, and are reported, never dropped silently.
    #[serde(skip_serializing_if = "is_zero")]
    pub waiting: u64,
    /// Of the snapshot rows, those that reach other chosen tenants too.
    #[serde(skip_serializing_if = "is_zero")]
    pub joint: u64,
    /// Modes overwrite and exact: rows live has as the tenant's whose values the restore
    /// sets back to the snapshot's.
    #[serde(skip_serializing_if = "is_zero")]
    pub to_update: u64,
    /// Mode exact: the tenant's live rows the snapshot does not have, which the restore
    /// deletes.
    #[serde(skip_serializing_if = "is_zero")]
    pub to_delete: u64,
    /// Rows the mode would change but leaves as they are: they reach a tenant not being
    /// restored, other rows that stay reference them, or the change is to a column other
    /// rows reference (named in [`TenantClosure::left_as_they_are`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub left_alone: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl TableCounts {
    pub fn add(&mut self, other: &Self) {
        self.snapshot += other.snapshot;
        self.in_live += other.in_live;
        self.held_elsewhere += other.held_elsewhere;
        self.to_add += other.to_add;
        self.waiting += other.waiting;
        self.joint += other.joint;
        self.to_update += other.to_update;
        self.to_delete += other.to_delete;
        self.left_alone += other.left_alone;
    }
}

/// Which of a tenant's kept rows of a table the restore writes.
#[derive(Debug, Clone, Default)]
pub enum RowFilter {
    /// All of them (none is in live).
    #[default]
    All,
    /// All but those whose key (raw COPY text of the key columns, tab-joined) live has.
    SkipKeys(Arc<FxHashSet<Box<[u8]>>>),
    /// The rows at these positions (0-based, in the order the tenant's rows are read): a
    /// table without a key, where only the copies live lacks go in.
    Take(Arc<BTreeSet<u64>>),
}

impl RowFilter {
    /// Whether the row at `position` (0-based, in reading order: rows reaching the tenant
    /// alone, then the others) with raw key `key` (for tables with a key) is written.
    #[must_use]
    pub fn keeps(&self, position: u64, key: Option<&[u8]>) -> bool {
        match self {
            Self::All => true,
            Self::SkipKeys(keys) => key.is_none_or(|key| !keys.contains(key)),
            Self::Take(positions) => positions.contains(&position),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantClosure {
    /// The ID in the root key's canonical text form.
    pub id: String,
    /// The ID as the user gave it, when different (`007` for `7`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
    pub label: Option<String>,
    /// Whether the root row still exists in live (then only missing rows are added).
    pub root_in_live: bool,
    /// Counts per table, aligned with `SchemaPlan::tables`.
    pub tables: Vec<TableCounts>,
    /// Per table, which kept rows are written.
    #[serde(skip)]
    pub filters: Vec<RowFilter>,
    /// For shared tables (by index in `SchemaPlan::tables`): the keys of the rows to add,
    /// in the columns of [`RestorePlan::shared_key_columns`].
    #[serde(skip)]
    pub shared_rows: BTreeMap<usize, Vec<TextRow>>,
    /// Rows of the tenant whose key live has on another tenant's row, as
    /// `table: live already has (columns)=(values) but on another tenant's rows`: the restore
    /// of this tenant fails naming them.
    pub held_elsewhere: Vec<String>,
    /// Rows that wait for a parent neither in live nor restored by this run, as
    /// `table (key) waits for parent (key)`; at most a few per table.
    pub waiting_examples: Vec<String>,
    /// Modes overwrite and exact: per table (aligned with `SchemaPlan::tables`), the live
    /// rows the restore changes.
    #[serde(skip)]
    pub changes: Vec<TableChanges>,
    /// Rows the mode would change but leaves, and why; at most a few per table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_as_they_are: Vec<String>,
}

/// The live rows of one table a mode other than `missing` changes for one tenant.
#[derive(Debug, Clone, Default)]
pub struct TableChanges {
    /// The snapshot rows that replace the live row with their key, by raw key (tab-joined
    /// COPY text of the key columns), each with the columns whose values differ.
    pub updates: Arc<rustc_hash::FxHashMap<Box<[u8]>, Vec<String>>>,
    /// The live rows to delete (mode exact): their keys, as text in the key's column order.
    pub deletes: Vec<TextRow>,
}

impl TableChanges {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.deletes.is_empty()
    }
}

impl TenantClosure {
    #[must_use]
    pub fn rows_to_add(&self) -> u64 {
        self.tables.iter().map(|counts| counts.to_add).sum()
    }

    /// Live rows the restore changes: updated and deleted.
    #[must_use]
    pub fn rows_to_change(&self) -> u64 {
        self.tables
            .iter()
            .map(|counts| counts.to_update + counts.to_delete)
            .sum()
    }

    #[must_use]
    pub fn snapshot_rows(&self) -> u64 {
        self.tables.iter().map(|counts| counts.snapshot).sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub schema: SchemaPlan,
    /// What is done to the rows live already has.
    pub mode: salvage_plan::Mode,
    pub tenants: Vec<TenantClosure>,
    /// The chosen tenants' snapshot rows of every owned table, read once.
    #[serde(skip)]
    pub selected: Arc<Selected>,
    /// Per table, the counts over all tenants, each row once.
    pub totals: Vec<TableCounts>,
    /// For each shared table (by index), the columns its rows are fetched by.
    #[serde(skip)]
    pub shared_key_columns: BTreeMap<usize, Vec<String>>,
    /// References from restored rows to rows that neither live nor the snapshot has.
    pub dangling: Vec<String>,
    /// Owned rows that reach more than one chosen tenant: each is counted under every one,
    /// and goes in with the first whose transaction finds all its parents present.
    pub cross_tenant: Vec<CrossTenantRows>,
    /// Live types compared by value; the others are compared by their text.
    #[serde(skip)]
    pub by_value: BTreeSet<String>,
    /// The keys of the rows that would wait, by the parent and columns children reference
    /// them by: a row whose missing parent is one of them waits too.
    #[serde(skip)]
    pub waiting_keys: KeysByParent,
    /// Rows of tables without a key that would wait, by (table index, tenant position):
    /// the row (in the kept rows' columns) and the parent it waits for.
    #[serde(skip)]
    pub keyless_waiting: std::collections::HashMap<(usize, usize), Vec<KeylessWait>>,
}

/// Raw keys by the parent table and the columns children reference it by.
pub type KeysByParent =
    std::collections::HashMap<(QualifiedName, Vec<String>), rustc_hash::FxHashSet<Box<[u8]>>>;

/// A row of a keyless table that waits for a parent (see [`RestorePlan::keyless_waiting`]).
#[derive(Debug, Clone)]
pub struct KeylessWait {
    /// The row's fields, COPY text, in the kept rows' columns.
    pub row: Box<[u8]>,
    /// The parent table and columns it references, and the raw key it waits for.
    pub parent: (QualifiedName, Vec<String>),
    pub key: Box<[u8]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossTenantRows {
    pub table: QualifiedName,
    pub rows: u64,
    pub examples: Vec<String>,
}

impl RestorePlan {
    /// Rows a restore of `tenant` writes or checks: its owned rows to add and the shared
    /// rows it adds.
    #[must_use]
    pub fn rows_to_copy(&self, tenant: &TenantClosure) -> u64 {
        self.schema
            .tables
            .iter()
            .zip(&tenant.tables)
            .filter(|(table, _)| table.in_live && table.in_snapshot)
            .map(|(_, counts)| counts.to_add)
            .sum::<u64>()
            + tenant.rows_to_change()
    }

    /// Whether `table` is one of the tenant-owned tables (or the root).
    #[must_use]
    pub fn is_owned(&self, index: usize) -> bool {
        self.schema.tables[index].role != Role::Shared
    }

    /// The number of a tenant in [`RestorePlan::selected`].
    #[must_use]
    pub fn tenant_number(&self, tenant: &TenantClosure) -> Option<usize> {
        self.selected.index_of(&tenant.id)
    }
}
