//! Names in statements: tables as a query reads them, column lists, and key sets bound as
//! arrays.

use salvage_catalog::{Catalog, QualifiedName, TableKind};
use salvage_quote::{quote_ident, text_array_literal};

use crate::Binder;

/// How a query names a table's rows: `ONLY "s"."t"` for an ordinary table (inheritance
/// children are tables of their own), the plain name for a partitioned table (its rows live
/// in its partitions). A table the catalog does not know is read as an ordinary one.
#[must_use]
pub fn from_item(catalog: &Catalog, name: &QualifiedName) -> String {
    match catalog.table(name).map(|table| table.kind) {
        Some(TableKind::Partitioned) => name.quoted(),
        _ => format!("ONLY {}", name.quoted()),
    }
}

/// `alias."a", alias."b"`.
#[must_use]
pub fn columns_of(alias: &str, columns: &[String]) -> String {
    columns
        .iter()
        .map(|column| format!("{alias}.{}", quote_ident(column)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"a", "b"`.
#[must_use]
pub fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|column| quote_ident(column))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds `values` as one array literal (for `COPY`, which takes no parameters) and returns
/// the expression reading it back as `type_name[]`.
pub fn bound_array<'a>(
    binder: &mut dyn Binder,
    values: impl IntoIterator<Item = Option<&'a str>>,
    type_name: &str,
) -> String {
    format!(
        "({})::{}[]",
        binder.bind(text_array_literal(values)),
        cast_type(type_name)
    )
}

/// `$n::text[]::type_name[]`: a text array parameter of an ordinary statement, as the type
/// (see [`cast_type`]).
#[must_use]
pub fn array_parameter(number: usize, type_name: &str) -> String {
    if type_name == "text" {
        format!("${number}::text[]")
    } else {
        format!("${number}::text[]::{}[]", cast_type(type_name))
    }
}

/// The type bound text is cast to for a column of `type_name` (as `format_type` spells it):
/// the type itself, but a character or bit string type without its length. An explicit cast
/// to `character varying(3)` cuts a longer value to three characters without a word; cast to
/// `character varying`, the value keeps its length, and storing it in the column (like COPY)
/// refuses it, while comparing it with the column's values finds no false match.
#[must_use]
pub fn cast_type(type_name: &str) -> std::borrow::Cow<'_, str> {
    let base = type_name.trim_end_matches("[]");
    let dimensions = &type_name[base.len()..];
    let unbounded = [
        ("character varying(", "character varying"),
        ("character(", "bpchar"),
        ("bit varying(", "bit varying"),
        ("bit(", "bit varying"),
    ]
    .into_iter()
    .find(|(prefix, _)| base.starts_with(prefix) && base.ends_with(')'));
    match unbounded {
        Some((_, unbounded)) => std::borrow::Cow::Owned(format!("{unbounded}{dimensions}")),
        None => std::borrow::Cow::Borrowed(type_name),
    }
}

/// `pg_catalog.unnest(A)`, or for several arrays side by side `ROWS FROM
/// (pg_catalog.unnest(A), pg_catalog.unnest(B))` — what `unnest(A, B)` stands for, which
/// exists only as syntax in FROM and cannot be schema-qualified.
#[must_use]
pub fn unnest(arrays: &[String]) -> String {
    if let [array] = arrays {
        return format!("pg_catalog.unnest({array})");
    }
    let each: Vec<String> = arrays
        .iter()
        .map(|array| format!("pg_catalog.unnest({array})"))
        .collect();
    format!("ROWS FROM ({})", each.join(", "))
}

/// `(t0."a", t0."b") IN (SELECT * FROM unnest(A, B))` — a set to join with, not `= ANY`: as
/// a filter, a bound array is parsed again for every row scanned (8 s instead of 0.45 s over
/// 500,000 rows and 400 tenants); unnested it is read once, and the planner, which evaluates
/// the stable `current_setting` for its estimates, still sees how many values it holds.
#[must_use]
pub fn in_key_set(alias: &str, columns: &[String], arrays: &[String]) -> String {
    if let ([column], [array]) = (columns, arrays) {
        return format!(
            "{alias}.{} IN (SELECT pg_catalog.unnest({array}))",
            quote_ident(column)
        );
    }
    // A row with some but not all of the columns NULL can never match, but under an OR or a
    // coalesce the hashed subplan must say whether it might (UNKNOWN): it compares the row
    // with every key in the hash — quadratic, 45 s for 78,000 pages whose current revision
    // is NULL against 94,000 revision keys. Such rows are answered before the subplan.
    let not_null: Vec<String> = columns
        .iter()
        .map(|column| format!("{alias}.{} IS NOT NULL", quote_ident(column)))
        .collect();
    format!(
        "({} AND ({}) IN (SELECT * FROM {}))",
        not_null.join(" AND "),
        columns_of(alias, columns),
        unnest(arrays)
    )
}

#[cfg(test)]
mod tests {
    use salvage_catalog::{Catalog, QualifiedName, Table, TableKind};

    use super::{array_parameter, cast_type, from_item, in_key_set};

    #[test]
    fn string_types_are_cast_to_without_their_length() {
        for (live, cast) in [
            ("character varying(3)", "character varying"),
            ("character varying(3)[]", "character varying[]"),
            ("character(2)", "bpchar"),
            ("bit(4)", "bit varying"),
            ("bit varying(4)[][]", "bit varying[][]"),
            ("numeric(10,2)", "numeric(10,2)"),
            ("character varying", "character varying"),
            ("\"character(\"", "\"character(\""),
        ] {
            assert_eq!(cast_type(live), cast, "{live}");
        }
        assert_eq!(array_parameter(2, "character(2)"), "$2::text[]::bpchar[]");
    }

    #[test]
    fn partitioned_tables_are_read_with_their_partitions() {
        let mut catalog = Catalog::default();
        let name = QualifiedName::new("public", "events");
        catalog.tables.insert(
            name.clone(),
            Table {
                name: name.clone(),
                kind: TableKind::Partitioned,
                partition_of: None,
                columns: Vec::new(),
                primary_key: None,
                unique_keys: Vec::new(),
                foreign_keys: Vec::new(),
                indexes: Vec::new(),
                estimated_rows: 0,
            },
        );
        assert_eq!(from_item(&catalog, &name), "\"public\".\"events\"");
        assert_eq!(
            from_item(&catalog, &QualifiedName::new("public", "sites")),
            "ONLY \"public\".\"sites\""
        );
    }

    #[test]
    fn key_sets_are_joined_unnested() {
        assert_eq!(
            in_key_set("t0", &["id".into()], &["$1::text[]::int8[]".into()]),
            "t0.\"id\" IN (SELECT pg_catalog.unnest($1::text[]::int8[]))"
        );
        assert_eq!(
            in_key_set("t0", &["a".into(), "b".into()], &["A".into(), "B".into()]),
            "(t0.\"a\" IS NOT NULL AND t0.\"b\" IS NOT NULL AND (t0.\"a\", t0.\"b\") IN \
             (SELECT * FROM ROWS FROM (pg_catalog.unnest(A), pg_catalog.unnest(B))))"
        );
        assert_eq!(array_parameter(2, "text"), "$2::text[]");
    }
}
