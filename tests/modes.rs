//! `restore --mode overwrite|exact` (issue 11): damaged tenants repaired in live — rows a bad
//! script updated set back, rows it deleted put back, rows written after the snapshot kept
//! (overwrite) or deleted (exact) — and nothing of any other tenant changed. Every check is
//! hand-written SQL across the two databases or counts read from the JSON report.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::rental_incident::{
    STORES, payment_ids_reaching, payment_ids_reaching_only, store_args,
};
use support::{
    Scenario, all_rows, assert_same_database, assert_same_result, compare_result, pg_dump,
    read_json, rental, salvage, temp_path, tracker_owned, with,
};

/// The bad script and the later work, in live after the snapshot.
const INCIDENT: &str = "
    -- The bad script: site 3's issues 2 and 3 renamed, a comment of issue 1 deleted; site 8's
    -- first project's budget changed.
    UPDATE issues SET title = 'RENAMED BY THE SCRIPT' WHERE site_id = 3 AND number IN (2, 3);
    DELETE FROM comments WHERE id = (SELECT min(c.id) FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 3);
    UPDATE projects SET budget = coalesce(budget, 0) + 1 WHERE site_id = 8 AND project_no = 1;
    -- Ordinary work after the snapshot, on a damaged site and on another one.
    INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
        VALUES (3, 1, 100, 'filed after the snapshot', 1, '2026-05-01 11:00:00+00');
    INSERT INTO comments (issue_id, author_id, body, created_at)
        SELECT id, 1, 'said after the snapshot', '2026-05-01 11:05:00+00' FROM issues WHERE site_id = 3 AND number = 100;
    INSERT INTO page_views (site_id, path, viewed_at) VALUES (3, '/later', '2026-05-01 10:00:00+00');
    INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
        VALUES (4, 1, 100, 'another site''s later work', 1, '2026-05-01 11:00:00+00');
    UPDATE issues SET title = 'a later edit of a site not restored' WHERE site_id = 5 AND number = 1;
";

/// The incident in live, and how many rows of site 3 it deleted (the comment and, by the
/// cascade, its reactions), counted in the snapshot by hand.
async fn incident() -> (Scenario, i64) {
    let scenario = Scenario::tracker(10).await;
    let deleted: i64 = scenario
        .snapshot
        .scalar(
            "SELECT 1 + count(*) FROM reactions WHERE comment_id = (SELECT min(c.id) FROM comments c \
             JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 3)",
        )
        .await;
    scenario.live.execute(INCIDENT).await;
    (scenario, deleted)
}

/// The rows of every table except those of `sites` (a filter per table), for checking that
/// nothing of another tenant changed.
async fn others(scenario: &Scenario, ids: &str) -> BTreeMap<String, Vec<String>> {
    let mut rows = BTreeMap::new();
    for (table, filter) in tracker_owned(ids) {
        rows.insert(
            table.to_owned(),
            scenario
                .live
                .strings(&format!(
                    "SELECT t::text FROM {table} t WHERE NOT ({filter}) ORDER BY 1"
                ))
                .await,
        );
    }
    rows
}

fn restore(scenario: &Scenario, tenants: &str, mode: &str) -> Value {
    restore_from(scenario.args("restore", tenants), mode)
}

/// Runs `args` (a restore) in `mode` and returns its report.
fn restore_from(args: Vec<String>, mode: &str) -> Value {
    let report = temp_path("modes-report.json");
    let run = salvage(&with(
        args,
        &[
            "--mode",
            mode,
            "--yes",
            "--report",
            report.to_str().unwrap(),
        ],
    ));
    assert_eq!(run.code, 0, "{run}");
    read_json(&report)
}

fn summary(report: &Value, field: &str) -> i64 {
    report["summary"][field]
        .as_i64()
        .unwrap_or_else(|| panic!("no summary.{field} in {report}"))
}

/// The keys the report says tenant `id` updated (with columns) in `table`.
fn updated(report: &Value, id: &str, table: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let tenant = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tenant| tenant["id"] == id)
        .unwrap_or_else(|| panic!("no tenant {id}"));
    tenant["changed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|changed| changed["table"]["name"] == table)
        .flat_map(|changed| changed["updated"].as_array().cloned().unwrap_or_default())
        .map(|row| {
            let strings = |value: &Value| -> Vec<String> {
                value
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            };
            (strings(&row["key"]), strings(&row["columns"]))
        })
        .collect()
}

#[tokio::test]
async fn overwrite_sets_damaged_rows_back_keeps_later_work_and_touches_no_one_else() {
    let (scenario, deleted) = incident().await;
    let before_others = others(&scenario, "3, 8").await;
    let renamed: Vec<String> = scenario
        .live
        .strings("SELECT id::text FROM issues WHERE site_id = 3 AND number IN (2, 3) ORDER BY id")
        .await;
    assert_eq!(renamed.len(), 2);

    // The plan says what it will do, per tenant.
    let plan = salvage(&with(
        scenario.args("plan", "3,8"),
        &["--mode", "overwrite", "--format", "json"],
    ));
    assert_eq!(plan.code, 0, "{plan}");
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let planned: BTreeMap<String, (i64, i64, i64)> = plan["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tenant| {
            (
                tenant["id"].as_str().unwrap().to_owned(),
                (
                    tenant["rows_to_add"].as_i64().unwrap(),
                    tenant["rows_to_update"].as_i64().unwrap(),
                    tenant["rows_to_delete"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(
        planned,
        BTreeMap::from([
            ("3".to_owned(), (deleted, 2, 0)),
            ("8".to_owned(), (0, 1, 0))
        ])
    );

    let report = restore(&scenario, "3,8", "overwrite");
    assert_eq!(summary(&report, "rows_inserted"), deleted);
    assert_eq!(summary(&report, "rows_updated"), 3);
    assert_eq!(summary(&report, "verified"), 2);
    let mut site3: Vec<(Vec<String>, Vec<String>)> = updated(&report, "3", "issues");
    site3.sort();
    assert_eq!(
        site3,
        renamed
            .iter()
            .map(|id| (vec![id.clone()], vec!["title".to_owned()]))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        updated(&report, "8", "projects"),
        vec![(
            vec!["8".to_owned(), "1".to_owned()],
            vec!["budget".to_owned()]
        )]
    );

    // Every snapshot row of sites 3 and 8 is in live with its snapshot values...
    for (table, filter) in tracker_owned("3, 8") {
        let select = format!("SELECT * FROM {table} WHERE {filter}");
        let comparison = compare_result(&scenario.snapshot, &scenario.live, &select).await;
        assert!(comparison.expected > 0, "{table}: compared no rows");
        assert_eq!(
            comparison.missing, 0,
            "{table}: snapshot rows not in live as they were"
        );
    }
    // ...their later work stays (the issue, its comment, the page view)...
    let later: i64 = scenario
        .live
        .scalar(
            "SELECT (SELECT count(*) FROM issues WHERE site_id = 3 AND number = 100) \
             + (SELECT count(*) FROM comments WHERE body = 'said after the snapshot') \
             + (SELECT count(*) FROM page_views WHERE site_id = 3 AND path = '/later')",
        )
        .await;
    assert_eq!(later, 3);
    // ...and no other tenant's row changed, including site 5's later edit.
    assert_eq!(others(&scenario, "3, 8").await, before_others);

    // The journal kept each replaced row's version before: the titles the script wrote.
    let kept: Vec<String> = scenario
        .live
        .strings(
            "SELECT before->>'title' FROM salvage.row_images WHERE action = 'update' \
             AND table_name = 'issues' ORDER BY 1",
        )
        .await;
    assert_eq!(kept, vec!["RENAMED BY THE SCRIPT"; 2]);

    // verify under the mode passes; a row damaged again fails it.
    let verify = salvage(&with(
        scenario.args("verify", "3,8"),
        &["--mode", "overwrite"],
    ));
    assert_eq!(verify.code, 0, "{verify}");
    scenario
        .live
        .execute("UPDATE issues SET title = 'damaged again' WHERE site_id = 8 AND number = 1")
        .await;
    let verify = salvage(&with(
        scenario.args("verify", "3,8"),
        &["--mode", "overwrite"],
    ));
    assert_eq!(verify.code, 1, "{verify}");
    assert!(
        verify
            .stdout
            .contains("1 rows differ from the snapshot after mode overwrite"),
        "{verify}"
    );
    // Mode missing keeps differing rows: the same database verifies.
    let verify = salvage(&scenario.args("verify", "3,8"));
    assert_eq!(verify.code, 0, "{verify}");
}

#[tokio::test]
async fn exact_makes_the_tenant_equal_to_the_snapshot() {
    let (scenario, deleted) = incident().await;
    let before_others = others(&scenario, "3").await;
    // From a custom-format dump of the snapshot this time.
    let dump = temp_path("modes-exact.dump");
    pg_dump(15, &scenario.snapshot, &["-Fc"], &dump, false);
    let mut args = scenario.args("restore", "3");
    args[2] = dump.to_str().unwrap().to_owned();
    let report = restore_from(args, "exact");
    assert_eq!(summary(&report, "rows_inserted"), deleted);
    assert_eq!(summary(&report, "rows_updated"), 2);
    // The later issue, its comment and the later page view.
    assert_eq!(summary(&report, "rows_deleted"), 3);
    assert_eq!(summary(&report, "verified"), 1);
    // Site 3 is the snapshot's, both ways, table by table.
    let mut compared = 0;
    for (table, filter) in tracker_owned("3") {
        compared += assert_same_result(
            &scenario.snapshot,
            &scenario.live,
            &format!("SELECT * FROM {table} WHERE {filter}"),
        )
        .await;
    }
    let expected: i64 = {
        let mut total = 0;
        for (table, filter) in tracker_owned("3") {
            total += scenario
                .snapshot
                .scalar::<i64>(&format!("SELECT count(*) FROM {table} WHERE {filter}"))
                .await;
        }
        total
    };
    assert_eq!(compared, expected);
    assert_eq!(others(&scenario, "3").await, before_others);
    let verify = salvage(&with(scenario.args("verify", "3"), &["--mode", "exact"]));
    assert_eq!(verify.code, 0, "{verify}");
    // Later work in site 3 again: exact's verify fails, naming the table.
    scenario
        .live
        .execute("INSERT INTO page_views (site_id, path, viewed_at) VALUES (3, '/again', now())")
        .await;
    let verify = salvage(&with(scenario.args("verify", "3"), &["--mode", "exact"]));
    assert_eq!(verify.code, 1, "{verify}");
    assert!(
        verify
            .stdout
            .contains("public.page_views: 0 rows differ from the snapshot and 1 are not in it"),
        "{verify}"
    );
}

#[tokio::test]
async fn a_mode_that_changes_rows_needs_the_journal() {
    let (scenario, _) = incident().await;
    let before = all_rows(&scenario.live).await;
    let run = salvage(&with(
        scenario.args("restore", "3"),
        &["--mode", "overwrite", "--yes", "--no-journal"],
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("does not run with --no-journal"),
        "{run}"
    );
    assert_eq!(all_rows(&scenario.live).await, before);
}

#[tokio::test]
async fn rows_reaching_a_tenant_not_chosen_are_left_alone_and_named() {
    let live = rental(STORES).await;
    let snapshot = live.snapshot("rental_snap").await;
    // The bad script: every payment reaching store 1, by any chain, 100 more.
    live.execute(&format!(
        "UPDATE payment SET amount = amount + 100 WHERE payment_id::text IN ({})",
        payment_ids_reaching(1)
    ))
    .await;
    let reaching = live.strings(&payment_ids_reaching(1)).await;
    let only = live.strings(&payment_ids_reaching_only(1)).await;
    // Payments of store 1 that reach other stores too (through a rental of another
    // store's item, its staff…): the fixture has both kinds.
    let crossing = reaching.len() - only.len();
    assert!(
        !only.is_empty() && crossing > 0,
        "{} {crossing}",
        only.len()
    );

    let plan = salvage(&with(
        store_args("plan", &snapshot.url, &live.url, "1"),
        &["--mode", "overwrite", "--format", "json"],
    ));
    assert_eq!(plan.code, 0, "{plan}");
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let payment = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|table| table["table"] == "public.payment")
        .unwrap();
    assert_eq!(payment["to_update"].as_u64(), Some(only.len() as u64));
    assert_eq!(payment["left_alone"].as_u64(), Some(crossing as u64));
    assert!(
        plan["tenants"][0]["left_alone"][0].as_str().is_some_and(
            |text| text.starts_with("public.payment: update of (payment_id, payment_date)=(")
        ),
        "{plan}"
    );

    let report = temp_path("modes-rental.json");
    let run = salvage(&with(
        store_args("restore", &snapshot.url, &live.url, "1"),
        &[
            "--mode",
            "overwrite",
            "--yes",
            "--report",
            report.to_str().unwrap(),
        ],
    ));
    assert_eq!(run.code, 0, "{run}");
    let report = read_json(&report);
    assert_eq!(summary(&report, "rows_updated"), only.len() as i64);
    assert_eq!(summary(&report, "verified"), 1);
    // Store 1's own payments are the snapshot's again; the crossing ones still carry the
    // script's amounts: nothing reaching stores 2-4 was written.
    let select = |ids: &[String]| {
        format!(
            "SELECT * FROM payment WHERE payment_id::text IN ('{}')",
            ids.join("', '")
        )
    };
    assert_same_result(&snapshot, &live, &select(&only)).await;
    let crossing_ids: Vec<String> = reaching
        .iter()
        .filter(|id| !only.contains(id))
        .cloned()
        .collect();
    let unchanged = compare_result(&snapshot, &live, &select(&crossing_ids)).await;
    assert_eq!(
        (unchanged.expected, unchanged.missing),
        (crossing as i64, crossing as i64),
        "every crossing payment keeps its live amount"
    );
}

/// `undo --target LIVE --run ID --yes --format json MORE`: exit code and report.
fn undo(scenario: &Scenario, run: &str, more: &[&str]) -> (i32, Value) {
    let result = salvage(&with(
        [
            "undo",
            "--target",
            &scenario.live.url,
            "--run",
            run,
            "--yes",
            "--format",
            "json",
        ]
        .map(str::to_owned)
        .to_vec(),
        more,
    ));
    let report: Value = serde_json::from_str(&result.stdout)
        .unwrap_or_else(|error| panic!("the output is not JSON ({error}):\n{result}"));
    (result.code, report)
}

fn run_id(report: &Value) -> String {
    report["run"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run ID in {report}"))
        .to_owned()
}

#[tokio::test]
async fn undo_after_each_mode_returns_live_to_its_state_before_the_restore() {
    for mode in ["missing", "overwrite", "exact"] {
        let (scenario, _) = incident().await;
        let before = scenario.live.snapshot("before").await;
        let report = restore(&scenario, "3,8", mode);
        let changed = summary(&report, "rows_inserted")
            + report["summary"]["rows_updated"].as_i64().unwrap_or(0)
            + report["summary"]["rows_deleted"].as_i64().unwrap_or(0);
        assert!(changed > 0, "{mode}: the restore changed nothing");
        let run = run_id(&report);
        let (code, undone) = undo(&scenario, &run, &[]);
        assert_eq!(code, 0, "{mode}: {undone}");
        assert_eq!(undone["summary"]["undone"], 2, "{mode}: {undone}");
        let reverted = undone["summary"]["rows_removed"].as_i64().unwrap()
            + undone["summary"]["rows_put_back"].as_i64().unwrap()
            + undone["summary"]["rows_reinserted"].as_i64().unwrap();
        assert_eq!(reverted, changed, "{mode}: {undone}");
        // Every table, both ways, by typed value.
        let compared = assert_same_database(&before, &scenario.live).await;
        assert!(compared.values().sum::<i64>() > 0);
        assert!(compared["public.issues"] > 0 && compared["public.comments"] > 0);
        // A second undo is a no-op.
        let (code, again) = undo(&scenario, &run, &[]);
        assert_eq!(
            (code, again["state"].as_str()),
            (0, Some("nothing_to_do")),
            "{again}"
        );
        assert_same_database(&before, &scenario.live).await;
    }
}

#[tokio::test]
async fn undo_refuses_rows_changed_or_referenced_after_the_run() {
    let (scenario, _) = incident().await;
    let restored_comment: String = scenario
        .snapshot
        .strings(
            "SELECT min(c.id)::text FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 3",
        )
        .await
        .remove(0);
    let report = restore(&scenario, "3,8", "overwrite");
    let run = run_id(&report);
    // After the run: an edit of site 8's overwritten project, and a reaction to site 3's
    // restored comment (reactions go with their comment: ON DELETE CASCADE).
    scenario
        .live
        .execute(&format!(
            "UPDATE projects SET name = 'edited after the run' WHERE site_id = 8 AND project_no = 1; \
             INSERT INTO reactions (comment_id, user_id, emoji, reacted_at) VALUES ({restored_comment}, 1, 'later', now())"
        ))
        .await;
    let before = all_rows(&scenario.live).await;
    let (code, refused) = undo(&scenario, &run, &[]);
    assert_eq!(code, 1, "{refused}");
    let conflicts = |report: &Value, tenant: &str| -> Vec<(String, Vec<String>, String)> {
        report["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tenant"] == tenant)
            .unwrap()["conflicts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                (
                    c["table"].as_str().unwrap().to_owned(),
                    c["key"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|k| k.as_str().unwrap().to_owned())
                        .collect(),
                    c["what"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        conflicts(&refused, "8"),
        vec![(
            "public.projects".to_owned(),
            vec!["8".to_owned(), "1".to_owned()],
            "changed".to_owned()
        )]
    );
    assert_eq!(
        conflicts(&refused, "3"),
        vec![(
            "public.comments".to_owned(),
            vec![restored_comment.clone()],
            "referenced".to_owned()
        )]
    );
    assert_eq!(
        all_rows(&scenario.live).await,
        before,
        "a refused undo wrote"
    );
    // --force puts site 8's project back; site 3 stays refused: removing the comment would
    // take the later reaction with it.
    let (code, forced) = undo(&scenario, &run, &["--force"]);
    assert_eq!(code, 1, "{forced}");
    assert_eq!(forced["summary"]["undone"], 1, "{forced}");
    assert_eq!(forced["summary"]["refused"], 1, "{forced}");
    let later: i64 = scenario
        .live
        .scalar(&format!(
            "SELECT count(*) FROM reactions WHERE comment_id = {restored_comment} AND emoji = 'later'"
        ))
        .await;
    assert_eq!(later, 1);
    let budget_back: i64 = scenario
        .live
        .scalar("SELECT count(*) FROM projects WHERE site_id = 8 AND project_no = 1 AND name <> 'edited after the run'")
        .await;
    assert_eq!(budget_back, 1);
}

#[tokio::test]
async fn a_reviewed_exact_plan_refuses_more_deletes_than_it_showed() {
    let (scenario, _) = incident().await;
    let plan_file = temp_path("modes-plan.json");
    let plan = salvage(&with(
        scenario.args("plan", "3"),
        &["--mode", "exact", "--out", plan_file.to_str().unwrap()],
    ));
    assert_eq!(plan.code, 0, "{plan}");
    // More work in site 3 after the review: exact would now delete one more row.
    scenario
        .live
        .execute(
            "INSERT INTO page_views (site_id, path, viewed_at) VALUES (3, '/after-review', now())",
        )
        .await;
    let before = all_rows(&scenario.live).await;
    let target = scenario.live.url.clone();
    let run = salvage(&[
        "restore",
        "--plan",
        plan_file.to_str().unwrap(),
        "--target",
        &target,
        "--yes",
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("public.page_views would now have deleted 2 rows, the plan showed 1"),
        "{run}"
    );
    assert_eq!(
        all_rows(&scenario.live).await,
        before,
        "a refused plan wrote"
    );
    // A mode other than the reviewed one is refused too.
    let run = salvage(&[
        "restore",
        "--plan",
        plan_file.to_str().unwrap(),
        "--target",
        &target,
        "--yes",
        "--mode",
        "overwrite",
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("the plan was reviewed for mode exact"),
        "{run}"
    );
}

#[tokio::test]
async fn undoing_one_of_two_tenants_takes_the_rows_reaching_both_which_then_wait_for_it() {
    let live = rental(STORES).await;
    let snapshot = live.snapshot("rental_snap").await;
    live.execute("DELETE FROM store WHERE store_id IN (1, 2)")
        .await;
    let before = live.snapshot("rental_before").await;
    // Payments reaching both stores, counted by hand in the snapshot: restored with the two,
    // they reference rows of store 1's (its customers, staff, rentals).
    let both: i64 = snapshot
        .scalar(&support::rental_incident::payments_reaching_both(1, 2))
        .await;
    assert!(both > 0);
    let report = temp_path("modes-rental-both.json");
    let run = salvage(&with(
        store_args("restore", &snapshot.url, &live.url, "1,2"),
        &["--yes", "--report", report.to_str().unwrap()],
    ));
    assert_eq!(run.code, 0, "{run}");
    let run = run_id(&read_json(&report));
    let undo_of = |tenants: &str| {
        let result = salvage(&[
            "undo",
            "--target",
            &live.url,
            "--run",
            &run,
            "--tenants",
            tenants,
            "--yes",
            "--format",
            "json",
        ]);
        let report: Value = serde_json::from_str(&result.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{result}"));
        (result.code, report)
    };
    // Store 1 alone: the rows reaching it go, those reaching store 2 too (they cannot stay
    // without store 1's rows they reference).
    let (code, first) = undo_of("1");
    assert_eq!(code, 0, "{first}");
    let left: i64 = live
        .scalar(&support::rental_incident::payments_reaching_both(1, 2))
        .await;
    assert_eq!(left, 0);
    // Store 2 is then as a restore of store 2 alone leaves it: verified, its rows that reach
    // store 1 waiting for store 1.
    let verified = temp_path("modes-rental-verify.json");
    let verify = salvage(&with(
        store_args("verify", &snapshot.url, &live.url, "2"),
        &["--report", verified.to_str().unwrap()],
    ));
    assert_eq!(verify.code, 0, "{verify}");
    let verified = read_json(&verified);
    let waiting_payments = verified["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|table| table["table"] == "public.payment")
        .and_then(|table| table["waiting"].as_i64())
        .unwrap_or(0);
    assert_eq!(waiting_payments, both, "{verified}");
    // Undoing store 2 as well: live is as it was before the restore, every table both ways.
    let (code, second) = undo_of("2");
    assert_eq!(code, 0, "{second}");
    let compared = assert_same_database(&before, &live).await;
    assert!(compared["public.payment"] > 0);
}
