//! A table's COPY rows as a stream: each row's raw bytes (still COPY-escaped, without the
//! newline), lent from a reused buffer, until the `\.` line that ends the data.

use std::io;
use std::path::PathBuf;

use crate::binary::Position;
use crate::encoding::Encoding;
use crate::error::{Error, Location, Result};
use crate::lines::{DataLine, LineSource};

/// What a row stream reads, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct DataContext {
    pub(crate) file: PathBuf,
    pub(crate) dump_id: i32,
    /// `TABLE DATA public.sites`.
    pub(crate) what: String,
    /// The byte position of the underlying file, moved by the reader below the decoder.
    pub(crate) position: Position,
}

impl DataContext {
    pub(crate) fn location(&self) -> Location {
        Location {
            file: self.file.clone(),
            offset: self.position.get(),
            entry: Some((self.dump_id, self.what.clone())),
        }
    }

    /// Turns an error from the layers below (file, chunks, decoder) into the crate's error.
    pub(crate) fn error(&self, error: io::Error) -> Error {
        if error.get_ref().is_none() {
            return Error::corrupt(self.location(), format!("cannot read table data: {error}"));
        }
        let kind = error.kind();
        match error
            .into_inner()
            .map(<dyn std::error::Error + Send + Sync>::downcast::<Error>)
        {
            Some(Ok(inner)) => *inner,
            Some(Err(other)) => {
                Error::corrupt(self.location(), format!("cannot read table data: {other}"))
            }
            None => Error::corrupt(self.location(), format!("cannot read table data: {kind}")),
        }
    }
}

/// The rows of one table. Read them with [`Rows::next_row`] (a lending iterator: each row
/// borrows the reader until the next call), [`Rows::for_each`], or [`Rows::owned`] for an
/// ordinary iterator of `Vec<u8>`.
pub struct Rows<'a> {
    lines: Box<dyn LineSource + Send + 'a>,
    context: DataContext,
    done: bool,
    count: u64,
}

impl std::fmt::Debug for Rows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("context", &self.context)
            .field("done", &self.done)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<'a> Rows<'a> {
    pub(crate) fn new(lines: Box<dyn LineSource + Send + 'a>, context: DataContext) -> Self {
        Self {
            lines,
            context,
            done: false,
            count: 0,
        }
    }

    /// The same rows, delivered in UTF-8 from text in `encoding`.
    pub(crate) fn in_utf8(mut self, encoding: Encoding) -> Self {
        self.lines = encoding.utf8_lines(self.lines);
        self
    }

    /// The next row's raw COPY text without its newline, or `None` after the last one.
    pub fn next_row(&mut self) -> Result<Option<&[u8]>> {
        if self.done {
            return Ok(None);
        }
        match self.lines.next_data_line() {
            Ok(DataLine::Row(line)) => {
                self.count += 1;
                Ok(Some(line))
            }
            Ok(DataLine::End) => {
                self.done = true;
                Ok(None)
            }
            Ok(DataLine::Eof) => {
                self.done = true;
                Err(Error::corrupt(
                    self.context.location(),
                    format!(
                        "the data ended after {} rows without its end marker \\. (truncated?)",
                        self.count
                    ),
                ))
            }
            Err(error) => {
                self.done = true;
                Err(self.context.error(error))
            }
        }
    }

    /// Calls `visit` with every remaining row; stops at the first error.
    pub fn for_each<E, F>(&mut self, mut visit: F) -> Result<(), E>
    where
        E: From<Error>,
        F: FnMut(&[u8]) -> Result<(), E>,
    {
        while let Some(row) = self.next_row()? {
            visit(row)?;
        }
        Ok(())
    }

    /// Reads the remaining rows and returns how many rows the stream held in all.
    pub fn count(&mut self) -> Result<u64> {
        while self.next_row()?.is_some() {}
        Ok(self.count)
    }

    /// Rows returned so far.
    #[must_use]
    pub fn rows_read(&self) -> u64 {
        self.count
    }

    /// The dump ID of the TABLE DATA entry being read.
    #[must_use]
    pub fn dump_id(&self) -> i32 {
        self.context.dump_id
    }

    /// An iterator of owned rows (one allocation per row: for tests and small tables).
    #[must_use]
    pub fn owned(self) -> OwnedRows<'a> {
        OwnedRows { rows: self }
    }
}

/// Iterator returned by [`Rows::owned`].
#[derive(Debug)]
pub struct OwnedRows<'a> {
    rows: Rows<'a>,
}

impl Iterator for OwnedRows<'_> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rows
            .next_row()
            .map(|row| row.map(<[u8]>::to_vec))
            .transpose()
    }
}
