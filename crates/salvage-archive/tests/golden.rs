//! Every table of every fixture reads byte-identical to what the real pg_restore of the
//! same version restores (or, for plain dumps, to the dump's own COPY blocks).

mod support;

use salvage_archive::Archive;
use support::{CopyBlocks, Fixture, all_fixtures, expected_blocks};

fn read_with_archive(fixture: &Fixture) -> CopyBlocks {
    let archive = Archive::open(&fixture.path)
        .unwrap_or_else(|error| panic!("open {}: {error}", fixture.path.display()));
    let mut blocks = CopyBlocks::new();
    for table in archive.tables() {
        let statement = table
            .copy_stmt
            .as_deref()
            .expect("COPY data")
            .trim_end_matches('\n')
            .to_owned();
        let mut rows = archive
            .rows(table)
            .unwrap_or_else(|error| panic!("rows of {}: {error}", table.name));
        let mut collected = Vec::new();
        while let Some(row) = rows.next_row().unwrap_or_else(|error| panic!("{error}")) {
            collected.push(row.to_vec());
        }
        blocks.insert(statement, collected);
    }
    blocks
}

#[test]
fn every_fixture_reads_like_pg_restore() {
    let mut checked = 0;
    for fixture in all_fixtures() {
        if fixture.name.contains("inserts") || !fixture.path.exists() {
            continue;
        }
        let expected = expected_blocks(&fixture);
        assert!(
            expected.len() >= 15,
            "{}: too few tables",
            fixture.path.display()
        );
        let got = read_with_archive(&fixture);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{}: tables",
            fixture.path.display()
        );
        for (statement, rows) in &expected {
            assert!(
                &got[statement] == rows,
                "{}: rows of {statement} differ",
                fixture.path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 25, "checked only {checked} fixtures");
}
