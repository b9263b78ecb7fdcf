//! What `salvage inspect SRC` shows about a dump: its format, versions, compression and
//! time, each table with its row count (by streaming its data) or stored size, and the
//! foreign-key graph read from the TOC. A serializable summary; the CLI renders it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use salvage_catalog::{Catalog, QualifiedName};
use serde::Serialize;

use crate::archive::{Archive, Format};
use crate::encoding::Encoding;
use crate::error::{Error, Result};
use crate::header::{Compression, DumpTime};
use crate::scan::scan;
use crate::schema;
use crate::table::TableData;
use crate::toc::DataLocation;

/// How much work [`inspect`] does.
#[derive(Debug, Clone, Copy, Default)]
pub struct InspectOptions {
    /// Stream every table's data to count its rows (in parallel); otherwise only sizes
    /// known without reading data are given.
    pub count_rows: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    pub format: Format,
    /// `1.16.0`; `None` for plain SQL dumps.
    pub archive_version: Option<String>,
    pub compression: Compression,
    pub pg_dump_version: Option<String>,
    pub server_version: Option<String>,
    pub dump_time: Option<DumpTime>,
    pub database: Option<String>,
    /// The encoding of the dump's text; `None` when the dump does not say (read as UTF-8).
    pub encoding: Option<Encoding>,
    pub toc_entries: usize,
    pub tables: Vec<TableSummary>,
    pub foreign_keys: Vec<ForeignKeyEdge>,
    /// Why the schema (and so the FK graph) could not be read, if it could not.
    pub schema_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    pub name: QualifiedName,
    pub dump_id: i32,
    pub columns: usize,
    /// Whether the data is COPY rows (false for `--inserts` dumps, which salvage cannot read).
    pub copy: bool,
    /// Rows, when counted.
    pub rows: Option<u64>,
    /// Bytes of COPY text (rows and newlines), when counted.
    pub text_bytes: Option<u64>,
    /// Bytes the data takes in the archive (compressed), when known without reading it.
    pub stored_bytes: Option<u64>,
    /// Why the data could not be read, when counting failed for this table.
    pub error: Option<String>,
}

/// One foreign key: `from(columns)` references `to(referenced_columns)`.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignKeyEdge {
    pub name: String,
    pub from: QualifiedName,
    pub columns: Vec<String>,
    pub to: QualifiedName,
    pub referenced_columns: Vec<String>,
    pub deferrable: bool,
}

fn edges(catalog: &Catalog) -> Vec<ForeignKeyEdge> {
    catalog
        .tables
        .values()
        .flat_map(|table| {
            table.foreign_keys.iter().map(|fk| ForeignKeyEdge {
                name: fk.name.clone(),
                from: table.name.clone(),
                columns: fk.columns.clone(),
                to: fk.referenced_table.clone(),
                referenced_columns: fk.referenced_columns.clone(),
                deferrable: fk.deferrable,
            })
        })
        .collect()
}

/// Sizes of the data as stored, known from the layout: member files, tar members, or the
/// distance between a custom archive's block offsets.
fn stored_sizes(archive: &Archive) -> HashMap<i32, u64> {
    let mut sizes = HashMap::new();
    match archive.format() {
        Format::Custom => {
            let mut offsets: Vec<(u64, i32)> = archive
                .entries()
                .iter()
                .filter_map(|entry| match entry.data {
                    DataLocation::Offset(offset) => Some((offset, entry.dump_id)),
                    _ => None,
                })
                .collect();
            offsets.sort_unstable();
            let end = std::fs::metadata(archive.path()).map_or(0, |meta| meta.len());
            for (index, &(offset, dump_id)) in offsets.iter().enumerate() {
                let next = offsets.get(index + 1).map_or(end, |&(next, _)| next);
                sizes.insert(dump_id, next.saturating_sub(offset));
            }
        }
        Format::Directory => {
            for entry in archive.entries() {
                if let DataLocation::File(name) = &entry.data {
                    for suffix in ["", ".gz", ".lz4", ".zst"] {
                        if let Ok(meta) =
                            std::fs::metadata(archive.path().join(format!("{name}{suffix}")))
                        {
                            sizes.insert(entry.dump_id, meta.len());
                            break;
                        }
                    }
                }
            }
        }
        Format::Tar | Format::Plain => {}
    }
    sizes
}

fn table_summary(table: &TableData, stored: Option<u64>) -> TableSummary {
    TableSummary {
        name: table.name.clone(),
        dump_id: table.dump_id,
        columns: table.columns.len(),
        copy: table.is_copy(),
        rows: None,
        text_bytes: None,
        stored_bytes: stored,
        error: None,
    }
}

/// Counts a stream's rows and their bytes.
fn count(rows: &mut crate::Rows<'_>) -> Result<(u64, u64)> {
    let mut bytes = 0u64;
    rows.for_each::<Error, _>(|row| {
        bytes += row.len() as u64 + 1;
        Ok(())
    })?;
    Ok((rows.rows_read(), bytes))
}

/// Summarises an opened archive.
pub fn inspect(archive: &Archive, options: InspectOptions) -> Inspection {
    let sizes = stored_sizes(archive);
    let mut tables: Vec<TableSummary> = archive
        .tables()
        .iter()
        .map(|table| table_summary(table, sizes.get(&table.dump_id).copied()))
        .collect();
    if options.count_rows {
        let counted: Vec<Result<(u64, u64)>> = archive
            .tables()
            .par_iter()
            .map(|table| {
                if !table.is_copy() {
                    return Err(Error::InsertsNotSupported {
                        path: archive.path().to_owned(),
                        dump_id: table.dump_id,
                        table: table.name.to_string(),
                    });
                }
                count(&mut archive.rows(table)?)
            })
            .collect();
        for (summary, result) in tables.iter_mut().zip(counted) {
            match result {
                Ok((rows, bytes)) => {
                    summary.rows = Some(rows);
                    summary.text_bytes = Some(bytes);
                }
                Err(error) => summary.error = Some(error.to_string()),
            }
        }
    }
    let (foreign_keys, schema_error) = match schema::catalog(archive) {
        Ok(catalog) => (edges(&catalog), None),
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    let header = archive.header();
    Inspection {
        path: archive.path().to_owned(),
        format: archive.format(),
        archive_version: header.map(|header| header.version.to_string()),
        compression: archive.compression(),
        pg_dump_version: archive.pg_dump_version().map(str::to_owned),
        server_version: archive.server_version().map(str::to_owned),
        dump_time: header.map(|header| header.dump_time),
        database: header.and_then(|header| header.database.clone()),
        encoding: archive.encoding(),
        toc_entries: archive.entries().len(),
        tables,
        foreign_keys,
        schema_error,
    }
}

/// Summarises a dump read once from `input` (standard input), counting every table's rows.
pub fn inspect_stream<R: Read + Send>(name: impl AsRef<Path>, input: R) -> Result<Inspection> {
    let mut counted: HashMap<i32, (u64, u64)> = HashMap::new();
    let summary = scan::<_, Error, _>(name.as_ref(), input, |table, rows| {
        counted.insert(table.dump_id, count(rows)?);
        Ok(())
    })?;
    let tables = summary
        .tables
        .iter()
        .map(|table| {
            let mut entry = table_summary(table, None);
            if let Some(&(rows, bytes)) = counted.get(&table.dump_id) {
                entry.rows = Some(rows);
                entry.text_bytes = Some(bytes);
            }
            entry
        })
        .collect();
    let (foreign_keys, schema_error) = match schema::from_toc(
        &summary.entries,
        &summary.tables,
        summary.server_version.as_deref(),
    ) {
        Ok(catalog) => (edges(&catalog), None),
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    let header = summary.header.as_ref();
    Ok(Inspection {
        path: name.as_ref().to_owned(),
        format: summary.format,
        archive_version: header.map(|header| header.version.to_string()),
        compression: header.map_or(Compression::None, |header| header.compression),
        pg_dump_version: summary.pg_dump_version.clone(),
        server_version: summary.server_version.clone(),
        dump_time: header.map(|header| header.dump_time),
        database: header.and_then(|header| header.database.clone()),
        encoding: summary.encoding,
        toc_entries: summary.entries.len(),
        tables,
        foreign_keys,
        schema_error,
    })
}
