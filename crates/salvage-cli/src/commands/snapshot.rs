//! `salvage snapshot start|stop|list`: a recovery instance kept up for a whole incident.
//! `start` prints the paused instance's socket URL on stdout (everything else on stderr) and
//! leaves it running; `plan`, `restore` and `verify` then take that URL as `--snapshot`;
//! `stop` stops it and removes its directory; `list` shows those salvage knows of (state
//! files in `salvage_recovery::state::state_dir()`).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use salvage_pg::DatabaseUrl;
use salvage_recovery::InstanceState;
use salvage_recovery::state::{self, process_exists};

use crate::args::{SnapshotCommand, SnapshotStartArgs, SnapshotStopArgs};
use crate::failure::{Failure, OrBadInput, SUCCESS};
use crate::table::{Align, TextTable};

pub async fn run(command: &SnapshotCommand) -> Result<u8, Failure> {
    match command {
        SnapshotCommand::Start(args) => start(args).await,
        SnapshotCommand::Stop(args) => stop(args),
        SnapshotCommand::List => list(),
    }
}

async fn start(args: &SnapshotStartArgs) -> Result<u8, Failure> {
    // Only its database name matters here (the default --snapshot-dbname); without any
    // target given, `postgres`.
    let target = match &args.target {
        Some(text) => Some(crate::sources::target(Some(text.clone()))?),
        None => std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .and_then(|url| DatabaseUrl::parse(&url)),
    };
    let options =
        crate::recovery::options(&args.recovery, &args.from, target.as_ref(), args.dir.clone())?
            .ok_or_else(|| {
                Failure::bad_input(anyhow!(
                    "--from {} is not a base backup: give a pg_basebackup directory (plain or tar format) or pgbackrest:STANZA",
                    args.from
                ))
            })?;
    let instance = crate::recovery::start(options).await?;
    let facts = instance.facts().clone();
    let state = instance.keep().bad_input()?;
    eprint!("{}", crate::recovery::describe(&facts));
    eprintln!(
        "instance  {} (read-only; stop it with: salvage snapshot stop --dir {})",
        state.dir.display(),
        state.dir.display()
    );
    println!("{}", state.url);
    Ok(SUCCESS)
}

fn stop(args: &SnapshotStopArgs) -> Result<u8, Failure> {
    let state = match &args.dir {
        Some(dir) => of_dir(dir)?,
        None => only_kept()?,
    };
    if let Some(owner) = state.owner_pid {
        if owner != std::process::id() && process_exists(owner) {
            return Err(Failure::bad_input(anyhow!(
                "{} belongs to a running salvage command (process {owner}), which removes it when it ends",
                state.dir.display()
            )));
        }
    }
    salvage_recovery::stop_instance(&state).map_err(Failure::failed)?;
    eprintln!("stopped and removed {}", state.dir.display());
    Ok(SUCCESS)
}

/// The instance of directory `dir`: its marker, or a state file naming it (the directory
/// may already be gone).
fn of_dir(dir: &Path) -> Result<InstanceState, Failure> {
    let marker = InstanceState::of_dir(dir);
    if let Ok(state) = marker {
        return Ok(state);
    }
    let absolute = std::path::absolute(dir).bad_input()?;
    state::list()
        .bad_input()?
        .into_iter()
        .find(|state| state.dir == absolute)
        .map_or_else(|| marker.bad_input(), Ok)
}

/// The one instance `snapshot start` left running (or whose command is gone).
fn only_kept() -> Result<InstanceState, Failure> {
    let mut kept: Vec<InstanceState> = state::list()
        .bad_input()?
        .into_iter()
        .filter(|state| state.owner_pid.is_none_or(|owner| !process_exists(owner)))
        .collect();
    match kept.len() {
        0 => Err(Failure::bad_input(anyhow!(
            "no recovery instance is running (salvage snapshot list shows them)"
        ))),
        1 => Ok(kept.remove(0)),
        _ => Err(Failure::bad_input(anyhow!(
            "{} recovery instances are running ({}): say which with --dir",
            kept.len(),
            kept.iter()
                .map(|state| state.dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn list() -> Result<u8, Failure> {
    let states = state::list().bad_input()?;
    if states.is_empty() {
        println!(
            "No recovery instances (state directory {}).",
            state::state_dir().display()
        );
        return Ok(SUCCESS);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut table = TextTable::new(&[
        ("DIR", Align::Left),
        ("STATE", Align::Left),
        ("AGE", Align::Right),
        ("BACKUP", Align::Left),
        ("UNTIL", Align::Left),
        ("STOPPED AT", Align::Left),
        ("URL", Align::Left),
    ]);
    for state in &states {
        let running = process_exists(state.pid);
        let condition = match (running, state.owner_pid) {
            (false, _) => "not running".to_owned(),
            (true, None) => "running".to_owned(),
            (true, Some(owner)) if process_exists(owner) => format!("used by salvage ({owner})"),
            (true, Some(_)) => "orphaned (its command is gone)".to_owned(),
        };
        let age = now.saturating_sub(state.started_at);
        table.row(vec![
            state.dir.display().to_string(),
            condition,
            format!("{}m", age / 60),
            state.facts.backup.clone(),
            state.facts.target.clone(),
            state.facts.stopped.lsn.clone(),
            state.url.clone(),
        ]);
    }
    print!("{}", table.render(0));
    Ok(SUCCESS)
}
