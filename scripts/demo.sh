#!/usr/bin/env bash
# The main job, end to end, on a throwaway PostgreSQL:
#   1. a multi-tenant issue tracker with a few hundred sites (fixtures/app),
#   2. a point-in-time snapshot of it (a copy of the database),
#   3. the incident: a script deletes a few dozen sites (and some of their users),
#      while the other customers keep working,
#   4. salvage plans, restores those sites into the live database with progress, verifies.
# Usage: scripts/demo.sh [SITES] [DELETED]     (defaults: 300 sites, 40 deleted)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

sites=${1:-300}
deleted=${2:-40}

echo "== building salvage" >&2
cargo build --quiet --bin salvage
salvage=target/debug/salvage

pg_private_start demo
trap 'pg_private_stop demo' EXIT
base=${DATABASE_URL%/*}
live="$base/tracker_live"
snapshot="$base/tracker_snapshot"
psql() { command "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "== a multi-tenant database with $sites sites" >&2
psql "$DATABASE_URL" -c "CREATE DATABASE tracker_live"
psql "$live" -f fixtures/app/schema.sql -f fixtures/app/generate.sql -c "SELECT tracker_generate($sites)" >/dev/null
psql "$live" -At -c "SELECT format('   %s sites, %s issues, %s comments, %s rows in all', (SELECT count(*) FROM sites), (SELECT count(*) FROM issues), (SELECT count(*) FROM comments), (SELECT sum(n_live_tup) FROM pg_stat_user_tables))" 2>/dev/null || true

echo "== last night's snapshot (a point-in-time copy of the database)" >&2
psql "$DATABASE_URL" -c "CREATE DATABASE tracker_snapshot TEMPLATE tracker_live"

echo "== the incident: a script deletes $deleted sites; everyone else keeps working" >&2
ids=$(psql "$live" -At -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM sites ORDER BY (id * 7919) % $sites LIMIT $deleted) s")
psql "$live" <<SQL
DELETE FROM page_views WHERE site_id IN ($ids);
DELETE FROM sites WHERE id IN ($ids);
-- their own users went too
DELETE FROM users u WHERE u.id > 10 AND NOT EXISTS (SELECT 1 FROM sites WHERE owner_id = u.id)
  AND NOT EXISTS (SELECT 1 FROM issues WHERE author_id = u.id) AND NOT EXISTS (SELECT 1 FROM comments WHERE author_id = u.id)
  AND NOT EXISTS (SELECT 1 FROM reactions WHERE user_id = u.id) AND NOT EXISTS (SELECT 1 FROM users x WHERE x.invited_by = u.id);
DELETE FROM users u WHERE u.id > 10 AND NOT EXISTS (SELECT 1 FROM sites WHERE owner_id = u.id)
  AND NOT EXISTS (SELECT 1 FROM issues WHERE author_id = u.id) AND NOT EXISTS (SELECT 1 FROM comments WHERE author_id = u.id)
  AND NOT EXISTS (SELECT 1 FROM reactions WHERE user_id = u.id) AND NOT EXISTS (SELECT 1 FROM users x WHERE x.invited_by = u.id);
INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
  SELECT id, 1, 10000, 'filed after the snapshot', 1, now() FROM sites ORDER BY id LIMIT 25;
UPDATE comments SET body = body || ' (edited after the snapshot)' WHERE id % 97 = 0;
SQL
echo "   deleted sites: $ids" >&2

common=(--snapshot "$snapshot" --target "$live" --root public.sites --tenant-column site_id --tenants "$ids")

echo "== salvage restore (the plan is shown first; --yes because this is a demo)" >&2
status=0
"$salvage" restore "${common[@]}" --jobs 4 --yes --report target/demo-report.json || status=$?
echo >&2
echo "== salvage verify, on its own" >&2
"$salvage" verify "${common[@]}" | tail -n 14 || status=$?
echo "report: target/demo-report.json; exit status $status" >&2
exit "$status"
