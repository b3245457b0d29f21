/*
 * db.c: an asynchronous libpq connection on a libevent loop.
 *
 * The connection is a state machine (enum db_state).  Connecting follows
 * PQconnectPoll, waiting for whatever it asks for on PQsocket (which may
 * change while connecting, so the event is re-made each time).  A query is
 * sent with PQsendQueryParams and flushed; while PQflush says more remains
 * we wait for the socket to be writable as well as readable, as libpq's
 * documentation requires.  Results are collected until PQgetResult returns
 * NULL; only then does the callback run.  Notifications are drained after
 * every PQconsumeInput.
 *
 * A named query is prepared once per session, by a Prepare step queued just
 * before its first use (and again after a reconnect), and then only bound
 * and executed: no parsing or planning of the statement per call.  A named
 * query that fails has its statement deallocated, so that the next use
 * prepares it afresh (a replaced function may have changed its shape).
 */
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "db.h"
#include "log.h"
#include "xmalloc.h"

enum db_state {
	DB_DOWN,	/* no connection; the retry timer is armed */
	DB_CONNECTING,	/* PQconnectPoll in progress */
	DB_IDLE,	/* connected, no query in flight */
	DB_BUSY,	/* one query sent, waiting for its results */
};

struct db_query {
	char			*sql;
	char			*stmt;		/* prepared statement; NULL: none */
	int			 prepare;	/* this step prepares stmt */
	int			 nparams;
	char			**params;
	db_result_cb		*cb;
	void			*arg;
	TAILQ_ENTRY(db_query)	 entry;
};
TAILQ_HEAD(db_queries, db_query);

struct db_listen {
	char			*channel;
	db_notify_cb		*cb;
	void			*arg;
	TAILQ_ENTRY(db_listen)	 entry;
};
TAILQ_HEAD(db_listens, db_listen);

struct db {
	struct event_base	*base;
	char			*url;
	char			*name;		/* for logs: "work", "listen" */
	enum db_state		 state;
	PGconn			*conn;
	int			 fd;
	struct event		*ev;		/* on fd; flags vary */
	short			 ev_flags;
	struct event		*retry;		/* reconnect timer */
	struct event		*deadline;	/* connect deadline */
	int			 backoff_ms;
	int			 server_version;
	struct db_queries	 queue;		/* head is in flight when BUSY */
	struct db_listens	 listens;
	char			**prepared;	/* statements of this session */
	int			 nprepared;
	PGresult		*result;	/* the result kept for the callback */
	db_state_cb		*state_cb;
	void			*state_arg;
};

#define DB_BACKOFF_MIN_MS	100
#define DB_BACKOFF_MAX_MS	5000
#define DB_CONNECT_TIMEOUT_S	10

static void	db_event_cb(evutil_socket_t, short, void *);
static void	db_retry_cb(evutil_socket_t, short, void *);
static void	db_lost(struct db *, const char *);
static void	db_send_next(struct db *);

static void
db_notice_cb(void *arg, const char *message)
{
	struct db	*db = arg;

	log_debug("db %s: %.*s", db->name, (int)strcspn(message, "\n"), message);
}

/* Wait on the socket for flags (EV_READ and/or EV_WRITE), persistently. */
static void
db_wait(struct db *db, short flags)
{
	int	fd = PQsocket(db->conn);

	if (db->ev != NULL && fd == db->fd && flags == db->ev_flags)
		return;
	if (db->ev != NULL)
		event_free(db->ev);
	db->fd = fd;
	db->ev_flags = flags;
	db->ev = event_new(db->base, fd, flags | EV_PERSIST, db_event_cb, db);
	event_add(db->ev, NULL);
}

struct db *
db_create(struct event_base *base, const char *url, const char *name,
    db_state_cb *cb, void *arg)
{
	struct db	*db;

	db = xcalloc(1, sizeof *db);
	db->base = base;
	/* Like pq_connect: --db, else DATABASE_URL, else libpq's PG*. */
	if (url == NULL || *url == '\0')
		url = getenv("DATABASE_URL");
	db->url = xstrdup(url != NULL ? url : "");
	db->name = xstrdup(name);
	db->state = DB_DOWN;
	db->fd = -1;
	db->backoff_ms = DB_BACKOFF_MIN_MS;
	db->state_cb = cb;
	db->state_arg = arg;
	TAILQ_INIT(&db->queue);
	TAILQ_INIT(&db->listens);
	db->retry = evtimer_new(base, db_retry_cb, db);
	db->deadline = evtimer_new(base, db_retry_cb, db);
	return (db);
}

static void
db_query_free(struct db_query *q)
{
	int	i;

	for (i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	free(q->stmt);
	free(q);
}

/* Whether statement name is prepared on this session; with del, forget it. */
static int
db_prepared(struct db *db, const char *name, int del)
{
	int	i;

	for (i = 0; i < db->nprepared; i++) {
		if (strcmp(db->prepared[i], name) != 0)
			continue;
		if (del) {
			free(db->prepared[i]);
			db->prepared[i] = db->prepared[--db->nprepared];
		}
		return (1);
	}
	return (0);
}

/* Close the connection, if any, without telling anybody. */
static void
db_close(struct db *db)
{
	if (db->ev != NULL)
		event_free(db->ev);
	db->ev = NULL;
	db->ev_flags = 0;
	db->fd = -1;
	evtimer_del(db->deadline);
	if (db->result != NULL)
		PQclear(db->result);
	db->result = NULL;
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = NULL;
	/* Prepared statements die with their session. */
	while (db->nprepared > 0)
		free(db->prepared[--db->nprepared]);
}

void
db_free(struct db *db)
{
	struct db_query		*q;
	struct db_listen	*l;

	if (db == NULL)
		return;
	db_close(db);
	while ((q = TAILQ_FIRST(&db->queue)) != NULL) {
		TAILQ_REMOVE(&db->queue, q, entry);
		db_query_free(q);
	}
	while ((l = TAILQ_FIRST(&db->listens)) != NULL) {
		TAILQ_REMOVE(&db->listens, l, entry);
		free(l->channel);
		free(l);
	}
	event_free(db->retry);
	event_free(db->deadline);
	free(db->prepared);
	free(db->url);
	free(db->name);
	free(db);
}

void
db_set_state_cb(struct db *db, db_state_cb *cb, void *arg)
{
	db->state_cb = cb;
	db->state_arg = arg;
}

/* Begin (or begin again) to connect. */
void
db_start(struct db *db)
{
	const char	*keys[] = { "dbname", "fallback_application_name", NULL };
	const char	*vals[] = { db->url, "dwad", NULL };
	struct timeval	 tv = { DB_CONNECT_TIMEOUT_S, 0 };

	db_close(db);
	if (*db->url == '\0')
		vals[0] = NULL;
	db->conn = PQconnectStartParams(keys, vals, 1);
	if (db->conn == NULL || PQstatus(db->conn) == CONNECTION_BAD) {
		db_lost(db, db->conn != NULL ? PQerrorMessage(db->conn) :
		    "out of memory");
		return;
	}
	PQsetNoticeProcessor(db->conn, db_notice_cb, db);
	db->state = DB_CONNECTING;
	evtimer_add(db->deadline, &tv);
	db_wait(db, EV_WRITE);
}

static void
db_retry_cb(evutil_socket_t fd __unused, short events __unused, void *arg)
{
	struct db	*db = arg;

	switch (db->state) {
	case DB_DOWN:
		db_start(db);
		break;
	case DB_CONNECTING:
		db_lost(db, "timed out connecting");
		break;
	case DB_IDLE:
	case DB_BUSY:
		break;
	default:
		fatalx("db %s: retry in state %d", db->name, db->state);
	}
}

/*
 * The connection failed or broke: fail every queued query, tell the owner
 * and retry with backoff.
 */
static void
db_lost(struct db *db, const char *why)
{
	struct db_query	*q;
	struct timeval	 tv;
	int		 was_up = db->state == DB_IDLE || db->state == DB_BUSY;
	char		*msg;

	msg = xstrdup(why != NULL ? why : "connection lost");
	msg[strcspn(msg, "\n")] = '\0';
	if (was_up)
		log_warn("db %s: connection lost: %s", db->name, msg);
	else
		log_warn("db %s: cannot connect: %s (retrying in %d ms)",
		    db->name, msg, db->backoff_ms);
	db_close(db);
	db->state = DB_DOWN;
	while ((q = TAILQ_FIRST(&db->queue)) != NULL) {
		TAILQ_REMOVE(&db->queue, q, entry);
		if (q->cb != NULL)
			q->cb(NULL, msg, q->arg);
		db_query_free(q);
	}
	free(msg);
	tv.tv_sec = db->backoff_ms / 1000;
	tv.tv_usec = (db->backoff_ms % 1000) * 1000;
	evtimer_add(db->retry, &tv);
	if (!was_up) {
		db->backoff_ms *= 2;
		if (db->backoff_ms > DB_BACKOFF_MAX_MS)
			db->backoff_ms = DB_BACKOFF_MAX_MS;
	}
	if (was_up && db->state_cb != NULL)
		db->state_cb(db, 0, db->state_arg);
}

/* Queue a LISTEN, issued now if connected and after every reconnect. */
void
db_listen(struct db *db, const char *channel, db_notify_cb *cb, void *arg)
{
	struct db_listen	*l;
	char			*sql;

	l = xcalloc(1, sizeof *l);
	l->channel = xstrdup(channel);
	l->cb = cb;
	l->arg = arg;
	TAILQ_INSERT_TAIL(&db->listens, l, entry);
	if (db_is_up(db)) {
		xasprintf(&sql, "LISTEN %s", channel);
		db_query(db, sql, 0, NULL, NULL, NULL);
		free(sql);
	}
}

static void
db_connected(struct db *db)
{
	struct db_listen	*l;
	char			*sql;

	evtimer_del(db->deadline);
	if (PQsetnonblocking(db->conn, 1) != 0) {
		db_lost(db, "cannot set non-blocking mode");
		return;
	}
	db->state = DB_IDLE;
	db->backoff_ms = DB_BACKOFF_MIN_MS;
	db->server_version = PQserverVersion(db->conn);
	log_info("db %s: connected (server %d, backend pid %d)", db->name,
	    db->server_version, PQbackendPID(db->conn));
	db_wait(db, EV_READ);
	/* Our sessions never sit idle in a transaction. */
	db_query(db, "SET idle_in_transaction_session_timeout = '60s'", 0,
	    NULL, NULL, NULL);
	TAILQ_FOREACH(l, &db->listens, entry) {
		xasprintf(&sql, "LISTEN %s", l->channel);
		db_query(db, sql, 0, NULL, NULL, NULL);
		free(sql);
	}
	if (db->state_cb != NULL)
		db->state_cb(db, 1, db->state_arg);
}

static void
db_drain_notifies(struct db *db)
{
	PGnotify		*n;
	struct db_listen	*l;

	while (db->conn != NULL && (n = PQnotifies(db->conn)) != NULL) {
		TAILQ_FOREACH(l, &db->listens, entry) {
			if (strcmp(l->channel, n->relname) == 0 && l->cb != NULL)
				l->cb(n->relname, n->extra, l->arg);
		}
		PQfreemem(n);
	}
}

/* Queue a step of our own before everything else. */
static void
db_push_front(struct db *db, const char *sql, const char *stmt, int prepare)
{
	struct db_query	*q;

	q = xcalloc(1, sizeof *q);
	q->sql = xstrdup(sql);
	q->stmt = stmt != NULL ? xstrdup(stmt) : NULL;
	q->prepare = prepare;
	TAILQ_INSERT_HEAD(&db->queue, q, entry);
}

/* Send the query at the head of the queue, if idle. */
static void
db_send_next(struct db *db)
{
	struct db_query	*q;
	int		 r, sent;

	if (db->state != DB_IDLE || (q = TAILQ_FIRST(&db->queue)) == NULL)
		return;
	if (q->stmt != NULL && !q->prepare && !db_prepared(db, q->stmt, 0)) {
		/* Its first use on this session: prepare it first. */
		db_push_front(db, q->sql, q->stmt, 1);
		q = TAILQ_FIRST(&db->queue);
	}
	if (q->prepare)
		sent = PQsendPrepare(db->conn, q->stmt, q->sql, 0, NULL);
	else if (q->stmt != NULL)
		sent = PQsendQueryPrepared(db->conn, q->stmt, q->nparams,
		    (const char *const *)q->params, NULL, NULL, 0);
	else
		sent = PQsendQueryParams(db->conn, q->sql, q->nparams, NULL,
		    (const char *const *)q->params, NULL, NULL, 0);
	if (!sent) {
		db_lost(db, PQerrorMessage(db->conn));
		return;
	}
	db->state = DB_BUSY;
	r = PQflush(db->conn);
	if (r == -1)
		db_lost(db, PQerrorMessage(db->conn));
	else
		db_wait(db, r == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* The query in flight is done: hand its result over, send the next. */
static void
db_finish_query(struct db *db)
{
	struct db_query	*q = TAILQ_FIRST(&db->queue), *next;
	PGresult	*res = db->result;
	char		*err = NULL, *sql;

	TAILQ_REMOVE(&db->queue, q, entry);
	db->result = NULL;
	db->state = DB_IDLE;
	if (res == NULL) {
		err = xstrdup("no result");
	} else if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char	*m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		err = xstrdup(m != NULL ? m : PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
	}
	if (err != NULL && q->cb == NULL && !q->prepare)
		log_warn("db %s: %s: %s", db->name, q->sql, err);
	if (q->prepare && err == NULL) {
		db->prepared = xreallocarray(db->prepared, db->nprepared + 1,
		    sizeof *db->prepared);
		db->prepared[db->nprepared++] = xstrdup(q->stmt);
	} else if (q->prepare) {
		/* The query it was for fails with its error, unsent. */
		next = TAILQ_FIRST(&db->queue);
		if (next == NULL || next->stmt == NULL ||
		    strcmp(next->stmt, q->stmt) != 0)
			fatalx("db %s: statement %s prepared for nothing",
			    db->name, q->stmt);
		TAILQ_REMOVE(&db->queue, next, entry);
		if (next->cb != NULL)
			next->cb(NULL, err, next->arg);
		else
			log_warn("db %s: %s: %s", db->name, next->sql, err);
		db_query_free(next);
	} else if (q->stmt != NULL && err != NULL &&
	    db_prepared(db, q->stmt, 1)) {
		xasprintf(&sql, "DEALLOCATE %s", q->stmt);
		db_push_front(db, sql, NULL, 0);
		free(sql);
	}
	if (q->cb != NULL)
		q->cb(err == NULL ? res : NULL, err, q->arg);
	free(err);
	if (res != NULL)
		PQclear(res);
	db_query_free(q);
	db_send_next(db);
}

static void
db_event_cb(evutil_socket_t fd __unused, short events, void *arg)
{
	struct db	*db = arg;
	PGresult	*res;
	int		 r;

	switch (db->state) {
	case DB_CONNECTING:
		switch (PQconnectPoll(db->conn)) {
		case PGRES_POLLING_READING:
			db_wait(db, EV_READ);
			break;
		case PGRES_POLLING_WRITING:
			db_wait(db, EV_WRITE);
			break;
		case PGRES_POLLING_OK:
			db_connected(db);
			db_send_next(db);
			break;
		case PGRES_POLLING_FAILED:
		default:
			db_lost(db, PQerrorMessage(db->conn));
			break;
		}
		return;
	case DB_IDLE:
	case DB_BUSY:
		break;
	case DB_DOWN:
		return;
	default:
		fatalx("db %s: event in state %d", db->name, db->state);
	}

	if (events & EV_WRITE) {
		r = PQflush(db->conn);
		if (r == -1) {
			db_lost(db, PQerrorMessage(db->conn));
			return;
		}
		if (r == 0)
			db_wait(db, EV_READ);
	}
	if (!(events & EV_READ))
		return;
	if (!PQconsumeInput(db->conn)) {
		db_lost(db, PQerrorMessage(db->conn));
		return;
	}
	db_drain_notifies(db);
	if (db->state != DB_BUSY) {
		/* Nothing in flight: a closed socket shows up here. */
		if (PQstatus(db->conn) == CONNECTION_BAD)
			db_lost(db, PQerrorMessage(db->conn));
		return;
	}
	while (db->state == DB_BUSY && !PQisBusy(db->conn)) {
		res = PQgetResult(db->conn);
		if (res == NULL) {
			db_finish_query(db);
			break;
		}
		/* Keep the last result, but an error wins. */
		if (db->result != NULL &&
		    PQresultStatus(db->result) == PGRES_FATAL_ERROR) {
			PQclear(res);
			continue;
		}
		if (db->result != NULL)
			PQclear(db->result);
		db->result = res;
	}
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_BAD)
		db_lost(db, PQerrorMessage(db->conn));
	else
		db_drain_notifies(db);
}

/*
 * Queue a query with text parameters (copied).  cb may be NULL: errors are
 * then logged.  Returns -1 when the connection is down: nothing queued.
 */
int
db_query(struct db *db, const char *sql, int nparams,
    const char *const *params, db_result_cb *cb, void *arg)
{
	return (db_query_prepared(db, NULL, sql, nparams, params, cb, arg));
}

/*
 * The same, for a query run often: prepared as statement stmt (a name of
 * its own, always with the same sql) on each session, then only executed.
 * Its parameters' types come from casts in sql.
 */
int
db_query_prepared(struct db *db, const char *stmt, const char *sql,
    int nparams, const char *const *params, db_result_cb *cb, void *arg)
{
	struct db_query	*q;
	int		 i;

	if (!db_is_up(db))
		return (-1);
	q = xcalloc(1, sizeof *q);
	q->sql = xstrdup(sql);
	q->stmt = stmt != NULL ? xstrdup(stmt) : NULL;
	q->nparams = nparams;
	if (nparams > 0) {
		q->params = xcalloc(nparams, sizeof *q->params);
		for (i = 0; i < nparams; i++)
			q->params[i] = params[i] != NULL ? xstrdup(params[i]) : NULL;
	}
	q->cb = cb;
	q->arg = arg;
	TAILQ_INSERT_TAIL(&db->queue, q, entry);
	db_send_next(db);
	return (0);
}

int
db_is_up(const struct db *db)
{
	return (db->state == DB_IDLE || db->state == DB_BUSY);
}

/*
 * A connection of its own for some work when it exists and is up, else
 * the connection that stands in for it (dwad's work connection).
 */
struct db *
db_up_or(struct db *db, struct db *fallback)
{
	return (db != NULL && db_is_up(db) ? db : fallback);
}

/* Up with nothing queued. */
int
db_idle(const struct db *db)
{
	return (db->state == DB_IDLE && TAILQ_EMPTY(&db->queue));
}

const char *
db_name(const struct db *db)
{
	return (db->name);
}

int
db_server_version(const struct db *db)
{
	return (db->server_version);
}
