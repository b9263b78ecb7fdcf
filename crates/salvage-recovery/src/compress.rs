//! The compressions a base backup's tar files and archived WAL segments come in, known by
//! their file name's extension, and readers that undo them. `pg_basebackup` 15 writes
//! `base.tar.gz`, `.lz4` and `.zst` (`pg_wal.tar` only as `.gz`); archive commands commonly gzip
//! or zstd their segments.

use std::fmt;
use std::io::{BufReader, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Lz4,
    Zstd,
}

impl Compression {
    pub const ALL: [Self; 4] = [Self::None, Self::Gzip, Self::Lz4, Self::Zstd];

    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gzip => ".gz",
            Self::Lz4 => ".lz4",
            Self::Zstd => ".zst",
        }
    }

    /// A file name without its compression extension, and the compression.
    #[must_use]
    pub fn strip(name: &str) -> (&str, Self) {
        for compression in [Self::Gzip, Self::Lz4, Self::Zstd] {
            if let Some(stem) = name.strip_suffix(compression.extension()) {
                return (stem, compression);
            }
        }
        (name, Self::None)
    }

    /// A reader of the uncompressed bytes of `input`.
    pub fn reader<'a, R: Read + 'a>(self, input: R) -> std::io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Self::None => Box::new(input),
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(input))),
            Self::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(BufReader::new(input))),
            Self::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "uncompressed",
            Self::Gzip => "gzip",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        })
    }
}
