//! The journal's tables: created on the first restore that keeps one, in one transaction
//! under an advisory lock (two workers starting together create them once).

use salvage_pg::Error;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::{Journal, Result};

/// The layout's version, in the schema's `journal_version` table: a later salvage that
/// changes the tables adds a step from each earlier version.
pub const JOURNAL_VERSION: i32 = 1;

/// The tables, in creation order (with `{s}` for the quoted schema).
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

/// The tables a journal has, for the privilege check.
const TABLE_NAMES: [&str; 5] = [
    "journal_version",
    "runs",
    "run_tenants",
    "attempts",
    "workers",
];

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
        let sequence_usage: bool =
            sqlx::query_scalar("SELECT pg_catalog.has_sequence_privilege($1, 'USAGE')")
                .bind(self.table("attempts_id_seq"))
                .fetch_one(&mut *connection)
                .await
                .map_err(Error::query("check the rights on the journal's sequence"))?;
        if !sequence_usage {
            problems.push(format!(
                "this role may not use the journal's sequence {}.attempts_id_seq (USAGE): GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} to it, or restore with --no-journal",
                self.schema, self.quoted
            ));
        }
        let mut readable = true;
        for table in TABLE_NAMES {
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
            if table == "journal_version" {
                readable = select;
            }
            if !(select && insert && update) {
                problems.push(format!(
                    "this role may not SELECT, INSERT and UPDATE the journal table {}.{table}: GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {} (and USAGE ON ALL SEQUENCES) to it, or restore with --no-journal",
                    self.schema, self.quoted
                ));
            }
        }
        if readable {
            let version: Option<i32> = sqlx::query_scalar(&format!(
                "SELECT max(version) FROM {}",
                self.table("journal_version")
            ))
            .fetch_one(&mut *connection)
            .await
            .map_err(Error::query("read the journal's version"))?;
            if version.is_some_and(|version| version > JOURNAL_VERSION) {
                problems.push(format!(
                    "the journal in schema {} has layout version {}, newer than this salvage's {JOURNAL_VERSION}: use the salvage that wrote it, or --journal-schema",
                    self.schema,
                    version.unwrap_or_default()
                ));
            }
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
        // No DDL at all once the journal is there: a role that may write it need not be
        // allowed to create in the database or the schema (`IF NOT EXISTS` checks that
        // right before it looks).
        if self.exists(&mut transaction).await? {
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
}
