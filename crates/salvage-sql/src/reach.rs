//! Membership reads: the rows of a table whose relation to a parent leads to a row already
//! known to belong to a chosen tenant — `(t0.a) IN (<the parent keys, bound>)` — one relation
//! at a time. A table with several relations is read once per relation, each read leaving
//! out the rows an earlier relation already matched, so every row comes back exactly once and
//! each read can use an index on its own columns: the work grows with the relations of the
//! schema, never with the number of chains through it.

use salvage_quote::quote_ident;

use crate::names::{columns_of, in_key_set, unnest};

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
    /// How many keys are bound.
    pub keys: usize,
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

/// How the driving keys find their rows.
///
/// The planner cannot know how many distinct values a bound array holds: it assumes 200.
/// Tested with `IN`, the keys are made distinct first and an index is probed once per key —
/// six seconds for 276,000 keys; joined, the hash join hashes the table instead of the keys,
/// which it believes nearly all alike. So the caller, who knows how many keys there are and
/// roughly how many rows the parent table has, chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drive {
    /// Few keys: joined with the table, each looked up through an index on the columns.
    Probe,
    /// Few keys and an index leading with the relation's columns: each key looked up through
    /// it, forced — a `LATERAL` subquery the planner cannot flatten. Joined, a key set of a
    /// few percent of the parent still got the table hashed whole (3,589 issue keys: a hash
    /// of all 692,678 comments, 584 ms; probed, 54 ms).
    Index,
    /// Many keys (a good part of the parent table): the table read once, each row tested
    /// against the keys hashed once (a hashed subplan) — half the time of either join at
    /// 40% of the table.
    Scan,
}

/// Whether `keys` of a parent table of about `parent_rows` rows are better probed or
/// scanned for: beyond a tenth of the parent's rows, a scan; else probes, forced through the
/// index when the rows read have one leading with the relation's columns (`indexed`).
#[must_use]
pub fn drive_for(keys: usize, parent_rows: i64, indexed: bool) -> Drive {
    if parent_rows > 0 && keys as i64 * 10 > parent_rows {
        Drive::Scan
    } else if indexed {
        Drive::Index
    } else {
        Drive::Probe
    }
}

/// The rows `driving` matches that none of `excluded` does (a NULL reference matches
/// nothing), `SELECT <columns> FROM <keys> AS k JOIN <from> AS t0 ON … WHERE NOT coalesce(
/// <earlier>, false)…` or, to scan, `… FROM <from> AS t0 WHERE coalesce(<driving>, false)
/// AND …`. The keys must be distinct (they come from a map's keys), or a probe would give
/// rows twice.
#[must_use]
pub fn rows_matching(
    from: &str,
    columns: &[String],
    driving: &Match,
    excluded: &[Match],
    drive: Drive,
) -> String {
    if drive == Drive::Scan {
        let mut sql = format!(
            "SELECT {} FROM {from} AS t0 WHERE coalesce({}, false)",
            columns_of("t0", columns),
            driving.on("t0")
        );
        for earlier in excluded {
            sql.push_str(&format!(" AND NOT coalesce({}, false)", earlier.on("t0")));
        }
        return sql;
    }
    let aliases: Vec<String> = (0..driving.columns.len())
        .map(|n| format!("c{n}"))
        .collect();
    let mut on: Vec<String> = driving
        .columns
        .iter()
        .enumerate()
        .map(|(n, column)| format!("t0.{} = k.c{n}", quote_ident(column)))
        .collect();
    if let Some((column, value)) = &driving.condition {
        on.push(format!("t0.{}::text = {value}", quote_ident(column)));
    }
    let not_earlier: Vec<String> = excluded
        .iter()
        .map(|earlier| format!("NOT coalesce({}, false)", earlier.on("t0")))
        .collect();
    let selected = columns_of("t0", columns);
    let keys = format!("{} AS k({})", unnest(&driving.arrays), aliases.join(", "));
    if drive == Drive::Index {
        on.extend(not_earlier);
        return format!(
            "SELECT {selected} FROM {keys} CROSS JOIN LATERAL (SELECT {selected} FROM {from} AS t0 \
             WHERE {} OFFSET 0) AS t0",
            on.join(" AND ")
        );
    }
    let mut sql = format!(
        "SELECT {selected} FROM {keys} JOIN {from} AS t0 ON {}",
        on.join(" AND ")
    );
    if !not_earlier.is_empty() {
        sql.push_str(&format!(" WHERE {}", not_earlier.join(" AND ")));
    }
    sql
}

/// `SELECT <columns> FROM <from> AS t0`: every row, for a reader that works out on its own
/// which rows belong to the tenants (every tenant there is, say).
#[must_use]
pub fn whole_table(from: &str, columns: &[String]) -> String {
    format!("SELECT {} FROM {from} AS t0", columns_of("t0", columns))
}

/// `SELECT <columns> FROM <from> AS t0 WHERE <m1> OR <m2>…`: the rows any of `matches`
/// matches, each once.
#[must_use]
pub fn rows_matching_any(
    from: &str,
    columns: &[String],
    matches: &[Match],
    drive: Drive,
) -> String {
    if let [one] = matches {
        return rows_matching(from, columns, one, &[], drive);
    }
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
    use super::{Drive, Match, drive_for, rows_matching, rows_matching_any, whole_table};

    #[test]
    fn any_of_several_relations() {
        let one = Match {
            columns: vec!["a".into()],
            arrays: vec!["A".into()],
            condition: None,
            keys: 1,
        };
        assert!(
            rows_matching_any("t", &["k".into()], std::slice::from_ref(&one), Drive::Probe)
                .starts_with("SELECT t0.\"k\" FROM pg_catalog.unnest(A) AS k(c0) JOIN t AS t0")
        );
        assert_eq!(
            rows_matching_any(
                "ONLY \"public\".\"t\"",
                &["k".into()],
                &[one.clone(), one],
                Drive::Scan
            ),
            "SELECT t0.\"k\" FROM ONLY \"public\".\"t\" AS t0 WHERE t0.\"a\" IN (SELECT pg_catalog.unnest(A)) \
             OR t0.\"a\" IN (SELECT pg_catalog.unnest(A))"
        );
        assert!(rows_matching_any("t", &["k".into()], &[], Drive::Scan).ends_with("WHERE false"));
    }

    #[test]
    fn whole_tables_are_read_without_a_filter() {
        assert_eq!(
            whole_table("ONLY \"public\".\"t\"", &["id".into(), "site id".into()]),
            "SELECT t0.\"id\", t0.\"site id\" FROM ONLY \"public\".\"t\" AS t0"
        );
    }

    #[test]
    fn each_relation_reads_only_what_earlier_ones_did_not() {
        let by_site = Match {
            columns: vec!["site_id".into()],
            arrays: vec!["S::int8[]".into()],
            condition: None,
            keys: 10,
        };
        let by_owner = Match {
            columns: vec!["owner_id".into()],
            arrays: vec!["O::int8[]".into()],
            condition: Some(("owner_type".into(), "V".into())),
            keys: 10,
        };
        assert_eq!(
            rows_matching(
                "ONLY \"public\".\"comments\"",
                &["id".into(), "body".into()],
                &by_owner,
                std::slice::from_ref(&by_site),
                Drive::Probe
            ),
            "SELECT t0.\"id\", t0.\"body\" FROM pg_catalog.unnest(O::int8[]) AS k(c0) \
             JOIN ONLY \"public\".\"comments\" AS t0 ON t0.\"owner_id\" = k.c0 AND t0.\"owner_type\"::text = V \
             WHERE NOT coalesce(t0.\"site_id\" IN (SELECT pg_catalog.unnest(S::int8[])), false)"
        );
        // With an index on the columns: one probe per key, the subquery kept whole.
        assert_eq!(
            rows_matching(
                "ONLY \"public\".\"comments\"",
                &["id".into(), "body".into()],
                &by_owner,
                std::slice::from_ref(&by_site),
                Drive::Index
            ),
            "SELECT t0.\"id\", t0.\"body\" FROM pg_catalog.unnest(O::int8[]) AS k(c0) \
             CROSS JOIN LATERAL (SELECT t0.\"id\", t0.\"body\" FROM ONLY \"public\".\"comments\" AS t0 \
             WHERE t0.\"owner_id\" = k.c0 AND t0.\"owner_type\"::text = V \
             AND NOT coalesce(t0.\"site_id\" IN (SELECT pg_catalog.unnest(S::int8[])), false) OFFSET 0) AS t0"
        );
        assert_eq!(
            rows_matching("t", &["id".into()], &by_site, &[], Drive::Scan),
            "SELECT t0.\"id\" FROM t AS t0 WHERE coalesce(t0.\"site_id\" IN (SELECT pg_catalog.unnest(S::int8[])), false)"
        );
        assert_eq!(drive_for(39_000, 99_000, false), Drive::Scan);
        assert_eq!(drive_for(4_000, 99_000, false), Drive::Probe);
        assert_eq!(drive_for(4_000, -1, false), Drive::Probe);
        // An index on the columns read forces the probes; many keys still scan.
        assert_eq!(drive_for(39_000, 99_000, true), Drive::Scan);
        assert_eq!(drive_for(4_000, 99_000, true), Drive::Index);
    }
}
