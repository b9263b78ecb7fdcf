//! Which tenants a row belongs to, at the level of the schema: every relation from an owned
//! table to an owned table (declared FK, configured relation, tenant column) carries
//! membership, and a row belongs to every tenant any of its parents belongs to — not one
//! chain per table. This module works out, from those relations, what readers need to compute
//! it one pass per table: groups of tables in an order where parents come first (tables that
//! reference themselves or each other form one group, worked out to a fixpoint), the column
//! sets each table is looked up by, and which relations must be checked before a row is
//! inserted (its parent may belong to a tenant not being restored).

use std::collections::{BTreeMap, BTreeSet};

use salvage_catalog::QualifiedName;

use crate::graph::Relation;
use crate::model::{MembershipGroup, TablePlan};
use crate::order;

/// The relations of `child` that carry membership: to owned tables, from anything but the
/// root (whose rows belong to their own key).
pub fn parents_of(
    child: &QualifiedName,
    root: &QualifiedName,
    owned: &BTreeSet<QualifiedName>,
    relations: &[Relation],
) -> Vec<Relation> {
    if child == root {
        return Vec::new();
    }
    relations
        .iter()
        .filter(|relation| &relation.child == child && owned.contains(&relation.parent))
        .cloned()
        .collect()
}

/// Groups the owned tables of `tables` (root first), fills each table's `guards` and
/// `exports`, and returns the groups in an order where every parent group comes first.
pub fn group(tables: &mut [TablePlan], root: &QualifiedName) -> Vec<MembershipGroup> {
    let index_of: BTreeMap<QualifiedName, usize> = tables
        .iter()
        .enumerate()
        .filter(|(_, table)| table.ownership.is_some() || &table.name == root)
        .map(|(index, table)| (table.name.clone(), index))
        .collect();
    let names: BTreeSet<QualifiedName> = index_of.keys().cloned().collect();
    let relations: Vec<Relation> = tables
        .iter()
        .flat_map(|table| table.parents.iter().cloned())
        .collect();
    let references: Vec<&Relation> = relations.iter().collect();
    let ordering = order::order(&names, &references, |name| usize::from(name != root));

    let mut group_of: BTreeMap<&QualifiedName, usize> = BTreeMap::new();
    let mut groups: Vec<MembershipGroup> = Vec::new();
    for (number, members) in ordering.groups.iter().enumerate() {
        for member in members {
            group_of.insert(member, number);
        }
        let member_set: BTreeSet<&QualifiedName> = members.iter().collect();
        let recursive = members.len() > 1
            || members.iter().any(|member| {
                tables[index_of[member]]
                    .parents
                    .iter()
                    .any(|relation| member_set.contains(&relation.parent))
            });
        let level = members
            .iter()
            .flat_map(|member| &tables[index_of[member]].parents)
            .filter_map(|relation| group_of.get(&relation.parent))
            .filter(|&&parent| parent != number)
            .map(|&parent| groups[parent].level + 1)
            .max()
            .unwrap_or(0);
        groups.push(MembershipGroup {
            tables: members.iter().map(|member| index_of[member]).collect(),
            recursive,
            level,
        });
    }

    // A row may wait when one of its parents may not be there: it has several (another
    // tenant's), one of its own group (a row of another tenant, or one waiting itself), or
    // one whose table's rows may wait.
    let mut may_wait: BTreeSet<QualifiedName> = BTreeSet::new();
    for group in &groups {
        for &index in &group.tables {
            let table = &tables[index];
            let waits = table.parents.len() > 1
                || (group.recursive && !table.parents.is_empty())
                || table
                    .parents
                    .iter()
                    .any(|relation| may_wait.contains(&relation.parent));
            if waits {
                may_wait.insert(table.name.clone());
            }
        }
    }
    let mut exports: BTreeMap<QualifiedName, BTreeSet<Vec<String>>> = BTreeMap::new();
    for relation in &relations {
        exports
            .entry(relation.parent.clone())
            .or_default()
            .insert(relation.parent_columns.clone());
    }
    for table in tables.iter_mut() {
        table.guards = if may_wait.contains(&table.name) {
            table.parents.clone()
        } else {
            Vec::new()
        };
        table.exports = exports
            .get(&table.name)
            .map(|sets| sets.iter().cloned().collect())
            .unwrap_or_default();
    }
    groups
}

#[cfg(test)]
mod tests {
    use salvage_catalog::QualifiedName;

    use super::group;
    use crate::graph::{Relation, RelationOrigin};
    use crate::model::{Ownership, Role, TablePlan};

    fn name(table: &str) -> QualifiedName {
        QualifiedName::new("public", table)
    }

    fn fk(child: &str, column: &str, parent: &str) -> Relation {
        Relation {
            name: format!("{child}_{column}_fkey"),
            origin: RelationOrigin::DeclaredFk,
            child: name(child),
            child_columns: vec![column.to_owned()],
            parent: name(parent),
            parent_columns: vec!["id".to_owned()],
            condition: None,
            deferrable: false,
            initially_deferred: false,
        }
    }

    fn table(table: &str, parents: Vec<Relation>) -> TablePlan {
        TablePlan {
            name: name(table),
            role: if parents.is_empty() {
                Role::Root
            } else {
                Role::Owned
            },
            ownership: (!parents.is_empty()).then(|| Ownership {
                chain: parents[..1].to_vec(),
            }),
            in_live: true,
            in_snapshot: true,
            columns: Vec::new(),
            key: None,
            identity_always: false,
            sequences: Vec::new(),
            shared_references: Vec::new(),
            references: Vec::new(),
            parents,
            guards: Vec::new(),
            exports: Vec::new(),
        }
    }

    /// The rental business: a payment reaches a store through its customer, its staff member
    /// and its rental, whose inventory item may be another store's.
    #[test]
    fn groups_come_parents_first_and_rows_with_several_parents_are_guarded() {
        let mut tables = vec![
            table("store", Vec::new()),
            table("customer", vec![fk("customer", "store_id", "store")]),
            table("inventory", vec![fk("inventory", "store_id", "store")]),
            table(
                "rental",
                vec![
                    fk("rental", "customer_id", "customer"),
                    fk("rental", "inventory_id", "inventory"),
                ],
            ),
            table("receipt", vec![fk("receipt", "rental_id", "rental")]),
            table(
                "note",
                vec![
                    fk("note", "rental_id", "rental"),
                    fk("note", "reply_to", "note"),
                ],
            ),
        ];
        let groups = group(&mut tables, &name("store"));
        let order: Vec<&str> = groups
            .iter()
            .map(|group| tables[group.tables[0]].name.name.as_str())
            .collect();
        assert_eq!(order[0], "store");
        let position = |table: &str| order.iter().position(|name| *name == table).unwrap();
        assert!(position("customer") < position("rental"));
        assert!(position("inventory") < position("rental"));
        assert!(position("rental") < position("receipt"));
        let note = &groups[position("note")];
        assert!(note.recursive);
        assert!(!groups[position("rental")].recursive);
        assert_eq!(groups[position("rental")].level, 2);
        let guards = |table: usize| tables[table].guards.len();
        assert_eq!(
            (guards(1), guards(2)),
            (0, 0),
            "one parent, always restored first"
        );
        assert_eq!(
            guards(3),
            2,
            "a rental's customer and item may be two stores'"
        );
        assert_eq!(guards(4), 1, "a receipt waits when its rental waits");
        assert_eq!(guards(5), 2);
        assert_eq!(tables[0].exports, vec![vec!["id".to_owned()]]);
    }
}
