-- foreach-chunks.sql: a forEach step without forEachConcurrency and with
-- more elements than dwa._fe_chunk() makes the rows of its elements a
-- chunk at a time: the first with the step, each next one by
-- dwa._expand (dwad's housekeeping connection, asked by NOTIFY
-- dwa_expand), or by the end of the last element made, the reaper or a
-- retry when nothing made is left to run.  Submitted set-wise and by a
-- dependency, with inputs rendered from templates, finished one by one
-- (dwa.complete) and in batches (dwa._finish_batch), failed, cancelled,
-- retried.
--
-- Everything runs in one transaction: the advisory lock that keeps makers
-- apart is the transaction's, taken again by the same transaction.
BEGIN;
SELECT plan(59);

INSERT INTO dwa.task_types (name, executor)
SELECT 'fc.' || n, 'worker' FROM unnest(ARRAY['w', 'first']) n;

\ir ../lib/named.sql
CREATE TEMP TABLE claims AS SELECT * FROM dwa.claim('nobody', ARRAY['no.such.type'], 1);
-- claim: claim up to p_n ready steps of type fc.w, by an external worker
-- (at most 1,000 a claim).
CREATE FUNCTION pg_temp.claim(p_n integer) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    got bigint := 0;
    n bigint;
BEGIN
    LOOP
        WITH c AS (INSERT INTO claims
                   SELECT * FROM dwa.claim('tester', ARRAY['fc.w'], least(p_n - got, 1000)::integer)
                   RETURNING 1)
        SELECT count(*) INTO n FROM c;
        got := got + n;
        EXIT WHEN n = 0 OR got >= p_n;
    END LOOP;
    RETURN got;
END
$$;
-- complete_claimed: dwa.complete each run claimed and not yet ended, in
-- claim order, output {"i": element index}; returns how many completed.
CREATE FUNCTION pg_temp.complete_claimed() RETURNS bigint LANGUAGE sql AS $$
    WITH d AS (DELETE FROM claims RETURNING run_id, item_index)
    SELECT count(*) FILTER (WHERE dwa.complete(d.run_id, jsonb_build_object('i', d.item_index)))
      FROM (SELECT * FROM d ORDER BY run_id) d
$$;
CREATE FUNCTION pg_temp.parent(p_task text) RETURNS dwa.steps LANGUAGE sql AS $$
    SELECT * FROM dwa.steps WHERE task_id = pg_temp.id(p_task) AND item_index IS NULL
       AND fe_total IS NOT NULL
$$;
-- made: the element rows of the task, and how many of them are ready.
CREATE FUNCTION pg_temp.made(p_task text, OUT made bigint, OUT ready bigint)
LANGUAGE sql AS $$
    SELECT count(*), count(*) FILTER (WHERE status = 'ready')
      FROM dwa.steps WHERE task_id = pg_temp.id(p_task) AND item_index IS NOT NULL
$$;
-- inputs_ok: every element row made has the input of its element.
CREATE FUNCTION pg_temp.inputs_ok(p_task text, p_want jsonb) RETURNS boolean
LANGUAGE sql AS $$
    SELECT bool_and(s.input IS NOT DISTINCT FROM p_want -> s.item_index)
      FROM dwa.steps s WHERE s.task_id = pg_temp.id(p_task) AND s.item_index IS NOT NULL
$$;
CREATE TEMP TABLE k AS SELECT dwa._fe_chunk() AS chunk;
-- stalled: submit p_name, a forEach of a chunk and p_more elements, and
-- leave it as its ends would have with every element made finished and
-- the next chunk not made.
CREATE FUNCTION pg_temp.stalled(p_name text, p_more integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO ids
    SELECT p_name, dwa.submit(jsonb_build_object('type', 'fc', 'steps', jsonb_build_array(
        jsonb_build_object('id', 'e', 'task', 'fc.w',
            'forEach', (SELECT jsonb_agg(g) FROM generate_series(1, dwa._fe_chunk() + p_more) g)))));
    DELETE FROM dwa.ready WHERE step_id IN (SELECT id FROM dwa.steps
                                             WHERE task_id = pg_temp.id(p_name)
                                               AND item_index IS NOT NULL);
    UPDATE dwa.steps SET status = 'succeeded', output = '1'
     WHERE task_id = pg_temp.id(p_name) AND item_index IS NOT NULL;
    UPDATE dwa.steps SET fe_remaining = p_more WHERE id = (pg_temp.parent(p_name)).id;
$$;

-- ---------------------------------------------------------------------
-- Submitted: the first chunk made, ready; every element in the step's
-- input; a forEach of one chunk or less, or with forEachConcurrency, made
-- whole as before.

INSERT INTO ids
SELECT 'big', dwa.submit(jsonb_build_object('type', 'fc', 'payload',
    jsonb_build_object('xs', (SELECT jsonb_agg(g) FROM generate_series(1, 20000) g)),
    'steps', '[{"id": "e", "task": "fc.w", "forEach": "{{payload.xs}}"}]'::jsonb));
SELECT results_eq($$SELECT * FROM pg_temp.made('big')$$,
    $$SELECT chunk::bigint, chunk::bigint FROM k$$,
    '20,000 elements: the rows of the first chunk made, all ready');
SELECT results_eq($$SELECT status, fe_total, fe_next, fe_remaining FROM pg_temp.parent('big')$$,
    $$SELECT 'running', 20000, chunk, 20000 FROM k$$,
    '... the step running: 20,000 elements, a chunk made, none finished');
SELECT is((pg_temp.parent('big')).input, (SELECT jsonb_agg(g) FROM generate_series(1, 20000) g),
    '... every element in the step''s input');
SELECT ok(pg_temp.inputs_ok('big', (pg_temp.parent('big')).input),
    '... each row made with its element as its input');
SELECT is((SELECT count(*) FROM dwa.ready r JOIN dwa.steps s ON s.id = r.step_id
            WHERE s.task_id = pg_temp.id('big')), (SELECT chunk::bigint FROM k),
    '... a ready row for each');

INSERT INTO ids
SELECT 'one', dwa.submit(jsonb_build_object('type', 'fc', 'steps', jsonb_build_array(
    jsonb_build_object('id', 'e', 'task', 'fc.w',
        'forEach', (SELECT jsonb_agg(g) FROM generate_series(1, (SELECT chunk FROM k)) g)))));
SELECT results_eq($$SELECT fe_total, fe_next, input FROM pg_temp.parent('one')$$,
    $$SELECT chunk, chunk, NULL::jsonb FROM k$$,
    'exactly one chunk of elements: all made at once, nothing kept in the step''s input');
SELECT results_eq($$SELECT * FROM pg_temp.made('one')$$, $$SELECT chunk::bigint, chunk::bigint FROM k$$,
    '... all ready');

INSERT INTO ids
SELECT 'win', dwa.submit(jsonb_build_object('type', 'fc', 'steps', jsonb_build_array(
    jsonb_build_object('id', 'e', 'task', 'fc.w', 'forEachConcurrency', 10,
        'forEach', (SELECT jsonb_agg(g) FROM generate_series(1, 20000) g)))));
SELECT results_eq($$SELECT * FROM pg_temp.made('win')$$, $$VALUES (20000::bigint, 10::bigint)$$,
    'with forEachConcurrency: all 20,000 rows made at once, 10 ready');
SELECT results_eq($$SELECT fe_next, input FROM pg_temp.parent('win')$$, $$VALUES (10, NULL::jsonb)$$,
    '... its cursor at 10, nothing kept in the step''s input');
SELECT is(dwa._expand((pg_temp.parent('win')).id), 0, '... dwa._expand makes none of it');

-- ---------------------------------------------------------------------
-- dwa._expand: the next chunk, then the rest, then nothing.

SELECT is(dwa._expand((pg_temp.parent('big')).id), (SELECT chunk FROM k),
    'dwa._expand makes the next chunk');
SELECT results_eq($$SELECT * FROM pg_temp.made('big')$$,
    $$SELECT 2 * chunk::bigint, 2 * chunk::bigint FROM k$$, '... ready at once');
SELECT results_eq($$SELECT fe_next, fe_remaining FROM pg_temp.parent('big')$$,
    $$SELECT 2 * chunk, 20000 FROM k$$, '... the step counts them made');
SELECT is(dwa._expand((pg_temp.parent('big')).id), (SELECT 20000 - 2 * chunk FROM k),
    'again: the rest');
SELECT is(dwa._expand((pg_temp.parent('big')).id), 0, 'again: nothing left to make');
SELECT results_eq($$SELECT * FROM pg_temp.made('big')$$, $$VALUES (20000::bigint, 20000::bigint)$$,
    '... all 20,000 made and ready');
SELECT ok(pg_temp.inputs_ok('big', (pg_temp.parent('big')).input),
    '... each with its element as its input, in element order');
SELECT is((SELECT count(DISTINCT item_index) FROM dwa.steps WHERE task_id = pg_temp.id('big')
              AND item_index IS NOT NULL), 20000::bigint, '... none made twice');
SELECT is(dwa._expand(-1), 0, 'dwa._expand of no such step makes nothing');
SELECT is(dwa._expand((SELECT id FROM dwa.steps WHERE task_id = pg_temp.id('big')
                         AND item_index = 0)), 0, 'nor of an element');
DELETE FROM dwa.tasks WHERE id IN (pg_temp.id('big'), pg_temp.id('one'), pg_temp.id('win'));

-- ---------------------------------------------------------------------
-- Inputs rendered from templates, kept rendered; a forEach made ready by
-- its dependency (dwa._make_ready) is chunked the same way.

INSERT INTO ids
SELECT 'tpl', dwa.submit(jsonb_build_object('type', 'fc', 'payload',
    jsonb_build_object('xs', (SELECT jsonb_agg(jsonb_build_object('p', g))
                                FROM generate_series(1, (SELECT chunk + 5 FROM k)) g)),
    'steps', '[{"id": "e", "task": "fc.w", "forEach": "{{payload.xs}}",
                "input": {"path": "{{item.p}}", "at": "{{index}}", "t": "{{task.type}}"}}]'::jsonb));
SELECT is((pg_temp.parent('tpl')).input,
    (SELECT jsonb_agg(jsonb_build_object('path', g, 'at', g - 1, 't', 'fc') ORDER BY g)
       FROM generate_series(1, (SELECT chunk + 5 FROM k)) g),
    'templated input: the step keeps every element''s input rendered');
SELECT ok(pg_temp.inputs_ok('tpl', (pg_temp.parent('tpl')).input),
    '... the first chunk''s rows made with theirs');
SELECT is(dwa._expand((pg_temp.parent('tpl')).id), 5, '... and the rest made');
SELECT ok(pg_temp.inputs_ok('tpl', (pg_temp.parent('tpl')).input), '... with theirs');
DELETE FROM dwa.tasks WHERE id = pg_temp.id('tpl');

INSERT INTO ids
SELECT 'dep', dwa.submit(jsonb_build_object('type', 'fc', 'steps',
    '[{"id": "a", "task": "fc.first"},
      {"id": "e", "task": "fc.w", "forEach": "{{steps.a.xs}}", "dependsOn": ["a"],
       "input": {"v": "{{item}}", "at": "{{index}}"}}]'::jsonb));
SELECT is((SELECT count(*) FROM dwa.claim('tester', ARRAY['fc.first'], 1) c
            WHERE dwa.complete(c.run_id, jsonb_build_object('xs',
                (SELECT jsonb_agg(g * 10) FROM generate_series(1, (SELECT chunk + 1 FROM k)) g)))),
    1::bigint, 'a forEach''s dependency completed with one chunk and one more elements');
SELECT results_eq($$SELECT status, fe_total, fe_next FROM pg_temp.parent('dep')$$,
    $$SELECT 'running', chunk + 1, chunk FROM k$$,
    '... the forEach step runs, a chunk of its elements made');
SELECT results_eq($$SELECT * FROM pg_temp.made('dep')$$, $$SELECT chunk::bigint, chunk::bigint FROM k$$,
    '... all ready');
SELECT is((pg_temp.parent('dep')).input,
    (SELECT jsonb_agg(jsonb_build_object('v', g * 10, 'at', g - 1) ORDER BY g)
       FROM generate_series(1, (SELECT chunk + 1 FROM k)) g),
    '... the step keeps every element''s input rendered');
SELECT ok(pg_temp.inputs_ok('dep', (pg_temp.parent('dep')).input), '... the rows made have theirs');

-- ---------------------------------------------------------------------
-- Finished one by one (dwa.complete): when the last element made ends,
-- the next chunk is made by that end; the step completes with every
-- output in element order.

SELECT is(pg_temp.claim(100000), (SELECT chunk::bigint FROM k), 'a worker claims the chunk made');
SELECT is(pg_temp.complete_claimed(), (SELECT chunk::bigint FROM k), '... and completes it');
SELECT results_eq($$SELECT * FROM pg_temp.made('dep')$$,
    $$SELECT chunk::bigint + 1, 1::bigint FROM k$$,
    'the end of the last element made made the last one, ready');
SELECT results_eq($$SELECT fe_next, fe_remaining FROM pg_temp.parent('dep')$$,
    $$SELECT chunk + 1, 1 FROM k$$, '... the step: all made, one left');
SELECT is(pg_temp.claim(10), 1::bigint, '... claimed');
SELECT is(pg_temp.complete_claimed(), 1::bigint, '... completed');
SELECT results_eq($$SELECT status, jsonb_array_length(output), output -> 0, output -> -1
                     FROM pg_temp.parent('dep')$$,
    $$SELECT 'succeeded', chunk + 1, '{"i": 0}'::jsonb, jsonb_build_object('i', chunk) FROM k$$,
    'the step succeeded, its output every element''s in element order');
SELECT is((SELECT status FROM dwa.tasks WHERE id = pg_temp.id('dep')), 'completed',
    '... and its task completed');

-- ---------------------------------------------------------------------
-- Finished in dwad's batches (dwa._finish_batch): the same.

INSERT INTO ids SELECT 'live', dwa._register('daemon-fc', 'h', 1, 'test', 8);
INSERT INTO ids
SELECT 'bat', dwa.submit(jsonb_build_object('type', 'fc', 'steps', jsonb_build_array(
    jsonb_build_object('id', 'e', 'task', 'fc.w',
        'forEach', (SELECT jsonb_agg(g) FROM generate_series(1, (SELECT chunk + 3 FROM k)) g)))));
CREATE TEMP TABLE b1 AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['fc.w'], 100000, '1 hour',
    NULL, NULL);
SELECT is((SELECT count(*) FROM b1), (SELECT chunk::bigint FROM k), 'dwad claims the chunk made');
SELECT is(dwa._finish_batch((SELECT jsonb_agg(jsonb_build_object('id', id, 'run', run_id,
              'outcome', 'ok', 'output', jsonb_build_object('i', item_index))) FROM b1)),
    '{}'::bigint[], '... and ends it in one batch');
SELECT results_eq($$SELECT * FROM pg_temp.made('bat')$$,
    $$SELECT chunk::bigint + 3, 3::bigint FROM k$$,
    'the batch with the last elements made made the rest, ready');
CREATE TEMP TABLE b2 AS
SELECT * FROM dwa._claim_async(pg_temp.id('live')::integer, ARRAY['fc.w'], 100000, '1 hour',
    NULL, NULL);
SELECT is(dwa._finish_batch((SELECT jsonb_agg(jsonb_build_object('id', id, 'run', run_id,
              'outcome', 'ok', 'output', jsonb_build_object('i', item_index))) FROM b2)),
    '{}'::bigint[], '... ended in a second batch');
SELECT results_eq($$SELECT t.status, jsonb_array_length(t.result), t.result -> -1
                     FROM dwa.tasks t WHERE t.id = pg_temp.id('bat')$$,
    $$SELECT 'completed', chunk + 3, jsonb_build_object('i', chunk + 2) FROM k$$,
    'the task completed with every element''s output in element order');

-- ---------------------------------------------------------------------
-- Failed, then retried: elements not yet made count as not finished.

INSERT INTO ids
SELECT 'fail', dwa.submit(jsonb_build_object('type', 'fc', 'steps', jsonb_build_array(
    jsonb_build_object('id', 'e', 'task', 'fc.w',
        'forEach', (SELECT jsonb_agg(g) FROM generate_series(1, (SELECT chunk + 2 FROM k)) g)))));
SELECT is(pg_temp.claim(2), 2::bigint, 'two elements of a chunked forEach claimed');
SELECT ok(dwa.complete((SELECT min(run_id) FROM claims), '"ok"'), '... one completes');
SELECT ok(dwa.fail((SELECT max(run_id) FROM claims), 'broken', false),
    '... the other fails for good');
DELETE FROM claims;
SELECT results_eq($$SELECT t.status, p.status FROM dwa.tasks t, pg_temp.parent('fail') p
                     WHERE t.id = pg_temp.id('fail')$$,
    $$VALUES ('failed', 'failed')$$, 'the step and its task failed');
SELECT is(dwa._expand((pg_temp.parent('fail')).id), 0, '... no more elements made for them');
SELECT ok(dwa.retry(pg_temp.id('fail')), 'retried');
SELECT results_eq($$SELECT status, fe_next, fe_remaining FROM pg_temp.parent('fail')$$,
    $$SELECT 'running', chunk, chunk + 1 FROM k$$,
    '... the step runs again: a chunk made, all but the one completed left (two of them not made)');
SELECT results_eq($$SELECT * FROM pg_temp.made('fail')$$,
    $$SELECT chunk::bigint, chunk::bigint - 1 FROM k$$,
    '... every element made but the one completed ready again');

-- Cancelled with every element made finished and more to make (set here
-- as the ends would have left it, the next chunk not yet made): a retry
-- makes it.
SELECT pg_temp.stalled('cr', 4);
SELECT ok(dwa.cancel(pg_temp.id('cr')), 'a chunked forEach with every element made finished cancelled');
SELECT is(dwa._expand((pg_temp.parent('cr')).id), 0, '... nothing made once cancelled');
SELECT ok(dwa.retry(pg_temp.id('cr')), '... retried');
SELECT results_eq($$SELECT * FROM pg_temp.made('cr')$$,
    $$SELECT chunk::bigint + 4, 4::bigint FROM k$$, '... the retry made the rest, ready');

-- ---------------------------------------------------------------------
-- The reaper: a step with every element made finished and more to make
-- (its maker's transaction did not commit) gets its next chunk.

SELECT pg_temp.stalled('reap', 7);
SELECT is(dwa._reap(), 0, 'the reaper requeues no run');
SELECT results_eq($$SELECT * FROM pg_temp.made('reap')$$,
    $$SELECT chunk::bigint + 7, 7::bigint FROM k$$, '... but makes the stalled step''s rest, ready');
SELECT is((SELECT count(*) FROM dwa.steps WHERE fe_next < fe_total AND fe_concurrency IS NULL
             AND status = 'running'), 1::bigint,
    'the retried step is the one left making elements');

-- ---------------------------------------------------------------------
-- A template without a value for one element fails the step before any
-- row is made.

INSERT INTO ids
SELECT 'miss', dwa.submit(jsonb_build_object('type', 'fc', 'payload',
    jsonb_build_object('xs', (SELECT jsonb_agg(CASE WHEN g = 9000 THEN '{}'::jsonb
                                                    ELSE jsonb_build_object('p', g) END)
                                FROM generate_series(1, (SELECT chunk + 900 FROM k)) g)),
    'steps', '[{"id": "e", "task": "fc.w", "forEach": "{{payload.xs}}",
                "input": "{{item.p}}"}]'::jsonb));
SELECT results_eq($$SELECT t.status, t.error FROM dwa.tasks t WHERE t.id = pg_temp.id('miss')$$,
    $$VALUES ('failed', 'step "e": template "{{item.p}}" has no value')$$,
    'an element without the value its input needs fails the task');
SELECT results_eq($$SELECT * FROM pg_temp.made('miss')$$, $$VALUES (0::bigint, 0::bigint)$$,
    '... no element made');

SELECT * FROM finish();
ROLLBACK;
