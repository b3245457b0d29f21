#!/usr/bin/env python3
"""bench/receiver.py PORT-FILE: a webhook receiver for benchmarks.

Answers every request at once with 204, keeps connections alive, counts
requests, and writes the count to COUNT-FILE (PORT-FILE + ".count") every
100 ms.  Stops by itself after --max-seconds (default 600).
"""
import argparse
import http.server
import os
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        with Handler.lock:
            Handler.count += 1
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port_file")
    ap.add_argument("--max-seconds", type=float, default=600)
    a = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(a.port_file + ".tmp", a.port_file)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    end = time.time() + a.max_seconds
    while time.time() < end:
        with open(a.port_file + ".count.tmp", "w") as f:
            f.write(str(Handler.count))
        os.replace(a.port_file + ".count.tmp", a.port_file + ".count")
        time.sleep(0.1)


if __name__ == "__main__":
    main()
