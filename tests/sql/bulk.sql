-- bulk.sql: one INSERT ... SELECT of 100,000 single-step tasks expands into
-- exactly one ready step per task, set-wise and fast; a bulk insert with
-- one bad row stores nothing.
BEGIN;
SELECT plan(15);

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

-- A bulk insert of multi-step tasks expands each one.
INSERT INTO dwa.tasks (type, payload, steps)
SELECT 'pair', jsonb_build_object('i', g), '[{"task":"echo"},{"task":"noop"}]'
  FROM generate_series(1, 1000) g;
SELECT results_eq(
    $$SELECT s.step_id, s.status, count(*), count(*) FILTER (WHERE s.input = t.payload)
        FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id WHERE t.type = 'pair'
       GROUP BY 1, 2 ORDER BY 1$$,
    $$VALUES ('0'::text, 'ready'::text, 1000::bigint, 1000::bigint), ('1', 'waiting', 1000, 0)$$,
    '1000 two-step tasks: 2000 steps, the first of each ready with the payload');

SELECT * FROM finish();
ROLLBACK;
