//! Turning the insertion order's groups into insert steps. A group of tables that reference
//! each other in a cycle is broken, in this order of preference:
//! 1. by deferring its deferrable foreign keys to commit (`SET CONSTRAINTS ... DEFERRED` in
//!    the tenant's transaction), when what remains has no cycle: the tables then go in one by
//!    one, parents first;
//! 2. otherwise by inserting the tables that still form a cycle in one statement (writable
//!    CTEs): PostgreSQL checks non-deferrable foreign keys at the end of the statement, when
//!    every row of the cycle is there — which works even when no edge is nullable.

use std::collections::BTreeSet;

use salvage_catalog::QualifiedName;

use crate::graph::Relation;
use crate::model::{Cycle, CycleBreak};
use crate::order;

#[derive(Debug, Default)]
pub struct Steps {
    /// Insert steps in order; a step of several tables is one statement.
    pub order: Vec<Vec<QualifiedName>>,
    pub cycles: Vec<Cycle>,
    /// Deferrable constraints to set DEFERRED.
    pub deferred: Vec<Relation>,
}

/// `groups` come from [`order::order`]; `declared` are the enforced foreign keys between the
/// plan's tables.
pub fn steps(
    groups: Vec<Vec<QualifiedName>>,
    declared: &[&Relation],
    rank: &impl Fn(&QualifiedName) -> usize,
) -> Steps {
    let mut result = Steps::default();
    for group in groups {
        if group.len() == 1 {
            result.order.push(group);
            continue;
        }
        let members: BTreeSet<QualifiedName> = group.iter().cloned().collect();
        let internal = |within: &BTreeSet<QualifiedName>| -> Vec<Relation> {
            declared
                .iter()
                .filter(|relation| {
                    !relation.is_self_reference()
                        && within.contains(&relation.child)
                        && within.contains(&relation.parent)
                })
                .map(|relation| (*relation).clone())
                .collect()
        };
        let relations = internal(&members);
        let (deferrable, remaining): (Vec<&Relation>, Vec<&Relation>) =
            relations.iter().partition(|relation| relation.deferrable);
        let sub = order::order(&members, &remaining, rank);
        if !deferrable.is_empty() {
            result
                .deferred
                .extend(deferrable.iter().map(|relation| (*relation).clone()));
            if sub.groups.iter().all(|group| group.len() == 1) {
                result.cycles.push(Cycle {
                    tables: group.clone(),
                    relations: relations.clone(),
                    broken_by: CycleBreak::Deferred {
                        constraints: deferrable
                            .iter()
                            .map(|relation| relation.name.clone())
                            .collect(),
                    },
                });
            }
        }
        for step in sub.groups {
            if step.len() > 1 {
                let within: BTreeSet<QualifiedName> = step.iter().cloned().collect();
                result.cycles.push(Cycle {
                    tables: step.clone(),
                    relations: internal(&within)
                        .into_iter()
                        .filter(|relation| !relation.deferrable)
                        .collect(),
                    broken_by: CycleBreak::OneStatement,
                });
            }
            result.order.push(step);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use salvage_catalog::QualifiedName;

    use super::steps;
    use crate::graph::{Relation, RelationOrigin};
    use crate::model::CycleBreak;
    use crate::order::order;

    fn name(table: &str) -> QualifiedName {
        QualifiedName::new("public", table)
    }

    fn fk(child: &str, parent: &str, deferrable: bool) -> Relation {
        Relation {
            name: format!("{child}_{parent}_fkey"),
            origin: RelationOrigin::DeclaredFk,
            child: name(child),
            child_columns: vec!["x".into()],
            parent: name(parent),
            parent_columns: vec!["id".into()],
            condition: None,
            deferrable,
            initially_deferred: false,
        }
    }

    fn plan(relations: &[Relation]) -> super::Steps {
        let tables: BTreeSet<QualifiedName> = relations
            .iter()
            .flat_map(|relation| [relation.child.clone(), relation.parent.clone()])
            .collect();
        let refs: Vec<&Relation> = relations.iter().collect();
        let groups = order(&tables, &refs, |_| 0).groups;
        steps(groups, &refs, &|_| 0)
    }

    fn names(steps: &[Vec<QualifiedName>]) -> Vec<Vec<&str>> {
        steps
            .iter()
            .map(|step| step.iter().map(|table| table.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn a_deferrable_edge_breaks_its_cycle() {
        // accounts.default_team → teams (deferrable), teams.account → accounts
        let result = plan(&[
            fk("accounts", "teams", true),
            fk("teams", "accounts", false),
        ]);
        assert_eq!(names(&result.order), [vec!["accounts"], vec!["teams"]]);
        assert_eq!(result.deferred.len(), 1);
        assert_eq!(
            result.cycles[0].broken_by,
            CycleBreak::Deferred {
                constraints: vec!["accounts_teams_fkey".into()]
            }
        );
    }

    #[test]
    fn a_cycle_without_deferrable_edges_is_one_statement() {
        let result = plan(&[
            fk("folders", "docs", false),
            fk("docs", "folders", false),
            fk("docs", "docs", false),
        ]);
        assert_eq!(names(&result.order), [vec!["docs", "folders"]]);
        assert_eq!(result.cycles[0].broken_by, CycleBreak::OneStatement);
        assert!(result.deferred.is_empty());
    }

    #[test]
    fn deferring_part_of_a_cycle_leaves_the_rest_together() {
        // a → b (deferrable), b → c, c → a: deferring a→b leaves b → c → a, no cycle.
        let result = plan(&[fk("a", "b", true), fk("b", "c", false), fk("c", "a", false)]);
        assert_eq!(names(&result.order), [vec!["a"], vec!["c"], vec!["b"]]);
        // a ↔ b both ways with only one deferrable edge, plus b ↔ c without any.
        let result = plan(&[
            fk("a", "b", true),
            fk("b", "a", false),
            fk("b", "c", false),
            fk("c", "b", false),
        ]);
        assert!(
            names(&result.order).contains(&vec!["b", "c"]),
            "{:?}",
            names(&result.order)
        );
        assert!(
            result
                .cycles
                .iter()
                .any(|cycle| cycle.broken_by == CycleBreak::OneStatement)
        );
    }
}
