/*
 * util.h: small parsers shared by dwad, dwa and the tests.
 */
#ifndef UTIL_H
#define UTIL_H

#include <stdint.h>

#include "dwa.h"

int	 util_parse_duration(const char *, int64_t *, char **);
int	 util_parse_int(const char *, long, long, long *, char **);
int64_t	 util_now_ms(void);

#endif /* UTIL_H */
