//! The second stage of arguments: flags merged with salvage.toml (flags win) and checked,
//! before anything connects.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use salvage_catalog::QualifiedName;
use salvage_merge::MergeOptions;
use salvage_pg::{DatabaseUrl, SecretText};
use salvage_plan::PlanOptions;
use salvage_source::SnapshotOptions;

use crate::args::Common;
use crate::config::Config;
use crate::failure::{Failure, OrBadInput};
use crate::sources::{self, SnapshotSource};
use crate::tenants::{self, GivenTenant};

const DEFAULT_JOBS: usize = 4;

#[derive(Debug)]
pub struct Settings {
    pub snapshot: SnapshotSource,
    pub snapshot_options: SnapshotOptions,
    /// When the snapshot is a base backup: how to replay it.
    pub recovery: Option<salvage_recovery::RecoveryOptions>,
    /// The flags it came from, for a plan file.
    pub recovery_args: Option<crate::args::RecoveryArgs>,
    pub target: DatabaseUrl,
    pub plan: PlanOptions,
    /// The tenants as given: IDs, or values of `tenants_by`. Empty only for a command that
    /// covers every tenant when none are given (`diff`).
    pub tenants: Vec<GivenTenant>,
    /// A unique column of the root table the given values are values of (`--tenants-by`).
    pub tenants_by: Option<String>,
    pub jobs: usize,
    pub merge: MergeOptions,
    /// `restore --plan`: the sides as the plan was made against, checked as soon as each is
    /// reached.
    pub reviewed: Option<crate::planfile::Inputs>,
    /// The journal's schema: its tables are salvage's, never planned.
    pub journal_schema: String,
}

/// Per-command flags that salvage.toml can also set.
#[derive(Debug, Default)]
pub struct Extra<'a> {
    pub jobs: Option<usize>,
    pub lock_timeout: Option<&'a str>,
    pub statement_timeout: Option<&'a str>,
    pub group_size: Option<usize>,
    /// No tenant list means every tenant (`diff`), not a mistake.
    pub every_tenant_by_default: bool,
    /// `--mode`.
    pub mode: Option<salvage_plan::Mode>,
}

impl Settings {
    pub fn resolve(common: &Common, extra: &Extra<'_>) -> Result<Self, Failure> {
        let config = match &common.config {
            Some(path) => Config::load(path).bad_input()?,
            None => Config::default(),
        };
        let snapshot = common
            .snapshot
            .clone()
            .or(config.snapshot.clone())
            .ok_or_else(|| {
                Failure::bad_input(anyhow!(
                    "no snapshot given: use --snapshot SRC (or `snapshot` in salvage.toml)"
                ))
            })?;
        let snapshot = SnapshotSource::check(snapshot)?;
        let target = sources::target(common.target.clone().or(config.target.clone()))?;
        let recovery =
            crate::recovery::options(&common.recovery, snapshot.expose(), Some(&target), None)?;
        let root_text = common.root.clone().or(config.root.clone()).ok_or_else(|| {
            Failure::bad_input(anyhow!(
                "no root table: use --root TABLE (e.g. public.sites)"
            ))
        })?;
        let root = QualifiedName::parse(&root_text).bad_input()?;

        let tenants = match (&common.tenants, &common.tenants_file) {
            (Some(list), _) => tenants::parse_list([list.as_str()]),
            (None, Some(file)) => tenants::read_file(file).bad_input()?,
            (None, None) => match (&config.tenants, &config.tenants_file) {
                (Some(list), _) => tenants::parse_list(list.iter().map(String::as_str)),
                (None, Some(file)) => tenants::read_file(file).bad_input()?,
                (None, None) if extra.every_tenant_by_default => Vec::new(),
                (None, None) => {
                    return Err(Failure::bad_input(anyhow!(
                        "no tenants given: use --tenants 3,7,11 or --tenants-file FILE"
                    )));
                }
            },
        };
        let some_given = common.tenants.is_some()
            || common.tenants_file.is_some()
            || config.tenants.is_some()
            || config.tenants_file.is_some();
        if tenants.is_empty() && some_given {
            return Err(Failure::bad_input(anyhow!("the tenant list is empty")));
        }
        let tenants_by = common.tenants_by.clone().or(config.tenants_by.clone());

        let mut plan = PlanOptions::new(root);
        plan.tenant_columns = if common.tenant_columns.is_empty() {
            config.tenant_columns.clone()
        } else {
            common.tenant_columns.clone()
        };
        plan.relations = config.relations().bad_input()?;
        plan.exclude = parse_tables(&config.exclude).bad_input()?;
        plan.shared = parse_tables(&config.shared).bad_input()?;
        plan.mode = extra.mode.or(config.mode).unwrap_or_default();

        let (jobs, merge, snapshot_options) = execution(&config, common, extra)?;
        Ok(Self {
            snapshot,
            snapshot_options,
            recovery_args: recovery.as_ref().map(|_| common.recovery.clone()),
            recovery,
            target,
            plan,
            tenants,
            tenants_by,
            jobs,
            merge,
            reviewed: None,
            journal_schema: salvage_journal::DEFAULT_SCHEMA.to_owned(),
        })
    }

    /// The settings of `restore --plan FILE`: what to restore from the plan; where from the
    /// flags (or salvage.toml) when given — the same databases, checked later — else
    /// `$DATABASE_URL` for the target, else the plan's locations (no password in them: it
    /// comes from the environment or `~/.pgpass`); how fast and how long to wait from the
    /// flags.
    pub fn from_plan(
        file: &crate::planfile::PlanFile,
        common: &Common,
        extra: &Extra<'_>,
    ) -> Result<Self, Failure> {
        let config = match &common.config {
            Some(path) => Config::load(path).bad_input()?,
            None => Config::default(),
        };
        let selection: Vec<&str> = [
            ("root", config.root.is_some()),
            ("tenants", config.tenants.is_some()),
            ("tenants_file", config.tenants_file.is_some()),
            ("tenants_by", config.tenants_by.is_some()),
            ("tenant_columns", !config.tenant_columns.is_empty()),
            ("relations", !config.relations.is_empty()),
            ("exclude", !config.exclude.is_empty()),
            ("shared", !config.shared.is_empty()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if !selection.is_empty() {
            return Err(Failure::bad_input(anyhow!(
                "--plan: the plan file says what to restore, and salvage.toml sets {} too; use a configuration without the selection (snapshot, target, jobs and timeouts may stay)",
                selection.join(", ")
            )));
        }
        let inputs = &file.inputs;
        if let Some(mode) = extra.mode.or(config.mode) {
            if mode != inputs.options.mode {
                return Err(Failure::bad_input(anyhow!(
                    "--plan: the plan was reviewed for mode {}, and mode {} is asked for; make a plan with --mode {}",
                    inputs.options.mode.name(),
                    mode.name(),
                    mode.name()
                )));
            }
        }
        let snapshot = common
            .snapshot
            .clone()
            .or(config.snapshot.clone())
            .unwrap_or_else(|| SecretText::new(&inputs.snapshot.location));
        let snapshot = SnapshotSource::check(snapshot)?;
        let target = if let Some(given) = common.target.clone().or(config.target.clone()) {
            sources::target(Some(given))?
        } else {
            // The plan's database; `$DATABASE_URL` when it names that one (it may carry the
            // password).
            let planned = sources::target(Some(SecretText::new(&inputs.target.location)))?;
            std::env::var("DATABASE_URL")
                .ok()
                .and_then(|url| DatabaseUrl::parse(&url))
                .filter(|url| url.same_database(&planned))
                .unwrap_or(planned)
        };
        let recovery = match &inputs.recovery {
            Some(args) => crate::recovery::options(args, snapshot.expose(), Some(&target), None)?,
            None => None,
        };
        if inputs.recovery.is_some() && recovery.is_none() {
            return Err(Failure::bad_input(anyhow!(
                "--plan: the plan was made against a base backup, and {} is not one",
                snapshot.expose_redacted()
            )));
        }
        let tenants = inputs
            .tenants
            .iter()
            .map(|tenant| GivenTenant {
                value: tenant.id.clone(),
                origin: tenants::Origin::List,
            })
            .collect();
        let (jobs, merge, snapshot_options) = execution(&config, common, extra)?;
        Ok(Self {
            snapshot,
            snapshot_options,
            recovery_args: inputs.recovery.clone(),
            recovery,
            target,
            plan: inputs.options.clone(),
            tenants,
            tenants_by: None,
            jobs,
            merge,
            reviewed: Some(inputs.clone()),
            journal_schema: salvage_journal::DEFAULT_SCHEMA.to_owned(),
        })
    }

    /// The given values, in order.
    pub fn tenant_values(&self) -> Vec<String> {
        self.tenants
            .iter()
            .map(|tenant| tenant.value.clone())
            .collect()
    }
}

/// How the run goes: jobs, waits, memory.
fn execution(
    config: &Config,
    common: &Common,
    extra: &Extra<'_>,
) -> Result<(usize, MergeOptions, SnapshotOptions), Failure> {
    let jobs = extra.jobs.or(config.jobs).unwrap_or(DEFAULT_JOBS);
    if jobs == 0 {
        return Err(Failure::bad_input(anyhow!("--jobs must be at least 1")));
    }
    let mut merge = MergeOptions {
        jobs,
        ..MergeOptions::default()
    };
    if let Some(size) = extra.group_size {
        if size == 0 {
            return Err(Failure::bad_input(anyhow!(
                "--group-size must be at least 1"
            )));
        }
        merge.group_tenants = size;
    }
    if let Some(text) = extra.lock_timeout.or(config.lock_timeout.as_deref()) {
        merge.lock_timeout = parse_duration(text).context("--lock-timeout").bad_input()?;
    }
    if let Some(text) = extra
        .statement_timeout
        .or(config.statement_timeout.as_deref())
    {
        merge.statement_timeout = parse_duration(text)
            .context("--statement-timeout")
            .bad_input()?;
    }
    let mut snapshot_options = SnapshotOptions::default();
    if let Some(text) = common
        .key_memory
        .as_deref()
        .or(config.key_memory.as_deref())
    {
        snapshot_options.key_memory = parse_size(text).context("--key-memory").bad_input()?;
    }
    Ok((jobs, merge, snapshot_options))
}

fn parse_tables(names: &[String]) -> anyhow::Result<Vec<QualifiedName>> {
    names
        .iter()
        .map(|name| QualifiedName::parse(name).map_err(Into::into))
        .collect()
}

/// A time as PostgreSQL reads one for `lock_timeout`: a number with a unit (`us`, `ms`, `s`,
/// `min`, `h`, `d`; `m` for minutes too), or a plain number of milliseconds. Fractions are
/// allowed (`1.5s`); `0` turns the limit off, as in PostgreSQL.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let bad = || {
        anyhow!(
            "`{text}` is not a duration (e.g. 500ms, 5s, 10min, 1h; a plain number is milliseconds)"
        )
    };
    let (number, unit) = split_number(text).ok_or_else(bad)?;
    let milliseconds = match unit {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return Err(bad()),
    };
    let duration =
        Duration::try_from_secs_f64(number * milliseconds / 1_000.0).map_err(|_| bad())?;
    if !duration.is_zero() && duration < Duration::from_millis(1) {
        bail!("`{text}` is less than a millisecond, the smallest timeout PostgreSQL sets");
    }
    Ok(duration)
}

/// A size as PostgreSQL writes one (`512MB`, `1GB`, `64kB`: units of 1024) or with binary
/// units (`512MiB`, `4GiB`, `64K`), or plain bytes.
pub fn parse_size(text: &str) -> anyhow::Result<usize> {
    let bad = || anyhow!("`{text}` is not a size (e.g. 512MB, 4GB, 512MiB)");
    let (number, unit) = split_number(text).ok_or_else(bad)?;
    let shift = match unit {
        "" | "B" => 0,
        "K" | "k" | "kB" | "KB" | "KiB" => 10,
        "M" | "MB" | "MiB" => 20,
        "G" | "GB" | "GiB" => 30,
        "T" | "TB" | "TiB" => 40,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes > usize::MAX as f64 {
        return Err(anyhow!("`{text}` is too large"));
    }
    Ok(bytes.round() as usize)
}

/// `1.5 GB` → (1.5, "GB"): a non-negative decimal number, optional spaces, the unit.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let text = text.trim();
    let split = text
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some((number, unit.trim()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{parse_duration, parse_size};

    #[test]
    fn parses_sizes_as_postgresql_writes_them() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("64kB").unwrap(), 64 << 10);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size(" 4GiB ").unwrap(), 4 << 30);
        assert_eq!(parse_size("1GB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5 GB").unwrap(), 3 << 29);
        assert!(parse_size("4gb").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }

    #[test]
    fn parses_durations_as_postgresql_reads_them() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_millis(5));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10min").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("2000us").unwrap(), Duration::from_millis(2));
        assert!(parse_duration("500us").is_err());
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("-5s").is_err());
    }
}
