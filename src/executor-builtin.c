/*
 * executor-builtin.c: the task types dwad runs itself, without a process
 * or the network: noop, echo, sleep, fail, data.aggregate and text.chunk.
 *
 * Each run ends on the event loop, never inside executor_builtin_start:
 * an immediate result is delivered from a zero timer, sleep from its own.
 */
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "log.h"
#include "xmalloc.h"

/* Text longer than this is refused by text.chunk. */
#define BUILTIN_CHUNK_MAX_TEXT	(64 * 1024 * 1024)
/* The longest sleep: a day. */
#define BUILTIN_SLEEP_MAX_MS	86400000LL

struct exec_run {
	struct event		*ev;
	enum exec_outcome	 outcome;
	json_t			*output;
	char			*error;
	exec_done_cb		*cb;
	void			*arg;
};

static const char *builtin_names[] = {
	"noop", "echo", "sleep", "fail", "data.aggregate", "text.chunk",
};

int
executor_builtin_supports(const char *task)
{
	size_t	i;

	for (i = 0; i < nitems(builtin_names); i++) {
		if (strcmp(builtin_names[i], task) == 0)
			return (1);
	}
	return (0);
}

/* The built-in types as a PostgreSQL array literal. */
const char *
executor_builtin_types(void)
{
	return ("{noop,echo,sleep,fail,data.aggregate,text.chunk}");
}

/* Length in bytes of the UTF-8 sequence starting with byte c. */
static size_t
utf8_len(unsigned char c)
{
	if (c < 0x80)
		return (1);
	if ((c & 0xe0) == 0xc0)
		return (2);
	if ((c & 0xf0) == 0xe0)
		return (3);
	if ((c & 0xf8) == 0xf0)
		return (4);
	return (1);
}

/* text.chunk: split text into chunks of size characters, overlapping. */
static enum exec_outcome
builtin_text_chunk(json_t *input, json_t **out, char **cause)
{
	json_t		*text = json_object_get(input, "text");
	json_t		*jsize = json_object_get(input, "size");
	json_t		*jover = json_object_get(input, "overlap");
	json_t		*chunks;
	const char	*s;
	size_t		 len, nchars, i, *offs;
	json_int_t	 size = 1000, overlap = 0, start, end, step;

	if (!json_is_string(text)) {
		xasprintf(cause, "text.chunk: input.text must be a string");
		return (EXEC_PERMANENT);
	}
	if (jsize != NULL && (!json_is_integer(jsize) ||
	    json_integer_value(jsize) < 1)) {
		xasprintf(cause, "text.chunk: input.size must be an integer >= 1");
		return (EXEC_PERMANENT);
	}
	if (jsize != NULL)
		size = json_integer_value(jsize);
	if (jover != NULL && (!json_is_integer(jover) ||
	    json_integer_value(jover) < 0 ||
	    json_integer_value(jover) >= size)) {
		xasprintf(cause, "text.chunk: input.overlap must be an integer "
		    "from 0 to size - 1");
		return (EXEC_PERMANENT);
	}
	if (jover != NULL)
		overlap = json_integer_value(jover);
	s = json_string_value(text);
	len = json_string_length(text);
	if (len > BUILTIN_CHUNK_MAX_TEXT) {
		xasprintf(cause, "text.chunk: text of %zu bytes is over the "
		    "limit of %d", len, BUILTIN_CHUNK_MAX_TEXT);
		return (EXEC_PERMANENT);
	}

	/* Character offsets, so that chunks never split a UTF-8 sequence. */
	offs = xcalloc(len + 1, sizeof *offs);
	for (i = 0, nchars = 0; i < len; nchars++) {
		offs[nchars] = i;
		i += utf8_len((unsigned char)s[i]);
		if (i > len)
			i = len;
	}
	offs[nchars] = len;

	chunks = json_array();
	step = size - overlap;
	for (start = 0; start < (json_int_t)nchars; start += step) {
		end = start + size;
		if (end > (json_int_t)nchars)
			end = nchars;
		json_array_append_new(chunks, json_stringn(s + offs[start],
		    offs[end] - offs[start]));
		if (end == (json_int_t)nchars)
			break;
	}
	free(offs);
	*out = json_pack("{s:o, s:I}", "chunks", chunks, "count",
	    (json_int_t)json_array_size(chunks));
	return (EXEC_OK);
}

/* fail: always fails, with input.message, transient if input.transient. */
static enum exec_outcome
builtin_fail(json_t *input, char **cause)
{
	json_t	*msg = json_object_get(input, "message");

	xasprintf(cause, "%s", json_is_string(msg) ? json_string_value(msg) :
	    "failed on purpose");
	return (json_is_true(json_object_get(input, "transient")) ?
	    EXEC_TRANSIENT : EXEC_PERMANENT);
}

/*
 * Compute the result of a built-in that needs no waiting.  On EXEC_OK,
 * *out is a new reference; otherwise *cause is allocated.
 */
enum exec_outcome
builtin_compute(const char *task, json_t *input, json_t **out, char **cause)
{
	*out = NULL;
	*cause = NULL;
	if (strcmp(task, "noop") == 0) {
		*out = json_object();
		return (EXEC_OK);
	}
	if (strcmp(task, "echo") == 0 || strcmp(task, "data.aggregate") == 0 ||
	    strcmp(task, "sleep") == 0) {
		*out = json_incref(input != NULL ? input : json_null());
		return (EXEC_OK);
	}
	if (strcmp(task, "fail") == 0)
		return (builtin_fail(input, cause));
	if (strcmp(task, "text.chunk") == 0)
		return (builtin_text_chunk(input, out, cause));
	xasprintf(cause, "no built-in task type \"%s\"", task);
	return (EXEC_PERMANENT);
}

static void
builtin_free(struct exec_run *run)
{
	event_free(run->ev);
	json_decref(run->output);
	free(run->error);
	free(run);
}

static void
builtin_done_cb(evutil_socket_t fd __unused, short events __unused, void *arg)
{
	struct exec_run	*run = arg;
	exec_done_cb	*cb = run->cb;
	void		*cbarg = run->arg;
	json_t		*output = run->output;
	char		*error = run->error;
	enum exec_outcome outcome = run->outcome;

	run->output = NULL;
	run->error = NULL;
	builtin_free(run);
	cb(cbarg, outcome, output, error);
	json_decref(output);
	free(error);
}

/* Start a built-in run; it ends through cb on a later loop pass. */
struct exec_run *
executor_builtin_start(struct event_base *base, const char *task,
    json_t *input, exec_done_cb *cb, void *arg)
{
	struct exec_run	*run;
	struct timeval	 tv = { 0, 0 };
	json_t		*jms;
	json_int_t	 ms = 0;

	run = xcalloc(1, sizeof *run);
	run->cb = cb;
	run->arg = arg;
	run->outcome = builtin_compute(task, input, &run->output, &run->error);
	if (strcmp(task, "sleep") == 0) {
		jms = json_object_get(input, "ms");
		if (jms != NULL && (!json_is_integer(jms) ||
		    json_integer_value(jms) < 0 ||
		    json_integer_value(jms) > BUILTIN_SLEEP_MAX_MS)) {
			json_decref(run->output);
			run->output = NULL;
			run->outcome = EXEC_PERMANENT;
			xasprintf(&run->error, "sleep: input.ms must be an "
			    "integer from 0 to %lld", BUILTIN_SLEEP_MAX_MS);
		} else if (jms != NULL)
			ms = json_integer_value(jms);
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	run->ev = evtimer_new(base, builtin_done_cb, run);
	evtimer_add(run->ev, &tv);
	return (run);
}

/* Abort a run: its callback will not be called. */
void
executor_run_abort(struct exec_run *run)
{
	if (run != NULL)
		builtin_free(run);
}
