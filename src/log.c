/*
 * log.c: one log stream per process: stderr, or --log-file reopened on
 * SIGHUP so that logrotate can move it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

int		 log_level = LOG_INFO;
static FILE	*log_file;
static char	*log_path;
static char	*log_prog;

static const char *log_names[] = { "error", "warn", "info", "debug", "trace" };

/* Start logging as prog at level, to path (NULL: stderr). */
int
log_open(const char *prog, int level, const char *path, char **cause)
{
	free(log_prog);
	log_prog = xstrdup(prog);
	log_level = level;
	free(log_path);
	log_path = path != NULL ? xstrdup(path) : NULL;
	return (log_reopen(cause));
}

/* Reopen the log file (after rotation); stderr needs nothing. */
int
log_reopen(char **cause)
{
	FILE	*f;

	if (log_path == NULL)
		return (0);
	if ((f = fopen(log_path, "a")) == NULL) {
		xasprintf(cause, "cannot open log file %s: %s", log_path,
		    strerror(errno));
		return (-1);
	}
	setvbuf(f, NULL, _IOLBF, 0);
	if (log_file != NULL)
		fclose(log_file);
	log_file = f;
	return (0);
}

void
log_close(void)
{
	if (log_file != NULL)
		fclose(log_file);
	log_file = NULL;
	free(log_path);
	log_path = NULL;
	free(log_prog);
	log_prog = NULL;
}

static void
log_vmsg(int level, const char *fmt, va_list ap)
{
	FILE		*f = log_file != NULL ? log_file : stderr;
	struct timeval	 tv;
	struct tm	 tm;
	char		 ts[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(f, "%s.%03ld %s[%ld] %s: ", ts, (long)tv.tv_usec / 1000,
	    log_prog != NULL ? log_prog : "dwa", (long)getpid(),
	    log_names[level]);
	vfprintf(f, fmt, ap);
	fputc('\n', f);
}

void
log_msg(int level, const char *fmt, ...)
{
	va_list	ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* Escape control characters of untrusted text; the result is the caller's. */
char *
log_escape(const char *s)
{
	char	*out, *p;
	size_t	 n = strlen(s);

	out = p = xmalloc(n * 4 + 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			p += sprintf(p, "\\%03o", c);
		else
			*p++ = (char)c;
	}
	*p = '\0';
	return (out);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;
	int	 saved = errno;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	log_msg(LOG_ERROR, "fatal: %s: %s", msg, strerror(saved));
	exit(DWA_EXIT_FAILURE);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	log_msg(LOG_ERROR, "fatal: %s", msg);
	exit(DWA_EXIT_FAILURE);
}
