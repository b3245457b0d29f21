/*
 * dwa.c: the admin CLI: global options, then one command from the table.
 * Every command talks to PostgreSQL through the same SQL functions users
 * call (dwa.submit, dwa.cancel, ...): there is no back door.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "pq.h"
#include "xmalloc.h"

const char	*cmd_db_url;

static const struct cmd_entry *cmd_table[] = {
	&cmd_migrate_entry,
	&cmd_submit_entry,
	&cmd_status_entry,
	&cmd_list_entry,
	&cmd_cancel_entry,
	&cmd_retry_entry,
	&cmd_watch_entry,
	&cmd_outbox_entry,
	&cmd_limits_entry,
	&cmd_backends_entry,
	&cmd_prune_entry,
	&cmd_types_entry,
};

static void
usage(FILE *f)
{
	size_t	i;

	fprintf(f, "usage: dwa [--db URL] COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < nitems(cmd_table); i++)
		fprintf(f, "  %-10s %s\n", cmd_table[i]->name,
		    cmd_table[i]->summary);
	fprintf(f, "\noptions:\n"
	    "      --db URL        database (default: DATABASE_URL, PG* variables)\n"
	    "  -h, --help          show this help\n"
	    "  -V, --version       show the version\n"
	    "\n'dwa COMMAND --help' describes a command.\n");
}

PGconn *
cmd_connect(const struct cmd_entry *entry)
{
	PGconn	*conn;
	char	*cause;

	if ((conn = pq_connect(cmd_db_url, "dwa", &cause)) == NULL) {
		fprintf(stderr, "dwa: %s: %s\n", entry->name, cause);
		free(cause);
		exit(DWA_EXIT_FAILURE);
	}
	return (conn);
}

int
cmd_usage(const struct cmd_entry *entry, const char *fmt, ...)
{
	va_list	ap;

	if (fmt != NULL) {
		fprintf(stderr, "dwa: %s: ", entry->name);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fprintf(stderr, "usage: dwa %s\n(see 'dwa %s --help')\n", entry->usage,
	    entry->name);
	return (DWA_EXIT_USAGE);
}

int
cmd_help(const struct cmd_entry *entry)
{
	printf("usage: dwa %s\n\n%s\n\noptions:\n%s%s", entry->usage,
	    entry->summary, entry->options != NULL ? entry->options : "",
	    CMD_COMMON_HELP);
	return (DWA_EXIT_OK);
}

int
cmd_fail(const struct cmd_entry *entry, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "dwa: %s: ", entry->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return (DWA_EXIT_FAILURE);
}

/*
 * Handle an option every command shares, from getopt_long's return value
 * ch.  Returns 1 when handled, 0 when not ours; sets *exit_code (and
 * returns 1) when the command should exit: --help, or an unknown option.
 */
int
cmd_common_option(const struct cmd_entry *entry, int ch, int *exit_code)
{
	switch (ch) {
	case 'D':
		cmd_db_url = optarg;
		return (1);
	case 'H':
	case 'h':
		*exit_code = cmd_help(entry);
		return (1);
	case '?':
		*exit_code = cmd_usage(entry, NULL);
		return (1);
	default:
		return (0);
	}
}

/* Parse a task id argument; a usage error otherwise. */
int
cmd_parse_id(const struct cmd_entry *entry, const char *s, long long *id)
{
	char	*end;

	*id = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || *id <= 0)
		return (cmd_usage(entry, "\"%s\" is not a task id", s));
	return (0);
}

int
main(int argc, char **argv)
{
	const char	*name;
	size_t		 i;
	char		*cause = NULL;

	log_open("dwa", LOG_WARN, NULL, &cause);
	argv++, argc--;
	while (argc > 0 && argv[0][0] == '-') {
		if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
			usage(stdout);
			return (DWA_EXIT_OK);
		}
		if (strcmp(argv[0], "--version") == 0 || strcmp(argv[0], "-V") == 0) {
			printf("dwa %s\n", DWA_VERSION);
			return (DWA_EXIT_OK);
		}
		if (strcmp(argv[0], "--db") == 0 && argc > 1) {
			cmd_db_url = argv[1];
			argv += 2, argc -= 2;
			continue;
		}
		if (strncmp(argv[0], "--db=", 5) == 0) {
			cmd_db_url = argv[0] + 5;
			argv++, argc--;
			continue;
		}
		fprintf(stderr, "dwa: unknown option '%s' (see 'dwa --help')\n",
		    argv[0]);
		return (DWA_EXIT_USAGE);
	}
	if (argc == 0) {
		usage(stderr);
		return (DWA_EXIT_USAGE);
	}
	name = argv[0];
	for (i = 0; i < nitems(cmd_table); i++) {
		if (strcmp(cmd_table[i]->name, name) == 0) {
			optind = 1;
			return (cmd_table[i]->exec(cmd_table[i], argc, argv));
		}
	}
	fprintf(stderr, "dwa: unknown command '%s' (see 'dwa --help')\n", name);
	return (DWA_EXIT_USAGE);
}
