//! What the connected role may do: the facts the checks before the first write need (is the
//! target writable, which privileges the role has on each table and sequence, where
//! row-level security applies to it). Statement shapes in `salvage_sql::preflight`.

use sqlx::postgres::PgConnection;

use crate::{Error, Result};

/// Whether the database can be written at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    /// A hot standby: nothing can be written.
    pub in_recovery: bool,
    /// `default_transaction_read_only` is on for this role and database.
    pub read_only: bool,
    pub role: String,
}

/// What the role may do on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAccess {
    /// The quoted name, as asked.
    pub table: String,
    pub select: bool,
    pub insert: bool,
    /// Row-level security applies to the role: it sees and writes only what the policies
    /// allow.
    pub row_security: bool,
    pub policies: Vec<String>,
}

/// What the role may do on one sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceAccess {
    pub sequence: String,
    pub select: bool,
    pub update: bool,
}

pub async fn target_state(connection: &mut PgConnection) -> Result<TargetState> {
    let (in_recovery, read_only, role): (bool, Option<bool>, String) =
        sqlx::query_as(salvage_sql::preflight::TARGET_STATE)
            .fetch_one(connection)
            .await
            .map_err(Error::query("read whether the database can be written"))?;
    Ok(TargetState {
        in_recovery,
        read_only: read_only.unwrap_or(false),
        role,
    })
}

/// The access of the role to each of `tables` (quoted names); a name that does not resolve
/// is missing from the answer.
pub async fn table_access(
    connection: &mut PgConnection,
    tables: &[String],
) -> Result<Vec<TableAccess>> {
    let rows: Vec<(i32, bool, bool, bool, Vec<String>)> =
        sqlx::query_as(salvage_sql::preflight::TABLE_ACCESS)
            .bind(tables)
            .fetch_all(connection)
            .await
            .map_err(Error::query("read the role's privileges on the tables"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(number, select, insert, row_security, policies)| {
            let table = tables.get(usize::try_from(number).ok()?.checked_sub(1)?)?;
            Some(TableAccess {
                table: table.clone(),
                select,
                insert,
                row_security,
                policies,
            })
        })
        .collect())
}

/// The access of the role to each of `sequences` (quoted names).
pub async fn sequence_access(
    connection: &mut PgConnection,
    sequences: &[String],
) -> Result<Vec<SequenceAccess>> {
    let rows: Vec<(i32, bool, bool)> = sqlx::query_as(salvage_sql::preflight::SEQUENCE_ACCESS)
        .bind(sequences)
        .fetch_all(connection)
        .await
        .map_err(Error::query("read the role's privileges on the sequences"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(number, select, update)| {
            let sequence = sequences.get(usize::try_from(number).ok()?.checked_sub(1)?)?;
            Some(SequenceAccess {
                sequence: sequence.clone(),
                select,
                update,
            })
        })
        .collect())
}
