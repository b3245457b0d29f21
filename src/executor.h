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
struct proc_run	*executor_exec_start(char *const *, json_t *, int64_t,
		     exec_done_cb *, exec_progress_cb *, exec_event_cb *, void *);
void		 executor_exec_abort(struct proc_run *);
void		 executor_exec_terminate(struct proc_run *, const char *);

/* An answer asked to be retried after this many milliseconds. */
typedef void exec_retry_cb(void *arg, int64_t retry_after_ms);

int		 executor_net_supports(const char *);
struct net_run	*executor_net_start(struct http *, const char *, json_t *,
		     exec_done_cb *, exec_retry_cb *, void *, char **);
void		 executor_net_abort(struct net_run *);

/* The pure parts of the built-ins, for unit tests. */
enum exec_outcome builtin_compute(const char *, json_t *, json_t **, char **);

#endif /* EXECUTOR_H */
