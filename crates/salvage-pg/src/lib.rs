//! Everything salvage needs to talk to PostgreSQL the same way on every connection: URLs that
//! can be shown without their password, connections with pinned session settings (so the text
//! forms of values never depend on a server's defaults), quoting, and SQLSTATE classes.

mod compare;
mod connect;
mod copy;
mod error;
mod quote;
mod url;

pub use compare::comparable_by_value;
pub use connect::{ConnectionRole, Session, close, connect, database_identity};
pub use copy::{Binder, CopyQuery, Params};
pub use error::{Error, Result, SqlState, sqlstate};
pub use quote::{quote_ident, quote_literal, text_array_literal};
pub use url::DatabaseUrl;
