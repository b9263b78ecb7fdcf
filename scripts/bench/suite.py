"""The benchmarks B1-B8 on one schema (scripts/bench/schemas.py).

Every figure is the wall-clock time (or peak RSS) of one command, measured outside its setup;
the two sides of each ratio alternate within each repetition (salvage first in even ones).
Every run is checked against what the harness worked out on its own
(scripts/bench/expected.py): after a restore, each table holds its rows after the incident
plus the rows to restore; salvage's report says no tenant failed and rows inserted equal the
rows to restore; in the first repetition those rows hash equal to the snapshot's. A run that
fails a check is reported as failed, never as a number.
"""

import json
import shlex
import subprocess

import data
import expected
import report
from pgtools import DATA, LOGS, PG_RESTORE, PSQL, ROOT, WORKDIR, BenchError, log, run_timed
from schemas import TRACKER_B2


class SchemaSuite:
    def __init__(self, args, pg, schema, results):
        self.args = args
        self.pg = pg
        self.schema = schema
        self.salvage = args.salvage
        self.jobs = args.jobs
        self.runs = results["runs"]
        self.out = results["schemas"][schema.name] = {
            "what": schema.what, "benchmarks": {}, "datasets": {}, "restored_sets": {}, "checks": []}
        self.archive_error = None
        self._expected = {}
        self.temporary = []     # databases dropped at the end unless --reuse (made again anyway)

    # -- names --------------------------------------------------------------------------------

    def db(self, kind, sites=None, shape=None):
        a = self.args
        tag = data.shape_tag(sites or a.sites, shape or self.shape)
        return f"{self.schema.name}_{kind}_{tag}"

    @property
    def shape(self):
        return self.schema.shapes["quick" if self.args.quick else "full"]

    # -- salvage invocations ------------------------------------------------------------------

    def salvage_restore(self, name, snapshot, target_db, tenants_file, jobs=None, extra=()):
        report_file = LOGS / f"{name}.report.json"
        if report_file.exists():
            report_file.unlink()
        cmd = [self.salvage, "restore", "--snapshot", snapshot, "--target", self.pg.url(target_db),
               *self.schema.salvage_args(), "--tenants-file", str(tenants_file),
               "--jobs", str(jobs or self.jobs), "--yes", "--report", str(report_file), *extra]
        r = run_timed(name, cmd)
        r["command"] = " ".join(shlex.quote(c) for c in cmd)
        r["report"] = str(report_file.relative_to(ROOT))
        if report_file.exists():
            rep = json.loads(report_file.read_text())
            r["timings"] = rep.get("timings")
            r["summary"] = rep.get("summary")
        return r

    def record(self, bench, side, rep, r):
        r = dict(r, schema=self.schema.name, benchmark=bench, side=side, rep=rep)
        self.runs.append(r)
        status = "ok" if r.get("ok") else f"FAILED ({r.get('error')})"
        extra = ""
        if r.get("timings"):
            t = r["timings"]
            extra = (f" [plan {t.get('plan_seconds', 0):.2f}s restore {t.get('restore_seconds') or 0:.2f}s"
                     f" verify {t.get('verify_seconds', 0):.2f}s]")
        rss = f", {r['max_rss_kib'] / 1024:.0f} MiB RSS" if r.get("max_rss_kib") else ""
        log(f"  {self.schema.name} {bench} {side} rep {rep + 1}: {r['seconds']:.2f}s{rss}{extra} {status}")
        return r

    def add(self, key, what, baseline, sal, base, **kw):
        report.add(self.out, key, what, baseline, sal, base, **kw)

    # -- checks -------------------------------------------------------------------------------

    def check_restore(self, r, db, exp, check_content, expect_inserted=None):
        """The report must say every tenant restored and verified and the rows inserted; the
        database must then hold what the restore must bring back."""
        want = exp.total() if expect_inserted is None else expect_inserted
        problems = []
        if r["exit_code"] != 0:
            problems.append(f"exit code {r['exit_code']}: {r.get('stderr_tail', '')[-300:]}")
        s = r.get("summary")
        if s is None:
            problems.append("no report")
        else:
            if s.get("failed"):
                problems.append(f"{s['failed']} tenants failed")
            if s.get("rows_missing"):
                problems.append(f"{s['rows_missing']} rows missing in verification")
            if s.get("rows_inserted") != want:
                problems.append(f"report says {s.get('rows_inserted')} rows inserted, expected {want}")
        problems += self.compare_live(db, exp, check_content)
        r["ok"] = not problems
        r["error"] = "; ".join(problems) or None
        return r

    def check_baseline(self, r, db, exp, check_content):
        if r["exit_code"] != 0:
            r["ok"], r["error"] = False, f"exit code {r['exit_code']}: {r['stderr_tail']}"
        else:
            problems = self.compare_live(db, exp, check_content)
            r["ok"], r["error"] = not problems, "; ".join(problems) or None
        return r

    def compare_live(self, db, exp, check_content):
        problems = []
        after = self.pg.counts(db, self.schema.tables)
        want = exp.counts_after_restore()
        if after != want:
            diff = {t: (after.get(t), want.get(t)) for t in want if after.get(t) != want.get(t)}
            problems.append(f"row counts differ from the incident's plus the rows to restore (got, want): {diff}")
        if check_content:
            got = expected.restored_hashes(self.pg, self.schema, db, exp)
            bad = [t for t in exp.hashes if got.get(t) != exp.hashes[t]]
            if bad:
                problems.append(f"restored rows differ from the snapshot in {bad}")
            self.out["checks"].append({"database": db, "tenants": len(exp.ids),
                                       "tables": {t: list(v) for t, v in got.items()},
                                       "equal_to_snapshot": not bad})
        return problems

    def expected_for(self, db, ids, snapshot=None):
        """What restoring `ids` into `db` (in its incident state) must bring back; worked
        out once per database and tenants (the incident state is the same every time)."""
        key = (db, tuple(ids))
        if key not in self._expected:
            exp = expected.compute(self.pg, self.schema, snapshot or self.snap, db, ids,
                                   WORKDIR / "expected" / db)
            self._expected[key] = exp
            log(f"{self.schema.name}: {len(ids)} tenants into {db}: {sum(exp.members.values()):,} rows in the "
                f"snapshot, {exp.total():,} to restore, {sum(exp.waiting.values()):,} waiting")
        return self._expected[key]

    def order(self, rep):
        """Which side runs first alternates between repetitions."""
        return ["salvage", "baseline"] if rep % 2 == 0 else ["baseline", "salvage"]

    def fresh(self, template, work="work"):
        self.pg.create(work, template=template)
        return work

    # -- data ---------------------------------------------------------------------------------

    def prepare(self):
        a = self.args
        pg = self.pg
        s = self.schema
        self.sites = a.sites
        self.n_small = max(1, round(self.sites * 0.04))   # "40 of 1,000"
        self.n_large = max(1, round(self.sites * 0.40))   # "400 of 1,000"
        self.snap = self.db("snap")
        self.live = self.db("live")
        self.dump = DATA / f"{self.snap}.dump"
        gen = data.ensure_snapshot(pg, s, self.snap, self.sites, self.shape, a.reuse)
        self.temporary += [self.snap, self.live]
        dump_s = data.ensure_dump(pg, self.snap, self.dump, a.reuse)
        self.ids_small = data.choose(pg, s, self.snap, self.n_small)
        self.ids_large = data.choose(pg, s, self.snap, self.n_large)
        self.file_small = data.write_ids(f"{s.name}-tenants-small.txt", self.ids_small)
        self.file_large = data.write_ids(f"{s.name}-tenants-large.txt", self.ids_large)
        data.make_live(pg, s, self.snap, self.live, self.ids_large, a.reuse)
        self.snap_counts = pg.counts(self.snap, s.tables)
        self.inc_small = data.ensure_incident(pg, s, self.live, self.db("inc_small"), self.ids_small, a.reuse)
        self.temporary.append(self.inc_small)
        self.exp_small = self.expected_for(self.inc_small, self.ids_small)
        self.out["datasets"]["scale1"] = {
            "database": self.snap, "tenants": self.sites, "shape": self.shape,
            "rows": self.snap_counts, "total_rows": sum(self.snap_counts.values()),
            "database_bytes": pg.size(self.snap), "dump_bytes": self.dump.stat().st_size,
            "generate_seconds": gen, "dump_seconds": dump_s}
        self.note_set("B1-B3, B5, B7, B8", self.exp_small)
        d = self.out["datasets"]["scale1"]
        log(f"{s.name} data: {self.sites} tenants, {d['total_rows']:,} rows, database "
            f"{d['database_bytes'] / 2**20:.0f} MiB, dump {d['dump_bytes'] / 2**20:.0f} MiB")
        self.probe_archive()

    def note_set(self, name, exp):
        self.out["restored_sets"][name] = {"tenants": len(exp.ids), "members": exp.members,
                                           "restore": exp.restore, "waiting": exp.waiting}

    def probe_archive(self):
        """Can salvage read a pg_dump archive as its snapshot? One plan of one tenant."""
        pg = self.pg
        work = self.fresh(self.inc_small, "work_probe")
        cmd = [self.salvage, "plan", "--snapshot", str(self.dump), "--target", pg.url(work),
               *self.schema.salvage_args(), "--tenants", str(self.ids_small[0])]
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=3600)
        pg.drop(work)
        if p.returncode != 0:
            lines = [ln.strip() for ln in p.stderr.strip().splitlines() if ln.strip()]
            self.archive_error = " ".join(lines[:3])[:300] or f"exit code {p.returncode}"
            log(f"salvage cannot read the {self.schema.name} dump as a snapshot: {self.archive_error}")
        self.out["archive_probe"] = {"command": " ".join(shlex.quote(c) for c in cmd),
                                     "exit_code": p.returncode, "error": self.archive_error}

    def cleanup(self):
        if not self.args.reuse:
            for db in self.temporary:
                self.pg.drop(db)

    # -- B1 -----------------------------------------------------------------------------------

    def b1(self):
        pg = self.pg
        sal, base = [], []
        for rep in range(self.args.reps):
            for side in self.order(rep):
                if side == "salvage":
                    if self.archive_error:
                        continue
                    work = self.fresh(self.inc_small)
                    r = self.salvage_restore(f"{self.schema.name}-b1-salvage-{rep}", str(self.dump), work, self.file_small)
                    self.check_restore(r, work, self.exp_small, rep == 0)
                    sal.append(self.record("B1", "salvage", rep, r))
                else:
                    pg.create("restore_empty")
                    pg.psql(None, "CHECKPOINT")
                    cmd = [PG_RESTORE, "-j2", "-d", pg.url("restore_empty"), str(self.dump)]
                    r = run_timed(f"{self.schema.name}-b1-pg_restore-{rep}", cmd)
                    r["command"] = " ".join(shlex.quote(c) for c in cmd)
                    problems = []
                    if r["exit_code"] != 0:
                        problems.append(f"exit code {r['exit_code']}: {r['stderr_tail']}")
                    elif pg.counts("restore_empty", self.schema.tables) != self.snap_counts:
                        problems.append("pg_restore's row counts differ from the snapshot's")
                    r["ok"] = not problems
                    r["error"] = "; ".join(problems) or None
                    base.append(self.record("B1", "baseline", rep, r))
                    pg.drop("restore_empty")
        pg.drop("work")
        self.add("B1", f"restore {self.n_small} of {self.sites} tenants from the custom dump",
                 "`pg_restore -j2` of the whole dump into an empty database",
                 sal, base, unavailable=self.archive_error)

    # -- B2 -----------------------------------------------------------------------------------

    def b2_script(self):
        """The script a responder would write for this schema: the chosen tenants' rows,
        table by table, parents first, COPYed out of the snapshot and straight into live."""
        if self.schema.name == "tracker":
            return self.b2_script_tracker()
        exp = self.exp_small
        name = self.schema.name
        d = WORKDIR / f"b2-{name}"
        d.mkdir(parents=True, exist_ok=True)
        load = [f"-- B2 baseline ({name}): every table's rows to restore, parents first, piped from the",
                "-- snapshot (COPY (SELECT ...) TO STDOUT) into live (COPY ... FROM STDIN), in one",
                "-- transaction: the deferrable cycle's FK is checked at its commit.",
                "BEGIN;"]
        for t in self.schema.owned:
            q = d / f"{t.name}.sql"
            q.write_text("".join(f"{x};\n" for x in self.schema.session_settings)
                         + f"COPY ({exp.restore_rows_sql(t.name)}) TO STDOUT;\n")
            load.append(f"\\copy {t.name} FROM PROGRAM '{PSQL} -X -q -v ON_ERROR_STOP=1 \"$SNAP\" -f {q}'")
        load.append("COMMIT;")
        (d / "load.sql").write_text("\n".join(load) + "\n")
        path = WORKDIR / f"b2-copy-script-{name}.sh"
        path.write_text("\n".join([
            "#!/usr/bin/env bash",
            f"# B2 baseline ({name}): see {d.relative_to(ROOT)}/load.sql; the rows are the chosen",
            "# tenants' (the harness's membership conditions) minus those whose parent live lacks.",
            "set -euo pipefail",
            "export SNAP=$1",
            f"exec {shlex.quote(PSQL)} -X -q -v ON_ERROR_STOP=1 \"$2\" -f {shlex.quote(str(d / 'load.sql'))}"]) + "\n")
        path.chmod(0o755)
        return path

    def b2_script_tracker(self):
        if any(self.exp_small.exclusions.values()):
            raise BenchError("tracker rows would wait: the tracker's B2 script cannot leave them out")
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
        for table, q in TRACKER_B2:
            lines.append(f'copy {table} "{q.format(ids=lst)}"')
        path = WORKDIR / "b2-copy-script.sh"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o755)
        return path

    def b2(self):
        script = self.b2_script()
        sal, base = [], []
        for rep in range(self.args.reps):
            for side in self.order(rep):
                work = self.fresh(self.inc_small)
                if side == "salvage":
                    r = self.salvage_restore(f"{self.schema.name}-b2-salvage-{rep}", self.pg.url(self.snap), work,
                                             self.file_small)
                    self.check_restore(r, work, self.exp_small, rep == 0)
                    sal.append(self.record("B2", "salvage", rep, r))
                else:
                    r = run_timed(f"{self.schema.name}-b2-psql-{rep}", [str(script), self.pg.url(self.snap), self.pg.url(work)])
                    r["command"] = f"{script.relative_to(ROOT)} SNAPSHOT_URL LIVE_URL"
                    self.check_baseline(r, work, self.exp_small, rep == 0)
                    base.append(self.record("B2", "baseline", rep, r))
        self.pg.drop("work")
        self.add("B2", f"restore {self.n_small} of {self.sites} tenants from the snapshot database",
                 f"hand-written per-table `COPY (SELECT … WHERE tenant …)` → `COPY FROM` with psql "
                 f"(`{script.relative_to(ROOT)}`)", sal, base)

    # -- B3 -----------------------------------------------------------------------------------

    def b3(self):
        sal, base, inspect = [], [], []
        exp = self.exp_small
        work = None if self.archive_error else self.fresh(self.inc_small)
        for rep in range(self.args.reps):
            for side in self.order(rep):
                if side == "salvage":
                    if self.archive_error:
                        continue
                    self.pg.psql(None, "CHECKPOINT")
                    cmd = [self.salvage, "plan", "--snapshot", str(self.dump), "--target", self.pg.url(work),
                           *self.schema.salvage_args(), "--tenants-file", str(self.file_small), "--format", "json"]
                    plan_out = LOGS / f"{self.schema.name}-b3-salvage-{rep}.plan.json"
                    r = run_timed(f"{self.schema.name}-b3-salvage-{rep}", cmd, stdout_path=plan_out)
                    r["command"] = " ".join(shlex.quote(c) for c in cmd)
                    r["ok"], r["error"] = True, None
                    if r["exit_code"] != 0:
                        r["ok"], r["error"] = False, f"exit code {r['exit_code']}: {r['stderr_tail']}"
                    else:
                        problem = self.check_plan(plan_out, exp)
                        if problem:
                            r["ok"], r["error"] = False, problem
                    sal.append(self.record("B3", "salvage", rep, r))
                    # For comparison: reading every row without filtering (inspect counts them).
                    cmd = [self.salvage, "inspect", str(self.dump)]
                    r = run_timed(f"{self.schema.name}-b3-inspect-{rep}", cmd)
                    r["command"] = " ".join(shlex.quote(c) for c in cmd)
                    r["ok"] = r["exit_code"] == 0
                    r["error"] = None if r["ok"] else r["stderr_tail"]
                    inspect.append(self.record("B3 inspect", "salvage", rep, r))
                else:
                    cmd = [PG_RESTORE, "--data-only", "-f", "/dev/null", str(self.dump)]
                    r = run_timed(f"{self.schema.name}-b3-pg_restore-{rep}", cmd)
                    r["command"] = " ".join(shlex.quote(c) for c in cmd)
                    r["ok"] = r["exit_code"] == 0
                    r["error"] = None if r["ok"] else r["stderr_tail"]
                    base.append(self.record("B3", "baseline", rep, r))
        self.pg.drop("work")
        self.add("B3", f"scan of the whole dump, filtering {self.n_small} tenants (`salvage plan`)",
                 "`pg_restore --data-only -f /dev/null`", sal, base, unavailable=self.archive_error)
        self.add("B3 inspect", "(for comparison, no target) `salvage inspect`: read and count every row of the dump",
                 "`pg_restore --data-only -f /dev/null`", inspect, base, unavailable=self.archive_error)

    def check_plan(self, plan_out, exp):
        """The plan's rows per table in the snapshot and waiting must be the harness's."""
        try:
            plan = json.loads(plan_out.read_text())
            got = {t["table"].split(".")[-1]: (t.get("snapshot"), t.get("waiting", 0)) for t in plan["tables"]}
            want = {t: (exp.members[t], exp.waiting[t]) for t in exp.members}
            bad = {t: (got.get(t), w) for t, w in want.items() if got.get(t) != w}
            if bad:
                return f"plan's (snapshot rows, waiting) differ (plan, expected): {bad}"
            if len(plan["tenants"]) != len(exp.ids):
                return f"plan has {len(plan['tenants'])} tenants, expected {len(exp.ids)}"
        except (ValueError, KeyError, TypeError) as e:
            return f"unreadable plan JSON: {e}"
        return None

    # -- B4 -----------------------------------------------------------------------------------

    def b4(self):
        pg = self.pg
        name = self.schema.name
        inc_large = data.ensure_incident(pg, self.schema, self.live, self.db("inc_large"), self.ids_large,
                                         self.args.reuse)
        self.temporary.append(inc_large)
        exp = self.expected_for(inc_large, self.ids_large)
        self.note_set("B4", exp)
        export = WORKDIR / f"b4-{name}"
        export.mkdir(parents=True, exist_ok=True)

        def export_load(part, comment, **which):
            load = [f"-- {comment}", "BEGIN;"]
            rows = 0
            for t in self.schema.owned:
                f = export / f"{part}.{t.name}.copy"
                pg.psql(self.snap, *self.schema.session_settings,
                        f"\\copy ({exp.restore_rows_sql(t.name, **which)}) TO '{f}'")
                n = sum(1 for _ in open(f, "rb"))
                rows += n
                if n:
                    load.append(f"\\copy {t.name} FROM '{f}'")
            load.append("COMMIT;")
            path = export / f"{part}.sql"
            path.write_text("\n".join(load) + "\n")
            return path, rows

        load_sql, rows = export_load("load", "B4 baseline: the exact rows salvage restores, loaded with COPY FROM "
                                             "in one transaction")
        if rows != exp.total():
            raise BenchError(f"B4's export holds {rows} rows, expected {exp.total()}")
        # The same rows split by tenant into two halves, loaded by two sessions at once (what
        # two CPUs can write; salvage's --jobs use both); rows reaching tenants of both halves
        # go in after them, from a third file.
        halves = [",".join(map(str, self.ids_large[h::2])) for h in range(2)]
        parts = [export_load(f"load-half{h}", f"B4 two-stream baseline, half {h + 1} of 2",
                             ids_sql=halves[h], not_ids_sql=halves[1 - h]) for h in range(2)]
        cross, cross_rows = export_load("load-both", "B4 two-stream baseline, rows of both halves, after them",
                                        ids_sql=halves[0], not_ids_sql=halves[1], both=True)
        if parts[0][1] + parts[1][1] + cross_rows != exp.total():
            raise BenchError(f"B4's halves hold {parts[0][1]} + {parts[1][1]} + {cross_rows} rows, expected {exp.total()}")
        q = "-X -q -v ON_ERROR_STOP=1"
        two = (f"{PSQL} {q} \"$1\" -f {shlex.quote(str(parts[0][0]))} & a=$!; "
               f"{PSQL} {q} \"$1\" -f {shlex.quote(str(parts[1][0]))} & b=$!; wait $a && wait $b")
        if cross_rows:
            two += f" && {PSQL} {q} \"$1\" -f {shlex.quote(str(cross))}"
        sal, base, base2 = [], [], []
        sides = ["salvage", "baseline", "two streams"]
        for rep in range(self.args.reps):
            for side in sides[rep % 3:] + sides[:rep % 3]:
                work = self.fresh(inc_large)
                if side == "salvage":
                    r = self.salvage_restore(f"{name}-b4-salvage-{rep}", pg.url(self.snap), work, self.file_large)
                    self.check_restore(r, work, exp, rep == 0)
                    sal.append(self.record("B4", "salvage", rep, r))
                    continue
                if side == "baseline":
                    r = run_timed(f"{name}-b4-copy-{rep}", [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", pg.url(work),
                                                            "-f", str(load_sql)])
                    r["command"] = f"psql {q} LIVE_URL -f {load_sql.relative_to(ROOT)}"
                else:
                    r = run_timed(f"{name}-b4-copy2-{rep}", ["bash", "-c", two, "b4", pg.url(work)])
                    r["command"] = two.replace('"$1"', "LIVE_URL")
                self.check_baseline(r, work, exp, rep == 0)
                if side == "baseline":
                    base.append(self.record("B4", "baseline", rep, r))
                else:
                    base2.append(self.record("B4 2 streams", "baseline", rep, r))
        pg.drop("work")
        self.add("B4", f"restore {self.n_large} of {self.sites} tenants from the snapshot database",
                 f"`COPY FROM` of exactly those rows (exported beforehand) into the same indexed tables, "
                 f"one transaction (`{load_sql.relative_to(ROOT)}`)", sal, base)
        self.add("B4 2 streams", "(for comparison, no target) the same salvage runs",
                 "the same `COPY FROM` split by tenant into two halves loaded by two psql sessions at once, "
                 f"then the rows of both halves (`{export.relative_to(ROOT)}/load-half{{0,1}}.sql`, `load-both.sql`)",
                 sal, base2)

    # -- the 10x live database (B5, B7) ------------------------------------------------------

    def live10(self, need_dump):
        a = self.args
        if not hasattr(self, "_live10"):
            self._live10 = self.db("live10", sites=10 * self.sites)
            self.temporary.append(self._live10)
            self.dump10 = DATA / f"{self.db('snap10', sites=10 * self.sites)}.dump"
            took = data.ensure_live10(self.pg, self.schema, self.snap, self._live10, self.dump10, self.sites,
                                      self.shape, self.ids_large, a.reuse, need_dump)
            c10 = self.pg.counts(self._live10, self.schema.tables)
            self.out["datasets"]["live10"] = {
                "database": self._live10, "tenants": 10 * self.sites, "shape": self.shape, "rows": c10,
                "total_rows": sum(c10.values()), "database_bytes": self.pg.size(self._live10),
                "dump_bytes": self.dump10.stat().st_size if self.dump10.exists() else None, **took}
            log(f"{self.schema.name} 10x live: {10 * self.sites} tenants, {sum(c10.values()):,} rows")
        return self._live10

    def in_place(self, db, ids):
        """The incident in place (a database too big to copy per run): the chosen tenants
        deleted, and the journal an earlier run left dropped — with it, the same restore
        would continue that run, find it done and write nothing; what they must get back is
        worked out the first time."""
        self.pg.psql(db, "DROP SCHEMA IF EXISTS salvage CASCADE")
        data.delete_tenants(self.pg, self.schema, db, ids)
        return self.expected_for(db, ids)

    # -- B5 -----------------------------------------------------------------------------------

    def b5(self):
        a = self.args
        one = [r["max_rss_kib"] / 1024 for r in self.runs
               if r["schema"] == self.schema.name and r["benchmark"] == "B1" and r["side"] == "salvage"
               and r.get("ok") and r.get("max_rss_kib")]
        title = (f"peak RSS of a dump restore of {self.n_small} tenants, {10 * self.sites} vs {self.sites} "
                 f"tenants in the dump")
        baseline = f"the same tenants' restore from the {self.sites}-tenant dump (B1's salvage runs)"
        if self.archive_error:
            self.add("B5", title, "", [], [], unavailable=self.archive_error, unit="MiB")
            return
        if a.skip_10x:
            self.add("B5", title, "", [], [], unavailable="skipped (--skip-10x)", unit="MiB")
            return
        live10 = self.live10(need_dump=True)
        runs = []
        for rep in range(a.reps):
            exp = self.in_place(live10, self.ids_small)
            r = self.salvage_restore(f"{self.schema.name}-b5-salvage10x-{rep}", str(self.dump10), live10, self.file_small)
            self.check_restore(r, live10, exp, rep == 0)
            runs.append(self.record("B5", "salvage", rep, r))
        self.add("B5", title, baseline, runs, [], unit="MiB", metric="rss", baseline_values=one)

    # -- B6 -----------------------------------------------------------------------------------

    def b6(self):
        pg = self.pg
        a = self.args
        n = a.tiny
        shape = self.schema.shapes["tiny"]
        tiny = self.db("snap", sites=2 * n, shape=shape)
        live = self.db("live", sites=2 * n, shape=shape)
        gen = data.ensure_snapshot(pg, self.schema, tiny, 2 * n, shape, a.reuse)
        self.temporary += [tiny, live]
        ids = data.choose(pg, self.schema, tiny, n)
        f = data.write_ids(f"{self.schema.name}-tenants-tiny.txt", ids)
        data.make_live(pg, self.schema, tiny, live, ids, a.reuse)
        inc = data.ensure_incident(pg, self.schema, live, self.db("inc", sites=2 * n, shape=shape), ids, a.reuse)
        self.temporary.append(inc)
        exp = self.expected_for(inc, ids, snapshot=tiny)
        c = pg.counts(tiny, self.schema.tables)
        self.out["datasets"]["tiny"] = {"database": tiny, "tenants": 2 * n, "shape": shape, "rows": c,
                                        "total_rows": sum(c.values()), "generate_seconds": gen}
        self.note_set("B6 (tiny)", exp)
        rows = exp.total()
        by_jobs = {j: [] for j in a.b6_jobs}
        for rep in range(a.reps):
            order = a.b6_jobs if rep % 2 == 0 else list(reversed(a.b6_jobs))
            for j in order:
                work = self.fresh(inc)
                r = self.salvage_restore(f"{self.schema.name}-b6-jobs{j}-{rep}", pg.url(tiny), work, f, jobs=j)
                self.check_restore(r, work, exp, rep == 0)
                r["tenants_per_second"] = n / r["seconds"]
                t = r.get("timings") or {}
                if t.get("restore_seconds"):
                    r["restore_phase_tenants_per_second"] = n / t["restore_seconds"]
                by_jobs[j].append(self.record(f"B6-j{j}", "salvage", rep, r))
        pg.drop("work")
        base_median = None
        for j in a.b6_jobs:
            self.add(f"B6 jobs={j}", f"{n} tiny tenants (~{rows // max(n, 1)} rows each), `--jobs {j}`",
                     "", by_jobs[j], [], unit="tenants/s", metric="tps", relative_to=base_median)
            b = self.out["benchmarks"][f"B6 jobs={j}"]
            if base_median is None and b["salvage"]:
                base_median = b["salvage"]["median"]

    # -- B7 -----------------------------------------------------------------------------------

    def b7(self):
        """The same tenants from the same snapshot database (B2's), into live at 10x the
        other tenants vs live at 1x: both restored in place, deleted before each run."""
        a = self.args
        title = (f"restore {self.n_small} tenants from the snapshot database into a live database holding "
                 f"{10 * self.sites} tenants")
        baseline = f"the same restore into the {self.sites}-tenant live database"
        if a.skip_10x:
            self.add("B7", title, baseline, [], [], unavailable="skipped (--skip-10x)")
            return
        live10 = self.live10(need_dump="B5" in a.only_set and not self.archive_error)
        live1 = self.db("b7live")
        self.pg.create(live1, template=self.live)
        self.temporary.append(live1)
        sal, base = [], []
        for rep in range(a.reps):
            for side in self.order(rep):
                db = live10 if side == "salvage" else live1
                exp = self.in_place(db, self.ids_small)
                r = self.salvage_restore(f"{self.schema.name}-b7-{'10x' if db == live10 else '1x'}-{rep}",
                                         self.pg.url(self.snap), db, self.file_small)
                self.check_restore(r, db, exp, rep == 0)
                (sal if side == "salvage" else base).append(
                    self.record("B7", "10x live" if side == "salvage" else "1x live", rep, r))
        self.add("B7", title, baseline, sal, base)

    # -- B8 -----------------------------------------------------------------------------------

    def b8(self):
        """A finished restore run again: the second run finds the journal's run finished; a
        third, without the journal, finds every row there (the idempotent rerun)."""
        first, second, unjournaled = [], [], []
        for rep in range(self.args.reps):
            work = self.fresh(self.inc_small)
            r = self.salvage_restore(f"{self.schema.name}-b8-first-{rep}", self.pg.url(self.snap), work, self.file_small)
            self.check_restore(r, work, self.exp_small, rep == 0)
            first.append(self.record("B8", "first run", rep, r))
            r = self.salvage_restore(f"{self.schema.name}-b8-again-{rep}", self.pg.url(self.snap), work, self.file_small)
            self.check_restore(r, work, self.exp_small, rep == 0, expect_inserted=0)
            second.append(self.record("B8", "second run", rep, r))
            r = self.salvage_restore(f"{self.schema.name}-b8-nojournal-{rep}", self.pg.url(self.snap), work,
                                     self.file_small, extra=("--no-journal",))
            self.check_restore(r, work, self.exp_small, rep == 0, expect_inserted=0)
            unjournaled.append(self.record("B8", "second run, --no-journal", rep, r))
        self.pg.drop("work")
        self.add("B8", f"a second run of a finished restore of {self.n_small} tenants from the snapshot database",
                 "the first run (the restore it repeats, right before it)", second, first)
        self.add("B8n", f"a second run of a finished restore of {self.n_small} tenants, --no-journal",
                 "the first run", unjournaled, first)

    # -- B9 -----------------------------------------------------------------------------------

    def b9(self):
        """salvage diff of every tenant against a diff of 10, snapshot database against the live
        database the small incident left: both must name exactly the deleted tenants among
        those they cover."""
        every, ten = [], []
        ids10 = self.ids_small[:10]
        file10 = data.write_ids(f"{self.schema.name}-tenants-10.txt", ids10)
        # Deleted: root rows in the snapshot that live lacks — the incident's, and on docs the
        # orgs that left after the snapshot — read from both databases by hand.
        def roots(db):
            return {int(x) for x in self.pg.psql(db, f"SELECT id FROM {self.schema.root}").split()}
        gone = roots(self.snap) - roots(self.inc_small)
        gone10 = [i for i in ids10 if i in gone]

        def diff(name, tenants_file, expect):
            out = LOGS / f"{name}.json"
            cmd = [self.salvage, "diff", "--snapshot", self.pg.url(self.snap),
                   "--target", self.pg.url(self.inc_small), *self.schema.salvage_args(),
                   "--format", "json"]
            if tenants_file:
                cmd += ["--tenants-file", str(tenants_file)]
            r = run_timed(name, cmd, stdout_path=out)
            r["command"] = " ".join(shlex.quote(c) for c in cmd)
            problems = []
            if r["exit_code"] != 1:
                problems.append(f"exit code {r['exit_code']} (1: some tenants deleted): {r.get('stderr_tail', '')[-300:]}")
            else:
                report_ = json.loads(out.read_text())
                deleted = sorted(str(t["tenant"]) for t in report_["tenants"] if t["state"] == "deleted")
                if deleted != sorted(str(i) for i in expect):
                    problems.append(f"{len(deleted)} tenants deleted by the diff, {len(expect)} expected")
            r["ok"] = not problems
            r["error"] = "; ".join(problems) or None
            return r

        for rep in range(self.args.reps):
            for side in self.order(rep):
                if side == "salvage":
                    r = diff(f"{self.schema.name}-b9-every-{rep}", None, sorted(gone))
                    every.append(self.record("B9", f"diff of every tenant ({self.sites})", rep, r))
                else:
                    r = diff(f"{self.schema.name}-b9-ten-{rep}", file10, gone10)
                    ten.append(self.record("B9", "diff of 10 tenants", rep, r))
        self.add("B9", f"salvage diff of every tenant ({self.sites}) of the snapshot database and live",
                 "salvage diff of 10 of them", every, ten)

