//! Data files of directory and tar archives: `<dumpId>.dat`, possibly compressed
//! (`.dat.gz`, `.dat.lz4`, `.dat.zst`). Each table's file is opened on its own, so tables
//! can be read in parallel.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::binary::{Counted, Position};
use crate::compress::{self, Codec};
use crate::custom::READ_BUFFER;
use crate::error::{Error, Result};
use crate::lines::LineReader;
use crate::rows::{DataContext, Rows};
use crate::toc::TocEntry;

/// Suffixes tried after the TOC's file name, as `InitDiscoverCompressFileHandle` does.
pub(crate) const SUFFIXES: [(&str, Codec); 4] = [
    ("", Codec::Raw),
    (".gz", Codec::Gzip),
    (".lz4", Codec::Lz4Frame),
    (".zst", Codec::Zstd),
];

/// The codec of a member named `name`, judged by its suffix.
pub(crate) fn codec_of(name: &str) -> Codec {
    SUFFIXES
        .iter()
        .rev()
        .find(|(suffix, _)| !suffix.is_empty() && name.ends_with(suffix))
        .map_or(Codec::Raw, |&(_, codec)| codec)
}

/// The rows of a member file: `length` bytes from `offset` of the file at `path` (the whole
/// file for a directory archive).
pub(crate) fn member_rows(
    path: &Path,
    offset: u64,
    length: Option<u64>,
    codec: Codec,
    entry: &TocEntry,
) -> Result<Rows<'static>> {
    let mut file = File::open(path).map_err(|error| Error::io("open", path, error))?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .map_err(|error| Error::io("seek in", path, error))?;
    }
    let position = Position::at(offset);
    let context = DataContext {
        file: path.to_path_buf(),
        dump_id: entry.dump_id,
        what: entry.describe(),
        position: position.clone(),
    };
    let buffered = BufReader::with_capacity(READ_BUFFER, file);
    let input: Box<dyn Read + Send> = match length {
        Some(length) => Box::new(Counted::new(buffered.take(length), position)),
        None => Box::new(Counted::new(buffered, position)),
    };
    let decoded = compress::decoder_ahead(codec, input).map_err(|error| context.error(error))?;
    Ok(Rows::new(
        Box::new(LineReader::new(decoded).whole_stream()),
        context,
    ))
}

/// Finds a directory archive's data file for `name`: the name itself or with a suffix.
pub(crate) fn find_in_directory(
    directory: &Path,
    name: &str,
) -> Option<(std::path::PathBuf, Codec)> {
    SUFFIXES.iter().find_map(|&(suffix, codec)| {
        let path = directory.join(format!("{name}{suffix}"));
        path.is_file().then_some((path, codec))
    })
}
