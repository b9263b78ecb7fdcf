//! Membership reads: the rows of a table whose relation to a parent leads to a row already
//! known to belong to a chosen tenant — `(t0.a) IN (<the parent keys, bound>)` — one relation
//! at a time. A table with several relations is read once per relation, each read leaving
//! out the rows an earlier relation already matched, so every row comes back exactly once and
//! each read can use an index on its own columns: the work grows with the relations of the
//! schema, never with the number of chains through it.

use salvage_quote::quote_ident;

use crate::names::{columns_of, in_key_set};

/// A relation of the rows read to their parents, matched against bound parent keys.
#[derive(Debug, Clone)]
pub struct Match {
    /// The child columns, in the order of the arrays.
    pub columns: Vec<String>,
    /// One bound array per column, cast to the column's type (see [`crate::bound_array`]).
    pub arrays: Vec<String>,
    /// Only rows whose `column` (as text) equals the bound `value` follow the relation
    /// (polymorphic references).
    pub condition: Option<(String, String)>,
}

impl Match {
    /// The condition on the row aliased `alias`.
    #[must_use]
    pub fn on(&self, alias: &str) -> String {
        let keys = in_key_set(alias, &self.columns, &self.arrays);
        match &self.condition {
            Some((column, value)) => {
                format!(
                    "({keys} AND {alias}.{}::text = {value})",
                    quote_ident(column)
                )
            }
            None => keys,
        }
    }
}

/// `SELECT <columns> FROM <from> AS t0 WHERE <driving> AND NOT coalesce(<earlier>, false)…`:
/// the rows `driving` matches that none of `excluded` does (a NULL reference matches
/// nothing).
#[must_use]
pub fn rows_matching(
    from: &str,
    columns: &[String],
    driving: &Match,
    excluded: &[Match],
) -> String {
    let mut filter = driving.on("t0");
    for earlier in excluded {
        filter.push_str(&format!(" AND NOT coalesce({}, false)", earlier.on("t0")));
    }
    format!(
        "SELECT {} FROM {from} AS t0 WHERE {filter}",
        columns_of("t0", columns)
    )
}

/// `SELECT <columns> FROM <from> AS t0 WHERE <m1> OR <m2>…`: the rows any of `matches`
/// matches, each once.
#[must_use]
pub fn rows_matching_any(from: &str, columns: &[String], matches: &[Match]) -> String {
    let filter: Vec<String> = matches.iter().map(|matched| matched.on("t0")).collect();
    format!(
        "SELECT {} FROM {from} AS t0 WHERE {}",
        columns_of("t0", columns),
        if filter.is_empty() {
            "false".to_owned()
        } else {
            filter.join(" OR ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::{Match, rows_matching, rows_matching_any};

    #[test]
    fn any_of_several_relations() {
        let one = Match {
            columns: vec!["a".into()],
            arrays: vec!["A".into()],
            condition: None,
        };
        assert_eq!(
            rows_matching_any("ONLY \"public\".\"t\"", &["k".into()], &[one.clone(), one]),
            "SELECT t0.\"k\" FROM ONLY \"public\".\"t\" AS t0 WHERE t0.\"a\" IN (SELECT pg_catalog.unnest(A)) \
             OR t0.\"a\" IN (SELECT pg_catalog.unnest(A))"
        );
        assert!(rows_matching_any("t", &["k".into()], &[]).ends_with("WHERE false"));
    }

    #[test]
    fn each_relation_reads_only_what_earlier_ones_did_not() {
        let by_site = Match {
            columns: vec!["site_id".into()],
            arrays: vec!["S::int8[]".into()],
            condition: None,
        };
        let by_owner = Match {
            columns: vec!["owner_id".into()],
            arrays: vec!["O::int8[]".into()],
            condition: Some(("owner_type".into(), "V".into())),
        };
        assert_eq!(
            rows_matching(
                "ONLY \"public\".\"comments\"",
                &["id".into(), "body".into()],
                &by_owner,
                &[by_site]
            ),
            "SELECT t0.\"id\", t0.\"body\" FROM ONLY \"public\".\"comments\" AS t0 \
             WHERE (t0.\"owner_id\" IN (SELECT pg_catalog.unnest(O::int8[])) AND t0.\"owner_type\"::text = V) \
             AND NOT coalesce(t0.\"site_id\" IN (SELECT pg_catalog.unnest(S::int8[])), false)"
        );
    }
}
