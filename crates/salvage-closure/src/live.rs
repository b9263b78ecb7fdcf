//! Which keys the live database already has.

use salvage_catalog::{Catalog, QualifiedName};
use salvage_pg::{Error as PgError, quote_ident};
use salvage_source::TextRow;
use sqlx::postgres::PgConnection;

use crate::Result;

const KEYS_PER_QUERY: usize = 100_000;

/// For each key (text values in `key_columns` order), whether a live row has it. Keys with a
/// NULL never match.
pub async fn existing_keys(
    connection: &mut PgConnection,
    catalog: &Catalog,
    table: &QualifiedName,
    key_columns: &[String],
    keys: &[TextRow],
) -> Result<Vec<bool>> {
    let mut found = vec![false; keys.len()];
    if keys.is_empty() {
        return Ok(found);
    }
    let Some(table_def) = catalog.table(table) else {
        return Ok(found);
    };
    let mut arrays = vec!["$1::int4[]".to_owned()];
    let mut aliases = vec!["i".to_owned()];
    let mut conditions = Vec::new();
    for (position, column) in key_columns.iter().enumerate() {
        let Some(column_def) = table_def.column(column) else {
            return Ok(found);
        };
        arrays.push(format!("${}::text[]", position + 2));
        aliases.push(format!("c{position}"));
        conditions.push(format!(
            "t.{} = k.c{position}::{}",
            quote_ident(column),
            column_def.type_name
        ));
    }
    // Identifiers quoted, types from the live catalog, keys bound.
    let sql = format!(
        "SELECT k.i FROM unnest({}) AS k({}) WHERE EXISTS (SELECT 1 FROM {} AS t WHERE {})",
        arrays.join(", "),
        aliases.join(", "),
        catalog.from_item(table),
        conditions.join(" AND ")
    );
    for (chunk_index, chunk) in keys.chunks(KEYS_PER_QUERY).enumerate() {
        let offset = chunk_index * KEYS_PER_QUERY;
        let indexes: Vec<i32> = (0..chunk.len() as i32).collect();
        let mut query = sqlx::query_scalar::<_, i32>(&sql).bind(indexes);
        for position in 0..key_columns.len() {
            let column: Vec<Option<String>> = chunk
                .iter()
                .map(|key| key.get(position).cloned().flatten())
                .collect();
            query = query.bind(column);
        }
        let present = query
            .fetch_all(&mut *connection)
            .await
            .map_err(PgError::query(format!("look up keys of {table} in live")))?;
        for index in present {
            found[offset + index as usize] = true;
        }
    }
    Ok(found)
}
