//! Workers: `--jobs` of them, each with its own live connection and snapshot reader, taking
//! tenants one at a time until none are left.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use salvage_closure::RestorePlan;
use salvage_pg::{ConnectionRole, DatabaseUrl};
use salvage_source::{Snapshot, SnapshotReader};
use sqlx::postgres::PgConnection;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::outcome::{TableOutcome, TenantOutcome, TenantStatus};
use crate::tenant::TenantRun;
use crate::{MergeOptions, RestoreReporter, Result, TenantError, sql};

/// Restores every tenant of the plan; one outcome per tenant, in plan order.
pub async fn restore(
    plan: Arc<RestorePlan>,
    snapshot: Snapshot,
    target: DatabaseUrl,
    options: MergeOptions,
    reporter: Arc<dyn RestoreReporter>,
) -> Result<Vec<TenantOutcome>> {
    let next = Arc::new(AtomicUsize::new(0));
    let jobs = options.jobs.clamp(1, plan.tenants.len().max(1));
    let mut workers = JoinSet::new();
    for worker in 0..jobs {
        let shared = Shared {
            plan: Arc::clone(&plan),
            snapshot: snapshot.clone(),
            target: target.clone(),
            options: options.clone(),
            reporter: Arc::clone(&reporter),
            next: Arc::clone(&next),
        };
        workers.spawn(
            shared
                .run()
                .instrument(tracing::info_span!("worker", worker)),
        );
    }
    let mut outcomes = Vec::with_capacity(plan.tenants.len());
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(mut finished) => outcomes.append(&mut finished),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    let order: std::collections::HashMap<&str, usize> = plan
        .tenants
        .iter()
        .enumerate()
        .map(|(index, tenant)| (tenant.id.as_str(), index))
        .collect();
    outcomes.sort_by_key(|outcome| {
        order
            .get(outcome.tenant.as_str())
            .copied()
            .unwrap_or(usize::MAX)
    });
    Ok(outcomes)
}

struct Shared {
    plan: Arc<RestorePlan>,
    snapshot: Snapshot,
    target: DatabaseUrl,
    options: MergeOptions,
    reporter: Arc<dyn RestoreReporter>,
    next: Arc<AtomicUsize>,
}

/// A worker's connections: live with its staging tables, and a snapshot reader.
struct Session {
    connection: PgConnection,
    reader: SnapshotReader,
}

impl Shared {
    async fn run(self) -> Vec<TenantOutcome> {
        let mut outcomes = Vec::new();
        let mut session: Option<Session> = None;
        loop {
            let index = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(tenant) = self.plan.tenants.get(index) else {
                break;
            };
            let started = Instant::now();
            let span = tracing::info_span!("tenant", id = %tenant.id);
            let (result, attempts) = self
                .restore_with_retries(index, &mut session)
                .instrument(span)
                .await;
            let outcome = match result {
                Ok(written) => TenantOutcome {
                    tenant: tenant.id.clone(),
                    label: tenant.label.clone(),
                    status: TenantStatus::Restored,
                    attempts,
                    tables: written.tables,
                    sequences: written.sequences,
                    elapsed: started.elapsed(),
                },
                Err(error) => {
                    tracing::warn!(tenant = %tenant.id, %error, "tenant rolled back");
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
                    }
                }
            };
            self.reporter.tenant_finished(&outcome);
            outcomes.push(outcome);
        }
        if let Some(session) = session {
            salvage_pg::close(session.connection).await;
        }
        outcomes
    }

    async fn restore_with_retries(
        &self,
        index: usize,
        session: &mut Option<Session>,
    ) -> (Result<crate::tenant::Written, TenantError>, u32) {
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
                tenant,
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
        let mut connection = salvage_pg::connect(&self.target, ConnectionRole::ReadWrite).await?;
        for (index, table) in self.plan.schema.tables.iter().enumerate() {
            if table.in_live && table.in_snapshot {
                sqlx::query(&sql::create_staging(index, table))
                    .execute(&mut connection)
                    .await
                    .map_err(salvage_pg::Error::query(format!(
                        "create the staging table for {}",
                        table.name
                    )))?;
            }
        }
        let reader = self.snapshot.reader().await?;
        Ok(Session { connection, reader })
    }
}

/// 100 ms, 200 ms, 400 ms ... plus a per-tenant spread so retried tenants don't collide again.
fn backoff(attempt: u32, index: usize) -> Duration {
    let base = 100u64 << attempt.saturating_sub(1).min(6);
    Duration::from_millis(base + (index as u64 * 37) % 100)
}
