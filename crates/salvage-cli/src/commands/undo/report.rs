//! What `salvage undo` says: the plan shown before the first write, the summary after, and
//! the JSON report, all read from the same per-tenant reports.

use std::path::Path;
use std::time::{Instant, SystemTime};

use salvage_journal::{Conflict, UndoCounts, UndoTenant, UndoneRun};
use salvage_pg::DatabaseUrl;
use serde::Serialize;

use crate::args::{Format, UndoArgs};
use crate::failure::{Failure, SOME_FAILED, SUCCESS};
use crate::output;
use crate::table::{Align, TextTable};

/// Conflicts shown per refused tenant in the text summary (the JSON has all it was given).
const CONFLICTS_SHOWN: usize = 5;

/// How one tenant of the undone run came out of this undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum State {
    /// Reverted, committed.
    Undone,
    /// Rows changed after the run: nothing of the tenant written.
    Refused,
    /// The tenant's transaction failed: nothing of it written.
    Failed,
    /// An earlier (or concurrent) undo reverted it.
    AlreadyUndone,
    /// The run did not restore it (failed or pending there): nothing to undo.
    NotRestored,
}

impl State {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Undone => "undone",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::AlreadyUndone => "already undone",
            Self::NotRestored => "not restored",
        }
    }
}

/// What the run wrote for a tenant, by its images: what an undo does.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Planned {
    /// Rows to remove (the run inserted them).
    pub(super) remove: i64,
    /// Rows to put back to their saved versions (the run updated them).
    pub(super) put_back: i64,
    /// Rows to re-insert (the run deleted them).
    pub(super) reinsert: i64,
}

impl Planned {
    pub(super) fn of(tenant: &UndoTenant) -> Self {
        Self {
            remove: tenant.inserted,
            put_back: tenant.updated,
            reinsert: tenant.deleted,
        }
    }
}

/// A tenant in the report.
#[derive(Debug, Serialize)]
pub(super) struct TenantReport {
    pub(super) tenant: String,
    /// The tenant's place in the undone run, for the report's order.
    #[serde(skip)]
    pub(super) position: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) label: Option<String>,
    pub(super) state: State,
    pub(super) planned: Planned,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) counts: Option<UndoCounts>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) conflicts: Vec<Conflict>,
    /// Every conflict found, named above or not.
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) conflicts_total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) undone_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &usize) -> bool {
    *value == 0
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Summary {
    pub(super) tenants: usize,
    pub(super) undone: usize,
    pub(super) refused: usize,
    pub(super) failed: usize,
    pub(super) already_undone: usize,
    pub(super) not_restored: usize,
    pub(super) rows_removed: i64,
    pub(super) rows_already_gone: i64,
    pub(super) rows_put_back: i64,
    pub(super) rows_reinserted: i64,
    pub(super) rows_forced: i64,
    pub(super) conflicts: usize,
}

impl Summary {
    pub(super) fn of(tenants: &[TenantReport]) -> Self {
        let mut summary = Self {
            tenants: tenants.len(),
            ..Self::default()
        };
        for tenant in tenants {
            match tenant.state {
                State::Undone => summary.undone += 1,
                State::Refused => summary.refused += 1,
                State::Failed => summary.failed += 1,
                State::AlreadyUndone => summary.already_undone += 1,
                State::NotRestored => summary.not_restored += 1,
            }
            if let Some(counts) = &tenant.counts {
                summary.rows_removed += counts.removed;
                summary.rows_already_gone += counts.already_gone;
                summary.rows_put_back += counts.put_back;
                summary.rows_reinserted += counts.reinserted;
                summary.rows_forced += counts.forced;
            }
            summary.conflicts += tenant.conflicts_total;
        }
        summary
    }
}

/// The undo's report: the shape of the restore's (`salvage_version`, `command`, `state`,
/// `run`, `summary`, `tenants`, `exit_code`).
#[derive(Debug, Serialize)]
pub(super) struct UndoReport {
    pub(super) salvage_version: &'static str,
    pub(super) command: &'static str,
    /// `done`, `failed` (some tenant refused or failed) or `nothing_to_do`.
    pub(super) state: &'static str,
    pub(super) run: RunFacts,
    pub(super) started_at: String,
    pub(super) target: String,
    pub(super) force: bool,
    pub(super) exit_code: u8,
    pub(super) total_seconds: f64,
    pub(super) summary: Summary,
    pub(super) tenants: Vec<TenantReport>,
}

#[derive(Debug, Serialize)]
pub(super) struct RunFacts {
    /// The undo's own run in the journal (none when there was nothing to do).
    pub(super) id: Option<String>,
    /// The run it reverts.
    pub(super) undoes: String,
}

/// `3 rows changed after the run: public.issues (id)=(12) changed, …`.
pub(super) fn conflicts_text(conflicts: &[Conflict], total: usize) -> String {
    let named: Vec<String> = conflicts
        .iter()
        .take(CONFLICTS_SHOWN)
        .map(|conflict| {
            format!(
                "{} ({})=({}) {}",
                conflict.table,
                conflict.key_columns.join(", "),
                conflict.key.join(", "),
                match &conflict.needed_by {
                    Some(tenant) => format!("needed by tenant {tenant} of the run"),
                    None => conflict.what.to_owned(),
                }
            )
        })
        .collect();
    let needed = conflicts.iter().any(|conflict| conflict.what == "needed");
    let referenced = conflicts
        .iter()
        .any(|conflict| conflict.what == "referenced");
    format!(
        "{} after the run: {}{}; {}",
        output::count(total as u64, "row changed", "rows changed"),
        named.join(", "),
        if total > named.len() {
            format!(" and {} more", output::number((total - named.len()) as u64))
        } else {
            String::new()
        },
        if needed {
            "rows the run restored for other tenants reference rows it inserted for this one: undo those tenants with it (--force does not remove them)"
        } else if referenced {
            "rows written since reference rows the run inserted, which would go with them: remove those first (--force does not)"
        } else {
            "--force puts them back anyway"
        }
    )
}

/// What the undo will do, per tenant and in total.
pub(super) fn plan_text(
    undone: &UndoneRun,
    todo: &[UndoTenant],
    others: &[TenantReport],
    force: bool,
) -> String {
    let mut out = format!(
        "Undo of run {} (a restore of {} into {}, {}):\n\n",
        undone.run, undone.root, undone.target, undone.state
    );
    let mut table = TextTable::new(&[
        ("TENANT", Align::Left),
        ("LABEL", Align::Left),
        ("REMOVE", Align::Right),
        ("PUT BACK", Align::Right),
        ("RE-INSERT", Align::Right),
    ]);
    let mut total = Planned {
        remove: 0,
        put_back: 0,
        reinsert: 0,
    };
    for tenant in todo {
        let planned = Planned::of(tenant);
        total.remove += planned.remove;
        total.put_back += planned.put_back;
        total.reinsert += planned.reinsert;
        table.row(vec![
            tenant.tenant.clone(),
            tenant.label.clone().unwrap_or_default(),
            output::number(planned.remove.unsigned_abs()),
            output::number(planned.put_back.unsigned_abs()),
            output::number(planned.reinsert.unsigned_abs()),
        ]);
    }
    out.push_str(&table.render(2));
    out.push_str(&format!(
        "\n{}: {} to remove, {} to put back to their saved versions, {} to re-insert.\n",
        output::counted(todo.len() as u64, "tenant"),
        output::counted(total.remove.unsigned_abs(), "row"),
        output::number(total.put_back.unsigned_abs()),
        output::number(total.reinsert.unsigned_abs()),
    ));
    for other in others {
        out.push_str(&format!(
            "Tenant {}: {}",
            other.tenant,
            other.state.as_str()
        ));
        if let Some(by) = &other.undone_by {
            out.push_str(&format!(" by run {by}"));
        }
        out.push_str(", left alone.\n");
    }
    out.push_str(if force {
        "--force: rows changed after the run are put back (or removed) too.\n"
    } else {
        "A tenant with rows changed after the run is refused (nothing of it written); --force puts them back anyway.\n"
    });
    out.push_str("Sequences are left where they are.\n");
    out
}

/// What the end of an undo says.
pub(super) struct Finished<'a> {
    pub(super) args: &'a UndoArgs,
    pub(super) target: &'a DatabaseUrl,
    pub(super) started_at: SystemTime,
    pub(super) clock: Instant,
    pub(super) undo_id: Option<String>,
    pub(super) undoes: &'a str,
}

/// Prints the summary (or the JSON), writes the report, and returns the exit code: 0 when
/// every tenant handled was undone (or needed nothing), 1 when one was refused or failed.
pub(super) fn finish(
    facts: &Finished<'_>,
    tenants: Vec<TenantReport>,
    state: &'static str,
) -> Result<u8, Failure> {
    let summary = Summary::of(&tenants);
    let code = if summary.refused + summary.failed > 0 {
        SOME_FAILED
    } else {
        SUCCESS
    };
    let report = UndoReport {
        salvage_version: env!("CARGO_PKG_VERSION"),
        command: "undo",
        state,
        run: RunFacts {
            id: facts.undo_id.clone(),
            undoes: facts.undoes.to_owned(),
        },
        started_at: crate::report::rfc3339(facts.started_at),
        target: facts.target.redacted().to_owned(),
        force: facts.args.force,
        exit_code: code,
        total_seconds: crate::report::round(facts.clock.elapsed()),
        summary,
        tenants,
    };
    match facts.args.format {
        Format::Json => println!("{}", output::json(&report).map_err(Failure::failed)?),
        Format::Text => output::print(&summary_text(&report)),
    }
    if let Some(path) = &facts.args.report {
        write_report(path, &report, facts.args.format)?;
    }
    Ok(code)
}

/// Writes the report; says so where the rest of the text went (stderr beside JSON).
pub(super) fn write_report(
    path: &Path,
    report: &UndoReport,
    format: Format,
) -> Result<(), Failure> {
    crate::report::write_json(path, report).map_err(Failure::failed)?;
    match format {
        Format::Text => println!("Report written to {}.", path.display()),
        Format::Json => eprintln!("Report written to {}.", path.display()),
    }
    Ok(())
}

/// Per tenant its state (and why), then the totals.
pub(super) fn summary_text(report: &UndoReport) -> String {
    let summary = &report.summary;
    let mut out = String::new();
    if report.state == "nothing_to_do" {
        out.push_str(&format!("Nothing to undo in run {}: ", report.run.undoes));
        out.push_str(&format!(
            "{} already undone, {} not restored by the run.\n",
            output::counted(summary.already_undone as u64, "tenant"),
            output::number(summary.not_restored as u64)
        ));
        for tenant in &report.tenants {
            if let Some(by) = &tenant.undone_by {
                out.push_str(&format!("  tenant {}: undone by run {by}\n", tenant.tenant));
            }
        }
        return out;
    }
    out.push('\n');
    let mut table = TextTable::new(&[
        ("TENANT", Align::Left),
        ("STATE", Align::Left),
        ("REMOVED", Align::Right),
        ("PUT BACK", Align::Right),
        ("RE-INSERTED", Align::Right),
    ]);
    let mut notes = Vec::new();
    for tenant in &report.tenants {
        let counts = tenant.counts.unwrap_or_default();
        table.row(vec![
            tenant.tenant.clone(),
            tenant.state.as_str().to_owned(),
            output::number(counts.removed.unsigned_abs()),
            output::number(counts.put_back.unsigned_abs()),
            output::number(counts.reinserted.unsigned_abs()),
        ]);
        if let Some(error) = &tenant.error {
            notes.push(format!("  tenant {}: {error}", tenant.tenant));
        }
        if counts.already_gone > 0 {
            notes.push(format!(
                "  tenant {}: {} the run inserted gone already",
                tenant.tenant,
                output::count(counts.already_gone.unsigned_abs(), "row", "rows")
            ));
        }
        if counts.forced > 0 {
            notes.push(format!(
                "  tenant {}: {} changed after the run, put back or removed all the same (--force)",
                tenant.tenant,
                output::count(counts.forced.unsigned_abs(), "row", "rows")
            ));
        }
    }
    out.push_str(&table.render(2));
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\n{} undone, {} refused, {} failed, {} already undone; {} removed, {} put back, {} re-inserted.\n",
        output::counted(summary.undone as u64, "tenant"),
        output::number(summary.refused as u64),
        output::number(summary.failed as u64),
        output::number(summary.already_undone as u64),
        output::counted(summary.rows_removed.unsigned_abs(), "row"),
        output::number(summary.rows_put_back.unsigned_abs()),
        output::number(summary.rows_reinserted.unsigned_abs()),
    ));
    if summary.refused > 0 {
        out.push_str("Refused tenants were left as they are; --force undoes them anyway.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use salvage_journal::Conflict;

    use super::conflicts_text;

    fn conflict(id: usize) -> Conflict {
        Conflict {
            table: "public.issues".to_owned(),
            key_columns: vec!["site_id".to_owned(), "number".to_owned()],
            key: vec!["2".to_owned(), id.to_string()],
            what: "changed",
            needed_by: None,
        }
    }

    #[test]
    fn names_the_first_conflicts_and_counts_the_rest() {
        assert_eq!(
            conflicts_text(&[conflict(1)], 1),
            "1 row changed after the run: public.issues (site_id, number)=(2, 1) changed; --force puts them back anyway"
        );
        let many: Vec<Conflict> = (1..=10).map(conflict).collect();
        let text = conflicts_text(&many, 12);
        assert!(
            text.starts_with(
                "12 rows changed after the run: public.issues (site_id, number)=(2, 1) changed, "
            ),
            "{text}"
        );
        assert!(text.contains("(2, 5) changed and 7 more;"), "{text}");
        assert!(!text.contains("(2, 6)"), "{text}");
    }
}
