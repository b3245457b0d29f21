/*
 * cmd.h: the commands of the dwa CLI.  Each lives in cmd-<name>.c and
 * exports one struct cmd_entry; dwa.c dispatches on the first argument.
 *
 * Conventions: exit 0 on success (print nothing unless output was asked
 * for), 1 on failure ("dwa: NAME: message" on stderr), 2 on a usage error
 * (the message and the synopsis on stderr).  --help prints the synopsis
 * and options to stdout and exits 0.
 */
#ifndef CMD_H
#define CMD_H

#include <getopt.h>
#include <libpq-fe.h>

#include "dwa.h"

struct cmd_entry {
	const char	*name;
	const char	*usage;		/* synopsis after "dwa " */
	const char	*summary;	/* one line for 'dwa --help' */
	const char	*options;	/* aligned option lines for --help */
	int		(*exec)(const struct cmd_entry *, int, char **);
};

/* Set by global options; commands accept --db too. */
extern const char	*cmd_db_url;

/* Options every command takes; append to a command's own long options. */
#define CMD_COMMON_OPTIONS						\
	{ "db", required_argument, NULL, 'D' },				\
	{ "help", no_argument, NULL, 'H' }
#define CMD_COMMON_HELP							\
	"      --db URL        database (default: DATABASE_URL, PG* variables)\n" \
	"  -h, --help          show this help\n"

PGconn	*cmd_connect(const struct cmd_entry *);
int	 cmd_usage(const struct cmd_entry *, const char *, ...)
	     __printflike(2, 3);
int	 cmd_help(const struct cmd_entry *);
int	 cmd_fail(const struct cmd_entry *, const char *, ...)
	     __printflike(2, 3);
int	 cmd_common_option(const struct cmd_entry *, int, int *);
int	 cmd_parse_id(const struct cmd_entry *, const char *, long long *);

extern const struct cmd_entry cmd_migrate_entry;
extern const struct cmd_entry cmd_submit_entry;
extern const struct cmd_entry cmd_status_entry;
extern const struct cmd_entry cmd_list_entry;
extern const struct cmd_entry cmd_cancel_entry;
extern const struct cmd_entry cmd_retry_entry;
extern const struct cmd_entry cmd_watch_entry;
extern const struct cmd_entry cmd_outbox_entry;
extern const struct cmd_entry cmd_limits_entry;
extern const struct cmd_entry cmd_backends_entry;
extern const struct cmd_entry cmd_prune_entry;
extern const struct cmd_entry cmd_types_entry;

/* cmd-util.c: what several commands share. */
#define CMD_POLL_MS	250	/* poll interval when NOTIFY stays silent */
#define CMD_MIN_GAP_MS	50	/* least time between two looks at a task */

extern const char *const cmd_task_states[];
int	 cmd_in_list(const char *, const char *const *);

int	 cmd_task_finished(const char *);
int	 cmd_listen(PGconn *, char **);
int	 cmd_wait_task(PGconn *, long long, long long, long long, char **);
char	*cmd_escape(const char *, size_t);
void	 cmd_table_print(const PGresult *, int, size_t);
PGresult *cmd_query(const struct cmd_entry *, const char *, int,
	     const char *const *, int *);
int	 cmd_print_result(PGresult *, int, size_t);
int	 cmd_delete_form(const struct cmd_entry *, int, char **, const char *,
	     const char *, const char *);

#endif /* CMD_H */
