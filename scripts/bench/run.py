#!/usr/bin/env python3
"""The benchmark suite of issue 5, driven by scripts/bench.sh (which starts the PostgreSQL
cluster and finds the salvage binary). Python 3 standard library only.

Data sets (all in the bench cluster, built by scripts/bench/generate.sql):
  snapshot   the tracker schema with scale*1,000 sites (~2,000 rows each): the snapshot database
  dump       pg_dump -Fc of the snapshot
  live       a copy of the snapshot plus some activity after it (other sites' page views and
             edited comments): the live database before the incident
  work       per run: CREATE DATABASE work TEMPLATE live, the chosen sites deleted (page_views
             by site_id, then sites, which cascades), VACUUM ANALYZE, CHECKPOINT: the incident
  snapshot10 / dump10 / live10   the same at 10x the sites (B5)
  tiny       2x1,000 sites of ~6 rows each (B6)

Every figure is a wall-clock time (or peak RSS) of one command, measured outside its setup;
the two sides of each ratio alternate within each repetition (salvage first in even ones).
After every restore the live database is checked: per-table row counts equal the live
database before the incident, and (first repetition) the restored tenants' rows hash equal to
the snapshot's. A run that fails a check is reported as failed, never as a number.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "target" / "bench"
DATA = OUT / "data"
LOGS = OUT / "logs"
WORKDIR = OUT / "work"

PSQL = os.environ.get("BENCH_PSQL", "/usr/bin/psql")
PG_DUMP = os.environ.get("BENCH_PG_DUMP", "/usr/bin/pg_dump")
PG_RESTORE = os.environ.get("BENCH_PG_RESTORE", "/usr/bin/pg_restore")
GNU_TIME = "/usr/bin/time"

TABLES = ["plans", "users", "sites", "projects", "issues", "comments", "reactions",
          "page_views", "feature_flags"]

# The chosen tenants' rows of every owned table, following the foreign keys down from sites
# (reactions -> comments -> issues -> projects -> sites; page_views by its site_id column).
# Used by B2's hand-written script, B4's export and the content checks.
OWNED = [
    ("sites", "SELECT s.* FROM sites s WHERE s.id IN ({ids})"),
    ("projects", "SELECT p.* FROM projects p JOIN sites s ON s.id = p.site_id WHERE s.id IN ({ids})"),
    ("issues", "SELECT i.* FROM issues i JOIN projects p ON (p.site_id, p.project_no) = (i.site_id, i.project_no)"
               " WHERE p.site_id IN ({ids})"),
    ("comments", "SELECT c.* FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id IN ({ids})"),
    ("reactions", "SELECT r.* FROM reactions r JOIN comments c ON c.id = r.comment_id"
                  " JOIN issues i ON i.id = c.issue_id WHERE i.site_id IN ({ids})"),
    ("page_views", "SELECT v.* FROM page_views v WHERE v.site_id IN ({ids})"),
]

# Per-site shape passed to bench_generate: projects, issues/project, comments/issue, views.
FULL_SHAPE = (4, 25, 7, 500)
QUICK_SHAPE = (2, 10, 3, 50)
TINY_SHAPE = (1, 1, 1, 1)

SALVAGE_COMMON = ["--root", "public.sites", "--tenant-column", "site_id"]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# PostgreSQL helpers


class Pg:
    def __init__(self, admin_url):
        self.admin = admin_url
        self.base = admin_url.rsplit("/", 1)[0]

    def url(self, db):
        return f"{self.base}/{db}"

    def psql(self, db, *sql, check=True):
        """Runs each SQL string with -c (separately, so VACUUM works); returns stdout."""
        cmd = [PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", self.url(db) if db else self.admin]
        for s in sql:
            cmd += ["-c", s]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise BenchError(f"psql failed on {db}: {p.stderr.strip()}\n  SQL: {' | '.join(sql)[:500]}")
        return p.stdout

    def files(self, db, *paths, extra=()):
        cmd = [PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", self.url(db)]
        for f in paths:
            cmd += ["-f", str(f)]
        for s in extra:
            cmd += ["-c", s]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"psql failed on {db}: {p.stderr.strip()}")
        return p.stdout

    def exists(self, db):
        return self.psql(None, f"SELECT 1 FROM pg_database WHERE datname = '{db}'").strip() == "1"

    def comment(self, db):
        return self.psql(None, f"SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                               f" WHERE datname = '{db}'").strip()

    def drop(self, db):
        self.psql(None, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def create(self, db, template=None):
        self.drop(db)
        # FILE_COPY: copies the files (after a checkpoint) instead of WAL-logging every block.
        t = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else " TEMPLATE template0"
        self.psql(None, f'CREATE DATABASE "{db}"{t}')

    def counts(self, db):
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in TABLES)
        out = self.psql(db, sql)
        got = {line.split("|")[0]: int(line.split("|")[1]) for line in out.split()}
        return {t: got[t] for t in TABLES}

    def tenant_hashes(self, db, ids):
        """Per owned table: count and an order-independent hash of the chosen tenants' rows."""
        parts = [f"SELECT '{t}', count(*), coalesce(sum(hashtextextended(x::text, 0)::numeric), 0)"
                 f" FROM ({q.format(ids=ids)}) x" for t, q in OWNED]
        out = self.psql(db, " UNION ALL ".join(parts))
        return {line.split("|")[0]: (int(line.split("|")[1]), line.split("|")[2]) for line in out.split()}

    def size(self, db):
        return int(self.psql(None, f"SELECT pg_database_size('{db}')").strip())


# ---------------------------------------------------------------------------------------------
# Measuring


def run_timed(name, cmd, *, stdout_path=None, timeout=4 * 3600, shell=False):
    """Runs cmd under GNU time; returns seconds (wall), exit code, peak RSS (KiB), stderr tail."""
    LOGS.mkdir(parents=True, exist_ok=True)
    rss_file = LOGS / f"{name}.rss"
    log_file = LOGS / f"{name}.log"
    out = open(stdout_path or log_file, "wb")
    err_file = LOGS / f"{name}.stderr"
    err = open(err_file, "wb")
    full = [GNU_TIME, "-f", "%M", "-o", str(rss_file)] + (["bash", "-c", cmd] if shell else cmd)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        rc = -1
    seconds = time.perf_counter() - t0
    out.close()
    err.close()
    try:
        rss = int(rss_file.read_text().strip().splitlines()[-1])
    except (ValueError, IndexError, OSError):
        rss = None
    tail = err_file.read_text(errors="replace").strip().splitlines()
    return {"seconds": seconds, "exit_code": rc, "max_rss_kib": rss,
            "stderr_tail": "\n".join(tail[-5:]), "log": str(log_file.relative_to(ROOT))}


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


# ---------------------------------------------------------------------------------------------
# Data sets


def shape_tag(sites, shape):
    return f"{sites}s_" + "_".join(str(x) for x in shape)


def ensure_snapshot(pg, db, sites, shape, reuse):
    marker = f"bench data {shape_tag(sites, shape)} v2"
    if reuse and pg.exists(db) and pg.comment(db) == marker:
        log(f"reusing database {db} ({marker})")
        return 0.0
    log(f"generating {db}: {sites} sites, shape {shape}")
    t0 = time.perf_counter()
    pool = DATA / "sentences.copy"
    if not pool.exists():
        with open(pool.with_suffix(".tmp"), "w") as f:
            subprocess.run([sys.executable, str(ROOT / "scripts/bench/corpus.py")], stdout=f, check=True)
        pool.with_suffix(".tmp").rename(pool)
    pg.create(db)
    pg.files(db, ROOT / "fixtures/app/schema.sql", ROOT / "scripts/bench/generate.sql",
             extra=["CREATE TEMP TABLE bench_sentences (id integer PRIMARY KEY, body text NOT NULL)",
                    f"\\copy bench_sentences FROM '{pool}'",
                    f"SELECT bench_generate({sites}, {', '.join(map(str, shape))})",
                    "DROP FUNCTION bench_generate, bench_rand"])
    pg.psql(db, "VACUUM ANALYZE", "CHECKPOINT")
    pg.psql(None, f"COMMENT ON DATABASE \"{db}\" IS '{marker}'")
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


def choose(pg, db, n):
    """n tenants spread over the ID range, the same pseudo-random pick on every run."""
    out = pg.psql(db, f"SELECT id FROM sites ORDER BY hashint8extended(id, 5) LIMIT {n}")
    return [int(x) for x in out.split()]


def make_live(pg, snapshot, live, protected_ids, reuse):
    """The live database before the incident: the snapshot plus activity by other sites."""
    marker = pg.comment(snapshot) + " live"
    if reuse and pg.exists(live) and pg.comment(live) == marker:
        return
    pg.create(live, template=snapshot)
    keep = ",".join(map(str, protected_ids))
    pg.psql(live,
            f"INSERT INTO page_views (site_id, path, viewed_at, meta) SELECT s.id, '/after-the-snapshot/' || g,"
            f" now(), NULL FROM (SELECT id FROM sites WHERE id NOT IN ({keep}) ORDER BY id LIMIT 100) s,"
            f" generate_series(1, 20) g",
            f"UPDATE comments c SET body = c.body || ' (edited after the snapshot)', edited_at = now()"
            f" FROM issues i WHERE i.id = c.issue_id AND c.id % 97 = 0 AND i.site_id NOT IN ({keep})",
            "VACUUM ANALYZE", "CHECKPOINT")
    pg.psql(None, f"COMMENT ON DATABASE \"{live}\" IS '{marker}'")


def delete_sites(pg, db, ids):
    """What `DELETE FROM page_views WHERE site_id IN (...); DELETE FROM sites WHERE id IN
    (...)` does through the cascading foreign keys, table by table: the cascade itself takes
    minutes here, because deleting an issue checks issues.parent_id (NO ACTION, no index)
    with a sequential scan per row. session_replication_role = replica skips those checks;
    the explicit deletes remove exactly the rows the cascade would."""
    lst = ",".join(map(str, ids))
    pg.psql(db, "BEGIN; SET LOCAL session_replication_role = replica;"
                f" DELETE FROM reactions r USING comments c, issues i"
                f"  WHERE r.comment_id = c.id AND c.issue_id = i.id AND i.site_id IN ({lst});"
                f" DELETE FROM comments c USING issues i WHERE c.issue_id = i.id AND i.site_id IN ({lst});"
                f" DELETE FROM issues WHERE site_id IN ({lst});"
                f" DELETE FROM projects WHERE site_id IN ({lst});"
                f" DELETE FROM page_views WHERE site_id IN ({lst});"
                f" DELETE FROM sites WHERE id IN ({lst});"
                " COMMIT;")
    left = pg.tenant_hashes(db, lst)
    if any(c for c, _ in left.values()):
        raise BenchError(f"deleting the chosen sites left rows behind: {left}")
    pg.psql(db, "VACUUM ANALYZE", "CHECKPOINT")


def incident(pg, live, work, ids):
    """A fresh incident: work = live minus the chosen sites, vacuumed and checkpointed."""
    pg.create(work, template=live)
    delete_sites(pg, work, ids)


def write_ids(name, ids):
    WORKDIR.mkdir(parents=True, exist_ok=True)
    path = WORKDIR / name
    path.write_text("".join(f"{i}\n" for i in ids))
    return path


# ---------------------------------------------------------------------------------------------
# The benchmarks


class Suite:
    def __init__(self, args, pg):
        self.args = args
        self.pg = pg
        self.salvage = args.salvage
        self.results = {"benchmarks": {}, "datasets": {}, "checks": [], "runs": []}
        self.archive_error = None
        self.jobs = args.jobs

    # -- salvage invocations ------------------------------------------------------------------

    def salvage_restore(self, name, snapshot, target_db, tenants_file, jobs=None):
        report = LOGS / f"{name}.report.json"
        if report.exists():
            report.unlink()
        cmd = [self.salvage, "restore", "--snapshot", snapshot, "--target", self.pg.url(target_db),
               *SALVAGE_COMMON, "--tenants-file", str(tenants_file),
               "--jobs", str(jobs or self.jobs), "--yes", "--report", str(report)]
        r = run_timed(name, cmd)
        r["command"] = " ".join(shlex.quote(c) for c in cmd)
        r["report"] = str(report.relative_to(ROOT))
        if report.exists():
            rep = json.loads(report.read_text())
            r["timings"] = rep.get("timings")
            r["summary"] = rep.get("summary")
        return r

    def record(self, bench, side, rep, r):
        r = dict(r, benchmark=bench, side=side, rep=rep)
        self.results["runs"].append(r)
        status = "ok" if r.get("ok") else f"FAILED ({r.get('error')})"
        extra = ""
        if r.get("timings"):
            t = r["timings"]
            extra = f" [plan {t.get('plan_seconds', 0):.2f}s restore {t.get('restore_seconds') or 0:.2f}s verify {t.get('verify_seconds', 0):.2f}s]"
        rss = f", {r['max_rss_kib'] / 1024:.0f} MiB RSS" if r.get("max_rss_kib") else ""
        log(f"  {bench} {side} rep {rep + 1}: {r['seconds']:.2f}s{rss}{extra} {status}")
        return r

    def check_restore(self, r, work, live_counts, ids, snap_db, check_content, expect_rows=None):
        """The restore must leave live as it was before the incident (counts per table), the
        report must say every tenant restored and verified, and (first rep) the restored rows
        must hash equal to the snapshot's."""
        problems = []
        if r["exit_code"] != 0:
            problems.append(f"exit code {r['exit_code']}: {r.get('stderr_tail', '')[-300:]}")
        s = r.get("summary")
        if s is not None:
            if s.get("failed"):
                problems.append(f"{s['failed']} tenants failed")
            if s.get("rows_missing"):
                problems.append(f"{s['rows_missing']} rows missing in verification")
            if expect_rows is not None and s.get("rows_inserted") is not None and s["rows_inserted"] != expect_rows:
                problems.append(f"report says {s['rows_inserted']} rows inserted, expected {expect_rows}")
        if not problems:
            problems += self.compare_live(work, live_counts, ids, snap_db, check_content)
        r["ok"] = not problems
        if problems:
            r["error"] = "; ".join(problems)
        return r

    def compare_live(self, work, live_counts, ids, snap_db, check_content):
        problems = []
        after = self.pg.counts(work)
        if after != live_counts:
            diff = {t: (after.get(t), live_counts.get(t)) for t in TABLES if after.get(t) != live_counts.get(t)}
            problems.append(f"row counts differ from live before the incident (after, before): {diff}")
        if check_content and not problems:
            lst = ",".join(map(str, ids))
            got = self.pg.tenant_hashes(work, lst)
            want = self.snapshot_hashes(snap_db, lst)
            if got != want:
                bad = [t for t in got if got[t] != want.get(t)]
                problems.append(f"restored rows differ from the snapshot in {bad}")
            self.results["checks"].append({"database": work, "tenants": len(ids), "tables": got,
                                           "equal_to_snapshot": got == want})
        return problems

    _hash_cache = {}

    def snapshot_hashes(self, snap_db, lst):
        key = (snap_db, lst)
        if key not in self._hash_cache:
            self._hash_cache[key] = self.pg.tenant_hashes(snap_db, lst)
        return self._hash_cache[key]

    def order(self, rep):
        """Which side runs first alternates between repetitions."""
        return ["salvage", "baseline"] if rep % 2 == 0 else ["baseline", "salvage"]

    # -- data ---------------------------------------------------------------------------------

    def prepare(self):
        a = self.args
        pg = self.pg
        DATA.mkdir(parents=True, exist_ok=True)
        self.sites = a.sites
        self.n_small = max(1, round(self.sites * 0.04))   # "40 of 1,000"
        self.n_large = max(1, round(self.sites * 0.40))   # "400 of 1,000"
        tag = shape_tag(self.sites, a.shape)
        self.snap = f"snap_{tag}"
        self.live = f"live_{tag}"
        self.dump = DATA / f"{self.snap}.dump"
        gen = ensure_snapshot(pg, self.snap, self.sites, a.shape, a.reuse)
        dump_s = ensure_dump(pg, self.snap, self.dump, a.reuse)
        self.ids_small = choose(pg, self.snap, self.n_small)
        self.ids_large = choose(pg, self.snap, self.n_large)
        self.file_small = write_ids("tenants-small.txt", self.ids_small)
        self.file_large = write_ids("tenants-large.txt", self.ids_large)
        make_live(pg, self.snap, self.live, self.ids_large, a.reuse)
        self.live_counts = pg.counts(self.live)
        snap_counts = pg.counts(self.snap)
        self.snap_counts = snap_counts
        self.results["datasets"]["scale1"] = {
            "database": self.snap, "sites": self.sites, "shape": a.shape,
            "rows": snap_counts, "total_rows": sum(snap_counts.values()),
            "database_bytes": pg.size(self.snap), "dump_bytes": self.dump.stat().st_size,
            "generate_seconds": gen, "dump_seconds": dump_s,
            "tenants_small": len(self.ids_small), "tenants_large": len(self.ids_large),
            "rows_small": self.tenant_rows(self.ids_small), "rows_large": self.tenant_rows(self.ids_large),
        }
        d = self.results["datasets"]["scale1"]
        log(f"scale-1 data: {self.sites} sites, {d['total_rows']:,} rows, database "
            f"{d['database_bytes'] / 2**20:.0f} MiB, dump {d['dump_bytes'] / 2**20:.0f} MiB; "
            f"{self.n_small} tenants = {sum(d['rows_small'].values()):,} rows, "
            f"{self.n_large} tenants = {sum(d['rows_large'].values()):,} rows")
        self.probe_archive()

    def tenant_rows(self, ids):
        h = self.pg.tenant_hashes(self.snap, ",".join(map(str, ids)))
        return {t: c for t, (c, _) in h.items()}

    def probe_archive(self):
        """Can salvage read a pg_dump archive as its snapshot? One plan of one tenant."""
        pg = self.pg
        work = "work_probe"
        incident(pg, self.live, work, self.ids_small[:1])
        cmd = [self.salvage, "plan", "--snapshot", str(self.dump), "--target", pg.url(work),
               *SALVAGE_COMMON, "--tenants", str(self.ids_small[0])]
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=3600)
        pg.drop(work)
        if p.returncode != 0:
            lines = [ln.strip() for ln in p.stderr.strip().splitlines() if ln.strip()]
            self.archive_error = " ".join(lines[:3])[:300] or f"exit code {p.returncode}"
            log(f"salvage cannot read the dump as a snapshot: {self.archive_error}")
        else:
            log("salvage reads pg_dump archives: B1, B3, B5 will run")
        self.results["archive_probe"] = {"command": " ".join(shlex.quote(c) for c in cmd),
                                         "exit_code": p.returncode, "error": self.archive_error}

    # -- B1 -----------------------------------------------------------------------------------

    def b1(self):
        pg = self.pg
        sal, base = [], []
        for rep in range(self.args.reps):
            for side in self.order(rep):
                if side == "salvage":
                    if self.archive_error:
                        continue
                    incident(pg, self.live, "work", self.ids_small)
                    r = self.salvage_restore(f"b1-salvage-{rep}", str(self.dump), "work", self.file_small)
                    self.check_restore(r, "work", self.live_counts, self.ids_small, self.snap, rep == 0,
                                       sum(self.results["datasets"]["scale1"]["rows_small"].values()))
                    sal.append(self.record("B1", "salvage", rep, r))
                else:
                    pg.create("restore_empty")
                    pg.psql(None, "CHECKPOINT")
                    cmd = [PG_RESTORE, "-j2", "-d", pg.url("restore_empty"), str(self.dump)]
                    r = run_timed(f"b1-pg_restore-{rep}", cmd)
                    r["command"] = " ".join(shlex.quote(c) for c in cmd)
                    problems = []
                    if r["exit_code"] != 0:
                        problems.append(f"exit code {r['exit_code']}: {r['stderr_tail']}")
                    elif pg.counts("restore_empty") != self.snap_counts:
                        problems.append("pg_restore's row counts differ from the snapshot's")
                    r["ok"] = not problems
                    r["error"] = "; ".join(problems) or None
                    base.append(self.record("B1", "baseline", rep, r))
                    pg.drop("restore_empty")
        pg.drop("work")
        self.add("B1", f"restore {self.n_small} of {self.sites} tenants from the custom dump",
                 f"`pg_restore -j2` of the whole dump into an empty database",
                 sal, base, 0.25, unavailable=self.archive_error)

    # -- B2 -----------------------------------------------------------------------------------

    def b2_script(self):
        """The hand-written script a responder would write for this schema: per table, COPY
        the chosen sites' rows out of the snapshot and straight into live."""
        lst = ",".join(map(str, self.ids_small))
        lines = ["#!/usr/bin/env bash",
                 "# B2 baseline: the chosen sites' rows, table by table, parents first,",
                 "# COPY (SELECT ... JOIN ... WHERE site IN ...) TO STDOUT from the snapshot",
                 "# piped into COPY ... FROM STDIN on live.",
                 "set -euo pipefail",
                 'SNAP=$1 LIVE=$2',
                 f"PSQL={shlex.quote(PSQL)}",
                 "copy() {",
                 '    "$PSQL" -X -q -v ON_ERROR_STOP=1 "$SNAP" -c "COPY ($2) TO STDOUT" |',
                 '        "$PSQL" -X -q -v ON_ERROR_STOP=1 "$LIVE" -c "COPY $1 FROM STDIN"',
                 "}"]
        for table, q in OWNED:
            lines.append(f'copy {table} "{q.format(ids=lst)}"')
        path = WORKDIR / "b2-copy-script.sh"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o755)
        return path

    def b2(self):
        pg = self.pg
        script = self.b2_script()
        rows = sum(self.results["datasets"]["scale1"]["rows_small"].values())
        sal, base = [], []
        for rep in range(self.args.reps):
            for side in self.order(rep):
                incident(pg, self.live, "work", self.ids_small)
                if side == "salvage":
                    r = self.salvage_restore(f"b2-salvage-{rep}", pg.url(self.snap), "work", self.file_small)
                    self.check_restore(r, "work", self.live_counts, self.ids_small, self.snap, rep == 0, rows)
                    sal.append(self.record("B2", "salvage", rep, r))
                else:
                    cmd = [str(script), pg.url(self.snap), pg.url("work")]
                    r = run_timed(f"b2-psql-{rep}", cmd)
                    r["command"] = f"{script.relative_to(ROOT)} SNAPSHOT_URL LIVE_URL"
                    if r["exit_code"] != 0:
                        r["ok"], r["error"] = False, f"exit code {r['exit_code']}: {r['stderr_tail']}"
                    else:
                        problems = self.compare_live("work", self.live_counts, self.ids_small, self.snap, rep == 0)
                        r["ok"], r["error"] = not problems, "; ".join(problems) or None
                    base.append(self.record("B2", "baseline", rep, r))
        pg.drop("work")
        self.add("B2", f"restore {self.n_small} of {self.sites} tenants from the snapshot database",
                 f"hand-written per-table `COPY (SELECT … JOIN … WHERE site IN …)` → `COPY FROM` with psql "
                 f"(`{script.relative_to(ROOT)}`)", sal, base, 1.0)

    # -- B3 -----------------------------------------------------------------------------------

    def b3(self):
        pg = self.pg
        sal, base, inspect = [], [], []
        want = self.results["datasets"]["scale1"]["rows_small"]
        if not self.archive_error:
            incident(pg, self.live, "work", self.ids_small)
        for rep in range(self.args.reps):
            for side in self.order(rep):
                if side == "salvage":
                    if self.archive_error:
                        continue
                    pg.psql(None, "CHECKPOINT")
                    cmd = [self.salvage, "plan", "--snapshot", str(self.dump), "--target", pg.url("work"),
                           *SALVAGE_COMMON, "--tenants-file", str(self.file_small), "--format", "json"]
                    plan_out = LOGS / f"b3-salvage-{rep}.plan.json"
                    r = run_timed(f"b3-salvage-{rep}", cmd, stdout_path=plan_out)
                    r["command"] = " ".join(shlex.quote(c) for c in cmd)
                    r["ok"], r["error"] = True, None
                    if r["exit_code"] != 0:
                        r["ok"], r["error"] = False, f"exit code {r['exit_code']}: {r['stderr_tail']}"
                    else:
                        try:
                            plan = json.loads(plan_out.read_text())
                            got = {t["table"].split(".")[-1]: t.get("snapshot") for t in plan["tables"]}
                            bad = {t: (got.get(t), n) for t, n in want.items() if got.get(t) != n}
                            if bad or len(plan["tenants"]) != len(self.ids_small):
                                r["ok"], r["error"] = False, f"plan's row counts differ (plan, expected): {bad}"
                        except (ValueError, KeyError, TypeError) as e:
                            r["ok"], r["error"] = False, f"unreadable plan JSON: {e}"
                    sal.append(self.record("B3", "salvage", rep, r))
                    if not self.archive_error:
                        # For comparison: reading every row without filtering (inspect counts them).
                        cmd = [self.salvage, "inspect", str(self.dump)]
                        r = run_timed(f"b3-inspect-{rep}", cmd)
                        r["command"] = " ".join(shlex.quote(c) for c in cmd)
                        r["ok"] = r["exit_code"] == 0
                        r["error"] = None if r["ok"] else r["stderr_tail"]
                        inspect.append(self.record("B3 inspect", "salvage", rep, r))
                else:
                    cmd = [PG_RESTORE, "--data-only", "-f", "/dev/null", str(self.dump)]
                    r = run_timed(f"b3-pg_restore-{rep}", cmd)
                    r["command"] = " ".join(shlex.quote(c) for c in cmd)
                    r["ok"] = r["exit_code"] == 0
                    r["error"] = None if r["ok"] else r["stderr_tail"]
                    base.append(self.record("B3", "baseline", rep, r))
        pg.drop("work")
        self.add("B3", f"scan of the whole dump, filtering {self.n_small} tenants (`salvage plan`)",
                 "`pg_restore --data-only -f /dev/null`", sal, base, 1.0, unavailable=self.archive_error)
        self.add("B3 inspect", "(for comparison, no target) `salvage inspect`: read and count every row of the dump",
                 "`pg_restore --data-only -f /dev/null`", inspect, base, None, unavailable=self.archive_error)

    # -- B4 -----------------------------------------------------------------------------------

    def b4(self):
        pg = self.pg
        export = WORKDIR / "b4"
        export.mkdir(parents=True, exist_ok=True)

        def export_load(name, ids, comment):
            lst = ",".join(map(str, ids))
            load = [f"-- {comment}", "BEGIN;"]
            for table, q in OWNED:
                f = export / f"{name}.{table}.copy"
                pg.psql(self.snap, f"\\copy ({q.format(ids=lst)}) TO '{f}'")
                load.append(f"\\copy {table} FROM '{f}'")
            load.append("COMMIT;")
            path = export / f"{name}.sql"
            path.write_text("\n".join(load) + "\n")
            return path

        load_sql = export_load("load", self.ids_large, "B4 baseline: the exact rows salvage restores, "
                                                       "loaded with COPY FROM in one transaction")
        # The same rows split by tenant into two halves, loaded by two sessions at once: what
        # two CPUs can write (salvage's --jobs use both).
        halves = [export_load(f"load-half{h}", self.ids_large[h::2], f"B4 two-stream baseline, half {h + 1} of 2")
                  for h in range(2)]
        q = "-X -q -v ON_ERROR_STOP=1"
        two = (f"{PSQL} {q} \"$1\" -f {shlex.quote(str(halves[0]))} & a=$!; "
               f"{PSQL} {q} \"$1\" -f {shlex.quote(str(halves[1]))} & b=$!; wait $a && wait $b")
        rows = sum(self.results["datasets"]["scale1"]["rows_large"].values())
        sal, base, base2 = [], [], []
        sides = ["salvage", "baseline", "two streams"]
        for rep in range(self.args.reps):
            for side in sides[rep % 3:] + sides[:rep % 3]:
                incident(pg, self.live, "work", self.ids_large)
                if side == "salvage":
                    r = self.salvage_restore(f"b4-salvage-{rep}", pg.url(self.snap), "work", self.file_large)
                    self.check_restore(r, "work", self.live_counts, self.ids_large, self.snap, rep == 0, rows)
                    sal.append(self.record("B4", "salvage", rep, r))
                    continue
                if side == "baseline":
                    cmd = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", pg.url("work"), "-f", str(load_sql)]
                    r = run_timed(f"b4-copy-{rep}", cmd)
                    r["command"] = f"psql {q} LIVE_URL -f {load_sql.relative_to(ROOT)}"
                else:
                    cmd = ["bash", "-c", two, "b4", pg.url("work")]
                    r = run_timed(f"b4-copy2-{rep}", cmd)
                    r["command"] = " & ".join(f"psql {q} LIVE_URL -f {h.relative_to(ROOT)}" for h in halves)
                if r["exit_code"] != 0:
                    r["ok"], r["error"] = False, f"exit code {r['exit_code']}: {r['stderr_tail']}"
                else:
                    problems = self.compare_live("work", self.live_counts, self.ids_large, self.snap, rep == 0)
                    r["ok"], r["error"] = not problems, "; ".join(problems) or None
                if side == "baseline":
                    base.append(self.record("B4", "baseline", rep, r))
                else:
                    base2.append(self.record("B4 2 streams", "baseline", rep, r))
        pg.drop("work")
        self.add("B4", f"restore {self.n_large} of {self.sites} tenants from the snapshot database",
                 f"`COPY FROM` of exactly those rows (exported beforehand) into the same indexed tables, "
                 f"one transaction (`{load_sql.relative_to(ROOT)}`)", sal, base, 1.5)
        self.add("B4 2 streams", "(for comparison, no target) the same salvage runs",
                 "the same `COPY FROM` split by tenant into two halves loaded by two psql sessions at once "
                 "(`target/bench/work/b4/load-half{0,1}.sql`)", sal, base2, None)

    # -- B5 -----------------------------------------------------------------------------------

    def b5(self):
        pg = self.pg
        a = self.args
        one = [r["max_rss_kib"] / 1024 for r in self.results["runs"]
               if r["benchmark"] == "B1" and r["side"] == "salvage" and r.get("ok") and r.get("max_rss_kib")]
        title = f"peak RSS of a dump restore of {self.n_small} tenants, {10 * self.sites} vs {self.sites} tenants in the dump"
        if self.archive_error:
            self.add("B5", title, "", [], [], 1.25, unavailable=self.archive_error, unit="MiB")
            return
        if a.skip_10x:
            self.add("B5", title, "", [], [], 1.25, unavailable="skipped (--skip-10x)", unit="MiB")
            return
        sites10 = 10 * self.sites
        tag = shape_tag(sites10, a.shape)
        snap10 = f"snap_{tag}"
        dump10 = DATA / f"{snap10}.dump"
        gen = ensure_snapshot(pg, snap10, sites10, a.shape, a.reuse)
        dump_s = ensure_dump(pg, snap10, dump10, a.reuse)
        c10 = pg.counts(snap10)
        self.results["datasets"]["scale10"] = {
            "database": snap10, "sites": sites10, "shape": a.shape, "rows": c10,
            "total_rows": sum(c10.values()), "database_bytes": pg.size(snap10),
            "dump_bytes": dump10.stat().st_size, "generate_seconds": gen, "dump_seconds": dump_s}
        d = self.results["datasets"]["scale10"]
        log(f"10x data: {sites10} sites, {d['total_rows']:,} rows, dump {d['dump_bytes'] / 2**20:.0f} MiB")
        ids = choose(pg, snap10, self.n_small)
        f = write_ids("tenants-10x.txt", ids)
        # The 10x live database is a copy of the 10x snapshot; the chosen sites are deleted
        # before each run and restored by it (no pristine copy: 10x is big).
        live10 = f"live_{tag}"
        if not (a.reuse and pg.exists(live10)):
            pg.create(live10, template=snap10)
        counts10 = c10
        lst = ",".join(map(str, ids))
        rows10 = pg.tenant_hashes(snap10, lst)
        want_rows = sum(c for c, _ in rows10.values())
        runs = []
        for rep in range(a.reps):
            delete_sites(pg, live10, ids)
            r = self.salvage_restore(f"b5-salvage10x-{rep}", str(dump10), live10, f)
            self.check_restore(r, live10, counts10, ids, snap10, rep == 0, want_rows)
            runs.append(self.record("B5", "salvage", rep, r))
        self.add("B5", title, f"the same restore from the {self.sites}-tenant dump (B1's salvage runs)",
                 runs, [], 1.25, unit="MiB", metric="rss", baseline_values=one)

    # -- B6 -----------------------------------------------------------------------------------

    def b6(self):
        pg = self.pg
        a = self.args
        n = a.tiny
        tiny = f"snap_{shape_tag(2 * n, TINY_SHAPE)}"
        live = f"live_{shape_tag(2 * n, TINY_SHAPE)}"
        gen = ensure_snapshot(pg, tiny, 2 * n, TINY_SHAPE, a.reuse)
        ids = choose(pg, tiny, n)
        f = write_ids("tenants-tiny.txt", ids)
        make_live(pg, tiny, live, ids, a.reuse)
        counts = pg.counts(live)
        c = pg.counts(tiny)
        tr = pg.tenant_hashes(tiny, ",".join(map(str, ids)))
        rows = sum(x for x, _ in tr.values())
        self.results["datasets"]["tiny"] = {"database": tiny, "sites": 2 * n, "shape": TINY_SHAPE, "rows": c,
                                            "total_rows": sum(c.values()), "restored_tenants": n,
                                            "restored_rows": rows, "generate_seconds": gen}
        log(f"tiny data: {2 * n} sites, {sum(c.values()):,} rows; restoring {n} tenants = {rows:,} rows")
        by_jobs = {j: [] for j in a.b6_jobs}
        for rep in range(a.reps):
            order = a.b6_jobs if rep % 2 == 0 else list(reversed(a.b6_jobs))
            for j in order:
                incident(pg, live, "work", ids)
                r = self.salvage_restore(f"b6-jobs{j}-{rep}", pg.url(tiny), "work", f, jobs=j)
                self.check_restore(r, "work", counts, ids, tiny, rep == 0, rows)
                r["tenants_per_second"] = n / r["seconds"]
                t = r.get("timings") or {}
                if t.get("restore_seconds"):
                    r["restore_phase_tenants_per_second"] = n / t["restore_seconds"]
                by_jobs[j].append(self.record(f"B6-j{j}", "salvage", rep, r))
        pg.drop("work")
        base_median = None
        for j in a.b6_jobs:
            runs = by_jobs[j]
            self.add(f"B6 jobs={j}", f"{n} tiny tenants (~{rows // max(n, 1)} rows each), `--jobs {j}`",
                     "", runs, [], None, unit="tenants/s", metric="tps", relative_to=base_median)
            b = self.results["benchmarks"][f"B6 jobs={j}"]
            if base_median is None and b["salvage"]:
                base_median = b["salvage"]["median"]

    # -- results ------------------------------------------------------------------------------

    def add(self, key, what, baseline, sal, base, target, *, unavailable=None, unit="s", metric="seconds",
            baseline_values=None, relative_to=None):
        def values(runs):
            if metric == "rss":
                return [r["max_rss_kib"] / 1024 for r in runs if r.get("ok") and r.get("max_rss_kib")]
            if metric == "tps":
                return [r["tenants_per_second"] for r in runs if r.get("ok")]
            return [r["seconds"] for r in runs if r.get("ok")]

        failed = [r for r in sal + base if not r.get("ok")]
        s = stats(values(sal))
        b = stats(baseline_values if baseline_values is not None else values(base))
        ratio = None
        if s and b:
            ratio = s["median"] / b["median"]
        elif s and relative_to:
            ratio = s["median"] / relative_to
        verdict = "—"
        if unavailable and not s:
            verdict = "not available"
        elif failed:
            verdict = "FAILED"
        elif ratio is not None and target is not None:
            verdict = "pass" if ratio <= target else "fail"
        phases = {}
        for ph in ("plan_seconds", "restore_seconds", "verify_seconds", "total_seconds"):
            phases[ph] = stats([(r.get("timings") or {}).get(ph) for r in sal if r.get("ok")])
        self.results["benchmarks"][key] = {
            "what": what, "baseline_what": baseline, "unit": unit, "salvage": s, "baseline": b,
            "ratio": ratio, "target": target, "verdict": verdict, "unavailable": unavailable,
            "failures": [f"{r['side']} rep {r['rep'] + 1}: {r.get('error')}" for r in failed],
            "salvage_phases": phases,
            "salvage_wall_seconds": stats([r["seconds"] for r in sal if r.get("ok")]),
            "salvage_rss_mib": stats([r["max_rss_kib"] / 1024 for r in sal if r.get("max_rss_kib")]),
            "baseline_rss_mib": stats([r["max_rss_kib"] / 1024 for r in base if r.get("max_rss_kib")]),
        }


def fmt(st, unit):
    if not st:
        return "—"
    p = 0 if unit in ("MiB", "tenants/s") else 2
    return f"{st['min']:.{p}f} / **{st['median']:.{p}f}** / {st['max']:.{p}f} {unit}"


def markdown(res):
    m = res["meta"]
    out = [f"### Results — {m['date']}", "",
           f"`{m['command']}` — scale {m['scale']} ({m['sites']:,} tenants), {m['reps']} repetitions, "
           f"salvage `--jobs {m['jobs']}`; machine: {m['machine']}.", "",
           "| benchmark | salvage min / **median** / max | baseline min / **median** / max | ratio of medians | target | result |",
           "|---|---|---|---|---|---|"]
    targets = {"B1": "≤ 0.25", "B2": "≤ 1.0", "B3": "≤ 1.0", "B4": "≤ 1.5", "B5": "flat (≤ 1.25)"}
    for key, b in res["benchmarks"].items():
        name = f"**{key}** {b['what']}"
        if b["baseline_what"]:
            name += f" — vs {b['baseline_what']}"
        if b["unavailable"] and not b["salvage"]:
            sal = f"not available: {b['unavailable']}"
        else:
            sal = fmt(b["salvage"], b["unit"])
        ratio = "—" if b["ratio"] is None else f"{b['ratio']:.2f}"
        if b["ratio"] is not None and b["target"] is not None and round(b["ratio"], 2) == b["target"]:
            ratio = f"{b['ratio']:.3f}"   # so that "1.00 fail" does not happen
        if key.startswith("B6"):
            ratio = "—" if b["ratio"] is None else f"{b['ratio']:.2f}× jobs=1"
        target = targets.get(key, "—")
        verdict = b["verdict"]
        if b["failures"]:
            verdict += " (" + "; ".join(b["failures"])[:300] + ")"
        out.append(f"| {name} | {sal} | {fmt(b['baseline'], b['unit'])} | {ratio} | {target} | {verdict} |")
    out += ["", "Where salvage's time went (medians of its `--report` timings, seconds; `restore` always "
                "verifies too), the ratio its restore phase alone would give, and peak RSS (GNU time; the "
                "baselines' figure is the client's, the server's work is not in it):", "",
            "| benchmark | wall | plan | restore | verify | restore phase / baseline | peak RSS salvage | peak RSS baseline |",
            "|---|---|---|---|---|---|---|---|"]
    for key, b in res["benchmarks"].items():
        ph = b["salvage_phases"]
        if not any(ph.values()) and not b["salvage_rss_mib"]:
            continue

        def med(x):
            return "—" if not x else f"{x['median']:.2f}"

        def mib(x):
            return "—" if not x else f"{x['median']:.0f} MiB"
        phase_ratio = "—"
        if b["unit"] == "s" and b["baseline"] and ph["restore_seconds"]:
            phase_ratio = f"{ph['restore_seconds']['median'] / b['baseline']['median']:.2f}"
        out.append(f"| {key} | {med(b.get('salvage_wall_seconds'))} | {med(ph['plan_seconds'])} | "
                   f"{med(ph['restore_seconds'])} | {med(ph['verify_seconds'])} | {phase_ratio} | "
                   f"{mib(b['salvage_rss_mib'])} | {mib(b['baseline_rss_mib'])} |")
    out += ["", "Data sets:", "", "| data set | tenants | rows | database | custom dump | rows per table |",
            "|---|---|---|---|---|---|"]
    for name, d in res["datasets"].items():
        db = f"{d['database_bytes'] / 2**20:,.0f} MiB" if d.get("database_bytes") else "—"
        dump = f"{d['dump_bytes'] / 2**20:,.0f} MiB" if d.get("dump_bytes") else "—"
        per = ", ".join(f"{t} {n:,}" for t, n in d["rows"].items())
        out.append(f"| {name} | {d['sites']:,} | {d['total_rows']:,} | {db} | {dump} | {per} |")
    s1 = res["datasets"].get("scale1")
    if s1:
        out += ["", f"Restored sets: {s1['tenants_small']} tenants = {sum(s1['rows_small'].values()):,} rows "
                    f"(B1–B3, B5), {s1['tenants_large']} tenants = {sum(s1['rows_large'].values()):,} rows (B4)."]
    if res.get("archive_probe", {}).get("error"):
        out += ["", f"salvage could not read the dump: `{res['archive_probe']['command']}` → "
                    f"{res['archive_probe']['error']}"]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-10x", action="store_true")
    ap.add_argument("--only", default="B1,B2,B3,B4,B5,B6")
    ap.add_argument("--reuse", action="store_true", help="reuse generated databases and dumps")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--salvage", required=True)
    ap.add_argument("--command", default="scripts/bench.sh")
    args = ap.parse_args()

    if args.quick:
        args.shape = QUICK_SHAPE
        args.sites = max(10, round(100 * args.scale))
        args.tiny = 100
        args.reps = args.reps or 2
    else:
        args.shape = FULL_SHAPE
        args.sites = max(10, round(1000 * args.scale))
        args.tiny = 1000
        args.reps = args.reps or 3
    args.b6_jobs = [1, 2, 4, 8]
    only = {x.strip().upper() for x in args.only.split(",")}

    url = os.environ["DATABASE_URL"]
    pg = Pg(url)
    if os.environ.get("BENCH_PRIVATE_CLUSTER") == "1":
        # Our own throwaway cluster: no autovacuum in the middle of a timed run (setup vacuums).
        pg.psql(None, "ALTER SYSTEM SET autovacuum = off", "SELECT pg_reload_conf()")
    else:
        log("note: autovacuum stays as the server has it (BENCH_DATABASE_URL)")
    for d in (OUT, LOGS, WORKDIR):
        d.mkdir(parents=True, exist_ok=True)
    for f in LOGS.glob("*"):
        f.unlink()

    suite = Suite(args, pg)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": args.command, "scale": args.scale, "quick": args.quick, "sites": args.sites,
        "reps": args.reps, "jobs": args.jobs, "salvage": args.salvage,
        "salvage_version": subprocess.run([args.salvage, "--version"], capture_output=True, text=True).stdout.strip(),
        "git_commit": os.environ.get("BENCH_GIT_COMMIT", ""),
        "git_dirty": os.environ.get("BENCH_GIT_DIRTY", ""),
        "postgres": pg.psql(None, "SHOW server_version").strip(),
        "nproc": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "cpu": cpu_model(), "kernel": platform.release(),
    }
    meta["machine"] = (f"{meta['nproc']} CPUs ({meta['cpu']}), {meta['mem_gib']} GiB RAM, "
                       f"PostgreSQL {meta['postgres']}, salvage {meta['git_commit'][:12]}{meta['git_dirty']}")
    suite.results["meta"] = meta
    t0 = time.perf_counter()
    status = 0
    try:
        suite.prepare()
        for key, fn in (("B1", suite.b1), ("B2", suite.b2), ("B3", suite.b3), ("B4", suite.b4),
                        ("B5", suite.b5), ("B6", suite.b6)):
            if key in only:
                log(f"== {key}")
                fn()
    except BenchError as e:
        log(f"error: {e}")
        suite.results["error"] = str(e)
        status = 1
    meta["elapsed_seconds"] = time.perf_counter() - t0
    (OUT / "results.json").write_text(json.dumps(suite.results, indent=2, default=str) + "\n")
    md = markdown(suite.results)
    (OUT / "results.md").write_text(md)
    print(md)
    if any(b["verdict"] == "FAILED" for b in suite.results["benchmarks"].values()):
        status = 1
    log(f"done in {meta['elapsed_seconds'] / 60:.1f} min: target/bench/results.md, target/bench/results.json")
    return status


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
