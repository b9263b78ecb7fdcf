//! TABLE DATA entries as tables: which table, which columns in which order, COPY or not.

use salvage_catalog::QualifiedName;
use serde::Serialize;

use crate::error::{Error, Location, Result};
use crate::names::parse_copy_statement;
use crate::toc::TocEntry;

/// The data of one table in an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableData {
    /// The TABLE DATA entry's dump ID.
    pub dump_id: i32,
    /// The table the data belongs to (the entry's namespace and tag).
    pub name: QualifiedName,
    /// The table the COPY statement loads: `name`, or the partition root in a dump made
    /// with `--load-via-partition-root`. `None` when the data is INSERT statements.
    pub copy_target: Option<QualifiedName>,
    /// The columns of each row, in order (generated and dropped columns are not dumped).
    pub columns: Vec<String>,
    /// The COPY statement as dumped (`None` for `--inserts` dumps).
    pub copy_stmt: Option<String>,
}

impl TableData {
    /// Whether the data is COPY rows this crate can stream (not INSERT statements).
    #[must_use]
    pub fn is_copy(&self) -> bool {
        self.copy_stmt.is_some()
    }

    /// The TABLE DATA entry of `entry`, or `None` for other entries.
    pub(crate) fn from_entry(entry: &TocEntry, file: &std::path::Path) -> Result<Option<Self>> {
        if entry.desc != "TABLE DATA" {
            return Ok(None);
        }
        let name = QualifiedName::new(
            entry
                .namespace
                .clone()
                .unwrap_or_else(|| "public".to_owned()),
            entry.tag.clone(),
        );
        let Some(copy_stmt) = &entry.copy_stmt else {
            return Ok(Some(Self {
                dump_id: entry.dump_id,
                name,
                copy_target: None,
                columns: Vec::new(),
                copy_stmt: None,
            }));
        };
        let copy = parse_copy_statement(copy_stmt).ok_or_else(|| {
            Error::corrupt(
                Location {
                    file: file.to_owned(),
                    offset: 0,
                    entry: Some((entry.dump_id, entry.describe())),
                },
                format!("cannot parse the COPY statement {copy_stmt:?}"),
            )
        })?;
        Ok(Some(Self {
            dump_id: entry.dump_id,
            name,
            copy_target: Some(copy.table),
            columns: copy.columns,
            copy_stmt: Some(copy_stmt.clone()),
        }))
    }
}
