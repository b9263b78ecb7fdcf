//! Errors that stop verification as a whole (a tenant's own failure is recorded in its check).

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] salvage_pg::Error),
    #[error(transparent)]
    Source(#[from] salvage_source::Error),
    #[error(transparent)]
    Plan(#[from] salvage_closure::Error),
    /// Tenant IDs (as given) that neither the snapshot's root table nor live's holds.
    #[error("{} {} in neither the snapshot's nor live's {table}", if ids.len() == 1 { "tenant ID" } else { "tenant IDs" }, named(.ids))]
    UnknownTenants {
        ids: Vec<String>,
        table: salvage_catalog::QualifiedName,
    },
    /// The plan and what was read disagree: a bug, named so it can be reported.
    #[error("inconsistent plan: {0}")]
    Inconsistent(String),
}

/// `'3', '7'` (at most 20, then how many more).
fn named(ids: &[String]) -> String {
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
    text.push_str(if ids.len() == 1 { " is" } else { " are" });
    text
}
