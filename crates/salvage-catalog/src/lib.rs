//! The schema model salvage plans with — tables, columns, keys, foreign keys, sequences.
//! Pure data: introspection of a database lives next to the connections (`salvage-pg`), and
//! snapshot archives (pg_dump) produce the same model from their table of contents
//! (`salvage-archive`), so planning never cares where a schema came from.

mod error;
mod model;

pub use error::{Error, Result};
pub use model::{
    Catalog, Column, ForeignKey, Identity, Key, QualifiedName, SequenceRef, Table, TableKind,
    TableShape, TypeKind,
};
