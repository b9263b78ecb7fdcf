//! The inspection summary of a dump: header facts, row counts, FK graph.

mod support;

use salvage_archive::inspect::{InspectOptions, inspect, inspect_stream};
use salvage_archive::{Archive, Compression, Encoding, Format};
use support::fixture;

#[test]
fn inspects_an_archive_with_row_counts_and_the_fk_graph() {
    let archive = Archive::open(fixture("pg17/custom-zstd.dump")).unwrap();
    let summary = inspect(&archive, InspectOptions { count_rows: true });
    assert_eq!(summary.format, Format::Custom);
    assert_eq!(summary.archive_version.as_deref(), Some("1.16.0"));
    assert_eq!(summary.compression, Compression::Zstd);
    assert_eq!(summary.pg_dump_version.as_deref(), Some("17.10"));
    assert!(
        summary
            .server_version
            .as_deref()
            .unwrap()
            .starts_with("15.18")
    );
    assert_eq!(summary.database.as_deref(), Some("tracker_fixture"));
    assert_eq!(summary.encoding, Some(Encoding::Utf8));
    assert!(summary.dump_time.unwrap().year >= 2025);
    assert!(summary.schema_error.is_none());
    let bulk = summary
        .tables
        .iter()
        .find(|t| t.name.name == "bulk")
        .unwrap();
    assert_eq!(bulk.rows, Some(300));
    assert!(bulk.text_bytes.unwrap() > 10_000);
    assert!(bulk.stored_bytes.unwrap() < bulk.text_bytes.unwrap());
    assert!(
        summary
            .tables
            .iter()
            .all(|t| t.error.is_none() && t.rows.is_some())
    );
    assert!(
        summary
            .foreign_keys
            .iter()
            .any(|edge| edge.from.name == "reactions" && edge.to.name == "comments")
    );
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["compression"]["algorithm"], "zstd");
    assert_eq!(json["encoding"], "UTF8");

    let old = Archive::open(fixture("pg15/custom-gzip1.dump")).unwrap();
    let summary = inspect(&old, InspectOptions::default());
    assert_eq!(summary.compression, Compression::Gzip { level: Some(1) });
    assert_eq!(summary.archive_version.as_deref(), Some("1.14.0"));
    assert!(summary.tables.iter().all(|t| t.rows.is_none()));
}

#[test]
fn inspects_a_stream_and_an_inserts_dump() {
    let file = std::fs::File::open(fixture("pg18/plain.sql.gz")).unwrap();
    let summary = inspect_stream("<stdin>", file).unwrap();
    assert_eq!(summary.format, Format::Plain);
    assert_eq!(summary.pg_dump_version.as_deref(), Some("18.6"));
    assert_eq!(
        summary.encoding,
        Some(Encoding::Utf8),
        "from SET client_encoding"
    );
    let bulk = summary
        .tables
        .iter()
        .find(|t| t.name.name == "bulk")
        .unwrap();
    assert_eq!(bulk.rows, Some(300));
    assert!(!summary.foreign_keys.is_empty());

    let archive = Archive::open(fixture("pg17/custom-inserts.dump")).unwrap();
    let summary = inspect(&archive, InspectOptions { count_rows: true });
    let sites = summary
        .tables
        .iter()
        .find(|t| t.name.name == "sites")
        .unwrap();
    assert!(!sites.copy);
    assert!(sites.error.as_deref().unwrap().contains("--inserts"));
}
