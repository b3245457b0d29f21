/*
 * cmd-limits.c: dwa limits: the concurrency caps and token buckets of
 * dwa.limits with what runs and waits under each (dwa.limit_stats);
 * dwa limits set, which replaces a key's caps through dwa.limit_set, and
 * dwa limits delete, through dwa.limit_delete.
 *
 * The values are checked by the SQL functions users call, so psql and
 * this command accept and reject the same limits with the same messages;
 * here an option's value is only required to be a number (or, for --rate,
 * some text) before it is handed over.
 *
 * The listing's first getopt_long stops at the first argument ("+"), so
 * the options after "set KEY" are left for the form they belong to.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "pq.h"
#include "util.h"

#define CMD_LIMITS_CELL_MAX	40

/* A rate as dwa limits set takes it: "60/min", "10/s", "10/5s". */
#define CMD_LIMITS_RATE							\
	"CASE WHEN rate IS NOT NULL THEN "				\
	"  trim_scale(rate::numeric)::text || '/' || CASE "		\
	"  WHEN per = interval '1 second' THEN 's' "			\
	"  WHEN per = interval '1 minute' THEN 'min' "			\
	"  WHEN per = interval '1 hour' THEN 'h' "			\
	"  WHEN per = interval '1 day' THEN 'd' "			\
	"  WHEN extract(epoch FROM per) % 86400 = 0 THEN "		\
	"    (extract(epoch FROM per) / 86400)::bigint || 'd' "		\
	"  WHEN extract(epoch FROM per) % 3600 = 0 THEN "		\
	"    (extract(epoch FROM per) / 3600)::bigint || 'h' "		\
	"  WHEN extract(epoch FROM per) % 60 = 0 THEN "			\
	"    (extract(epoch FROM per) / 60)::bigint || 'min' "		\
	"  ELSE trim_scale(extract(epoch FROM per)) || 's' END END"

/* A pause only shows while it lasts. */
#define CMD_LIMITS_PAUSED						\
	"CASE WHEN paused_until > now() THEN "				\
	"  date_trunc('milliseconds', paused_until) END"

static const char *cmd_limits_sql =
    "SELECT key, max_concurrency, " CMD_LIMITS_RATE " AS rate, burst, "
    "  trim_scale(round(tokens::numeric, 2)) AS tokens, "
    "  " CMD_LIMITS_PAUSED " AS paused_until, running, waiting "
    "FROM dwa.limit_stats ORDER BY key";

static const char *cmd_limits_json_sql =
    "SELECT json_build_object('count', count(*), "
    "  'limits', coalesce(json_agg(json_build_object("
    "    'key', l.key, 'maxConcurrency', l.max_concurrency, "
    "    'rate', l.rate, 'burst', l.burst, 'tokens', l.tokens, "
    "    'pausedUntil', l.paused_until, 'running', l.running, "
    "    'waiting', l.waiting) ORDER BY l.key), '[]'))::text "
    "FROM (SELECT key, max_concurrency, " CMD_LIMITS_RATE " AS rate, "
    "  burst, tokens, " CMD_LIMITS_PAUSED " AS paused_until, running, "
    "  waiting FROM dwa.limit_stats) l";

static int	cmd_limits_exec(const struct cmd_entry *, int, char **);

/* The forms, for their --help and usage errors; errors say "limits". */
static const struct cmd_entry cmd_limits_set_entry = {
	.name = "limits",
	.usage = "limits set KEY [--concurrency N] [--rate N/UNIT] "
	    "[--burst N]",
	.summary = "set the caps of limit KEY (queue:NAME, type:NAME, "
	    "backend:NAME or key:NAME),\nreplacing the ones it had: at least "
	    "one of the options",
	.options =
	    "  -c, --concurrency N steps running at once under KEY, across "
	    "all daemons\n"
	    "                      and workers\n"
	    "  -r, --rate N/UNIT   N steps may start per UNIT: s, min, h, d or "
	    "a duration\n"
	    "                      like 5s (10/5s)\n"
	    "  -b, --burst N       starts allowed at once after a quiet time "
	    "(default: the\n"
	    "                      rate's N rounded up)\n",
	.exec = cmd_limits_exec,
};

static const struct cmd_entry cmd_limits_delete_entry = {
	.name = "limits",
	.usage = "limits delete KEY",
	.summary = "remove limit KEY: its steps are no longer held back by it",
	.options = "",
	.exec = cmd_limits_exec,
};

/*
 * Check that s is an integer for option opt; SQL judges its value.
 * Returns 0, or the usage exit code.
 */
static int
cmd_limits_parse_int(const struct cmd_entry *entry, const char *opt,
    const char *s)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < INT_MIN ||
	    v > INT_MAX)
		return (cmd_usage(entry, "%s: \"%s\" is not a number", opt, s));
	return (0);
}


/*
 * Start the option scan of a form over the arguments that follow its
 * name (argv[0] stands for the form).  optind 0 makes glibc start afresh,
 * in its usual order (options may follow KEY).
 */
static void
cmd_limits_rescan(void)
{
	optind = 0;
}

/* dwa limits set KEY ...; argv[0] stands for "set". */
static int
cmd_limits_set(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "concurrency", required_argument, NULL, 'c' },
		{ "rate", required_argument, NULL, 'r' },
		{ "burst", required_argument, NULL, 'b' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_entry	*entry = &cmd_limits_set_entry;
	const char		*params[4] = { NULL, NULL, NULL, NULL };
	PGresult		*res;
	int			 ch, code = -1;

	cmd_limits_rescan();
	while ((ch = getopt_long(argc, argv, "c:r:b:h", longopts,
	    NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		switch (ch) {
		case 'c':
			if ((code = cmd_limits_parse_int(entry, "--concurrency",
			    optarg)) != 0)
				return (code);
			params[1] = optarg;
			break;
		case 'r':
			params[2] = optarg;
			break;
		case 'b':
			if ((code = cmd_limits_parse_int(entry, "--burst",
			    optarg)) != 0)
				return (code);
			params[3] = optarg;
			break;
		}
	}
	if (optind == argc)
		return (cmd_usage(entry, "set: missing KEY"));
	if (optind + 1 < argc)
		return (cmd_usage(entry, "set: unexpected argument '%s'",
		    argv[optind + 1]));
	if (params[1] == NULL && params[2] == NULL && params[3] == NULL)
		return (cmd_usage(entry, "set: give at least one of "
		    "--concurrency, --rate and --burst"));
	params[0] = argv[optind];

	res = cmd_query(entry, "SELECT dwa.limit_set($1::text, "
	    "$2::integer, $3::text, $4::integer)", 4, params, &code);
	if (res == NULL)
		return (code);
	PQclear(res);
	return (DWA_EXIT_OK);
}

static int
cmd_limits_exec(const struct cmd_entry *entry, int argc, char **argv)
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
		/* getopt names the form's argv[0]: say "limits", not "set" */
		argv[optind] = argv[0];
		if (set)
			return (cmd_limits_set(argc - optind, argv + optind));
		return (cmd_delete_form(&cmd_limits_delete_entry, argc - optind,
		    argv + optind, "KEY", "limit", "SELECT dwa.limit_delete($1::text)"));
	}
	if (optind != argc)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind]));

	res = cmd_query(entry, json ? cmd_limits_json_sql :
	    cmd_limits_sql, 0, NULL, &code);
	if (res == NULL)
		return (code);
	return (cmd_print_result(res, json, CMD_LIMITS_CELL_MAX));
}

const struct cmd_entry cmd_limits_entry = {
	.name = "limits",
	.usage = "limits [--json]\n"
	    "       dwa limits set KEY [--concurrency N] [--rate N/UNIT] "
	    "[--burst N]\n"
	    "       dwa limits delete KEY",
	.summary = "list limits: tokens, running and waiting steps; set or "
	    "delete one",
	.options =
	    "  -j, --json          print JSON: {\"count\", \"limits\": "
	    "[...]}\n"
	    "\n"
	    "set KEY (queue:NAME, type:NAME, backend:NAME or key:NAME) "
	    "replaces its caps:\n"
	    "  -c, --concurrency N steps running at once under KEY\n"
	    "  -r, --rate N/UNIT   N steps may start per UNIT: s, min, h, d or "
	    "a duration\n"
	    "                      like 5s (10/5s)\n"
	    "  -b, --burst N       starts allowed at once after a quiet time\n"
	    "\n"
	    "delete KEY removes the limit.\n"
	    "\n",
	.exec = cmd_limits_exec,
};
