"""handlers.py: task types for the http executor's tests, loaded with
`contrib/backends/server.py --module tests/e2e/backend/handlers.py`.

    t.echo      the input, as a plain 200 JSON answer
    t.envelope  {"status": "success", "data": input}
    t.fail      TransientError or PermanentError as input.kind says
                ("transient", the default, or "permanent"), with
                input.message and input.retryAfterMs (or retry_after_ms)
    t.status    a raw answer: status input.status, body input.body (a
                string as it is, anything else as JSON; none without it),
                Retry-After input.retryAfter, Content-Type
                input.contentType, more headers in input.headers
    t.sleep     sleeps input.seconds, then answers {"slept": seconds}
    t.stream    an NDJSON stream: progress 25, event "partial" {"n": 1},
                progress 75, then {"result": {"done": true}}, input.gapMs
                (default 0) apart; with input.fail ("transient" or
                "permanent") the stream ends after the event with that
                failure instead
    t.progress  a plain handler that reports progress 50 and then answers
                {"ok": true}: it streams because it reported
    t.crash     raises RuntimeError("t.crash: boom"): a handler's bug
    t.whoami    {"authorization": the Authorization header or null, "body":
                the request body as received (text), "headers": all
                request headers, names in lower case}
    t.count     appends one line per call to the file named by env
                DWA_TEST_CALLS: {"runId":..,"taskId":..,"stepId":..,
                "attempt":..,"itemIndex":..} (compact JSON); answers
                {"ok": true}
"""

import json
import os
import threading
import time

from dwa_backend import PermanentError, Reply, TransientError, task

TAGS = ["test"]


@task("t.echo", tags=TAGS, description="return the input")
def echo(input, ctx):
    return input


@task("t.envelope", tags=TAGS, description="a success envelope of the input")
def envelope(input, ctx):
    return Reply(200, {"status": "success", "data": input})


def _obj(input):
    return input if isinstance(input, dict) else {}


@task("t.fail", tags=TAGS, description="fail as input.kind says")
def fail(input, ctx):
    i = _obj(input)
    kind = i.get("kind", "transient")
    msg = i.get("message", "t.fail: %s failure" % kind)
    if kind == "permanent":
        raise PermanentError(msg)
    raise TransientError(msg, i.get("retryAfterMs", i.get("retry_after_ms")))


@task("t.status", tags=TAGS, description="answer a raw HTTP status")
def status(input, ctx):
    i = _obj(input)
    headers = dict(i.get("headers") or {})
    if i.get("retryAfter") is not None:
        headers["Retry-After"] = str(i["retryAfter"])
    if i.get("contentType"):
        headers["Content-Type"] = i["contentType"]
    return Reply(i.get("status", 200), i.get("body"), headers)


@task("t.sleep", tags=TAGS, description="sleep input.seconds")
def sleep(input, ctx):
    s = float(_obj(input).get("seconds", 1))
    end = time.time() + s
    while time.time() < end and not ctx.cancelled:
        time.sleep(min(0.05, max(0, end - time.time())))
    return {"slept": s}


@task("t.stream", tags=TAGS, description="an NDJSON stream: progress, an event, the result")
def stream(input, ctx):
    i = _obj(input)
    gap = float(i.get("gapMs", 0)) / 1000.0
    yield {"progress": 25}
    time.sleep(gap)
    yield {"event": "partial", "data": {"n": 1}}
    time.sleep(gap)
    if i.get("fail") == "permanent":
        raise PermanentError("t.stream: failed after the event")
    if i.get("fail") == "transient":
        raise TransientError("t.stream: failed after the event", i.get("retryAfterMs"))
    yield {"progress": 75}
    time.sleep(gap)
    return {"done": True}


@task("t.progress", tags=TAGS, description="report progress from a plain handler")
def progress(input, ctx):
    ctx.progress(50)
    time.sleep(float(_obj(input).get("gapMs", 0)) / 1000.0)
    return {"ok": True}


@task("t.crash", tags=TAGS, description="raise an exception no handler should")
def crash(input, ctx):
    raise RuntimeError("t.crash: boom")


@task("t.whoami", tags=TAGS, description="the Authorization header and the body as received")
def whoami(input, ctx):
    return {"authorization": ctx.headers.get("authorization"),
            "body": ctx.body.decode("utf-8", "replace"),
            "headers": ctx.headers}


_count_lock = threading.Lock()


@task("t.count", tags=TAGS, description="record each call in $DWA_TEST_CALLS")
def count(input, ctx):
    path = os.environ.get("DWA_TEST_CALLS")
    if not path:
        raise PermanentError("t.count: DWA_TEST_CALLS is not set")
    line = json.dumps({"runId": ctx.run_id, "taskId": ctx.task_id, "stepId": ctx.step_id,
                       "attempt": ctx.attempt, "itemIndex": ctx.item_index},
                      separators=(",", ":"))
    with _count_lock, open(path, "a") as f:
        f.write(line + "\n")
    return {"ok": True}
