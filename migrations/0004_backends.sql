-- 0004_backends.sql: remote HTTP backends (SPEC section 5), and claims
-- that name queues.
--
-- A backend is a URL the http executor POSTs steps to, with the name of
-- the environment variable that holds its bearer token (the token itself
-- never reaches the database), a timeout and an optional concurrency cap,
-- kept as the max_concurrency of the limit key backend:<name>.

CREATE TABLE dwa.backends (
    name            text PRIMARY KEY
                    CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    url             text NOT NULL CHECK (url ~ '^https?://[^[:space:]]+$'),
    token_env       text CHECK (token_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    timeout         interval NOT NULL DEFAULT '5 minutes'
                    CHECK (timeout > interval '0' AND timeout <= interval '1 day'),
    max_concurrency integer CHECK (max_concurrency IS NULL OR max_concurrency >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dwa.backends IS
    'Remote HTTP backends the http executor sends steps to (Modal, Ray Serve, any service)';
COMMENT ON COLUMN dwa.backends.token_env IS
    'name of the environment variable of dwad that holds the bearer token; NULL: none';
COMMENT ON COLUMN dwa.backends.max_concurrency IS
    'most steps in flight on the backend, across every daemon (the limit backend:<name>)';

-- The claim functions take the queues to serve now: the old signatures go,
-- sql/50_worker.sql and sql/45_limits.sql create the new ones.
DROP FUNCTION IF EXISTS dwa.claim(text, text[], integer, interval);
DROP FUNCTION IF EXISTS dwa._claim(integer, text[], integer, interval);
DROP FUNCTION IF EXISTS dwa._claim_limited(integer, text[], integer, interval, text[]);
DROP FUNCTION IF EXISTS dwa._limit_admit(text[], integer, text[]);

-- A claimed run says which backend serves it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE n.nspname = 'dwa' AND t.typname = 'claimed') THEN
        ALTER TYPE dwa.claimed ADD ATTRIBUTE backend text;
    END IF;
END
$$;
