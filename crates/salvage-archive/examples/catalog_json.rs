//! Prints the catalog of the database at `DATABASE_URL` as JSON, read by
//! `salvage_catalog::introspect` with an empty `search_path` (as pg_dump reads it, so type
//! names and defaults are schema-qualified the same way). scripts/make-dump-fixtures.sh
//! records it as fixtures/dumps/catalog.json, the expectation the schema-from-archive tests
//! compare against.

use sqlx::Connection;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")?;
    let mut connection = sqlx::PgConnection::connect(&url).await?;
    sqlx::query("SELECT pg_catalog.set_config('search_path', '', false)")
        .execute(&mut connection)
        .await?;
    let catalog = salvage_pg::introspect(&mut connection).await?;
    // `Catalog` keys its tables by `QualifiedName`, which JSON cannot use as a map key:
    // write the tables as a list.
    let tables: Vec<_> = catalog.tables.values().collect();
    let json = serde_json::json!({ "server_version": catalog.server_version, "tables": tables });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
