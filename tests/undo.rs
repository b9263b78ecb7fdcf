//! `salvage undo`: a restore run is reverted tenant by tenant from the row images its journal
//! kept, back to the database as it was before the run (compared table by table, EXCEPT ALL
//! both ways); a row someone changed after the run refuses its tenant (unless `--force`);
//! a second undo writes nothing; bad input is refused before any write; a journal of layout
//! 1 is upgraded by the next restore.
//!
//! Until the restore writes row images itself (the overwrite/exact work), the tests record
//! the images of what it inserted the way the restore will — after the fact, and only when
//! the run has none ([`record_inserts`]) — and play the part of an overwrite (updates) and
//! an exact restore (deletes) in one transaction that changes live rows and records their
//! images, as the contract says a restore does ([`overwrite_and_delete`]). The test marked
//! NEEDS RESTORE IMAGES asserts that the restore recorded its own.

mod support;

use std::collections::BTreeMap;

use sqlx::Connection;
use support::{
    Scenario, TestDatabase, all_rows, assert_same_database, row_counts, salvage, salvage_reporting,
    tracker_owned, with,
};

/// The tracker's owned tables in restore order (parents first) with their key columns and
/// key expressions, for images written by hand.
const TRACKER_KEYS: [(&str, &str, &str); 6] = [
    ("sites", "{id}", "ARRAY[t.id::text]"),
    (
        "projects",
        "{site_id,project_no}",
        "ARRAY[t.site_id::text, t.project_no::text]",
    ),
    ("issues", "{id}", "ARRAY[t.id::text]"),
    ("comments", "{id}", "ARRAY[t.id::text]"),
    (
        "reactions",
        "{comment_id,user_id,emoji}",
        "ARRAY[t.comment_id::text, t.user_id::text, t.emoji::text]",
    ),
    ("page_views", "{id}", "ARRAY[t.id::text]"),
];

/// Deletes sites `ids` from live with every row they own, children first.
async fn delete_sites(live: &TestDatabase, ids: &str) {
    let mut statements: Vec<String> = tracker_owned(ids)
        .into_iter()
        .rev()
        .map(|(table, filter)| format!("DELETE FROM {table} WHERE {filter};"))
        .collect();
    statements.insert(0, "BEGIN;".to_owned());
    statements.push("COMMIT;".to_owned());
    live.execute(&statements.join("\n")).await;
}

/// Damages site 3 as a bad script would: a third of its comments gone (with their
/// reactions, by the cascade).
const DAMAGED_COMMENTS: &str =
    "id % 3 = 0 AND issue_id IN (SELECT id FROM issues WHERE site_id = 3)";

/// `salvage restore` of `tenants` with `--yes`: the run's ID.
fn restore(scenario: &Scenario, tenants: &str) -> String {
    let (run, report) = salvage_reporting(&with(scenario.args("restore", tenants), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    report["run"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the restore report has no run: {report}"))
        .to_owned()
}

/// `salvage undo --target L --run ID MORE… --report FILE`, and the report.
fn undo(live: &TestDatabase, run: &str, more: &[&str]) -> (support::Run, serde_json::Value) {
    let report = support::temp_path("undo-report.json");
    let _ = std::fs::remove_file(&report);
    let path = report.to_str().expect("a UTF-8 path");
    let mut args: Vec<&str> = vec![
        "undo", "--target", &live.url, "--run", run, "--report", path,
    ];
    args.extend_from_slice(more);
    let outcome = salvage(&args);
    assert!(report.exists(), "no report was written:\n{outcome}");
    let json = support::read_json(&report);
    (outcome, json)
}

/// `salvage undo --target L --run ID MORE…` that is expected to write nothing (and no
/// report: bad input ends before one).
fn undo_refused(live: &TestDatabase, run: &str, more: &[&str]) -> support::Run {
    let args = with(
        ["undo", "--target", &live.url, "--run", run]
            .map(str::to_owned)
            .to_vec(),
        more,
    );
    salvage(&args)
}

/// The position of `tenant` in `run`.
async fn position(live: &TestDatabase, run: &str, tenant: &str) -> i32 {
    live.scalar(&format!(
        "SELECT position FROM salvage.run_tenants WHERE run_id = '{run}' AND tenant = '{tenant}'"
    ))
    .await
}

/// Records `insert` images of the rows of `(table, filter)`s, steps in that order, for the
/// tenant `tenant` of `run` — unless the run's restore recorded images for the tenant itself
/// (once it does, its own are what undo uses). Returns whether it recorded any.
async fn record_inserts(
    live: &TestDatabase,
    run: &str,
    tenant: &str,
    rows: &[(&str, String)],
) -> bool {
    let position = position(live, run, tenant).await;
    let recorded: i64 = live
        .scalar(&format!(
            "SELECT count(*) FROM salvage.row_images WHERE run_id = '{run}' AND position = {position}"
        ))
        .await;
    if recorded > 0 {
        return false;
    }
    let mut statements = vec!["BEGIN;".to_owned()];
    for (step, (table, filter)) in rows.iter().enumerate() {
        let (_, key_columns, key) = key_of(table);
        statements.push(format!(
            "INSERT INTO salvage.row_images (run_id, position, step, table_schema, table_name, key_columns, key, action, after_md5) \
             SELECT '{run}', {position}, {step}, 'public', '{table}', '{key_columns}', {key}, 'insert', md5(to_json(t.*)::text) \
             FROM {table} t WHERE {filter} ORDER BY 1;",
            step = step + 1
        ));
    }
    statements.push("COMMIT;".to_owned());
    live.execute(&statements.join("\n")).await;
    true
}

fn key_of(table: &str) -> (&'static str, &'static str, &'static str) {
    TRACKER_KEYS
        .iter()
        .copied()
        .find(|(name, _, _)| *name == table)
        .unwrap_or_else(|| panic!("no key for {table}"))
}

/// Every owned row of the deleted site `id`: what its restore inserted.
fn whole_site(id: &str) -> Vec<(&'static str, String)> {
    tracker_owned(id)
}

/// What the restore of the damaged site 3 inserted: its missing comments and their reactions.
fn damaged_site_rows() -> Vec<(&'static str, String)> {
    vec![
        ("comments", DAMAGED_COMMENTS.to_owned()),
        (
            "reactions",
            format!("comment_id IN (SELECT id FROM comments WHERE {DAMAGED_COMMENTS})"),
        ),
    ]
}

/// Plays an overwrite and an exact restore of tenant `tenant` in one transaction, as the
/// restore will: each issue matching `updated` gets a new title, each page view matching
/// `deleted` is deleted, and their images (saved row before, md5 of the row after) are
/// recorded in the same transaction, in steps after the tenant's others. Returns (updated,
/// deleted).
async fn overwrite_and_delete(
    live: &TestDatabase,
    run: &str,
    tenant: &str,
    updated: &str,
    deleted: &str,
) -> (i64, i64) {
    let position = position(live, run, tenant).await;
    let mut connection = live.connect().await;
    let mut transaction = connection.begin().await.expect("begin");
    let step: i32 = sqlx::query_scalar(
        "SELECT coalesce(max(step), 0) + 1 FROM salvage.row_images WHERE run_id = $1 AND position = $2",
    )
    .bind(run)
    .bind(position)
    .fetch_one(&mut *transaction)
    .await
    .expect("next step");
    let images = |action: &str, table: &str, filter: &str, step: i32, columns: &str| {
        let (_, key_columns, key) = key_of(table);
        format!(
            "INSERT INTO salvage.row_images (run_id, position, step, table_schema, table_name, key_columns, key, action, columns, before) \
             SELECT '{run}', {position}, {step}, 'public', '{table}', '{key_columns}', {key}, '{action}', {columns}, to_json(t.*) \
             FROM {table} t WHERE {filter} ORDER BY 1"
        )
    };
    let update_images = sqlx::raw_sql(&images("update", "issues", updated, step, "'{title}'"))
        .execute(&mut *transaction)
        .await
        .expect("record the update images")
        .rows_affected();
    sqlx::raw_sql(&format!(
        "UPDATE issues SET title = title || ' (overwritten)' WHERE {updated}"
    ))
    .execute(&mut *transaction)
    .await
    .expect("update the issues");
    sqlx::raw_sql(&format!(
        "UPDATE salvage.row_images i SET after_md5 = md5(to_json(t.*)::text) FROM issues t \
         WHERE i.run_id = '{run}' AND i.position = {position} AND i.step = {step} AND t.id = i.key[1]::bigint"
    ))
    .execute(&mut *transaction)
    .await
    .expect("record the rows as the run left them");
    let delete_images = sqlx::raw_sql(&images("delete", "page_views", deleted, step + 1, "NULL"))
        .execute(&mut *transaction)
        .await
        .expect("record the delete images")
        .rows_affected();
    sqlx::raw_sql(&format!("DELETE FROM page_views WHERE {deleted}"))
        .execute(&mut *transaction)
        .await
        .expect("delete the page views");
    transaction.commit().await.expect("commit");
    connection.close().await.expect("close");
    (update_images as i64, delete_images as i64)
}

/// Changes live rows of `table` matching `filter` by `change` (an UPDATE or DELETE) in
/// `transaction`, recording their images as a restore does: the saved row before, and for an
/// update the columns its SET names and the md5 of the row after, keyed by `key` (an
/// expression over `t`).
#[allow(clippy::too_many_arguments)]
async fn change_recorded(
    transaction: &mut sqlx::PgConnection,
    run: &str,
    position: i32,
    step: i32,
    action: &str,
    (table, key_columns, key): (&str, &str, &str),
    filter: &str,
    change: &str,
) -> u64 {
    // An update's changed columns: those its SET names.
    let columns = match change.split_once(" SET ") {
        Some((_, set)) if action == "update" => {
            let names: Vec<&str> = set
                .split(" WHERE ")
                .next()
                .unwrap_or_default()
                .split(", ")
                .filter_map(|assignment| assignment.split(" = ").next())
                .map(str::trim)
                .collect();
            format!("'{{{}}}'", names.join(","))
        }
        _ => "NULL".to_owned(),
    };
    let images = sqlx::raw_sql(&format!(
        "INSERT INTO salvage.row_images (run_id, position, step, table_schema, table_name, key_columns, key, action, columns, before) \
         SELECT '{run}', {position}, {step}, 'public', '{table}', '{key_columns}', {key}, '{action}', {columns}, to_json(t.*) \
         FROM {table} t WHERE {filter} ORDER BY 1"
    ))
    .execute(&mut *transaction)
    .await
    .expect("record the images")
    .rows_affected();
    let changed = sqlx::raw_sql(change)
        .execute(&mut *transaction)
        .await
        .expect("change the rows")
        .rows_affected();
    assert_eq!(changed, images, "{change}");
    if action == "update" {
        sqlx::raw_sql(&format!(
            "UPDATE salvage.row_images i SET after_md5 = md5(to_json(t.*)::text) FROM {table} t \
             WHERE i.run_id = '{run}' AND i.position = {position} AND i.step = {step} AND {key} = i.key"
        ))
        .execute(&mut *transaction)
        .await
        .expect("record the rows as the run left them");
    }
    images
}

/// A report's tenant `id`.
fn tenant<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["tenants"]
        .as_array()
        .and_then(|tenants| tenants.iter().find(|tenant| tenant["tenant"] == id))
        .unwrap_or_else(|| panic!("no tenant {id} in {report}"))
}

fn count(value: &serde_json::Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

/// The journal's rows, per table: an undo that writes nothing leaves them as they are.
async fn journal_rows(live: &TestDatabase) -> BTreeMap<String, Vec<String>> {
    let mut rows = BTreeMap::new();
    for table in ["runs", "run_tenants", "row_images", "attempts", "workers"] {
        rows.insert(
            table.to_owned(),
            live.strings(&format!("SELECT t::text FROM salvage.{table} t ORDER BY 1"))
                .await,
        );
    }
    rows
}

#[tokio::test]
async fn undo_puts_back_what_a_run_inserted_updated_and_deleted() {
    let scenario = Scenario::tracker(4).await;
    delete_sites(&scenario.live, "2").await;
    scenario
        .live
        .execute(&format!("DELETE FROM comments WHERE {DAMAGED_COMMENTS}"))
        .await;
    let before = scenario.live.snapshot("before").await;
    let run = restore(&scenario, "2,3");
    record_inserts(&scenario.live, &run, "2", &whole_site("2")).await;
    record_inserts(&scenario.live, &run, "3", &damaged_site_rows()).await;
    let (updated, deleted) = overwrite_and_delete(
        &scenario.live,
        &run,
        "3",
        "site_id = 3 AND number <= 4",
        "site_id = 3 AND id % 2 = 0",
    )
    .await;
    assert!(updated > 0 && deleted > 0, "{updated} {deleted}");
    let inserted: i64 = scenario
        .live
        .scalar(&format!(
            "SELECT count(*) FROM salvage.row_images i JOIN salvage.run_tenants t USING (run_id, position) \
             WHERE i.run_id = '{run}' AND t.tenant = '3' AND i.action = 'insert'"
        ))
        .await;
    assert!(inserted > 0);

    let (outcome, report) = undo(&scenario.live, &run, &["--yes"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    assert_eq!(report["state"], "done", "{report}");
    assert_eq!(count(&report["summary"]["undone"]), 2, "{report}");
    let three = tenant(&report, "3");
    assert_eq!(three["state"], "undone", "{report}");
    assert_eq!(count(&three["counts"]["removed"]), inserted, "{report}");
    assert_eq!(count(&three["counts"]["put_back"]), updated, "{report}");
    assert_eq!(count(&three["counts"]["reinserted"]), deleted, "{report}");
    assert_eq!(tenant(&report, "2")["state"], "undone", "{report}");

    let compared = assert_same_database(&before, &scenario.live).await;
    for table in [
        "public.sites",
        "public.issues",
        "public.comments",
        "public.page_views",
    ] {
        assert!(
            compared[table] > 0,
            "{table}: no rows compared: {compared:?}"
        );
    }
    // Journaled: the undo run, its tenants done, the run's tenants marked undone by it.
    let undo_id = report["run"]["id"]
        .as_str()
        .expect("the undo's run")
        .to_owned();
    let journaled: Vec<String> = scenario
        .live
        .strings(&format!(
            "SELECT r.kind || ' ' || coalesce(r.undoes, '-') || ' ' || r.state || ' ' || \
                    (SELECT string_agg(t.tenant || ':' || t.state, ',' ORDER BY t.position) FROM salvage.run_tenants t WHERE t.run_id = r.run_id) \
             FROM salvage.runs r WHERE r.run_id = '{undo_id}'"
        ))
        .await;
    assert_eq!(journaled, [format!("undo {run} done 2:done,3:done")]);
    let undone_by = scenario
        .live
        .strings(&format!(
            "SELECT tenant || ':' || coalesce(undone_by, '-') FROM salvage.run_tenants WHERE run_id = '{run}' ORDER BY position"
        ))
        .await;
    assert_eq!(undone_by, [format!("2:{undo_id}"), format!("3:{undo_id}")]);
}

#[tokio::test]
async fn a_row_changed_after_the_run_refuses_its_tenant_until_forced() {
    let scenario = Scenario::tracker(4).await;
    delete_sites(&scenario.live, "2,3").await;
    let before = scenario.live.snapshot("before").await;
    let run = restore(&scenario, "2,3");
    record_inserts(&scenario.live, &run, "2", &whole_site("2")).await;
    record_inserts(&scenario.live, &run, "3", &whole_site("3")).await;
    // Later work on site 2: one issue the run inserted is edited.
    let changed: i64 = scenario
        .live
        .scalar("UPDATE issues SET title = 'edited later' WHERE site_id = 2 AND number = 1 RETURNING id")
        .await;
    let site_two_rows = row_counts(&scenario.live).await;

    let (outcome, report) = undo(&scenario.live, &run, &["--yes"]);
    assert_eq!(outcome.code, 1, "{outcome}");
    assert_eq!(report["state"], "failed", "{report}");
    let two = tenant(&report, "2");
    assert_eq!(two["state"], "refused", "{report}");
    assert_eq!(count(&two["conflicts_total"]), 1, "{report}");
    assert_eq!(two["conflicts"][0]["table"], "public.issues", "{report}");
    assert_eq!(
        two["conflicts"][0]["key"],
        serde_json::json!([changed.to_string()]),
        "{report}"
    );
    assert_eq!(two["conflicts"][0]["what"], "changed", "{report}");
    assert_eq!(tenant(&report, "3")["state"], "undone", "{report}");
    // Nothing of site 2 was written; site 3 is gone again.
    let after = row_counts(&scenario.live).await;
    let site_two: i64 = scenario
        .live
        .scalar("SELECT count(*) FROM issues WHERE site_id = 2")
        .await;
    assert_eq!(site_two, 12);
    let site_three: i64 = scenario
        .live
        .scalar("SELECT count(*) FROM issues WHERE site_id = 3")
        .await;
    assert_eq!(site_three, 0);
    assert!(after["public.issues"] < site_two_rows["public.issues"]);

    let (outcome, report) = undo(&scenario.live, &run, &["--yes", "--force"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    let two = tenant(&report, "2");
    assert_eq!(two["state"], "undone", "{report}");
    assert_eq!(count(&two["counts"]["forced"]), 1, "{report}");
    assert_eq!(tenant(&report, "3")["state"], "already_undone", "{report}");
    let compared = assert_same_database(&before, &scenario.live).await;
    assert!(compared["public.issues"] > 0, "{compared:?}");
}

#[tokio::test]
async fn a_second_undo_writes_nothing() {
    let scenario = Scenario::tracker(3).await;
    delete_sites(&scenario.live, "2").await;
    let run = restore(&scenario, "2");
    record_inserts(&scenario.live, &run, "2", &whole_site("2")).await;
    let (outcome, report) = undo(&scenario.live, &run, &["--yes"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    assert_eq!(count(&report["summary"]["undone"]), 1, "{report}");
    let undo_id = report["run"]["id"]
        .as_str()
        .expect("an undo run")
        .to_owned();

    let journal = journal_rows(&scenario.live).await;
    let rows = all_rows(&scenario.live).await;
    let (outcome, report) = undo(&scenario.live, &run, &["--yes", "--format", "json"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    let printed: serde_json::Value =
        serde_json::from_str(&outcome.stdout).expect("--format json prints the report alone");
    assert_eq!(printed["summary"], report["summary"], "{outcome}");
    assert_eq!(report["state"], "nothing_to_do", "{report}");
    assert_eq!(count(&report["summary"]["already_undone"]), 1, "{report}");
    assert_eq!(count(&report["summary"]["undone"]), 0, "{report}");
    assert!(report["run"]["id"].is_null(), "{report}");
    assert_eq!(
        tenant(&report, "2")["undone_by"],
        undo_id.as_str(),
        "{report}"
    );
    assert_eq!(journal_rows(&scenario.live).await, journal);
    assert_eq!(all_rows(&scenario.live).await, rows);

    // An undo run is not undone.
    let outcome = undo_refused(&scenario.live, &undo_id, &["--yes"]);
    assert_eq!(outcome.code, 2, "{outcome}");
    assert!(
        outcome.stderr.contains("is an undo, not a restore"),
        "{outcome}"
    );
    assert_eq!(journal_rows(&scenario.live).await, journal);
}

#[tokio::test]
async fn bad_input_is_refused_before_any_write() {
    let scenario = Scenario::tracker(3).await;
    delete_sites(&scenario.live, "2").await;
    let run = restore(&scenario, "2");
    record_inserts(&scenario.live, &run, "2", &whole_site("2")).await;
    let journal = journal_rows(&scenario.live).await;
    let rows = all_rows(&scenario.live).await;

    let refused = |more: &[&str], needle: &str| {
        let mut args = vec!["undo", "--target", &scenario.live.url];
        args.extend_from_slice(more);
        let outcome = salvage(&args);
        assert_eq!(outcome.code, 2, "{outcome}");
        assert!(outcome.stderr.contains(needle), "{needle}:\n{outcome}");
    };
    refused(
        &["--run", &run, "--tenants", "2,98,99", "--yes"],
        "these tenants are not of run",
    );
    refused(&["--run", &run, "--tenants", "98", "--yes"], "'98'");
    refused(&["--run", "no-such-run", "--yes"], "no run no-such-run");
    refused(
        &["--run", &run, "--journal-schema", "elsewhere", "--yes"],
        "no salvage journal in schema elsewhere",
    );
    // No terminal to confirm on, and no --yes.
    refused(&["--run", &run], "refusing to write without --yes");
    let outcome = salvage(&[
        "undo",
        "--target",
        &scenario.live.url,
        "--run",
        &run,
        "--tenants",
        "2,98,99",
        "--yes",
    ]);
    assert!(
        outcome.stderr.contains("'98'") && outcome.stderr.contains("'99'"),
        "every unknown tenant named at once:\n{outcome}"
    );
    // A table the images name that live no longer has.
    scenario
        .live
        .execute("ALTER TABLE reactions RENAME TO reactions_gone")
        .await;
    refused(
        &["--run", &run, "--yes"],
        "public.reactions, which live no longer has",
    );
    scenario
        .live
        .execute("ALTER TABLE reactions_gone RENAME TO reactions")
        .await;

    assert_eq!(journal_rows(&scenario.live).await, journal);
    assert_eq!(all_rows(&scenario.live).await, rows);
}

/// The journal's tables as salvage 0.x wrote them (layout 1), from git history.
const V1_JOURNAL: &str = r"
CREATE SCHEMA salvage;
CREATE TABLE IF NOT EXISTS salvage.journal_version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS salvage.runs (
    run_id          text PRIMARY KEY,
    digest          text NOT NULL,
    lock_key        integer NOT NULL UNIQUE,
    state           text NOT NULL CHECK (state IN ('running', 'done', 'interrupted', 'failed')),
    snapshot        text NOT NULL,
    target          text NOT NULL,
    root            text NOT NULL,
    tenants         integer NOT NULL,
    plan            jsonb,
    command         text NOT NULL,
    salvage_version text NOT NULL,
    os_user         text,
    db_role         text NOT NULL DEFAULT current_user,
    host            text,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at        timestamptz
);
CREATE INDEX IF NOT EXISTS runs_by_digest ON salvage.runs (digest, started_at);
CREATE TABLE IF NOT EXISTS salvage.run_tenants (
    run_id        text NOT NULL REFERENCES salvage.runs ON DELETE CASCADE,
    position      integer NOT NULL,
    tenant        text NOT NULL,
    label         text,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    rows_inserted bigint NOT NULL DEFAULT 0,
    rows_waiting  bigint NOT NULL DEFAULT 0,
    error         text,
    xid           bigint,
    worker        text,
    finished_at   timestamptz,
    verified      text CHECK (verified IN ('passed', 'failed')),
    verify_error  text,
    verified_at   timestamptz,
    PRIMARY KEY (run_id, position),
    UNIQUE (run_id, tenant)
);
CREATE TABLE IF NOT EXISTS salvage.attempts (
    id         bigserial PRIMARY KEY,
    run_id     text NOT NULL,
    position   integer NOT NULL,
    worker     text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at   timestamptz,
    outcome    text CHECK (outcome IN ('done', 'failed', 'retry', 'interrupted')),
    rows       jsonb,
    error      text,
    xid        bigint,
    FOREIGN KEY (run_id, position) REFERENCES salvage.run_tenants ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS attempts_by_tenant ON salvage.attempts (run_id, position);
CREATE TABLE IF NOT EXISTS salvage.workers (
    run_id        text NOT NULL REFERENCES salvage.runs ON DELETE CASCADE,
    worker        text NOT NULL,
    number        integer NOT NULL,
    host          text,
    os_user       text,
    db_role       text NOT NULL DEFAULT current_user,
    pid           integer,
    backend_pid   integer NOT NULL,
    command       text,
    state         text NOT NULL CHECK (state IN ('running', 'done', 'interrupted', 'failed')),
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at      timestamptz,
    PRIMARY KEY (run_id, worker)
);
INSERT INTO salvage.journal_version VALUES (1);
INSERT INTO salvage.runs (run_id, digest, lock_key, state, snapshot, target, root, tenants, command, salvage_version)
VALUES ('old-run', 'd', 42, 'done', 'snap', 'live', 'public.sites', 1, 'salvage restore', '0.0.1');
INSERT INTO salvage.run_tenants (run_id, position, tenant, state, rows_inserted) VALUES ('old-run', 0, '1', 'done', 3);
";

#[tokio::test]
async fn a_journal_of_layout_1_is_upgraded_by_the_next_restore() {
    let scenario = Scenario::tracker(3).await;
    scenario.live.execute(V1_JOURNAL).await;
    // Before the upgrade: a journal of layout 1 kept no images, and undo does not upgrade it.
    let outcome = undo_refused(&scenario.live, "old-run", &["--yes"]);
    assert_eq!(outcome.code, 2, "{outcome}");
    assert!(
        outcome
            .stderr
            .contains("has layout version 1, which keeps no row images"),
        "{outcome}"
    );
    delete_sites(&scenario.live, "2").await;
    let run = restore(&scenario, "2");
    let version: i32 = scenario
        .live
        .scalar("SELECT max(version) FROM salvage.journal_version")
        .await;
    assert_eq!(version, 3);
    let kinds = scenario
        .live
        .strings("SELECT run_id || ':' || kind FROM salvage.runs ORDER BY started_at")
        .await;
    assert_eq!(
        kinds,
        ["old-run:restore".to_owned(), format!("{run}:restore")]
    );
    let columns: i64 = scenario
        .live
        .scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'salvage' AND \
             (table_name, column_name) IN (('runs', 'kind'), ('runs', 'mode'), ('runs', 'undoes'), \
             ('run_tenants', 'undone_by'), ('run_tenants', 'undone_at'), ('row_images', 'after_md5'))",
        )
        .await;
    assert_eq!(columns, 6);

    // The old run has no images: nothing to undo it by, said so, nothing written.
    let journal = journal_rows(&scenario.live).await;
    let outcome = undo_refused(&scenario.live, "old-run", &["--yes"]);
    assert_eq!(outcome.code, 2, "{outcome}");
    assert!(
        outcome.stderr.contains("run old-run has no row images"),
        "{outcome}"
    );
    assert_eq!(journal_rows(&scenario.live).await, journal);

    // The new one is undone, and `salvage runs` lists both kinds.
    record_inserts(&scenario.live, &run, "2", &whole_site("2")).await;
    let (outcome, report) = undo(&scenario.live, &run, &["--yes"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    assert_eq!(count(&report["summary"]["undone"]), 1, "{report}");
    let sites: i64 = scenario
        .live
        .scalar("SELECT count(*) FROM sites WHERE id = 2")
        .await;
    assert_eq!(sites, 0);
    let listed = salvage(&["runs", "--target", &scenario.live.url, "--format", "json"]);
    assert_eq!(listed.code, 0, "{listed}");
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).expect("JSON");
    let kinds: Vec<String> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|run| format!("{} {}", run["kind"], run["undoes"]))
        .collect();
    assert_eq!(
        kinds,
        [
            format!("\"undo\" \"{run}\""),
            "\"restore\" null".to_owned(),
            "\"restore\" null".to_owned()
        ]
    );
}

/// A role that may write the journal's tables but does not own them cannot upgrade a
/// layout 1 journal: the restore names that before any write.
#[tokio::test]
async fn a_journal_this_role_cannot_upgrade_is_named_before_any_write() {
    let scenario = Scenario::tracker(3).await;
    scenario.live.execute(V1_JOURNAL).await;
    let role = format!("{}_writer", scenario.live.name);
    scenario
        .live
        .execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; \
             GRANT USAGE ON SCHEMA salvage, public TO {role}; \
             GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA salvage TO {role}; \
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA salvage TO {role}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; \
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}"
        ))
        .await;
    delete_sites(&scenario.live, "2").await;
    let rows = all_rows(&scenario.live).await;
    let target = scenario
        .live
        .url
        .replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(target, scenario.live.url, "the test URL names its user");
    let args: Vec<String> = [
        "restore",
        "--snapshot",
        &scenario.snapshot.url,
        "--target",
        &target,
        "--root",
        "public.sites",
        "--tenant-column",
        "site_id",
        "--tenants",
        "2",
        "--yes",
    ]
    .map(str::to_owned)
    .to_vec();
    let outcome = salvage(&args);
    scenario
        .live
        .execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;
    assert_eq!(outcome.code, 2, "{outcome}");
    assert!(
        outcome
            .stderr
            .contains("has layout version 1 and must be upgraded to 3")
            && outcome.stderr.contains("salvage.runs"),
        "{outcome}"
    );
    assert_eq!(all_rows(&scenario.live).await, rows);
    let version: i32 = scenario
        .live
        .scalar("SELECT max(version) FROM salvage.journal_version")
        .await;
    assert_eq!(version, 1);
}

/// NEEDS RESTORE IMAGES: passes once `salvage restore` records the images of what it
/// writes (the overwrite/exact work); until then the restore records none and this fails at
/// its first assertion.
#[tokio::test]
async fn needs_restore_images_undo_of_a_restore_removes_what_it_inserted() {
    let scenario = Scenario::tracker(4).await;
    delete_sites(&scenario.live, "2,4").await;
    let before = scenario.live.snapshot("before").await;
    let run = restore(&scenario, "2,4");
    let images: i64 = scenario
        .live
        .scalar(&format!(
            "SELECT count(*) FROM salvage.row_images WHERE run_id = '{run}' AND action = 'insert'"
        ))
        .await;
    let restored: i64 = scenario
        .live
        .scalar(&format!(
            "SELECT sum(rows_inserted)::int8 FROM salvage.run_tenants WHERE run_id = '{run}'"
        ))
        .await;
    assert_eq!(
        images, restored,
        "the restore records an image of every row it inserts"
    );
    let (outcome, report) = undo(&scenario.live, &run, &["--yes"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    assert_eq!(
        count(&report["summary"]["rows_removed"]),
        restored,
        "{report}"
    );
    let compared = assert_same_database(&before, &scenario.live).await;
    assert!(compared["public.comments"] > 0, "{compared:?}");
}

/// Tables of every kind of column an undo must put back exactly: an identity ALWAYS key, a
/// generated column, numbers, times, bytes, JSON, arrays, an enum; and a partitioned table.
const EXTRAS: &str = r#"
CREATE TYPE mood AS ENUM ('calm', 'odd ''one''');
CREATE TABLE extras (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id bigint NOT NULL,
    label   text,
    amount  numeric(12, 4),
    ratio   double precision,
    at      timestamptz,
    span    interval,
    blob    bytea,
    doc     jsonb,
    tags    text[],
    nums    integer[],
    flag    boolean,
    day     date,
    feeling mood,
    doubled numeric GENERATED ALWAYS AS (amount * 2) STORED
);
INSERT INTO extras (site_id, label, amount, ratio, at, span, blob, doc, tags, nums, flag, day, feeling)
SELECT 2, format(E'row %s\twith "quotes", \\backslash and ünïcode', n), n * 1.2345, 1.0 / (n + 2),
       '2026-03-29 01:30:00.123456+00'::timestamptz + n * interval '1 day 1 microsecond',
       n * interval '1 year 2 mons 3 days 04:05:06.789', decode(repeat('00ff', n), 'hex'),
       jsonb_build_object('n', n, 'nested', jsonb_build_array(1.5, 'x', NULL, true)),
       ARRAY['a,b', NULL, E'c"d'], ARRAY[n, NULL, -n], n % 2 = 0, DATE '2026-02-28' + n,
       (ARRAY['calm', 'odd ''one''']::mood[])[1 + n % 2]
FROM generate_series(1, 6) AS n;
UPDATE extras SET ratio = 'NaN', at = 'infinity', span = NULL WHERE id = 6;
CREATE TABLE extras_parts (site_id bigint, n integer, note text, PRIMARY KEY (site_id, n)) PARTITION BY LIST (site_id);
CREATE TABLE extras_parts_two PARTITION OF extras_parts FOR VALUES IN (2);
CREATE TABLE extras_parts_rest PARTITION OF extras_parts DEFAULT;
INSERT INTO extras_parts SELECT s, n, format('note %s/%s', s, n) FROM generate_series(1, 3) s, generate_series(1, 4) n;
"#;

#[tokio::test]
async fn saved_versions_come_back_exactly_and_later_changes_need_force() {
    let scenario = Scenario::tracker(3).await;
    delete_sites(&scenario.live, "2").await;
    let run = restore(&scenario, "2");
    scenario.live.execute(EXTRAS).await;
    let before = scenario.live.snapshot("before").await;
    let position = position(&scenario.live, &run, "2").await;

    // The run (as overwrite and exact will) updates and deletes rows of both tables.
    let mut connection = scenario.live.connect().await;
    let mut transaction = connection.begin().await.expect("begin");
    let extras = ("extras", "{id}", "ARRAY[t.id::text]");
    let parts = (
        "extras_parts",
        "{site_id,n}",
        "ARRAY[t.site_id::text, t.n::text]",
    );
    let updated = change_recorded(
        &mut transaction,
        &run,
        position,
        100,
        "update",
        extras,
        "id <= 3",
        "UPDATE extras SET label = 'overwritten', amount = -1, doc = '{}', tags = '{}', at = now(), \
         ratio = 'Infinity', blob = NULL, feeling = 'calm' WHERE id <= 3",
    )
    .await;
    let parts_updated = change_recorded(
        &mut transaction,
        &run,
        position,
        101,
        "update",
        parts,
        "site_id = 2 AND n <= 2",
        "UPDATE extras_parts SET note = 'overwritten' WHERE site_id = 2 AND n <= 2",
    )
    .await;
    let deleted = change_recorded(
        &mut transaction,
        &run,
        position,
        102,
        "delete",
        extras,
        "id >= 4",
        "DELETE FROM extras WHERE id >= 4",
    )
    .await;
    let parts_deleted = change_recorded(
        &mut transaction,
        &run,
        position,
        103,
        "delete",
        parts,
        "site_id = 2 AND n = 4",
        "DELETE FROM extras_parts WHERE site_id = 2 AND n = 4",
    )
    .await;
    transaction.commit().await.expect("commit");
    connection.close().await.expect("close");
    assert_eq!(
        (updated, parts_updated, deleted, parts_deleted),
        (3, 2, 3, 1)
    );

    // Later work: an updated row deleted, a deleted row's key taken again.
    scenario
        .live
        .execute(
            "DELETE FROM extras WHERE id = 1; \
             INSERT INTO extras (id, site_id, label) OVERRIDING SYSTEM VALUE VALUES (5, 2, 'new')",
        )
        .await;
    let (outcome, report) = undo(&scenario.live, &run, &["--yes", "--tenants", "2"]);
    assert_eq!(outcome.code, 1, "{outcome}");
    let two = tenant(&report, "2");
    assert_eq!(two["state"], "refused", "{report}");
    let mut conflicts: Vec<String> = two["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .map(|conflict| {
            format!(
                "{} {} {}",
                conflict["table"], conflict["key"], conflict["what"]
            )
        })
        .collect();
    conflicts.sort();
    assert_eq!(
        conflicts,
        [
            r#""public.extras" ["1"] "gone""#,
            r#""public.extras" ["5"] "recreated""#
        ],
        "{report}"
    );
    let label: String = scenario
        .live
        .scalar("SELECT label FROM extras WHERE id = 2")
        .await;
    assert_eq!(
        label, "overwritten",
        "nothing of the refused tenant was written"
    );

    let (outcome, report) = undo(&scenario.live, &run, &["--yes", "--force"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    let counts = &tenant(&report, "2")["counts"];
    assert_eq!(count(&counts["forced"]), 2, "{report}");
    // Updated rows still there and the re-created one are put back; the deleted rows and the
    // updated-then-deleted one are re-inserted.
    assert_eq!(count(&counts["put_back"]), 2 + 2 + 1, "{report}");
    assert_eq!(count(&counts["reinserted"]), 1 + 2 + 1, "{report}");
    for select in [
        "SELECT * FROM extras",
        "SELECT * FROM extras_parts",
        "SELECT * FROM ONLY extras_parts_two",
    ] {
        let rows = support::assert_same_result(&before, &scenario.live, select).await;
        assert!(rows >= 4, "{select}: {rows} rows compared");
    }
}

/// Two undos of one tenant at once: the second waits on the tenant's row in the undone run,
/// then finds it undone and leaves it alone. The first is played by a transaction of the
/// test that holds the row and marks it undone, so the moment is exact.
#[tokio::test]
async fn an_undo_that_waited_for_another_finds_the_tenant_undone() {
    let scenario = Scenario::tracker(3).await;
    delete_sites(&scenario.live, "2").await;
    let run = restore(&scenario, "2");
    record_inserts(&scenario.live, &run, "2", &whole_site("2")).await;
    let rows = all_rows(&scenario.live).await;

    let mut holder = scenario.live.connect().await;
    sqlx::raw_sql(&format!(
        "BEGIN; SELECT * FROM salvage.run_tenants WHERE run_id = '{run}' AND tenant = '2' FOR UPDATE"
    ))
    .execute(&mut holder)
    .await
    .expect("hold the tenant's row");
    let report = support::temp_path("waiting-undo.json");
    let _ = std::fs::remove_file(&report);
    let waiting = std::process::Command::new(env!("CARGO_BIN_EXE_salvage"))
        .args([
            "undo",
            "--target",
            &scenario.live.url,
            "--run",
            &run,
            "--yes",
        ])
        .arg("--report")
        .arg(&report)
        .env_remove("DATABASE_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start salvage undo");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let blocked: bool = scenario
            .live
            .scalar(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'salvage' AND wait_event_type = 'Lock'",
            )
            .await;
        if blocked {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the undo never waited on the tenant"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sqlx::raw_sql(&format!(
        "UPDATE salvage.run_tenants SET undone_by = 'the-other-undo', undone_at = now() \
         WHERE run_id = '{run}' AND tenant = '2'; COMMIT"
    ))
    .execute(&mut holder)
    .await
    .expect("mark the tenant undone");
    holder.close().await.expect("close");
    let output = waiting.wait_with_output().expect("wait for salvage undo");
    let outcome = support::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_eq!(outcome.code, 0, "{outcome}");
    let report = support::read_json(&report);
    let two = tenant(&report, "2");
    assert_eq!(two["state"], "already_undone", "{report}");
    assert_eq!(two["undone_by"], "the-other-undo", "{report}");
    assert_eq!(
        all_rows(&scenario.live).await,
        rows,
        "nothing was undone twice"
    );
    // Its own run says why it did nothing for the tenant.
    let own = scenario
        .live
        .strings(&format!(
            "SELECT t.state || ' ' || t.error FROM salvage.run_tenants t JOIN salvage.runs r USING (run_id) \
             WHERE r.undoes = '{run}'"
        ))
        .await;
    assert_eq!(own, ["done already undone by run the-other-undo"]);
}

/// A shared row one tenant's restore inserted, referenced by the rows of a tenant that
/// committed after it: undo takes the tenants last committed first, so the referencing rows
/// are gone before the shared row is removed (the foreign key is not deferrable).
#[tokio::test]
async fn tenants_are_undone_last_committed_first() {
    let scenario = Scenario::tracker(4).await;
    delete_sites(&scenario.live, "2,3").await;
    let before = scenario.live.snapshot("before").await;
    let run = restore(&scenario, "2,3");
    record_inserts(&scenario.live, &run, "2", &whole_site("2")).await;
    record_inserts(&scenario.live, &run, "3", &whole_site("3")).await;
    let (two, three) = (
        position(&scenario.live, &run, "2").await,
        position(&scenario.live, &run, "3").await,
    );
    // Site 2 committed first with a new shared user; site 3's first issue, written later,
    // is by that user.
    scenario
        .live
        .execute(&format!(
            "BEGIN; \
             INSERT INTO users (id, email, created_at) VALUES (9999, 'shared@example.test', now()); \
             INSERT INTO salvage.row_images (run_id, position, step, table_schema, table_name, key_columns, key, action, after_md5) \
             SELECT '{run}', {two}, 0, 'public', 'users', '{{id}}', ARRAY[t.id::text], 'insert', md5(to_json(t.*)::text) FROM users t WHERE id = 9999; \
             UPDATE issues SET author_id = 9999 WHERE site_id = 3 AND number = 1; \
             UPDATE salvage.row_images i SET after_md5 = md5(to_json(t.*)::text) FROM issues t \
             WHERE i.run_id = '{run}' AND i.position = {three} AND i.table_name = 'issues' AND i.key = ARRAY[t.id::text] \
               AND t.site_id = 3 AND t.number = 1; \
             UPDATE salvage.run_tenants SET finished_at = now() - CASE position WHEN {two} THEN interval '1 hour' ELSE interval '0' END \
             WHERE run_id = '{run}'; \
             COMMIT"
        ))
        .await;

    let (outcome, report) = undo(&scenario.live, &run, &["--yes"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    assert_eq!(count(&report["summary"]["undone"]), 2, "{report}");
    let compared = assert_same_database(&before, &scenario.live).await;
    assert!(compared["public.users"] > 0, "{compared:?}");
}

/// Runs salvage with a terminal (util-linux `script` gives it a pseudo-terminal), typing
/// `answer`: what the terminal showed and the exit code (as tests/operator.rs does).
fn at_a_terminal(args: &[&str], answer: &str) -> (i32, String) {
    use std::io::Write as _;

    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let command = std::iter::once(env!("CARGO_BIN_EXE_salvage"))
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("DATABASE_URL")
        .env("COLUMNS", "100")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux script gives salvage a terminal");
    child
        .stdin
        .as_mut()
        .expect("script's stdin")
        .write_all(answer.as_bytes())
        .expect("type the answer");
    let output = child.wait_with_output().expect("wait for script");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn at_a_terminal_only_yes_undoes() {
    let scenario = Scenario::tracker(3).await;
    delete_sites(&scenario.live, "2").await;
    let before = all_rows(&scenario.live).await;
    let run = restore(&scenario, "2");
    record_inserts(&scenario.live, &run, "2", &whole_site("2")).await;
    let restored = all_rows(&scenario.live).await;
    let journal = journal_rows(&scenario.live).await;
    let args = ["undo", "--target", &scenario.live.url, "--run", &run];

    let (code, shown) = at_a_terminal(&args, "y\n");
    assert_eq!(code, 2, "{shown}");
    assert!(
        shown.contains("Undo 1 tenant (") && shown.contains("Type 'yes' to continue"),
        "{shown}"
    );
    assert!(
        shown.contains("undo cancelled; nothing was written"),
        "{shown}"
    );
    assert_eq!(all_rows(&scenario.live).await, restored);
    assert_eq!(journal_rows(&scenario.live).await, journal);

    let (code, shown) = at_a_terminal(&args, "yes\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("1 tenant undone"), "{shown}");
    assert_eq!(all_rows(&scenario.live).await, before);
}

/// The journal's row images need the same rights as its other tables: a role without them
/// is refused before any write, the table and its sequence named.
#[tokio::test]
async fn rights_on_the_row_images_are_checked_before_any_write() {
    let scenario = Scenario::tracker(3).await;
    delete_sites(&scenario.live, "2").await;
    restore(&scenario, "2");
    delete_sites(&scenario.live, "3").await;
    let role = format!("{}_images", scenario.live.name);
    scenario
        .live
        .execute(&format!(
            "CREATE ROLE {role} LOGIN; \
             GRANT USAGE ON SCHEMA salvage TO {role}; \
             GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA salvage TO {role}; \
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA salvage TO {role}; \
             REVOKE ALL ON salvage.row_images, salvage.row_images_id_seq FROM {role}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; \
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}"
        ))
        .await;
    let rows = all_rows(&scenario.live).await;
    let journal = journal_rows(&scenario.live).await;
    let mut args = with(scenario.args("restore", "3"), &["--yes"]);
    let at = args
        .iter()
        .position(|arg| arg == "--target")
        .expect("--target")
        + 1;
    args[at] = scenario
        .live
        .url
        .replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(args[at], scenario.live.url, "the test URL names its user");
    let outcome = salvage(&args);
    scenario
        .live
        .execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;
    assert_eq!(outcome.code, 2, "{outcome}");
    for needle in [
        "the journal table salvage.row_images",
        "the journal's sequence salvage.row_images_id_seq",
    ] {
        assert!(outcome.stderr.contains(needle), "{needle}:\n{outcome}");
    }
    assert_eq!(all_rows(&scenario.live).await, rows);
    assert_eq!(journal_rows(&scenario.live).await, journal);
}

/// A bad script on site 3 (two issues renamed, a comment deleted) and later work on it (an
/// issue, its comment, a page view), in live after the snapshot.
const SCRIPT_AND_LATER_WORK: &str = "
    UPDATE issues SET title = 'RENAMED BY THE SCRIPT' WHERE site_id = 3 AND number IN (2, 3);
    DELETE FROM comments WHERE id = (SELECT min(c.id) FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 3);
    INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
        VALUES (3, 1, 100, 'filed after the snapshot', 1, '2026-05-01 11:00:00+00');
    INSERT INTO comments (issue_id, author_id, body, created_at)
        SELECT id, 1, 'said after the snapshot', '2026-05-01 11:05:00+00' FROM issues WHERE site_id = 3 AND number = 100;
    INSERT INTO page_views (site_id, path, viewed_at) VALUES (3, '/later', '2026-05-01 10:00:00+00');
";

/// `salvage restore --mode MODE` of `tenants`: the run's ID.
fn restore_in_mode(scenario: &Scenario, tenants: &str, mode: &str) -> String {
    let (run, report) = salvage_reporting(&with(
        scenario.args("restore", tenants),
        &["--mode", mode, "--yes"],
    ));
    assert_eq!(run.code, 0, "{run}");
    report["run"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the restore report has no run: {report}"))
        .to_owned()
}

/// NEEDS MODES: `restore --mode overwrite|exact` (the other half of issue 11). Undo after
/// each mode returns the database to what it was before that restore, and refuses a row
/// changed after the run until `--force`.
#[tokio::test]
async fn needs_modes_undo_after_overwrite_and_after_exact_returns_to_before() {
    let scenario = Scenario::tracker(5).await;
    scenario.live.execute(SCRIPT_AND_LATER_WORK).await;
    let before = scenario.live.snapshot("before").await;

    let run = restore_in_mode(&scenario, "3", "overwrite");
    let images: Vec<String> = scenario
        .live
        .strings(&format!(
            "SELECT action || ' ' || count(*) FROM salvage.row_images WHERE run_id = '{run}' GROUP BY action ORDER BY 1"
        ))
        .await;
    assert!(
        images.iter().any(|line| line.starts_with("insert "))
            && images.contains(&"update 2".to_owned()),
        "{images:?}"
    );
    let (outcome, report) = undo(&scenario.live, &run, &["--yes"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    assert_eq!(
        count(&tenant(&report, "3")["counts"]["put_back"]),
        2,
        "{report}"
    );
    let compared = assert_same_database(&before, &scenario.live).await;
    assert!(compared["public.issues"] > 0, "{compared:?}");

    let run = restore_in_mode(&scenario, "3", "exact");
    let deleted: i64 = scenario
        .live
        .scalar(&format!(
            "SELECT count(*) FROM salvage.row_images WHERE run_id = '{run}' AND action = 'delete'"
        ))
        .await;
    assert!(
        deleted >= 3,
        "exact deleted the later issue, comment and page view: {deleted}"
    );
    // Later work on a row the exact restore set back.
    scenario
        .live
        .execute("UPDATE issues SET title = 'edited after the exact restore' WHERE site_id = 3 AND number = 2")
        .await;
    let (outcome, report) = undo(&scenario.live, &run, &["--yes"]);
    assert_eq!(outcome.code, 1, "{outcome}");
    let three = tenant(&report, "3");
    assert_eq!(three["state"], "refused", "{report}");
    assert_eq!(three["conflicts"][0]["table"], "public.issues", "{report}");
    let (outcome, report) = undo(&scenario.live, &run, &["--yes", "--force"]);
    assert_eq!(outcome.code, 0, "{outcome}");
    assert_eq!(
        count(&tenant(&report, "3")["counts"]["forced"]),
        1,
        "{report}"
    );
    let compared = assert_same_database(&before, &scenario.live).await;
    assert!(compared["public.page_views"] > 0, "{compared:?}");
}

/// Small tenants go in several to one statement (each with `batch` in the report); each
/// keeps its own rows in the journal, so undoing one removes its rows and no one else's, and
/// undoing the rest gives back the database as it was.
#[tokio::test]
async fn tenants_written_by_one_statement_keep_their_own_journal_rows() {
    let scenario = Scenario::tracker(8).await;
    delete_sites(&scenario.live, "2,3,4,5").await;
    let before = scenario.live.snapshot("before").await;
    let (outcome, report) = salvage_reporting(&with(
        scenario.args("restore", "2,3,4,5"),
        &["--yes", "--jobs", "1"],
    ));
    assert_eq!(outcome.code, 0, "{outcome}");
    let run = report["run"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the restore report has no run: {report}"))
        .to_owned();
    let mut restored = 0;
    for id in ["2", "3", "4", "5"] {
        let written = report["tenants"]
            .as_array()
            .and_then(|tenants| tenants.iter().find(|tenant| tenant["id"] == id))
            .unwrap_or_else(|| panic!("no tenant {id} in {report}"));
        assert_eq!(count(&written["batch"]), 4, "{written}");
        let inserted: i64 = written["tables"]
            .as_object()
            .unwrap_or_else(|| panic!("no tables: {written}"))
            .values()
            .map(|table| count(&table["inserted"]))
            .sum();
        let position = position(&scenario.live, &run, id).await;
        let recorded: i64 = scenario
            .live
            .scalar(&format!(
                "SELECT count(*) FROM salvage.row_images WHERE run_id = '{run}' \
                 AND position = {position} AND action = 'insert'"
            ))
            .await;
        assert!(inserted > 0, "{written}");
        assert_eq!(recorded, inserted, "tenant {id}");
        // Each image is of a row of this tenant's: its key finds one of the site's rows.
        let own: i64 = scenario
            .live
            .scalar(&format!(
                "SELECT count(*) FROM salvage.row_images i WHERE run_id = '{run}' \
                 AND position = {position} AND table_name = 'issues' \
                 AND EXISTS (SELECT FROM issues t WHERE t.id::text = i.key[1] AND t.site_id = {id})"
            ))
            .await;
        let issues: i64 = scenario
            .live
            .scalar(&format!("SELECT count(*) FROM issues WHERE site_id = {id}"))
            .await;
        assert!(issues > 0);
        assert_eq!(own, issues, "tenant {id}");
        for (table, filter) in tracker_owned(id) {
            restored +=
                support::assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
        }
    }
    assert_eq!(restored, support::rows_inserted(&report), "{report}");

    // Undoing site 3 removes its rows alone.
    let (undone, undo_report) = undo(&scenario.live, &run, &["--tenants", "3", "--yes"]);
    assert_eq!(undone.code, 0, "{undone}");
    assert_eq!(count(&undo_report["summary"]["undone"]), 1, "{undo_report}");
    let left: i64 = scenario
        .live
        .scalar("SELECT (SELECT count(*) FROM sites WHERE id = 3) + (SELECT count(*) FROM issues WHERE site_id = 3) + (SELECT count(*) FROM page_views WHERE site_id = 3)")
        .await;
    assert_eq!(left, 0);
    for id in ["2", "4", "5"] {
        for (table, filter) in tracker_owned(id) {
            support::assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
        }
    }
    let (undone, _) = undo(&scenario.live, &run, &["--yes"]);
    assert_eq!(undone.code, 0, "{undone}");
    let compared = assert_same_database(&before, &scenario.live).await;
    assert!(compared["public.issues"] > 0, "{compared:?}");
}
