//! The tar format (`pg_backup_tar.c`): ustar members `toc.dat`, `<dumpId>.dat`, ... in 512-byte
//! blocks. The member list is read from the headers alone (stepping over the contents), so a
//! table's data is one seek away.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Location, Result};

const BLOCK: u64 = 512;

/// Where a member's contents are in the tar file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

/// Whether a 512-byte block looks like a ustar header (magic `ustar` at 257).
pub(crate) fn is_tar_header(block: &[u8]) -> bool {
    block.len() >= 263 && &block[257..262] == b"ustar"
}

fn corrupt(path: &Path, offset: u64, message: impl Into<String>) -> Error {
    Error::corrupt(
        Location {
            file: path.to_owned(),
            offset,
            entry: None,
        },
        message,
    )
}

/// A numeric header field: octal digits, or base-256 when the first byte has its top bit set.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&byte| byte & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &byte in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(byte))?;
        }
        return Some(value);
    }
    let text = field
        .iter()
        .copied()
        .take_while(|&byte| byte != 0)
        .collect::<Vec<u8>>();
    let text = std::str::from_utf8(&text).ok()?.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn name(header: &[u8; 512]) -> String {
    let field = |range: std::ops::Range<usize>| {
        let bytes = &header[range];
        let end = bytes
            .iter()
            .position(|&byte| byte == 0)
            .unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    };
    let name = field(0..100);
    let prefix = field(345..500);
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Parses one header block at `offset`: the member's name and size, or `None` for the zero
/// block that ends the archive.
pub(crate) fn parse_header(
    path: &Path,
    offset: u64,
    header: &[u8; 512],
) -> Result<Option<(String, u64)>> {
    if header.iter().all(|&byte| byte == 0) {
        return Ok(None);
    }
    if !is_tar_header(header) {
        return Err(corrupt(path, offset, "not a tar header (no ustar magic)"));
    }
    let stored = number(&header[148..156])
        .ok_or_else(|| corrupt(path, offset + 148, "unreadable tar header checksum"))?;
    let computed: u64 = header
        .iter()
        .enumerate()
        .map(|(index, &byte)| {
            if (148..156).contains(&index) {
                32
            } else {
                u64::from(byte)
            }
        })
        .sum();
    if stored != computed {
        return Err(corrupt(
            path,
            offset + 148,
            format!("tar header checksum {stored} does not match the header ({computed})"),
        ));
    }
    let size = number(&header[124..136])
        .ok_or_else(|| corrupt(path, offset + 124, "unreadable tar member size"))?;
    Ok(Some((name(header), size)))
}

/// Lists the members of the tar file at `path`.
pub(crate) fn members(path: &Path) -> Result<HashMap<String, Member>> {
    let file = File::open(path).map_err(|error| Error::io("open", path, error))?;
    let length = file
        .metadata()
        .map_err(|error| Error::io("read the size of", path, error))?
        .len();
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut members = HashMap::new();
    let mut offset = 0u64;
    loop {
        if offset + BLOCK > length {
            return Err(corrupt(
                path,
                offset,
                "unexpected end of file: the tar archive ends without its end blocks",
            ));
        }
        let mut header = [0u8; 512];
        reader
            .read_exact(&mut header)
            .map_err(|error| Error::io("read", path, error))?;
        let Some((name, size)) = parse_header(path, offset, &header)? else {
            return Ok(members);
        };
        let start = offset + BLOCK;
        if size > length.saturating_sub(start) {
            return Err(corrupt(
                path,
                offset,
                format!("unexpected end of file: member {name} of {size} bytes is cut short"),
            ));
        }
        members.insert(
            name,
            Member {
                offset: start,
                size,
            },
        );
        offset = start + size.div_ceil(BLOCK) * BLOCK;
        reader
            .seek(SeekFrom::Start(offset))
            .map_err(|error| Error::io("seek in", path, error))?;
    }
}
