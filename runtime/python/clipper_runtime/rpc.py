"""Clipper RPC v3 framing (see docs/compatibility.md and shared/design/rpc-v3-vectors.json).

Every message starts with an empty delimiter frame; integers are little-endian (u32 = 4 bytes,
u64 = 8 bytes). This module only turns frames into values and back: it imports neither zmq nor
numpy, and decoding validates every frame, raising RpcFrameError rather than trusting the peer.
"""

import base64
import hashlib
import hmac
import os
import struct

RPC_VERSION = 3

# Message types
MSG_NEW_CONTAINER = 0
MSG_CONTAINER_CONTENT = 1
MSG_HEARTBEAT = 2
# Our extension (docs/compatibility.md): a stopping container sends it; the frontend answers with the
# same type once it sends the container no new batch. Clipper's frontend ignores it without an answer.
MSG_DRAIN = 3

# Heartbeat types
HEARTBEAT_KEEPALIVE = 0
HEARTBEAT_REQUEST_METADATA = 1

# Request types
REQUEST_PREDICT = 0
REQUEST_FEEDBACK = 1

INPUT_TYPES = ("bytes", "integers", "floats", "doubles", "strings")
INPUT_TYPE_CODES = {"bytes": 0, "integers": 1, "floats": 2, "doubles": 3, "strings": 4}
INPUT_TYPE_BY_CODE = {code: name for name, code in INPUT_TYPE_CODES.items()}

# Accepted spellings of each input type (the same table as runtime/shared/input-types.ts).
_ALIASES = {
    "bytes": "bytes", "byte": "bytes", "b": "bytes",
    "integers": "integers", "ints": "integers", "integer": "integers", "int": "integers", "i": "integers",
    "floats": "floats", "float": "floats", "f": "floats",
    "doubles": "doubles", "double": "doubles", "d": "doubles",
    "strings": "strings", "string": "strings", "str": "strings", "strs": "strings", "s": "strings",
}

# Bytes per element of each input type.
ELEMENT_SIZE = {"bytes": 1, "integers": 4, "floats": 4, "doubles": 8, "strings": 1}

# A failed batch answers every input with this marker plus the reason (RPC v3 has no error
# message); it must equal BATCH_ERROR_PREFIX in runtime/rpc/codec.ts.
BATCH_ERROR_PREFIX = "\x00clipper-batch-error\x00"


# The environment variable holding this model version's RPC credential (RPC_SECRET_ENV in
# runtime/shared/rpc-auth.ts); never logged.
RPC_SECRET_ENV = "CLIPPER_RPC_SECRET"
_NONCE_BYTES = 12
_MAC_CHARS = 22


def _base64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def plain_username(name, version, input_type):
    """The PLAIN username of a model version (plainUsername in rpc-auth.ts)."""
    return "%s:%s:%s" % (name, version, input_type)


def replica_routing_id(name, version, input_type, secret, nonce=None):
    """A routing id proving the model version: byte-identical to replicaRoutingId in rpc-auth.ts.

    `nonce` (text) is fresh for every socket unless given; the mac is HMAC-SHA256(secret, nonce).
    """
    if nonce is None:
        nonce = _base64url(os.urandom(_NONCE_BYTES))
    mac = _base64url(hmac.new(secret.encode("utf-8"), nonce.encode("utf-8"), hashlib.sha256).digest())[:_MAC_CHARS]
    return "%s:%s:%s" % (plain_username(name, version, input_type), nonce, mac)


class RpcFrameError(Exception):
    """A message from the peer does not follow the RPC v3 frame layout."""


def canonical_input_type(name):
    """The canonical input type for a name or alias, or None."""
    return _ALIASES.get(str(name).strip().lower())


def u32(value):
    return struct.pack("<I", value & 0xFFFFFFFF)


def u64(value):
    return struct.pack("<Q", value)


def _read_u32(frames, index, what):
    if index >= len(frames):
        raise RpcFrameError("%s: frame %d is missing" % (what, index))
    frame = frames[index]
    if len(frame) != 4:
        raise RpcFrameError("%s: expected a 4-byte frame, got %d bytes" % (what, len(frame)))
    return struct.unpack("<I", frame)[0]


def _read_header(frames, index, what):
    """Reads a u64 header-length frame and the header of u64s after it, checking they agree."""
    if index + 1 >= len(frames):
        raise RpcFrameError("%s: header frames are missing" % what)
    length_frame, header = frames[index], frames[index + 1]
    if len(length_frame) != 8:
        raise RpcFrameError("%s: expected an 8-byte header length, got %d bytes" % (what, len(length_frame)))
    declared = struct.unpack("<Q", length_frame)[0]
    if declared % 8 != 0 or len(header) != declared:
        raise RpcFrameError("%s: header is %d bytes, declared %d" % (what, len(header), declared))
    return list(struct.unpack("<%dQ" % (declared // 8), header))


# ---- container -> frontend -------------------------------------------------------------------

def encode_heartbeat():
    return [b"", u32(MSG_HEARTBEAT)]


def encode_drain():
    return [b"", u32(MSG_DRAIN)]


def encode_metadata(name, version, input_type, rpc_version=RPC_VERSION):
    return [
        b"",
        u32(MSG_NEW_CONTAINER),
        name.encode("utf-8"),
        version.encode("utf-8"),
        str(INPUT_TYPE_CODES[input_type]).encode("ascii"),
        u32(rpc_version),
    ]


def encode_response(msg_id, outputs):
    """msg_id: the 4 message-id bytes of the request (echoed as is) or an int; outputs: str list."""
    if isinstance(msg_id, int):
        msg_id = u32(msg_id)
    encoded = [o.encode("utf-8") for o in outputs]
    header = struct.pack("<%dQ" % (len(encoded) + 1), len(encoded), *[len(o) for o in encoded])
    return [b"", u32(MSG_CONTAINER_CONTENT), bytes(msg_id), u64(len(header)), header] + encoded


# ---- frontend -> container -------------------------------------------------------------------

class HeartbeatReply(object):
    kind = "heartbeat"

    def __init__(self, request_metadata):
        self.request_metadata = request_metadata

    def __repr__(self):
        return "HeartbeatReply(request_metadata=%r)" % self.request_metadata


class DrainAck(object):
    """Every batch for this container was sent before it; none follows."""
    kind = "drain_ack"

    def __repr__(self):
        return "DrainAck()"


class PredictRequest(object):
    kind = "predict"

    def __init__(self, msg_id_bytes, input_type, inputs):
        self.msg_id_bytes = msg_id_bytes  # the 4 bytes to echo
        self.msg_id = struct.unpack("<I", msg_id_bytes)[0]
        self.input_type = input_type
        self.inputs = inputs  # list of bytes, one per input

    def __repr__(self):
        return "PredictRequest(msg_id=%d, input_type=%s, n=%d)" % (self.msg_id, self.input_type, len(self.inputs))


class FeedbackRequest(object):
    kind = "feedback"

    def __init__(self, msg_id_bytes):
        self.msg_id_bytes = msg_id_bytes
        self.msg_id = struct.unpack("<I", msg_id_bytes)[0]


def decode_frontend_message(frames):
    """Decodes the frames a DEALER receives from the frontend (delimiter first).

    Returns a HeartbeatReply, DrainAck, PredictRequest or FeedbackRequest; raises RpcFrameError.
    """
    frames = [bytes(f) for f in frames]
    if not frames or len(frames[0]) != 0:
        raise RpcFrameError("missing empty delimiter frame")
    version = _read_u32(frames, 1, "rpc version")
    if version != RPC_VERSION:
        raise RpcFrameError("unsupported rpc version %d" % version)
    msg_type = _read_u32(frames, 2, "message type")
    if msg_type == MSG_HEARTBEAT:
        hb = _read_u32(frames, 3, "heartbeat type")
        if hb not in (HEARTBEAT_KEEPALIVE, HEARTBEAT_REQUEST_METADATA):
            raise RpcFrameError("unknown heartbeat type %d" % hb)
        return HeartbeatReply(hb == HEARTBEAT_REQUEST_METADATA)
    if msg_type == MSG_DRAIN:
        if len(frames) != 3:
            raise RpcFrameError("drain acknowledgement: expected 3 frames, got %d" % len(frames))
        return DrainAck()
    if msg_type != MSG_CONTAINER_CONTENT:
        raise RpcFrameError("unknown message type %d" % msg_type)
    _read_u32(frames, 3, "message id")
    msg_id_bytes = frames[3]
    request_type = _read_u32(frames, 4, "request type")
    if request_type == REQUEST_FEEDBACK:
        return FeedbackRequest(msg_id_bytes)
    if request_type != REQUEST_PREDICT:
        raise RpcFrameError("unknown request type %d" % request_type)
    header = _read_header(frames, 5, "input header")
    if len(header) < 2:
        raise RpcFrameError("input header: expected at least the input type and count, got %d values" % len(header))
    type_code, n, sizes = header[0], header[1], header[2:]
    input_type = INPUT_TYPE_BY_CODE.get(type_code)
    if input_type is None:
        raise RpcFrameError("unknown input type code %d" % type_code)
    if len(sizes) != n or len(frames) != 7 + n:
        raise RpcFrameError("predict: header announces %d inputs with %d sizes, got %d input frames"
                            % (n, len(sizes), len(frames) - 7))
    inputs = frames[7:]
    if list(map(len, inputs)) != sizes:
        i, frame, size = next((i, f, s) for i, (f, s) in enumerate(zip(inputs, sizes)) if len(f) != s)
        raise RpcFrameError("predict: input %d is %d bytes, header says %d" % (i, len(frame), size))
    return PredictRequest(msg_id_bytes, input_type, inputs)
