-- states.sql: the task and step state machine, driven the way an external
-- worker drives it: dwa.claim, dwa.progress, dwa.complete, dwa.fail.
-- Results, several sinks, forEach (concurrency, order, empty), template
-- errors, permanent failure, progress, and the task_steps and queue_stats
-- views.
BEGIN;
SELECT plan(92);

-- Worker-served types, one per role, so each claim picks the step meant.
INSERT INTO dwa.task_types (name, executor)
SELECT 'st.' || n, 'worker'
  FROM unnest(ARRAY['single', 'sa', 'sb', 'sc', 'list', 'each', 'after', 'tma', 'tmb',
                    'pfa', 'pfb', 'pfc', 'pfe', 'pr', 'pr2a', 'pr2b', 'qs', 'fe1']) n;

\ir ../lib/named.sql
-- Every run claimed so far, as dwa.claim returned it.
CREATE TEMP TABLE claims AS SELECT * FROM dwa.claim('nobody', ARRAY['no.such.type'], 1);
-- claim: claim up to p_n steps of type p_type, remember them, return how many.
CREATE FUNCTION pg_temp.claim(p_type text, p_n integer DEFAULT 10) RETURNS bigint
LANGUAGE sql AS $$
    WITH c AS (INSERT INTO claims SELECT * FROM dwa.claim('tester', ARRAY[p_type], p_n) RETURNING 1)
    SELECT count(*) FROM c
$$;
-- run: the run id claimed for a step (or a forEach element) of a task.
CREATE FUNCTION pg_temp.run(p_task text, p_step text, p_item integer DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT max(run_id) FROM claims
     WHERE task_id = pg_temp.id(p_task) AND step_id = p_step
       AND item_index IS NOT DISTINCT FROM p_item
$$;
CREATE FUNCTION pg_temp.step(p_task text, p_step text, p_item integer DEFAULT NULL)
RETURNS dwa.steps LANGUAGE sql AS $$
    SELECT * FROM dwa.steps
     WHERE task_id = pg_temp.id(p_task) AND step_id = p_step
       AND item_index IS NOT DISTINCT FROM p_item
$$;
CREATE FUNCTION pg_temp.task(p_task text) RETURNS dwa.tasks LANGUAGE sql AS $$
    SELECT * FROM dwa.tasks WHERE id = pg_temp.id(p_task)
$$;

-- ---------------------------------------------------------------------
-- queued -> running -> completed, with result = the sink's output.

INSERT INTO ids SELECT 'single', dwa.submit('{"type":"st.single","payload":{"q":1}}'::jsonb);
SELECT is((pg_temp.task('single')).status, 'queued', 'a new task is queued');
-- The claim stamps the time it found the limits clear: between the
-- transaction's start and now.
SELECT results_eq(
    $$SELECT step_id, item_index, task, input, attempt,
             lease_until BETWEEN now() + interval '30 seconds' AND clock_timestamp() + interval '30 seconds'
        FROM dwa.claim('tester', ARRAY['st.single'], 5)$$,
    $$VALUES ('0'::text, NULL::integer, 'st.single'::text, '{"q":1}'::jsonb, 1, true)$$,
    'claim returns the step with its input, attempt 1 and a 30 s lease');
INSERT INTO claims SELECT s.run_id, s.task_id, s.step_id, s.item_index, s.task, s.input, s.attempt, s.lease_until
  FROM dwa.steps s WHERE s.task_id = pg_temp.id('single');
SELECT results_eq($$SELECT status, started_at BETWEEN now() AND clock_timestamp() FROM dwa.tasks WHERE id = pg_temp.id('single')$$,
    $$VALUES ('running'::text, true)$$, 'the task runs once its step is claimed');
SELECT results_eq(
    $$SELECT s.status, w.name, w.kind FROM dwa.steps s JOIN dwa.workers w ON w.id = s.worker_id
       WHERE s.task_id = pg_temp.id('single')$$,
    $$VALUES ('running'::text, 'tester'::text, 'sql'::text)$$,
    'the step runs, held by the registered SQL worker');
SELECT is(dwa.complete(pg_temp.run('single', '0'), '{"answer":42}'), true, 'complete returns true');
SELECT results_eq(
    $$SELECT status, result, progress, error, steps_done, finished_at IS NOT NULL
        FROM dwa.tasks WHERE id = pg_temp.id('single')$$,
    $$VALUES ('completed'::text, '{"answer":42}'::jsonb, 100, NULL::text, 1, true)$$,
    'the task completed with the step''s output as result');
SELECT results_eq(
    $$SELECT status, output, progress, lease_until, finished_at IS NOT NULL FROM dwa.steps
       WHERE task_id = pg_temp.id('single')$$,
    $$VALUES ('succeeded'::text, '{"answer":42}'::jsonb, 100, NULL::timestamptz, true)$$,
    'the step succeeded, its lease released');
SELECT is(dwa.complete(pg_temp.run('single', '0'), '{"answer":43}'), false,
    'a second complete of the same run returns false');
SELECT is((pg_temp.task('single')).result, '{"answer":42}'::jsonb, '... and changes nothing');

-- ---------------------------------------------------------------------
-- Several sinks: the result is an object keyed by sink id.

INSERT INTO ids SELECT 'sinks', dwa.submit('{"type":"sinks","steps":[
    {"id":"a","task":"st.sa"},
    {"id":"b","task":"st.sb","dependsOn":["a"]},
    {"id":"c","task":"st.sc","dependsOn":["a"]}]}'::jsonb);
SELECT is(pg_temp.claim('st.sa'), 1::bigint, 'sinks: a is claimed');
SELECT is(pg_temp.claim('st.sb') + pg_temp.claim('st.sc'), 0::bigint, 'sinks: b and c wait for a');
SELECT ok(dwa.complete(pg_temp.run('sinks', 'a'), '{"n":1}'), 'sinks: a completes');
SELECT results_eq($$SELECT status, progress FROM dwa.tasks WHERE id = pg_temp.id('sinks')$$,
    $$VALUES ('running'::text, 33)$$, 'sinks: one step of three done: 33%');
SELECT is(pg_temp.claim('st.sb') + pg_temp.claim('st.sc'), 2::bigint, 'sinks: b and c run in parallel');
SELECT ok(dwa.complete(pg_temp.run('sinks', 'c'), '"C"'), 'sinks: c completes');
SELECT is((pg_temp.task('sinks')).status, 'running', 'sinks: still running while b runs');
SELECT ok(dwa.complete(pg_temp.run('sinks', 'b'), '["B"]'), 'sinks: b completes');
SELECT results_eq($$SELECT status, result, progress FROM dwa.tasks WHERE id = pg_temp.id('sinks')$$,
    $$VALUES ('completed'::text, '{"b":["B"],"c":"C"}'::jsonb, 100)$$,
    'sinks: the result is keyed by sink id');

-- ---------------------------------------------------------------------
-- forEach: one row per element, at most forEachConcurrency at a time,
-- outputs in element order.

INSERT INTO ids SELECT 'fe', dwa.submit('{"type":"fe","steps":[
    {"id":"list","task":"st.list"},
    {"id":"each","task":"st.each","forEach":"{{steps.list.items}}","forEachConcurrency":2,
     "input":{"v":"{{item.v}}","i":"{{index}}","of":"{{steps.list.total}}"}},
    {"id":"after","task":"st.after"}]}'::jsonb);
CREATE FUNCTION pg_temp.active() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM dwa.steps WHERE task_id = pg_temp.id('fe') AND step_id = 'each'
       AND item_index IS NOT NULL AND status IN ('ready', 'running')
$$;
SELECT is(pg_temp.claim('st.list'), 1::bigint, 'forEach: the list step is claimed');
SELECT ok(dwa.complete(pg_temp.run('fe', 'list'),
    '{"total":5,"items":[{"v":"a"},{"v":"b"},{"v":"c"},{"v":"d"},{"v":"e"}]}'), 'forEach: the list completes');
SELECT results_eq(
    $$SELECT item_index, status, input FROM dwa.steps
       WHERE task_id = pg_temp.id('fe') AND step_id = 'each' ORDER BY item_index NULLS FIRST$$,
    $$VALUES (NULL::integer, 'running'::text, NULL::jsonb),
             (0, 'ready', '{"v":"a","i":0,"of":5}'),
             (1, 'ready', '{"v":"b","i":1,"of":5}'),
             (2, 'waiting', '{"v":"c","i":2,"of":5}'),
             (3, 'waiting', '{"v":"d","i":3,"of":5}'),
             (4, 'waiting', '{"v":"e","i":4,"of":5}')$$,
    'forEach: one row per element, the first two ready, inputs rendered per element');
SELECT is(pg_temp.claim('st.each'), 2::bigint, 'forEach: a claim of 10 gets 2 elements');
SELECT results_eq($$SELECT item_index FROM claims WHERE task = 'st.each' ORDER BY item_index$$,
    $$VALUES (0), (1)$$, 'forEach: ... elements 0 and 1');
SELECT ok(dwa.complete(pg_temp.run('fe', 'each', 1), '"B"'), 'forEach: element 1 completes first');
SELECT is(pg_temp.active(), 2::bigint, 'forEach: the next element takes its place: 2 active');
SELECT is(pg_temp.claim('st.each'), 1::bigint, 'forEach: one more element is claimable');
SELECT is((SELECT max(item_index) FROM claims WHERE task = 'st.each'), 2, 'forEach: ... element 2');
SELECT is(pg_temp.claim('st.each'), 0::bigint, 'forEach: and no more than that');
SELECT ok(dwa.complete(pg_temp.run('fe', 'each', 0), '"A"'), 'forEach: element 0 completes');
SELECT is(pg_temp.claim('st.each'), 1::bigint, 'forEach: element 3 is claimed');
SELECT is(pg_temp.active(), 2::bigint, 'forEach: still 2 active');
SELECT ok(dwa.complete(pg_temp.run('fe', 'each', 3), '"D"'), 'forEach: element 3 completes');
SELECT ok(dwa.complete(pg_temp.run('fe', 'each', 2), '"C"'), 'forEach: element 2 completes');
SELECT is(pg_temp.active(), 1::bigint, 'forEach: only element 4 is left');
SELECT is((pg_temp.step('fe', 'each')).status, 'running', 'forEach: the step runs until all are in');
SELECT is(pg_temp.claim('st.each'), 1::bigint, 'forEach: element 4 is claimed');
SELECT ok(dwa.complete(pg_temp.run('fe', 'each', 4), '"E"'), 'forEach: element 4 completes');
SELECT results_eq($$SELECT status, output FROM dwa.steps WHERE task_id = pg_temp.id('fe') AND step_id = 'each' AND item_index IS NULL$$,
    $$VALUES ('succeeded'::text, '["A","B","C","D","E"]'::jsonb)$$,
    'forEach: the output is the element outputs in element order');
SELECT results_eq($$SELECT status, input FROM dwa.steps WHERE task_id = pg_temp.id('fe') AND step_id = 'after'$$,
    $$VALUES ('ready'::text, '["A","B","C","D","E"]'::jsonb)$$,
    'forEach: the next step receives the array');
SELECT results_eq($$SELECT status, steps_done, steps_total FROM dwa.tasks WHERE id = pg_temp.id('fe')$$,
    $$VALUES ('running'::text, 2, 3)$$, 'forEach: elements do not count as task steps');

INSERT INTO ids SELECT 'fe1', dwa.submit('{"type":"fe1","payload":{"l":[{"k":1},[2],"three"]},
    "steps":[{"id":"e","task":"st.fe1","forEach":"{{payload.l}}"}]}'::jsonb);
SELECT results_eq(
    $$SELECT item_index, status, input FROM dwa.steps
       WHERE task_id = pg_temp.id('fe1') AND item_index IS NOT NULL ORDER BY item_index$$,
    $$VALUES (0, 'ready'::text, '{"k":1}'::jsonb), (1, 'ready', '[2]'), (2, 'ready', '"three"')$$,
    'forEach without input or concurrency: every element ready, the element is the input');

SELECT is(pg_temp.claim('st.fe1'), 3::bigint, 'forEach: all three elements are claimed');
SELECT ok(dwa.complete(pg_temp.run('fe1', 'e', 0), '"zero"'), 'forEach: element 0 completes');
SELECT ok(dwa.fail(pg_temp.run('fe1', 'e', 1), 'bad element', retryable => false),
    'forEach: element 1 fails permanently');
SELECT results_eq(
    $$SELECT item_index, status, error FROM dwa.steps
       WHERE task_id = pg_temp.id('fe1') ORDER BY item_index NULLS FIRST$$,
    $$VALUES (NULL::integer, 'failed'::text, 'element 1: bad element'::text),
             (0, 'succeeded', NULL), (1, 'failed', 'bad element'), (2, 'cancelled', NULL)$$,
    'forEach: a failed element fails its step; the running element is cancelled');
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('fe1')$$,
    $$VALUES ('failed'::text, 'step "e" element 1: bad element')$$,
    'forEach: the task error names the step and the element');

INSERT INTO ids SELECT 'fe0', dwa.submit('{"type":"fe0","payload":{"l":[]},
    "steps":[{"id":"e","task":"echo","forEach":"{{payload.l}}"}]}'::jsonb);
SELECT results_eq($$SELECT status, result, progress FROM dwa.tasks WHERE id = pg_temp.id('fe0')$$,
    $$VALUES ('completed'::text, '[]'::jsonb, 100)$$,
    'forEach over an empty array: the task completes at once with []');
SELECT results_eq($$SELECT count(*), min(status), min(output::text) FROM dwa.steps WHERE task_id = pg_temp.id('fe0')$$,
    $$VALUES (1::bigint, 'succeeded'::text, '[]'::text)$$,
    'forEach over an empty array: one succeeded step, no element rows');
INSERT INTO ids SELECT 'fe0b', dwa.submit('{"type":"fe0b",
    "steps":[{"id":"e","task":"echo","forEach":[]},{"id":"n","task":"echo"}]}'::jsonb);
SELECT results_eq($$SELECT step_id, status, input, output FROM dwa.steps WHERE task_id = pg_temp.id('fe0b') ORDER BY step_index$$,
    $$VALUES ('e'::text, 'succeeded'::text, NULL::jsonb, '[]'::jsonb), ('n', 'ready', '[]', NULL)$$,
    'forEach: [] literal succeeds at once and releases the next step');

INSERT INTO ids SELECT 'fenum', dwa.submit('{"type":"fenum","payload":{"l":5},
    "steps":[{"id":"e","task":"echo","forEach":"{{payload.l}}"}]}'::jsonb);
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('fenum')$$,
    $$VALUES ('failed'::text, 'step "e": forEach gave number instead of an array')$$,
    'forEach over a number fails the step and the task');

-- ---------------------------------------------------------------------
-- A template path with no value fails the step permanently.

INSERT INTO ids SELECT 'tm', dwa.submit('{"type":"tm","steps":[
    {"id":"a","task":"st.tma"},
    {"id":"b","task":"st.tmb","input":{"x":"{{steps.a.missing}}"}}]}'::jsonb);
SELECT is(pg_temp.claim('st.tma'), 1::bigint, 'template error: a is claimed');
SELECT is(dwa.complete(pg_temp.run('tm', 'a'), '{"present":1}'), true, 'template error: a completes');
SELECT results_eq($$SELECT status, attempt, error FROM dwa.steps WHERE task_id = pg_temp.id('tm') AND step_id = 'b'$$,
    $$VALUES ('failed'::text, 0, 'template "{{steps.a.missing}}" has no value')$$,
    'template error: b failed without running, the message names the template');
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('tm')$$,
    $$VALUES ('failed'::text, 'step "b": template "{{steps.a.missing}}" has no value')$$,
    'template error: the task failed, naming the step and the template');
SELECT is(pg_temp.claim('st.tmb'), 0::bigint, 'template error: nothing to claim');

INSERT INTO ids SELECT 'tmroot', dwa.submit('{"type":"tmroot","payload":{"a":{}},
    "steps":[{"id":"r","task":"echo","input":"see {{payload.a.b.c}}"}]}'::jsonb);
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('tmroot')$$,
    $$VALUES ('failed'::text, 'step "r": template "{{payload.a.b.c}}" has no value')$$,
    'template error in a root step: the task fails at submission');
SELECT is((pg_temp.step('tmroot', 'r')).status, 'failed', '... and its step failed');

INSERT INTO ids SELECT 'tmitem', dwa.submit('{"type":"tmitem",
    "steps":[{"id":"e","task":"echo","forEach":[{"p":1},{"q":2}],"input":"{{item.p}}"}]}'::jsonb);
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('tmitem')$$,
    $$VALUES ('failed'::text, 'step "e": template "{{item.p}}" has no value')$$,
    'template error in a forEach element: the task fails');
SELECT is((SELECT count(*) FROM dwa.steps WHERE task_id = pg_temp.id('tmitem') AND item_index IS NOT NULL),
    0::bigint, '... and no element rows are left behind');

-- ---------------------------------------------------------------------
-- Permanent failure: the task fails, waiting and ready steps are skipped,
-- running ones cancelled, the error names the step.

INSERT INTO ids SELECT 'pf', dwa.submit('{"type":"pf","steps":[
    {"id":"a","task":"st.pfa"},
    {"id":"b","task":"st.pfb"},
    {"id":"c","task":"st.pfc","dependsOn":["a","b"]},
    {"id":"d","task":"st.pfc","dependsOn":["c"]},
    {"id":"e","task":"st.pfe"}]}'::jsonb);
SELECT is(pg_temp.claim('st.pfa') + pg_temp.claim('st.pfb'), 2::bigint, 'failure: a and b are claimed');
SELECT is(dwa.fail(pg_temp.run('pf', 'a'), 'model not found', retryable => false), true,
    'failure: a fails permanently');
SELECT results_eq(
    $$SELECT step_id, status, error, lease_until FROM dwa.steps WHERE task_id = pg_temp.id('pf') ORDER BY step_index$$,
    $$VALUES ('a'::text, 'failed'::text, 'model not found'::text, NULL::timestamptz),
             ('b', 'cancelled', NULL, NULL),
             ('c', 'skipped', NULL, NULL),
             ('d', 'skipped', NULL, NULL),
             ('e', 'skipped', NULL, NULL)$$,
    'failure: a failed, b (running) cancelled, c, d (waiting) and e (ready) skipped');
SELECT results_eq($$SELECT status, error, finished_at FROM dwa.tasks WHERE id = pg_temp.id('pf')$$,
    $$VALUES ('failed'::text, 'step "a": model not found'::text, now())$$,
    'failure: the task failed and its error names the step');
SELECT is((SELECT attempt FROM dwa.steps WHERE task_id = pg_temp.id('pf') AND step_id = 'a'), 1,
    'failure: a permanent error is not retried');
SELECT is(dwa.complete(pg_temp.run('pf', 'b'), '"late"'), false,
    'failure: the cancelled run cannot complete');
SELECT is(dwa.fail(pg_temp.run('pf', 'b'), 'late failure'), false,
    'failure: ... nor fail');
SELECT results_eq($$SELECT status, output, error FROM dwa.steps WHERE task_id = pg_temp.id('pf') AND step_id = 'b'$$,
    $$VALUES ('cancelled'::text, NULL::jsonb, NULL::text)$$, 'failure: ... and b is unchanged');
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('pf')$$,
    $$VALUES ('failed'::text, 'step "a": model not found'::text)$$, 'failure: the task keeps its first error');
SELECT is(pg_temp.claim('st.pfe') + pg_temp.claim('st.pfc'), 0::bigint, 'failure: skipped steps are not claimable');

-- ---------------------------------------------------------------------
-- Progress.

INSERT INTO ids SELECT 'pr', dwa.submit('{"type":"st.pr"}'::jsonb);
SELECT is(pg_temp.claim('st.pr'), 1::bigint, 'progress: claimed');
SELECT is(dwa.progress(pg_temp.run('pr', '0'), 45, '{"frame":120}'), true, 'progress: reported');
SELECT results_eq($$SELECT s.progress, t.progress FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id
                    WHERE t.id = pg_temp.id('pr')$$,
    $$VALUES (45, 45)$$, 'progress: the step and the task are at 45');
SELECT ok(dwa.progress(pg_temp.run('pr', '0'), 150), 'progress: 150 is accepted');
SELECT results_eq($$SELECT s.progress, t.progress FROM dwa.steps s JOIN dwa.tasks t ON t.id = s.task_id
                    WHERE t.id = pg_temp.id('pr')$$,
    $$VALUES (100, 99)$$, 'progress: clamped to 100, and the task stays below 100 until done');
SELECT is(dwa.progress(-1, 10), false, 'progress: an unknown run gives false');
SELECT ok(dwa.complete(pg_temp.run('pr', '0'), '{}'), 'progress: completes');
SELECT is(dwa.progress(pg_temp.run('pr', '0'), 10), false, 'progress: a finished run gives false');
SELECT is((pg_temp.task('pr')).progress, 100, 'progress: 100 when completed');

INSERT INTO ids SELECT 'pr2', dwa.submit('{"type":"pr2","steps":[{"task":"st.pr2a"},{"task":"st.pr2b"}]}'::jsonb);
SELECT is(pg_temp.claim('st.pr2a'), 1::bigint, 'progress of two steps: the first is claimed');
SELECT ok(dwa.progress(pg_temp.run('pr2', '0'), 50), 'progress of two steps: 50% of the first');
SELECT is((pg_temp.task('pr2')).progress, 25, 'progress of two steps: the task is at 25%');
SELECT ok(dwa.complete(pg_temp.run('pr2', '0'), '{}'), 'progress of two steps: the first completes');
SELECT is((pg_temp.task('pr2')).progress, 50, 'progress of two steps: the task is at 50%');
SELECT is(pg_temp.claim('st.pr2b'), 1::bigint, 'progress of two steps: the second is claimed');
SELECT ok(dwa.progress(pg_temp.run('pr2', '1'), 50), 'progress of two steps: 50% of the second');
SELECT is((pg_temp.task('pr2')).progress, 75, 'progress of two steps: the task is at 75%');

-- ---------------------------------------------------------------------
-- Views.

SELECT is(ARRAY(SELECT unnest(ARRAY['task_id', 'step_id', 'task', 'status', 'attempt', 'item_index',
                                    'started_at', 'finished_at', 'output', 'error'])
                EXCEPT
                SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'dwa' AND table_name = 'task_steps')::text[],
    '{}'::text[], 'task_steps has every column of SPEC section 4');
SELECT results_eq(
    $$SELECT step_id, task, status, attempt, item_index, output, error,
             started_at IS NOT NULL, finished_at IS NOT NULL
        FROM dwa.task_steps WHERE task_id = pg_temp.id('sinks') ORDER BY step_id$$,
    $$VALUES ('a'::text, 'st.sa'::text, 'succeeded'::text, 1, NULL::integer, '{"n":1}'::jsonb, NULL::text, true, true),
             ('b', 'st.sb', 'succeeded', 1, NULL, '["B"]', NULL, true, true),
             ('c', 'st.sc', 'succeeded', 1, NULL, '"C"', NULL, true, true)$$,
    'task_steps: one row per step');
SELECT is((SELECT count(*) FROM dwa.task_steps WHERE task_id = pg_temp.id('fe') AND step_id = 'each'),
    6::bigint, 'task_steps: one row per forEach element too');

SELECT dwa.submit(d::jsonb) FROM unnest(ARRAY[
    '{"type":"st.qs","queue":"stats","runAt":"2000-01-01T00:00:00Z"}',
    '{"type":"st.qs","queue":"stats"}',
    '{"type":"st.qs","queue":"stats","runAt":"2999-01-01T00:00:00Z"}',
    '{"type":"qs","queue":"stats","steps":[{"task":"st.qs"},{"task":"st.qs"}]}']) d
\g /dev/null
SELECT results_eq(
    $$SELECT status, count, oldest_ready_age FROM dwa.queue_stats WHERE queue = 'stats' ORDER BY status$$,
    $$VALUES ('ready'::text, 4::bigint, now() - '2000-01-01T00:00:00Z'::timestamptz),
             ('waiting', 1, NULL)$$,
    'queue_stats: counts per status and the age of the oldest claimable ready step');
SELECT is(pg_temp.claim('st.qs', 1), 1::bigint, 'queue_stats: one step is claimed');
SELECT results_eq(
    $$SELECT status, count, oldest_ready_age FROM dwa.queue_stats WHERE queue = 'stats' ORDER BY status$$,
    $$VALUES ('ready'::text, 3::bigint, interval '0'),
             ('running', 1, NULL),
             ('waiting', 1, NULL)$$,
    'queue_stats: the oldest went first; the future one does not count for the age');

SELECT * FROM finish();
ROLLBACK;
