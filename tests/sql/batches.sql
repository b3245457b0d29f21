-- batches.sql: dwad's claims recorded a batch to a row (dwa.claims): the
-- row a claim writes, reports by run id, ends, renewals, rows deleted when
-- done, caps counting batch runs, and the reaper on dead daemons and on
-- batches no longer renewed.
--
-- No enclosing transaction: leases expire against the clock, and a live
-- daemon holds its advisory lock in a session of its own (dblink).
CREATE EXTENSION IF NOT EXISTS dblink;
SET statement_timeout = '60s';
SET lock_timeout = '10s';
SELECT plan(70);

INSERT INTO dwa.task_types (name, executor)
SELECT 'ba.' || n, 'worker'
  FROM unnest(ARRAY['one', 'lim', 'cap', 'dead', 'exp', 'half', 'adopt', 'prev', 'hot', 'mix']) n;

\ir ../lib/named.sql
-- gone_daemon: a daemon's registration that no session holds (its advisory
-- lock is not taken), on host h with pid p_pid, named in ids as p_id.
CREATE FUNCTION pg_temp.gone_daemon(p_id text, p_name text, p_pid integer) RETURNS void
LANGUAGE sql AS $$
    WITH w AS (INSERT INTO dwa.workers (name, kind, hostname, pid)
               VALUES (p_name, 'daemon', 'h', p_pid) RETURNING id)
    INSERT INTO ids SELECT p_id, id FROM w
$$;
-- ends: _finish_batch's argument for the runs of a claim, all succeeded.
CREATE FUNCTION pg_temp.ends(p_runs regclass) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    EXECUTE format($q$SELECT jsonb_agg(jsonb_build_object('id', id, 'run', run_id,
                'outcome', 'ok', 'output', '{}'::jsonb) ORDER BY run_id)
                FROM %s WHERE run_id IS NOT NULL$q$, p_runs) INTO v;
    RETURN v;
END
$$;

SELECT is(dblink_connect('d', pg_temp.connstr()), 'OK', 'the daemon''s session connected');
INSERT INTO ids
SELECT 'live', id FROM dblink('d', $$SELECT dwa._register('daemon-live', 'h', 1, 'test', 8)$$)
    AS t(id integer);
DO $$ BEGIN PERFORM pg_temp.gone_daemon('dead', 'daemon-dead', 2); END $$;

-- ---------------------------------------------------------------------
-- A claim of dwad's: one row in dwa.claims, none in dwa.runs.

INSERT INTO ids SELECT 'one' || g, dwa.submit('{"type": "ba.one"}'::jsonb) FROM generate_series(1, 3) g;
CREATE TEMP TABLE b1 AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.one'], 5, '1 hour', NULL, NULL);
SELECT is((SELECT count(*) FROM b1), 3::bigint, 'the claim takes the three steps');
SELECT is((SELECT count(DISTINCT batch) FROM b1), 1::bigint, 'all three are of one batch');
SELECT is((SELECT min(batch) FROM b1), (SELECT min(run_id) FROM b1),
    'keyed by its first run id');
SELECT results_eq(
    $$SELECT c.batch, c.worker_id, c.step_ids, c.run_ids, c.lease_until > now() + interval '59 minutes'
        FROM dwa.claims c$$,
    $$SELECT min(batch), pg_temp.id('live')::integer, array_agg(id ORDER BY run_id),
             array_agg(run_id ORDER BY run_id), true FROM b1$$,
    'dwa.claims holds the batch: worker, steps and run ids pair by pair, the lease');
SELECT is((SELECT count(*) FROM dwa.runs), 0::bigint, 'dwa.runs holds none of them');
SELECT results_eq($$SELECT run_id, step_id, batch FROM dwa.running ORDER BY run_id$$,
    $$SELECT run_id, id, batch FROM b1 ORDER BY run_id$$,
    'dwa.running shows the three runs, with their batch');

-- Reports by run id find the step through the batch; dwad names it.
SELECT is(dwa.progress((SELECT min(run_id) FROM b1), 40), true,
    'dwa.progress by run id finds a batch''s run');
SELECT is(dwa._progress((SELECT id FROM b1 ORDER BY run_id LIMIT 1), (SELECT min(run_id) FROM b1), 60),
    true, 'dwa._progress takes the step id too');
SELECT is(dwa.stream((SELECT min(run_id) FROM b1), 'partial', '{"n": 1}'), true,
    'dwa.stream by run id finds it too');
SELECT is((SELECT progress FROM dwa.steps WHERE id = (SELECT id FROM b1 ORDER BY run_id LIMIT 1)), 60,
    'the step''s progress is recorded');
SELECT is(dwa.progress(-1, 10), false, 'an unknown run id reports nothing');

-- Two ends recorded; the third run still goes.
CREATE TEMP TABLE b1a AS SELECT * FROM b1 ORDER BY run_id LIMIT 2;
CREATE TEMP TABLE b1b AS SELECT * FROM b1 ORDER BY run_id OFFSET 2;
SELECT is(dwa._finish_batch(pg_temp.ends('b1a')), '{}'::bigint[],
    '_finish_batch records the ends of two runs of the batch');
SELECT results_eq($$SELECT t.status FROM b1 JOIN dwa.tasks t ON t.id = b1.task_id ORDER BY b1.run_id$$,
    $$VALUES ('completed'::text), ('completed'), ('queued')$$,
    'their tasks completed');
SELECT is((SELECT count(*) FROM dwa.running), 1::bigint, 'dwa.running shows the one left');

-- Renewal: the batch's lease, and a run that no longer holds its step is lost.
UPDATE dwa.claims SET lease_until = now() + interval '1 minute';
SELECT is(dwa._renew(pg_temp.id('live')::integer,
        ARRAY(SELECT id FROM b1 ORDER BY run_id), ARRAY(SELECT run_id FROM b1 ORDER BY run_id),
        '1 hour', ARRAY(SELECT DISTINCT batch FROM b1), '{}'),
    ARRAY(SELECT run_id FROM b1 ORDER BY run_id LIMIT 2),
    '_renew returns the runs whose ends are recorded as no longer held');
SELECT ok((SELECT lease_until > now() + interval '59 minutes' FROM dwa.claims),
    '_renew extends the lease of a batch it holds whole');
SELECT is(dwa._finish_batch(pg_temp.ends('b1b')), '{}'::bigint[],
    'the third end is recorded');
SELECT is((SELECT count(*) FROM dwa.claims), 1::bigint, 'the row stays until dwad says the batch is done');

-- Done: only the batch's own daemon deletes its row.
SELECT is((SELECT count(*) FROM dwa._claim_async(pg_temp.id('dead')::integer, ARRAY['ba.none'], 1,
        '1 hour', NULL, ARRAY(SELECT DISTINCT batch FROM b1))), 0::bigint,
    'another daemon''s claim naming the batch done');
SELECT is((SELECT count(*) FROM dwa.claims), 1::bigint, '... deletes nothing');
SELECT is((SELECT count(*) FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.none'], 1,
        '1 hour', NULL, ARRAY(SELECT DISTINCT batch FROM b1))), 0::bigint,
    'its own daemon''s next claim names it done');
SELECT is((SELECT count(*) FROM dwa.claims), 0::bigint, '... and the row is gone');

-- ---------------------------------------------------------------------
-- Under a limit the runs go to dwa.runs, and caps count batch runs.

DO $$ BEGIN PERFORM dwa.limit_set('type:ba.lim', 10); END $$;
INSERT INTO ids SELECT 'lim', dwa.submit('{"type": "ba.lim"}'::jsonb);
CREATE TEMP TABLE bl AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.lim'], 5, '1 hour', NULL, NULL);
SELECT results_eq($$SELECT count(*), count(batch) FROM bl$$, $$VALUES (1::bigint, 0::bigint)$$,
    'a claim under a limit returns no batch');
SELECT is((SELECT count(*) FROM dwa.runs WHERE run_id IN (SELECT run_id FROM bl)), 1::bigint,
    'its run is in dwa.runs');
SELECT is((SELECT count(*) FROM dwa.claims), 0::bigint, 'and no batch row is written');
SELECT is(dwa._finish_batch(pg_temp.ends('bl')), '{}'::bigint[], 'its end is recorded');
SELECT is((SELECT count(*) FROM dwa.runs), 0::bigint, 'and its dwa.runs row is gone');
DO $$ BEGIN PERFORM dwa.limit_delete('type:ba.lim'); END $$;

INSERT INTO ids SELECT 'cap' || g, dwa.submit('{"type": "ba.cap"}'::jsonb) FROM generate_series(1, 5) g;
CREATE TEMP TABLE bc1 AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.cap'], 2, '1 hour', NULL, NULL);
SELECT is((SELECT count(batch) FROM bc1), 2::bigint, 'two runs claimed as a batch, no limit in force');
DO $$ BEGIN PERFORM dwa.limit_set('type:ba.cap', 3); END $$;
SELECT is((SELECT running FROM dwa.limit_stats WHERE key = 'type:ba.cap'), 2::bigint,
    'a cap set meanwhile: dwa.limit_stats counts the batch''s runs');
CREATE TEMP TABLE bc2 AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.cap'], 5, '1 hour', NULL, NULL);
SELECT is((SELECT count(*) FROM bc2 WHERE run_id IS NOT NULL), 1::bigint,
    'a claim under the cap of 3 takes one more, counting the batch''s two');
SELECT is((SELECT count(*) FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.cap'], 5,
        '1 hour', NULL, NULL) WHERE run_id IS NOT NULL), 0::bigint, 'and the next none');
SELECT is(dwa._finish_batch(pg_temp.ends('bc1') || pg_temp.ends('bc2')), '{}'::bigint[],
    'their ends are recorded');
DO $$ BEGIN PERFORM dwa.limit_delete('type:ba.cap'); END $$;
DELETE FROM dwa.claims;

-- ---------------------------------------------------------------------
-- A renewal keeps in a batch's row only the pairs the daemon still holds.

INSERT INTO ids SELECT 'half' || g, dwa.submit('{"type": "ba.half"}'::jsonb) FROM generate_series(1, 3) g;
CREATE TEMP TABLE bh AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.half'], 5, '1 hour', NULL, NULL);
CREATE TEMP TABLE bh_done AS SELECT * FROM bh ORDER BY run_id LIMIT 2;
CREATE TEMP TABLE bh_held AS SELECT * FROM bh ORDER BY run_id OFFSET 2;
SELECT is(dwa._finish_batch(pg_temp.ends('bh_done')), '{}'::bigint[], 'two of three runs end');
SELECT is(dwa._renew(pg_temp.id('live')::integer, ARRAY(SELECT id FROM bh_held),
        ARRAY(SELECT run_id FROM bh_held), '1 hour', ARRAY(SELECT DISTINCT batch FROM bh), '{}'),
    '{}'::bigint[], '_renew of the one run still held');
SELECT results_eq($$SELECT batch, step_ids, run_ids FROM dwa.claims$$,
    $$SELECT (SELECT min(batch) FROM bh), ARRAY[id], ARRAY[run_id] FROM bh_held$$,
    'the batch row keeps only that pair, under the batch''s key');
SELECT is(dwa._finish_batch(pg_temp.ends('bh_held')), '{}'::bigint[], 'the last run ends');
DELETE FROM dwa.claims;

-- ---------------------------------------------------------------------
-- The reaper: a dead daemon's batch.

INSERT INTO ids SELECT 'dead' || g, dwa.submit('{"type": "ba.dead"}'::jsonb) FROM generate_series(1, 2) g;
CREATE TEMP TABLE bd AS
SELECT * FROM dwa._claim_async(pg_temp.id('dead')::integer, ARRAY['ba.dead'], 5, '1 hour', NULL, NULL);
SELECT is(dwa._reap(), 2, '_reap requeues the two runs of the dead daemon''s batch');
SELECT results_eq($$SELECT status, attempt, error FROM dwa.steps WHERE id IN (SELECT id FROM bd)$$,
    format($$VALUES ('ready'::text, 1, 'worker %1$s is gone'::text), ('ready', 1, 'worker %1$s is gone')$$,
        pg_temp.id('dead')),
    'its steps are ready again, attempts kept');
SELECT is((SELECT count(*) FROM dwa.claims), 0::bigint, 'and its batch row is gone');
SELECT is(dwa._finish_batch(pg_temp.ends('bd')), ARRAY(SELECT run_id FROM bd ORDER BY run_id),
    'ends of its runs are refused');

-- A batch no longer renewed whole (an end of it could not be recorded):
-- of its two runs, the one still renewed keeps going.
INSERT INTO ids SELECT 'exp' || g, dwa.submit('{"type": "ba.exp"}'::jsonb) FROM generate_series(1, 2) g;
CREATE TEMP TABLE be AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.exp'], 5, '1 second', NULL, NULL);
CREATE TEMP TABLE be_kept AS SELECT * FROM be ORDER BY run_id LIMIT 1;
SELECT is(dwa._renew(pg_temp.id('live')::integer, ARRAY(SELECT id FROM be_kept),
        ARRAY(SELECT run_id FROM be_kept), '1 hour', '{}', '{}'), '{}'::bigint[],
    '_renew of one run of the batch, the batch not held whole');
SELECT ok((SELECT lease_until < now() + interval '2 seconds' FROM dwa.claims),
    'the batch''s lease is not extended');
DO $$ BEGIN PERFORM pg_sleep(1.1); END $$;
SELECT is(dwa._renew(pg_temp.id('live')::integer, '{}', '{}', '1 hour',
        ARRAY(SELECT DISTINCT batch FROM be), '{}'), '{}'::bigint[],
    '_renew naming the batch once its lease ran out');
SELECT ok((SELECT lease_until < now() FROM dwa.claims), '... does not revive it');
SELECT is(dwa._reap(), 1, '_reap requeues the run whose lease ran out');
SELECT results_eq($$SELECT s.status, s.error FROM dwa.steps s JOIN be ON be.id = s.id ORDER BY be.run_id$$,
    $$VALUES ('running'::text, NULL::text), ('ready', 'lease expired: the worker stopped renewing it')$$,
    'the renewed one keeps running; the other is ready again');
SELECT is((SELECT count(*) FROM dwa.claims), 1::bigint, 'the batch row stays while a run of it goes on');
SELECT is(dwa._finish_batch(pg_temp.ends('be_kept')), '{}'::bigint[],
    'the renewed run''s end is recorded');
SELECT is(dwa._reap(), 0, 'the next _reap has nothing to requeue');
SELECT is((SELECT count(*) FROM dwa.claims), 0::bigint, '... and deletes the batch row');

-- A daemon that registered again (after a reconnect) under a new id renews
-- the runs it still holds of a batch it no longer renews whole: the batch
-- row keeps the old id, whose session is gone.  The reaper ends only the
-- run nobody renews.
DO $$ BEGIN PERFORM pg_temp.gone_daemon('old', 'daemon-old', 3); END $$;
INSERT INTO ids SELECT 'adopt' || g, dwa.submit('{"type": "ba.adopt"}'::jsonb) FROM generate_series(1, 2) g;
CREATE TEMP TABLE ba AS
SELECT * FROM dwa._claim_async(pg_temp.id('old')::integer, ARRAY['ba.adopt'], 5, '1 hour', NULL, NULL);
CREATE TEMP TABLE ba_kept AS SELECT * FROM ba ORDER BY run_id LIMIT 1;
SELECT is(dwa._renew(pg_temp.id('live')::integer, ARRAY(SELECT id FROM ba_kept),
        ARRAY(SELECT run_id FROM ba_kept), '1 hour', '{}', '{}'), '{}'::bigint[],
    'the new registration renews one run of the old one''s batch, not the batch');
SELECT is((SELECT worker_id FROM dwa.claims), pg_temp.id('old')::integer,
    'the batch row still names the old registration');
SELECT is(dwa._reap(), 1, '_reap requeues one run');
SELECT results_eq($$SELECT s.status, s.worker_id, s.error FROM dwa.steps s JOIN ba ON ba.id = s.id ORDER BY ba.run_id$$,
    format($$VALUES ('running'::text, %s, NULL::text), ('ready', %s, 'worker %s is gone')$$,
        pg_temp.id('live'), pg_temp.id('old'), pg_temp.id('old')),
    'the renewed run goes on; the other, its daemon gone, is ready again');
SELECT is((SELECT count(*) FROM dwa.claims), 1::bigint, 'the batch row stays for the run still going');

-- The same process registered again (its connection was cut): the runs
-- its first registration claimed are not gone, though its session is.
DO $$ BEGIN PERFORM pg_temp.gone_daemon('prev', 'daemon-prev', 1); END $$;
INSERT INTO ids SELECT 'prev' || g, dwa.submit('{"type": "ba.prev"}'::jsonb) FROM generate_series(1, 2) g;
CREATE TEMP TABLE bp AS
SELECT * FROM dwa._claim_async(pg_temp.id('prev')::integer, ARRAY['ba.prev'], 5, '1 hour', NULL, NULL);
SELECT is(dwa._reap(), 0,
    '_reap ends no run of a registration whose process registered again (same host and pid)');
SELECT is((SELECT count(*) FROM dwa.workers WHERE name = 'daemon-prev'), 0::bigint,
    'the lost registration''s row is gone');
SELECT is(dwa._renew(pg_temp.id('live')::integer, ARRAY(SELECT id FROM bp ORDER BY run_id),
        ARRAY(SELECT run_id FROM bp ORDER BY run_id), '1 hour', ARRAY(SELECT DISTINCT batch FROM bp), '{}'),
    '{}'::bigint[], 'the process''s next renewal adopts both runs');
SELECT results_eq($$SELECT s.status, s.worker_id FROM dwa.steps s JOIN bp ON bp.id = s.id ORDER BY bp.run_id$$,
    format($$VALUES ('running'::text, %1$s), ('running', %1$s)$$, pg_temp.id('live')),
    'they run on under its new id');
SELECT is((SELECT worker_id FROM dwa.claims WHERE batch = (SELECT min(batch) FROM bp)),
    pg_temp.id('live')::integer, 'and so does their batch');

-- ---------------------------------------------------------------------
-- One batch of every kind of end: a single-step task's success, a
-- pipeline's first step, the two elements of a forEach, and a failure,
-- in no particular order: each finishes as it should.

INSERT INTO ids VALUES
    ('mix_one', dwa.submit('{"type": "ba.mix"}'::jsonb)),
    ('mix_pipe', dwa.submit('{"type": "ba.mix", "steps": [{"id": "a", "task": "ba.mix"},
        {"id": "b", "task": "ba.mix", "dependsOn": ["a"]}]}'::jsonb)),
    ('mix_each', dwa.submit('{"type": "ba.mix", "payload": {"xs": [1, 2]},
        "steps": [{"id": "e", "task": "ba.mix", "forEach": "{{payload.xs}}"}]}'::jsonb)),
    ('mix_bad', dwa.submit('{"type": "ba.mix", "retry": {"attempts": 1}}'::jsonb));
CREATE TEMP TABLE bmix AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.mix'], 10, '1 hour', NULL, NULL);
SELECT is((SELECT count(*) FROM bmix), 5::bigint,
    'a claim takes the five ready steps: one, the pipeline''s first, two elements, the one to fail');
SELECT is(dwa._finish_batch((SELECT jsonb_agg(CASE WHEN task_id = pg_temp.id('mix_bad')
            THEN jsonb_build_object('id', id, 'run', run_id, 'outcome', 'permanent', 'error', 'boom')
            ELSE jsonb_build_object('id', id, 'run', run_id, 'outcome', 'ok',
                'output', jsonb_build_object('r', coalesce(item_index, -1))) END ORDER BY run_id DESC)
        FROM bmix)), '{}'::bigint[], 'the batch of five ends, in no particular order, is recorded');
SELECT results_eq(
    $$SELECT status, result, error FROM dwa.tasks
       WHERE id IN (pg_temp.id('mix_one'), pg_temp.id('mix_each'), pg_temp.id('mix_bad'))
       ORDER BY id$$,
    $$VALUES ('completed'::text, '{"r": -1}'::jsonb, NULL::text),
             ('completed', '[{"r": 0}, {"r": 1}]', NULL),
             ('failed', NULL, 'step "0": boom')$$,
    'the single-step task and the forEach completed with their outputs; the other failed');
SELECT results_eq(
    $$SELECT step_id, status, output FROM dwa.steps
       WHERE task_id = pg_temp.id('mix_pipe') ORDER BY step_index$$,
    $$VALUES ('a'::text, 'succeeded'::text, '{"r": -1}'::jsonb), ('b', 'ready', NULL)$$,
    'the pipeline''s first step succeeded and its second is ready');
SELECT is((SELECT status || ' ' || steps_done FROM dwa.tasks WHERE id = pg_temp.id('mix_pipe')),
    'running 1', 'the pipeline runs, one step done');
SELECT is((SELECT count(*) FROM dwa.running WHERE run_id IN (SELECT run_id FROM bmix)), 0::bigint,
    'none of the five runs is in flight');

-- ---------------------------------------------------------------------
-- A claim and an end update the step and task rows in place (HOT): no
-- index covers a column they change.  The counts are the transaction's.

BEGIN;
INSERT INTO ids SELECT 'hot' || g, dwa.submit('{"type": "ba.hot"}'::jsonb) FROM generate_series(1, 3) g;
CREATE TEMP TABLE hot AS
SELECT 'before' AS at,
       pg_stat_get_xact_tuples_updated('dwa.tasks'::regclass) AS t_upd,
       pg_stat_get_xact_tuples_hot_updated('dwa.tasks'::regclass) AS t_hot,
       pg_stat_get_xact_tuples_updated('dwa.steps'::regclass) AS s_upd,
       pg_stat_get_xact_tuples_hot_updated('dwa.steps'::regclass) AS s_hot;
CREATE TEMP TABLE bhot AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['ba.hot'], 5, '1 hour', NULL, NULL);
SELECT is(dwa._finish_batch(pg_temp.ends('bhot')), '{}'::bigint[], 'three tasks claimed and ended');
INSERT INTO hot
SELECT 'after', pg_stat_get_xact_tuples_updated('dwa.tasks'::regclass),
       pg_stat_get_xact_tuples_hot_updated('dwa.tasks'::regclass),
       pg_stat_get_xact_tuples_updated('dwa.steps'::regclass),
       pg_stat_get_xact_tuples_hot_updated('dwa.steps'::regclass);
SELECT results_eq(
    $$SELECT a.t_upd - b.t_upd, a.t_hot - b.t_hot, a.s_upd - b.s_upd, a.s_hot - b.s_hot
        FROM hot a, hot b WHERE a.at = 'after' AND b.at = 'before'$$,
    $$VALUES (3::bigint, 3::bigint, 6::bigint, 6::bigint)$$,
    'each task row updated once and each step row twice, all HOT');
COMMIT;

SELECT is(dblink_disconnect('d'), 'OK', 'the daemon''s session ends');
SELECT * FROM finish();
