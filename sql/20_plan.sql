-- 20_plan.sql: validation of task definitions at submission.
--
-- Every rule of SPEC section 2 lives here.  A violation raises SQLSTATE
-- 22023 with a message naming the step or field; since it raises inside
-- the submitting statement, nothing of the submission is stored.

-- _reject: raise a validation error for one field.
CREATE OR REPLACE FUNCTION dwa._reject(p_message text, p_field text,
    p_hint text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_hint IS NULL THEN
        RAISE EXCEPTION '%', p_message
            USING ERRCODE = '22023', DETAIL = 'field: ' || p_field;
    END IF;
    RAISE EXCEPTION '%', p_message
        USING ERRCODE = '22023', DETAIL = 'field: ' || p_field, HINT = p_hint;
END
$$;
COMMENT ON FUNCTION dwa._reject(text, text, text) IS
    'Raise a submission error (22023) naming the offending field';

-- _check_timeout: parse a task's or a step's timeout, which must be a
-- duration over 0; errors name the field.
CREATE OR REPLACE FUNCTION dwa._check_timeout(p_value jsonb, p_label text, p_field text)
RETURNS interval
LANGUAGE plpgsql
AS $$
DECLARE
    v interval;
    msg text;
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
        RETURN NULL;
    END IF;
    BEGIN
        v := dwa._duration(p_value, p_label);
    EXCEPTION WHEN invalid_parameter_value THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        PERFORM dwa._reject(msg, p_field);
    END;
    IF v <= interval '0' THEN
        PERFORM dwa._reject(p_label || ': must be greater than 0', p_field);
    END IF;
    RETURN v;
END
$$;
COMMENT ON FUNCTION dwa._check_timeout(jsonb, text, text) IS
    'Parse a timeout: a duration over 0; errors name the field';

-- _check_retry: validate a retry policy object.
CREATE OR REPLACE FUNCTION dwa._check_retry(p_retry jsonb, p_where text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    k text;
    b jsonb;
BEGIN
    IF p_retry IS NULL OR jsonb_typeof(p_retry) = 'null' THEN
        RETURN;
    END IF;
    IF jsonb_typeof(p_retry) <> 'object' THEN
        PERFORM dwa._reject(p_where || 'retry: must be an object', p_where || 'retry');
    END IF;
    FOR k IN SELECT jsonb_object_keys(p_retry) LOOP
        IF k NOT IN ('attempts', 'backoff') THEN
            PERFORM dwa._reject(format('%sretry: unknown field "%s"', p_where, k),
                p_where || 'retry.' || k, 'use "attempts" and "backoff"');
        END IF;
    END LOOP;
    IF p_retry ? 'attempts' AND (jsonb_typeof(p_retry -> 'attempts') <> 'number'
        OR (p_retry ->> 'attempts')::numeric <> trunc((p_retry ->> 'attempts')::numeric)
        OR (p_retry ->> 'attempts')::numeric < 1
        OR (p_retry ->> 'attempts')::numeric > 1000) THEN
        PERFORM dwa._reject(p_where || 'retry.attempts: must be an integer from 1 to 1000',
            p_where || 'retry.attempts');
    END IF;
    b := p_retry -> 'backoff';
    IF b IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(b) <> 'object' THEN
        PERFORM dwa._reject(p_where || 'retry.backoff: must be an object',
            p_where || 'retry.backoff');
    END IF;
    FOR k IN SELECT jsonb_object_keys(b) LOOP
        IF k NOT IN ('initialMs', 'factor', 'maxMs') THEN
            PERFORM dwa._reject(format('%sretry.backoff: unknown field "%s"', p_where, k),
                p_where || 'retry.backoff.' || k, 'use "initialMs", "factor" and "maxMs"');
        END IF;
        IF jsonb_typeof(b -> k) <> 'number' OR (b ->> k)::numeric < 0 THEN
            PERFORM dwa._reject(format('%sretry.backoff.%s: must be a number >= 0', p_where, k),
                p_where || 'retry.backoff.' || k);
        END IF;
    END LOOP;
    IF (b ->> 'factor')::numeric < 1 THEN
        PERFORM dwa._reject(p_where || 'retry.backoff.factor: must be at least 1',
            p_where || 'retry.backoff.factor');
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._check_retry(jsonb, text) IS
    'Validate a retry policy: attempts, backoff.initialMs/factor/maxMs';

-- _check_effects: validate one lifecycle effect list (onSuccess, ...).
--
-- The fields each $event needs, its retry policy and timeout, and the
-- roots of its templates (effects see payload, task, result, error and
-- progress).  An enqueued task's own steps and effects are checked when
-- it is submitted, since they are rendered for it, not for this task.
CREATE OR REPLACE FUNCTION dwa._check_effects(p_effects jsonb, p_field text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    e jsonb;
    n integer := 0;
    ev text;
    where_ text;
    expr text;
    root text;
BEGIN
    IF p_effects IS NULL OR jsonb_typeof(p_effects) = 'null' THEN
        RETURN;
    END IF;
    IF jsonb_typeof(p_effects) <> 'array' THEN
        PERFORM dwa._reject(p_field || ': must be an array of effects', p_field);
    END IF;
    FOR e IN SELECT value FROM jsonb_array_elements(p_effects) LOOP
        where_ := format('%s[%s]', p_field, n);
        IF jsonb_typeof(e) <> 'object' OR NOT e ? '$event'
            OR jsonb_typeof(e -> '$event') <> 'string' THEN
            PERFORM dwa._reject(where_ || ': an effect is an object with a "$event" string',
                where_);
        END IF;
        ev := e ->> '$event';
        IF ev NOT IN ('toast', 'emit', 'redirect', 'webhook', 'notify',
            'invalidate', 'enqueue') THEN
            PERFORM dwa._reject(format('%s: unknown $event "%s"', where_, ev),
                where_ || '.$event',
                'use toast, emit, redirect, webhook, notify, invalidate or enqueue');
        END IF;
        IF ev = 'toast' AND jsonb_typeof(e -> 'text') IS DISTINCT FROM 'string' THEN
            PERFORM dwa._reject(where_ || ': toast needs a "text" string', where_ || '.text');
        END IF;
        IF ev = 'emit' AND jsonb_typeof(e -> 'event') IS DISTINCT FROM 'string' THEN
            PERFORM dwa._reject(where_ || ': emit needs an "event" string', where_ || '.event');
        END IF;
        IF ev = 'redirect' AND jsonb_typeof(e -> 'url') IS DISTINCT FROM 'string' THEN
            PERFORM dwa._reject(where_ || ': redirect needs a "url" string', where_ || '.url');
        END IF;
        IF ev = 'webhook' AND (NOT e ? 'url' OR jsonb_typeof(e -> 'url') <> 'string') THEN
            PERFORM dwa._reject(where_ || ': webhook needs a "url" string', where_ || '.url');
        END IF;
        IF ev = 'notify' AND coalesce(e ->> 'channel', '') NOT IN ('slack', 'discord', 'email') THEN
            PERFORM dwa._reject(where_ || ': notify needs "channel": slack, discord or email',
                where_ || '.channel');
        END IF;
        IF ev = 'notify' AND jsonb_typeof(e -> 'message') IS DISTINCT FROM 'string' THEN
            PERFORM dwa._reject(where_ || ': notify needs a "message" string',
                where_ || '.message');
        END IF;
        IF ev = 'notify' AND e ->> 'channel' = 'email'
            AND jsonb_typeof(e -> 'to') IS DISTINCT FROM 'string' THEN
            PERFORM dwa._reject(where_ || ': an email notify needs a "to" string',
                where_ || '.to', 'give the recipient''s address, e.g. "ops@example.com"');
        END IF;
        IF ev = 'notify' AND e ? 'subject' AND jsonb_typeof(e -> 'subject') <> 'string' THEN
            PERFORM dwa._reject(where_ || ': subject must be a string', where_ || '.subject');
        END IF;
        IF ev = 'invalidate' AND (NOT e ? 'path' OR jsonb_typeof(e -> 'path') <> 'string') THEN
            PERFORM dwa._reject(where_ || ': invalidate needs a "path" string', where_ || '.path');
        END IF;
        IF ev = 'enqueue' AND (NOT e ? 'task' OR jsonb_typeof(e -> 'task') <> 'object') THEN
            PERFORM dwa._reject(where_ || ': enqueue needs a "task" object', where_ || '.task');
        END IF;
        IF ev = 'enqueue' AND jsonb_typeof(e #> '{task,type}') IS DISTINCT FROM 'string' THEN
            PERFORM dwa._reject(where_ || ': enqueue needs a "task" object with a "type" string',
                where_ || '.task.type');
        END IF;
        IF ev IN ('webhook', 'invalidate') AND e ? 'method'
            AND jsonb_typeof(e -> 'method') <> 'string' THEN
            PERFORM dwa._reject(where_ || ': method must be a string', where_ || '.method');
        END IF;
        IF ev = 'webhook' AND e ? 'headers' AND jsonb_typeof(e -> 'headers') <> 'object' THEN
            PERFORM dwa._reject(where_ || ': headers must be an object of strings',
                where_ || '.headers');
        END IF;
        IF ev = 'webhook' THEN
            PERFORM dwa._duration(e -> 'timeout', where_ || ': timeout');
        END IF;
        IF ev IN ('webhook', 'notify', 'invalidate') THEN
            PERFORM dwa._check_retry(e -> 'retry', where_ || ': ');
        END IF;
        IF strpos(e::text, '{{') > 0 THEN
            FOR expr IN SELECT dwa._template_exprs(dwa._effect_templated(e)) LOOP
                root := split_part(expr, '.', 1);
                IF root NOT IN ('payload', 'task', 'result', 'error', 'progress') THEN
                    PERFORM dwa._reject(format('%s: template "{{%s}}" has an unknown root "%s"',
                        where_, expr, root), where_,
                        'templates in effects start with payload, task, result, error or progress');
                END IF;
            END LOOP;
        END IF;
        n := n + 1;
    END LOOP;
END
$$;
COMMENT ON FUNCTION dwa._check_effects(jsonb, text) IS
    'Validate a list of lifecycle effects: known $event, required fields, retry, template roots';

-- _plan: validate a steps array and normalise it.
--
-- Returns one object per step: index, id, task, deps (indexes), dependents,
-- refs (indexes of steps whose outputs its templates read) and the
-- optional input, forEach, forEachConcurrency, retry, timeout, backend.
CREATE OR REPLACE FUNCTION dwa._plan(p_steps jsonb)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
    i integer;
    j integer;
    st jsonb;
    k text;
    d jsonb;
    ids text[] := '{}';
    deps jsonb := '[]';
    dl integer[];
    any_deps boolean := false;
    indeg integer[];
    queue integer[];
    seen integer := 0;
    label text;
    expr text;
    root text;
    target text;
    refs integer[];
    anc integer[];
    frontier integer[];
    plan jsonb[] := '{}';
    sa jsonb[];
    deps_a jsonb[] := '{}';
    dependents jsonb;
BEGIN
    IF jsonb_typeof(p_steps) <> 'array' THEN
        PERFORM dwa._reject('steps: must be an array', 'steps');
    END IF;
    n := jsonb_array_length(p_steps);
    -- One element each: indexing a large (toasted) jsonb would detoast
    -- the whole array at every access.
    sa := ARRAY(SELECT value FROM jsonb_array_elements(p_steps));
    IF n = 0 THEN
        PERFORM dwa._reject('steps: must not be empty (omit "steps" for a single-step task)',
            'steps');
    END IF;
    IF n > 10000 THEN
        PERFORM dwa._reject(format('steps: %s steps, over the limit of 10000', n), 'steps');
    END IF;

    -- Shapes and ids.
    FOR i IN 0 .. n - 1 LOOP
        st := sa[i + 1];
        label := format('steps[%s]', i);
        IF jsonb_typeof(st) <> 'object' THEN
            PERFORM dwa._reject(label || ': must be an object', label);
        END IF;
        IF st ? 'id' THEN
            IF jsonb_typeof(st -> 'id') <> 'string' OR st ->> 'id' = '' THEN
                PERFORM dwa._reject(label || ': id must be a non-empty string', label || '.id');
            END IF;
            IF st ->> 'id' ~ '[.{}\s]' THEN
                PERFORM dwa._reject(format('%s: id "%s" must not contain dots, braces or spaces',
                    label, st ->> 'id'), label || '.id');
            END IF;
            IF st ->> 'id' ~ '^[0-9]+$' AND st ->> 'id' <> i::text THEN
                PERFORM dwa._reject(format('%s: id "%s" would shadow the index of another step',
                    label, st ->> 'id'), label || '.id', 'use a name that is not a number');
            END IF;
            ids := ids || (st ->> 'id');
        ELSE
            ids := ids || i::text;
        END IF;
        label := format('step "%s"', ids[i + 1]);
        FOR k IN SELECT jsonb_object_keys(st) LOOP
            IF k NOT IN ('id', 'task', 'input', 'dependsOn', 'forEach',
                'forEachConcurrency', 'retry', 'timeout', 'backend', 'description') THEN
                PERFORM dwa._reject(format('%s: unknown field "%s"', label, k),
                    format('steps[%s].%s', i, k));
            END IF;
        END LOOP;
        IF NOT st ? 'task' THEN
            PERFORM dwa._reject(label || ': missing "task"', format('steps[%s].task', i),
                'name a registered task type, e.g. "echo"');
        END IF;
        IF jsonb_typeof(st -> 'task') <> 'string' OR st ->> 'task' = '' THEN
            PERFORM dwa._reject(label || ': task must be a non-empty string',
                format('steps[%s].task', i));
        END IF;
        IF st ? 'description' AND jsonb_typeof(st -> 'description') <> 'string' THEN
            PERFORM dwa._reject(label || ': description must be a string',
                format('steps[%s].description', i));
        END IF;
        IF st ? 'backend' AND jsonb_typeof(st -> 'backend') <> 'string' THEN
            PERFORM dwa._reject(label || ': backend must be a string',
                format('steps[%s].backend', i));
        END IF;
        IF st ? 'forEach' AND jsonb_typeof(st -> 'forEach') NOT IN ('string', 'array') THEN
            PERFORM dwa._reject(label || ': forEach must be a template string or an array',
                format('steps[%s].forEach', i));
        END IF;
        IF st ? 'forEachConcurrency' THEN
            IF NOT st ? 'forEach' THEN
                PERFORM dwa._reject(label || ': forEachConcurrency without forEach',
                    format('steps[%s].forEachConcurrency', i));
            END IF;
            IF jsonb_typeof(st -> 'forEachConcurrency') <> 'number'
                OR (st ->> 'forEachConcurrency')::numeric
                    <> trunc((st ->> 'forEachConcurrency')::numeric) THEN
                PERFORM dwa._reject(label || ': forEachConcurrency must be an integer',
                    format('steps[%s].forEachConcurrency', i));
            END IF;
            IF (st ->> 'forEachConcurrency')::numeric < 1 THEN
                PERFORM dwa._reject(label || ': forEachConcurrency must be at least 1',
                    format('steps[%s].forEachConcurrency', i));
            END IF;
        END IF;
        PERFORM dwa._check_retry(st -> 'retry', label || ': ');
        PERFORM dwa._check_timeout(st -> 'timeout', label || ': timeout',
            format('steps[%s].timeout', i));
        IF st ? 'dependsOn' THEN
            any_deps := true;
            IF jsonb_typeof(st -> 'dependsOn') <> 'array' THEN
                PERFORM dwa._reject(label || ': dependsOn must be an array of step ids',
                    format('steps[%s].dependsOn', i));
            END IF;
        END IF;
    END LOOP;

    SELECT x INTO k FROM unnest(ids) x GROUP BY x HAVING count(*) > 1 LIMIT 1;
    IF FOUND THEN
        PERFORM dwa._reject(format('step "%s": duplicate step id', k), 'steps');
    END IF;

    -- Dependencies: explicit (DAG) or implicit (pipeline).
    FOR i IN 0 .. n - 1 LOOP
        st := sa[i + 1];
        dl := '{}';
        IF any_deps THEN
            FOR d IN SELECT value FROM jsonb_array_elements(coalesce(st -> 'dependsOn', '[]'))
            LOOP
                IF jsonb_typeof(d) NOT IN ('string', 'number') THEN
                    PERFORM dwa._reject(format('step "%s": dependsOn entries must be step ids',
                        ids[i + 1]), format('steps[%s].dependsOn', i));
                END IF;
                j := array_position(ids, d #>> '{}') - 1;
                IF j IS NULL AND (d #>> '{}') ~ '^[0-9]+$'
                    AND (d #>> '{}')::numeric < n THEN
                    j := (d #>> '{}')::integer;
                END IF;
                IF j IS NULL THEN
                    PERFORM dwa._reject(format('step "%s": dependsOn names unknown step "%s"',
                        ids[i + 1], d #>> '{}'), format('steps[%s].dependsOn', i));
                END IF;
                IF NOT j = ANY (dl) THEN
                    dl := dl || j;
                END IF;
            END LOOP;
        ELSIF i > 0 THEN
            dl := ARRAY[i - 1];
        END IF;
        deps_a := deps_a || to_jsonb(dl);
    END LOOP;
    deps := to_jsonb(deps_a);

    -- Reverse edges, for Kahn's algorithm and for releasing dependents.
    dependents := (SELECT jsonb_agg(coalesce(x.l, '[]'::jsonb) ORDER BY g)
        FROM generate_series(0, n - 1) g
        LEFT JOIN (SELECT d.v::integer AS dep, jsonb_agg(e.i - 1 ORDER BY e.i) AS l
                     FROM jsonb_array_elements(deps) WITH ORDINALITY AS e(v, i),
                          jsonb_array_elements_text(e.v) AS d(v)
                    GROUP BY d.v::integer) x ON x.dep = g);

    -- Cycles: Kahn's algorithm; whatever cannot be ordered is on a cycle
    -- or downstream of one.
    indeg := array_fill(0, ARRAY[n]);
    FOR i IN 0 .. n - 1 LOOP
        indeg[i + 1] := jsonb_array_length(deps -> i);
    END LOOP;
    queue := ARRAY(SELECT g FROM generate_series(0, n - 1) g WHERE indeg[g + 1] = 0);
    WHILE coalesce(array_length(queue, 1), 0) > 0 LOOP
        i := queue[1];
        queue := queue[2:];
        seen := seen + 1;
        FOR j IN SELECT jsonb_array_elements_text(dependents -> i)::integer LOOP
            indeg[j + 1] := indeg[j + 1] - 1;
            IF indeg[j + 1] = 0 THEN
                queue := queue || j;
            END IF;
        END LOOP;
    END LOOP;
    IF seen < n THEN
        -- Peel off, repeatedly, the leftover steps that no leftover step
        -- depends on: they are downstream of the cycle, not on it.
        LOOP
            queue := ARRAY(SELECT g FROM generate_series(0, n - 1) g
                WHERE indeg[g + 1] > 0 AND NOT EXISTS (
                    SELECT 1 FROM jsonb_array_elements_text(dependents -> g) x
                     WHERE indeg[x::integer + 1] > 0));
            EXIT WHEN cardinality(queue) = 0;
            FOREACH j IN ARRAY queue LOOP
                indeg[j + 1] := 0;
            END LOOP;
        END LOOP;
        PERFORM dwa._reject(format('steps form a cycle: %s', (SELECT string_agg(
            format('"%s"', ids[g + 1]), ', ' ORDER BY g) FROM generate_series(0, n - 1) g
            WHERE indeg[g + 1] > 0)), 'steps.dependsOn');
    END IF;

    -- Templates: known roots; steps.X must name an ancestor.
    FOR i IN 0 .. n - 1 LOOP
        st := sa[i + 1];
        refs := '{}';
        anc := NULL;
        FOR expr IN SELECT dwa._template_exprs(jsonb_build_array(st -> 'input', st -> 'forEach'))
                     WHERE strpos(jsonb_build_array(st -> 'input', st -> 'forEach')::text, '{{') > 0
        LOOP
            root := split_part(expr, '.', 1);
            IF root IN ('payload', 'task') THEN
                CONTINUE;
            ELSIF root IN ('item', 'index') THEN
                IF NOT st ? 'forEach' THEN
                    PERFORM dwa._reject(format('step "%s": template "{{%s}}" is only available in a forEach step',
                        ids[i + 1], expr), format('steps[%s].input', i));
                END IF;
            ELSIF root = 'steps' THEN
                target := split_part(expr, '.', 2);
                j := array_position(ids, target) - 1;
                IF j IS NULL AND target ~ '^[0-9]+$' AND target::numeric < n THEN
                    j := target::integer;
                END IF;
                IF j IS NULL THEN
                    PERFORM dwa._reject(format('step "%s": template "{{%s}}" names unknown step "%s"',
                        ids[i + 1], expr, target), format('steps[%s].input', i));
                END IF;
                IF anc IS NULL THEN
                    anc := '{}';
                    frontier := ARRAY(SELECT jsonb_array_elements_text(deps -> i)::integer);
                    WHILE coalesce(array_length(frontier, 1), 0) > 0 LOOP
                        anc := anc || frontier;
                        frontier := ARRAY(SELECT DISTINCT x::integer
                            FROM unnest(frontier) f,
                                 jsonb_array_elements_text(deps -> f) x
                            WHERE NOT x::integer = ANY (anc));
                    END LOOP;
                END IF;
                IF NOT j = ANY (anc) THEN
                    PERFORM dwa._reject(format('step "%s": template "{{%s}}" reads step "%s", which is not one of its ancestors',
                        ids[i + 1], expr, ids[j + 1]), format('steps[%s].input', i),
                        format('add "%s" to the dependsOn of "%s"', ids[j + 1], ids[i + 1]));
                END IF;
                IF NOT j = ANY (refs) THEN
                    refs := refs || j;
                END IF;
            ELSIF root IN ('progress', 'error', 'result') THEN
                PERFORM dwa._reject(format('step "%s": template "{{%s}}" is only available in effects',
                    ids[i + 1], expr), format('steps[%s].input', i));
            ELSE
                PERFORM dwa._reject(format('step "%s": template "{{%s}}" has an unknown root "%s"',
                    ids[i + 1], expr, root), format('steps[%s].input', i),
                    'templates start with payload, steps, item, index or task');
            END IF;
        END LOOP;
        plan := plan || jsonb_build_object(
            'index', i, 'id', ids[i + 1], 'task', st -> 'task',
            'deps', deps -> i, 'dependents', dependents -> i, 'refs', to_jsonb(refs),
            'input', st -> 'input', 'hasInput', st ? 'input',
            'forEach', st -> 'forEach',
            'forEachConcurrency', st -> 'forEachConcurrency',
            'retry', st -> 'retry', 'timeout', st -> 'timeout',
            'backend', st -> 'backend');
    END LOOP;

    RETURN to_jsonb(plan);
END
$$;
COMMENT ON FUNCTION dwa._plan(jsonb) IS
    'Validate a steps array (ids, dependsOn, cycles, templates) and normalise it';
