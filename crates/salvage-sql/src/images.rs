//! Changing rows live already has (modes `overwrite` and `exact`) and keeping what was there:
//! the typed comparison that says which of a tenant's rows differ and in which columns, and
//! the `UPDATE` and `DELETE` that each save the live row's version in the journal's
//! `row_images` in the same statement, plus the record of the rows a tenant inserted (what
//! `salvage undo` removes).
//!
//! Images are `to_json(row)` (before) and `md5(to_json(row)::text)` (after), both under
//! salvage's pinned session settings, so an undo on another connection compares like with
//! like. Keys are the live columns' `::text`, in the key's column order.

use salvage_catalog::QualifiedName;
use salvage_quote::{quote_ident, quote_literal};

use crate::names::{array_parameter, cast_type, unnest};

/// A column and its live type.
#[derive(Debug, Clone)]
pub struct Typed {
    pub name: String,
    pub live_type: String,
    /// Whether values compare with the type's equality (else by their text).
    pub by_value: bool,
}

/// Where the images of a tenant's changes go: parameters `$1` run ID, `$2` the tenant's
/// position, `$3` step, `$4` table schema, `$5` table name, `$6` key columns (text[]); the
/// rows' arrays follow from `$7`.
#[derive(Debug, Clone)]
pub struct ImageTable {
    /// `"salvage"."row_images"`, quoted.
    pub quoted: String,
}

/// The first parameter after the image's own six.
pub const FIRST_ROW_PARAMETER: usize = 7;

/// Whether the live value of `column` (in `t`) and the bound text `value` differ, typed when
/// the type compares by value, else by text.
fn differs(alias: &str, column: &Typed, value: &str) -> String {
    if column.by_value {
        format!(
            "{alias}.{} IS DISTINCT FROM {value}::{}",
            quote_ident(&column.name),
            cast_type(&column.live_type)
        )
    } else {
        format!(
            "{alias}.{}::text IS DISTINCT FROM {value}",
            quote_ident(&column.name)
        )
    }
}

/// For rows bound as `$1…` (text arrays: the key's columns, then `compared`'s), the number
/// (from 1) of each row live has by that key and the names of the compared columns whose
/// values differ (an empty array: equal). Each key is probed on the key's index.
#[must_use]
pub fn changed_columns(from: &str, key: &[Typed], compared: &[Typed]) -> String {
    let arrays: Vec<String> = (0..key.len() + compared.len())
        .map(|n| array_parameter(n + 1, "text"))
        .collect();
    let aliases: Vec<String> = (0..key.len())
        .map(|n| format!("k{n}"))
        .chain((0..compared.len()).map(|n| format!("v{n}")))
        .collect();
    let matches: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(n, column)| {
            format!(
                "t.{} = a.k{n}::{}",
                quote_ident(&column.name),
                cast_type(&column.live_type)
            )
        })
        .collect();
    let cases: Vec<String> = compared
        .iter()
        .enumerate()
        .map(|(n, column)| {
            format!(
                "CASE WHEN {} THEN {} END",
                differs("t", column, &format!("a.v{n}")),
                quote_literal(&column.name)
            )
        })
        .collect();
    let changed = if cases.is_empty() {
        "'{}'::text[]".to_owned()
    } else {
        format!(
            "pg_catalog.array_remove(ARRAY[{}]::text[], NULL)",
            cases.join(", ")
        )
    };
    format!(
        "SELECT a.n::int4, hit.changed FROM {} WITH ORDINALITY AS a({}, n) CROSS JOIN LATERAL \
         (SELECT {changed} AS changed FROM {from} AS t WHERE {} LIMIT 1) AS hit",
        unnest(&arrays),
        aliases.join(", "),
        matches.join(" AND ")
    )
}

/// `ARRAY[t."k"::text, …]`.
fn key_text(alias: &str, key: &[Typed]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|column| format!("{alias}.{}::text", quote_ident(&column.name)))
        .collect();
    format!("ARRAY[{}]::text[]", parts.join(", "))
}

fn key_matches(key: &[Typed], first: usize) -> Vec<String> {
    key.iter()
        .enumerate()
        .map(|(n, column)| {
            format!(
                "t.{} = a.c{}::{}",
                quote_ident(&column.name),
                first + n,
                cast_type(&column.live_type)
            )
        })
        .collect()
}

/// The `INSERT INTO row_images … SELECT … FROM <cte>` that ends an image statement.
fn keep_images(
    images: &ImageTable,
    cte: &str,
    action: &str,
    columns: &str,
    before: &str,
    after: &str,
) -> String {
    format!(
        "INSERT INTO {} (run_id, position, step, table_schema, table_name, key_columns, key, \
         action, columns, before, after_md5) \
         SELECT $1, $2, $3, $4, $5, $6::text[], {cte}.key, {}, {columns}, {before}, {after} FROM {cte}",
        images.quoted,
        quote_literal(action)
    )
}

/// Sets the rows bound from `$7` (text arrays: the key's columns, then `set`'s) to the
/// bound values, and keeps each row's version before (`to_json`) and after (md5) with the
/// columns whose text changed, in one statement. Returns a row per row updated: its key.
/// The row before is the same row read by its ctid in the statement's snapshot.
#[must_use]
pub fn update_keeping_images(
    table: &QualifiedName,
    key: &[Typed],
    set: &[Typed],
    images: &ImageTable,
) -> String {
    let first = FIRST_ROW_PARAMETER;
    let arrays: Vec<String> = (0..key.len() + set.len())
        .map(|n| array_parameter(first + n, "text"))
        .collect();
    let aliases: Vec<String> = (0..key.len() + set.len())
        .map(|n| format!("c{n}"))
        .collect();
    let assignments: Vec<String> = set
        .iter()
        .enumerate()
        .map(|(n, column)| {
            format!(
                "{} = a.c{}::{}",
                quote_ident(&column.name),
                key.len() + n,
                cast_type(&column.live_type)
            )
        })
        .collect();
    let cases: Vec<String> = set
        .iter()
        .map(|column| {
            format!(
                "CASE WHEN o.{name}::text IS DISTINCT FROM t.{name}::text THEN {} END",
                quote_literal(&column.name),
                name = quote_ident(&column.name)
            )
        })
        .collect();
    let update = format!(
        "UPDATE {table} AS t SET {} FROM {} AS a({}), {table} AS o WHERE {} AND o.ctid = t.ctid \
         RETURNING {} AS key, pg_catalog.to_json(o.*) AS before, \
         pg_catalog.md5(pg_catalog.to_json(t.*)::text) AS after, \
         pg_catalog.array_remove(ARRAY[{}]::text[], NULL) AS changed",
        assignments.join(", "),
        unnest(&arrays),
        aliases.join(", "),
        key_matches(key, 0).join(" AND "),
        key_text("t", key),
        cases.join(", "),
        table = table.quoted(),
    );
    format!(
        "WITH u AS ({update}) {} RETURNING key, columns",
        keep_images(images, "u", "update", "u.changed", "u.before", "u.after")
    )
}

/// Deletes the rows whose keys are bound from `$7` (text arrays, the key's columns) and
/// keeps each deleted row's version (`to_json`), in one statement. Returns a row per row
/// deleted: its key.
#[must_use]
pub fn delete_keeping_images(table: &QualifiedName, key: &[Typed], images: &ImageTable) -> String {
    let first = FIRST_ROW_PARAMETER;
    let arrays: Vec<String> = (0..key.len())
        .map(|n| array_parameter(first + n, "text"))
        .collect();
    let aliases: Vec<String> = (0..key.len()).map(|n| format!("c{n}")).collect();
    let delete = format!(
        "DELETE FROM {} AS t USING {} AS a({}) WHERE {} \
         RETURNING {} AS key, pg_catalog.to_json(t.*) AS before",
        table.quoted(),
        unnest(&arrays),
        aliases.join(", "),
        key_matches(key, 0).join(" AND "),
        key_text("t", key),
    );
    format!(
        "WITH d AS ({delete}) {} RETURNING key",
        keep_images(images, "d", "delete", "NULL", "d.before", "NULL")
    )
}

/// One table's inserted rows recorded by [`record_inserts`]: how a query reads the table, and
/// its key's columns with their live types.
#[derive(Debug, Clone)]
pub struct Inserted {
    pub from: String,
    pub key: Vec<Typed>,
}

/// Records the rows a tenant inserted into several tables (steps) in one statement, each
/// with the md5 of its version now. `$1` run ID, `$2` position; then per table, in order,
/// its step, schema, name and key columns (text[]) and one text array per key column.
/// Returns one row: the rows recorded.
#[must_use]
pub fn record_inserts(tables: &[Inserted], images: &ImageTable) -> String {
    let mut next = 3;
    let mut ctes = Vec::with_capacity(tables.len());
    for (number, table) in tables.iter().enumerate() {
        let (step, schema, name, columns) = (next, next + 1, next + 2, next + 3);
        next += 4;
        let arrays: Vec<String> = (0..table.key.len())
            .map(|n| array_parameter(next + n, "text"))
            .collect();
        next += table.key.len();
        let aliases: Vec<String> = (0..table.key.len()).map(|n| format!("c{n}")).collect();
        ctes.push(format!(
            "r{number} AS (INSERT INTO {} (run_id, position, step, table_schema, table_name, \
             key_columns, key, action, after_md5) \
             SELECT $1, $2, ${step}, ${schema}, ${name}, ${columns}::text[], {}, 'insert', \
             pg_catalog.md5(pg_catalog.to_json(t.*)::text) \
             FROM {} AS a({}) CROSS JOIN LATERAL (SELECT * FROM {} AS t WHERE {} LIMIT 1) AS t \
             RETURNING 1)",
            images.quoted,
            key_text("t", &table.key),
            unnest(&arrays),
            aliases.join(", "),
            table.from,
            key_matches(&table.key, 0).join(" AND "),
        ));
    }
    let counts: Vec<String> = (0..tables.len())
        .map(|number| format!("(SELECT pg_catalog.count(*) FROM r{number})"))
        .collect();
    format!(
        "WITH {} SELECT ({})::int8",
        ctes.join(", "),
        counts.join(" + ")
    )
}

/// One table of [`insert_batch`]: its insert and, when its rows are recorded for undo, its
/// key's columns.
#[derive(Debug, Clone)]
pub struct BatchTable<'a> {
    pub table: &'a QualifiedName,
    pub columns: &'a [crate::insert::Written],
    /// `OVERRIDING SYSTEM VALUE`: the table has an identity column generated always.
    pub overriding: bool,
    pub recorded: Option<&'a [Typed]>,
}

/// Whose rows an [`insert_batch`] writes, for their records in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenants {
    /// One tenant's: `$2` is its position, and each recorded table has a step of its own.
    One,
    /// Several tenants' (each table's rows of all of them in one insert): each recorded
    /// table binds, per row, its tenant's position and step, and its rows' images are
    /// matched with them by key.
    Several,
}

/// Small tenants' rows of several tables inserted in one statement (one round trip where
/// `COPY` costs two per table): no conflict target — like `COPY`, a row live has already is
/// an error —, every foreign key checked at the statement's end, when every row is there.
/// With `images`, each recorded table's rows go into the journal from what its insert
/// returns (key, md5 of the row as written): nothing is read back. Parameters: with
/// `images`, `$1` run ID and, for [`Tenants::One`], `$2` position; then per table, in
/// order, when recorded its step (`One`), schema, name and key columns (text[]) and, for
/// [`Tenants::Several`], the positions and steps of its rows (int4[]), and one text array
/// per written column (a recorded table's key columns among them); then, with `sequences`
/// (quoted names) to move ahead of the restored values as
/// [`crate::session::advance_sequences`] does, their names and maxima. Returns one row: the
/// rows inserted per table (int8[]), the rows recorded (int8), the sequences' new values
/// (int8[], empty without `sequences`).
///
/// # Panics
///
/// With [`Tenants::Several`], when a recorded table's key column is not among its written
/// columns (the caller writes such a tenant alone).
#[must_use]
pub fn insert_batch(
    tables: &[BatchTable<'_>],
    images: Option<&ImageTable>,
    tenants: Tenants,
    sequences: &[String],
) -> String {
    let mut next = match (images, tenants) {
        (None, _) => 1,
        (Some(_), Tenants::One) => 3,
        (Some(_), Tenants::Several) => 2,
    };
    let mut ctes = Vec::with_capacity(tables.len() + 1);
    // Each recorded table's images, one `SELECT` each, inserted by one statement: an insert
    // node per table cost a small tenant as much as its own rows' inserts.
    let mut images_of = Vec::new();
    for (number, table) in tables.iter().enumerate() {
        let alias = format!("i{number}");
        let record = images.and(table.recorded).map(|key| {
            let fixed = |schema: usize| {
                format!(
                    "${schema}::text, ${}::text, ${}::text[], {}, \
                     pg_catalog.md5(pg_catalog.to_json({alias}.*)::text)",
                    schema + 1,
                    schema + 2,
                    key_text(&alias, key)
                )
            };
            match tenants {
                Tenants::One => {
                    let step = next;
                    next += 4;
                    format!(
                        "SELECT ${step}::int4, {}, $2::int4 FROM {alias}",
                        fixed(step + 1)
                    )
                }
                Tenants::Several => {
                    // The rows' own tags, matched by key with what the insert returns; the
                    // key's values are the insert's own arrays.
                    let (schema, positions, steps) = (next, next + 3, next + 4);
                    next += 5;
                    let mut arrays =
                        vec![format!("${positions}::int4[]"), format!("${steps}::int4[]")];
                    let mut matches = Vec::with_capacity(key.len());
                    for (n, column) in key.iter().enumerate() {
                        let place = table
                            .columns
                            .iter()
                            .position(|written| written.name == column.name)
                            .expect("a recorded table's key columns are written");
                        arrays.push(array_parameter(next + place, "text"));
                        matches.push(format!(
                            "{alias}.{} = k.c{n}::{}",
                            quote_ident(&column.name),
                            cast_type(&column.live_type)
                        ));
                    }
                    let aliases: Vec<String> = ["position".to_owned(), "step".to_owned()]
                        .into_iter()
                        .chain((0..key.len()).map(|n| format!("c{n}")))
                        .collect();
                    format!(
                        "SELECT k.step, {}, k.position FROM {alias} JOIN {} AS k({}) ON {}",
                        fixed(schema),
                        unnest(&arrays),
                        aliases.join(", "),
                        matches.join(" AND ")
                    )
                }
            }
        });
        let insert = crate::insert::insert_from_arrays(
            table.table,
            table.columns,
            next,
            None,
            table.overriding,
        );
        next += table.columns.len();
        let returning = if record.is_some() { "t.*" } else { "1" };
        ctes.push(format!("{alias} AS ({insert} RETURNING {returning})"));
        images_of.extend(record);
    }
    let recorded = match images {
        Some(images) if !images_of.is_empty() => {
            ctes.push(format!(
                "r AS (INSERT INTO {} (run_id, position, step, table_schema, table_name, \
                 key_columns, key, action, after_md5) \
                 SELECT $1::text, m.position, m.step, m.table_schema, m.table_name, \
                 m.key_columns, m.key, 'insert', m.after_md5 FROM ({}) AS m(step, \
                 table_schema, table_name, key_columns, key, after_md5, position) RETURNING 1)",
                images.quoted,
                images_of.join(" UNION ALL ")
            ));
            "(SELECT pg_catalog.count(*) FROM r)".to_owned()
        }
        _ => "0".to_owned(),
    };
    let inserted: Vec<String> = (0..tables.len())
        .map(|number| format!("(SELECT pg_catalog.count(*) FROM i{number})::int8"))
        .collect();
    let moved = if sequences.is_empty() {
        "'{}'::int8[]".to_owned()
    } else {
        crate::session::sequences_advanced(sequences, next)
    };
    format!(
        "WITH {} SELECT ARRAY[{}], ({recorded})::int8, {moved}",
        ctes.join(", "),
        inserted.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(name: &str, live_type: &str, by_value: bool) -> Typed {
        Typed {
            name: name.to_owned(),
            live_type: live_type.to_owned(),
            by_value,
        }
    }

    fn images() -> ImageTable {
        ImageTable {
            quoted: "\"salvage\".\"row_images\"".to_owned(),
        }
    }

    #[test]
    fn changed_columns_compares_typed_or_by_text_and_probes_the_key() {
        let sql = changed_columns(
            "ONLY \"public\".\"t\"",
            &[typed("id", "integer", true)],
            &[
                typed("amount", "numeric", true),
                typed("doc", "json", false),
            ],
        );
        assert_eq!(
            sql,
            "SELECT a.n::int4, hit.changed FROM ROWS FROM (pg_catalog.unnest($1::text[]), \
             pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) WITH ORDINALITY AS \
             a(k0, v0, v1, n) CROSS JOIN LATERAL (SELECT pg_catalog.array_remove(ARRAY[CASE WHEN \
             t.\"amount\" IS DISTINCT FROM a.v0::numeric THEN 'amount' END, CASE WHEN \
             t.\"doc\"::text IS DISTINCT FROM a.v1 THEN 'doc' END]::text[], NULL) AS changed \
             FROM ONLY \"public\".\"t\" AS t WHERE t.\"id\" = a.k0::integer LIMIT 1) AS hit"
        );
    }

    #[test]
    fn update_keeps_the_row_before_from_the_same_snapshot() {
        let table = QualifiedName::new("public", "t");
        let sql = update_keeping_images(
            &table,
            &[typed("id", "integer", true)],
            &[typed("name", "text", true)],
            &images(),
        );
        assert!(sql.starts_with(
            "WITH u AS (UPDATE \"public\".\"t\" AS t SET \"name\" = a.c1::text FROM ROWS FROM \
             (pg_catalog.unnest($7::text[]), pg_catalog.unnest($8::text[])) AS a(c0, c1), \
             \"public\".\"t\" AS o WHERE t.\"id\" = a.c0::integer AND o.ctid = t.ctid"
        ));
        assert!(sql.contains("pg_catalog.to_json(o.*) AS before"));
        assert!(sql.contains("INSERT INTO \"salvage\".\"row_images\""));
        assert!(sql.ends_with("RETURNING key, columns"));
    }

    #[test]
    fn a_batch_records_what_its_inserts_return() {
        let (t, u) = (
            QualifiedName::new("public", "t"),
            QualifiedName::new("public", "u"),
        );
        let columns = [
            crate::insert::Written {
                name: "id".into(),
                live_type: "bigint".into(),
            },
            crate::insert::Written {
                name: "note".into(),
                live_type: "text".into(),
            },
        ];
        let key = [typed("id", "bigint", true)];
        let recorded = [
            BatchTable {
                table: &t,
                columns: &columns,
                overriding: false,
                recorded: Some(&key),
            },
            BatchTable {
                table: &u,
                columns: &columns[..1],
                overriding: true,
                recorded: None,
            },
        ];
        let sql = insert_batch(&recorded, Some(&images()), Tenants::One, &[]);
        assert!(sql.starts_with(
            "WITH i0 AS (INSERT INTO \"public\".\"t\" AS t (\"id\", \"note\") SELECT \
             a.c0::bigint, a.c1::text FROM ROWS FROM (pg_catalog.unnest($7::text[]), \
             pg_catalog.unnest($8::text[])) AS a(c0, c1) RETURNING t.*), i1 AS"
        ));
        // One insert of the images, after the tables' inserts, each recorded table's a branch.
        assert!(sql.contains(
            "r AS (INSERT INTO \"salvage\".\"row_images\" (run_id, position, step, \
             table_schema, table_name, key_columns, key, action, after_md5) SELECT $1::text, \
             m.position, m.step, m.table_schema, m.table_name, m.key_columns, m.key, \
             'insert', m.after_md5 FROM (SELECT $3::int4, $4::text, $5::text, $6::text[], \
             ARRAY[i0.\"id\"::text]::text[], pg_catalog.md5(pg_catalog.to_json(i0.*)::text), \
             $2::int4 FROM i0) AS m(step, table_schema, table_name, key_columns, key, \
             after_md5, position) RETURNING 1)"
        ));
        // The unrecorded table's array follows the first table's, after no fixed parameters.
        assert!(sql.contains(
            "i1 AS (INSERT INTO \"public\".\"u\" AS t (\"id\") OVERRIDING SYSTEM VALUE SELECT \
             a.c0::bigint FROM pg_catalog.unnest($9::text[]) AS a(c0) RETURNING 1)"
        ));
        assert!(!sql.contains("ON CONFLICT"));
        assert!(sql.ends_with(
            "SELECT ARRAY[(SELECT pg_catalog.count(*) FROM i0)::int8, (SELECT \
             pg_catalog.count(*) FROM i1)::int8], ((SELECT pg_catalog.count(*) FROM r))::int8, \
             '{}'::int8[]"
        ));
        let plain = insert_batch(
            &recorded,
            None,
            Tenants::One,
            &["\"public\".\"t_id_seq\"".into()],
        );
        assert!(plain.contains("pg_catalog.unnest($1::text[])"));
        assert!(!plain.contains("row_images"));
        // The sequence's name and maximum follow the three arrays.
        assert!(plain.contains(", (0)::int8, ARRAY[(SELECT CASE WHEN $5::int8 >= q.last_value"));
        assert!(plain.contains("pg_catalog.nextval($4::regclass)"));
    }

    #[test]
    fn a_batch_of_several_tenants_tags_each_row_and_matches_its_image_by_key() {
        let t = QualifiedName::new("public", "t");
        let columns = [
            crate::insert::Written {
                name: "note".into(),
                live_type: "text".into(),
            },
            crate::insert::Written {
                name: "id".into(),
                live_type: "bigint".into(),
            },
        ];
        let key = [typed("id", "bigint", true)];
        let table = [BatchTable {
            table: &t,
            columns: &columns,
            overriding: false,
            recorded: Some(&key),
        }];
        let sql = insert_batch(&table, Some(&images()), Tenants::Several, &[]);
        // $1 run ID; $2..$4 schema, name, key columns; $5 positions, $6 steps; $7, $8 the
        // columns, the key ("id") the second of them.
        assert!(sql.contains(
            "SELECT a.c0::text, a.c1::bigint FROM ROWS FROM (pg_catalog.unnest($7::text[]), \
             pg_catalog.unnest($8::text[])) AS a(c0, c1) RETURNING t.*)"
        ));
        assert!(sql.contains(
            "FROM (SELECT k.step, $2::text, $3::text, $4::text[], ARRAY[i0.\"id\"::text]::text[], \
             pg_catalog.md5(pg_catalog.to_json(i0.*)::text), k.position FROM i0 JOIN ROWS FROM \
             (pg_catalog.unnest($5::int4[]), pg_catalog.unnest($6::int4[]), \
             pg_catalog.unnest($8::text[])) AS k(position, step, c0) ON i0.\"id\" = \
             k.c0::bigint) AS m("
        ));
        assert!(!sql.contains("$9"));
    }

    #[test]
    fn delete_and_inserts_name_their_action() {
        let table = QualifiedName::new("public", "t");
        let key = [typed("a", "integer", true), typed("b", "text", true)];
        let delete = delete_keeping_images(&table, &key, &images());
        assert!(delete.contains("DELETE FROM \"public\".\"t\" AS t USING"));
        assert!(delete.contains("t.\"a\" = a.c0::integer AND t.\"b\" = a.c1::text"));
        assert!(delete.contains("'delete'"));
        let inserts = record_inserts(
            &[
                Inserted {
                    from: "ONLY \"public\".\"t\"".to_owned(),
                    key: key.to_vec(),
                },
                Inserted {
                    from: "ONLY \"public\".\"u\"".to_owned(),
                    key: key[..1].to_vec(),
                },
            ],
            &images(),
        );
        assert!(inserts.contains("'insert'"));
        assert!(inserts.contains("LIMIT 1"));
        // The second table's parameters follow the first's two key arrays.
        assert!(inserts.contains("SELECT $1, $2, $9, $10, $11, $12::text[]"));
        assert!(inserts.ends_with("SELECT ((SELECT pg_catalog.count(*) FROM r0) + (SELECT pg_catalog.count(*) FROM r1))::int8"));
    }
}
