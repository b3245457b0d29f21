-- 00_roles.sql: the three roles DWA grants to, created once per cluster.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dwa_submitter') THEN
        CREATE ROLE dwa_submitter NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dwa_worker') THEN
        CREATE ROLE dwa_worker NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dwa_admin') THEN
        CREATE ROLE dwa_admin NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE dwa_submitter IS 'DWA: submit tasks and read their status';
COMMENT ON ROLE dwa_worker IS 'DWA: claim, heartbeat, progress, complete and fail steps';
COMMENT ON ROLE dwa_admin IS 'DWA: everything, including cancel, retry and prune';
