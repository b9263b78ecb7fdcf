//! `salvage undo`: revert a restore run, tenant by tenant, from the row images its journal
//! kept. Everything is checked before the first write (the journal, the run, the tenants,
//! the live tables the images name and the role's rights on them), what it will do is shown
//! and confirmed, then each tenant is undone in a transaction of its own, as an undo run of
//! the journal. A tenant already undone is said so and left alone: a second undo writes
//! nothing.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Instant, SystemTime};

use anyhow::anyhow;
use salvage_journal::{
    Conflict, Journal, NewUndo, TenantUndo, UndoCounts, UndoRun, UndoTenant, UndoneRun,
};
use salvage_pg::{ConnectionRole, DatabaseUrl};
use serde::Serialize;
use sqlx::postgres::PgConnection;
use tracing::Instrument;

use crate::args::{Format, UndoArgs};
use crate::failure::{Failure, OrBadInput, SOME_FAILED, SUCCESS};
use crate::output;
use crate::table::{Align, TextTable};
use crate::tenants::{GivenTenant, describe};

/// Conflicts shown per refused tenant in the text summary (the JSON has all it was given).
const CONFLICTS_SHOWN: usize = 5;

/// How one tenant of the undone run came out of this undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum State {
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
    fn as_str(self) -> &'static str {
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
struct Planned {
    /// Rows to remove (the run inserted them).
    remove: i64,
    /// Rows to put back to their saved versions (the run updated them).
    put_back: i64,
    /// Rows to re-insert (the run deleted them).
    reinsert: i64,
}

impl Planned {
    fn of(tenant: &UndoTenant) -> Self {
        Self {
            remove: tenant.inserted,
            put_back: tenant.updated,
            reinsert: tenant.deleted,
        }
    }
}

/// A tenant in the report.
#[derive(Debug, Serialize)]
struct TenantReport {
    tenant: String,
    /// The tenant's place in the undone run, for the report's order.
    #[serde(skip)]
    position: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    state: State,
    planned: Planned,
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<UndoCounts>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conflicts: Vec<Conflict>,
    /// Every conflict found, named above or not.
    #[serde(skip_serializing_if = "is_zero")]
    conflicts_total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    undone_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &usize) -> bool {
    *value == 0
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    tenants: usize,
    undone: usize,
    refused: usize,
    failed: usize,
    already_undone: usize,
    not_restored: usize,
    rows_removed: i64,
    rows_already_gone: i64,
    rows_put_back: i64,
    rows_reinserted: i64,
    rows_forced: i64,
    conflicts: usize,
}

impl Summary {
    fn of(tenants: &[TenantReport]) -> Self {
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
struct UndoReport {
    salvage_version: &'static str,
    command: &'static str,
    /// `done`, `failed` (some tenant refused or failed) or `nothing_to_do`.
    state: &'static str,
    run: RunFacts,
    started_at: String,
    target: String,
    force: bool,
    exit_code: u8,
    total_seconds: f64,
    summary: Summary,
    tenants: Vec<TenantReport>,
}

#[derive(Debug, Serialize)]
struct RunFacts {
    /// The undo's own run in the journal (none when there was nothing to do).
    id: Option<String>,
    /// The run it reverts.
    undoes: String,
}

pub async fn run(args: &UndoArgs) -> Result<u8, Failure> {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let target = crate::sources::target(args.target.clone())?;
    let given = given_tenants(args)?;
    let mut connection = salvage_pg::connect(&target, ConnectionRole::ReadWrite)
        .await
        .map_err(|error| Failure::bad_input(anyhow!("the target database: {error}")))?;
    let checked = check(args, &target, &mut connection, given.as_deref()).await;
    let checked = match checked {
        Ok(checked) => checked,
        Err(failure) => {
            salvage_pg::close(connection).await;
            return Err(failure);
        }
    };
    let Checked {
        journal,
        undone,
        catalog,
        todo,
        mut reports,
    } = checked;
    if todo.is_empty() {
        salvage_pg::close(connection).await;
        let facts = Finished {
            args,
            target: &target,
            started_at,
            clock,
            undo_id: None,
            undoes: &undone.run,
        };
        return finish(&facts, reports, "nothing_to_do");
    }
    let plan = plan_text(&undone, &todo, &reports, args.force);
    match args.format {
        Format::Text => output::print(&plan),
        Format::Json => eprint!("{}", salvage_pg::redact(&plan)),
    }
    if let Err(failure) = confirm(&todo, args.yes).await {
        salvage_pg::close(connection).await;
        return Err(failure);
    }

    // The first write: the undo's run.
    let worker = salvage_journal::WorkerInfo {
        host: crate::who::host(),
        os_user: crate::who::os_user(),
        pid: std::process::id(),
        command: crate::who::command_line(),
    };
    let handled: Vec<(String, Option<String>)> = todo
        .iter()
        .map(|tenant| (tenant.tenant.clone(), tenant.label.clone()))
        .collect();
    let undo = journal
        .start_undo(
            &mut connection,
            &NewUndo {
                undone: &undone,
                salvage_version: env!("CARGO_PKG_VERSION"),
                tenants: &handled,
                worker: &worker,
            },
        )
        .await
        .map_err(Failure::failed)?;
    if args.format == Format::Text {
        println!("\nUndo run {}.", undo.id);
    }
    for (position, tenant) in todo.iter().enumerate() {
        let position = i32::try_from(position).map_err(Failure::failed)?;
        let report = undo_one(
            &undo,
            &mut connection,
            &catalog,
            tenant,
            position,
            args.force,
        )
        .instrument(tracing::info_span!("undo", tenant = %tenant.tenant))
        .await?;
        reports.push(report);
    }
    let all_undone = reports
        .iter()
        .all(|report| !matches!(report.state, State::Refused | State::Failed));
    undo.finish(&mut connection, all_undone)
        .await
        .map_err(Failure::failed)?;
    salvage_pg::close(connection).await;
    // The run's order, whatever order the states were found in.
    reports.sort_by_key(|report| report.position);
    let facts = Finished {
        args,
        target: &target,
        started_at,
        clock,
        undo_id: Some(undo.id.clone()),
        undoes: &undone.run,
    };
    finish(&facts, reports, if all_undone { "done" } else { "failed" })
}

/// `--tenants` or `--tenants-file`, parsed as `restore` parses them.
fn given_tenants(args: &UndoArgs) -> Result<Option<Vec<GivenTenant>>, Failure> {
    match (&args.tenants, &args.tenants_file) {
        (Some(list), _) => Ok(Some(crate::tenants::parse_list([list.as_str()]))),
        (None, Some(path)) => Ok(Some(crate::tenants::read_file(path).bad_input()?)),
        (None, None) => Ok(None),
    }
    .and_then(|given| match given {
        Some(given) if given.is_empty() => Err(Failure::bad_input(anyhow!(
            "no tenant IDs given: --tenants (or the tenants file) is empty; leave it out to undo every tenant of the run"
        ))),
        given => Ok(given),
    })
}

/// What the checks before any write found: the tenants to undo, and the reports of those
/// that need nothing.
struct Checked {
    journal: Journal,
    undone: UndoneRun,
    catalog: salvage_catalog::Catalog,
    todo: Vec<UndoTenant>,
    reports: Vec<TenantReport>,
}

/// Every check before the first write; each failure is bad input and names the problem.
async fn check(
    args: &UndoArgs,
    target: &DatabaseUrl,
    connection: &mut PgConnection,
    given: Option<&[GivenTenant]>,
) -> Result<Checked, Failure> {
    let state = salvage_pg::target_state(connection).await.bad_input()?;
    if state.in_recovery || state.read_only {
        return Err(Failure::bad_input(anyhow!(
            "{target} cannot be written ({}): nothing was undone",
            if state.in_recovery {
                "it is a hot standby"
            } else {
                "default_transaction_read_only is on"
            }
        )));
    }
    let journal = Journal::new(&args.journal.journal_schema);
    if !journal.exists(connection).await.bad_input()? {
        return Err(Failure::bad_input(anyhow!(
            "no run {}: {target} has no salvage journal in schema {} (--journal-schema names another)",
            args.run,
            journal.schema()
        )));
    }
    let problems = journal.problems(connection).await.bad_input()?;
    if !problems.is_empty() {
        return Err(refused(&problems));
    }
    let version = journal.version(connection).await.bad_input()?.unwrap_or(1);
    if version < 2 {
        return Err(Failure::bad_input(anyhow!(
            "the journal in schema {} has layout version {version}, which keeps no row images: its runs cannot be undone (a restore by this salvage upgrades the journal; runs from then on can)",
            journal.schema()
        )));
    }
    let undone = journal
        .undone_run(connection, &args.run)
        .await
        .bad_input()?
        .ok_or_else(|| {
            Failure::bad_input(anyhow!(
                "no run {} in the journal of {target} (salvage runs lists them)",
                args.run
            ))
        })?;
    if undone.kind != "restore" {
        return Err(Failure::bad_input(anyhow!(
            "run {} is an undo, not a restore: an undo cannot be undone (restore the tenants again instead)",
            undone.run
        )));
    }
    let tenants = journal
        .undo_tenants(connection, &undone.run)
        .await
        .bad_input()?;
    let chosen = choose(&undone, tenants, given)?;
    let (todo, reports) = sort_out(chosen);
    if todo.is_empty() {
        let catalog = salvage_catalog::Catalog::default();
        return Ok(Checked {
            journal,
            undone,
            catalog,
            todo,
            reports,
        });
    }
    if undone.images == 0 {
        return Err(Failure::bad_input(anyhow!(
            "run {} has no row images: it was written by a salvage whose journal kept none (layout 1), or it wrote no rows; there is nothing to undo it by",
            undone.run
        )));
    }
    let catalog = salvage_pg::introspect(connection).await.bad_input()?;
    let positions: Vec<i32> = todo.iter().map(|tenant| tenant.position).collect();
    let tables = journal
        .image_tables(connection, &undone.run, &positions)
        .await
        .bad_input()?;
    let mut problems = salvage_journal::image_table_problems(&catalog, &tables);
    let present: Vec<salvage_catalog::QualifiedName> = tables
        .iter()
        .filter(|table| catalog.table(&table.table).is_some())
        .map(|table| table.table.clone())
        .collect();
    problems.extend(
        salvage_journal::table_right_problems(connection, &present)
            .await
            .bad_input()?,
    );
    if !problems.is_empty() {
        return Err(refused(&problems));
    }
    Ok(Checked {
        journal,
        undone,
        catalog,
        todo,
        reports,
    })
}

fn refused(problems: &[String]) -> Failure {
    Failure::bad_input(anyhow!(
        "cannot undo; nothing was written:\n  - {}",
        problems.join("\n  - ")
    ))
}

/// The run's tenants that `given` names (all of them without it); every given ID the run
/// does not have is named, in one message.
fn choose(
    undone: &UndoneRun,
    tenants: Vec<UndoTenant>,
    given: Option<&[GivenTenant]>,
) -> Result<Vec<UndoTenant>, Failure> {
    let Some(given) = given else {
        return Ok(tenants);
    };
    let unknown: Vec<String> = given
        .iter()
        .filter(|wanted| !tenants.iter().any(|tenant| tenant.tenant == wanted.value))
        .map(|wanted| describe(given, &wanted.value))
        .collect();
    if !unknown.is_empty() {
        return Err(Failure::bad_input(anyhow!(
            "{} not of run {} ({} tenants; salvage runs --run {} lists them): {}; nothing was written",
            if unknown.len() == 1 {
                "this tenant is"
            } else {
                "these tenants are"
            },
            undone.run,
            tenants.len(),
            undone.run,
            unknown.join(", ")
        )));
    }
    Ok(tenants
        .into_iter()
        .filter(|tenant| given.iter().any(|wanted| wanted.value == tenant.tenant))
        .collect())
}

/// The tenants to undo (done in the run, not undone yet), and reports for the others.
fn sort_out(chosen: Vec<UndoTenant>) -> (Vec<UndoTenant>, Vec<TenantReport>) {
    let mut todo = Vec::new();
    let mut reports = Vec::new();
    for tenant in chosen {
        let state = if tenant.undone_by.is_some() {
            State::AlreadyUndone
        } else if tenant.state != "done" {
            State::NotRestored
        } else {
            todo.push(tenant);
            continue;
        };
        reports.push(TenantReport {
            planned: Planned::of(&tenant),
            position: tenant.position,
            tenant: tenant.tenant,
            label: tenant.label,
            state,
            counts: None,
            conflicts: Vec::new(),
            conflicts_total: 0,
            undone_by: tenant.undone_by,
            error: None,
        });
    }
    (todo, reports)
}

/// One tenant's undo, recorded in the undo run whatever its end.
async fn undo_one(
    undo: &UndoRun,
    connection: &mut PgConnection,
    catalog: &salvage_catalog::Catalog,
    tenant: &UndoTenant,
    position: i32,
    force: bool,
) -> Result<TenantReport, Failure> {
    let mut report = TenantReport {
        tenant: tenant.tenant.clone(),
        position: tenant.position,
        label: tenant.label.clone(),
        state: State::Undone,
        planned: Planned::of(tenant),
        counts: None,
        conflicts: Vec::new(),
        conflicts_total: 0,
        undone_by: None,
        error: None,
    };
    let outcome = undo
        .undo_tenant(connection, catalog, tenant, position, force)
        .await;
    match outcome {
        Ok(TenantUndo::Undone(counts)) => {
            report.counts = Some(counts);
            report.undone_by = Some(undo.id.clone());
        }
        Ok(TenantUndo::AlreadyUndone { by }) => {
            undo.tenant_undone_elsewhere(connection, position, &by)
                .await
                .map_err(Failure::failed)?;
            report.state = State::AlreadyUndone;
            report.undone_by = Some(by);
        }
        Ok(TenantUndo::Refused { conflicts, total }) => {
            let error = conflicts_text(&conflicts, total);
            undo.tenant_not_undone(connection, position, &error)
                .await
                .map_err(Failure::failed)?;
            report.state = State::Refused;
            report.conflicts = conflicts;
            report.conflicts_total = total;
            report.error = Some(error);
        }
        Err(error) => {
            let error = error.to_string();
            tracing::warn!(tenant = %tenant.tenant, "undo failed: {error}");
            undo.tenant_not_undone(connection, position, &error)
                .await
                .map_err(Failure::failed)?;
            report.state = State::Failed;
            report.error = Some(error);
        }
    }
    Ok(report)
}

/// `3 rows changed after the run: public.issues (id)=(12) changed, …`.
fn conflicts_text(conflicts: &[Conflict], total: usize) -> String {
    let named: Vec<String> = conflicts
        .iter()
        .take(CONFLICTS_SHOWN)
        .map(|conflict| {
            format!(
                "{} ({})=({}) {}",
                conflict.table,
                conflict.key_columns.join(", "),
                conflict.key.join(", "),
                conflict.what
            )
        })
        .collect();
    format!(
        "{} after the run: {}{}; --force puts them back anyway",
        output::count(total as u64, "row changed", "rows changed"),
        named.join(", "),
        if total > named.len() {
            format!(" and {} more", output::number((total - named.len()) as u64))
        } else {
            String::new()
        }
    )
}

/// What the undo will do, per tenant and in total.
fn plan_text(
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

/// Without `--yes`, asks on a terminal; refuses when there is no terminal to ask on.
async fn confirm(todo: &[UndoTenant], yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::bad_input(anyhow!(
            "refusing to write without --yes: stdin is not a terminal to ask for confirmation on; nothing was written"
        )));
    }
    print!(
        "\nUndo {}? Type yes to go on: ",
        output::counted(todo.len() as u64, "tenant")
    );
    let _ = std::io::stdout().flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(Failure::failed)?
    .map_err(Failure::bad_input)?;
    // Exactly the word the prompt asks for.
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::bad_input(anyhow!(
            "undo cancelled; nothing was written"
        )))
    }
}

/// What the end of an undo says.
struct Finished<'a> {
    args: &'a UndoArgs,
    target: &'a DatabaseUrl,
    started_at: SystemTime,
    clock: Instant,
    undo_id: Option<String>,
    undoes: &'a str,
}

/// Prints the summary (or the JSON), writes the report, and returns the exit code: 0 when
/// every tenant handled was undone (or needed nothing), 1 when one was refused or failed.
fn finish(
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
fn write_report(path: &Path, report: &UndoReport, format: Format) -> Result<(), Failure> {
    crate::report::write_json(path, report).map_err(Failure::failed)?;
    match format {
        Format::Text => println!("Report written to {}.", path.display()),
        Format::Json => eprintln!("Report written to {}.", path.display()),
    }
    Ok(())
}

/// Per tenant its state (and why), then the totals.
fn summary_text(report: &UndoReport) -> String {
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
