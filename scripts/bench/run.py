#!/usr/bin/env python3
"""The benchmark suite of issues 5 and 9, driven by scripts/bench.sh (which starts the
PostgreSQL cluster and finds the salvage binary). Python 3 standard library only.

B1-B8 run on each schema of scripts/bench/schemas.py (--schema tracker|docs|both): the
tracker (fixtures/app/schema.sql) and the docs wiki (scripts/bench/docs.sql). The data sets
are described in scripts/bench/data.py, what each restore must bring back (and how the
harness knows it without asking salvage) in scripts/bench/expected.py, the benchmarks and
their checks in scripts/bench/suite.py. Results: target/bench/results.md and
target/bench/results.json (every run, its command, exit code, peak RSS, salvage's timings).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import report
from expected import ExpectedError
from pgtools import LOGS, OUT, WORKDIR, BenchError, Pg, log
from schemas import SCHEMAS
from suite import SchemaSuite

BENCHMARKS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9"]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-10x", action="store_true")
    ap.add_argument("--only", default=",".join(BENCHMARKS))
    ap.add_argument("--schema", choices=["tracker", "docs", "both"], default="both")
    ap.add_argument("--reuse", action="store_true", help="reuse generated databases and dumps")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--salvage", required=True)
    ap.add_argument("--command", default="scripts/bench.sh")
    args = ap.parse_args()
    if args.quick:
        args.sites = max(10, round(100 * args.scale))
        args.tiny = 100
        args.reps = args.reps or 2
    else:
        args.sites = max(10, round(1000 * args.scale))
        args.tiny = 1000
        args.reps = args.reps or 3
    args.b6_jobs = [1, 2, 4, 8]
    args.only_set = {x.strip().upper() for x in args.only.split(",")}
    unknown = args.only_set - set(BENCHMARKS)
    if unknown:
        ap.error(f"unknown benchmarks in --only: {', '.join(sorted(unknown))}")
    args.schemas = ["tracker", "docs"] if args.schema == "both" else [args.schema]
    return args


def machine(args, pg):
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": args.command, "scale": args.scale, "quick": args.quick, "sites": args.sites,
        "schemas": args.schemas, "only": sorted(args.only_set),
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
    return meta


def main():
    args = parse_args()
    pg = Pg(os.environ["DATABASE_URL"])
    if os.environ.get("BENCH_PRIVATE_CLUSTER") == "1":
        # Our own throwaway cluster: no autovacuum in the middle of a timed run (setup vacuums).
        pg.psql(None, "ALTER SYSTEM SET autovacuum = off", "SELECT pg_reload_conf()")
    else:
        log("note: autovacuum stays as the server has it (BENCH_DATABASE_URL)")
    for d in (OUT, LOGS, WORKDIR):
        d.mkdir(parents=True, exist_ok=True)
    for f in LOGS.glob("*"):
        f.unlink()

    results = {"meta": machine(args, pg), "schemas": {}, "runs": []}
    t0 = time.perf_counter()
    status = 0
    for name in args.schemas:
        suite = SchemaSuite(args, pg, SCHEMAS[name], results)
        try:
            log(f"==== {name}")
            suite.prepare()
            for key in BENCHMARKS:
                if key in args.only_set:
                    log(f"== {name} {key}")
                    getattr(suite, key.lower())()
        except (BenchError, ExpectedError) as e:
            log(f"error: {name}: {e}")
            suite.out["error"] = str(e)
            results["error"] = f"{name}: {e}"
            status = 1
        finally:
            suite.cleanup()
    results["meta"]["elapsed_seconds"] = time.perf_counter() - t0
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    md = report.markdown(results)
    (OUT / "results.md").write_text(md)
    print(md)
    if any(b["verdict"] == "FAILED" for res in results["schemas"].values() for b in res["benchmarks"].values()):
        status = 1
    log(f"done in {results['meta']['elapsed_seconds'] / 60:.1f} min: target/bench/results.md, target/bench/results.json")
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
