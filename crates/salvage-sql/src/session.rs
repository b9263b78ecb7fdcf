//! Statements that shape a tenant's transaction.

use salvage_catalog::QualifiedName;
use salvage_quote::quote_ident;

use salvage_quote::quote_literal;

/// `BEGIN`, the lock and statement timeouts for the transaction only, and the deferred
/// constraints, as one simple query: one round trip. The timeouts are salvage's own text
/// (`5000ms`), quoted as literals.
#[must_use]
pub fn begin(
    lock_timeout: &str,
    statement_timeout: &str,
    deferred: &[(QualifiedName, String)],
) -> String {
    let mut sql = format!(
        "BEGIN; SELECT pg_catalog.set_config('lock_timeout', {}, true), \
         pg_catalog.set_config('statement_timeout', {}, true)",
        quote_literal(lock_timeout),
        quote_literal(statement_timeout)
    );
    if !deferred.is_empty() {
        sql.push_str("; ");
        sql.push_str(&defer_constraints(deferred));
    }
    sql
}

/// `SET CONSTRAINTS … IMMEDIATE`: the deferred constraints checked now (a tenant's, inside
/// its savepoint, before the next tenant of the group), and immediate from then on.
#[must_use]
pub fn constraints_now(constraints: &[(QualifiedName, String)]) -> String {
    format!("SET CONSTRAINTS {} IMMEDIATE", names(constraints))
}

fn names(constraints: &[(QualifiedName, String)]) -> String {
    constraints
        .iter()
        .map(|(table, name)| format!("{}.{}", quote_ident(&table.schema), quote_ident(name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SET CONSTRAINTS "s"."c", … DEFERRED`: checked at commit, when a cycle's rows are all in.
#[must_use]
pub fn defer_constraints(constraints: &[(QualifiedName, String)]) -> String {
    format!("SET CONSTRAINTS {} DEFERRED", names(constraints))
}

/// The savepoint each tenant of a group writes in.
pub const TENANT_SAVEPOINT: &str = "salvage_tenant";

/// Opens a tenant's savepoint in one round trip: first releasing the previous tenant's
/// (`release_previous`; a savepoint rolled back to is still there and releases as empty), then
/// deferring `deferred`'s constraints. Statements without parameters, for the simple protocol.
#[must_use]
pub fn open_tenant_savepoint(
    release_previous: bool,
    deferred: &[(QualifiedName, String)],
) -> String {
    let mut sql = String::new();
    if release_previous {
        sql.push_str(&format!("RELEASE SAVEPOINT {TENANT_SAVEPOINT}; "));
    }
    sql.push_str(&format!("SAVEPOINT {TENANT_SAVEPOINT}"));
    if !deferred.is_empty() {
        sql.push_str("; ");
        sql.push_str(&defer_constraints(deferred));
    }
    sql
}

/// Moves sequences ahead of the largest restored values, never back, in one statement: each
/// moves only when the restored maximum reaches the sequence's last value, and then only if
/// `nextval` (atomic, so a concurrent session's progress is seen) is still not past it. Gives
/// an array with each new value, or NULL where nothing moved. Parameters: `$1…$n` the
/// sequences' quoted names, then `$n+1…$2n` the maxima.
#[must_use]
pub fn advance_sequences(sequences: &[String]) -> String {
    format!("SELECT {}", sequences_advanced(sequences, 1))
}

/// [`advance_sequences`]'s array, its parameters from `$first`: for the end of another
/// statement.
#[must_use]
pub fn sequences_advanced(sequences: &[String], first: usize) -> String {
    let count = sequences.len();
    let parts: Vec<String> = sequences
        .iter()
        .enumerate()
        .map(|(n, sequence)| {
            let name = first + n;
            let maximum = first + count + n;
            format!(
                "(SELECT CASE WHEN ${maximum}::int8 >= q.last_value THEN \
                   CASE WHEN pg_catalog.nextval(${name}::regclass) <= ${maximum}::int8 \
                   THEN pg_catalog.setval(${name}::regclass, ${maximum}::int8) END \
                 END FROM {sequence} AS q)"
            )
        })
        .collect();
    format!("ARRAY[{}]::int8[]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use salvage_catalog::QualifiedName;

    use super::{advance_sequences, begin, defer_constraints, open_tenant_savepoint};

    #[test]
    fn a_tenant_savepoint_releases_the_one_before() {
        assert_eq!(
            open_tenant_savepoint(false, &[]),
            "SAVEPOINT salvage_tenant"
        );
        assert_eq!(
            open_tenant_savepoint(true, &[(QualifiedName::new("public", "t"), "c".into())]),
            "RELEASE SAVEPOINT salvage_tenant; SAVEPOINT salvage_tenant; \
             SET CONSTRAINTS \"public\".\"c\" DEFERRED"
        );
    }

    #[test]
    fn sequences_move_forward_only() {
        assert_eq!(
            advance_sequences(&["\"public\".\"s\"".into()]),
            "SELECT ARRAY[(SELECT CASE WHEN $2::int8 >= q.last_value THEN \
             CASE WHEN pg_catalog.nextval($1::regclass) <= $2::int8 \
             THEN pg_catalog.setval($1::regclass, $2::int8) END END FROM \"public\".\"s\" AS q)]::int8[]"
        );
        let deferred = [(QualifiedName::new("public", "accounts"), "a_fkey".into())];
        assert_eq!(
            defer_constraints(&deferred),
            "SET CONSTRAINTS \"public\".\"a_fkey\" DEFERRED"
        );
        assert_eq!(
            begin("5000ms", "600000ms", &deferred),
            "BEGIN; SELECT pg_catalog.set_config('lock_timeout', '5000ms', true), \
             pg_catalog.set_config('statement_timeout', '600000ms', true); \
             SET CONSTRAINTS \"public\".\"a_fkey\" DEFERRED"
        );
    }
}
