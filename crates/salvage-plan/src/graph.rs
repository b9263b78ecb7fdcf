//! The relations between tables that planning follows: declared foreign keys (from the live
//! catalog, plus those of tables that only the snapshot has), relations from the
//! configuration, and tenant columns. Partitions are folded into their partitioned parent.

use std::collections::BTreeMap;

use salvage_catalog::{Catalog, QualifiedName, Table};
use serde::{Deserialize, Serialize};

/// Where a relation came from; shown in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationOrigin {
    /// A FOREIGN KEY constraint of the schema.
    DeclaredFk,
    /// A relation from salvage.toml that the schema does not declare.
    Config,
    /// A `--tenant-column`: the column holds the tenant ID, with or without an FK.
    TenantColumn,
}

/// `child(child_columns) → parent(parent_columns)`: each child row points at one parent row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// The constraint's name, or a name made up for config relations and tenant columns.
    pub name: String,
    pub origin: RelationOrigin,
    pub child: QualifiedName,
    pub child_columns: Vec<String>,
    pub parent: QualifiedName,
    pub parent_columns: Vec<String>,
    /// Only child rows whose `column` equals `value` follow this relation (polymorphic
    /// references configured in salvage.toml).
    pub condition: Option<Condition>,
    pub deferrable: bool,
    pub initially_deferred: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub column: String,
    pub value: String,
}

impl Relation {
    #[must_use]
    pub fn is_self_reference(&self) -> bool {
        self.child == self.parent
    }

    /// `comments(owner_id) → folders(id) when owner_type = 'folder'`, without schemas.
    #[must_use]
    pub fn describe_short(&self) -> String {
        let mut text = format!(
            "{}({}) → {}({})",
            self.child.name,
            self.child_columns.join(", "),
            self.parent.name,
            self.parent_columns.join(", ")
        );
        if let Some(condition) = &self.condition {
            text.push_str(&format!(
                " when {} = '{}'",
                condition.column, condition.value
            ));
        }
        text
    }

    /// `issues(site_id, project_no) → projects(site_id, project_no)`.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{}({}) → {}({})",
            self.child,
            self.child_columns.join(", "),
            self.parent,
            self.parent_columns.join(", ")
        );
        if let Some(condition) = &self.condition {
            text.push_str(&format!(
                " when {} = '{}'",
                condition.column, condition.value
            ));
        }
        text
    }
}

/// Maps every table to the table planning treats it as: partitions to their root parent.
#[derive(Debug, Default)]
pub struct Folding {
    parent_of: BTreeMap<QualifiedName, QualifiedName>,
}

impl Folding {
    pub fn new(catalogs: &[&Catalog]) -> Self {
        let mut parent_of = BTreeMap::new();
        for catalog in catalogs {
            for table in catalog.tables.values() {
                if let Some(parent) = &table.partition_of {
                    parent_of
                        .entry(table.name.clone())
                        .or_insert_with(|| parent.clone());
                }
            }
        }
        Self { parent_of }
    }

    /// The partitioned table at the top of `name`'s partition tree (or `name` itself).
    pub fn resolve(&self, name: &QualifiedName) -> QualifiedName {
        let mut current = name;
        // Partition trees are shallow; the bound guards against a corrupt catalog's loop.
        for _ in 0..64 {
            match self.parent_of.get(current) {
                Some(parent) => current = parent,
                None => break,
            }
        }
        current.clone()
    }

    pub fn is_partition(&self, name: &QualifiedName) -> bool {
        self.parent_of.contains_key(name)
    }
}

/// The declared foreign keys of `table`, with partitions folded into their parents.
pub fn declared_relations(table: &Table, folding: &Folding) -> Vec<Relation> {
    let child = folding.resolve(&table.name);
    table
        .foreign_keys
        .iter()
        .map(|fk| Relation {
            name: fk.name.clone(),
            origin: RelationOrigin::DeclaredFk,
            child: child.clone(),
            child_columns: fk.columns.clone(),
            parent: folding.resolve(&fk.referenced_table),
            parent_columns: fk.referenced_columns.clone(),
            condition: None,
            deferrable: fk.deferrable,
            initially_deferred: fk.initially_deferred,
        })
        .collect()
}

/// Adds `relation` unless an equivalent one (same tables and columns) is already there:
/// the same FK declared on every partition counts once.
pub fn push_unique(relations: &mut Vec<Relation>, relation: Relation) {
    let duplicate = relations.iter().any(|existing| {
        existing.child == relation.child
            && existing.parent == relation.parent
            && existing.child_columns == relation.child_columns
            && existing.parent_columns == relation.parent_columns
            && existing.condition == relation.condition
    });
    if !duplicate {
        relations.push(relation);
    }
}
