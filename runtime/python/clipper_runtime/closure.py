"""Pickled predict functions (closures): the envelope `clipper_runtime.save` writes, and loading one.

A `.pkl` written by `save` is two pickles, one after the other, in one file:

1. a header: one pickled str (protocol 2: the bytes 0x80 0x02 'X', a little-endian u32 length, that
   many bytes of UTF-8 JSON, then '.'), the JSON being
   {"format": "clipper-closure", "format_version": 1, "cloudpickle": "2.2.0", "python": "3.11.2",
    "function": "predict", "module": "predict", "by_value": ["predict", "helpers"], ...};
2. the callable, as `cloudpickle.dumps(fn)` wrote it.

The header needs neither cloudpickle nor Python to read (the image builder reads it in TypeScript to
pin the cloudpickle version), and `pickle.load(open(path, "rb"))` returns its JSON text. A file
without the header is read as one plain pickle of the callable: what Clipper's deployers wrote
(`cloudpickle.dumps(func)` saved as func.pkl), whose cloudpickle version is unknown.

Unpickling runs code from the file: load only pickles you trust.
"""

import json
import platform
import struct
import traceback

FORMAT = "clipper-closure"
FORMAT_VERSION = 1
# PROTO 2, then BINUNICODE: a pickled str whose u32 length follows.
_MAGIC = b"\x80\x02X"
_STOP = b"."
_MAX_HEADER_BYTES = 1 << 20
# Longest exception text quoted in a one-line load error.
_MAX_QUOTE = 300


def encode_header(header):
    """The header's bytes: a protocol-2 pickle of the header's JSON text."""
    text = json.dumps(header, sort_keys=True, ensure_ascii=True).encode("utf-8")
    return _MAGIC + struct.pack("<I", len(text)) + text + _STOP


def read_header(f):
    """Reads the envelope header at the start of the binary file `f`. Returns the header (a dict)
    with `f` positioned at the pickled callable, or None with `f` back at its start when the file
    has no header (a plain pickle)."""
    start = f.tell()
    head = f.read(7)
    header = None
    if len(head) == 7 and head[:3] == _MAGIC:
        length = struct.unpack("<I", head[3:])[0]
        if length <= _MAX_HEADER_BYTES:
            body = f.read(length)
            if len(body) == length and f.read(1) == _STOP:
                try:
                    value = json.loads(body.decode("utf-8"))
                except ValueError:
                    value = None
                if isinstance(value, dict) and value.get("format") == FORMAT:
                    header = value
    if header is None:
        f.seek(start)
    return header


def inspect_file(path):
    """The header of a pickled predict file, or None when it has none."""
    with open(path, "rb") as f:
        return read_header(f)


def python_version():
    return platform.python_version()


def major_minor(version):
    return ".".join(str(version).split(".")[:2])


def version_mismatch(header, runtime_cloudpickle, runtime_python):
    """What differs between the versions a header records and this runtime's: a list of phrases
    (empty when nothing recorded differs). Python is compared by major.minor."""
    differences = []
    saved_cloudpickle = header.get("cloudpickle") if header else None
    saved_python = header.get("python") if header else None
    if saved_cloudpickle and saved_cloudpickle != runtime_cloudpickle:
        differences.append("cloudpickle %s, not %s" % (saved_cloudpickle, runtime_cloudpickle))
    if saved_python and major_minor(saved_python) != major_minor(runtime_python):
        differences.append("Python %s, not %s" % (major_minor(saved_python), major_minor(runtime_python)))
    return differences


def _saved_with(header):
    return "cloudpickle %s on Python %s" % (header.get("cloudpickle") or "(unknown)", header.get("python") or "(unknown)")


def _remedy(header, runtime_cloudpickle, runtime_python):
    """What to do about a version mismatch: re-save with this runtime's versions, or serve it with the
    versions that wrote it."""
    saved_cloudpickle = header.get("cloudpickle")
    saved_python = header.get("python")
    resave = "re-save it with cloudpickle %s on Python %s (python3 -m clipper_runtime.save FILE.py:FUNCTION OUT.pkl " \
             "in the environment that serves it)" % (runtime_cloudpickle, major_minor(runtime_python))
    if saved_cloudpickle and saved_cloudpickle != runtime_cloudpickle:
        pin = "pin cloudpickle==%s" % saved_cloudpickle
        if saved_python and major_minor(saved_python) != major_minor(runtime_python):
            pin += " and Python %s" % major_minor(saved_python)
    else:
        pin = "serve it on Python %s" % major_minor(saved_python)
    return "%s, or %s where it runs" % (resave, pin)


def _quote(error):
    text = " ".join(str(error).split())
    return text if len(text) <= _MAX_QUOTE else text[:_MAX_QUOTE - 3] + "..."


def load_closure(path, warn=None):
    """Loads the callable pickled in `path`. Returns (callable, its name). Raises LoadError, whose
    message names the cloudpickle and Python versions that wrote the file and this runtime's when
    unpickling fails. `warn(message)` is told when those versions differ before loading."""
    from .loader import LoadError, a_type

    with open(path, "rb") as f:
        header = read_header(f)
        if header is not None and int(header.get("format_version", 0) or 0) > FORMAT_VERSION:
            raise LoadError("%s was written by a newer clipper_runtime.save (envelope format %s; this runtime reads %d): "
                            "update the runtime, or re-save the function with this one"
                            % (path, header.get("format_version"), FORMAT_VERSION))
        runtime_python = python_version()
        try:
            import cloudpickle
        except ImportError as e:
            wanted = header.get("cloudpickle") if header else None
            pin = "==%s" % wanted if wanted else ""
            raise LoadError("%s holds a pickled function, which needs cloudpickle to load (%s): install it in the "
                            "model's environment (pip install cloudpickle%s, or apt-get install python3-cloudpickle)"
                            % (path, e, pin))
        runtime_cloudpickle = getattr(cloudpickle, "__version__", "unknown")
        runtime = "cloudpickle %s on Python %s" % (runtime_cloudpickle, runtime_python)
        differences = version_mismatch(header, runtime_cloudpickle, runtime_python)
        if differences and warn is not None:
            warn("%s was saved with %s, but this runtime has %s: it may fail to load or misbehave; %s"
                 % (path, _saved_with(header), runtime, _remedy(header, runtime_cloudpickle, runtime_python)))
        try:
            func = cloudpickle.load(f)
        except (Exception, SystemExit) as e:
            if header is None:
                advice = ("it has no clipper_runtime.save header, so the cloudpickle version that wrote it is unknown "
                          "(this runtime has %s); a pickle usually loads only with the cloudpickle (and Python) version "
                          "that wrote it: install that version, or re-save the function with python3 -m "
                          "clipper_runtime.save" % runtime)
            elif differences:
                advice = ("it was saved with %s and this runtime has %s: %s"
                          % (_saved_with(header), runtime, _remedy(header, runtime_cloudpickle, runtime_python)))
            else:
                advice = ("it was saved with %s, as this runtime has; modules it refers to by name (not pickled by "
                          "value) must be importable here" % _saved_with(header))
            if isinstance(e, ImportError) and getattr(e, "name", None):
                advice += "; module '%s' is not importable here (install it, or ship it next to the pickle)" % e.name
            raise LoadError("cannot unpickle the function in %s: %s: %s; %s" % (path, type(e).__name__, _quote(e), advice),
                            traceback.format_exc())
    if not callable(func):
        raise LoadError("the object pickled in %s is %s, not a callable: pickle the predict function itself "
                        "(python3 -m clipper_runtime.save FILE.py:FUNCTION OUT.pkl)" % (path, a_type(func)))
    name = (header or {}).get("function") or getattr(func, "__qualname__", None) or getattr(func, "__name__", None) \
        or type(func).__name__
    return func, name
