"""PostgreSQL and process helpers of the bench harness: psql sessions, databases by
template, row counts, and running a timed command under GNU time."""

import os
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


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Pg:
    def __init__(self, admin_url):
        self.admin = admin_url
        self.base = admin_url.rsplit("/", 1)[0]

    def url(self, db):
        return f"{self.base}/{db}"

    def psql(self, db, *sql, check=True):
        """Runs each SQL string (or psql meta-command) with -c, in order, in one session
        (separately, so VACUUM works); returns stdout."""
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

    def set_comment(self, db, text):
        self.psql(None, f"COMMENT ON DATABASE \"{db}\" IS '{text}'")

    def drop(self, db):
        self.psql(None, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def create(self, db, template=None):
        self.drop(db)
        # FILE_COPY: copies the files (after a checkpoint) instead of WAL-logging every block.
        t = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else " TEMPLATE template0"
        self.psql(None, f'CREATE DATABASE "{db}"{t}')

    def counts(self, db, tables):
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
        out = self.psql(db, sql)
        got = {line.split("|")[0]: int(line.split("|")[1]) for line in out.split()}
        return {t: got[t] for t in tables}

    def size(self, db):
        return int(self.psql(None, f"SELECT pg_database_size('{db}')").strip())

    def vacuum(self, db):
        self.psql(db, "VACUUM ANALYZE", "CHECKPOINT")


def run_timed(name, cmd, *, stdout_path=None, timeout=4 * 3600, env=None):
    """Runs cmd under GNU time; returns seconds (wall), exit code, peak RSS (KiB), stderr tail."""
    LOGS.mkdir(parents=True, exist_ok=True)
    rss_file = LOGS / f"{name}.rss"
    log_file = LOGS / f"{name}.log"
    out = open(stdout_path or log_file, "wb")
    err_file = LOGS / f"{name}.stderr"
    err = open(err_file, "wb")
    full = [GNU_TIME, "-f", "%M", "-o", str(rss_file)] + cmd
    t0 = time.perf_counter()
    try:
        p = subprocess.run(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout, env=env)
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
