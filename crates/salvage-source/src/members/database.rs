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
use salvage_pg::{CopyQuery, OnFirstUse};
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

/// A read expected to give this many rows is made in two halves, one on each connection.
const SPLIT_ROWS: i64 = 4_096;

/// Rows read ahead on a second connection are kept in blocks of whole rows of about this size.
const HELD_BLOCK: usize = 128 * 1024;

/// Reads the rows of tenants `ids` of every owned table the database `catalog` describes has,
/// keeping the columns `keep` names, as `reading` says. `side` names the database in messages
/// ("the snapshot", "live"). With a `second` connection to the same database, large key sets
/// are read in halves on both at once.
pub async fn select(
    (connection, second): (&mut PgConnection, Option<&mut OnFirstUse>),
    catalog: &Catalog,
    plan: &SchemaPlan,
    ids: &[String],
    keep: KeepColumns<'_>,
    side: &str,
    reading: Reading,
) -> Result<Selected> {
    let mut reader = Reader {
        connection,
        second,
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
    /// For half of a large key set's reads, at the same time.
    pub(super) second: Option<&'a mut OnFirstUse>,
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

/// The rows of statements read on a second connection while the first one's are taken:
/// written to a temporary file in blocks of whole rows as they come (memory stays bounded
/// however many there are), then taken in the same order.
struct Held {
    file: std::fs::File,
    blocks: Vec<usize>,
}

impl Held {
    async fn read(
        connection: &mut PgConnection,
        statements: &[(String, CopyQuery)],
        context: &str,
    ) -> Result<Self> {
        use std::io::Write;
        let mut file = tempfile::tempfile().map_err(Error::io("keep rows read ahead"))?;
        let mut blocks = Vec::new();
        let mut block = Vec::with_capacity(HELD_BLOCK);
        for (select, query) in statements {
            let mut stream = query.copy_out(&mut *connection, select, context).await?;
            while let Some(rows) = stream.next().await {
                block.extend_from_slice(&rows?);
                if block.len() >= HELD_BLOCK {
                    file.write_all(&block)
                        .map_err(Error::io("keep rows read ahead"))?;
                    blocks.push(block.len());
                    block.clear();
                }
            }
        }
        if !block.is_empty() {
            file.write_all(&block)
                .map_err(Error::io("keep rows read ahead"))?;
            blocks.push(block.len());
        }
        Ok(Self { file, blocks })
    }

    /// Every block, in order, to `take`.
    fn replay(mut self, take: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        use std::io::{Read, Seek};
        self.file
            .rewind()
            .map_err(Error::io("read rows read ahead"))?;
        let mut reader = std::io::BufReader::with_capacity(HELD_BLOCK, self.file);
        let mut block = Vec::with_capacity(HELD_BLOCK * 2);
        for &length in &self.blocks {
            block.resize(length, 0);
            reader
                .read_exact(&mut block)
                .map_err(Error::io("read rows read ahead"))?;
            take(&block)?;
        }
        Ok(())
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
        let context = context.as_str();
        // With a second connection, the later statements run there at the same time, their
        // rows kept in a temporary file until the first ones' are taken: the same order.
        let second = match self.second.as_deref_mut() {
            Some(second) if reads.len() > 1 => second.try_get().await,
            _ => None,
        };
        let mine = match second {
            Some(_) => reads.len().div_ceil(2),
            None => reads.len(),
        };
        let (first, later) = reads.split_at(mine);
        let connection = &mut *self.connection;
        let state = &mut self.state;
        let ahead = async move {
            match second {
                Some(other) => Held::read(other, later, context).await.map(Some),
                None => Ok(None),
            }
        };
        let (mut spans, mut key) = (Vec::new(), Vec::new());
        let mut take = |chunk: &[u8]| -> Result<()> {
            for row in crate::rows_of(chunk) {
                let fields = Fields::split(row, layout.needed, &mut spans);
                let set = if root {
                    fields.get(layout.key[0]).and_then(|id| state.tenant(id))
                } else {
                    tenants_of(&layout.hops, &fields, &*state, &state.sets, &mut key)
                        .map_err(Error::io("look up parent keys"))?
                };
                let Some(set) = set else { continue };
                writer.push(layout.kept_part(row), set, &state.sets)?;
                for ((_, positions), map) in layout.exports.iter().zip(&mut exports) {
                    if raw_key(positions, |position| fields.get(position), &mut key) {
                        let entry = map.entry(key.as_slice().into()).or_insert(set);
                        *entry = state.sets.union(*entry, set);
                    }
                }
            }
            Ok(())
        };
        let mine = async {
            for (select, query) in first {
                let mut stream = query.copy_out(&mut *connection, select, context).await?;
                while let Some(chunk) = stream.next().await {
                    take(&chunk?)?;
                }
            }
            Ok::<(), Error>(())
        };
        let (held, ()) = futures_util::future::try_join(ahead, mine).await?;
        if let Some(held) = held {
            held.replay(&mut take)?;
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
            // What an earlier relation matched was read with it; their key sets are bound
            // again for this statement.
            let earlier: Vec<&Relation> = layout.relations[..number].iter().collect();
            statements.extend(self.statements(
                &table.name,
                &layout.selected,
                relation,
                None,
                &earlier,
            )?);
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
        match self.relation_values(relation, keys) {
            Some(values) => Ok(Some(self.bind_match(relation, &values, query)?)),
            None => Ok(None),
        }
    }

    /// The key values `relation`'s columns are matched against: `keys` when given, else its
    /// parent's chosen keys; `None` when there are none.
    fn relation_values(
        &self,
        relation: &Relation,
        keys: Option<&FxHashSet<Box<[u8]>>>,
    ) -> Option<Vec<Vec<Option<String>>>> {
        let values: Vec<Vec<Option<String>>> = if let Some(keys) = keys {
            keys.iter().map(|key| decode_key(key)).collect()
        } else if is_tenant_id(self.plan, relation) {
            self.ids.iter().map(|id| vec![Some(id.clone())]).collect()
        } else {
            let map = (relation.parent.clone(), relation.parent_columns.clone());
            let entries = self.state.maps.get(&map)?;
            entries.keys().map(|key| decode_key(key)).collect()
        };
        (!values.is_empty()).then_some(values)
    }

    /// `relation`'s columns matched against `values`, bound on `query`.
    fn bind_match(
        &self,
        relation: &Relation,
        values: &[Vec<Option<String>>],
        query: &mut dyn Binder,
    ) -> Result<Match> {
        let types: Vec<String> = relation
            .child_columns
            .iter()
            .map(|column| self.column_type(&relation.child, column))
            .collect::<Result<_>>()?;
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
        Ok(Match {
            columns: relation.child_columns.clone(),
            arrays,
            condition,
            keys: values.len(),
        })
    }

    /// The statements reading `table`'s rows (columns `selected`) whose `driving` relation
    /// matches its keys (`keys`, else its parent's chosen keys), leaving out what the
    /// `excluded` relations match: none without keys; one; or, with a second connection and
    /// enough keys to look up through an index, two — each half of the keys, read at the same time on the two
    /// connections and taken in order, so the rows come as one statement would give them.
    pub(super) fn statements(
        &self,
        table: &QualifiedName,
        selected: &[String],
        driving: &Relation,
        keys: Option<&FxHashSet<Box<[u8]>>>,
        excluded: &[&Relation],
    ) -> Result<Vec<(String, CopyQuery)>> {
        let Some(values) = self.relation_values(driving, keys) else {
            return Ok(Vec::new());
        };
        let columns = &driving.child_columns;
        let drive = self.drive(&driving.parent, values.len(), table, columns);
        // Only keys looked up one by one through an index halve the work: a join the planner
        // may hash, or a scan, would read the table twice.
        let halves = if self.second.is_some()
            && drive == Drive::Index
            && values.len() >= 2
            && self.expected_rows(&driving.parent, values.len(), table) >= SPLIT_ROWS
        {
            let middle = values.len() / 2;
            vec![&values[..middle], &values[middle..]]
        } else {
            vec![values.as_slice()]
        };
        let from = from_item(self.catalog, table);
        let mut statements = Vec::with_capacity(halves.len());
        for half in halves {
            let mut query = CopyQuery::new();
            let matched = self.bind_match(driving, half, &mut query)?;
            let mut left_out = Vec::with_capacity(excluded.len());
            for relation in excluded {
                left_out.extend(self.relation_match(relation, None, &mut query)?);
            }
            // The drive chosen for all the keys: each half probes as the whole would.
            statements.push((
                rows_matching(&from, selected, &matched, &left_out, drive),
                query,
            ));
        }
        Ok(statements)
    }

    /// Every row `statements` read, in their order: on two connections at once when there
    /// are two statements and a second connection (the second's rows after the first's).
    pub(super) async fn fetch_all(
        &mut self,
        statements: &[(String, CopyQuery)],
        context: &str,
    ) -> Result<Vec<Bytes>> {
        let other = match self.second.as_deref_mut() {
            Some(second) if statements.len() == 2 => second.try_get().await,
            _ => None,
        };
        let connection = &mut *self.connection;
        if let ([(first, first_query), (second, second_query)], Some(other)) = (statements, other) {
            let (mut rows, more) = futures_util::future::try_join(
                fetch(connection, first_query, first, context),
                fetch(other, second_query, second, context),
            )
            .await?;
            rows.extend(more);
            return Ok(rows);
        }
        let mut rows = Vec::new();
        for (select, query) in statements {
            rows.extend(fetch(&mut *connection, query, select, context).await?);
        }
        Ok(rows)
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

    /// About how many rows of `table` `keys` keys of `parent` lead to, from the catalog's
    /// estimates: `table`'s rows per `parent` row, times the keys (the keys alone when
    /// either table has no estimate).
    fn expected_rows(&self, parent: &QualifiedName, keys: usize, table: &QualifiedName) -> i64 {
        let estimate = |name: &QualifiedName| {
            self.catalog
                .table(name)
                .map_or(-1, |table| table.estimated_rows)
        };
        let keys = i64::try_from(keys).unwrap_or(i64::MAX);
        match (estimate(parent), estimate(table)) {
            (parents, rows) if parents > 0 && rows >= 0 => keys.saturating_mul(rows) / parents,
            _ => keys,
        }
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
