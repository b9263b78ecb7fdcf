//! What the checks before the first write ask the target: whether it can be written at all,
//! and what the connected role may do on each table and sequence a restore touches. Names
//! are bound (quoted, as text) and resolved with `to_regclass`; nothing is spliced.

/// In recovery (a hot standby), read-only by default (the session's starting value of
/// `default_transaction_read_only`, whatever this session set), and the role.
pub const TARGET_STATE: &str = "SELECT pg_catalog.pg_is_in_recovery(), \
    (SELECT s.reset_val FROM pg_catalog.pg_settings s \
      WHERE s.name = 'default_transaction_read_only') = 'on', \
    current_user::text";

/// For each table bound in `$1` (quoted names, text[]): its position (from 1), whether the
/// role may SELECT and INSERT, whether row-level security applies to the role, and the
/// table's policies. Tables that do not resolve are left out.
pub const TABLE_ACCESS: &str = "SELECT t.n::int4, \
    pg_catalog.has_table_privilege(c.oid, 'SELECT'), \
    pg_catalog.has_table_privilege(c.oid, 'INSERT'), \
    pg_catalog.row_security_active(c.oid), \
    ARRAY(SELECT p.polname::text FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid ORDER BY 1) \
    FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS t(name, n) \
    JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.name) \
    ORDER BY 1";

/// For each sequence bound in `$1` (quoted names, text[]): its position (from 1), and
/// whether the role may SELECT it (read `last_value`) and UPDATE it (`nextval`, `setval`).
pub const SEQUENCE_ACCESS: &str = "SELECT s.n::int4, \
    pg_catalog.has_sequence_privilege(c.oid, 'SELECT'), \
    pg_catalog.has_sequence_privilege(c.oid, 'UPDATE') \
    FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS s(name, n) \
    JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(s.name) AND c.relkind = 'S' \
    ORDER BY 1";
