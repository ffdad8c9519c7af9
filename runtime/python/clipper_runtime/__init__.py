"""Clipper-compatible Python model-container runtime.

`python3 -m clipper_runtime` loads a predict function (CLIPPER_PREDICT, "file.py[:func]" under
CLIPPER_MODEL_PATH) and serves it to a query frontend over Clipper's RPC v3 (ZeroMQ). See
container.py for the environment variables and the predict contract, rpc.py for the frames.
"""

__version__ = "0.1.0"

from .rpc import BATCH_ERROR_PREFIX, RPC_VERSION  # noqa: F401  (re-exported)
