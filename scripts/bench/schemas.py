"""The two bench schemas, described for the harness (scripts/bench/run.py): how to generate
them, which rows belong to the chosen tenants, which references a restored row needs, what
happens in live after the snapshot, and how the incident deletes the chosen tenants.

Membership here is the harness's own, written per schema by hand — not salvage's: a row
belongs to the chosen tenants when any of its relations leads to one of them (the rule
salvage documents). Each owned table says it as a SQL condition on the row `t`, with `{ids}`
the chosen root keys and `{md}` the name of a common table expression the schema may need
(docs: the pages reachable from the chosen orgs through the page tree).
"""

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench"


@dataclass
class Ref:
    """A reference a restored row needs to exist after the restore: a foreign key, or a
    tenant column onto the root (salvage counts those as relations too). Only references
    onto owned tables: shared rows are never deleted here."""
    columns: list
    parent: str
    parent_columns: list


@dataclass
class Table:
    name: str
    key: list            # None: no key, rows are a multiset
    member: str          # SQL condition: row t belongs to one of {ids}
    refs: list = field(default_factory=list)


@dataclass
class Schema:
    name: str
    root: str                        # the root table; its key is `id`
    tenant_column: str
    tables: list                     # every table, for the row counts
    owned: list                      # Table, parents first (root first)
    files: list                      # schema + generator, loaded into a new database
    generator: Path                  # loaded again to add tenants to an existing database
    functions: str                   # what the generator defines, dropped after it ran
    shapes: dict                     # full / quick / tiny: the generator's shape arguments
    what: str                        # one line for the results

    # Settings for the harness's own sessions reading member rows (and the baselines').
    session_settings = ()

    def salvage_args(self):
        return ["--root", f"public.{self.root}", "--tenant-column", self.tenant_column]

    def table(self, name):
        return next(t for t in self.owned if t.name == name)

    def ctes(self, ids, md="md"):
        """The common table expressions the member conditions use, for these ids."""
        return ""

    def member_rows(self, table, ids, extra=""):
        """SELECT t.* of the chosen tenants' rows of one table (plus an extra condition)."""
        t = self.table(table)
        cond = t.member.format(ids=ids, md="md")
        return f"{self.ctes(ids)}SELECT t.* FROM {table} AS t WHERE ({cond}){extra}"

    def generate_sql(self, first, count, shape):
        raise NotImplementedError

    def live_sql(self, protected):
        """Activity in live after the snapshot, by tenants other than `protected` (the ones
        a benchmark may restore): one psql session."""
        raise NotImplementedError

    def delete_sql(self, ids):
        """The incident: delete the chosen tenants as a cascading delete would."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# The tracker: fixtures/app/schema.sql, filled by scripts/bench/generate.sql.


class Tracker(Schema):
    def generate_sql(self, first, count, shape):
        return f"SELECT bench_generate({count}, {', '.join(map(str, shape))}, {first})"

    def live_sql(self, protected):
        keep = ",".join(map(str, protected))
        return [
            f"INSERT INTO page_views (site_id, path, viewed_at, meta) SELECT s.id, '/after-the-snapshot/' || g,"
            f" now(), NULL FROM (SELECT id FROM sites WHERE id NOT IN ({keep}) ORDER BY id LIMIT 100) s,"
            f" generate_series(1, 20) g",
            f"UPDATE comments c SET body = c.body || ' (edited after the snapshot)', edited_at = now()"
            f" FROM issues i WHERE i.id = c.issue_id AND c.id % 97 = 0 AND i.site_id NOT IN ({keep})",
        ]

    def delete_sql(self, ids):
        """What `DELETE FROM page_views …; DELETE FROM sites …` does through the cascading
        foreign keys, table by table: the cascade itself takes minutes here, because deleting
        an issue checks issues.parent_id (NO ACTION, no index) with a sequential scan per
        row. session_replication_role = replica skips those checks; the explicit deletes
        remove exactly the rows the cascade would."""
        lst = ",".join(map(str, ids))
        return ["BEGIN; SET LOCAL session_replication_role = replica;"
                f" DELETE FROM reactions r USING comments c, issues i"
                f"  WHERE r.comment_id = c.id AND c.issue_id = i.id AND i.site_id IN ({lst});"
                f" DELETE FROM comments c USING issues i WHERE c.issue_id = i.id AND i.site_id IN ({lst});"
                f" DELETE FROM issues WHERE site_id IN ({lst});"
                f" DELETE FROM projects WHERE site_id IN ({lst});"
                f" DELETE FROM page_views WHERE site_id IN ({lst});"
                f" DELETE FROM sites WHERE id IN ({lst});"
                " COMMIT;"]


TRACKER = Tracker(
    name="tracker",
    root="sites",
    tenant_column="site_id",
    tables=["plans", "users", "sites", "projects", "issues", "comments", "reactions", "page_views",
            "feature_flags"],
    owned=[
        Table("sites", ["id"], "t.id IN ({ids})"),
        Table("projects", ["site_id", "project_no"], "t.site_id IN ({ids})",
              [Ref(["site_id"], "sites", ["id"])]),
        Table("issues", ["id"], "t.site_id IN ({ids})",
              [Ref(["site_id", "project_no"], "projects", ["site_id", "project_no"]),
               Ref(["parent_id"], "issues", ["id"])]),
        Table("comments", ["id"], "t.issue_id IN (SELECT id FROM issues WHERE site_id IN ({ids}))",
              [Ref(["issue_id"], "issues", ["id"])]),
        Table("reactions", ["comment_id", "user_id", "emoji"],
              "t.comment_id IN (SELECT c.id FROM comments c JOIN issues i ON i.id = c.issue_id"
              " WHERE i.site_id IN ({ids}))",
              [Ref(["comment_id"], "comments", ["id"])]),
        Table("page_views", ["id"], "t.site_id IN ({ids})", [Ref(["site_id"], "sites", ["id"])]),
    ],
    files=[ROOT / "fixtures/app/schema.sql", BENCH / "generate.sql"],
    generator=BENCH / "generate.sql",
    functions="bench_generate, bench_rand",
    # projects per site, issues per project, comments per issue, page views per site
    shapes={"full": (4, 25, 7, 500), "quick": (2, 10, 3, 50), "tiny": (1, 1, 1, 1)},
    what="issue tracker (fixtures/app/schema.sql): a 4-level FK chain, one tenant column",
)

# The B2 baseline for the tracker, as it was written before the docs schema existed: per
# table, the join a responder would write (kept as it was, so its figures compare).
TRACKER_B2 = [
    ("sites", "SELECT s.* FROM sites s WHERE s.id IN ({ids})"),
    ("projects", "SELECT p.* FROM projects p JOIN sites s ON s.id = p.site_id WHERE s.id IN ({ids})"),
    ("issues", "SELECT i.* FROM issues i JOIN projects p ON (p.site_id, p.project_no) = (i.site_id, i.project_no)"
               " WHERE p.site_id IN ({ids})"),
    ("comments", "SELECT c.* FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.site_id IN ({ids})"),
    ("reactions", "SELECT r.* FROM reactions r JOIN comments c ON c.id = r.comment_id"
                  " JOIN issues i ON i.id = c.issue_id WHERE i.site_id IN ({ids})"),
    ("page_views", "SELECT v.* FROM page_views v WHERE v.site_id IN ({ids})"),
]


# ---------------------------------------------------------------------------------------------
# The docs wiki: scripts/bench/docs.sql, filled by scripts/bench/generate-docs.sql.


def _rand(expr, seed, n):
    return f"(hashint8extended({expr}, {seed}) & 9223372036854775807) % {n}"


class Docs(Schema):
    # The planner guesses a recursive CTE at ten times its seed per level, so for 40 orgs it
    # takes the page set for ~600,000 rows, too many to hash in 4 MB: `doc_id IN (SELECT id
    # FROM md)` under an OR (links, labels, the log) then scans the CTE again for every row,
    # minutes at scale 1. With room to hash, the same query takes well under a second.
    session_settings = ("SET work_mem = '256MB'",)

    def ctes(self, ids, md="md"):
        # A page belongs to its org's tenant (org_id, and its space) and to every tenant its
        # parent page belongs to; its current revision adds nothing (the revision's tenants
        # are the page's).
        return (f"WITH RECURSIVE {md} AS (SELECT id FROM docs WHERE org_id IN ({ids})"
                f" UNION SELECT c.id FROM docs c JOIN {md} ON c.parent_id = {md}.id) ")

    def generate_sql(self, first, count, shape):
        return f"SELECT docs_generate({first}, {first + count - 1}, {', '.join(map(str, shape))})"

    def live_sql(self, protected):
        """After the snapshot: 5% of the other orgs left (deleted, cascading); other orgs
        deleted half of their pages that a protected org's page links to, and a quarter of
        the pages a protected org's page is filed under (cascading to its subpages, those
        of the protected org included): rows of the protected orgs that live no longer has,
        whose parent is another tenant's — they wait when their tenant is restored. And
        ordinary work by the other orgs, none of it on the protected orgs' pages: edits
        (a new revision and current_rev), comments, log rows."""
        keep = ",".join(map(str, protected))
        at = "timestamptz '2026-02-01 09:00:00+00'"
        return [
            # The protected orgs' pages, and the pages filed under them (other orgs' too).
            f"CREATE TEMP TABLE keep_docs AS {self.ctes(keep)}SELECT DISTINCT id FROM md",
            "CREATE UNIQUE INDEX ON keep_docs (id)",
            f"CREATE TEMP TABLE churned AS SELECT id FROM orgs WHERE id NOT IN ({keep})"
            f" AND {_rand('id', 7, 100)} < 5",
            "DELETE FROM activity WHERE org_id IN (SELECT id FROM churned)",
            "DELETE FROM orgs WHERE id IN (SELECT id FROM churned)",
            f"DELETE FROM docs WHERE id IN (SELECT l.to_doc FROM doc_links l JOIN keep_docs k ON k.id = l.from_doc"
            f" JOIN docs d ON d.id = l.to_doc WHERE d.org_id NOT IN ({keep})"
            f" AND d.id NOT IN (SELECT id FROM keep_docs) AND {_rand('d.id', 8, 2)} = 0)",
            f"DELETE FROM docs WHERE id IN (SELECT p.id FROM keep_docs k JOIN docs c ON c.id = k.id"
            f" JOIN docs p ON p.id = c.parent_id WHERE p.org_id NOT IN ({keep})"
            f" AND p.id NOT IN (SELECT id FROM keep_docs) AND {_rand('p.id', 9, 4)} = 0)",
            f"CREATE TEMP TABLE edited AS SELECT d.id, d.current_rev, d.org_id FROM docs d"
            f" WHERE d.org_id NOT IN ({keep}) AND d.id NOT IN (SELECT id FROM keep_docs)"
            f" AND d.current_rev IS NOT NULL AND {_rand('d.id', 10, 20)} = 0",
            f"INSERT INTO revisions (doc_id, rev_no, author_id, summary, body, size_bytes, created_at)"
            f" SELECT r.doc_id, r.rev_no + 1, r.author_id, 'Edited after the snapshot',"
            f" r.body || E'\\n\\nEdited after the snapshot.', r.size_bytes + 28, {at} + r.doc_id * interval '1 second'"
            f" FROM revisions r JOIN edited e ON (r.doc_id, r.rev_no) = (e.id, e.current_rev)",
            f"UPDATE docs d SET current_rev = d.current_rev + 1, updated_at = {at} + d.id * interval '1 second'"
            f" FROM edited e WHERE e.id = d.id",
            f"INSERT INTO comments (doc_id, rev_no, author_id, body, created_at)"
            f" SELECT e.id, e.current_rev + 1, 1, 'Looks right now, thanks.', {at} + e.id * interval '2 seconds'"
            f" FROM edited e",
            f"INSERT INTO activity (org_id, doc_id, account_id, action, at, detail)"
            f" SELECT e.org_id, e.id, 1, 'page.edit', {at} + e.id * interval '1 second', NULL FROM edited e",
        ]

    def delete_sql(self, ids):
        lst = ",".join(map(str, ids))
        # The real cascade: every foreign key column has an index, so it is quick.
        return [f"BEGIN; DELETE FROM activity WHERE org_id IN ({lst}); DELETE FROM orgs WHERE id IN ({lst}); COMMIT;"]


_PAGE = "t.{col} IN (SELECT id FROM {md})"

DOCS = Docs(
    name="docs",
    root="orgs",
    tenant_column="org_id",
    tables=["accounts", "orgs", "members", "spaces", "labels", "docs", "revisions", "comments",
            "doc_links", "doc_labels", "activity", "feature_flags"],
    owned=[
        Table("orgs", ["id"], "t.id IN ({ids})"),
        Table("members", ["org_id", "account_id"], "t.org_id IN ({ids})", [Ref(["org_id"], "orgs", ["id"])]),
        Table("spaces", ["org_id", "space_no"], "t.org_id IN ({ids})", [Ref(["org_id"], "orgs", ["id"])]),
        Table("labels", ["org_id", "label_no"], "t.org_id IN ({ids})", [Ref(["org_id"], "orgs", ["id"])]),
        Table("docs", ["id"], "t.id IN (SELECT id FROM {md})",
              [Ref(["org_id"], "orgs", ["id"]),
               Ref(["org_id", "space_no"], "spaces", ["org_id", "space_no"]),
               Ref(["parent_id"], "docs", ["id"]),
               Ref(["id", "current_rev"], "revisions", ["doc_id", "rev_no"])]),
        Table("revisions", ["doc_id", "rev_no"], _PAGE.replace("{col}", "doc_id"),
              [Ref(["doc_id"], "docs", ["id"])]),
        Table("comments", ["id"], _PAGE.replace("{col}", "doc_id"),
              [Ref(["doc_id", "rev_no"], "revisions", ["doc_id", "rev_no"])]),
        Table("doc_links", ["from_doc", "to_doc"],
              "t.from_doc IN (SELECT id FROM {md}) OR t.to_doc IN (SELECT id FROM {md})",
              [Ref(["from_doc"], "docs", ["id"]), Ref(["to_doc"], "docs", ["id"])]),
        Table("doc_labels", ["doc_id", "org_id", "label_no"],
              "t.doc_id IN (SELECT id FROM {md}) OR t.org_id IN ({ids})",
              [Ref(["doc_id"], "docs", ["id"]), Ref(["org_id", "label_no"], "labels", ["org_id", "label_no"]),
               Ref(["org_id"], "orgs", ["id"])]),
        Table("activity", None, "t.org_id IN ({ids}) OR t.doc_id IN (SELECT id FROM {md})",
              [Ref(["doc_id"], "docs", ["id"]), Ref(["org_id"], "orgs", ["id"])]),
    ],
    files=[BENCH / "docs.sql", BENCH / "generate-docs.sql"],
    generator=BENCH / "generate-docs.sql",
    functions="docs_generate, bench_rand",
    # spaces per org, pages per space, revisions per page, comments per revision, links per
    # page, log rows per org, labels per org
    shapes={"full": (4, 20, 3, 2, 1, 400, 8), "quick": (2, 6, 2, 2, 2, 40, 4), "tiny": (1, 1, 1, 0, 0, 1, 1)},
    what="wiki (scripts/bench/docs.sql): link tables, composite keys, a page tree crossing orgs, "
         "a deferrable cycle, a keyless partitioned log",
)

SCHEMAS = {"tracker": TRACKER, "docs": DOCS}
