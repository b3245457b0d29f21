-- bulk.sql: one INSERT ... SELECT of 100,000 single-step tasks expands into
-- exactly one ready step per task, set-wise and fast; so does one of
-- 100,000 multi-step tasks, each of its tasks with exactly the step rows
-- the same task submitted alone gets; a bulk insert with one bad row
-- stores nothing.
BEGIN;
SELECT plan(41);

CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
INSERT INTO dwa.tasks (type, payload)
SELECT 'noop', jsonb_build_object('i', g) FROM generate_series(1, 100000) g;
CREATE TEMP TABLE t1 AS SELECT clock_timestamp() AS t;

SELECT diag(format('100,000 tasks inserted in %s', (SELECT t FROM t1) - (SELECT t FROM t0)));
SELECT cmp_ok((SELECT t FROM t1) - (SELECT t FROM t0), '<', interval '20 s',
    '100,000 tasks inserted in under 20 s (no row-by-row expansion)');
SELECT is((SELECT count(*) FROM dwa.tasks), 100000::bigint, '100,000 tasks');
SELECT is((SELECT count(*) FROM dwa.steps), 100000::bigint, '100,000 steps');
SELECT is((SELECT count(*) FROM dwa.steps WHERE status = 'ready'), 100000::bigint, 'all of them ready');
SELECT is((SELECT count(*) FROM (SELECT task_id FROM dwa.steps GROUP BY task_id HAVING count(*) = 1) x),
    100000::bigint, 'one step per task');
SELECT is((SELECT count(*) FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id
            WHERE s.input = t.payload AND s.step_id = '0' AND s.step_index = 0
              AND s.item_index IS NULL AND s.task = 'noop' AND s.queue = t.queue
              AND s.priority = t.priority AND s.remaining_deps = 0 AND s.max_attempts = 3),
    100000::bigint, 'each step is step "0" of its task, of type noop, its input the task''s payload');
SELECT results_eq(
    $$SELECT min((payload ->> 'i')::integer), max((payload ->> 'i')::integer),
             count(DISTINCT payload ->> 'i') FROM dwa.tasks$$,
    $$VALUES (1, 100000, 100000::bigint)$$, 'every payload made it, once');
SELECT results_eq(
    $$SELECT status, steps_total, steps_done, count(*) FROM dwa.tasks GROUP BY 1, 2, 3$$,
    $$VALUES ('queued'::text, 1, 0, 100000::bigint)$$, 'every task queued, with one step to do');
SELECT results_eq($$SELECT queue, status, count FROM dwa.queue_stats$$,
    $$VALUES ('default'::text, 'ready'::text, 100000::bigint)$$, 'queue_stats sees them');

-- The claim path stays cheap on a large ready set.
SELECT is((SELECT count(*) FROM dwa.claim('bulk-worker', ARRAY['noop'], 1000)), 1000::bigint,
    'a claim of 1000 from 100,000 ready steps');

-- One bad row among many: the whole statement is rejected.
CREATE TEMP TABLE before_bad AS
    SELECT (SELECT count(*) FROM dwa.tasks) AS tasks, (SELECT count(*) FROM dwa.steps) AS steps;
SELECT throws_ok(
    $$INSERT INTO dwa.tasks (type, payload)
      SELECT CASE WHEN g = 5000 THEN 'no.such.type' ELSE 'noop' END, jsonb_build_object('i', g)
        FROM generate_series(1, 10000) g$$,
    '22023', 'type: unknown task type "no.such.type"',
    'a bulk insert with one unknown type is rejected');
SELECT results_eq($$SELECT (SELECT count(*) FROM dwa.tasks), (SELECT count(*) FROM dwa.steps)$$,
    $$SELECT tasks, steps FROM before_bad$$, '... and stores nothing at all');
SELECT throws_ok(
    $$INSERT INTO dwa.tasks (type, payload, on_success)
      SELECT 'noop', jsonb_build_object('i', g),
             CASE WHEN g = 9999 THEN '[{"$event":"fax"}]'::jsonb END
        FROM generate_series(1, 10000) g$$,
    '22023', 'onSuccess[0]: unknown $event "fax"',
    'a bulk insert with one bad effect is rejected');
SELECT results_eq($$SELECT (SELECT count(*) FROM dwa.tasks), (SELECT count(*) FROM dwa.steps)$$,
    $$SELECT tasks, steps FROM before_bad$$, '... and stores nothing at all');

-- A bulk insert of multi-step tasks expands each one (without templates).
INSERT INTO dwa.tasks (type, payload, steps)
SELECT 'pair', jsonb_build_object('i', g), '[{"task":"echo"},{"task":"noop"}]'
  FROM generate_series(1, 1000) g;
SELECT results_eq(
    $$SELECT s.step_id, s.status, count(*), count(*) FILTER (WHERE s.input = t.payload)
        FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id WHERE t.type = 'pair'
       GROUP BY 1, 2 ORDER BY 1$$,
    $$VALUES ('0'::text, 'ready'::text, 1000::bigint, 1000::bigint), ('1', 'waiting', 1000, 0)$$,
    '1000 two-step tasks: 2000 steps, the first of each ready with the payload');

-- ---------------------------------------------------------------------
-- 100,000 two-step pipelines in one statement: the definition is planned
-- once, the step rows of all tasks go in together, and each root's input
-- is rendered from its own task.

-- rows_of: a task's step rows as JSON, without their ids, in id order;
-- task_of: its task row.  Everything else must match, timestamps too (one
-- transaction, one now()).
CREATE FUNCTION pg_temp.rows_of(p_task bigint) RETURNS SETOF jsonb LANGUAGE sql AS $$
    SELECT to_jsonb(s) - 'id' - 'task_id' FROM dwa.steps s WHERE s.task_id = p_task ORDER BY s.id
$$;
CREATE FUNCTION pg_temp.task_of(p_task bigint) RETURNS jsonb LANGUAGE sql AS $$
    SELECT to_jsonb(t) - 'id' FROM dwa.tasks t WHERE t.id = p_task
$$;
-- alone: the same task submitted on its own, compared with the bulk
-- task that has its payload: step rows, then task row.
CREATE FUNCTION pg_temp.alone(p_def jsonb, p_desc text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    b bigint := (SELECT id FROM dwa.tasks WHERE type = p_def ->> 'type'
                  AND payload = p_def -> 'payload');
    a bigint := dwa.submit(p_def);
BEGIN
    RETURN NEXT results_eq(format('SELECT * FROM pg_temp.rows_of(%s)', b),
        format('SELECT * FROM pg_temp.rows_of(%s)', a),
        p_desc || ': its step rows are exactly those of the task submitted alone');
    RETURN NEXT is(pg_temp.task_of(b), pg_temp.task_of(a), p_desc || ': and so is its task row');
END
$$;
-- in_order: how many steps of the tasks of type p_type are numbered before
-- one that comes earlier in task order, steps before forEach elements,
-- step and element order.
CREATE FUNCTION pg_temp.in_order(p_type text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM (
        SELECT s.id < lag(s.id) OVER (ORDER BY s.task_id, s.item_index IS NOT NULL,
                                             s.step_index, s.item_index) AS back
          FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id WHERE t.type = p_type) x
     WHERE back
$$;

CREATE TEMP TABLE m0 AS SELECT clock_timestamp() AS t;
INSERT INTO dwa.tasks (type, payload, steps)
SELECT 'pipe', jsonb_build_object('i', g, 'name', 'n' || g),
       '[{"id":"fetch","task":"echo","input":{"i":"{{payload.i}}","label":"{{task.type}} {{payload.name}}"}},
         {"id":"store","task":"noop"}]'
  FROM generate_series(1, 100000) g;
CREATE TEMP TABLE m1 AS SELECT clock_timestamp() AS t;

SELECT diag(format('100,000 two-step tasks inserted in %s', (SELECT t FROM m1) - (SELECT t FROM m0)));
SELECT cmp_ok((SELECT t FROM m1) - (SELECT t FROM m0), '<', interval '45 s',
    '100,000 two-step tasks inserted in under 45 s (expanded set-wise, not task by task)');
SELECT results_eq(
    $$SELECT s.step_id, s.status, count(*) FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id
       WHERE t.type = 'pipe' GROUP BY 1, 2 ORDER BY 1$$,
    $$VALUES ('fetch'::text, 'ready'::text, 100000::bigint), ('store', 'waiting', 100000)$$,
    'pipelines: 200,000 steps, the first of each task ready, the second waiting');
SELECT is((SELECT count(*) FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id
            WHERE t.type = 'pipe' AND s.step_id = 'fetch'
              AND s.input = jsonb_build_object('i', t.payload -> 'i',
                                               'label', 'pipe ' || (t.payload ->> 'name'))),
    100000::bigint, 'pipelines: each first step''s input is rendered from its own payload');
SELECT results_eq(
    $$SELECT status, steps_total, steps_done, count(*) FROM dwa.tasks WHERE type = 'pipe' GROUP BY 1, 2, 3$$,
    $$VALUES ('queued'::text, 2, 0, 100000::bigint)$$, 'pipelines: every task queued, with two steps to do');
SELECT is(pg_temp.in_order('pipe'), 0::bigint,
    'pipelines: steps numbered in task and step order, as submissions one at a time number them');
SELECT * FROM pg_temp.alone('{"type":"pipe","payload":{"i":4242,"name":"n4242"},
    "steps":[{"id":"fetch","task":"echo","input":{"i":"{{payload.i}}","label":"{{task.type}} {{payload.name}}"}},
             {"id":"store","task":"noop"}]}', 'pipelines');

-- ---------------------------------------------------------------------
-- A DAG with a fan-in whose roots are a plain step and a forEach over the
-- payload: the forEach runs, its elements created in the same statement.

INSERT INTO dwa.tasks (type, payload, steps, priority)
SELECT 'fan', jsonb_build_object('i', g, 'parts', jsonb_build_array(g, -g)),
       '[{"id":"a","task":"echo"},
         {"id":"b","task":"echo","forEach":"{{payload.parts}}","forEachConcurrency":1,
          "input":{"part":"{{item}}","at":"{{index}}","of":"{{payload.i}}"},"dependsOn":[]},
         {"id":"c","task":"noop","dependsOn":["a","b"]}]', 3
  FROM generate_series(1, 20000) g;
SELECT results_eq(
    $$SELECT s.step_id, s.item_index, s.status, count(*) FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id
       WHERE t.type = 'fan' GROUP BY 1, 2, 3 ORDER BY 1, 2 NULLS FIRST$$,
    $$VALUES ('a'::text, NULL::integer, 'ready'::text, 20000::bigint),
             ('b', NULL, 'running', 20000), ('b', 0, 'ready', 20000), ('b', 1, 'waiting', 20000),
             ('c', NULL, 'waiting', 20000)$$,
    'DAGs: both roots started, the forEach with one element ready of two, the join waiting');
SELECT is((SELECT count(*) FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id
            WHERE t.type = 'fan' AND s.item_index IS NOT NULL
              AND s.input = jsonb_build_object('part', t.payload -> 'parts' -> s.item_index,
                                               'at', s.item_index, 'of', t.payload -> 'i')),
    40000::bigint, 'DAGs: each element''s input rendered from its item, index and payload');
SELECT is(pg_temp.in_order('fan'), 0::bigint,
    'DAGs: steps numbered in task and step order, each task''s elements after its steps');
SELECT * FROM pg_temp.alone('{"type":"fan","priority":3,"payload":{"i":777,"parts":[777,-777]},
    "steps":[{"id":"a","task":"echo"},
             {"id":"b","task":"echo","forEach":"{{payload.parts}}","forEachConcurrency":1,
              "input":{"part":"{{item}}","at":"{{index}}","of":"{{payload.i}}"},"dependsOn":[]},
             {"id":"c","task":"noop","dependsOn":["a","b"]}]}', 'DAGs');

-- ---------------------------------------------------------------------
-- One statement mixing single-step tasks and several definitions; where a
-- root's template has no value, that task fails as it would alone.

INSERT INTO dwa.tasks (type, payload, steps, on_error)
SELECT CASE g % 4 WHEN 0 THEN 'echo' ELSE 'mix' || g % 4 END,
       CASE WHEN g % 8 = 3 THEN jsonb_build_object('i', g) ELSE jsonb_build_object('i', g, 'j', g * 2) END,
       CASE g % 4
       WHEN 0 THEN NULL
       WHEN 1 THEN '[{"task":"echo"},{"task":"noop"}]'::jsonb
       WHEN 2 THEN '[{"id":"x","task":"echo","input":"{{payload.i}}"},{"id":"y","task":"echo","dependsOn":[]},
                     {"id":"z","task":"noop","dependsOn":["x","y"]}]'
       ELSE '[{"id":"r","task":"echo","input":{"j":"{{payload.j}}"}},{"id":"s","task":"echo","dependsOn":[]}]'
       END,
       '[{"$event":"toast","text":"failed: {{error}}"}]'
  FROM generate_series(1, 4000) g;
SELECT results_eq(
    $$SELECT t.type, t.status, s.step_id, s.status, count(*)
        FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id
       WHERE t.type IN ('echo', 'mix1', 'mix2', 'mix3') AND t.payload ? 'i'
       GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3$$,
    $$VALUES ('echo'::text, 'queued'::text, '0'::text, 'ready'::text, 1000::bigint),
             ('mix1', 'queued', '0', 'ready', 1000), ('mix1', 'queued', '1', 'waiting', 1000),
             ('mix2', 'queued', 'x', 'ready', 1000), ('mix2', 'queued', 'y', 'ready', 1000),
             ('mix2', 'queued', 'z', 'waiting', 1000),
             ('mix3', 'failed', 'r', 'failed', 500), ('mix3', 'failed', 's', 'skipped', 500),
             ('mix3', 'queued', 'r', 'ready', 500), ('mix3', 'queued', 's', 'ready', 500)$$,
    'mixed: single-step, pipeline and DAG tasks expanded; where {{payload.j}} has no value the task failed');
SELECT is((SELECT count(*) FROM dwa.events e JOIN dwa.tasks t ON t.id = e.task_id
            WHERE t.type = 'mix3' AND e.event = 'toast'
              AND e.payload ->> 'text' = 'failed: step "r": template "{{payload.j}}" has no value'),
    500::bigint, 'mixed: each failed task fired its onError');
SELECT * FROM pg_temp.alone('{"type":"mix2","payload":{"i":6,"j":12},"onError":[{"$event":"toast","text":"failed: {{error}}"}],
    "steps":[{"id":"x","task":"echo","input":"{{payload.i}}"},{"id":"y","task":"echo","dependsOn":[]},
             {"id":"z","task":"noop","dependsOn":["x","y"]}]}', 'mixed, a DAG');
SELECT * FROM pg_temp.alone('{"type":"mix3","payload":{"i":11},"onError":[{"$event":"toast","text":"failed: {{error}}"}],
    "steps":[{"id":"r","task":"echo","input":{"j":"{{payload.j}}"}},{"id":"s","task":"echo","dependsOn":[]}]}',
    'mixed, a task that failed');

-- A forEach over 20,000 elements: its payload (about 140 kB) is stored
-- compressed with lz4 (0010_lz4), the rows of its first chunk of elements
-- numbered in order, all its elements kept in its step's input; the
-- sort that numbers the step rows has work_mem enough not to spill.
SELECT dwa.submit(jsonb_build_object('type', 'big', 'payload',
    jsonb_build_object('xs', (SELECT jsonb_agg(g) FROM generate_series(1, 20000) g)),
    'steps', '[{"id":"e","task":"noop","forEach":"{{payload.xs}}"}]'::jsonb));
SELECT is((SELECT pg_column_compression(payload) FROM dwa.tasks WHERE type = 'big'), 'lz4',
    'a large payload is compressed with lz4');
SELECT is((SELECT count(*) FROM (SELECT s.item_index, s.input,
                                        row_number() OVER (ORDER BY s.id) - 1 AS n
                                   FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id
                                  WHERE t.type = 'big' AND s.item_index IS NOT NULL) x
            WHERE x.item_index = x.n AND x.input = to_jsonb(x.n + 1)),
    dwa._fe_chunk()::bigint,
    '... the first chunk of its elements in order of step id, each with its element');
SELECT is((SELECT s.input FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id
            WHERE t.type = 'big' AND s.item_index IS NULL),
          (SELECT jsonb_agg(g) FROM generate_series(1, 20000) g),
    '... and its step''s input holds all 20,000 elements');
SELECT dwa.submit('{"type":"two","steps":[{"id":"a","task":"noop","forEach":[1,2,3]},
                                           {"id":"b","task":"noop","forEach":["x","y"],"dependsOn":[]}]}');
SELECT is((SELECT string_agg(s.step_id || coalesce('[' || s.item_index || ']', ''), ' ' ORDER BY s.id)
             FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id WHERE t.type = 'two'),
    'a b a[0] b[0] a[1] b[1] a[2]',
    'two forEach steps: the steps, then their elements by element index, alternating');
SELECT ok((SELECT 'work_mem=64MB' = ANY (proconfig) FROM pg_proc
            WHERE oid = 'dwa._tasks_inserted()'::regprocedure),
    'the expansion of an INSERT runs with work_mem 64MB');

-- One invalid definition among good ones of every kind: the whole
-- statement is rejected, naming the step; of two, the first task's.
CREATE TEMP TABLE before_mixed AS
    SELECT (SELECT count(*) FROM dwa.tasks) AS tasks, (SELECT count(*) FROM dwa.steps) AS steps,
           (SELECT count(*) FROM dwa.events) AS events;
SELECT throws_ok(
    $$INSERT INTO dwa.tasks (type, payload, steps, on_pending)
      SELECT CASE WHEN g % 3 = 0 THEN 'echo' ELSE 'bad' END, jsonb_build_object('i', g),
             CASE WHEN g % 3 = 0 THEN NULL
                  WHEN g = 2500 THEN '[{"id":"a","task":"echo"},{"id":"join","task":"noop","dependsOn":["a","nope"]}]'::jsonb
                  WHEN g % 3 = 1 THEN '[{"task":"echo","input":"{{payload.i}}"},{"task":"noop"}]'
                  ELSE '[{"task":"echo","forEach":[1,2]}]' END,
             '[{"$event":"toast","text":"pending"}]'
        FROM generate_series(1, 5000) g$$,
    '22023', 'step "join": dependsOn names unknown step "nope"',
    'a bulk insert with one invalid definition among good ones is rejected, naming the step');
SELECT throws_ok(
    $$INSERT INTO dwa.tasks (type, steps)
      SELECT 'bad', CASE g WHEN 900 THEN '[{"id":"c","task":"echo","dependsOn":["c"]}]'::jsonb
                           WHEN 100 THEN '[{"id":"t","task":"gpu.magic"}]'
                           ELSE '[{"task":"echo"},{"task":"noop"}]' END
        FROM generate_series(1, 1000) g$$,
    '22023', 'step "t": unknown task type "gpu.magic"',
    'of two invalid definitions, the first task''s error is the one raised');
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM dwa.tasks), (SELECT count(*) FROM dwa.steps), (SELECT count(*) FROM dwa.events)$$,
    $$SELECT tasks, steps, events FROM before_mixed$$, '... and nothing at all is stored, no effect fired');

SELECT * FROM finish();
ROLLBACK;
