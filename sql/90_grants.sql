-- 90_grants.sql: who may do what.  Functions are revoked from PUBLIC and
-- granted to the three roles; dwa_admin is a member of the other two.

REVOKE ALL ON ALL TABLES IN SCHEMA dwa FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dwa FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dwa FROM PUBLIC;

GRANT USAGE ON SCHEMA dwa TO dwa_submitter, dwa_worker, dwa_admin;

GRANT SELECT ON dwa.tasks, dwa.task_steps, dwa.queue_stats, dwa.task_types, dwa.events
    TO dwa_submitter, dwa_worker;
GRANT INSERT ON dwa.tasks TO dwa_submitter;
GRANT EXECUTE ON FUNCTION dwa.submit(jsonb), dwa.submit(text) TO dwa_submitter;
GRANT EXECUTE ON FUNCTION dwa._duration(jsonb, text), dwa._reject(text, text, text)
    TO dwa_submitter;

GRANT EXECUTE ON FUNCTION dwa.claim(text, text[], integer, interval, text[]),
    dwa.heartbeat(text, bigint[], interval), dwa.progress(bigint, numeric, jsonb),
    dwa.complete(bigint, jsonb), dwa.fail(bigint, text, boolean, interval),
    dwa.stream(bigint, text, jsonb)
    TO dwa_worker;

-- Limits: anyone may look; only admins set them.  The view calls these
-- helpers as the querying role.
GRANT SELECT ON dwa.limit_stats TO dwa_submitter, dwa_worker;
GRANT EXECUTE ON FUNCTION dwa._limit_keys(text, text, text, text[]),
    dwa._limit_burst(double precision, integer),
    dwa._limit_tokens(double precision, double precision, interval, integer, timestamptz,
        timestamptz)
    TO dwa_submitter, dwa_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON dwa.limits TO dwa_admin;
GRANT EXECUTE ON FUNCTION dwa.limit_set(text, integer, text, integer), dwa.limit_delete(text)
    TO dwa_admin;

-- Backends: workers may see where steps go (not the tokens: only their
-- variable names are stored); admins change them.
GRANT SELECT ON dwa.backends TO dwa_worker;
GRANT EXECUTE ON FUNCTION dwa.backend_set(text, text, text, interval, integer),
    dwa.backend_delete(text)
    TO dwa_admin;

GRANT SELECT ON dwa.outbox TO dwa_admin;
GRANT EXECUTE ON FUNCTION dwa.outbox_retry(bigint) TO dwa_admin;

GRANT ALL ON ALL TABLES IN SCHEMA dwa TO dwa_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA dwa TO dwa_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA dwa TO dwa_admin;
