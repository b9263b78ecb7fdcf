//! Runs, their tenants and workers: starting or continuing a run, what each tenant came to,
//! and how a run ends.

use salvage_pg::Error;
use serde::Serialize;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};

use crate::{Journal, Result};

/// Timestamps as ISO 8601 in UTC.
const ISO: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

fn iso(column: &str) -> String {
    format!("pg_catalog.to_char({column} AT TIME ZONE 'UTC', {ISO})")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Done,
    Interrupted,
    Failed,
}

impl RunState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "done" => Self::Done,
            "interrupted" => Self::Interrupted,
            "failed" => Self::Failed,
            _ => Self::Running,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    /// Not restored yet (or rolled back).
    Pending,
    /// Committed (perhaps with rows waiting for a parent: see `rows_waiting`).
    Done,
    Failed,
}

impl TenantState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
}

/// Who runs a worker, for its row and the run's.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub host: String,
    pub os_user: Option<String>,
    pub pid: u32,
    /// The command line, secrets removed.
    pub command: String,
}

/// What a new run records.
#[derive(Debug)]
pub struct NewRun<'a> {
    /// The digest of what the run restores: the same restore again finds the run by it.
    pub digest: &'a str,
    pub snapshot: &'a str,
    pub target: &'a str,
    pub root: &'a str,
    /// The plan's inputs, as JSON (no secrets).
    pub plan: Option<&'a str>,
    pub salvage_version: &'a str,
    /// Every tenant of the run, in order: ID and label.
    pub tenants: &'a [(String, Option<String>)],
    pub worker: &'a WorkerInfo,
    /// `missing`, `overwrite` or `exact`.
    pub mode: &'a str,
}

/// A run this process works on.
#[derive(Debug, Clone)]
pub struct Run {
    pub journal: Journal,
    pub id: String,
    /// The first key of the run's advisory locks.
    pub lock_key: i32,
    /// This process's name in the run.
    pub worker: String,
    /// Whether the run existed before this process joined it.
    pub resumed: bool,
    /// The live transaction snapshot (`txid_current_snapshot()` as text) taken before this
    /// process's plan read live: a tenant done with rows waiting whose commit that snapshot
    /// sees was planned on what it wrote, and is claimed again to add them.
    pub planned_after: Option<String>,
}

/// A run, as `salvage runs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run: String,
    pub state: RunState,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub digest: String,
    pub root: String,
    pub snapshot: String,
    pub target: String,
    pub db_role: String,
    pub os_user: Option<String>,
    pub host: Option<String>,
    pub command: String,
    pub tenants: TenantCounts,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TenantCounts {
    pub done: i64,
    pub failed: i64,
    pub pending: i64,
    /// Done, with rows left waiting for a parent: a rerun tries them again.
    pub waiting: i64,
    pub verified: i64,
    pub verify_failed: i64,
}

/// A tenant of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TenantRow {
    pub tenant: String,
    #[serde(skip)]
    pub position: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub state: TenantState,
    pub attempts: i64,
    pub rows_inserted: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub rows_waiting: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `passed` or `failed` once verified after its restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xid: Option<i64>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// How a tenant's attempt ended inside its transaction: written by [`Run::settle_in`].
#[derive(Debug, Clone)]
pub struct TenantEnd {
    pub position: i32,
    pub attempt: i64,
    pub rows_inserted: i64,
    /// Rows left waiting for a parent (none in live, none restored yet).
    pub rows_waiting: i64,
    /// What those rows wait for, as `run_tenants.waiting_for` keeps it (JSON); `None` when
    /// none wait or it could not be kept.
    pub waiting_for: Option<String>,
    /// Rows inserted per table, as a JSON object.
    pub rows: String,
}

/// The parent keys of one parent table and columns that a tenant's waiting rows wait for,
/// as `run_tenants.waiting_for` keeps them (a JSON list of these).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WaitingFor {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    /// Each key as COPY text: its fields, escaped, tab-separated.
    pub keys: Vec<String>,
}

/// How an attempt ended outside a commit: failed (the tenant fails), to be retried, or cut
/// short by an interruption.
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    pub position: i32,
    pub attempt: i64,
    /// `failed`, `retry` or `interrupted`.
    pub outcome: &'static str,
    pub error: Option<String>,
}

/// What a run came to when a worker left it.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    pub state: RunState,
    pub counts: TenantCounts,
    /// Other workers still on the run.
    pub others: i64,
}

impl Journal {
    fn summary_select(&self) -> String {
        format!(
            "SELECT r.run_id, r.state, {started}, {ended}, r.digest, r.root, r.snapshot, r.target, \
             r.db_role, r.os_user, r.host, r.command, \
             count(*) FILTER (WHERE t.state = 'done'), count(*) FILTER (WHERE t.state = 'failed'), \
             count(*) FILTER (WHERE t.state = 'pending'), count(*) FILTER (WHERE t.state = 'done' AND t.rows_waiting > 0), \
             count(*) FILTER (WHERE t.verified = 'passed'), count(*) FILTER (WHERE t.verified = 'failed') \
             FROM {runs} r LEFT JOIN {tenants} t ON t.run_id = r.run_id",
            started = iso("r.started_at"),
            ended = iso("r.ended_at"),
            runs = self.table("runs"),
            tenants = self.table("run_tenants"),
        )
    }

    fn summary(row: &sqlx::postgres::PgRow) -> RunSummary {
        let state: String = row.get(1);
        RunSummary {
            run: row.get(0),
            state: RunState::parse(&state),
            started_at: row.get(2),
            ended_at: row.get(3),
            digest: row.get(4),
            root: row.get(5),
            snapshot: row.get(6),
            target: row.get(7),
            db_role: row.get(8),
            os_user: row.get(9),
            host: row.get(10),
            command: row.get(11),
            tenants: TenantCounts {
                done: row.get(12),
                failed: row.get(13),
                pending: row.get(14),
                waiting: row.get(15),
                verified: row.get(16),
                verify_failed: row.get(17),
            },
        }
    }

    /// Every run, newest first.
    pub async fn runs(&self, connection: &mut PgConnection) -> Result<Vec<RunSummary>> {
        let rows = sqlx::query(&format!(
            "{} GROUP BY r.run_id ORDER BY r.started_at DESC, r.run_id DESC",
            self.summary_select()
        ))
        .fetch_all(connection)
        .await
        .map_err(Error::query("list the journal's runs"))?;
        Ok(rows.iter().map(Self::summary).collect())
    }

    /// One run by its ID.
    pub async fn run(&self, connection: &mut PgConnection, id: &str) -> Result<Option<RunSummary>> {
        let row = sqlx::query(&format!(
            "{} WHERE r.run_id = $1 GROUP BY r.run_id",
            self.summary_select()
        ))
        .bind(id)
        .fetch_optional(connection)
        .await
        .map_err(Error::query("read a run of the journal"))?;
        Ok(row.as_ref().map(Self::summary))
    }

    /// The latest run with this digest.
    pub async fn latest_run(
        &self,
        connection: &mut PgConnection,
        digest: &str,
    ) -> Result<Option<RunSummary>> {
        let row = sqlx::query(&format!(
            "{} WHERE r.digest = $1 GROUP BY r.run_id ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1",
            self.summary_select()
        ))
        .bind(digest)
        .fetch_optional(connection)
        .await
        .map_err(Error::query("look for an earlier run in the journal"))?;
        Ok(row.as_ref().map(Self::summary))
    }

    /// What the waiting rows of a run's tenants wait for, by position (JSON text, a list of
    /// [`WaitingFor`]): the tenants done with rows waiting whose journal kept it (layout 3
    /// on). Empty for an older layout.
    pub async fn waiting_for(
        &self,
        connection: &mut PgConnection,
        run: &str,
    ) -> Result<Vec<(i32, String)>> {
        if self.version(&mut *connection).await?.unwrap_or(1) < 3 {
            return Ok(Vec::new());
        }
        sqlx::query_as(&format!(
            "SELECT t.position, t.waiting_for::text FROM {} t WHERE t.run_id = $1 AND t.state = 'done' \
             AND t.rows_waiting > 0 AND t.waiting_for IS NOT NULL ORDER BY t.position",
            self.table("run_tenants"),
        ))
        .bind(run)
        .fetch_all(connection)
        .await
        .map_err(Error::query(
            "read what a run's waiting rows wait for from the journal",
        ))
    }

    /// A run's tenants, in the run's order.
    pub async fn tenants(
        &self,
        connection: &mut PgConnection,
        run: &str,
    ) -> Result<Vec<TenantRow>> {
        let rows = sqlx::query(&format!(
            "SELECT t.tenant, t.position, t.label, t.state, \
             (SELECT count(*) FROM {attempts} a WHERE a.run_id = t.run_id AND a.position = t.position), \
             t.rows_inserted, t.rows_waiting, t.error, t.verified, t.worker, {finished}, t.xid \
             FROM {tenants} t WHERE t.run_id = $1 ORDER BY t.position",
            attempts = self.table("attempts"),
            tenants = self.table("run_tenants"),
            finished = iso("t.finished_at"),
        ))
        .bind(run)
        .fetch_all(connection)
        .await
        .map_err(Error::query("read a run's tenants from the journal"))?;
        Ok(rows
            .iter()
            .map(|row| {
                let state: String = row.get(3);
                TenantRow {
                    tenant: row.get(0),
                    position: row.get(1),
                    label: row.get(2),
                    state: TenantState::parse(&state),
                    attempts: row.get(4),
                    rows_inserted: row.get(5),
                    rows_waiting: row.get(6),
                    error: row.get(7),
                    verified: row.get(8),
                    worker: row.get(9),
                    finished_at: row.get(10),
                    xid: row.get(11),
                }
            })
            .collect())
    }

    /// Starts a run, or — `resume` — continues the latest unfinished one with the same
    /// digest; registers this process as one of its workers. Under an advisory lock on the
    /// digest, so workers starting together join one run.
    pub async fn start_run(
        &self,
        connection: &mut PgConnection,
        new: &NewRun<'_>,
        resume: bool,
    ) -> Result<Run> {
        let mut transaction = connection
            .begin()
            .await
            .map_err(Error::query("begin the run's journal entry"))?;
        sqlx::query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext($1))")
            .bind(format!("salvage run {}", new.digest))
            .execute(&mut *transaction)
            .await
            .map_err(Error::query("lock the run's digest"))?;
        let existing: Option<(String, i32)> = if resume {
            sqlx::query_as(&format!(
                "SELECT run_id, lock_key FROM {} WHERE digest = $1 AND state <> 'done' \
                 ORDER BY started_at DESC, run_id DESC LIMIT 1",
                self.table("runs")
            ))
            .bind(new.digest)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(Error::query("look for the run to continue"))?
        } else {
            None
        };
        let resumed = existing.is_some();
        let (id, lock_key) = if let Some((id, lock_key)) = existing {
            sqlx::query(&format!(
                "UPDATE {} SET state = 'running', ended_at = NULL WHERE run_id = $1",
                self.table("runs")
            ))
            .bind(&id)
            .execute(&mut *transaction)
            .await
            .map_err(Error::query("mark the run running again"))?;
            (id, lock_key)
        } else {
            let (id, lock_key): (String, i32) = sqlx::query_as(&format!(
                "INSERT INTO {} (run_id, digest, lock_key, state, snapshot, target, root, tenants, plan, \
                 command, salvage_version, os_user, host, mode) \
                 SELECT id, $1, pg_catalog.hashtext(id), 'running', $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11 \
                 FROM (SELECT pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDD-HH24MISS') \
                 || '-' || pg_catalog.substr(pg_catalog.md5(pg_catalog.random()::text || pg_catalog.pg_backend_pid()::text), 1, 6) AS id) AS new \
                 RETURNING run_id, lock_key",
                self.table("runs")
            ))
            .bind(new.digest)
            .bind(new.snapshot)
            .bind(new.target)
            .bind(new.root)
            .bind(new.tenants.len() as i32)
            .bind(new.plan)
            .bind(&new.worker.command)
            .bind(new.salvage_version)
            .bind(&new.worker.os_user)
            .bind(&new.worker.host)
            .bind(new.mode)
            .fetch_one(&mut *transaction)
            .await
            .map_err(Error::query("record the run in the journal"))?;
            self.add_tenants(&mut transaction, &id, new.tenants)
                .await
                .map_err(Error::query("record the run's tenants in the journal"))?;
            (id, lock_key)
        };
        let worker = format!(
            "{}:{}:{}",
            new.worker.host,
            new.worker.pid,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis())
        );
        // The worker holds the session lock (run key, -number) while it lives: the others
        // tell a live worker from a dead one by whether they can take it.
        let number: i32 = sqlx::query_scalar(&format!(
            "INSERT INTO {workers} (run_id, worker, number, host, os_user, pid, backend_pid, command, state) \
             SELECT $1, $2, coalesce((SELECT max(number) FROM {workers} WHERE run_id = $1), 0) + 1, \
             $3, $4, $5, pg_catalog.pg_backend_pid(), $6, 'running' RETURNING number",
            workers = self.table("workers")
        ))
        .bind(&id)
        .bind(&worker)
        .bind(&new.worker.host)
        .bind(&new.worker.os_user)
        .bind(new.worker.pid as i32)
        .bind(&new.worker.command)
        .fetch_one(&mut *transaction)
        .await
        .map_err(Error::query("record the worker in the journal"))?;
        sqlx::query("SELECT pg_catalog.pg_advisory_lock($1, -$2)")
            .bind(lock_key)
            .bind(number)
            .execute(&mut *transaction)
            .await
            .map_err(Error::query("hold the worker's lock"))?;
        transaction
            .commit()
            .await
            .map_err(Error::query("commit the run's journal entry"))?;
        Ok(Run {
            journal: self.clone(),
            id,
            lock_key,
            worker,
            resumed,
            planned_after: None,
        })
    }
}

impl Run {
    fn table(&self, name: &str) -> String {
        self.journal.table(name)
    }

    /// Records the start of an attempt at each tenant, committed at once (an attempt cut
    /// short by a crash stays, without an end); the attempts' IDs, in order.
    pub async fn attempts_started(
        &self,
        connection: &mut PgConnection,
        positions: &[i32],
    ) -> Result<Vec<i64>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, i32)> = sqlx::query_as(&format!(
            "INSERT INTO {} (run_id, position, worker) \
             SELECT $1, p.position, $3 FROM pg_catalog.unnest($2::int[]) WITH ORDINALITY AS p(position, n) ORDER BY p.n \
             RETURNING id, position",
            self.table("attempts")
        ))
        .bind(&self.id)
        .bind(positions)
        .bind(&self.worker)
        .fetch_all(connection)
        .await
        .map_err(Error::query("record the attempts in the journal"))?;
        positions
            .iter()
            .map(|position| {
                rows.iter()
                    .find(|(_, at)| at == position)
                    .map(|(id, _)| *id)
                    .ok_or_else(|| {
                        Error::query("record the attempts in the journal")(sqlx::Error::RowNotFound)
                    })
            })
            .collect()
    }

    /// Marks tenants done (or waiting), inside the transaction that wrote them: the journal
    /// says done exactly for the tenants whose writes commit.
    pub async fn settle_in(
        &self,
        transaction: &mut PgConnection,
        ends: &[TenantEnd],
    ) -> Result<()> {
        if ends.is_empty() {
            return Ok(());
        }
        let positions: Vec<i32> = ends.iter().map(|end| end.position).collect();
        let attempts: Vec<i64> = ends.iter().map(|end| end.attempt).collect();
        let waiting: Vec<i64> = ends.iter().map(|end| end.rows_waiting).collect();
        let inserted: Vec<i64> = ends.iter().map(|end| end.rows_inserted).collect();
        let rows: Vec<&str> = ends.iter().map(|end| end.rows.as_str()).collect();
        let waiting_for: Vec<Option<&str>> =
            ends.iter().map(|end| end.waiting_for.as_deref()).collect();
        let (tenants, attempted): (i64, i64) = sqlx::query_as(&format!(
            "WITH ended AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($2::int[]), pg_catalog.unnest($3::bigint[]), pg_catalog.unnest($4::bigint[]), pg_catalog.unnest($5::bigint[]), pg_catalog.unnest($6::text[]), pg_catalog.unnest($8::text[])) \
             AS e(position, attempt, rows_waiting, rows_inserted, rows, waiting_for)), \
             tenants AS (UPDATE {tenants} t SET state = 'done', rows_inserted = t.rows_inserted + e.rows_inserted, \
             rows_waiting = e.rows_waiting, waiting_for = e.waiting_for::jsonb, \
             error = NULL, xid = pg_catalog.txid_current(), worker = $7, finished_at = pg_catalog.clock_timestamp(), \
             verified = NULL, verify_error = NULL, verified_at = NULL \
             FROM ended e WHERE t.run_id = $1 AND t.position = e.position RETURNING 1), \
             attempts AS (UPDATE {attempts} a SET ended_at = pg_catalog.clock_timestamp(), outcome = 'done', \
             rows = e.rows::jsonb, xid = pg_catalog.txid_current() FROM ended e WHERE a.id = e.attempt RETURNING 1) \
             SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM attempts)",
            tenants = self.table("run_tenants"),
            attempts = self.table("attempts"),
        ))
        .bind(&self.id)
        .bind(&positions)
        .bind(&attempts)
        .bind(&waiting)
        .bind(&inserted)
        .bind(&rows)
        .bind(&self.worker)
        .bind(&waiting_for)
        .fetch_one(transaction)
        .await
        .map_err(Error::query("mark the tenants done in the journal"))?;
        if tenants != ends.len() as i64 || attempted != ends.len() as i64 {
            return Err(Error::query(format!(
                "mark the tenants done in the journal ({tenants} tenant rows and {attempted} attempts of {} updated: the run's rows are gone)",
                ends.len()
            ))(sqlx::Error::RowNotFound));
        }
        Ok(())
    }

    /// Ends attempts that did not commit; a failed one fails its tenant (with the error).
    pub async fn attempts_ended(
        &self,
        connection: &mut PgConnection,
        ends: &[AttemptEnd],
    ) -> Result<()> {
        if ends.is_empty() {
            return Ok(());
        }
        let positions: Vec<i32> = ends.iter().map(|end| end.position).collect();
        let attempts: Vec<i64> = ends.iter().map(|end| end.attempt).collect();
        let outcomes: Vec<&str> = ends.iter().map(|end| end.outcome).collect();
        let errors: Vec<Option<&str>> = ends.iter().map(|end| end.error.as_deref()).collect();
        sqlx::query(&format!(
            "WITH ended AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($2::int[]), pg_catalog.unnest($3::bigint[]), pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[])) \
             AS e(position, attempt, outcome, error)), \
             tenants AS (UPDATE {tenants} t SET state = 'failed', error = e.error, worker = $6, \
             finished_at = pg_catalog.clock_timestamp() \
             FROM ended e WHERE t.run_id = $1 AND t.position = e.position AND e.outcome = 'failed' AND t.state <> 'done') \
             UPDATE {attempts} a SET ended_at = pg_catalog.clock_timestamp(), outcome = e.outcome, error = e.error \
             FROM ended e WHERE a.id = e.attempt",
            tenants = self.table("run_tenants"),
            attempts = self.table("attempts"),
        ))
        .bind(&self.id)
        .bind(&positions)
        .bind(&attempts)
        .bind(&outcomes)
        .bind(&errors)
        .bind(&self.worker)
        .execute(connection)
        .await
        .map_err(Error::query("record the failed attempts in the journal"))?;
        Ok(())
    }

    /// Records verification results: (position, passed, why not).
    pub async fn verified(
        &self,
        connection: &mut PgConnection,
        results: &[(i32, bool, Option<String>)],
    ) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let positions: Vec<i32> = results.iter().map(|(position, _, _)| *position).collect();
        let passed: Vec<&str> = results
            .iter()
            .map(|(_, passed, _)| if *passed { "passed" } else { "failed" })
            .collect();
        let errors: Vec<Option<&str>> = results
            .iter()
            .map(|(_, _, error)| error.as_deref())
            .collect();
        sqlx::query(&format!(
            "UPDATE {} t SET verified = v.verified, verify_error = v.error, verified_at = pg_catalog.clock_timestamp() \
             FROM ROWS FROM (pg_catalog.unnest($2::int[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])) AS v(position, verified, error) \
             WHERE t.run_id = $1 AND t.position = v.position AND t.state = 'done'",
            self.table("run_tenants")
        ))
        .bind(&self.id)
        .bind(&positions)
        .bind(&passed)
        .bind(&errors)
        .execute(connection)
        .await
        .map_err(Error::query("record the verification in the journal"))?;
        Ok(())
    }

    /// This worker leaves the run: its own state, then the run's — done when every tenant is
    /// done, whole and verified; running while another worker is still on it; else
    /// interrupted (when told so, or tenants are left to do or to verify) or failed.
    pub async fn leave(&self, connection: &mut PgConnection, interrupted: bool) -> Result<Settled> {
        let mut transaction = connection
            .begin()
            .await
            .map_err(Error::query("begin settling the run"))?;
        sqlx::query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext($1))")
            .bind(format!("salvage run end {}", self.id))
            .execute(&mut *transaction)
            .await
            .map_err(Error::query("lock the run's end"))?;
        let counts: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed'), \
             count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'done' AND rows_waiting > 0), \
             count(*) FILTER (WHERE verified = 'passed'), count(*) FILTER (WHERE verified = 'failed'), \
             count(*) FILTER (WHERE state = 'done' AND verified IS NULL) FROM {} WHERE run_id = $1",
            self.table("run_tenants")
        ))
        .bind(&self.id)
        .fetch_one(&mut *transaction)
        .await
        .map_err(Error::query("count the run's tenants"))?;
        let (done, failed, pending, waiting, verified, verify_failed, unverified) = counts;
        // A worker still running holds its lock; one that died left it free.
        let probed: Vec<(i32, bool)> = sqlx::query_as(&format!(
            "SELECT w.number, pg_catalog.pg_try_advisory_lock($3, -w.number) FROM {} w \
             WHERE w.run_id = $1 AND w.worker <> $2 AND w.state = 'running'",
            self.table("workers")
        ))
        .bind(&self.id)
        .bind(&self.worker)
        .bind(self.lock_key)
        .fetch_all(&mut *transaction)
        .await
        .map_err(Error::query("look for the run's other workers"))?;
        let freed: Vec<i32> = probed
            .iter()
            .filter(|(_, free)| *free)
            .map(|(number, _)| -number)
            .collect();
        if !freed.is_empty() {
            sqlx::query("SELECT pg_catalog.pg_advisory_unlock($1, n) FROM pg_catalog.unnest($2::int[]) AS n")
                .bind(self.lock_key)
                .bind(&freed)
                .execute(&mut *transaction)
                .await
                .map_err(Error::query("release the probed worker locks"))?;
        }
        let others = probed.iter().filter(|(_, free)| !*free).count() as i64;
        let state =
            if pending == 0 && waiting == 0 && failed == 0 && unverified == 0 && verify_failed == 0
            {
                RunState::Done
            } else if others > 0 {
                RunState::Running
            } else if interrupted || pending > 0 || unverified > 0 {
                RunState::Interrupted
            } else {
                // Failed tenants, rows still waiting for a parent, or tenants verification found
                // incomplete: a rerun tries those again.
                RunState::Failed
            };
        let own = if interrupted {
            RunState::Interrupted
        } else if failed > 0 {
            RunState::Failed
        } else {
            RunState::Done
        };
        sqlx::query(&format!(
            "UPDATE {} SET state = $3, ended_at = pg_catalog.clock_timestamp() WHERE run_id = $1 AND worker = $2",
            self.table("workers")
        ))
        .bind(&self.id)
        .bind(&self.worker)
        .bind(own.as_str())
        .execute(&mut *transaction)
        .await
        .map_err(Error::query("record the worker's end"))?;
        sqlx::query(&format!(
            "UPDATE {} SET state = $2, ended_at = CASE WHEN $2 = 'running' THEN NULL ELSE pg_catalog.clock_timestamp() END \
             WHERE run_id = $1",
            self.table("runs")
        ))
        .bind(&self.id)
        .bind(state.as_str())
        .execute(&mut *transaction)
        .await
        .map_err(Error::query("record the run's state"))?;
        transaction
            .commit()
            .await
            .map_err(Error::query("commit the run's state"))?;
        Ok(Settled {
            state,
            counts: TenantCounts {
                done,
                failed,
                pending,
                waiting,
                verified,
                verify_failed,
            },
            others,
        })
    }
}

impl Journal {
    /// A `run_tenants` row per tenant of run `id`, in order (position from 0): ID and label.
    pub(crate) async fn add_tenants(
        &self,
        connection: &mut PgConnection,
        id: &str,
        tenants: &[(String, Option<String>)],
    ) -> Result<(), sqlx::Error> {
        let ids: Vec<&str> = tenants.iter().map(|(id, _)| id.as_str()).collect();
        let labels: Vec<Option<&str>> = tenants.iter().map(|(_, label)| label.as_deref()).collect();
        sqlx::query(&format!(
            "INSERT INTO {} (run_id, position, tenant, label) \
             SELECT $1, (t.n - 1)::int, t.id, t.label FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) \
             WITH ORDINALITY AS t(id, label, n)",
            self.table("run_tenants")
        ))
        .bind(id)
        .bind(&ids)
        .bind(&labels)
        .execute(connection)
        .await?;
        Ok(())
    }
}
