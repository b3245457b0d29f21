/*
 * pq.h: blocking libpq helpers for the CLI and for dwad's start-up, before
 * its event loop runs.  Inside the loop only db.c talks to PostgreSQL.
 */
#ifndef PQ_H
#define PQ_H

#include <libpq-fe.h>

#include "dwa.h"

PGconn		*pq_connect(const char *, const char *, char **);
PGresult	*pq_exec(PGconn *, const char *, int, const char *const *,
		     char **);
int		 pq_command(PGconn *, const char *, char **);
char		*pq_result_error(const PGresult *);

#endif /* PQ_H */
