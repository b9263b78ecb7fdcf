//! Whether a row can go in: every parent it references through the relations the plan
//! guards must exist in live after the insert — already there, or going in within the same
//! step (a table referencing itself, a cycle inserted together). The plan uses this to count
//! the rows that would wait; the merge, inside each tenant's transaction, to decide which go
//! in. Pure: the caller says which parent keys are present.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::{FxHashMap, FxHashSet};
use salvage_catalog::QualifiedName;
use salvage_plan::{Relation, SchemaPlan, TablePlan};

use crate::owned::raw_key;
use crate::{Error, Result};

/// A parent table and the columns a child references it by.
pub type ParentKey = (QualifiedName, Vec<String>);
/// The guards of each table of a step, by table index.
pub type Guards = BTreeMap<usize, Vec<Guard>>;
/// The keys each table of a step may be referenced by, by table index.
pub type Exports = BTreeMap<usize, Vec<(ParentKey, Vec<usize>)>>;
/// Parent keys to look up in live, per parent.
pub type Asked = Vec<(ParentKey, Vec<Box<[u8]>>)>;

/// One guarded relation of a table, located in its kept rows.
#[derive(Debug, Clone)]
pub struct Guard {
    pub relation: Relation,
    /// Positions of the child columns.
    pub columns: Vec<usize>,
    /// A polymorphic relation applies only when the field at the position holds the value.
    pub condition: Option<(usize, Vec<u8>)>,
    /// The parent table is inserted in the same step.
    pub within: bool,
}

impl Guard {
    #[must_use]
    pub fn parent(&self) -> ParentKey {
        (
            self.relation.parent.clone(),
            self.relation.parent_columns.clone(),
        )
    }

    /// The raw key of the parent `fields` references, when the relation applies and no part
    /// of the reference is NULL (a NULL reference needs no parent).
    #[must_use]
    pub fn parent_key(&self, fields: &[&[u8]]) -> Option<Box<[u8]>> {
        if let Some((position, value)) = &self.condition {
            if fields
                .get(*position)
                .is_none_or(|field| *field != value.as_slice())
            {
                return None;
            }
        }
        raw_key(fields, &self.columns)
    }
}

/// Positions of `columns` in rows kept with `kept` columns.
pub fn positions(table: &TablePlan, kept: &[String], columns: &[String]) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|column| {
            kept.iter().position(|name| name == column).ok_or_else(|| {
                Error::Inconsistent(format!(
                    "{}'s rows were read without their column {column}",
                    table.name
                ))
            })
        })
        .collect()
}

/// The guards of table `index` inserted in `step`, for rows kept with `kept` columns.
pub fn guards_of(
    schema: &SchemaPlan,
    step: &[usize],
    index: usize,
    kept: &[String],
) -> Result<Vec<Guard>> {
    let table = &schema.tables[index];
    table
        .guards
        .iter()
        .map(|relation| {
            let condition = match &relation.condition {
                Some(condition) => {
                    let mut raw = Vec::new();
                    salvage_copy::encode(Some(condition.value.as_bytes()), &mut raw);
                    Some((
                        positions(table, kept, std::slice::from_ref(&condition.column))?[0],
                        raw,
                    ))
                }
                None => None,
            };
            Ok(Guard {
                relation: relation.clone(),
                columns: positions(table, kept, &relation.child_columns)?,
                condition,
                within: step
                    .iter()
                    .any(|&member| schema.tables[member].name == relation.parent),
            })
        })
        .collect()
}

/// The keys a table's rows may be referenced by: (parent key, positions) for each.
pub fn exports_of(table: &TablePlan, kept: &[String]) -> Result<Vec<(ParentKey, Vec<usize>)>> {
    table
        .exports
        .iter()
        .map(|columns| {
            Ok((
                (table.name.clone(), columns.clone()),
                positions(table, kept, columns)?,
            ))
        })
        .collect()
}

/// A row considered for a step: its table and its kept fields.
#[derive(Debug)]
pub struct Candidate<'r> {
    pub table: usize,
    pub fields: Vec<&'r [u8]>,
}

/// Which candidates are held back, and by which parent (`(guard number, parent key)`):
/// first those whose parent from an earlier step is absent (`present` says), then, to a
/// fixpoint, those whose parent of the same step is neither present nor going in.
pub fn held_back(
    candidates: &[Candidate<'_>],
    guards: &Guards,
    exports: &Exports,
    present: &dyn Fn(&ParentKey, &[u8]) -> bool,
) -> Vec<Option<(usize, Box<[u8]>)>> {
    let none = Vec::new();
    let mut held: Vec<Option<(usize, Box<[u8]>)>> = vec![None; candidates.len()];
    for (place, candidate) in candidates.iter().enumerate() {
        for (number, guard) in guards
            .get(&candidate.table)
            .unwrap_or(&none)
            .iter()
            .enumerate()
        {
            if guard.within {
                continue;
            }
            if let Some(key) = guard.parent_key(&candidate.fields) {
                if !present(&guard.parent(), &key) {
                    held[place] = Some((number, key));
                    break;
                }
            }
        }
    }
    if !guards.values().flatten().any(|guard| guard.within) {
        return held;
    }
    loop {
        let mut going: HashMap<ParentKey, FxHashSet<Box<[u8]>>> = HashMap::new();
        for (place, candidate) in candidates.iter().enumerate() {
            if held[place].is_some() {
                continue;
            }
            for (parent, positions) in exports.get(&candidate.table).map_or(&[][..], Vec::as_slice)
            {
                if let Some(key) = raw_key(&candidate.fields, positions) {
                    going.entry(parent.clone()).or_default().insert(key);
                }
            }
        }
        let mut changed = false;
        for (place, candidate) in candidates.iter().enumerate() {
            if held[place].is_some() {
                continue;
            }
            for (number, guard) in guards
                .get(&candidate.table)
                .unwrap_or(&none)
                .iter()
                .enumerate()
            {
                if !guard.within {
                    continue;
                }
                let Some(key) = guard.parent_key(&candidate.fields) else {
                    continue;
                };
                let parent = guard.parent();
                let goes = going.get(&parent).is_some_and(|keys| keys.contains(&key));
                if !goes && !present(&parent, &key) {
                    held[place] = Some((number, key));
                    changed = true;
                    break;
                }
            }
        }
        if !changed {
            break;
        }
    }
    held
}

/// The distinct parent keys the candidates reference that `known` does not account for:
/// what to ask live, per parent. With `exports`, a key a guard of the same step references
/// that a candidate offers is not asked either: [`held_back`] decides it by whether that
/// candidate goes in (a row going in that live already has would fail its insert anyway).
pub fn keys_to_ask(
    candidates: &[Candidate<'_>],
    guards: &Guards,
    exports: Option<&Exports>,
    known: &dyn Fn(&ParentKey, &[u8]) -> bool,
) -> Asked {
    let mut offered: FxHashMap<ParentKey, FxHashSet<Box<[u8]>>> = FxHashMap::default();
    if let Some(exports) = exports {
        if guards.values().flatten().any(|guard| guard.within) {
            for candidate in candidates {
                for (parent, positions) in
                    exports.get(&candidate.table).map_or(&[][..], Vec::as_slice)
                {
                    if let Some(key) = raw_key(&candidate.fields, positions) {
                        offered.entry(parent.clone()).or_default().insert(key);
                    }
                }
            }
        }
    }
    let mut asked: HashMap<ParentKey, FxHashSet<Box<[u8]>>> = HashMap::new();
    for candidate in candidates {
        for guard in guards.get(&candidate.table).into_iter().flatten() {
            if let Some(key) = guard.parent_key(&candidate.fields) {
                let parent = guard.parent();
                if guard.within && offered.get(&parent).is_some_and(|keys| keys.contains(&key)) {
                    continue;
                }
                if !known(&parent, &key) {
                    asked.entry(parent).or_default().insert(key);
                }
            }
        }
    }
    asked
        .into_iter()
        .map(|(parent, keys)| {
            let mut keys: Vec<Box<[u8]>> = keys.into_iter().collect();
            keys.sort_unstable();
            (parent, keys)
        })
        .collect()
}

/// `public.payment (payment_id)=(7) waits for public.rental (rental_id)=(3)`.
#[must_use]
pub fn describe_wait(
    table: &TablePlan,
    kept: &[String],
    fields: &[&[u8]],
    guard: &Guard,
    key: &[u8],
) -> String {
    let own = match &table.key {
        Some(own) => match positions(table, kept, &own.columns) {
            Ok(places) => format!(
                "({})=({})",
                own.columns.join(", "),
                decode_text(fields, &places)
            ),
            Err(_) => "a row".to_owned(),
        },
        None => "a row".to_owned(),
    };
    let parent: Vec<String> = salvage_copy::fields(key)
        .map(|field| salvage_copy::decode_text(field).unwrap_or_else(|| "NULL".to_owned()))
        .collect();
    format!(
        "{} {own} waits for {} ({})=({})",
        table.name,
        guard.relation.parent,
        guard.relation.parent_columns.join(", "),
        parent.join(", ")
    )
}

/// The fields at `positions`, decoded and joined for a message.
#[must_use]
pub fn decode_text(fields: &[&[u8]], positions: &[usize]) -> String {
    positions
        .iter()
        .map(|&position| {
            fields
                .get(position)
                .and_then(|field| salvage_copy::decode_text(field))
                .unwrap_or_else(|| "NULL".to_owned())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use salvage_catalog::QualifiedName;
    use salvage_plan::{Relation, RelationOrigin};

    use super::{Candidate, Guard, held_back, keys_to_ask};

    fn guard(parent: &str, column: usize, within: bool) -> Guard {
        Guard {
            relation: Relation {
                name: format!("to_{parent}"),
                origin: RelationOrigin::DeclaredFk,
                child: QualifiedName::new("public", "notes"),
                child_columns: vec![format!("c{column}")],
                parent: QualifiedName::new("public", parent),
                parent_columns: vec!["id".into()],
                condition: None,
                deferrable: false,
                initially_deferred: false,
            },
            columns: vec![column],
            condition: None,
            within,
        }
    }

    /// Notes (`id`, `rental_id`, `reply_to`): a reply goes in only when the note it answers
    /// does.
    #[test]
    fn a_row_waits_for_a_parent_of_its_own_step_that_waits() {
        let rows: Vec<Vec<&[u8]>> = vec![
            vec![b"1", b"10", b"\\N"], // rental 10 present
            vec![b"2", b"11", b"1"],   // rental 11 absent: waits
            vec![b"3", b"10", b"2"],   // answers 2, which waits
            vec![b"4", b"10", b"1"],   // answers 1: goes in
            vec![b"5", b"10", b"9"],   // answers 9, which live has
        ];
        let candidates: Vec<Candidate<'_>> = rows
            .into_iter()
            .map(|fields| Candidate { table: 0, fields })
            .collect();
        let guards =
            BTreeMap::from([(0, vec![guard("rentals", 1, false), guard("notes", 2, true)])]);
        let exports = BTreeMap::from([(
            0,
            vec![(
                (QualifiedName::new("public", "notes"), vec!["id".to_owned()]),
                vec![0],
            )],
        )]);
        let present =
            |parent: &(QualifiedName, Vec<String>), key: &[u8]| match parent.0.name.as_str() {
                "rentals" => key == b"10",
                _ => key == b"9",
            };
        // Only what no candidate offers is asked of live: note 9, and the rentals.
        let asked = |exports| {
            let asked = keys_to_ask(&candidates, &guards, exports, &|_, _| false);
            let mut asked: Vec<(String, Vec<Vec<u8>>)> = asked
                .into_iter()
                .map(|(parent, keys)| {
                    (parent.0.name, keys.iter().map(|key| key.to_vec()).collect())
                })
                .collect();
            asked.sort();
            asked
        };
        let rentals = ("rentals".to_owned(), vec![b"10".to_vec(), b"11".to_vec()]);
        assert_eq!(
            asked(Some(&exports)),
            [("notes".to_owned(), vec![b"9".to_vec()]), rentals.clone()]
        );
        assert_eq!(
            asked(None),
            [
                (
                    "notes".to_owned(),
                    vec![b"1".to_vec(), b"2".to_vec(), b"9".to_vec()]
                ),
                rentals
            ]
        );
        let held = held_back(&candidates, &guards, &exports, &present);
        let waiting: Vec<bool> = held.iter().map(Option::is_some).collect();
        assert_eq!(waiting, [false, true, true, false, false]);
        assert_eq!(
            held[1].as_ref().map(|(guard, key)| (*guard, &**key)),
            Some((0, &b"11"[..]))
        );
        assert_eq!(
            held[2].as_ref().map(|(guard, key)| (*guard, &**key)),
            Some((1, &b"2"[..]))
        );
    }
}
