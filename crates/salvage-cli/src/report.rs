//! Machine-readable output: `plan --format json`, and the `--report FILE` of restore and
//! verify (tenants, per-table counts, timings, failures with their error). URLs redacted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use salvage_closure::{CrossTenantRows, RestorePlan, TableCounts};
use salvage_journal::{Run, RunState, Settled};
use salvage_merge::{TenantOutcome, TenantStatus};
use salvage_plan::{Cycle, DeferredConstraint, Note, Relation, Role, RootInfo};
use salvage_recovery::SnapshotFacts;
use salvage_verify::TenantCheck;
use serde::{Deserialize, Serialize};

use crate::prepare::Prepared;
use crate::render::{table_path, table_totals};

/// The plan as `plan --format json` prints it and a plan file holds it: what the text plan
/// shows, and what `plan --show` shows again from the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanDocument {
    pub snapshot: String,
    #[serde(default)]
    pub snapshot_version: String,
    /// A base backup snapshot: the backup, its label, the target, where replay stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<SnapshotFacts>,
    pub target: String,
    #[serde(default)]
    pub target_version: String,
    pub root: RootInfo,
    /// What the restore does to the rows live already has.
    #[serde(default)]
    pub mode: salvage_plan::Mode,
    pub tenants: Vec<PlanTenant>,
    pub tables: Vec<PlanTable>,
    pub unrelated: Vec<String>,
    pub excluded: Vec<String>,
    pub cycles: Vec<Cycle>,
    pub deferred: Vec<DeferredConstraint>,
    pub cross_tenant: Vec<CrossTenantRows>,
    pub notes: Vec<Note>,
    pub dangling: Vec<String>,
    /// What would stop a restore (privileges, a read-only target): a restore refuses, writing
    /// nothing, until they are fixed.
    pub restore_blockers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanTenant {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
    pub label: Option<String>,
    pub root_in_live: bool,
    pub snapshot_rows: u64,
    pub rows_to_add: u64,
    /// Modes overwrite and exact: live rows set back to the snapshot's values.
    #[serde(default)]
    pub rows_to_update: u64,
    /// Mode exact: live rows the snapshot does not have, deleted.
    #[serde(default)]
    pub rows_to_delete: u64,
    /// Rows the mode would change but leaves, and why (a few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_alone: Vec<String>,
    /// Keys of the tenant's rows that live holds on other rows (the key, or another unique
    /// key: a slug a new customer took): the tenant's restore fails, writing nothing.
    pub conflicts: Vec<String>,
    /// Rows that wait for a parent neither live has nor the run restores (a few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    pub tables: BTreeMap<String, TableCounts>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanTable {
    pub table: String,
    pub role: Role,
    pub path: String,
    /// How the table reaches the root, relation by relation, with where each came from.
    pub ownership: Option<Vec<Relation>>,
    /// Every relation a row's tenants come from.
    pub relations: Vec<Relation>,
    pub exists_in_live: bool,
    pub exists_in_snapshot: bool,
    #[serde(flatten)]
    pub counts: TableCounts,
}

pub fn plan_document(prepared: &Prepared) -> PlanDocument {
    let plan = &prepared.plan;
    let schema = &plan.schema;
    let names: Vec<String> = schema
        .tables
        .iter()
        .map(|table| table.name.to_string())
        .collect();
    let tenants = plan
        .tenants
        .iter()
        .map(|tenant| PlanTenant {
            id: tenant.id.clone(),
            given: tenant.given.clone(),
            label: tenant.label.clone(),
            root_in_live: tenant.root_in_live,
            snapshot_rows: tenant.snapshot_rows(),
            rows_to_add: tenant.rows_to_add(),
            rows_to_update: tenant.tables.iter().map(|counts| counts.to_update).sum(),
            rows_to_delete: tenant.tables.iter().map(|counts| counts.to_delete).sum(),
            left_alone: tenant.left_as_they_are.clone(),
            conflicts: tenant.held_elsewhere.clone(),
            waiting: tenant.waiting_examples.clone(),
            tables: names
                .iter()
                .zip(&tenant.tables)
                .filter(|(_, counts)| counts.snapshot + counts.to_delete + counts.left_alone > 0)
                .map(|(name, counts)| (name.clone(), *counts))
                .collect(),
        })
        .collect();
    let tables = schema
        .tables
        .iter()
        .zip(plan.totals.iter().copied())
        .map(|(table, counts)| PlanTable {
            table: table.name.to_string(),
            role: table.role,
            path: table_path(schema, table),
            ownership: table
                .ownership
                .as_ref()
                .map(|ownership| ownership.chain.clone()),
            relations: table.parents.clone(),
            exists_in_live: table.in_live,
            exists_in_snapshot: table.in_snapshot,
            counts,
        })
        .collect();
    PlanDocument {
        snapshot: prepared.snapshot.describe(),
        snapshot_version: prepared.snapshot.catalog().server_version.clone(),
        recovery: prepared.recovery_facts.clone(),
        target: prepared.target.redacted().to_owned(),
        target_version: prepared.target_version.clone(),
        root: schema.root.clone(),
        mode: plan.mode,
        tenants,
        tables,
        unrelated: schema.unrelated.iter().map(ToString::to_string).collect(),
        excluded: schema.excluded.iter().map(ToString::to_string).collect(),
        cycles: schema.cycles.clone(),
        deferred: schema.deferred.clone(),
        cross_tenant: plan.cross_tenant.clone(),
        notes: schema.notes.clone(),
        dangling: plan.dangling.clone(),
        restore_blockers: prepared.restore_blockers.clone(),
    }
}

/// Seconds spent in each phase (the field names say so in the report).
#[allow(clippy::struct_field_names)]
#[derive(Debug, Default, Serialize)]
pub struct Timings {
    pub plan_seconds: f64,
    pub restore_seconds: Option<f64>,
    pub verify_seconds: f64,
    pub total_seconds: f64,
}

/// The journal's run a restore was part of.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: String,
    /// The run's state once this process left it.
    pub state: RunState,
    /// Whether this process continued a run started earlier.
    pub resumed: bool,
    pub worker: String,
    /// The run's tenants (every worker's).
    pub tenants: RunTenants,
    /// This process's share: tenants it restored, found restored by another worker, or did
    /// not get to.
    pub restored_here: usize,
    pub restored_elsewhere: usize,
    pub not_attempted: usize,
    /// Other workers still on the run when this one left.
    pub other_workers: i64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RunTenants {
    pub done: i64,
    pub failed: i64,
    pub pending: i64,
}

impl RunInfo {
    pub fn new(run: &Run, settled: &Settled, outcomes: &[TenantOutcome]) -> Self {
        let count = |status: &TenantStatus| {
            outcomes
                .iter()
                .filter(|outcome| &outcome.status == status)
                .count()
        };
        Self {
            id: run.id.clone(),
            state: settled.state,
            resumed: run.resumed,
            worker: run.worker.clone(),
            tenants: RunTenants {
                done: settled.counts.done,
                failed: settled.counts.failed,
                pending: settled.counts.pending,
            },
            restored_here: count(&TenantStatus::Restored),
            restored_elsewhere: count(&TenantStatus::Elsewhere),
            not_attempted: count(&TenantStatus::Interrupted),
            other_workers: settled.others,
        }
    }

    /// `Run 20261201-… is interrupted: 12 tenants done, 28 pending. …`
    pub fn describe(&self) -> String {
        let mut text = format!(
            "Run {} is {}: {} done, {} failed, {} pending",
            self.id,
            self.state.as_str(),
            crate::output::counted(self.tenants.done as u64, "tenant"),
            crate::output::number(self.tenants.failed as u64),
            crate::output::number(self.tenants.pending as u64),
        );
        if self.other_workers > 0 {
            text.push_str(&format!(
                "; {} still on it",
                crate::output::count(self.other_workers as u64, "other worker", "other workers")
            ));
        }
        match self.state {
            RunState::Interrupted | RunState::Failed => {
                text.push_str(". Run the same restore again to continue it.");
            }
            _ => text.push('.'),
        }
        text
    }
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    salvage_version: &'static str,
    command: &'static str,
    /// How this process ended: `done`, `failed` (some tenant failed or is incomplete) or
    /// `interrupted` (stopped by a signal).
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<RunInfo>,
    started_at: String,
    snapshot: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery: Option<SnapshotFacts>,
    target: String,
    root: String,
    /// `missing`, `overwrite` or `exact`.
    mode: salvage_plan::Mode,
    exit_code: u8,
    timings: Timings,
    summary: Summary,
    tables: Vec<TableReport>,
    tenants: Vec<TenantReport>,
    notes: Vec<Note>,
    dangling: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    tenants: usize,
    restored: Option<usize>,
    failed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restored_elsewhere: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_attempted: Option<usize>,
    verified: usize,
    rows_inserted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_updated: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_deleted: Option<u64>,
    rows_already_present: Option<u64>,
    rows_missing: u64,
    rows_left_behind: u64,
    rows_different: u64,
}

#[derive(Debug, Serialize)]
struct TableReport {
    table: String,
    role: Role,
    path: String,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    snapshot: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    inserted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    already_present: Option<u64>,
    #[serde(skip_serializing_if = "is_zero")]
    updated: u64,
    #[serde(skip_serializing_if = "is_zero")]
    deleted: u64,
    #[serde(skip_serializing_if = "is_zero")]
    waiting: u64,
    equal: u64,
    different: u64,
    missing: u64,
    /// Of the missing rows, those the plan did not hold: found by the independent check.
    #[serde(skip_serializing_if = "is_zero")]
    left_behind: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    live_only: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing_examples: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    different_examples: Vec<String>,
}

#[derive(Debug, Serialize)]
struct TenantReport {
    id: String,
    label: Option<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_seconds: Option<f64>,
    /// Written by one statement with other tenants' rows: how many tenants it wrote (its
    /// `elapsed_seconds` is its share).
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<u32>,
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify_error: Option<String>,
    /// Modes overwrite and exact: what verification found the mode did not do.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mode_problems: Vec<String>,
    tables: BTreeMap<String, Counts>,
    /// Modes overwrite and exact: every key updated (with the columns changed) and
    /// deleted, per table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changed: Vec<salvage_merge::ChangedTable>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sequences: Vec<(String, i64)>,
}

/// What a run did: `outcomes` is empty for `verify`, which writes nothing.
pub struct RunFacts<'a> {
    pub command: &'static str,
    pub started_at: SystemTime,
    pub prepared: &'a Prepared,
    pub outcomes: Option<&'a [TenantOutcome]>,
    pub checks: &'a [TenantCheck],
    pub timings: Timings,
    pub exit_code: u8,
    pub interrupted: bool,
    pub run: Option<RunInfo>,
}

pub fn run_report(facts: &RunFacts<'_>) -> RunReport {
    let plan: &RestorePlan = &facts.prepared.plan;
    let schema = &plan.schema;
    let outcomes = facts.outcomes.unwrap_or(&[]);
    let totals = table_totals(plan, outcomes, facts.checks);
    let writes = facts.outcomes.is_some();
    let tables = schema
        .tables
        .iter()
        .zip(&totals)
        .filter(|(table, _)| table.in_live && table.in_snapshot)
        .map(|(table, total)| TableReport {
            table: table.name.to_string(),
            role: table.role,
            path: table_path(schema, table),
            counts: Counts {
                snapshot: total.check.snapshot,
                inserted: writes.then_some(total.outcome.inserted),
                already_present: writes.then_some(total.outcome.already_present),
                waiting: total.check.waiting,
                equal: total.check.equal,
                different: total.check.different,
                missing: total.check.missing,
                left_behind: total.check.left_behind,
                live_only: (table.role != Role::Shared).then_some(total.check.live_only),
                ..Counts::default()
            },
        })
        .collect();
    let tenants = plan
        .tenants
        .iter()
        .enumerate()
        .map(|(index, tenant)| {
            let outcome = outcomes
                .get(index)
                .filter(|outcome| outcome.tenant == tenant.id);
            let check = facts
                .checks
                .get(index)
                .filter(|check| check.tenant == tenant.id);
            let mut tables = BTreeMap::new();
            for (table_index, table) in schema.tables.iter().enumerate() {
                let written = outcome.map(|outcome| outcome.tables[table_index]);
                let checked = check.and_then(|check| check.tables[table_index].as_ref());
                if written
                    .is_none_or(|written| written.copied + written.updated + written.deleted == 0)
                    && checked.is_none_or(|checked| checked.snapshot == 0)
                {
                    continue;
                }
                tables.insert(
                    table.name.to_string(),
                    Counts {
                        snapshot: checked.map_or(0, |checked| checked.snapshot),
                        inserted: written.map(|written| written.inserted),
                        already_present: written.map(|written| written.already_present),
                        updated: written.map_or(0, |written| written.updated),
                        deleted: written.map_or(0, |written| written.deleted),
                        waiting: checked.map_or(0, |checked| checked.waiting),
                        equal: checked.map_or(0, |checked| checked.equal),
                        different: checked.map_or(0, |checked| checked.different),
                        missing: checked.map_or(0, |checked| checked.missing),
                        left_behind: checked.map_or(0, |checked| checked.left_behind),
                        live_only: checked.and_then(|checked| checked.live_only),
                        missing_examples: checked
                            .map(|checked| checked.missing_examples.clone())
                            .unwrap_or_default(),
                        different_examples: checked
                            .map(|checked| checked.different_examples.clone())
                            .unwrap_or_default(),
                    },
                );
            }
            let (status, error) = match outcome.map(|outcome| &outcome.status) {
                Some(TenantStatus::Restored) => ("restored", None),
                Some(TenantStatus::Failed { error }) => ("failed", Some(error.clone())),
                Some(TenantStatus::Interrupted) => ("interrupted", None),
                Some(TenantStatus::Elsewhere) => ("restored_elsewhere", None),
                None => ("checked", None),
            };
            TenantReport {
                id: tenant.id.clone(),
                label: tenant.label.clone(),
                status,
                error,
                attempts: outcome.map(|outcome| outcome.attempts),
                elapsed_seconds: outcome.map(|outcome| round(outcome.elapsed)),
                batch: outcome.and_then(|outcome| outcome.batch),
                verified: check.is_some_and(TenantCheck::passed),
                verify_error: check.and_then(|check| check.error.clone()),
                mode_problems: check
                    .map(|check| check.mode_problems.clone())
                    .unwrap_or_default(),
                changed: outcome
                    .map(|outcome| outcome.changed.clone())
                    .unwrap_or_default(),
                tables,
                sequences: outcome
                    .map(|outcome| outcome.sequences.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    let restored = outcomes.iter().filter(|outcome| outcome.restored()).count();
    let with_status = |wanted: fn(&TenantStatus) -> bool| {
        outcomes
            .iter()
            .filter(|outcome| wanted(&outcome.status))
            .count()
    };
    let failed = with_status(|status| matches!(status, TenantStatus::Failed { .. }));
    let elsewhere = with_status(|status| *status == TenantStatus::Elsewhere);
    let not_attempted = with_status(|status| *status == TenantStatus::Interrupted);
    let state = if facts.interrupted {
        "interrupted"
    } else if facts.exit_code == 0 {
        "done"
    } else {
        "failed"
    };
    RunReport {
        salvage_version: env!("CARGO_PKG_VERSION"),
        command: facts.command,
        state,
        run: facts.run.clone(),
        started_at: rfc3339(facts.started_at),
        snapshot: facts.prepared.snapshot.describe(),
        recovery: facts.prepared.recovery_facts.clone(),
        target: facts.prepared.target.redacted().to_owned(),
        root: schema.root.table.to_string(),
        mode: plan.mode,
        exit_code: facts.exit_code,
        summary: Summary {
            tenants: plan.tenants.len(),
            restored: writes.then_some(restored),
            failed: writes.then_some(failed),
            restored_elsewhere: (elsewhere > 0).then_some(elsewhere),
            not_attempted: (not_attempted > 0).then_some(not_attempted),
            verified: facts.checks.iter().filter(|check| check.passed()).count(),
            rows_inserted: writes.then(|| outcomes.iter().map(TenantOutcome::inserted).sum()),
            rows_updated: writes.then(|| {
                outcomes
                    .iter()
                    .flat_map(|outcome| &outcome.tables)
                    .map(|table| table.updated)
                    .sum()
            }),
            rows_deleted: writes.then(|| {
                outcomes
                    .iter()
                    .flat_map(|outcome| &outcome.tables)
                    .map(|table| table.deleted)
                    .sum()
            }),
            rows_already_present: writes.then(|| {
                totals
                    .iter()
                    .map(|total| total.outcome.already_present)
                    .sum()
            }),
            rows_missing: facts.checks.iter().map(TenantCheck::missing).sum(),
            rows_left_behind: facts.checks.iter().map(TenantCheck::left_behind).sum(),
            rows_different: facts.checks.iter().map(TenantCheck::different).sum(),
        },
        timings: Timings { ..facts.timings },
        tables,
        tenants,
        notes: schema.notes.clone(),
        dangling: plan.dangling.clone(),
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Writes `value` as JSON to `path`, passwords hidden (the report may quote errors).
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = crate::output::json(value).context("serialize the report")?;
    std::fs::write(path, text + "\n")
        .with_context(|| format!("write the report {}", path.display()))
}

pub fn round(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

/// `2026-11-21T13:42:07Z`, without a date library: days to a civil date (Howard Hinnant's
/// algorithm).
pub fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs()) as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::rfc3339;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_096_927)),
            "2026-11-19T14:02:07Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
