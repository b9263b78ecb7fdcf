//! The statements a tenant's transaction runs, built from quoted identifiers and the live
//! catalog's type names; values are bound.

use salvage_pg::quote_ident;
use salvage_plan::TablePlan;

/// The staging table of the plan's `index`-th table, in this session's temporary schema.
pub fn staging_name(index: usize) -> String {
    format!("pg_temp.{}", quote_ident(&format!("salvage_stage_{index}")))
}

/// A temporary table with the snapshot's columns typed as live will parse them; emptied at
/// every commit, so one per connection serves every tenant.
pub fn create_staging(index: usize, table: &TablePlan) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|column| format!("{} {}", quote_ident(&column.name), column.staging_type))
        .collect();
    format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS",
        staging_name(index),
        columns.join(", ")
    )
}

pub fn copy_into_staging(index: usize) -> String {
    format!("COPY {} FROM STDIN", staging_name(index))
}

/// `INSERT ... SELECT ... FROM staging ON CONFLICT (key) DO NOTHING`, ordered by key so
/// concurrent tenants inserting the same shared rows take their locks in the same order.
pub fn insert_from_staging(index: usize, table: &TablePlan) -> String {
    let written: Vec<String> = table
        .written_columns()
        .map(|column| quote_ident(&column.name))
        .collect();
    let selected: Vec<String> = written.iter().map(|column| format!("s.{column}")).collect();
    let mut sql = format!(
        "INSERT INTO {} AS t ({})",
        table.name.quoted(),
        written.join(", ")
    );
    if table.identity_always {
        sql.push_str(" OVERRIDING SYSTEM VALUE");
    }
    sql.push_str(&format!(
        " SELECT {} FROM {} AS s",
        selected.join(", "),
        staging_name(index)
    ));
    if let Some(key) = &table.key {
        let key_columns: Vec<String> = key
            .columns
            .iter()
            .map(|column| quote_ident(column))
            .collect();
        let ordered: Vec<String> = key_columns
            .iter()
            .map(|column| format!("s.{column}"))
            .collect();
        sql.push_str(&format!(
            " ORDER BY {} ON CONFLICT ({}) DO NOTHING",
            ordered.join(", "),
            key_columns.join(", ")
        ));
    }
    sql
}

/// Moves a sequence ahead of the largest restored value, never back: only when the restored
/// maximum reaches the sequence's last value, and then only if `nextval` (atomic, so a
/// concurrent session's progress is seen) is still not past it. Returns the new value, or
/// NULL when nothing moved. `$1` is the sequence's quoted name.
pub fn advance_sequence(index: usize, column: &str, sequence: &str) -> String {
    format!(
        "SELECT CASE WHEN m.v IS NOT NULL AND m.v >= q.last_value THEN \
           CASE WHEN pg_catalog.nextval($1::regclass) <= m.v THEN pg_catalog.setval($1::regclass, m.v) END \
         END \
         FROM (SELECT max(s.{})::int8 AS v FROM {} AS s) AS m, {sequence} AS q",
        quote_ident(column),
        staging_name(index)
    )
}

#[cfg(test)]
mod tests {
    use salvage_catalog::{Key, QualifiedName};
    use salvage_plan::{ColumnPlan, Role, TablePlan};

    use super::{create_staging, insert_from_staging};

    fn column(name: &str, write: bool) -> ColumnPlan {
        ColumnPlan {
            name: name.into(),
            snapshot_type: "bigint".into(),
            staging_type: if write {
                "bigint".into()
            } else {
                "text".into()
            },
            write,
        }
    }

    fn table() -> TablePlan {
        TablePlan {
            name: QualifiedName::new("public", "issues"),
            role: Role::Owned,
            ownership: None,
            in_live: true,
            in_snapshot: true,
            columns: vec![
                column("id", true),
                column("gone", false),
                column("site_id", true),
            ],
            key: Some(Key {
                name: "issues_pkey".into(),
                columns: vec!["id".into()],
            }),
            identity_always: true,
            sequences: Vec::new(),
            shared_references: Vec::new(),
            references: Vec::new(),
        }
    }

    #[test]
    fn staging_keeps_every_snapshot_column() {
        assert_eq!(
            create_staging(2, &table()),
            "CREATE TEMPORARY TABLE IF NOT EXISTS pg_temp.\"salvage_stage_2\" (\"id\" bigint, \"gone\" text, \"site_id\" bigint) ON COMMIT DELETE ROWS"
        );
    }

    #[test]
    fn inserts_only_written_columns_and_keeps_existing_keys() {
        assert_eq!(
            insert_from_staging(2, &table()),
            "INSERT INTO \"public\".\"issues\" AS t (\"id\", \"site_id\") OVERRIDING SYSTEM VALUE \
             SELECT s.\"id\", s.\"site_id\" FROM pg_temp.\"salvage_stage_2\" AS s ORDER BY s.\"id\" ON CONFLICT (\"id\") DO NOTHING"
        );
    }
}
