//! `salvage undo`: revert a restore run, tenant by tenant, from the row images its journal
//! kept. Everything is checked before the first write (the journal, the run, the tenants,
//! the live tables the images name and the role's rights on them), what it will do is shown
//! and confirmed, then each tenant is undone in a transaction of its own, as an undo run of
//! the journal. A tenant already undone is said so and left alone: a second undo writes
//! nothing.

mod report;

use std::io::{IsTerminal, Write};
use std::time::{Instant, SystemTime};

use anyhow::anyhow;
use salvage_journal::{Journal, NewUndo, TenantUndo, UndoRun, UndoTenant, UndoneRun};
use salvage_pg::{ConnectionRole, DatabaseUrl};
use sqlx::postgres::PgConnection;
use tracing::Instrument;

use crate::args::{Format, UndoArgs};
use crate::failure::{Failure, OrBadInput};
use crate::output;
use crate::tenants::{GivenTenant, describe};

use report::{Finished, Planned, State, TenantReport, conflicts_text, finish, plan_text};

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
    if let Err(failure) = confirm(&todo, &target, args.yes).await {
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
    // Last committed first: a tenant that committed later may hold rows that reference
    // shared rows an earlier one inserted, which must go after them.
    let mut order: Vec<(usize, &UndoTenant)> = todo.iter().enumerate().collect();
    order.sort_by_key(|(_, tenant)| tenant.undo_order);
    // Passes over the tenants left: the first over all of them, the next ones over those
    // refused only because rows restored for tenants undone after them referenced theirs —
    // while a pass frees some.
    let mut pending: Vec<(usize, &UndoTenant)> = order;
    loop {
        let before = pending.len();
        let mut refused = Vec::new();
        for (position, tenant) in pending {
            let report = undo_one(
                &undo,
                &mut connection,
                &catalog,
                tenant,
                i32::try_from(position).map_err(Failure::failed)?,
                args.force,
            )
            .instrument(tracing::info_span!("undo", tenant = %tenant.tenant))
            .await?;
            if needs_others(&report) {
                refused.push((position, tenant, report));
            } else {
                reports.push(report);
            }
        }
        if refused.is_empty() || refused.len() == before {
            reports.extend(refused.into_iter().map(|(_, _, report)| report));
            break;
        }
        pending = refused
            .into_iter()
            .map(|(position, tenant, _)| (position, tenant))
            .collect();
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

/// Whether a tenant was refused only for rows the run restored for other tenants.
fn needs_others(report: &TenantReport) -> bool {
    report.state == State::Refused
        && !report.conflicts.is_empty()
        && report
            .conflicts
            .iter()
            .all(|conflict| conflict.what == "needed")
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

/// Without `--yes`, asks on a terminal; refuses when there is no terminal to ask on.
async fn confirm(todo: &[UndoTenant], target: &DatabaseUrl, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::bad_input(anyhow!(
            "refusing to write without --yes: stdin is not a terminal to ask for confirmation on; nothing was written"
        )));
    }
    let rows: i64 = todo
        .iter()
        .map(|tenant| tenant.inserted + tenant.updated + tenant.deleted)
        .sum();
    output::print(&format!(
        "\nUndo {} ({} to remove, put back or re-insert) in {target}? Type 'yes' to continue: ",
        output::counted(todo.len() as u64, "tenant"),
        output::counted(rows.unsigned_abs(), "row")
    ));
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
