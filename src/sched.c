/*
 * sched.c: claiming, running and finishing steps.
 *
 * Invariants:
 * - The database is the truth.  A run exists here only between a claim
 *   and the commit of its end; a daemon that dies loses nothing but the
 *   runs in flight, which other daemons reclaim (dwa._reap).
 * - No transaction is open while a step runs: a claim and a batch of ends
 *   are each one statement.
 * - Ends are reported in batches, one query per loop pass at most, and
 *   resent after a reconnect; a refused end (lease lost, task cancelled)
 *   changes nothing.
 * - A claim's runs are recorded as one batch, a row of dwa.claims (unless
 *   a limit is in force: then in dwa.runs).  The row lives until every
 *   end of the batch is committed and accepted; the next claim or renewal
 *   deletes it.  A batch one of whose runs went without such an end (lost,
 *   cancelled, its end refused or dropped) is abandoned: no longer
 *   renewed, its row expires and the reaper ends what still runs of it.
 * - Claims happen after a wake-up (NOTIFY), after ends were recorded (they
 *   may have released dependents), when the last claim came back full, and
 *   at least every poll interval.  NOTIFY is only a hint.
 * - The work connection is for claims (and registration): the reaper,
 *   the registry reload, task directories and retention batches go to the
 *   housekeeping connection, and ends to the lanes', so that a claim woken
 *   by NOTIFY waits behind none of them.  Each falls back to the work
 *   connection while its own is down.
 */
#include <sys/queue.h>

#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "executor.h"
#include "log.h"
#include "sched.h"
#include "util.h"
#include "xmalloc.h"

/* The most ends of runs recorded by one statement. */
#define SCHED_ENDS_MAX	4096

/*
 * No claim while this many ends wait to be recorded.  A run's slot is
 * free once it ends, before its end is committed: when the database
 * records ends more slowly than it hands out claims (an overloaded
 * server, a lock on the tasks), the ends would pile up in memory without
 * bound (47 MB at 15,000 tasks a second behind by millions).
 */
#define SCHED_ENDS_WAITING_MAX	(2 * SCHED_ENDS_MAX)

/* Mark the tasks of runs still going this long after their claim. */
#define SCHED_MARK_MS	20

/* Chunked forEach steps queued for their next elements (sched_expand). */
#define SCHED_EXPAND_MAX	64

/*
 * A claim's runs recorded as one row of dwa.claims.  Its runs, then their
 * ends waiting in a lane, point to it until they are settled.
 */
struct batch {
	int64_t			 key;		/* dwa.claims.batch: first run id */
	int			 left;		/* runs without a committed end */
	int			 abandoned;	/* a run went without one */
	TAILQ_ENTRY(batch)	 entry;
};
TAILQ_HEAD(batches, batch);

/* The batches of a lane's ends, one for each, in order (NULL: none). */
struct bvec {
	struct batch		**v;
	size_t			  n;
	size_t			  cap;
};

struct run {
	struct sched		*sched;
	struct batch		*batch;		/* NULL: recorded in dwa.runs */
	int64_t			 id;		/* dwa.steps.id */
	int64_t			 run_id;
	int64_t			 task_id;
	char			*step_id;
	int			 item_index;	/* -1: not a forEach element */
	char			*task;
	int			 attempt;
	int64_t			 started_ms;
	int			 marked;	/* its task marked running */
	struct exec_run		*exec;		/* a built-in run, or */
	struct proc_run		*proc;		/* a program's run, or */
	struct net_run		*net;		/* a network built-in's, or */
	struct backend_run	*remote;	/* a backend's */
	int64_t			 retry_after_ms; /* asked for by the answer */
	struct event		*timeout;
	TAILQ_ENTRY(run)	 entry;
};
TAILQ_HEAD(runs, run);

/*
 * The ends of runs are recorded on SCHED_LANES connections beside the work
 * connection, a task's always on the same one (task id modulo the lanes):
 * batches of ends on two server processes at once, never two of one task,
 * and a run's progress, streamed events and end in that order on one.
 */
struct lane {
	struct sched		*sched;
	struct db		*db;		/* may be NULL: the work connection */
	struct db		*used;		/* where the ends in flight went */
	json_t			*pending;	/* ends not yet sent */
	json_t			*finishing;	/* ends in flight */
	struct bvec		 pending_b;	/* their batches */
	struct bvec		 finishing_b;
};

struct sched {
	struct event_base	*base;
	struct db		*db;		/* work: claims, registration */
	struct db		*house;		/* may be NULL: the work connection */
	struct lane		 lanes[SCHED_LANES];
	struct sched_config	 cfg;
	int			 worker_id;	/* 0 until registered */
	int			 ready_logged;

	struct runs		 runs;
	int			 nruns;
	struct batches		 batches;	/* with runs not yet settled */
	int64_t			*done;		/* batches settled, rows to delete */
	size_t			 ndone;
	size_t			 done_cap;

	int			 want_claim;
	int			 claiming;	/* claims in flight */
	int			 claim_next;	/* next --type-limit group to claim */

	/*
	 * Types this daemon serves: built-ins, then the registry's program
	 * and backend types.
	 */
	char			**types;
	int			 ntypes;
	int			 nbuiltin;
	json_t			*registry;	/* as last loaded */
	json_t			*exec_argv;	/* name -> argv array */
	json_t			*http_types;	/* name -> {backend, path} */
	json_t			*backends;	/* name -> {url, token_env, timeout_ms} */
	int			 loading;
	struct event		*registry_ev;
	struct event		*taskdir_ev;	/* remove directories of done tasks */
	int			 pruning;
	struct event		*retention_ev;	/* --retention */
	int			 retaining;	/* a prune batch in flight */
	int64_t			 retained;	/* tasks pruned this round */
	int64_t			 claimed;	/* steps claimed since the last vacuum */
	int			 vacuum_ok;	/* may vacuum the queues: 1 yes, 0 no,
						   -1 unknown, -2 being asked */
	int			 vacuuming;
	int64_t			 vacuum_at;	/* when the last vacuum began */
	int64_t			 expand[SCHED_EXPAND_MAX]; /* chunked forEach
						   steps due for elements; the
						   first in flight if expanding */
	int			 nexpand;
	int			 expanding;
	struct event		*hold_ev;	/* claim again when a token is due */
	struct event		*mark_ev;	/* mark the tasks of runs still going */
	int			 renewing;
	int			 reaping;
	int			 draining;

	struct event		*poll_ev;
	struct event		*renew_ev;
	struct event		*reap_ev;
	struct event		*grace_ev;
};

static void	run_exec_done(void *, enum exec_outcome, json_t *, const char *);
static void	sched_expand_next(struct sched *);
static void	sched_vacuum(struct sched *);
static void	sched_claim_group(struct sched *, int);

/* A lane's connection when it is up, else the work connection. */
static struct db *
lane_db(struct lane *l)
{
	return (db_up_or(l->db, l->sched->db));
}

/* The housekeeping connection when it is up, else the work connection. */
static struct db *
sched_house_db(struct sched *s)
{
	return (db_up_or(s->house, s->db));
}

/*
 * Whether a failed housekeeping statement is worth logging: not when it
 * failed because its connection went down.
 */
static int
sched_house_error(struct sched *s)
{
	return (db_is_up(s->db) && (s->house == NULL || db_is_up(s->house)));
}

/* The lane of a task's runs. */
static struct lane *
sched_lane(struct sched *s, int64_t task_id)
{
	return (&s->lanes[(uint64_t)task_id % SCHED_LANES]);
}

/*
 * The connection for what a run reports: progress, streamed events and its
 * end, in that order (one connection keeps it).
 */
static struct db *
run_db(struct run *run)
{
	return (lane_db(sched_lane(run->sched, run->task_id)));
}

/* The connection for lease renewals: the first lane's. */
static struct db *
sched_ends_db(struct sched *s)
{
	return (lane_db(&s->lanes[0]));
}

/* A PostgreSQL array literal of ids, built up one id at a time. */
struct idlist {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

static void
idlist_init(struct idlist *l)
{
	l->cap = 64;
	l->s = xmalloc(l->cap);
	l->s[0] = '{';
	l->len = 1;
}

static void
idlist_add(struct idlist *l, int64_t id)
{
	if (l->cap - l->len < 24) {
		l->cap *= 2;
		l->s = xrealloc(l->s, l->cap);
	}
	l->len += snprintf(l->s + l->len, l->cap - l->len, "%s%" PRId64,
	    l->len > 1 ? "," : "", id);
}

/* Close the literal; the caller frees the string. */
static char *
idlist_end(struct idlist *l)
{
	if (l->cap - l->len < 2)
		l->s = xrealloc(l->s, l->cap + 2);
	l->s[l->len++] = '}';
	l->s[l->len] = '\0';
	return (l->s);
}

/* Whether id (of length len) is an element of the array literal list. */
static int
id_in_list(const char *list, const char *id, size_t len)
{
	const char	*p;

	for (p = list; (p = strstr(p, id)) != NULL; p += len) {
		if ((p[-1] == '{' || p[-1] == ',') &&
		    (p[len] == ',' || p[len] == '}'))
			return (1);
	}
	return (0);
}

/* One run of a batch is settled: its end committed, or abandoned. */
static void
batch_release(struct sched *s, struct batch *b, int abandoned)
{
	if (abandoned)
		b->abandoned = 1;
	if (--b->left > 0)
		return;
	if (!b->abandoned) {
		if (s->ndone == s->done_cap) {
			s->done_cap = s->done_cap == 0 ? 16 : s->done_cap * 2;
			s->done = xreallocarray(s->done, s->done_cap,
			    sizeof *s->done);
		}
		s->done[s->ndone++] = b->key;
	}
	TAILQ_REMOVE(&s->batches, b, entry);
	free(b);
}

static void
bvec_push(struct bvec *bv, struct batch *b)
{
	if (bv->n == bv->cap) {
		bv->cap = bv->cap == 0 ? 64 : bv->cap * 2;
		bv->v = xreallocarray(bv->v, bv->cap, sizeof *bv->v);
	}
	bv->v[bv->n++] = b;
}

/* Move the first n of from to the end of to. */
static void
bvec_move(struct bvec *to, struct bvec *from, size_t n)
{
	size_t	i;

	if (n == 0)
		return;
	for (i = 0; i < n; i++)
		bvec_push(to, from->v[i]);
	if (from->n > n)
		memmove(from->v, from->v + n, (from->n - n) * sizeof *from->v);
	from->n -= n;
}

static void
run_log(int level, struct run *run, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg, idx[24] = "";

	if (level > log_level)
		return;
	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	if (run->item_index >= 0)
		snprintf(idx, sizeof idx, "[%d]", run->item_index);
	log_msg(level, "run %" PRId64 " task %" PRId64 " step %s%s: %s",
	    run->run_id, run->task_id, run->step_id, idx, msg);
	free(msg);
}

static void
run_free(struct run *run)
{
	struct sched	*s = run->sched;

	TAILQ_REMOVE(&s->runs, run, entry);
	s->nruns--;
	/* Gone without an end: its batch is left to the reaper. */
	if (run->batch != NULL)
		batch_release(s, run->batch, 1);
	executor_run_abort(run->exec);
	executor_exec_abort(run->proc);
	executor_net_abort(run->net);
	executor_http_abort(run->remote);
	if (run->timeout != NULL)
		event_free(run->timeout);
	free(run->step_id);
	free(run->task);
	free(run);
}

/* Record the end of a run for the next batch and forget the run. */
static void
run_end(struct run *run, enum exec_outcome outcome, json_t *output,
    const char *error, int64_t retry_after_ms)
{
	struct sched	*s = run->sched;
	json_t		*end;
	const char	*name;

	switch (outcome) {
	case EXEC_OK:
		name = "ok";
		break;
	case EXEC_TRANSIENT:
		name = "transient";
		break;
	case EXEC_PERMANENT:
		name = "permanent";
		break;
	default:
		fatalx("sched: run outcome %d", outcome);
	}
	end = json_pack("{s:I, s:I, s:s}", "id", (json_int_t)run->id, "run",
	    (json_int_t)run->run_id, "outcome", name);
	if (outcome == EXEC_OK)
		json_object_set(end, "output", output != NULL ? output : json_null());
	else
		json_object_set_new(end, "error", json_string(error != NULL ?
		    error : "failed"));
	if (retry_after_ms >= 0)
		json_object_set_new(end, "retryAfterMs",
		    json_integer(retry_after_ms));
	/* Its batch is settled when the end is committed. */
	json_array_append_new(sched_lane(s, run->task_id)->pending, end);
	bvec_push(&sched_lane(s, run->task_id)->pending_b, run->batch);
	run->batch = NULL;
	if (outcome == EXEC_OK)
		run_log(LOG_INFO, run, "succeeded in %" PRId64 " ms",
		    util_now_ms() - run->started_ms);
	else
		run_log(LOG_INFO, run, "failed (%s): %s", name,
		    error != NULL ? error : "failed");
	/* run_free aborts the executor run if it is still going. */
	run_free(run);
}

static void
run_exec_done(void *arg, enum exec_outcome outcome, json_t *output,
    const char *error)
{
	struct run	*run = arg;

	run->exec = NULL;
	run_end(run, outcome, output, error, -1);
}

static void
run_timeout_cb(evutil_socket_t fd __unused, short events __unused, void *arg)
{
	struct run	*run = arg;
	char		*msg;

	xasprintf(&msg, "timed out after %.3f s",
	    (util_now_ms() - run->started_ms) / 1000.0);
	if (run->proc != NULL) {
		/* A program's run ends when its process group has exited. */
		run_log(LOG_INFO, run, "%s: terminating", msg);
		executor_exec_terminate(run->proc, msg);
	} else
		run_end(run, EXEC_TRANSIENT, NULL, msg, -1);
	free(msg);
}

/* A program reported progress: record it (fire and forget). */
static void
run_progress(void *arg, int progress)
{
	struct run	*run = arg;
	char		 step[32], id[32], pct[16];
	const char	*params[3];

	snprintf(step, sizeof step, "%" PRId64, run->id);
	snprintf(id, sizeof id, "%" PRId64, run->run_id);
	snprintf(pct, sizeof pct, "%d", progress);
	params[0] = step;
	params[1] = id;
	params[2] = pct;
	db_query(run_db(run), "SELECT dwa._progress($1::bigint, $2::bigint, "
	    "$3::numeric)", 3, params, NULL, NULL);
}

/* A program streamed an event: record it for UIs (fire and forget). */
static void
run_event(void *arg, const char *event, json_t *data)
{
	struct run	*run = arg;
	char		 step[32], id[32], *body;
	const char	*params[4];

	snprintf(step, sizeof step, "%" PRId64, run->id);
	snprintf(id, sizeof id, "%" PRId64, run->run_id);
	body = data != NULL ? json_dumps(data, EXEC_JSON_FLAGS) :
	    NULL;
	params[0] = step;
	params[1] = id;
	params[2] = event;
	params[3] = body;
	db_query(run_db(run), "SELECT dwa._stream($1::bigint, $2::bigint, $3, "
	    "$4::jsonb)", 4, params, NULL, NULL);
	free(body);
}

static void
run_net_retry(void *arg, int64_t retry_after_ms)
{
	struct run	*run = arg;

	run->retry_after_ms = retry_after_ms;
}

/* A network run (a built-in or a backend's) ended: its run is gone. */
static void
run_net_done(void *arg, enum exec_outcome outcome, json_t *output,
    const char *error)
{
	struct run	*run = arg;

	run->net = NULL;
	run->remote = NULL;
	run_end(run, outcome, output, error,
	    outcome == EXEC_TRANSIENT ? run->retry_after_ms : -1);
}

static void
run_proc_done(void *arg, enum exec_outcome outcome, json_t *output,
    const char *error)
{
	struct run	*run = arg;

	run->proc = NULL;
	run_end(run, outcome, output, error, -1);
}

/*
 * Start a program: argv is the type's command, a JSON array of strings.
 * Its environment says which run it is and where the task's shared
 * directory is.  A program that cannot be started ends the run: -1.
 */
static int
run_start_program(struct run *run, json_t *argv, json_t *input)
{
	char	**av, *env[8], *dir, *cause = NULL;
	size_t	  i, n = json_array_size(argv);
	int	  e = 0;

	av = xcalloc(n + 1, sizeof *av);
	for (i = 0; i < n; i++)
		av[i] = (char *)json_string_value(json_array_get(argv, i));
	xasprintf(&env[e++], "DWA_RUN_ID=%" PRId64, run->run_id);
	xasprintf(&env[e++], "DWA_TASK_ID=%" PRId64, run->task_id);
	xasprintf(&env[e++], "DWA_STEP_ID=%s", run->step_id);
	xasprintf(&env[e++], "DWA_ATTEMPT=%d", run->attempt);
	if (run->item_index >= 0)
		xasprintf(&env[e++], "DWA_ITEM_INDEX=%d", run->item_index);
	if ((dir = executor_task_dir(run->task_id)) != NULL) {
		xasprintf(&env[e++], "DWA_TASK_DIR=%s", dir);
		free(dir);
	}
	env[e] = NULL;
	run->proc = executor_exec_start(av, env, input, run->run_id,
	    run_proc_done, run_progress, run_event, run, &cause);
	while (e > 0)
		free(env[--e]);
	free(av);
	if (run->proc == NULL) {
		/* Transient: the resources may be back by the next attempt. */
		run_end(run, EXEC_TRANSIENT, NULL, cause, -1);
		free(cause);
		return (-1);
	}
	return (0);
}

/*
 * Send a step to its backend: the step's own (from the task or step
 * definition), else its type's.  A backend not in dwa.backends fails the
 * step permanently, naming it: then the run is gone and -1 is returned.
 */
static int
run_start_remote(struct run *run, const char *step_backend,
    const struct exec_ctx *ctx, json_t *input, const struct exec_cbs *cbs)
{
	struct sched	*s = run->sched;
	struct backend	 be;
	json_t		*type, *row;
	const char	*name, *path, *env;
	char		*url, *msg;

	type = json_object_get(s->http_types, run->task);
	name = step_backend != NULL && *step_backend != '\0' ? step_backend :
	    json_string_value(json_object_get(type, "backend"));
	if (name == NULL) {
		run_end(run, EXEC_PERMANENT, NULL, "the task type is served by "
		    "a backend but names none: set task_types.backend or the "
		    "task's \"backend\"", -1);
		return (-1);
	}
	if ((row = json_object_get(s->backends, name)) == NULL) {
		xasprintf(&msg, "no backend \"%s\" in dwa.backends (dwa "
		    "backends set %s URL; MODAL_URL and RAY_URL define modal "
		    "and ray)", name, name);
		run_end(run, EXEC_PERMANENT, NULL, msg, -1);
		free(msg);
		return (-1);
	}
	path = json_string_value(json_object_get(type, "path"));
	xasprintf(&url, "%s%s", json_string_value(json_object_get(row, "url")),
	    path != NULL ? path : "");
	env = json_string_value(json_object_get(row, "token_env"));
	be.name = name;
	be.url = url;
	be.token = env != NULL ? getenv(env) : NULL;
	be.timeout_ms = (long)json_integer_value(json_object_get(row,
	    "timeout_ms"));
	run->remote = executor_http_start(s->cfg.http, &be, ctx, input, cbs);
	free(url);
	return (0);
}

/* Arm the run's timeout, if its step has one (column 8 of the claim). */
static void
run_arm_timeout(struct sched *s, struct run *run, PGresult *res, int row)
{
	int64_t		timeout_ms;
	struct timeval	tv;

	if (PQgetisnull(res, row, 8))
		return;
	timeout_ms = strtoll(PQgetvalue(res, row, 8), NULL, 10);
	if (timeout_ms <= 0)
		return;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	run->timeout = evtimer_new(s->base, run_timeout_cb, run);
	evtimer_add(run->timeout, &tv);
}

/* Start one claimed row, of batch b (NULL: recorded in dwa.runs). */
static void
run_start(struct sched *s, PGresult *res, int row, struct batch *b)
{
	struct run	*run;
	json_t		*input;
	json_error_t	 jerr;
	json_t		*argv;
	char		*cause = NULL;
	struct exec_ctx	 ctx;
	struct exec_cbs	 cbs;

	run = xcalloc(1, sizeof *run);
	run->sched = s;
	run->batch = b;
	run->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
	run->run_id = strtoll(PQgetvalue(res, row, 1), NULL, 10);
	run->task_id = strtoll(PQgetvalue(res, row, 2), NULL, 10);
	run->step_id = xstrdup(PQgetvalue(res, row, 3));
	run->item_index = PQgetisnull(res, row, 4) ? -1 :
	    atoi(PQgetvalue(res, row, 4));
	run->task = xstrdup(PQgetvalue(res, row, 5));
	run->attempt = atoi(PQgetvalue(res, row, 7));
	run->started_ms = util_now_ms();
	TAILQ_INSERT_TAIL(&s->runs, run, entry);
	s->nruns++;

	run_log(LOG_INFO, run, "started %s (attempt %d)", run->task,
	    run->attempt);
	input = PQgetisnull(res, row, 6) ? json_null() :
	    json_loads(PQgetvalue(res, row, 6), JSON_DECODE_ANY, &jerr);
	if (input == NULL) {
		run_end(run, EXEC_PERMANENT, NULL, "input is not valid JSON", -1);
		return;
	}
	run->retry_after_ms = -1;
	ctx.task = run->task;
	ctx.run_id = run->run_id;
	ctx.task_id = run->task_id;
	ctx.step_id = run->step_id;
	ctx.item_index = run->item_index;
	ctx.attempt = run->attempt;
	memset(&cbs, 0, sizeof cbs);
	cbs.done = run_net_done;	/* the network runs' */
	cbs.retry = run_net_retry;
	cbs.progress = run_progress;
	cbs.event = run_event;
	cbs.arg = run;
	if (executor_net_supports(run->task) && s->cfg.http != NULL) {
		run->net = executor_net_start(s->cfg.http, &ctx, input, &cbs,
		    &cause);
		json_decref(input);
		if (run->net == NULL) {
			run_end(run, EXEC_PERMANENT, NULL, cause, -1);
			free(cause);
			return;
		}
		run_arm_timeout(s, run, res, row);
		return;
	}
	if (json_object_get(s->http_types, run->task) != NULL &&
	    s->cfg.http != NULL) {
		if (run_start_remote(run, PQgetisnull(res, row, 10) ? NULL :
		    PQgetvalue(res, row, 10), &ctx, input, &cbs) == 0)
			run_arm_timeout(s, run, res, row);
		json_decref(input);
		return;
	}
	argv = json_object_get(s->exec_argv, run->task);
	if (!executor_builtin_supports(run->task) && argv == NULL) {
		json_decref(input);
		run_end(run, EXEC_PERMANENT, NULL, "no executor in this daemon "
		    "serves this task type", -1);
		return;
	}
	run_arm_timeout(s, run, res, row);
	if (argv != NULL)
		run_start_program(run, argv, input);
	else
		run->exec = executor_builtin_start(s->base, run->task, input,
		    run_exec_done, run);
	json_decref(input);
}

/* (Re)start the poll interval from now. */
static void
sched_poll_arm(struct sched *s)
{
	struct timeval	tv;

	tv.tv_sec = s->cfg.poll_ms / 1000;
	tv.tv_usec = (s->cfg.poll_ms % 1000) * 1000;
	event_add(s->poll_ev, &tv);
}

static void
sched_hold_cb(evutil_socket_t fd __unused, short events __unused, void *arg)
{
	struct sched	*s = arg;

	s->want_claim = 1;
}

static void
sched_claim_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;
	struct batch	*b = NULL;
	struct timeval	 tv;
	int64_t		 hold_ms;
	int		 i, n, started = 0;

	s->claiming--;
	if (res == NULL) {
		if (db_is_up(s->db))
			log_error("claim failed: %s", error);
		return;
	}
	n = PQntuples(res);
	/* The runs recorded as a batch: its key on each row. */
	for (i = 0; i < n; i++) {
		if (PQgetisnull(res, i, 1) || PQgetisnull(res, i, 11))
			continue;
		if (b == NULL) {
			b = xcalloc(1, sizeof *b);
			b->key = strtoll(PQgetvalue(res, i, 11), NULL, 10);
			TAILQ_INSERT_TAIL(&s->batches, b, entry);
		}
		b->left++;
	}
	for (i = 0; i < n; i++) {
		if (PQgetisnull(res, i, 1)) {
			/*
			 * The hint row: steps are held back by a rate limit or
			 * a pause; look again when the next token is due.
			 */
			hold_ms = strtoll(PQgetvalue(res, i, 9), NULL, 10);
			tv.tv_sec = hold_ms / 1000;
			tv.tv_usec = (hold_ms % 1000) * 1000;
			evtimer_add(s->hold_ev, &tv);
			log_debug("claim: held back by limits for %" PRId64 " ms",
			    hold_ms);
			continue;
		}
		run_start(s, res, i, PQgetisnull(res, i, 11) ? NULL : b);
		started++;
	}
	log_debug("claimed %d", started);
	s->claimed += started;
	sched_vacuum(s);
	if (started > 0 && !evtimer_pending(s->mark_ev, NULL)) {
		tv.tv_sec = 0;
		tv.tv_usec = SCHED_MARK_MS * 1000;
		evtimer_add(s->mark_ev, &tv);
	}
	/* A full batch: more is probably waiting. */
	if (started > 0 && started >= s->cfg.batch)
		s->want_claim = 1;
	/* The next group of --type-limit types, with the room left now. */
	if (s->claim_next < s->cfg.ntype_limits && !s->draining &&
	    s->worker_id != 0)
		sched_claim_group(s, s->claim_next);
}

/*
 * The batches settled since the last claim or renewal, as a PostgreSQL
 * array literal (the caller frees it), forgotten here: their rows go with
 * the statement that carries them, or, should it fail, with the reaper.
 */
static char *
sched_done_ids(struct sched *s)
{
	struct idlist	l;
	size_t		i;

	idlist_init(&l);
	for (i = 0; i < s->ndone; i++)
		idlist_add(&l, s->done[i]);
	s->ndone = 0;
	return (idlist_end(&l));
}

/* Claim up to n steps of the types in types (a PostgreSQL array). */
static void
sched_claim(struct sched *s, const char *types, int n)
{
	char		 worker[16], count[16], lease[32], *done;
	const char	*params[6];

	snprintf(worker, sizeof worker, "%d", s->worker_id);
	snprintf(count, sizeof count, "%d", n);
	snprintf(lease, sizeof lease, "%" PRId64 " milliseconds",
	    s->cfg.lease_ms);
	params[0] = worker;
	params[1] = types;
	params[2] = count;
	params[3] = lease;
	params[4] = s->cfg.queues;	/* NULL: any queue */
	params[5] = done = sched_done_ids(s);
	/* Prepared: no parsing or planning of it between a wake-up and a run. */
	if (db_query_prepared(s->db, "dwa_claim", "SELECT id, run_id, task_id, "
	    "step_id, item_index, task, input, attempt, timeout_ms, hold_ms, "
	    "backend, batch FROM dwa._claim_async($1::integer, $2::text[], "
	    "$3::integer, $4::interval, $5::text[], $6::bigint[])", 6, params,
	    sched_claim_cb, s) == 0) {
		s->claiming++;
		/* A claim is a look: the next poll is due an interval later. */
		sched_poll_arm(s);
	}
	free(done);
}

/* Runs of this daemon whose type matches a --type-limit pattern. */
static int
sched_running_matching(struct sched *s, const char *pattern)
{
	struct run	*run;
	int		 n = 0;

	TAILQ_FOREACH(run, &s->runs, entry) {
		if (fnmatch(pattern, run->task, 0) == 0)
			n++;
	}
	return (n);
}

/*
 * The --type-limit group of a type: the index of the first pattern it
 * matches, or -1 when it matches none.
 */
int
sched_type_group(const struct sched_config *cfg, const char *type)
{
	int	j;

	for (j = 0; j < cfg->ntype_limits; j++) {
		if (fnmatch(cfg->type_limits[j].pattern, type, 0) == 0)
			return (j);
	}
	return (-1);
}

/*
 * A PostgreSQL array literal of the types of a --type-limit group, every
 * name quoted; NULL when the group has none.  The caller frees it.
 */
char *
sched_types_literal(const struct sched_config *cfg, char *const *types,
    int ntypes, int group)
{
	struct evbuffer	*lit;
	char		*out = NULL;
	int		 k, empty = 1;

	lit = evbuffer_new();
	evbuffer_add(lit, "{", 1);
	for (k = 0; k < ntypes; k++) {
		if (sched_type_group(cfg, types[k]) != group)
			continue;
		evbuffer_add_printf(lit, "%s\"", empty ? "" : ",");
		for (const char *c = types[k]; *c != '\0'; c++) {
			if (*c == '"' || *c == '\\')
				evbuffer_add(lit, "\\", 1);
			evbuffer_add(lit, c, 1);
		}
		evbuffer_add(lit, "\"", 1);
		empty = 0;
	}
	evbuffer_add(lit, "}", 2);	/* with the NUL */
	if (!empty)
		out = xstrdup((char *)evbuffer_pullup(lit, -1));
	evbuffer_free(lit);
	return (out);
}

/*
 * Claim for the groups of types, one claim at a time so that each sees
 * the room the previous ones left: group -1 is the types no --type-limit
 * matches, group i the types whose first matching pattern is i.  Starts at
 * group first and continues from the claim's callback (claim_next).
 */
static void
sched_claim_group(struct sched *s, int first_group)
{
	char		*group;
	int		 i, room, free_slots;

	s->claim_next = s->cfg.ntype_limits;
	for (i = first_group; i < s->cfg.ntype_limits; i++) {
		free_slots = s->cfg.concurrency - s->nruns;
		if (free_slots <= 0)
			return;
		room = free_slots;
		if (i >= 0) {
			room = s->cfg.type_limits[i].max -
			    sched_running_matching(s,
			    s->cfg.type_limits[i].pattern);
			if (room > free_slots)
				room = free_slots;
			if (room <= 0)
				continue;
		}
		group = sched_types_literal(&s->cfg, s->types, s->ntypes, i);
		if (group != NULL) {
			s->claim_next = i + 1;
			sched_claim(s, group, room < s->cfg.batch ? room :
			    s->cfg.batch);
			free(group);
			return;
		}
	}
}

/*
 * The end i of those in flight is settled (accepted, or abandoned: refused
 * or dropped), and with it its part of its batch, if it has one (a run
 * claimed under a limit has none).
 */
static void
lane_settle(struct lane *l, size_t i, int abandoned)
{
	if (l->finishing_b.v[i] != NULL)
		batch_release(l->sched, l->finishing_b.v[i], abandoned);
}

static void
lane_finish_cb(PGresult *res, const char *error, void *arg)
{
	struct lane	*l = arg;
	json_t		*end;
	const char	*refused;
	char		 key[32];
	size_t		 i, len;
	int		 refusals, abandoned;

	if (res == NULL) {
		if (!db_is_up(l->used)) {
			/* Resend after the reconnect, oldest first. */
			json_array_extend(l->finishing, l->pending);
			json_decref(l->pending);
			l->pending = l->finishing;
			bvec_move(&l->finishing_b, &l->pending_b,
			    l->pending_b.n);
			bvec_move(&l->pending_b, &l->finishing_b,
			    l->finishing_b.n);
		} else {
			log_error("recording %zu run ends failed: %s",
			    json_array_size(l->finishing), error);
			for (i = 0; i < l->finishing_b.n; i++)
				lane_settle(l, i, 1);
			l->finishing_b.n = 0;
			json_decref(l->finishing);
		}
		l->finishing = NULL;
		return;
	}
	/* A PostgreSQL array of the run ids whose ends were refused. */
	refused = PQgetvalue(res, 0, 0);
	refusals = strcmp(refused, "{}") != 0;
	if (refusals)
		log_info("ends refused (lease lost or task cancelled): runs %s",
		    refused);
	json_array_foreach(l->finishing, i, end) {
		abandoned = 0;
		if (refusals) {
			len = (size_t)snprintf(key, sizeof key, "%" PRId64,
			    (int64_t)json_integer_value(json_object_get(end,
			    "run")));
			abandoned = id_in_list(refused, key, len);
		}
		lane_settle(l, i, abandoned);
	}
	l->finishing_b.n = 0;
	json_decref(l->finishing);
	l->finishing = NULL;
	/* Dependents may have become ready. */
	l->sched->want_claim = 1;
}

/*
 * Record a lane's ends, at most SCHED_ENDS_MAX a statement, oldest first:
 * the task locks of a batch are held until it commits, and libpq keeps its
 * buffers as large as the largest message it has sent.
 */
static void
lane_finish(struct lane *l)
{
	json_t		*batch, *rest;
	char		*body;
	const char	*params[1];
	size_t		 i;

	batch = l->pending;
	rest = json_array();
	if (json_array_size(batch) > SCHED_ENDS_MAX) {
		batch = json_array();
		for (i = 0; i < json_array_size(l->pending); i++)
			json_array_append(i < SCHED_ENDS_MAX ? batch : rest,
			    json_array_get(l->pending, i));
	}
	l->used = lane_db(l);
	body = json_dumps(batch, EXEC_JSON_FLAGS);
	params[0] = body;
	if (db_query_prepared(l->used, "dwa_finish_batch", "SELECT "
	    "dwa._finish_batch($1::jsonb)", 1, params, lane_finish_cb, l) == 0) {
		if (batch != l->pending)
			json_decref(l->pending);
		l->finishing = batch;
		l->pending = rest;
		bvec_move(&l->finishing_b, &l->pending_b,
		    json_array_size(batch));
	} else {
		if (batch != l->pending)
			json_decref(batch);
		json_decref(rest);
	}
	free(body);
}

/* Record the ends of runs of each lane not busy with a batch already. */
static void
sched_finish(struct sched *s)
{
	struct lane	*l;

	for (l = s->lanes; l < s->lanes + SCHED_LANES; l++) {
		if (l->finishing == NULL && json_array_size(l->pending) > 0)
			lane_finish(l);
	}
}

/*
 * The runs this daemon answers for, running or with an end not yet
 * recorded: their step ids and run ids, pair by pair, as two array
 * literals (the caller frees them).
 */
static void
sched_held_ids(struct sched *s, char **steps, char **runs)
{
	struct idlist	 ls, lr;
	struct lane	*ln;
	struct run	*run;
	json_t		*v, *ends;
	size_t		 i;
	int		 k;

	idlist_init(&ls);
	idlist_init(&lr);
	TAILQ_FOREACH(run, &s->runs, entry) {
		idlist_add(&ls, run->id);
		idlist_add(&lr, run->run_id);
	}
	for (ln = s->lanes; ln < s->lanes + SCHED_LANES; ln++) {
		for (k = 0; k < 2; k++) {
			ends = k == 0 ? ln->pending : ln->finishing;
			json_array_foreach(ends, i, v) {
				idlist_add(&ls, json_integer_value(
				    json_object_get(v, "id")));
				idlist_add(&lr, json_integer_value(
				    json_object_get(v, "run")));
			}
		}
	}
	*steps = idlist_end(&ls);
	*runs = idlist_end(&lr);
}

/* The batches held whole: not settled, none of their runs gone without an end. */
static char *
sched_live_batches(struct sched *s)
{
	struct idlist	 l;
	struct batch	*b;

	idlist_init(&l);
	TAILQ_FOREACH(b, &s->batches, entry) {
		if (!b->abandoned)
			idlist_add(&l, b->key);
	}
	return (idlist_end(&l));
}

/*
 * A claim leaves the task rows alone (see dwa._tasks_started): the end of
 * a run marks its task.  Runs still going SCHED_MARK_MS after their claim
 * have their tasks marked running here, on the connection for ends.
 */
static void
sched_mark_cb(PGresult *res, const char *error, void *arg)
{
	struct lane	*l = arg;
	struct sched	*s = l->sched;
	struct run	*run;
	struct timeval	 tv = { 0, SCHED_MARK_MS * 1000 };

	if (res != NULL)
		return;
	if (db_is_up(lane_db(l)))
		log_error("marking tasks running failed: %s", error);
	/* Again, later: marking a task twice changes nothing. */
	TAILQ_FOREACH(run, &s->runs, entry) {
		if (sched_lane(s, run->task_id) == l)
			run->marked = 0;
	}
	if (!TAILQ_EMPTY(&s->runs))
		evtimer_add(s->mark_ev, &tv);
}

/* Mark the tasks of the runs not marked yet, on their lanes. */
static void
sched_mark_timer_cb(evutil_socket_t fd __unused, short events __unused,
    void *arg)
{
	struct sched	*s = arg;
	struct idlist	 ids[SCHED_LANES];
	struct run	*run;
	const char	*params[1];
	int		 i, n[SCHED_LANES] = { 0 };

	for (i = 0; i < SCHED_LANES; i++)
		idlist_init(&ids[i]);
	TAILQ_FOREACH(run, &s->runs, entry) {
		if (run->marked)
			continue;
		run->marked = 1;
		i = sched_lane(s, run->task_id) - s->lanes;
		idlist_add(&ids[i], run->id);
		n[i]++;
	}
	for (i = 0; i < SCHED_LANES; i++) {
		params[0] = idlist_end(&ids[i]);
		if (n[i] > 0)
			db_query(lane_db(&s->lanes[i]), "SELECT "
			    "dwa._tasks_started($1::bigint[], true)", 1, params,
			    sched_mark_cb, &s->lanes[i]);
		free(ids[i].s);
	}
}

static void
sched_renew_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;
	struct run	*run, *next;
	char		*lost, *p, *tok;
	int64_t		 id;

	s->renewing = 0;
	if (res == NULL) {
		if (db_is_up(s->db))
			log_error("lease renewal failed: %s", error);
		return;
	}
	lost = xstrdup(PQgetvalue(res, 0, 0));
	p = lost + 1;
	p[strcspn(p, "}")] = '\0';
	while ((tok = strsep(&p, ",")) != NULL && *tok != '\0') {
		id = strtoll(tok, NULL, 10);
		TAILQ_FOREACH_SAFE(run, &s->runs, entry, next) {
			if (run->run_id == id) {
				run_log(LOG_WARN, run, "lease lost: stopping");
				run_free(run);
			}
		}
	}
	free(lost);
}

static void
sched_renew(struct sched *s)
{
	char		 worker[16], lease[32], *steps, *runs, *live, *done;
	const char	*params[6];

	if (s->worker_id == 0 || s->renewing)
		return;
	sched_held_ids(s, &steps, &runs);
	if (strcmp(runs, "{}") == 0 && s->ndone == 0) {
		free(steps);
		free(runs);
		return;
	}
	live = sched_live_batches(s);
	done = sched_done_ids(s);
	snprintf(worker, sizeof worker, "%d", s->worker_id);
	snprintf(lease, sizeof lease, "%" PRId64 " milliseconds",
	    s->cfg.lease_ms);
	params[0] = worker;
	params[1] = steps;
	params[2] = runs;
	params[3] = lease;
	params[4] = live;
	params[5] = done;
	/*
	 * On the connection of the ends: a renewal and a batch of ends of the
	 * same runs, on two connections, could each hold a row the other
	 * waits for.
	 */
	if (db_query(sched_ends_db(s), "SELECT dwa._renew($1::integer, "
	    "$2::bigint[], $3::bigint[], $4::interval, $5::bigint[], "
	    "$6::bigint[])", 6, params, sched_renew_cb, s) == 0)
		s->renewing = 1;
	free(steps);
	free(runs);
	free(live);
	free(done);
}

static void
sched_renew_timer_cb(evutil_socket_t fd __unused, short events __unused,
    void *arg)
{
	sched_renew(arg);
}

static void
sched_reap_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;
	int		 n;

	s->reaping = 0;
	if (res == NULL) {
		if (sched_house_error(s))
			log_error("reaping failed: %s", error);
		return;
	}
	n = atoi(PQgetvalue(res, 0, 0));
	if (n > 0) {
		log_info("requeued %d run%s of dead daemons or expired leases",
		    n, n == 1 ? "" : "s");
		s->want_claim = 1;
	}
}

static void
sched_reap_timer_cb(evutil_socket_t fd __unused, short events __unused,
    void *arg)
{
	struct sched	*s = arg;

	if (s->worker_id == 0 || s->reaping)
		return;
	if (db_query(sched_house_db(s), "SELECT dwa._reap()", 0, NULL,
	    sched_reap_cb, s) == 0)
		s->reaping = 1;
}

static void
sched_poll_cb(evutil_socket_t fd __unused, short events __unused, void *arg)
{
	struct sched	*s = arg;

	s->want_claim = 1;
}

/* Whether --types lets this daemon serve type name. */
static int
sched_serves(const struct sched *s, const char *name)
{
	int	i;

	if (s->cfg.nserve == 0)
		return (1);
	for (i = 0; i < s->cfg.nserve; i++) {
		if (fnmatch(s->cfg.serve[i], name, 0) == 0)
			return (1);
	}
	return (0);
}

/* Rebuild the list of served types: built-ins, then the registry's. */
static void
sched_types_set(struct sched *s)
{
	const char	*name;
	json_t		*v;

	for (int i = s->nbuiltin; i < s->ntypes; i++)
		free(s->types[i]);
	s->ntypes = s->nbuiltin;
	s->types = xreallocarray(s->types, s->nbuiltin +
	    json_object_size(s->exec_argv) + json_object_size(s->http_types) +
	    1, sizeof *s->types);
	json_object_foreach(s->exec_argv, name, v) {
		if (!executor_builtin_supports(name) && sched_serves(s, name))
			s->types[s->ntypes++] = xstrdup(name);
	}
	if (s->cfg.http == NULL)
		return;
	json_object_foreach(s->http_types, name, v) {
		if (!executor_builtin_supports(name) &&
		    !executor_net_supports(name) && sched_serves(s, name))
			s->types[s->ntypes++] = xstrdup(name);
	}
}

/*
 * The registry as loaded: {"exec": {name: argv}, "http": {name: {backend,
 * path}}, "backends": {name: {url, token_env, timeout_ms}}}.  Program
 * types whose command is not a list of strings are left out, with a
 * warning the first time.
 */
static void
sched_registry_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;
	json_t		*reg, *exec, *argv, *v;
	const char	*name, *env;
	void		*tmp;
	size_t		 i;
	int		 ok;

	s->loading = 0;
	if (res == NULL) {
		if (sched_house_error(s))
			log_error("loading the task types failed: %s", error);
		return;
	}
	reg = json_pack("{s:o, s:o, s:o}",
	    "exec", json_loads(PQgetvalue(res, 0, 0), 0, NULL),
	    "http", json_loads(PQgetvalue(res, 0, 1), 0, NULL),
	    "backends", json_loads(PQgetvalue(res, 0, 2), 0, NULL));
	if (reg == NULL) {
		log_error("loading the task types: unreadable answer");
		return;
	}
	if (json_equal(reg, s->registry)) {
		json_decref(reg);
		return;
	}
	exec = json_object_get(reg, "exec");
	json_object_foreach_safe(exec, tmp, name, argv) {
		ok = json_is_array(argv) && json_array_size(argv) > 0;
		json_array_foreach(argv, i, v)
			ok = ok && json_is_string(v);
		if (!ok) {
			log_warn("task type %s: command is not a list of "
			    "strings; not served", name);
			json_object_del(exec, name);
		}
	}
	json_object_foreach(json_object_get(reg, "backends"), name, v) {
		env = json_string_value(json_object_get(v, "token_env"));
		if (env != NULL && getenv(env) == NULL)
			log_warn("backend %s: %s is not set here; its requests "
			    "go without a token", name, env);
	}
	json_decref(s->registry);
	s->registry = reg;
	s->exec_argv = exec;
	s->http_types = json_object_get(reg, "http");
	s->backends = json_object_get(reg, "backends");
	sched_types_set(s);
	log_info("serving %zu program and %zu backend task type%s, %zu "
	    "backend%s", json_object_size(s->exec_argv),
	    json_object_size(s->http_types),
	    json_object_size(s->http_types) == 1 ? "" : "s",
	    json_object_size(s->backends),
	    json_object_size(s->backends) == 1 ? "" : "s");
	s->want_claim = 1;
}

/* Load program and backend types, and the backends, from the database. */
static void
sched_registry_load(struct sched *s)
{
	if (s->loading)
		return;
	if (db_query(sched_house_db(s), "SELECT "
	    "(SELECT coalesce(json_object_agg(name, command), '{}') "
	    "FROM dwa.task_types WHERE executor = 'exec' AND command IS NOT "
	    "NULL)::text, "
	    "(SELECT coalesce(json_object_agg(name, json_build_object("
	    "'backend', backend, 'path', metadata ->> 'path')), '{}') "
	    "FROM dwa.task_types WHERE executor = 'http')::text, "
	    "(SELECT coalesce(json_object_agg(name, json_build_object('url', "
	    "url, 'token_env', token_env, 'timeout_ms', (extract(epoch FROM "
	    "timeout) * 1000)::bigint)), '{}') FROM dwa.backends)::text",
	    0, NULL, sched_registry_cb, s) == 0)
		s->loading = 1;
}

#define SCHED_TASKDIR_PRUNE_S	5

/* Remove the directories of the tasks that completed, or are gone. */
static void
sched_taskdir_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;
	char		*list, *p, *t;

	s->pruning = 0;
	if (res == NULL) {
		if (sched_house_error(s))
			log_error("looking for finished task directories: %s",
			    error);
		return;
	}
	list = xstrdup(PQgetvalue(res, 0, 0) + 1);	/* past '{' */
	list[strcspn(list, "}")] = '\0';
	for (p = list; (t = strsep(&p, ",")) != NULL;) {
		if (*t != '\0') {
			log_debug("removing the directory of task %s", t);
			executor_task_dir_remove(strtoll(t, NULL, 10));
		}
	}
	free(list);
}

static void
sched_taskdir_timer_cb(evutil_socket_t fd __unused, short events __unused,
    void *arg)
{
	struct sched	*s = arg;
	char		*ids;
	const char	*params[1];

	if (s->pruning || !db_is_up(sched_house_db(s)) ||
	    s->cfg.keep_workdirs || (ids = executor_task_dirs()) == NULL)
		return;
	params[0] = ids;
	/* Failed and cancelled tasks keep theirs: dwa.retry resumes them. */
	if (db_query(sched_house_db(s), "SELECT coalesce(array_agg(d.id), "
	    "'{}') FROM unnest($1::bigint[]) AS d(id) WHERE NOT EXISTS "
	    "(SELECT 1 FROM dwa.tasks t WHERE t.id = d.id AND t.status <> "
	    "'completed')", 1, params, sched_taskdir_cb, s) == 0)
		s->pruning = 1;
	free(ids);
}

/*
 * The queues' vacuum.  A claim deletes the ready rows it takes, and the
 * next claim walks ready_claim_idx from its head: over every entry of a
 * row deleted since the table was last vacuumed, for only VACUUM removes
 * the index pages left empty at the head, where nothing is inserted again.
 * Autovacuum comes by at most once a naptime (a minute by default) and
 * may be busy with a large table for longer; at 15,000 steps a second a
 * claim walked half a million dead entries (2,540 index pages, 35 ms).  So, as
 * PgQ's daemon does for its queues, dwad vacuums dwa.ready, dwa.claims
 * and dwa.runs itself after every --vacuum-every steps it claimed, at most
 * once a second, on the housekeeping connection only (never delaying
 * claims on theirs).  It skips a table another vacuum holds, and never
 * truncates one: that takes a lock every claim would wait behind.  Only a
 * table's owner (or the database's) may vacuum it: a daemon whose role
 * may not leaves it to autovacuum.
 */
#define SCHED_VACUUM_MIN_MS	1000

static void
sched_vacuum_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;

	s->vacuuming = 0;
	if (res == NULL && sched_house_error(s))
		log_error("vacuuming the queues failed: %s", error);
}

static void
sched_vacuum(struct sched *s)
{
	int64_t	 now;

	if (s->vacuum_ok != 1 || s->vacuuming || s->draining ||
	    s->cfg.vacuum_every == 0 || s->claimed < s->cfg.vacuum_every ||
	    s->house == NULL || !db_is_up(s->house))
		return;
	now = util_now_ms();
	if (now - s->vacuum_at < SCHED_VACUUM_MIN_MS)
		return;
	if (db_query(s->house, "VACUUM (SKIP_LOCKED, TRUNCATE false) "
	    "dwa.ready, dwa.claims, dwa.runs", 0, NULL, sched_vacuum_cb,
	    s) == 0) {
		s->vacuuming = 1;
		s->vacuum_at = now;
		s->claimed = 0;
	}
}

/* Whether this daemon's role may vacuum the queues: asked once. */
static void
sched_vacuum_ok_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;

	if (res == NULL) {
		s->vacuum_ok = -1;	/* asked again on the next registration */
		if (sched_house_error(s))
			log_error("cannot tell whether the queues may be "
			    "vacuumed: %s", error);
		return;
	}
	s->vacuum_ok = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (!s->vacuum_ok)
		log_info("queue vacuum: off, role %s may not vacuum "
		    "dwa.ready, dwa.claims and dwa.runs (their owner or the "
		    "database's may); autovacuum keeps them",
		    PQgetvalue(res, 0, 1));
}

static void
sched_vacuum_check(struct sched *s)
{
	if (s->vacuum_ok != -1 || s->cfg.vacuum_every == 0)
		return;
	if (db_query(sched_house_db(s), "SELECT bool_and(pg_has_role(c.relowner, "
	    "'USAGE') OR pg_has_role(d.datdba, 'USAGE')), current_user "
	    "FROM pg_class c, pg_database d WHERE c.oid IN ('dwa.ready'::regclass, "
	    "'dwa.claims'::regclass, 'dwa.runs'::regclass) "
	    "AND d.datname = current_database()", 0, NULL, sched_vacuum_ok_cb,
	    s) == 0)
		s->vacuum_ok = -2;	/* asking */
}

/*
 * The ends of a chunked forEach step's elements ask (NOTIFY dwa_expand) for
 * its next chunk while the one made still runs: made here, on the
 * housekeeping connection, one step at a time, in parallel with the claims
 * and ends of the chunk before.  A step asked for again while queued or in
 * flight is not queued twice, nor one past SCHED_EXPAND_MAX: its ends ask
 * again, and make the chunk themselves when nothing made is left to run.
 */
static void
sched_expand_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;
	int64_t		 step_id = s->expand[0];

	s->expanding = 0;
	s->nexpand--;
	memmove(s->expand, s->expand + 1, s->nexpand * sizeof(s->expand[0]));
	if (res == NULL) {
		if (sched_house_error(s))
			log_error("making the next elements of forEach step "
			    "%lld failed: %s", (long long)step_id, error);
	} else if (PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 0), "0") != 0)
		log_debug("forEach step %lld: %s more elements made",
		    (long long)step_id, PQgetvalue(res, 0, 0));
	sched_expand_next(s);
}

static void
sched_expand_next(struct sched *s)
{
	char		 id[24];
	const char	*params[1] = { id };

	if (s->expanding || s->nexpand == 0 || s->draining)
		return;
	snprintf(id, sizeof(id), "%lld", (long long)s->expand[0]);
	if (db_query_prepared(sched_house_db(s), "expand",
	    "SELECT dwa._expand($1::bigint)", 1, params, sched_expand_cb,
	    s) == 0)
		s->expanding = 1;
}

void
sched_expand(struct sched *s, int64_t step_id)
{
	int	i;

	if (s->worker_id == 0 || s->draining || step_id <= 0)
		return;
	for (i = 0; i < s->nexpand; i++)
		if (s->expand[i] == step_id)
			return;
	if (s->nexpand == SCHED_EXPAND_MAX)
		return;
	s->expand[s->nexpand++] = step_id;
	sched_expand_next(s);
}

#define SCHED_RETENTION_S	5
#define SCHED_RETENTION_BATCH	5000

static void	sched_retention_run(struct sched *);

/* A prune batch ended: a full one means more are due, at once. */
static void
sched_retention_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;
	int64_t		 n;

	s->retaining = 0;
	if (res == NULL) {
		if (sched_house_error(s))
			log_error("pruning finished tasks failed: %s", error);
		return;
	}
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	s->retained += n;
	if (n >= SCHED_RETENTION_BATCH && !s->draining) {
		sched_retention_run(s);
		return;
	}
	if (s->retained > 0)
		log_info("retention: pruned %" PRId64 " finished task%s",
		    s->retained, s->retained == 1 ? "" : "s");
	s->retained = 0;
}

/* Delete a batch of tasks finished longer ago than --retention. */
static void
sched_retention_run(struct sched *s)
{
	char		 age[32], limit[16];
	const char	*params[2];

	snprintf(age, sizeof age, "%" PRId64 " milliseconds",
	    s->cfg.retention_ms);
	snprintf(limit, sizeof limit, "%d", SCHED_RETENTION_BATCH);
	params[0] = age;
	params[1] = limit;
	if (db_query(sched_house_db(s), "SELECT dwa.prune($1::interval, "
	    "$2::integer)", 2, params, sched_retention_cb, s) == 0)
		s->retaining = 1;
}

static void
sched_retention_timer_cb(evutil_socket_t fd __unused, short events __unused,
    void *arg)
{
	struct sched	*s = arg;

	if (!s->retaining && s->worker_id != 0 && !s->draining)
		sched_retention_run(s);
}

static void
sched_registry_timer_cb(evutil_socket_t fd __unused, short events __unused,
    void *arg)
{
	sched_registry_load(arg);
}

static void
sched_register_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;

	if (res == NULL) {
		if (db_is_up(s->db))
			fatalx("cannot register this daemon: %s", error);
		return;
	}
	s->worker_id = atoi(PQgetvalue(res, 0, 0));
	if (!s->ready_logged) {
		log_info("ready: worker %d \"%s\", concurrency %d",
		    s->worker_id, s->cfg.name, s->cfg.concurrency);
		s->ready_logged = 1;
	} else
		log_info("registered again as worker %d", s->worker_id);
	/* Adopt what we still hold, before anyone reaps it. */
	sched_renew(s);
	sched_registry_load(s);
	sched_vacuum_check(s);
	s->want_claim = 1;
}

/* The work connection came up or went down. */
void
sched_db_state(struct sched *s, int up)
{
	char		 pid[16], conc[16], host[256];
	const char	*params[5];

	s->worker_id = 0;
	s->claiming = s->renewing = 0;
	if (!up)
		return;
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "unknown");
	host[sizeof host - 1] = '\0';
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	snprintf(conc, sizeof conc, "%d", s->cfg.concurrency);
	params[0] = s->cfg.name;
	params[1] = host;
	params[2] = pid;
	params[3] = DWA_VERSION;
	params[4] = conc;
	db_query(s->db, "SELECT dwa._register($1, $2, $3::integer, $4, "
	    "$5::integer)", 5, params, sched_register_cb, s);
}

/* Connection i of those for the ends of runs, beside the work connection. */
void
sched_set_finish_db(struct sched *s, int i, struct db *fdb)
{
	if (i >= 0 && i < SCHED_LANES)
		s->lanes[i].db = fdb;
}

/* The housekeeping connection, beside the work connection. */
void
sched_set_house_db(struct sched *s, struct db *hdb)
{
	s->house = hdb;
}

/* This daemon's id in dwa.workers; 0 while not registered. */
int
sched_worker_id(const struct sched *s)
{
	return (s->worker_id);
}

void
sched_wake(struct sched *s)
{
	s->want_claim = 1;
}

/* The task was cancelled (or failed): stop its runs, report nothing. */
void
sched_cancel_task(struct sched *s, int64_t task_id)
{
	struct run	*run, *next;

	TAILQ_FOREACH_SAFE(run, &s->runs, entry, next) {
		if (run->task_id == task_id) {
			run_log(LOG_INFO, run, "task cancelled: stopping");
			run_free(run);
		}
	}
}

/* The ends of runs not yet recorded, in flight or waiting in a lane. */
static size_t
sched_ends_waiting(const struct sched *s)
{
	const struct lane	*l;
	size_t			 n = 0;

	for (l = s->lanes; l < s->lanes + SCHED_LANES; l++)
		n += json_array_size(l->pending) + json_array_size(l->finishing);
	return (n);
}

/* Work after each loop pass: record ends, then claim if there is room. */
void
sched_after_pass(struct sched *s)
{
	int	free_slots;

	if (s->worker_id == 0)
		return;
	sched_finish(s);
	if (s->draining || s->claiming || !s->want_claim)
		return;
	free_slots = s->cfg.concurrency - s->nruns;
	if (free_slots <= 0 || sched_ends_waiting(s) >= SCHED_ENDS_WAITING_MAX)
		return;
	s->want_claim = 0;
	sched_claim_group(s, -1);
}

static void
sched_grace_cb(evutil_socket_t fd __unused, short events __unused,
    void *arg)
{
	struct sched	*s = arg;
	struct run	*run;

	if (s->nruns > 0)
		log_info("drain: grace period over, releasing %d run%s",
		    s->nruns, s->nruns == 1 ? "" : "s");
	while ((run = TAILQ_FIRST(&s->runs)) != NULL) {
		/* Ready again at once, without spending the attempt. */
		run_end(run, EXEC_TRANSIENT, NULL,
		    "released by a daemon shutting down", 0);
	}
}

/* Stop claiming; let runs finish for the grace period, then release. */
void
sched_drain(struct sched *s)
{
	struct timeval	tv;

	if (s->draining)
		return;
	s->draining = 1;
	log_info("drain: no more claims; waiting up to %" PRId64 " ms for %d "
	    "run%s", s->cfg.grace_ms, s->nruns, s->nruns == 1 ? "" : "s");
	tv.tv_sec = s->cfg.grace_ms / 1000;
	tv.tv_usec = (s->cfg.grace_ms % 1000) * 1000;
	evtimer_add(s->grace_ev, &tv);
}

/* Drained: nothing runs and every end is recorded (or cannot be). */
int
sched_finished(const struct sched *s)
{
	if (!s->draining || s->nruns > 0)
		return (0);
	if (!db_is_up(s->db))
		return (1);
	const struct lane	*l;

	for (l = s->lanes; l < s->lanes + SCHED_LANES; l++) {
		if (json_array_size(l->pending) > 0 || l->finishing != NULL)
			return (0);
	}
	return (1);
}

struct sched *
sched_create(struct event_base *base, struct db *db,
    const struct sched_config *cfg)
{
	struct sched	*s;
	struct timeval	 tv;
	char		*copy, *p, *t;

	s = xcalloc(1, sizeof *s);
	s->base = base;
	s->db = db;
	s->cfg = *cfg;
	s->cfg.name = xstrdup(cfg->name);
	s->vacuum_ok = -1;
	s->vacuum_at = util_now_ms() - SCHED_VACUUM_MIN_MS;
	TAILQ_INIT(&s->runs);
	TAILQ_INIT(&s->batches);
	for (int i = 0; i < SCHED_LANES; i++) {
		s->lanes[i].sched = s;
		s->lanes[i].pending = json_array();
	}

	s->poll_ev = event_new(base, -1, EV_PERSIST, sched_poll_cb, s);
	sched_poll_arm(s);

	s->renew_ev = event_new(base, -1, EV_PERSIST, sched_renew_timer_cb, s);
	tv.tv_sec = cfg->lease_ms / 3 / 1000;
	tv.tv_usec = (cfg->lease_ms / 3 % 1000) * 1000;
	event_add(s->renew_ev, &tv);

	s->reap_ev = event_new(base, -1, EV_PERSIST, sched_reap_timer_cb, s);
	tv.tv_sec = cfg->reap_ms / 1000;
	tv.tv_usec = (cfg->reap_ms % 1000) * 1000;
	event_add(s->reap_ev, &tv);

	s->grace_ev = evtimer_new(base, sched_grace_cb, s);
	s->hold_ev = evtimer_new(base, sched_hold_cb, s);
	s->mark_ev = evtimer_new(base, sched_mark_timer_cb, s);

	/* The built-in types, from their array literal. */
	copy = xstrdup(executor_builtin_types() + 1);
	copy[strcspn(copy, "}")] = '\0';
	for (p = copy; (t = strsep(&p, ",")) != NULL;) {
		if (!sched_serves(s, t))
			continue;
		s->types = xreallocarray(s->types, s->ntypes + 1,
		    sizeof *s->types);
		s->types[s->ntypes++] = xstrdup(t);
	}
	free(copy);
	for (size_t i = 0; cfg->http != NULL && i < 2; i++) {
		t = i == 0 ? "http.request" : "data.download";
		if (!sched_serves(s, t))
			continue;
		s->types = xreallocarray(s->types, s->ntypes + 1,
		    sizeof *s->types);
		s->types[s->ntypes++] = xstrdup(t);
	}
	s->nbuiltin = s->ntypes;
	s->registry = json_object();
	s->registry_ev = event_new(base, -1, EV_PERSIST,
	    sched_registry_timer_cb, s);
	tv.tv_sec = 5;
	tv.tv_usec = 0;
	event_add(s->registry_ev, &tv);
	s->taskdir_ev = event_new(base, -1, EV_PERSIST, sched_taskdir_timer_cb,
	    s);
	tv.tv_sec = SCHED_TASKDIR_PRUNE_S;
	event_add(s->taskdir_ev, &tv);
	s->retention_ev = event_new(base, -1, EV_PERSIST,
	    sched_retention_timer_cb, s);
	if (cfg->retention_ms > 0) {
		tv.tv_sec = SCHED_RETENTION_S;
		event_add(s->retention_ev, &tv);
	}
	return (s);
}

void
sched_free(struct sched *s)
{
	struct run	*run;
	struct batch	*b;

	if (s == NULL)
		return;
	while ((run = TAILQ_FIRST(&s->runs)) != NULL)
		run_free(run);
	while ((b = TAILQ_FIRST(&s->batches)) != NULL) {
		TAILQ_REMOVE(&s->batches, b, entry);
		free(b);
	}
	free(s->done);
	for (int i = 0; i < SCHED_LANES; i++) {
		json_decref(s->lanes[i].pending);
		json_decref(s->lanes[i].finishing);
		free(s->lanes[i].pending_b.v);
		free(s->lanes[i].finishing_b.v);
	}
	event_free(s->poll_ev);
	event_free(s->renew_ev);
	event_free(s->reap_ev);
	event_free(s->grace_ev);
	event_free(s->hold_ev);
	event_free(s->mark_ev);
	event_free(s->registry_ev);
	event_free(s->taskdir_ev);
	event_free(s->retention_ev);
	while (s->ntypes > 0)
		free(s->types[--s->ntypes]);
	free(s->types);
	json_decref(s->registry);
	free((char *)s->cfg.name);
	free(s);
}
