/*
 * migrate.h: the schema, embedded at build time, and the code that applies
 * it: migrations once each, then every sql/ file again.
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include <libpq-fe.h>

#include "dwa.h"

struct sql_file {
	const char	*name;	/* file name without .sql: "0001_core" */
	const char	*text;
};

extern const struct sql_file migrate_migrations[];
extern const struct sql_file migrate_sql[];

int		 migrate_run(PGconn *, int *, char **);
const char	*migrate_latest(void);
int		 migrate_check(PGconn *, char **);

#endif /* MIGRATE_H */
