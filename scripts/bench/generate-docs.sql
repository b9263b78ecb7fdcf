-- Benchmark data for the docs schema (scripts/bench/docs.sql), with realistic text.
--
-- In one session:
--   CREATE TEMP TABLE bench_sentences (id integer PRIMARY KEY, body text NOT NULL);
--   \copy bench_sentences FROM 'pool.copy'      -- written by scripts/bench/corpus.py
--   SELECT docs_generate(first_org, last_org [, spaces_per_org, docs_per_space,
--                        revisions_per_doc, comments_per_revision, links_per_doc,
--                        activity_per_org, labels_per_org]);
--   DROP FUNCTION docs_generate, bench_rand;    -- only the docs schema stays
--
-- Orgs first_org..last_org are added to what the database holds: the 10x live database of
-- B5 and B7 is the 1x snapshot plus orgs 1,001..10,000 generated the same way (their rows
-- get ids after the existing ones, and their cross-org references stay among themselves).
-- What a wiki looks like after two years of use:
--   * per org: 4 accounts of its own (plus 10 staff accounts shared by all) and 5 members
--     (its accounts and one staff), labels_per_org labels, spaces_per_org spaces of
--     1..2*docs_per_space-1 pages each (uniform): a page tree per space, page n under page
--     n/2; 1% of the pages below the top filed under a partner org's first page instead (a
--     reference onto another tenant's row, cascading when that page goes);
--   * per page 1..2*revisions_per_doc-1 revisions, each the previous text plus a paragraph
--     (markdown, ~0.9 KB), the page's current_rev the last one (5% drafts: NULL);
--     0..2*comments_per_revision comments per revision, 1..4 sentences;
--   * 0..2*links_per_doc links per page onto pages of the same org, 5% onto a page of the
--     partner org; 0..2 labels per page;
--   * activity_per_org log rows per org, 80% about one of its pages, 1% logged twice;
--   * ids in creation order across orgs (pages, comments; revisions, links, labels and log
--     rows inserted in time order), so a tenant's rows are scattered over the heap.
-- Expected rows per org with the defaults (4, 20, 3, 2, 1, 400, 8): 1 org, 5 members,
-- 4 spaces, 8 labels, ~80 pages, ~240 revisions, ~480 comments, ~80 links, ~80 page
-- labels, ~400 log rows: ~1,380 rows (and 4 accounts).
-- Deterministic: the same arguments and pool give the same rows.

CREATE OR REPLACE FUNCTION bench_rand(x bigint, seed bigint, n bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8extended(x, seed) & 9223372036854775807) % n $$;

CREATE OR REPLACE FUNCTION docs_generate(
    first_org integer,
    last_org integer,
    spaces_per_org integer DEFAULT 4,
    docs_per_space integer DEFAULT 20,
    revisions_per_doc integer DEFAULT 3,
    comments_per_revision integer DEFAULT 2,
    links_per_doc integer DEFAULT 1,
    activity_per_org integer DEFAULT 400,
    labels_per_org integer DEFAULT 8
) RETURNS void LANGUAGE plpgsql
-- Text is picked from the sentence pool by hash joins: a nested loop with a lookup per
-- sentence is 3x slower, and JIT compiling the wide joins costs more than it saves.
SET jit = off SET enable_nestloop = off SET work_mem = '256MB'
AS $fn$
DECLARE
    base constant timestamptz := '2024-01-01 00:00:00+00';
    span constant bigint := 2 * 365 * 86400;   -- two years, in seconds
    n_orgs constant integer := last_org - first_org + 1;
    pool bigint;
    doc_offset bigint;
    comment_offset bigint;
BEGIN
    SELECT count(*) INTO pool FROM bench_sentences;
    IF pool < 1000 THEN
        RAISE EXCEPTION 'bench_sentences holds % rows: load scripts/bench/corpus.py''s pool first', pool;
    END IF;
    ANALYZE bench_sentences;
    SELECT coalesce(max(id), 0) INTO doc_offset FROM docs;
    SELECT coalesce(max(id), 0) INTO comment_offset FROM comments;

    -- Accounts: 10 staff (with the first batch), then 4 per org k: 10 + 4(k-1) + 1..4.
    INSERT INTO accounts (id, email, display_name, created_at)
    SELECT u,
           format('%s.%s%s@%s', lower(fn), lower(translate(ln, 'öüéíñ''', 'ouein')), u,
                  (ARRAY['example.com', 'wiki.example.org', 'corp.example.net'])[1 + u % 3]),
           CASE WHEN u % 13 = 0 THEN NULL ELSE fn || ' ' || ln END,
           base + bench_rand(u, 211, span) * interval '1 second'
    FROM generate_series(CASE WHEN first_org = 1 THEN 1 ELSE 11 + 4 * (first_org - 1) END,
                         10 + 4 * last_org) AS u,
         LATERAL (SELECT (ARRAY['Anna', 'Bo', 'Chloé', 'Dmitri', 'Eun-ji', 'Farah', 'Gustav',
                                'Hiroshi', 'Inès', 'Jamal', 'Kasia', 'Liam', 'Mía', 'Noor',
                                'Olu', 'Priya', 'Quentin', 'Rosa', 'Søren', 'Tariq'])[1 + bench_rand(u, 212, 20)] AS fn,
                         (ARRAY['Smith', 'Müller', 'García', 'O''Brien', 'Nguyen', 'Kowalski',
                                'Okafor', 'Rossi', 'Yamada', 'Öztürk', 'Dubois', 'Silva',
                                'Ivanova', 'Núñez', 'Jensen'])[1 + bench_rand(u, 213, 15)] AS ln) AS names;

    INSERT INTO orgs (id, slug, name, owner_id, plan, settings, created_at)
    SELECT k,
           format('%s-%s', lower(replace(company, ' ', '-')), k),
           format('%s %s', company, (ARRAY['GmbH', 'Ltd', 'Inc.', 'SARL', 'AB', 'K.K.'])[1 + bench_rand(k, 221, 6)]),
           11 + 4 * (k - 1),
           (ARRAY['free', 'standard', 'premium'])[1 + bench_rand(k, 222, 3)],
           jsonb_build_object(
               'locale', (ARRAY['en-GB', 'de-DE', 'fr-FR', 'ja-JP', 'pt-BR'])[1 + bench_rand(k, 223, 5)],
               'editor', (ARRAY['rich', 'markdown'])[1 + bench_rand(k, 224, 2)],
               'sso', bench_rand(k, 225, 3) = 0,
               'retention_days', 30 * (1 + bench_rand(k, 226, 24)),
               'banner', (SELECT body FROM bench_sentences WHERE id = bench_rand(k, 227, pool))),
           base + bench_rand(k, 228, span / 4) * interval '1 second'
    FROM generate_series(first_org, last_org) AS k,
         LATERAL (SELECT (ARRAY['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Stark',
                                'Wayne', 'Tyrell', 'Soylent', 'Cyberdyne', 'Vandelay',
                                'Bluth', 'Pied Piper', 'Wonka', 'Nakatomi', 'Café Müller'])[1 + bench_rand(k, 220, 16)]
                         || ' ' || (ARRAY['Docs', 'Wiki', 'Handbook', 'Knowledge', 'Notes', 'Hub'])[1 + bench_rand(k, 229, 6)] AS company) AS c;

    INSERT INTO members (org_id, account_id, role, joined_at)
    SELECT k, a, CASE WHEN a = 11 + 4 * (k - 1) THEN 'owner' WHEN a <= 10 THEN 'support'
                      WHEN bench_rand(k * 16 + a, 231, 3) = 0 THEN 'viewer' ELSE 'editor' END,
           base + bench_rand(k * 16 + a, 232, span / 2) * interval '1 second'
    FROM generate_series(first_org, last_org) AS k,
         LATERAL (SELECT 11 + 4 * (k - 1) + m AS a FROM generate_series(0, 3) AS m
                  UNION ALL SELECT 1 + bench_rand(k, 233, 10)) AS acc;

    INSERT INTO spaces (org_id, space_no, key, name, description, created_at)
    SELECT k, s,
           (ARRAY['ENG', 'OPS', 'HR', 'SALES', 'DOCS', 'SEC', 'DATA', 'MKT', 'LEGAL', 'IT'])[1 + (s - 1) % 10]
               || CASE WHEN s > 10 THEN (s / 10)::text ELSE '' END,
           (ARRAY['Engineering', 'Operations', 'People', 'Sales playbook', 'Product docs',
                  'Sécurité', 'Data team', 'Marketing', 'Legal', 'IT help'])[1 + (s - 1) % 10],
           CASE WHEN bench_rand(k * 100 + s, 241, 3) = 0 THEN NULL
                ELSE (SELECT body FROM bench_sentences WHERE id = bench_rand(k * 100 + s, 242, pool)) END,
           base + bench_rand(k * 100 + s, 243, span / 4) * interval '1 second'
    FROM generate_series(first_org, last_org) AS k, generate_series(1, spaces_per_org) AS s;

    INSERT INTO labels (org_id, label_no, name, color)
    SELECT k, l,
           (ARRAY['how-to', 'decision', 'draft', 'runbook', 'onboarding', 'rfc', 'archived', 'faq'])[1 + (l - 1) % 8]
               || CASE WHEN l > 8 THEN format(' %s', l) ELSE '' END,
           (ARRAY['#d73a4a', '#0075ca', '#cfd3d7', '#a2eeef', '#7057ff', '#008672', '#e4e669', '#d876e3'])[1 + (l - 1) % 8]
    FROM generate_series(first_org, last_org) AS k, generate_series(1, labels_per_org) AS l;

    -- The page map: which page is which, in creation order across orgs; seq numbers an
    -- org's pages (links and log rows pick pages by it), partner is the org cross-org
    -- references go to.
    CREATE TEMP TABLE bench_docs ON COMMIT DROP AS
    WITH per_space AS (
        SELECT k, s, n_docs,
               -- A space's pages are written one after another over up to half of the
               -- two years, starting in the first quarter: a page comes after its parent.
               base + bench_rand(k * 100 + s, 251, span / 4) * interval '1 second' AS started,
               1 + bench_rand(k * 100 + s, 254, span / 2 / n_docs) AS gap
        FROM (SELECT k, s, 1 + bench_rand(k * 100 + s, 250, 2 * docs_per_space - 1)::int AS n_docs
              FROM generate_series(first_org, last_org) AS k, generate_series(1, spaces_per_org) AS s) AS sized
    ), numbered AS (
        SELECT k, s, n, k::bigint * 100000 + s * 1000 + n AS r,
               started + ((n - 1) * gap + bench_rand(k::bigint * 100000 + s * 1000 + n, 255, gap)) * interval '1 second'
                   AS created_at
        FROM per_space, generate_series(1, n_docs) AS n
    )
    SELECT doc_offset + row_number() OVER (ORDER BY created_at, k, s, n) AS id,
           k, s, n, r, created_at,
           row_number() OVER (PARTITION BY k ORDER BY s, n) AS seq,
           count(*) OVER (PARTITION BY k) AS org_docs,
           1 + bench_rand(r, 252, 2 * revisions_per_doc - 1)::int AS n_revs,
           CASE WHEN n_orgs > 1 THEN first_org + (k - first_org + 1 + bench_rand(k, 253, n_orgs - 1)::int) % n_orgs END AS partner
    FROM numbered;
    CREATE INDEX ON bench_docs (k, s, n);
    CREATE INDEX ON bench_docs (k, seq);
    ANALYZE bench_docs;

    INSERT INTO docs (id, org_id, space_no, parent_id, slug, title, author_id, status, current_rev,
                      created_at, updated_at)
    SELECT d.id, d.k, d.s, p.id,
           trim(BOTH '-' FROM lower(regexp_replace(left(t.body, 40), '[^[:alnum:]]+', '-', 'g'))) || '-' || d.n,
           left(t.body, 12 + bench_rand(d.r, 261, 60)::int),
           CASE WHEN bench_rand(d.r, 262, 10) = 0 THEN 1 + bench_rand(d.r, 263, 10)
                ELSE 11 + 4 * (d.k - 1) + bench_rand(d.r, 264, 4) END,
           CASE WHEN bench_rand(d.r, 265, 20) = 0 THEN 'draft'
                WHEN bench_rand(d.r, 266, 25) = 0 THEN 'archived' ELSE 'published' END,
           CASE WHEN bench_rand(d.r, 265, 20) = 0 THEN NULL ELSE d.n_revs END,
           d.created_at,
           d.created_at + (d.n_revs - 1) * interval '3 days'
    FROM (SELECT bench_docs.*,
                 -- 1% of the pages below the top: under the partner's first page.
                 n > 1 AND partner IS NOT NULL AND bench_rand(r, 260, 100) = 0 AS elsewhere
          FROM bench_docs) AS d
    LEFT JOIN bench_docs AS p
        ON d.n > 1 AND (p.k, p.s, p.n) = (CASE WHEN d.elsewhere THEN d.partner ELSE d.k END,
                                          CASE WHEN d.elsewhere THEN 1 ELSE d.s END,
                                          CASE WHEN d.elsewhere THEN 1 ELSE d.n / 2 END)
    LEFT JOIN bench_sentences AS t ON t.id = bench_rand(d.r, 267, pool)
    ORDER BY d.id;

    -- Revisions: revision v is v-1 plus a paragraph; in time order across orgs.
    INSERT INTO revisions (doc_id, rev_no, author_id, summary, body, size_bytes, created_at)
    SELECT doc_id, v, author_id, summary, body, octet_length(body), created_at
    FROM (
        SELECT d.id AS doc_id, v.v,
               CASE WHEN bench_rand(d.r * 8 + v.v, 271, 5) = 0 THEN 1 + bench_rand(d.r * 8 + v.v, 272, 10)
                    ELSE 11 + 4 * (d.k - 1) + bench_rand(d.r * 8 + v.v, 273, 4) END AS author_id,
               CASE WHEN v.v = 1 THEN 'Created the page'
                    WHEN bench_rand(d.r * 8 + v.v, 274, 3) = 0 THEN NULL
                    ELSE left(sm.body, 10 + bench_rand(d.r * 8 + v.v, 275, 50)::int) END AS summary,
               format(E'# %s\n\n%s\n\n## Details\n\n%s\n\n- %s\n- %s\n%s',
                      left(t.body, 12 + bench_rand(d.r, 261, 60)::int),
                      concat_ws(' ', s1.body, s2.body), s3.body, s4.body, s5.body,
                      concat_ws(E'\n\n', s6.body, e2.body, e3.body, e4.body, e5.body, e6.body)) AS body,
               d.created_at + (v.v - 1) * interval '3 days'
                   + bench_rand(d.r * 8 + v.v, 276, 86400) * interval '1 second' AS created_at
        FROM bench_docs AS d
        CROSS JOIN LATERAL generate_series(1, d.n_revs) AS v(v)
        LEFT JOIN bench_sentences AS t ON t.id = bench_rand(d.r, 267, pool)
        LEFT JOIN bench_sentences AS sm ON sm.id = bench_rand(d.r * 8 + v.v, 277, pool)
        LEFT JOIN bench_sentences AS s1 ON s1.id = bench_rand(d.r * 16 + 1, 278, pool)
        LEFT JOIN bench_sentences AS s2 ON s2.id = bench_rand(d.r * 16 + 2, 278, pool)
        LEFT JOIN bench_sentences AS s3 ON s3.id = bench_rand(d.r * 16 + 3, 278, pool)
        LEFT JOIN bench_sentences AS s4 ON s4.id = bench_rand(d.r * 16 + 4, 278, pool)
        LEFT JOIN bench_sentences AS s5 ON s5.id = bench_rand(d.r * 16 + 5, 278, pool)
        LEFT JOIN bench_sentences AS s6 ON s6.id = bench_rand(d.r * 16 + 6, 278, pool)
        LEFT JOIN bench_sentences AS e2 ON v.v >= 2 AND e2.id = bench_rand(d.r * 16 + 7, 278, pool)
        LEFT JOIN bench_sentences AS e3 ON v.v >= 3 AND e3.id = bench_rand(d.r * 16 + 8, 278, pool)
        LEFT JOIN bench_sentences AS e4 ON v.v >= 4 AND e4.id = bench_rand(d.r * 16 + 9, 278, pool)
        LEFT JOIN bench_sentences AS e5 ON v.v >= 5 AND e5.id = bench_rand(d.r * 16 + 10, 278, pool)
        LEFT JOIN bench_sentences AS e6 ON v.v >= 6 AND e6.id = bench_rand(d.r * 16 + 11, 278, pool)
    ) AS rv
    ORDER BY created_at, doc_id, v;

    -- Comments on revisions: ids in time order across orgs.
    INSERT INTO comments (id, doc_id, rev_no, author_id, body, resolved, created_at)
    SELECT comment_offset + row_number() OVER (ORDER BY c.created_at, c.r), c.doc_id, c.rev_no,
           CASE WHEN bench_rand(c.r, 281, 6) = 0 THEN 1 + bench_rand(c.r, 282, 10)
                ELSE 11 + 4 * (c.k - 1) + bench_rand(c.r, 283, 4) END,
           concat_ws(CASE WHEN bench_rand(c.r, 284, 3) = 0 THEN E'\n\n' ELSE ' ' END,
                     b1.body, b2.body, b3.body, b4.body),
           bench_rand(c.r, 285, 10) < 3,
           c.created_at
    FROM (SELECT d.id AS doc_id, d.k, v.v AS rev_no, (d.r * 8 + v.v) * 16 + cn AS r,
                 d.created_at + (v.v - 1) * interval '3 days'
                     + bench_rand((d.r * 8 + v.v) * 16 + cn, 286, 3 * 86400) * interval '1 second' AS created_at,
                 bench_rand((d.r * 8 + v.v) * 16 + cn, 287, 4) AS len
          FROM bench_docs AS d
          CROSS JOIN LATERAL generate_series(1, d.n_revs) AS v(v)
          CROSS JOIN LATERAL generate_series(1, bench_rand(d.r * 8 + v.v, 288, 2 * comments_per_revision + 1)::int) AS cn
         ) AS c
    LEFT JOIN bench_sentences AS b1 ON b1.id = bench_rand(c.r * 4 + 1, 289, pool)
    LEFT JOIN bench_sentences AS b2 ON c.len >= 1 AND b2.id = bench_rand(c.r * 4 + 2, 289, pool)
    LEFT JOIN bench_sentences AS b3 ON c.len >= 2 AND b3.id = bench_rand(c.r * 4 + 3, 289, pool)
    LEFT JOIN bench_sentences AS b4 ON c.len >= 3 AND b4.id = bench_rand(c.r * 4 + 4, 289, pool);

    -- Links between pages: mostly within the org, 5% onto a page of the partner org.
    INSERT INTO doc_links (from_doc, to_doc, kind, created_at)
    SELECT l.from_doc, t.id, l.kind, l.created_at
    FROM (SELECT d.id AS from_doc, d.seq, d.org_docs,
                 CASE WHEN d.partner IS NOT NULL AND bench_rand(d.r * 8 + ln, 291, 20) = 0 THEN d.partner ELSE d.k END AS to_org,
                 bench_rand(d.r * 8 + ln, 292, 1000000) AS pick,
                 (ARRAY['mentions', 'mentions', 'relates', 'see-also', 'duplicates', 'blocks'])[1 + bench_rand(d.r * 8 + ln, 293, 6)] AS kind,
                 d.created_at + bench_rand(d.r * 8 + ln, 294, 30 * 86400) * interval '1 second' AS created_at
          FROM bench_docs AS d
          CROSS JOIN LATERAL generate_series(1, bench_rand(d.r, 295, 2 * links_per_doc + 1)::int) AS ln) AS l
    JOIN bench_docs AS o ON o.k = l.to_org AND o.seq = 1
    JOIN bench_docs AS t ON t.k = l.to_org AND t.seq = 1 + l.pick % o.org_docs
    WHERE t.id <> l.from_doc
    ORDER BY l.created_at, l.from_doc, t.id
    ON CONFLICT DO NOTHING;

    INSERT INTO doc_labels (doc_id, org_id, label_no, added_at)
    SELECT d.id, d.k, 1 + bench_rand(d.r * 4 + ln, 301, labels_per_org)::int,
           d.created_at + bench_rand(d.r * 4 + ln, 302, 10 * 86400) * interval '1 second'
    FROM bench_docs AS d
    CROSS JOIN LATERAL generate_series(1, bench_rand(d.r, 303, 3)::int) AS ln
    ORDER BY 4, 1, 3
    ON CONFLICT DO NOTHING;

    -- The log: in time order across orgs; 1% of the events logged twice.
    INSERT INTO activity (org_id, doc_id, account_id, action, at, detail)
    SELECT a.k, d.id, a.account_id, a.action,
           CASE WHEN d.id IS NULL THEN base + bench_rand(a.r, 311, span) * interval '1 second'
                ELSE d.created_at + bench_rand(a.r, 311, span - extract(epoch FROM d.created_at - base)::bigint)
                                    * interval '1 second' END AS at,
           a.detail
    FROM (SELECT k, k::bigint * 1000000 + e AS r,
                 CASE WHEN bench_rand(k::bigint * 1000000 + e, 312, 5) = 0 THEN NULL
                      ELSE 1 + bench_rand(k::bigint * 1000000 + e, 313, 1000000) END AS pick,
                 CASE WHEN bench_rand(k::bigint * 1000000 + e, 314, 10) = 0 THEN 1 + bench_rand(k::bigint * 1000000 + e, 315, 10)
                      ELSE 11 + 4 * (k - 1) + bench_rand(k::bigint * 1000000 + e, 316, 4) END AS account_id,
                 (ARRAY['page.view', 'page.view', 'page.view', 'page.edit', 'comment.add',
                        'page.share', 'page.export', 'label.add'])[1 + bench_rand(k::bigint * 1000000 + e, 317, 8)] AS action,
                 CASE WHEN bench_rand(k::bigint * 1000000 + e, 318, 4) = 0 THEN NULL
                      ELSE jsonb_build_object(
                          'ip', format('10.%s.%s.%s', bench_rand(k::bigint * 1000000 + e, 319, 256),
                                       bench_rand(k::bigint * 1000000 + e, 320, 256), bench_rand(k::bigint * 1000000 + e, 321, 256)),
                          'client', (ARRAY['web', 'desktop', 'ios', 'android', 'api'])[1 + bench_rand(k::bigint * 1000000 + e, 322, 5)],
                          'ms', 5 + bench_rand(k::bigint * 1000000 + e, 323, 2000)) END AS detail
          FROM generate_series(first_org, last_org) AS k, generate_series(1, activity_per_org) AS e) AS a
    LEFT JOIN bench_docs AS o ON o.k = a.k AND o.seq = 1
    LEFT JOIN bench_docs AS d ON a.pick IS NOT NULL AND d.k = a.k AND d.seq = 1 + a.pick % o.org_docs
    CROSS JOIN LATERAL generate_series(1, CASE WHEN bench_rand(a.r, 324, 100) = 0 THEN 2 ELSE 1 END) AS twice
    ORDER BY at, a.r;

    INSERT INTO feature_flags (name, enabled)
    VALUES ('new-editor', true), ('ai-summaries', false), ('bulk-export', true)
    ON CONFLICT DO NOTHING;

    PERFORM setval(pg_get_serial_sequence('accounts', 'id'), (SELECT max(id) FROM accounts));
    PERFORM setval(pg_get_serial_sequence('orgs', 'id'), (SELECT max(id) FROM orgs));
    PERFORM setval(pg_get_serial_sequence('docs', 'id'), (SELECT max(id) FROM docs));
    PERFORM setval(pg_get_serial_sequence('comments', 'id'), (SELECT max(id) FROM comments));
END
$fn$;
