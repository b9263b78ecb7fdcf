//! Test support, shared by the crates' tests and the end-to-end scenarios: a fresh database
//! per test on the server `scripts/test.sh` starts (or `$DATABASE_URL`), the fixtures, and
//! snapshots made with `CREATE DATABASE ... TEMPLATE`.
//!
//! Tests that need PostgreSQL fail — never skip — when no server is reachable.

#![allow(clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The server tests run against: `$DATABASE_URL` (set by scripts/test.sh).
#[must_use]
pub fn admin_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "these tests need PostgreSQL: run scripts/test.sh (it starts a throwaway server), \
             or set DATABASE_URL to a server where this user may CREATE DATABASE"
        ),
    }
}

/// The repository's root directory.
#[must_use]
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// `url` with its database name replaced.
#[must_use]
pub fn url_for(url: &str, database: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (url, None),
    };
    let scheme_end = before_query.find("://").map_or(0, |index| index + 3);
    let base = match before_query[scheme_end..].find('/') {
        Some(slash) => &before_query[..scheme_end + slash],
        None => before_query,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

async fn admin_on(server: &str) -> PgConnection {
    PgConnection::connect(server)
        .await
        .unwrap_or_else(|error| panic!("cannot reach the test PostgreSQL at {server}: {error}"))
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let counter = COUNTER.fetch_add(1, Ordering::SeqCst);
    let prefix: String = prefix
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(30)
        .collect();
    format!("t_{prefix}_{}_{counter}_{nanos:x}", std::process::id()).to_ascii_lowercase()
}

/// A database that exists for one test and is dropped after it.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// The server's maintenance URL, where the database is created and dropped.
    server: String,
}

impl TestDatabase {
    /// An empty database.
    pub async fn create(prefix: &str) -> Self {
        Self::create_on(&admin_url(), prefix).await
    }

    /// An empty database on the server `server` (a URL of its maintenance database).
    pub async fn create_on(server: &str, prefix: &str) -> Self {
        let name = unique_name(prefix);
        let mut admin = admin_on(server).await;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        Self {
            url: url_for(server, &name),
            name,
            server: server.to_owned(),
        }
    }

    /// A copy of this database as it is now: a point-in-time snapshot.
    pub async fn snapshot(&self, prefix: &str) -> Self {
        let name = unique_name(prefix);
        let mut admin = admin_on(&self.server).await;
        sqlx::raw_sql(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{}\"",
            self.name
        ))
        .execute(&mut admin)
        .await
        .expect("copy the database (is a connection to it still open?)");
        let _ = admin.close().await;
        Self {
            url: url_for(&self.server, &name),
            name,
            server: self.server.clone(),
        }
    }

    pub async fn connect(&self) -> PgConnection {
        let mut connection = PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database");
        // The same text forms salvage pins, so row texts compare across databases.
        sqlx::raw_sql(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
             SET extra_float_digits = 3; SET bytea_output = 'hex'",
        )
        .execute(&mut connection)
        .await
        .expect("set the session");
        connection
    }

    /// Runs SQL (several statements allowed).
    pub async fn execute(&self, sql: &str) {
        let mut connection = self.connect().await;
        sqlx::raw_sql(sql)
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{error}\nin:\n{sql}"));
        let _ = connection.close().await;
    }

    /// Runs a SQL file of `fixtures/`.
    pub async fn execute_fixture(&self, relative: &str) {
        let path = repo_root().join("fixtures").join(relative);
        let sql = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
        self.execute(&sql).await;
    }

    /// A single value.
    pub async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        let mut connection = self.connect().await;
        let value = sqlx::query_scalar::<_, T>(sql)
            .fetch_one(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{error}\nin:\n{sql}"));
        let _ = connection.close().await;
        value
    }

    /// The first column of every row, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let mut connection = self.connect().await;
        let values = sqlx::query_scalar::<_, String>(sql)
            .fetch_all(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{error}\nin:\n{sql}"));
        let _ = connection.close().await;
        values
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let server = self.server.clone();
        // Drop runs outside any runtime (or inside one we must not block): use a thread.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(mut admin) = PgConnection::connect(&server).await else {
                    return;
                };
                let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
                let _ = admin.close().await;
            });
        })
        .join();
    }
}

/// The tracker fixture (fixtures/app) with `sites` tenants of generated data.
pub async fn tracker(sites: u32) -> TestDatabase {
    tracker_on(&admin_url(), sites).await
}

/// [`tracker`] on the server `server` (a URL of its maintenance database).
pub async fn tracker_on(server: &str, sites: u32) -> TestDatabase {
    let database = TestDatabase::create_on(server, "tracker").await;
    database.execute_fixture("app/schema.sql").await;
    database.execute_fixture("app/generate.sql").await;
    database
        .execute(&format!("SELECT tracker_generate({sites})"))
        .await;
    database
}

/// The shapes fixture (fixtures/shapes) with `accounts` tenants of generated data.
pub async fn shapes(accounts: u32) -> TestDatabase {
    let database = TestDatabase::create("shapes").await;
    database.execute_fixture("shapes/schema.sql").await;
    database.execute_fixture("shapes/generate.sql").await;
    database
        .execute(&format!("SELECT shapes_generate({accounts})"))
        .await;
    database
}

/// The rental fixture (fixtures/rental) with `stores` tenants of generated data: a DVD-rental
/// chain whose rentals, payments and notes often reach several stores by different chains.
pub async fn rental(stores: u32) -> TestDatabase {
    let database = TestDatabase::create("rental").await;
    database.execute_fixture("rental/schema.sql").await;
    database.execute_fixture("rental/generate.sql").await;
    database
        .execute(&format!("SELECT rental_generate({stores})"))
        .await;
    database
}

#[cfg(test)]
mod tests {
    use super::url_for;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            url_for("postgres://u@h:5/postgres", "x"),
            "postgres://u@h:5/x"
        );
        assert_eq!(url_for("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            url_for("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
