/*
 * dwad.c: the daemon: options, start-up checks, the event loop and exit.
 *
 * Start-up order: parse options, connect once (blocking) to check the
 * schema version and log the versions of everything, then run one libevent
 * loop holding five connections (work: registration and claims; finish and
 * finish2: the ends of runs; house: housekeeping and effect deliveries;
 * listen: LISTEN for wake-ups and cancels) and the scheduler.  SIGTERM/SIGINT
 * drain, a second one exits at once; SIGHUP reopens the log file.
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "db.h"
#include "executor.h"
#include "log.h"
#include "http.h"
#include "migrate.h"
#include "outbox.h"
#include "pq.h"
#include "registry.h"
#include "sched.h"
#include "util.h"
#include "xmalloc.h"

static volatile int	 dwad_exiting;
static int		 dwad_signalled;
static struct sched	*dwad_sched;
static struct outbox	*dwad_outbox;
static int64_t		 dwad_grace_ms;

static __dead void
usage(int code)
{
	FILE	*f = code == 0 ? stdout : stderr;

	fprintf(f,
"usage: dwad [OPTIONS]\n"
"\n"
"Run ready steps of DWA tasks from PostgreSQL.\n"
"\n"
"options:\n"
"      --db URL            database (default: DATABASE_URL, PG* variables)\n"
"  -n, --name NAME         name in dwa.workers (default: dwad@HOST:PID)\n"
"  -c, --concurrency N     steps run at once (default: 16)\n"
"  -T, --types PAT,...     serve only the task types matching these globs\n"
"  -Q, --queues Q,...      serve only the steps of these queues\n"
"  -t, --type-limit PAT=N  at most N steps at once of the types matching the\n"
"                          glob PAT (repeatable), e.g. 'video.*=1'\n"
"      --batch N           most steps claimed per query (default: 64)\n"
"      --lease DUR         lease of a running step, renewed at a third (default: 30s)\n"
"      --poll DUR          look for work at least this often (default: 1s)\n"
"      --reap DUR          look for dead daemons this often (default: 1s)\n"
"      --grace DUR         on SIGTERM, wait this long for runs (default: 30s)\n"
"      --outbox-concurrency N  effect deliveries in flight (default: 32)\n"
"      --retention DUR     delete tasks finished longer ago than DUR, with\n"
"                          their steps, events and deliveries (default: keep)\n"
"      --vacuum-every N    vacuum the queue tables after every N steps claimed\n"
"                          (default: 10000; 0: leave them to autovacuum)\n"
"      --tasks DIR         register the task programs in DIR on first start\n"
"                          (default: DWA_TASKS_DIR, else " DWA_TASKS_DIR ")\n"
"      --keep-workdirs     keep the work directories of program runs and\n"
"                          completed tasks (under DWA_WORKDIR, default\n"
"                          /tmp/dwa-work)\n"
"  -l, --log-file PATH     log there instead of stderr (reopened on SIGHUP)\n"
"  -v, --verbose           more log (repeat for trace)\n"
"  -q, --quiet             log warnings and errors only\n"
"  -V, --version           show the version\n"
"  -h, --help              show this help\n"
"\n"
"environment: DATABASE_URL, DWA_WORKDIR; MODAL_URL (and MODAL_TOKEN), RAY_URL\n"
"(and RAY_TOKEN) define the backends modal and ray at start; DWA_WEBHOOK_SECRET,\n"
"DWA_SLACK_WEBHOOK_URL, DWA_DISCORD_WEBHOOK_URL, DWA_SMTP_URL, DWA_SMTP_FROM,\n"
"DWA_INVALIDATE_URL for effects.\n");
	exit(code);
}

static void
die(const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "dwad: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(DWA_EXIT_FAILURE);
}

static int64_t
opt_duration(const char *name, const char *arg, int64_t min)
{
	int64_t	 ms;
	char	*cause;

	if (util_parse_duration(arg, &ms, &cause) != 0) {
		fprintf(stderr, "dwad: --%s: %s\n", name, cause);
		exit(DWA_EXIT_USAGE);
	}
	if (ms < min) {
		fprintf(stderr, "dwad: --%s: must be at least %" PRId64 " ms\n",
		    name, min);
		exit(DWA_EXIT_USAGE);
	}
	return (ms);
}

static int
opt_int(const char *name, const char *arg, long min, long max)
{
	long	 v;
	char	*cause;

	if (util_parse_int(arg, min, max, &v, &cause) != 0) {
		fprintf(stderr, "dwad: --%s: %s\n", name, cause);
		exit(DWA_EXIT_USAGE);
	}
	return ((int)v);
}

/* --types PATTERN,...: the globs of the task types this daemon serves. */
static void
opt_types(struct sched_config *cfg, const char *arg)
{
	char	*copy, *p, *t;

	copy = xstrdup(arg);
	for (p = copy; (t = strsep(&p, ",")) != NULL;) {
		if (*t == '\0')
			continue;
		cfg->serve = xreallocarray(cfg->serve, cfg->nserve + 1,
		    sizeof *cfg->serve);
		cfg->serve[cfg->nserve++] = xstrdup(t);
	}
	free(copy);
	if (cfg->nserve == 0) {
		fprintf(stderr, "dwad: --types: \"%s\" names no type pattern\n",
		    arg);
		exit(DWA_EXIT_USAGE);
	}
}

/*
 * --queues Q,...: the queues this daemon serves, as a PostgreSQL array
 * literal with every name quoted.
 */
static char *
opt_queues(const char *arg)
{
	char	*copy, *p, *t, *lit, *next;
	int	 n = 0;

	copy = xstrdup(arg);
	lit = xstrdup("{");
	for (p = copy; (t = strsep(&p, ",")) != NULL;) {
		if (*t == '\0')
			continue;
		if (strpbrk(t, "\"\\{}") != NULL) {
			fprintf(stderr, "dwad: --queues: \"%s\": a queue name "
			    "must not contain quotes, backslashes or braces\n", t);
			exit(DWA_EXIT_USAGE);
		}
		xasprintf(&next, "%s%s\"%s\"", lit, n++ > 0 ? "," : "", t);
		free(lit);
		lit = next;
	}
	free(copy);
	if (n == 0) {
		fprintf(stderr, "dwad: --queues: \"%s\" names no queue\n", arg);
		exit(DWA_EXIT_USAGE);
	}
	xasprintf(&next, "%s}", lit);
	free(lit);
	return (next);
}

/* --type-limit PATTERN=N */
static void
opt_type_limit(struct sched_config *cfg, const char *arg)
{
	struct sched_type_limit	*tl;
	const char		*eq = strrchr(arg, '=');
	char			*pattern;
	int			 max;

	if (eq == NULL || eq == arg) {
		fprintf(stderr, "dwad: --type-limit: \"%s\" is not PATTERN=N "
		    "(e.g. 'video.*=1')\n", arg);
		exit(DWA_EXIT_USAGE);
	}
	max = opt_int("type-limit", eq + 1, 1, 100000);
	pattern = xstrndup(arg, eq - arg);
	cfg->type_limits = xreallocarray(cfg->type_limits,
	    cfg->ntype_limits + 1, sizeof *cfg->type_limits);
	tl = &cfg->type_limits[cfg->ntype_limits++];
	tl->pattern = pattern;
	tl->max = max;
}

static void
dwad_signal_cb(evutil_socket_t sig, short events __unused, void *arg)
{
	struct event_base	*base = arg;
	char			*cause = NULL;

	switch (sig) {
	case SIGHUP:
		if (log_reopen(&cause) != 0) {
			log_error("%s", cause);
			free(cause);
		} else
			log_info("log reopened");
		break;
	case SIGTERM:
	case SIGINT:
		if (dwad_signalled++ > 0) {
			log_info("second signal: exiting now");
			dwad_exiting = 1;
			event_base_loopbreak(base);
			break;
		}
		sched_drain(dwad_sched);
		outbox_drain(dwad_outbox, dwad_grace_ms);
		break;
	default:
		break;
	}
}

static void
dwad_work_state_cb(struct db *db __unused, int up, void *arg __unused)
{
	sched_db_state(dwad_sched, up);
	outbox_db_state(dwad_outbox, up);
}

static void
dwad_house_state_cb(struct db *db __unused, int up, void *arg __unused)
{
	outbox_db_state(dwad_outbox, up);
}

static void
dwad_listen_state_cb(struct db *db __unused, int up, void *arg)
{
	/* Notifications sent while we were away are lost: look once. */
	if (up)
		sched_wake(arg);
}

static void
dwad_notify_cb(const char *channel, const char *payload, void *arg)
{
	if (strcmp(channel, "dwa_cancel") == 0)
		sched_cancel_task(arg, strtoll(payload, NULL, 10));
	else if (strcmp(channel, "dwa_outbox") == 0)
		outbox_wake(dwad_outbox);
	else if (strcmp(channel, "dwa_expand") == 0)
		sched_expand(arg, strtoll(payload, NULL, 10));
	else
		sched_wake(arg);
}

static void
dwad_libevent_log_cb(int severity, const char *msg)
{
	log_debug("libevent (%d): %s", severity, msg);
}

/*
 * MODAL_URL (MODAL_TOKEN) and RAY_URL (RAY_TOKEN) create or refresh the
 * backends modal and ray.  Only the token's variable name is stored.
 */
static void
dwad_env_backends(PGconn *conn)
{
	static const struct {
		const char	*name, *url_env, *token_env;
	} envs[] = {
		{ "modal", "MODAL_URL", "MODAL_TOKEN" },
		{ "ray", "RAY_URL", "RAY_TOKEN" },
	};
	PGresult	*res;
	const char	*params[3], *url;
	char		*cause;
	size_t		 i;

	for (i = 0; i < sizeof envs / sizeof envs[0]; i++) {
		if ((url = getenv(envs[i].url_env)) == NULL || *url == '\0')
			continue;
		params[0] = envs[i].name;
		params[1] = url;
		params[2] = getenv(envs[i].token_env) != NULL ?
		    envs[i].token_env : NULL;
		res = pq_exec(conn, "SELECT dwa.backend_set($1, $2, $3)", 3,
		    params, &cause);
		if (res == NULL) {
			PQfinish(conn);
			die("%s: %s", envs[i].url_env, cause);
		}
		PQclear(res);
		log_info("backend %s: %s%s", envs[i].name, url, params[2] !=
		    NULL ? " (with a token)" : "");
	}
}

/*
 * Register the task programs of dir (dwa types sync) when none of them is
 * registered yet: the first start of a daemon with a task library.  Later
 * starts leave the registry as users made it.  A program that describes
 * itself badly is reported and skipped.
 */
static void
dwad_tasks(PGconn *conn, const char *dir, int explicit)
{
	PGresult	*res;
	const char	*params[1];
	char		**progs, *cause, *name, *prefix, *real;
	int		 i, n = 0, known;

	if ((progs = registry_programs(dir, &cause)) == NULL) {
		if (explicit)
			die("--tasks: %s: %s", dir, cause);
		free(cause);		/* no library installed: nothing to do */
		return;
	}
	if (progs[0] == NULL || (real = realpath(dir, NULL)) == NULL) {
		registry_programs_free(progs);
		return;
	}
	/* The programs are registered by their absolute paths. */
	xasprintf(&prefix, "%s/%%", real);
	free(real);
	params[0] = prefix;
	res = pq_exec(conn, "SELECT EXISTS (SELECT 1 FROM dwa.task_types "
	    "WHERE executor = 'exec' AND command[1] LIKE $1)", 1, params,
	    &cause);
	free(prefix);
	if (res == NULL) {
		log_warn("task library %s: %s", dir, cause);
		free(cause);
		registry_programs_free(progs);
		return;
	}
	known = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	for (i = 0; !known && progs[i] != NULL; i++) {
		if (registry_sync_one(conn, progs[i], REGISTRY_TIMEOUT_MS, &name,
		    &cause) != 0) {
			log_warn("task library: %s: %s", progs[i], cause);
			free(cause);
			continue;
		}
		log_debug("task library: registered %s (%s)", name, progs[i]);
		free(name);
		n++;
	}
	if (n > 0)
		log_info("task library %s: registered %d task type%s", dir, n,
		    n == 1 ? "" : "s");
	registry_programs_free(progs);
}

/* Check the database once before the loop starts; exit if unusable. */
static void
dwad_check_database(const char *url, const char *tasks, int tasks_explicit)
{
	PGconn		*conn;
	PGresult	*res;
	char		*cause;

	if ((conn = pq_connect(url, "dwad", &cause)) == NULL)
		die("%s", cause);
	if (migrate_check(conn, &cause) != 0) {
		PQfinish(conn);
		die("%s", cause);
	}
	res = pq_exec(conn, "SELECT max(version) FROM dwa.schema_migrations",
	    0, NULL, &cause);
	log_info("PostgreSQL %d, schema %s", PQserverVersion(conn),
	    res != NULL ? PQgetvalue(res, 0, 0) : "?");
	if (res != NULL)
		PQclear(res);
	else
		free(cause);
	dwad_env_backends(conn);
	if (tasks != NULL && *tasks != '\0')
		dwad_tasks(conn, tasks, tasks_explicit);
	PQfinish(conn);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'D' },
		{ "name", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "type-limit", required_argument, NULL, 't' },
		{ "types", required_argument, NULL, 'T' },
		{ "queues", required_argument, NULL, 'Q' },
		{ "batch", required_argument, NULL, 'B' },
		{ "lease", required_argument, NULL, 'L' },
		{ "poll", required_argument, NULL, 'P' },
		{ "reap", required_argument, NULL, 'R' },
		{ "grace", required_argument, NULL, 'G' },
		{ "outbox-concurrency", required_argument, NULL, 'O' },
		{ "keep-workdirs", no_argument, NULL, 'K' },
		{ "retention", required_argument, NULL, 'E' },
		{ "vacuum-every", required_argument, NULL, 'U' },
		{ "tasks", required_argument, NULL, 'S' },
		{ "log-file", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct sched_config	 cfg = {
		.concurrency = 16, .batch = 64, .lease_ms = 30000,
		.poll_ms = 1000, .reap_ms = 1000, .grace_ms = 30000,
		.vacuum_every = 10000,
	};
	struct outbox_config	 ocfg = { .concurrency = 32, .lease_ms = 120000 };
	struct event_base	*base;
	struct event		*ev_term, *ev_int, *ev_hup;
	struct http		*http;
	struct db		*work, *house, *listen, *finish[SCHED_LANES];
	const char		*url = NULL, *log_path = NULL, *tasks = NULL;
	char			*name = NULL, host[256], *cause = NULL;
	int			 ch, i, level = LOG_INFO, keep_workdirs = 0;
	const char		*workdir;

	while ((ch = getopt_long(argc, argv, "n:c:t:T:Q:l:vqVh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'D':
			url = optarg;
			break;
		case 'n':
			if (*optarg == '\0')
				die("--name: must not be empty");
			free(name);
			name = xstrdup(optarg);
			break;
		case 'c':
			cfg.concurrency = opt_int("concurrency", optarg, 1, 100000);
			break;
		case 't':
			opt_type_limit(&cfg, optarg);
			break;
		case 'Q':
			free((char *)cfg.queues);
			cfg.queues = opt_queues(optarg);
			break;
		case 'T':
			opt_types(&cfg, optarg);
			break;
		case 'B':
			cfg.batch = opt_int("batch", optarg, 1, 1000);
			break;
		case 'L':
			cfg.lease_ms = opt_duration("lease", optarg, 1000);
			break;
		case 'P':
			cfg.poll_ms = opt_duration("poll", optarg, 10);
			break;
		case 'R':
			cfg.reap_ms = opt_duration("reap", optarg, 100);
			break;
		case 'G':
			cfg.grace_ms = opt_duration("grace", optarg, 0);
			break;
		case 'S':
			tasks = optarg;
			break;
		case 'E':
			cfg.retention_ms = opt_duration("retention", optarg, 1000);
			break;
		case 'U':
			cfg.vacuum_every = opt_int("vacuum-every", optarg, 0,
			    1000000000);
			break;
		case 'K':
			keep_workdirs = 1;
			break;
		case 'O':
			ocfg.concurrency = opt_int("outbox-concurrency", optarg,
			    1, 10000);
			break;
		case 'l':
			log_path = optarg;
			break;
		case 'v':
			if (level < LOG_TRACE)
				level++;
			break;
		case 'q':
			level = LOG_WARN;
			break;
		case 'V':
			printf("dwad %s\n", DWA_VERSION);
			return (DWA_EXIT_OK);
		case 'h':
			usage(DWA_EXIT_OK);
		default:
			usage(DWA_EXIT_USAGE);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "dwad: unexpected argument '%s'\n", argv[optind]);
		usage(DWA_EXIT_USAGE);
	}
	if (name == NULL) {
		if (gethostname(host, sizeof host) != 0)
			snprintf(host, sizeof host, "unknown");
		host[sizeof host - 1] = '\0';
		xasprintf(&name, "dwad@%s:%ld", host, (long)getpid());
	}
	cfg.name = name;
	dwad_grace_ms = cfg.grace_ms;
	if (log_open("dwad", level, log_path, &cause) != 0)
		die("%s", cause);

	signal(SIGPIPE, SIG_IGN);
	event_set_log_callback(dwad_libevent_log_cb);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (tasks != NULL)
		dwad_check_database(url, tasks, 1);
	else if ((tasks = getenv("DWA_TASKS_DIR")) != NULL && *tasks != '\0')
		dwad_check_database(url, tasks, 1);
	else
		dwad_check_database(url, DWA_TASKS_DIR, 0);

	if ((base = event_base_new()) == NULL)
		die("cannot create the event loop");
	log_info("dwad %s starting: libevent %s (%s), libpq %d, %s, "
	    "jansson %s", DWA_VERSION, event_get_version(),
	    event_base_get_method(base), PQlibVersion(), curl_version(),
	    JANSSON_VERSION);

	if ((workdir = getenv("DWA_WORKDIR")) == NULL || *workdir == '\0')
		workdir = "/tmp/dwa-work";
	executor_exec_init(base, workdir, keep_workdirs);
	cfg.keep_workdirs = keep_workdirs;

	/* The scheduler needs the connection and the connection its owner. */
	work = db_create(base, url, "work", NULL, NULL);
	http = http_create(base);
	cfg.http = http;
	dwad_sched = sched_create(base, work, &cfg);
	dwad_outbox = outbox_create(base, work, http, &ocfg);
	db_set_state_cb(work, dwad_work_state_cb, NULL);
	/* Ends of runs are recorded beside the claims, on server processes
	 * of their own. */
	for (i = 0; i < SCHED_LANES; i++) {
		finish[i] = db_create(base, url, i == 0 ? "finish" :
		    "finish2", NULL, NULL);
		sched_set_finish_db(dwad_sched, i, finish[i]);
	}
	/*
	 * Housekeeping (the reaper, the registry, retention) and effect
	 * deliveries on a connection of their own, so that a claim never
	 * waits behind them; on the work connection while it is down.
	 */
	house = db_create(base, url, "house", dwad_house_state_cb, NULL);
	sched_set_house_db(dwad_sched, house);
	outbox_set_house_db(dwad_outbox, house);
	listen = db_create(base, url, "listen", dwad_listen_state_cb,
	    dwad_sched);
	db_listen(listen, "dwa_wake", dwad_notify_cb, dwad_sched);
	db_listen(listen, "dwa_cancel", dwad_notify_cb, dwad_sched);
	db_listen(listen, "dwa_expand", dwad_notify_cb, dwad_sched);
	db_listen(listen, "dwa_outbox", dwad_notify_cb, dwad_sched);

	ev_term = evsignal_new(base, SIGTERM, dwad_signal_cb, base);
	ev_int = evsignal_new(base, SIGINT, dwad_signal_cb, base);
	ev_hup = evsignal_new(base, SIGHUP, dwad_signal_cb, base);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);

	db_start(work);
	for (i = 0; i < SCHED_LANES; i++)
		db_start(finish[i]);
	db_start(house);
	db_start(listen);
	while (!dwad_exiting) {
		event_base_loop(base, EVLOOP_ONCE);
		sched_after_pass(dwad_sched);
		outbox_after_pass(dwad_outbox, sched_worker_id(dwad_sched));
		if (sched_finished(dwad_sched) && outbox_finished(dwad_outbox))
			dwad_exiting = 1;
	}
	log_info("exiting");

	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	sched_free(dwad_sched);
	executor_exec_shutdown();
	outbox_free(dwad_outbox);
	http_free(http);
	db_free(listen);
	db_free(house);
	for (i = 0; i < SCHED_LANES; i++)
		db_free(finish[i]);
	db_free(work);
	event_base_free(base);
	curl_global_cleanup();
	free(name);
	while (cfg.ntype_limits > 0)
		free(cfg.type_limits[--cfg.ntype_limits].pattern);
	while (cfg.nserve > 0)
		free(cfg.serve[--cfg.nserve]);
	free(cfg.serve);
	free((char *)cfg.queues);
	free(cfg.type_limits);
	log_close();
	return (DWA_EXIT_OK);
}
