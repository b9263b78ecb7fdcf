#!/usr/bin/env bash
# The main job, end to end, on a throwaway PostgreSQL:
#   1. a multi-tenant issue tracker with a few hundred sites (fixtures/app),
#   2. a point-in-time snapshot of it (a copy of the database),
#   3. the incident: a script deletes a few dozen sites (and some of their users),
#      while the other customers keep working,
#   4. salvage plans, restores those sites into the live database with progress, verifies.
#   5. the same from a physical base backup taken at the snapshot's moment and the WAL
#      archive, replayed to the second before the script: this time the deleted sites also
#      get back what they wrote between the backup and the script.
# Usage: scripts/demo.sh [SITES] [DELETED]     (defaults: 300 sites, 40 deleted)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

sites=${1:-300}
deleted=${2:-40}

echo "== building salvage" >&2
cargo build --quiet --bin salvage
salvage=${CARGO_TARGET_DIR:-target}/debug/salvage

# The cluster archives its WAL (for part 5) into a directory the server's user owns.
pitr="$SALVAGE_ROOT/target/pg/demo-pitr"
rm -rf "$pitr"
mkdir -p "$pitr/wal"
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown -R postgres: "$pitr"
fi
pg_private_start demo "-c archive_mode=on -c archive_command='cp %p $pitr/wal/%f'"
trap 'pg_private_stop demo; rm -rf "$pitr"' EXIT
base=${DATABASE_URL%/*}
live="$base/tracker_live"
snapshot="$base/tracker_snapshot"
psql() { command "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "== a multi-tenant database with $sites sites" >&2
psql "$DATABASE_URL" -c "CREATE DATABASE tracker_live"
psql "$live" -f fixtures/app/schema.sql -f fixtures/app/generate.sql -c "SELECT tracker_generate($sites)" >/dev/null
psql "$live" -At -c "SELECT format('   %s sites, %s issues, %s comments, %s rows in all', (SELECT count(*) FROM sites), (SELECT count(*) FROM issues), (SELECT count(*) FROM comments), (SELECT sum(n_live_tup) FROM pg_stat_user_tables))" 2>/dev/null || true

echo "== last night's snapshot (a point-in-time copy of the database), and a base backup" >&2
psql "$DATABASE_URL" -c "CREATE DATABASE tracker_snapshot TEMPLATE tracker_live"
pg_as_owner "$PG_BIN/pg_basebackup" -d "$DATABASE_URL" -D "$pitr/backup" -Fp -Xstream -c fast

echo "== the day goes on: the sites to be deleted file new issues" >&2
ids=$(psql "$live" -At -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM sites ORDER BY (id * 7919) % $sites LIMIT $deleted) s")
psql "$live" -c "INSERT INTO issues (site_id, project_no, number, title, author_id, created_at)
  SELECT s, 1, 20000 + n, 'filed after the backup', 1, now() FROM unnest('{$ids}'::bigint[]) s, generate_series(1, 3) n"
until=$(psql "$live" -At -c "SELECT now()")

echo "== the incident: a script deletes $deleted sites; everyone else keeps working" >&2
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
echo "   deleted sites: $ids (just after $until)" >&2
# A second copy of the damaged database, for part 5.
psql "$DATABASE_URL" -c "CREATE DATABASE tracker_pitr TEMPLATE tracker_live"
segment=$(psql "$DATABASE_URL" -At -c "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 1 300); do
    [ "$(psql "$DATABASE_URL" -At -c "SELECT coalesce(last_archived_wal >= '$segment', false) FROM pg_stat_archiver")" = t ] && break
    sleep 0.1
done

common=(--snapshot "$snapshot" --target "$live" --root public.sites --tenant-column site_id --tenants "$ids")

echo "== salvage restore (the plan is shown first; --yes because this is a demo)" >&2
status=0
"$salvage" restore "${common[@]}" --jobs 4 --yes --report target/demo-report.json || status=$?
echo >&2
echo "== salvage verify, on its own" >&2
"$salvage" verify "${common[@]}" | tail -n 14 || status=$?
late=$(psql "$live" -At -c "SELECT count(*) FROM issues WHERE title = 'filed after the backup'")
echo "   issues the deleted sites filed after the snapshot, back in live: $late (the snapshot predates them)" >&2

echo >&2
echo "== part 5: the same from the base backup and its WAL archive, replayed to $until" >&2
"$salvage" restore --snapshot "$pitr/backup" --wal-archive "$pitr/wal" --until "$until" \
    --snapshot-dbname tracker_live --target "$base/tracker_pitr" --root public.sites \
    --tenant-column site_id --tenants "$ids" --jobs 4 --yes --report target/demo-pitr-report.json || status=$?
late=$(psql "$base/tracker_pitr" -At -c "SELECT count(*) FROM issues WHERE title = 'filed after the backup'")
echo "   issues the deleted sites filed after the backup, back in live: $late" >&2
echo "reports: target/demo-report.json, target/demo-pitr-report.json; exit status $status" >&2
exit "$status"
