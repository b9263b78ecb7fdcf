//! Tenant IDs as typed by a user, checked against the root key's type and brought to the
//! key's canonical text form (`007` → `7`, upper-case UUIDs → lower case).

use salvage_pg::Error as PgError;
use salvage_plan::SchemaPlan;
use sqlx::postgres::PgConnection;

use crate::{Error, Result};

/// Returns the canonical form of every given ID, in order. IDs that do not parse as the
/// root key's type are all reported together.
pub async fn canonical_ids(
    connection: &mut PgConnection,
    plan: &SchemaPlan,
    given: &[String],
) -> Result<Vec<String>> {
    if given.is_empty() {
        return Err(Error::NoTenants);
    }
    let key_type = &plan.root.key_type;
    let all = salvage_sql::ids::canonical_all(key_type);
    let result = sqlx::query_scalar::<_, String>(&all)
        .bind(given)
        .fetch_all(&mut *connection)
        .await;
    match result {
        Ok(canonical) => Ok(canonical),
        Err(error) if salvage_pg::sqlstate(&error).is_some_and(|state| state.is_bad_value()) => {
            let one = salvage_sql::ids::canonical_one(key_type);
            let mut bad = Vec::new();
            for id in given {
                let checked = sqlx::query_scalar::<_, String>(&one)
                    .bind(id)
                    .fetch_one(&mut *connection)
                    .await;
                match checked {
                    Ok(_) => {}
                    Err(error)
                        if salvage_pg::sqlstate(&error)
                            .is_some_and(|state| state.is_bad_value()) =>
                    {
                        bad.push(id.clone());
                    }
                    Err(error) => return Err(PgError::query("check a tenant ID")(error).into()),
                }
            }
            Err(Error::BadIds {
                ids: bad,
                key_type: key_type.clone(),
                table: plan.root.table.clone(),
                column: plan.root.key_column.clone(),
            })
        }
        Err(error) => Err(PgError::query("check the tenant IDs")(error).into()),
    }
}
