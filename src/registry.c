/*
 * registry.c: discovery of exec task types.  Each program asked is run
 * as PROGRAM --describe with argv (no shell), stdin /dev/null, in a
 * process group of its own so a timeout kills what it started too; its
 * JSON answer is checked and upserted into dwa.task_types as an exec type.
 *
 * This blocks: it polls the pipe until the deadline, then kills, and
 * waits for its own child only (waitpid on that pid), so it is for the
 * CLI and for dwad's start-up before the event loop runs.  It prints
 * nothing; failures come back as causes.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "pq.h"
#include "registry.h"
#include "util.h"
#include "xmalloc.h"

#define REGISTRY_OUT_MAX	(1024 * 1024)	/* cap on a description */

static const char *registry_upsert_sql =
    "INSERT INTO dwa.task_types AS tt (name, executor, command, tags, "
    "  description, timeout, metadata) "
    "VALUES ($1, 'exec', ARRAY[$2::text], "
    "  ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), $4, "
    "  dwa._duration($5::jsonb -> 'timeout', 'timeout'), $5::jsonb) "
    "ON CONFLICT (name) DO UPDATE SET executor = excluded.executor, "
    "  command = excluded.command, tags = excluded.tags, "
    "  description = excluded.description, timeout = excluded.timeout, "
    "  metadata = excluded.metadata, updated_at = now() "
    "  WHERE tt.executor <> 'builtin' "
    "RETURNING name";

/* Kill the child's process group and reap it. */
static void
registry_kill(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

/*
 * In the child: run path --describe with stdout on out and stdin on
 * /dev/null.  If exec fails, send its errno down report and exit 127.
 */
static __dead void
registry_child(const char *path, int out, int report)
{
	sigset_t	set;
	int		devnull, error;

	setpgid(0, 0);
	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);

	/* Keep both pipe ends clear of 0-2 before dup2 onto them. */
	if (out <= STDERR_FILENO)
		out = fcntl(out, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	if (report <= STDERR_FILENO)
		report = fcntl(report, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);

	if ((devnull = open("/dev/null", O_RDONLY)) != -1) {
		dup2(devnull, STDIN_FILENO);
		if (devnull != STDIN_FILENO)
			close(devnull);
	}
	dup2(out, STDOUT_FILENO);
	execl(path, path, "--describe", (char *)NULL);
	error = errno;
	while (write(report, &error, sizeof error) == -1 && errno == EINTR)
		;
	_exit(127);
}

/*
 * Run path --describe; return its stdout (NUL-terminated, the caller
 * frees it) if it exited 0 within timeout_ms, else NULL with *cause.
 */
static char *
registry_describe(const char *path, int timeout_ms, char **cause)
{
	struct pollfd	 pfd;
	int		 fds[2], report[2], status, n, error;
	int64_t		 deadline, left;
	pid_t		 pid, w;
	char		*buf;
	size_t		 len = 0, size = 4096;
	ssize_t		 r;

	if (pipe2(fds, O_CLOEXEC) == -1) {
		xasprintf(cause, "pipe: %s", strerror(errno));
		return (NULL);
	}
	if (pipe2(report, O_CLOEXEC) == -1) {
		xasprintf(cause, "pipe: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return (NULL);
	}
	if ((pid = fork()) == -1) {
		xasprintf(cause, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		close(report[0]);
		close(report[1]);
		return (NULL);
	}
	if (pid == 0)
		registry_child(path, fds[1], report[1]);
	setpgid(pid, pid);
	close(fds[1]);
	close(report[1]);

	/* exec closes report (end of file); a failed exec sends its errno */
	while ((r = read(report[0], &error, sizeof error)) == -1 &&
	    errno == EINTR)
		;
	close(report[0]);
	if (r == sizeof error) {
		close(fds[0]);
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		*cause = xstrdup(strerror(error));
		return (NULL);
	}

	deadline = util_now_ms() + timeout_ms;
	buf = xmalloc(size);
	for (;;) {
		if ((left = deadline - util_now_ms()) <= 0)
			goto timeout;
		pfd.fd = fds[0];
		pfd.events = POLLIN;
		n = poll(&pfd, 1, (int)left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0)
			goto timeout;
		if (len + 1 >= size) {
			if (size > REGISTRY_OUT_MAX) {
				registry_kill(pid);
				close(fds[0]);
				free(buf);
				xasprintf(cause, "description longer than %d "
				    "bytes", REGISTRY_OUT_MAX);
				return (NULL);
			}
			size *= 2;
			buf = xrealloc(buf, size);
		}
		r = read(fds[0], buf + len, size - len - 1);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += r;
	}
	close(fds[0]);
	fds[0] = -1;
	buf[len] = '\0';

	/* stdout is closed; wait for the exit until the same deadline */
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w == -1 && errno != EINTR) {
			free(buf);
			xasprintf(cause, "waitpid: %s", strerror(errno));
			return (NULL);
		}
		if (util_now_ms() >= deadline)
			goto timeout;
		usleep(10000);
	}
	if (WIFSIGNALED(status)) {
		free(buf);
		xasprintf(cause, "killed by signal %d", WTERMSIG(status));
		return (NULL);
	}
	if (WEXITSTATUS(status) != 0) {
		free(buf);
		xasprintf(cause, "exit status %d", WEXITSTATUS(status));
		return (NULL);
	}
	return (buf);

timeout:
	registry_kill(pid);
	if (fds[0] != -1)
		close(fds[0]);
	free(buf);
	xasprintf(cause, "no answer to --describe within %d ms, killed",
	    timeout_ms);
	return (NULL);
}

/* Add tag to the array unless it is there. */
static void
registry_tag_add(json_t *tags, const char *tag)
{
	size_t	 i;
	json_t	*v;

	json_array_foreach(tags, i, v) {
		if (strcmp(json_string_value(v), tag) == 0)
			return;
	}
	json_array_append_new(tags, json_string(tag));
}

/*
 * Check a --describe answer; on success return the tags to store (the
 * caller decrefs) and set *name (borrowed from desc).
 */
static json_t *
registry_check(json_t *desc, const char **name, char **cause)
{
	json_t		*v, *tags, *t;
	size_t		 i;

	if (!json_is_object(desc)) {
		xasprintf(cause, "--describe did not print a JSON object");
		return (NULL);
	}
	v = json_object_get(desc, "name");
	if (!json_is_string(v) || json_string_length(v) == 0) {
		xasprintf(cause, "\"name\" must be a non-empty string");
		return (NULL);
	}
	*name = json_string_value(v);
	v = json_object_get(desc, "description");
	if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
		xasprintf(cause, "\"description\" must be a string");
		return (NULL);
	}
	v = json_object_get(desc, "timeout");
	if (v != NULL && !json_is_null(v) && !json_is_string(v) &&
	    !json_is_number(v)) {
		xasprintf(cause, "\"timeout\" must be a duration such as "
		    "\"5m\" or a number of seconds");
		return (NULL);
	}
	v = json_object_get(desc, "streaming");
	if (v != NULL && !json_is_null(v) && !json_is_boolean(v)) {
		xasprintf(cause, "\"streaming\" must be a boolean");
		return (NULL);
	}
	v = json_object_get(desc, "gpu");
	if (v != NULL && !json_is_null(v) && !json_is_boolean(v) &&
	    !json_is_string(v)) {
		xasprintf(cause, "\"gpu\" must be a string or a boolean");
		return (NULL);
	}
	v = json_object_get(desc, "tags");
	if (v != NULL && !json_is_null(v) && !json_is_array(v)) {
		xasprintf(cause, "\"tags\" must be an array of strings");
		return (NULL);
	}
	tags = json_array();
	json_array_foreach(v, i, t) {
		if (!json_is_string(t) || json_string_length(t) == 0) {
			json_decref(tags);
			xasprintf(cause, "\"tags\" must be an array of "
			    "non-empty strings");
			return (NULL);
		}
		registry_tag_add(tags, json_string_value(t));
	}
	v = json_object_get(desc, "gpu");
	if (json_is_true(v) ||
	    (json_is_string(v) && json_string_length(v) > 0))
		registry_tag_add(tags, "gpu");
	if (json_is_true(json_object_get(desc, "streaming")))
		registry_tag_add(tags, "streaming");
	return (tags);
}

/*
 * Describe and upsert the program at path; 0, or -1 with *cause.  Sets
 * *name on success if name is not NULL.
 */
int
registry_sync_one(PGconn *conn, const char *path, int timeout_ms,
    char **name, char **cause)
{
	json_t		*desc, *tags;
	json_error_t	 error;
	const char	*params[5], *tname, *d;
	char		*out, *tagtext, *desctext;
	PGresult	*res;
	int		 rv = -1;

	if (name != NULL)
		*name = NULL;
	if ((out = registry_describe(path, timeout_ms, cause)) == NULL)
		return (-1);
	desc = json_loads(out, JSON_REJECT_DUPLICATES, &error);
	free(out);
	if (desc == NULL) {
		xasprintf(cause, "--describe did not print JSON: %s (line %d)",
		    error.text, error.line);
		return (-1);
	}
	if ((tags = registry_check(desc, &tname, cause)) == NULL) {
		json_decref(desc);
		return (-1);
	}
	tagtext = json_dumps(tags, JSON_COMPACT);
	desctext = json_dumps(desc, JSON_COMPACT);
	d = json_string_value(json_object_get(desc, "description"));
	params[0] = tname;
	params[1] = path;
	params[2] = tagtext;
	params[3] = d;
	params[4] = desctext;
	res = pq_exec(conn, registry_upsert_sql, 5, params, cause);
	if (res != NULL) {
		if (PQntuples(res) == 1) {
			if (name != NULL)
				*name = xstrdup(tname);
			rv = 0;
		} else
			xasprintf(cause, "type %s is builtin: not replaced",
			    tname);
		PQclear(res);
	}
	free(tagtext);
	free(desctext);
	json_decref(tags);
	json_decref(desc);
	return (rv);
}

static int
registry_namecmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/*
 * The executables directly in dir (regular files, X_OK, not dot-files)
 * as absolute paths, sorted and NULL-terminated; NULL with *cause (which
 * does not repeat dir) if it cannot be read.
 */
char **
registry_programs(const char *dir, char **cause)
{
	struct dirent	 *de;
	struct stat	  sb;
	DIR		 *d;
	char		 *dirpath, *path, **names;
	size_t		  n = 0;

	if ((dirpath = realpath(dir, NULL)) == NULL) {
		*cause = xstrdup(strerror(errno));
		return (NULL);
	}
	if ((d = opendir(dirpath)) == NULL) {
		*cause = xstrdup(strerror(errno));
		free(dirpath);
		return (NULL);
	}
	names = xcalloc(1, sizeof *names);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		xasprintf(&path, "%s/%s", dirpath, de->d_name);
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    access(path, X_OK) == 0) {
			names = xreallocarray(names, n + 2, sizeof *names);
			names[n++] = path;
			names[n] = NULL;
		} else
			free(path);
	}
	closedir(d);
	free(dirpath);
	qsort(names, n, sizeof *names, registry_namecmp);
	return (names);
}

/* Free what registry_programs returned; NULL is fine. */
void
registry_programs_free(char **names)
{
	size_t	i;

	if (names == NULL)
		return;
	for (i = 0; names[i] != NULL; i++)
		free(names[i]);
	free(names);
}
