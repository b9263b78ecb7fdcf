//! Comparing a chunk of snapshot rows with live rows in one statement.

use std::collections::BTreeSet;

use salvage_catalog::Catalog;
use salvage_plan::TablePlan;
use salvage_sql::from_item;
use salvage_sql::verify::{Compared, Parent, compare_chunk};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use crate::{Error, Result};

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
    /// Per guarded parent: the parent and columns it is referenced by, and where the
    /// reference is in the rows.
    parents: Vec<(ParentKey, Vec<usize>)>,
}

/// A parent table and the columns a child references it by.
pub type ParentKey = (salvage_catalog::QualifiedName, Vec<String>);

impl ChunkComparison {
    /// For a table with a key; `by_value` lists the live types compared by value, the others
    /// compare by text. Absence of anything the comparison needs is an error naming it.
    pub fn new(table: &TablePlan, catalog: &Catalog, by_value: &BTreeSet<String>) -> Result<Self> {
        Self::with_guards(table, catalog, by_value, &table.guards)
    }

    /// The comparison without guards: a row live lacks is missing, whatever its parents (a
    /// diff asks what live lacks, not what a restore could write).
    pub fn unguarded(
        table: &TablePlan,
        catalog: &Catalog,
        by_value: &BTreeSet<String>,
    ) -> Result<Self> {
        Self::with_guards(table, catalog, by_value, &[])
    }

    fn with_guards(
        table: &TablePlan,
        catalog: &Catalog,
        by_value: &BTreeSet<String>,
        guards: &[salvage_plan::Relation],
    ) -> Result<Self> {
        let missing =
            |what: String| Error::Inconsistent(format!("cannot compare {}: {what}", table.name));
        let key = table
            .key
            .as_ref()
            .ok_or_else(|| missing("it has no key".to_owned()))?;
        let live = catalog
            .table(&table.name)
            .ok_or_else(|| missing("live has no such table".to_owned()))?;
        let compared = |name: &str| -> Result<Compared> {
            let position = table
                .column_index(name)
                .ok_or_else(|| missing(format!("the snapshot has no column {name}")))?;
            let live_type = live
                .column(name)
                .ok_or_else(|| missing(format!("live has no column {name}")))?
                .type_name
                .clone();
            Ok(Compared {
                position,
                name: name.to_owned(),
                by_value: by_value.contains(&live_type),
                live_type,
            })
        };
        let key_columns = key
            .columns
            .iter()
            .map(|name| compared(name))
            .collect::<Result<Vec<_>>>()?;
        let written = table
            .written_columns()
            .map(|column| compared(&column.name))
            .collect::<Result<Vec<_>>>()?;
        let mut parents = Vec::new();
        let mut references = Vec::new();
        for relation in guards {
            let parent = catalog
                .table(&relation.parent)
                .ok_or_else(|| missing(format!("live has no table {}", relation.parent)))?;
            let mut columns = Vec::new();
            for (child, parent_column) in
                relation.child_columns.iter().zip(&relation.parent_columns)
            {
                let position = table
                    .column_index(child)
                    .ok_or_else(|| missing(format!("the snapshot has no column {child}")))?;
                let type_name = parent
                    .column(parent_column)
                    .ok_or_else(|| {
                        missing(format!(
                            "live's {} has no column {parent_column}",
                            relation.parent
                        ))
                    })?
                    .type_name
                    .clone();
                columns.push((position, parent_column.clone(), type_name));
            }
            references.push((
                (relation.parent.clone(), relation.parent_columns.clone()),
                columns.iter().map(|(position, _, _)| *position).collect(),
            ));
            parents.push(Parent {
                from: from_item(catalog, &relation.parent),
                columns,
            });
        }
        Ok(Self {
            sql: compare_chunk(
                &from_item(catalog, &table.name),
                table.columns.len(),
                &key_columns,
                &written,
                &parents,
            ),
            width: table.columns.len(),
            parents: references,
        })
    }

    /// The guarded parents rows reference, so the caller can tell which are rows verified
    /// themselves.
    #[must_use]
    pub fn parents(&self) -> &[(ParentKey, Vec<usize>)] {
        &self.parents
    }

    /// Compares `rows` (text values in snapshot column order, each with its tenant's
    /// position in the batch) with live; one result per tenant that had rows.
    /// `expected(parent number, raw key)` says whether a parent a row references is one of the
    /// rows verified (a row under a missing one of those is missing, not waiting).
    pub async fn run(
        &self,
        connection: &mut PgConnection,
        rows: &[(usize, Vec<Option<String>>)],
        expected: &(dyn Fn(usize, &[u8]) -> bool + Sync),
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
        for (number, (_, positions)) in self.parents.iter().enumerate() {
            let flags: Vec<bool> = rows
                .iter()
                .map(|(_, row)| {
                    let mut key = Vec::new();
                    for (index, &position) in positions.iter().enumerate() {
                        let Some(Some(value)) = row.get(position) else {
                            return false;
                        };
                        if index > 0 {
                            key.push(b'\t');
                        }
                        salvage_copy::encode(Some(value.as_bytes()), &mut key);
                    }
                    expected(number, &key)
                })
                .collect();
            query = query.bind(flags);
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
