/*
 * executor-net.c: built-in task types that use the network, on the
 * daemon's libcurl multi handle: http.request.
 *
 * http.request: input {url, method (GET), headers {}, body, timeoutMs
 * (30000)}; output {status, headers, body}, the body parsed when the answer
 * says it is JSON.  Network errors, 408, 429 (with Retry-After) and 5xx are
 * transient failures; any other answer is the step's output, for the graph
 * to look at.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "executor.h"
#include "http.h"
#include "log.h"
#include "xmalloc.h"

#define NET_DEFAULT_TIMEOUT_MS	30000
#define NET_MAX_TIMEOUT_MS	3600000

struct net_run {
	struct http_xfer	*xfer;
	exec_done_cb		*cb;
	exec_retry_cb		*rcb;
	void			*arg;
};

int
executor_net_supports(const char *task)
{
	return (strcmp(task, "http.request") == 0);
}

static void
net_done_cb(const struct http_result *r, void *arg)
{
	struct net_run	*n = arg;
	exec_done_cb	*cb = n->cb;
	void		*cbarg = n->arg;
	json_t		*out, *body = NULL;
	const char	*ctype;
	char		*msg;

	if (r->error != NULL) {
		free(n);
		cb(cbarg, EXEC_TRANSIENT, NULL, r->error);
		return;
	}
	if (r->status >= 500 || r->status == 408 || r->status == 429) {
		xasprintf(&msg, "HTTP %ld%s%.200s", r->status,
		    r->body_len > 0 ? ": " : "", r->body);
		msg[strcspn(msg, "\r\n")] = '\0';
		if (r->retry_after_ms >= 0 && n->rcb != NULL)
			n->rcb(cbarg, r->retry_after_ms);
		free(n);
		cb(cbarg, EXEC_TRANSIENT, NULL, msg);
		free(msg);
		return;
	}
	ctype = json_string_value(json_object_get(r->headers, "content-type"));
	if (ctype != NULL && strstr(ctype, "json") != NULL)
		body = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
	if (body == NULL)
		body = json_stringn(r->body, r->body_len);
	if (body == NULL)	/* not UTF-8 */
		body = json_null();
	out = json_pack("{s:I, s:O, s:o}", "status", (json_int_t)r->status,
	    "headers", r->headers != NULL ? r->headers : json_object(),
	    "body", body);
	free(n);
	cb(cbarg, EXEC_OK, out, NULL);
	json_decref(out);
}

/*
 * Start a network built-in.  Returns NULL with *cause for bad input (the
 * caller fails the step permanently); otherwise the run ends through cb.
 * rcb, if set, hears a Retry-After before the transient failure.
 */
struct net_run *
executor_net_start(struct http *h, const char *task, json_t *input,
    exec_done_cb *cb, exec_retry_cb *rcb, void *arg, char **cause)
{
	struct net_run		*n;
	struct curl_slist	*hl = NULL;
	json_t			*url, *method, *headers, *body, *tmo, *v;
	const char		*k;
	char			*text = NULL, *line;
	long			 timeout_ms = NET_DEFAULT_TIMEOUT_MS;
	int			 have_ctype = 0;

	if (!executor_net_supports(task)) {
		xasprintf(cause, "no network built-in \"%s\"", task);
		return (NULL);
	}
	url = json_object_get(input, "url");
	method = json_object_get(input, "method");
	headers = json_object_get(input, "headers");
	body = json_object_get(input, "body");
	tmo = json_object_get(input, "timeoutMs");
	if (!json_is_string(url) || (strncmp(json_string_value(url), "http://", 7)
	    != 0 && strncmp(json_string_value(url), "https://", 8) != 0)) {
		xasprintf(cause, "http.request: input.url must be an http(s) URL");
		return (NULL);
	}
	if (method != NULL && (!json_is_string(method) ||
	    strspn(json_string_value(method), "ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
	    strlen(json_string_value(method)) || *json_string_value(method) == '\0')) {
		xasprintf(cause, "http.request: input.method must be an "
		    "upper-case HTTP method");
		return (NULL);
	}
	if (headers != NULL && !json_is_object(headers)) {
		xasprintf(cause, "http.request: input.headers must be an object");
		return (NULL);
	}
	if (tmo != NULL) {
		if (!json_is_integer(tmo) || json_integer_value(tmo) < 1 ||
		    json_integer_value(tmo) > NET_MAX_TIMEOUT_MS) {
			xasprintf(cause, "http.request: input.timeoutMs must be "
			    "an integer from 1 to %d", NET_MAX_TIMEOUT_MS);
			return (NULL);
		}
		timeout_ms = (long)json_integer_value(tmo);
	}
	json_object_foreach(headers, k, v) {
		if (!json_is_string(v) || strpbrk(k, "\r\n:") != NULL ||
		    strpbrk(json_string_value(v), "\r\n") != NULL) {
			curl_slist_free_all(hl);
			xasprintf(cause, "http.request: header \"%s\" must be a "
			    "one-line string", k);
			return (NULL);
		}
		if (strcasecmp(k, "Content-Type") == 0)
			have_ctype = 1;
		xasprintf(&line, "%s: %s", k, json_string_value(v));
		hl = curl_slist_append(hl, line);
		free(line);
	}
	if (json_is_string(body))
		text = xstrdup(json_string_value(body));
	else if (body != NULL && !json_is_null(body)) {
		text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!have_ctype)
			hl = curl_slist_append(hl, "Content-Type: application/json");
	}
	hl = curl_slist_append(hl, "Expect:");

	n = xcalloc(1, sizeof *n);
	n->cb = cb;
	n->rcb = rcb;
	n->arg = arg;
	n->xfer = http_request(h, method != NULL ? json_string_value(method) :
	    (text != NULL ? "POST" : "GET"), json_string_value(url), hl, text,
	    text != NULL ? strlen(text) : 0, timeout_ms, net_done_cb, n);
	free(text);
	return (n);
}

/* Abort a run: its transfer stops and its callback never runs. */
void
executor_net_abort(struct net_run *n)
{
	if (n == NULL)
		return;
	http_cancel(n->xfer);
	free(n);
}
