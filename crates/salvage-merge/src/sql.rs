//! The statements a tenant's transaction runs, built from quoted identifiers and the live
//! catalog's type names; values are bound.

use salvage_pg::quote_ident;
use salvage_plan::{Relation, TablePlan};

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

/// `s.a IS NULL OR ... OR EXISTS (parent row)`: the staged row's parent for `relation` is
/// present (a NULL in the reference means there is none to need, as in a foreign key).
fn parent_present(relation: &Relation, catalog_from: &str) -> String {
    let nulls: Vec<String> = relation
        .child_columns
        .iter()
        .map(|column| format!("s.{} IS NULL", quote_ident(column)))
        .collect();
    let matches: Vec<String> = relation
        .child_columns
        .iter()
        .zip(&relation.parent_columns)
        .map(|(child, parent)| format!("p.{} = s.{}", quote_ident(parent), quote_ident(child)))
        .collect();
    format!(
        "({} OR EXISTS (SELECT 1 FROM {catalog_from} AS p WHERE {}))",
        nulls.join(" OR "),
        matches.join(" AND ")
    )
}

/// The condition that a staged row may go in: every guarded parent present. `from_item`
/// names a table for a query (`ONLY "s"."t"`).
pub fn guards_hold(
    guards: &[&Relation],
    from_item: &dyn Fn(&Relation) -> String,
) -> Option<String> {
    if guards.is_empty() {
        return None;
    }
    Some(
        guards
            .iter()
            .map(|relation| parent_present(relation, &from_item(relation)))
            .collect::<Vec<_>>()
            .join(" AND "),
    )
}

/// `INSERT ... SELECT ... FROM staging [WHERE guards] ORDER BY key ON CONFLICT (key) DO
/// NOTHING`, ordered by key so concurrent tenants inserting the same shared rows take their
/// locks in the same order.
pub fn insert_from_staging(index: usize, table: &TablePlan, guards: Option<&str>) -> String {
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
    if let Some(guards) = guards {
        sql.push_str(&format!(" WHERE {guards}"));
    }
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

/// `t.k1 = s.k1 AND ...` over the table's key.
pub fn key_match(table: &TablePlan, left: &str, right: &str) -> String {
    table
        .key
        .iter()
        .flat_map(|key| &key.columns)
        .map(|column| {
            format!(
                "{left}.{} = {right}.{}",
                quote_ident(column),
                quote_ident(column)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Staged rows that are not in live and whose guarded parents are missing: they wait for the
/// other tenant.
pub fn count_waiting(index: usize, table: &TablePlan, from_item: &str, guards: &str) -> String {
    format!(
        "SELECT count(*)::int8 FROM {} AS s WHERE NOT EXISTS (SELECT 1 FROM {from_item} AS t WHERE {}) AND NOT ({guards})",
        staging_name(index),
        key_match(table, "t", "s")
    )
}

/// An INSERT and a count in one statement: `(rows inserted, count)`, both from the
/// statement's snapshot.
pub fn insert_counting(insert: &str, count: &str) -> String {
    format!(
        "WITH inserted AS ({insert} RETURNING 1) SELECT (SELECT count(*) FROM inserted)::int8, ({count})"
    )
}

/// Several tables' inserts in one statement (a cycle): every foreign key is checked at the
/// statement's end. Returns one count per table, in order.
pub fn insert_together(inserts: &[String]) -> String {
    let ctes: Vec<String> = inserts
        .iter()
        .enumerate()
        .map(|(index, insert)| format!("i{index} AS ({insert} RETURNING 1)"))
        .collect();
    let counts: Vec<String> = (0..inserts.len())
        .map(|index| format!("(SELECT count(*) FROM i{index})::int8"))
        .collect();
    format!(
        "WITH {} SELECT ARRAY[{}]",
        ctes.join(", "),
        counts.join(", ")
    )
}

/// Staged rows whose key live has, but on a row that does not belong to the tenant: at most
/// three, as key text. `owned` selects the tenant's keys in live.
pub fn keys_held_elsewhere(
    index: usize,
    table: &TablePlan,
    from_item: &str,
    owned: &str,
) -> String {
    let key_text: Vec<String> = table
        .key
        .iter()
        .flat_map(|key| &key.columns)
        .map(|column| format!("s.{}::text", quote_ident(column)))
        .collect();
    format!(
        "SELECT concat_ws(', ', {}) FROM {} AS s \
         WHERE EXISTS (SELECT 1 FROM {from_item} AS t WHERE {}) \
           AND NOT EXISTS (SELECT 1 FROM ({owned}) AS o WHERE {}) LIMIT 3",
        key_text.join(", "),
        staging_name(index),
        key_match(table, "t", "s"),
        key_match(table, "o", "s")
    )
}

/// The live row holding a staged row's value of a unique key: `(values) | (live row's key)`.
pub fn unique_holder(
    index: usize,
    table: &TablePlan,
    from_item: &str,
    unique: &[String],
    live_key: &[String],
) -> String {
    let matches: Vec<String> = unique
        .iter()
        .map(|column| format!("t.{} = s.{}", quote_ident(column), quote_ident(column)))
        .collect();
    let values: Vec<String> = unique
        .iter()
        .map(|column| format!("s.{}::text", quote_ident(column)))
        .collect();
    let holder: Vec<String> = live_key
        .iter()
        .map(|column| format!("t.{}::text", quote_ident(column)))
        .collect();
    let different = if table.key.is_some() {
        format!(" AND NOT ({})", key_match(table, "t", "s"))
    } else {
        String::new()
    };
    format!(
        "SELECT concat_ws(', ', {}), concat_ws(', ', {}) FROM {} AS s JOIN {from_item} AS t ON {}{different} LIMIT 1",
        values.join(", "),
        if holder.is_empty() {
            "t.ctid::text".to_owned()
        } else {
            holder.join(", ")
        },
        staging_name(index),
        matches.join(" AND ")
    )
}

/// Where the largest restored value of a sequence-backed column comes from.
#[derive(Debug, Clone, Copy)]
pub enum SequenceSource<'a> {
    /// The column of a staging table (the tenant's rows, until commit).
    Staging { index: usize, column: &'a str },
    /// A value noted while the rows went by.
    Value(i64),
}

/// Moves sequences ahead of the largest restored values, never back, in one statement: each
/// moves only when the restored maximum reaches the sequence's last value, and then only if
/// `nextval` (atomic, so a concurrent session's progress is seen) is still not past it. Gives
/// an array with each new value, or NULL where nothing moved. Parameters: `$1..$n` the
/// sequences' quoted names, then the `Value` maxima in order.
pub fn advance_sequences(sources: &[SequenceSource<'_>], sequences: &[&str]) -> String {
    let mut next_value = sources.len();
    let parts: Vec<String> = sources
        .iter()
        .zip(sequences)
        .enumerate()
        .map(|(n, (source, sequence))| {
            let name = n + 1;
            let maximum = match source {
                SequenceSource::Staging { index, column } => {
                    format!("(SELECT max(s.{})::int8 FROM {} AS s)", quote_ident(column), staging_name(*index))
                }
                SequenceSource::Value(_) => {
                    next_value += 1;
                    format!("${next_value}::int8")
                }
            };
            format!(
                "(SELECT CASE WHEN m.v IS NOT NULL AND m.v >= q.last_value THEN \
                   CASE WHEN pg_catalog.nextval(${name}::regclass) <= m.v THEN pg_catalog.setval(${name}::regclass, m.v) END \
                 END \
                 FROM (SELECT {maximum} AS v) AS m, {sequence} AS q)"
            )
        })
        .collect();
    format!("SELECT ARRAY[{}]::int8[]", parts.join(", "))
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
            secondary: Vec::new(),
            guards: Vec::new(),
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
            insert_from_staging(2, &table(), None),
            "INSERT INTO \"public\".\"issues\" AS t (\"id\", \"site_id\") OVERRIDING SYSTEM VALUE \
             SELECT s.\"id\", s.\"site_id\" FROM pg_temp.\"salvage_stage_2\" AS s ORDER BY s.\"id\" ON CONFLICT (\"id\") DO NOTHING"
        );
    }
}
