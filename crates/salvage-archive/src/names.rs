//! Identifiers as pg_dump writes them: `schema.table`, `"Odd ""Name"""`, column lists. Used for
//! the COPY statements of TABLE DATA entries and by the schema reader's small parsers.

use salvage_catalog::QualifiedName;

/// Reads one identifier at the start of `text` (after blanks): a quoted one keeps its case and
/// undoubles `""`; an unquoted one is folded to lower case, as PostgreSQL does. Returns the
/// identifier and the rest of the text.
pub(crate) fn identifier(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices();
        while let Some((index, ch)) = chars.next() {
            if ch == '"' {
                if rest[index + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &rest[index + 1..]));
                }
            } else {
                name.push(ch);
            }
        }
        return None;
    }
    let end = text
        .char_indices()
        .find(|&(_, ch)| !(ch.is_alphanumeric() || ch == '_' || ch == '$'))
        .map_or(text.len(), |(index, _)| index);
    if end == 0 || text.as_bytes()[0].is_ascii_digit() || text.starts_with('$') {
        return None;
    }
    Some((text[..end].to_ascii_lowercase(), &text[end..]))
}

/// Reads `name` or `schema.name`; a name without a schema is in `default_schema`.
pub(crate) fn qualified_name<'a>(
    text: &'a str,
    default_schema: &str,
) -> Option<(QualifiedName, &'a str)> {
    let (first, rest) = identifier(text)?;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let (second, rest) = identifier(after_dot)?;
        Some((QualifiedName::new(first, second), rest))
    } else {
        Some((QualifiedName::new(default_schema, first), rest))
    }
}

/// Reads `(a, "B", c)` and returns the names and the rest after `)`.
pub(crate) fn identifier_list(text: &str) -> Option<(Vec<String>, &str)> {
    let mut rest = text.trim_start().strip_prefix('(')?;
    let mut names = Vec::new();
    if let Some(after) = rest.trim_start().strip_prefix(')') {
        return Some((names, after));
    }
    loop {
        let (name, after) = identifier(rest)?;
        names.push(name);
        let after = after.trim_start();
        if let Some(after) = after.strip_prefix(',') {
            rest = after;
        } else {
            return Some((names, after.strip_prefix(')')?));
        }
    }
}

/// Strips a keyword (case-insensitive, whole word) from the start of `text` after blanks.
pub(crate) fn keyword<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let text = text.trim_start();
    let head = text.get(..word.len())?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    let rest = &text[word.len()..];
    match rest.chars().next() {
        Some(ch) if ch.is_alphanumeric() || ch == '_' => None,
        _ => Some(rest),
    }
}

/// Strips a sequence of keywords.
pub(crate) fn keywords<'a>(text: &'a str, words: &[&str]) -> Option<&'a str> {
    words
        .iter()
        .try_fold(text, |rest, word| keyword(rest, word))
}

/// The target and columns of a `COPY schema.table (a, b) FROM stdin;` statement. A table
/// without columns is written `COPY schema.table  FROM stdin;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyStatement {
    pub(crate) table: QualifiedName,
    pub(crate) columns: Vec<String>,
}

pub(crate) fn parse_copy_statement(statement: &str) -> Option<CopyStatement> {
    let rest = keyword(statement, "COPY")?;
    let (table, rest) = qualified_name(rest, "public")?;
    let (columns, rest) = if rest.trim_start().starts_with('(') {
        identifier_list(rest)?
    } else {
        (Vec::new(), rest)
    };
    let rest = keywords(rest, &["FROM", "stdin"])?;
    if !rest.trim_start().starts_with(';') {
        return None;
    }
    Some(CopyStatement { table, columns })
}

#[cfg(test)]
mod tests {
    use super::{identifier, parse_copy_statement, qualified_name};
    use salvage_catalog::QualifiedName;

    #[test]
    fn reads_quoted_and_unquoted_identifiers() {
        assert_eq!(identifier(" abc, d"), Some(("abc".into(), ", d")));
        assert_eq!(
            identifier("\"We\"\"ird\".x"),
            Some(("We\"ird".into(), ".x"))
        );
        assert_eq!(identifier("Upper"), Some(("upper".into(), "")));
        assert_eq!(identifier("\"open"), None);
        assert_eq!(identifier("(x"), None);
        assert_eq!(
            qualified_name("\"Sales Dept\".\"Odd Name\" (", "public"),
            Some((QualifiedName::new("Sales Dept", "Odd Name"), " ("))
        );
    }

    #[test]
    fn parses_copy_statements() {
        let copy = parse_copy_statement(
            "COPY \"Sales Dept\".\"Odd Name\" (\"Id\", \"two words\", \"we\"\"ird\", \"select\", \"ÄÖÜ\") FROM stdin;\n",
        )
        .unwrap();
        assert_eq!(copy.table, QualifiedName::new("Sales Dept", "Odd Name"));
        assert_eq!(
            copy.columns,
            vec!["Id", "two words", "we\"ird", "select", "ÄÖÜ"]
        );
        let empty = parse_copy_statement("COPY public.no_columns  FROM stdin;\n").unwrap();
        assert_eq!(empty.table, QualifiedName::new("public", "no_columns"));
        assert!(empty.columns.is_empty());
        assert_eq!(parse_copy_statement("INSERT INTO t VALUES (1);"), None);
        assert_eq!(parse_copy_statement("COPY t (a FROM stdin;"), None);
    }
}
