//! Rows and keys looked up by value: a table's rows whose key is one of a set (for COPY), and
//! which of a set of keys a table holds (an index probe per key).

use crate::names::{array_parameter, columns_of, in_key_set, unnest};
use salvage_quote::quote_ident;

/// `SELECT <columns> FROM <from> AS t0 WHERE (<key columns>) IN (<arrays>)`. A key with a NULL
/// never matches, as in a foreign key.
#[must_use]
pub fn rows_by_keys(
    from: &str,
    columns: &[String],
    key_columns: &[String],
    arrays: &[String],
) -> String {
    format!(
        "SELECT {} FROM {from} AS t0 WHERE {}",
        columns_of("t0", columns),
        in_key_set("t0", key_columns, arrays)
    )
}

/// Which of the keys bound as `$1…$n` (text arrays, one per key column, cast to `types`) a
/// row of `from` holds: the positions (from 1) of those it holds.
///
/// With an index on the columns (`indexed`), each key is probed on its own — a `LATERAL`
/// subquery with `LIMIT 1` cannot be turned into a hash join over the whole table, which the
/// planner otherwise picks for large key sets (four times slower on a 770,000-row table, and
/// growing with it). Without one, a semi-join reads the table once.
#[must_use]
pub fn present_keys(from: &str, columns: &[String], types: &[String], indexed: bool) -> String {
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(index, type_name)| array_parameter(index + 1, type_name))
        .collect();
    let aliases: Vec<String> = (0..columns.len())
        .map(|index| format!("c{index}"))
        .collect();
    let matches: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| format!("t.{} = k.c{index}", quote_ident(column)))
        .collect();
    let keys = format!(
        "{} WITH ORDINALITY AS k({}, n)",
        unnest(&arrays),
        aliases.join(", ")
    );
    if indexed {
        format!(
            "SELECT k.n::int4 FROM {keys} CROSS JOIN LATERAL \
             (SELECT 1 FROM {from} AS t WHERE {} LIMIT 1) AS hit",
            matches.join(" AND ")
        )
    } else {
        format!(
            "SELECT k.n::int4 FROM {keys} WHERE EXISTS (SELECT 1 FROM {from} AS t WHERE {})",
            matches.join(" AND ")
        )
    }
}

/// Which live rows of `from` already hold another unique key of the rows bound as `$1…$n`
/// (text arrays, one per column of `columns`, cast to its type), other than the rows
/// themselves: for each bound row (by its position, from 1) and each of `unique_keys`
/// (indexes into `columns`, numbered from 0 in the answer) that a live row whose `row_key`
/// differs holds, the live row's `row_key` as text. One `LATERAL` arm per unique key, each an
/// index probe (`LIMIT 1`) on that key's index; a NULL in a key never conflicts.
#[must_use]
pub fn unique_key_holders(
    from: &str,
    columns: &[(String, String)],
    row_key: &[usize],
    unique_keys: &[Vec<usize>],
) -> String {
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(index, (_, type_name))| array_parameter(index + 1, type_name))
        .collect();
    let aliases: Vec<String> = (0..columns.len())
        .map(|index| format!("c{index}"))
        .collect();
    let column = |index: usize| quote_ident(&columns[index].0);
    let holder: Vec<String> = row_key
        .iter()
        .map(|&index| format!("t.{}::text", column(index)))
        .collect();
    let own = format!(
        "({}) IS DISTINCT FROM ({})",
        row_key
            .iter()
            .map(|&index| format!("t.{}", column(index)))
            .collect::<Vec<_>>()
            .join(", "),
        row_key
            .iter()
            .map(|&index| format!("k.c{index}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let arms: Vec<String> = unique_keys
        .iter()
        .enumerate()
        .map(|(number, key)| {
            let matches: Vec<String> = key
                .iter()
                .map(|&index| format!("t.{} = k.c{index}", column(index)))
                .collect();
            format!(
                "(SELECT {number}::int4 AS key, ARRAY[{}] AS holder FROM {from} AS t \
                 WHERE {} AND {own} LIMIT 1)",
                holder.join(", "),
                matches.join(" AND ")
            )
        })
        .collect();
    format!(
        "SELECT k.n::int4, h.key, h.holder FROM {} WITH ORDINALITY AS k({}, n) \
         CROSS JOIN LATERAL ({}) AS h",
        unnest(&arrays),
        aliases.join(", "),
        arms.join(" UNION ALL ")
    )
}

#[cfg(test)]
mod tests {
    use super::{present_keys, rows_by_keys, unique_key_holders};

    #[test]
    fn other_unique_keys_are_probed_one_arm_each_excluding_the_row_itself() {
        assert_eq!(
            unique_key_holders(
                "ONLY \"public\".\"sites\"",
                &[
                    ("id".into(), "bigint".into()),
                    ("slug".into(), "text".into()),
                    ("domain".into(), "text".into())
                ],
                &[0],
                &[vec![1], vec![2]]
            ),
            "SELECT k.n::int4, h.key, h.holder FROM ROWS FROM (pg_catalog.unnest($1::text[]::bigint[]), \
             pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) WITH ORDINALITY AS k(c0, c1, c2, n) \
             CROSS JOIN LATERAL (\
             (SELECT 0::int4 AS key, ARRAY[t.\"id\"::text] AS holder FROM ONLY \"public\".\"sites\" AS t \
             WHERE t.\"slug\" = k.c1 AND (t.\"id\") IS DISTINCT FROM (k.c0) LIMIT 1) UNION ALL \
             (SELECT 1::int4 AS key, ARRAY[t.\"id\"::text] AS holder FROM ONLY \"public\".\"sites\" AS t \
             WHERE t.\"domain\" = k.c2 AND (t.\"id\") IS DISTINCT FROM (k.c0) LIMIT 1)) AS h"
        );
    }

    #[test]
    fn keys_are_probed_one_by_one_when_an_index_can_answer() {
        assert_eq!(
            present_keys(
                "ONLY \"public\".\"issues\"",
                &["id".into()],
                &["bigint".into()],
                true
            ),
            "SELECT k.n::int4 FROM pg_catalog.unnest($1::text[]::bigint[]) WITH ORDINALITY AS k(c0, n) \
             CROSS JOIN LATERAL (SELECT 1 FROM ONLY \"public\".\"issues\" AS t WHERE t.\"id\" = k.c0 LIMIT 1) AS hit"
        );
        assert_eq!(
            present_keys(
                "ONLY \"public\".\"projects\"",
                &["site_id".into(), "project_no".into()],
                &["bigint".into(), "integer".into()],
                false
            ),
            "SELECT k.n::int4 FROM ROWS FROM (pg_catalog.unnest($1::text[]::bigint[]), pg_catalog.unnest($2::text[]::integer[])) WITH ORDINALITY AS k(c0, c1, n) \
             WHERE EXISTS (SELECT 1 FROM ONLY \"public\".\"projects\" AS t WHERE t.\"site_id\" = k.c0 AND t.\"project_no\" = k.c1)"
        );
    }

    #[test]
    fn composite_keys_join_a_typed_key_set() {
        assert_eq!(
            rows_by_keys(
                "ONLY \"public\".\"projects\"",
                &["name".into()],
                &["site_id".into(), "project_no".into()],
                &["A".into(), "B".into()]
            ),
            "SELECT t0.\"name\" FROM ONLY \"public\".\"projects\" AS t0 WHERE (t0.\"site_id\" IS NOT NULL \
             AND t0.\"project_no\" IS NOT NULL AND (t0.\"site_id\", t0.\"project_no\") IN \
             (SELECT * FROM ROWS FROM (pg_catalog.unnest(A), pg_catalog.unnest(B))))"
        );
    }
}
