//! The custom format (`pg_backup_custom.c`): header, TOC, then one data block per table —
//! a type byte, the dump ID, and `{int length, bytes}` chunks ended by a zero length. Blocks
//! are found by their TOC offset when the archive was written to a file, and by walking the
//! blocks (stepping over chunks without decoding them) when it was written to a pipe.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use crate::binary::{BinaryReader, Position};
use crate::compress::{self, Codec};
use crate::error::{Error, Result};
use crate::header::{Compression, Header};
use crate::lines::LineReader;
use crate::rows::{DataContext, Rows};
use crate::toc::TocEntry;

/// Block types (`BLK_DATA`, `BLK_BLOBS`).
pub(crate) const BLOCK_DATA: u8 = 1;
pub(crate) const BLOCK_BLOBS: u8 = 3;

pub(crate) const READ_BUFFER: usize = 256 * 1024;

pub(crate) fn codec(compression: Compression) -> Codec {
    match compression {
        Compression::None => Codec::Raw,
        Compression::Gzip { .. } => Codec::Zlib,
        Compression::Lz4 => Codec::Lz4Frame,
        Compression::Zstd => Codec::Zstd,
    }
}

/// The bytes of one block's chunks, as one stream.
#[derive(Debug)]
pub(crate) struct ChunkReader<R> {
    reader: BinaryReader<R>,
    /// Bytes left in the current chunk.
    remaining: u64,
    finished: bool,
}

impl<R: Read> ChunkReader<R> {
    pub(crate) fn new(reader: BinaryReader<R>) -> Self {
        Self {
            reader,
            remaining: 0,
            finished: false,
        }
    }

    /// Reads the next chunk's length; `false` at the block's end.
    fn next_chunk(&mut self) -> Result<bool> {
        let at = self.reader.position();
        let length = self.reader.int("a data chunk length")?;
        if length == 0 {
            self.finished = true;
            return Ok(false);
        }
        self.remaining = u64::try_from(length).map_err(|_| {
            self.reader
                .corrupt_at(at, format!("negative data chunk length {length}"))
        })?;
        Ok(true)
    }

    /// Steps over the rest of the block without decoding it.
    pub(crate) fn skip_rest(&mut self) -> Result<()> {
        while !self.finished {
            if self.remaining > 0 {
                self.reader.skip(self.remaining, "a data chunk")?;
                self.remaining = 0;
            }
            self.next_chunk()?;
        }
        Ok(())
    }
}

impl<R: Read> Read for ChunkReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() && !self.finished {
            if self.remaining == 0 {
                self.next_chunk().map_err(io::Error::other)?;
                continue;
            }
            let want =
                (buf.len() - filled).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            let read = self.reader.read_some(&mut buf[filled..filled + want])?;
            if read == 0 {
                let error = self.reader.corrupt_at(
                    self.reader.position(),
                    format!(
                        "unexpected end of file inside a data chunk ({} bytes missing)",
                        self.remaining
                    ),
                );
                return Err(io::Error::other(error));
            }
            self.remaining -= read as u64;
            filled += read;
        }
        Ok(filled)
    }
}

impl<R> crate::compress::StreamEnd for ChunkReader<R> {}

/// Steps over a large-object block: `{oid, chunks}` pairs ended by oid 0.
pub(crate) fn skip_blobs<R: Read>(reader: &mut BinaryReader<R>) -> Result<()> {
    loop {
        let oid = reader.int("a large object's OID")?;
        if oid == 0 {
            return Ok(());
        }
        skip_chunks(reader)?;
    }
}

fn skip_chunks<R: Read>(reader: &mut BinaryReader<R>) -> Result<()> {
    loop {
        let at = reader.position();
        let length = reader.int("a data chunk length")?;
        match u64::try_from(length) {
            Ok(0) => return Ok(()),
            Ok(length) => reader.skip(length, "a data chunk")?,
            Err(_) => {
                return Err(reader.corrupt_at(at, format!("negative data chunk length {length}")));
            }
        }
    }
}

/// Reads a block header: its type and dump ID, or `None` at the end of the file.
pub(crate) fn block_header<R: Read>(reader: &mut BinaryReader<R>) -> Result<Option<(u8, i32)>> {
    let at = reader.position();
    let Some(kind) = reader.byte_or_eof("a data block's type")? else {
        return Ok(None);
    };
    let dump_id = reader.int32("a data block's dump ID")?;
    if kind != BLOCK_DATA && kind != BLOCK_BLOBS {
        return Err(reader.corrupt_at(at, format!("unknown data block type {kind}")));
    }
    Ok(Some((kind, dump_id)))
}

/// Opens the file for reading data, positioned at `offset`.
fn reader_at(
    path: &Arc<Path>,
    offset: u64,
    header: &Header,
) -> Result<BinaryReader<BufReader<File>>> {
    let mut file = File::open(path).map_err(|error| Error::io("open", path, error))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|error| Error::io("seek in", path, error))?;
    let mut reader = BinaryReader::new(
        BufReader::with_capacity(READ_BUFFER, file),
        path.clone(),
        Position::at(offset),
    );
    reader.int_size = usize::from(header.int_size);
    reader.offset_size = usize::from(header.offset_size);
    Ok(reader)
}

/// Walks the data blocks from `data_start` and records where each one starts, seeking over
/// the chunks' contents (only their length words are read).
pub(crate) fn index_blocks(
    path: &Arc<Path>,
    header: &Header,
    data_start: u64,
) -> Result<HashMap<i32, u64>> {
    let mut reader = reader_at(path, data_start, header)?;
    let length = std::fs::metadata(path)
        .map_err(|error| Error::io("read the size of", path, error))?
        .len();
    let mut index = HashMap::new();
    loop {
        let at = reader.position();
        let Some((kind, dump_id)) = block_header(&mut reader)? else {
            return Ok(index);
        };
        if kind == BLOCK_DATA {
            index.insert(dump_id, at);
            seek_over_chunks(&mut reader, length)?;
        } else {
            loop {
                let oid = reader.int("a large object's OID")?;
                if oid == 0 {
                    break;
                }
                seek_over_chunks(&mut reader, length)?;
            }
        }
    }
}

fn seek_over_chunks(reader: &mut BinaryReader<BufReader<File>>, length: u64) -> Result<()> {
    loop {
        let at = reader.position();
        let chunk = reader.int("a data chunk length")?;
        match u64::try_from(chunk) {
            Ok(0) => return Ok(()),
            Ok(chunk) => reader.seek_forward(chunk, length, "a data chunk")?,
            Err(_) => {
                return Err(reader.corrupt_at(at, format!("negative data chunk length {chunk}")));
            }
        }
    }
}

/// The rows of `entry`, whose block starts at `offset`.
pub(crate) fn rows_at(
    path: &Arc<Path>,
    header: &Header,
    entry: &TocEntry,
    offset: u64,
) -> Result<Rows<'static>> {
    let mut reader = reader_at(path, offset, header)?;
    reader.entry = Some((entry.dump_id, entry.describe()));
    match block_header(&mut reader)? {
        Some((BLOCK_DATA, dump_id)) if dump_id == entry.dump_id => {}
        Some((kind, dump_id)) => {
            return Err(reader.corrupt_at(
                offset,
                format!(
                    "the TOC points here for entry {}, but the block here is of type {kind} for entry {dump_id}",
                    entry.dump_id
                ),
            ));
        }
        None => {
            return Err(reader.corrupt_at(offset, "the TOC points past the end of the file"));
        }
    }
    let context = DataContext {
        file: path.to_path_buf(),
        dump_id: entry.dump_id,
        what: entry.describe(),
        position: reader.shared_position(),
    };
    let chunks = ChunkReader::new(reader);
    let decoded = compress::decoder_ahead(codec(header.compression), chunks)
        .map_err(|error| context.error(error))?;
    Ok(Rows::new(
        Box::new(LineReader::new(decoded).whole_stream()),
        context,
    ))
}
