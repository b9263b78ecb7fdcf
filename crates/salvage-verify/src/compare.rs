//! Comparing a chunk of snapshot rows with live rows in one statement.

use std::collections::HashMap;

use salvage_catalog::{Catalog, TypeKind};
use salvage_pg::quote_ident;
use salvage_plan::TablePlan;
use sqlx::Row;
use sqlx::postgres::PgConnection;

use crate::Result;

/// How each live type compares: by value (it has an equality operator) or by text.
#[derive(Debug, Default)]
pub struct ComparisonModes {
    typed: HashMap<String, bool>,
}

impl ComparisonModes {
    /// Asks the live server, once per type, whether `=` exists for it. Arrays compare by
    /// value when their element type does; composite types always by text.
    pub async fn probe(
        connection: &mut PgConnection,
        catalog: &Catalog,
        tables: &[&TablePlan],
    ) -> Result<Self> {
        let mut modes = Self::default();
        for table in tables {
            let Some(live) = catalog.table(&table.name) else {
                continue;
            };
            for column in table.written_columns() {
                let Some(live_column) = live.column(&column.name) else {
                    continue;
                };
                if modes.typed.contains_key(&live_column.type_name) {
                    continue;
                }
                let typed = match live_column.type_kind {
                    TypeKind::Composite | TypeKind::Other => false,
                    TypeKind::Array => match &live_column.underlying_type {
                        Some(element) => has_equality(connection, element).await,
                        None => false,
                    },
                    _ => has_equality(connection, &live_column.type_name).await,
                };
                modes.typed.insert(live_column.type_name.clone(), typed);
            }
        }
        Ok(modes)
    }

    fn is_typed(&self, type_name: &str) -> bool {
        self.typed.get(type_name).copied().unwrap_or(false)
    }
}

async fn has_equality(connection: &mut PgConnection, type_name: &str) -> bool {
    // The type name is the live catalog's format_type output.
    let probe = format!("SELECT NULL::{type_name} IS NOT DISTINCT FROM NULL::{type_name}");
    sqlx::query(&probe).execute(connection).await.is_ok()
}

/// The result of comparing some snapshot rows with live.
#[derive(Debug, Default)]
pub struct ChunkResult {
    pub missing: u64,
    pub equal: u64,
    pub different: u64,
    pub missing_examples: Vec<String>,
    pub different_examples: Vec<String>,
}

/// The statement comparing rows bound as one text array per snapshot column.
pub struct ChunkComparison {
    sql: String,
    width: usize,
}

impl ChunkComparison {
    /// `None` when the table has no key to match rows by.
    pub fn new(table: &TablePlan, catalog: &Catalog, modes: &ComparisonModes) -> Option<Self> {
        let key = table.key.as_ref()?;
        let live = catalog.table(&table.name)?;
        let live_type = |name: &str| live.column(name).map(|column| column.type_name.clone());
        let position = |name: &str| table.column_index(name);
        let arrays: Vec<String> = (1..=table.columns.len())
            .map(|n| format!("${n}::text[]"))
            .collect();
        let aliases: Vec<String> = (0..table.columns.len()).map(|n| format!("c{n}")).collect();
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
            if modes.is_typed(&type_name) {
                live_side.push(format!("t.{}", quote_ident(&column.name)));
                snapshot_side.push(format!("s.c{index}::{type_name}"));
            } else {
                live_side.push(format!("t.{}::text", quote_ident(&column.name)));
                snapshot_side.push(format!("s.c{index}"));
            }
        }
        let first_key = quote_ident(&key.columns[0]);
        let equal = format!(
            "ROW({}) IS NOT DISTINCT FROM ROW({})",
            live_side.join(", "),
            snapshot_side.join(", ")
        );
        let key_text = format!("concat_ws(', ', {})", key_text.join(", "));
        let sql = format!(
            "SELECT count(*) FILTER (WHERE t.{first_key} IS NULL)::int8 AS missing, \
                    count(*) FILTER (WHERE t.{first_key} IS NOT NULL AND {equal})::int8 AS equal, \
                    count(*) FILTER (WHERE t.{first_key} IS NOT NULL AND NOT ({equal}))::int8 AS different, \
                    (array_agg({key_text}) FILTER (WHERE t.{first_key} IS NULL))[1:3] AS missing_examples, \
                    (array_agg({key_text}) FILTER (WHERE t.{first_key} IS NOT NULL AND NOT ({equal})))[1:3] AS different_examples \
             FROM unnest({}) AS s({}) LEFT JOIN {} AS t ON {}",
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

    /// Compares `rows` (text values in snapshot column order) with live.
    pub async fn run(
        &self,
        connection: &mut PgConnection,
        rows: &[Vec<Option<String>>],
    ) -> Result<ChunkResult> {
        let mut query = sqlx::query(&self.sql);
        for column in 0..self.width {
            let values: Vec<Option<String>> = rows
                .iter()
                .map(|row| row.get(column).cloned().flatten())
                .collect();
            query = query.bind(values);
        }
        let row = query
            .fetch_one(&mut *connection)
            .await
            .map_err(salvage_pg::Error::query("compare rows with live"))?;
        Ok(ChunkResult {
            missing: row.get::<i64, _>("missing") as u64,
            equal: row.get::<i64, _>("equal") as u64,
            different: row.get::<i64, _>("different") as u64,
            missing_examples: row
                .get::<Option<Vec<String>>, _>("missing_examples")
                .unwrap_or_default(),
            different_examples: row
                .get::<Option<Vec<String>>, _>("different_examples")
                .unwrap_or_default(),
        })
    }
}
