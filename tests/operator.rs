//! The operator's details: connection strings read as psql reads them, tenants named by line
//! or by slug, output that reads well at a terminal and off one, archives named for what
//! they are, completions and the manual.

mod support;

use support::{
    Scenario, all_rows, pg_dump, salvage, salvage_reporting, salvage_with_env, temp_path,
    url_parts, with,
};

#[tokio::test]
async fn targets_are_read_as_psql_reads_them() {
    let scenario = Scenario::tracker(3).await;
    let (host, port, user, dbname) = url_parts(&scenario.live.url);
    let plan_with = |target: Option<&str>, env: &[(&str, &str)]| {
        let mut args = scenario.args("plan", "1");
        let position = args.iter().position(|arg| arg == "--target").unwrap();
        match target {
            Some(target) => target.clone_into(&mut args[position + 1]),
            None => {
                args.drain(position..position + 2);
            }
        }
        salvage_with_env(&args, env)
    };
    // The PG* environment, as psql reads it.
    let run = plan_with(
        None,
        &[
            ("PGHOST", &host),
            ("PGPORT", &port),
            ("PGUSER", &user),
            ("PGDATABASE", &dbname),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("(from the PG* environment)"), "{run}");
    // A key=value string, with a quoted value.
    let run = plan_with(
        Some(&format!(
            "host={host} port='{port}' user={user} dbname={dbname}"
        )),
        &[],
    );
    assert_eq!(run.code, 0, "{run}");
    // Several hosts: the first does not answer, the second does.
    let run = plan_with(
        Some(&format!(
            "postgres://{user}@127.0.0.1:9,{host}:{port}/{dbname}"
        )),
        &[],
    );
    assert_eq!(run.code, 0, "{run}");
    // A service of pg_service.conf.
    let services = temp_path("pg_service.conf");
    std::fs::write(
        &services,
        format!("[live]\nhost={host}\nport={port}\nuser={user}\ndbname={dbname}\n"),
    )
    .unwrap();
    let run = plan_with(
        Some("service=live"),
        &[("PGSERVICEFILE", services.to_str().unwrap())],
    );
    assert_eq!(run.code, 0, "{run}");
    // Unknown parameters are refused, as libpq refuses them.
    let run = plan_with(Some(&format!("{}?sslmod=require", scenario.live.url)), &[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("invalid URI query parameter: \"sslmod\""),
        "{run}"
    );
    // PostgreSQL's spellings of sizes.
    let run = salvage(&with(scenario.args("plan", "1"), &["--key-memory", "1GB"]));
    assert_eq!(run.code, 0, "{run}");
}

#[tokio::test]
async fn tenants_files_name_lines_and_tenants_can_be_chosen_by_slug() {
    let scenario = Scenario::tracker(5).await;
    scenario
        .live
        .execute(
            "DELETE FROM page_views WHERE site_id IN (2, 4); DELETE FROM sites WHERE id IN (2, 4)",
        )
        .await;
    let file = temp_path("bom-tenants.txt");
    std::fs::write(&file, "\u{feff}2\n# a comment\nfour\n").unwrap();
    let mut args = scenario.args("plan", "x");
    args.truncate(args.len() - 2);
    let run = salvage(&with(
        args.clone(),
        &["--tenants-file", file.to_str().unwrap()],
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "tenant ID 'four' ({} line 3) is not a valid bigint for public.sites.id",
            file.display()
        )),
        "{run}"
    );
    std::fs::write(&file, "\u{feff}2\n4\n").unwrap();
    let run = salvage(&with(
        args.clone(),
        &["--tenants-file", file.to_str().unwrap()],
    ));
    assert_eq!(
        run.code, 0,
        "the byte order mark is not part of the first ID: {run}"
    );

    let run = salvage(&with(
        args.clone(),
        &[
            "--tenants",
            "site-0004,site-0002",
            "--tenants-by",
            "slug",
            "--format",
            "json",
        ],
    ));
    assert_eq!(run.code, 0, "{run}");
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(plan["tenants"][0]["id"], "4");
    assert_eq!(plan["tenants"][0]["given"], "slug site-0004");
    assert_eq!(plan["tenants"][1]["id"], "2");
    let run = salvage(&with(
        args.clone(),
        &["--tenants", "site-0004,nobody", "--tenants-by", "slug"],
    ));
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("no root row of the snapshot's public.sites has slug 'nobody'"),
        "{run}"
    );
    let run = salvage(&with(args, &["--tenants", "x", "--tenants-by", "name"]));
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("public.sites.name is not unique"),
        "{run}"
    );
}

#[tokio::test]
async fn output_off_a_terminal_reads_well() {
    let scenario = Scenario::tracker(4).await;
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id = 3; DELETE FROM sites WHERE id = 3")
        .await;
    let plan = salvage(&scenario.args("plan", "3"));
    assert_eq!(plan.code, 0, "{plan}");
    let widest = plan.stdout.lines().map(|line| line.chars().count()).max();
    assert!(
        widest <= Some(100),
        "a line is wider than 100 columns:\n{plan}"
    );
    assert!(!plan.stdout.contains('\u{1b}') && !plan.stderr.contains('\u{1b}'));

    let (run, report) = salvage_reporting(&with(scenario.args("restore", "3"), &["--yes", "-vv"]));
    assert_eq!(run.code, 0, "{run}");
    assert!(
        !run.stderr.contains('\u{1b}'),
        "ANSI codes in a log file:\n{run}"
    );
    assert!(
        run.stderr.contains("sqlx::query") && run.stderr.contains("elapsed="),
        "-vv logs each statement with its duration:\n{run}"
    );
    assert!(run.stdout.contains("Restored 1 of 1 tenant: "), "{run}");
    assert!(
        !run.stdout.contains("restored tenant 3"),
        "each tenant once:\n{run}"
    );
    // Shared rows are counted once, as the plan counts them.
    let users = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|table| table["table"] == "public.users")
        .unwrap();
    let plan_json = salvage(&with(scenario.args("plan", "3"), &["--format", "json"]));
    let plan_json: serde_json::Value = serde_json::from_str(&plan_json.stdout).unwrap();
    let planned = plan_json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|table| table["table"] == "public.users")
        .unwrap();
    assert_eq!(users["snapshot"], planned["snapshot"], "{report}");
    assert_eq!(users["already_present"], planned["in_live"], "{report}");

    // RUST_LOG chooses what is logged.
    let run = salvage_with_env(
        &scenario.args("plan", "3"),
        &[("RUST_LOG", "sqlx::query=debug")],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("summary="), "{run}");

    // verify does not claim every row is present above a failed tenant.
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id = 3")
        .await;
    let run = salvage(&scenario.args("verify", "3,1"));
    assert_eq!(run.code, 1, "{run}");
    assert!(!run.stdout.contains("every snapshot row present"), "{run}");
    assert!(
        run.stdout.contains("Verified 1 of 2 tenants; 1 FAILED"),
        "{run}"
    );
}

#[tokio::test]
async fn archives_that_hold_no_rows_are_named_for_what_they_are() {
    let scenario = Scenario::tracker(2).await;
    let junk = temp_path("junk.bin");
    std::fs::write(&junk, b"not a dump at all\n").unwrap();
    let run = salvage(&["inspect", junk.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("is not a pg_dump archive"), "{run}");
    let mut args = scenario.args("plan", "1");
    let position = args.iter().position(|arg| arg == "--snapshot").unwrap() + 1;
    args[position] = junk.display().to_string();
    let run = salvage(&args);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("holds no table"), "{run}");

    let schema_only = temp_path("schema-only.dump");
    pg_dump(
        15,
        &scenario.snapshot,
        &["-Fc", "--schema-only"],
        &schema_only,
        false,
    );
    args[position] = schema_only.display().to_string();
    let run = salvage(&args);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("is a schema-only dump"), "{run}");

    let dump = temp_path("whole.dump");
    pg_dump(15, &scenario.snapshot, &["-Fc"], &dump, false);
    let run = salvage(&[
        "inspect",
        dump.to_str().unwrap(),
        "--format",
        "json",
        "--no-count",
    ]);
    assert_eq!(run.code, 0, "{run}");
    let inspection: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let time = inspection["dump_time"]
        .as_str()
        .expect("an ISO 8601 string");
    assert_eq!(time.len(), 19, "{time}");
    assert_eq!(&time[10..11], "T", "{time}");
    let run = salvage(&["inspect", dump.to_str().unwrap(), "--no-count"]);
    assert!(
        run.stdout.contains("the archive records no time zone"),
        "{run}"
    );
}

#[test]
fn completions_and_the_manual_come_from_the_command_line_itself() {
    let run = salvage(&["completions", "bash"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("--tenants-by"), "{run}");
    let run = salvage(&["man"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains(".TH salvage"), "{run}");
    let dir = temp_path("man");
    let run = salvage(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run}");
    let restore =
        std::fs::read_to_string(dir.join("salvage-restore.1")).expect("a page per command");
    assert!(restore.contains("lock"), "{restore}");
    let help = salvage(&["restore", "--help"]);
    assert!(
        help.stdout.contains("a plain number is milliseconds"),
        "{help}"
    );
}

/// Runs salvage with a terminal (util-linux `script` gives it a pseudo-terminal), typing
/// `answer` after `delay`: what the terminal showed (stdout and stderr together) and the
/// exit code.
fn at_a_terminal(args: &[String], answer: &str, delay: std::time::Duration) -> (i32, String) {
    use std::io::Write as _;

    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let command = std::iter::once(env!("CARGO_BIN_EXE_salvage"))
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("DATABASE_URL")
        .env("COLUMNS", "100")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux script gives salvage a terminal");
    // The operator thinking: time the run must not count.
    std::thread::sleep(delay);
    child
        .stdin
        .as_mut()
        .expect("script's stdin")
        .write_all(answer.as_bytes())
        .expect("type the answer");
    let output = child.wait_with_output().expect("wait for script");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn at_a_terminal_only_yes_confirms_and_the_time_at_the_prompt_is_not_the_run_time() {
    let scenario = Scenario::tracker(3).await;
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id = 2; DELETE FROM sites WHERE id = 2")
        .await;
    let before = all_rows(&scenario.live).await;
    let report = temp_path("prompt-report.json");
    let args = with(
        scenario.args("restore", "2"),
        &["--report", report.to_str().unwrap()],
    );
    let (code, shown) = at_a_terminal(&args, "y\n", std::time::Duration::ZERO);
    assert_eq!(code, 2, "{shown}");
    assert!(
        shown.contains("Restore 1 tenant (") && shown.contains("Type 'yes' to continue"),
        "{shown}"
    );
    assert!(
        shown.contains("restore cancelled; nothing was written"),
        "{shown}"
    );
    assert_eq!(all_rows(&scenario.live).await, before);

    let delay = std::time::Duration::from_secs(3);
    let (code, shown) = at_a_terminal(&args, "yes\n", delay);
    assert_eq!(code, 0, "{shown}");
    let report = support::read_json(&report);
    let timings = &report["timings"];
    let phases = ["plan_seconds", "restore_seconds", "verify_seconds"]
        .iter()
        .map(|phase| timings[phase].as_f64().expect("a phase's time"))
        .sum::<f64>();
    let total = timings["total_seconds"].as_f64().expect("the total");
    // With the wait at the prompt (most of the 3 seconds) the total would exceed the phases
    // by about that much.
    assert!(
        total - phases < 1.0,
        "the time at the prompt was counted: {timings}\n{shown}"
    );
}
