/*
 * cmd-prune.c: dwa prune: delete what finished longer ago than an age,
 * through dwa.prune: finished tasks with their steps, UI events and
 * delivered or dead deliveries.  Unfinished tasks and deliveries still
 * pending are kept.
 *
 * The age is parsed here (7d, 12h, 30m, 0) and handed over in
 * milliseconds; --limit caps each table's deletions, oldest first, so a
 * large backlog can go in several calls.  The SQL function's messages are
 * shown as they are.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "util.h"

static int
cmd_prune_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char	*params[2] = { NULL, NULL };
	PGresult	*res;
	char		*cause, agebuf[48], limitbuf[32];
	int64_t		 age_ms;
	long		 limit;
	long long	 n;
	int		 ch, code = -1, json = 0;

	while ((ch = getopt_long(argc, argv, "o:n:jh", longopts,
	    NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		switch (ch) {
		case 'o':
			if (util_parse_duration(optarg, &age_ms, &cause) != 0) {
				code = cmd_usage(entry, "--older-than: %s",
				    cause);
				free(cause);
				return (code);
			}
			snprintf(agebuf, sizeof agebuf, "%" PRId64
			    " milliseconds", age_ms);
			params[0] = agebuf;
			break;
		case 'n':
			if (util_parse_int(optarg, 1, INT_MAX, &limit,
			    &cause) != 0) {
				code = cmd_usage(entry, "--limit: %s", cause);
				free(cause);
				return (code);
			}
			snprintf(limitbuf, sizeof limitbuf, "%ld", limit);
			params[1] = limitbuf;
			break;
		case 'j':
			json = 1;
			break;
		}
	}
	if (optind != argc)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind]));
	if (params[0] == NULL)
		return (cmd_usage(entry, "missing --older-than AGE"));

	res = cmd_query(entry, "SELECT dwa.prune($1::interval, $2::integer)",
	    2, params, &code);
	if (res == NULL)
		return (code);
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (json)
		printf("{\"pruned\": %lld}\n", n);
	else
		printf("pruned %lld task%s\n", n, n == 1 ? "" : "s");
	return (DWA_EXIT_OK);
}

const struct cmd_entry cmd_prune_entry = {
	.name = "prune",
	.usage = "prune --older-than AGE [--limit N] [--json]",
	.summary = "delete tasks, events and deliveries finished longer ago "
	    "than AGE",
	.options =
	    "  -o, --older-than AGE\n"
	    "                      delete what finished longer ago than AGE: "
	    "7d, 12h,\n"
	    "                      30m, 500ms or 0 (a bare number is seconds)\n"
	    "  -n, --limit N       at most N rows of each table, oldest first "
	    "(default:\n"
	    "                      all)\n"
	    "  -j, --json          print JSON: {\"pruned\": N}\n",
	.exec = cmd_prune_exec,
};
