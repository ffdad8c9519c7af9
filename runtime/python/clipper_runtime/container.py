"""The model container: configuration from the environment, the RPC v3 loop, and the predict contract.

Run it as `python3 -m clipper_runtime` with runtime/python on PYTHONPATH. Exit codes: 0 after
SIGTERM/SIGINT, 1 when the runtime's dependencies, the framework's library or model artifact
(CLIPPER_FRAMEWORK, CLIPPER_MODEL_FILE; see frameworks/) or the predict function cannot be loaded, 2
for a missing or invalid environment variable, 3 when the predict function fails its warm-up.

With CLIPPER_WARMUP_INPUT (warmup.py), the runtime predicts CLIPPER_WARMUP_BATCHES batches of that
input before it connects to any frontend, so that the first query does not pay the cold start;
with CLIPPER_WARMUP_INPUTS, batches of the recorded inputs it lists.

CLIPPER_FRONTEND_DISCOVERY picks how the frontends are found: `none` (the default) opens one
connection to CLIPPER_IP:CLIPPER_PORT; `dns` resolves CLIPPER_IP (one host or a comma-separated
list) to all its addresses every CLIPPER_DISCOVERY_INTERVAL_MS and keeps one connection per address.
CLIPPER_PORT may list several ports (`7000,7001`), one per worker of a frontend (--frontend-workers):
each address gets one connection per port.

A stop signal drains (our extension of RPC v3, docs/compatibility.md): each connection sends DRAIN and
keeps answering; the frontend acknowledges after the last batch it sends us, and a second DRAIN and
acknowledgement prove every answer arrived; then the runtime exits 0. A frontend that does not
acknowledge within CLIPPER_DRAIN_TIMEOUT_MS (default 5000; 0: no drain) does not know the message
(Clipper's) or went away: the connection closes then. A second signal stops at once.

CLIPPER_RPC_SECRET, when set, is this model version's RPC credential: every connection authenticates
with PLAIN and carries a routing id proving the model version, with a fresh nonce per socket
(runtime/shared/rpc-auth.ts). Without it the NULL mechanism is used (a frontend with --rpc-auth none).

CLIPPER_RPC_TRANSPORT picks the DEALER (transport.py): `builtin` (ZMTP 3.0 in plain Python, zmtp.py;
numpy is then the runtime's only dependency), `pyzmq` (libzmq), or `auto`, the default: builtin.
"""

import json
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback

from . import rpc
from .transport import TRANSPORTS, TransportError, choose as choose_transport
from .warmup import WarmupSpecError, warmup_from_env
from .loader import LoadError, load_predict_function, model_parameter, parse_predict_spec, resolve_predict_file

EXIT_OK = 0
EXIT_LOAD_ERROR = 1
EXIT_CONFIG_ERROR = 2
EXIT_WARMUP_ERROR = 3

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_NAME = 63
# Longest failure reason sent to the frontend or logged on one line.
_MAX_REASON = 1000
# Longest wait in one poll, so that a stop signal is acted on promptly.
_MAX_POLL_S = 0.25
# Messages read from one connection after a poll before polling again: a frontend keeping several
# batches in flight (--max-in-flight) has the next one waiting, and a poll per message (a Poller
# built, every socket registered, a system call) costs about as much as reading it. Bounded, so the
# other connections and the timers (heartbeats, drain) are still served between bursts.
_MAX_BURST = 16
# How long a closing socket may take to deliver what is queued on it (answers, the last DRAIN).
_CLOSE_LINGER_MS = 1000

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
    "CLIPPER_FRONTEND_DISCOVERY": "none",
    "CLIPPER_DISCOVERY_INTERVAL_MS": "5000",
    "CLIPPER_DRAIN_TIMEOUT_MS": "5000",
    "CLIPPER_RPC_TRANSPORT": "auto",
}

FRONTEND_DISCOVERY_MODES = ("none", "dns")


class ConfigError(Exception):
    """A missing or invalid environment variable."""


class Config(object):
    def __init__(self, name, version, ip, port, input_type, model_path, predict, ready_file,
                 heartbeat_interval_ms, reconnect_after_ms, framework="python", model_file=None,
                 predict_explicit=True, frontend_discovery="none", hosts=None, discovery_interval_ms=5000,
                 rpc_secret=None, warmup=None, drain_timeout_ms=5000, ports=None, transport="auto"):
        self.name = name
        self.version = version
        self.ip = ip
        self.port = port
        # Every frontend worker's RPC port (CLIPPER_PORT as a list); `port` is the first.
        self.ports = list(ports) if ports else [port]
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
        # CLIPPER_FRONTEND_DISCOVERY; the hosts in CLIPPER_IP (one with "none"); the re-resolve interval.
        self.frontend_discovery = frontend_discovery
        self.hosts = list(hosts) if hosts else [ip]
        self.discovery_interval_ms = discovery_interval_ms
        # CLIPPER_RPC_SECRET (never logged), or None.
        self.rpc_secret = rpc_secret
        # ([raw input bytes of a batch], batches) from CLIPPER_WARMUP_INPUT(S) / CLIPPER_WARMUP_BATCHES, or None.
        self.warmup = warmup
        # CLIPPER_DRAIN_TIMEOUT_MS: the wait for each drain acknowledgement; 0 stops without draining.
        self.drain_timeout_ms = drain_timeout_ms
        # CLIPPER_RPC_TRANSPORT: auto, builtin or pyzmq (transport.py).
        self.transport = transport

    @property
    def address(self):
        """The first frontend endpoint of CLIPPER_FRONTEND_DISCOVERY=none."""
        return endpoint_address(self.ip, self.port)

    @property
    def addresses(self):
        """Every frontend endpoint of CLIPPER_FRONTEND_DISCOVERY=none: one per worker port."""
        return [endpoint_address(self.ip, p) for p in self.ports]

    @property
    def frontends(self):
        """The frontend endpoints, or with DNS discovery the hosts resolved, for the start-up log line."""
        if self.frontend_discovery == "dns":
            return "every address of %s, port %s (CLIPPER_FRONTEND_DISCOVERY=dns)" % (
                ",".join(self.hosts), ",".join(str(p) for p in self.ports))
        return ", ".join(self.addresses)


def endpoint_address(host, port):
    """The ZeroMQ endpoint of a frontend (IPv6 literals in brackets)."""
    host = "[%s]" % host if ":" in host and not host.startswith("[") else host
    return "tcp://%s:%d" % (host, port)


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
    ports = port_list(get("CLIPPER_PORT"), problems)
    port = ports[0] if ports else None
    discovery_text = get("CLIPPER_FRONTEND_DISCOVERY")
    discovery = discovery_text.lower()
    if discovery not in FRONTEND_DISCOVERY_MODES:
        problems.append("CLIPPER_FRONTEND_DISCOVERY '%s' is not one of %s"
                        % (discovery_text, ", ".join(FRONTEND_DISCOVERY_MODES)))
    discovery_interval = integer("CLIPPER_DISCOVERY_INTERVAL_MS", 100, None)
    # One host, or (with CLIPPER_FRONTEND_DISCOVERY=dns) a comma-separated list of hosts.
    hosts = [h.strip() for h in ip.split(",")]
    if any(not h or re.search(r"[\s/]", h) for h in hosts):
        problems.append("CLIPPER_IP must be a host name or IP address (or, with CLIPPER_FRONTEND_DISCOVERY=dns, "
                        "a comma-separated list of them), got '%s'" % ip)
    elif len(hosts) > 1 and discovery == "none":
        problems.append("CLIPPER_IP lists %d hosts, but CLIPPER_FRONTEND_DISCOVERY is none; "
                        "set CLIPPER_FRONTEND_DISCOVERY=dns to connect to each" % len(hosts))
    hosts = [h[1:-1] if h.startswith("[") and h.endswith("]") else h for h in hosts]
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
    drain_timeout = integer("CLIPPER_DRAIN_TIMEOUT_MS", 0, 600000)
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
    rpc_secret = environ.get(rpc.RPC_SECRET_ENV, "").strip() or None
    warmup = None
    if input_type is not None:
        try:
            warmup = warmup_from_env(input_type, environ)
        except WarmupSpecError as e:
            problems.append(str(e))
    transport_text = get("CLIPPER_RPC_TRANSPORT")
    transport = transport_text.lower()
    if transport not in TRANSPORTS:
        problems.append("CLIPPER_RPC_TRANSPORT '%s' is not one of %s" % (transport_text, ", ".join(TRANSPORTS)))
    if problems:
        raise ConfigError("; ".join(problems))
    return Config(name, version, ip, port, input_type, model_path, predict, ready_file, heartbeat, reconnect,
                  framework, model_file, predict_explicit, discovery, hosts, discovery_interval, rpc_secret,
                  warmup, drain_timeout, ports, transport)


# A frontend runs at most 8 workers; a longer list is a mistake (the Node runtime's bound too).
MAX_FRONTEND_PORTS = 64


def port_list(text, problems):
    """CLIPPER_PORT: one port (Clipper's) or a comma-separated list of distinct ports, one per
    frontend worker. Appends to `problems` and returns None when the text is not that."""
    ports = []
    for part in (p.strip() for p in text.split(",")):
        if not re.match(r"^[0-9]+$", part) or not 1 <= int(part, 10) <= 65535:
            problems.append("CLIPPER_PORT must be a port from 1 to 65535, or a comma-separated list of them "
                            "(one per frontend worker), got '%s'" % text)
            return None
        if int(part, 10) in ports:
            problems.append("CLIPPER_PORT lists port %s twice, got '%s'" % (part, text))
            return None
        ports.append(int(part, 10))
    if len(ports) > MAX_FRONTEND_PORTS:
        problems.append("CLIPPER_PORT lists %d ports; at most %d" % (len(ports), MAX_FRONTEND_PORTS))
        return None
    return ports


class Log(object):
    """One JSON object per line on stderr, in the shape every Clipper process logs in (pino's, as the
    Node runtime writes it), so `clipper logs` output filters alike (`jq 'select(.level >= 40)'`):
    level (pino's numbers), time (ms since the epoch), component, model ("name:version") when known,
    msg; a traceback goes in `stack`, so one event stays one line."""

    COMPONENT = "container-python"
    LEVELS = {"info": 30, "warn": 40, "error": 50}

    def __init__(self, model=None, stream=None):
        self.model = model
        self.stream = stream or sys.stderr

    def _write(self, level, message, detail=None):
        record = {"level": self.LEVELS[level], "time": int(time.time() * 1000), "component": self.COMPONENT}
        if self.model:
            record["model"] = self.model
        if detail:
            record["stack"] = str(detail).rstrip()
        record["msg"] = str(message)  # last, as pino writes it
        # Compact separators as pino's (`"time":<ms>` is what `clipper logs --since` reads); ASCII
        # escapes, so a stderr that is not UTF-8 still takes every line whole.
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":"))
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def info(self, message):
        self._write("info", message)

    def warn(self, message, detail=None):
        self._write("warn", message, detail)

    def error(self, message, detail=None):
        self._write("error", message, detail)


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
        try:
            return [raw.decode("utf-8") for raw in inputs]
        except UnicodeDecodeError:
            pass
        batch = []  # again, one by one, to name the input that is not UTF-8
        for i, raw in enumerate(inputs):
            try:
                batch.append(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise BatchError("input %d is not valid UTF-8: %s" % (i, e))
        return batch
    dtype = np.dtype(_DTYPES[input_type])
    sizes = set(map(len, inputs))
    if any(size % dtype.itemsize != 0 for size in sizes):
        i, raw = next((i, raw) for i, raw in enumerate(inputs) if len(raw) % dtype.itemsize != 0)
        raise BatchError("input %d is %d bytes, not a whole number of %d-byte %s"
                         % (i, len(raw), dtype.itemsize, input_type))
    native = dtype.newbyteorder("=")
    if len(sizes) == 1:
        size = sizes.pop()
        # One join and one conversion for the whole batch: a per-input frombuffer and a stack cost
        # more than the model does for small inputs. astype copies, so the array is writable.
        joined = np.frombuffer(b"".join(inputs), dtype=dtype)
        return joined.astype(native).reshape(len(inputs), size // dtype.itemsize)
    return [np.frombuffer(raw, dtype=dtype).astype(native) for raw in inputs]


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
    # The common case, checked for the whole batch at once: strings that are all ASCII.
    if all(type(item) is str for item in items) and "".join(items).isascii():
        return items
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
        # rpc.encode_response encodes every output; only a non-ASCII one (a lone surrogate) can fail there.
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise BatchError("output %d cannot be encoded as UTF-8: %s" % (i, e))
        outputs.append(text)
    return outputs


def predict_batch(np, predict, input_type, inputs):
    """Decodes raw input frames, calls predict and checks its outputs; raises BatchError."""
    batch = to_batch(np, input_type, inputs)
    try:
        result = predict(batch)
    except Exception as e:
        raise BatchError("predict raised %s: %s" % (type(e).__name__, e), traceback.format_exc())
    return to_outputs(np, result, len(inputs))


def warm_up(np, predict, config, log, clock=time.monotonic):
    """Predicts the warm-up batches one after another, on the path real batches take, logging how
    long each took; returns the durations in ms. Raises BatchError naming the batch that failed."""
    raws, batches = config.warmup
    durations = []
    for i in range(batches):
        started = clock()
        try:
            predict_batch(np, predict, config.input_type, raws)
        except BatchError as e:
            raise BatchError("warm-up batch %d of %d failed: %s" % (i + 1, batches, e.reason), e.detail)
        ms = round((clock() - started) * 1000, 1)
        durations.append(ms)
        log.info("warm-up batch %d of %d took %.1f ms" % (i + 1, batches, ms))
    return durations


class FrontendConnection(object):
    """One query frontend endpoint: a DEALER socket with its own heartbeat, handshake (metadata on
    request, again after a frontend restart) and reconnect timer. The Container owns the loop that
    polls every connection and serves their requests one at a time."""

    def __init__(self, container, address):
        self.container = container
        self.address = address
        self.socket = None
        # Connections the transport completed on this socket (the first needs no extra greeting).
        self.connects = 0
        self.last_received = 0.0
        self.last_heartbeat = 0.0
        self.heartbeat_pending = False
        self.metadata_sent = 0
        # With DNS discovery: when the address was last among those the frontend hosts resolve to.
        self.last_resolved = 0.0
        # Stopping by draining: None (serving), "asked" (DRAIN sent, waiting for the acknowledgement),
        # "proving" (a second DRAIN sent after the last answer), "done"; and until when to wait.
        self.drain_phase = None
        self.drain_deadline = 0.0
        self.drained = False

    @property
    def log(self):
        return self.container.log

    def open(self):
        c = self.container
        config = c.config
        routing_id = plain = None
        if config.rpc_secret is not None:
            # A new socket, a new nonce: a ROUTER admits one connection per routing id.
            plain = (rpc.plain_username(config.name, config.version, config.input_type).encode("utf-8"),
                     config.rpc_secret.encode("utf-8"))
            routing_id = rpc.replica_routing_id(
                config.name, config.version, config.input_type, config.rpc_secret).encode("utf-8")
        # Both transports reconnect by themselves when the frontend restarts on the same address,
        # but the new frontend does not know us until we say something: every connection after the
        # first is greeted with a heartbeat at once (see _on_connected).
        self.connects = 0
        self.socket = c.transport.dealer(self.address, routing_id, plain)
        now = c.clock()
        self.last_received = now
        self.last_heartbeat = now
        self.heartbeat_pending = True
        self._try_heartbeat()

    def close(self, linger_ms=0):
        if self.socket is not None:
            self.socket.close(linger_ms)
            self.socket = None

    def _try_heartbeat(self):
        if self.send(rpc.encode_heartbeat(), "heartbeat", quiet_when_unconnected=True):
            self.heartbeat_pending = False

    def _reconnect(self):
        self.log.warn("nothing from the frontend at %s for %d ms; reconnecting with a new socket"
                      % (self.address, self.container.config.reconnect_after_ms))
        self.close()
        self.open()

    # ---- stopping by draining -----------------------------------------------------------------

    def start_drain(self):
        """Sends DRAIN; a connection that never registered (the frontend would not answer, and sent
        no batch) or cannot send it (not connected) is done at once."""
        self.drain_phase = "asked" if self.metadata_sent > 0 and self._send_drain() else "done"

    def on_drain_ack(self):
        if self.drain_phase == "asked":
            # The batches sent before the acknowledgement were answered as they came (one thread, in
            # order); a second round trip proves that the answers arrived.
            self.drain_phase = "proving" if self._send_drain() else "done"
        elif self.drain_phase == "proving":
            self.drain_phase = "done"
            self.drained = True
            self.log.info("drained from the frontend at %s: every batch answered" % self.address)

    def _send_drain(self):
        self.drain_deadline = self.container.clock() + self.container.config.drain_timeout_ms / 1000.0
        return self.send(rpc.encode_drain(), "the drain request")

    def _drain_due(self, now):
        if self.drain_phase in ("asked", "proving") and now >= self.drain_deadline:
            self.log.warn("the frontend at %s did not acknowledge the drain within %d ms; closing the connection"
                          % (self.address, self.container.config.drain_timeout_ms))
            self.drain_phase = "done"

    def due(self, now):
        """Acts on the timers that are due (reconnect, heartbeat, drain); returns when the next one is."""
        config = self.container.config
        reconnect_at = self.last_received + config.reconnect_after_ms / 1000.0
        if self.drain_phase is not None:
            # A draining connection is never replaced (its batches can only be answered on it); the
            # drain's own deadline bounds the wait for a silent frontend.
            self._drain_due(now)
            reconnect_at = self.drain_deadline if self.drain_phase != "done" else now + _MAX_POLL_S
        elif now >= reconnect_at:
            self._reconnect()
            return now
        heartbeat_at = max(self.last_received, self.last_heartbeat) + config.heartbeat_interval_ms / 1000.0
        if now >= heartbeat_at:
            self.last_heartbeat = now
            self.heartbeat_pending = True
            heartbeat_at = now + config.heartbeat_interval_ms / 1000.0
        if self.heartbeat_pending:
            self._try_heartbeat()
        return min(heartbeat_at, reconnect_at)

    def receive_waiting(self):
        """Reads one message if one is waiting (no poll); returns its frames, or None."""
        if self.socket is None:
            return None
        frames = self.socket.recv()
        if frames is not None:
            self.last_received = self.container.clock()
        return frames

    def take_connects(self):
        """Greets the frontend of every connection the transport completed since the last call."""
        for _ in range(self.socket.take_connects() if self.socket is not None else 0):
            self._on_connected()

    def _on_connected(self):
        # The first connection carries the opening heartbeat. A later one is a new frontend behind
        # the same address (a restart): say hello now rather than at the next heartbeat, so that it
        # asks for our metadata and we serve again within milliseconds. This is the interval's
        # heartbeat; with IMMEDIATE it may have to wait (pending) for the handshake to finish.
        self.connects += 1
        if self.connects == 1:
            return
        self.log.info("connected to the frontend at %s again; sending a heartbeat" % self.address)
        self.last_heartbeat = self.container.clock()
        self.heartbeat_pending = True
        self._try_heartbeat()

    def send(self, frames, what, quiet_when_unconnected=False):
        try:
            if self.socket.send(frames):
                return True
            if not quiet_when_unconnected:
                self.log.warn("could not send %s: not connected to the frontend at %s (or its queue is full)"
                              % (what, self.address))
        except TransportError as e:
            self.log.warn("could not send %s to %s: %s" % (what, self.address, e))
        return False

    def send_metadata(self):
        """Sends the metadata; True once it is queued."""
        c = self.container.config
        if not self.send(rpc.encode_metadata(c.name, c.version, c.input_type), "metadata"):
            return False
        self.metadata_sent += 1
        self.log.info("%s at %s: sent metadata (%s:%s, %s, rpc v%d)"
                      % ("registered" if self.metadata_sent == 1 else "registered again",
                         self.address, c.name, c.version, c.input_type, rpc.RPC_VERSION))
        return True


def resolve_host(host):
    """Every IPv4 and IPv6 address `host` resolves to, in the resolver's order, without repeats.
    Raises OSError (socket.gaierror) or UnicodeError when it cannot be resolved."""
    addresses = []
    for family, _type, _proto, _name, sockaddr in socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM):
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses


class Resolver(object):
    """Resolves the frontend hosts every interval on a thread of its own, so that a slow DNS server
    never holds up the loop serving predictions; that loop takes each round's results."""

    def __init__(self, hosts, interval_s, resolve=resolve_host):
        self.hosts = list(hosts)
        self.interval_s = interval_s
        self.resolve = resolve
        self._lock = threading.Lock()
        self._results = None
        self._new_results = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clipper-frontend-discovery")
        self._thread.daemon = True

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        # A lookup in progress may take the resolver's timeout; the thread is a daemon.
        self._thread.join(0.5)

    def take(self):
        """The latest round's [(host, addresses or None, error or None)], or None when none is new."""
        with self._lock:
            results, self._results = self._results, None
            self._new_results.clear()
        return results

    def wait(self, timeout_s):
        """Waits up to timeout_s for a round's results (the loop does, while it has no connection)."""
        self._new_results.wait(timeout_s)

    def _run(self):
        while not self._stop.is_set():
            results = []
            for host in self.hosts:
                try:
                    results.append((host, self.resolve(host), None))
                except (OSError, UnicodeError) as e:
                    results.append((host, None, e))
            with self._lock:
                self._results = results
                self._new_results.set()
            self._stop.wait(self.interval_s)


class Container(object):
    """The RPC loop: one FrontendConnection (CLIPPER_FRONTEND_DISCOVERY=none), or one per address
    the frontend hosts resolve to (dns). Messages from every connection are handled one at a time
    on this thread, so the predict function never runs two batches at once; each response goes
    back on the connection its request came from."""

    def __init__(self, config, predict, transport, np, log, clock=time.monotonic):
        self.config = config
        self.predict = predict
        # transport.py: pyzmq's DEALER or the built-in one (CLIPPER_RPC_TRANSPORT).
        self.transport = transport
        self.np = np
        self.log = log
        self.clock = clock
        # endpoint ("tcp://host:port") -> FrontendConnection
        self.connections = {}
        self.stop_signal = None
        self.ready_written = False
        self.resolver = None
        # With DNS discovery: each host's addresses at its last successful lookup, and the last
        # lookup error logged for it (logged again only when it changes).
        self.addresses_by_host = {}
        self.resolve_errors = {}

    # ---- lifecycle ---------------------------------------------------------------------------

    def request_stop(self, signum, _frame=None):
        if self.stop_signal is not None:
            # A second signal while a long predict runs: stop now (the finally blocks still clean up).
            self.log.warn("second stop signal: stopping without waiting for the batch in progress")
            raise SystemExit(EXIT_OK)
        self.stop_signal = signum

    def run(self):
        try:
            if self.config.frontend_discovery == "dns":
                self.log.info("discovering frontends: resolving %s every %d ms (port %s)"
                              % (",".join(self.config.hosts), self.config.discovery_interval_ms,
                                 ",".join(str(p) for p in self.config.ports)))
                self.resolver = Resolver(self.config.hosts, self.config.discovery_interval_ms / 1000.0)
                self.resolver.start()
            else:
                # One connection per frontend worker (CLIPPER_PORT lists their ports).
                for address in self.config.addresses:
                    connection = FrontendConnection(self, address)
                    self.connections[connection.address] = connection
                    connection.open()
            while self.stop_signal is None:
                self._step()
            name = signal.Signals(self.stop_signal).name if hasattr(signal, "Signals") else self.stop_signal
            self.log.info("stopping on %s" % name)
            if self.config.drain_timeout_ms > 0:
                self._drain()
            return EXIT_OK
        finally:
            if self.resolver is not None:
                self.resolver.stop()
            for connection in self.connections.values():
                # What a drained connection queued last goes out before the context ends.
                connection.close(_CLOSE_LINGER_MS if connection.drain_phase == "done" else 0)
            self.connections.clear()
            self.transport.close()
            self._remove_ready_file()

    def _drain(self):
        """Asks every frontend for no new batches and serves until each has acknowledged twice (or
        its deadline passed): what a frontend sent before its acknowledgement is answered."""
        if self.resolver is not None:
            # No new frontend while stopping.
            self.resolver.stop()
            self.resolver = None
        connections = list(self.connections.values())
        self.log.info("draining: asking %d frontend(s) for no new batches" % len(connections))
        for connection in connections:
            connection.start_drain()
        while any(c.drain_phase != "done" for c in connections):
            self._step()
        drained = sum(1 for c in connections if c.drained)
        self.log.info("drain finished: %d of %d frontend(s) acknowledged" % (drained, len(connections)))

    def _step(self):
        if self.resolver is not None:
            results = self.resolver.take()
            if results is not None:
                self._apply_resolution(results)
        now = self.clock()
        wake_at = now + _MAX_POLL_S
        connections = list(self.connections.values())
        for connection in connections:
            wake_at = min(wake_at, connection.due(now))
        timeout_s = max(0.001, min(wake_at - now, _MAX_POLL_S))
        if not connections:
            if self.resolver is not None:
                self.resolver.wait(timeout_s)
            else:
                time.sleep(timeout_s)
            return
        ready = self.transport.poll([c.socket for c in connections if c.socket is not None], timeout_s)
        ready = set(id(dealer) for dealer in ready)
        for connection in connections:
            if id(connection.socket) not in ready:
                continue
            connection.take_connects()
            frames = connection.receive_waiting()
            burst = 1
            while frames is not None:
                self._handle(connection, frames)
                if burst >= _MAX_BURST or self.stop_signal is not None:
                    break
                frames = connection.receive_waiting()
                burst += 1

    # ---- frontend discovery (CLIPPER_FRONTEND_DISCOVERY=dns) ---------------------------------

    def _apply_resolution(self, results):
        """Connects to new addresses, and closes those not resolved for longer than the reconnect
        timeout (a DNS blip does not drop a live frontend). A host that cannot be resolved keeps
        the addresses it last resolved to."""
        now = self.clock()
        present = []
        for host, addresses, error in results:
            if error is not None:
                kept = self.addresses_by_host.get(host, [])
                reason = _shorten(error)
                if self.resolve_errors.get(host) != reason:
                    self.log.warn("could not resolve the frontend host %s: %s; retrying every %d ms%s"
                                  % (host, reason, self.config.discovery_interval_ms,
                                     ", keeping its %d known addresses" % len(kept) if kept else ""))
                self.resolve_errors[host] = reason
                addresses = kept
            else:
                if self.resolve_errors.pop(host, None) is not None:
                    self.log.info("resolved the frontend host %s again" % host)
                self.addresses_by_host[host] = addresses
            for address in addresses:
                for port in self.config.ports:
                    endpoint = endpoint_address(address, port)
                    if endpoint not in present:
                        present.append(endpoint)
        for endpoint in present:
            connection = self.connections.get(endpoint)
            if connection is None:
                hosts = [h for h, a, _e in results if a is not None and any(
                    endpoint_address(x, p) == endpoint for x in a for p in self.config.ports)]
                self.log.info("frontend address %s added (resolved from %s); connecting"
                              % (endpoint, ",".join(hosts) or "an earlier lookup"))
                connection = FrontendConnection(self, endpoint)
                self.connections[endpoint] = connection
                connection.open()
            connection.last_resolved = now
        gone_after_s = self.config.reconnect_after_ms / 1000.0
        for endpoint, connection in list(self.connections.items()):
            if endpoint not in present and now - connection.last_resolved > gone_after_s:
                self.log.info("frontend address %s removed: not resolved for more than %d ms; closing its connection"
                              % (endpoint, self.config.reconnect_after_ms))
                connection.close()
                del self.connections[endpoint]

    # ---- messages ----------------------------------------------------------------------------

    def _handle(self, connection, frames):
        try:
            message = rpc.decode_frontend_message(frames)
        except rpc.RpcFrameError as e:
            self.log.warn("ignored a malformed message from the frontend at %s (%d frames): %s"
                          % (connection.address, len(frames), e))
            return
        if message.kind == "heartbeat":
            # Registering again while draining would bring new batches (a frontend that restarted).
            if message.request_metadata and connection.drain_phase is None and connection.send_metadata():
                self._write_ready_file()
        elif message.kind == "drain_ack":
            connection.on_drain_ack()
        elif message.kind == "predict":
            self._handle_predict(connection, message)
        else:
            self.log.warn("ignored a feedback request (msg %d): this runtime only serves predictions" % message.msg_id)

    def _handle_predict(self, connection, request):
        n = len(request.inputs)
        try:
            if request.input_type != self.config.input_type:
                raise BatchError("received %s inputs, but this container serves %s"
                                 % (request.input_type, self.config.input_type))
            outputs = self._predict(request) if n > 0 else []
        except BatchError as e:
            self.log.error("msg %d: batch of %d inputs failed: %s" % (request.msg_id, n, e.reason), e.detail)
            outputs = [rpc.BATCH_ERROR_PREFIX + e.reason] * n
        connection.send(rpc.encode_response(request.msg_id_bytes, outputs), "the response to msg %d" % request.msg_id)

    def _predict(self, request):
        return predict_batch(self.np, self.predict, request.input_type, request.inputs)

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
                 % (config.framework, loaded.default_description, config.frontends, config.input_type))
        return loaded.predict

    try:
        func, path, func_name = load_predict_function(config.model_path, config.predict, warn=log.warn)
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
    log.info("loaded %s from %s; connecting to %s (input type %s)" % (how, path, config.frontends, config.input_type))
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
    transport = choose_transport(config.transport, log)
    if transport is None:
        return EXIT_LOAD_ERROR
    try:
        sys.stdout.reconfigure(line_buffering=True)  # the model's own prints reach the logs promptly
    except (AttributeError, ValueError):
        pass
    predict = load_model_and_predict(config, log)
    if predict is None:
        return EXIT_LOAD_ERROR
    if config.warmup is not None:
        try:
            warm_up(np, predict, config, log)
        except BatchError as e:
            if e.detail:
                log.error("the warm-up batch failed:", e.detail)
            # Last, so that a crash-looping deployment reports this line as its reason.
            log.error(e.reason)
            return EXIT_WARMUP_ERROR
        log.info("warmed up; connecting")
    log.info("RPC over %s" % ("pyzmq (libzmq)" if transport.name == "pyzmq" else "the built-in ZMTP 3.0 DEALER"))
    container = Container(config, predict, transport, np, log)
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, container.request_stop)
    try:
        return container.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
