#!/usr/bin/env python3
"""server.py: DWA's reference backend, on Python's http.server.

    python3 contrib/backends/server.py [--host 127.0.0.1] [--port 8700]
        [--module FILE.py]... [--no-reference] [--max-seconds N]

Serves the handlers of dwa_backend.py over HTTP/1.1:

    POST /          run the task type named by the body's "type"
    POST /TYPE      run TYPE (the path wins over the body's "type")
    GET  /health    {"status": "ok"}
    GET  /tasks     the registered task types (name, tags, description)

Streams (application/x-ndjson) go out chunk by chunk (Transfer-Encoding:
chunked), each line flushed as the handler reports it.  The reference task
types of reference_tasks.py are loaded unless --no-reference; each --module
FILE.py is loaded after them, and registers its handlers with @task.  Once
bound, it prints "listening on HOST:PORT" on stdout (with --port 0, the port
the system chose).  DWA_BACKEND_TOKEN, when set, is the bearer token every
request but GET /health must carry.  Logs one line a request on stderr.
Standard library only.
"""

import argparse
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Handler modules live in source trees: leave no __pycache__ beside them.
sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import dwa_backend  # noqa: E402

MAX_BODY = 64 * 1024 * 1024


def load_module(path):
    """Import a handler module from a file; its @task calls register it."""
    name = "dwa_handlers_" + os.path.splitext(os.path.basename(path))[0].replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError("not a Python file")
    mod = importlib.util.module_from_spec(spec)
    d = os.path.dirname(os.path.abspath(path))
    if d not in sys.path:
        sys.path.append(d)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle kept-alive connection gives back its thread

    def version_string(self):
        return "dwa-backend"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stderr.flush()

    def _send(self, status, headers, chunks):
        """Send an answer: a list of chunks with a Content-Length, or an
        iterator of chunks, each flushed as it comes."""
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if isinstance(chunks, (list, tuple)):
            body = b"".join(chunks)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for c in chunks:
                if not c:
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self.log_message("client went away mid-stream")
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()

    def _json(self, status, value):
        self._send(status, {"Content-Type": "application/json"},
                   [(json.dumps(value) + "\n").encode()])

    def _path(self):
        return self.path.split("?", 1)[0]

    def do_GET(self):
        path = self._path()
        if path == "/health":
            self._json(200, {"status": "ok"})
        elif path == "/tasks":
            if not dwa_backend.authorized({k.lower(): v for k, v in self.headers.items()}):
                self._json(401, {"status": "failure", "error": {
                    "code": "PERMANENT_ERROR",
                    "message": "unauthorized: missing or wrong bearer token"}})
            else:
                self._json(200, dwa_backend.describe())
        else:
            self._json(404, {"status": "failure", "error": {
                "code": "PERMANENT_ERROR", "message": "no such path: %s" % path}})

    def do_POST(self):
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif n < 0 or n > MAX_BODY:
            self.close_connection = True
            self._json(413 if n > 0 else 400, {"status": "failure", "error": {
                "code": "PERMANENT_ERROR",
                "message": "bad request: body too large or no length"}})
            return
        else:
            body = self.rfile.read(n)
        if body is None:
            self.close_connection = True
            self._json(413, {"status": "failure", "error": {
                "code": "PERMANENT_ERROR", "message": "bad request: body too large"}})
            return
        status, headers, chunks = dwa_backend.handle(body, dict(self.headers.items()),
                                                     self._path())
        self._send(status, headers, chunks)

    def _read_chunked(self):
        """A chunked request body, or None past MAX_BODY."""
        parts, total = [], 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # dwad may open hundreds of connections at once: the default backlog
    # of 5 would leave the kernel retrying SYNs after 1, 2, 4 s.
    request_queue_size = 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description="DWA reference HTTP backend")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8700)
    ap.add_argument("--module", action="append", default=[], metavar="FILE.py",
                    help="load handlers from FILE.py (repeatable)")
    ap.add_argument("--no-reference", action="store_true",
                    help="do not load the reference task types")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="stop by itself after N seconds (tests)")
    args = ap.parse_args(argv)

    mods = [] if args.no_reference else [os.path.join(HERE, "reference_tasks.py")]
    for path in mods + args.module:
        try:
            load_module(path)
        except Exception as e:
            sys.stderr.write("server.py: cannot load %s: %s: %s\n" % (path, type(e).__name__, e))
            return 1
    try:
        srv = Server((args.host, args.port), Handler)
    except OSError as e:
        sys.stderr.write("server.py: cannot listen on %s:%d: %s\n" % (args.host, args.port, e))
        return 1

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.max_seconds > 0:
        t = threading.Timer(args.max_seconds, stop)
        t.daemon = True
        t.start()
    host, port = srv.server_address[:2]
    sys.stdout.write("listening on %s:%d\n" % (host, port))
    sys.stdout.flush()
    sys.stderr.write("server.py: task types: %s\n" % " ".join(dwa_backend.tasks()))
    sys.stderr.flush()
    started = time.time()
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    sys.stderr.write("server.py: stopped after %.0f s\n" % (time.time() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
