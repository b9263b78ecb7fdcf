"""What a restore of the chosen tenants must bring back, worked out by the harness on its
own (never from salvage's plan or report):

1. the chosen tenants' rows in the snapshot (M), by the schema's membership conditions
   (scripts/bench/schemas.py), each with the references it needs and a hash of its text;
2. in the incident database (live with the chosen tenants deleted): none of M may still be
   there — the incident deleted them, or live had lost them before;
3. the rows to restore (E): the largest part of M whose every reference (foreign keys and
   tenant columns onto owned tables, a NULL column skipped as a foreign key does) exists
   after the restore — in the incident database, or in E itself. Taken from all of M,
   rows whose parent is neither are taken out until nothing changes: what is left can go
   in together (a cycle too, its deferrable FK checked at commit). The rest of M waits.

After a restore the database must hold, per table, its rows after the incident plus E's,
and (first repetition) E's rows must hash equal to the snapshot's. The baselines copy
exactly E: the member rows minus those referencing a parent listed as missing.
"""

import re
from dataclasses import dataclass
from pathlib import Path


class ExpectedError(Exception):
    pass


def _ident(table):
    """The columns that tell a table's rows apart: its key, or where the row is in the
    snapshot (a table without a key: partition and ctid, stable in a snapshot at rest)."""
    if table.key:
        return [f"t.{c}" for c in table.key], list(table.key)
    return ["(t.tableoid::regclass::text || ':' || t.ctid::text)"], ["ident"]


def _ref_names(i, ref):
    return [f"r{i}_{j}" for j in range(len(ref.columns))]


def _literal(value):
    if value is None:
        return "NULL"
    if re.fullmatch(r"-?\d+", value):
        return value
    return "'" + value.replace("'", "''") + "'"


def _tuple_sql(values):
    return "(" + ", ".join(_literal(v) for v in values) + ")"


@dataclass
class Expected:
    schema: object
    ids: list
    members: dict        # table -> rows of the chosen tenants in the snapshot
    restore: dict        # table -> rows a restore must bring back
    hashes: dict         # table -> (count, hash) of those, in the snapshot
    exclusions: dict     # table -> [(columns, [values...])]: parents missing after a restore
    keys_dir: Path       # e.<table>.copy: the keys of the rows to restore
    after_incident: dict  # table -> rows in the incident database

    @property
    def waiting(self):
        return {t: self.members[t] - self.restore[t] for t in self.members}

    def total(self):
        return sum(self.restore.values())

    def counts_after_restore(self):
        return {t: n + self.restore.get(t, 0) for t, n in self.after_incident.items()}

    def exclusion_sql(self, table, alias="t"):
        """` AND NOT …` for every reference whose parent will be missing after a restore."""
        out = ""
        for columns, values in self.exclusions.get(table, []):
            cols = ", ".join(f"{alias}.{c}" for c in columns)
            out += f" AND NOT coalesce(({cols}) IN (VALUES {', '.join(_tuple_sql(v) for v in values)}), false)"
        return out

    def restore_rows_sql(self, table, ids_sql=None, not_ids_sql=None, both=False):
        """SELECT t.* of exactly the rows to restore of a table (of the tenants `ids_sql`,
        default all chosen; without those reaching `not_ids_sql`, or only those reaching
        both): what the baselines copy."""
        s = self.schema
        ids_sql = ids_sql or ",".join(map(str, self.ids))
        t = s.table(table)
        cond = f"({t.member.format(ids=ids_sql, md='md')})"
        ctes = s.ctes(ids_sql, "md")
        if not_ids_sql:
            other = f"({t.member.format(ids=not_ids_sql, md='md_other')})"
            # A condition can be NULL (a NULL column OR'ed with false): not a member.
            cond += f" AND coalesce({other}, false)" if both else f" AND NOT coalesce({other}, false)"
            more = s.ctes(not_ids_sql, "md_other")
            if more:
                ctes = ctes.rstrip() + ", " + more.replace("WITH RECURSIVE ", "", 1)
        return f"{ctes}SELECT t.* FROM {table} AS t WHERE {cond}{self.exclusion_sql(table)}"


def compute(pg, schema, snapshot_db, incident_db, ids, workdir):
    """Works out the rows to restore for `ids`, from the snapshot and the incident database."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for f in workdir.glob("*.copy"):
        f.unlink()
    lst = ",".join(map(str, ids))
    owned = schema.owned
    by_name = {t.name: t for t in owned}
    for t in owned:
        for ref in t.refs:
            parent = by_name[ref.parent]
            if parent.key != ref.parent_columns:
                raise ExpectedError(f"{t.name} references {ref.parent} by {ref.parent_columns}, not its key")

    # 1. M in the snapshot: identity, references, hash of the row's text.
    exports = []
    selects = {}
    for t in owned:
        ident, _ = _ident(t)
        refs = [f"t.{c} AS {n}" for i, ref in enumerate(t.refs) for c, n in zip(ref.columns, _ref_names(i, ref))]
        cols = ", ".join(ident + refs + ["hashtextextended(t::text, 0) AS h"])
        selects[t.name] = cols
        sql = f"{schema.ctes(lst)}SELECT {cols} FROM {t.name} AS t WHERE {t.member.format(ids=lst, md='md')}"
        exports.append(f"\\copy ({sql}) TO '{workdir / ('m.' + t.name + '.copy')}'")
    pg.psql(snapshot_db, *schema.session_settings, *exports)

    # 2. and 3. in the incident database, in one session of temporary tables.
    session = []
    for t in owned:
        _, names = _ident(t)
        ident, _ = _ident(t)
        refs = [f"t.{c} AS {n}" for i, ref in enumerate(t.refs) for c, n in zip(ref.columns, _ref_names(i, ref))]
        ident_typed = ident if t.key else ["''::text AS ident"]
        cols = ", ".join(ident_typed + refs + ["0::bigint AS h"])
        session += [f"CREATE TEMP TABLE m_{t.name} AS SELECT {cols} FROM {t.name} AS t LIMIT 0",
                    f"\\copy m_{t.name} FROM '{workdir / ('m.' + t.name + '.copy')}'",
                    f"CREATE TEMP TABLE e_{t.name} AS SELECT * FROM m_{t.name}",
                    f"CREATE INDEX ON e_{t.name} ({', '.join(names)})",
                    f"ANALYZE m_{t.name}", f"ANALYZE e_{t.name}"]
    # None of M may be in the incident database.
    checks = []
    for t in owned:
        if t.key:
            k = ", ".join(f"x.{c}" for c in t.key)
            m = ", ".join(f"m.{c}" for c in t.key)
            checks.append(f"SELECT 'present {t.name}', count(*) FROM m_{t.name} m"
                          f" WHERE EXISTS (SELECT 1 FROM {t.name} x WHERE ({k}) = ({m}))")
        else:
            checks.append(f"SELECT 'present {t.name}', count(*) FROM ({schema.ctes(lst)}SELECT 1 FROM {t.name} t"
                          f" WHERE {t.member.format(ids=lst, md='md')}) x")
    # The fixpoint.
    deletes = []
    missing = {}
    for t in owned:
        for i, ref in enumerate(t.refs):
            names = _ref_names(i, ref)
            notnull = " AND ".join(f"e.{n} IS NOT NULL" for n in names)
            pcols = ", ".join(f"x.{c}" for c in ref.parent_columns)
            qcols = ", ".join(f"y.{c}" for c in ref.parent_columns)
            ecols = ", ".join(f"e.{n}" for n in names)
            absent = (f"NOT EXISTS (SELECT 1 FROM {ref.parent} x WHERE ({pcols}) = ({ecols}))"
                      f" AND NOT EXISTS (SELECT 1 FROM e_{ref.parent} y WHERE ({qcols}) = ({ecols}))")
            deletes.append(f"DELETE FROM e_{t.name} e WHERE {notnull} AND {absent}; "
                           f"GET DIAGNOSTICS n = ROW_COUNT; gone := gone + n;")
            missing[(t.name, i)] = (f"SELECT DISTINCT {ecols} FROM m_{t.name} e WHERE {notnull} AND {absent}")
    session.append("DO $$ DECLARE n bigint; gone bigint; BEGIN LOOP gone := 0; "
                   + " ".join(deletes) + " EXIT WHEN gone = 0; END LOOP; END $$")
    counts = []
    for t in owned:
        counts.append(f"SELECT 'count {t.name}', (SELECT count(*) FROM m_{t.name}), count(*),"
                      f" coalesce(sum(h::numeric), 0) FROM e_{t.name}")
        if t.key:
            session.append(f"\\copy (SELECT {', '.join(t.key)} FROM e_{t.name}) TO '{workdir / ('e.' + t.name + '.copy')}'")
    out = pg.psql(incident_db, *schema.session_settings, *session, *checks, *counts,
                  *[f"SELECT 'missing {t} {i}', x::text FROM ({q}) AS x" for (t, i), q in missing.items()])
    members, restore, hashes = {}, {}, {}
    exclusions = {}
    for line in out.splitlines():
        if not line:
            continue
        head, *rest = line.split("|")
        kind, table, *more = head.split(" ")
        if kind == "present" and int(rest[0]):
            raise ExpectedError(f"the incident left {rest[0]} of the chosen tenants' rows of {table} in place")
        elif kind == "count":
            members[table] = int(rest[0])
            restore[table] = int(rest[1])
            hashes[table] = (int(rest[1]), rest[2])
        elif kind == "missing":
            i = int(more[0])
            ref = by_name[table].refs[i]
            values = _parse_row(rest[0], len(ref.columns))
            for entry in exclusions.setdefault(table, []):
                if entry[0] == ref.columns:
                    entry[1].append(values)
                    break
            else:
                exclusions[table].append((ref.columns, [values]))
    after = pg.counts(incident_db, schema.tables)
    return Expected(schema, list(ids), members, restore, hashes, exclusions, workdir, after)


def _parse_row(text, width):
    """A record's text, `(1,2)` or a bare value: its fields (integers or NULL here)."""
    if width == 1 and not text.startswith("("):
        return [text or None]
    inner = text[1:-1] if text.startswith("(") else text
    fields = inner.split(",")
    if len(fields) != width:
        raise ExpectedError(f"cannot read the key {text!r}")
    return [f or None for f in fields]


def restored_hashes(pg, schema, db, exp):
    """Per owned table, count and hash of the rows to restore as `db` holds them: keyed
    tables by the keys to restore, tables without a key by the membership conditions (the
    incident left none of their member rows, so what is there now came back)."""
    lst = ",".join(map(str, exp.ids))
    session = []
    for t in schema.owned:
        h = "coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)"
        if t.key:
            cols = ", ".join(t.key)
            session += [f"CREATE TEMP TABLE k_{t.name} AS SELECT {cols} FROM {t.name} LIMIT 0",
                        f"\\copy k_{t.name} FROM '{exp.keys_dir / ('e.' + t.name + '.copy')}'",
                        f"ANALYZE k_{t.name}"]
            tk = ", ".join(f"t.{c}" for c in t.key)
            session.append(f"SELECT '{t.name}', count(*), {h} FROM {t.name} t"
                           f" WHERE ({tk}) IN (SELECT {cols} FROM k_{t.name})")
        else:
            session.append(f"{schema.ctes(lst)}SELECT '{t.name}', count(*), {h} FROM {t.name} t"
                           f" WHERE {t.member.format(ids=lst, md='md')}")
    out = pg.psql(db, *schema.session_settings, *session)
    got = {}
    for line in out.splitlines():
        if line.count("|") == 2:
            name, n, hsum = line.split("|")
            got[name] = (int(n), hsum)
    return got
