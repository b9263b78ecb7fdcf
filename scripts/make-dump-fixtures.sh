#!/usr/bin/env bash
# Builds the archive reader's fixtures: a small database (the tracker schema with three
# sites, tracker_generate(3, 2, 3, 2, 5) so the fixtures stay small, plus
# fixtures/dumps/edge.sql) dumped by pg_dump 15 (the system's), 17 and 18 (from
# scripts/pg-wheels.sh) in every format and every compression each version
# supports. Output: fixtures/dumps/pg15/, pg17/, pg18/ (replaced). See fixtures/dumps/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/pg.sh
. "$ROOT/scripts/lib/pg.sh"

bash "$ROOT/scripts/pg-wheels.sh"
declare -A PG_DUMP=(
    [15]=${PG15_BIN:-/usr/lib/postgresql/15/bin}/pg_dump
    [17]=$ROOT/target/pg-wheels/17/bin/pg_dump
    [18]=$ROOT/target/pg-wheels/18/bin/pg_dump
)

NAME=archive-fixtures
pg_private_start "$NAME"
trap 'pg_private_stop "$NAME"' EXIT

DB=tracker_fixture
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "CREATE DATABASE $DB"
DB_URL=${DATABASE_URL%/*}/$DB
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$DB_URL" \
    -f "$ROOT/fixtures/app/schema.sql" -f "$ROOT/fixtures/app/generate.sql" \
    -c "SELECT tracker_generate(3, 2, 3, 2, 5)" -f "$ROOT/fixtures/dumps/edge.sql" >/dev/null
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$DB_URL" -c "VACUUM ANALYZE"

# The database's own catalog (salvage_catalog::introspect), which the schema read from each
# archive must equal.
(cd "$ROOT" && DATABASE_URL=$DB_URL cargo run -q -p salvage-archive --example catalog_json) \
    >"$ROOT/fixtures/dumps/catalog.json"

# dump VERSION OUTPUT ARGS...: one fixture; a compression the binary was built without is
# reported and left out.
dump() {
    local version=$1 output=$2
    shift 2
    local out="$ROOT/fixtures/dumps/pg$version/$output"
    if ! "${PG_DUMP[$version]}" --dbname="$DB_URL" "$@" --file="$out" 2>"$out.err"; then
        echo "pg$version/$output: not made: $(head -n 1 "$out.err")" >&2
        rm -rf "$out"
    fi
    rm -f "$out.err"
}

# pipe VERSION OUTPUT ARGS...: a custom archive written to a pipe, so no data offsets are set.
pipe() {
    local version=$1 output=$2
    shift 2
    "${PG_DUMP[$version]}" --dbname="$DB_URL" --format=custom "$@" |
        cat >"$ROOT/fixtures/dumps/pg$version/$output"
}

for version in 15 17 18; do
    rm -rf "$ROOT/fixtures/dumps/pg$version"
    mkdir -p "$ROOT/fixtures/dumps/pg$version"
    "${PG_DUMP[$version]}" --version
done

# pg_dump 15 knows only gzip, as -Z LEVEL (0 = none).
dump 15 custom-none.dump -Fc -Z0
dump 15 custom-gzip.dump -Fc
dump 15 custom-gzip1.dump -Fc -Z1
pipe 15 custom-pipe-gzip.dump
dump 15 dir-none -Fd -Z0
dump 15 dir-gzip -Fd -Z6
dump 15 tar.tar -Ft
dump 15 plain.sql -Fp
dump 15 plain.sql.gz -Fp -Z6

# pg_dump 17 and 18: --compress=METHOD[:LEVEL].
for version in 17 18; do
    dump $version custom-none.dump -Fc --compress=none
    dump $version custom-gzip.dump -Fc
    dump $version custom-lz4.dump -Fc --compress=lz4
    dump $version custom-zstd.dump -Fc --compress=zstd
    dump $version dir-none -Fd --compress=none
    dump $version dir-gzip -Fd --compress=gzip
    dump $version dir-lz4 -Fd --compress=lz4
    dump $version dir-zstd -Fd --compress=zstd:9
    dump $version tar.tar -Ft
    dump $version plain.sql -Fp
    dump $version plain.sql.gz -Fp --compress=gzip
done
dump 18 custom-gzip9.dump -Fc --compress=gzip:9
pipe 17 custom-pipe-none.dump --compress=none
pipe 18 custom-pipe-gzip.dump
if [ -f "$ROOT/fixtures/dumps/pg17/custom-zstd.dump" ]; then
    pipe 17 custom-pipe-zstd.dump --compress=zstd
fi
# Data as INSERT statements: the reader must say it cannot stream these.
dump 17 custom-inserts.dump -Fc --inserts

du -sh "$ROOT/fixtures/dumps"
