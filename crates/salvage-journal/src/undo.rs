//! Undoing a run (`salvage undo`): what the journal says a run wrote, tenant by tenant (its
//! row images, layout 2), the undo's own run (`kind = 'undo'`, `undoes` the run it reverts)
//! and, in `apply`, the tenant's transaction that checks every image against live and puts
//! the rows back.
//!
//! A tenant is undone at most once: its `run_tenants` row is locked `FOR UPDATE` in the
//! transaction that reverts it and marked `undone_by` there, so a second undo — or two at
//! once — finds it undone and writes nothing.

mod apply;

use salvage_catalog::{Catalog, QualifiedName};
use salvage_pg::Error;
use serde::Serialize;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};

use crate::{Journal, Result, WorkerInfo};

pub use apply::{Conflict, TenantUndo, UndoCounts, UndoError};

/// The run an undo is asked to revert, as the journal holds it.
#[derive(Debug, Clone)]
pub struct UndoneRun {
    pub run: String,
    /// `restore` or `undo`.
    pub kind: String,
    pub state: String,
    pub snapshot: String,
    pub target: String,
    pub root: String,
    /// Row images the run's tenants wrote, all tenants together.
    pub images: i64,
}

/// A tenant of the run to revert, with what its images say it wrote.
#[derive(Debug, Clone, Serialize)]
pub struct UndoTenant {
    pub tenant: String,
    #[serde(skip)]
    pub position: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The tenant's state in the run: `pending`, `done`, `failed`.
    pub state: String,
    /// The undo run that reverted it already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undone_by: Option<String>,
    /// Rows the run inserted (`insert` images): removed by the undo.
    pub inserted: i64,
    /// Rows the run updated: put back to their saved versions.
    pub updated: i64,
    /// Rows the run deleted: re-inserted from their saved versions.
    pub deleted: i64,
    /// Where an undo takes the tenant (from 1): last committed first, so rows that reference
    /// shared rows an earlier tenant inserted are removed before those.
    #[serde(skip)]
    pub undo_order: i64,
}

/// A live table the run's images name, with every key they use and the columns they say
/// were changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTable {
    pub table: QualifiedName,
    pub key_columns: Vec<Vec<String>>,
    pub columns: Vec<String>,
}

/// An undo run this process works on.
#[derive(Debug, Clone)]
pub struct UndoRun {
    pub journal: Journal,
    pub id: String,
    /// The run it reverts.
    pub undoes: String,
}

/// What an undo run records when it starts.
#[derive(Debug)]
pub struct NewUndo<'a> {
    pub undone: &'a UndoneRun,
    pub salvage_version: &'a str,
    /// The tenants it handles, in order: ID and label.
    pub tenants: &'a [(String, Option<String>)],
    pub worker: &'a WorkerInfo,
}

impl Journal {
    /// The run `id`, with its kind and how many row images it has; `None` when there is no
    /// such run. Needs layout 2.
    pub async fn undone_run(
        &self,
        connection: &mut PgConnection,
        id: &str,
    ) -> Result<Option<UndoneRun>> {
        let row: Option<(String, String, String, String, String, String, i64)> =
            sqlx::query_as(&format!(
                "SELECT r.run_id, r.kind, r.state, r.snapshot, r.target, r.root, \
                 (SELECT pg_catalog.count(*) FROM {images} i WHERE i.run_id = r.run_id) \
                 FROM {runs} r WHERE r.run_id = $1",
                images = self.table("row_images"),
                runs = self.table("runs"),
            ))
            .bind(id)
            .fetch_optional(connection)
            .await
            .map_err(Error::query("read the run to undo from the journal"))?;
        Ok(row.map(
            |(run, kind, state, snapshot, target, root, images)| UndoneRun {
                run,
                kind,
                state,
                snapshot,
                target,
                root,
                images,
            },
        ))
    }

    /// The run's tenants in order, with what their images hold.
    pub async fn undo_tenants(
        &self,
        connection: &mut PgConnection,
        run: &str,
    ) -> Result<Vec<UndoTenant>> {
        let rows = sqlx::query(&format!(
            "SELECT t.tenant, t.position, t.label, t.state, t.undone_by, \
             pg_catalog.count(i.id) FILTER (WHERE i.action = 'insert'), \
             pg_catalog.count(i.id) FILTER (WHERE i.action = 'update'), \
             pg_catalog.count(i.id) FILTER (WHERE i.action = 'delete'), \
             pg_catalog.row_number() OVER (ORDER BY t.finished_at DESC NULLS LAST, t.position DESC) \
             FROM {tenants} t LEFT JOIN {images} i ON i.run_id = t.run_id AND i.position = t.position \
             WHERE t.run_id = $1 GROUP BY t.run_id, t.position ORDER BY t.position",
            tenants = self.table("run_tenants"),
            images = self.table("row_images"),
        ))
        .bind(run)
        .fetch_all(connection)
        .await
        .map_err(Error::query("read the tenants of the run to undo"))?;
        Ok(rows
            .iter()
            .map(|row| UndoTenant {
                tenant: row.get(0),
                position: row.get(1),
                label: row.get(2),
                state: row.get(3),
                undone_by: row.get(4),
                inserted: row.get(5),
                updated: row.get(6),
                deleted: row.get(7),
                undo_order: row.get(8),
            })
            .collect())
    }

    /// Every live table the images of `positions` name, with the keys and changed columns
    /// they use.
    pub async fn image_tables(
        &self,
        connection: &mut PgConnection,
        run: &str,
        positions: &[i32],
    ) -> Result<Vec<ImageTable>> {
        let rows: Vec<(String, String, Vec<String>, Vec<String>)> = sqlx::query_as(&format!(
            "SELECT k.table_schema, k.table_name, k.key_columns, \
             ARRAY(SELECT DISTINCT c FROM {images} u, pg_catalog.unnest(u.columns) AS c \
                   WHERE u.run_id = $1 AND u.position = ANY ($2) \
                     AND u.table_schema = k.table_schema AND u.table_name = k.table_name ORDER BY 1) \
             FROM (SELECT DISTINCT i.table_schema, i.table_name, i.key_columns FROM {images} i \
                   WHERE i.run_id = $1 AND i.position = ANY ($2)) AS k ORDER BY 1, 2, 3",
            images = self.table("row_images"),
        ))
        .bind(run)
        .bind(positions)
        .fetch_all(connection)
        .await
        .map_err(Error::query("read the tables the run's row images name"))?;
        let mut tables: Vec<ImageTable> = Vec::new();
        for (schema, name, key_columns, columns) in rows {
            let table = QualifiedName::new(schema, name);
            match tables.iter_mut().find(|known| known.table == table) {
                Some(known) => known.key_columns.push(key_columns),
                None => tables.push(ImageTable {
                    table,
                    key_columns: vec![key_columns],
                    columns,
                }),
            }
        }
        Ok(tables)
    }

    /// Starts an undo run of `new.undone`, with a tenant row per tenant it handles, committed
    /// at once (it describes; each tenant's transaction decides).
    pub async fn start_undo(
        &self,
        connection: &mut PgConnection,
        new: &NewUndo<'_>,
    ) -> Result<UndoRun> {
        let mut transaction = connection
            .begin()
            .await
            .map_err(Error::query("begin the undo's journal entry"))?;
        let id: String = sqlx::query_scalar(&format!(
            "INSERT INTO {} (run_id, digest, lock_key, state, snapshot, target, root, tenants, \
             command, salvage_version, os_user, host, kind, undoes) \
             SELECT id, 'undo:' || $1, pg_catalog.hashtext(id), 'running', $2, $3, $4, $5, $6, $7, $8, $9, 'undo', $1 \
             FROM (SELECT pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDD-HH24MISS') \
             || '-' || pg_catalog.substr(pg_catalog.md5(pg_catalog.random()::text || pg_catalog.pg_backend_pid()::text), 1, 6) AS id) AS new \
             RETURNING run_id",
            self.table("runs")
        ))
        .bind(&new.undone.run)
        .bind(&new.undone.snapshot)
        .bind(&new.undone.target)
        .bind(&new.undone.root)
        .bind(i32::try_from(new.tenants.len()).unwrap_or(i32::MAX))
        .bind(&new.worker.command)
        .bind(new.salvage_version)
        .bind(&new.worker.os_user)
        .bind(&new.worker.host)
        .fetch_one(&mut *transaction)
        .await
        .map_err(Error::query("record the undo in the journal"))?;
        self.add_tenants(&mut transaction, &id, new.tenants)
            .await
            .map_err(Error::query("record the undo's tenants in the journal"))?;
        transaction
            .commit()
            .await
            .map_err(Error::query("commit the undo's journal entry"))?;
        Ok(UndoRun {
            journal: self.clone(),
            id,
            undoes: new.undone.run.clone(),
        })
    }

    /// Each run's kind and the run an undo reverts, by run ID (for `salvage runs`); empty
    /// for a journal of layout 1, whose runs are all restores.
    pub async fn run_kinds(
        &self,
        connection: &mut PgConnection,
    ) -> Result<Vec<(String, String, Option<String>)>> {
        if self.version(connection).await?.unwrap_or(1) < 2 {
            return Ok(Vec::new());
        }
        sqlx::query_as(&format!(
            "SELECT run_id, kind, undoes FROM {}",
            self.table("runs")
        ))
        .fetch_all(connection)
        .await
        .map_err(Error::query("read the kinds of the journal's runs"))
    }
}

impl UndoRun {
    fn table(&self, name: &str) -> String {
        self.journal.table(name)
    }

    /// Records that the undo of its tenant at `position` did not commit: refused or failed,
    /// with why.
    pub async fn tenant_not_undone(
        &self,
        connection: &mut PgConnection,
        position: i32,
        error: &str,
    ) -> Result<()> {
        self.end_tenant(connection, position, "failed", error).await
    }

    /// Records that its tenant at `position` needed nothing: another undo reverted it first.
    pub async fn tenant_undone_elsewhere(
        &self,
        connection: &mut PgConnection,
        position: i32,
        by: &str,
    ) -> Result<()> {
        self.end_tenant(
            connection,
            position,
            "done",
            &format!("already undone by run {by}"),
        )
        .await
    }

    /// The end of this undo's tenant at `position` without a transaction of its own: its
    /// state and why.
    async fn end_tenant(
        &self,
        connection: &mut PgConnection,
        position: i32,
        state: &str,
        note: &str,
    ) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE {} SET state = $3, error = $4, finished_at = pg_catalog.clock_timestamp() \
             WHERE run_id = $1 AND position = $2",
            self.table("run_tenants")
        ))
        .bind(&self.id)
        .bind(position)
        .bind(state)
        .bind(note)
        .execute(connection)
        .await
        .map_err(Error::query("record the tenant's undo in the journal"))?;
        Ok(())
    }

    /// Ends the undo run: `done` when every tenant it handled was undone, else `failed`.
    pub async fn finish(&self, connection: &mut PgConnection, all_undone: bool) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE {} SET state = $2, ended_at = pg_catalog.clock_timestamp() WHERE run_id = $1",
            self.table("runs")
        ))
        .bind(&self.id)
        .bind(if all_undone { "done" } else { "failed" })
        .execute(connection)
        .await
        .map_err(Error::query("record the undo's end in the journal"))?;
        Ok(())
    }
}

/// What stops the images from being applied to live as it is now, one message per problem:
/// a table missing, a key column or a changed column it no longer has.
#[must_use]
pub fn image_table_problems(catalog: &Catalog, tables: &[ImageTable]) -> Vec<String> {
    let mut problems = Vec::new();
    for image in tables {
        let Some(table) = catalog.table(&image.table) else {
            problems.push(format!(
                "the run wrote rows of {}, which live no longer has",
                image.table
            ));
            continue;
        };
        for key in &image.key_columns {
            let missing: Vec<&str> = key
                .iter()
                .filter(|column| table.column(column).is_none())
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "{}: the run's rows are keyed by ({}), but live has no column {}",
                    image.table,
                    key.join(", "),
                    missing.join(", ")
                ));
            }
        }
        let missing: Vec<&str> = image
            .columns
            .iter()
            .filter(|column| table.column(column).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{}: the run changed column{} {} that live no longer has",
                image.table,
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ));
        }
    }
    problems
}

/// What the role may not do on the tables an undo writes (SELECT, INSERT, UPDATE, DELETE;
/// row-level security, which would hide rows from the checks), one message per table.
pub async fn table_right_problems(
    connection: &mut PgConnection,
    tables: &[QualifiedName],
) -> Result<Vec<String>> {
    let quoted: Vec<String> = tables.iter().map(QualifiedName::quoted).collect();
    let rows: Vec<(i32, bool, bool, bool, bool, bool)> =
        sqlx::query_as(salvage_sql::undo::TABLE_RIGHTS)
            .bind(&quoted)
            .fetch_all(connection)
            .await
            .map_err(Error::query(
                "read the role's privileges on the tables to undo",
            ))?;
    let mut problems = Vec::new();
    for (number, select, insert, update, delete, row_security) in rows {
        let Some(table) = usize::try_from(number)
            .ok()
            .and_then(|number| number.checked_sub(1))
            .and_then(|index| tables.get(index))
        else {
            continue;
        };
        let missing: Vec<&str> = [
            ("SELECT", select),
            ("INSERT", insert),
            ("UPDATE", update),
            ("DELETE", delete),
        ]
        .into_iter()
        .filter(|(_, granted)| !granted)
        .map(|(right, _)| right)
        .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "this role may not {} {table}: an undo reads, re-inserts, updates and deletes its rows",
                missing.join(", ")
            ));
        }
        if row_security {
            problems.push(format!(
                "row-level security applies to this role on {table}: an undo must see every row it checks (use a role that bypasses RLS, or the table's owner)"
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use salvage_catalog::{Catalog, Column, QualifiedName, Table, TableKind, TypeKind};

    use super::{ImageTable, image_table_problems};

    fn column(name: &str) -> Column {
        Column {
            name: name.to_owned(),
            type_name: "bigint".to_owned(),
            type_kind: TypeKind::Base,
            underlying_type: None,
            not_null: true,
            default: None,
            identity: None,
            generated: false,
            sequence: None,
        }
    }

    fn catalog() -> Catalog {
        let name = QualifiedName::new("public", "issues");
        let mut catalog = Catalog::default();
        catalog.tables.insert(
            name.clone(),
            Table {
                name,
                kind: TableKind::Ordinary,
                partition_of: None,
                columns: vec![column("id"), column("title")],
                primary_key: None,
                unique_keys: Vec::new(),
                foreign_keys: Vec::new(),
                indexes: Vec::new(),
                estimated_rows: 0,
            },
        );
        catalog
    }

    #[test]
    fn names_every_table_key_and_column_live_lacks() {
        let images = [
            ImageTable {
                table: QualifiedName::new("public", "issues"),
                key_columns: vec![
                    vec!["id".to_owned()],
                    vec!["site_id".to_owned(), "number".to_owned()],
                ],
                columns: vec!["title".to_owned(), "triage".to_owned()],
            },
            ImageTable {
                table: QualifiedName::new("public", "gone"),
                key_columns: vec![vec!["id".to_owned()]],
                columns: Vec::new(),
            },
        ];
        assert_eq!(
            image_table_problems(&catalog(), &images),
            [
                "public.issues: the run's rows are keyed by (site_id, number), but live has no column site_id, number",
                "public.issues: the run changed column triage that live no longer has",
                "the run wrote rows of public.gone, which live no longer has",
            ]
        );
        assert!(image_table_problems(&catalog(), &images[..0]).is_empty());
    }
}
