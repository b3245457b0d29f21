/*
 * t-backend.c: what the answers of a remote backend mean (SPEC section 5),
 * without the network: plain results, envelopes, status classes,
 * Retry-After and retryAfterMs.
 */
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "executor.h"
#include "tap.h"

static const struct {
	long			 status;
	const char		*ctype;
	const char		*body;
	int64_t			 header_retry;	/* Retry-After, -1: none */
	enum exec_outcome	 outcome;
	const char		*want;		/* output, or the error */
	int64_t			 retry;		/* retry after, -1: none */
} cases[] = {
	/* 2xx: the answer is the result, unless it is an envelope. */
	{ 200, "application/json", "{\"boxes\":[1,2]}", -1, EXEC_OK,
	    "{\"boxes\":[1,2]}", -1 },
	{ 200, "application/json", "[1,2,3]", -1, EXEC_OK, "[1,2,3]", -1 },
	{ 201, "application/json; charset=utf-8", "42", -1, EXEC_OK, "42", -1 },
	{ 200, "text/plain", "hello there", -1, EXEC_OK, "\"hello there\"", -1 },
	{ 204, NULL, "", -1, EXEC_OK, "null", -1 },
	{ 200, "application/json", "{\"status\":\"success\",\"data\":{\"n\":1}}",
	    -1, EXEC_OK, "{\"n\":1}", -1 },
	{ 200, "application/json", "{\"status\":\"success\",\"data\":null}",
	    -1, EXEC_OK, "null", -1 },
	/* A "status" that is no envelope is just data. */
	{ 200, "application/json", "{\"status\":\"ok\",\"n\":2}", -1, EXEC_OK,
	    "{\"n\":2,\"status\":\"ok\"}", -1 },
	{ 200, "application/json", "{\"status\":\"failure\",\"error\":{\"code\":"
	    "\"TRANSIENT_ERROR\",\"message\":\"model loading\"}}", -1,
	    EXEC_TRANSIENT, "model loading", -1 },
	{ 200, "application/json", "{\"status\":\"failure\",\"error\":{\"code\":"
	    "\"TRANSIENT_ERROR\",\"message\":\"busy\",\"retryAfterMs\":1500}}",
	    -1, EXEC_TRANSIENT, "busy", 1500 },
	{ 200, "application/json", "{\"status\":\"failure\",\"error\":{\"code\":"
	    "\"PERMANENT_ERROR\",\"message\":\"bad image\"}}", -1,
	    EXEC_PERMANENT, "bad image", -1 },
	{ 200, "application/json", "{\"status\":\"failure\",\"error\":"
	    "\"plain text error\"}", -1, EXEC_PERMANENT, "plain text error", -1 },
	{ 200, "application/json", "{\"status\":\"failure\",\"error\":{\"code\":"
	    "\"QUOTA\",\"message\":\"over quota\"}}", -1, EXEC_PERMANENT,
	    "QUOTA: over quota", -1 },
	{ 200, "application/json", "{\"boxes\":", -1, EXEC_PERMANENT,
	    "the backend answered HTTP 200 with invalid JSON", -1 },
	/* 408, 429, 5xx: transient, Retry-After kept. */
	{ 429, "text/plain", "slow down", 2000, EXEC_TRANSIENT,
	    "HTTP 429: slow down", 2000 },
	{ 503, NULL, "", -1, EXEC_TRANSIENT, "HTTP 503", -1 },
	{ 408, NULL, "timeout\nmore", -1, EXEC_TRANSIENT, "HTTP 408: timeout", -1 },
	{ 500, "application/json", "{\"status\":\"failure\",\"error\":{\"code\":"
	    "\"TRANSIENT_ERROR\",\"message\":\"oom\",\"retryAfterMs\":250}}", -1,
	    EXEC_TRANSIENT, "HTTP 500: oom", 250 },
	/* The header wins over the envelope. */
	{ 503, "application/json", "{\"error\":{\"message\":\"down\","
	    "\"retryAfterMs\":250}}", 4000, EXEC_TRANSIENT, "HTTP 503: down", 4000 },
	/* Other 4xx: permanent, with the envelope's message if any. */
	{ 400, "application/json", "{\"status\":\"failure\",\"error\":{\"code\":"
	    "\"PERMANENT_ERROR\",\"message\":\"input.url is missing\"}}", -1,
	    EXEC_PERMANENT, "HTTP 400: input.url is missing", -1 },
	{ 404, "text/html", "<h1>Not Found</h1>", -1, EXEC_PERMANENT,
	    "HTTP 404: <h1>Not Found</h1>", -1 },
	{ 401, NULL, "", -1, EXEC_PERMANENT, "HTTP 401", -1 },
};

int
main(void)
{
	enum exec_outcome	 r;
	json_t			*out, *obj;
	char			*err, *text;
	int64_t			 retry;
	size_t			 i;

	tap_plan((int)(sizeof cases / sizeof cases[0]) * 3 + 4);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		retry = cases[i].header_retry;
		r = backend_answer(cases[i].status, cases[i].ctype, cases[i].body,
		    strlen(cases[i].body), &out, &err, &retry);
		tap_ok(r == cases[i].outcome, "case %zu, HTTP %ld: outcome %d",
		    i, cases[i].status, (int)r);
		text = out != NULL ? json_dumps(out, JSON_COMPACT |
		    JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
		tap_is_str(r == EXEC_OK ? text : err, cases[i].want,
		    "case %zu, HTTP %ld: %s %s", i, cases[i].status,
		    r == EXEC_OK ? "output" : "error", cases[i].want);
		tap_ok(retry == cases[i].retry, "case %zu, HTTP %ld: retry "
		    "after %lld", i, cases[i].status, (long long)retry);
		free(text);
		json_decref(out);
		free(err);
	}

	/* The last object of a stream goes through backend_final. */
	obj = json_loads("{\"status\":\"success\",\"data\":[7]}", 0, NULL);
	retry = -1;
	r = backend_final(obj, &out, &err, &retry);
	text = json_dumps(out, JSON_COMPACT);
	tap_ok(r == EXEC_OK, "a streamed success envelope succeeds");
	tap_is_str(text, "[7]", "with its data");
	free(text);
	json_decref(out);
	json_decref(obj);
	obj = json_loads("{\"status\":\"failure\",\"error\":{\"code\":"
	    "\"TRANSIENT_ERROR\",\"message\":\"gpu lost\"}}", 0, NULL);
	r = backend_final(obj, &out, &err, &retry);
	tap_ok(r == EXEC_TRANSIENT && out == NULL,
	    "a streamed TRANSIENT_ERROR is a transient failure");
	tap_is_str(err, "gpu lost", "with its message");
	free(err);
	json_decref(obj);
	return (tap_done());
}
