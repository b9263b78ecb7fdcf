//! What verification found, per tenant and table: the report's raw material.

use salvage_catalog::QualifiedName;
use serde::Serialize;

/// One table of one tenant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableCheck {
    pub table: Option<QualifiedName>,
    /// The tenant's rows in the snapshot (shared tables: the rows the restore adds).
    pub snapshot: u64,
    /// Present in live with the same values.
    pub equal: u64,
    /// Present in live with other values (kept, in mode `missing`).
    pub different: u64,
    /// In the snapshot, not in live: verification fails.
    pub missing: u64,
    /// Of the missing rows, those the plan did not hold — found by the independent check:
    /// the restore left them behind.
    #[serde(skip_serializing_if = "is_zero")]
    pub left_behind: u64,
    /// The tenant's live rows the snapshot does not have (written after it).
    pub live_only: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_examples: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub different_examples: Vec<String>,
    /// In the snapshot, not in live, because a parent row it needs is not in live (another
    /// tenant's, not restored): restored with it.
    #[serde(skip_serializing_if = "is_zero")]
    pub waiting: u64,
    /// The table has no key: rows were compared as a multiset (duplicates count).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub multiset: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantCheck {
    pub tenant: String,
    pub label: Option<String>,
    /// Aligned with the plan's tables; `None` for tables not checked.
    pub tables: Vec<Option<TableCheck>>,
    /// The check itself could not run.
    pub error: Option<String>,
    /// Modes overwrite and exact: what the mode promised and live does not show — rows
    /// still different from the snapshot, or (exact) live rows the snapshot does not have,
    /// beyond those the plan left alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mode_problems: Vec<String>,
}

impl TenantCheck {
    #[must_use]
    pub fn missing(&self) -> u64 {
        self.tables
            .iter()
            .flatten()
            .map(|table| table.missing)
            .sum()
    }

    #[must_use]
    pub fn left_behind(&self) -> u64 {
        self.tables
            .iter()
            .flatten()
            .map(|table| table.left_behind)
            .sum()
    }

    #[must_use]
    pub fn different(&self) -> u64 {
        self.tables
            .iter()
            .flatten()
            .map(|table| table.different)
            .sum()
    }

    /// Every snapshot row of the tenant (the plan's and those the independent check
    /// reaches) is in live, or waits for a parent.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.missing() == 0 && self.mode_problems.is_empty()
    }

    /// Checks what `mode` promised for the tenant: per table with a key, no rows that
    /// differ (overwrite), nor live-only rows (exact), beyond `left_alone[table]` (rows the
    /// plan named and left as they were).
    pub fn check_mode(
        &mut self,
        mode: salvage_plan::Mode,
        tables: &[salvage_plan::TablePlan],
        left_alone: &[u64],
    ) {
        if !mode.changes_live_rows() {
            return;
        }
        for ((check, table), &allowed) in self.tables.iter().zip(tables).zip(left_alone) {
            let Some(check) = check else { continue };
            if table.key.is_none() || table.role == salvage_plan::Role::Shared {
                continue;
            }
            let live_only = if mode.deletes() {
                check.live_only.unwrap_or(0)
            } else {
                0
            };
            let found = check.different + live_only;
            if found > allowed {
                let what = if mode.deletes() {
                    format!(
                        "{} rows differ from the snapshot and {} are not in it",
                        check.different, live_only
                    )
                } else {
                    format!("{} rows differ from the snapshot", check.different)
                };
                self.mode_problems.push(format!(
                    "{}: {what} after mode {}{}",
                    table.name,
                    mode.name(),
                    if allowed > 0 {
                        format!(" ({allowed} left alone by the plan)")
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
}

pub trait VerifyReporter: Send + Sync {
    fn tenant_checked(&self, check: &TenantCheck);
}
