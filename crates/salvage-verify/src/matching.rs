//! Settling most rows without asking live row by row: a tenant's snapshot rows are matched
//! with the live rows its ownership chains lead to (read once for all tenants, see
//! [`salvage_source::KeptRows`]) by the raw COPY text of the key, and a row whose written
//! columns have the same COPY text on both sides is equal.
//!
//! Same text means same value: both sides are COPY output under the same pinned session
//! settings, and a column's text read back gives the value it came from (floats print
//! exactly, times in UTC). The converse does not hold — `1.50` and `1.5` differ as text, a
//! drifted type prints differently, a `citext` compares without case, a row may have moved to
//! another tenant — so every row not settled here goes to the typed comparison by key in
//! live ([`crate::compare`]), which has the last word, as it has for every row it is given.

use std::borrow::Cow;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use salvage_plan::TablePlan;
use salvage_source::{TextRow, rows_of};

/// Where a keyed table's columns are in snapshot rows and in the live rows read for it.
#[derive(Debug)]
pub struct Layout {
    /// The columns read from live: the written columns, then key columns not written.
    pub live_columns: Vec<String>,
    /// Positions of the written columns in snapshot rows; in live rows they come first.
    pub(crate) snapshot_written: Vec<usize>,
    pub(crate) snapshot_key: Vec<usize>,
    pub(crate) live_key: Vec<usize>,
}

impl Layout {
    /// `None` for a table without a key.
    #[must_use]
    pub fn new(table: &TablePlan) -> Option<Self> {
        let key = table.key.as_ref()?;
        let mut live_columns: Vec<String> = table
            .written_columns()
            .map(|column| column.name.clone())
            .collect();
        let snapshot_written = live_columns
            .iter()
            .map(|name| table.column_index(name))
            .collect::<Option<Vec<_>>>()?;
        for column in &key.columns {
            if !live_columns.contains(column) {
                live_columns.push(column.clone());
            }
        }
        let snapshot_key = key
            .columns
            .iter()
            .map(|name| table.column_index(name))
            .collect::<Option<Vec<_>>>()?;
        let live_key = key
            .columns
            .iter()
            .map(|name| live_columns.iter().position(|live| live == name))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            live_columns,
            snapshot_written,
            snapshot_key,
            live_key,
        })
    }
}

/// One tenant's rows of one table, matched.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Matched {
    /// Snapshot rows looked at.
    pub snapshot: u64,
    /// Snapshot rows found in the tenant's live rows with the same text.
    pub equal: u64,
    /// The tenant's live rows.
    pub live: u64,
    /// Snapshot rows not settled here (decoded, snapshot column order): for the typed
    /// comparison.
    pub unsettled: Vec<TextRow>,
}

/// Matches a tenant's snapshot rows (all snapshot columns) with its live rows (the layout's
/// live columns), both as chunks of COPY rows.
#[must_use]
pub fn match_rows(layout: &Layout, snapshot: &[Bytes], live: &[Bytes]) -> Matched {
    let mut matched = Matched::default();
    let mut by_key: FxHashMap<Cow<'_, [u8]>, &[u8]> = FxHashMap::default();
    let mut fields: Vec<&[u8]> = Vec::new();
    for row in live.iter().flat_map(|chunk| rows_of(chunk)) {
        matched.live += 1;
        fields.clear();
        fields.extend(salvage_copy::fields(row));
        if let Some(key) = key_of(&fields, &layout.live_key) {
            by_key.insert(key, row);
        }
    }
    let mut live_fields: Vec<&[u8]> = Vec::new();
    for row in snapshot.iter().flat_map(|chunk| rows_of(chunk)) {
        matched.snapshot += 1;
        fields.clear();
        fields.extend(salvage_copy::fields(row));
        let found = key_of(&fields, &layout.snapshot_key).and_then(|key| by_key.get(&key));
        if let Some(live_row) = found {
            live_fields.clear();
            live_fields.extend(salvage_copy::fields(live_row));
            if same_text(layout, &fields, &live_fields) {
                matched.equal += 1;
                continue;
            }
        }
        matched.unsettled.push(
            fields
                .iter()
                .map(|field| salvage_copy::decode_text(field))
                .collect(),
        );
    }
    matched
}

/// The raw text of the key fields, tab-joined (a raw field never holds a tab); `None` when
/// a key field is NULL or the row is short — such a row never matches by key.
pub(crate) fn key_of<'a>(fields: &[&'a [u8]], positions: &[usize]) -> Option<Cow<'a, [u8]>> {
    if let [position] = positions {
        let field = *fields.get(*position)?;
        return (field != b"\\N").then_some(Cow::Borrowed(field));
    }
    let mut key = Vec::new();
    for (index, &position) in positions.iter().enumerate() {
        let field = *fields.get(position)?;
        if field == b"\\N" {
            return None;
        }
        if index > 0 {
            key.push(b'\t');
        }
        key.extend_from_slice(field);
    }
    Some(Cow::Owned(key))
}

/// Whether a snapshot row's written columns have the same COPY text as the live row's
/// (`fields` in snapshot order, `live_fields` in the layout's live columns).
pub(crate) fn same_text(layout: &Layout, fields: &[&[u8]], live_fields: &[&[u8]]) -> bool {
    layout
        .snapshot_written
        .iter()
        .enumerate()
        .all(|(live_position, &position)| {
            fields.get(position).is_some() && fields.get(position) == live_fields.get(live_position)
        })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::{Layout, Matched, key_of, match_rows};

    /// Key in snapshot column 0, live rows with the written columns (all three).
    fn layout() -> Layout {
        Layout {
            live_columns: vec!["id".into(), "name".into(), "note".into()],
            snapshot_written: vec![0, 1, 2],
            snapshot_key: vec![0],
            live_key: vec![0],
        }
    }

    fn chunk(rows: &[&str]) -> Bytes {
        Bytes::from(
            rows.iter()
                .flat_map(|row| {
                    [
                        row, "
",
                    ]
                })
                .collect::<String>(),
        )
    }

    #[test]
    fn same_text_is_equal_and_everything_else_is_unsettled() {
        let snapshot = [
            chunk(&["1\ta\t\\N", "2\tb\tx"]),
            chunk(&["3\tc\t1.50", "4\td\t"]),
        ];
        let live = [chunk(&[
            "3\tc\t1.5",
            "1\ta\t\\N",
            "4\td\t",
            "9\tz\tlive only",
        ])];
        let matched = match_rows(&layout(), &snapshot, &live);
        assert_eq!(
            matched,
            Matched {
                snapshot: 4,
                equal: 2,
                live: 4,
                unsettled: vec![
                    vec![Some("2".into()), Some("b".into()), Some("x".into())],
                    vec![Some("3".into()), Some("c".into()), Some("1.50".into())],
                ],
            }
        );
    }

    #[test]
    fn null_and_empty_string_differ() {
        let matched = match_rows(&layout(), &[chunk(&["1\ta\t"])], &[chunk(&["1\ta\t\\N"])]);
        assert_eq!(matched.equal, 0);
        assert_eq!(
            matched.unsettled,
            vec![vec![
                Some("1".into()),
                Some("a".into()),
                Some(String::new())
            ]]
        );
    }

    #[test]
    fn composite_keys_and_columns_in_other_places() {
        // Snapshot: (note, b, a); live reads written (a, note) then the key's b.
        let layout = Layout {
            live_columns: vec!["a".into(), "note".into(), "b".into()],
            snapshot_written: vec![2, 0],
            snapshot_key: vec![2, 1],
            live_key: vec![0, 2],
        };
        let snapshot = [chunk(&["same\t1\t2", "changed\t1\t3", "n\t\\N\t4"])];
        let live = [chunk(&["2\tsame\t1", "3\tother\t1", "4\tn\t\\N"])];
        let matched = match_rows(&layout, &snapshot, &live);
        assert_eq!((matched.snapshot, matched.equal, matched.live), (3, 1, 3));
        assert_eq!(matched.unsettled.len(), 2, "a changed row and a NULL key");
    }

    #[test]
    fn key_fields_are_joined_unambiguously() {
        let fields: Vec<&[u8]> = vec![b"a", b"b\\tc", b"\\N"];
        assert_eq!(key_of(&fields, &[0, 1]).as_deref(), Some(&b"a\tb\\tc"[..]));
        assert_eq!(key_of(&fields, &[2]), None);
        assert_eq!(key_of(&fields, &[0, 2]), None);
        assert_eq!(key_of(&fields, &[5]), None);
    }

    #[test]
    fn short_snapshot_rows_are_never_equal() {
        let matched = match_rows(&layout(), &[chunk(&["1\ta"])], &[chunk(&["1\ta\t"])]);
        assert_eq!((matched.equal, matched.unsettled.len()), (0, 1));
    }
}
