//! The salvage command line: arguments (flags, then salvage.toml), the commands, progress on
//! the terminal, summaries and reports, and exit codes. The binary's `main` calls [`main`].

mod args;
mod commands;
mod config;
mod failure;
mod prepare;
mod progress;
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
    match runtime.block_on(commands::run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
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
