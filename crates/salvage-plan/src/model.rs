//! The schema plan's types: what the rest of salvage reads.

use salvage_catalog::{Catalog, Key, QualifiedName};
use serde::{Deserialize, Serialize};

use crate::Result;
pub use crate::columns::ColumnPlan;
use crate::graph::{Condition, Relation, RelationOrigin};

/// What the user said about the tenant model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// The table whose primary-key values are tenant IDs.
    pub root: QualifiedName,
    /// Columns that mark a table as owned, holding the tenant ID, with or without an FK.
    pub tenant_columns: Vec<String>,
    /// Relations the schema does not declare.
    pub relations: Vec<ConfiguredRelation>,
    /// Tables to leave out of the plan entirely.
    pub exclude: Vec<QualifiedName>,
    /// Tables never to treat as owned, even when a chain of FKs leads to the root.
    pub shared: Vec<QualifiedName>,
    /// What a restore does to the chosen tenants' rows live already has. Not written when
    /// `missing`, so plans and runs of earlier versions keep their digests.
    #[serde(default, skip_serializing_if = "Mode::is_missing")]
    pub mode: Mode,
}

/// What a restore does besides adding the rows live lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Add the chosen tenants' rows live lacks; keep every live row as it is.
    #[default]
    Missing,
    /// Also set the chosen tenants' owned rows that differ from the snapshot back to the
    /// snapshot's values. Rows written after the snapshot stay; shared rows, and rows that
    /// reach a tenant not chosen, are never changed.
    Overwrite,
    /// Overwrite, and delete the chosen tenants' owned rows the snapshot does not have
    /// (children first): each tenant as the snapshot had it.
    Exact,
}

impl Mode {
    /// The mode's name, as flags, salvage.toml and reports write it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Overwrite => "overwrite",
            Self::Exact => "exact",
        }
    }

    /// The default: nothing live has is changed.
    #[must_use]
    #[allow(clippy::trivially_copy_pass_by_ref)]
    pub fn is_missing(&self) -> bool {
        *self == Self::Missing
    }

    /// Whether rows live has are changed: updated, or (exact) deleted.
    #[must_use]
    pub fn changes_live_rows(self) -> bool {
        self != Self::Missing
    }

    /// Whether live-only rows of the tenants are deleted.
    #[must_use]
    pub fn deletes(self) -> bool {
        self == Self::Exact
    }
}

impl PlanOptions {
    #[must_use]
    pub fn new(root: QualifiedName) -> Self {
        Self {
            root,
            tenant_columns: Vec::new(),
            relations: Vec::new(),
            exclude: Vec::new(),
            shared: Vec::new(),
            mode: Mode::Missing,
        }
    }
}

/// `child(columns) → parent(columns)` from salvage.toml, optionally only for child rows whose
/// column equals a value (polymorphic references).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredRelation {
    pub child: QualifiedName,
    pub child_columns: Vec<String>,
    pub parent: QualifiedName,
    pub parent_columns: Vec<String>,
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The tenant root table itself.
    Root,
    /// Reaches the root through a chain of relations: a tenant's rows are restored whole.
    Owned,
    /// Referenced by owned rows: only the referenced rows missing in live are restored.
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteLevel {
    Info,
    Warning,
}

/// Something the plan wants a human to know: drift, cycles, tables left alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub level: NoteLevel,
    pub table: Option<QualifiedName>,
    pub message: String,
}

impl Note {
    pub(crate) fn new(level: NoteLevel, table: &QualifiedName, message: String) -> Self {
        Self {
            level,
            table: Some(table.clone()),
            message,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootInfo {
    pub table: QualifiedName,
    /// The single primary-key column whose values are tenant IDs.
    pub key_column: String,
    /// Its type in the live database (`bigint`, `uuid`, `text`...).
    pub key_type: String,
    /// A column that names a tenant for humans (a unique text column such as a slug).
    pub label_column: Option<String>,
}

/// The path shown for an owned table: its shortest chain of relations up to the root. Only a
/// description — a row's tenants come from every relation it has ([`TablePlan::parents`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ownership {
    /// The relations from this table up to the root.
    pub chain: Vec<Relation>,
}

impl Ownership {
    /// `comments → issues → projects → sites`, then how any step that is not a declared FK
    /// is made: `(tenant column site_id)`, `(configured: comments(owner_id) → folders(id) when
    /// owner_type = 'folder')`.
    #[must_use]
    pub fn describe(&self, table: &QualifiedName) -> String {
        let mut text = table.name.clone();
        for relation in &self.chain {
            text.push_str(" → ");
            text.push_str(&relation.parent.name);
        }
        let origins: Vec<String> = self
            .chain
            .iter()
            .filter_map(|relation| match relation.origin {
                RelationOrigin::TenantColumn => {
                    Some(format!("tenant column {}", relation.child_columns[0]))
                }
                RelationOrigin::Config => {
                    Some(format!("configured: {}", relation.describe_short()))
                }
                RelationOrigin::DeclaredFk => None,
            })
            .collect();
        if !origins.is_empty() {
            text.push_str(&format!(" ({})", origins.join("; ")));
        }
        text
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequencePlan {
    pub column: String,
    pub sequence: QualifiedName,
    pub increment: i64,
}

/// One table of the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TablePlan {
    pub name: QualifiedName,
    pub role: Role,
    /// For owned tables: the shortest chain up to the root, for people to read.
    pub ownership: Option<Ownership>,
    pub in_live: bool,
    pub in_snapshot: bool,
    /// The columns the snapshot yields, in the order it yields them.
    pub columns: Vec<ColumnPlan>,
    /// The live key that identifies a row (the ON CONFLICT target).
    pub key: Option<Key>,
    /// A written column is `GENERATED ALWAYS AS IDENTITY`: inserts need OVERRIDING SYSTEM VALUE.
    pub identity_always: bool,
    /// Sequences to move ahead of the restored values.
    pub sequences: Vec<SequencePlan>,
    /// Relations from this table to shared tables: their values bring shared rows along.
    pub shared_references: Vec<Relation>,
    /// Declared references between tables of the plan where this table is the child.
    pub references: Vec<Relation>,
    /// For owned tables: every relation from this table to an owned table (the root, others,
    /// itself) whose columns exist on both sides. A row belongs to every tenant any of its
    /// parents belongs to, over all of them; the root's rows belong to their own key.
    pub parents: Vec<Relation>,
    /// The parents whose row may not be there when this table's row is inserted — another
    /// tenant's row, or one waiting itself: a row goes in only when every one of these
    /// parents is present in live (or goes in with it). Empty when a row's only parent is
    /// restored with it, always, before it.
    pub guards: Vec<Relation>,
    /// The column sets other owned tables reference this one by: what a row's tenants are
    /// looked up by when its children are read.
    pub exports: Vec<Vec<String>>,
}

impl TablePlan {
    /// Index of a column in [`TablePlan::columns`].
    #[must_use]
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column.name == name)
    }

    pub fn written_columns(&self) -> impl Iterator<Item = &ColumnPlan> {
        self.columns.iter().filter(|column| column.write)
    }
}

/// Owned tables whose rows' tenants are worked out together: one table, or several that
/// reference each other (and tables that reference themselves), in an order where every
/// parent group comes first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipGroup {
    /// Indexes into [`SchemaPlan::tables`].
    pub tables: Vec<usize>,
    /// Some relation leads from a table of the group to a table of the group: a row's
    /// tenants may come from rows of its own group, worked out to a fixpoint.
    pub recursive: bool,
    /// The longest chain of groups from the root's: groups of one level can be read
    /// independently.
    pub level: usize,
}

/// How a cycle of foreign keys between tables is inserted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum CycleBreak {
    /// Its deferrable constraints are checked at commit; the tables go in one by one.
    Deferred { constraints: Vec<String> },
    /// Its tables are inserted by one statement (writable CTEs): non-deferrable foreign keys
    /// are checked at the end of the statement, when every row is there.
    OneStatement,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cycle {
    pub tables: Vec<QualifiedName>,
    pub relations: Vec<Relation>,
    pub broken_by: CycleBreak,
}

impl Cycle {
    /// `public.folders ↔ public.docs: inserted in one statement ...`.
    #[must_use]
    pub fn describe(&self) -> String {
        let tables: Vec<String> = self.tables.iter().map(ToString::to_string).collect();
        let how = match &self.broken_by {
            CycleBreak::Deferred { constraints } => {
                format!(
                    "broken by checking {} at commit (deferrable)",
                    constraints.join(", ")
                )
            }
            CycleBreak::OneStatement => {
                "inserted together in one statement (foreign keys checked at its end)".to_owned()
            }
        };
        format!("cycle {}: {how}", tables.join(" ↔ "))
    }
}

/// A deferrable constraint set DEFERRED in every tenant's transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredConstraint {
    pub table: QualifiedName,
    pub name: String,
}

/// The schema-level plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaPlan {
    pub root: RootInfo,
    /// Root, owned and shared tables, in restore order.
    pub tables: Vec<TablePlan>,
    /// Insert steps, in order: indexes into `tables`; a step of several tables is a cycle
    /// inserted in one statement.
    pub steps: Vec<Vec<usize>>,
    /// Steps whose rows are decided together, in order: indexes into `steps`, consecutive.
    /// A relation checked at commit (a deferred constraint) may point from a step to a later
    /// one: whether its rows can go in depends on rows inserted after them in the same
    /// transaction, so which rows go in is worked out for the whole phase before its first
    /// step is written. Most phases are one step.
    pub phases: Vec<Vec<usize>>,
    /// Cycles of foreign keys between tables, and how each is inserted.
    pub cycles: Vec<Cycle>,
    /// Constraints deferred to commit in every tenant's transaction.
    pub deferred: Vec<DeferredConstraint>,
    /// Owned tables (and the root, first) grouped for working out row membership, parents
    /// first.
    pub membership: Vec<MembershipGroup>,
    /// Every relation between the tables of the schema that planning followed (declared FKs,
    /// configured relations, tenant columns), excluded tables left out: what an independent
    /// check of the plan's membership starts from.
    pub relations: Vec<Relation>,
    /// Tables the configuration keeps shared: never owned, whatever references lead from them.
    pub forced_shared: Vec<QualifiedName>,
    /// Tables with no relation to the tenants: left alone.
    pub unrelated: Vec<QualifiedName>,
    pub excluded: Vec<QualifiedName>,
    pub notes: Vec<Note>,
}

impl SchemaPlan {
    #[must_use]
    pub fn table(&self, name: &QualifiedName) -> Option<&TablePlan> {
        self.tables.iter().find(|table| &table.name == name)
    }

    #[must_use]
    pub fn table_index(&self, name: &QualifiedName) -> Option<usize> {
        self.tables.iter().position(|table| &table.name == name)
    }

    /// Builds the plan. `live` is the authority for how rows are written; `snapshot` says
    /// what can be read.
    pub fn build(live: &Catalog, snapshot: &Catalog, options: &PlanOptions) -> Result<Self> {
        crate::builder::build(live, snapshot, options)
    }
}
