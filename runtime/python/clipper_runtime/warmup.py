"""Warm-up before a replica takes traffic (runtime/shared/warmup.ts has the design).

CLIPPER_WARMUP_INPUT holds one query input as JSON, CLIPPER_WARMUP_BATCHES how many batches of it
(default 3) the runtime predicts before it connects to any frontend. The input is encoded exactly
as the query frontend encodes a query's input (runtime/shared/input-types.ts: encodeInput), so the
warm-up batch reaches the predict function through the same decoding as a real batch.
CLIPPER_WARMUP_INPUTS instead holds a JSON array of inputs recorded by an application's query log
(deploy-model --warmup-from-log): each warm-up batch holds them all.
"""

import base64
import json
import math
import re
import struct

WARMUP_INPUT_ENV = "CLIPPER_WARMUP_INPUT"
WARMUP_INPUTS_ENV = "CLIPPER_WARMUP_INPUTS"
WARMUP_BATCHES_ENV = "CLIPPER_WARMUP_BATCHES"
DEFAULT_WARMUP_BATCHES = 3
MAX_WARMUP_BATCHES = 1000
MAX_WARMUP_INPUTS = 256

_INT32_MIN = -2147483648
_INT32_MAX = 2147483647
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class WarmupSpecError(ValueError):
    """A warm-up variable that cannot be used; the message names the problem."""


def _numbers(value, input_type):
    if not isinstance(value, list):
        raise WarmupSpecError("input of type %s must be a JSON array of numbers" % input_type)
    for i, x in enumerate(value):
        # bool is an int in Python, but not a number in JSON's sense (nor in the query API's).
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise WarmupSpecError("element %d of the input is not a finite number (input type %s)" % (i, input_type))
    return value


def _pack_float32(x):
    try:
        return struct.pack("<f", x)
    except OverflowError:
        # The query API (Buffer.writeFloatLE) rounds a double beyond float32 to infinity.
        return struct.pack("<f", math.copysign(math.inf, x))


def encode_input(input_type, value):
    """The raw bytes of one RPC input frame for a JSON input, as the query frontend encodes it."""
    if input_type in ("doubles", "floats", "integers"):
        xs = _numbers(value, input_type)
        if input_type == "integers":
            for i, x in enumerate(xs):
                if x != int(x) or not _INT32_MIN <= x <= _INT32_MAX:
                    raise WarmupSpecError("element %d of the input is not a 32-bit integer (input type integers)" % i)
            return b"".join(struct.pack("<i", int(x)) for x in xs)
        if input_type == "floats":
            return b"".join(_pack_float32(float(x)) for x in xs)
        return b"".join(struct.pack("<d", float(x)) for x in xs)
    if input_type == "strings":
        if not isinstance(value, str):
            raise WarmupSpecError("input of type strings must be a JSON string")
        # json.loads joins surrogate pairs, so any surrogate left is a lone one; the query API
        # (Buffer.from) encodes it as U+FFFD, and so does this.
        return _LONE_SURROGATE.sub("\ufffd", value).encode("utf-8")
    if not isinstance(value, str) or len(value) % 4 != 0 or not _BASE64.match(value):
        raise WarmupSpecError("input of type bytes must be a base64-encoded JSON string")
    return base64.b64decode(value)


def warmup_from_env(input_type, environ):
    """([raw input bytes of each input of a batch], batches) for the warm-up the environment asks
    for, or None; raises WarmupSpecError."""
    text = environ.get(WARMUP_INPUT_ENV, "").strip()
    many_text = environ.get(WARMUP_INPUTS_ENV, "").strip()
    batches_text = environ.get(WARMUP_BATCHES_ENV, "").strip()
    if text and many_text:
        raise WarmupSpecError("%s and %s are both set" % (WARMUP_INPUT_ENV, WARMUP_INPUTS_ENV))
    if many_text:
        return _recorded_inputs(input_type, many_text), _batches(batches_text)
    if not text:
        if batches_text:
            raise WarmupSpecError("%s is set but %s is not" % (WARMUP_BATCHES_ENV, WARMUP_INPUT_ENV))
        return None
    batches = _batches(batches_text)
    try:
        value = json.loads(text)
    except ValueError as e:
        raise WarmupSpecError("%s is not JSON: %s" % (WARMUP_INPUT_ENV, e))
    try:
        raw = encode_input(input_type, value)
    except WarmupSpecError as e:
        raise WarmupSpecError("%s does not fit input type %s: %s" % (WARMUP_INPUT_ENV, input_type, e))
    return [raw], batches


def _batches(text):
    if not text:
        return DEFAULT_WARMUP_BATCHES
    batches = int(text, 10) if re.match(r"^\d+$", text) else None
    if batches is None or not 1 <= batches <= MAX_WARMUP_BATCHES:
        raise WarmupSpecError("%s must be a whole number from 1 to %d, got '%s'"
                              % (WARMUP_BATCHES_ENV, MAX_WARMUP_BATCHES, text))
    return batches


def _recorded_inputs(input_type, text):
    try:
        values = json.loads(text)
    except ValueError as e:
        raise WarmupSpecError("%s is not JSON: %s" % (WARMUP_INPUTS_ENV, e))
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_WARMUP_INPUTS:
        raise WarmupSpecError("%s must be a JSON array of 1 to %d inputs" % (WARMUP_INPUTS_ENV, MAX_WARMUP_INPUTS))
    raws = []
    for i, value in enumerate(values):
        try:
            raws.append(encode_input(input_type, value))
        except WarmupSpecError as e:
            raise WarmupSpecError("input %d of %s does not fit input type %s: %s" % (i, WARMUP_INPUTS_ENV, input_type, e))
    return raws
