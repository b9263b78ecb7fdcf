//! The second stage of arguments: flags merged with salvage.toml (flags win) and checked,
//! before anything connects.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use salvage_catalog::QualifiedName;
use salvage_merge::MergeOptions;
use salvage_pg::DatabaseUrl;
use salvage_plan::PlanOptions;
use salvage_source::SnapshotOptions;

use crate::args::Common;
use crate::config::Config;
use crate::failure::{Failure, OrBadInput};

const DEFAULT_JOBS: usize = 4;

#[derive(Debug)]
pub struct Settings {
    pub snapshot: String,
    pub snapshot_options: SnapshotOptions,
    /// When the snapshot is a base backup: how to replay it.
    pub recovery: Option<salvage_recovery::RecoveryOptions>,
    pub target: DatabaseUrl,
    pub plan: PlanOptions,
    pub tenants: Vec<String>,
    pub jobs: usize,
    pub merge: MergeOptions,
}

/// Per-command flags that salvage.toml can also set.
#[derive(Debug, Default)]
pub struct Extra<'a> {
    pub jobs: Option<usize>,
    pub lock_timeout: Option<&'a str>,
    pub statement_timeout: Option<&'a str>,
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
                    "no snapshot given: use --snapshot URL (or `snapshot` in salvage.toml)"
                ))
            })?;
        let target_text = common
            .target
            .clone()
            .or(config.target.clone())
            .or_else(|| {
                std::env::var("DATABASE_URL")
                    .ok()
                    .filter(|url| !url.is_empty())
            })
            .ok_or_else(|| {
                Failure::bad_input(anyhow!(
                    "no target database: use --target URL or set DATABASE_URL"
                ))
            })?;
        let target = DatabaseUrl::parse(&target_text).ok_or_else(|| {
            Failure::bad_input(anyhow!(
                "--target must be a postgres:// or postgresql:// URL"
            ))
        })?;
        let recovery = crate::recovery::options(&common.recovery, &snapshot, Some(&target), None)?;
        let root_text = common.root.clone().or(config.root.clone()).ok_or_else(|| {
            Failure::bad_input(anyhow!(
                "no root table: use --root TABLE (e.g. public.sites)"
            ))
        })?;
        let root = QualifiedName::parse(&root_text).bad_input()?;

        let tenants = match (&common.tenants, &common.tenants_file) {
            (Some(list), _) => parse_list(list),
            (None, Some(file)) => read_tenants_file(file).bad_input()?,
            (None, None) => match (&config.tenants, &config.tenants_file) {
                (Some(list), _) => list
                    .iter()
                    .map(|id| id.trim().to_owned())
                    .filter(|id| !id.is_empty())
                    .collect(),
                (None, Some(file)) => read_tenants_file(file).bad_input()?,
                (None, None) => {
                    return Err(Failure::bad_input(anyhow!(
                        "no tenants given: use --tenants 3,7,11 or --tenants-file FILE"
                    )));
                }
            },
        };
        if tenants.is_empty() {
            return Err(Failure::bad_input(anyhow!("the tenant list is empty")));
        }

        let mut plan = PlanOptions::new(root);
        plan.tenant_columns = if common.tenant_columns.is_empty() {
            config.tenant_columns.clone()
        } else {
            common.tenant_columns.clone()
        };
        plan.relations = config.relations().bad_input()?;
        plan.exclude = parse_tables(&config.exclude).bad_input()?;
        plan.shared = parse_tables(&config.shared).bad_input()?;

        let jobs = extra.jobs.or(config.jobs).unwrap_or(DEFAULT_JOBS);
        if jobs == 0 {
            return Err(Failure::bad_input(anyhow!("--jobs must be at least 1")));
        }
        let mut merge = MergeOptions {
            jobs,
            ..MergeOptions::default()
        };
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
        Ok(Self {
            snapshot,
            snapshot_options,
            recovery,
            target,
            plan,
            tenants,
            jobs,
            merge,
        })
    }
}

/// `3, 7,11` → `["3", "7", "11"]`.
fn parse_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One ID per line; `#` starts a comment; blank lines are skipped.
fn read_tenants_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the tenants file {}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect())
}

fn parse_tables(names: &[String]) -> anyhow::Result<Vec<QualifiedName>> {
    names
        .iter()
        .map(|name| QualifiedName::parse(name).map_err(Into::into))
        .collect()
}

/// `500ms`, `5s`, `10m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|ch: char| !ch.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let Ok(number) = number.parse::<u64>() else {
        bail!("`{text}` is not a duration (e.g. 500ms, 5s, 10m, 1h)");
    };
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" | "min" => Duration::from_secs(number * 60),
        "h" => Duration::from_secs(number * 3600),
        _ => bail!("`{text}` is not a duration (e.g. 500ms, 5s, 10m, 1h)"),
    };
    Ok(duration)
}

/// `512MiB`, `4GiB`, `64K`, or plain bytes; units are binary (K = KiB = 1024).
pub fn parse_size(text: &str) -> anyhow::Result<usize> {
    let text = text.trim();
    let split = text
        .find(|ch: char| !ch.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let Ok(number) = number.parse::<u64>() else {
        bail!("`{text}` is not a size (e.g. 512MiB, 4GiB)");
    };
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        _ => bail!("`{text}` is not a size (e.g. 512MiB, 4GiB)"),
    };
    number
        .checked_mul(1 << shift)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(|| anyhow!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{parse_duration, parse_list, parse_size};

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size(" 4GiB ").unwrap(), 4 << 30);
        assert!(parse_size("4GB").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }

    #[test]
    fn parses_tenant_lists() {
        assert_eq!(parse_list(" 3, 7,,11 "), ["3", "7", "11"]);
    }
}
