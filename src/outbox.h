/*
 * outbox.h: the effect dispatcher: delivers dwa.outbox rows (webhooks,
 * notifications, cache invalidations) at least once, outside any
 * transaction, and records each outcome.
 */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <stdint.h>

#include <event2/event.h>

#include "db.h"
#include "dwa.h"
#include "http.h"

struct outbox_config {
	int		 concurrency;	/* deliveries in flight */
	int64_t		 lease_ms;	/* lease of a row being delivered */
};

struct outbox;

struct outbox	*outbox_create(struct event_base *, struct db *, struct http *,
		     const struct outbox_config *);
void		 outbox_free(struct outbox *);
void		 outbox_db_state(struct outbox *, int);
void		 outbox_set_house_db(struct outbox *, struct db *);
void		 outbox_wake(struct outbox *);
void		 outbox_after_pass(struct outbox *, int);
void		 outbox_drain(struct outbox *, int64_t);
int		 outbox_finished(const struct outbox *);

/* Exposed for the unit tests. */
char		*outbox_signature(const char *, const char *, size_t);
char		*outbox_url_check(const char *, int, const char *);
long		 outbox_timeout_ms(json_t *);

#endif /* OUTBOX_H */
