//! Rows of tables without a key, compared as multisets: a row that appears twice in the
//! snapshot should appear twice in live, and a second restore adds nothing.
//!
//! Both sides become relations of the table's written columns; their rows are stacked with a
//! side marker and grouped by every column. Grouping treats NULLs as equal — the "not
//! distinct" semantics rows need — and hashes, where a join on `IS NOT DISTINCT FROM` could
//! only loop. Columns whose type has no equality (json, xml, point…) are grouped by their
//! text. The same statement shape serves the plan's counts, the restore's insert and the
//! verification.

use std::collections::BTreeSet;

use salvage_catalog::Catalog;
use salvage_pg::quote_ident;
use salvage_plan::TablePlan;

/// The written columns of a keyless table, with their live types and comparison modes.
#[derive(Debug, Clone)]
pub struct Multiset {
    columns: Vec<(String, String, bool)>,
}

impl Multiset {
    /// `None` when the table is not in live.
    #[must_use]
    pub fn new(table: &TablePlan, live: &Catalog, by_value: &BTreeSet<String>) -> Option<Self> {
        let live_table = live.table(&table.name)?;
        let columns = table
            .written_columns()
            .filter_map(|column| {
                let type_name = live_table.column(&column.name)?.type_name.clone();
                let typed = by_value.contains(&type_name);
                Some((column.name.clone(), type_name, typed))
            })
            .collect();
        Some(Self { columns })
    }

    #[must_use]
    pub fn column_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|(name, _, _)| name.clone())
            .collect()
    }

    /// A relation of the written columns, typed as live, from bound text arrays starting at
    /// parameter `$first` (one per column, in `column_names` order).
    #[must_use]
    pub fn from_arrays(&self, first: usize) -> String {
        let arrays: Vec<String> = (0..self.columns.len())
            .map(|n| format!("${}::text[]", first + n))
            .collect();
        let aliases: Vec<String> = (0..self.columns.len()).map(|n| format!("c{n}")).collect();
        let casts: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(n, (name, type_name, _))| {
                format!("a.c{n}::{type_name} AS {}", quote_ident(name))
            })
            .collect();
        format!(
            "(SELECT {} FROM unnest({}) AS a({}))",
            casts.join(", "),
            arrays.join(", "),
            aliases.join(", ")
        )
    }

    /// Per distinct row: its comparable columns, how many times the snapshot side has it
    /// (`want`) and how many times live has it (`have`). `snapshot` and `live` are relations
    /// with the written columns.
    #[must_use]
    pub fn grouped(&self, snapshot: &str, live: &str) -> String {
        let side = |alias: &str| -> Vec<String> {
            self.columns
                .iter()
                .map(|(name, _, typed)| {
                    if *typed {
                        format!("{alias}.{}", quote_ident(name))
                    } else {
                        format!(
                            "{alias}.{}::text AS {}",
                            quote_ident(name),
                            quote_ident(name)
                        )
                    }
                })
                .collect()
        };
        let names: Vec<String> = self
            .columns
            .iter()
            .map(|(name, _, _)| quote_ident(name))
            .collect();
        format!(
            "SELECT {names}, sum(u.want)::int8 AS want, sum(u.have)::int8 AS have FROM (\
               SELECT {}, 1 AS want, 0 AS have FROM {snapshot} AS s \
               UNION ALL SELECT {}, 0, 1 FROM {live} AS l) AS u GROUP BY {names}",
            side("s").join(", "),
            side("l").join(", "),
            names = names.join(", ")
        )
    }

    /// Totals over the groups: rows in both (`matched`), only in the snapshot (`missing`),
    /// only in live (`extra`).
    #[must_use]
    pub fn totals(&self, snapshot: &str, live: &str) -> String {
        format!(
            "SELECT coalesce(sum(least(g.want, g.have)), 0)::int8 AS matched, \
                    coalesce(sum(greatest(g.want - g.have, 0)), 0)::int8 AS missing, \
                    coalesce(sum(greatest(g.have - g.want, 0)), 0)::int8 AS extra \
             FROM ({}) AS g",
            self.grouped(snapshot, live)
        )
    }

    /// `INSERT` of each snapshot row as many times as it is missing from live.
    #[must_use]
    pub fn insert(&self, table: &TablePlan, snapshot: &str, live: &str) -> String {
        let names: Vec<String> = self
            .columns
            .iter()
            .map(|(name, _, _)| quote_ident(name))
            .collect();
        let values: Vec<String> = self
            .columns
            .iter()
            .map(|(name, type_name, typed)| {
                if *typed {
                    format!("g.{}", quote_ident(name))
                } else {
                    format!("g.{}::{type_name}", quote_ident(name))
                }
            })
            .collect();
        let overriding = if table.identity_always {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        format!(
            "INSERT INTO {} ({}){overriding} SELECT {} FROM ({}) AS g \
             CROSS JOIN LATERAL generate_series(1, g.want - g.have) AS copies WHERE g.want > g.have",
            table.name.quoted(),
            names.join(", "),
            values.join(", "),
            self.grouped(snapshot, live)
        )
    }
}
