//! One module per subcommand.

pub mod diff;
pub mod inspect;
pub mod manual;
pub mod plan;
pub mod restore;
pub mod runs;
pub mod snapshot;
pub mod undo;
pub mod verify;
pub mod wal_fetch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use salvage_verify::TenantCheck;

use crate::args::Command;
use crate::failure::Failure;
use crate::prepare::{Prepared, Purpose, prepare};
use crate::progress::{Display, PlanProgress, VerifyProgress};
use crate::settings::Settings;

pub async fn run(command: Command, interrupt: &crate::Interrupt) -> Result<u8, Failure> {
    match command {
        Command::Plan(args) => plan::run(&args).await,
        Command::Restore(args) => Box::pin(restore::run(&args, interrupt)).await,
        Command::Runs(args) => runs::run(&args).await,
        Command::Undo(args) => undo::run(&args).await,
        Command::Verify(args) => verify::run(&args).await,
        Command::Diff(args) => diff::run(&args).await,
        Command::Inspect(args) => inspect::run(&args).await,
        Command::Completions(args) => manual::completions(args.shell),
        Command::Man(args) => manual::man(args.dir.as_deref()),
        Command::Snapshot(command) => snapshot::run(&command).await,
        Command::WalFetch(args) => Ok(wal_fetch::run(&args)),
    }
}

/// Plans, with a progress display that is cleared whether planning succeeds or not; a base
/// backup snapshot's recovery instance is started first.
async fn prepare_shown(
    settings: &Settings,
    display: Display,
    purpose: &Purpose,
) -> Result<Prepared, Failure> {
    let recovery = start_recovery(settings).await?;
    let progress = PlanProgress::new(display);
    let prepared = prepare(settings, recovery, &progress, purpose).await;
    progress.finish();
    prepared
}

/// A base backup snapshot's recovery instance, started.
async fn start_recovery(
    settings: &Settings,
) -> Result<Option<salvage_recovery::RecoveryInstance>, Failure> {
    match &settings.recovery {
        Some(options) => Ok(Some(crate::recovery::start(options.clone()).await?)),
        None => Ok(None),
    }
}

/// Verifies every tenant of the plan with progress: the checks, and how long they took.
async fn verify_shown(
    prepared: &Prepared,
    jobs: usize,
    display: Display,
    completeness: salvage_verify::Completeness,
) -> Result<(Vec<TenantCheck>, Duration), Failure> {
    let clock = Instant::now();
    let progress = Arc::new(VerifyProgress::new(
        display,
        prepared.plan.tenants.len() as u64,
    ));
    let checks = salvage_verify::verify(
        Arc::clone(&prepared.plan),
        prepared.snapshot.clone(),
        prepared.target.clone(),
        Arc::clone(&prepared.live_catalog),
        jobs,
        Arc::clone(&progress) as Arc<dyn salvage_verify::VerifyReporter>,
        completeness,
    )
    .await
    .map_err(Failure::failed)?;
    progress.finish();
    Ok((checks, clock.elapsed()))
}
