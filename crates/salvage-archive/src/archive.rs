//! [`Archive`]: one pg_dump output on disk, whatever its format, opened by content. It keeps
//! the header and TOC in memory and opens each table's data on demand with its own file
//! handle, so tables can be read in any order and in parallel.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use salvage_catalog::QualifiedName;
use serde::Serialize;

use crate::binary::{BinaryReader, Counted, Position};
use crate::compress::{self, Codec, GZIP_MAGIC};
use crate::custom::{self, READ_BUFFER};
use crate::encoding::Encoding;
use crate::error::{Error, Location, Result};
use crate::header::{Compression, Header, MAGIC};
use crate::lines::LineReader;
use crate::members;
use crate::plain;
use crate::rows::{DataContext, Rows};
use crate::table::TableData;
use crate::tar::{self, Member};
use crate::toc::{self, DataLocation, ExtraField, Toc, TocEntry};

/// The four layouts pg_dump writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Custom,
    Directory,
    Tar,
    Plain,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Custom => "custom",
            Self::Directory => "directory",
            Self::Tar => "tar",
            Self::Plain => "plain",
        })
    }
}

#[derive(Debug)]
enum Layout {
    Custom {
        data_start: u64,
        /// Block offsets found by walking the data, for archives written to a pipe.
        blocks: OnceLock<std::result::Result<HashMap<i32, u64>, String>>,
    },
    Directory,
    Tar {
        members: HashMap<String, Member>,
    },
    Plain {
        gzip: bool,
    },
}

/// An opened pg_dump archive or SQL dump.
#[derive(Debug)]
pub struct Archive {
    path: Arc<Path>,
    format: Format,
    header: Option<Header>,
    server_version: Option<String>,
    pg_dump_version: Option<String>,
    encoding: Option<Encoding>,
    entries: Vec<TocEntry>,
    tables: Vec<TableData>,
    by_dump_id: HashMap<i32, usize>,
    layout: Layout,
}

/// How pg_dump starts a plain dump.
const PLAIN_DUMP_START: &[u8] = b"--\n-- PostgreSQL database dump\n";

/// Whether the first bytes of a file look like SQL text rather than binary data: UTF-8, or
/// pg_dump's plain dump in whatever encoding (a LATIN1 name may come early).
pub(crate) fn looks_like_text(prefix: &[u8]) -> bool {
    if prefix.is_empty() || prefix.contains(&0) {
        return false;
    }
    if prefix.starts_with(PLAIN_DUMP_START) {
        return true;
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => true,
        // A multi-byte character cut at the end of the prefix is fine.
        Err(error) => error.error_len().is_none(),
    }
}

fn read_prefix(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|error| Error::io("open", path, error))?;
    let mut prefix = Vec::with_capacity(512);
    file.take(512)
        .read_to_end(&mut prefix)
        .map_err(|error| Error::io("read", path, error))?;
    Ok(prefix)
}

impl Archive {
    /// Opens the archive at `path`, detecting its format from its content: a directory with
    /// `toc.dat`, a `PGDMP` file (custom, or a directory archive's `toc.dat`), a ustar file, or
    /// SQL text (plain or gzip-compressed). Reads the header and TOC; a plain dump is read
    /// through once to find its entries.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            let toc = path.join("toc.dat");
            if !toc.is_file() {
                return Err(Error::UnknownFormat {
                    path: path.to_owned(),
                    reason: "a directory without toc.dat".to_owned(),
                });
            }
            return Self::open_directory(path);
        }
        let prefix = read_prefix(path)?;
        if prefix.starts_with(MAGIC) {
            let is_toc_file = path.file_name().is_some_and(|name| name == "toc.dat");
            let format_byte = prefix.get(11).copied();
            // After PGDMP: version (3 bytes), int size, offset size, then the format byte.
            if is_toc_file && format_byte != Some(1) {
                let directory = path.parent().unwrap_or_else(|| Path::new("."));
                return Self::open_directory(directory);
            }
            return Self::open_custom(path);
        }
        if tar::is_tar_header(&prefix) {
            return Self::open_tar(path);
        }
        if prefix.starts_with(&GZIP_MAGIC) {
            return Self::open_plain(path, true);
        }
        if looks_like_text(&prefix) {
            return Self::open_plain(path, false);
        }
        Err(Error::UnknownFormat {
            path: path.to_owned(),
            reason: if prefix.is_empty() {
                "the file is empty".to_owned()
            } else {
                "no PGDMP magic, no tar header, not SQL text".to_owned()
            },
        })
    }

    fn build(
        path: Arc<Path>,
        format: Format,
        header: Option<Header>,
        toc: Toc,
        layout: Layout,
    ) -> Result<Self> {
        let Toc { entries, encoding } = toc;
        let mut tables = Vec::new();
        let mut by_dump_id = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            by_dump_id.entry(entry.dump_id).or_insert(index);
            if let Some(table) = TableData::from_entry(entry, &path)? {
                tables.push(table);
            }
        }
        Ok(Self {
            server_version: header.as_ref().and_then(|h| h.server_version.clone()),
            pg_dump_version: header.as_ref().and_then(|h| h.pg_dump_version.clone()),
            encoding,
            path,
            format,
            header,
            entries,
            tables,
            by_dump_id,
            layout,
        })
    }

    fn open_custom(path: &Path) -> Result<Self> {
        let path: Arc<Path> = Arc::from(path);
        let file = File::open(&path).map_err(|error| Error::io("open", &path, error))?;
        let mut reader = BinaryReader::new(
            BufReader::with_capacity(READ_BUFFER, file),
            path.clone(),
            Position::default(),
        );
        let header = Header::read(&mut reader)?;
        if header.format_byte != 1 {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!("a PGDMP file with format byte {}", header.format_byte),
            });
        }
        let toc = toc::read_toc(&mut reader, header.version, ExtraField::Offset)?;
        let data_start = reader.position();
        Self::build(
            path,
            Format::Custom,
            Some(header),
            toc,
            Layout::Custom {
                data_start,
                blocks: OnceLock::new(),
            },
        )
    }

    fn open_directory(directory: &Path) -> Result<Self> {
        let toc_path: Arc<Path> = Arc::from(directory.join("toc.dat"));
        let file = File::open(&toc_path).map_err(|error| Error::io("open", &toc_path, error))?;
        let mut reader = BinaryReader::new(
            BufReader::with_capacity(READ_BUFFER, file),
            toc_path.clone(),
            Position::default(),
        );
        let header = Header::read(&mut reader)?;
        let toc = toc::read_toc(&mut reader, header.version, ExtraField::FileName)?;
        Self::build(
            Arc::from(directory),
            Format::Directory,
            Some(header),
            toc,
            Layout::Directory,
        )
    }

    fn open_tar(path: &Path) -> Result<Self> {
        let path: Arc<Path> = Arc::from(path);
        let members = tar::members(&path)?;
        let toc = *members.get("toc.dat").ok_or_else(|| Error::UnknownFormat {
            path: path.to_path_buf(),
            reason: "a tar file without toc.dat".to_owned(),
        })?;
        let mut file = File::open(&path).map_err(|error| Error::io("open", &path, error))?;
        file.seek(SeekFrom::Start(toc.offset))
            .map_err(|error| Error::io("seek in", &path, error))?;
        let mut reader = BinaryReader::new(
            BufReader::with_capacity(READ_BUFFER, file).take(toc.size),
            path.clone(),
            Position::at(toc.offset),
        );
        let header = Header::read(&mut reader)?;
        let toc = toc::read_toc(&mut reader, header.version, ExtraField::FileName)?;
        Self::build(
            path,
            Format::Tar,
            Some(header),
            toc,
            Layout::Tar { members },
        )
    }

    fn open_plain(path: &Path, gzip: bool) -> Result<Self> {
        let path: Arc<Path> = Arc::from(path);
        let position = Position::default();
        let mut lines = plain_lines(&path, gzip, position.clone())?;
        let location = |offset| Location {
            file: path.to_path_buf(),
            // For a compressed dump, the offset in the compressed file is what a user can check.
            offset: if gzip { position.get() } else { offset },
            entry: None,
        };
        let listing = plain::parse::<_, Error, _>(&mut lines, &location, |_, _, _| Ok(false))?;
        let mut archive = Self::build(
            path.clone(),
            Format::Plain,
            None,
            Toc {
                entries: listing.entries,
                encoding: listing.encoding,
            },
            Layout::Plain { gzip },
        )?;
        archive.server_version = listing.server_version;
        archive.pg_dump_version = listing.pg_dump_version;
        Ok(archive)
    }

    /// The archive's path (the directory, for a directory archive).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[must_use]
    pub fn format(&self) -> Format {
        self.format
    }

    /// The binary header; `None` for plain SQL dumps, which have none.
    #[must_use]
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// How table data is compressed (a gzip-compressed plain dump says gzip).
    #[must_use]
    pub fn compression(&self) -> Compression {
        match (&self.header, &self.layout) {
            (Some(header), _) => header.compression,
            (None, Layout::Plain { gzip: true }) => Compression::Gzip { level: None },
            (None, _) => Compression::None,
        }
    }

    /// The dumped server's version (`15.18 (Debian 15.18-0+deb12u1)`), from the header or the
    /// plain dump's `-- Dumped from database version` line.
    #[must_use]
    pub fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    #[must_use]
    pub fn pg_dump_version(&self) -> Option<&str> {
        self.pg_dump_version.as_deref()
    }

    /// The encoding of the dump's text, from its ENCODING entry or a plain dump's
    /// `SET client_encoding`; `None` when the dump does not say (it is then read as UTF-8).
    /// Whatever it is, names and rows come out of this reader in UTF-8.
    #[must_use]
    pub fn encoding(&self) -> Option<Encoding> {
        self.encoding
    }

    /// Every TOC entry, in archive order.
    #[must_use]
    pub fn entries(&self) -> &[TocEntry] {
        &self.entries
    }

    #[must_use]
    pub fn entry(&self, dump_id: i32) -> Option<&TocEntry> {
        self.by_dump_id
            .get(&dump_id)
            .map(|&index| &self.entries[index])
    }

    /// The TABLE DATA entries, in archive order.
    #[must_use]
    pub fn tables(&self) -> &[TableData] {
        &self.tables
    }

    /// The data of table `name`.
    #[must_use]
    pub fn table(&self, name: &QualifiedName) -> Option<&TableData> {
        self.tables.iter().find(|table| &table.name == name)
    }

    /// Opens the rows of `table` (from [`Archive::tables`]), delivered in UTF-8. Each call
    /// opens its own file handle: call it from several threads to read tables in parallel.
    pub fn rows(&self, table: &TableData) -> Result<Rows<'static>> {
        let rows = self.rows_as_dumped(table)?;
        Ok(rows.in_utf8(self.encoding.unwrap_or(Encoding::Utf8)))
    }

    /// The rows of `table` in the dump's own encoding.
    fn rows_as_dumped(&self, table: &TableData) -> Result<Rows<'static>> {
        let entry = self
            .entry(table.dump_id)
            .ok_or_else(|| self.missing(table, "no TOC entry with this dump ID"))?;
        if table.copy_stmt.is_none() {
            return Err(Error::InsertsNotSupported {
                path: self.path.to_path_buf(),
                dump_id: table.dump_id,
                table: table.name.to_string(),
            });
        }
        match (&self.layout, &entry.data) {
            (_, DataLocation::None) => Err(self.missing(table, "the entry has no data")),
            (Layout::Custom { .. }, DataLocation::Offset(offset)) => {
                custom::rows_at(&self.path, self.header_or_err()?, entry, *offset)
            }
            (Layout::Custom { data_start, blocks }, DataLocation::Unknown) => {
                let header = self.header_or_err()?;
                let index = blocks
                    .get_or_init(|| {
                        custom::index_blocks(&self.path, header, *data_start)
                            .map_err(|error| error.to_string())
                    })
                    .as_ref()
                    .map_err(|message| {
                        Error::corrupt(self.location(*data_start), message.clone())
                    })?;
                let offset = *index
                    .get(&entry.dump_id)
                    .ok_or_else(|| self.missing(table, "no data block for it in the archive"))?;
                custom::rows_at(&self.path, header, entry, offset)
            }
            (Layout::Directory, DataLocation::File(name)) => {
                let (file, codec) = members::find_in_directory(&self.path, name)
                    .ok_or_else(|| self.missing(table, &format!("file {name} not found")))?;
                members::member_rows(&file, 0, None, codec, entry)
            }
            (Layout::Tar { members }, DataLocation::File(name)) => {
                let (member_name, member) = members::SUFFIXES
                    .iter()
                    .find_map(|(suffix, _)| {
                        let candidate = format!("{name}{suffix}");
                        members.get(&candidate).map(|member| (candidate, *member))
                    })
                    .ok_or_else(|| self.missing(table, &format!("member {name} not found")))?;
                members::member_rows(
                    &self.path,
                    member.offset,
                    Some(member.size),
                    members::codec_of(&member_name),
                    entry,
                )
            }
            (Layout::Plain { gzip }, DataLocation::Text(offset)) => {
                self.plain_rows(*gzip, *offset, entry)
            }
            _ => Err(self.missing(table, "its data location does not fit the archive format")),
        }
    }

    /// The rows of the table named `name`.
    pub fn rows_of(&self, name: &QualifiedName) -> Result<Rows<'static>> {
        let table = self.table(name).ok_or_else(|| Error::MissingData {
            path: self.path.to_path_buf(),
            dump_id: 0,
            table: name.to_string(),
            reason: "no TABLE DATA entry for this table".to_owned(),
        })?;
        self.rows(table)
    }

    fn plain_rows(&self, gzip: bool, offset: u64, entry: &TocEntry) -> Result<Rows<'static>> {
        let position = Position::default();
        let context = DataContext {
            file: self.path.to_path_buf(),
            dump_id: entry.dump_id,
            what: entry.describe(),
            position: position.clone(),
        };
        let lines = if gzip {
            let mut lines = plain_lines(&self.path, true, position)?;
            let skipped = lines.skip(offset).map_err(|error| context.error(error))?;
            if skipped != offset {
                return Err(Error::corrupt(
                    context.location(),
                    "the SQL dump is shorter than when it was opened",
                ));
            }
            lines
        } else {
            let mut file =
                File::open(&self.path).map_err(|error| Error::io("open", &self.path, error))?;
            file.seek(SeekFrom::Start(offset))
                .map_err(|error| Error::io("seek in", &self.path, error))?;
            let position = Position::at(offset);
            let input: Box<dyn Read + Send> = Box::new(Counted::new(
                BufReader::with_capacity(READ_BUFFER, file),
                position,
            ));
            LineReader::new(input)
        };
        Ok(Rows::new(Box::new(lines), context))
    }

    fn header_or_err(&self) -> Result<&Header> {
        self.header.as_ref().ok_or_else(|| Error::Unsupported {
            path: self.path.to_path_buf(),
            what: "binary data without a header".to_owned(),
        })
    }

    fn location(&self, offset: u64) -> Location {
        Location {
            file: self.path.to_path_buf(),
            offset,
            entry: None,
        }
    }

    fn missing(&self, table: &TableData, reason: &str) -> Error {
        Error::MissingData {
            path: self.path.to_path_buf(),
            dump_id: table.dump_id,
            table: table.name.to_string(),
            reason: reason.to_owned(),
        }
    }
}

/// The lines of a plain dump file, decompressed when `gzip`.
fn plain_lines(
    path: &Path,
    gzip: bool,
    position: Position,
) -> Result<LineReader<Box<dyn Read + Send>>> {
    let file = File::open(path).map_err(|error| Error::io("open", path, error))?;
    let counted = Counted::new(BufReader::with_capacity(READ_BUFFER, file), position);
    let input: Box<dyn Read + Send> = if gzip {
        Box::new(
            compress::decoder_ahead(Codec::Gzip, counted)
                .map_err(|error| Error::io("read", path, error))?,
        )
    } else {
        Box::new(counted)
    };
    Ok(LineReader::new(input))
}

#[cfg(test)]
mod tests {
    use super::looks_like_text;

    #[test]
    fn a_plain_dump_is_text_even_with_a_latin1_name_in_its_first_bytes() {
        let mut prefix =
            b"--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'LATIN1';\n\n-- Name: caf"
                .to_vec();
        prefix.push(0xe9);
        assert!(looks_like_text(&prefix));
        // Other text must be UTF-8 (a character cut at the end is fine).
        assert!(!looks_like_text(b"SELECT 'caf\xe9';\n"));
        assert!(looks_like_text(b"SELECT 'caf\xc3"));
        assert!(!looks_like_text(b"--\n-- PostgreSQL database dump\n\0"));
    }
}
