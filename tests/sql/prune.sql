-- prune.sql: dwa.prune: finished tasks older than the age go with their
-- steps, UI events and finished deliveries; young and unfinished tasks
-- and pending or delivering deliveries stay; old events and finished
-- deliveries go whatever their task; the limit takes the oldest first, in
-- each table; a task row another session holds is skipped, not waited
-- for; a bad age or limit is rejected and deletes nothing; tasks are
-- walked in order of id up to the first one created since the cutoff.
--
-- No enclosing transaction: a second session (dblink) must see the tasks
-- to lock one.  The database is thrown away.
CREATE EXTENSION IF NOT EXISTS dblink;
SET statement_timeout = '60s';
SELECT plan(53);

INSERT INTO dwa.task_types (name, executor) VALUES ('pr.t', 'worker');

\ir ../lib/named.sql
\ir ../lib/plan-reads.sql
-- mk: a task named p_name of two steps, created p_age ago and put in
-- p_status, finished p_finished ago when that is given.
CREATE FUNCTION pg_temp.mk(p_name text, p_status text, p_age interval,
    p_finished interval DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    v_id := dwa.submit('{"type":"pr.t","steps":[
        {"id":"a","task":"pr.t"},{"id":"b","task":"pr.t","dependsOn":["a"]}]}'::jsonb);
    UPDATE dwa.tasks SET status = p_status, created_at = now() - p_age,
           finished_at = now() - p_finished
     WHERE id = v_id;
    UPDATE dwa.steps SET status = CASE p_status WHEN 'completed' THEN 'succeeded'
                                      WHEN 'queued' THEN status
                                      WHEN 'running' THEN 'running' ELSE p_status END,
           finished_at = now() - p_finished,
           run_id = CASE p_status WHEN 'running' THEN nextval('dwa.run_id_seq') END,
           lease_until = CASE p_status WHEN 'running' THEN now() + interval '1 hour' END
     WHERE task_id = v_id;
    -- The queues follow, as the engine keeps them.
    DELETE FROM dwa.ready r USING dwa.steps s
     WHERE r.step_id = s.id AND s.task_id = v_id AND s.status <> 'ready';
    INSERT INTO dwa.runs (run_id, step_id, task_id, lease_until)
    SELECT s.run_id, s.id, s.task_id, s.lease_until FROM dwa.steps s
     WHERE s.task_id = v_id AND s.status = 'running';
    INSERT INTO ids VALUES (p_name, v_id);
    RETURN v_id;
END
$$;
-- ev: a UI event named p_name of task p_task (NULL: none), p_age old.
CREATE FUNCTION pg_temp.ev(p_name text, p_task text, p_age interval) RETURNS void
LANGUAGE sql AS $$
    WITH e AS (
        INSERT INTO dwa.events (task_id, event, payload, created_at)
        VALUES (pg_temp.id(p_task), 'toast', '{"message":"hi"}', now() - p_age)
        RETURNING id)
    INSERT INTO ids SELECT p_name, id FROM e
$$;
-- ob: an outbox row named p_name of task p_task in p_status, p_age old.
CREATE FUNCTION pg_temp.ob(p_name text, p_task text, p_status text, p_age interval)
RETURNS void LANGUAGE sql AS $$
    WITH o AS (
        INSERT INTO dwa.outbox (task_id, hook, event, effect, status, created_at,
            delivered_at, lease_until, worker_id)
        VALUES (pg_temp.id(p_task), 'onSuccess', 'webhook',
            '{"$event":"webhook","url":"http://127.0.0.1:9/"}', p_status, now() - p_age,
            CASE WHEN p_status = 'delivered' THEN now() - p_age END,
            CASE WHEN p_status = 'delivering' THEN now() + interval '1 minute' END,
            CASE WHEN p_status = 'delivering' THEN 900000 END)
        RETURNING id)
    INSERT INTO ids SELECT p_name, id FROM o
$$;
-- gone: which of the named rows no longer exist, in name order.
CREATE FUNCTION pg_temp.gone(p_table text, p_names text[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    EXECUTE format('SELECT coalesce(string_agg(i.name, '','' ORDER BY i.name), '''')
                      FROM ids i WHERE i.name = ANY ($1)
                       AND NOT EXISTS (SELECT 1 FROM %s t WHERE t.id = i.id)', p_table)
       INTO v USING p_names;
    RETURN v;
END
$$;
CREATE FUNCTION pg_temp.counts() RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' ', (SELECT count(*) FROM dwa.tasks), (SELECT count(*) FROM dwa.steps),
        (SELECT count(*) FROM dwa.events), (SELECT count(*) FROM dwa.outbox))
$$;

-- ---------------------------------------------------------------------
-- The signature.

SELECT has_function('dwa', 'prune', ARRAY['interval', 'integer'],
    'dwa.prune(interval, integer) exists');
SELECT hasnt_function('dwa', 'prune', ARRAY['interval'],
    'the one-argument dwa.prune(interval) is gone');
SELECT function_returns('dwa', 'prune', ARRAY['interval', 'integer'], 'bigint',
    'it returns bigint');
SELECT ok(has_function_privilege('dwa_admin', 'dwa.prune(interval, integer)', 'EXECUTE')
      AND NOT has_function_privilege('dwa_submitter', 'dwa.prune(interval, integer)', 'EXECUTE')
      AND NOT has_function_privilege('dwa_worker', 'dwa.prune(interval, integer)', 'EXECUTE'),
    'admins may prune; submitters and workers may not');

-- ---------------------------------------------------------------------
-- What goes and what stays.

DO $do$ BEGIN
    PERFORM pg_temp.mk('done', 'completed', '12 days', '10 days');
    PERFORM pg_temp.mk('failed', 'failed', '12 days', '9 days');
    PERFORM pg_temp.mk('cancelled', 'cancelled', '12 days', '8 days');
    PERFORM pg_temp.mk('young', 'completed', '12 days', '1 day');
    PERFORM pg_temp.mk('running', 'running', '20 days');
    PERFORM pg_temp.mk('queued', 'queued', '20 days');

    PERFORM pg_temp.ev('ev_done', 'done', '10 days');
    PERFORM pg_temp.ev('ev_done_new', 'done', '1 hour');
    PERFORM pg_temp.ev('ev_run_old', 'running', '19 days');
    PERFORM pg_temp.ev('ev_run_new', 'running', '1 hour');
    PERFORM pg_temp.ev('ev_young', 'young', '36 hours');
    PERFORM pg_temp.ev('ev_none_old', NULL, '30 days');

    PERFORM pg_temp.ob('ob_done', 'done', 'delivered', '10 days');
    PERFORM pg_temp.ob('ob_done_dead', 'done', 'dead', '10 days');
    PERFORM pg_temp.ob('ob_done_pending', 'done', 'pending', '10 days');
    PERFORM pg_temp.ob('ob_done_new', 'done', 'delivered', '1 hour');
    PERFORM pg_temp.ob('ob_run_old', 'running', 'delivered', '19 days');
    PERFORM pg_temp.ob('ob_run_dead', 'running', 'dead', '19 days');
    PERFORM pg_temp.ob('ob_run_pending', 'running', 'pending', '19 days');
    PERFORM pg_temp.ob('ob_run_delivering', 'running', 'delivering', '19 days');
    PERFORM pg_temp.ob('ob_run_new', 'running', 'delivered', '1 hour');
    PERFORM pg_temp.ob('ob_young', 'young', 'delivered', '36 hours');
END $do$;
SELECT is((SELECT count(*) FROM dwa.steps WHERE task_id IN (SELECT id FROM ids)), 12::bigint,
    'six tasks of two steps each');

-- ---------------------------------------------------------------------
-- Rejections: the message names the field, and nothing is deleted.

SELECT throws_ok($$SELECT dwa.prune('-1 day')$$, '22023',
    'older than: must be a duration >= 0', 'a negative age is rejected');
SELECT throws_ok($$SELECT dwa.prune(NULL)$$, '22023',
    'older than: must be a duration >= 0', 'a NULL age is rejected');
SELECT throws_ok($$SELECT dwa.prune('7 days', 0)$$, '22023',
    'limit: must be at least 1', 'a zero limit is rejected');
SELECT throws_ok($$SELECT dwa.prune('7 days', -5)$$, '22023',
    'limit: must be at least 1', 'a negative limit is rejected');
SELECT throws_ok($$SELECT dwa.prune('-1 day', 0)$$, '22023',
    'older than: must be a duration >= 0', 'the age is checked first');
DO $do$
DECLARE
    d text;
BEGIN
    PERFORM dwa.prune('7 days', 0);
EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    INSERT INTO ids VALUES ('detail:' || d, 0);
END $do$;
SELECT ok(EXISTS (SELECT 1 FROM ids WHERE name = 'detail:field: limit'),
    'the limit error''s detail is "field: limit"');
SELECT is(pg_temp.counts(), '6 12 6 10',
    'the rejected calls deleted nothing: 6 tasks, 12 steps, 6 events, 10 outbox rows');

-- ---------------------------------------------------------------------
-- The limit: the oldest first, in each table; a task another session
-- holds is skipped, not waited for.

SELECT is(dblink_connect('a', pg_temp.connstr()), 'OK', 'session A connected');
SELECT is(dblink_exec('a', 'BEGIN'), 'BEGIN', 'session A opens a transaction');
SELECT is((SELECT id FROM dblink('a', format(
        'SELECT id FROM dwa.tasks WHERE id = %s FOR UPDATE', pg_temp.id('done')))
        AS t(id bigint)), pg_temp.id('done'), 'session A locks the oldest finished task');
SET lock_timeout = '3s';
SELECT is(dwa.prune('7 days', 1), 1::bigint,
    'prune with limit 1 deletes a task without waiting for the locked one');
RESET lock_timeout;
SELECT is(pg_temp.gone('dwa.tasks', ARRAY['done', 'failed', 'cancelled']), 'failed',
    'it skipped the locked task and took the next oldest, and only that one');
SELECT is(dblink_exec('a', 'ROLLBACK'), 'ROLLBACK', 'session A lets go');
SELECT is(dblink_disconnect('a'), 'OK', 'session A disconnected');
SELECT is(pg_temp.gone('dwa.events', ARRAY['ev_done', 'ev_done_new', 'ev_run_old']),
    'ev_done', 'limit 1: the oldest event went');
SELECT is(pg_temp.gone('dwa.outbox', ARRAY['ob_done', 'ob_done_dead', 'ob_done_new',
        'ob_done_pending', 'ob_run_old']), 'ob_done',
    'limit 1: the oldest finished delivery went');

SELECT is(dwa.prune('7 days', 1), 1::bigint, 'a second call with limit 1 deletes one more task');
SELECT is(pg_temp.gone('dwa.tasks', ARRAY['done', 'failed', 'cancelled']), 'done,failed',
    'the oldest, no longer locked');
SELECT is(pg_temp.gone('dwa.events', ARRAY['ev_done_new', 'ev_run_old', 'ev_none_old']),
    'ev_done_new,ev_run_old', 'its events went with it, and the next oldest event');
SELECT is(pg_temp.gone('dwa.outbox', ARRAY['ob_done_dead', 'ob_done_new', 'ob_done_pending',
        'ob_run_old', 'ob_run_dead']), 'ob_done_dead,ob_done_new,ob_run_old',
    'its finished deliveries went with it (not the pending one), and the next oldest');

-- ---------------------------------------------------------------------
-- No limit: everything old enough.

SELECT is(dwa.prune('7 days'), 1::bigint, 'without a limit the last old task goes: 1');
SELECT is(pg_temp.gone('dwa.tasks', ARRAY['done', 'failed', 'cancelled', 'young',
        'running', 'queued']), 'cancelled,done,failed',
    'the three finished more than 7 days ago are gone');
SELECT is((SELECT string_agg(status, ',' ORDER BY status) FROM dwa.tasks
            WHERE id IN (SELECT id FROM ids)), 'completed,queued,running',
    'young, running and queued tasks stay, however old');
SELECT is((SELECT count(*) FROM dwa.steps
            WHERE task_id IN (pg_temp.id('done'), pg_temp.id('failed'), pg_temp.id('cancelled'))),
    0::bigint, 'the steps of pruned tasks are gone');
SELECT is((SELECT count(*) FROM dwa.steps
            WHERE task_id IN (pg_temp.id('young'), pg_temp.id('running'), pg_temp.id('queued'))),
    6::bigint, 'the steps of the others stay');
SELECT is(pg_temp.gone('dwa.events', ARRAY['ev_done', 'ev_done_new', 'ev_run_old', 'ev_run_new',
        'ev_young', 'ev_none_old']), 'ev_done,ev_done_new,ev_none_old,ev_run_old',
    'events: of pruned tasks, and older than 7 days, are gone');
SELECT is((SELECT count(*) FROM dwa.events), 2::bigint, 'two young events stay');
SELECT is(pg_temp.gone('dwa.outbox', ARRAY['ob_done', 'ob_done_dead', 'ob_done_new',
        'ob_run_old', 'ob_run_dead', 'ob_young']),
    'ob_done,ob_done_dead,ob_done_new,ob_run_dead,ob_run_old',
    'outbox: finished rows of pruned tasks and older than 7 days are gone');
SELECT is(pg_temp.gone('dwa.outbox', ARRAY['ob_done_pending', 'ob_run_pending',
        'ob_run_delivering', 'ob_run_new', 'ob_young']), '',
    'pending and delivering rows stay, even of a pruned task or old; young delivered ones too');
SELECT is((SELECT status FROM dwa.outbox WHERE id = pg_temp.id('ob_done_pending')), 'pending',
    'the pending delivery of a pruned task is left to be delivered');

SELECT is(dwa.prune('7 days'), 0::bigint, 'nothing more is old enough: 0');
SELECT is(dwa.prune('7 days', 100), 0::bigint, 'with a limit too');
SELECT is(pg_temp.counts(), '3 6 2 5', 'and nothing else went');

-- ---------------------------------------------------------------------
-- Ages: a huge one deletes nothing; 0 deletes whatever has finished.

SELECT is(dwa.prune('1000000 years'), 0::bigint, 'an age of a million years deletes nothing');
SELECT is(dwa.prune('2 days'), 0::bigint, 'an age of 2 days keeps the task finished a day ago');
SELECT is(pg_temp.counts(), '3 6 2 5', 'with its event and delivery');
SELECT is(dwa.prune('0'), 1::bigint, 'an age of 0 deletes it');
SELECT is((SELECT string_agg(status, ',' ORDER BY status) FROM dwa.tasks), 'queued,running',
    'leaving the unfinished tasks');
SELECT is((SELECT count(*) FROM dwa.outbox WHERE status IN ('delivered', 'dead')), 0::bigint,
    'and no finished deliveries');
SELECT is((SELECT count(*) FROM dwa.outbox), 3::bigint,
    'but the pending and delivering ones');
SELECT is((SELECT count(*) FROM dwa.events), 0::bigint, 'and no events');


-- ---------------------------------------------------------------------
-- The walk in order of id: it passes a task whose created_at was set in
-- the future by hand, and ends at the first task created since the
-- cutoff, so that it reads no more than the old tasks and one.

DO $do$ BEGIN
    PERFORM pg_temp.mk('future', 'queued', '-1 year');
    PERFORM pg_temp.mk('late', 'completed', '12 days', '10 days');
    PERFORM pg_temp.mk('fresh', 'queued', '1 minute');
    PERFORM pg_temp.mk('behind', 'completed', '12 days', '10 days');
END $do$;
SELECT is(dwa.prune('7 days'), 1::bigint, 'one task goes');
SELECT is(pg_temp.gone('dwa.tasks', ARRAY['future', 'late', 'fresh', 'behind']), 'late',
    'the old one after a created_at in the future; not the one after a task created since the cutoff');
SELECT is(dwa.prune('30 seconds'), 1::bigint,
    'once the cutoff is past that task, the walk goes on');
SELECT is(pg_temp.gone('dwa.tasks', ARRAY['future', 'fresh', 'behind']), 'behind',
    'and takes the old task behind it');

INSERT INTO dwa.tasks (type) SELECT 'pr.t' FROM generate_series(1, 5000);
UPDATE dwa.tasks SET status = 'completed', finished_at = now()
 WHERE status = 'queued' AND id > pg_temp.id('behind');
SELECT is((SELECT count(*) FROM dwa.tasks WHERE status = 'completed'), 5000::bigint,
    '5,000 tasks finished just now');
SELECT cmp_ok(pg_temp.reads_of($$SELECT dwa.prune('1 hour', 100)$$, 'dwa.tasks'), '<',
    100::bigint, 'a prune passing them by reads fewer than 100 of dwa.tasks');
SELECT is(pg_temp.counts(), '5004 5008 0 3', 'and deletes nothing');

SELECT * FROM finish();
