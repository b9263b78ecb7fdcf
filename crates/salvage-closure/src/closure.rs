//! Computing every tenant's closure in one pass over the plan's tables: the snapshot's rows of
//! the chosen tenants read once (the membership rule), their live rows read once by the same
//! rule, the keys neither side accounts for probed in live, which rows would wait for a
//! parent no one restores, and the shared rows, following references upwards until nothing
//! new is missing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use salvage_catalog::{Catalog, QualifiedName};
use salvage_pg::OnFirstUse;
use salvage_plan::{Role, SchemaPlan, TablePlan};
use salvage_source::{Snapshot, TextRow};
use sqlx::postgres::PgConnection;

use crate::model::{RestorePlan, TableCounts, TenantClosure};
use crate::{Error, Result, canonical_ids, changes, owned, shared, waiting};

/// Told what the planning is reading, for a spinner.
pub trait PlanReporter: Send + Sync {
    fn reading(&self, table: &QualifiedName);
}

/// Keys of a shared table to look at, each with the tenants whose rows reference it.
pub(crate) type Pending = BTreeMap<(usize, Vec<String>), BTreeMap<TextRow, BTreeSet<usize>>>;

/// Resolves `given` tenant IDs and computes each tenant's closure, asking live on its
/// connection and, for half of a large key lookup, on a second one (opened when first needed).
pub async fn resolve(
    schema: SchemaPlan,
    snapshot: &Snapshot,
    (live, second): (&mut PgConnection, &mut OnFirstUse),
    live_catalog: &Catalog,
    given: &[String],
    mode: salvage_plan::Mode,
    reporter: &dyn PlanReporter,
) -> Result<RestorePlan> {
    let canonical = canonical_ids(live, &schema, given).await?;
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    let mut given_forms = Vec::new();
    for (given, canonical) in given.iter().zip(canonical) {
        if seen.insert(canonical.clone()) {
            given_forms.push(given.clone());
            ids.push(canonical);
        }
    }

    reporter.reading(&schema.root.table);
    // The snapshot's rows and live's rows of the same tenants need nothing of each other:
    // both are read at once, on their own connections.
    let started = std::time::Instant::now();
    let keep = |table: &TablePlan| live_columns(table, live_catalog, mode);
    let snapshot_read = async {
        let selected = snapshot.select(&schema, &ids).await;
        tracing::info!(
            tenants = ids.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read the chosen tenants' rows"
        );
        selected
    };
    let live_read = async {
        let members = salvage_source::read_members(
            (&mut *live, Some(&mut *second)),
            live_catalog,
            &schema,
            &ids,
            &keep,
            "live",
            salvage_source::Reading::ByParentKeys,
        )
        .await;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read the chosen tenants' live rows"
        );
        members
    };
    let (selected, live_members) = futures_util::future::join(snapshot_read, live_read).await;
    let selected = selected?;
    let labels = root_labels(&schema, &selected, &ids)?;
    let unknown: Vec<String> = ids
        .iter()
        .zip(&given_forms)
        .filter(|(id, _)| !labels.contains_key(*id))
        .map(|(_, given)| given.clone())
        .collect();
    if !unknown.is_empty() {
        return Err(Error::UnknownTenants {
            ids: unknown,
            table: schema.root.table.clone(),
        });
    }
    let live_members = live_members?;
    let root_rows = live_members
        .table(&schema.root.table)
        .ok_or_else(|| Error::Inconsistent("live's root rows were not read".to_owned()))?;
    let mut tenants: Vec<TenantClosure> = ids
        .iter()
        .zip(given_forms)
        .enumerate()
        .map(|(number, (id, given))| TenantClosure {
            id: id.clone(),
            given: (&given != id).then_some(given),
            label: labels.get(id).cloned().flatten(),
            root_in_live: root_rows.total(number) > 0,
            tables: vec![TableCounts::default(); schema.tables.len()],
            filters: vec![crate::model::RowFilter::All; schema.tables.len()],
            shared_rows: BTreeMap::new(),
            held_elsewhere: Vec::new(),
            waiting_examples: Vec::new(),
            changes: Vec::new(),
            left_as_they_are: Vec::new(),
        })
        .collect();

    let by_value = comparison_modes(live, live_catalog, &schema).await?;
    let mut totals = vec![TableCounts::default(); schema.tables.len()];
    let mut pending = Pending::new();
    let sides = owned::Sides {
        schema: &schema,
        selected: &selected,
        live_members: &live_members,
        live_catalog,
        by_value: &by_value,
    };
    let owned = owned::count(
        &sides,
        (live, second),
        &mut tenants,
        &mut totals,
        &mut pending,
        reporter,
    )
    .await?;
    changes::compute(&sides, live, mode, &mut tenants, &mut totals).await?;
    let waiting = waiting::mark(
        &schema,
        &selected,
        live,
        live_catalog,
        &mut tenants,
        &mut totals,
    )
    .await?;
    let shared = shared::close(
        &schema,
        snapshot,
        live,
        live_catalog,
        &mut tenants,
        &mut totals,
        pending,
        reporter,
    )
    .await?;
    Ok(RestorePlan {
        schema,
        mode,
        tenants,
        selected,
        totals,
        shared_key_columns: shared.key_columns,
        dangling: shared.dangling,
        cross_tenant: owned.cross_tenant,
        by_value,
        waiting_keys: waiting.keys,
        keyless_waiting: waiting.keyless,
    })
}

/// The columns of an owned table's live rows the plan needs: its key, or every written
/// column of a table without one (compared as a multiset); in a mode that changes live rows,
/// the key and then every written column (compared, and parents followed).
fn live_columns(
    table: &TablePlan,
    live_catalog: &Catalog,
    mode: salvage_plan::Mode,
) -> Vec<String> {
    let written = || {
        table
            .written_columns()
            .filter(|column| {
                live_catalog
                    .table(&table.name)
                    .is_some_and(|live| live.column(&column.name).is_some())
            })
            .map(|column| column.name.clone())
    };
    match &table.key {
        Some(key) if mode.changes_live_rows() => {
            let mut columns = key.columns.clone();
            columns.extend(written().filter(|name| !key.columns.contains(name)));
            columns
        }
        Some(key) => key.columns.clone(),
        None => table
            .written_columns()
            .filter(|column| {
                live_catalog
                    .table(&table.name)
                    .is_some_and(|live| live.column(&column.name).is_some())
            })
            .map(|column| column.name.clone())
            .collect(),
    }
}

/// Each chosen tenant's label, from its root row in the snapshot; a tenant without one is not
/// in the snapshot.
fn root_labels(
    schema: &SchemaPlan,
    selected: &salvage_source::Selected,
    ids: &[String],
) -> Result<HashMap<String, Option<String>>> {
    let root = selected
        .table(&schema.root.table)
        .ok_or_else(|| Error::Inconsistent("the root rows were not read".to_owned()))?;
    let position = |column: &str| {
        root.columns()
            .iter()
            .position(|name| name == column)
            .ok_or_else(|| {
                Error::Inconsistent(format!(
                    "the root rows were read without their column {column}"
                ))
            })
    };
    let key = position(&schema.root.key_column)?;
    let label = schema
        .root
        .label_column
        .as_deref()
        .map(position)
        .transpose()?;
    let mut labels = HashMap::new();
    for (number, id) in ids.iter().enumerate() {
        for chunk in root.all_rows(number)? {
            for row in salvage_source::rows_of(&chunk) {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                let found = fields
                    .get(key)
                    .and_then(|field| salvage_copy::decode_text(field));
                if found.as_deref() == Some(id.as_str()) {
                    let text = label
                        .and_then(|label| fields.get(label))
                        .and_then(|field| salvage_copy::decode_text(field));
                    labels.insert(id.clone(), text);
                }
            }
        }
    }
    Ok(labels)
}

/// The live types of every written column that compare by value (see
/// `salvage_pg::comparable_by_value`), asked once per type.
pub async fn comparison_modes(
    live: &mut PgConnection,
    catalog: &Catalog,
    schema: &SchemaPlan,
) -> Result<BTreeSet<String>> {
    let mut types = BTreeSet::new();
    for table in schema
        .tables
        .iter()
        .filter(|table| table.in_live && table.in_snapshot)
    {
        let live_table = catalog
            .table(&table.name)
            .ok_or_else(|| Error::Inconsistent(format!("live has no table {}", table.name)))?;
        for column in table.written_columns() {
            let live_column = live_table.column(&column.name).ok_or_else(|| {
                Error::Inconsistent(format!(
                    "{} writes {}, which live's table lacks",
                    table.name, column.name
                ))
            })?;
            types.insert(live_column.type_name.clone());
        }
    }
    let mut by_value = BTreeSet::new();
    for type_name in types {
        if salvage_pg::comparable_by_value(live, &type_name).await? {
            by_value.insert(type_name);
        }
    }
    Ok(by_value)
}

/// Whether `role` is one of the tenant-owned roles.
pub(crate) fn is_owned(table: &TablePlan) -> bool {
    table.role != Role::Shared
}
