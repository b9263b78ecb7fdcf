//! Errors from talking to PostgreSQL, and the SQLSTATE classes callers act on.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached or refused us. `url` is redacted.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// A statement failed; `context` says what we were doing.
    #[error("{context}: {}", describe(.source))]
    Query {
        context: String,
        #[source]
        source: sqlx::Error,
    },
}

impl Error {
    /// Wraps a driver error with a short verb phrase ("read columns of public.sites").
    pub fn query(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let context = context.into();
        move |source| Self::Query { context, source }
    }

    /// The SQLSTATE of the server error behind this one, if any.
    #[must_use]
    pub fn sqlstate(&self) -> Option<SqlState> {
        match self {
            Self::Connect { .. } => None,
            Self::Query { source, .. } => sqlstate(source),
        }
    }
}

/// A server error's message with its detail and hint, the way psql shows them.
#[must_use]
pub fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => {
            let mut text = db.message().to_owned();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(detail) = pg.detail() {
                    text.push_str(" (");
                    text.push_str(detail);
                    text.push(')');
                }
                if let Some(hint) = pg.hint() {
                    text.push_str("; hint: ");
                    text.push_str(hint);
                }
                if let Some(context) = pg.r#where() {
                    // COPY errors say which line and column: keep that, it names the row.
                    if let Some(line) = context.lines().find(|line| line.starts_with("COPY ")) {
                        text.push_str(" [");
                        text.push_str(line);
                        text.push(']');
                    }
                }
            }
            text
        }
        other => other.to_string(),
    }
}

/// SQLSTATE codes salvage reacts to; everything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlState {
    UniqueViolation,
    ForeignKeyViolation,
    NotNullViolation,
    CheckViolation,
    ExclusionViolation,
    SerializationFailure,
    DeadlockDetected,
    LockNotAvailable,
    QueryCanceled,
    InvalidTextRepresentation,
    NumericValueOutOfRange,
    InvalidDatetimeFormat,
    UndefinedTable,
    UndefinedColumn,
    UndefinedObject,
    UndefinedFunction,
    InsufficientPrivilege,
    ReadOnlyTransaction,
    Other(String),
}

impl SqlState {
    #[must_use]
    pub fn from_code(code: &str) -> Self {
        match code {
            "23505" => Self::UniqueViolation,
            "23503" => Self::ForeignKeyViolation,
            "23502" => Self::NotNullViolation,
            "23514" => Self::CheckViolation,
            "23P01" => Self::ExclusionViolation,
            "40001" => Self::SerializationFailure,
            "40P01" => Self::DeadlockDetected,
            "55P03" => Self::LockNotAvailable,
            "57014" => Self::QueryCanceled,
            "22P02" => Self::InvalidTextRepresentation,
            "22003" => Self::NumericValueOutOfRange,
            "22007" | "22008" => Self::InvalidDatetimeFormat,
            "42P01" => Self::UndefinedTable,
            "42703" => Self::UndefinedColumn,
            "42704" => Self::UndefinedObject,
            "42883" => Self::UndefinedFunction,
            "42501" => Self::InsufficientPrivilege,
            "25006" => Self::ReadOnlyTransaction,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Worth retrying the whole tenant: another transaction was in the way.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::SerializationFailure | Self::DeadlockDetected | Self::LockNotAvailable
        )
    }

    /// The value given does not fit the type (a tenant ID that is not a bigint, say).
    #[must_use]
    pub fn is_bad_value(&self) -> bool {
        matches!(
            self,
            Self::InvalidTextRepresentation
                | Self::NumericValueOutOfRange
                | Self::InvalidDatetimeFormat
        )
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = match self {
            Self::UniqueViolation => "23505",
            Self::ForeignKeyViolation => "23503",
            Self::NotNullViolation => "23502",
            Self::CheckViolation => "23514",
            Self::ExclusionViolation => "23P01",
            Self::SerializationFailure => "40001",
            Self::DeadlockDetected => "40P01",
            Self::LockNotAvailable => "55P03",
            Self::QueryCanceled => "57014",
            Self::InvalidTextRepresentation => "22P02",
            Self::NumericValueOutOfRange => "22003",
            Self::InvalidDatetimeFormat => "22007",
            Self::UndefinedTable => "42P01",
            Self::UndefinedColumn => "42703",
            Self::UndefinedObject => "42704",
            Self::UndefinedFunction => "42883",
            Self::InsufficientPrivilege => "42501",
            Self::ReadOnlyTransaction => "25006",
            Self::Other(code) => code,
        };
        f.write_str(code)
    }
}

/// The SQLSTATE of a driver error, when the server sent one.
#[must_use]
pub fn sqlstate(error: &sqlx::Error) -> Option<SqlState> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|code| SqlState::from_code(&code)),
        _ => None,
    }
}
