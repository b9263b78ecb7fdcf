//! The archive's binary primitives — ints, strings and offsets as `pg_backup_archiver.c`
//! writes them — read with the position kept, so every failure names the byte it happened at.
//! Lengths come from the file and are never trusted: a string is read incrementally, so a
//! corrupt length of 2^31 costs no more memory than the bytes actually there.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Location, Result};

/// A byte position shared between a reader and whoever reports its errors.
#[derive(Debug, Clone, Default)]
pub(crate) struct Position(Arc<AtomicU64>);

impl Position {
    pub(crate) fn at(offset: u64) -> Self {
        Self(Arc::new(AtomicU64::new(offset)))
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn advance(&self, bytes: usize) {
        self.0.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// A reader that counts the bytes taken from it.
#[derive(Debug)]
pub(crate) struct Counted<R> {
    inner: R,
    position: Position,
}

impl<R> Counted<R> {
    pub(crate) fn new(inner: R, position: Position) -> Self {
        Self { inner, position }
    }

    pub(crate) fn position(&self) -> &Position {
        &self.position
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.position.advance(read);
        Ok(read)
    }
}

impl<R> crate::compress::StreamEnd for Counted<R> {}

/// Where a data offset of a custom archive stands (`WriteOffset`'s flag byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffsetField {
    /// Written to a pipe: the data is there, but where is not recorded.
    NotSet,
    Set(u64),
    /// The entry has no data.
    NoData,
}

/// Reads the archive's primitives from `R`, knowing the archive's int and offset sizes.
#[derive(Debug)]
pub(crate) struct BinaryReader<R> {
    inner: Counted<R>,
    path: Arc<Path>,
    pub(crate) int_size: usize,
    pub(crate) offset_size: usize,
    /// The TOC entry being read, for error messages.
    pub(crate) entry: Option<(i32, String)>,
}

impl<R: Read> BinaryReader<R> {
    pub(crate) fn new(inner: R, path: Arc<Path>, position: Position) -> Self {
        Self {
            inner: Counted::new(inner, position),
            path,
            int_size: 4,
            offset_size: 8,
            entry: None,
        }
    }

    pub(crate) fn position(&self) -> u64 {
        self.inner.position().get()
    }

    pub(crate) fn shared_position(&self) -> Position {
        self.inner.position().clone()
    }

    pub(crate) fn path(&self) -> &Arc<Path> {
        &self.path
    }

    pub(crate) fn location_at(&self, offset: u64) -> Location {
        Location {
            file: self.path.to_path_buf(),
            offset,
            entry: self.entry.clone(),
        }
    }

    pub(crate) fn corrupt_at(&self, offset: u64, message: impl Into<String>) -> Error {
        Error::corrupt(self.location_at(offset), message)
    }

    /// Reads exactly `buf.len()` bytes; an early end of file is a truncated archive.
    pub(crate) fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let start = self.position();
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(self.corrupt_at(
                        self.position(),
                        format!(
                            "unexpected end of file reading {what} ({} of {} bytes, started at byte {start})",
                            filled,
                            buf.len()
                        ),
                    ));
                }
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.read_error(&error, what)),
            }
        }
        Ok(())
    }

    fn read_error(&self, error: &io::Error, what: &str) -> Error {
        Error::corrupt(
            self.location_at(self.position()),
            format!("cannot read {what}: {error}"),
        )
    }

    /// Reads what is available (counted), for streaming data through a chunk reader.
    pub(crate) fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }

    pub(crate) fn byte(&mut self, what: &str) -> Result<u8> {
        let mut byte = [0u8];
        self.read_exact(&mut byte, what)?;
        Ok(byte[0])
    }

    /// Reads one byte, or `None` at a clean end of file.
    pub(crate) fn byte_or_eof(&mut self, what: &str) -> Result<Option<u8>> {
        let mut byte = [0u8];
        loop {
            match self.inner.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.read_error(&error, what)),
            }
        }
    }

    /// `ReadInt`: a sign byte, then `int_size` bytes of magnitude, least significant first.
    pub(crate) fn int(&mut self, what: &str) -> Result<i64> {
        let start = self.position();
        let mut bytes = [0u8; 9];
        let size = self.int_size;
        self.read_exact(&mut bytes[..=size], what)?;
        let mut magnitude: u64 = 0;
        for (index, &byte) in bytes[1..=size].iter().enumerate() {
            magnitude |= u64::from(byte) << (8 * index);
        }
        let magnitude = i64::try_from(magnitude)
            .map_err(|_| self.corrupt_at(start, format!("{what}: integer out of range")))?;
        Ok(if bytes[0] == 0 { magnitude } else { -magnitude })
    }

    /// An int that must fit PostgreSQL's 32-bit `int` (dump IDs, lengths, counts).
    pub(crate) fn int32(&mut self, what: &str) -> Result<i32> {
        let start = self.position();
        let value = self.int(what)?;
        i32::try_from(value)
            .map_err(|_| self.corrupt_at(start, format!("{what}: {value} does not fit an int")))
    }

    /// `ReadStr` for text that is UTF-8 whatever the dump's encoding (names of data files,
    /// numbers); bytes that are not UTF-8 are replaced.
    pub(crate) fn string(&mut self, what: &str) -> Result<Option<String>> {
        Ok(self
            .bytes(what)?
            .map(|bytes| crate::Encoding::Utf8.decode(bytes)))
    }

    /// `ReadStr`: an int length (−1 for NULL), then that many bytes.
    pub(crate) fn bytes(&mut self, what: &str) -> Result<Option<Vec<u8>>> {
        let start = self.position();
        let length = self.int(what)?;
        if length == -1 {
            return Ok(None);
        }
        let length = u64::try_from(length).map_err(|_| {
            self.corrupt_at(start, format!("{what}: negative string length {length}"))
        })?;
        let mut bytes = Vec::new();
        let read = (&mut self.inner)
            .take(length)
            .read_to_end(&mut bytes)
            .map_err(|error| self.read_error(&error, what))?;
        if read as u64 != length {
            return Err(self.corrupt_at(
                self.position(),
                format!(
                    "unexpected end of file reading {what}: a string of {length} bytes starting at byte {start} has only {read}"
                ),
            ));
        }
        Ok(Some(bytes))
    }

    /// `ReadOffset`: a flag byte (1 not set, 2 set, 3 no data), then `offset_size` bytes.
    pub(crate) fn offset(&mut self, what: &str) -> Result<OffsetField> {
        let start = self.position();
        let flag = self.byte(what)?;
        let mut bytes = [0u8; 16];
        let size = self.offset_size;
        self.read_exact(&mut bytes[..size], what)?;
        let mut value: u64 = 0;
        for (index, &byte) in bytes[..size].iter().enumerate() {
            if index >= 8 {
                if byte != 0 {
                    return Err(self.corrupt_at(start, format!("{what}: offset too large")));
                }
            } else {
                value |= u64::from(byte) << (8 * index);
            }
        }
        match flag {
            1 => Ok(OffsetField::NotSet),
            2 => Ok(OffsetField::Set(value)),
            3 => Ok(OffsetField::NoData),
            other => Err(self.corrupt_at(start, format!("{what}: unexpected offset flag {other}"))),
        }
    }

    /// Skips `count` bytes by reading them (for inputs that cannot seek).
    pub(crate) fn skip(&mut self, count: u64, what: &str) -> Result<()> {
        let start = self.position();
        let skipped = io::copy(&mut (&mut self.inner).take(count), &mut io::sink())
            .map_err(|error| self.read_error(&error, what))?;
        if skipped != count {
            return Err(self.corrupt_at(
                self.position(),
                format!("unexpected end of file skipping {what} ({count} bytes from byte {start})"),
            ));
        }
        Ok(())
    }
}

impl BinaryReader<std::io::BufReader<std::fs::File>> {
    /// Skips `count` bytes of a file of `length` bytes by seeking: nothing is read, and the
    /// buffer is kept when the target is inside it.
    pub(crate) fn seek_forward(&mut self, count: u64, length: u64, what: &str) -> Result<()> {
        let start = self.position();
        if count > length.saturating_sub(start) {
            return Err(self.corrupt_at(
                length,
                format!("unexpected end of file skipping {what} ({count} bytes from byte {start})"),
            ));
        }
        let distance = i64::try_from(count)
            .map_err(|_| self.corrupt_at(start, format!("{what}: length {count} too large")))?;
        self.inner
            .inner
            .seek_relative(distance)
            .map_err(|error| self.read_error(&error, what))?;
        self.inner
            .position
            .advance(usize::try_from(count).unwrap_or(usize::MAX));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{BinaryReader, OffsetField, Position};
    use std::path::Path;
    use std::sync::Arc;

    fn reader(bytes: &[u8]) -> BinaryReader<&[u8]> {
        BinaryReader::new(bytes, Arc::from(Path::new("t.dump")), Position::default())
    }

    #[test]
    fn reads_ints_strings_and_offsets() {
        let bytes = [
            0, 5, 0, 0, 0, // 5
            1, 1, 0, 0, 0, // -1
            0, 2, 0, 0, 0, b'h', b'i', // "hi"
            1, 1, 0, 0, 0, // NULL string
            2, 9, 0, 0, 0, 0, 0, 0, 0, // offset 9
        ];
        let mut reader = reader(&bytes);
        assert_eq!(reader.int("a").unwrap(), 5);
        assert_eq!(reader.int("b").unwrap(), -1);
        assert_eq!(reader.string("c").unwrap().as_deref(), Some("hi"));
        assert_eq!(reader.string("d").unwrap(), None);
        assert_eq!(reader.offset("e").unwrap(), OffsetField::Set(9));
    }

    #[test]
    fn a_huge_string_length_is_an_error_not_an_allocation() {
        let bytes = [0, 0xff, 0xff, 0xff, 0x7f, b'x'];
        let error = reader(&bytes).string("tag").unwrap_err().to_string();
        assert!(error.contains("t.dump at byte 6"), "{error}");
        assert!(error.contains("2147483647 bytes"), "{error}");
    }
}
