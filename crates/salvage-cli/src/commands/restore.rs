//! `salvage restore`: plan, show the plan, confirm, restore tenant by tenant, verify, report.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::anyhow;

use crate::args::RestoreArgs;
use crate::failure::{Failure, SOME_FAILED, SUCCESS};
use crate::prepare::{Prepared, Purpose};
use crate::progress::{Display, RestoreProgress};
use crate::report::{RunFacts, Timings, round, run_report, write_json};
use crate::settings::{Extra, Settings};
use crate::{output, render};

/// Tenants listed in the plan shown before a restore (`salvage plan` lists them all).
const TENANTS_SHOWN: usize = 20;

pub async fn run(args: &RestoreArgs) -> Result<u8, Failure> {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let settings = Settings::resolve(
        &args.common,
        &Extra {
            jobs: args.jobs,
            lock_timeout: args.lock_timeout.as_deref(),
            statement_timeout: args.statement_timeout.as_deref(),
            ..Extra::default()
        },
    )?;
    let display = Display::detect();
    let purpose = Purpose::Restore {
        report: args.report.clone(),
    };
    let prepared = super::prepare_shown(&settings, display, &purpose).await?;
    // The completeness check reads only the snapshot: it runs while the restore writes.
    let completeness =
        salvage_verify::Completeness::start(Arc::clone(&prepared.plan), prepared.snapshot.clone());
    let plan_seconds = clock.elapsed();
    output::print(&render::plan(&prepared, Some(TENANTS_SHOWN)));
    // The time spent at the prompt is the operator's, not the run's.
    let prompt_clock = Instant::now();
    confirm(&prepared, args.yes).await?;
    let at_prompt = prompt_clock.elapsed();

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

    let (checks, verify_seconds) =
        super::verify_shown(&prepared, settings.jobs, display, completeness).await?;

    output::print(&render::restore_summary(&plan, &outcomes, &checks));
    let all_good = outcomes.iter().all(salvage_merge::TenantOutcome::restored)
        && checks.iter().all(salvage_verify::TenantCheck::passed);
    let code = if all_good { SUCCESS } else { SOME_FAILED };
    let run_time = clock.elapsed().saturating_sub(at_prompt);
    println!(
        "\nDone in {:.1}s (plan {:.1}s, restore {:.1}s, verify {:.1}s).",
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
        });
        write_json(path, &report).map_err(Failure::failed)?;
        println!("Report written to {}.", path.display());
    }
    Ok(code)
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
