//! A base backup as the snapshot: the recovery flags checked into `RecoveryOptions`, the
//! recovery instance started with progress before the snapshot is opened, and the lines the
//! plan shows about it. The instance lives as long as the command's `Prepared` (or, for
//! `salvage snapshot start`, until `salvage snapshot stop`).

mod progress;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use salvage_pg::DatabaseUrl;
use salvage_recovery::{
    Backup, RecoveryInstance, RecoveryOptions, RecoveryTarget, SnapshotFacts, WalSource,
};

use crate::args::RecoveryArgs;
use crate::failure::{Failure, OrBadInput};

pub use progress::RecoveryProgress;

/// Give up when replay shows no progress for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The recovery options for `snapshot` when it names a base backup; `None` for a database URL
/// or a dump, which must then come without recovery flags.
pub fn options(
    args: &RecoveryArgs,
    snapshot: &str,
    target: Option<&DatabaseUrl>,
    dir: Option<PathBuf>,
) -> Result<Option<RecoveryOptions>, Failure> {
    let Some(backup) = Backup::recognise(snapshot) else {
        if let Some(flag) = given_flag(args) {
            return Err(Failure::bad_input(anyhow!(
                "{flag} is for a base backup snapshot (a pg_basebackup directory or pgbackrest:STANZA), and {snapshot} is not one"
            )));
        }
        return Ok(None);
    };
    let target_point = match (&args.until, &args.until_lsn, &args.until_xid) {
        (Some(time), _, _) => RecoveryTarget::time(time),
        (_, Some(lsn), _) => RecoveryTarget::lsn(lsn),
        (_, _, Some(xid)) => RecoveryTarget::xid(xid),
        _ => Ok(RecoveryTarget::Immediate),
    }
    .bad_input()?;
    let wal = match (&args.wal_archive, &args.restore_command) {
        (Some(dir), _) => WalSource::Archive(std::path::absolute(dir).bad_input()?),
        (_, Some(command)) => WalSource::Command(command.clone()),
        _ => WalSource::BackupOnly,
    };
    let database = args
        .snapshot_dbname
        .clone()
        .or_else(|| target.and_then(|url| url.dbname().or(url.user()).map(str::to_owned)))
        .unwrap_or_else(|| "postgres".to_owned());
    let users = if let Some(user) = &args.snapshot_user {
        vec![user.clone()]
    } else {
        let mut users = vec!["postgres".to_owned()];
        users.extend(target.and_then(DatabaseUrl::user).map(str::to_owned));
        users.extend(std::env::var("USER").ok());
        users.dedup();
        users
    };
    let helper = std::env::current_exe()
        .map_err(|error| Failure::bad_input(anyhow!("find the salvage binary: {error}")))?;
    Ok(Some(RecoveryOptions {
        backup,
        wal,
        target: target_point,
        database,
        pg_bin: args.pg_bin.clone(),
        pgbackrest_config: args.pgbackrest_config.clone(),
        dir,
        helper,
        users,
        stall_timeout: STALL_TIMEOUT,
    }))
}

/// The first recovery flag given, by name.
fn given_flag(args: &RecoveryArgs) -> Option<&'static str> {
    [
        (args.wal_archive.is_some(), "--wal-archive"),
        (args.restore_command.is_some(), "--restore-command"),
        (args.until.is_some(), "--until"),
        (args.until_lsn.is_some(), "--until-lsn"),
        (args.until_xid.is_some(), "--until-xid"),
        (args.snapshot_dbname.is_some(), "--snapshot-dbname"),
        (args.snapshot_user.is_some(), "--snapshot-user"),
        (args.pg_bin.is_some(), "--pg-bin"),
        (args.pgbackrest_config.is_some(), "--pgbackrest-config"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

/// Starts the instance, showing progress on stderr. Any failure is bad input: nothing has
/// been written, and the instance is gone.
pub async fn start(options: RecoveryOptions) -> Result<RecoveryInstance, Failure> {
    let progress = Arc::new(RecoveryProgress::new());
    let started = RecoveryInstance::start(
        options,
        Arc::clone(&progress) as Arc<dyn salvage_recovery::RecoveryReporter>,
    )
    .await;
    progress.finish();
    started.map_err(|error| Failure::bad_input(anyhow!("the base backup snapshot: {error}")))
}

/// The plan's lines about a base backup snapshot.
pub fn describe(facts: &SnapshotFacts) -> String {
    let mut out = String::new();
    let label = facts.label.label.as_deref().unwrap_or("(no label)");
    let started = facts
        .label
        .start_time
        .as_deref()
        .map(|time| format!(", started {time}"))
        .unwrap_or_default();
    let wal = facts
        .label
        .start_wal_location
        .as_deref()
        .map(|lsn| format!(" at WAL location {lsn}"))
        .unwrap_or_default();
    out.push_str(&format!(
        "backup    {} ({}): \"{label}\"{started}{wal}\n",
        facts.backup, facts.format
    ));
    out.push_str(&format!("wal       {}\n", facts.wal));
    out.push_str(&format!("until     {}\n", facts.target));
    out.push_str(&format!(
        "replayed  to {}; read as database {} by PostgreSQL {}\n",
        facts.stopped_line(),
        facts.database,
        facts.server_version
    ));
    out
}

/// What a running instance (`salvage snapshot start`) is, when `url` is one's.
pub fn facts_of_url(url: Option<&DatabaseUrl>) -> Option<SnapshotFacts> {
    let url = url?;
    salvage_recovery::state::list()
        .ok()?
        .into_iter()
        .find(|state| state.url == url.redacted())
        .map(|state| state.facts)
}
