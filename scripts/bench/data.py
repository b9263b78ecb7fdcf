"""The bench data sets, per schema (scripts/bench/schemas.py), all in the bench cluster:

  snapshot   scale*1,000 tenants, generated: the snapshot database
  dump       pg_dump -Fc of the snapshot
  live       a copy of the snapshot plus what happened after it (the schema's live_sql)
  incident   a copy of live with the chosen tenants deleted (the schema's delete_sql),
             vacuumed and checkpointed, one per set of chosen tenants: every timed restore
             starts from a fresh `CREATE DATABASE work TEMPLATE incident`
  live10     the snapshot plus 9x as many tenants generated into it (ids after the
             snapshot's; their cross-tenant references stay among themselves), then live's
             activity: live at 10x the other tenants, the snapshot's tenants' rows the same.
             Its dump, taken before the activity, is the 10x snapshot of B5. Too big to copy
             per run: B5 and B7 delete the chosen tenants in place and restore them.
  tiny       2 x tiny tenants of a few rows each, with its live copy (B6)

Generation is deterministic; databases carry a marker (their comment) so that --reuse keeps
them when the parameters match.
"""

import subprocess
import sys
import time

from pgtools import DATA, PG_DUMP, ROOT, WORKDIR, BenchError, log

MARKER_VERSION = "v3"


def shape_tag(sites, shape):
    return f"{sites}s_" + "_".join(str(x) for x in shape)


def corpus():
    pool = DATA / "sentences.copy"
    if not pool.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        with open(pool.with_suffix(".tmp"), "w") as f:
            subprocess.run([sys.executable, str(ROOT / "scripts/bench/corpus.py")], stdout=f, check=True)
        pool.with_suffix(".tmp").rename(pool)
    return pool


def _generator_session(schema, first, count, shape):
    # Foreign-key triggers off while generating (half the time of adding 9,000 tenants);
    # check_foreign_keys then proves every reference holds.
    return ["CREATE TEMP TABLE bench_sentences (id integer PRIMARY KEY, body text NOT NULL)",
            f"\\copy bench_sentences FROM '{corpus()}'",
            "SET session_replication_role = replica",
            schema.generate_sql(first, count, shape),
            "RESET session_replication_role",
            f"DROP FUNCTION {schema.functions}"]


# One query per foreign key of the database: its rows whose columns (all non-NULL) match no
# row of the referenced table.
_ORPHAN_QUERIES = """
SELECT format('SELECT %L, count(*) FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE (%s) = (%s))',
              con.conname, con.conrelid::regclass,
              (SELECT string_agg(format('c.%I IS NOT NULL', a.attname), ' AND ')
               FROM unnest(con.conkey) AS k JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k),
              con.confrelid::regclass,
              (SELECT string_agg(format('p.%I', a.attname), ', ' ORDER BY o)
               FROM unnest(con.confkey) WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n),
              (SELECT string_agg(format('c.%I', a.attname), ', ' ORDER BY o)
               FROM unnest(con.conkey) WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n))
FROM pg_constraint con WHERE con.contype = 'f' AND con.conparentid = 0 ORDER BY con.oid
"""


def check_foreign_keys(pg, db):
    """Every foreign key of a generated database holds (the generator ran without them)."""
    queries = pg.psql(db, _ORPHAN_QUERIES).splitlines()
    out = pg.psql(db, "SET work_mem = '256MB'", *queries)
    bad = [line for line in out.splitlines() if not line.endswith("|0")]
    if bad:
        raise BenchError(f"the generator broke foreign keys in {db}: {bad}")


def ensure_snapshot(pg, schema, db, sites, shape, reuse):
    marker = f"bench {schema.name} data {shape_tag(sites, shape)} {MARKER_VERSION}"
    if reuse and pg.exists(db) and pg.comment(db) == marker:
        log(f"reusing database {db} ({marker})")
        return 0.0
    log(f"generating {db}: {schema.name}, {sites} tenants, shape {shape}")
    t0 = time.perf_counter()
    pg.create(db)
    pg.files(db, *schema.files, extra=_generator_session(schema, 1, sites, shape))
    check_foreign_keys(pg, db)
    pg.vacuum(db)
    pg.set_comment(db, marker)
    took = time.perf_counter() - t0
    log(f"generated {db} in {took:.1f}s")
    return took


def ensure_dump(pg, db, path, reuse):
    marker = path.with_suffix(".ok")
    want = pg.comment(db)
    if reuse and path.exists() and marker.exists() and marker.read_text() == want:
        log(f"reusing dump {path.name}")
        return 0.0
    log(f"pg_dump -Fc {db} -> {path.relative_to(ROOT)}")
    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    p = subprocess.run([PG_DUMP, "-Fc", "-f", str(tmp), pg.url(db)], capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"pg_dump failed: {p.stderr}")
    tmp.rename(path)
    marker.write_text(want)
    took = time.perf_counter() - t0
    log(f"dumped in {took:.1f}s, {path.stat().st_size / 2**20:.1f} MiB")
    return took


def choose(pg, schema, db, n):
    """n tenants spread over the ID range, the same pseudo-random pick on every run."""
    out = pg.psql(db, f"SELECT id FROM {schema.root} ORDER BY hashint8extended(id, 5) LIMIT {n}")
    return [int(x) for x in out.split()]


def make_live(pg, schema, snapshot, live, protected, reuse):
    """The live database before the incident: the snapshot plus activity by other tenants."""
    marker = pg.comment(snapshot) + " live"
    if reuse and pg.exists(live) and pg.comment(live) == marker:
        return
    pg.create(live, template=snapshot)
    pg.psql(live, *schema.live_sql(protected))
    pg.vacuum(live)
    pg.set_comment(live, marker)


def _ids_tag(ids):
    return f"{len(ids)} tenants, sum {sum(ids)}, first {ids[:3]}"


def delete_tenants(pg, schema, db, ids):
    """The incident, in place: the chosen tenants deleted, then VACUUM ANALYZE, CHECKPOINT."""
    pg.psql(db, *schema.delete_sql(ids))
    pg.vacuum(db)


def ensure_incident(pg, schema, live, db, ids, reuse):
    """A template for the incident: live with the chosen tenants deleted."""
    marker = f"{pg.comment(live)} incident {_ids_tag(ids)}"
    if reuse and pg.exists(db) and pg.comment(db) == marker:
        return db
    t0 = time.perf_counter()
    pg.create(db, template=live)
    delete_tenants(pg, schema, db, ids)
    pg.set_comment(db, marker)
    log(f"incident {db}: {len(ids)} tenants deleted from {live} in {time.perf_counter() - t0:.1f}s")
    return db


def ensure_live10(pg, schema, snapshot, live10, dump10, sites, shape, protected, reuse, need_dump):
    """The 10x live database (and, when asked, the 10x snapshot's dump, taken on the way)."""
    marker = f"{pg.comment(snapshot)} 10x live"
    dump_ok = dump10.exists() and dump10.with_suffix(".ok").exists() \
        and dump10.with_suffix(".ok").read_text() == marker + " (before the activity)"
    if reuse and pg.exists(live10) and pg.comment(live10) == marker and (dump_ok or not need_dump):
        log(f"reusing database {live10}")
        return {"generate_seconds": 0.0, "dump_seconds": 0.0}
    log(f"generating {live10}: {snapshot} plus tenants {sites + 1}..{10 * sites}")
    t0 = time.perf_counter()
    pg.create(live10, template=snapshot)
    pg.files(live10, schema.generator, extra=_generator_session(schema, sites + 1, 9 * sites, shape))
    check_foreign_keys(pg, live10)
    pg.vacuum(live10)
    gen = time.perf_counter() - t0
    log(f"generated {live10} in {gen:.1f}s")
    dump_s = 0.0
    if need_dump:
        pg.set_comment(live10, marker + " (before the activity)")
        dump_s = ensure_dump(pg, live10, dump10, False)
    pg.psql(live10, *schema.live_sql(protected))
    pg.vacuum(live10)
    pg.set_comment(live10, marker)
    return {"generate_seconds": gen, "dump_seconds": dump_s}


def write_ids(name, ids):
    WORKDIR.mkdir(parents=True, exist_ok=True)
    path = WORKDIR / name
    path.write_text("".join(f"{i}\n" for i in ids))
    return path
