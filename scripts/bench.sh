#!/usr/bin/env bash
# The benchmark suite (issues 5 and 9): on each bench schema — the tracker
# (fixtures/app/schema.sql) and the docs wiki (scripts/bench/docs.sql) — builds a multi-tenant
# database, a snapshot of it and a custom-format dump, then measures salvage against what a
# responder would otherwise run, each figure the min/median/max of several repetitions with the
# two sides interleaved:
#   B1  restore 4% of the tenants (40 of 1,000) from the custom dump   vs  pg_restore -j2 of it all
#   B2  the same from the snapshot database       vs  a hand-written per-table COPY script (psql)
#   B3  salvage plan over the whole dump            vs  pg_restore --data-only -f /dev/null
#   B4  restore 40% of the tenants (400 of 1,000)   vs  COPY FROM of exactly those rows
#   B5  peak RSS of a dump restore, dump of 10x the tenants vs 1x
#   B6  tenants per second for 1,000 tiny tenants at --jobs 1, 2, 4, 8
#   B7  B2's restore into a live database of 10x the tenants vs into the 1x one
#   B8  a second run of a finished B2 restore     vs  the first run
# Every run is checked (row counts, salvage's report, the restored rows' hashes); a run that
# fails a check is reported as FAILED, never as a number. Prints a Markdown table per schema
# and writes target/bench/results.md and target/bench/results.json.
#
# Usage: scripts/bench.sh [--scale N] [--reps R] [--quick] [--skip-10x] [--only B1,B2,...]
#                         [--schema tracker|docs|both] [--jobs N] [--reuse]
#   --scale N     N*1,000 tenants per schema (default 1: ~2.0 M tracker rows, ~1.4 M docs rows)
#   --reps R      repetitions per figure (default 3; 2 with --quick)
#   --quick       100 small tenants, 100 tiny ones: a smoke test of the harness (a few minutes)
#   --skip-10x    skip the 10x data sets of B5 and B7 (generating them takes a while)
#   --only LIST   run only these benchmarks (the data they need is still built)
#   --schema S    tracker, docs or both (default)
#   --jobs N      salvage's --jobs for B1-B5, B7, B8 (default 4, salvage's own default)
#   --reuse       keep databases and dumps from an earlier run (needs BENCH_DATABASE_URL)
# Environment:
#   SALVAGE_BIN          the salvage binary; when unset, `cargo build --release --bin salvage`
#                        builds it (into $CARGO_TARGET_DIR or target/)
#   BENCH_GIT_COMMIT, BENCH_GIT_DIRTY   what the results say the binary was built from
#                        (default: this checkout's HEAD, "+dirty" with uncommitted changes)
#   BENCH_DATABASE_URL   use this server (superuser) instead of a private cluster
#                        under target/pg/bench
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

args=()
command_line="scripts/bench.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
        --scale|--reps|--only|--jobs|--schema) [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }
            args+=("$1" "$2"); shift 2 ;;
        --quick|--skip-10x|--reuse) args+=("$1"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ -z "${SALVAGE_BIN:-}" ]; then
    echo "== building salvage (release)" >&2
    cargo build --release --quiet --bin salvage
    SALVAGE_BIN="${CARGO_TARGET_DIR:-target}/release/salvage"
fi
[ -x "$SALVAGE_BIN" ] || { echo "error: $SALVAGE_BIN is not an executable" >&2; exit 2; }
SALVAGE_BIN=$(readlink -f "$SALVAGE_BIN")

if [ -n "${BENCH_DATABASE_URL:-}" ]; then
    export DATABASE_URL=$BENCH_DATABASE_URL
else
    pg_private_start bench
    trap 'pg_private_stop bench' EXIT
    export BENCH_PRIVATE_CLUSTER=1
fi

BENCH_GIT_COMMIT=${BENCH_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
# Uncommitted changes to salvage's sources are in the binary when bench.sh built it.
[ -n "${BENCH_GIT_DIRTY+set}" ] ||
    BENCH_GIT_DIRTY=$(git status --porcelain -- crates src Cargo.toml Cargo.lock 2>/dev/null | grep -q . && echo "+dirty" || true)
export BENCH_GIT_COMMIT BENCH_GIT_DIRTY

PYTHONDONTWRITEBYTECODE=1 python3 scripts/bench/run.py --salvage "$SALVAGE_BIN" --command "$command_line" "${args[@]}"
