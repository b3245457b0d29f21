"""modal_app.py: DWA's backend on Modal, with model-backed task types.

    modal secret create dwa-backend DWA_BACKEND_TOKEN=<a long random token>
    modal deploy contrib/backends/modal_app.py

One ASGI web endpoint (asgi_front.make_app) answers every task type of
model_tasks.py (audio.transcribe, image.detect, text.chat) through
dwa_backend.handle(), as server.py does here: POST / or POST /TYPE, GET
/health, GET /tasks, NDJSON streams for progress and chat tokens.  Give
dwad the URL `modal deploy` prints as MODAL_URL and the token as MODAL_TOKEN
(README.md).  Weights are cached in the Volume "dwa-model-cache", so only
the first cold start downloads them.  DWA_MODAL_GPU picks the GPU at deploy
time (default A10G); DWA_WHISPER_MODEL, DWA_DETECT_MODEL and DWA_CHAT_MODEL
other checkpoints (set them in the secret).
"""

import os

import modal

HERE = os.path.dirname(os.path.abspath(__file__))

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("ffmpeg")
    .pip_install(
        "fastapi[standard]",
        "torch",
        "transformers>=4.44",
        "accelerate",
        "timm",
        "pillow",
    )
    .env({"HF_HOME": "/cache/huggingface"})
    # The handler modules, unchanged: the same files server.py loads.
    .add_local_file(os.path.join(HERE, "dwa_backend.py"), "/root/dwa_backend.py")
    .add_local_file(os.path.join(HERE, "asgi_front.py"), "/root/asgi_front.py")
    .add_local_file(os.path.join(HERE, "model_tasks.py"), "/root/model_tasks.py")
)

app = modal.App("dwa-backend", image=image)
cache = modal.Volume.from_name("dwa-model-cache", create_if_missing=True)


@app.function(
    gpu=os.environ.get("DWA_MODAL_GPU", "A10G"),
    secrets=[modal.Secret.from_name("dwa-backend")],
    volumes={"/cache": cache},
    timeout=15 * 60,
    scaledown_window=5 * 60,
)
@modal.concurrent(max_inputs=8)
@modal.asgi_app()
def web():
    import sys

    sys.path.insert(0, "/root")
    import asgi_front
    import model_tasks  # noqa: F401 - registers the task types

    return asgi_front.make_app()
