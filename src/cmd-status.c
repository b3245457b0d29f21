/*
 * cmd-status.c: dwa status: one task and its steps, from dwa.tasks and
 * the dwa.task_steps view.
 *
 * The text form is for people: the task's fields one per line, named
 * after their columns, then a table of steps whose header is the view's
 * column names.  --json prints the SPEC's shape (camelCase), built by
 * PostgreSQL so result and output keep their exact JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "pq.h"
#include "xmalloc.h"

/* Longest cell of the step table; --json has the whole text. */
#define CMD_STATUS_CELL_MAX	72

static const char *cmd_status_task_sql =
    "SELECT id, type, queue, status, progress, "
    "  steps_done || '/' || steps_total AS steps, "
    "  date_trunc('second', created_at) AS created_at, "
    "  date_trunc('second', started_at) AS started_at, "
    "  date_trunc('second', finished_at) AS finished_at, "
    "  error, result::text AS result "
    "FROM dwa.tasks WHERE id = $1";

static const char *cmd_status_steps_sql =
    "SELECT step_id, task, status, attempt, item_index, "
    "  date_trunc('second', started_at) AS started_at, "
    "  date_trunc('second', finished_at) AS finished_at, error "
    "FROM dwa.task_steps WHERE task_id = $1 "
    "ORDER BY step_index, item_index NULLS FIRST";

static const char *cmd_status_json_sql =
    "SELECT json_build_object("
    "  'taskId', t.id, 'type', t.type, 'queue', t.queue, "
    "  'status', t.status, 'progress', t.progress, 'result', t.result, "
    "  'error', t.error, 'createdAt', t.created_at, "
    "  'startedAt', t.started_at, 'finishedAt', t.finished_at, "
    "  'steps', coalesce((SELECT json_agg(json_build_object("
    "      'stepId', s.step_id, 'task', s.task, 'status', s.status, "
    "      'attempt', s.attempt, 'itemIndex', s.item_index, "
    "      'progress', s.progress, 'output', s.output, "
    "      'error', s.error, 'startedAt', s.started_at, "
    "      'finishedAt', s.finished_at) "
    "    ORDER BY s.step_index, s.item_index NULLS FIRST) "
    "    FROM dwa.task_steps s WHERE s.task_id = t.id), '[]'))::text "
    "FROM dwa.tasks t WHERE t.id = $1";

/* Print the task row as "column  value" lines; NULL values are left out. */
static void
cmd_status_print_task(const PGresult *res)
{
	char	*value;
	int	 c;

	for (c = 0; c < PQnfields(res); c++) {
		if (PQgetisnull(res, 0, c))
			continue;
		value = cmd_escape(PQgetvalue(res, 0, c), 0);
		printf("%-12s %s\n", PQfname(res, c), value);
		free(value);
	}
}

static int
cmd_status_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char	*params[1];
	PGconn		*conn;
	PGresult	*res, *steps;
	char		*cause, idbuf[32];
	long long	 id;
	int		 ch, code = -1, json = 0;

	while ((ch = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		if (ch == 'j')
			json = 1;
	}
	if (optind == argc)
		return (cmd_usage(entry, "missing task ID"));
	if (argc - optind > 1)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind + 1]));
	if ((code = cmd_parse_id(entry, argv[optind], &id)) != 0)
		return (code);
	snprintf(idbuf, sizeof idbuf, "%lld", id);
	params[0] = idbuf;

	conn = cmd_connect(entry);
	res = pq_exec(conn, json ? cmd_status_json_sql : cmd_status_task_sql,
	    1, params, &cause);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 0) {
		PQclear(res);
		PQfinish(conn);
		return (cmd_fail(entry, "task %lld not found", id));
	}
	if (json) {
		printf("%s\n", PQgetvalue(res, 0, 0));
		PQclear(res);
		PQfinish(conn);
		return (DWA_EXIT_OK);
	}

	/* Steps after the task: never older than what the task line says. */
	steps = pq_exec(conn, cmd_status_steps_sql, 1, params, &cause);
	if (steps == NULL) {
		PQclear(res);
		goto fail;
	}
	cmd_status_print_task(res);
	putchar('\n');
	cmd_table_print(steps, PQnfields(steps), CMD_STATUS_CELL_MAX);
	PQclear(steps);
	PQclear(res);
	PQfinish(conn);
	return (DWA_EXIT_OK);

fail:
	PQfinish(conn);
	code = cmd_fail(entry, "%s", cause);
	free(cause);
	return (code);
}

const struct cmd_entry cmd_status_entry = {
	.name = "status",
	.usage = "status ID [--json]",
	.summary = "show a task: its state, result or error, and its steps",
	.options =
	    "  -j, --json          print JSON: {\"taskId\", \"type\", "
	    "\"status\", \"progress\",\n"
	    "                      \"result\", \"error\", \"steps\": [...]}\n",
	.exec = cmd_status_exec,
};
