//! A tenant's rows of a table, made ready to write: the kept rows the plan says to write
//! (or, in a catch-up pass, the ones that waited), cut down to the columns live has, split
//! into the rows only this tenant reaches (COPY straight into the table) and those reaching
//! other chosen tenants too (inserted with `ON CONFLICT DO NOTHING`: whichever of them gets
//! there first writes it), with the largest value of each sequence-backed column noted.

use salvage_closure::guards::positions;
use salvage_closure::{RestorePlan, raw_key};
use salvage_plan::TablePlan;
use salvage_source::{Reach, SelectedTable};

use crate::TenantError;

/// One kept row and whether other chosen tenants reach it too.
#[derive(Debug, Clone)]
pub struct Row {
    pub row: Vec<u8>,
    pub joint: bool,
}

/// Where a table's written columns and sequences are in its kept rows.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Positions of the written columns, in order; `None` when every kept column is written.
    pub written: Option<Vec<usize>>,
    pub written_names: Vec<String>,
    /// (sequence number in the table plan, position) of each sequence moving up.
    pub sequences: Vec<(usize, usize)>,
    pub key: Option<Vec<usize>>,
}

impl Shape {
    pub fn new(table: &TablePlan, kept: &[String]) -> Result<Self, TenantError> {
        let written_names: Vec<String> = table
            .written_columns()
            .map(|column| column.name.clone())
            .collect();
        let places = positions(table, kept, &written_names)?;
        let all = places.len() == kept.len() && places.iter().enumerate().all(|(n, p)| n == *p);
        let mut sequences = Vec::new();
        for (number, sequence) in table.sequences.iter().enumerate() {
            if sequence.increment > 0 {
                let place = positions(table, kept, std::slice::from_ref(&sequence.column))?[0];
                sequences.push((number, place));
            }
        }
        let key = match &table.key {
            Some(key) => Some(positions(table, kept, &key.columns)?),
            None => None,
        };
        Ok(Self {
            written: (!all).then_some(places),
            written_names,
            sequences,
            key,
        })
    }

    /// Appends the written part of `row` (with its newline) to `out`.
    pub fn write_into(&self, row: &[u8], out: &mut Vec<u8>) {
        match &self.written {
            None => out.extend_from_slice(row),
            Some(places) => {
                let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                for (number, &place) in places.iter().enumerate() {
                    if number > 0 {
                        out.push(b'\t');
                    }
                    out.extend_from_slice(fields.get(place).copied().unwrap_or(salvage_copy::NULL));
                }
            }
        }
        out.push(b'\n');
    }

    /// The written columns of `row`, decoded (for binding as arrays).
    pub fn decode(&self, row: &[u8]) -> Vec<Option<String>> {
        let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
        let decode =
            |field: Option<&&[u8]>| field.and_then(|field| salvage_copy::decode_text(field));
        match &self.written {
            None => fields.iter().map(|field| decode(Some(field))).collect(),
            Some(places) => places
                .iter()
                .map(|&place| decode(fields.get(place)))
                .collect(),
        }
    }

    /// Notes the row's sequence-backed values in `maxima` (aligned with `sequences`).
    pub fn note_maxima(&self, row: &[u8], maxima: &mut [Option<i64>]) {
        if self.sequences.is_empty() {
            return;
        }
        let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
        for ((_, place), maximum) in self.sequences.iter().zip(maxima.iter_mut()) {
            let value = fields
                .get(*place)
                .and_then(|field| std::str::from_utf8(field).ok()?.parse::<i64>().ok());
            if let Some(value) = value {
                *maximum = Some(maximum.map_or(value, |current| current.max(value)));
            }
        }
    }
}

/// The rows of table `index` the plan writes for tenant `number`, in reading order.
pub fn planned_rows(
    plan: &RestorePlan,
    index: usize,
    number: usize,
    kept: &SelectedTable,
    shape: &Shape,
) -> Result<Vec<Row>, TenantError> {
    let tenant = &plan.tenants[number];
    let filter = &tenant.filters[index];
    let mut rows = Vec::new();
    let mut position = 0u64;
    for reach in [Reach::Sole, Reach::Joint] {
        for chunk in kept.rows(number, reach)? {
            for row in salvage_source::rows_of(&chunk) {
                let here = position;
                position += 1;
                let key = shape.key.as_ref().and_then(|places| {
                    let fields: Vec<&[u8]> = salvage_copy::fields(row).collect();
                    raw_key(&fields, places)
                });
                if filter.keeps(here, key.as_deref()) {
                    rows.push(Row {
                        row: row.to_vec(),
                        joint: reach == Reach::Joint,
                    });
                }
            }
        }
    }
    Ok(rows)
}
