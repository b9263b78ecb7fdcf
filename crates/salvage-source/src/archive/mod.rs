//! A snapshot that is a pg_dump archive (custom, directory, tar or plain; a file, a directory
//! or `-` for standard input).
//!
//! The archive is filtered once for the chosen tenants (`members::archive`), in parallel on
//! rayon; their rows are kept in temporary files and every read of them the pipeline makes is
//! served from the [`Selected`] that returns, so the merge and the verification read what a
//! database snapshot would give them. Shared rows are found by scanning their table for the
//! keys asked, and kept for the restore that follows.

pub(crate) mod keys;
pub(crate) mod tables;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use salvage_catalog::{Catalog, QualifiedName};
use salvage_plan::{SchemaPlan, TablePlan};

use crate::members::{Fields, Selected, raw_key};
use crate::{Error, KeyFilter, Result, RowStream, TextRow, decode_at, on_rayon, positions};
use tables::TableSource;

/// An opened archive.
#[derive(Debug)]
pub struct ArchiveSnapshot {
    description: String,
    source: TableSource,
    catalog: Catalog,
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

    /// The archive's header facts and size: (database, dump time, bytes).
    #[must_use]
    pub fn facts(&self) -> (Option<String>, Option<String>, Option<u64>) {
        match &self.source {
            TableSource::Archive(archive) => {
                let header = archive.header();
                (
                    header.and_then(|header| header.database.clone()),
                    header.map(|header| header.dump_time.to_string()),
                    size_of(archive.path()),
                )
            }
            TableSource::Spool(_) => (None, None, None),
        }
    }

    /// Filters the archive for `ids`: one pass over every owned table's data.
    pub(crate) async fn select(
        self: &Arc<Self>,
        plan: &SchemaPlan,
        ids: &[String],
    ) -> Result<Selected> {
        let snapshot = Arc::clone(self);
        let plan = plan.clone();
        let ids = ids.to_vec();
        on_rayon(move || {
            crate::members::archive::select(
                &snapshot.source,
                &snapshot.catalog,
                &plan,
                &ids,
                snapshot.key_memory,
            )
        })
        .await?
    }

    /// Every tenant ID of the root table's data (decoded text, in the archive's order): one
    /// pass over the root's data, none when the archive has no such table.
    pub(crate) async fn root_ids(self: &Arc<Self>, plan: &SchemaPlan) -> Result<Vec<String>> {
        let snapshot = Arc::clone(self);
        let root = plan.root.table.clone();
        let key = vec![plan.root.key_column.clone()];
        on_rayon(move || {
            if snapshot.catalog.table(&root).is_none() {
                return Ok(Vec::new());
            }
            let parts = snapshot.source.parts_of(&snapshot.catalog, &root, &key)?;
            let mut rows = snapshot.source.plan_rows(parts);
            let mut ids = Vec::new();
            while let Some(row) = rows.next_row()? {
                ids.extend(salvage_copy::decode_text(row));
            }
            Ok(ids)
        })
        .await?
    }

    fn shared_rows(&self) -> std::sync::MutexGuard<'_, HashMap<QualifiedName, Vec<Vec<u8>>>> {
        self.shared
            .lock()
            .expect("the shared rows lock is poisoned (a reader panicked)")
    }
}

/// Reads from an archive snapshot; cheap, shares the snapshot's kept rows.
#[derive(Debug)]
pub struct ArchiveReader {
    snapshot: Arc<ArchiveSnapshot>,
    /// Tables that will be read in rounds.
    again: HashSet<QualifiedName>,
    /// Their fields kept by the first pass.
    narrow: HashMap<QualifiedName, Narrow>,
}

/// The fields at `positions` (plan column order) of every row of a table, one line a row.
#[derive(Debug)]
struct Narrow {
    file: Arc<std::fs::File>,
    positions: Vec<usize>,
}

impl ArchiveReader {
    pub fn new(snapshot: Arc<ArchiveSnapshot>) -> Self {
        Self {
            snapshot,
            again: HashSet::new(),
            narrow: HashMap::new(),
        }
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

    /// One pass over the table's data, keeping the rows any filter matches. A table marked
    /// with [`Self::read_again`] keeps, on its first pass, the fields the pass looked at in a
    /// temporary file, and later passes that need no other fields read that file instead.
    pub async fn rows_matching(
        &mut self,
        table: &TablePlan,
        columns: &[String],
        filters: &[KeyFilter],
    ) -> Result<Vec<Bytes>> {
        let mut projection = positions(table, columns)?;
        let mut tests = Vec::with_capacity(filters.len());
        for filter in filters {
            let condition = match &filter.condition {
                Some((column, value)) => {
                    let mut raw = Vec::new();
                    salvage_copy::encode(Some(value.as_bytes()), &mut raw);
                    Some((positions(table, std::slice::from_ref(column))?[0], raw))
                }
                None => None,
            };
            tests.push((
                positions(table, &filter.columns)?,
                condition,
                Arc::clone(&filter.keys),
            ));
        }
        let looked_at: BTreeSet<usize> = projection
            .iter()
            .copied()
            .chain(tests.iter().flat_map(|(positions, condition, _)| {
                positions
                    .iter()
                    .copied()
                    .chain(condition.iter().map(|(position, _)| *position))
            }))
            .collect();
        let kept = self
            .narrow
            .get(&table.name)
            .filter(|narrow| looked_at.iter().all(|p| narrow.positions.contains(p)))
            .map(|narrow| (Arc::clone(&narrow.file), narrow.positions.clone()));
        let keep = kept.is_none() && self.again.contains(&table.name);
        if let Some((_, in_file)) = &kept {
            // The file's rows hold the fields at `in_file`, in that order (all those looked at).
            let at = |position: &usize| in_file.iter().position(|p| p == position).unwrap_or(0);
            projection = projection.iter().map(at).collect();
            for (positions, condition, _) in &mut tests {
                *positions = positions.iter().map(at).collect();
                if let Some((position, _)) = condition {
                    *position = at(position);
                }
            }
        }
        let snapshot = Arc::clone(&self.snapshot);
        let name = table.name.clone();
        let all: Vec<String> = table
            .columns
            .iter()
            .map(|column| column.name.clone())
            .collect();
        let held: Vec<usize> = looked_at.into_iter().collect();
        let file_of = kept.as_ref().map(|(file, _)| Arc::clone(file));
        let (chunks, written) = on_rayon(move || {
            let needed = projection
                .iter()
                .chain(tests.iter().flat_map(|(positions, condition, _)| {
                    positions
                        .iter()
                        .chain(condition.iter().map(|(position, _)| position))
                }))
                .max()
                .map_or(0, |last| last + 1);
            let (mut spans, mut key, mut out) = (Vec::new(), Vec::new(), Vec::new());
            let mut narrow = Vec::new();
            let mut writer = if keep {
                Some(std::io::BufWriter::with_capacity(
                    256 * 1024,
                    tempfile::tempfile().map_err(Error::io("keep a table's fields for rounds"))?,
                ))
            } else {
                None
            };
            let split_to = if writer.is_some() {
                needed.max(held.last().map_or(0, |last| last + 1))
            } else {
                needed
            };
            let mut visit = |row: &[u8]| -> Result<()> {
                let fields = Fields::split(row, split_to, &mut spans);
                if let Some(writer) = writer.as_mut() {
                    narrow.clear();
                    for (number, &position) in held.iter().enumerate() {
                        if number > 0 {
                            narrow.push(b'\t');
                        }
                        narrow
                            .extend_from_slice(fields.get(position).unwrap_or(salvage_copy::NULL));
                    }
                    narrow.push(b'\n');
                    std::io::Write::write_all(writer, &narrow)
                        .map_err(Error::io("keep a table's fields for rounds"))?;
                }
                let matched = tests.iter().any(|(positions, condition, keys)| {
                    condition.as_ref().is_none_or(|(position, value)| {
                        fields.get(*position) == Some(value.as_slice())
                    }) && raw_key(positions, |position| fields.get(position), &mut key)
                        && keys.contains(key.as_slice())
                });
                if matched {
                    for (number, &position) in projection.iter().enumerate() {
                        if number > 0 {
                            out.push(b'\t');
                        }
                        out.extend_from_slice(fields.get(position).unwrap_or(salvage_copy::NULL));
                    }
                    out.push(b'\n');
                }
                Ok(())
            };
            if let Some(file) = file_of {
                let mut input = std::io::BufReader::with_capacity(256 * 1024, &*file);
                std::io::Seek::rewind(&mut input)
                    .map_err(Error::io("read a table's kept fields"))?;
                let mut line = Vec::new();
                loop {
                    line.clear();
                    let read = std::io::BufRead::read_until(&mut input, b'\n', &mut line)
                        .map_err(Error::io("read a table's kept fields"))?;
                    if read == 0 {
                        break;
                    }
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    visit(&line)?;
                }
            } else {
                let parts = snapshot.source.parts_of(&snapshot.catalog, &name, &all)?;
                let mut rows = snapshot.source.plan_rows(parts);
                while let Some(row) = rows.next_row()? {
                    visit(row)?;
                }
            }
            let written = match writer {
                Some(writer) => Some((
                    writer.into_inner().map_err(|error| {
                        Error::io("keep a table's fields for rounds")(error.into_error())
                    })?,
                    held,
                )),
                None => None,
            };
            let chunks = if out.is_empty() {
                Vec::new()
            } else {
                vec![Bytes::from(out)]
            };
            Ok::<_, Error>((chunks, written))
        })
        .await??;
        if let Some((file, positions)) = written {
            self.narrow.insert(
                table.name.clone(),
                Narrow {
                    file: Arc::new(file),
                    positions,
                },
            );
        }
        Ok(chunks)
    }

    /// Marks `table` as one that will be read in rounds (see [`Self::rows_matching`]).
    pub fn read_again(&mut self, table: &TablePlan) {
        self.again.insert(table.name.clone());
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
        let known = self
            .snapshot
            .shared_rows()
            .get(&table.name)
            .cloned()
            .unwrap_or_default();
        let mut found: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut key = Vec::new();
        for row in known {
            let fields: Vec<&[u8]> = salvage_copy::fields(&row).collect();
            if crate::members::raw_key(
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
            let mut shared = self.snapshot.shared_rows();
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
        if crate::members::raw_key(
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

/// The bytes of a file, or of every file of a directory (a directory archive).
fn size_of(path: &std::path::Path) -> Option<u64> {
    let metadata = std::fs::metadata(path).ok()?;
    if metadata.is_file() {
        return Some(metadata.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).ok()? {
        let entry = entry.ok()?;
        let metadata = entry.metadata().ok()?;
        if metadata.is_file() {
            total += metadata.len();
        }
    }
    Some(total)
}
