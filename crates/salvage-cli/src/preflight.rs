//! The checks before the first write: everything a run would fail on that can be asked up
//! front, gathered into one message. Reads first (row-level security, SELECT), on both
//! databases, before any row is read; then, for a restore, whether the target can be written
//! and whether the role has the privileges on every table and sequence the plan writes;
//! and whether the report can be written.

use std::path::Path;

use salvage_closure::RestorePlan;
use salvage_plan::SchemaPlan;
use sqlx::postgres::PgConnection;

use crate::output;

/// Problems that stop a run, one line each.
pub type Problems = Vec<String>;

/// Where row-level security would hide rows from the role, or SELECT is missing, on the
/// plan's tables that `side` ("live", "the snapshot") has.
pub async fn read_problems(
    connection: &mut PgConnection,
    schema: &SchemaPlan,
    side: &str,
    in_side: impl Fn(&salvage_plan::TablePlan) -> bool,
) -> Result<Problems, salvage_pg::Error> {
    let names: Vec<&salvage_catalog::QualifiedName> = schema
        .tables
        .iter()
        .filter(|table| in_side(table))
        .map(|table| &table.name)
        .collect();
    let access = access_by_name(connection, &names).await?;
    let role = salvage_pg::target_state(connection).await?.role;
    let mut problems = Problems::new();
    let lacking: Vec<&str> = access
        .iter()
        .filter(|table| !table.select)
        .map(|table| table.table.as_str())
        .collect();

    if !lacking.is_empty() {
        problems.push(format!(
            "{side}: role {role} lacks SELECT on {}",
            lacking.join(", ")
        ));
    }
    for table in access.iter().filter(|table| table.row_security) {
        problems.push(format!(
            "{side}: row-level security applies to role {role} on {} ({}): salvage would see \
             and write only the rows the policies allow; connect as the table's owner, a role \
             with BYPASSRLS, or a superuser",
            table.table,
            match table.policies.as_slice() {
                [] => "no policy: every row is hidden".to_owned(),
                [one] => format!("policy {one}"),
                many => format!("policies {}", many.join(", ")),
            }
        ));
    }
    Ok(problems)
}

/// The role's access to `names`, each named as the plan names it.
async fn access_by_name(
    connection: &mut PgConnection,
    names: &[&salvage_catalog::QualifiedName],
) -> Result<Vec<salvage_pg::TableAccess>, salvage_pg::Error> {
    let quoted: Vec<String> = names.iter().map(|name| name.quoted()).collect();
    let mut access = salvage_pg::table_access(connection, &quoted).await?;
    for table in &mut access {
        if let Some(position) = quoted.iter().position(|name| *name == table.table) {
            table.table = names[position].to_string();
        }
    }
    Ok(access)
}

/// Whether the target can be written at all (not a hot standby, not read-only by default).
pub async fn writable_problems(
    connection: &mut PgConnection,
) -> Result<Problems, salvage_pg::Error> {
    let state = salvage_pg::target_state(connection).await?;
    let mut problems = Problems::new();
    if state.in_recovery {
        problems.push(
            "the target is in recovery (a hot standby or a paused replica): it cannot be written; \
             restore into the primary"
                .to_owned(),
        );
    } else if state.read_only {
        problems.push(format!(
            "the target is read-only for role {}: default_transaction_read_only is on",
            state.role
        ));
    }
    Ok(problems)
}

/// The privileges a restore of `plan` needs: INSERT on every table it adds rows to, SELECT
/// and UPDATE on the sequences behind their columns (read, `nextval`, `setval`).
pub async fn privilege_problems(
    connection: &mut PgConnection,
    plan: &RestorePlan,
) -> Result<Problems, salvage_pg::Error> {
    let written: Vec<&salvage_plan::TablePlan> = plan
        .schema
        .tables
        .iter()
        .zip(&plan.totals)
        .filter(|(table, counts)| table.in_live && table.in_snapshot && counts.to_add > 0)
        .map(|(table, _)| table)
        .collect();
    let tables: Vec<&salvage_catalog::QualifiedName> =
        written.iter().map(|table| &table.name).collect();
    let mut sequences: Vec<&salvage_catalog::QualifiedName> = written
        .iter()
        .flat_map(|table| &table.sequences)
        .map(|sequence| &sequence.sequence)
        .collect();
    sequences.sort();
    sequences.dedup();
    let role = salvage_pg::target_state(connection).await?.role;
    let mut problems = Problems::new();
    let lacking: Vec<String> = access_by_name(connection, &tables)
        .await?
        .into_iter()
        .filter(|table| !table.insert)
        .map(|table| table.table)
        .collect();
    if !lacking.is_empty() {
        problems.push(format!(
            "role {role} lacks INSERT on {}, which the restore adds rows to",
            lacking.join(", ")
        ));
    }
    // Modes overwrite and exact: UPDATE and DELETE where the plan changes rows.
    for (table, counts) in plan.schema.tables.iter().zip(&plan.totals) {
        for (privilege, needed) in [("UPDATE", counts.to_update), ("DELETE", counts.to_delete)] {
            if needed == 0 {
                continue;
            }
            let has: bool = sqlx::query_scalar("SELECT pg_catalog.has_table_privilege($1, $2)")
                .bind(table.name.quoted())
                .bind(privilege)
                .fetch_one(&mut *connection)
                .await
                .map_err(salvage_pg::Error::query(
                    "read the role's privileges on the tables",
                ))?;
            if !has {
                problems.push(format!(
                    "role {role} lacks {privilege} on {}, whose rows mode {} changes ({})",
                    table.name,
                    plan.mode.name(),
                    crate::output::counted(needed, "row")
                ));
            }
        }
    }
    let quoted: Vec<String> = sequences.iter().map(|name| name.quoted()).collect();
    let mut lacking: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for access in salvage_pg::sequence_access(connection, &quoted).await? {
        let missing: Vec<&str> = [("SELECT", access.select), ("UPDATE", access.update)]
            .iter()
            .filter(|(_, has)| !has)
            .map(|(privilege, _)| *privilege)
            .collect();
        if let Some(name) = quoted.iter().position(|name| *name == access.sequence) {
            if !missing.is_empty() {
                lacking
                    .entry(missing.join(" and "))
                    .or_default()
                    .push(sequences[name].to_string());
            }
        }
    }
    for (missing, names) in lacking {
        problems.push(format!(
            "role {role} lacks {missing} on {} {}, which the restore moves past the restored values",
            if names.len() == 1 { "sequence" } else { "sequences" },
            names.join(", ")
        ));
    }
    Ok(problems)
}

/// Whether the file `flag` names (`--report FILE`) can be written: tried now (an existing
/// file is opened without being changed; a new one is created and removed again).
pub fn output_problem(flag: &str, path: &Path) -> Option<String> {
    if path.is_dir() {
        return Some(format!("{flag} {}: is a directory", path.display()));
    }
    let existed = path.exists();
    match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        Ok(_) => {
            if !existed {
                let _ = std::fs::remove_file(path);
            }
            None
        }
        Err(error) => Some(format!(
            "{flag} {}: cannot be written: {error}",
            path.display()
        )),
    }
}

/// The one message for every problem found.
pub fn refusal(problems: &[String]) -> anyhow::Error {
    let mut text = format!(
        "{} found before anything was written (nothing was written):",
        output::count(problems.len() as u64, "problem", "problems")
    );
    for problem in problems {
        text.push_str("\n  - ");
        text.push_str(problem);
    }
    anyhow::anyhow!(text)
}
