-- 0008_claims.sql: dwad's claims are recorded a batch to a row.
--
-- A run of dwa.runs was a row inserted by its claim and deleted by its end:
-- two index insertions and two heap writes a task, a quarter of a claim's
-- time.  dwad claims in batches and knows when every end of a batch is
-- committed, so it records each batch once, in dwa.claims, and deletes the
-- row when the batch is over (with its next claim or lease renewal).
-- External workers' claims (dwa.claim) and claims under limits keep their
-- rows in dwa.runs: an external worker names runs one at a time, and caps
-- count the limited runs by the keys recorded there.
--
-- The pairs of a batch stay in its row after their ends: a pair counts as
-- a run in flight only while its step is running under its run id.  The
-- reaper looks at the rows of dead daemons and at those whose lease ran
-- out (dwad stops renewing a batch when one of its ends could not be
-- recorded), and deletes a row once none of its pairs is in flight.
--
-- Daemons of an earlier version must be restarted after this migration:
-- their claims and renewals call functions whose arguments changed.

CREATE TABLE dwa.claims (
    batch       bigint PRIMARY KEY,
    worker_id   integer NOT NULL,
    lease_until timestamptz NOT NULL,
    step_ids    bigint[] NOT NULL,
    run_ids     bigint[] NOT NULL
);
COMMENT ON TABLE dwa.claims IS
    'dwad''s claim batches in flight: the steps and run ids a claim took, a row per batch';
COMMENT ON COLUMN dwa.claims.batch IS 'the first run id of the batch';
COMMENT ON COLUMN dwa.claims.lease_until IS
    'renewed while the daemon holds the batch; once past, the reaper looks at its steps';

ALTER TABLE dwa.claims SET (autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02);

-- A batch of 256 makes a row of 4 kB, over the size at which PostgreSQL
-- compresses it.  pglz took 1.5 ms on such a row (a claim's whole time is
-- a few ms); lz4 takes 45 us.  A server built without lz4 stores the
-- arrays uncompressed, out of line (55 us).
DO $$
BEGIN
    ALTER TABLE dwa.claims ALTER COLUMN step_ids SET COMPRESSION lz4,
                           ALTER COLUMN run_ids SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    ALTER TABLE dwa.claims ALTER COLUMN step_ids SET STORAGE EXTERNAL,
                           ALTER COLUMN run_ids SET STORAGE EXTERNAL;
END
$$;
