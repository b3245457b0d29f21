/*
 * outbox.c: delivering effects.
 *
 * Rows of dwa.outbox are written by the transaction that changed a task's
 * state; here they are claimed (dwa._outbox_claim: SKIP LOCKED, a lease,
 * one more attempt), delivered over libcurl with no transaction open, and
 * their outcomes recorded in batches (dwa._outbox_finish), which retries
 * with backoff or marks the row dead.  Each delivery carries the row's
 * stable delivery id, so receivers can drop the duplicates that
 * at-least-once delivery allows.  Outcomes not yet recorded survive a
 * reconnect; a daemon killed mid-delivery leaves its rows to be requeued by
 * any daemon's reaper.  An outcome names the claim it answers (worker id
 * and attempt number), so a late one never overwrites a later claim's.
 * Claims and outcomes go to the housekeeping connection while it is up,
 * else to the work connection, so that they never hold up a step's claim.
 *
 * Failures are classified here, where they happen: a missing setting, a
 * URL libcurl cannot parse or a scheme the delivery cannot use are
 * permanent (the row is dead at once); network errors, 408, 429 and 5xx
 * are retried.
 *
 * Configuration comes from the environment: DWA_WEBHOOK_SECRET,
 * DWA_SLACK_WEBHOOK_URL, DWA_DISCORD_WEBHOOK_URL, DWA_SMTP_URL,
 * DWA_SMTP_FROM, DWA_INVALIDATE_URL.  URLs may hold secrets: they are never
 * logged.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "log.h"
#include "outbox.h"
#include "xmalloc.h"

/*
 * Longest timeout an effect may ask for: a delivery must end well within
 * the lease of its row (dwad gives 2 minutes), or a reaper would hand the
 * row to another daemon while it is still in flight.
 */
#define OUTBOX_MAX_TIMEOUT_MS	60000
#define OUTBOX_MIN_TIMEOUT_MS	100
#define OUTBOX_DEFAULT_TIMEOUT_MS 10000

struct delivery {
	struct outbox		*outbox;
	int64_t			 id;
	/* The claim this delivery answers: daemon and attempt number. */
	int			 worker_id;
	int			 attempt;
	char			*delivery_id;
	char			*event;
	struct http_xfer	*xfer;
	TAILQ_ENTRY(delivery)	 entry;
};
TAILQ_HEAD(deliveries, delivery);

struct outbox {
	struct event_base	*base;
	struct db		*db;		/* work: while house is down */
	struct db		*house;		/* housekeeping; may be NULL */
	struct db		*claim_db;	/* where the claim in flight went */
	struct db		*used;		/* where the outcomes in flight went */
	struct http		*http;
	struct outbox_config	 cfg;
	int			 worker_id;

	struct deliveries	 inflight;
	int			 ninflight;
	json_t			*pending;	/* outcomes not yet sent */
	json_t			*finishing;	/* outcomes in flight */

	int			 want_claim;
	int			 claiming;
	int			 draining;
	int			 claim_n;	/* rows asked for in flight */
	int			 claim_worker;	/* worker id of that claim */
	struct event		*poll_ev;
	struct event		*grace_ev;
	struct event		*due_ev;	/* the next retry falls due */
};

/* Lowercase hex HMAC-SHA256 of body under secret; the caller frees it. */
char *
outbox_signature(const char *secret, const char *body, size_t len)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	char		*hex;

	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)body, len, md, &mdlen) == NULL)
		fatalx("HMAC-SHA256 failed");
	hex = xmalloc(mdlen * 2 + 1);
	for (i = 0; i < mdlen; i++)
		snprintf(hex + i * 2, 3, "%02x", md[i]);
	return (hex);
}

/* The housekeeping connection when it is up, else the work connection. */
static struct db *
outbox_db(const struct outbox *o)
{
	return (db_up_or(o->house, o->db));
}

static void
delivery_free(struct delivery *d)
{
	struct outbox	*o = d->outbox;

	TAILQ_REMOVE(&o->inflight, d, entry);
	o->ninflight--;
	http_cancel(d->xfer);
	free(d->delivery_id);
	free(d->event);
	free(d);
}

/* Record an outcome for the next batch and forget the delivery. */
static void
delivery_end(struct delivery *d, int ok, int retryable, const char *error,
    int64_t retry_after_ms)
{
	json_t	*r;

	r = json_pack("{s:I, s:i, s:i, s:b, s:b}", "id", (json_int_t)d->id,
	    "worker", d->worker_id, "attempt", d->attempt, "ok", ok,
	    "retryable", retryable);
	json_object_set_new(r, "error", error != NULL ? json_string(error) :
	    json_null());
	json_object_set_new(r, "retryAfterMs", retry_after_ms >= 0 ?
	    json_integer(retry_after_ms) : json_null());
	json_array_append_new(d->outbox->pending, r);
	if (ok)
		log_info("outbox %" PRId64 " (%s): delivered", d->id, d->event);
	else
		log_info("outbox %" PRId64 " (%s): %s: %s", d->id, d->event,
		    retryable ? "will retry" : "failed for good", error);
	d->xfer = NULL;
	delivery_free(d);
}

static void
delivery_done_cb(const struct http_result *r, void *arg)
{
	struct delivery	*d = arg;
	char		*msg;
	int		 retryable;

	d->xfer = NULL;
	if (r->error != NULL) {
		xasprintf(&msg, "%s", r->error);
		delivery_end(d, 0, 1, msg, -1);
		free(msg);
		return;
	}
	if (strcmp(d->event, "email") == 0 || (r->status >= 200 && r->status < 300)) {
		delivery_end(d, 1, 0, NULL, -1);
		return;
	}
	retryable = http_status_transient(r->status);
	msg = http_status_text(r->status, r->body, r->body_len);
	delivery_end(d, 0, retryable, msg, retryable ? r->retry_after_ms : -1);
	free(msg);
}

/*
 * Why libcurl would refuse url at once, or NULL when it will try it: a URL
 * its parser rejects (it would fail with CURLE_URL_MALFORMAT), or a scheme
 * other than http(s) (smtp(s) when mail is set) (CURLE_UNSUPPORTED_PROTOCOL
 * or the wrong kind of transfer).  Parsed as libcurl parses a transfer's
 * URL, a scheme guessed when there is none.  what names the URL's source
 * in the message; the URL itself may hold a secret and is left out.  The
 * caller frees the message.
 */
char *
outbox_url_check(const char *url, int mail, const char *what)
{
	CURLU		*u;
	CURLUcode	 uc;
	char		*scheme = NULL, *msg = NULL;
	const char	*want[2];

	want[0] = mail ? "smtp" : "http";
	want[1] = mail ? "smtps" : "https";
	if ((u = curl_url()) == NULL)
		fatalx("curl_url failed");
	uc = curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME |
	    CURLU_NON_SUPPORT_SCHEME);
	if (uc != CURLUE_OK)
		xasprintf(&msg, "%s: %s (%s)", what,
		    curl_easy_strerror(CURLE_URL_MALFORMAT),
		    curl_url_strerror(uc));
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, want[0]) != 0 &&
	    strcasecmp(scheme, want[1]) != 0))
		xasprintf(&msg, "%s: Protocol \"%s\" not supported (use %s or "
		    "%s)", what, scheme != NULL ? scheme : "", want[0],
		    want[1]);
	curl_free(scheme);
	curl_url_cleanup(u);
	return (msg);
}

/*
 * Start a JSON POST (or method) with DWA's headers; what names where the
 * URL came from, for messages.
 */
static void
delivery_http(struct delivery *d, const char *method, const char *url,
    const char *what, json_t *headers, const char *body, const char *ctype,
    long timeout_ms)
{
	struct curl_slist	*h = NULL;
	const char		*secret = getenv("DWA_WEBHOOK_SECRET");
	const char		*k;
	json_t			*v;
	char			*line, *sig, *msg;
	int			 have_ctype = 0;

	if ((msg = outbox_url_check(url, 0, what)) != NULL) {
		delivery_end(d, 0, 0, msg, -1);
		free(msg);
		return;
	}

	xasprintf(&line, "X-DWA-Delivery: %s", d->delivery_id);
	h = curl_slist_append(h, line);
	free(line);
	if (body != NULL && secret != NULL && *secret != '\0') {
		sig = outbox_signature(secret, body, strlen(body));
		xasprintf(&line, "X-DWA-Signature: sha256=%s", sig);
		h = curl_slist_append(h, line);
		free(line);
		free(sig);
	}
	json_object_foreach(headers, k, v) {
		if (!json_is_string(v) || strpbrk(k, "\r\n:") != NULL ||
		    strpbrk(json_string_value(v), "\r\n") != NULL)
			continue;
		if (strcasecmp(k, "Content-Type") == 0)
			have_ctype = 1;
		xasprintf(&line, "%s: %s", k, json_string_value(v));
		h = curl_slist_append(h, line);
		free(line);
	}
	if (body != NULL && !have_ctype) {
		xasprintf(&line, "Content-Type: %s", ctype);
		h = curl_slist_append(h, line);
		free(line);
	}
	/* No "Expect: 100-continue" round trip. */
	h = curl_slist_append(h, "Expect:");
	d->xfer = http_request(d->outbox->http, method, url, h, body,
	    body != NULL ? strlen(body) : 0, timeout_ms, delivery_done_cb, d);
}

/*
 * The timeout of a delivery in ms: the effect's timeoutMs (webhooks; 10 s
 * without), kept within 100 ms and OUTBOX_MAX_TIMEOUT_MS.
 */
long
outbox_timeout_ms(json_t *effect)
{
	json_t		*t = json_object_get(effect, "timeoutMs");
	json_int_t	 ms;

	if (!json_is_integer(t))
		return (OUTBOX_DEFAULT_TIMEOUT_MS);
	ms = json_integer_value(t);
	if (ms < OUTBOX_MIN_TIMEOUT_MS)
		return (OUTBOX_MIN_TIMEOUT_MS);
	return (ms > OUTBOX_MAX_TIMEOUT_MS ? OUTBOX_MAX_TIMEOUT_MS : (long)ms);
}

/* A required setting from the environment, or NULL. */
static const char *
setting(const char *name)
{
	const char	*v = getenv(name);

	return (v != NULL && *v != '\0' ? v : NULL);
}

static void
delivery_webhook(struct delivery *d, json_t *e)
{
	json_t		*url = json_object_get(e, "url");
	json_t		*method = json_object_get(e, "method");
	json_t		*body = json_object_get(e, "body");
	char		*text;
	const char	*ctype = "application/json";

	if (!json_is_string(url)) {
		delivery_end(d, 0, 0, "webhook effect has no url", -1);
		return;
	}
	if (json_is_string(body)) {
		text = xstrdup(json_string_value(body));
		ctype = "text/plain; charset=utf-8";
	} else if (body != NULL && !json_is_null(body))
		text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	else
		text = NULL;
	delivery_http(d, json_is_string(method) ? json_string_value(method) :
	    "POST", json_string_value(url), "url",
	    json_object_get(e, "headers"), text, ctype, outbox_timeout_ms(e));
	free(text);
}

/*
 * Text with CRLF line ends, as SMTP wants: libcurl escapes a leading dot
 * only after CRLF, and a bare LF would let a line "." end the mail.
 */
static char *
crlf(const char *s)
{
	char	*out, *p;

	out = p = xmalloc(strlen(s) * 2 + 1);
	for (; *s != '\0'; s++) {
		if (*s == '\n' && (p == out || p[-1] != '\r'))
			*p++ = '\r';
		*p++ = *s;
	}
	*p = '\0';
	return (out);
}

static void
delivery_email(struct delivery *d, json_t *e)
{
	const char	*url = setting("DWA_SMTP_URL");
	const char	*from = setting("DWA_SMTP_FROM");
	json_t		*to = json_object_get(e, "to");
	json_t		*subject = json_object_get(e, "subject");
	json_t		*message = json_object_get(e, "message");
	char		 date[64], *mail, *rcpt, *body, *msg;
	time_t		 now = time(NULL);
	struct tm	 tm;

	if (url == NULL) {
		delivery_end(d, 0, 0, "set DWA_SMTP_URL to deliver email "
		    "notifications", -1);
		return;
	}
	if ((msg = outbox_url_check(url, 1, "DWA_SMTP_URL")) != NULL) {
		delivery_end(d, 0, 0, msg, -1);
		free(msg);
		return;
	}
	if (!json_is_string(to) || strpbrk(json_string_value(to), "\r\n<>") != NULL) {
		delivery_end(d, 0, 0, "email notification has no valid \"to\"", -1);
		return;
	}
	if (from == NULL)
		from = "dwa@localhost";
	if (json_is_string(subject) &&
	    strpbrk(json_string_value(subject), "\r\n") != NULL) {
		delivery_end(d, 0, 0, "email subject must be one line", -1);
		return;
	}
	body = crlf(json_is_string(message) ? json_string_value(message) : "");
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	xasprintf(&mail, "Date: %s\r\nFrom: %s\r\nTo: %s\r\nSubject: %s\r\n"
	    "X-DWA-Delivery: %s\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", date, from,
	    json_string_value(to), json_is_string(subject) ?
	    json_string_value(subject) : "DWA notification", d->delivery_id,
	    body);
	free(body);
	xasprintf(&rcpt, "<%s>", json_string_value(to));
	d->xfer = http_mail(d->outbox->http, url, from, rcpt, mail,
	    outbox_timeout_ms(e), delivery_done_cb, d);
	free(rcpt);
	free(mail);
}

static void
delivery_notify(struct delivery *d, json_t *e)
{
	const char	*channel = json_string_value(json_object_get(e, "channel"));
	json_t		*message = json_object_get(e, "message");
	const char	*url, *var;
	json_t		*body;
	char		*text, *msg;

	if (channel != NULL && strcmp(channel, "email") == 0) {
		free(d->event);
		d->event = xstrdup("email");
		delivery_email(d, e);
		return;
	}
	if (channel != NULL && strcmp(channel, "slack") == 0)
		var = "DWA_SLACK_WEBHOOK_URL";
	else if (channel != NULL && strcmp(channel, "discord") == 0)
		var = "DWA_DISCORD_WEBHOOK_URL";
	else {
		delivery_end(d, 0, 0, "notify effect has an unknown channel", -1);
		return;
	}
	if ((url = setting(var)) == NULL) {
		xasprintf(&msg, "set %s to deliver %s notifications", var, channel);
		delivery_end(d, 0, 0, msg, -1);
		free(msg);
		return;
	}
	body = json_pack("{s:s}", strcmp(channel, "slack") == 0 ? "text" :
	    "content", json_is_string(message) ? json_string_value(message) : "");
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	delivery_http(d, "POST", url, var, NULL, text, "application/json",
	    outbox_timeout_ms(e));
	free(text);
}

static void
delivery_invalidate(struct delivery *d, json_t *e)
{
	const char	*base = setting("DWA_INVALIDATE_URL");
	json_t		*path = json_object_get(e, "path");
	json_t		*method = json_object_get(e, "method");
	char		*url;

	if (base == NULL) {
		delivery_end(d, 0, 0, "set DWA_INVALIDATE_URL to deliver cache "
		    "invalidations", -1);
		return;
	}
	xasprintf(&url, "%s%s", base, json_is_string(path) ?
	    json_string_value(path) : "");
	delivery_http(d, json_is_string(method) ? json_string_value(method) :
	    "POST", url, "DWA_INVALIDATE_URL + path", NULL, NULL, NULL,
	    outbox_timeout_ms(e));
	free(url);
}

/* Start delivering one claimed row. */
static void
delivery_start(struct outbox *o, PGresult *res, int row)
{
	struct delivery	*d;
	json_t		*effect;

	d = xcalloc(1, sizeof *d);
	d->outbox = o;
	d->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
	d->worker_id = o->claim_worker;
	d->attempt = atoi(PQgetvalue(res, row, 4));
	d->delivery_id = xstrdup(PQgetvalue(res, row, 1));
	d->event = xstrdup(PQgetvalue(res, row, 2));
	TAILQ_INSERT_TAIL(&o->inflight, d, entry);
	o->ninflight++;

	effect = json_loads(PQgetvalue(res, row, 3), 0, NULL);
	if (!json_is_object(effect))
		delivery_end(d, 0, 0, "effect is not a JSON object", -1);
	else if (strcmp(d->event, "webhook") == 0)
		delivery_webhook(d, effect);
	else if (strcmp(d->event, "notify") == 0)
		delivery_notify(d, effect);
	else if (strcmp(d->event, "invalidate") == 0)
		delivery_invalidate(d, effect);
	else
		delivery_end(d, 0, 0, "this daemon cannot deliver this event", -1);
	json_decref(effect);
}

static void
outbox_due_cb(evutil_socket_t fd __unused, short events __unused, void *arg)
{
	struct outbox	*o = arg;

	o->want_claim = 1;
}

/* When the next pending row falls due within the poll interval, wake then. */
static void
outbox_next_cb(PGresult *res, const char *error __unused, void *arg)
{
	struct outbox	*o = arg;
	struct timeval	 tv;
	int64_t		 ms;

	if (res == NULL || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		return;
	ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (ms >= 1000)
		return;		/* the poll comes first */
	if (ms < 0)
		ms = 0;
	tv.tv_sec = 0;
	tv.tv_usec = ms * 1000;
	evtimer_add(o->due_ev, &tv);
}

static void
outbox_claim_cb(PGresult *res, const char *error, void *arg)
{
	struct outbox	*o = arg;
	int		 i, n;

	o->claiming = 0;
	if (res == NULL) {
		if (db_is_up(o->claim_db))
			log_error("outbox claim failed: %s", error);
		return;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		delivery_start(o, res, i);
	if (n > 0 && n >= o->claim_n) {
		o->want_claim = 1;
		return;
	}
	/*
	 * Nothing more is due now: a retry may fall due before the next
	 * poll, so that backoffs under a second keep their length.
	 */
	db_query(outbox_db(o), "SELECT ceil(extract(epoch FROM "
	    "min(next_attempt_at) - now()) * 1000)::bigint FROM dwa.outbox "
	    "WHERE status = 'pending'", 0, NULL, outbox_next_cb, o);
}

static void
outbox_claim(struct outbox *o, int n)
{
	char		 worker[16], count[16], lease[32];
	const char	*params[3];

	snprintf(worker, sizeof worker, "%d", o->worker_id);
	snprintf(count, sizeof count, "%d", n);
	snprintf(lease, sizeof lease, "%" PRId64 " milliseconds",
	    o->cfg.lease_ms);
	params[0] = worker;
	params[1] = count;
	params[2] = lease;
	o->claim_db = outbox_db(o);
	if (db_query(o->claim_db, "SELECT id, delivery_id, event, effect, "
	    "attempts FROM dwa._outbox_claim($1::integer, $2::integer, "
	    "$3::interval)", 3, params, outbox_claim_cb, o) == 0) {
		o->claiming = 1;
		o->claim_n = n;
		o->claim_worker = o->worker_id;
		o->want_claim = 0;
	}
}

static void
outbox_finish_cb(PGresult *res, const char *error, void *arg)
{
	struct outbox	*o = arg;

	if (res == NULL && !db_is_up(o->used)) {
		/* Resend, on whichever connection is up then. */
		json_array_extend(o->finishing, o->pending);
		json_decref(o->pending);
		o->pending = o->finishing;
		o->finishing = NULL;
		return;
	}
	if (res == NULL)
		log_error("recording %zu delivery outcomes failed: %s",
		    json_array_size(o->finishing), error);
	json_decref(o->finishing);
	o->finishing = NULL;
	o->want_claim = 1;
}

static void
outbox_finish(struct outbox *o)
{
	char		*body;
	const char	*params[1];

	body = json_dumps(o->pending, JSON_COMPACT);
	params[0] = body;
	o->used = outbox_db(o);
	if (db_query(o->used, "SELECT dwa._outbox_finish($1::jsonb)", 1, params,
	    outbox_finish_cb, o) == 0) {
		o->finishing = o->pending;
		o->pending = json_array();
	}
	free(body);
}

static void
outbox_poll_cb(evutil_socket_t fd __unused, short events __unused, void *arg)
{
	struct outbox	*o = arg;

	o->want_claim = 1;
}

void
outbox_wake(struct outbox *o)
{
	o->want_claim = 1;
}

/*
 * The work or the housekeeping connection came up or went down.  A claim
 * in flight on a lost connection has already been failed (its callback
 * cleared claiming).
 */
void
outbox_db_state(struct outbox *o, int up)
{
	if (up)
		o->want_claim = 1;
}

/* The housekeeping connection, beside the work connection. */
void
outbox_set_house_db(struct outbox *o, struct db *hdb)
{
	o->house = hdb;
}

/* After each loop pass: record outcomes, then claim if there is room. */
void
outbox_after_pass(struct outbox *o, int worker_id)
{
	int	free_slots;

	o->worker_id = worker_id;
	if (worker_id == 0 || !db_is_up(outbox_db(o)))
		return;
	if (o->finishing == NULL && json_array_size(o->pending) > 0)
		outbox_finish(o);
	if (o->draining || o->claiming || !o->want_claim)
		return;
	free_slots = o->cfg.concurrency - o->ninflight;
	if (free_slots > 0)
		outbox_claim(o, free_slots < 64 ? free_slots : 64);
}

static void
outbox_grace_cb(evutil_socket_t fd __unused, short events __unused,
    void *arg)
{
	struct outbox	*o = arg;
	struct delivery	*d;

	/*
	 * Abandon what is still in flight: the rows stay 'delivering' and
	 * are requeued by a reaper once this daemon's session is gone.
	 */
	if (o->ninflight > 0)
		log_info("drain: abandoning %d deliver%s in flight", o->ninflight,
		    o->ninflight == 1 ? "y" : "ies");
	while ((d = TAILQ_FIRST(&o->inflight)) != NULL)
		delivery_free(d);
}

/* Stop claiming; deliveries in flight get grace_ms to end. */
void
outbox_drain(struct outbox *o, int64_t grace_ms)
{
	struct timeval	tv;

	if (o->draining)
		return;
	o->draining = 1;
	tv.tv_sec = grace_ms / 1000;
	tv.tv_usec = (grace_ms % 1000) * 1000;
	evtimer_add(o->grace_ev, &tv);
}

int
outbox_finished(const struct outbox *o)
{
	if (!o->draining || o->ninflight > 0)
		return (0);
	if (!db_is_up(outbox_db(o)))
		return (1);
	return (json_array_size(o->pending) == 0 && o->finishing == NULL);
}

struct outbox *
outbox_create(struct event_base *base, struct db *db, struct http *http,
    const struct outbox_config *cfg)
{
	struct outbox	*o;
	struct timeval	 tv = { 1, 0 };

	o = xcalloc(1, sizeof *o);
	o->base = base;
	o->db = db;
	o->http = http;
	o->cfg = *cfg;
	TAILQ_INIT(&o->inflight);
	o->pending = json_array();
	o->want_claim = 1;
	o->poll_ev = event_new(base, -1, EV_PERSIST, outbox_poll_cb, o);
	event_add(o->poll_ev, &tv);
	o->grace_ev = evtimer_new(base, outbox_grace_cb, o);
	o->due_ev = evtimer_new(base, outbox_due_cb, o);
	return (o);
}

void
outbox_free(struct outbox *o)
{
	struct delivery	*d;

	if (o == NULL)
		return;
	while ((d = TAILQ_FIRST(&o->inflight)) != NULL)
		delivery_free(d);
	json_decref(o->pending);
	json_decref(o->finishing);
	event_free(o->poll_ev);
	event_free(o->grace_ev);
	event_free(o->due_ev);
	free(o);
}
