/*
 * cmd-cancel.c: dwa cancel and dwa retry: the two commands that change a
 * task's course, through dwa.cancel and dwa.retry.
 *
 * Both print nothing on success.  The SQL functions raise "task N not
 * found" and, for retry, why a task cannot be retried; those messages
 * are shown as they are.  dwa.cancel answers false for a task that has
 * already finished, which is a failure here: the task was not cancelled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "pq.h"
#include "xmalloc.h"

/*
 * Parse the options and the single ID argument of both commands.  Returns
 * -1 to go on, or the exit code (--help, a usage error).
 */
static int
cmd_cancel_args(const struct cmd_entry *entry, int argc, char **argv,
    long long *id)
{
	static const struct option longopts[] = {
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	int	ch, code = -1;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code) && code != -1)
			return (code);
	}
	if (optind == argc)
		return (cmd_usage(entry, "missing task ID"));
	if (argc - optind > 1)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind + 1]));
	if ((code = cmd_parse_id(entry, argv[optind], id)) != 0)
		return (code);
	return (-1);
}

/*
 * Run "SELECT fn($1)" for the task; return its boolean, or -1 after
 * reporting the error.
 */
static int
cmd_cancel_call(const struct cmd_entry *entry, PGconn *conn, const char *sql,
    const char *idbuf)
{
	const char	*params[1] = { idbuf };
	PGresult	*res;
	char		*cause;
	int		 ok;

	if ((res = pq_exec(conn, sql, 1, params, &cause)) == NULL) {
		cmd_fail(entry, "%s", cause);
		free(cause);
		return (-1);
	}
	ok = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return (ok);
}

static int
cmd_cancel_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	const char	*params[1];
	PGconn		*conn;
	PGresult	*res;
	char		*cause, idbuf[32];
	long long	 id;
	int		 code;

	if ((code = cmd_cancel_args(entry, argc, argv, &id)) != -1)
		return (code);
	snprintf(idbuf, sizeof idbuf, "%lld", id);

	conn = cmd_connect(entry);
	switch (cmd_cancel_call(entry, conn, "SELECT dwa.cancel($1)", idbuf)) {
	case -1:
		PQfinish(conn);
		return (DWA_EXIT_FAILURE);
	case 1:
		PQfinish(conn);
		return (DWA_EXIT_OK);
	}

	/* Not cancelled: it had finished already.  Say how. */
	params[0] = idbuf;
	res = pq_exec(conn, "SELECT status FROM dwa.tasks WHERE id = $1", 1,
	    params, &cause);
	PQfinish(conn);
	if (res == NULL) {
		code = cmd_fail(entry, "%s", cause);
		free(cause);
		return (code);
	}
	if (PQntuples(res) == 0)
		code = cmd_fail(entry, "task %lld not found", id);
	else
		code = cmd_fail(entry, "task %lld is already %s", id,
		    PQgetvalue(res, 0, 0));
	PQclear(res);
	return (code);
}

static int
cmd_retry_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	PGconn		*conn;
	char		 idbuf[32];
	long long	 id;
	int		 code;

	if ((code = cmd_cancel_args(entry, argc, argv, &id)) != -1)
		return (code);
	snprintf(idbuf, sizeof idbuf, "%lld", id);

	conn = cmd_connect(entry);
	switch (cmd_cancel_call(entry, conn, "SELECT dwa.retry($1)", idbuf)) {
	case -1:
		code = DWA_EXIT_FAILURE;
		break;
	case 0:
		code = cmd_fail(entry, "task %lld was not retried", id);
		break;
	default:
		code = DWA_EXIT_OK;
		break;
	}
	PQfinish(conn);
	return (code);
}

const struct cmd_entry cmd_cancel_entry = {
	.name = "cancel",
	.usage = "cancel ID",
	.summary = "cancel a queued or running task: its steps stop",
	.options = NULL,
	.exec = cmd_cancel_exec,
};

const struct cmd_entry cmd_retry_entry = {
	.name = "retry",
	.usage = "retry ID",
	.summary = "resume a failed or cancelled task: what did not succeed "
	    "runs again",
	.options = NULL,
	.exec = cmd_retry_exec,
};
