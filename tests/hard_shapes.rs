//! Real schemas are not trees: cycles, self-references, partitions without keys, identity
//! and generated columns, polymorphic references, rows shared by two tenants, drift and
//! conflicts. Each shape: snapshot → delete tenants → others write → restore → exact
//! equality by typed comparison, others unchanged, a second run changes nothing, sequences
//! ahead.

mod support;

use support::{
    Shapes, all_rows, assert_only_added, assert_same_result, read_json, rows_inserted, salvage,
    salvage_reporting, shapes_owned, temp_path, with,
};

/// Other accounts keep working after the snapshot: a new doc (identity by default and the
/// ticket sequence), a new folder (identity always), an event, an edited doc.
const OTHERS_KEEP_WORKING: &str = "
    INSERT INTO docs (account_id, folder_id, code, author_email, title)
        VALUES (1, 1, 'D-NEW', 'p6@shapes.test', 'written after the snapshot');
    INSERT INTO folders (team_id, title) VALUES (7, 'new folder');
    INSERT INTO events (account_id, at, kind) VALUES (3, '2026-05-01 00:00:00+00', 'later');
    UPDATE docs SET title = 'edited after the snapshot' WHERE id = 40;
";

async fn assert_accounts_equal(shapes: &Shapes, ids: &str) -> i64 {
    let mut rows = 0;
    for (_, select) in shapes_owned(ids) {
        rows += assert_same_result(&shapes.snapshot, &shapes.live, &select).await;
    }
    rows
}

#[tokio::test]
async fn cycles_self_references_partitions_and_identities_restore_exactly() {
    let shapes = Shapes::new(6).await;
    shapes.delete_accounts("2, 5").await;
    shapes.live.execute(OTHERS_KEEP_WORKING).await;
    let before = all_rows(&shapes.live).await;

    let report = temp_path("shapes-report.json");
    let run = salvage(&with(
        shapes.args("restore", "2,5"),
        &["--yes", "--jobs", "2", "--report", report.to_str().unwrap()],
    ));
    assert_eq!(run.code, 0, "{run}");
    // The plan said how each cycle is inserted (its notes are wrapped to the width).
    let words = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("cycle public.accounts ↔ public.teams: broken by checking accounts_default_team_fkey at commit"), "{run}");
    assert!(
        words.contains("cycle public.docs ↔ public.folders: inserted together in one statement"),
        "{run}"
    );

    let restored = assert_accounts_equal(&shapes, "2, 5").await;
    let after = all_rows(&shapes.live).await;
    let added: usize = assert_only_added(&before, &after).values().sum();
    assert_eq!(
        added as i64, restored,
        "exactly the accounts' rows were added"
    );
    let report = read_json(&report);
    assert_eq!(report["summary"]["rows_inserted"], serde_json::json!(added));

    // Generated columns were recomputed by the server, identity and default sequences are
    // ahead of every restored value, and the restored ALWAYS identities kept their values.
    for (sequence, sql) in [
        ("accounts_id_seq", "SELECT max(id) FROM accounts"),
        ("folders_id_seq", "SELECT max(id) FROM folders"),
        ("docs_id_seq", "SELECT max(id) FROM docs"),
        ("comments_id_seq", "SELECT max(id) FROM comments"),
        ("ticket_numbers", "SELECT max(ticket_no) FROM docs"),
    ] {
        let ahead: bool = shapes
            .live
            .scalar(&format!(
                "SELECT (SELECT last_value FROM {sequence}) >= ({sql})"
            ))
            .await;
        assert!(ahead, "{sequence} is behind: {sql}");
    }
    let new_doc: i64 = shapes
        .live
        .scalar("INSERT INTO docs (account_id, folder_id, code, author_email, title) VALUES (1, 1, 'D-NEWER', 'p6@shapes.test', 'after the restore') RETURNING id")
        .await;
    let max_restored: i64 = shapes.snapshot.scalar("SELECT max(id) FROM docs").await;
    assert!(new_doc > max_restored);
    shapes
        .live
        .execute("DELETE FROM docs WHERE code = 'D-NEWER'")
        .await;

    let (again, again_report) = salvage_reporting(&with(shapes.args("restore", "2,5"), &["--yes"]));
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(rows_inserted(&again_report), 0, "{again}");
    assert_eq!(all_rows(&shapes.live).await, after);
    let verify = salvage(&shapes.args("verify", "2,5"));
    assert_eq!(verify.code, 0, "{verify}");
}

#[tokio::test]
async fn a_link_to_an_account_not_restored_waits_for_it() {
    let shapes = Shapes::new(5).await;
    shapes.delete_accounts("2, 3").await;

    let run = salvage(&with(shapes.args("restore", "2"), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains(
            "tenant 2: public.doc_links (from_doc, to_doc)=(13, 25) waits for public.docs (id)=(25)"
        ),
        "the plan says so, naming the parent: {run}"
    );
    // The link from account 2's first doc to account 3's waits: account 3 is not back.
    let link: i64 = shapes
        .live
        .scalar("SELECT count(*) FROM doc_links WHERE from_doc = 13 AND to_doc = 25")
        .await;
    assert_eq!(link, 0);
    assert!(run.stdout.contains("WAITING"), "{run}");

    let run = salvage(&with(shapes.args("restore", "3"), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    assert_accounts_equal(&shapes, "2, 3").await;
    let verify = salvage(&shapes.args("verify", "2,3"));
    assert_eq!(verify.code, 0, "{verify}");
}

/// A rerun of a run whose rows wait for another account does not plan that tenant again
/// while live still lacks what they wait for (the journal kept the keys, live is asked for
/// them), and plans it again once the parent is there.
#[tokio::test]
async fn a_rerun_plans_waiting_rows_again_only_once_what_they_wait_for_is_in_live() {
    let shapes = Shapes::new(5).await;
    shapes.delete_accounts("2, 3").await;
    let args = with(shapes.args("restore", "2"), &["--yes"]);
    let (first, report) = salvage_reporting(&args);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(report["state"], "done", "{report}");
    let kept: String = shapes
        .live
        .scalar("SELECT waiting_for::text FROM salvage.run_tenants")
        .await;
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("JSON");
    assert_eq!(
        kept,
        serde_json::json!([{"schema": "public", "table": "docs", "columns": ["id"], "keys": ["25"]}]),
        "{first}"
    );

    // Account 3 is still gone: nothing to plan, nothing written.
    let before = all_rows(&shapes.live).await;
    let (again, report) = salvage_reporting(&args);
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(report["state"], "finished_earlier", "{again}");
    assert_eq!(report["summary"]["restored"], 0, "{report}");
    assert_eq!(report["tenants"][0]["rows_waiting"], 1, "{report}");
    assert!(
        again
            .stdout
            .contains("1 row of 1 tenant still wait for parents live does not have"),
        "{again}"
    );
    assert_eq!(all_rows(&shapes.live).await, before);

    // Account 3 comes back, but not the link (as if it had been restored without it): the
    // next rerun plans account 2 again and adds the row that waited, and the run is done.
    let other = salvage(&with(shapes.args("restore", "3"), &["--yes"]));
    assert_eq!(other.code, 0, "{other}");
    shapes
        .live
        .execute("DELETE FROM doc_links WHERE from_doc = 13 AND to_doc = 25")
        .await;
    let (third, report) = salvage_reporting(&args);
    assert_eq!(third.code, 0, "{third}");
    assert_ne!(report["state"], "finished_earlier", "{third}");
    assert_eq!(report["tenants"][0]["status"], "restored", "{report}");
    assert_eq!(rows_inserted(&report), 1, "{third}");
    assert_eq!(report["tenants"][0]["verified"], true, "{report}");
    let waiting: i64 = shapes
        .live
        .scalar("SELECT t.rows_waiting FROM salvage.run_tenants t JOIN salvage.runs r USING (run_id) WHERE r.tenants = 1 AND t.tenant = '2'")
        .await;
    assert_eq!(waiting, 0);
    let state: String = shapes
        .live
        .scalar("SELECT r.state FROM salvage.runs r JOIN salvage.run_tenants t USING (run_id) WHERE t.tenant = '2'")
        .await;
    assert_eq!(state, "done");
    assert_accounts_equal(&shapes, "2, 3").await;
}

#[tokio::test]
async fn accounts_linked_to_each_other_restore_together_in_parallel() {
    let shapes = Shapes::new(8).await;
    shapes.delete_accounts("2, 3, 4, 5, 6").await;
    let run = salvage(&with(
        shapes.args("restore", "2,3,4,5,6"),
        &["--yes", "--jobs", "5"],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert_accounts_equal(&shapes, "2, 3, 4, 5, 6").await;
}

#[tokio::test]
async fn duplicate_rows_without_a_key_stay_duplicates_and_are_not_added_twice() {
    let shapes = Shapes::new(4).await;
    // One of account 3's two identical login events disappeared; the account itself is fine.
    shapes
        .live
        .execute("DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE account_id = 3 AND kind = 'login' LIMIT 1)")
        .await;
    let (run, report) = salvage_reporting(&with(shapes.args("restore", "3"), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(rows_inserted(&report), 1, "{run}");
    let logins: i64 = shapes
        .live
        .scalar("SELECT count(*) FROM events WHERE account_id = 3 AND kind = 'login'")
        .await;
    assert_eq!(logins, 2);
    assert_accounts_equal(&shapes, "3").await;
    let (again, report) = salvage_reporting(&with(shapes.args("restore", "3"), &["--yes"]));
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(rows_inserted(&report), 0, "{again}");
    let logins: i64 = shapes
        .live
        .scalar("SELECT count(*) FROM events WHERE account_id = 3 AND kind = 'login'")
        .await;
    assert_eq!(logins, 2);
}

#[tokio::test]
async fn a_drifted_live_schema_takes_what_it_can_and_says_what_it_cannot() {
    let shapes = Shapes::new(4).await;
    shapes.delete_accounts("2").await;
    shapes.live.execute_fixture("shapes/drift.sql").await;

    let report = temp_path("drift-report.json");
    let run = salvage(&with(
        shapes.args("restore", "2"),
        &["--yes", "--report", report.to_str().unwrap()],
    ));
    assert_eq!(run.code, 0, "{run}");
    // The plan's notes, wrapped to the width, as words.
    let words = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    // `size` prints 1.5000 in the snapshot and 1.500000 in live: equal by value.
    let report = read_json(&report);
    let docs = &report["tenants"][0]["tables"]["public.docs"];
    assert_eq!(
        (&docs["equal"], &docs["different"], &docs["missing"]),
        (
            &serde_json::json!(12),
            &serde_json::json!(0),
            &serde_json::json!(0)
        ),
        "{docs}"
    );
    assert!(
        words.contains("column took exists only in the snapshot"),
        "{run}"
    );
    assert!(
        words
            .contains("column archived exists only in live: restored rows get its default (false)"),
        "{run}"
    );
    assert!(
        words.contains("public.doc_stars: exists only in live"),
        "{run}"
    );
    assert!(
        words.contains("column content is text in the snapshot and character varying(200) in live"),
        "{run}"
    );
    // Matched by name: the columns both sides have are equal, the new ones hold defaults.
    let common = "id, account_id, folder_id, code, parent_id, template_id, author_email, reviewer_email, priority, \
                  ticket_no, title, body, tags, search, size, data, blob, external_id, word_count";
    assert_same_result(
        &shapes.snapshot,
        &shapes.live,
        &format!("SELECT {common} FROM docs WHERE account_id = 2"),
    )
    .await;
    let defaults: i64 = shapes
        .live
        .scalar(
            "SELECT count(*) FROM docs WHERE account_id = 2 AND NOT archived AND summary IS NULL",
        )
        .await;
    assert_eq!(defaults, 12);
    assert_same_result(
        &shapes.snapshot,
        &shapes.live,
        "SELECT account_id, doc_code, version, saved_at, content::text FROM doc_versions WHERE account_id = 2",
    )
    .await;
}

#[tokio::test]
async fn a_key_now_held_by_another_account_fails_that_account_alone() {
    let shapes = Shapes::new(4).await;
    shapes.delete_accounts("2, 3").await;
    // After the deletion, account 1 got a team with account 2's old team ID, and a new
    // account took account 3's handle.
    shapes
        .live
        .execute("INSERT INTO teams (id, account_id, name) VALUES (3, 1, 'reused id'); INSERT INTO accounts (handle, created_at) VALUES ('acct-3', now())")
        .await;
    let newcomer: i64 = shapes
        .live
        .scalar("SELECT id FROM accounts WHERE handle = 'acct-3'")
        .await;
    let before = all_rows(&shapes.live).await;

    let report = temp_path("held-report.json");
    let run = salvage(&with(
        shapes.args("restore", "2,3"),
        &["--yes", "--report", report.to_str().unwrap()],
    ));
    assert_eq!(run.code, 1, "{run}");
    let report = read_json(&report);
    let error = |tenant: usize| {
        report["tenants"][tenant]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        error(0).contains("public.teams: live already has (id)=(3) but on another tenant's rows"),
        "{}",
        error(0)
    );
    assert!(
        error(1).contains(&format!(
            "public.accounts: (handle)=(acct-3) is already held in live by the row (id)=({newcomer}) (unique constraint accounts_handle_key)"
        )),
        "{}",
        error(1)
    );
    // Both rolled back whole: live is exactly as it was.
    assert_eq!(all_rows(&shapes.live).await, before);
}

#[tokio::test]
async fn the_plan_shows_where_each_relation_comes_from() {
    let shapes = Shapes::new(3).await;
    shapes.delete_accounts("2").await;
    let run = salvage(&with(shapes.args("plan", "2"), &["--format", "json"]));
    assert_eq!(run.code, 0, "{run}");
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let table = |name: &str| {
        plan["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(table("public.comments")["ownership"][0]["origin"], "config");
    assert_eq!(
        table("public.comments")["ownership"][0]["condition"]["value"],
        "folder"
    );
    assert_eq!(
        table("public.events")["ownership"][0]["origin"],
        "declared_fk"
    );
    assert_eq!(table("public.events")["path"], "events → accounts");
    assert_eq!(table("public.people")["role"], "shared");
    assert_eq!(plan["excluded"], serde_json::json!(["public.audit_log"]));
    assert_eq!(plan["unrelated"], serde_json::json!(["public.settings"]));
    let cycles = plan["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 2);
    assert_eq!(cycles[0]["broken_by"]["how"], "deferred");
    assert_eq!(cycles[1]["broken_by"]["how"], "one_statement");
    // Partitions are not tables of the plan of their own; their FKs count as the parent's.
    let names: Vec<&str> = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().all(|name| !name.starts_with("public.events_")),
        "{names:?}"
    );
    assert!(
        table("public.events")["ownership"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("events_20")
    );
}

#[tokio::test]
async fn a_cycle_that_cannot_be_inserted_is_refused_before_any_write() {
    let live = support::TestDatabase::create("cycle").await;
    live.execute(
        "CREATE TABLE orgs (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE a (id int PRIMARY KEY, org_id int NOT NULL REFERENCES orgs, b_code text);
         CREATE TABLE b (code text UNIQUE, a_id int NOT NULL REFERENCES a);
         ALTER TABLE a ADD FOREIGN KEY (b_code) REFERENCES b (code);
         INSERT INTO orgs VALUES (1, 'one');",
    )
    .await;
    let snapshot = live.snapshot("cycle_snap").await;
    let run = salvage(&[
        "restore",
        "--snapshot",
        &snapshot.url,
        "--target",
        &live.url,
        "--root",
        "orgs",
        "--tenants",
        "1",
        "--yes",
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(
            "public.a → public.b reference each other in a cycle that cannot be inserted"
        ),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("public.b has no primary or unique NOT NULL key"),
        "{run}"
    );
}

#[tokio::test]
async fn shared_rows_referenced_through_a_unique_key_come_back_with_their_mentors() {
    let shapes = Shapes::new(6).await;
    // Account 6's last two people went with it: p23 (author of some of its docs) and p22,
    // p23's mentor — referenced by email, a unique key that is not the primary key.
    shapes.delete_accounts("6").await;
    shapes
        .live
        .execute("DELETE FROM people WHERE id IN (23, 22)")
        .await;
    let run = salvage(&with(shapes.args("restore", "6"), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    assert_same_result(
        &shapes.snapshot,
        &shapes.live,
        "SELECT * FROM people WHERE id IN (22, 23)",
    )
    .await;
    assert_accounts_equal(&shapes, "6").await;
}
