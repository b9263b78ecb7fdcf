//! `salvage plan` shows, before anything is written, what each ID resolved to, the tables in
//! restore order with the path that makes each one owned, and the counts.

mod support;

use support::{Scenario, salvage, with};

#[tokio::test]
async fn the_plan_names_each_tenant_each_path_and_the_counts() {
    let scenario = Scenario::tracker(8).await;
    scenario.live.execute("DELETE FROM page_views WHERE site_id IN (2, 5); DELETE FROM sites WHERE id IN (2, 5); DELETE FROM users WHERE id = 14").await;
    let run = salvage(&with(scenario.args("plan", "2,05"), &["--format", "json"]));
    assert_eq!(run.code, 0, "{run}");
    let plan: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("plan --format json prints JSON");

    let tenants = plan["tenants"].as_array().unwrap();
    assert_eq!(tenants[0]["id"], "2");
    assert_eq!(tenants[0]["label"], "site-0002");
    assert_eq!(tenants[1]["id"], "5");
    assert_eq!(tenants[1]["given"], "05");
    assert_eq!(tenants[1]["root_in_live"], false);

    let tables = plan["tables"].as_array().unwrap();
    let table = |name: &str| {
        tables
            .iter()
            .find(|table| table["table"] == name)
            .unwrap_or_else(|| panic!("{name} in the plan"))
    };
    let order: Vec<&str> = tables
        .iter()
        .map(|table| table["table"].as_str().unwrap())
        .collect();
    let position = |name: &str| order.iter().position(|table| *table == name).unwrap();
    assert!(position("public.users") < position("public.sites"));
    assert!(position("public.sites") < position("public.projects"));
    assert!(position("public.issues") < position("public.comments"));
    assert!(position("public.comments") < position("public.reactions"));
    assert_eq!(table("public.users")["role"], "shared");
    assert_eq!(
        table("public.reactions")["path"],
        "reactions → comments → issues → sites (tenant column site_id)"
    );
    assert_eq!(
        table("public.page_views")["path"],
        "page_views → sites (tenant column site_id)"
    );
    assert_eq!(
        plan["unrelated"],
        serde_json::json!(["public.feature_flags"])
    );

    // The counts match what the snapshot and live hold, counted here by hand.
    for (name, sql) in [
        (
            "public.projects",
            "SELECT count(*) FROM projects WHERE site_id IN (2, 5)",
        ),
        (
            "public.comments",
            "SELECT count(*) FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id IN (2, 5)",
        ),
        (
            "public.reactions",
            "SELECT count(*) FROM reactions r JOIN comments c ON c.id = r.comment_id JOIN issues i ON i.id = c.issue_id WHERE i.site_id IN (2, 5)",
        ),
    ] {
        let expected: i64 = scenario.snapshot.scalar(sql).await;
        assert_eq!(table(name)["snapshot"], expected, "{name}");
        assert_eq!(table(name)["to_add"], expected, "{name}");
    }
    // Site 2's users are 13 and 14 (invited by 13); only 14 was deleted from live.
    assert_eq!(table("public.users")["to_add"], 1);

    // The one relation live has no index on is named, with what it costs; an index makes
    // the note go.
    let unindexed = |plan: &serde_json::Value| -> Vec<String> {
        plan["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .filter_map(|note| note["message"].as_str())
            .filter(|message| message.starts_with("live has no index on"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        unindexed(&plan),
        [
            "live has no index on (parent_id), which ties its rows to their tenants through \
          public.issues: each plan and verification reads the whole table to follow it (an \
          index on these columns would make it a probe)"
        ],
        "{}",
        plan["notes"]
    );
    let note = plan["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .find(|note| {
            note["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("live has no index"))
        })
        .expect("the note");
    assert_eq!(
        note["table"],
        serde_json::json!({"schema": "public", "name": "issues"}),
        "{note}"
    );
    scenario
        .live
        .execute("CREATE INDEX issues_parent ON issues (parent_id)")
        .await;
    let run = salvage(&with(scenario.args("plan", "2,05"), &["--format", "json"]));
    assert_eq!(run.code, 0, "{run}");
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert!(unindexed(&plan).is_empty(), "{}", plan["notes"]);
}

#[tokio::test]
async fn without_a_tenant_column_ownership_follows_the_foreign_keys_four_levels_deep() {
    let scenario = Scenario::tracker(3).await;
    let mut args = scenario.args("plan", "1");
    let column = args
        .iter()
        .position(|arg| arg == "--tenant-column")
        .unwrap();
    args.drain(column..column + 2);
    let json = salvage(&with(args.clone(), &["--format", "json"]));
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let reactions = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|table| table["table"] == "public.reactions")
        .unwrap();
    assert_eq!(
        reactions["path"],
        "reactions → comments → issues → projects → sites"
    );
    let run = salvage(&args);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains(
            "Left alone (no relation to the tenants): public.feature_flags, public.page_views"
        ),
        "{run}"
    );
    assert!(run.stdout.contains("present"), "site 1 still exists: {run}");
}

#[tokio::test]
async fn settings_come_from_salvage_toml_and_flags_win() {
    let scenario = Scenario::tracker(4).await;
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id = 3; DELETE FROM sites WHERE id = 3")
        .await;
    let config = support::temp_path("salvage.toml");
    std::fs::write(
        &config,
        format!(
            "snapshot = \"{}\"\ntarget = \"{}\"\nroot = \"public.sites\"\ntenant_columns = [\"site_id\"]\ntenants = [\"1\"]\njobs = 2\n",
            scenario.snapshot.url, scenario.live.url
        ),
    )
    .unwrap();
    let run = salvage(&[
        "restore",
        "--config",
        config.to_str().unwrap(),
        "--tenants",
        "3",
        "--yes",
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Restored 1 of 1 tenant: "), "{run}");
    assert!(
        run.stdout.contains("site-0003"),
        "--tenants won over the file's list: {run}"
    );
    assert!(
        run.stdout
            .contains("page_views → sites (tenant column site_id)"),
        "{run}"
    );
}

/// A tenant with more keys of one table than the plan asks live for on one connection (they
/// are split between two): every key live holds on another tenant's row is found, wherever
/// it falls among them, and no other.
#[tokio::test]
async fn keys_held_by_other_tenants_are_found_among_many_thousands() {
    let scenario = Scenario::tracker(4).await;
    scenario
        .snapshot
        .execute(
            "INSERT INTO page_views (id, site_id, path, viewed_at) \
             SELECT 1000000 + g, 3, '/many/' || g, now() FROM generate_series(1, 12000) AS g",
        )
        .await;
    let page_views: i64 = scenario
        .snapshot
        .scalar("SELECT count(*) FROM page_views WHERE site_id = 3")
        .await;
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id = 3; DELETE FROM sites WHERE id = 3")
        .await;
    // Since then, site 1 got page views with three of those IDs: the first, one in the
    // middle and the last.
    let held = [1_000_001, 1_006_000, 1_012_000];
    for id in held {
        scenario
            .live
            .execute(&format!(
                "INSERT INTO page_views (id, site_id, path, viewed_at) VALUES ({id}, 1, '/later', now())"
            ))
            .await;
    }

    let run = salvage(&with(scenario.args("plan", "3"), &["--format", "json"]));
    assert_eq!(run.code, 0, "{run}");
    let plan: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("plan --format json prints JSON");
    let counts = &plan["tenants"][0]["tables"]["public.page_views"];
    assert_eq!(counts["snapshot"].as_i64(), Some(page_views), "{counts}");
    assert_eq!(counts["held_elsewhere"].as_i64(), Some(3), "{counts}");
    assert_eq!(counts["to_add"].as_i64(), Some(page_views - 3), "{counts}");
    let conflicts: Vec<&str> = plan["tenants"][0]["conflicts"]
        .as_array()
        .expect("the tenant's conflicts")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    for id in held {
        let named =
            format!("public.page_views: live already has (id)=({id}) but on another tenant's rows");
        assert!(conflicts.contains(&named.as_str()), "{id}: {conflicts:?}");
    }
    assert_eq!(conflicts.len(), 3, "{conflicts:?}");
}
