//! Everything that must succeed before the first write: connect to both databases, read both
//! catalogs, plan the schema, resolve every tenant ID and compute the closures. Any failure
//! here is bad input (exit 2) and nothing has been written. A base backup snapshot's
//! recovery instance is started before (`commands::prepare_shown`) and lives in `Prepared`.

use std::sync::Arc;

use anyhow::anyhow;
use salvage_catalog::Catalog;
use salvage_closure::{PlanReporter, RestorePlan};
use salvage_pg::{ConnectionRole, DatabaseUrl};
use salvage_plan::SchemaPlan;
use salvage_recovery::{RecoveryInstance, SnapshotFacts};
use salvage_source::Snapshot;

use crate::failure::{Failure, OrBadInput};
use crate::settings::Settings;

pub struct Prepared {
    pub snapshot: Snapshot,
    pub target: DatabaseUrl,
    pub target_version: String,
    pub live_catalog: Arc<Catalog>,
    pub plan: Arc<RestorePlan>,
    /// What a base backup snapshot is (also for a URL of `salvage snapshot start`'s).
    pub recovery_facts: Option<SnapshotFacts>,
    /// The recovery instance the snapshot reads; stopped and removed when this goes.
    #[allow(
        dead_code,
        reason = "a guard: held to be dropped when the command ends"
    )]
    pub recovery: Option<RecoveryInstance>,
}

pub async fn prepare(
    settings: &Settings,
    recovery: Option<RecoveryInstance>,
    reporter: &dyn PlanReporter,
) -> Result<Prepared, Failure> {
    let mut live = salvage_pg::connect(&settings.target, ConnectionRole::ReadOnly)
        .await
        .map_err(|error| Failure::bad_input(anyhow!("the target database: {error}")))?;
    let live_catalog = salvage_pg::introspect(&mut live).await.bad_input()?;
    let snapshot_text = recovery
        .as_ref()
        .map_or(settings.snapshot.as_str(), |instance| {
            instance.url().secret()
        });
    let snapshot = Snapshot::open_with(snapshot_text, settings.snapshot_options)
        .await
        .map_err(|error| Failure::bad_input(anyhow!("the snapshot: {error}")))?;
    if let Some(identity) = snapshot.database_identity() {
        if salvage_pg::database_identity(&mut live).await.bad_input()? == identity {
            return Err(Failure::bad_input(anyhow!(
                "the snapshot ({}) and the target ({}) are the same database",
                snapshot.describe(),
                settings.target
            )));
        }
    }
    let schema =
        SchemaPlan::build(&live_catalog, snapshot.catalog(), &settings.plan).bad_input()?;
    let plan = salvage_closure::resolve(
        schema,
        &snapshot,
        &mut live,
        &live_catalog,
        &settings.tenants,
        reporter,
    )
    .await
    .bad_input()?;
    let target_version = live_catalog.server_version.clone();
    salvage_pg::close(live).await;
    let recovery_facts = recovery.as_ref().map_or_else(
        || crate::recovery::facts_of_url(snapshot.database_url()),
        |instance| Some(instance.facts().clone()),
    );
    Ok(Prepared {
        recovery_facts,
        recovery,
        snapshot,
        target: settings.target.clone(),
        target_version,
        live_catalog: Arc::new(live_catalog),
        plan: Arc::new(plan),
    })
}
