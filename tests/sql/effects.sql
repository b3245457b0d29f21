-- effects.sql: lifecycle effects, fired in the transaction of the state
-- change: onPending at submission, onSuccess on completion (dwa.complete
-- and the set-wise path of dwa._finish_batch), onError on failure,
-- onProgress coalesced; rendering (typed and interpolated templates,
-- defaults), UI events, enqueue, dead rows for templates with no value and
-- follow-ups that fail validation, and the validation of effects at
-- submission.  NOTIFY cannot be observed from pgTAP and is not tested here.
BEGIN;
SELECT plan(114);

INSERT INTO dwa.task_types (name, executor)
SELECT 'fx.' || n, 'worker'
  FROM unnest(ARRAY['pend', 'ok', 'fast', 'err', 'prog', 'pa', 'pb', 'pc', 'parent', 'child',
                    'dead', 'bad']) n;

\ir ../lib/named.sql
-- run: claim the ready steps of type p_type; the run id of task p_task's.
CREATE FUNCTION pg_temp.run(p_task text, p_type text) RETURNS bigint LANGUAGE sql AS $$
    SELECT max(c.run_id) FROM dwa.claim('fx-worker', ARRAY[p_type], 100) c
     WHERE c.task_id = pg_temp.id(p_task)
$$;
-- running: the run id of task p_task's running step.
CREATE FUNCTION pg_temp.running(p_task text) RETURNS bigint LANGUAGE sql AS $$
    SELECT run_id FROM dwa.steps WHERE task_id = pg_temp.id(p_task) AND status = 'running'
$$;
CREATE FUNCTION pg_temp.rows(p_task text, p_hook text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM dwa.outbox WHERE task_id = pg_temp.id(p_task) AND hook = p_hook
$$;
-- summary: the default webhook body, as the SQL renders it.
CREATE FUNCTION pg_temp.summary(p_task text, p_hook text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('taskId', t.id, 'type', t.type, 'status', t.status,
        'progress', t.progress, 'result', t.result, 'error', t.error, 'queue', t.queue,
        'hook', p_hook)
      FROM dwa.tasks t WHERE t.id = pg_temp.id(p_task)
$$;
CREATE FUNCTION pg_temp.stored() RETURNS text LANGUAGE sql AS $$
    SELECT format('tasks=%s steps=%s outbox=%s events=%s', (SELECT count(*) FROM dwa.tasks),
        (SELECT count(*) FROM dwa.steps), (SELECT count(*) FROM dwa.outbox),
        (SELECT count(*) FROM dwa.events))
$$;
CREATE FUNCTION pg_temp.detail_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE p_sql;
    RETURN '';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN d;
END
$$;
-- rejects: p_sql raises 22023 with exactly p_msg, names p_field and stores
-- nothing: three assertions.
CREATE FUNCTION pg_temp.rejects(p_sql text, p_msg text, p_field text, p_desc text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    before text := pg_temp.stored();
BEGIN
    RETURN NEXT throws_ok(p_sql, '22023', p_msg, p_desc);
    RETURN NEXT is(pg_temp.detail_of(p_sql), 'field: ' || p_field, p_desc || ': names the field');
    RETURN NEXT is(pg_temp.stored(), before, p_desc || ': nothing stored');
END
$$;

-- ---------------------------------------------------------------------
-- onPending: fired at submission.

SELECT is((SELECT count(*) FROM dwa.outbox) + (SELECT count(*) FROM dwa.events), 0::bigint,
    'the outbox and the event log start empty');
INSERT INTO ids SELECT 'pend', dwa.submit($${"type":"fx.pend","payload":{"u":"http://127.0.0.1:9/hook","n":5},
    "onPending":[{"$event":"webhook","url":"{{payload.u}}"},
                 {"$event":"toast","text":"Starting {{payload.n}}","variant":"info"}]}$$::jsonb);
SELECT results_eq(
    $$SELECT hook, event, effect_index, status, attempts, max_attempts, last_error,
             next_attempt_at <= now(), delivery_id IS NOT NULL
        FROM dwa.outbox WHERE task_id = pg_temp.id('pend')$$,
    $$VALUES ('onPending'::text, 'webhook'::text, 0, 'pending'::text, 0, 10, NULL::text, true, true)$$,
    'onPending: a webhook is one pending outbox row, due now, 10 attempts');
SELECT is((SELECT effect FROM dwa.outbox WHERE task_id = pg_temp.id('pend')),
    jsonb_build_object('$event', 'webhook', 'url', 'http://127.0.0.1:9/hook', 'method', 'POST',
        'headers', '{}'::jsonb, 'timeoutMs', 10000,
        'body', jsonb_build_object('taskId', pg_temp.id('pend'), 'type', 'fx.pend',
            'status', 'queued', 'progress', 0, 'result', NULL, 'error', NULL,
            'queue', 'default', 'hook', 'onPending')),
    'onPending: the rendered webhook: url from the payload, POST, no headers, the task summary as body');
SELECT results_eq(
    $$SELECT task_id, step_id, event, payload FROM dwa.events WHERE task_id = pg_temp.id('pend')$$,
    format($$VALUES (%s::bigint, NULL::text, 'toast'::text, '{"text":"Starting 5","variant":"info"}'::jsonb)$$,
        pg_temp.id('pend')),
    'onPending: a toast is a dwa.events row, rendered, without its $event');
SELECT is((SELECT count(*) FROM dwa.outbox WHERE event = 'toast'), 0::bigint,
    'onPending: a toast makes no outbox row');

INSERT INTO ids SELECT 'shapes', dwa.submit($${"type":"fx.pend","payload":{"to":"ops@example.com"},
    "onPending":[
      {"$event":"webhook","url":"http://127.0.0.1:9/put","method":"put","headers":{"X-A":"1","X-N":"{{task.id}}"},
       "body":["{{task.status}}"],"timeout":"2s","retry":{"attempts":3,"backoff":{"initialMs":50}}},
      {"$event":"notify","channel":"email","to":"{{payload.to}}","message":"task {{task.id}} accepted"},
      {"$event":"notify","channel":"slack","message":"hello","to":"ignored"},
      {"$event":"invalidate","path":"/tasks/{{task.id}}"},
      {"$event":"emit","event":"accepted","data":{"id":"{{task.id}}"}},
      {"$event":"redirect","url":"/tasks/{{task.id}}"}]}$$::jsonb);
SELECT results_eq(
    $$SELECT effect_index, event, effect, max_attempts FROM dwa.outbox
       WHERE task_id = pg_temp.id('shapes') ORDER BY effect_index$$,
    format($$VALUES
      (0, 'webhook'::text, '{"$event":"webhook","url":"http://127.0.0.1:9/put","method":"PUT","headers":{"X-A":"1","X-N":"%1$s"},
        "body":["queued"],"timeoutMs":2000,"retry":{"attempts":3,"backoff":{"initialMs":50}}}'::jsonb, 3),
      (1, 'notify', '{"$event":"notify","channel":"email","to":"ops@example.com","message":"task %1$s accepted",
        "subject":"DWA task %1$s queued"}', 10),
      (2, 'notify', '{"$event":"notify","channel":"slack","message":"hello"}', 10),
      (3, 'invalidate', '{"$event":"invalidate","path":"/tasks/%1$s","method":"POST"}', 10)$$,
      pg_temp.id('shapes')),
    'rendered shapes: webhook (method upper-cased, headers as strings, timeoutMs, retry kept), email, slack, invalidate');
SELECT results_eq(
    $$SELECT event, payload FROM dwa.events WHERE task_id = pg_temp.id('shapes') ORDER BY id$$,
    format($$VALUES ('emit'::text, '{"event":"accepted","data":{"id":%1$s}}'::jsonb),
                    ('redirect', '{"url":"/tasks/%1$s"}')$$, pg_temp.id('shapes')),
    'emit and redirect are dwa.events rows, in effect order');

CREATE TEMP TABLE bulk AS
WITH i AS (
    INSERT INTO dwa.tasks (type, payload, on_pending)
    SELECT 'fx.pend', jsonb_build_object('g', g),
           CASE WHEN g <> 2 THEN '[{"$event":"webhook","url":"http://127.0.0.1:9/b","body":"{{payload.g}}"}]'::jsonb END
      FROM generate_series(1, 3) g
    RETURNING id, payload)
SELECT * FROM i;
SELECT results_eq(
    $$SELECT b.payload ->> 'g', o.effect -> 'body' FROM bulk b JOIN dwa.outbox o ON o.task_id = b.id ORDER BY 1$$,
    $$VALUES ('1'::text, '1'::jsonb), ('3', '3')$$,
    'a plain multi-row INSERT fires the onPending of each row that has one');
INSERT INTO ids SELECT 'idem', dwa.submit('{"type":"fx.pend","idempotencyKey":"fx-1","onPending":[{"$event":"toast","text":"hi"}]}'::jsonb);
SELECT is(dwa.submit('{"type":"fx.pend","idempotencyKey":"fx-1","onPending":[{"$event":"toast","text":"hi"}]}'::jsonb),
    pg_temp.id('idem'), 'a repeated idempotencyKey returns the first task');
SELECT is((SELECT count(*) FROM dwa.events WHERE task_id = pg_temp.id('idem')), 1::bigint,
    '... and does not fire its onPending again');

-- ---------------------------------------------------------------------
-- onSuccess, through dwa.claim and dwa.complete.

INSERT INTO ids SELECT 'ok', dwa.submit($${"type":"fx.ok","payload":{"who":"bob"},
    "onSuccess":[{"$event":"webhook","url":"http://127.0.0.1:9/done",
                  "body":{"n":"{{result.x}}","s":"x={{result.x}} for {{payload.who}}","t":"{{task.type}}",
                          "all":"{{result}}","st":"{{task.status}}"}},
                 {"$event":"webhook","url":"http://127.0.0.1:9/summary"},
                 {"$event":"toast","text":"done: {{result.x}}"}],
    "onError":[{"$event":"webhook","url":"http://127.0.0.1:9/error"}]}$$::jsonb);
SELECT is(pg_temp.rows('ok', 'onSuccess'), 0::bigint, 'onSuccess: nothing before the task completes');
SELECT ok(dwa.complete(pg_temp.run('ok', 'fx.ok'), '{"x":42,"y":[1]}'), 'onSuccess: the run completes');
SELECT results_eq(
    $$SELECT effect_index, status, effect -> 'body' FROM dwa.outbox
       WHERE task_id = pg_temp.id('ok') AND hook = 'onSuccess' ORDER BY effect_index$$,
    $$VALUES (0, 'pending'::text, '{"n":42,"s":"x=42 for bob","t":"fx.ok","all":{"x":42,"y":[1]},"st":"completed"}'::jsonb),
             (1, 'pending', pg_temp.summary('ok', 'onSuccess'))$$,
    'onSuccess: {{result.x}} alone keeps its type, inside text it is interpolated; the default body is the summary');
SELECT is(pg_temp.summary('ok', 'onSuccess'),
    jsonb_build_object('taskId', pg_temp.id('ok'), 'type', 'fx.ok', 'status', 'completed', 'progress', 100,
        'result', '{"x":42,"y":[1]}'::jsonb, 'error', NULL, 'queue', 'default', 'hook', 'onSuccess'),
    'onSuccess: the summary is of the completed task');
SELECT is((SELECT payload FROM dwa.events WHERE task_id = pg_temp.id('ok')), '{"text":"done: 42"}'::jsonb,
    'onSuccess: the toast is rendered too');
SELECT is(pg_temp.rows('ok', 'onError'), 0::bigint, 'onSuccess: onError did not fire');
SELECT is(dwa.complete((SELECT run_id FROM dwa.steps WHERE task_id = pg_temp.id('ok')), '{"x":1}'), false,
    'onSuccess: a second completion is refused');
SELECT is(pg_temp.rows('ok', 'onSuccess'), 2::bigint, '... and fires nothing');

-- ---------------------------------------------------------------------
-- onSuccess through dwa._finish_batch's set-wise path (single-step tasks).

INSERT INTO ids SELECT 'fast' || g, dwa.submit(jsonb_build_object('type', 'fx.fast', 'payload', jsonb_build_object('g', g),
    'onSuccess', CASE WHEN g < 3 THEN jsonb_build_array(jsonb_build_object('$event', 'webhook',
        'url', 'http://127.0.0.1:9/fast', 'body', jsonb_build_object('g', '{{payload.g}}', 'v', '{{result.v}}'))) END))
  FROM generate_series(1, 3) g;
CREATE TEMP TABLE fast AS SELECT c.run_id, c.task_id FROM dwa.claim('fx-batcher', ARRAY['fx.fast'], 10) c;
SELECT is(dwa._finish_batch((SELECT jsonb_agg(jsonb_build_object('id', s.id, 'run', s.run_id, 'outcome', 'ok',
        'output', jsonb_build_object('v', s.input -> 'g')))
      FROM dwa.steps s WHERE s.run_id IN (SELECT run_id FROM fast))), '{}'::bigint[],
    '_finish_batch: three single-step runs finish');
SELECT results_eq(
    $$SELECT t.payload ->> 'g', t.status, t.steps_done FROM dwa.tasks t WHERE t.type = 'fx.fast' ORDER BY 1$$,
    $$VALUES ('1'::text, 'completed'::text, 1), ('2', 'completed', 1), ('3', 'completed', 1)$$,
    '_finish_batch: the tasks are completed');
SELECT results_eq(
    $$SELECT o.hook, o.status, o.effect -> 'body' FROM dwa.outbox o JOIN dwa.tasks t ON t.id = o.task_id
       WHERE t.type = 'fx.fast' ORDER BY t.id$$,
    $$VALUES ('onSuccess'::text, 'pending'::text, '{"g":1,"v":1}'::jsonb), ('onSuccess', 'pending', '{"g":2,"v":2}')$$,
    '_finish_batch: the set-wise path fires onSuccess for the tasks that have one, with their results');

-- ---------------------------------------------------------------------
-- onError, with {{error}}.

INSERT INTO ids SELECT 'err', dwa.submit($${"type":"fx.err","retry":{"attempts":2},
    "onError":[{"$event":"notify","channel":"slack","message":"failed: {{error}}"},
               {"$event":"webhook","url":"http://127.0.0.1:9/err"},
               {"$event":"webhook","url":"http://127.0.0.1:9/err","body":{"e":"{{error}}","r":"{{result}}"}}],
    "onSuccess":[{"$event":"webhook","url":"http://127.0.0.1:9/ok"}]}$$::jsonb);
SELECT ok(dwa.fail(pg_temp.run('err', 'fx.err'), 'flaky'), 'onError: a retryable failure');
SELECT is(pg_temp.rows('err', 'onError'), 0::bigint, 'onError: a failure that will be retried fires nothing');
UPDATE dwa.steps SET run_after = now() WHERE task_id = pg_temp.id('err');
SELECT ok(dwa.fail(pg_temp.run('err', 'fx.err'), 'boom', retryable => false), 'onError: a permanent failure');
SELECT results_eq(
    $$SELECT effect_index, status, effect FROM dwa.outbox
       WHERE task_id = pg_temp.id('err') AND hook = 'onError' ORDER BY effect_index$$,
    $$VALUES (0, 'pending'::text, '{"$event":"notify","channel":"slack","message":"failed: step \"0\": boom"}'::jsonb),
             (1, 'pending', jsonb_build_object('$event', 'webhook', 'url', 'http://127.0.0.1:9/err', 'method', 'POST',
                 'headers', '{}'::jsonb, 'timeoutMs', 10000, 'body', pg_temp.summary('err', 'onError'))),
             (2, 'pending', '{"$event":"webhook","url":"http://127.0.0.1:9/err","method":"POST","headers":{},
                 "timeoutMs":10000,"body":{"e":"step \"0\": boom","r":null}}')$$,
    'onError: fired once the task failed, with {{error}} the task''s error');
SELECT is(pg_temp.summary('err', 'onError') - 'taskId',
    '{"type":"fx.err","status":"failed","progress":0,"result":null,"error":"step \"0\": boom","queue":"default","hook":"onError"}'::jsonb,
    'onError: the default body is the failed task''s summary');
SELECT is(pg_temp.rows('err', 'onSuccess'), 0::bigint, 'onError: onSuccess did not fire');

-- ---------------------------------------------------------------------
-- onProgress: coalesced to one pending row per effect, the last value wins.

INSERT INTO ids SELECT 'prog', dwa.submit($${"type":"fx.prog",
    "onProgress":[{"$event":"webhook","url":"http://127.0.0.1:9/p","body":{"p":"{{progress}}"}},
                  {"$event":"emit","event":"progress","data":"{{progress}}"}]}$$::jsonb);
SELECT is(pg_temp.rows('prog', 'onProgress'), 0::bigint, 'onProgress: nothing before any progress');
CREATE TEMP TABLE prog AS SELECT pg_temp.run('prog', 'fx.prog') AS run_id;
SELECT is((SELECT count(*) FILTER (WHERE dwa.progress((SELECT run_id FROM prog), g)) FROM generate_series(1, 100) g),
    100::bigint, 'onProgress: 100 progress reports in a row');
SELECT cmp_ok(pg_temp.rows('prog', 'onProgress'), '<=', 2::bigint,
    'onProgress: they leave at most 2 outbox rows');
SELECT results_eq(
    $$SELECT status, effect -> 'body', next_attempt_at <= now() FROM dwa.outbox
       WHERE task_id = pg_temp.id('prog') AND hook = 'onProgress'$$,
    $$VALUES ('pending'::text, '{"p":99}'::jsonb, true)$$,
    'onProgress: one pending row, carrying the last value (a task stays below 100 until it completes)');
SELECT results_eq(
    $$SELECT count(*), (array_agg(payload ORDER BY id DESC))[1] FROM dwa.events
       WHERE task_id = pg_temp.id('prog') AND event = 'emit'$$,
    $$VALUES (99::bigint, '{"event":"progress","data":99}'::jsonb)$$,
    'onProgress: an emit is a UI event for each change of progress, the last one 99');
SELECT ok(dwa.progress((SELECT run_id FROM prog), 40), 'onProgress: a report below the task''s progress');
SELECT is((SELECT count(*) FROM dwa.events WHERE task_id = pg_temp.id('prog')), 99::bigint,
    '... changes nothing and fires nothing');
-- A dispatcher takes the pending row (as dwa._outbox_claim does).
UPDATE dwa.outbox SET status = 'delivering', attempts = 1, lease_until = now() + interval '1 minute'
 WHERE task_id = pg_temp.id('prog') AND hook = 'onProgress';
UPDATE dwa.tasks SET progress = 10 WHERE id = pg_temp.id('prog');
SELECT ok(dwa.progress((SELECT run_id FROM prog), 20), 'onProgress: progress while a delivery is under way');
SELECT ok(dwa.progress((SELECT run_id FROM prog), 30), 'onProgress: and again');
SELECT results_eq(
    $$SELECT status, effect -> 'body', next_attempt_at - (SELECT min(created_at) FROM dwa.outbox
                 WHERE task_id = pg_temp.id('prog')) FROM dwa.outbox
       WHERE task_id = pg_temp.id('prog') AND hook = 'onProgress' ORDER BY id$$,
    $$VALUES ('delivering'::text, '{"p":99}'::jsonb, interval '0'),
             ('pending', '{"p":30}', interval '1 second')$$,
    'onProgress: a second row, due a second after the first, carries the latest value');

INSERT INTO ids SELECT 'pipe', dwa.submit($${"type":"fx.pipe","steps":[{"id":"a","task":"fx.pa"},{"id":"b","task":"fx.pb"},{"id":"c","task":"fx.pc"}],
    "onProgress":[{"$event":"webhook","url":"http://127.0.0.1:9/p","body":"{{progress}}"}],
    "onSuccess":[{"$event":"webhook","url":"http://127.0.0.1:9/ok","body":"{{result}}"}]}$$::jsonb);
SELECT ok(dwa.complete(pg_temp.run('pipe', 'fx.pa'), '{"a":1}'), 'multi-step: step a completes');
SELECT results_eq($$SELECT status, effect -> 'body' FROM dwa.outbox WHERE task_id = pg_temp.id('pipe')$$,
    $$VALUES ('pending'::text, '33'::jsonb)$$,
    'multi-step: a finished step raises the progress to 33 and fires onProgress');
SELECT ok(dwa.complete(pg_temp.run('pipe', 'fx.pb'), '{"b":1}'), 'multi-step: step b completes');
SELECT ok(dwa.complete(pg_temp.run('pipe', 'fx.pc'), '{"c":1}'), 'multi-step: step c completes');
SELECT results_eq($$SELECT hook, status, effect -> 'body' FROM dwa.outbox WHERE task_id = pg_temp.id('pipe') ORDER BY id$$,
    $$VALUES ('onProgress'::text, 'pending'::text, '66'::jsonb), ('onSuccess', 'pending', '{"c":1}')$$,
    'multi-step: the pending onProgress row now says 66; the last step fires onSuccess, not onProgress');

-- ---------------------------------------------------------------------
-- enqueue: the follow-up is submitted in the same transaction, once.

INSERT INTO ids SELECT 'parent', dwa.submit($${"type":"fx.parent","payload":{"who":"ann"},
    "onSuccess":[{"$event":"enqueue","task":{"type":"fx.child","priority":"{{result.prio}}",
                   "payload":{"from":"{{task.id}}","who":"{{payload.who}}","x":"{{result.x}}"},
                   "onPending":[{"$event":"toast","text":"child {{task.id}} of {{payload.from}}"}]}},
                 {"$event":"enqueue","task":{"type":"no.such.type"}},
                 {"$event":"enqueue","task":{"type":"fx.child","payload":{"big":"{{result.x}}"},"priority":"high"}},
                 {"$event":"webhook","url":"http://127.0.0.1:9/after"}]}$$::jsonb);
SELECT ok(dwa.complete(pg_temp.run('parent', 'fx.parent'), '{"x":5,"prio":7}'), 'enqueue: the parent completes');
INSERT INTO ids SELECT 'child', id FROM dwa.tasks WHERE parent_id = pg_temp.id('parent');
SELECT results_eq(
    $$SELECT count(*), min(type), min(payload::text)::jsonb, min(priority), min(status)
        FROM dwa.tasks WHERE parent_id = pg_temp.id('parent')$$,
    format($$VALUES (1::bigint, 'fx.child'::text, '{"from":%s,"who":"ann","x":5}'::jsonb, 7, 'queued'::text)$$,
        pg_temp.id('parent')),
    'enqueue: exactly one follow-up, with parent_id, its payload and priority rendered from the parent');
SELECT results_eq($$SELECT status, input FROM dwa.steps WHERE task_id = pg_temp.id('child')$$,
    format($$VALUES ('ready'::text, '{"from":%s,"who":"ann","x":5}'::jsonb)$$, pg_temp.id('parent')),
    'enqueue: the follow-up has its ready step');
SELECT results_eq(
    $$SELECT effect_index, event, status, attempts, effect, last_error, delivered_at = now()
        FROM dwa.outbox WHERE task_id = pg_temp.id('parent') ORDER BY effect_index$$,
    format($$VALUES
      (0, 'enqueue'::text, 'delivered'::text, 1, jsonb_build_object('$event', 'enqueue', 'taskId', %2$s,
          'task', '{"type":"fx.child","priority":7,"payload":{"from":%1$s,"who":"ann","x":5},
                    "onPending":[{"$event":"toast","text":"child {{task.id}} of {{payload.from}}"}]}'::jsonb),
          NULL::text, true),
      (1, 'enqueue', 'dead', 1, '{"$event":"enqueue","task":{"type":"no.such.type"}}',
          'onSuccess[1]: type: unknown task type "no.such.type"', NULL),
      (2, 'enqueue', 'dead', 1, '{"$event":"enqueue","task":{"type":"fx.child","payload":{"big":5},"priority":"high"}}',
          'onSuccess[2]: priority: must be an integer between -1000000 and 1000000', NULL),
      (3, 'webhook', 'pending', 0, jsonb_build_object('$event', 'webhook', 'url', 'http://127.0.0.1:9/after',
          'method', 'POST', 'headers', '{}'::jsonb, 'timeoutMs', 10000, 'body', pg_temp.summary('parent', 'onSuccess')),
          NULL, NULL)$$,
      pg_temp.id('parent'), pg_temp.id('child')),
    'enqueue: a delivered row naming the follow-up; follow-ups that fail validation are dead rows with the message');
SELECT is((SELECT status FROM dwa.tasks WHERE id = pg_temp.id('parent')), 'completed',
    'enqueue: the failed follow-ups did not break the parent''s completion');
SELECT is((SELECT payload FROM dwa.events WHERE task_id = pg_temp.id('child')),
    format('{"text":"child %s of %s"}', pg_temp.id('child'), pg_temp.id('parent'))::jsonb,
    'enqueue: the follow-up''s own effects were left for it, and render with its own task');
SELECT is(dwa.complete((SELECT run_id FROM dwa.steps WHERE task_id = pg_temp.id('parent')), '{"x":6}'), false,
    'enqueue: a repeated completion is refused');
SELECT is((SELECT count(*) FROM dwa.tasks WHERE parent_id = pg_temp.id('parent')), 1::bigint,
    '... and submits nothing more');

-- The completing transaction fails after the enqueue and is retried: the
-- follow-up goes with the rollback, and the retry submits it once.
INSERT INTO ids SELECT 'again', dwa.submit($${"type":"fx.parent","payload":{"who":"bo"},
    "onSuccess":[{"$event":"enqueue","task":{"type":"fx.child","payload":{"of":"{{task.id}}"}}}]}$$::jsonb);
INSERT INTO ids SELECT 'again-run', pg_temp.run('again', 'fx.parent');
SAVEPOINT completing;
DO $$ BEGIN PERFORM dwa.complete(pg_temp.id('again-run'), '{}'); END $$;
ROLLBACK TO SAVEPOINT completing;
SELECT is((SELECT count(*) FROM dwa.tasks WHERE parent_id = pg_temp.id('again')), 0::bigint,
    'enqueue: a rolled-back completion leaves no follow-up');
SELECT ok(dwa.complete(pg_temp.id('again-run'), '{}'), 'enqueue: the retried completion is accepted');
SELECT is((SELECT count(*) FROM dwa.tasks WHERE parent_id = pg_temp.id('again')), 1::bigint,
    'enqueue: exactly one follow-up after the retry');

-- ---------------------------------------------------------------------
-- Templates with no value, fields of the wrong shape: dead rows.

INSERT INTO ids SELECT 'dead', dwa.submit($${"type":"fx.dead","payload":{"obj":{"a":1}},
    "onPending":[{"$event":"webhook","url":"{{payload.obj}}"},
                 {"$event":"webhook","url":"http://127.0.0.1:9/x","headers":{"X-O":"{{payload.obj}}"}}],
    "onProgress":[{"$event":"webhook","url":"http://127.0.0.1:9/p","body":"{{payload.nope}}"}],
    "onError":[{"$event":"webhook","url":"http://127.0.0.1:9/e","body":{"x":"{{result.x}}"}},
               {"$event":"toast","text":"{{payload.missing}} failed"},
               {"$event":"notify","channel":"slack","message":"failed: {{error}}"}]}$$::jsonb);
SELECT results_eq(
    $$SELECT effect_index, status, last_error FROM dwa.outbox WHERE task_id = pg_temp.id('dead') ORDER BY id$$,
    $$VALUES (0, 'dead'::text, 'onPending[0]: url: expected a string, got object'::text),
             (1, 'dead', 'onPending[1]: headers.X-O: expected a string, got object')$$,
    'a rendered field of the wrong shape gives a dead row naming the effect and field');
CREATE TEMP TABLE dead AS SELECT pg_temp.run('dead', 'fx.dead') AS run_id;
SELECT is((SELECT count(*) FILTER (WHERE dwa.progress((SELECT run_id FROM dead), g * 10)) FROM generate_series(1, 5) g),
    5::bigint, 'five progress reports with an onProgress that cannot render');
SELECT results_eq(
    $$SELECT status, event, effect, last_error FROM dwa.outbox WHERE task_id = pg_temp.id('dead') AND hook = 'onProgress'$$,
    $$VALUES ('dead'::text, 'webhook'::text, '{"$event":"webhook","url":"http://127.0.0.1:9/p","body":"{{payload.nope}}"}'::jsonb,
              'onProgress[0]: template "{{payload.nope}}" has no value'::text)$$,
    'a template with no value: one dead row naming it, the effect as written, not one per report');
SELECT ok(dwa.fail((SELECT run_id FROM dead), 'bad input', retryable => false), 'the task fails');
SELECT results_eq(
    $$SELECT effect_index, event, status, last_error FROM dwa.outbox
       WHERE task_id = pg_temp.id('dead') AND hook = 'onError' ORDER BY effect_index$$,
    $$VALUES (0, 'webhook'::text, 'dead'::text, 'onError[0]: template "{{result.x}}" has no value'::text),
             (1, 'toast', 'dead', 'onError[1]: template "{{payload.missing}}" has no value'),
             (2, 'notify', 'pending', NULL)$$,
    'onError: templates with no value are dead rows (a toast too); the other effects still fire');
SELECT results_eq($$SELECT status, error FROM dwa.tasks WHERE id = pg_temp.id('dead')$$,
    $$VALUES ('failed'::text, 'step "0": bad input'::text)$$,
    'the failure is recorded all the same');
SELECT is((SELECT count(*) FROM dwa.events WHERE task_id = pg_temp.id('dead')), 0::bigint,
    'the toast that could not render sent no UI event');

-- ---------------------------------------------------------------------
-- Validation at submission: each rule, with its message, its field, and
-- nothing stored.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onPending":[{"$event":"toast","variant":"info"}]}'::jsonb)$$,
    'onPending[0]: toast needs a "text" string', 'onPending[0].text', 'toast without text');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onSuccess":[{"$event":"toast","text":"a"},{"$event":"toast","text":7}]}'::jsonb)$$,
    'onSuccess[1]: toast needs a "text" string', 'onSuccess[1].text', 'toast with a number for text');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onProgress":[{"$event":"emit","data":1}]}'::jsonb)$$,
    'onProgress[0]: emit needs an "event" string', 'onProgress[0].event', 'emit without event');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, on_success) VALUES ('fx.bad', '[{"$event":"redirect","to":"/x"}]')$$,
    'onSuccess[0]: redirect needs a "url" string', 'onSuccess[0].url', 'INSERT: redirect without url');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onError":[{"$event":"notify","channel":"slack"}]}'::jsonb)$$,
    'onError[0]: notify needs a "message" string', 'onError[0].message', 'notify without message');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onError":[{"$event":"notify","channel":"discord","message":{"t":1}}]}'::jsonb)$$,
    'onError[0]: notify needs a "message" string', 'onError[0].message', 'notify with an object for message');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onError":[{"$event":"notify","channel":"email","message":"m"}]}'::jsonb)$$,
    'onError[0]: an email notify needs a "to" string', 'onError[0].to', 'email notify without to');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onError":[{"$event":"notify","channel":"email","message":"m","to":"a@b","subject":1}]}'::jsonb)$$,
    'onError[0]: subject must be a string', 'onError[0].subject', 'email notify with a number for subject');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onSuccess":[{"$event":"enqueue","task":{"payload":{}}}]}'::jsonb)$$,
    'onSuccess[0]: enqueue needs a "task" object with a "type" string', 'onSuccess[0].task.type',
    'enqueue of a task without type');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, on_success) VALUES ('fx.bad', '[{"$event":"enqueue","task":{"type":3}}]')$$,
    'onSuccess[0]: enqueue needs a "task" object with a "type" string', 'onSuccess[0].task.type',
    'INSERT: enqueue of a task whose type is a number');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onSuccess":[{"$event":"webhook","url":"http://h/{{steps.a.x}}"}]}'::jsonb)$$,
    'onSuccess[0]: template "{{steps.a.x}}" has an unknown root "steps"', 'onSuccess[0]',
    'a {{steps.x}} template in an effect');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onPending":[{"$event":"toast","text":"{{item}}"}]}'::jsonb)$$,
    'onPending[0]: template "{{item}}" has an unknown root "item"', 'onPending[0]',
    'an {{item}} template in an effect');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, on_error) VALUES ('fx.bad', '[{"$event":"notify","channel":"slack","message":"{{ oops.x }}"}]')$$,
    'onError[0]: template "{{oops.x}}" has an unknown root "oops"', 'onError[0]',
    'INSERT: a template with an unknown root in an effect');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onSuccess":[{"$event":"enqueue","task":{"type":"fx.child","payload":"{{index}}"}}]}'::jsonb)$$,
    'onSuccess[0]: template "{{index}}" has an unknown root "index"', 'onSuccess[0]',
    'a template with an unknown root in an enqueued task''s payload');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onSuccess":[{"$event":"webhook","url":"http://h","method":1}]}'::jsonb)$$,
    'onSuccess[0]: method must be a string', 'onSuccess[0].method', 'webhook with a number for method');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onSuccess":[{"$event":"webhook","url":"http://h","headers":["a"]}]}'::jsonb)$$,
    'onSuccess[0]: headers must be an object of strings', 'onSuccess[0].headers', 'webhook with an array for headers');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"fx.bad","onSuccess":[{"$event":"webhook","url":"http://h","retry":{"attempts":0}}]}'::jsonb)$$,
    'onSuccess[0]: retry.attempts: must be an integer from 1 to 1000', 'onSuccess[0]: retry.attempts',
    'webhook with 0 retry attempts');
SELECT throws_ok($$SELECT dwa.submit('{"type":"fx.bad","onSuccess":[{"$event":"webhook","url":"http://h","timeout":"soon"}]}'::jsonb)$$,
    '22023', 'onSuccess[0]: timeout: "soon" is not a duration (use e.g. "500ms", "30s", "10m", "2h", "7d")',
    'webhook with a timeout that is not a duration');

SELECT lives_ok($$SELECT dwa.submit('{"type":"fx.bad","onSuccess":[{"$event":"enqueue","task":{"type":"fx.pipe",
    "payload":{"r":"{{result}}"},"steps":[{"id":"a","task":"fx.pa"},{"id":"b","task":"fx.pb","input":"{{steps.a.x}}"}],
    "onError":[{"$event":"toast","text":"{{error}} in {{steps.a}}"}]}}]}'::jsonb)$$,
    'an enqueued task''s own steps and effects may use their own templates');
SELECT lives_ok($$SELECT dwa.submit('{"type":"fx.bad","payload":{},"onPending":[{"$event":"toast","text":"{{payload}} {{task.id}}"}],
    "onProgress":[{"$event":"emit","event":"p","data":"{{progress}}"}],
    "onSuccess":[{"$event":"webhook","url":"http://h","body":"{{result}}"}],
    "onError":[{"$event":"notify","channel":"slack","message":"{{error}}"}]}'::jsonb)$$,
    'effects may use payload, task, progress, result and error');

SELECT * FROM finish();
ROLLBACK;
