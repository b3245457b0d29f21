-- outbox.sql: the dispatcher's side of the outbox: dwa._outbox_claim (due
-- rows only, SKIP LOCKED between sessions, leases), dwa._outbox_finish
-- (delivered, retried with backoff and jitter or Retry-After, dead after
-- max_attempts or on a permanent error, late outcomes ignored, outcomes
-- counted only for the claim they answer), onProgress deliveries of one
-- effect spaced a second apart and kept in order, dwa._reap handing back
-- the deliveries of expired leases and dead daemons, dwa.outbox_retry
-- (rendering again a row whose templates failed), and the grants.
--
-- No enclosing transaction: the sessions must see each other's commits.
-- The database is thrown away.
CREATE EXTENSION IF NOT EXISTS dblink;
SET statement_timeout = '60s';
SET lock_timeout = '10s';
SELECT plan(123);

INSERT INTO dwa.task_types (name, executor) VALUES ('ob.t', 'worker'), ('ob.p', 'worker');

\ir ../lib/named.sql
CREATE FUNCTION pg_temp.row(p_name text) RETURNS dwa.outbox LANGUAGE sql AS $$
    SELECT * FROM dwa.outbox WHERE id = pg_temp.id(p_name)
$$;
-- mk: an outbox row named p_name, as a lifecycle point would write it.
CREATE FUNCTION pg_temp.mk(p_name text, p_event text DEFAULT 'webhook',
    p_status text DEFAULT 'pending', p_due interval DEFAULT '-1 second',
    p_retry jsonb DEFAULT NULL, p_attempts integer DEFAULT 0, p_max integer DEFAULT 10)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO dwa.outbox (hook, event, effect, status, attempts, max_attempts,
        next_attempt_at, lease_until, worker_id)
    VALUES ('onSuccess', p_event,
        jsonb_build_object('$event', p_event, 'url', 'http://127.0.0.1:9/' || p_name)
            || coalesce(jsonb_build_object('retry', p_retry), '{}'),
        p_status, p_attempts, p_max, now() + p_due,
        CASE WHEN p_status = 'delivering' THEN now() + interval '1 minute' END,
        CASE WHEN p_status = 'delivering' THEN 900000 END)
    RETURNING id INTO v_id;
    INSERT INTO ids VALUES (p_name, v_id);
    RETURN v_id;
END
$$;
-- due: rows any claim could take right now.
CREATE FUNCTION pg_temp.due() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM dwa.outbox WHERE status = 'pending' AND next_attempt_at <= now()
$$;
-- claim_of: the {id, worker, attempt} a dispatcher reports an outcome
-- with: the row's current claim (NULL for an unknown row).
CREATE FUNCTION pg_temp.claim_of(p_id bigint) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('id', id, 'worker', worker_id, 'attempt', attempts)
      FROM dwa.outbox WHERE id = p_id
$$;
-- outcome: an outcome for row p_name under its current claim.
CREATE FUNCTION pg_temp.outcome(p_name text, p_fields jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.claim_of(pg_temp.id(p_name)) || p_fields
$$;
-- delay: how far in the future a row's next attempt is, in seconds, as
-- seen by the statement that calls it.
CREATE FUNCTION pg_temp.delay(p_name text) RETURNS double precision LANGUAGE sql AS $$
    SELECT extract(epoch FROM (pg_temp.row(p_name)).next_attempt_at - now())
$$;

-- ---------------------------------------------------------------------
-- _outbox_claim: due pending rows only, oldest first.

DO $do$ BEGIN
    PERFORM pg_temp.mk('due1', p_due => '-3 seconds');
    PERFORM pg_temp.mk('due2', 'notify', p_due => '-2 seconds');
END $do$;
INSERT INTO ids SELECT 'task', dwa.submit('{"type":"ob.t","onPending":[{"$event":"invalidate","path":"/x"}]}'::jsonb);
INSERT INTO ids SELECT 'fx', id FROM dwa.outbox WHERE task_id = pg_temp.id('task');
UPDATE dwa.outbox SET next_attempt_at = now() - interval '1 second' WHERE id = pg_temp.id('fx');
DO $do$ BEGIN
    PERFORM pg_temp.mk('future', p_due => '1 hour');
    PERFORM pg_temp.mk('enqueue', 'enqueue');
    PERFORM pg_temp.mk('dead', p_status => 'dead');
    PERFORM pg_temp.mk('delivered', p_status => 'delivered');
    PERFORM pg_temp.mk('taken', p_status => 'delivering');
END $do$;
SELECT is(pg_temp.due(), 4::bigint, 'claim: four due pending rows, one of them an enqueue');

CREATE TEMP TABLE c1 AS SELECT * FROM dwa._outbox_claim(7, 2, '30 seconds');
SELECT results_eq($$SELECT id FROM c1$$,
    $$VALUES (pg_temp.id('due1')), (pg_temp.id('due2'))$$,
    'claim: n = 2 gets the two oldest due rows, oldest first');
CREATE TEMP TABLE c2 AS SELECT * FROM dwa._outbox_claim(7, 10, '30 seconds');
SELECT results_eq($$SELECT id, delivery_id, task_id, hook, event, effect, attempts, max_attempts FROM c2$$,
    $$SELECT id, delivery_id, task_id, hook, event, effect, 1, 10 FROM dwa.outbox WHERE id = pg_temp.id('fx')$$,
    'claim: the next claim gets the effect fired by a task, with its columns; not the enqueue row');
SELECT is((SELECT count(*) FROM dwa._outbox_claim(7, 10, '30 seconds')), 0::bigint,
    'claim: then nothing is left to claim');
SELECT results_eq(
    $$SELECT status, attempts, worker_id, lease_until > now() + interval '29 seconds'
             AND lease_until <= now() + interval '30 seconds'
        FROM dwa.outbox WHERE id IN (pg_temp.id('due1'), pg_temp.id('due2'), pg_temp.id('fx')) ORDER BY id$$,
    $$VALUES ('delivering'::text, 1, 7, true), ('delivering', 1, 7, true), ('delivering', 1, 7, true)$$,
    'claim: claimed rows are delivering, attempt 1, held by the worker under a 30 s lease');
SELECT results_eq(
    $$SELECT status, attempts, lease_until IS NULL FROM dwa.outbox
       WHERE id IN (pg_temp.id('future'), pg_temp.id('enqueue'), pg_temp.id('dead'), pg_temp.id('delivered'))
       ORDER BY id$$,
    $$VALUES ('pending'::text, 0, true), ('pending', 0, true), ('dead', 0, true), ('delivered', 0, true)$$,
    'claim: a row due later, an enqueue row, dead and delivered rows are left alone');
SELECT results_eq($$SELECT status, attempts, worker_id FROM dwa.outbox WHERE id = pg_temp.id('taken')$$,
    $$VALUES ('delivering'::text, 0, 900000)$$, 'claim: a row under another lease is left alone');
SELECT is(dwa._outbox_finish((SELECT jsonb_agg(pg_temp.claim_of(id) || '{"ok":true}') FROM c1)), 2,
    'finish: two deliveries reported ok');
SELECT results_eq(
    $$SELECT status, delivered_at IS NOT NULL, last_error, lease_until FROM dwa.outbox
       WHERE id IN (SELECT id FROM c1)$$,
    $$VALUES ('delivered'::text, true, NULL::text, NULL::timestamptz), ('delivered', true, NULL, NULL)$$,
    'finish: ok -> delivered, delivered_at set, no error, no lease');
UPDATE dwa.outbox SET status = 'delivered' WHERE id IN (pg_temp.id('fx'), pg_temp.id('taken'));
DELETE FROM dwa.outbox WHERE id = pg_temp.id('enqueue');

-- ---------------------------------------------------------------------
-- Two sessions: A claims 5 of 20 in an open transaction; B, asking for
-- 20, skips A's locked rows and gets the other 15 without waiting.

SELECT is(pg_temp.due(), 0::bigint, 'sessions: nothing else is due');
DO $do$ BEGIN
    PERFORM pg_temp.mk('conc' || g) FROM generate_series(1, 20) g;
END $do$;
SELECT is(dblink_connect('a', pg_temp.connstr()), 'OK', 'session A connected');
SELECT is(dblink_exec('a', 'BEGIN'), 'BEGIN', 'session A opens a transaction');
CREATE TEMP TABLE a_claims AS
SELECT * FROM dblink('a', $$SELECT id, delivery_id FROM dwa._outbox_claim(1, 5, '30 seconds')$$)
    AS t(id bigint, delivery_id uuid);
SELECT is((SELECT count(*) FROM a_claims), 5::bigint, 'session A claims 5 (not committed)');
CREATE TEMP TABLE b_claims AS SELECT id, delivery_id FROM dwa._outbox_claim(2, 20, '30 seconds');
SELECT is((SELECT count(*) FROM b_claims), 15::bigint, 'session B, asking for 20, gets the 15 others');
SELECT is((SELECT count(*) FROM a_claims JOIN b_claims USING (id)), 0::bigint, 'no row claimed by both');
SELECT is(dblink_exec('a', 'COMMIT'), 'COMMIT', 'session A commits');
SELECT results_eq($$SELECT worker_id, count(*), min(attempts), max(attempts) FROM dwa.outbox
                     WHERE status = 'delivering' GROUP BY worker_id ORDER BY worker_id$$,
    $$VALUES (1, 5::bigint, 1, 1), (2, 15::bigint, 1, 1)$$,
    'sessions: each row is delivering once, held by the session that claimed it');
UPDATE dwa.outbox SET status = 'delivered' WHERE status = 'delivering';

-- Two sessions released at once, each asking for 50 of 60 rows.
DO $do$ BEGIN
    PERFORM pg_temp.mk('race' || g) FROM generate_series(1, 60) g;
END $do$;
CREATE FUNCTION public.race_claim(p_worker integer) RETURNS TABLE (id bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock_shared(4343);    -- the starting gate
    PERFORM pg_advisory_unlock_shared(4343);
    RETURN QUERY SELECT c.id FROM dwa._outbox_claim(p_worker, 50, '30 seconds') c;
END
$$;
SELECT is(dblink_connect('b', pg_temp.connstr()), 'OK', 'session B connected');
SELECT ok(pg_try_advisory_lock(4343), 'the gate is closed');
SELECT is(dblink_send_query('a', 'SELECT * FROM public.race_claim(11)')
        + dblink_send_query('b', 'SELECT * FROM public.race_claim(12)'), 2, 'two claims sent');
DO $$ BEGIN PERFORM pg_sleep(0.3); END $$;
SELECT ok(pg_advisory_unlock(4343), 'the gate opens');
CREATE TEMP TABLE race AS
SELECT 11 AS w, * FROM dblink_get_result('a') AS t(id bigint)
UNION ALL SELECT 12, * FROM dblink_get_result('b') AS t(id bigint);
SELECT is((SELECT count(*) FROM dblink_get_result('a') AS t(id bigint))
        + (SELECT count(*) FROM dblink_get_result('b') AS t(id bigint)), 0::bigint,
    'the race: both claims are done');
SELECT results_eq($$SELECT count(*), count(DISTINCT id) FROM race$$, $$VALUES (60::bigint, 60::bigint)$$,
    'the race: all 60 rows claimed, none twice');
SELECT results_eq($$SELECT r.w, o.worker_id, o.attempts FROM race r JOIN dwa.outbox o USING (id)
                     GROUP BY 1, 2, 3 ORDER BY 1$$,
    $$VALUES (11, 11, 1), (12, 12, 1)$$,
    'the race: each row is held by the session that got it, attempt 1');
UPDATE dwa.outbox SET status = 'delivered' WHERE status = 'delivering';

-- A row changed after a claim began and before the claim locks it (a
-- progress report coalesced into it, committed meanwhile) is claimed all
-- the same, at its new version.  Session C's claim is paused in the middle
-- of its scan by an operator of its own for text <> (schema ob_pause,
-- first in C's search path), which waits for lock 4344 held here.
SELECT is(pg_temp.due(), 0::bigint, 'moved: nothing else is due');
SELECT ok(pg_temp.mk('moved') IS NOT NULL, 'moved: a pending row, due');
CREATE SCHEMA ob_pause;
CREATE FUNCTION ob_pause.ne(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock_shared(4344);
    PERFORM pg_advisory_unlock_shared(4344);
    RETURN a OPERATOR(pg_catalog.<>) b;
END
$$;
CREATE OPERATOR ob_pause.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = ob_pause.ne);
SELECT is(dblink_connect('c', pg_temp.connstr()), 'OK', 'session C connected');
SELECT is(dblink_exec('c', 'SET search_path = ob_pause, pg_catalog, public'), 'SET',
    'session C compares text with the pausing operator');
SELECT ok(pg_try_advisory_lock(4344), 'the pause is on');
SELECT is(dblink_send_query('c',
        $$SELECT id, attempts, effect ->> 'url' FROM dwa._outbox_claim(41, 10, '30 seconds')$$),
    1, 'session C claims');
CREATE FUNCTION pg_temp.paused() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 200 LOOP
        IF EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objid = 4344
                      AND NOT l.granted) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.025);
    END LOOP;
    RETURN false;
END
$$;
SELECT ok(pg_temp.paused(), 'its claim waits in the middle of its scan');
UPDATE dwa.outbox SET effect = jsonb_set(effect, '{url}', '"http://127.0.0.1:9/moved-2"')
 WHERE id = pg_temp.id('moved');
SELECT ok(pg_advisory_unlock(4344), 'the row changed and committed; the pause is off');
SELECT results_eq(
    $$SELECT * FROM dblink_get_result('c') AS t(id bigint, attempts integer, url text)$$,
    format($$VALUES (%s::bigint, 1, 'http://127.0.0.1:9/moved-2'::text)$$, pg_temp.id('moved')),
    'moved: the claim returns the row as it is now, attempt 1');
SELECT is((SELECT count(*) FROM dblink_get_result('c') AS t(id bigint, attempts integer, url text)),
    0::bigint, 'moved: the claim is done');
SELECT results_eq($$SELECT status, worker_id, attempts FROM dwa.outbox WHERE id = pg_temp.id('moved')$$,
    $$VALUES ('delivering'::text, 41, 1)$$, 'moved: the row is delivering under that claim');
SELECT dblink_disconnect('c');
DROP OPERATOR ob_pause.<> (text, text);
DROP FUNCTION ob_pause.ne(text, text);
DROP SCHEMA ob_pause;
UPDATE dwa.outbox SET status = 'delivered' WHERE status = 'delivering';

-- ---------------------------------------------------------------------
-- _outbox_finish: retries with backoff and jitter, Retry-After, dead.

SELECT is(pg_temp.due(), 0::bigint, 'finish: nothing else is due');
DO $do$ BEGIN
    PERFORM pg_temp.mk('r3', p_status => 'delivering', p_attempts => 3,
        p_retry => '{"backoff":{"initialMs":1000,"factor":2,"maxMs":60000}}');
    PERFORM pg_temp.mk('cap', p_status => 'delivering', p_attempts => 8,
        p_retry => '{"attempts":20,"backoff":{"initialMs":1000,"factor":3,"maxMs":5000}}', p_max => 20);
    PERFORM pg_temp.mk('dflt', p_status => 'delivering', p_attempts => 1);
    PERFORM pg_temp.mk('after', p_status => 'delivering', p_attempts => 1);
    PERFORM pg_temp.mk('after-small', p_status => 'delivering', p_attempts => 3,
        p_retry => '{"backoff":{"initialMs":1000}}');
    PERFORM pg_temp.mk('last', p_status => 'delivering', p_attempts => 3, p_max => 3);
    PERFORM pg_temp.mk('perm', p_status => 'delivering', p_attempts => 1);
    PERFORM pg_temp.mk('jit' || g, p_status => 'delivering', p_attempts => 2,
        p_retry => '{"backoff":{"initialMs":10000,"factor":2}}') FROM generate_series(1, 20) g;
END $do$;

BEGIN;
SELECT is(dwa._outbox_finish(jsonb_build_array(
        pg_temp.outcome('r3', jsonb_build_object('ok', false, 'error', 'HTTP 503', 'retryable', true)),
        pg_temp.outcome('cap', jsonb_build_object('ok', false, 'error', 'timeout', 'retryable', true)),
        pg_temp.outcome('dflt', jsonb_build_object('ok', false, 'error', 'connection refused', 'retryable', true,
            'retryAfterMs', NULL)),
        pg_temp.outcome('after', jsonb_build_object('ok', false, 'error', 'HTTP 429', 'retryable', true,
            'retryAfterMs', 60000)),
        pg_temp.outcome('after-small', jsonb_build_object('ok', false, 'error', 'HTTP 429', 'retryable', true,
            'retryAfterMs', 10)),
        pg_temp.outcome('last', jsonb_build_object('ok', false, 'error', 'HTTP 502', 'retryable', true)),
        pg_temp.outcome('perm', jsonb_build_object('ok', false, 'error', 'HTTP 404', 'retryable', false)))),
    7, 'finish: seven failures recorded');
SELECT results_eq(
    $$SELECT (pg_temp.row(x)).status, (pg_temp.row(x)).last_error, (pg_temp.row(x)).attempts,
             (pg_temp.row(x)).lease_until, (pg_temp.row(x)).delivered_at
        FROM unnest(ARRAY['r3', 'cap', 'dflt', 'after', 'after-small', 'last', 'perm']) WITH ORDINALITY u(x, n)
       ORDER BY n$$,
    $$VALUES ('pending'::text, 'HTTP 503'::text, 3, NULL::timestamptz, NULL::timestamptz),
             ('pending', 'timeout', 8, NULL, NULL),
             ('pending', 'connection refused', 1, NULL, NULL),
             ('pending', 'HTTP 429', 1, NULL, NULL),
             ('pending', 'HTTP 429', 3, NULL, NULL),
             ('dead', 'HTTP 502', 3, NULL, NULL),
             ('dead', 'HTTP 404', 1, NULL, NULL)$$,
    'finish: retryable -> pending with the error; out of attempts or permanent -> dead, the last error kept');
SELECT ok(pg_temp.delay('r3') BETWEEN 2 AND 4,
    'finish: after attempt 3, initialMs 1000 and factor 2, the next attempt is 2-4 s away (4 s with jitter)');
SELECT ok(pg_temp.delay('cap') BETWEEN 2.5 AND 5, 'finish: the backoff stops at maxMs (5 s, with jitter 2.5-5 s)');
SELECT ok(pg_temp.delay('dflt') BETWEEN 0.5 AND 1, 'finish: by default the first retry is 0.5-1 s away');
SELECT is(pg_temp.delay('after'), 60::double precision, 'finish: a larger retryAfterMs is honoured exactly');
SELECT ok(pg_temp.delay('after-small') BETWEEN 2 AND 4, 'finish: a smaller retryAfterMs gives way to the backoff');
SELECT ok(pg_temp.delay('last') < 0 AND pg_temp.delay('perm') < 0, 'finish: dead rows get no next attempt');
SELECT is(dwa._outbox_finish((SELECT jsonb_agg(pg_temp.claim_of(id) || jsonb_build_object('ok', false,
        'error', 'HTTP 500', 'retryable', true)) FROM dwa.outbox WHERE id IN (SELECT id FROM ids WHERE name LIKE 'jit%'))), 20,
    'finish: twenty rows fail after their second attempt');
SELECT results_eq(
    $$SELECT min(extract(epoch FROM next_attempt_at - now())) >= 10, max(extract(epoch FROM next_attempt_at - now())) <= 20,
             count(DISTINCT next_attempt_at) > 10
        FROM dwa.outbox WHERE id IN (SELECT id FROM ids WHERE name LIKE 'jit%')$$,
    $$VALUES (true, true, true)$$,
    'finish: backoff 20 s with jitter: every delay within 10-20 s, and they differ');
COMMIT;

SELECT is(dwa._outbox_finish(jsonb_build_array(
        pg_temp.outcome('r3', '{"ok":true}'),
        pg_temp.outcome('perm', '{"ok":true}'),
        pg_temp.outcome('due1', '{"ok":false,"error":"late","retryable":false}'),
        jsonb_build_object('id', -1, 'ok', true))), 0,
    'finish: outcomes for rows no longer delivering (pending, dead, delivered, unknown) change nothing');
SELECT results_eq(
    $$SELECT (pg_temp.row(x)).status, (pg_temp.row(x)).last_error FROM unnest(ARRAY['r3', 'perm', 'due1']) WITH ORDINALITY u(x, n)
       ORDER BY n$$,
    $$VALUES ('pending'::text, 'HTTP 503'::text), ('dead', 'HTTP 404'), ('delivered', NULL)$$,
    'finish: ... they keep their state');
DO $do$ BEGIN
    PERFORM pg_temp.mk('blank', p_status => 'delivering', p_attempts => 1);
END $do$;
SELECT is(dwa._outbox_finish(jsonb_build_array(pg_temp.outcome('blank', '{"ok":false}'))), 1,
    'finish: a failure without error nor retryable');
SELECT results_eq($$SELECT status, last_error FROM dwa.outbox WHERE id = pg_temp.id('blank')$$,
    $$VALUES ('dead'::text, 'delivery failed'::text)$$, 'finish: ... is dead, with a generic error');
UPDATE dwa.outbox SET status = 'delivered' WHERE status = 'pending';

-- ---------------------------------------------------------------------
-- _outbox_finish counts an outcome only for the claim it answers: the
-- daemon and the attempt.

SELECT is(pg_temp.due(), 0::bigint, 'claims: nothing else is due');
DO $do$ BEGIN
    PERFORM pg_temp.mk('cut');
END $do$;
SELECT results_eq($$SELECT id, attempts FROM dwa._outbox_claim(21, 1, '30 seconds')$$,
    $$VALUES (pg_temp.id('cut'), 1)$$, 'claims: daemon 21 claims a row, attempt 1');
CREATE TEMP TABLE stale AS
SELECT 'cut'::text AS name, pg_temp.outcome('cut', '{"ok":false,"error":"HTTP 404","retryable":false}') AS o;
-- Daemon 21 is cut off for longer than its lease: a reaper hands the row
-- back and daemon 22 claims it.
UPDATE dwa.outbox SET lease_until = now() - interval '1 second' WHERE id = pg_temp.id('cut');
SELECT is(dwa._reap(), 0, 'claims: the reaper runs');
SELECT results_eq($$SELECT id, attempts FROM dwa._outbox_claim(22, 1, '30 seconds')$$,
    $$VALUES (pg_temp.id('cut'), 2)$$, 'claims: daemon 22 claims the reaped row, attempt 2');
SELECT is(dwa._outbox_finish(jsonb_build_array((SELECT o FROM stale WHERE name = 'cut'))), 0,
    'claims: daemon 21''s late outcome (a 404) changes nothing');
SELECT is(dwa._outbox_finish(jsonb_build_array(pg_temp.outcome('cut', '{"attempt":1,"ok":true}'))), 0,
    'claims: ... nor does daemon 22 naming attempt 1');
SELECT is(dwa._outbox_finish(jsonb_build_array(jsonb_build_object('id', pg_temp.id('cut'), 'ok', true))), 0,
    'claims: ... nor an outcome naming no claim');
SELECT results_eq($$SELECT status, worker_id, attempts, lease_until > now(), last_error
                      FROM dwa.outbox WHERE id = pg_temp.id('cut')$$,
    $$VALUES ('delivering'::text, 22, 2, true, 'lease expired during delivery'::text)$$,
    'claims: the row is still delivering under daemon 22''s claim');
SELECT is(dwa._outbox_finish(jsonb_build_array(pg_temp.outcome('cut', '{"ok":true}'))), 1,
    'claims: daemon 22''s outcome counts');
SELECT results_eq($$SELECT status, attempts, last_error FROM dwa.outbox WHERE id = pg_temp.id('cut')$$,
    $$VALUES ('delivered'::text, 2, NULL::text)$$, 'claims: ... the row is delivered');

-- The same daemon claims a row it lost: its first claim's outcome is stale.
DO $do$ BEGIN
    PERFORM pg_temp.mk('again');
END $do$;
SELECT results_eq($$SELECT id, attempts FROM dwa._outbox_claim(21, 1, '30 seconds')$$,
    $$VALUES (pg_temp.id('again'), 1)$$, 'claims: daemon 21 claims another row');
INSERT INTO stale SELECT 'again', pg_temp.outcome('again', '{"ok":false,"error":"HTTP 410","retryable":false}');
UPDATE dwa.outbox SET lease_until = now() - interval '1 second' WHERE id = pg_temp.id('again');
SELECT is(dwa._reap(), 0, 'claims: the reaper hands it back');
SELECT results_eq($$SELECT id, attempts FROM dwa._outbox_claim(21, 1, '30 seconds')$$,
    $$VALUES (pg_temp.id('again'), 2)$$, 'claims: daemon 21 claims it again, attempt 2');
SELECT is(dwa._outbox_finish(jsonb_build_array((SELECT o FROM stale WHERE name = 'again'))), 0,
    'claims: the outcome of its first claim changes nothing');
SELECT is(dwa._outbox_finish(jsonb_build_array(pg_temp.outcome('again', '{"ok":true}'))), 1,
    'claims: the outcome of its second claim counts');

-- A lease that ran out with no reaper yet: nobody else claimed the row,
-- so the outcome is still the truth about it (refusing it would only
-- deliver again).
DO $do$ BEGIN
    PERFORM pg_temp.mk('late');
END $do$;
SELECT results_eq($$SELECT id, attempts FROM dwa._outbox_claim(23, 1, '30 seconds')$$,
    $$VALUES (pg_temp.id('late'), 1)$$, 'claims: daemon 23 claims a row');
UPDATE dwa.outbox SET lease_until = now() - interval '1 second' WHERE id = pg_temp.id('late');
SELECT is(dwa._outbox_finish(jsonb_build_array(pg_temp.outcome('late', '{"ok":true}'))), 1,
    'claims: its outcome after the lease ran out, before any reaper, counts');
SELECT results_eq($$SELECT (pg_temp.row(x)).status FROM unnest(ARRAY['cut', 'again', 'late']) x$$,
    $$VALUES ('delivered'::text), ('delivered'), ('delivered')$$, 'claims: all three are delivered');

-- ---------------------------------------------------------------------
-- onProgress: deliveries of one effect of a task go one at a time, in
-- order, a second apart, the last value winning.

INSERT INTO ids SELECT 'ptask', dwa.submit($${"type":"ob.p",
    "onProgress":[{"$event":"webhook","url":"http://127.0.0.1:9/p","body":{"p":"{{progress}}"}}]}$$::jsonb);
CREATE TEMP TABLE prun AS SELECT run_id FROM dwa.claim('ob-w', ARRAY['ob.p'], 1);
-- report: a progress report of the task's run.
CREATE FUNCTION pg_temp.report(p numeric) RETURNS boolean LANGUAGE sql AS $$
    SELECT dwa.progress((SELECT run_id FROM prun), p)
$$;
-- prog: the task's onProgress rows, oldest first: "status value, ...".
CREATE FUNCTION pg_temp.prog() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(status || ' ' || (effect #>> '{body,p}'), ', ' ORDER BY id)
      FROM dwa.outbox WHERE task_id = pg_temp.id('ptask')
$$;
-- prow: the task's nth onProgress row.
CREATE FUNCTION pg_temp.prow(n integer) RETURNS dwa.outbox LANGUAGE sql AS $$
    SELECT * FROM dwa.outbox WHERE task_id = pg_temp.id('ptask') ORDER BY id OFFSET n - 1 LIMIT 1
$$;
-- pdue: make the task's pending onProgress rows due, as time would.
CREATE FUNCTION pg_temp.pdue() RETURNS void LANGUAGE sql AS $$
    UPDATE dwa.outbox SET next_attempt_at = now() - interval '1 millisecond'
     WHERE task_id = pg_temp.id('ptask') AND status = 'pending'
$$;
-- pdelay: how far in the future the nth row's next attempt is, in seconds.
CREATE FUNCTION pg_temp.pdelay(n integer) RETURNS double precision LANGUAGE sql AS $$
    SELECT extract(epoch FROM (pg_temp.prow(n)).next_attempt_at - now())
$$;
-- pclaim: claim what is due, as daemon 31: "id:attempt value, ..." (or '-').
CREATE FUNCTION pg_temp.pclaim() RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(c.attempts || ' ' || (c.effect #>> '{body,p}'), ', ' ORDER BY c.id), '-')
      FROM dwa._outbox_claim(31, 10, '30 seconds') c
$$;
-- pend: record outcome p_fields for the nth row, under its claim.
CREATE FUNCTION pg_temp.pend(n integer, p_fields jsonb) RETURNS integer LANGUAGE sql AS $$
    SELECT dwa._outbox_finish(jsonb_build_array(pg_temp.claim_of((pg_temp.prow(n)).id) || p_fields))
$$;

SELECT is(pg_temp.due(), 0::bigint, 'progress: nothing else is due');
SELECT ok(pg_temp.report(10), 'progress: a report');
SELECT is(pg_temp.pclaim(), '1 10', 'progress: its delivery is claimed at once');
SELECT ok(pg_temp.report(20) AND pg_temp.report(30), 'progress: two reports while it is in flight');
SELECT results_eq($$SELECT pg_temp.prog(), pg_temp.pdelay(2) BETWEEN 0.5 AND 1$$,
    $$VALUES ('delivering 10, pending 30'::text, true)$$,
    'progress: one new row, with the last value, due in a second');
SELECT pg_temp.pdue();
SELECT is(pg_temp.pclaim(), '-', 'progress: while the first is in flight, the next is not claimed');
SELECT results_eq($$SELECT pg_temp.prog(), pg_temp.pdelay(2) BETWEEN 0.5 AND 1$$,
    $$VALUES ('delivering 10, pending 30'::text, true)$$, 'progress: ... but looked at again a second later');
SELECT is(pg_temp.pend(1, '{"ok":true}'), 1, 'progress: the first is delivered');
SELECT pg_temp.pdue();
SELECT is(pg_temp.pclaim(), '-', 'progress: the next is not claimed within a second of that');
SELECT results_eq(
    $$SELECT pg_temp.prog(), (pg_temp.prow(2)).next_attempt_at = (pg_temp.prow(1)).delivered_at + interval '1 second'$$,
    $$VALUES ('delivered 10, pending 30'::text, true)$$,
    'progress: ... but due a second after the first was delivered');
UPDATE dwa.outbox SET delivered_at = delivered_at - interval '1 second' WHERE id = (pg_temp.prow(1)).id;
SELECT pg_temp.pdue();
SELECT is(pg_temp.pclaim(), '1 30', 'progress: a second later it is claimed');

SELECT ok(pg_temp.report(40), 'progress: a report while it is in flight');
SELECT is(pg_temp.pend(2, '{"ok":false,"error":"HTTP 503","retryable":true}'), 1,
    'progress: the delivery fails, to be retried');
SELECT pg_temp.pdue();
SELECT is(pg_temp.pclaim(), '2 30', 'progress: the retry is claimed; the newer row is not');
SELECT results_eq($$SELECT pg_temp.prog(), pg_temp.pdelay(3) BETWEEN 0.5 AND 1$$,
    $$VALUES ('delivered 10, delivering 30, pending 40'::text, true)$$,
    'progress: the newer row waits behind the retry, so nothing overtakes it');
SELECT is(pg_temp.pend(2, '{"ok":false,"error":"HTTP 503","retryable":true}'), 1,
    'progress: the retry fails, to be retried again');
SELECT ok(pg_temp.report(50), 'progress: a report meanwhile');
SELECT results_eq($$SELECT pg_temp.prog(), (pg_temp.prow(2)).next_attempt_at > now()$$,
    $$VALUES ('delivered 10, pending 30, pending 50'::text, true)$$, 'progress: ... goes to the newer row');
UPDATE dwa.outbox SET next_attempt_at = now() - interval '1 millisecond' WHERE id = (pg_temp.prow(3)).id;
SELECT is(pg_temp.pclaim(), '-', 'progress: the newer row is not claimed while the retry waits');
SELECT ok((pg_temp.prow(3)).next_attempt_at = (pg_temp.prow(2)).next_attempt_at + interval '1 second',
    'progress: ... it is due a second after the retry');
SELECT pg_temp.pdue();
SELECT is(pg_temp.pclaim(), '3 30', 'progress: the retry is claimed');
SELECT is(pg_temp.pend(2, '{"ok":false,"error":"HTTP 404","retryable":false}'), 1,
    'progress: and fails for good');
SELECT pg_temp.pdue();
SELECT is(pg_temp.pclaim(), '1 50', 'progress: after a dead delivery the next goes at once');
SELECT is(pg_temp.pend(3, '{"ok":true}'), 1, 'progress: and is delivered');
SELECT ok(pg_temp.report(60), 'progress: a report after that');
SELECT results_eq(
    $$SELECT pg_temp.prog(), (pg_temp.prow(4)).next_attempt_at = (pg_temp.prow(3)).delivered_at + interval '1 second'$$,
    $$VALUES ('delivered 10, dead 30, delivered 50, pending 60'::text, true)$$,
    'progress: a new row, due a second after the last delivery');
SELECT ok(dwa.complete((SELECT run_id FROM prun), '{}'), 'progress: the task completes');
UPDATE dwa.outbox SET status = 'delivered' WHERE status = 'pending';

-- ---------------------------------------------------------------------
-- _reap: deliveries of expired leases and dead daemons go back to pending.

SELECT is(pg_temp.due(), 0::bigint, 'reap: nothing is due');
INSERT INTO ids
SELECT 'live', id FROM dblink('b', $$SELECT dwa._register('daemon-live', 'host-1', 4242, 'test', 4)$$) AS t(id integer);
WITH w AS (INSERT INTO dwa.workers (name, kind) VALUES ('daemon-dead', 'daemon') RETURNING id)
INSERT INTO ids SELECT 'deadd', id FROM w;
DO $do$ BEGIN
    PERFORM pg_temp.mk('expired', p_status => 'delivering', p_attempts => 2);
END $do$;
UPDATE dwa.outbox SET lease_until = now() - interval '1 second', worker_id = pg_temp.id('live')
 WHERE id = pg_temp.id('expired');
DO $do$ BEGIN
    PERFORM pg_temp.mk('orphan', p_status => 'delivering', p_attempts => 1);
END $do$;
UPDATE dwa.outbox SET worker_id = pg_temp.id('deadd') WHERE id = pg_temp.id('orphan');
DO $do$ BEGIN
    PERFORM pg_temp.mk('held', p_status => 'delivering', p_attempts => 1);
END $do$;
UPDATE dwa.outbox SET worker_id = pg_temp.id('live') WHERE id = pg_temp.id('held');
SELECT is(dwa._reap(), 0, 'reap: no run to requeue');
SELECT results_eq(
    $$SELECT (pg_temp.row(x)).status, (pg_temp.row(x)).attempts, (pg_temp.row(x)).lease_until,
             (pg_temp.row(x)).next_attempt_at <= now(), (pg_temp.row(x)).last_error
        FROM unnest(ARRAY['expired', 'orphan']) WITH ORDINALITY u(x, n) ORDER BY n$$,
    format($$VALUES ('pending'::text, 2, NULL::timestamptz, true, 'lease expired during delivery'::text),
                    ('pending', 1, NULL, true, 'worker %s is gone')$$, pg_temp.id('deadd')),
    'reap: an expired lease and a dead daemon''s row are pending again at once, their attempts kept');
SELECT results_eq($$SELECT status, worker_id FROM dwa.outbox WHERE id = pg_temp.id('held')$$,
    format($$VALUES ('delivering'::text, %s)$$, pg_temp.id('live')),
    'reap: a live daemon keeps its delivery under lease');
SELECT results_eq($$SELECT id, attempts FROM dwa._outbox_claim(3, 10, '30 seconds') ORDER BY id$$,
    $$VALUES (pg_temp.id('expired'), 3), (pg_temp.id('orphan'), 2)$$,
    'reap: the reaped rows are claimed again, as their next attempt');
SELECT is(dwa._outbox_finish((SELECT jsonb_agg(pg_temp.claim_of(id) || '{"ok":true}') FROM dwa.outbox
                               WHERE worker_id = 3 AND status = 'delivering')), 2,
    'reap: and delivered');

-- ---------------------------------------------------------------------
-- outbox_retry.

DO $do$ BEGIN
    PERFORM pg_temp.mk('dead2', p_status => 'dead', p_attempts => 10);
END $do$;
UPDATE dwa.outbox SET last_error = 'HTTP 500' WHERE id = pg_temp.id('dead2');
DO $do$ BEGIN
    PERFORM pg_temp.mk('dead-enq', 'enqueue', 'dead');
END $do$;
CREATE TEMP TABLE before_retry AS SELECT * FROM dwa.outbox WHERE id = pg_temp.id('dead2');
SELECT is(dwa.outbox_retry(pg_temp.id('dead2')), true, 'outbox_retry of a dead row');
SELECT results_eq(
    $$SELECT status, attempts, next_attempt_at <= now(), delivery_id, last_error FROM dwa.outbox
       WHERE id = pg_temp.id('dead2')$$,
    $$SELECT 'pending'::text, 0, true, delivery_id, 'HTTP 500'::text FROM before_retry$$,
    'outbox_retry: pending again, attempts 0, due now, same delivery id');
SELECT results_eq($$SELECT id, attempts FROM dwa._outbox_claim(4, 10, '30 seconds')$$,
    $$VALUES (pg_temp.id('dead2'), 1)$$, 'outbox_retry: the row is claimed again');
SELECT throws_ok(format('SELECT dwa.outbox_retry(%s)', pg_temp.id('dead2')), '55000',
    format('outbox row %s is delivering: only dead rows can be retried', pg_temp.id('dead2')),
    'outbox_retry of a row being delivered');
SELECT throws_ok(format('SELECT dwa.outbox_retry(%s)', pg_temp.id('delivered')), '55000',
    format('outbox row %s is delivered: only dead rows can be retried', pg_temp.id('delivered')),
    'outbox_retry of a delivered row');
SELECT throws_ok(format('SELECT dwa.outbox_retry(%s)', pg_temp.id('dead-enq')), '55000',
    format('outbox row %s is a dead enqueue effect: only webhook, notify and invalidate deliveries can be retried',
        pg_temp.id('dead-enq')),
    'outbox_retry of a dead enqueue');
SELECT throws_ok('SELECT dwa.outbox_retry(987654321)', 'P0002', 'outbox row 987654321 not found',
    'outbox_retry of an unknown row');
SELECT results_eq($$SELECT status FROM dwa.outbox WHERE id IN (pg_temp.id('delivered'), pg_temp.id('dead-enq')) ORDER BY id$$,
    $$VALUES ('delivered'::text), ('dead')$$, 'outbox_retry: the refused rows are unchanged');

-- A dead row never attempted: its templates failed when the task fired it,
-- and it holds the effect as written.  Retrying renders it again from the
-- task as it is now.
INSERT INTO ids SELECT 'rf', dwa.submit($${"type":"ob.p",
    "onSuccess":[{"$event":"webhook","url":"http://127.0.0.1:9/rf/{{task.id}}","body":{"x":"{{result.nope}}"}}]}$$::jsonb);
SELECT ok(dwa.complete((SELECT run_id FROM dwa.claim('ob-w', ARRAY['ob.p'], 1)), '{"a":1}'),
    'outbox_retry: a task whose onSuccess template has no value completes');
INSERT INTO ids SELECT 'rfrow', id FROM dwa.outbox WHERE task_id = pg_temp.id('rf');
CREATE TEMP TABLE rf_before AS SELECT * FROM dwa.outbox WHERE id = pg_temp.id('rfrow');
SELECT results_eq($$SELECT status, attempts, effect, last_error FROM rf_before$$,
    $$VALUES ('dead'::text, 0,
              '{"$event":"webhook","url":"http://127.0.0.1:9/rf/{{task.id}}","body":{"x":"{{result.nope}}"}}'::jsonb,
              'onSuccess[0]: template "{{result.nope}}" has no value'::text)$$,
    'outbox_retry: its row is dead, never attempted, the effect as written');
SELECT throws_ok(format('SELECT dwa.outbox_retry(%s)', pg_temp.id('rfrow')), '22023',
    format('outbox row %s cannot be rendered from task %s: onSuccess[0]: template "{{result.nope}}" has no value',
        pg_temp.id('rfrow'), pg_temp.id('rf')),
    'outbox_retry of a row whose templates still have no value says why');
SELECT results_eq($$SELECT status, attempts, effect, last_error, next_attempt_at, delivery_id
                      FROM dwa.outbox WHERE id = pg_temp.id('rfrow')$$,
    $$SELECT status, attempts, effect, last_error, next_attempt_at, delivery_id FROM rf_before$$,
    'outbox_retry: ... and leaves the row as it was: dead, unrendered');
SELECT is((SELECT count(*) FROM dwa._outbox_claim(41, 10, '30 seconds')), 0::bigint,
    'outbox_retry: ... nothing to deliver');
UPDATE dwa.tasks SET result = '{"a":1,"nope":5}' WHERE id = pg_temp.id('rf');
SELECT is(dwa.outbox_retry(pg_temp.id('rfrow')), true, 'outbox_retry once the task has the value');
SELECT results_eq($$SELECT status, attempts, effect, delivery_id, next_attempt_at <= now()
                      FROM dwa.outbox WHERE id = pg_temp.id('rfrow')$$,
    format($$SELECT 'pending'::text, 0, '{"$event":"webhook","url":"http://127.0.0.1:9/rf/%s","method":"POST",
                     "headers":{},"body":{"x":5},"timeoutMs":10000}'::jsonb, delivery_id, true FROM rf_before$$,
        pg_temp.id('rf')),
    'outbox_retry: the row is pending, rendered from the task, with its delivery id');
SELECT results_eq($$SELECT id, effect ->> 'url' FROM dwa._outbox_claim(41, 10, '30 seconds')$$,
    format($$VALUES (pg_temp.id('rfrow'), 'http://127.0.0.1:9/rf/%s'::text)$$, pg_temp.id('rf')),
    'outbox_retry: the dispatcher gets the rendered effect');
UPDATE dwa.outbox SET status = 'delivered' WHERE id = pg_temp.id('rfrow');
DO $do$ BEGIN
    PERFORM pg_temp.mk('taskless', p_status => 'dead');
END $do$;
SELECT throws_ok(format('SELECT dwa.outbox_retry(%s)', pg_temp.id('taskless')), '55000',
    format('outbox row %s: its task is gone, so its templates cannot be rendered again', pg_temp.id('taskless')),
    'outbox_retry of a never attempted row without its task');
SELECT is((pg_temp.row('taskless')).status, 'dead', 'outbox_retry: ... which stays dead');

-- ---------------------------------------------------------------------
-- Grants.

SELECT ok(has_table_privilege('dwa_submitter', 'dwa.events', 'SELECT')
      AND has_table_privilege('dwa_worker', 'dwa.events', 'SELECT'),
    'grants: submitters and workers read dwa.events');
SELECT ok(NOT has_table_privilege('dwa_submitter', 'dwa.outbox', 'SELECT')
      AND NOT has_table_privilege('dwa_worker', 'dwa.outbox', 'SELECT'),
    'grants: ... but not dwa.outbox');
SELECT ok(has_table_privilege('dwa_admin', 'dwa.outbox', 'SELECT')
      AND has_function_privilege('dwa_admin', 'dwa.outbox_retry(bigint)', 'EXECUTE'),
    'grants: admins read dwa.outbox and retry deliveries');
SELECT ok(NOT has_function_privilege('dwa_worker', 'dwa.outbox_retry(bigint)', 'EXECUTE')
      AND NOT has_function_privilege('dwa_submitter', 'dwa._outbox_claim(integer, integer, interval)', 'EXECUTE'),
    'grants: workers and submitters do not');

SELECT * FROM finish();
