//! A wiki's shapes (fixtures/wiki, the bench's docs schema in miniature): pages name their
//! current revision through a foreign key checked at commit, which makes pages and revisions a
//! cycle; a keyless log reaches its org both by a tenant column and through its page, and
//! holds exact duplicates. A script deletes two orgs; salvage must bring every row back —
//! none "waiting" for a revision the same transaction inserts — and verification must count
//! each log row once, however many chains reach it.

mod support;

use std::collections::BTreeMap;

use support::{
    TestDatabase, assert_same_database, pg_dump, rows_inserted, salvage, salvage_reporting,
    temp_path, with,
};

/// What the cascade of `DELETE FROM orgs WHERE id IN (1, 3)` takes (with the log rows of the
/// two orgs deleted by `org_id`): 2 orgs, 8 pages each, 3 revisions per page, 2 comments per
/// page, 3 log rows per page and 3 logins per org.
const DELETED: [(&str, i64); 5] = [
    ("public.activity", 2 * 8 * 3 + 2 * 3),
    ("public.comments", 2 * 8 * 2),
    ("public.orgs", 2),
    ("public.pages", 2 * 8),
    ("public.revisions", 2 * 8 * 3),
];

const ROWS: [(&str, i64); 5] = [
    ("public.activity", 6 * 8 * 3 + 6 * 3),
    ("public.comments", 6 * 8 * 2),
    ("public.orgs", 6),
    ("public.pages", 6 * 8),
    ("public.revisions", 6 * 8 * 3),
];

struct Wiki {
    snapshot: TestDatabase,
    live: TestDatabase,
}

impl Wiki {
    /// The wiki, a snapshot of it, and the live copy after the script.
    async fn after_the_script() -> Self {
        let snapshot = TestDatabase::create("wiki_snap").await;
        snapshot.execute_fixture("wiki/schema.sql").await;
        let live = snapshot.snapshot("wiki_live").await;
        live.execute(
            "DELETE FROM activity WHERE org_id IN (1, 3); DELETE FROM orgs WHERE id IN (1, 3)",
        )
        .await;
        let left: i64 = live
            .scalar("SELECT count(*) FROM pages WHERE org_id IN (1, 3)")
            .await;
        assert_eq!(left, 0, "the script deleted the orgs' pages");
        Self { snapshot, live }
    }

    fn args(&self, command: &str, snapshot: &str) -> Vec<String> {
        [
            command,
            "--snapshot",
            snapshot,
            "--target",
            &self.live.url,
            "--root",
            "public.orgs",
            "--tenant-column",
            "org_id",
            "--tenants",
            "1,3",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

fn deleted_total() -> i64 {
    DELETED.iter().map(|(_, rows)| rows).sum()
}

/// The plan holds every deleted row and none waits; the restore writes exactly them, verifies
/// both orgs, and live is the snapshot again, table by table.
async fn restores_whole(wiki: &Wiki, snapshot: &str) {
    let plan = salvage(&with(wiki.args("plan", snapshot), &["--format", "json"]));
    assert_eq!(plan.code, 0, "{plan}");
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("the plan is JSON");
    let tables: BTreeMap<String, (i64, i64)> = plan["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|table| {
            (
                table["table"].as_str().expect("name").to_owned(),
                (
                    table["to_add"].as_i64().expect("to_add"),
                    table["waiting"].as_i64().unwrap_or(0),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (i64, i64)> = DELETED
        .iter()
        .map(|(table, rows)| ((*table).to_owned(), (*rows, 0)))
        .collect();
    assert_eq!(tables, expected, "rows to add and waiting, per table");

    // One worker: both orgs in one group.
    let (run, report) = salvage_reporting(&with(
        wiki.args("restore", snapshot),
        &["--yes", "--jobs", "1"],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        rows_inserted(&report),
        deleted_total(),
        "{}",
        report["summary"]
    );
    // Both small orgs went in by one statement, the deferred cycle checked after it.
    for tenant in report["tenants"].as_array().expect("tenants") {
        assert_eq!(tenant["batch"], 2, "{tenant}");
    }
    assert_eq!(report["summary"]["verified"], 2, "{}", report["summary"]);
    assert_eq!(
        report["summary"]["rows_missing"], 0,
        "{}",
        report["summary"]
    );
    let activity = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|table| table["table"] == "public.activity")
        .expect("the log's figures");
    assert_eq!(
        activity["snapshot"], DELETED[0].1,
        "log rows counted once: {activity}"
    );
    assert_eq!(activity["equal"], DELETED[0].1, "{activity}");

    let compared = assert_same_database(&wiki.snapshot, &wiki.live).await;
    let rows: BTreeMap<String, i64> = ROWS
        .iter()
        .map(|(table, rows)| ((*table).to_owned(), *rows))
        .collect();
    assert_eq!(compared, rows, "rows compared per table");
}

#[tokio::test]
async fn pages_and_their_current_revisions_come_back_together_from_the_database() {
    let wiki = Wiki::after_the_script().await;
    restores_whole(&wiki, &wiki.snapshot.url.clone()).await;
}

#[tokio::test]
async fn pages_and_their_current_revisions_come_back_together_from_a_dump() {
    let wiki = Wiki::after_the_script().await;
    let dump = temp_path(&format!("{}.dump", wiki.snapshot.name));
    pg_dump(15, &wiki.snapshot, &["-Fc"], &dump, false);
    restores_whole(&wiki, dump.to_str().expect("a UTF-8 path")).await;
}

/// One of the two copies of a duplicated log row goes missing after the restore: verify
/// names exactly one missing row (not one per chain, not two copies).
#[tokio::test]
async fn one_lost_copy_of_a_duplicated_log_row_is_one_missing_row() {
    let wiki = Wiki::after_the_script().await;
    let snapshot = wiki.snapshot.url.clone();
    let run = salvage(&with(wiki.args("restore", &snapshot), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    wiki.live
        .execute(
            "DELETE FROM activity_2025 WHERE ctid = (SELECT min(ctid) FROM activity_2025 \
             WHERE page_id = 305 AND action = 'edit')",
        )
        .await;
    let copies: i64 = wiki
        .live
        .scalar("SELECT count(*) FROM activity WHERE page_id = 305 AND action = 'edit'")
        .await;
    assert_eq!(copies, 1);

    let (run, report) = salvage_reporting(&wiki.args("verify", &snapshot));
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        report["summary"]["rows_missing"], 1,
        "{}",
        report["summary"]
    );
    assert_eq!(
        report["summary"]["rows_left_behind"], 0,
        "{}",
        report["summary"]
    );
    let tenants: BTreeMap<String, bool> = report["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|tenant| {
            (
                tenant["id"].as_str().expect("id").to_owned(),
                tenant["verified"].as_bool().expect("verified"),
            )
        })
        .collect();
    assert_eq!(
        tenants,
        BTreeMap::from([("1".to_owned(), true), ("3".to_owned(), false)])
    );
}

/// Org 1's page 108 files under page 202 of org 2. With both orgs deleted and only org 1
/// restored, page 108 waits for its parent — and so do its revisions, their comments and its
/// log rows, under it: verification counts them waiting, not missing.
#[tokio::test]
async fn rows_under_a_row_that_waits_for_another_org_wait_with_it() {
    let snapshot = TestDatabase::create("wiki_snap").await;
    snapshot.execute_fixture("wiki/schema.sql").await;
    let live = snapshot.snapshot("wiki_live").await;
    live.execute(
        "DELETE FROM activity WHERE org_id IN (1, 2); DELETE FROM orgs WHERE id IN (1, 2)",
    )
    .await;
    let wiki = Wiki { snapshot, live };
    let mut args = wiki.args("restore", &wiki.snapshot.url.clone());
    let last = args.len() - 1;
    args[last] = "1".to_owned();
    let (run, report) = salvage_reporting(&with(args, &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    let summary = &report["summary"];
    assert_eq!(summary["rows_missing"], 0, "{summary}");
    assert_eq!(summary["verified"], 1, "{summary}");
    let waiting: BTreeMap<String, i64> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|table| {
            let waiting = table["waiting"].as_i64().unwrap_or(0);
            (waiting > 0).then(|| (table["table"].as_str().unwrap().to_owned(), waiting))
        })
        .collect();
    let expected: BTreeMap<String, i64> = [
        ("public.activity", 3),
        ("public.comments", 2),
        ("public.pages", 1),
        ("public.revisions", 3),
    ]
    .iter()
    .map(|(table, rows)| ((*table).to_owned(), *rows))
    .collect();
    assert_eq!(waiting, expected, "{}", report["tables"]);
    // Org 1's rows (1 org, 8 pages, 24 revisions, 16 comments, 27 log rows) but those 9.
    assert_eq!(rows_inserted(&report), 76 - 9, "{summary}");
}
