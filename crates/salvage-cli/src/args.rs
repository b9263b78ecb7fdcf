//! The command line as typed: flags only, before the configuration file is merged in
//! (`settings` does that). Keep the flags exactly: scripts and users depend on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use salvage_pg::SecretText;

/// Connection strings and snapshot arguments are held redacted from the moment they are read.
#[allow(clippy::unnecessary_wraps)] // clap's value parsers return a Result.
fn secret(text: &str) -> Result<SecretText, std::convert::Infallible> {
    Ok(SecretText::new(text))
}

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
    /// More log output on stderr (-v: info, -vv: debug, with every SQL statement and its
    /// duration); the `RUST_LOG` variable, when set, chooses instead.
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
    /// Compare every tenant (or the ones given) between the snapshot and live: deleted,
    /// damaged, changed, intact or new, with per-table counts. Reads only.
    Diff(DiffArgs),
    /// Show what a pg_dump archive holds: format, versions, compression, tables, FKs.
    Inspect(InspectArgs),
    /// Print a shell completion script (e.g. `salvage completions bash > /etc/bash_completion.d/salvage`).
    Completions(CompletionsArgs),
    /// Print the manual page (roff; e.g. `salvage man | man -l -`), or write one page per
    /// command into a directory.
    Man(ManArgs),
    /// List the runs (restores and undos) the target's journal holds, or one run's tenants.
    Runs(RunsArgs),
    /// Revert a restore run, one transaction per tenant: remove the rows it inserted, put
    /// back the rows it updated or deleted; rows changed since refuse their tenant.
    Undo(UndoArgs),
    /// Keep a recovery instance of a base backup running for a whole incident.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Restore command of a recovery instance: copy WAL file NAME from ARCHIVE to DEST,
    /// decompressing .gz/.zst/.lz4 (salvage sets this up itself for --wal-archive).
    #[command(hide = true)]
    WalFetch(WalFetchArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write salvage.1, salvage-plan.1, salvage-restore.1… into DIR instead of printing
    /// salvage.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The dump: a file, a directory, or - for standard input.
    #[arg(value_name = "SRC", value_parser = secret)]
    pub source: SecretText,
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
    /// The snapshot: a database (postgres://… URL or host=… dbname=… string), a pg_dump
    /// archive (custom, directory, tar or plain file; - for standard input), or a base
    /// backup (a `pg_basebackup` directory, plain or tar format, or pgbackrest:STANZA).
    #[arg(long, value_name = "SRC", value_parser = secret)]
    pub snapshot: Option<SecretText>,
    /// The live database: a postgres://… URL, a host=… dbname=… string, or a database name
    /// [default: `$DATABASE_URL`, else the PG* environment as psql reads it].
    #[arg(long, value_name = "URL", value_parser = secret)]
    pub target: Option<SecretText>,
    /// The tenant root table, whose primary-key values are tenant IDs (e.g. public.sites).
    #[arg(long, value_name = "TABLE")]
    pub root: Option<String>,
    /// Tenant IDs, comma-separated: 3,7,11.
    #[arg(long, value_name = "IDS", conflicts_with = "tenants_file")]
    pub tenants: Option<String>,
    /// A file of tenant IDs, one per line; `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    pub tenants_file: Option<PathBuf>,
    /// The tenants are given by this unique column of the root table (e.g. slug), not by
    /// its key; each value is looked up in the snapshot.
    #[arg(long, value_name = "COLUMN")]
    pub tenants_by: Option<String>,
    /// A column that marks a table as owned by the tenant it holds, with or without an FK.
    #[arg(long = "tenant-column", value_name = "NAME")]
    pub tenant_columns: Vec<String>,
    /// salvage.toml with the same settings (flags win).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Memory for the keys an archive's filter keeps (e.g. 512MB, 2GB); beyond it they spill
    /// to temporary files [default: 1GB].
    #[arg(long, value_name = "SIZE")]
    pub key_memory: Option<String>,
    #[command(flatten)]
    pub recovery: RecoveryArgs,
}

/// What a restore does to the chosen tenants' rows live already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Add the rows live lacks; keep every live row as it is (the default).
    Missing,
    /// Also set the tenants' rows that differ from the snapshot back to its values; rows
    /// written after the snapshot stay.
    Overwrite,
    /// Overwrite, and delete the tenants' rows the snapshot does not have: each tenant
    /// exactly as the snapshot had it.
    Exact,
}

impl From<ModeArg> for salvage_plan::Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Missing => Self::Missing,
            ModeArg::Overwrite => Self::Overwrite,
            ModeArg::Exact => Self::Exact,
        }
    }
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
    /// What to do with the tenants' rows live already has: missing (add what live lacks),
    /// overwrite (also set differing rows back), exact (also delete rows the snapshot lacks)
    /// [default: missing, or `mode` in salvage.toml].
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<ModeArg>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write the plan to FILE, for review and for `restore --plan FILE`.
    #[arg(long, value_name = "FILE", conflicts_with = "show")]
    pub out: Option<PathBuf>,
    /// Show the plan a plan file holds (connects to nothing).
    #[arg(long, value_name = "FILE")]
    pub show: Option<PathBuf>,
}

/// Where the journal is kept and whether.
#[derive(Debug, Args, Clone)]
pub struct JournalArgs {
    /// The target's schema salvage keeps its journal in (runs, tenants, attempts, workers).
    #[arg(long, value_name = "NAME", default_value = "salvage")]
    pub journal_schema: String,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// What to do with the tenants' rows live already has: missing (add what live lacks),
    /// overwrite (also set differing rows back), exact (also delete rows the snapshot lacks)
    /// [default: missing, or `mode` in salvage.toml].
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<ModeArg>,
    /// Apply exactly this plan file (written by `salvage plan --out`); the tenants, root
    /// and tenant model come from it, so none of those flags are given.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["root", "tenants", "tenants_file", "tenants_by", "tenant_columns"]
    )]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub journal: JournalArgs,
    /// Keep no journal in the target: no resume (a rerun redoes the work, writing nothing
    /// twice), no shared runs.
    #[arg(long, conflicts_with = "new_run")]
    pub no_journal: bool,
    /// Start a new run even if the journal holds an unfinished one of the same plan.
    #[arg(long)]
    pub new_run: bool,
    /// Tenants committed together at most, each still all or nothing in a savepoint of its
    /// own [default: 64; 1: a transaction per tenant].
    #[arg(long, value_name = "N")]
    pub group_size: Option<usize>,
    /// Tenants restored concurrently [default: 4].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Write a JSON report of the run to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Longest wait for a row lock before a tenant's attempt is retried, as PostgreSQL
    /// reads its lock timeout: 500ms, 5s, 1min; a plain number is milliseconds [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// Longest single statement, as PostgreSQL reads its statement timeout: 30s, 10min; a
    /// plain number is milliseconds [default: 10min].
    #[arg(long, value_name = "DURATION")]
    pub statement_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// The live database whose journal to read [default: `$DATABASE_URL`, else the PG*
    /// environment].
    #[arg(long, value_name = "URL", value_parser = secret)]
    pub target: Option<SecretText>,
    /// One run: its tenants, with state, attempts and rows.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    #[command(flatten)]
    pub journal: JournalArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The live database the run wrote into [default: `$DATABASE_URL`, else the PG*
    /// environment].
    #[arg(long, value_name = "URL", value_parser = secret)]
    pub target: Option<SecretText>,
    /// The run to revert (`salvage runs` lists them).
    #[arg(long, value_name = "ID")]
    pub run: String,
    /// Only these tenants of the run, comma-separated: 3,7,11.
    #[arg(long, value_name = "IDS", conflicts_with = "tenants_file")]
    pub tenants: Option<String>,
    /// A file of tenant IDs of the run, one per line; `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    pub tenants_file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Put rows back even when someone changed them after the run: updated and deleted rows
    /// get their saved versions whatever live holds, inserted rows are removed.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub journal: JournalArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write a JSON report of the undo to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// What to do with the tenants' rows live already has: missing (add what live lacks),
    /// overwrite (also set differing rows back), exact (also delete rows the snapshot lacks)
    /// [default: missing, or `mode` in salvage.toml].
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<ModeArg>,
    /// Tenants checked concurrently [default: 4].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Write a JSON report of the check to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub common: Common,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the IDs of the deleted and damaged tenants to FILE, one per line after a `#`
    /// header, for `restore --tenants-file FILE`.
    #[arg(long, value_name = "FILE")]
    pub write_tenants: Option<PathBuf>,
}

/// How a base backup is replayed into a recovery instance (`--snapshot BACKUP`, or
/// `snapshot start --from BACKUP`).
#[derive(Debug, Args, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryArgs {
    /// A directory of archived WAL files, as `archive_command = 'cp %p DIR/%f'` writes them
    /// (compressed .gz/.zst/.lz4 segments too).
    #[arg(long, value_name = "DIR", conflicts_with = "restore_command")]
    pub wal_archive: Option<PathBuf>,
    /// Any PostgreSQL `restore_command` (%f, %p) that fetches archived WAL.
    #[arg(long, value_name = "CMD")]
    pub restore_command: Option<String>,
    /// Replay up to TIME: stop before the first transaction that committed at or after it
    /// (a timestamptz; without a zone, UTC).
    #[arg(long, value_name = "TIME", group = "recovery_target")]
    pub until: Option<String>,
    /// Replay up to this WAL location, stopping before the record there.
    #[arg(long, value_name = "LSN", group = "recovery_target")]
    pub until_lsn: Option<String>,
    /// Replay up to transaction XID, stopping before its commit (the bad script's own).
    #[arg(long, value_name = "XID", group = "recovery_target")]
    pub until_xid: Option<String>,
    /// The database of the backup to read [default: the target's database name].
    #[arg(long, value_name = "NAME")]
    pub snapshot_dbname: Option<String>,
    /// The role to read the backup as [default: its bootstrap superuser].
    #[arg(long, value_name = "ROLE")]
    pub snapshot_user: Option<String>,
    /// The directory of the server binaries of the backup's major version.
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// pgBackRest's configuration file for a pgbackrest:STANZA snapshot.
    #[arg(long, value_name = "FILE")]
    pub pgbackrest_config: Option<PathBuf>,
}

#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per run; boxing would only obscure the arguments"
)]
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Start a paused, read-only recovery instance of a base backup and print its URL.
    Start(SnapshotStartArgs),
    /// Stop a recovery instance and remove its directory.
    Stop(SnapshotStopArgs),
    /// Show the recovery instances running.
    List,
}

#[derive(Debug, Args)]
pub struct SnapshotStartArgs {
    /// The base backup: a `pg_basebackup` directory (plain or tar format) or pgbackrest:STANZA.
    #[arg(long, value_name = "BACKUP")]
    pub from: String,
    #[command(flatten)]
    pub recovery: RecoveryArgs,
    /// The instance's directory (new or empty) [default: a new one in $TMPDIR].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The live database, whose name is the default --snapshot-dbname [default:
    /// `$DATABASE_URL`, else the database `postgres`].
    #[arg(long, value_name = "URL", value_parser = secret)]
    pub target: Option<SecretText>,
}

#[derive(Debug, Args)]
pub struct SnapshotStopArgs {
    /// The instance's directory [default: the only instance running].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WalFetchArgs {
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,
    #[arg(value_name = "NAME")]
    pub name: String,
    #[arg(value_name = "DEST")]
    pub destination: PathBuf,
}
