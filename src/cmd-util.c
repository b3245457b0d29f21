/*
 * cmd-util.c: what several commands share: waiting for news of a task on
 * channel dwa_events, and printing query results as aligned tables.
 *
 * A NOTIFY is only a hint.  Waiting always ends after the caller's poll
 * interval too, so a missed notification (or one sent before LISTEN took
 * effect) delays an answer by at most one interval and never hangs it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "log.h"
#include "pq.h"
#include "util.h"
#include "xmalloc.h"

/* The five task states, for usage messages and validation. */
const char *const cmd_task_states[] = {
	"queued", "running", "completed", "failed", "cancelled", NULL
};

/* Return 1 if status is a final task state. */
int
cmd_task_finished(const char *status)
{
	return (strcmp(status, "completed") == 0 ||
	    strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0);
}

/* Subscribe this session to dwa_events. */
int
cmd_listen(PGconn *conn, char **cause)
{
	return (pq_command(conn, "LISTEN dwa_events", cause));
}

/* Return 1 if a dwa_events payload concerns the task (or cannot be read). */
static int
cmd_event_matches(const char *payload, long long task_id)
{
	json_t		*ev, *id;
	json_error_t	 err;
	int		 match;

	if ((ev = json_loads(payload, JSON_DECODE_ANY, &err)) == NULL)
		return (1);
	id = json_object_get(ev, "task_id");
	match = !json_is_integer(id) || json_integer_value(id) == task_id;
	json_decref(ev);
	return (match);
}

/*
 * Wait, blocked on the connection's socket, until the task had news or
 * interval ms passed since 'since' (util_now_ms() of the caller's last
 * look).  News sooner than CMD_MIN_GAP_MS after that look waits for the
 * gap, so a burst of progress events costs one query, not one each.
 * Returns 0, or -1 and a message when the connection failed.
 */
int
cmd_wait_task(PGconn *conn, long long task_id, long long since,
    long long interval, char **cause)
{
	PGnotify	*n;
	struct pollfd	 pfd;
	long long	 now, until;
	int		 news = 0, rc;

	for (;;) {
		while ((n = PQnotifies(conn)) != NULL) {
			if (cmd_event_matches(n->extra, task_id))
				news = 1;
			PQfreemem(n);
		}
		now = util_now_ms();
		until = since + interval;
		if (news && since + CMD_MIN_GAP_MS < until)
			until = since + CMD_MIN_GAP_MS;
		if (now >= until)
			return (0);

		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd < 0) {
			*cause = xstrdup("lost the database connection");
			return (-1);
		}
		rc = poll(&pfd, 1, (int)(until - now));
		if (rc == -1) {
			if (errno == EINTR)
				continue;
			xasprintf(cause, "poll: %s", strerror(errno));
			return (-1);
		}
		if (rc > 0 && !PQconsumeInput(conn)) {
			xasprintf(cause, "lost the database connection: %s",
			    PQerrorMessage(conn));
			(*cause)[strcspn(*cause, "\n")] = '\0';
			return (-1);
		}
	}
}

/* Display width of UTF-8 text: its code points (close enough for tables). */
static size_t
cmd_width(const char *s)
{
	size_t	n = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	}
	return (n);
}

/*
 * Untrusted text made fit for one line: control characters escaped, then
 * cut to max code points ("..." marks the cut; 0 means no limit).  The
 * caller frees the result.
 */
char *
cmd_escape(const char *s, size_t max)
{
	char	*out;
	size_t	 i, n = 0;

	out = log_escape(s);
	if (max < 4 || cmd_width(out) <= max)
		return (out);
	for (i = 0; out[i] != '\0'; i++) {
		if (((unsigned char)out[i] & 0xc0) != 0x80 && n++ == max - 3)
			break;
	}
	memcpy(out + i, "...", 4);
	return (out);
}

/*
 * Print the first ncols columns of res as a table on stdout: a header of
 * the column names, then one line per row, columns padded to line up.  NULL
 * shows as "-"; each cell is escaped and cut to maxw code points.
 */
void
cmd_table_print(const PGresult *res, int ncols, size_t maxw)
{
	char	**cell;
	size_t	 *width, w;
	int	  nrows, r, c;

	nrows = PQntuples(res);
	if (ncols > PQnfields(res))
		ncols = PQnfields(res);
	cell = xcalloc((size_t)(nrows + 1) * ncols, sizeof *cell);
	width = xcalloc(ncols, sizeof *width);
	for (c = 0; c < ncols; c++)
		cell[c] = xstrdup(PQfname(res, c));
	for (r = 0; r < nrows; r++) {
		for (c = 0; c < ncols; c++) {
			if (PQgetisnull(res, r, c))
				cell[(r + 1) * ncols + c] = xstrdup("-");
			else
				cell[(r + 1) * ncols + c] = cmd_escape(
				    PQgetvalue(res, r, c), maxw);
		}
	}
	for (r = 0; r <= nrows; r++) {
		for (c = 0; c < ncols; c++) {
			if ((w = cmd_width(cell[r * ncols + c])) > width[c])
				width[c] = w;
		}
	}
	for (r = 0; r <= nrows; r++) {
		for (c = 0; c < ncols; c++) {
			fputs(cell[r * ncols + c], stdout);
			if (c == ncols - 1)
				break;
			w = cmd_width(cell[r * ncols + c]);
			printf("%*s", (int)(width[c] - w + 2), "");
		}
		putchar('\n');
	}
	for (r = 0; r < (nrows + 1) * ncols; r++)
		free(cell[r]);
	free(cell);
	free(width);
}

/* Return 1 if s is one of the strings of the NULL-terminated list. */
int
cmd_in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++) {
		if (strcmp(s, *list) == 0)
			return (1);
	}
	return (0);
}

/*
 * Connect, run one query and disconnect.  Returns the result (the caller
 * clears it), or NULL after printing the error, with *code set to exit 1.
 */
PGresult *
cmd_query(const struct cmd_entry *entry, const char *sql, int n,
    const char *const *params, int *code)
{
	PGconn		*conn;
	PGresult	*res;
	char		*cause;

	conn = cmd_connect(entry);
	res = pq_exec(conn, sql, n, params, &cause);
	PQfinish(conn);
	if (res == NULL) {
		*code = cmd_fail(entry, "%s", cause);
		free(cause);
	}
	return (res);
}

/* Print a listing: its one JSON value, or its rows as a table; clears it. */
int
cmd_print_result(PGresult *res, int json, size_t cell_max)
{
	if (json)
		printf("%s\n", PQgetvalue(res, 0, 0));
	else
		cmd_table_print(res, PQnfields(res), cell_max);
	PQclear(res);
	return (DWA_EXIT_OK);
}

/*
 * The delete form of a command ("limits delete KEY", "backends delete
 * NAME"; argv[0] stands for "delete"): one argument, called arg in
 * messages, handed to sql (a function returning false when there was
 * nothing to delete, then "NOUN ARG not found").
 */
int
cmd_delete_form(const struct cmd_entry *entry, int argc, char **argv,
    const char *arg, const char *noun, const char *sql)
{
	static const struct option longopts[] = {
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char	*params[1];
	PGresult	*res;
	int		 ch, code = -1;

	optind = 0;	/* glibc starts afresh, options may follow ARG */
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code) && code != -1)
			return (code);
	}
	if (optind == argc)
		return (cmd_usage(entry, "delete: missing %s", arg));
	if (optind + 1 < argc)
		return (cmd_usage(entry, "delete: unexpected argument '%s'",
		    argv[optind + 1]));
	params[0] = argv[optind];

	if ((res = cmd_query(entry, sql, 1, params, &code)) == NULL)
		return (code);
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		code = cmd_fail(entry, "%s %s not found", noun, params[0]);
	else
		code = DWA_EXIT_OK;
	PQclear(res);
	return (code);
}
