//! Truncated and corrupted archives give errors that name the file and the byte offset (and
//! the TOC entry when inside one); they never panic and never allocate what a corrupt
//! length asks for.

mod support;

use std::path::Path;

use salvage_archive::{Archive, Error, Result};
use support::fixture;

/// Opens `path` and reads every table to the end.
fn read_all(path: &Path) -> Result<u64> {
    let archive = Archive::open(path)?;
    let mut total = 0;
    for table in archive.tables() {
        total += archive.rows(table)?.count()?;
    }
    Ok(total)
}

fn write_temp(directory: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = directory.path().join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

fn assert_names_file_and_offset(error: &Error, path: &Path) {
    let text = error.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "error does not name the file: {text}"
    );
    if let Error::Corrupt { location, .. } = error {
        assert!(
            text.contains(&format!("at byte {}", location.offset)),
            "{text}"
        );
    }
}

#[test]
fn truncated_custom_archives_fail_with_file_and_offset() {
    let temp = tempfile::tempdir().unwrap();
    for name in [
        "pg17/custom-none.dump",
        "pg15/custom-gzip.dump",
        "pg17/custom-zstd.dump",
        "pg17/custom-lz4.dump",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let full = read_all(&fixture(name)).unwrap();
        assert!(full > 500);
        // The large-object block comes last; tables read by offset never touch it, so cuts
        // in it go unnoticed by design. Cut anywhere before it.
        let archive = Archive::open(fixture(name)).unwrap();
        let blobs = archive
            .entries()
            .iter()
            .find(|entry| entry.desc == "BLOBS")
            .map(|entry| match entry.data {
                salvage_archive::DataLocation::Offset(offset) => usize::try_from(offset).unwrap(),
                _ => panic!("offsets are set"),
            })
            .unwrap();
        for cut in (0..blobs).step_by(241).chain([blobs - 1]) {
            let path = write_temp(&temp, "cut.dump", &bytes[..cut]);
            match read_all(&path) {
                Ok(rows) => panic!("{name} cut at {cut}: read {rows} rows without an error"),
                Err(error) => assert_names_file_and_offset(&error, &path),
            }
        }
    }
}

#[test]
fn truncated_pipe_written_archives_fail_too() {
    // Without offsets, blocks are found by walking them all, so a cut anywhere is seen.
    let temp = tempfile::tempdir().unwrap();
    for name in ["pg17/custom-pipe-none.dump", "pg15/custom-pipe-gzip.dump"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut in (0..bytes.len()).step_by(313).chain([bytes.len() - 1]) {
            let path = write_temp(&temp, "cut.dump", &bytes[..cut]);
            match read_all(&path) {
                Ok(rows) => panic!("{name} cut at {cut}: read {rows} rows without an error"),
                Err(error) => assert_names_file_and_offset(&error, &path),
            }
        }
    }
}

#[test]
fn a_truncated_toc_names_the_entry() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("pg17/custom-none.dump")).unwrap();
    let path = write_temp(&temp, "cut.dump", &bytes[..5000]);
    let error = Archive::open(&path).unwrap_err();
    let Error::Corrupt { location, message } = &error else {
        panic!("expected a corrupt archive error, got {error}");
    };
    assert_eq!(location.file, path);
    assert_eq!(location.offset, 5000);
    assert!(location.entry.is_some(), "{error}");
    assert!(message.contains("unexpected end of file"), "{error}");
}

#[test]
fn truncated_data_names_the_table() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("pg15/custom-gzip.dump")).unwrap();
    let original = Archive::open(fixture("pg15/custom-gzip.dump")).unwrap();
    let bulk = original
        .tables()
        .iter()
        .find(|table| table.name.name == "bulk")
        .unwrap();
    let salvage_archive::DataLocation::Offset(offset) = original.entry(bulk.dump_id).unwrap().data
    else {
        panic!("offsets are set");
    };
    let cut = usize::try_from(offset).unwrap() + 2000;
    let path = write_temp(&temp, "cut.dump", &bytes[..cut]);
    let archive = Archive::open(&path).unwrap();
    let error = archive
        .rows(bulk)
        .and_then(|mut rows| rows.count())
        .unwrap_err();
    let location = error.location().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(location.entry.as_ref().unwrap().0, bulk.dump_id);
    assert!(error.to_string().contains("public.bulk"), "{error}");
}

#[test]
fn truncated_directory_tar_and_plain_files_fail() {
    let temp = tempfile::tempdir().unwrap();
    for name in [
        "pg17/tar.tar",
        "pg18/plain.sql",
        "pg18/plain.sql.gz",
        "pg15/plain.sql.gz",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let file_name = Path::new(name).file_name().unwrap().to_str().unwrap();
        // A tar archive's last 512 bytes are its second end block: nothing is lost without it.
        for cut in (600..bytes.len() - 512)
            .step_by(1733)
            .chain([bytes.len() - 513])
        {
            let path = write_temp(&temp, file_name, &bytes[..cut]);
            match read_all(&path) {
                Ok(rows) => panic!("{name} cut at {cut}: read {rows} rows without an error"),
                Err(error) => assert_names_file_and_offset(&error, &path),
            }
        }
    }
    // A directory archive with a data file cut short.
    let source = fixture("pg17/dir-gzip");
    let copy = temp.path().join("dir");
    std::fs::create_dir(&copy).unwrap();
    let mut biggest = (0, String::new());
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        if name.ends_with(".dat.gz") && bytes.len() > biggest.0 {
            biggest = (bytes.len(), name.clone());
        }
        std::fs::write(copy.join(&name), bytes).unwrap();
    }
    let victim = copy.join(&biggest.1);
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let error = read_all(&copy).unwrap_err();
    assert_names_file_and_offset(&error, &victim);
}

#[test]
fn corrupted_bytes_never_panic_and_data_damage_is_reported() {
    let temp = tempfile::tempdir().unwrap();
    for name in [
        "pg17/custom-gzip.dump",
        "pg17/custom-none.dump",
        "pg17/custom-lz4.dump",
        "pg17/custom-zstd.dump",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for at in (0..bytes.len()).step_by(97) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            let path = write_temp(&temp, "bad.dump", &damaged);
            if let Err(error) = read_all(&path) {
                assert_names_file_and_offset(&error, &path);
            }
        }
    }
    // One byte in the middle of compressed data: the decoder's error carries the location.
    let bytes = std::fs::read(fixture("pg15/custom-gzip.dump")).unwrap();
    let archive = Archive::open(fixture("pg15/custom-gzip.dump")).unwrap();
    let bulk = archive
        .tables()
        .iter()
        .find(|t| t.name.name == "bulk")
        .unwrap();
    let salvage_archive::DataLocation::Offset(offset) =
        archive.entry(bulk.dump_id).unwrap().data.clone()
    else {
        panic!("a seekable custom archive records offsets");
    };
    let mut damaged = bytes.clone();
    let at = usize::try_from(offset).unwrap() + 2000;
    damaged[at] ^= 0xff;
    let path = write_temp(&temp, "bad.dump", &damaged);
    let archive = Archive::open(&path).unwrap();
    let error = archive
        .rows(bulk)
        .and_then(|mut rows| rows.count())
        .unwrap_err();
    let location = error.location().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(location.file, path);
    assert!(location.offset > offset, "{error}");
    assert_eq!(location.entry.as_ref().unwrap().0, bulk.dump_id);
}

#[test]
fn hostile_lengths_do_not_allocate() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("pg17/custom-none.dump")).unwrap();
    // The header ends with three strings: database, server and pg_dump versions; the
    // TOC count follows. Claim 2^31-1 entries, then a tag of 2^31-1 bytes.
    let header_end = {
        let archive = Archive::open(fixture("pg17/custom-none.dump")).unwrap();
        let header = archive.header().unwrap().clone();
        let strings = [
            header.database.unwrap(),
            header.server_version.unwrap(),
            header.pg_dump_version.unwrap(),
        ];
        let after_magic = 5 + 3 + 2 + 1 + 1 + 7 * 5;
        after_magic + strings.iter().map(|s| 5 + s.len()).sum::<usize>()
    };
    let mut huge_count = bytes[..header_end].to_vec();
    huge_count.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0x7f]);
    huge_count.extend_from_slice(&bytes[header_end + 5..header_end + 5 + 200]);
    let path = write_temp(&temp, "count.dump", &huge_count);
    let error = Archive::open(&path).unwrap_err();
    assert_names_file_and_offset(&error, &path);

    let mut huge_string = bytes[..header_end].to_vec();
    huge_string.extend_from_slice(&[0, 1, 0, 0, 0]); // one entry
    huge_string.extend_from_slice(&[0, 1, 0, 0, 0]); // dump ID 1
    huge_string.extend_from_slice(&[0, 0, 0, 0, 0]); // had_dumper
    huge_string.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0x7f]); // table OID of 2 GiB
    huge_string.extend_from_slice(b"short");
    let path = write_temp(&temp, "string.dump", &huge_string);
    let error = Archive::open(&path).unwrap_err();
    assert!(error.to_string().contains("2147483647"), "{error}");
    assert_names_file_and_offset(&error, &path);
}

#[test]
fn inserts_dumps_are_refused_clearly() {
    let archive = Archive::open(fixture("pg17/custom-inserts.dump")).unwrap();
    let table = archive
        .tables()
        .iter()
        .find(|table| table.name.name == "sites")
        .unwrap();
    assert!(!table.is_copy());
    let error = archive.rows(table).unwrap_err();
    assert!(matches!(error, Error::InsertsNotSupported { .. }));
    assert!(error.to_string().contains("--inserts"), "{error}");
}

#[test]
fn not_an_archive() {
    let temp = tempfile::tempdir().unwrap();
    for (name, bytes) in [("empty", &b""[..]), ("binary", &[0u8, 1, 2, 3, 0xff][..])] {
        let path = write_temp(&temp, name, bytes);
        let error = Archive::open(&path).unwrap_err();
        assert!(matches!(error, Error::UnknownFormat { .. }), "{error}");
    }
    let mut future = std::fs::read(fixture("pg17/custom-none.dump")).unwrap();
    future[6] = 17;
    let path = write_temp(&temp, "future.dump", &future);
    let error = Archive::open(&path).unwrap_err();
    assert!(matches!(error, Error::UnsupportedVersion { .. }), "{error}");
}
