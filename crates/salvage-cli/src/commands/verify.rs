//! `salvage verify`: compare the tenants' snapshot rows with live. Reads only.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::args::VerifyArgs;
use crate::failure::{Failure, SOME_FAILED, SUCCESS};
use crate::prepare::prepare;
use crate::progress::{Display, PlanProgress, VerifyProgress};
use crate::render;
use crate::report::{RunFacts, Timings, round, run_report, write_json};
use crate::settings::{Extra, Settings};

pub async fn run(args: &VerifyArgs) -> Result<u8, Failure> {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let settings = Settings::resolve(
        &args.common,
        &Extra {
            jobs: args.jobs,
            ..Extra::default()
        },
    )?;
    let display = Display::detect();
    let progress = PlanProgress::new(display);
    let prepared = prepare(&settings, &progress).await;
    progress.finish();
    let prepared = prepared?;
    let plan_seconds = clock.elapsed();

    let verify_clock = Instant::now();
    let verify_progress = Arc::new(VerifyProgress::new(
        display,
        prepared.plan.tenants.len() as u64,
    ));
    let checks = salvage_verify::verify(
        Arc::clone(&prepared.plan),
        prepared.snapshot.clone(),
        prepared.target.clone(),
        Arc::clone(&prepared.live_catalog),
        settings.jobs,
        Arc::clone(&verify_progress) as Arc<dyn salvage_verify::VerifyReporter>,
    )
    .await
    .map_err(Failure::failed)?;
    verify_progress.finish();
    let verify_seconds = verify_clock.elapsed();

    print!("{}", render::verify_summary(&prepared.plan, &checks));
    let code = if checks.iter().all(salvage_verify::TenantCheck::passed) {
        SUCCESS
    } else {
        SOME_FAILED
    };
    if let Some(path) = &args.report {
        let report = run_report(&RunFacts {
            command: "verify",
            started_at,
            prepared: &prepared,
            outcomes: None,
            checks: &checks,
            timings: Timings {
                plan_seconds: round(plan_seconds),
                restore_seconds: None,
                verify_seconds: round(verify_seconds),
                total_seconds: round(clock.elapsed()),
            },
            exit_code: code,
        });
        write_json(path, &report).map_err(Failure::failed)?;
        println!("Report written to {}.", path.display());
    }
    Ok(code)
}
