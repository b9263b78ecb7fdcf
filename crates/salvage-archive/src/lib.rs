//! A streaming reader of pg_dump output, written from the archive format
//! (`src/bin/pg_dump/pg_backup_*.c`), so salvage can restore from a dump without pg_restore
//! and without loading a whole table in memory.
//!
//! # Formats
//! Custom (`-Fc`, written to a file or a pipe), directory (`-Fd`), tar (`-Ft`) and plain SQL
//! (`-Fp`, also gzip-compressed), archive versions 1.12 to 1.16 (pg_dump 9.6 to 18), with
//! gzip, lz4 and zstd compression. `--inserts` dumps are listed but their data is refused with
//! [`Error::InsertsNotSupported`]: salvage streams COPY rows.
//!
//! # Use
//! - [`Archive::open`] a file or directory (the format is detected from the content), then
//!   [`Archive::entries`] (the TOC), [`Archive::tables`] (TABLE DATA entries with their COPY
//!   column lists) and [`Archive::rows`] for one table's rows. Each `rows` call opens its own
//!   file handle, so tables can be read in parallel (rayon); opening one table never reads
//!   another table's data.
//! - [`scan`] reads an input that cannot seek (standard input) once, handing each table's
//!   rows to a callback in file order (custom, tar and plain dumps).
//! - [`Rows::next_row`] lends each row's raw COPY text (escaped, without its newline) from a
//!   reused buffer: no allocation per row. Decode fields with `salvage_copy`.
//! - [`schema::catalog`] builds the dumped database's [`salvage_catalog::Catalog`] from the
//!   TOC's SQL ([`schema::from_toc`] does it from a [`ScanSummary`]); [`inspect::inspect`]
//!   and [`inspect::inspect_stream`] summarise a dump for `salvage inspect`.
//!
//! A path of `-` is not special here: a caller reading standard input passes
//! `std::io::stdin()` to [`scan`].
//!
//! # Encoding
//! Everything this crate hands out is UTF-8. The dump's encoding comes from its ENCODING
//! entry (or a plain dump's `SET client_encoding`; [`Archive::encoding`]): UTF8 and
//! `SQL_ASCII` text is passed through as it is (`SQL_ASCII` bytes that are not UTF-8 are then
//! refused by the UTF-8 target), LATIN1 is transcoded — the TOC's SQL when it is read, each
//! row as it streams — and any other encoding is refused when the dump is opened, with
//! [`Error::UnsupportedEncoding`].
//!
//! # Errors
//! A damaged or truncated archive gives [`Error::Corrupt`] with the file, the byte offset and
//! the TOC entry; lengths read from the file are never trusted for allocations.
//!
//! ```no_run
//! # fn main() -> salvage_archive::Result<()> {
//! let archive = salvage_archive::Archive::open("nightly.dump")?;
//! for table in archive.tables().iter().filter(|table| table.is_copy()) {
//!     let mut rows = archive.rows(table)?;
//!     while let Some(row) = rows.next_row()? {
//!         let _fields = salvage_copy::fields(row);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod ahead;
mod archive;
mod binary;
mod compress;
mod custom;
mod encoding;
mod error;
mod header;
pub mod inspect;
mod lines;
mod members;
mod names;
mod plain;
mod rows;
mod scan;
pub mod schema;
mod table;
mod tar;
mod toc;

pub use archive::{Archive, Format};
pub use encoding::Encoding;
pub use error::{Error, Location, Result};
pub use header::{ArchiveVersion, Compression, DumpTime, Header};
pub use rows::{OwnedRows, Rows};
pub use scan::{ScanSummary, scan};
pub use table::TableData;
pub use toc::{DataLocation, Section, TocEntry};
