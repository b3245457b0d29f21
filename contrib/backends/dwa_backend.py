"""dwa_backend: the backend side of DWA's http executor, without a framework.

dwad runs a task type whose executor is 'http' by POSTing one JSON request
to a backend and reading the answer (README.md beside this file has the
protocol).  This module is everything a backend needs apart from an HTTP
server: a registry of handlers, filled by the @task decorator, and handle(),
which turns one request into one answer.  server.py (http.server),
modal_app.py and ray_app.py are thin front ends over handle(); handler
modules are shared between them unchanged.

A handler is `def f(input, ctx)`.  What it returns is the step's output; it
fails the step by raising TransientError (dwad retries it) or PermanentError
(it does not).  ctx.progress(n) and ctx.event(name, data) report while it
runs.  A generator function handler yields {"progress": n} and {"event":
name, "data": ...} objects instead (or as well), and returns its output (or
yields it last).  A handler answers as a stream (application/x-ndjson: one
JSON object a line, flushed as it happens, the output or the failure last)
from its first report on; one that fails or finishes before reporting
anything gets a plain answer, so bad input still gets its 422.

The statuses handle() answers:

    200  the output, as it is (JSON); or a stream, whose last line is
         {"result": X} or a failure envelope
    401  DWA_BACKEND_TOKEN is set and the request's bearer token is not it
    400  the body is not a JSON object with a type
    404  no handler for the type
    422  the handler raised PermanentError
    503  the handler raised TransientError (Retry-After when it gave one)
    500  the handler raised anything else: a bug or an outage of the
         backend, which dwad treats as transient and retries

Every answer but a successful one carries a failure envelope:
{"status": "failure", "error": {"code": "TRANSIENT_ERROR" |
"PERMANENT_ERROR", "message": ..., "retryAfterMs": n}}.

Each request runs its handler in a thread of its own, so handle() can return
as soon as it knows the answer's status: when the handler finished, or when
it first reported progress.  A handler keeps running when the client goes
away; a long one may look at ctx.cancelled.
"""

import hmac
import inspect
import json
import math
import os
import queue
import sys
import threading
import traceback

__all__ = [
    "task", "register", "TransientError", "PermanentError", "Reply",
    "Context", "handle", "describe", "authorized", "tasks",
]

NDJSON = "application/x-ndjson"
JSON_TYPE = "application/json"


class TransientError(Exception):
    """The step failed for now: dwad retries it (after retry_after_ms)."""

    def __init__(self, message, retry_after_ms=None):
        super().__init__(message)
        self.message = str(message)
        self.retry_after_ms = retry_after_ms


class PermanentError(Exception):
    """The step failed for good: bad input, a missing file, ..."""

    def __init__(self, message):
        super().__init__(message)
        self.message = str(message)


class Reply:
    """A raw answer, sent as it is: status, body (bytes, str, or a value
    sent as JSON; None for none) and extra headers.  Only honoured when a
    handler returns it before it has reported anything."""

    def __init__(self, status, body=None, headers=None):
        self.status = int(status)
        self.body = body
        self.headers = dict(headers or {})


class Task:
    """One registered task type."""

    def __init__(self, name, fn, tags, description, streaming, meta):
        self.name = name
        self.fn = fn
        self.tags = list(tags)
        self.description = description
        self.generator = inspect.isgeneratorfunction(fn)
        self.streaming = self.generator if streaming is None else bool(streaming)
        self.meta = meta

    def describe(self):
        d = {"name": self.name, "tags": self.tags,
             "description": self.description, "streaming": self.streaming}
        d.update(self.meta)
        return d


_registry = {}
_registry_lock = threading.Lock()


def register(name, fn, tags=(), description="", streaming=None, **meta):
    """Register fn(input, ctx) as the handler of task type name.  meta
    (timeout, gpu, inputs, outputs, ...) is listed by describe()."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError("task type name must be a non-empty string without '/'")
    if not callable(fn):
        raise TypeError("task type %r: handler is not callable" % name)
    if description == "" and fn.__doc__:
        description = inspect.cleandoc(fn.__doc__).split("\n\n")[0].replace("\n", " ")
    with _registry_lock:
        if name in _registry and _registry[name].fn is not fn:
            raise ValueError("task type %r is already registered" % name)
        _registry[name] = Task(name, fn, tags, description, streaming, meta)
    return fn


def task(name, tags=(), description="", streaming=None, **meta):
    """Decorator: @task("text.summarize", tags=["text"], description=...)."""
    def deco(fn):
        return register(name, fn, tags, description, streaming, **meta)
    return deco


def tasks():
    """The registered task type names, sorted."""
    with _registry_lock:
        return sorted(_registry)


def describe():
    """What GET /tasks answers: {"tasks": [{name, tags, description,
    streaming, ...}]}, sorted by name."""
    with _registry_lock:
        return {"tasks": [_registry[n].describe() for n in sorted(_registry)]}


class Context:
    """What a handler knows of its request, and how it reports.

    type, input, task_id, step_id, attempt, run_id, item_index (None unless
    the step is a forEach element): the request's fields.  headers: the
    request's headers, names in lower case.  body: the request body as
    received (bytes).  cancelled: true once the client went away."""

    def __init__(self, name, req, headers, body, emit):
        self.type = name
        self.input = req.get("input")
        self.task_id = req.get("taskId")
        self.step_id = req.get("stepId")
        self.attempt = req.get("attempt")
        self.run_id = req.get("runId")
        self.item_index = req.get("itemIndex")
        self.headers = headers
        self.body = body
        self.cancelled = False
        self._emit = emit

    def progress(self, n):
        """Report progress, a number from 0 to 100."""
        if isinstance(n, bool) or not isinstance(n, (int, float)):
            raise TypeError("progress must be a number")
        self._emit({"progress": max(0, min(100, n))})

    def event(self, name, data=None):
        """Report an event: a name and any JSON value."""
        if not isinstance(name, str) or not name:
            raise TypeError("event name must be a non-empty string")
        self._emit({"event": name, "data": data})


def _dumps(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _failure_body(code, message, retry_after_ms=None):
    err = {"code": code, "message": message}
    if retry_after_ms is not None:
        err["retryAfterMs"] = int(retry_after_ms)
    return {"status": "failure", "error": err}


def _json_answer(status, value, headers=None):
    h = {"Content-Type": JSON_TYPE}
    h.update(headers or {})
    return status, h, [(_dumps(value) + "\n").encode("utf-8")]


def _reject(status, message, headers=None):
    return _json_answer(status, _failure_body("PERMANENT_ERROR", message), headers)


def _looks_like_envelope(v):
    return isinstance(v, dict) and v.get("status") in ("success", "failure")


def _failure_of(exc, name):
    """(status, envelope, headers) for an exception a handler raised."""
    if isinstance(exc, TransientError):
        ms = exc.retry_after_ms
        headers = {}
        if ms is not None:
            headers["Retry-After"] = str(max(1, math.ceil(ms / 1000.0)))
        return 503, _failure_body("TRANSIENT_ERROR", exc.message, ms), headers
    if isinstance(exc, PermanentError):
        return 422, _failure_body("PERMANENT_ERROR", exc.message), {}
    # Not a failure the handler chose: log the traceback, answer 500.
    sys.stderr.write("task type %s: unhandled %s\n" % (name, "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__))))
    sys.stderr.flush()
    msg = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
    return 500, _failure_body("TRANSIENT_ERROR", msg), {}


def authorized(headers):
    """True unless DWA_BACKEND_TOKEN is set and the request's bearer token
    (headers: names in lower case) is not it."""
    token = os.environ.get("DWA_BACKEND_TOKEN", "")
    if not token:
        return True
    got = headers.get("authorization", "")
    if not got.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(got[7:].strip().encode(), token.encode())


def _type_from_path(path):
    """The type a path names: its last segment, or None for '/'."""
    path = (path or "/").split("?", 1)[0].strip("/")
    if not path:
        return None
    return path.rsplit("/", 1)[-1]


_DONE = object()


def _run(t, ctx, q):
    """The handler's thread: puts ("line", obj) for each report, then
    ("done", output) or ("error", exception)."""
    try:
        if t.generator:
            gen = t.fn(ctx.input, ctx)
            last = _DONE
            try:
                while True:
                    if ctx.cancelled:
                        gen.close()
                        return
                    try:
                        v = next(gen)
                    except StopIteration as stop:
                        out = stop.value
                        break
                    if isinstance(v, dict) and ("progress" in v or "event" in v):
                        q.put(("line", v))
                    elif isinstance(v, dict) and set(v) == {"result"}:
                        last = v["result"]
                    else:
                        last = v
            finally:
                gen.close()
            if out is None and last is not _DONE:
                out = last
            q.put(("done", out))
        else:
            q.put(("done", t.fn(ctx.input, ctx)))
    except BaseException as e:  # noqa: B902 - reported, never lost
        q.put(("error", e))


class _NotJSON(Exception):
    """A handler's output or report that JSON cannot hold."""

    def __init__(self, e):
        super().__init__("output is not JSON: %s" % e)


def _line(obj, name):
    try:
        return (_dumps(obj) + "\n").encode("utf-8")
    except (TypeError, ValueError) as e:
        _, env, _ = _failure_of(_NotJSON(e), name)
        return (_dumps(env) + "\n").encode("utf-8")


def _lines(first, q, t, ctx):
    """The stream's lines, from the handler's first report on; a line that
    JSON cannot hold ends the stream with a failure."""
    item = first
    try:
        while True:
            kind, v = item
            if kind == "line":
                b = _line(v, t.name)
                yield b
                if b.startswith(b'{"status":"failure"'):
                    return
            elif kind == "done":
                if isinstance(v, Reply):
                    v = v.body if not isinstance(v.body, (bytes, str)) else None
                yield _line({"result": v}, t.name)
                return
            else:
                _, env, _ = _failure_of(v, t.name)
                yield _line(env, t.name)
                return
            item = q.get()
    finally:
        ctx.cancelled = True


def handle(body, headers, path="/"):
    """Answer one request.  body: the request body (bytes); headers: a
    mapping of its headers; path: the request path, whose last segment,
    when there is one, names the type (it wins over the body's "type", so
    a DWA type may route to a handler of another name).

    Returns (status, headers, chunks): chunks is a list for a whole answer
    (send it with a Content-Length) or an iterator for a stream (send and
    flush each chunk as it comes; close() it if the client goes away)."""
    h = {str(k).lower(): v for k, v in dict(headers).items()}
    if not authorized(h):
        return _reject(401, "unauthorized: missing or wrong bearer token",
                       {"WWW-Authenticate": "Bearer"})
    try:
        req = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError) as e:
        return _reject(400, "bad request: body is not JSON: %s" % e)
    if not isinstance(req, dict):
        return _reject(400, "bad request: body must be a JSON object")
    name = _type_from_path(path) or req.get("type")
    if not isinstance(name, str) or not name:
        return _reject(400, "bad request: body has no type")
    with _registry_lock:
        t = _registry.get(name)
    if t is None:
        return _reject(404, 'unknown task type "%s"' % name)

    q = queue.Queue()

    def emit(obj):
        if not ctx.cancelled:
            q.put(("line", obj))

    ctx = Context(name, req, h, body if isinstance(body, bytes) else body.encode(), emit)
    threading.Thread(target=_run, args=(t, ctx, q), daemon=True,
                     name="dwa-task-%s" % name).start()
    first = q.get()
    if first[0] == "line":
        return 200, {"Content-Type": NDJSON, "Cache-Control": "no-cache"}, \
            _lines(first, q, t, ctx)
    kind, v = first
    if kind == "error":
        status, env, extra = _failure_of(v, name)
        return _json_answer(status, env, extra)
    if isinstance(v, Reply):
        rh = dict(v.headers)
        b = v.body
        if b is None:
            b = b""
        elif isinstance(b, str):
            b = b.encode("utf-8")
            rh.setdefault("Content-Type", "text/plain; charset=utf-8")
        elif not isinstance(b, bytes):
            b = (_dumps(b) + "\n").encode("utf-8")
            rh.setdefault("Content-Type", JSON_TYPE)
        return v.status, rh, [b]
    if _looks_like_envelope(v):
        # An output that reads like an envelope would be taken for one.
        v = {"status": "success", "data": v}
    try:
        return _json_answer(200, v)
    except (TypeError, ValueError) as e:
        status, env, extra = _failure_of(_NotJSON(e), name)
        return _json_answer(status, env, extra)
