//! What `salvage diff` writes: the text people read (the count per state, then every tenant
//! not intact, worst first, with its tables' counts), the JSON scripts read (documented in
//! README.md, "What diff reports"), and the `--write-tenants` file `restore --tenants-file`
//! reads.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, bail};
use salvage_recovery::SnapshotFacts;
use salvage_verify::diff::{Diff, DiffTable, SkippedTable, TableDiff, TenantDiff, TenantState};
use serde::Serialize;

use crate::commands::diff::{PreparedDiff, state_counts};
use crate::output;
use crate::table::{Align, TextTable};

/// Lines of examples the text shows at most.
const EXAMPLE_LINES: usize = 20;

/// What each state means, for the text's legend.
fn meaning(state: TenantState) -> &'static str {
    match state {
        TenantState::Deleted => "root row in the snapshot, not in live",
        TenantState::Damaged => "root row in both; snapshot rows missing in live",
        TenantState::Changed => "nothing missing; rows differ or live has rows the snapshot lacks",
        TenantState::New => "root row only in live",
        TenantState::Intact => "the same on both sides",
    }
}

/// The text report.
pub fn text(prepared: &PreparedDiff, diff: &Diff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "snapshot  {}", prepared.snapshot.describe());
    if let Some(facts) = &prepared.recovery_facts {
        out.push_str(&crate::recovery::describe(facts));
    }
    let _ = writeln!(out, "target    {}", prepared.target);
    let root = &prepared.schema.root;
    let _ = writeln!(
        out,
        "root      {} ({} {})",
        root.table, root.key_column, root.key_type
    );
    let _ = writeln!(
        out,
        "\n{} compared ({}):",
        output::counted(diff.tenants.len() as u64, "tenant"),
        if prepared.scope.everyone {
            "every tenant of the snapshot and of live"
        } else {
            "the tenants given"
        }
    );
    let mut legend = TextTable::new(&[
        ("STATE", Align::Left),
        ("TENANTS", Align::Right),
        ("", Align::Left),
    ]);
    for (state, count) in state_counts(diff) {
        legend.row(vec![
            state.name().to_owned(),
            output::number(count as u64),
            meaning(state).to_owned(),
        ]);
    }
    out.push_str(&legend.render(2));
    let (snapshot_rows, live_rows) = rows_read(&diff.tables);
    let _ = writeln!(
        out,
        "Rows compared: {} in the snapshot, {} in live, in {}.",
        output::number(snapshot_rows),
        output::number(live_rows),
        output::counted(diff.tables.len() as u64, "table")
    );
    for skipped in &diff.skipped {
        let _ = writeln!(out, "Not compared: {} ({})", skipped.table, skipped.reason);
    }

    let worst = diff.worst_first();
    let not_intact: Vec<&TenantDiff> = worst
        .into_iter()
        .filter(|tenant| tenant.state != TenantState::Intact)
        .collect();
    if not_intact.is_empty() {
        let _ = writeln!(out, "\nEvery tenant is intact.");
        return out;
    }
    let _ = writeln!(out, "\nNot intact, worst first:");
    let mut table = TextTable::new(&[
        ("TENANT", Align::Left),
        ("LABEL", Align::Left),
        ("STATE", Align::Left),
        ("TABLE", Align::Left),
        ("MISSING", Align::Right),
        ("DIFFERENT", Align::Right),
        ("LIVE-ONLY", Align::Right),
    ]);
    let mut examples = Vec::new();
    for tenant in &not_intact {
        let mut first = true;
        for (compared, counts) in diff.tables.iter().zip(&tenant.tables) {
            if !counts.differs() {
                continue;
            }
            let (id, label, state) = if first {
                (
                    tenant.tenant.clone(),
                    tenant.label.clone().unwrap_or_default(),
                    tenant.state.name().to_owned(),
                )
            } else {
                (String::new(), String::new(), String::new())
            };
            first = false;
            table.row(vec![
                id,
                label,
                state,
                compared.table.to_string(),
                output::number(counts.missing),
                output::number(counts.different),
                output::number(counts.live_only),
            ]);
            for (kind, keys) in [
                ("missing", &counts.missing_examples),
                ("different", &counts.different_examples),
                ("live-only", &counts.live_only_examples),
            ] {
                if !keys.is_empty() {
                    examples.push(format!(
                        "  tenant {}: {} {kind} {}",
                        tenant.tenant,
                        compared.table,
                        keys.join("; ")
                    ));
                }
            }
        }
        if first {
            // Deleted or new with no rows of its own anywhere but the root: still listed.
            table.row(vec![
                tenant.tenant.clone(),
                tenant.label.clone().unwrap_or_default(),
                tenant.state.name().to_owned(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    out.push_str(&table.render(2));
    if !examples.is_empty() {
        let _ = writeln!(out, "\nExamples:");
        for example in examples.iter().take(EXAMPLE_LINES) {
            let _ = writeln!(out, "{example}");
        }
        if examples.len() > EXAMPLE_LINES {
            let _ = writeln!(
                out,
                "  … and {} more (--format json lists them all)",
                output::count((examples.len() - EXAMPLE_LINES) as u64, "line", "lines")
            );
        }
    }
    out
}

/// Rows read on each side, each once.
fn rows_read(tables: &[DiffTable]) -> (u64, u64) {
    tables.iter().fold((0, 0), |(snapshot, live), table| {
        (snapshot + table.snapshot_rows, live + table.live_rows)
    })
}

/// The line after the text report saying where the tenants went.
pub fn written(path: &Path, count: usize) -> String {
    format!(
        "\nWrote {} (deleted and damaged) to {}: restore them with `salvage restore … --tenants-file {}`.\n",
        output::count(count as u64, "tenant ID", "tenant IDs"),
        path.display(),
        path.display()
    )
}

#[derive(Debug, Serialize)]
pub struct DiffJson<'a> {
    snapshot: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery: Option<&'a SnapshotFacts>,
    target: String,
    root: String,
    /// `all`: every tenant of the snapshot and of live; `given`: the tenants given.
    scope: &'static str,
    counts: Counts,
    /// Rows read and compared, each once: the tenants' rows of every compared table.
    rows: Rows,
    tables: Vec<TableJson>,
    skipped_tables: Vec<SkippedJson<'a>>,
    /// Every tenant in scope, worst first.
    tenants: Vec<TenantJson<'a>>,
}

#[derive(Debug, Serialize)]
struct Counts {
    deleted: usize,
    damaged: usize,
    changed: usize,
    new: usize,
    intact: usize,
    total: usize,
}

#[derive(Debug, Serialize)]
struct Rows {
    snapshot: u64,
    live: u64,
}

#[derive(Debug, Serialize)]
struct TableJson {
    table: String,
    keyless: bool,
    /// The tenants' rows read on each side, each once.
    snapshot_rows: u64,
    live_rows: u64,
    /// Sums over the tenants (a row of several tenants counts for each).
    missing: u64,
    different: u64,
    live_only: u64,
}

#[derive(Debug, Serialize)]
struct SkippedJson<'a> {
    table: String,
    reason: &'a str,
}

#[derive(Debug, Serialize)]
struct TenantJson<'a> {
    tenant: &'a str,
    label: Option<&'a str>,
    state: TenantState,
    in_snapshot: bool,
    in_live: bool,
    missing: u64,
    different: u64,
    live_only: u64,
    /// The tables where the tenant has rows on either side, by name.
    tables: std::collections::BTreeMap<String, &'a TableDiff>,
}

pub fn json<'a>(prepared: &'a PreparedDiff, diff: &'a Diff) -> DiffJson<'a> {
    let tables = diff
        .tables
        .iter()
        .enumerate()
        .map(|(index, table)| {
            let sum = |count: fn(&TableDiff) -> u64| -> u64 {
                diff.tenants
                    .iter()
                    .map(|tenant| count(&tenant.tables[index]))
                    .sum()
            };
            TableJson {
                table: table.table.to_string(),
                keyless: table.keyless,
                snapshot_rows: table.snapshot_rows,
                live_rows: table.live_rows,
                missing: sum(|counts| counts.missing),
                different: sum(|counts| counts.different),
                live_only: sum(|counts| counts.live_only),
            }
        })
        .collect();
    let tenants = diff
        .worst_first()
        .into_iter()
        .map(|tenant| TenantJson {
            tenant: &tenant.tenant,
            label: tenant.label.as_deref(),
            state: tenant.state,
            in_snapshot: tenant.in_snapshot,
            in_live: tenant.in_live,
            missing: tenant.total(|counts| counts.missing),
            different: tenant.total(|counts| counts.different),
            live_only: tenant.total(|counts| counts.live_only),
            tables: diff
                .tables
                .iter()
                .zip(&tenant.tables)
                .filter(|(_, counts)| counts.has_rows())
                .map(|(table, counts)| (table.table.to_string(), counts))
                .collect(),
        })
        .collect();
    let (snapshot, live) = rows_read(&diff.tables);
    DiffJson {
        snapshot: prepared.snapshot.describe(),
        recovery: prepared.recovery_facts.as_ref(),
        target: prepared.target.redacted().to_owned(),
        root: prepared.schema.root.table.to_string(),
        scope: if prepared.scope.everyone {
            "all"
        } else {
            "given"
        },
        counts: Counts {
            deleted: diff.count(TenantState::Deleted),
            damaged: diff.count(TenantState::Damaged),
            changed: diff.count(TenantState::Changed),
            new: diff.count(TenantState::New),
            intact: diff.count(TenantState::Intact),
            total: diff.tenants.len(),
        },
        rows: Rows { snapshot, live },
        tables,
        skipped_tables: diff
            .skipped
            .iter()
            .map(|skipped: &SkippedTable| SkippedJson {
                table: skipped.table.to_string(),
                reason: &skipped.reason,
            })
            .collect(),
        tenants,
    }
}

/// Writes the IDs of the deleted and damaged tenants to `path`, worst first, one per line
/// after a `#` header naming the command (redacted) and the time; returns how many. An ID a
/// tenants file cannot hold (a `#`, a line break, spaces around it) is refused rather than
/// written wrong.
pub fn write_tenants(path: &Path, diff: &Diff) -> anyhow::Result<usize> {
    let chosen: Vec<&TenantDiff> = diff
        .worst_first()
        .into_iter()
        .filter(|tenant| tenant.state.needs_restore())
        .collect();
    for tenant in &chosen {
        let id = &tenant.tenant;
        if id.contains(['#', '\n', '\r']) || id.trim() != id || id.starts_with('\u{feff}') {
            bail!(
                "tenant ID '{}' cannot be written to a tenants file (it holds a #, a line break or surrounding spaces)",
                id.escape_debug()
            );
        }
    }
    let mut text = format!("# {}\n", command_line(std::env::args_os()));
    let _ = writeln!(
        text,
        "# {}: the tenants deleted ({}) or damaged ({}) of {} compared",
        crate::report::rfc3339(SystemTime::now()),
        diff.count(TenantState::Deleted),
        diff.count(TenantState::Damaged),
        output::number(diff.tenants.len() as u64)
    );
    for tenant in &chosen {
        text.push_str(&tenant.tenant);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(chosen.len())
}

/// The command line as a shell would take it back, every argument redacted (a URL's
/// password, a `password=` setting) and on one line whatever it holds.
fn command_line(args: impl IntoIterator<Item = std::ffi::OsString>) -> String {
    args.into_iter()
        .enumerate()
        .map(|(number, arg)| {
            let text = arg.to_string_lossy().into_owned();
            if number == 0 {
                // The program as it is called, not the path it was run from.
                return Path::new(&text)
                    .file_name()
                    .map_or(text.clone(), |name| name.to_string_lossy().into_owned());
            }
            shell_word(&salvage_pg::redact(&text))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word`, quoted for a POSIX shell when it needs to be: `'…'`, or `$'…'` with escapes when
/// it holds control characters (so a header stays one line).
fn shell_word(word: &str) -> String {
    let plain = |ch: char| ch.is_ascii_alphanumeric() || "_@%+=:,./-".contains(ch);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    if word.chars().any(char::is_control) {
        let mut out = String::from("$'");
        for ch in word.chars() {
            match ch {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                ch if ch.is_control() => {
                    let _ = write!(out, "\\u{:04x}", u32::from(ch));
                }
                ch => out.push(ch),
            }
        }
        out.push('\'');
        return out;
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::{command_line, shell_word};

    #[test]
    fn the_header_names_the_command_without_its_passwords() {
        let line = command_line(
            [
                "/opt/bin/salvage",
                "diff",
                "--snapshot",
                "postgres://app:s3cret@backup/app",
                "--target=host=db password=hunter2 dbname=app",
                "--root",
                "public.sites",
            ]
            .map(OsString::from),
        );
        assert!(
            !line.contains("s3cret") && !line.contains("hunter2"),
            "{line}"
        );
        assert!(line.starts_with("salvage diff --snapshot "), "{line}");
        assert!(line.ends_with(" --root public.sites"), "{line}");
    }

    #[test]
    fn words_are_quoted_and_stay_on_one_line() {
        assert_eq!(shell_word("public.sites"), "public.sites");
        assert_eq!(shell_word("it's here"), "'it'\\''s here'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("a\nb"), "$'a\\nb'");
        assert!(!shell_word("x\r\n7\u{7}").contains(['\n', '\r']));
    }
}
