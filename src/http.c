/*
 * http.c: libcurl multi on libevent.
 *
 * One CURLM per process.  The socket callback keeps one persistent event
 * per socket (the struct hangs on the socket through curl_multi_assign);
 * the timer callback keeps one timer, never calling libcurl from inside
 * itself.  After every curl_multi_socket_action, finished transfers are
 * collected from curl_multi_info_read and their callbacks run.  A transfer
 * owns its easy handle, header list, request body and answer buffer.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "xmalloc.h"

/* Answers longer than this fail the transfer. */
#define HTTP_MAX_BODY	(16 * 1024 * 1024)

struct http {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	int			 inflight;
};

struct http_sock {
	struct event	*ev;
	curl_socket_t	 fd;
};

struct http_xfer {
	struct http		*http;
	CURL			*easy;
	struct curl_slist	*headers;
	struct curl_slist	*rcpts;
	char			*req;		/* request body or mail */
	size_t			 req_len;
	size_t			 req_off;	/* mail upload position */
	char			*body;
	size_t			 body_len;
	size_t			 body_cap;
	int64_t			 retry_after_ms;
	json_t			*resp_headers;	/* lower-case name -> value */
	char			 errbuf[CURL_ERROR_SIZE];
	http_done_cb		*cb;
	http_chunk_cb		*chunk_cb;	/* sees the answer as it comes */
	void			*arg;
};

static void	http_check(struct http *);

static void
http_xfer_free(struct http_xfer *x)
{
	curl_multi_remove_handle(x->http->multi, x->easy);
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	curl_slist_free_all(x->rcpts);
	free(x->req);
	free(x->body);
	json_decref(x->resp_headers);
	x->http->inflight--;
	free(x);
}

static void
http_event_cb(evutil_socket_t fd, short events, void *arg)
{
	struct http	*h = arg;
	int		 action = 0, running;

	if (events & EV_READ)
		action |= CURL_CSELECT_IN;
	if (events & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, fd, action, &running);
	http_check(h);
}

static void
http_timer_cb(evutil_socket_t fd __unused, short events __unused, void *arg)
{
	struct http	*h = arg;
	int		 running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check(h);
}

/* CURLMOPT_TIMERFUNCTION: -1 deletes the timer, 0 means "soon". */
static int
http_multi_timer_cb(CURLM *multi __unused, long timeout_ms, void *arg)
{
	struct http	*h = arg;
	struct timeval	 tv;

	if (timeout_ms < 0) {
		evtimer_del(h->timer);
		return (0);
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(h->timer, &tv);
	return (0);
}

/* CURLMOPT_SOCKETFUNCTION: watch a socket as libcurl asks. */
static int
http_multi_socket_cb(CURL *easy __unused, curl_socket_t fd, int what,
    void *arg, void *sockp)
{
	struct http	*h = arg;
	struct http_sock *s = sockp;
	short		 flags;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_free(s->ev);
			free(s);
		}
		curl_multi_assign(h->multi, fd, NULL);
		return (0);
	}
	flags = EV_PERSIST;
	if (what & CURL_POLL_IN)
		flags |= EV_READ;
	if (what & CURL_POLL_OUT)
		flags |= EV_WRITE;
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		s->fd = fd;
		curl_multi_assign(h->multi, fd, s);
	} else
		event_free(s->ev);
	s->ev = event_new(h->base, fd, flags, http_event_cb, h);
	event_add(s->ev, NULL);
	return (0);
}

/* Collect finished transfers and run their callbacks. */
static void
http_check(struct http *h)
{
	CURLMsg			*msg;
	struct http_xfer	*x;
	struct http_result	 r;
	int			 left;

	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		memset(&r, 0, sizeof r);
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status);
		if (msg->data.result != CURLE_OK)
			r.error = x->errbuf[0] != '\0' ? x->errbuf :
			    curl_easy_strerror(msg->data.result);
		r.body = x->body != NULL ? x->body : "";
		r.body_len = x->body_len;
		r.retry_after_ms = x->retry_after_ms;
		r.headers = x->resp_headers;
		x->cb(&r, x->arg);
		http_xfer_free(x);
	}
}

static size_t
http_write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct http_xfer	*x = arg;
	size_t			 len = size * n;
	long			 status = 0;

	if (x->chunk_cb != NULL) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		switch (x->chunk_cb(data, len, status, x->resp_headers, x->arg)) {
		case HTTP_CHUNK_TAKEN:
			return (len);
		case HTTP_CHUNK_FAIL:
			return (0);	/* fails the transfer: CURLE_WRITE_ERROR */
		default:
			break;
		}
	}
	if (x->body_len + len > HTTP_MAX_BODY)
		return (0);	/* fails the transfer: CURLE_WRITE_ERROR */
	if (x->body_len + len + 1 > x->body_cap) {
		x->body_cap = (x->body_len + len + 1) * 2;
		x->body = xrealloc(x->body, x->body_cap);
	}
	memcpy(x->body + x->body_len, data, len);
	x->body_len += len;
	x->body[x->body_len] = '\0';
	return (len);
}

/* Keep Retry-After: seconds, or an HTTP date. */
static size_t
http_header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct http_xfer	*x = arg;
	size_t			 len = size * n;
	char			*v, *end;
	long			 secs;
	time_t			 when;

	/* Every header, for callers that return them; a status line starts
	 * a new set (after a 100 Continue). */
	if (len > 5 && strncmp(data, "HTTP/", 5) == 0)
		json_object_clear(x->resp_headers);
	else if ((v = memchr(data, ':', len)) != NULL && v != data) {
		char	*name = xstrndup(data, v - data), *val, *c;

		for (c = name; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		val = xstrndup(v + 1, len - (v + 1 - data));
		val[strcspn(val, "\r\n")] = '\0';
		json_object_set_new(x->resp_headers, name,
		    json_string(val + strspn(val, " \t")));
		free(name);
		free(val);
	}
	if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		v = xstrndup(data + 12, len - 12);
		v[strcspn(v, "\r\n")] = '\0';
		secs = strtol(v, &end, 10);
		if (end != v && (*end == '\0' || *end == ' ') && secs >= 0)
			x->retry_after_ms = (int64_t)secs * 1000;
		else if ((when = curl_getdate(v + strspn(v, " "), NULL)) != -1)
			x->retry_after_ms = when > time(NULL) ?
			    (int64_t)(when - time(NULL)) * 1000 : 0;
		free(v);
	}
	return (len);
}

static struct http_xfer *
http_xfer_create(struct http *h, const char *url, long timeout_ms,
    http_done_cb *cb, void *arg)
{
	struct http_xfer	*x;

	x = xcalloc(1, sizeof *x);
	x->http = h;
	x->cb = cb;
	x->arg = arg;
	x->retry_after_ms = -1;
	x->resp_headers = json_object();
	if ((x->easy = curl_easy_init()) == NULL)
		fatalx("curl_easy_init failed");
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_ms < 10000 ? timeout_ms : 10000L);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "dwa/" DWA_VERSION);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
	return (x);
}

static struct http_xfer *
http_xfer_start(struct http_xfer *x)
{
	CURLMcode	rc;

	x->http->inflight++;
	if ((rc = curl_multi_add_handle(x->http->multi, x->easy)) != CURLM_OK)
		fatalx("curl_multi_add_handle: %s", curl_multi_strerror(rc));
	return (x);
}

/*
 * Start an HTTP request.  headers (may be NULL) are taken over; body is
 * copied.  cb runs once, from the loop, unless the transfer is cancelled.
 */
struct http_xfer *
http_request(struct http *h, const char *method, const char *url,
    struct curl_slist *headers, const char *body, size_t body_len,
    long timeout_ms, http_done_cb *cb, void *arg)
{
	struct http_xfer	*x;

	x = http_xfer_create(h, url, timeout_ms, cb, arg);
	x->headers = headers;
	if (headers != NULL)
		curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, headers);
	if (body != NULL) {
		x->req = xmalloc(body_len + 1);
		memcpy(x->req, body, body_len);
		x->req[body_len] = '\0';
		x->req_len = body_len;
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->req);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)body_len);
	}
	if (strcmp(method, "GET") == 0 && body == NULL)
		curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
	else if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
	else {
		if (body == NULL)
			curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, 0L);
		curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, method);
	}
	return (http_xfer_start(x));
}

static size_t
http_read_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct http_xfer	*x = arg;
	size_t			 len = size * n;

	if (len > x->req_len - x->req_off)
		len = x->req_len - x->req_off;
	memcpy(buf, x->req + x->req_off, len);
	x->req_off += len;
	return (len);
}

/* Send one mail (headers and body already in message) over SMTP. */
struct http_xfer *
http_mail(struct http *h, const char *url, const char *from, const char *to,
    const char *message, long timeout_ms, http_done_cb *cb, void *arg)
{
	struct http_xfer	*x;

	x = http_xfer_create(h, url, timeout_ms, cb, arg);
	x->req = xstrdup(message);
	x->req_len = strlen(message);
	x->rcpts = curl_slist_append(NULL, to);
	curl_easy_setopt(x->easy, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(x->easy, CURLOPT_MAIL_RCPT, x->rcpts);
	curl_easy_setopt(x->easy, CURLOPT_READFUNCTION, http_read_cb);
	curl_easy_setopt(x->easy, CURLOPT_READDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_UPLOAD, 1L);
	return (http_xfer_start(x));
}

/*
 * Let cb see each piece of the answer as it arrives (before the transfer
 * is collected: call right after http_request).  Pieces it does not take
 * are kept as the body, as usual.
 */
void
http_set_chunk_cb(struct http_xfer *x, http_chunk_cb *cb)
{
	x->chunk_cb = cb;
}

/* Whether url is an http:// or https:// URL (NULL: no). */
int
http_url_ok(const char *url)
{
	return (url != NULL && (strncmp(url, "http://", 7) == 0 ||
	    strncmp(url, "https://", 8) == 0));
}

/* Whether an answer with this status is worth retrying: 408, 429, 5xx. */
int
http_status_transient(long status)
{
	return (status >= 500 || status == 408 || status == 429);
}

/*
 * An answer as an error message: "HTTP 503" and the first line of its
 * body, at most 200 characters.  Allocated.
 */
char *
http_status_text(long status, const char *body, size_t len)
{
	char	*msg;

	xasprintf(&msg, "HTTP %ld%s%.200s", status, len > 0 ? ": " : "",
	    len > 0 ? body : "");
	msg[strcspn(msg, "\r\n")] = '\0';
	return (msg);
}

/* Abort a transfer: its callback will not run. */
void
http_cancel(struct http_xfer *x)
{
	if (x != NULL)
		http_xfer_free(x);
}

int
http_inflight(const struct http *h)
{
	return (h->inflight);
}

struct http *
http_create(struct event_base *base)
{
	struct http	*h;

	h = xcalloc(1, sizeof *h);
	h->base = base;
	if ((h->multi = curl_multi_init()) == NULL)
		fatalx("curl_multi_init failed");
	h->timer = evtimer_new(base, http_timer_cb, h);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_multi_socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_multi_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return (h);
}

/* Free the multi handle; transfers still in flight are abandoned. */
void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	curl_multi_cleanup(h->multi);
	event_free(h->timer);
	free(h);
}
