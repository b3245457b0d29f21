-- 48_backends.sql: remote HTTP backends for the http executor.
--
-- dwa.backend_set checks its input with messages naming the field, so the
-- CLI and dwad (MODAL_URL, RAY_URL at start) report bad settings clearly;
-- plain INSERTs are held by the table's CHECKs.  A backend's max_concurrency
-- is the cap of the limit key backend:<name>, kept in step by a trigger so
-- every claim, of every daemon and worker, honours it.

CREATE OR REPLACE FUNCTION dwa.backend_set(p_name text, p_url text,
    p_token_env text DEFAULT NULL, p_timeout interval DEFAULT NULL,
    p_max_concurrency integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$' THEN
        PERFORM dwa._reject('name: must be letters, digits, "_", "." or "-"', 'name');
    END IF;
    IF p_url IS NULL OR p_url !~ '^https?://[^[:space:]]+$' THEN
        PERFORM dwa._reject('url: must be an http:// or https:// URL', 'url');
    END IF;
    IF p_token_env IS NOT NULL AND p_token_env !~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN
        PERFORM dwa._reject('token_env: must be the name of an environment variable '
            '(the token itself stays out of the database)', 'token_env');
    END IF;
    IF p_timeout <= interval '0' OR p_timeout > interval '1 day' THEN
        PERFORM dwa._reject('timeout: must be more than 0 and at most 1 day', 'timeout');
    END IF;
    IF p_max_concurrency < 1 THEN
        PERFORM dwa._reject('max_concurrency: must be at least 1', 'max_concurrency');
    END IF;
    INSERT INTO dwa.backends AS b (name, url, token_env, timeout, max_concurrency)
    VALUES (p_name, p_url, p_token_env, coalesce(p_timeout, interval '5 minutes'),
            p_max_concurrency)
    ON CONFLICT (name) DO UPDATE
       SET url = EXCLUDED.url, token_env = EXCLUDED.token_env,
           timeout = EXCLUDED.timeout, max_concurrency = EXCLUDED.max_concurrency,
           updated_at = now()
     WHERE (b.url, b.token_env, b.timeout, b.max_concurrency)
           IS DISTINCT FROM (EXCLUDED.url, EXCLUDED.token_env, EXCLUDED.timeout,
                             EXCLUDED.max_concurrency);
END
$$;
COMMENT ON FUNCTION dwa.backend_set(text, text, text, interval, integer) IS
    'Create or change a backend: URL, token variable, timeout (5 min), concurrency cap';

CREATE OR REPLACE FUNCTION dwa.backend_delete(p_name text)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (DELETE FROM dwa.backends WHERE name = p_name RETURNING 1)
    SELECT count(*) > 0 FROM d;
$$;
COMMENT ON FUNCTION dwa.backend_delete(text) IS 'Remove a backend; false if there was none';

-- _backends_limit: keep backend:<name>.max_concurrency equal to the
-- backend's.  A key left with nothing to hold (no cap, rate or pause) goes.
CREATE OR REPLACE FUNCTION dwa._backends_limit()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_key text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        v_key := 'backend:' || OLD.name;
        IF TG_OP = 'DELETE' OR OLD.name <> NEW.name
           OR OLD.max_concurrency IS DISTINCT FROM NEW.max_concurrency THEN
            UPDATE dwa.limits SET max_concurrency = NULL, updated_at = now()
             WHERE key = v_key AND max_concurrency IS NOT DISTINCT FROM OLD.max_concurrency;
            DELETE FROM dwa.limits
             WHERE key = v_key AND max_concurrency IS NULL AND rate IS NULL
               AND (paused_until IS NULL OR paused_until < now());
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.max_concurrency IS NOT NULL THEN
        INSERT INTO dwa.limits AS l (key, max_concurrency)
        VALUES ('backend:' || NEW.name, NEW.max_concurrency)
        ON CONFLICT (key) DO UPDATE SET max_concurrency = EXCLUDED.max_concurrency,
            updated_at = now();
    END IF;
    PERFORM pg_notify('dwa_wake', '');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION dwa._backends_limit() IS
    'Trigger: a backend''s max_concurrency is the cap of its limit key backend:<name>';

CREATE OR REPLACE TRIGGER backends_limit
    AFTER INSERT OR UPDATE OR DELETE ON dwa.backends
    FOR EACH ROW EXECUTE FUNCTION dwa._backends_limit();
