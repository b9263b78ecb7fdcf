//! Connections with the session settings every salvage statement relies on.
//!
//! The text form of a value depends on the session (TimeZone, DateStyle, IntervalStyle,
//! `extra_float_digits`, `bytea_output`). Both sides of a restore use the same settings, so the
//! COPY text read from the snapshot means the same thing when the live database parses it,
//! and keys read from either side compare as text.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

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

/// The settings pinned on every connection (one statement, one round trip).
const PINNED: &str = "SELECT pg_catalog.set_config('TimeZone', 'UTC', false), \
    pg_catalog.set_config('DateStyle', 'ISO, YMD', false), \
    pg_catalog.set_config('IntervalStyle', 'postgres', false), \
    pg_catalog.set_config('extra_float_digits', '3', false), \
    pg_catalog.set_config('bytea_output', 'hex', false), \
    pg_catalog.set_config('standard_conforming_strings', 'on', false), \
    pg_catalog.set_config('client_min_messages', 'warning', false)";

/// Added for read-only sessions: every transaction defaults to READ ONLY.
const READ_ONLY: &str =
    "SELECT pg_catalog.set_config('default_transaction_read_only', 'on', false)";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection and the URL it came from (redacted when shown).
#[derive(Debug)]
pub struct Session {
    pub connection: PgConnection,
    pub url: DatabaseUrl,
}

/// Opens a connection to `url` with the pinned settings, or says why it could not.
pub async fn connect(url: &DatabaseUrl, role: ConnectionRole) -> Result<PgConnection> {
    let fail = |reason: String| Error::Connect {
        url: url.redacted().to_owned(),
        reason,
    };
    let options = PgConnectOptions::from_str(url.secret())
        .map_err(|error| fail(crate::error::describe(&error)))?;
    let options = if options.get_application_name().is_none() {
        options.application_name("salvage")
    } else {
        options
    }
    .extra_float_digits(3)
    .disable_statement_logging();
    let mut connection = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| {
            fail(format!(
                "no answer within {} seconds",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|error| fail(crate::error::describe(&error)))?;
    let setup = |error: sqlx::Error| {
        fail(format!(
            "setting up the session: {}",
            crate::error::describe(&error)
        ))
    };
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

/// Something that tells two databases apart: the server's start time, the database's OID
/// and name. Two URLs with the same identity lead to the same database.
pub async fn database_identity(connection: &mut PgConnection) -> Result<String> {
    sqlx::query_scalar(
        "SELECT pg_catalog.pg_postmaster_start_time()::text || '/' || d.oid::text || '/' || d.datname::text \
         FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()",
    )
    .fetch_one(connection)
    .await
    .map_err(Error::query("identify the database"))
}
