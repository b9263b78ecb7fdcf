//! Whether values of a type can be compared by value.
//!
//! A type compares by value when PostgreSQL can tell two of its values equal the way it does
//! for DISTINCT and GROUP BY — through a default btree or hash operator class (for arrays and
//! composite types: through their elements' and fields'). `box` has an `=` that compares
//! areas and json has none: those compare by their text, which pinned session settings make
//! stable.

use sqlx::postgres::PgConnection;

/// Asks the server, with a query that only plans when such an equality exists. `type_name`
/// is a catalog `format_type` output.
pub async fn comparable_by_value(connection: &mut PgConnection, type_name: &str) -> bool {
    let probe = format!("SELECT DISTINCT v FROM (SELECT NULL::{type_name} AS v) AS probe");
    sqlx::query(&probe).execute(connection).await.is_ok()
}
