//! Claiming tenants: a worker holds the session advisory lock (run key, position) of each
//! tenant it works on, on the connection that writes the tenant, from before its transaction
//! begins until after it commits. Another worker's try fails while it is held; a crash closes
//! the connection and frees it. The tenant's state is read after the lock is taken, so a
//! tenant another worker finished in the meantime is seen done.

use std::time::Duration;

use salvage_pg::{Error, SqlState};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::{Result, Run};

/// What a claim came to, by position.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Claimed, and still to do: this worker's now.
    pub mine: Vec<i32>,
    /// Done already (by another worker, or an earlier process).
    pub done: Vec<i32>,
    /// Another live worker holds it.
    pub busy: Vec<i32>,
}

impl Run {
    /// Tries to claim each of `positions` without waiting. With `again`, tenants done already
    /// are claimed too (to add rows that waited for other tenants).
    pub async fn claim(
        &self,
        connection: &mut PgConnection,
        positions: &[i32],
        again: bool,
    ) -> Result<Claimed> {
        if positions.is_empty() {
            return Ok(Claimed::default());
        }
        let tried: Vec<(i32, bool)> = sqlx::query_as(
            "SELECT p, pg_catalog.pg_try_advisory_lock($1, p) FROM pg_catalog.unnest($2::int[]) AS p",
        )
        .bind(self.lock_key)
        .bind(positions)
        .fetch_all(&mut *connection)
        .await
        .map_err(Error::query("claim tenants"))?;
        let locked: Vec<i32> = tried
            .iter()
            .filter(|(_, got)| *got)
            .map(|(position, _)| *position)
            .collect();
        let mut claimed = Claimed {
            busy: tried
                .iter()
                .filter(|(_, got)| !*got)
                .map(|(position, _)| *position)
                .collect(),
            ..Claimed::default()
        };
        let done = if again {
            Vec::new()
        } else {
            self.done_among(connection, &locked).await?
        };
        for position in locked {
            if done.contains(&position) {
                claimed.done.push(position);
            } else {
                claimed.mine.push(position);
            }
        }
        self.release(connection, &claimed.done).await?;
        Ok(claimed)
    }

    /// Waits up to `wait` for the tenant at `position` another worker holds: `Some(true)` when
    /// claimed and still to do, `Some(false)` when it turned out done, `None` when still held.
    pub async fn claim_waiting(
        &self,
        connection: &mut PgConnection,
        position: i32,
        wait: Duration,
    ) -> Result<Option<bool>> {
        let mut transaction = connection
            .begin()
            .await
            .map_err(Error::query("begin waiting for a tenant"))?;
        sqlx::query("SELECT pg_catalog.set_config('lock_timeout', $1, true)")
            .bind(format!("{}ms", wait.as_millis().max(1)))
            .execute(&mut *transaction)
            .await
            .map_err(Error::query("set the wait for a tenant"))?;
        // A session lock, though taken in a transaction: it outlives the commit.
        let taken = sqlx::query("SELECT pg_catalog.pg_advisory_lock($1, $2)")
            .bind(self.lock_key)
            .bind(position)
            .execute(&mut *transaction)
            .await;
        match taken {
            Ok(_) => {
                transaction
                    .commit()
                    .await
                    .map_err(Error::query("end waiting for a tenant"))?;
            }
            Err(error) if salvage_pg::sqlstate(&error) == Some(SqlState::LockNotAvailable) => {
                let _ = transaction.rollback().await;
                return Ok(None);
            }
            Err(error) => return Err(Error::query("wait for a tenant")(error)),
        }
        if self.done_among(connection, &[position]).await?.is_empty() {
            Ok(Some(true))
        } else {
            self.release(connection, &[position]).await?;
            Ok(Some(false))
        }
    }

    /// Gives the tenants back.
    pub async fn release(&self, connection: &mut PgConnection, positions: &[i32]) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "SELECT pg_catalog.pg_advisory_unlock($1, p) FROM pg_catalog.unnest($2::int[]) AS p",
        )
        .bind(self.lock_key)
        .bind(positions)
        .execute(connection)
        .await
        .map_err(Error::query("release tenants"))?;
        Ok(())
    }

    async fn done_among(
        &self,
        connection: &mut PgConnection,
        positions: &[i32],
    ) -> Result<Vec<i32>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        // A tenant done with rows waiting is to do again when this process planned it after
        // its commit: the plan then holds exactly the rows still missing.
        sqlx::query_scalar(&format!(
            "SELECT position FROM {} WHERE run_id = $1 AND position = ANY($2::int[]) AND state = 'done' \
             AND NOT (rows_waiting > 0 AND xid IS NOT NULL AND $3::text IS NOT NULL \
                      AND pg_catalog.txid_visible_in_snapshot(xid, $3::text::pg_catalog.txid_snapshot))",
            self.journal.table("run_tenants")
        ))
        .bind(&self.id)
        .bind(positions)
        .bind(self.planned_after.as_deref())
        .fetch_all(connection)
        .await
        .map_err(Error::query("read the claimed tenants' states"))
    }
}
