//! A snapshot that is a pg_dump archive (custom, directory, tar or plain; a file, a directory
//! or `-` for standard input).
//!
//! The archive is filtered once for the chosen tenants ([`select`]), in parallel on rayon;
//! their rows are kept in temporary files ([`store`]) and every read the pipeline makes — a
//! tenant's rows of a table, projections for the plan — is served from there, so the merge
//! and the verification read what a database snapshot would give them. Shared rows are found
//! by scanning their table for the keys asked, and kept for the restore that follows.

mod keys;
mod select;
mod tables;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_plan::{SchemaPlan, TablePlan};

use crate::selection::{Selection, decode_at, on_rayon, positions, project_kept};
use crate::{Error, Result, RowStream, TextRow};
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
    /// Bytes the filter's key maps may hold in memory before spilling to disk.
    key_memory: usize,
}

impl ArchiveSnapshot {
    /// Opens `path` (`-` reads standard input once into a spool) and reads its schema.
    pub async fn open(path: &str, key_memory: usize) -> Result<Arc<Self>> {
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
            key_memory,
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
        let selection = on_rayon(move || {
            select::select(
                &snapshot.source,
                &snapshot.catalog,
                &plan,
                &ids,
                snapshot.key_memory,
            )
        })
        .await??;
        *self
            .snapshot
            .selection
            .lock()
            .map_err(|_| Error::Aborted("the selection lock is poisoned".to_owned()))? =
            Some(Arc::new(selection));
        Ok(())
    }

    /// The kept root rows: the selection holds exactly the tenants `_ids` names.
    pub async fn root_rows(&mut self, plan: &SchemaPlan, _ids: &[String]) -> Result<Vec<TextRow>> {
        let root = plan
            .table(&plan.root.table)
            .ok_or_else(|| Error::MissingTable(plan.root.table.clone()))?;
        let mut columns = vec![plan.root.key_column.clone()];
        columns.extend(plan.root.label_column.clone());
        let mut rows = Vec::new();
        project_kept(self.selection()?, root, &columns, &mut |row| {
            rows.push(row.values);
            Ok(())
        })
        .await?;
        Ok(rows)
    }

    pub(crate) fn selection(&self) -> Result<Arc<Selection>> {
        self.snapshot.selection()
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
            if select::raw_key(
                &key_positions,
                |position| fields.get(position).copied(),
                &mut key,
            ) && wanted.contains(&key)
            {
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
        if select::raw_key(
            key_positions,
            |position| fields.get(position).copied(),
            &mut key,
        ) && wanted.contains(&key)
        {
            found.push((key.clone(), row.to_vec()));
        }
    }
    Ok(found)
}
