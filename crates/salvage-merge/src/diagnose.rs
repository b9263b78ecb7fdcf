//! After a unique violation rolled a tenant back, which live row holds the value: the
//! tenant's rows of the table are bound as arrays and joined with the live table on the
//! violated key, in a read of its own. Best effort: the original error stands if this fails.

use salvage_catalog::Catalog;
use salvage_closure::RestorePlan;
use salvage_closure::guards::positions;
use salvage_sql::from_item;
use salvage_sql::insert::unique_holder;
use sqlx::postgres::PgConnection;

use crate::TenantError;
use crate::rows::{Shape, planned_rows};

/// `error` with the live row holding the value, when it is a unique conflict and the row
/// can be found.
pub async fn holder(
    error: TenantError,
    plan: &RestorePlan,
    number: usize,
    live: &Catalog,
    connection: &mut PgConnection,
) -> TenantError {
    let TenantError::UniqueConflict {
        table,
        constraint,
        detail,
        holder: None,
    } = error
    else {
        return error;
    };
    let found = find(plan, number, live, connection, &table, &constraint)
        .await
        .ok()
        .flatten();
    TenantError::UniqueConflict {
        table,
        constraint,
        detail,
        holder: found,
    }
}

async fn find(
    plan: &RestorePlan,
    number: usize,
    live: &Catalog,
    connection: &mut PgConnection,
    name: &salvage_catalog::QualifiedName,
    constraint: &str,
) -> Result<Option<String>, TenantError> {
    let (Some(index), Some(live_table)) = (plan.schema.table_index(name), live.table(name)) else {
        return Ok(None);
    };
    let table = &plan.schema.tables[index];
    let Some(unique) = live_table
        .unique_keys
        .iter()
        .chain(&live_table.primary_key)
        .find(|key| key.name == constraint)
    else {
        return Ok(None);
    };
    let Some(kept) = plan.selected.table(name) else {
        return Ok(None);
    };
    let shape = Shape::new(table, kept.columns())?;
    let rows = planned_rows(plan, index, number, kept, &shape)?;
    let places = positions(table, kept.columns(), &unique.columns)?;
    let mut arrays: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(rows.len()); places.len()];
    for row in &rows {
        let fields: Vec<&[u8]> = salvage_copy::fields(&row.row).collect();
        for (array, &place) in arrays.iter_mut().zip(&places) {
            array.push(
                fields
                    .get(place)
                    .and_then(|field| salvage_copy::decode_text(field)),
            );
        }
    }
    let types: Vec<String> = unique
        .columns
        .iter()
        .map(|column| {
            live_table
                .column(column)
                .map(|column| column.type_name.clone())
                .ok_or_else(|| {
                    TenantError::Inconsistent(format!("live's {name} has no column {column}"))
                })
        })
        .collect::<Result<_, _>>()?;
    let live_key: Vec<String> = live_table
        .identity_key()
        .map(|key| key.columns.clone())
        .unwrap_or_default();
    let own_key: Vec<String> = table
        .key
        .iter()
        .flat_map(|key| key.columns.clone())
        .collect();
    let statement = unique_holder(
        &from_item(live, name),
        &unique.columns,
        &types,
        &own_key,
        &live_key,
    );
    let mut query = sqlx::query_as::<_, (String, String)>(&statement);
    for array in arrays {
        query = query.bind(array);
    }
    let row = query
        .fetch_optional(&mut *connection)
        .await
        .map_err(|source| TenantError::Statement {
            table: name.clone(),
            source: salvage_pg::Error::query("find the live row holding the key")(source),
        })?;
    Ok(row.map(|(values, holder)| {
        let key_names = if live_key.is_empty() {
            "ctid".to_owned()
        } else {
            live_key.join(", ")
        };
        format!(
            "({})=({values}) is held in live by the {name} row ({key_names})=({holder})",
            unique.columns.join(", ")
        )
    }))
}
