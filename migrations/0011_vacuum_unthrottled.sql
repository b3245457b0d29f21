-- 0011_vacuum_unthrottled.sql: autovacuum of the hot tables unthrottled.
--
-- Claims walk dwa.ready's index from its head, where the rows they took
-- and deleted leave dead entries until a vacuum removes them.  One
-- autovacuum worker takes a database's tables one after the other, and
-- throttled (a 2 ms sleep each 200 units of cost) its vacuum of dwa.steps
-- grown to 900 MB under 15,000 tasks a second took minutes: dwa.ready
-- waited with 1.3 million dead rows, each claim walked their entries, and
-- claims came to use most of a core while completions fell to 7,500 a
-- second.  Unthrottled, dwa.ready was vacuumed within two minutes and
-- completions stayed at 10,000-14,000 (bench/README.md).

ALTER TABLE dwa.ready SET (autovacuum_vacuum_cost_delay = 0);
ALTER TABLE dwa.runs SET (autovacuum_vacuum_cost_delay = 0);
ALTER TABLE dwa.claims SET (autovacuum_vacuum_cost_delay = 0);
ALTER TABLE dwa.steps SET (autovacuum_vacuum_cost_delay = 0);
ALTER TABLE dwa.tasks SET (autovacuum_vacuum_cost_delay = 0);
