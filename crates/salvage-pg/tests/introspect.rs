//! Introspection of a real database: the tracker fixture plus the shapes it lacks.

use salvage_catalog::{Identity, QualifiedName, TableKind, TypeKind};
use salvage_pg::introspect;
use salvage_testkit::tracker;

fn name(table: &str) -> QualifiedName {
    QualifiedName::new("public", table)
}

#[tokio::test]
async fn reads_tables_columns_keys_foreign_keys_and_sequences() {
    let database = tracker(1).await;
    database
        .execute(
            "CREATE TYPE mood AS ENUM ('ok', 'meh');
             CREATE TABLE extras (
                 id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 code text NOT NULL,
                 twice int GENERATED ALWAYS AS (id * 2) STORED,
                 feeling mood,
                 scores int[],
                 ref_site bigint,
                 ref_project int,
                 FOREIGN KEY (ref_site, ref_project) REFERENCES projects (site_id, project_no) DEFERRABLE INITIALLY DEFERRED
             );
             CREATE UNIQUE INDEX extras_code ON extras (code);
             CREATE UNIQUE INDEX extras_lower_code ON extras (lower(code));
             CREATE TABLE parts (id int NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
             CREATE TABLE parts_2026 PARTITION OF parts FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
        )
        .await;
    let mut connection = database.connect().await;
    let catalog = introspect(&mut connection).await.unwrap();

    assert!(
        catalog.server_version.starts_with(char::is_numeric),
        "{}",
        catalog.server_version
    );
    let names: Vec<&str> = catalog
        .tables
        .keys()
        .map(|name| name.name.as_str())
        .collect();
    for expected in [
        "comments",
        "extras",
        "feature_flags",
        "issues",
        "page_views",
        "parts",
        "parts_2026",
        "plans",
        "projects",
        "reactions",
        "sites",
        "users",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }

    let projects = catalog.table(&name("projects")).unwrap();
    assert_eq!(
        projects.primary_key.as_ref().unwrap().columns,
        ["site_id", "project_no"]
    );
    let issues = catalog.table(&name("issues")).unwrap();
    let to_projects = issues
        .foreign_keys
        .iter()
        .find(|fk| fk.referenced_table == name("projects"))
        .unwrap();
    assert_eq!(to_projects.columns, ["site_id", "project_no"]);
    assert_eq!(to_projects.referenced_columns, ["site_id", "project_no"]);
    assert!(!to_projects.deferrable);
    assert!(
        issues
            .foreign_keys
            .iter()
            .any(|fk| fk.referenced_table == name("issues") && fk.columns == ["parent_id"])
    );
    assert!(
        issues
            .unique_keys
            .iter()
            .any(|key| key.columns == ["site_id", "number"])
    );
    let id = issues.column("id").unwrap();
    assert_eq!(id.sequence.as_ref().unwrap().name, name("issues_id_seq"));
    assert_eq!(issues.column("estimate").unwrap().type_name, "interval");

    let users = catalog.table(&name("users")).unwrap();
    assert_eq!(
        users.column("id").unwrap().identity,
        Some(Identity::ByDefault)
    );
    assert_eq!(
        users.column("id").unwrap().sequence.as_ref().unwrap().name,
        name("users_id_seq")
    );

    let sites = catalog.table(&name("sites")).unwrap();
    assert_eq!(
        sites.column("settings").unwrap().default.as_deref(),
        Some("'{}'::jsonb")
    );
    assert!(
        sites
            .unique_keys
            .iter()
            .any(|key| key.name == "sites_slug_key" && key.columns == ["slug"])
    );

    let extras = catalog.table(&name("extras")).unwrap();
    assert_eq!(
        extras.column("id").unwrap().identity,
        Some(Identity::Always)
    );
    assert!(extras.column("twice").unwrap().generated);
    assert_eq!(extras.column("feeling").unwrap().type_kind, TypeKind::Enum);
    // User types are schema-qualified whatever the search path, as pg_dump writes them.
    assert_eq!(extras.column("feeling").unwrap().type_name, "public.mood");
    let scores = extras.column("scores").unwrap();
    assert_eq!(
        (scores.type_kind, scores.underlying_type.as_deref()),
        (TypeKind::Array, Some("integer"))
    );
    let deferred = &extras.foreign_keys[0];
    assert!(deferred.deferrable && deferred.initially_deferred);
    // Plain unique indexes count as keys; expression indexes do not.
    assert_eq!(
        extras
            .unique_keys
            .iter()
            .map(|key| key.name.as_str())
            .collect::<Vec<_>>(),
        ["extras_code"]
    );

    let parts = catalog.table(&name("parts")).unwrap();
    assert_eq!(parts.kind, TableKind::Partitioned);
    assert_eq!(
        catalog.table(&name("parts_2026")).unwrap().partition_of,
        Some(name("parts"))
    );
    assert_eq!(
        salvage_sql::from_item(&catalog, &name("parts")),
        "\"public\".\"parts\""
    );
    assert_eq!(
        salvage_sql::from_item(&catalog, &name("sites")),
        "ONLY \"public\".\"sites\""
    );
    // Every btree index on plain columns, keys included, for lookups to probe.
    let comments = catalog.table(&name("comments")).unwrap();
    assert!(comments.has_index_on(&["issue_id".to_owned()]));
    assert!(comments.has_index_on(&["id".to_owned()]));
    assert!(!comments.has_index_on(&["author_id".to_owned()]));
}
