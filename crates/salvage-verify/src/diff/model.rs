//! What a diff found: per tenant, its state and, per table, how its rows compare.

use salvage_catalog::QualifiedName;
use serde::Serialize;

/// What happened to a tenant between the snapshot and live, worst first (the order sorts by
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    /// Its root row is in the snapshot, not in live.
    Deleted,
    /// Its root row is in both, and some of its snapshot rows are missing in live.
    Damaged,
    /// Nothing is missing, but rows differ or live has rows the snapshot does not: ordinary
    /// work after the snapshot, or a bad UPDATE.
    Changed,
    /// Its root row is only in live: created after the snapshot, or missing from it.
    New,
    /// Its rows are the same on both sides.
    Intact,
}

impl TenantState {
    /// Every state, worst first.
    pub const ALL: [Self; 5] = [
        Self::Deleted,
        Self::Damaged,
        Self::Changed,
        Self::New,
        Self::Intact,
    ];

    /// The state's name, as JSON writes it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Damaged => "damaged",
            Self::Changed => "changed",
            Self::New => "new",
            Self::Intact => "intact",
        }
    }

    /// Whether a restore (mode `missing`) has something to bring back: the tenant is deleted
    /// or damaged.
    #[must_use]
    pub fn needs_restore(self) -> bool {
        matches!(self, Self::Deleted | Self::Damaged)
    }

    /// The state of a tenant whose root row is or is not on each side, with these counts.
    #[must_use]
    pub fn of(in_snapshot: bool, in_live: bool, tables: &[TableDiff]) -> Self {
        let sum = |count: fn(&TableDiff) -> u64| tables.iter().map(count).sum::<u64>();
        match (in_snapshot, in_live) {
            (true, false) => Self::Deleted,
            (false, _) => Self::New,
            (true, true) if sum(|table| table.missing) > 0 => Self::Damaged,
            (true, true) if sum(|table| table.different + table.live_only) > 0 => Self::Changed,
            (true, true) => Self::Intact,
        }
    }
}

/// One tenant's rows of one table, compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableDiff {
    /// The tenant's rows in the snapshot, by the membership rule.
    pub snapshot: u64,
    /// The tenant's rows in live, by the same rule.
    pub live: u64,
    /// Snapshot rows present in live with equal values (typed).
    pub equal: u64,
    /// Snapshot rows whose key live does not hold at all (a keyless table: copies live lacks).
    pub missing: u64,
    /// Snapshot rows whose key live holds with other values — or on a row that is no longer
    /// the tenant's.
    pub different: u64,
    /// The tenant's live rows whose key is not among its snapshot rows (a keyless table:
    /// copies the snapshot lacks).
    pub live_only: u64,
    /// Up to three keys of each kind, `(id)=(5)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_examples: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub different_examples: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub live_only_examples: Vec<String>,
}

impl TableDiff {
    /// Whether the tenant has rows of this table on either side.
    #[must_use]
    pub fn has_rows(&self) -> bool {
        self.snapshot > 0 || self.live > 0
    }

    /// Whether anything differs.
    #[must_use]
    pub fn differs(&self) -> bool {
        self.missing + self.different + self.live_only > 0
    }
}

/// One tenant, compared.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDiff {
    pub tenant: String,
    /// The root row's label column (e.g. the slug), from the snapshot, else live.
    pub label: Option<String>,
    pub state: TenantState,
    /// Whether the root row is in the snapshot, and in live.
    pub in_snapshot: bool,
    pub in_live: bool,
    /// Aligned with [`Diff::tables`].
    pub tables: Vec<TableDiff>,
}

impl TenantDiff {
    #[must_use]
    pub fn total(&self, count: fn(&TableDiff) -> u64) -> u64 {
        self.tables.iter().map(count).sum()
    }
}

/// A table compared: its rows read on each side, each row once whatever the number of
/// tenants it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct DiffTable {
    pub table: QualifiedName,
    /// Compared as a multiset (no key): duplicates count.
    pub keyless: bool,
    pub snapshot_rows: u64,
    pub live_rows: u64,
}

/// A table of the tenants that could not be compared, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedTable {
    pub table: QualifiedName,
    pub reason: String,
}

/// Everything a diff found.
#[derive(Debug, Clone)]
pub struct Diff {
    /// The tables compared, in the plan's order.
    pub tables: Vec<DiffTable>,
    pub skipped: Vec<SkippedTable>,
    /// Every tenant in scope, in the scope's order.
    pub tenants: Vec<TenantDiff>,
}

impl Diff {
    /// How many tenants are in `state`.
    #[must_use]
    pub fn count(&self, state: TenantState) -> usize {
        self.tenants
            .iter()
            .filter(|tenant| tenant.state == state)
            .count()
    }

    /// The tenants worst first: by state, then most rows missing, different, live-only, then
    /// by ID (numerically when both are numbers).
    #[must_use]
    pub fn worst_first(&self) -> Vec<&TenantDiff> {
        let mut tenants: Vec<&TenantDiff> = self.tenants.iter().collect();
        tenants.sort_by(|a, b| {
            a.state
                .cmp(&b.state)
                .then_with(|| b.total(|t| t.missing).cmp(&a.total(|t| t.missing)))
                .then_with(|| b.total(|t| t.different).cmp(&a.total(|t| t.different)))
                .then_with(|| b.total(|t| t.live_only).cmp(&a.total(|t| t.live_only)))
                .then_with(|| id_order(&a.tenant, &b.tenant))
        });
        tenants
    }
}

/// IDs in order: integers numerically, before any other text, which sorts as text (a total
/// order, whatever mix of IDs a text key holds).
#[must_use]
pub fn id_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.parse::<i128>(), b.parse::<i128>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Told what a diff is doing, for a progress display.
pub trait DiffReporter: Send + Sync {
    /// Both sides' rows of the tenants are being read.
    fn reading(&self, tenants: usize);
    /// Table `number` (from 1) of `tables` is being compared.
    fn comparing(&self, table: &QualifiedName, number: usize, tables: usize);
}

#[cfg(test)]
mod tests {
    use super::{TableDiff, TenantState, id_order};

    #[test]
    fn states_follow_the_root_rows_then_the_counts() {
        let none = [TableDiff::default()];
        let missing = [TableDiff {
            missing: 1,
            different: 4,
            ..TableDiff::default()
        }];
        let later = [TableDiff {
            live_only: 2,
            ..TableDiff::default()
        }];
        assert_eq!(TenantState::of(true, false, &missing), TenantState::Deleted);
        assert_eq!(TenantState::of(true, false, &none), TenantState::Deleted);
        assert_eq!(TenantState::of(false, true, &later), TenantState::New);
        assert_eq!(TenantState::of(true, true, &missing), TenantState::Damaged);
        assert_eq!(TenantState::of(true, true, &later), TenantState::Changed);
        assert_eq!(TenantState::of(true, true, &none), TenantState::Intact);
        assert!(TenantState::Deleted < TenantState::Intact);
        assert!(TenantState::Damaged.needs_restore() && !TenantState::Changed.needs_restore());
    }

    #[test]
    fn numeric_ids_sort_as_numbers() {
        let mut ids = vec!["10", "9", "b", "2x", "a", "100", "-3"];
        ids.sort_by(|a, b| id_order(a, b));
        assert_eq!(ids, ["-3", "9", "10", "100", "2x", "a", "b"]);
    }
}
