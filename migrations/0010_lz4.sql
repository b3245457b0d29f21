-- 0010_lz4.sql: large JSON values of tasks and steps compressed with lz4.
--
-- A value over about 2 kB is compressed when its row is written.  pglz,
-- the default, took 4 % of the submission of a forEach over 100,000
-- elements (its 700 kB payload) and lz4 about a fifth of that, for a
-- value a quarter larger.  A server built without lz4 keeps pglz.  Values
-- already stored stay as they are.

DO $$
BEGIN
    ALTER TABLE dwa.tasks ALTER COLUMN payload SET COMPRESSION lz4,
                          ALTER COLUMN steps SET COMPRESSION lz4,
                          ALTER COLUMN result SET COMPRESSION lz4;
    ALTER TABLE dwa.steps ALTER COLUMN def SET COMPRESSION lz4,
                          ALTER COLUMN input SET COMPRESSION lz4,
                          ALTER COLUMN output SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not supported by this server: large values stay compressed with pglz';
END
$$;
