//! Whether values of a type can be compared by value.
//!
//! A type compares by value when PostgreSQL can tell two of its values equal the way it does
//! for DISTINCT and GROUP BY — through a default btree or hash operator class (for arrays and
//! composite types: through their elements' and fields'). `box` has an `=` that compares
//! areas and json has none: those compare by their text, which pinned session settings make
//! stable.

use sqlx::postgres::PgConnection;

use crate::{Error, Result, SqlState};

/// Asks the server, with a query that only plans when such an equality exists. `type_name`
/// is a catalog `format_type` output. Only the server's "no equality operator" answer means
/// "compare by text"; any other failure (a dropped connection) is an error.
pub async fn comparable_by_value(connection: &mut PgConnection, type_name: &str) -> Result<bool> {
    let probe = format!("SELECT DISTINCT v FROM (SELECT NULL::{type_name} AS v) AS probe");
    match sqlx::query(&probe).execute(connection).await {
        Ok(_) => Ok(true),
        Err(error) if crate::sqlstate(&error) == Some(SqlState::UndefinedFunction) => Ok(false),
        Err(error) => Err(Error::query(format!(
            "ask whether {type_name} compares by value"
        ))(error)),
    }
}
