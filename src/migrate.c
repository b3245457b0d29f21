/*
 * migrate.c: bring a database to this build's schema.
 *
 * Under a session advisory lock (so two migrates at once take turns), each
 * migration not yet in dwa.schema_migrations runs in its own transaction
 * with its row; then all of sql/ (CREATE OR REPLACE) runs again in one
 * transaction.  Running it twice changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "pq.h"
#include "xmalloc.h"

/* The version of a migration: the digits before the first '_'. */
static char *
migrate_version(const char *name)
{
	return (xstrndup(name, strcspn(name, "_")));
}

/* The newest migration this build carries. */
const char *
migrate_latest(void)
{
	const struct sql_file	*f, *last = NULL;

	for (f = migrate_migrations; f->name != NULL; f++)
		last = f;
	return (last != NULL ? last->name : "");
}

static int
migrate_apply(PGconn *conn, const struct sql_file *f, int *applied,
    char **cause)
{
	const char	*params[2];
	PGresult	*res;
	char		*version, *err = NULL;
	int		 done;

	version = migrate_version(f->name);
	params[0] = version;
	params[1] = f->name;
	res = pq_exec(conn, "SELECT 1 FROM dwa.schema_migrations WHERE "
	    "version = $1", 1, params, cause);
	if (res == NULL)
		goto fail;
	done = PQntuples(res) > 0;
	PQclear(res);
	if (done) {
		free(version);
		return (0);
	}
	if (pq_command(conn, "BEGIN", cause) != 0)
		goto fail;
	if (pq_command(conn, f->text, &err) != 0) {
		xasprintf(cause, "migration %s: %s", f->name, err);
		free(err);
		err = NULL;
		pq_command(conn, "ROLLBACK", &err);
		free(err);
		goto fail;
	}
	res = pq_exec(conn, "INSERT INTO dwa.schema_migrations (version, name) "
	    "VALUES ($1, $2)", 2, params, cause);
	if (res == NULL)
		goto fail;
	PQclear(res);
	if (pq_command(conn, "COMMIT", cause) != 0)
		goto fail;
	(*applied)++;
	free(version);
	return (0);
fail:
	free(version);
	return (-1);
}

/* Apply what is missing; *applied counts the migrations run. */
int
migrate_run(PGconn *conn, int *applied, char **cause)
{
	const struct sql_file	*f;
	char			 sql[128], *err = NULL;

	*applied = 0;
	snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%d, 0)",
	    DWA_LOCK_CLASS);
	if (pq_command(conn, sql, cause) != 0)
		return (-1);
	if (pq_command(conn,
	    "SET client_min_messages = warning;"
	    "CREATE SCHEMA IF NOT EXISTS dwa;"
	    "COMMENT ON SCHEMA dwa IS 'DWA: durable task graphs';"
	    "CREATE TABLE IF NOT EXISTS dwa.schema_migrations ("
	    " version text PRIMARY KEY, name text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now());"
	    "COMMENT ON TABLE dwa.schema_migrations IS"
	    " 'Migrations applied to this database, by version'", cause) != 0)
		goto fail;
	for (f = migrate_migrations; f->name != NULL; f++) {
		if (migrate_apply(conn, f, applied, cause) != 0)
			goto fail;
	}
	if (pq_command(conn, "BEGIN", cause) != 0)
		goto fail;
	for (f = migrate_sql; f->name != NULL; f++) {
		if (pq_command(conn, f->text, &err) != 0) {
			xasprintf(cause, "sql/%s.sql: %s", f->name, err);
			free(err);
			err = NULL;
			pq_command(conn, "ROLLBACK", &err);
			free(err);
			goto fail;
		}
	}
	if (pq_command(conn, "COMMIT", cause) != 0)
		goto fail;
	snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d, 0)",
	    DWA_LOCK_CLASS);
	pq_command(conn, sql, &err);
	free(err);
	return (0);
fail:
	snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d, 0)",
	    DWA_LOCK_CLASS);
	err = NULL;
	pq_command(conn, sql, &err);
	free(err);
	return (-1);
}

/*
 * Check that the database's schema is the one this build expects.
 * Returns 0, or -1 with a message naming 'dwa migrate'.
 */
int
migrate_check(PGconn *conn, char **cause)
{
	PGresult	*res;
	char		*want;
	const char	*have;
	int		 cmp;

	want = migrate_version(migrate_latest());
	res = pq_exec(conn, "SELECT max(version) FROM dwa.schema_migrations",
	    0, NULL, cause);
	if (res == NULL) {
		free(*cause);
		xasprintf(cause, "database has no DWA schema: run 'dwa migrate'");
		free(want);
		return (-1);
	}
	have = PQgetisnull(res, 0, 0) ? "none" : PQgetvalue(res, 0, 0);
	cmp = strcmp(have, want);
	if (PQgetisnull(res, 0, 0) || cmp < 0) {
		xasprintf(cause, "schema is at %s, this build needs %s: run "
		    "'dwa migrate'", have, want);
		PQclear(res);
		free(want);
		return (-1);
	}
	PQclear(res);
	free(want);
	return (0);
}
