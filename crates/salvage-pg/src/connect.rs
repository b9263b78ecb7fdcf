//! Connections with the session settings every salvage statement relies on.
//!
//! The text form of a value depends on the session (TimeZone, DateStyle, IntervalStyle,
//! `extra_float_digits`, `bytea_output`). Both sides of a restore use the same settings, so the
//! COPY text read from the snapshot means the same thing when the live database parses it,
//! and keys read from either side compare as text.

use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{ConnectOptions, Connection};

use crate::url::{Candidate, SessionAttributes};
use crate::{DatabaseUrl, Error, Result};

/// What a connection may do. The snapshot is only ever read; so is the live database by
/// `plan` and `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRole {
    /// Every transaction defaults to READ ONLY: a write would fail, not happen.
    ReadOnly,
    /// For the restore's writes into live.
    ReadWrite,
}

/// The settings pinned on every connection (one statement, one round trip). `row_security`
/// off makes a read that row-level security would filter fail instead (as pg_dump does): no
/// read of salvage's ever sees part of a table without saying so.
const PINNED: &str = "SELECT pg_catalog.set_config('TimeZone', 'UTC', false), \
    pg_catalog.set_config('DateStyle', 'ISO, YMD', false), \
    pg_catalog.set_config('IntervalStyle', 'postgres', false), \
    pg_catalog.set_config('extra_float_digits', '3', false), \
    pg_catalog.set_config('bytea_output', 'hex', false), \
    pg_catalog.set_config('standard_conforming_strings', 'on', false), \
    pg_catalog.set_config('row_security', 'off', false), \
    pg_catalog.set_config('client_min_messages', 'warning', false)";

/// Added for read-only sessions: every transaction defaults to READ ONLY.
const READ_ONLY: &str =
    "SELECT pg_catalog.set_config('default_transaction_read_only', 'on', false)";

/// What a session is, for `target_session_attrs`: in recovery, and read-only by default.
const SESSION_STATE: &str = "SELECT pg_catalog.pg_is_in_recovery(), \
    pg_catalog.current_setting('transaction_read_only')::bool";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A statement that takes longer is logged at info level.
const SLOW: Duration = Duration::from_secs(10);

/// A connection and the URL it came from (redacted when shown).
#[derive(Debug)]
pub struct Session {
    pub connection: PgConnection,
    pub url: DatabaseUrl,
}

/// Opens a connection to `url` with the pinned settings, or says why it could not. With
/// several hosts, they are tried in order, as libpq does, until one answers and is what
/// `target_session_attrs` asks for.
pub async fn connect(url: &DatabaseUrl, role: ConnectionRole) -> Result<PgConnection> {
    let fail = |reason: String| Error::Connect {
        url: url.redacted().to_owned(),
        reason,
    };
    let candidates = url.candidates().map_err(|error| fail(error.0))?;
    let several = candidates.len() > 1;
    let mut reasons = Vec::new();
    for candidate in candidates {
        match connect_one(url, &candidate, role).await {
            Ok(connection) => return Ok(connection),
            Err(reason) if several => reasons.push(format!("{}: {reason}", candidate.address)),
            Err(reason) => return Err(fail(reason)),
        }
    }
    Err(fail(reasons.join("; ")))
}

async fn connect_one(
    url: &DatabaseUrl,
    candidate: &Candidate,
    role: ConnectionRole,
) -> std::result::Result<PgConnection, String> {
    let options = candidate.options.clone();
    let options = if options.get_application_name().is_none() {
        options.application_name("salvage")
    } else {
        options
    }
    .extra_float_digits(3)
    // Every statement is logged at debug level with its duration (`-vv`, or RUST_LOG), one
    // that takes longer than SLOW at info level (`-v`).
    .log_statements(log::LevelFilter::Debug)
    .log_slow_statements(log::LevelFilter::Info, SLOW);
    let timeout = url.connect_timeout().unwrap_or(CONNECT_TIMEOUT);
    let mut connection = tokio::time::timeout(timeout, options.connect())
        .await
        .map_err(|_| format!("no answer within {} seconds", timeout.as_secs()))?
        .map_err(|error| crate::error::describe(&error))?;
    let setup =
        |error: sqlx::Error| format!("setting up the session: {}", crate::error::describe(&error));
    let wanted = url.session_attributes();
    if wanted != SessionAttributes::Any {
        let (in_recovery, read_only): (bool, bool) = sqlx::query_as(SESSION_STATE)
            .fetch_one(&mut connection)
            .await
            .map_err(setup)?;
        let refusal = match wanted {
            SessionAttributes::ReadWrite if read_only => Some("the session is read-only"),
            SessionAttributes::ReadOnly if !read_only => Some("the session is not read-only"),
            SessionAttributes::Primary if in_recovery => Some("the server is in hot standby mode"),
            SessionAttributes::Standby if !in_recovery => {
                Some("the server is not in hot standby mode")
            }
            _ => None,
        };
        if let Some(refusal) = refusal {
            let _ = connection.close().await;
            return Err(format!("{refusal} (target_session_attrs)"));
        }
    }
    sqlx::query(PINNED)
        .execute(&mut connection)
        .await
        .map_err(setup)?;
    if role == ConnectionRole::ReadOnly {
        sqlx::query(READ_ONLY)
            .execute(&mut connection)
            .await
            .map_err(setup)?;
    }
    Ok(connection)
}

/// Closes a connection politely; errors are irrelevant at that point.
pub async fn close(connection: PgConnection) {
    let _ = connection.close().await;
}

/// A connection opened when it is first needed: a worker that may or may not have
/// statements for a database (a restore's snapshot reader when the plan holds every row, a
/// verifier whose rows all match on the client) costs that database no session unless it
/// does. A failure to connect comes from the first statement's caller.
#[derive(Debug)]
pub struct OnFirstUse {
    url: DatabaseUrl,
    role: ConnectionRole,
    connection: Option<PgConnection>,
    /// A helper connection that could not be opened is not tried again.
    refused: bool,
}

impl OnFirstUse {
    #[must_use]
    pub fn new(url: DatabaseUrl, role: ConnectionRole) -> Self {
        Self {
            url,
            role,
            connection: None,
            refused: false,
        }
    }

    /// The connection, opened now if it was not yet.
    pub async fn get(&mut self) -> Result<&mut PgConnection> {
        match self.connection {
            Some(ref mut connection) => Ok(connection),
            None => Ok(self.connection.insert(connect(&self.url, self.role).await?)),
        }
    }

    /// For a connection that only helps (work its caller can do alone on another): the
    /// connection, or `None` — said once, as a warning — when it cannot be opened (a server at
    /// `max_connections`), after which it is not tried again.
    pub async fn try_get(&mut self) -> Option<&mut PgConnection> {
        if self.refused {
            return None;
        }
        if let Err(error) = self.get().await {
            tracing::warn!(%error, "a second connection could not be opened: going on with one");
            self.refused = true;
            return None;
        }
        self.connection.as_mut()
    }

    /// Closes it, when it was opened.
    pub async fn close(self) {
        if let Some(connection) = self.connection {
            close(connection).await;
        }
    }
}

/// Something that tells two databases apart: the server's start time, the database's OID
/// and name. Two URLs with the same identity lead to the same database.
/// The cluster's system identifier (from its control file: the same on a primary, its
/// replicas and its physical backups) and the database's name.
pub async fn system_identity(connection: &mut PgConnection) -> Result<(String, String)> {
    sqlx::query_as(
        "SELECT system_identifier::text, pg_catalog.current_database()::text FROM pg_catalog.pg_control_system()",
    )
    .fetch_one(connection)
    .await
    .map_err(Error::query("identify the database's cluster"))
}

pub async fn database_identity(connection: &mut PgConnection) -> Result<String> {
    sqlx::query_scalar(
        "SELECT pg_catalog.pg_postmaster_start_time()::text || '/' || d.oid::text || '/' || d.datname::text \
         FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()",
    )
    .fetch_one(connection)
    .await
    .map_err(Error::query("identify the database"))
}
