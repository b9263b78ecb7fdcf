//! Reads the sequence, default and type statements of pg_dump's TOC entries, which
//! sqlparser does not read (`CREATE SEQUENCE` with pg_dump's option order, `OWNED BY`,
//! identity columns added by `ALTER TABLE ... ADD GENERATED`), with the tokenizer in `sql`.

use salvage_catalog::{Identity, QualifiedName};

use super::sql::{
    self, Kind, Token, alter_table, column_reference, identifier, qualified_name, starts_with_words,
};

/// The `INCREMENT [BY] n` of sequence options in `tokens` (1 when absent).
fn increment(tokens: &[Token<'_>]) -> i64 {
    let Some(at) = tokens.iter().position(|t| t.is_word("INCREMENT")) else {
        return 1;
    };
    let mut at = at + 1;
    if tokens.get(at).is_some_and(|t| t.is_word("BY")) {
        at += 1;
    }
    let negative = tokens.get(at).is_some_and(|t| t.is("-"));
    if negative {
        at += 1;
    }
    tokens
        .get(at)
        .filter(|t| t.kind == Kind::Number)
        .and_then(|t| t.text.parse::<i64>().ok())
        .map_or(1, |value| if negative { -value } else { value })
}

/// `CREATE SEQUENCE name ... INCREMENT BY n ...`: (name, increment).
pub(crate) fn create_sequence(statement: &str) -> Option<(QualifiedName, i64)> {
    let tokens = sql::tokens(statement);
    if !starts_with_words(&tokens, &["CREATE", "SEQUENCE"]) {
        return None;
    }
    let (name, at) = qualified_name(&tokens, 2)?;
    Some((name, increment(&tokens[at..])))
}

/// `ALTER SEQUENCE seq OWNED BY schema.table.column`: (sequence, table, column).
pub(crate) fn sequence_owned_by(statement: &str) -> Option<(QualifiedName, QualifiedName, String)> {
    let tokens = sql::tokens(statement);
    if !starts_with_words(&tokens, &["ALTER", "SEQUENCE"]) {
        return None;
    }
    let (sequence, at) = qualified_name(&tokens, 2)?;
    if !starts_with_words(&tokens[at..], &["OWNED", "BY"]) {
        return None;
    }
    let (table, column, _) = column_reference(&tokens, at + 2)?;
    Some((sequence, table, column))
}

/// An identity column added by `ALTER TABLE t ALTER COLUMN c ADD GENERATED ... AS IDENTITY
/// (SEQUENCE NAME s ... INCREMENT BY n ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdentityColumn {
    pub(crate) table: QualifiedName,
    pub(crate) column: String,
    pub(crate) identity: Identity,
    pub(crate) sequence: Option<QualifiedName>,
    pub(crate) increment: i64,
}

pub(crate) fn identity_column(statement: &str) -> Option<IdentityColumn> {
    let tokens = sql::tokens(statement);
    let (table, at) = alter_table(&tokens, &["ALTER", "COLUMN"])?;
    let column = identifier(tokens.get(at)?)?;
    let rest = &tokens[at + 1..];
    let identity = if starts_with_words(rest, &["ADD", "GENERATED", "ALWAYS", "AS", "IDENTITY"]) {
        Identity::Always
    } else if starts_with_words(
        rest,
        &["ADD", "GENERATED", "BY", "DEFAULT", "AS", "IDENTITY"],
    ) {
        Identity::ByDefault
    } else {
        return None;
    };
    let sequence = rest
        .windows(2)
        .position(|pair| pair[0].is_word("SEQUENCE") && pair[1].is_word("NAME"))
        .and_then(|offset| qualified_name(rest, offset + 2))
        .map(|(name, _)| name);
    Some(IdentityColumn {
        table,
        column,
        identity,
        sequence,
        increment: increment(rest),
    })
}

/// `ALTER TABLE [ONLY] t ALTER COLUMN c SET DEFAULT expr`: (table, column, expr as written).
pub(crate) fn set_default(statement: &str) -> Option<(QualifiedName, String, String)> {
    let tokens = sql::tokens(statement);
    let (table, at) = alter_table(&tokens, &["ALTER", "COLUMN"])?;
    let column = identifier(tokens.get(at)?)?;
    if !starts_with_words(&tokens[at + 1..], &["SET", "DEFAULT"]) {
        return None;
    }
    let expression = tokens.get(at + 3)?;
    Some((
        table,
        column,
        statement[expression.start..].trim().to_owned(),
    ))
}

/// What a TYPE or DOMAIN entry defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypeDefinition {
    Enum,
    Range,
    Composite,
    Domain { base: String },
    Base,
}

/// `CREATE TYPE name AS ENUM|RANGE|(...)`, `CREATE TYPE name (INPUT = ...)`, `CREATE DOMAIN
/// name AS base ...`.
pub(crate) fn type_definition(statement: &str) -> Option<(QualifiedName, TypeDefinition)> {
    let tokens = sql::tokens(statement);
    if starts_with_words(&tokens, &["CREATE", "DOMAIN"]) {
        let (name, mut at) = qualified_name(&tokens, 2)?;
        if tokens.get(at).is_some_and(|t| t.is_word("AS")) {
            at += 1;
        }
        let start = tokens.get(at)?;
        let end = tokens[at..]
            .iter()
            .position(|t| {
                t.depth == 0
                    && ["COLLATE", "DEFAULT", "CONSTRAINT", "NOT", "NULL", "CHECK"]
                        .iter()
                        .any(|w| t.is_word(w))
            })
            .map_or(tokens.len(), |offset| at + offset);
        let base = statement[start.start..tokens[end - 1].end()]
            .trim()
            .to_owned();
        return Some((name, TypeDefinition::Domain { base }));
    }
    if !starts_with_words(&tokens, &["CREATE", "TYPE"]) {
        return None;
    }
    let (name, at) = qualified_name(&tokens, 2)?;
    let rest = &tokens[at..];
    let definition = if starts_with_words(rest, &["AS", "ENUM"]) {
        TypeDefinition::Enum
    } else if starts_with_words(rest, &["AS", "RANGE"]) {
        TypeDefinition::Range
    } else if rest.first().is_some_and(|t| t.is_word("AS")) {
        TypeDefinition::Composite
    } else {
        TypeDefinition::Base
    };
    Some((name, definition))
}
