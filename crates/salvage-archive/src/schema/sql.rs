//! A small tokenizer for the SQL pg_dump writes: words, quoted identifiers, string literals
//! (standard and `E''`), dollar quotes, numbers and punctuation, each with its byte offset and
//! parenthesis depth. Enough to split statements and to find clauses at the top level, for
//! the statements sqlparser does not read and for taking text exactly as pg_dump wrote it.

use crate::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Word,
    QuotedIdent,
    String,
    Number,
    Punct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub(crate) kind: Kind,
    pub(crate) text: &'a str,
    pub(crate) start: usize,
    /// Parentheses open around the token (a `(` or `)` counts those outside it).
    pub(crate) depth: usize,
}

impl Token<'_> {
    pub(crate) fn is_word(&self, word: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(word)
    }

    pub(crate) fn is(&self, punct: &str) -> bool {
        self.kind == Kind::Punct && self.text == punct
    }

    pub(crate) fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

/// Splits `sql` into tokens; comments are left out. Unterminated quotes end at the end.
pub(crate) fn tokens(sql: &str) -> Vec<Token<'_>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let start = index;
        let kind;
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                index += 1;
                continue;
            }
            b'-' if bytes.get(index + 1) == Some(&b'-') => {
                index =
                    memchr::memchr(b'\n', &bytes[index..]).map_or(bytes.len(), |end| index + end);
                continue;
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                index = memchr::memmem::find(&bytes[index + 2..], b"*/")
                    .map_or(bytes.len(), |end| index + 2 + end + 2);
                continue;
            }
            b'"' => {
                index = end_of_quoted(bytes, index + 1, b'"', false);
                kind = Kind::QuotedIdent;
            }
            b'\'' => {
                index = end_of_quoted(bytes, index + 1, b'\'', false);
                kind = Kind::String;
            }
            b'e' | b'E' if bytes.get(index + 1) == Some(&b'\'') => {
                index = end_of_quoted(bytes, index + 2, b'\'', true);
                kind = Kind::String;
            }
            b'$' => {
                if let Some(end) = dollar_quote_end(sql, index) {
                    index = end;
                    kind = Kind::String;
                } else {
                    index += 1;
                    kind = Kind::Punct;
                }
            }
            b'0'..=b'9' => {
                while index < bytes.len()
                    && (bytes[index].is_ascii_alphanumeric() || bytes[index] == b'.')
                {
                    index += 1;
                }
                kind = Kind::Number;
            }
            _ if byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80 => {
                while index < bytes.len()
                    && (bytes[index].is_ascii_alphanumeric()
                        || bytes[index] == b'_'
                        || bytes[index] == b'$'
                        || bytes[index] >= 0x80)
                {
                    index += 1;
                }
                kind = Kind::Word;
            }
            b':' if bytes.get(index + 1) == Some(&b':') => {
                index += 2;
                kind = Kind::Punct;
            }
            _ => {
                index += 1;
                kind = Kind::Punct;
            }
        }
        // Never split a UTF-8 character (bytes ≥ 0x80 only ever extend words or quotes).
        while index < bytes.len() && !sql.is_char_boundary(index) {
            index += 1;
        }
        let text = &sql[start..index];
        if kind == Kind::Punct && text == ")" {
            depth = depth.saturating_sub(1);
        }
        out.push(Token {
            kind,
            text,
            start,
            depth,
        });
        if kind == Kind::Punct && text == "(" {
            depth += 1;
        }
    }
    out
}

/// The index after the closing quote (a doubled quote is part of the text; with
/// `backslashes`, so is an escaped one).
fn end_of_quoted(bytes: &[u8], mut index: usize, quote: u8, backslashes: bool) -> usize {
    while index < bytes.len() {
        let byte = bytes[index];
        if backslashes && byte == b'\\' {
            index += 2;
            continue;
        }
        if byte == quote {
            if bytes.get(index + 1) == Some(&quote) {
                index += 2;
                continue;
            }
            return index + 1;
        }
        index += 1;
    }
    bytes.len()
}

/// For `$tag$...$tag$` starting at `start`, the index after the closing tag.
fn dollar_quote_end(sql: &str, start: usize) -> Option<usize> {
    let rest = &sql[start + 1..];
    let tag_length = rest.find('$')?;
    let tag = &rest[..tag_length];
    if !tag.chars().all(|ch| ch.is_alphanumeric() || ch == '_')
        || tag.starts_with(|ch: char| ch.is_ascii_digit())
    {
        return None;
    }
    let delimiter = &sql[start..start + tag_length + 2];
    let body_start = start + delimiter.len();
    let end = sql[body_start..].find(delimiter)?;
    Some(body_start + end + delimiter.len())
}

/// The statements of `sql`, split at top-level semicolons, trimmed, empty ones left out.
pub(crate) fn statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for token in tokens(sql) {
        if token.is(";") && token.depth == 0 {
            out.push(sql[start..token.start].trim());
            start = token.end();
        }
    }
    out.push(sql[start..].trim());
    // Pieces with nothing but comments are not statements.
    out.retain(|statement| !tokens(statement).is_empty());
    out
}

/// Whether `tokens` start with the words `words`.
pub(crate) fn starts_with_words(tokens: &[Token<'_>], words: &[&str]) -> bool {
    tokens.len() >= words.len()
        && words
            .iter()
            .zip(tokens)
            .all(|(word, token)| token.is_word(word))
}

/// `ALTER TABLE [ONLY] name` followed by `words`: the table and the index after `words`.
pub(crate) fn alter_table(
    tokens: &[Token<'_>],
    words: &[&str],
) -> Option<(salvage_catalog::QualifiedName, usize)> {
    if !starts_with_words(tokens, &["ALTER", "TABLE"]) {
        return None;
    }
    let mut at = 2;
    if tokens.get(at)?.is_word("ONLY") {
        at += 1;
    }
    let (table, at) = qualified_name(tokens, at)?;
    starts_with_words(&tokens[at..], words).then_some((table, at + words.len()))
}

/// Reads an identifier or `schema.name` from the token at `at`: the name and the index after.
pub(crate) fn qualified_name(
    tokens: &[Token<'_>],
    at: usize,
) -> Option<(salvage_catalog::QualifiedName, usize)> {
    let first = identifier(tokens.get(at)?)?;
    if tokens.get(at + 1).is_some_and(|token| token.is(".")) {
        let second = identifier(tokens.get(at + 2)?)?;
        return Some((salvage_catalog::QualifiedName::new(first, second), at + 3));
    }
    Some((salvage_catalog::QualifiedName::new("public", first), at + 1))
}

/// Three-part `schema.table.column` (or two-part `table.column`).
pub(crate) fn column_reference(
    tokens: &[Token<'_>],
    at: usize,
) -> Option<(salvage_catalog::QualifiedName, String, usize)> {
    let mut parts = vec![identifier(tokens.get(at)?)?];
    let mut next = at + 1;
    while tokens.get(next).is_some_and(|token| token.is(".")) && parts.len() < 3 {
        parts.push(identifier(tokens.get(next + 1)?)?);
        next += 2;
    }
    let column = parts.pop()?;
    let table = parts.pop()?;
    let schema = parts.pop().unwrap_or_else(|| "public".to_owned());
    Some((
        salvage_catalog::QualifiedName::new(schema, table),
        column,
        next,
    ))
}

/// The identifier a word or quoted-identifier token names.
pub(crate) fn identifier(token: &Token<'_>) -> Option<String> {
    match token.kind {
        Kind::Word | Kind::QuotedIdent => names::identifier(token.text).map(|(name, _)| name),
        _ => None,
    }
}

/// The index of the `)` closing the `(` at `open`.
pub(crate) fn closing_paren(tokens: &[Token<'_>], open: usize) -> Option<usize> {
    let depth = tokens.get(open)?.depth;
    tokens[open + 1..]
        .iter()
        .position(|token| token.is(")") && token.depth == depth)
        .map(|offset| open + 1 + offset)
}

/// `(a, "B")` at `open`: the identifiers, or `None` if an element is not a bare identifier
/// (an expression, an operator class, an ordering).
pub(crate) fn identifier_list(tokens: &[Token<'_>], open: usize) -> Option<(Vec<String>, usize)> {
    let close = closing_paren(tokens, open)?;
    let mut names = Vec::new();
    for element in tokens[open + 1..close]
        .split(|token| token.is(",") && token.depth == tokens[open].depth + 1)
    {
        match element {
            [single] => names.push(identifier(single)?),
            _ => return None,
        }
    }
    Some((names, close + 1))
}

#[cfg(test)]
mod tests {
    use super::{Kind, statements, tokens};

    #[test]
    fn splits_statements_outside_quotes() {
        let sql = "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$;\n\
                   -- a comment; with a semicolon\n\
                   COMMENT ON TABLE t IS 'a;b''c';\nSELECT E'x\\';y';";
        assert_eq!(
            statements(sql),
            vec![
                "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$",
                "-- a comment; with a semicolon\nCOMMENT ON TABLE t IS 'a;b''c'",
                "SELECT E'x\\';y'"
            ]
        );
    }

    #[test]
    fn tokens_carry_depth() {
        let all = tokens("a (b, \"C d\"::text) 'x'");
        let kinds: Vec<(Kind, &str, usize)> =
            all.iter().map(|t| (t.kind, t.text, t.depth)).collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::Word, "a", 0),
                (Kind::Punct, "(", 0),
                (Kind::Word, "b", 1),
                (Kind::Punct, ",", 1),
                (Kind::QuotedIdent, "\"C d\"", 1),
                (Kind::Punct, "::", 1),
                (Kind::Word, "text", 1),
                (Kind::Punct, ")", 0),
                (Kind::String, "'x'", 0),
            ]
        );
    }
}
