-- 50_worker.sql: claiming and finishing runs, for dwad and external workers.
--
-- A claim locks rows of the ready queue (dwa.ready) with FOR UPDATE SKIP
-- LOCKED, deletes them, gives each step a fresh run id and a lease, records
-- the runs (dwad's batch in one row of dwa.claims, anyone else's in
-- dwa.runs) and returns the rendered input.  Completion and failure name
-- the run id: once the lease is lost or the task cancelled, the run id no
-- longer matches a running step and nothing changes.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                    WHERE n.nspname = 'dwa' AND t.typname = 'claimed') THEN
        CREATE TYPE dwa.claimed AS (
            run_id      bigint,
            task_id     bigint,
            step_id     text,
            item_index  integer,
            task        text,
            input       jsonb,
            attempt     integer,
            lease_until timestamptz,
            id          bigint,
            timeout_ms  bigint,
            hold_ms     bigint,
            backend     text
        );
    END IF;
END
$$;
COMMENT ON TYPE dwa.claimed IS
    'One claimed run: what a worker needs to execute a step; or, run_id NULL, the hint row: hold_ms until a held-back step may start';

-- _tasks_started: mark running the queued tasks of these (claimed) steps,
-- started when their first step started.  A claim does it for external
-- workers, skipping a task row locked by a finisher or a cancel (which
-- set its status themselves), since the claim holds step locks a cancel
-- may be waiting for.  dwad does not: a claim that also updated the task
-- row cost as much again as the claim itself, on the statement that sets
-- the pace, and most runs end within a millisecond, when the end marks
-- the task anyway.  dwad calls this (p_wait) on its connection for ends
-- for the runs still going some milliseconds after their claim, holding
-- no other lock, so it waits for a locked row rather than miss it.  UIs
-- hear 'running' for each task marked and 'step_started' for each step
-- still running: so not of runs that ended within those milliseconds.
-- A task started when its first step did; forEach elements start after
-- their step, so the steps are enough (100,000 elements: 74 ms to read).
CREATE OR REPLACE FUNCTION dwa._tasks_started(p_steps bigint[], p_wait boolean)
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
    v_tasks bigint[];
BEGIN
    v_tasks := ARRAY(SELECT s.task_id FROM dwa.steps s WHERE s.id = ANY (p_steps));
    IF NOT p_wait THEN
        v_tasks := ARRAY(SELECT t.id FROM dwa.tasks t
                          WHERE t.id = ANY (v_tasks) AND t.status = 'queued'
                            FOR UPDATE SKIP LOCKED);
    END IF;
    WITH m AS (
        UPDATE dwa.tasks t
           SET status = 'running',
               started_at = coalesce(t.started_at,
                   (SELECT min(s.started_at) FROM dwa.steps s
                     WHERE s.task_id = t.id AND s.item_index IS NULL), now())
         WHERE t.id = ANY (v_tasks) AND t.status = 'queued'
        RETURNING t.id
    )
    SELECT array_agg(m.id ORDER BY m.id) INTO v_tasks FROM m;
    -- For UIs: the tasks that started, then the steps still running.
    PERFORM dwa._event(x, NULL, 'running') FROM unnest(v_tasks) x;
    -- The steps by primary key, then sorted: ordered as steps_task_idx
    -- is, with statistics of an empty dwa.steps the statement was planned
    -- as a walk of that whole index testing each entry against the ids.
    PERFORM dwa._event(x.task_id, x.step_id, 'step_started')
       FROM (SELECT s.task_id, s.step_id, s.step_index, s.item_index FROM dwa.steps s
              WHERE s.id = ANY (p_steps) AND s.status IS NOT DISTINCT FROM 'running'
             OFFSET 0) x
      ORDER BY x.task_id, x.step_index, x.item_index;
END
$$;
COMMENT ON FUNCTION dwa._tasks_started(bigint[], boolean) IS
    'Mark running the queued tasks of claimed steps (p_wait: wait for a locked task row rather than skip it)';

-- _start_steps: the claim of steps chosen and locked by dwa._claim or
-- dwa._claim_limited (their dwa.ready rows locked too): each leaves the
-- ready queue and gets a run id and a lease from p_now; with p_limited,
-- the limit keys it runs under.  The runs are recorded in dwa.runs, or,
-- with p_batched and no limit (dwad's claims), all in one row of
-- dwa.claims keyed by the first run id.  Returns them in claim order;
-- their tasks are marked running unless the caller is dwad.
-- p_ready: the addresses of the ready rows the claim locked, when it has
-- them (dwa._claim); the rows stay where they are while locked.  Without
-- them the rows are looked up by key (dwa._unready), never by a join.
DROP FUNCTION IF EXISTS dwa._start_steps(integer, bigint[], interval, timestamptz, boolean);
DROP FUNCTION IF EXISTS dwa._start_steps(integer, bigint[], tid[], interval, timestamptz,
    boolean);
CREATE OR REPLACE FUNCTION dwa._start_steps(p_worker integer, p_ids bigint[],
    p_ready tid[], p_lease interval, p_now timestamptz, p_limited boolean,
    p_batched boolean)
RETURNS SETOF dwa.claimed
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
BEGIN
    IF p_ready IS NULL THEN
        PERFORM dwa._unready(p_ids);
    ELSE
        DELETE FROM dwa.ready r WHERE r.ctid = ANY (p_ready);
    END IF;
    RETURN QUERY
    WITH u AS (
        UPDATE dwa.steps s
           SET status = 'running', run_id = nextval('dwa.run_id_seq'),
               worker_id = p_worker, attempt = s.attempt + 1,
               lease_until = p_now + p_lease, started_at = p_now, progress = NULL,
               limit_keys = CASE WHEN p_limited THEN dwa._limit_keys(s.queue, s.task,
                   s.backend, (SELECT tt.limit_keys FROM dwa.task_types tt
                                WHERE tt.name = s.task)) END
         WHERE s.id = ANY (p_ids) AND s.status = 'ready'
        RETURNING s.*
    ), r AS (
        INSERT INTO dwa.runs (run_id, step_id, task_id, worker_id, lease_until, limit_keys)
        SELECT u.run_id, u.id, u.task_id, p_worker, u.lease_until, u.limit_keys FROM u
         WHERE p_limited OR NOT p_batched
    ), c AS (
        INSERT INTO dwa.claims (batch, worker_id, lease_until, step_ids, run_ids)
        SELECT min(u.run_id), p_worker, p_now + p_lease,
               array_agg(u.id ORDER BY u.run_id), array_agg(u.run_id ORDER BY u.run_id)
          FROM u
         WHERE p_batched AND NOT p_limited
        HAVING count(*) > 0
    )
    SELECT u.run_id, u.task_id, u.step_id, u.item_index, u.task, u.input,
           u.attempt, u.lease_until, u.id,
           (extract(epoch FROM u.timeout) * 1000)::bigint, NULL::bigint, u.backend
      FROM u
     ORDER BY u.priority DESC, u.id;
    IF current_setting('dwa.claim_starts_tasks', true) IS DISTINCT FROM 'off' THEN
        PERFORM dwa._tasks_started(p_ids, false);
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._start_steps(integer, bigint[], tid[], interval, timestamptz, boolean,
    boolean) IS
    'Take claimed steps off the ready queue, give them run ids and leases (and limit keys when limited), record the runs; mark their tasks running for external workers';

-- _claim: claim up to p_n ready steps of the given types and queues (NULL:
-- any).
--
-- Generic plans, each statement planned once per session: a custom plan
-- costs more than the claim it plans (1.5 ms against well under 1 ms for
-- one step on an idle system, where it is most of the latency from INSERT
-- to start).  Whatever the statistics say (right after a bulk load they
-- say the table is nearly empty), no plan here may sort or scan the whole
-- table: sequential and bitmap scans are off, which leaves the ordered
-- walk of the ready queue's index for the choice and primary-key lookups
-- (= ANY of an array, never a join) for the updates.  JIT is off too: the
-- cost of a plan with a disabled scan would compile it (150 ms).
--
-- While no limit is in force (no cap, no rate, no pause running) the claim
-- is this; otherwise dwa._claim_limited makes it.  p_batched: record the
-- runs as one batch in dwa.claims (dwad), not in dwa.runs.
DROP FUNCTION IF EXISTS dwa._claim(integer, text[], integer, interval, text[]);
CREATE OR REPLACE FUNCTION dwa._claim(p_worker integer, p_types text[], p_n integer,
    p_lease interval, p_queues text[] DEFAULT NULL, p_batched boolean DEFAULT false)
RETURNS SETOF dwa.claimed
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
    v_active text[];
    v_ids bigint[];
    v_ready tid[];
    v_now timestamptz;
BEGIN
    SELECT array_agg(l.key) INTO v_active FROM dwa.limits l
     WHERE l.max_concurrency IS NOT NULL OR l.rate IS NOT NULL
        OR l.paused_until > clock_timestamp();
    IF v_active IS NOT NULL THEN
        RETURN QUERY SELECT * FROM dwa._claim_limited(p_worker, p_types, p_n, p_lease,
            v_active, p_queues);
        RETURN;
    END IF;

    -- Locking the ready row claims the step: every change to a ready
    -- step deletes its ready row first, in the same transaction.  The
    -- rows' addresses delete them (a locked row cannot move).
    SELECT array_agg(c.step_id), array_agg(c.ctid) INTO v_ids, v_ready
      FROM (SELECT r.step_id, r.ctid FROM dwa.ready r
             WHERE r.run_after <= now()
               AND (p_types IS NULL OR r.task = ANY (p_types))
               AND (p_queues IS NULL OR r.queue = ANY (p_queues))
             ORDER BY r.priority DESC, r.run_after, r.step_id
             LIMIT p_n
               FOR UPDATE SKIP LOCKED) c;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    -- The steps start when the limits were found clear, not when the
    -- transaction began: a step must not seem to start before a pause
    -- that had ended by then.
    v_now := clock_timestamp();
    RETURN QUERY SELECT * FROM dwa._start_steps(p_worker, v_ids, v_ready, p_lease, v_now, false,
        p_batched);
END
$$;
COMMENT ON FUNCTION dwa._claim(integer, text[], integer, interval, text[], boolean) IS
    'Claim ready steps (SKIP LOCKED) within the limits, give each a run id and a lease; a last row with run_id NULL is the hint: hold_ms';

-- _claim_limited: dwa._claim while some limit is in force (p_active: the
-- keys concerned).  dwa._limit_admit chooses and locks the steps; they run
-- recording the keys they were admitted under.  When steps were held back
-- only by a rate limit or a pause, one more row, the hint row (run_id and
-- everything else NULL), says in hold_ms when to claim again.
--
-- Generic plans: the update goes by primary key; the statement whose plan
-- depends on the arguments is dynamic SQL inside dwa._limit_admit.
CREATE OR REPLACE FUNCTION dwa._claim_limited(p_worker integer, p_types text[], p_n integer,
    p_lease interval, p_active text[], p_queues text[])
RETURNS SETOF dwa.claimed
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_ids bigint[];
    v_hold bigint;
    v_now timestamptz;
    hint dwa.claimed;
BEGIN
    SELECT a.ids, a.hold_ms INTO v_ids, v_hold
      FROM dwa._limit_admit(p_types, p_n, p_active, p_queues) a;
    -- The steps start now, not when the transaction began: the claim may
    -- have waited for a limit row, and a step that ended meanwhile must
    -- not seem to overlap with the one that took its place.
    v_now := clock_timestamp();
    IF cardinality(v_ids) > 0 THEN
        RETURN QUERY SELECT * FROM dwa._start_steps(p_worker, v_ids, NULL, p_lease, v_now, true,
            false);
    END IF;
    IF v_hold IS NOT NULL THEN
        hint.hold_ms := v_hold;
        RETURN NEXT hint;
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._claim_limited(integer, text[], integer, interval, text[], text[]) IS
    'dwa._claim under limits: admit within caps, tokens and pauses; a last row with run_id NULL is the hint: hold_ms';

-- _claim_async: dwa._claim for dwad, committed without waiting for the
-- WAL flush (synchronous_commit off for this transaction only).  A crash
-- may undo such a claim: the step is ready again, its attempt unspent,
-- and runs again (execution is at least once anyway).  It can never undo
-- a claim whose run was recorded: that record commits synchronously,
-- flushing the WAL up to it, the claim's commit included.  dwad sends it
-- as a statement of its own, so nothing else shares the transaction.
--
-- The runs are recorded as a batch in dwa.claims unless a limit is in
-- force; batch is its key then, else NULL (the runs are in dwa.runs).
-- p_done: batches of this daemon whose every end is recorded, whose rows
-- go (a crash that undoes it leaves rows the reaper deletes).
DROP FUNCTION IF EXISTS dwa._claim_async(integer, text[], integer, interval, text[]);
CREATE OR REPLACE FUNCTION dwa._claim_async(p_worker integer, p_types text[], p_n integer,
    p_lease interval, p_queues text[], p_done bigint[])
RETURNS TABLE (id bigint, run_id bigint, task_id bigint, step_id text, item_index integer,
    task text, input jsonb, attempt integer, timeout_ms bigint, hold_ms bigint,
    backend text, batch bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    v_claimed dwa.claimed[];
    v_batch bigint;
BEGIN
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    PERFORM pg_catalog.set_config('dwa.claim_starts_tasks', 'off', true);
    IF cardinality(p_done) > 0 THEN
        DELETE FROM dwa.claims c WHERE c.batch = ANY (p_done) AND c.worker_id = p_worker;
    END IF;
    -- The batch row, written by the claim, is visible to the statements
    -- after it, not to the one that made it.
    v_claimed := ARRAY(SELECT k FROM dwa._claim(p_worker, p_types, p_n, p_lease, p_queues,
                                                true) k);
    SELECT c.batch INTO v_batch FROM dwa.claims c
     WHERE c.batch = (SELECT min(k.run_id) FROM unnest(v_claimed) k);
    RETURN QUERY
    SELECT k.id, k.run_id, k.task_id, k.step_id, k.item_index, k.task, k.input, k.attempt,
           k.timeout_ms, k.hold_ms, k.backend, v_batch
      FROM unnest(v_claimed) WITH ORDINALITY k
     ORDER BY k.ordinality;
END
$$;
COMMENT ON FUNCTION dwa._claim_async(integer, text[], integer, interval, text[], bigint[]) IS
    'dwa._claim committed asynchronously, for dwad, the runs as a batch (its key returned); deletes the rows of batches done';

-- _sql_worker: the id of an external worker, registered on first use.
CREATE OR REPLACE FUNCTION dwa._sql_worker(p_name text)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_id integer;
BEGIN
    IF p_name IS NULL OR p_name = '' THEN
        PERFORM dwa._reject('worker: must be a non-empty name', 'worker');
    END IF;
    UPDATE dwa.workers SET last_seen = now()
     WHERE kind = 'sql' AND name = p_name RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        INSERT INTO dwa.workers (name, kind) VALUES (p_name, 'sql')
        ON CONFLICT (name) WHERE kind = 'sql' DO UPDATE SET last_seen = now()
        RETURNING id INTO v_id;
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION dwa._sql_worker(text) IS 'Find or register an external worker by name';

-- claim: the external-worker API (SPEC section 4).
CREATE OR REPLACE FUNCTION dwa.claim(p_worker text, p_types text[],
    p_n integer DEFAULT 1, p_lease interval DEFAULT '30 seconds',
    p_queues text[] DEFAULT NULL)
RETURNS TABLE (run_id bigint, task_id bigint, step_id text, item_index integer,
    task text, input jsonb, attempt integer, lease_until timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_n IS NULL OR p_n < 1 OR p_n > 1000 THEN
        PERFORM dwa._reject('n: must be between 1 and 1000', 'n');
    END IF;
    IF p_lease IS NULL OR p_lease < interval '1 second' THEN
        PERFORM dwa._reject('lease: must be at least 1 second', 'lease');
    END IF;
    RETURN QUERY
        SELECT c.run_id, c.task_id, c.step_id, c.item_index, c.task, c.input,
               c.attempt, c.lease_until
          FROM dwa._claim(dwa._sql_worker(p_worker), p_types, p_n, p_lease, p_queues) c
         WHERE c.run_id IS NOT NULL;    -- not the hint row
END
$$;
COMMENT ON FUNCTION dwa.claim(text, text[], integer, interval, text[]) IS
    'Claim up to n ready steps of the given task types (and queues) for an external worker';

-- heartbeat: extend the leases of runs still held; returns those run ids.
CREATE OR REPLACE FUNCTION dwa.heartbeat(p_worker text, p_run_ids bigint[],
    p_lease interval DEFAULT '30 seconds')
RETURNS bigint[]
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        UPDATE dwa.workers SET last_seen = now()
         WHERE kind = 'sql' AND name = p_worker RETURNING id
    ), u AS (
        UPDATE dwa.steps SET lease_until = now() + p_lease
         WHERE id = ANY (ARRAY(SELECT r.step_id FROM dwa.runs r
                                WHERE r.run_id = ANY (p_run_ids)))
           AND run_id = ANY (p_run_ids) AND status = 'running'
           AND lease_until >= now()
        RETURNING run_id
    ), v AS (
        UPDATE dwa.runs SET lease_until = now() + p_lease
         WHERE run_id IN (SELECT u.run_id FROM u)
    )
    SELECT coalesce(array_agg(run_id ORDER BY run_id), '{}') FROM u
$$;
COMMENT ON FUNCTION dwa.heartbeat(text, bigint[], interval) IS
    'Extend the leases of running runs; returns the run ids still held';

-- _run_step: the step a run id was claimed for (dwa.steps.id), from
-- dwa.runs, or from dwad's batches in dwa.claims (a few rows, read whole:
-- a program of dwad's may report by the run id it was given).  NULL for a
-- run id no longer in flight there.  Callers check that the step still
-- runs under it.
CREATE OR REPLACE FUNCTION dwa._run_step(p_run_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        (SELECT r.step_id FROM dwa.runs r WHERE r.run_id = p_run_id),
        (SELECT c.step_ids[array_position(c.run_ids, p_run_id)] FROM dwa.claims c
          WHERE c.run_ids @> ARRAY[p_run_id]
          LIMIT 1))
$$;
COMMENT ON FUNCTION dwa._run_step(bigint) IS
    'The step id of a run in flight, from dwa.runs or dwa.claims';

-- _progress: dwa.progress of the run p_run_id of step p_step (NULL: look
-- it up).  dwad names the step: its runs are not in dwa.runs.
CREATE OR REPLACE FUNCTION dwa._progress(p_step bigint, p_run_id bigint,
    p_progress numeric, p_data jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    s record;
    t record;
    pct integer := greatest(0, least(100, round(coalesce(p_progress, 0))));
BEGIN
    UPDATE dwa.steps SET progress = pct
     WHERE id = coalesce(p_step, dwa._run_step(p_run_id))
       AND run_id = p_run_id AND status = 'running'
    RETURNING task_id, step_id, item_index INTO s;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF s.item_index IS NULL THEN
        -- The task's progress only rises; onProgress fires when it does.
        SELECT x.progress AS cur, least(99, (x.steps_done * 100 + pct) / x.steps_total) AS nxt,
               x.on_progress IS NOT NULL AS fx
          INTO t FROM dwa.tasks x
         WHERE x.id = s.task_id AND x.status IN ('queued', 'running')
           FOR UPDATE;
        IF FOUND AND t.nxt > t.cur THEN
            UPDATE dwa.tasks SET progress = t.nxt WHERE id = s.task_id;
            IF t.fx THEN
                PERFORM dwa._fire(s.task_id, 'onProgress');
            END IF;
        END IF;
    END IF;
    PERFORM dwa._event(s.task_id, s.step_id, 'progress',
        jsonb_build_object('progress', pct) || coalesce(
            CASE WHEN p_data IS NULL THEN NULL
                 ELSE jsonb_build_object('data', p_data) END, '{}'));
    RETURN true;
END
$$;
COMMENT ON FUNCTION dwa._progress(bigint, bigint, numeric, jsonb) IS
    'dwa.progress of a run of a known step';

-- progress: report 0-100 for a run, with optional data for UIs.
CREATE OR REPLACE FUNCTION dwa.progress(p_run_id bigint, p_progress numeric,
    p_data jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT dwa._progress(NULL, p_run_id, p_progress, p_data)
$$;
COMMENT ON FUNCTION dwa.progress(bigint, numeric, jsonb) IS
    'Report the progress (0-100) of a run, firing onProgress when the task''s rises; false if the run no longer holds its step';

-- complete: a run succeeded with p_output.
CREATE OR REPLACE FUNCTION dwa.complete(p_run_id bigint, p_output jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT dwa._finish_run(s.id, s.run_id, 'ok',
               coalesce(p_output, 'null'), NULL, NULL)
                       FROM dwa.steps s
                      WHERE s.id = dwa._run_step(p_run_id)
                        AND s.run_id = p_run_id AND s.status = 'running'), false)
$$;
COMMENT ON FUNCTION dwa.complete(bigint, jsonb) IS
    'Record a run''s output; false, changing nothing, if its lease was lost or its task cancelled';

-- fail: a run failed; retryable errors are retried with backoff, or at
-- retry_after without spending an attempt.
CREATE OR REPLACE FUNCTION dwa.fail(p_run_id bigint, p_error text,
    retryable boolean DEFAULT true, retry_after interval DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF retry_after < interval '0' THEN
        RAISE EXCEPTION 'retry_after: must not be negative, got %', retry_after
            USING ERRCODE = '22023', DETAIL = 'field: retry_after',
                  HINT = 'pass NULL to retry after the usual backoff';
    END IF;
    RETURN coalesce((SELECT dwa._finish_run(s.id, s.run_id,
               CASE WHEN retryable THEN 'transient' ELSE 'permanent' END, NULL,
               coalesce(nullif(p_error, ''), 'failed'),
               CASE WHEN retryable THEN retry_after END)
                       FROM dwa.steps s
                      WHERE s.id = dwa._run_step(p_run_id)
                        AND s.run_id = p_run_id AND s.status = 'running'), false);
END
$$;
COMMENT ON FUNCTION dwa.fail(bigint, text, boolean, interval) IS
    'Record a run''s failure; false, changing nothing, if its lease was lost or its task cancelled';

-- _finish_batch: dwad's completion path: many runs in one transaction.
-- p_runs is an array of {id, run, outcome, output, error, retryAfterMs}.
--
-- Task rows are locked first, in id order, as every path that changes a
-- task does, so concurrent batches and cancels cannot deadlock.  The common
-- case, a single-step task whose run succeeded, is finished set-wise; every
-- other end goes through dwa._finish_run.  onSuccess effects of the tasks
-- finished set-wise fire afterwards, task by task.  Ends with a retry-after
-- come last, in the order of the limit key they pause: once a pause holds
-- a limit row, nothing else is waited for but further limit rows, in key
-- order, as claims take them.
CREATE OR REPLACE FUNCTION dwa._finish_batch(p_runs jsonb)
RETURNS bigint[]
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    r record;
    refused bigint[] := '{}';
    v_ids bigint[];         -- every run's step
    v_ok bigint[];          -- the steps of successful runs, in order
    v_okrun bigint[];       -- their run ids, pair by pair
    v_okout jsonb[];        -- their outputs, likewise
    v_tasks bigint[];       -- every run's task
    v_single bigint[];      -- the runs' steps of single-step tasks
    v_elems bigint[];       -- those that are forEach elements
    v_dag bigint[];         -- those of DAGs and pipelines
    v_info jsonb;           -- step id -> {task_id, task, backend}, for the rest
    fast bigint[] := '{}';  -- steps finished set-wise
    d_tasks bigint[];       -- in order
    d_outs jsonb[];         -- their results, pair by pair
    d_starts timestamptz[]; -- when their steps started, likewise
    fast_tasks bigint[];
    fx_tasks bigint[];
    freed boolean;
    el bigint[];            -- forEach elements finished set-wise
    el_freed boolean;
    el_tasks bigint[];      -- their tasks, pair by pair
    el_steps integer[];     -- and their forEach steps' indexes
    windowed boolean;       -- a forEach step has forEachConcurrency
    n integer;
    st text;
    left_n integer;
    v_total integer;
    v_parent bigint;
    v_rest bigint[];
    v_restset jsonb;
    dg bigint[];            -- steps of DAGs and pipelines finished set-wise
    dg_freed boolean;
    dg_info jsonb;          -- [{id, task, step, deps}], in task and id order
    dg_count jsonb;         -- task id -> its steps finished here
    dg_start jsonb;         -- task id -> when the first of them started
    dg_old jsonb;           -- task id -> its progress before
    dg_tasks bigint[];      -- the tasks still going that they belong to
    dg_deps jsonb;          -- 'task:step index' -> finished dependencies
    dg_ready bigint[];
BEGIN
    -- Every statement below reads one table by primary key (= ANY of an
    -- array) and joins nothing, so that its plan cannot turn into a loop
    -- over the table whatever the statistics say; on queue tables they lag
    -- far behind.  Sequential scans are off: before the first ANALYZE of
    -- a table under sustained load, a scan of all of it testing each row
    -- against the batch's ids (4,096 of them) took 13 s a batch.
    -- Whether a step is a forEach element is asked as coalesce(item_index,
    -- -1): "item_index IS NULL" is a condition on steps_task_idx, and from
    -- statistics of an empty dwa.steps it was planned as a walk of all of
    -- that index, testing each entry against the ids.
    -- The successes' values are arrays in order of step id, pair by pair
    -- with their steps, and a row finds its values by binary search
    -- (width_bucket: how many of the ids are at most its own).  A JSON
    -- object keyed by step id, built and looked up once a row, was a tenth
    -- of a batch's time; a join with the arrays could be planned as a loop
    -- over them for each row.
    SELECT array_agg(x.id),
           coalesce(array_agg(x.id ORDER BY x.id, x.run) FILTER (WHERE x.outcome = 'ok'), '{}'),
           coalesce(array_agg(x.run ORDER BY x.id, x.run) FILTER (WHERE x.outcome = 'ok'), '{}'),
           coalesce(array_agg(coalesce(x.output, 'null') ORDER BY x.id, x.run)
                        FILTER (WHERE x.outcome = 'ok'), '{}')
      INTO v_ids, v_ok, v_okrun, v_okout
      FROM jsonb_to_recordset(p_runs) AS x(id bigint, run bigint, outcome text, output jsonb);
    IF v_ids IS NULL THEN
        RETURN refused;
    END IF;

    -- The runs' tasks, and their steps by kind, which never changes: each
    -- kind's update below looks at its own steps only, and takes those
    -- whose run succeeded (found in v_ok).
    SELECT array_agg(s.task_id),
           coalesce(array_agg(s.id) FILTER (WHERE s.def IS NULL AND s.item_index IS NULL), '{}'),
           coalesce(array_agg(s.id) FILTER (WHERE s.item_index IS NOT NULL), '{}'),
           coalesce(array_agg(s.id) FILTER (WHERE s.def IS NOT NULL AND s.item_index IS NULL), '{}')
      INTO v_tasks, v_single, v_elems, v_dag
      FROM dwa.steps s
     WHERE s.id = ANY (v_ids);
    PERFORM 1 FROM dwa.tasks t WHERE t.id = ANY (v_tasks) ORDER BY t.id FOR UPDATE;

    -- Successes of single-step tasks: the step and its task, set-wise.
    WITH done AS (
        UPDATE dwa.steps s
           SET status = 'succeeded', output = v_okout[width_bucket(s.id, v_ok)],
               error = NULL, finished_at = now(), lease_until = NULL, progress = 100
         WHERE s.id = ANY (v_single) AND v_ok[width_bucket(s.id, v_ok)] = s.id
           AND s.run_id = v_okrun[width_bucket(s.id, v_ok)]
           AND s.status IS NOT DISTINCT FROM 'running'
           AND s.lease_until >= now()
           AND s.def IS NULL AND coalesce(s.item_index, -1) < 0
        RETURNING s.id, s.task_id, s.output, s.started_at, s.limit_keys IS NOT NULL AS limited
    )
    SELECT coalesce(array_agg(d.id), '{}'), array_agg(d.task_id ORDER BY d.task_id),
           array_agg(d.output ORDER BY d.task_id), array_agg(d.started_at ORDER BY d.task_id),
           coalesce(bool_or(d.limited), false)
      INTO fast, d_tasks, d_outs, d_starts, freed
      FROM done d;
    IF d_tasks IS NOT NULL THEN
        WITH t AS (
            UPDATE dwa.tasks t
               SET status = 'completed', progress = 100, steps_done = 1,
                   result = d_outs[width_bucket(t.id, d_tasks)], finished_at = now(),
                   started_at = coalesce(t.started_at, d_starts[width_bucket(t.id, d_tasks)],
                                         now())
             WHERE t.id = ANY (d_tasks) AND t.status IN ('queued', 'running')
            RETURNING t.id, t.on_success IS NOT NULL AS fx
        )
        SELECT array_agg(t.id), array_agg(t.id ORDER BY t.id) FILTER (WHERE t.fx)
          INTO fast_tasks, fx_tasks
          FROM t;
    END IF;

    -- Successes of forEach elements, set-wise: one update per forEach
    -- step counts them and moves its cursor, as many waiting elements as
    -- finished start (the next ones in element order), and a forEach step
    -- whose elements are all in finishes.
    WITH done AS (
        UPDATE dwa.steps s
           SET status = 'succeeded', output = v_okout[width_bucket(s.id, v_ok)],
               error = NULL, finished_at = now(), lease_until = NULL, progress = 100
         WHERE s.id = ANY (v_elems) AND v_ok[width_bucket(s.id, v_ok)] = s.id
           AND s.run_id = v_okrun[width_bucket(s.id, v_ok)]
           AND s.status IS NOT DISTINCT FROM 'running'
           AND s.lease_until >= now() AND coalesce(s.item_index, -1) >= 0
        RETURNING s.id, s.task_id, s.step_index, s.limit_keys IS NOT NULL AS limited
    )
    SELECT array_agg(d.id), coalesce(bool_or(d.limited), false), array_agg(d.task_id),
           array_agg(d.step_index)
      INTO el, el_freed, el_tasks, el_steps
      FROM done d;
    IF el IS NOT NULL THEN
        fast := fast || el;
        freed := freed OR el_freed;
        FOR r IN SELECT x.task_id, x.step_index, count(*)::integer AS n
                   FROM unnest(el_tasks, el_steps) AS x(task_id, step_index)
                  GROUP BY 1, 2 ORDER BY 1, 2
        LOOP
            UPDATE dwa.steps p SET fe_remaining = p.fe_remaining - r.n,
                   fe_next = CASE WHEN p.fe_concurrency IS NULL THEN p.fe_next
                                  ELSE least(p.fe_next + r.n, p.fe_total) END
             WHERE p.task_id = r.task_id AND p.step_index = r.step_index
               AND p.item_index IS NULL
            RETURNING p.id, p.status, p.fe_remaining, p.fe_next, p.fe_total,
                      p.fe_concurrency IS NOT NULL
              INTO v_parent, st, left_n, n, v_total, windowed;
            CONTINUE WHEN st IS DISTINCT FROM 'running';
            IF left_n > 0 THEN
                -- Those before the cursor that still wait (at the end of
                -- the elements, fewer than r.n).  Without forEachConcurrency
                -- none waits: all the rows made started with the step (or
                -- its retry), the next chunk's are made when it is due.
                IF windowed THEN
                    PERFORM dwa._start_elements(r.task_id, r.step_index, n - r.n, r.n);
                ELSE
                    PERFORM dwa._expand_wanted(v_parent, v_total, left_n, n);
                END IF;
            ELSE
                UPDATE dwa.steps p SET status = 'succeeded', finished_at = now(), progress = 100,
                       output = (SELECT jsonb_agg(c.output ORDER BY c.item_index)
                                   FROM dwa.steps c
                                  WHERE c.task_id = r.task_id AND c.step_index = r.step_index
                                    AND c.item_index IS NOT NULL)
                 WHERE p.task_id = r.task_id AND p.step_index = r.step_index
                   AND p.item_index IS NULL
                RETURNING p.id INTO v_parent;
                PERFORM dwa._step_succeeded(v_parent);
            END IF;
        END LOOP;
    END IF;
    -- Successes of the steps of DAGs and pipelines, set-wise: the steps,
    -- each task's count of finished steps and its progress, and the
    -- counters of their dependents, one update each per batch (not one
    -- per finished dependency: a join after 1,000 parallel steps had its
    -- row updated 1,000 times); then one by one only what needs it:
    -- onProgress, dependents made ready, tasks completed.
    WITH done AS (
        UPDATE dwa.steps s
           SET status = 'succeeded', output = v_okout[width_bucket(s.id, v_ok)],
               error = NULL, finished_at = now(), lease_until = NULL, progress = 100
         WHERE s.id = ANY (v_dag) AND v_ok[width_bucket(s.id, v_ok)] = s.id
           AND s.run_id = v_okrun[width_bucket(s.id, v_ok)]
           AND s.status IS NOT DISTINCT FROM 'running'
           AND s.lease_until >= now() AND coalesce(s.item_index, -1) < 0
           AND s.def IS NOT NULL
        RETURNING s.id, s.task_id, s.step_id, s.dependents, s.started_at,
                  s.limit_keys IS NOT NULL AS limited
    )
    SELECT array_agg(d.id), coalesce(bool_or(d.limited), false),
           jsonb_agg(jsonb_build_object('id', d.id, 'task', d.task_id, 'step', d.step_id,
               'deps', to_jsonb(d.dependents), 'started', d.started_at)
               ORDER BY d.task_id, d.id)
      INTO dg, dg_freed, dg_info
      FROM done d;
    IF dg IS NOT NULL THEN
        fast := fast || dg;
        freed := freed OR dg_freed;
        SELECT jsonb_object_agg(c.task, c.n), jsonb_object_agg(c.task, c.started)
          INTO dg_count, dg_start
          FROM (SELECT x ->> 'task' AS task, count(*) AS n, min(x ->> 'started') AS started
                  FROM jsonb_array_elements(dg_info) x GROUP BY 1) c;
        dg_tasks := ARRAY(SELECT k::bigint FROM jsonb_object_keys(dg_count) k ORDER BY 1);
        SELECT jsonb_object_agg(t.id::text, t.progress) INTO dg_old
          FROM dwa.tasks t WHERE t.id = ANY (dg_tasks);
        WITH t AS (
            UPDATE dwa.tasks x
               SET steps_done = x.steps_done + (dg_count ->> x.id::text)::integer,
                   progress = greatest(x.progress,
                       (x.steps_done + (dg_count ->> x.id::text)::integer) * 100 / x.steps_total),
                   status = 'running',
                   started_at = coalesce(x.started_at, (dg_start ->> x.id::text)::timestamptz, now())
             WHERE x.id = ANY (dg_tasks) AND x.status IN ('queued', 'running')
            RETURNING x.id
        )
        SELECT coalesce(array_agg(t.id ORDER BY t.id), '{}') INTO dg_tasks FROM t;

        PERFORM dwa._event((x ->> 'task')::bigint, x ->> 'step', 'step_succeeded')
           FROM jsonb_array_elements(dg_info) x
           JOIN dwa.tasks t ON t.id = (x ->> 'task')::bigint
          WHERE t.id = ANY (dg_tasks) AND t.steps_total > 1;
        FOR r IN SELECT t.id FROM dwa.tasks t
                  WHERE t.id = ANY (dg_tasks) AND t.on_progress IS NOT NULL
                    AND t.progress > (dg_old ->> t.id::text)::integer
                    AND t.steps_done < t.steps_total
                  ORDER BY t.id
        LOOP
            PERFORM dwa._fire(r.id, 'onProgress');
        END LOOP;

        SELECT jsonb_object_agg(c.k, c.n) INTO dg_deps
          FROM (SELECT (x ->> 'task') || ':' || dep AS k, count(*) AS n
                  FROM jsonb_array_elements(dg_info) x,
                       jsonb_array_elements_text(x -> 'deps') dep
                 WHERE (x ->> 'task')::bigint = ANY (dg_tasks)
                 GROUP BY 1) c;
        IF dg_deps IS NOT NULL THEN
            WITH w AS (
                UPDATE dwa.steps w
                   SET remaining_deps = w.remaining_deps
                       - (dg_deps ->> (w.task_id || ':' || w.step_index))::integer
                 WHERE w.id = ANY (ARRAY(
                        SELECT w2.id FROM dwa.steps w2
                         WHERE w2.task_id = ANY (dg_tasks) AND w2.status = 'waiting'
                           AND w2.item_index IS NULL
                           AND dg_deps ? (w2.task_id || ':' || w2.step_index)))
                RETURNING w.id, w.task_id, w.step_index, w.remaining_deps
            )
            SELECT coalesce(array_agg(w.id ORDER BY w.task_id, w.step_index), '{}')
              INTO dg_ready FROM w WHERE w.remaining_deps = 0;
            FOR r IN SELECT x AS id FROM unnest(dg_ready) WITH ORDINALITY AS u(x, o) ORDER BY o
            LOOP
                PERFORM dwa._make_ready(r.id);
            END LOOP;
        END IF;
        FOR r IN SELECT t.id FROM dwa.tasks t
                  WHERE t.id = ANY (dg_tasks) AND t.steps_done >= t.steps_total
                  ORDER BY t.id
        LOOP
            PERFORM dwa._complete_task(r.id);
        END LOOP;
    END IF;
    -- The runs finished set-wise are over.  Those of dwad's batches have
    -- no dwa.runs row (their batch's row goes when dwad says it is done);
    -- while dwa.runs holds none (no limit in force, no external worker)
    -- there is nothing to delete.
    IF cardinality(fast) > 0 AND EXISTS (SELECT 1 FROM dwa.runs) THEN
        DELETE FROM dwa.runs u
         WHERE u.run_id = ANY (ARRAY(SELECT v_okrun[width_bucket(x, v_ok)]
                                       FROM unnest(fast) x));
    END IF;
    -- A step that ran under a concurrency-limited key freed a slot that
    -- another daemon may be waiting for.
    IF freed THEN
        PERFORM pg_notify('dwa_wake', '');
    END IF;

    -- The very text dwa._event writes (a task id needs no quoting), without
    -- building JSON to strip it again: once a task, a twentieth of a batch.
    PERFORM pg_notify('dwa_events', '{"task_id":' || x || ',"event":"completed"}')
       FROM unnest(fast_tasks) x;
    -- The fast path completes tasks set-wise; their onSuccess fires here.
    FOR r IN SELECT x AS id FROM unnest(fx_tasks) x LOOP
        PERFORM dwa._fire(r.id, 'onSuccess');
    END LOOP;

    -- The rest, one by one (in task order; retry-afters last, in the order
    -- of the key they pause): what each needs from its step, by primary key.
    -- Set differences by hashing: a batch may hold thousands of ends.
    v_rest := ARRAY(SELECT unnest(v_ids) EXCEPT SELECT unnest(fast));
    IF cardinality(v_rest) = 0 THEN
        RETURN refused;
    END IF;
    SELECT jsonb_object_agg(s.id::text, jsonb_build_object('task_id', s.task_id,
               'key', coalesce('backend:' || nullif(s.backend, ''), 'type:' || s.task)))
      INTO v_info
      FROM dwa.steps s
     WHERE s.id = ANY (v_rest);
    v_restset := (SELECT jsonb_object_agg(x::text, true) FROM unnest(v_rest) x);
    FOR r IN SELECT (e ->> 'id')::bigint AS id, (e ->> 'run')::bigint AS run,
                    e ->> 'outcome' AS outcome, e -> 'output' AS output,
                    e ->> 'error' AS error,
                    make_interval(secs => (e ->> 'retryAfterMs')::double precision / 1000)
                        AS retry_after
               FROM jsonb_array_elements(p_runs) e
              WHERE v_restset ? (e ->> 'id')
              ORDER BY CASE WHEN (e ->> 'retryAfterMs') IS NOT NULL
                            THEN v_info -> (e ->> 'id') ->> 'key'
                       END NULLS FIRST,
                       (v_info -> (e ->> 'id') ->> 'task_id')::bigint, (e ->> 'id')::bigint
    LOOP
        IF NOT dwa._finish_run(r.id, r.run, r.outcome, r.output, r.error, r.retry_after) THEN
            refused := refused || r.run;
        END IF;
    END LOOP;
    -- A task whose run failed and waits for its retry has started: dwad's
    -- claim left it queued.  (Its row is locked already.)
    PERFORM dwa._tasks_started(v_rest, true);
    RETURN refused;
END
$$;
COMMENT ON FUNCTION dwa._finish_batch(jsonb) IS
    'Finish many runs at once (task order, so concurrent batches cannot deadlock); returns refused run ids';

-- _register: a daemon announces itself and holds a session advisory lock
-- on its id for as long as its connection lives.
CREATE OR REPLACE FUNCTION dwa._register(p_name text, p_hostname text, p_pid integer,
    p_version text, p_concurrency integer)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_id integer;
BEGIN
    INSERT INTO dwa.workers (name, kind, hostname, pid, version, concurrency)
    VALUES (p_name, 'daemon', p_hostname, p_pid, p_version, p_concurrency)
    RETURNING id INTO v_id;
    PERFORM pg_advisory_lock(dwa._lock_class(), v_id);
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION dwa._register(text, text, integer, text, integer) IS
    'Register a daemon and take the session lock that tells others it is alive';

-- _lock_class: first key of the daemons' advisory locks ("DWA").
CREATE OR REPLACE FUNCTION dwa._lock_class()
RETURNS integer
LANGUAGE sql IMMUTABLE
AS $$ SELECT 4478785 $$;
COMMENT ON FUNCTION dwa._lock_class() IS 'First key of the daemons'' session advisory locks';

-- _renew: a daemon extends the leases of its runs (and adopts them after a
-- reconnect); returns the run ids it no longer holds, to abort them.
-- p_step_ids and p_run_ids are its runs, pair by pair; p_live the batches
-- (dwa.claims) it still holds whole, whose rows keep only the pairs it
-- holds (one slow run would keep the pairs of a whole batch otherwise);
-- p_done those whose every end is recorded, whose rows go.  A batch left
-- out of both (an end of it could not be recorded) expires, for the reaper
-- to look at its steps.
--
-- Sequential scans off, as in dwa._finish_batch: the steps are looked up
-- through the primary key whatever the statistics say.
--
-- SKIP LOCKED: a step row locked by one of the daemon's batches of ends,
-- on another of its connections, is being finished; waiting for it while
-- holding the rows renewed so far could deadlock with that batch.  Such a
-- run is not lost: lost are the runs that no running step holds with its
-- lease in force, as this statement sees them.
DROP FUNCTION IF EXISTS dwa._renew(integer, bigint[], interval);
CREATE OR REPLACE FUNCTION dwa._renew(p_worker integer, p_step_ids bigint[],
    p_run_ids bigint[], p_lease interval, p_live bigint[], p_done bigint[])
RETURNS bigint[]
LANGUAGE sql
SET enable_seqscan = off
SET jit = off
AS $$
    WITH w AS (
        UPDATE dwa.workers SET last_seen = now() WHERE id = p_worker RETURNING id
    ), l AS (
        SELECT s.id, s.run_id FROM dwa.steps s
         WHERE s.id = ANY (p_step_ids)
           AND s.run_id = ANY (p_run_ids) AND s.status = 'running'
           AND s.lease_until >= now()
           FOR UPDATE SKIP LOCKED
    ), u AS (
        UPDATE dwa.steps s SET lease_until = now() + p_lease, worker_id = p_worker
         WHERE s.id = ANY (ARRAY(SELECT l.id FROM l))
    ), v AS (
        UPDATE dwa.runs r SET lease_until = now() + p_lease, worker_id = p_worker
         WHERE r.run_id = ANY (ARRAY(SELECT l.run_id FROM l))
    ), k AS (
        -- The live batches' pairs the daemon still holds: the others
        -- ended, and their ends are recorded.
        SELECT c.batch, array_agg(x.step_id ORDER BY x.run_id) AS step_ids,
               array_agg(x.run_id ORDER BY x.run_id) AS run_ids
          FROM dwa.claims c, unnest(c.step_ids, c.run_ids) x(step_id, run_id)
         WHERE c.batch = ANY (p_live) AND c.lease_until >= now()
           AND x.run_id IN (SELECT unnest(p_run_ids))
         GROUP BY c.batch
    ), c AS (
        UPDATE dwa.claims c SET lease_until = now() + p_lease, worker_id = p_worker,
               step_ids = k.step_ids, run_ids = k.run_ids
          FROM k
         WHERE c.batch = k.batch AND c.lease_until >= now()
    ), d AS (
        DELETE FROM dwa.claims c WHERE c.batch = ANY (p_done) AND c.worker_id = p_worker
    )
    SELECT coalesce(array_agg(p.run_id ORDER BY p.run_id), '{}')
      FROM unnest(p_step_ids, p_run_ids) p(step_id, run_id)
     WHERE NOT EXISTS (SELECT 1 FROM dwa.steps s
                        WHERE s.id = p.step_id AND s.run_id = p.run_id
                          AND s.status = 'running' AND s.lease_until >= now())
$$;
COMMENT ON FUNCTION dwa._renew(integer, bigint[], bigint[], interval, bigint[], bigint[]) IS
    'Extend a daemon''s leases and its batches'', delete its batches done; returns the run ids it lost';

-- _reap: requeue the runs of daemons whose session is gone and of leases
-- that ran out, and hand their deliveries back to the outbox.  Any daemon
-- may call it; it is safe to run concurrently.
--
-- Runs are in dwa.runs (a row each, read whole: few) and in dwad's batches
-- (dwa.claims).  The batches looked at are those of dead daemons and those
-- whose lease ran out (their daemon stopped renewing them whole, say after
-- an end could not be recorded).  Of their steps still running under the
-- batch's run ids, lost are those held by a dead daemon (by the step's
-- worker: a daemon that registered again after a reconnect renews, and so
-- holds, the runs it still has of a batch it no longer renews; one
-- registered again by the same process is not gone) and those whose own
-- lease ran out.  They end in task order, as every path that
-- locks tasks.  A batch row goes once none of its runs is in flight.
--
-- Sequential scans off: steps are looked up by primary key, deliveries in
-- flight through their lease index, whatever the statistics say.  JIT off,
-- as in dwa._claim: the cost of a plan with a disabled scan (in the
-- functions it calls) would compile it, for seconds on a busy host.
DROP FUNCTION IF EXISTS dwa._reap_batches(integer[]);
CREATE OR REPLACE FUNCTION dwa._reap()
RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
    dead integer[];
    gone integer[];
    v_live integer[];
    v_rows bigint[];
    r record;
    n integer := 0;
    m integer;
BEGIN
    -- pg_locks shows the whole cluster: only this database's locks say
    -- anything about its daemons.
    WITH live AS MATERIALIZED (
        SELECT l.objid::integer AS id FROM pg_catalog.pg_locks l
         WHERE l.locktype = 'advisory' AND l.classid = dwa._lock_class()::oid
           AND l.objsubid = 2 AND l.granted
           AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                              WHERE d.datname = pg_catalog.current_database())
    )
    SELECT coalesce(array_agg(w.id) FILTER (WHERE w.id NOT IN (SELECT id FROM live)), '{}'),
           coalesce(array_agg(w.id) FILTER (WHERE w.id IN (SELECT id FROM live)), '{}')
      INTO dead, v_live
      FROM dwa.workers w
     WHERE w.kind = 'daemon';
    -- A daemon that lost its connection and registered again (same host,
    -- same process) still holds the runs it had: it adopts them at its
    -- next renewal, or they end with their leases.  Gone are the others.
    gone := ARRAY(SELECT w.id FROM dwa.workers w
                   WHERE w.id = ANY (dead)
                     AND NOT EXISTS (SELECT 1 FROM dwa.workers v
                                      WHERE v.id = ANY (v_live)
                                        AND v.hostname IS NOT DISTINCT FROM w.hostname
                                        AND v.pid IS NOT DISTINCT FROM w.pid));
    v_rows := ARRAY(SELECT c.batch FROM dwa.claims c
                     WHERE c.lease_until < now() OR c.worker_id = ANY (dead));
    FOR r IN
        WITH p AS MATERIALIZED (
            SELECT x.step_id, x.run_id
              FROM dwa.claims c, unnest(c.step_ids, c.run_ids) x(step_id, run_id)
             WHERE c.batch = ANY (v_rows)
        )
        SELECT s.id, s.run_id, s.task_id, s.worker_id,
               s.lease_until < now() AS expired, true AS batched
          FROM dwa.steps s JOIN p ON p.step_id = s.id AND p.run_id = s.run_id
         WHERE s.id = ANY (ARRAY(SELECT p.step_id FROM p))
           AND s.status = 'running' AND (s.worker_id = ANY (gone) OR s.lease_until < now())
        UNION ALL
        SELECT u.step_id, u.run_id, u.task_id, u.worker_id, u.lease_until < now(), false
          FROM dwa.runs u
         WHERE u.lease_until < now() OR u.worker_id = ANY (gone)
        ORDER BY 3, 1
    LOOP
        IF dwa._finish_run(r.id, r.run_id, 'lost', NULL,
            CASE WHEN r.expired THEN 'lease expired: the worker stopped renewing it'
                 ELSE format('worker %s is gone', r.worker_id) END, NULL) THEN
            n := n + 1;
        ELSIF NOT r.batched THEN
            -- A row its step does not hold (the step moved on): drop it.
            DELETE FROM dwa.runs u
             WHERE u.run_id = r.run_id
               AND NOT EXISTS (SELECT 1 FROM dwa.steps s
                                WHERE s.id = u.step_id AND s.run_id = u.run_id
                                  AND s.status = 'running');
        END IF;
    END LOOP;
    -- Rows a renewal holds are skipped (it may be adopting them, or
    -- deleting others first): the next pass sees them.
    IF cardinality(v_rows) > 0 THEN
        DELETE FROM dwa.claims c
         WHERE c.batch = ANY (ARRAY(SELECT k.batch FROM dwa.claims k
                                     WHERE k.batch = ANY (v_rows)
                                     ORDER BY k.batch
                                       FOR UPDATE SKIP LOCKED))
           AND NOT EXISTS (SELECT 1 FROM dwa.steps s
                            WHERE s.id = ANY (c.step_ids) AND s.run_id = ANY (c.run_ids)
                              AND s.status = 'running');
    END IF;
    -- Deliveries in flight: the receiver may have got them (at least
    -- once); the attempt stays counted, and a delivery that used its
    -- last attempt this way is dead rather than retried for ever.
    UPDATE dwa.outbox o
       SET status = CASE WHEN o.attempts >= o.max_attempts THEN 'dead'
                         ELSE 'pending' END,
           next_attempt_at = now(), lease_until = NULL,
           last_error = CASE WHEN o.lease_until < now()
                             THEN 'lease expired during delivery'
                             ELSE format('worker %s is gone', o.worker_id) END
     WHERE o.status = 'delivering'
       AND (o.lease_until < now() OR o.worker_id = ANY (dead));
    GET DIAGNOSTICS m = ROW_COUNT;
    IF m > 0 THEN
        PERFORM pg_notify('dwa_outbox', '');
    END IF;
    DELETE FROM dwa.workers WHERE id = ANY (dead);
    -- Chunked forEach steps with more elements to make and none of those
    -- made left to run: the transaction that was making the next chunk
    -- did not commit (its daemon went away), and no end is left to ask
    -- again.  Last: the step row's lock may be waited for while holding
    -- those above; the ends that hold it took their tasks' locks first.
    FOR r IN SELECT p.id FROM dwa.steps p
              WHERE p.fe_next < p.fe_total AND p.fe_concurrency IS NULL
                AND p.status = 'running'
                AND p.fe_next - (p.fe_total - p.fe_remaining) <= 0
    LOOP
        PERFORM dwa._expand(r.id);
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION dwa._reap() IS
    'Requeue runs and deliveries of dead daemons and expired leases; returns how many runs';

-- _stream: dwa.stream of the run p_run_id of step p_step (NULL: look it
-- up), as dwa._progress.
CREATE OR REPLACE FUNCTION dwa._stream(p_step bigint, p_run_id bigint, p_event text,
    p_data jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    s record;
    v_id bigint;
    note text;
BEGIN
    IF p_event IS NULL OR p_event = '' THEN
        PERFORM dwa._reject('event: must be a non-empty name', 'event');
    END IF;
    SELECT task_id, step_id INTO s FROM dwa.steps
     WHERE id = coalesce(p_step, dwa._run_step(p_run_id))
       AND run_id = p_run_id AND status = 'running';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO dwa.events (task_id, step_id, event, payload)
    VALUES (s.task_id, s.step_id, p_event, p_data)
    RETURNING id INTO v_id;
    note := json_build_object('task_id', s.task_id, 'step_id', s.step_id,
        'event', p_event, 'id', v_id, 'data', p_data)::text;
    IF octet_length(note) >= 8000 THEN
        -- Over NOTIFY's limit: listeners read the payload from dwa.events.
        note := json_build_object('task_id', s.task_id, 'step_id', s.step_id,
            'event', p_event, 'id', v_id)::text;
    END IF;
    PERFORM pg_notify('dwa_events', note);
    RETURN true;
END
$$;
COMMENT ON FUNCTION dwa._stream(bigint, bigint, text, jsonb) IS
    'dwa.stream of a run of a known step';

-- stream: a running step's streamed event (a partial transcript, a frame):
-- stored in dwa.events and sent on NOTIFY dwa_events for UIs.
CREATE OR REPLACE FUNCTION dwa.stream(p_run_id bigint, p_event text,
    p_data jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT dwa._stream(NULL, p_run_id, p_event, p_data)
$$;
COMMENT ON FUNCTION dwa.stream(bigint, text, jsonb) IS
    'Record a streamed event of a running step in dwa.events and NOTIFY dwa_events; false if the run no longer holds its step';
