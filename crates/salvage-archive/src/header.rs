//! The archive header (`WriteHead`/`ReadHead` in `pg_backup_archiver.c`): version, int and
//! offset sizes, format, compression, dump time, database and versions. It decides how
//! everything after it is read.

use std::fmt;
use std::io::Read;

use serde::Serialize;

use crate::binary::BinaryReader;
use crate::error::{Error, Result};

/// `major.minor.revision` of the archive format (not of PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ArchiveVersion {
    pub major: u8,
    pub minor: u8,
    pub revision: u8,
}

impl ArchiveVersion {
    #[must_use]
    pub const fn new(major: u8, minor: u8, revision: u8) -> Self {
        Self {
            major,
            minor,
            revision,
        }
    }

    /// The oldest version this reader accepts (pg_dump 9.6 wrote 1.12).
    pub const OLDEST: Self = Self::new(1, 12, 0);
    /// The newest version this reader knows (pg_dump 17 and 18 write 1.16).
    pub const NEWEST: Self = Self::new(1, 16, u8::MAX);

    pub(crate) fn at_least(self, minor: u8) -> bool {
        self >= Self::new(1, minor, 0)
    }
}

impl fmt::Display for ArchiveVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)
    }
}

/// How table data is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum Compression {
    None,
    /// zlib in custom archives, gzip files in directory archives. The level is recorded only
    /// by archives before 1.15 (`None` there means zlib's default).
    Gzip {
        level: Option<i32>,
    },
    Lz4,
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Gzip { level: Some(level) } => write!(f, "gzip (level {level})"),
            Self::Gzip { level: None } => f.write_str("gzip"),
            Self::Lz4 => f.write_str("lz4"),
            Self::Zstd => f.write_str("zstd"),
        }
    }
}

/// When the dump was taken, as pg_dump's local `struct tm` recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DumpTime {
    pub year: i32,
    /// 1 to 12.
    pub month: i32,
    pub day: i32,
    pub hour: i32,
    pub minute: i32,
    pub second: i32,
    pub is_dst: bool,
}

impl fmt::Display for DumpTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The header of a custom archive, or of a directory or tar archive's `toc.dat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub version: ArchiveVersion,
    pub int_size: u8,
    pub offset_size: u8,
    /// The format byte: 1 custom, 3 tar (directory archives' `toc.dat` says 3 too).
    pub format_byte: u8,
    pub compression: Compression,
    pub dump_time: DumpTime,
    pub database: Option<String>,
    /// The server's version string (`15.18 (Debian 15.18-0+deb12u1)`).
    pub server_version: Option<String>,
    /// The version of the pg_dump that wrote the archive (`17.10`).
    pub pg_dump_version: Option<String>,
}

pub(crate) const MAGIC: &[u8; 5] = b"PGDMP";

impl Header {
    pub(crate) fn read<R: Read>(reader: &mut BinaryReader<R>) -> Result<Self> {
        let mut magic = [0u8; 5];
        reader.read_exact(&mut magic, "the archive's magic bytes")?;
        if &magic != MAGIC {
            return Err(reader.corrupt_at(0, "the file does not start with PGDMP"));
        }
        let major = reader.byte("the archive version")?;
        let minor = reader.byte("the archive version")?;
        let revision = if major > 1 || minor > 0 {
            reader.byte("the archive version")?
        } else {
            0
        };
        let version = ArchiveVersion::new(major, minor, revision);
        if version < ArchiveVersion::OLDEST || version > ArchiveVersion::NEWEST {
            return Err(Error::UnsupportedVersion {
                path: reader.path().to_path_buf(),
                version: version.to_string(),
            });
        }
        let offset_at = reader.position();
        let int_size = reader.byte("the int size")?;
        let offset_size = reader.byte("the offset size")?;
        if !(1..=8).contains(&int_size) {
            return Err(reader.corrupt_at(offset_at, format!("unsupported int size {int_size}")));
        }
        if !(1..=16).contains(&offset_size) {
            return Err(reader.corrupt_at(
                offset_at + 1,
                format!("unsupported offset size {offset_size}"),
            ));
        }
        reader.int_size = usize::from(int_size);
        reader.offset_size = usize::from(offset_size);
        let format_byte = reader.byte("the format")?;
        let compression_at = reader.position();
        let compression = if version.at_least(15) {
            match reader.byte("the compression algorithm")? {
                0 => Compression::None,
                1 => Compression::Gzip { level: None },
                2 => Compression::Lz4,
                3 => Compression::Zstd,
                other => {
                    return Err(reader.corrupt_at(
                        compression_at,
                        format!("unknown compression algorithm {other}"),
                    ));
                }
            }
        } else {
            match reader.int("the compression level")? {
                0 => Compression::None,
                -1 => Compression::Gzip { level: None },
                level @ 1..=9 => Compression::Gzip {
                    level: Some(level as i32),
                },
                other => {
                    return Err(reader
                        .corrupt_at(compression_at, format!("invalid compression level {other}")));
                }
            }
        };
        let mut time = [0i32; 7];
        for field in &mut time {
            *field = reader.int32("the dump time")?;
        }
        let dump_time = DumpTime {
            second: time[0],
            minute: time[1],
            hour: time[2],
            day: time[3],
            month: time[4] + 1,
            year: time[5] + 1900,
            is_dst: time[6] != 0,
        };
        let database = reader.string("the database name")?;
        let server_version = reader.string("the server version")?;
        let pg_dump_version = reader.string("the pg_dump version")?;
        Ok(Self {
            version,
            int_size,
            offset_size,
            format_byte,
            compression,
            dump_time,
            database,
            server_version,
            pg_dump_version,
        })
    }
}
