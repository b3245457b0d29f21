"""asgi_front.py: dwa_backend.handle() behind Starlette, for the ASGI hosts
(Modal's asgi_app, Ray Serve).  The same routes as server.py:

    POST /, POST /TYPE    handle()
    GET /health           {"status": "ok"}
    GET /tasks            describe() (bearer token as for POST)

respond(request) answers one Starlette Request; make_app() is a Starlette
app of it.  handle() blocks until it knows the status, so it runs in the
thread pool; a stream's chunks are read from it there too, one by one, as
StreamingResponse does for a plain iterator.
"""

import json

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import dwa_backend


def _json(status, value):
    return Response(json.dumps(value) + "\n", status_code=status,
                    media_type="application/json")


def _path(request):
    """The request path below the app's mount point."""
    path = request.url.path
    root = request.scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root):]
    return path or "/"


async def respond(request):
    """Answer one request as server.py would."""
    path = _path(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if request.method == "GET":
        if path == "/health":
            return _json(200, {"status": "ok"})
        if path == "/tasks":
            if not dwa_backend.authorized(headers):
                return _json(401, {"status": "failure", "error": {
                    "code": "PERMANENT_ERROR",
                    "message": "unauthorized: missing or wrong bearer token"}})
            return _json(200, dwa_backend.describe())
        return _json(404, {"status": "failure", "error": {
            "code": "PERMANENT_ERROR", "message": "no such path: %s" % path}})
    body = await request.body()
    status, rh, chunks = await run_in_threadpool(dwa_backend.handle, body, headers, path)
    if isinstance(chunks, (list, tuple)):
        return Response(b"".join(chunks), status_code=status, headers=rh)
    ctype = rh.pop("Content-Type", dwa_backend.NDJSON)
    # Ask proxies in front of the app not to buffer the stream.
    rh.setdefault("X-Accel-Buffering", "no")
    return StreamingResponse(chunks, status_code=status, headers=rh, media_type=ctype)


def make_app():
    """A Starlette app serving every path with respond()."""
    return Starlette(routes=[
        Route("/", respond, methods=["GET", "POST"]),
        Route("/{rest:path}", respond, methods=["GET", "POST"]),
    ])
