//! `salvage verify`: compare the tenants' snapshot rows with live. Reads only.

use std::time::{Instant, SystemTime};

use crate::args::VerifyArgs;
use crate::failure::{Failure, SOME_FAILED, SUCCESS};
use crate::prepare::Purpose;
use crate::progress::Display;
use crate::report::{RunFacts, Timings, round, run_report, write_json};
use crate::settings::{Extra, Settings};
use crate::{output, render};

pub async fn run(args: &VerifyArgs) -> Result<u8, Failure> {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let settings = Settings::resolve(
        &args.common,
        &Extra {
            jobs: args.jobs,
            mode: args.mode.map(Into::into),
            ..Extra::default()
        },
    )?;
    let display = Display::detect();
    let purpose = Purpose::Verify {
        report: args.report.clone(),
    };
    let mut prepared = super::prepare_shown(&settings, display, &purpose).await?;
    let plan_seconds = clock.elapsed();

    let completeness = prepared.completeness();
    let (checks, verify_seconds) =
        super::verify_shown(&prepared, settings.jobs, display, completeness).await?;

    output::print(&render::verify_summary(&prepared.plan, &checks));
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
            interrupted: false,
            run: None,
        });
        write_json(path, &report).map_err(Failure::failed)?;
        println!("Report written to {}.", path.display());
    }
    Ok(code)
}
