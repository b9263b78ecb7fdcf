//! Reads every table of an archive and prints rows, bytes and throughput: the number to
//! compare with `pg_restore --data-only -f /dev/null ARCHIVE`.
//!
//! `cargo run --release -p salvage-archive --example read_all -- ARCHIVE [--parallel]`

use std::time::Instant;

use rayon::prelude::*;
use salvage_archive::{Archive, Result, TableData};

fn read(archive: &Archive, table: &TableData) -> Result<(u64, u64)> {
    let mut rows = archive.rows(table)?;
    let mut bytes = 0u64;
    while let Some(row) = rows.next_row()? {
        bytes += row.len() as u64 + 1;
    }
    Ok((rows.rows_read(), bytes))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: read_all ARCHIVE [--parallel]"))?;
    let parallel = args.next().as_deref() == Some("--parallel");
    let start = Instant::now();
    let archive = Archive::open(&path)?;
    let tables: Vec<&TableData> = archive.tables().iter().filter(|t| t.is_copy()).collect();
    let counts: Vec<(u64, u64)> = if parallel {
        tables
            .par_iter()
            .map(|table| read(&archive, table))
            .collect::<Result<_>>()?
    } else {
        tables
            .iter()
            .map(|table| read(&archive, table))
            .collect::<Result<_>>()?
    };
    let elapsed = start.elapsed().as_secs_f64();
    let rows: u64 = counts.iter().map(|c| c.0).sum();
    let bytes: u64 = counts.iter().map(|c| c.1).sum();
    println!(
        "{path}: {} tables, {rows} rows, {:.1} MB of COPY text in {elapsed:.2}s: {:.0} rows/s, {:.1} MB/s",
        tables.len(),
        bytes as f64 / 1e6,
        rows as f64 / elapsed,
        bytes as f64 / 1e6 / elapsed
    );
    Ok(())
}
