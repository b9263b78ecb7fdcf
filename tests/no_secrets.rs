//! No password is ever printed: every error path known to carry user input is given a
//! connection string with a password, at every verbosity, and the password appears nowhere —
//! stdout, stderr, reports.

mod support;

use support::{
    Run, Scenario, all_rows, salvage, salvage_reporting, salvage_with_env, temp_path, with,
};

/// What the error paths are given as a password, and must never print.
const SECRET: &str = "hunter2secret";

/// `url` with `password` added as a query parameter (the test server trusts its clients, so
/// the password is sent and ignored).
fn with_password(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}password={SECRET}")
}

/// An error path: what it is, the arguments, the environment.
type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, String)>);

fn assert_no_secret(run: &Run, what: &str) {
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "{what} printed the password:\n{run}"
    );
}

#[tokio::test]
async fn no_error_path_prints_a_password_at_any_verbosity() {
    let scenario = Scenario::tracker(3).await;
    scenario
        .live
        .execute("DELETE FROM page_views WHERE site_id = 2; DELETE FROM sites WHERE id = 2")
        .await;
    let before = all_rows(&scenario.live).await;
    let bad_config = temp_path("secret-salvage.toml");
    std::fs::write(
        &bad_config,
        format!("root = \"public.sites\"\ntarget = \"postgres://u:{SECRET}@h/d\" oops\n"),
    )
    .unwrap();
    let typed_config = temp_path("secret-typed.toml");
    std::fs::write(
        &typed_config,
        format!("root = \"public.sites\"\ntenants = \"postgres://u:{SECRET}@h/d\"\n"),
    )
    .unwrap();
    let unreachable = format!("postgres://salvage:{SECRET}@127.0.0.1:9/nowhere");
    let replace = |flag: &str, value: &str| {
        let mut args = scenario.args("restore", "2");
        let position = args.iter().position(|arg| arg == flag).unwrap() + 1;
        value.clone_into(&mut args[position]);
        with(args, &["--yes"])
    };
    let cases: Vec<Case> = vec![
        (
            "an unrecognised snapshot",
            replace("--snapshot", &format!("postgress://u:{SECRET}@h/d")),
            vec![],
        ),
        (
            "a snapshot URL missing a slash",
            replace("--snapshot", &format!("postgres:/u:{SECRET}@h/d")),
            vec![],
        ),
        (
            "an unreachable snapshot",
            replace("--snapshot", &unreachable),
            vec![],
        ),
        (
            "an unreachable target",
            replace("--target", &unreachable),
            vec![],
        ),
        (
            "an unknown URL parameter",
            replace(
                "--target",
                &format!("postgres://u:{SECRET}@127.0.0.1:9/d?sslmod=require"),
            ),
            vec![],
        ),
        (
            "a key=value string with a refused parameter",
            replace(
                "--target",
                &format!("host=127.0.0.1 password={SECRET} sslpassword={SECRET}"),
            ),
            vec![],
        ),
        (
            "DATABASE_URL unreachable",
            {
                let mut args = scenario.args("restore", "2");
                let position = args.iter().position(|arg| arg == "--target").unwrap();
                args.drain(position..position + 2);
                with(args, &["--yes"])
            },
            vec![("DATABASE_URL", unreachable.clone())],
        ),
        (
            "inspect of a URL",
            vec!["inspect".into(), format!("postgresql://u:{SECRET}@h/d")],
            vec![],
        ),
        (
            "inspect of a mistyped URL",
            vec!["inspect".into(), format!("postgres:/u:{SECRET}@h/d")],
            vec![],
        ),
        (
            "a salvage.toml that does not parse",
            vec![
                "plan".into(),
                "--config".into(),
                bad_config.display().to_string(),
            ],
            vec![],
        ),
        (
            "a salvage.toml value of the wrong type",
            vec![
                "plan".into(),
                "--config".into(),
                typed_config.display().to_string(),
            ],
            vec![],
        ),
        (
            "a URL where no argument is expected",
            vec!["plan".into(), format!("postgres://u:{SECRET}@h/d")],
            vec![],
        ),
    ];
    for (what, args, env) in &cases {
        for verbosity in [None, Some("-v"), Some("-vv")] {
            let args: Vec<String> = args
                .iter()
                .cloned()
                .chain(verbosity.map(Into::into))
                .collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let run = salvage_with_env(&args, &env);
            assert_eq!(run.code, 2, "{what} ({verbosity:?}) is bad input:\n{run}");
            assert!(
                run.stderr.contains("***") || run.stderr.contains("error"),
                "{run}"
            );
            assert_no_secret(&run, what);
        }
    }
    assert_eq!(
        all_rows(&scenario.live).await,
        before,
        "a refused run wrote"
    );

    // A run that works, with passwords in both URLs: stdout, stderr at every verbosity, and
    // the report stay clean.
    let mut args = scenario.args("plan", "2");
    for flag in ["--snapshot", "--target"] {
        let position = args.iter().position(|arg| arg == flag).unwrap() + 1;
        args[position] = with_password(&args[position]);
    }
    for verbosity in ["-v", "-vv"] {
        let run = salvage(&with(args.clone(), &[verbosity]));
        assert_eq!(run.code, 0, "{run}");
        assert!(run.stdout.contains("password=***"), "{run}");
        assert_no_secret(&run, "plan");
    }
    args[0] = "restore".into();
    let (run, report) = salvage_reporting(&with(args.clone(), &["--yes", "-vv"]));
    assert_eq!(run.code, 0, "{run}");
    assert_no_secret(&run, "restore");
    let report_text = report.to_string();
    assert!(!report_text.contains(SECRET), "{report_text}");
    assert!(report_text.contains("password=***"), "{report_text}");
    args[0] = "verify".into();
    let (run, report) = salvage_reporting(&with(args, &["-v"]));
    assert_eq!(run.code, 0, "{run}");
    assert_no_secret(&run, "verify");
    assert!(!report.to_string().contains(SECRET));
}
