/*
 * xmalloc.h: allocation that never returns NULL.  Running out of memory
 * ends the process; nothing is lost because all state lives in PostgreSQL.
 */
#ifndef XMALLOC_H
#define XMALLOC_H

#include <stddef.h>
#include <stdarg.h>

#include "dwa.h"

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...) __printflike(2, 3);
int	 xvasprintf(char **, const char *, va_list);

#endif /* XMALLOC_H */
