/*
 * cmd-submit.c: dwa submit: hand a task definition to dwa.submit, and
 * optionally wait until the task has finished.
 *
 * The file is parsed with jansson before anything is sent, so malformed
 * JSON is reported with its line and column and never reaches the
 * database.  What is sent is the file's own text, not a re-encoding:
 * numbers keep every digit.  Everything else (fields, types, steps) is
 * validated by dwa.submit, the same function every other client calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "pq.h"
#include "util.h"
#include "xmalloc.h"

/* Larger definitions are refused unread; payloads are capped far lower. */
#define CMD_SUBMIT_MAX_BYTES	(16 * 1024 * 1024)

/* Read all of path ("-": stdin) into a NUL-terminated buffer. */
static char *
cmd_submit_read(const char *path, size_t *len, char **cause)
{
	FILE	*f;
	char	*buf;
	size_t	 size = 8192, n = 0, got;

	if (strcmp(path, "-") == 0)
		f = stdin;
	else if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "cannot read %s: %s", path, strerror(errno));
		return (NULL);
	}
	buf = xmalloc(size);
	for (;;) {
		got = fread(buf + n, 1, size - n - 1, f);
		n += got;
		if (got == 0)
			break;
		if (n > CMD_SUBMIT_MAX_BYTES) {
			xasprintf(cause, "%s: larger than %d MiB", path,
			    CMD_SUBMIT_MAX_BYTES / (1024 * 1024));
			goto fail;
		}
		if (n == size - 1)
			buf = xrealloc(buf, size *= 2);
	}
	if (ferror(f)) {
		xasprintf(cause, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	buf[n] = '\0';
	*len = n;
	return (buf);

fail:
	if (f != stdin)
		fclose(f);
	free(buf);
	return (NULL);
}

/*
 * Wait until the task has finished, or timeout ms (0: no limit) passed.
 * Returns the exit code after saying how the task ended.
 */
static int
cmd_submit_wait(const struct cmd_entry *entry, PGconn *conn, long long id,
    long long timeout, const char *timeout_arg, int quiet)
{
	const char	*params[1], *status;
	PGresult	*res;
	char		 idbuf[32], *cause, *error;
	long long	 start, now, wait;
	int		 code;

	snprintf(idbuf, sizeof idbuf, "%lld", id);
	params[0] = idbuf;
	start = util_now_ms();
	for (;;) {
		now = util_now_ms();
		res = pq_exec(conn, "SELECT status, error FROM dwa.tasks "
		    "WHERE id = $1", 1, params, &cause);
		if (res == NULL)
			goto fail;
		if (PQntuples(res) == 0) {
			PQclear(res);
			return (cmd_fail(entry, "task %lld not found (it was "
			    "deleted while waiting)", id));
		}
		status = PQgetvalue(res, 0, 0);
		if (strcmp(status, "completed") == 0) {
			if (!quiet)
				printf("task %lld completed\n", id);
			PQclear(res);
			return (DWA_EXIT_OK);
		}
		if (strcmp(status, "failed") == 0) {
			error = cmd_escape(PQgetisnull(res, 0, 1) ? "no error "
			    "recorded" : PQgetvalue(res, 0, 1), 0);
			code = cmd_fail(entry, "task %lld failed: %s", id,
			    error);
			free(error);
			PQclear(res);
			return (code);
		}
		if (strcmp(status, "cancelled") == 0) {
			PQclear(res);
			return (cmd_fail(entry, "task %lld cancelled", id));
		}
		if (timeout > 0 && now - start >= timeout) {
			code = cmd_fail(entry, "task %lld is still %s after "
			    "--timeout %s; it goes on without us (see 'dwa "
			    "status %lld')", id, status, timeout_arg, id);
			PQclear(res);
			return (code);
		}
		PQclear(res);

		wait = CMD_POLL_MS;
		if (timeout > 0 && start + timeout - now < wait)
			wait = start + timeout - now;
		if (cmd_wait_task(conn, id, now, wait, &cause) != 0)
			goto fail;
	}

fail:
	code = cmd_fail(entry, "%s", cause);
	free(cause);
	return (code);
}

static int
cmd_submit_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char	*path, *name, *params[1], *timeout_arg = NULL;
	PGconn		*conn;
	PGresult	*res;
	json_t		*def;
	json_error_t	 jerr;
	char		*text, *cause;
	size_t		 len;
	long long	 id, timeout = 0;
	int		 ch, code = -1, wait = 0, quiet = 0;
	int64_t		 ms;

	while ((ch = getopt_long(argc, argv, "wt:qh", longopts, NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		switch (ch) {
		case 'w':
			wait = 1;
			break;
		case 't':
			if (util_parse_duration(optarg, &ms, &cause) != 0) {
				code = cmd_usage(entry, "--timeout: %s", cause);
				free(cause);
				return (code);
			}
			if (ms <= 0)
				return (cmd_usage(entry, "--timeout: must be "
				    "longer than 0"));
			timeout = ms;
			timeout_arg = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		}
	}
	if (optind == argc)
		return (cmd_usage(entry, "missing FILE (or - for stdin)"));
	if (argc - optind > 1)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind + 1]));
	if (timeout_arg != NULL && !wait)
		return (cmd_usage(entry, "--timeout needs --wait"));
	path = argv[optind];
	name = strcmp(path, "-") == 0 ? "<stdin>" : path;

	if ((text = cmd_submit_read(path, &len, &cause)) == NULL)
		goto fail;
	if (strspn(text, " \t\r\n") == len) {
		free(text);
		return (cmd_fail(entry, "%s: empty, expected a task definition "
		    "(JSON)", name));
	}
	if ((def = json_loadb(text, len, JSON_DECODE_ANY |
	    JSON_DECODE_INT_AS_REAL, &jerr)) == NULL) {
		free(text);
		return (cmd_fail(entry, "%s:%d:%d: malformed JSON: %s", name,
		    jerr.line, jerr.column, jerr.text));
	}
	json_decref(def);

	conn = cmd_connect(entry);
	/* Listen before submitting, so not even the first event is missed. */
	if (wait && cmd_listen(conn, &cause) != 0) {
		free(text);
		PQfinish(conn);
		goto fail;
	}
	params[0] = text;
	res = pq_exec(conn, "SELECT dwa.submit($1::jsonb)", 1, params, &cause);
	free(text);
	if (res == NULL) {
		PQfinish(conn);
		goto fail;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		PQclear(res);
		PQfinish(conn);
		return (cmd_fail(entry, "dwa.submit returned no task id"));
	}
	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (!quiet) {
		printf("%lld\n", id);
		fflush(stdout);
	}

	code = DWA_EXIT_OK;
	if (wait)
		code = cmd_submit_wait(entry, conn, id, timeout, timeout_arg,
		    quiet);
	PQfinish(conn);
	return (code);

fail:
	code = cmd_fail(entry, "%s", cause);
	free(cause);
	return (code);
}

const struct cmd_entry cmd_submit_entry = {
	.name = "submit",
	.usage = "submit FILE|- [--wait [--timeout DUR]] [--quiet]",
	.summary = "submit a task definition (JSON) from FILE, or stdin "
	    "for -; print its id",
	.options =
	    "  -w, --wait          wait until the task has finished; exit 1 "
	    "if it failed\n"
	    "                      or was cancelled\n"
	    "  -t, --timeout DUR   with --wait: give up waiting after DUR "
	    "(e.g. 30s, 10m)\n"
	    "  -q, --quiet         print neither the id nor the final status\n",
	.exec = cmd_submit_exec,
};
