//! `salvage runs`: the runs the target's journal holds (restores, and undos of them), newest
//! first, or one run's tenants. Reads only.

use anyhow::anyhow;
use salvage_journal::{Journal, RunSummary, TenantRow};
use salvage_pg::ConnectionRole;
use serde::Serialize;

use crate::args::{Format, RunsArgs};
use crate::failure::{Failure, OrBadInput, SUCCESS};
use crate::output;
use crate::table::{Align, TextTable};

#[derive(Debug, Serialize)]
struct RunJson<'a> {
    #[serde(flatten)]
    run: &'a RunSummary,
    /// `restore` or `undo`.
    kind: &'a str,
    /// An undo: the run it reverts.
    #[serde(skip_serializing_if = "Option::is_none")]
    undoes: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_states: Option<&'a [TenantRow]>,
}

pub async fn run(args: &RunsArgs) -> Result<u8, Failure> {
    let target = crate::sources::target(args.target.clone())?;
    let mut connection = salvage_pg::connect(&target, ConnectionRole::ReadOnly)
        .await
        .map_err(|error| Failure::bad_input(anyhow!("the target database: {error}")))?;
    let journal = Journal::new(&args.journal.journal_schema);
    if !journal.exists(&mut connection).await.bad_input()? {
        salvage_pg::close(connection).await;
        if let Some(id) = &args.run {
            return Err(Failure::bad_input(anyhow!(
                "no run {id}: {target} has no salvage journal in schema {}",
                journal.schema()
            )));
        }
        match args.format {
            Format::Json => println!("[]"),
            Format::Text => println!(
                "No runs: {target} has no salvage journal in schema {} (a restore creates it).",
                journal.schema()
            ),
        }
        return Ok(SUCCESS);
    }
    let (runs, tenants) = match &args.run {
        Some(id) => {
            let run = journal
                .run(&mut connection, id)
                .await
                .bad_input()?
                .ok_or_else(|| {
                    Failure::bad_input(anyhow!(
                        "no run {id} in the journal of {target} (salvage runs lists them)"
                    ))
                })?;
            let tenants = journal.tenants(&mut connection, id).await.bad_input()?;
            (vec![run], Some(tenants))
        }
        None => (journal.runs(&mut connection).await.bad_input()?, None),
    };
    let kinds = journal.run_kinds(&mut connection).await.bad_input()?;
    salvage_pg::close(connection).await;
    match args.format {
        Format::Json => {
            let rows: Vec<RunJson<'_>> = runs
                .iter()
                .map(|run| {
                    let (kind, undoes) = kind_of(&kinds, &run.run);
                    RunJson {
                        run,
                        kind,
                        undoes,
                        tenant_states: tenants.as_deref(),
                    }
                })
                .collect();
            println!("{}", output::json(&rows).map_err(Failure::failed)?);
        }
        Format::Text => output::print(&text(&runs, &kinds, tenants.as_deref())),
    }
    Ok(SUCCESS)
}

/// A run's kind and the run it undoes; a journal of layout 1 holds restores only.
fn kind_of<'a>(
    kinds: &'a [(String, String, Option<String>)],
    run: &str,
) -> (&'a str, Option<&'a str>) {
    kinds
        .iter()
        .find(|(id, _, _)| id == run)
        .map_or(("restore", None), |(_, kind, undoes)| {
            (kind.as_str(), undoes.as_deref())
        })
}

fn text(
    runs: &[RunSummary],
    kinds: &[(String, String, Option<String>)],
    tenants: Option<&[TenantRow]>,
) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str("No runs in the journal.\n");
        return out;
    }
    let mut table = TextTable::new(&[
        ("RUN", Align::Left),
        ("KIND", Align::Left),
        ("STATE", Align::Left),
        ("STARTED", Align::Left),
        ("DONE", Align::Right),
        ("FAILED", Align::Right),
        ("PENDING", Align::Right),
        ("VERIFIED", Align::Right),
        ("BY", Align::Left),
    ]);
    for run in runs {
        let counts = run.tenants;
        let kind = match kind_of(kinds, &run.run) {
            (kind, Some(undoes)) => format!("{kind} of {undoes}"),
            (kind, None) => kind.to_owned(),
        };
        table.row(vec![
            run.run.clone(),
            kind,
            run.state.as_str().to_owned(),
            run.started_at.clone(),
            output::number(counts.done as u64),
            output::number(counts.failed as u64),
            output::number(counts.pending as u64),
            output::number(counts.verified as u64),
            format!(
                "{}{}",
                run.db_role,
                run.host
                    .as_deref()
                    .map(|host| format!(" on {host}"))
                    .unwrap_or_default()
            ),
        ]);
    }
    out.push_str(&table.render(0));
    if let (Some(tenants), [run]) = (tenants, runs) {
        out.push_str(&format!(
            "\nroot {}, snapshot {}, target {}\ncommand: {}\n\n",
            run.root, run.snapshot, run.target, run.command
        ));
        let mut table = TextTable::new(&[
            ("TENANT", Align::Left),
            ("LABEL", Align::Left),
            ("STATE", Align::Left),
            ("ATTEMPTS", Align::Right),
            ("ROWS", Align::Right),
            ("VERIFIED", Align::Left),
            ("FINISHED", Align::Left),
        ]);
        let mut errors = Vec::new();
        for tenant in tenants {
            if let Some(error) = &tenant.error {
                errors.push(format!("  tenant {}: {error}", tenant.tenant));
            }
            let mut state = tenant.state.as_str().to_owned();
            if tenant.rows_waiting > 0 {
                state.push_str(&format!(" ({} rows waiting)", tenant.rows_waiting));
            }
            table.row(vec![
                tenant.tenant.clone(),
                tenant.label.clone().unwrap_or_default(),
                state,
                output::number(tenant.attempts as u64),
                output::number(tenant.rows_inserted as u64),
                tenant.verified.clone().unwrap_or_else(|| "-".to_owned()),
                tenant.finished_at.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&table.render(0));
        if !errors.is_empty() {
            out.push_str("\nErrors:\n");
            for error in errors {
                out.push_str(&error);
                out.push('\n');
            }
        }
    }
    out
}
