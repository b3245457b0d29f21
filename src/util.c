/*
 * util.c: durations ("500ms", "30s", "10m", "2h", "7d") and integers,
 * parsed strictly with messages that say what was expected.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"
#include "xmalloc.h"

/* Parse a duration into milliseconds; a bare number means seconds. */
int
util_parse_duration(const char *s, int64_t *ms, char **cause)
{
	static const struct {
		const char	*unit;
		double		 ms;
	} units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "sec", 1000 }, { "m", 60000 },
		{ "min", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	char	*end;
	double	 v;
	size_t	 i;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s) ||
	    *s == '-' || *s == '+')
		goto bad;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0)
		goto bad;
	if (*end == '\0') {
		*ms = (int64_t)(v * 1000);
		return (0);
	}
	for (i = 0; i < nitems(units); i++) {
		if (strcmp(end, units[i].unit) == 0) {
			if (v * units[i].ms > (double)INT64_MAX / 2)
				goto bad;
			*ms = (int64_t)(v * units[i].ms);
			return (0);
		}
	}
bad:
	xasprintf(cause, "\"%s\" is not a duration (use e.g. 500ms, 30s, "
	    "10m, 2h, 7d)", s != NULL ? s : "");
	return (-1);
}

/* Parse a decimal integer within [min, max]. */
int
util_parse_int(const char *s, long min, long max, long *out, char **cause)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0) {
		xasprintf(cause, "\"%s\" is not a number", s);
		return (-1);
	}
	if (v < min || v > max) {
		xasprintf(cause, "%ld is out of range (%ld to %ld)", v, min, max);
		return (-1);
	}
	*out = v;
	return (0);
}

/* Monotonic milliseconds. */
int64_t
util_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}
