//! Reasons a schema cannot be planned; each names the table or column at fault.

use salvage_catalog::QualifiedName;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the root table {table} does not exist in the {side} database")]
    RootMissing {
        table: QualifiedName,
        side: &'static str,
    },
    #[error("the root table {table} {reason}")]
    RootKey {
        table: QualifiedName,
        reason: String,
    },
    #[error(
        "{table}.{column} is NOT NULL without a default in the live database, and the snapshot has no such column: restored rows would have no value for it"
    )]
    UnfillableColumn {
        table: QualifiedName,
        column: String,
    },
    #[error("cannot find {table}'s rows of a tenant in the snapshot: {reason}")]
    PathNotInSnapshot {
        table: QualifiedName,
        reason: String,
    },
    #[error("tables {} reference each other in a cycle that cannot be inserted: {reason}", join(.tables))]
    Cycle {
        tables: Vec<QualifiedName>,
        reason: String,
    },
    #[error("{table} has no primary key and no unique NOT NULL key in the live database: {reason}")]
    NoKey {
        table: QualifiedName,
        reason: String,
    },
    #[error("the configuration names {table}, which does not exist in the live database")]
    UnknownTable { table: QualifiedName },
    #[error("the configuration's relation {relation}: {reason}")]
    BadRelation { relation: String, reason: String },
}

fn join(tables: &[QualifiedName]) -> String {
    tables
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}
