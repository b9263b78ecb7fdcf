//! The salvage command line: arguments (flags, then salvage.toml), the commands, progress on
//! the terminal, summaries and reports, and exit codes. The binary's `main` calls [`main`].

mod args;
mod commands;
mod config;
mod diff_output;
mod failure;
mod output;
mod preflight;
mod prepare;
mod progress;
mod recovery;
mod render;
mod report;
mod settings;
mod sources;
mod table;
mod tenants;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command, and turns its result into an exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    // The restore command a recovery instance runs: no runtime, no signal handling.
    if let args::Command::WalFetch(fetch) = &cli.command {
        return ExitCode::from(commands::wal_fetch::run(fetch));
    }
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            output::print_error(&format!("cannot start the async runtime: {error}"));
            return ExitCode::from(failure::SOME_FAILED);
        }
    };
    // On Ctrl-C (or SIGTERM, SIGHUP) the command's future is dropped: open transactions roll
    // back, and a recovery instance is stopped and its directory removed by its guards.
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = commands::run(cli.command) => Some(result),
            signal = interrupted() => {
                eprintln!("\ninterrupted by {signal}: stopping");
                None
            }
        }
    });
    match outcome {
        Some(Ok(code)) => ExitCode::from(code),
        Some(Err(failure)) => {
            output::print_error(&format!("{:#}", failure.error));
            ExitCode::from(failure.code)
        }
        None => ExitCode::from(failure::INTERRUPTED),
    }
}

/// Resolves when the process is told to stop; never when the handlers cannot be installed.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
        _ = hangup.recv() => "SIGHUP",
    }
}

/// Clap's own message (help, version, or a usage error quoting an argument, which may be a
/// URL with its password), redacted.
fn usage_error(error: &clap::Error) -> ExitCode {
    use std::io::Write as _;

    let text = if error.use_stderr() && output::stderr_colours() {
        error.render().ansi().to_string()
    } else {
        error.render().to_string()
    };
    let text = salvage_pg::redact(&text);
    if error.use_stderr() {
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        let _ = std::io::stdout().write_all(text.as_bytes());
    }
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(failure::BAD_INPUT))
}

/// Logs go to stderr, redacted, coloured only on a terminal. `RUST_LOG` (`info`,
/// `salvage_merge=debug,sqlx::query=debug`…) chooses what is logged when set; otherwise
/// `-v` is info and `-vv` debug, with every statement and its duration.
fn init_tracing(verbose: u8) {
    use std::io::Write as _;

    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let from_verbosity = Targets::new().with_default(match verbose {
        0 => LevelFilter::ERROR,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    });
    let mut unreadable = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => text.parse::<Targets>().unwrap_or_else(|error| {
            unreadable = Some(format!(
                "RUST_LOG is not a filter salvage can read ({error}); using -v"
            ));
            from_verbosity.clone()
        }),
        _ => from_verbosity,
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(output::RedactingStderr)
                .with_ansi(output::stderr_colours())
                .with_target(verbose >= 2),
        )
        .with(filter)
        .init();
    if let Some(message) = unreadable {
        let _ = writeln!(
            std::io::stderr(),
            "warning: {}",
            salvage_pg::Redacted(message)
        );
    }
}
