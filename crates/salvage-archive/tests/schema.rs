//! The schema read from every fixture's TOC equals the catalog of the database it was dumped
//! from (`salvage_catalog::introspect` with pg_dump's empty `search_path`, recorded by
//! scripts/make-dump-fixtures.sh as fixtures/dumps/catalog.json), planner estimates aside.

mod support;

use salvage_archive::Archive;
use salvage_catalog::{Catalog, QualifiedName, TableKind, TypeKind};
use serde_json::Value;
use support::{all_fixtures, fixture, fixtures};

/// A catalog as the JSON the fixture script writes: the tables as a list, estimates blanked.
fn as_json(catalog: &Catalog) -> Value {
    let tables: Vec<_> = catalog.tables.values().collect();
    let mut json =
        serde_json::json!({ "server_version": catalog.server_version, "tables": tables });
    blank_estimates(&mut json);
    json
}

/// Planner estimates and indexes are the database's alone: an archive's TOC gives neither
/// (salvage reads no index from it).
fn blank_estimates(json: &mut Value) {
    for table in json["tables"].as_array_mut().expect("tables") {
        table["estimated_rows"] = Value::from(-1);
        if let Some(table) = table.as_object_mut() {
            table.remove("indexes");
        }
    }
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("catalog.json")).expect("catalog.json");
    let mut json: Value = serde_json::from_str(&text).expect("JSON");
    blank_estimates(&mut json);
    json
}

#[test]
fn every_fixture_gives_the_databases_catalog() {
    let expected = expected();
    let expected_tables = expected["tables"].as_array().unwrap();
    for fixture in all_fixtures() {
        let archive = Archive::open(&fixture.path).unwrap();
        let catalog = salvage_archive::schema::catalog(&archive)
            .unwrap_or_else(|error| panic!("{}: {error}", fixture.path.display()));
        let got = as_json(&catalog);
        let got_tables = got["tables"].as_array().unwrap();
        for (want, have) in expected_tables.iter().zip(got_tables) {
            assert_eq!(
                have,
                want,
                "{}: table {} differs",
                fixture.path.display(),
                want["name"]
            );
        }
        assert_eq!(got, expected, "{}", fixture.path.display());
    }
}

#[test]
fn the_fixture_schema_has_the_shapes_salvage_plans_with() {
    let archive = Archive::open(fixture("pg17/custom-zstd.dump")).unwrap();
    let catalog = salvage_archive::schema::catalog(&archive).unwrap();
    let table = |schema: &str, name: &str| {
        catalog
            .table(&QualifiedName::new(schema, name))
            .unwrap_or_else(|| panic!("{schema}.{name}"))
    };
    let issues = table("public", "issues");
    let composite = issues
        .foreign_keys
        .iter()
        .find(|fk| fk.columns == ["site_id", "project_no"])
        .unwrap();
    assert_eq!(
        composite.referenced_table,
        QualifiedName::new("public", "projects")
    );
    assert_eq!(composite.referenced_columns, ["site_id", "project_no"]);
    let tickets = table("public", "tickets");
    let deferred = &tickets.foreign_keys[0];
    assert!(deferred.deferrable && deferred.initially_deferred);
    assert_eq!(tickets.columns[0].sequence.as_ref().unwrap().increment, 5);
    assert_eq!(tickets.column("feeling").unwrap().type_kind, TypeKind::Enum);
    assert_eq!(
        tickets.column("weight").unwrap().type_kind,
        TypeKind::Domain
    );
    assert_eq!(tickets.column("during").unwrap().type_kind, TypeKind::Range);
    assert_eq!(tickets.column("labels").unwrap().type_kind, TypeKind::Array);
    let events = table("public", "events");
    assert_eq!(events.kind, TableKind::Partitioned);
    assert_eq!(
        table("public", "events_2025").partition_of,
        Some(QualifiedName::new("public", "events"))
    );
    let invoices = table("public", "invoices");
    assert!(invoices.column("gross").unwrap().generated);
    let id = invoices.column("id").unwrap();
    assert_eq!(id.identity, Some(salvage_catalog::Identity::Always));
    assert_eq!(id.sequence.as_ref().unwrap().increment, 10);
    let escapes = table("public", "escapes");
    assert_eq!(
        escapes.unique_keys.len(),
        1,
        "expression and partial indexes are not keys"
    );
    assert_eq!(escapes.unique_keys[0].columns, ["t"]);
    let odd = table("Sales Dept", "Odd Name");
    assert_eq!(odd.primary_key.as_ref().unwrap().columns, ["Id"]);
    assert!(table("public", "no_columns").columns.is_empty());
    assert!(catalog.server_version.starts_with("15."));
}
