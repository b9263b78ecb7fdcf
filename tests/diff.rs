//! `salvage diff` says which tenants an incident hit (issue 11): an incident of three kinds in
//! one database — sites deleted, sites damaged by a bad script (rows deleted, rows updated),
//! sites with ordinary later work — beside untouched ones and one created after the snapshot.
//! Every tenant's state is read from the JSON and compared as exact sets; the counts are
//! checked against hand-written SQL, never against salvage's own idea of a tenant.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;
use support::rental_incident::{
    PAYMENT_THROUGH_THE_ITEM_ONLY, RentalIncident, payment_ids_reaching, payments_reaching,
    payments_reaching_both, store_args,
};
use support::{
    Scenario, Shapes, TestDatabase, all_rows, pg_tool, rental, salvage, temp_path, tracker_owned,
    with,
};

/// What the bad scripts and the other customers did in live after the snapshot.
const INCIDENT: &str = "
    -- The bad script: sites 2 and 5 deleted; the cascade takes their projects, issues,
    -- comments and reactions; their page views (no FK) go by site_id.
    DELETE FROM page_views WHERE site_id IN (2, 5);
    DELETE FROM sites WHERE id IN (2, 5);
    -- A second script damaged sites 3 and 8: rows deleted, rows updated.
    DELETE FROM comments WHERE issue_id IN (SELECT id FROM issues WHERE site_id = 3 AND number = 1);
    UPDATE issues SET title = 'RENAMED BY THE SCRIPT' WHERE site_id = 3 AND number IN (2, 3);
    DELETE FROM page_views WHERE id = (SELECT min(id) FROM page_views WHERE site_id = 8);
    UPDATE projects SET budget = budget + 1 WHERE site_id = 8 AND project_no = 1;
    -- A bad UPDATE alone: site 10 is changed, nothing is missing.
    UPDATE issues SET estimate = interval '99 days' WHERE site_id = 10 AND number = 4;
    -- Ordinary work after the snapshot: sites 4 and 9.
    INSERT INTO page_views (site_id, path, viewed_at) VALUES
        (4, '/later', '2026-05-01 10:00:00+00'),
        (9, '/later', '2026-05-01 10:01:00+00'),
        (9, '/later/again', '2026-05-01 10:02:00+00');
    INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
        VALUES (4, 1, 100, 'filed after the snapshot', 1, '2026-05-01 11:00:00+00');
    -- A customer who signed up after the snapshot.
    INSERT INTO sites (id, slug, name, plan_id, created_at)
        VALUES (13, 'site-0013', 'Signed up later', 1, '2026-05-02 09:00:00+00');
    INSERT INTO page_views (site_id, path, viewed_at) VALUES (13, '/welcome', '2026-05-02 09:01:00+00');
";

/// The states every tenant must have after [`INCIDENT`].
fn expected_states() -> BTreeMap<&'static str, BTreeSet<String>> {
    let set = |ids: &[u32]| ids.iter().map(ToString::to_string).collect();
    BTreeMap::from([
        ("deleted", set(&[2, 5])),
        ("damaged", set(&[3, 8])),
        ("changed", set(&[4, 9, 10])),
        ("new", set(&[13])),
        ("intact", set(&[1, 6, 7, 11, 12])),
    ])
}

async fn incident() -> Scenario {
    let scenario = Scenario::tracker(12).await;
    scenario.live.execute(INCIDENT).await;
    scenario
}

/// `diff --snapshot SNAPSHOT --target LIVE --root public.sites --tenant-column site_id ARGS`.
fn diff_args(snapshot: &str, target: &str, more: &[&str]) -> Vec<String> {
    with(
        [
            "diff",
            "--snapshot",
            snapshot,
            "--target",
            target,
            "--root",
            "public.sites",
            "--tenant-column",
            "site_id",
        ]
        .map(str::to_owned)
        .to_vec(),
        more,
    )
}

/// Runs a JSON diff and returns its exit code and report.
fn diff_json(args: &[String]) -> (i32, Value) {
    let run = salvage(&with(args.to_vec(), &["--format", "json"]));
    assert!(run.code == 0 || run.code == 1, "{run}");
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("the output is not JSON ({error}):\n{run}"));
    (run.code, report)
}

/// Each state's tenants, as the report lists them.
fn states(report: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut states: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for tenant in report["tenants"].as_array().expect("a tenants array") {
        states
            .entry(tenant["state"].as_str().expect("a state").to_owned())
            .or_default()
            .insert(tenant["tenant"].as_str().expect("an ID").to_owned());
    }
    states
}

/// `states` with every state present, for comparing with the expected map.
fn all_states(report: &Value) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut found = states(report);
    let result = ["deleted", "damaged", "changed", "new", "intact"]
        .into_iter()
        .map(|state| (state, found.remove(state).unwrap_or_default()))
        .collect();
    assert!(found.is_empty(), "unknown states: {found:?}");
    result
}

/// The report's entry for `tenant`.
fn tenant<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tenants"]
        .as_array()
        .expect("a tenants array")
        .iter()
        .find(|entry| entry["tenant"] == id)
        .unwrap_or_else(|| panic!("tenant {id} is not in the report"))
}

/// The per-table counts of `tenant` for `table` (absent: the tenant has no rows there).
fn counts(report: &Value, id: &str, table: &str) -> BTreeMap<String, u64> {
    let entry = &tenant(report, id)["tables"][table];
    [
        "snapshot",
        "live",
        "equal",
        "missing",
        "different",
        "live_only",
    ]
    .into_iter()
    .map(|field| {
        let value = entry[field]
            .as_u64()
            .unwrap_or_else(|| panic!("tenant {id}, {table}: no {field} in {entry}"));
        (field.to_owned(), value)
    })
    .collect()
}

/// `value` without its example keys, which follow the order rows were read in (by key
/// lookups, or whole tables).
fn without_examples(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(name, _)| !name.ends_with("_examples"))
                .map(|(name, value)| (name.clone(), without_examples(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_examples).collect()),
        other => other.clone(),
    }
}

fn expect(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .map(|(field, value)| ((*field).to_owned(), *value))
        .collect()
}

/// How many rows `filter` selects from `table` in `database`.
async fn count(database: &TestDatabase, table: &str, filter: &str) -> u64 {
    database
        .scalar::<i64>(&format!("SELECT count(*) FROM {table} WHERE {filter}"))
        .await as u64
}

/// Every owned row of the tenants of `database` (hand-written filters), each once.
async fn owned_rows(database: &TestDatabase) -> u64 {
    let mut total = 0;
    for (table, filter) in tracker_owned("SELECT id FROM sites") {
        total += count(database, table, &filter).await;
    }
    total
}

/// Site `id`'s rows of `table` in the snapshot and in live (hand-written filters).
async fn site_rows(scenario: &Scenario, id: &str, table: &str) -> (u64, u64) {
    let filter = tracker_owned(id)
        .into_iter()
        .find(|(name, _)| *name == table)
        .map(|(_, filter)| filter)
        .expect("a tracker table");
    (
        count(&scenario.snapshot, table, &filter).await,
        count(&scenario.live, table, &filter).await,
    )
}

/// The incident's per-table counts and totals that hold from any snapshot of it.
async fn assert_counts(scenario: &Scenario, report: &Value) {
    let (snapshot, live) = (&scenario.snapshot, &scenario.live);
    // Every row of every tenant was read and compared, each once: nothing was skipped.
    assert_eq!(
        report["rows"]["snapshot"].as_u64(),
        Some(owned_rows(snapshot).await),
        "{}",
        report["rows"]
    );
    assert_eq!(
        report["rows"]["live"].as_u64(),
        Some(owned_rows(live).await),
        "{}",
        report["rows"]
    );
    assert_eq!(report["counts"]["total"], 13);

    // Site 3, damaged: the comments of its issue 1 are gone with their reactions, two of its
    // issues were renamed, the rest is as it was.
    let lost_comments = "issue_id IN (SELECT id FROM issues WHERE site_id = 3 AND number = 1)";
    let comments = count(snapshot, "comments", lost_comments).await;
    let reactions = count(
        snapshot,
        "reactions",
        &format!("comment_id IN (SELECT id FROM comments WHERE {lost_comments})"),
    )
    .await;
    assert_eq!(comments, 3);
    assert!(reactions > 0);
    let (in_snapshot, in_live) = site_rows(scenario, "3", "comments").await;
    assert_eq!(
        counts(report, "3", "public.comments"),
        expect(&[
            ("snapshot", in_snapshot),
            ("live", in_live),
            ("equal", in_snapshot - comments),
            ("missing", comments),
            ("different", 0),
            ("live_only", 0),
        ])
    );
    let (in_snapshot, in_live) = site_rows(scenario, "3", "reactions").await;
    assert_eq!(
        counts(report, "3", "public.reactions"),
        expect(&[
            ("snapshot", in_snapshot),
            ("live", in_live),
            ("equal", in_snapshot - reactions),
            ("missing", reactions),
            ("different", 0),
            ("live_only", 0),
        ])
    );
    assert_eq!(
        counts(report, "3", "public.issues"),
        expect(&[
            ("snapshot", 12),
            ("live", 12),
            ("equal", 10),
            ("missing", 0),
            ("different", 2),
            ("live_only", 0),
        ])
    );
    assert_eq!(tenant(report, "3")["missing"], comments + reactions);
    // Site 2, deleted: every row it had is missing.
    let mut site_2 = 0;
    for (table, filter) in tracker_owned("2") {
        let rows = count(snapshot, table, &filter).await;
        assert_eq!(
            counts(report, "2", &format!("public.{table}"))["missing"],
            rows,
            "site 2's {table}"
        );
        site_2 += rows;
    }
    assert_eq!(tenant(report, "2")["missing"], site_2);
    assert_eq!(tenant(report, "2")["in_live"], false);
    // Site 9's later work is live-only, and nothing else about it differs.
    assert_eq!(
        counts(report, "9", "public.page_views"),
        expect(&[
            ("snapshot", 5),
            ("live", 7),
            ("equal", 5),
            ("missing", 0),
            ("different", 0),
            ("live_only", 2),
        ])
    );
    assert_eq!(
        (
            &tenant(report, "9")["missing"],
            &tenant(report, "9")["different"]
        ),
        (&Value::from(0), &Value::from(0))
    );
    // The new site is only in live.
    assert_eq!(
        counts(report, "13", "public.page_views"),
        expect(&[
            ("snapshot", 0),
            ("live", 1),
            ("equal", 0),
            ("missing", 0),
            ("different", 0),
            ("live_only", 1),
        ])
    );
    assert_eq!(tenant(report, "13")["label"], "site-0013");
}

#[tokio::test]
async fn every_tenant_is_classified_from_a_snapshot_database() {
    let scenario = incident().await;
    let (code, report) = diff_json(&diff_args(&scenario.snapshot.url, &scenario.live.url, &[]));
    assert_eq!(code, 1, "some tenants are deleted or damaged: exit 1");
    assert_eq!(report["scope"], "all");
    assert_eq!(all_states(&report), expected_states());
    let counts = &report["counts"];
    assert_eq!(
        [
            &counts["deleted"],
            &counts["damaged"],
            &counts["changed"],
            &counts["new"],
            &counts["intact"]
        ],
        [2, 2, 3, 1, 5].map(Value::from).each_ref()
    );
    assert_counts(&scenario, &report).await;
    // Worst first: the deleted, then the damaged (the most rows missing first), …
    let order: Vec<&str> = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(&order[..4], ["2", "5", "3", "8"]);

    // The text says the same, count for count and tenant by tenant.
    let run = salvage(&diff_args(&scenario.snapshot.url, &scenario.live.url, &[]));
    assert_eq!(run.code, 1, "{run}");
    assert_text_agrees(&run.stdout, &report);
    let listed: Vec<&str> = text_rows(&run.stdout)
        .iter()
        .filter(|row| !row.tenant.is_empty())
        .map(|row| row.tenant)
        .collect();
    // Changed: the update (a row different) before the later work (rows live-only), by ID.
    assert_eq!(listed, ["2", "5", "3", "8", "10", "4", "9", "13"], "{run}");
}

/// A number as the text writes it (`1,044`).
fn text_number(word: &str) -> u64 {
    word.replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("{word:?} is not a number"))
}

/// One row of the text's "Not intact" table: the tenant, label and state on a tenant's first
/// row only.
#[derive(Debug, PartialEq, Eq)]
struct TextRow<'a> {
    tenant: &'a str,
    label: &'a str,
    state: &'a str,
    table: &'a str,
    counts: [u64; 3],
}

/// The rows of the text's "Not intact, worst first" table.
fn text_rows(text: &str) -> Vec<TextRow<'_>> {
    text.lines()
        .skip_while(|line| !line.starts_with("Not intact"))
        .skip(2)
        .take_while(|line| !line.is_empty())
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (tenant, label, state, rest) = match words.len() {
                7 => (words[0], words[1], words[2], &words[3..]),
                4 => ("", "", "", &words[..]),
                _ => panic!("an unexpected row {line:?} in:\n{text}"),
            };
            TextRow {
                tenant,
                label,
                state,
                table: rest[0],
                counts: [rest[1], rest[2], rest[3]].map(text_number),
            }
        })
        .collect()
}

/// Asserts the text report gives exactly what the JSON report gives: the count of each state,
/// the rows compared, and for every tenant not intact (in the JSON's worst-first order) its
/// label, state and the counts of every table where something differs.
fn assert_text_agrees(text: &str, report: &Value) {
    let legend: BTreeMap<&str, u64> = text
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("STATE"))
        .skip(1)
        .take(5)
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words[0], text_number(words[1]))
        })
        .collect();
    let from_json: BTreeMap<&str, u64> = ["deleted", "damaged", "changed", "new", "intact"]
        .into_iter()
        .map(|state| (state, report["counts"][state].as_u64().expect("a count")))
        .collect();
    assert_eq!(legend, from_json, "{text}");
    let rows_line = text
        .lines()
        .find(|line| line.starts_with("Rows compared: "))
        .unwrap_or_else(|| panic!("no rows line in:\n{text}"));
    let words: Vec<&str> = rows_line.split_whitespace().collect();
    assert_eq!(
        (text_number(words[2]), text_number(words[6])),
        (
            report["rows"]["snapshot"].as_u64().expect("rows read"),
            report["rows"]["live"].as_u64().expect("rows read")
        ),
        "{rows_line}"
    );
    let table_order: Vec<&str> = report["tables"]
        .as_array()
        .expect("a tables array")
        .iter()
        .map(|table| table["table"].as_str().expect("a table name"))
        .collect();
    let mut expected = Vec::new();
    for tenant in report["tenants"].as_array().expect("a tenants array") {
        if tenant["state"] == "intact" {
            continue;
        }
        let mut first = true;
        for name in &table_order {
            // A table where the tenant has no rows on either side is left out by design.
            let Some(counts) = tenant["tables"].get(*name) else {
                continue;
            };
            let counts = ["missing", "different", "live_only"].map(|field| {
                counts[field]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no {field} in {counts}"))
            });
            if counts == [0, 0, 0] {
                continue;
            }
            let shown = |field: &'static str| -> &str {
                if first {
                    tenant[field].as_str().expect("a string")
                } else {
                    ""
                }
            };
            expected.push(TextRow {
                tenant: shown("tenant"),
                label: shown("label"),
                state: shown("state"),
                table: name,
                counts,
            });
            first = false;
        }
        assert!(!first, "tenant {tenant} is not intact and differs nowhere");
    }
    assert_eq!(text_rows(text), expected, "{text}");
}

#[tokio::test]
async fn every_tenant_is_classified_from_a_custom_dump_taken_in_another_time_zone() {
    let scenario = incident().await;
    // pg_dump in New York writes every timestamptz with -04/-05: not one such row has the
    // text live gives, so only a typed comparison finds them equal.
    let dump = temp_path(&format!("{}.dump", scenario.snapshot.name));
    let status = Command::new(pg_tool(15, "pg_dump"))
        .env("PGTZ", "America/New_York")
        .args(["-Fc", "--no-owner", "-f"])
        .arg(&dump)
        .arg(&scenario.snapshot.url)
        .status()
        .expect("run pg_dump");
    assert!(status.success());
    let dump = dump.to_str().expect("a UTF-8 path");
    let (code, report) = diff_json(&diff_args(dump, &scenario.live.url, &[]));
    assert_eq!(code, 1);
    assert_eq!(all_states(&report), expected_states());
    assert_counts(&scenario, &report).await;
    // Tenant for tenant, table for table, what the snapshot database gives.
    let (_, from_database) = diff_json(&diff_args(&scenario.snapshot.url, &scenario.live.url, &[]));
    assert_eq!(
        without_examples(&report["tenants"]),
        without_examples(&from_database["tenants"])
    );
    assert_eq!(report["tables"], from_database["tables"]);
}

#[tokio::test]
async fn the_tenants_written_are_the_deleted_and_damaged_and_restore_takes_them() {
    let scenario = incident().await;
    // A password salvage never needs (trust authentication), to show it is not written.
    let target = scenario
        .live
        .url
        .replacen("postgres@", "postgres:never-written-9f3a@", 1);
    assert_ne!(target, scenario.live.url);
    let file = temp_path(&format!("{}-tenants.txt", scenario.live.name));
    let file_arg = file.to_str().expect("a UTF-8 path");
    let run = salvage(&diff_args(
        &scenario.snapshot.url,
        &target,
        &["--write-tenants", file_arg],
    ));
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout
            .contains("Wrote 4 tenant IDs (deleted and damaged)"),
        "{run}"
    );
    let written = std::fs::read_to_string(&file).expect("the tenants file");
    assert!(!written.contains("never-written-9f3a"), "{written}");
    let (header, ids): (Vec<&str>, Vec<&str>) =
        written.lines().partition(|line| line.starts_with('#'));
    assert_eq!(ids, ["2", "5", "3", "8"], "{written}");
    assert_eq!(header.len(), 2, "{written}");
    assert!(
        header[0].starts_with("# salvage diff --snapshot ")
            && header[0].contains("--write-tenants")
            && header[0].contains("postgres:***@"),
        "{written}"
    );
    assert!(
        header[1].contains("the tenants deleted (2) or damaged (2) of 13 compared"),
        "{written}"
    );

    // The file is a tenants file diff itself reads: exactly those four, and nothing else.
    let (code, chosen) = diff_json(&diff_args(
        &scenario.snapshot.url,
        &scenario.live.url,
        &["--tenants-file", file_arg],
    ));
    assert_eq!(code, 1);
    assert_eq!(chosen["scope"], "given");
    assert_eq!(chosen["counts"]["total"], 4);
    let mut expected = expected_states();
    expected.retain(|state, _| ["deleted", "damaged"].contains(state));
    assert_eq!(
        states(&chosen),
        expected
            .into_iter()
            .map(|(state, ids)| (state.to_owned(), ids))
            .collect()
    );

    let mut restore = scenario.args("restore", "");
    restore.truncate(restore.len() - 2);
    let run = salvage(&with(restore, &["--yes", "--tenants-file", file_arg]));
    assert_eq!(run.code, 0, "{run}");

    // Nothing is missing any more: the deleted sites are back whole; the damaged ones keep
    // the values the script changed (mode missing keeps live's rows) and are changed.
    let (code, report) = diff_json(&diff_args(&scenario.snapshot.url, &scenario.live.url, &[]));
    assert_eq!(code, 0, "no tenant deleted or damaged: exit 0");
    let mut expected = expected_states();
    let restored = expected.remove("deleted").unwrap();
    let damaged = expected.remove("damaged").unwrap();
    expected.entry("intact").or_default().extend(restored);
    expected.entry("changed").or_default().extend(damaged);
    expected.insert("deleted", BTreeSet::new());
    expected.insert("damaged", BTreeSet::new());
    assert_eq!(all_states(&report), expected);
    assert_eq!(
        counts(&report, "3", "public.issues")["different"],
        2,
        "the renamed issues stay renamed"
    );
}

#[tokio::test]
async fn chosen_tenants_read_by_key_agree_with_every_tenant_read_whole() {
    let scenario = incident().await;
    let (_, everyone) = diff_json(&diff_args(&scenario.snapshot.url, &scenario.live.url, &[]));
    // 013 is 13, the new site: a tenant only in live may be asked about.
    let (code, chosen) = diff_json(&diff_args(
        &scenario.snapshot.url,
        &scenario.live.url,
        &["--tenants", "013,3,4,1,2"],
    ));
    assert_eq!(code, 1);
    assert_eq!(chosen["scope"], "given");
    assert_eq!(chosen["counts"]["total"], 5);
    for id in ["13", "3", "4", "1", "2"] {
        assert_eq!(
            without_examples(tenant(&chosen, id)),
            without_examples(tenant(&everyone, id)),
            "tenant {id}"
        );
    }
    // Only the damaged and the intact: nothing to restore, exit 0.
    let (code, chosen) = diff_json(&diff_args(
        &scenario.snapshot.url,
        &scenario.live.url,
        &["--tenants", "1,4,13"],
    ));
    assert_eq!(code, 0);
    assert_eq!(
        states(&chosen),
        BTreeMap::from([
            ("changed".to_owned(), BTreeSet::from(["4".to_owned()])),
            ("intact".to_owned(), BTreeSet::from(["1".to_owned()])),
            ("new".to_owned(), BTreeSet::from(["13".to_owned()])),
        ])
    );
}

/// The rental chain, where a payment reaches every store any of its chains leads to.
#[tokio::test]
async fn a_row_reaching_two_tenants_is_counted_for_both() {
    let live = rental(4).await;
    let snapshot = live.snapshot("rental_diff").await;
    // A payment of store 1's customer and staff, on a rental of one of store 2's items.
    let payment: i64 = live.scalar(PAYMENT_THROUGH_THE_ITEM_ONLY).await;
    live.execute(&format!("DELETE FROM payment WHERE payment_id = {payment}"))
        .await;
    let args = store_args("diff", &snapshot.url, &live.url, "");
    let (code, report) = diff_json(&args[..args.len() - 2]);
    assert_eq!(code, 1);
    assert_eq!(
        states(&report),
        BTreeMap::from([
            (
                "damaged".to_owned(),
                BTreeSet::from(["1".to_owned(), "2".to_owned()])
            ),
            (
                "intact".to_owned(),
                BTreeSet::from(["3".to_owned(), "4".to_owned()])
            ),
        ])
    );
    for store in ["1", "2"] {
        let payments = counts(&report, store, "public.payment");
        assert_eq!(payments["missing"], 1, "store {store}: {payments:?}");
        assert_eq!(payments["live"], payments["snapshot"] - 1);
        let examples = &tenant(&report, store)["tables"]["public.payment"]["missing_examples"];
        assert!(
            examples[0].as_str().is_some_and(
                |key| key.starts_with(&format!("(payment_id, payment_date)=({payment}, "))
            ),
            "store {store}: {examples}"
        );
    }
    for store in [1, 2] {
        assert_eq!(
            counts(&report, &store.to_string(), "public.payment")["snapshot"],
            snapshot.scalar::<i64>(&payments_reaching(store)).await as u64
        );
    }
}

/// The rental chain's incident: store 2 deleted with every row reaching it by any chain.
#[tokio::test]
async fn a_cascade_through_shared_rows_damages_every_store_it_reached() {
    let incident = RentalIncident::new().await;
    let args = store_args("diff", &incident.snapshot.url, &incident.live.url, "");
    let (code, report) = diff_json(&args[..args.len() - 2]);
    assert_eq!(code, 1);
    // Stores 1 and 4 lost the rows they shared with store 2; store 3 voided a payment.
    assert_eq!(
        states(&report),
        BTreeMap::from([
            ("deleted".to_owned(), BTreeSet::from(["2".to_owned()])),
            (
                "damaged".to_owned(),
                BTreeSet::from(["1".to_owned(), "3".to_owned(), "4".to_owned()])
            ),
        ])
    );
    // Each store's payments the cascade took (or store 3 voided): its payments in the
    // snapshot, by any chain, whose ID live no longer has — a payment of two stores counts
    // for both.
    let live_payments: BTreeSet<String> = incident
        .live
        .strings("SELECT payment_id::text FROM payment")
        .await
        .into_iter()
        .collect();
    let mut shared_with_2 = 0;
    for store in 1..=4 {
        let gone = incident
            .snapshot
            .strings(&payment_ids_reaching(store))
            .await
            .into_iter()
            .filter(|id| !live_payments.contains(id))
            .count() as u64;
        assert_eq!(
            counts(&report, &store.to_string(), "public.payment")["missing"],
            gone,
            "store {store}"
        );
        if store != 2 {
            shared_with_2 += incident
                .snapshot
                .scalar::<i64>(&payments_reaching_both(store, 2))
                .await;
        }
    }
    // The cascade took every payment reaching store 2, and so many of the others'.
    assert!(shared_with_2 > 80, "{shared_with_2}");
}

/// Rows without a key are compared as multisets: a duplicate deleted is one copy missing; a
/// row updated, one copy missing and one live-only. From a dump taken in another time zone no
/// copy has live's text, so every one is settled by typed value in live.
#[tokio::test]
async fn rows_without_a_key_compare_as_multisets_by_typed_value() {
    let shapes = Shapes::new(4).await;
    shapes
        .live
        .execute(
            "WITH one AS (SELECT tableoid, ctid FROM events WHERE account_id = 1 AND kind = 'login' LIMIT 1)
             DELETE FROM events e USING one WHERE e.tableoid = one.tableoid AND e.ctid = one.ctid;
             UPDATE events SET meta = '{\"agent\": \"y\"}' WHERE account_id = 2 AND kind = 'share';
             INSERT INTO events (account_id, at, kind) VALUES (3, '2026-05-01 00:00:00+00', 'later');",
        )
        .await;
    let dump = temp_path(&format!("{}.dump", shapes.snapshot.name));
    let status = Command::new(pg_tool(15, "pg_dump"))
        .env("PGTZ", "Asia/Kolkata")
        .args(["-Fc", "--no-owner", "-f"])
        .arg(&dump)
        .arg(&shapes.snapshot.url)
        .status()
        .expect("run pg_dump");
    assert!(status.success());
    let config = shapes.config.to_str().expect("a UTF-8 path");
    for snapshot in [dump.to_str().expect("a UTF-8 path"), &shapes.snapshot.url] {
        let (code, report) =
            diff_json(&["diff", "--config", config, "--snapshot", snapshot].map(str::to_owned));
        assert_eq!(code, 1, "{snapshot}");
        assert_eq!(
            states(&report),
            BTreeMap::from([
                (
                    "damaged".to_owned(),
                    BTreeSet::from(["1".to_owned(), "2".to_owned()])
                ),
                ("changed".to_owned(), BTreeSet::from(["3".to_owned()])),
                ("intact".to_owned(), BTreeSet::from(["4".to_owned()])),
            ]),
            "{snapshot}"
        );
        let events = |id: &str| counts(&report, id, "public.events");
        let row = |snapshot, live, equal, missing, live_only| {
            expect(&[
                ("snapshot", snapshot),
                ("live", live),
                ("equal", equal),
                ("missing", missing),
                ("different", 0),
                ("live_only", live_only),
            ])
        };
        assert_eq!(events("1"), row(5, 4, 4, 1, 0), "{snapshot}");
        assert_eq!(events("2"), row(5, 5, 4, 1, 1), "{snapshot}");
        assert_eq!(events("3"), row(5, 6, 5, 0, 1), "{snapshot}");
        assert_eq!(events("4"), row(5, 5, 5, 0, 0), "{snapshot}");
        let table = report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|table| table["table"] == "public.events")
            .expect("events compared");
        assert_eq!(table["keyless"], true);
        assert_eq!(
            (&table["snapshot_rows"], &table["live_rows"]),
            (&Value::from(20), &Value::from(20))
        );
    }
}

/// Bad input exits 2 before anything is read or written: no tenants file, no change to
/// either database.
#[tokio::test]
async fn bad_input_is_refused_with_exit_2() {
    let scenario = Scenario::tracker(3).await;
    let (snapshot, live) = (&scenario.snapshot.url, &scenario.live.url);
    let (live_before, snapshot_before) = (
        all_rows(&scenario.live).await,
        all_rows(&scenario.snapshot).await,
    );
    let written = temp_path(&format!("{}-refused-tenants.txt", scenario.live.name));
    let _ = std::fs::remove_file(&written);
    let written_arg = written.to_str().expect("a UTF-8 path").to_owned();
    let refused = |args: Vec<String>, needle: &str| {
        let run = salvage(&with(args, &["--write-tenants", &written_arg]));
        assert_eq!(run.code, 2, "{run}");
        assert!(run.stderr.contains(needle), "{needle:?} in:\n{run}");
        assert!(run.stdout.is_empty(), "{run}");
        assert!(!written.exists(), "a tenants file was written: {run}");
    };
    let mut unknown_root = diff_args(snapshot, live, &[]);
    let root = unknown_root
        .iter()
        .position(|arg| arg == "public.sites")
        .unwrap();
    unknown_root[root] = "public.nope".to_owned();
    refused(
        unknown_root,
        "the root table public.nope does not exist in the live database",
    );
    refused(
        diff_args(snapshot, live, &["--tenants", "1,abc"]),
        "tenant ID 'abc' is not a valid bigint for public.sites.id",
    );
    refused(
        diff_args(snapshot, live, &["--tenants", "2,99"]),
        "tenant ID '99' is in neither the snapshot's nor live's public.sites",
    );
    let file = temp_path(&format!("{}-bad-ids.txt", scenario.live.name));
    std::fs::write(&file, "# sites\n1\n3x\n").unwrap();
    refused(
        diff_args(snapshot, live, &["--tenants-file", file.to_str().unwrap()]),
        &format!(
            "tenant ID '3x' ({} line 3) is not a valid bigint for public.sites.id",
            file.display()
        ),
    );
    refused(
        diff_args(snapshot, live, &["--tenants-by", "slug"]),
        "--tenants-by names the tenants given by --tenants",
    );
    refused(
        diff_args(snapshot, live, &["--tenant-column", "site_idd"]),
        "--tenant-column site_idd: no table has a column site_idd (did you mean site_id?)",
    );
    // The tenants file's own path: a directory cannot be written.
    let directory = std::env::temp_dir();
    let run = salvage(&diff_args(
        snapshot,
        live,
        &["--write-tenants", directory.to_str().unwrap()],
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains(": is a directory"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");

    assert_eq!(all_rows(&scenario.live).await, live_before);
    assert_eq!(all_rows(&scenario.snapshot).await, snapshot_before);
}
