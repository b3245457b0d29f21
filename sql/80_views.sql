-- 80_views.sql: what psql users read.
CREATE OR REPLACE VIEW dwa.task_steps AS
SELECT s.task_id, s.step_id, s.task, s.status, s.attempt, s.item_index,
       s.started_at, s.finished_at, s.output, s.error, s.step_index,
       s.progress, s.run_after, s.max_attempts, s.worker_id, s.input,
       s.fe_total AS elements
  FROM dwa.steps s;
COMMENT ON VIEW dwa.task_steps IS
    'Steps of every task, one row per forEach element too (made in chunks for a large forEach)';
COMMENT ON COLUMN dwa.task_steps.elements IS
    'A forEach step''s number of elements, rows made or not; NULL for other steps';

CREATE OR REPLACE VIEW dwa.queue_stats AS
SELECT s.queue, s.status, count(*) AS count,
       CASE WHEN s.status = 'ready'
            THEN now() - min(s.run_after) FILTER (WHERE s.run_after <= now())
       END AS oldest_ready_age
  FROM dwa.steps s
 GROUP BY s.queue, s.status;
COMMENT ON VIEW dwa.queue_stats IS
    'Steps per queue and status, with the age of the oldest claimable ready step';
