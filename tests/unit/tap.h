/*
 * tap.h: the smallest TAP producer for the C unit tests.
 */
#ifndef TAP_H
#define TAP_H

#include <stdio.h>
#include <string.h>

static int	tap_n;
static int	tap_failed;

#define tap_plan(n)	printf("1..%d\n", (n))
#define tap_ok(cond, ...) do {						\
	int tap_c_ = (cond);						\
	printf("%sok %d - ", tap_c_ ? "" : "not ", ++tap_n);		\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	if (!tap_c_) {							\
		tap_failed = 1;						\
		printf("# failed at %s:%d\n", __FILE__, __LINE__);	\
	}								\
} while (0)
#define tap_is_str(got, want, ...) do {					\
	const char *tap_g_ = (got), *tap_w_ = (want);			\
	tap_ok(tap_g_ != NULL && strcmp(tap_g_, tap_w_) == 0, __VA_ARGS__); \
	if (tap_g_ == NULL || strcmp(tap_g_, tap_w_) != 0)		\
		printf("# got: '%s'\n# expected: '%s'\n",		\
		    tap_g_ != NULL ? tap_g_ : "(null)", tap_w_);	\
} while (0)
#define tap_done()	(tap_failed ? 1 : 0)

#endif /* TAP_H */
