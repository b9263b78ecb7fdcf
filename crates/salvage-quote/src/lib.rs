//! Quoting for the few places where a name or value has to become SQL text.
//!
//! Identifiers are always quoted. Values are bound as parameters everywhere a statement
//! accepts parameters; `COPY (query) TO STDOUT` does not, so snapshot reads pass key sets
//! through a custom setting (`set_config`, a bound parameter) and read them back with
//! `current_setting(...)::type[]` — the literal forms below build those values.

/// `"name"`, with embedded quotes doubled: safe for any identifier, in any case.
#[must_use]
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for ch in name.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// `'value'` with embedded quotes doubled (valid with `standard_conforming_strings = on`,
/// which every salvage session pins). Used only for constants salvage itself writes.
#[must_use]
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for ch in value.chars() {
        if ch == '\'' {
            out.push('\'');
        }
        out.push(ch);
    }
    out.push('\'');
    out
}

/// The text form of a one-dimensional array, `{"a","b\"c",NULL}`: every element quoted,
/// backslashes and quotes escaped, `None` as an unquoted NULL.
#[must_use]
pub fn text_array_literal<'a, I>(values: I) -> String
where
    I: IntoIterator<Item = Option<&'a str>>,
{
    let mut out = String::from("{");
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        match value {
            None => out.push_str("NULL"),
            Some(value) => {
                out.push('"');
                for ch in value.chars() {
                    if ch == '"' || ch == '\\' {
                        out.push('\\');
                    }
                    out.push(ch);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::{quote_ident, quote_literal, text_array_literal};

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(quote_ident("sites"), "\"sites\"");
        assert_eq!(quote_ident("Weird \"name\""), "\"Weird \"\"name\"\"\"");
    }

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn array_literals_escape_and_keep_nulls() {
        assert_eq!(
            text_array_literal([Some("a"), Some("b\"c\\"), None, Some("NULL"), Some("")]),
            r#"{"a","b\"c\\",NULL,"NULL",""}"#
        );
        assert_eq!(text_array_literal(std::iter::empty()), "{}");
    }
}
