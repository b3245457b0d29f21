/*
 * cmd-list.c: dwa list: the newest tasks, optionally of one queue or in
 * one state.
 *
 * Newest means highest id: ids come from an identity column, so they
 * follow submission order, and the primary key serves the scan backwards
 * without sorting the whole table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "pq.h"
#include "util.h"
#include "xmalloc.h"

#define CMD_LIST_LIMIT		50
#define CMD_LIST_LIMIT_MAX	10000
#define CMD_LIST_CELL_MAX	40

/* $1 queue (NULL: any), $2 status (NULL: any), $3 limit. */
#define CMD_LIST_WHERE							\
	"FROM dwa.tasks "						\
	"WHERE ($1::text IS NULL OR queue = $1::text) "			\
	"  AND ($2::text IS NULL OR status = $2::text) "		\
	"ORDER BY id DESC LIMIT $3::integer"

static const char *cmd_list_sql =
    "SELECT id, type, queue, status, progress, "
    "  date_trunc('second', created_at) AS created_at "
    CMD_LIST_WHERE;

static const char *cmd_list_json_sql =
    "SELECT json_build_object('queue', $1::text, 'count', count(*), "
    "  'tasks', coalesce(json_agg(json_build_object("
    "    'taskId', t.id, 'type', t.type, 'queue', t.queue, "
    "    'status', t.status, 'progress', t.progress, 'error', t.error, "
    "    'createdAt', t.created_at, 'startedAt', t.started_at, "
    "    'finishedAt', t.finished_at) ORDER BY t.id DESC), '[]'))::text "
    "FROM (SELECT id, type, queue, status, progress, error, created_at, "
    "  started_at, finished_at " CMD_LIST_WHERE ") t";


static int
cmd_list_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "queue", required_argument, NULL, 'Q' },
		{ "status", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char	*params[3] = { NULL, NULL, NULL };
	PGresult	*res;
	char		*cause, limitbuf[32];
	long		 limit = CMD_LIST_LIMIT;
	int		 ch, code = -1, json = 0;

	while ((ch = getopt_long(argc, argv, "Q:s:n:jh", longopts,
	    NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		switch (ch) {
		case 'Q':
			if (*optarg == '\0')
				return (cmd_usage(entry, "--queue: empty "
				    "name"));
			params[0] = optarg;
			break;
		case 's':
			if (!cmd_in_list(optarg, cmd_task_states))
				return (cmd_usage(entry, "--status: \"%s\" is "
				    "not a task state (queued, running, "
				    "completed, failed or cancelled)", optarg));
			params[1] = optarg;
			break;
		case 'n':
			if (util_parse_int(optarg, 1, CMD_LIST_LIMIT_MAX,
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
	if (optind != argc)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind]));
	snprintf(limitbuf, sizeof limitbuf, "%ld", limit);
	params[2] = limitbuf;

	res = cmd_query(entry, json ? cmd_list_json_sql : cmd_list_sql, 3, params,
	    &code);
	if (res == NULL)
		return (code);
	return (cmd_print_result(res, json, CMD_LIST_CELL_MAX));
}

const struct cmd_entry cmd_list_entry = {
	.name = "list",
	.usage = "list [--queue Q] [--status S] [--limit N] [--json]",
	.summary = "list tasks, newest first",
	.options =
	    "  -Q, --queue Q       only tasks of queue Q\n"
	    "  -s, --status S      only tasks in state S: queued, running, "
	    "completed,\n"
	    "                      failed or cancelled\n"
	    "  -n, --limit N       at most N tasks (default 50, at most "
	    "10000)\n"
	    "  -j, --json          print JSON: {\"queue\", \"count\", "
	    "\"tasks\": [...]}\n",
	.exec = cmd_list_exec,
};
