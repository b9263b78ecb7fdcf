//! Where an archive's table data comes from — the archive itself (a file or directory, read
//! table by table, each on its own file handle) or, for standard input, a spool written in
//! the one pass over it — and how a plan table's rows are read: from every data entry that
//! loads it (all partitions of a partitioned table), with fields in the plan's column order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use salvage_archive::{Archive, Rows, TableData};
use salvage_catalog::{Catalog, QualifiedName};

use crate::{Error, Result};

/// An archive's table data.
#[derive(Debug)]
pub enum TableSource {
    Archive(Box<Archive>),
    Spool(Spool),
}

/// Table data read once from standard input and kept in lz4-compressed files, one per
/// table, so it can be read again in any order.
#[derive(Debug)]
pub struct Spool {
    _dir: tempfile::TempDir,
    tables: Vec<TableData>,
    files: HashMap<i32, PathBuf>,
}

/// What an opened archive holds.
#[derive(Debug)]
pub struct Opened {
    pub source: TableSource,
    pub catalog: Catalog,
}

impl TableSource {
    /// Opens a dump file or directory, or `-` for a custom or plain dump on standard input.
    pub fn open(path: &str) -> Result<Opened> {
        if path == "-" {
            return Spool::read_stdin();
        }
        let archive = Archive::open(path)?;
        let catalog = salvage_archive::schema::catalog(&archive)?;
        Ok(Opened {
            source: Self::Archive(Box::new(archive)),
            catalog,
        })
    }

    pub fn data_tables(&self) -> &[TableData] {
        match self {
            Self::Archive(archive) => archive.tables(),
            Self::Spool(spool) => &spool.tables,
        }
    }

    fn rows(&self, table: &TableData) -> Result<Box<dyn RowRead>> {
        match self {
            Self::Archive(archive) => Ok(Box::new(archive.rows(table)?)),
            Self::Spool(spool) => {
                let path = spool.files.get(&table.dump_id).ok_or_else(|| {
                    Error::Archive(salvage_archive::Error::MissingData {
                        path: PathBuf::from("<stdin>"),
                        dump_id: table.dump_id,
                        table: table.name.to_string(),
                        reason: "no data was read for it".to_owned(),
                    })
                })?;
                let file = File::open(path)
                    .map_err(Error::io(format!("read the spool {}", path.display())))?;
                Ok(Box::new(SpoolRows {
                    reader: BufReader::with_capacity(
                        256 * 1024,
                        lz4_flex::frame::FrameDecoder::new(BufReader::new(file)),
                    ),
                    line: Vec::new(),
                }))
            }
        }
    }

    /// The data entries that load `table` — itself, or its partitions — with, for each, how
    /// its COPY columns map onto `columns` (`None` when they already match).
    pub fn parts_of(
        &self,
        catalog: &Catalog,
        table: &QualifiedName,
        columns: &[String],
    ) -> Result<Vec<Part>> {
        let mut parts = Vec::new();
        for data in self.data_tables().iter().filter(|data| data.is_copy()) {
            let loads = data
                .copy_target
                .clone()
                .unwrap_or_else(|| data.name.clone());
            if &top_parent(catalog, &loads) != table {
                continue;
            }
            let mapping = if data.columns == columns {
                None
            } else {
                let positions = columns
                    .iter()
                    .map(|column| {
                        data.columns
                            .iter()
                            .position(|name| name == column)
                            .ok_or_else(|| Error::MissingColumn {
                                table: data.name.clone(),
                                column: column.clone(),
                                side: "the archive's data".to_owned(),
                            })
                    })
                    .collect::<Result<Vec<usize>>>()?;
                Some(positions)
            };
            parts.push(Part {
                data: data.clone(),
                mapping,
            });
        }
        Ok(parts)
    }

    /// Reads a plan table's rows: its parts one after the other.
    pub fn plan_rows(&self, parts: Vec<Part>) -> PlanRows<'_> {
        PlanRows {
            source: self,
            parts: parts.into_iter().rev().collect(),
            current: None,
            scratch: Vec::new(),
        }
    }
}

/// The partitioned table at the top of `name`'s partition tree, or `name`.
fn top_parent(catalog: &Catalog, name: &QualifiedName) -> QualifiedName {
    let mut current = name.clone();
    for _ in 0..64 {
        match catalog
            .table(&current)
            .and_then(|table| table.partition_of.clone())
        {
            Some(parent) => current = parent,
            None => break,
        }
    }
    current
}

/// One data entry of a plan table.
#[derive(Debug, Clone)]
pub struct Part {
    pub data: TableData,
    /// For each plan column, its position in this entry's rows.
    pub mapping: Option<Vec<usize>>,
}

/// A source of raw COPY rows.
trait RowRead: Send {
    fn next_row(&mut self) -> Result<Option<&[u8]>>;
}

impl RowRead for Rows<'static> {
    fn next_row(&mut self) -> Result<Option<&[u8]>> {
        Ok(Rows::next_row(self)?)
    }
}

struct SpoolRows<R> {
    reader: R,
    line: Vec<u8>,
}

impl<R: BufRead + Send> RowRead for SpoolRows<R> {
    fn next_row(&mut self) -> Result<Option<&[u8]>> {
        self.line.clear();
        let read = self
            .reader
            .read_until(b'\n', &mut self.line)
            .map_err(Error::io("read the stdin spool"))?;
        if read == 0 {
            return Ok(None);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        Ok(Some(&self.line))
    }
}

/// A part being read: its rows and how its columns map onto the plan's.
type Reading = (Box<dyn RowRead>, Option<Vec<usize>>);

/// The rows of a plan table in plan column order.
pub struct PlanRows<'s> {
    source: &'s TableSource,
    parts: Vec<Part>,
    current: Option<Reading>,
    scratch: Vec<u8>,
}

impl PlanRows<'_> {
    /// The next row (raw COPY text, without its newline), in the plan's column order.
    pub fn next_row(&mut self) -> Result<Option<&[u8]>> {
        loop {
            if self.current.is_none() {
                let Some(part) = self.parts.pop() else {
                    return Ok(None);
                };
                self.current = Some((self.source.rows(&part.data)?, part.mapping));
            }
            let Some((rows, mapping)) = self.current.as_mut() else {
                continue;
            };
            let Some(row) = rows.next_row()? else {
                self.current = None;
                continue;
            };
            self.scratch.clear();
            match mapping {
                None => self.scratch.extend_from_slice(row),
                Some(positions) => {
                    let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                    for (index, &position) in positions.iter().enumerate() {
                        if index > 0 {
                            self.scratch.push(b'\t');
                        }
                        self.scratch.extend_from_slice(
                            fields.get(position).copied().unwrap_or(salvage_copy::NULL),
                        );
                    }
                }
            }
            return Ok(Some(&self.scratch));
        }
    }
}

impl Spool {
    /// Reads a custom or plain dump from standard input once, keeping each table's rows.
    fn read_stdin() -> Result<Opened> {
        let dir = tempfile::Builder::new()
            .prefix("salvage-stdin-")
            .tempdir()
            .map_err(Error::io("create a spool directory"))?;
        let mut files = HashMap::new();
        let summary = salvage_archive::scan(
            "<stdin>",
            std::io::stdin(),
            |table: &TableData, rows: &mut Rows<'_>| {
                let path = dir.path().join(format!("{}.rows.lz4", table.dump_id));
                let file = File::create(&path)
                    .map_err(Error::io(format!("write the spool {}", path.display())))?;
                let mut writer =
                    lz4_flex::frame::FrameEncoder::new(BufWriter::with_capacity(256 * 1024, file));
                let spool_error = |error: std::io::Error| Error::Io {
                    context: format!("write the spool {}", path.display()),
                    source: error,
                };
                while let Some(row) = rows.next_row()? {
                    writer.write_all(row).map_err(spool_error)?;
                    writer.write_all(b"\n").map_err(spool_error)?;
                }
                writer
                    .finish()
                    .map_err(|error| spool_error(std::io::Error::other(error)))?
                    .flush()
                    .map_err(spool_error)?;
                files.insert(table.dump_id, path);
                Ok::<(), Error>(())
            },
        )?;
        let catalog = salvage_archive::schema::from_toc(
            &summary.entries,
            &summary.tables,
            summary.server_version.as_deref(),
        )?;
        Ok(Opened {
            source: TableSource::Spool(Spool {
                _dir: dir,
                tables: summary.tables,
                files,
            }),
            catalog,
        })
    }
}
