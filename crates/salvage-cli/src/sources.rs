//! Where to read and where to write, as the user named them: the snapshot (a connection
//! string, a dump file or directory, or `-`) and the target (a connection string, else
//! `$DATABASE_URL`, else the `PG*` environment, as psql). Everything typed is held as a
//! [`SecretText`] or a [`DatabaseUrl`]: shown redacted, whatever the message.

use std::path::Path;

use anyhow::anyhow;
use salvage_pg::conninfo::is_connection_string;
use salvage_pg::{DatabaseUrl, SecretText};

use crate::failure::Failure;

/// The snapshot as given, checked to be something salvage can open.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    text: SecretText,
}

impl SnapshotSource {
    /// Accepts a connection string that resolves, `-`, `pgbackrest:STANZA`, or an existing
    /// file or directory (a dump or a base backup).
    pub fn check(text: SecretText) -> Result<Self, Failure> {
        let raw = text.expose();
        if raw.starts_with("pgbackrest:") {
            // The stanza is checked by pgBackRest itself, before the recovery instance starts.
        } else if is_connection_string(raw) {
            DatabaseUrl::resolve(raw)
                .map_err(|error| Failure::bad_input(anyhow!("the snapshot {text}: {error}")))?;
        } else if raw != "-" && !Path::new(raw).exists() {
            return Err(Failure::bad_input(anyhow!(
                "`{text}` is not a snapshot salvage can read: neither a connection string \
                 (postgres://… or host=… dbname=…) nor an existing dump file or directory, \
                 a base backup directory, pgbackrest:STANZA, or - for standard input"
            )));
        }
        Ok(Self { text })
    }

    /// The text for `Snapshot::open`, which reads it again. Never print it.
    pub fn expose(&self) -> &str {
        self.text.expose()
    }

    /// The text, safe to show.
    pub fn expose_redacted(&self) -> String {
        self.text.to_string()
    }
}

/// The environment variables that make the `PG*` environment name a database.
const PG_VARIABLES: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGSERVICE",
];

/// The target: `--target` (or salvage.toml's), else `$DATABASE_URL`, else the `PG*`
/// environment as psql reads it. A word that is not a connection string is a database name,
/// as psql takes it.
pub fn target(given: Option<SecretText>) -> Result<DatabaseUrl, Failure> {
    let given = given.or_else(|| {
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .map(SecretText::new)
    });
    let Some(text) = given else {
        if PG_VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
        {
            return DatabaseUrl::from_environment().map_err(|error| {
                Failure::bad_input(anyhow!("the target from the PG* environment: {error}"))
            });
        }
        return Err(Failure::bad_input(anyhow!(
            "no target database: use --target URL, set DATABASE_URL, or set the PG* environment \
             (PGHOST, PGDATABASE, PGUSER…) as for psql"
        )));
    };
    let raw = text.expose();
    let resolved = if is_connection_string(raw) {
        DatabaseUrl::resolve(raw)
    } else {
        DatabaseUrl::resolve(&format!(
            "dbname='{}'",
            raw.replace('\\', "\\\\").replace('\'', "\\'")
        ))
    };
    resolved.map_err(|error| Failure::bad_input(anyhow!("the target {text}: {error}")))
}
