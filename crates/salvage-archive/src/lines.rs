//! Splits a byte stream into lines with large reads and `memchr`, lending each line from one
//! reused buffer: no allocation per row, and no more memory than the longest line needs.

use std::io::{self, Read};

use crate::compress::StreamEnd;

/// The first buffer size; it grows only for a line longer than this.
const INITIAL_CAPACITY: usize = 256 * 1024;
/// A line longer than this is refused: PostgreSQL itself caps a COPY line at 1 GiB.
pub(crate) const MAX_LINE: usize = 1 << 30;

/// Something that lends lines without their newline.
pub(crate) trait LineSource {
    /// The next line, or `None` at the end. A last line without a newline is still a line.
    fn next_line(&mut self) -> io::Result<Option<&[u8]>>;

    /// The next line of COPY data: a row, the end marker `\.`, or the end of the stream.
    /// After the end marker, a stream that holds one table's data checks that only blank
    /// lines follow, reading it to its end (so a compressed stream's checksum and a custom
    /// block's end are verified); a stream that goes on with other things stops there.
    fn next_data_line(&mut self) -> io::Result<DataLine<'_>>;
}

impl<T: LineSource + ?Sized> LineSource for Box<T> {
    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        (**self).next_line()
    }

    fn next_data_line(&mut self) -> io::Result<DataLine<'_>> {
        (**self).next_data_line()
    }
}

/// What [`LineSource::next_data_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DataLine<'a> {
    Row(&'a [u8]),
    End,
    Eof,
}

impl<T: LineSource + ?Sized> LineSource for &mut T {
    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        (**self).next_line()
    }

    fn next_data_line(&mut self) -> io::Result<DataLine<'_>> {
        (**self).next_data_line()
    }
}

/// Lines of `R`.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    inner: R,
    buffer: Vec<u8>,
    /// Start of the unread part of `buffer`.
    start: usize,
    /// End of the bytes read into `buffer`.
    end: usize,
    /// Bytes dropped from the front of `buffer` so far, plus `start`: the stream position.
    consumed: u64,
    eof: bool,
    max_line: usize,
    /// Whether the stream holds one table's data only (see [`LineSource::finish`]).
    whole_stream: bool,
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self::with_limit(inner, MAX_LINE)
    }

    pub(crate) fn with_limit(inner: R, max_line: usize) -> Self {
        Self {
            inner,
            buffer: Vec::new(),
            start: 0,
            end: 0,
            consumed: 0,
            eof: false,
            max_line,
            whole_stream: false,
        }
    }

    /// Marks the stream as one table's data and nothing else.
    pub(crate) fn whole_stream(mut self) -> Self {
        self.whole_stream = true;
        self
    }

    /// Bytes of the stream handed out so far (lines and their newlines).
    pub(crate) fn position(&self) -> u64 {
        self.consumed + self.start as u64
    }

    /// Reads more bytes into the buffer; `false` at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.consumed += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buffer.len() {
            if self.buffer.len() >= self.max_line.saturating_add(1) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line longer than {} bytes", self.max_line),
                ));
            }
            let grown = (self.buffer.len() * 2)
                .max(INITIAL_CAPACITY)
                .min(self.max_line.saturating_add(1));
            self.buffer.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buffer[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(read) => {
                    self.end += read;
                    return Ok(true);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// Consumes `count` bytes of the stream without splitting them into lines.
    pub(crate) fn skip(&mut self, mut count: u64) -> io::Result<u64> {
        let mut skipped = 0;
        while count > 0 {
            if self.start == self.end && !self.fill()? {
                break;
            }
            let take = (count.min((self.end - self.start) as u64)) as usize;
            self.start += take;
            count -= take as u64;
            skipped += take as u64;
        }
        Ok(skipped)
    }

    /// Consumes lines up to and including the first one equal to `line`, without splitting
    /// the others; must be called at the start of a line. `false` when the stream ends first.
    pub(crate) fn skip_through_line(&mut self, line: &[u8]) -> io::Result<bool> {
        let mut pattern = Vec::with_capacity(line.len() + 2);
        pattern.push(b'\n');
        pattern.extend_from_slice(line);
        pattern.push(b'\n');
        while self.end - self.start < pattern.len() - 1 {
            if !self.fill()? {
                break;
            }
        }
        if self.buffer[self.start..self.end].starts_with(&pattern[1..]) {
            self.start += pattern.len() - 1;
            return Ok(true);
        }
        self.skip_past(&pattern)
    }

    /// Finds `needle` in the rest of the stream and consumes everything up to and including
    /// it; `false` when the stream ends first. Used to step over COPY data quickly.
    pub(crate) fn skip_past(&mut self, needle: &[u8]) -> io::Result<bool> {
        let finder = memchr::memmem::Finder::new(needle);
        loop {
            if let Some(found) = finder.find(&self.buffer[self.start..self.end]) {
                self.start += found + needle.len();
                return Ok(true);
            }
            // Keep the tail that could be the start of a match.
            let keep = (needle.len() - 1).min(self.end - self.start);
            self.start = self.end - keep;
            if !self.fill()? {
                return Ok(false);
            }
        }
    }
}

impl<R: Read + StreamEnd> LineReader<R> {
    /// The next line as a range of `buffer`.
    fn next_line_range(&mut self) -> io::Result<Option<(usize, usize)>> {
        let mut searched = self.start;
        loop {
            if let Some(found) = memchr::memchr(b'\n', &self.buffer[searched..self.end]) {
                let line_start = self.start;
                let line_end = searched + found;
                self.start = line_end + 1;
                return Ok(Some((line_start, line_end)));
            }
            searched = self.end - self.start;
            if !self.fill()? {
                if self.start == self.end {
                    return Ok(None);
                }
                let line_start = self.start;
                self.start = self.end;
                return Ok(Some((line_start, self.end)));
            }
            // `fill` moved the unread bytes to the front of the buffer.
            searched += self.start;
        }
    }

    /// Reads the rest of a whole-stream source, which may hold only newlines.
    fn finish(&mut self) -> io::Result<()> {
        if !self.whole_stream {
            return Ok(());
        }
        loop {
            if self.buffer[self.start..self.end]
                .iter()
                .any(|&byte| byte != b'\n')
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "unexpected data after the end marker \\.",
                ));
            }
            self.start = self.end;
            if !self.fill()? {
                return self.inner.check_end();
            }
        }
    }
}

impl<R: Read + StreamEnd> LineSource for LineReader<R> {
    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        Ok(self
            .next_line_range()?
            .map(|(start, end)| &self.buffer[start..end]))
    }

    fn next_data_line(&mut self) -> io::Result<DataLine<'_>> {
        let Some((start, end)) = self.next_line_range()? else {
            return Ok(DataLine::Eof);
        };
        if &self.buffer[start..end] == salvage_copy::END_OF_DATA {
            self.finish()?;
            return Ok(DataLine::End);
        }
        Ok(DataLine::Row(&self.buffer[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::{LineReader, LineSource};

    fn lines(input: &[u8], limit: usize) -> Vec<Vec<u8>> {
        let mut reader = LineReader::with_limit(input, limit);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(line.to_vec());
        }
        out
    }

    #[test]
    fn splits_lines_across_refills() {
        let mut input = Vec::new();
        for index in 0..100_000 {
            input.extend_from_slice(format!("row {index}\n").as_bytes());
        }
        input.extend_from_slice(b"\nlast");
        let got = lines(&input, 1 << 20);
        assert_eq!(got.len(), 100_002);
        assert_eq!(got[99_999], b"row 99999");
        assert_eq!(got[100_000], b"");
        assert_eq!(got[100_001], b"last");
    }

    #[test]
    fn long_lines_grow_the_buffer_up_to_the_limit() {
        let long = vec![b'x'; 600_000];
        let mut input = long.clone();
        input.push(b'\n');
        assert_eq!(lines(&input, 1 << 20), vec![long]);
        let mut reader = LineReader::with_limit(&input[..], 300_000);
        assert!(reader.next_line().is_err());
    }

    #[test]
    fn skips_past_a_marker() {
        let input = b"a\nb\n\\.\nc\n";
        let mut reader = LineReader::with_limit(&input[..], 1 << 20);
        assert!(reader.skip_past(b"\n\\.\n").unwrap());
        assert_eq!(reader.next_line().unwrap(), Some(&b"c"[..]));
        assert_eq!(reader.position(), 9);
        let mut reader = LineReader::with_limit(&b"\\.\nnext\n"[..], 1 << 20);
        assert!(reader.skip_through_line(b"\\.").unwrap());
        assert_eq!(reader.next_line().unwrap(), Some(&b"next"[..]));
        let mut reader = LineReader::with_limit(&b"1\n2\n\\.\nnext\n"[..], 1 << 20);
        assert!(reader.skip_through_line(b"\\.").unwrap());
        assert_eq!(reader.next_line().unwrap(), Some(&b"next"[..]));
        let mut reader = LineReader::with_limit(&b"1\n2\n"[..], 1 << 20);
        assert!(!reader.skip_through_line(b"\\.").unwrap());
    }
}
