-- 35_effects.sql: lifecycle effects: rendering, firing, and the outbox
-- functions the dispatcher in dwad calls.
--
-- dwa._fire runs in the transaction of the state change that fired it, so
-- an effect is recorded exactly when the change commits.  Deliveries
-- (webhook, notify, invalidate) become pending dwa.outbox rows; UI events
-- (toast, emit, redirect) become dwa.events rows and a NOTIFY; enqueue
-- submits its task at once, inside a subtransaction, and records the
-- outcome.  Nothing an effect does wrong (a template with no value, a
-- follow-up task that fails validation) may break the state change: such
-- an effect becomes a 'dead' outbox row whose last_error says why.
--
-- The dispatcher claims due rows (dwa._outbox_claim, SKIP LOCKED and a
-- lease), delivers them outside any transaction and reports the outcomes
-- (dwa._outbox_finish); dwa._reap hands back the rows of dead daemons.

-- _effect_own_fields: the fields of an enqueued task that belong to the
-- follow-up itself (its steps and effects are rendered when it runs).
CREATE OR REPLACE FUNCTION dwa._effect_own_fields()
RETURNS text[]
LANGUAGE sql IMMUTABLE
AS $$ SELECT ARRAY['steps', 'onPending', 'onProgress', 'onSuccess', 'onError'] $$;
COMMENT ON FUNCTION dwa._effect_own_fields() IS
    'Fields of an enqueue effect''s task left unrendered: the follow-up''s own steps and effects';

-- _effect_templated: the part of an effect whose templates the firing task
-- renders.
CREATE OR REPLACE FUNCTION dwa._effect_templated(p_effect jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN p_effect ->> '$event' = 'enqueue'
                 AND jsonb_typeof(p_effect -> 'task') = 'object'
           THEN jsonb_set(p_effect, '{task}', (p_effect -> 'task') - dwa._effect_own_fields())
           ELSE p_effect END
$$;
COMMENT ON FUNCTION dwa._effect_templated(jsonb) IS
    'An effect without the follow-up''s own steps and effects (enqueue): what the firing task renders';

-- _effect_render: replace the templates of one effect from p_ctx.
CREATE OR REPLACE FUNCTION dwa._effect_render(p_effect jsonb, p_ctx jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    r jsonb;
    own jsonb;
BEGIN
    IF strpos(p_effect::text, '{{') = 0 THEN
        RETURN p_effect;
    END IF;
    r := dwa._render(dwa._effect_templated(p_effect), p_ctx);
    IF p_effect ->> '$event' = 'enqueue' AND jsonb_typeof(p_effect -> 'task') = 'object' THEN
        own := (SELECT jsonb_object_agg(key, value) FROM jsonb_each(p_effect -> 'task')
                 WHERE key = ANY (dwa._effect_own_fields()));
        IF own IS NOT NULL THEN
            r := jsonb_set(r, '{task}', (r -> 'task') || own);
        END IF;
    END IF;
    RETURN r;
END
$$;
COMMENT ON FUNCTION dwa._effect_render(jsonb, jsonb) IS
    'Render an effect''s templates (an enqueued task''s own steps and effects are left as written)';

-- _effect_text: a rendered field that must be text; scalars are converted,
-- anything else raises 22023 naming the field.  A missing (or null)
-- optional field gives NULL.
CREATE OR REPLACE FUNCTION dwa._effect_text(p_value jsonb, p_field text,
    p_required boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF jsonb_typeof(p_value) IN ('string', 'number', 'boolean') THEN
        RETURN p_value #>> '{}';
    END IF;
    IF NOT p_required AND (p_value IS NULL OR jsonb_typeof(p_value) = 'null') THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '%: expected a string, got %', p_field,
        coalesce(jsonb_typeof(p_value), 'nothing') USING ERRCODE = '22023';
END
$$;
COMMENT ON FUNCTION dwa._effect_text(jsonb, text, boolean) IS
    'A rendered effect field as text; raise when it is an object, an array, or missing though required';

-- _effect_shape: a rendered effect in the shape the dispatcher reads, with
-- every default filled in; raises 22023 when a field has the wrong shape.
CREATE OR REPLACE FUNCTION dwa._effect_shape(p_effect jsonb, p_task_id bigint,
    p_status text, p_summary jsonb)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    ev text := p_effect ->> '$event';
    out jsonb;
    h jsonb;
    tmo interval;
BEGIN
    CASE ev
    WHEN 'webhook' THEN
        h := coalesce(nullif(p_effect -> 'headers', 'null'), '{}');
        IF jsonb_typeof(h) <> 'object' THEN
            RAISE EXCEPTION 'headers: expected an object, got %', jsonb_typeof(h)
                USING ERRCODE = '22023';
        END IF;
        h := coalesce((SELECT jsonb_object_agg(key, dwa._effect_text(value, 'headers.' || key))
                         FROM jsonb_each(h)), '{}');
        tmo := dwa._duration(p_effect -> 'timeout', 'timeout');
        out := jsonb_build_object('$event', ev,
            'url', dwa._effect_text(p_effect -> 'url', 'url'),
            'method', upper(coalesce(dwa._effect_text(p_effect -> 'method',
                'method', false), 'POST')),
            'headers', h,
            'body', CASE WHEN p_effect ? 'body' THEN p_effect -> 'body' ELSE p_summary END,
            'timeoutMs', coalesce((extract(epoch FROM tmo) * 1000)::bigint, 10000));
    WHEN 'notify' THEN
        IF coalesce(p_effect ->> 'channel', '') NOT IN ('slack', 'discord', 'email') THEN
            RAISE EXCEPTION 'channel: expected slack, discord or email'
                USING ERRCODE = '22023';
        END IF;
        out := jsonb_build_object('$event', ev, 'channel', p_effect ->> 'channel',
            'message', dwa._effect_text(p_effect -> 'message', 'message'));
        IF p_effect ->> 'channel' = 'email' THEN
            out := out || jsonb_build_object(
                'to', dwa._effect_text(p_effect -> 'to', 'to'),
                'subject', coalesce(dwa._effect_text(p_effect -> 'subject',
                    'subject', false), format('DWA task %s %s', p_task_id, p_status)));
        END IF;
    WHEN 'invalidate' THEN
        out := jsonb_build_object('$event', ev,
            'path', dwa._effect_text(p_effect -> 'path', 'path'),
            'method', upper(coalesce(dwa._effect_text(p_effect -> 'method',
                'method', false), 'POST')));
    WHEN 'enqueue' THEN
        IF jsonb_typeof(p_effect -> 'task') IS DISTINCT FROM 'object' THEN
            RAISE EXCEPTION 'task: expected an object, got %',
                coalesce(jsonb_typeof(p_effect -> 'task'), 'nothing') USING ERRCODE = '22023';
        END IF;
        RETURN jsonb_build_object('$event', ev, 'task', p_effect -> 'task');
    WHEN 'toast', 'emit', 'redirect' THEN
        RETURN p_effect;
    ELSE
        RAISE EXCEPTION 'unknown $event "%"', ev USING ERRCODE = '22023';
    END CASE;
    IF p_effect ? 'retry' AND jsonb_typeof(p_effect -> 'retry') <> 'null' THEN
        PERFORM dwa._check_retry(p_effect -> 'retry', '');
        out := out || jsonb_build_object('retry', p_effect -> 'retry');
    END IF;
    RETURN out;
END
$$;
COMMENT ON FUNCTION dwa._effect_shape(jsonb, bigint, text, jsonb) IS
    'Normalise a rendered effect for the dispatcher (defaults: POST, {} headers, task summary body, 10 s timeout)';

-- _outbox_backoff: milliseconds before the next delivery attempt after
-- p_attempts failed ones, without jitter: min(maxMs, initialMs *
-- factor^(attempts-1)); defaults 1000, 2 and 300000.  Computed in log
-- space so that a large factor cannot overflow.
CREATE OR REPLACE FUNCTION dwa._outbox_backoff(p_retry jsonb, p_attempts integer)
RETURNS double precision
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    initial double precision := coalesce((p_retry #>> '{backoff,initialMs}')::double precision, 1000);
    factor double precision := greatest(coalesce((p_retry #>> '{backoff,factor}')::double precision, 2), 1);
    cap double precision := coalesce((p_retry #>> '{backoff,maxMs}')::double precision, 300000);
    x double precision;
BEGIN
    IF initial <= 0 OR cap <= 0 THEN
        RETURN 0;
    END IF;
    x := ln(initial) + greatest(p_attempts - 1, 0) * ln(factor);
    IF x >= ln(cap) THEN
        RETURN cap;
    END IF;
    RETURN exp(x);
END
$$;
COMMENT ON FUNCTION dwa._outbox_backoff(jsonb, integer) IS
    'Delivery backoff in ms: min(maxMs, initialMs * factor^(attempts-1)); defaults 1000, 2, 300000';

-- _effect_context: the context an effect of task p_task_id renders from
-- (payload, task, result, error, progress) and its default webhook body,
-- the task summary, for lifecycle point p_hook; NULLs when the task is gone.
CREATE OR REPLACE FUNCTION dwa._effect_context(p_task_id bigint, p_hook text,
    OUT ctx jsonb, OUT summary jsonb)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- PL/pgSQL for its cached plan: as an SQL function it was planned at
    -- each call, a third of a millisecond per task with effects.
    SELECT jsonb_build_object('payload', t.payload,
               'task', jsonb_build_object('id', t.id, 'type', t.type, 'status', t.status),
               'result', t.result, 'error', t.error, 'progress', t.progress),
           jsonb_build_object('taskId', t.id, 'type', t.type, 'status', t.status,
               'progress', t.progress, 'result', t.result, 'error', t.error, 'queue', t.queue,
               'hook', p_hook)
      INTO ctx, summary
      FROM dwa.tasks t WHERE t.id = p_task_id;
END
$$;
COMMENT ON FUNCTION dwa._effect_context(bigint, text) IS
    'The template context of a task''s effects and its default webhook body (the task summary)';

-- _effect: fire one effect of a task (effect p_index of hook p_hook).
--
-- onProgress deliveries of one effect of one task are coalesced: while a
-- row is pending, later reports replace its value (the last one wins).
-- Otherwise a new row is due a second after the previous delivery ended
-- (delivered_at + 1 s), or, while that one is still in flight, a second
-- from now; dwa._outbox_claim holds it back until then (see there).
CREATE OR REPLACE FUNCTION dwa._effect(p_task_id bigint, p_hook text, p_index integer,
    p_effect jsonb, p_ctx jsonb, p_summary jsonb)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    ev text := p_effect ->> '$event';
    where_ text := format('%s[%s]', p_hook, p_index);
    out jsonb;
    msg text;
    v_id bigint;
    note text;
    prev_tid tid;               -- where the pending row is: updated by address
    prev_id bigint;
    prev_status text;
    prev_delivered timestamptz;
    prev_error text;
    due timestamptz;
BEGIN
    -- Rendering writes nothing, so this subtransaction gets no xid of its
    -- own; a template with no value or a field of the wrong shape is
    -- caught here and recorded, never raised into the state change.
    BEGIN
        out := dwa._effect_shape(dwa._effect_render(p_effect, p_ctx), p_task_id,
            p_ctx #>> '{task,status}', p_summary);
    EXCEPTION WHEN data_exception THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    END;

    IF p_hook = 'onProgress' THEN
        SELECT o.ctid, o.id, o.status, o.delivered_at, o.last_error
          INTO prev_tid, prev_id, prev_status, prev_delivered, prev_error
          FROM dwa.outbox o
         WHERE o.task_id = p_task_id AND o.hook = 'onProgress' AND o.effect_index = p_index
         ORDER BY o.id DESC LIMIT 1;
    END IF;

    IF msg IS NOT NULL THEN
        msg := format('%s: %s', where_, msg);
        -- One dead row per failure, not one per progress report.
        IF prev_status = 'dead' AND prev_error = msg THEN
            RETURN;
        END IF;
        INSERT INTO dwa.outbox (task_id, hook, event, effect_index, effect, status, last_error)
        VALUES (p_task_id, p_hook, coalesce(ev, '?'), p_index, p_effect, 'dead', msg);
        RETURN;
    END IF;

    CASE ev
    WHEN 'toast', 'emit', 'redirect' THEN
        INSERT INTO dwa.events (task_id, step_id, event, payload)
        VALUES (p_task_id, NULL, ev, out - '$event')
        RETURNING id INTO v_id;
        note := json_build_object('task_id', p_task_id, 'event', ev, 'id', v_id,
            'data', out - '$event')::text;
        IF octet_length(note) >= 8000 THEN
            -- Over NOTIFY's limit: listeners read the payload from dwa.events.
            note := json_build_object('task_id', p_task_id, 'event', ev, 'id', v_id)::text;
        END IF;
        PERFORM pg_notify('dwa_events', note);
    WHEN 'enqueue' THEN
        BEGIN
            v_id := dwa.submit((out -> 'task') || jsonb_build_object('parentId', p_task_id));
        EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        END;
        INSERT INTO dwa.outbox (task_id, hook, event, effect_index, effect, status, attempts,
            last_error, delivered_at)
        VALUES (p_task_id, p_hook, ev, p_index,
            CASE WHEN msg IS NULL THEN out || jsonb_build_object('taskId', v_id) ELSE out END,
            CASE WHEN msg IS NULL THEN 'delivered' ELSE 'dead' END, 1,
            CASE WHEN msg IS NOT NULL THEN format('%s: %s', where_, msg) END,
            CASE WHEN msg IS NULL THEN now() END);
    ELSE
        WHILE prev_status = 'pending' LOOP
            -- Coalesce: the pending row carries the latest progress.  A
            -- dispatcher may have claimed it meanwhile: then look again.
            -- By its address: by id alone, statistics of an empty outbox
            -- could plan it on outbox_due_idx, which ends in id.
            UPDATE dwa.outbox SET effect = out,
                   max_attempts = coalesce((out #>> '{retry,attempts}')::integer, 10)
             WHERE ctid = prev_tid AND id = prev_id AND status = 'pending';
            IF FOUND THEN
                RETURN;
            END IF;
            SELECT o.ctid, o.id, o.status, o.delivered_at, o.last_error
              INTO prev_tid, prev_id, prev_status, prev_delivered, prev_error
              FROM dwa.outbox o
             WHERE o.task_id = p_task_id AND o.hook = 'onProgress' AND o.effect_index = p_index
             ORDER BY o.id DESC LIMIT 1;
        END LOOP;
        -- At most one onProgress delivery of this effect a second (no prev
        -- for the other hooks and the first report).
        due := CASE prev_status
            WHEN 'delivered' THEN prev_delivered + interval '1 second'
            WHEN 'delivering' THEN now() + interval '1 second'
        END;
        INSERT INTO dwa.outbox (task_id, hook, event, effect_index, effect, max_attempts,
            next_attempt_at)
        VALUES (p_task_id, p_hook, ev, p_index, out,
            coalesce((out #>> '{retry,attempts}')::integer, 10), greatest(now(), due));
        PERFORM pg_notify('dwa_outbox', '');
    END CASE;
END
$$;
COMMENT ON FUNCTION dwa._effect(bigint, text, integer, jsonb, jsonb, jsonb) IS
    'Fire one effect: outbox row, UI event or follow-up task; failures become dead outbox rows';

-- _fire: fire the effects of lifecycle point p_hook (onPending,
-- onProgress, onSuccess, onError) of a task, in effect order.
CREATE OR REPLACE FUNCTION dwa._fire(p_task_id bigint, p_hook text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    effects jsonb;
    c record;
    e jsonb;
    i integer;
BEGIN
    SELECT CASE p_hook WHEN 'onPending' THEN x.on_pending WHEN 'onProgress' THEN x.on_progress
                WHEN 'onSuccess' THEN x.on_success WHEN 'onError' THEN x.on_error END
      INTO effects FROM dwa.tasks x WHERE x.id = p_task_id;
    IF jsonb_typeof(effects) IS DISTINCT FROM 'array' THEN
        RETURN;
    END IF;
    SELECT x.ctx, x.summary INTO c FROM dwa._effect_context(p_task_id, p_hook) x;
    FOR e, i IN SELECT x.value, (x.n - 1)::integer
                  FROM jsonb_array_elements(effects) WITH ORDINALITY AS x(value, n)
    LOOP
        PERFORM dwa._effect(p_task_id, p_hook, i, e, c.ctx, c.summary);
    END LOOP;
END
$$;
COMMENT ON FUNCTION dwa._fire(bigint, text) IS
    'Fire a task''s effects for one lifecycle point, in the transaction of the state change';

-- _outbox_claim: claim up to p_n due deliveries for daemon p_worker.
--
-- onProgress deliveries of one effect of a task go one at a time, in
-- order, at least a second apart: a due row is held back (its
-- next_attempt_at moved on) while the previous one of the same effect
-- (rows never attempted aside) is in flight (looked at again a second
-- later) or waits for a retry (until a second after that falls due), or
-- until a second after it was delivered.  Only committed states are read,
-- so a report and an outcome recorded at the same moment need no lock
-- between them.
--
-- The rows locked are updated by id (= ANY of an array), never through a
-- join with the outbox: statistics taken while it was empty could plan a
-- join as a walk of its whole primary key for each claim.  Nor by their
-- addresses: a row changed since the statement's snapshot (a progress
-- report coalesced into it) is locked at an address the statement cannot
-- see, while an update by id follows the row there.  No index but the
-- primary key ends in id where the statement could use it (0007).
CREATE OR REPLACE FUNCTION dwa._outbox_claim(p_worker integer, p_n integer, p_lease interval)
RETURNS TABLE (id bigint, delivery_id uuid, task_id bigint, hook text, event text,
    effect jsonb, attempts integer, max_attempts integer)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS MATERIALIZED (
        SELECT o.id, o.task_id, o.hook, o.effect_index FROM dwa.outbox o
         WHERE o.status = 'pending' AND o.next_attempt_at <= now()
           AND o.event <> 'enqueue'
         ORDER BY o.next_attempt_at, o.id
         LIMIT p_n
           FOR UPDATE SKIP LOCKED
    ), w AS MATERIALIZED (
        SELECT c.id, CASE p.status
                         WHEN 'delivering' THEN now()
                         WHEN 'pending' THEN greatest(now(), p.next_attempt_at)
                         ELSE p.delivered_at END + interval '1 second' AS due
          FROM c
         CROSS JOIN LATERAL (
               SELECT q.status, q.next_attempt_at, q.delivered_at FROM dwa.outbox q
                WHERE q.task_id = c.task_id AND q.id < c.id AND q.hook = 'onProgress'
                  AND q.effect_index = c.effect_index AND (q.status <> 'dead' OR q.attempts > 0)
                ORDER BY q.id DESC LIMIT 1) p
         WHERE c.hook = 'onProgress'
           AND (p.status IN ('pending', 'delivering')
                OR p.delivered_at > now() - interval '1 second')
    ), h AS (
        UPDATE dwa.outbox o SET next_attempt_at = (SELECT w.due FROM w WHERE w.id = o.id)
         WHERE o.id = ANY (ARRAY(SELECT w.id FROM w))
    ), u AS (
        UPDATE dwa.outbox o
           SET status = 'delivering', attempts = o.attempts + 1, worker_id = p_worker,
               lease_until = now() + p_lease
         WHERE o.id = ANY (ARRAY(SELECT c.id FROM c
                                  WHERE NOT EXISTS (SELECT 1 FROM w WHERE w.id = c.id)))
        RETURNING o.id, o.delivery_id, o.task_id, o.hook, o.event, o.effect, o.attempts,
                  o.max_attempts, o.next_attempt_at
    )
    SELECT u.id, u.delivery_id, u.task_id, u.hook, u.event, u.effect, u.attempts,
           u.max_attempts
      FROM u
     ORDER BY u.next_attempt_at, u.id;
END
$$;
COMMENT ON FUNCTION dwa._outbox_claim(integer, integer, interval) IS
    'Claim due outbox rows (SKIP LOCKED) for a daemon: delivering, attempts + 1, a lease';

-- _outbox_finish: record delivery outcomes.  p_results is an array of
-- {id, worker, attempt, ok, error, retryable, retryAfterMs}: the row, the
-- daemon that claimed it and the attempt number its claim returned.  An
-- outcome counts only while the row is still delivering under that very
-- claim: a row reaped from a daemon cut off for too long, and claimed
-- again since (by another daemon or by the same one), is left alone, as
-- are rows finished already.  The lease is not checked: a row whose lease
-- ran out but that nobody reaped and claimed since is still this claim's,
-- and its outcome is the truth (refusing it would only deliver it again).
-- Each row is looked up by primary key, one at a time, and updated where
-- the lookup found it (a join on its address): a join on id could be
-- planned as a walk of the primary key from the statistics of an empty
-- outbox, while this reads the rows found (or, planned on outbox_lease_idx,
-- at most the deliveries in flight).  A row changed since is not at that
-- address for the update's recheck, and is refused: only the reaper
-- changes a delivering row, which ends the claim.  Returns rows changed.
CREATE OR REPLACE FUNCTION dwa._outbox_finish(p_results jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
    requeued boolean;
BEGIN
    WITH r AS (
        SELECT DISTINCT ON (x.id) x.*
          FROM jsonb_to_recordset(p_results)
               AS x(id bigint, worker integer, attempt integer, ok boolean, error text,
                    retryable boolean, "retryAfterMs" double precision)
         ORDER BY x.id
    ), k AS MATERIALIZED (
        SELECT r.*, x.tid FROM r
         CROSS JOIN LATERAL (SELECT o.ctid AS tid FROM dwa.outbox o
                              WHERE o.id = r.id OFFSET 0) x
    ), u AS (
        UPDATE dwa.outbox o
           SET status = CASE WHEN k.ok THEN 'delivered'
                             WHEN k.retryable AND o.attempts < o.max_attempts THEN 'pending'
                             ELSE 'dead' END,
               last_error = CASE WHEN k.ok THEN NULL
                                 ELSE coalesce(nullif(k.error, ''), 'delivery failed') END,
               delivered_at = CASE WHEN k.ok THEN now() END,
               next_attempt_at = CASE
                   WHEN NOT k.ok AND k.retryable AND o.attempts < o.max_attempts
                   THEN now() + make_interval(secs => greatest(coalesce(k."retryAfterMs", 0),
                            dwa._outbox_backoff(o.effect -> 'retry', o.attempts)
                            * (0.5 + random() / 2)) / 1000)
                   ELSE o.next_attempt_at END,
               lease_until = NULL
          FROM k
         WHERE o.ctid = ANY (ARRAY(SELECT k.tid FROM k)) AND o.ctid = k.tid
           AND o.status = 'delivering'
           AND o.worker_id = k.worker AND o.attempts = k.attempt
        RETURNING o.status
    )
    SELECT count(*), coalesce(bool_or(u.status = 'pending'), false) INTO n, requeued FROM u;
    IF requeued THEN
        PERFORM pg_notify('dwa_outbox', '');
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION dwa._outbox_finish(jsonb) IS
    'Record the outcomes of a daemon''s claims: delivered, retried with backoff and jitter, or dead; returns rows changed';

-- outbox_retry: queue a dead delivery again, with fresh attempts.
--
-- A dead row never attempted is one whose templates failed to render (or
-- whose fields had the wrong shape) when its task fired it: it holds the
-- effect as written, so it is rendered again from the task as it is now.
-- When that fails again the row stays dead and the error says why.
CREATE OR REPLACE FUNCTION dwa.outbox_retry(p_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    c record;
    out jsonb;
    msg text;
BEGIN
    SELECT o.status, o.event, o.attempts, o.task_id, o.hook, o.effect_index, o.effect
      INTO r FROM dwa.outbox o WHERE o.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox row % not found', p_id USING ERRCODE = 'P0002';
    END IF;
    IF r.status <> 'dead' THEN
        RAISE EXCEPTION 'outbox row % is %: only dead rows can be retried', p_id, r.status
            USING ERRCODE = '55000';
    END IF;
    IF r.event NOT IN ('webhook', 'notify', 'invalidate') THEN
        RAISE EXCEPTION 'outbox row % is a dead % effect: only webhook, notify and invalidate deliveries can be retried',
            p_id, r.event USING ERRCODE = '55000';
    END IF;
    IF r.attempts = 0 THEN
        SELECT x.ctx, x.summary INTO c FROM dwa._effect_context(r.task_id, r.hook) x;
        IF c.ctx IS NULL THEN
            RAISE EXCEPTION 'outbox row %: its task is gone, so its templates cannot be rendered again',
                p_id USING ERRCODE = '55000';
        END IF;
        BEGIN
            out := dwa._effect_shape(dwa._effect_render(r.effect, c.ctx), r.task_id,
                c.ctx #>> '{task,status}', c.summary);
        EXCEPTION WHEN data_exception THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
            RAISE EXCEPTION 'outbox row % cannot be rendered from task %: %[%]: %', p_id,
                r.task_id, r.hook, r.effect_index, msg USING ERRCODE = '22023',
                HINT = 'the row stays dead; the effect is rendered from the task''s payload, result and error as they are now';
        END;
        UPDATE dwa.outbox SET effect = out,
               max_attempts = coalesce((out #>> '{retry,attempts}')::integer, 10)
         WHERE id = p_id;
    END IF;
    UPDATE dwa.outbox SET status = 'pending', attempts = 0, next_attempt_at = now(),
           lease_until = NULL, delivered_at = NULL
     WHERE id = p_id;
    PERFORM pg_notify('dwa_outbox', '');
    RETURN true;
END
$$;
COMMENT ON FUNCTION dwa.outbox_retry(bigint) IS
    'Queue a dead delivery again with fresh attempts (its delivery id is kept); one that failed to render is rendered again from its task';
