-- 0003_limits.sql: rate-limit buckets and concurrency caps (SPEC section 7),
-- honoured by every claim, whichever daemon or worker makes it.
--
-- A step maps to limit keys through its queue, task type, backend and the
-- explicit keys of its type; only keys with a row here constrain anything.
-- The claim path locks the rows of the keys it admits under, in key order,
-- so concurrent claimers take turns on a hot key instead of overspending it
-- (write skew under SKIP LOCKED).  Adding limit_keys to dwa.steps is a
-- catalogue change only (no default, no rewrite).

CREATE TABLE dwa.limits (
    key             text PRIMARY KEY
                    CHECK (key ~ '^(queue|type|backend|key):.+$'),
    max_concurrency integer CHECK (max_concurrency IS NULL OR max_concurrency >= 1),
    rate            double precision CHECK (rate IS NULL OR rate > 0),
    per             interval CHECK (per IS NULL OR per > interval '0'),
    burst           integer CHECK (burst IS NULL OR burst >= 1),
    tokens          double precision,
    refilled_at     timestamptz NOT NULL DEFAULT now(),
    paused_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((rate IS NULL) = (per IS NULL))
) WITH (fillfactor = 50);
COMMENT ON TABLE dwa.limits IS
    'Token buckets and concurrency caps per key (queue:, type:, backend:, key:), honoured by every claim';
COMMENT ON COLUMN dwa.limits.key IS
    'queue:NAME, type:NAME, backend:NAME, or key:NAME named in task_types.limit_keys';
COMMENT ON COLUMN dwa.limits.max_concurrency IS
    'most steps running under the key at once; NULL: no cap';
COMMENT ON COLUMN dwa.limits.rate IS 'tokens added per `per`; NULL: no rate limit';
COMMENT ON COLUMN dwa.limits.per IS 'the interval `rate` tokens are added over';
COMMENT ON COLUMN dwa.limits.burst IS 'bucket size; NULL: ceil(rate), at least 1';
COMMENT ON COLUMN dwa.limits.tokens IS
    'tokens in the bucket at refilled_at (refilled lazily by claims); NULL: full';
COMMENT ON COLUMN dwa.limits.refilled_at IS 'when tokens was last brought up to date';
COMMENT ON COLUMN dwa.limits.paused_until IS
    'retry-after pause: nothing is admitted under the key before this time';

ALTER TABLE dwa.steps ADD COLUMN limit_keys text[];
COMMENT ON COLUMN dwa.steps.limit_keys IS
    'the limit keys a running step was admitted under; NULL when claimed while no limit was set';

-- dwa.claimed is created by sql/50_worker.sql (with hold_ms on a fresh
-- install); an older database gets the attribute here.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE n.nspname = 'dwa' AND t.typname = 'claimed') THEN
        ALTER TYPE dwa.claimed ADD ATTRIBUTE hold_ms bigint;
    END IF;
END
$$;
