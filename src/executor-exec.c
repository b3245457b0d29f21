/*
 * executor-exec.c: task types that are local programs.
 *
 * A run is a child process in a process group of its own, in a private
 * work directory, with the step's input on stdin and three pipes driven by
 * bufferevents on the daemon's loop.  Each stdout line is a JSON object:
 * {"progress": n} is reported as it comes, {"result": x} or else the last
 * object is the output.  A run ends only when the child has exited (SIGCHLD,
 * reaped with waitpid(WNOHANG)) *and* stdout and stderr reached EOF, so no
 * output is lost.  Exit 0 succeeds, 75 is a transient failure, anything else (or a
 * bad stdout line) a permanent one, with the last 4 KiB of stderr kept.
 * An aborted run (timeout, cancel, lost lease) gets SIGTERM to its group and
 * SIGKILL two seconds later; it stays on the list until it is reaped, so no
 * zombie is left behind.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "executor.h"
#include "log.h"
#include "xmalloc.h"

#define PROC_ERR_TAIL		4096
#define PROC_MAX_LINE		(1024 * 1024)
#define PROC_KILL_AFTER_S	2
#define PROC_EXIT_TRANSIENT	75

struct proc_run {
	pid_t			 pid;
	struct bufferevent	*in;
	struct bufferevent	*out;
	struct bufferevent	*err;
	char			*workdir;
	json_t			*output;	/* {"result"} or the last object */
	int			 have_result;
	char			*bad;		/* a permanent error seen on stdout */
	char			 tail[PROC_ERR_TAIL];
	size_t			 tail_len;
	int			 exited;
	int			 status;
	int			 out_eof;
	int			 aborted;	/* callbacks off; waiting to reap */
	char			*stopped;	/* why it was terminated, if it was */
	struct event		*kill_ev;
	exec_done_cb		*cb;
	exec_progress_cb	*pcb;
	exec_event_cb		*ecb;
	void			*arg;
	TAILQ_ENTRY(proc_run)	 entry;
};
TAILQ_HEAD(proc_runs, proc_run);

static struct proc_runs	 procs = TAILQ_HEAD_INITIALIZER(procs);
static struct event	*proc_sigchld;
static struct event_base *proc_base;
static char		*proc_root;
static int		 proc_keep;

static int
proc_rm_cb(const char *path, const struct stat *sb __unused, int flag __unused,
    struct FTW *ftw __unused)
{
	remove(path);
	return (0);
}

static void
proc_rmdir(const char *dir)
{
	if (dir != NULL)
		nftw(dir, proc_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void
proc_close_pipes(struct proc_run *p)
{
	if (p->in != NULL)
		bufferevent_free(p->in);
	if (p->out != NULL)
		bufferevent_free(p->out);
	if (p->err != NULL)
		bufferevent_free(p->err);
	p->in = p->out = p->err = NULL;
}

static void
proc_free(struct proc_run *p)
{
	TAILQ_REMOVE(&procs, p, entry);
	proc_close_pipes(p);
	if (p->kill_ev != NULL)
		event_free(p->kill_ev);
	json_decref(p->output);
	free(p->bad);
	free(p->stopped);
	free(p->workdir);
	free(p);
}

/* Keep the last PROC_ERR_TAIL bytes of stderr. */
static void
proc_tail_add(struct proc_run *p, const char *data, size_t len)
{
	if (len >= PROC_ERR_TAIL) {
		memcpy(p->tail, data + len - PROC_ERR_TAIL, PROC_ERR_TAIL);
		p->tail_len = PROC_ERR_TAIL;
		return;
	}
	if (p->tail_len + len > PROC_ERR_TAIL) {
		memmove(p->tail, p->tail + (p->tail_len + len - PROC_ERR_TAIL),
		    PROC_ERR_TAIL - len);
		p->tail_len = PROC_ERR_TAIL - len;
	}
	memcpy(p->tail + p->tail_len, data, len);
	p->tail_len += len;
}

static void
proc_err_read(struct proc_run *p)
{
	struct evbuffer	*buf;
	char		 chunk[PROC_ERR_TAIL];
	int		 n;

	if (p->err == NULL)
		return;
	buf = bufferevent_get_input(p->err);
	while ((n = evbuffer_remove(buf, chunk, sizeof chunk)) > 0)
		proc_tail_add(p, chunk, n);
}

/* The run is over when the child exited and stdout is drained. */
static void
proc_maybe_done(struct proc_run *p)
{
	enum exec_outcome	 outcome;
	exec_done_cb		*cb = p->cb;
	void			*arg = p->arg;
	json_t			*output = NULL;
	char			*msg = NULL, *tail;
	int			 code;

	/* Exited, and both stdout and stderr drained to their ends. */
	if (p->aborted || !p->exited || !p->out_eof || p->err != NULL)
		return;
	tail = xstrndup(p->tail, p->tail_len);
	while (*tail != '\0' && tail[strlen(tail) - 1] == '\n')
		tail[strlen(tail) - 1] = '\0';
	if (p->stopped != NULL) {
		outcome = EXEC_TRANSIENT;
		xasprintf(&msg, "%s%s%s", p->stopped, *tail != '\0' ? ": " : "",
		    tail);
	} else if (WIFEXITED(p->status)) {
		code = WEXITSTATUS(p->status);
		if (code == 0 && p->bad == NULL) {
			outcome = EXEC_OK;
			output = p->output != NULL ? json_incref(p->output) :
			    json_null();
		} else if (p->bad != NULL) {
			outcome = EXEC_PERMANENT;
			msg = xstrdup(p->bad);
		} else {
			outcome = code == PROC_EXIT_TRANSIENT ? EXEC_TRANSIENT :
			    EXEC_PERMANENT;
			xasprintf(&msg, "exit status %d%s%s", code,
			    *tail != '\0' ? ": " : "", tail);
		}
	} else {
		outcome = EXEC_TRANSIENT;
		xasprintf(&msg, "killed by signal %d%s%s",
		    WIFSIGNALED(p->status) ? WTERMSIG(p->status) : 0,
		    *tail != '\0' ? ": " : "", tail);
	}
	free(tail);
	if (outcome == EXEC_OK && !proc_keep)
		proc_rmdir(p->workdir);
	proc_free(p);
	cb(arg, outcome, output, msg);
	json_decref(output);
	free(msg);
}

/* One stdout line. */
static void
proc_line(struct proc_run *p, const char *line)
{
	json_t		*obj, *v;
	json_error_t	 jerr;

	if (*line == '\0' || p->bad != NULL)
		return;
	obj = json_loads(line, 0, &jerr);
	if (!json_is_object(obj)) {
		xasprintf(&p->bad, "stdout line is not a JSON object: %.120s",
		    line);
		json_decref(obj);
		return;
	}
	if ((v = json_object_get(obj, "progress")) != NULL &&
	    json_is_number(v) && json_object_size(obj) == 1) {
		if (p->pcb != NULL)
			p->pcb(p->arg, (int)json_number_value(v));
	} else if (json_is_string(v = json_object_get(obj, "event")) &&
	    json_object_size(obj) <= 2 && (json_object_size(obj) == 1 ||
	    json_object_get(obj, "data") != NULL)) {
		if (p->ecb != NULL)
			p->ecb(p->arg, json_string_value(v),
			    json_object_get(obj, "data"));
	} else if ((v = json_object_get(obj, "result")) != NULL &&
	    json_object_size(obj) == 1) {
		json_decref(p->output);
		p->output = json_incref(v);
		p->have_result = 1;
	} else if (!p->have_result) {
		json_decref(p->output);
		p->output = json_incref(obj);
	}
	json_decref(obj);
}

static void
proc_out_read_cb(struct bufferevent *bev, void *arg)
{
	struct proc_run	*p = arg;
	struct evbuffer	*buf = bufferevent_get_input(bev);
	size_t		 len;
	char		*line;

	while ((line = evbuffer_readln(buf, &len, EVBUFFER_EOL_LF)) != NULL) {
		proc_line(p, line);
		free(line);
	}
	if (evbuffer_get_length(buf) > PROC_MAX_LINE) {
		if (p->bad == NULL)
			xasprintf(&p->bad, "stdout line longer than %d bytes",
			    PROC_MAX_LINE);
		evbuffer_drain(buf, evbuffer_get_length(buf));
	}
}

static void
proc_out_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct proc_run	*p = arg;
	struct evbuffer	*buf = bufferevent_get_input(bev);
	char		*rest;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	proc_out_read_cb(bev, p);
	/* A last line without a newline. */
	if (evbuffer_get_length(buf) > 0) {
		rest = xcalloc(1, evbuffer_get_length(buf) + 1);
		evbuffer_remove(buf, rest, evbuffer_get_length(buf));
		proc_line(p, rest);
		free(rest);
	}
	bufferevent_free(p->out);
	p->out = NULL;
	p->out_eof = 1;
	proc_maybe_done(p);
}

static void
proc_err_read_cb(struct bufferevent *bev __unused, void *arg)
{
	proc_err_read(arg);
}

static void
proc_err_event_cb(struct bufferevent *bev __unused, short what, void *arg)
{
	struct proc_run	*p = arg;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	proc_err_read(p);
	bufferevent_free(p->err);
	p->err = NULL;
	proc_maybe_done(p);
}

/* stdin written (or the child closed it): close our end. */
static void
proc_in_write_cb(struct bufferevent *bev __unused, void *arg)
{
	struct proc_run	*p = arg;

	if (p->in != NULL && evbuffer_get_length(bufferevent_get_output(p->in)) == 0) {
		bufferevent_free(p->in);
		p->in = NULL;
	}
}

static void
proc_in_event_cb(struct bufferevent *bev __unused, short what __unused,
    void *arg)
{
	struct proc_run	*p = arg;

	if (p->in != NULL) {
		bufferevent_free(p->in);
		p->in = NULL;
	}
}

static void
proc_sigchld_cb(evutil_socket_t sig __unused, short events __unused,
    void *arg __unused)
{
	struct proc_run	*p, *next;
	pid_t		 pid;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		TAILQ_FOREACH_SAFE(p, &procs, entry, next) {
			if (p->pid != pid)
				continue;
			p->exited = 1;
			p->status = status;
			if (p->aborted) {
				if (!proc_keep)
					proc_rmdir(p->workdir);
				proc_free(p);
			} else
				proc_maybe_done(p);
			break;
		}
	}
}

/* Set up the executor: the SIGCHLD handler and the work directory root. */
void
executor_exec_init(struct event_base *base, const char *root, int keep)
{
	proc_base = base;
	proc_keep = keep;
	proc_root = xstrdup(root);
	proc_sigchld = evsignal_new(base, SIGCHLD, proc_sigchld_cb, NULL);
	event_add(proc_sigchld, NULL);
}

/* Kill and forget every child (at exit). */
void
executor_exec_shutdown(void)
{
	struct proc_run	*p;

	while ((p = TAILQ_FIRST(&procs)) != NULL) {
		kill(-p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		proc_free(p);
	}
	if (proc_sigchld != NULL)
		event_free(proc_sigchld);
	proc_sigchld = NULL;
	free(proc_root);
	proc_root = NULL;
}

static struct bufferevent *
proc_bev(int fd, bufferevent_data_cb rcb, bufferevent_data_cb wcb,
    bufferevent_event_cb ecb, struct proc_run *p, short enable)
{
	struct bufferevent	*bev;

	evutil_make_socket_nonblocking(fd);
	bev = bufferevent_socket_new(proc_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		fatalx("bufferevent_socket_new failed");
	bufferevent_setcb(bev, rcb, wcb, ecb, p);
	bufferevent_enable(bev, enable);
	return (bev);
}

/*
 * The directory the steps of a task share (files a step leaves for later
 * ones), created if need be: <root>/task-<id>.  Unlike a run's work
 * directory it outlives the run; executor_task_dirs_prune removes it once
 * the task is done with.  NULL when it cannot be made.
 */
char *
executor_task_dir(int64_t task_id)
{
	char	*dir;

	if (proc_root == NULL)
		return (NULL);
	mkdir(proc_root, 0755);
	xasprintf(&dir, "%s/task-%lld", proc_root, (long long)task_id);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		log_warn("mkdir %s: %s", dir, strerror(errno));
		free(dir);
		return (NULL);
	}
	return (dir);
}

/*
 * The task directories under the root, as a PostgreSQL array of their
 * task ids ("{1,2}"); NULL when there is none.
 */
char *
executor_task_dirs(void)
{
	DIR		*dir;
	struct dirent	*de;
	char		*list = NULL, *next, *end;
	long long	 id;

	if (proc_root == NULL || (dir = opendir(proc_root)) == NULL)
		return (NULL);
	while ((de = readdir(dir)) != NULL) {
		if (strncmp(de->d_name, "task-", 5) != 0)
			continue;
		id = strtoll(de->d_name + 5, &end, 10);
		if (*end != '\0' || end == de->d_name + 5 || id <= 0)
			continue;
		xasprintf(&next, "%s%s%lld", list != NULL ? list : "{",
		    list != NULL ? "," : "", id);
		free(list);
		list = next;
	}
	closedir(dir);
	if (list == NULL)
		return (NULL);
	xasprintf(&next, "%s}", list);
	free(list);
	return (next);
}

/* Remove a task's directory and everything in it. */
void
executor_task_dir_remove(int64_t task_id)
{
	char	*dir;

	if (proc_root == NULL)
		return;
	xasprintf(&dir, "%s/task-%lld", proc_root, (long long)task_id);
	proc_rmdir(dir);
	free(dir);
}

/*
 * Start argv with input on stdin and env ("NAME=value" strings, NULL
 * ended; may be NULL) added to the environment.  The run ends through cb
 * (never from inside this call) unless aborted; progress reports go to
 * pcb, streamed events to ecb.  NULL with *cause when the program cannot
 * be started at all (no work directory, no descriptors, no process).
 */
struct proc_run *
executor_exec_start(char *const *argv, char *const *env, json_t *input,
    int64_t run_id, exec_done_cb *cb, exec_progress_cb *pcb,
    exec_event_cb *ecb, void *arg, char **cause)
{
	struct proc_run	*p;
	int		 in[2], out[2], err[2];
	char		*body, *workdir;
	pid_t		 pid;

	/* No work directory, no pipes, no process: the step fails, the
	 * daemon goes on (a full disk or the process limit may pass). */
	in[0] = in[1] = out[0] = out[1] = err[0] = err[1] = -1;
	mkdir(proc_root, 0755);
	xasprintf(&workdir, "%s/run-%lld", proc_root, (long long)run_id);
	proc_rmdir(workdir);
	if (mkdir(workdir, 0700) != 0) {
		xasprintf(cause, "cannot make the work directory %s: %s",
		    workdir, strerror(errno));
		free(workdir);
		return (NULL);
	}
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
	    pipe2(err, O_CLOEXEC) != 0 || (pid = fork()) == -1) {
		xasprintf(cause, "cannot start %s: %s", argv[0],
		    strerror(errno));
		for (int i = 0; i < 2; i++) {
			if (in[i] != -1)
				close(in[i]);
			if (out[i] != -1)
				close(out[i]);
			if (err[i] != -1)
				close(err[i]);
		}
		proc_rmdir(workdir);
		free(workdir);
		return (NULL);
	}
	p = xcalloc(1, sizeof *p);
	p->cb = cb;
	p->pcb = pcb;
	p->ecb = ecb;
	p->arg = arg;
	p->workdir = workdir;
	if (pid == 0) {
		sigset_t	set;

		setpgid(0, 0);
		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		if (chdir(p->workdir) != 0 || dup2(in[0], 0) == -1 ||
		    dup2(out[1], 1) == -1 || dup2(err[1], 2) == -1)
			_exit(126);
		for (; env != NULL && *env != NULL; env++)
			putenv((char *)*env);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	p->pid = pid;
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in = proc_bev(in[1], NULL, proc_in_write_cb, proc_in_event_cb, p,
	    EV_WRITE);
	p->out = proc_bev(out[0], proc_out_read_cb, NULL, proc_out_event_cb,
	    p, EV_READ);
	p->err = proc_bev(err[0], proc_err_read_cb, NULL, proc_err_event_cb,
	    p, EV_READ);
	body = json_dumps(input != NULL ? input : json_null(),
	    EXEC_JSON_FLAGS);
	bufferevent_write(p->in, body, strlen(body));
	bufferevent_write(p->in, "\n", 1);
	free(body);
	TAILQ_INSERT_TAIL(&procs, p, entry);
	log_debug("exec: started %s as pid %ld", argv[0], (long)pid);
	return (p);
}

static void
proc_kill_cb(evutil_socket_t fd __unused, short events __unused, void *arg)
{
	struct proc_run	*p = arg;

	kill(-p->pid, SIGKILL);
}

/*
 * Terminate a run that is still wanted (a timeout): SIGTERM to its process
 * group now, SIGKILL later; it ends through its callback, as a transient
 * failure for reason, only once the process has exited.
 */
void
executor_exec_terminate(struct proc_run *p, const char *reason)
{
	struct timeval	tv = { PROC_KILL_AFTER_S, 0 };

	if (p->stopped != NULL)
		return;
	p->stopped = xstrdup(reason);
	kill(-p->pid, SIGTERM);
	if (p->kill_ev == NULL) {
		p->kill_ev = evtimer_new(proc_base, proc_kill_cb, p);
		evtimer_add(p->kill_ev, &tv);
	}
}

/*
 * Stop a run: SIGTERM to its process group now, SIGKILL later; its
 * callbacks never run.  It is freed once reaped.
 */
void
executor_exec_abort(struct proc_run *p)
{
	struct timeval	tv = { PROC_KILL_AFTER_S, 0 };

	if (p == NULL)
		return;
	p->aborted = 1;
	proc_close_pipes(p);
	if (p->exited) {
		if (!proc_keep)
			proc_rmdir(p->workdir);
		proc_free(p);
		return;
	}
	kill(-p->pid, SIGTERM);
	if (p->kill_ev == NULL) {
		p->kill_ev = evtimer_new(proc_base, proc_kill_cb, p);
		evtimer_add(p->kill_ev, &tv);
	}
}
