/*
 * t-util.c: durations and integers, good and bad.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tap.h"
#include "util.h"

static const struct {
	const char	*in;
	int64_t		 ms;	/* -1: must be rejected */
} durations[] = {
	{ "500ms", 500 }, { "30s", 30000 }, { "10m", 600000 },
	{ "2h", 7200000 }, { "7d", 604800000 }, { "1.5s", 1500 },
	{ "0", 0 }, { "45", 45000 }, { "0.25", 250 }, { "1min", 60000 },
	{ "", -1 }, { "abc", -1 }, { "-1s", -1 }, { "10 parsecs", -1 },
	{ "5w", -1 }, { " 5s", -1 }, { "5s ", -1 }, { "+5s", -1 },
	{ "1e400s", -1 },
};

static const struct {
	const char	*in;
	long		 min, max, want;	/* want -1: rejected */
} ints[] = {
	{ "16", 1, 100, 16 }, { "1", 1, 100, 1 }, { "100", 1, 100, 100 },
	{ "0", 1, 100, -1 }, { "101", 1, 100, -1 }, { "x", 1, 100, -1 },
	{ "12x", 1, 100, -1 }, { "", 1, 100, -1 },
	{ "99999999999999999999", 1, 100, -1 },
};

int
main(void)
{
	size_t	 i;
	int64_t	 ms;
	long	 v;
	char	*cause;
	int	 r;

	tap_plan((int)(nitems(durations) + nitems(ints) + 2));
	for (i = 0; i < nitems(durations); i++) {
		cause = NULL;
		ms = -7;
		r = util_parse_duration(durations[i].in, &ms, &cause);
		if (durations[i].ms >= 0)
			tap_ok(r == 0 && ms == durations[i].ms,
			    "duration \"%s\" is %lld ms (got %lld)",
			    durations[i].in, (long long)durations[i].ms,
			    (long long)ms);
		else
			tap_ok(r == -1 && cause != NULL &&
			    strstr(cause, "is not a duration") != NULL,
			    "duration \"%s\" is rejected: %s", durations[i].in,
			    cause != NULL ? cause : "(no message)");
		free(cause);
	}
	for (i = 0; i < nitems(ints); i++) {
		cause = NULL;
		v = -7;
		r = util_parse_int(ints[i].in, ints[i].min, ints[i].max, &v,
		    &cause);
		if (ints[i].want >= 0)
			tap_ok(r == 0 && v == ints[i].want, "int \"%s\"",
			    ints[i].in);
		else
			tap_ok(r == -1 && cause != NULL,
			    "int \"%s\" is rejected: %s", ints[i].in,
			    cause != NULL ? cause : "(no message)");
		free(cause);
	}
	cause = NULL;
	util_parse_int("0", 1, 100, &v, &cause);
	tap_is_str(cause, "0 is out of range (1 to 100)", "range message");
	free(cause);
	tap_ok(util_now_ms() > 0, "monotonic clock");
	return (tap_done());
}
