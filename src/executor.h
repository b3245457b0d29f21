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

/* The pure parts of the built-ins, for unit tests. */
enum exec_outcome builtin_compute(const char *, json_t *, json_t **, char **);

#endif /* EXECUTOR_H */
