-- foreach-chunks-race.sql: a chunk of a large forEach's elements being
-- made (dwa._expand) while its task is cancelled, or deleted, in another
-- session: the maker waits for the step's row, finds the step no longer
-- running, and takes back the rows it made.  Two makers at once: the
-- second makes nothing.
--
-- No enclosing transaction: the sessions (dblink) must see each other's
-- commits.  The database is thrown away.
CREATE EXTENSION IF NOT EXISTS dblink;
SET statement_timeout = '60s';
SET lock_timeout = '20s';
SELECT plan(12);

INSERT INTO dwa.task_types (name, executor) VALUES ('fr.w', 'worker');
\ir ../lib/named.sql

-- big: submit a forEach of one chunk and 100 more elements, named p_name.
CREATE FUNCTION pg_temp.big(p_name text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO ids
    SELECT p_name, dwa.submit(jsonb_build_object('type', 'fr', 'steps', jsonb_build_array(
        jsonb_build_object('id', 'e', 'task', 'fr.w',
            'forEach', (SELECT jsonb_agg(g) FROM generate_series(1, dwa._fe_chunk() + 100) g)))))
$$;
CREATE FUNCTION pg_temp.parent(p_name text) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM dwa.steps WHERE task_id = pg_temp.id(p_name) AND item_index IS NULL
$$;
-- rows: the task's element rows, and the ready rows of its steps.
CREATE FUNCTION pg_temp.rows(p_name text) RETURNS text LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM dwa.steps
             WHERE task_id = pg_temp.id(p_name) AND item_index IS NOT NULL) || ' '
        || (SELECT count(*) FROM dwa.ready r JOIN dwa.steps s ON s.id = r.step_id
             WHERE s.task_id = pg_temp.id(p_name))
$$;
-- maker_waits: within 5 s, the maker's dwa._expand waits for a lock.
CREATE FUNCTION pg_temp.maker_waits() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 200 LOOP
        PERFORM pg_stat_clear_snapshot();
        IF EXISTS (SELECT 1 FROM pg_stat_activity a
                    WHERE a.query LIKE 'SELECT dwa._expand(%' AND a.wait_event_type = 'Lock') THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.025);
    END LOOP;
    RETURN false;
END
$$;
SELECT is(dblink_connect('holder', pg_temp.connstr()), 'OK', 'a session to hold the step''s row');
SELECT is(dblink_connect('maker', pg_temp.connstr()), 'OK', 'a session to make elements');

-- ---------------------------------------------------------------------
-- Cancelled while the next chunk is made.

SELECT pg_temp.big('c');
SELECT is(pg_temp.rows('c'), (SELECT dwa._fe_chunk() || ' ' || dwa._fe_chunk()),
    'a forEach of a chunk and 100 elements: the chunk made, ready');
-- The holder locks the task and the step's row, as a cancel does.
SELECT dblink_exec('holder', 'BEGIN');
SELECT is((SELECT n FROM dblink('holder', format(
    'SELECT id FROM dwa.steps WHERE id = %s FOR UPDATE', pg_temp.parent('c'))) AS t(n bigint)),
    pg_temp.parent('c'), 'the holder locks the forEach step''s row');
SELECT is(dblink_send_query('maker', format('SELECT dwa._expand(%s)', pg_temp.parent('c'))), 1,
    'the maker starts on the next elements');
SELECT ok(pg_temp.maker_waits(), '... made its rows and waits for the step''s row');
SELECT is((SELECT ok FROM dblink('holder', format('SELECT dwa.cancel(%s)', pg_temp.id('c')))
             AS t(ok boolean)), true, 'the holder cancels the task');
SELECT dblink_exec('holder', 'COMMIT');
SELECT is((SELECT n FROM dblink_get_result('maker') AS t(n integer)), 0,
    'the maker finds the step cancelled: it made nothing');
SELECT count(*) FROM dblink_get_result('maker') AS t(n integer);
SELECT is(pg_temp.rows('c'), (SELECT dwa._fe_chunk() || ' 0'),
    '... no row of the next chunk is left, none ready');

-- ---------------------------------------------------------------------
-- Two makers at once: one makes the chunk, the other nothing.

SELECT pg_temp.big('two');
SELECT dblink_exec('maker', 'BEGIN');
SELECT is((SELECT n FROM dblink('maker', format('SELECT dwa._expand(%s)', pg_temp.parent('two')))
             AS t(n integer)), 100, 'a maker makes the last 100 elements (not committed yet)');
SELECT is(dwa._expand(pg_temp.parent('two')), 0, 'a second maker meanwhile makes nothing');
SELECT dblink_exec('maker', 'COMMIT');
SELECT is(pg_temp.rows('two'), (SELECT (dwa._fe_chunk() + 100) || ' ' || (dwa._fe_chunk() + 100)),
    'every element made once, ready');

SELECT dblink_disconnect('holder');
SELECT dblink_disconnect('maker');
SELECT * FROM finish();
