//! Waiting for replay to reach the target, by polling — the server's process, its log, and
//! once it accepts connections `pg_get_wal_replay_pause_state()` — until replay is paused,
//! and then checking that it paused *at the target*: the log must say where recovery
//! stopped, and what the server says about the last replayed transaction must agree with the
//! target. A server that exits (the WAL ran out, a segment is missing), that ends recovery
//! instead of pausing, or that makes no progress for too long, is an error naming the last
//! replayed WAL location and transaction time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use crate::facts::StopPoint;
use crate::log::LogWatch;
use crate::process::Server;
use crate::target::{Lsn, RecoveryTarget};
use crate::{Error, RecoveryReporter, ReplayProgress, Result};

/// How often the state is looked at.
const POLL: Duration = Duration::from_millis(100);

pub(crate) struct Wait<'a> {
    pub server: &'a mut Server,
    pub log: LogWatch,
    pub socket: PathBuf,
    /// Roles to try to connect as; the bootstrap superuser is used once one works.
    pub users: &'a [String],
    pub target: &'a RecoveryTarget,
    pub reporter: &'a dyn RecoveryReporter,
    /// Longest time without any progress (no WAL restored, no replay) before giving up.
    pub stall: Duration,
    /// Whether WAL beyond the backup's own was offered (for the hint when it ran out).
    pub has_archive: bool,
    /// The server's major version (`pg_get_wal_replay_pause_state()` is 14 and later).
    pub major: u32,
}

/// Where replay paused, and the role to read the snapshot as.
pub(crate) struct Paused {
    pub stop: StopPoint,
    pub user: String,
    pub databases: Vec<String>,
}

struct State {
    in_recovery: bool,
    paused: String,
    lsn: Option<String>,
    last_transaction_at: Option<String>,
}

impl Wait<'_> {
    pub(crate) async fn until_paused(mut self) -> Result<Paused> {
        let mut connection: Option<(PgConnection, String)> = None;
        let mut progress = ReplayProgress::default();
        let mut last_change = Instant::now();
        let mut paused_polls = 0;
        loop {
            self.log.poll()?;
            if let Some(status) = self.server.exited() {
                self.log.poll()?;
                return Err(self.exited(&status));
            }
            if connection.is_none() {
                connection = self.connect().await?;
            }
            let mut state = None;
            if let Some((conn, _)) = &mut connection {
                match read_state(conn, self.major).await {
                    Ok(read) => state = Some(read),
                    // The server went away under the connection: the next round says why.
                    Err(_) => connection = None,
                }
            }
            let facts = &self.log.facts;
            let now = ReplayProgress {
                restored: facts.restored,
                last_restored: facts.last_restored.clone(),
                lsn: state.as_ref().and_then(|state| state.lsn.clone()),
                last_transaction_at: state
                    .as_ref()
                    .and_then(|state| state.last_transaction_at.clone()),
            };
            if now != progress {
                progress = now;
                last_change = Instant::now();
                self.reporter.replaying(&progress);
            }
            let mut done = None;
            if let (Some(state), Some((conn, user))) = (&state, &mut connection) {
                if !state.in_recovery {
                    return Err(self.not_reached(
                        "the server ended recovery and was promoted instead of pausing at the target",
                        state,
                    ));
                }
                if state.paused == "paused" {
                    // The log says where recovery stopped before the pause shows.
                    if self.log.facts.stopping.is_some() {
                        let stop = self.check_stop(conn, state).await?;
                        let user = superuser(conn).await.unwrap_or_else(|_| user.clone());
                        let databases = databases(conn).await?;
                        done = Some(Paused {
                            stop,
                            user,
                            databases,
                        });
                    } else {
                        paused_polls += 1;
                        if paused_polls > 20 {
                            return Err(self.not_reached(
                                "replay paused, but not at the target (the log does not say recovery stopped there)",
                                state,
                            ));
                        }
                    }
                }
            }
            if let Some(paused) = done {
                if let Some((conn, _)) = connection.take() {
                    let _ = conn.close().await;
                }
                return Ok(paused);
            }
            if last_change.elapsed() > self.stall {
                return Err(Error::Stalled {
                    seconds: self.stall.as_secs(),
                    lsn: progress.lsn.clone().unwrap_or_else(|| "unknown".to_owned()),
                    log: self.log.path().to_owned(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A connection once the server accepts one (hot standby: once it is consistent).
    async fn connect(&self) -> Result<Option<(PgConnection, String)>> {
        let mut missing = Vec::new();
        for user in self.users {
            match connect(&self.socket, user, "template1").await {
                Ok(connection) => return Ok(Some((connection, user.clone()))),
                Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("28000") => {
                    missing.push(user.as_str());
                }
                // Not up yet (no socket, "the database system is starting up"…).
                Err(_) => return Ok(None),
            }
        }
        Err(Error::Query(format!(
            "none of the roles {} exist in the backup: give the snapshot's user with --snapshot-user",
            missing.join(", ")
        )))
    }

    async fn check_stop(&self, connection: &mut PgConnection, state: &State) -> Result<StopPoint> {
        let stopping = self.log.facts.stopping.clone().unwrap_or_default();
        let lsn = state.lsn.clone().unwrap_or_default();
        let agrees = match self.target {
            RecoveryTarget::Immediate => stopping.starts_with("after reaching consistency"),
            RecoveryTarget::Time(time) => {
                let before: Option<bool> = sqlx::query_scalar(
                    "SELECT pg_catalog.pg_last_xact_replay_timestamp() < $1::timestamptz",
                )
                .bind(time)
                .fetch_one(&mut *connection)
                .await
                .map_err(|error| Error::Query(format!("compare the replay time: {error}")))?;
                stopping.starts_with("before ") && before != Some(false)
            }
            RecoveryTarget::Lsn(target) => {
                stopping.starts_with("before WAL location")
                    && Lsn::parse(&lsn).is_some_and(|replayed| replayed <= *target)
            }
            RecoveryTarget::Xid(xid) => {
                let xid32 = xid & 0xffff_ffff;
                stopping.starts_with("before ")
                    && stopping.contains(&format!("of transaction {xid32},"))
            }
        };
        if !agrees {
            return Err(self.not_reached(
                &format!("replay stopped {stopping}, which is not the target"),
                state,
            ));
        }
        Ok(StopPoint {
            lsn,
            last_transaction_at: state.last_transaction_at.clone(),
            reason: stopping,
        })
    }

    fn not_reached(&self, reason: &str, state: &State) -> Error {
        Error::NotReached {
            target: self.target.to_string(),
            reason: reason.to_owned(),
            lsn: state.lsn.clone().unwrap_or_else(|| "unknown".to_owned()),
            time: state
                .last_transaction_at
                .clone()
                .unwrap_or_else(|| "(none replayed)".to_owned()),
            detail: self.detail(),
        }
    }

    /// The server exited: why, from its log.
    fn exited(&self, status: &str) -> Error {
        let facts = &self.log.facts;
        let replayed = facts.redo_done_at.is_some()
            || facts.restored > 0
            || facts.consistent_at.is_some()
            || facts
                .fatal
                .iter()
                .any(|message| message.contains("recovery target") || message.contains("WAL ends"));
        let said = if facts.fatal.is_empty() {
            format!("the server exited ({status})")
        } else {
            facts.fatal.join("; ")
        };
        if !replayed {
            return Error::Start {
                reason: format!("{said}\n{}", crate::log::tail(self.log.path(), 15)),
                log: self.log.path().to_owned(),
            };
        }
        Error::NotReached {
            target: self.target.to_string(),
            reason: said,
            lsn: facts
                .redo_done_at
                .clone()
                .unwrap_or_else(|| "unknown".to_owned()),
            time: facts
                .last_completed_transaction
                .clone()
                .unwrap_or_else(|| "(none replayed)".to_owned()),
            detail: self.detail(),
        }
    }

    /// What the restore command said, and a hint.
    fn detail(&self) -> String {
        let facts = &self.log.facts;
        let mut detail = String::new();
        if let Some(file) = &facts.not_in_archive {
            detail.push_str(&format!(
                "; the WAL archive has no {file} (the archive ends there, or has a gap)"
            ));
        }
        for line in facts.restore_errors.iter().rev().take(3) {
            detail.push_str(&format!("; {line}"));
        }
        if !self.has_archive {
            detail.push_str("; only the backup's own WAL was replayed: give --wal-archive DIR or --restore-command CMD for the WAL after it");
        }
        detail
    }
}

pub(crate) async fn connect(
    socket: &Path,
    user: &str,
    database: &str,
) -> std::result::Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::new_without_pgpass()
        .socket(socket)
        .port(crate::config::PORT)
        .username(user)
        .database(database)
        .ssl_mode(PgSslMode::Disable)
        .application_name("salvage-recovery")
        .disable_statement_logging();
    match tokio::time::timeout(Duration::from_secs(10), options.connect()).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

async fn read_state(
    connection: &mut PgConnection,
    major: u32,
) -> std::result::Result<State, sqlx::Error> {
    let pause_state = if major >= 14 {
        "pg_catalog.pg_get_wal_replay_pause_state()"
    } else {
        "CASE WHEN pg_catalog.pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END"
    };
    let (in_recovery, pause_state, lsn, last_transaction_at): (
        bool,
        String,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(&format!(
        "SELECT pg_catalog.pg_is_in_recovery(), \
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN {pause_state} ELSE 'not paused' END, \
         pg_catalog.pg_last_wal_replay_lsn()::text, \
         pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
    ))
    .fetch_one(connection)
    .await?;
    Ok(State {
        in_recovery,
        paused: pause_state,
        lsn,
        last_transaction_at,
    })
}

async fn superuser(connection: &mut PgConnection) -> std::result::Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT rolname::text FROM pg_catalog.pg_roles WHERE oid = 10")
        .fetch_one(connection)
        .await
}

async fn databases(connection: &mut PgConnection) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT datname::text FROM pg_catalog.pg_database WHERE datallowconn ORDER BY 1",
    )
    .fetch_all(connection)
    .await
    .map_err(|error| Error::Query(format!("list the databases: {error}")))
}
