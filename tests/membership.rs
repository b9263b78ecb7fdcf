//! A row belongs to every tenant that ANY of its chains of relations reaches (issue 8), and
//! verification proves that no such row was left behind without trusting the planner.
//!
//! The story, on the rental chain of fixtures/rental: a script deletes store 2 with every row
//! that reaches it by any chain (a cascading delete), the other stores keep working, and
//! salvage restores store 2. Live must then equal the snapshot plus the other stores' work,
//! exactly, in every table.
//!
//! What an engine that follows one chain per table (and, for a second chain, only the
//! parent's first one) misses here: the payments whose customer and staff member are store
//! 1's and whose rental reaches store 2 only through its item or its staff member (payment ->
//! rental -> inventory -> store, payment -> rental -> staff -> store: 66 of store 1's
//! payments, 13 of store 4's), and every note of store 1's threads, which are on rentals of
//! store 2's items or reply to such notes (40). The rentals themselves all come back.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use support::rental_incident::{
    CASCADE_DELETED, EXPECTED_ROWS, PAYMENT_THROUGH_THE_ITEM_ONLY, RentalIncident, first_number,
    payment_ids_reaching, payment_reaches_through, payments_reaching, store_args, table_counts,
};
use support::{
    SequencePosition, TestDatabase, all_rows, assert_same_database, pg_dump, pg_tool, read_json,
    rental, salvage, salvage_with_env, sequence_positions, temp_path, with,
};

/// Asserts that `target` is what the incident's live database must be once store 2 is
/// restored: every table equal to the expected database (with the row counts the fixture
/// gives), the report counting exactly the rows the cascade deleted as inserted, and every
/// sequence ahead of its column and not lowered.
async fn assert_store_2_is_back(
    incident: &RentalIncident,
    target: &TestDatabase,
    report: &serde_json::Value,
    sequences_before: &BTreeMap<String, SequencePosition>,
) {
    let compared = assert_same_database(&incident.expected, target).await;
    assert_eq!(
        compared,
        table_counts(EXPECTED_ROWS),
        "rows compared per table"
    );
    assert_eq!(
        report["summary"]["rows_inserted"],
        serde_json::json!(incident.deleted_total()),
        "rows inserted against rows the cascade deleted: {}",
        report["summary"]
    );
    let sequences = sequence_positions(target).await;
    assert_eq!(
        sequences.keys().collect::<Vec<_>>(),
        sequences_before.keys().collect::<Vec<_>>()
    );
    assert_eq!(sequences.len(), 11, "{sequences:?}");
    for (name, position) in &sequences {
        assert!(
            position
                .column_max
                .is_some_and(|max| position.last_value >= max),
            "{name} is behind {}: {position:?}",
            position.column
        );
        assert!(
            position.last_value >= sequences_before[name].last_value,
            "{name} was lowered: {position:?}, before {:?}",
            sequences_before[name]
        );
    }
}

#[tokio::test]
async fn every_row_any_chain_leads_to_comes_back_from_the_database() {
    let incident = RentalIncident::new().await;
    // The cascade took what the fixture says reaches store 2 by any chain: 821 rows.
    assert_eq!(incident.deleted, table_counts(CASCADE_DELETED));
    assert_eq!(incident.deleted_total(), 821);
    let sequences_before = sequence_positions(&incident.live).await;

    let report = temp_path("membership-database.json");
    let run = salvage(&with(
        incident.args("restore", "2"),
        &["--yes", "--report", report.to_str().unwrap()],
    ));
    assert_eq!(run.code, 0, "{run}");
    assert_store_2_is_back(
        &incident,
        &incident.live,
        &read_json(&report),
        &sequences_before,
    )
    .await;
}

/// The pg_dump formats a snapshot may come as (pg_dump 15, the system's).
const FORMATS: &[(&str, &str)] = &[
    ("custom", "-Fc"),
    ("directory", "-Fd"),
    ("tar", "-Ft"),
    ("plain", "-Fp"),
];

#[tokio::test]
async fn every_row_any_chain_leads_to_comes_back_from_every_archive_format() {
    let pg_dump_15 = pg_tool(15, "pg_dump");
    let version = std::process::Command::new(&pg_dump_15)
        .arg("--version")
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "{} cannot run ({error}): install PostgreSQL 15's client tools (postgresql-client-15)",
                pg_dump_15.display()
            )
        });
    assert!(
        version.status.success(),
        "{} --version failed",
        pg_dump_15.display()
    );

    let incident = RentalIncident::new().await;
    let sequences_before = sequence_positions(&incident.live).await;
    for (format, flag) in FORMATS {
        let dump = temp_path(&format!("{}-{format}", incident.snapshot.name));
        pg_dump(15, &incident.snapshot, &[flag], &dump, false);
        // A fresh copy of the incident's live database for each format.
        let target = incident.live.snapshot(&format!("rental_{format}")).await;
        let report = temp_path(&format!("membership-{format}.json"));
        let run = salvage(&with(
            store_args("restore", dump.to_str().unwrap(), &target.url, "2"),
            &["--yes", "--report", report.to_str().unwrap()],
        ));
        assert_eq!(run.code, 0, "{format}: {run}");
        assert_store_2_is_back(&incident, &target, &read_json(&report), &sequences_before).await;
    }
}

#[tokio::test]
async fn verify_fails_when_a_multi_chain_row_is_deleted_after_a_good_restore() {
    let incident = RentalIncident::new().await;
    // Payment 5 is on store 1's rental 3 (store 1's customer and staff member, store 2's
    // item), taken by store 1's staff from store 1's customer.
    let payment: i64 = incident
        .snapshot
        .scalar(PAYMENT_THROUGH_THE_ITEM_ONLY)
        .await;
    assert_eq!(payment, 5);

    let run = salvage(&with(incident.args("restore", "2"), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    let verify = salvage(&incident.args("verify", "2"));
    assert_eq!(verify.code, 0, "a good restore verifies: {verify}");

    let deleted: i64 = incident
        .live
        .scalar(&format!(
            "WITH gone AS (DELETE FROM payment WHERE payment_id = {payment} RETURNING 1) SELECT count(*) FROM gone"
        ))
        .await;
    assert_eq!(
        deleted, 1,
        "payment {payment} did not come back with store 2"
    );

    let report = temp_path("membership-verify.json");
    let verify = salvage(&with(
        incident.args("verify", "2"),
        &["--report", report.to_str().unwrap()],
    ));
    assert_eq!(verify.code, 1, "{verify}");
    let report = read_json(&report);
    let tenant = &report["tenants"][0];
    assert_eq!(tenant["id"], "2", "{tenant}");
    let payments = &tenant["tables"]["public.payment"];
    assert!(
        payments["missing"]
            .as_u64()
            .is_some_and(|missing| missing >= 1),
        "{payments}"
    );
    let examples = payments["missing_examples"]
        .as_array()
        .unwrap_or_else(|| panic!("no missing_examples: {payments}"));
    assert!(
        examples
            .iter()
            .filter_map(serde_json::Value::as_str)
            .any(|key| first_number(key) == Some(&payment.to_string())),
        "payment {payment} is not among {payments}"
    );
}

#[tokio::test]
async fn the_completeness_proof_catches_what_the_planner_misses() {
    let incident = RentalIncident::new().await;
    let report = temp_path("membership-first-chain.json");
    // A test-only switch of debug builds: the planner follows only each table's first chain,
    // as an engine with one chain per table did. The verification must not share that belief.
    let run = salvage_with_env(
        &with(
            incident.args("restore", "2"),
            &["--yes", "--report", report.to_str().unwrap()],
        ),
        &[("SALVAGE_DEBUG_MEMBERSHIP", "first-chain-only")],
    );
    assert_eq!(
        run.code, 1,
        "the built-in verification must find the rows left behind: {run}"
    );

    // Store 2's payments (by any chain, written by hand) that are not in live.
    let live: BTreeSet<String> = incident
        .live
        .strings("SELECT payment_id::text FROM payment")
        .await
        .into_iter()
        .collect();
    let left_behind: BTreeSet<String> = incident
        .snapshot
        .strings(&payment_ids_reaching(2))
        .await
        .into_iter()
        .filter(|id| !live.contains(id))
        .collect();
    assert!(
        !left_behind.is_empty(),
        "the switch left no payment behind: {run}"
    );

    let report = read_json(&report);
    let tenant = &report["tenants"][0];
    assert_eq!(tenant["id"], "2", "{tenant}");
    let payments = &tenant["tables"]["public.payment"];
    let counted = payments["left_behind"]
        .as_u64()
        .unwrap_or_else(|| panic!("no left_behind count for public.payment: {payments}"));
    assert!(counted >= 1, "{payments}");
    let examples: Vec<&str> = payments["missing_examples"]
        .as_array()
        .unwrap_or_else(|| panic!("no missing_examples: {payments}"))
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert!(!examples.is_empty(), "{payments}");
    for key in examples {
        assert!(
            first_number(key).is_some_and(|id| left_behind.contains(id)),
            "{key} is not a payment of store 2 left behind ({left_behind:?})"
        );
        // Named with a chain that ties it to the store: up through a parent the planner
        // did not follow (its staff member, or its rental), which does lead to store 2.
        let Some((_, chain)) = key.split_once(" left behind: ") else {
            panic!("{key} names no chain");
        };
        assert!(
            chain.starts_with("payment (") && chain.ends_with("→ store 2"),
            "{key}"
        );
        let parent = chain
            .split(" → ")
            .nth(1)
            .and_then(|hop| hop.split_once(' '))
            .map_or_else(
                || panic!("{key}: no hop after the payment"),
                |(table, _)| table,
            );
        let id = first_number(key).expect("a payment ID");
        assert!(
            incident
                .snapshot
                .scalar::<bool>(&payment_reaches_through(id, parent, 2))
                .await,
            "{key}: payment {id} does not reach store 2 through its {parent}"
        );
    }
}

#[tokio::test]
async fn a_tenant_column_no_table_has_is_refused() {
    let incident = RentalIncident::new().await;
    let before = all_rows(&incident.live).await;
    // A typo for store_id.
    let run = salvage(&with(
        incident.args("restore", "2"),
        &["--tenant-column", "siteid", "--yes"],
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("siteid"), "{run}");
    assert_eq!(
        all_rows(&incident.live).await,
        before,
        "live changed after a refused run"
    );
}

#[tokio::test]
async fn a_tenant_column_of_another_type_than_the_root_key_is_refused() {
    let incident = RentalIncident::new().await;
    let add_column = "ALTER TABLE kiosk_log ADD COLUMN store_ref text; UPDATE kiosk_log SET store_ref = store_id::text";
    incident.live.execute(add_column).await;
    incident.snapshot.execute(add_column).await;
    let before = all_rows(&incident.live).await;
    let run = salvage(&with(
        incident.args("restore", "2"),
        &["--tenant-column", "store_ref", "--yes"],
    ));
    assert_eq!(run.code, 2, "{run}");
    for needle in ["public.kiosk_log", "store_ref", "text", "integer"] {
        assert!(
            run.stderr.contains(needle),
            "expected {needle:?} in:\n{run}"
        );
    }
    assert_eq!(
        all_rows(&incident.live).await,
        before,
        "live changed after a refused run"
    );
}

#[tokio::test]
async fn a_table_left_alone_with_a_tenant_like_column_is_pointed_out() {
    let live = rental(3).await;
    let snapshot = live.snapshot("rental_snap").await;
    let args = |more: &[&str]| with(store_args("plan", &snapshot.url, &live.url, "2"), more);
    let kiosk_log = |run: &support::Run| -> serde_json::Value {
        let plan: serde_json::Value =
            serde_json::from_str(&run.stdout).expect("plan --format json prints JSON");
        plan["tables"]
            .as_array()
            .expect("the plan's tables")
            .iter()
            .find(|table| table["table"] == "public.kiosk_log")
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };

    // Told, salvage owns the table through its store_id column.
    let told = salvage(&args(&["--tenant-column", "store_id", "--format", "json"]));
    assert_eq!(told.code, 0, "{told}");
    assert_eq!(kiosk_log(&told)["role"], "owned", "{told}");
    // Not told, it is left alone…
    let json = salvage(&args(&["--format", "json"]));
    assert_eq!(json.code, 0, "{json}");
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert!(
        plan["unrelated"]
            .as_array()
            .is_some_and(|tables| tables.contains(&serde_json::json!("public.kiosk_log"))),
        "{json}"
    );
    // …and the plan says so.
    let text = salvage(&args(&[]));
    assert_eq!(text.code, 0, "{text}");
    assert!(
        text.stdout.contains(
            "public.kiosk_log has store_id but is left alone; add --tenant-column store_id?"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn the_plan_counts_a_payment_under_every_store_it_reaches() {
    let live = rental(4).await;
    let snapshot = live.snapshot("rental_snap").await;
    live.execute("DELETE FROM store WHERE store_id = 2").await;

    // Written by hand from the schema, not from salvage's plan: 266 payments of each store's
    // own, plus the other stores' payments that reach it (83 from the store before, 13 from
    // the one before that); 96 reach both 1 and 2.
    let store_1: i64 = snapshot.scalar(&payments_reaching(1)).await;
    let store_2: i64 = snapshot.scalar(&payments_reaching(2)).await;
    assert_eq!((store_1, store_2), (362, 362));
    let both: i64 = snapshot
        .scalar(&format!(
            "SELECT count(*) FROM ({}) one JOIN ({}) two USING (payment_id)",
            payment_ids_reaching(1),
            payment_ids_reaching(2)
        ))
        .await;
    assert_eq!(both, 96);

    let run = salvage(&with(
        store_args("plan", &snapshot.url, &live.url, "1,2"),
        &["--format", "json"],
    ));
    assert_eq!(run.code, 0, "{run}");
    let plan: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("plan --format json prints JSON");
    let tenants = plan["tenants"].as_array().expect("the plan's tenants");
    for (id, hand_count) in [("1", store_1), ("2", store_2)] {
        let tenant = tenants
            .iter()
            .find(|tenant| tenant["id"] == id)
            .unwrap_or_else(|| panic!("tenant {id} in the plan"));
        assert_eq!(
            tenant["tables"]["public.payment"]["snapshot"],
            serde_json::json!(hand_count),
            "store {id}'s payments: {}",
            tenant["tables"]
        );
    }
}
