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

/*
 * A piece of the answer arrived, after its status and headers (lower-case
 * names; borrowed): take it, leave it to be kept as the body, or fail the
 * transfer (the done callback then sees an error).
 */
enum http_chunk {
	HTTP_CHUNK_KEEP,
	HTTP_CHUNK_TAKEN,
	HTTP_CHUNK_FAIL,
};
typedef enum http_chunk http_chunk_cb(const char *data, size_t len, long status,
		    json_t *headers, void *arg);

struct http	*http_create(struct event_base *);
void		 http_free(struct http *);
struct http_xfer *http_request(struct http *, const char *, const char *,
		     struct curl_slist *, const char *, size_t, long,
		     http_done_cb *, void *);
struct http_xfer *http_mail(struct http *, const char *, const char *,
		     const char *, const char *, long, http_done_cb *, void *);
void		 http_set_chunk_cb(struct http_xfer *, http_chunk_cb *);
int		 http_url_ok(const char *);
int		 http_status_transient(long);
char		*http_status_text(long, const char *, size_t);
void		 http_cancel(struct http_xfer *);
int		 http_inflight(const struct http *);

#endif /* HTTP_H */
