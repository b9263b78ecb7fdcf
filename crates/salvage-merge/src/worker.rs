//! Workers: `--jobs` of them, each with its own live connection and snapshot reader, taking
//! tenants one at a time until none are left.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use salvage_catalog::Catalog;
use salvage_closure::RestorePlan;
use salvage_pg::{ConnectionRole, DatabaseUrl};
use salvage_source::{Snapshot, SnapshotReader};
use sqlx::postgres::PgConnection;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::group::{Ended, GROUP_ROWS, GROUP_TENANTS, Group, Member};
use crate::outcome::{TableOutcome, TenantOutcome, TenantStatus};
use crate::rows::Row;
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
        next: Arc::new(Mutex::new(0)),
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
    let mut outcomes: Vec<Finished> = Vec::with_capacity(shared.queue.len());
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
    /// The next queue position to take.
    next: Arc<Mutex<usize>>,
}

/// A worker's connections: live, and a snapshot reader for shared rows.
struct Session {
    connection: PgConnection,
    reader: SnapshotReader,
}

/// A tenant's outcome and the rows it left waiting, by queue position.
type Finished = (usize, TenantOutcome, Vec<Vec<Row>>);

impl Shared {
    /// Queue positions of the next group: consecutive tenants, up to `GROUP_TENANTS` and
    /// `GROUP_ROWS` rows to write (a bigger tenant alone).
    fn take_group(&self) -> Vec<usize> {
        let mut next = self.next.lock().expect("the queue lock is poisoned");
        let mut group = Vec::new();
        let mut rows = 0;
        while let Some(&index) = self.queue.get(*next) {
            let tenant_rows = match &self.retry {
                Some(retry) => retry[*next].iter().map(|rows| rows.len() as u64).sum(),
                None => self.plan.rows_to_copy(&self.plan.tenants[index]),
            };
            if !group.is_empty()
                && (group.len() >= GROUP_TENANTS || rows + tenant_rows > GROUP_ROWS)
            {
                break;
            }
            group.push(*next);
            rows += tenant_rows;
            *next += 1;
        }
        group
    }

    /// Takes groups off the queue until it is empty.
    async fn run(self) -> Vec<Finished> {
        let mut outcomes = Vec::new();
        let mut session: Option<Session> = None;
        loop {
            let group = self.take_group();
            if group.is_empty() {
                break;
            }
            outcomes.extend(self.run_group(&group, &mut session).await);
        }
        if let Some(session) = session {
            salvage_pg::close(session.connection).await;
        }
        outcomes
    }

    /// A group, then each of its tenants that must try again, alone, with backoff.
    async fn run_group(&self, positions: &[usize], session: &mut Option<Session>) -> Vec<Finished> {
        let started = Instant::now();
        let mut attempts: Vec<u32> = vec![0; positions.len()];
        let mut pending: Vec<usize> = (0..positions.len()).collect();
        let mut finished: Vec<Finished> = Vec::with_capacity(positions.len());
        let mut alone = false;
        while !pending.is_empty() {
            if session.is_none() {
                match self.open_session().await {
                    Ok(opened) => *session = Some(opened),
                    Err(error) => {
                        let reason = error.to_string();
                        for place in pending.drain(..) {
                            attempts[place] += 1;
                            finished.push(self.failed(
                                positions[place],
                                attempts[place],
                                &reason,
                                started,
                            ));
                        }
                        break;
                    }
                }
            }
            let Some(current) = session.as_mut() else {
                unreachable!("a session was just opened");
            };
            // After a first try together, the ones to try again go one by one.
            let batch: Vec<usize> = if alone {
                vec![pending.remove(0)]
            } else {
                std::mem::take(&mut pending)
            };
            let members: Vec<Member<'_>> = batch
                .iter()
                .map(|&place| Member {
                    number: self.queue[positions[place]],
                    attempts: attempts[place],
                    retry: self
                        .retry
                        .as_ref()
                        .map(|retry| retry[positions[place]].as_slice()),
                })
                .collect();
            let group = Group {
                plan: &self.plan,
                live_catalog: &self.live_catalog,
                options: &self.options,
                reporter: self.reporter.as_ref(),
            };
            let span =
                tracing::info_span!("group", first = positions[batch[0]], tenants = batch.len());
            let (ended, healthy) = group
                .run(&mut current.connection, &mut current.reader, &members)
                .instrument(span)
                .await;
            if !healthy {
                if let Some(broken) = session.take() {
                    salvage_pg::close(broken.connection).await;
                }
            }
            for (place, end) in batch.into_iter().zip(ended) {
                attempts[place] += 1;
                let index = self.queue[positions[place]];
                let tenant = &self.plan.tenants[index];
                match end {
                    Ended::Done(written, elapsed) => {
                        finished.push((
                            positions[place],
                            TenantOutcome {
                                tenant: tenant.id.clone(),
                                label: tenant.label.clone(),
                                status: TenantStatus::Restored,
                                attempts: attempts[place],
                                tables: written.tables,
                                sequences: written.sequences,
                                elapsed,
                            },
                            written.waiting,
                        ));
                    }
                    Ended::Failed(error, elapsed) => {
                        tracing::warn!(tenant = %tenant.id, %error, "tenant rolled back");
                        let mut failed = self.failed(
                            positions[place],
                            attempts[place],
                            &error.to_string(),
                            started,
                        );
                        failed.1.elapsed = elapsed;
                        finished.push(failed);
                    }
                    Ended::Again(error) if attempts[place] < self.options.max_attempts => {
                        let reason = error.to_string();
                        self.reporter
                            .tenant_retrying(&tenant.id, attempts[place], &reason);
                        tokio::time::sleep(backoff(attempts[place], index)).await;
                        pending.push(place);
                    }
                    Ended::Again(error) => {
                        tracing::warn!(tenant = %tenant.id, %error, "tenant rolled back");
                        finished.push(self.failed(
                            positions[place],
                            attempts[place],
                            &error.to_string(),
                            started,
                        ));
                    }
                }
            }
            alone = true;
        }
        for (_, outcome, _) in &finished {
            self.reporter.tenant_finished(outcome);
        }
        finished
    }

    fn failed(&self, position: usize, attempts: u32, error: &str, started: Instant) -> Finished {
        let tenant = &self.plan.tenants[self.queue[position]];
        (
            position,
            TenantOutcome {
                tenant: tenant.id.clone(),
                label: tenant.label.clone(),
                status: TenantStatus::Failed {
                    error: error.to_owned(),
                },
                attempts,
                tables: vec![TableOutcome::default(); self.plan.schema.tables.len()],
                sequences: Vec::new(),
                elapsed: started.elapsed(),
            },
            Vec::new(),
        )
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
