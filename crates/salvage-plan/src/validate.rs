//! Checks of what the user said about the tenant model, against the schema: a
//! `--tenant-column` must name a column some table has, of a type that holds tenant IDs, and a
//! table left alone whose column looks like the tenant key is pointed out. A tool that assumed
//! its input was right is how the April 2022 outage began.

use std::collections::BTreeSet;

use salvage_catalog::Table;

use crate::model::RootInfo;
use crate::{Error, Result};

/// Refuses a tenant column no table (of `tables`) has, naming similar columns, and one whose
/// type cannot hold the root key's values, naming both types.
pub fn tenant_columns(columns: &[String], tables: &[&Table], root: &RootInfo) -> Result<()> {
    for column in columns {
        let mut found = false;
        for table in tables {
            let Some(definition) = table.column(column) else {
                continue;
            };
            found = true;
            if !same_key_type(&definition.type_name, &root.key_type) {
                return Err(Error::TenantColumnType {
                    table: table.name.clone(),
                    column: column.clone(),
                    column_type: definition.type_name.clone(),
                    root_key: format!("{}.{} is {}", root.table, root.key_column, root.key_type),
                });
            }
        }
        if !found {
            let similar: BTreeSet<String> = tables
                .iter()
                .flat_map(|table| &table.columns)
                .map(|definition| definition.name.clone())
                .filter(|name| similar_name(name, column))
                .collect();
            return Err(Error::UnknownTenantColumn {
                column: column.clone(),
                similar: similar.into_iter().collect(),
            });
        }
    }
    Ok(())
}

/// The columns of `table` that look like the tenant key: `site_id` next to root `sites(id)`,
/// the key's own name (`store_id` next to `store(store_id)`), or a column of the key's type
/// whose name ends in the root's name (`home_site`).
#[must_use]
pub fn tenant_like_columns(table: &Table, root: &RootInfo) -> Vec<String> {
    let name = root.table.name.to_lowercase();
    let singular = singular(&name);
    let key = root.key_column.to_lowercase();
    let exact = format!("{singular}_{key}");
    table
        .columns
        .iter()
        .filter(|column| {
            let lower = column.name.to_lowercase();
            lower == exact
                || (lower == key && key != "id")
                || (same_key_type(&column.type_name, &root.key_type)
                    && (lower.ends_with(&singular) || lower.ends_with(&name)))
        })
        .map(|column| column.name.clone())
        .collect()
}

/// Whether a column of type `column` holds values of a root key of type `key`: the same
/// type, or two of the integer types, or two of the text types.
fn same_key_type(column: &str, key: &str) -> bool {
    const INTEGERS: [&str; 3] = ["smallint", "integer", "bigint"];
    let is_text =
        |name: &str| name == "text" || name.starts_with("character varying") || name == "citext";
    column == key
        || (INTEGERS.contains(&column) && INTEGERS.contains(&key))
        || (is_text(column) && is_text(key))
}

/// `sites` → `site`, `companies` → `company`: enough to recognise `site_id` next to `sites`.
fn singular(name: &str) -> String {
    if let Some(stem) = name.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = name.strip_suffix('s') {
        stem.to_owned()
    } else {
        name.to_owned()
    }
}

/// Two column names a typo apart: the same letters ignoring case and underscores, or one
/// edit away.
fn similar_name(a: &str, b: &str) -> bool {
    let squash = |text: &str| -> Vec<char> {
        text.chars()
            .filter(|ch| *ch != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (squash(a), squash(b));
    if a == b {
        return true;
    }
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    // One insertion, deletion or substitution.
    let (mut i, mut j, mut edits) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        edits += 1;
        if edits > 1 {
            return false;
        }
        match a.len().cmp(&b.len()) {
            std::cmp::Ordering::Greater => i += 1,
            std::cmp::Ordering::Less => j += 1,
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    edits + (a.len() - i) + (b.len() - j) <= 1
}

#[cfg(test)]
mod tests {
    use salvage_catalog::{Column, QualifiedName, Table, TableKind, TypeKind};

    use super::{similar_name, singular, tenant_columns, tenant_like_columns};
    use crate::model::RootInfo;

    fn column(name: &str, type_name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: type_name.into(),
            type_kind: TypeKind::Base,
            underlying_type: None,
            not_null: false,
            default: None,
            identity: None,
            generated: false,
            sequence: None,
        }
    }

    fn table(name: &str, columns: Vec<Column>) -> Table {
        Table {
            name: QualifiedName::new("public", name),
            kind: TableKind::Ordinary,
            partition_of: None,
            columns,
            primary_key: None,
            unique_keys: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            estimated_rows: 0,
        }
    }

    fn sites() -> RootInfo {
        RootInfo {
            table: QualifiedName::new("public", "sites"),
            key_column: "id".into(),
            key_type: "bigint".into(),
            label_column: None,
        }
    }

    #[test]
    fn a_tenant_column_must_exist_and_hold_tenant_ids() {
        let pages = table(
            "pages",
            vec![column("site_id", "integer"), column("body", "text")],
        );
        let notes = table("notes", vec![column("site_ref", "text")]);
        let tables = [&pages, &notes];
        assert!(tenant_columns(&["site_id".into()], &tables, &sites()).is_ok());
        let typo = tenant_columns(&["siteid".into()], &tables, &sites()).unwrap_err();
        assert_eq!(
            typo.to_string(),
            "--tenant-column siteid: no table has a column siteid (did you mean site_id?)"
        );
        let wrong = tenant_columns(&["site_ref".into()], &tables, &sites()).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "--tenant-column site_ref: public.notes.site_ref is text, but the root key public.sites.id is bigint; tenant IDs cannot be compared with it"
        );
    }

    #[test]
    fn columns_like_the_tenant_key_are_recognised() {
        let log = table(
            "audit",
            vec![
                column("site_id", "bigint"),
                column("home_site", "bigint"),
                column("site_name", "text"),
                column("id", "bigint"),
            ],
        );
        assert_eq!(
            tenant_like_columns(&log, &sites()),
            ["site_id", "home_site"]
        );
        let store = RootInfo {
            table: QualifiedName::new("public", "store"),
            key_column: "store_id".into(),
            key_type: "integer".into(),
            label_column: None,
        };
        let kiosk = table("kiosk_log", vec![column("store_id", "integer")]);
        assert_eq!(tenant_like_columns(&kiosk, &store), ["store_id"]);
        assert_eq!(singular("companies"), "company");
        assert!(similar_name("SiteId", "site_id"));
        assert!(similar_name("site_idd", "site_id"));
        assert!(!similar_name("project_id", "site_id"));
    }
}
