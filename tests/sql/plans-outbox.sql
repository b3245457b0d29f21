-- plans-outbox.sql: the outbox's statements stay lookups of the rows they
-- work on while the planner believes the outbox is empty.
--
-- The outbox is a queue too (see plans.sql for the ready queue): it is
-- often empty when autovacuum analyzes it, and the plans made from those
-- statistics believe it holds one row.  A claim that joined the claimed
-- rows with the outbox walked its whole primary key; a lookup by id could
-- be planned on any index that ends in id (an index keyed on its second
-- column is walked whole, for each id).  Here the statistics of the
-- outbox and of the UI events say "empty" while 20,000 rows wait, and
-- each path may read only as much as it has work: claiming deliveries,
-- recording their outcomes, coalescing a progress report into the
-- pending delivery, and retention's deletes.
--
-- No enclosing transaction: the statistics must be committed as
-- autovacuum would leave them.  The database is thrown away.
SET statement_timeout = '60s';
SELECT plan(23);

ALTER TABLE dwa.outbox SET (autovacuum_enabled = off);
ALTER TABLE dwa.events SET (autovacuum_enabled = off);

\ir ../lib/plan-reads.sql

-- ---------------------------------------------------------------------
-- The statistics of an empty outbox and event log whose pages are still
-- there: rows made and taken away, then analyzed.  Their ids are above
-- those to come, so that their dead index entries sort after the rows the
-- paths below work on: a path working in order does not meet them, a
-- plan walking a whole index does.

INSERT INTO dwa.outbox (id, task_id, hook, event, effect, next_attempt_at)
OVERRIDING SYSTEM VALUE
SELECT 1000000 + g, g, 'onSuccess', 'webhook', '{}', now() + interval '1 day'
  FROM generate_series(1, 5000) g;
DELETE FROM dwa.outbox;
ANALYZE dwa.outbox;
INSERT INTO dwa.events (id, task_id, event) OVERRIDING SYSTEM VALUE
SELECT 1000000 + g, g, 'toast' FROM generate_series(1, 5000) g;
DELETE FROM dwa.events;
ANALYZE dwa.events;
SELECT is((SELECT array_agg(reltuples ORDER BY relname) FROM pg_class
            WHERE oid IN ('dwa.outbox'::regclass, 'dwa.events'::regclass)),
    ARRAY[0, 0]::real[], 'analyzed while empty: the statistics know of no row');

-- 20,000 webhooks due, of as many tasks (rows as _effect writes them; no
-- such tasks: their ids are above those the tasks below get),
-- the later ones due first: claims and outcomes work at the far end of
-- the primary key, where a walk of it from the start would meet them last.
INSERT INTO dwa.outbox (task_id, hook, event, effect_index, effect, next_attempt_at)
SELECT 100000 + g, 'onSuccess', 'webhook', 0, '{"$event":"webhook","url":"http://127.0.0.1:9/"}',
       now() - g * interval '1 millisecond'
  FROM generate_series(1, 20000) g;
SELECT cmp_ok(pg_temp.believed_rows('dwa.outbox'), '<=', 1::numeric,
    'the planner believes dwa.outbox holds at most one row');

-- ---------------------------------------------------------------------
-- Claims and outcomes, as the dispatcher makes them.

CREATE TEMP TABLE got (id bigint, attempts integer);
CREATE FUNCTION pg_temp.claim(p_worker integer, p_n integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO got SELECT c.id, c.attempts FROM dwa._outbox_claim(p_worker, p_n, '1 minute') c
$$;
-- outcomes(fields): an outcome for each row claimed so far, with fields.
CREATE FUNCTION pg_temp.outcomes(p_worker integer, p_fields jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('id', id, 'worker', p_worker, 'attempt', attempts)
                     || p_fields)
      FROM got
$$;

SELECT cmp_ok(pg_temp.reads_of('SELECT pg_temp.claim(7, 50)', 'dwa.outbox'), '<', 3000::bigint,
    'a claim of 50 reads fewer than 3,000 rows, entries and blocks of the outbox (not 20,000)');
SELECT is((SELECT count(*) FROM dwa.outbox WHERE status = 'delivering' AND worker_id = 7),
    50::bigint, 'it claimed 50');
SELECT is((SELECT array_agg(id ORDER BY id) FROM got),
    (SELECT array_agg(id ORDER BY id)
       FROM (SELECT id FROM dwa.outbox ORDER BY next_attempt_at, id LIMIT 50) x),
    'the 50 due first');
SELECT cmp_ok(pg_temp.reads_of('SELECT pg_temp.claim(7, 50)', 'dwa.outbox'), '<', 3000::bigint,
    'a second claim of 50 in the session reads fewer than 3,000');
SELECT is((SELECT count(*) FROM got), 100::bigint, 'it claimed 50 more');

SELECT cmp_ok(pg_temp.reads_of(format('SELECT dwa._outbox_finish(%L)',
        pg_temp.outcomes(7, '{"ok":true}')), 'dwa.outbox'), '<', 5000::bigint,
    'recording 100 outcomes reads fewer than 5,000');
SELECT is((SELECT count(*) FROM dwa.outbox WHERE status = 'delivered'), 100::bigint,
    'the 100 are delivered');
SELECT is((SELECT count(*) FROM dwa.outbox WHERE status = 'pending'), 19900::bigint,
    'the rest still pending');

-- An outcome under a claim that is no longer the row's is still refused.
TRUNCATE got;
SELECT pg_temp.claim(8, 1);
UPDATE dwa.outbox SET attempts = attempts + 1 WHERE id = (SELECT id FROM got);
SELECT is(dwa._outbox_finish(pg_temp.outcomes(8, '{"ok":true}')), 0,
    'an outcome for an attempt that is not the row''s counts for nothing');
SELECT is((SELECT status FROM dwa.outbox WHERE id = (SELECT id FROM got)), 'delivering',
    'and leaves the row as it was');

-- ---------------------------------------------------------------------
-- A progress report coalesced into the pending delivery of its effect.

INSERT INTO dwa.task_types (name, executor) VALUES ('po.p', 'worker');
CREATE TEMP TABLE ptask AS SELECT dwa.submit($${"type":"po.p",
    "onProgress":[{"$event":"webhook","url":"http://127.0.0.1:9/p","body":{"p":"{{progress}}"}}]}$$::jsonb)
    AS id;
CREATE TEMP TABLE prun AS SELECT run_id FROM dwa.claim('po-w', ARRAY['po.p'], 1);
SELECT ok(dwa.progress((SELECT run_id FROM prun), 10), 'a progress report');
SELECT cmp_ok(pg_temp.reads_of('SELECT dwa.progress((SELECT run_id FROM prun), 20)', 'dwa.outbox'),
    '<', 60::bigint,
    'the next one, coalesced into the pending delivery, reads fewer than 60 of the outbox');
SELECT is((SELECT string_agg(status || ' ' || (effect #>> '{body,p}'), ', ' ORDER BY id)
             FROM dwa.outbox WHERE task_id = (SELECT id FROM ptask)),
    'pending 20', 'one pending delivery, with the last value');

-- ---------------------------------------------------------------------
-- Retention: 20,000 old UI events, and old deliveries: 19,900 pending (a
-- receiver that is down), then in order of id the 100 delivered above and
-- 100 dead.  Statistics of an empty event log first.

INSERT INTO dwa.events (task_id, event, created_at)
SELECT g, 'toast', now() - interval '1 day' FROM generate_series(1, 20000) g;
SELECT cmp_ok(pg_temp.believed_rows('dwa.events'), '<=', 1::numeric,
    'the planner believes dwa.events holds at most one row');
INSERT INTO dwa.outbox (task_id, hook, event, effect_index, effect, status, attempts, last_error)
SELECT g, 'onSuccess', 'webhook', 0, '{"$event":"webhook","url":"http://127.0.0.1:9/"}',
       'dead', 10, 'refused'
  FROM generate_series(30001, 30100) g;
UPDATE dwa.outbox SET created_at = now() - interval '1 day';
CREATE TEMP TABLE pr (events bigint, outbox bigint);
CREATE FUNCTION pg_temp.prune() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e0 bigint := pg_temp.reads('dwa.events');
    o0 bigint := pg_temp.reads('dwa.outbox');
BEGIN
    PERFORM dwa.prune('1 hour', 500);
    INSERT INTO pr VALUES (pg_temp.reads('dwa.events') - e0, pg_temp.reads('dwa.outbox') - o0);
END
$$;
SELECT pg_temp.prune();
SELECT cmp_ok((SELECT events FROM pr), '<', 5000::bigint,
    'pruning 500 UI events reads fewer than 5,000 of the event log');
SELECT cmp_ok((SELECT outbox FROM pr), '<', 3000::bigint,
    'pruning 200 finished deliveries reads fewer than 3,000 of the outbox, past 19,900 pending ones');
SELECT is((SELECT count(*) FROM dwa.events), 19500::bigint, 'the oldest 500 events are gone');
SELECT results_eq($$SELECT status, count(*) FROM dwa.outbox GROUP BY 1 ORDER BY 1$$,
    $$VALUES ('delivering'::text, 1::bigint), ('pending', 19900)$$,
    'and the delivered and dead deliveries, the pending and delivering ones left');

-- ---------------------------------------------------------------------
-- Deleting a task: its finished deliveries go with it, looked up by task,
-- while 10,000 others are finished too.

UPDATE dwa.outbox SET status = 'delivered', delivered_at = now()
 WHERE id = ANY (ARRAY(SELECT id FROM dwa.outbox WHERE status = 'pending'
                        ORDER BY id LIMIT 10000))
    OR task_id = (SELECT id FROM ptask);
SELECT cmp_ok(pg_temp.reads_of(format('DELETE FROM dwa.tasks WHERE id = %s',
        (SELECT id FROM ptask)), 'dwa.outbox'),
    '<', 60::bigint, 'deleting a task with a delivered delivery reads fewer than 60 of the outbox');
SELECT is((SELECT count(*) FROM dwa.outbox WHERE task_id = (SELECT id FROM ptask)), 0::bigint,
    'its delivery went with it');
SELECT is((SELECT count(*) FROM dwa.outbox WHERE status = 'delivered'), 10000::bigint,
    'the others stay');

-- True statistics again, for the consistency check that follows the test.
ALTER TABLE dwa.outbox RESET (autovacuum_enabled);
ALTER TABLE dwa.events RESET (autovacuum_enabled);
ANALYZE dwa.outbox;
ANALYZE dwa.events;

SELECT * FROM finish();
