-- submit.sql: what a submission stores: the task row and its step rows
-- (single step, pipeline, DAG), addressing, default inputs, templates,
-- runAt, priority, idempotency, and plain INSERT INTO dwa.tasks.
BEGIN;
SELECT plan(49);

-- Worker-served types, one per role, so that dwa.claim picks exactly the
-- step a test means.
INSERT INTO dwa.task_types (name, executor)
SELECT 'sub.' || n, 'worker'
  FROM unnest(ARRAY['idx0', 'idx1', 'r', 'one', 'two', 'named', 'byindex', 'p0', 'p1']) n;

\ir ../lib/named.sql
-- step: the row of one step of a named task (not a forEach element).
CREATE FUNCTION pg_temp.step(p_task text, p_step text) RETURNS dwa.steps LANGUAGE sql AS $$
    SELECT * FROM dwa.steps
     WHERE task_id = pg_temp.id(p_task) AND step_id = p_step AND item_index IS NULL
$$;
-- work: claim the one ready step of type p_type and complete it.
CREATE FUNCTION pg_temp.work(p_type text, p_output jsonb) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r bigint;
BEGIN
    SELECT run_id INTO STRICT r FROM dwa.claim('tester', ARRAY[p_type], 1);
    RETURN dwa.complete(r, p_output);
END
$$;

-- ---------------------------------------------------------------------
-- A single-step task: one step "0" of the task's type, input = payload.

INSERT INTO ids SELECT 'single', dwa.submit('{"type":"echo","payload":{"prompt":"Hello!"}}'::jsonb);
SELECT results_eq(
    $$SELECT type, queue, priority, payload, status, steps_total, steps_done, progress
        FROM dwa.tasks WHERE id = pg_temp.id('single')$$,
    $$VALUES ('echo'::text, 'default'::text, 0, '{"prompt":"Hello!"}'::jsonb, 'queued'::text, 1, 0, 0)$$,
    'single step: the task row');
SELECT results_eq(
    $$SELECT step_index, item_index, step_id, task, status, input, remaining_deps, max_attempts, queue
        FROM dwa.steps WHERE task_id = pg_temp.id('single')$$,
    $$VALUES (0, NULL::integer, '0'::text, 'echo'::text, 'ready'::text, '{"prompt":"Hello!"}'::jsonb, 0, 3, 'default'::text)$$,
    'single step: exactly one step row, id "0", ready, input = payload');
SELECT is((SELECT run_after FROM dwa.steps WHERE task_id = pg_temp.id('single')), now(),
    'single step: claimable at once');

INSERT INTO ids SELECT 'nopayload', dwa.submit('{"type":"noop"}'::jsonb);
SELECT is((pg_temp.step('nopayload', '0')).input, '{}'::jsonb,
    'single step without payload: input is {}');

-- ---------------------------------------------------------------------
-- A pipeline: no dependsOn anywhere, so each step follows the previous one.

INSERT INTO ids SELECT 'pipe', dwa.submit('{
    "type": "pipe", "payload": {"url": "http://x/a"},
    "steps": [ {"id": "fetch", "task": "echo"},
               {"id": "parse", "task": "echo"},
               {"id": "store", "task": "noop"} ] }'::jsonb);
SELECT results_eq(
    $$SELECT step_index, step_id, task, status, remaining_deps, depends_on, dependents
        FROM dwa.steps WHERE task_id = pg_temp.id('pipe') ORDER BY step_index$$,
    $$VALUES (0, 'fetch'::text, 'echo'::text, 'ready'::text, 0, '{}'::integer[], '{1}'::integer[]),
             (1, 'parse', 'echo', 'waiting', 1, '{0}', '{2}'),
             (2, 'store', 'noop', 'waiting', 1, '{1}', '{}')$$,
    'pipeline: each step depends on the previous one; only the first is ready');
SELECT is((pg_temp.step('pipe', 'fetch')).input, '{"url":"http://x/a"}'::jsonb,
    'pipeline: the first step gets the payload');
SELECT is((pg_temp.step('pipe', 'parse')).input, NULL,
    'pipeline: a waiting step has no input yet');
SELECT results_eq($$SELECT status, steps_total FROM dwa.tasks WHERE id = pg_temp.id('pipe')$$,
    $$VALUES ('queued'::text, 3)$$, 'pipeline: the task is queued with 3 steps');

-- ---------------------------------------------------------------------
-- A DAG: roots start at once, joins wait for all their dependencies.

INSERT INTO ids SELECT 'dag', dwa.submit('{
    "type": "dag",
    "steps": [ {"id": "a", "task": "echo"},
               {"id": "b", "task": "echo"},
               {"id": "c", "task": "data.aggregate", "dependsOn": ["a", "b"]},
               {"id": "d", "task": "echo", "dependsOn": ["c"]},
               {"id": "e", "task": "echo", "dependsOn": ["0", "a"]} ] }'::jsonb);
SELECT results_eq(
    $$SELECT step_id, status, remaining_deps, depends_on, dependents
        FROM dwa.steps WHERE task_id = pg_temp.id('dag') ORDER BY step_index$$,
    $$VALUES ('a'::text, 'ready'::text, 0, '{}'::integer[], '{2,4}'::integer[]),
             ('b', 'ready', 0, '{}', '{2}'),
             ('c', 'waiting', 2, '{0,1}', '{3}'),
             ('d', 'waiting', 1, '{2}', '{}'),
             ('e', 'waiting', 1, '{0}', '{}')$$,
    'DAG: both roots ready, the join waits for 2, "0" and "a" are one dependency');

-- ---------------------------------------------------------------------
-- Index addressing: steps without id are "0", "1", ...; steps.0 works in
-- templates and dependsOn, also for a step that has a name.

INSERT INTO ids SELECT 'idx', dwa.submit('{
    "type": "idx",
    "steps": [ {"task": "sub.idx0"},
               {"task": "sub.idx1", "dependsOn": ["0"], "input": {"x": "{{steps.0.x}}", "first": "{{steps.0.x.0}}"}} ] }'::jsonb);
SELECT results_eq($$SELECT step_id FROM dwa.steps WHERE task_id = pg_temp.id('idx') ORDER BY step_index$$,
    $$VALUES ('0'::text), ('1')$$, 'index addressing: steps without id are named by their index');
SELECT ok(pg_temp.work('sub.idx0', '{"x":[10,20]}'), 'index addressing: step 0 completes');
SELECT results_eq($$SELECT status, input FROM dwa.steps WHERE task_id = pg_temp.id('idx') AND step_id = '1'$$,
    $$VALUES ('ready'::text, '{"x":[10,20],"first":10}'::jsonb)$$,
    'index addressing: {{steps.0.x}} and {{steps.0.x.0}} read step 0''s output');

INSERT INTO ids SELECT 'named', dwa.submit('{
    "type": "named",
    "steps": [ {"id": "first", "task": "sub.named"},
               {"task": "sub.byindex", "input": {"by_index": "{{steps.0.v}}", "by_id": "{{steps.first.v}}"}} ] }'::jsonb);
SELECT ok(pg_temp.work('sub.named', '{"v":"seven"}'), 'named step completes');
SELECT is((pg_temp.step('named', '1')).input, '{"by_index":"seven","by_id":"seven"}'::jsonb,
    'a named step is also addressed by its index');

-- ---------------------------------------------------------------------
-- Default input: no deps -> payload; one dep -> its output; several ->
-- an object keyed by dependency id.

INSERT INTO ids SELECT 'defaults', dwa.submit('{
    "type": "defaults", "payload": {"p": 1},
    "steps": [ {"id": "r", "task": "sub.r"},
               {"id": "one", "task": "sub.one", "dependsOn": ["r"]},
               {"id": "two", "task": "sub.two", "dependsOn": ["r", "one"]} ] }'::jsonb);
SELECT is((pg_temp.step('defaults', 'r')).input, '{"p":1}'::jsonb, 'default input: a root gets the payload');
SELECT ok(pg_temp.work('sub.r', '{"rv":[1,2]}'), 'default input: r completes');
SELECT is((pg_temp.step('defaults', 'one')).input, '{"rv":[1,2]}'::jsonb,
    'default input: one dependency gives its output');
SELECT results_eq($$SELECT status, remaining_deps FROM dwa.steps WHERE task_id = pg_temp.id('defaults') AND step_id = 'two'$$,
    $$VALUES ('waiting'::text, 1)$$, 'default input: the join still waits for "one"');
SELECT ok(pg_temp.work('sub.one', '"scalar"'), 'default input: one completes');
SELECT is((pg_temp.step('defaults', 'two')).input, '{"r":{"rv":[1,2]},"one":"scalar"}'::jsonb,
    'default input: several dependencies give an object keyed by id');

INSERT INTO ids SELECT 'pipedefault', dwa.submit('{
    "type": "pipedefault", "payload": {"start": true},
    "steps": [ {"task": "sub.p0"}, {"task": "sub.p1"} ] }'::jsonb);
SELECT ok(pg_temp.work('sub.p0', '[3,2,1]'), 'pipeline default input: step 0 completes');
SELECT is((pg_temp.step('pipedefault', '1')).input, '[3,2,1]'::jsonb,
    'pipeline default input: the next step gets the previous output');

-- ---------------------------------------------------------------------
-- Templates: a whole-string template keeps the JSON type of its value;
-- inside longer text it is interpolated.

INSERT INTO ids SELECT 'typed', dwa.submit('{
    "type": "typed",
    "payload": {"n": 5, "f": 2.5, "o": {"k": "v"}, "a": [1, 2, 3], "flag": true,
                "nothing": null, "name": "Ada"},
    "steps": [ {"id": "t", "task": "echo", "input": {
        "n": "{{payload.n}}", "f": "{{payload.f}}", "o": "{{payload.o}}", "a": "{{payload.a}}",
        "el": "{{payload.a.1}}", "flag": "{{payload.flag}}", "nothing": "{{payload.nothing}}",
        "spaced": "{{ payload.name }}", "whole": "{{payload}}",
        "text": "n={{payload.n}}, o={{payload.o}}, a={{payload.a}}, name={{payload.name}}!",
        "ttype": "{{task.type}}", "tid": "{{task.id}}", "tlabel": "task {{task.id}}",
        "plain": "no template here", "num": 42,
        "nested": {"list": ["{{payload.n}}", "x{{payload.n}}", {"deep": "{{payload.o.k}}"}]} }} ] }'::jsonb);
SELECT is((pg_temp.step('typed', 't')).input,
    jsonb_build_object(
        'n', 5, 'f', 2.5, 'o', '{"k":"v"}'::jsonb, 'a', '[1,2,3]'::jsonb, 'el', 2, 'flag', true,
        'nothing', NULL, 'spaced', 'Ada',
        'whole', '{"n": 5, "f": 2.5, "o": {"k": "v"}, "a": [1, 2, 3], "flag": true, "nothing": null, "name": "Ada"}'::jsonb,
        'text', 'n=5, o={"k": "v"}, a=[1, 2, 3], name=Ada!',
        'ttype', 'typed', 'tid', pg_temp.id('typed'), 'tlabel', 'task ' || pg_temp.id('typed'),
        'plain', 'no template here', 'num', 42,
        'nested', jsonb_build_object('list', jsonb_build_array(5, 'x5', '{"deep":"v"}'::jsonb))),
    'templates: typed whole-string values, interpolated text, nested values');
SELECT is(jsonb_typeof((pg_temp.step('typed', 't')).input -> 'n'), 'number',
    'templates: "{{payload.n}}" is a number, not a string');
SELECT is(jsonb_typeof((pg_temp.step('typed', 't')).input -> 'tid'), 'number',
    'templates: "{{task.id}}" is a number');

-- ---------------------------------------------------------------------
-- runAt, priority, queue, backend, retry, timeout.

INSERT INTO ids SELECT 'later', dwa.submit('{"type":"echo","runAt":"2999-01-01T10:00:00Z"}'::jsonb);
SELECT results_eq($$SELECT status, run_after FROM dwa.steps WHERE task_id = pg_temp.id('later')$$,
    $$VALUES ('ready'::text, '2999-01-01T10:00:00Z'::timestamptz)$$,
    'runAt in the future: the step is ready with run_after = runAt');
SELECT is((SELECT run_at FROM dwa.tasks WHERE id = pg_temp.id('later')), '2999-01-01T10:00:00Z'::timestamptz,
    'runAt is stored on the task');
INSERT INTO ids SELECT 'laterdag', dwa.submit('{"type":"x","runAt":"2999-01-01T10:00:00+02:00",
    "steps":[{"id":"a","task":"echo"},{"id":"b","task":"echo"}]}'::jsonb);
SELECT results_eq($$SELECT step_id, status, run_after FROM dwa.steps WHERE task_id = pg_temp.id('laterdag') ORDER BY step_index$$,
    $$VALUES ('a'::text, 'ready'::text, '2999-01-01T08:00:00Z'::timestamptz),
             ('b', 'waiting', '2999-01-01T08:00:00Z')$$,
    'runAt in the future for a pipeline: the first step becomes ready at runAt');

INSERT INTO ids SELECT 'prio', dwa.submit('{"type":"echo","priority":7,"queue":"video","backend":"modal"}'::jsonb);
SELECT results_eq($$SELECT t.priority, t.queue, t.backend, s.priority, s.queue, s.backend
        FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id WHERE t.id = pg_temp.id('prio')$$,
    $$VALUES (7, 'video'::text, 'modal'::text, 7, 'video'::text, 'modal'::text)$$,
    'priority, queue and backend are stored on the task and its step');
INSERT INTO ids SELECT 'prio2', dwa.submit('{"type":"x","priority":-3,"steps":[{"task":"echo"},{"task":"echo","backend":"ray"}]}'::jsonb);
SELECT results_eq($$SELECT priority, backend FROM dwa.steps WHERE task_id = pg_temp.id('prio2') ORDER BY step_index$$,
    $$VALUES (-3, NULL::text), (-3, 'ray')$$,
    'every step of a multi-step task gets its priority; a step may name its backend');

INSERT INTO ids SELECT 'policy', dwa.submit('{"type":"echo","retry":{"attempts":5},"timeout":"10m"}'::jsonb);
SELECT results_eq($$SELECT max_attempts, timeout FROM dwa.steps WHERE task_id = pg_temp.id('policy')$$,
    $$VALUES (5, interval '10 minutes')$$, 'retry.attempts and timeout reach the step');
INSERT INTO ids SELECT 'policy2', dwa.submit('{"type":"x","retry":{"attempts":2},"timeout":"1h",
    "steps":[{"task":"echo"},{"task":"echo","retry":{"attempts":9},"timeout":"1500ms"}]}'::jsonb);
SELECT results_eq($$SELECT max_attempts, timeout FROM dwa.steps WHERE task_id = pg_temp.id('policy2') ORDER BY step_index$$,
    $$VALUES (2, interval '1 hour'), (9, interval '1.5 seconds')$$,
    'a step''s own retry and timeout override the task''s');

-- ---------------------------------------------------------------------
-- Root steps at submission: a forEach root expands at once (within runAt),
-- and a root whose template has no value fails its task, leaving the roots
-- after it skipped.

INSERT INTO ids SELECT 'laterfe', dwa.submit('{"type":"x","runAt":"2999-01-01T00:00:00Z",
    "payload":{"l":["p","q"]},
    "steps":[{"id":"a","task":"echo","forEach":"{{payload.l}}","input":{"v":"{{item}}","i":"{{index}}"}}]}'::jsonb);
SELECT results_eq(
    $$SELECT item_index, status, run_after, input, fe_total FROM dwa.steps
       WHERE task_id = pg_temp.id('laterfe') ORDER BY id$$,
    $$VALUES (NULL::integer, 'running'::text, '2999-01-01T00:00:00Z'::timestamptz, NULL::jsonb, 2),
             (0, 'ready', '2999-01-01T00:00:00Z', '{"v":"p","i":0}', NULL),
             (1, 'ready', '2999-01-01T00:00:00Z', '{"v":"q","i":1}', NULL)$$,
    'runAt in the future for a forEach root: its elements wait for runAt too');

INSERT INTO ids SELECT 'rootfails', dwa.submit('{"type":"x","payload":{},
    "steps":[{"id":"a","task":"echo","input":"{{payload.nope}}"},
             {"id":"b","task":"echo","dependsOn":[]},
             {"id":"c","task":"echo","forEach":[1,2],"dependsOn":[]}]}'::jsonb);
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('rootfails')$$,
    $$VALUES ('failed'::text, 'step "a": template "{{payload.nope}}" has no value'::text)$$,
    'a root whose template has no value fails its task at submission');
SELECT results_eq(
    $$SELECT step_id, item_index, status FROM dwa.steps
       WHERE task_id = pg_temp.id('rootfails') ORDER BY id$$,
    $$VALUES ('a'::text, NULL::integer, 'failed'::text), ('b', NULL, 'skipped'), ('c', NULL, 'skipped')$$,
    '... and the roots after it are skipped, none ready, no forEach element created');

INSERT INTO ids SELECT 'described', dwa.submit('{"type":"x","steps":[{"task":"echo","description":"say it"}]}'::jsonb);
SELECT results_eq($$SELECT step_id, status FROM dwa.steps WHERE task_id = pg_temp.id('described')$$,
    $$VALUES ('0'::text, 'ready'::text)$$, 'a step may have a description');

INSERT INTO ids SELECT 'timed', dwa.submit('{"type":"x","timeout":"1ms","steps":[{"task":"echo","timeout":"1ms"}]}'::jsonb);
SELECT is((pg_temp.step('timed', '0')).timeout, interval '1 millisecond',
    'a timeout just over 0 is accepted');

-- ---------------------------------------------------------------------
-- Idempotency.

INSERT INTO ids SELECT 'idem', dwa.submit('{"type":"echo","idempotencyKey":"clip-42","payload":{"n":1}}'::jsonb);
CREATE TEMP TABLE before_idem AS
    SELECT (SELECT count(*) FROM dwa.tasks) AS tasks, (SELECT count(*) FROM dwa.steps) AS steps;
SELECT is(dwa.submit('{"type":"echo","idempotencyKey":"clip-42","payload":{"n":2}}'::jsonb),
    pg_temp.id('idem'), 'idempotency: a second submit returns the first task''s id');
SELECT is(dwa.submit('{"type":"x","idempotencyKey":"clip-42","steps":[{"task":"echo"}]}'::text),
    pg_temp.id('idem'), 'idempotency: even with another definition, through submit(text)');
SELECT is_empty($$INSERT INTO dwa.tasks (type, payload, idempotency_key) VALUES ('echo', '{"n":3}', 'clip-42') RETURNING id$$,
    'idempotency: a plain INSERT with a used key inserts nothing');
SELECT results_eq($$SELECT (SELECT count(*) FROM dwa.tasks), (SELECT count(*) FROM dwa.steps)$$,
    $$SELECT tasks, steps FROM before_idem$$, 'idempotency: no task and no step was created');
SELECT is((SELECT payload FROM dwa.tasks WHERE idempotency_key = 'clip-42'), '{"n":1}'::jsonb,
    'idempotency: the first task is unchanged');
INSERT INTO dwa.tasks (type, idempotency_key) VALUES ('echo', 'twice'), ('echo', 'twice');
SELECT is((SELECT count(*) FROM dwa.tasks WHERE idempotency_key = 'twice'), 1::bigint,
    'idempotency: one INSERT of two rows with the same new key creates one task');
SELECT is((SELECT count(*) FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id WHERE t.idempotency_key = 'twice'),
    1::bigint, 'idempotency: ... and one step');
SELECT is(dwa.submit('{"type":"echo","idempotencyKey":"twice"}'::jsonb),
    (SELECT id FROM dwa.tasks WHERE idempotency_key = 'twice'),
    'idempotency: submit finds a task inserted by plain INSERT');
INSERT INTO ids SELECT 'idem2', dwa.submit('{"type":"echo","idempotencyKey":"clip-43"}'::jsonb);
SELECT isnt(pg_temp.id('idem2'), pg_temp.id('idem'), 'idempotency: another key makes another task');

-- ---------------------------------------------------------------------
-- Plain INSERT INTO dwa.tasks follows the same rules as submit.

WITH i AS (
    INSERT INTO dwa.tasks (type, payload, steps, on_success) VALUES ('ins', '{"u": 1}',
        '[{"id":"a","task":"echo","input":{"u":"{{payload.u}}","label":"u={{payload.u}}"}},
          {"id":"b","task":"echo"}]',
        '[{"$event":"webhook","url":"http://127.0.0.1:9000/done"}]')
    RETURNING id)
INSERT INTO ids SELECT 'insert', id FROM i;
SELECT results_eq(
    $$SELECT step_id, task, status, input, remaining_deps FROM dwa.steps
       WHERE task_id = pg_temp.id('insert') ORDER BY step_index$$,
    $$VALUES ('a'::text, 'echo'::text, 'ready'::text, '{"u":1,"label":"u=1"}'::jsonb, 0),
             ('b', 'echo', 'waiting', NULL, 1)$$,
    'INSERT with steps: steps created as by submit');
SELECT results_eq($$SELECT status, steps_total, on_success FROM dwa.tasks WHERE id = pg_temp.id('insert')$$,
    $$VALUES ('queued'::text, 2, '[{"$event":"webhook","url":"http://127.0.0.1:9000/done"}]'::jsonb)$$,
    'INSERT with steps: the task is queued, with its on_success');

CREATE TEMP TABLE multi AS
WITH i AS (
    INSERT INTO dwa.tasks (type, payload, steps) VALUES
        ('echo', '{"k":1}', NULL),
        ('m', '{"k":2}', '[{"task":"echo"},{"task":"noop"}]'),
        ('noop', '{"k":3}', NULL)
    RETURNING id, payload)
SELECT * FROM i;
SELECT results_eq(
    $$SELECT m.payload ->> 'k', s.step_id, s.task, s.status, s.input
        FROM multi m JOIN dwa.steps s ON s.task_id = m.id ORDER BY m.id, s.step_index$$,
    $$VALUES ('1'::text, '0'::text, 'echo'::text, 'ready'::text, '{"k":1}'::jsonb),
             ('2', '0', 'echo', 'ready', '{"k":2}'),
             ('2', '1', 'noop', 'waiting', NULL),
             ('3', '0', 'noop', 'ready', '{"k":3}')$$,
    'one INSERT mixing single-step and multi-step tasks');

SELECT * FROM finish();
ROLLBACK;
