//! Puts a `pg_basebackup` backup into the instance's own data directory: a plain backup is
//! copied file by file (`std::fs::copy`, which on Linux is `copy_file_range`: a clone on
//! filesystems that share extents, such as btrfs and XFS, when both sides are on the same
//! one), a tar backup is unpacked (decompressing gzip, lz4 or zstd as it reads). Tablespaces
//! go to the instance's `tablespaces/<oid>`, never back to where the backed-up server had
//! them. The backup itself is only read.

use std::cell::Cell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backup::major_version;
use crate::compress::Compression;
use crate::{Error, Result};

/// Where the copy goes, how to report bytes, and the flag that stops it.
pub(crate) struct Destination<'a> {
    pub data: &'a Path,
    pub tablespaces: &'a Path,
    pub cancel: &'a AtomicBool,
    /// Called with the bytes done so far (of the total `size_of` gave).
    pub progress: &'a mut dyn FnMut(u64),
    /// Called with the backup's major version as soon as it is known; an error stops the copy.
    pub version: &'a mut dyn FnMut(u32, &Path) -> Result<()>,
}

/// Files the server writes while running, which a backup never needs.
const SKIPPED: [&str; 2] = ["postmaster.pid", "postmaster.opts"];

/// Bytes a plain backup holds (its tablespaces included).
pub(crate) fn plain_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(Error::io("read the directory", dir))? {
        let entry = entry.map_err(Error::io("read the directory", dir))?;
        let path = entry.path();
        let metadata = std::fs::metadata(&path).map_err(Error::io("read", &path))?;
        if metadata.is_dir() {
            total += plain_size(&path)?;
        } else {
            total += metadata.len();
        }
    }
    Ok(total)
}

/// Copies the plain backup `from` into `to.data`.
pub(crate) fn copy_plain(from: &Path, to: &mut Destination<'_>) -> Result<()> {
    let version_file = from.join("PG_VERSION");
    let text = std::fs::read_to_string(&version_file).map_err(Error::io("read", &version_file))?;
    (to.version)(major_version(&text, &version_file)?, &version_file)?;
    let mut done = 0;
    create_dir(to.data)?;
    copy_dir(from, to.data, from, to, &mut done)
}

fn copy_dir(
    from: &Path,
    into: &Path,
    root: &Path,
    to: &mut Destination<'_>,
    done: &mut u64,
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .map_err(Error::io("read the directory", from))?
        .collect::<std::io::Result<_>>()
        .map_err(Error::io("read the directory", from))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        if to.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let source = entry.path();
        let name = entry.file_name();
        if from == root && SKIPPED.iter().any(|skipped| name == *skipped) {
            continue;
        }
        let target = into.join(&name);
        let link = entry
            .file_type()
            .map_err(Error::io("read", &source))?
            .is_symlink();
        let metadata = std::fs::metadata(&source).map_err(Error::io("read", &source))?;
        let in_tablespaces = from == root.join("pg_tblspc");
        if metadata.is_dir() && link && in_tablespaces {
            // A tablespace: its contents go to the instance's own directory, linked from here.
            let own = to.tablespaces.join(&name);
            create_dir(to.tablespaces)?;
            create_dir(&own)?;
            copy_dir(&source, &own, root, to, done)?;
            std::os::unix::fs::symlink(&own, &target).map_err(Error::io("link", &target))?;
        } else if metadata.is_dir() {
            create_dir(&target)?;
            copy_dir(&source, &target, root, to, done)?;
        } else {
            std::fs::copy(&source, &target).map_err(Error::io("copy", &source))?;
            *done += metadata.len();
            (to.progress)(*done);
        }
    }
    Ok(())
}

/// `mkdir` with mode 0700 (a data directory must not be readable by others), never creating
/// parents: a copy cancelled and removed underneath stops instead of building it again.
fn create_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        result => result.map_err(Error::io("create the directory", path)),
    }
}

/// The tar files of a tar-format backup: `base.tar…` first, then one per tablespace
/// (`<oid>.tar…`), then `pg_wal.tar…`.
#[derive(Debug)]
pub(crate) struct TarFiles {
    pub base: PathBuf,
    pub tablespaces: Vec<(String, PathBuf)>,
    pub wal: Option<PathBuf>,
}

impl TarFiles {
    pub(crate) fn find(dir: &Path, base: &Path) -> Result<Self> {
        let mut tablespaces = Vec::new();
        let mut wal = None;
        for entry in std::fs::read_dir(dir).map_err(Error::io("read the directory", dir))? {
            let entry = entry.map_err(Error::io("read the directory", dir))?;
            let Some(name) = entry.file_name().to_str().map(ToOwned::to_owned) else {
                continue;
            };
            let (stem, _) = Compression::strip(&name);
            let Some(stem) = stem.strip_suffix(".tar") else {
                continue;
            };
            if stem == "pg_wal" {
                wal = Some(entry.path());
            } else if !stem.is_empty() && stem.bytes().all(|byte| byte.is_ascii_digit()) {
                tablespaces.push((stem.to_owned(), entry.path()));
            }
        }
        tablespaces.sort();
        Ok(Self {
            base: base.to_owned(),
            tablespaces,
            wal,
        })
    }

    pub(crate) fn size(&self) -> Result<u64> {
        let mut total = 0;
        for path in std::iter::once(&self.base)
            .chain(self.tablespaces.iter().map(|(_, path)| path))
            .chain(&self.wal)
        {
            total += std::fs::metadata(path)
                .map_err(Error::io("read", path))?
                .len();
        }
        Ok(total)
    }
}

/// Unpacks a tar-format backup into `to.data` (and its tablespaces beside it), rewriting
/// `tablespace_map` to the new places.
pub(crate) fn unpack_tar(files: &TarFiles, to: &mut Destination<'_>) -> Result<()> {
    create_dir(to.data)?;
    let mut done = 0;
    let mut version_seen = false;
    unpack(
        &files.base,
        to.data,
        to,
        &mut done,
        &mut |relative, path, to| {
            if relative == Path::new("PG_VERSION") {
                let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
                let file = files.base.join("PG_VERSION");
                (to.version)(major_version(&text, &file)?, &file)?;
                version_seen = true;
            }
            Ok(())
        },
    )?;
    if !version_seen {
        return Err(Error::Backup {
            path: files.base.clone(),
            reason: "has no PG_VERSION: not the base.tar of a base backup".to_owned(),
        });
    }
    let mut map = Vec::new();
    for (oid, path) in &files.tablespaces {
        create_dir(to.tablespaces)?;
        let own = to.tablespaces.join(oid);
        create_dir(&own)?;
        unpack(path, &own, to, &mut done, &mut |_, _, _| Ok(()))?;
        map.push(format!("{oid} {}", own.display()));
    }
    if !map.is_empty() {
        // The server makes pg_tblspc's links from this file when recovery starts.
        let path = to.data.join("tablespace_map");
        std::fs::write(&path, map.join("\n") + "\n").map_err(Error::io("write", &path))?;
    }
    if let Some(wal) = &files.wal {
        let pg_wal = to.data.join("pg_wal");
        create_dir(&pg_wal)?;
        unpack(wal, &pg_wal, to, &mut done, &mut |_, _, _| Ok(()))?;
    }
    Ok(())
}

type EntryCheck<'c> = dyn FnMut(&Path, &Path, &mut Destination<'_>) -> Result<()> + 'c;

fn unpack(
    path: &Path,
    into: &Path,
    to: &mut Destination<'_>,
    done: &mut u64,
    check: &mut EntryCheck<'_>,
) -> Result<()> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    let compression = Compression::strip(name).1;
    let file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    let before = *done;
    let read = Cell::new(0u64);
    let counted = Counted {
        inner: file,
        read: &read,
    };
    let damaged = |error: &std::io::Error| Error::Tar {
        path: path.to_owned(),
        reason: format!(
            "{compression} tar damaged near byte {} of the file: {error}",
            read.get()
        ),
    };
    let reader = compression
        .reader(counted)
        .map_err(|error| damaged(&error))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut reported = 0;
    let entries = archive.entries().map_err(|error| damaged(&error))?;
    for entry in entries {
        if to.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let mut entry = entry.map_err(|error| damaged(&error))?;
        let relative = entry.path().map_err(|error| damaged(&error))?.into_owned();
        let unpacked = entry.unpack_in(into).map_err(|error| damaged(&error))?;
        if !unpacked {
            return Err(Error::Tar {
                path: path.to_owned(),
                reason: format!(
                    "the entry `{}` near byte {} points outside the backup",
                    relative.display(),
                    read.get()
                ),
            });
        }
        check(&relative, &into.join(&relative), to)?;
        if read.get() - reported >= 1 << 20 {
            reported = read.get();
            (to.progress)(before + reported);
        }
    }
    // Count the whole file as done, whatever the decoder left unread at the end.
    *done = before
        + std::fs::metadata(path)
            .map_err(Error::io("read", path))?
            .len();
    (to.progress)(*done);
    Ok(())
}

/// A reader that counts the (compressed) bytes read.
struct Counted<'c, R> {
    inner: R,
    read: &'c Cell<u64>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.read.set(self.read.get() + count as u64);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;

    use super::{Destination, TarFiles, unpack_tar};
    use crate::Result;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, contents) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(contents.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            builder
                .append_data(&mut header, name, *contents)
                .expect("append");
        }
        builder.into_inner().expect("finish")
    }

    fn unpack_into(dir: &Path) -> Result<u32> {
        let Some(crate::Backup::Tar { base, .. }) =
            crate::Backup::recognise(dir.to_str().expect("UTF-8"))
        else {
            panic!("not a tar backup");
        };
        let files = TarFiles::find(dir, &base)?;
        let mut major = 0;
        let mut version = |found: u32, _: &Path| -> Result<()> {
            major = found;
            Ok(())
        };
        let out = dir.join("out");
        std::fs::create_dir(&out).expect("mkdir");
        unpack_tar(
            &files,
            &mut Destination {
                data: &out.join("data"),
                tablespaces: &out.join("tablespaces"),
                cancel: &AtomicBool::new(false),
                progress: &mut |_| {},
                version: &mut version,
            },
        )?;
        assert_eq!(
            std::fs::read(out.join("data/pg_wal/000000010000000000000002")).expect("WAL"),
            b"wal"
        );
        let map = std::fs::read_to_string(out.join("data/tablespace_map")).expect("map");
        assert!(map.starts_with("16400 "), "{map}");
        assert!(out.join("tablespaces/16400/PG_15_x/file").is_file());
        Ok(major)
    }

    #[test]
    fn unpacks_gzip_lz4_and_zstd_tars() {
        let base = tar_of(&[
            ("backup_label", b"LABEL: test\n"),
            ("PG_VERSION", b"15\n"),
            ("global/1262", b"x"),
        ]);
        let space = tar_of(&[("PG_15_x/file", b"t")]);
        let wal = tar_of(&[("000000010000000000000002", b"wal")]);
        for extension in ["", ".gz", ".lz4", ".zst"] {
            let dir = tempfile::tempdir().expect("a temporary directory");
            for (name, bytes) in [("base", &base), ("16400", &space), ("pg_wal", &wal)] {
                let compressed = match extension {
                    "" => bytes.clone(),
                    ".gz" => {
                        let mut encoder =
                            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        encoder.write_all(bytes).expect("compress");
                        encoder.finish().expect("finish")
                    }
                    ".lz4" => {
                        let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
                        encoder.write_all(bytes).expect("compress");
                        encoder.finish().expect("finish")
                    }
                    _ => zstd::encode_all(&bytes[..], 3).expect("compress"),
                };
                std::fs::write(
                    dir.path().join(format!("{name}.tar{extension}")),
                    compressed,
                )
                .expect("write");
            }
            assert_eq!(unpack_into(dir.path()).expect("unpack"), 15, "{extension}");
        }
    }

    #[test]
    fn a_damaged_tar_is_named() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut base = tar_of(&[("PG_VERSION", b"15\n"), ("global/1262", b"x")]);
        base.truncate(600);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&base).expect("compress");
        let mut bytes = encoder.finish().expect("finish");
        bytes.truncate(bytes.len() - 10);
        std::fs::write(dir.path().join("base.tar.gz"), bytes).expect("write");
        let error = unpack_into(dir.path()).expect_err("damaged");
        assert!(error.to_string().contains("base.tar.gz"), "{error}");
    }
}
