//! Which tables a tenant owns, and through which chain of relations: a breadth-first search
//! down from the root, so every owned table gets its shortest path.

use std::collections::{BTreeMap, BTreeSet};

use salvage_catalog::QualifiedName;

use crate::graph::{Relation, RelationOrigin};

/// For each owned table, the chain of relations from it up to the root (empty for the root).
pub type Chains = BTreeMap<QualifiedName, Vec<Relation>>;

/// Assigns owned tables level by level. Among relations that would attach a table at the same
/// depth, the preferred one is: all child columns NOT NULL, then a declared FK over a config
/// relation over a tenant column, then the relation's name (for a stable plan).
pub fn assign(
    root: &QualifiedName,
    relations: &[Relation],
    never_owned: &BTreeSet<QualifiedName>,
    is_not_null: impl Fn(&QualifiedName, &[String]) -> bool,
) -> Chains {
    let mut chains: Chains = BTreeMap::new();
    chains.insert(root.clone(), Vec::new());
    loop {
        let mut candidates: Vec<(&QualifiedName, (bool, RelationOrigin, &str), &Relation)> =
            relations
                .iter()
                .filter(|relation| {
                    !relation.is_self_reference()
                        && chains.contains_key(&relation.parent)
                        && !chains.contains_key(&relation.child)
                        && !never_owned.contains(&relation.child)
                })
                .map(|relation| {
                    let nullable = !is_not_null(&relation.child, &relation.child_columns);
                    (
                        &relation.child,
                        (nullable, relation.origin, relation.name.as_str()),
                        relation,
                    )
                })
                .collect();
        if candidates.is_empty() {
            return chains;
        }
        candidates.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut attached: BTreeMap<QualifiedName, Vec<Relation>> = BTreeMap::new();
        for (child, _, relation) in candidates {
            if attached.contains_key(child) {
                continue;
            }
            let mut chain = vec![relation.clone()];
            chain.extend(chains[&relation.parent].iter().cloned());
            attached.insert(child.clone(), chain);
        }
        chains.extend(attached);
    }
}

/// Tables not owned but referenced by owned rows, directly or through other shared tables.
pub fn shared_tables(
    chains: &Chains,
    relations: &[Relation],
    excluded: &BTreeSet<QualifiedName>,
) -> BTreeSet<QualifiedName> {
    let mut shared = BTreeSet::new();
    let mut queue: Vec<&QualifiedName> = chains.keys().collect();
    while let Some(table) = queue.pop() {
        for relation in relations {
            if &relation.child != table
                || relation.is_self_reference()
                || relation.origin == RelationOrigin::TenantColumn
                || chains.contains_key(&relation.parent)
                || excluded.contains(&relation.parent)
            {
                continue;
            }
            if shared.insert(relation.parent.clone()) {
                queue.push(&relation.parent);
            }
        }
    }
    shared
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use salvage_catalog::QualifiedName;

    use super::{assign, shared_tables};
    use crate::graph::{Relation, RelationOrigin};

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

    fn path(chain: &[Relation]) -> Vec<String> {
        chain
            .iter()
            .map(|relation| relation.parent.name.clone())
            .collect()
    }

    #[test]
    fn finds_the_shortest_chain_to_the_root() {
        let relations = vec![
            fk("projects", "site_id", "sites"),
            fk("issues", "project_id", "projects"),
            fk("comments", "issue_id", "issues"),
            fk("comments", "project_id", "projects"),
            fk("comments", "author_id", "users"),
            fk("issues", "parent_id", "issues"),
            fk("users", "plan_id", "plans"),
        ];
        let chains = assign(&name("sites"), &relations, &BTreeSet::new(), |_, _| true);
        assert_eq!(path(&chains[&name("comments")]), ["projects", "sites"]);
        assert_eq!(path(&chains[&name("issues")]), ["projects", "sites"]);
        assert!(!chains.contains_key(&name("users")));
        let shared = shared_tables(&chains, &relations, &BTreeSet::new());
        assert_eq!(shared, BTreeSet::from([name("users"), name("plans")]));
    }

    #[test]
    fn prefers_not_null_paths_at_equal_depth() {
        let relations = vec![
            fk("a", "site_id", "sites"),
            fk("b", "site_id", "sites"),
            fk("c", "a_id", "a"),
            fk("c", "b_id", "b"),
        ];
        let chains = assign(
            &name("sites"),
            &relations,
            &BTreeSet::new(),
            |table, columns| !(table.name == "c" && columns == ["a_id"]),
        );
        assert_eq!(path(&chains[&name("c")]), ["b", "sites"]);
    }

    #[test]
    fn tables_forced_shared_are_never_owned() {
        let relations = vec![
            fk("users", "home_site_id", "sites"),
            fk("posts", "user_id", "users"),
        ];
        let never = BTreeSet::from([name("users")]);
        let chains = assign(&name("sites"), &relations, &never, |_, _| true);
        assert!(!chains.contains_key(&name("users")));
        assert!(!chains.contains_key(&name("posts")));
    }
}
