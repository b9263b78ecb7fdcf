//! Reading without seeking (a pipe, standard input) and reading tables in parallel give the
//! same rows as the random-access reader.

mod support;

use std::collections::BTreeMap;
use std::io::Read;

use rayon::prelude::*;
use salvage_archive::{Archive, Error, Format, scan};
use support::{CopyBlocks, all_fixtures, fixture};

/// A reader that hands out a few bytes at a time and cannot seek, like a pipe.
struct Pipe<R>(R);

impl<R: Read> Read for Pipe<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let limit = buf.len().min(1000);
        self.0.read(&mut buf[..limit])
    }
}

fn rows_by_random_access(path: &std::path::Path) -> CopyBlocks {
    let archive = Archive::open(path).unwrap();
    archive
        .tables()
        .iter()
        .map(|table| {
            let rows = archive
                .rows(table)
                .unwrap()
                .owned()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            (table.copy_stmt.clone().unwrap(), rows)
        })
        .collect()
}

fn rows_by_scan(path: &std::path::Path) -> (CopyBlocks, Format) {
    let file = std::fs::File::open(path).unwrap();
    let mut blocks = BTreeMap::new();
    let summary = scan::<_, Error, _>("<stdin>", Pipe(file), |table, rows| {
        let mut collected = Vec::new();
        while let Some(row) = rows.next_row()? {
            collected.push(row.to_vec());
        }
        blocks.insert(table.copy_stmt.clone().unwrap(), collected);
        Ok(())
    })
    .unwrap_or_else(|error| panic!("scan {}: {error}", path.display()));
    assert_eq!(summary.tables.len(), blocks.len());
    (blocks, summary.format)
}

#[test]
fn one_pass_scan_reads_custom_tar_and_plain_like_random_access() {
    let mut formats = Vec::new();
    for fixture in all_fixtures() {
        if fixture.path.is_dir() || fixture.name.contains("inserts") {
            continue;
        }
        let (scanned, format) = rows_by_scan(&fixture.path);
        assert_eq!(
            scanned,
            rows_by_random_access(&fixture.path),
            "{}",
            fixture.path.display()
        );
        formats.push(format);
    }
    for format in [Format::Custom, Format::Tar, Format::Plain] {
        assert!(formats.contains(&format), "no {format} fixture scanned");
    }
}

#[test]
fn a_pipe_written_custom_dump_reads_like_a_seekable_one() {
    for (seekable, piped) in [
        ("pg15/custom-gzip.dump", "pg15/custom-pipe-gzip.dump"),
        ("pg17/custom-none.dump", "pg17/custom-pipe-none.dump"),
        ("pg17/custom-zstd.dump", "pg17/custom-pipe-zstd.dump"),
        ("pg18/custom-gzip.dump", "pg18/custom-pipe-gzip.dump"),
    ] {
        let piped_archive = Archive::open(fixture(piped)).unwrap();
        assert!(
            piped_archive
                .entries()
                .iter()
                .filter(|entry| entry.desc == "TABLE DATA")
                .all(|entry| entry.data == salvage_archive::DataLocation::Unknown),
            "{piped} should have no data offsets"
        );
        assert_eq!(
            rows_by_random_access(&fixture(seekable)),
            rows_by_random_access(&fixture(piped)),
            "{piped}"
        );
    }
}

/// A caller's own error type, to stop a scan.
#[derive(Debug)]
struct Stop;

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        panic!("unexpected archive error {error}")
    }
}

#[test]
fn visitors_may_stop_early_and_errors_stop_the_scan() {
    let file = std::fs::File::open(fixture("pg17/custom-gzip.dump")).unwrap();
    let mut visited = 0;
    scan::<_, Error, _>("<stdin>", Pipe(file), |_, rows| {
        visited += 1;
        rows.next_row()?;
        Ok(())
    })
    .unwrap();
    assert!(visited >= 15);

    let file = std::fs::File::open(fixture("pg18/plain.sql")).unwrap();
    let result = scan("<stdin>", Pipe(file), |_, _| Err(Stop));
    assert!(matches!(result, Err(Stop)));

    let file = std::fs::File::open(fixture("pg17/custom-inserts.dump")).unwrap();
    let error = scan::<_, Error, _>("<stdin>", file, |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(error, Error::InsertsNotSupported { .. }),
        "{error}"
    );
}

#[test]
fn tables_read_in_parallel_on_rayon() {
    for name in [
        "pg17/custom-lz4.dump",
        "pg17/dir-zstd",
        "pg18/tar.tar",
        "pg15/custom-pipe-gzip.dump",
    ] {
        let archive = Archive::open(fixture(name)).unwrap();
        let counts: Vec<(String, u64)> = archive
            .tables()
            .par_iter()
            .map(|table| {
                (
                    table.name.to_string(),
                    archive.rows(table).unwrap().count().unwrap(),
                )
            })
            .collect();
        let sequential: Vec<(String, u64)> = archive
            .tables()
            .iter()
            .map(|table| {
                (
                    table.name.to_string(),
                    archive.rows(table).unwrap().count().unwrap(),
                )
            })
            .collect();
        assert_eq!(counts, sequential);
        let no_columns = counts
            .iter()
            .find(|(name, _)| name == "public.no_columns")
            .unwrap();
        assert_eq!(no_columns.1, 3, "three rows of nothing");
        let bulk = counts
            .iter()
            .find(|(name, _)| name == "public.bulk")
            .unwrap();
        assert_eq!(bulk.1, 300);
    }
}

#[test]
fn zero_column_and_quoted_tables_parse() {
    let archive = Archive::open(fixture("pg18/custom-gzip.dump")).unwrap();
    let odd = archive
        .table(&salvage_catalog::QualifiedName::new(
            "Sales Dept",
            "Odd Name",
        ))
        .unwrap();
    assert_eq!(
        odd.columns,
        vec!["Id", "two words", "we\"ird", "select", "ÄÖÜ"]
    );
    let empty = archive
        .table(&salvage_catalog::QualifiedName::new("public", "no_columns"))
        .unwrap();
    assert!(empty.columns.is_empty());
    let rows: Vec<Vec<u8>> = archive
        .rows(empty)
        .unwrap()
        .owned()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, vec![Vec::<u8>::new(); 3]);
    let invoices = archive
        .table(&salvage_catalog::QualifiedName::new("public", "invoices"))
        .unwrap();
    assert_eq!(
        invoices.columns,
        vec!["id", "site_id", "net", "tax"],
        "generated column left out"
    );
}
