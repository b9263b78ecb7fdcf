//! The schema-level restore plan: which tables belong to a tenant and through which path,
//! which are shared (rows restored only when missing), which are left alone, the order the
//! foreign keys accept, and how snapshot columns map onto the live table.
//!
//! Pure: it reads two catalogs (live, the authority for writes, and the snapshot, what we
//! read) and the user's options, and does no I/O. Tenant-level work (which rows, how many)
//! happens later, in `salvage-closure`.

mod builder;
mod columns;
mod cycles;
mod error;
mod graph;
mod membership;
mod model;
mod order;
mod ownership;
mod validate;

pub use error::{Error, Result};
pub use graph::{Condition, Relation, RelationOrigin};
pub use model::{
    ColumnPlan, ConfiguredRelation, Cycle, CycleBreak, DeferredConstraint, MembershipGroup, Mode,
    Note, NoteLevel, Ownership, PlanOptions, Role, RootInfo, SchemaPlan, SequencePlan, TablePlan,
};
