//! What happened to each tenant: the report's raw material.

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TableOutcome {
    /// Rows sent to live.
    pub copied: u64,
    /// Rows inserted into live.
    pub inserted: u64,
    /// Rows sent that live had by then (another tenant of the run wrote them first, or
    /// shared rows someone added): kept as they were.
    pub already_present: u64,
    /// Rows reaching another tenant whose parent row is not in live yet: left for that
    /// tenant's restore ("both ends present").
    #[serde(skip_serializing_if = "is_zero")]
    pub waiting: u64,
    /// Modes overwrite and exact: live rows set back to the snapshot's values.
    #[serde(skip_serializing_if = "is_zero")]
    pub updated: u64,
    /// Mode exact: live rows the snapshot does not have, deleted.
    #[serde(skip_serializing_if = "is_zero")]
    pub deleted: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TenantStatus {
    Restored,
    Failed {
        error: String,
    },
    /// Not attempted: the restore was stopped first.
    Interrupted,
    /// Restored by another worker of the run (or by this run earlier).
    Elsewhere,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantOutcome {
    pub tenant: String,
    pub label: Option<String>,
    #[serde(flatten)]
    pub status: TenantStatus,
    pub attempts: u32,
    /// Per table, aligned with the plan's tables (all zero when the tenant failed: its
    /// transaction was rolled back).
    pub tables: Vec<TableOutcome>,
    /// Sequences moved ahead of restored values: `(sequence, new value)`.
    pub sequences: Vec<(String, i64)>,
    /// Modes overwrite and exact: per table changed, the keys of the rows updated (with the
    /// columns that changed) and deleted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<crate::ChangedTable>,
    /// The tenants whose rows one statement wrote together with this tenant's, itself
    /// among them (its `elapsed` is its share of that statement); absent when its own
    /// statements wrote its rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    #[serde(with = "seconds")]
    pub elapsed: Duration,
}

impl TenantOutcome {
    #[must_use]
    pub fn restored(&self) -> bool {
        self.status == TenantStatus::Restored
    }

    #[must_use]
    pub fn inserted(&self) -> u64 {
        self.tables.iter().map(|table| table.inserted).sum()
    }
}

mod seconds {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64((duration.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}
