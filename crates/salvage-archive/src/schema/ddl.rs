//! Reads the table statements of pg_dump's TOC entries: CREATE TABLE, the constraints,
//! unique indexes and partitions. sqlparser (PostgreSQL dialect) reads what it can —
//! constraints, indexes, the structure of CREATE TABLE — and the tokenizer in `sql` reads
//! the rest (ATTACH PARTITION, `CREATE INDEX ... ON ONLY`) and takes column types and
//! defaults exactly as written.

use salvage_catalog::{ForeignKey, Identity, Key, QualifiedName};
use sqlparser::ast::{
    AlterTableOperation, ColumnOption, DeferrableInitial, Expr, GeneratedAs, ObjectName,
    ObjectNamePart, Statement, TableConstraint,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::sql::{
    self, Kind, Token, alter_table, closing_paren, identifier, identifier_list, qualified_name,
    starts_with_words,
};

fn parse_one(statement: &str) -> Option<Statement> {
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, statement).ok()?;
    (parsed.len() == 1).then(|| parsed.remove(0))
}

fn object_name(name: &ObjectName) -> Option<QualifiedName> {
    let parts: Vec<&str> = name
        .0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(ident.value.as_str()),
            ObjectNamePart::Function(_) => None,
        })
        .collect::<Option<_>>()?;
    // sqlparser keeps unquoted identifiers as written; PostgreSQL folds them.
    let fold = |index: usize| {
        let ObjectNamePart::Identifier(ident) = &name.0[index] else {
            return String::new();
        };
        if ident.quote_style.is_some() {
            ident.value.clone()
        } else {
            ident.value.to_lowercase()
        }
    };
    match parts.len() {
        1 => Some(QualifiedName::new("public", fold(0))),
        2 => Some(QualifiedName::new(fold(0), fold(1))),
        _ => None,
    }
}

fn ident(ident: &sqlparser::ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// A column of a CREATE TABLE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedColumn {
    pub(crate) name: String,
    /// As pg_dump wrote it: `numeric(10,2)`, `public.mood`, `character varying(20)[]`.
    pub(crate) type_name: String,
    pub(crate) not_null: bool,
    pub(crate) default: Option<String>,
    pub(crate) generated: bool,
    pub(crate) identity: Option<Identity>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedTable {
    pub(crate) name: QualifiedName,
    pub(crate) columns: Vec<ParsedColumn>,
    pub(crate) partitioned: bool,
    pub(crate) partition_of: Option<QualifiedName>,
}

/// Words that end a column's type (or its default) at the top level of its definition.
const COLUMN_CLAUSES: [&str; 10] = [
    "COLLATE",
    "DEFAULT",
    "NOT",
    "NULL",
    "GENERATED",
    "CONSTRAINT",
    "CHECK",
    "REFERENCES",
    "UNIQUE",
    "PRIMARY",
];

/// Reads `CREATE [UNLOGGED] TABLE name (...)`: sqlparser for the structure when it can,
/// the tokenizer for the text of types and defaults (and for everything when sqlparser
/// cannot read the statement).
pub(crate) fn create_table(statement: &str) -> Option<ParsedTable> {
    let own = own_create_table(statement)?;
    let Some(Statement::CreateTable(parsed)) = parse_one(statement) else {
        return Some(own);
    };
    // Cross-check: the same table and columns, in the same order; otherwise trust the
    // tokenizer, which reads pg_dump's text as written.
    let names_match = object_name(&parsed.name).as_ref() == Some(&own.name)
        && parsed.columns.len() == own.columns.len()
        && parsed
            .columns
            .iter()
            .zip(&own.columns)
            .all(|(column, mine)| ident(&column.name) == mine.name);
    if !names_match {
        return Some(own);
    }
    let mut table = own;
    table.partitioned |= parsed.partition_by.is_some();
    for (column, mine) in parsed.columns.iter().zip(table.columns.iter_mut()) {
        for option in &column.options {
            match &option.option {
                ColumnOption::NotNull => mine.not_null = true,
                ColumnOption::Generated {
                    generated_as,
                    generation_expr,
                    ..
                } => {
                    if generation_expr.is_some() {
                        mine.generated = true;
                    } else {
                        mine.identity = match generated_as {
                            GeneratedAs::Always => Some(Identity::Always),
                            GeneratedAs::ByDefault => Some(Identity::ByDefault),
                            GeneratedAs::ExpStored => None,
                        };
                    }
                }
                _ => {}
            }
        }
    }
    Some(table)
}

fn own_create_table(statement: &str) -> Option<ParsedTable> {
    let tokens = sql::tokens(statement);
    let mut at = 0;
    if !tokens.first()?.is_word("CREATE") {
        return None;
    }
    at += 1;
    while tokens
        .get(at)
        .is_some_and(|t| t.is_word("UNLOGGED") || t.is_word("TEMPORARY") || t.is_word("TEMP"))
    {
        at += 1;
    }
    if !tokens.get(at)?.is_word("TABLE") {
        return None;
    }
    let (name, mut at) = qualified_name(&tokens, at + 1)?;
    let mut partition_of = None;
    if starts_with_words(&tokens[at..], &["PARTITION", "OF"]) {
        let (parent, next) = qualified_name(&tokens, at + 2)?;
        partition_of = Some(parent);
        at = next;
    }
    let mut columns = Vec::new();
    let mut table_not_null = Vec::new();
    if tokens.get(at).is_some_and(|t| t.is("(")) {
        let close = closing_paren(&tokens, at)?;
        let inner = &tokens[at + 1..close];
        for element in inner.split(|t| t.is(",") && t.depth == tokens[at].depth + 1) {
            if element.is_empty() {
                continue;
            }
            if let Some(column) = own_table_element(statement, element, &mut table_not_null) {
                columns.push(column);
            }
        }
        at = close + 1;
    }
    for column in &mut columns {
        column.not_null |= table_not_null.contains(&column.name);
    }
    let partitioned = tokens[at..]
        .windows(2)
        .any(|pair| pair[0].depth == 0 && pair[0].is_word("PARTITION") && pair[1].is_word("BY"));
    Some(ParsedTable {
        name,
        columns,
        partitioned,
        partition_of,
    })
}

/// One element of a CREATE TABLE's list: a column, or a table constraint (only
/// `CONSTRAINT name NOT NULL col` matters here, which PostgreSQL 18 writes).
fn own_table_element(
    statement: &str,
    element: &[Token<'_>],
    not_null: &mut Vec<String>,
) -> Option<ParsedColumn> {
    let first = element.first()?;
    let is_constraint = first.kind == Kind::Word
        && [
            "CONSTRAINT",
            "CHECK",
            "PRIMARY",
            "UNIQUE",
            "FOREIGN",
            "EXCLUDE",
            "LIKE",
        ]
        .iter()
        .any(|word| first.is_word(word));
    if is_constraint {
        if first.is_word("CONSTRAINT") && starts_with_words(element.get(2..)?, &["NOT", "NULL"]) {
            not_null.push(identifier(element.get(4)?)?);
        }
        return None;
    }
    let name = identifier(first)?;
    let depth = first.depth;
    let clause_at = |from: usize| {
        element[from..]
            .iter()
            .position(|t| {
                t.depth == depth
                    && t.kind == Kind::Word
                    && COLUMN_CLAUSES.iter().any(|w| t.is_word(w))
            })
            .map_or(element.len(), |offset| from + offset)
    };
    let type_end = clause_at(1);
    let text = |from: usize, to: usize| -> String {
        if from >= to {
            return String::new();
        }
        statement[element[from].start..element[to - 1].end()].to_owned()
    };
    let mut column = ParsedColumn {
        name,
        type_name: text(1, type_end),
        not_null: false,
        default: None,
        generated: false,
        identity: None,
    };
    let mut at = type_end;
    while at < element.len() {
        let token = element[at];
        if token.is_word("DEFAULT") {
            let end = clause_at(at + 1);
            column.default = Some(text(at + 1, end));
            at = end;
        } else if starts_with_words(&element[at..], &["NOT", "NULL"]) {
            column.not_null = true;
            at += 2;
        } else if token.is_word("GENERATED") {
            let rest = &element[at..];
            if starts_with_words(rest, &["GENERATED", "ALWAYS", "AS", "IDENTITY"]) {
                column.identity = Some(Identity::Always);
            } else if starts_with_words(rest, &["GENERATED", "BY", "DEFAULT", "AS", "IDENTITY"]) {
                column.identity = Some(Identity::ByDefault);
            } else {
                // `GENERATED ALWAYS AS (expr) STORED`: PostgreSQL keeps `expr` as the column's
                // default expression, and introspection shows it there.
                column.generated = true;
                if let Some(open) = rest.iter().position(|t| t.is("(")) {
                    let open = at + open;
                    if let Some(close) = closing_paren(element, open) {
                        column.default = Some(text(open + 1, close));
                    }
                }
            }
            at = clause_at(at + 1).max(at + 1);
            // Skip past the generation expression's parentheses.
            while at < element.len() && element[at].depth > depth {
                at += 1;
            }
        } else {
            at = clause_at(at + 1).max(at + 1);
        }
    }
    Some(column)
}

/// A constraint added by `ALTER TABLE [ONLY] t ADD CONSTRAINT ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Constraint {
    PrimaryKey(Key),
    Unique(Key),
    Foreign(ForeignKey),
    /// CHECK, EXCLUDE and the like: not keys.
    Other,
}

/// Reads `ALTER TABLE [ONLY] t ADD CONSTRAINT name {PRIMARY KEY|UNIQUE|FOREIGN KEY} ...`.
pub(crate) fn add_constraint(statement: &str) -> Option<(QualifiedName, Constraint)> {
    let Some(Statement::AlterTable(alter)) = parse_one(statement) else {
        return own_add_constraint(statement);
    };
    let table = object_name(&alter.name)?;
    let [AlterTableOperation::AddConstraint { constraint, .. }] = alter.operations.as_slice()
    else {
        return None;
    };
    let plain_columns = |columns: &[sqlparser::ast::IndexColumn]| -> Option<Vec<String>> {
        columns
            .iter()
            .map(|column| match &column.column.expr {
                Expr::Identifier(name) => Some(ident(name)),
                _ => None,
            })
            .collect()
    };
    let constraint = match constraint {
        TableConstraint::PrimaryKey(key) => Constraint::PrimaryKey(Key {
            name: ident(key.name.as_ref()?),
            columns: plain_columns(&key.columns)?,
        }),
        TableConstraint::Unique(key) => Constraint::Unique(Key {
            name: ident(key.name.as_ref()?),
            columns: plain_columns(&key.columns)?,
        }),
        TableConstraint::ForeignKey(fk) => {
            let characteristics = fk.characteristics.unwrap_or_default();
            Constraint::Foreign(ForeignKey {
                name: ident(fk.name.as_ref()?),
                columns: fk.columns.iter().map(ident).collect(),
                referenced_table: object_name(&fk.foreign_table)?,
                referenced_columns: fk.referred_columns.iter().map(ident).collect(),
                deferrable: characteristics.deferrable == Some(true),
                initially_deferred: characteristics.initially == Some(DeferrableInitial::Deferred),
            })
        }
        _ => Constraint::Other,
    };
    Some((table, constraint))
}

/// The tokenizer's reading of ADD CONSTRAINT, for what sqlparser rejects.
fn own_add_constraint(statement: &str) -> Option<(QualifiedName, Constraint)> {
    let tokens = sql::tokens(statement);
    let (table, at) = alter_table(&tokens, &["ADD", "CONSTRAINT"])?;
    let name = identifier(tokens.get(at)?)?;
    let rest = &tokens[at + 1..];
    let at = at + 1;
    let key = |open: usize| {
        identifier_list(&tokens, open).map(|(columns, _)| Key {
            name: name.clone(),
            columns,
        })
    };
    let constraint = if starts_with_words(rest, &["PRIMARY", "KEY"]) {
        Constraint::PrimaryKey(key(at + 2)?)
    } else if starts_with_words(rest, &["UNIQUE", "NULLS", "NOT", "DISTINCT"]) {
        Constraint::Unique(key(at + 4)?)
    } else if starts_with_words(rest, &["UNIQUE"]) {
        Constraint::Unique(key(at + 1)?)
    } else if starts_with_words(rest, &["FOREIGN", "KEY"]) {
        let (columns, next) = identifier_list(&tokens, at + 2)?;
        if !tokens.get(next)?.is_word("REFERENCES") {
            return None;
        }
        let (referenced_table, next) = qualified_name(&tokens, next + 1)?;
        let (referenced_columns, next) = identifier_list(&tokens, next)?;
        let tail = &tokens[next..];
        let deferrable = tail
            .windows(2)
            .any(|pair| pair[1].is_word("DEFERRABLE") && !pair[0].is_word("NOT"))
            || tail.first().is_some_and(|t| t.is_word("DEFERRABLE"));
        let initially_deferred = tail
            .windows(2)
            .any(|pair| pair[0].is_word("INITIALLY") && pair[1].is_word("DEFERRED"));
        Constraint::Foreign(ForeignKey {
            name,
            columns,
            referenced_table,
            referenced_columns,
            deferrable,
            initially_deferred,
        })
    } else {
        Constraint::Other
    };
    Some((table, constraint))
}

/// Reads `CREATE UNIQUE INDEX name ON [ONLY] t USING m (a, b)`: a key when every element is
/// a plain column and there is no predicate; `None` otherwise (also for non-unique indexes).
pub(crate) fn unique_index(statement: &str) -> Option<(QualifiedName, Key)> {
    let tokens = sql::tokens(statement);
    if !starts_with_words(&tokens, &["CREATE", "UNIQUE", "INDEX"]) {
        return None;
    }
    // sqlparser does not know `ON ONLY` (partitioned tables' indexes): read without it.
    let only = tokens
        .windows(2)
        .find(|pair| pair[0].depth == 0 && pair[0].is_word("ON") && pair[1].is_word("ONLY"))
        .map(|pair| pair[1]);
    let readable = match only {
        Some(word) => format!("{}{}", &statement[..word.start], &statement[word.end()..]),
        None => statement.to_owned(),
    };
    if let Some(Statement::CreateIndex(index)) = parse_one(&readable) {
        if !index.unique || index.predicate.is_some() {
            return None;
        }
        let name = index.name.as_ref().and_then(object_name)?.name;
        let columns = index
            .columns
            .iter()
            .map(|column| match &column.column.expr {
                Expr::Identifier(name) if column.operator_class.is_none() => Some(ident(name)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        return Some((object_name(&index.table_name)?, Key { name, columns }));
    }
    own_unique_index(&tokens)
}

fn own_unique_index(tokens: &[Token<'_>]) -> Option<(QualifiedName, Key)> {
    let name = identifier(tokens.get(3)?)?;
    let mut at = 4;
    if !tokens.get(at)?.is_word("ON") {
        return None;
    }
    at += 1;
    if tokens.get(at)?.is_word("ONLY") {
        at += 1;
    }
    let (table, mut at) = qualified_name(tokens, at)?;
    if tokens.get(at)?.is_word("USING") {
        at += 2;
    }
    let (columns, next) = identifier_list(tokens, at)?;
    if tokens[next..]
        .iter()
        .any(|t| t.depth == 0 && t.is_word("WHERE"))
    {
        return None;
    }
    Some((table, Key { name, columns }))
}

/// `ALTER TABLE [ONLY] parent ATTACH PARTITION child FOR VALUES ...`: (parent, child).
pub(crate) fn attach_partition(statement: &str) -> Option<(QualifiedName, QualifiedName)> {
    let tokens = sql::tokens(statement);
    let (parent, at) = alter_table(&tokens, &["ATTACH", "PARTITION"])?;
    let (child, _) = qualified_name(&tokens, at)?;
    Some((parent, child))
}
