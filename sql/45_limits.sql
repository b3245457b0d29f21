-- 45_limits.sql: rate limits and concurrency caps (SPEC section 7): setting
-- them, the keys of a step, token buckets, and admission on the claim path.
--
-- A step has the keys queue:<queue>, type:<task>, backend:<backend> (when it
-- has one) and every key its type lists in task_types.limit_keys; only keys
-- with a row in dwa.limits constrain anything.  Buckets refill lazily: a
-- row holds the tokens it had at refilled_at, and whoever reads it adds what
-- has accrued since.  A claim locks the rows it admits under (FOR UPDATE, in
-- key order, so claimers cannot deadlock) and counts running steps in a
-- statement of its own after that, so two claimers never both spend the
-- last slot or token (write skew under SKIP LOCKED, FIELD-NOTES C3).

-- _limit_keys: the limit keys of a step.
CREATE OR REPLACE FUNCTION dwa._limit_keys(p_queue text, p_task text, p_backend text,
    p_type_keys text[])
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ARRAY['queue:' || p_queue, 'type:' || p_task]
           || CASE WHEN p_backend IS NULL OR p_backend = '' THEN '{}'::text[]
                   ELSE ARRAY['backend:' || p_backend] END
           || coalesce(p_type_keys, '{}')
$$;
COMMENT ON FUNCTION dwa._limit_keys(text, text, text, text[]) IS
    'The limit keys of a step: queue:, type:, backend: and its type''s limit_keys (may repeat one)';

-- _limit_burst: the size of a bucket (burst, or ceil(rate) but at least 1).
CREATE OR REPLACE FUNCTION dwa._limit_burst(p_rate double precision, p_burst integer)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_rate IS NOT NULL
                THEN coalesce(p_burst, greatest(1, ceil(p_rate)))::double precision END
$$;
COMMENT ON FUNCTION dwa._limit_burst(double precision, integer) IS
    'Bucket size of a rate limit: burst, else ceil(rate) and at least 1; NULL without a rate';

-- _limit_tokens: the tokens of a bucket at p_at, refilled since p_since.
CREATE OR REPLACE FUNCTION dwa._limit_tokens(p_tokens double precision,
    p_rate double precision, p_per interval, p_burst integer, p_since timestamptz,
    p_at timestamptz)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p_rate IS NOT NULL THEN
           least(dwa._limit_burst(p_rate, p_burst),
                 coalesce(p_tokens, dwa._limit_burst(p_rate, p_burst))
                 + p_rate * greatest(0, extract(epoch FROM p_at - p_since))::double precision
                   / extract(epoch FROM p_per)::double precision) END
$$;
COMMENT ON FUNCTION dwa._limit_tokens(double precision, double precision, interval, integer,
    timestamptz, timestamptz) IS
    'Tokens of a bucket at a time: what it held, plus rate per interval since, capped at its size';

-- _limit_rate: parse a rate: 'N/UNIT' (s, min, h, d...) or 'N/DURATION' ('5/2s').
CREATE OR REPLACE FUNCTION dwa._limit_rate(p_rate text, OUT rate double precision,
    OUT per interval)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
DECLARE
    m text[];
    d text[];
    secs double precision;
    n double precision;
BEGIN
    IF p_rate IS NULL THEN
        RETURN;
    END IF;
    m := regexp_match(p_rate, '^\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*/\s*(.*?)\s*$');
    IF m IS NULL THEN
        PERFORM dwa._reject(format('rate: "%s" is not a rate (use N/UNIT, e.g. 60/min, 10/s or 5/2s)',
            p_rate), 'rate');
    END IF;
    rate := m[1]::double precision;
    IF rate <= 0 THEN
        PERFORM dwa._reject('rate: must be greater than zero', 'rate');
    END IF;
    d := regexp_match(m[2], '^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))?\s*(\S*)$');
    IF d IS NULL THEN
        PERFORM dwa._reject(format('rate: "%s" is not a rate (use N/UNIT, e.g. 60/min, 10/s or 5/2s)',
            p_rate), 'rate');
    END IF;
    secs := CASE
        WHEN lower(d[2]) = 'ms' THEN 0.001
        WHEN lower(d[2]) IN ('s', 'sec', 'secs', 'second', 'seconds') THEN 1
        WHEN lower(d[2]) IN ('m', 'min', 'mins', 'minute', 'minutes') THEN 60
        WHEN lower(d[2]) IN ('h', 'hr', 'hrs', 'hour', 'hours') THEN 3600
        WHEN lower(d[2]) IN ('d', 'day', 'days') THEN 86400
    END;
    IF secs IS NULL THEN
        PERFORM dwa._reject(format('rate: unknown unit "%s" (use s, min, h, d or a duration like 5s)',
            d[2]), 'rate');
    END IF;
    n := coalesce(d[1]::double precision, 1);
    per := make_interval(secs => n * secs);
    IF n <= 0 OR per <= interval '0' THEN
        PERFORM dwa._reject('rate: the interval must be greater than zero', 'rate');
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._limit_rate(text) IS
    'Parse a rate such as "60/min", "10/s" or "5/2s" into tokens per interval; errors name the field';

-- limit_set: set the caps of a key (SPEC section 7).  The caps are exactly
-- what this call says: NULL removes one.  A retry-after pause stays; the
-- tokens in hand stay, up to the new bucket size.
CREATE OR REPLACE FUNCTION dwa.limit_set(p_key text, p_max_concurrency integer DEFAULT NULL,
    p_rate text DEFAULT NULL, p_burst integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF p_key IS NULL OR p_key !~ '^(queue|type|backend|key):.+$' THEN
        PERFORM dwa._reject('key: must look like queue:NAME, type:NAME, backend:NAME or key:NAME',
            'key');
    END IF;
    IF p_max_concurrency < 1 THEN
        PERFORM dwa._reject('max_concurrency: must be at least 1', 'max_concurrency');
    END IF;
    r := dwa._limit_rate(p_rate);
    IF p_burst < 1 THEN
        PERFORM dwa._reject('burst: must be at least 1', 'burst');
    END IF;
    IF p_burst IS NOT NULL AND r.rate IS NULL THEN
        PERFORM dwa._reject('burst: needs a rate (a burst is the size of a token bucket)', 'burst');
    END IF;
    INSERT INTO dwa.limits AS l (key, max_concurrency, rate, per, burst, tokens, refilled_at)
    VALUES (p_key, p_max_concurrency, r.rate, r.per, p_burst, NULL, clock_timestamp())
    ON CONFLICT (key) DO UPDATE
       SET max_concurrency = EXCLUDED.max_concurrency,
           rate = EXCLUDED.rate, per = EXCLUDED.per, burst = EXCLUDED.burst,
           tokens = CASE WHEN l.rate IS NOT NULL AND EXCLUDED.rate IS NOT NULL THEN
                    least(dwa._limit_burst(EXCLUDED.rate, EXCLUDED.burst),
                          dwa._limit_tokens(l.tokens, l.rate, l.per, l.burst, l.refilled_at,
                              EXCLUDED.refilled_at)) END,
           refilled_at = greatest(l.refilled_at, EXCLUDED.refilled_at),
           updated_at = now();
    -- Raised caps let held-back steps run: wake the daemons.
    PERFORM pg_notify('dwa_wake', '');
END
$$;
COMMENT ON FUNCTION dwa.limit_set(text, integer, text, integer) IS
    'Set the concurrency cap, rate ("60/min", "5/2s") and burst of a limit key; NULL removes a cap';

-- limit_delete: remove a key's limits (and any pause); false if it had none.
CREATE OR REPLACE FUNCTION dwa.limit_delete(p_key text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM dwa.limits WHERE key = p_key;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('dwa_wake', '');
    RETURN true;
END
$$;
COMMENT ON FUNCTION dwa.limit_delete(text) IS
    'Remove the limits of a key, pause included; false if there were none';

-- _limit_pause: a retry-after: admit nothing under the key before p_until.
CREATE OR REPLACE FUNCTION dwa._limit_pause(p_key text, p_until timestamptz)
RETURNS void
LANGUAGE sql
AS $$
    INSERT INTO dwa.limits AS l (key, paused_until)
    SELECT p_key, p_until
     WHERE p_key ~ '^(queue|type|backend|key):.+$' AND p_until IS NOT NULL
    ON CONFLICT (key) DO UPDATE
       SET paused_until = greatest(l.paused_until, EXCLUDED.paused_until)
$$;
COMMENT ON FUNCTION dwa._limit_pause(text, timestamptz) IS
    'Pause a limit key until a time (a retry-after), creating its row if need be';

-- _limit_running: the steps running under each of the keys p_keys.
-- dwa.runs has a row per run in flight, with the limit keys a limited
-- claim started it under: read whole, sequentially (an index walk would
-- visit every row deleted since the last vacuum, one heap fetch each: at
-- ten thousand runs a second, 20 ms a claim).  Only runs started while no
-- limit was in force (no keys recorded, or a batch of dwad's in
-- dwa.claims, which the claims of dwad delete as soon as they are over)
-- need their step's keys, by primary key (= ANY of an array, never a join
-- that could turn into a scan of dwa.steps).
CREATE OR REPLACE FUNCTION dwa._limit_running(p_keys text[])
RETURNS TABLE (key text, n integer)
LANGUAGE sql STABLE
SET enable_seqscan = on
AS $$
    SELECT x.key, count(DISTINCT x.id)::integer
      FROM (SELECT u.step_id AS id, e.key
              FROM dwa.runs u CROSS JOIN LATERAL unnest(u.limit_keys) e(key)
             WHERE u.limit_keys && p_keys AND e.key = ANY (p_keys)
            UNION ALL
            SELECT s.id, e.key
              FROM dwa.steps s
             CROSS JOIN LATERAL unnest(coalesce(s.limit_keys,
                   dwa._limit_keys(s.queue, s.task, s.backend,
                       (SELECT tt.limit_keys FROM dwa.task_types tt
                         WHERE tt.name = s.task)))) e(key)
             WHERE s.id = ANY (ARRAY(SELECT u.step_id FROM dwa.runs u
                                      WHERE u.limit_keys IS NULL
                                     UNION ALL
                                     SELECT unnest(c.step_ids) FROM dwa.claims c))
               AND s.status = 'running' AND e.key = ANY (p_keys)) x
     GROUP BY x.key
$$;
COMMENT ON FUNCTION dwa._limit_running(text[]) IS
    'Steps running under each of the given limit keys, from dwa.runs and dwa.claims';

-- _limit_admit: choose which ready steps a claim may start (dwa._claim,
-- when some limit is in force).  Returns the admitted step ids in claim
-- order, locked, and hold_ms when some step was held back only by a rate
-- limit or a pause: how long until the earliest of them could start.
--
-- Keys paused or out of tokens as last stored are known before anything
-- is locked: their steps are left out of the search from the start, and
-- the hint says when the first of them is due.  Then the first round locks
-- p_n ready steps in claim order (SKIP LOCKED), as the unlimited claim
-- does, then the limit rows of their keys in key order (waiting for other
-- claimers), then counts running steps per capped key in a statement of
-- its own, whose snapshot sees every claim committed before the locks
-- were granted.  Admission goes in claim order while every key has a slot,
-- a whole token and no pause; each admitted step spends a token of each of
-- its rate-limited keys.  When steps were held back, up to two more rounds
-- look further, leaving out the steps of keys now used up (as a claim for
-- some types looks past the others); a key new in those rounds is locked
-- only if free (SKIP LOCKED: out of key order, a wait could deadlock), else
-- its steps wait for the next claim.  Held-back steps stay ready; their
-- row locks end with the transaction.
--
-- p_active: the keys with a cap, a rate or a pause in force (dwa._claim
-- reads them).  The candidate query is dynamic SQL so that it is planned
-- with its real LIMIT and types each time (see dwa._claim); the others
-- keep generic plans, which are fine for them: planning them afresh each
-- time would cost more than the claim itself.
CREATE OR REPLACE FUNCTION dwa._limit_admit(p_types text[], p_n integer, p_active text[],
    p_queues text[], OUT ids bigint[], OUT hold_ms bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
    -- The keys locked so far and their state, by position.
    k_key text[] := '{}';
    k_conc integer[] := '{}';           -- slots left (NULL: no cap)
    k_tok double precision[] := '{}';   -- tokens left (NULL: no rate)
    k_ms double precision[] := '{}';    -- ms a token takes to accrue
    k_pause double precision[] := '{}'; -- ms until the pause ends (0: none)
    k_at timestamptz[] := '{}';         -- when the tokens were counted
    v_failed text[] := '{}';            -- keys another claim holds (rounds 2, 3)
    -- This round's candidates in claim order (ids, queues, types, backends),
    -- their limited keys and how many candidates have each, and when
    -- admitted one by one, (step, limited key) pairs.
    c_ids bigint[];
    c_queues text[];
    c_types text[];
    c_backends text[];
    c_id bigint[];
    c_key text[];
    v_keys text[];
    v_demand integer[];
    v_lock text[];
    v_rows dwa.limits[];
    v_seen bigint[] := '{}';
    v_cap text[];
    v_xkeys text[];
    v_pred text[];
    v_pred_hold double precision[];
    v_xq text[] := '{}';
    v_xt text[] := '{}';
    v_xb text[] := '{}';
    v_round integer := 0;
    v_held boolean;
    v_hold double precision;
    v_at timestamptz;
    ok boolean;
    timed boolean;
    h double precision;
    i integer;
    j integer;
    x integer;
    y integer;
    lim dwa.limits;
    r record;
BEGIN
    ids := '{}';
    -- Keys out of tokens or paused, as last stored (read without a lock):
    -- their steps are left out from the start, without holding any limit
    -- row while looking past them.  Keys of types this claim does not take
    -- do not count.
    SELECT coalesce(array_agg(x.key ORDER BY x.hold), '{}'), array_agg(x.hold ORDER BY x.hold)
      INTO v_xkeys, v_pred_hold
      FROM (SELECT l.key, greatest(
                   extract(epoch FROM l.paused_until - clock_timestamp())::double precision * 1000,
                   (1 - dwa._limit_tokens(l.tokens, l.rate, l.per, l.burst, l.refilled_at,
                       clock_timestamp()))
                   * extract(epoch FROM l.per)::double precision * 1000 / l.rate) AS hold
              FROM dwa.limits l
             WHERE l.key = ANY (p_active)
               AND (p_queues IS NULL OR l.key NOT LIKE 'queue:%'
                    OR substr(l.key, 7) = ANY (p_queues))
               AND (p_types IS NULL
                    OR l.key NOT LIKE 'type:%' AND l.key NOT LIKE 'key:%'
                    OR l.key LIKE 'type:%' AND substr(l.key, 6) = ANY (p_types)
                    OR l.key LIKE 'key:%' AND EXISTS (
                        SELECT 1 FROM dwa.task_types tt
                         WHERE tt.name = ANY (p_types) AND l.key = ANY (tt.limit_keys)))) x
     WHERE x.hold > 0;
    v_pred := v_xkeys;
    LOOP
        v_round := v_round + 1;
        IF cardinality(v_xkeys) > 0 THEN
            v_xq := ARRAY(SELECT substr(e, 7) FROM unnest(v_xkeys) e WHERE e LIKE 'queue:%');
            v_xb := ARRAY(SELECT substr(e, 9) FROM unnest(v_xkeys) e WHERE e LIKE 'backend:%');
            v_xt := ARRAY(SELECT substr(e, 6) FROM unnest(v_xkeys) e WHERE e LIKE 'type:%')
                 || ARRAY(SELECT tt.name FROM dwa.task_types tt WHERE tt.limit_keys && v_xkeys);
        END IF;
        EXECUTE format($q$
            WITH c AS MATERIALIZED (
                SELECT s.step_id AS id, s.queue, s.task, s.backend
                  FROM dwa.ready s
                 WHERE s.run_after <= now()
                   AND ($1::text[] IS NULL OR s.task = ANY ($1::text[]))
                   AND ($7::text[] IS NULL OR s.queue = ANY ($7::text[]))
                   AND s.queue <> ALL ($4) AND s.task <> ALL ($5)
                   AND (s.backend IS NULL OR s.backend <> ALL ($6)) %s
                 ORDER BY s.priority DESC, s.run_after, s.step_id
                 LIMIT $2
                   FOR UPDATE SKIP LOCKED
            )
            SELECT array_agg(c.id), array_agg(c.queue), array_agg(c.task), array_agg(c.backend)
              FROM c$q$,
            CASE WHEN v_round > 1 THEN 'AND s.step_id <> ALL ($3)' ELSE '' END)
          INTO c_ids, c_queues, c_types, c_backends
          USING p_types, p_n - cardinality(ids), v_seen, v_xq, v_xt, v_xb, p_queues;
        EXIT WHEN c_ids IS NULL;
        -- Their limited keys, and how many of them have each (a cached
        -- plan: the candidate query above is planned afresh each time).
        SELECT array_agg(d.key ORDER BY d.key), array_agg(d.n ORDER BY d.key)
          INTO v_keys, v_demand
          FROM (SELECT k.key, count(DISTINCT x.id)::integer AS n
                  FROM unnest(c_ids, c_queues, c_types, c_backends)
                       AS x(id, queue, task, backend)
                  LEFT JOIN dwa.task_types tt ON tt.name = x.task
                 CROSS JOIN LATERAL unnest(dwa._limit_keys(x.queue, x.task, x.backend,
                       tt.limit_keys)) k(key)
                 WHERE k.key = ANY (p_active)
                 GROUP BY k.key) d;
        IF v_keys IS NULL THEN
            -- None of them has a limited key: all are admitted.
            ids := ids || c_ids;
            EXIT;
        END IF;

        -- Lock the rows of keys not locked yet, in key order.
        IF v_round = 1 THEN
            v_rows := ARRAY(SELECT l FROM dwa.limits l WHERE l.key = ANY (v_keys)
                             ORDER BY l.key FOR UPDATE);
        ELSE
            -- Out of key order now: take only what is free.
            v_lock := ARRAY(SELECT e FROM unnest(v_keys) e
                             WHERE e <> ALL (k_key) AND e <> ALL (v_failed));
            v_rows := ARRAY(SELECT l FROM dwa.limits l WHERE l.key = ANY (v_lock)
                             ORDER BY l.key FOR UPDATE SKIP LOCKED);
            v_failed := v_failed || ARRAY(SELECT e FROM unnest(v_lock) e
                                           WHERE e NOT IN (SELECT w.key FROM unnest(v_rows) w));
        END IF;
        IF cardinality(v_rows) > 0 THEN
            -- The rows as the locks left them; no refill is newer than v_at.
            v_at := clock_timestamp();
            v_cap := '{}';
            FOREACH lim IN ARRAY v_rows LOOP
                k_key := k_key || lim.key;
                k_at := k_at || v_at;
                k_conc := k_conc || lim.max_concurrency;
                k_tok := k_tok || dwa._limit_tokens(lim.tokens, lim.rate, lim.per, lim.burst,
                    lim.refilled_at, v_at);
                k_ms := k_ms || extract(epoch FROM lim.per)::double precision * 1000 / lim.rate;
                k_pause := k_pause || greatest(0,
                    coalesce(extract(epoch FROM lim.paused_until - v_at)::double precision * 1000, 0));
                IF lim.max_concurrency IS NOT NULL THEN
                    v_cap := v_cap || lim.key;
                END IF;
            END LOOP;
            -- Running steps per capped key, counted now that the locks are
            -- held: this statement's snapshot sees every earlier claim.
            IF cardinality(v_cap) > 0 THEN
                FOR r IN SELECT c.key, c.n FROM dwa._limit_running(v_cap) c
                LOOP
                    x := array_position(k_key, r.key);
                    k_conc[x] := k_conc[x] - r.n;
                END LOOP;
            END IF;
        END IF;

        -- Admit them all when no key runs short (the common case) ...
        ok := true;
        FOR i IN 1 .. cardinality(v_keys) LOOP
            x := array_position(k_key, v_keys[i]);
            IF x IS NULL THEN
                -- Not locked: held by another claim, or deleted meanwhile.
                ok := v_keys[i] <> ALL (v_failed);
            ELSE
                ok := NOT (k_pause[x] > 0 OR coalesce(k_conc[x] < v_demand[i], false)
                           OR coalesce(k_tok[x] < v_demand[i], false));
            END IF;
            EXIT WHEN NOT ok;
        END LOOP;
        IF ok THEN
            ids := ids || c_ids;
            FOR i IN 1 .. cardinality(v_keys) LOOP
                x := array_position(k_key, v_keys[i]);
                IF x IS NOT NULL THEN
                    k_conc[x] := k_conc[x] - v_demand[i];
                    k_tok[x] := k_tok[x] - v_demand[i];
                END IF;
            END LOOP;
            EXIT;
        END IF;

        -- ... else one by one in claim order: one element per (step,
        -- limited key) pair, a step without limited keys with key NULL.
        SELECT array_agg(x.id ORDER BY x.n, k.key), array_agg(k.key ORDER BY x.n, k.key)
          INTO c_id, c_key
          FROM unnest(c_ids, c_queues, c_types, c_backends)
               WITH ORDINALITY AS x(id, queue, task, backend, n)
          LEFT JOIN dwa.task_types tt ON tt.name = x.task
          LEFT JOIN LATERAL (
               SELECT e AS key
                 FROM unnest(dwa._limit_keys(x.queue, x.task, x.backend, tt.limit_keys)) e
                WHERE e = ANY (p_active)) k ON true;
        v_held := false;
        i := 1;
        WHILE i <= cardinality(c_id) AND cardinality(ids) < p_n LOOP
            j := i;
            ok := true;
            timed := true;
            h := 0;
            WHILE j <= cardinality(c_id) AND c_id[j] = c_id[i] LOOP
                IF c_key[j] IS NOT NULL THEN
                    x := array_position(k_key, c_key[j]);
                    IF x IS NULL THEN
                        -- Not locked: held by another claim, or deleted meanwhile.
                        IF c_key[j] = ANY (v_failed) THEN
                            ok := false;
                            timed := false;
                        END IF;
                    ELSIF k_conc[x] <= 0 THEN
                        ok := false;
                        timed := false;
                    ELSIF k_pause[x] > 0 OR k_tok[x] < 1 THEN
                        ok := false;
                        h := greatest(h, k_pause[x],
                            CASE WHEN k_tok[x] < 1 THEN (1 - k_tok[x]) * k_ms[x] END);
                    END IF;
                END IF;
                j := j + 1;
            END LOOP;
            IF ok THEN
                ids := ids || c_id[i];
                FOR y IN i .. j - 1 LOOP
                    -- A key listed twice (say type:X in its type's keys) counts once.
                    CONTINUE WHEN y > i AND c_key[y] = c_key[y - 1];
                    x := array_position(k_key, c_key[y]);
                    IF x IS NOT NULL THEN
                        k_conc[x] := k_conc[x] - 1;
                        k_tok[x] := k_tok[x] - 1;
                    END IF;
                END LOOP;
            ELSE
                v_held := true;
                IF timed THEN
                    v_hold := least(v_hold, h);
                END IF;
            END IF;
            i := j;
        END LOOP;
        EXIT WHEN cardinality(ids) >= p_n OR NOT v_held OR v_round >= 3;

        -- Keys used up: leave their steps out of the next round.
        v_seen := v_seen || c_ids;
        v_xkeys := v_pred || v_failed
                || ARRAY(SELECT k_key[e] FROM generate_subscripts(k_key, 1) e
                          WHERE k_conc[e] <= 0 OR k_pause[e] > 0 OR k_tok[e] < 1);
    END LOOP;

    -- A claim that came up short while steps of keys paused or out of
    -- tokens wait: the hint says when the first of those keys is due
    -- (keys in that order; the first with a step waiting wins).
    IF cardinality(v_pred) > 0 AND cardinality(ids) < p_n THEN
        FOR i IN 1 .. cardinality(v_pred) LOOP
            EXIT WHEN v_pred_hold[i] >= v_hold;
            EXECUTE $q$
                SELECT EXISTS (
                    SELECT 1 FROM dwa.ready s
                     WHERE s.run_after <= now()
                       AND ($1::text[] IS NULL OR s.task = ANY ($1::text[]))
                       AND ($4::text[] IS NULL OR s.queue = ANY ($4::text[]))
                       AND (CASE split_part($2, ':', 1)
                            WHEN 'queue' THEN s.queue = substr($2, 7)
                            WHEN 'type' THEN s.task = substr($2, 6)
                            WHEN 'backend' THEN s.backend = substr($2, 9) END
                            OR s.task = ANY ($3)))$q$
               INTO ok
              USING p_types, v_pred[i],
                    ARRAY(SELECT tt.name FROM dwa.task_types tt WHERE v_pred[i] = ANY (tt.limit_keys)),
                    p_queues;
            IF ok THEN
                v_hold := least(v_hold, v_pred_hold[i]);
                EXIT;
            END IF;
        END LOOP;
    END IF;

    IF cardinality(k_key) > 0 THEN
        UPDATE dwa.limits l SET tokens = e.tok, refilled_at = e.at
          FROM unnest(k_key, k_tok, k_at) AS e(key, tok, at)
         WHERE l.key = e.key;
    END IF;
    IF v_hold IS NOT NULL THEN
        hold_ms := greatest(1, ceil(v_hold))::bigint;
    END IF;
END
$$;
COMMENT ON FUNCTION dwa._limit_admit(text[], integer, text[], text[]) IS
    'Lock and choose the ready steps a claim may start under the limits; hold_ms: wait before the next';

-- limit_stats: each limit key with its tokens now, running and waiting steps.
CREATE OR REPLACE VIEW dwa.limit_stats AS
SELECT l.key, l.max_concurrency, l.rate, l.per, l.burst,
       dwa._limit_tokens(l.tokens, l.rate, l.per, l.burst, l.refilled_at, now()) AS tokens,
       l.paused_until,
       coalesce(c.running, 0) AS running,
       coalesce(c.waiting, 0) AS waiting
  FROM dwa.limits l
  LEFT JOIN (
      SELECT e.key, count(DISTINCT x.id) FILTER (WHERE x.status = 'running') AS running,
             count(DISTINCT x.id) FILTER (WHERE x.status = 'ready') AS waiting
        FROM (SELECT s.id, s.status, coalesce(s.limit_keys,
                     dwa._limit_keys(s.queue, s.task, s.backend,
                         (SELECT tt.limit_keys FROM dwa.task_types tt WHERE tt.name = s.task))) AS keys
                FROM dwa.running u JOIN dwa.steps s ON s.id = u.step_id
               WHERE s.status = 'running' AND s.run_id = u.run_id
              UNION ALL
              SELECT r.step_id, 'ready', dwa._limit_keys(r.queue, r.task, r.backend,
                     (SELECT tt.limit_keys FROM dwa.task_types tt WHERE tt.name = r.task))
                FROM dwa.ready r) x
       CROSS JOIN LATERAL unnest(x.keys) e(key)
       WHERE e.key IN (SELECT k.key FROM dwa.limits k)
       GROUP BY e.key) c ON c.key = l.key;
COMMENT ON VIEW dwa.limit_stats IS
    'Limit keys: caps, tokens refilled to now, pause, steps running under the key and ready steps that have it';
