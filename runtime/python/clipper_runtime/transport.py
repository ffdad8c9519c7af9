"""The runtime's DEALER sockets, over pyzmq or over the built-in ZMTP (zmtp.py).

CLIPPER_RPC_TRANSPORT picks one: `builtin`, `pyzmq`, or `auto` (the default; see choose()). Both
give the container loop the same small interface, so everything above it (handshake, heartbeats,
drain, reconnects) is one code path:

  transport.dealer(endpoint, routing_id, plain) -> a dealer with
      send(frames) -> bool   queued whole, or False when not connected / the queue is full
      recv() -> frames       the next waiting message, or None (never blocks)
      take_connects() -> int connections completed since the last call
      close(linger_ms)
  transport.poll(dealers, timeout_s) -> the dealers with something to recv() or a new connection
  transport.close()
"""

import os

from . import zmtp

TRANSPORTS = ("auto", "builtin", "pyzmq")


class TransportError(Exception):
    """A send failed for a reason other than 'not connected'."""


class BuiltinTransport(object):
    name = "builtin"

    def __init__(self, log):
        self.log = log

    def dealer(self, endpoint, routing_id=None, plain=None):
        return zmtp.Dealer(endpoint, routing_id, plain, log=self.log.warn)

    def poll(self, dealers, timeout_s):
        return zmtp.poll(dealers, timeout_s)

    def close(self):
        pass


# ZeroMQ's flag and option values (zmq.h), as ints: pyzmq's enums cost more to combine than a send.
_NOBLOCK = 1
_SNDMORE = 2
_NOBLOCK_SNDMORE = _NOBLOCK | _SNDMORE
_RCVMORE = 13
_POLLIN = 1
_POLLOUT = 2


class PyzmqDealer(object):
    """A pyzmq DEALER with IMMEDIATE set, and a monitor counting its connections."""

    def __init__(self, transport, endpoint, routing_id, plain):
        zmq = transport.zmq
        self.zmq = zmq
        self.socket = transport.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        # Queue messages only on a completed connection: heartbeats sent while the frontend is down
        # are not piled up and replayed at it (each would be answered with a metadata request).
        self.socket.setsockopt(zmq.IMMEDIATE, 1)
        if plain is not None:
            self.socket.setsockopt(zmq.PLAIN_USERNAME, plain[0])
            self.socket.setsockopt(zmq.PLAIN_PASSWORD, plain[1])
        if routing_id:
            self.socket.setsockopt(zmq.IDENTITY, routing_id)
        if endpoint.startswith("tcp://["):
            self.socket.setsockopt(zmq.IPV6, 1)
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_CONNECTED, transport.next_monitor_address())
        self.new_connects = 0
        # A send refused for want of a connection: poll also for writability, to retry it promptly.
        self.blocked = False
        self.socket.connect(endpoint)

    def send(self, frames):
        socket = self.socket
        try:
            # A multipart message is queued whole or not at all: only its first frame can meet a full queue.
            for frame in frames[:-1]:
                socket.send(frame, _NOBLOCK_SNDMORE)
            socket.send(frames[-1], _NOBLOCK)
        except self.zmq.Again:
            self.blocked = True
            return False
        except self.zmq.ZMQError as e:
            raise TransportError(str(e))
        self.blocked = False
        return True

    def recv(self):
        # Frame by frame with plain int flags: pyzmq's recv_multipart combines enum flags per frame.
        socket = self.socket
        try:
            frames = [socket.recv(_NOBLOCK)]
        except self.zmq.Again:
            return None
        while socket.getsockopt(_RCVMORE):
            frames.append(socket.recv(_NOBLOCK))
        return frames

    def take_connects(self):
        count, self.new_connects = self.new_connects, 0
        return count

    def read_monitor(self):
        from zmq.utils.monitor import recv_monitor_message
        while True:
            try:
                event = recv_monitor_message(self.monitor, _NOBLOCK)
            except self.zmq.Again:
                return
            if event["event"] == self.zmq.EVENT_CONNECTED:
                self.new_connects += 1

    def close(self, linger_ms=0):
        try:
            self.socket.disable_monitor()
        except self.zmq.ZMQError:
            pass
        self.monitor.close(0)
        self.socket.close(linger_ms)


class PyzmqTransport(object):
    name = "pyzmq"

    def __init__(self, zmq):
        self.zmq = zmq
        self.context = zmq.Context()
        self.sockets_opened = 0
        self.pid = os.getpid()

    def next_monitor_address(self):
        # A fresh inproc address per socket: a closed socket's address may take a moment to free.
        self.sockets_opened += 1
        return "inproc://clipper-runtime-monitor-%d-%d" % (self.pid, self.sockets_opened)

    def dealer(self, endpoint, routing_id=None, plain=None):
        return PyzmqDealer(self, endpoint, routing_id, plain)

    def poll(self, dealers, timeout_s):
        poller = self.zmq.Poller()
        for dealer in dealers:
            poller.register(dealer.socket, _POLLIN | (_POLLOUT if dealer.blocked else 0))
            poller.register(dealer.monitor, _POLLIN)
        ready = dict(poller.poll(max(1, int(timeout_s * 1000))))
        out = []
        for dealer in dealers:
            if ready.get(dealer.monitor, 0):
                dealer.read_monitor()
            if ready.get(dealer.socket, 0) or dealer.new_connects:
                out.append(dealer)
        return out

    def close(self):
        self.context.term()


def choose(name, log):
    """The transport CLIPPER_RPC_TRANSPORT names; None after logging why it cannot be had.

    auto: the built-in one. It reads a whole batch with one system call on the serving thread,
    where libzmq hands every frame across from its I/O thread; docs/bench/python-runtime.md
    measures the difference. pyzmq stays available for whoever prefers libzmq.
    """
    if name == "pyzmq":
        try:
            import zmq
        except ImportError as e:
            log.error("CLIPPER_RPC_TRANSPORT=pyzmq, but pyzmq cannot be imported (%s); install it "
                      "(pip install pyzmq, or apt-get install python3-zmq), or unset CLIPPER_RPC_TRANSPORT" % e)
            return None
        return PyzmqTransport(zmq)
    return BuiltinTransport(log)
