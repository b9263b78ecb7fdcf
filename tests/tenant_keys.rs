//! Tenant IDs are whatever the root's single-column key is: bigint, uuid, text; and a value is
//! never cut to fit a shorter column type of live's.

mod support;

use support::{TestDatabase, assert_same_rows, rows_inserted, salvage, salvage_reporting};

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

/// A tenant ID longer than a `varchar(3)` key is not the key it starts with.
#[tokio::test]
async fn a_tenant_id_longer_than_the_key_type_is_not_cut_to_fit() {
    let live = TestDatabase::create("keys").await;
    live.execute(&SCHEMA.replace("KEYTYPE", "varchar(3)")).await;
    live.execute("INSERT INTO orgs VALUES ('abc', 'org abc')")
        .await;
    let snapshot = live.snapshot("keys_snap").await;
    live.execute("DELETE FROM orgs").await;
    let run = salvage(&[
        "plan",
        "--snapshot",
        &snapshot.url,
        "--target",
        &live.url,
        "--root",
        "orgs",
        "--tenants",
        "abcd",
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("abcd"), "{run}");
    assert!(
        !run.stdout.contains("org abc"),
        "resolved to another tenant: {run}"
    );
}

/// Live narrowed `docs.title` to `varchar(5)` and `docs.code` to `char(2)` after the snapshot:
/// a tenant whose values no longer fit fails, writing nothing, where an explicit cast would
/// have cut them; a tenant whose values fit is restored, in the same run.
#[tokio::test]
async fn a_value_longer_than_lives_column_fails_its_tenant_and_is_not_cut() {
    let live = TestDatabase::create("keys").await;
    live.execute(
        "CREATE TABLE orgs (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE docs (org_id int NOT NULL REFERENCES orgs ON DELETE CASCADE, id int NOT NULL,
                            title varchar(20), code char(4), PRIMARY KEY (org_id, id));
         INSERT INTO orgs SELECT n, 'org ' || n FROM generate_series(1, 3) n;
         INSERT INTO docs SELECT o, d, 'doc' || d, 'c' || d FROM generate_series(1, 3) o,
                                 generate_series(1, 4) d;
         UPDATE docs SET title = 'a longer title' WHERE org_id = 2 AND id = 3;",
    )
    .await;
    let snapshot = live.snapshot("keys_snap").await;
    live.execute(
        "DELETE FROM orgs WHERE id IN (2, 3);
         ALTER TABLE docs ALTER title TYPE varchar(5), ALTER code TYPE char(2);",
    )
    .await;
    let (run, report) = salvage_reporting(&[
        "restore",
        "--snapshot",
        &snapshot.url,
        "--target",
        &live.url,
        "--root",
        "orgs",
        "--tenants",
        "2,3",
        "--yes",
    ]);
    assert_ne!(run.code, 0, "{run}");
    assert_eq!(report["summary"]["failed"], 1, "{report}");
    assert_eq!(report["summary"]["restored"], 1, "{report}");
    // Org 3: its org and four docs.
    assert_eq!(rows_inserted(&report), 5, "{report}");
    let failed = report["tenants"]
        .as_array()
        .and_then(|tenants| tenants.iter().find(|tenant| tenant["id"] == "2"))
        .unwrap_or_else(|| panic!("no tenant 2 in {report}"));
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed
            .to_string()
            .contains("too long for type character varying(5)"),
        "{failed}"
    );
    let org2: i64 = live
        .scalar("SELECT (SELECT count(*) FROM orgs WHERE id = 2) + (SELECT count(*) FROM docs WHERE org_id = 2)")
        .await;
    assert_eq!(org2, 0, "tenant 2 wrote nothing");
    assert_eq!(
        live.strings("SELECT title || '/' || code FROM docs WHERE org_id = 3 ORDER BY id")
            .await,
        ["doc1/c1", "doc2/c2", "doc3/c3", "doc4/c4"]
    );
}
