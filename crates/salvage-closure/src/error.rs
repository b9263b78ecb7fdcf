//! Reasons a restore plan cannot be made; all of them are bad input or an unreachable
//! database, and none of them happen after a write.

use salvage_catalog::QualifiedName;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] salvage_pg::Error),
    #[error(transparent)]
    Source(#[from] salvage_source::Error),
    #[error("no tenant IDs given")]
    NoTenants,
    #[error("{} {} for {table}.{column}", if ids.len() == 1 { "tenant ID" } else { "tenant IDs" }, if ids.len() == 1 { format!("{} is not a valid {key_type}", quote_all(ids)) } else { format!("{} are not valid {key_type} values", quote_all(ids)) })]
    BadIds {
        ids: Vec<String>,
        key_type: String,
        table: QualifiedName,
        column: String,
    },
    #[error("{} {} {} not in the snapshot's {table}", if ids.len() == 1 { "tenant ID" } else { "tenant IDs" }, quote_all(.ids), if ids.len() == 1 { "is" } else { "are" })]
    UnknownTenants {
        ids: Vec<String>,
        table: QualifiedName,
    },
    /// The plan and what was read disagree: a bug, named so it can be reported.
    #[error("inconsistent plan: {0}")]
    Inconsistent(String),
    #[error("{table} exists only in the snapshot, yet holds {rows} {} of the chosen tenants ({}): {} cannot be placed in live", if *rows == 1 { "row" } else { "rows" }, quote_all(.tenants), if *rows == 1 { "it" } else { "they" })]
    Unplaceable {
        table: QualifiedName,
        rows: u64,
        tenants: Vec<String>,
    },
}

fn quote_all(ids: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}
