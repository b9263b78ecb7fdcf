//! Everything a restore would fail on that can be asked up front is found before the first
//! write and refused in one message (exit 2, nothing written); a tenant whose unique keys
//! live already holds on other rows is named in the plan.

mod support;

use support::{Scenario, all_rows, salvage, salvage_reporting, url_parts, with};

#[tokio::test]
async fn every_problem_a_restore_would_hit_is_refused_in_one_message_before_any_write() {
    let scenario = Scenario::tracker(4).await;
    let role = format!("{}_operator", scenario.live.name);
    scenario
        .live
        .execute(&format!(
            "DELETE FROM page_views WHERE site_id = 2; DELETE FROM sites WHERE id = 2;
             CREATE ROLE {role} LOGIN;
             GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {role};
             REVOKE INSERT ON projects FROM {role};
             GRANT USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role};
             ALTER TABLE issues ENABLE ROW LEVEL SECURITY;
             CREATE POLICY only_early_sites ON issues USING (site_id < 3);"
        ))
        .await;
    let before = all_rows(&scenario.live).await;
    let (_, port, _, dbname) = url_parts(&scenario.live.url);
    let (host, _, _, _) = url_parts(&scenario.live.url);
    let as_role = format!("postgres://{role}@{host}:{port}/{dbname}");
    let mut args = scenario.args("restore", "2");
    let position = args.iter().position(|arg| arg == "--target").unwrap() + 1;
    args[position].clone_from(&as_role);
    let run = salvage(&with(
        args.clone(),
        &["--yes", "--report", "/nonexistent/dir/report.json"],
    ));
    assert_eq!(run.code, 2, "{run}");
    for needle in [
        "2 problems found before anything was written",
        &format!(
            "row-level security applies to role {role} on public.issues (policy only_early_sites)"
        ),
        "--report /nonexistent/dir/report.json: cannot be written",
    ] {
        assert!(
            run.stderr.contains(needle),
            "expected {needle:?} in:\n{run}"
        );
    }
    assert_eq!(all_rows(&scenario.live).await, before);

    // Without row-level security in the way, the write privileges are checked.
    scenario
        .live
        .execute("ALTER TABLE issues DISABLE ROW LEVEL SECURITY")
        .await;
    let run = salvage(&with(args.clone(), &["--yes"]));
    assert_eq!(run.code, 2, "{run}");
    for needle in [
        &format!("role {role} lacks INSERT on public.projects"),
        &format!(
            "role {role} lacks SELECT on sequences public.comments_id_seq, public.issues_id_seq, public.page_views_id_seq, public.sites_id_seq"
        ),
        "the journal's schema salvage does not exist and this role may not create it (CREATE on the database)",
    ] {
        assert!(
            run.stderr.contains(needle),
            "expected {needle:?} in:\n{run}"
        );
    }
    assert_eq!(all_rows(&scenario.live).await, before);
    // plan shows them and exits 0: it writes nothing.
    let mut plan = args.clone();
    plan[0] = "plan".into();
    let run = salvage(&plan);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("A restore would be refused"), "{run}");
    assert!(
        run.stdout.contains("lacks INSERT on public.projects"),
        "{run}"
    );

    // With the privileges granted, the same role restores.
    scenario
        .live
        .execute(&format!(
            "GRANT INSERT ON projects TO {role}; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
             GRANT CREATE ON DATABASE {dbname} TO {role}"
        ))
        .await;
    let (run, report) = salvage_reporting(&with(args, &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["summary"]["restored"], 1, "{report}");

    // A database that is read-only for the role is refused before anything is written.
    scenario
        .live
        .execute(&format!(
            "DELETE FROM page_views WHERE site_id = 3; DELETE FROM sites WHERE id = 3;
             ALTER ROLE {role} SET default_transaction_read_only = on"
        ))
        .await;
    let before = all_rows(&scenario.live).await;
    let mut args = scenario.args("restore", "3");
    args[position].clone_from(&as_role);
    let run = salvage(&with(args, &["--yes"]));
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "the target is read-only for role {role}: default_transaction_read_only is on"
        )),
        "{run}"
    );
    assert_eq!(all_rows(&scenario.live).await, before);
    scenario
        .live
        .execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;
}

#[tokio::test]
async fn a_slug_taken_by_a_new_site_is_a_conflict_in_the_plan() {
    let scenario = Scenario::tracker(6).await;
    scenario
        .live
        .execute(
            "DELETE FROM page_views WHERE site_id IN (3, 5); DELETE FROM sites WHERE id IN (3, 5);
             INSERT INTO sites (slug, name, plan_id, created_at) VALUES ('site-0005', 'Someone new', 1, now());",
        )
        .await;
    let newcomer: i64 = scenario
        .live
        .scalar("SELECT id FROM sites WHERE slug = 'site-0005'")
        .await;
    let run = salvage(&with(scenario.args("plan", "3,5"), &["--format", "json"]));
    assert_eq!(run.code, 0, "{run}");
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(plan["tenants"][0]["conflicts"], serde_json::json!([]));
    let conflicts = plan["tenants"][1]["conflicts"].as_array().unwrap();
    assert_eq!(
        conflicts,
        &[serde_json::json!(format!(
            "public.sites: (slug)=(site-0005) is already held in live by the row (id)=({newcomer}) (unique constraint sites_slug_key)"
        ))]
    );
    // The text plan names it under its tenant, and nothing of tenant 5 is said to wait.
    let run = salvage(&scenario.args("plan", "3,5"));
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains("Conflicts: 1 tenant cannot be restored whole")
            && run
                .stdout
                .contains("tenant 5 (site-0005): public.sites: (slug)=(site-0005)"),
        "{run}"
    );
    assert!(!run.stdout.contains("tenant 5: public.projects"), "{run}");
}
