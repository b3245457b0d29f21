#!/usr/bin/env python3
"""asgi_serve.py: serve contrib/backends/asgi_front.py (the front end of the
Modal and Ray apps) with uvicorn on 127.0.0.1, a free port, and the handler
modules given as arguments; prints "listening on 127.0.0.1:PORT".  Needs
starlette and uvicorn (Debian: python3-starlette python3-uvicorn); exits 77
without them.  Stops by itself after 60 s.
"""

import importlib.util
import os
import socket
import sys
import threading

sys.dont_write_bytecode = True
TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
sys.path.insert(0, os.path.join(TOP, "contrib", "backends"))

try:
    import uvicorn
    import asgi_front
except ImportError as e:
    sys.stderr.write("asgi_serve.py: %s\n" % e)
    sys.exit(77)

for i, path in enumerate(sys.argv[1:]):
    spec = importlib.util.spec_from_file_location("dwa_handlers_%d" % i, path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))

sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
srv = uvicorn.Server(uvicorn.Config(asgi_front.make_app(), log_level="warning"))
t = threading.Timer(60, lambda: setattr(srv, "should_exit", True))
t.daemon = True
t.start()
print("listening on 127.0.0.1:%d" % sock.getsockname()[1], flush=True)
srv.run(sockets=[sock])
