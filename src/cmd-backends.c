/*
 * cmd-backends.c: dwa backends: the remote HTTP backends of dwa.backends,
 * each with the steps running on it; dwa backends set, which creates a
 * backend or replaces all its settings through dwa.backend_set, and dwa
 * backends delete, through dwa.backend_delete.
 *
 * A backend holds the name of the environment variable with its token,
 * never the token: only that name is shown.  Whether dwad has the variable
 * set is not known here.
 *
 * The values are checked by the SQL functions users call, so psql and
 * this command accept and reject the same backends with the same
 * messages; here --timeout is only required to be a duration (handed over
 * in milliseconds) and --concurrency a number.
 *
 * The listing's first getopt_long stops at the first argument ("+"), so
 * the options after "set NAME URL" are left for the form they belong to.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "pq.h"
#include "util.h"
#include "xmalloc.h"

#define CMD_BACKENDS_CELL_MAX	60
/* Longer --timeouts go as 100 years: an interval holds it, SQL rejects it. */
#define CMD_BACKENDS_MS_MAX	(1000LL * 86400 * 36500)

/* A timeout as --timeout takes it: 5m, 30s, 500ms, 2h, 1d. */
#define CMD_BACKENDS_TIMEOUT						\
	"CASE "								\
	"  WHEN ms % 1000 <> 0 THEN ms || 'ms' "			\
	"  WHEN ms % 86400000 = 0 THEN ms / 86400000 || 'd' "		\
	"  WHEN ms % 3600000 = 0 THEN ms / 3600000 || 'h' "		\
	"  WHEN ms % 60000 = 0 THEN ms / 60000 || 'm' "			\
	"  ELSE ms / 1000 || 's' END"

/* Each backend, its timeout in ms and its steps running now. */
#define CMD_BACKENDS_FROM						\
	"FROM (SELECT b.name, b.url, b.token_env, "			\
	"  (extract(epoch FROM b.timeout) * 1000)::bigint AS ms, "	\
	"  b.max_concurrency, coalesce(r.running, 0) AS running "	\
	"  FROM dwa.backends b LEFT JOIN (SELECT s.backend, "		\
	"    count(*) AS running FROM dwa.running u "			\
	"    JOIN dwa.steps s ON s.id = u.step_id "			\
	"    WHERE s.run_id = u.run_id GROUP BY s.backend) r "		\
	"  ON r.backend = b.name) x "

static const char *cmd_backends_sql =
    "SELECT name, url, token_env, " CMD_BACKENDS_TIMEOUT " AS timeout, "
    "  max_concurrency, running "
    CMD_BACKENDS_FROM "ORDER BY name";

static const char *cmd_backends_json_sql =
    "SELECT json_build_object('count', count(*), "
    "  'backends', coalesce(json_agg(json_build_object("
    "    'name', name, 'url', url, 'tokenEnv', token_env, "
    "    'timeoutMs', ms, 'maxConcurrency', max_concurrency, "
    "    'running', running) ORDER BY name), '[]'))::text "
    CMD_BACKENDS_FROM;

static int	cmd_backends_exec(const struct cmd_entry *, int, char **);

/* The forms, for their --help and usage errors; errors say "backends". */
static const struct cmd_entry cmd_backends_set_entry = {
	.name = "backends",
	.usage = "backends set NAME URL [--token-env VAR] [--timeout DUR] "
	    "[--concurrency N]",
	.summary = "create backend NAME, which the http executor POSTs steps "
	    "to at URL, or\nreplace all its settings: an option left out "
	    "takes its default",
	.options =
	    "  -t, --token-env VAR the environment variable of dwad holding "
	    "the bearer\n"
	    "                      token (default: none; the token stays out "
	    "of the database)\n"
	    "  -T, --timeout DUR   time a request may take, like 30s or 5m "
	    "(default: 5m)\n"
	    "  -c, --concurrency N steps in flight on the backend, across "
	    "all daemons\n"
	    "                      (the limit backend:NAME; default: no "
	    "cap)\n",
	.exec = cmd_backends_exec,
};

static const struct cmd_entry cmd_backends_delete_entry = {
	.name = "backends",
	.usage = "backends delete NAME",
	.summary = "remove backend NAME and its concurrency cap",
	.options = "",
	.exec = cmd_backends_exec,
};

/*
 * Start the option scan of a form over the arguments that follow its
 * name (argv[0] stands for the form).  optind 0 makes glibc start afresh,
 * in its usual order (options may follow NAME and URL).
 */
static void
cmd_backends_rescan(void)
{
	optind = 0;
}

/* dwa backends set NAME URL ...; argv[0] stands for "set". */
static int
cmd_backends_set(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "token-env", required_argument, NULL, 't' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "concurrency", required_argument, NULL, 'c' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_entry	*entry = &cmd_backends_set_entry;
	const char		*params[5] = { NULL, NULL, NULL, NULL, NULL };
	PGresult		*res;
	char			*cause, *timeout = NULL;
	int64_t			 ms;
	long			 n;
	int			 ch, code = -1;

	cmd_backends_rescan();
	while ((ch = getopt_long(argc, argv, "t:T:c:h", longopts,
	    NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				goto out;
			continue;
		}
		switch (ch) {
		case 't':
			params[2] = optarg;
			break;
		case 'T':
			if (util_parse_duration(optarg, &ms, &cause) != 0) {
				code = cmd_usage(entry, "--timeout: %s", cause);
				free(cause);
				goto out;
			}
			/* too long for an interval: let SQL reject it */
			if (ms > CMD_BACKENDS_MS_MAX)
				ms = CMD_BACKENDS_MS_MAX;
			free(timeout);
			xasprintf(&timeout, "%lld milliseconds",
			    (long long)ms);
			params[3] = timeout;
			break;
		case 'c':
			if (util_parse_int(optarg, INT_MIN, INT_MAX, &n,
			    &cause) != 0) {
				code = cmd_usage(entry, "--concurrency: %s",
				    cause);
				free(cause);
				goto out;
			}
			params[4] = optarg;
			break;
		}
	}
	if (optind == argc)
		code = cmd_usage(entry, "set: missing NAME");
	else if (optind + 1 == argc)
		code = cmd_usage(entry, "set: missing URL");
	else if (optind + 2 < argc)
		code = cmd_usage(entry, "set: unexpected argument '%s'",
		    argv[optind + 2]);
	if (code != -1)
		goto out;
	params[0] = argv[optind];
	params[1] = argv[optind + 1];

	res = cmd_query(entry, "SELECT dwa.backend_set($1::text, $2::text, "
	    "$3::text, $4::interval, $5::integer)", 5, params, &code);
	if (res != NULL) {
		PQclear(res);
		code = DWA_EXIT_OK;
	}
out:
	free(timeout);
	return (code);
}

static int
cmd_backends_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	PGresult	*res;
	int		 ch, code = -1, json = 0, set;

	while ((ch = getopt_long(argc, argv, "+jh", longopts, NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		if (ch == 'j')
			json = 1;
	}
	if (optind < argc && (strcmp(argv[optind], "set") == 0 ||
	    strcmp(argv[optind], "delete") == 0)) {
		if (json)
			return (cmd_usage(entry, "%s: takes no --json",
			    argv[optind]));
		set = strcmp(argv[optind], "set") == 0;
		/* getopt names the form's argv[0]: say "backends", not "set" */
		argv[optind] = argv[0];
		if (set)
			return (cmd_backends_set(argc - optind, argv + optind));
		return (cmd_delete_form(&cmd_backends_delete_entry, argc - optind,
		    argv + optind, "NAME", "backend", "SELECT dwa.backend_delete($1::text)"));
	}
	if (optind != argc)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind]));

	res = cmd_query(entry, json ? cmd_backends_json_sql :
	    cmd_backends_sql, 0, NULL, &code);
	if (res == NULL)
		return (code);
	return (cmd_print_result(res, json, CMD_BACKENDS_CELL_MAX));
}

const struct cmd_entry cmd_backends_entry = {
	.name = "backends",
	.usage = "backends [--json]\n"
	    "       dwa backends set NAME URL [--token-env VAR] "
	    "[--timeout DUR]\n"
	    "                            [--concurrency N]\n"
	    "       dwa backends delete NAME",
	.summary = "list HTTP backends and steps running on each; set or "
	    "delete one",
	.options =
	    "  -j, --json          print JSON: {\"count\", \"backends\": "
	    "[...]}\n"
	    "\n"
	    "set NAME URL replaces all the backend's settings:\n"
	    "  -t, --token-env VAR the environment variable of dwad holding "
	    "the token\n"
	    "  -T, --timeout DUR   time a request may take (default: 5m)\n"
	    "  -c, --concurrency N steps in flight on the backend\n"
	    "\n"
	    "delete NAME removes the backend.\n"
	    "\n",
	.exec = cmd_backends_exec,
};
