//! How a snapshot table's columns land in the live table: matched by name, never by position.
//! A column the live table no longer has is staged as text and skipped; a column live has
//! gained is filled by its default (or NULL), and refused when it is NOT NULL without one.

use salvage_catalog::{Column, QualifiedName, Table};
use serde::{Deserialize, Serialize};

use crate::model::{Note, NoteLevel};
use crate::{Error, Result};

/// One column of the rows the snapshot yields, in the order it yields them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnPlan {
    pub name: String,
    /// The column's type in the snapshot.
    pub snapshot_type: String,
    /// The type values are staged (parsed) as: the live column's type, or `text` for a column
    /// the live table does not have.
    pub staging_type: String,
    /// Whether the value is written into the live table.
    pub write: bool,
}

/// Maps the snapshot table's (non-generated) columns onto the live table.
pub fn map_columns(
    name: &QualifiedName,
    live: Option<&Table>,
    snapshot: &Table,
    notes: &mut Vec<Note>,
) -> Result<Vec<ColumnPlan>> {
    let columns = snapshot
        .columns
        .iter()
        .filter(|column| !column.generated)
        .map(
            |column| match live.and_then(|table| table.column(&column.name)) {
                Some(live_column) => matched(name, column, live_column, notes),
                None => snapshot_only(name, column, live.is_some(), notes),
            },
        )
        .collect();
    if let Some(live) = live {
        check_live_only_columns(name, live, snapshot, notes)?;
    }
    Ok(columns)
}

/// A column both sides have: staged as the live type, written unless live generates it.
fn matched(
    name: &QualifiedName,
    column: &Column,
    live_column: &Column,
    notes: &mut Vec<Note>,
) -> ColumnPlan {
    if live_column.type_name != column.type_name {
        notes.push(Note::new(
            NoteLevel::Info,
            name,
            format!(
                "column {} is {} in the snapshot and {} in live: values are converted through their text form",
                column.name, column.type_name, live_column.type_name
            ),
        ));
    }
    if live_column.generated {
        notes.push(Note::new(
            NoteLevel::Info,
            name,
            format!(
                "column {} is generated in live: the server recomputes it",
                column.name
            ),
        ));
    }
    ColumnPlan {
        name: column.name.clone(),
        snapshot_type: column.type_name.clone(),
        staging_type: live_column.type_name.clone(),
        write: live_column.writable(),
    }
}

/// A column live no longer has: staged as text, never written.
fn snapshot_only(
    name: &QualifiedName,
    column: &Column,
    table_in_live: bool,
    notes: &mut Vec<Note>,
) -> ColumnPlan {
    if table_in_live {
        notes.push(Note::new(
            NoteLevel::Warning,
            name,
            format!(
                "column {} exists only in the snapshot: its values are not restorable and are skipped",
                column.name
            ),
        ));
    }
    ColumnPlan {
        name: column.name.clone(),
        snapshot_type: column.type_name.clone(),
        staging_type: "text".to_owned(),
        write: false,
    }
}

/// Columns live has gained since the snapshot get their default (or NULL); a NOT NULL column
/// without one would make every restored row fail, so the plan refuses.
fn check_live_only_columns(
    name: &QualifiedName,
    live: &Table,
    snapshot: &Table,
    notes: &mut Vec<Note>,
) -> Result<()> {
    for column in &live.columns {
        if snapshot.column(&column.name).is_some() || column.generated {
            continue;
        }
        if !column.may_be_omitted() {
            return Err(Error::UnfillableColumn {
                table: name.clone(),
                column: column.name.clone(),
            });
        }
        let filled_by = match (&column.default, column.identity) {
            (Some(default), _) => format!("its default ({default})"),
            (None, Some(_)) => "its identity sequence".to_owned(),
            (None, None) => "NULL".to_owned(),
        };
        notes.push(Note::new(
            NoteLevel::Info,
            name,
            format!(
                "column {} exists only in live: restored rows get {filled_by}",
                column.name
            ),
        ));
    }
    Ok(())
}
