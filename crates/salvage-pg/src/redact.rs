//! Hiding passwords in any text that may hold a connection string: what a user typed (a
//! snapshot argument that is not recognised, a salvage.toml line), an error that quotes it, a
//! log line. [`Redacted`] is the one way such text reaches a message, a log or a report; the
//! CLI also passes everything it writes to stderr, logs and reports through it.
//!
//! Two shapes are hidden, wherever they appear and however malformed the rest is:
//! - a URL's userinfo password, `scheme://user:PASSWORD@host` (also `scheme:/user:PASSWORD@`
//!   and `user:PASSWORD@host`): everything from the first `:` of the userinfo to the last `@`
//!   of the word;
//! - a `password` setting, `password=VALUE`, `sslpassword = 'VALUE'`, `PGPASSWORD=VALUE`,
//!   `?password=VALUE&…` (any key ending in `password`, any case): the value, quoted or not.

use std::borrow::Cow;
use std::fmt;

/// What a hidden secret is shown as.
pub const HIDDEN: &str = "***";

/// Text shown with its passwords hidden: `Redacted(&text)` in a `format!` shows `text` with
/// every password (see the module's documentation) replaced by `***`.
#[derive(Clone, Copy)]
pub struct Redacted<T>(pub T);

impl<T: fmt::Display> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        f.write_str(&redact(&text))
    }
}

impl<T: fmt::Display> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redacted({self})")
    }
}

/// Text a user gave that may be a connection string (a snapshot argument, a target):
/// `Display` and `Debug` show it redacted, and only [`SecretText::expose`] hands out the
/// original, to what opens it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretText(String);

impl SecretText {
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text as given, for the code that connects or opens it. Never print it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretText({self})")
    }
}

/// `text` with every password hidden; borrowed when there is none.
#[must_use]
pub fn redact(text: &str) -> Cow<'_, str> {
    let userinfo = hide_userinfo_passwords(text);
    match hide_password_settings(&userinfo) {
        Cow::Borrowed(_) => userinfo,
        Cow::Owned(owned) => Cow::Owned(owned),
    }
}

/// Characters that end a word: whitespace and the quotes text puts around a value.
fn ends_word(ch: char) -> bool {
    ch.is_whitespace() || matches!(ch, '"' | '\'' | '`' | '<' | '>')
}

fn hide_userinfo_passwords(text: &str) -> Cow<'_, str> {
    if !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(|ch: char| !ends_word(ch)).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(ends_word).unwrap_or(rest.len());
        let word = &rest[..end];
        match hide_in_word(word) {
            Some(hidden) => {
                out.push_str(&hidden);
                changed = true;
            }
            None => out.push_str(word),
        }
        rest = &rest[end..];
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// `postgres://u:pw@h/d` → `postgres://u:***@h/d`; `None` when the word has no password.
fn hide_in_word(word: &str) -> Option<String> {
    let at = word.rfind('@')?;
    let authority = authority_start(word);
    if authority >= at {
        return None;
    }
    let userinfo = &word[authority..at];
    let colon = userinfo.find(':')?;
    let password_start = authority + colon + 1;
    Some(format!(
        "{}{HIDDEN}{}",
        &word[..password_start],
        &word[at..]
    ))
}

/// Where a word's userinfo would begin: after `scheme://`, after `scheme:/` (a slash
/// forgotten), or at the start.
fn authority_start(word: &str) -> usize {
    if let Some(position) = word.find("://") {
        return position + 3;
    }
    let scheme = word
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || matches!(ch, '+' | '-' | '.')))
        .unwrap_or(word.len());
    if scheme > 0 && word[scheme..].starts_with(":/") {
        let after = &word[scheme + 1..];
        return scheme + 1 + (after.len() - after.trim_start_matches('/').len());
    }
    0
}

fn hide_password_settings(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("password") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("password") {
        let key_end = search + found + "password".len();
        search = key_end;
        let after_key = &text[key_end..];
        let spaced = after_key.len() - after_key.trim_start().len();
        let Some(after_equals) = after_key[spaced..].strip_prefix('=') else {
            continue;
        };
        let value_offset =
            key_end + spaced + 1 + (after_equals.len() - after_equals.trim_start().len());
        let value = &text[value_offset..];
        let length = value_length(value);
        if length == 0 {
            continue;
        }
        out.push_str(&text[copied..value_offset]);
        out.push_str(HIDDEN);
        copied = value_offset + length;
        search = copied;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The length of a setting's value: a quoted string (with backslash escapes) with its quotes,
/// or a run up to whitespace. (A URL's later parameters are hidden with it: better too much
/// than a piece of a password that holds `&` or a quote.)
fn value_length(value: &str) -> usize {
    let mut chars = value.char_indices();
    match chars.next() {
        Some((_, quote @ ('\'' | '"'))) => {
            let mut escaped = false;
            for (index, ch) in chars {
                if escaped {
                    escaped = false;
                } else if ch == '\\' {
                    escaped = true;
                } else if ch == quote {
                    return index + ch.len_utf8();
                }
            }
            value.len()
        }
        Some(_) => value.find(char::is_whitespace).unwrap_or(value.len()),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::{Redacted, redact};

    #[test]
    fn hides_userinfo_passwords_in_urls_well_formed_or_not() {
        for (text, shown) in [
            (
                "postgres://alice:s3cret@db:5432/app",
                "postgres://alice:***@db:5432/app",
            ),
            (
                "`postgress://u:PW@host/db` is not a snapshot",
                "`postgress://u:***@host/db` is not a snapshot",
            ),
            ("postgres:/u:PW@host/db", "postgres:/u:***@host/db"),
            ("u:PW@host", "u:***@host"),
            ("postgres://u:p@ss:w@rd@h/d", "postgres://u:***@h/d"),
            ("postgres://u:hunter2@[bad/d", "postgres://u:***@[bad/d"),
            (
                "target = \"postgres://u:PW@h/d\"",
                "target = \"postgres://u:***@h/d\"",
            ),
        ] {
            assert_eq!(redact(text), shown, "{text}");
        }
    }

    #[test]
    fn hides_password_settings() {
        for (text, shown) in [
            (
                "host=db password=s3cret dbname=app",
                "host=db password=*** dbname=app",
            ),
            (
                "host=db password = 'a b\\' c' user=a",
                "host=db password = *** user=a",
            ),
            (
                "postgres://db/app?sslmode=require&password=x1&PASSWORD=y2",
                "postgres://db/app?sslmode=require&password=***",
            ),
            ("password=\"a&b'c\" next", "password=*** next"),
            ("PGPASSWORD=abc ./run", "PGPASSWORD=*** ./run"),
        ] {
            assert_eq!(redact(text), shown, "{text}");
        }
    }

    #[test]
    fn leaves_other_text_alone() {
        for text in [
            "password authentication failed for user \"alice\"",
            "mail alice@example.com about public.sites",
            "no password given",
            "",
        ] {
            assert!(
                matches!(redact(text), std::borrow::Cow::Borrowed(_)),
                "{text}"
            );
        }
        assert_eq!(
            format!("{}", Redacted("open postgresql://u:PW@h/d: No such file")),
            "open postgresql://u:***@h/d: No such file"
        );
    }
}
