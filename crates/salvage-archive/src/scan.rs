//! One pass over an archive that cannot seek (standard input, a pipe from a download): the
//! header and TOC, then each table's rows in file order. Custom archives (written to a file
//! or a pipe), tar archives and plain dumps (also gzip-compressed) can be read this way;
//! a directory archive is several files and is always opened with [`crate::Archive`].

use std::collections::HashMap;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::archive::{Format, looks_like_text};
use crate::binary::{BinaryReader, Counted, Position};
use crate::compress::{self, Codec, GZIP_MAGIC, StreamEnd};
use crate::custom::{self, BLOCK_DATA, ChunkReader, READ_BUFFER};
use crate::encoding::Encoding;
use crate::error::{Error, Location, Result};
use crate::header::{Header, MAGIC};
use crate::lines::LineReader;
use crate::members;
use crate::plain;
use crate::rows::{DataContext, Rows};
use crate::table::TableData;
use crate::tar;
use crate::toc::{self, ExtraField, TocEntry};

/// What a scan found, besides the rows it handed out.
#[derive(Debug, Clone, Serialize)]
pub struct ScanSummary {
    pub format: Format,
    pub header: Option<Header>,
    pub server_version: Option<String>,
    pub pg_dump_version: Option<String>,
    /// The encoding of the dump's text (see [`crate::Archive::encoding`]); the rows handed
    /// out and the entries are in UTF-8.
    pub encoding: Option<Encoding>,
    pub entries: Vec<TocEntry>,
    pub tables: Vec<TableData>,
}

/// Reads `input` once, calling `visit` with each table whose data is COPY rows (in UTF-8), in
/// file order. A dump in an encoding this reader cannot deliver as UTF-8 is refused with
/// [`Error::UnsupportedEncoding`] before the first table is visited. `visit` may read all, some or none of the rows; the rest are stepped over. A table
/// dumped as INSERT statements stops the scan with [`Error::InsertsNotSupported`].
/// `name` is used in error messages (`<stdin>`, a URL, a file name).
pub fn scan<R, E, F>(name: impl AsRef<Path>, input: R, visit: F) -> Result<ScanSummary, E>
where
    R: Read + Send,
    E: From<Error>,
    F: FnMut(&TableData, &mut Rows<'_>) -> Result<(), E>,
{
    let path: Arc<Path> = Arc::from(name.as_ref());
    let position = Position::default();
    // The first bytes decide the format; they are read, then put back in front.
    let mut raw = input;
    let mut prefix = Vec::with_capacity(512);
    (&mut raw)
        .take(512)
        .read_to_end(&mut prefix)
        .map_err(|error| Error::io("read", &path, error))?;
    let input = Counted::new(
        BufReader::with_capacity(READ_BUFFER, Cursor::new(prefix.clone()).chain(raw)),
        position.clone(),
    );
    if prefix.starts_with(MAGIC) {
        return scan_custom(&path, input, &position, visit);
    }
    if tar::is_tar_header(&prefix) {
        return scan_tar(&path, input, &position, visit);
    }
    if prefix.starts_with(&GZIP_MAGIC) {
        let decoded = compress::decoder(Codec::Gzip, input)
            .map_err(|error| Error::io("read", &path, error))?;
        return scan_plain(&path, LineReader::new(decoded), &position, true, visit);
    }
    if looks_like_text(&prefix) {
        return scan_plain(&path, LineReader::new(input), &position, false, visit);
    }
    Err(Error::UnknownFormat {
        path: path.to_path_buf(),
        reason: "no PGDMP magic, no tar header, not SQL text".to_owned(),
    }
    .into())
}

fn tables_of(entries: &[TocEntry], path: &Path) -> Result<Vec<TableData>> {
    let mut tables = Vec::new();
    for entry in entries {
        if let Some(table) = TableData::from_entry(entry, path)? {
            tables.push(table);
        }
    }
    Ok(tables)
}

fn inserts_error(path: &Path, table: &TableData) -> Error {
    Error::InsertsNotSupported {
        path: path.to_path_buf(),
        dump_id: table.dump_id,
        table: table.name.to_string(),
    }
}

fn scan_custom<R, E, F>(
    path: &Arc<Path>,
    mut input: R,
    position: &Position,
    mut visit: F,
) -> Result<ScanSummary, E>
where
    R: Read + Send,
    E: From<Error>,
    F: FnMut(&TableData, &mut Rows<'_>) -> Result<(), E>,
{
    // The counting happens in `input` itself; this reader shares its position.
    let mut reader = BinaryReader::new(&mut input, path.clone(), Position::default());
    let header = Header::read(&mut reader)?;
    if header.format_byte != 1 {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: format!("a PGDMP stream with format byte {}", header.format_byte),
        }
        .into());
    }
    let toc::Toc { entries, encoding } =
        toc::read_toc(&mut reader, header.version, ExtraField::Offset)?;
    let text_encoding = encoding.unwrap_or(Encoding::Utf8);
    drop(reader);
    let tables = tables_of(&entries, path)?;
    let by_dump_id: HashMap<i32, usize> = tables
        .iter()
        .enumerate()
        .map(|(index, table)| (table.dump_id, index))
        .collect();
    let describe: HashMap<i32, String> = entries
        .iter()
        .map(|entry| (entry.dump_id, entry.describe()))
        .collect();
    loop {
        let mut reader = block_reader(path, &mut input, &header, position);
        let Some((kind, dump_id)) = custom::block_header(&mut reader)? else {
            break;
        };
        if kind != BLOCK_DATA {
            custom::skip_blobs(&mut reader)?;
            continue;
        }
        reader.entry = Some((dump_id, describe.get(&dump_id).cloned().unwrap_or_default()));
        let mut chunks = ChunkReader::new(reader);
        if let Some(table) = by_dump_id.get(&dump_id).map(|&index| &tables[index]) {
            if !table.is_copy() {
                return Err(inserts_error(path, table).into());
            }
            let context = DataContext {
                file: path.to_path_buf(),
                dump_id,
                what: describe.get(&dump_id).cloned().unwrap_or_default(),
                position: position.clone(),
            };
            let decoded = compress::decoder(custom::codec(header.compression), &mut chunks)
                .map_err(|error| context.error(error))?;
            let mut rows = Rows::new(Box::new(LineReader::new(decoded).whole_stream()), context)
                .in_utf8(text_encoding);
            visit(table, &mut rows)?;
        }
        chunks.skip_rest()?;
    }
    Ok(ScanSummary {
        format: Format::Custom,
        server_version: header.server_version.clone(),
        pg_dump_version: header.pg_dump_version.clone(),
        encoding,
        header: Some(header),
        entries,
        tables,
    })
}

/// A binary reader over the shared input for one block (the input counts positions).
fn block_reader<'a, R: Read>(
    path: &Arc<Path>,
    input: &'a mut R,
    header: &Header,
    position: &Position,
) -> BinaryReader<&'a mut R> {
    // `input` already advances `position`; this reader counts into a throwaway one and
    // reports offsets from the shared position instead.
    let mut reader = BinaryReader::new(input, path.clone(), Position::at(position.get()));
    reader.int_size = usize::from(header.int_size);
    reader.offset_size = usize::from(header.offset_size);
    reader
}

fn scan_tar<R, E, F>(
    path: &Arc<Path>,
    mut input: R,
    position: &Position,
    mut visit: F,
) -> Result<ScanSummary, E>
where
    R: Read + Send,
    E: From<Error>,
    F: FnMut(&TableData, &mut Rows<'_>) -> Result<(), E>,
{
    let mut toc: Option<(Header, toc::Toc, Vec<TableData>)> = None;
    loop {
        let offset = position.get();
        let mut block = [0u8; 512];
        read_block(path, &mut input, &mut block, offset)?;
        let Some((name, size)) = tar::parse_header(path, offset, &block)? else {
            break;
        };
        let padded = size.div_ceil(512) * 512;
        let mut member = (&mut input).take(size);
        if name == "toc.dat" {
            let mut reader = BinaryReader::new(&mut member, path.clone(), Position::default());
            let header = Header::read(&mut reader)?;
            let read = toc::read_toc(&mut reader, header.version, ExtraField::FileName)?;
            let tables = tables_of(&read.entries, path)?;
            toc = Some((header, read, tables));
        } else if let Some((_, read, tables)) = &toc {
            let entries = &read.entries;
            let base = members::SUFFIXES
                .iter()
                .rev()
                .find_map(|(suffix, _)| {
                    (!suffix.is_empty())
                        .then(|| name.strip_suffix(suffix))
                        .flatten()
                })
                .unwrap_or(&name);
            let entry = entries
                .iter()
                .find(|entry| matches!(&entry.data, toc::DataLocation::File(file) if file == base));
            let table = entry.and_then(|entry| tables.iter().find(|t| t.dump_id == entry.dump_id));
            if let (Some(entry), Some(table)) = (entry, table) {
                if !table.is_copy() {
                    return Err(inserts_error(path, table).into());
                }
                let context = DataContext {
                    file: path.to_path_buf(),
                    dump_id: entry.dump_id,
                    what: entry.describe(),
                    position: position.clone(),
                };
                let decoded = compress::decoder(members::codec_of(&name), &mut member)
                    .map_err(|error| context.error(error))?;
                let mut rows =
                    Rows::new(Box::new(LineReader::new(decoded).whole_stream()), context)
                        .in_utf8(read.encoding.unwrap_or(Encoding::Utf8));
                visit(table, &mut rows)?;
            }
        }
        let rest = padded - (size - member.limit());
        skip(path, &mut input, rest, position)?;
    }
    let Some((header, toc::Toc { entries, encoding }, tables)) = toc else {
        return Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            reason: "a tar stream without toc.dat".to_owned(),
        }
        .into());
    };
    Ok(ScanSummary {
        format: Format::Tar,
        server_version: header.server_version.clone(),
        pg_dump_version: header.pg_dump_version.clone(),
        encoding,
        header: Some(header),
        entries,
        tables,
    })
}

fn read_block<R: Read>(
    path: &Path,
    input: &mut R,
    block: &mut [u8; 512],
    offset: u64,
) -> Result<()> {
    input.read_exact(block).map_err(|error| {
        Error::corrupt(
            Location {
                file: path.to_owned(),
                offset,
                entry: None,
            },
            format!("cannot read a tar header: {error}"),
        )
    })
}

fn skip<R: Read>(path: &Path, input: &mut R, count: u64, position: &Position) -> Result<()> {
    let start = position.get();
    let skipped = std::io::copy(&mut input.take(count), &mut std::io::sink())
        .map_err(|error| Error::io("read", path, error))?;
    if skipped != count {
        return Err(Error::corrupt(
            Location {
                file: path.to_owned(),
                offset: position.get(),
                entry: None,
            },
            format!("unexpected end of file: a tar member from byte {start} is cut short"),
        ));
    }
    Ok(())
}

fn scan_plain<R, E, F>(
    path: &Arc<Path>,
    mut lines: LineReader<R>,
    position: &Position,
    gzip: bool,
    mut visit: F,
) -> Result<ScanSummary, E>
where
    R: Read + Send + StreamEnd,
    E: From<Error>,
    F: FnMut(&TableData, &mut Rows<'_>) -> Result<(), E>,
{
    let location = |offset| Location {
        file: path.to_path_buf(),
        offset: if gzip { position.get() } else { offset },
        entry: None,
    };
    let listing = plain::parse::<_, E, _>(&mut lines, &location, |entry, encoding, lines| {
        let Some(table) = TableData::from_entry(entry, path)? else {
            return Ok(false);
        };
        let context = DataContext {
            file: path.to_path_buf(),
            dump_id: entry.dump_id,
            what: entry.describe(),
            position: position.clone(),
        };
        let mut rows = Rows::new(Box::new(lines), context).in_utf8(encoding);
        visit(&table, &mut rows)?;
        // Step over what the visitor left, through the end marker.
        while rows.next_row()?.is_some() {}
        Ok(true)
    })?;
    let tables = tables_of(&listing.entries, path)?;
    if let Some(table) = tables.iter().find(|table| !table.is_copy()) {
        return Err(inserts_error(path, table).into());
    }
    Ok(ScanSummary {
        format: Format::Plain,
        header: None,
        server_version: listing.server_version,
        pg_dump_version: listing.pg_dump_version,
        encoding: listing.encoding,
        entries: listing.entries,
        tables,
    })
}
