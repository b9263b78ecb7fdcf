//! The chosen tenants' rows of every owned table, read once from the snapshot — one tagged
//! COPY per table from a database, one filtering pass from an archive — and kept per tenant
//! in temporary files ([`crate::store`]). Every later read of an owned table (the plan's
//! projections, the merge, the verification) is served from here: the snapshot is read once,
//! with a number of statements that does not grow with the number of tenants, and every phase
//! sees the same rows.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use salvage_catalog::QualifiedName;
use salvage_plan::TablePlan;

use crate::store::TableStore;
use crate::{Error, OwnedRow, Result, TextRow};

#[derive(Debug)]
pub struct Selection {
    /// The chosen tenants, canonical IDs; stores are indexed by position here.
    pub ids: Vec<String>,
    pub stores: HashMap<QualifiedName, TableStore>,
    /// For tables with several ownership chains: rows reaching more than one tenant, with
    /// every tenant they reach (chosen or not), when the snapshot could tell.
    pub reach: HashMap<QualifiedName, HashMap<Vec<u8>, Vec<String>>>,
}

impl Selection {
    pub fn tenant_index(&self, id: &str) -> Result<usize> {
        self.ids
            .iter()
            .position(|chosen| chosen == id)
            .ok_or_else(|| {
                Error::Aborted(format!(
                    "tenant {id} was not chosen when the snapshot was read"
                ))
            })
    }

    /// A tenant's kept rows of `table`, as chunks of complete COPY rows.
    pub fn rows(&self, table: &QualifiedName, tenant: usize) -> Result<Vec<Bytes>> {
        match self.stores.get(table) {
            Some(store) => store
                .read(tenant)
                .map_err(|error| Error::Io(format!("read the kept rows of {table}: {error}"))),
            None => Ok(Vec::new()),
        }
    }

    /// The kept rows of a table projected on `positions`, with their tenants. A table whose
    /// rows may reach several tenants gives each distinct row once, with all of them.
    /// Rows are handed to `on_row` as they are read; it returns false to stop.
    pub fn project(
        &self,
        table: &QualifiedName,
        positions: &[usize],
        several_chains: bool,
        on_row: &mut dyn FnMut(OwnedRow) -> bool,
    ) -> Result<()> {
        let Some(store) = self.stores.get(table) else {
            return Ok(());
        };
        let io =
            |error: std::io::Error| Error::Io(format!("read the kept rows of {table}: {error}"));
        if several_chains {
            let mut tenants_of: BTreeMap<Vec<u8>, Vec<Option<String>>> = BTreeMap::new();
            for (index, id) in self.ids.iter().enumerate() {
                store
                    .for_each_row(index, |row| {
                        tenants_of
                            .entry(row.to_vec())
                            .or_default()
                            .push(Some(id.clone()));
                    })
                    .map_err(io)?;
            }
            let reach = self.reach.get(table);
            for (row, chosen) in tenants_of {
                let tenants = reach
                    .and_then(|reach| reach.get(&row))
                    .map_or(chosen, |all| all.iter().cloned().map(Some).collect());
                let fields: Vec<&[u8]> = salvage_copy::fields(&row).collect();
                if !on_row(OwnedRow {
                    tenants,
                    values: decode_at(&fields, positions),
                }) {
                    return Ok(());
                }
            }
            return Ok(());
        }
        for (index, id) in self.ids.iter().enumerate() {
            let mut going = true;
            store
                .for_each_row(index, |row| {
                    if going {
                        let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                        going = on_row(OwnedRow {
                            tenants: vec![Some(id.clone())],
                            values: decode_at(&fields, positions),
                        });
                    }
                })
                .map_err(io)?;
            if !going {
                break;
            }
        }
        Ok(())
    }
}

/// Positions of `columns` in the table's rows.
pub fn positions(table: &TablePlan, columns: &[String]) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|column| {
            table.column_index(column).ok_or_else(|| {
                Error::Aborted(format!(
                    "{} has no column {column} in the snapshot",
                    table.name
                ))
            })
        })
        .collect()
}

pub fn decode_at(fields: &[&[u8]], positions: &[usize]) -> TextRow {
    positions
        .iter()
        .map(|&position| {
            fields
                .get(position)
                .and_then(|field| salvage_copy::decode_text(field))
        })
        .collect()
}

/// Runs `work` on rayon and waits for it without blocking the async runtime.
pub async fn on_rayon<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .await
        .map_err(|_| Error::Aborted("a worker thread stopped".to_owned()))
}

/// A tenant's kept rows of `table`, read off the async runtime.
pub async fn copy_kept(
    selection: std::sync::Arc<Selection>,
    table: &TablePlan,
    tenant: &str,
) -> Result<crate::RowStream<'static>> {
    use futures_util::StreamExt;

    let index = selection.tenant_index(tenant)?;
    let name = table.name.clone();
    let chunks = on_rayon(move || selection.rows(&name, index)).await??;
    Ok(futures_util::stream::iter(chunks.into_iter().map(Ok)).boxed())
}

/// The kept rows of `table` projected on `columns`, with their tenants, handed to `on_row`.
pub async fn project_kept(
    selection: std::sync::Arc<Selection>,
    table: &TablePlan,
    columns: &[String],
    on_row: &mut (dyn FnMut(OwnedRow) -> Result<()> + Send),
) -> Result<()> {
    /// Rows per batch handed from the reading thread to `on_row`.
    const BATCH: usize = 4096;
    let positions = positions(table, columns)?;
    let name = table.name.clone();
    let several_chains = !table.secondary.is_empty();
    // Streamed in batches, not collected: a table's projection can hold millions of rows.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<OwnedRow>>(2);
    let reading = on_rayon(move || {
        let mut batch = Vec::with_capacity(BATCH);
        let mut open = true;
        selection.project(&name, &positions, several_chains, &mut |row| {
            batch.push(row);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                open = sender.blocking_send(full).is_ok();
            }
            open
        })?;
        if open && !batch.is_empty() {
            // The receiver may have stopped on an error of its own; that error is reported.
            let _ = sender.blocking_send(batch);
        }
        Ok::<(), Error>(())
    });
    // Owns the receiver: stopping on an error drops it, which stops the reading thread.
    let consuming = async move {
        while let Some(batch) = receiver.recv().await {
            for row in batch {
                on_row(row)?;
            }
        }
        Ok::<(), Error>(())
    };
    let (read, consumed) = tokio::join!(reading, consuming);
    consumed?;
    read?
}
