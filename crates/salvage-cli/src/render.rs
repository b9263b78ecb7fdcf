//! What people read: the plan before any write, and the summary at the end of a run.

use std::fmt::Write as _;

use salvage_closure::{RestorePlan, TableCounts};
use salvage_merge::{TableOutcome, TenantOutcome, TenantStatus};
use salvage_plan::{NoteLevel, Role, SchemaPlan, TablePlan};
use salvage_verify::{TableCheck, TenantCheck};

use std::io::IsTerminal as _;

use crate::output;
use crate::prepare::Prepared;
use crate::report::{PlanDocument, PlanTenant};
use crate::table::{Align, TextTable};

/// How a table belongs to the plan: its ownership path, or what references it.
pub fn table_path(schema: &SchemaPlan, table: &TablePlan) -> String {
    match (&table.role, &table.ownership) {
        (Role::Root, _) => format!("tenant root, key {}", schema.root.key_column),
        (_, Some(ownership)) => {
            let mut path = ownership.describe(&table.name);
            let others = table.parents.len().saturating_sub(1);
            if others > 0 {
                path.push_str(&format!(
                    " (+{others} other relation{})",
                    if others == 1 { "" } else { "s" }
                ));
            }
            path
        }
        _ => {
            let referrers: Vec<String> = schema
                .tables
                .iter()
                .flat_map(|other| &other.shared_references)
                .filter(|relation| relation.parent == table.name)
                .map(|relation| {
                    format!(
                        "{}.{}",
                        relation.child.name,
                        relation.child_columns.join("+")
                    )
                })
                .collect();
            format!("referenced by {}", referrers.join(", "))
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Root => "root",
        Role::Owned => "owned",
        Role::Shared => "shared",
    }
}

/// The plan: sources, tenants as resolved, tables in restore order with counts, notes.
/// `tenant_limit` caps the tenant list (the `plan` command shows them all).
pub fn plan(prepared: &Prepared, tenant_limit: Option<usize>) -> String {
    plan_of(&crate::report::plan_document(prepared), tenant_limit)
}

/// [`plan`] from the plan's document (`plan --show FILE` reads it from a plan file).
pub fn plan_of(plan: &PlanDocument, tenant_limit: Option<usize>) -> String {
    let width = output_width();
    let mut out = String::new();
    // `15.18`, not `15.18 (Debian 15.18-0+deb12u1)`: the line fits.
    let version = |text: &str| text.split_whitespace().next().unwrap_or("").to_owned();
    let _ = writeln!(
        out,
        "snapshot  {} (PostgreSQL {})",
        plan.snapshot,
        version(&plan.snapshot_version)
    );
    if let Some(facts) = &plan.recovery {
        out.push_str(&crate::recovery::describe(facts));
    }
    let _ = writeln!(
        out,
        "target    {} (PostgreSQL {})",
        plan.target,
        version(&plan.target_version)
    );
    let root = &plan.root;
    let label = root
        .label_column
        .as_ref()
        .map_or_else(String::new, |column| format!(", labelled by {column}"));
    let _ = writeln!(
        out,
        "root      {} ({} {}){label}",
        root.table, root.key_column, root.key_type
    );

    let present = plan
        .tenants
        .iter()
        .filter(|tenant| tenant.root_in_live)
        .count();
    let _ = writeln!(
        out,
        "\nTenants: {} resolved in the snapshot{}",
        output::number(plan.tenants.len() as u64),
        if present > 0 {
            format!(
                ", {} still present in live (only their missing rows will be added)",
                output::count(present as u64, "of them", "of them")
            )
        } else {
            String::new()
        }
    );
    let changes = plan.mode.changes_live_rows();
    let deletes = plan.mode.deletes();
    match plan.mode {
        salvage_plan::Mode::Missing => {}
        salvage_plan::Mode::Overwrite => {
            let _ = writeln!(
                out,
                "Mode: overwrite: the tenants' rows live has with other values are set back to the snapshot's; rows written since stay. Every row replaced is kept in the journal (salvage undo)."
            );
        }
        salvage_plan::Mode::Exact => {
            let _ = writeln!(
                out,
                "Mode: exact: the tenants' rows live has with other values are set back, and their rows the snapshot does not have are deleted. Every row replaced or deleted is kept in the journal (salvage undo)."
            );
        }
    }
    let conflicted = plan
        .tenants
        .iter()
        .any(|tenant| !tenant.conflicts.is_empty());
    let mut headers = vec![
        ("ID", Align::Left),
        ("LABEL", Align::Left),
        ("ROOT IN LIVE", Align::Left),
        ("SNAPSHOT ROWS", Align::Right),
        ("TO ADD", Align::Right),
    ];
    if changes {
        headers.push(("TO UPDATE", Align::Right));
    }
    if deletes {
        headers.push(("TO DELETE", Align::Right));
    }
    if conflicted {
        headers.push(("CONFLICTS", Align::Right));
    }
    let mut tenants = TextTable::new(&headers);
    let shown = tenant_limit.unwrap_or(usize::MAX);
    for tenant in plan.tenants.iter().take(shown) {
        let id = match &tenant.given {
            Some(given) => format!("{} (given as {given})", tenant.id),
            None => tenant.id.clone(),
        };
        let mut row = vec![
            id,
            tenant.label.clone().unwrap_or_default(),
            if tenant.root_in_live {
                "present".into()
            } else {
                "missing".into()
            },
            output::number(tenant.snapshot_rows),
            output::number(tenant.rows_to_add),
        ];
        if changes {
            row.push(output::number(tenant.rows_to_update));
        }
        if deletes {
            row.push(output::number(tenant.rows_to_delete));
        }
        if conflicted {
            row.push(output::number(conflicts(tenant)));
        }
        tenants.row(row);
    }
    out.push_str(&tenants.render_within(2, width, None));
    if plan.tenants.len() > shown {
        let _ = writeln!(
            out,
            "  ... and {} more (salvage plan lists them all)",
            output::number((plan.tenants.len() - shown) as u64)
        );
    }

    let _ = writeln!(out, "\nTables, in restore order:");
    let waiting = plan.tables.iter().any(|table| table.counts.waiting > 0);
    let mut headers = vec![
        ("TABLE", Align::Left),
        ("ROLE", Align::Left),
        ("PATH", Align::Left),
        ("SNAPSHOT", Align::Right),
        ("IN LIVE", Align::Right),
        ("TO ADD", Align::Right),
    ];
    if changes {
        headers.push(("TO UPDATE", Align::Right));
    }
    if deletes {
        headers.push(("TO DELETE", Align::Right));
    }
    if waiting {
        headers.push(("WAITING", Align::Right));
    }
    let mut tables = TextTable::new(&headers);
    let mut sum = TableCounts::default();
    for table in &plan.tables {
        let counts = &table.counts;
        sum.add(counts);
        let mut row = vec![
            table.table.clone(),
            role_name(table.role).to_owned(),
            table.path.clone(),
            output::number(counts.snapshot),
            output::number(counts.in_live),
            output::number(counts.to_add),
        ];
        if changes {
            row.push(output::number(counts.to_update));
        }
        if deletes {
            row.push(output::number(counts.to_delete));
        }
        if waiting {
            row.push(output::number(counts.waiting));
        }
        tables.row(row);
    }
    let mut row = vec![
        "total".into(),
        String::new(),
        String::new(),
        output::number(sum.snapshot),
        output::number(sum.in_live),
        output::number(sum.to_add),
    ];
    if changes {
        row.push(output::number(sum.to_update));
    }
    if deletes {
        row.push(output::number(sum.to_delete));
    }
    if waiting {
        row.push(output::number(sum.waiting));
    }
    tables.row(row);
    out.push_str(&tables.render_within(2, width, Some(2)));
    if !plan.unrelated.is_empty() {
        let _ = writeln!(
            out,
            "\nLeft alone (no relation to the tenants): {}",
            plan.unrelated.join(", ")
        );
    }
    if !plan.excluded.is_empty() {
        let _ = writeln!(
            out,
            "Excluded by configuration: {}",
            plan.excluded.join(", ")
        );
    }
    notes(plan, &mut out);
    left_alone(plan, &mut out);
    conflict_list(plan, &mut out);
    if !plan.restore_blockers.is_empty() {
        let _ = writeln!(
            out,
            "\nA restore would be refused (nothing would be written) until these are fixed:"
        );
        for problem in &plan.restore_blockers {
            let _ = writeln!(out, "  - {problem}");
        }
    }
    out
}

/// How wide the plan may be: the terminal's width up to 100 columns, else 100.
fn output_width() -> usize {
    const WIDEST: usize = 100;
    if std::io::stdout().is_terminal() {
        if let Some((_, columns)) = console::Term::stdout().size_checked() {
            return usize::from(columns).clamp(60, WIDEST);
        }
    }
    WIDEST
}

/// How many of a tenant's rows have a key live holds on another row.
fn conflicts(tenant: &PlanTenant) -> u64 {
    tenant
        .tables
        .values()
        .map(|counts| counts.held_elsewhere)
        .sum::<u64>()
        .max(u64::from(!tenant.conflicts.is_empty()))
}

/// Rows the mode would change but leaves as they are, and why.
fn left_alone(plan: &PlanDocument, out: &mut String) {
    let total: u64 = plan
        .tables
        .iter()
        .map(|table| table.counts.left_alone)
        .sum();
    if total == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\nLeft as they are: {} the mode would change (they reach past the chosen tenants):",
        output::counted(total, "row")
    );
    for tenant in &plan.tenants {
        for text in &tenant.left_alone {
            let _ = writeln!(out, "  tenant {}: {text}", tenant.id);
        }
    }
}

/// Each tenant with keys live holds on other rows: it will fail, writing nothing.
fn conflict_list(plan: &PlanDocument, out: &mut String) {
    let conflicted: Vec<&PlanTenant> = plan
        .tenants
        .iter()
        .filter(|tenant| !tenant.conflicts.is_empty())
        .collect();
    if conflicted.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nConflicts: {} cannot be restored whole; {} will fail, writing nothing:",
        output::counted(conflicted.len() as u64, "tenant"),
        if conflicted.len() == 1 { "it" } else { "they" }
    );
    for tenant in conflicted {
        let label = tenant
            .label
            .as_deref()
            .map(|label| format!(" ({label})"))
            .unwrap_or_default();
        for held in &tenant.conflicts {
            let _ = writeln!(out, "  tenant {}{label}: {held}", tenant.id);
        }
    }
}

/// The question before a restore: how much, into where, and who will fail.
pub fn confirmation(prepared: &Prepared) -> String {
    let plan = &prepared.plan;
    let rows: u64 = plan
        .tenants
        .iter()
        .map(salvage_closure::TenantClosure::rows_to_add)
        .sum();
    let conflicted: Vec<&str> = plan
        .tenants
        .iter()
        .filter(|tenant| !tenant.held_elsewhere.is_empty())
        .map(|tenant| tenant.id.as_str())
        .collect();
    let warning = if conflicted.is_empty() {
        String::new()
    } else {
        format!(
            " {} with conflicts ({}) will fail without writing.",
            output::counted(conflicted.len() as u64, "tenant"),
            conflicted.join(", ")
        )
    };
    let total = |count: fn(&salvage_closure::TableCounts) -> u64| {
        plan.totals.iter().map(count).sum::<u64>()
    };
    let changes = match plan.mode {
        salvage_plan::Mode::Missing => String::new(),
        salvage_plan::Mode::Overwrite => format!(
            ", {} to update",
            output::number(total(|counts| counts.to_update))
        ),
        salvage_plan::Mode::Exact => format!(
            ", {} to update, {} to delete",
            output::number(total(|counts| counts.to_update)),
            output::number(total(|counts| counts.to_delete))
        ),
    };
    format!(
        "Restore {} ({} to add{changes}) into {}?{warning} Type 'yes' to continue: ",
        output::counted(plan.tenants.len() as u64, "tenant"),
        output::counted(rows, "row"),
        prepared.target
    )
}

/// The width a note is wrapped to, after its two columns of indent.
const NOTE_WIDTH: usize = 98;

fn notes(plan: &PlanDocument, out: &mut String) {
    let waiting = plan.tenants.iter().any(|tenant| !tenant.waiting.is_empty());
    if plan.notes.is_empty() && plan.dangling.is_empty() && plan.cross_tenant.is_empty() && !waiting
    {
        return;
    }
    let _ = writeln!(out, "\nNotes:");
    for note in &plan.notes {
        let level = match note.level {
            NoteLevel::Info => "note",
            NoteLevel::Warning => "warning",
        };
        let text = match &note.table {
            Some(table) => format!("{level}: {table}: {}", note.message),
            None => format!("{level}: {}", note.message),
        };
        // Off a terminal too, a note stays within 100 columns.
        for line in crate::table::wrap_text(&text, NOTE_WIDTH) {
            let _ = writeln!(out, "  {line}");
        }
    }
    for dangling in &plan.dangling {
        let _ = writeln!(out, "  warning: {dangling}");
    }
    for crossing in &plan.cross_tenant {
        let _ = writeln!(
            out,
            "  note: {}: {} {} more than one of the chosen tenants (e.g. {}); each counts under all of them and goes in once",
            crossing.table,
            output::counted(crossing.rows, "row"),
            if crossing.rows == 1 {
                "reaches"
            } else {
                "reach"
            },
            crossing.examples.join("; ")
        );
    }
    for tenant in &plan.tenants {
        for waiting in &tenant.waiting {
            let _ = writeln!(out, "  warning: tenant {}: {waiting}", tenant.id);
        }
    }
}

/// Per-table figures of a run, summed over tenants.
#[derive(Debug, Default, Clone, Copy)]
pub struct TableTotals {
    pub outcome: TableOutcome,
    pub check: TableCheckTotals,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct TableCheckTotals {
    pub snapshot: u64,
    pub equal: u64,
    pub different: u64,
    pub missing: u64,
    pub left_behind: u64,
    pub waiting: u64,
    pub live_only: u64,
}

impl TableCheckTotals {
    fn add(&mut self, check: &TableCheck) {
        self.snapshot += check.snapshot;
        self.equal += check.equal;
        self.different += check.different;
        self.missing += check.missing;
        self.left_behind += check.left_behind;
        self.waiting += check.waiting;
        self.live_only += check.live_only.unwrap_or(0);
    }
}

pub fn table_totals(
    plan: &RestorePlan,
    outcomes: &[TenantOutcome],
    checks: &[TenantCheck],
) -> Vec<TableTotals> {
    let mut totals = vec![TableTotals::default(); plan.schema.tables.len()];
    for outcome in outcomes {
        for (total, table) in totals.iter_mut().zip(&outcome.tables) {
            total.outcome.copied += table.copied;
            total.outcome.inserted += table.inserted;
            total.outcome.already_present += table.already_present;
            total.outcome.waiting += table.waiting;
        }
    }
    for check in checks {
        for (total, table) in totals.iter_mut().zip(&check.tables) {
            if let Some(table) = table {
                total.check.add(table);
            }
        }
    }
    // A shared row is one row however many tenants reference it: its table counts each
    // once, as the plan does (a tenant's outcome counts the rows it found present).
    for ((total, table), counts) in totals.iter_mut().zip(&plan.schema.tables).zip(&plan.totals) {
        if table.role == Role::Shared {
            total.check.snapshot = counts.snapshot;
            if !outcomes.is_empty() {
                total.outcome.already_present = counts.in_live;
            }
        }
    }
    totals
}

/// The end-of-run summary of a restore: per tenant, then per table.
pub fn restore_summary(
    plan: &RestorePlan,
    outcomes: &[TenantOutcome],
    checks: &[TenantCheck],
) -> String {
    let mut out = String::new();
    let totals = table_totals(plan, outcomes, checks);
    let restored = outcomes.iter().filter(|outcome| outcome.restored()).count();
    let inserted: u64 = outcomes.iter().map(TenantOutcome::inserted).sum();
    let present: u64 = totals
        .iter()
        .map(|total| total.outcome.already_present)
        .sum();
    let verified = checks.iter().filter(|check| check.passed()).count();
    let count = |status: &TenantStatus| {
        outcomes
            .iter()
            .filter(|outcome| &outcome.status == status)
            .count() as u64
    };
    let (interrupted, elsewhere) = (
        count(&TenantStatus::Interrupted),
        count(&TenantStatus::Elsewhere),
    );
    let mut others = String::new();
    if interrupted > 0 {
        others.push_str(&format!(
            ", {} not attempted (interrupted: run the same restore again to continue)",
            output::number(interrupted)
        ));
    }
    if elsewhere > 0 {
        others.push_str(&format!(
            ", {} restored by another worker of the run",
            output::number(elsewhere)
        ));
    }
    let _ = writeln!(
        out,
        "\nRestored {} of {}{others}: {} inserted, {} already present and kept. Verified {} of {}.",
        output::number(restored as u64),
        output::counted(outcomes.len() as u64, "tenant"),
        output::counted(inserted, "row"),
        output::number(present),
        output::number(verified as u64),
        output::number(checks.len() as u64)
    );
    let mut tenants = TextTable::new(&[
        ("TENANT", Align::Left),
        ("LABEL", Align::Left),
        ("STATUS", Align::Left),
        ("INSERTED", Align::Right),
        ("PRESENT", Align::Right),
        ("VERIFIED", Align::Left),
    ]);
    let mut failures = Vec::new();
    for (outcome, check) in outcomes
        .iter()
        .zip(checks.iter().map(Some).chain(std::iter::repeat(None)))
    {
        let status = match &outcome.status {
            TenantStatus::Restored if outcome.attempts > 1 => {
                format!("restored ({} attempts)", outcome.attempts)
            }
            TenantStatus::Restored => "restored".to_owned(),
            TenantStatus::Failed { error } => {
                failures.push(format!("  tenant {}: {error}", outcome.tenant));
                "FAILED".to_owned()
            }
            TenantStatus::Interrupted => "not attempted (interrupted)".to_owned(),
            TenantStatus::Elsewhere => "restored by another worker".to_owned(),
        };
        tenants.row(vec![
            outcome.tenant.clone(),
            outcome.label.clone().unwrap_or_default(),
            status,
            output::number(outcome.inserted()),
            output::number(
                outcome
                    .tables
                    .iter()
                    .map(|table| table.already_present)
                    .sum::<u64>(),
            ),
            check.map_or_else(|| "-".to_owned(), verdict),
        ]);
    }
    out.push_str(&tenants.render(2));
    changed_rows(outcomes, &mut out);
    if !failures.is_empty() {
        let _ = writeln!(
            out,
            "\nFailed tenants (rolled back, nothing of theirs written):"
        );
        for failure in failures {
            let _ = writeln!(out, "{failure}");
        }
    }
    out.push_str(&table_summary(plan, &totals, true));
    out
}

/// Keys shown per table and kind of change; the JSON report has them all.
const CHANGES_SHOWN: usize = 5;

/// Modes overwrite and exact: the rows each tenant's restore updated (with the columns that
/// changed) and deleted, the first few per table.
fn changed_rows(outcomes: &[TenantOutcome], out: &mut String) {
    let updated: u64 = outcomes
        .iter()
        .flat_map(|outcome| &outcome.tables)
        .map(|table| table.updated)
        .sum();
    let deleted: u64 = outcomes
        .iter()
        .flat_map(|outcome| &outcome.tables)
        .map(|table| table.deleted)
        .sum();
    if updated + deleted == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\nChanged: {} updated, {} deleted; each replaced row is kept in the journal (salvage undo --run):",
        output::counted(updated, "row"),
        output::number(deleted)
    );
    let key = |values: &[String]| format!("({})", values.join(", "));
    for outcome in outcomes {
        for table in &outcome.changed {
            if !table.updated.is_empty() {
                let shown: Vec<String> = table
                    .updated
                    .iter()
                    .take(CHANGES_SHOWN)
                    .map(|row| format!("{} [{}]", key(&row.key), row.columns.join(", ")))
                    .collect();
                let more = table.updated.len().saturating_sub(CHANGES_SHOWN);
                let _ = writeln!(
                    out,
                    "  tenant {}: {} updated {}{}",
                    outcome.tenant,
                    table.table,
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {} more", output::number(more as u64))
                    } else {
                        String::new()
                    }
                );
            }
            if !table.deleted.is_empty() {
                let shown: Vec<String> = table
                    .deleted
                    .iter()
                    .take(CHANGES_SHOWN)
                    .map(|row| key(row))
                    .collect();
                let more = table.deleted.len().saturating_sub(CHANGES_SHOWN);
                let _ = writeln!(
                    out,
                    "  tenant {}: {} deleted {}{}",
                    outcome.tenant,
                    table.table,
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {} more", output::number(more as u64))
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
}

/// The end-of-run summary of `verify`.
pub fn verify_summary(plan: &RestorePlan, checks: &[TenantCheck]) -> String {
    let mut out = String::new();
    let passed = checks.iter().filter(|check| check.passed()).count();
    let failed = checks.len() - passed;
    if failed == 0 {
        let _ = writeln!(
            out,
            "\nVerified {}: every snapshot row present in live.",
            output::counted(checks.len() as u64, "tenant")
        );
    } else {
        let _ = writeln!(
            out,
            "\nVerified {} of {}; {} FAILED: snapshot rows missing in live, or not as the mode left them (below).",
            output::number(passed as u64),
            output::counted(checks.len() as u64, "tenant"),
            output::number(failed as u64)
        );
    }
    let mut tenants = TextTable::new(&[
        ("TENANT", Align::Left),
        ("LABEL", Align::Left),
        ("VERIFIED", Align::Left),
    ]);
    for check in checks {
        tenants.row(vec![
            check.tenant.clone(),
            check.label.clone().unwrap_or_default(),
            verdict(check),
        ]);
    }
    out.push_str(&tenants.render(2));
    out.push_str(&table_summary(
        plan,
        &table_totals(plan, &[], checks),
        false,
    ));
    let mut examples = Vec::new();
    for check in checks {
        for table in check.tables.iter().flatten() {
            let name = table
                .table
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            if !table.missing_examples.is_empty() {
                examples.push(format!(
                    "  tenant {}: {name} missing key(s) {}",
                    check.tenant,
                    table.missing_examples.join("; ")
                ));
            }
            if !table.different_examples.is_empty() {
                examples.push(format!(
                    "  tenant {}: {name} different key(s) {}",
                    check.tenant,
                    table.different_examples.join("; ")
                ));
            }
        }
    }
    if !examples.is_empty() {
        let _ = writeln!(out, "\nExamples:");
        for example in examples.iter().take(20) {
            let _ = writeln!(out, "{example}");
        }
    }
    out
}

fn verdict(check: &TenantCheck) -> String {
    if let Some(error) = &check.error {
        return format!("error: {error}");
    }
    let missing = check.missing();
    let different = check.different();
    if missing == 0 && !check.mode_problems.is_empty() {
        return format!("FAILED: {}", check.mode_problems.join("; "));
    }
    match (missing, different) {
        (0, 0) => "equal".to_owned(),
        (0, different) => format!(
            "ok, {} (kept)",
            output::count(different, "row differs", "rows differ")
        ),
        (missing, _) => format!("FAILED: {} missing", output::counted(missing, "row")),
    }
}

fn table_summary(plan: &RestorePlan, totals: &[TableTotals], with_writes: bool) -> String {
    let mut headers = vec![("TABLE", Align::Left), ("SNAPSHOT", Align::Right)];
    if with_writes {
        headers.extend([("INSERTED", Align::Right), ("PRESENT", Align::Right)]);
    }
    let waiting = totals.iter().any(|total| total.check.waiting > 0);
    headers.extend([
        ("EQUAL", Align::Right),
        ("DIFFERENT", Align::Right),
        ("MISSING", Align::Right),
    ]);
    if waiting {
        headers.push(("WAITING", Align::Right));
    }
    headers.push(("LIVE-ONLY", Align::Right));
    let mut table = TextTable::new(&headers);
    for (plan_table, total) in plan.schema.tables.iter().zip(totals) {
        if !plan_table.in_live || !plan_table.in_snapshot {
            continue;
        }
        let mut row = vec![
            plan_table.name.to_string(),
            output::number(total.check.snapshot),
        ];
        if with_writes {
            row.extend([
                output::number(total.outcome.inserted),
                output::number(total.outcome.already_present),
            ]);
        }
        let shared = plan_table.role == Role::Shared;
        let checked = |value: u64| {
            if shared {
                "-".to_owned()
            } else {
                output::number(value)
            }
        };
        row.extend([
            checked(total.check.equal),
            checked(total.check.different),
            checked(total.check.missing),
        ]);
        if waiting {
            row.push(checked(total.check.waiting));
        }
        row.push(checked(total.check.live_only));
        table.row(row);
    }
    format!("\nPer table:\n{}", table.render(2))
}
