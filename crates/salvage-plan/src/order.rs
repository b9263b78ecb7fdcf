//! The order in which tables are inserted: parents before children, following the foreign
//! keys PostgreSQL enforces. Groups of tables that reference each other in a cycle are found
//! (Tarjan's strongly connected components) and reported to the caller.

use std::collections::{BTreeMap, BTreeSet};

use salvage_catalog::QualifiedName;

use crate::graph::Relation;

/// Tables in insertion order; each cycle comes out as one group of several tables.
#[derive(Debug)]
pub struct Ordering {
    pub groups: Vec<Vec<QualifiedName>>,
}

/// Orders `tables` so that every relation's parent comes before its child. `rank` breaks ties
/// between tables that are ready at the same time (lower first), for a stable, readable plan.
pub fn order(
    tables: &BTreeSet<QualifiedName>,
    relations: &[&Relation],
    rank: impl Fn(&QualifiedName) -> usize,
) -> Ordering {
    let components = strongly_connected(tables, relations);
    let component_of: BTreeMap<&QualifiedName, usize> = components
        .iter()
        .enumerate()
        .flat_map(|(index, members)| members.iter().map(move |table| (table, index)))
        .collect();

    // Kahn's algorithm on the graph of components.
    let mut depends_on: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components.len()];
    let mut dependents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components.len()];
    for relation in relations {
        let (Some(&child), Some(&parent)) = (
            component_of.get(&relation.child),
            component_of.get(&relation.parent),
        ) else {
            continue;
        };
        if child != parent {
            depends_on[child].insert(parent);
            dependents[parent].insert(child);
        }
    }
    let component_rank = |index: usize| {
        let members = &components[index];
        (
            members.iter().map(&rank).min().unwrap_or(0),
            members[0].clone(),
        )
    };
    let mut ready: BTreeSet<((usize, QualifiedName), usize)> = (0..components.len())
        .filter(|&index| depends_on[index].is_empty())
        .map(|index| (component_rank(index), index))
        .collect();
    let mut groups = Vec::with_capacity(components.len());
    while let Some(entry) = ready.pop_first() {
        let index = entry.1;
        groups.push(components[index].clone());
        for &dependent in &dependents[index] {
            depends_on[dependent].remove(&index);
            if depends_on[dependent].is_empty() {
                ready.insert((component_rank(dependent), dependent));
            }
        }
    }
    Ordering { groups }
}

/// Tarjan's algorithm, iterative. Members of each component come out sorted by name.
fn strongly_connected(
    tables: &BTreeSet<QualifiedName>,
    relations: &[&Relation],
) -> Vec<Vec<QualifiedName>> {
    let nodes: Vec<&QualifiedName> = tables.iter().collect();
    let index_of: BTreeMap<&QualifiedName, usize> = nodes
        .iter()
        .enumerate()
        .map(|(index, name)| (*name, index))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for relation in relations {
        if let (Some(&child), Some(&parent)) = (
            index_of.get(&relation.child),
            index_of.get(&relation.parent),
        ) {
            if child != parent {
                edges[child].push(parent);
            }
        }
    }

    let mut next_index = 0;
    let mut index: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut lowlink = vec![0; nodes.len()];
    let mut on_stack = vec![false; nodes.len()];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    for start in 0..nodes.len() {
        if index[start].is_some() {
            continue;
        }
        // (node, next edge to look at)
        let mut work = vec![(start, 0)];
        while let Some(&mut (node, ref mut edge)) = work.last_mut() {
            if *edge == 0 && index[node].is_none() {
                index[node] = Some(next_index);
                lowlink[node] = next_index;
                next_index += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            if let Some(&target) = edges[node].get(*edge) {
                *edge += 1;
                match index[target] {
                    None => work.push((target, 0)),
                    Some(target_index) if on_stack[target] => {
                        lowlink[node] = lowlink[node].min(target_index);
                    }
                    Some(_) => {}
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                lowlink[parent] = lowlink[parent].min(lowlink[node]);
            }
            if Some(lowlink[node]) == index[node] {
                let mut members = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    members.push(nodes[member].clone());
                    if member == node {
                        break;
                    }
                }
                members.sort();
                components.push(members);
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use salvage_catalog::QualifiedName;

    use super::order;
    use crate::graph::{Relation, RelationOrigin};

    fn name(table: &str) -> QualifiedName {
        QualifiedName::new("public", table)
    }

    fn fk(child: &str, parent: &str) -> Relation {
        Relation {
            name: format!("{child}_{parent}"),
            origin: RelationOrigin::DeclaredFk,
            child: name(child),
            child_columns: vec!["x".into()],
            parent: name(parent),
            parent_columns: vec!["id".into()],
            condition: None,
            deferrable: false,
            initially_deferred: false,
        }
    }

    fn names(groups: &[Vec<QualifiedName>]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|group| group.iter().map(|t| t.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn parents_come_first() {
        let relations = [
            fk("comments", "issues"),
            fk("issues", "sites"),
            fk("issues", "issues"),
            fk("comments", "users"),
        ];
        let refs: Vec<&Relation> = relations.iter().collect();
        let tables: BTreeSet<_> = ["comments", "issues", "sites", "users"].map(name).into();
        let ordering = order(&tables, &refs, |_| 0);
        assert_eq!(
            names(&ordering.groups),
            [
                vec!["sites"],
                vec!["issues"],
                vec!["users"],
                vec!["comments"]
            ]
        );
    }

    #[test]
    fn cycles_come_out_as_one_group() {
        let relations = [fk("a", "b"), fk("b", "a"), fk("c", "a"), fk("a", "root")];
        let refs: Vec<&Relation> = relations.iter().collect();
        let tables: BTreeSet<_> = ["a", "b", "c", "root"].map(name).into();
        let ordering = order(&tables, &refs, |_| 0);
        assert_eq!(
            names(&ordering.groups),
            [vec!["root"], vec!["a", "b"], vec!["c"]]
        );
    }

    #[test]
    fn rank_breaks_ties() {
        let tables: BTreeSet<_> = ["a", "b"].map(name).into();
        let ordering = order(&tables, &[], |table| usize::from(table.name == "a"));
        assert_eq!(names(&ordering.groups), [vec!["b"], vec!["a"]]);
    }
}
