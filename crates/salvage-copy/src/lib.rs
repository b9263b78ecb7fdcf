//! PostgreSQL's COPY text format, the one `COPY ... TO STDOUT` and pg_dump write: rows end with
//! a newline, fields are separated by tabs, `\N` is NULL and backslash escapes the rest.
//!
//! Rows travel through salvage as raw COPY text; only the few fields a filter or a comparison
//! needs are split out and decoded, here. Writers (PostgreSQL's `CopyAttributeOutText`) escape
//! backslash, newline, carriage return, tab, backspace, form feed and vertical tab; readers
//! (`CopyReadAttributesText`) also accept octal `\NNN`, hex `\xHH` and any other escaped
//! character as itself.

use std::borrow::Cow;

/// The line that ends COPY data in a dump or a `COPY FROM STDIN` stream.
pub const END_OF_DATA: &[u8] = b"\\.";

/// The raw text of a NULL field.
pub const NULL: &[u8] = b"\\N";

/// The raw, still-escaped fields of one row (without its newline). A tab byte always
/// separates fields: a tab inside a value is written as `\t`.
#[must_use]
pub fn fields(row: &[u8]) -> Fields<'_> {
    Fields { rest: Some(row) }
}

/// Iterator returned by [`fields`].
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        // memchr: a row's text fields are long, its keys short; both are searched fast.
        if let Some(tab) = memchr::memchr(b'\t', rest) {
            self.rest = Some(&rest[tab + 1..]);
            Some(&rest[..tab])
        } else {
            self.rest = None;
            Some(rest)
        }
    }
}

/// Whether a raw field is NULL: exactly `\N`, before any unescaping.
#[must_use]
pub fn is_null(raw: &[u8]) -> bool {
    raw == NULL
}

/// Decodes one raw field: `None` for NULL, the value's bytes otherwise (borrowed when there
/// was nothing to unescape).
#[must_use]
pub fn decode(raw: &[u8]) -> Option<Cow<'_, [u8]>> {
    if is_null(raw) {
        return None;
    }
    if !raw.contains(&b'\\') {
        return Some(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        let byte = raw[index];
        index += 1;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        let Some(&escaped) = raw.get(index) else {
            // A trailing lone backslash is dropped, as PostgreSQL does.
            break;
        };
        index += 1;
        match escaped {
            b'0'..=b'7' => {
                let mut value = u32::from(escaped - b'0');
                for _ in 0..2 {
                    match raw.get(index) {
                        Some(&digit @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(digit - b'0');
                            index += 1;
                        }
                        _ => break,
                    }
                }
                // Three octal digits reach 0o777; PostgreSQL keeps the low byte.
                out.push((value & 0xff) as u8);
            }
            b'x' => {
                let mut value = 0u8;
                let mut digits = 0;
                while digits < 2 {
                    match raw.get(index).and_then(|&digit| hex_value(digit)) {
                        Some(digit) => {
                            value = value * 16 + digit;
                            index += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                out.push(if digits == 0 { b'x' } else { value });
            }
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            other => out.push(other),
        }
    }
    Some(Cow::Owned(out))
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Appends one field as PostgreSQL writes it: `\N` for NULL, the value with backslash, tab,
/// newline, carriage return, backspace, form feed and vertical tab escaped.
pub fn encode(value: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some(value) = value else {
        out.extend_from_slice(NULL);
        return;
    };
    for &byte in value {
        let escaped = match byte {
            b'\\' => b'\\',
            b'\t' => b't',
            b'\n' => b'n',
            b'\r' => b'r',
            0x08 => b'b',
            0x0c => b'f',
            0x0b => b'v',
            _ => {
                out.push(byte);
                continue;
            }
        };
        out.push(b'\\');
        out.push(escaped);
    }
}

/// Appends a whole row: fields joined by tabs, ended by a newline.
pub fn encode_row<'a, I>(values: I, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = Option<&'a [u8]>>,
{
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            out.push(b'\t');
        }
        encode(value, out);
    }
    out.push(b'\n');
}

/// Decodes a raw field as UTF-8 text (COPY streams salvage reads are UTF-8: every session
/// pins `client_encoding`). Invalid UTF-8 is replaced, never trusted.
#[must_use]
pub fn decode_text(raw: &[u8]) -> Option<String> {
    decode(raw).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::{decode, decode_text, encode, encode_row, fields, is_null};

    fn decoded(raw: &str) -> Option<Vec<u8>> {
        decode(raw.as_bytes()).map(std::borrow::Cow::into_owned)
    }

    #[test]
    fn splits_rows_on_raw_tabs_only() {
        let row = b"1\tcomment\\twith tab\t\\N\t";
        let parts: Vec<&[u8]> = fields(row).collect();
        assert_eq!(parts, vec![&b"1"[..], b"comment\\twith tab", b"\\N", b""]);
        assert!(is_null(parts[2]));
        assert!(!is_null(parts[3]));
        assert_eq!(fields(b"").count(), 1);
    }

    #[test]
    fn decodes_the_escapes_postgres_writes() {
        assert_eq!(
            decoded(r"a\tb\nc\rd\\e\bf\fg\vh"),
            Some(b"a\tb\nc\rd\\e\x08f\x0cg\x0bh".to_vec())
        );
        assert_eq!(decoded(r"\N"), None);
        assert_eq!(decoded(r"\\N"), Some(b"\\N".to_vec()));
        assert_eq!(decoded(r"x\Ny"), Some(b"xNy".to_vec()));
    }

    #[test]
    fn decodes_the_escapes_postgres_also_reads() {
        assert_eq!(decoded(r"\101\0\12z"), Some(b"A\0\nz".to_vec()));
        assert_eq!(decoded(r"\777"), Some(vec![0xff]));
        assert_eq!(decoded(r"\x41\x4g\xz"), Some(b"A\x04gxz".to_vec()));
        assert_eq!(decoded(r"\q\."), Some(b"q.".to_vec()));
        assert_eq!(decoded("end\\"), Some(b"end".to_vec()));
    }

    #[test]
    fn encodes_like_postgres() {
        let mut out = Vec::new();
        encode_row(
            [
                Some(&b"a\tb\\c\nd\re"[..]),
                None,
                Some(b""),
                Some(b"\x08\x0c\x0b\x01"),
            ],
            &mut out,
        );
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re\t\\N\t\t\\b\\f\\v\x01\n".to_vec());
        let mut null_text = Vec::new();
        encode(Some(b"\\N"), &mut null_text);
        assert_eq!(null_text, b"\\\\N");
    }

    #[test]
    fn text_decoding_replaces_bad_utf8() {
        assert_eq!(decode_text(b"caf\\303\\251").as_deref(), Some("café"));
        assert_eq!(decode_text(b"\\377").as_deref(), Some("\u{fffd}"));
    }
}
