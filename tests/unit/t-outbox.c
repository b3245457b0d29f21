/*
 * t-outbox.c: the webhook signature, against RFC 4231's HMAC-SHA256
 * vectors and a body with bytes a text function would mangle.
 */
#include <stdlib.h>

#include "outbox.h"
#include "tap.h"

int
main(void)
{
	char	*sig;

	tap_plan(3);
	sig = outbox_signature("Jefe", "what do ya want for nothing?", 28);
	tap_is_str(sig, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
	    "RFC 4231 test case 2");
	free(sig);
	sig = outbox_signature("key",
	    "The quick brown fox jumps over the lazy dog", 43);
	tap_is_str(sig, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
	    "the well-known fox vector");
	free(sig);
	sig = outbox_signature("s3cret", "{\"a\":\"\xc3\xa9\"}", 10);
	tap_ok(sig != NULL && strlen(sig) == 64, "64 hex digits for a UTF-8 body");
	free(sig);
	return (tap_done());
}
