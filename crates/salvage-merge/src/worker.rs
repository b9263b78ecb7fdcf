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

use crate::group::{Ended, GROUP_ROWS, Group, Member};
use crate::outcome::{TableOutcome, TenantOutcome, TenantStatus};
use crate::rows::Row;
use crate::{Ledger, MergeOptions, RestoreReporter, Result, TenantError};

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
        busy: Arc::new(Mutex::new(Vec::new())),
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
        if options.stop.requested() {
            break;
        }
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
                TenantStatus::Interrupted | TenantStatus::Elsewhere => {
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
    // A tenant no worker took (the restore was stopped first) was not attempted.
    let mut outcomes = outcomes.into_iter().peekable();
    (0..shared.queue.len())
        .map(
            |position| match outcomes.next_if(|(at, _, _)| *at == position) {
                Some((_, outcome, waiting)) => (outcome, waiting),
                None => (
                    shared.not_run(position, TenantStatus::Interrupted),
                    Vec::new(),
                ),
            },
        )
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
    /// Queue positions another worker of the run held when claimed: taken once it lets go.
    busy: Arc<Mutex<Vec<usize>>>,
}

/// A worker's connections: live, and a snapshot reader for shared rows.
struct Session {
    connection: PgConnection,
    reader: SnapshotReader,
}

/// A tenant's outcome and the rows it left waiting, by queue position.
type Finished = (usize, TenantOutcome, Vec<Vec<Row>>);

impl Shared {
    /// Queue positions of the next group: consecutive tenants, up to `group_tenants` and
    /// `GROUP_ROWS` rows to write (a bigger tenant alone).
    fn take_group(&self) -> Vec<usize> {
        if self.options.stop.requested() {
            return Vec::new();
        }
        let mut next = self.next.lock().expect("the queue lock is poisoned");
        let mut group = Vec::new();
        let mut rows = 0;
        while let Some(&index) = self.queue.get(*next) {
            let tenant_rows = match &self.retry {
                Some(retry) => retry[*next].iter().map(|rows| rows.len() as u64).sum(),
                None => self.plan.rows_to_copy(&self.plan.tenants[index]),
            };
            if !group.is_empty()
                && (group.len() >= self.options.group_tenants.max(1)
                    || rows + tenant_rows > GROUP_ROWS)
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
        // Tenants another worker held: waited for, then done here if it let go of them
        // undone (it died, or was stopped).
        loop {
            let Some(position) = self.busy.lock().expect("the busy lock is poisoned").pop() else {
                break;
            };
            if self.options.stop.requested() {
                outcomes.push((
                    position,
                    self.not_run(position, TenantStatus::Interrupted),
                    Vec::new(),
                ));
                continue;
            }
            match self.wait_for(position, &mut session).await {
                Some(false) => outcomes.push((
                    position,
                    self.not_run(position, TenantStatus::Elsewhere),
                    Vec::new(),
                )),
                Some(true) => outcomes.extend(self.run_group(&[position], &mut session).await),
                // Stopped while waiting, or the journal could not be asked.
                None => outcomes.push((
                    position,
                    self.not_run(position, TenantStatus::Interrupted),
                    Vec::new(),
                )),
            }
        }
        if let Some(session) = session {
            salvage_pg::close(session.connection).await;
        }
        outcomes
    }

    /// A group, then each of its tenants that must try again, alone, with backoff. In a
    /// journaled run each batch is claimed first: tenants another worker holds are left for
    /// later, those done already are done.
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
            let mut batch: Vec<usize> = if alone {
                vec![pending.remove(0)]
            } else {
                std::mem::take(&mut pending)
            };
            alone = true;
            let mut journal: Vec<Option<(i32, i64)>> = vec![None; positions.len()];
            if let Some(ledger) = &self.options.ledger {
                match self
                    .claim(ledger, &mut current.connection, positions, &batch)
                    .await
                {
                    Ok((mine, done, busy, ids)) => {
                        for place in done {
                            finished.push((
                                positions[place],
                                self.not_run(positions[place], TenantStatus::Elsewhere),
                                Vec::new(),
                            ));
                        }
                        self.busy
                            .lock()
                            .expect("the busy lock is poisoned")
                            .extend(busy.iter().map(|&place| positions[place]));
                        for (&place, id) in mine.iter().zip(ids) {
                            journal[place] =
                                Some((ledger.positions[self.queue[positions[place]]], id));
                        }
                        batch = mine;
                    }
                    Err(error) => {
                        // The journal cannot be written: nothing is, for these tenants.
                        let reason = format!("the run's journal: {error}");
                        for place in batch {
                            attempts[place] += 1;
                            finished.push(self.failed(
                                positions[place],
                                attempts[place],
                                &reason,
                                started,
                            ));
                        }
                        if error.sqlstate().is_none() {
                            if let Some(broken) = session.take() {
                                salvage_pg::close(broken.connection).await;
                            }
                        }
                        continue;
                    }
                }
                if batch.is_empty() {
                    continue;
                }
            }
            let members: Vec<Member<'_>> = batch
                .iter()
                .map(|&place| Member {
                    number: self.queue[positions[place]],
                    attempts: attempts[place],
                    retry: self
                        .retry
                        .as_ref()
                        .map(|retry| retry[positions[place]].as_slice()),
                    journal: journal[place],
                })
                .collect();
            let group = Group {
                plan: &self.plan,
                live_catalog: &self.live_catalog,
                options: &self.options,
                reporter: self.reporter.as_ref(),
                run: self.options.ledger.as_ref().map(|ledger| &ledger.run),
            };
            let span =
                tracing::info_span!("group", first = positions[batch[0]], tenants = batch.len());
            let ran = tokio::select! {
                ran = group
                    .run(&mut current.connection, &mut current.reader, &members)
                    .instrument(span) => Some(ran),
                () = self.options.stop.grace_over() => None,
            };
            let Some((ended, healthy)) = ran else {
                // Stopped, and the group did not finish in time: abandoned mid-statement,
                // so the connection goes (the server rolls the transaction back).
                tracing::warn!(
                    tenants = batch.len(),
                    "tenants in flight abandoned after the stop"
                );
                if let Some(broken) = session.take() {
                    salvage_pg::close(broken.connection).await;
                }
                for place in batch {
                    finished.push((
                        positions[place],
                        self.not_run(positions[place], TenantStatus::Interrupted),
                        Vec::new(),
                    ));
                }
                pending.clear();
                break;
            };
            let mut journal_ends: Vec<salvage_journal::AttemptEnd> = Vec::new();
            let mut release: Vec<i32> = Vec::new();
            for (place, end) in batch.into_iter().zip(ended) {
                attempts[place] += 1;
                let index = self.queue[positions[place]];
                let tenant = &self.plan.tenants[index];
                if let Some((position, _)) = journal[place] {
                    release.push(position);
                }
                let mut ended_attempt = |outcome: &'static str, error: Option<String>| {
                    if let Some((position, attempt)) = journal[place] {
                        journal_ends.push(salvage_journal::AttemptEnd {
                            position,
                            attempt,
                            outcome,
                            error,
                        });
                    }
                };
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
                                changed: written.changed,
                                batch: written.batch,
                                elapsed,
                            },
                            written.waiting,
                        ));
                    }
                    Ended::Failed(error, elapsed) => {
                        tracing::warn!(tenant = %tenant.id, %error, "tenant rolled back");
                        let reason = error.to_string();
                        ended_attempt("failed", Some(reason.clone()));
                        let mut failed =
                            self.failed(positions[place], attempts[place], &reason, started);
                        failed.1.elapsed = elapsed;
                        finished.push(failed);
                    }
                    Ended::Again(error)
                        if attempts[place] < self.options.max_attempts
                            && !self.options.stop.requested() =>
                    {
                        let reason = error.to_string();
                        ended_attempt("retry", Some(reason.clone()));
                        self.reporter
                            .tenant_retrying(&tenant.id, attempts[place], &reason);
                        tokio::time::sleep(backoff(attempts[place], index)).await;
                        pending.push(place);
                    }
                    Ended::Again(error) if self.options.stop.requested() => {
                        ended_attempt("interrupted", Some(error.to_string()));
                        finished.push((
                            positions[place],
                            self.not_run(positions[place], TenantStatus::Interrupted),
                            Vec::new(),
                        ));
                    }
                    Ended::Again(error) => {
                        tracing::warn!(tenant = %tenant.id, %error, "tenant rolled back");
                        let reason = error.to_string();
                        ended_attempt("failed", Some(reason.clone()));
                        finished.push(self.failed(
                            positions[place],
                            attempts[place],
                            &reason,
                            started,
                        ));
                    }
                }
            }
            if !healthy {
                // The connection may be gone, and its claims with it.
                if let Some(broken) = session.take() {
                    salvage_pg::close(broken.connection).await;
                }
            } else if let (Some(ledger), Some(current)) = (&self.options.ledger, session.as_mut()) {
                let recorded = ledger
                    .run
                    .attempts_ended(&mut current.connection, &journal_ends)
                    .await;
                let released = ledger.run.release(&mut current.connection, &release).await;
                if let Err(error) = recorded.and(released) {
                    tracing::warn!(%error, "the journal could not record the attempts' ends");
                    if let Some(broken) = session.take() {
                        salvage_pg::close(broken.connection).await;
                    }
                }
            }
        }
        for (_, outcome, _) in &finished {
            self.reporter.tenant_finished(outcome);
        }
        finished
    }

    /// Claims the batch's tenants (places in `positions`) for this worker: (mine, done
    /// already, held by another worker, the attempt IDs of mine).
    async fn claim(
        &self,
        ledger: &Ledger,
        connection: &mut PgConnection,
        positions: &[usize],
        batch: &[usize],
    ) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>, Vec<i64>), salvage_pg::Error> {
        let run_position = |place: usize| ledger.positions[self.queue[positions[place]]];
        let wanted: Vec<i32> = batch.iter().map(|&place| run_position(place)).collect();
        let claimed = ledger
            .run
            .claim(connection, &wanted, self.retry.is_some())
            .await?;
        let split = |set: &[i32]| -> Vec<usize> {
            batch
                .iter()
                .copied()
                .filter(|&place| set.contains(&run_position(place)))
                .collect()
        };
        let mine = split(&claimed.mine);
        let mine_positions: Vec<i32> = mine.iter().map(|&place| run_position(place)).collect();
        let ids = match ledger
            .run
            .attempts_started(connection, &mine_positions)
            .await
        {
            Ok(ids) => ids,
            Err(error) => {
                let _ = ledger.run.release(connection, &mine_positions).await;
                return Err(error);
            }
        };
        Ok((mine, split(&claimed.done), split(&claimed.busy), ids))
    }

    /// Waits for a tenant another worker holds: `Some(true)` once it is free and still to
    /// do (released again for [`Shared::run_group`] to claim), `Some(false)` when it turned
    /// out done, `None` when stopped first or the journal could not be asked.
    async fn wait_for(&self, position: usize, session: &mut Option<Session>) -> Option<bool> {
        let ledger = self.options.ledger.as_ref()?;
        let run_position = ledger.positions[self.queue[position]];
        loop {
            if self.options.stop.requested() {
                return None;
            }
            if session.is_none() {
                *session = self.open_session().await.ok();
            }
            let current = session.as_mut()?;
            let waited = ledger
                .run
                .claim_waiting(
                    &mut current.connection,
                    run_position,
                    Duration::from_secs(1),
                )
                .await;
            match waited {
                Ok(Some(true)) => {
                    let _ = ledger
                        .run
                        .release(&mut current.connection, &[run_position])
                        .await;
                    return Some(true);
                }
                Ok(Some(false)) => return Some(false),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not wait for a tenant another worker holds");
                    return None;
                }
            }
        }
    }

    /// The outcome of a tenant this worker did not restore.
    fn not_run(&self, position: usize, status: TenantStatus) -> TenantOutcome {
        let tenant = &self.plan.tenants[self.queue[position]];
        TenantOutcome {
            tenant: tenant.id.clone(),
            label: tenant.label.clone(),
            status,
            attempts: 0,
            tables: vec![TableOutcome::default(); self.plan.schema.tables.len()],
            sequences: Vec::new(),
            changed: Vec::new(),
            batch: None,
            elapsed: Duration::ZERO,
        }
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
                changed: Vec::new(),
                batch: None,
                elapsed: started.elapsed(),
            },
            Vec::new(),
        )
    }

    async fn open_session(&self) -> Result<Session, TenantError> {
        let connection = salvage_pg::connect(&self.target, ConnectionRole::ReadWrite).await?;
        // Connects on its first read: a worker whose rows are all in the plan reads none.
        let reader = self.snapshot.reader();
        Ok(Session { connection, reader })
    }
}

/// 100 ms, 200 ms, 400 ms ... plus a per-tenant spread so retried tenants don't collide again.
fn backoff(attempt: u32, index: usize) -> Duration {
    let base = 100u64 << attempt.saturating_sub(1).min(6);
    Duration::from_millis(base + (index as u64 * 37) % 100)
}
