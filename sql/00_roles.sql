-- 00_roles.sql: the three roles DWA grants to.
--
-- Roles belong to the cluster, not the database, and the migrate lock is
-- per database: two databases migrating at once race here.  Creation and
-- membership are therefore attempted only when missing, and losing the
-- race to another migration is not an error.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
            ('dwa_submitter', 'DWA: submit tasks and read their status'),
            ('dwa_worker', 'DWA: claim, heartbeat, progress, complete and fail steps'),
            ('dwa_admin', 'DWA: everything, including cancel, retry and prune'))
            AS v(name, comment)
    LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r.name);
            EXECUTE format('COMMENT ON ROLE %I IS %L', r.name, r.comment);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;   -- created meanwhile by a migration of another database
        END;
    END LOOP;
    FOR r IN SELECT * FROM (VALUES ('dwa_submitter'), ('dwa_worker')) AS v(name) LOOP
        CONTINUE WHEN pg_has_role('dwa_admin', r.name, 'MEMBER');
        BEGIN
            EXECUTE format('GRANT %I TO dwa_admin', r.name);
        EXCEPTION WHEN unique_violation OR internal_error THEN
            NULL;   -- "tuple concurrently updated": granted meanwhile
        END;
    END LOOP;
END
$$;
