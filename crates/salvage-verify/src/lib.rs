//! Verification: proof that restored tenants equal the snapshot.
//!
//! For every chosen tenant and every owned table, the snapshot's rows are compared with the
//! live rows by key and by typed value — the snapshot's text is cast to the live column's type
//! and compared with `IS NOT DISTINCT FROM`, so `1.50` equals `1.5`, NaN equals NaN and a
//! timestamp is the same instant whatever its text. Types without an equality operator (json,
//! xml, point...) are compared by their text, which the pinned session settings make stable.
//! Shared rows the restore added are checked the same way. Read-only on both sides.
//!
//! [`diff`] compares the same way, for every tenant of a scope at once: which tenants an
//! incident deleted, damaged or changed.

mod check;
mod compare;
pub mod diff;
mod error;
mod left;
mod matching;
mod model;
mod multiset;
mod proof;

pub use check::{Completeness, Reaching, verify};
pub use error::{Error, Result};
pub use model::{TableCheck, TenantCheck, VerifyReporter};
