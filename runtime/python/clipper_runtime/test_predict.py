"""Runs a predict function once, locally, exactly as the runtime would serve it (`clipper test-predict`).

    echo '[[1, 2], [3, 4]]' | python3 -m clipper_runtime.test_predict --predict predict.py:fn --input-type doubles
        [--model-path DIR] [--framework NAME] [--model-file FILE]

stdin holds one JSON array: the batch, one element per input, each written as the query API takes an
`input` (doubles, floats, integers: an array of numbers; strings: a string; bytes: a base64 string).
Each input is turned into the bytes the query frontend puts in an RPC frame (the rules of
runtime/shared/input-types.ts encodeInput, refusing what the query API refuses), and the batch then
goes through the runtime's own code: the predict function is loaded by load_model_and_predict (a .py
file, a pickled .pkl, a framework's model and default predict), the bytes become the batch by
to_batch, and the outputs the strings the container sends back by to_outputs.

stdout gets one JSON line (whatever the function prints goes to stderr, with the runtime's log):
  {"ok": true, "outputs": ["6.0", "{\"label\": 1}"]}    the strings the frontend would receive, exit 0
  {"ok": false, "error": "<one line>", "traceback": "<the Python traceback, or \"\">"}
      exit 1 when the function could not be loaded or the batch failed (an exception in predict,
      a wrong number of outputs, an output that is not a str or JSON-serializable),
      exit 2 for a usage error (arguments, stdin not a JSON array, an input not of the input type).
The whole array is one batch (the frontend may split a long one into smaller batches).
"""

import argparse
import base64
import json
import math
import os
import re
import sys
import traceback

from . import rpc
from .container import BatchError, Config, Container, EXIT_CONFIG_ERROR, Log, load_model_and_predict
from .loader import parse_predict_spec

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = EXIT_CONFIG_ERROR

_INT32_MIN = -2147483648
_INT32_MAX = 2147483647
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_DTYPES = {"doubles": "<f8", "floats": "<f4", "integers": "<i4"}


class UsageError(Exception):
    """Bad arguments or input; the message says which."""


class InputError(UsageError):
    """An input the query API would refuse for the input type (its message, as the frontend words it)."""


def _numbers(value, input_type):
    if not isinstance(value, list):
        raise InputError("input of type %s must be a JSON array of numbers" % input_type)
    numbers = []
    for i, x in enumerate(value):
        finite = isinstance(x, (int, float)) and not isinstance(x, bool)
        if finite:
            try:
                finite = math.isfinite(float(x))
            except OverflowError:
                finite = False
        if not finite:
            raise InputError("element %d of the input is not a finite number (input type %s)" % (i, input_type))
        if input_type == "integers" and (float(x) != int(x) or not _INT32_MIN <= int(x) <= _INT32_MAX):
            raise InputError("element %d of the input is not a 32-bit integer (input type integers)" % i)
        numbers.append(int(x) if input_type == "integers" else float(x))
    return numbers


def encode_input(np, input_type, value):
    """The bytes of one RPC input frame for a JSON query input, as the query frontend encodes them
    (runtime/shared/input-types.ts encodeInput): int32, float32 or float64 little-endian; strings
    UTF-8; bytes from base64. Raises InputError with the frontend's words for what it refuses."""
    if input_type in _DTYPES:
        numbers = _numbers(value, input_type)
        with np.errstate(over="ignore"):  # a double beyond float32's range becomes inf, as in Node
            return np.asarray(numbers, dtype=np.float64 if input_type != "integers" else np.int64) \
                .astype(_DTYPES[input_type]).tobytes()
    if input_type == "strings":
        if not isinstance(value, str):
            raise InputError("input of type strings must be a JSON string")
        # Node writes a lone surrogate (possible in JSON text) as U+FFFD; so does this.
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
    if not isinstance(value, str) or len(value) % 4 != 0 or not _BASE64.match(value):
        raise InputError("input of type bytes must be a base64-encoded JSON string")
    return base64.b64decode(value)


class _RecordingLog(Log):
    """The runtime's log on stderr, remembering the last error for the JSON answer."""

    def __init__(self):
        Log.__init__(self, "test-predict")
        self.last_error = None

    def error(self, message, detail=None):
        self.last_error = (str(message), detail or "")
        Log.error(self, message, detail)


class _LocalConfig(Config):
    """The runtime's configuration with no frontend to connect to."""

    @property
    def frontends(self):
        return "no frontend (test-predict)"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _parser():
    parser = _Parser(prog="python3 -m clipper_runtime.test_predict",
                     description="Run a predict function on one batch (a JSON array on stdin) as the runtime would.")
    parser.add_argument("--predict", required=True, metavar="FILE[:FUNCTION]",
                        help="a .py file (function default predict) or a pickled callable (.pkl)")
    parser.add_argument("--input-type", required=True, metavar="TYPE", help="bytes, integers, floats, doubles or strings")
    parser.add_argument("--model-path", metavar="DIR", help="CLIPPER_MODEL_PATH (default: the predict file's directory)")
    parser.add_argument("--framework", default="python", metavar="NAME", help="CLIPPER_FRAMEWORK (default python)")
    parser.add_argument("--model-file", metavar="FILE", help="CLIPPER_MODEL_FILE")
    return parser


def _answer(stream, payload):
    stream.write(json.dumps(payload, ensure_ascii=True) + "\n")
    stream.flush()


def _failure(error, detail=""):
    return {"ok": False, "error": " ".join(str(error).split()), "traceback": detail or ""}


def run(argv, stdin_bytes, log):
    """Returns (exit code, the JSON answer)."""
    from .frameworks import REGISTRY, canonical_framework
    try:
        args = _parser().parse_args(argv)
        input_type = rpc.canonical_input_type(args.input_type)
        if input_type is None:
            raise UsageError("--input-type '%s' is not one of %s (or their aliases)" % (args.input_type, ", ".join(rpc.INPUT_TYPES)))
        framework = canonical_framework(args.framework)
        if framework is None:
            raise UsageError("--framework '%s' is not one of %s" % (args.framework, ", ".join(REGISTRY)))
        try:
            file_part, func_name = parse_predict_spec(args.predict)
        except ValueError as e:
            raise UsageError("--predict %s" % e)
        predict_file = os.path.abspath(file_part)
        model_path = os.path.abspath(args.model_path) if args.model_path else os.path.dirname(predict_file)
        try:
            text = stdin_bytes.decode("utf-8")
            inputs = json.loads(text)
        except (UnicodeDecodeError, ValueError) as e:
            raise UsageError("stdin must be a JSON array of inputs: %s" % e)
        if not isinstance(inputs, list):
            raise UsageError("stdin must be a JSON array of inputs (one batch), got a JSON %s" % type(inputs).__name__)
        try:
            import numpy as np
        except ImportError as e:
            return EXIT_FAILED, _failure("the Python runtime needs numpy (%s); install it (pip install numpy, or apt "
                                         "python3-numpy)" % e)
        frames = []
        for i, value in enumerate(inputs):
            try:
                frames.append(encode_input(np, input_type, value))
            except InputError as e:
                raise UsageError("input %d: %s" % (i, e))
    except UsageError as e:
        return EXIT_USAGE, _failure(e)

    config = _LocalConfig("test-predict", "1", "127.0.0.1", 7000, input_type, model_path,
                          "%s:%s" % (predict_file, func_name), "", 5000, 30000, framework, args.model_file, True)
    predict = load_model_and_predict(config, log)
    if predict is None:
        message, detail = log.last_error or ("the predict function could not be loaded", "")
        return EXIT_FAILED, _failure(message, detail)
    # The container's own batch path (Container._predict: to_batch, predict, to_outputs), without a socket.
    container = Container(config, predict, None, np, log)
    request = rpc.PredictRequest(rpc.u32(0), input_type, frames)
    try:
        outputs = container._predict(request) if frames else []
    except BatchError as e:
        return EXIT_FAILED, _failure(e.reason, e.detail)
    except (KeyboardInterrupt, SystemExit) as e:  # the runtime would stop here
        return EXIT_FAILED, _failure("predict raised %s: %s (the runtime would stop)" % (type(e).__name__, e),
                                     traceback.format_exc())
    return EXIT_OK, {"ok": True, "outputs": outputs}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    answer_stream = sys.stdout
    # The function's own prints must not mix with the one JSON line.
    sys.stdout = sys.stderr
    log = _RecordingLog()
    if "-h" in argv or "--help" in argv:
        sys.stderr.write(_parser().format_help())
        sys.stdout = answer_stream
        return EXIT_OK
    try:
        code, payload = run(argv, sys.stdin.buffer.read(), log)
    finally:
        sys.stdout = answer_stream
    _answer(answer_stream, payload)
    return code


if __name__ == "__main__":
    sys.exit(main())
