/*
 * log.h: levelled logging to stderr or a file, for operators.  The record
 * of what happened to tasks lives in tables, not here.
 */
#ifndef LOG_H
#define LOG_H

#include "dwa.h"

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
	LOG_TRACE
};

extern int	log_level;

int	 log_open(const char *, int, const char *, char **);
int	 log_reopen(char **);
void	 log_close(void);
void	 log_msg(int, const char *, ...) __printflike(2, 3);
char	*log_escape(const char *);
__dead void fatal(const char *, ...) __printflike(1, 2);
__dead void fatalx(const char *, ...) __printflike(1, 2);

/* Check the level before formatting anything. */
#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) do {						\
	if (log_level >= LOG_INFO)					\
		log_msg(LOG_INFO, __VA_ARGS__);				\
} while (0)
#define log_debug(...) do {						\
	if (log_level >= LOG_DEBUG)					\
		log_msg(LOG_DEBUG, __VA_ARGS__);			\
} while (0)
#define log_trace(...) do {						\
	if (log_level >= LOG_TRACE)					\
		log_msg(LOG_TRACE, __VA_ARGS__);			\
} while (0)

#endif /* LOG_H */
