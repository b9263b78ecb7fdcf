//! Membership read from a database — the snapshot, or live with the same rule.
//!
//! Each table is read with one `COPY (SELECT …) TO STDOUT` per relation to an owned parent:
//! the rows whose columns hold one of the parent keys already known (bound as an array), each
//! read leaving out the rows an earlier relation matched. The server does the filtering with
//! whatever index it has on the relation's columns; the client works out each row's tenants
//! from the parent maps, over every relation of the row (not only the one that matched it).
//! Tables that reach tenants through rows of their own group are read in rounds — the rows
//! referencing the keys the previous round found — until a round finds nothing new, and
//! their tenants are then worked out to a fixpoint in memory.

use bytes::Bytes;
use futures_util::StreamExt;
use rustc_hash::{FxHashMap, FxHashSet};
use salvage_catalog::{Catalog, QualifiedName};
use salvage_pg::CopyQuery;
use salvage_plan::{Relation, SchemaPlan, TablePlan};
use salvage_sql::reach::{Drive, Match, drive_for, rows_matching, whole_table};
use salvage_sql::{Binder, bound_array, from_item};
use sqlx::postgres::PgConnection;

use super::{
    Fields, Hop, Lookup, MapKey, Reading, Selected, SetId, TableWriter, TenantSets, chosen_ids,
    decode_key, followed, is_tenant_id, needed_fields, raw_key, tenants_of,
};
use crate::{Error, Result};

/// Which columns to keep of each owned table's rows, in that order.
pub type KeepColumns<'a> = &'a (dyn Fn(&TablePlan) -> Vec<String> + Sync);

/// Reads the rows of tenants `ids` of every owned table the database `catalog` describes has,
/// keeping the columns `keep` names, as `reading` says. `side` names the database in messages
/// ("the snapshot", "live").
pub async fn select(
    connection: &mut PgConnection,
    catalog: &Catalog,
    plan: &SchemaPlan,
    ids: &[String],
    keep: KeepColumns<'_>,
    side: &str,
    reading: Reading,
) -> Result<Selected> {
    let mut reader = Reader {
        connection,
        catalog,
        plan,
        side,
        ids,
        reading,
        state: State {
            chosen: chosen_ids(ids),
            sets: TenantSets::new(ids.len()),
            maps: FxHashMap::default(),
        },
        selected: Selected::new(ids.to_vec()),
    };
    for group in &plan.membership {
        let started = std::time::Instant::now();
        if group.recursive {
            reader.recursive_group(group, keep).await?;
        } else {
            for &index in &group.tables {
                reader.table(&plan.tables[index], keep).await?;
            }
        }
        tracing::debug!(
            tables = group.tables.len(),
            side,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read a membership group"
        );
    }
    Ok(reader.selected)
}

/// Every tenant ID the database's root table holds (decoded text, in reading order); none
/// when the database has no such table. `side` names the database in messages.
pub async fn root_ids(
    connection: &mut PgConnection,
    catalog: &Catalog,
    plan: &SchemaPlan,
    side: &str,
) -> Result<Vec<String>> {
    let root = &plan.root;
    if catalog.table(&root.table).is_none() {
        return Ok(Vec::new());
    }
    let select = whole_table(
        &from_item(catalog, &root.table),
        std::slice::from_ref(&root.key_column),
    );
    let context = format!("read the tenant IDs of {} from {side}", root.table);
    let chunks = fetch(connection, &CopyQuery::new(), &select, &context).await?;
    Ok(chunks
        .iter()
        .flat_map(|chunk| crate::rows_of(chunk))
        .filter_map(salvage_copy::decode_text)
        .collect())
}

/// What rows are attributed with: the chosen IDs, the tenant sets, and the maps of the tables
/// read so far.
pub(super) struct State {
    pub(super) chosen: FxHashMap<Vec<u8>, usize>,
    pub(super) sets: TenantSets,
    pub(super) maps: FxHashMap<MapKey, FxHashMap<Box<[u8]>, SetId>>,
}

impl Lookup for State {
    fn tenant(&self, raw: &[u8]) -> Option<SetId> {
        self.chosen.get(raw).map(|&index| self.sets.single(index))
    }

    fn parent(&self, map: &MapKey, key: &[u8]) -> std::io::Result<Option<SetId>> {
        Ok(self
            .maps
            .get(map)
            .and_then(|entries| entries.get(key).copied()))
    }
}

pub(super) struct Reader<'a> {
    pub(super) connection: &'a mut PgConnection,
    pub(super) catalog: &'a Catalog,
    pub(super) plan: &'a SchemaPlan,
    pub(super) side: &'a str,
    pub(super) ids: &'a [String],
    pub(super) reading: Reading,
    pub(super) state: State,
    pub(super) selected: Selected,
}

/// How one table is read: the columns selected (kept ones first), and where each relation
/// and exported key is in them.
pub(super) struct Layout {
    pub(super) selected: Vec<String>,
    pub(super) kept: usize,
    /// The relations followed, in reading order, and their hops.
    pub(super) relations: Vec<Relation>,
    pub(super) hops: Vec<Hop>,
    pub(super) exports: Vec<(Vec<String>, Vec<usize>)>,
    /// Positions of the table's identity key (recursive groups tell rows apart by it; the
    /// root's is the tenant ID).
    pub(super) key: Vec<usize>,
    pub(super) needed: usize,
}

impl Layout {
    pub(super) fn new(
        plan: &SchemaPlan,
        table: &TablePlan,
        kept: Vec<String>,
        root: bool,
    ) -> Result<Self> {
        let mut selected = kept;
        let kept = selected.len();
        let mut position = |column: &str| -> usize {
            selected
                .iter()
                .position(|c| c == column)
                .unwrap_or_else(|| {
                    selected.push(column.to_owned());
                    selected.len() - 1
                })
        };
        let relations: Vec<Relation> = if root {
            Vec::new()
        } else {
            let mut relations = followed(&table.parents).to_vec();
            // Tenant IDs first: the smallest key sets, and usually indexed.
            relations.sort_by_key(|relation| !is_tenant_id(plan, relation));
            relations
        };
        let mut hops = Vec::with_capacity(relations.len());
        for relation in &relations {
            hops.push(Hop::new(plan, relation, &mut |column: &str| {
                Ok(position(column))
            })?);
        }
        let exports: Vec<(Vec<String>, Vec<usize>)> = table
            .exports
            .iter()
            .map(|columns| {
                let positions = columns.iter().map(|column| position(column)).collect();
                (columns.clone(), positions)
            })
            .collect();
        let key: Vec<usize> = if root {
            vec![position(&plan.root.key_column)]
        } else {
            table
                .key
                .iter()
                .flat_map(|key| &key.columns)
                .map(|column| position(column))
                .collect()
        };
        let hop_refs: Vec<&Hop> = hops.iter().collect();
        let mut positions: Vec<Vec<usize>> = exports
            .iter()
            .map(|(_, positions)| positions.clone())
            .collect();
        positions.push(key.clone());
        positions.push((0..kept).collect());
        let needed = needed_fields(&hop_refs, &positions);
        Ok(Self {
            selected,
            kept,
            relations,
            hops,
            exports,
            key,
            needed,
        })
    }

    /// The kept part of a row read with this layout: its first `kept` fields.
    pub(super) fn kept_part<'r>(&self, row: &'r [u8]) -> &'r [u8] {
        if self.kept == self.selected.len() {
            return row;
        }
        if self.kept == 0 {
            return &row[..0];
        }
        match memchr::memchr_iter(b'\t', row).nth(self.kept - 1) {
            Some(tab) => &row[..tab],
            None => row,
        }
    }
}

/// Runs one read on `connection`: all of its rows, as COPY chunks.
pub(super) async fn fetch(
    connection: &mut PgConnection,
    query: &CopyQuery,
    select: &str,
    context: &str,
) -> Result<Vec<Bytes>> {
    let mut stream = query.copy_out(connection, select, context).await?;
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk?);
    }
    Ok(chunks)
}

impl Reader<'_> {
    /// The rows of one table of a group without self-references.
    async fn table(&mut self, table: &TablePlan, keep: KeepColumns<'_>) -> Result<()> {
        if self.catalog.table(&table.name).is_none() {
            return Ok(());
        }
        let root = table.name == self.plan.root.table;
        let layout = Layout::new(self.plan, table, keep(table), root)?;
        let mut writer = TableWriter::new(layout.selected[..layout.kept].to_vec(), self.ids.len())?;
        let mut exports: Vec<FxHashMap<Box<[u8]>, SetId>> =
            vec![FxHashMap::default(); layout.exports.len()];
        let reads = self.reads(table, &layout, root)?;
        let context = format!("read {} from {}", table.name, self.side);
        let (mut spans, mut key) = (Vec::new(), Vec::new());
        for (select, query) in reads {
            let mut stream = query
                .copy_out(&mut *self.connection, &select, &context)
                .await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                for row in crate::rows_of(&chunk) {
                    let fields = Fields::split(row, layout.needed, &mut spans);
                    let set = if root {
                        fields
                            .get(layout.key[0])
                            .and_then(|id| self.state.tenant(id))
                    } else {
                        tenants_of(
                            &layout.hops,
                            &fields,
                            &self.state,
                            &self.state.sets,
                            &mut key,
                        )
                        .map_err(Error::io("look up parent keys"))?
                    };
                    let Some(set) = set else { continue };
                    writer.push(layout.kept_part(row), set, &self.state.sets)?;
                    for ((_, positions), map) in layout.exports.iter().zip(&mut exports) {
                        if raw_key(positions, |position| fields.get(position), &mut key) {
                            let entry = map.entry(key.as_slice().into()).or_insert(set);
                            *entry = self.state.sets.union(*entry, set);
                        }
                    }
                }
            }
        }
        self.selected.insert(table.name.clone(), writer.finish()?);
        for ((columns, _), map) in layout.exports.into_iter().zip(exports) {
            self.state.maps.insert((table.name.clone(), columns), map);
        }
        Ok(())
    }

    /// The statements reading a table: one per relation whose parent has chosen keys, each
    /// leaving out what the earlier ones matched. The root is read by its key. Read whole,
    /// one statement reads every row.
    fn reads(
        &self,
        table: &TablePlan,
        layout: &Layout,
        root: bool,
    ) -> Result<Vec<(String, CopyQuery)>> {
        let from = from_item(self.catalog, &table.name);
        if self.reading == Reading::WholeTables {
            return Ok(vec![(
                whole_table(&from, &layout.selected),
                CopyQuery::new(),
            )]);
        }
        let mut query = CopyQuery::new();
        if root {
            let key_column = &self.plan.root.key_column;
            let type_name = self.column_type(&table.name, key_column)?;
            let driving = Match {
                columns: vec![key_column.clone()],
                arrays: vec![bound_array(
                    &mut query,
                    self.ids.iter().map(|id| Some(id.as_str())),
                    &type_name,
                )],
                condition: None,
                keys: self.ids.len(),
            };
            let drive = self.drive(&table.name, driving.keys, &table.name, &driving.columns);
            return Ok(vec![(
                rows_matching(&from, &layout.selected, &driving, &[], drive),
                query,
            )]);
        }
        let mut statements = Vec::new();
        for (number, relation) in layout.relations.iter().enumerate() {
            let mut query = CopyQuery::new();
            let Some(driving) = self.relation_match(relation, None, &mut query)? else {
                continue;
            };
            // What an earlier relation matched was read with it; their key sets are bound
            // again for this statement.
            let mut excluded = Vec::with_capacity(number);
            for earlier in &layout.relations[..number] {
                excluded.extend(self.relation_match(earlier, None, &mut query)?);
            }
            let drive = self.drive(
                &relation.parent,
                driving.keys,
                &table.name,
                &driving.columns,
            );
            statements.push((
                rows_matching(&from, &layout.selected, &driving, &excluded, drive),
                query,
            ));
        }
        Ok(statements)
    }

    /// `relation`'s columns matched against its parent's chosen keys (or `keys`, when given),
    /// bound on `query`; `None` when there are no such keys.
    pub(super) fn relation_match(
        &self,
        relation: &Relation,
        keys: Option<&FxHashSet<Box<[u8]>>>,
        query: &mut dyn Binder,
    ) -> Result<Option<Match>> {
        let types: Vec<String> = relation
            .child_columns
            .iter()
            .map(|column| self.column_type(&relation.child, column))
            .collect::<Result<_>>()?;
        let values: Vec<Vec<Option<String>>> = if let Some(keys) = keys {
            keys.iter().map(|key| decode_key(key)).collect()
        } else if is_tenant_id(self.plan, relation) {
            self.ids.iter().map(|id| vec![Some(id.clone())]).collect()
        } else {
            let map = (relation.parent.clone(), relation.parent_columns.clone());
            let Some(entries) = self.state.maps.get(&map) else {
                return Ok(None);
            };
            entries.keys().map(|key| decode_key(key)).collect()
        };
        if values.is_empty() {
            return Ok(None);
        }
        let arrays = types
            .iter()
            .enumerate()
            .map(|(position, type_name)| {
                bound_array(
                    query,
                    values
                        .iter()
                        .map(|key| key.get(position).and_then(Option::as_deref)),
                    type_name,
                )
            })
            .collect();
        let condition = relation.condition.as_ref().map(|condition| {
            (
                condition.column.clone(),
                query.bind(condition.value.clone()),
            )
        });
        Ok(Some(Match {
            columns: relation.child_columns.clone(),
            arrays,
            condition,
            keys: values.len(),
        }))
    }

    /// Probe or scan for `keys` keys of `parent` (see [`Drive`]), matched on `table`'s
    /// `columns`: a probe is forced through an index on them when there is one.
    pub(super) fn drive(
        &self,
        parent: &QualifiedName,
        keys: usize,
        table: &QualifiedName,
        columns: &[String],
    ) -> Drive {
        let rows = self
            .catalog
            .table(parent)
            .map_or(-1, |table| table.estimated_rows);
        let indexed = self
            .catalog
            .table(table)
            .is_some_and(|table| table.has_index_on(columns));
        drive_for(keys, rows, indexed)
    }

    fn column_type(&self, table: &QualifiedName, column: &str) -> Result<String> {
        self.catalog
            .table(table)
            .and_then(|definition| definition.column(column))
            .map(|definition| definition.type_name.clone())
            .ok_or_else(|| Error::MissingColumn {
                table: table.clone(),
                column: column.to_owned(),
                side: self.side.to_owned(),
            })
    }
}
