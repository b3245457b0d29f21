/*
 * executor-net.c: built-in task types that use the network, on the
 * daemon's libcurl multi handle: http.request and data.download.
 *
 * http.request: input {url, method (GET), headers {}, body, timeoutMs
 * (30000)}; output {status, headers, body}, the body parsed when the answer
 * says it is JSON.  Network errors, 408, 429 (with Retry-After) and 5xx are
 * transient failures; any other answer is the step's output, for the graph
 * to look at.
 *
 * data.download: input {url, filename, timeoutMs (600000)}; the answer is
 * written, as it arrives, to <task dir>/<step>[-<index>]/<filename> (the
 * directory the task's steps share) under a temporary name, renamed when
 * complete; output {path, bytes, content_type, sha256}.  Failures are
 * classified as for http.request, and any other non-2xx answer is a
 * permanent failure.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "executor.h"
#include "http.h"
#include "log.h"
#include "xmalloc.h"

#define NET_DEFAULT_TIMEOUT_MS	30000
#define NET_DOWNLOAD_TIMEOUT_MS	600000
#define NET_MAX_TIMEOUT_MS	3600000

struct net_run {
	struct http_xfer	*xfer;
	struct exec_cbs		 cbs;
	/* data.download */
	char			*path;		/* where it goes */
	char			*tmp;		/* where it is written */
	int			 fd;		/* -1: not open */
	uint64_t		 bytes;
	EVP_MD_CTX		*md;
	char			*werr;		/* a write error */
};

int
executor_net_supports(const char *task)
{
	return (strcmp(task, "http.request") == 0 ||
	    strcmp(task, "data.download") == 0);
}

static void
net_free(struct net_run *n)
{
	if (n->fd != -1)
		close(n->fd);
	if (n->tmp != NULL)
		unlink(n->tmp);
	free(n->tmp);
	free(n->path);
	free(n->werr);
	EVP_MD_CTX_free(n->md);
	free(n);
}

/* End the run (freeing it) with a failure. */
static void
net_fail(struct net_run *n, enum exec_outcome outcome, const char *msg)
{
	struct exec_cbs	cbs = n->cbs;

	net_free(n);
	cbs.done(cbs.arg, outcome, NULL, msg);
}

/*
 * The failures both built-ins share: network errors, 408, 429 and 5xx are
 * transient (a Retry-After is passed on).  Returns 1 if the run ended.
 */
static int
net_transient(struct net_run *n, const struct http_result *r)
{
	char	*msg;

	if (r->error != NULL) {
		net_fail(n, EXEC_TRANSIENT, r->error);
		return (1);
	}
	if (http_status_transient(r->status)) {
		msg = http_status_text(r->status, r->body, r->body_len);
		if (r->retry_after_ms >= 0 && n->cbs.retry != NULL)
			n->cbs.retry(n->cbs.arg, r->retry_after_ms);
		net_fail(n, EXEC_TRANSIENT, msg);
		free(msg);
		return (1);
	}
	return (0);
}

static void
net_done_cb(const struct http_result *r, void *arg)
{
	struct net_run	*n = arg;
	struct exec_cbs	 cbs = n->cbs;
	json_t		*out, *body = NULL;
	const char	*ctype;

	if (net_transient(n, r))
		return;
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
	net_free(n);
	cbs.done(cbs.arg, EXEC_OK, out, NULL);
	json_decref(out);
}

/*
 * The input both built-ins share: url, an http(s) URL, and timeoutMs,
 * which replaces *timeout_ms when given.  0, or -1 with *cause naming the
 * task and the field.
 */
static int
net_check(const char *task, json_t *input, long *timeout_ms, char **cause)
{
	json_t	*tmo = json_object_get(input, "timeoutMs");

	if (!http_url_ok(json_string_value(json_object_get(input, "url")))) {
		xasprintf(cause, "%s: input.url must be an http(s) URL", task);
		return (-1);
	}
	if (tmo == NULL)
		return (0);
	if (!json_is_integer(tmo) || json_integer_value(tmo) < 1 ||
	    json_integer_value(tmo) > NET_MAX_TIMEOUT_MS) {
		xasprintf(cause, "%s: input.timeoutMs must be an integer from 1 "
		    "to %d", task, NET_MAX_TIMEOUT_MS);
		return (-1);
	}
	*timeout_ms = (long)json_integer_value(tmo);
	return (0);
}

/* data.download: a 2xx answer goes to the file as it arrives. */
static enum http_chunk
net_download_chunk_cb(const char *data, size_t len, long status,
    json_t *headers __unused, void *arg)
{
	struct net_run	*n = arg;
	ssize_t		 w;

	if (status < 200 || status >= 300)
		return (HTTP_CHUNK_KEEP);
	if (n->fd == -1) {
		if ((n->fd = open(n->tmp, O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0644)) == -1) {
			xasprintf(&n->werr, "data.download: %s: %s", n->tmp,
			    strerror(errno));
			return (HTTP_CHUNK_FAIL);
		}
	}
	EVP_DigestUpdate(n->md, data, len);
	n->bytes += len;
	while (len > 0) {
		if ((w = write(n->fd, data, len)) == -1) {
			if (errno == EINTR)
				continue;
			xasprintf(&n->werr, "data.download: writing %s: %s",
			    n->tmp, strerror(errno));
			return (HTTP_CHUNK_FAIL);
		}
		data += w;
		len -= (size_t)w;
	}
	return (HTTP_CHUNK_TAKEN);
}

static void
net_download_done_cb(const struct http_result *r, void *arg)
{
	struct net_run	*n = arg;
	struct exec_cbs	 cbs = n->cbs;
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	char		 hex[2 * EVP_MAX_MD_SIZE + 1], *msg;
	const char	*ctype;
	json_t		*out;

	if (n->werr != NULL) {
		msg = n->werr;
		n->werr = NULL;
		net_fail(n, EXEC_TRANSIENT, msg);
		free(msg);
		return;
	}
	if (net_transient(n, r))
		return;
	if (r->status < 200 || r->status >= 300) {
		msg = http_status_text(r->status, r->body, r->body_len);
		net_fail(n, EXEC_PERMANENT, msg);
		free(msg);
		return;
	}
	if (n->fd == -1 && net_download_chunk_cb("", 0, r->status, NULL, n) ==
	    HTTP_CHUNK_FAIL) {	/* an empty answer: an empty file */
		msg = n->werr;
		n->werr = NULL;
		net_fail(n, EXEC_TRANSIENT, msg);
		free(msg);
		return;
	}
	if (close(n->fd) != 0 || rename(n->tmp, n->path) != 0) {
		n->fd = -1;
		xasprintf(&msg, "data.download: %s: %s", n->path,
		    strerror(errno));
		net_fail(n, EXEC_TRANSIENT, msg);
		free(msg);
		return;
	}
	n->fd = -1;
	free(n->tmp);
	n->tmp = NULL;
	EVP_DigestFinal_ex(n->md, md, &mdlen);
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * mdlen] = '\0';
	ctype = json_string_value(json_object_get(r->headers, "content-type"));
	out = json_pack("{s:s, s:I, s:s?, s:s}", "path", n->path,
	    "bytes", (json_int_t)n->bytes, "content_type", ctype,
	    "sha256", hex);
	net_free(n);
	cbs.done(cbs.arg, EXEC_OK, out, NULL);
	json_decref(out);
}

/*
 * The file name of a download: input.filename, else the last segment of
 * the URL's path, else "download"; never a path.
 */
static char *
net_download_name(json_t *input, const char *url, char **cause)
{
	json_t		*fn = json_object_get(input, "filename");
	const char	*p, *end, *slash;
	char		*name, *c;

	if (fn != NULL) {
		p = json_string_value(fn);
		if (p == NULL || *p == '\0' || strchr(p, '/') != NULL ||
		    strcmp(p, ".") == 0 || strcmp(p, "..") == 0 ||
		    strlen(p) > 200) {
			xasprintf(cause, "data.download: input.filename must be "
			    "a file name (no \"/\", at most 200 characters)");
			return (NULL);
		}
		return (xstrdup(p));
	}
	p = strstr(url, "://") + 3;
	p += strcspn(p, "/?#");		/* the path */
	end = p + strcspn(p, "?#");
	for (slash = p; slash < end; slash++) {
		if (*slash == '/')
			p = slash + 1;
	}
	if (end == p || end - p > 200)
		return (xstrdup("download"));
	name = xstrndup(p, end - p);
	for (c = name; *c != '\0'; c++) {
		if (*c == '%' || *c == '\\' || (unsigned char)*c < 0x20)
			*c = '_';
	}
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		free(name);
		return (xstrdup("download"));
	}
	return (name);
}

static struct net_run *
net_download_start(struct http *h, const struct exec_ctx *ctx, json_t *input,
    const struct exec_cbs *cbs, char **cause)
{
	struct net_run		*n;
	json_t			*url;
	char			*dir, *sub, *leaf, *name;
	long			 timeout_ms = NET_DOWNLOAD_TIMEOUT_MS;

	url = json_object_get(input, "url");
	if (net_check(ctx->task, input, &timeout_ms, cause) != 0)
		return (NULL);
	if ((name = net_download_name(input, json_string_value(url), cause)) ==
	    NULL)
		return (NULL);
	if ((dir = executor_task_dir(ctx->task_id)) == NULL) {
		free(name);
		xasprintf(cause, "data.download: cannot make the task's "
		    "directory under DWA_WORKDIR");
		return (NULL);
	}
	/* <dir>/<step>[-<index>], the step id made a plain name. */
	if (ctx->item_index >= 0)
		xasprintf(&leaf, "%s-%d", ctx->step_id, ctx->item_index);
	else
		leaf = xstrdup(ctx->step_id);
	for (char *c = leaf; *c != '\0'; c++) {
		if (*c == '/' || (c == leaf && *c == '.'))
			*c = '_';
	}
	xasprintf(&sub, "%s/%s", dir, leaf);
	free(leaf);
	free(dir);
	if (mkdir(sub, 0755) != 0 && errno != EEXIST) {
		xasprintf(cause, "data.download: mkdir %s: %s", sub,
		    strerror(errno));
		free(sub);
		free(name);
		return (NULL);
	}

	n = xcalloc(1, sizeof *n);
	n->cbs = *cbs;
	n->fd = -1;
	xasprintf(&n->path, "%s/%s", sub, name);
	xasprintf(&n->tmp, "%s/.%s.%" PRId64 ".part", sub, name, ctx->run_id);
	free(sub);
	free(name);
	if ((n->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(n->md, EVP_sha256(), NULL) != 1)
		fatalx("EVP sha256 unavailable");
	n->xfer = http_request(h, "GET", json_string_value(url), NULL, NULL, 0,
	    timeout_ms, net_download_done_cb, n);
	http_set_chunk_cb(n->xfer, net_download_chunk_cb);
	return (n);
}

/*
 * Start a network built-in.  Returns NULL with *cause for bad input (the
 * caller fails the step permanently); otherwise the run ends through cb.
 * rcb, if set, hears a Retry-After before the transient failure.
 */
struct net_run *
executor_net_start(struct http *h, const struct exec_ctx *ctx, json_t *input,
    const struct exec_cbs *cbs, char **cause)
{
	const char		*task = ctx->task;
	struct net_run		*n;
	struct curl_slist	*hl = NULL;
	json_t			*url, *method, *headers, *body, *v;
	const char		*k;
	char			*text = NULL, *line;
	long			 timeout_ms = NET_DEFAULT_TIMEOUT_MS;
	int			 have_ctype = 0;

	if (!executor_net_supports(task)) {
		xasprintf(cause, "no network built-in \"%s\"", task);
		return (NULL);
	}
	if (strcmp(task, "data.download") == 0)
		return (net_download_start(h, ctx, input, cbs, cause));
	url = json_object_get(input, "url");
	method = json_object_get(input, "method");
	headers = json_object_get(input, "headers");
	body = json_object_get(input, "body");
	if (net_check(task, input, &timeout_ms, cause) != 0)
		return (NULL);
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
		text = json_dumps(body, EXEC_JSON_FLAGS);
		if (!have_ctype)
			hl = curl_slist_append(hl, "Content-Type: application/json");
	}
	hl = curl_slist_append(hl, "Expect:");

	n = xcalloc(1, sizeof *n);
	n->cbs = *cbs;
	n->fd = -1;
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
	net_free(n);
}
