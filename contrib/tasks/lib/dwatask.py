# dwatask.py: what every program in contrib/tasks shares.
#
# A task program is run by the exec executor with one JSON object on stdin
# and answers with JSON lines on stdout: {"progress": n}, {"event": name,
# "data": x}, and last {"result": x}.  Its exit status classifies a failure:
# 0 success, 2 bad input (permanent, the message names the field), 75
# transient (worth a retry), 1 any other permanent failure.  The stderr
# text is the error message the engine stores.
#
# main() does the protocol: --describe prints the metadata given to it (the
# JSON `dwa types sync` registers), the input is checked against the
# metadata's "inputs" schema (types, required fields, defaults, enums and
# bounds) before the handler sees it, and SIGTERM stops the running child
# (ffmpeg, convert) before the program exits.
#
# Files a program makes go to out_dir(): "$DWA_TASK_DIR/<step>[-<item>]",
# a directory shared by the steps of one task so that later steps can read
# them; when run by hand (no DWA_TASK_DIR) the current directory.
#
# This file is not executable on purpose: `dwa types sync` registers every
# executable file of the directory it is given.

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

EXIT_PERMANENT = 1
EXIT_BAD_INPUT = 2
EXIT_TRANSIENT = 75

STDERR_TAIL = 2048  # bytes of a child's stderr kept for messages


class TaskError(Exception):
    """A failure of the task; code is the exit status to end with."""

    def __init__(self, message, code=EXIT_PERMANENT):
        Exception.__init__(self, message)
        self.code = code


def bad_input(field, message):
    """A permanent failure naming the input field at fault."""
    return TaskError("%s: %s" % (field, message), EXIT_BAD_INPUT)


def transient(message):
    return TaskError(message, EXIT_TRANSIENT)


# --- output lines ----------------------------------------------------------

_last_progress = [-1]
_out_lock = threading.Lock()


def emit(obj):
    """Print one JSON line on stdout, at once."""
    line = json.dumps(obj, separators=(",", ":"))
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def progress(n):
    """Report progress 0-100; repeats of the same whole number are dropped."""
    n = max(0, min(100, int(n)))
    if n != _last_progress[0]:
        _last_progress[0] = n
        emit({"progress": n})


def event(name, data=None):
    emit({"event": name, "data": data})


# --- input checking ----------------------------------------------------------

_TYPE_NAMES = {
    "string": "a string", "number": "a number", "integer": "an integer",
    "boolean": "a boolean", "object": "an object", "array": "an array",
}


def _json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _check_value(field, v, schema):
    """Check v against one field's schema; return it (integers made int)."""
    t = schema.get("type")
    got = _json_type(v)
    shown = json.dumps(v)
    if t == "integer":
        if got != "number" or (isinstance(v, float) and not v.is_integer()):
            raise bad_input(field, "must be an integer, got %s" % shown)
        v = int(v)
    elif t is not None and t != got:
        raise bad_input(field, "must be %s, got %s" % (_TYPE_NAMES.get(t, t), shown))
    if "enum" in schema and v not in schema["enum"]:
        choices = ", ".join(json.dumps(e) for e in schema["enum"])
        raise bad_input(field, "must be one of %s, got %s" % (choices, shown))
    bounds = (("minimum", "at least", lambda b: v < b),
              ("maximum", "at most", lambda b: v > b),
              ("exclusiveMinimum", "more than", lambda b: v <= b),
              ("exclusiveMaximum", "less than", lambda b: v >= b))
    for key, words, outside in bounds:
        if key in schema and outside(schema[key]):
            raise bad_input(field, "must be %s %s, got %s" % (words, schema[key], shown))
    if t == "string" and len(v) < schema.get("minLength", 0):
        raise bad_input(field, "must not be empty")
    if t == "string" and "pattern" in schema and not re.search(schema["pattern"], v):
        raise bad_input(field, "%s does not look like %s" %
                        (shown, schema.get("example", schema["pattern"])))
    if t == "object" and "properties" in schema:
        v = check_fields(v, schema["properties"], field + ".")
    return v


def check_fields(obj, fields, prefix=""):
    """
    Check obj against a {field: schema} map: required fields present,
    types, enums and bounds; defaults filled in; fields the schema does
    not name are kept (a step's default input carries other steps' fields).
    """
    out = dict(obj)
    for name, schema in fields.items():
        v = obj.get(name)
        if v is None:
            if "default" in schema:
                out[name] = schema["default"]
            elif schema.get("required"):
                raise bad_input(prefix + name, "is required")
            else:
                out.pop(name, None)
            continue
        out[name] = _check_value(prefix + name, v, schema)
    return out


def read_input(describe):
    """Read the JSON object on stdin and check it against the inputs."""
    # The engine writes one line; by hand it may be pretty-printed.
    text = sys.stdin.readline()
    try:
        obj = json.loads(text) if text.strip() else {}
    except ValueError:
        text += sys.stdin.read()
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise TaskError("input: not JSON: %s" % e, EXIT_BAD_INPUT)
    if not isinstance(obj, dict):
        raise TaskError("input: must be a JSON object, got %s" % _json_type(obj),
                        EXIT_BAD_INPUT)
    return check_fields(obj, describe.get("inputs", {}))


# --- files -----------------------------------------------------------------

def input_file(field, path):
    """The absolute path of an existing regular file named by field."""
    p = os.path.abspath(path)
    if not os.path.exists(p):
        raise bad_input(field, "no such file: %s" % path)
    if not os.path.isfile(p):
        raise bad_input(field, "not a regular file: %s" % path)
    if not os.access(p, os.R_OK):
        raise bad_input(field, "cannot read %s" % path)
    return p


def out_dir():
    """Create and return the directory this run's files go to."""
    base = os.environ.get("DWA_TASK_DIR") or os.getcwd()
    step = os.environ.get("DWA_STEP_ID")
    if not step:
        return base
    item = os.environ.get("DWA_ITEM_INDEX")
    sub = re.sub(r"[^A-Za-z0-9._-]", "_", step)
    if sub.startswith("."):
        sub = "_" + sub[1:]
    if item:
        sub += "-" + re.sub(r"[^0-9]", "", item)
    d = os.path.join(base, sub)
    os.makedirs(d, exist_ok=True)
    return d


def out_path(directory, stem, ext, avoid=None):
    """directory/stem.ext, or stem-out.ext when that is the file avoid."""
    p = os.path.join(directory, "%s.%s" % (stem, ext))
    if avoid is not None and os.path.abspath(p) == os.path.abspath(avoid):
        p = os.path.join(directory, "%s-out.%s" % (stem, ext))
    return p


def stem(path):
    s = os.path.splitext(os.path.basename(path))[0]
    return s or "out"


# --- children ----------------------------------------------------------------

_child = [None] # the running child process, for the SIGTERM handler


def _on_sigterm(signo, frame):
    p = _child[0]
    if p is not None and p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    sys.stderr.write("terminated by signal %d\n" % signo)
    sys.stderr.flush()
    # Being stopped says nothing about the input: a retry may succeed.
    os._exit(EXIT_TRANSIENT)


def need(program, package):
    """Fail clearly when a program this task runs is not installed."""
    if shutil.which(program) is None:
        raise TaskError("%s not found in PATH: install %s" % (program, package))


def run(argv, stdout_line=None, stderr_line=None, what=None):
    """
    Run argv to completion, calling stdout_line and stderr_line with each
    line (text, no newline) as it arrives.  Fails permanently with the tail
    of its stderr when it exits non-zero or is killed.  Returns the stderr
    tail.
    """
    what = what or os.path.basename(argv[0])
    tail = collections.deque()
    size = [0]

    def read_err(f):
        for raw in iter(f.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tail.append(line)
            size[0] += len(line) + 1
            while size[0] > STDERR_TAIL and len(tail) > 1:
                size[0] -= len(tail.popleft()) + 1
            if stderr_line is not None:
                stderr_line(line)

    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise TaskError("cannot run %s: %s" % (what, e.strerror))
    _child[0] = p
    t = threading.Thread(target=read_err, args=(p.stderr,), daemon=True)
    t.start()
    for raw in iter(p.stdout.readline, b""):
        if stdout_line is not None:
            stdout_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
    p.wait()
    t.join()
    _child[0] = None
    text = "\n".join(tail).strip()
    if p.returncode < 0:
        raise TaskError("%s killed by signal %d%s" %
                        (what, -p.returncode, ": " + text if text else ""))
    if p.returncode != 0:
        raise TaskError("%s exited with status %d%s" %
                        (what, p.returncode, ": " + text if text else ""))
    return text


def probe(field, path):
    """ffprobe's view of a media file: {"duration", "streams": [...]}."""
    need("ffprobe", "ffmpeg")
    out = []
    try:
        run(["ffprobe", "-v", "error", "-print_format", "json",
             "-show_format", "-show_streams", path], stdout_line=out.append)
    except TaskError as e:
        raise bad_input(field, "not a media file ffprobe can read: %s" %
                        str(e).split(": ", 1)[-1])
    info = json.loads("\n".join(out) or "{}")
    fmt = info.get("format", {})
    try:
        duration = float(fmt.get("duration"))
    except (TypeError, ValueError):
        duration = 0.0
    return {"duration": duration, "format": fmt.get("format_name"),
            "streams": info.get("streams", [])}


def streams(info, kind):
    return [s for s in info["streams"] if s.get("codec_type") == kind]


def ffmpeg(args, duration, stderr_line=None, start=0, end=100):
    """
    Run ffmpeg with args (inputs, filters, outputs), reporting progress
    from start to end as its output time moves through duration seconds.
    """
    need("ffmpeg", "ffmpeg")
    span = end - start

    def on_progress(line):
        k, _, v = line.partition("=")
        if k == "out_time_us" and duration > 0:
            try:
                sec = int(v) / 1e6
            except ValueError:
                return
            progress(start + span * min(1.0, max(0.0, sec / duration)))

    tail = run(["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-y",
                "-loglevel", "info", "-progress", "pipe:1"] + args,
               stdout_line=on_progress, stderr_line=stderr_line, what="ffmpeg")
    progress(end)
    return tail


def fmt_duration(v):
    return round(v, 3)


# --- the protocol --------------------------------------------------------------

def main(describe, handler):
    """Answer --describe, or run handler(input) and print its result."""
    if len(sys.argv) > 1:
        if sys.argv[1] == "--describe" and len(sys.argv) == 2:
            print(json.dumps(describe, indent=1))
            sys.exit(0)
        sys.stderr.write("usage: %s [--describe] < input.json\n" % describe["name"])
        sys.exit(EXIT_BAD_INPUT)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    try:
        inp = read_input(describe)
        result = handler(inp)
    except TaskError as e:
        sys.stderr.write("%s: %s\n" % (describe["name"], e))
        sys.exit(e.code)
    except KeyboardInterrupt:
        sys.exit(EXIT_TRANSIENT)
    emit({"result": result})
    sys.exit(0)
