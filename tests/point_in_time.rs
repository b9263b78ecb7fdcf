//! A responder restores the sites a script deleted from a physical base backup and its WAL
//! archive, replayed to the moment before the script ran: the sites come back with what
//! they wrote after the backup, and what everyone wrote after the script stays as it is.
//! Then the refusals: a target the WAL never reaches, a gap in the archive, a backup of a
//! major version whose binaries are not installed — and an instance kept up for a whole
//! incident with `salvage snapshot start` / `stop`.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use salvage_testkit::tracker_on;
use sqlx::Connection;
use support::archiving::{
    ArchivingCluster, STANZA, as_postgres, give_to_postgres, processes_under,
};
use support::{
    Run, TestDatabase, all_rows, assert_only_added, assert_same_rows, read_json, salvage_with_env,
    tracker_owned,
};

/// The sites the script deletes, and the users that went with two of them.
const VICTIMS: &str = "3, 7, 11";

/// After the backup, the victims keep working (new issues, comments, page views, renames),
/// and so does everyone else.
const WORK_AFTER_THE_BACKUP: &str = "
    INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
        SELECT s, 1, 1000 + n, 'filed after the backup', 1, now()
        FROM unnest(ARRAY[3, 7, 11]) AS s, generate_series(1, 3) AS n;
    INSERT INTO comments (issue_id, author_id, body, created_at)
        SELECT id, 2, 'a comment after the backup', now() FROM issues
        WHERE site_id IN (3, 7, 11) AND number > 1000;
    UPDATE issues SET title = 'renamed after the backup' WHERE site_id = 7 AND number <= 4;
    UPDATE sites SET name = 'Site 11, renamed after the backup' WHERE id = 11;
    INSERT INTO page_views (site_id, path, viewed_at)
        SELECT 3, '/after-the-backup/' || n, now() FROM generate_series(1, 4) AS n;
    INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
        VALUES (1, 1, 1000, 'written after the backup', 1, now());
    UPDATE comments SET body = body || ' (edited after the backup)' WHERE id % 11 = 0;
";

/// More work, in the next WAL segment, still before the script.
const MORE_WORK_BEFORE_THE_SCRIPT: &str = "
    INSERT INTO reactions (comment_id, user_id, emoji, reacted_at)
        SELECT id, 1, '🎉', now() FROM comments WHERE body = 'a comment after the backup';
    DELETE FROM comments WHERE id = (SELECT min(c.id) FROM comments c
        JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 3);
    INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
        VALUES (2, 1, 1001, 'written just before the script', 1, now());
";

/// The incident's script: three sites (their projects, issues, comments and reactions by
/// cascade, their page views by hand) and the users of two of them.
const THE_SCRIPT: &str = "
    DELETE FROM page_views WHERE site_id IN (3, 7, 11);
    DELETE FROM sites WHERE id IN (3, 7, 11);
    DELETE FROM users WHERE id IN (15, 16, 23, 24);
";

/// Everyone else goes on after the script.
const WORK_AFTER_THE_SCRIPT: &str = "
    INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
        VALUES (1, 1, 1002, 'written after the script', 1, now());
    UPDATE issues SET title = 'renamed after the script' WHERE site_id = 5;
    INSERT INTO sites (slug, name, plan_id, created_at) VALUES ('brand-new', 'A new customer', 2, now());
    DELETE FROM comments WHERE id = (SELECT min(c.id) FROM comments c
        JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 6);
";

/// salvage's temporary and state directories for one test: what is left in them afterwards
/// is what salvage left behind.
struct Scratch {
    tmp: PathBuf,
    runtime: PathBuf,
}

impl Scratch {
    fn new(root: &Path) -> Self {
        let scratch = Self {
            tmp: root.join("salvage-tmp"),
            runtime: root.join("salvage-run"),
        };
        std::fs::create_dir_all(&scratch.tmp).expect("mkdir");
        std::fs::create_dir_all(&scratch.runtime).expect("mkdir");
        scratch
    }

    fn salvage(&self, args: &[String]) -> Run {
        salvage_with_env(
            args,
            &[
                ("TMPDIR", self.tmp.to_str().expect("UTF-8")),
                ("XDG_RUNTIME_DIR", self.runtime.to_str().expect("UTF-8")),
            ],
        )
    }

    /// Runs `salvage ARGS --report FILE`, and reads the report.
    fn salvage_reporting(&self, args: &[String]) -> (Run, serde_json::Value) {
        let report = self.tmp.with_file_name("report.json");
        let _ = std::fs::remove_file(&report);
        let mut all = args.to_vec();
        all.extend(["--report".to_owned(), report.display().to_string()]);
        let run = self.salvage(&all);
        assert!(report.is_file(), "no report: {run}");
        (run, read_json(&report))
    }

    /// No recovery instance left: no directory, no state file, no process.
    fn assert_nothing_left(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.tmp)
            .expect("list the temporary directory")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        assert!(left.is_empty(), "salvage left {left:?} behind");
        let states = self.runtime.join("salvage/snapshots");
        let states: Vec<_> = std::fs::read_dir(&states)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .collect()
            })
            .unwrap_or_default();
        assert!(states.is_empty(), "state files left: {states:?}");
        let processes = processes_under(&self.tmp);
        assert!(processes.is_empty(), "processes left: {processes:?}");
    }
}

/// `restore` of the victims from `snapshot` into `live`.
fn restore_args(snapshot: &str, live: &TestDatabase, dbname: &str, more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "restore",
        "--snapshot",
        snapshot,
        "--snapshot-dbname",
        dbname,
        "--target",
        &live.url,
        "--root",
        "public.sites",
        "--tenant-column",
        "site_id",
        "--tenants",
        "3,7,11",
        "--yes",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(more.iter().map(|arg| (*arg).to_owned()));
    args
}

/// The victims in `restored` are exactly as in `expected` (the database as it was just
/// before the script, copied then), and nothing that was in `restored` before changed.
async fn assert_restored(
    expected: &TestDatabase,
    restored: &TestDatabase,
    before: &BTreeMap<String, Vec<String>>,
) {
    let mut rows = 0;
    for (table, filter) in tracker_owned(VICTIMS) {
        rows += assert_same_rows(expected, restored, table, &filter).await;
    }
    rows += assert_same_rows(expected, restored, "users", "id IN (15, 16, 23, 24)").await;
    let after = all_rows(restored).await;
    let added: usize = assert_only_added(before, &after).values().sum();
    assert_eq!(added as i64, rows, "added rows other than the victims'");
    // What the victims wrote after the backup is back.
    let late: i64 = restored
        .scalar("SELECT count(*) FROM issues WHERE title = 'filed after the backup'")
        .await;
    assert_eq!(late, 9);
    let renamed: String = restored
        .scalar("SELECT name FROM sites WHERE id = 11")
        .await;
    assert_eq!(renamed, "Site 11, renamed after the backup");
}

/// Compresses the archived segments from `first` on, alternately gzip and zstd, as an
/// archive command that compresses would have written them.
fn compress_archive(archive: &Path, first: &str) -> usize {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(archive)
        .expect("list the archive")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.len() == 24 && name >= first)
        })
        .collect();
    segments.sort();
    for (index, segment) in segments.iter().enumerate() {
        let bytes = std::fs::read(segment).expect("read a segment");
        let name = segment
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a name");
        if index % 2 == 0 {
            let file = std::fs::File::create(archive.join(format!("{name}.gz"))).expect("create");
            let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            encoder.write_all(&bytes).expect("compress");
            encoder.finish().expect("finish");
        } else {
            std::fs::write(
                archive.join(format!("{name}.zst")),
                zstd::encode_all(&bytes[..], 1).expect("compress"),
            )
            .expect("write");
        }
        std::fs::remove_file(segment).expect("remove the uncompressed segment");
    }
    give_to_postgres(archive);
    segments.len()
}

/// The script, in one transaction; its transaction ID.
async fn run_the_script(live: &TestDatabase) -> i64 {
    let mut connection = live.connect().await;
    let mut transaction = connection.begin().await.expect("begin");
    sqlx::raw_sql(THE_SCRIPT)
        .execute(&mut *transaction)
        .await
        .expect("the script");
    let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut *transaction)
        .await
        .expect("txid");
    transaction.commit().await.expect("commit");
    let _ = connection.close().await;
    xid
}

/// The stop time of the stanza's latest backup, from `pgbackrest info`.
fn pgbackrest_stop_time(config: &Path) -> f64 {
    let text = support::archiving::run(
        as_postgres("pgbackrest")
            .arg(format!("--config={}", config.display()))
            .arg(format!("--stanza={STANZA}"))
            .args(["--output=json", "info"]),
    );
    let info: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    info[0]["backup"]
        .as_array()
        .and_then(|backups| backups.last())
        .and_then(|backup| backup["timestamp"]["stop"].as_f64())
        .expect("a backup's stop time")
}

#[tokio::test]
async fn restores_deleted_sites_as_they_were_the_moment_before_the_script() {
    let cluster = ArchivingCluster::start("restore", true);
    let scratch = Scratch::new(&cluster.root);
    let live = tracker_on(&cluster.url, 30).await;

    // Last night's backups: pgBackRest, pg_basebackup plain and tar (gzip).
    cluster.pgbackrest_backup();
    let plain = cluster.base_backup("plain", &["-Fp", "-Xstream"]);
    let tar = cluster.base_backup("tar", &["-Ft", "-z", "-Xstream"]);
    assert!(tar.join("base.tar.gz").is_file() && tar.join("pg_wal.tar.gz").is_file());
    let first_after_backups = ArchivingCluster::current_segment(&live).await;

    // An hour of work in a few seconds, across WAL segments.
    live.execute(WORK_AFTER_THE_BACKUP).await;
    cluster.switch_wal(&live).await;
    live.execute(MORE_WORK_BEFORE_THE_SCRIPT).await;
    // pgBackRest picks its backup set by whole seconds: the target must be a second past it.
    let stop = pgbackrest_stop_time(cluster.pgbackrest_config.as_ref().expect("configured"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while live
        .scalar::<f64>("SELECT extract(epoch FROM now())::float8")
        .await
        < stop + 1.0
    {
        assert!(Instant::now() < deadline, "the clock does not move");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // What the victims held just before the script, copied independently of any WAL.
    let expected = live.snapshot("expected").await;
    let until: String = live.scalar("SELECT now()::text").await;
    let xid = run_the_script(&live).await;
    live.execute(WORK_AFTER_THE_SCRIPT).await;
    cluster.switch_wal(&live).await;
    let compressed = compress_archive(&cluster.archive, &first_after_backups);
    assert!(compressed >= 2, "{compressed} segments compressed");

    let before = all_rows(&live).await;
    let archive = cluster.archive.display().to_string();
    let xid_text = xid.to_string();
    let pgbackrest_config = cluster
        .pgbackrest_config
        .as_ref()
        .expect("configured")
        .display()
        .to_string();
    let plain_text = plain.display().to_string();
    let tar_text = tar.display().to_string();
    let pgbackrest = format!("pgbackrest:{STANZA}");
    let runs: [(&str, &str, Vec<&str>); 4] = [
        (
            "plain",
            &plain_text,
            vec!["--wal-archive", &archive, "--until", &until],
        ),
        (
            "tar",
            &tar_text,
            vec!["--wal-archive", &archive, "--until", &until],
        ),
        (
            "pgbackrest",
            &pgbackrest,
            vec!["--pgbackrest-config", &pgbackrest_config, "--until", &until],
        ),
        (
            "xid",
            &plain_text,
            vec!["--wal-archive", &archive, "--until-xid", &xid_text],
        ),
    ];
    for (name, snapshot, flags) in runs {
        let restored = live.snapshot(name).await;
        let clock = Instant::now();
        let (run, report) =
            scratch.salvage_reporting(&restore_args(snapshot, &restored, &live.name, &flags));
        assert_eq!(run.code, 0, "{name}: {run}");
        eprintln!("{name}: restored in {:.1}s", clock.elapsed().as_secs_f64());
        assert!(
            run.stdout.contains("Restored 3 of 3 tenants"),
            "{name}: {run}"
        );
        // The plan and the report say what the snapshot is and where replay stopped: before
        // the script's own commit.
        assert!(run.stdout.contains("backup    "), "{name}: {run}");
        assert!(
            run.stdout.contains("replayed  to WAL location"),
            "{name}: {run}"
        );
        let recovery = &report["recovery"];
        assert_eq!(recovery["backup"], serde_json::json!(snapshot), "{report}");
        assert!(
            recovery["label"].is_string() && recovery["start_time"].is_string(),
            "{report}"
        );
        let reason = recovery["stopped"]["reason"].as_str().expect("a reason");
        assert!(
            reason.starts_with(&format!("before commit of transaction {xid},")),
            "{name}: {reason}"
        );
        assert!(recovery["stopped"]["lsn"].is_string(), "{report}");
        assert_restored(&expected, &restored, &before).await;
        scratch.assert_nothing_left();
    }
}

#[tokio::test]
async fn refuses_targets_it_cannot_reach_and_keeps_an_instance_up_on_request() {
    let cluster = ArchivingCluster::start("refuse", false);
    let scratch = Scratch::new(&cluster.root);
    let live = tracker_on(&cluster.url, 12).await;
    let plain = cluster.base_backup("plain", &["-Fp", "-Xstream"]);
    live.execute(WORK_AFTER_THE_BACKUP).await;
    let gap_segment = ArchivingCluster::current_segment(&live).await;
    cluster.switch_wal(&live).await;
    live.execute(MORE_WORK_BEFORE_THE_SCRIPT).await;
    let until: String = live.scalar("SELECT now()::text").await;
    run_the_script(&live).await;
    live.execute(WORK_AFTER_THE_SCRIPT).await;
    let past_the_end: String = live
        .scalar("SELECT (now() + interval '1 hour')::text")
        .await;
    cluster.switch_wal(&live).await;
    let target = live.snapshot("target").await;
    let before = all_rows(&target).await;
    let archive = cluster.archive.display().to_string();
    let plain_text = plain.display().to_string();

    // A target after the end of the archive.
    let run = scratch.salvage(&restore_args(
        &plain_text,
        &target,
        &live.name,
        &["--wal-archive", &archive, "--until", &past_the_end],
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("replay did not reach"), "{run}");
    assert!(run.stderr.contains("last replayed WAL location"), "{run}");
    assert!(
        run.stderr
            .contains("last replayed transaction committed at 2"),
        "{run}"
    );
    scratch.assert_nothing_left();

    // A gap in the archive: the segment the work after the backup went into is missing.
    let gap = cluster.root.join("archive-with-a-gap");
    std::fs::create_dir(&gap).expect("mkdir");
    for entry in std::fs::read_dir(&cluster.archive)
        .expect("list")
        .filter_map(Result::ok)
    {
        if entry.file_name().to_string_lossy() != gap_segment {
            std::fs::copy(entry.path(), gap.join(entry.file_name())).expect("copy");
        }
    }
    give_to_postgres(&gap);
    let run = scratch.salvage(&restore_args(
        &plain_text,
        &target,
        &live.name,
        &[
            "--wal-archive",
            gap.to_str().expect("UTF-8"),
            "--until",
            &until,
        ],
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains(&format!("the WAL archive has no {gap_segment}")),
        "{run}"
    );
    scratch.assert_nothing_left();

    // A backup of PostgreSQL 14, whose binaries are not installed.
    let old = cluster.root.join("backups/pretends-to-be-14");
    support::archiving::run(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&plain)
            .arg(&old),
    );
    std::fs::write(old.join("PG_VERSION"), "14\n").expect("write PG_VERSION");
    let run = scratch.salvage(&restore_args(
        old.to_str().expect("UTF-8"),
        &target,
        &live.name,
        &["--wal-archive", &archive, "--until", &until],
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("PostgreSQL 14"), "{run}");
    assert!(run.stderr.contains("--pg-bin"), "{run}");
    scratch.assert_nothing_left();
    assert_eq!(
        all_rows(&target).await,
        before,
        "a refused run wrote something"
    );

    // Kept up for a whole incident: start, read, refuse writes, plan against it, stop.
    let dir = cluster.root.join("salvage-tmp/incident");
    let started = scratch.salvage(&[
        "snapshot".to_owned(),
        "start".to_owned(),
        "--from".to_owned(),
        plain_text.clone(),
        "--wal-archive".to_owned(),
        archive.clone(),
        "--until".to_owned(),
        until.clone(),
        "--snapshot-dbname".to_owned(),
        live.name.clone(),
        "--dir".to_owned(),
        dir.display().to_string(),
    ]);
    assert_eq!(started.code, 0, "{started}");
    let url = started.stdout.trim().to_owned();
    assert!(url.starts_with("postgresql:///"), "{started}");
    let mut connection = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to the recovery instance");
    let sites: i64 = sqlx::query_scalar("SELECT count(*) FROM sites WHERE id IN (3, 7, 11)")
        .fetch_one(&mut connection)
        .await
        .expect("read");
    assert_eq!(sites, 3, "the instance is from before the script");
    let write = sqlx::query("INSERT INTO plans (id, name, monthly_price) VALUES (99, 'x', 1)")
        .execute(&mut connection)
        .await
        .expect_err("a recovery instance refuses writes");
    assert!(
        write.to_string().contains("read-only transaction"),
        "{write}"
    );
    let _ = connection.close().await;
    let listed = scratch.salvage(&["snapshot".to_owned(), "list".to_owned()]);
    assert!(
        listed.stdout.contains(dir.to_str().expect("UTF-8")),
        "{listed}"
    );
    assert!(listed.stdout.contains("running"), "{listed}");

    let mut plan_args = restore_args(&url, &target, &live.name, &[]);
    plan_args[0] = "plan".to_owned();
    plan_args.retain(|arg| arg != "--yes");
    plan_args.drain(3..5); // no --snapshot-dbname for a URL
    let planned = scratch.salvage(&plan_args);
    assert_eq!(planned.code, 0, "{planned}");
    assert!(
        planned.stdout.contains("replayed  to WAL location"),
        "{planned}"
    );

    let stopped = scratch.salvage(&[
        "snapshot".to_owned(),
        "stop".to_owned(),
        "--dir".to_owned(),
        dir.display().to_string(),
    ]);
    assert_eq!(stopped.code, 0, "{stopped}");
    assert!(!dir.exists());
    scratch.assert_nothing_left();
    let listed = scratch.salvage(&["snapshot".to_owned(), "list".to_owned()]);
    assert!(listed.stdout.contains("No recovery instances"), "{listed}");
    assert_eq!(all_rows(&target).await, before);
}
