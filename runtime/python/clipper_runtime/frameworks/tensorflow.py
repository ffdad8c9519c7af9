"""TensorFlow: a SavedModel directory served through its serving_default signature.

Artifact: the directory saved_model/ in the model directory, or the model directory itself when it
holds saved_model.pb (or CLIPPER_MODEL_FILE naming the SavedModel directory). Loaded with
tf.saved_model.load, which places work on a GPU when TensorFlow sees one. Default predict: calls
`signatures["serving_default"]` with the batch as its one input (converted to the input's dtype,
reshaped to its static shape when the sizes agree); one output per row, or a dict of the named
outputs per row when the signature has several.
"""

import os

from .common import import_library, jsonable, load_failed, matrix, reshape_rows, resolve
from ..loader import LoadError
from . import LoadedModel

FRAMEWORK = "tensorflow"
SIGNATURE = "serving_default"


def find_saved_model(model_path, model_file):
    if model_file:
        path = resolve(model_path, model_file)
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise LoadError("CLIPPER_FRAMEWORK=tensorflow: CLIPPER_MODEL_FILE=%s: %s is not a SavedModel directory "
                            "(no saved_model.pb in it)" % (model_file, path))
        return path
    for path in (resolve(model_path, "saved_model"), os.path.normpath(model_path)):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return path
    raise LoadError("CLIPPER_FRAMEWORK=tensorflow found no SavedModel in %s (looked for saved_model/saved_model.pb "
                    "and saved_model.pb; set CLIPPER_MODEL_FILE to the SavedModel directory)" % model_path)


def _shape(spec):
    try:
        return spec.shape.as_list()
    except Exception:  # unknown rank
        return None


def load(model_path, model_file):
    tf = import_library(FRAMEWORK, "tensorflow", "pip install tensorflow")
    import numpy as np
    path = find_saved_model(model_path, model_file)
    try:
        loaded = tf.saved_model.load(path)
    except Exception as e:
        raise load_failed(FRAMEWORK, path, e)
    try:
        gpus = list(tf.config.list_physical_devices("GPU"))
    except Exception:
        gpus = []
    device = "cuda" if gpus else "cpu"
    detail = "GPU (%d visible to TensorFlow)" % len(gpus) if gpus else "CPU (no GPU visible to TensorFlow)"

    signatures = getattr(loaded, "signatures", None) or {}
    problem = None
    signature = None
    input_name = spec = None
    if SIGNATURE not in signatures:
        problem = ("the SavedModel has no %r signature (it has: %s); write a predict(inputs, model) that calls it"
                   % (SIGNATURE, ", ".join(sorted(signatures)) or "none"))
    else:
        signature = signatures[SIGNATURE]
        _args, kwargs = signature.structured_input_signature
        if len(kwargs) != 1:
            problem = ("the %r signature takes %d inputs (%s); the default predict feeds one; write a "
                       "predict(inputs, model)" % (SIGNATURE, len(kwargs), ", ".join(sorted(kwargs))))
        else:
            input_name, spec = list(kwargs.items())[0]

    def predict(batch):
        if isinstance(batch, list) and batch and isinstance(batch[0], str):
            x = tf.constant(batch, dtype=tf.string)
        else:
            x = matrix(np, batch, FRAMEWORK)
            x = tf.constant(reshape_rows(np, x, _shape(spec)), dtype=spec.dtype)
        out = signature(**{input_name: x})
        if isinstance(out, dict):
            values = {name: jsonable(np, tensor.numpy()) for name, tensor in out.items()}
            if len(values) == 1:
                return list(values.values())[0]
            names = sorted(values)
            n = len(values[names[0]])
            return [{name: values[name][i] for name in names} for i in range(n)]
        return jsonable(np, out.numpy())

    kind = "SavedModel (signature %r, input %r)" % (SIGNATURE, input_name) if input_name else "SavedModel"
    return LoadedModel(FRAMEWORK, loaded, path, device, predict, kind=kind, default_error=problem, device_detail=detail,
                       default_description="signatures[%r](%s=X)" % (SIGNATURE, input_name))
