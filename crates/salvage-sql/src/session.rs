//! Statements that shape a tenant's transaction.

use salvage_catalog::QualifiedName;
use salvage_quote::quote_ident;

/// Sets `lock_timeout` (`$1`) and `statement_timeout` (`$2`) for the transaction only.
pub const TIMEOUTS: &str = "SELECT pg_catalog.set_config('lock_timeout', $1, true), \
                            pg_catalog.set_config('statement_timeout', $2, true)";

/// `SET CONSTRAINTS "s"."c", … DEFERRED`: checked at commit, when a cycle's rows are all in.
#[must_use]
pub fn defer_constraints(constraints: &[(QualifiedName, String)]) -> String {
    let names: Vec<String> = constraints
        .iter()
        .map(|(table, name)| format!("{}.{}", quote_ident(&table.schema), quote_ident(name)))
        .collect();
    format!("SET CONSTRAINTS {} DEFERRED", names.join(", "))
}

/// Moves sequences ahead of the largest restored values, never back, in one statement: each
/// moves only when the restored maximum reaches the sequence's last value, and then only if
/// `nextval` (atomic, so a concurrent session's progress is seen) is still not past it. Gives
/// an array with each new value, or NULL where nothing moved. Parameters: `$1…$n` the
/// sequences' quoted names, then `$n+1…$2n` the maxima.
#[must_use]
pub fn advance_sequences(sequences: &[String]) -> String {
    let count = sequences.len();
    let parts: Vec<String> = sequences
        .iter()
        .enumerate()
        .map(|(n, sequence)| {
            let name = n + 1;
            let maximum = count + n + 1;
            format!(
                "(SELECT CASE WHEN ${maximum}::int8 >= q.last_value THEN \
                   CASE WHEN pg_catalog.nextval(${name}::regclass) <= ${maximum}::int8 \
                   THEN pg_catalog.setval(${name}::regclass, ${maximum}::int8) END \
                 END FROM {sequence} AS q)"
            )
        })
        .collect();
    format!("SELECT ARRAY[{}]::int8[]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use salvage_catalog::QualifiedName;

    use super::{advance_sequences, defer_constraints};

    #[test]
    fn sequences_move_forward_only() {
        assert_eq!(
            advance_sequences(&["\"public\".\"s\"".into()]),
            "SELECT ARRAY[(SELECT CASE WHEN $2::int8 >= q.last_value THEN \
             CASE WHEN pg_catalog.nextval($1::regclass) <= $2::int8 \
             THEN pg_catalog.setval($1::regclass, $2::int8) END END FROM \"public\".\"s\" AS q)]::int8[]"
        );
        assert_eq!(
            defer_constraints(&[(QualifiedName::new("public", "accounts"), "a_fkey".into())]),
            "SET CONSTRAINTS \"public\".\"a_fkey\" DEFERRED"
        );
    }
}
