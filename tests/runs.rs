//! A restore is a run of the target's journal: killed at any moment it leaves no tenant
//! half-written and a rerun continues it without redoing the tenants it finished; several
//! workers share one reviewed plan, each tenant written once; a reviewed plan that no longer
//! holds is refused before any write; Ctrl-C ends the run with a report.
//!
//! The moments are made exact rather than raced: a test holds one tenant's root row in an
//! uncommitted transaction of its own, so a worker (one job, one tenant per transaction)
//! restores the tenants before it, then waits on that lock, where it is killed or
//! interrupted.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use support::{
    Run, Scenario, TestDatabase, assert_same_database, pg_dump, read_json, row_counts,
    rows_inserted, salvage, salvage_reporting, temp_path, tracker_owned, with,
};

/// Deletes sites `ids` from live with every row they own.
async fn delete_sites(live: &TestDatabase, ids: &str) {
    let mut statements: Vec<String> = tracker_owned(ids)
        .into_iter()
        .rev()
        .map(|(table, filter)| format!("DELETE FROM {table} WHERE {filter};"))
        .collect();
    statements.insert(0, "BEGIN;".to_owned());
    statements.push("COMMIT;".to_owned());
    live.execute(&statements.join("\n")).await;
}

/// Holds site `id`'s primary key in an open transaction: a restore of that site waits on
/// it until [`release`].
async fn hold_site(live: &TestDatabase, id: i64) -> PgConnection {
    let mut connection = live.connect().await;
    sqlx::raw_sql(&format!(
        "BEGIN; INSERT INTO sites (id, slug, name, plan_id, created_at) \
         SELECT {id}, 'held-{id}', 'held', min(id), now() FROM plans"
    ))
    .execute(&mut connection)
    .await
    .expect("hold the site's key");
    connection
}

async fn release(mut connection: PgConnection) {
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut connection)
        .await
        .expect("let the site go");
    connection.close().await.expect("close");
}

/// A salvage process running in the background, its report going to `report`.
struct Background {
    child: Child,
    report: PathBuf,
}

impl Background {
    fn start(args: &[String], report: &str) -> Self {
        let report = temp_path(report);
        let _ = std::fs::remove_file(&report);
        let child = Command::new(env!("CARGO_BIN_EXE_salvage"))
            .args(args)
            .arg("--report")
            .arg(&report)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start salvage");
        Self { child, report }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn kill(mut self) {
        self.child.kill().expect("kill -9 salvage");
        self.child.wait().expect("reap salvage");
    }

    fn finish(self) -> (Run, serde_json::Value) {
        let output = self.child.wait_with_output().expect("wait for salvage");
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        let report = if Path::new(&self.report).exists() {
            read_json(&self.report)
        } else {
            panic!("no report was written:\n{run}")
        };
        (run, report)
    }
}

/// Waits until `condition` (a boolean query on `database`) holds: the synchronisation is the
/// database's state, polled; the deadline only turns a hang into a failure.
async fn wait_until(database: &TestDatabase, condition: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut connection = database.connect().await;
    loop {
        let holds: Option<bool> = sqlx::query_scalar(condition)
            .fetch_one(&mut connection)
            .await
            .unwrap_or(None);
        if holds == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    connection.close().await.expect("close");
}

/// A restore of the journal waits on a held site, with `done` tenants done.
async fn wait_blocked(live: &TestDatabase, done: i64) {
    wait_until(
        live,
        &format!(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND wait_event_type = 'Lock') > 0 \
                AND (SELECT count(*) FROM salvage.run_tenants WHERE state = 'done') = {done}"
        ),
        &format!("a restore waiting on the held site with {done} tenants done"),
    )
    .await;
}

/// Tenant IDs by state in the journal's only run.
async fn tenants_by_state(live: &TestDatabase) -> BTreeMap<String, Vec<i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, tenant::int8 FROM salvage.run_tenants ORDER BY state, tenant::int8",
    )
    .fetch_all(&mut live.connect().await)
    .await
    .expect("read the journal's tenants");
    let mut by_state: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (state, tenant) in rows {
        by_state.entry(state).or_default().push(tenant);
    }
    by_state
}

/// Per tenant, the outcomes of its attempts in order (`-` for an attempt never ended).
async fn attempts(live: &TestDatabase) -> BTreeMap<i64, Vec<String>> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT t.tenant::int8, coalesce(a.outcome, '-') FROM salvage.attempts a \
         JOIN salvage.run_tenants t USING (run_id, position) ORDER BY t.tenant::int8, a.id",
    )
    .fetch_all(&mut live.connect().await)
    .await
    .expect("read the journal's attempts");
    let mut by_tenant: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (tenant, outcome) in rows {
        by_tenant.entry(tenant).or_default().push(outcome);
    }
    by_tenant
}

/// Site IDs present in live among `ids`.
async fn sites_present(live: &TestDatabase, ids: &[i64]) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM sites WHERE id = ANY($1) ORDER BY id")
        .bind(ids)
        .fetch_all(&mut live.connect().await)
        .await
        .expect("read sites")
}

/// The rows sites `ids` own in `database`, counted by hand-written filters.
async fn owned_rows(database: &TestDatabase, ids: &[i64]) -> i64 {
    let mut total = 0;
    for (table, filter) in tracker_owned(&list(ids)) {
        let count: i64 = database
            .scalar(&format!("SELECT count(*) FROM {table} WHERE {filter}"))
            .await;
        total += count;
    }
    total
}

fn ids(range: std::ops::RangeInclusive<i64>) -> Vec<i64> {
    range.collect()
}

fn list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Killed while writing a tenant, three times, from `snapshot`; each rerun continues the same
/// run and the last one finishes it.
async fn killed_and_resumed(scenario: &Scenario, snapshot: &str, name: &str) {
    let deleted = ids(2..=11);
    delete_sites(&scenario.live, &list(&deleted)).await;
    let mut args = scenario.args("restore", &list(&deleted));
    snapshot.clone_into(&mut args[2]);
    let args = with(args, &["--yes", "--jobs", "1", "--group-size", "1"]);

    // Killed while writing site 4 (2 and 3 done), then 7, then 10.
    for (held_site, done_before) in [(4, 2), (7, 5), (10, 8)] {
        let held = hold_site(&scenario.live, held_site).await;
        let worker = Background::start(&args, &format!("{name}-{held_site}.json"));
        wait_blocked(&scenario.live, done_before).await;
        worker.kill();

        // What the journal says done is exactly what committed; the tenant being written
        // when the process died was not.
        let states = tenants_by_state(&scenario.live).await;
        let done = ids(2..=held_site - 1);
        assert_eq!(states["done"], done, "{states:?}");
        assert_eq!(states["pending"], ids(held_site..=11), "{states:?}");
        let runs: Vec<String> = scenario
            .live
            .strings("SELECT state FROM salvage.runs")
            .await;
        assert_eq!(runs, ["running"], "one run, which a kill cannot have ended");
        release(held).await;
        assert_eq!(sites_present(&scenario.live, &deleted).await, done);
    }

    let (run, report) = salvage_reporting(&args);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Continuing run"), "{run}");
    assert_eq!(report["state"], "done", "{report}");
    assert_eq!(report["run"]["resumed"], true, "{report}");
    assert_eq!(report["run"]["restored_here"], 2, "{report}");
    assert_eq!(report["run"]["tenants"]["done"], 10, "{report}");
    assert_eq!(report["run"]["tenants"]["pending"], 0, "{report}");
    // Only the tenants not done were written; those done earlier, never verified, are
    // checked with the rest.
    assert_eq!(report["summary"]["tenants"], 10, "{report}");
    assert_eq!(report["summary"]["restored"], 2, "{report}");
    assert_eq!(report["summary"]["restored_elsewhere"], 8, "{report}");
    assert_eq!(report["summary"]["verified"], 10, "{report}");
    assert_eq!(
        rows_inserted(&report),
        owned_rows(&scenario.snapshot, &ids(10..=11)).await,
        "{report}"
    );

    // Each tenant was written by exactly one attempt that committed; the one the kill
    // interrupted never ended.
    let attempts = attempts(&scenario.live).await;
    for tenant in &deleted {
        let outcomes = &attempts[tenant];
        let expected: &[&str] = if [4, 7, 10].contains(tenant) {
            &["-", "done"]
        } else {
            &["done"]
        };
        assert_eq!(outcomes, expected, "tenant {tenant}: {attempts:?}");
    }
    let state: String = scenario.live.scalar("SELECT state FROM salvage.runs").await;
    assert_eq!(state, "done");
    let compared = assert_same_database(&scenario.snapshot, &scenario.live).await;
    assert_eq!(compared["public.sites"], 12);

    // Once done, a rerun says so and writes nothing.
    let before = row_counts(&scenario.live).await;
    let (run, report) = salvage_reporting(&args);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["state"], "finished_earlier", "{report}");
    assert_eq!(report["summary"]["tenants"], 10, "{report}");
    assert_eq!(report["summary"]["restored"], 0, "{report}");
    assert_eq!(report["summary"]["verified"], 10, "{report}");
    assert_eq!(rows_inserted(&report), 0, "{report}");
    assert_eq!(row_counts(&scenario.live).await, before);
    let runs: i64 = scenario
        .live
        .scalar("SELECT count(*) FROM salvage.runs")
        .await;
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn a_restore_killed_mid_tenant_continues_from_the_database_without_redoing_work() {
    let scenario = Scenario::tracker(12).await;
    let snapshot = scenario.snapshot.url.clone();
    killed_and_resumed(&scenario, &snapshot, "kill-db").await;
}

#[tokio::test]
async fn a_restore_killed_mid_tenant_continues_from_a_dump_without_redoing_work() {
    let scenario = Scenario::tracker(12).await;
    let dump = temp_path("runs-kill.dump");
    pg_dump(15, &scenario.snapshot, &["-Fc"], &dump, false);
    killed_and_resumed(&scenario, dump.to_str().unwrap(), "kill-dump").await;
}

/// Writes the reviewed plan of restoring `ids` and returns its path.
fn reviewed_plan(scenario: &Scenario, ids: &[i64], name: &str) -> PathBuf {
    let path = temp_path(name);
    let run = salvage(&with(
        scenario.args("plan", &list(ids)),
        &["--out", path.to_str().unwrap()],
    ));
    assert_eq!(run.code, 0, "{run}");
    path
}

fn restore_plan(plan: &Path, more: &[&str]) -> Vec<String> {
    with(
        vec![
            "restore".to_owned(),
            "--plan".to_owned(),
            plan.display().to_string(),
            "--yes".to_owned(),
        ],
        more,
    )
}

#[tokio::test]
async fn a_worker_killed_mid_tenant_is_finished_by_another_and_nothing_is_written_twice() {
    let scenario = Scenario::tracker(14).await;
    let deleted = ids(2..=13);
    delete_sites(&scenario.live, &list(&deleted)).await;
    let plan = reviewed_plan(&scenario, &deleted, "workers-plan.json");
    let args = restore_plan(&plan, &["--jobs", "1", "--group-size", "1"]);

    // The first worker restores 2..=4 and waits on site 5.
    let held = hold_site(&scenario.live, 5).await;
    let first = Background::start(&args, "worker-1.json");
    wait_blocked(&scenario.live, 3).await;
    // A second worker joins, restores everything but 5, and waits for the first to let go
    // of it.
    let second = Background::start(&args, "worker-2.json");
    wait_until(
        &scenario.live,
        "SELECT count(*) = 11 FROM salvage.run_tenants WHERE state = 'done'",
        "the second worker to finish every tenant but the held one",
    )
    .await;
    first.kill();
    release(held).await;
    let (run, report) = second.finish();
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["state"], "done", "{report}");
    assert_eq!(report["run"]["restored_here"], 9, "{report}");
    assert_eq!(report["run"]["restored_elsewhere"], 3, "{report}");
    assert_eq!(report["run"]["tenants"]["done"], 12, "{report}");
    assert_eq!(report["summary"]["verified"], 12, "{report}");

    let workers: Vec<(String, i64)> = sqlx::query_as(
        "SELECT w.worker, count(a.*) FILTER (WHERE a.outcome = 'done') FROM salvage.workers w \
         LEFT JOIN salvage.attempts a ON a.run_id = w.run_id AND a.worker = w.worker \
         GROUP BY w.worker, w.started_at ORDER BY w.started_at",
    )
    .fetch_all(&mut scenario.live.connect().await)
    .await
    .expect("read the workers");
    assert_eq!(
        workers.iter().map(|(_, done)| *done).collect::<Vec<_>>(),
        [3, 9],
        "{workers:?}"
    );
    let attempts = attempts(&scenario.live).await;
    for tenant in &deleted {
        let expected: &[&str] = if *tenant == 5 {
            &["-", "done"]
        } else {
            &["done"]
        };
        assert_eq!(&attempts[tenant], expected, "tenant {tenant}: {attempts:?}");
    }
    let compared = assert_same_database(&scenario.snapshot, &scenario.live).await;
    assert_eq!(compared["public.sites"], 14);
}

#[tokio::test]
async fn three_workers_share_one_plan_and_each_tenant_is_written_once() {
    let scenario = Scenario::tracker(40).await;
    let deleted = ids(1..=36);
    delete_sites(&scenario.live, &list(&deleted)).await;
    let plan = reviewed_plan(&scenario, &deleted, "three-plan.json");
    let args = restore_plan(&plan, &["--jobs", "2", "--group-size", "1"]);
    let workers: Vec<Background> = (1..=3)
        .map(|number| Background::start(&args, &format!("three-{number}.json")))
        .collect();
    let mut restored = 0;
    for worker in workers {
        let (run, report) = worker.finish();
        assert_eq!(run.code, 0, "{run}");
        assert_eq!(report["run"]["tenants"]["done"], 36, "{report}");
        restored += report["run"]["restored_here"].as_i64().unwrap();
    }
    assert_eq!(restored, 36, "every tenant restored by exactly one worker");
    let attempts = attempts(&scenario.live).await;
    assert_eq!(attempts.len(), 36);
    for (tenant, outcomes) in &attempts {
        assert_eq!(outcomes, &["done"], "tenant {tenant}");
    }
    // No two workers ever held the same tenant at once.
    let overlapping: i64 = scenario
        .live
        .scalar(
            "SELECT count(*) FROM salvage.attempts a JOIN salvage.attempts b \
             ON a.run_id = b.run_id AND a.position = b.position AND a.id < b.id \
             AND tstzrange(a.started_at, a.ended_at) && tstzrange(b.started_at, b.ended_at)",
        )
        .await;
    assert_eq!(overlapping, 0);
    let compared = assert_same_database(&scenario.snapshot, &scenario.live).await;
    assert_eq!(compared["public.sites"], 40);
}

#[tokio::test]
async fn ctrl_c_ends_the_run_with_a_report_and_a_rerun_finishes_it() {
    let scenario = Scenario::tracker(8).await;
    let deleted = ids(2..=7);
    delete_sites(&scenario.live, &list(&deleted)).await;
    let args = with(
        scenario.args("restore", &list(&deleted)),
        &["--yes", "--jobs", "1", "--group-size", "1"],
    );
    let held = hold_site(&scenario.live, 4).await;
    let first = Background::start(&args, "ctrl-c.json");
    wait_blocked(&scenario.live, 2).await;
    first.signal("INT");
    // The tenant in flight gets a grace period, then is abandoned (rolled back).
    let (run, report) = first.finish();
    assert_eq!(run.code, 130, "{run}");
    assert_eq!(report["state"], "interrupted", "{report}");
    assert_eq!(report["run"]["state"], "interrupted", "{report}");
    assert_eq!(report["run"]["restored_here"], 2, "{report}");
    assert_eq!(report["run"]["not_attempted"], 4, "{report}");
    assert_eq!(report["summary"]["restored"], 2, "{report}");
    let state: String = scenario.live.scalar("SELECT state FROM salvage.runs").await;
    assert_eq!(state, "interrupted");
    release(held).await;
    assert_eq!(sites_present(&scenario.live, &deleted).await, ids(2..=3));

    let (run, report) = salvage_reporting(&args);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["run"]["restored_here"], 4, "{report}");
    assert_eq!(report["run"]["tenants"]["done"], 6, "{report}");
    let compared = assert_same_database(&scenario.snapshot, &scenario.live).await;
    assert_eq!(compared["public.sites"], 8);
}

/// `restore --plan` refused, exit 2, naming `needle`, with nothing written (no journal).
async fn refused(scenario: &Scenario, args: &[String], needle: &str) {
    let before = row_counts(&scenario.live).await;
    let run = salvage(args);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(needle),
        "expected {needle:?} in:\n{run}"
    );
    assert_eq!(row_counts(&scenario.live).await, before);
    let journal: bool = scenario
        .live
        .scalar("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'salvage')")
        .await;
    assert!(!journal, "a refused plan created the journal");
}

#[tokio::test]
async fn a_reviewed_plan_that_no_longer_holds_is_refused_before_any_write() {
    let scenario = Scenario::tracker(6).await;
    delete_sites(&scenario.live, "2,3").await;
    let dump = temp_path("refusals.dump");
    pg_dump(15, &scenario.snapshot, &["-Fc"], &dump, false);
    let mut plan_args = scenario.args("plan", "2,3");
    plan_args[2] = dump.display().to_string();
    let plan = temp_path("refusals-plan.json");
    let run = salvage(&with(plan_args, &["--out", plan.to_str().unwrap()]));
    assert_eq!(run.code, 0, "{run}");
    let shown = salvage(&["plan", "--show", plan.to_str().unwrap()]);
    assert_eq!(shown.code, 0, "{shown}");
    assert!(shown.stdout.contains("site-0002"), "{shown}");

    // Edited by hand.
    let text = std::fs::read_to_string(&plan).unwrap();
    let edited = temp_path("refusals-edited.json");
    std::fs::write(&edited, text.replacen("\"2\"", "\"4\"", 1)).unwrap();
    assert_ne!(std::fs::read_to_string(&edited).unwrap(), text);
    refused(
        &scenario,
        &restore_plan(&edited, &[]),
        "was changed after salvage wrote it (its checksum does not match)",
    )
    .await;

    // Another dump in the same place (of another database).
    let original = std::fs::read(&dump).unwrap();
    let other = support::tracker(6).await;
    pg_dump(15, &other, &["-Fc"], &dump, false);
    refused(
        &scenario,
        &restore_plan(&plan, &[]),
        "is not the one the plan was made against; nothing was written:\n  - the snapshot: the database was",
    )
    .await;
    std::fs::write(&dump, original).unwrap();

    // The target's schema changed.
    scenario
        .live
        .execute("ALTER TABLE issues ADD COLUMN triage integer NOT NULL DEFAULT 0")
        .await;
    refused(
        &scenario,
        &restore_plan(&plan, &[]),
        "  - the target: public.issues: column triage integer not null default 0 added",
    )
    .await;
    scenario
        .live
        .execute("ALTER TABLE issues DROP COLUMN triage")
        .await;

    // Another database as the target.
    refused(
        &scenario,
        &restore_plan(&plan, &["--target", &other.url]),
        "is not the database the plan was made for",
    )
    .await;

    // As reviewed, it applies.
    let (run, report) = salvage_reporting(&restore_plan(&plan, &[]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["summary"]["restored"], 2, "{report}");
    let compared = assert_same_database(&scenario.snapshot, &scenario.live).await;
    assert_eq!(compared["public.sites"], 6);
}

#[tokio::test]
async fn a_rerun_after_a_failed_tenant_writes_and_reads_only_that_tenant() {
    let scenario = Scenario::tracker(6).await;
    let deleted = ids(2..=5);
    delete_sites(&scenario.live, &list(&deleted)).await;
    let args = with(
        scenario.args("restore", &list(&deleted)),
        &["--yes", "--jobs", "1", "--lock-timeout", "50ms"],
    );
    let held = hold_site(&scenario.live, 4).await;
    let (run, report) = salvage_reporting(&args);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(report["state"], "failed", "{report}");
    assert_eq!(report["summary"]["restored"], 3, "{report}");
    assert_eq!(report["summary"]["failed"], 1, "{report}");
    assert_eq!(report["run"]["tenants"]["failed"], 1, "{report}");
    let attempts_of_4 = &attempts(&scenario.live).await[&4];
    assert_eq!(
        attempts_of_4,
        &["retry", "retry", "retry", "retry", "failed"],
        "every attempt of the held tenant is in the journal"
    );
    let error: String = scenario
        .live
        .scalar("SELECT error FROM salvage.run_tenants WHERE tenant = '4'")
        .await;
    assert!(error.contains("lock"), "{error}");
    let listed = salvage(&["runs", "--target", &scenario.live.url, "--format", "json"]);
    assert_eq!(listed.code, 0, "{listed}");
    let runs: serde_json::Value = serde_json::from_str(&listed.stdout).expect("JSON");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["state"], "failed", "{runs}");
    assert_eq!(runs[0]["tenants"]["done"], 3, "{runs}");
    assert_eq!(runs[0]["tenants"]["failed"], 1, "{runs}");
    assert_eq!(runs[0]["tenants"]["pending"], 0, "{runs}");
    let id = runs[0]["run"].as_str().expect("a run ID").to_owned();
    let one = salvage(&[
        "runs",
        "--target",
        &scenario.live.url,
        "--run",
        &id,
        "--format",
        "json",
    ]);
    assert_eq!(one.code, 0, "{one}");
    let one: serde_json::Value = serde_json::from_str(&one.stdout).expect("JSON");
    let states: Vec<(String, String, i64)> = one[0]["tenant_states"]
        .as_array()
        .expect("tenant states")
        .iter()
        .map(|tenant| {
            (
                tenant["tenant"].as_str().unwrap().to_owned(),
                tenant["state"].as_str().unwrap().to_owned(),
                tenant["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("2".to_owned(), "done".to_owned(), 1),
            ("3".to_owned(), "done".to_owned(), 1),
            ("4".to_owned(), "failed".to_owned(), 5),
            ("5".to_owned(), "done".to_owned(), 1),
        ]
    );
    let missing = salvage(&["runs", "--target", &scenario.live.url, "--run", "nope"]);
    assert_eq!(missing.code, 2, "{missing}");
    assert!(missing.stderr.contains("no run nope"), "{missing}");
    release(held).await;

    // The rerun continues the run: the three tenants done and verified are not read again.
    let (run, report) = salvage_reporting(&args);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("Continuing run"), "{run}");
    assert_eq!(report["summary"]["tenants"], 1, "{report}");
    assert_eq!(report["summary"]["restored"], 1, "{report}");
    assert_eq!(report["tenants"][0]["id"], "4", "{report}");
    assert_eq!(
        rows_inserted(&report),
        owned_rows(&scenario.snapshot, &[4]).await,
        "{report}"
    );
    assert_eq!(report["run"]["tenants"]["done"], 4, "{report}");
    assert_eq!(report["run"]["state"], "done", "{report}");
    let compared = assert_same_database(&scenario.snapshot, &scenario.live).await;
    assert_eq!(compared["public.sites"], 6);
}

#[tokio::test]
async fn a_role_without_rights_on_the_journal_is_refused_before_any_write() {
    let scenario = Scenario::tracker(5).await;
    delete_sites(&scenario.live, "2").await;
    let (run, _) = salvage_reporting(&with(scenario.args("restore", "2"), &["--yes"]));
    assert_eq!(run.code, 0, "{run}");
    delete_sites(&scenario.live, "3").await;
    let role = format!("{}_journal", scenario.live.name);
    scenario
        .live
        .execute(&format!(
            "CREATE ROLE {role} LOGIN; GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {role};
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role};"
        ))
        .await;
    let (host, port, _, dbname) = support::url_parts(&scenario.live.url);
    let mut args = with(scenario.args("restore", "3"), &["--yes"]);
    let position = args.iter().position(|arg| arg == "--target").unwrap() + 1;
    args[position] = format!("postgres://{role}@{host}:{port}/{dbname}");
    let before = row_counts(&scenario.live).await;
    let run = salvage(&args);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("this role may not use the journal's schema salvage (USAGE)"),
        "{run}"
    );
    assert_eq!(row_counts(&scenario.live).await, before);

    scenario
        .live
        .execute(&format!(
            "GRANT USAGE ON SCHEMA salvage TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA salvage TO {role};"
        ))
        .await;
    let run = salvage(&args);
    assert_eq!(run.code, 2, "{run}");
    for needle in [
        "this role may not use the journal's sequence salvage.attempts_id_seq (USAGE)",
        "this role may not SELECT, INSERT and UPDATE the journal table salvage.runs",
        "this role may not SELECT, INSERT and UPDATE the journal table salvage.attempts",
    ] {
        assert!(
            run.stderr.contains(needle),
            "expected {needle:?} in:\n{run}"
        );
    }
    assert_eq!(row_counts(&scenario.live).await, before);

    scenario
        .live
        .execute(&format!(
            "GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA salvage TO {role};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA salvage TO {role};"
        ))
        .await;
    let (run, report) = salvage_reporting(&args);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(report["summary"]["restored"], 1, "{report}");
    let roles: Vec<String> = scenario
        .live
        .strings("SELECT db_role FROM salvage.runs ORDER BY started_at")
        .await;
    assert_eq!(roles, ["postgres".to_owned(), role.clone()]);
    scenario
        .live
        .execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;
}
