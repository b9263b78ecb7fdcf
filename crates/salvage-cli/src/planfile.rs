//! Plan files: `salvage plan --out plan.json` writes what a restore will do, for a second
//! person to review; `salvage restore --plan plan.json` applies exactly that, refusing before
//! any write when the snapshot or the target is no longer what was planned against.
//!
//! A plan file holds the plan's **inputs** — the snapshot and the target by identity (a
//! database by its cluster's system identifier and its name; an archive by its header and
//! size) and by the shape of every planned table, the tenant model, the mode, the tenants —
//! their **digest** (SHA-256 of the inputs, locations left out), which is also the identity
//! of the run in the target's journal, the **plan** as `plan --format json` shows it, and a
//! **checksum** over all of it, so an edited file is refused. No password is ever written:
//! locations are connection strings without one, and credentials come from the environment
//! (`PGPASSWORD`, `~/.pgpass`, `$DATABASE_URL`) or the same `--snapshot`/`--target` again.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow};
use salvage_catalog::{Catalog, TableShape};
use salvage_plan::{PlanOptions, SchemaPlan};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::args::RecoveryArgs;
use crate::report::PlanDocument;

pub const FORMAT_VERSION: u32 = 1;
const KIND: &str = "salvage plan";

/// What a plan restores, from where, into where: everything that decides its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// What the restore writes: `missing` (rows live lacks, added).
    pub mode: String,
    pub snapshot: Side,
    pub target: Side,
    /// The tenant model: root, tenant columns, configured relations, exclusions.
    pub options: PlanOptions,
    /// The tenants, in order, by canonical ID (labels shown, not part of the digest).
    pub tenants: Vec<TenantInput>,
    /// For a base backup snapshot: how it is replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryArgs>,
}

/// One side (snapshot or target) as planned against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Where it is, without a password (a connection string, a path, a backup): what
    /// `restore --plan` opens when not given another.
    pub location: String,
    /// `database`, `archive` or `base backup`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dumped_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Every planned table this side has, by name: what the plan depends on in it.
    pub tables: BTreeMap<String, TableShape>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantInput {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Creator {
    pub os_user: Option<String>,
    pub host: String,
}

/// The file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanFile {
    pub format_version: u32,
    pub kind: String,
    pub salvage_version: String,
    pub created_at: String,
    pub created_by: Creator,
    /// SHA-256 of the inputs without their locations: the run's identity.
    pub digest: String,
    pub inputs: Inputs,
    pub plan: PlanDocument,
    /// SHA-256 of the file's other fields, as written.
    pub checksum: String,
}

impl Inputs {
    /// The digest: the inputs without where the sides are (the same databases reached
    /// another way are the same plan) or the tenants' labels.
    #[must_use]
    pub fn digest(&self) -> String {
        let mut identity = self.clone();
        identity.snapshot.location.clear();
        identity.target.location.clear();
        for tenant in &mut identity.tenants {
            tenant.label = None;
            tenant.given = None;
        }
        let bytes = serde_json::to_vec(&identity).expect("plan inputs serialize");
        hex(&Sha256::digest(&bytes))
    }
}

/// The shapes of the planned tables a side has.
#[must_use]
pub fn shapes(schema: &SchemaPlan, catalog: &Catalog) -> BTreeMap<String, TableShape> {
    schema
        .tables
        .iter()
        .filter_map(|table| {
            catalog
                .table(&table.name)
                .map(|found| (table.name.to_string(), found.shape()))
        })
        .collect()
}

impl PlanFile {
    #[must_use]
    pub fn new(inputs: Inputs, plan: PlanDocument, created_at: String) -> Self {
        let mut file = Self {
            format_version: FORMAT_VERSION,
            kind: KIND.to_owned(),
            salvage_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            created_by: Creator {
                os_user: crate::who::os_user(),
                host: crate::who::host(),
            },
            digest: inputs.digest(),
            inputs,
            plan,
            checksum: String::new(),
        };
        file.checksum = file.compute_checksum();
        file
    }

    fn compute_checksum(&self) -> String {
        let mut value = serde_json::to_value(self).expect("a plan file serializes");
        if let Some(object) = value.as_object_mut() {
            object.remove("checksum");
        }
        hex(&Sha256::digest(value.to_string().as_bytes()))
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("serialize the plan")?;
        std::fs::write(path, format!("{}\n", salvage_pg::redact(&text)))
            .with_context(|| format!("write the plan file {}", path.display()))
    }

    /// Reads and checks a plan file: JSON of a version this salvage reads, unchanged since
    /// it was written (its checksum and digest hold).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the plan file {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
            anyhow!(
                "{} is not a plan file: line {}, column {}: {error}",
                path.display(),
                error.line(),
                error.column()
            )
        })?;
        if value.get("kind").and_then(serde_json::Value::as_str) != Some(KIND) {
            return Err(anyhow!(
                "{} is not a salvage plan file (it has no \"kind\": \"{KIND}\"); write one with salvage plan --out FILE",
                path.display()
            ));
        }
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(anyhow!(
                "{} has format_version {}; this salvage reads version {FORMAT_VERSION}",
                path.display(),
                version.map_or_else(|| "none".to_owned(), |version| version.to_string())
            ));
        }
        let file: Self = serde_json::from_value(value)
            .map_err(|error| anyhow!("{} is not a valid plan file: {error}", path.display()))?;
        if file.checksum != file.compute_checksum() {
            return Err(anyhow!(
                "{} was changed after salvage wrote it (its checksum does not match): a plan is applied only as it was reviewed; make a new one with salvage plan --out",
                path.display()
            ));
        }
        if file.digest != file.inputs.digest() {
            return Err(anyhow!(
                "{}: its digest does not match its inputs: the file was edited; make a new plan with salvage plan --out",
                path.display()
            ));
        }
        Ok(file)
    }
}

/// What differs between a side as planned and as found, one line each; empty when the same.
#[must_use]
pub fn side_changes(name: &str, planned: &Side, found: &Side) -> Vec<String> {
    let mut changes = Vec::new();
    let fact = |what: &str, before: &Option<String>, after: &Option<String>| -> Option<String> {
        (before != after).then(|| {
            format!(
                "{name}: {what} was {}, is {}",
                before.as_deref().unwrap_or("unknown"),
                after.as_deref().unwrap_or("unknown")
            )
        })
    };
    if planned.kind != found.kind {
        changes.push(format!(
            "{name}: the plan was made against a {}, this is a {}",
            planned.kind, found.kind
        ));
    }
    changes.extend(fact(
        "the cluster's system identifier",
        &planned.system_identifier,
        &found.system_identifier,
    ));
    changes.extend(fact("the database", &planned.database, &found.database));
    changes.extend(fact("dumped at", &planned.dumped_at, &found.dumped_at));
    if planned.bytes != found.bytes {
        changes.push(format!(
            "{name}: its size was {} bytes, is {}",
            planned
                .bytes
                .map_or_else(|| "unknown".to_owned(), |bytes| bytes.to_string()),
            found
                .bytes
                .map_or_else(|| "unknown".to_owned(), |bytes| bytes.to_string())
        ));
    }
    for (table, shape) in &planned.tables {
        match found.tables.get(table) {
            None => changes.push(format!("{name}: table {table} is gone")),
            Some(now) => {
                for change in shape.changes(now) {
                    changes.push(format!("{name}: {table}: {change}"));
                }
            }
        }
    }
    for table in found.tables.keys() {
        if !planned.tables.contains_key(table) {
            changes.push(format!("{name}: table {table} is new"));
        }
    }
    changes
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use salvage_catalog::{QualifiedName, TableShape};
    use salvage_plan::PlanOptions;

    use super::{Inputs, Side, TenantInput, side_changes};

    fn side(location: &str, columns: &[&str]) -> Side {
        Side {
            location: location.to_owned(),
            kind: "database".to_owned(),
            system_identifier: Some("7714456144423632134".to_owned()),
            database: Some("live".to_owned()),
            dumped_at: None,
            bytes: None,
            tables: BTreeMap::from([(
                "public.tickets".to_owned(),
                TableShape {
                    columns: columns.iter().map(|column| (*column).to_owned()).collect(),
                    keys: vec!["primary (id)".to_owned()],
                    references: Vec::new(),
                },
            )]),
        }
    }

    fn inputs(location: &str, columns: &[&str]) -> Inputs {
        Inputs {
            mode: "missing".to_owned(),
            snapshot: side(location, columns),
            target: side(location, columns),
            options: PlanOptions::new(QualifiedName::new("public", "sites")),
            tenants: vec![TenantInput {
                id: "7".to_owned(),
                given: Some("007".to_owned()),
                label: Some("Acme".to_owned()),
            }],
            recovery: None,
        }
    }

    #[test]
    fn the_digest_is_of_what_the_plan_restores_not_where_it_was_reached() {
        let one = inputs("host=a dbname=live", &["id bigint not null"]);
        let other = inputs("host=b.example dbname=live", &["id bigint not null"]);
        assert_eq!(one.digest(), other.digest());
        let mut relabelled = one.clone();
        relabelled.tenants[0].label = Some("Acme Inc".to_owned());
        assert_eq!(one.digest(), relabelled.digest());
        let mut more = one.clone();
        more.tenants.push(TenantInput {
            id: "8".to_owned(),
            given: None,
            label: None,
        });
        assert_ne!(one.digest(), more.digest());
        let changed = inputs(
            "host=a",
            &["id bigint not null", "priority integer not null"],
        );
        assert_ne!(one.digest(), changed.digest());
        assert_eq!(one.digest().len(), 64);
    }

    #[test]
    fn changes_are_named_by_table_and_column() {
        let planned = side("x", &["id bigint not null"]);
        let found = side("x", &["id bigint not null", "priority integer not null"]);
        assert_eq!(
            side_changes("the target", &planned, &found),
            ["the target: public.tickets: column priority integer not null added"]
        );
        assert!(side_changes("the target", &planned, &planned).is_empty());
    }
}
