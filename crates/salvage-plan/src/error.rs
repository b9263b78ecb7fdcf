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
    #[error("--tenant-column {column}: no table has a column {column}{}", similar_hint(.similar))]
    UnknownTenantColumn {
        column: String,
        similar: Vec<String>,
    },
    #[error(
        "--tenant-column {column}: {table}.{column} is {column_type}, but the root key {root_key}; tenant IDs cannot be compared with it"
    )]
    TenantColumnType {
        table: QualifiedName,
        column: String,
        column_type: String,
        /// `public.sites.id is bigint`.
        root_key: String,
    },
    #[error("the configuration names {table}, which does not exist in the live database")]
    UnknownTable { table: QualifiedName },
    #[error("the configuration's relation {relation}: {reason}")]
    BadRelation { relation: String, reason: String },
}

fn similar_hint(similar: &[String]) -> String {
    if similar.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", similar.join(" or "))
    }
}

fn join(tables: &[QualifiedName]) -> String {
    tables
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}
