//! `salvage restore`: plan (or read a reviewed plan), show it, confirm, restore tenant by
//! tenant, verify, report — as a run of the target's journal, which a rerun continues and
//! other workers share.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::anyhow;
use salvage_closure::guards::{Asked, ParentKey};
use salvage_journal::{Journal, NewRun, Run, RunState, RunSummary, TenantRow, TenantState};
use salvage_merge::{Ledger, TenantStatus};
use salvage_pg::ConnectionRole;
use sqlx::postgres::PgConnection;

use crate::args::RestoreArgs;
use crate::failure::{Failure, OrBadInput, SOME_FAILED, SUCCESS};
use crate::planfile::PlanFile;
use crate::prepare::{Identified, Prepared, Purpose};
use crate::progress::{Display, PlanProgress, RestoreProgress};
use crate::report::{RunFacts, RunInfo, Timings, round, run_report, write_json};
use crate::settings::{Extra, Settings};
use crate::{Interrupt, output, render};

/// Tenants listed in the plan shown before a restore (`salvage plan` lists them all).
const TENANTS_SHOWN: usize = 20;

pub async fn run(args: &RestoreArgs, interrupt: &Interrupt) -> Result<u8, Failure> {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let reviewed = match &args.plan {
        Some(path) => Some(PlanFile::read(path).bad_input()?),
        None => None,
    };
    let extra = Extra {
        jobs: args.jobs,
        lock_timeout: args.lock_timeout.as_deref(),
        statement_timeout: args.statement_timeout.as_deref(),
        group_size: args.group_size,
        mode: args.mode.map(Into::into),
        ..Extra::default()
    };
    let mut settings = match &reviewed {
        Some(file) => Settings::from_plan(file, &args.common, &extra)?,
        None => Settings::resolve(&args.common, &extra)?,
    };
    settings
        .journal_schema
        .clone_from(&args.journal.journal_schema);
    if args.no_journal && settings.plan.mode.changes_live_rows() {
        return Err(Failure::bad_input(anyhow!(
            "mode {} changes rows live already has and keeps each replaced row in the journal, so the change can be undone: it does not run with --no-journal",
            settings.plan.mode.name()
        )));
    }
    let display = Display::detect();
    let purpose = Purpose::Restore {
        report: args.report.clone(),
    };
    let recovery = super::start_recovery(&settings).await?;
    let progress = PlanProgress::new(display);
    let identified = crate::prepare::identify(&settings, recovery, &purpose).await;
    let mut identified = match identified {
        Ok(identified) => identified,
        Err(failure) => {
            progress.finish();
            return Err(failure);
        }
    };
    if let Some(file) = &reviewed {
        if let Err(failure) = check_digest(file, &identified) {
            progress.finish();
            return Err(failure);
        }
    }
    let digest = identified.inputs.digest();
    let journal = (!args.no_journal).then(|| Journal::new(&args.journal.journal_schema));
    let earlier = match &journal {
        Some(journal) => {
            let problems = journal.problems(identified.live()).await.bad_input();
            match problems {
                // Refused with every other problem, once the plan is resolved.
                Ok(problems) if !problems.is_empty() => {
                    identified.block(problems);
                    Ok(None)
                }
                Ok(_) => earlier_run(journal, identified.live(), &digest, args.new_run).await,
                Err(failure) => Err(failure),
            }
        }
        None => Ok(None),
    };
    let earlier = match earlier {
        Ok(earlier) => earlier,
        Err(failure) => {
            progress.finish();
            return Err(failure);
        }
    };
    if let Some((summary, tenants)) = &earlier {
        if summary.state == RunState::Done {
            progress.finish();
            return finished(summary, tenants, args.report.as_deref(), started_at);
        }
    }
    // Tenants whose rows still wait for parents live does not have: a rerun could add
    // nothing to them, so they are not planned again.
    let unchanged = match (&journal, &earlier) {
        (Some(journal), Some((summary, tenants))) => {
            still_waiting(journal, &mut identified, &summary.run, tenants).await
        }
        _ => HashSet::new(),
    };
    let needs_nothing = |tenant: &TenantRow| {
        complete(tenant) || (is_settled(tenant) && unchanged.contains(&tenant.tenant))
    };
    // A run continued: only the tenants not yet done, whole and verified are read again.
    let only: Option<HashSet<String>> = earlier.as_ref().map(|(_, tenants)| {
        tenants
            .iter()
            .filter(|tenant| !needs_nothing(tenant))
            .map(|tenant| tenant.tenant.clone())
            .collect()
    });
    let run_tenants = identified.tenant_ids();
    if let (Some(journal), Some((summary, _)), true) = (
        journal.as_ref(),
        earlier.as_ref(),
        only.as_ref().is_some_and(HashSet::is_empty),
    ) {
        // Every tenant is complete but the run was never marked so (its last worker was
        // stopped first): settle it.
        progress.finish();
        let settled = settle_finished(journal, &settings, summary, &digest).await?;
        let tenants = earlier
            .as_ref()
            .map_or(&[][..], |(_, tenants)| tenants.as_slice());
        return finished(&settled, tenants, args.report.as_deref(), started_at);
    }
    // Before the plan reads live: what live had committed then (a continued run's tenants
    // done with rows waiting are done again when the plan saw their commit).
    let planned_after = match (&journal, &earlier) {
        (Some(_), Some(_)) => {
            match sqlx::query_scalar::<_, String>("SELECT pg_catalog.txid_current_snapshot()::text")
                .fetch_one(identified.live())
                .await
            {
                Ok(snapshot) => Some(snapshot),
                Err(error) => {
                    tracing::warn!(%error, "live's snapshot could not be read: tenants done with rows waiting stay done");
                    None
                }
            }
        }
        _ => None,
    };
    let prepared =
        crate::prepare::resolve(identified, &settings, only.as_ref(), &progress, &purpose).await;
    progress.finish();
    let mut prepared = prepared?;
    if let Some(file) = &reviewed {
        check_counts(file, &prepared)?;
    }
    // The completeness check reads only the snapshot: it runs while the restore writes (its
    // walk started while the plan read).
    let completeness = prepared.completeness();
    let plan_seconds = clock.elapsed();
    output::print(&render::plan(&prepared, Some(TENANTS_SHOWN)));
    if let Some((summary, tenants)) = &earlier {
        let done = tenants
            .iter()
            .filter(|tenant| needs_nothing(tenant))
            .count();
        println!(
            "\nContinuing run {} (started {}, {}): {} of {} done earlier, {} to restore or check now.",
            summary.run,
            summary.started_at,
            summary.state.as_str(),
            output::number(done as u64),
            output::counted(tenants.len() as u64, "tenant"),
            output::number(prepared.plan.tenants.len() as u64)
        );
    }
    // The time spent at the prompt is the operator's, not the run's.
    let prompt_clock = Instant::now();
    confirm(&prepared, args.yes).await?;
    let at_prompt = prompt_clock.elapsed();

    // The first write: the journal's run, then the tenants.
    let mut journal_connection = None;
    if let Some(journal) = &journal {
        let mut connection = salvage_pg::connect(&settings.target, ConnectionRole::ReadWrite)
            .await
            .map_err(|error| Failure::bad_input(anyhow!("the target database: {error}")))?;
        let mut run =
            start_run(journal, &mut connection, &prepared, &digest, !args.new_run).await?;
        run.planned_after = planned_after;
        let positions = prepared
            .plan
            .tenants
            .iter()
            .map(|tenant| {
                run_tenants
                    .iter()
                    .position(|id| *id == tenant.id)
                    .map(|position| position as i32)
                    .ok_or_else(|| {
                        Failure::failed(anyhow!("tenant {} is not of the run", tenant.id))
                    })
            })
            .collect::<Result<Vec<i32>, Failure>>()?;
        println!(
            "Run {}{}.",
            run.id,
            if run.resumed { " (continued)" } else { "" }
        );
        settings.merge.ledger = Some(Arc::new(Ledger { run, positions }));
        journal_connection = Some(connection);
    }
    settings.merge.stop = interrupt.stop.clone();
    interrupt.handled();

    let plan = Arc::clone(&prepared.plan);
    let total_rows: u64 = plan
        .tenants
        .iter()
        .map(|tenant| plan.rows_to_copy(tenant))
        .sum();
    println!();
    let restore_clock = Instant::now();
    let restore_progress = Arc::new(RestoreProgress::new(
        display,
        plan.tenants.len() as u64,
        total_rows,
    ));
    let outcomes = salvage_merge::restore(
        Arc::clone(&plan),
        prepared.snapshot.clone(),
        prepared.target.clone(),
        Arc::clone(&prepared.live_catalog),
        settings.merge.clone(),
        Arc::clone(&restore_progress) as Arc<dyn salvage_merge::RestoreReporter>,
    )
    .await
    .map_err(Failure::failed)?;
    restore_progress.finish();
    let restore_seconds = restore_clock.elapsed();
    let stopped = interrupt.stop.requested();

    // Stopped: no verification (a rerun continues and verifies); the tenants committed so
    // far are in the journal.
    let (checks, verify_seconds) = if stopped {
        (Vec::new(), std::time::Duration::ZERO)
    } else {
        super::verify_shown(&prepared, settings.jobs, display, completeness).await?
    };

    let mut run_info = None;
    if let (Some(ledger), Some(connection)) = (&settings.merge.ledger, journal_connection.as_mut())
    {
        let results: Vec<(i32, bool, Option<String>)> = checks
            .iter()
            .zip(&ledger.positions)
            .zip(&outcomes)
            .filter(|(_, outcome)| {
                matches!(
                    outcome.status,
                    TenantStatus::Restored | TenantStatus::Elsewhere
                )
            })
            .map(|((check, position), _)| {
                (
                    *position,
                    check.passed(),
                    (!check.passed()).then(|| {
                        check.error.clone().unwrap_or_else(|| {
                            format!("{} snapshot rows missing in live", check.missing())
                        })
                    }),
                )
            })
            .collect();
        ledger
            .run
            .verified(connection, &results)
            .await
            .map_err(Failure::failed)?;
        let settled = ledger
            .run
            .leave(connection, stopped)
            .await
            .map_err(Failure::failed)?;
        run_info = Some(RunInfo::new(&ledger.run, &settled, &outcomes));
    }
    if let Some(connection) = journal_connection {
        salvage_pg::close(connection).await;
    }

    output::print(&render::restore_summary(&plan, &outcomes, &checks));
    if let Some(info) = &run_info {
        println!("\n{}", info.describe());
    }
    let all_good = outcomes.iter().all(|outcome| {
        matches!(
            outcome.status,
            TenantStatus::Restored | TenantStatus::Elsewhere
        )
    }) && checks.iter().all(salvage_verify::TenantCheck::passed);
    let code = if stopped {
        interrupt.code()
    } else if all_good {
        SUCCESS
    } else {
        SOME_FAILED
    };
    let run_time = clock.elapsed().saturating_sub(at_prompt);
    println!(
        "\n{} in {:.1}s (plan {:.1}s, restore {:.1}s, verify {:.1}s).",
        if stopped { "Interrupted" } else { "Done" },
        run_time.as_secs_f64(),
        plan_seconds.as_secs_f64(),
        restore_seconds.as_secs_f64(),
        verify_seconds.as_secs_f64()
    );
    if let Some(path) = &args.report {
        let report = run_report(&RunFacts {
            command: "restore",
            started_at,
            prepared: &prepared,
            outcomes: Some(&outcomes),
            checks: &checks,
            timings: Timings {
                plan_seconds: round(plan_seconds),
                restore_seconds: Some(round(restore_seconds)),
                verify_seconds: round(verify_seconds),
                total_seconds: round(clock.elapsed().saturating_sub(at_prompt)),
            },
            exit_code: code,
            interrupted: stopped,
            run: run_info,
        });
        write_json(path, &report).map_err(Failure::failed)?;
        println!("Report written to {}.", path.display());
    }
    Ok(code)
}

/// Whether a tenant of an earlier run needs nothing more: done, nothing waiting, verified.
fn complete(tenant: &TenantRow) -> bool {
    is_settled(tenant) && tenant.rows_waiting == 0
}

/// Whether a tenant of an earlier run is done and verified (rows may still wait).
fn is_settled(tenant: &TenantRow) -> bool {
    tenant.state == TenantState::Done && tenant.verified.as_deref() == Some("passed")
}

/// The parent table and columns a journal record of waiting rows names.
fn parent_key(parent: &salvage_journal::WaitingFor) -> ParentKey {
    (
        salvage_catalog::QualifiedName::new(parent.schema.clone(), parent.table.clone()),
        parent.columns.clone(),
    )
}

/// The tenants of an earlier run, done and verified with rows waiting, none of whose
/// waited-for parents live has now (one probe per parent table, on its key): a rerun would
/// plan them only to find the same rows waiting. A tenant whose journal did not keep what
/// its rows wait for (an older layout, too many keys) is planned again; so is every tenant
/// when live cannot be asked (the plan then says why).
async fn still_waiting(
    journal: &Journal,
    identified: &mut Identified,
    run: &str,
    tenants: &[TenantRow],
) -> HashSet<String> {
    let waiting: Vec<&TenantRow> = tenants
        .iter()
        .filter(|tenant| is_settled(tenant) && tenant.rows_waiting > 0)
        .collect();
    if waiting.is_empty() {
        return HashSet::new();
    }
    let (live, live_catalog) = identified.live_with_catalog();
    let kept = match journal.waiting_for(&mut *live, run).await {
        Ok(kept) => kept,
        Err(error) => {
            tracing::warn!(%error, "what the waiting rows wait for could not be read: they are planned again");
            return HashSet::new();
        }
    };
    // Per tenant, what it waits for; and every key asked, once, per parent.
    let by_position: HashMap<i32, &str> = waiting
        .iter()
        .map(|tenant| (tenant.position, tenant.tenant.as_str()))
        .collect();
    let mut waits: Vec<(&str, Vec<salvage_journal::WaitingFor>)> = Vec::new();
    let mut asked: BTreeMap<ParentKey, BTreeSet<Box<[u8]>>> = BTreeMap::new();
    for (position, text) in &kept {
        let Some(&tenant) = by_position.get(position) else {
            continue;
        };
        let Ok(parents) = serde_json::from_str::<Vec<salvage_journal::WaitingFor>>(text) else {
            continue;
        };
        for parent in &parents {
            asked
                .entry(parent_key(parent))
                .or_default()
                .extend(parent.keys.iter().map(|key| key.as_bytes().into()));
        }
        waits.push((tenant, parents));
    }
    if waits.is_empty() {
        return HashSet::new();
    }
    let asked: Asked = asked
        .into_iter()
        .map(|(parent, keys)| (parent, keys.into_iter().collect()))
        .collect();
    let started = Instant::now();
    let found = match salvage_closure::ask_live(live, live_catalog, asked).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "live could not be asked for the parents waiting rows wait for: they are planned again");
            return HashSet::new();
        }
    };
    let unchanged: HashSet<String> = waits
        .into_iter()
        .filter(|(_, parents)| {
            parents.iter().all(|parent| {
                found.get(&parent_key(parent)).is_none_or(|present| {
                    parent
                        .keys
                        .iter()
                        .all(|key| !present.contains(key.as_bytes()))
                })
            })
        })
        .map(|(tenant, _)| tenant.to_owned())
        .collect();
    tracing::info!(
        tenants = unchanged.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "tenants whose rows still wait for parents live does not have"
    );
    unchanged
}

/// The journal's latest run of this plan, with its tenants, unless a new one is asked for.
async fn earlier_run(
    journal: &Journal,
    live: &mut PgConnection,
    digest: &str,
    new_run: bool,
) -> Result<Option<(RunSummary, Vec<TenantRow>)>, Failure> {
    if new_run || !journal.exists(live).await.bad_input()? {
        return Ok(None);
    }
    let Some(summary) = journal.latest_run(live, digest).await.bad_input()? else {
        return Ok(None);
    };
    let tenants = journal.tenants(live, &summary.run).await.bad_input()?;
    Ok(Some((summary, tenants)))
}

/// A finished run, said so (and reported): exit 0 when every tenant was verified whole.
fn finished(
    summary: &RunSummary,
    tenants: &[TenantRow],
    report: Option<&std::path::Path>,
    started_at: SystemTime,
) -> Result<u8, Failure> {
    let counts = summary.tenants;
    let waiting: Vec<&TenantRow> = tenants
        .iter()
        .filter(|tenant| tenant.rows_waiting > 0)
        .collect();
    println!(
        "Run {} (started {}) is finished: {} restored and verified{}{}. Nothing to do; --new-run starts over.",
        summary.run,
        summary.started_at,
        output::counted(counts.done as u64, "tenant"),
        if counts.verify_failed > 0 {
            format!(
                ", {} of them found incomplete",
                output::number(counts.verify_failed as u64)
            )
        } else {
            String::new()
        },
        if waiting.is_empty() {
            String::new()
        } else {
            format!(
                "; {} of {} still wait for parents live does not have (asked now)",
                output::counted(
                    waiting
                        .iter()
                        .map(|tenant| tenant.rows_waiting as u64)
                        .sum(),
                    "row"
                ),
                output::counted(waiting.len() as u64, "tenant")
            )
        }
    );
    let code = if counts.verify_failed == 0 && counts.failed == 0 {
        SUCCESS
    } else {
        SOME_FAILED
    };
    if let Some(path) = report {
        let report = FinishedReport {
            salvage_version: env!("CARGO_PKG_VERSION"),
            command: "restore",
            started_at: crate::report::rfc3339(started_at),
            state: "finished_earlier",
            run: summary,
            summary: FinishedSummary {
                tenants: tenants.len(),
                restored: 0,
                failed: 0,
                rows_inserted: 0,
                verified: counts.verified,
            },
            tenants,
            exit_code: code,
        };
        write_json(path, &report).map_err(Failure::failed)?;
        println!("Report written to {}.", path.display());
    }
    Ok(code)
}

/// The report of a rerun that found its run finished: nothing done now.
#[derive(Debug, serde::Serialize)]
struct FinishedReport<'a> {
    salvage_version: &'static str,
    command: &'static str,
    started_at: String,
    state: &'static str,
    run: &'a RunSummary,
    summary: FinishedSummary,
    tenants: &'a [TenantRow],
    exit_code: u8,
}

#[derive(Debug, serde::Serialize)]
struct FinishedSummary {
    tenants: usize,
    restored: usize,
    failed: usize,
    rows_inserted: u64,
    verified: i64,
}

/// Marks a run whose tenants are all complete as done: this process joins it as a worker
/// with nothing to do, and leaves it.
async fn settle_finished(
    journal: &Journal,
    settings: &Settings,
    summary: &RunSummary,
    digest: &str,
) -> Result<RunSummary, Failure> {
    let mut connection = salvage_pg::connect(&settings.target, ConnectionRole::ReadWrite)
        .await
        .map_err(|error| Failure::bad_input(anyhow!("the target database: {error}")))?;
    let worker = worker_info();
    let run = journal
        .start_run(
            &mut connection,
            &NewRun {
                mode: settings.plan.mode.name(),
                digest,
                snapshot: &summary.snapshot,
                target: &summary.target,
                root: &summary.root,
                plan: None,
                salvage_version: env!("CARGO_PKG_VERSION"),
                tenants: &[],
                worker: &worker,
            },
            true,
        )
        .await
        .map_err(Failure::failed)?;
    run.leave(&mut connection, false)
        .await
        .map_err(Failure::failed)?;
    let settled = journal
        .run(&mut connection, &run.id)
        .await
        .map_err(Failure::failed)?
        .ok_or_else(|| Failure::failed(anyhow!("run {} is gone from the journal", run.id)))?;
    salvage_pg::close(connection).await;
    Ok(settled)
}

fn worker_info() -> salvage_journal::WorkerInfo {
    salvage_journal::WorkerInfo {
        host: crate::who::host(),
        os_user: crate::who::os_user(),
        pid: std::process::id(),
        command: crate::who::command_line(),
    }
}

/// Creates the journal if needed and starts (or continues) the run.
async fn start_run(
    journal: &Journal,
    connection: &mut PgConnection,
    prepared: &Prepared,
    digest: &str,
    resume: bool,
) -> Result<Run, Failure> {
    journal.ensure(connection).await.map_err(Failure::failed)?;
    let inputs = &prepared.inputs;
    let tenants: Vec<(String, Option<String>)> = inputs
        .tenants
        .iter()
        .map(|tenant| (tenant.id.clone(), tenant.label.clone()))
        .collect();
    let plan = serde_json::to_string(inputs).map_err(Failure::failed)?;
    let worker = worker_info();
    journal
        .start_run(
            connection,
            &NewRun {
                mode: prepared.plan.mode.name(),
                digest,
                snapshot: &inputs.snapshot.location,
                target: prepared.target.redacted(),
                root: &prepared.plan.schema.root.table.to_string(),
                plan: Some(&salvage_pg::redact(&plan)),
                salvage_version: env!("CARGO_PKG_VERSION"),
                tenants: &tenants,
                worker: &worker,
            },
            resume,
        )
        .await
        .map_err(Failure::failed)
}

/// `restore --plan`: what the plan restores now is what was reviewed. Each side's identity
/// and table shapes were checked, change by change, as the sides were opened
/// ([`crate::prepare::open_sides`]); the digest covers the rest (tenants, options, mode).
fn check_digest(file: &PlanFile, identified: &Identified) -> Result<(), Failure> {
    let now = identified.inputs.digest();
    if now != file.digest {
        return Err(Failure::bad_input(anyhow!(
            "the plan's digest {} does not match what it restores now ({now}); nothing was written: make a new plan with salvage plan --out",
            file.digest
        )));
    }
    Ok(())
}

/// `restore --plan`: no tenant writes more rows into a table than the plan showed. Fewer is
/// fine (live got some back since, or an earlier run of the plan restored them).
fn check_counts(file: &PlanFile, prepared: &Prepared) -> Result<(), Failure> {
    let mut more = Vec::new();
    for tenant in &prepared.plan.tenants {
        let Some(reviewed) = file
            .plan
            .tenants
            .iter()
            .find(|planned| planned.id == tenant.id)
        else {
            more.push(format!("tenant {} is not in the plan", tenant.id));
            continue;
        };
        for (table, counts) in prepared.plan.schema.tables.iter().zip(&tenant.tables) {
            let planned = reviewed
                .tables
                .get(&table.name.to_string())
                .copied()
                .unwrap_or_default();
            for (what, now, then) in [
                ("would now get", counts.to_add, planned.to_add),
                (
                    "would now have updated",
                    counts.to_update,
                    planned.to_update,
                ),
                (
                    "would now have deleted",
                    counts.to_delete,
                    planned.to_delete,
                ),
            ] {
                if now > then {
                    more.push(format!(
                        "tenant {}: {} {what} {now} rows, the plan showed {then}",
                        tenant.id, table.name
                    ));
                }
            }
        }
    }
    if more.is_empty() {
        return Ok(());
    }
    Err(Failure::bad_input(anyhow!(
        "live changed since the plan was made: the restore would write more than was reviewed; nothing was written:\n  - {}\nmake a new plan with salvage plan --out",
        more.join("\n  - ")
    )))
}

/// Without `--yes`, asks on a terminal; refuses when there is no terminal to ask on.
async fn confirm(prepared: &Prepared, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::bad_input(anyhow!(
            "refusing to write without --yes: stdin is not a terminal to ask for confirmation on; nothing was written"
        )));
    }
    print!("\n{}", render::confirmation(prepared));
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
            "restore cancelled; nothing was written"
        )))
    }
}
