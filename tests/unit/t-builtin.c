/*
 * t-builtin.c: the pure parts of the built-in task types.
 */
#include <stdlib.h>

#include <jansson.h>

#include "executor.h"
#include "tap.h"

/* Run a built-in on JSON text; returns the outcome, output or error. */
static enum exec_outcome
run(const char *task, const char *input, char **out, char **cause)
{
	json_t			*in, *o = NULL;
	enum exec_outcome	 r;

	in = json_loads(input, JSON_DECODE_ANY, NULL);
	r = builtin_compute(task, in, &o, cause);
	*out = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS |
	    JSON_ENCODE_ANY) : NULL;
	json_decref(o);
	json_decref(in);
	return (r);
}

static const struct {
	const char		*task;
	const char		*input;
	enum exec_outcome	 outcome;
	const char		*want;	/* output, or the error message */
} cases[] = {
	{ "noop", "{\"a\":1}", EXEC_OK, "{}" },
	{ "echo", "{\"a\":[1,2]}", EXEC_OK, "{\"a\":[1,2]}" },
	{ "echo", "\"text\"", EXEC_OK, "\"text\"" },
	{ "data.aggregate", "{\"x\":1,\"y\":2}", EXEC_OK, "{\"x\":1,\"y\":2}" },
	{ "sleep", "{\"ms\":5}", EXEC_OK, "{\"ms\":5}" },
	{ "fail", "{\"message\":\"boom\"}", EXEC_PERMANENT, "boom" },
	{ "fail", "{\"message\":\"later\",\"transient\":true}",
	    EXEC_TRANSIENT, "later" },
	{ "fail", "{}", EXEC_PERMANENT, "failed on purpose" },
	{ "text.chunk", "{\"text\":\"abcdefghij\",\"size\":4}", EXEC_OK,
	    "{\"chunks\":[\"abcd\",\"efgh\",\"ij\"],\"count\":3}" },
	{ "text.chunk", "{\"text\":\"abcdefghij\",\"size\":4,\"overlap\":2}",
	    EXEC_OK,
	    "{\"chunks\":[\"abcd\",\"cdef\",\"efgh\",\"ghij\"],\"count\":4}" },
	{ "text.chunk", "{\"text\":\"\",\"size\":4}", EXEC_OK,
	    "{\"chunks\":[],\"count\":0}" },
	{ "text.chunk", "{\"text\":\"h\\u00e9llo w\\u00f6rld\",\"size\":3}",
	    EXEC_OK, "{\"chunks\":[\"h\xc3\xa9l\",\"lo \",\"w\xc3\xb6r\","
	    "\"ld\"],\"count\":4}" },
	{ "text.chunk", "{\"size\":4}", EXEC_PERMANENT,
	    "text.chunk: input.text must be a string" },
	{ "text.chunk", "{\"text\":\"abc\",\"size\":0}", EXEC_PERMANENT,
	    "text.chunk: input.size must be an integer >= 1" },
	{ "text.chunk", "{\"text\":\"abc\",\"size\":\"4\"}", EXEC_PERMANENT,
	    "text.chunk: input.size must be an integer >= 1" },
	{ "text.chunk", "{\"text\":\"abc\",\"size\":4,\"overlap\":4}",
	    EXEC_PERMANENT,
	    "text.chunk: input.overlap must be an integer from 0 to size - 1" },
	{ "nosuch", "{}", EXEC_PERMANENT, "no built-in task type \"nosuch\"" },
};

int
main(void)
{
	size_t			 i;
	char			*out, *cause;
	enum exec_outcome	 r;

	tap_plan((int)(nitems(cases) * 2 + 3));
	for (i = 0; i < nitems(cases); i++) {
		out = cause = NULL;
		r = run(cases[i].task, cases[i].input, &out, &cause);
		tap_ok(r == cases[i].outcome, "%s %s: outcome %d", cases[i].task,
		    cases[i].input, (int)r);
		tap_is_str(r == EXEC_OK ? out : cause, cases[i].want,
		    "%s %s: result", cases[i].task, cases[i].input);
		free(out);
		free(cause);
	}
	tap_ok(executor_builtin_supports("text.chunk"), "text.chunk is built in");
	tap_ok(!executor_builtin_supports("video.convert"),
	    "video.convert is not built in");
	tap_ok(strstr(executor_builtin_types(), "data.aggregate") != NULL,
	    "the type list names data.aggregate");
	return (tap_done());
}
