/*
 * executor-http.c: task types served by remote HTTP backends (Modal web
 * endpoints, Ray Serve, any service speaking the protocol).
 *
 * A run is one POST of {"type", "input", "taskId", "stepId", "attempt",
 * "runId"[, "itemIndex"]} on the daemon's libcurl multi handle.  The
 * answer means:
 *
 *   2xx, JSON          the result, unless it is an envelope:
 *                      {"status": "success", "data": X}: X;
 *                      {"status": "failure", "error": {"code", "message",
 *                      "retryAfterMs"}}: a failure, transient when the code
 *                      is TRANSIENT_ERROR, else permanent
 *   2xx, NDJSON        streamed: {"progress": n} and {"event", "data"} lines
 *                      as they come; the last other object is the answer:
 *                      {"result": X}: X, an envelope, or the object itself
 *   2xx, other         the body as a string
 *   408, 429, 5xx      transient, Retry-After honoured (a 429 pauses the
 *                      backend's limit key for everyone)
 *   other              permanent, with the envelope's message if any
 *   network errors     transient
 *
 * The bearer token is sent, never logged.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "executor.h"
#include "http.h"
#include "log.h"
#include "xmalloc.h"

#define BACKEND_MAX_LINE	(4 * 1024 * 1024)

struct backend_run {
	struct http_xfer	*xfer;
	struct exec_cbs		 cbs;
	int			 streaming;	/* the answer is NDJSON */
	char			*line;		/* a partial line */
	size_t			 line_len;
	json_t			*last;		/* the last object streamed */
	char			*bad;		/* a bad line: the run fails */
};

/* The message of an error member: a string, or an object's "message". */
static char *
backend_error_text(json_t *error)
{
	const char	*msg = NULL, *code = NULL;
	char		*text;

	if (json_is_string(error))
		return (xstrdup(json_string_value(error)));
	if (json_is_object(error)) {
		msg = json_string_value(json_object_get(error, "message"));
		code = json_string_value(json_object_get(error, "code"));
	}
	if (msg != NULL && code != NULL && strcmp(code, "TRANSIENT_ERROR") != 0 &&
	    strcmp(code, "PERMANENT_ERROR") != 0) {
		xasprintf(&text, "%s: %s", code, msg);
		return (text);
	}
	if (msg != NULL)
		return (xstrdup(msg));
	if (code != NULL)
		return (xstrdup(code));
	return (xstrdup("the backend reported a failure"));
}

/*
 * What a final JSON value means: an envelope or a plain result.  *out
 * gets a new reference on success, *err an allocated message otherwise;
 * *retry_ms a retryAfterMs of a failure (else left alone).
 */
enum exec_outcome
backend_final(json_t *obj, json_t **out, char **err, int64_t *retry_ms)
{
	const char	*status;
	json_t		*error, *code, *ra;

	*out = NULL;
	*err = NULL;
	status = json_string_value(json_object_get(obj, "status"));
	if (status != NULL && strcmp(status, "success") == 0 &&
	    json_object_get(obj, "data") != NULL) {
		*out = json_incref(json_object_get(obj, "data"));
		return (EXEC_OK);
	}
	if (status != NULL && strcmp(status, "failure") == 0 &&
	    (error = json_object_get(obj, "error")) != NULL) {
		*err = backend_error_text(error);
		ra = json_object_get(error, "retryAfterMs");
		if (json_is_integer(ra) && json_integer_value(ra) >= 0)
			*retry_ms = json_integer_value(ra);
		code = json_object_get(error, "code");
		if (json_is_string(code) &&
		    strcmp(json_string_value(code), "TRANSIENT_ERROR") == 0)
			return (EXEC_TRANSIENT);
		return (EXEC_PERMANENT);
	}
	*out = json_incref(obj);
	return (EXEC_OK);
}

/* Whether a Content-Type is JSON, or NDJSON (2). */
static int
backend_ctype(const char *ctype)
{
	size_t	len;

	if (ctype == NULL)
		return (0);
	len = strcspn(ctype, "; ");
	if ((len == 20 && strncasecmp(ctype, "application/x-ndjson", len) == 0) ||
	    (len == 18 && strncasecmp(ctype, "application/ndjson", len) == 0) ||
	    (len == 17 && strncasecmp(ctype, "application/jsonl", len) == 0))
		return (2);
	if ((len == 16 && strncasecmp(ctype, "application/json", len) == 0) ||
	    (len > 5 && strncasecmp(ctype + len - 5, "+json", 5) == 0))
		return (1);
	return (0);
}

/*
 * What a whole (not streamed) answer means.  *out gets a new reference on
 * success, *err an allocated message otherwise, *retry_ms a Retry-After
 * (from the header, passed in, or the envelope).
 */
enum exec_outcome
backend_answer(long status, const char *ctype, const char *body, size_t len,
    json_t **out, char **err, int64_t *retry_ms)
{
	enum exec_outcome	 outcome;
	json_t			*obj = NULL;
	char			*msg = NULL;

	*out = NULL;
	*err = NULL;
	if (len > 0)
		obj = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	if (status >= 200 && status < 300) {
		if (obj != NULL) {
			outcome = backend_final(obj, out, err, retry_ms);
			json_decref(obj);
			return (outcome);
		}
		if (backend_ctype(ctype) != 0 && len > 0) {
			xasprintf(err, "the backend answered HTTP %ld with "
			    "invalid JSON", status);
			return (EXEC_PERMANENT);
		}
		*out = len > 0 ? json_stringn(body, len) : json_null();
		if (*out == NULL)
			*out = json_null();	/* not UTF-8 */
		return (EXEC_OK);
	}
	/* A failure: the envelope's message, else the start of the body. */
	if (json_is_object(obj) && json_object_get(obj, "error") != NULL)
		msg = backend_error_text(json_object_get(obj, "error"));
	if (json_is_object(obj) && json_is_integer(json_object_get(
	    json_object_get(obj, "error"), "retryAfterMs")) && *retry_ms < 0)
		*retry_ms = json_integer_value(json_object_get(
		    json_object_get(obj, "error"), "retryAfterMs"));
	json_decref(obj);
	if (msg != NULL)
		xasprintf(err, "HTTP %ld: %s", status, msg);
	else
		*err = http_status_text(status, body, len);
	free(msg);
	(*err)[strcspn(*err, "\r\n")] = '\0';
	if (http_status_transient(status))
		return (EXEC_TRANSIENT);
	return (EXEC_PERMANENT);
}

/* One NDJSON line: progress and events go on, the rest is kept. */
static void
backend_line(struct backend_run *b, const char *line, size_t len)
{
	json_t		*obj, *v;
	const char	*event;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0 || b->bad != NULL)
		return;
	if ((obj = json_loadb(line, len, 0, NULL)) == NULL ||
	    !json_is_object(obj)) {
		json_decref(obj);
		xasprintf(&b->bad, "the backend streamed a line that is not a "
		    "JSON object: %.100s", line);
		b->bad[strcspn(b->bad, "\r\n")] = '\0';
		return;
	}
	v = json_object_get(obj, "progress");
	if (json_is_number(v) && json_object_size(obj) == 1) {
		if (b->cbs.progress != NULL)
			b->cbs.progress(b->cbs.arg, (int)json_number_value(v));
		json_decref(obj);
		return;
	}
	event = json_string_value(json_object_get(obj, "event"));
	if (event != NULL && json_object_get(obj, "status") == NULL &&
	    json_object_get(obj, "result") == NULL) {
		if (b->cbs.event != NULL)
			b->cbs.event(b->cbs.arg, event,
			    json_object_get(obj, "data"));
		json_decref(obj);
		return;
	}
	json_decref(b->last);
	b->last = obj;
}

static enum http_chunk
backend_chunk_cb(const char *data, size_t len, long status, json_t *headers,
    void *arg)
{
	struct backend_run	*b = arg;
	const char		*nl;
	size_t			 take;

	if (!b->streaming) {
		if (status < 200 || status >= 300 || backend_ctype(
		    json_string_value(json_object_get(headers, "content-type")))
		    != 2)
			return (HTTP_CHUNK_KEEP);
		b->streaming = 1;
	}
	while (len > 0) {
		nl = memchr(data, '\n', len);
		take = nl != NULL ? (size_t)(nl - data) : len;
		if (b->line_len + take > BACKEND_MAX_LINE)
			return (HTTP_CHUNK_FAIL);
		b->line = xrealloc(b->line, b->line_len + take + 1);
		memcpy(b->line + b->line_len, data, take);
		b->line_len += take;
		b->line[b->line_len] = '\0';
		if (nl == NULL)
			break;
		backend_line(b, b->line, b->line_len);
		b->line_len = 0;
		data += take + 1;
		len -= take + 1;
	}
	return (HTTP_CHUNK_TAKEN);
}

static void
backend_free(struct backend_run *b)
{
	free(b->line);
	json_decref(b->last);
	free(b->bad);
	free(b);
}

static void
backend_done_cb(const struct http_result *r, void *arg)
{
	struct backend_run	*b = arg;
	struct exec_cbs		 cbs = b->cbs;
	enum exec_outcome	 outcome;
	json_t			*out = NULL;
	char			*err = NULL;
	int64_t			 retry_ms = r->retry_after_ms;

	b->xfer = NULL;
	if (r->error != NULL) {
		xasprintf(&err, "%s%s", r->error, b->streaming ?
		    " (while streaming)" : "");
		outcome = EXEC_TRANSIENT;
	} else if (b->streaming) {
		if (b->line_len > 0)
			backend_line(b, b->line, b->line_len);
		if (b->bad != NULL) {
			err = b->bad;
			b->bad = NULL;
			outcome = EXEC_PERMANENT;
		} else if (b->last == NULL) {
			err = xstrdup("the backend's stream ended without a "
			    "result");
			outcome = EXEC_PERMANENT;
		} else if (json_object_get(b->last, "result") != NULL) {
			out = json_incref(json_object_get(b->last, "result"));
			outcome = EXEC_OK;
		} else
			outcome = backend_final(b->last, &out, &err, &retry_ms);
	} else
		outcome = backend_answer(r->status, json_string_value(
		    json_object_get(r->headers, "content-type")), r->body,
		    r->body_len, &out, &err, &retry_ms);
	backend_free(b);
	if (outcome == EXEC_TRANSIENT && retry_ms >= 0 && cbs.retry != NULL)
		cbs.retry(cbs.arg, retry_ms);
	cbs.done(cbs.arg, outcome, out, err);
	json_decref(out);
	free(err);
}

/* POST a step to its backend; the run ends through cbs->done. */
struct backend_run *
executor_http_start(struct http *h, const struct backend *be,
    const struct exec_ctx *ctx, json_t *input, const struct exec_cbs *cbs)
{
	struct backend_run	*b;
	struct curl_slist	*hl = NULL;
	json_t			*req;
	char			*body, *line;

	req = json_pack("{s:s, s:O, s:I, s:s, s:i, s:I}", "type", ctx->task,
	    "input", input != NULL ? input : json_null(),
	    "taskId", (json_int_t)ctx->task_id, "stepId", ctx->step_id,
	    "attempt", ctx->attempt, "runId", (json_int_t)ctx->run_id);
	if (ctx->item_index >= 0)
		json_object_set_new(req, "itemIndex",
		    json_integer(ctx->item_index));
	body = json_dumps(req, EXEC_JSON_FLAGS);
	json_decref(req);

	hl = curl_slist_append(hl, "Content-Type: application/json");
	hl = curl_slist_append(hl, "Accept: application/json, "
	    "application/x-ndjson");
	xasprintf(&line, "X-DWA-Run-Id: %" PRId64, ctx->run_id);
	hl = curl_slist_append(hl, line);
	free(line);
	if (be->token != NULL && *be->token != '\0') {
		xasprintf(&line, "Authorization: Bearer %s", be->token);
		hl = curl_slist_append(hl, line);
		free(line);
	}
	hl = curl_slist_append(hl, "Expect:");

	b = xcalloc(1, sizeof *b);
	b->cbs = *cbs;
	b->xfer = http_request(h, "POST", be->url, hl, body, strlen(body),
	    be->timeout_ms, backend_done_cb, b);
	http_set_chunk_cb(b->xfer, backend_chunk_cb);
	free(body);
	log_debug("http: run %" PRId64 " posted to backend %s", ctx->run_id,
	    be->name);
	return (b);
}

/* Abort a run: its transfer stops and its callbacks never run. */
void
executor_http_abort(struct backend_run *b)
{
	if (b == NULL)
		return;
	http_cancel(b->xfer);
	backend_free(b);
}
