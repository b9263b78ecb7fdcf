//! The rental chain's incident (issue 8): a store deleted with every row that reaches it by
//! any chain, the other stores working on, and the database it must come back to — built
//! from the snapshot and the other stores' work, never from salvage's idea of a tenant.

use std::collections::BTreeMap;

use super::{TestDatabase, rental, row_counts};

/// Stores in the fixture: enough for rows that reach three stores (store 1's rentals of
/// store 2's items served by store 3's staff).
pub const STORES: u32 = 4;

/// What the other stores do after the snapshot, in live (after the deletion) and in the
/// expected database alike. Nothing here references a row that reaches store 2, so the same
/// statements give the same rows on both sides (sequences start from the same positions).
pub const OTHERS_KEEP_WORKING: &str = "
    -- Store 1 rents out its own copy again and takes the payment (identity and serial
    -- defaults: rental 801, payment 1601).
    INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id, last_update)
        VALUES ('2026-04-25 10:00:00+00', 1, 1, 1, '2026-04-25 10:00:00+00');
    INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
        VALUES (1, 2, currval(pg_get_serial_sequence('rental', 'rental_id')), 3.99, '2026-04-25 10:01:00+00');
    -- A customer of store 1 rents an item of store 3 (a crossing that does not touch store 2).
    INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id, return_date, return_store_id, last_update)
        VALUES ('2026-04-26 11:00:00+00', 121, 2, 1, '2026-04-27 09:00:00+00', 1, '2026-04-27 09:00:00+00');
    INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date, note)
        VALUES (2, 1, currval(pg_get_serial_sequence('rental', 'rental_id')), 2.99, '2026-04-27 09:00:00+00', E'after\\tthe snapshot');
    -- A reply (identity ALWAYS) in store 3's first thread: note 81 is on rental 403 (store 3's
    -- customer, store 4's item), the reply on rental 410 (store 3's alone).
    INSERT INTO rental_note (rental_id, reply_to, written_at, body, meta)
        VALUES (410, 81, '2026-04-28 12:00:00+00', E'follow-up\\nby phone', '{\"store\": 3}');
    -- A customer of store 1 moved; store 4's rental 640 (r = 40, out until now) came back.
    UPDATE customer SET address = E'1 New Street\\nFlat 2', last_update = '2026-04-29 00:00:00+00'
        WHERE customer_id = 1;
    UPDATE rental SET return_date = '2026-04-29 10:00:00+00', return_store_id = 4 WHERE rental_id = 640;
    -- Store 3 voided a payment: 801 is on rental 401 (r = 1: store 3's customer, item and staff).
    DELETE FROM payment WHERE payment_id = 801;
    -- Store 2's kiosk goes on logging into a table salvage leaves alone.
    INSERT INTO kiosk_log (store_id, logged_at, message)
        VALUES (2, '2026-04-29 08:00:00+00', 'store 2 kiosk still logging');
";

/// Rows per table of the expected database (and of live after a complete restore): the
/// fixture's 4 stores (fixtures/rental/generate.sql) plus the other stores' work.
pub const EXPECTED_ROWS: &[(&str, i64)] = &[
    ("public.category", 5),
    ("public.customer", 4 * 50),
    ("public.film", 40),
    ("public.film_category", 50),
    ("public.inventory", 4 * 60),
    ("public.kiosk_log", 4 * 5 + 1),
    ("public.language", 3),
    ("public.payment", 4 * 266 + 2 - 1),
    ("public.rental", 4 * 200 + 2),
    ("public.rental_note", 4 * 40 + 1),
    ("public.staff", 4 * 4),
    ("public.store", 4),
];

/// What `DELETE FROM store WHERE store_id = 2` takes, per table: every row reaching store 2
/// by any chain (the counts worked out in fixtures/rental/generate.sql).
pub const CASCADE_DELETED: &[(&str, i64)] = &[
    ("public.category", 0),
    ("public.customer", 50),
    ("public.film", 0),
    ("public.film_category", 0),
    ("public.inventory", 60),
    ("public.kiosk_log", 0),
    ("public.language", 0),
    // Store 2's 266, 83 of store 1 (27 through the item, 26 through the rental's staff, 13
    // both, 11 through their own staff, 6 through the return store), 13 of store 4.
    ("public.payment", 266 + 83 + 13),
    // Store 2's 200, 54 of store 1 (20 items, 20 staff, 10 both, 4 returns), 10 of store 4.
    ("public.rental", 200 + 54 + 10),
    // Store 2's 40 and store 1's 40 (threads started on rentals of store 2's items).
    ("public.rental_note", 40 + 40),
    ("public.staff", 4),
    ("public.store", 1),
];

/// `pairs` as a map, to compare with what the helpers return.
pub fn table_counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs
        .iter()
        .map(|(table, count)| ((*table).to_owned(), *count))
        .collect()
}

/// The incident: `snapshot` is the chain before it; `live` lost store 2 by cascade and then
/// took the other stores' work; `expected` is the snapshot with the same work, which is what
/// live must equal once store 2 is restored.
pub struct RentalIncident {
    pub snapshot: TestDatabase,
    pub live: TestDatabase,
    pub expected: TestDatabase,
    /// Rows the cascade deleted from live, per table (snapshot count minus count after).
    pub deleted: BTreeMap<String, i64>,
}

impl RentalIncident {
    pub async fn new() -> Self {
        let live = rental(STORES).await;
        let snapshot = live.snapshot("rental_snap").await;
        let expected = snapshot.snapshot("rental_expected").await;
        expected.execute(OTHERS_KEEP_WORKING).await;

        let before = row_counts(&live).await;
        live.execute("DELETE FROM store WHERE store_id = 2").await;
        let after = row_counts(&live).await;
        let deleted = before
            .iter()
            .map(|(table, count)| {
                let left = after
                    .get(table)
                    .unwrap_or_else(|| panic!("{table} disappeared"));
                (table.clone(), count - left)
            })
            .collect();
        live.execute(OTHERS_KEEP_WORKING).await;
        Self {
            snapshot,
            live,
            expected,
            deleted,
        }
    }

    /// Every row the cascade deleted.
    pub fn deleted_total(&self) -> i64 {
        self.deleted.values().sum()
    }

    /// `COMMAND --snapshot SNAPSHOT --target LIVE --root public.store --tenants IDS`.
    pub fn args(&self, command: &str, tenants: &str) -> Vec<String> {
        store_args(command, &self.snapshot.url, &self.live.url, tenants)
    }
}

/// `COMMAND --snapshot SNAPSHOT --target TARGET --root public.store --tenants IDS`.
pub fn store_args(command: &str, snapshot: &str, target: &str, tenants: &str) -> Vec<String> {
    [
        command,
        "--snapshot",
        snapshot,
        "--target",
        target,
        "--root",
        "public.store",
        "--tenants",
        tenants,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Payments with every store they reach, one column per chain, written by hand from the
/// schema: the customer's, the staff member's, and the rental's customer, staff member,
/// item and return store.
const PAYMENT_STORES: &str = "
    SELECT p.payment_id, p.payment_date,
           c.store_id AS customer_store, ps.store_id AS staff_store,
           rc.store_id AS rental_customer_store, rs.store_id AS rental_staff_store,
           i.store_id AS item_store, r.return_store_id AS return_store
    FROM payment p
    JOIN customer c ON c.customer_id = p.customer_id
    JOIN staff ps ON ps.staff_id = p.staff_id
    JOIN rental r ON r.rental_id = p.rental_id
    JOIN customer rc ON rc.customer_id = r.customer_id
    JOIN staff rs ON rs.staff_id = r.staff_id
    JOIN inventory i ON i.inventory_id = r.inventory_id";

/// The number of payments reaching `store` by any chain, counted by hand-written SQL.
pub fn payments_reaching(store: u32) -> String {
    format!(
        "SELECT count(*) FROM ({PAYMENT_STORES}) p WHERE {store} IN (customer_store, staff_store, \
         rental_customer_store, rental_staff_store, item_store, return_store)"
    )
}

/// The number of payments reaching both `store` and `other`, each by any chain.
pub fn payments_reaching_both(store: u32, other: u32) -> String {
    let any = "(customer_store, staff_store, rental_customer_store, rental_staff_store, item_store, return_store)";
    format!("SELECT count(*) FROM ({PAYMENT_STORES}) p WHERE {store} IN {any} AND {other} IN {any}")
}

/// Whether payment `id` reaches `store` through its reference to `parent` (`customer`,
/// `staff`, or `rental` and on from the rental), by hand-written SQL: one boolean.
pub fn payment_reaches_through(id: &str, parent: &str, store: u32) -> String {
    let stores = match parent {
        "customer" => "customer_store",
        "staff" => "staff_store",
        "rental" => "rental_customer_store, rental_staff_store, item_store, return_store",
        other => panic!("a payment references no {other}"),
    };
    format!(
        "SELECT coalesce(bool_or({store} IN ({stores})), false) FROM ({PAYMENT_STORES}) p WHERE payment_id = {id}"
    )
}

/// The IDs of payments reaching `store` by any chain, in order.
pub fn payment_ids_reaching(store: u32) -> String {
    format!(
        "SELECT payment_id::text FROM ({PAYMENT_STORES}) p WHERE {store} IN (customer_store, staff_store, \
         rental_customer_store, rental_staff_store, item_store, return_store) ORDER BY payment_id"
    )
}

/// The first payment whose customer, staff member and rental's customer, staff member and
/// return store are all store 1's, and which reaches store 2 only through its rental's item:
/// payment -> rental -> inventory -> store.
pub const PAYMENT_THROUGH_THE_ITEM_ONLY: &str = "
    SELECT min(p.payment_id) FROM payment p
    JOIN customer c ON c.customer_id = p.customer_id
    JOIN staff ps ON ps.staff_id = p.staff_id
    JOIN rental r ON r.rental_id = p.rental_id
    JOIN customer rc ON rc.customer_id = r.customer_id
    JOIN staff rs ON rs.staff_id = r.staff_id
    JOIN inventory i ON i.inventory_id = r.inventory_id
    WHERE c.store_id = 1 AND ps.store_id = 1 AND rc.store_id = 1 AND rs.store_id = 1
      AND r.return_store_id = 1 AND i.store_id = 2";

/// The first run of digits in `text`: the first key column of a key written as
/// `(payment_id, payment_date)=(5, 2026-…)` or `5, 2026-…`.
pub fn first_number(text: &str) -> Option<&str> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The IDs of payments reaching `store` and no other store, by any chain, in order.
pub fn payment_ids_reaching_only(store: u32) -> String {
    format!(
        "SELECT payment_id::text FROM ({PAYMENT_STORES}) p WHERE {store} = ALL (ARRAY[customer_store, staff_store, \
         rental_customer_store, rental_staff_store, item_store, coalesce(return_store, {store})]) ORDER BY payment_id"
    )
}
