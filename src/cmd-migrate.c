/*
 * cmd-migrate.c: dwa migrate: bring the database to this build's schema.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "migrate.h"
#include "xmalloc.h"

static int
cmd_migrate_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	PGconn	*conn;
	char	*cause;
	int	 ch, code = -1, quiet = 0, applied;

	while ((ch = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		if (ch == 'q')
			quiet = 1;
	}
	if (optind != argc)
		return (cmd_usage(entry, "unexpected argument '%s'", argv[optind]));

	conn = cmd_connect(entry);
	if (migrate_run(conn, &applied, &cause) != 0) {
		PQfinish(conn);
		code = cmd_fail(entry, "%s", cause);
		free(cause);
		return (code);
	}
	PQfinish(conn);
	if (!quiet)
		printf("schema at %s (%d migration%s applied)\n",
		    migrate_latest(), applied, applied == 1 ? "" : "s");
	return (DWA_EXIT_OK);
}

const struct cmd_entry cmd_migrate_entry = {
	.name = "migrate",
	.usage = "migrate [--quiet]",
	.summary = "create or upgrade the dwa schema (safe to run again, and concurrently)",
	.options = "  -q, --quiet         print nothing on success\n",
	.exec = cmd_migrate_exec,
};
