//! Everything that must succeed before the first write: connect to both databases, read both
//! catalogs, plan the schema, check what the run needs (see `preflight`), resolve every
//! tenant and compute the closures. Any failure here is bad input (exit 2) and nothing has
//! been written. A base backup snapshot's recovery instance is started before
//! (`commands::prepare_shown`) and lives in `Prepared`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use salvage_catalog::Catalog;
use salvage_closure::{PlanReporter, RestorePlan};
use salvage_pg::{ConnectionRole, DatabaseUrl};
use salvage_plan::{SchemaPlan, TablePlan};
use salvage_recovery::{RecoveryInstance, SnapshotFacts};
use salvage_source::{Snapshot, TextRow};
use sqlx::postgres::PgConnection;

use crate::failure::{Failure, OrBadInput};
use crate::planfile::{self, Inputs, Side, TenantInput};
use crate::preflight::{self, Problems};
use crate::settings::Settings;
use crate::tenants::{GivenTenant, describe};

/// What the run will do, which decides what is checked before it.
#[derive(Debug, Clone)]
pub enum Purpose {
    /// Show the plan: what would stop a restore is shown, not refused.
    Plan,
    Verify {
        report: Option<PathBuf>,
    },
    Restore {
        report: Option<PathBuf>,
    },
}

pub struct Prepared {
    pub snapshot: Snapshot,
    pub target: DatabaseUrl,
    pub target_version: String,
    pub live_catalog: Arc<Catalog>,
    pub plan: Arc<RestorePlan>,
    /// What would stop a restore (for `plan`, which shows it; a restore refuses instead).
    pub restore_blockers: Problems,
    /// What a base backup snapshot is (also for a URL of `salvage snapshot start`'s).
    pub recovery_facts: Option<SnapshotFacts>,
    /// The plan's inputs (every tenant of the run, not only those resolved): what a plan
    /// file holds, and whose digest names the run.
    pub inputs: Inputs,
    /// The completeness check's walk, started while the plan read (a restore or a verify):
    /// see [`Prepared::completeness`].
    pub reaching: Option<salvage_verify::Reaching>,
    /// The recovery instance the snapshot reads; stopped and removed when this goes.
    #[allow(
        dead_code,
        reason = "a guard: held to be dropped when the command ends"
    )]
    pub recovery: Option<RecoveryInstance>,
}

/// Both sides opened and checked, the schema planned and the tenants' IDs checked: what is
/// needed to name the run (its inputs) before any tenant's rows are read.
pub struct Identified {
    live: PgConnection,
    live_catalog: Catalog,
    snapshot: Snapshot,
    schema: SchemaPlan,
    /// The values to resolve, as given (after `--tenants-by`), and their canonical IDs.
    given: Vec<String>,
    canonical: Vec<String>,
    writable: Problems,
    recovery: Option<RecoveryInstance>,
    pub inputs: Inputs,
}

impl Identified {
    /// The run's tenants by canonical ID, in order.
    pub fn tenant_ids(&self) -> Vec<String> {
        self.inputs
            .tenants
            .iter()
            .map(|tenant| tenant.id.clone())
            .collect()
    }

    /// The live connection, for the journal.
    pub fn live(&mut self) -> &mut PgConnection {
        &mut self.live
    }

    /// The live connection and live's catalog, to ask live for keys.
    pub fn live_with_catalog(&mut self) -> (&mut PgConnection, &Catalog) {
        (&mut self.live, &self.live_catalog)
    }

    /// More reasons a restore cannot write (the journal's), refused with the rest once the
    /// plan is resolved.
    pub fn block(&mut self, problems: Problems) {
        self.writable.extend(problems);
    }
}

pub async fn prepare(
    settings: &Settings,
    recovery: Option<RecoveryInstance>,
    reporter: &dyn PlanReporter,
    purpose: &Purpose,
) -> Result<Prepared, Failure> {
    let identified = identify(settings, recovery, purpose).await?;
    resolve(identified, settings, None, reporter, purpose).await
}

/// Both databases opened (read-only sessions), both catalogs read (without salvage's journal),
/// the schema planned: where every command that compares or restores starts.
pub struct Sides {
    pub live: PgConnection,
    pub live_catalog: Catalog,
    pub snapshot: Snapshot,
    pub schema: SchemaPlan,
    /// The target's cluster system identifier and database name.
    pub system: String,
    pub database: String,
}

/// Connects to live, opens the snapshot (the recovery instance's database when there is
/// one), checks both against a reviewed plan's (identity, then table shapes), refuses a
/// snapshot without tables or one that is the target itself, and plans the schema.
pub async fn open_sides(
    settings: &Settings,
    recovery: Option<&RecoveryInstance>,
) -> Result<Sides, Failure> {
    // Live and the snapshot are opened side by side: two catalogs read at once, not one
    // after the other. The first to fail ends both.
    let live_side = async {
        let mut live = salvage_pg::connect(&settings.target, ConnectionRole::ReadOnly)
            .await
            .map_err(|error| Failure::bad_input(anyhow!("the target database: {error}")))?;
        let (system, database) = salvage_pg::system_identity(&mut live).await.bad_input()?;
        if let Some(reviewed) = &settings.reviewed {
            let planned = &reviewed.target;
            if planned.system_identifier.as_deref() != Some(system.as_str())
                || planned.database.as_deref() != Some(database.as_str())
            {
                return Err(Failure::bad_input(anyhow!(
                    "the target {} is not the database the plan was made for (the plan: database {} of cluster {}; this: database {database} of cluster {system}); give the plan's target with --target; nothing was written",
                    settings.target,
                    planned.database.as_deref().unwrap_or("?"),
                    planned.system_identifier.as_deref().unwrap_or("?")
                )));
            }
        }
        let mut live_catalog = salvage_pg::introspect(&mut live).await.bad_input()?;
        // salvage's own journal is no part of any tenant's data, on either side.
        live_catalog
            .tables
            .retain(|name, _| name.schema != settings.journal_schema);
        Ok::<_, Failure>((live, system, database, live_catalog))
    };
    let snapshot_side = async {
        match recovery {
            Some(instance) => Snapshot::open_database(instance.url().clone()).await,
            None => {
                Snapshot::open_with(settings.snapshot.expose(), settings.snapshot_options).await
            }
        }
        .map_err(|error| Failure::bad_input(anyhow!("the snapshot: {error}")))
    };
    let ((mut live, system, database, live_catalog), snapshot) =
        tokio::try_join!(live_side, snapshot_side)?;
    if let Some(reviewed) = &settings.reviewed {
        let identity = snapshot.identity();
        let planned = &reviewed.snapshot;
        let found = (
            identity.system_identifier,
            identity.database,
            identity.dumped_at,
            identity.bytes,
        );
        let expected = (
            planned.system_identifier.clone(),
            planned.database.clone(),
            planned.dumped_at.clone(),
            planned.bytes,
        );
        if found != expected {
            let mut now = planned.clone();
            (
                now.system_identifier,
                now.database,
                now.dumped_at,
                now.bytes,
            ) = found;
            return Err(Failure::bad_input(anyhow!(
                "the snapshot {} is not the one the plan was made against; nothing was written:\n  - {}",
                snapshot.describe(),
                planfile::side_changes("the snapshot", planned, &now).join("\n  - ")
            )));
        }
    }
    if let Some(reviewed) = &settings.reviewed {
        // The planned tables' shapes, before planning again: what changed is named as such.
        let shapes_now = |planned: &Side, catalog: &Catalog| -> Side {
            let mut now = planned.clone();
            now.tables = planned
                .tables
                .keys()
                .filter_map(|name| {
                    let parsed = salvage_catalog::QualifiedName::parse(name).ok()?;
                    catalog
                        .table(&parsed)
                        .map(|table| (name.clone(), table.shape()))
                })
                .collect();
            now
        };
        let mut changes = planfile::side_changes(
            "the target",
            &reviewed.target,
            &shapes_now(&reviewed.target, &live_catalog),
        );
        changes.extend(planfile::side_changes(
            "the snapshot",
            &reviewed.snapshot,
            &shapes_now(&reviewed.snapshot, snapshot.catalog()),
        ));
        if !changes.is_empty() {
            return Err(Failure::bad_input(anyhow!(
                "the plan no longer holds; nothing was written:\n  - {}\nmake a new plan with salvage plan --out",
                changes.join("\n  - ")
            )));
        }
    }
    let mut snapshot_catalog = snapshot.catalog().clone();
    snapshot_catalog
        .tables
        .retain(|name, _| name.schema != settings.journal_schema);
    if snapshot.database_url().is_none() && snapshot.catalog().tables.is_empty() {
        return Err(Failure::bad_input(anyhow!(
            "the snapshot {} holds no table: it is not a pg_dump archive salvage can read, or a dump of an empty database",
            snapshot.describe()
        )));
    }
    if let Some(identity) = snapshot.database_identity() {
        if salvage_pg::database_identity(&mut live).await.bad_input()? == identity {
            return Err(Failure::bad_input(anyhow!(
                "the snapshot ({}) and the target ({}) are the same database",
                snapshot.describe(),
                settings.target
            )));
        }
    }
    let schema = SchemaPlan::build(&live_catalog, &snapshot_catalog, &settings.plan).bad_input()?;

    Ok(Sides {
        live,
        live_catalog,
        snapshot,
        schema,
        system,
        database,
    })
}

/// Opens and checks both sides, plans the schema and checks the tenant IDs.
pub async fn identify(
    settings: &Settings,
    recovery: Option<RecoveryInstance>,
    purpose: &Purpose,
) -> Result<Identified, Failure> {
    let Sides {
        mut live,
        live_catalog,
        snapshot,
        schema,
        system,
        database,
    } = open_sides(settings, recovery.as_ref()).await?;

    let mut problems = read_problems(&mut live, &snapshot, &schema).await?;
    let report = match purpose {
        Purpose::Plan => None,
        Purpose::Verify { report } | Purpose::Restore { report } => report.as_ref(),
    };
    problems.extend(report.and_then(|path| preflight::output_problem("--report", path)));
    let writable = preflight::writable_problems(&mut live).await.bad_input()?;
    if matches!(purpose, Purpose::Restore { .. }) {
        problems.extend(writable.iter().cloned());
    }
    if !problems.is_empty() {
        return Err(Failure::bad_input(preflight::refusal(&problems)));
    }

    let values = settings.tenant_values();
    let ids = match &settings.tenants_by {
        Some(column) => {
            ids_by_column(&snapshot, &schema, &live_catalog, column, &settings.tenants).await?
        }
        None => values.clone(),
    };
    let canonical = salvage_closure::canonical_ids(&mut live, &schema, &ids)
        .await
        .map_err(|error| tenant_failure(error, settings))?;
    let mut seen = std::collections::HashSet::new();
    let mut tenants = Vec::new();
    for (position, id) in canonical.iter().enumerate() {
        if seen.insert(id.clone()) {
            let given = match &settings.tenants_by {
                Some(column) => Some(format!("{column} {}", values[position])),
                None => (&ids[position] != id).then(|| ids[position].clone()),
            };
            tenants.push(TenantInput {
                id: id.clone(),
                given,
                label: None,
            });
        }
    }
    let target = Side {
        location: settings.target.without_password(),
        kind: "database".to_owned(),
        system_identifier: Some(system),
        database: Some(database),
        dumped_at: None,
        bytes: None,
        tables: planfile::shapes(&schema, &live_catalog),
    };
    let identity = snapshot.identity();
    let snapshot_side = Side {
        location: match (&recovery, snapshot.database_url()) {
            (Some(_), _) => settings.snapshot.expose().to_owned(),
            (None, Some(url)) => url.without_password(),
            (None, None) => archive_location(settings.snapshot.expose()),
        },
        kind: if recovery.is_some() {
            "base backup".to_owned()
        } else {
            identity.kind.to_owned()
        },
        system_identifier: identity.system_identifier,
        database: identity.database,
        dumped_at: identity.dumped_at,
        bytes: identity.bytes,
        tables: planfile::shapes(&schema, snapshot.catalog()),
    };
    let inputs = Inputs {
        mode: "missing".to_owned(),
        snapshot: snapshot_side,
        target,
        options: settings.plan.clone(),
        tenants,
        recovery: settings.recovery_args.clone(),
    };
    Ok(Identified {
        live,
        live_catalog,
        snapshot,
        schema,
        given: ids,
        canonical,
        writable,
        recovery,
        inputs,
    })
}

/// Computes the closures of the run's tenants — all of them, or those of `only` (canonical
/// IDs: a resumed run's unfinished ones) — and what else would stop a restore.
pub async fn resolve(
    identified: Identified,
    settings: &Settings,
    only: Option<&std::collections::HashSet<String>>,
    reporter: &dyn PlanReporter,
    purpose: &Purpose,
) -> Result<Prepared, Failure> {
    let Identified {
        mut live,
        live_catalog,
        snapshot,
        schema,
        given,
        canonical,
        writable,
        recovery,
        mut inputs,
    } = identified;
    let ids: Vec<String> = given
        .iter()
        .zip(&canonical)
        .filter(|(_, id)| only.is_none_or(|only| only.contains(*id)))
        .map(|(given, _)| given.clone())
        .collect();
    // The completeness check's walk needs only the schema and the tenants: started now, on a
    // connection (or archive handles) of its own, it runs while the plan reads — one
    // statement, or mostly one big table, at a time — rather than while the restore's workers
    // keep every core busy.
    let reaching = (!matches!(purpose, Purpose::Plan)).then(|| {
        let walked: Vec<String> = canonical
            .iter()
            .filter(|id| only.is_none_or(|only| only.contains(*id)))
            .cloned()
            .collect();
        salvage_verify::Reaching::start(schema.clone(), walked, snapshot.clone())
    });
    // A second connection to live, for the plan's large key lookups (opened only for one).
    let mut second = salvage_pg::OnFirstUse::new(settings.target.clone(), ConnectionRole::ReadOnly);
    let plan = salvage_closure::resolve(
        schema,
        &snapshot,
        (&mut live, &mut second),
        &live_catalog,
        &ids,
        settings.plan.mode,
        reporter,
    )
    .await;
    second.close().await;
    let mut plan = plan.map_err(|error| tenant_failure(error, settings))?;
    for tenant in &mut plan.tenants {
        if let Some(input) = inputs
            .tenants
            .iter_mut()
            .find(|input| input.id == tenant.id)
        {
            // Each tenant as the user named it (`--tenants-by`: the column's value).
            if settings.tenants_by.is_some() {
                tenant.given.clone_from(&input.given);
            }
            input.label.clone_from(&tenant.label);
        }
    }

    let mut restore_blockers = writable;
    if !matches!(purpose, Purpose::Verify { .. }) {
        restore_blockers.extend(
            preflight::privilege_problems(&mut live, &plan)
                .await
                .bad_input()?,
        );
    }
    if matches!(purpose, Purpose::Restore { .. }) && !restore_blockers.is_empty() {
        return Err(Failure::bad_input(preflight::refusal(&restore_blockers)));
    }
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
        restore_blockers,
        inputs,
        reaching,
    })
}

impl Prepared {
    /// The completeness check of the plan: from the walk started while it read, or started
    /// now.
    pub fn completeness(&mut self) -> salvage_verify::Completeness {
        let plan = Arc::clone(&self.plan);
        let snapshot = self.snapshot.clone();
        match self.reaching.take() {
            Some(reaching) => reaching.with_plan(plan, snapshot),
            None => salvage_verify::Completeness::start(plan, snapshot),
        }
    }
}

/// An archive's path as a plan file names it: absolute (standard input stays `-`).
fn archive_location(path: &str) -> String {
    if path == "-" {
        return path.to_owned();
    }
    std::path::absolute(path).map_or_else(|_| path.to_owned(), |path| path.display().to_string())
}

/// Row-level security and SELECT on both sides, before any row is read.
pub async fn read_problems(
    live: &mut PgConnection,
    snapshot: &Snapshot,
    schema: &SchemaPlan,
) -> Result<Problems, Failure> {
    let mut problems = preflight::read_problems(live, schema, "live", |table| table.in_live)
        .await
        .bad_input()?;
    if let Some(url) = snapshot.database_url() {
        let mut connection = salvage_pg::connect(url, ConnectionRole::ReadOnly)
            .await
            .map_err(|error| Failure::bad_input(anyhow!("the snapshot: {error}")))?;
        problems.extend(
            preflight::read_problems(&mut connection, schema, "the snapshot", |table| {
                table.in_snapshot
            })
            .await
            .bad_input()?,
        );
        salvage_pg::close(connection).await;
    }
    Ok(problems)
}

/// The tenant IDs of the root rows whose `column` holds the given values, in the snapshot
/// (`--tenants-by slug`). The column must be unique in live or the snapshot.
pub async fn ids_by_column(
    snapshot: &Snapshot,
    schema: &SchemaPlan,
    live_catalog: &Catalog,
    column: &str,
    given: &[GivenTenant],
) -> Result<Vec<String>, Failure> {
    let root_name = &schema.root.table;
    let root: &TablePlan = schema
        .table_index(root_name)
        .map(|index| &schema.tables[index])
        .ok_or_else(|| Failure::bad_input(anyhow!("the root table {root_name} is not planned")))?;
    if root.column_index(column).is_none() {
        return Err(Failure::bad_input(anyhow!(
            "--tenants-by {column}: the root table {root_name} has no column {column}"
        )));
    }
    let unique = [
        live_catalog.table(root_name),
        snapshot.catalog().table(root_name),
    ]
    .into_iter()
    .flatten()
    .any(|table| {
        table
            .primary_key
            .iter()
            .chain(&table.unique_keys)
            .any(|key| key.columns == [column])
    });
    if !unique {
        return Err(Failure::bad_input(anyhow!(
            "--tenants-by {column}: {root_name}.{column} is not unique (no unique constraint or index on it alone), so its values cannot name tenants"
        )));
    }
    let key_column = schema.root.key_column.clone();
    let keys: Vec<TextRow> = given
        .iter()
        .map(|tenant| vec![Some(tenant.value.clone())])
        .collect();
    let mut found: HashMap<String, String> = HashMap::new();
    let mut reader = snapshot.reader();
    reader
        .project_by_keys(
            root,
            &[column.to_owned()],
            &keys,
            &[column.to_owned(), key_column],
            &mut |row: TextRow| {
                if let [Some(value), Some(id)] = row.as_slice() {
                    found.insert(value.clone(), id.clone());
                }
                Ok(())
            },
        )
        .await
        .map_err(|error| Failure::bad_input(anyhow!("--tenants-by {column}: {error}")))?;
    let unknown: Vec<String> = given
        .iter()
        .filter(|tenant| !found.contains_key(&tenant.value))
        .map(|tenant| describe(given, &tenant.value))
        .collect();
    if !unknown.is_empty() {
        return Err(Failure::bad_input(anyhow!(
            "no root row of the snapshot's {root_name} has {column} {}",
            unknown.join(", ")
        )));
    }
    Ok(given
        .iter()
        .map(|tenant| found[&tenant.value].clone())
        .collect())
}

/// A planning error, with each tenant value named with its line of the tenants file, and a
/// schema-only dump named as such.
pub fn tenant_failure(error: salvage_closure::Error, settings: &Settings) -> Failure {
    let given = &settings.tenants;
    let named = |ids: &[String]| -> String {
        ids.iter()
            .map(|id| describe(given, id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match error {
        salvage_closure::Error::BadIds {
            ids,
            key_type,
            table,
            column,
        } => Failure::bad_input(anyhow!(
            "{} {} for {table}.{column}",
            if ids.len() == 1 {
                "tenant ID"
            } else {
                "tenant IDs"
            },
            if ids.len() == 1 {
                format!("{} is not a valid {key_type}", named(&ids))
            } else {
                format!("{} are not valid {key_type} values", named(&ids))
            }
        )),
        salvage_closure::Error::UnknownTenants { ids, table } => {
            if let Some(reason) = schema_only(settings) {
                return Failure::bad_input(anyhow!("{reason}"));
            }
            Failure::bad_input(anyhow!(
                "{} {} {} not in the snapshot's {table}",
                if ids.len() == 1 {
                    "tenant ID"
                } else {
                    "tenant IDs"
                },
                named(&ids),
                if ids.len() == 1 { "is" } else { "are" }
            ))
        }
        other => Failure::bad_input(other),
    }
}

/// For an archive file or directory without any table data, why no tenant can be found.
fn schema_only(settings: &Settings) -> Option<String> {
    let path = settings.snapshot.expose();
    if path == "-" || salvage_pg::conninfo::is_connection_string(path) {
        return None;
    }
    let archive = salvage_archive::Archive::open(path).ok()?;
    archive.tables().is_empty().then(|| {
        format!(
            "the snapshot {path} is a schema-only dump: it holds no table data, so it has no tenant rows to restore (dump it again without --schema-only)"
        )
    })
}
