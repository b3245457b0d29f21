-- retry.sql: transient failures and their backoff, retry_after, running
-- out of attempts, dwa.cancel and dwa.retry (resume).
--
-- Everything runs in one transaction, where now() stands still: a step
-- retried "later" is made due again by setting its run_after to now(),
-- which is what the passing of time would do.
BEGIN;
SELECT plan(122);

INSERT INTO dwa.task_types (name, executor)
SELECT 'rt.' || n, 'worker'
  FROM unnest(ARRAY['flaky', 'jitter', 'late', 'last', 'perm', 'step', 'c1', 'c2', 'c3',
                    'ra', 'rb', 'rc', 'rd', 'fe', 'q', 'neg']) n;
INSERT INTO dwa.task_types (name, executor, retry)
VALUES ('rt.typed', 'worker', '{"attempts":2,"backoff":{"initialMs":60000,"maxMs":600000}}');

\ir ../lib/named.sql
CREATE TEMP TABLE claims AS SELECT * FROM dwa.claim('nobody', ARRAY['no.such.type'], 1);
CREATE FUNCTION pg_temp.claim(p_type text, p_n integer DEFAULT 10) RETURNS bigint
LANGUAGE sql AS $$
    WITH c AS (INSERT INTO claims SELECT * FROM dwa.claim('tester', ARRAY[p_type], p_n) RETURNING 1)
    SELECT count(*) FROM c
$$;
CREATE FUNCTION pg_temp.run(p_task text, p_step text DEFAULT '0', p_item integer DEFAULT NULL)
RETURNS bigint LANGUAGE sql AS $$
    SELECT max(run_id) FROM claims
     WHERE task_id = pg_temp.id(p_task) AND step_id = p_step
       AND item_index IS NOT DISTINCT FROM p_item
$$;
CREATE FUNCTION pg_temp.step(p_task text, p_step text DEFAULT '0', p_item integer DEFAULT NULL)
RETURNS dwa.steps LANGUAGE sql AS $$
    SELECT * FROM dwa.steps
     WHERE task_id = pg_temp.id(p_task) AND step_id = p_step
       AND item_index IS NOT DISTINCT FROM p_item
$$;
CREATE FUNCTION pg_temp.task(p_task text) RETURNS dwa.tasks LANGUAGE sql AS $$
    SELECT * FROM dwa.tasks WHERE id = pg_temp.id(p_task)
$$;
-- due: let a task's pending retries come due; returns how many.
CREATE FUNCTION pg_temp.due(p_task text) RETURNS bigint LANGUAGE sql AS $$
    -- Time passes for the retry-after pauses of limit keys too.
    UPDATE dwa.limits SET paused_until = now() WHERE paused_until > now();
    WITH u AS (UPDATE dwa.steps SET run_after = now()
                WHERE task_id = pg_temp.id(p_task) AND status = 'ready' AND run_after > now()
               RETURNING 1)
    SELECT count(*) FROM u
$$;

-- ---------------------------------------------------------------------
-- Backoff arithmetic: min(maxMs, initialMs * factor^(attempt-1)).

SELECT results_eq(
    $$SELECT n, dwa._retry_delay('{"backoff":{"initialMs":100,"factor":3,"maxMs":1000}}', n)
        FROM generate_series(1, 4) n$$,
    $$VALUES (1, interval '100 ms'), (2, interval '300 ms'), (3, interval '900 ms'), (4, interval '1000 ms')$$,
    '_retry_delay: 100, 300, 900, then capped at 1000 ms');
SELECT results_eq(
    $$SELECT n, dwa._retry_delay(NULL, n) FROM unnest(ARRAY[1, 2, 3, 6, 7, 20]) n$$,
    $$VALUES (1, interval '1 s'), (2, interval '2 s'), (3, interval '4 s'), (6, interval '32 s'),
             (7, interval '60 s'), (20, interval '60 s')$$,
    '_retry_delay: defaults initialMs 1000, factor 2, maxMs 60000');
SELECT results_eq(
    $$SELECT n, dwa._retry_delay('{"attempts":9,"backoff":{"initialMs":250}}', n) FROM generate_series(1, 3) n$$,
    $$VALUES (1, interval '250 ms'), (2, interval '500 ms'), (3, interval '1 s')$$,
    '_retry_delay: a partial policy takes the other defaults');
SELECT is(dwa._retry_delay('{"backoff":{"initialMs":100,"factor":1}}', 50), interval '100 ms',
    '_retry_delay: factor 1 keeps the delay constant');

-- ---------------------------------------------------------------------
-- A transient failure: ready again later, the attempt counted; after the
-- last attempt the step and the task fail.

INSERT INTO ids SELECT 'flaky', dwa.submit('{"type":"rt.flaky",
    "retry":{"backoff":{"initialMs":10000,"factor":3,"maxMs":600000}}}'::jsonb);
SELECT is(pg_temp.claim('rt.flaky'), 1::bigint, 'transient: attempt 1 claimed');
SELECT is(dwa.fail(pg_temp.run('flaky'), 'connection reset'), true, 'transient: fail returns true');
SELECT results_eq($$SELECT status, attempt, error, run_id IS NOT NULL, lease_until
                      FROM dwa.steps WHERE task_id = pg_temp.id('flaky')$$,
    $$VALUES ('ready'::text, 1, 'connection reset'::text, true, NULL::timestamptz)$$,
    'transient: the step is ready again, attempt 1 counted, the error kept');
SELECT ok((pg_temp.step('flaky')).run_after - now() BETWEEN interval '5 s' AND interval '10 s',
    'transient: first retry after 10 s with jitter: within [5 s, 10 s]');
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('flaky')$$,
    $$VALUES ('running'::text, NULL::text)$$, 'transient: the task keeps running');
SELECT is(pg_temp.claim('rt.flaky'), 0::bigint, 'transient: not claimable before its run_after');
SELECT is(pg_temp.due('flaky'), 1::bigint, 'transient: time passes');
SELECT is(pg_temp.claim('rt.flaky'), 1::bigint, 'transient: claimable once due');
SELECT is((pg_temp.step('flaky')).attempt, 2, 'transient: attempt 2');
SELECT ok(dwa.fail(pg_temp.run('flaky'), 'connection reset'), 'transient: attempt 2 fails');
SELECT ok((pg_temp.step('flaky')).run_after - now() BETWEEN interval '15 s' AND interval '30 s',
    'transient: second retry after 30 s with jitter: within [15 s, 30 s]');
SELECT is(pg_temp.due('flaky'), 1::bigint, 'transient: time passes');
SELECT is(pg_temp.claim('rt.flaky'), 1::bigint, 'transient: attempt 3 claimed');
SELECT ok(dwa.fail(pg_temp.run('flaky'), 'connection reset'), 'transient: attempt 3 fails');
SELECT results_eq($$SELECT status, attempt, error FROM dwa.steps WHERE task_id = pg_temp.id('flaky')$$,
    $$VALUES ('failed'::text, 3, 'connection reset (after 3 attempts)'::text)$$,
    'transient: after 3 attempts (the default) the step fails');
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('flaky')$$,
    $$VALUES ('failed'::text, 'step "0": connection reset (after 3 attempts)'::text)$$,
    'transient: ... and the task with it');
SELECT is(pg_temp.claim('rt.flaky'), 0::bigint, 'transient: nothing left to claim');

-- Jitter: twenty first retries of 1 s all lie in [0.5 s, 1 s], not all equal.
INSERT INTO ids SELECT 'jitter' || g, dwa.submit('{"type":"rt.jitter","retry":{"backoff":{"initialMs":1000}}}'::jsonb)
  FROM generate_series(1, 20) g;
SELECT is(pg_temp.claim('rt.jitter', 100), 20::bigint, 'jitter: twenty runs claimed');
SELECT is((SELECT count(*) FILTER (WHERE dwa.fail(c.run_id, 'busy')) FROM claims c WHERE c.task = 'rt.jitter'),
    20::bigint, 'jitter: twenty transient failures');
SELECT results_eq(
    $$SELECT min(run_after - now()) >= interval '500 ms', max(run_after - now()) <= interval '1 s',
             count(DISTINCT run_after) > 1
        FROM dwa.steps s WHERE s.task = 'rt.jitter' AND s.status = 'ready'
      HAVING count(*) = 20$$,
    $$VALUES (true, true, true)$$,
    'jitter: every delay within [delay/2, delay], and they differ');

-- The policy comes from the step, else the task, else the task type.
INSERT INTO ids SELECT 'typed', dwa.submit('{"type":"rt.typed"}'::jsonb);
SELECT is((pg_temp.step('typed')).max_attempts, 2, 'policy: attempts from the task type');
SELECT is(pg_temp.claim('rt.typed'), 1::bigint, 'policy: typed step claimed');
SELECT ok(dwa.fail(pg_temp.run('typed'), 'x'), 'policy: typed step fails');
SELECT ok((pg_temp.step('typed')).run_after - now() BETWEEN interval '30 s' AND interval '60 s',
    'policy: backoff from the task type (60 s with jitter)');
INSERT INTO ids SELECT 'stepped', dwa.submit('{"type":"x","retry":{"backoff":{"initialMs":1000}},
    "steps":[{"task":"rt.step","retry":{"attempts":4,"backoff":{"initialMs":200000,"maxMs":200000}}}]}'::jsonb);
SELECT is((pg_temp.step('stepped')).max_attempts, 4, 'policy: attempts from the step');
SELECT is(pg_temp.claim('rt.step'), 1::bigint, 'policy: the step is claimed');
SELECT ok(dwa.fail(pg_temp.run('stepped'), 'x'), 'policy: the step fails');
SELECT ok((pg_temp.step('stepped')).run_after - now() BETWEEN interval '100 s' AND interval '200 s',
    'policy: backoff from the step (200 s with jitter), not from the task');

INSERT INTO ids SELECT 'festep', dwa.submit('{"type":"x","retry":{"backoff":{"initialMs":1000}},
    "steps":[{"id":"e","task":"rt.step","forEach":[1],"retry":{"attempts":4,"backoff":{"initialMs":200000,"maxMs":200000}}}]}'::jsonb);
SELECT is((pg_temp.step('festep', 'e', 0)).max_attempts, 4, 'policy: a forEach element gets the step''s attempts');
SELECT is(pg_temp.claim('rt.step'), 1::bigint, 'policy: the element is claimed');
SELECT ok(dwa.fail(pg_temp.run('festep', 'e', 0), 'x'), 'policy: the element fails');
SELECT ok((pg_temp.step('festep', 'e', 0)).run_after - now() BETWEEN interval '100 s' AND interval '200 s',
    'policy: a forEach element backs off by its step''s policy, not the task''s');

INSERT INTO ids SELECT 'tasked', dwa.submit('{"type":"x","retry":{"backoff":{"initialMs":400000,"maxMs":400000}},
    "steps":[{"task":"rt.q"},{"task":"rt.q"}]}'::jsonb);
SELECT is(pg_temp.claim('rt.q'), 1::bigint, 'policy: a step without a policy of its own is claimed');
SELECT ok(dwa.fail(pg_temp.run('tasked'), 'x'), 'policy: it fails');
SELECT ok((pg_temp.step('tasked')).run_after - now() BETWEEN interval '200 s' AND interval '400 s',
    'policy: a step without a policy of its own backs off by the task''s (400 s with jitter)');

-- A permanent failure is not retried.
INSERT INTO ids SELECT 'perm', dwa.submit('{"type":"rt.perm"}'::jsonb);
SELECT is(pg_temp.claim('rt.perm'), 1::bigint, 'permanent: claimed');
SELECT ok(dwa.fail(pg_temp.run('perm'), 'model not found', retryable => false, retry_after => '2 s'),
    'permanent: fails');
SELECT results_eq($$SELECT s.status, s.attempt, t.status, t.error FROM dwa.steps s
                      JOIN dwa.tasks t ON t.id = s.task_id WHERE t.id = pg_temp.id('perm')$$,
    $$VALUES ('failed'::text, 1, 'failed'::text, 'step "0": model not found'::text)$$,
    'permanent: the step and the task fail at once, retry_after or not');

-- ---------------------------------------------------------------------
-- retry_after: retry at the time given, without spending an attempt.

INSERT INTO ids SELECT 'late', dwa.submit('{"type":"rt.late"}'::jsonb);
SELECT is(pg_temp.claim('rt.late'), 1::bigint, 'retry_after: claimed');
SELECT ok(dwa.fail(pg_temp.run('late'), 'rate limited', retryable => true, retry_after => '2 s'),
    'retry_after: fails with retry_after 2 s');
SELECT results_eq($$SELECT status, attempt, run_after, error FROM dwa.steps WHERE task_id = pg_temp.id('late')$$,
    $$VALUES ('ready'::text, 0, now() + interval '2 s', 'rate limited'::text)$$,
    'retry_after: ready at now() + 2 s exactly, the attempt not spent');
INSERT INTO ids SELECT 'neg', dwa.submit('{"type":"rt.neg"}'::jsonb);
SELECT is(pg_temp.claim('rt.neg'), 1::bigint, 'negative retry_after: claimed');
SELECT throws_ok(format('SELECT dwa.fail(%s, %L, retry_after => %L)', pg_temp.run('neg'),
        'rate limited', '-5 s'),
    '22023', 'retry_after: must not be negative, got -00:00:05',
    'negative retry_after: refused, naming the argument');
SELECT results_eq($$SELECT status, attempt, error FROM dwa.steps WHERE task_id = pg_temp.id('neg')$$,
    $$VALUES ('running'::text, 1, NULL::text)$$,
    'negative retry_after: the run goes on, nothing recorded');
INSERT INTO ids SELECT 'last', dwa.submit('{"type":"rt.last","retry":{"attempts":1}}'::jsonb);
SELECT is(pg_temp.claim('rt.last'), 1::bigint, 'retry_after on the last attempt: claimed');
SELECT ok(dwa.fail(pg_temp.run('last'), 'rate limited', retry_after => '90 s'),
    'retry_after on the last attempt: fails with retry_after');
SELECT results_eq($$SELECT status, attempt, run_after FROM dwa.steps WHERE task_id = pg_temp.id('last')$$,
    $$VALUES ('ready'::text, 0, now() + interval '90 s')$$,
    'retry_after on the last attempt: retried, not failed');
SELECT is(pg_temp.due('last'), 1::bigint, 'retry_after: time passes');
SELECT is(pg_temp.claim('rt.last'), 1::bigint, 'retry_after on the last attempt: claimed again');
SELECT is((pg_temp.step('last')).attempt, 1, '... as attempt 1');
SELECT ok(dwa.fail(pg_temp.run('last'), 'still down'), 'attempts 1: a plain transient failure');
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('last')$$,
    $$VALUES ('failed'::text, 'step "0": still down (after 1 attempts)'::text)$$,
    'attempts 1: the first plain transient failure is final');

-- ---------------------------------------------------------------------
-- dwa.cancel.

SELECT throws_ok('SELECT dwa.cancel(987654321)', 'P0002', 'task 987654321 not found',
    'cancel: an unknown task raises P0002');
INSERT INTO ids SELECT 'c1', dwa.submit('{"type":"c1","steps":[{"task":"rt.c1"},{"task":"rt.c1"}]}'::jsonb);
SELECT is(dwa.cancel(pg_temp.id('c1')), true, 'cancel: a queued task: true');
SELECT results_eq($$SELECT status, finished_at FROM dwa.tasks WHERE id = pg_temp.id('c1')$$,
    $$VALUES ('cancelled'::text, now())$$, 'cancel: the task is cancelled');
SELECT results_eq($$SELECT step_id, status FROM dwa.steps WHERE task_id = pg_temp.id('c1') ORDER BY step_index$$,
    $$VALUES ('0'::text, 'cancelled'::text), ('1', 'cancelled')$$, 'cancel: ready and waiting steps are cancelled');
SELECT is(dwa.cancel(pg_temp.id('c1')), false, 'cancel: a second cancel: false');
SELECT is(pg_temp.claim('rt.c1'), 0::bigint, 'cancel: nothing to claim');

INSERT INTO ids SELECT 'c2', dwa.submit('{"type":"rt.c2","payload":{"n":1}}'::jsonb);
SELECT is(pg_temp.claim('rt.c2'), 1::bigint, 'cancel a running task: claimed');
SELECT is(dwa.cancel(pg_temp.id('c2')), true, 'cancel a running task: true');
SELECT results_eq($$SELECT status, lease_until FROM dwa.steps WHERE task_id = pg_temp.id('c2')$$,
    $$VALUES ('cancelled'::text, NULL::timestamptz)$$, 'cancel a running task: the running step is cancelled');
SELECT is(dwa.complete(pg_temp.run('c2'), '{"late":true}'), false,
    'cancel a running task: a completion afterwards returns false');
SELECT is(dwa.fail(pg_temp.run('c2'), 'late'), false, 'cancel a running task: so does a failure');
SELECT is(dwa.progress(pg_temp.run('c2'), 50), false, 'cancel a running task: and progress');
SELECT results_eq(
    $$SELECT t.status, t.result, t.error, s.status, s.output, s.error, s.progress
        FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id WHERE t.id = pg_temp.id('c2')$$,
    $$VALUES ('cancelled'::text, NULL::jsonb, NULL::text, 'cancelled'::text, NULL::jsonb, NULL::text, NULL::integer)$$,
    'cancel a running task: ... and nothing changed');

INSERT INTO ids SELECT 'c3', dwa.submit('{"type":"rt.c3"}'::jsonb);
SELECT is(pg_temp.claim('rt.c3'), 1::bigint, 'cancel a completed task: claimed');
SELECT ok(dwa.complete(pg_temp.run('c3'), '"done"'), 'cancel a completed task: completed');
SELECT is(dwa.cancel(pg_temp.id('c3')), false, 'cancel a completed task: false');
SELECT results_eq($$SELECT t.status, t.result, s.status FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id
                     WHERE t.id = pg_temp.id('c3')$$,
    $$VALUES ('completed'::text, '"done"'::jsonb, 'succeeded'::text)$$,
    'cancel a completed task: it stays completed');

-- ---------------------------------------------------------------------
-- dwa.retry: resume a failed DAG, re-running only what did not succeed.

SELECT throws_ok('SELECT dwa.retry(987654321)', 'P0002', 'task 987654321 not found',
    'retry: an unknown task raises P0002');
INSERT INTO ids SELECT 'dag', dwa.submit('{"type":"dag","payload":{"src":"s3://x"},"steps":[
    {"id":"a","task":"rt.ra"},
    {"id":"b","task":"rt.rb","dependsOn":["a"]},
    {"id":"c","task":"rt.rc","dependsOn":["a"]},
    {"id":"d","task":"rt.rd","dependsOn":["b","c"]}]}'::jsonb);
SELECT throws_ok(format('SELECT dwa.retry(%s)', pg_temp.id('dag')), '55000',
    format('task %s is queued: only failed or cancelled tasks can be retried', pg_temp.id('dag')),
    'retry: a queued task raises 55000');
SELECT is(pg_temp.claim('rt.ra'), 1::bigint, 'resume: a claimed');
SELECT ok(dwa.complete(pg_temp.run('dag', 'a'), '{"a":1}'), 'resume: a completes');
SELECT is(pg_temp.claim('rt.rb') + pg_temp.claim('rt.rc'), 2::bigint, 'resume: b and c claimed');
SELECT throws_ok(format('SELECT dwa.retry(%s)', pg_temp.id('dag')), '55000',
    format('task %s is running: only failed or cancelled tasks can be retried', pg_temp.id('dag')),
    'retry: a running task raises 55000');
SELECT ok(dwa.fail(pg_temp.run('dag', 'b'), 'disk full', retryable => false), 'resume: b fails for good');
SELECT results_eq($$SELECT step_id, status FROM dwa.steps WHERE task_id = pg_temp.id('dag') ORDER BY step_index$$,
    $$VALUES ('a'::text, 'succeeded'::text), ('b', 'failed'), ('c', 'cancelled'), ('d', 'skipped')$$,
    'resume: before the retry: a succeeded, b failed, c cancelled, d skipped');
CREATE TEMP TABLE a_before AS SELECT * FROM dwa.steps WHERE task_id = pg_temp.id('dag') AND step_id = 'a';

SELECT is(dwa.retry(pg_temp.id('dag')), true, 'resume: retry returns true');
SELECT results_eq($$SELECT status, error, result, finished_at FROM dwa.tasks WHERE id = pg_temp.id('dag')$$,
    $$VALUES ('running'::text, NULL::text, NULL::jsonb, NULL::timestamptz)$$,
    'resume: the task runs again, its error cleared');
SELECT results_eq(
    $$SELECT step_id, status, attempt, error, input, remaining_deps
        FROM dwa.steps WHERE task_id = pg_temp.id('dag') ORDER BY step_index$$,
    $$VALUES ('a'::text, 'succeeded'::text, 1, NULL::text, '{"src":"s3://x"}'::jsonb, 0),
             ('b', 'ready', 0, NULL, '{"a":1}', 0),
             ('c', 'ready', 0, NULL, '{"a":1}', 0),
             ('d', 'waiting', 0, NULL, NULL, 2)$$,
    'resume: b and c ready again with fresh attempts and a''s kept output; d waits for both');
SELECT results_eq(
    $$SELECT run_id, output, started_at, finished_at FROM dwa.steps WHERE task_id = pg_temp.id('dag') AND step_id = 'a'$$,
    $$SELECT run_id, output, started_at, finished_at FROM a_before$$,
    'resume: the succeeded step is untouched');
SELECT is(pg_temp.claim('rt.ra'), 0::bigint, 'resume: a does not run again');
SELECT throws_ok(format('SELECT dwa.retry(%s)', pg_temp.id('dag')), '55000',
    format('task %s is running: only failed or cancelled tasks can be retried', pg_temp.id('dag')),
    'retry: a resumed task cannot be retried again while it runs');
SELECT is(dwa.complete(pg_temp.run('dag', 'c'), '"stale"'), false,
    'resume: the cancelled run of c stays refused');
SELECT is(pg_temp.claim('rt.rb') + pg_temp.claim('rt.rc'), 2::bigint, 'resume: b and c claimed again');
SELECT ok(dwa.complete(pg_temp.run('dag', 'b'), '"B"'), 'resume: b completes');
SELECT ok(dwa.complete(pg_temp.run('dag', 'c'), '"C"'), 'resume: c completes');
SELECT is((pg_temp.step('dag', 'd')).input, '{"b":"B","c":"C"}'::jsonb, 'resume: d gets b and c');
SELECT is(pg_temp.claim('rt.rd'), 1::bigint, 'resume: d claimed');
SELECT ok(dwa.complete(pg_temp.run('dag', 'd'), '{"final":true}'), 'resume: d completes');
SELECT results_eq($$SELECT status, result, progress, steps_done, steps_total FROM dwa.tasks WHERE id = pg_temp.id('dag')$$,
    $$VALUES ('completed'::text, '{"final":true}'::jsonb, 100, 4, 4)$$,
    'resume: the task completes, every step counted once');
SELECT throws_ok(format('SELECT dwa.retry(%s)', pg_temp.id('dag')), '55000',
    format('task %s is completed: only failed or cancelled tasks can be retried', pg_temp.id('dag')),
    'retry: a completed task raises 55000');

-- A cancelled task that never ran goes back to queued.
SELECT is(dwa.retry(pg_temp.id('c1')), true, 'retry a cancelled task: true');
SELECT results_eq($$SELECT t.status, s.step_id, s.status, s.attempt FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id
                     WHERE t.id = pg_temp.id('c1') ORDER BY s.step_index$$,
    $$VALUES ('queued'::text, '0'::text, 'ready'::text, 0), ('queued', '1', 'waiting', 0)$$,
    'retry a cancelled task: queued again, its first step ready');

-- A failed forEach resumes with only its unfinished elements.
INSERT INTO ids SELECT 'fe', dwa.submit('{"type":"fe","steps":[
    {"id":"e","task":"rt.fe","forEach":["x","y","z","w"],"forEachConcurrency":3}]}'::jsonb);
SELECT is(pg_temp.claim('rt.fe'), 3::bigint, 'forEach resume: three elements claimed');
SELECT ok(dwa.complete(pg_temp.run('fe', 'e', 0), '"X"'), 'forEach resume: element 0 completes');
SELECT ok(dwa.fail(pg_temp.run('fe', 'e', 1), 'broken', retryable => false), 'forEach resume: element 1 fails');
SELECT is((pg_temp.task('fe')).status, 'failed', 'forEach resume: the task failed');
SELECT ok(dwa.retry(pg_temp.id('fe')), 'forEach resume: retried');
SELECT results_eq(
    $$SELECT item_index, status, output FROM dwa.steps WHERE task_id = pg_temp.id('fe') ORDER BY item_index NULLS FIRST$$,
    $$VALUES (NULL::integer, 'running'::text, NULL::jsonb), (0, 'succeeded', '"X"'),
             (1, 'ready', NULL), (2, 'ready', NULL), (3, 'ready', NULL)$$,
    'forEach resume: element 0 kept, the other three ready (concurrency 3)');
SELECT is(pg_temp.claim('rt.fe'), 3::bigint, 'forEach resume: three elements claimed again');
SELECT ok(dwa.complete(pg_temp.run('fe', 'e', 3), '"W"'), 'forEach resume: element 3 completes');
SELECT ok(dwa.complete(pg_temp.run('fe', 'e', 1), '"Y"'), 'forEach resume: element 1 completes');
SELECT ok(dwa.complete(pg_temp.run('fe', 'e', 2), '"Z"'), 'forEach resume: element 2 completes');
SELECT results_eq($$SELECT status, result FROM dwa.tasks WHERE id = pg_temp.id('fe')$$,
    $$VALUES ('completed'::text, '["X","Y","Z","W"]'::jsonb)$$,
    'forEach resume: the task completes with all outputs in element order');

-- One element at a time: after a retry the cursor starts the rest in order.
INSERT INTO ids SELECT 'fe1', dwa.submit('{"type":"fe1","steps":[
    {"id":"e","task":"rt.fe","forEach":["a","b","c"],"forEachConcurrency":1}]}'::jsonb);
SELECT is(pg_temp.claim('rt.fe'), 1::bigint, 'forEach cursor: one element claimed');
SELECT ok(dwa.fail(pg_temp.run('fe1', 'e', 0), 'broken', retryable => false),
    'forEach cursor: element 0 fails');
SELECT ok(dwa.retry(pg_temp.id('fe1')), 'forEach cursor: retried');
SELECT results_eq(
    $$SELECT item_index, status FROM dwa.steps
       WHERE task_id = pg_temp.id('fe1') AND item_index IS NOT NULL ORDER BY item_index$$,
    $$VALUES (0, 'ready'::text), (1, 'waiting'), (2, 'waiting')$$,
    'forEach cursor: element 0 ready again, the others wait');
SELECT is((pg_temp.step('fe1', 'e')).fe_next, 1, 'forEach cursor: at element 1');
SELECT is(pg_temp.claim('rt.fe'), 1::bigint, 'forEach cursor: element 0 claimed alone');
SELECT ok(dwa.complete(pg_temp.run('fe1', 'e', 0), '"A"'), 'forEach cursor: element 0 completes');
SELECT is(pg_temp.claim('rt.fe'), 1::bigint, 'forEach cursor: then element 1 alone');
SELECT is((SELECT item_index FROM claims ORDER BY run_id DESC LIMIT 1), 1,
    'forEach cursor: it is element 1');
SELECT ok(dwa.complete(pg_temp.run('fe1', 'e', 1), '"B"'), 'forEach cursor: element 1 completes');
SELECT is(pg_temp.claim('rt.fe'), 1::bigint, 'forEach cursor: then element 2');
SELECT ok(dwa.complete(pg_temp.run('fe1', 'e', 2), '"C"'), 'forEach cursor: element 2 completes');
SELECT results_eq($$SELECT status, result FROM dwa.tasks WHERE id = pg_temp.id('fe1')$$,
    $$VALUES ('completed'::text, '["A","B","C"]'::jsonb)$$,
    'forEach cursor: the task completes with the outputs in element order');

SELECT * FROM finish();
ROLLBACK;
