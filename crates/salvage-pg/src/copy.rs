//! `COPY (query) TO STDOUT` with bound values.
//!
//! PostgreSQL does not accept parameters in COPY. Rather than splice values into SQL, a
//! [`CopyQuery`] first sets them as custom session settings with `set_config($1, $2)` — bound
//! parameters — and the COPY's query reads them back with `current_setting(...)`, cast to the
//! type they stand for. That also works on a read-only standby, where temporary tables can't
//! be created.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use salvage_sql::Binder;
use sqlx::postgres::PgConnection;

use crate::{Error, Result};

/// A query whose values travel as session settings.
#[derive(Debug, Default)]
pub struct CopyQuery {
    values: Vec<String>,
}

impl CopyQuery {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the bound values on `connection` (one round trip).
    pub async fn set_values(&self, connection: &mut PgConnection) -> Result<()> {
        if self.values.is_empty() {
            return Ok(());
        }
        let mut calls: Vec<String> = (0..self.values.len())
            .map(|index| {
                format!(
                    "pg_catalog.set_config('salvage.p{index}', ${}, false)",
                    index + 1
                )
            })
            .collect();
        // Key sets are matched through hashed subplans, which PostgreSQL builds only when
        // the hash fits in work_mem (times hash_mem_multiplier); otherwise every row is
        // compared with every key — quadratic, minutes for a few hundred thousand keys at
        // the default 4MB. The session gets room for the keys it was given: never less
        // than the server's setting. (GREATEST is syntax, not a function: it needs no schema.)
        calls.push(format!(
            "pg_catalog.set_config('work_mem', (greatest(pg_catalog.pg_size_bytes(pg_catalog.current_setting('work_mem')), ${}::int8) / 1024)::text || 'kB', false)",
            self.values.len() + 1
        ));
        // Only setting names we made and parameter markers: no value is in the text.
        let sql = format!("SELECT {}", calls.join(", "));
        let mut query = sqlx::query(&sql);
        for value in &self.values {
            query = query.bind(value);
        }
        query = query.bind(hash_room(&self.values));
        query
            .execute(&mut *connection)
            .await
            .map_err(Error::query("set the query's values"))?;
        Ok(())
    }

    /// Runs `COPY (select) TO STDOUT` after setting the values: one message per row.
    /// `select` must be built from quoted identifiers and the expressions [`Self::bind`]
    /// returned.
    pub async fn copy_out<'c>(
        &self,
        connection: &'c mut PgConnection,
        select: &str,
        context: &str,
    ) -> Result<BoxStream<'c, Result<Bytes>>> {
        self.set_values(connection).await?;
        let statement = format!("COPY ({select}) TO STDOUT");
        let context = context.to_owned();
        let stream = connection
            .copy_out_raw(&statement)
            .await
            .map_err(Error::query(context.clone()))?;
        Ok(stream
            .map(move |chunk| chunk.map_err(Error::query(context.clone())))
            .boxed())
    }
}

/// Bytes of `work_mem` that let the server hash every key bound in `values`: a key as text is
/// at least two bytes (`1,`) and its hashed tuple about 32 (a 24-byte header and the value),
/// so sixteen times the text, whatever `hash_mem_multiplier` is; at most 2 GB.
fn hash_room(values: &[String]) -> i64 {
    const MAX: i64 = 2 << 30;
    let text: usize = values.iter().map(String::len).sum();
    i64::try_from(text.saturating_mul(16)).map_or(MAX, |bytes| bytes.min(MAX))
}

impl Binder for CopyQuery {
    /// Returns `current_setting('salvage.p0')`: the value as text when the query runs.
    fn bind(&mut self, value: String) -> String {
        let index = self.values.len();
        self.values.push(value);
        format!("pg_catalog.current_setting('salvage.p{index}')")
    }
}

#[cfg(test)]
mod tests {
    use super::hash_room;

    #[test]
    fn room_for_the_keys_grows_with_them_and_is_capped() {
        assert_eq!(hash_room(&[]), 0);
        assert_eq!(hash_room(&["{1,2,3}".to_owned()]), 7 * 16);
        assert_eq!(hash_room(&["x".repeat(1 << 28)]), 2 << 30);
    }
}
