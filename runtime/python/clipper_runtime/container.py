"""The model container: configuration from the environment, the RPC v3 loop, and the predict contract.

Run it as `python3 -m clipper_runtime` with runtime/python on PYTHONPATH. Exit codes: 0 after
SIGTERM/SIGINT, 1 when the runtime's dependencies, the framework's library or model artifact
(CLIPPER_FRAMEWORK, CLIPPER_MODEL_FILE; see frameworks/) or the predict function cannot be loaded, 2
for a missing or invalid environment variable.
"""

import json
import os
import re
import signal
import sys
import time
import traceback

from . import rpc
from .loader import LoadError, load_predict_function, model_parameter, parse_predict_spec, resolve_predict_file

EXIT_OK = 0
EXIT_LOAD_ERROR = 1
EXIT_CONFIG_ERROR = 2

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_NAME = 63
# Longest failure reason sent to the frontend or logged on one line.
_MAX_REASON = 1000
# Longest wait in one poll, so that a stop signal is acted on promptly.
_MAX_POLL_S = 0.25

DEFAULTS = {
    "CLIPPER_IP": "127.0.0.1",
    "CLIPPER_PORT": "7000",
    "CLIPPER_INPUT_TYPE": "doubles",
    "CLIPPER_MODEL_PATH": "/model",
    "CLIPPER_PREDICT": "predict.py:predict",
    "CLIPPER_READY_FILE": "/model_is_ready.check",
    "CLIPPER_HEARTBEAT_INTERVAL_MS": "5000",
    "CLIPPER_RECONNECT_AFTER_MS": "30000",
    "CLIPPER_FRAMEWORK": "python",
}


class ConfigError(Exception):
    """A missing or invalid environment variable."""


class Config(object):
    def __init__(self, name, version, ip, port, input_type, model_path, predict, ready_file,
                 heartbeat_interval_ms, reconnect_after_ms, framework="python", model_file=None,
                 predict_explicit=True):
        self.name = name
        self.version = version
        self.ip = ip
        self.port = port
        self.input_type = input_type
        self.model_path = model_path
        self.predict = predict
        self.ready_file = ready_file
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.reconnect_after_ms = reconnect_after_ms
        # CLIPPER_FRAMEWORK and CLIPPER_MODEL_FILE (see frameworks/); whether CLIPPER_PREDICT was set.
        self.framework = framework
        self.model_file = model_file
        self.predict_explicit = predict_explicit

    @property
    def address(self):
        host = "[%s]" % self.ip if ":" in self.ip and not self.ip.startswith("[") else self.ip
        return "tcp://%s:%d" % (host, self.port)


def config_from_env(environ):
    """Reads the container's configuration; raises ConfigError naming every problem found."""
    problems = []

    def get(key):
        value = environ.get(key, "").strip()
        return value if value else DEFAULTS.get(key, "")

    def model_name(key):
        value = environ.get(key, "").strip()
        if not value:
            problems.append("%s is required" % key)
        elif len(value) > _MAX_NAME or not _NAME.match(value):
            problems.append("%s '%s' must be at most %d lower case alphanumeric characters or '-', "
                            "starting and ending with an alphanumeric character" % (key, value, _MAX_NAME))
        return value

    def integer(key, low, high):
        text = get(key)
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = "from %d to %d" % (low, high) if high is not None else "of at least %d" % low
            problems.append("%s must be an integer %s, got '%s'" % (key, bound, text))
            return None
        return value

    name = model_name("CLIPPER_MODEL_NAME")
    version = model_name("CLIPPER_MODEL_VERSION")
    ip = get("CLIPPER_IP")
    port = integer("CLIPPER_PORT", 1, 65535)
    type_text = get("CLIPPER_INPUT_TYPE")
    input_type = rpc.canonical_input_type(type_text)
    if input_type is None:
        problems.append("CLIPPER_INPUT_TYPE '%s' is not one of %s (or their aliases)"
                        % (type_text, ", ".join(rpc.INPUT_TYPES)))
    model_path = get("CLIPPER_MODEL_PATH")
    predict = get("CLIPPER_PREDICT")
    try:
        parse_predict_spec(predict)
    except ValueError as e:
        problems.append("CLIPPER_PREDICT %s" % e)
    ready_file = get("CLIPPER_READY_FILE")
    heartbeat = integer("CLIPPER_HEARTBEAT_INTERVAL_MS", 1, None)
    reconnect = integer("CLIPPER_RECONNECT_AFTER_MS", 1, None)
    if heartbeat is not None and reconnect is not None and reconnect <= heartbeat:
        problems.append("CLIPPER_RECONNECT_AFTER_MS (%d) must be greater than CLIPPER_HEARTBEAT_INTERVAL_MS (%d)"
                        % (reconnect, heartbeat))
    from .frameworks import REGISTRY, canonical_framework
    framework_text = get("CLIPPER_FRAMEWORK")
    framework = canonical_framework(framework_text)
    if framework is None:
        problems.append("CLIPPER_FRAMEWORK '%s' is not one of %s" % (framework_text, ", ".join(REGISTRY)))
    model_file = environ.get("CLIPPER_MODEL_FILE", "").strip() or None
    predict_explicit = bool(environ.get("CLIPPER_PREDICT", "").strip())
    if problems:
        raise ConfigError("; ".join(problems))
    return Config(name, version, ip, port, input_type, model_path, predict, ready_file, heartbeat, reconnect,
                  framework, model_file, predict_explicit)


class Log(object):
    """One human-readable line per event on stderr: time, prefix, level, message."""

    def __init__(self, model=None, stream=None):
        self.prefix = "[clipper_runtime %s]" % model if model else "[clipper_runtime]"
        self.stream = stream or sys.stderr

    def _write(self, level, message, detail=None):
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % int((now % 1) * 1000)
        lines = ["%s %s %s %s" % (stamp, self.prefix, level, " ".join(str(message).splitlines()))]
        if detail:
            lines.extend("%s %s   %s" % (stamp, self.prefix, line) for line in detail.rstrip().splitlines())
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def info(self, message):
        self._write("INFO", message)

    def warn(self, message, detail=None):
        self._write("WARN", message, detail)

    def error(self, message, detail=None):
        self._write("ERROR", message, detail)


def _shorten(text):
    text = " ".join(str(text).split("\n"))
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 3] + "..."


class BatchError(Exception):
    """A batch failed; `reason` goes to the frontend and the log, `detail` (a traceback) to the log."""

    def __init__(self, reason, detail=None):
        Exception.__init__(self, reason)
        self.reason = _shorten(reason)
        self.detail = detail


_DTYPES = {"integers": "<i4", "floats": "<f4", "doubles": "<f8", "bytes": "u1"}


def to_batch(np, input_type, inputs):
    """The batch the predict function receives: a 2-D array when all inputs have the same length,
    else a list of 1-D arrays; strings as a list of str. Arrays are writable copies."""
    if input_type == "strings":
        batch = []
        for i, raw in enumerate(inputs):
            try:
                batch.append(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise BatchError("input %d is not valid UTF-8: %s" % (i, e))
        return batch
    dtype = np.dtype(_DTYPES[input_type])
    arrays = []
    for i, raw in enumerate(inputs):
        if len(raw) % dtype.itemsize != 0:
            raise BatchError("input %d is %d bytes, not a whole number of %d-byte %s"
                             % (i, len(raw), dtype.itemsize, input_type))
        arrays.append(np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("=")))
    if arrays and all(len(a) == len(arrays[0]) for a in arrays):
        return np.stack(arrays)
    return arrays


def _json_default(np):
    def default(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError("a %s is not JSON serializable" % type(value).__name__)
    return default


def to_outputs(np, result, n):
    """Turns what the predict function returned into n output strings, or raises BatchError."""
    if isinstance(result, np.ndarray) and result.ndim >= 1:
        items = list(result)
    elif isinstance(result, (list, tuple)):
        items = list(result)
    else:
        raise BatchError("predict returned a %s; expected a list with one output per input"
                         % type(result).__name__)
    if len(items) != n:
        raise BatchError("predict returned %d outputs for a batch of %d inputs" % (len(items), n))
    default = _json_default(np)
    outputs = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            text = item
        else:
            try:
                text = json.dumps(default(item) if isinstance(item, (np.ndarray, np.generic)) else item,
                                  default=default, ensure_ascii=False)
            except (TypeError, ValueError, OverflowError, RecursionError) as e:
                raise BatchError("output %d (a %s) is not a string or JSON-serializable: %s"
                                 % (i, type(item).__name__, e))
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise BatchError("output %d cannot be encoded as UTF-8: %s" % (i, e))
        outputs.append(text)
    return outputs


class Container(object):
    def __init__(self, config, predict, zmq, np, log, clock=time.monotonic):
        self.config = config
        self.predict = predict
        self.zmq = zmq
        self.np = np
        self.log = log
        self.clock = clock
        self.context = None
        self.socket = None
        # A PAIR socket receiving the DEALER's EVENT_CONNECTED events, and how many it has seen.
        self.monitor = None
        self.connects = 0
        self.sockets_opened = 0
        self.stop_signal = None
        self.ready_written = False
        self.last_received = 0.0
        self.last_heartbeat = 0.0
        self.heartbeat_pending = False
        self.metadata_sent = 0

    # ---- lifecycle ---------------------------------------------------------------------------

    def request_stop(self, signum, _frame=None):
        if self.stop_signal is not None:
            # A second signal while a long predict runs: stop now (the finally blocks still clean up).
            self.log.warn("second stop signal: stopping without waiting for the batch in progress")
            raise SystemExit(EXIT_OK)
        self.stop_signal = signum

    def run(self):
        self.context = self.zmq.Context()
        try:
            self._connect()
            while self.stop_signal is None:
                self._step()
            name = signal.Signals(self.stop_signal).name if hasattr(signal, "Signals") else self.stop_signal
            self.log.info("stopping on %s" % name)
            return EXIT_OK
        finally:
            self._close_socket()
            self.context.term()
            self._remove_ready_file()

    def _connect(self):
        self.socket = self.context.socket(self.zmq.DEALER)
        self.socket.setsockopt(self.zmq.LINGER, 0)
        # Queue messages only on a completed connection: heartbeats sent while the frontend is down
        # are not piled up and replayed at it (each would be answered with a metadata request).
        # A due heartbeat waits instead, and goes out as soon as the connection is up.
        self.socket.setsockopt(self.zmq.IMMEDIATE, 1)
        if ":" in self.config.ip:
            self.socket.setsockopt(self.zmq.IPV6, 1)
        # ZeroMQ reconnects the DEALER by itself when the frontend restarts on the same address,
        # but the new frontend does not know us until we say something. Watch the connections so
        # that every one after the first is greeted with a heartbeat at once (see _on_connected).
        # A fresh inproc address per socket: a closed socket's address may take a moment to free.
        self.sockets_opened += 1
        self.connects = 0
        self.monitor = self.socket.get_monitor_socket(
            self.zmq.EVENT_CONNECTED, "inproc://clipper-runtime-monitor-%d-%d" % (os.getpid(), self.sockets_opened))
        self.socket.connect(self.config.address)
        now = self.clock()
        self.last_received = now
        self.last_heartbeat = now
        self.heartbeat_pending = True
        self._try_heartbeat()

    def _try_heartbeat(self):
        if self._send(rpc.encode_heartbeat(), "heartbeat", quiet_when_unconnected=True):
            self.heartbeat_pending = False

    def _close_socket(self):
        if self.monitor is not None:
            try:
                self.socket.disable_monitor()
            except self.zmq.ZMQError:
                pass
            self.monitor.close(0)
            self.monitor = None
        if self.socket is not None:
            self.socket.close(0)
            self.socket = None

    def _reconnect(self):
        self.log.warn("nothing from the frontend at %s for %d ms; reconnecting with a new socket"
                      % (self.config.address, self.config.reconnect_after_ms))
        self._close_socket()
        self._connect()

    def _step(self):
        now = self.clock()
        reconnect_at = self.last_received + self.config.reconnect_after_ms / 1000.0
        if now >= reconnect_at:
            self._reconnect()
            return
        heartbeat_at = max(self.last_received, self.last_heartbeat) + self.config.heartbeat_interval_ms / 1000.0
        if now >= heartbeat_at:
            self.last_heartbeat = now
            self.heartbeat_pending = True
            heartbeat_at = now + self.config.heartbeat_interval_ms / 1000.0
        if self.heartbeat_pending:
            self._try_heartbeat()
        timeout_s = min(heartbeat_at, reconnect_at) - now
        events = self.zmq.POLLIN | (self.zmq.POLLOUT if self.heartbeat_pending else 0)
        poller = self.zmq.Poller()
        poller.register(self.socket, events)
        if self.monitor is not None:
            poller.register(self.monitor, self.zmq.POLLIN)
        ready = dict(poller.poll(int(max(1.0, min(timeout_s, _MAX_POLL_S) * 1000))))
        if self.monitor is not None and ready.get(self.monitor, 0) & self.zmq.POLLIN:
            self._read_monitor()
        if not ready.get(self.socket, 0) & self.zmq.POLLIN:
            return
        try:
            frames = self.socket.recv_multipart(self.zmq.NOBLOCK)
        except self.zmq.Again:
            return
        self.last_received = self.clock()
        self._handle(frames)

    def _read_monitor(self):
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                event = recv_monitor_message(self.monitor, self.zmq.NOBLOCK)
            except self.zmq.Again:
                return
            if event["event"] == self.zmq.EVENT_CONNECTED:
                self._on_connected()

    def _on_connected(self):
        # The first connection carries the opening heartbeat. A later one is a new frontend behind
        # the same address (a restart): say hello now rather than at the next heartbeat, so that it
        # asks for our metadata and we serve again within milliseconds. This is the interval's
        # heartbeat; with IMMEDIATE it may have to wait (pending) for the handshake to finish.
        self.connects += 1
        if self.connects == 1:
            return
        self.log.info("connected to the frontend at %s again; sending a heartbeat" % self.config.address)
        self.last_heartbeat = self.clock()
        self.heartbeat_pending = True
        self._try_heartbeat()

    def _send(self, frames, what, quiet_when_unconnected=False):
        try:
            self.socket.send_multipart(frames, self.zmq.NOBLOCK)
            return True
        except self.zmq.Again:
            if not quiet_when_unconnected:
                self.log.warn("could not send %s: not connected to the frontend at %s (or its queue is full)"
                              % (what, self.config.address))
        except self.zmq.ZMQError as e:
            self.log.warn("could not send %s to %s: %s" % (what, self.config.address, e))
        return False

    # ---- messages ----------------------------------------------------------------------------

    def _handle(self, frames):
        try:
            message = rpc.decode_frontend_message(frames)
        except rpc.RpcFrameError as e:
            self.log.warn("ignored a malformed message from the frontend (%d frames): %s" % (len(frames), e))
            return
        if message.kind == "heartbeat":
            if message.request_metadata:
                self._send_metadata()
        elif message.kind == "predict":
            self._handle_predict(message)
        else:
            self.log.warn("ignored a feedback request (msg %d): this runtime only serves predictions" % message.msg_id)

    def _send_metadata(self):
        c = self.config
        if not self._send(rpc.encode_metadata(c.name, c.version, c.input_type), "metadata"):
            return
        self.metadata_sent += 1
        self.log.info("%s at %s: sent metadata (%s:%s, %s, rpc v%d)"
                      % ("registered" if self.metadata_sent == 1 else "registered again",
                         c.address, c.name, c.version, c.input_type, rpc.RPC_VERSION))
        self._write_ready_file()

    def _handle_predict(self, request):
        n = len(request.inputs)
        try:
            if request.input_type != self.config.input_type:
                raise BatchError("received %s inputs, but this container serves %s"
                                 % (request.input_type, self.config.input_type))
            outputs = self._predict(request) if n > 0 else []
        except BatchError as e:
            self.log.error("msg %d: batch of %d inputs failed: %s" % (request.msg_id, n, e.reason), e.detail)
            outputs = [rpc.BATCH_ERROR_PREFIX + e.reason] * n
        self._send(rpc.encode_response(request.msg_id_bytes, outputs), "the response to msg %d" % request.msg_id)

    def _predict(self, request):
        batch = to_batch(self.np, request.input_type, request.inputs)
        try:
            result = self.predict(batch)
        except Exception as e:
            raise BatchError("predict raised %s: %s" % (type(e).__name__, e), traceback.format_exc())
        return to_outputs(self.np, result, len(request.inputs))

    # ---- readiness ---------------------------------------------------------------------------

    def _write_ready_file(self):
        if self.ready_written:
            return
        path = self.config.ready_file
        try:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            with open(path, "w") as f:
                f.write("%s:%s\n" % (self.config.name, self.config.version))
            self.ready_written = True
            self.log.info("ready: wrote %s" % path)
        except OSError as e:
            self.log.warn("could not write the readiness file %s: %s" % (path, e))

    def _remove_ready_file(self):
        if not self.ready_written:
            return
        try:
            os.remove(self.config.ready_file)
        except OSError:
            pass
        self.ready_written = False


def load_model_and_predict(config, log):
    """Loads the framework's artifact (CLIPPER_FRAMEWORK) and the predict function; returns the
    callable that serves batches, or None after logging why it cannot start.

    A user predict function (CLIPPER_PREDICT, or predict.py in the model directory when that is
    unset) wraps the model: it gets it as a second argument when it takes one, and can always reach
    it through clipper_runtime.model(). Without one, the framework's default predict serves.
    """
    from . import _set_loaded, frameworks
    loaded = None
    if config.framework != frameworks.DEFAULT_FRAMEWORK:
        try:
            loaded = frameworks.load(config.framework, config.model_path, config.model_file)
        except LoadError as e:
            log.error(str(e), e.detail)
            return None
        log.info(loaded.describe())
    _set_loaded(loaded)

    file_part = parse_predict_spec(config.predict)[0]
    use_user_function = (loaded is None or config.predict_explicit
                         or os.path.isfile(resolve_predict_file(config.model_path, file_part)))
    if not use_user_function:
        if loaded.default_error:
            log.error("CLIPPER_FRAMEWORK=%s: no predict function is given (CLIPPER_PREDICT is unset and %s has "
                      "no %s), and the default predict cannot serve this model: %s"
                      % (config.framework, config.model_path, file_part, loaded.default_error))
            return None
        log.info("no predict function given: serving the %s default predict, %s; connecting to %s (input type %s)"
                 % (config.framework, loaded.default_description, config.address, config.input_type))
        return loaded.predict

    try:
        func, path, func_name = load_predict_function(config.model_path, config.predict)
    except LoadError as e:
        log.error("cannot load the predict function: %s" % e, e.detail)
        return None
    takes_model = model_parameter(func)
    if takes_model == "required" and loaded is None:
        log.error("cannot load the predict function: %s(inputs, %s) in %s needs a model, but CLIPPER_FRAMEWORK is "
                  "python, which loads none; set CLIPPER_FRAMEWORK to the model's framework"
                  % (func_name, _second_parameter(func), path))
        return None
    if takes_model and loaded is not None:
        model = loaded.model

        def predict(batch):
            return func(batch, model)
        how = "%s(inputs, model)" % func_name
    else:
        predict = func
        how = func_name
    log.info("loaded %s from %s; connecting to %s (input type %s)" % (how, path, config.address, config.input_type))
    return predict


def _second_parameter(func):
    import inspect
    return list(inspect.signature(func).parameters)[1]


def main(environ=None):
    environ = os.environ if environ is None else environ
    try:
        config = config_from_env(environ)
    except ConfigError as e:
        Log().error("invalid environment: %s" % e)
        return EXIT_CONFIG_ERROR
    log = Log("%s:%s" % (config.name, config.version))
    try:
        import numpy as np
    except ImportError as e:
        log.error("the Python runtime needs numpy (%s); install it (pip install numpy, or apt python3-numpy)" % e)
        return EXIT_LOAD_ERROR
    try:
        import zmq
    except ImportError as e:
        log.error("the Python runtime needs pyzmq (%s); install it (pip install pyzmq, or apt python3-zmq)" % e)
        return EXIT_LOAD_ERROR
    try:
        sys.stdout.reconfigure(line_buffering=True)  # the model's own prints reach the logs promptly
    except (AttributeError, ValueError):
        pass
    predict = load_model_and_predict(config, log)
    if predict is None:
        return EXIT_LOAD_ERROR
    container = Container(config, predict, zmq, np, log)
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, container.request_stop)
    try:
        return container.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
