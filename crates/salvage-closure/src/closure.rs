//! Computing every tenant's closure in one pass over the plan's tables: one snapshot read and
//! one live lookup per owned table for all tenants together, then the shared rows, following
//! references upwards until nothing new is missing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use salvage_catalog::{Catalog, QualifiedName};
use salvage_plan::{Relation, Role, SchemaPlan, TablePlan};
use salvage_source::{OwnedRow, Snapshot, SnapshotReader, Tenants, TextRow};
use sqlx::postgres::PgConnection;

use crate::live::existing_keys;
use crate::model::{CrossTenantRows, RestorePlan, TableCounts, TenantClosure};
use crate::multiset::Multiset;
use crate::{Error, Result, canonical_ids};

/// Told what the planning is reading, for a spinner.
pub trait PlanReporter: Send + Sync {
    fn reading(&self, table: &QualifiedName);
}

/// Keys of a shared table to look at, each with the tenants whose rows reference it.
type Pending = BTreeMap<(usize, Vec<String>), BTreeMap<TextRow, BTreeSet<usize>>>;

/// Resolves `given` tenant IDs and computes each tenant's closure.
pub async fn resolve(
    schema: SchemaPlan,
    snapshot: &Snapshot,
    live: &mut PgConnection,
    live_catalog: &Catalog,
    given: &[String],
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

    let mut reader = snapshot.reader().await?;
    reporter.reading(&schema.root.table);
    let started = std::time::Instant::now();
    reader.select_tenants(&schema, &ids).await?;
    tracing::info!(
        tenants = ids.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read the chosen tenants' rows"
    );
    let labels: HashMap<String, Option<String>> = reader
        .root_rows(&schema, &ids)
        .await?
        .into_iter()
        .filter_map(|mut row| {
            let label = if row.len() > 1 {
                row.pop().flatten()
            } else {
                None
            };
            row.pop().flatten().map(|id| (id, label))
        })
        .collect();
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
    let root_keys: Vec<TextRow> = ids.iter().map(|id| vec![Some(id.clone())]).collect();
    let root_in_live = existing_keys(
        live,
        live_catalog,
        &schema.root.table,
        std::slice::from_ref(&schema.root.key_column),
        &root_keys,
    )
    .await?;

    let mut tenants: Vec<TenantClosure> = ids
        .iter()
        .zip(given_forms)
        .zip(root_in_live)
        .map(|((id, given), root_in_live)| TenantClosure {
            id: id.clone(),
            given: (&given != id).then_some(given),
            label: labels.get(id).cloned().flatten(),
            root_in_live,
            tables: vec![TableCounts::default(); schema.tables.len()],
            shared_rows: BTreeMap::new(),
        })
        .collect();

    let by_value = comparison_modes(live, live_catalog, &schema).await;
    let mut closure = Closure {
        schema: &schema,
        reader: &mut reader,
        live,
        live_catalog,
        tenants: &mut tenants,
        pending: BTreeMap::new(),
        shared_key_columns: BTreeMap::new(),
        dangling: Vec::new(),
        cross_tenant: Vec::new(),
        by_value: &by_value,
        reporter,
    };
    closure.owned_tables(&ids).await?;
    closure.shared_tables().await?;
    let Closure {
        shared_key_columns,
        dangling,
        cross_tenant,
        ..
    } = closure;
    Ok(RestorePlan {
        schema,
        tenants,
        shared_key_columns,
        dangling,
        cross_tenant,
        by_value,
    })
}

/// The live types of every written column that compare by value (see
/// `salvage_pg::comparable_by_value`), asked once per type.
async fn comparison_modes(
    live: &mut PgConnection,
    catalog: &Catalog,
    schema: &SchemaPlan,
) -> BTreeSet<String> {
    let mut types = BTreeSet::new();
    for table in schema
        .tables
        .iter()
        .filter(|table| table.in_live && table.in_snapshot)
    {
        let Some(live_table) = catalog.table(&table.name) else {
            continue;
        };
        for column in table.written_columns() {
            if let Some(live_column) = live_table.column(&column.name) {
                types.insert(live_column.type_name.clone());
            }
        }
    }
    let mut by_value = BTreeSet::new();
    for type_name in types {
        if salvage_pg::comparable_by_value(live, &type_name).await {
            by_value.insert(type_name);
        }
    }
    by_value
}

struct Closure<'a> {
    schema: &'a SchemaPlan,
    reader: &'a mut SnapshotReader,
    live: &'a mut PgConnection,
    live_catalog: &'a Catalog,
    tenants: &'a mut Vec<TenantClosure>,
    pending: Pending,
    shared_key_columns: BTreeMap<usize, Vec<String>>,
    dangling: Vec<String>,
    cross_tenant: Vec<CrossTenantRows>,
    by_value: &'a BTreeSet<String>,
    reporter: &'a dyn PlanReporter,
}

/// The columns to read for a table: `first`, then every shared reference's columns (and the
/// columns of their conditions), each once. Returns them with each reference's positions.
fn projection(first: &[String], references: &[Relation]) -> (Vec<String>, Vec<ReferencePositions>) {
    let mut columns: Vec<String> = first.to_vec();
    let position = |column: &String, columns: &mut Vec<String>| {
        columns.iter().position(|c| c == column).unwrap_or_else(|| {
            columns.push(column.clone());
            columns.len() - 1
        })
    };
    let positions = references
        .iter()
        .map(|relation| ReferencePositions {
            columns: relation
                .child_columns
                .iter()
                .map(|column| position(column, &mut columns))
                .collect(),
            condition: relation.condition.as_ref().map(|condition| {
                (
                    position(&condition.column, &mut columns),
                    condition.value.clone(),
                )
            }),
        })
        .collect();
    (columns, positions)
}

struct ReferencePositions {
    columns: Vec<usize>,
    condition: Option<(usize, String)>,
}

impl ReferencePositions {
    /// The referenced key of `row`, unless a column is NULL or the condition does not hold.
    fn key(&self, row: &[Option<String>]) -> Option<TextRow> {
        if let Some((position, value)) = &self.condition {
            if row[*position].as_deref() != Some(value.as_str()) {
                return None;
            }
        }
        let key: TextRow = self
            .columns
            .iter()
            .map(|&position| row[position].clone())
            .collect();
        key.iter().all(Option::is_some).then_some(key)
    }
}

impl Closure<'_> {
    /// Collects references from `row` into the pending shared keys.
    fn note_references(
        pending: &mut Pending,
        schema: &SchemaPlan,
        table: &TablePlan,
        positions: &[ReferencePositions],
        row: &[Option<String>],
        tenants: &BTreeSet<usize>,
    ) {
        for (relation, positions) in table.shared_references.iter().zip(positions) {
            let (Some(key), Some(parent)) =
                (positions.key(row), schema.table_index(&relation.parent))
            else {
                continue;
            };
            pending
                .entry((parent, relation.parent_columns.clone()))
                .or_default()
                .entry(key)
                .or_default()
                .extend(tenants);
        }
    }

    async fn owned_tables(&mut self, ids: &[String]) -> Result<()> {
        let index_of: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| (id.as_str(), index))
            .collect();
        for (table_index, table) in self.schema.tables.iter().enumerate() {
            if table.role == Role::Shared || !table.in_snapshot {
                continue;
            }
            self.reporter.reading(&table.name);
            match &table.key {
                Some(key) if table.in_live => {
                    self.keyed_table(table_index, &key.columns, &index_of)
                        .await?;
                }
                _ if !table.in_live => self.unplaceable(table_index, &index_of).await?,
                _ => self.keyless_table(table_index, ids, &index_of).await?,
            }
        }
        Ok(())
    }

    /// The tenants (indexes) a row's ownership chains lead to, among the chosen ones.
    fn owners(row: &OwnedRow, index_of: &HashMap<&str, usize>) -> BTreeSet<usize> {
        row.tenants
            .iter()
            .flatten()
            .filter_map(|id| index_of.get(id.as_str()).copied())
            .collect()
    }

    /// A table with a key: rows per tenant, and which keys live already has.
    async fn keyed_table(
        &mut self,
        table_index: usize,
        key_columns: &[String],
        index_of: &HashMap<&str, usize>,
    ) -> Result<()> {
        let schema = self.schema;
        let table = &schema.tables[table_index];
        let (columns, positions) = projection(key_columns, &table.shared_references);
        let mut keys: Vec<TextRow> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        let mut crossing = CrossTenantRows {
            table: table.name.clone(),
            rows: 0,
            examples: Vec::new(),
        };
        let tenants = &mut *self.tenants;
        let pending = &mut self.pending;
        self.reader
            .project_owned(table, &columns, &mut |row| {
                let reached: BTreeSet<&str> =
                    row.tenants.iter().flatten().map(String::as_str).collect();
                let key: TextRow = row.values[..key_columns.len()].to_vec();
                if reached.len() > 1 {
                    crossing.rows += 1;
                    if crossing.examples.len() < 5 {
                        let key_text: Vec<&str> = key
                            .iter()
                            .map(|value| value.as_deref().unwrap_or("NULL"))
                            .collect();
                        let tenant_text: Vec<&str> = reached.iter().copied().collect();
                        crossing.examples.push(format!(
                            "({}) reaches tenants {}",
                            key_text.join(", "),
                            tenant_text.join(", ")
                        ));
                    }
                }
                let row_owners = Self::owners(&row, index_of);
                Self::note_references(pending, schema, table, &positions, &row.values, &row_owners);
                // Kept for every owner; the last takes the key itself (most rows have one).
                let mut key = Some(key);
                for (count, &tenant) in row_owners.iter().enumerate() {
                    tenants[tenant].tables[table_index].snapshot += 1;
                    let kept = if count + 1 == row_owners.len() {
                        key.take()
                    } else {
                        key.clone()
                    };
                    keys.extend(kept);
                    owners.push(tenant);
                }
                Ok(())
            })
            .await?;
        if crossing.rows > 0 {
            self.cross_tenant.push(crossing);
        }
        let started = std::time::Instant::now();
        let present = existing_keys(
            self.live,
            self.live_catalog,
            &table.name,
            key_columns,
            &keys,
        )
        .await?;
        tracing::info!(table = %table.name, keys = keys.len(), elapsed_ms = started.elapsed().as_millis() as u64, "looked keys up in live");
        for (present, owner) in present.into_iter().zip(owners) {
            if present {
                self.tenants[owner].tables[table_index].in_live += 1;
            }
        }
        for tenant in self.tenants.iter_mut() {
            let counts = &mut tenant.tables[table_index];
            counts.to_add = counts.snapshot - counts.in_live;
        }
        Ok(())
    }

    /// A table without a key: its rows per tenant compared with live as multisets.
    async fn keyless_table(
        &mut self,
        table_index: usize,
        ids: &[String],
        index_of: &HashMap<&str, usize>,
    ) -> Result<()> {
        let schema = self.schema;
        let table = &schema.tables[table_index];
        let Some(multiset) = Multiset::new(table, self.live_catalog, self.by_value) else {
            return Ok(());
        };
        let written = multiset.column_names();
        let (columns, positions) = projection(&written, &table.shared_references);
        let mut rows_by_tenant: BTreeMap<usize, Vec<TextRow>> = BTreeMap::new();
        let pending = &mut self.pending;
        self.reader
            .project_owned(table, &columns, &mut |row| {
                let row_owners = Self::owners(&row, index_of);
                for &tenant in &row_owners {
                    rows_by_tenant
                        .entry(tenant)
                        .or_default()
                        .push(row.values[..written.len()].to_vec());
                }
                Self::note_references(pending, schema, table, &positions, &row.values, &row_owners);
                Ok(())
            })
            .await?;
        for (tenant, rows) in rows_by_tenant {
            let mut params = salvage_pg::Params::default();
            let live = salvage_source::sql::owned_select(
                self.live_catalog,
                schema,
                table,
                &written,
                false,
                Tenants::One(&ids[tenant]),
                &mut params,
            )?;
            let sql = multiset.totals(
                &multiset.from_arrays(params.values.len() + 1),
                &format!("({live})"),
            );
            let mut query = sqlx::query_as::<_, (i64, i64, i64)>(&sql);
            for value in &params.values {
                query = query.bind(value);
            }
            for column in 0..written.len() {
                let values: Vec<Option<String>> =
                    rows.iter().map(|row| row[column].clone()).collect();
                query = query.bind(values);
            }
            let (matched, missing, _extra) =
                query
                    .fetch_one(&mut *self.live)
                    .await
                    .map_err(salvage_pg::Error::query(format!(
                        "compare {}'s rows with live",
                        table.name
                    )))?;
            let counts = &mut self.tenants[tenant].tables[table_index];
            counts.snapshot = rows.len() as u64;
            counts.in_live = matched as u64;
            counts.to_add = missing as u64;
        }
        Ok(())
    }

    /// A table live no longer has: any row of the chosen tenants in it cannot be placed.
    async fn unplaceable(
        &mut self,
        table_index: usize,
        index_of: &HashMap<&str, usize>,
    ) -> Result<()> {
        let schema = self.schema;
        let table = &schema.tables[table_index];
        let first: Vec<String> = table
            .columns
            .iter()
            .take(1)
            .map(|column| column.name.clone())
            .collect();
        let tenants = &mut *self.tenants;
        self.reader
            .project_owned(table, &first, &mut |row| {
                for tenant in Self::owners(&row, index_of) {
                    tenants[tenant].tables[table_index].snapshot += 1;
                }
                Ok(())
            })
            .await?;
        let rows: u64 = self
            .tenants
            .iter()
            .map(|tenant| tenant.tables[table_index].snapshot)
            .sum();
        if rows > 0 {
            return Err(Error::Unplaceable {
                table: table.name.clone(),
                rows,
                tenants: self
                    .tenants
                    .iter()
                    .filter(|tenant| tenant.tables[table_index].snapshot > 0)
                    .map(|tenant| tenant.id.clone())
                    .collect(),
            });
        }
        Ok(())
    }

    async fn shared_tables(&mut self) -> Result<()> {
        let mut processed: HashMap<(usize, Vec<String>), HashMap<TextRow, BTreeSet<usize>>> =
            HashMap::new();
        let mut to_add: BTreeMap<(usize, usize), BTreeSet<TextRow>> = BTreeMap::new();
        while let Some((entry, keys)) = self.pending.pop_first() {
            let (table_index, lookup_columns) = entry.clone();
            let schema = self.schema;
            let table = &schema.tables[table_index];
            let done = processed.entry(entry).or_default();
            let work: Vec<(TextRow, BTreeSet<usize>)> = keys
                .into_iter()
                .filter_map(|(key, tenants)| {
                    let seen = done.entry(key.clone()).or_default();
                    let new: BTreeSet<usize> = tenants.difference(seen).copied().collect();
                    seen.extend(&new);
                    (!new.is_empty()).then_some((key, new))
                })
                .collect();
            if work.is_empty() {
                continue;
            }
            self.reporter.reading(&table.name);
            let keys: Vec<TextRow> = work.iter().map(|(key, _)| key.clone()).collect();
            let present = if table.in_live {
                existing_keys(
                    self.live,
                    self.live_catalog,
                    &table.name,
                    &lookup_columns,
                    &keys,
                )
                .await?
            } else {
                vec![false; keys.len()]
            };
            let mut missing: HashMap<TextRow, BTreeSet<usize>> = HashMap::new();
            for ((key, tenants), present) in work.into_iter().zip(present) {
                for &tenant in &tenants {
                    let counts = &mut self.tenants[tenant].tables[table_index];
                    counts.snapshot += 1;
                    counts.in_live += u64::from(present);
                }
                if !present {
                    missing.insert(key, tenants);
                }
            }
            if missing.is_empty() || !table.in_snapshot {
                continue;
            }

            let fetch_key = self
                .shared_key_columns
                .entry(table_index)
                .or_insert_with(|| {
                    table
                        .key
                        .as_ref()
                        .map_or_else(|| lookup_columns.clone(), |key| key.columns.clone())
                })
                .clone();
            let (mut columns, positions) = projection(&fetch_key, &table.shared_references);
            let lookup_positions: Vec<usize> = lookup_columns
                .iter()
                .map(|column| {
                    columns.iter().position(|c| c == column).unwrap_or_else(|| {
                        columns.push(column.clone());
                        columns.len() - 1
                    })
                })
                .collect();
            let missing_keys: Vec<TextRow> = missing.keys().cloned().collect();
            let mut rows = Vec::new();
            self.reader
                .project_by_keys(
                    table,
                    &lookup_columns,
                    &missing_keys,
                    &columns,
                    &mut |row| {
                        rows.push(row);
                        Ok(())
                    },
                )
                .await?;
            let mut found = HashSet::new();
            for row in rows {
                let lookup: TextRow = lookup_positions
                    .iter()
                    .map(|&position| row[position].clone())
                    .collect();
                let Some(tenants) = missing.get(&lookup) else {
                    continue;
                };
                found.insert(lookup);
                let key: TextRow = row[..fetch_key.len()].to_vec();
                for &tenant in tenants {
                    to_add
                        .entry((tenant, table_index))
                        .or_default()
                        .insert(key.clone());
                }
                Self::note_references(&mut self.pending, schema, table, &positions, &row, tenants);
            }
            for key in missing.keys().filter(|key| !found.contains(*key)) {
                let values: Vec<&str> = key
                    .iter()
                    .map(|value| value.as_deref().unwrap_or("NULL"))
                    .collect();
                self.dangling.push(format!(
                    "{}({}) = ({}) is referenced by restored rows but is in neither live nor the snapshot",
                    table.name,
                    lookup_columns.join(", "),
                    values.join(", ")
                ));
            }
        }
        for ((tenant, table_index), keys) in to_add {
            let tenant = &mut self.tenants[tenant];
            tenant.tables[table_index].to_add = keys.len() as u64;
            tenant
                .shared_rows
                .insert(table_index, keys.into_iter().collect());
        }
        Ok(())
    }
}
