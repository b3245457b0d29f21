-- 0009_hot_ends.sql: the updates of a run's claim and end are HOT.
--
-- A claim and an end each update a batch of step rows, most of the rows
-- of each page in one transaction: at fillfactor 50 a page had no room
-- for new versions of all of its rows, and a quarter of the updates were
-- not HOT (two index entries each, and the bottom-up deletion passes that
-- clean up after them).  At 35 nearly all are, and the table grows no
-- larger: the versions that did not fit had spread it over new pages.
--
-- A task's end was never HOT: tasks_finished_idx indexed finished_at,
-- which the end sets, and PostgreSQL 15 makes no HOT update of a row whose
-- indexed column changes.  dwa.prune now walks the tasks in order of id
-- (sql/60_admin.sql), so the index goes, and at fillfactor 50 a page has
-- room for the new versions of its rows.
--
-- A fillfactor applies to the pages filled from now on.

ALTER TABLE dwa.steps SET (fillfactor = 35);
ALTER TABLE dwa.tasks SET (fillfactor = 50);
DROP INDEX dwa.tasks_finished_idx;
