#!/usr/bin/env python3
# receiver.py: an HTTP receiver for the effect tests, on 127.0.0.1.
#
# Records every request as one JSON line appended to --log, before it
# answers: {"time": epoch seconds, "method", "path", "headers": {lower-case
# name: value}, "body": text, "mode": the mode that answered}.  It answers
# as the mode says; the mode is read from --mode-file on each request (so a
# test changes it while the receiver runs), else --mode:
#
#   NNN       status NNN (200, 404, 500, ...) with a small JSON body
#   NNN:S     status NNN with "Retry-After: S" (429:2)
#   hang      hold the request open without answering, until the client
#             gives up (closes the connection) or the receiver stops
#   close     close the connection without answering
#
# The chosen port is written to --port-file (atomically) or, without it,
# printed on stdout.  Stops by itself after --max-seconds, and exits 0 on
# SIGTERM or SIGINT.  Python standard library only.
import argparse
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STOP = threading.Event()
LOG_LOCK = threading.Lock()


def read_mode(args):
    if args.mode_file:
        try:
            with open(args.mode_file) as f:
                m = f.read().strip()
            if m:
                return m
        except OSError:
            pass
    return args.mode


def write_atomic(path, text):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "dwa-test-receiver"

    def log_message(self, fmt, *a):
        pass  # quiet: the JSON log is the record

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(n)
                self.rfile.readline()
            return out
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def record(self, body, mode):
        rec = {
            "time": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", errors="replace"),
            "mode": mode,
        }
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with LOG_LOCK:
            with open(self.server.log_path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()

    def hang(self):
        # Answer nothing; end when the peer closes or the receiver stops.
        sock = self.connection
        while not STOP.is_set():
            r, _, _ = select.select([sock], [], [], 0.1)
            if r:
                try:
                    if not sock.recv(4096, socket.MSG_PEEK):
                        break
                    sock.recv(4096)  # pipelined bytes: drop them
                except OSError:
                    break
        self.close_connection = True

    def handle_any(self):
        body = self.read_body()
        mode = read_mode(self.server.args)
        self.record(body, mode)
        if mode == "hang":
            self.hang()
            return
        if mode == "close":
            self.close_connection = True
            return
        status, _, retry_after = mode.partition(":")
        try:
            code = int(status)
        except ValueError:
            code = 500
        out = json.dumps({"status": code}).encode()
        self.send_response(code)
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = \
        do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description="HTTP receiver for DWA tests")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log", required=True)
    p.add_argument("--mode", default="200")
    p.add_argument("--mode-file")
    p.add_argument("--max-seconds", type=float, default=120)
    args = p.parse_args()

    srv = Server(("127.0.0.1", args.port), Handler)
    srv.args = args
    srv.log_path = args.log
    open(args.log, "a").close()

    def on_signal(signum, frame):
        STOP.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True)
    t.start()
    port = srv.server_address[1]
    if args.port_file:
        write_atomic(args.port_file, "%d\n" % port)
    else:
        print(port, flush=True)

    STOP.wait(args.max_seconds)
    STOP.set()
    srv.shutdown()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
