//! Workers: `--jobs` of them, each with its own live connection and snapshot reader, taking
//! tenants one at a time until none are left.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use salvage_catalog::Catalog;
use salvage_closure::RestorePlan;
use salvage_pg::{ConnectionRole, DatabaseUrl};
use salvage_source::{Snapshot, SnapshotReader};
use sqlx::postgres::PgConnection;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::outcome::{TableOutcome, TenantOutcome, TenantStatus};
use crate::rows::Row;
use crate::tenant::{TenantRun, Written};
use crate::{MergeOptions, RestoreReporter, Result, TenantError};

/// Catch-up passes at most: each runs only while the last one wrote something.
const PASSES: usize = 8;

/// Restores every tenant of the plan; one outcome per tenant, in plan order.
///
/// A row goes in once all its parents are present. Tenants restored in the same run
/// concurrently cannot see each other's uncommitted rows, so a row whose parent another
/// tenant of the run restores may wait in the first pass: tenants that left rows waiting get
/// more passes — only for those rows — while a pass still writes something.
pub async fn restore(
    plan: Arc<RestorePlan>,
    snapshot: Snapshot,
    target: DatabaseUrl,
    live_catalog: Arc<Catalog>,
    options: MergeOptions,
    reporter: Arc<dyn RestoreReporter>,
) -> Result<Vec<TenantOutcome>> {
    let shared = |reporter: Arc<dyn RestoreReporter>,
                  queue: Vec<usize>,
                  retry: Option<Arc<Vec<Vec<Vec<Row>>>>>| Shared {
        plan: Arc::clone(&plan),
        retry,
        live_catalog: Arc::clone(&live_catalog),
        snapshot: snapshot.clone(),
        target: target.clone(),
        options: options.clone(),
        reporter,
        queue: Arc::new(queue),
        next: Arc::new(AtomicUsize::new(0)),
    };
    let first = run_pass(
        &shared(reporter, (0..plan.tenants.len()).collect(), None),
        options.jobs,
    )
    .await;
    let mut outcomes: Vec<TenantOutcome> = Vec::with_capacity(first.len());
    let mut waiting: Vec<Vec<Vec<Row>>> = Vec::with_capacity(first.len());
    for (outcome, rows) in first {
        outcomes.push(outcome);
        waiting.push(rows);
    }
    for pass in 2..=PASSES {
        let queue: Vec<usize> = (0..outcomes.len())
            .filter(|&index| {
                outcomes[index].restored() && waiting[index].iter().any(|rows| !rows.is_empty())
            })
            .collect();
        if queue.is_empty() {
            break;
        }
        tracing::info!(
            pass,
            tenants = queue.len(),
            "another pass for rows that were waiting for other tenants"
        );
        let retry: Vec<Vec<Vec<Row>>> = queue.iter().map(|&index| waiting[index].clone()).collect();
        let again = run_pass(
            &shared(Arc::new(Quiet), queue.clone(), Some(Arc::new(retry))),
            options.jobs,
        )
        .await;
        let mut wrote = false;
        for (index, (second, still)) in queue.into_iter().zip(again) {
            let first = &mut outcomes[index];
            match &second.status {
                TenantStatus::Restored => {
                    for (table, later) in first.tables.iter_mut().zip(&second.tables) {
                        if later.copied == 0 {
                            continue;
                        }
                        wrote |= later.inserted > 0;
                        table.copied += later.copied;
                        table.inserted += later.inserted;
                        table.already_present += later.already_present;
                        table.waiting = later.waiting;
                    }
                    first.sequences.extend(second.sequences);
                    waiting[index] = still;
                }
                // The earlier pass stands; its waiting rows stay waiting, and verification
                // reports them.
                TenantStatus::Failed { error } => {
                    tracing::warn!(tenant = %first.tenant, %error, "rows waiting for other tenants could not be added");
                    waiting[index] = Vec::new();
                }
            }
        }
        if !wrote {
            break;
        }
    }
    Ok(outcomes)
}

/// Runs the shared queue of tenants on `jobs` workers; outcomes (with the rows that waited)
/// in queue order.
async fn run_pass(shared: &Shared, jobs: usize) -> Vec<(TenantOutcome, Vec<Vec<Row>>)> {
    let jobs = jobs.clamp(1, shared.queue.len().max(1));
    let mut workers = JoinSet::new();
    for worker in 0..jobs {
        workers.spawn(
            shared
                .clone()
                .run()
                .instrument(tracing::info_span!("worker", worker)),
        );
    }
    let mut outcomes: Vec<(usize, TenantOutcome, Vec<Vec<Row>>)> =
        Vec::with_capacity(shared.queue.len());
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(mut finished) => outcomes.append(&mut finished),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    outcomes.sort_by_key(|(position, _, _)| *position);
    outcomes
        .into_iter()
        .map(|(_, outcome, waiting)| (outcome, waiting))
        .collect()
}

/// Reports nothing: a catch-up pass is not news.
struct Quiet;

impl RestoreReporter for Quiet {
    fn tenant_started(&self, _: &str, _: Option<&str>, _: u64, _: u32) {}
    fn rows_copied(&self, _: &str, _: u64) {}
    fn tenant_retrying(&self, _: &str, _: u32, _: &str) {}
    fn tenant_finished(&self, _: &TenantOutcome) {}
}

#[derive(Clone)]
struct Shared {
    plan: Arc<RestorePlan>,
    /// For a catch-up pass: per queued tenant (by queue position), per table, the rows that
    /// waited.
    retry: Option<Arc<Vec<Vec<Vec<Row>>>>>,
    live_catalog: Arc<Catalog>,
    snapshot: Snapshot,
    target: DatabaseUrl,
    options: MergeOptions,
    reporter: Arc<dyn RestoreReporter>,
    /// Indexes (into the plan's tenants) of the tenants of this pass.
    queue: Arc<Vec<usize>>,
    next: Arc<AtomicUsize>,
}

/// A worker's connections: live, and a snapshot reader for shared rows.
struct Session {
    connection: PgConnection,
    reader: SnapshotReader,
}

impl Shared {
    /// Takes tenants off the queue until it is empty; returns `(queue position, outcome,
    /// rows that waited)`.
    async fn run(self) -> Vec<(usize, TenantOutcome, Vec<Vec<Row>>)> {
        let mut outcomes = Vec::new();
        let mut session: Option<Session> = None;
        loop {
            let position = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(&index) = self.queue.get(position) else {
                break;
            };
            let tenant = &self.plan.tenants[index];
            let started = Instant::now();
            let span = tracing::info_span!("tenant", id = %tenant.id);
            let (result, attempts) = self
                .restore_with_retries(index, position, &mut session)
                .instrument(span)
                .await;
            let (outcome, waiting) = match result {
                Ok(written) => (
                    TenantOutcome {
                        tenant: tenant.id.clone(),
                        label: tenant.label.clone(),
                        status: TenantStatus::Restored,
                        attempts,
                        tables: written.tables,
                        sequences: written.sequences,
                        elapsed: started.elapsed(),
                    },
                    written.waiting,
                ),
                Err(error) => {
                    tracing::warn!(tenant = %tenant.id, %error, "tenant rolled back");
                    (
                        TenantOutcome {
                            tenant: tenant.id.clone(),
                            label: tenant.label.clone(),
                            status: TenantStatus::Failed {
                                error: error.to_string(),
                            },
                            attempts,
                            tables: vec![TableOutcome::default(); self.plan.schema.tables.len()],
                            sequences: Vec::new(),
                            elapsed: started.elapsed(),
                        },
                        Vec::new(),
                    )
                }
            };
            self.reporter.tenant_finished(&outcome);
            outcomes.push((position, outcome, waiting));
        }
        if let Some(session) = session {
            salvage_pg::close(session.connection).await;
        }
        outcomes
    }

    async fn restore_with_retries(
        &self,
        index: usize,
        position: usize,
        session: &mut Option<Session>,
    ) -> (Result<Written, TenantError>, u32) {
        let tenant = &self.plan.tenants[index];
        let mut attempt = 0;
        loop {
            attempt += 1;
            if session.is_none() {
                match self.open_session().await {
                    Ok(opened) => *session = Some(opened),
                    Err(error) => return (Err(error), attempt),
                }
            }
            let Some(current) = session.as_mut() else {
                unreachable!("a session was just opened");
            };
            self.reporter.tenant_started(
                &tenant.id,
                tenant.label.as_deref(),
                self.plan.rows_to_copy(tenant),
                attempt,
            );
            let run = TenantRun {
                plan: &self.plan,
                number: index,
                retry: self.retry.as_ref().map(|retry| retry[position].as_slice()),
                live_catalog: &self.live_catalog,
                connection: &mut current.connection,
                reader: &mut current.reader,
                options: &self.options,
                reporter: self.reporter.as_ref(),
            };
            match run.run().await {
                Ok(written) => return (Ok(written), attempt),
                Err(error) => {
                    if error.sqlstate().is_none() {
                        // Not a server's refusal: the connection may be gone. Start afresh.
                        if let Some(broken) = session.take() {
                            salvage_pg::close(broken.connection).await;
                        }
                    }
                    if error.is_transient() && attempt < self.options.max_attempts {
                        let reason = error.to_string();
                        self.reporter.tenant_retrying(&tenant.id, attempt, &reason);
                        tokio::time::sleep(backoff(attempt, index)).await;
                        continue;
                    }
                    return (Err(error), attempt);
                }
            }
        }
    }

    async fn open_session(&self) -> Result<Session, TenantError> {
        let connection = salvage_pg::connect(&self.target, ConnectionRole::ReadWrite).await?;
        let reader = self.snapshot.reader().await?;
        Ok(Session { connection, reader })
    }
}

/// 100 ms, 200 ms, 400 ms ... plus a per-tenant spread so retried tenants don't collide again.
fn backoff(attempt: u32, index: usize) -> Duration {
    let base = 100u64 << attempt.saturating_sub(1).min(6);
    Duration::from_millis(base + (index as u64 * 37) % 100)
}
