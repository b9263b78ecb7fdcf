//! Comparing a chunk of snapshot rows with live rows in one statement.

use std::collections::BTreeSet;

use salvage_catalog::Catalog;
use salvage_pg::quote_ident;
use salvage_plan::{Relation, TablePlan};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use crate::Result;

/// The result of comparing some snapshot rows with live.
#[derive(Debug, Default)]
pub struct ChunkResult {
    pub missing: u64,
    pub equal: u64,
    pub different: u64,
    /// Missing, but only because a parent of another tenant is not in live yet.
    pub waiting: u64,
    pub missing_examples: Vec<String>,
    pub different_examples: Vec<String>,
}

/// The statement comparing keyed rows bound as one text array per snapshot column.
#[derive(Debug)]
pub struct ChunkComparison {
    sql: String,
    width: usize,
}

impl ChunkComparison {
    /// `None` when the table has no key to match rows by. `by_value` lists the live types
    /// compared by value; the others compare by text.
    pub fn new(table: &TablePlan, catalog: &Catalog, by_value: &BTreeSet<String>) -> Option<Self> {
        let key = table.key.as_ref()?;
        let live = catalog.table(&table.name)?;
        let live_type = |name: &str| live.column(name).map(|column| column.type_name.clone());
        let position = |name: &str| table.column_index(name);
        // $1: each row's tenant (its position in the batch); then one array per column.
        let arrays: Vec<String> = std::iter::once("$1::int4[]".to_owned())
            .chain((2..=table.columns.len() + 1).map(|n| format!("${n}::text[]")))
            .collect();
        let aliases: Vec<String> = std::iter::once("tenant".to_owned())
            .chain((0..table.columns.len()).map(|n| format!("c{n}")))
            .collect();
        let mut join = Vec::new();
        let mut key_text = Vec::new();
        for column in &key.columns {
            let (index, type_name) = (position(column)?, live_type(column)?);
            join.push(format!(
                "t.{} = s.c{index}::{type_name}",
                quote_ident(column)
            ));
            key_text.push(format!("s.c{index}"));
        }
        let (mut live_side, mut snapshot_side) = (Vec::new(), Vec::new());
        for column in table.written_columns() {
            let (index, type_name) = (position(&column.name)?, live_type(&column.name)?);
            if by_value.contains(&type_name) {
                live_side.push(format!("t.{}", quote_ident(&column.name)));
                snapshot_side.push(format!("s.c{index}::{type_name}"));
            } else {
                live_side.push(format!("t.{}::text", quote_ident(&column.name)));
                snapshot_side.push(format!("s.c{index}"));
            }
        }
        let guards = guards_hold(table, catalog)?;
        let absent = format!("t.{} IS NULL", quote_ident(&key.columns[0]));
        let equal = format!(
            "ROW({}) IS NOT DISTINCT FROM ROW({})",
            live_side.join(", "),
            snapshot_side.join(", ")
        );
        let key_text = format!("concat_ws(', ', {})", key_text.join(", "));
        // Each row's facts are computed once, in a subquery the planner may not inline
        // (OFFSET 0): the typed comparison casts every column, and written into each FILTER
        // it would run once per FILTER. Equality is worked out only for rows live has, the
        // guards only for rows it lacks, the key text only for rows the examples may show.
        let sql = format!(
            "SELECT c.tenant, \
                    count(*) FILTER (WHERE NOT c.found AND c.guarded)::int8 AS missing, \
                    count(*) FILTER (WHERE c.found AND c.equal)::int8 AS equal, \
                    count(*) FILTER (WHERE c.found AND NOT c.equal)::int8 AS different, \
                    count(*) FILTER (WHERE NOT c.found AND NOT c.guarded)::int8 AS waiting, \
                    (array_agg(c.key) FILTER (WHERE NOT c.found AND c.guarded))[1:3] AS missing_examples, \
                    (array_agg(c.key) FILTER (WHERE c.found AND NOT c.equal))[1:3] AS different_examples \
             FROM (SELECT s.tenant, NOT ({absent}) AS found, \
                          CASE WHEN NOT ({absent}) THEN {equal} END AS equal, \
                          CASE WHEN {absent} THEN {guards} END AS guarded, \
                          CASE WHEN {absent} OR NOT ({equal}) THEN {key_text} END AS key \
                   FROM unnest({}) AS s({}) LEFT JOIN {} AS t ON {} OFFSET 0) AS c \
             GROUP BY c.tenant",
            arrays.join(", "),
            aliases.join(", "),
            catalog.from_item(&table.name),
            join.join(" AND ")
        );
        Some(Self {
            sql,
            width: table.columns.len(),
        })
    }

    /// Compares `rows` (text values in snapshot column order, each with its tenant's
    /// position in the batch) with live; one result per tenant that had rows.
    pub async fn run(
        &self,
        connection: &mut PgConnection,
        rows: &[(usize, Vec<Option<String>>)],
    ) -> Result<Vec<(usize, ChunkResult)>> {
        let tenants: Vec<i32> = rows.iter().map(|(tenant, _)| *tenant as i32).collect();
        let mut query = sqlx::query(&self.sql).bind(tenants);
        for column in 0..self.width {
            let values: Vec<Option<String>> = rows
                .iter()
                .map(|(_, row)| row.get(column).cloned().flatten())
                .collect();
            query = query.bind(values);
        }
        let results = query
            .fetch_all(&mut *connection)
            .await
            .map_err(salvage_pg::Error::query("compare rows with live"))?;
        Ok(results
            .into_iter()
            .map(|row| {
                (
                    row.get::<i32, _>("tenant") as usize,
                    ChunkResult {
                        missing: row.get::<i64, _>("missing") as u64,
                        equal: row.get::<i64, _>("equal") as u64,
                        different: row.get::<i64, _>("different") as u64,
                        waiting: row.get::<i64, _>("waiting") as u64,
                        missing_examples: row
                            .get::<Option<Vec<String>>, _>("missing_examples")
                            .unwrap_or_default(),
                        different_examples: row
                            .get::<Option<Vec<String>>, _>("different_examples")
                            .unwrap_or_default(),
                    },
                )
            })
            .collect())
    }
}

/// Every guarded parent of the snapshot row `s` (text columns `c0`...) is in live; `true`
/// for tables without guards.
fn guards_hold(table: &TablePlan, catalog: &Catalog) -> Option<String> {
    if table.guards.is_empty() {
        return Some("true".to_owned());
    }
    let mut conditions = Vec::new();
    for relation in &table.guards {
        conditions.push(parent_present(table, relation, catalog)?);
    }
    Some(conditions.join(" AND "))
}

fn parent_present(table: &TablePlan, relation: &Relation, catalog: &Catalog) -> Option<String> {
    let parent = catalog.table(&relation.parent)?;
    let mut nulls = Vec::new();
    let mut matches = Vec::new();
    for (child, parent_column) in relation.child_columns.iter().zip(&relation.parent_columns) {
        let index = table.column_index(child)?;
        let type_name = &parent.column(parent_column)?.type_name;
        nulls.push(format!("s.c{index} IS NULL"));
        matches.push(format!(
            "p.{} = s.c{index}::{type_name}",
            quote_ident(parent_column)
        ));
    }
    Some(format!(
        "({} OR EXISTS (SELECT 1 FROM {} AS p WHERE {}))",
        nulls.join(" OR "),
        catalog.from_item(&relation.parent),
        matches.join(" AND ")
    ))
}
