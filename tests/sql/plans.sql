-- plans.sql: the statements that find rows of the ready queue stay index
-- lookups while the planner believes the queue is empty.
--
-- The queue is often empty when autovacuum analyzes it, and the plans of
-- the claim and of the engine's other statements are made from those
-- statistics and kept for the session.  A plan that joins dwa.ready with
-- the claimed steps, made then, walks the whole queue for each claim once
-- a backlog has built up: each claim slower as the backlog grows, until
-- the next analyze.  Here the statistics say "empty" while 20,000 steps
-- are ready, and each path that takes steps off the queue may read only
-- as much of the queue as it has work: claims (unlimited and limited),
-- cancel, a failed task's ready siblings, deleting a task.  Sequential
-- scans count too: each would read the whole table.  The statistics of
-- the steps and tasks say "empty" as well, for a batch of ends and for
-- the task of a forEach of 20,000 elements, marked running and completed.
--
-- No enclosing transaction: the statistics must be committed as
-- autovacuum would leave them.  The database is thrown away.
SET statement_timeout = '60s';
SELECT plan(28);

ALTER TABLE dwa.ready SET (autovacuum_enabled = off);
ALTER TABLE dwa.runs SET (autovacuum_enabled = off);
ALTER TABLE dwa.steps SET (autovacuum_enabled = off);
ALTER TABLE dwa.tasks SET (autovacuum_enabled = off);
INSERT INTO dwa.task_types (name, executor) VALUES ('pl.w', 'worker');

\ir ../lib/plan-reads.sql

-- ---------------------------------------------------------------------
-- The statistics of an empty queue whose pages are still there: ready
-- rows made and taken away, then analyzed.  At a lower priority than the
-- backlog to come, their index entries (dead, but not yet removable while
-- other sessions' snapshots may see them) sort after it: a claim walking
-- the queue in order does not meet them, a plan walking all of it does.

INSERT INTO dwa.tasks (type, priority) SELECT 'pl.w', -1 FROM generate_series(1, 5000);
DELETE FROM dwa.tasks WHERE type = 'pl.w';
ANALYZE dwa.ready;
ANALYZE dwa.runs;
ANALYZE dwa.steps;
ANALYZE dwa.tasks;
SELECT is((SELECT reltuples FROM pg_class WHERE oid = 'dwa.ready'::regclass), 0::real,
    'analyzed while empty: dwa.ready has no rows, as far as the statistics know');

INSERT INTO dwa.tasks (type) SELECT 'pl.w' FROM generate_series(1, 20000);
SELECT is((SELECT count(*) FROM dwa.ready), 20000::bigint, '20,000 ready rows');
SELECT cmp_ok(pg_temp.believed_rows('dwa.ready'), '<=', 1::numeric,
    'the planner believes dwa.ready holds at most one row');

-- ---------------------------------------------------------------------
-- Claims.

CREATE TEMP TABLE got (run_id bigint, task_id bigint);
-- A claim as a worker makes it (dwa.claim: dwa._claim, unlimited).
CREATE FUNCTION pg_temp.claim(p_n integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO got SELECT c.run_id, c.task_id
      FROM dwa.claim('pl-worker', ARRAY['pl.w'], p_n, interval '5 minutes') c
     WHERE c.run_id IS NOT NULL
$$;
SELECT cmp_ok(pg_temp.reads_of('SELECT pg_temp.claim(50)', 'dwa.ready'), '<', 1000::bigint,
    'a claim of 50 reads fewer than 1,000 rows, entries and blocks of the queue (not 20,000)');
SELECT is((SELECT count(*) FROM got), 50::bigint, 'it claimed 50');
SELECT is((SELECT count(*) FROM dwa.ready), 19950::bigint, 'their ready rows are gone');
SELECT is((SELECT count(*) FROM dwa.ready r
            WHERE r.step_id = ANY (ARRAY(SELECT s.id FROM dwa.steps s
                                          WHERE s.task_id = ANY (ARRAY(SELECT task_id FROM got))))),
    0::bigint,
    'none of the claimed steps is left in the queue');
SELECT is((SELECT count(*) FROM dwa.runs u WHERE u.run_id = ANY (ARRAY(SELECT run_id FROM got))),
    50::bigint,
    'each claimed run is recorded in dwa.runs');

-- Again, in the same session: the cached plans too.
SELECT cmp_ok(pg_temp.reads_of('SELECT pg_temp.claim(50)', 'dwa.ready'), '<', 1000::bigint,
    'a second claim of 50 in the session reads fewer than 1,000');

-- A batch of ends as dwad records them, for 50 of those runs: each of
-- its statements reads the steps and the tasks by primary key, whatever
-- the statistics say.
CREATE TEMP TABLE ended AS
SELECT u.run_id, u.step_id, u.task_id FROM dwa.runs u
 WHERE u.run_id = ANY (ARRAY(SELECT run_id FROM got ORDER BY run_id LIMIT 50));
CREATE TEMP TABLE end_reads (steps bigint, tasks bigint);
DO $$
DECLARE
    v jsonb := (SELECT jsonb_agg(jsonb_build_object('id', e.step_id, 'run', e.run_id,
                                 'outcome', 'ok', 'output', jsonb_build_object('r', e.run_id)))
                  FROM ended e);
    s0 bigint := pg_temp.reads('dwa.steps');
    t0 bigint := pg_temp.reads('dwa.tasks');
BEGIN
    PERFORM dwa._finish_batch(v);
    INSERT INTO end_reads VALUES (pg_temp.reads('dwa.steps') - s0, pg_temp.reads('dwa.tasks') - t0);
END
$$;
SELECT cmp_ok(pg_temp.believed_rows('dwa.steps'), '<=', 1::numeric,
    'the planner believes dwa.steps holds at most one row');
SELECT ok((SELECT steps < 1000 AND tasks < 1000 FROM end_reads),
    'a batch of 50 ends reads fewer than 1,000 rows, entries and blocks of the steps and of the tasks (not 20,000)');
SELECT is((SELECT count(*) FROM dwa.tasks t JOIN ended e ON e.task_id = t.id
            WHERE t.status = 'completed' AND t.result = jsonb_build_object('r', e.run_id)),
    50::bigint, 'each of the 50 tasks completed with its own result');

-- Under a limit (dwa._claim_limited looks its ready rows up by key).
SELECT dwa.limit_set('type:pl.w', 1000, NULL, NULL);
SELECT cmp_ok(pg_temp.reads_of('SELECT pg_temp.claim(50)', 'dwa.ready'), '<', 1000::bigint,
    'a limited claim of 50 reads fewer than 1,000');
SELECT is((SELECT count(*) FROM got), 150::bigint, 'the limited claim claimed 50 more');
SELECT is((SELECT count(*) FROM dwa.ready), 19850::bigint, 'and took their ready rows');
SELECT dwa.limit_delete('type:pl.w');

-- ---------------------------------------------------------------------
-- Cancel, a deleted task, a failed task: one ready row each, by key.

-- The checks read dwa.ready alone: a join with it would be planned from
-- the same statistics.
CREATE TEMP TABLE one AS
SELECT s.task_id AS cancel_id, s.id AS step_id FROM dwa.steps s
 WHERE s.status = 'ready' ORDER BY s.task_id LIMIT 1;
SELECT cmp_ok(pg_temp.reads_of(format('SELECT dwa.cancel(%s)', (SELECT cancel_id FROM one)), 'dwa.ready'),
    '<', 40::bigint,
    'cancelling a task with a ready step reads fewer than 40 of the queue');
SELECT is((SELECT count(*) FROM dwa.ready r WHERE r.step_id = (SELECT step_id FROM one)),
    0::bigint, 'the cancelled task''s step left the queue');

UPDATE one SET (cancel_id, step_id) = (SELECT s.task_id, s.id FROM dwa.steps s
                                        WHERE s.status = 'ready' ORDER BY s.task_id LIMIT 1);
SELECT cmp_ok(pg_temp.reads_of(format('DELETE FROM dwa.tasks WHERE id = %s',
        (SELECT cancel_id FROM one)), 'dwa.ready'),
    '<', 40::bigint,
    'deleting a task with a ready step reads fewer than 40 of the queue');
SELECT is((SELECT count(*) FROM dwa.ready r WHERE r.step_id = (SELECT step_id FROM one)),
    0::bigint, 'the deleted task''s ready row went with it');

-- Two parallel steps of a type of their own: one claimed and failed for
-- good, the other still ready, which the failed task skips.
INSERT INTO dwa.task_types (name, executor) VALUES ('pl.f', 'worker');
UPDATE one SET cancel_id = dwa.submit('{"type":"pl.pair","steps":[
    {"id":"a","task":"pl.f"},{"id":"b","task":"pl.f","dependsOn":[]}]}'::jsonb);
CREATE TEMP TABLE fr AS
SELECT c.run_id FROM dwa.claim('pl-worker', ARRAY['pl.f'], 1, interval '5 minutes') c
 WHERE c.run_id IS NOT NULL;
SELECT is((SELECT count(*) FROM dwa.ready r
            WHERE r.step_id = ANY (ARRAY(SELECT s.id FROM dwa.steps s
                                          WHERE s.task_id = (SELECT cancel_id FROM one)))),
    1::bigint, 'one step of the pair claimed, the other ready');
SELECT cmp_ok(pg_temp.reads_of(format('SELECT dwa.fail(%s, %L, false)',
        (SELECT run_id FROM fr), 'boom'), 'dwa.ready'),
    '<', 40::bigint,
    'a step failing for good, its sibling ready, reads fewer than 40 of the queue');
SELECT results_eq(
    format($$SELECT t.status, (SELECT string_agg(s.step_id || '=' || s.status, ',' ORDER BY s.step_id)
                                  FROM dwa.steps s WHERE s.task_id = t.id)
               FROM dwa.tasks t WHERE t.id = %s$$, (SELECT cancel_id FROM one)),
    $$VALUES ('failed', 'a=failed,b=skipped')$$,
    'the task failed and its ready sibling was skipped');
SELECT is((SELECT count(*) FROM dwa.ready r
            WHERE r.step_id = ANY (ARRAY(SELECT s.id FROM dwa.steps s
                                          WHERE s.task_id = (SELECT cancel_id FROM one)))),
    0::bigint, 'and left the queue');

-- A forEach over 20,000 elements, all done (set here as the ends would
-- have): completing its task reads its one step by index, not each entry
-- of the task in steps_task_idx; marking its task running reads the
-- steps' start times, not the elements'.  With forEachConcurrency, all
-- the elements' rows are made at once (not in chunks).
CREATE TEMP TABLE fe AS
SELECT dwa.submit(jsonb_build_object('type', 'pl.each', 'steps', jsonb_build_array(
    jsonb_build_object('id', 'e', 'task', 'pl.w', 'forEachConcurrency', 20000,
                       'forEach', (SELECT jsonb_agg(g) FROM generate_series(1, 20000) g))))) AS id;
SELECT is((SELECT count(*) FROM dwa.steps WHERE task_id = (SELECT id FROM fe)), 20001::bigint,
    'a forEach of 20,000 elements');
ALTER TABLE fe ADD COLUMN first bigint;
UPDATE fe SET first = (SELECT s.id FROM dwa.steps s WHERE s.task_id = fe.id AND s.item_index = 0);
SELECT cmp_ok(pg_temp.reads_of(format('SELECT dwa._tasks_started(ARRAY[%s]::bigint[], true)',
        (SELECT first FROM fe)), 'dwa.steps'),
    '<', 1000::bigint, 'marking it running reads fewer than 1,000 of the steps (not 20,000)');
DELETE FROM dwa.ready WHERE step_id IN (SELECT s.id FROM dwa.steps s
                                          WHERE s.task_id = (SELECT id FROM fe));
UPDATE dwa.steps SET status = 'succeeded', output = to_jsonb(item_index)
 WHERE task_id = (SELECT id FROM fe) AND item_index IS NOT NULL;
UPDATE dwa.steps SET status = 'succeeded', output = '[1, 2]'
 WHERE task_id = (SELECT id FROM fe) AND item_index IS NULL;
SELECT cmp_ok(pg_temp.reads_of(format('SELECT dwa._complete_task(%s)', (SELECT id FROM fe)), 'dwa.steps'),
    '<', 20::bigint, 'completing it reads fewer than 20 of the steps (not each entry of the task''s)');
SELECT results_eq(format('SELECT status, result FROM dwa.tasks WHERE id = %s', (SELECT id FROM fe)),
    $$VALUES ('completed', '[1, 2]'::jsonb)$$, '... and its result is its step''s output');

-- The queue tables and the hot tables are vacuumed unthrottled (0011):
-- claims walk the dead entries a throttled vacuum leaves at the head of
-- dwa.ready's index.
SELECT is((SELECT count(*) FROM pg_class c
            WHERE c.oid IN ('dwa.ready'::regclass, 'dwa.runs'::regclass, 'dwa.claims'::regclass,
                            'dwa.steps'::regclass, 'dwa.tasks'::regclass)
              AND 'autovacuum_vacuum_cost_delay=0' = ANY (c.reloptions)),
    5::bigint, 'autovacuum runs unthrottled on the queues, the steps and the tasks');

-- True statistics again, for the consistency check that follows the test.
ALTER TABLE dwa.ready RESET (autovacuum_enabled);
ALTER TABLE dwa.runs RESET (autovacuum_enabled);
ALTER TABLE dwa.steps RESET (autovacuum_enabled);
ALTER TABLE dwa.tasks RESET (autovacuum_enabled);
ANALYZE dwa.ready;
ANALYZE dwa.runs;
ANALYZE dwa.steps;
ANALYZE dwa.tasks;

SELECT * FROM finish();
