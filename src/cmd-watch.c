/*
 * cmd-watch.c: dwa watch: follow a task until it has finished.
 *
 * Each look reads the task, then its steps (so the steps are never older
 * than the task's state), and shows what it saw.  On a terminal the
 * picture is redrawn in place: a line for the task and one per step, with
 * a progress bar for running steps; forEach elements are summed up on
 * their step's line, and the picture is cut to the window's height so the
 * redraw (cursor up, rewrite) stays exact.  Anywhere else a plain line is
 * printed only when something changed, for logs and scripts.
 *
 * Between looks the command blocks on the connection's socket until a
 * dwa_events notification about the task arrives or the interval ends.
 */
#include <sys/ioctl.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "pq.h"
#include "util.h"
#include "xmalloc.h"

#define CMD_WATCH_INTERVAL_MAX	3600000	/* ms */
#define CMD_WATCH_INTERVAL_MIN	10	/* ms: shorter is a busy loop */
#define CMD_WATCH_BAR		10	/* characters in a progress bar */
#define CMD_WATCH_NAME_MAX	24	/* step names are cut to this */
#define CMD_WATCH_ERROR_MAX	200	/* errors on plain lines */

/* What the last plain output said about one step (or forEach element). */
struct cmd_watch_step {
	int	 step_index;
	int	 item_index;	/* -1: the step itself */
	char	*line;
};

/* One watch: the task, how to show it, and what was shown last. */
struct cmd_watch {
	const struct cmd_entry	*entry;
	PGconn			*conn;
	long long		 id;
	char			 idbuf[32];
	int			 tty;

	/* Plain output: the last line printed for the task and each step. */
	char			*task_line;
	struct cmd_watch_step	*steps;
	size_t			 nsteps;

	/* Terminal output: the frame last drawn and its height. */
	char			*frame;
	int			 frame_lines;
};

/* Columns of the step query. */
enum {
	CMD_WATCH_STEP_INDEX,
	CMD_WATCH_ITEM_INDEX,
	CMD_WATCH_STEP_ID,
	CMD_WATCH_STATUS,
	CMD_WATCH_PROGRESS,
	CMD_WATCH_ERROR,
	CMD_WATCH_ELEMENTS
};

static const char *cmd_watch_task_sql =
    "SELECT type, status, progress, error FROM dwa.tasks WHERE id = $1";
static const char *cmd_watch_steps_sql =
    "SELECT step_index, coalesce(item_index, -1), step_id, status, "
    "  progress, error, elements "
    "FROM dwa.task_steps WHERE task_id = $1 "
    "ORDER BY step_index, item_index NULLS FIRST";

/* Append a formatted piece to a growing string. */
static void __printflike(2, 3)
cmd_watch_add(char **s, const char *fmt, ...)
{
	va_list	 ap;
	char	*piece, *old = *s;

	va_start(ap, fmt);
	xvasprintf(&piece, fmt, ap);
	va_end(ap);
	if (old == NULL) {
		*s = piece;
		return;
	}
	xasprintf(s, "%s%s", old, piece);
	free(old);
	free(piece);
}

/* A progress bar: "[####......] 40%". */
static void
cmd_watch_bar(char **s, int pct)
{
	char	bar[CMD_WATCH_BAR + 1];
	int	i, full;

	if (pct < 0)
		pct = 0;
	if (pct > 100)
		pct = 100;
	full = (pct * CMD_WATCH_BAR + 50) / 100;
	for (i = 0; i < CMD_WATCH_BAR; i++)
		bar[i] = i < full ? '#' : '.';
	bar[CMD_WATCH_BAR] = '\0';
	cmd_watch_add(s, "[%s] %3d%%", bar, pct);
}

/* The name of a step row: "frames", or "describe[3]" for an element. */
static char *
cmd_watch_name(const PGresult *res, int r)
{
	char	*id, *name;
	int	 item;

	id = cmd_escape(PQgetvalue(res, r, CMD_WATCH_STEP_ID),
	    CMD_WATCH_NAME_MAX);
	item = atoi(PQgetvalue(res, r, CMD_WATCH_ITEM_INDEX));
	if (item < 0)
		return (id);
	xasprintf(&name, "%s[%d]", id, item);
	free(id);
	return (name);
}

/* The plain line of a task: "task 42 running 40%", "task 42 failed: x". */
static char *
cmd_watch_task_line(struct cmd_watch *w, const PGresult *task)
{
	const char	*status = PQgetvalue(task, 0, 1);
	char		*line, *error;

	if (strcmp(status, "failed") == 0) {
		error = cmd_escape(PQgetisnull(task, 0, 3) ? "no error "
		    "recorded" : PQgetvalue(task, 0, 3), CMD_WATCH_ERROR_MAX);
		xasprintf(&line, "task %lld failed: %s", w->id, error);
		free(error);
	} else if (cmd_task_finished(status))
		xasprintf(&line, "task %lld %s", w->id, status);
	else
		xasprintf(&line, "task %lld %s %s%%", w->id, status,
		    PQgetvalue(task, 0, 2));
	return (line);
}

/* Compare the (step_index, item_index) keys of two steps. */
static int
cmd_watch_cmp(int si1, int ii1, int si2, int ii2)
{
	if (si1 != si2)
		return (si1 < si2 ? -1 : 1);
	if (ii1 != ii2)
		return (ii1 < ii2 ? -1 : 1);
	return (0);
}

/*
 * Plain output: print the lines that changed since the last look.  Both
 * the old and the new step lists are sorted by key, and a step never
 * goes away, so one merge pass pairs them up.
 */
static void
cmd_watch_plain(struct cmd_watch *w, const PGresult *task,
    const PGresult *steps)
{
	struct cmd_watch_step	*new;
	const char		*status;
	char			*tline, *name, *error;
	size_t			 o = 0, i, n;
	int			 r, cmp, finished;

	tline = cmd_watch_task_line(w, task);
	finished = cmd_task_finished(PQgetvalue(task, 0, 1));
	if (!finished && (w->task_line == NULL ||
	    strcmp(w->task_line, tline) != 0))
		printf("%s\n", tline);

	n = PQntuples(steps);
	new = xcalloc(n + 1, sizeof *new);
	for (r = 0; r < (int)n; r++) {
		new[r].step_index = atoi(PQgetvalue(steps, r,
		    CMD_WATCH_STEP_INDEX));
		new[r].item_index = atoi(PQgetvalue(steps, r,
		    CMD_WATCH_ITEM_INDEX));
		status = PQgetvalue(steps, r, CMD_WATCH_STATUS);
		name = cmd_watch_name(steps, r);
		if (strcmp(status, "running") == 0 &&
		    !PQgetisnull(steps, r, CMD_WATCH_PROGRESS))
			xasprintf(&new[r].line, "step %s running %s%%", name,
			    PQgetvalue(steps, r, CMD_WATCH_PROGRESS));
		else if (strcmp(status, "failed") == 0 &&
		    !PQgetisnull(steps, r, CMD_WATCH_ERROR)) {
			error = cmd_escape(PQgetvalue(steps, r,
			    CMD_WATCH_ERROR), CMD_WATCH_ERROR_MAX);
			xasprintf(&new[r].line, "step %s failed: %s", name,
			    error);
			free(error);
		} else
			xasprintf(&new[r].line, "step %s %s", name, status);
		free(name);

		cmp = -1;
		while (o < w->nsteps && (cmp = cmd_watch_cmp(
		    w->steps[o].step_index, w->steps[o].item_index,
		    new[r].step_index, new[r].item_index)) < 0)
			o++;
		if (o >= w->nsteps || cmp != 0 ||
		    strcmp(w->steps[o].line, new[r].line) != 0)
			printf("%s\n", new[r].line);
	}
	if (finished)
		printf("%s\n", tline);
	fflush(stdout);

	for (i = 0; i < w->nsteps; i++)
		free(w->steps[i].line);
	free(w->steps);
	w->steps = new;
	w->nsteps = n;
	free(w->task_line);
	w->task_line = tline;
}

/*
 * Terminal output: build the frame (task line, then one line per step),
 * and redraw it over the last one if it changed.
 */
static void
cmd_watch_draw(struct cmd_watch *w, const PGresult *task,
    const PGresult *steps)
{
	struct winsize	 ws;
	const char	*status;
	char		*frame = NULL, *line, *cut, *name, *error, *p;
	int		 rows = 24, cols = 80, nrows, r, e, total, done;
	int		 namew = 4, hidden = 0, nlines = 0;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 2 &&
	    ws.ws_col > 20) {
		rows = ws.ws_row;
		cols = ws.ws_col;
	}
	nrows = PQntuples(steps);
	for (r = 0; r < nrows; r++) {
		if (atoi(PQgetvalue(steps, r, CMD_WATCH_ITEM_INDEX)) >= 0)
			continue;
		name = cmd_watch_name(steps, r);
		if ((int)strlen(name) > namew)
			namew = (int)strlen(name);
		free(name);
	}

	/* The task line. */
	line = NULL;
	cmd_watch_add(&line, "task %lld %s  ", w->id, PQgetvalue(task, 0, 0));
	status = PQgetvalue(task, 0, 1);
	if (strcmp(status, "failed") == 0 && !PQgetisnull(task, 0, 3)) {
		error = cmd_escape(PQgetvalue(task, 0, 3), 0);
		cmd_watch_add(&line, "failed: %s", error);
		free(error);
	} else if (cmd_task_finished(status))
		cmd_watch_add(&line, "%s", status);
	else {
		cmd_watch_add(&line, "%-9s  ", status);
		cmd_watch_bar(&line, atoi(PQgetvalue(task, 0, 2)));
	}
	cut = cmd_escape(line, cols - 1);
	cmd_watch_add(&frame, "%s\n", cut);
	free(cut);
	free(line);
	nlines++;

	/*
	 * One line per step; forEach elements are counted on theirs, out of
	 * all of them (a large forEach makes their rows in chunks).
	 */
	for (r = 0; r < nrows; r = e) {
		total = done = 0;
		for (e = r + 1; e < nrows && atoi(PQgetvalue(steps, e,
		    CMD_WATCH_ITEM_INDEX)) >= 0; e++) {
			total++;
			if (strcmp(PQgetvalue(steps, e, CMD_WATCH_STATUS),
			    "succeeded") == 0)
				done++;
		}
		if (total > 0 && !PQgetisnull(steps, r, CMD_WATCH_ELEMENTS))
			total = atoi(PQgetvalue(steps, r, CMD_WATCH_ELEMENTS));
		if (nlines >= rows - 2) {
			hidden++;
			continue;
		}
		line = NULL;
		name = cmd_watch_name(steps, r);
		status = PQgetvalue(steps, r, CMD_WATCH_STATUS);
		cmd_watch_add(&line, "  %-*s  ", namew, name);
		free(name);
		if (strcmp(status, "running") == 0 && total > 0) {
			cmd_watch_add(&line, "%-9s  ", status);
			cmd_watch_bar(&line, done * 100 / total);
			cmd_watch_add(&line, "  %d/%d", done, total);
		} else if (strcmp(status, "running") == 0 &&
		    !PQgetisnull(steps, r, CMD_WATCH_PROGRESS)) {
			cmd_watch_add(&line, "%-9s  ", status);
			cmd_watch_bar(&line, atoi(PQgetvalue(steps, r,
			    CMD_WATCH_PROGRESS)));
		} else if (strcmp(status, "failed") == 0 &&
		    !PQgetisnull(steps, r, CMD_WATCH_ERROR)) {
			error = cmd_escape(PQgetvalue(steps, r,
			    CMD_WATCH_ERROR), 0);
			cmd_watch_add(&line, "failed: %s", error);
			free(error);
		} else
			cmd_watch_add(&line, "%s", status);
		cut = cmd_escape(line, cols - 1);
		cmd_watch_add(&frame, "%s\n", cut);
		free(cut);
		free(line);
		nlines++;
	}
	if (hidden > 0) {
		cmd_watch_add(&frame, "  ... and %d more step%s\n", hidden,
		    hidden == 1 ? "" : "s");
		nlines++;
	}

	if (w->frame != NULL && strcmp(w->frame, frame) == 0) {
		free(frame);
		return;
	}
	/* Back to the first line of the last frame, then rewrite each. */
	if (w->frame_lines > 0)
		printf("\033[%dA", w->frame_lines);
	for (p = frame; *p != '\0'; p = line + 1) {
		line = strchr(p, '\n');
		printf("\r\033[K%.*s\n", (int)(line - p), p);
	}
	printf("\033[J");
	fflush(stdout);
	free(w->frame);
	w->frame = frame;
	w->frame_lines = nlines;
}

/*
 * Take one look at the task and show it.  Returns 0 while it runs, 1
 * once it has finished (*code: 0 completed, 1 otherwise), or -1 after
 * reporting an error.
 */
static int
cmd_watch_look(struct cmd_watch *w, int *code)
{
	const char	*params[1] = { w->idbuf };
	PGresult	*task, *steps;
	char		*cause;
	int		 finished;

	task = pq_exec(w->conn, cmd_watch_task_sql, 1, params, &cause);
	if (task == NULL)
		goto fail;
	if (PQntuples(task) == 0) {
		PQclear(task);
		cmd_fail(w->entry, "task %lld not found", w->id);
		return (-1);
	}
	steps = pq_exec(w->conn, cmd_watch_steps_sql, 1, params, &cause);
	if (steps == NULL) {
		PQclear(task);
		goto fail;
	}
	if (w->tty)
		cmd_watch_draw(w, task, steps);
	else
		cmd_watch_plain(w, task, steps);
	finished = cmd_task_finished(PQgetvalue(task, 0, 1));
	if (finished)
		*code = strcmp(PQgetvalue(task, 0, 1), "completed") == 0 ?
		    DWA_EXIT_OK : DWA_EXIT_FAILURE;
	PQclear(steps);
	PQclear(task);
	return (finished);

fail:
	cmd_fail(w->entry, "%s", cause);
	free(cause);
	return (-1);
}

static int
cmd_watch_exec(const struct cmd_entry *entry, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "interval", required_argument, NULL, 'i' },
		CMD_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	struct cmd_watch	 w;
	char			*cause;
	long long		 last;
	int64_t			 interval = CMD_POLL_MS;
	int			 ch, code = -1, rc;
	size_t			 i;

	while ((ch = getopt_long(argc, argv, "i:h", longopts, NULL)) != -1) {
		if (cmd_common_option(entry, ch, &code)) {
			if (code != -1)
				return (code);
			continue;
		}
		if (ch != 'i')
			continue;
		if (util_parse_duration(optarg, &interval, &cause) != 0) {
			code = cmd_usage(entry, "--interval: %s", cause);
			free(cause);
			return (code);
		}
		if (interval < CMD_WATCH_INTERVAL_MIN ||
		    interval > CMD_WATCH_INTERVAL_MAX)
			return (cmd_usage(entry, "--interval: must be between "
			    "10ms and 1h"));
	}
	memset(&w, 0, sizeof w);
	w.entry = entry;
	if (optind == argc)
		return (cmd_usage(entry, "missing task ID"));
	if (argc - optind > 1)
		return (cmd_usage(entry, "unexpected argument '%s'",
		    argv[optind + 1]));
	if ((code = cmd_parse_id(entry, argv[optind], &w.id)) != 0)
		return (code);
	snprintf(w.idbuf, sizeof w.idbuf, "%lld", w.id);
	w.tty = isatty(STDOUT_FILENO);

	w.conn = cmd_connect(entry);
	if (cmd_listen(w.conn, &cause) != 0) {
		code = cmd_fail(entry, "%s", cause);
		free(cause);
		goto out;
	}
	for (;;) {
		last = util_now_ms();
		if ((rc = cmd_watch_look(&w, &code)) != 0) {
			if (rc == -1)
				code = DWA_EXIT_FAILURE;
			break;
		}
		if (cmd_wait_task(w.conn, w.id, last, interval, &cause) != 0) {
			code = cmd_fail(entry, "%s", cause);
			free(cause);
			break;
		}
	}

out:
	PQfinish(w.conn);
	free(w.task_line);
	for (i = 0; i < w.nsteps; i++)
		free(w.steps[i].line);
	free(w.steps);
	free(w.frame);
	return (code);
}

const struct cmd_entry cmd_watch_entry = {
	.name = "watch",
	.usage = "watch ID [--interval DUR]",
	.summary = "follow a task's progress until it has finished; exit 1 "
	    "if it failed",
	.options =
	    "  -i, --interval DUR  look at least this often (default 250ms); "
	    "news from\n"
	    "                      the database is shown at once\n",
	.exec = cmd_watch_exec,
};
