//! The schema model salvage plans with — tables, columns, keys, foreign keys, sequences — and
//! its introspection from a PostgreSQL database. Snapshot archives (pg_dump) produce the same
//! model from their table of contents, so planning never cares where a schema came from.

mod error;
mod introspect;
mod model;

pub use error::{Error, Result};
pub use introspect::introspect;
pub use model::{
    Catalog, Column, ForeignKey, Identity, Key, QualifiedName, SequenceRef, Table, TableKind,
    TypeKind,
};
