//! The live database stays in use during a restore: salvage waits a bounded time for other
//! transactions' row locks, and retries a tenant that could not get them.

mod support;

use std::time::Duration;

use sqlx::Connection;
use support::{Scenario, assert_same_rows, salvage, tracker_owned, with};

#[tokio::test]
async fn a_tenant_blocked_by_another_transaction_is_retried_until_it_goes_through() {
    let scenario = Scenario::tracker(6).await;
    scenario.live.execute("DELETE FROM page_views WHERE site_id = 3; DELETE FROM sites WHERE id = 3; DELETE FROM users WHERE id IN (15, 16)").await;

    // Someone else's transaction is inserting user 15 — the user site 3 needs back — and
    // holds on to it for a while before rolling back.
    let mut other = scenario.live.connect().await;
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, created_at) VALUES (15, 'someone-else@example.test', now())",
    )
    .execute(&mut other)
    .await
    .unwrap();

    let args = with(
        scenario.args("restore", "3"),
        &["--yes", "--lock-timeout", "200ms"],
    );
    let restore = tokio::task::spawn_blocking(move || salvage(&args));
    tokio::time::sleep(Duration::from_millis(700)).await;
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let _ = other.close().await;

    let run = restore.await.unwrap();
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("retrying tenant 3"), "{run}");
    assert!(
        run.stdout.contains("restored (") && run.stdout.contains("attempts)"),
        "{run}"
    );
    for (table, filter) in tracker_owned("3") {
        assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
    }
    assert_same_rows(
        &scenario.snapshot,
        &scenario.live,
        "users",
        "id IN (15, 16)",
    )
    .await;
}

#[tokio::test]
async fn a_tenant_blocked_for_too_long_fails_alone_and_the_others_go_on() {
    let scenario = Scenario::tracker(6).await;
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id IN (3, 4); DELETE FROM sites WHERE id IN (3, 4); DELETE FROM users WHERE id IN (15, 16)")
        .await;
    let mut other = scenario.live.connect().await;
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, created_at) VALUES (15, 'held@example.test', now())",
    )
    .execute(&mut other)
    .await
    .unwrap();

    let args = with(
        scenario.args("restore", "3,4"),
        &["--yes", "--lock-timeout", "100ms"],
    );
    let run = tokio::task::spawn_blocking(move || salvage(&args))
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let _ = other.close().await;

    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("FAILED tenant 3"), "{run}");
    assert!(run.stdout.contains("lock timeout"), "{run}");
    for (table, filter) in tracker_owned("4") {
        assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
    }
    let site_3: i64 = scenario
        .live
        .scalar("SELECT count(*) FROM sites WHERE id = 3")
        .await;
    assert_eq!(site_3, 0);
}
