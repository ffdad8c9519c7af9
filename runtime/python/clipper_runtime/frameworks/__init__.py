"""Framework runtimes: load a model artifact once at start, and give it a default predict.

CLIPPER_FRAMEWORK names the framework (python, pytorch, sklearn, xgboost, onnx, tensorflow; python,
the default, loads no artifact). Each framework lives in its own module here and imports its library
only when chosen, so a container needs only the library of the framework it serves. A framework's
`load(model_path, model_file)` returns a LoadedModel or raises LoadError. See docs/frameworks.md.
"""

import importlib

from ..loader import LoadError

# Framework name -> the module in this package that loads it (None: no artifact to load).
REGISTRY = {
    "python": None,
    "pytorch": "pytorch",
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "onnx": "onnx",
    "tensorflow": "tensorflow",
}

DEFAULT_FRAMEWORK = "python"


def canonical_framework(name):
    """The registered framework for `name` (case and surrounding space ignored), or None."""
    name = str(name).strip().lower()
    return name if name in REGISTRY else None


class LoadedModel(object):
    """A model loaded by a framework runtime.

    model: what a user's predict(inputs, model) receives (an estimator, an nn.Module, an
    InferenceSession, a loaded SavedModel). device: "cuda" or "cpu" (None when the framework decides
    by itself), device_detail: the same for the log (the GPU's name, the providers). predict: the framework's default predict, batch -> one
    output per input. default_error: why the default predict cannot serve this model (None when it
    can); the runtime refuses to start on it only when no user predict function is given.
    """

    def __init__(self, framework, model, artifact, device, predict, kind=None, default_error=None,
                 default_description=None, device_detail=None):
        self.framework = framework
        self.model = model
        self.artifact = artifact
        self.device = device
        self.predict = predict
        self.kind = kind or type(model).__name__
        self.default_error = default_error
        self.default_description = default_description or "%s default predict" % framework
        self.device_detail = device_detail or device

    def describe(self):
        return "framework %s: loaded %s from %s (device: %s)" % (self.framework, self.kind, self.artifact, self.device_detail)


def load(framework, model_path, model_file=None):
    """Loads the artifact of `framework` (a canonical name). Returns a LoadedModel, or None for a
    framework without artifacts (python). Raises LoadError with a one-line message."""
    module_name = REGISTRY[framework]
    if module_name is None:
        return None
    module = importlib.import_module("." + module_name, __name__)
    loaded = module.load(model_path, model_file or None)
    return loaded
