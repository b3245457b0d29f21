/*
 * http.h: HTTP and SMTP transfers with libcurl's multi interface, driven by
 * the daemon's libevent loop.  No call blocks; any number of transfers may
 * be in flight.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "dwa.h"

struct http;
struct http_xfer;

struct http_result {
	long		 status;	/* HTTP status or SMTP code; 0: none */
	const char	*error;		/* transport error, NULL if none */
	const char	*body;		/* the answer, NUL-terminated */
	size_t		 body_len;
	int64_t		 retry_after_ms; /* Retry-After, -1 when absent */
	json_t		*headers;	/* the answer's headers, lower-case names */
};

/* A transfer ended; the result and everything in it are borrowed. */
typedef void http_done_cb(const struct http_result *, void *arg);

struct http	*http_create(struct event_base *);
void		 http_free(struct http *);
struct http_xfer *http_request(struct http *, const char *, const char *,
		     struct curl_slist *, const char *, size_t, long,
		     http_done_cb *, void *);
struct http_xfer *http_mail(struct http *, const char *, const char *,
		     const char *, const char *, long, http_done_cb *, void *);
void		 http_cancel(struct http_xfer *);
int		 http_inflight(const struct http *);

#endif /* HTTP_H */
