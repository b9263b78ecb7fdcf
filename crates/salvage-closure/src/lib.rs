//! Tenant closures: from the IDs a user typed to exactly which rows a restore will write.
//!
//! Every ID is checked against the root key's type and looked up in the snapshot (unknown IDs
//! are refused by value, before anything is written: the April 2022 incident began with IDs
//! of the wrong kind). Then, per tenant: its rows in every owned table, how many of their keys
//! the live database already has, and — following references upwards, recursively — the
//! shared rows its rows need that live is missing. Reads both databases, writes neither.

mod closure;
mod error;
mod ids;
mod live;
mod model;
mod multiset;

pub use closure::{PlanReporter, resolve};
pub use error::{Error, Result};
pub use ids::canonical_ids;
pub use live::existing_keys;
pub use model::{CrossTenantRows, RestorePlan, TableCounts, TenantClosure};
pub use multiset::Multiset;
