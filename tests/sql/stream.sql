-- stream.sql: dwa.stream records a running step's streamed events.
BEGIN;
SELECT plan(6);

INSERT INTO dwa.task_types (name, executor) VALUES ('st.w', 'worker');
CREATE TEMP TABLE r AS
    SELECT c.run_id, c.task_id
      FROM (SELECT dwa.submit('{"type": "st.w"}') AS id) t,
           LATERAL dwa.claim('st-worker', ARRAY['st.w'], 1) c;

SELECT ok(dwa.stream((SELECT run_id FROM r), 'segment', '{"text": "hello"}'),
    'stream on a running run is accepted');
SELECT results_eq(
    $$SELECT task_id, step_id, event, payload FROM dwa.events$$,
    $$SELECT task_id, '0'::text, 'segment'::text, '{"text": "hello"}'::jsonb FROM r$$,
    'the event is stored with its task and step');
SELECT throws_ok($$SELECT dwa.stream((SELECT run_id FROM r), '', NULL)$$, '22023',
    'event: must be a non-empty name', 'an empty event name is rejected');
SELECT is((SELECT count(*) FROM dwa.events), 1::bigint, '... and stores nothing');
SELECT ok(dwa.complete((SELECT run_id FROM r), '{}'), 'the run completes');
SELECT is(dwa.stream((SELECT run_id FROM r), 'late', NULL), false,
    'stream after the run ended is refused');

SELECT * FROM finish();
ROLLBACK;
