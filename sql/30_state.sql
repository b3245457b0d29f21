-- 30_state.sql: the step and task state machine.
--
-- Steps go waiting -> ready -> running -> succeeded | failed | skipped |
-- cancelled; tasks go queued -> running -> completed | failed | cancelled.
-- Every function here runs inside the transaction that records the
-- change, so dependents are released, tasks finished and events sent
-- exactly once.  Lock order, to stay free of deadlocks: the task row
-- first, then the ready rows of its steps (dwa.ready), then its step rows,
-- then their runs (dwa.runs).  Callers lock the task row.
--
-- dwa.steps is indexed only by columns that never change (but for the
-- counters of forEach steps making elements in chunks, in the predicate
-- of steps_chunked_idx), so that the updates here are HOT: a step that
-- becomes ready gets a row in dwa.ready in the same statement, one that
-- stops being ready loses it first; a run has a row in dwa.runs from its
-- claim to its end, or, claimed by dwad, a place in its claim batch's row
-- of dwa.claims (dwa.running shows both).

-- running: the runs in flight, wherever they are recorded: dwa.runs, and
-- the pairs of dwad's batches (dwa.claims) whose step still runs under
-- them (batch: the batch's key; lease_until: the step's).
CREATE OR REPLACE VIEW dwa.running AS
SELECT u.run_id, u.step_id, u.task_id, u.worker_id, u.lease_until, u.limit_keys,
       NULL::bigint AS batch
  FROM dwa.runs u
UNION ALL
SELECT s.run_id, s.id, s.task_id, c.worker_id, s.lease_until, s.limit_keys, c.batch
  FROM dwa.claims c
 CROSS JOIN LATERAL unnest(c.step_ids, c.run_ids) x(step_id, run_id)
  JOIN dwa.steps s ON s.id = x.step_id AND s.run_id = x.run_id AND s.status = 'running';
COMMENT ON VIEW dwa.running IS
    'Runs in flight: dwa.runs and the running steps of dwad''s claim batches (dwa.claims)';

-- _event: tell UIs on channel dwa_events that something changed.
CREATE OR REPLACE FUNCTION dwa._event(p_task_id bigint, p_step_id text,
    p_event text, p_data jsonb DEFAULT NULL)
RETURNS void
LANGUAGE sql
AS $$
    SELECT pg_notify('dwa_events', json_strip_nulls(json_build_object(
        'task_id', p_task_id, 'step_id', p_step_id, 'event', p_event,
        'data', p_data))::text)
$$;
COMMENT ON FUNCTION dwa._event(bigint, text, text, jsonb) IS
    'NOTIFY dwa_events with a small JSON event for UIs';

-- _unready: take these steps' rows off the ready queue (of those that are
-- ready).  Every statement that finds ready rows for steps goes through
-- here or by the row addresses a claim locked: a join of dwa.ready with
-- anything else may be planned as a walk of the whole queue, because the
-- queue is often empty when autovacuum analyzes it and a plan made from
-- those statistics believes it holds one row; by the time the plan runs it
-- may hold a million (a claim that did this took seconds while the queue
-- grew, until the next analyze).  Here each step's row is looked up by its
-- claim-order key, which its step holds: the subquery cannot be flattened
-- into a join (OFFSET 0), so one index lookup a step is the only plan.
CREATE OR REPLACE FUNCTION dwa._unready(p_steps bigint[])
RETURNS void
LANGUAGE sql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
    DELETE FROM dwa.ready r
     WHERE r.ctid = ANY (ARRAY(
            SELECT q.ctid
              FROM dwa.steps s
             CROSS JOIN LATERAL (SELECT q.ctid FROM dwa.ready q
                                  WHERE q.priority = s.priority AND q.run_after = s.run_after
                                    AND q.step_id = s.id
                                 OFFSET 0) q
             WHERE s.id = ANY (p_steps) AND s.status = 'ready'))
$$;
COMMENT ON FUNCTION dwa._unready(bigint[]) IS
    'Delete the ready-queue rows of the given steps, each by an index lookup';

-- _retry_delay: the backoff before attempt p_attempt + 1, without jitter.
CREATE OR REPLACE FUNCTION dwa._retry_delay(p_retry jsonb, p_attempt integer)
RETURNS interval
LANGUAGE sql IMMUTABLE
AS $$
    SELECT make_interval(secs => least(
        coalesce((p_retry #>> '{backoff,maxMs}')::double precision, 60000),
        coalesce((p_retry #>> '{backoff,initialMs}')::double precision, 1000)
        * power(coalesce((p_retry #>> '{backoff,factor}')::double precision, 2),
                greatest(p_attempt - 1, 0))) / 1000.0)
$$;
COMMENT ON FUNCTION dwa._retry_delay(jsonb, integer) IS
    'Exponential backoff: min(maxMs, initialMs * factor^(attempt-1)); defaults 1000, 2, 60000';

-- _ctx: the template context of a step: payload, task and the outputs of
-- the steps its templates read (p_refs, step indexes).
CREATE OR REPLACE FUNCTION dwa._ctx(p_task_id bigint, p_type text, p_payload jsonb,
    p_refs jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'payload', p_payload,
        'task', jsonb_build_object('id', p_task_id, 'type', p_type),
        'steps', coalesce((
            SELECT jsonb_object_agg(s.step_id, s.output)
                   || jsonb_object_agg(s.step_index::text, s.output)
              FROM dwa.steps s
             WHERE s.task_id = p_task_id AND s.item_index IS NULL
               AND s.step_index IN (SELECT jsonb_array_elements_text(
                       coalesce(p_refs, '[]'))::integer)), '{}'))
$$;
COMMENT ON FUNCTION dwa._ctx(bigint, text, jsonb, jsonb) IS
    'Template context of a step: payload, task, and the outputs its templates read';

-- _complete_task: all steps succeeded: record the result, fire onSuccess.
CREATE OR REPLACE FUNCTION dwa._complete_task(p_task_id bigint)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    fx boolean;
    v_total integer;
    v_ids text[];           -- the sink steps
    v_outs jsonb[];         -- their outputs, pair by pair
BEGIN
    -- The sinks, by index for a task of one step: "task_id = ... AND
    -- item_index IS NULL" alone walks all of the task's entries in
    -- steps_task_idx, a forEach's elements too.  One sink's output is the
    -- result as it is: an object of them all, built whether or not it was
    -- needed, took 90 ms for a forEach of 100,000 elements.
    SELECT t.steps_total INTO v_total FROM dwa.tasks t WHERE t.id = p_task_id;
    IF v_total = 1 THEN
        SELECT array_agg(s.step_id), array_agg(s.output) INTO v_ids, v_outs
          FROM dwa.steps s
         WHERE s.task_id = p_task_id AND s.step_index = 0 AND s.item_index IS NULL;
    ELSE
        SELECT array_agg(s.step_id), array_agg(s.output) INTO v_ids, v_outs
          FROM dwa.steps s
         WHERE s.task_id = p_task_id AND s.item_index IS NULL
           AND cardinality(s.dependents) = 0;
    END IF;
    UPDATE dwa.tasks t
       SET status = 'completed', progress = 100, finished_at = now(),
           result = CASE WHEN cardinality(v_outs) = 1 THEN v_outs[1]
                         ELSE (SELECT jsonb_object_agg(x.id, x.output)
                                 FROM unnest(v_ids, v_outs) AS x(id, output)) END
     WHERE t.id = p_task_id AND t.status IN ('queued', 'running')
    RETURNING t.on_success IS NOT NULL INTO fx;
    IF FOUND THEN
        PERFORM dwa._event(p_task_id, NULL, 'completed');
        IF fx THEN
            PERFORM dwa._fire(p_task_id, 'onSuccess');
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._complete_task(bigint) IS
    'Mark a task completed and fire onSuccess; its result is its sink step''s output (or sinks keyed by id)';

-- _fail_task: a step failed for good: skip what has not started, cancel
-- what runs, and record the error.
CREATE OR REPLACE FUNCTION dwa._fail_task(p_task_id bigint, p_error text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
    fx boolean;
BEGIN
    -- When the first step started: forEach elements start after their
    -- step, so its steps are enough (reading 100,000 elements took 74 ms).
    UPDATE dwa.tasks t SET status = 'failed', error = p_error, finished_at = now(),
           started_at = coalesce(t.started_at,
               (SELECT min(s.started_at) FROM dwa.steps s
                 WHERE s.task_id = t.id AND s.item_index IS NULL))
     WHERE t.id = p_task_id AND t.status IN ('queued', 'running')
    RETURNING on_error IS NOT NULL INTO fx;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Ready rows first: a claim locks a step's ready row before the step.
    PERFORM dwa._unready(ARRAY(SELECT s.id FROM dwa.steps s
                                WHERE s.task_id = p_task_id AND s.status = 'ready'));
    UPDATE dwa.steps SET status = 'skipped', finished_at = now()
     WHERE task_id = p_task_id AND status IN ('waiting', 'ready');
    WITH c AS (
        UPDATE dwa.steps SET status = 'cancelled', finished_at = now(), lease_until = NULL
         WHERE task_id = p_task_id AND status = 'running'
        RETURNING run_id
    ), d AS (
        DELETE FROM dwa.runs WHERE run_id = ANY (ARRAY(SELECT c.run_id FROM c))
    )
    SELECT count(*) INTO n FROM c;
    IF n > 0 THEN
        PERFORM pg_notify('dwa_cancel', p_task_id::text);
    END IF;
    PERFORM dwa._event(p_task_id, NULL, 'failed', to_jsonb(p_error));
    IF fx THEN
        PERFORM dwa._fire(p_task_id, 'onError');
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._fail_task(bigint, text) IS
    'Fail a task: skip waiting/ready steps, cancel running ones, record the error, fire onError';

-- _step_failed: a step failed permanently (or ran out of attempts).
CREATE OR REPLACE FUNCTION dwa._step_failed(p_id bigint, p_error text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    s dwa.steps;
BEGIN
    UPDATE dwa.steps SET status = 'failed', error = p_error, finished_at = now(),
           lease_until = NULL
     WHERE id = p_id RETURNING * INTO s;
    IF s.item_index IS NOT NULL THEN
        UPDATE dwa.steps SET status = 'failed', finished_at = now(),
               error = format('element %s: %s', s.item_index, p_error)
         WHERE task_id = s.task_id AND step_index = s.step_index
           AND item_index IS NULL;
        PERFORM dwa._fail_task(s.task_id, format('step "%s" element %s: %s',
            s.step_id, s.item_index, p_error));
    ELSE
        PERFORM dwa._event(s.task_id, s.step_id, 'step_failed', to_jsonb(p_error));
        PERFORM dwa._fail_task(s.task_id, format('step "%s": %s', s.step_id, p_error));
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._step_failed(bigint, text) IS
    'Fail a step for good, and with it its task';

-- _make_ready: every dependency of a waiting step succeeded: build its
-- input (or expand its forEach) and make it claimable.  A template with no
-- value fails the step permanently.  A step that no longer waits (its task
-- failed meanwhile, skipping it) is left alone.
CREATE OR REPLACE FUNCTION dwa._make_ready(p_id bigint)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    s dwa.steps;
    t record;
    ctx jsonb;
    inp jsonb;
    arr jsonb;
    n integer;
    chunked boolean;
    msg text;
BEGIN
    SELECT * INTO s FROM dwa.steps WHERE id = p_id;
    IF s.status <> 'waiting' THEN
        RETURN;
    END IF;
    -- Only the columns needed: the task's steps definition may be large.
    SELECT id, type, payload, run_at INTO t FROM dwa.tasks WHERE id = s.task_id;

    IF jsonb_typeof(s.def -> 'forEach') IN ('string', 'array')
        OR (s.def ->> 'hasInput')::boolean THEN
        -- Templates: a missing value fails the step, not the transaction.
        BEGIN
            ctx := dwa._ctx(t.id, t.type, t.payload, s.def -> 'refs');
            IF jsonb_typeof(s.def -> 'forEach') IN ('string', 'array') THEN
                arr := dwa._render(s.def -> 'forEach', ctx);
                IF jsonb_typeof(arr) <> 'array' THEN
                    RAISE EXCEPTION 'forEach gave % instead of an array',
                        jsonb_typeof(arr) USING ERRCODE = '22023';
                END IF;
                n := jsonb_array_length(arr);
                -- The elements' inputs, rendered.  Chunked (see
                -- dwa._fe_chunk): they all go into the step's input, and
                -- the first chunk's rows are made.
                chunked := s.fe_concurrency IS NULL AND n > dwa._fe_chunk();
                IF (s.def ->> 'hasInput')::boolean THEN
                    SELECT jsonb_agg(dwa._render(s.def -> 'input', ctx, e.v,
                                                 (e.i - 1)::integer) ORDER BY e.i)
                      INTO inp
                      FROM jsonb_array_elements(arr) WITH ORDINALITY AS e(v, i);
                ELSE
                    inp := arr;
                END IF;
                IF n > 0 THEN
                    WITH e AS (
                        INSERT INTO dwa.steps (task_id, step_index, item_index, step_id,
                            task, status, queue, priority, backend, run_after,
                            max_attempts, timeout, input)
                        SELECT s.task_id, s.step_index, e.i - 1, s.step_id, s.task,
                               CASE WHEN e.i <= coalesce(s.fe_concurrency, n)
                                    THEN 'ready' ELSE 'waiting' END,
                               s.queue, s.priority, s.backend, greatest(now(), t.run_at),
                               s.max_attempts,
                               s.timeout,
                               e.v
                          FROM jsonb_array_elements(inp) WITH ORDINALITY AS e(v, i)
                         WHERE NOT chunked OR e.i <= dwa._fe_chunk()
                        RETURNING id, status, priority, run_after, task, queue, backend
                    )
                    INSERT INTO dwa.ready (step_id, priority, run_after, task, queue, backend)
                    SELECT e.id, e.priority, e.run_after, e.task, e.queue, e.backend
                      FROM e WHERE e.status = 'ready';
                END IF;
            ELSE
                inp := dwa._render(s.def -> 'input', ctx);
            END IF;
        EXCEPTION WHEN invalid_parameter_value THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
            PERFORM dwa._step_failed(p_id, msg);
            RETURN;
        END;
        IF arr IS NOT NULL THEN
            IF n = 0 THEN
                UPDATE dwa.steps SET status = 'succeeded', output = '[]', fe_total = 0,
                       fe_remaining = 0, started_at = now(),
                       finished_at = now()
                 WHERE id = p_id;
                PERFORM dwa._step_succeeded(p_id);
                RETURN;
            END IF;
            UPDATE dwa.steps SET status = 'running', fe_total = n, fe_remaining = n,
                   fe_next = CASE WHEN chunked THEN dwa._fe_chunk()
                                  ELSE least(coalesce(s.fe_concurrency, n), n) END,
                   input = CASE WHEN chunked THEN inp END, started_at = now()
             WHERE id = p_id;
            PERFORM pg_notify('dwa_wake', '');
            RETURN;
        END IF;
    ELSIF cardinality(s.depends_on) = 0 THEN
        inp := t.payload;
    ELSIF cardinality(s.depends_on) = 1 THEN
        SELECT output INTO inp FROM dwa.steps
         WHERE task_id = s.task_id AND step_index = s.depends_on[1]
           AND item_index IS NULL;
    ELSE
        SELECT jsonb_object_agg(step_id, output) INTO inp FROM dwa.steps
         WHERE task_id = s.task_id AND step_index = ANY (s.depends_on)
           AND item_index IS NULL;
    END IF;
    WITH r AS (
        UPDATE dwa.steps SET status = 'ready', input = inp,
               run_after = greatest(now(), t.run_at)
         WHERE id = p_id
        RETURNING id, priority, run_after, task, queue, backend
    )
    INSERT INTO dwa.ready (step_id, priority, run_after, task, queue, backend)
    SELECT r.id, r.priority, r.run_after, r.task, r.queue, r.backend FROM r;
    -- Wake other daemons; identical notifications fold per transaction.
    PERFORM pg_notify('dwa_wake', '');
END
$$;
COMMENT ON FUNCTION dwa._make_ready(bigint) IS
    'Render a step''s input (or expand its forEach) and make it ready; template errors fail it';

-- _start_elements: make ready the waiting elements p_from .. p_from + p_n - 1
-- of a forEach step (its cursor fe_next has moved past them), through
-- steps_task_idx, and wake the daemons.
CREATE OR REPLACE FUNCTION dwa._start_elements(p_task_id bigint, p_step_index integer,
    p_from integer, p_n integer)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
BEGIN
    WITH r AS (
        UPDATE dwa.steps w SET status = 'ready', run_after = now()
         WHERE w.task_id = p_task_id AND w.step_index = p_step_index
           AND w.item_index >= p_from AND w.item_index < p_from + p_n
           AND w.status = 'waiting'
        RETURNING w.id, w.priority, w.run_after, w.task, w.queue, w.backend
    ), i AS (
        INSERT INTO dwa.ready (step_id, priority, run_after, task, queue, backend)
        SELECT r.id, r.priority, r.run_after, r.task, r.queue, r.backend FROM r
    )
    SELECT count(*) INTO n FROM r;
    IF n > 0 THEN
        PERFORM pg_notify('dwa_wake', '');
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._start_elements(bigint, integer, integer, integer) IS
    'Make ready the next p_n waiting elements of a forEach step, from its cursor';

-- A forEach step without forEachConcurrency and with more elements than
-- this starts them in chunks of this many: its expansion makes the rows
-- of the first chunk and keeps the inputs of all the elements in the
-- step's input; each chunk after it is made (dwa._expand) as the one
-- before runs out.  Every row made starts at once, so fe_next counts the
-- rows made.  A submission of 100,000 elements made them all in one
-- statement (0.8-1 s) while the daemons waited for it to commit; a chunk
-- takes 90-130 ms, made on a daemon's housekeeping connection while its
-- other connections run the chunk before.
CREATE OR REPLACE FUNCTION dwa._fe_chunk()
RETURNS integer
LANGUAGE sql IMMUTABLE
AS $$ SELECT 8192 $$;
COMMENT ON FUNCTION dwa._fe_chunk() IS
    'How many elements of a large forEach step without forEachConcurrency are made at a time';

-- _expand_wanted: after elements of a chunked forEach step finished (the
-- caller holds its row, p_id, whose counters it has just updated): with
-- a chunk or less made and not finished, ask the daemons to make the next
-- one (NOTIFY dwa_expand, the step's id); with none, make it now, unless
-- someone is making it (who then starts its elements).
CREATE OR REPLACE FUNCTION dwa._expand_wanted(p_id bigint, p_total integer,
    p_remaining integer, p_next integer)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    unfinished integer := p_next - (p_total - p_remaining);  -- made, not finished
BEGIN
    IF p_next >= p_total OR p_remaining <= 0 THEN
        RETURN;
    END IF;
    IF unfinished <= 0 THEN
        PERFORM dwa._expand(p_id);
    ELSIF unfinished <= dwa._fe_chunk() THEN
        PERFORM pg_notify('dwa_expand', p_id::text);
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._expand_wanted(bigint, integer, integer, integer) IS
    'Ask for the next chunk of a chunked forEach step when little is left to run; make it when nothing is';

-- _expand: make the next chunk of elements of a chunked forEach step (see
-- dwa._fe_chunk), ready at once; returns how many.  One maker at a time,
-- by a transaction-scoped advisory lock on the step: a second one, or one
-- that finds the step no longer running or its elements all made, makes
-- nothing.  The step's row is updated last, so that the lock on it, which
-- the ends of its elements take too, is held only to the commit: a maker
-- waiting for it holds nothing they wait for (they only try the advisory
-- lock).
CREATE OR REPLACE FUNCTION dwa._expand(p_id bigint)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    p dwa.steps;
    v_in jsonb;
    v_to integer;
    n integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(dwa._lock_class() + 1, hashint8(p_id)) THEN
        RETURN 0;
    END IF;
    -- Read after the lock: a maker before this one has committed.
    SELECT * INTO p FROM dwa.steps WHERE id = p_id;
    IF NOT FOUND OR p.status IS DISTINCT FROM 'running' OR p.item_index IS NOT NULL
        OR p.fe_concurrency IS NOT NULL OR p.fe_next IS NULL OR p.fe_next >= p.fe_total
        OR jsonb_typeof(p.input) IS DISTINCT FROM 'array' THEN
        RETURN 0;
    END IF;
    v_to := least(p.fe_next + dwa._fe_chunk(), p.fe_total);
    -- The inputs decompressed once: stored, they are compressed, and each
    -- element taken from them would decompress all of them again.
    v_in := p.input || '[]'::jsonb;
    BEGIN
        WITH e AS (
            INSERT INTO dwa.steps (task_id, step_index, item_index, step_id, task, status,
                queue, priority, backend, run_after, max_attempts, timeout, input)
            SELECT p.task_id, p.step_index, g, p.step_id, p.task, 'ready', p.queue,
                   p.priority, p.backend, now(), p.max_attempts, p.timeout, v_in -> g
              FROM generate_series(p.fe_next, v_to - 1) g
            RETURNING id, priority, run_after, task, queue, backend
        )
        INSERT INTO dwa.ready (step_id, priority, run_after, task, queue, backend)
        SELECT e.id, e.priority, e.run_after, e.task, e.queue, e.backend FROM e;
        GET DIAGNOSTICS n = ROW_COUNT;
        -- Only if the step still runs: a cancel, a failure of one of its
        -- elements or the deletion of its task, committed meanwhile, takes
        -- the rows made back.
        UPDATE dwa.steps SET fe_next = v_to
         WHERE id = p_id AND fe_next = p.fe_next AND status = 'running';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'forEach step % stopped while its elements were made', p_id
                USING ERRCODE = '55000';
        END IF;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        RETURN 0;
    END;
    PERFORM pg_notify('dwa_wake', '');
    RETURN n;
END
$$;
COMMENT ON FUNCTION dwa._expand(bigint) IS
    'Make the next chunk of a chunked forEach step''s elements, ready at once; returns how many';

-- _step_succeeded: a step's output is recorded: release what waited on it.
CREATE OR REPLACE FUNCTION dwa._step_succeeded(p_id bigint)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    s dwa.steps;
    p dwa.steps;
    t record;
    d record;
BEGIN
    SELECT * INTO s FROM dwa.steps WHERE id = p_id;
    IF s.item_index IS NOT NULL THEN
        -- A forEach element: count it, start the next one, and finish the
        -- forEach step with the outputs in element order once all are in.
        UPDATE dwa.steps SET fe_remaining = fe_remaining - 1
         WHERE task_id = s.task_id AND step_index = s.step_index
           AND item_index IS NULL
        RETURNING * INTO p;
        IF p.status <> 'running' THEN
            RETURN;
        END IF;
        IF p.fe_remaining > 0 THEN
            -- Start the next waiting element, if any: the one at the cursor;
            -- or, chunked, see that the next chunk comes.
            IF p.fe_concurrency IS NULL THEN
                PERFORM dwa._expand_wanted(p.id, p.fe_total, p.fe_remaining, p.fe_next);
            ELSIF p.fe_next < p.fe_total THEN
                UPDATE dwa.steps SET fe_next = fe_next + 1 WHERE id = p.id;
                PERFORM dwa._start_elements(s.task_id, s.step_index, p.fe_next, 1);
            END IF;
            RETURN;
        END IF;
        UPDATE dwa.steps SET status = 'succeeded', finished_at = now(), progress = 100,
               output = (SELECT jsonb_agg(c.output ORDER BY c.item_index)
                           FROM dwa.steps c
                          WHERE c.task_id = s.task_id AND c.step_index = s.step_index
                            AND c.item_index IS NOT NULL)
         WHERE id = p.id;
        PERFORM dwa._step_succeeded(p.id);
        RETURN;
    END IF;

    -- o is the row as it was (the caller holds its lock): onProgress fires
    -- when a step that is not the last one raises the task's progress.
    UPDATE dwa.tasks x
       SET steps_done = x.steps_done + 1,
           progress = greatest(x.progress, (x.steps_done + 1) * 100 / x.steps_total),
           status = 'running', started_at = coalesce(x.started_at, s.started_at, now())
      FROM dwa.tasks o
     WHERE x.id = s.task_id AND o.id = x.id AND x.status IN ('queued', 'running')
    RETURNING x.steps_done, x.steps_total,
              x.on_progress IS NOT NULL AND x.progress > o.progress AS raised INTO t;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF t.steps_total > 1 THEN
        PERFORM dwa._event(s.task_id, s.step_id, 'step_succeeded');
    END IF;
    IF t.raised AND t.steps_done < t.steps_total THEN
        PERFORM dwa._fire(s.task_id, 'onProgress');
    END IF;
    FOR d IN UPDATE dwa.steps SET remaining_deps = remaining_deps - 1
              WHERE task_id = s.task_id AND item_index IS NULL
                AND step_index = ANY (s.dependents) AND status = 'waiting'
          RETURNING id, remaining_deps
    LOOP
        IF d.remaining_deps = 0 THEN
            PERFORM dwa._make_ready(d.id);
        END IF;
    END LOOP;
    IF t.steps_done >= t.steps_total THEN
        PERFORM dwa._complete_task(s.task_id);
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._step_succeeded(bigint) IS
    'After a step succeeded: advance its forEach or release its dependents; fire onProgress; finish the task';

-- _requeue: a run of a step ended without success but the step is to run
-- again at p_at, its attempt count moved by p_attempts: ready once more.
CREATE OR REPLACE FUNCTION dwa._requeue(p_id bigint, p_error text, p_at timestamptz,
    p_attempts integer)
RETURNS void
LANGUAGE sql
AS $$
    WITH r AS (
        UPDATE dwa.steps SET status = 'ready', error = p_error, lease_until = NULL,
               run_after = p_at, attempt = attempt + p_attempts
         WHERE id = p_id
        RETURNING id, priority, run_after, task, queue, backend
    )
    INSERT INTO dwa.ready (step_id, priority, run_after, task, queue, backend)
    SELECT r.id, r.priority, r.run_after, r.task, r.queue, r.backend FROM r
$$;
COMMENT ON FUNCTION dwa._requeue(bigint, text, timestamptz, integer) IS
    'Make a step whose run ended ready again at p_at (attempt moved by p_attempts)';

-- _finish_run: record the end of one run.  p_outcome is ok, transient,
-- permanent or lost (the lease ran out or the worker died).  Returns false,
-- changing nothing, when the run no longer holds its step: lease lost,
-- reclaimed, or the task cancelled.
CREATE OR REPLACE FUNCTION dwa._finish_run(p_id bigint, p_run_id bigint,
    p_outcome text, p_output jsonb, p_error text, p_retry_after interval)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_task bigint;
    s dwa.steps;
    policy jsonb;
    delay interval;
BEGIN
    -- A run whose lease has ended lost its step, even before _reap
    -- requeues it: only the reaper's 'lost' may still finish it.
    SELECT task_id INTO v_task FROM dwa.steps
     WHERE id = p_id AND run_id = p_run_id AND status = 'running'
       AND (p_outcome = 'lost' OR lease_until >= now());
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM dwa.tasks WHERE id = v_task FOR UPDATE;
    SELECT * INTO s FROM dwa.steps
     WHERE id = p_id AND run_id = p_run_id AND status = 'running'
       AND (p_outcome = 'lost' OR lease_until >= now()) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- Whatever the outcome, the run is over.
    DELETE FROM dwa.runs WHERE run_id = p_run_id;

    CASE p_outcome
    WHEN 'ok' THEN
        UPDATE dwa.steps SET status = 'succeeded', output = p_output, error = NULL,
               finished_at = now(), lease_until = NULL, progress = 100
         WHERE id = p_id;
        PERFORM dwa._step_succeeded(p_id);
    WHEN 'transient', 'lost' THEN
        IF p_retry_after IS NOT NULL THEN
            -- The executor named the time: retry then, without spending
            -- an attempt.
            PERFORM dwa._requeue(p_id, p_error, now() + p_retry_after, -1);
            -- The backend (or, without one, the type) asked everyone to
            -- wait: pause its key for every daemon and worker.  Last, so
            -- that the limit row lock is held while waiting for nothing else.
            IF p_retry_after > interval '0' THEN
                PERFORM dwa._limit_pause(
                    coalesce('backend:' || nullif(s.backend, ''), 'type:' || s.task),
                    now() + p_retry_after);
            END IF;
        ELSIF s.attempt < s.max_attempts THEN
            IF p_outcome = 'lost' THEN
                delay := interval '0';
            ELSE
                -- A forEach element has no def: its step's policy holds.
                -- A step without a policy of its own has "retry": null.
                SELECT coalesce(nullif(s.def -> 'retry', 'null'), nullif(p.def -> 'retry', 'null'),
                                t.retry, tt.retry)
                  INTO policy
                  FROM dwa.tasks t LEFT JOIN dwa.task_types tt ON tt.name = s.task
                  LEFT JOIN dwa.steps p ON s.item_index IS NOT NULL
                       AND p.task_id = s.task_id AND p.step_index = s.step_index
                       AND p.item_index IS NULL
                 WHERE t.id = s.task_id;
                delay := dwa._retry_delay(policy, s.attempt) * (0.5 + random() / 2);
            END IF;
            PERFORM dwa._requeue(p_id, p_error, now() + delay, 0);
        ELSE
            PERFORM dwa._step_failed(p_id, format('%s (after %s attempts)',
                p_error, s.attempt));
        END IF;
    WHEN 'permanent' THEN
        PERFORM dwa._step_failed(p_id, p_error);
    ELSE
        RAISE EXCEPTION 'unknown outcome "%"', p_outcome USING ERRCODE = '22023';
    END CASE;
    -- A slot of a limited key is free: wake whoever waits for it.
    IF s.limit_keys IS NOT NULL THEN
        PERFORM pg_notify('dwa_wake', '');
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION dwa._finish_run(bigint, bigint, text, jsonb, text, interval) IS
    'Record the end of a run (ok, transient, permanent, lost); false if the run lost its step';

-- _ready_moved: a ready step's run_after or priority was changed by hand
-- (say, UPDATE dwa.steps SET run_after = now() to run it now): its ready
-- row follows.  The engine never changes them while a step stays ready,
-- so the trigger's WHEN keeps it off every path of its own.
CREATE OR REPLACE FUNCTION dwa._ready_moved()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE dwa.ready SET run_after = NEW.run_after, priority = NEW.priority
     WHERE priority = OLD.priority AND run_after = OLD.run_after AND step_id = OLD.id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION dwa._ready_moved() IS
    'Keep a ready step''s row in dwa.ready in step with run_after and priority changed by hand';

DROP TRIGGER IF EXISTS steps_ready_moved ON dwa.steps;
CREATE TRIGGER steps_ready_moved AFTER UPDATE OF run_after, priority ON dwa.steps
    FOR EACH ROW
    WHEN (OLD.status = 'ready' AND NEW.status = 'ready'
          AND (OLD.run_after, OLD.priority) IS DISTINCT FROM (NEW.run_after, NEW.priority))
    EXECUTE FUNCTION dwa._ready_moved();
