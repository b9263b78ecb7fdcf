//! The table of contents (`ReadToc` in `pg_backup_archiver.c`): one entry per dumped object,
//! with its SQL, its dependencies and where its data lies.

use std::io::Read;

use serde::Serialize;

use crate::binary::{BinaryReader, OffsetField};
use crate::error::Result;
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

/// Reads the TOC after the header.
pub(crate) fn read_toc<R: Read>(
    reader: &mut BinaryReader<R>,
    version: ArchiveVersion,
    extra: ExtraField,
) -> Result<Vec<TocEntry>> {
    let count_at = reader.position();
    let count = reader.int32("the TOC entry count")?;
    if count < 0 {
        return Err(reader.corrupt_at(count_at, format!("negative TOC entry count {count}")));
    }
    // The count is not trusted for an allocation: entries are read one by one.
    let mut entries = Vec::with_capacity((count as usize).min(4096));
    for index in 0..count {
        entries.push(read_entry(reader, version, extra, index)?);
    }
    reader.entry = None;
    Ok(entries)
}

fn read_entry<R: Read>(
    reader: &mut BinaryReader<R>,
    version: ArchiveVersion,
    extra: ExtraField,
    index: i32,
) -> Result<TocEntry> {
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
    let table_oid = reader.string("the table OID")?;
    let oid = reader.string("the OID")?;
    let tag = reader.string("the tag")?.unwrap_or_default();
    let desc = reader.string("the description")?.unwrap_or_default();
    reader.entry = Some((dump_id, format!("{desc} {tag}")));
    let section = Section::from_int(reader.int32("the section")?);
    let defn = reader.string("the definition")?;
    let drop_stmt = reader.string("the drop statement")?;
    let copy_stmt = reader.string("the COPY statement")?;
    let namespace = reader.string("the namespace")?;
    let tablespace = reader.string("the tablespace")?;
    let table_access_method = if version.at_least(14) {
        reader.string("the table access method")?
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
    let owner = reader.string("the owner")?;
    let _with_oids = reader.string("the WITH OIDS flag")?;
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
    Ok(TocEntry {
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
