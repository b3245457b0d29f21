#!/usr/bin/env python3
# smtp-sink.py: a minimal SMTP server for the effect tests, on 127.0.0.1.
#
# Speaks enough SMTP for libcurl: EHLO/HELO, MAIL FROM, RCPT TO, DATA,
# RSET, NOOP, QUIT (no AUTH, no STARTTLS).  Each message accepted with
# DATA is appended to --log as one JSON line: {"time": epoch seconds,
# "from": reverse-path, "to": [forward-paths], "data": the message with
# dot-stuffing undone and CRLF turned into LF, without the final "."}.
#
# The chosen port is written to --port-file (atomically) or, without it,
# printed on stdout.  Stops by itself after --max-seconds, and exits 0 on
# SIGTERM or SIGINT.  Python standard library only (not the deprecated
# smtpd module).
import argparse
import json
import os
import re
import signal
import socketserver
import sys
import threading
import time

STOP = threading.Event()
LOG_LOCK = threading.Lock()
MAX_LINE = 1 << 20
MAX_DATA = 10 << 20
PATH_RE = re.compile(r"^\s*<([^>]*)>(.*)$")


def parse_path(arg):
    """The address of 'FROM:<a@b> SIZE=12' (after the colon), or None."""
    m = PATH_RE.match(arg)
    if m:
        return m.group(1)
    arg = arg.strip().split(" ")[0] if arg.strip() else ""
    return arg or None


class Handler(socketserver.StreamRequestHandler):
    timeout = 60

    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(MAX_LINE)
        if not line:
            return None
        return line.decode("utf-8", errors="replace").rstrip("\r\n")

    def reset(self):
        self.mail_from = None
        self.rcpt_to = []

    def read_data(self):
        """Lines up to the lone ".", dot-stuffing undone; None on EOF."""
        lines, size = [], 0
        while True:
            raw = self.rfile.readline(MAX_LINE)
            if not raw:
                return None
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line == ".":
                return "\n".join(lines) + ("\n" if lines else "")
            if line.startswith("."):
                line = line[1:]
            size += len(line) + 1
            if size <= MAX_DATA:
                lines.append(line)

    def record(self, data):
        rec = {"time": time.time(), "from": self.mail_from,
               "to": list(self.rcpt_to), "data": data}
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with LOG_LOCK:
            with open(self.server.log_path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()

    def handle(self):
        self.reset()
        self.reply("220 localhost dwa-test-smtp-sink ESMTP ready")
        while not STOP.is_set():
            try:
                line = self.readline()
            except OSError:
                return
            if line is None:
                return
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.reset()
                self.reply("250-localhost greets %s" % (arg or "you"))
                self.reply("250-8BITMIME")
                self.reply("250 SIZE %d" % MAX_DATA)
            elif verb == "HELO":
                self.reset()
                self.reply("250 localhost")
            elif verb == "MAIL":
                if not arg.upper().startswith("FROM:"):
                    self.reply("501 syntax: MAIL FROM:<address>")
                    continue
                addr = parse_path(arg[5:])
                if addr is None:
                    self.reply("501 syntax: MAIL FROM:<address>")
                    continue
                self.reset()
                self.mail_from = addr
                self.reply("250 OK")
            elif verb == "RCPT":
                if self.mail_from is None:
                    self.reply("503 need MAIL before RCPT")
                    continue
                if not arg.upper().startswith("TO:"):
                    self.reply("501 syntax: RCPT TO:<address>")
                    continue
                addr = parse_path(arg[3:])
                if not addr:
                    self.reply("501 syntax: RCPT TO:<address>")
                    continue
                self.rcpt_to.append(addr)
                self.reply("250 OK")
            elif verb == "DATA":
                if self.mail_from is None or not self.rcpt_to:
                    self.reply("503 need MAIL and RCPT before DATA")
                    continue
                self.reply("354 end data with <CR><LF>.<CR><LF>")
                data = self.read_data()
                if data is None:
                    return
                self.record(data)
                self.reset()
                self.reply("250 OK: message accepted")
            elif verb == "RSET":
                self.reset()
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "VRFY":
                self.reply("252 cannot verify, will accept")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 command not implemented")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


def write_atomic(path, text):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    p = argparse.ArgumentParser(description="SMTP sink for DWA tests")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log", required=True)
    p.add_argument("--max-seconds", type=float, default=120)
    args = p.parse_args()

    srv = Server(("127.0.0.1", args.port), Handler)
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
