//! The restore plan: the schema plan plus, per tenant, what will be written.

use std::collections::{BTreeMap, BTreeSet};

use salvage_catalog::QualifiedName;

use salvage_plan::{Role, SchemaPlan};
use salvage_source::TextRow;
use serde::Serialize;

/// Rows of one table for one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TableCounts {
    /// Owned table: the tenant's rows in the snapshot. Shared table: distinct rows its rows
    /// reference.
    pub snapshot: u64,
    /// How many of those keys the live database already has (kept as they are).
    pub in_live: u64,
    /// Rows the restore will insert.
    pub to_add: u64,
}

impl TableCounts {
    pub fn add(&mut self, other: &Self) {
        self.snapshot += other.snapshot;
        self.in_live += other.in_live;
        self.to_add += other.to_add;
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
    /// For shared tables (by index in `SchemaPlan::tables`): the keys of the rows to add,
    /// in the columns of [`RestorePlan::shared_key_columns`].
    #[serde(skip)]
    pub shared_rows: BTreeMap<usize, Vec<TextRow>>,
}

impl TenantClosure {
    #[must_use]
    pub fn rows_to_add(&self) -> u64 {
        self.tables.iter().map(|counts| counts.to_add).sum()
    }

    #[must_use]
    pub fn snapshot_rows(&self) -> u64 {
        self.tables.iter().map(|counts| counts.snapshot).sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub schema: SchemaPlan,
    pub tenants: Vec<TenantClosure>,
    /// For each shared table (by index), the columns its rows are fetched by.
    #[serde(skip)]
    pub shared_key_columns: BTreeMap<usize, Vec<String>>,
    /// References from restored rows to rows that neither live nor the snapshot has.
    pub dangling: Vec<String>,
    /// Owned rows whose ownership chains lead to more than one tenant: each is restored only
    /// when all its parents are present.
    pub cross_tenant: Vec<CrossTenantRows>,
    /// Live types compared by value; the others are compared by their text.
    #[serde(skip)]
    pub by_value: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrossTenantRows {
    pub table: QualifiedName,
    pub rows: u64,
    pub examples: Vec<String>,
}

impl RestorePlan {
    /// Rows a restore of `tenant` reads from the snapshot: its owned rows and the shared rows
    /// it adds.
    #[must_use]
    pub fn rows_to_copy(&self, tenant: &TenantClosure) -> u64 {
        self.schema
            .tables
            .iter()
            .zip(&tenant.tables)
            .filter(|(table, _)| table.in_live && table.in_snapshot)
            .map(|(table, counts)| {
                if table.role == Role::Shared {
                    counts.to_add
                } else {
                    counts.snapshot
                }
            })
            .sum()
    }

    /// Totals per table over all tenants, aligned with `SchemaPlan::tables`.
    #[must_use]
    pub fn totals(&self) -> Vec<TableCounts> {
        let mut totals = vec![TableCounts::default(); self.schema.tables.len()];
        for tenant in &self.tenants {
            for (total, counts) in totals.iter_mut().zip(&tenant.tables) {
                total.add(counts);
            }
        }
        totals
    }
}
