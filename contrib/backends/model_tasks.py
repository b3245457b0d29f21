"""model_tasks.py: model-backed task types for the GPU backends
(modal_app.py, ray_app.py), written against dwa_backend like any handler
module.

    audio.transcribe  speech to text with Whisper
    image.detect      objects and their boxes (DETR)
    text.chat         a reply from an instruction-tuned language model,
                      streamed token by token as "delta" events

Media come as input.url (http or https), input.data (base64) or
input.path (a file the backend can read: shared storage).  The models are
transformers pipelines, loaded on first use and kept for the life of the
process; DWA_WHISPER_MODEL, DWA_DETECT_MODEL and DWA_CHAT_MODEL choose other
checkpoints.  torch and transformers are imported only when a task runs, so
this module imports anywhere.
"""

import base64
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request

from dwa_backend import PermanentError, TransientError, task

WHISPER_MODEL = os.environ.get("DWA_WHISPER_MODEL", "openai/whisper-small")
DETECT_MODEL = os.environ.get("DWA_DETECT_MODEL", "facebook/detr-resnet-50")
CHAT_MODEL = os.environ.get("DWA_CHAT_MODEL", "Qwen/Qwen2.5-1.5B-Instruct")

_models = {}
_models_lock = threading.Lock()


def _pipeline(kind, model, **kw):
    """The transformers pipeline for (kind, model), loaded once."""
    with _models_lock:
        p = _models.get((kind, model))
        if p is None:
            try:
                import torch
                from transformers import pipeline
            except ImportError as e:
                raise PermanentError("%s: this backend lacks torch/transformers: %s" % (kind, e))
            device = 0 if torch.cuda.is_available() else -1
            dtype = torch.float16 if device == 0 else torch.float32
            try:
                p = pipeline(kind, model=model, device=device, torch_dtype=dtype, **kw)
            except OSError as e:
                # Hub unreachable or a wrong model name: worth another try
                # only in the first case, which we cannot tell apart here.
                raise TransientError("%s: cannot load %s: %s" % (kind, model, e), 30000)
            _models[(kind, model)] = p
        return p


class _Media:
    """A local file holding the input's media; removed on exit."""

    def __init__(self, input, what):
        self.input = input if isinstance(input, dict) else {}
        self.what = what
        self.tmp = None

    def __enter__(self):
        i = self.input
        if isinstance(i.get("path"), str):
            if not os.path.isfile(i["path"]):
                raise PermanentError("input.path: no such file: %s" % i["path"])
            return i["path"]
        fd, self.tmp = tempfile.mkstemp(prefix="dwa-%s-" % self.what)
        with os.fdopen(fd, "wb") as f:
            if isinstance(i.get("data"), str):
                try:
                    f.write(base64.b64decode(i["data"], validate=True))
                except ValueError:
                    raise PermanentError("input.data must be base64")
            elif isinstance(i.get("url"), str) and i["url"].startswith(("http://", "https://")):
                try:
                    with urllib.request.urlopen(i["url"], timeout=60) as r:
                        shutil.copyfileobj(r, f)
                except urllib.error.HTTPError as e:
                    if e.code in (408, 429) or e.code >= 500:
                        raise TransientError("input.url: HTTP %d" % e.code)
                    raise PermanentError("input.url: HTTP %d" % e.code)
                except (urllib.error.URLError, OSError) as e:
                    raise TransientError("input.url: %s" % getattr(e, "reason", e))
            else:
                raise PermanentError("give the %s as input.url (http or https), input.data "
                                     "(base64) or input.path" % self.what)
        return self.tmp

    def __exit__(self, *exc):
        if self.tmp:
            os.unlink(self.tmp)


@task("audio.transcribe", tags=["audio", "ai", "speech"], gpu="A10G", timeout="15m",
      inputs={"url": {"type": "string"}, "data": {"type": "string"},
              "path": {"type": "string"},
              "language": {"type": "string", "description": "e.g. \"en\"; detected when absent"}},
      outputs={"text": {"type": "string"}, "segments": {"type": "array"},
               "model": {"type": "string"}})
def transcribe(input, ctx):
    """Speech to text with Whisper: the whole text and timed segments."""
    with _Media(input, "audio") as path:
        ctx.progress(5)
        asr = _pipeline("automatic-speech-recognition", WHISPER_MODEL, chunk_length_s=30)
        ctx.progress(20)
        kw = {"return_timestamps": True}
        if isinstance(input.get("language"), str):
            kw["generate_kwargs"] = {"language": input["language"], "task": "transcribe"}
        out = asr(path, **kw)
    segs = [{"start": c["timestamp"][0], "end": c["timestamp"][1], "text": c["text"].strip()}
            for c in out.get("chunks", [])]
    return {"text": out["text"].strip(), "segments": segs, "model": WHISPER_MODEL}


@task("image.detect", tags=["image", "ai", "vision"], gpu="T4", timeout="5m",
      inputs={"url": {"type": "string"}, "data": {"type": "string"},
              "path": {"type": "string"},
              "threshold": {"type": "number", "description": "minimum score (default 0.5)"}},
      outputs={"objects": {"type": "array"}, "count": {"type": "integer"},
               "model": {"type": "string"}})
def detect(input, ctx):
    """Objects in an image: label, score and box (x, y, width, height)."""
    th = input.get("threshold", 0.5) if isinstance(input, dict) else 0.5
    if isinstance(th, bool) or not isinstance(th, (int, float)) or not 0 <= th <= 1:
        raise PermanentError("input.threshold must be a number from 0 to 1")
    with _Media(input, "image") as path:
        det = _pipeline("object-detection", DETECT_MODEL)
        ctx.progress(30)
        try:
            found = det(path, threshold=th)
        except (OSError, ValueError) as e:
            raise PermanentError("input: not an image: %s" % e)
    objs = [{"label": o["label"], "score": round(float(o["score"]), 4),
             "box": {"x": o["box"]["xmin"], "y": o["box"]["ymin"],
                     "width": o["box"]["xmax"] - o["box"]["xmin"],
                     "height": o["box"]["ymax"] - o["box"]["ymin"]}} for o in found]
    return {"objects": objs, "count": len(objs), "model": DETECT_MODEL}


@task("text.chat", tags=["text", "chat", "ai"], gpu="A10G", timeout="5m",
      inputs={"prompt": {"type": "string"}, "messages": {"type": "array"},
              "maxTokens": {"type": "integer"}, "temperature": {"type": "number"}},
      outputs={"reply": {"type": "string"}, "model": {"type": "string"}})
def chat(input, ctx):
    """A reply from an instruction-tuned language model, streamed as
    "delta" events."""
    if not isinstance(input, dict):
        raise PermanentError("input must be an object")
    if isinstance(input.get("prompt"), str):
        msgs = [{"role": "user", "content": input["prompt"]}]
    elif isinstance(input.get("messages"), list) and input["messages"]:
        msgs = input["messages"]
    else:
        raise PermanentError("input.prompt or input.messages is required")
    max_tokens = input.get("maxTokens", 256)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or \
            not 1 <= max_tokens <= 4096:
        raise PermanentError("input.maxTokens must be an integer from 1 to 4096")
    temp = float(input.get("temperature", 0.7))
    gen = _pipeline("text-generation", CHAT_MODEL)
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(gen.tokenizer, skip_prompt=True, skip_special_tokens=True)
    prompt = gen.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    err = []

    def run():
        try:
            gen(prompt, max_new_tokens=max_tokens, do_sample=temp > 0,
                temperature=max(temp, 1e-3), streamer=streamer, return_full_text=False)
        except Exception as e:  # reported below, after the stream ends
            err.append(e)
            streamer.end()

    threading.Thread(target=run, daemon=True).start()
    parts = []
    for piece in streamer:
        if piece:
            parts.append(piece)
            yield {"event": "delta", "data": {"text": piece}}
        if ctx.cancelled:
            break
    if err:
        raise TransientError("text.chat: generation failed: %s" % err[0])
    return {"reply": "".join(parts).strip(), "model": CHAT_MODEL}
