//! The command line as typed: flags only, before the configuration file is merged in
//! (`settings` does that). Keep the flags exactly: scripts and users depend on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "salvage",
    version,
    about = "Restore chosen tenants from a snapshot into the live PostgreSQL database, one transaction per tenant.",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output on stderr (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a restore would do: resolved tenants, tables, paths, row counts. Reads only.
    Plan(PlanArgs),
    /// Restore the tenants into the live database, then verify them.
    Restore(RestoreArgs),
    /// Compare the tenants' rows in the snapshot with the live database. Reads only.
    Verify(VerifyArgs),
    /// Show what a pg_dump archive holds: format, versions, compression, tables, FKs.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The dump: a file, a directory, or - for standard input.
    #[arg(value_name = "SRC")]
    pub source: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Give sizes only, without reading every table's rows to count them.
    #[arg(long)]
    pub no_count: bool,
}

/// What every command needs: where to read, where to write, which tenants.
#[derive(Debug, Args, Clone, Default)]
pub struct Common {
    /// The snapshot: a postgres:// or postgresql:// URL.
    #[arg(long, value_name = "SRC")]
    pub snapshot: Option<String>,
    /// URL of the live database [default: `$DATABASE_URL`].
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// The tenant root table, whose primary-key values are tenant IDs (e.g. public.sites).
    #[arg(long, value_name = "TABLE")]
    pub root: Option<String>,
    /// Tenant IDs, comma-separated: 3,7,11.
    #[arg(long, value_name = "IDS", conflicts_with = "tenants_file")]
    pub tenants: Option<String>,
    /// A file of tenant IDs, one per line; `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    pub tenants_file: Option<PathBuf>,
    /// A column that marks a table as owned by the tenant it holds, with or without an FK.
    #[arg(long = "tenant-column", value_name = "NAME")]
    pub tenant_columns: Vec<String>,
    /// salvage.toml with the same settings (flags win).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Memory for the keys an archive's filter keeps (e.g. 512MiB); beyond it they spill to
    /// temporary files [default: 1GiB].
    #[arg(long, value_name = "SIZE")]
    pub key_memory: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: Common,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// Tenants restored concurrently [default: 4].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Write a JSON report of the run to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Longest wait for a row lock before a tenant's attempt is retried [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// Longest single statement [default: 10m].
    #[arg(long, value_name = "DURATION")]
    pub statement_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Tenants checked concurrently [default: 4].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Write a JSON report of the check to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}
