//! Reads a PostgreSQL database's catalog into the schema model (`salvage-catalog`): five
//! catalog queries, whatever the number of tables.

use std::collections::{BTreeMap, HashMap};

use salvage_catalog::{
    Catalog, Column, ForeignKey, Identity, Key, QualifiedName, SequenceRef, Table, TableKind,
    TypeKind,
};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use crate::{Error, Result};

/// The user tables: ordinary and partitioned, outside system schemas, not owned by an
/// extension.
const RELATIONS: &str = "WITH rels AS (
    SELECT c.oid
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%'
      AND n.nspname NOT LIKE 'pg\\_temp\\_%'
      AND NOT EXISTS (
          SELECT 1 FROM pg_catalog.pg_depend d
          WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'))";

const TABLES: &str = "
SELECT c.oid::int8 AS oid, n.nspname::text AS schema, c.relname::text AS name,
       c.relkind::text AS kind, c.reltuples::int8 AS estimated_rows,
       pn.nspname::text AS parent_schema, pc.relname::text AS parent_name
FROM rels
JOIN pg_catalog.pg_class c ON c.oid = rels.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_inherits i ON c.relispartition AND i.inhrelid = c.oid
LEFT JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent
LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
ORDER BY 2, 3";

const COLUMNS: &str = "
SELECT a.attrelid::int8 AS table_oid, a.attname::text AS name,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name,
       t.typtype::text AS typtype, t.typcategory::text AS category,
       CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod)
            WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN pg_catalog.format_type(t.typelem, NULL)
       END AS underlying,
       a.attnotnull AS not_null,
       pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) AS default_expr,
       a.attidentity::text AS identity, a.attgenerated::text AS generated,
       seq.schema AS seq_schema, seq.name AS seq_name, seq.increment AS seq_increment
FROM rels
JOIN pg_catalog.pg_attribute a ON a.attrelid = rels.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN LATERAL (
    SELECT sn.nspname::text AS schema, s.relname::text AS name, sq.seqincrement AS increment
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
    JOIN pg_catalog.pg_sequence sq ON sq.seqrelid = s.oid
    WHERE d.classid = 'pg_catalog.pg_class'::regclass
      AND d.refclassid = 'pg_catalog.pg_class'::regclass
      AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.deptype IN ('a', 'i')
    UNION ALL
    SELECT sn.nspname::text, s.relname::text, sq.seqincrement
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
    JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
    JOIN pg_catalog.pg_sequence sq ON sq.seqrelid = s.oid
    WHERE d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
      AND d.refclassid = 'pg_catalog.pg_class'::regclass
    LIMIT 1
) seq ON true
ORDER BY a.attrelid, a.attnum";

/// Primary keys, unique constraints and foreign keys declared on the table itself
/// (`conparentid = 0` leaves out the copies PostgreSQL makes on partitions).
const CONSTRAINTS: &str = "
SELECT con.conrelid::int8 AS table_oid, con.conname::text AS name, con.contype::text AS kind,
       ARRAY(SELECT a.attname::text
             FROM unnest(con.conkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.ord) AS columns,
       rn.nspname::text AS ref_schema, rc.relname::text AS ref_name,
       ARRAY(SELECT a.attname::text
             FROM unnest(con.confkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
             ORDER BY k.ord) AS ref_columns,
       con.condeferrable AS deferrable, con.condeferred AS deferred
FROM rels
JOIN pg_catalog.pg_constraint con ON con.conrelid = rels.oid
LEFT JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype IN ('p', 'u', 'f')
  AND (con.contype <> 'f' OR con.conparentid = 0)
ORDER BY con.conrelid, con.contype, con.conname";

/// Unique indexes that are not behind a constraint, on plain columns, without a predicate.
const UNIQUE_INDEXES: &str = "
SELECT i.indrelid::int8 AS table_oid, ic.relname::text AS name,
       ARRAY(SELECT a.attname::text
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(num, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
             WHERE k.ord <= i.indnkeyatts
             ORDER BY k.ord) AS columns
FROM rels
JOIN pg_catalog.pg_index i ON i.indrelid = rels.oid
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indisunique AND NOT i.indisprimary AND i.indisvalid
  AND i.indpred IS NULL AND i.indexprs IS NULL
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid)
ORDER BY 1, 2";

/// Every valid index on plain columns without a predicate: what lookups can probe.
const INDEXES: &str = "
SELECT i.indrelid::int8 AS table_oid,
       ARRAY(SELECT a.attname::text
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(num, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
             WHERE k.ord <= i.indnkeyatts
             ORDER BY k.ord) AS columns
FROM rels
JOIN pg_catalog.pg_index i ON i.indrelid = rels.oid
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
WHERE i.indisvalid AND am.amname = 'btree'
  AND i.indpred IS NULL AND i.indexprs IS NULL
ORDER BY 1, ic.relname";

fn with_relations(query: &str) -> String {
    // Both parts are constants of this module.
    format!("{RELATIONS}{query}")
}

/// Reads the catalog of the database `connection` is on.
///
/// Type names and default expressions are written relative to the session's `search_path`.
/// With an empty one they come out schema-qualified (`public.mood`, `nextval('public.t_seq')`)
/// — as pg_dump writes them, so a database's catalog and an archive's compare equal, and a
/// type name means the same thing in any session.
pub async fn introspect(connection: &mut PgConnection) -> Result<Catalog> {
    sqlx::query("SELECT pg_catalog.set_config('search_path', '', false)")
        .execute(&mut *connection)
        .await
        .map_err(Error::query("empty the search path"))?;
    let catalog = read_catalog(connection).await;
    sqlx::query("RESET search_path")
        .execute(&mut *connection)
        .await
        .map_err(Error::query("reset the search path"))?;
    catalog
}

async fn read_catalog(connection: &mut PgConnection) -> Result<Catalog> {
    let server_version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut *connection)
        .await
        .map_err(Error::query("read the server version"))?;

    let mut tables: HashMap<i64, Table> = HashMap::new();
    for row in sqlx::query(&with_relations(TABLES))
        .fetch_all(&mut *connection)
        .await
        .map_err(Error::query("list tables"))?
    {
        let oid: i64 = row.get("oid");
        let kind: String = row.get("kind");
        let parent_schema: Option<String> = row.get("parent_schema");
        let parent_name: Option<String> = row.get("parent_name");
        tables.insert(
            oid,
            Table {
                name: QualifiedName::new(
                    row.get::<String, _>("schema"),
                    row.get::<String, _>("name"),
                ),
                kind: if kind == "p" {
                    TableKind::Partitioned
                } else {
                    TableKind::Ordinary
                },
                partition_of: parent_schema
                    .zip(parent_name)
                    .map(|(s, n)| QualifiedName::new(s, n)),
                columns: Vec::new(),
                primary_key: None,
                unique_keys: Vec::new(),
                foreign_keys: Vec::new(),
                indexes: Vec::new(),
                estimated_rows: row.get("estimated_rows"),
            },
        );
    }

    for row in sqlx::query(&with_relations(COLUMNS))
        .fetch_all(&mut *connection)
        .await
        .map_err(Error::query("read columns"))?
    {
        let Some(table) = tables.get_mut(&row.get::<i64, _>("table_oid")) else {
            continue;
        };
        table.columns.push(column_from_row(&row));
    }

    for row in sqlx::query(&with_relations(CONSTRAINTS))
        .fetch_all(&mut *connection)
        .await
        .map_err(Error::query("read constraints"))?
    {
        let Some(table) = tables.get_mut(&row.get::<i64, _>("table_oid")) else {
            continue;
        };
        let name: String = row.get("name");
        let columns: Vec<String> = row.get("columns");
        match row.get::<String, _>("kind").as_str() {
            "p" => table.primary_key = Some(Key { name, columns }),
            "u" => table.unique_keys.push(Key { name, columns }),
            _ => {
                let ref_schema: Option<String> = row.get("ref_schema");
                let ref_name: Option<String> = row.get("ref_name");
                let (Some(ref_schema), Some(ref_name)) = (ref_schema, ref_name) else {
                    continue;
                };
                table.foreign_keys.push(ForeignKey {
                    name,
                    columns,
                    referenced_table: QualifiedName::new(ref_schema, ref_name),
                    referenced_columns: row.get("ref_columns"),
                    deferrable: row.get("deferrable"),
                    initially_deferred: row.get("deferred"),
                });
            }
        }
    }

    for row in sqlx::query(&with_relations(UNIQUE_INDEXES))
        .fetch_all(&mut *connection)
        .await
        .map_err(Error::query("read unique indexes"))?
    {
        if let Some(table) = tables.get_mut(&row.get::<i64, _>("table_oid")) {
            table.unique_keys.push(Key {
                name: row.get("name"),
                columns: row.get("columns"),
            });
        }
    }

    for row in sqlx::query(&with_relations(INDEXES))
        .fetch_all(&mut *connection)
        .await
        .map_err(Error::query("read indexes"))?
    {
        if let Some(table) = tables.get_mut(&row.get::<i64, _>("table_oid")) {
            table.indexes.push(row.get("columns"));
        }
    }

    let tables: BTreeMap<QualifiedName, Table> = tables
        .into_values()
        .map(|table| (table.name.clone(), table))
        .collect();
    Ok(Catalog {
        server_version,
        tables,
    })
}

fn column_from_row(row: &sqlx::postgres::PgRow) -> Column {
    let typtype: String = row.get("typtype");
    let category: String = row.get("category");
    let type_kind = match (typtype.as_str(), category.as_str()) {
        ("d", _) => TypeKind::Domain,
        ("e", _) => TypeKind::Enum,
        ("c", _) => TypeKind::Composite,
        ("r" | "m", _) => TypeKind::Range,
        ("b", "A") => TypeKind::Array,
        ("b", _) => TypeKind::Base,
        _ => TypeKind::Other,
    };
    let identity = match row.get::<String, _>("identity").as_str() {
        "a" => Some(Identity::Always),
        "d" => Some(Identity::ByDefault),
        _ => None,
    };
    let seq_schema: Option<String> = row.get("seq_schema");
    let seq_name: Option<String> = row.get("seq_name");
    let seq_increment: Option<i64> = row.get("seq_increment");
    Column {
        name: row.get("name"),
        type_name: row.get("type_name"),
        type_kind,
        underlying_type: row.get("underlying"),
        not_null: row.get("not_null"),
        default: row.get("default_expr"),
        identity,
        generated: !row.get::<String, _>("generated").is_empty(),
        sequence: seq_schema.zip(seq_name).map(|(schema, name)| SequenceRef {
            name: QualifiedName::new(schema, name),
            increment: seq_increment.unwrap_or(1),
        }),
    }
}
