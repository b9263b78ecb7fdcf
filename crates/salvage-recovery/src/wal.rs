//! The restore command salvage gives the recovery instance for `--wal-archive DIR`: the
//! salvage binary itself, as `salvage wal-fetch DIR %f %p`. It finds the file PostgreSQL
//! asks for as `archive_command = 'cp %p DIR/%f'` wrote it, or compressed (`%f.gz`,
//! `%f.zst`, `%f.lz4`), and writes it to `%p` uncompressed, through a temporary file renamed
//! into place, so a half-written segment is never seen. A file that is not there is exit
//! status 1 — what PostgreSQL takes for "the archive ends here".

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::compress::Compression;
use crate::{Error, Result};

/// How the helper's lines to stderr (the instance's log) begin.
pub const HELPER_PREFIX: &str = "salvage wal-fetch: ";
/// The helper's line for a file the archive does not have, before the file's name.
pub const NOT_IN_ARCHIVE: &str = "salvage wal-fetch: not in the archive: ";

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Written to the destination, from this file.
    Restored(PathBuf),
    /// No such file in the archive, in any compression.
    NotInArchive,
}

/// Copies WAL file `name` (a segment, a `.history` file) from `archive` to `destination`.
pub fn fetch(archive: &Path, name: &str, destination: &Path) -> Result<Fetched> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(Error::Invalid(format!("`{name}` is not a WAL file name")));
    }
    let Some((path, compression)) = Compression::ALL.iter().find_map(|&compression| {
        let path = archive.join(format!("{name}{}", compression.extension()));
        path.is_file().then_some((path, compression))
    }) else {
        return Ok(Fetched::NotInArchive);
    };
    let file = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
    let mut reader = compression
        .reader(file)
        .map_err(Error::io("decompress", &path))?;
    let partial = destination.with_extension("salvage-partial");
    let result = (|| {
        let mut out = std::fs::File::create(&partial).map_err(Error::io("create", &partial))?;
        std::io::copy(&mut reader, &mut out).map_err(Error::io("decompress", &path))?;
        out.flush().map_err(Error::io("write", &partial))?;
        std::fs::rename(&partial, destination).map_err(Error::io("rename", &partial))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map(|()| Fetched::Restored(path))
}

/// `'EXE' wal-fetch 'DIR' %f %p`, for `restore_command` (shell-quoted; `%` doubled where it
/// is not a placeholder).
#[must_use]
pub fn restore_command(helper: &Path, archive: &Path) -> String {
    format!(
        "{} wal-fetch {} %f %p",
        shell_quote(&helper.to_string_lossy()).replace('%', "%%"),
        shell_quote(&archive.to_string_lossy()).replace('%', "%%")
    )
}

/// `text` as one word for /bin/sh.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::{Fetched, fetch, restore_command};

    const SEGMENT: &str = "000000010000000000000003";

    fn contents() -> Vec<u8> {
        (0..100_000u32).flat_map(u32::to_le_bytes).collect()
    }

    #[test]
    fn fetches_plain_and_compressed_segments() {
        let archive = tempfile::tempdir().expect("a temporary directory");
        let pg_wal = tempfile::tempdir().expect("a temporary directory");
        let destination = pg_wal.path().join("RECOVERYXLOG");
        let data = contents();

        assert_eq!(
            fetch(archive.path(), SEGMENT, &destination).expect("fetch"),
            Fetched::NotInArchive
        );
        let gz = archive.path().join(format!("{SEGMENT}.gz"));
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).expect("create"),
            flate2::Compression::fast(),
        );
        encoder.write_all(&data).expect("compress");
        encoder.finish().expect("finish");
        assert_eq!(
            fetch(archive.path(), SEGMENT, &destination).expect("fetch"),
            Fetched::Restored(gz.clone())
        );
        assert_eq!(std::fs::read(&destination).expect("read"), data);
        std::fs::remove_file(&gz).expect("remove");

        let zst = archive.path().join(format!("{SEGMENT}.zst"));
        std::fs::write(&zst, zstd::encode_all(&data[..], 3).expect("compress")).expect("write");
        std::fs::remove_file(&destination).expect("remove");
        fetch(archive.path(), SEGMENT, &destination).expect("fetch");
        assert_eq!(std::fs::read(&destination).expect("read"), data);

        // A damaged file is an error, not the end of the archive, and leaves nothing behind.
        std::fs::write(&zst, b"not zstd at all").expect("write");
        std::fs::remove_file(&destination).expect("remove");
        let error = fetch(archive.path(), SEGMENT, &destination).expect_err("damaged");
        assert!(
            error.to_string().contains(&format!("{SEGMENT}.zst")),
            "{error}"
        );
        assert_eq!(std::fs::read_dir(pg_wal.path()).expect("list").count(), 0);
    }

    #[test]
    fn the_restore_command_quotes_paths() {
        assert_eq!(
            restore_command(Path::new("/opt/sal vage"), Path::new("/w/it's 100%")),
            r"'/opt/sal vage' wal-fetch '/w/it'\''s 100%%' %f %p"
        );
    }
}
