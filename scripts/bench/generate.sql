-- Benchmark data for the tracker schema (fixtures/app/schema.sql), with realistic text.
--
-- In one session:
--   CREATE TEMP TABLE bench_sentences (id integer PRIMARY KEY, body text NOT NULL);
--   \copy bench_sentences FROM 'pool.copy'      -- written by scripts/bench/corpus.py
--   SELECT bench_generate(n_sites [, projects_per_site, issues_per_project,
--                         comments_per_issue, views_per_site, first_site]);
--   DROP FUNCTION bench_generate, bench_rand;   -- only the tracker schema stays
--
-- Sites first_site..first_site+n_sites-1 are added to what the database holds: the 10x live
-- database of B5 and B7 is the 1x snapshot plus sites 1,001..10,000 generated the same way
-- (their rows get ids after the existing ones). With first_site 1 (the default) the rows are
-- what they were before the parameter existed.
--
-- Unlike fixtures/app/generate.sql (short, fixed strings meant for exact assertions), this
-- fills the same tables the way a live tracker looks after two years of use:
--   * text of varied length made of sentences from the pool (spans of real English prose,
--     quoted replies, code blocks with tabs and backslashes, stack traces, URLs, non-ASCII
--     names, emoji): issue titles ~50 bytes, bodies ~0.8 KB in markdown sections, comments
--     1..5 sentences, ~0.3 KB; it compresses about 3x with gzip, like prose;
--   * tenants of varied size: issues per project are uniform in 1..2*issues_per_project-1,
--     comments per issue in 0..2*comments_per_issue, reactions per comment in 0..2;
--   * ids in time order across tenants (issues, comments, reactions and page views are
--     inserted in creation order), so one tenant's rows are scattered over the heap as in a
--     real database, not contiguous;
--   * users shared by every site: 10 staff users, then 3 per site (an owner invited by
--     staff, a member invited by the owner, a guest invited by the member);
--   * jsonb settings and page-view metadata, text[] tags, numeric, interval, float8 with
--     NaN, bytea, NULLs.
-- Expected rows per site with the defaults (4, 25, 7, 500): 1 site, 4 projects, ~100
-- issues, ~700 comments, ~700 reactions, 500 page views, 3 users: ~2,000 rows.
-- Deterministic: the same arguments and pool give the same rows.

CREATE OR REPLACE FUNCTION bench_rand(x bigint, seed bigint, n bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8extended(x, seed) & 9223372036854775807) % n $$;

CREATE OR REPLACE FUNCTION bench_generate(
    n_sites integer,
    projects_per_site integer DEFAULT 4,
    issues_per_project integer DEFAULT 25,
    comments_per_issue integer DEFAULT 7,
    views_per_site integer DEFAULT 500,
    first_site integer DEFAULT 1
) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    base constant timestamptz := '2024-01-01 00:00:00+00';
    span constant double precision := 2 * 365 * 86400;   -- two years, in seconds
    last_site constant integer := first_site + n_sites - 1;
    pool bigint;
    issue_offset bigint;
    comment_offset bigint;
BEGIN
    -- The sentence pool: loaded by the caller (scripts/bench/corpus.py), picked by hash.
    SELECT count(*) INTO pool FROM bench_sentences;
    IF pool < 1000 THEN
        RAISE EXCEPTION 'bench_sentences holds % rows: load scripts/bench/corpus.py''s pool first', pool;
    END IF;
    ANALYZE bench_sentences;
    SELECT coalesce(max(id), 0) INTO issue_offset FROM issues;
    SELECT coalesce(max(id), 0) INTO comment_offset FROM comments;

    INSERT INTO plans (id, name, monthly_price)
    VALUES (1, 'free', 0), (2, 'team', 49.00), (3, 'business', 249.00), (4, 'enterprise', 1999.99)
    ON CONFLICT DO NOTHING;

    -- Users: 10 staff, then per site k: owner 11+3(k-1), member +1 (invited by the owner),
    -- guest +2 (invited by the member).
    INSERT INTO users (id, email, display_name, invited_by, created_at)
    SELECT u,
           format('%s.%s%s@%s', lower(fn), lower(translate(ln, 'öüéíñ''', 'ouein')), u,
                  (ARRAY['example.com', 'mail.example.org', 'corp.example.net'])[1 + u % 3]),
           CASE WHEN u % 11 = 0 THEN NULL ELSE fn || ' ' || ln END,
           CASE WHEN u <= 10 THEN NULL
                WHEN (u - 11) % 3 = 0 THEN 1 + (u - 11) / 3 % 10
                ELSE u - 1 END,
           base + bench_rand(u, 11, span::bigint) * interval '1 second'
    FROM generate_series(CASE WHEN first_site = 1 THEN 1 ELSE 11 + 3 * (first_site - 1) END,
                         10 + 3 * last_site) AS u,
         LATERAL (SELECT (ARRAY['Anna', 'Bo', 'Chloé', 'Dmitri', 'Eun-ji', 'Farah', 'Gustav',
                                'Hiroshi', 'Inès', 'Jamal', 'Kasia', 'Liam', 'Mía', 'Noor',
                                'Olu', 'Priya', 'Quentin', 'Rosa', 'Søren', 'Tariq'])[1 + bench_rand(u, 12, 20)] AS fn,
                         (ARRAY['Smith', 'Müller', 'García', 'O''Brien', 'Nguyen', 'Kowalski',
                                'Okafor', 'Rossi', 'Yamada', 'Öztürk', 'Dubois', 'Silva',
                                'Ivanova', 'Núñez', 'Jensen'])[1 + bench_rand(u, 13, 15)] AS ln) AS names;

    INSERT INTO sites (id, slug, name, plan_id, owner_id, settings, created_at)
    SELECT k,
           format('%s-%s', lower(replace(company, ' ', '-')), k),
           format('%s %s', company, (ARRAY['GmbH', 'Ltd', 'Inc.', 'SARL', 'AB', 'K.K.'])[1 + bench_rand(k, 21, 6)]),
           1 + bench_rand(k, 22, 4),
           11 + 3 * (k - 1),
           jsonb_build_object(
               'theme', (ARRAY['light', 'dark', 'system'])[1 + bench_rand(k, 23, 3)],
               'locale', (ARRAY['en-GB', 'de-DE', 'fr-FR', 'ja-JP', 'pt-BR'])[1 + bench_rand(k, 24, 5)],
               'timezone', (ARRAY['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'UTC'])[1 + bench_rand(k, 25, 4)],
               'limits', jsonb_build_object('seats', 5 + bench_rand(k, 26, 500),
                                            'storage_gb', 10 * (1 + bench_rand(k, 27, 50))),
               'integrations', jsonb_build_array('slack', 'github', 'jira'),
               'welcome', (SELECT body FROM bench_sentences WHERE id = bench_rand(k, 28, pool))),
           base + bench_rand(k, 29, (span / 4)::bigint) * interval '1 second'
    FROM generate_series(first_site, last_site) AS k,
         LATERAL (SELECT (ARRAY['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Stark',
                                'Wayne', 'Tyrell', 'Soylent', 'Cyberdyne', 'Vandelay',
                                'Bluth', 'Pied Piper', 'Wonka', 'Nakatomi', 'Café Müller'])[1 + bench_rand(k, 20, 16)]
                         || ' ' || (ARRAY['Labs', 'Systems', 'Works', 'Digital', 'Cloud', 'Group'])[1 + bench_rand(k, 30, 6)] AS company) AS c;

    INSERT INTO projects (site_id, project_no, name, tags, budget)
    SELECT k, pn,
           (ARRAY['Website relaunch', 'Mobile app', 'Data platform', 'Billing', 'Onboarding',
                  'Internal tools', 'Q3 roadmap', 'Support backlog', 'Migration to v2',
                  'Sécurité'])[1 + bench_rand(k * 100 + pn, 31, 10)] || format(' (%s)', pn),
           ARRAY(SELECT (ARRAY['frontend', 'backend', 'urgent', 'customer', 'infra', 'design',
                               'tech-debt', 'ops'])[1 + bench_rand(k * 100 + pn, 32 + t, 8)]
                 FROM generate_series(1, bench_rand(k * 100 + pn, 33, 4)::int) AS t),
           CASE WHEN bench_rand(k * 100 + pn, 34, 4) = 0 THEN NULL
                ELSE (1000 + bench_rand(k * 100 + pn, 35, 500000)) * 1.25 END
    FROM generate_series(first_site, last_site) AS k, generate_series(1, projects_per_site) AS pn;

    -- Issues: a varied number per project, numbered per site, ids in creation order across
    -- all sites; every second issue of a project is a sub-issue of the one before. Text is
    -- picked from the sentence pool by hash joins (a per-row subquery would be 50x slower).
    INSERT INTO issues (id, site_id, project_no, number, title, body, author_id, parent_id,
                        estimate, created_at)
    WITH per_project AS (
        SELECT k, pn, 1 + bench_rand(k * 100 + pn, 40, 2 * issues_per_project - 1)::int AS n_issues
        FROM generate_series(first_site, last_site) AS k, generate_series(1, projects_per_site) AS pn
    ), numbered AS (
        SELECT k, pn, n,
               sum(n_issues) OVER (PARTITION BY k ORDER BY pn) - n_issues + n AS number,
               base + bench_rand(k * 100000 + pn * 1000 + n, 41, span::bigint) * interval '1 second'
                    + n * interval '1 hour' AS created_at
        FROM per_project, generate_series(1, n_issues) AS n
    ), ided AS (
        SELECT numbered.*, issue_offset + row_number() OVER (ORDER BY created_at, k, pn, n) AS id
        FROM numbered
    )
    SELECT i.id, i.k, i.pn, i.number,
           left(t.body, 20 + bench_rand(i.id, 43, 60)::int),
           CASE WHEN bench_rand(i.id, 44, 12) = 0 THEN NULL
                ELSE format(E'## What happens\n%s\n\n## Steps to reproduce\n1. %s\n2. %s\n\n## Notes\n%s',
                            concat_ws(' ', w1.body, w2.body, w3.body), s1.body, s2.body,
                            concat_ws(E'\n', n1.body, n2.body, n3.body)) END,
           CASE WHEN bench_rand(i.id, 51, 4) = 0 THEN 1 + bench_rand(i.id, 52, 10)
                ELSE 11 + 3 * (i.k - 1) + bench_rand(i.id, 53, 3) END,
           parent.id,
           CASE WHEN bench_rand(i.id, 54, 3) = 0 THEN NULL
                ELSE make_interval(hours => 1 + bench_rand(i.id, 55, 80)::int) END,
           i.created_at
    FROM ided AS i
    LEFT JOIN ided AS parent ON i.n % 2 = 0 AND parent.k = i.k AND parent.pn = i.pn AND parent.n = i.n - 1
    LEFT JOIN bench_sentences AS t ON t.id = bench_rand(i.id, 42, pool)
    LEFT JOIN bench_sentences AS w1 ON w1.id = bench_rand(i.id * 8 + 1, 45, pool)
    LEFT JOIN bench_sentences AS w2 ON bench_rand(i.id, 46, 3) >= 1 AND w2.id = bench_rand(i.id * 8 + 2, 45, pool)
    LEFT JOIN bench_sentences AS w3 ON bench_rand(i.id, 46, 3) >= 2 AND w3.id = bench_rand(i.id * 8 + 3, 45, pool)
    LEFT JOIN bench_sentences AS s1 ON s1.id = bench_rand(i.id * 8 + 4, 45, pool)
    LEFT JOIN bench_sentences AS s2 ON s2.id = bench_rand(i.id * 8 + 5, 45, pool)
    LEFT JOIN bench_sentences AS n1 ON bench_rand(i.id, 50, 4) >= 1 AND n1.id = bench_rand(i.id * 8 + 6, 45, pool)
    LEFT JOIN bench_sentences AS n2 ON bench_rand(i.id, 50, 4) >= 2 AND n2.id = bench_rand(i.id * 8 + 7, 45, pool)
    LEFT JOIN bench_sentences AS n3 ON bench_rand(i.id, 50, 4) >= 3 AND n3.id = bench_rand(i.id * 8 + 8, 45, pool);

    -- Comments: 0..2*comments_per_issue per issue, 1..5 sentences each, ids in time order
    -- across all sites.
    INSERT INTO comments (id, issue_id, author_id, body, score, attachment, edited_at, created_at)
    SELECT c.id, c.issue_id,
           CASE WHEN bench_rand(c.r, 61, 5) = 0 THEN 1 + bench_rand(c.r, 62, 10)
                ELSE 11 + 3 * (c.site_id - 1) + bench_rand(c.r, 63, 3) END,
           concat_ws(CASE WHEN bench_rand(c.r, 66, 3) = 0 THEN E'\n\n' ELSE ' ' END,
                     b1.body, b2.body, b3.body, b4.body, b5.body),
           CASE bench_rand(c.r, 67, 8) WHEN 0 THEN NULL WHEN 1 THEN 'NaN'::float8
                ELSE bench_rand(c.r, 68, 1000000) / 1000.0 END,
           CASE WHEN bench_rand(c.r, 69, 20) = 0
                THEN decode(md5(c.r::text) || md5((c.r + 1)::text), 'hex') || '\x005c0a09ff'::bytea END,
           CASE WHEN bench_rand(c.r, 70, 6) = 0 THEN c.created_at + interval '7 minutes' END,
           c.created_at
    FROM (SELECT issue_id, site_id, r, created_at, bench_rand(r, 65, 5) AS k,
                 comment_offset + row_number() OVER (ORDER BY created_at, r) AS id
          FROM (SELECT iss.id AS issue_id, iss.site_id, iss.id * 64 + cn AS r,
                       iss.created_at + bench_rand(iss.id * 64 + cn, 60, 30 * 86400) * interval '1 second' AS created_at
                FROM issues AS iss,
                     LATERAL generate_series(1, bench_rand(iss.id, 59, 2 * comments_per_issue + 1)::int) AS cn
                WHERE iss.id > issue_offset) AS raw
         ) AS c
    LEFT JOIN bench_sentences AS b1 ON b1.id = bench_rand(c.r * 8 + 1, 64, pool)
    LEFT JOIN bench_sentences AS b2 ON c.k >= 1 AND b2.id = bench_rand(c.r * 8 + 2, 64, pool)
    LEFT JOIN bench_sentences AS b3 ON c.k >= 2 AND b3.id = bench_rand(c.r * 8 + 3, 64, pool)
    LEFT JOIN bench_sentences AS b4 ON c.k >= 3 AND b4.id = bench_rand(c.r * 8 + 4, 64, pool)
    LEFT JOIN bench_sentences AS b5 ON c.k >= 4 AND b5.id = bench_rand(c.r * 8 + 5, 64, pool);

    -- Reactions: 0..2 per comment, by the site's own users.
    INSERT INTO reactions (comment_id, user_id, emoji, reacted_at)
    SELECT cm.id, 11 + 3 * (iss.site_id - 1) + (t - 1),
           (ARRAY['👍', '🎉', '❤️', '👀', '🚀', '😕', '+1', '\o/'])[1 + bench_rand(cm.id * 4 + t, 71, 8)],
           cm.created_at + bench_rand(cm.id * 4 + t, 72, 86400) * interval '1 second'
    FROM comments AS cm
    JOIN issues AS iss ON iss.id = cm.issue_id,
         LATERAL generate_series(1, bench_rand(cm.id, 70, 3)::int) AS t
    WHERE cm.id > comment_offset
    ORDER BY 4, 1, 2;

    -- Page views: the tenant column without an FK, in time order across sites.
    INSERT INTO page_views (site_id, path, viewed_at, meta)
    SELECT v.k,
           CASE bench_rand(v.r, 81, 4)
               WHEN 0 THEN format('/projects/%s', 1 + bench_rand(v.r, 82, projects_per_site))
               WHEN 1 THEN format('/projects/%s/issues/%s', 1 + bench_rand(v.r, 82, projects_per_site),
                                  1 + bench_rand(v.r, 83, 4 * issues_per_project))
               WHEN 2 THEN format('/search?q=%s&page=%s', (ARRAY['export', 'login+bug', 'caf%C3%A9', 'timeout', 'billing'])[1 + bench_rand(v.r, 84, 5)],
                                  1 + bench_rand(v.r, 85, 5))
               ELSE '/dashboard' END,
           v.viewed_at,
           CASE WHEN bench_rand(v.r, 86, 5) = 0 THEN NULL
                ELSE jsonb_build_object(
                    'ua', (ARRAY['Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
                                 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
                                 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
                                 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148'])[1 + bench_rand(v.r, 87, 4)],
                    'ref', (ARRAY['https://www.google.com/', 'https://github.com/', 'direct', 'https://mail.example.com/'])[1 + bench_rand(v.r, 88, 4)],
                    'ms', 20 + bench_rand(v.r, 89, 3000),
                    'ip', format('10.%s.%s.%s', bench_rand(v.r, 90, 256), bench_rand(v.r, 91, 256), bench_rand(v.r, 92, 256))) END
    FROM (SELECT k, k::bigint * 100000 + vn AS r,
                 base + bench_rand(k::bigint * 100000 + vn, 80, span::bigint) * interval '1 second' AS viewed_at
          FROM generate_series(first_site, last_site) AS k, generate_series(1, views_per_site) AS vn
          ORDER BY viewed_at, k, vn
          OFFSET 0) AS v;

    INSERT INTO feature_flags (name, enabled)
    VALUES ('new-editor', true), ('dark-mode', false), ('bulk-export', true)
    ON CONFLICT DO NOTHING;

    PERFORM setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));
    PERFORM setval(pg_get_serial_sequence('sites', 'id'), (SELECT max(id) FROM sites));
    PERFORM setval(pg_get_serial_sequence('issues', 'id'), (SELECT max(id) FROM issues));
    PERFORM setval(pg_get_serial_sequence('comments', 'id'), (SELECT max(id) FROM comments));
END
$fn$;
