//! The journal's tables: created on the first restore that keeps one, in one transaction
//! under an advisory lock (two workers starting together create them once), and upgraded in
//! the same way from an earlier layout.

use salvage_pg::Error;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::{Journal, Result};

/// The layout's version, in the schema's `journal_version` table: a later salvage that
/// changes the tables adds a step from each earlier version.
///
/// 1: runs, tenants, attempts, workers. 2: runs have a kind (`restore` or `undo`), a mode and
/// the run an undo reverts; tenants say which undo reverted them; `row_images` keeps what
/// each tenant's transaction wrote, for `salvage undo`. 3: tenants keep the parent keys their
/// waiting rows wait for (`waiting_for`), so a rerun can tell in one probe whether any came.
pub const JOURNAL_VERSION: i32 = 3;

/// The tables of layout 1, in creation order (with `{s}` for the quoted schema). A new
/// journal runs these, then every upgrade step.
const TABLES: &str = r"
CREATE TABLE IF NOT EXISTS {s}.journal_version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.runs (
    run_id          text PRIMARY KEY,
    digest          text NOT NULL,
    lock_key        integer NOT NULL UNIQUE,
    state           text NOT NULL CHECK (state IN ('running', 'done', 'interrupted', 'failed')),
    snapshot        text NOT NULL,
    target          text NOT NULL,
    root            text NOT NULL,
    tenants         integer NOT NULL,
    plan            jsonb,
    command         text NOT NULL,
    salvage_version text NOT NULL,
    os_user         text,
    db_role         text NOT NULL DEFAULT current_user,
    host            text,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at        timestamptz
);
CREATE INDEX IF NOT EXISTS runs_by_digest ON {s}.runs (digest, started_at);
CREATE TABLE IF NOT EXISTS {s}.run_tenants (
    run_id        text NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
    position      integer NOT NULL,
    tenant        text NOT NULL,
    label         text,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    rows_inserted bigint NOT NULL DEFAULT 0,
    rows_waiting  bigint NOT NULL DEFAULT 0,
    error         text,
    xid           bigint,
    worker        text,
    finished_at   timestamptz,
    verified      text CHECK (verified IN ('passed', 'failed')),
    verify_error  text,
    verified_at   timestamptz,
    PRIMARY KEY (run_id, position),
    UNIQUE (run_id, tenant)
);
CREATE TABLE IF NOT EXISTS {s}.attempts (
    id         bigserial PRIMARY KEY,
    run_id     text NOT NULL,
    position   integer NOT NULL,
    worker     text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at   timestamptz,
    outcome    text CHECK (outcome IN ('done', 'failed', 'retry', 'interrupted')),
    rows       jsonb,
    error      text,
    xid        bigint,
    FOREIGN KEY (run_id, position) REFERENCES {s}.run_tenants ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS attempts_by_tenant ON {s}.attempts (run_id, position);
CREATE TABLE IF NOT EXISTS {s}.workers (
    run_id        text NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
    worker        text NOT NULL,
    number        integer NOT NULL,
    host          text,
    os_user       text,
    db_role       text NOT NULL DEFAULT current_user,
    pid           integer,
    backend_pid   integer NOT NULL,
    command       text,
    state         text NOT NULL CHECK (state IN ('running', 'done', 'interrupted', 'failed')),
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at      timestamptz,
    PRIMARY KEY (run_id, worker)
);
";

/// From layout 1 to 2: what a run is and what it wrote, row by row (with `{s}` for the
/// quoted schema). Every statement may run again (`IF NOT EXISTS`).
const UPGRADE_TO_2: &str = r"
ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'restore' CHECK (kind IN ('restore', 'undo'));
ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS mode text;
ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS undoes text;
ALTER TABLE {s}.run_tenants ADD COLUMN IF NOT EXISTS undone_by text;
ALTER TABLE {s}.run_tenants ADD COLUMN IF NOT EXISTS undone_at timestamptz;
CREATE TABLE IF NOT EXISTS {s}.row_images (
    -- Write order within a step; read only through row_images_by_tenant, so no index of
    -- its own (one per image written inside every tenant's transaction).
    id           bigserial NOT NULL,
    run_id       text NOT NULL,
    position     integer NOT NULL,
    step         integer NOT NULL,
    table_schema text NOT NULL,
    table_name   text NOT NULL,
    key_columns  text[] NOT NULL,
    key          text[] NOT NULL,
    action       text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
    columns      text[],
    before       json,
    -- No foreign key to run_tenants: its check per row was three quarters of the cost of
    -- keeping the images (27,000 inserts: 1.0 s with it, 0.28 s without).
    after_md5    text
);
CREATE INDEX IF NOT EXISTS row_images_by_tenant ON {s}.row_images (run_id, position, step);
";

/// From layout 2 to 3: what a tenant's waiting rows wait for — `[{"schema", "table",
/// "columns", "keys": [COPY text of a key, …]}, …]` per parent and columns; NULL when none
/// wait, or when what they wait for could not be kept (then a rerun plans them again).
const UPGRADE_TO_3: &str = r"
ALTER TABLE {s}.run_tenants ADD COLUMN IF NOT EXISTS waiting_for jsonb;
";

/// The upgrade steps: `(version reached, statements)`, in order.
const UPGRADES: [(i32, &str); 2] = [(2, UPGRADE_TO_2), (3, UPGRADE_TO_3)];

/// The tables every journal has, for the privilege check.
const TABLE_NAMES: [&str; 5] = [
    "journal_version",
    "runs",
    "run_tenants",
    "attempts",
    "workers",
];

/// The tables an upgrade alters: the role that upgrades must own them.
const ALTERED_BY_UPGRADE: [&str; 2] = ["runs", "run_tenants"];

impl Journal {
    /// Whether the journal's tables exist (a schema of that name without them is not one).
    pub async fn exists(&self, connection: &mut PgConnection) -> Result<bool> {
        sqlx::query_scalar::<_, bool>(
            // By the catalogs: to_regclass fails on a schema this role may not use.
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'journal_version')",
        )
        .bind(&self.schema)
        .fetch_one(connection)
        .await
        .map_err(Error::query("look for the journal"))
    }

    /// What would stop this role from keeping the journal, named, before any write: no
    /// CREATE on the database while the schema is missing; a schema of that name that is not
    /// a journal; missing rights on its tables.
    pub async fn problems(&self, connection: &mut PgConnection) -> Result<Vec<String>> {
        let schema_exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        )
        .bind(&self.schema)
        .fetch_one(&mut *connection)
        .await
        .map_err(Error::query("look for the journal's schema"))?;
        let mut problems = Vec::new();
        if !schema_exists {
            let can_create: bool = sqlx::query_scalar(
                "SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')",
            )
            .fetch_one(&mut *connection)
            .await
            .map_err(Error::query("check the right to create the journal"))?;
            if !can_create {
                problems.push(format!(
                    "the journal's schema {} does not exist and this role may not create it (CREATE on the database); create it (CREATE SCHEMA {} AUTHORIZATION <this role>), choose another with --journal-schema, or restore with --no-journal",
                    self.schema, self.quoted
                ));
            }
            return Ok(problems);
        }
        if !self.exists(connection).await? {
            problems.push(format!(
                "the schema {} exists but is not a salvage journal (it has no journal_version table): choose another with --journal-schema, or restore with --no-journal",
                self.schema
            ));
            return Ok(problems);
        }
        // Names in a schema the role may not use cannot even be looked up: that first.
        let schema_usage: bool =
            sqlx::query_scalar("SELECT pg_catalog.has_schema_privilege($1, 'USAGE')")
                .bind(&self.schema)
                .fetch_one(&mut *connection)
                .await
                .map_err(Error::query("check the rights on the journal's schema"))?;
        if !schema_usage {
            problems.push(format!(
                "this role may not use the journal's schema {} (USAGE): GRANT USAGE ON SCHEMA {} to it, or restore with --no-journal",
                self.schema, self.quoted
            ));
            return Ok(problems);
        }
        let version_readable: bool =
            sqlx::query_scalar("SELECT pg_catalog.has_table_privilege($1, 'SELECT')")
                .bind(self.table("journal_version"))
                .fetch_one(&mut *connection)
                .await
                .map_err(Error::query("check the rights on the journal's version"))?;
        let version = if version_readable {
            self.version(connection).await?
        } else {
            None
        };
        if let Some(version) = version.filter(|version| *version > JOURNAL_VERSION) {
            problems.push(format!(
                "the journal in schema {} has layout version {version}, newer than this salvage's {JOURNAL_VERSION}: use the salvage that wrote it, or --journal-schema",
                self.schema
            ));
        }
        // Layout 2's table and sequence are checked once they exist; before that, the role
        // that upgrades creates them (and owns them).
        let has_images = version.is_some_and(|version| version >= 2);
        let upgraded = version.is_some_and(|version| version >= JOURNAL_VERSION);
        let mut sequences = vec!["attempts_id_seq"];
        let mut tables = TABLE_NAMES.to_vec();
        if has_images {
            sequences.push("row_images_id_seq");
            tables.push("row_images");
        }
        for sequence in sequences {
            let usage: bool =
                sqlx::query_scalar("SELECT pg_catalog.has_sequence_privilege($1, 'USAGE')")
                    .bind(self.table(sequence))
                    .fetch_one(&mut *connection)
                    .await
                    .map_err(Error::query("check the rights on the journal's sequence"))?;
            if !usage {
                problems.push(format!(
                    "this role may not use the journal's sequence {}.{sequence} (USAGE): GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} to it, or restore with --no-journal",
                    self.schema, self.quoted
                ));
            }
        }
        for table in tables {
            let name = self.table(table);
            let (select, insert, update): (bool, bool, bool) = sqlx::query_as(
                "SELECT pg_catalog.has_table_privilege($1, 'SELECT'), \
                 pg_catalog.has_table_privilege($1, 'INSERT'), \
                 pg_catalog.has_table_privilege($1, 'UPDATE')",
            )
            .bind(&name)
            .fetch_one(&mut *connection)
            .await
            .map_err(Error::query("check the rights on the journal"))?;
            if !(select && insert && update) {
                problems.push(format!(
                    "this role may not SELECT, INSERT and UPDATE the journal table {}.{table}: GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {} (and USAGE ON ALL SEQUENCES) to it, or restore with --no-journal",
                    self.schema, self.quoted
                ));
            }
        }
        if version_readable && !upgraded {
            problems.extend(self.upgrade_problems(connection, version).await?);
        }
        Ok(problems)
    }

    /// The layout version the journal says it has (`None`: the table is empty).
    pub async fn version(&self, connection: &mut PgConnection) -> Result<Option<i32>> {
        sqlx::query_scalar(&format!(
            "SELECT max(version) FROM {}",
            self.table("journal_version")
        ))
        .fetch_one(connection)
        .await
        .map_err(Error::query("read the journal's version"))
    }

    /// What would stop this role from upgrading a journal of an earlier layout: the tables
    /// an upgrade alters must be its own (ALTER TABLE needs the owner), and it must be
    /// allowed to create the new table in the schema.
    async fn upgrade_problems(
        &self,
        connection: &mut PgConnection,
        version: Option<i32>,
    ) -> Result<Vec<String>> {
        let from = version.unwrap_or(1);
        let mut problems = Vec::new();
        let (create, not_owned): (bool, Vec<String>) = sqlx::query_as(
            "SELECT pg_catalog.has_schema_privilege($1, 'CREATE'), \
             ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                   WHERE n.nspname = $1 AND c.relname = ANY ($2) \
                     AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE') ORDER BY 1)",
        )
        .bind(&self.schema)
        .bind(ALTERED_BY_UPGRADE.as_slice())
        .fetch_one(&mut *connection)
        .await
        .map_err(Error::query("check the rights to upgrade the journal"))?;
        if !not_owned.is_empty() {
            problems.push(format!(
                "the journal in schema {} has layout version {from} and must be upgraded to {JOURNAL_VERSION}, but this role does not own its table{} {}: run this salvage once as the journal's owner (it upgrades the journal), or restore with --no-journal",
                self.schema,
                if not_owned.len() == 1 { "" } else { "s" },
                not_owned
                    .iter()
                    .map(|table| format!("{}.{table}", self.schema))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // Only the step to layout 2 creates a table; later steps add columns.
        if !create && from < 2 {
            problems.push(format!(
                "the journal in schema {} has layout version {from} and must be upgraded to {JOURNAL_VERSION}, which creates {}.row_images, but this role may not create in the schema (CREATE): GRANT CREATE ON SCHEMA {} to it, run this salvage once as the journal's owner, or restore with --no-journal",
                self.schema, self.schema, self.quoted
            ));
        }
        Ok(problems)
    }

    /// Creates the schema and tables when missing (the first restore that keeps a journal).
    pub async fn ensure(&self, connection: &mut PgConnection) -> Result<()> {
        let mut transaction = connection
            .begin()
            .await
            .map_err(Error::query("begin creating the journal"))?;
        sqlx::query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext($1))")
            .bind(format!("salvage journal {}", self.schema))
            .execute(&mut *transaction)
            .await
            .map_err(Error::query("lock the journal's creation"))?;
        // No DDL once the journal is there, unless its layout is older: a role that may
        // write it need not be allowed to create in the database or the schema (`IF NOT
        // EXISTS` checks that right before it looks). An upgrade is checked by `problems`.
        if self.exists(&mut transaction).await? {
            let version = self.version(&mut transaction).await?.unwrap_or(1);
            if version < JOURNAL_VERSION {
                self.upgrade(&mut transaction, version).await?;
            }
            return transaction
                .commit()
                .await
                .map_err(Error::query("commit the journal's creation"));
        }
        let schema_exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        )
        .bind(&self.schema)
        .fetch_one(&mut *transaction)
        .await
        .map_err(Error::query("look for the journal's schema"))?;
        if !schema_exists {
            sqlx::raw_sql(&format!("CREATE SCHEMA {}", self.quoted))
                .execute(&mut *transaction)
                .await
                .map_err(Error::query(format!(
                    "create the journal's schema {}",
                    self.schema
                )))?;
        }
        sqlx::raw_sql(&TABLES.replace("{s}", &self.quoted))
            .execute(&mut *transaction)
            .await
            .map_err(Error::query("create the journal's tables"))?;
        for (_, statements) in UPGRADES {
            sqlx::raw_sql(&statements.replace("{s}", &self.quoted))
                .execute(&mut *transaction)
                .await
                .map_err(Error::query("create the journal's tables"))?;
        }
        sqlx::query(&format!(
            "INSERT INTO {} (version) SELECT $1 WHERE NOT EXISTS (SELECT FROM {})",
            self.table("journal_version"),
            self.table("journal_version")
        ))
        .bind(JOURNAL_VERSION)
        .execute(&mut *transaction)
        .await
        .map_err(Error::query("note the journal's version"))?;
        transaction
            .commit()
            .await
            .map_err(Error::query("commit the journal's creation"))
    }

    /// Runs every upgrade step past `from` and notes the new version, in the caller's
    /// transaction (under the creation lock): the only DDL ever run on an existing journal.
    async fn upgrade(&self, transaction: &mut PgConnection, from: i32) -> Result<()> {
        for (version, statements) in UPGRADES {
            if version <= from {
                continue;
            }
            sqlx::raw_sql(&statements.replace("{s}", &self.quoted))
                .execute(&mut *transaction)
                .await
                .map_err(Error::query(format!(
                    "upgrade the journal in schema {} to layout version {version}",
                    self.schema
                )))?;
        }
        sqlx::query(&format!(
            "WITH noted AS (UPDATE {table} SET version = $1 RETURNING 1) \
             INSERT INTO {table} (version) SELECT $1 WHERE NOT EXISTS (SELECT FROM noted)",
            table = self.table("journal_version")
        ))
        .bind(JOURNAL_VERSION)
        .execute(&mut *transaction)
        .await
        .map_err(Error::query("note the journal's new version"))?;
        Ok(())
    }
}
