//! Bad input gets one clear message naming the thing, exit code 2, and no write.

mod support;

use support::{Scenario, TestDatabase, all_rows, salvage, temp_path, with};

/// Runs a restore that must be refused: exit 2, `needle` in the error, live untouched.
async fn refused(scenario: &Scenario, args: &[String], needle: &str) {
    let before = all_rows(&scenario.live).await;
    let run = salvage(args);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(needle),
        "expected {needle:?} in:\n{run}"
    );
    assert_eq!(
        all_rows(&scenario.live).await,
        before,
        "live changed after a refused run"
    );
}

fn restore_args(scenario: &Scenario, root: &str, tenants: &str) -> Vec<String> {
    let mut args = scenario.args("restore", tenants);
    let root_position = args.iter().position(|arg| arg == "--root").unwrap() + 1;
    root.clone_into(&mut args[root_position]);
    with(args, &["--yes"])
}

#[tokio::test]
async fn a_root_table_that_does_not_exist_or_has_no_single_key_is_refused() {
    let scenario = Scenario::tracker(3).await;
    scenario
        .live
        .execute("DELETE FROM sites WHERE id = 1")
        .await;
    refused(
        &scenario,
        &restore_args(&scenario, "public.nope", "1"),
        "the root table public.nope does not exist in the live database",
    )
    .await;
    refused(
        &scenario,
        &restore_args(&scenario, "projects", "1"),
        "public.projects has a primary key of 2 columns",
    )
    .await;
    refused(
        &scenario,
        &restore_args(&scenario, "bad name!", "1"),
        "`bad name!` is not a table name",
    )
    .await;
}

#[tokio::test]
async fn unreachable_databases_are_named_without_their_password() {
    let scenario = Scenario::tracker(3).await;
    let mut args = scenario.args("restore", "1");
    let snapshot = args.iter().position(|arg| arg == "--snapshot").unwrap() + 1;
    args[snapshot] = "postgres://salvage:hunter2secret@127.0.0.1:9/nowhere".to_owned();
    let run = salvage(&with(args.clone(), &["--yes"]));
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("cannot connect to postgres://salvage:***@127.0.0.1:9/nowhere"),
        "{run}"
    );
    assert!(
        !format!("{}{}", run.stdout, run.stderr).contains("hunter2secret"),
        "{run}"
    );

    let target = args.iter().position(|arg| arg == "--target").unwrap() + 1;
    args[snapshot] = scenario.snapshot.url.clone();
    args[target] =
        "postgresql://salvage:hunter2secret@127.0.0.1:9/nowhere?sslmode=disable".to_owned();
    let run = salvage(&with(args, &["--yes"]));
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("the target database"), "{run}");
    assert!(
        !format!("{}{}", run.stdout, run.stderr).contains("hunter2secret"),
        "{run}"
    );
}

#[tokio::test]
async fn the_snapshot_and_the_target_must_be_different_databases() {
    let scenario = Scenario::tracker(3).await;
    let mut args = scenario.args("restore", "1");
    let snapshot = args.iter().position(|arg| arg == "--snapshot").unwrap() + 1;
    args[snapshot] = scenario.live.url.clone();
    refused(&scenario, &with(args, &["--yes"]), "are the same database").await;
}

#[tokio::test]
async fn a_bad_configuration_file_is_named() {
    let scenario = Scenario::tracker(3).await;
    let config = temp_path("bad-salvage.toml");
    std::fs::write(&config, "root = \"public.sites\"\njbos = 4\n").unwrap();
    let args = with(
        scenario.args("restore", "1"),
        &["--yes", "--config", config.to_str().unwrap()],
    );
    refused(&scenario, &args, "bad-salvage.toml").await;
    refused(
        &scenario,
        &with(scenario.args("restore", "1"), &["--yes", "--jobs", "0"]),
        "--jobs must be at least 1",
    )
    .await;
    refused(
        &scenario,
        &with(
            scenario.args("restore", "1"),
            &["--yes", "--lock-timeout", "soon"],
        ),
        "--lock-timeout",
    )
    .await;
}

#[tokio::test]
async fn a_live_column_that_restored_rows_could_not_fill_is_refused() {
    let scenario = Scenario::tracker(4).await;
    scenario
        .live
        .execute("DELETE FROM sites WHERE id = 2; ALTER TABLE projects ADD COLUMN owner_team text NOT NULL DEFAULT 'core'; ALTER TABLE issues ADD COLUMN severity int NOT NULL DEFAULT 1; ALTER TABLE issues ALTER COLUMN severity DROP DEFAULT")
        .await;
    refused(
        &scenario,
        &with(scenario.args("restore", "2"), &["--yes"]),
        "public.issues.severity is NOT NULL without a default",
    )
    .await;
}

#[tokio::test]
async fn owned_rows_in_a_table_live_no_longer_has_are_refused() {
    let scenario = Scenario::tracker(4).await;
    scenario.snapshot.execute("CREATE TABLE invoices (id int PRIMARY KEY, site_id bigint NOT NULL REFERENCES sites (id)); INSERT INTO invoices VALUES (1, 2), (2, 3)").await;
    scenario
        .live
        .execute("DELETE FROM sites WHERE id IN (2, 4)")
        .await;
    // Site 2 has invoices in the snapshot: they have nowhere to go.
    refused(
        &scenario,
        &with(scenario.args("restore", "2"), &["--yes"]),
        "public.invoices exists only in the snapshot, yet holds 1 row of the chosen tenants ('2'): it cannot",
    )
    .await;
    // Site 4 has none: the table is only reported.
    let run = salvage(&with(scenario.args("restore", "4"), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains("public.invoices: exists only in the snapshot"),
        "{run}"
    );
}

#[tokio::test]
async fn an_empty_or_missing_tenant_list_is_refused() {
    let scenario = Scenario::tracker(2).await;
    refused(
        &scenario,
        &with(scenario.args("restore", " , "), &["--yes"]),
        "the tenant list is empty",
    )
    .await;
    let mut args = scenario.args("restore", "1");
    args.truncate(args.len() - 2);
    refused(&scenario, &with(args, &["--yes"]), "no tenants given").await;
    let database = TestDatabase::create("empty").await;
    drop(database);
}
