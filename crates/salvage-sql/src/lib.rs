//! One home for the SQL text salvage runs. Every statement shape is built here, by intent —
//! membership reads, key lookups, guards, inserts, multisets, sequences, verification reads, undo —
//! from quoted identifiers, type names out of the catalog, and values bound as parameters
//! (or, for `COPY`, through a [`Binder`] that passes them as session settings). The crates
//! that talk to a database only bind and execute; the shapes are unit-tested here as text.

mod bind;
pub mod ids;
pub mod images;
pub mod insert;
pub mod keys;
pub mod multiset;
mod names;
pub mod preflight;
pub mod reach;
pub mod session;
pub mod undo;
pub mod verify;

pub use bind::{Binder, Params};
pub use names::{
    array_parameter, bound_array, cast_type, column_list, columns_of, from_item, in_key_set, unnest,
};
