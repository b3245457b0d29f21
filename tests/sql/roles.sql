-- roles.sql: what the three roles created by migrate may do, checked by
-- doing it: login roles granted dwa_submitter, dwa_worker or dwa_admin
-- (created here, gone with the rollback) submit, read, claim, report,
-- cancel, retry and manage limits, or are refused with 42501.
--
-- pgTAP's own tables belong to the session's role, so every statement
-- under a test role runs inside pg_temp.as_role, which switches role
-- (SET LOCAL ROLE) only for that statement and reports what happened.
BEGIN;
SELECT plan(45);

CREATE ROLE dwa_t_sub NOLOGIN IN ROLE dwa_submitter;
CREATE ROLE dwa_t_wrk NOLOGIN IN ROLE dwa_worker;
CREATE ROLE dwa_t_adm NOLOGIN IN ROLE dwa_admin;
CREATE ROLE dwa_t_none NOLOGIN;

INSERT INTO dwa.task_types (name, executor)
SELECT 'roles.' || n, 'worker'
  FROM unnest(ARRAY['work', 'flow', 'other', 'fail', 'adm']) n;

-- as_role: run p_sql (a statement that returns rows: a SELECT, or DML
-- with RETURNING) as p_role; the first column of its first row as text
-- ('' for no row or NULL), or 'error SQLSTATE: message'.  A failed
-- statement changes nothing (its subtransaction is rolled back, the role
-- switch with it).
CREATE FUNCTION pg_temp.as_role(p_role text, p_sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', p_role);
        EXECUTE p_sql INTO v;
        RESET ROLE;
    EXCEPTION WHEN others THEN
        RETURN 'error ' || SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN coalesce(v, '');
END
$$;
-- run_of: the run id of a task's running step.
CREATE FUNCTION pg_temp.run_of(p_task bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT run_id FROM dwa.steps WHERE task_id = p_task AND status = 'running'
$$;
\ir ../lib/named.sql

SELECT is(current_user::text, 'postgres', 'the test starts as the superuser');

-- ---------------------------------------------------------------------
-- dwa_submitter: submit (INSERT and dwa.submit), read; nothing else.

INSERT INTO ids
SELECT 'insert', pg_temp.as_role('dwa_t_sub',
    $$INSERT INTO dwa.tasks (type, payload) VALUES ('roles.work', '{"n": 1}') RETURNING id$$)::bigint;
SELECT is((SELECT type || ' ' || status FROM dwa.tasks WHERE id = pg_temp.id('insert')),
    'roles.work queued', 'submitter: INSERT INTO dwa.tasks stores a task');
SELECT is((SELECT count(*) FROM dwa.steps WHERE task_id = pg_temp.id('insert') AND status = 'ready'),
    1::bigint, 'submitter: the inserted task has its ready step');

INSERT INTO ids
SELECT 'submit', pg_temp.as_role('dwa_t_sub',
    $$SELECT dwa.submit('{"type": "flow", "idempotencyKey": "roles-1",
        "onSuccess": [{"$event": "toast", "text": "done"}],
        "steps": [{"id": "a", "task": "roles.flow"},
                  {"id": "b", "task": "roles.flow", "input": {"x": "{{steps.a.x}}"}}]}'::jsonb)$$)::bigint;
SELECT is((SELECT steps_total FROM dwa.tasks WHERE id = pg_temp.id('submit')), 2,
    'submitter: dwa.submit(jsonb) stores a pipeline with effects and an idempotency key');
SELECT is(pg_temp.as_role('dwa_t_sub',
    $$SELECT dwa.submit('{"type": "flow", "idempotencyKey": "roles-1", "steps": []}'::jsonb)$$),
    pg_temp.id('submit')::text, 'submitter: a repeated idempotency key returns the first task');
INSERT INTO ids
SELECT 'submit_text', pg_temp.as_role('dwa_t_sub',
    $$SELECT dwa.submit('{"type": "roles.other"}'::text)$$)::bigint;
SELECT is((SELECT type FROM dwa.tasks WHERE id = pg_temp.id('submit_text')), 'roles.other',
    'submitter: dwa.submit(text) stores a task');

-- Rejections reach a submitter as validation errors, not as missing
-- privileges on the helpers validation uses.
SELECT alike(pg_temp.as_role('dwa_t_sub', $$SELECT dwa.submit('{"type": "roles.work",
    "timeout": "soon"}'::jsonb)$$), 'error 22023: %',
    'submitter: a bad timeout is a validation error (22023)');
SELECT alike(pg_temp.as_role('dwa_t_sub', $$SELECT dwa.submit('{"type": "flow",
    "steps": [{"id": "a", "task": "roles.work", "dependsOn": ["x"]}]}'::jsonb)$$),
    'error 22023: %', 'submitter: a bad step is a validation error (22023)');
SELECT alike(pg_temp.as_role('dwa_t_sub', $$SELECT dwa.submit('{"type": ')$$),
    'error 22023: %', 'submitter: malformed JSON through dwa.submit(text) is 22023');
SELECT alike(pg_temp.as_role('dwa_t_sub',
    $$INSERT INTO dwa.tasks (type) VALUES ('roles.nope') RETURNING id$$),
    'error 22023: %', 'submitter: an INSERT of an unknown type is 22023');

SELECT is(pg_temp.as_role('dwa_t_sub', format(
    $$SELECT status FROM dwa.tasks WHERE id = %s$$, pg_temp.id('insert'))), 'queued',
    'submitter: reads dwa.tasks');
SELECT is(pg_temp.as_role('dwa_t_sub', format(
    $$SELECT string_agg(step_id || ':' || status, ' ' ORDER BY step_index)
        FROM dwa.task_steps WHERE task_id = %s$$, pg_temp.id('submit'))), 'a:ready b:waiting',
    'submitter: reads dwa.task_steps');
SELECT is(pg_temp.as_role('dwa_t_sub',
    $$SELECT count(*) > 0 FROM dwa.queue_stats$$), 'true', 'submitter: reads dwa.queue_stats');

SELECT is(pg_temp.as_role('dwa_t_sub', $$SELECT count(*) FROM dwa.claim('sub', ARRAY['roles.work'], 1)$$),
    'error 42501: permission denied for function claim', 'submitter: may not call dwa.claim');
SELECT is(pg_temp.as_role('dwa_t_sub', format(
    $$UPDATE dwa.steps SET status = 'succeeded' WHERE task_id = %s RETURNING id$$,
    pg_temp.id('insert'))),
    'error 42501: permission denied for table steps', 'submitter: may not update dwa.steps');
SELECT is(pg_temp.as_role('dwa_t_sub', format(
    $$UPDATE dwa.tasks SET status = 'completed' WHERE id = %s RETURNING id$$, pg_temp.id('insert'))),
    'error 42501: permission denied for table tasks', 'submitter: may not update dwa.tasks');
SELECT is(pg_temp.as_role('dwa_t_sub', format($$SELECT dwa.complete(%s, '{}')$$, 1)),
    'error 42501: permission denied for function complete', 'submitter: may not call dwa.complete');
SELECT is(pg_temp.as_role('dwa_t_sub', format($$SELECT dwa.cancel(%s)$$, pg_temp.id('insert'))),
    'error 42501: permission denied for function cancel', 'submitter: may not cancel');
SELECT is(pg_temp.as_role('dwa_t_sub', $$SELECT dwa.limit_set('type:roles.work', 1)$$),
    'error 42501: permission denied for function limit_set', 'submitter: may not set limits');
SELECT is((SELECT status FROM dwa.tasks WHERE id = pg_temp.id('insert')), 'queued',
    'submitter: the refused statements changed nothing');

-- A role with none of the three is refused even reading.
SELECT is(pg_temp.as_role('dwa_t_none', $$SELECT count(*) FROM dwa.tasks$$),
    'error 42501: permission denied for schema dwa', 'no DWA role: nothing, not even reading');

-- ---------------------------------------------------------------------
-- dwa_worker: claim, heartbeat, progress, stream, complete, fail.

INSERT INTO ids
SELECT 'run1', pg_temp.as_role('dwa_t_wrk',
    $$SELECT run_id FROM dwa.claim('roles-w', ARRAY['roles.other'], 1)$$)::bigint;
SELECT is((SELECT task_id FROM dwa.steps WHERE run_id = pg_temp.id('run1') AND status = 'running'),
    pg_temp.id('submit_text'), 'worker: dwa.claim takes the ready step');
SELECT is(pg_temp.as_role('dwa_t_wrk', format(
    $$SELECT dwa.heartbeat('roles-w', ARRAY[%s]::bigint[])::text$$, pg_temp.id('run1'))),
    '{' || pg_temp.id('run1') || '}', 'worker: dwa.heartbeat extends the lease');
SELECT is(pg_temp.as_role('dwa_t_wrk', format(
    $$SELECT dwa.progress(%s, 45, '{"frame": 1}')$$, pg_temp.id('run1'))), 'true',
    'worker: dwa.progress reports');
SELECT is((SELECT progress FROM dwa.tasks WHERE id = pg_temp.id('submit_text')), 45,
    'worker: the progress reached the task');
SELECT is(pg_temp.as_role('dwa_t_wrk', format(
    $$SELECT dwa.stream(%s, 'frame', '{"n": 1}')$$, pg_temp.id('run1'))), 'true',
    'worker: dwa.stream records an event');
SELECT is(pg_temp.as_role('dwa_t_wrk', format(
    $$SELECT dwa.complete(%s, '{"ok": true}')$$, pg_temp.id('run1'))), 'true',
    'worker: dwa.complete completes');
SELECT is((SELECT status || ' ' || result::text FROM dwa.tasks WHERE id = pg_temp.id('submit_text')),
    'completed {"ok": true}', 'worker: the task completed with the output');

INSERT INTO ids
SELECT 'run2', pg_temp.as_role('dwa_t_wrk',
    $$SELECT run_id FROM dwa.claim('roles-w', ARRAY['roles.work'], 1)$$)::bigint;
SELECT is(pg_temp.as_role('dwa_t_wrk', format(
    $$SELECT dwa.fail(%s, 'rate limited', retryable => true, retry_after => '1 hour')$$,
    pg_temp.id('run2'))), 'true', 'worker: dwa.fail (retryable, retry_after) records a failure');
SELECT is((SELECT status || ' ' || error FROM dwa.steps WHERE run_id = pg_temp.id('run2')),
    'ready rate limited', 'worker: the failed step waits for its retry');
INSERT INTO ids VALUES ('fail', dwa.submit('{"type": "roles.fail"}'::jsonb));
INSERT INTO ids
SELECT 'run3', pg_temp.as_role('dwa_t_wrk',
    $$SELECT run_id FROM dwa.claim('roles-w', ARRAY['roles.fail'], 1)$$)::bigint;
SELECT is(pg_temp.as_role('dwa_t_wrk', format(
    $$SELECT dwa.fail(%s, 'boom', retryable => false)$$, pg_temp.id('run3'))), 'true',
    'worker: dwa.fail (permanent) records a failure');
SELECT is((SELECT status FROM dwa.tasks WHERE id = pg_temp.id('fail')), 'failed',
    'worker: the task failed for good');

SELECT is(pg_temp.as_role('dwa_t_wrk', $$SELECT count(*) FROM dwa.tasks$$),
    (SELECT count(*) FROM dwa.tasks)::text, 'worker: reads dwa.tasks');
SELECT is(pg_temp.as_role('dwa_t_wrk', format($$SELECT dwa.cancel(%s)$$, pg_temp.id('insert'))),
    'error 42501: permission denied for function cancel', 'worker: may not cancel');
SELECT is(pg_temp.as_role('dwa_t_wrk', $$SELECT dwa.limit_set('type:roles.work', 1)$$),
    'error 42501: permission denied for function limit_set', 'worker: may not set limits');
SELECT is(pg_temp.as_role('dwa_t_wrk', $$SELECT dwa.submit('{"type": "roles.work"}'::jsonb)$$),
    'error 42501: permission denied for function submit', 'worker: may not submit');
SELECT is(pg_temp.as_role('dwa_t_wrk', format(
    $$UPDATE dwa.steps SET status = 'ready' WHERE task_id = %s RETURNING id$$, pg_temp.id('insert'))),
    'error 42501: permission denied for table steps', 'worker: may not update dwa.steps directly');

-- ---------------------------------------------------------------------
-- dwa_admin: cancel, retry, limits; and what the other two may.

SELECT is(pg_temp.as_role('dwa_t_adm', format($$SELECT dwa.cancel(%s)$$, pg_temp.id('submit'))),
    'true', 'admin: dwa.cancel cancels');
SELECT is((SELECT status FROM dwa.tasks WHERE id = pg_temp.id('submit')), 'cancelled',
    'admin: the task is cancelled');
SELECT is(pg_temp.as_role('dwa_t_adm', format($$SELECT dwa.retry(%s)$$, pg_temp.id('submit'))),
    'true', 'admin: dwa.retry resumes it');
SELECT is(pg_temp.as_role('dwa_t_adm',
    $$SELECT dwa.limit_set('type:roles.work', 2, '10/s', 3)$$), '',
    'admin: dwa.limit_set sets a limit');
SELECT is((SELECT max_concurrency || ' ' || rate || ' ' || burst FROM dwa.limits
    WHERE key = 'type:roles.work'), '2 10 3', 'admin: the limit is stored');
SELECT is(pg_temp.as_role('dwa_t_adm',
    $$SELECT max_concurrency FROM dwa.limit_stats WHERE key = 'type:roles.work'$$), '2',
    'admin: reads dwa.limit_stats');
SELECT is(pg_temp.as_role('dwa_t_adm', $$SELECT dwa.limit_delete('type:roles.work')$$), 'true',
    'admin: dwa.limit_delete removes it');
SELECT is(pg_temp.as_role('dwa_t_adm', $$SELECT dwa.submit('{"type": "roles.adm"}'::jsonb) > 0$$)
    || ' ' || pg_temp.as_role('dwa_t_adm',
    $$SELECT count(*) FROM dwa.claim('roles-adm', ARRAY['roles.adm'], 1)$$),
    'true 1', 'admin: submits and claims too (member of the other two)');

SELECT * FROM finish();
ROLLBACK;
