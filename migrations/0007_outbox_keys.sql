-- 0007_outbox_keys.sql: no index of dwa.outbox but its primary key ends in
-- its id.
--
-- Autovacuum often analyzes the outbox while it holds no pending row, and
-- the plans made from those statistics believe it holds one.  A lookup of
-- a delivery by id may then be planned on outbox_task_idx (task_id, id):
-- equally cheap for one row, but keyed on the index's second column it
-- walks the whole index, for each id, once a backlog of deliveries has
-- built up.  Its two uses get indexes of their own:
--
--   outbox_task_idx      a task's deliveries (deleting a task, listing them);
--   outbox_progress_idx  the latest onProgress delivery of a task's effect
--                        (coalescing reports, spacing deliveries a second
--                        apart), the only lookup that wants them in order.
--
-- And retention (dwa.prune) gets an index of the finished deliveries in
-- order of id: it looked for them in the primary key, reading every
-- pending row on the way, so that each call read all the deliveries that
-- wait for a receiver that is down (300,000: 165 ms a call).  A statement
-- whose conditions imply its predicate could be planned as a walk of all
-- of it from the statistics of an empty outbox: the engine's own say
-- "NOT IN ('pending', 'delivering')" instead (see dwa._tasks_deleted).
-- A listing of the deliveries in one of those states (dwa outbox
-- --status) may walk it, as it walked the primary key before.

DROP INDEX dwa.outbox_task_idx;
CREATE INDEX outbox_task_idx ON dwa.outbox (task_id);
CREATE INDEX outbox_progress_idx ON dwa.outbox (task_id, effect_index, id)
    WHERE hook = 'onProgress';
CREATE INDEX outbox_finished_idx ON dwa.outbox (id)
    WHERE status IN ('delivered', 'dead');
