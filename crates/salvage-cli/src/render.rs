//! What people read: the plan before any write, and the summary at the end of a run.

use std::fmt::Write as _;

use salvage_closure::{RestorePlan, TableCounts};
use salvage_merge::{TableOutcome, TenantOutcome, TenantStatus};
use salvage_plan::{NoteLevel, Role, SchemaPlan, TablePlan};
use salvage_verify::{TableCheck, TenantCheck};

use crate::prepare::Prepared;
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
    let plan = &prepared.plan;
    let schema = &plan.schema;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "snapshot  {} (PostgreSQL {})",
        prepared.snapshot.describe(),
        prepared.snapshot.catalog().server_version
    );
    if let Some(facts) = &prepared.recovery_facts {
        out.push_str(&crate::recovery::describe(facts));
    }
    let _ = writeln!(
        out,
        "target    {} (PostgreSQL {})",
        prepared.target, prepared.target_version
    );
    let label = schema
        .root
        .label_column
        .as_ref()
        .map_or_else(String::new, |column| format!(", labelled by {column}"));
    let _ = writeln!(
        out,
        "root      {} ({} {}){label}",
        schema.root.table, schema.root.key_column, schema.root.key_type
    );

    let present = plan
        .tenants
        .iter()
        .filter(|tenant| tenant.root_in_live)
        .count();
    let _ = writeln!(
        out,
        "\nTenants: {} resolved in the snapshot{}",
        plan.tenants.len(),
        if present > 0 {
            format!(
                ", {present} of them still present in live (only their missing rows will be added)"
            )
        } else {
            String::new()
        }
    );
    let mut tenants = TextTable::new(&[
        ("ID", Align::Left),
        ("LABEL", Align::Left),
        ("ROOT IN LIVE", Align::Left),
        ("SNAPSHOT ROWS", Align::Right),
        ("TO ADD", Align::Right),
    ]);
    let shown = tenant_limit.unwrap_or(usize::MAX);
    for tenant in plan.tenants.iter().take(shown) {
        let id = match &tenant.given {
            Some(given) => format!("{} (given as {given})", tenant.id),
            None => tenant.id.clone(),
        };
        tenants.row(vec![
            id,
            tenant.label.clone().unwrap_or_default(),
            if tenant.root_in_live {
                "present".into()
            } else {
                "missing".into()
            },
            tenant.snapshot_rows().to_string(),
            tenant.rows_to_add().to_string(),
        ]);
    }
    out.push_str(&tenants.render(2));
    if plan.tenants.len() > shown {
        let _ = writeln!(
            out,
            "  ... and {} more (salvage plan lists them all)",
            plan.tenants.len() - shown
        );
    }

    let _ = writeln!(out, "\nTables, in restore order:");
    let totals = &plan.totals;
    let waiting = totals.iter().any(|counts| counts.waiting > 0);
    let mut headers = vec![
        ("TABLE", Align::Left),
        ("ROLE", Align::Left),
        ("PATH", Align::Left),
        ("SNAPSHOT", Align::Right),
        ("IN LIVE", Align::Right),
        ("TO ADD", Align::Right),
    ];
    if waiting {
        headers.push(("WAITING", Align::Right));
    }
    let mut tables = TextTable::new(&headers);
    let mut sum = TableCounts::default();
    for (table, counts) in schema.tables.iter().zip(totals) {
        sum.add(counts);
        let mut row = vec![
            table.name.to_string(),
            role_name(table.role).to_owned(),
            table_path(schema, table),
            counts.snapshot.to_string(),
            counts.in_live.to_string(),
            counts.to_add.to_string(),
        ];
        if waiting {
            row.push(counts.waiting.to_string());
        }
        tables.row(row);
    }
    let mut row = vec![
        "total".into(),
        String::new(),
        String::new(),
        sum.snapshot.to_string(),
        sum.in_live.to_string(),
        sum.to_add.to_string(),
    ];
    if waiting {
        row.push(sum.waiting.to_string());
    }
    tables.row(row);
    out.push_str(&tables.render(2));
    if !schema.unrelated.is_empty() {
        let names: Vec<String> = schema.unrelated.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "\nLeft alone (no relation to the tenants): {}",
            names.join(", ")
        );
    }
    if !schema.excluded.is_empty() {
        let names: Vec<String> = schema.excluded.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "Excluded by configuration: {}", names.join(", "));
    }
    notes(plan, &mut out);
    out
}

fn notes(plan: &RestorePlan, out: &mut String) {
    let schema = &plan.schema;
    let held = plan
        .tenants
        .iter()
        .any(|tenant| !tenant.held_elsewhere.is_empty());
    let waiting = plan
        .tenants
        .iter()
        .any(|tenant| !tenant.waiting_examples.is_empty());
    if schema.notes.is_empty()
        && plan.dangling.is_empty()
        && plan.cross_tenant.is_empty()
        && !held
        && !waiting
    {
        return;
    }
    let _ = writeln!(out, "\nNotes:");
    for note in &schema.notes {
        let level = match note.level {
            NoteLevel::Info => "note",
            NoteLevel::Warning => "warning",
        };
        match &note.table {
            Some(table) => {
                let _ = writeln!(out, "  {level}: {table}: {}", note.message);
            }
            None => {
                let _ = writeln!(out, "  {level}: {}", note.message);
            }
        }
    }
    for dangling in &plan.dangling {
        let _ = writeln!(out, "  warning: {dangling}");
    }
    for crossing in &plan.cross_tenant {
        let _ = writeln!(
            out,
            "  note: {}: {} rows reach more than one of the chosen tenants (e.g. {}); each counts under all of them and goes in once",
            crossing.table,
            crossing.rows,
            crossing.examples.join("; ")
        );
    }
    for tenant in &plan.tenants {
        for held in &tenant.held_elsewhere {
            let _ = writeln!(
                out,
                "  warning: tenant {}: {held}; this tenant will not be restored",
                tenant.id
            );
        }
        for waiting in &tenant.waiting_examples {
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
    totals
}

/// The end-of-run summary of a restore: per tenant, then per table.
pub fn restore_summary(
    plan: &RestorePlan,
    outcomes: &[TenantOutcome],
    checks: &[TenantCheck],
) -> String {
    let mut out = String::new();
    let restored = outcomes.iter().filter(|outcome| outcome.restored()).count();
    let inserted: u64 = outcomes.iter().map(TenantOutcome::inserted).sum();
    let present: u64 = outcomes
        .iter()
        .flat_map(|outcome| &outcome.tables)
        .map(|table| table.already_present)
        .sum();
    let verified = checks.iter().filter(|check| check.passed()).count();
    let _ = writeln!(
        out,
        "\nRestored {restored} of {} tenants: {inserted} rows inserted, {present} already present and kept. Verified {verified} of {}.",
        outcomes.len(),
        checks.len()
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
        };
        tenants.row(vec![
            outcome.tenant.clone(),
            outcome.label.clone().unwrap_or_default(),
            status,
            outcome.inserted().to_string(),
            outcome
                .tables
                .iter()
                .map(|table| table.already_present)
                .sum::<u64>()
                .to_string(),
            check.map_or_else(|| "-".to_owned(), verdict),
        ]);
    }
    out.push_str(&tenants.render(2));
    if !failures.is_empty() {
        let _ = writeln!(
            out,
            "\nFailed tenants (rolled back, nothing of theirs written):"
        );
        for failure in failures {
            let _ = writeln!(out, "{failure}");
        }
    }
    out.push_str(&table_summary(
        plan,
        &table_totals(plan, outcomes, checks),
        true,
    ));
    out
}

/// The end-of-run summary of `verify`.
pub fn verify_summary(plan: &RestorePlan, checks: &[TenantCheck]) -> String {
    let mut out = String::new();
    let passed = checks.iter().filter(|check| check.passed()).count();
    let _ = writeln!(
        out,
        "\nVerified {passed} of {} tenants: every snapshot row present in live.",
        checks.len()
    );
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
    match (missing, different) {
        (0, 0) => "equal".to_owned(),
        (0, different) => format!("ok, {different} rows differ (kept)"),
        (missing, _) => format!("FAILED: {missing} rows missing"),
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
            total.check.snapshot.to_string(),
        ];
        if with_writes {
            row.extend([
                total.outcome.inserted.to_string(),
                total.outcome.already_present.to_string(),
            ]);
        }
        row.extend([
            total.check.equal.to_string(),
            total.check.different.to_string(),
            total.check.missing.to_string(),
        ]);
        if waiting {
            row.push(total.check.waiting.to_string());
        }
        row.extend([if plan_table.role == Role::Shared {
            "-".to_owned()
        } else {
            total.check.live_only.to_string()
        }]);
        table.row(row);
    }
    format!("\nPer table:\n{}", table.render(2))
}
