//! Helpers for the end-to-end scenarios: the salvage binary, the tracker scenario, and
//! checks written independently of salvage's own machinery (hand-written tenant filters,
//! typed comparisons in SQL, whole-database fingerprints).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

pub use salvage_testkit::{TestDatabase, rental, shapes, tracker};
use sqlx::Connection;

pub mod archiving;
pub mod rental_incident;

/// The result of running the salvage binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Runs `salvage ARGS --report FILE` and reads the report.
pub fn salvage_reporting<S: AsRef<str>>(args: &[S]) -> (Run, serde_json::Value) {
    let report = temp_path("report.json");
    let _ = std::fs::remove_file(&report);
    let mut all: Vec<String> = args.iter().map(|arg| arg.as_ref().to_owned()).collect();
    all.push("--report".to_owned());
    all.push(report.to_str().expect("a UTF-8 path").to_owned());
    let run = salvage(&all);
    let json = read_json(&report);
    (run, json)
}

/// A report's `summary.rows_inserted`.
pub fn rows_inserted(report: &serde_json::Value) -> i64 {
    report["summary"]["rows_inserted"]
        .as_i64()
        .unwrap_or_else(|| panic!("the report has no rows_inserted: {report}"))
}

/// Runs `salvage ARGS` with no terminal (stdin closed, output captured).
pub fn salvage<S: AsRef<str>>(args: &[S]) -> Run {
    salvage_with_stdin(args, Stdio::null())
}

/// Runs `salvage ARGS` reading `stdin` (a dump for `--snapshot -`).
pub fn salvage_with_stdin<S: AsRef<str>>(args: &[S], stdin: impl Into<Stdio>) -> Run {
    run_salvage(args, stdin, &[])
}

/// Runs `salvage ARGS` with no terminal and the environment variables `env` set (the
/// engine's test-only switches).
pub fn salvage_with_env<S: AsRef<str>>(args: &[S], env: &[(&str, &str)]) -> Run {
    run_salvage(args, Stdio::null(), env)
}

fn run_salvage<S: AsRef<str>>(args: &[S], stdin: impl Into<Stdio>, env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_salvage"))
        .args(args.iter().map(AsRef::as_ref))
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .stdin(stdin)
        .output()
        .expect("run the salvage binary");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A live database with the tracker fixture and a snapshot of it.
pub struct Scenario {
    pub live: TestDatabase,
    pub snapshot: TestDatabase,
}

impl Scenario {
    pub async fn tracker(sites: u32) -> Self {
        let live = tracker(sites).await;
        let snapshot = live.snapshot("snap").await;
        Self { live, snapshot }
    }

    /// `COMMAND --snapshot S --target L --root public.sites --tenant-column site_id --tenants IDS`.
    pub fn args(&self, command: &str, tenants: &str) -> Vec<String> {
        [
            command,
            "--snapshot",
            &self.snapshot.url,
            "--target",
            &self.live.url,
            "--root",
            "public.sites",
            "--tenant-column",
            "site_id",
            "--tenants",
            tenants,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// The shapes fixture's configuration: polymorphic comments, an excluded audit log, people
/// kept shared.
pub const SHAPES_CONFIG: &str = r#"
root = "public.accounts"
exclude = ["public.audit_log"]
shared = ["public.people"]

[[relations]]
from = "public.comments(owner_id)"
to = "public.docs(id)"
when = "owner_type = 'doc'"

[[relations]]
from = "public.comments(owner_id)"
to = "public.folders(id)"
when = "owner_type = 'folder'"
"#;

/// A live shapes database, a snapshot of it, and a salvage.toml naming both.
pub struct Shapes {
    pub live: TestDatabase,
    pub snapshot: TestDatabase,
    pub config: std::path::PathBuf,
}

impl Shapes {
    pub async fn new(accounts: u32) -> Self {
        let live = shapes(accounts).await;
        let snapshot = live.snapshot("shapes_snap").await;
        let config = temp_path(&format!("{}.toml", live.name));
        std::fs::write(
            &config,
            format!(
                "snapshot = \"{}\"\ntarget = \"{}\"\n{SHAPES_CONFIG}",
                snapshot.url, live.url
            ),
        )
        .expect("write salvage.toml");
        Self {
            live,
            snapshot,
            config,
        }
    }

    /// `COMMAND --config salvage.toml --tenants IDS`.
    pub fn args(&self, command: &str, tenants: &str) -> Vec<String> {
        [
            command,
            "--config",
            self.config.to_str().expect("a UTF-8 path"),
            "--tenants",
            tenants,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Deletes accounts as the incident's script would: the cascade takes their teams,
    /// folders, docs, versions, links and events; their comments (no FK) go by hand.
    pub async fn delete_accounts(&self, ids: &str) {
        self.live
            .execute(&format!(
                "DELETE FROM comments WHERE {}; DELETE FROM accounts WHERE id IN ({ids})",
                shapes_comments(ids)
            ))
            .await;
    }
}

fn shapes_comments(ids: &str) -> String {
    format!(
        "(owner_type = 'doc' AND owner_id IN (SELECT id FROM docs WHERE account_id IN ({ids}))) \
         OR (owner_type = 'folder' AND owner_id IN (SELECT f.id FROM folders f JOIN teams t ON t.id = f.team_id WHERE t.account_id IN ({ids})))"
    )
}

/// The shapes fixture's owned tables as SELECTs of the rows of accounts `ids`, written by
/// hand. Columns without equality (json) are selected as text.
pub fn shapes_owned(ids: &str) -> Vec<(&'static str, String)> {
    let docs = format!("SELECT id FROM docs WHERE account_id IN ({ids})");
    vec![
        (
            "accounts",
            format!("SELECT * FROM accounts WHERE id IN ({ids})"),
        ),
        (
            "teams",
            format!("SELECT * FROM teams WHERE account_id IN ({ids})"),
        ),
        (
            "folders",
            format!(
                "SELECT f.* FROM folders f JOIN teams t ON t.id = f.team_id WHERE t.account_id IN ({ids})"
            ),
        ),
        (
            "docs",
            format!("SELECT * FROM docs WHERE account_id IN ({ids})"),
        ),
        (
            "doc_versions",
            format!("SELECT * FROM doc_versions WHERE account_id IN ({ids})"),
        ),
        (
            "doc_links",
            format!("SELECT * FROM doc_links WHERE from_doc IN ({docs}) OR to_doc IN ({docs})"),
        ),
        (
            "events",
            format!(
                "SELECT account_id, at, kind, payload, meta::text AS meta, weight FROM events WHERE account_id IN ({ids})"
            ),
        ),
        (
            "comments",
            format!("SELECT * FROM comments WHERE {}", shapes_comments(ids)),
        ),
    ]
}

/// `host`, `port`, `user` and `dbname` of a test database URL (`postgres://user@host:port/db`).
pub fn url_parts(url: &str) -> (String, String, String, String) {
    let rest = url.split_once("://").expect("a URL").1;
    let (authority, path) = rest.split_once('/').expect("a database");
    let (user, host_port) = authority
        .rsplit_once('@')
        .map_or(("postgres", authority), |(user, host)| {
            (user.split(':').next().unwrap_or("postgres"), host)
        });
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
    let dbname = path.split('?').next().unwrap_or(path);
    (host.into(), port.into(), user.into(), dbname.into())
}

/// `args` followed by `more`.
pub fn with(args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.into_iter()
        .chain(more.iter().map(|arg| (*arg).to_owned()))
        .collect()
}

/// The tracker's owned tables with hand-written filters selecting the rows of sites `ids`
/// (a comma-separated list): written here, not derived from salvage's plan.
pub fn tracker_owned(ids: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sites", format!("id IN ({ids})")),
        ("projects", format!("site_id IN ({ids})")),
        ("issues", format!("site_id IN ({ids})")),
        (
            "comments",
            format!("issue_id IN (SELECT id FROM issues WHERE site_id IN ({ids}))"),
        ),
        (
            "reactions",
            format!(
                "comment_id IN (SELECT c.id FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id IN ({ids}))"
            ),
        ),
        ("page_views", format!("site_id IN ({ids})")),
    ]
}

/// Asserts that `table`'s rows matching `filter` are the same multiset in the snapshot and in
/// live, comparing typed values. Returns the row count.
pub async fn assert_same_rows(
    snapshot: &TestDatabase,
    live: &TestDatabase,
    table: &str,
    filter: &str,
) -> i64 {
    assert_same_result(
        snapshot,
        live,
        &format!("SELECT * FROM {table} WHERE {filter}"),
    )
    .await
}

/// Asserts that `select` gives the same multiset of rows in the snapshot and in live,
/// comparing typed values: the snapshot's rows are loaded into a temporary table of the
/// query's row type in live and compared with EXCEPT ALL both ways. Returns the row count.
pub async fn assert_same_result(snapshot: &TestDatabase, live: &TestDatabase, select: &str) -> i64 {
    let Comparison {
        expected,
        actual,
        missing,
        extra,
    } = compare_result(snapshot, live, select).await;
    assert_eq!(
        (missing, extra, actual),
        (0, 0, expected),
        "{select}: {missing} snapshot rows missing or different in live, {extra} live rows not in the snapshot"
    );
    // A comparison of no rows proves nothing: every caller compares rows that exist.
    assert!(expected > 0, "{select}: the comparison covered no rows");
    expected
}

/// How the rows of one query compare between two databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// Rows in the first database.
    pub expected: i64,
    /// Rows in the second.
    pub actual: i64,
    /// Rows of the first that the second lacks (as a multiset: EXCEPT ALL).
    pub missing: i64,
    /// Rows of the second that the first lacks.
    pub extra: i64,
}

/// Runs `select` in both databases and compares the results by typed value: `from`'s rows
/// are copied into a temporary table of the query's row type in `to` and compared with
/// EXCEPT ALL both ways.
pub async fn compare_result(from: &TestDatabase, to: &TestDatabase, select: &str) -> Comparison {
    let mut source = from.connect().await;
    let rows = copy_out(&mut source, &format!("COPY ({select}) TO STDOUT")).await;
    let _ = source.close().await;

    let mut target = to.connect().await;
    sqlx::raw_sql(&format!(
        "BEGIN; CREATE TEMPORARY TABLE expected ON COMMIT DROP AS {select} WITH NO DATA"
    ))
    .execute(&mut target)
    .await
    .expect("create the comparison table");
    let mut copy = target
        .copy_in_raw("COPY expected FROM STDIN")
        .await
        .expect("copy in");
    copy.send(rows.as_slice()).await.expect("send rows");
    copy.finish().await.expect("finish copy");
    let (expected, actual, missing, extra): (i64, i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM expected), (SELECT count(*) FROM ({select}) a), \
                (SELECT count(*) FROM (SELECT * FROM expected EXCEPT ALL {select}) m), \
                (SELECT count(*) FROM ({select} EXCEPT ALL SELECT * FROM expected) e)"
    ))
    .fetch_one(&mut target)
    .await
    .expect("compare rows");
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut target)
        .await
        .expect("rollback");
    let _ = target.close().await;
    Comparison {
        expected,
        actual,
        missing,
        extra,
    }
}

/// Every user table of `database`, as `schema.table`: partitioned tables by their parent
/// (their partitions are not listed again).
pub async fn user_tables(database: &TestDatabase) -> Vec<String> {
    database
        .strings(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'salvage') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
        )
        .await
}

/// Compares every user table of `actual` with the same table of `expected` by typed value,
/// EXCEPT ALL both ways (columns whose type has no equality, such as json, as text).
/// Asserts that both have the same tables and that no table differs, naming every one that
/// does; returns, per table, the number of rows compared, for the caller to check that the
/// comparison covered what it should.
pub async fn assert_same_database(
    expected: &TestDatabase,
    actual: &TestDatabase,
) -> BTreeMap<String, i64> {
    let tables = user_tables(expected).await;
    assert_eq!(
        user_tables(actual).await,
        tables,
        "{} and {} have different tables",
        expected.name,
        actual.name
    );
    let mut compared = BTreeMap::new();
    let mut differences = Vec::new();
    for table in tables {
        let columns = comparable_columns(expected, &table).await;
        let select = format!("SELECT {} FROM {table}", columns.join(", "));
        let comparison = compare_result(expected, actual, &select).await;
        if comparison.missing != 0 || comparison.extra != 0 {
            differences.push(format!(
                "{table}: {} rows expected, {} present; {} expected rows missing or different, {} present rows not expected",
                comparison.expected, comparison.actual, comparison.missing, comparison.extra
            ));
        }
        compared.insert(table, comparison.expected);
    }
    assert!(
        differences.is_empty(),
        "{} differs from {}:\n{}",
        actual.name,
        expected.name,
        differences.join("\n")
    );
    compared
}

/// `table`'s columns as a select list, each one the server cannot compare (no equality
/// operator: json, point…) cast to text. Found by asking the server to group by the column.
async fn comparable_columns(database: &TestDatabase, table: &str) -> Vec<String> {
    let names = database
        .strings(&format!(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = '{table}'::regclass \
             AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ))
        .await;
    let mut connection = database.connect().await;
    let mut columns = Vec::new();
    for name in names {
        let groups = sqlx::raw_sql(&format!("SELECT DISTINCT {name} FROM {table} LIMIT 0"))
            .execute(&mut connection)
            .await;
        columns.push(match groups {
            Ok(_) => name,
            Err(_) => format!("{name}::text AS {name}"),
        });
    }
    let _ = connection.close().await;
    columns
}

/// The number of rows of every user table.
pub async fn row_counts(database: &TestDatabase) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for table in user_tables(database).await {
        let count: i64 = database
            .scalar(&format!("SELECT count(*) FROM {table}"))
            .await;
        counts.insert(table, count);
    }
    counts
}

/// A sequence owned by a column (serial or identity), where it stands and the largest
/// value its column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencePosition {
    pub sequence: String,
    /// `schema.table.column`.
    pub column: String,
    pub last_value: i64,
    /// None when the table is empty.
    pub column_max: Option<i64>,
}

/// Every sequence owned by a column of `database`, by name.
pub async fn sequence_positions(database: &TestDatabase) -> BTreeMap<String, SequencePosition> {
    let mut connection = database.connect().await;
    let owned: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', sn.nspname, s.relname), format('%I.%I', tn.nspname, t.relname), quote_ident(a.attname) \
         FROM pg_depend d \
         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace \
         JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
           AND d.deptype IN ('a', 'i') AND sn.nspname <> 'salvage' ORDER BY 1",
    )
    .fetch_all(&mut connection)
    .await
    .expect("list the sequences owned by columns");
    let mut positions = BTreeMap::new();
    for (sequence, table, column) in owned {
        let (last_value, column_max): (i64, Option<i64>) = sqlx::query_as(&format!(
            "SELECT (SELECT last_value FROM {sequence}), (SELECT max({column})::int8 FROM {table})"
        ))
        .fetch_one(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("read {sequence}: {error}"));
        positions.insert(
            sequence.clone(),
            SequencePosition {
                sequence,
                column: format!("{table}.{column}"),
                last_value,
                column_max,
            },
        );
    }
    let _ = connection.close().await;
    positions
}

/// Every row of every user table, as text, for before/after comparisons.
pub async fn all_rows(database: &TestDatabase) -> BTreeMap<String, Vec<String>> {
    let tables = user_tables(database).await;
    let mut rows = BTreeMap::new();
    for table in tables {
        let texts = database
            .strings(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
            .await;
        rows.insert(table, texts);
    }
    rows
}

/// Asserts nothing of `before` was changed or removed in `after`; returns how many rows were
/// added, per table.
pub fn assert_only_added(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, usize> {
    let mut added = BTreeMap::new();
    for (table, rows_before) in before {
        let rows_after = after
            .get(table)
            .unwrap_or_else(|| panic!("{table} disappeared"));
        let mut remaining: BTreeMap<&str, i64> = BTreeMap::new();
        for row in rows_after {
            *remaining.entry(row).or_default() += 1;
        }
        for row in rows_before {
            let count = remaining.entry(row).or_default();
            assert!(
                *count > 0,
                "{table}: a row that existed before the restore was changed or removed: {row}"
            );
            *count -= 1;
        }
        added.insert(table.clone(), rows_after.len() - rows_before.len());
    }
    added
}

/// The pg_dump (or pg_restore) of a PostgreSQL major version: 15 from the system, 17 and 18
/// from the PyPI wheels `scripts/pg-wheels.sh` installs (`scripts/test.sh` runs it).
pub fn pg_tool(major: u32, tool: &str) -> std::path::PathBuf {
    let candidates: Vec<std::path::PathBuf> = if major == 15 {
        ["/usr/lib/postgresql/15/bin", "/usr/bin"]
            .iter()
            .map(|dir| Path::new(dir).join(tool))
            .collect()
    } else {
        vec![salvage_testkit::repo_root().join(format!("target/pg-wheels/{major}/bin/{tool}"))]
    };
    // The tool must exist and be of that major version: a test of pg_dump 15's archives
    // that ran another pg_dump would prove nothing about them.
    for path in &candidates {
        let Ok(output) = Command::new(path).arg("--version").output() else {
            continue;
        };
        let version = String::from_utf8_lossy(&output.stdout);
        if output.status.success() && version.contains(&format!(" {major}.")) {
            return path.clone();
        }
    }
    panic!(
        "{tool} of PostgreSQL {major} is missing (looked at {}): install PostgreSQL {major}'s client, or run scripts/pg-wheels.sh (scripts/test.sh does) for 17 and 18",
        candidates
            .iter()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Runs pg_dump `major` on `database` with `args`, writing to `output` (through a pipe when
/// `piped`, as `pg_dump -Fc | cat > file` does: the archive then has no data offsets).
pub fn pg_dump(major: u32, database: &TestDatabase, args: &[&str], output: &Path, piped: bool) {
    let mut command = Command::new(pg_tool(major, "pg_dump"));
    command.args(args).arg("--no-owner").arg(&database.url);
    let status = if piped {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("run pg_dump");
        let mut stdout = child.stdout.take().expect("pg_dump's stdout");
        let mut file = std::fs::File::create(output).expect("create the dump file");
        std::io::copy(&mut stdout, &mut file).expect("copy pg_dump's output");
        child.wait().expect("wait for pg_dump")
    } else {
        command.arg("-f").arg(output).status().expect("run pg_dump")
    };
    assert!(status.success(), "pg_dump {major} {args:?} failed");
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    serde_json::from_str(&text).expect("the report is JSON")
}

/// A path for a test's output file.
pub fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("salvage-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir.join(name)
}

/// Collects a `COPY ... TO STDOUT` into memory (test data is small).
async fn copy_out(connection: &mut sqlx::postgres::PgConnection, statement: &str) -> Vec<u8> {
    use futures_util::StreamExt;

    let mut stream = connection.copy_out_raw(statement).await.expect("copy out");
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("read copy data"));
    }
    bytes
}
