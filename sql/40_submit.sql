-- 40_submit.sql: submission: INSERT INTO dwa.tasks and dwa.submit(json).
--
-- A statement-level trigger sees every row of one INSERT at once (a
-- transition table), validates them and creates their steps set-wise: a
-- bulk INSERT ... SELECT of single-step tasks costs two inserts per task
-- and no per-row PL/pgSQL.  Tasks with "steps" are planned one by one.

-- _expand: create the step rows of a task that has "steps".
CREATE OR REPLACE FUNCTION dwa._expand(p_task dwa.tasks)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    plan jsonb;
    r record;
BEGIN
    plan := dwa._plan(p_task.steps);
    SELECT e ->> 'id' AS id, e ->> 'task' AS task INTO r
      FROM jsonb_array_elements(plan) e
     WHERE NOT EXISTS (SELECT 1 FROM dwa.task_types tt WHERE tt.name = e ->> 'task')
     ORDER BY (e ->> 'index')::integer LIMIT 1;
    IF FOUND THEN
        PERFORM dwa._reject(format('step "%s": unknown task type "%s"', r.id, r.task),
            'steps.task', 'register it in dwa.task_types or run ''dwa types list''');
    END IF;

    INSERT INTO dwa.steps (task_id, step_index, step_id, task, status, queue,
        priority, backend, run_after, remaining_deps, depends_on, dependents, def,
        max_attempts, timeout, fe_concurrency)
    SELECT p_task.id, (e ->> 'index')::integer, e ->> 'id', e ->> 'task', 'waiting',
           p_task.queue, p_task.priority,
           coalesce(e ->> 'backend', p_task.backend, tt.backend),
           coalesce(p_task.run_at, now()),
           jsonb_array_length(e -> 'deps'),
           ARRAY(SELECT jsonb_array_elements_text(e -> 'deps')::integer),
           ARRAY(SELECT jsonb_array_elements_text(e -> 'dependents')::integer),
           e - 'deps' - 'dependents' - 'task' - 'id' - 'index',
           coalesce((e #>> '{retry,attempts}')::integer,
                    (p_task.retry ->> 'attempts')::integer,
                    (tt.retry ->> 'attempts')::integer, 3),
           coalesce(dwa._duration(e -> 'timeout', 'timeout'), p_task.timeout, tt.timeout),
           (e ->> 'forEachConcurrency')::integer
      FROM jsonb_array_elements(plan) e
      JOIN dwa.task_types tt ON tt.name = e ->> 'task';

    UPDATE dwa.tasks SET steps_total = jsonb_array_length(plan) WHERE id = p_task.id;

    FOR r IN SELECT id FROM dwa.steps
              WHERE task_id = p_task.id AND remaining_deps = 0
              ORDER BY step_index
    LOOP
        PERFORM dwa._make_ready(r.id);
    END LOOP;
END
$$;
COMMENT ON FUNCTION dwa._expand(dwa.tasks) IS
    'Plan a multi-step task and create its step rows; root steps become ready';

-- _tasks_inserted: AFTER INSERT ... FOR EACH STATEMENT on dwa.tasks.
CREATE OR REPLACE FUNCTION dwa._tasks_inserted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    r record;
    t dwa.tasks;
    v_limit bigint := coalesce(nullif(current_setting('dwa.max_payload_bytes', true), '')::bigint,
        1048576);
BEGIN
    -- One pass over the new rows finds the first rule broken (the rules
    -- in order, over all rows), then the unknown types among the distinct
    -- ones: bulk submissions of 100,000 rows pay two scans, not five.
    SELECT x.rule, x.type, x.queue, x.size INTO r
      FROM (SELECT CASE
                   WHEN pg_column_size(n.payload) > v_limit THEN 1
                   WHEN n.status <> 'queued' OR n.result IS NOT NULL OR n.error IS NOT NULL
                     OR n.steps_done <> 0 OR n.steps_total <> 1 OR n.progress <> 0
                     OR n.started_at IS NOT NULL OR n.finished_at IS NOT NULL THEN 2
                   WHEN n.type = '' OR n.queue = '' OR n.type ~ '[[:cntrl:]]' THEN 3
                   END AS rule,
                   n.type, n.queue, pg_column_size(n.payload) AS size
              FROM new_tasks n) x
     WHERE x.rule IS NOT NULL
     ORDER BY x.rule
     LIMIT 1;
    IF FOUND THEN
        IF r.rule = 1 THEN
            PERFORM dwa._reject(format('payload: %s bytes, over the limit of %s bytes',
                r.size, v_limit), 'payload',
                'pass a reference (a URL or a path) instead, or raise dwa.max_payload_bytes');
        ELSIF r.rule = 2 THEN
            PERFORM dwa._reject('status, progress, result, error and timestamps are set by DWA, not on INSERT',
                'status');
        END IF;
        PERFORM dwa._reject(CASE WHEN r.type = '' OR r.type ~ '[[:cntrl:]]'
            THEN 'type: must be a non-empty name' ELSE 'queue: must be a non-empty name' END,
            CASE WHEN r.queue = '' THEN 'queue' ELSE 'type' END);
    END IF;

    SELECT d.type INTO r
      FROM (SELECT DISTINCT n.type FROM new_tasks n WHERE n.steps IS NULL) d
     WHERE NOT EXISTS (SELECT 1 FROM dwa.task_types tt WHERE tt.name = d.type)
     LIMIT 1;
    IF FOUND THEN
        PERFORM dwa._reject(format('type: unknown task type "%s"', r.type), 'type',
            'register it in dwa.task_types, or give the task "steps" of registered types');
    END IF;

    FOR r IN SELECT * FROM new_tasks n
              WHERE n.retry IS NOT NULL OR n.on_pending IS NOT NULL
                 OR n.on_progress IS NOT NULL OR n.on_success IS NOT NULL
                 OR n.on_error IS NOT NULL
    LOOP
        PERFORM dwa._check_retry(r.retry, '');
        PERFORM dwa._check_effects(r.on_pending, 'onPending');
        PERFORM dwa._check_effects(r.on_progress, 'onProgress');
        PERFORM dwa._check_effects(r.on_success, 'onSuccess');
        PERFORM dwa._check_effects(r.on_error, 'onError');
    END LOOP;

    INSERT INTO dwa.steps (task_id, step_index, step_id, task, status, queue,
        priority, backend, run_after, input, max_attempts, timeout)
    SELECT n.id, 0, '0', n.type, 'ready', n.queue, n.priority,
           coalesce(n.backend, tt.backend), coalesce(n.run_at, now()), n.payload,
           coalesce((n.retry ->> 'attempts')::integer,
                    (tt.retry ->> 'attempts')::integer, 3),
           coalesce(n.timeout, tt.timeout)
      FROM new_tasks n
      JOIN dwa.task_types tt ON tt.name = n.type
     WHERE n.steps IS NULL;

    -- onPending before any step runs: a multi-step task may finish during
    -- its expansion (an empty forEach), and its onSuccess comes after.
    FOR r IN SELECT n.id FROM new_tasks n WHERE n.on_pending IS NOT NULL ORDER BY n.id LOOP
        PERFORM dwa._fire(r.id, 'onPending');
    END LOOP;

    FOR t IN SELECT * FROM new_tasks n WHERE n.steps IS NOT NULL ORDER BY n.id LOOP
        PERFORM dwa._expand(t);
    END LOOP;

    PERFORM pg_notify('dwa_wake', '');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION dwa._tasks_inserted() IS
    'Validate inserted tasks, fire their onPending and create their steps, set-wise; one wake-up NOTIFY per statement';

-- _tasks_idempotent: BEFORE INSERT, only for rows with an idempotency key:
-- a key already used creates nothing.
CREATE OR REPLACE FUNCTION dwa._tasks_idempotent()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM dwa.tasks WHERE idempotency_key = NEW.idempotency_key) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION dwa._tasks_idempotent() IS
    'Skip an INSERT whose idempotency key is already taken';

-- _tasks_deleted: AFTER DELETE ... FOR EACH STATEMENT: steps, UI events
-- and finished deliveries go with tasks; deliveries still pending or under
-- way are left to be delivered.
CREATE OR REPLACE FUNCTION dwa._tasks_deleted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM dwa.steps s USING old_tasks o WHERE s.task_id = o.id;
    DELETE FROM dwa.events e USING old_tasks o WHERE e.task_id = o.id;
    DELETE FROM dwa.outbox x USING old_tasks o
     WHERE x.task_id = o.id AND x.status IN ('delivered', 'dead');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION dwa._tasks_deleted() IS
    'Delete the steps, UI events and finished deliveries of deleted tasks';

DROP TRIGGER IF EXISTS tasks_inserted ON dwa.tasks;
CREATE TRIGGER tasks_inserted AFTER INSERT ON dwa.tasks
    REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION dwa._tasks_inserted();
DROP TRIGGER IF EXISTS tasks_idempotent ON dwa.tasks;
CREATE TRIGGER tasks_idempotent BEFORE INSERT ON dwa.tasks
    FOR EACH ROW WHEN (NEW.idempotency_key IS NOT NULL)
    EXECUTE FUNCTION dwa._tasks_idempotent();
DROP TRIGGER IF EXISTS tasks_deleted ON dwa.tasks;
CREATE TRIGGER tasks_deleted AFTER DELETE ON dwa.tasks
    REFERENCING OLD TABLE AS old_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION dwa._tasks_deleted();

-- submit: hand over a task definition (SPEC section 2); returns its id.
CREATE OR REPLACE FUNCTION dwa.submit(p_def jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    v_id bigint;
    v_run_at timestamptz;
BEGIN
    IF p_def IS NULL OR jsonb_typeof(p_def) <> 'object' THEN
        PERFORM dwa._reject('task definition: must be a JSON object', '(root)');
    END IF;
    FOR k IN SELECT jsonb_object_keys(p_def) LOOP
        IF k NOT IN ('type', 'queue', 'priority', 'backend', 'payload', 'steps',
            'idempotencyKey', 'runAt', 'retry', 'timeout', 'onPending',
            'onProgress', 'onSuccess', 'onError', 'parentId', 'description') THEN
            PERFORM dwa._reject(format('unknown field "%s"', k), k,
                CASE WHEN k IN ('on_success', 'on_error', 'on_pending', 'on_progress',
                    'idempotency_key', 'run_at', 'parent_id')
                THEN 'JSON fields are camelCase' END);
        END IF;
    END LOOP;
    IF NOT p_def ? 'type' THEN
        PERFORM dwa._reject('missing "type"', 'type', 'name a task type, e.g. "echo"');
    END IF;
    IF jsonb_typeof(p_def -> 'type') <> 'string' THEN
        PERFORM dwa._reject('type: must be a string', 'type');
    END IF;
    IF p_def ? 'queue' AND jsonb_typeof(p_def -> 'queue') <> 'string' THEN
        PERFORM dwa._reject('queue: must be a string', 'queue');
    END IF;
    IF p_def ? 'backend' AND jsonb_typeof(p_def -> 'backend') <> 'string' THEN
        PERFORM dwa._reject('backend: must be a string', 'backend');
    END IF;
    IF p_def ? 'idempotencyKey' AND (jsonb_typeof(p_def -> 'idempotencyKey') <> 'string'
        OR p_def ->> 'idempotencyKey' = '') THEN
        PERFORM dwa._reject('idempotencyKey: must be a non-empty string', 'idempotencyKey');
    END IF;
    IF p_def ? 'priority' AND (jsonb_typeof(p_def -> 'priority') <> 'number'
        OR (p_def ->> 'priority')::numeric <> trunc((p_def ->> 'priority')::numeric)
        OR abs((p_def ->> 'priority')::numeric) > 1000000) THEN
        PERFORM dwa._reject('priority: must be an integer between -1000000 and 1000000',
            'priority');
    END IF;
    IF p_def ? 'parentId' AND jsonb_typeof(p_def -> 'parentId') <> 'number' THEN
        PERFORM dwa._reject('parentId: must be a task id', 'parentId');
    END IF;
    IF p_def ? 'runAt' THEN
        IF jsonb_typeof(p_def -> 'runAt') <> 'string' THEN
            PERFORM dwa._reject('runAt: must be an ISO 8601 timestamp string', 'runAt');
        END IF;
        BEGIN
            v_run_at := (p_def ->> 'runAt')::timestamptz;
        EXCEPTION WHEN others THEN
            PERFORM dwa._reject(format('runAt: "%s" is not a timestamp', p_def ->> 'runAt'),
                'runAt', 'use ISO 8601, e.g. "2026-12-01T10:00:00Z"');
        END;
    END IF;
    IF p_def ? 'steps' AND jsonb_typeof(p_def -> 'steps') <> 'array' THEN
        PERFORM dwa._reject('steps: must be an array', 'steps');
    END IF;

    INSERT INTO dwa.tasks (type, queue, priority, backend, payload, steps,
        idempotency_key, run_at, retry, timeout, on_pending, on_progress,
        on_success, on_error, parent_id)
    VALUES (p_def ->> 'type', coalesce(p_def ->> 'queue', 'default'),
        coalesce((p_def ->> 'priority')::integer, 0), p_def ->> 'backend',
        coalesce(p_def -> 'payload', '{}'), p_def -> 'steps',
        p_def ->> 'idempotencyKey', v_run_at, p_def -> 'retry',
        dwa._duration(p_def -> 'timeout', 'timeout'),
        p_def -> 'onPending', p_def -> 'onProgress', p_def -> 'onSuccess',
        p_def -> 'onError', (p_def ->> 'parentId')::bigint)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM dwa.tasks WHERE idempotency_key = p_def ->> 'idempotencyKey';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION dwa.submit(jsonb) IS
    'Submit a task definition (JSON, camelCase); returns the task id, or the first task''s id for a repeated idempotencyKey';

-- submit(text): the same, with a clear error for malformed JSON.
CREATE OR REPLACE FUNCTION dwa.submit(p_def text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v jsonb;
    msg text;
BEGIN
    BEGIN
        v := p_def::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        PERFORM dwa._reject('malformed JSON: ' || msg, '(root)');
    END;
    RETURN dwa.submit(v);
END
$$;
COMMENT ON FUNCTION dwa.submit(text) IS
    'Submit a task definition given as JSON text; malformed JSON is rejected with a clear error';
