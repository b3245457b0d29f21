/*
 * pq.c: blocking connection and query helpers that turn every failure into
 * one message a user can act on.
 */
#include <stdlib.h>
#include <string.h>

#include "pq.h"
#include "xmalloc.h"

static void
pq_notice_cb(void *arg __unused, const char *message __unused)
{
	/* NOTICEs of idempotent DDL ("already exists, skipping") are noise. */
}

/*
 * Connect to url (NULL or "": libpq's environment, PG* and DATABASE_URL)
 * as application name app.  On failure return NULL and a message.
 */
PGconn *
pq_connect(const char *url, const char *app, char **cause)
{
	const char	*keys[] = { "dbname", "fallback_application_name", NULL };
	const char	*vals[] = { NULL, NULL, NULL };
	PGconn		*conn;
	char		*msg;
	size_t		 n;

	if (url == NULL || *url == '\0')
		url = getenv("DATABASE_URL");
	vals[0] = url;
	vals[1] = app;
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		msg = xstrdup(conn != NULL ? PQerrorMessage(conn) : "out of memory");
		/* libpq's message spans lines: make it one. */
		for (n = 0; msg[n] != '\0'; n++) {
			if (msg[n] == '\n' || msg[n] == '\t')
				msg[n] = ' ';
		}
		while (n > 0 && msg[n - 1] == ' ')
			msg[--n] = '\0';
		xasprintf(cause, "cannot connect to the database: %s; set "
		    "DATABASE_URL or --db", msg);
		free(msg);
		PQfinish(conn);
		return (NULL);
	}
	PQsetNoticeProcessor(conn, pq_notice_cb, NULL);
	return (conn);
}

/* The error of a failed result: message, then detail and hint if any. */
char *
pq_result_error(const PGresult *res)
{
	const char	*msg, *detail, *hint;
	char		*out;

	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	if (msg == NULL) {
		out = xstrdup(PQresultErrorMessage(res));
		out[strcspn(out, "\n")] = '\0';
		return (out);
	}
	xasprintf(&out, "%s%s%s%s", msg, detail != NULL ? " (" : "",
	    detail != NULL ? detail : "", detail != NULL ? ")" : "");
	if (hint != NULL) {
		char	*tmp = out;

		xasprintf(&out, "%s; hint: %s", tmp, hint);
		free(tmp);
	}
	return (out);
}

/*
 * Run one statement with text parameters.  Returns the result (the caller
 * PQclears it) or NULL and a message.
 */
PGresult *
pq_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
    char **cause)
{
	PGresult	*res;

	res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (res == NULL) {
		xasprintf(cause, "%s", PQerrorMessage(conn));
		(*cause)[strcspn(*cause, "\n")] = '\0';
		return (NULL);
	}
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		return (res);
	default:
		*cause = pq_result_error(res);
		PQclear(res);
		return (NULL);
	}
}

/* Run a command (possibly several statements) without parameters. */
int
pq_command(PGconn *conn, const char *sql, char **cause)
{
	PGresult	*res;

	res = PQexec(conn, sql);
	if (res == NULL) {
		xasprintf(cause, "%s", PQerrorMessage(conn));
		return (-1);
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		*cause = pq_result_error(res);
		PQclear(res);
		return (-1);
	}
	PQclear(res);
	return (0);
}
