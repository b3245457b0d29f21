/*
 * cmd-outbox.c: dwa outbox: the deliveries of effects (dwa.outbox), newest
 * first, and dwa outbox retry, which puts a dead one back in the queue
 * through dwa.outbox_retry.
 *
 * Listing only reads.  The re-queue goes through the SQL function users
 * call, so its checks (the row exists, only dead rows; a row whose
 * templates failed is rendered again from its task, and stays dead if that
 * fails again) and its NOTIFY to the dispatchers are the same from psql and
 * from here; its messages (and hints) are shown as they are, exit 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "pq.h"
#include "util.h"

#define CMD_OUTBOX_LIMIT	50
#define CMD_OUTBOX_LIMIT_MAX	10000
#define CMD_OUTBOX_CELL_MAX	60

/* The four states of an outbox row, for validation and messages. */
static const char *const cmd_outbox_states[] = {
	"pending", "delivering", "delivered", "dead", NULL
};

/*
 * $1 status (NULL: any), $2 task id (NULL: any), $3 limit.  The rows of
 * one task are read through outbox_task_idx, fenced off from the order
 * (OFFSET 0): statistics taken while the outbox held few rows would
 * otherwise plan a walk of the whole primary key (or of the finished
 * deliveries' index) newest first, filtering on the task.
 */
#define CMD_OUTBOX_ALL		"FROM dwa.outbox "
#define CMD_OUTBOX_TASK							\
	"FROM (SELECT * FROM dwa.outbox WHERE task_id = $2::bigint "	\
	"OFFSET 0) d "
#define CMD_OUTBOX_WHERE						\
	"WHERE ($1::text IS NULL OR status = $1::text) "		\
	"  AND ($2::bigint IS NULL OR task_id = $2::bigint) "		\
	"ORDER BY id DESC LIMIT $3::integer"

#define CMD_OUTBOX_SQL(from)						\
    "SELECT id, task_id, hook, event, status, attempts, "		\
    "  date_trunc('second', next_attempt_at) AS next_attempt_at, "	\
    "  last_error, date_trunc('second', delivered_at) AS delivered_at "	\
    from CMD_OUTBOX_WHERE

#define CMD_OUTBOX_JSON_SQL(from)					\
    "SELECT json_build_object('count', count(*), "			\
    "  'deliveries', coalesce(json_agg(json_build_object("		\
    "    'id', o.id, 'deliveryId', o.delivery_id, 'taskId', o.task_id, " \
    "    'hook', o.hook, 'event', o.event, 'status', o.status, "	\
    "    'attempts', o.attempts, 'maxAttempts', o.max_attempts, "	\
    "    'nextAttemptAt', o.next_attempt_at, 'lastError', o.last_error, " \
    "    'deliveredAt', o.delivered_at, 'createdAt', o.created_at, "	\
    "    'effect', o.effect) ORDER BY o.id DESC), '[]'))::text "	\
    "FROM (SELECT id, delivery_id, task_id, hook, event, status, "	\
    "  attempts, max_attempts, next_attempt_at, last_error, delivered_at, " \
    "  created_at, effect " from CMD_OUTBOX_WHERE ") o"

/* [json][task given] */
static const char *const cmd_outbox_sql[2][2] = {
	{ CMD_OUTBOX_SQL(CMD_OUTBOX_ALL), CMD_OUTBOX_SQL(CMD_OUTBOX_TASK) },
	{ CMD_OUTBOX_JSON_SQL(CMD_OUTBOX_ALL),
	  CMD_OUTBOX_JSON_SQL(CMD_OUTBOX_TASK) }
};

/*
 * Parse a positive id (what: "a task" or "an outbox row", for the message)
 * into buf, for option or argument opt.  Returns 0, or the usage exit code.
 */
static int
cmd_outbox_parse_id(const struct cmd_entry *entry, const char *opt,
    const char *what, const char *s, char *buf, size_t len)
{
	char		*end;
	long long	 id;

	errno = 0;
	id = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || id <= 0)
		return (cmd_usage(entry, "%s: \"%s\" is not %s id", opt, s,
		    what));
	snprintf(buf, len, "%lld", id);
	return (0);
}

/*
 * dwa outbox retry ID: re-queue one dead delivery; args are what follows
 * "retry".
 */
static int
cmd_outbox_retry(const struct cmd_entry *entry, int argc, char **argv)
{
	const char	*params[1];
	PGresult	*res;
	char		 idbuf[32];
	int		 code;

	if (argc == 0)
		return (cmd_usage(entry, "retry: missing outbox row ID"));
	if (argc > 1)
		return (cmd_usage(entry, "retry: unexpected argument '%s'",
		    argv[1]));
	code = cmd_outbox_parse_id(entry, "retry", "an outbox row", argv[0],
	    idbuf, sizeof idbuf);
	if (code != 0)
		return (code);

	params[0] = idbuf;
	res = cmd_query(entry, "SELECT dwa.outbox_retry($1::bigint)", 1,
	    params, &code);
	if (res == NULL)
		return (code);
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		code = cmd_fail(entry, "outbox row %s was not re-queued",
		    idbuf);
	else
		code = DWA_EXIT_OK;
	PQclear(res);
	return (code);
}

static int
cmd_outbox_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "status", required_argument, NULL, 's' },
		{ "task", required_argument, NULL, 't' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char	*params[3] = { NULL, NULL, NULL };
	PGresult	*res;
	char		*cause, taskbuf[32], limitbuf[32];
	long		 limit = CMD_OUTBOX_LIMIT;
	int		 ch, code = -1, json = 0, listing = 0;

	while ((ch = getopt_long(argc, argv, "s:t:n:jh", longopts,
	    NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		listing = 1;
		switch (ch) {
		case 's':
			if (!cmd_in_list(optarg, cmd_outbox_states))
				return (cmd_usage(entry, "--status: \"%s\" is "
				    "not an outbox state (pending, delivering, "
				    "delivered or dead)", optarg));
			params[0] = optarg;
			break;
		case 't':
			code = cmd_outbox_parse_id(entry, "--task", "a task",
			    optarg, taskbuf, sizeof taskbuf);
			if (code != 0)
				return (code);
			params[1] = taskbuf;
			break;
		case 'n':
			if (util_parse_int(optarg, 1, CMD_OUTBOX_LIMIT_MAX,
			    &limit, &cause) != 0) {
				code = cmd_usage(entry, "--limit: %s", cause);
				free(cause);
				return (code);
			}
			break;
		case 'j':
			json = 1;
			break;
		}
	}
	if (optind < argc && strcmp(argv[optind], "retry") == 0) {
		if (listing)
			return (cmd_usage(entry, "retry: takes no --status, "
			    "--task, --limit or --json"));
		return (cmd_outbox_retry(entry, argc - optind - 1,
		    argv + optind + 1));
	}
	if (optind != argc)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind]));
	snprintf(limitbuf, sizeof limitbuf, "%ld", limit);
	params[2] = limitbuf;

	res = cmd_query(entry, cmd_outbox_sql[json][params[1] != NULL], 3,
	    params, &code);
	if (res == NULL)
		return (code);
	return (cmd_print_result(res, json, CMD_OUTBOX_CELL_MAX));
}

const struct cmd_entry cmd_outbox_entry = {
	.name = "outbox",
	.usage = "outbox [--status S] [--task ID] [--limit N] [--json]\n"
	    "       dwa outbox retry ID",
	.summary = "list effect deliveries, newest first; retry re-queues a "
	    "dead one\n(one whose templates failed is rendered again from its "
	    "task first)",
	.options =
	    "  -s, --status S      only deliveries in state S: pending, "
	    "delivering,\n"
	    "                      delivered or dead\n"
	    "  -t, --task ID       only deliveries of task ID\n"
	    "  -n, --limit N       at most N deliveries (default 50, at most "
	    "10000)\n"
	    "  -j, --json          print JSON: {\"count\", \"deliveries\": "
	    "[...]}\n",
	.exec = cmd_outbox_exec,
};
