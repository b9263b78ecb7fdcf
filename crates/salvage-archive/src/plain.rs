//! Plain SQL dumps (`pg_dump -Fp`, possibly gzip-compressed). There is no binary TOC: the
//! entries are rebuilt from the comment pg_dump writes before each object
//! (`-- Name: sites; Type: TABLE; Schema: public; Owner: app`), their definitions are the SQL
//! that follows, and each table's rows are the lines after its `COPY ... FROM stdin;` up to
//! `\.`. psql's `\restrict`/`\unrestrict` lines of recent versions are skipped. The
//! `SET client_encoding` of the preamble gives the encoding the rest is read in.

use std::io::Read;

use crate::compress::StreamEnd;
use crate::encoding::{self, Encoding};
use crate::error::{Error, Location, Result};
use crate::lines::{LineReader, LineSource};
use crate::names::parse_copy_statement;
use crate::toc::{DataLocation, Section, TocEntry};

/// What a plain dump says about itself besides its entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlainListing {
    pub(crate) entries: Vec<TocEntry>,
    pub(crate) server_version: Option<String>,
    pub(crate) pg_dump_version: Option<String>,
    /// From the preamble's `SET client_encoding`; `None` when there is none.
    pub(crate) encoding: Option<Encoding>,
    /// Whether pg_dump's opening comment was seen, and its closing one.
    pub(crate) started: bool,
    pub(crate) completed: bool,
}

/// Parses `-- Name: TAG; Type: DESC; Schema: NS; Owner: OWNER` (after the `Name: `).
fn parse_entry_comment(text: &str, dump_id: i32) -> Option<TocEntry> {
    let (tag, rest) = text.split_once("; Type: ")?;
    let (desc, rest) = match rest.rfind("; Schema: ") {
        Some(index) => (&rest[..index], &rest[index + "; Schema: ".len()..]),
        None => (rest, ""),
    };
    let (schema, owner) = match rest.rfind("; Owner: ") {
        Some(index) => (&rest[..index], Some(&rest[index + "; Owner: ".len()..])),
        None => (rest, None),
    };
    let section = match desc {
        "TABLE DATA" | "SEQUENCE SET" | "BLOBS" => Section::Data,
        "CONSTRAINT" | "FK CONSTRAINT" | "INDEX" | "TRIGGER" | "INDEX ATTACH" | "RULE"
        | "POLICY" => Section::PostData,
        _ => Section::PreData,
    };
    let optional = |value: &str| (!value.is_empty() && value != "-").then(|| value.to_owned());
    Some(TocEntry {
        dump_id,
        had_dumper: desc == "TABLE DATA",
        table_oid: None,
        oid: None,
        tag: tag.to_owned(),
        desc: desc.to_owned(),
        section,
        defn: None,
        drop_stmt: None,
        copy_stmt: None,
        namespace: optional(schema),
        tablespace: None,
        table_access_method: None,
        relkind: None,
        owner: owner.and_then(optional),
        dependencies: Vec::new(),
        data: DataLocation::None,
    })
}

/// Closes an entry: its definition is the SQL gathered since its comment, without the blank
/// lines and the `--` that open the next comment.
fn finish(entry: Option<TocEntry>, defn: &mut String, entries: &mut Vec<TocEntry>) {
    let text = defn.trim_end();
    let text = text.strip_suffix("\n--").unwrap_or(text).trim();
    if let Some(mut entry) = entry {
        if !text.is_empty() {
            entry.defn = Some(format!("{text}\n"));
        }
        entries.push(entry);
    }
    defn.clear();
}

/// Reads a whole plain dump from `lines`. `on_data` is called at the first row of each COPY
/// block, with the entry (its `copy_stmt` and `data` set) and the encoding of the rows; it
/// returns whether it read the block's end marker `\.`, and if not the rest of the block is
/// stepped over. A dump in an encoding this reader cannot deliver as UTF-8 is refused at its
/// `SET client_encoding`, before any entry.
pub(crate) fn parse<R, E, F>(
    lines: &mut LineReader<R>,
    location: &dyn Fn(u64) -> Location,
    mut on_data: F,
) -> Result<PlainListing, E>
where
    R: Read + StreamEnd,
    E: From<Error>,
    F: FnMut(&TocEntry, Encoding, &mut LineReader<R>) -> Result<bool, E>,
{
    let mut listing = PlainListing::default();
    let mut current: Option<TocEntry> = None;
    let mut defn = String::new();
    let mut in_comment = false;
    let mut toc_dump_id: Option<i32> = None;
    let mut text_encoding = Encoding::Utf8;
    let read_error = |error: std::io::Error, at: u64| {
        Error::corrupt(location(at), format!("cannot read the SQL dump: {error}"))
    };
    loop {
        let at = lines.position();
        let text = match lines.next_line() {
            Ok(Some(line)) => text_encoding.decode_slice(line),
            Ok(None) => break,
            Err(error) => return Err(read_error(error, at).into()),
        };
        if text == "-- PostgreSQL database dump" {
            listing.started = true;
            continue;
        }
        if text == "-- PostgreSQL database dump complete" {
            listing.completed = true;
            finish(current.take(), &mut defn, &mut listing.entries);
            continue;
        }
        if current.is_none() {
            if let Some(version) = text.strip_prefix("-- Dumped from database version ") {
                listing.server_version = Some(version.trim().to_owned());
                continue;
            }
            if let Some(version) = text.strip_prefix("-- Dumped by pg_dump version ") {
                listing.pg_dump_version = Some(version.trim().to_owned());
                continue;
            }
            if listing.entries.is_empty() && listing.encoding.is_none() {
                if let Some(named) = encoding::from_set_statement(&text) {
                    let found = named.map_err(|refusal| {
                        let at = location(at);
                        let path = at.file.clone();
                        refusal.error(&path, &text, at)
                    })?;
                    listing.encoding = Some(found);
                    text_encoding = found;
                    continue;
                }
            }
        }
        if let Some(rest) = text.strip_prefix("-- TOC entry ") {
            toc_dump_id = rest
                .split_whitespace()
                .next()
                .and_then(|id| id.parse().ok());
            continue;
        }
        let comment = text
            .strip_prefix("-- Name: ")
            .or_else(|| text.strip_prefix("-- Data for Name: "));
        if let Some(comment) = comment {
            // Without `-- TOC entry` lines, entries are numbered in order; the entry still
            // open (`current`) has the number before this one.
            let dump_id = toc_dump_id.take().unwrap_or_else(|| {
                let number = listing.entries.len() + usize::from(current.is_some()) + 1;
                i32::try_from(number).unwrap_or(i32::MAX)
            });
            if let Some(entry) = parse_entry_comment(comment, dump_id) {
                finish(current.take(), &mut defn, &mut listing.entries);
                current = Some(entry);
                in_comment = true;
                continue;
            }
        }
        if text.starts_with("\\restrict ") || text.starts_with("\\unrestrict ") {
            continue;
        }
        let Some(entry) = current.as_mut() else {
            continue;
        };
        if in_comment && (text == "--" || text.is_empty()) {
            continue;
        }
        in_comment = false;
        if entry.desc == "TABLE DATA"
            && entry.copy_stmt.is_none()
            && text.starts_with("COPY ")
            && parse_copy_statement(&text).is_some()
        {
            entry.copy_stmt = Some(format!("{text}\n"));
            entry.data = DataLocation::Text(lines.position());
            let data_at = lines.position();
            let ended = on_data(entry, text_encoding, lines)?
                || lines
                    .skip_through_line(salvage_copy::END_OF_DATA)
                    .map_err(|error| read_error(error, data_at))?;
            if !ended {
                return Err(Error::corrupt(
                    Location {
                        entry: Some((entry.dump_id, entry.describe())),
                        ..location(lines.position())
                    },
                    "the COPY data has no end marker \\. (truncated?)",
                )
                .into());
            }
            continue;
        }
        defn.push_str(&text);
        defn.push('\n');
    }
    finish(current.take(), &mut defn, &mut listing.entries);
    if listing.started && !listing.completed {
        return Err(Error::corrupt(
            location(lines.position()),
            "the SQL dump ends without pg_dump's closing comment \
             (-- PostgreSQL database dump complete): truncated?",
        )
        .into());
    }
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::error::{Error, Location};
    use crate::lines::{LineReader, LineSource};
    use crate::toc::DataLocation;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n\
-- Dumped from database version 15.18\n-- Dumped by pg_dump version 18.6\n\nSET x = 1;\n\n\
--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\n\
CREATE TABLE public.t (\n    a integer\n);\n\n\n\
--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n\
COPY public.t (a) FROM stdin;\n1\n2\n\\.\n\n\n\
--\n-- Data for Name: e; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n\
COPY public.e (a) FROM stdin;\n\\.\n\n\n\\unrestrict abc\n\n--\n-- PostgreSQL database dump complete\n--\n";

    #[test]
    fn rebuilds_entries_from_comments() {
        let mut lines = LineReader::new(DUMP.as_bytes());
        let location = |offset| Location {
            file: "dump.sql".into(),
            offset,
            entry: None,
        };
        let mut seen = Vec::new();
        let listing = parse::<_, Error, _>(&mut lines, &location, |entry, _, lines| {
            let first = lines.next_line().unwrap().map(<[u8]>::to_vec);
            let ended = first.as_deref() == Some(b"\\.");
            seen.push((entry.tag.clone(), first));
            Ok(ended)
        })
        .unwrap();
        assert_eq!(listing.server_version.as_deref(), Some("15.18"));
        assert_eq!(listing.pg_dump_version.as_deref(), Some("18.6"));
        assert_eq!(listing.entries.len(), 3);
        let dump_ids: Vec<i32> = listing.entries.iter().map(|entry| entry.dump_id).collect();
        assert_eq!(dump_ids, [1, 2, 3], "each entry has its own dump ID");
        let table = &listing.entries[0];
        assert_eq!((table.desc.as_str(), table.tag.as_str()), ("TABLE", "t"));
        assert_eq!(table.namespace.as_deref(), Some("public"));
        assert_eq!(
            table.defn.as_deref(),
            Some("CREATE TABLE public.t (\n    a integer\n);\n")
        );
        let data = &listing.entries[1];
        assert_eq!(
            data.copy_stmt.as_deref(),
            Some("COPY public.t (a) FROM stdin;\n")
        );
        assert!(matches!(data.data, DataLocation::Text(_)));
        assert_eq!(
            seen,
            vec![
                ("t".to_owned(), Some(b"1".to_vec())),
                ("e".to_owned(), Some(b"\\.".to_vec()))
            ]
        );
    }
}
