//! Tenant closures: from the IDs a user typed to exactly which rows a restore will write.
//!
//! Every ID is checked against the root key's type and looked up in the snapshot (unknown IDs
//! are refused by value, before anything is written: the April 2022 incident began with IDs
//! of the wrong kind). Then, per tenant: its rows in every owned table by the membership rule
//! (every row any relation leads from to one of its rows), which of them live already has as
//! the tenant's, which live holds on another tenant's row, which would wait for a parent
//! nobody restores, and — following references upwards, recursively — the shared rows its
//! rows need that live is missing. Reads both databases, writes neither.

mod changes;
mod closure;
mod error;
pub mod guards;
mod ids;
mod live;
mod model;
mod owned;
mod shared;
mod waiting;

pub use closure::{PlanReporter, comparison_modes, resolve};
pub use error::{Error, Result};
pub use ids::canonical_ids;
pub use live::existing_keys;
pub use model::{
    CrossTenantRows, KeylessWait, RestorePlan, RowFilter, TableChanges, TableCounts, TenantClosure,
};
pub use owned::{multiset_of, raw_key};
pub use waiting::ask_live;
