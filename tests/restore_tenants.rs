//! An incident responder restores sites that a script deleted, from a snapshot database,
//! into the live database that other customers keep using.

mod support;

use support::{
    Scenario, all_rows, assert_only_added, assert_same_rows, read_json, rows_inserted, salvage,
    salvage_reporting, temp_path, tracker_owned, with,
};

/// What the incident's script did: three sites deleted (their projects, issues, comments and
/// reactions went by cascade, their page views by hand), and the users of two of them.
const DELETE_SITES_3_7_11: &str = "
    DELETE FROM page_views WHERE site_id IN (3, 7, 11);
    DELETE FROM sites WHERE id IN (3, 7, 11);
    DELETE FROM users WHERE id IN (15, 16, 23, 24);
";

/// Other customers keep working after the snapshot was taken.
const OTHERS_KEEP_WORKING: &str = "
    INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
        VALUES (1, 1, 1000, 'written after the snapshot', 1, now());
    INSERT INTO comments (issue_id, author_id, body, created_at)
        SELECT id, 2, 'a new comment', now() FROM issues WHERE site_id = 2 ORDER BY id LIMIT 1;
    UPDATE issues SET title = 'renamed after the snapshot' WHERE site_id = 5;
    DELETE FROM comments WHERE id = (SELECT min(c.id) FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 6);
    INSERT INTO sites (slug, name, plan_id, created_at) VALUES ('brand-new', 'A new customer', 2, now());
";

#[tokio::test]
async fn restores_deleted_sites_into_live_without_touching_anyone_else() {
    let scenario = Scenario::tracker(30).await;
    let deleted_comment: i64 = scenario
        .live
        .scalar("SELECT min(c.id) FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 6")
        .await;
    scenario.live.execute(DELETE_SITES_3_7_11).await;
    scenario.live.execute(OTHERS_KEEP_WORKING).await;
    let before = all_rows(&scenario.live).await;

    let report = temp_path("restore-report.json");
    let run = salvage(&with(
        scenario.args("restore", "3,7,11"),
        &["--yes", "--jobs", "2", "--report", report.to_str().unwrap()],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Restored 3 of 3 tenants"), "{run}");

    // The restored sites equal the snapshot, table by table, value by value.
    let mut restored = 0;
    for (table, filter) in tracker_owned("3, 7, 11") {
        restored += assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
    }
    // Their deleted users came back too (shared rows restored upwards, recursively: user 16
    // was invited by user 15).
    let users = assert_same_rows(
        &scenario.snapshot,
        &scenario.live,
        "users",
        "id IN (15, 16, 23, 24)",
    )
    .await;
    assert_eq!(users, 4);

    // Nothing that existed before was changed or removed; what was added is exactly the
    // restored rows.
    let after = all_rows(&scenario.live).await;
    let added: usize = assert_only_added(&before, &after).values().sum();
    assert_eq!(added as i64, restored + users);
    let report = read_json(&report);
    assert_eq!(report["summary"]["rows_inserted"], serde_json::json!(added));
    assert_eq!(report["summary"]["restored"], 3);
    assert_eq!(report["exit_code"], 0);
    assert!(
        report["tenants"][0]["tables"]["public.comments"]["inserted"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Another tenant's deletion after the snapshot stays deleted.
    let resurrected: i64 = scenario
        .live
        .scalar(&format!(
            "SELECT count(*) FROM comments WHERE id = {deleted_comment}"
        ))
        .await;
    assert_eq!(resurrected, 0);

    // Sequences are ahead of every restored value.
    for (sequence, table) in [
        ("sites_id_seq", "sites"),
        ("issues_id_seq", "issues"),
        ("comments_id_seq", "comments"),
        ("users_id_seq", "users"),
        ("page_views_id_seq", "page_views"),
    ] {
        let ahead: bool = scenario
            .live
            .scalar(&format!(
                "SELECT (SELECT last_value FROM {sequence}) >= (SELECT max(id) FROM {table})"
            ))
            .await;
        assert!(ahead, "{sequence} is behind {table}");
    }

    // A second run is a no-op that succeeds.
    let (again, report) = salvage_reporting(&with(scenario.args("restore", "3,7,11"), &["--yes"]));
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(rows_inserted(&report), 0, "{again}");
    assert_eq!(all_rows(&scenario.live).await, after);

    // And verify agrees, on its own.
    let verify = salvage(&scenario.args("verify", "3,7,11"));
    assert_eq!(verify.code, 0, "{verify}");
    assert!(
        verify
            .stdout
            .contains("Verified 3 tenants: every snapshot row present in live."),
        "{verify}"
    );
}

#[tokio::test]
async fn unknown_or_mistyped_tenant_ids_are_refused_and_nothing_is_written() {
    let scenario = Scenario::tracker(10).await;
    scenario
        .live
        .execute("DELETE FROM sites WHERE id IN (3, 4)")
        .await;
    let before = all_rows(&scenario.live).await;

    let unknown = salvage(&with(
        scenario.args("restore", "3,424242,4,999"),
        &["--yes"],
    ));
    assert_eq!(unknown.code, 2, "{unknown}");
    assert!(unknown.stderr.contains("'424242', '999'"), "{unknown}");
    assert!(unknown.stderr.contains("public.sites"), "{unknown}");

    // The incident's root cause: IDs of another kind. They are named, and nothing happens.
    let mistyped = salvage(&with(scenario.args("restore", "3,app-17"), &["--yes"]));
    assert_eq!(mistyped.code, 2, "{mistyped}");
    assert!(
        mistyped
            .stderr
            .contains("'app-17' is not a valid bigint for public.sites.id"),
        "{mistyped}"
    );

    assert_eq!(all_rows(&scenario.live).await, before);
}

#[tokio::test]
async fn a_tenant_whose_slug_was_taken_is_rolled_back_alone() {
    let scenario = Scenario::tracker(10).await;
    scenario
        .live
        .execute(
            "DELETE FROM page_views WHERE site_id IN (3, 7);
             DELETE FROM sites WHERE id IN (3, 7);
             -- a new customer signed up with the deleted site's slug
             INSERT INTO sites (slug, name, plan_id, created_at) VALUES ('site-0007', 'Someone new', 1, now());",
        )
        .await;
    let newcomer_before = scenario
        .live
        .strings("SELECT s::text FROM sites s WHERE slug = 'site-0007'")
        .await;

    let report = temp_path("conflict-report.json");
    let run = salvage(&with(
        scenario.args("restore", "3,7"),
        &["--yes", "--report", report.to_str().unwrap()],
    ));
    assert_eq!(run.code, 1, "{run}");

    // Site 3 is back, whole.
    for (table, filter) in tracker_owned("3") {
        assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
    }
    // Nothing of site 7 was written; the newcomer is untouched.
    let site_7_rows: i64 = scenario
        .live
        .scalar("SELECT (SELECT count(*) FROM sites WHERE id = 7) + (SELECT count(*) FROM projects WHERE site_id = 7) + (SELECT count(*) FROM issues WHERE site_id = 7) + (SELECT count(*) FROM page_views WHERE site_id = 7)")
        .await;
    assert_eq!(site_7_rows, 0);
    assert_eq!(
        scenario
            .live
            .strings("SELECT s::text FROM sites s WHERE slug = 'site-0007'")
            .await,
        newcomer_before
    );

    let report = read_json(&report);
    let tenant_7 = &report["tenants"][1];
    assert_eq!(tenant_7["id"], "7");
    assert_eq!(tenant_7["status"], "failed");
    assert!(
        tenant_7["error"]
            .as_str()
            .unwrap()
            .contains("sites_slug_key"),
        "{tenant_7}"
    );
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["exit_code"], 1);
}

#[tokio::test]
async fn without_yes_and_without_a_terminal_it_refuses_to_write() {
    let scenario = Scenario::tracker(5).await;
    scenario
        .live
        .execute("DELETE FROM sites WHERE id = 2")
        .await;
    let before = all_rows(&scenario.live).await;
    let run = salvage(&scenario.args("restore", "2"));
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("--yes"), "{run}");
    // The plan was shown before refusing.
    assert!(run.stdout.contains("site-0002"), "{run}");
    assert_eq!(all_rows(&scenario.live).await, before);
}

#[tokio::test]
async fn a_site_that_still_exists_only_gets_its_missing_rows() {
    let scenario = Scenario::tracker(6).await;
    scenario
        .live
        .execute(
            "DELETE FROM comments WHERE issue_id IN (SELECT id FROM issues WHERE site_id = 4 AND number <= 3);
             UPDATE projects SET name = 'renamed in live' WHERE site_id = 4 AND project_no = 1;",
        )
        .await;
    let plan = salvage(&scenario.args("plan", "4"));
    assert_eq!(plan.code, 0, "{plan}");
    assert!(plan.stdout.contains("present"), "{plan}");

    // The deleted comments, and the reactions that went with them.
    let missing: i64 = scenario
        .snapshot
        .scalar(
            "SELECT (SELECT count(*) FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 4 AND i.number <= 3)
                  + (SELECT count(*) FROM reactions r JOIN comments c ON c.id = r.comment_id JOIN issues i ON i.id = c.issue_id
                     WHERE i.site_id = 4 AND i.number <= 3)",
        )
        .await;
    let run = salvage(&with(scenario.args("restore", "4"), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains(&format!("{missing} rows inserted")),
        "{run}"
    );
    assert_same_rows(&scenario.snapshot, &scenario.live, "reactions", "comment_id IN (SELECT c.id FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 4)").await;
    assert_same_rows(
        &scenario.snapshot,
        &scenario.live,
        "comments",
        "issue_id IN (SELECT id FROM issues WHERE site_id = 4)",
    )
    .await;
    // The live change is kept (mode missing), and verification reports it as different.
    let name: String = scenario
        .live
        .scalar("SELECT name FROM projects WHERE site_id = 4 AND project_no = 1")
        .await;
    assert_eq!(name, "renamed in live");
    assert!(run.stdout.contains("1 row differs (kept)"), "{run}");
}

#[tokio::test]
async fn tenants_restore_in_parallel_and_read_from_a_file() {
    let scenario = Scenario::tracker(40).await;
    scenario.live.execute("DELETE FROM page_views WHERE site_id BETWEEN 11 AND 30; DELETE FROM sites WHERE id BETWEEN 11 AND 30").await;
    let file = temp_path("tenants.txt");
    let ids: Vec<String> = (11..=30)
        .map(|id| format!("{id}   # site-00{id}"))
        .collect();
    std::fs::write(
        &file,
        format!("# the deleted sites\n\n{}\n", ids.join("\n")),
    )
    .unwrap();
    let mut args = scenario.args("restore", "");
    args.truncate(args.len() - 2);
    let run = salvage(&with(
        args,
        &[
            "--tenants-file",
            file.to_str().unwrap(),
            "--jobs",
            "4",
            "--yes",
        ],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Restored 20 of 20 tenants"), "{run}");
    let ids: Vec<String> = (11..=30).map(|id| id.to_string()).collect();
    for (table, filter) in tracker_owned(&ids.join(", ")) {
        assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
    }
}

#[tokio::test]
async fn verify_names_a_row_that_is_missing_and_exits_1() {
    let scenario = Scenario::tracker(5).await;
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id = 2; DELETE FROM sites WHERE id = 2")
        .await;
    let run = salvage(&with(scenario.args("restore", "2"), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    let comment: i64 = scenario
        .live
        .scalar("SELECT min(c.id) FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 2")
        .await;
    // The comment's reactions go with it (ON DELETE CASCADE).
    let reactions: i64 = scenario
        .live
        .scalar(&format!(
            "SELECT count(*) FROM reactions WHERE comment_id = {comment}"
        ))
        .await;
    scenario
        .live
        .execute(&format!("DELETE FROM comments WHERE id = {comment}"))
        .await;
    scenario
        .live
        .execute("UPDATE projects SET budget = budget + 1 WHERE site_id = 2 AND project_no = 2")
        .await;
    // Written after the snapshot: live-only, which is not a failure.
    scenario
        .live
        .execute(
            "INSERT INTO comments (issue_id, author_id, body, created_at)
             SELECT issue_id, author_id, 'written after the snapshot', now() FROM comments
             WHERE issue_id IN (SELECT id FROM issues WHERE site_id = 2) LIMIT 1",
        )
        .await;

    let report = temp_path("verify-report.json");
    let verify = salvage(&with(
        scenario.args("verify", "2"),
        &["--report", report.to_str().unwrap()],
    ));
    assert_eq!(verify.code, 1, "{verify}");
    assert!(verify.stdout.contains("FAILED: "), "{verify}");
    assert!(
        verify
            .stdout
            .contains(&format!("public.comments missing key(s) (id)=({comment})")),
        "{verify}"
    );
    assert!(
        verify
            .stdout
            .contains("public.projects different key(s) (site_id, project_no)=(2, 2)"),
        "{verify}"
    );
    let report = read_json(&report);
    assert_eq!(
        report["summary"]["rows_missing"],
        serde_json::json!(1 + reactions)
    );
    assert_eq!(report["summary"]["rows_different"], serde_json::json!(1));
    assert_eq!(
        report["tenants"][0]["tables"]["public.comments"]["missing_examples"],
        serde_json::json!([format!("(id)=({comment})")])
    );
    let comments = &report["tenants"][0]["tables"]["public.comments"];
    assert_eq!(comments["live_only"], serde_json::json!(1), "{comments}");
    let in_snapshot: i64 = scenario
        .snapshot
        .scalar("SELECT count(*) FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id = 2")
        .await;
    assert_eq!(
        comments["equal"],
        serde_json::json!(in_snapshot - 1),
        "{comments}"
    );
}

/// Small tenants are written several to a statement; when one of them cannot go in (here a
/// check live added after the snapshot, which the plan does not foresee), the statement is
/// rolled back and each runs alone: the others are restored whole (and journaled as their
/// own), the one refused fails and writes nothing.
#[tokio::test]
async fn a_tenant_that_fails_in_a_batch_of_small_tenants_fails_alone() {
    let scenario = Scenario::tracker(10).await;
    scenario
        .live
        .execute(
            "DELETE FROM page_views WHERE site_id IN (2, 3, 5, 7);
             DELETE FROM sites WHERE id IN (2, 3, 5, 7);
             ALTER TABLE issues ADD CONSTRAINT no_site_5 CHECK (site_id <> 5) NOT VALID;",
        )
        .await;
    let (run, report) = salvage_reporting(&with(
        scenario.args("restore", "2,3,5,7"),
        &["--yes", "--jobs", "1"],
    ));
    assert_eq!(run.code, 1, "{run}");
    let tenants = report["tenants"].as_array().expect("tenants");
    assert_eq!(tenants.len(), 4, "{report}");
    let run_id = report["run"]["id"].as_str().expect("a journaled run");
    let mut restored = 0;
    for tenant in tenants {
        let id = tenant["id"].as_str().expect("an ID");
        let recorded: i64 = scenario
            .live
            .scalar(&format!(
                "SELECT count(*) FROM salvage.row_images i JOIN salvage.run_tenants t USING (run_id, position) \
                 WHERE i.run_id = '{run_id}' AND t.tenant = '{id}'"
            ))
            .await;
        let inserted: i64 = tenant["tables"]
            .as_object()
            .expect("tables")
            .values()
            .map(|table| table["inserted"].as_i64().expect("a count"))
            .sum();
        assert_eq!(recorded, inserted, "{tenant}");
        if id == "5" {
            assert_eq!(tenant["status"], "failed", "{tenant}");
            assert!(
                tenant["error"]
                    .as_str()
                    .expect("an error")
                    .contains("no_site_5"),
                "{tenant}"
            );
            assert_eq!(inserted, 0, "{tenant}");
            continue;
        }
        assert_eq!(tenant["status"], "restored", "{tenant}");
        // Written alone, once the batch they were in was rolled back.
        assert!(tenant.get("batch").is_none(), "{tenant}");
        assert!(inserted > 0, "{tenant}");
        for (table, filter) in tracker_owned(id) {
            restored += assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
        }
    }
    assert_eq!(restored, rows_inserted(&report), "{report}");
    let site_5_rows: i64 = scenario
        .live
        .scalar("SELECT (SELECT count(*) FROM sites WHERE id = 5) + (SELECT count(*) FROM projects WHERE site_id = 5) + (SELECT count(*) FROM issues WHERE site_id = 5) + (SELECT count(*) FROM page_views WHERE site_id = 5)")
        .await;
    assert_eq!(site_5_rows, 0);
}

/// Tenants with many rows of a table reached through an index: the plan and verification
/// read them in two halves on two connections at once. Every row comes back, each half's
/// rows are checked, and the counts say so.
#[tokio::test]
async fn rows_read_in_halves_on_two_connections_all_come_back_and_are_checked() {
    let scenario = Scenario::tracker(40).await;
    let many = "INSERT INTO page_views (id, site_id, path, viewed_at) \
                SELECT 2000000 + g, 3 + g % 3, '/many/' || g, now() FROM generate_series(1, 90000) AS g; \
                ANALYZE";
    scenario.snapshot.execute(many).await;
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id IN (3, 4, 5); DELETE FROM sites WHERE id IN (3, 4, 5); ANALYZE")
        .await;
    let before = all_rows(&scenario.live).await;

    let report = temp_path("halves-report.json");
    let run = salvage(&with(
        scenario.args("restore", "3,4,5"),
        &["--yes", "--report", report.to_str().unwrap()],
    ));
    assert_eq!(run.code, 0, "{run}");
    let mut restored = 0;
    for (table, filter) in tracker_owned("3, 4, 5") {
        restored += assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
    }
    let after = all_rows(&scenario.live).await;
    let added: usize = assert_only_added(&before, &after).values().sum();
    assert_eq!(added as i64, restored);
    let report = read_json(&report);
    for (number, site) in [(0, 3), (1, 4), (2, 5)] {
        let in_snapshot: i64 = scenario
            .snapshot
            .scalar(&format!(
                "SELECT count(*) FROM page_views WHERE site_id = {site}"
            ))
            .await;
        assert!(in_snapshot > 30_000, "{in_snapshot}");
        let tenant = &report["tenants"][number];
        assert_eq!(tenant["verified"], true, "{tenant}");
        let page_views = &tenant["tables"]["public.page_views"];
        assert_eq!(page_views["inserted"], in_snapshot, "{page_views}");
        assert_eq!(page_views["equal"], in_snapshot, "{page_views}");
        assert_eq!(page_views["missing"], 0, "{page_views}");
    }
}
