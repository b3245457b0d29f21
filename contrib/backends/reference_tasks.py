"""reference_tasks.py: task types the reference backend serves without any
model, so that a DWA installation has something real to call.

    text.summarize  extractive: the sentences whose words are most frequent
    embed.text      a deterministic feature-hashing vector (64 dimensions,
                    unit length): for tests and plumbing, not for meaning
    text.chat       a rule-based reply, streamed word by word: not a model
    image.describe  size, format, mean colour and brightness of an image,
                    through ImageMagick's identify and convert

Speech recognition, detection and real chat need models: modal_app.py and
ray_app.py serve those.  Failures name the input field at fault and are
permanent; a missing ImageMagick is permanent too.
"""

import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

from dwa_backend import PermanentError, TransientError, task

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}")
_STOP = frozenset("""
a an and are as at be been but by for from had has have he her his i if in into is
it its of on or our she so than that the their them then there these they this to
was we were what when which who will with would you your not no do does did can
could should may might must also more most such only over about after before
""".split())


def _words(text):
    return [w.lower() for w in _WORD.findall(text)]


def _need(input, field, kind, default=None, required=True):
    """input[field], checked to be of type kind."""
    if not isinstance(input, dict):
        raise PermanentError("input must be an object")
    v = input.get(field, default)
    if v is None and not required:
        return None
    if v is None or not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        names = {str: "a string", int: "an integer", list: "an array",
                 (int, float): "a number"}
        raise PermanentError("input.%s must be %s" % (field, names.get(kind, str(kind))))
    return v


def _sentences(text):
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s and s.strip()]


@task("text.summarize", tags=["text", "ai"], timeout="1m",
      inputs={"text": {"type": "string", "required": True},
              "sentences": {"type": "integer", "description": "how many (default 3)"}},
      outputs={"summary": {"type": "string"}, "sentences": {"type": "array"},
               "count": {"type": "integer"}})
def summarize(input, ctx):
    """Extractive summary: the input.sentences (default 3) sentences whose
    words are the most frequent in the text, in their original order."""
    text = _need(input, "text", str)
    n = _need(input, "sentences", int, 3)
    if n < 1:
        raise PermanentError("input.sentences must be at least 1")
    sents = _sentences(text)
    freq = {}
    for w in _words(text):
        if w not in _STOP and len(w) > 1:
            freq[w] = freq.get(w, 0) + 1
    top = max(freq.values()) if freq else 1
    scored = []
    for i, s in enumerate(sents):
        ws = [w for w in _words(s) if w in freq]
        score = sum(freq[w] / top for w in ws) / math.sqrt(len(_words(s)) or 1)
        scored.append((score, -i))
    keep = sorted(-i for _, i in sorted(scored, reverse=True)[:n])
    chosen = [sents[i] for i in keep]
    return {"summary": " ".join(chosen), "sentences": chosen, "count": len(sents)}


def _embed(text, dim):
    v = [0.0] * dim
    words = _words(text)
    feats = words + ["%s %s" % p for p in zip(words, words[1:])]
    for f in feats:
        h = hashlib.blake2b(f.encode("utf-8"), digest_size=8).digest()
        idx = int.from_bytes(h[:4], "little") % dim
        v[idx] += 1.0 if h[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in v))
    return [round(x / norm, 6) for x in v] if norm else v


@task("embed.text", tags=["text", "embedding"], timeout="1m",
      inputs={"text": {"type": "string"}, "texts": {"type": "array"},
              "dim": {"type": "integer", "description": "8 to 4096 (default 64)"}},
      outputs={"embedding": {"type": "array"}, "embeddings": {"type": "array"},
               "dim": {"type": "integer"}})
def embed(input, ctx):
    """Deterministic feature-hashing embedding of input.text (or of each of
    input.texts): words and word pairs hashed into a unit vector of
    input.dim (default 64) numbers.  Equal texts give equal vectors; it
    knows nothing of meaning."""
    dim = _need(input, "dim", int, 64)
    if not 8 <= dim <= 4096:
        raise PermanentError("input.dim must be between 8 and 4096")
    if "texts" in input:
        texts = _need(input, "texts", list)
        if not all(isinstance(t, str) for t in texts):
            raise PermanentError("input.texts must be an array of strings")
        return {"embeddings": [_embed(t, dim) for t in texts], "dim": dim}
    return {"embedding": _embed(_need(input, "text", str), dim), "dim": dim}


def _last_user(input):
    if isinstance(input, dict) and isinstance(input.get("prompt"), str):
        return input["prompt"]
    msgs = _need(input, "messages", list)
    for m in reversed(msgs):
        if isinstance(m, dict) and m.get("role", "user") == "user" \
                and isinstance(m.get("content"), str):
            return m["content"]
    raise PermanentError("input.messages has no user message with a string content")


def _reply(text):
    t = text.strip()
    low = t.lower()
    words = [w for w in _words(t) if w not in _STOP]
    if not t:
        return "You sent an empty message."
    if re.match(r"^(hi|hello|hey|good (morning|afternoon|evening))\b", low):
        return "Hello. I am DWA's rule-based reference chat: I answer by rules, not with a model."
    if re.search(r"\b(thanks|thank you)\b", low):
        return "You are welcome."
    if re.search(r"\b(help|what can you do)\b", low):
        return ("I repeat back the key words of your message. Deploy modal_app.py or "
                "ray_app.py for a model-backed text.chat.")
    key = ", ".join(dict.fromkeys(words[:5])) or "nothing I recognise"
    if t.endswith("?"):
        return "You asked about %s. I cannot answer questions: I am rule-based." % key
    return "You wrote %d words about %s." % (len(_words(t)), key)


@task("text.chat", tags=["text", "chat"], timeout="1m",
      inputs={"prompt": {"type": "string"}, "messages": {"type": "array"}},
      outputs={"reply": {"type": "string"}, "model": {"type": "string"}})
def chat(input, ctx):
    """A rule-based reply (no model) to input.prompt or to the last user
    message of input.messages, streamed as "delta" events word by word."""
    reply = _reply(_last_user(input))
    words = reply.split(" ")
    for i, w in enumerate(words):
        yield {"event": "delta", "data": {"text": w if i == 0 else " " + w}}
        yield {"progress": round(100.0 * (i + 1) / len(words), 1)}
    return {"reply": reply, "model": "rule-based"}


def _magick(argv, what):
    if shutil.which(argv[0]) is None:
        raise PermanentError("image.describe: %s not found: install ImageMagick" % argv[0])
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise PermanentError("image.describe: %s: %s" % (what, (p.stderr.strip()
                             or "%s exited %d" % (argv[0], p.returncode))[-500:]))
    return p.stdout.strip()


def _fetch(url, dest):
    try:
        with urllib.request.urlopen(url, timeout=30) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f)
    except urllib.error.HTTPError as e:
        if e.code in (408, 429) or e.code >= 500:
            raise TransientError("image.describe: input.url: HTTP %d" % e.code)
        raise PermanentError("image.describe: input.url: HTTP %d" % e.code)
    except (urllib.error.URLError, OSError) as e:
        raise TransientError("image.describe: input.url: %s" % getattr(e, "reason", e))


@task("image.describe", tags=["image", "vision"], timeout="2m",
      inputs={"path": {"type": "string", "description": "a file the backend can read"},
              "url": {"type": "string", "description": "or an http(s) URL"}},
      outputs={"width": {"type": "integer"}, "height": {"type": "integer"},
               "format": {"type": "string"}, "color": {"type": "string"},
               "brightness": {"type": "number"}, "description": {"type": "string"}})
def describe_image(input, ctx):
    """Size, format, mean colour and brightness of the image at input.path
    (or input.url), with a one-line description made of them (no model)."""
    if not isinstance(input, dict):
        raise PermanentError("input must be an object")
    tmp = None
    try:
        if input.get("path") is not None:
            path = _need(input, "path", str)
            if not os.path.isfile(path):
                raise PermanentError("input.path: no such file: %s" % path)
        else:
            url = _need(input, "url", str)
            if not re.match(r"^https?://", url):
                raise PermanentError("input.url must be an http(s) URL (or give input.path)")
            fd, tmp = tempfile.mkstemp(prefix="dwa-image-")
            os.close(fd)
            _fetch(url, tmp)
            path = tmp
        info = _magick(["identify", "-format", "%w %h %m\n", path + "[0]"], "identify")
        w, h, fmt = info.splitlines()[0].split()
        mean = _magick(["convert", path + "[0]", "-alpha", "off", "-colorspace", "sRGB",
                        "-resize", "1x1!", "-depth", "8", "-format",
                        "%[fx:int(255*r+.5)] %[fx:int(255*g+.5)] %[fx:int(255*b+.5)]",
                        "info:"], "convert")
        r, g, b = (int(x) for x in mean.split())
    finally:
        if tmp:
            os.unlink(tmp)
    # Relative luminance of the mean colour (Rec. 709 weights), 0 to 1.
    bright = round((0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0, 3)
    tone = "dark" if bright < 0.3 else "bright" if bright > 0.7 else "mid-tone"
    hue = _hue_name(r, g, b)
    orient = "square" if w == h else "landscape" if int(w) > int(h) else "portrait"
    return {"width": int(w), "height": int(h), "format": fmt.lower(),
            "color": "#%02x%02x%02x" % (r, g, b), "rgb": [r, g, b], "brightness": bright,
            "description": "a %s, %s %s %s image, %sx%s" % (tone, hue, orient, fmt, w, h)}


def _hue_name(r, g, b):
    hi, lo = max(r, g, b), min(r, g, b)
    if hi - lo < 24:
        return "grey" if 40 < hi < 215 else "black" if hi <= 40 else "white"
    if hi == r:
        return "mostly red" if g < r * 0.6 else "mostly yellow" if b < g * 0.7 else "mostly pink"
    if hi == g:
        return "mostly green" if b < g * 0.8 else "mostly cyan"
    return "mostly blue" if r < b * 0.6 else "mostly purple"
