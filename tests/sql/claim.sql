-- claim.sql: claiming against concurrent sessions (dblink), claim order,
-- type filters, leases: heartbeat, expiry, reaping, completion after the
-- lease is lost, dead daemons, and the daemon's batch completion.
--
-- No enclosing transaction: the sessions must see each other's commits,
-- and leases expire against the clock.  The database is thrown away.
CREATE EXTENSION IF NOT EXISTS dblink;
SET statement_timeout = '60s';
SET lock_timeout = '10s';
SELECT plan(82);

INSERT INTO dwa.task_types (name, executor)
SELECT 'cl.' || n, 'worker'
  FROM unnest(ARRAY['conc', 'race', 'prio', 'future', 'ta', 'tb', 'lease', 'hb', 'daemon',
                    'batch', 'async']) n;

\ir ../lib/named.sql
CREATE FUNCTION pg_temp.step(p_task text) RETURNS dwa.steps LANGUAGE sql AS $$
    SELECT * FROM dwa.steps WHERE task_id = pg_temp.id(p_task) AND item_index IS NULL
$$;
-- ready_due: steps any claim could take right now, whatever their type.
CREATE FUNCTION pg_temp.ready_due() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM dwa.steps WHERE status = 'ready' AND run_after <= now()
$$;

-- ---------------------------------------------------------------------
-- Two sessions: A claims 5 of 10 in an open transaction; B, claiming 10,
-- skips A's locked rows and gets the other 5 without waiting.

INSERT INTO ids SELECT 'conc' || g, dwa.submit(jsonb_build_object('type', 'cl.conc', 'payload', jsonb_build_object('g', g)))
  FROM generate_series(1, 10) g;
SELECT is(dblink_connect('a', pg_temp.connstr()), 'OK', 'session A connected');
SELECT is(dblink_exec('a', 'BEGIN'), 'BEGIN', 'session A opens a transaction');
CREATE TEMP TABLE a_claims AS
SELECT * FROM dblink('a', $$SELECT run_id, task_id, step_id FROM dwa.claim('worker-a', ARRAY['cl.conc'], 5)$$)
    AS t(run_id bigint, task_id bigint, step_id text);
SELECT is((SELECT count(*) FROM a_claims), 5::bigint, 'session A claims 5 (not committed)');
CREATE TEMP TABLE b_claims AS
SELECT run_id, task_id, step_id FROM dwa.claim('worker-b', ARRAY['cl.conc'], 10);
SELECT is((SELECT count(*) FROM b_claims), 5::bigint, 'session B, asking for 10, gets the 5 others');
SELECT is((SELECT count(*) FROM a_claims a JOIN b_claims b USING (task_id)), 0::bigint,
    'no step claimed by both sessions');
SELECT is((SELECT count(DISTINCT run_id) FROM (SELECT run_id FROM a_claims UNION ALL SELECT run_id FROM b_claims) x),
    10::bigint, 'ten distinct run ids');
SELECT is(dblink_exec('a', 'COMMIT'), 'COMMIT', 'session A commits');
SELECT results_eq(
    $$SELECT w.name, count(*) FROM dwa.steps s JOIN dwa.workers w ON w.id = s.worker_id
       WHERE s.task = 'cl.conc' AND s.status = 'running' GROUP BY w.name ORDER BY w.name$$,
    $$VALUES ('worker-a'::text, 5::bigint), ('worker-b', 5)$$,
    'five running steps held by each worker');
SELECT results_eq(
    $$SELECT s.task_id, s.run_id FROM dwa.steps s WHERE s.task = 'cl.conc' ORDER BY 1$$,
    $$SELECT task_id, run_id FROM (SELECT * FROM a_claims UNION ALL SELECT * FROM b_claims) x ORDER BY 1$$,
    'each step holds the run id its claimer got');
SELECT is((SELECT count(*) FILTER (WHERE dwa.complete(run_id, '{}')) FROM b_claims), 5::bigint,
    'B completes its runs');
SELECT is((SELECT sum(x) FROM dblink('a',
        $$SELECT count(*) FILTER (WHERE dwa.complete(run_id, '{}')) FROM dwa.steps
           WHERE task = 'cl.conc' AND status = 'running'$$) AS t(x bigint)), 5::numeric,
    'A completes its runs');

-- Three sessions released at once, each asking for 100 of 150 steps.
INSERT INTO dwa.tasks (type, payload) SELECT 'cl.race', jsonb_build_object('g', g) FROM generate_series(1, 150) g;
CREATE FUNCTION public.race_claim(p_worker text) RETURNS TABLE (run_id bigint, task_id bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock_shared(4242);    -- the starting gate
    PERFORM pg_advisory_unlock_shared(4242);
    RETURN QUERY SELECT c.run_id, c.task_id FROM dwa.claim(p_worker, ARRAY['cl.race'], 100) c;
END
$$;
SELECT is(dblink_connect('b', pg_temp.connstr()) || dblink_connect('c', pg_temp.connstr()), 'OKOK',
    'sessions B and C connected');
SELECT ok(pg_try_advisory_lock(4242), 'the gate is closed');
SELECT is(dblink_send_query('a', $$SELECT * FROM public.race_claim('race-a')$$)
        + dblink_send_query('b', $$SELECT * FROM public.race_claim('race-b')$$)
        + dblink_send_query('c', $$SELECT * FROM public.race_claim('race-c')$$), 3,
    'three claims sent');
DO $$ BEGIN PERFORM pg_sleep(0.3); END $$;
SELECT ok(pg_advisory_unlock(4242), 'the gate opens');
CREATE TEMP TABLE race AS
SELECT 'a' AS s, * FROM dblink_get_result('a') AS t(run_id bigint, task_id bigint)
UNION ALL SELECT 'b', * FROM dblink_get_result('b') AS t(run_id bigint, task_id bigint)
UNION ALL SELECT 'c', * FROM dblink_get_result('c') AS t(run_id bigint, task_id bigint);
SELECT is((SELECT count(*) FROM dblink_get_result('a') AS t(run_id bigint, task_id bigint))
        + (SELECT count(*) FROM dblink_get_result('b') AS t(run_id bigint, task_id bigint))
        + (SELECT count(*) FROM dblink_get_result('c') AS t(run_id bigint, task_id bigint)), 0::bigint,
    'the three claims are done');
SELECT results_eq($$SELECT count(*), count(DISTINCT task_id), count(DISTINCT run_id) FROM race$$,
    $$VALUES (150::bigint, 150::bigint, 150::bigint)$$,
    'the race: all 150 steps claimed, none twice, every run id distinct');
SELECT cmp_ok((SELECT max(n) FROM (SELECT count(*) AS n FROM race GROUP BY s) x), '<=', 100::bigint,
    'the race: no session got more than it asked for');
SELECT results_eq(
    $$SELECT s.task_id, s.run_id, w.name FROM dwa.steps s JOIN dwa.workers w ON w.id = s.worker_id
       WHERE s.task = 'cl.race' ORDER BY 1$$,
    $$SELECT task_id, run_id, 'race-' || s FROM race ORDER BY 1$$,
    'the race: every step is held by the session that got it');
SELECT is((SELECT count(*) FILTER (WHERE dwa.complete(run_id, '{}')) FROM race), 150::bigint,
    'the race: every run completes');

-- ---------------------------------------------------------------------
-- Order: higher priority first, then earlier run_after; the future waits.

SELECT is(pg_temp.ready_due(), 0::bigint, 'nothing else is claimable');
INSERT INTO ids SELECT 'p0', dwa.submit('{"type":"cl.prio","priority":0}'::jsonb);
INSERT INTO ids SELECT 'p10', dwa.submit('{"type":"cl.prio","priority":10}'::jsonb);
INSERT INTO ids SELECT 'p5-2001', dwa.submit('{"type":"cl.prio","priority":5,"runAt":"2001-01-01T00:00:00Z"}'::jsonb);
INSERT INTO ids SELECT 'p5-2000', dwa.submit('{"type":"cl.prio","priority":5,"runAt":"2000-01-01T00:00:00Z"}'::jsonb);
INSERT INTO ids SELECT 'p5-now', dwa.submit('{"type":"cl.prio","priority":5}'::jsonb);
INSERT INTO ids SELECT 'p99-future', dwa.submit('{"type":"cl.prio","priority":99,"runAt":"2999-01-01T00:00:00Z"}'::jsonb);
CREATE TEMP TABLE prio_order (n serial, task_id bigint);
INSERT INTO prio_order (task_id) SELECT task_id FROM dwa.claim('prio', ARRAY['cl.prio'], 1);
INSERT INTO prio_order (task_id) SELECT task_id FROM dwa.claim('prio', ARRAY['cl.prio'], 1);
INSERT INTO prio_order (task_id) SELECT task_id FROM dwa.claim('prio', ARRAY['cl.prio'], 1);
INSERT INTO prio_order (task_id) SELECT task_id FROM dwa.claim('prio', ARRAY['cl.prio'], 1);
INSERT INTO prio_order (task_id) SELECT task_id FROM dwa.claim('prio', ARRAY['cl.prio'], 1);
INSERT INTO prio_order (task_id) SELECT task_id FROM dwa.claim('prio', ARRAY['cl.prio'], 1);
SELECT results_eq($$SELECT task_id FROM prio_order ORDER BY n$$,
    $$SELECT pg_temp.id(x) FROM unnest(ARRAY['p10', 'p5-2000', 'p5-2001', 'p5-now', 'p0']) WITH ORDINALITY u(x, n) ORDER BY n$$,
    'claims go by priority, then run_after; a step due in the future is not claimed');
SELECT results_eq($$SELECT status, attempt FROM dwa.steps WHERE task_id = pg_temp.id('p99-future')$$,
    $$VALUES ('ready'::text, 0)$$, 'the future step is still ready, never attempted');
SELECT is((SELECT count(*) FROM dwa.claim('prio', ARRAY['cl.prio'], 10)), 0::bigint,
    'nothing claimable of that type is left');
SELECT is((SELECT count(*) FILTER (WHERE dwa.complete(s.run_id, '{}')) FROM dwa.steps s
            WHERE s.task = 'cl.prio' AND s.status = 'running'), 5::bigint, 'the claimed runs complete');

INSERT INTO ids SELECT 'm' || p, dwa.submit(jsonb_build_object('type', 'cl.prio', 'priority', p))
  FROM unnest(ARRAY[1, 7, 3, 9]) p;
SELECT results_eq($$SELECT task_id FROM dwa.claim('prio', ARRAY['cl.prio'], 3)$$,
    $$SELECT pg_temp.id(x) FROM unnest(ARRAY['m9', 'm7', 'm3']) WITH ORDINALITY u(x, n) ORDER BY n$$,
    'one claim of 3 returns the three highest priorities, highest first');
SELECT is((SELECT count(*) FILTER (WHERE dwa.complete(s.run_id, '{}')) FROM dwa.steps s
            WHERE s.task = 'cl.prio' AND s.status = 'running'), 3::bigint, 'those runs complete');
SELECT is((SELECT count(*) FILTER (WHERE dwa.complete(run_id, '{}')) FROM dwa.claim('prio', ARRAY['cl.prio'], 5)),
    1::bigint, 'the last one is claimed and completes');

-- ---------------------------------------------------------------------
-- Type filters.

SELECT is(pg_temp.ready_due(), 0::bigint, 'nothing else is claimable');
INSERT INTO ids SELECT 'ta' || g, dwa.submit('{"type":"cl.ta"}'::jsonb) FROM generate_series(1, 2) g;
INSERT INTO ids SELECT 'tb' || g, dwa.submit('{"type":"cl.tb"}'::jsonb) FROM generate_series(1, 3) g;
SELECT results_eq($$SELECT task, count(*) FROM dwa.claim('typed', ARRAY['cl.ta'], 10) GROUP BY task$$,
    $$VALUES ('cl.ta'::text, 2::bigint)$$, 'a claim for cl.ta gets only the cl.ta steps');
SELECT is((SELECT count(*) FROM dwa.claim('typed', ARRAY['no.such'], 10)), 0::bigint,
    'a claim for a type with no work gets nothing');
SELECT results_eq($$SELECT task, count(*) FROM dwa.claim('typed', ARRAY['cl.ta', 'cl.tb'], 2) GROUP BY task$$,
    $$VALUES ('cl.tb'::text, 2::bigint)$$, 'a claim for several types');
SELECT results_eq($$SELECT task, count(*) FROM dwa.claim('typed', NULL, 10) GROUP BY task$$,
    $$VALUES ('cl.tb'::text, 1::bigint)$$, 'a claim for NULL types takes any type');
SELECT is((SELECT count(*) FILTER (WHERE dwa.complete(s.run_id, '{}')) FROM dwa.steps s
            WHERE s.task IN ('cl.ta', 'cl.tb') AND s.status = 'running'), 5::bigint, 'those runs complete');
SELECT throws_ok($$SELECT * FROM dwa.claim('typed', ARRAY['cl.ta'], 0)$$, '22023',
    'n: must be between 1 and 1000', 'claim: n must be at least 1');
SELECT throws_ok($$SELECT * FROM dwa.claim('typed', ARRAY['cl.ta'], 1, '100 ms')$$, '22023',
    'lease: must be at least 1 second', 'claim: the lease must be at least 1 s');
SELECT throws_ok($$SELECT * FROM dwa.claim('', ARRAY['cl.ta'], 1)$$, '22023',
    'worker: must be a non-empty name', 'claim: the worker needs a name');

-- ---------------------------------------------------------------------
-- Heartbeat.

INSERT INTO ids SELECT 'hb' || g, dwa.submit('{"type":"cl.hb"}'::jsonb) FROM generate_series(1, 3) g;
CREATE TEMP TABLE hb AS SELECT * FROM dwa.claim('hb-worker', ARRAY['cl.hb'], 3, '5 seconds');
SELECT is((SELECT count(*) FROM hb), 3::bigint, 'heartbeat: three runs claimed with a 5 s lease');
SELECT ok(dwa.complete((SELECT max(run_id) FROM hb), '{}'), 'heartbeat: one of them completes');
SELECT is(dwa.heartbeat('hb-worker', (SELECT array_agg(run_id) || ARRAY[-1::bigint] FROM hb), '1 hour'),
    (SELECT array_agg(run_id ORDER BY run_id) FROM hb WHERE run_id < (SELECT max(run_id) FROM hb)),
    'heartbeat returns the run ids still held (not the finished one, not an unknown one)');
SELECT ok((SELECT bool_and(lease_until > now() + interval '59 minutes') FROM dwa.steps
            WHERE run_id IN (SELECT run_id FROM hb) AND status = 'running'),
    'heartbeat extends their leases');
SELECT is(dwa.heartbeat('hb-worker', ARRAY[]::bigint[]), '{}'::bigint[], 'heartbeat of nothing');
SELECT is((SELECT count(*) FILTER (WHERE dwa.complete(run_id, '{}')) FROM hb), 2::bigint,
    'heartbeat: the others complete');

-- ---------------------------------------------------------------------
-- A lost lease: the late completion is refused; _reap requeues the step,
-- keeping the attempt count; a new claim gets a new run id.

INSERT INTO ids SELECT 'lease', dwa.submit('{"type":"cl.lease","payload":{"x":1}}'::jsonb);
CREATE TEMP TABLE lease1 AS SELECT * FROM dwa.claim('slow-worker', ARRAY['cl.lease'], 1, '1 second');
SELECT results_eq($$SELECT attempt, lease_until - now() <= interval '1 second' FROM lease1$$,
    $$VALUES (1, true)$$, 'lease: claimed with a 1 s lease');
DO $$ BEGIN PERFORM pg_sleep(1.1); END $$;
SELECT is(dwa.heartbeat('slow-worker', ARRAY[(SELECT run_id FROM lease1)]), '{}'::bigint[],
    'lease: a heartbeat after the lease ended holds nothing');
SELECT is(dwa.complete((SELECT run_id FROM lease1), '{"late":true}'), false,
    'lease: complete after the lease ended returns false, even before the reaper ran');
SELECT is(dwa.fail((SELECT run_id FROM lease1), 'late'), false, 'lease: so does fail');
SELECT results_eq($$SELECT status, output, attempt FROM dwa.steps WHERE task_id = pg_temp.id('lease')$$,
    $$VALUES ('running'::text, NULL::jsonb, 1)$$, 'lease: ... and nothing changed');
SELECT is(dwa._reap(), 1, 'lease: _reap requeues the expired run');
SELECT results_eq(
    $$SELECT status, attempt, error, lease_until, run_after <= now() FROM dwa.steps WHERE task_id = pg_temp.id('lease')$$,
    $$VALUES ('ready'::text, 1, 'lease expired: the worker stopped renewing it'::text, NULL::timestamptz, true)$$,
    'lease: the step is ready again at once, its attempt kept');
SELECT is(dwa.complete((SELECT run_id FROM lease1), '{"late":true}'), false,
    'lease: complete of the old run after reaping returns false');
SELECT results_eq($$SELECT s.status, s.output, t.status, t.result FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id
                     WHERE t.id = pg_temp.id('lease')$$,
    $$VALUES ('ready'::text, NULL::jsonb, 'running'::text, NULL::jsonb)$$,
    'lease: ... and changes nothing');
SELECT is(dwa._reap(), 0, 'lease: a second _reap finds nothing');
CREATE TEMP TABLE lease2 AS SELECT * FROM dwa.claim('fast-worker', ARRAY['cl.lease'], 1);
SELECT results_eq($$SELECT attempt, input, run_id <> (SELECT run_id FROM lease1) FROM lease2$$,
    $$VALUES (2, '{"x":1}'::jsonb, true)$$, 'lease: reclaimed as attempt 2 under a new run id');
SELECT is(dwa.complete((SELECT run_id FROM lease1), '{"late":true}'), false,
    'lease: the old run is still refused');
SELECT is(dwa.complete((SELECT run_id FROM lease2), '{"on_time":true}'), true, 'lease: the new run completes');
SELECT results_eq($$SELECT status, result FROM dwa.tasks WHERE id = pg_temp.id('lease')$$,
    $$VALUES ('completed'::text, '{"on_time":true}'::jsonb)$$, 'lease: with the new run''s output');

-- ---------------------------------------------------------------------
-- Daemons: one registered by a live session (it holds its advisory lock),
-- one whose session is gone (a row nobody holds a lock for).

SELECT is((SELECT x FROM dblink('b', 'SELECT 1') AS t(x integer)), 1, 'session B is idle');
INSERT INTO ids
SELECT 'live', id FROM dblink('b', $$SELECT dwa._register('daemon-live', 'host-1', 4242, 'test', 4)$$) AS t(id integer);
WITH w AS (INSERT INTO dwa.workers (name, kind, hostname, pid) VALUES ('daemon-dead', 'daemon', 'host-2', 1)
           RETURNING id)
INSERT INTO ids SELECT 'dead', id FROM w;
SELECT ok(EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                     AND l.classid = dwa._lock_class()::oid AND l.objid = pg_temp.id('live')::oid
                     AND l.objsubid = 2),
    'the live daemon holds its advisory lock');
INSERT INTO ids SELECT 'dl' || g, dwa.submit('{"type":"cl.daemon"}'::jsonb) FROM generate_series(1, 4) g;
CREATE TEMP TABLE live_runs AS SELECT * FROM dwa._claim(pg_temp.id('live')::integer, ARRAY['cl.daemon'], 2, '1 hour');
CREATE TEMP TABLE dead_runs AS SELECT * FROM dwa._claim(pg_temp.id('dead')::integer, ARRAY['cl.daemon'], 2, '1 hour');
SELECT is((SELECT count(*) FROM live_runs) + (SELECT count(*) FROM dead_runs), 4::bigint,
    'each daemon holds two runs');
SELECT is(dwa._reap(), 2, '_reap requeues the two runs of the dead daemon');
SELECT results_eq(
    $$SELECT status, attempt, error FROM dwa.steps WHERE id IN (SELECT id FROM dead_runs)$$,
    format($$VALUES ('ready'::text, 1, 'worker %1$s is gone'::text), ('ready', 1, 'worker %1$s is gone')$$,
        pg_temp.id('dead')),
    'the dead daemon''s steps are ready again, attempts kept');
SELECT results_eq($$SELECT status, worker_id FROM dwa.steps WHERE id IN (SELECT id FROM live_runs)$$,
    format($$VALUES ('running'::text, %1$s), ('running', %1$s)$$, pg_temp.id('live')),
    'the live daemon keeps its runs');
SELECT results_eq($$SELECT name FROM dwa.workers WHERE kind = 'daemon' ORDER BY name$$,
    $$VALUES ('daemon-live'::text)$$, 'the dead daemon''s row is gone');
SELECT is((SELECT count(*) FILTER (WHERE dwa.complete(run_id, '{}')) FROM dead_runs), 0::bigint,
    'the dead daemon''s runs cannot complete');

SELECT is(dblink_disconnect('b'), 'OK', 'the live daemon''s session ends');
CREATE FUNCTION pg_temp.wait_unlocked(p_id bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 200 LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'
                          AND l.classid = dwa._lock_class()::oid AND l.objid = p_id::oid) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END
$$;
SELECT ok(pg_temp.wait_unlocked(pg_temp.id('live')), 'its advisory lock is released (within 10 s)');
SELECT is(dwa._reap(), 2, '_reap now requeues its two runs, long before their lease ends');
SELECT results_eq($$SELECT status, attempt FROM dwa.steps WHERE id IN (SELECT id FROM live_runs)$$,
    $$VALUES ('ready'::text, 1), ('ready', 1)$$, 'its steps are ready again');
SELECT is((SELECT count(*) FROM dwa.workers WHERE kind = 'daemon'), 0::bigint, 'no daemon row is left');

-- ---------------------------------------------------------------------
-- _finish_batch: many runs at once; refused run ids come back.

SELECT is((SELECT count(*) FILTER (WHERE dwa.complete(run_id, '{}')) FROM dwa.claim('cleanup', ARRAY['cl.daemon'], 10)),
    4::bigint, 'the daemon steps complete');
INSERT INTO ids SELECT 'b' || g, dwa.submit(jsonb_build_object('type', 'cl.batch', 'payload', jsonb_build_object('g', g)))
  FROM generate_series(1, 4) g;
WITH w AS (INSERT INTO dwa.workers (name, kind) VALUES ('batcher', 'daemon') RETURNING id)
INSERT INTO ids SELECT 'batcher', id FROM w;
CREATE TEMP TABLE batch AS SELECT c.*, p.payload ->> 'g' AS g
  FROM dwa._claim(pg_temp.id('batcher')::integer, ARRAY['cl.batch'], 4, '1 hour') c
  JOIN dwa.tasks p ON p.id = c.task_id;
SELECT is((SELECT count(*) FROM batch), 4::bigint, 'batch: four runs claimed');
SELECT is(dwa._finish_batch(jsonb_build_array(
        (SELECT jsonb_build_object('id', id, 'run', run_id, 'outcome', 'ok', 'output', '{"r":1}'::jsonb) FROM batch WHERE g = '1'),
        (SELECT jsonb_build_object('id', id, 'run', run_id + 100000, 'outcome', 'ok', 'output', '{"r":2}'::jsonb) FROM batch WHERE g = '2'),
        (SELECT jsonb_build_object('id', id, 'run', run_id, 'outcome', 'transient', 'error', 'HTTP 429', 'retryAfterMs', 5000) FROM batch WHERE g = '3'),
        (SELECT jsonb_build_object('id', id, 'run', run_id, 'outcome', 'permanent', 'error', 'HTTP 400') FROM batch WHERE g = '4'))),
    ARRAY[(SELECT run_id + 100000 FROM batch WHERE g = '2')],
    '_finish_batch returns the refused run id, and only it');
SELECT results_eq(
    $$SELECT b.g, s.status, s.output, s.error, s.attempt FROM batch b JOIN dwa.steps s ON s.id = b.id ORDER BY b.g$$,
    $$VALUES ('1'::text, 'succeeded'::text, '{"r":1}'::jsonb, NULL::text, 1),
             ('2', 'running', NULL, NULL, 1),
             ('3', 'ready', NULL, 'HTTP 429', 0),
             ('4', 'failed', NULL, 'HTTP 400', 1)$$,
    '_finish_batch: ok, refused, transient with retryAfterMs, permanent');
SELECT ok((SELECT s.run_after - now() BETWEEN interval '4 s' AND interval '5 s'
             FROM batch b JOIN dwa.steps s ON s.id = b.id WHERE b.g = '3'),
    '_finish_batch: retryAfterMs sets run_after');
SELECT is(dwa._finish_batch(jsonb_build_array(
        (SELECT jsonb_build_object('id', id, 'run', run_id, 'outcome', 'ok', 'output', '{"r":1}'::jsonb) FROM batch WHERE g = '1'),
        (SELECT jsonb_build_object('id', id, 'run', run_id, 'outcome', 'ok', 'output', '{"r":2}'::jsonb) FROM batch WHERE g = '2'))),
    ARRAY[(SELECT run_id FROM batch WHERE g = '1')],
    '_finish_batch: a run finished twice is refused the second time');
SELECT results_eq($$SELECT b.g, s.status, s.output FROM batch b JOIN dwa.steps s ON s.id = b.id WHERE b.g IN ('1', '2') ORDER BY b.g$$,
    $$VALUES ('1'::text, 'succeeded'::text, '{"r":1}'::jsonb), ('2', 'succeeded', '{"r":2}')$$,
    '_finish_batch: the first output stands');

-- ---------------------------------------------------------------------
-- dwad's claim commits asynchronously, and only its own transaction: a
-- worker's claim, and whatever follows, stay synchronous.

INSERT INTO ids SELECT 'async', dwa.submit('{"type": "cl.async"}'::jsonb);
SELECT is(dblink_connect('sc', pg_temp.connstr()), 'OK', 'session C connected');
SELECT results_eq($$SELECT * FROM dblink('sc', $q$
    SELECT (SELECT count(*) FROM dwa._claim_async(1, ARRAY['cl.async'], 5, '30 seconds', NULL, NULL)
             WHERE run_id IS NOT NULL),
           current_setting('synchronous_commit')$q$) AS t(n bigint, sc text)$$,
    $$VALUES (1::bigint, 'off'::text)$$,
    '_claim_async claims with synchronous_commit off in its transaction');
SELECT is((SELECT sc FROM dblink('sc', $q$SELECT current_setting('synchronous_commit')$q$) AS t(sc text)),
    'on', 'and only there: the session is back to on');
SELECT is((pg_temp.step('async')).status, 'running', 'the claim committed');
SELECT is(dblink_disconnect('sc'), 'OK', 'session C done');

SELECT * FROM finish();
