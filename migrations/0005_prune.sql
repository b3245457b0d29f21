-- 0005_prune.sql: dwa.prune takes a batch limit.
--
-- dwa.prune(interval) becomes dwa.prune(interval, integer) in
-- sql/60_admin.sql; a new signature is a new function, so the old one has
-- to go first.  Finished tasks are found through tasks_finished_idx
-- (0001_core.sql), oldest first; events and deliveries through their
-- primary keys, so this adds no index.

DROP FUNCTION IF EXISTS dwa.prune(interval);
