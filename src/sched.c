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
 * - Claims happen after a wake-up (NOTIFY), after ends were recorded (they
 *   may have released dependents), when the last claim came back full, and
 *   at least every poll interval.  NOTIFY is only a hint.
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

struct run {
	struct sched		*sched;
	int64_t			 id;		/* dwa.steps.id */
	int64_t			 run_id;
	int64_t			 task_id;
	char			*step_id;
	int			 item_index;	/* -1: not a forEach element */
	char			*task;
	int			 attempt;
	int64_t			 started_ms;
	struct exec_run		*exec;		/* a built-in run, or */
	struct proc_run		*proc;		/* a program's run, or */
	struct net_run		*net;		/* a network built-in's */
	int64_t			 retry_after_ms; /* asked for by the answer */
	struct event		*timeout;
	TAILQ_ENTRY(run)	 entry;
};
TAILQ_HEAD(runs, run);

struct sched {
	struct event_base	*base;
	struct db		*db;
	struct sched_config	 cfg;
	int			 worker_id;	/* 0 until registered */
	int			 ready_logged;

	struct runs		 runs;
	int			 nruns;
	json_t			*pending;	/* ends not yet sent */
	json_t			*finishing;	/* ends in flight */

	int			 want_claim;
	int			 claiming;	/* claims in flight */
	int			 claim_next;	/* next --type-limit group to claim */

	/* Types this daemon serves: built-ins, then exec types (registry). */
	char			**types;
	int			 ntypes;
	int			 nbuiltin;
	json_t			*exec_argv;	/* name -> argv array */
	int			 loading;
	struct event		*registry_ev;
	struct event		*hold_ev;	/* claim again when a token is due */
	int			 renewing;
	int			 reaping;
	int			 draining;

	struct event		*poll_ev;
	struct event		*renew_ev;
	struct event		*reap_ev;
	struct event		*grace_ev;
};

static void	run_exec_done(void *, enum exec_outcome, json_t *, const char *);
static void	sched_claim_group(struct sched *, int);

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
	executor_run_abort(run->exec);
	executor_exec_abort(run->proc);
	executor_net_abort(run->net);
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
	json_array_append_new(s->pending, end);
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
	char		 id[32], pct[16];
	const char	*params[2];

	snprintf(id, sizeof id, "%" PRId64, run->run_id);
	snprintf(pct, sizeof pct, "%d", progress);
	params[0] = id;
	params[1] = pct;
	db_query(run->sched->db, "SELECT dwa.progress($1::bigint, "
	    "$2::numeric)", 2, params, NULL, NULL);
}

/* A program streamed an event: record it for UIs (fire and forget). */
static void
run_event(void *arg, const char *event, json_t *data)
{
	struct run	*run = arg;
	char		 id[32], *body;
	const char	*params[3];

	snprintf(id, sizeof id, "%" PRId64, run->run_id);
	body = data != NULL ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) :
	    NULL;
	params[0] = id;
	params[1] = event;
	params[2] = body;
	db_query(run->sched->db, "SELECT dwa.stream($1::bigint, $2, "
	    "$3::jsonb)", 3, params, NULL, NULL);
	free(body);
}

static void
run_net_retry(void *arg, int64_t retry_after_ms)
{
	struct run	*run = arg;

	run->retry_after_ms = retry_after_ms;
}

static void
run_net_done(void *arg, enum exec_outcome outcome, json_t *output,
    const char *error)
{
	struct run	*run = arg;

	run->net = NULL;
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

/* Start a program: argv is the type's command, a JSON array of strings. */
static void
run_start_program(struct run *run, json_t *argv, json_t *input)
{
	char	**av;
	size_t	  i, n = json_array_size(argv);

	av = xcalloc(n + 1, sizeof *av);
	for (i = 0; i < n; i++)
		av[i] = (char *)json_string_value(json_array_get(argv, i));
	run->proc = executor_exec_start(av, input, run->run_id, run_proc_done,
	    run_progress, run_event, run);
	free(av);
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

/* Start one claimed row. */
static void
run_start(struct sched *s, PGresult *res, int row)
{
	struct run	*run;
	json_t		*input;
	json_error_t	 jerr;
	json_t		*argv;
	char		*cause = NULL;

	run = xcalloc(1, sizeof *run);
	run->sched = s;
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
	if (executor_net_supports(run->task) && s->cfg.http != NULL) {
		run->net = executor_net_start(s->cfg.http, run->task, input,
		    run_net_done, run_net_retry, run, &cause);
		json_decref(input);
		if (run->net == NULL) {
			run_end(run, EXEC_PERMANENT, NULL, cause, -1);
			free(cause);
			return;
		}
		run_arm_timeout(s, run, res, row);
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
		run_start(s, res, i);
		started++;
	}
	log_debug("claimed %d", started);
	/* A full batch: more is probably waiting. */
	if (started > 0 && started >= s->cfg.batch)
		s->want_claim = 1;
	/* The next group of --type-limit types, with the room left now. */
	if (s->claim_next < s->cfg.ntype_limits && !s->draining &&
	    s->worker_id != 0)
		sched_claim_group(s, s->claim_next);
}

/* Claim up to n steps of the types in types (a PostgreSQL array). */
static void
sched_claim(struct sched *s, const char *types, int n)
{
	char		 worker[16], count[16], lease[32];
	const char	*params[4];

	snprintf(worker, sizeof worker, "%d", s->worker_id);
	snprintf(count, sizeof count, "%d", n);
	snprintf(lease, sizeof lease, "%" PRId64 " milliseconds",
	    s->cfg.lease_ms);
	params[0] = worker;
	params[1] = types;
	params[2] = count;
	params[3] = lease;
	if (db_query(s->db, "SELECT id, run_id, task_id, step_id, item_index, "
	    "task, input, attempt, timeout_ms, hold_ms FROM dwa._claim("
	    "$1::integer, $2::text[], $3::integer, $4::interval)", 4, params,
	    sched_claim_cb, s) == 0)
		s->claiming++;
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
 * Claim for the groups of types, one claim at a time so that each sees
 * the room the previous ones left: group -1 is the types no --type-limit
 * matches, group i the types whose first matching pattern is i.  Starts at
 * group first and continues from the claim's callback (claim_next).
 */
static void
sched_claim_group(struct sched *s, int first_group)
{
	struct evbuffer	*lit;
	char		*group;
	int		 i, j, k, empty, room, free_slots, matched;

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
		/* A PostgreSQL array literal, every name quoted. */
		lit = evbuffer_new();
		evbuffer_add(lit, "{", 1);
		empty = 1;
		for (k = 0; k < s->ntypes; k++) {
			matched = -1;
			for (j = 0; j < s->cfg.ntype_limits; j++) {
				if (fnmatch(s->cfg.type_limits[j].pattern,
				    s->types[k], 0) == 0) {
					matched = j;
					break;
				}
			}
			if (matched != i)
				continue;
			evbuffer_add_printf(lit, "%s\"", empty ? "" : ",");
			for (const char *c = s->types[k]; *c != '\0'; c++) {
				if (*c == '"' || *c == '\\')
					evbuffer_add(lit, "\\", 1);
				evbuffer_add(lit, c, 1);
			}
			evbuffer_add(lit, "\"", 1);
			empty = 0;
		}
		evbuffer_add(lit, "}", 2);	/* with the NUL */
		group = xstrdup((char *)evbuffer_pullup(lit, -1));
		evbuffer_free(lit);
		if (!empty) {
			s->claim_next = i + 1;
			sched_claim(s, group, room < s->cfg.batch ? room :
			    s->cfg.batch);
			free(group);
			return;
		}
		free(group);
	}
}

static void
sched_finish_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;

	if (res == NULL) {
		if (!db_is_up(s->db)) {
			/* Resend after the reconnect, oldest first. */
			json_array_extend(s->finishing, s->pending);
			json_decref(s->pending);
			s->pending = s->finishing;
		} else {
			log_error("recording %zu run ends failed: %s",
			    json_array_size(s->finishing), error);
			json_decref(s->finishing);
		}
		s->finishing = NULL;
		return;
	}
	/* A PostgreSQL array of the run ids whose ends were refused. */
	if (strcmp(PQgetvalue(res, 0, 0), "{}") != 0)
		log_info("ends refused (lease lost or task cancelled): runs %s",
		    PQgetvalue(res, 0, 0));
	json_decref(s->finishing);
	s->finishing = NULL;
	/* Dependents may have become ready. */
	s->want_claim = 1;
}

static void
sched_finish(struct sched *s)
{
	char		*body;
	const char	*params[1];

	body = json_dumps(s->pending, JSON_COMPACT | JSON_ENCODE_ANY);
	params[0] = body;
	if (db_query(s->db, "SELECT dwa._finish_batch($1::jsonb)", 1, params,
	    sched_finish_cb, s) == 0) {
		s->finishing = s->pending;
		s->pending = json_array();
	}
	free(body);
}

/* Run ids this daemon answers for: running and not yet recorded. */
static char *
sched_held_ids(struct sched *s)
{
	struct run	*run;
	json_t		*v;
	size_t		 i, len = 0, cap = 64;
	char		*out;

	out = xmalloc(cap);
	out[len++] = '{';
#define HELD_ADD(x) do {						\
	if (cap - len < 24) {						\
		cap *= 2;						\
		out = xrealloc(out, cap);				\
	}								\
	len += snprintf(out + len, cap - len, "%s%" PRId64,		\
	    len > 1 ? "," : "", (int64_t)(x));				\
} while (0)
	TAILQ_FOREACH(run, &s->runs, entry)
		HELD_ADD(run->run_id);
	json_array_foreach(s->pending, i, v)
		HELD_ADD(json_integer_value(json_object_get(v, "run")));
	if (s->finishing != NULL) {
		json_array_foreach(s->finishing, i, v)
			HELD_ADD(json_integer_value(json_object_get(v, "run")));
	}
#undef HELD_ADD
	if (cap - len < 2)
		out = xrealloc(out, cap + 2);
	out[len++] = '}';
	out[len] = '\0';
	return (out);
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
	char		 worker[16], lease[32], *ids;
	const char	*params[3];

	if (s->worker_id == 0 || s->renewing)
		return;
	ids = sched_held_ids(s);
	if (strcmp(ids, "{}") == 0) {
		free(ids);
		return;
	}
	snprintf(worker, sizeof worker, "%d", s->worker_id);
	snprintf(lease, sizeof lease, "%" PRId64 " milliseconds",
	    s->cfg.lease_ms);
	params[0] = worker;
	params[1] = ids;
	params[2] = lease;
	if (db_query(s->db, "SELECT dwa._renew($1::integer, $2::bigint[], "
	    "$3::interval)", 3, params, sched_renew_cb, s) == 0)
		s->renewing = 1;
	free(ids);
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
		if (db_is_up(s->db))
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
	if (db_query(s->db, "SELECT dwa._reap()", 0, NULL, sched_reap_cb,
	    s) == 0)
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

/* Rebuild the list of served types: built-ins, then the exec types. */
static void
sched_types_set(struct sched *s)
{
	const char	*name;
	json_t		*argv;
	int		 i;

	for (i = s->nbuiltin; i < s->ntypes; i++)
		free(s->types[i]);
	s->ntypes = s->nbuiltin;
	s->types = xreallocarray(s->types, s->nbuiltin +
	    json_object_size(s->exec_argv) + 1, sizeof *s->types);
	json_object_foreach(s->exec_argv, name, argv) {
		if (!executor_builtin_supports(name) && sched_serves(s, name))
			s->types[s->ntypes++] = xstrdup(name);
	}
}

static void
sched_registry_cb(PGresult *res, const char *error, void *arg)
{
	struct sched	*s = arg;
	json_t		*map, *argv, *v;
	size_t		 i;
	int		 r, ok;

	s->loading = 0;
	if (res == NULL) {
		if (db_is_up(s->db))
			log_error("loading the task types failed: %s", error);
		return;
	}
	map = json_object();
	for (r = 0; r < PQntuples(res); r++) {
		argv = json_loads(PQgetvalue(res, r, 1), 0, NULL);
		ok = json_is_array(argv) && json_array_size(argv) > 0;
		json_array_foreach(argv, i, v)
			ok = ok && json_is_string(v);
		if (ok)
			json_object_set_new(map, PQgetvalue(res, r, 0), argv);
		else {
			log_warn("task type %s: command is not a list of "
			    "strings; not served", PQgetvalue(res, r, 0));
			json_decref(argv);
		}
	}
	if (!json_equal(map, s->exec_argv)) {
		log_info("serving %zu program task type%s", json_object_size(map),
		    json_object_size(map) == 1 ? "" : "s");
		json_decref(s->exec_argv);
		s->exec_argv = map;
		sched_types_set(s);
		s->want_claim = 1;
	} else
		json_decref(map);
}

/* Load the exec types from dwa.task_types. */
static void
sched_registry_load(struct sched *s)
{
	if (s->loading || !db_is_up(s->db))
		return;
	if (db_query(s->db, "SELECT name, array_to_json(command)::text FROM "
	    "dwa.task_types WHERE executor = 'exec' AND command IS NOT NULL",
	    0, NULL, sched_registry_cb, s) == 0)
		s->loading = 1;
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
	s->want_claim = 1;
}

/* The work connection came up or went down. */
void
sched_db_state(struct sched *s, int up)
{
	char		 pid[16], conc[16], host[256];
	const char	*params[5];

	s->worker_id = 0;
	s->claiming = s->renewing = s->reaping = s->loading = 0;
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

/* Work after each loop pass: record ends, then claim if there is room. */
void
sched_after_pass(struct sched *s)
{
	int	free_slots;

	if (s->worker_id == 0)
		return;
	if (s->finishing == NULL && json_array_size(s->pending) > 0)
		sched_finish(s);
	if (s->draining || s->claiming || !s->want_claim)
		return;
	free_slots = s->cfg.concurrency - s->nruns;
	if (free_slots <= 0)
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
	return (json_array_size(s->pending) == 0 && s->finishing == NULL);
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
	TAILQ_INIT(&s->runs);
	s->pending = json_array();

	s->poll_ev = event_new(base, -1, EV_PERSIST, sched_poll_cb, s);
	tv.tv_sec = cfg->poll_ms / 1000;
	tv.tv_usec = (cfg->poll_ms % 1000) * 1000;
	event_add(s->poll_ev, &tv);

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
	if (cfg->http != NULL && sched_serves(s, "http.request")) {
		s->types = xreallocarray(s->types, s->ntypes + 1,
		    sizeof *s->types);
		s->types[s->ntypes++] = xstrdup("http.request");
	}
	s->nbuiltin = s->ntypes;
	s->exec_argv = json_object();
	s->registry_ev = event_new(base, -1, EV_PERSIST,
	    sched_registry_timer_cb, s);
	tv.tv_sec = 5;
	tv.tv_usec = 0;
	event_add(s->registry_ev, &tv);
	return (s);
}

void
sched_free(struct sched *s)
{
	struct run	*run;

	if (s == NULL)
		return;
	while ((run = TAILQ_FIRST(&s->runs)) != NULL)
		run_free(run);
	json_decref(s->pending);
	json_decref(s->finishing);
	event_free(s->poll_ev);
	event_free(s->renew_ev);
	event_free(s->reap_ev);
	event_free(s->grace_ev);
	event_free(s->hold_ev);
	event_free(s->registry_ev);
	while (s->ntypes > 0)
		free(s->types[--s->ntypes]);
	free(s->types);
	json_decref(s->exec_argv);
	free((char *)s->cfg.name);
	free(s);
}
