//! What the CLI writes, written one way: every line to stderr (errors, logs) passes through
//! [`salvage_pg::redact`], numbers are grouped by thousands, and counted nouns agree with
//! their number.

use std::io::{self, IsTerminal, Write};

use salvage_pg::Redacted;

/// `1234567` → `1,234,567`.
pub fn number(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `1 tenant`, `2 tenants`, `1,000 rows`: the number grouped, the noun agreeing with it.
pub fn count(value: u64, one: &str, many: &str) -> String {
    format!("{} {}", number(value), if value == 1 { one } else { many })
}

/// `count` for the common case where the plural adds an `s`.
pub fn counted(value: u64, noun: &str) -> String {
    count(value, noun, &format!("{noun}s"))
}

/// `value` as pretty JSON with every string redacted (a report may quote an error that quotes
/// a connection string); redacting string by string keeps the JSON valid.
pub fn json(value: &impl serde::Serialize) -> serde_json::Result<String> {
    fn redact_strings(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => {
                if let std::borrow::Cow::Owned(hidden) = salvage_pg::redact(text) {
                    *text = hidden;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(redact_strings),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(redact_strings),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(value)?;
    redact_strings(&mut value);
    serde_json::to_string_pretty(&value)
}

/// Prints text to stdout, redacted.
pub fn print(text: &str) {
    let _ = io::stdout().write_all(salvage_pg::redact(text).as_bytes());
}

/// Prints an error to stderr, redacted.
pub fn print_error(text: &str) {
    let _ = writeln!(io::stderr(), "error: {}", Redacted(text));
}

/// Whether colour may be written to stderr: a terminal, and no `NO_COLOR`.
pub fn stderr_colours() -> bool {
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// The log's writer: stderr, each event redacted before it is written (tracing's formatter
/// hands over one whole event per write).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buffer);
        io::stderr().write_all(salvage_pg::redact(&text).as_bytes())?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::{count, counted, json, number};

    #[test]
    fn json_is_redacted_string_by_string() {
        let value = serde_json::json!({"error": "cannot open postgres://h/d?password=x1", "n": 3});
        let text = json(&value).unwrap();
        assert!(!text.contains("x1"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["n"], 3);
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1_000), "1,000");
        assert_eq!(number(1_234_567), "1,234,567");
    }

    #[test]
    fn nouns_agree_with_their_number() {
        assert_eq!(counted(1, "tenant"), "1 tenant");
        assert_eq!(counted(0, "tenant"), "0 tenants");
        assert_eq!(count(2_000, "entry", "entries"), "2,000 entries");
    }
}
