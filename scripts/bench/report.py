"""Figures from runs, and the Markdown results: ratios of medians, verdicts against the
targets of issue 9, the phase split from salvage's --report, the data sets."""

import statistics

# Issue 9's targets: (at most | at least, value). B6's is for the default --jobs (4).
TARGETS = {"B1": ("≤", 0.25), "B2": ("≤", 1.0), "B3": ("≤", 1.0), "B4": ("≤", 1.3),
           "B5": ("≤", 1.25), "B6 jobs=4": ("≥", 2000), "B7": ("≤", 1.2), "B8": ("≤", 0.35),
           "B9": ("≤", 1.5)}


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def add(out, key, what, baseline, sal, base, *, unavailable=None, unit="s", metric="seconds",
        baseline_values=None, relative_to=None):
    """Records one figure in `out["benchmarks"]`: every run must have passed its checks,
    else the figure is FAILED and no ratio is judged."""
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
    target = TARGETS.get(key)
    verdict = "—"
    if unavailable and not s:
        verdict = "not available"
    elif failed:
        verdict = "FAILED"
    elif target and key.startswith("B6") and s:
        verdict = "pass" if s["median"] >= target[1] else "fail"
    elif target and ratio is not None:
        verdict = "pass" if ratio <= target[1] else "fail"
    phases = {}
    for ph in ("plan_seconds", "restore_seconds", "verify_seconds", "total_seconds"):
        phases[ph] = stats([(r.get("timings") or {}).get(ph) for r in sal if r.get("ok")])
    out["benchmarks"][key] = {
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


def _figures(res):
    out = ["| benchmark | salvage min / **median** / max | baseline min / **median** / max | ratio of medians | target | result |",
           "|---|---|---|---|---|---|"]
    for key, b in res["benchmarks"].items():
        name = f"**{key}** {b['what']}"
        if b["baseline_what"]:
            name += f" — vs {b['baseline_what']}"
        if b["unavailable"] and not b["salvage"]:
            sal = f"not available: {b['unavailable']}"
        else:
            sal = fmt(b["salvage"], b["unit"])
        ratio = "—" if b["ratio"] is None else f"{b['ratio']:.2f}"
        target = b["target"]
        if b["ratio"] is not None and target and not key.startswith("B6") and round(b["ratio"], 2) == target[1]:
            ratio = f"{b['ratio']:.3f}"   # so that "1.00 fail" does not happen
        if key.startswith("B6"):
            ratio = "—" if b["ratio"] is None else f"{b['ratio']:.2f}× jobs=1"
        shown = f"{target[0]} {target[1]}" + (" tenants/s" if key.startswith("B6") else "") if target else "—"
        verdict = b["verdict"]
        if b["failures"]:
            verdict += " (" + "; ".join(b["failures"])[:400] + ")"
        out.append(f"| {name} | {sal} | {fmt(b['baseline'], b['unit'])} | {ratio} | {shown} | {verdict} |")
    return out


def _phases(res):
    out = ["| benchmark | wall | plan | restore | verify | restore phase / baseline | peak RSS salvage | peak RSS baseline |",
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
    return out


def _datasets(res):
    out = ["| data set | tenants | rows | database | custom dump | rows per table |", "|---|---|---|---|---|---|"]
    for name, d in res["datasets"].items():
        db = f"{d['database_bytes'] / 2**20:,.0f} MiB" if d.get("database_bytes") else "—"
        dump = f"{d['dump_bytes'] / 2**20:,.0f} MiB" if d.get("dump_bytes") else "—"
        per = ", ".join(f"{t} {n:,}" for t, n in d["rows"].items())
        out.append(f"| {name} | {d['tenants']:,} | {d['total_rows']:,} | {db} | {dump} | {per} |")
    return out


def _restored_sets(res):
    out = []
    for name, s in res.get("restored_sets", {}).items():
        waiting = sum(s["waiting"].values())
        line = (f"- {name}: {s['tenants']:,} tenants, {sum(s['members'].values()):,} rows in the snapshot, "
                f"{sum(s['restore'].values()):,} to restore")
        if waiting:
            per = ", ".join(f"{t} {n:,}" for t, n in s["waiting"].items() if n)
            line += f", {waiting:,} waiting ({per})"
        out.append(line + ".")
    return out


def markdown(results):
    m = results["meta"]
    out = [f"### Results — {m['date']}", "",
           f"`{m['command']}` — scale {m['scale']}, {m['reps']} repetitions, salvage `--jobs {m['jobs']}`; "
           f"machine: {m['machine']}.", ""]
    for name, res in results["schemas"].items():
        out += [f"#### {name}: {res['what']}", ""] + _figures(res)
        if res.get("error"):
            out += ["", f"**The {name} benchmarks stopped:** {res['error']}"]
        out += ["", "Where salvage's time went (medians of its `--report` timings, seconds; `restore` always "
                    "verifies too), the ratio its restore phase alone would give, and peak RSS (GNU time; the "
                    "baselines' figure is the client's, the server's work is not in it):", ""] + _phases(res)
        out += ["", "Data sets:", ""] + _datasets(res)
        sets = _restored_sets(res)
        if sets:
            out += ["", "Restored sets (the harness's own count, see scripts/bench/expected.py):", ""] + sets
        if res.get("archive_probe", {}).get("error"):
            out += ["", f"salvage could not read the dump: `{res['archive_probe']['command']}` → "
                        f"{res['archive_probe']['error']}"]
        out.append("")
    return "\n".join(out)
