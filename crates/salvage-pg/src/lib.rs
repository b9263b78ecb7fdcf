//! Everything salvage needs to talk to PostgreSQL the same way on every connection: URLs that
//! can be shown without their password, connections with pinned session settings (so the text
//! forms of values never depend on a server's defaults), COPY with bound values, SQLSTATE
//! classes, and the catalog read into the schema model.

mod access;
mod compare;
mod connect;
pub mod conninfo;
mod copy;
mod error;
mod introspect;
mod passfile;
pub mod redact;
mod url;

pub use access::{
    SequenceAccess, TableAccess, TargetState, sequence_access, table_access, target_state,
};
pub use compare::comparable_by_value;
pub use connect::{
    ConnectionRole, OnFirstUse, Session, close, connect, database_identity, system_identity,
};
pub use copy::CopyQuery;
pub use error::{Error, Result, SqlState, sqlstate};
pub use introspect::introspect;
pub use redact::{Redacted, SecretText, redact};
pub use url::DatabaseUrl;
