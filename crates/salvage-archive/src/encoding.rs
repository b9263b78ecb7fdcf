//! The character encoding of a dump's text. pg_dump writes everything — the TOC's SQL and the
//! COPY rows — in its client encoding, which is the dumped database's encoding unless
//! `--encoding` said otherwise, and records it in the ENCODING entry (`SET client_encoding =
//! 'LATIN1';`, also the top of a plain dump). salvage's sessions are always UTF-8, so what
//! leaves this crate is UTF-8: UTF8 and `SQL_ASCII` text passes through untouched (no cost per
//! row), LATIN1 is transcoded as it is read, and any other encoding is refused when the dump
//! is opened.

use std::io;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Location};
use crate::lines::{DataLine, LineSource};

/// An encoding this reader can deliver as UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Encoding {
    #[serde(rename = "UTF8")]
    Utf8,
    /// "No encoding": bytes are passed through as they are. Rows that hold bytes which are
    /// not UTF-8 are refused by the UTF-8 target when they are written.
    #[serde(rename = "SQL_ASCII")]
    SqlAscii,
    /// ISO-8859-1: each byte is the code point U+0000–U+00FF, transcoded while rows stream.
    #[serde(rename = "LATIN1")]
    Latin1,
}

impl Encoding {
    /// PostgreSQL's name of the encoding (`pg_encoding_to_char`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF8",
            Self::SqlAscii => "SQL_ASCII",
            Self::Latin1 => "LATIN1",
        }
    }

    /// The encoding PostgreSQL knows by `name`, as `pg_char_to_encoding` matches names
    /// (case and punctuation ignored, `UNICODE` and `ISO-8859-1` accepted); `None` for the
    /// encodings this reader does not deliver.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        let clean: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|ch| ch.to_ascii_lowercase())
            .collect();
        match clean.as_str() {
            "utf8" | "unicode" => Some(Self::Utf8),
            "sqlascii" => Some(Self::SqlAscii),
            "latin1" | "iso88591" => Some(Self::Latin1),
            _ => None,
        }
    }

    /// Text of the dump (a TOC string, a line of a plain dump) as a `String`. UTF8 and
    /// `SQL_ASCII` text that is not valid UTF-8 has its bad bytes replaced, as before.
    pub(crate) fn decode(self, bytes: Vec<u8>) -> String {
        match self {
            Self::Latin1 => bytes.into_iter().map(char::from).collect(),
            Self::Utf8 | Self::SqlAscii => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
            },
        }
    }

    /// [`Encoding::decode`] for borrowed bytes.
    pub(crate) fn decode_slice(self, bytes: &[u8]) -> String {
        match self {
            Self::Latin1 => bytes.iter().copied().map(char::from).collect(),
            Self::Utf8 | Self::SqlAscii => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// Wraps a source of COPY lines so its rows come out as UTF-8 (the source itself when
    /// they already are).
    pub(crate) fn utf8_lines<'a>(
        self,
        lines: Box<dyn LineSource + Send + 'a>,
    ) -> Box<dyn LineSource + Send + 'a> {
        match self {
            Self::Utf8 | Self::SqlAscii => lines,
            Self::Latin1 => Box::new(Latin1Lines {
                inner: lines,
                buffer: Vec::new(),
            }),
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with an encoding a dump names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The statement names no encoding at all.
    NoName,
    /// An encoding this reader does not deliver, named as the dump wrote it.
    Unsupported(String),
}

impl Refusal {
    /// The crate's error for this refusal of the dump at `path`; `statement` is what named it.
    pub(crate) fn error(self, path: &Path, statement: &str, at: Location) -> Error {
        match self {
            Self::Unsupported(encoding) => Error::UnsupportedEncoding {
                path: path.to_owned(),
                encoding,
            },
            Self::NoName => Error::corrupt(
                at,
                format!("{:?} names no client encoding", statement.trim_end()),
            ),
        }
    }
}

/// The encoding named by `SET client_encoding = 'NAME';` (or `TO NAME`), the statement of an
/// ENCODING entry and of a plain dump's preamble; `None` when `statement` is no such SET.
pub(crate) fn from_set_statement(statement: &str) -> Option<Result<Encoding, Refusal>> {
    let rest = statement.trim_start();
    let head = rest.get(.."SET client_encoding".len())?;
    if !head.eq_ignore_ascii_case("SET client_encoding") {
        return None;
    }
    let rest = rest[head.len()..].trim_start();
    let rest = match rest.strip_prefix('=') {
        Some(rest) => rest,
        None => match rest.get(..2) {
            Some(to) if to.eq_ignore_ascii_case("TO") => &rest[2..],
            _ => return None,
        },
    };
    let value = rest.trim().trim_end_matches(';').trim();
    let name = value
        .strip_prefix('\'')
        .and_then(|quoted| quoted.strip_suffix('\''))
        .unwrap_or(value);
    if name.is_empty() {
        return Some(Err(Refusal::NoName));
    }
    Some(Encoding::from_name(name).ok_or_else(|| Refusal::Unsupported(name.to_owned())))
}

/// Appends the UTF-8 form of LATIN1 `input` to `output`: bytes below 0x80 as they are, the
/// others as the two bytes of U+0080–U+00FF (what PostgreSQL's `iso8859_1_to_utf8` does).
/// COPY's escapes (`\t`, `\\`, `\N`) are ASCII and come out unchanged.
pub(crate) fn latin1_to_utf8(input: &[u8], output: &mut Vec<u8>) {
    output.reserve(input.len());
    let mut start = 0;
    for (index, &byte) in input.iter().enumerate() {
        if byte >= 0x80 {
            output.extend_from_slice(&input[start..index]);
            output.extend_from_slice(&[0xc0 | (byte >> 6), 0x80 | (byte & 0x3f)]);
            start = index + 1;
        }
    }
    output.extend_from_slice(&input[start..]);
}

/// A line source of LATIN1 text lending UTF-8 lines: an ASCII line as it is, any other one
/// transcoded into a reused buffer.
struct Latin1Lines<L> {
    inner: L,
    buffer: Vec<u8>,
}

/// `line` when it is ASCII, else its UTF-8 form in `buffer`.
fn as_utf8<'a>(line: &'a [u8], buffer: &'a mut Vec<u8>) -> &'a [u8] {
    if line.is_ascii() {
        return line;
    }
    buffer.clear();
    latin1_to_utf8(line, buffer);
    buffer
}

impl<L: LineSource> LineSource for Latin1Lines<L> {
    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        let Self { inner, buffer } = self;
        Ok(inner.next_line()?.map(|line| as_utf8(line, buffer)))
    }

    fn next_data_line(&mut self) -> io::Result<DataLine<'_>> {
        let Self { inner, buffer } = self;
        Ok(match inner.next_data_line()? {
            DataLine::Row(line) => DataLine::Row(as_utf8(line, buffer)),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Encoding, Refusal, from_set_statement, latin1_to_utf8};
    use crate::lines::{DataLine, LineReader, LineSource};

    fn transcode(input: &[u8]) -> Vec<u8> {
        let mut output = Vec::new();
        latin1_to_utf8(input, &mut output);
        output
    }

    #[test]
    fn every_high_byte_becomes_its_code_point() {
        for byte in 0x80..=0xffu8 {
            let expected = char::from_u32(u32::from(byte)).unwrap().to_string();
            assert_eq!(transcode(&[byte]), expected.as_bytes(), "byte {byte:#04x}");
            // Between ASCII, at both ends of a run of high bytes.
            let mut input = b"a\t".to_vec();
            input.extend_from_slice(&[byte, byte]);
            input.push(b'z');
            assert_eq!(
                transcode(&input),
                format!("a\t{expected}{expected}z").as_bytes()
            );
        }
        let all: Vec<u8> = (0x80..=0xffu8).collect();
        let expected: String = (0x80..=0xffu32).filter_map(char::from_u32).collect();
        assert_eq!(String::from_utf8(transcode(&all)).unwrap(), expected);
        assert_eq!(Encoding::Latin1.decode(all.clone()), expected);
        assert_eq!(Encoding::Latin1.decode_slice(&all), expected);
    }

    #[test]
    fn ascii_and_copy_escapes_are_untouched() {
        let ascii: Vec<u8> = (0x01..0x80u8).collect();
        assert_eq!(transcode(&ascii), ascii);
        let row = b"1\t\\N\tcaf\xe9\\t\\\\\\n\\.\t\\x41\\351";
        assert_eq!(
            transcode(row),
            "1\t\\N\tcafé\\t\\\\\\n\\.\t\\x41\\351".as_bytes()
        );
        assert_eq!(transcode(b""), b"");
    }

    #[test]
    fn latin1_lines_lend_utf8_rows_and_keep_the_end_marker() {
        let input = b"plain\n\xdf\t\xff\n\\.\n";
        let mut lines = Encoding::Latin1.utf8_lines(Box::new(LineReader::new(&input[..])));
        assert_eq!(
            lines.next_data_line().unwrap(),
            DataLine::Row(&b"plain"[..])
        );
        assert_eq!(
            lines.next_data_line().unwrap(),
            DataLine::Row("ß\tÿ".as_bytes())
        );
        assert_eq!(lines.next_data_line().unwrap(), DataLine::End);
        let mut lines = Encoding::Latin1.utf8_lines(Box::new(LineReader::new(&b"\xe9\n"[..])));
        assert_eq!(lines.next_line().unwrap(), Some("é".as_bytes()));
        assert_eq!(lines.next_line().unwrap(), None);
        // UTF-8 rows are lent as they are.
        let mut lines = Encoding::Utf8.utf8_lines(Box::new(LineReader::new(&b"\xe9\n"[..])));
        assert_eq!(lines.next_line().unwrap(), Some(&b"\xe9"[..]));
    }

    #[test]
    fn reads_the_encoding_of_a_set_statement() {
        assert_eq!(
            from_set_statement("SET client_encoding = 'LATIN1';\n"),
            Some(Ok(Encoding::Latin1))
        );
        assert_eq!(
            from_set_statement("set CLIENT_ENCODING to utf8"),
            Some(Ok(Encoding::Utf8))
        );
        assert_eq!(
            from_set_statement("SET client_encoding = 'SQL_ASCII';"),
            Some(Ok(Encoding::SqlAscii))
        );
        assert_eq!(
            from_set_statement("SET client_encoding = 'ISO-8859-1';"),
            Some(Ok(Encoding::Latin1))
        );
        assert_eq!(
            from_set_statement("SET client_encoding = 'WIN1252';"),
            Some(Err(Refusal::Unsupported("WIN1252".to_owned())))
        );
        assert_eq!(
            from_set_statement("SET client_encoding = '';"),
            Some(Err(Refusal::NoName))
        );
        assert_eq!(
            from_set_statement("SET standard_conforming_strings = on;"),
            None
        );
        assert_eq!(from_set_statement("SET client_encodings = 'x';"), None);
    }
}
