//! The salvage command line: arguments (flags, then salvage.toml), the commands, progress on
//! the terminal, summaries and reports, and exit codes. The binary's `main` calls [`main`].

mod args;
mod commands;
mod config;
mod diff_output;
mod failure;
mod output;
mod planfile;
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
mod who;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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
    // On Ctrl-C (or SIGTERM, SIGHUP) a restore that is writing stops taking tenants, lets
    // those in flight finish (or abandons them after a few seconds: each is a transaction),
    // reports and exits 128 + the signal; a second signal, or a signal to any other command,
    // drops the command's future at once: open transactions roll back, and a recovery
    // instance is stopped and its directory removed by its guards.
    let interrupt = Arc::new(Interrupt::default());
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = commands::run(cli.command, &interrupt) => Some(result),
            signal = signals(&interrupt) => {
                eprintln!("\ninterrupted by {signal}: stopping");
                None
            }
        }
    });
    match outcome {
        Some(Ok(code)) => ExitCode::from(code),
        Some(Err(failure)) => {
            output::print_error(&error_text(&failure.error));
            ExitCode::from(failure.code)
        }
        None => ExitCode::from(interrupt.code()),
    }
}

/// An error with its causes, each said once: a database error's message is already part of
/// the error that wraps it, and the driver's own wrapping adds nothing.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        let core = cause
            .strip_prefix("error returned from database: ")
            .unwrap_or(&cause);
        if !text.contains(core) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// A stop asked for by a signal, and whether the running command stops by itself.
#[derive(Debug, Default)]
pub struct Interrupt {
    /// Heeded by the restore's workers.
    pub stop: salvage_merge::Stop,
    /// The last signal's number.
    signal: AtomicU8,
    /// The command stops by itself on `stop` (a restore, once it writes).
    handled: AtomicBool,
}

impl Interrupt {
    /// From now on the command stops by itself when asked.
    pub fn handled(&self) {
        self.handled.store(true, Ordering::SeqCst);
    }

    /// 128 + the signal, as a shell reports it (130 for SIGINT, 143 for SIGTERM).
    pub fn code(&self) -> u8 {
        match self.signal.load(Ordering::SeqCst) {
            0 => failure::INTERRUPTED,
            signal => 128 + signal,
        }
    }
}

/// Resolves when the command must be dropped: at the first signal, unless the command
/// stops by itself (then it is asked to), else at the second.
async fn signals(interrupt: &Interrupt) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt_signal), Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    loop {
        let (name, number) = tokio::select! {
            _ = interrupt_signal.recv() => ("SIGINT", 2),
            _ = terminate.recv() => ("SIGTERM", 15),
            _ = hangup.recv() => ("SIGHUP", 1),
        };
        interrupt.signal.store(number, Ordering::SeqCst);
        if interrupt.handled.load(Ordering::SeqCst) && !interrupt.stop.requested() {
            eprintln!(
                "\n{name}: no more tenants are started; those in flight finish (or roll back after {}s), then the run stops. {name} again stops at once.",
                salvage_merge::STOP_GRACE.as_secs()
            );
            interrupt.stop.request();
            continue;
        }
        return name;
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
