//! The SELECTs behind every snapshot read, built from quoted identifiers and bound values
//! (see `salvage_pg::CopyQuery`): a tenant's rows follow the table's ownership joins up to the
//! tenant column; rows by key join the key set.

use salvage_catalog::{Catalog, QualifiedName};
use salvage_pg::{Binder, quote_ident, text_array_literal};
use salvage_plan::{SchemaPlan, TablePlan};

use crate::{Error, Result, Tenants, TextRow};

/// The snapshot-side type of a column, for casting bound text back to it.
fn column_type(catalog: &Catalog, table: &QualifiedName, column: &str) -> Result<String> {
    let table_def = catalog
        .table(table)
        .ok_or_else(|| Error::MissingTable(table.clone()))?;
    table_def
        .column(column)
        .map(|column| column.type_name.clone())
        .ok_or_else(|| Error::MissingTable(table.clone()))
}

/// `SELECT <select> FROM table t0 JOIN ... WHERE <tenant column> = <tenant>` for an owned
/// table (or the root), on whichever database `catalog` describes. With `tag`, the tenant
/// column comes first in the select list.
pub fn owned_select(
    catalog: &Catalog,
    plan: &SchemaPlan,
    table: &TablePlan,
    columns: &[String],
    tag: bool,
    tenants: Tenants<'_>,
    query: &mut dyn Binder,
) -> Result<String> {
    let ownership = table
        .ownership
        .as_ref()
        .ok_or_else(|| Error::Aborted(format!("{} is not owned by a tenant", table.name)))?;
    let last = format!("t{}", ownership.joins.len());
    let tenant = format!("{last}.{}", quote_ident(&ownership.tenant_column));
    let mut select: Vec<String> = Vec::with_capacity(columns.len() + 1);
    if tag {
        select.push(tenant.clone());
    }
    select.extend(
        columns
            .iter()
            .map(|column| format!("t0.{}", quote_ident(column))),
    );
    let mut sql = format!(
        "SELECT {} FROM {} AS t0",
        select.join(", "),
        catalog.from_item(&table.name)
    );
    for (index, relation) in ownership.joins.iter().enumerate() {
        let child = format!("t{index}");
        let parent = format!("t{}", index + 1);
        let on: Vec<String> = relation
            .child_columns
            .iter()
            .zip(&relation.parent_columns)
            .map(|(child_column, parent_column)| {
                format!(
                    "{parent}.{} = {child}.{}",
                    quote_ident(parent_column),
                    quote_ident(child_column)
                )
            })
            .collect();
        sql.push_str(&format!(
            " JOIN {} AS {parent} ON {}",
            catalog.from_item(&relation.parent),
            on.join(" AND ")
        ));
        if let Some(condition) = &relation.condition {
            sql.push_str(&format!(
                " AND {child}.{}::text = {}",
                quote_ident(&condition.column),
                query.bind(condition.value.clone())
            ));
        }
    }
    let key_type = column_type(catalog, &plan.root.table, &plan.root.key_column)?;
    match tenants {
        Tenants::One(id) => {
            sql.push_str(&format!(
                " WHERE {tenant} = ({})::{key_type}",
                query.bind(id.to_owned())
            ));
        }
        Tenants::Many(ids) => {
            let literal = text_array_literal(ids.iter().map(|id| Some(id.as_str())));
            sql.push_str(&format!(
                " WHERE {tenant} = ANY(({})::{key_type}[])",
                query.bind(literal)
            ));
        }
    }
    // A relation that reaches the root only under a condition (polymorphic reference)
    // keeps it even when the root itself is not joined.
    if let Some(last_relation) = ownership.chain.last() {
        if ownership.joins.len() < ownership.chain.len() {
            if let Some(condition) = &last_relation.condition {
                sql.push_str(&format!(
                    " AND {last}.{}::text = {}",
                    quote_ident(&condition.column),
                    query.bind(condition.value.clone())
                ));
            }
        }
    }
    Ok(sql)
}

/// `SELECT <columns> FROM table t0 WHERE (key columns) IN (<key set>)`. Keys with a NULL
/// never match (as in a foreign key), so callers leave them out.
pub fn by_keys_select(
    catalog: &Catalog,
    table: &QualifiedName,
    key_columns: &[String],
    keys: &[TextRow],
    columns: &[String],
    query: &mut dyn Binder,
) -> Result<String> {
    let select: Vec<String> = columns
        .iter()
        .map(|column| format!("t0.{}", quote_ident(column)))
        .collect();
    let mut arrays = Vec::with_capacity(key_columns.len());
    for (position, column) in key_columns.iter().enumerate() {
        let literal = text_array_literal(
            keys.iter()
                .map(|key| key.get(position).and_then(Option::as_deref)),
        );
        let type_name = column_type(catalog, table, column)?;
        arrays.push(format!("({})::{type_name}[]", query.bind(literal)));
    }
    let filter = if let [column] = key_columns {
        format!("t0.{} = ANY({})", quote_ident(column), arrays[0])
    } else {
        let targets: Vec<String> = key_columns
            .iter()
            .map(|column| format!("t0.{}", quote_ident(column)))
            .collect();
        format!(
            "({}) IN (SELECT * FROM unnest({}))",
            targets.join(", "),
            arrays.join(", ")
        )
    };
    Ok(format!(
        "SELECT {} FROM {} AS t0 WHERE {filter}",
        select.join(", "),
        catalog.from_item(table)
    ))
}

#[cfg(test)]
mod tests {
    use salvage_catalog::{Catalog, Column, QualifiedName, Table, TableKind, TypeKind};
    use salvage_pg::CopyQuery;

    use super::by_keys_select;

    fn column(name: &str, type_name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: type_name.into(),
            type_kind: TypeKind::Base,
            underlying_type: None,
            not_null: true,
            default: None,
            identity: None,
            generated: false,
            sequence: None,
        }
    }

    fn catalog() -> Catalog {
        let mut catalog = Catalog::default();
        let name = QualifiedName::new("public", "projects");
        catalog.tables.insert(
            name.clone(),
            Table {
                name,
                kind: TableKind::Ordinary,
                partition_of: None,
                columns: vec![
                    column("site_id", "bigint"),
                    column("project_no", "integer"),
                    column("name", "text"),
                ],
                primary_key: None,
                unique_keys: Vec::new(),
                foreign_keys: Vec::new(),
                estimated_rows: 0,
            },
        );
        catalog
    }

    #[test]
    fn composite_keys_join_a_typed_key_set() {
        let mut query = CopyQuery::new();
        let sql = by_keys_select(
            &catalog(),
            &QualifiedName::new("public", "projects"),
            &["site_id".into(), "project_no".into()],
            &[vec![Some("1".into()), Some("2".into())]],
            &["name".into()],
            &mut query,
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT t0.\"name\" FROM ONLY \"public\".\"projects\" AS t0 WHERE (t0.\"site_id\", t0.\"project_no\") IN \
             (SELECT * FROM unnest((pg_catalog.current_setting('salvage.p0'))::bigint[], \
             (pg_catalog.current_setting('salvage.p1'))::integer[]))"
        );
    }

    #[test]
    fn partitioned_tables_are_read_with_their_partitions() {
        let mut catalog = catalog();
        let name = QualifiedName::new("public", "projects");
        catalog.tables.get_mut(&name).unwrap().kind = TableKind::Partitioned;
        assert_eq!(catalog.from_item(&name), "\"public\".\"projects\"");
    }
}
