-- limits.sql: dwa.limit_set / limit_delete and their validation, the
-- claim path under concurrency caps, token buckets and retry-after pauses
-- (the hint row), two sessions racing for a key's last slot, limit_stats,
-- and the unlimited claim left as it was.
--
-- No enclosing transaction: buckets refill against the clock and the
-- sessions must see each other's commits.  The database is thrown away.
CREATE EXTENSION IF NOT EXISTS dblink;
SET statement_timeout = '60s';
SET lock_timeout = '10s';
SELECT plan(175);

INSERT INTO dwa.task_types (name, executor)
SELECT 't.' || n, 'worker'
  FROM unnest(ARRAY['fast', 'lim', 'race', 'rate', 'burst', 'q', 'be', 'ra', 'rb', 'rc',
                    'late', 'stat', 'batch', 'grant', 'dup', 'mix1', 'mix2']) n;
INSERT INTO dwa.task_types (name, executor, limit_keys)
VALUES ('t.sa', 'worker', '{key:shared}'), ('t.sb', 'worker', '{key:shared}');

\ir ../lib/named.sql
-- submit: n tasks of a type (with extra fields); returns how many.
CREATE FUNCTION pg_temp.submit(p_type text, p_n integer, p_extra jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE sql AS $$
    SELECT count(dwa.submit(jsonb_build_object('type', p_type,
                'payload', jsonb_build_object('g', g)) || p_extra))
      FROM generate_series(1, p_n) g
$$;
-- claim: what dwad sees: dwa._claim's rows, the hint row included
-- (p_type: a type, or several separated by commas).
CREATE TEMP TABLE got AS
SELECT * FROM dwa._claim(NULL, ARRAY['no.such'], 1, '1 hour') WITH ORDINALITY;
CREATE FUNCTION pg_temp.claim(p_type text, p_n integer DEFAULT 10) RETURNS bigint
LANGUAGE sql AS $$
    DELETE FROM got;
    WITH c AS (INSERT INTO got
               SELECT * FROM dwa._claim(dwa._sql_worker('tester'),
                   string_to_array(p_type, ','), p_n, '1 hour')
                   WITH ORDINALITY
               RETURNING run_id)
    SELECT count(run_id) FROM c
$$;
-- hold: the hint row's hold_ms of the last claim (NULL: none).
CREATE FUNCTION pg_temp.hold() RETURNS bigint LANGUAGE sql AS $$
    SELECT hold_ms FROM got WHERE run_id IS NULL
$$;
CREATE FUNCTION pg_temp.hints() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM got WHERE run_id IS NULL
$$;
CREATE FUNCTION pg_temp.running(p_type text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM dwa.steps WHERE task = p_type AND status = 'running'
$$;
-- finish: complete every running step of a type; returns how many.
CREATE FUNCTION pg_temp.finish(p_type text, p_max integer DEFAULT 1000) RETURNS bigint
LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE dwa.complete(run_id, '{}'))
      FROM (SELECT run_id FROM dwa.steps WHERE task = p_type AND status = 'running'
             ORDER BY id LIMIT p_max) x
$$;
-- limits: every limit row, as text, to show that a rejection changed nothing.
CREATE FUNCTION pg_temp.limits() RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(l::text, ';' ORDER BY l.key), '<none>') FROM dwa.limits l
$$;
-- rejects: a call fails with 22023 and this message, and no limit changes.
CREATE FUNCTION pg_temp.rejects(p_sql text, p_message text, p_desc text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    before text := pg_temp.limits();
BEGIN
    RETURN NEXT throws_ok(p_sql, '22023', p_message, p_desc);
    RETURN NEXT is(pg_temp.limits(), before, p_desc || ': nothing stored or changed');
END
$$;

-- ---------------------------------------------------------------------
-- Schema.

SELECT has_table('dwa', 'limits', 'dwa.limits exists');
SELECT has_column('dwa', 'steps', 'limit_keys', 'dwa.steps.limit_keys exists');
SELECT ok(EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'dwa.claimed'::regclass AND attname = 'hold_ms'
                     AND atttypid = 'bigint'::regtype),
    'dwa.claimed has hold_ms bigint');
SELECT has_view('dwa', 'limit_stats', 'dwa.limit_stats exists');

-- ---------------------------------------------------------------------
-- No limits: the claim is the one it always was: no hint row, no keys.

SELECT is(pg_temp.submit('t.fast', 1, '{"priority":1}') + pg_temp.submit('t.fast', 1, '{"priority":5}')
          + pg_temp.submit('t.fast', 1, '{"priority":3}'), 3::bigint, 'fast: three steps submitted');
SELECT is(pg_temp.limits(), '<none>', 'fast: dwa.limits is empty');
SELECT is(pg_temp.claim('t.fast'), 3::bigint, 'fast: the claim gets all three');
SELECT is(pg_temp.hints(), 0::bigint, 'fast: and no hint row');
SELECT results_eq(
    $$SELECT g.task_id, g.run_id, g.attempt, g.hold_ms FROM got g ORDER BY g.task_id$$,
    $$SELECT s.task_id, s.run_id, s.attempt, NULL::bigint FROM dwa.steps s
       WHERE s.task = 't.fast' ORDER BY s.task_id$$,
    'fast: each row names its running step, attempt 1, hold_ms NULL');
SELECT results_eq($$SELECT (SELECT t.priority FROM dwa.tasks t WHERE t.id = g.task_id) FROM got g
                     ORDER BY g.ordinality$$,
    $$VALUES (5), (3), (1)$$, 'fast: highest priority first');
SELECT is((SELECT count(*) FROM dwa.steps WHERE task = 't.fast' AND limit_keys IS NOT NULL),
    0::bigint, 'fast: no limit keys recorded');
SELECT is(pg_temp.finish('t.fast'), 3::bigint, 'fast: the runs complete');

-- ---------------------------------------------------------------------
-- limit_set and limit_delete: validation.  Each rejection names the field
-- and stores nothing, on a new key as on an existing one.

SELECT pg_temp.rejects($$SELECT dwa.limit_set('openai', 1)$$,
    'key: must look like queue:NAME, type:NAME, backend:NAME or key:NAME', 'bad key: no kind');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('user:x', 1)$$,
    'key: must look like queue:NAME, type:NAME, backend:NAME or key:NAME', 'bad key: unknown kind');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('type:', 1)$$,
    'key: must look like queue:NAME, type:NAME, backend:NAME or key:NAME', 'bad key: no name');
SELECT pg_temp.rejects($$SELECT dwa.limit_set(NULL, 1)$$,
    'key: must look like queue:NAME, type:NAME, backend:NAME or key:NAME', 'bad key: NULL');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', 0)$$,
    'max_concurrency: must be at least 1', 'zero concurrency');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', -2)$$,
    'max_concurrency: must be at least 1', 'negative concurrency');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', NULL, '0/s')$$,
    'rate: must be greater than zero', 'zero rate');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', NULL, '-5/min')$$,
    'rate: must be greater than zero', 'negative rate');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', NULL, '5/0s')$$,
    'rate: the interval must be greater than zero', 'zero interval');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', NULL, '10/fortnight')$$,
    'rate: unknown unit "fortnight" (use s, min, h, d or a duration like 5s)', 'unknown unit');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', NULL, '10/3 weeks')$$,
    'rate: unknown unit "weeks" (use s, min, h, d or a duration like 5s)', 'unknown unit of a duration');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', NULL, 'ten a second')$$,
    'rate: "ten a second" is not a rate (use N/UNIT, e.g. 60/min, 10/s or 5/2s)', 'not a rate');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', NULL, '10/s', 0)$$,
    'burst: must be at least 1', 'burst 0');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', NULL, '10/s', -1)$$,
    'burst: must be at least 1', 'negative burst');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', 3, NULL, 5)$$,
    'burst: needs a rate (a burst is the size of a token bucket)', 'burst without a rate');
SELECT lives_ok($$SELECT dwa.limit_set('key:v', 3, '10/s', 4)$$, 'a valid limit is set');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', 0, '20/s')$$,
    'max_concurrency: must be at least 1', 'an existing key: zero concurrency');
SELECT pg_temp.rejects($$SELECT dwa.limit_set('key:v', 5, '5/0s')$$,
    'rate: the interval must be greater than zero', 'an existing key: zero interval');
SELECT results_eq($$SELECT key, max_concurrency, rate, per, burst FROM dwa.limits$$,
    $$VALUES ('key:v'::text, 3, 10::double precision, interval '1 s', 4)$$,
    'the existing key keeps its caps');

-- Rate forms.
SELECT lives_ok($$SELECT dwa.limit_set('key:f' || k, NULL, r)
                    FROM (VALUES (1, '10/s'), (2, '60/min'), (3, '100/h'), (4, '5/2s'),
                                 (5, '1/d'), (6, ' 3 / 1.5 min '), (7, '2/500ms'),
                                 (8, '0.5/second'), (9, '7/Minute'), (10, '20/10s')) v(k, r)$$,
    'rate forms are accepted');
SELECT results_eq($$SELECT key, rate, per FROM dwa.limits WHERE key LIKE 'key:f%'
                     ORDER BY substr(key, 6)::integer$$,
    $$VALUES ('key:f1'::text, 10::double precision, interval '1 s'),
             ('key:f2', 60, interval '1 min'), ('key:f3', 100, interval '1 hour'),
             ('key:f4', 5, interval '2 s'), ('key:f5', 1, interval '24 hours'),
             ('key:f6', 3, interval '90 s'), ('key:f7', 2, interval '0.5 s'),
             ('key:f8', 0.5, interval '1 s'), ('key:f9', 7, interval '1 min'),
             ('key:f10', 20, interval '10 s')$$,
    'rates: 10/s, 60/min, 100/h, 5/2s, 1/d, 3/1.5min, 2/500ms, 0.5/second, 7/Minute, 20/10s');

-- set replaces the caps; a pause and the tokens in hand survive.
SELECT FROM dwa.limit_set('key:r', 4, '10/s', 5);
SELECT FROM dwa._limit_pause('key:r', now() + interval '1 hour');
SELECT FROM dwa.limit_set('key:r', NULL, '10/s', 2);
SELECT results_eq($$SELECT max_concurrency, rate, per, burst, tokens, paused_until > now() FROM dwa.limits WHERE key = 'key:r'$$,
    $$VALUES (NULL::integer, 10::double precision, interval '1 s', 2, 2::double precision, true)$$,
    'set replaces the caps (concurrency gone), keeps the pause, tokens capped at the new burst');
SELECT FROM dwa.limit_set('key:r', 6);
SELECT results_eq($$SELECT max_concurrency, rate, per, burst, tokens FROM dwa.limits WHERE key = 'key:r'$$,
    $$VALUES (6, NULL::double precision, NULL::interval, NULL::integer, NULL::double precision)$$,
    'set with only a concurrency drops the rate and the bucket');
SELECT is(dwa.limit_delete('key:r'), true, 'limit_delete returns true for a key it removed');
SELECT is(dwa.limit_delete('key:r'), false, 'limit_delete returns false the second time');
SELECT is(dwa.limit_delete('key:nothing'), false, 'limit_delete returns false for an unknown key');
SELECT is((SELECT count(*) FILTER (WHERE dwa.limit_delete(key)) FROM dwa.limits), 11::bigint,
    'the other test keys are deleted');
SELECT is(pg_temp.limits(), '<none>', 'no limit is left');

-- ---------------------------------------------------------------------
-- max_concurrency: never more than the cap running; concurrency is no
-- rate, so no hint row.

SELECT FROM dwa.limit_set('type:t.lim', 2);
SELECT is(pg_temp.submit('t.lim', 5), 5::bigint, 'conc: five steps submitted');
SELECT is(pg_temp.claim('t.lim', 10), 2::bigint, 'conc: max 2: a claim of 10 gets 2');
SELECT is(pg_temp.running('t.lim'), 2::bigint, 'conc: two running');
SELECT is(pg_temp.hints(), 0::bigint, 'conc: no hint row (a concurrency cap is not a rate)');
SELECT is((SELECT count(*) FROM dwa.steps WHERE task = 't.lim' AND status = 'running'
              AND limit_keys @> '{type:t.lim,queue:default}'), 2::bigint,
    'conc: the running steps record their keys');
SELECT is(pg_temp.claim('t.lim', 10), 0::bigint, 'conc: claiming again gets nothing');
SELECT is(pg_temp.hints(), 0::bigint, '... and no hint row');
SELECT is((SELECT count(*) FROM dwa.claim('worker', ARRAY['t.lim'], 10)), 0::bigint,
    'conc: dwa.claim obeys the cap too');
SELECT is(pg_temp.finish('t.lim', 1), 1::bigint, 'conc: one run completes');
SELECT is(pg_temp.claim('t.lim', 10), 1::bigint, 'conc: now a claim gets exactly 1');
SELECT is(pg_temp.running('t.lim'), 2::bigint, 'conc: two running again');
SELECT FROM dwa.limit_set('type:t.lim', 3);
SELECT is(pg_temp.claim('t.lim', 10), 1::bigint, 'conc: raised to 3: one more');
SELECT is((SELECT count(*) FROM dwa.steps WHERE task = 't.lim' AND status = 'ready'), 1::bigint,
    'conc: the held-back step is still ready');
SELECT is((SELECT attempt FROM dwa.steps WHERE task = 't.lim' AND status = 'ready'), 0,
    'conc: ... never attempted');

-- Steps claimed before any limit existed count too.
SELECT is(pg_temp.submit('t.late', 4), 4::bigint, 'late: four steps submitted');
DELETE FROM dwa.limits;
SELECT is(pg_temp.claim('t.late', 2), 2::bigint, 'late: two claimed while no limit is set');
SELECT is((SELECT count(*) FROM dwa.steps WHERE task = 't.late' AND limit_keys IS NULL
              AND status = 'running'), 2::bigint, 'late: they run without recorded keys');
SELECT FROM dwa.limit_set('type:t.late', 2);
SELECT is(pg_temp.claim('t.late', 10), 0::bigint,
    'late: a cap of 2 set afterwards counts them: nothing more');
SELECT FROM dwa.limit_set('type:t.late', 3);
SELECT is(pg_temp.claim('t.late', 10), 1::bigint, 'late: raised to 3: one more');
SELECT FROM dwa.limit_set('type:t.lim', 2);

-- ---------------------------------------------------------------------
-- Two sessions racing for a max_concurrency 1 key: A claims in an open
-- transaction; B's claim waits for A's lock on the limit row, then sees
-- A's running step: it gets nothing (no write skew).

SELECT FROM dwa.limit_set('type:t.race', 1);
SELECT is(pg_temp.submit('t.race', 3), 3::bigint, 'race: three steps submitted');
SELECT is(dblink_connect('a', pg_temp.connstr()) || dblink_connect('b', pg_temp.connstr()),
    'OKOK', 'race: sessions A and B connected');
SELECT is(dblink_exec('a', 'BEGIN'), 'BEGIN', 'race: A opens a transaction');
SELECT is((SELECT n FROM dblink('a', $$SELECT count(*) FROM dwa.claim('race-a', ARRAY['t.race'], 1)$$)
             AS t(n bigint)), 1::bigint, 'race: A claims 1 (not committed)');
CREATE TEMP TABLE b_pid AS SELECT pid FROM dblink('b', 'SELECT pg_backend_pid()') AS t(pid integer);
SELECT is(dblink_send_query('b', $$SELECT count(*) FROM dwa.claim('race-b', ARRAY['t.race'], 5)$$),
    1, 'race: B sends its claim');
CREATE FUNCTION pg_temp.waits_for_lock(p_pid integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 200 LOOP
        IF EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = p_pid AND wait_event_type = 'Lock') THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END
$$;
SELECT ok(pg_temp.waits_for_lock((SELECT pid FROM b_pid)), 'race: B waits on a lock (within 10 s)');
SELECT ok(EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE a.pid = (SELECT pid FROM b_pid) AND NOT l.granted
                     AND l.locktype = 'transactionid'),
    'race: ... the row lock A holds');
SELECT is(dblink_is_busy('b'), 1, 'race: B is still busy');
SELECT is(dblink_exec('a', 'COMMIT'), 'COMMIT', 'race: A commits');
SELECT is((SELECT n FROM dblink_get_result('b') AS t(n bigint)), 0::bigint,
    'race: B then gets nothing: it sees A''s running step');
SELECT is((SELECT count(*) FROM dblink_get_result('b') AS t(n bigint)), 0::bigint, 'race: B is done');
SELECT is(pg_temp.running('t.race'), 1::bigint, 'race: exactly one step running');
SELECT is((SELECT n FROM dblink('b', $$SELECT count(*) FROM dwa.claim('race-b', ARRAY['t.race'], 5)$$)
             AS t(n bigint)), 0::bigint, 'race: B claiming again after A committed gets nothing');
SELECT is(pg_temp.finish('t.race'), 1::bigint, 'race: A''s run completes');
SELECT is((SELECT n FROM dblink('b', $$SELECT count(*) FROM dwa.claim('race-b', ARRAY['t.race'], 5)$$)
             AS t(n bigint)), 1::bigint, 'race: then B gets one');

-- ---------------------------------------------------------------------
-- Token buckets: 10/s with burst 1.

SELECT FROM dwa.limit_set('type:t.rate', NULL, '10/s', 1);
SELECT is(pg_temp.submit('t.rate', 10), 10::bigint, 'rate: ten steps submitted');
SELECT is(pg_temp.claim('t.rate', 10), 1::bigint, 'rate: 10/s burst 1: a claim of 10 gets 1');
SELECT is(pg_temp.hints(), 1::bigint, 'rate: ... and one hint row');
SELECT ok(pg_temp.hold() > 0 AND pg_temp.hold() <= 100, 'rate: hold_ms in (0, 100]');
SELECT results_eq($$SELECT task_id, step_id, item_index, task, input, attempt, lease_until, id, timeout_ms
                      FROM got WHERE run_id IS NULL$$,
    $$VALUES (NULL::bigint, NULL::text, NULL::integer, NULL::text, NULL::jsonb, NULL::integer,
              NULL::timestamptz, NULL::bigint, NULL::bigint)$$,
    'rate: the hint row has nothing but hold_ms');
SELECT is((SELECT run_id IS NULL FROM got ORDER BY ordinality DESC LIMIT 1), true,
    'rate: the hint row comes last');
SELECT is((SELECT count(*) FROM dwa.claim('worker', ARRAY['t.rate'], 10)), 0::bigint,
    'rate: dwa.claim right away: nothing, and no hint row');
SELECT ok((SELECT tokens >= 0 AND tokens < 1 FROM dwa.limits WHERE key = 'type:t.rate'),
    'rate: the bucket is empty, not negative');
SELECT FROM pg_sleep(0.11);
SELECT is(pg_temp.claim('t.rate', 10), 1::bigint, 'rate: 110 ms later: one more');
SELECT ok((SELECT tokens >= 0 FROM dwa.limits WHERE key = 'type:t.rate'), 'rate: tokens never negative');
SELECT is(pg_temp.running('t.rate'), 2::bigint, 'rate: two running');

SELECT FROM dwa.limit_set('type:t.burst', NULL, '1/s', 5);
SELECT is(pg_temp.submit('t.burst', 8), 8::bigint, 'burst: eight steps submitted');
SELECT is(pg_temp.claim('t.burst', 10), 5::bigint, 'burst: 1/s burst 5: the first claim gets 5');
SELECT ok(pg_temp.hold() BETWEEN 1 AND 1000, 'burst: hold_ms until the next token, at most 1 s');
SELECT cmp_ok(pg_temp.claim('t.burst', 10), '<=', 1::bigint, 'burst: right after: at most 1');
SELECT ok((SELECT tokens >= 0 AND tokens < 1 FROM dwa.limits WHERE key = 'type:t.burst'),
    'burst: the bucket is empty, not negative');

-- A key of the type (task_types.limit_keys) shared by two types: one bucket.
SELECT FROM dwa.limit_set('key:shared', NULL, '1/min', 3);
SELECT is(pg_temp.submit('t.sa', 3) + pg_temp.submit('t.sb', 3), 6::bigint,
    'shared: three steps each of two types with key:shared');
SELECT is(pg_temp.claim('t.sa', 2), 2::bigint, 'shared: t.sa takes 2 of the 3 tokens');
SELECT is(pg_temp.claim('t.sb', 10), 1::bigint, 'shared: t.sb gets the last one');
SELECT ok(pg_temp.hold() BETWEEN 59000 AND 60000, 'shared: the next token is a minute away');
SELECT is(pg_temp.claim('t.sa', 10), 0::bigint, 'shared: t.sa gets nothing more');
SELECT is((SELECT limit_keys FROM dwa.steps WHERE task = 't.sb' AND status = 'running'),
    '{queue:default,type:t.sb,key:shared}'::text[], 'shared: the running step records key:shared');

-- queue: and backend: keys.
SELECT FROM dwa.limit_set('queue:q.lim', 1);
SELECT is(pg_temp.submit('t.q', 3, '{"queue":"q.lim"}'), 3::bigint, 'queue: three steps in q.lim');
SELECT is(pg_temp.claim('t.q', 10), 1::bigint, 'queue: max 1 on queue:q.lim: a claim of 10 gets 1');
SELECT FROM dwa.limit_set('backend:b.lim', NULL, '1/min', 2);
SELECT is(pg_temp.submit('t.be', 4, '{"backend":"b.lim"}'), 4::bigint, 'backend: four steps on b.lim');
SELECT is(pg_temp.claim('t.be', 10), 2::bigint, 'backend: 1/min burst 2 on backend:b.lim: 2');
SELECT ok(pg_temp.hold() BETWEEN 59000 AND 60000, 'backend: hint row: a minute to wait');
SELECT is((SELECT limit_keys FROM dwa.steps WHERE task = 't.be' AND status = 'running' LIMIT 1),
    '{queue:default,type:t.be,backend:b.lim}'::text[], 'backend: the keys of a step with a backend');

-- A key listed twice for a step (its type names its own type: key) spends
-- one token per step.
UPDATE dwa.task_types SET limit_keys = '{type:t.dup}' WHERE name = 't.dup';
SELECT FROM dwa.limit_set('type:t.dup', NULL, '1/min', 3);
SELECT is(pg_temp.submit('t.dup', 5), 5::bigint, 'dup: five steps of a type listing type:t.dup');
SELECT is(pg_temp.claim('t.dup', 10), 3::bigint, 'dup: burst 3: three, one token each');

-- Steps behind a used-up key: the claim looks past them for others.
SELECT FROM dwa.limit_set('type:t.mix1', NULL, '1/min', 2);
SELECT FROM dwa.limit_set('type:t.mix2', 10);
SELECT is(pg_temp.submit('t.mix1', 5, '{"priority":10}') + pg_temp.submit('t.mix2', 4), 9::bigint,
    'mix: five t.mix1 steps first in line, four t.mix2 behind');
SELECT is(pg_temp.claim('t.mix1,t.mix2', 5), 5::bigint, 'mix: a claim of 5 gets 5 ...');
SELECT is((SELECT count(*) FROM dwa.steps WHERE task = 't.mix1' AND status = 'running'), 2::bigint,
    'mix: ... the 2 t.mix1 tokens, then 3 t.mix2 from behind');
SELECT ok(pg_temp.hold() BETWEEN 59000 AND 60000, 'mix: ... and the hint for t.mix1');
SELECT is(pg_temp.claim('t.mix1,t.mix2', 5), 1::bigint,
    'mix: the next claim skips t.mix1 from the start: the last t.mix2');
SELECT ok(pg_temp.hold() BETWEEN 59000 AND 60000, 'mix: ... and the hint for t.mix1');
SELECT is(pg_temp.claim('t.mix2', 5), 0::bigint, 'mix: a claim of t.mix2 only: nothing');
SELECT is(pg_temp.hints(), 0::bigint, 'mix: ... and no hint (t.mix1 is not its business)');
SELECT is(pg_temp.claim('t.fast', 5), 0::bigint, 'mix: a claim for a type without work: nothing');
SELECT is(pg_temp.hints(), 0::bigint, 'mix: ... and no hint either');
SELECT is((SELECT count(*) FROM dwa.steps WHERE task = 't.mix1' AND status = 'ready' AND attempt = 0),
    3::bigint, 'mix: the held-back t.mix1 steps stay ready, unattempted');

-- ---------------------------------------------------------------------
-- Retry-after: dwa.fail pauses the step's backend (or type) for everyone.

SELECT is(pg_temp.submit('t.ra', 3, '{"backend":"b.ra"}'), 3::bigint, 'retry-after: three steps on b.ra');
SELECT is(pg_temp.claim('t.ra', 1), 1::bigint, 'retry-after: one claimed');
CREATE TEMP TABLE ra AS SELECT * FROM got WHERE run_id IS NOT NULL;
SELECT ok(dwa.fail((SELECT run_id FROM ra), 'rate limited', retryable => true, retry_after => '2 s'),
    'retry-after: it fails with retry_after 2 s');
SELECT results_eq(
    $$SELECT s.status, s.attempt, s.run_after = l.paused_until FROM dwa.steps s, dwa.limits l
       WHERE s.id = (SELECT id FROM ra) AND l.key = 'backend:b.ra'$$,
    $$VALUES ('ready'::text, 0, true)$$,
    'retry-after: backend:b.ra paused until the step is ready again; the attempt not spent');
SELECT ok((SELECT paused_until - now() BETWEEN interval '1.5 s' AND interval '2 s'
             FROM dwa.limits WHERE key = 'backend:b.ra'),
    'retry-after: paused_until is about now() + 2 s');
SELECT results_eq($$SELECT max_concurrency, rate FROM dwa.limits WHERE key = 'backend:b.ra'$$,
    $$VALUES (NULL::integer, NULL::double precision)$$, 'retry-after: a pause, no caps');
SELECT is(pg_temp.claim('t.ra', 10), 0::bigint, 'retry-after: another step of the key: nothing');
SELECT ok(pg_temp.hold() BETWEEN 1500 AND 2000, 'retry-after: ... but a hint row: about 2000 ms');
SELECT is((SELECT count(*) FROM dwa.claim('worker', ARRAY['t.ra'], 10)), 0::bigint,
    'retry-after: dwa.claim gets nothing either');

-- Without a backend, the type pauses; a short pause ends and the step
-- runs again as the same attempt.
SELECT is(pg_temp.submit('t.rb', 2), 2::bigint, 'retry-after: two steps of t.rb, no backend');
SELECT is(pg_temp.claim('t.rb', 1), 1::bigint, 'retry-after: one claimed');
CREATE TEMP TABLE rb AS SELECT * FROM got WHERE run_id IS NOT NULL;
SELECT ok(dwa.fail((SELECT run_id FROM rb), '429', retry_after => '300 ms'),
    'retry-after: it fails with retry_after 300 ms');
SELECT ok((SELECT paused_until > now() FROM dwa.limits WHERE key = 'type:t.rb'),
    'retry-after: type:t.rb is paused');
SELECT is(pg_temp.claim('t.rb', 10), 0::bigint, 'retry-after: nothing of t.rb meanwhile');
SELECT ok(pg_temp.hold() BETWEEN 1 AND 300, 'retry-after: hint within 300 ms');
SELECT FROM pg_sleep(0.35);
SELECT is(pg_temp.claim('t.rb', 10), 2::bigint, 'retry-after: after the pause both steps run');
SELECT is((SELECT attempt FROM dwa.steps WHERE id = (SELECT id FROM rb)), 1,
    'retry-after: the failed one again as attempt 1');

-- dwad's batch end with retryAfterMs pauses too.
SELECT is(pg_temp.submit('t.rc', 2), 2::bigint, 'batch: two steps of t.rc');
CREATE TEMP TABLE batcher AS
WITH w AS (INSERT INTO dwa.workers (name, kind) VALUES ('batcher', 'daemon') RETURNING id)
SELECT c.* FROM w, dwa._claim(w.id, ARRAY['t.rc'], 1, '1 hour') c;
SELECT is((SELECT count(run_id) FROM batcher), 1::bigint, 'batch: a daemon claims one');
SELECT is(dwa._finish_batch((SELECT jsonb_agg(jsonb_build_object('id', id, 'run', run_id,
            'outcome', 'transient', 'error', 'HTTP 429', 'retryAfterMs', 5000)) FROM batcher)),
    '{}'::bigint[], 'batch: its run ends transient with retryAfterMs 5000');
SELECT ok((SELECT paused_until - now() BETWEEN interval '4.5 s' AND interval '5 s'
             FROM dwa.limits WHERE key = 'type:t.rc'),
    'batch: type:t.rc paused for 5 s');
SELECT is(pg_temp.claim('t.rc', 10), 0::bigint, 'batch: the other step waits');
SELECT ok(pg_temp.hold() BETWEEN 4500 AND 5000, 'batch: hint about 5000 ms');

-- ---------------------------------------------------------------------
-- limit_stats.

SELECT results_eq(
    $$SELECT key, max_concurrency, running, waiting FROM dwa.limit_stats
       WHERE key IN ('type:t.lim', 'type:t.race', 'queue:q.lim', 'type:t.late') ORDER BY key$$,
    $$VALUES ('queue:q.lim'::text, 1, 1::bigint, 2::bigint), ('type:t.late', 3, 3, 1),
             ('type:t.lim', 2, 3, 1), ('type:t.race', 1, 1, 1)$$,
    'limit_stats: running and waiting steps per key');
SELECT results_eq(
    $$SELECT rate, per, burst, running, waiting FROM dwa.limit_stats WHERE key = 'key:shared'$$,
    $$VALUES (1::double precision, interval '1 min', 3, 3::bigint, 3::bigint)$$,
    'limit_stats: a shared key counts the steps of both types');
SELECT FROM dwa.limit_set('type:t.stat', NULL, '10/s', 10);
SELECT is(pg_temp.submit('t.stat', 10), 10::bigint, 'stats: ten steps of t.stat');
SELECT is(pg_temp.claim('t.stat', 10), 10::bigint, 'stats: the full bucket admits 10');
SELECT ok((SELECT tokens < 1 FROM dwa.limits WHERE key = 'type:t.stat'), 'stats: the stored tokens are spent');
SELECT FROM pg_sleep(0.3);
SELECT ok((SELECT tokens BETWEEN 2.5 AND 10 FROM dwa.limit_stats WHERE key = 'type:t.stat'),
    'stats: 300 ms later limit_stats shows the tokens refilled to now (about 3)');
SELECT ok((SELECT tokens < 1 FROM dwa.limits WHERE key = 'type:t.stat'),
    'stats: ... without storing them');
SELECT ok((SELECT tokens IS NULL AND paused_until IS NULL FROM dwa.limit_stats WHERE key = 'type:t.lim'),
    'stats: a key without a rate has no tokens');
SELECT ok((SELECT paused_until > now() FROM dwa.limit_stats WHERE key = 'backend:b.ra'),
    'stats: the pause shows');

-- ---------------------------------------------------------------------
-- Grants.

SELECT ok(has_table_privilege('dwa_submitter', 'dwa.limit_stats', 'SELECT')
      AND has_table_privilege('dwa_worker', 'dwa.limit_stats', 'SELECT'),
    'grants: submitters and workers may read limit_stats');
SELECT ok(NOT has_function_privilege('dwa_worker', 'dwa.limit_set(text, integer, text, integer)', 'EXECUTE')
      AND NOT has_function_privilege('dwa_submitter', 'dwa.limit_delete(text)', 'EXECUTE')
      AND NOT has_table_privilege('dwa_worker', 'dwa.limits', 'UPDATE'),
    'grants: they may not change limits');
SELECT ok(has_function_privilege('dwa_admin', 'dwa.limit_set(text, integer, text, integer)', 'EXECUTE')
      AND has_function_privilege('dwa_admin', 'dwa.limit_delete(text)', 'EXECUTE')
      AND has_table_privilege('dwa_admin', 'dwa.limits', 'UPDATE'),
    'grants: admins may');
-- pgTAP's own tables belong to this role: run as the others outside it.
SET ROLE dwa_worker;
DO $$ BEGIN PERFORM count(*) FROM dwa.limit_stats; END $$;
RESET ROLE;
SELECT pass('grants: a worker reads limit_stats');
SET ROLE dwa_admin;
DO $$ BEGIN PERFORM dwa.limit_set('type:t.grant', 1); END $$;
RESET ROLE;
SELECT is((SELECT max_concurrency FROM dwa.limits WHERE key = 'type:t.grant'), 1,
    'grants: an admin sets a limit');

-- ---------------------------------------------------------------------
-- Every limit deleted: the fast path again.

SELECT ok((SELECT bool_and(dwa.limit_delete(key)) FROM dwa.limits), 'every limit deleted');
SELECT is(pg_temp.submit('t.fast', 2), 2::bigint, 'fast again: two steps');
SELECT is(pg_temp.claim('t.fast', 10), 2::bigint, 'fast again: both claimed');
SELECT is(pg_temp.hints(), 0::bigint, 'fast again: no hint row');
SELECT is((SELECT count(*) FROM dwa.steps WHERE task = 't.fast' AND status = 'running'
              AND limit_keys IS NULL), 2::bigint, 'fast again: no keys recorded');
SELECT is(pg_temp.claim('t.rate', 10), 8::bigint, 'fast again: the rate-limited steps all run');

SELECT * FROM finish();
