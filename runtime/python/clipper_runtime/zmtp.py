"""A ZeroMQ DEALER in plain Python: ZMTP 3.0 (rfc.zeromq.org/spec/23) over a TCP socket, with the
NULL and PLAIN (spec 24) mechanisms, so that a model needs numpy and nothing else.

It does what the runtime asks of pyzmq's DEALER with IMMEDIATE set: connect to one ROUTER (our
frontend, or Clipper's), complete the handshake (sending the routing id as the Identity property),
send a message only once the connection is up, and reconnect after every loss (every 100 ms, as
libzmq does). Everything runs on the caller's thread, driven by `poll`: no I/O thread and no
per-frame system calls, so a batch costs one read and one write. A peer that breaks the protocol
is logged once and dropped, never trusted: frames are bounded, commands checked, sizes validated.

Imports only the standard library.
"""

import collections
import errno
import select
import socket
import struct
import threading
import time

# How long after a lost or refused connection the next attempt starts (libzmq's ZMQ_RECONNECT_IVL).
RECONNECT_INTERVAL_S = 0.1
# Longest frame accepted from the peer, and most unsent bytes held before a send is refused
# (a frontend that stops reading; pyzmq's high-water mark refuses it the same way).
MAX_FRAME_BYTES = 1 << 31
MAX_UNSENT_BYTES = 64 << 20
# Most bytes read from the socket in one go.
_READ_CHUNK = 1 << 18
# Answers written while more batches wait are sent together, at most this long after the last send:
# a send on loopback TCP costs more than the no-op predict of a batch (the kernel delivers to the
# reader at once). A slow predict delays nothing: by the time it returns, the last send is older
# than this, and its answer goes out before the next batch is predicted.
COALESCE_S = 0.0005
_HANDSHAKE_TIMEOUT_S = 10.0

_FLAG_MORE = 0x01
_FLAG_LONG = 0x02
_FLAG_COMMAND = 0x04
_GREETING_BYTES = 64

_LONG_SIZE = struct.Struct(">Q")
_PROPERTY_VALUE_SIZE = struct.Struct(">I")


class ZmtpError(Exception):
    """The peer broke ZMTP 3.0, or refused our handshake."""


# ---- encoding ----------------------------------------------------------------------------------

def greeting(mechanism):
    """Our 64-byte greeting: signature, version 3.0, mechanism, as-server 0, filler."""
    name = mechanism.encode("ascii")
    return b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + name + b"\x00" * (20 - len(name)) + b"\x00" + b"\x00" * 31


def _frame_header(flags, size):
    if size < 256:
        return bytes((flags, size))
    return bytes((flags | _FLAG_LONG,)) + _LONG_SIZE.pack(size)


def encode_message(frames):
    """One message's frames as ZMTP bytes (every frame but the last flagged MORE)."""
    parts = []
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        size = len(frame)
        flags = _FLAG_MORE if i < last else 0
        # Short frames (nearly all of them) take the fast path: two bytes of header.
        parts.append(bytes((flags, size)) if size < 256 else _frame_header(flags, size))
        parts.append(frame)
    return b"".join(parts)


def encode_command(name, body=b""):
    raw = bytes((len(name),)) + name.encode("ascii") + body
    return _frame_header(_FLAG_COMMAND, len(raw)) + raw


def encode_properties(properties):
    """Metadata (READY, INITIATE): name length (1 byte), name, value length (4 bytes), value."""
    out = []
    for name, value in properties:
        raw = name.encode("ascii")
        out.append(bytes((len(raw),)) + raw + _PROPERTY_VALUE_SIZE.pack(len(value)) + value)
    return b"".join(out)


def decode_properties(data):
    """The metadata of a READY command as a dict of lower-cased names; raises ZmtpError."""
    properties = {}
    pos = 0
    while pos < len(data):
        size = data[pos]
        name_end = pos + 1 + size
        if size == 0 or name_end + 4 > len(data):
            raise ZmtpError("malformed metadata in the peer's READY")
        name = bytes(data[pos + 1:name_end]).decode("ascii", "replace").lower()
        (value_size,) = _PROPERTY_VALUE_SIZE.unpack_from(data, name_end)
        pos = name_end + 4 + value_size
        if pos > len(data):
            raise ZmtpError("malformed metadata in the peer's READY")
        properties[name] = bytes(data[name_end + 4:pos])
    return properties


def plain_hello(username, password):
    if len(username) > 255 or len(password) > 255:
        raise ValueError("PLAIN credentials are at most 255 bytes each")
    return encode_command("HELLO", bytes((len(username),)) + username + bytes((len(password),)) + password)


# ---- decoding ----------------------------------------------------------------------------------

class FrameReader(object):
    """Splits received bytes into messages and commands, keeping a partial frame for the next read."""

    def __init__(self, max_frame_bytes=MAX_FRAME_BYTES):
        self.pending = bytearray()
        # Bytes the pending frame needs before parsing is worth trying again: a large frame that
        # arrives in many reads is joined once, not re-parsed (and copied) at every read.
        self.need = 0
        self.max_frame_bytes = max_frame_bytes
        self._frames = []

    def feed(self, data, on_message, on_command):
        """Adds bytes; calls on_message(frames) per whole message and on_command(name, body) per command."""
        if self.pending:
            self.pending += data
            if len(self.pending) < self.need:
                return
            buf = bytes(self.pending)
            self.pending = bytearray()
        else:
            buf = data
        pos = 0
        end = len(buf)
        frames = self._frames
        need = 0
        while pos < end:
            flags = buf[pos]
            if flags <= _FLAG_MORE and pos + 1 < end:
                # The common case first: a short message frame (flags 0 or MORE, a one-byte size).
                stop = pos + 2 + buf[pos + 1]
                if stop > end:
                    need = stop - pos
                    break
                frames.append(buf[pos + 2:stop])
                pos = stop
                if not flags:
                    self._frames = []
                    on_message(frames)
                    frames = self._frames
                continue
            if end - pos < 2:
                need = 2
                break
            if flags & ~(_FLAG_MORE | _FLAG_LONG | _FLAG_COMMAND):
                raise ZmtpError("frame with reserved flag bits set (0x%02x)" % flags)
            if flags & _FLAG_LONG:
                if end - pos < 9:
                    need = 9
                    break
                (size,) = _LONG_SIZE.unpack_from(buf, pos + 1)
                start = pos + 9
            else:
                size = buf[pos + 1]
                start = pos + 2
            if size > self.max_frame_bytes:
                raise ZmtpError("the peer announced a %d-byte frame (limit %d)" % (size, self.max_frame_bytes))
            stop = start + size
            if stop > end:
                need = stop - pos
                break
            body = buf[start:stop]
            pos = stop
            if flags & _FLAG_COMMAND:
                if frames:
                    raise ZmtpError("a command in the middle of a multi-frame message")
                if flags & _FLAG_MORE:
                    raise ZmtpError("a command frame flagged MORE")
                if not body or body[0] + 1 > len(body):
                    raise ZmtpError("a malformed command frame")
                on_command(body[1:1 + body[0]].decode("ascii", "replace"), body[1 + body[0]:])
            else:
                frames.append(body)
                if not flags & _FLAG_MORE:
                    self._frames = []
                    on_message(frames)
                    frames = self._frames
        if pos < end:
            self.pending = bytearray(buf[pos:])
            self.need = need


# ---- the DEALER --------------------------------------------------------------------------------

def parse_tcp_endpoint(endpoint):
    """("host", port) of "tcp://host:port" or "tcp://[v6]:port"; raises ValueError."""
    if not endpoint.startswith("tcp://"):
        raise ValueError("only tcp:// endpoints are supported: %s" % endpoint)
    rest = endpoint[len("tcp://"):]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("no valid port in %s" % endpoint)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError("no host in %s" % endpoint)
    return host, int(port)


class _Lookup(object):
    """A host name resolved on a thread, so the serving loop never blocks on DNS."""

    def __init__(self, host, port):
        self.result = None  # a list of sockaddr tuples with their family, or an exception
        thread = threading.Thread(target=self._run, args=(host, port), name="zmtp-resolve", daemon=True)
        thread.start()

    def _run(self, host, port):
        try:
            self.result = [(family, addr) for family, _t, _p, _c, addr in
                           socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)]
        except (OSError, UnicodeError) as e:
            self.result = e


class Dealer(object):
    """One DEALER socket connected to one endpoint, reconnecting by itself.

    `routing_id` (bytes or None) goes to the ROUTER as the Identity property; `plain` is
    (username, password) as bytes, or None for the NULL mechanism. `log` is called with one line
    when a connection is refused or the peer breaks the protocol (once per cause, not per retry).
    """

    def __init__(self, endpoint, routing_id=None, plain=None, log=None, clock=time.monotonic):
        self.host, self.port = parse_tcp_endpoint(endpoint)
        self.endpoint = endpoint
        self.routing_id = routing_id or b""
        self.plain = plain
        self.mechanism = b"PLAIN" if plain is not None else b"NULL"
        self.log = log
        self.clock = clock
        self.sock = None
        # idle (waiting to connect) -> connecting (TCP) -> greeting -> hello (PLAIN: WELCOME awaited)
        # -> initiate (READY awaited) -> ready; any failure goes back to idle.
        self.state = "idle"
        self.retry_at = clock()
        self.deadline = 0.0
        self.lookup = None
        self.addresses = []
        self.out = bytearray()
        self.last_flush = 0.0
        self.reader = None
        self.peer_greeting = b""
        self.messages = collections.deque()
        # Handshakes completed since the last take_connects() (the runtime greets a new frontend).
        self.new_connects = 0
        self.last_problem = None
        self.closed = False

    # -- what the poll loop needs --

    def fileno(self):
        return self.sock.fileno() if self.sock is not None else None

    def wants_write(self):
        return self.sock is not None and (self.state == "connecting" or bool(self.out))

    def wake_at(self):
        """When the loop must call tick() even without I/O: a retry or a handshake deadline."""
        if self.state == "idle":
            return self.retry_at if self.lookup is None else self.clock() + 0.01
        if self.state != "ready":
            return self.deadline
        return None

    def tick(self, now):
        if self.closed:
            return
        if self.state == "idle" and now >= self.retry_at:
            self._start_connect(now)
        elif self.state not in ("idle", "ready") and now >= self.deadline:
            self._lose("the handshake with %s did not finish within %d s" % (self.endpoint, _HANDSHAKE_TIMEOUT_S))

    def on_writable(self):
        if self.state == "connecting":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._lose("cannot connect to %s: %s" % (self.endpoint, errno.errorcode.get(err, err)), quiet=True)
                return
            self.state = "greeting"
            self.reader = FrameReader()
            self.peer_greeting = b""
            self.out += greeting(self.mechanism.decode("ascii"))
        self._flush()

    def on_readable(self):
        """Reads what is waiting; parsed messages queue up for recv()."""
        try:
            data = self.sock.recv(_READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._lose("connection to %s lost: %s" % (self.endpoint, e), quiet=True)
            return
        if not data:
            self._lose("the frontend at %s closed the connection" % self.endpoint, quiet=True)
            return
        try:
            self._consume(data)
        except ZmtpError as e:
            self._lose("dropped the connection to %s: %s" % (self.endpoint, e))

    # -- what the runtime calls --

    def send(self, frames):
        """Queues one message; False when not connected or too much is unsent (nothing is queued then).

        It goes out at the next recv() or poll() (see COALESCE_S), or at once when much is queued."""
        if self.state != "ready" or len(self.out) > MAX_UNSENT_BYTES:
            return False
        self.out += encode_message(frames)
        if len(self.out) >= _READ_CHUNK:
            self._flush()
        return True

    def recv(self):
        """The next whole message's frames, reading the socket once if none is queued; or None.

        What was sent goes out first, unless another message is waiting and the last send is
        younger than COALESCE_S (then it goes with the next answers)."""
        if self.out and (not self.messages or self.clock() - self.last_flush >= COALESCE_S):
            self._flush()
        if not self.messages and self.state == "ready":
            self.on_readable()
        return self.messages.popleft() if self.messages else None

    def take_connects(self):
        count, self.new_connects = self.new_connects, 0
        return count

    def close(self, linger_ms=0):
        """Closes the connection, first trying for up to linger_ms to send what is queued."""
        self.closed = True
        if self.sock is None:
            return
        if linger_ms > 0 and self.out and self.state == "ready":
            deadline = self.clock() + linger_ms / 1000.0
            while self.out and self.sock is not None:
                left = deadline - self.clock()
                if left <= 0:
                    break
                select.select([], [self.sock], [], left)
                self._flush()
        self._close_socket()

    # -- internals --

    def _start_connect(self, now):
        if not self.addresses:
            if self.lookup is None:
                try:
                    info = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
                    self.addresses = [(family, addr) for family, _t, _p, _c, addr in info]
                except socket.gaierror:
                    self.lookup = _Lookup(self.host, self.port)
                    return
            if self.lookup is not None:
                result = self.lookup.result
                if result is None:
                    return  # still resolving; wake_at polls again shortly
                self.lookup = None
                if isinstance(result, Exception):
                    self._lose("cannot resolve %s: %s" % (self.host, result))
                    return
                self.addresses = result
        family, addr = self.addresses[0]
        # Next time, the next address (a host with several, one of them down).
        self.addresses = self.addresses[1:] if len(self.addresses) > 1 else []
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.state = "connecting"
        self.deadline = now + _HANDSHAKE_TIMEOUT_S
        try:
            sock.connect(addr)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._lose("cannot connect to %s: %s" % (self.endpoint, e), quiet=True)
            return
        self.on_writable()

    def _flush(self):
        self.last_flush = self.clock()
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._lose("connection to %s lost: %s" % (self.endpoint, e), quiet=True)
                return
            del self.out[:sent]

    def _consume(self, data):
        if self.state == "greeting":
            need = _GREETING_BYTES - len(self.peer_greeting)
            self.peer_greeting += data[:need]
            data = data[need:]
            if len(self.peer_greeting) < _GREETING_BYTES:
                return
            self._check_greeting(self.peer_greeting)
            if self.plain is not None:
                self.state = "hello"
                self.out += plain_hello(*self.plain)
            else:
                self.state = "initiate"
                self.out += encode_command("READY", self._metadata())
            self._flush()
        if data and self.reader is not None:
            self.reader.feed(data, self._on_message, self._on_command)

    def _check_greeting(self, g):
        if g[0] != 0xFF or g[9] & 0x01 != 0x01:
            raise ZmtpError("the peer is not speaking ZMTP (bad greeting signature)")
        if g[10] < 3:
            raise ZmtpError("the peer speaks ZMTP %d.%d; 3.0 or later is needed" % (g[10], g[11]))
        mechanism = bytes(g[12:32]).rstrip(b"\x00")
        if mechanism != self.mechanism:
            raise ZmtpError("the peer wants the %s mechanism, we use %s (%s)" % (
                mechanism.decode("ascii", "replace"), self.mechanism.decode("ascii"),
                "set CLIPPER_RPC_SECRET" if mechanism == b"PLAIN" else
                "this runtime speaks NULL and PLAIN only; a Clipper frontend uses --rpc-auth plain or none"
                if mechanism == b"CURVE" else
                "the frontend's --rpc-auth decides"))

    def _metadata(self):
        properties = [("Socket-Type", b"DEALER")]
        if self.routing_id:
            properties.append(("Identity", self.routing_id))
        return encode_properties(properties)

    def _on_message(self, frames):
        if self.state != "ready":
            raise ZmtpError("a message before the handshake finished")
        self.messages.append(frames)

    def _on_command(self, name, body):
        if name == "ERROR":
            reason = body[1:1 + body[0]].decode("utf-8", "replace") if body else ""
            if self.plain is not None and reason.startswith("400"):
                reason += " (the RPC credential was refused: CLIPPER_RPC_SECRET is not this model version's)"
            raise ZmtpError("the frontend refused the handshake: %s" % (reason or "no reason given"))
        if name == "PING":
            # ZMTP 3.1 heartbeats (a peer may send them to a 3.0 peer): echo the context.
            if self.state == "ready" and len(body) >= 2:
                self.out += encode_command("PONG", body[2:18])
                self._flush()
            return
        if name == "PONG":
            return
        if self.state == "hello" and name == "WELCOME":
            self.state = "initiate"
            self.out += encode_command("INITIATE", self._metadata())
            self._flush()
        elif self.state == "initiate" and name == "READY":
            socket_type = decode_properties(body).get("socket-type")
            if socket_type != b"ROUTER":
                raise ZmtpError("the peer is a %s socket, not a ROUTER" % (
                    socket_type.decode("ascii", "replace") if socket_type else "nameless"))
            self.state = "ready"
            self.new_connects += 1
            self.last_problem = None
        else:
            raise ZmtpError("unexpected %s command while %s" % (name, self.state))

    def _lose(self, problem, quiet=False):
        """Drops the connection (what was unsent or half-read goes with it) and schedules a retry."""
        if not quiet and problem != self.last_problem and self.log is not None:
            self.log("%s; retrying every %d ms" % (problem, RECONNECT_INTERVAL_S * 1000))
        if not quiet:
            self.last_problem = problem
        self._close_socket()
        self.retry_at = self.clock() + RECONNECT_INTERVAL_S

    def _close_socket(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.state = "idle"
        self.out = bytearray()
        self.reader = None
        self.messages.clear()


def poll(dealers, timeout_s, clock=time.monotonic):
    """Waits up to timeout_s for I/O on any dealer and does it (connecting, handshakes, reading);
    returns the dealers with messages to recv(). Wakes early for retries and handshake deadlines."""
    now = clock()
    for dealer in dealers:
        if dealer.out and dealer.state == "ready":
            dealer._flush()
        dealer.tick(now)
    ready = [d for d in dealers if d.messages]
    if ready:
        return ready
    poller = select.poll()
    by_fd = {}
    deadline = now + timeout_s
    for dealer in dealers:
        wake = dealer.wake_at()
        if wake is not None:
            deadline = min(deadline, wake)
        fd = dealer.fileno()
        if fd is not None:
            by_fd[fd] = dealer
            poller.register(fd, select.POLLIN | (select.POLLOUT if dealer.wants_write() else 0))
    timeout_ms = max(0, int((deadline - now) * 1000 + 0.999))
    try:
        events = poller.poll(timeout_ms)
    except InterruptedError:
        events = []
    for fd, mask in events:
        dealer = by_fd[fd]
        if mask & (select.POLLOUT | select.POLLERR | select.POLLHUP) and dealer.wants_write():
            dealer.on_writable()
        if mask & (select.POLLIN | select.POLLERR | select.POLLHUP) and dealer.sock is not None:
            dealer.on_readable()
    now = clock()
    for dealer in dealers:
        dealer.tick(now)
    return [d for d in dealers if d.messages or d.new_connects]
