-- plan-reads.sql: helpers for the tests that bound what a statement reads
-- of a table while the planner's statistics are wrong (plans*.sql),
-- included with \ir.  All in pg_temp: the test's own session.

-- reads(table): rows returned, index entries returned and blocks fetched
-- of the table and of all its indexes so far in this transaction (a scan
-- keyed on a later column of an index returns few entries but walks all
-- of it; a sequential scan returns every row).
CREATE FUNCTION pg_temp.reads(p_table regclass) RETURNS bigint LANGUAGE sql AS $$
    SELECT sum(pg_stat_get_xact_tuples_returned(r) + pg_stat_get_xact_blocks_fetched(r))::bigint
      FROM (SELECT p_table::oid AS r
            UNION ALL SELECT i.indexrelid FROM pg_index i WHERE i.indrelid = p_table) x
$$;
-- reads_of(sql, table): what running sql reads of the table (the counts
-- are the transaction's: psql runs each statement in its own).
CREATE FUNCTION pg_temp.reads_of(p_sql text, p_table regclass) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n0 bigint := pg_temp.reads(p_table);
BEGIN
    EXECUTE p_sql;
    RETURN pg_temp.reads(p_table) - n0;
END
$$;
-- believed_rows(table): the planner's estimate of the table's rows.
CREATE FUNCTION pg_temp.believed_rows(p_table regclass) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    p json;
BEGIN
    EXECUTE format('EXPLAIN (FORMAT JSON) SELECT * FROM %s', p_table) INTO p;
    RETURN (p -> 0 -> 'Plan' ->> 'Plan Rows')::numeric;
END
$$;
