//! Decompression of table data. Custom archives hold one stream per table cut into chunks
//! (zlib for gzip, one LZ4 frame, one zstd frame); directory archives hold gzip files, LZ4
//! frames or zstd frames. The first bytes are checked against each method's magic, so a
//! mislabelled or damaged stream is reported as such instead of decoded into garbage.

use std::io::{self, Cursor, Read};

/// How one data stream is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Raw,
    /// A zlib stream (custom archives' gzip).
    Zlib,
    /// A gzip file (directory archives, `.sql.gz`).
    Gzip,
    Lz4Frame,
    Zstd,
}

const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl Codec {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Raw => "uncompressed",
            Self::Zlib => "zlib",
            Self::Gzip => "gzip",
            Self::Lz4Frame => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// Whether `prefix` (up to four bytes) starts a stream of this codec.
    fn accepts(self, prefix: &[u8]) -> bool {
        match self {
            Self::Raw => true,
            // CMF: method 8 (deflate), window ≤ 32K; CMF·256 + FLG divisible by 31.
            Self::Zlib => {
                prefix.len() >= 2
                    && prefix[0] & 0x0f == 8
                    && prefix[0] >> 4 <= 7
                    && (u16::from(prefix[0]) * 256 + u16::from(prefix[1])) % 31 == 0
            }
            Self::Gzip => prefix.starts_with(&GZIP_MAGIC),
            Self::Lz4Frame => prefix.starts_with(&LZ4_MAGIC),
            Self::Zstd => prefix.starts_with(&ZSTD_MAGIC),
        }
    }
}

/// Reads up to `N` bytes, fewer only at the end of the stream.
fn read_prefix<R: Read, const N: usize>(input: &mut R) -> io::Result<([u8; N], usize)> {
    let mut prefix = [0u8; N];
    let mut filled = 0;
    while filled < N {
        match input.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok((prefix, filled))
}

/// The decoded bytes of `input`, after checking its magic bytes.
pub(crate) fn decoder<'a, R: Read + Send + 'a>(
    codec: Codec,
    mut input: R,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    if codec == Codec::Raw {
        return Ok(Box::new(input));
    }
    let (prefix, length) = read_prefix::<R, 4>(&mut input)?;
    let prefix = &prefix[..length];
    if !codec.accepts(prefix) {
        let what = if length == 0 {
            "is empty".to_owned()
        } else if codec == Codec::Lz4Frame {
            format!(
                "does not start with an LZ4 frame (bytes {prefix:02x?}); raw LZ4 blocks are not supported"
            )
        } else {
            format!(
                "does not start like {} data (bytes {prefix:02x?})",
                codec.name()
            )
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the {} data stream {what}", codec.name()),
        ));
    }
    let input = Cursor::new(prefix.to_vec()).chain(input);
    Ok(match codec {
        Codec::Raw => unreachable!("handled above"),
        Codec::Zlib => Box::new(flate2::read::ZlibDecoder::new(input)),
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Codec::Lz4Frame => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
    })
}

#[cfg(test)]
mod tests {
    use super::{Codec, decoder};
    use std::io::{Read, Write};

    fn decode(codec: Codec, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder(codec, bytes)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn decodes_each_codec_and_checks_magic() {
        let text = b"1\thello\n\\.\n\n\n".repeat(100);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        zlib.write_all(&text).unwrap();
        let zlib = zlib.finish().unwrap();
        assert_eq!(decode(Codec::Zlib, &zlib).unwrap(), text);
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(&text).unwrap();
        let lz4 = lz4.finish().unwrap();
        assert_eq!(decode(Codec::Lz4Frame, &lz4).unwrap(), text);
        let zstd = zstd::encode_all(&text[..], 3).unwrap();
        assert_eq!(decode(Codec::Zstd, &zstd).unwrap(), text);
        assert!(decode(Codec::Zstd, &zlib).is_err());
        assert!(decode(Codec::Lz4Frame, b"").is_err());
        assert!(decode(Codec::Zlib, b"COPY").is_err());
    }
}
