//! pg_dump archives as snapshots: every format and compression the real pg_dump writes (15
//! from the system, 17 and 18 from PyPI wheels), from a file, a directory, a pipe-written
//! file or standard input, restores exactly what the snapshot database itself restores.

mod support;

use std::path::PathBuf;

use support::{
    Run, Scenario, Shapes, TestDatabase, all_rows, pg_dump, salvage, salvage_with_stdin, temp_path,
    with,
};

/// One way of giving salvage a dump of the snapshot.
struct Variant {
    name: &'static str,
    major: u32,
    args: &'static [&'static str],
    piped: bool,
    stdin: bool,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "custom-15-gzip",
        major: 15,
        args: &["-Fc"],
        piped: false,
        stdin: false,
    },
    Variant {
        name: "custom-15-none",
        major: 15,
        args: &["-Fc", "-Z0"],
        piped: false,
        stdin: false,
    },
    Variant {
        name: "custom-15-piped",
        major: 15,
        args: &["-Fc"],
        piped: true,
        stdin: false,
    },
    Variant {
        name: "directory-15",
        major: 15,
        args: &["-Fd", "-j2"],
        piped: false,
        stdin: false,
    },
    Variant {
        name: "tar-15",
        major: 15,
        args: &["-Ft"],
        piped: false,
        stdin: false,
    },
    Variant {
        name: "plain-15.sql",
        major: 15,
        args: &["-Fp"],
        piped: false,
        stdin: false,
    },
    Variant {
        name: "custom-17-lz4",
        major: 17,
        args: &["-Fc", "--compress=lz4"],
        piped: false,
        stdin: false,
    },
    Variant {
        name: "directory-17-zstd",
        major: 17,
        args: &["-Fd", "--compress=zstd"],
        piped: false,
        stdin: false,
    },
    Variant {
        name: "custom-17-zstd-piped",
        major: 17,
        args: &["-Fc", "--compress=zstd"],
        piped: true,
        stdin: false,
    },
    // The pg_dump 18 wheel is built without lz4 and zstd.
    Variant {
        name: "custom-18-gzip9",
        major: 18,
        args: &["-Fc", "--compress=gzip:9"],
        piped: false,
        stdin: false,
    },
    Variant {
        name: "plain-18.sql",
        major: 18,
        args: &["-Fp"],
        piped: false,
        stdin: false,
    },
    Variant {
        name: "stdin-custom-18",
        major: 18,
        args: &["-Fc"],
        piped: false,
        stdin: true,
    },
    Variant {
        name: "stdin-plain-15",
        major: 15,
        args: &["-Fp"],
        piped: false,
        stdin: true,
    },
];

/// Restores into a fresh copy of the incident's live database; returns the copy.
async fn restore_copy(
    incident: &TestDatabase,
    args: &[String],
    stdin: Option<&PathBuf>,
) -> (TestDatabase, Run) {
    let target = incident.snapshot("run").await;
    let mut args = args.to_vec();
    let position = args
        .iter()
        .position(|arg| arg == "--target")
        .expect("--target")
        + 1;
    args[position].clone_from(&target.url);
    let run = match stdin {
        Some(path) => salvage_with_stdin(&args, std::fs::File::open(path).expect("open the dump")),
        None => salvage(&args),
    };
    (target, run)
}

fn with_snapshot(args: &[String], snapshot: &str) -> Vec<String> {
    let mut args = args.to_vec();
    let position = args
        .iter()
        .position(|arg| arg == "--snapshot")
        .expect("--snapshot")
        + 1;
    snapshot.clone_into(&mut args[position]);
    args
}

/// For each variant: dump the snapshot database, restore from the dump into a copy of the
/// incident, and compare the whole live database with the database snapshot's result.
async fn every_variant_matches(snapshot: &TestDatabase, incident: &TestDatabase, args: &[String]) {
    let (reference, run) = restore_copy(incident, args, None).await;
    assert_eq!(run.code, 0, "restore from the snapshot database: {run}");
    let expected = all_rows(&reference).await;
    for variant in VARIANTS {
        let path = temp_path(&format!("{}-{}", snapshot.name, variant.name));
        pg_dump(variant.major, snapshot, variant.args, &path, variant.piped);
        let source = if variant.stdin {
            "-".to_owned()
        } else {
            path.to_string_lossy().into_owned()
        };
        let (target, run) = restore_copy(
            incident,
            &with_snapshot(args, &source),
            variant.stdin.then_some(&path),
        )
        .await;
        assert_eq!(run.code, 0, "{}: {run}", variant.name);
        assert_eq!(
            all_rows(&target).await,
            expected,
            "{}: live differs from the database snapshot's result",
            variant.name
        );
    }
    // No memory for keys: every key map the filter builds goes to disk, and the result is
    // the same.
    let path = temp_path(&format!("{}-{}", snapshot.name, VARIANTS[0].name));
    let mut spilled = with_snapshot(args, path.to_str().unwrap());
    spilled.extend(["--key-memory".to_owned(), "0".to_owned(), "-v".to_owned()]);
    let (target, run) = restore_copy(incident, &spilled, None).await;
    assert_eq!(run.code, 0, "keys on disk: {run}");
    assert!(run.stderr.contains("kept keys on disk"), "{run}");
    assert_eq!(
        all_rows(&target).await,
        expected,
        "keys on disk: live differs from the database snapshot's result"
    );
}

#[tokio::test]
async fn every_archive_format_restores_what_the_snapshot_database_restores() {
    let scenario = Scenario::tracker(12).await;
    scenario
        .live
        .execute(
            "DELETE FROM page_views WHERE site_id IN (3, 7, 11); DELETE FROM sites WHERE id IN (3, 7, 11);
             DELETE FROM users WHERE id IN (15, 16, 23, 24);
             INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
                 VALUES (1, 1, 1000, 'written after the snapshot', 1, now());",
        )
        .await;
    let args = with(scenario.args("restore", "3,7,11"), &["--yes"]);
    every_variant_matches(&scenario.snapshot, &scenario.live, &args).await;
}

#[tokio::test]
async fn hard_shapes_restore_from_archives_as_from_the_database() {
    let shapes = Shapes::new(6).await;
    shapes.delete_accounts("2, 3, 5").await;
    let args = with(
        shapes.args("restore", "2,3,5"),
        &[
            "--snapshot",
            &shapes.snapshot.url,
            "--target",
            &shapes.live.url,
            "--yes",
        ],
    );
    every_variant_matches(&shapes.snapshot, &shapes.live, &args).await;
}

#[tokio::test]
async fn a_damaged_archive_is_refused_naming_the_file_and_offset_and_nothing_is_written() {
    let scenario = Scenario::tracker(8).await;
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id = 3; DELETE FROM sites WHERE id = 3")
        .await;
    let dump = temp_path(&format!("{}-damaged.dump", scenario.live.name));
    pg_dump(15, &scenario.snapshot, &["-Fc", "-Z0"], &dump, false);
    let bytes = std::fs::read(&dump).unwrap();
    let before = all_rows(&scenario.live).await;

    // Cut off in the middle of the table data.
    let truncated = temp_path(&format!("{}-truncated.dump", scenario.live.name));
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let run = salvage(&with_snapshot(
        &with(scenario.args("restore", "3"), &["--yes"]),
        truncated.to_str().unwrap(),
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(truncated.to_str().unwrap()),
        "names the file: {run}"
    );
    assert!(run.stderr.contains("at byte"), "names the offset: {run}");
    assert_eq!(all_rows(&scenario.live).await, before);

    // Not an archive at all.
    let garbage = temp_path(&format!("{}-garbage.dump", scenario.live.name));
    std::fs::write(&garbage, b"PGDMP\x01\x0e\x00\x04\x08\x01garbage").unwrap();
    let run = salvage(&with_snapshot(
        &with(scenario.args("restore", "3"), &["--yes"]),
        garbage.to_str().unwrap(),
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains(garbage.to_str().unwrap()), "{run}");
    assert_eq!(all_rows(&scenario.live).await, before);
}

#[tokio::test]
async fn inspect_shows_what_an_archive_holds() {
    let scenario = Scenario::tracker(4).await;
    let dump = temp_path(&format!("{}-inspect.dump", scenario.live.name));
    pg_dump(
        17,
        &scenario.snapshot,
        &["-Fc", "--compress=lz4"],
        &dump,
        false,
    );
    let run = salvage(&["inspect", dump.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run}");
    for needle in [
        "custom (archive version 1.16.0)",
        "compression lz4",
        "pg_dump     17.",
        "public.issues(site_id, project_no) → public.projects(site_id, project_no)",
    ] {
        assert!(run.stdout.contains(needle), "{needle:?} in {run}");
    }
    let json = salvage(&["inspect", dump.to_str().unwrap(), "--format", "json"]);
    assert_eq!(json.code, 0, "{json}");
    let inspection: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let comments = inspection["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|table| table["name"]["name"] == "comments")
        .unwrap();
    let expected: i64 = scenario
        .snapshot
        .scalar("SELECT count(*) FROM comments")
        .await;
    assert_eq!(comments["rows"], expected);
}

/// Sites 1–3 and their pages; site 3's pages 31–33 hang under site 2's home page, three levels
/// deep, each written (and dumped) before its parent.
async fn children_first_tree() -> TestDatabase {
    let snapshot = TestDatabase::create("tree-snapshot").await;
    snapshot
        .execute(
            "CREATE TABLE sites (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE pages (
                 id int PRIMARY KEY,
                 site_id int NOT NULL REFERENCES sites ON DELETE CASCADE,
                 parent_id int REFERENCES pages ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
                 title text NOT NULL);
             BEGIN;
             INSERT INTO sites VALUES (1, 'one'), (2, 'two'), (3, 'three');
             INSERT INTO pages VALUES
                 (33, 3, 32, 'three levels under two''s home'),
                 (32, 3, 31, 'two levels under two''s home'),
                 (31, 3, 10, 'under two''s home'),
                 (10, 2, NULL, 'two''s home'),
                 (11, 2, 10, 'two''s child'),
                 (20, 1, NULL, 'one''s home'),
                 (21, 3, NULL, 'three''s home');
             COMMIT;",
        )
        .await;
    snapshot
}

/// A page tree written children first: in the dump each of site 3's pages under site 2's home
/// page comes before its parent, so which of them site 2 reaches is known only after its
/// children were read. Site 2's restore from the dump must bring all of them back, as the
/// database snapshot's does.
#[tokio::test]
async fn a_tree_whose_children_come_before_their_parents_in_the_dump_restores_whole() {
    let snapshot = children_first_tree().await;
    let order: String = snapshot
        .scalar("SELECT string_agg(id::text, ',' ORDER BY ctid) FROM pages")
        .await;
    assert_eq!(
        order, "33,32,31,10,11,20,21",
        "the order pg_dump writes the pages in"
    );
    let incident = snapshot.snapshot("tree-incident").await;
    incident.execute("DELETE FROM sites WHERE id = 2").await;
    let left: i64 = incident.scalar("SELECT count(*) FROM pages").await;
    assert_eq!(
        left, 2,
        "the cascade took site 2's pages and the ones under them"
    );
    let args = vec![
        "restore".to_owned(),
        "--snapshot".to_owned(),
        snapshot.url.clone(),
        "--target".to_owned(),
        incident.url.clone(),
        "--root".to_owned(),
        "public.sites".to_owned(),
        "--tenants".to_owned(),
        "2".to_owned(),
        "--yes".to_owned(),
    ];
    let (reference, run) = restore_copy(&incident, &args, None).await;
    assert_eq!(run.code, 0, "restore from the snapshot database: {run}");
    let expected = all_rows(&reference).await;
    assert_eq!(
        expected,
        all_rows(&snapshot).await,
        "the database snapshot's result"
    );
    let path = temp_path("tree-custom");
    pg_dump(15, &snapshot, &["-Fc"], &path, false);
    let (target, run) = restore_copy(
        &incident,
        &with_snapshot(&args, path.to_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(run.code, 0, "restore from the dump: {run}");
    assert_eq!(
        all_rows(&target).await,
        expected,
        "live after the dump's restore"
    );
}

/// The completeness walk reads a tree from a dump in rounds, the later ones from the fields
/// its first pass kept: with a planner that follows one chain per table (a debug switch), it
/// must still find every page site 2 reaches and fail the run naming them.
#[tokio::test]
async fn the_walk_over_a_dump_finds_the_tree_a_one_chain_planner_misses() {
    let snapshot = children_first_tree().await;
    let incident = snapshot.snapshot("tree-incident").await;
    incident.execute("DELETE FROM sites WHERE id = 2").await;
    let path = temp_path("tree-walk-custom");
    pg_dump(15, &snapshot, &["-Fc"], &path, false);
    for source in [snapshot.url.clone(), path.to_string_lossy().into_owned()] {
        let target = incident.snapshot("tree-walk-run").await;
        let report = temp_path("tree-walk-report.json");
        let run = support::salvage_with_env(
            &[
                "restore",
                "--snapshot",
                &source,
                "--target",
                &target.url,
                "--root",
                "public.sites",
                "--tenants",
                "2",
                "--yes",
                "--report",
                report.to_str().unwrap(),
            ],
            &[("SALVAGE_DEBUG_MEMBERSHIP", "first-chain-only")],
        );
        assert_eq!(
            run.code, 1,
            "{source}: the walk must find what was left behind: {run}"
        );
        let report = support::read_json(&report);
        let pages = &report["tenants"][0]["tables"]["public.pages"];
        // Checked: the pages the plan holds and those the walk found left behind — the 5 site
        // 2 reaches, of which at least 31–33 only through their parents.
        assert_eq!(pages["snapshot"], 5, "{source}: {pages}");
        let left = pages["left_behind"]
            .as_u64()
            .unwrap_or_else(|| panic!("{source}: no left_behind for pages: {pages}"));
        assert!(left >= 3, "{source}: {pages}");
        assert_eq!(pages["missing"], left, "{source}: {pages}");
    }
}
