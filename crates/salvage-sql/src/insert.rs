//! Writing rows into live tables: `COPY` straight into the table for rows live does not have,
//! and `INSERT … SELECT FROM unnest(<bound arrays>) ON CONFLICT (key) DO NOTHING` for rows
//! another transaction may add first (shared rows, rows reaching several tenants) and for
//! tables inserted together in one statement (a cycle). No temporary tables: the rows travel
//! as one text array per column, cast to the live column's type.

use salvage_catalog::QualifiedName;
use salvage_quote::quote_ident;

use crate::names::{array_parameter, cast_type, column_list, unnest};

/// `COPY "s"."t" ("a", "b") FROM STDIN`.
#[must_use]
pub fn copy_in(table: &QualifiedName, columns: &[String]) -> String {
    format!(
        "COPY {} ({}) FROM STDIN",
        table.quoted(),
        column_list(columns)
    )
}

/// A column written from a bound text array.
#[derive(Debug, Clone)]
pub struct Written {
    pub name: String,
    /// The live column's type the text is cast to.
    pub live_type: String,
}

/// `INSERT INTO t (cols) [OVERRIDING SYSTEM VALUE] SELECT a.c0::type… FROM unnest($n…) …
/// ORDER BY <key> ON CONFLICT (<key>) DO NOTHING`, the columns bound as text arrays from
/// parameter `$first` on. Ordered by key so concurrent tenants inserting the same rows take
/// their locks in the same order (the second finds the row and skips it, no deadlock).
#[must_use]
pub fn insert_from_arrays(
    table: &QualifiedName,
    columns: &[Written],
    first: usize,
    key: Option<&[String]>,
    overriding: bool,
) -> String {
    let arrays: Vec<String> = (0..columns.len())
        .map(|n| array_parameter(first + n, "text"))
        .collect();
    let aliases: Vec<String> = (0..columns.len()).map(|n| format!("c{n}")).collect();
    let casts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(n, column)| format!("a.c{n}::{}", cast_type(&column.live_type)))
        .collect();
    let names: Vec<String> = columns.iter().map(|column| column.name.clone()).collect();
    let mut sql = format!(
        "INSERT INTO {} AS t ({})",
        table.quoted(),
        column_list(&names)
    );
    if overriding {
        sql.push_str(" OVERRIDING SYSTEM VALUE");
    }
    sql.push_str(&format!(
        " SELECT {} FROM {} AS a({})",
        casts.join(", "),
        unnest(&arrays),
        aliases.join(", ")
    ));
    if let Some(key) = key {
        let places: Vec<String> = key
            .iter()
            .filter_map(|column| names.iter().position(|name| name == column))
            .map(|position| (position + 1).to_string())
            .collect();
        sql.push_str(&format!(
            " ORDER BY {} ON CONFLICT ({}) DO NOTHING",
            places.join(", "),
            key.iter()
                .map(|column| quote_ident(column))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    sql
}

/// Several tables' inserts in one statement (a cycle): every foreign key is checked at the
/// statement's end, when every row is there. Returns one count per table, in order.
#[must_use]
pub fn insert_together(inserts: &[String]) -> String {
    let ctes: Vec<String> = inserts
        .iter()
        .enumerate()
        .map(|(index, insert)| format!("i{index} AS ({insert} RETURNING 1)"))
        .collect();
    let counts: Vec<String> = (0..inserts.len())
        .map(|index| format!("(SELECT count(*) FROM i{index})::int8"))
        .collect();
    format!(
        "WITH {} SELECT ARRAY[{}]",
        ctes.join(", "),
        counts.join(", ")
    )
}

/// The live row holding one of the bound rows' values of a unique key (`$1…`, text arrays
/// in `unique` order, cast to `types`), other than a row with the bound row's own key:
/// `(values, live row's key)` as text. `live_key` empty: the holder is named by its ctid.
#[must_use]
pub fn unique_holder(
    from: &str,
    unique: &[String],
    types: &[String],
    own_key: &[String],
    live_key: &[String],
) -> String {
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(n, type_name)| array_parameter(n + 1, type_name))
        .collect();
    let aliases: Vec<String> = (0..unique.len()).map(|n| format!("c{n}")).collect();
    let matches: Vec<String> = unique
        .iter()
        .enumerate()
        .map(|(n, column)| format!("t.{} = s.c{n}", quote_ident(column)))
        .collect();
    let values: Vec<String> = (0..unique.len()).map(|n| format!("s.c{n}::text")).collect();
    let holder = if live_key.is_empty() {
        "t.ctid::text".to_owned()
    } else {
        live_key
            .iter()
            .map(|column| format!("t.{}::text", quote_ident(column)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // A row with the bound row's own key is the row itself (already restored), not a holder.
    let own: Vec<String> = own_key
        .iter()
        .filter_map(|column| unique.iter().position(|u| u == column).map(|n| (column, n)))
        .map(|(column, n)| format!("t.{} IS DISTINCT FROM s.c{n}", quote_ident(column)))
        .collect();
    let mut filter = matches.join(" AND ");
    if own.len() == own_key.len() && !own.is_empty() {
        filter.push_str(&format!(" AND ({})", own.join(" OR ")));
    }
    format!(
        "SELECT concat_ws(', ', {}), concat_ws(', ', {holder}) \
         FROM {} AS s({}) JOIN {from} AS t ON {filter} LIMIT 1",
        values.join(", "),
        unnest(&arrays),
        aliases.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use salvage_catalog::QualifiedName;

    use super::{Written, copy_in, insert_from_arrays, insert_together};

    fn written(name: &str, live_type: &str) -> Written {
        Written {
            name: name.into(),
            live_type: live_type.into(),
        }
    }

    #[test]
    fn rows_are_inserted_from_typed_arrays_in_key_order() {
        let issues = QualifiedName::new("public", "issues");
        assert_eq!(
            insert_from_arrays(
                &issues,
                &[written("id", "bigint"), written("title", "text")],
                3,
                Some(&["id".into()]),
                true
            ),
            "INSERT INTO \"public\".\"issues\" AS t (\"id\", \"title\") OVERRIDING SYSTEM VALUE \
             SELECT a.c0::bigint, a.c1::text FROM ROWS FROM (pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])) AS a(c0, c1) \
             ORDER BY 1 ON CONFLICT (\"id\") DO NOTHING"
        );
        assert_eq!(
            copy_in(&issues, &["id".into(), "title".into()]),
            "COPY \"public\".\"issues\" (\"id\", \"title\") FROM STDIN"
        );
        assert_eq!(
            insert_together(&["INSERT A".into(), "INSERT B".into()]),
            "WITH i0 AS (INSERT A RETURNING 1), i1 AS (INSERT B RETURNING 1) \
             SELECT ARRAY[(SELECT count(*) FROM i0)::int8, (SELECT count(*) FROM i1)::int8]"
        );
    }
}
