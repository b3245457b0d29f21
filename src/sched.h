/*
 * sched.h: the scheduler: claims ready steps, runs them on executors,
 * reports their ends in batches, keeps their leases and reaps the runs of
 * dead daemons.
 */
#ifndef SCHED_H
#define SCHED_H

#include <stdint.h>

#include <event2/event.h>

#include "db.h"
#include "http.h"
#include "dwa.h"

/* Connections for the ends of runs, beside the work connection. */
#define SCHED_LANES	2

/* --type-limit PATTERN=N: at most N runs of types matching PATTERN. */
struct sched_type_limit {
	char		*pattern;	/* fnmatch(3) glob over type names */
	int		 max;
};

struct sched_config {
	const char	*name;		/* this daemon in dwa.workers */
	int		 concurrency;	/* runs at once */
	int		 batch;		/* most steps claimed per query */
	int64_t		 lease_ms;	/* lease granted per claim and renewal */
	int64_t		 poll_ms;	/* claim at least this often */
	int64_t		 reap_ms;	/* look for dead daemons this often */
	int64_t		 grace_ms;	/* how long a drain waits for runs */
	struct sched_type_limit *type_limits;
	int		 ntype_limits;
	struct http	*http;		/* for the network built-ins */
	char		**serve;	/* --types: globs of the types served */
	int		 nserve;	/* 0: every type this daemon can run */
	const char	*queues;	/* --queues as an array literal; NULL: all */
	int		 keep_workdirs;	/* keep the directories of done tasks */
	int64_t		 retention_ms;	/* prune finished tasks older; 0: never */
	int64_t		 vacuum_every;	/* vacuum the queues after as many
					   claimed steps; 0: never */
};

struct sched;

struct sched	*sched_create(struct event_base *, struct db *,
		     const struct sched_config *);
void		 sched_free(struct sched *);
void		 sched_db_state(struct sched *, int);
void		 sched_set_finish_db(struct sched *, int, struct db *);
void		 sched_set_house_db(struct sched *, struct db *);
int		 sched_type_group(const struct sched_config *, const char *);
char		*sched_types_literal(const struct sched_config *, char *const *,
		    int, int);
void		 sched_wake(struct sched *);
int		 sched_worker_id(const struct sched *);
void		 sched_cancel_task(struct sched *, int64_t);
void		 sched_expand(struct sched *, int64_t);
void		 sched_after_pass(struct sched *);
void		 sched_drain(struct sched *);
int		 sched_finished(const struct sched *);

#endif /* SCHED_H */
