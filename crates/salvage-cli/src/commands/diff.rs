//! `salvage diff`: which tenants an incident deleted, damaged or changed, snapshot against
//! live, table by table. Reads only; exits 1 when some tenant is deleted or damaged.

use std::path::Path;

use anyhow::anyhow;
use salvage_catalog::Catalog;
use salvage_pg::DatabaseUrl;
use salvage_plan::SchemaPlan;
use salvage_recovery::{RecoveryInstance, SnapshotFacts};
use salvage_source::Snapshot;
use salvage_verify::diff::{Diff, DiffRequest, Scope, TenantState};

use crate::args::{DiffArgs, Format};
use crate::diff_output;
use crate::failure::{Failure, SOME_FAILED, SUCCESS};
use crate::prepare::{self, Sides};
use crate::progress::{DiffProgress, Display};
use crate::settings::{Extra, Settings};
use crate::tenants::describe;
use crate::{output, preflight};

/// What a diff compares, every input checked.
pub struct PreparedDiff {
    pub snapshot: Snapshot,
    pub target: DatabaseUrl,
    pub live_catalog: Catalog,
    pub schema: SchemaPlan,
    pub scope: Scope,
    pub recovery_facts: Option<SnapshotFacts>,
    /// The recovery instance the snapshot reads; stopped and removed when this goes.
    #[allow(
        dead_code,
        reason = "a guard: held to be dropped when the command ends"
    )]
    pub recovery: Option<RecoveryInstance>,
}

pub async fn run(args: &DiffArgs) -> Result<u8, Failure> {
    let settings = Settings::resolve(
        &args.common,
        &Extra {
            every_tenant_by_default: true,
            ..Extra::default()
        },
    )?;
    if settings.tenants_by.is_some() && settings.tenants.is_empty() {
        return Err(Failure::bad_input(anyhow!(
            "--tenants-by names the tenants given by --tenants or --tenants-file; without them, diff covers every tenant"
        )));
    }
    // JSON goes to stdout untouched by spinners.
    let display = if args.format == Format::Json {
        Display::Lines
    } else {
        Display::detect()
    };
    let recovery = match &settings.recovery {
        Some(options) => Some(crate::recovery::start(options.clone()).await?),
        None => None,
    };
    let progress = DiffProgress::new(display);
    let result = async {
        let prepared = prepare(&settings, recovery, args.write_tenants.as_deref()).await?;
        let diff = salvage_verify::diff::diff(
            DiffRequest {
                schema: &prepared.schema,
                snapshot: &prepared.snapshot,
                target: &prepared.target,
                live_catalog: &prepared.live_catalog,
                scope: &prepared.scope,
            },
            &progress,
        )
        .await
        .map_err(Failure::failed)?;
        Ok::<_, Failure>((prepared, diff))
    }
    .await;
    progress.finish();
    let (prepared, diff) = result?;

    let written = match &args.write_tenants {
        Some(path) => Some(
            diff_output::write_tenants(path, &diff)
                .map_err(|error| Failure::failed(error.context("--write-tenants")))?,
        ),
        None => None,
    };
    match args.format {
        Format::Text => {
            output::print(&diff_output::text(&prepared, &diff));
            if let (Some(path), Some(count)) = (&args.write_tenants, written) {
                output::print(&diff_output::written(path, count));
            }
        }
        Format::Json => {
            let json =
                output::json(&diff_output::json(&prepared, &diff)).map_err(Failure::failed)?;
            println!("{json}");
        }
    }
    let to_restore = diff
        .tenants
        .iter()
        .any(|tenant| tenant.state.needs_restore());
    Ok(if to_restore { SOME_FAILED } else { SUCCESS })
}

/// Opens both sides, checks what can be checked before any row is read (row-level security,
/// SELECT, the `--write-tenants` file), and resolves the tenants: every ID checked against
/// the root key's type and looked up on both sides.
async fn prepare(
    settings: &Settings,
    recovery: Option<RecoveryInstance>,
    write_tenants: Option<&Path>,
) -> Result<PreparedDiff, Failure> {
    let Sides {
        mut live,
        live_catalog,
        snapshot,
        schema,
        ..
    } = prepare::open_sides(settings, recovery.as_ref()).await?;
    let mut problems = prepare::read_problems(&mut live, &snapshot, &schema).await?;
    problems
        .extend(write_tenants.and_then(|path| preflight::output_problem("--write-tenants", path)));
    if !problems.is_empty() {
        return Err(Failure::bad_input(preflight::refusal(&problems)));
    }
    let given: Option<Vec<String>> = if settings.tenants.is_empty() {
        None
    } else {
        Some(match &settings.tenants_by {
            Some(column) => {
                prepare::ids_by_column(&snapshot, &schema, &live_catalog, column, &settings.tenants)
                    .await?
            }
            None => settings.tenant_values(),
        })
    };
    let scope = Scope::resolve(
        &schema,
        &snapshot,
        &mut live,
        &live_catalog,
        given.as_deref(),
    )
    .await
    .map_err(|error| scope_failure(error, settings))?;
    salvage_pg::close(live).await;
    let recovery_facts = recovery.as_ref().map_or_else(
        || crate::recovery::facts_of_url(snapshot.database_url()),
        |instance| Some(instance.facts().clone()),
    );
    Ok(PreparedDiff {
        snapshot,
        target: settings.target.clone(),
        live_catalog,
        schema,
        scope,
        recovery_facts,
        recovery,
    })
}

/// A bad or unknown tenant ID, named with its line of the tenants file.
fn scope_failure(error: salvage_verify::Error, settings: &Settings) -> Failure {
    match error {
        salvage_verify::Error::Plan(error) => prepare::tenant_failure(error, settings),
        salvage_verify::Error::UnknownTenants { ids, table } => {
            let named: Vec<String> = ids
                .iter()
                .map(|id| describe(&settings.tenants, id))
                .collect();
            Failure::bad_input(anyhow!(
                "{} {} in neither the snapshot's nor live's {table}",
                if ids.len() == 1 {
                    "tenant ID"
                } else {
                    "tenant IDs"
                },
                if ids.len() == 1 {
                    format!("{} is", named[0])
                } else {
                    format!("{} are", named.join(", "))
                }
            ))
        }
        other => Failure::bad_input(other),
    }
}

/// The counts of each state, for messages.
pub fn state_counts(diff: &Diff) -> Vec<(TenantState, usize)> {
    TenantState::ALL
        .iter()
        .map(|&state| (state, diff.count(state)))
        .collect()
}
