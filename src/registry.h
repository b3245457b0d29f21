/*
 * registry.h: discovery of exec task types: programs that describe
 * themselves with --describe, upserted into dwa.task_types.  Shared by
 * dwa types sync and dwad's start-up; blocking, so never called from the
 * event loop.
 */
#ifndef REGISTRY_H
#define REGISTRY_H

#include <libpq-fe.h>

#include "dwa.h"

#define REGISTRY_TIMEOUT_MS	10000	/* default for --describe */

/*
 * Describe and upsert the program at path; 0, or -1 with *cause
 * (allocated).  Sets *name (allocated) on success if name != NULL.
 */
int	 registry_sync_one(PGconn *, const char *, int, char **, char **);

/*
 * The executables directly in dir (regular files, X_OK, not dot-files), as
 * absolute paths, sorted; NULL-terminated, allocated; NULL with *cause if
 * dir cannot be read.  Neither cause repeats the path or dir given.
 */
char	**registry_programs(const char *, char **);
void	 registry_programs_free(char **);

#endif /* REGISTRY_H */
