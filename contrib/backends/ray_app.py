"""ray_app.py: DWA's backend on Ray Serve, with model-backed task types.

    cd contrib/backends
    DWA_BACKEND_TOKEN=<token> serve run ray_app:app        # try it
    serve build ray_app:app -o serve.yaml                  # for a cluster:
    serve deploy serve.yaml                                # see README.md

Each replica is one deployment whose __call__ gets every HTTP request (a
Starlette Request) and answers through asgi_front.respond(), that is
dwa_backend.handle(): POST / or POST /TYPE, GET /health, GET /tasks, NDJSON
streams as StreamingResponse.  The task types are those of model_tasks.py.
Give dwad the Serve URL (http://HOST:8000/ by default) as RAY_URL.
DWA_RAY_GPUS is the GPUs a replica takes (default 1; 0 for CPU only),
DWA_RAY_REPLICAS how many replicas (default 1).
"""

import os
import sys

from ray import serve
from starlette.requests import Request

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import asgi_front  # noqa: E402
import model_tasks  # noqa: E402,F401 - registers the task types


@serve.deployment(
    num_replicas=int(os.environ.get("DWA_RAY_REPLICAS", "1")),
    ray_actor_options={"num_gpus": float(os.environ.get("DWA_RAY_GPUS", "1"))},
    max_ongoing_requests=8,
)
class Backend:
    """One replica: the task types of model_tasks.py behind HTTP."""

    async def __call__(self, request: Request):
        return await asgi_front.respond(request)


app = Backend.bind()
