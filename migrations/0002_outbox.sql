-- 0002_outbox.sql: the effects outbox and the UI event log.
--
-- A lifecycle point of a task (onPending, onProgress, onSuccess, onError)
-- writes its rendered effects here in the same transaction as the state
-- change: deliveries (webhook, notify, invalidate) into dwa.outbox, for the
-- dispatcher in dwad to claim and send at least once; UI events (toast,
-- emit, redirect) into dwa.events, which SSE streams.  Neither table has a
-- foreign key to dwa.tasks: rows outlive nothing they need, and the RI
-- trigger would slow every completion; dwa._tasks_deleted cleans up.

CREATE TABLE dwa.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    task_id         bigint,
    hook            text NOT NULL
                    CHECK (hook IN ('onPending', 'onProgress', 'onSuccess', 'onError')),
    event           text NOT NULL,
    effect_index    integer,
    effect          jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivering', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 10,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    worker_id       integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
COMMENT ON TABLE dwa.outbox IS
    'Effects to deliver (webhook, notify, invalidate) and enqueue outcomes, written with the state change that fired them';
COMMENT ON COLUMN dwa.outbox.delivery_id IS
    'sent as X-DWA-Delivery: stable across retries, so receivers can drop duplicates';
COMMENT ON COLUMN dwa.outbox.hook IS
    'the lifecycle point that fired the effect: onPending, onProgress, onSuccess or onError';
COMMENT ON COLUMN dwa.outbox.event IS
    'the effect''s $event: webhook, notify, invalidate, enqueue (or toast, emit, redirect when dead)';
COMMENT ON COLUMN dwa.outbox.effect_index IS
    'position of the effect in its hook''s list: onProgress rows coalesce per task and position';
COMMENT ON COLUMN dwa.outbox.effect IS
    'the rendered effect the dispatcher delivers (the definition as written when rendering failed)';
COMMENT ON COLUMN dwa.outbox.status IS
    'pending (due at next_attempt_at), delivering (claimed under a lease), delivered, dead';
COMMENT ON COLUMN dwa.outbox.attempts IS 'deliveries started: incremented at each claim';
COMMENT ON COLUMN dwa.outbox.lease_until IS
    'a delivering row whose lease ran out goes back to pending (dwa._reap)';
COMMENT ON COLUMN dwa.outbox.worker_id IS 'the daemon (dwa.workers.id) that claimed the row';
COMMENT ON COLUMN dwa.outbox.last_error IS 'the error of the last failed attempt, kept when dead';

CREATE INDEX outbox_due_idx ON dwa.outbox (next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX outbox_task_idx ON dwa.outbox (task_id, id);
CREATE INDEX outbox_lease_idx ON dwa.outbox (lease_until)
    WHERE status = 'delivering';

CREATE TABLE dwa.events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     bigint,
    step_id     text,
    event       text NOT NULL,
    payload     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dwa.events IS
    'UI events (toast, emit, redirect) fired by tasks, in order of id; also sent on NOTIFY dwa_events';
COMMENT ON COLUMN dwa.events.payload IS 'the rendered effect without its "$event"';
CREATE INDEX events_task_idx ON dwa.events (task_id, id);

ALTER TABLE dwa.outbox SET (autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02);
