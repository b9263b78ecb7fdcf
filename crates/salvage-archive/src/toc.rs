//! The table of contents (`ReadToc` in `pg_backup_archiver.c`): one entry per dumped object,
//! with its SQL, its dependencies and where its data lies.

use std::io::Read;

use serde::Serialize;

use crate::binary::{BinaryReader, OffsetField};
use crate::encoding::{self, Encoding};
use crate::error::{Error, Location, Result};
use crate::header::ArchiveVersion;

/// The part of a restore an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    None,
    PreData,
    Data,
    PostData,
    /// A value this reader does not know.
    Other(i32),
}

impl Section {
    fn from_int(value: i32) -> Self {
        match value {
            1 => Self::None,
            2 => Self::PreData,
            3 => Self::Data,
            4 => Self::PostData,
            other => Self::Other(other),
        }
    }
}

/// Where an entry's data is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataLocation {
    /// The entry has no data.
    None,
    /// Custom archive: the data block starts at this byte.
    Offset(u64),
    /// Custom archive written to a pipe: the block is there, found by walking the blocks.
    Unknown,
    /// Directory or tar archive: the member file (without a compression suffix).
    File(String),
    /// Plain SQL dump: the rows start at this byte of the (decompressed) text.
    Text(u64),
}

/// One TOC entry, every field the archive stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TocEntry {
    pub dump_id: i32,
    pub had_dumper: bool,
    pub table_oid: Option<String>,
    pub oid: Option<String>,
    /// The object's name (`sites`, `sites_pkey`). pg_dump always writes it; NULL reads as "".
    pub tag: String,
    /// What the entry is: `TABLE`, `TABLE DATA`, `CONSTRAINT`, `FK CONSTRAINT`, `INDEX`...
    pub desc: String,
    pub section: Section,
    pub defn: Option<String>,
    pub drop_stmt: Option<String>,
    pub copy_stmt: Option<String>,
    pub namespace: Option<String>,
    pub tablespace: Option<String>,
    pub table_access_method: Option<String>,
    /// `r` ordinary table, `p` partitioned, ... (archives from 1.16; `None` before or when not
    /// a relation).
    pub relkind: Option<char>,
    pub owner: Option<String>,
    pub dependencies: Vec<i32>,
    pub data: DataLocation,
}

impl TocEntry {
    /// `desc schema.tag`, for messages.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(namespace) if !namespace.is_empty() => {
                format!("{} {}.{}", self.desc, namespace, self.tag)
            }
            _ => format!("{} {}", self.desc, self.tag),
        }
    }
}

/// What follows each entry's common fields: an offset (custom) or a file name (others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExtraField {
    Offset,
    FileName,
}

/// A TOC as read: its entries, with their text decoded, and the encoding of that text.
#[derive(Debug)]
pub(crate) struct Toc {
    pub(crate) entries: Vec<TocEntry>,
    /// From the ENCODING entry; `None` when there is none.
    pub(crate) encoding: Option<Encoding>,
}

/// Reads the TOC after the header. Its text is in the dump's encoding, which only the
/// ENCODING entry tells: every entry is read as bytes first, then decoded into UTF-8. An
/// encoding this reader cannot deliver as UTF-8 is refused here, before any data is read.
pub(crate) fn read_toc<R: Read>(
    reader: &mut BinaryReader<R>,
    version: ArchiveVersion,
    extra: ExtraField,
) -> Result<Toc> {
    let count_at = reader.position();
    let count = reader.int32("the TOC entry count")?;
    if count < 0 {
        return Err(reader.corrupt_at(count_at, format!("negative TOC entry count {count}")));
    }
    // The count is not trusted for an allocation: entries are read one by one.
    let mut raw = Vec::with_capacity((count as usize).min(4096));
    for index in 0..count {
        raw.push(read_entry(reader, version, extra, index)?);
    }
    reader.entry = None;
    let encoding = encoding_of(reader, &raw)?;
    let text = encoding.unwrap_or(Encoding::Utf8);
    Ok(Toc {
        entries: raw.into_iter().map(|entry| entry.decode(text)).collect(),
        encoding,
    })
}

/// The encoding the ENCODING entry names (`processEncodingEntry` in `pg_backup_archiver.c`).
fn encoding_of<R: Read>(reader: &BinaryReader<R>, raw: &[RawEntry]) -> Result<Option<Encoding>> {
    let Some(entry) = raw
        .iter()
        .find(|entry| entry.desc.as_deref() == Some(&b"ENCODING"[..]))
    else {
        return Ok(None);
    };
    let statement = Encoding::Utf8.decode_slice(entry.defn.as_deref().unwrap_or_default());
    let location = Location {
        entry: Some((entry.dump_id, "ENCODING".to_owned())),
        ..reader.location_at(entry.start)
    };
    match encoding::from_set_statement(&statement) {
        Some(Ok(encoding)) => Ok(Some(encoding)),
        Some(Err(refusal)) => Err(refusal.error(reader.path(), &statement, location)),
        None => Err(Error::corrupt(
            location,
            format!("the ENCODING entry is not a SET client_encoding: {statement:?}"),
        )),
    }
}

/// An entry with its text still in the dump's encoding.
#[derive(Debug)]
struct RawEntry {
    /// Where the entry starts in the file, for errors.
    start: u64,
    dump_id: i32,
    had_dumper: bool,
    table_oid: Option<Vec<u8>>,
    oid: Option<Vec<u8>>,
    tag: Option<Vec<u8>>,
    desc: Option<Vec<u8>>,
    section: Section,
    defn: Option<Vec<u8>>,
    drop_stmt: Option<Vec<u8>>,
    copy_stmt: Option<Vec<u8>>,
    namespace: Option<Vec<u8>>,
    tablespace: Option<Vec<u8>>,
    table_access_method: Option<Vec<u8>>,
    relkind: Option<char>,
    owner: Option<Vec<u8>>,
    dependencies: Vec<i32>,
    data: DataLocation,
}

impl RawEntry {
    fn decode(self, encoding: Encoding) -> TocEntry {
        let text = |bytes: Option<Vec<u8>>| bytes.map(|bytes| encoding.decode(bytes));
        TocEntry {
            dump_id: self.dump_id,
            had_dumper: self.had_dumper,
            table_oid: text(self.table_oid),
            oid: text(self.oid),
            tag: text(self.tag).unwrap_or_default(),
            desc: text(self.desc).unwrap_or_default(),
            section: self.section,
            defn: text(self.defn),
            drop_stmt: text(self.drop_stmt),
            copy_stmt: text(self.copy_stmt),
            namespace: text(self.namespace),
            tablespace: text(self.tablespace),
            table_access_method: text(self.table_access_method),
            relkind: self.relkind,
            owner: text(self.owner),
            dependencies: self.dependencies,
            data: self.data,
        }
    }
}

fn read_entry<R: Read>(
    reader: &mut BinaryReader<R>,
    version: ArchiveVersion,
    extra: ExtraField,
    index: i32,
) -> Result<RawEntry> {
    reader.entry = None;
    let start = reader.position();
    let dump_id = reader.int32("a TOC entry's dump ID")?;
    if dump_id <= 0 {
        return Err(reader.corrupt_at(
            start,
            format!("TOC entry #{index} has an invalid dump ID {dump_id}"),
        ));
    }
    reader.entry = Some((dump_id, format!("entry #{index}")));
    let had_dumper = reader.int("had_dumper")? != 0;
    let table_oid = reader.bytes("the table OID")?;
    let oid = reader.bytes("the OID")?;
    let tag = reader.bytes("the tag")?;
    let desc = reader.bytes("the description")?;
    // For messages only: the text is decoded once the encoding is known.
    let lossy =
        |bytes: &Option<Vec<u8>>| Encoding::Utf8.decode_slice(bytes.as_deref().unwrap_or_default());
    reader.entry = Some((dump_id, format!("{} {}", lossy(&desc), lossy(&tag))));
    let section = Section::from_int(reader.int32("the section")?);
    let defn = reader.bytes("the definition")?;
    let drop_stmt = reader.bytes("the drop statement")?;
    let copy_stmt = reader.bytes("the COPY statement")?;
    let namespace = reader.bytes("the namespace")?;
    let tablespace = reader.bytes("the tablespace")?;
    let table_access_method = if version.at_least(14) {
        reader.bytes("the table access method")?
    } else {
        None
    };
    let relkind = if version.at_least(16) {
        let value = reader.int("the relkind")?;
        u8::try_from(value)
            .ok()
            .filter(|&byte| byte != 0)
            .map(char::from)
    } else {
        None
    };
    let owner = reader.bytes("the owner")?;
    let _with_oids = reader.bytes("the WITH OIDS flag")?;
    let mut dependencies = Vec::new();
    loop {
        let at = reader.position();
        let Some(dependency) = reader.string("a dependency")? else {
            break;
        };
        let id = dependency.trim().parse::<i32>().map_err(|_| {
            reader.corrupt_at(at, format!("dependency {dependency:?} is not a dump ID"))
        })?;
        dependencies.push(id);
    }
    let data = match extra {
        ExtraField::Offset => match reader.offset("the data offset")? {
            OffsetField::Set(offset) => DataLocation::Offset(offset),
            OffsetField::NotSet => DataLocation::Unknown,
            OffsetField::NoData => DataLocation::None,
        },
        ExtraField::FileName => match reader.string("the data file name")? {
            Some(name) if !name.is_empty() => DataLocation::File(name),
            _ => DataLocation::None,
        },
    };
    Ok(RawEntry {
        start,
        dump_id,
        had_dumper,
        table_oid,
        oid,
        tag,
        desc,
        section,
        defn,
        drop_stmt,
        copy_stmt,
        namespace,
        tablespace,
        table_access_method,
        relkind,
        owner,
        dependencies,
        data,
    })
}
