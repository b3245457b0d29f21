/*
 * executor.h: how the scheduler runs one step.
 *
 * An executor run starts with a task type and its input and ends exactly
 * once through the done callback, never from inside the start call, unless
 * it is aborted first (then the callback never runs).
 */
#ifndef EXECUTOR_H
#define EXECUTOR_H

#include <event2/event.h>
#include <jansson.h>

#include "dwa.h"

/*
 * JSON as the daemon writes it: compact, and reals with 15 significant
 * digits, so that 6.014 read from a program is written back as 6.014 (17
 * digits, jansson's default, would show 6.0140000000000002).
 */
#define EXEC_JSON_FLAGS	(JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

enum exec_outcome {
	EXEC_OK,		/* output is the step's output */
	EXEC_TRANSIENT,		/* may succeed if retried */
	EXEC_PERMANENT,		/* retrying cannot help */
};

struct exec_run;
struct proc_run;
struct net_run;
struct http;

/*
 * A run ended.  output (on EXEC_OK) is borrowed: take a reference to keep
 * it.  error (otherwise) is borrowed too.
 */
typedef void exec_done_cb(void *arg, enum exec_outcome, json_t *output,
		    const char *error);

int		 executor_builtin_supports(const char *);
const char	*executor_builtin_types(void);
struct exec_run	*executor_builtin_start(struct event_base *, const char *,
		     json_t *, exec_done_cb *, void *);
void		 executor_run_abort(struct exec_run *);

/* A running program reported its progress (0-100). */
typedef void exec_progress_cb(void *arg, int progress);
/* A running program streamed an event; data (may be NULL) is borrowed. */
typedef void exec_event_cb(void *arg, const char *event, json_t *data);

void		 executor_exec_init(struct event_base *, const char *, int);
void		 executor_exec_shutdown(void);
struct proc_run	*executor_exec_start(char *const *, char *const *, json_t *,
		     int64_t, exec_done_cb *, exec_progress_cb *, exec_event_cb *,
		     void *, char **);
char		*executor_task_dir(int64_t);
char		*executor_task_dirs(void);
void		 executor_task_dir_remove(int64_t);
void		 executor_exec_abort(struct proc_run *);
void		 executor_exec_terminate(struct proc_run *, const char *);

/* An answer asked to be retried after this many milliseconds. */
typedef void exec_retry_cb(void *arg, int64_t retry_after_ms);

/* Which run a network executor works for. */
struct exec_ctx {
	const char	*task;		/* the task type */
	int64_t		 run_id;
	int64_t		 task_id;
	const char	*step_id;
	int		 item_index;	/* -1: not a forEach element */
	int		 attempt;
};

/* Callbacks of a run; arg is passed to each. */
struct exec_cbs {
	exec_done_cb		*done;
	exec_retry_cb		*retry;		/* may be NULL */
	exec_progress_cb	*progress;	/* may be NULL */
	exec_event_cb		*event;		/* may be NULL */
	void			*arg;
};

int		 executor_net_supports(const char *);
struct net_run	*executor_net_start(struct http *, const struct exec_ctx *,
		     json_t *, const struct exec_cbs *, char **);
void		 executor_net_abort(struct net_run *);

/* A remote backend as dwa.backends describes it. */
struct backend {
	const char	*name;
	const char	*url;		/* the type's path already appended */
	const char	*token;		/* the bearer token; NULL: none */
	long		 timeout_ms;
};

struct backend_run;
struct backend_run *executor_http_start(struct http *, const struct backend *,
		     const struct exec_ctx *, json_t *, const struct exec_cbs *);
void		 executor_http_abort(struct backend_run *);
/* The pure part: what an answer of a backend means. */
enum exec_outcome backend_answer(long, const char *, const char *, size_t,
		     json_t **, char **, int64_t *);
enum exec_outcome backend_final(json_t *, json_t **, char **, int64_t *);

/* The pure parts of the built-ins, for unit tests. */
enum exec_outcome builtin_compute(const char *, json_t *, json_t **, char **);

#endif /* EXECUTOR_H */
