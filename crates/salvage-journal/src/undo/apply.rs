//! One tenant's undo, in one transaction: lock the tenant's row of the undone run, check
//! every image against live (each live row locked as it is checked), then — unless a row
//! changed after the run and `force` was not given — apply the steps in descending order
//! (set-based, one or two statements per step, each count checked), and mark the tenant
//! undone in the same transaction.

use salvage_catalog::{Catalog, Identity, QualifiedName};
use salvage_pg::Error as PgError;
use salvage_sql::undo::{
    Referencing, UndoTable, check, put_back_missing, put_back_present, referenced, remove,
};
use serde::Serialize;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::{UndoRun, UndoTenant};

/// How long a tenant's undo waits for a row lock, and for one statement: a restore's
/// defaults.
const LOCK_TIMEOUT: &str = "5s";
const STATEMENT_TIMEOUT: &str = "10min";

/// Conflicts named in full per tenant; the rest are counted.
const CONFLICTS_NAMED: usize = 10;

/// Why a tenant's undo could not run to its end (the transaction rolled back).
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error(transparent)]
    Query(#[from] PgError),
    /// An image names a table (or key column) live does not have now.
    #[error("step {step}: {table} {why}")]
    Table {
        step: i32,
        table: QualifiedName,
        why: String,
    },
    /// A step's images are not one table and one action.
    #[error("step {step} of the run's images mixes tables or actions")]
    MixedStep { step: i32 },
    /// A statement changed another number of rows than the step's images say.
    #[error("step {step}: {what} {table}: {changed} rows of {expected} expected")]
    Count {
        step: i32,
        what: &'static str,
        table: QualifiedName,
        changed: i64,
        expected: i64,
    },
}

/// A row someone changed after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub table: String,
    pub key_columns: Vec<String>,
    pub key: Vec<String>,
    /// `changed` (an inserted or updated row differs from what the run left), `gone` (an
    /// updated row was deleted since), `recreated` (a deleted row's key is in live again),
    /// `referenced` (a row written since references a row the run inserted: removing it would
    /// take that row along or fail; `--force` does not override it), `needed` (a row the run
    /// restored for another tenant, not undone, references it: undo that tenant too).
    pub what: &'static str,
    /// `needed`: the tenant of the run whose restored row references it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needed_by: Option<String>,
}

/// What an undo of one tenant did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UndoCounts {
    /// Rows the run inserted, removed.
    pub removed: i64,
    /// Rows the run inserted that were gone already: nothing to remove.
    pub already_gone: i64,
    /// Rows put back to their saved versions (updated or re-created since).
    pub put_back: i64,
    /// Rows re-inserted from their saved versions (the run deleted them, or, forced, someone
    /// deleted an updated row since).
    pub reinserted: i64,
    /// Rows someone changed after the run, overridden by `--force`.
    pub forced: i64,
}

/// How one tenant's undo ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantUndo {
    /// Committed.
    Undone(UndoCounts),
    /// Rows changed after the run: nothing of the tenant was written.
    Refused {
        conflicts: Vec<Conflict>,
        /// All conflicts, named or not.
        total: usize,
    },
    /// Another undo reverted it first.
    AlreadyUndone { by: String },
}

/// One step of a tenant's images.
struct Step {
    number: i32,
    table: UndoTable,
    action: String,
    images: i64,
    /// `insert` images whose row was gone already.
    gone: i64,
}

impl UndoRun {
    /// Undoes the tenant `tenant` of the undone run in one transaction on `connection`;
    /// `position` is the tenant's row in this undo run.
    pub async fn undo_tenant(
        &self,
        connection: &mut PgConnection,
        catalog: &Catalog,
        tenant: &UndoTenant,
        position: i32,
        force: bool,
    ) -> Result<TenantUndo, UndoError> {
        let mut transaction = connection
            .begin()
            .await
            .map_err(PgError::query("begin the tenant's undo"))?;
        let undone_by: Option<Option<String>> = sqlx::query_scalar(&format!(
            "SELECT undone_by FROM {} WHERE run_id = $1 AND position = $2 FOR UPDATE",
            self.table("run_tenants")
        ))
        .bind(&self.undoes)
        .bind(tenant.position)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(PgError::query("lock the tenant in the undone run"))?;
        match undone_by {
            Some(Some(by)) => return Ok(TenantUndo::AlreadyUndone { by }),
            Some(None) => {}
            None => {
                return Err(PgError::query("lock the tenant in the undone run")(
                    sqlx::Error::RowNotFound,
                )
                .into());
            }
        }
        // Live is in use: a row lock held longer than a restore would wait for fails this
        // tenant (rolled back; undo it again later), it does not hang the undo. (The
        // tenant's journal row, above, is waited for: another undo holding it is working.)
        sqlx::query(
            "SELECT pg_catalog.set_config('lock_timeout', $1, true), \
             pg_catalog.set_config('statement_timeout', $2, true)",
        )
        .bind(LOCK_TIMEOUT)
        .bind(STATEMENT_TIMEOUT)
        .execute(&mut *transaction)
        .await
        .map_err(PgError::query("set the undo's timeouts"))?;
        sqlx::raw_sql("SET CONSTRAINTS ALL DEFERRED")
            .execute(&mut *transaction)
            .await
            .map_err(PgError::query("defer the constraints"))?;
        let mut steps = self
            .steps(&mut transaction, catalog, tenant.position)
            .await?;
        let images = self.table("row_images");
        let mut conflicts = Vec::new();
        for step in &mut steps {
            let present = step.action != "delete";
            let found: Vec<(Vec<String>, bool)> =
                sqlx::query_as(&check(&step.table, &images, present))
                    .bind(&self.undoes)
                    .bind(tenant.position)
                    .bind(step.number)
                    .fetch_all(&mut *transaction)
                    .await
                    .map_err(PgError::query(format!(
                        "check the rows of {}",
                        step.table.name
                    )))?;
            for (key, gone) in found {
                let what = match (step.action.as_str(), gone) {
                    ("insert", true) => {
                        step.gone += 1;
                        continue;
                    }
                    ("update", true) => "gone",
                    ("delete", _) => "recreated",
                    _ => "changed",
                };
                conflicts.push(Conflict {
                    table: step.table.name.to_string(),
                    key_columns: step
                        .table
                        .key
                        .iter()
                        .map(|(column, _)| column.clone())
                        .collect(),
                    key,
                    what,
                    needed_by: None,
                });
            }
        }
        // Rows written since that reference rows the run inserted: never removed with them.
        let tenants = self.table("run_tenants");
        let mut referenced_rows = 0;
        for step in steps.iter().filter(|step| step.action == "insert") {
            for by in referencing(catalog, &step.table.name) {
                let (schema, name) = by.0;
                let keys: Vec<(Vec<String>, Option<String>)> =
                    sqlx::query_as(&referenced(&step.table, &images, &tenants, &by.1))
                        .bind(&self.undoes)
                        .bind(tenant.position)
                        .bind(step.number)
                        .bind(&schema)
                        .bind(&name)
                        .fetch_all(&mut *transaction)
                        .await
                        .map_err(PgError::query(format!(
                            "look for rows referencing the rows inserted into {}",
                            step.table.name
                        )))?;
                referenced_rows += keys.len();
                for (key, needed_by) in keys {
                    conflicts.push(Conflict {
                        what: if needed_by.is_some() {
                            "needed"
                        } else {
                            "referenced"
                        },
                        needed_by,
                        table: step.table.name.to_string(),
                        key_columns: step
                            .table
                            .key
                            .iter()
                            .map(|(column, _)| column.clone())
                            .collect(),
                        key,
                    });
                }
            }
        }
        if !conflicts.is_empty() && (!force || referenced_rows > 0) {
            let total = conflicts.len();
            conflicts.truncate(CONFLICTS_NAMED);
            // Dropping the transaction rolls it back: nothing of the tenant is written.
            return Ok(TenantUndo::Refused { conflicts, total });
        }
        let mut counts = UndoCounts {
            forced: conflicts.len() as i64,
            ..UndoCounts::default()
        };
        for step in &steps {
            self.apply(
                &mut transaction,
                tenant.position,
                step,
                &images,
                &mut counts,
            )
            .await?;
        }
        self.mark_undone(&mut transaction, tenant.position, position, &counts)
            .await?;
        transaction
            .commit()
            .await
            .map_err(PgError::query("commit the tenant's undo"))?;
        Ok(TenantUndo::Undone(counts))
    }

    /// The tenant's steps, last first, each with its live table.
    async fn steps(
        &self,
        transaction: &mut PgConnection,
        catalog: &Catalog,
        position: i32,
    ) -> Result<Vec<Step>, UndoError> {
        let rows: Vec<(i32, String, String, Vec<String>, String, i64)> = sqlx::query_as(&format!(
            "SELECT step, table_schema, table_name, key_columns, action, pg_catalog.count(*) FROM {} \
             WHERE run_id = $1 AND position = $2 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1 DESC, 2, 3, 4, 5",
            self.table("row_images")
        ))
        .bind(&self.undoes)
        .bind(position)
        .fetch_all(&mut *transaction)
        .await
        .map_err(PgError::query("read the tenant's row images"))?;
        let mut steps: Vec<Step> = Vec::with_capacity(rows.len());
        for (step, schema, name, key_columns, action, images) in rows {
            if steps.last().is_some_and(|last| last.number == step) {
                return Err(UndoError::MixedStep { step });
            }
            let name = QualifiedName::new(schema, name);
            let table =
                undo_table(catalog, &name, &key_columns).map_err(|why| UndoError::Table {
                    step,
                    table: name.clone(),
                    why,
                })?;
            steps.push(Step {
                number: step,
                table,
                action,
                images,
                gone: 0,
            });
        }
        Ok(steps)
    }

    /// Applies one step: removes what it inserted, or puts back what it updated or deleted
    /// (rows live holds are set to their saved versions, rows it lacks re-inserted).
    async fn apply(
        &self,
        transaction: &mut PgConnection,
        position: i32,
        step: &Step,
        images: &str,
        counts: &mut UndoCounts,
    ) -> Result<(), UndoError> {
        if step.action == "insert" {
            let removed = self
                .count(
                    transaction,
                    &remove(&step.table, images),
                    position,
                    step,
                    "remove the rows inserted into",
                )
                .await?;
            let expected = step.images - step.gone;
            if removed != expected {
                return Err(UndoError::Count {
                    step: step.number,
                    what: "remove the rows inserted into",
                    table: step.table.name.clone(),
                    changed: removed,
                    expected,
                });
            }
            counts.removed += removed;
            counts.already_gone += step.gone;
            return Ok(());
        }
        let present = self
            .count(
                transaction,
                &put_back_present(&step.table, images),
                position,
                step,
                "put back the saved rows of",
            )
            .await?;
        let missing = self
            .count(
                transaction,
                &put_back_missing(&step.table, images),
                position,
                step,
                "re-insert the saved rows of",
            )
            .await?;
        if present + missing != step.images {
            return Err(UndoError::Count {
                step: step.number,
                what: "put back the saved rows of",
                table: step.table.name.clone(),
                changed: present + missing,
                expected: step.images,
            });
        }
        counts.put_back += present;
        counts.reinserted += missing;
        Ok(())
    }

    /// Runs one statement of a step (bound to the run, the tenant and the step) and returns
    /// the number of rows it reports.
    async fn count(
        &self,
        transaction: &mut PgConnection,
        sql: &str,
        position: i32,
        step: &Step,
        what: &str,
    ) -> Result<i64, UndoError> {
        Ok(sqlx::query_scalar(sql)
            .bind(&self.undoes)
            .bind(position)
            .bind(step.number)
            .fetch_one(transaction)
            .await
            .map_err(PgError::query(format!("{what} {}", step.table.name)))?)
    }

    /// Marks the tenant undone in the undone run and done in this one, in its transaction.
    async fn mark_undone(
        &self,
        transaction: &mut PgConnection,
        undone_position: i32,
        own_position: i32,
        counts: &UndoCounts,
    ) -> Result<(), UndoError> {
        let (undone, own): (i64, i64) = sqlx::query_as(&format!(
            "WITH undone AS (UPDATE {tenants} SET undone_by = $3, undone_at = pg_catalog.clock_timestamp() \
             WHERE run_id = $1 AND position = $2 RETURNING 1), \
             own AS (UPDATE {tenants} SET state = 'done', error = NULL, rows_inserted = $5, \
             xid = pg_catalog.txid_current(), finished_at = pg_catalog.clock_timestamp() \
             WHERE run_id = $3 AND position = $4 RETURNING 1) \
             SELECT (SELECT pg_catalog.count(*) FROM undone), (SELECT pg_catalog.count(*) FROM own)",
            tenants = self.table("run_tenants"),
        ))
        .bind(&self.undoes)
        .bind(undone_position)
        .bind(&self.id)
        .bind(own_position)
        .bind(counts.reinserted)
        .fetch_one(&mut *transaction)
        .await
        .map_err(PgError::query("mark the tenant undone in the journal"))?;
        if (undone, own) != (1, 1) {
            return Err(PgError::query(format!(
                "mark the tenant undone in the journal ({undone} and {own} tenant rows of 1 each updated: the runs' rows are gone)"
            ))(sqlx::Error::RowNotFound)
            .into());
        }
        Ok(())
    }
}

/// Every foreign key of live into `table`: the referencing table's schema and name, and how
/// a statement follows it.
fn referencing(catalog: &Catalog, table: &QualifiedName) -> Vec<((String, String), Referencing)> {
    let mut found = Vec::new();
    for child in catalog.tables.values() {
        // A partition's rows are read through its partitioned table, whose keys it shares.
        if child.partition_of.is_some() {
            continue;
        }
        for key in child
            .foreign_keys
            .iter()
            .filter(|key| &key.referenced_table == table)
        {
            found.push((
                (child.name.schema.clone(), child.name.name.clone()),
                Referencing {
                    from: salvage_sql::from_item(catalog, &child.name),
                    columns: key.columns.clone(),
                    referenced: key.referenced_columns.clone(),
                    key: child
                        .identity_key()
                        .map(|key| key.columns.clone())
                        .unwrap_or_default(),
                },
            ));
        }
    }
    found
}

/// The live table as the statements of a step need it, keyed by `key_columns`.
fn undo_table(
    catalog: &Catalog,
    name: &QualifiedName,
    key_columns: &[String],
) -> Result<UndoTable, String> {
    let table = catalog
        .table(name)
        .ok_or_else(|| "is not in live any more".to_owned())?;
    let key = key_columns
        .iter()
        .map(|column| {
            table
                .column(column)
                .map(|live| (column.clone(), live.type_name.clone()))
                .ok_or_else(|| format!("has no column {column} (a key column of the run's rows)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let insertable: Vec<String> = table
        .columns
        .iter()
        .filter(|column| column.writable())
        .map(|column| column.name.clone())
        .collect();
    let settable = table
        .columns
        .iter()
        .filter(|column| column.writable() && column.identity != Some(Identity::Always))
        .map(|column| column.name.clone())
        .collect();
    Ok(UndoTable {
        name: name.clone(),
        from: salvage_sql::from_item(catalog, name),
        key,
        insertable,
        settable,
        overriding: table
            .columns
            .iter()
            .any(|column| column.identity == Some(Identity::Always)),
    })
}
