-- 60_admin.sql: cancel, retry (resume) and prune.

-- _task_locked: lock a task row for a change, or raise "not found".
CREATE OR REPLACE FUNCTION dwa._task_locked(p_task_id bigint)
RETURNS dwa.tasks
LANGUAGE plpgsql
AS $$
DECLARE
    t dwa.tasks;
BEGIN
    SELECT * INTO t FROM dwa.tasks WHERE id = p_task_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task % not found', p_task_id USING ERRCODE = 'P0002';
    END IF;
    RETURN t;
END
$$;
COMMENT ON FUNCTION dwa._task_locked(bigint) IS 'Lock a task row; raise P0002 when there is none';

-- cancel: stop a task; true if it was queued or running.
CREATE OR REPLACE FUNCTION dwa.cancel(p_task_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t dwa.tasks;
BEGIN
    t := dwa._task_locked(p_task_id);
    IF t.status NOT IN ('queued', 'running') THEN
        RETURN false;
    END IF;
    UPDATE dwa.tasks SET status = 'cancelled', finished_at = now()
     WHERE id = p_task_id;
    -- Ready rows first: a claim locks a step's ready row before the step.
    PERFORM dwa._unready(ARRAY(SELECT s.id FROM dwa.steps s
                                WHERE s.task_id = p_task_id AND s.status = 'ready'));
    WITH c AS (
        UPDATE dwa.steps SET status = 'cancelled', finished_at = now(), lease_until = NULL
         WHERE task_id = p_task_id AND status IN ('waiting', 'ready', 'running')
        RETURNING run_id
    )
    DELETE FROM dwa.runs WHERE run_id = ANY (ARRAY(SELECT c.run_id FROM c));
    PERFORM pg_notify('dwa_cancel', p_task_id::text);
    PERFORM dwa._event(p_task_id, NULL, 'cancelled');
    RETURN true;
END
$$;
COMMENT ON FUNCTION dwa.cancel(bigint) IS
    'Cancel a queued or running task: its steps stop, late completions are refused';

-- retry: resume a failed or cancelled task.  Succeeded steps keep their
-- outputs; failed, cancelled and skipped ones run again with fresh attempts.
CREATE OR REPLACE FUNCTION dwa.retry(p_task_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t dwa.tasks;
    r record;
BEGIN
    t := dwa._task_locked(p_task_id);
    IF t.status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'task % is %: only failed or cancelled tasks can be retried',
            p_task_id, t.status USING ERRCODE = '55000';
    END IF;
    UPDATE dwa.tasks SET status = CASE WHEN steps_done > 0 THEN 'running' ELSE 'queued' END,
           error = NULL, result = NULL, finished_at = NULL
     WHERE id = p_task_id;

    -- forEach elements, then the forEach steps that were expanded.
    UPDATE dwa.steps SET status = 'waiting', attempt = 0, error = NULL, run_id = NULL,
           lease_until = NULL, started_at = NULL, finished_at = NULL, progress = NULL
     WHERE task_id = p_task_id AND item_index IS NOT NULL
       AND status IN ('failed', 'cancelled', 'skipped');
    -- Those of a chunked step not made yet count as not finished.
    UPDATE dwa.steps p SET status = 'running', error = NULL, finished_at = NULL,
           fe_remaining = (SELECT count(*) FROM dwa.steps c
                            WHERE c.task_id = p.task_id AND c.step_index = p.step_index
                              AND c.item_index IS NOT NULL AND c.status <> 'succeeded')
                          + CASE WHEN p.fe_concurrency IS NULL
                                 THEN p.fe_total - coalesce(p.fe_next, p.fe_total) ELSE 0 END
     WHERE p.task_id = p_task_id AND p.item_index IS NULL AND p.fe_total IS NOT NULL
       AND p.status IN ('failed', 'cancelled', 'skipped');
    WITH c AS (
        UPDATE dwa.steps c SET status = 'ready', run_after = now()
          FROM (SELECT e.id, row_number() OVER (PARTITION BY e.step_index ORDER BY e.item_index) AS rn,
                       p.fe_concurrency
                  FROM dwa.steps e
                  JOIN dwa.steps p ON p.task_id = e.task_id AND p.step_index = e.step_index
                                  AND p.item_index IS NULL
                 WHERE e.task_id = p_task_id AND e.item_index IS NOT NULL
                   AND e.status = 'waiting') w
         WHERE c.id = w.id AND w.rn <= coalesce(w.fe_concurrency, 2147483647)
        RETURNING c.id, c.priority, c.run_after, c.task, c.queue, c.backend
    )
    INSERT INTO dwa.ready (step_id, priority, run_after, task, queue, backend)
    SELECT c.id, c.priority, c.run_after, c.task, c.queue, c.backend FROM c;
    -- The cursors: the first element that still waits (those before it
    -- were started, now or before the task stopped).  A chunked step's
    -- counts the rows made, all started; its next chunk comes as after
    -- the ends of its elements (now, with none made left to run).
    UPDATE dwa.steps p
       SET fe_next = coalesce((SELECT min(e.item_index) FROM dwa.steps e
                                WHERE e.task_id = p.task_id AND e.step_index = p.step_index
                                  AND e.item_index IS NOT NULL AND e.status = 'waiting'),
                              p.fe_total)
     WHERE p.task_id = p_task_id AND p.item_index IS NULL AND p.fe_total IS NOT NULL
       AND p.fe_concurrency IS NOT NULL AND p.status = 'running';
    PERFORM dwa._expand_wanted(p.id, p.fe_total, p.fe_remaining, p.fe_next) FROM dwa.steps p
     WHERE p.task_id = p_task_id AND p.item_index IS NULL AND p.fe_total IS NOT NULL
       AND p.fe_concurrency IS NULL AND p.status = 'running';

    -- Every other step that did not succeed waits for its dependencies again.
    UPDATE dwa.steps s SET status = 'waiting', attempt = 0, error = NULL, run_id = NULL,
           lease_until = NULL, started_at = NULL, finished_at = NULL, progress = NULL,
           input = NULL,
           remaining_deps = (SELECT count(*) FROM dwa.steps d
                              WHERE d.task_id = s.task_id AND d.item_index IS NULL
                                AND d.step_index = ANY (s.depends_on)
                                AND d.status <> 'succeeded')
     WHERE s.task_id = p_task_id AND s.item_index IS NULL AND s.fe_total IS NULL
       AND s.status IN ('failed', 'cancelled', 'skipped');

    FOR r IN SELECT id, fe_total FROM dwa.steps
              WHERE task_id = p_task_id AND item_index IS NULL
                AND ((status = 'waiting' AND remaining_deps = 0)
                     OR (status = 'running' AND fe_total IS NOT NULL AND fe_remaining = 0))
              ORDER BY step_index
    LOOP
        IF r.fe_total IS NULL THEN
            PERFORM dwa._make_ready(r.id);
        ELSE
            UPDATE dwa.steps SET status = 'succeeded', finished_at = now(),
                   output = (SELECT jsonb_agg(c.output ORDER BY c.item_index)
                               FROM dwa.steps c, dwa.steps p
                              WHERE p.id = r.id AND c.task_id = p.task_id
                                AND c.step_index = p.step_index
                                AND c.item_index IS NOT NULL)
             WHERE id = r.id;
            PERFORM dwa._step_succeeded(r.id);
        END IF;
    END LOOP;
    PERFORM pg_notify('dwa_wake', '');
    PERFORM dwa._event(p_task_id, NULL, 'retried');
    RETURN true;
END
$$;
COMMENT ON FUNCTION dwa.retry(bigint) IS
    'Resume a failed or cancelled task: re-run what did not succeed, keep succeeded outputs';

-- _prune_lock: lock those of these tasks that finished before the cutoff
-- and that no other transaction holds.
CREATE OR REPLACE FUNCTION dwa._prune_lock(p_ids bigint[], p_cutoff timestamptz)
RETURNS bigint[]
LANGUAGE sql
SET enable_seqscan = off
AS $$
    SELECT ARRAY(SELECT t.id FROM dwa.tasks t
                  WHERE t.id = ANY (p_ids) AND t.finished_at < p_cutoff
                    AND t.status IN ('completed', 'failed', 'cancelled')
                  ORDER BY t.id
                    FOR UPDATE SKIP LOCKED)
$$;
COMMENT ON FUNCTION dwa._prune_lock(bigint[], timestamptz) IS
    'Lock the tasks given that finished before the cutoff and that no other transaction holds';

-- prune: delete what ended longer ago than p_age, oldest first (tasks in
-- order of creation), at most p_limit rows of each table per call (NULL:
-- all).  Tasks finished that long ago go with their steps, UI events and
-- finished deliveries (dwa._tasks_deleted); then the UI events and the
-- delivered or dead deliveries created that long ago, whatever their
-- task.  Pending and delivering rows are never touched.  Rows another
-- transaction holds are skipped, not waited for: dwad --retention calls
-- this every few seconds under load.  Returns the number of tasks deleted.
CREATE OR REPLACE FUNCTION dwa.prune(p_age interval, p_limit integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
AS $$
DECLARE
    cutoff timestamptz;
    r record;
    cand bigint[] := '{}';  -- old finished tasks, not yet locked
    ids bigint[] := '{}';   -- those locked, to delete
    old tid[];
    n bigint;
BEGIN
    IF p_age IS NULL OR p_age < interval '0' THEN
        PERFORM dwa._reject('older than: must be a duration >= 0', 'older_than');
    END IF;
    IF p_limit < 1 THEN
        PERFORM dwa._reject('limit: must be at least 1', 'limit');
    END IF;
    -- now() - p_age overflows some 6,000 years back; nothing ended then.
    cutoff := CASE WHEN p_age > interval '1000 years' THEN '-infinity'
                   ELSE now() - p_age END;

    -- Tasks are walked in order of id: finished_at has no index, so that
    -- a task's end is a HOT update.  A task inserted after the cutoff did
    -- not finish before it, nor did any later one (ids are issued in order
    -- of insertion, and a task is created at its transaction's start): the
    -- walk ends at the first task created since the cutoff, so it reads the
    -- old tasks, deleted or unfinished, and one more.  A created_at in the
    -- future can only have been set by hand: such a task is passed.
    -- Candidates are locked a limit's worth at a time, skipping those
    -- another transaction holds; the lock checks again that what it takes
    -- is old and finished (finished_at is set exactly when a task finishes,
    -- and retry clears it).
    FOR r IN SELECT t.id, t.created_at, t.finished_at, t.status
               FROM dwa.tasks t ORDER BY t.id
    LOOP
        EXIT WHEN r.created_at >= cutoff AND r.created_at <= now();
        CONTINUE WHEN r.finished_at IS NULL OR r.finished_at >= cutoff
                   OR r.status NOT IN ('completed', 'failed', 'cancelled');
        cand := cand || r.id;
        IF cardinality(cand) >= p_limit - cardinality(ids) THEN
            ids := ids || dwa._prune_lock(cand, cutoff);
            cand := '{}';
            EXIT WHEN cardinality(ids) >= p_limit;
        END IF;
    END LOOP;
    ids := ids || dwa._prune_lock(cand, cutoff);
    DELETE FROM dwa.tasks WHERE id = ANY (ids);
    GET DIAGNOSTICS n = ROW_COUNT;

    -- Events and deliveries have no index on created_at, to keep their
    -- inserts cheap.  Ids grow with time, so look at the first p_limit
    -- rows in order of id and take the old ones: each call reads no more
    -- rows than it may delete, and only the rows it deletes are locked.
    -- They are deleted by their addresses (a TID scan), not by id: from
    -- statistics of an empty table, a lookup of many ids may be planned on
    -- events_task_idx (task_id, id), walking all of it for each id.  A row
    -- moved since it was read is not seen at its old address; the lock
    -- checks again that what it takes is old (created_at has no index, so
    -- the recheck cannot change the plan).
    -- Finished deliveries are found through outbox_finished_idx, in order
    -- of id, past any number of pending ones; the lock's recheck does not
    -- repeat its predicate, so that it cannot be planned on that index.
    old := ARRAY(SELECT h.tid
                   FROM (SELECT e.ctid AS tid, e.created_at FROM dwa.events e
                          ORDER BY e.id LIMIT p_limit) h
                  WHERE h.created_at < cutoff);
    DELETE FROM dwa.events
     WHERE ctid = ANY (ARRAY(
            SELECT e.ctid FROM dwa.events e
             WHERE e.ctid = ANY (old) AND e.created_at < cutoff
               FOR UPDATE SKIP LOCKED));

    old := ARRAY(SELECT h.tid
                   FROM (SELECT o.ctid AS tid, o.created_at FROM dwa.outbox o
                          WHERE o.status IN ('delivered', 'dead')
                          ORDER BY o.id LIMIT p_limit) h
                  WHERE h.created_at < cutoff);
    DELETE FROM dwa.outbox
     WHERE ctid = ANY (ARRAY(
            SELECT o.ctid FROM dwa.outbox o
             WHERE o.ctid = ANY (old) AND o.created_at < cutoff
               AND o.status NOT IN ('pending', 'delivering')
               FOR UPDATE SKIP LOCKED));
    RETURN n;
END
$$;
COMMENT ON FUNCTION dwa.prune(interval, integer) IS
    'Delete finished tasks (with their steps), UI events and finished deliveries older than the given age, oldest first, at most the limit of each; returns the tasks deleted';
