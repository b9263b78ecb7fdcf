//! Which tenants a diff covers: the IDs given, each checked against the root key's type and
//! looked up on both sides, or every tenant of the snapshot and of live — the root table's
//! keys on each side, read once.

use std::collections::HashSet;

use salvage_catalog::Catalog;
use salvage_plan::SchemaPlan;
use salvage_source::Snapshot;
use sqlx::postgres::PgConnection;

use super::model::id_order;
use crate::{Error, Result};

/// The tenants of a diff.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Canonical IDs (the root key's text in live), each once, in order.
    pub ids: Vec<String>,
    /// For each ID, the form it was given in when that differs (`007` for `7`).
    pub given: Vec<Option<String>>,
    /// Every tenant of both sides, not a chosen few: the tables are then read whole.
    pub everyone: bool,
}

impl Scope {
    /// The tenants `given` (as typed), or — when `None` — every tenant the snapshot's or
    /// live's root table holds. A given ID of the wrong type, or one neither side holds, is
    /// refused, all of them named together.
    pub async fn resolve(
        schema: &SchemaPlan,
        snapshot: &Snapshot,
        live: &mut PgConnection,
        live_catalog: &Catalog,
        given: Option<&[String]>,
    ) -> Result<Self> {
        let canonical = match given {
            Some(given) => Some(salvage_closure::canonical_ids(live, schema, given).await?),
            None => None,
        };
        let in_snapshot = snapshot.root_ids(schema).await?;
        let in_live = salvage_source::root_ids(live, live_catalog, schema, "live").await?;
        let known: HashSet<&str> = in_snapshot
            .iter()
            .chain(&in_live)
            .map(String::as_str)
            .collect();
        let (Some(given), Some(canonical)) = (given, canonical) else {
            let mut ids: Vec<String> = known.into_iter().map(str::to_owned).collect();
            ids.sort_by(|a, b| id_order(a, b));
            return Ok(Self {
                given: vec![None; ids.len()],
                ids,
                everyone: true,
            });
        };
        let mut seen = HashSet::new();
        let (mut ids, mut forms, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
        for (form, id) in given.iter().zip(canonical) {
            if !known.contains(id.as_str()) {
                unknown.push(form.clone());
            } else if seen.insert(id.clone()) {
                forms.push((form != &id).then(|| form.clone()));
                ids.push(id);
            }
        }
        if !unknown.is_empty() {
            return Err(Error::UnknownTenants {
                ids: unknown,
                table: schema.root.table.clone(),
            });
        }
        Ok(Self {
            ids,
            given: forms,
            everyone: false,
        })
    }
}
