//! Verification reads: a chunk of snapshot rows, bound as one text array per column, compared
//! with live by key in one statement — present and equal by typed value, present but
//! different, missing, or missing only because a parent it needs is absent (waiting).

use salvage_quote::quote_ident;

use crate::names::{cast_type, unnest};

/// A column of the snapshot rows compared: its position in the bound arrays, its name and
/// live type, and whether it is compared by value (else by text).
#[derive(Debug, Clone)]
pub struct Compared {
    pub position: usize,
    pub name: String,
    pub live_type: String,
    pub by_value: bool,
}

/// A guarded parent of the rows: the parent table (as a query names it) and, per column,
/// (the child column's position in the arrays, the parent column, its live type).
#[derive(Debug, Clone)]
pub struct Parent {
    pub from: String,
    pub columns: Vec<(usize, String, String)>,
}

/// `NULL parts OR expected OR EXISTS (parent)`: the row's parent is present, or is one of the
/// rows verified itself (then a missing row under it is missing too, not waiting) — a NULL
/// reference needs none, as in a foreign key. `s.cN` are the bound text columns, `s.gN` the
/// bound flags saying the parent is one of the verified rows.
#[must_use]
pub fn parent_present(number: usize, parent: &Parent) -> String {
    let nulls: Vec<String> = parent
        .columns
        .iter()
        .map(|(position, _, _)| format!("s.c{position} IS NULL"))
        .collect();
    let matches: Vec<String> = parent
        .columns
        .iter()
        .map(|(position, column, type_name)| {
            format!("p.{} = s.c{position}::{type_name}", quote_ident(column))
        })
        .collect();
    format!(
        "({} OR s.g{number} OR EXISTS (SELECT 1 FROM {} AS p WHERE {}))",
        nulls.join(" OR "),
        parent.from,
        matches.join(" AND ")
    )
}

/// The comparison of `width` bound columns (`$2…`; `$1` is each row's tenant, `int4[]`; then
/// one `bool[]` per parent, see [`parent_present`]) with live's `from` by `key`: per tenant,
/// counts and up to three example keys.
#[must_use]
pub fn compare_chunk(
    from: &str,
    width: usize,
    key: &[Compared],
    written: &[Compared],
    parents: &[Parent],
) -> String {
    let arrays: Vec<String> = std::iter::once("$1::int4[]".to_owned())
        .chain((2..=width + 1).map(|n| format!("${n}::text[]")))
        .chain((0..parents.len()).map(|n| format!("${}::bool[]", width + 2 + n)))
        .collect();
    let aliases: Vec<String> = std::iter::once("tenant".to_owned())
        .chain((0..width).map(|n| format!("c{n}")))
        .chain((0..parents.len()).map(|n| format!("g{n}")))
        .collect();
    let join: Vec<String> = key
        .iter()
        .map(|column| {
            format!(
                "t.{} = s.c{}::{}",
                quote_ident(&column.name),
                column.position,
                column.live_type
            )
        })
        .collect();
    let key_text: Vec<String> = key
        .iter()
        .map(|column| format!("s.c{}", column.position))
        .collect();
    let (mut live_side, mut snapshot_side) = (Vec::new(), Vec::new());
    for column in written {
        if column.by_value {
            live_side.push(format!("t.{}", quote_ident(&column.name)));
            snapshot_side.push(format!(
                "s.c{}::{}",
                column.position,
                cast_type(&column.live_type)
            ));
        } else {
            live_side.push(format!("t.{}::text", quote_ident(&column.name)));
            snapshot_side.push(format!("s.c{}", column.position));
        }
    }
    let guards = if parents.is_empty() {
        "true".to_owned()
    } else {
        parents
            .iter()
            .enumerate()
            .map(|(number, parent)| parent_present(number, parent))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let absent = format!("t.{} IS NULL", quote_ident(&key[0].name));
    let equal = format!(
        "ROW({}) IS NOT DISTINCT FROM ROW({})",
        live_side.join(", "),
        snapshot_side.join(", ")
    );
    let key_text = format!("concat_ws(', ', {})", key_text.join(", "));
    // Examples are the first rows of the chunk in the order given (WITH ORDINALITY), so the
    // same rows give the same examples. Each row's facts are computed once, in a subquery the planner may not inline
    // (OFFSET 0): the typed comparison casts every column, and written into each FILTER it
    // would run once per FILTER. Equality is worked out only for rows live has, the guards
    // only for rows it lacks, the key text only for rows the examples may show.
    format!(
        "SELECT c.tenant, \
                count(*) FILTER (WHERE NOT c.found AND c.guarded)::int8 AS missing, \
                count(*) FILTER (WHERE c.found AND c.equal)::int8 AS equal, \
                count(*) FILTER (WHERE c.found AND NOT c.equal)::int8 AS different, \
                count(*) FILTER (WHERE NOT c.found AND NOT c.guarded)::int8 AS waiting, \
                (array_agg(c.key ORDER BY c.n) FILTER (WHERE NOT c.found AND c.guarded))[1:3] AS missing_examples, \
                (array_agg(c.key ORDER BY c.n) FILTER (WHERE c.found AND NOT c.equal))[1:3] AS different_examples \
         FROM (SELECT s.tenant, s.n, NOT ({absent}) AS found, \
                      CASE WHEN NOT ({absent}) THEN {equal} END AS equal, \
                      CASE WHEN {absent} THEN {guards} END AS guarded, \
                      CASE WHEN {absent} OR NOT ({equal}) THEN {key_text} END AS key \
               FROM {} WITH ORDINALITY AS s({}, n) LEFT JOIN {from} AS t ON {} OFFSET 0) AS c \
         GROUP BY c.tenant",
        unnest(&arrays),
        aliases.join(", "),
        join.join(" AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::{Compared, Parent, compare_chunk, parent_present};

    #[test]
    fn rows_are_compared_by_key_and_typed_value() {
        let id = Compared {
            position: 0,
            name: "id".into(),
            live_type: "bigint".into(),
            by_value: true,
        };
        let meta = Compared {
            position: 2,
            name: "meta".into(),
            live_type: "json".into(),
            by_value: false,
        };
        let sql = compare_chunk(
            "ONLY \"public\".\"t\"",
            3,
            std::slice::from_ref(&id),
            &[id.clone(), meta],
            &[],
        );
        assert!(
            sql.contains(
                "pg_catalog.unnest($4::text[])) WITH ORDINALITY AS s(tenant, c0, c1, c2, n)"
            ),
            "{sql}"
        );
        assert!(
            sql.contains(
                "ROW(t.\"id\", t.\"meta\"::text) IS NOT DISTINCT FROM ROW(s.c0::bigint, s.c2)"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("LEFT JOIN ONLY \"public\".\"t\" AS t ON t.\"id\" = s.c0::bigint"),
            "{sql}"
        );
        assert_eq!(
            parent_present(
                0,
                &Parent {
                    from: "ONLY \"public\".\"p\"".into(),
                    columns: vec![(1, "id".into(), "bigint".into())],
                }
            ),
            "(s.c1 IS NULL OR s.g0 OR EXISTS (SELECT 1 FROM ONLY \"public\".\"p\" AS p WHERE p.\"id\" = s.c1::bigint))"
        );
    }
}
