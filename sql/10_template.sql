-- 10_template.sql: durations, JSON paths and {{templates}}.
--
-- A template is {{root.path}} with root one of payload, steps, item, index,
-- task, progress, error, result.  A string that is exactly one template
-- takes the referenced value with its JSON type; templates inside longer
-- text are interpolated as text.

-- _duration: parse '10m', '30 s', '1500ms', '2h' or a number of seconds.
CREATE OR REPLACE FUNCTION dwa._duration(p_value jsonb, p_field text)
RETURNS interval
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
DECLARE
    m text[];
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_value) = 'number' THEN
        IF (p_value #>> '{}')::numeric < 0 THEN
            RAISE EXCEPTION '%: duration must not be negative', p_field
                USING ERRCODE = '22023';
        END IF;
        RETURN make_interval(secs => (p_value #>> '{}')::double precision);
    END IF;
    IF jsonb_typeof(p_value) <> 'string' THEN
        RAISE EXCEPTION '%: expected a duration such as "30s" or "10m", got %',
            p_field, jsonb_typeof(p_value) USING ERRCODE = '22023';
    END IF;
    m := regexp_match(p_value #>> '{}',
        '^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)?\s*$');
    IF m IS NULL THEN
        RAISE EXCEPTION '%: "%" is not a duration (use e.g. "500ms", "30s", "10m", "2h", "7d")',
            p_field, p_value #>> '{}' USING ERRCODE = '22023';
    END IF;
    RETURN CASE
        WHEN m[2] = 'ms' THEN make_interval(secs => m[1]::double precision / 1000)
        WHEN m[2] IS NULL OR m[2] LIKE 's%' THEN make_interval(secs => m[1]::double precision)
        WHEN m[2] LIKE 'm%' THEN make_interval(secs => m[1]::double precision * 60)
        WHEN m[2] LIKE 'h%' THEN make_interval(secs => m[1]::double precision * 3600)
        ELSE make_interval(secs => m[1]::double precision * 86400)
    END;
END
$$;
COMMENT ON FUNCTION dwa._duration(jsonb, text) IS
    'Parse a duration ("500ms", "30s", "10m", "2h", "7d" or seconds); errors name the field';

-- _template_exprs: every {{expr}} inside a JSON value, trimmed.
CREATE OR REPLACE FUNCTION dwa._template_exprs(p_value jsonb)
RETURNS SETOF text
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    -- PL/pgSQL rather than SQL: its plan is cached across calls.
    RETURN QUERY
    WITH RECURSIVE walk(v) AS (
        SELECT p_value
        UNION ALL
        SELECT e.value
          FROM walk w,
               LATERAL (SELECT value FROM jsonb_each(w.v)
                         WHERE jsonb_typeof(w.v) = 'object'
                        UNION ALL
                        SELECT value FROM jsonb_array_elements(w.v)
                         WHERE jsonb_typeof(w.v) = 'array') e
    )
    SELECT btrim(m[1])
      FROM walk,
           LATERAL regexp_matches(walk.v #>> '{}', '\{\{([^{}]*)\}\}', 'g') m
     WHERE jsonb_typeof(walk.v) = 'string';
END
$$;
COMMENT ON FUNCTION dwa._template_exprs(jsonb) IS
    'The expressions of every {{template}} found in a JSON value';

-- _lookup: the value a template expression names in a context object.
--
-- item and index come as arguments rather than inside the context, so that
-- a forEach over many elements does not copy the context once per element.
CREATE OR REPLACE FUNCTION dwa._lookup(p_ctx jsonb, p_expr text,
    p_item jsonb DEFAULT NULL, p_index integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    path text[] := string_to_array(p_expr, '.');
    v jsonb;
BEGIN
    IF path[1] = 'item' THEN
        v := p_item #> path[2:];
    ELSIF path[1] = 'index' AND cardinality(path) = 1 THEN
        v := to_jsonb(p_index);
    ELSE
        v := p_ctx #> path;
    END IF;
    IF v IS NULL THEN
        RAISE EXCEPTION 'template "{{%}}" has no value', p_expr
            USING ERRCODE = '22023';
    END IF;
    RETURN v;
END
$$;
COMMENT ON FUNCTION dwa._lookup(jsonb, text, jsonb, integer) IS
    'Resolve one template expression against a context; raise when it has no value';

-- _render: a JSON value with every template replaced from p_ctx.
CREATE OR REPLACE FUNCTION dwa._render(p_value jsonb, p_ctx jsonb,
    p_item jsonb DEFAULT NULL, p_index integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    s text;
    m text[];
    out text;
    exprs text[];
    parts text[];
    v jsonb;
BEGIN
    CASE jsonb_typeof(p_value)
    WHEN 'string' THEN
        s := p_value #>> '{}';
        IF strpos(s, '{{') = 0 THEN
            RETURN p_value;
        END IF;
        m := regexp_match(s, '^\{\{([^{}]*)\}\}$');
        IF m IS NOT NULL THEN
            RETURN dwa._lookup(p_ctx, btrim(m[1]), p_item, p_index);
        END IF;
        exprs := ARRAY(SELECT btrim(x[1])
                         FROM regexp_matches(s, '\{\{([^{}]*)\}\}', 'g') x);
        parts := regexp_split_to_array(s, '\{\{[^{}]*\}\}');
        out := parts[1];
        FOR i IN 1 .. coalesce(array_length(exprs, 1), 0) LOOP
            v := dwa._lookup(p_ctx, exprs[i], p_item, p_index);
            out := out || CASE jsonb_typeof(v)
                WHEN 'string' THEN v #>> '{}' ELSE v::text END || parts[i + 1];
        END LOOP;
        RETURN to_jsonb(out);
    WHEN 'object' THEN
        RETURN coalesce((SELECT jsonb_object_agg(key, dwa._render(value, p_ctx, p_item, p_index))
                           FROM jsonb_each(p_value)), '{}'::jsonb);
    WHEN 'array' THEN
        RETURN coalesce((SELECT jsonb_agg(dwa._render(value, p_ctx, p_item, p_index) ORDER BY n)
                           FROM jsonb_array_elements(p_value)
                                WITH ORDINALITY AS e(value, n)), '[]'::jsonb);
    ELSE
        RETURN p_value;
    END CASE;
END
$$;
COMMENT ON FUNCTION dwa._render(jsonb, jsonb, jsonb, integer) IS
    'Replace {{templates}} in a JSON value: whole-string templates keep their JSON type';

-- _lookup_sql: the SQL of the value _lookup finds for one expression.
--
-- p_vars holds the SQL of payload, of the task object ({"id", "type"}),
-- of item and of index; NULL for one that is not bound.  Expressions
-- _lookup would resolve from anything else (steps) compile to NULL: only
-- the input of a step without ancestors may be compiled.
CREATE OR REPLACE FUNCTION dwa._lookup_sql(p_expr text, p_vars text[])
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    path text[] := string_to_array(p_expr, '.');
    base text;
BEGIN
    IF path[1] = 'index' AND cardinality(path) = 1 THEN
        RETURN CASE WHEN p_vars[4] IS NULL THEN 'NULL::jsonb'
                    ELSE format('to_jsonb(%s)', p_vars[4]) END;
    END IF;
    base := CASE path[1] WHEN 'payload' THEN p_vars[1] WHEN 'task' THEN p_vars[2]
        WHEN 'item' THEN p_vars[3] END;
    IF base IS NULL THEN
        RETURN 'NULL::jsonb';
    END IF;
    RETURN format('(%s #> %L::text[])', base, path[2:]);
END
$$;
COMMENT ON FUNCTION dwa._lookup_sql(text, text[]) IS
    'SQL of the value of one template expression, over payload, task, item and index';

-- _template_sql: compile a JSON value with {{templates}} into one SQL
-- expression computing what _render computes, so that a set-wise
-- statement renders it per row without a function call per value.
--
-- lookups are the SQL of the values its templates read: where one is NULL
-- on a row, _render would raise "has no value", and the row must go the
-- slow way.  None: the value has no template and renders as itself.
CREATE OR REPLACE FUNCTION dwa._template_sql(p_value jsonb, p_vars text[],
    OUT expr text, OUT lookups text[])
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    s text;
    m text[];
    parts text[];
    args text[] := '{}';
    lit jsonb;
    r record;
    c record;
    i integer;
BEGIN
    lookups := '{}';
    IF p_value IS NULL OR strpos(p_value::text, '{{') = 0 THEN
        expr := format('%L::jsonb', p_value::text);
        RETURN;
    END IF;
    CASE jsonb_typeof(p_value)
    WHEN 'string' THEN
        s := p_value #>> '{}';
        m := regexp_match(s, '^\{\{([^{}]*)\}\}$');
        IF m IS NOT NULL THEN
            expr := dwa._lookup_sql(btrim(m[1]), p_vars);
            lookups := ARRAY[expr];
            RETURN;
        END IF;
        lookups := ARRAY(SELECT dwa._lookup_sql(btrim(x[1]), p_vars)
                           FROM regexp_matches(s, '\{\{([^{}]*)\}\}', 'g') x);
        IF cardinality(lookups) = 0 THEN
            expr := format('%L::jsonb', p_value::text);
            RETURN;
        END IF;
        -- As _render: a string as its text, anything else as its JSON.
        parts := regexp_split_to_array(s, '\{\{[^{}]*\}\}');
        expr := quote_literal(parts[1]) || '::text';
        FOR i IN 1 .. cardinality(lookups) LOOP
            expr := expr || format(' || coalesce(%s #>> ''{}'', ''null'') || %L',
                lookups[i], parts[i + 1]);
        END LOOP;
        expr := format('to_jsonb(%s)', expr);
    WHEN 'object' THEN
        lit := '{}';
        FOR r IN SELECT key, value FROM jsonb_each(p_value) LOOP
            c := dwa._template_sql(r.value, p_vars);
            IF cardinality(c.lookups) = 0 THEN
                lit := lit || jsonb_build_object(r.key, r.value);
            ELSE
                args := args || format('%L::text, %s', r.key, c.expr);
                lookups := lookups || c.lookups;
            END IF;
        END LOOP;
        -- Templated members in chunks: a function takes 100 arguments.
        expr := format('%L::jsonb', lit::text);
        FOR i IN 0 .. (cardinality(args) + 49) / 50 - 1 LOOP
            expr := expr || format(' || jsonb_build_object(%s)',
                array_to_string(args[i * 50 + 1 : i * 50 + 50], ', '));
        END LOOP;
    WHEN 'array' THEN
        FOR r IN SELECT value FROM jsonb_array_elements(p_value) LOOP
            c := dwa._template_sql(r.value, p_vars);
            args := args || c.expr;
            lookups := lookups || c.lookups;
        END LOOP;
        expr := NULL;
        FOR i IN 0 .. (cardinality(args) + 99) / 100 - 1 LOOP
            expr := concat_ws(' || ', expr, format('jsonb_build_array(%s)',
                array_to_string(args[i * 100 + 1 : i * 100 + 100], ', ')));
        END LOOP;
    ELSE
        expr := format('%L::jsonb', p_value::text);
    END CASE;
    expr := '(' || expr || ')';
END
$$;
COMMENT ON FUNCTION dwa._template_sql(jsonb, text[]) IS
    'Compile {{templates}} in a JSON value into an SQL expression; lookups: the values they read';
