//! A snapshot that is a pg_dump archive (custom, directory, tar or plain; a file, a directory
//! or `-` for standard input).
//!
//! The archive is filtered once for the chosen tenants ([`select`]), in parallel on rayon;
//! their rows are kept in temporary files ([`store`]) and every read the pipeline makes — a
//! tenant's rows of a table, projections for the plan — is served from there, so the merge
//! and the verification read what a database snapshot would give them. Shared rows are found
//! by scanning their table for the keys asked, and kept for the restore that follows.

mod select;
mod store;
mod tables;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_plan::{SchemaPlan, TablePlan};

use crate::{Error, OwnedRow, Result, RowStream, TextRow};
use select::Selection;
use tables::TableSource;

/// An opened archive.
#[derive(Debug)]
pub struct ArchiveSnapshot {
    description: String,
    source: TableSource,
    catalog: Catalog,
    selection: Mutex<Option<Arc<Selection>>>,
    /// Rows of shared tables found by key, per table (raw COPY rows).
    shared: Mutex<HashMap<QualifiedName, Vec<Vec<u8>>>>,
}

/// Runs `work` on rayon and waits for it without blocking the async runtime.
async fn on_rayon<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .await
        .map_err(|_| Error::Aborted("a worker thread stopped".to_owned()))
}

impl ArchiveSnapshot {
    /// Opens `path` (`-` reads standard input once into a spool) and reads its schema.
    pub async fn open(path: &str) -> Result<Arc<Self>> {
        let owned = path.to_owned();
        let opened = on_rayon(move || TableSource::open(&owned)).await??;
        let description = if path == "-" {
            "<stdin>".to_owned()
        } else {
            path.to_owned()
        };
        Ok(Arc::new(Self {
            description,
            source: opened.source,
            catalog: opened.catalog,
            selection: Mutex::new(None),
            shared: Mutex::new(HashMap::new()),
        }))
    }

    #[must_use]
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    #[must_use]
    pub fn describe(&self) -> &str {
        &self.description
    }

    fn selection(&self) -> Result<Arc<Selection>> {
        self.selection
            .lock()
            .map_err(|_| Error::Aborted("the selection lock is poisoned".to_owned()))?
            .clone()
            .ok_or_else(|| {
                Error::Aborted("the archive was read before its tenants were chosen".to_owned())
            })
    }
}

/// Reads from an archive snapshot; cheap, shares the snapshot's kept rows.
#[derive(Debug)]
pub struct ArchiveReader {
    snapshot: Arc<ArchiveSnapshot>,
}

impl ArchiveReader {
    pub fn new(snapshot: Arc<ArchiveSnapshot>) -> Self {
        Self { snapshot }
    }

    /// Filters the archive for `ids` (once per snapshot).
    pub async fn select_tenants(&mut self, plan: &SchemaPlan, ids: &[String]) -> Result<()> {
        if let Ok(existing) = self.snapshot.selection() {
            if existing.ids == ids {
                return Ok(());
            }
        }
        let snapshot = Arc::clone(&self.snapshot);
        let plan = plan.clone();
        let ids = ids.to_vec();
        let selection =
            on_rayon(move || select::select(&snapshot.source, &snapshot.catalog, &plan, &ids))
                .await??;
        *self
            .snapshot
            .selection
            .lock()
            .map_err(|_| Error::Aborted("the selection lock is poisoned".to_owned()))? =
            Some(Arc::new(selection));
        Ok(())
    }

    pub async fn root_rows(&mut self, plan: &SchemaPlan, ids: &[String]) -> Result<Vec<TextRow>> {
        let root = plan
            .table(&plan.root.table)
            .ok_or_else(|| Error::MissingTable(plan.root.table.clone()))?;
        let mut columns = vec![plan.root.key_column.clone()];
        columns.extend(plan.root.label_column.clone());
        let mut rows = Vec::new();
        self.project_owned(plan, root, &columns, ids, &mut |row| {
            rows.push(row.values);
            Ok(())
        })
        .await?;
        Ok(rows)
    }

    pub async fn project_owned(
        &mut self,
        _plan: &SchemaPlan,
        table: &TablePlan,
        columns: &[String],
        _tenants: &[String],
        on_row: &mut (dyn FnMut(OwnedRow) -> Result<()> + Send),
    ) -> Result<()> {
        let selection = self.snapshot.selection()?;
        let positions = positions(table, columns)?;
        let name = table.name.clone();
        let several_chains = !table.secondary.is_empty();
        let rows =
            on_rayon(move || project_kept(&selection, &name, &positions, several_chains)).await??;
        for row in rows {
            on_row(row)?;
        }
        Ok(())
    }

    pub async fn project_by_keys(
        &mut self,
        table: &TablePlan,
        key_columns: &[String],
        keys: &[TextRow],
        columns: &[String],
        on_row: &mut (dyn FnMut(TextRow) -> Result<()> + Send),
    ) -> Result<()> {
        let found = self.rows_by_keys(table, key_columns, keys).await?;
        let positions = positions(table, columns)?;
        for row in found {
            let fields: Vec<&[u8]> = salvage_copy::fields(&row).collect();
            on_row(decode_at(&fields, &positions))?;
        }
        Ok(())
    }

    pub async fn copy_owned(
        &mut self,
        plan: &SchemaPlan,
        table: &TablePlan,
        tenant: &str,
    ) -> Result<RowStream<'_>> {
        let _ = plan;
        let selection = self.snapshot.selection()?;
        let Some(index) = selection.ids.iter().position(|id| id == tenant) else {
            return Err(Error::Aborted(format!(
                "tenant {tenant} was not chosen when the archive was read"
            )));
        };
        let name = table.name.clone();
        let chunks = on_rayon(move || -> Result<Vec<Bytes>> {
            match selection.stores.get(&name) {
                Some(store) => store
                    .read(index)
                    .map_err(|error| Error::Io(format!("read the kept rows of {name}: {error}"))),
                None => Ok(Vec::new()),
            }
        })
        .await??;
        Ok(futures_util::stream::iter(chunks.into_iter().map(Ok)).boxed())
    }

    pub async fn copy_by_keys(
        &mut self,
        table: &TablePlan,
        key_columns: &[String],
        keys: &[TextRow],
    ) -> Result<RowStream<'_>> {
        let rows = self.rows_by_keys(table, key_columns, keys).await?;
        let mut data = Vec::new();
        for row in rows {
            data.extend_from_slice(&row);
            data.push(b'\n');
        }
        let chunks = if data.is_empty() {
            Vec::new()
        } else {
            vec![Ok(Bytes::from(data))]
        };
        Ok(futures_util::stream::iter(chunks).boxed())
    }

    /// The rows of `table` whose `key_columns` hold one of `keys`: from the rows found
    /// before when they are all there, else by scanning the table (and keeping what it finds).
    async fn rows_by_keys(
        &mut self,
        table: &TablePlan,
        key_columns: &[String],
        keys: &[TextRow],
    ) -> Result<Vec<Vec<u8>>> {
        let key_positions = positions(table, key_columns)?;
        let wanted: HashSet<Vec<u8>> = keys.iter().filter_map(encode_key).collect();
        let known = {
            let shared = self
                .snapshot
                .shared
                .lock()
                .map_err(|_| Error::Aborted("the shared rows lock is poisoned".to_owned()))?;
            shared.get(&table.name).cloned().unwrap_or_default()
        };
        let mut found: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut key = Vec::new();
        for row in known {
            let fields: Vec<&[u8]> = salvage_copy::fields(&row).collect();
            if raw_key(&key_positions, &fields, &mut key) && wanted.contains(&key) {
                found.insert(key.clone(), row);
            }
        }
        if found.len() < wanted.len() {
            let snapshot = Arc::clone(&self.snapshot);
            let name = table.name.clone();
            let columns: Vec<String> = table
                .columns
                .iter()
                .map(|column| column.name.clone())
                .collect();
            let missing: HashSet<Vec<u8>> = wanted
                .iter()
                .filter(|key| !found.contains_key(*key))
                .cloned()
                .collect();
            let scanned = on_rayon(move || {
                scan_for_keys(&snapshot, &name, &columns, &key_positions, &missing)
            })
            .await??;
            let mut shared = self
                .snapshot
                .shared
                .lock()
                .map_err(|_| Error::Aborted("the shared rows lock is poisoned".to_owned()))?;
            let kept = shared.entry(table.name.clone()).or_default();
            for (key, row) in scanned {
                kept.push(row.clone());
                found.insert(key, row);
            }
        }
        Ok(found.into_values().collect())
    }
}

/// Positions of `columns` in the table's rows.
fn positions(table: &TablePlan, columns: &[String]) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|column| {
            table.column_index(column).ok_or_else(|| {
                Error::Aborted(format!(
                    "{} has no column {column} in the archive",
                    table.name
                ))
            })
        })
        .collect()
}

fn decode_at(fields: &[&[u8]], positions: &[usize]) -> TextRow {
    positions
        .iter()
        .map(|&position| {
            fields
                .get(position)
                .and_then(|field| salvage_copy::decode_text(field))
        })
        .collect()
}

/// A key's raw COPY text (tab-separated), or `None` when a value is NULL.
fn encode_key(key: &TextRow) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    for (index, value) in key.iter().enumerate() {
        let value = value.as_ref()?;
        if index > 0 {
            raw.push(b'\t');
        }
        salvage_copy::encode(Some(value.as_bytes()), &mut raw);
    }
    Some(raw)
}

fn raw_key(positions: &[usize], fields: &[&[u8]], key: &mut Vec<u8>) -> bool {
    key.clear();
    for (index, &position) in positions.iter().enumerate() {
        let Some(field) = fields.get(position) else {
            return false;
        };
        if salvage_copy::is_null(field) {
            return false;
        }
        if index > 0 {
            key.push(b'\t');
        }
        key.extend_from_slice(field);
    }
    true
}

/// The kept rows of a table projected on `positions`, with their tenants. A table whose rows
/// may reach several tenants gives each distinct row once, with all of them.
fn project_kept(
    selection: &Selection,
    table: &QualifiedName,
    positions: &[usize],
    several_chains: bool,
) -> Result<Vec<OwnedRow>> {
    let Some(store) = selection.stores.get(table) else {
        return Ok(Vec::new());
    };
    let io = |error: std::io::Error| Error::Io(format!("read the kept rows of {table}: {error}"));
    let mut rows = Vec::new();
    if several_chains {
        let mut tenants_of: BTreeMap<Vec<u8>, Vec<Option<String>>> = BTreeMap::new();
        for (index, id) in selection.ids.iter().enumerate() {
            store
                .for_each_row(index, |row| {
                    tenants_of
                        .entry(row.to_vec())
                        .or_default()
                        .push(Some(id.clone()));
                })
                .map_err(io)?;
        }
        for (row, tenants) in tenants_of {
            let fields: Vec<&[u8]> = salvage_copy::fields(&row).collect();
            rows.push(OwnedRow {
                tenants,
                values: decode_at(&fields, positions),
            });
        }
        return Ok(rows);
    }
    for (index, id) in selection.ids.iter().enumerate() {
        store
            .for_each_row(index, |row| {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                rows.push(OwnedRow {
                    tenants: vec![Some(id.clone())],
                    values: decode_at(&fields, positions),
                });
            })
            .map_err(io)?;
    }
    Ok(rows)
}

/// Scans a table for rows whose key is one of `wanted`: `(key, row)` for each found.
fn scan_for_keys(
    snapshot: &ArchiveSnapshot,
    table: &QualifiedName,
    columns: &[String],
    key_positions: &[usize],
    wanted: &HashSet<Vec<u8>>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let parts = snapshot
        .source
        .parts_of(&snapshot.catalog, table, columns)?;
    let mut rows = snapshot.source.plan_rows(parts);
    let mut found = Vec::new();
    let mut key = Vec::new();
    while let Some(row) = rows.next_row()? {
        let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
        if raw_key(key_positions, &fields, &mut key) && wanted.contains(&key) {
            found.push((key.clone(), row.to_vec()));
        }
    }
    Ok(found)
}
