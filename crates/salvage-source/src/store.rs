//! The chosen tenants' rows of one table, kept while a snapshot is read: appended in
//! per-tenant chunks to one temporary file, read back per tenant. Memory holds only the
//! chunks being filled and a small index, whatever the number of rows.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use bytes::Bytes;

/// Bytes a tenant's buffer holds before it goes to the file.
const CHUNK: usize = 32 * 1024;
/// Bytes all buffers of a table may hold together before every buffer is flushed.
const BUFFERED: usize = 16 * 1024 * 1024;

/// Rows being kept, per tenant (by index).
#[derive(Debug)]
pub struct StoreWriter {
    file: File,
    written: u64,
    buffers: Vec<Vec<u8>>,
    buffered: usize,
    chunks: Vec<Vec<(u64, u32)>>,
    rows: Vec<u64>,
}

impl StoreWriter {
    pub fn new(tenants: usize) -> io::Result<Self> {
        Ok(Self {
            file: tempfile::tempfile()?,
            written: 0,
            buffers: vec![Vec::new(); tenants],
            buffered: 0,
            chunks: vec![Vec::new(); tenants],
            rows: vec![0; tenants],
        })
    }

    /// Keeps `row` (raw COPY text without its newline) for `tenant`.
    pub fn push(&mut self, tenant: usize, row: &[u8]) -> io::Result<()> {
        self.rows[tenant] += 1;
        let buffer = &mut self.buffers[tenant];
        buffer.extend_from_slice(row);
        buffer.push(b'\n');
        self.buffered += row.len() + 1;
        if buffer.len() >= CHUNK {
            self.flush(tenant)?;
        }
        if self.buffered >= BUFFERED {
            for tenant in 0..self.buffers.len() {
                self.flush(tenant)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, tenant: usize) -> io::Result<()> {
        let buffer = &mut self.buffers[tenant];
        if buffer.is_empty() {
            return Ok(());
        }
        self.file.write_all(buffer)?;
        let length = u32::try_from(buffer.len()).map_err(io::Error::other)?;
        self.chunks[tenant].push((self.written, length));
        self.written += u64::from(length);
        self.buffered -= buffer.len();
        buffer.clear();
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<TableStore> {
        for tenant in 0..self.buffers.len() {
            self.flush(tenant)?;
        }
        Ok(TableStore {
            file: self.file,
            chunks: self.chunks,
            rows: self.rows,
        })
    }
}

/// The kept rows of one table.
#[derive(Debug)]
pub struct TableStore {
    file: File,
    chunks: Vec<Vec<(u64, u32)>>,
    rows: Vec<u64>,
}

impl TableStore {
    /// How many rows the tenant has here.
    #[must_use]
    pub fn count(&self, tenant: usize) -> u64 {
        self.rows.get(tenant).copied().unwrap_or(0)
    }

    /// The tenant's rows as chunks of complete COPY rows, in the order they were kept.
    pub fn read(&self, tenant: usize) -> io::Result<Vec<Bytes>> {
        let Some(chunks) = self.chunks.get(tenant) else {
            return Ok(Vec::new());
        };
        chunks
            .iter()
            .map(|&(offset, length)| {
                let mut buffer = vec![0; length as usize];
                self.file.read_exact_at(&mut buffer, offset)?;
                Ok(Bytes::from(buffer))
            })
            .collect()
    }

    /// Calls `visit` with each of the tenant's rows (without newline).
    #[cfg(test)]
    pub fn for_each_row(&self, tenant: usize, mut visit: impl FnMut(&[u8])) -> io::Result<()> {
        for chunk in self.read(tenant)? {
            for row in crate::rows_of(&chunk) {
                visit(row);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::StoreWriter;

    #[test]
    fn keeps_rows_per_tenant_in_order() {
        let mut writer = StoreWriter::new(3).unwrap();
        for n in 0..10_000u32 {
            writer
                .push((n % 2) as usize, format!("row {n}\twith tab").as_bytes())
                .unwrap();
        }
        writer.push(2, b"").unwrap();
        let store = writer.finish().unwrap();
        let mut rows = Vec::new();
        store
            .for_each_row(1, |row| rows.push(String::from_utf8(row.to_vec()).unwrap()))
            .unwrap();
        assert_eq!(rows.len(), 5_000);
        assert_eq!(rows[0], "row 1\twith tab");
        assert_eq!(rows[4_999], "row 9999\twith tab");
        let mut empty = Vec::new();
        store
            .for_each_row(2, |row| empty.push(row.to_vec()))
            .unwrap();
        assert_eq!(empty, vec![Vec::<u8>::new()]);
    }
}
