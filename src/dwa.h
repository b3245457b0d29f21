/*
 * dwa.h: the few definitions every part of DWA shares.
 */
#ifndef DWA_H
#define DWA_H

#include "config.h"

#include <sys/queue.h>

/* glibc's queue.h lacks the _SAFE iterators. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST((head));				\
	    (var) != NULL && ((tvar) = TAILQ_NEXT((var), field), 1);	\
	    (var) = (tvar))
#endif

#define DWA_VERSION		PACKAGE_VERSION

/* First key of the advisory locks DWA takes (the ASCII of "DWA"). */
#define DWA_LOCK_CLASS		4478785

/* Exit codes of both programs. */
#define DWA_EXIT_OK		0
#define DWA_EXIT_FAILURE	1
#define DWA_EXIT_USAGE		2

#ifndef __unused
#define __unused		__attribute__((__unused__))
#endif
#ifndef __dead
#define __dead			__attribute__((__noreturn__))
#endif
#define __printflike(a, b)	__attribute__((__format__(__printf__, a, b)))

#define nitems(a)		(sizeof (a) / sizeof (a)[0])

#endif /* DWA_H */
