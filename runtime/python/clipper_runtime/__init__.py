"""Clipper-compatible Python model-container runtime.

`python3 -m clipper_runtime` loads a predict function (CLIPPER_PREDICT, "file.py[:func]" under
CLIPPER_MODEL_PATH) and serves it to a query frontend over Clipper's RPC v3 (ZeroMQ). With
CLIPPER_FRAMEWORK set (pytorch, sklearn, xgboost, onnx, tensorflow) it first loads the model artifact
(frameworks/, docs/frameworks.md), which a predict function gets as its second argument or from
`clipper_runtime.model()`. See container.py for the environment variables and the predict contract,
rpc.py for the frames.
"""

__version__ = "0.1.0"

from .rpc import BATCH_ERROR_PREFIX, RPC_VERSION  # noqa: F401  (re-exported)

# The framework model loaded at start (a frameworks.LoadedModel), or None.
_loaded = None


def _set_loaded(loaded):
    global _loaded
    _loaded = loaded


def model():
    """The model CLIPPER_FRAMEWORK loaded at start (an estimator, nn.Module, InferenceSession, ...).
    Raises RuntimeError when no framework model is loaded (CLIPPER_FRAMEWORK=python)."""
    if _loaded is None:
        raise RuntimeError("no framework model is loaded: set CLIPPER_FRAMEWORK to the model's framework "
                           "(pytorch, sklearn, xgboost, onnx, tensorflow) and ship its artifact")
    return _loaded.model


def device():
    """Where the framework model runs ("cuda", "cpu", the onnxruntime providers, ...), or None."""
    return _loaded.device if _loaded is not None else None
