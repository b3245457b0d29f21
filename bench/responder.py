#!/usr/bin/env python3
"""bench/responder.py PORT-FILE [--delay S]: an http-executor backend for
benchmarks, on asyncio.

Answers every POST with 200 and the JSON {} (the step's output), after
--delay seconds (default 0: at once), over HTTP/1.1 with keep-alive; one
event loop, no thread per connection, so it costs far less per request
than contrib/backends/server.py.  Writes its port to PORT-FILE once bound;
every 100 ms, the number of requests answered to PORT-FILE + ".count" and
the number read but not yet answered to PORT-FILE + ".inflight".
Stops by itself after --max-seconds (default 600).  Standard library only.
"""
import argparse
import asyncio
import os

BODY = b"{}"
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
count = 0
inflight = 0


async def serve(reader, writer, delay):
    global count, inflight
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            n = 0
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    n = int(v)
                elif k == b"transfer-encoding" and b"chunked" in v.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while (await reader.readline()) not in (b"\r\n", b""):
                            pass
                        break
                    await reader.readexactly(size + 2)
            elif n:
                await reader.readexactly(n)
            inflight += 1
            try:
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(ANSWER)
                await writer.drain()
                count += 1
            finally:
                inflight -= 1
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port_file")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--max-seconds", type=float, default=600)
    a = ap.parse_args()
    srv = await asyncio.start_server(lambda r, w: serve(r, w, a.delay),
                                     "127.0.0.1", 0, backlog=1024)
    port = srv.sockets[0].getsockname()[1]
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(a.port_file + ".tmp", a.port_file)
    loop = asyncio.get_running_loop()
    end = loop.time() + a.max_seconds
    while loop.time() < end:
        for ext, n in ((".count", count), (".inflight", inflight)):
            with open(a.port_file + ext + ".tmp", "w") as f:
                f.write(str(n))
            os.replace(a.port_file + ext + ".tmp", a.port_file + ext)
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
