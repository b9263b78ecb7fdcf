//! Tenant IDs as typed by a user, cast to the root key's type and printed back in its
//! canonical form (`007` → `7`, upper-case UUIDs → lower case). `key_type` comes from the
//! live catalog (`format_type` quotes what needs quoting); the IDs are bound.

/// All IDs at once: `$1` a text array; one canonical text per ID, in order.
#[must_use]
pub fn canonical_all(key_type: &str) -> String {
    let key_type = crate::cast_type(key_type);
    format!(
        "SELECT pg_catalog.format('%s', u.v::{key_type}) \
         FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS u(v, n) ORDER BY u.n"
    )
}

/// One ID, `$1`: to name every ID that does not parse when the whole set fails.
#[must_use]
pub fn canonical_one(key_type: &str) -> String {
    let key_type = crate::cast_type(key_type);
    format!("SELECT pg_catalog.format('%s', ($1::text)::{key_type})")
}

#[cfg(test)]
mod tests {
    use super::{canonical_all, canonical_one};

    #[test]
    fn ids_are_bound_and_cast_to_the_key_type() {
        assert_eq!(
            canonical_all("uuid"),
            "SELECT pg_catalog.format('%s', u.v::uuid) FROM pg_catalog.unnest($1::text[]) \
             WITH ORDINALITY AS u(v, n) ORDER BY u.n"
        );
        assert_eq!(
            canonical_one("bigint"),
            "SELECT pg_catalog.format('%s', ($1::text)::bigint)"
        );
    }
}
