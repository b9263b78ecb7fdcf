//! Dumps of databases in other encodings than UTF-8, made by the real pg_dump on the test
//! server: a LATIN1 dump's names, defaults and rows come out as UTF-8 in every format, read
//! from a file or in one pass; a `SQL_ASCII` dump's bytes pass through; a dump in an encoding
//! the reader does not transcode is refused when opened, naming the file and the encoding.
//!
//! Needs PostgreSQL at `$DATABASE_URL` (scripts/test.sh starts one) and pg_dump 15, 17 and 18
//! (scripts/pg-wheels.sh); without them the tests fail, they never skip.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use salvage_archive::inspect::{InspectOptions, inspect, inspect_stream};
use salvage_archive::{Archive, Encoding, Error, TableData, scan};
use salvage_catalog::QualifiedName;
use sqlx::{Connection, PgConnection};

/// A database created for one test with its own encoding, dropped at the end.
struct EncodedDatabase {
    name: String,
    url: String,
}

fn admin_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "these tests need PostgreSQL: run scripts/test.sh (it starts a throwaway server), \
             or set DATABASE_URL to a server where this user may CREATE DATABASE"
        ),
    }
}

/// `url` with its database name replaced.
fn url_for(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |index| index + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

impl EncodedDatabase {
    async fn create(label: &str, encoding: &str) -> Self {
        let name = format!("t_enc_{label}_{}", std::process::id());
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("reach the test PostgreSQL at $DATABASE_URL");
        for statement in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!(
                "CREATE DATABASE {name} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' \
                 TEMPLATE template0"
            ),
        ] {
            sqlx::raw_sql(&statement)
                .execute(&mut admin)
                .await
                .unwrap_or_else(|error| panic!("{statement}: {error}"));
        }
        let _ = admin.close().await;
        Self {
            url: url_for(&admin_url(), &name),
            name,
        }
    }

    /// Runs SQL in a UTF-8 session (the server converts to the database's encoding).
    async fn execute(&self, sql: &str) {
        let mut connection = PgConnection::connect(&self.url).await.expect("connect");
        sqlx::raw_sql(sql)
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{error}\nin:\n{sql}"));
        let _ = connection.close().await;
    }

    /// A table's rows as the server converts them for a UTF-8 session: the oracle.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut connection = PgConnection::connect(&self.url).await.expect("connect");
        let rows: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(sql)
            .fetch_all(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{error}\nin:\n{sql}"));
        let _ = connection.close().await;
        rows.into_iter().map(|(a, b, c)| vec![a, b, c]).collect()
    }

    /// Runs pg_dump `major` with `args`, writing to `output`, in pg_dump's own default
    /// encoding (no `PGCLIENTENCODING` from the environment).
    fn dump(&self, major: u32, args: &[&str], output: &Path) {
        let status = Command::new(pg_dump(major))
            .env_remove("PGCLIENTENCODING")
            .args(args)
            .arg("--no-owner")
            .arg("-f")
            .arg(output)
            .arg(&self.url)
            .status()
            .expect("run pg_dump");
        assert!(status.success(), "pg_dump {major} {args:?} failed");
    }
}

impl Drop for EncodedDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// The pg_dump of a major version: the system's 15, or the one scripts/pg-wheels.sh installs.
fn pg_dump(major: u32) -> PathBuf {
    let pg_restore = support::pg_restore(major);
    let path = pg_restore.with_file_name("pg_dump");
    assert!(
        path.exists(),
        "pg_dump {major} not found at {}",
        path.display()
    );
    path
}

/// Every table's rows, decoded into text (which must be UTF-8), in file order.
fn decoded_rows(archive: &Archive, table: &TableData) -> Vec<Vec<Option<String>>> {
    let mut rows = archive
        .rows(table)
        .unwrap_or_else(|error| panic!("rows of {}: {error}", table.name));
    let mut out = Vec::new();
    while let Some(row) = rows.next_row().unwrap() {
        out.push(decode(row));
    }
    out
}

fn decode(row: &[u8]) -> Vec<Option<String>> {
    salvage_copy::fields(row)
        .map(|field| {
            salvage_copy::decode(field).map(|value| {
                String::from_utf8(value.into_owned())
                    .unwrap_or_else(|error| panic!("a field is not UTF-8: {:?}", error.as_bytes()))
            })
        })
        .collect()
}

const LATIN1_SCHEMA: &str = r#"
CREATE TABLE "café" (
    id integer PRIMARY KEY,
    "größe_ÿ" text DEFAULT 'ÿ',
    note text
);
INSERT INTO "café" VALUES
    (1, 'é', 'plain'),
    (2, 'ß', E'tab\there'),
    (3, 'ÿ', E'back\\slash\nnew line'),
    (4, NULL, 'ascii only');
-- Every character LATIN1 has above ASCII, C1 controls included.
INSERT INTO "café"
    SELECT 5, string_agg(chr(code), '' ORDER BY code), 'all' FROM generate_series(128, 255) code;
CREATE TABLE "naïve" (
    "café_id" integer REFERENCES "café" (id),
    "Ünïcode" text
);
INSERT INTO "naïve" VALUES (1, 'Ø'), (5, 'x');
"#;

#[tokio::test]
async fn a_latin1_dump_reads_as_utf8_in_every_format() {
    let database = EncodedDatabase::create("latin1", "LATIN1").await;
    database.execute(LATIN1_SCHEMA).await;
    let expected = database
        .rows(r#"SELECT id::text, "größe_ÿ", note FROM "café" ORDER BY id"#)
        .await;
    assert_eq!(expected.len(), 5);
    assert_eq!(expected[2][1].as_deref(), Some("ÿ"));
    let every_char: String = (128..=255u32).filter_map(char::from_u32).collect();
    assert_eq!(
        expected[4][1].as_deref(),
        Some(every_char.as_str()),
        "the oracle"
    );

    let temp = tempfile::tempdir().unwrap();
    let cafe = QualifiedName::new("public", "café");
    let mut read = 0;
    for major in [15, 17, 18] {
        for (format, args) in [
            ("custom", &["-Fc"][..]),
            ("plain.sql", &["-Fp"][..]),
            ("directory", &["-Fd"][..]),
            ("tar", &["-Ft"][..]),
        ] {
            let path = temp.path().join(format!("{major}-{format}"));
            database.dump(major, args, &path);
            let what = format!("pg_dump {major} {format}");
            let archive =
                Archive::open(&path).unwrap_or_else(|error| panic!("{what}: open: {error}"));
            assert_eq!(archive.encoding(), Some(Encoding::Latin1), "{what}");

            // Names from the TOC: the data entries, their COPY columns, the schema.
            let table = archive
                .table(&cafe)
                .unwrap_or_else(|| panic!("{what}: no data for public.café"));
            assert_eq!(table.columns, ["id", "größe_ÿ", "note"], "{what}");
            let catalog = salvage_archive::schema::catalog(&archive)
                .unwrap_or_else(|error| panic!("{what}: schema: {error}"));
            let schema_table = catalog
                .table(&cafe)
                .unwrap_or_else(|| panic!("{what}: no table public.café in the schema"));
            let column = schema_table.column("größe_ÿ").expect("the column");
            assert_eq!(column.default.as_deref(), Some("'ÿ'::text"), "{what}");
            let naive = catalog
                .table(&QualifiedName::new("public", "naïve"))
                .unwrap_or_else(|| panic!("{what}: no table public.naïve"));
            assert_eq!(naive.foreign_keys[0].columns, ["café_id"], "{what}");
            assert_eq!(naive.foreign_keys[0].referenced_table, cafe, "{what}");

            // Rows: the same text the server gives a UTF-8 session, escapes untouched.
            let mut rows = decoded_rows(&archive, table);
            rows.sort_by_key(|row| row[0].clone().unwrap_or_default().parse::<i32>().ok());
            assert_eq!(rows, expected, "{what}");
            let raw: Vec<Vec<u8>> = archive
                .rows(table)
                .unwrap()
                .owned()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                raw.iter().any(|row| row == "2\tß\ttab\\there".as_bytes()),
                "{what}: {raw:?}"
            );
            assert!(
                raw.iter()
                    .any(|row| row == "3\tÿ\tback\\\\slash\\nnew line".as_bytes()),
                "{what}: {raw:?}"
            );
            let naive_data = archive
                .table(&QualifiedName::new("public", "naïve"))
                .expect("data of naïve");
            assert_eq!(naive_data.columns, ["café_id", "Ünïcode"], "{what}");
            let naive_rows = decoded_rows(&archive, naive_data);
            assert!(naive_rows.contains(&vec![Some("1".into()), Some("Ø".into())]));

            let json = serde_json::to_value(inspect(&archive, InspectOptions::default())).unwrap();
            assert_eq!(json["encoding"], "LATIN1", "{what}");

            // Read once, as from standard input (custom, tar and plain can be).
            if format != "directory" {
                let file = std::fs::File::open(&path).unwrap();
                let mut scanned = Vec::new();
                let summary = scan::<_, Error, _>("<stdin>", file, |data, rows| {
                    if data.name == cafe {
                        while let Some(row) = rows.next_row()? {
                            scanned.push(decode(row));
                        }
                    }
                    Ok(())
                })
                .unwrap_or_else(|error| panic!("{what}: scan: {error}"));
                assert_eq!(summary.encoding, Some(Encoding::Latin1), "{what}");
                assert!(summary.tables.iter().any(|data| data.name == cafe));
                scanned.sort_by_key(|row| row[0].clone().unwrap_or_default().parse::<i32>().ok());
                assert_eq!(scanned, expected, "{what}: scan");
            }
            read += 1;
        }
    }
    assert_eq!(read, 12);
}

#[tokio::test]
async fn a_sql_ascii_dump_passes_its_bytes_through() {
    let database = EncodedDatabase::create("sqlascii", "SQL_ASCII").await;
    // In SQL_ASCII, E'\351' is the byte 0xE9 itself, which no conversion touches.
    database
        .execute(
            "CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, E'caf\\351'), (2, 'ok');",
        )
        .await;
    let temp = tempfile::tempdir().unwrap();
    for (format, args) in [("custom", &["-Fc"][..]), ("plain.sql", &["-Fp"][..])] {
        let path = temp.path().join(format);
        database.dump(15, args, &path);
        let archive = Archive::open(&path).unwrap();
        assert_eq!(archive.encoding(), Some(Encoding::SqlAscii), "{format}");
        let table = archive.table(&QualifiedName::new("public", "t")).unwrap();
        let raw: Vec<Vec<u8>> = archive
            .rows(table)
            .unwrap()
            .owned()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(raw, [b"1\tcaf\xe9".to_vec(), b"2\tok".to_vec()], "{format}");
    }
}

#[tokio::test]
async fn dumps_in_other_encodings_are_refused_when_opened() {
    let temp = tempfile::tempdir().unwrap();
    let mut refused = 0;
    for (encoding, text) in [("WIN1251", "Привет"), ("EUC_JP", "日本語")] {
        let database = EncodedDatabase::create(&encoding.to_lowercase(), encoding).await;
        database
            .execute(&format!(
                "CREATE TABLE \"{text}\" (id int, v text); INSERT INTO \"{text}\" VALUES (1, '{text}');"
            ))
            .await;
        for (format, args) in [
            ("custom", &["-Fc"][..]),
            ("plain.sql", &["-Fp"][..]),
            ("directory", &["-Fd"][..]),
            ("tar", &["-Ft"][..]),
        ] {
            let path = temp.path().join(format!("{encoding}-{format}"));
            database.dump(15, args, &path);
            let what = format!("{encoding} {format}");
            let error = Archive::open(&path).expect_err(&what);
            assert!(
                matches!(&error, Error::UnsupportedEncoding { encoding: named, .. } if named == encoding),
                "{what}: {error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(encoding), "{what}: {message}");
            assert!(
                message.contains(&path.display().to_string()),
                "{what}: {message}"
            );
            assert!(message.contains("pg_dump --encoding=UTF8"), "{message}");
            assert!(message.contains("UTF-8 database"), "{message}");

            if format != "directory" {
                let file = std::fs::File::open(&path).unwrap();
                let mut visited = 0;
                let error = scan::<_, Error, _>("<stdin>", file, |_, _| {
                    visited += 1;
                    Ok(())
                })
                .expect_err(&what);
                assert!(
                    matches!(error, Error::UnsupportedEncoding { .. }),
                    "{what}: {error}"
                );
                assert_eq!(visited, 0, "{what}: refused before any table is read");
                let file = std::fs::File::open(&path).unwrap();
                let error = inspect_stream("<stdin>", file).expect_err(&what);
                assert!(error.to_string().contains(encoding), "{what}: {error}");
            }
            refused += 1;
        }
    }
    assert_eq!(refused, 8);
}
