#!/usr/bin/env python3
"""client.py: a small HTTP client for the backend tests.

    client.py URL [--get] [--data TEXT] [--token T] [--header 'Name: value']
              [--expr PYTHON]... [--repeat N]

POSTs --data (GET with --get) to URL and prints, for each --expr, the value
of the Python expression (a string as it is, anything else as compact
JSON), one a line.  The expression sees:

    s      the status
    h      the answer's headers, names in lower case
    t      the body as text
    b      the body parsed: a JSON value, or for application/x-ndjson the
           list of its lines parsed
    ms     for each body line, the milliseconds from the request to its
           arrival (lines are read one by one as they arrive)
    r      a list of (s, h, t, b, ms) for --repeat N requests sent on one
           connection; s, h, t, b, ms are those of the last one

Without --expr it prints s and t.  Standard library only.
"""

import argparse
import http.client
import json
import sys
import time
import urllib.parse


def one(conn, method, path, data, headers):
    t0 = time.monotonic()
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    h = {k.lower(): v for k, v in resp.getheaders()}
    lines, ms = [], []
    while True:
        line = resp.readline()
        if not line:
            break
        ms.append(round((time.monotonic() - t0) * 1000))
        lines.append(line.decode("utf-8"))
    t = "".join(lines)
    b = None
    try:
        if h.get("content-type", "").startswith("application/x-ndjson"):
            b = [json.loads(x) for x in lines if x.strip()]
        else:
            b = json.loads(t)
    except ValueError:
        pass
    return resp.status, h, t, b, ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--get", action="store_true")
    ap.add_argument("--data")
    ap.add_argument("--token")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--expr", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {}
    if a.data is not None:
        headers["Content-Type"] = "application/json"
    if a.token:
        headers["Authorization"] = "Bearer " + a.token
    for hv in a.header:
        k, v = hv.split(":", 1)
        headers[k.strip()] = v.strip()
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    data = a.data.encode("utf-8") if a.data is not None else None
    r = [one(conn, "GET" if a.get else "POST", path, data, headers) for _ in range(a.repeat)]
    s, h, t, b, ms = r[-1]
    env = {"s": s, "h": h, "t": t, "b": b, "ms": ms, "r": r, "json": json}
    for e in a.expr or ["s", "t"]:
        try:
            v = eval(e, env)
        except Exception as ex:
            v = "error: %s: %s" % (type(ex).__name__, ex)
        print(v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":")))


if __name__ == "__main__":
    main()
