-- 40_submit.sql: submission: INSERT INTO dwa.tasks and dwa.submit(json).
--
-- A statement-level trigger sees every row of one INSERT at once (a
-- transition table), validates them and creates their steps set-wise: a
-- bulk INSERT ... SELECT costs a few statements over all its rows.  Tasks
-- with "steps" are planned once per distinct definition, and the step
-- rows of all of them go in with one INSERT, root steps ready, their
-- templates rendered by SQL compiled from the definition.  The only
-- PL/pgSQL per row is a trigger counting a task's steps into steps_total.

-- _missing_sql: SQL that is true where one of the given template values
-- (lookups of _template_sql) has none.
CREATE OR REPLACE FUNCTION dwa._missing_sql(p_lookups text[])
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT '(' || string_agg(DISTINCT x || ' IS NULL', ' OR ') || ')' FROM unnest(p_lookups) x
$$;
COMMENT ON FUNCTION dwa._missing_sql(text[]) IS
    'SQL that is true where one of the given template values is missing';

-- _case_sql: SQL of CASE p_key WHEN 1 THEN p_exprs[1] ... ELSE p_else END.
CREATE OR REPLACE FUNCTION dwa._case_sql(p_key text, p_exprs text[], p_else text)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT coalesce('CASE ' || p_key
               || string_agg(format(' WHEN %s THEN %s', i, x), '' ORDER BY i)
               || ' ELSE ' || p_else || ' END', p_else)
      FROM unnest(p_exprs) WITH ORDINALITY AS u(x, i)
$$;
COMMENT ON FUNCTION dwa._case_sql(text, text[], text) IS
    'SQL choosing one of several expressions by number';

-- _expansion: plan the distinct steps definitions of one INSERT into the
-- step rows each of their tasks gets, and compile the templates of their
-- root steps into SQL for _tasks_inserted.
--
-- p_defs come in the order of their first task, so that the error raised
-- is the first invalid task's.  rows: one object per step of each
-- definition (def_no: its position in p_defs), for jsonb_to_recordset;
-- literal values are wrapped in an array, since JSON null would read as
-- NULL.  mode says what a step becomes when its task is inserted:
--   wait     waiting: it has dependencies
--   payload  ready, its input the task's payload
--   input    ready, its input the literal val, or template tmpl of val_sql
--   each     forEach, running: its elements are the array val (or tmpl),
--            their input the literal einput, template etmpl of item_sql,
--            or the element itself
--   slow     waiting, left to _make_ready: a forEach as written that is no
--            non-empty array, or more distinct templates than one
--            statement takes
-- Where a template has no value on a row (miss_sql, item_miss_sql), the
-- step waits too, and _make_ready fails it as it fails any step.
CREATE OR REPLACE FUNCTION dwa._expansion(p_defs jsonb[],
    OUT rows jsonb, OUT val_sql text, OUT miss_sql text,
    OUT item_sql text, OUT item_miss_sql text, OUT has_each boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    -- What templates of root steps see (forEach elements also item and
    -- index), by their names in the statement of _tasks_inserted.
    vars constant text[] := ARRAY['t.payload',
        'jsonb_build_object(''id'', t.id, ''type'', t.type)'];
    evars constant text[] := vars || ARRAY['e.v', '(e.i - 1)::integer'];
    max_sql constant integer := 64;
    k integer;
    j integer;
    plan jsonb;
    r record;
    e jsonb;
    st jsonb;
    mode text;
    c record;
    acc jsonb[] := '{}';
    vx text[] := '{}';
    vm text[] := '{}';
    ix text[] := '{}';
    im text[] := '{}';
BEGIN
    has_each := false;
    FOR k IN 1 .. coalesce(cardinality(p_defs), 0) LOOP
        plan := dwa._plan(p_defs[k]);
        SELECT x ->> 'id' AS id, x ->> 'task' AS task INTO r
          FROM jsonb_array_elements(plan) x
         WHERE NOT EXISTS (SELECT 1 FROM dwa.task_types tt WHERE tt.name = x ->> 'task')
         ORDER BY (x ->> 'index')::integer LIMIT 1;
        IF FOUND THEN
            PERFORM dwa._reject(format('step "%s": unknown task type "%s"', r.id, r.task),
                'steps.task', 'register it in dwa.task_types or run ''dwa types list''');
        END IF;

        FOR e IN SELECT value FROM jsonb_array_elements(plan) LOOP
            st := jsonb_build_object('def_no', k, 'step_index', e -> 'index',
                'step_id', e -> 'id', 'task', e -> 'task',
                'remaining_deps', jsonb_array_length(e -> 'deps'),
                'depends_on', e -> 'deps', 'dependents', e -> 'dependents',
                'def', e - 'deps' - 'dependents' - 'task' - 'id' - 'index',
                'backend', e -> 'backend', 'attempts', e #> '{retry,attempts}',
                'timeout', dwa._duration(e -> 'timeout', 'timeout'),
                'fe_concurrency', e -> 'forEachConcurrency',
                'has_input', e -> 'hasInput');
            IF jsonb_array_length(e -> 'deps') > 0 THEN
                mode := 'wait';
            ELSIF jsonb_typeof(e -> 'forEach') IN ('string', 'array')
                OR (e ->> 'hasInput')::boolean THEN
                -- The forEach array, or else the input.
                mode := CASE WHEN jsonb_typeof(e -> 'forEach') IN ('string', 'array')
                             THEN 'each' ELSE 'input' END;
                c := dwa._template_sql(CASE mode WHEN 'each' THEN e -> 'forEach'
                                                 ELSE e -> 'input' END, vars);
                IF cardinality(c.lookups) = 0 THEN
                    st := st || jsonb_build_object('val', jsonb_build_array(
                        CASE mode WHEN 'each' THEN e -> 'forEach' ELSE e -> 'input' END));
                    IF mode = 'each' AND (jsonb_typeof(e -> 'forEach') <> 'array'
                        OR jsonb_array_length(e -> 'forEach') = 0) THEN
                        mode := 'slow';
                    END IF;
                ELSE
                    j := array_position(vx, c.expr);
                    IF j IS NULL AND cardinality(vx) < max_sql THEN
                        vx := vx || c.expr;
                        vm := vm || dwa._missing_sql(c.lookups);
                        j := cardinality(vx);
                    END IF;
                    mode := CASE WHEN j IS NULL THEN 'slow' ELSE mode END;
                    st := st || jsonb_build_object('tmpl', j);
                END IF;
                -- The input of each element.
                IF mode = 'each' AND (e ->> 'hasInput')::boolean THEN
                    c := dwa._template_sql(e -> 'input', evars);
                    IF cardinality(c.lookups) = 0 THEN
                        st := st || jsonb_build_object('einput',
                            jsonb_build_array(e -> 'input'));
                    ELSE
                        j := array_position(ix, c.expr);
                        IF j IS NULL AND cardinality(ix) < max_sql THEN
                            ix := ix || c.expr;
                            im := im || dwa._missing_sql(c.lookups);
                            j := cardinality(ix);
                        END IF;
                        mode := CASE WHEN j IS NULL THEN 'slow' ELSE mode END;
                        st := st || jsonb_build_object('etmpl', j);
                    END IF;
                END IF;
                has_each := has_each OR mode = 'each';
            ELSE
                mode := 'payload';
            END IF;
            acc := acc || (st || jsonb_build_object('mode', mode));
        END LOOP;
    END LOOP;
    rows := to_jsonb(acc);
    val_sql := dwa._case_sql('p.tmpl', vx, 'NULL::jsonb');
    miss_sql := dwa._case_sql('p.tmpl', vm, 'false');
    item_sql := dwa._case_sql('t.etmpl', ix, 'NULL::jsonb');
    item_miss_sql := dwa._case_sql('t.etmpl', im, 'false');
END
$$;
COMMENT ON FUNCTION dwa._expansion(jsonb[]) IS
    'Plan the distinct steps definitions of one INSERT into step rows; root templates as SQL';

-- _expand: superseded by the set-wise expansion in _tasks_inserted.
DROP FUNCTION IF EXISTS dwa._expand(dwa.tasks);

-- _tasks_inserted: AFTER INSERT ... FOR EACH STATEMENT on dwa.tasks.
-- work_mem: the step rows of an INSERT are sorted in one statement (a
-- forEach over 100,000 elements or 100,000 tasks: about 20 MB), which at
-- the default 4 MB spilled to disk.
CREATE OR REPLACE FUNCTION dwa._tasks_inserted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    r record;
    v_x record;
    v_defs jsonb[];
    v_src text;
    v_join text;
    v_each text := '';
    v_item text;
    v_slow_tasks bigint[];
    v_slow_steps integer[];
    v_id bigint;
    v_broken jsonb;         -- a row breaking the first rule broken, or NULL
    v_rule integer;         -- that rule
    v_fx boolean;           -- some row has a retry policy or effects
    v_multi boolean;        -- some row has steps
    v_pend boolean;         -- some row has onPending effects
    v_limit bigint := coalesce(nullif(current_setting('dwa.max_payload_bytes', true), '')::bigint,
        1048576);
BEGIN
    -- One pass over the new rows finds the first rule broken (the rules
    -- in order, over all rows) and what the rows need further on (policies
    -- and effects to check, steps definitions, onPending effects), then
    -- the unknown types among the distinct ones: bulk submissions of
    -- 100,000 rows pay two scans, not six, and a single row four
    -- statements, not seven.
    SELECT (array_agg(jsonb_build_object('rule', x.rule, 'type', x.type, 'queue', x.queue,
                                         'size', x.size) ORDER BY x.rule)
                FILTER (WHERE x.rule IS NOT NULL))[1],
           coalesce(bool_or(x.fx), false), coalesce(bool_or(x.multi), false),
           coalesce(bool_or(x.pend), false)
      INTO v_broken, v_fx, v_multi, v_pend
      FROM (SELECT CASE
                   WHEN jsonb_typeof(n.payload) <> 'object' THEN 1
                   WHEN pg_column_size(n.payload) > v_limit THEN 2
                   WHEN n.status <> 'queued' OR n.result IS NOT NULL OR n.error IS NOT NULL
                     OR n.steps_done <> 0 OR n.progress <> 0
                     OR n.steps_total <> CASE WHEN jsonb_typeof(n.steps) = 'array'
                        THEN greatest(jsonb_array_length(n.steps), 1) ELSE 1 END
                     OR n.started_at IS NOT NULL OR n.finished_at IS NOT NULL THEN 3
                   WHEN n.type = '' OR n.queue = '' OR n.type ~ '[[:cntrl:]]' THEN 4
                   WHEN n.timeout <= interval '0' THEN 5
                   END AS rule,
                   n.type, n.queue, pg_column_size(n.payload) AS size,
                   n.retry IS NOT NULL OR n.on_pending IS NOT NULL
                     OR n.on_progress IS NOT NULL OR n.on_success IS NOT NULL
                     OR n.on_error IS NOT NULL AS fx,
                   n.steps IS NOT NULL AS multi,
                   n.on_pending IS NOT NULL AS pend
              FROM new_tasks n) x;
    IF v_broken IS NOT NULL THEN
        v_rule := (v_broken ->> 'rule')::integer;
        IF v_rule = 1 THEN
            PERFORM dwa._reject('payload: must be a JSON object', 'payload');
        ELSIF v_rule = 2 THEN
            PERFORM dwa._reject(format('payload: %s bytes, over the limit of %s bytes',
                v_broken ->> 'size', v_limit), 'payload',
                'pass a reference (a URL or a path) instead, or raise dwa.max_payload_bytes');
        ELSIF v_rule = 3 THEN
            PERFORM dwa._reject('status, progress, result, error and timestamps are set by DWA, not on INSERT',
                'status');
        ELSIF v_rule = 4 THEN
            PERFORM dwa._reject(CASE WHEN v_broken ->> 'type' = ''
                                          OR v_broken ->> 'type' ~ '[[:cntrl:]]'
                THEN 'type: must be a non-empty name' ELSE 'queue: must be a non-empty name' END,
                CASE WHEN v_broken ->> 'queue' = '' THEN 'queue' ELSE 'type' END);
        END IF;
        PERFORM dwa._reject('timeout: must be greater than 0', 'timeout');
    END IF;

    SELECT d.type INTO r
      FROM (SELECT DISTINCT n.type FROM new_tasks n WHERE n.steps IS NULL) d
     WHERE NOT EXISTS (SELECT 1 FROM dwa.task_types tt WHERE tt.name = d.type)
     LIMIT 1;
    IF FOUND THEN
        PERFORM dwa._reject(format('type: unknown task type "%s"', r.type), 'type',
            'register it in dwa.task_types, or give the task "steps" of registered types');
    END IF;

    -- Policies and effects: each distinct combination once, in task order.
    IF v_fx THEN
        FOR r IN SELECT n.retry, n.on_pending, n.on_progress, n.on_success, n.on_error
                   FROM new_tasks n
                  WHERE n.retry IS NOT NULL OR n.on_pending IS NOT NULL
                     OR n.on_progress IS NOT NULL OR n.on_success IS NOT NULL
                     OR n.on_error IS NOT NULL
                  GROUP BY 1, 2, 3, 4, 5
                  ORDER BY min(n.id)
        LOOP
            PERFORM dwa._check_retry(r.retry, '');
            PERFORM dwa._check_effects(r.on_pending, 'onPending');
            PERFORM dwa._check_effects(r.on_progress, 'onProgress');
            PERFORM dwa._check_effects(r.on_success, 'onSuccess');
            PERFORM dwa._check_effects(r.on_error, 'onError');
        END LOOP;
    END IF;

    -- Steps definitions, each planned once, in the order of their first
    -- task: a bulk submission shares a few pipelines or DAGs.
    IF v_multi THEN
        v_defs := ARRAY(SELECT d.steps
                          FROM (SELECT n.steps, min(n.id) AS first FROM new_tasks n
                                 WHERE n.steps IS NOT NULL GROUP BY n.steps) d
                         ORDER BY d.first);
    END IF;
    IF cardinality(v_defs) > 0 THEN
        v_x := dwa._expansion(v_defs);
    END IF;

    WITH s AS (
        INSERT INTO dwa.steps (task_id, step_index, step_id, task, status, queue,
            priority, backend, run_after, input, max_attempts, timeout)
        SELECT n.id, 0, '0', n.type, 'ready', n.queue, n.priority,
               coalesce(n.backend, tt.backend), coalesce(n.run_at, now()), n.payload,
               coalesce((n.retry ->> 'attempts')::integer,
                        (tt.retry ->> 'attempts')::integer, 3),
               coalesce(n.timeout, tt.timeout)
          FROM new_tasks n
          JOIN dwa.task_types tt ON tt.name = n.type
         WHERE n.steps IS NULL
        RETURNING id, priority, run_after, task, queue, backend
    )
    INSERT INTO dwa.ready (step_id, priority, run_after, task, queue, backend)
    SELECT s.id, s.priority, s.run_after, s.task, s.queue, s.backend FROM s;

    -- onPending before any step runs: a multi-step task may finish during
    -- its expansion (an empty forEach), and its onSuccess comes after.
    IF v_pend THEN
        FOR r IN SELECT n.id FROM new_tasks n WHERE n.on_pending IS NOT NULL ORDER BY n.id LOOP
            PERFORM dwa._fire(r.id, 'onPending');
        END LOOP;
    END IF;

    IF cardinality(v_defs) > 0 THEN
        -- Each step of each task with its definition's row (see _expansion),
        -- the value of its input or forEach, and whether it starts at once
        -- (ok): its templates have values, its forEach gives elements.
        v_src := $f$
            SELECT t.*,
                   CASE WHEN t.mode = 'payload' THEN true
                        WHEN t.mode NOT IN ('input', 'each') OR t.miss THEN false
                        WHEN t.mode = 'input' THEN true
                        WHEN jsonb_typeof(t.val) IS DISTINCT FROM 'array' THEN false
                        WHEN jsonb_array_length(t.val) = 0 THEN false
                        WHEN t.etmpl IS NULL THEN true
                        ELSE NOT EXISTS (SELECT FROM jsonb_array_elements(t.val)
                                             WITH ORDINALITY AS e(v, i) WHERE %3$s)
                        END AS ok
              FROM (SELECT t.id, t.type, t.payload, t.queue, t.priority, t.run_at,
                           p.step_index, p.step_id, p.task, p.remaining_deps, p.depends_on,
                           p.dependents, p.def, p.mode, p.has_input, p.fe_concurrency,
                           p.einput, p.etmpl,
                           coalesce(p.backend, t.backend, tt.backend) AS backend,
                           coalesce(p.attempts, (t.retry ->> 'attempts')::integer,
                                    (tt.retry ->> 'attempts')::integer, 3) AS max_attempts,
                           coalesce(p.timeout, t.timeout, tt.timeout) AS timeout,
                           CASE WHEN p.tmpl IS NULL THEN p.val -> 0 ELSE %1$s END AS val,
                           %2$s AS miss
                      FROM new_tasks t
                      JOIN %4$s
                      JOIN jsonb_to_recordset($1) AS p(def_no integer, step_index integer,
                           step_id text, task text, remaining_deps integer,
                           depends_on integer[], dependents integer[], def jsonb,
                           backend text, attempts integer, timeout interval,
                           fe_concurrency integer, has_input boolean, mode text, val jsonb,
                           tmpl integer, einput jsonb, etmpl integer)
                        ON p.def_no = d.no
                      JOIN dwa.task_types tt ON tt.name = p.task
                     WHERE %5$s
                    OFFSET 0) t
            OFFSET 0$f$;
        -- One definition (the common bulk case): no need to compare them.
        v_join := CASE WHEN cardinality(v_defs) = 1
            THEN '(VALUES (1)) AS d(no) ON t.steps IS NOT NULL'
            ELSE 'unnest($2::jsonb[]) WITH ORDINALITY AS d(steps, no) ON d.steps = t.steps' END;
        -- An element's input (e: the element), rows made or kept in its
        -- step's input (a chunked forEach).
        v_item := format($f$CASE WHEN NOT t.has_input THEN e.v
                                WHEN t.etmpl IS NULL THEN t.einput -> 0 ELSE %s END$f$,
                         v_x.item_sql);
        IF v_x.has_each THEN
            -- forEach elements, as _make_ready creates them.
            v_each := format($f$
                    UNION ALL
                    SELECT t.id, t.step_index, (e.i - 1)::integer, t.step_id, t.task,
                           CASE WHEN e.i <= coalesce(t.fe_concurrency,
                                                     jsonb_array_length(t.val))
                                THEN 'ready' ELSE 'waiting' END,
                           t.queue, t.priority, t.backend, greatest(now(), t.run_at),
                           0, '{}', '{}', NULL,
                           %1$s,
                           t.max_attempts, t.timeout, NULL, NULL, NULL, NULL
                      FROM (%2$s) t,
                           jsonb_array_elements(t.val) WITH ORDINALITY AS e(v, i)
                     WHERE t.ok AND (e.i <= dwa._fe_chunk() OR t.fe_concurrency IS NOT NULL)$f$,
                v_item, format(v_src, v_x.val_sql, v_x.miss_sql, v_x.item_miss_sql,
                    v_join, 'p.mode = ''each'''));
        END IF;
        -- All the step rows in one statement, numbered in task order as
        -- submissions one at a time number them: a task's steps in order,
        -- then its forEach elements by element index (the elements of two
        -- forEach steps alternate).  The sort compares columns at the head
        -- of its rows: a key computed for it (which kind of row) sat after
        -- the JSON values, and reading it back was 5 % of a forEach's
        -- submission.  Roots that are not ok are returned.
        EXECUTE format($f$
            WITH ins AS (
                INSERT INTO dwa.steps (task_id, step_index, item_index, step_id, task,
                    status, queue, priority, backend, run_after, remaining_deps,
                    depends_on, dependents, def, input, max_attempts, timeout,
                    fe_concurrency, fe_total, fe_remaining, started_at, fe_next)
                SELECT task_id, step_index, item_index, step_id, task, status, queue,
                       priority, backend, run_after, remaining_deps, depends_on,
                       dependents, def, input, max_attempts, timeout, fe_concurrency,
                       fe_total, fe_total, started_at, fe_next
                  FROM (
                    SELECT t.id AS task_id, t.step_index, NULL::integer AS item_index,
                           t.step_id, t.task,
                           CASE WHEN NOT t.ok THEN 'waiting' WHEN t.mode = 'each'
                                THEN 'running' ELSE 'ready' END AS status,
                           t.queue, t.priority, t.backend,
                           CASE WHEN t.ok AND t.mode <> 'each'
                                THEN greatest(now(), t.run_at)
                                ELSE coalesce(t.run_at, now()) END AS run_after,
                           t.remaining_deps, t.depends_on, t.dependents, t.def,
                           CASE WHEN NOT t.ok THEN NULL WHEN t.mode = 'payload'
                                THEN t.payload WHEN t.mode = 'input' THEN t.val
                                WHEN t.mode = 'each' AND t.fe_concurrency IS NULL
                                     AND jsonb_array_length(t.val) > dwa._fe_chunk()
                                THEN CASE WHEN NOT t.has_input THEN t.val
                                          ELSE (SELECT jsonb_agg(%3$s ORDER BY e.i)
                                                  FROM jsonb_array_elements(t.val)
                                                       WITH ORDINALITY AS e(v, i)) END
                                END AS input,
                           t.max_attempts, t.timeout, t.fe_concurrency,
                           CASE WHEN t.ok AND t.mode = 'each'
                                THEN jsonb_array_length(t.val) END AS fe_total,
                           CASE WHEN t.ok AND t.mode = 'each'
                                THEN now() END AS started_at,
                           CASE WHEN t.ok AND t.mode = 'each'
                                THEN least(coalesce(t.fe_concurrency, dwa._fe_chunk()),
                                           jsonb_array_length(t.val)) END AS fe_next
                      FROM (%1$s) t%2$s
                  ) s
                 ORDER BY task_id, item_index NULLS FIRST, step_index
                RETURNING id, task_id, step_index, status, priority, run_after, task,
                          queue, backend, item_index IS NULL
                          AND status = 'waiting' AND remaining_deps = 0 AS slow
            ), rdy AS (
                INSERT INTO dwa.ready (step_id, priority, run_after, task, queue, backend)
                SELECT id, priority, run_after, task, queue, backend
                  FROM ins WHERE status = 'ready'
            )
            SELECT array_agg(task_id), array_agg(step_index) FROM ins WHERE slow$f$,
            format(v_src, v_x.val_sql, v_x.miss_sql, v_x.item_miss_sql, v_join, 'true'),
            v_each, v_item)
        INTO v_slow_tasks, v_slow_steps USING v_x.rows, v_defs;

        -- The roots left (templates without values, forEach arrays that
        -- are empty or none) go through _make_ready, task by task, with
        -- the roots after them: one submission at a time makes roots ready
        -- in order, and one that fails leaves the later ones skipped.  So
        -- later roots that started at once wait again, elements gone.
        FOR r IN SELECT x.task_id, min(x.step_index) AS k
                   FROM unnest(v_slow_tasks, v_slow_steps) AS x(task_id, step_index)
                  GROUP BY x.task_id ORDER BY x.task_id
        LOOP
            PERFORM dwa._unready(ARRAY(SELECT s.id FROM dwa.steps s
                                        WHERE s.task_id = r.task_id AND s.step_index > r.k
                                          AND s.status = 'ready'));
            DELETE FROM dwa.steps
             WHERE task_id = r.task_id AND step_index > r.k AND item_index IS NOT NULL;
            UPDATE dwa.steps s
               SET status = 'waiting', input = NULL, fe_total = NULL, fe_remaining = NULL,
                   fe_next = NULL, started_at = NULL, run_after = coalesce(t.run_at, now())
              FROM dwa.tasks t
             WHERE t.id = r.task_id AND s.task_id = r.task_id AND s.step_index > r.k
               AND s.item_index IS NULL AND s.remaining_deps = 0 AND s.status <> 'waiting';
            FOR v_id IN SELECT id FROM dwa.steps
                         WHERE task_id = r.task_id AND step_index >= r.k
                           AND item_index IS NULL AND remaining_deps = 0
                         ORDER BY step_index
            LOOP
                PERFORM dwa._make_ready(v_id);
            END LOOP;
        END LOOP;
    END IF;

    PERFORM pg_notify('dwa_wake', '');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION dwa._tasks_inserted() IS
    'Validate inserted tasks, fire their onPending and create their steps, set-wise; one wake-up NOTIFY per statement';

-- _tasks_steps_total: BEFORE INSERT, only for rows with steps: set
-- steps_total to the number of steps, as a default would; cheaper than
-- updating the rows afterwards.  A value set on INSERT is left for
-- _tasks_inserted to reject.  It reads nothing but the row.
CREATE OR REPLACE FUNCTION dwa._tasks_steps_total()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.steps_total = 1 AND jsonb_typeof(NEW.steps) = 'array' THEN
        NEW.steps_total := greatest(jsonb_array_length(NEW.steps), 1);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION dwa._tasks_steps_total() IS
    'Count the steps of an inserted multi-step task into steps_total';

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

-- _tasks_deleted: AFTER DELETE ... FOR EACH STATEMENT: steps (with their
-- ready and runs rows), UI events and finished deliveries go with tasks;
-- deliveries still pending or under way are left to be delivered.
CREATE OR REPLACE FUNCTION dwa._tasks_deleted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tasks bigint[];
BEGIN
    -- By arrays of ids, never joins with the transition table: a plan made
    -- while a queue table looked empty could walk it whole for each row.
    v_tasks := ARRAY(SELECT o.id FROM old_tasks o);
    -- Ready rows first: a claim locks a step's ready row before the step.
    PERFORM dwa._unready(ARRAY(SELECT s.id FROM dwa.steps s
                                WHERE s.task_id = ANY (v_tasks) AND s.status = 'ready'));
    DELETE FROM dwa.steps s WHERE s.task_id = ANY (v_tasks);
    DELETE FROM dwa.runs r WHERE r.task_id = ANY (v_tasks);
    DELETE FROM dwa.events e WHERE e.task_id = ANY (v_tasks);
    -- Not "status IN ('delivered', 'dead')": that would imply the predicate
    -- of outbox_finished_idx, and statistics of an empty outbox could plan
    -- the delete as a walk of all of it.
    DELETE FROM dwa.outbox x
     WHERE x.task_id = ANY (v_tasks) AND x.status NOT IN ('pending', 'delivering');
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
DROP TRIGGER IF EXISTS tasks_steps_total ON dwa.tasks;
CREATE TRIGGER tasks_steps_total BEFORE INSERT ON dwa.tasks
    FOR EACH ROW WHEN (NEW.steps IS NOT NULL)
    EXECUTE FUNCTION dwa._tasks_steps_total();
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
    msg text;
    v_id bigint;
    v_run_at timestamptz;
    v_timeout interval;
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
    IF p_def ? 'timeout' THEN
        -- Over 0 is checked with INSERT; here the field joins the message.
        BEGIN
            v_timeout := dwa._duration(p_def -> 'timeout', 'timeout');
        EXCEPTION WHEN invalid_parameter_value THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
            PERFORM dwa._reject(msg, 'timeout');
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
        v_timeout,
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
