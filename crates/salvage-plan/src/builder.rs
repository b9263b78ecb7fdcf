//! Building the schema plan from the live and snapshot catalogs and the user's options.

use std::collections::{BTreeMap, BTreeSet};

use salvage_catalog::{Catalog, Identity, QualifiedName, Table};

use crate::graph::{self, Folding, Relation, RelationOrigin};
use crate::model::{
    ConfiguredRelation, CycleBreak, DeferredConstraint, Note, NoteLevel, Ownership, PlanOptions,
    Role, RootInfo, SchemaPlan, SequencePlan, TablePlan,
};
use crate::{Error, Result, cycles, membership, order, ownership, validate};

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

    /// A relation that ties an owned table's rows to their tenants, on columns live has no
    /// index on, is followed by reading the whole table, on every plan and verification: the
    /// one cost of a restore that grows with live's size. Named, since salvage creates no
    /// index itself.
    fn note_unindexed(&mut self, tables: &[TablePlan]) {
        for table in tables.iter().filter(|table| table.role == Role::Owned) {
            let Some(live) = self.live.table(&table.name) else {
                continue;
            };
            for relation in &table.parents {
                if live.has_index_starting_with_any(&relation.child_columns) {
                    continue;
                }
                self.notes.push(Note::new(
                    NoteLevel::Info,
                    &table.name,
                    format!(
                        "live has no index on ({}), which ties its rows to their tenants through \
                         {}: each plan and verification reads the whole table to follow it \
                         (an index on these columns would make it a probe)",
                        relation.child_columns.join(", "),
                        relation.parent
                    ),
                ));
            }
        }
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
        let owned: BTreeSet<QualifiedName> = chains.keys().cloned().collect();

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
                if role == Role::Owned {
                    table.parents =
                        membership::parents_of(name, &self.root.table, &owned, &relations);
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
        self.note_unindexed(&tables);
        let membership = membership::group(&mut tables, &self.root.table);
        for group in membership.iter().filter(|group| group.recursive) {
            for &index in &group.tables {
                let table = &tables[index];
                if table.key.is_none() && table.in_live {
                    let members: Vec<String> = group
                        .tables
                        .iter()
                        .map(|&index| tables[index].name.to_string())
                        .collect();
                    return Err(Error::NoKey {
                        table: table.name.clone(),
                        reason: format!(
                            "its rows reach tenants through rows of their own ({}), which are told apart by their key",
                            members.join(", ")
                        ),
                    });
                }
            }
        }
        let deferred: Vec<DeferredConstraint> = planned
            .deferred
            .iter()
            .map(|relation| DeferredConstraint {
                table: relation.child.clone(),
                name: relation.name.clone(),
            })
            .collect();
        let phases = phases(&tables, &steps, &deferred);
        let unrelated: Vec<QualifiedName> = nodes
            .iter()
            .filter(|name| !members.contains(*name))
            .cloned()
            .collect();
        for name in &unrelated {
            self.point_out_tenant_like_columns(name);
        }
        Ok(SchemaPlan {
            root: self.root,
            tables,
            steps,
            phases,
            cycles: planned.cycles,
            deferred,
            membership,
            relations,
            forced_shared: self.options.shared.clone(),
            unrelated,
            excluded: excluded.into_iter().collect(),
            notes: self.notes,
        })
    }

    /// A table left alone with a column that looks like the tenant key may be one the user
    /// forgot to name with `--tenant-column`: the plan says so.
    fn point_out_tenant_like_columns(&mut self, name: &QualifiedName) {
        let Some(table) = self.table(name) else {
            return;
        };
        for column in validate::tenant_like_columns(table, &self.root) {
            self.notes.push(Note {
                level: NoteLevel::Warning,
                table: None,
                message: format!(
                    "{name} has {column} but is left alone; add --tenant-column {column}?"
                ),
            });
        }
    }

    /// Declared FKs of every table (live first; the snapshot's for tables only it has),
    /// configured relations and tenant columns.
    fn relations(&mut self, nodes: &BTreeSet<QualifiedName>) -> Result<Vec<Relation>> {
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
        self.check_tenant_columns(nodes)?;
        for name in nodes {
            if name == &self.root.table {
                continue;
            }
            let Some(table) = self.table(name) else {
                continue;
            };
            for column in &self.options.tenant_columns {
                if table.column(column).is_some() {
                    // A declared FK on the same column already says it: one relation, not two.
                    graph::push_unique(
                        &mut relations,
                        Relation {
                            name: format!("tenant column {column}"),
                            origin: RelationOrigin::TenantColumn,
                            child: name.clone(),
                            child_columns: vec![column.clone()],
                            parent: self.root.table.clone(),
                            parent_columns: vec![self.root.key_column.clone()],
                            condition: None,
                            deferrable: false,
                            initially_deferred: false,
                        },
                    );
                }
            }
        }
        Ok(relations
            .into_iter()
            .filter(|relation| self.usable(relation))
            .collect())
    }

    /// Every `--tenant-column` names a column some table has, of a type that holds the root
    /// key's values: a typo would otherwise leave a table's rows behind without a word.
    fn check_tenant_columns(&self, nodes: &BTreeSet<QualifiedName>) -> Result<()> {
        let tables: Vec<&Table> = nodes
            .iter()
            .filter(|name| **name != self.root.table)
            .filter_map(|name| self.table(name))
            .collect();
        validate::tenant_columns(&self.options.tenant_columns, &tables, &self.root)
    }

    /// A relation can be followed when its columns exist in its tables, on every side that
    /// has both tables. One that cannot (a column dropped or added since the snapshot) is
    /// noted and left out.
    fn usable(&mut self, relation: &Relation) -> bool {
        let mut missing = Vec::new();
        for (side, catalog) in [("live", self.live), ("snapshot", self.snapshot)] {
            let (Some(child), Some(parent)) = (
                catalog.table(&relation.child),
                catalog.table(&relation.parent),
            ) else {
                continue;
            };
            let condition = relation.condition.iter().map(|condition| &condition.column);
            for column in relation.child_columns.iter().chain(condition) {
                if child.column(column).is_none() {
                    missing.push(format!("{side} has no column {}.{column}", relation.child));
                }
            }
            for column in &relation.parent_columns {
                if parent.column(column).is_none() {
                    missing.push(format!("{side} has no column {}.{column}", relation.parent));
                }
            }
        }
        if missing.is_empty() {
            return true;
        }
        self.notes.push(Note::new(
            NoteLevel::Warning,
            &relation.child,
            format!(
                "{} is not followed: {}",
                relation.describe_short(),
                missing.join("; ")
            ),
        ));
        false
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
        let ownership = chain
            .filter(|chain| !chain.is_empty())
            .map(|chain| Ownership { chain });
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
            parents: Vec::new(),
            guards: Vec::new(),
            exports: Vec::new(),
        })
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
        .ok_or_else(|| Error::RootKey {
            table: name.clone(),
            reason: format!("has a primary key on {key_column}, a column it does not have"),
        })?;
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

/// Steps grouped into phases: a guarded relation checked at commit that points from a step to
/// a later one joins every step from the child's to the parent's (see `SchemaPlan::phases`).
fn phases(
    tables: &[TablePlan],
    steps: &[Vec<usize>],
    deferred: &[DeferredConstraint],
) -> Vec<Vec<usize>> {
    let step_of = |name: &QualifiedName| {
        steps
            .iter()
            .position(|step| step.iter().any(|&index| &tables[index].name == name))
    };
    // For each step, the last step it must be decided with.
    let mut reach: Vec<usize> = (0..steps.len()).collect();
    for table in tables {
        for relation in &table.guards {
            let is_deferred = deferred.iter().any(|constraint| {
                constraint.table == relation.child && constraint.name == relation.name
            });
            if !is_deferred {
                continue;
            }
            if let (Some(child), Some(parent)) =
                (step_of(&relation.child), step_of(&relation.parent))
            {
                let (first, last) = (child.min(parent), child.max(parent));
                reach[first] = reach[first].max(last);
            }
        }
    }
    let mut phases = Vec::new();
    let mut step = 0;
    while step < steps.len() {
        let mut last = reach[step];
        let mut next = step;
        while next <= last {
            last = last.max(reach[next]);
            next += 1;
        }
        phases.push((step..next).collect());
        step = next;
    }
    phases
}
