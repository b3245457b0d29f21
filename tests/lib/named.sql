-- named.sql: helpers most SQL tests share, included with \ir.  All in
-- pg_temp: the test's own session.

-- ids: what a test created, by a name of its own (tasks, workers, rows).
CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint NOT NULL);
CREATE FUNCTION pg_temp.id(p_name text) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM ids WHERE name = p_name
$$;

-- connstr: a connection string to this database, for dblink sessions.
CREATE FUNCTION pg_temp.connstr() RETURNS text LANGUAGE sql AS $$
    SELECT format('dbname=%s host=%s port=%s user=postgres', current_database(),
        split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'))
$$;
