/*
 * db.h: one PostgreSQL connection driven by the daemon's event loop.
 *
 * Queries queue up and run one at a time, never blocking the loop.  When
 * the connection is lost, every queued query fails (its callback gets a
 * NULL result) and the connection is re-established with backoff; the
 * state callback tells the owner, who must treat a reconnect as "anything
 * may have happened meanwhile".  LISTEN channels are re-issued on every
 * connect.
 */
#ifndef DB_H
#define DB_H

#include <event2/event.h>
#include <libpq-fe.h>

#include "dwa.h"

struct db;

/*
 * Result of a query: res is NULL on failure, with error set; both are
 * borrowed and valid only during the call.
 */
typedef void db_result_cb(PGresult *res, const char *error, void *arg);
/* The connection came up (up = 1) or went down (up = 0). */
typedef void db_state_cb(struct db *, int up, void *arg);
/* A notification arrived; channel and payload are borrowed. */
typedef void db_notify_cb(const char *channel, const char *payload,
		    void *arg);

struct db	*db_create(struct event_base *, const char *, const char *,
		     db_state_cb *, void *);
void		 db_free(struct db *);
void		 db_set_state_cb(struct db *, db_state_cb *, void *);
void		 db_start(struct db *);
void		 db_listen(struct db *, const char *, db_notify_cb *, void *);
int		 db_query(struct db *, const char *, int, const char *const *,
		     db_result_cb *, void *);
int		 db_query_prepared(struct db *, const char *, const char *, int,
		     const char *const *, db_result_cb *, void *);
int		 db_is_up(const struct db *);
struct db	*db_up_or(struct db *, struct db *);
int		 db_idle(const struct db *);
const char	*db_name(const struct db *);
int		 db_server_version(const struct db *);

#endif /* DB_H */
