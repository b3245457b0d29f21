/*
 * t-outbox.c: the webhook signature, against RFC 4231's HMAC-SHA256
 * vectors and a body with bytes a text function would mangle; the URLs a
 * delivery refuses for good, as libcurl would (a malformed URL, a scheme
 * the delivery cannot use); and the timeout kept within its bounds.
 */
#include <stdlib.h>

#include "outbox.h"
#include "tap.h"

/* A URL, whether it is for mail, and the message (NULL: accepted). */
static const struct {
	const char	*url;
	int		 mail;
	const char	*want;
} url_cases[] = {
	{ "http://127.0.0.1:9/hook", 0, NULL },
	{ "https://example.com/a?b=c", 0, NULL },
	{ "HTTP://example.com/", 0, NULL },
	{ "example.com/hook", 0, NULL },	/* libcurl guesses http */
	{ "http://127.0.0.1:9/{{task.id}}", 0, NULL },
	{ "smtp://127.0.0.1:25", 1, NULL },
	{ "smtps://mail.example.com", 1, NULL },
	{ "http://exa mple.com/", 0,
	    "w: URL using bad/illegal format or missing URL (Bad hostname)" },
	{ "http://127.0.0.1:9/x y", 0,
	    "w: URL using bad/illegal format or missing URL (Bad path)" },
	{ "http://[::1", 0,
	    "w: URL using bad/illegal format or missing URL "
	    "(Bad IPv6 address)" },
	{ "http://127.0.0.1:99999/", 0,
	    "w: URL using bad/illegal format or missing URL (Port number "
	    "was not a decimal number between 0 and 65535)" },
	{ "", 0, "w: URL using bad/illegal format or missing URL "
	    "(No host part in the URL)" },
	{ "ftp://127.0.0.1/x", 0,
	    "w: Protocol \"ftp\" not supported (use http or https)" },
	{ "smtp://127.0.0.1:25", 0,
	    "w: Protocol \"smtp\" not supported (use http or https)" },
	{ "http://127.0.0.1:25", 1,
	    "w: Protocol \"http\" not supported (use smtp or smtps)" },
};

int
main(void)
{
	char		*sig, *msg;
	const char	*kind;
	json_t		*e;
	size_t		 i, n = sizeof url_cases / sizeof url_cases[0];

	tap_plan(3 + (int)n + 6);
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

	for (i = 0; i < n; i++) {
		kind = url_cases[i].mail ? "mail" : "http";
		msg = outbox_url_check(url_cases[i].url, url_cases[i].mail,
		    "w");
		if (url_cases[i].want == NULL) {
			tap_ok(msg == NULL, "url check: \"%s\" (%s) is "
			    "accepted", url_cases[i].url, kind);
			if (msg != NULL)
				printf("# got: '%s'\n", msg);
		} else
			tap_is_str(msg, url_cases[i].want, "url check: \"%s\" "
			    "(%s) is refused", url_cases[i].url, kind);
		free(msg);
	}

	e = json_pack("{s:s}", "$event", "notify");
	tap_ok(outbox_timeout_ms(e) == 10000, "timeout: 10 s without one");
	json_decref(e);
	e = json_pack("{s:I}", "timeoutMs", (json_int_t)2500);
	tap_ok(outbox_timeout_ms(e) == 2500, "timeout: timeoutMs as given");
	json_decref(e);
	e = json_pack("{s:I}", "timeoutMs", (json_int_t)60000);
	tap_ok(outbox_timeout_ms(e) == 60000, "timeout: 60 s is allowed");
	json_decref(e);
	e = json_pack("{s:I}", "timeoutMs", (json_int_t)3600000);
	tap_ok(outbox_timeout_ms(e) == 60000, "timeout: an hour is cut to 60s");
	json_decref(e);
	e = json_pack("{s:I}", "timeoutMs", (json_int_t)0);
	tap_ok(outbox_timeout_ms(e) == 100, "timeout: 0 is raised to 100 ms");
	json_decref(e);
	e = json_pack("{s:s}", "timeoutMs", "5s");
	tap_ok(outbox_timeout_ms(e) == 10000, "timeout: 10 s if not a number");
	json_decref(e);
	return (tap_done());
}
