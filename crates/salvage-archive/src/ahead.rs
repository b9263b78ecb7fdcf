//! Decompression one step ahead of its reader. A compressed table's data is decoded on a
//! thread of its own into a few blocks, handed over a bounded channel, so that splitting and
//! filtering its rows (the caller's thread) overlaps inflating the next ones: decompression
//! is half of the CPU a filtering pass over a gzip dump spends.
//!
//! The decoding thread stops when the reader is dropped (its next hand-over fails), and
//! at most [`DEPTH`] blocks wait for the reader, so memory stays bounded whatever the table's
//! size. A failure of the decoder — or of the check that nothing follows its stream — reaches
//! the reader as the same `io::Error` at the same place in the data; a thread that ends
//! without saying so (a panic) is an error too, never a silent end of the data.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::compress::StreamEnd;

/// Decoded bytes per hand-over.
const BLOCK: usize = 128 * 1024;
/// Blocks decoded ahead of the reader.
const DEPTH: usize = 4;

enum Message {
    Block(Vec<u8>),
    Failed(io::Error),
    /// The stream ended and nothing follows it.
    End,
}

/// The reading end: a `Read` over the blocks the decoding thread sends.
pub(crate) struct ReadAhead {
    blocks: Receiver<Message>,
    /// Spent blocks go back to the decoding thread to be filled again.
    spent: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    offset: usize,
    ended: bool,
}

impl ReadAhead {
    /// Starts decoding `input` on a new thread.
    pub(crate) fn spawn<R>(input: R) -> io::Result<Self>
    where
        R: Read + StreamEnd + Send + 'static,
    {
        let (send_block, blocks) = sync_channel(DEPTH);
        let (spent, reuse) = sync_channel(DEPTH + 2);
        std::thread::Builder::new()
            .name("salvage-decode".to_owned())
            .spawn(move || decode(input, &send_block, &reuse))
            .map_err(|error| {
                io::Error::other(format!(
                    "cannot start a thread to decompress the data: {error}"
                ))
            })?;
        Ok(Self {
            blocks,
            spent,
            current: Vec::new(),
            offset: 0,
            ended: false,
        })
    }
}

/// The decoding thread: fills blocks until the stream ends, fails, or the reader is gone.
fn decode<R: Read + StreamEnd>(
    mut input: R,
    blocks: &SyncSender<Message>,
    reuse: &Receiver<Vec<u8>>,
) {
    loop {
        let mut block = reuse.try_recv().unwrap_or_default();
        // Only the part a short block left off is zeroed again.
        block.resize(BLOCK, 0);
        let mut filled = 0;
        // `Some` once the stream ended (`Ok`) or failed: after the bytes before it.
        let mut outcome = None;
        while filled < BLOCK {
            match input.read(&mut block[filled..]) {
                Ok(0) => {
                    outcome = Some(Ok(()));
                    break;
                }
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    outcome = Some(Err(error));
                    break;
                }
            }
        }
        if filled > 0 {
            block.truncate(filled);
            if blocks.send(Message::Block(block)).is_err() {
                return;
            }
        }
        let Some(outcome) = outcome else { continue };
        let last = match outcome.and_then(|()| input.check_end()) {
            Ok(()) => Message::End,
            Err(error) => Message::Failed(error),
        };
        let _ = blocks.send(last);
        return;
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.offset < self.current.len() {
                let count = buf.len().min(self.current.len() - self.offset);
                buf[..count].copy_from_slice(&self.current[self.offset..self.offset + count]);
                self.offset += count;
                return Ok(count);
            }
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            let spent = std::mem::take(&mut self.current);
            if spent.capacity() > 0 {
                // Full only if the thread has stopped; the block is then simply dropped.
                let _ = self.spent.try_send(spent);
            }
            self.offset = 0;
            match self.blocks.recv() {
                Ok(Message::Block(block)) => self.current = block,
                Ok(Message::End) => {
                    self.ended = true;
                    return Ok(0);
                }
                Ok(Message::Failed(error)) => {
                    self.ended = true;
                    return Err(error);
                }
                Err(_) => {
                    self.ended = true;
                    return Err(io::Error::other(
                        "the thread decompressing the data stopped before its end",
                    ));
                }
            }
        }
    }
}

/// The decoding thread checked the stream's end before it said `End`.
impl StreamEnd for ReadAhead {}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use super::{BLOCK, ReadAhead};
    use crate::compress::StreamEnd;

    /// A reader handing out `data` a few bytes at a time, then failing or not at its end.
    struct Source {
        data: Vec<u8>,
        at: usize,
        fail_at_end: bool,
        trailing: bool,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                if self.fail_at_end {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "bad block"));
                }
                return Ok(0);
            }
            let count = buf.len().min(7919).min(self.data.len() - self.at);
            buf[..count].copy_from_slice(&self.data[self.at..self.at + count]);
            self.at += count;
            Ok(count)
        }
    }

    impl StreamEnd for Source {
        fn check_end(&mut self) -> io::Result<()> {
            if self.trailing {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "trailing data"));
            }
            Ok(())
        }
    }

    fn data(length: usize) -> Vec<u8> {
        (0..length).map(|index| (index * 31 % 251) as u8).collect()
    }

    fn source(length: usize, fail_at_end: bool, trailing: bool) -> Source {
        Source {
            data: data(length),
            at: 0,
            fail_at_end,
            trailing,
        }
    }

    #[test]
    fn hands_over_every_byte_in_order_across_many_blocks() {
        for length in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 9 * BLOCK + 12_345] {
            let mut ahead = ReadAhead::spawn(source(length, false, false)).unwrap();
            let mut read = Vec::new();
            ahead.read_to_end(&mut read).unwrap();
            assert_eq!(read, data(length), "length {length}");
        }
    }

    #[test]
    fn a_decoder_failure_comes_after_the_bytes_before_it() {
        let length = 3 * BLOCK + 5;
        let mut ahead = ReadAhead::spawn(source(length, true, false)).unwrap();
        let mut read = vec![0u8; length];
        ahead.read_exact(&mut read).unwrap();
        assert_eq!(read, data(length));
        let error = ahead.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(error.to_string(), "bad block");
    }

    #[test]
    fn data_after_the_stream_is_an_error_not_an_end() {
        let mut ahead = ReadAhead::spawn(source(BLOCK + 3, false, true)).unwrap();
        let error = ahead.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(error.to_string(), "trailing data");
    }

    #[test]
    fn a_reader_dropped_early_stops_the_thread() {
        // 64 MiB the thread would decode if nobody stopped it; reading one block and
        // dropping the reader must end it (the test would hang on join otherwise).
        let (done, finished) = std::sync::mpsc::channel();
        let mut ahead = ReadAhead::spawn(Tracked {
            inner: source(64 << 20, false, false),
            done,
        })
        .unwrap();
        ahead.read_exact(&mut [0u8; 10]).unwrap();
        drop(ahead);
        let read = finished.recv().unwrap();
        assert!(
            read < 16 << 20,
            "the thread read {read} bytes after the reader left"
        );
    }

    /// Says how far its source was read when the decoding thread drops it.
    struct Tracked {
        inner: Source,
        done: std::sync::mpsc::Sender<usize>,
    }

    impl Read for Tracked {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.inner.read(buf)
        }
    }

    impl StreamEnd for Tracked {}

    impl Drop for Tracked {
        fn drop(&mut self) {
            let _ = self.done.send(self.inner.at);
        }
    }
}
