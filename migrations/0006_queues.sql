-- 0006_queues.sql: the ready queue and the runs in flight get tables of
-- their own, so that dwa.steps is indexed only by columns that never change.
--
-- A claim and an end each changed dwa.steps.status, which the predicates of
-- the partial ready, running and waiting indexes named: every update of a
-- step wrote a new row version and an entry in each of its indexes (about
-- five index insertions a task, a quarter of PostgreSQL's CPU).  Now:
--
--   dwa.ready  one narrow row per ready step, in claim order; a claim
--              deletes the rows it takes.  Its one index is the claim
--              order, which ends with the step id: a ready row is found
--              by its step's priority, run_after and id (no primary key,
--              one index insertion less a step: bulk submission is 15 %
--              faster without it);
--   dwa.runs   one narrow row per run in flight: the lookup by run id, the
--              lease the reaper watches, the limit keys caps count;
--
-- and the waiting elements of a forEach step are found by its cursor
-- (fe_next) through steps_task_idx.  dwa.steps keeps its primary key and
-- steps_task_idx, so a claim and an end are HOT updates when the page has
-- room: fillfactor 50 leaves room for them.

CREATE TABLE dwa.ready (
    step_id     bigint NOT NULL,
    priority    integer NOT NULL,
    run_after   timestamptz NOT NULL,
    task        text NOT NULL,
    queue       text NOT NULL,
    backend     text
);
COMMENT ON TABLE dwa.ready IS
    'Ready steps in claim order: a row per step of dwa.steps whose status is ready';
CREATE INDEX ready_claim_idx ON dwa.ready (priority DESC, run_after, step_id);

CREATE TABLE dwa.runs (
    run_id      bigint PRIMARY KEY,
    step_id     bigint NOT NULL,
    task_id     bigint NOT NULL,
    worker_id   integer,
    lease_until timestamptz NOT NULL,
    limit_keys  text[]
);
COMMENT ON TABLE dwa.runs IS
    'Runs in flight: a row per step of dwa.steps whose status is running (forEach steps aside)';

ALTER TABLE dwa.steps ADD COLUMN fe_next integer;
COMMENT ON COLUMN dwa.steps.fe_next IS
    'forEach step: the index of the next element to start';

INSERT INTO dwa.ready (step_id, priority, run_after, task, queue, backend)
SELECT s.id, s.priority, s.run_after, s.task, s.queue, s.backend
  FROM dwa.steps s WHERE s.status = 'ready';
INSERT INTO dwa.runs (run_id, step_id, task_id, worker_id, lease_until, limit_keys)
SELECT s.run_id, s.id, s.task_id, s.worker_id, coalesce(s.lease_until, now()), s.limit_keys
  FROM dwa.steps s
 WHERE s.status = 'running' AND s.run_id IS NOT NULL;
UPDATE dwa.steps p
   SET fe_next = coalesce((SELECT min(e.item_index) FROM dwa.steps e
                            WHERE e.task_id = p.task_id AND e.step_index = p.step_index
                              AND e.item_index IS NOT NULL AND e.status = 'waiting'),
                          p.fe_total)
 WHERE p.item_index IS NULL AND p.fe_total IS NOT NULL;

DROP INDEX dwa.steps_ready_idx;
DROP INDEX dwa.steps_running_idx;
DROP INDEX dwa.steps_waiting_idx;
ALTER TABLE dwa.steps SET (fillfactor = 50);

ALTER TABLE dwa.ready SET (autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE dwa.runs SET (autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02);
