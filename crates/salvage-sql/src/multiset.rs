//! Rows of tables without a key, compared as multisets: a row that appears twice in the
//! snapshot should appear twice in live, and a second restore adds nothing.
//!
//! Both sides are bound as text arrays — the snapshot's rows of a tenant and its live rows,
//! both already read once per table — so these statements read no table. Rows are stacked
//! with a side marker and grouped by every column: grouping treats NULLs as equal, the "not
//! distinct" semantics rows need, and hashes or sorts, where a join on `IS NOT DISTINCT FROM`
//! could only loop. Columns of a type without equality (json, xml, point…) are grouped by
//! their text.

use salvage_quote::quote_ident;

use crate::names::cast_type;

use crate::names::unnest;

/// The written columns of a keyless table, with their live types and whether each compares
/// by value.
#[derive(Debug, Clone)]
pub struct Multiset {
    columns: Vec<(String, String, bool)>,
}

impl Multiset {
    /// `columns`: (name, live type, compared by value).
    #[must_use]
    pub fn new(columns: Vec<(String, String, bool)>) -> Self {
        Self { columns }
    }

    #[must_use]
    pub fn column_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|(name, _, _)| name.clone())
            .collect()
    }

    /// How many text array parameters one side takes.
    #[must_use]
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// A relation of the written columns typed as live, from text arrays `$first…`, one per
    /// column; with `numbered`, `$first` is an `int4[]` of row numbers, column `n`.
    fn side(&self, first: usize, numbered: bool) -> String {
        let offset = usize::from(numbered);
        let mut arrays: Vec<String> = (0..self.columns.len())
            .map(|n| format!("${}::text[]", first + offset + n))
            .collect();
        let mut aliases: Vec<String> = (0..self.columns.len()).map(|n| format!("c{n}")).collect();
        let mut casts: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(n, (name, type_name, typed))| {
                if *typed {
                    format!("a.c{n}::{} AS {}", cast_type(type_name), quote_ident(name))
                } else {
                    // Grouped by the text the pinned session gives the typed value.
                    format!(
                        "a.c{n}::{}::text AS {}",
                        cast_type(type_name),
                        quote_ident(name)
                    )
                }
            })
            .collect();
        if numbered {
            arrays.insert(0, format!("${first}::int4[]"));
            aliases.insert(0, "n".to_owned());
            casts.insert(0, "a.n".to_owned());
        }
        format!(
            "(SELECT {} FROM {} AS a({}))",
            casts.join(", "),
            unnest(&arrays),
            aliases.join(", ")
        )
    }

    fn names(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _, _)| quote_ident(name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A relation `(tenant, [n,] c0…)` of the written columns typed as live (aliased `c0…`,
    /// never the table's own names, which could be `tenant`), from `$first` (each row's
    /// tenant, `int4[]`), with `numbered` then an `int4[]` of row numbers, then one text array
    /// per column.
    fn tenant_side(&self, first: usize, numbered: bool) -> String {
        let width = self.width();
        let offset = 1 + usize::from(numbered);
        let mut arrays = vec![format!("${first}::int4[]")];
        let mut aliases = vec!["tenant".to_owned()];
        let mut casts = vec!["a.tenant".to_owned()];
        if numbered {
            arrays.push(format!("${}::int4[]", first + 1));
            aliases.push("n".to_owned());
            casts.push("a.n".to_owned());
        }
        arrays.extend((0..width).map(|n| format!("${}::text[]", first + offset + n)));
        aliases.extend((0..width).map(|n| format!("c{n}")));
        casts.extend(
            self.columns
                .iter()
                .enumerate()
                .map(|(n, (_, type_name, typed))| {
                    if *typed {
                        format!("a.c{n}::{} AS c{n}", cast_type(type_name))
                    } else {
                        format!("a.c{n}::{}::text AS c{n}", cast_type(type_name))
                    }
                }),
        );
        format!(
            "(SELECT {} FROM {} AS a({}))",
            casts.join(", "),
            unnest(&arrays),
            aliases.join(", ")
        )
    }

    /// `(matched, missing, extra)`: rows in both, only in the snapshot, only in live. The
    /// snapshot side is bound as `$1…$w`, live as `$w+1…$2w` (w = [`Self::width`]).
    #[must_use]
    pub fn totals(&self) -> String {
        let names = self.names();
        format!(
            "SELECT coalesce(sum(least(g.want, g.have)), 0)::int8 AS matched, \
                    coalesce(sum(greatest(g.want - g.have, 0)), 0)::int8 AS missing, \
                    coalesce(sum(greatest(g.have - g.want, 0)), 0)::int8 AS extra \
             FROM (SELECT {names}, sum(u.want)::int8 AS want, sum(u.have)::int8 AS have FROM (\
                     SELECT s.*, 1 AS want, 0 AS have FROM {} AS s \
                     UNION ALL SELECT l.*, 0, 1 FROM {} AS l) AS u GROUP BY {names}) AS g",
            self.side(1, false),
            self.side(1 + self.width(), false)
        )
    }

    /// Per tenant, `(tenant, matched, missing, extra)` for the rows of many tenants at once:
    /// the snapshot side is bound as `$1` (each row's tenant, `int4[]`) and `$2…$w+1`, live
    /// as `$w+2` (tenants) and `$w+3…$2w+2`. A row matches only a row of its own tenant.
    /// Columns are aliased `c0…` (never the table's own names, which could be `tenant`).
    #[must_use]
    pub fn totals_by_tenant(&self) -> String {
        let width = self.width();
        let side = |first: usize| self.tenant_side(first, false);
        let columns = |alias: &str| -> String {
            (0..width)
                .map(|n| format!("{alias}.c{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "SELECT g.tenant, coalesce(sum(least(g.want, g.have)), 0)::int8 AS matched, \
                    coalesce(sum(greatest(g.want - g.have, 0)), 0)::int8 AS missing, \
                    coalesce(sum(greatest(g.have - g.want, 0)), 0)::int8 AS extra \
             FROM (SELECT u.tenant, {}, sum(u.want)::int8 AS want, sum(u.have)::int8 AS have \
                   FROM (SELECT s.tenant, {}, 1 AS want, 0 AS have FROM {} AS s \
                         UNION ALL SELECT l.tenant, {}, 0, 1 FROM {} AS l) AS u \
                   GROUP BY u.tenant, {}) AS g \
             GROUP BY g.tenant",
            columns("u"),
            columns("s"),
            side(1),
            columns("l"),
            side(2 + width),
            columns("u"),
        )
    }

    /// For the rows of many tenants at once, `(tenant, n)` of the snapshot rows to insert so
    /// that live holds each of a tenant's rows as many times as its snapshot rows do: within
    /// each group of equal rows of a tenant, the snapshot's copies beyond the number live has.
    /// The snapshot side is bound as `$1` (each row's tenant, `int4[]`), `$2` (row numbers,
    /// `int4[]`) and `$3…$w+2`, live as `$w+3` (tenants) and `$w+4…$2w+3`. A row matches only
    /// rows of its own tenant.
    #[must_use]
    pub fn rows_to_add(&self) -> String {
        let width = self.width();
        let columns = |alias: &str| -> String {
            (0..width)
                .map(|n| format!("{alias}.c{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let group = format!("u.tenant, {}", columns("u"));
        // In each group, live's rows come first: the snapshot's k-th copy is the group's
        // (have + k)-th row, and goes in when k > have.
        format!(
            "SELECT x.tenant, x.n FROM (SELECT u.side, u.tenant, u.n, \
                 row_number() OVER (PARTITION BY {group} ORDER BY u.side, u.n) AS place, \
                 count(*) FILTER (WHERE u.side = 0) OVER (PARTITION BY {group}) AS have \
               FROM (SELECT 0 AS side, l.tenant, NULL::int4 AS n, {} FROM {} AS l \
                     UNION ALL SELECT 1, s.tenant, s.n, {} FROM {} AS s) AS u) AS x \
             WHERE x.side = 1 AND x.place > 2 * x.have ORDER BY x.tenant, x.n",
            columns("l"),
            self.tenant_side(3 + width, false),
            columns("s"),
            self.tenant_side(1, true),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Multiset;

    #[test]
    fn both_sides_are_bound_and_untyped_columns_group_by_text() {
        let multiset = Multiset::new(vec![
            ("kind".into(), "text".into(), true),
            ("meta".into(), "json".into(), false),
        ]);
        let totals = multiset.totals();
        assert!(
            totals.contains(
                "ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS a(c0, c1)"
            ),
            "{totals}"
        );
        assert!(
            totals.contains(
                "ROWS FROM (pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])) AS a(c0, c1)"
            ),
            "{totals}"
        );
        assert!(totals.contains("a.c1::json::text AS \"meta\""), "{totals}");
        let by_tenant = multiset.totals_by_tenant();
        assert!(
            by_tenant.contains(
                "(SELECT a.tenant, a.c0::text AS c0, a.c1::json::text AS c1 FROM ROWS FROM (pg_catalog.unnest($1::int4[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) AS a(tenant, c0, c1))"
            ),
            "{by_tenant}"
        );
        assert!(
            by_tenant.contains("pg_catalog.unnest($4::int4[]), pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::text[])"),
            "{by_tenant}"
        );
        assert!(
            by_tenant.contains("GROUP BY u.tenant, u.c0, u.c1) AS g GROUP BY g.tenant"),
            "{by_tenant}"
        );
        let add = multiset.rows_to_add();
        assert!(
            add.contains("pg_catalog.unnest($1::int4[]), pg_catalog.unnest($2::int4[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])) AS a(tenant, n, c0, c1)"),
            "{add}"
        );
        assert!(
            add.contains("pg_catalog.unnest($5::int4[]), pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::text[])) AS a(tenant, c0, c1)"),
            "{add}"
        );
        assert!(
            add.contains("PARTITION BY u.tenant, u.c0, u.c1 ORDER BY u.side, u.n"),
            "{add}"
        );
        assert!(!add.contains("$8"), "{add}");
    }
}
