//! A group of an archive whose rows reach tenants through rows of their own (an issue and
//! its parent issue, a page tree), worked out in memory that grows with the rows found, not
//! with the size of the group.
//!
//! One pass over the group's tables finds the rows that reach a chosen tenant from outside
//! the group or through a row of the group found before them; their text goes to a file,
//! their keys and tenants stay in memory, and their tenants flow at once to the rows found
//! that reference them. Of every other row that references a row of the group only its
//! references and keys are kept, in a file too (the *undecided* rows). Rounds over that file
//! then take the undecided rows referencing a row found since (a child read before its
//! parent) until a round finds none — after each member's pass, so that the next member's
//! rows referencing those find them in their own pass, and at the end; only when a round
//! found rows are their tables read once more, for those rows' text (up to the last of them).
//! A dump holds a table in its physical order, where a parent usually comes before its
//! children: one pass over the archive, one round over the file per member.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Context, Filtered, Found, Layout, finish_maps};
use crate::members::{Fields, Hop, SetId, TableWriter, TenantSets, raw_key};
use crate::{Error, Result};

/// How one relation of a group's row gives tenants.
#[derive(Debug, Clone, Copy)]
enum Edge {
    /// From outside the group: a tenant ID, or a parent whose map a lower level exported.
    Outside,
    /// A row of the group: the member it is in and which of its keys is referenced.
    Inside { member: usize, export: usize },
}

impl Context<'_> {
    /// A group whose rows reach tenants through rows of their own: found, settled, kept.
    pub(super) fn recursive(&self, layouts: &[Layout<'_>], found: &Found<'_>) -> Result<Filtered> {
        let edges = layouts
            .iter()
            .map(|layout| edges(layout, layouts))
            .collect::<Result<Vec<_>>>()?;
        let mut graph = Graph::new(&self.sets);
        let mut text = RowText::new().map_err(Error::io("keep the rows of a recursive group"))?;
        let mut undecided =
            Undecided::new().map_err(Error::io("keep the rows of a recursive group"))?;
        let (mut spans, mut key) = (Vec::new(), Vec::new());
        let (mut references, mut exports) = (Keys::default(), Keys::default());
        let (mut rounds_total, mut late_total) = (0, 0);
        for (member, (layout, edges)) in layouts.iter().zip(&edges).enumerate() {
            let name = &layout.table.name;
            let started = std::time::Instant::now();
            let (mut read, found_before) = (0u64, graph.nodes.len());
            let mut rows = self.rows(layout)?;
            while let Some(row) = rows.next_row()? {
                let ordinal = read;
                read += 1;
                let fields = Fields::split(row, layout.needed, &mut spans);
                let outside = references_of(
                    layout,
                    edges,
                    &fields,
                    found,
                    &self.sets,
                    &mut key,
                    &mut references,
                )
                .map_err(Error::io_with(|| {
                    format!("look up the parents of {name}'s rows")
                }))?;
                let tenants = self.sets.join(outside, graph.reached(&references));
                if tenants.is_none() && references.is_empty() {
                    continue;
                }
                exports_of(member, layout, &fields, &mut key, &mut exports);
                match tenants {
                    Some(set) => {
                        let kept = text
                            .keep(row)
                            .map_err(Error::io_with(|| format!("keep the rows of {name}")))?;
                        graph.add(member, ordinal, set, &references, &exports, Some(kept));
                    }
                    None => undecided
                        .note(member, ordinal, &references, &exports)
                        .map_err(Error::io_with(|| {
                            format!("note the references of {name}'s rows")
                        }))?,
                }
            }
            tracing::info!(
                table = %name,
                rows = read,
                found = graph.nodes.len() - found_before,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "filtered (recursive group, first pass)"
            );
            // Settled before the next member is read, its rows referencing the rows this
            // pass decided late are found in their own pass, their text read then: only
            // this member's table is read again for the few found here.
            if member + 1 < layouts.len() {
                let (rounds, late) = settle(&mut graph, &mut undecided)?;
                rounds_total += rounds;
                late_total += late;
            }
        }
        let (rounds, late) = settle(&mut graph, &mut undecided)?;
        late_total += late;
        tracing::info!(
            undecided = undecided.rows,
            rounds = rounds_total + rounds,
            found_late = late_total,
            "settled a recursive group"
        );
        if late_total > 0 {
            self.read_late(layouts, &mut graph, &mut text)?;
        }
        self.keep(layouts, &graph, &text)
    }

    /// Reads the text of the rows found in the rounds (read before the row that decided them).
    fn read_late(
        &self,
        layouts: &[Layout<'_>],
        graph: &mut Graph<'_>,
        text: &mut RowText,
    ) -> Result<()> {
        for (member, layout) in layouts.iter().enumerate() {
            let name = &layout.table.name;
            let mut wanted: Vec<(u64, usize)> = graph
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, node)| node.member == member && node.kept.is_none())
                .map(|(index, node)| (node.ordinal, index))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            wanted.sort_unstable();
            let started = std::time::Instant::now();
            let (count, last) = (wanted.len(), wanted.last().map_or(0, |&(at, _)| at));
            let mut wanted = wanted.into_iter().peekable();
            let mut rows = self.rows(layout)?;
            let mut ordinal = 0u64;
            while let Some(row) = rows.next_row()? {
                let here = ordinal;
                ordinal += 1;
                let Some(&(at, node)) = wanted.peek() else {
                    break;
                };
                if at != here {
                    continue;
                }
                wanted.next();
                let kept = text
                    .keep(row)
                    .map_err(Error::io_with(|| format!("keep the rows of {name}")))?;
                graph.nodes[node].kept = Some(kept);
            }
            if let Some((at, _)) = wanted.next() {
                return Err(Error::Inconsistent(format!(
                    "{name} has fewer rows on a second reading (row {at} is missing)"
                )));
            }
            tracing::info!(
                table = %name,
                rows = count,
                read = last + 1,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "read again for the rows found late"
            );
        }
        Ok(())
    }

    /// Keeps the rows found, in the order of the archive, and exports their keys.
    fn keep(&self, layouts: &[Layout<'_>], graph: &Graph<'_>, text: &RowText) -> Result<Filtered> {
        let mut by_member: Vec<Vec<(u64, usize)>> = vec![Vec::new(); layouts.len()];
        for (index, node) in graph.nodes.iter().enumerate() {
            by_member[node.member].push((node.ordinal, index));
        }
        let mut filtered = Vec::with_capacity(layouts.len());
        let mut row = Vec::new();
        for (layout, mut nodes) in layouts.iter().zip(by_member) {
            let name = &layout.table.name;
            let keys_error = || Error::io_with(|| format!("keep the keys of {name}"));
            nodes.sort_unstable();
            let mut writer = TableWriter::new(layout.columns.clone(), self.tenants)?;
            let mut builders = self.builders(layout);
            for (_, index) in nodes {
                let node = &graph.nodes[index];
                let kept = node.kept.ok_or_else(|| {
                    Error::Inconsistent(format!("a row of {name} was found but not read"))
                })?;
                text.read(kept, &mut row)
                    .map_err(Error::io_with(|| format!("read the kept rows of {name}")))?;
                writer.push(&row, node.tenants, &self.sets)?;
                for export in &node.exports {
                    let (number, key) = split_key(export);
                    builders[number]
                        .insert(key, node.tenants as usize)
                        .map_err(keys_error())?;
                }
            }
            let maps = finish_maps(layout, builders).map_err(keys_error())?;
            filtered.push((name.clone(), writer.finish()?, maps));
        }
        Ok(filtered)
    }
}

/// How each relation of a member's rows gives tenants. A reference to the root's key is a
/// tenant ID even when the root is in the group: that row's tenant is its key.
fn edges(layout: &Layout<'_>, layouts: &[Layout<'_>]) -> Result<Vec<Edge>> {
    layout
        .hops
        .iter()
        .zip(&layout.internal)
        .map(|(hop, parent)| match (hop, parent) {
            (Hop::Parent { map, .. }, Some(parent)) => {
                let export = layouts[*parent]
                    .exports
                    .iter()
                    .position(|(columns, _)| *columns == map.1)
                    .ok_or_else(|| {
                        Error::Inconsistent(format!(
                            "{} exports no key ({})",
                            layouts[*parent].table.name,
                            map.1.join(", ")
                        ))
                    })?;
                Ok(Edge::Inside {
                    member: *parent,
                    export,
                })
            }
            _ => Ok(Edge::Outside),
        })
        .collect()
}

/// The tenants a row reaches from outside the group; its references inside go to
/// `references`.
fn references_of(
    layout: &Layout<'_>,
    edges: &[Edge],
    fields: &Fields<'_>,
    found: &Found<'_>,
    sets: &TenantSets,
    key: &mut Vec<u8>,
    references: &mut Keys,
) -> io::Result<Option<SetId>> {
    references.clear();
    let mut outside = None;
    for (hop, edge) in layout.hops.iter().zip(edges) {
        match *edge {
            Edge::Outside => outside = sets.join(outside, hop.tenants(fields, found, key)?),
            Edge::Inside { member, export } => {
                if hop.parent_key(fields, key) {
                    references.push(member, export, key);
                }
            }
        }
    }
    Ok(outside)
}

/// The keys of a row that rows of the group may reference.
fn exports_of(
    member: usize,
    layout: &Layout<'_>,
    fields: &Fields<'_>,
    key: &mut Vec<u8>,
    exports: &mut Keys,
) {
    exports.clear();
    for (number, (_, positions)) in layout.exports.iter().enumerate() {
        if raw_key(positions, |position| fields.get(position), key) {
            exports.push(member, number, key);
        }
    }
}

/// A key of a group's row in one buffer: member, export number (both u32, little endian),
/// then the raw key. One buffer, so maps of them are looked up by a slice.
fn group_key(out: &mut Vec<u8>, member: usize, export: usize, key: &[u8]) {
    out.extend_from_slice(&u32::try_from(member).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&u32::try_from(export).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(key);
}

/// The export number and the raw key of a [`group_key`].
fn split_key(key: &[u8]) -> (usize, &[u8]) {
    let mut number = [0; 4];
    number.copy_from_slice(&key[4..8]);
    (u32::from_le_bytes(number) as usize, &key[8..])
}

/// Some keys of one row, each a [`group_key`], in one reused buffer.
#[derive(Default)]
struct Keys {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Keys {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn push(&mut self, member: usize, export: usize, key: &[u8]) {
        group_key(&mut self.bytes, member, export, key);
        self.ends.push(self.bytes.len());
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.bytes[start..end])
    }

    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&len32(self.ends.len())?.to_le_bytes())?;
        for key in self.iter() {
            out.write_all(&len32(key.len())?.to_le_bytes())?;
            out.write_all(key)?;
        }
        Ok(())
    }

    fn read_from(&mut self, input: &mut impl Read) -> io::Result<()> {
        self.clear();
        for _ in 0..read_u32(input)? {
            let length = read_u32(input)? as usize;
            let start = self.bytes.len();
            self.bytes.resize(start + length, 0);
            input.read_exact(&mut self.bytes[start..])?;
            self.ends.push(self.bytes.len());
        }
        Ok(())
    }
}

fn len32(length: usize) -> io::Result<u32> {
    u32::try_from(length)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a key longer than 4 GiB"))
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

/// A row of the group that reaches tenants.
struct Node {
    member: usize,
    /// Its place among its table's rows in the archive.
    ordinal: u64,
    tenants: SetId,
    /// Where its text is in the [`RowText`] file, once read.
    kept: Option<(u64, usize)>,
    /// Its keys others may reference ([`group_key`]s).
    exports: Box<[Box<[u8]>]>,
}

/// The rows found so far, who holds which key, who references it; tenants settled as rows
/// are added.
struct Graph<'s> {
    sets: &'s TenantSets,
    nodes: Vec<Node>,
    /// A key → the rows found holding it.
    holders: FxHashMap<Box<[u8]>, Vec<usize>>,
    /// A key → the rows found referencing it.
    children: FxHashMap<Box<[u8]>, Vec<usize>>,
    /// (member, ordinal) of the rows found in the rounds over the undecided rows: the only
    /// ones a round can meet again (a row found in the first pass is never undecided).
    found_late: FxHashSet<(usize, u64)>,
    queue: Vec<usize>,
}

impl<'s> Graph<'s> {
    fn new(sets: &'s TenantSets) -> Self {
        Self {
            sets,
            nodes: Vec::new(),
            holders: FxHashMap::default(),
            children: FxHashMap::default(),
            found_late: FxHashSet::default(),
            queue: Vec::new(),
        }
    }

    fn knows(&self, member: usize, ordinal: u64) -> bool {
        self.found_late.contains(&(member, ordinal))
    }

    /// The tenants of the rows found that `references` point to.
    fn reached(&self, references: &Keys) -> Option<SetId> {
        let mut reached = None;
        for key in references.iter() {
            for &holder in self.holders.get(key).into_iter().flatten() {
                reached = self.sets.join(reached, Some(self.nodes[holder].tenants));
            }
        }
        reached
    }

    /// Adds a row reaching `tenants`, then lets tenants flow to the rows referencing it
    /// until nothing changes.
    fn add(
        &mut self,
        member: usize,
        ordinal: u64,
        tenants: SetId,
        references: &Keys,
        exports: &Keys,
        kept: Option<(u64, usize)>,
    ) {
        let node = self.nodes.len();
        for key in references.iter() {
            if let Some(children) = self.children.get_mut(key) {
                children.push(node);
            } else {
                self.children.insert(key.into(), vec![node]);
            }
        }
        for key in exports.iter() {
            if let Some(holders) = self.holders.get_mut(key) {
                holders.push(node);
            } else {
                self.holders.insert(key.into(), vec![node]);
            }
        }
        self.nodes.push(Node {
            member,
            ordinal,
            tenants,
            kept,
            exports: exports.iter().map(Box::from).collect(),
        });
        if kept.is_none() {
            self.found_late.insert((member, ordinal));
        }
        self.queue.push(node);
        while let Some(node) = self.queue.pop() {
            let set = self.nodes[node].tenants;
            // Taken out while its children change (a row may reference itself).
            let exports = std::mem::take(&mut self.nodes[node].exports);
            for key in &exports {
                for &child in self.children.get(key).into_iter().flatten() {
                    let joined = self.sets.union(self.nodes[child].tenants, set);
                    if joined != self.nodes[child].tenants {
                        self.nodes[child].tenants = joined;
                        self.queue.push(child);
                    }
                }
            }
            self.nodes[node].exports = exports;
        }
    }
}

/// The text of the rows found, in a temporary file.
struct RowText {
    file: BufWriter<File>,
    length: u64,
}

impl RowText {
    fn new() -> io::Result<Self> {
        Ok(Self {
            file: BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?),
            length: 0,
        })
    }

    /// Appends a row; returns where it is.
    fn keep(&mut self, row: &[u8]) -> io::Result<(u64, usize)> {
        self.file.write_all(row)?;
        let at = self.length;
        self.length += row.len() as u64;
        Ok((at, row.len()))
    }

    /// Reads the row kept at `at` into `row`.
    fn read(&self, (at, length): (u64, usize), row: &mut Vec<u8>) -> io::Result<()> {
        row.resize(length, 0);
        let buffered = self.file.buffer();
        let written = self.length - buffered.len() as u64;
        if at >= written {
            let start = usize::try_from(at - written).unwrap_or(usize::MAX);
            row.copy_from_slice(&buffered[start..start + length]);
            return Ok(());
        }
        self.file.get_ref().read_exact_at(row, at)
    }
}

/// Rounds over the undecided rows noted so far, each taking those referencing a row found
/// since they were read, until one finds none: how many rounds, and how many rows found.
fn settle(graph: &mut Graph<'_>, undecided: &mut Undecided) -> Result<(usize, usize)> {
    let (mut rounds, mut late) = (0, 0);
    if undecided.rows == 0 {
        return Ok((rounds, late));
    }
    loop {
        rounds += 1;
        let found_before = graph.nodes.len();
        undecided
            .each(|member, ordinal, references, exports| {
                if graph.knows(member, ordinal) {
                    return;
                }
                if let Some(set) = graph.reached(references) {
                    graph.add(member, ordinal, set, references, exports, None);
                }
            })
            .map_err(Error::io("read the noted references of a recursive group"))?;
        if graph.nodes.len() == found_before {
            return Ok((rounds, late));
        }
        late += graph.nodes.len() - found_before;
    }
}

/// The undecided rows' references and keys, in a temporary file.
struct Undecided {
    file: BufWriter<File>,
    rows: u64,
}

impl Undecided {
    fn new() -> io::Result<Self> {
        Ok(Self {
            file: BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?),
            rows: 0,
        })
    }

    fn note(
        &mut self,
        member: usize,
        ordinal: u64,
        references: &Keys,
        exports: &Keys,
    ) -> io::Result<()> {
        self.file.write_all(&len32(member)?.to_le_bytes())?;
        self.file.write_all(&ordinal.to_le_bytes())?;
        references.write_to(&mut self.file)?;
        exports.write_to(&mut self.file)?;
        self.rows += 1;
        Ok(())
    }

    /// Calls `visit` with every row noted, in the order noted.
    fn each(&mut self, mut visit: impl FnMut(usize, u64, &Keys, &Keys)) -> io::Result<()> {
        self.file.flush()?;
        let mut file = self.file.get_ref();
        file.rewind()?;
        let mut input = BufReader::with_capacity(256 * 1024, file);
        let (mut references, mut exports) = (Keys::default(), Keys::default());
        while !input.fill_buf()?.is_empty() {
            let member = read_u32(&mut input)? as usize;
            let mut ordinal = [0; 8];
            input.read_exact(&mut ordinal)?;
            references.read_from(&mut input)?;
            exports.read_from(&mut input)?;
            visit(member, u64::from_le_bytes(ordinal), &references, &exports);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Keys, RowText, Undecided, split_key};

    #[test]
    fn keys_are_written_and_read_back() {
        let mut keys = Keys::default();
        keys.push(1, 2, b"17");
        keys.push(0, 0, b"a\tb");
        let mut out = Vec::new();
        keys.write_to(&mut out).unwrap();
        let mut back = Keys::default();
        back.read_from(&mut out.as_slice()).unwrap();
        let read: Vec<(usize, &[u8])> = back.iter().map(split_key).collect();
        assert_eq!(read, vec![(2, &b"17"[..]), (0, &b"a\tb"[..])]);
    }

    #[test]
    fn undecided_rows_are_read_back_in_order_every_time() {
        let mut undecided = Undecided::new().unwrap();
        let mut keys = Keys::default();
        for ordinal in 0..3u64 {
            keys.clear();
            keys.push(0, 0, ordinal.to_string().as_bytes());
            undecided.note(1, ordinal, &keys, &Keys::default()).unwrap();
        }
        for _ in 0..2 {
            let mut seen = Vec::new();
            undecided
                .each(|member, ordinal, references, exports| {
                    let key = split_key(references.iter().next().unwrap()).1.to_vec();
                    seen.push((member, ordinal, key, exports.is_empty()));
                })
                .unwrap();
            assert_eq!(
                seen,
                vec![
                    (1, 0, b"0".to_vec(), true),
                    (1, 1, b"1".to_vec(), true),
                    (1, 2, b"2".to_vec(), true)
                ]
            );
        }
    }

    #[test]
    fn kept_rows_are_read_from_the_buffer_or_the_file() {
        let mut text = RowText::new().unwrap();
        let first = text.keep(b"first\trow").unwrap();
        let big = vec![b'x'; 300 * 1024];
        let second = text.keep(&big).unwrap();
        let third = text.keep(b"third").unwrap();
        let mut row = Vec::new();
        text.read(first, &mut row).unwrap();
        assert_eq!(row, b"first\trow");
        text.read(second, &mut row).unwrap();
        assert_eq!(row, big);
        text.read(third, &mut row).unwrap();
        assert_eq!(row, b"third");
    }
}
