//! The dumped database's schema, as [`salvage_catalog::Catalog`], read from the archive's
//! TOC: tables and columns from TABLE entries, keys from CONSTRAINT and INDEX entries,
//! foreign keys from FK CONSTRAINT entries, partitions from TABLE ATTACH entries, sequences
//! from SEQUENCE, SEQUENCE OWNED BY and DEFAULT entries, type kinds from TYPE and DOMAIN
//! entries. Planning then works the same whether the schema came from a live database or a
//! dump. Column types and defaults are kept as pg_dump wrote them (with its empty
//! `search_path`, user types and sequences are schema-qualified: `public.mood`).

mod ddl;
mod objects;
mod sql;

use std::collections::{BTreeMap, HashMap};

use salvage_catalog::{Catalog, Column, QualifiedName, SequenceRef, Table, TableKind, TypeKind};

use crate::archive::Archive;
use crate::error::{Error, Result};
use crate::table::TableData;
use crate::toc::TocEntry;
use ddl::Constraint;
use objects::TypeDefinition;

/// The catalog of the database `archive` was dumped from.
pub fn catalog(archive: &Archive) -> Result<Catalog> {
    from_toc(
        archive.entries(),
        archive.tables(),
        archive.server_version(),
    )
}

/// The catalog described by TOC entries (from [`Archive::entries`] or a
/// [`crate::ScanSummary`]); `tables` are used to check each table's column order.
pub fn from_toc(
    entries: &[TocEntry],
    tables: &[TableData],
    server_version: Option<&str>,
) -> Result<Catalog> {
    let mut builder = Builder::default();
    // Types and sequences first: tables refer to them.
    for entry in entries {
        for statement in statements(entry) {
            match entry.desc.as_str() {
                "TYPE" | "DOMAIN" => {
                    if let Some((name, definition)) = objects::type_definition(statement) {
                        builder.types.insert(name, definition);
                    }
                }
                "SEQUENCE" => {
                    if let Some((name, increment)) = objects::create_sequence(statement) {
                        builder.increments.insert(name, increment);
                    }
                }
                _ => {}
            }
        }
    }
    for entry in entries.iter().filter(|entry| entry.desc == "TABLE") {
        builder.table(entry)?;
    }
    for entry in entries {
        for statement in statements(entry) {
            builder.statement(entry, statement)?;
        }
    }
    builder.finish(tables, server_version)
}

fn statements(entry: &TocEntry) -> Vec<&str> {
    entry
        .defn
        .as_deref()
        .map(sql::statements)
        .unwrap_or_default()
}

fn definition_error(entry: &TocEntry, message: impl Into<String>) -> Error {
    Error::Definition {
        dump_id: entry.dump_id,
        desc: entry.desc.clone(),
        tag: entry.tag.clone(),
        message: message.into(),
    }
}

/// PostgreSQL's built-in range and multirange types.
const RANGES: [&str; 12] = [
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "tsmultirange",
    "tstzmultirange",
    "datemultirange",
];

#[derive(Debug, Default)]
struct Builder {
    tables: BTreeMap<QualifiedName, Table>,
    types: HashMap<QualifiedName, TypeDefinition>,
    increments: HashMap<QualifiedName, i64>,
    /// Unique keys from indexes, added after the constraints' (as introspection orders them).
    index_keys: Vec<(QualifiedName, salvage_catalog::Key)>,
}

impl Builder {
    fn table(&mut self, entry: &TocEntry) -> Result<()> {
        let create = statements(entry)
            .into_iter()
            .find(|statement| {
                let head: String = statement
                    .chars()
                    .take(40)
                    .collect::<String>()
                    .to_ascii_uppercase();
                head.starts_with("CREATE") && head.contains("TABLE")
            })
            .ok_or_else(|| definition_error(entry, "no CREATE TABLE statement"))?;
        let parsed = ddl::create_table(create)
            .ok_or_else(|| definition_error(entry, "cannot parse its CREATE TABLE"))?;
        let kind = if parsed.partitioned || entry.relkind == Some('p') {
            TableKind::Partitioned
        } else {
            TableKind::Ordinary
        };
        let columns = parsed
            .columns
            .into_iter()
            .map(|column| {
                let (type_kind, underlying_type) = self.type_kind(&column.type_name);
                let sequence = column
                    .default
                    .as_deref()
                    .and_then(nextval_sequence)
                    .map(|name| SequenceRef {
                        increment: self.increments.get(&name).copied().unwrap_or(1),
                        name,
                    });
                Column {
                    name: column.name,
                    type_name: column.type_name,
                    type_kind,
                    underlying_type,
                    not_null: column.not_null,
                    default: column.default,
                    identity: column.identity,
                    generated: column.generated,
                    sequence,
                }
            })
            .collect();
        self.tables.insert(
            parsed.name.clone(),
            Table {
                name: parsed.name,
                kind,
                partition_of: parsed.partition_of,
                columns,
                primary_key: None,
                unique_keys: Vec::new(),
                foreign_keys: Vec::new(),
                indexes: Vec::new(),
                estimated_rows: -1,
            },
        );
        Ok(())
    }

    /// The kind of a column type as pg_dump wrote it, and the element or base type.
    fn type_kind(&self, type_name: &str) -> (TypeKind, Option<String>) {
        if let Some(element) = type_name.strip_suffix("[]") {
            // As `format_type(typelem, NULL)` shows it: without the type modifier.
            let element = without_type_modifier(element.trim_end_matches("[]"));
            return (TypeKind::Array, Some(element));
        }
        let base_name = type_name.split('(').next().unwrap_or(type_name).trim();
        if let Some((name, _)) = crate::names::qualified_name(base_name, "pg_catalog") {
            if let Some(definition) = self.types.get(&name) {
                return match definition {
                    TypeDefinition::Enum => (TypeKind::Enum, None),
                    TypeDefinition::Range => (TypeKind::Range, None),
                    TypeDefinition::Composite => (TypeKind::Composite, None),
                    TypeDefinition::Domain { base } => (TypeKind::Domain, Some(base.clone())),
                    TypeDefinition::Base => (TypeKind::Base, None),
                };
            }
        }
        if RANGES.contains(&base_name) {
            return (TypeKind::Range, None);
        }
        (TypeKind::Base, None)
    }

    fn column(&mut self, table: &QualifiedName, column: &str) -> Option<&mut Column> {
        self.tables
            .get_mut(table)?
            .columns
            .iter_mut()
            .find(|candidate| candidate.name == column)
    }

    fn statement(&mut self, entry: &TocEntry, statement: &str) -> Result<()> {
        match entry.desc.as_str() {
            "TABLE ATTACH" => {
                let (parent, child) = ddl::attach_partition(statement)
                    .ok_or_else(|| definition_error(entry, "cannot parse ATTACH PARTITION"))?;
                if let Some(table) = self.tables.get_mut(&child) {
                    table.partition_of = Some(parent);
                }
            }
            "DEFAULT" => {
                if let Some((table, column, default)) = objects::set_default(statement) {
                    let sequence = nextval_sequence(&default);
                    let increment = sequence
                        .as_ref()
                        .and_then(|name| self.increments.get(name).copied());
                    if let Some(column) = self.column(&table, &column) {
                        if column.sequence.is_none() {
                            column.sequence = sequence.map(|name| SequenceRef {
                                name,
                                increment: increment.unwrap_or(1),
                            });
                        }
                        column.default = Some(default);
                    }
                }
            }
            "SEQUENCE OWNED BY" => {
                if let Some((sequence, table, column)) = objects::sequence_owned_by(statement) {
                    let increment = self.increments.get(&sequence).copied().unwrap_or(1);
                    if let Some(column) = self.column(&table, &column) {
                        column.sequence = Some(SequenceRef {
                            name: sequence,
                            increment,
                        });
                    }
                }
            }
            "SEQUENCE" => {
                if let Some(identity) = objects::identity_column(statement) {
                    if let Some(column) = self.column(&identity.table, &identity.column) {
                        column.identity = Some(identity.identity);
                        column.sequence = identity.sequence.map(|name| SequenceRef {
                            name,
                            increment: identity.increment,
                        });
                    }
                }
            }
            "CONSTRAINT" | "FK CONSTRAINT" => {
                let (table, constraint) = ddl::add_constraint(statement)
                    .ok_or_else(|| definition_error(entry, "cannot parse ADD CONSTRAINT"))?;
                let Some(table) = self.tables.get_mut(&table) else {
                    return Ok(());
                };
                match constraint {
                    Constraint::PrimaryKey(key) => table.primary_key = Some(key),
                    Constraint::Unique(key) => table.unique_keys.push(key),
                    Constraint::Foreign(foreign_key) => table.foreign_keys.push(foreign_key),
                    Constraint::Other => {}
                }
            }
            "INDEX" => {
                if let Some(key) = ddl::unique_index(statement) {
                    self.index_keys.push(key);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(mut self, tables: &[TableData], server_version: Option<&str>) -> Result<Catalog> {
        for table in self.tables.values_mut() {
            table.unique_keys.sort_by(|a, b| a.name.cmp(&b.name));
            table.foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.index_keys.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        for (table, key) in self.index_keys {
            if let Some(table) = self.tables.get_mut(&table) {
                table.unique_keys.push(key);
            }
        }
        for data in tables {
            let Some(target) = &data.copy_target else {
                continue;
            };
            let Some(table) = self.tables.get(target) else {
                continue;
            };
            let dumped: Vec<&str> = table
                .columns
                .iter()
                .filter(|column| !column.generated)
                .map(|column| column.name.as_str())
                .collect();
            if dumped != data.columns.iter().map(String::as_str).collect::<Vec<_>>() {
                return Err(Error::Definition {
                    dump_id: data.dump_id,
                    desc: "TABLE DATA".to_owned(),
                    tag: data.name.to_string(),
                    message: format!(
                        "its COPY lists columns {:?} but CREATE TABLE {} gives {:?}",
                        data.columns, target, dumped
                    ),
                });
            }
        }
        Ok(Catalog {
            server_version: server_version.unwrap_or_default().to_owned(),
            tables: self.tables,
        })
    }
}

/// `character varying(20)` → `character varying`; `timestamp(3) with time zone` →
/// `timestamp with time zone`.
fn without_type_modifier(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    let mut depth = 0usize;
    let mut quoted = false;
    for ch in type_name.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                out.push(ch);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The sequence of a `nextval('schema.seq'::regclass)` default.
fn nextval_sequence(default: &str) -> Option<QualifiedName> {
    let start = default.find("nextval('")? + "nextval('".len();
    let end = start + default[start..].find('\'')?;
    let (name, rest) = crate::names::qualified_name(&default[start..end], "public")?;
    rest.trim().is_empty().then_some(name)
}
