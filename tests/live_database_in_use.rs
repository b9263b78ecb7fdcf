//! The live database stays in use during a restore: salvage waits a bounded time for other
//! transactions' row locks, and retries a tenant that could not get them.

mod support;

use std::time::{Duration, Instant};

use sqlx::Connection;
use support::{Scenario, TestDatabase, assert_same_rows, salvage_reporting, tracker_owned, with};

/// Waits until salvage's tenant transaction has been blocked by a lock in `attempts`
/// different transactions (each attempt is a transaction of its own) — observed in
/// `pg_locks`, not assumed after a sleep.
async fn wait_for_salvage_blocked(database: &TestDatabase, attempts: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let waiting = database
            .strings(
                "SELECT a.xact_start::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE NOT l.granted AND a.application_name = 'salvage' \
                   AND a.datname = current_database() AND a.xact_start IS NOT NULL",
            )
            .await;
        for transaction in waiting {
            if !seen.contains(&transaction) {
                seen.push(transaction);
            }
        }
        if seen.len() >= attempts {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "salvage was blocked in {} transactions, not {attempts}",
            seen.len()
        );
        tokio::task::yield_now().await;
    }
}

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
    let restore = tokio::task::spawn_blocking(move || salvage_reporting(&args));
    // Its first attempt times out on the lock and a second one waits again: then the other
    // transaction gives up, and the second attempt goes through.
    wait_for_salvage_blocked(&scenario.live, 2).await;
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let _ = other.close().await;

    let (run, report) = restore.await.unwrap();
    assert_eq!(run.code, 0, "{run}");
    let tenant = &report["tenants"][0];
    assert_eq!(tenant["status"], "restored", "{tenant}");
    assert!(
        tenant["attempts"]
            .as_i64()
            .is_some_and(|attempts| attempts >= 2),
        "retried after the lock timeout: {tenant}"
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
    let (run, report) = tokio::task::spawn_blocking(move || salvage_reporting(&args))
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let _ = other.close().await;

    assert_eq!(run.code, 1, "{run}");
    let (three, four) = (&report["tenants"][0], &report["tenants"][1]);
    assert_eq!(
        (&three["id"], &three["status"]),
        (&serde_json::json!("3"), &serde_json::json!("failed")),
        "{three}"
    );
    assert!(
        three["error"]
            .as_str()
            .is_some_and(|error| error.contains("lock timeout")),
        "{three}"
    );
    assert_eq!(four["status"], "restored", "{four}");
    for (table, filter) in tracker_owned("4") {
        assert_same_rows(&scenario.snapshot, &scenario.live, table, &filter).await;
    }
    let site_3: i64 = scenario
        .live
        .scalar("SELECT count(*) FROM sites WHERE id = 3")
        .await;
    assert_eq!(site_3, 0);
}
