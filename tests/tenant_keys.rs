//! Tenant IDs are whatever the root's single-column key is: bigint, uuid, text.

mod support;

use support::{TestDatabase, assert_same_rows, salvage};

const SCHEMA: &str = "
    CREATE TABLE orgs (id KEYTYPE PRIMARY KEY, name text NOT NULL UNIQUE);
    CREATE TABLE docs (org_id KEYTYPE NOT NULL REFERENCES orgs ON DELETE CASCADE, id int NOT NULL,
                       body text, PRIMARY KEY (org_id, id));
";

async fn restore_with_key(key_type: &str, ids: [&str; 3], given: &str) {
    let live = TestDatabase::create("keys").await;
    live.execute(&SCHEMA.replace("KEYTYPE", key_type)).await;
    for (index, id) in ids.iter().enumerate() {
        let id = id.replace('\'', "''");
        live.execute(&format!(
            "INSERT INTO orgs VALUES ('{id}', 'org {index}'); INSERT INTO docs SELECT '{id}', n, 'doc ' || n FROM generate_series(1, 5) n"
        ))
        .await;
    }
    let snapshot = live.snapshot("keys_snap").await;
    let deleted = ids[1].replace('\'', "''");
    live.execute(&format!("DELETE FROM orgs WHERE id = '{deleted}'"))
        .await;
    let run = salvage(&[
        "restore",
        "--snapshot",
        &snapshot.url,
        "--target",
        &live.url,
        "--root",
        "orgs",
        "--tenants",
        given,
        "--yes",
    ]);
    assert_eq!(run.code, 0, "{key_type}: {run}");
    assert!(run.stdout.contains("org 1"), "the label is shown: {run}");
    let filter = format!("org_id = '{deleted}'");
    assert_eq!(assert_same_rows(&snapshot, &live, "docs", &filter).await, 5);
}

#[tokio::test]
async fn uuid_tenant_ids_are_matched_whatever_their_case() {
    let ids = [
        "0b6f9c1e-5d1c-4c8e-9a53-1d2f3e4a5b6c",
        "7d3e2f10-aaaa-4bbb-8ccc-0123456789ab",
        "ffffffff-0000-4000-8000-000000000001",
    ];
    restore_with_key("uuid", ids, "7D3E2F10-AAAA-4BBB-8CCC-0123456789AB").await;
}

#[tokio::test]
async fn text_tenant_ids_with_quotes_are_bound_not_spliced() {
    restore_with_key(
        "text",
        ["acme", "o'reilly \"books\"", "zeta"],
        "o'reilly \"books\"",
    )
    .await;
}

#[tokio::test]
async fn a_uuid_that_does_not_parse_is_refused() {
    let live = TestDatabase::create("keys").await;
    live.execute(&SCHEMA.replace("KEYTYPE", "uuid")).await;
    let snapshot = live.snapshot("keys_snap").await;
    let run = salvage(&[
        "plan",
        "--snapshot",
        &snapshot.url,
        "--target",
        &live.url,
        "--root",
        "orgs",
        "--tenants",
        "42",
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("tenant ID '42' is not a valid uuid for public.orgs.id"),
        "{run}"
    );
}
