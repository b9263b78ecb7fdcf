//! Decompression of table data. Custom archives hold one stream per table cut into chunks
//! (zlib for gzip, one LZ4 frame, one zstd frame); directory archives hold gzip files, LZ4
//! frames or zstd frames. The first bytes are checked against each method's magic, so a
//! mislabelled or damaged stream is reported as such instead of decoded into garbage.

use std::io::{self, BufReader, Chain, Cursor, Read};

use crate::ahead::ReadAhead;

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

/// A stream whose end can be checked: after the data, nothing may follow.
pub(crate) trait StreamEnd {
    /// Fails when bytes follow the end of the data (for decoders: the compressed stream).
    fn check_end(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<R: StreamEnd + ?Sized> StreamEnd for &mut R {
    fn check_end(&mut self) -> io::Result<()> {
        (**self).check_end()
    }
}

impl StreamEnd for Box<dyn Read + Send + '_> {}
impl StreamEnd for &[u8] {}
impl<R> StreamEnd for io::Take<R> {}

type Prefixed<R> = Chain<Cursor<Vec<u8>>, R>;

/// The decoded bytes of a stream.
pub(crate) enum Decoded<R: Read> {
    Raw(Prefixed<R>),
    Zlib(flate2::bufread::ZlibDecoder<BufReader<Prefixed<R>>>),
    Gzip(flate2::bufread::MultiGzDecoder<BufReader<Prefixed<R>>>),
    Lz4(Box<lz4_flex::frame::FrameDecoder<Prefixed<R>>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<Prefixed<R>>>),
}

impl<R: Read> std::fmt::Debug for Decoded<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Raw(_) => "Decoded::Raw",
            Self::Zlib(_) => "Decoded::Zlib",
            Self::Gzip(_) => "Decoded::Gzip",
            Self::Lz4(_) => "Decoded::Lz4",
            Self::Zstd(_) => "Decoded::Zstd",
        })
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Raw(input) => input.read(buf),
            Self::Zlib(decoder) => decoder.read(buf),
            Self::Gzip(decoder) => decoder.read(buf),
            Self::Lz4(decoder) => decoder.read(buf),
            Self::Zstd(decoder) => decoder.read(buf),
        }
    }
}

fn trailing_data() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "unexpected data after the end of the compressed stream",
    )
}

/// Checks that a decoder's buffered input holds nothing past its stream.
fn buffered_input<R: Read>(buffered: &mut BufReader<Prefixed<R>>) -> io::Result<&mut R> {
    if !buffered.buffer().is_empty() {
        return Err(trailing_data());
    }
    let (prefix, input) = buffered.get_mut().get_mut();
    if prefix.position() < prefix.get_ref().len() as u64 {
        return Err(trailing_data());
    }
    Ok(input)
}

impl<R: Read + StreamEnd> StreamEnd for Decoded<R> {
    fn check_end(&mut self) -> io::Result<()> {
        let input = match self {
            Self::Raw(input) => input.get_mut().1,
            Self::Zlib(decoder) => buffered_input(decoder.get_mut())?,
            Self::Gzip(decoder) => buffered_input(decoder.get_mut())?,
            Self::Zstd(decoder) => buffered_input(decoder.get_mut())?,
            Self::Lz4(decoder) => decoder.get_mut().get_mut().1,
        };
        let mut probe = [0u8; 16];
        loop {
            match input.read(&mut probe) {
                Ok(0) => return input.check_end(),
                Ok(_) => return Err(trailing_data()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// The decoded bytes of `input`, after checking its magic bytes.
pub(crate) fn decoder<R: Read>(codec: Codec, mut input: R) -> io::Result<Decoded<R>> {
    if codec == Codec::Raw {
        return Ok(Decoded::Raw(Cursor::new(Vec::new()).chain(input)));
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
    let buffered = |input| BufReader::with_capacity(DECODER_BUFFER, input);
    Ok(match codec {
        Codec::Raw => Decoded::Raw(input),
        Codec::Zlib => Decoded::Zlib(flate2::bufread::ZlibDecoder::new(buffered(input))),
        Codec::Gzip => Decoded::Gzip(flate2::bufread::MultiGzDecoder::new(buffered(input))),
        Codec::Lz4Frame => Decoded::Lz4(Box::new(lz4_flex::frame::FrameDecoder::new(input))),
        Codec::Zstd => Decoded::Zstd(zstd::stream::read::Decoder::with_buffer(buffered(input))?),
    })
}

/// A decoded stream: decoded on a thread of its own when it is compressed
/// ([`crate::ahead`]), read in place when it is not (there is nothing to overlap).
pub(crate) enum Stream<R: Read> {
    Inline(Box<Decoded<R>>),
    Ahead(ReadAhead),
}

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Inline(decoded) => decoded.read(buf),
            Self::Ahead(ahead) => ahead.read(buf),
        }
    }
}

impl<R: Read + StreamEnd> StreamEnd for Stream<R> {
    fn check_end(&mut self) -> io::Result<()> {
        match self {
            Self::Inline(decoded) => decoded.check_end(),
            Self::Ahead(ahead) => ahead.check_end(),
        }
    }
}

/// [`decoder`], decoding ahead of the reader on its own thread unless `codec` is `Raw`.
pub(crate) fn decoder_ahead<R>(codec: Codec, input: R) -> io::Result<Stream<R>>
where
    R: Read + StreamEnd + Send + 'static,
{
    let decoded = decoder(codec, input)?;
    if codec == Codec::Raw {
        return Ok(Stream::Inline(Box::new(decoded)));
    }
    Ok(Stream::Ahead(ReadAhead::spawn(decoded)?))
}

/// The compressed bytes read at once by a decoder.
const DECODER_BUFFER: usize = 64 * 1024;

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
