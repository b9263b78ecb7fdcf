//! The salvage command line: arguments (flags, then salvage.toml), the commands, progress on
//! the terminal, summaries and reports, and exit codes. The binary's `main` calls [`main`].

mod args;
mod commands;
mod config;
mod failure;
mod prepare;
mod progress;
mod recovery;
mod render;
mod report;
mod settings;
mod table;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command, and turns its result into an exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
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
            eprintln!("error: cannot start the async runtime: {error}");
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
            eprintln!("error: {:#}", failure.error);
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

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::ERROR,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .init();
}
