//! Building the schema plan from the live and snapshot catalogs and the user's options.

use std::collections::{BTreeMap, BTreeSet};

use salvage_catalog::{Catalog, Identity, QualifiedName, Table};

use crate::graph::{self, Folding, Relation, RelationOrigin};
use crate::model::{
    ConfiguredRelation, CycleBreak, DeferredConstraint, Note, NoteLevel, Ownership, PlanOptions,
    Role, RootInfo, SchemaPlan, SequencePlan, TablePlan,
};
use crate::ownership::Chains;
use crate::{Error, Result, cycles, order, ownership};

pub fn build(live: &Catalog, snapshot: &Catalog, options: &PlanOptions) -> Result<SchemaPlan> {
    Builder::new(live, snapshot, options)?.build()
}

struct Builder<'a> {
    live: &'a Catalog,
    snapshot: &'a Catalog,
    options: &'a PlanOptions,
    folding: Folding,
    root: RootInfo,
    notes: Vec<Note>,
}

impl<'a> Builder<'a> {
    fn new(live: &'a Catalog, snapshot: &'a Catalog, options: &'a PlanOptions) -> Result<Self> {
        let folding = Folding::new(&[live, snapshot]);
        let root = root_info(live, snapshot, &options.root)?;
        Ok(Self {
            live,
            snapshot,
            options,
            folding,
            root,
            notes: Vec::new(),
        })
    }

    /// The table as planning sees it: from live when it exists there, else from the snapshot.
    fn table(&self, name: &QualifiedName) -> Option<&'a Table> {
        self.live.table(name).or_else(|| self.snapshot.table(name))
    }

    fn build(mut self) -> Result<SchemaPlan> {
        let excluded: BTreeSet<QualifiedName> = self.options.exclude.iter().cloned().collect();
        for name in self.options.exclude.iter().chain(&self.options.shared) {
            if self.table(name).is_none() {
                return Err(Error::UnknownTable {
                    table: name.clone(),
                });
            }
        }
        let nodes: BTreeSet<QualifiedName> = self
            .live
            .tables
            .keys()
            .chain(self.snapshot.tables.keys())
            .filter(|name| !self.folding.is_partition(name) && !excluded.contains(name))
            .cloned()
            .collect();
        let relations = self.relations(&nodes)?;

        let mut never_owned: BTreeSet<QualifiedName> =
            self.options.shared.iter().cloned().collect();
        never_owned.extend(excluded.iter().cloned());
        let chains = ownership::assign(
            &self.root.table,
            &relations,
            &never_owned,
            |table, columns| {
                self.table(table).is_some_and(|table| {
                    columns
                        .iter()
                        .all(|name| table.column(name).is_some_and(|column| column.not_null))
                })
            },
        );
        let shared = ownership::shared_tables(&chains, &relations, &excluded);

        let members: BTreeSet<QualifiedName> =
            chains.keys().chain(shared.iter()).cloned().collect();
        let declared: Vec<&Relation> = relations
            .iter()
            .filter(|relation| {
                relation.origin == RelationOrigin::DeclaredFk
                    && members.contains(&relation.child)
                    && members.contains(&relation.parent)
            })
            .collect();
        let rank = |name: &QualifiedName| -> usize {
            if shared.contains(name) {
                0
            } else {
                1 + chains.get(name).map_or(0, Vec::len)
            }
        };
        let ordering = order::order(&members, &declared, rank);
        let planned = cycles::steps(ordering.groups, &declared, &rank);

        let mut tables = Vec::new();
        let mut steps = Vec::new();
        for step in &planned.order {
            let mut indexes = Vec::new();
            for name in step {
                let role = if *name == self.root.table {
                    Role::Root
                } else if chains.contains_key(name) {
                    Role::Owned
                } else {
                    Role::Shared
                };
                let chain = chains.get(name).cloned();
                let mut table = self.table_plan(name, role, chain, &relations, &shared)?;
                if role != Role::Shared {
                    self.add_secondary_chains(&mut table, &chains, &relations);
                }
                indexes.push(tables.len());
                tables.push(table);
            }
            steps.push(indexes);
        }
        for cycle in &planned.cycles {
            Self::check_cycle(cycle, &tables)?;
            self.notes.push(Note {
                level: NoteLevel::Info,
                table: None,
                message: cycle.describe(),
            });
        }
        let deferred = planned
            .deferred
            .iter()
            .map(|relation| DeferredConstraint {
                table: relation.child.clone(),
                name: relation.name.clone(),
            })
            .collect();
        let unrelated: Vec<QualifiedName> = nodes
            .iter()
            .filter(|name| !members.contains(*name))
            .cloned()
            .collect();
        Ok(SchemaPlan {
            root: self.root,
            tables,
            steps,
            cycles: planned.cycles,
            deferred,
            unrelated,
            excluded: excluded.into_iter().collect(),
            notes: self.notes,
        })
    }

    /// Declared FKs of every table (live first; the snapshot's for tables only it has),
    /// configured relations and tenant columns.
    fn relations(&self, nodes: &BTreeSet<QualifiedName>) -> Result<Vec<Relation>> {
        let mut relations = Vec::new();
        let from_live = self.live.tables.values();
        let only_in_snapshot = self.snapshot.tables.values().filter(|table| {
            self.live
                .table(&self.folding.resolve(&table.name))
                .is_none()
        });
        for table in from_live.chain(only_in_snapshot) {
            for relation in graph::declared_relations(table, &self.folding) {
                if nodes.contains(&relation.child) && nodes.contains(&relation.parent) {
                    graph::push_unique(&mut relations, relation);
                }
            }
        }
        for configured in &self.options.relations {
            relations.push(self.configured_relation(configured)?);
        }
        for name in nodes {
            if name == &self.root.table {
                continue;
            }
            let Some(table) = self.table(name) else {
                continue;
            };
            for column in &self.options.tenant_columns {
                if table.column(column).is_some() {
                    relations.push(Relation {
                        name: format!("tenant column {column}"),
                        origin: RelationOrigin::TenantColumn,
                        child: name.clone(),
                        child_columns: vec![column.clone()],
                        parent: self.root.table.clone(),
                        parent_columns: vec![self.root.key_column.clone()],
                        condition: None,
                        deferrable: false,
                        initially_deferred: false,
                    });
                }
            }
        }
        Ok(relations)
    }

    fn configured_relation(&self, configured: &ConfiguredRelation) -> Result<Relation> {
        let describe = || {
            format!(
                "{}({}) → {}({})",
                configured.child,
                configured.child_columns.join(", "),
                configured.parent,
                configured.parent_columns.join(", ")
            )
        };
        let bad = |reason: String| Error::BadRelation {
            relation: describe(),
            reason,
        };
        if configured.child_columns.len() != configured.parent_columns.len()
            || configured.child_columns.is_empty()
        {
            return Err(bad("both sides need the same number of columns".to_owned()));
        }
        for (table_name, columns) in [
            (&configured.child, &configured.child_columns),
            (&configured.parent, &configured.parent_columns),
        ] {
            let table = self
                .live
                .table(table_name)
                .ok_or_else(|| bad(format!("{table_name} does not exist in the live database")))?;
            for column in columns {
                if table.column(column).is_none() {
                    return Err(bad(format!("{table_name} has no column {column}")));
                }
            }
        }
        if let Some(condition) = &configured.condition {
            let has_column = self
                .live
                .table(&configured.child)
                .is_some_and(|table| table.column(&condition.column).is_some());
            if !has_column {
                return Err(bad(format!(
                    "{} has no column {}",
                    configured.child, condition.column
                )));
            }
        }
        Ok(Relation {
            name: format!("configured {}", describe()),
            origin: RelationOrigin::Config,
            child: self.folding.resolve(&configured.child),
            child_columns: configured.child_columns.clone(),
            parent: self.folding.resolve(&configured.parent),
            parent_columns: configured.parent_columns.clone(),
            condition: configured.condition.clone(),
            deferrable: false,
            initially_deferred: false,
        })
    }

    /// A cycle inserted in one statement relies on ON CONFLICT against each table's key, and
    /// every table of it must be writable.
    fn check_cycle(cycle: &crate::model::Cycle, tables: &[TablePlan]) -> Result<()> {
        if cycle.broken_by != CycleBreak::OneStatement {
            return Ok(());
        }
        for name in &cycle.tables {
            let Some(table) = tables.iter().find(|table| &table.name == name) else {
                continue;
            };
            if table.in_snapshot && !table.in_live {
                return Err(Error::Cycle {
                    tables: cycle.tables.clone(),
                    reason: format!("{name} exists only in the snapshot"),
                });
            }
            if table.in_live && table.key.is_none() {
                return Err(Error::Cycle {
                    tables: cycle.tables.clone(),
                    reason: format!(
                        "{name} has no primary or unique NOT NULL key to insert its rows by"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Other relations from `table` to owned tables lead to a tenant too. A row belongs to
    /// every tenant its chains lead to, and is inserted only when the parents of all of them
    /// are present. A relation that carries the tenant column itself (`issues(site_id,
    /// project_no) → projects`) cannot lead elsewhere and is not one.
    fn add_secondary_chains(
        &mut self,
        table: &mut TablePlan,
        chains: &Chains,
        relations: &[Relation],
    ) {
        let Some(primary) = table.ownership.clone() else {
            return;
        };
        let Some(first) = primary.chain.first() else {
            return;
        };
        let direct_tenant_column = primary
            .joins
            .is_empty()
            .then_some(primary.tenant_column.as_str());
        let candidates: Vec<&Relation> = relations
            .iter()
            .filter(|relation| {
                relation.child == table.name
                    && !relation.is_self_reference()
                    && relation.origin != RelationOrigin::TenantColumn
                    && chains.contains_key(&relation.parent)
                    && !same_relation(relation, first)
                    && !direct_tenant_column
                        .is_some_and(|column| relation.child_columns.iter().any(|c| c == column))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        if table.key.is_none() {
            self.notes.push(Note::new(
                NoteLevel::Warning,
                &table.name,
                "has no key: its rows follow only the path shown, not its other references to tenants".to_owned(),
            ));
            return;
        }
        for relation in candidates {
            let mut chain = vec![relation.clone()];
            chain.extend(chains[&relation.parent].iter().cloned());
            table.secondary.push(Ownership::new(chain, &self.root));
        }
        table.guards = std::iter::once(first)
            .chain(
                table
                    .secondary
                    .iter()
                    .filter_map(|ownership| ownership.chain.first()),
            )
            .filter(|relation| relation.origin == RelationOrigin::DeclaredFk)
            .cloned()
            .collect();
    }

    fn table_plan(
        &mut self,
        name: &QualifiedName,
        role: Role,
        chain: Option<Vec<Relation>>,
        relations: &[Relation],
        shared: &BTreeSet<QualifiedName>,
    ) -> Result<TablePlan> {
        let live = self.live.table(name);
        let snapshot = self.snapshot.table(name);
        let columns = match snapshot {
            Some(snapshot) => crate::columns::map_columns(name, live, snapshot, &mut self.notes)?,
            None => Vec::new(),
        };
        match (live.is_some(), snapshot.is_some()) {
            (true, false) => self.notes.push(Note::new(
                NoteLevel::Info,
                name,
                "exists only in live (created after the snapshot): nothing to restore".to_owned(),
            )),
            (false, true) => self.notes.push(Note::new(
                NoteLevel::Warning,
                name,
                "exists only in the snapshot: its rows cannot be placed in live".to_owned(),
            )),
            _ => {}
        }
        let ownership = chain.map(|chain| Ownership::new(chain, &self.root));
        if let (Some(ownership), Some(snapshot)) = (&ownership, snapshot) {
            self.check_path_in_snapshot(name, snapshot, ownership)?;
        }
        let key = live.and_then(Table::identity_key).cloned();
        if let (Some(key), true) = (&key, snapshot.is_some()) {
            if let Some(missing) = key.columns.iter().find(|column| {
                !columns
                    .iter()
                    .any(|plan| &plan.name == *column && plan.write)
            }) {
                return Err(Error::NoKey {
                    table: name.clone(),
                    reason: format!("its key column {missing} is not in the snapshot"),
                });
            }
        }
        let written = |column: &str| columns.iter().any(|plan| plan.name == column && plan.write);
        let (identity_always, sequences) = live.map_or((false, Vec::new()), |live| {
            let identity_always = live
                .columns
                .iter()
                .any(|column| column.identity == Some(Identity::Always) && written(&column.name));
            let sequences = live
                .columns
                .iter()
                .filter(|column| written(&column.name))
                .filter_map(|column| {
                    column.sequence.as_ref().map(|sequence| SequencePlan {
                        column: column.name.clone(),
                        sequence: sequence.name.clone(),
                        increment: sequence.increment,
                    })
                })
                .collect();
            (identity_always, sequences)
        });
        let shared_references = relations
            .iter()
            // A shared table's references to itself count: a missing user invited by another
            // missing user brings that one along too.
            .filter(|relation| &relation.child == name && shared.contains(&relation.parent))
            .cloned()
            .collect();
        let references = relations
            .iter()
            .filter(|relation| {
                &relation.child == name && relation.origin == RelationOrigin::DeclaredFk
            })
            .cloned()
            .collect();
        Ok(TablePlan {
            name: name.clone(),
            role,
            ownership,
            in_live: live.is_some(),
            in_snapshot: snapshot.is_some(),
            columns,
            key,
            identity_always,
            sequences,
            shared_references,
            references,
            secondary: Vec::new(),
            guards: Vec::new(),
        })
    }

    /// The columns a snapshot query joins on must exist in the snapshot.
    fn check_path_in_snapshot(
        &self,
        name: &QualifiedName,
        snapshot: &Table,
        ownership: &Ownership,
    ) -> Result<()> {
        let mut table = snapshot;
        for relation in &ownership.joins {
            for column in &relation.child_columns {
                if table.column(column).is_none() {
                    return Err(Error::PathNotInSnapshot {
                        table: name.clone(),
                        reason: format!("{} has no column {column}", table.name),
                    });
                }
            }
            table =
                self.snapshot
                    .table(&relation.parent)
                    .ok_or_else(|| Error::PathNotInSnapshot {
                        table: name.clone(),
                        reason: format!("the snapshot has no table {}", relation.parent),
                    })?;
            for column in &relation.parent_columns {
                if table.column(column).is_none() {
                    return Err(Error::PathNotInSnapshot {
                        table: name.clone(),
                        reason: format!("{} has no column {column}", table.name),
                    });
                }
            }
        }
        if table.column(&ownership.tenant_column).is_none() {
            return Err(Error::PathNotInSnapshot {
                table: name.clone(),
                reason: format!("{} has no column {}", table.name, ownership.tenant_column),
            });
        }
        Ok(())
    }
}

/// The root must exist on both sides with a single-column primary key.
fn root_info(live: &Catalog, snapshot: &Catalog, name: &QualifiedName) -> Result<RootInfo> {
    let table = live.table(name).ok_or_else(|| Error::RootMissing {
        table: name.clone(),
        side: "live",
    })?;
    let snapshot_table = snapshot.table(name).ok_or_else(|| Error::RootMissing {
        table: name.clone(),
        side: "snapshot",
    })?;
    if table.partition_of.is_some() {
        return Err(Error::RootKey {
            table: name.clone(),
            reason: "is a partition; name its partitioned table instead".to_owned(),
        });
    }
    let key = table.primary_key.as_ref().ok_or_else(|| Error::RootKey {
        table: name.clone(),
        reason: "has no primary key in the live database".to_owned(),
    })?;
    let [key_column] = key.columns.as_slice() else {
        return Err(Error::RootKey {
            table: name.clone(),
            reason: format!(
                "has a primary key of {} columns ({}); tenant IDs need a single-column key",
                key.columns.len(),
                key.columns.join(", ")
            ),
        });
    };
    if snapshot_table.column(key_column).is_none() {
        return Err(Error::RootKey {
            table: name.clone(),
            reason: format!("has no column {key_column} in the snapshot"),
        });
    }
    let key_type = table
        .column(key_column)
        .map(|column| column.type_name.clone())
        .unwrap_or_default();
    Ok(RootInfo {
        table: name.clone(),
        key_column: key_column.clone(),
        key_type,
        label_column: label_column(table, snapshot_table, key_column),
    })
}

/// The first single-column unique key on a NOT NULL text column, else the first NOT NULL text
/// column; it must exist in the snapshot, where labels are read.
fn label_column(live: &Table, snapshot: &Table, key_column: &str) -> Option<String> {
    let is_text = |name: &str| {
        live.column(name).is_some_and(|column| {
            column.not_null
                && (column.type_name == "text"
                    || column.type_name.starts_with("character varying")
                    || column.type_name == "citext")
        }) && snapshot.column(name).is_some()
            && name != key_column
    };
    let unique: BTreeMap<usize, &str> = live
        .unique_keys
        .iter()
        .filter_map(|key| match key.columns.as_slice() {
            [column] if is_text(column) => live
                .columns
                .iter()
                .position(|c| &c.name == column)
                .map(|index| (index, column.as_str())),
            _ => None,
        })
        .collect();
    unique
        .values()
        .next()
        .map(|name| (*name).to_owned())
        .or_else(|| {
            live.columns
                .iter()
                .find(|column| is_text(&column.name))
                .map(|column| column.name.clone())
        })
}

fn same_relation(a: &Relation, b: &Relation) -> bool {
    a.child == b.child
        && a.parent == b.parent
        && a.child_columns == b.child_columns
        && a.condition == b.condition
}
