//! The schema model: what salvage knows about a database's tables.

use std::collections::BTreeMap;
use std::fmt;

use salvage_quote::quote_ident;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `schema.table`. Displays unquoted for people; [`QualifiedName::quoted`] is for SQL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    #[must_use]
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// Parses what a user typed: `sites`, `public.sites`, `"My Schema"."Sites"`. Unquoted
    /// parts are folded to lower case, as PostgreSQL does; a missing schema is `public`.
    pub fn parse(text: &str) -> Result<Self> {
        let parts = split_identifier_path(text).ok_or_else(|| Error::BadName(text.to_owned()))?;
        match parts.as_slice() {
            [name] => Ok(Self::new("public", name.clone())),
            [schema, name] => Ok(Self::new(schema.clone(), name.clone())),
            _ => Err(Error::BadName(text.to_owned())),
        }
    }

    /// `"schema"."name"`.
    #[must_use]
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Splits `a."B c".d` into identifiers, folding unquoted ones to lower case.
fn split_identifier_path(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    ch => part.push(ch),
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch == '.' {
                    break;
                }
                if ch == '"' || ch.is_whitespace() {
                    return None;
                }
                part.extend(ch.to_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// All user tables of one database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    /// `server_version` as the server reports it (for the snapshot, or the dump's source).
    pub server_version: String,
    pub tables: BTreeMap<QualifiedName, Table>,
}

impl Catalog {
    #[must_use]
    pub fn table(&self, name: &QualifiedName) -> Option<&Table> {
        self.tables.get(name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Ordinary,
    Partitioned,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub name: QualifiedName,
    pub kind: TableKind,
    /// The partitioned table this one is a partition of.
    pub partition_of: Option<QualifiedName>,
    /// Columns in their physical order (dropped columns left out).
    pub columns: Vec<Column>,
    pub primary_key: Option<Key>,
    /// Unique constraints and plain unique indexes (no expressions, no predicate).
    pub unique_keys: Vec<Key>,
    pub foreign_keys: Vec<ForeignKey>,
    /// The columns of every valid btree index without expressions or predicate (primary and
    /// unique keys included), in index order: what a lookup by those leading columns can
    /// probe. Empty when unknown (a schema read from an archive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Vec<String>>,
    /// The planner's estimate (`reltuples`), for display only; -1 when never analysed.
    pub estimated_rows: i64,
}

impl Table {
    #[must_use]
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }

    /// Whether an index leads with exactly `columns` (in any order): a lookup by them is an
    /// index probe, whatever the size of the table.
    #[must_use]
    pub fn has_index_on(&self, columns: &[String]) -> bool {
        self.indexes.iter().any(|index| {
            index.len() >= columns.len()
                && index[..columns.len()]
                    .iter()
                    .all(|column| columns.contains(column))
        })
    }

    /// Whether an index leads with one of `columns`: a lookup by them can start from it
    /// rather than read the whole table.
    #[must_use]
    pub fn has_index_starting_with_any(&self, columns: &[String]) -> bool {
        self.indexes
            .iter()
            .any(|index| index.first().is_some_and(|column| columns.contains(column)))
    }

    /// The key that identifies a row: the primary key, else the first unique key whose
    /// columns are all NOT NULL.
    #[must_use]
    pub fn identity_key(&self) -> Option<&Key> {
        self.primary_key.as_ref().or_else(|| {
            self.unique_keys.iter().find(|key| {
                key.columns
                    .iter()
                    .all(|name| self.column(name).is_some_and(|column| column.not_null))
            })
        })
    }
}

/// What a restore depends on in a table's definition, as text a person can read: its
/// columns (type, NOT NULL, default, identity, generated), keys and foreign keys, in order.
/// Two shapes differ exactly when a plan made against one may not hold for the other; the
/// planner's row estimate and the indexes (speed only) are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableShape {
    pub columns: Vec<String>,
    pub keys: Vec<String>,
    pub references: Vec<String>,
}

impl TableShape {
    /// What changed from `self` to `now`, one phrase each: `column x integer not null added`.
    #[must_use]
    pub fn changes(&self, now: &Self) -> Vec<String> {
        let mut changes = Vec::new();
        for (what, before, after) in [
            ("column", &self.columns, &now.columns),
            ("key", &self.keys, &now.keys),
            ("foreign key", &self.references, &now.references),
        ] {
            for gone in before.iter().filter(|item| !after.contains(item)) {
                changes.push(format!("{what} {gone} removed"));
            }
            for added in after.iter().filter(|item| !before.contains(item)) {
                changes.push(format!("{what} {added} added"));
            }
        }
        if changes.is_empty() && self != now {
            changes.push("columns reordered".to_owned());
        }
        changes
    }
}

impl Table {
    /// The table's [`TableShape`].
    #[must_use]
    pub fn shape(&self) -> TableShape {
        let columns = self
            .columns
            .iter()
            .map(|column| {
                let mut text = format!("{} {}", column.name, column.type_name);
                if column.not_null {
                    text.push_str(" not null");
                }
                if let Some(default) = &column.default {
                    text.push_str(&format!(" default {default}"));
                }
                match column.identity {
                    Some(Identity::Always) => text.push_str(" generated always as identity"),
                    Some(Identity::ByDefault) => text.push_str(" generated by default as identity"),
                    None => {}
                }
                if column.generated {
                    text.push_str(" generated");
                }
                text
            })
            .collect();
        let mut keys: Vec<String> = self
            .primary_key
            .iter()
            .map(|key| format!("primary ({})", key.columns.join(", ")))
            .collect();
        let mut unique: Vec<String> = self
            .unique_keys
            .iter()
            .map(|key| format!("unique ({})", key.columns.join(", ")))
            .collect();
        unique.sort();
        keys.extend(unique);
        let mut references: Vec<String> = self
            .foreign_keys
            .iter()
            .map(|fk| {
                format!(
                    "({}) → {} ({}){}",
                    fk.columns.join(", "),
                    fk.referenced_table,
                    fk.referenced_columns.join(", "),
                    match (fk.deferrable, fk.initially_deferred) {
                        (true, true) => " deferrable initially deferred",
                        (true, false) => " deferrable",
                        _ => "",
                    }
                )
            })
            .collect();
        references.sort();
        TableShape {
            columns,
            keys,
            references,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    Always,
    ByDefault,
}

/// What kind of type a column has; decides how values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeKind {
    Base,
    Domain,
    Enum,
    Composite,
    Range,
    Array,
    Other,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `format_type` of the column: `bigint`, `numeric(10,2)`, `"MyEnum"[]`.
    pub type_name: String,
    pub type_kind: TypeKind,
    /// For arrays, the element type (`text` for `text[]`); for domains, the base type.
    pub underlying_type: Option<String>,
    pub not_null: bool,
    /// The default expression as `pg_get_expr` shows it.
    pub default: Option<String>,
    pub identity: Option<Identity>,
    /// A generated (stored) column: never written, recomputed by the server.
    pub generated: bool,
    /// The sequence behind this column (owned by it, identity, or used by its default).
    pub sequence: Option<SequenceRef>,
}

impl Column {
    /// Whether an INSERT may give this column a value.
    #[must_use]
    pub fn writable(&self) -> bool {
        !self.generated
    }

    /// Whether a row may leave this column out: it has a default, an identity or is
    /// generated, or accepts NULL.
    #[must_use]
    pub fn may_be_omitted(&self) -> bool {
        !self.not_null || self.default.is_some() || self.identity.is_some() || self.generated
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceRef {
    pub name: QualifiedName,
    pub increment: i64,
}

/// A primary key, unique constraint or unique index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The constraint's (or index's) name.
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub referenced_table: QualifiedName,
    pub referenced_columns: Vec<String>,
    pub deferrable: bool,
    pub initially_deferred: bool,
}

#[cfg(test)]
mod tests {
    use super::QualifiedName;

    #[test]
    fn parses_names_like_postgres() {
        assert_eq!(
            QualifiedName::parse("sites").unwrap(),
            QualifiedName::new("public", "sites")
        );
        assert_eq!(
            QualifiedName::parse("App.Sites").unwrap(),
            QualifiedName::new("app", "sites")
        );
        assert_eq!(
            QualifiedName::parse(r#""My ""Schema"".Sites"#)
                .unwrap_err()
                .to_string(),
            "`\"My \"\"Schema\"\".Sites` is not a table name (expected `table` or `schema.table`)"
        );
        assert_eq!(
            QualifiedName::parse(r#""My ""S"""."Sites""#).unwrap(),
            QualifiedName::new("My \"S\"", "Sites")
        );
        for bad in ["", "a.b.c", "a..b", "a b", "\"open"] {
            assert!(QualifiedName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quotes_for_sql() {
        assert_eq!(
            QualifiedName::new("public", "Odd\"Name").quoted(),
            r#""public"."Odd""Name""#
        );
    }
}
