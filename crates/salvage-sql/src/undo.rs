//! What `salvage undo` runs against live: the checks of a tenant's row images (is each row
//! still as the run left it?) and the statements that put it back, one step of images at a
//! time. The images are read where they are, in the journal's `row_images` table, joined
//! with the live table on the key cast to the live column's type; a row's saved version is
//! read back with `json_populate_record(NULL::table, before)`. Every statement takes the
//! run, the tenant's position and the step as `$1`, `$2`, `$3` and nothing else is bound:
//! no values travel through the client.

use salvage_catalog::QualifiedName;
use salvage_quote::quote_ident;

use crate::names::{cast_type, column_list, columns_of};

/// A live table as the statements of one step of images need it.
#[derive(Debug, Clone)]
pub struct UndoTable {
    pub name: QualifiedName,
    /// How a statement names the table's rows (`ONLY "s"."t"`, or the partitioned table).
    pub from: String,
    /// The key columns, in the images' `key_columns` order, with the live column's type.
    pub key: Vec<(String, String)>,
    /// The columns an INSERT writes: every column that is not generated.
    pub insertable: Vec<String>,
    /// The columns an UPDATE sets: not generated, and not identity `ALWAYS` (those may only
    /// be set to DEFAULT; they are keys in practice).
    pub settable: Vec<String>,
    /// Some column is an identity `ALWAYS`: a re-insert says `OVERRIDING SYSTEM VALUE`.
    pub overriding: bool,
}

/// The images of one step of one tenant (`i` in every statement).
const STEP: &str = "i.run_id = $1 AND i.position = $2 AND i.step = $3";

/// `t."a" = (i.key[1])::integer AND t."b" = (i.key[2])::text`: the live row an image names,
/// matched by typed value (the image holds the key's text under the pinned settings).
fn key_matches(table: &UndoTable) -> String {
    table
        .key
        .iter()
        .enumerate()
        .map(|(n, (column, type_name))| {
            format!(
                "t.{} = (i.key[{}])::{}",
                quote_ident(column),
                n + 1,
                cast_type(type_name)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// What a check of one step finds wrong, per image: `(key text[], gone bool)`, in image
/// order, each live row locked (`FOR UPDATE`) until the tenant's transaction ends, so what
/// was checked is what is changed.
///
/// - `insert`, `update` images (`present = true`): the rows that are gone, or whose
///   `md5(to_json(t.*)::text)` is not the image's `after_md5` (changed after the run).
/// - `delete` images (`present = false`): the rows live holds again (re-created).
#[must_use]
pub fn check(table: &UndoTable, images: &str, present: bool) -> String {
    let wrong = if present {
        "l.md5 IS NULL OR l.md5 IS DISTINCT FROM i.after_md5"
    } else {
        "l.md5 IS NOT NULL"
    };
    format!(
        "SELECT i.key, l.md5 IS NULL AS gone FROM {images} AS i LEFT JOIN LATERAL \
         (SELECT pg_catalog.md5(pg_catalog.to_json(t.*)::text) AS md5 FROM {from} AS t WHERE {matches} FOR UPDATE) AS l ON true \
         WHERE {STEP} AND ({wrong}) ORDER BY i.id",
        from = table.from,
        matches = key_matches(table),
    )
}

/// A foreign key into a table whose inserted rows an undo removes: the referencing table
/// (as a query reads it), its columns, the referenced columns, and the referencing table's
/// key (the columns images name its rows by; empty when it has none).
#[derive(Debug, Clone)]
pub struct Referencing {
    pub from: String,
    pub columns: Vec<String>,
    pub referenced: Vec<String>,
    pub key: Vec<String>,
}

/// The keys of a step's inserted rows that a row of `by` references and that this tenant's
/// undo does not remove or put back itself (`insert` and `update` images of the same tenant,
/// by `$4` schema and `$5` name of the referencing table) — one row each, with the tenant of
/// the run (not undone) whose restore inserted the referencing row, if one did (`tenants`:
/// the journal's `run_tenants`), else NULL: a row written after the run. Removing the row
/// would take the referencing one along (`ON DELETE CASCADE`, `SET NULL`) or fail.
#[must_use]
pub fn referenced(table: &UndoTable, images: &str, tenants: &str, by: &Referencing) -> String {
    let joins: Vec<String> = by
        .columns
        .iter()
        .zip(&by.referenced)
        .map(|(column, referenced)| {
            format!("c.{} = t.{}", quote_ident(column), quote_ident(referenced))
        })
        .collect();
    let (own, needed_by) = if by.key.is_empty() {
        (String::new(), "NULL::text".to_owned())
    } else {
        let key: Vec<String> = by
            .key
            .iter()
            .map(|column| format!("c.{}::text", quote_ident(column)))
            .collect();
        let key = format!("ARRAY[{}]::text[]", key.join(", "));
        (
            format!(
                " AND NOT EXISTS (SELECT FROM {images} AS j WHERE j.run_id = $1 AND j.position = $2 \
                 AND j.action IN ('insert', 'update') AND j.table_schema = $4 AND j.table_name = $5 \
                 AND j.key = {key})"
            ),
            format!(
                "(SELECT o.tenant FROM {images} AS j JOIN {tenants} AS o ON o.run_id = j.run_id \
                 AND o.position = j.position WHERE j.run_id = $1 AND j.position <> $2 \
                 AND j.action = 'insert' AND j.table_schema = $4 AND j.table_name = $5 \
                 AND j.key = {key} AND o.undone_by IS NULL ORDER BY o.position LIMIT 1)"
            ),
        )
    };
    format!(
        "SELECT i.key, c.needed_by FROM {images} AS i JOIN {from} AS t ON {matches} \
         CROSS JOIN LATERAL (SELECT {needed_by} AS needed_by FROM {by_from} AS c WHERE {joins}{own} \
         ORDER BY 1 NULLS FIRST LIMIT 1) AS c WHERE {STEP} ORDER BY i.id",
        from = table.from,
        matches = key_matches(table),
        by_from = by.from,
        joins = joins.join(" AND "),
    )
}

/// Removes the rows a step inserted: `DELETE … USING` the images, by typed key; one row,
/// the count.
#[must_use]
pub fn remove(table: &UndoTable, images: &str) -> String {
    format!(
        "WITH removed AS (DELETE FROM {from} AS t USING {images} AS i WHERE {STEP} AND {matches} RETURNING 1) \
         SELECT pg_catalog.count(*) FROM removed",
        from = table.from,
        matches = key_matches(table),
    )
}

/// Puts the rows of a step that live holds back to their saved versions: `UPDATE … SET
/// (cols) = (SELECT cols FROM json_populate_record(NULL::t, i.before))`, by typed key; one
/// row, the count. A table with nothing to set counts the rows instead.
#[must_use]
pub fn put_back_present(table: &UndoTable, images: &str) -> String {
    let matches = key_matches(table);
    if table.settable.is_empty() {
        return format!(
            "SELECT pg_catalog.count(*) FROM {from} AS t, {images} AS i WHERE {STEP} AND {matches}",
            from = table.from,
        );
    }
    format!(
        "WITH put AS (UPDATE {from} AS t SET ({columns}) = \
         (SELECT {values} FROM pg_catalog.json_populate_record(NULL::{row_type}, i.before) AS r) \
         FROM {images} AS i WHERE {STEP} AND {matches} RETURNING 1) \
         SELECT pg_catalog.count(*) FROM put",
        from = table.from,
        columns = column_list(&table.settable),
        values = columns_of("r", &table.settable),
        row_type = table.name.quoted(),
    )
}

/// Re-inserts the rows of a step that live lacks from their saved versions (`INSERT … SELECT
/// cols FROM images, json_populate_record(NULL::t, before)`), in image order; one row, the
/// count.
#[must_use]
pub fn put_back_missing(table: &UndoTable, images: &str) -> String {
    format!(
        "WITH added AS (INSERT INTO {name} ({columns}){overriding} \
         SELECT {values} FROM {images} AS i \
         CROSS JOIN LATERAL pg_catalog.json_populate_record(NULL::{name}, i.before) AS r \
         WHERE {STEP} AND NOT EXISTS (SELECT FROM {from} AS t WHERE {matches}) ORDER BY i.id RETURNING 1) \
         SELECT pg_catalog.count(*) FROM added",
        name = table.name.quoted(),
        columns = column_list(&table.insertable),
        overriding = if table.overriding {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        },
        values = columns_of("r", &table.insertable),
        from = table.from,
        matches = key_matches(table),
    )
}

/// For each table bound in `$1` (quoted names, text[]): its position (from 1), whether the
/// role may SELECT, INSERT, UPDATE and DELETE it, and whether row-level security applies to
/// the role. Tables that do not resolve are left out.
pub const TABLE_RIGHTS: &str = "SELECT t.n::int4, \
    pg_catalog.has_table_privilege(c.oid, 'SELECT'), \
    pg_catalog.has_table_privilege(c.oid, 'INSERT'), \
    pg_catalog.has_table_privilege(c.oid, 'UPDATE'), \
    pg_catalog.has_table_privilege(c.oid, 'DELETE'), \
    pg_catalog.row_security_active(c.oid) \
    FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS t(name, n) \
    JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.name) \
    ORDER BY 1";

#[cfg(test)]
mod tests {
    use salvage_catalog::QualifiedName;

    use super::{UndoTable, check, put_back_missing, put_back_present, remove};

    const IMAGES: &str = r#""salvage"."row_images""#;

    fn issues() -> UndoTable {
        UndoTable {
            name: QualifiedName::new("public", "Issues"),
            from: r#"ONLY "public"."Issues""#.to_owned(),
            key: vec![
                ("site id".to_owned(), "bigint".to_owned()),
                ("number".to_owned(), "integer".to_owned()),
            ],
            insertable: vec![
                "site id".to_owned(),
                "number".to_owned(),
                "title".to_owned(),
            ],
            settable: vec!["title".to_owned()],
            overriding: false,
        }
    }

    #[test]
    fn checks_rows_by_typed_key_and_digest_locking_them() {
        assert_eq!(
            check(&issues(), IMAGES, true),
            r#"SELECT i.key, l.md5 IS NULL AS gone FROM "salvage"."row_images" AS i LEFT JOIN LATERAL (SELECT pg_catalog.md5(pg_catalog.to_json(t.*)::text) AS md5 FROM ONLY "public"."Issues" AS t WHERE t."site id" = (i.key[1])::bigint AND t."number" = (i.key[2])::integer FOR UPDATE) AS l ON true WHERE i.run_id = $1 AND i.position = $2 AND i.step = $3 AND (l.md5 IS NULL OR l.md5 IS DISTINCT FROM i.after_md5) ORDER BY i.id"#
        );
        assert!(check(&issues(), IMAGES, false).contains("AND (l.md5 IS NOT NULL) ORDER BY i.id"));
    }

    #[test]
    fn removes_inserted_rows_by_typed_key() {
        assert_eq!(
            remove(&issues(), IMAGES),
            r#"WITH removed AS (DELETE FROM ONLY "public"."Issues" AS t USING "salvage"."row_images" AS i WHERE i.run_id = $1 AND i.position = $2 AND i.step = $3 AND t."site id" = (i.key[1])::bigint AND t."number" = (i.key[2])::integer RETURNING 1) SELECT pg_catalog.count(*) FROM removed"#
        );
    }

    #[test]
    fn puts_present_rows_back_from_their_saved_versions() {
        assert_eq!(
            put_back_present(&issues(), IMAGES),
            r#"WITH put AS (UPDATE ONLY "public"."Issues" AS t SET ("title") = (SELECT r."title" FROM pg_catalog.json_populate_record(NULL::"public"."Issues", i.before) AS r) FROM "salvage"."row_images" AS i WHERE i.run_id = $1 AND i.position = $2 AND i.step = $3 AND t."site id" = (i.key[1])::bigint AND t."number" = (i.key[2])::integer RETURNING 1) SELECT pg_catalog.count(*) FROM put"#
        );
        let keys_only = UndoTable {
            settable: Vec::new(),
            ..issues()
        };
        assert!(put_back_present(&keys_only, IMAGES).starts_with(
            r#"SELECT pg_catalog.count(*) FROM ONLY "public"."Issues" AS t, "salvage"."row_images" AS i WHERE"#
        ));
    }

    #[test]
    fn reinserts_missing_rows_overriding_identities_when_needed() {
        assert_eq!(
            put_back_missing(&issues(), IMAGES),
            r#"WITH added AS (INSERT INTO "public"."Issues" ("site id", "number", "title") SELECT r."site id", r."number", r."title" FROM "salvage"."row_images" AS i CROSS JOIN LATERAL pg_catalog.json_populate_record(NULL::"public"."Issues", i.before) AS r WHERE i.run_id = $1 AND i.position = $2 AND i.step = $3 AND NOT EXISTS (SELECT FROM ONLY "public"."Issues" AS t WHERE t."site id" = (i.key[1])::bigint AND t."number" = (i.key[2])::integer) ORDER BY i.id RETURNING 1) SELECT pg_catalog.count(*) FROM added"#
        );
        let identity = UndoTable {
            overriding: true,
            ..issues()
        };
        assert!(
            put_back_missing(&identity, IMAGES)
                .contains(r#"("site id", "number", "title") OVERRIDING SYSTEM VALUE SELECT"#)
        );
    }
}
