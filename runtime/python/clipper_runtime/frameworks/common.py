"""Helpers the framework runtimes share: finding the artifact, importing the library, shaping
batches for a model and its outputs for JSON."""

import importlib
import os
import sys
import traceback

from ..loader import LoadError


def import_library(framework, module, install_hint):
    """Imports the framework's library or raises a one-line LoadError naming what is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise LoadError("CLIPPER_FRAMEWORK=%s needs %s: %s (%s)" % (framework, module, e, install_hint))
    except Exception as e:  # a broken installation: its own message and traceback
        raise LoadError("CLIPPER_FRAMEWORK=%s needs %s, and importing it failed: %s: %s"
                        % (framework, module, type(e).__name__, e), traceback.format_exc())


def use_model_dir(model_path):
    """Puts the model directory on sys.path, so pickled objects can import classes shipped with it."""
    directory = os.path.abspath(model_path)
    if os.path.isdir(directory) and directory not in sys.path:
        sys.path.insert(0, directory)


def resolve(model_path, name):
    return os.path.normpath(name if os.path.isabs(name) else os.path.join(model_path, name))


def find_artifact(framework, model_path, model_file, names, directory=False):
    """The artifact to load: CLIPPER_MODEL_FILE when set (relative to the model directory), else the
    first of `names` found in the model directory. Raises LoadError when there is none."""
    if model_file:
        path = resolve(model_path, model_file)
        exists = os.path.isdir(path) if directory else os.path.isfile(path)
        if not exists:
            raise LoadError("CLIPPER_FRAMEWORK=%s: CLIPPER_MODEL_FILE=%s: %s is not a %s"
                            % (framework, model_file, path, "directory" if directory else "file"))
        return path
    for name in names:
        path = resolve(model_path, name)
        if os.path.isfile(path):
            return path
    raise LoadError("CLIPPER_FRAMEWORK=%s found no model artifact in %s (looked for %s; set CLIPPER_MODEL_FILE "
                    "to load another file)" % (framework, model_path, ", ".join(names)))


def load_failed(framework, path, error):
    """A LoadError for an artifact that exists but could not be loaded (with the traceback)."""
    return LoadError("CLIPPER_FRAMEWORK=%s could not load %s: %s: %s"
                     % (framework, path, type(error).__name__, error), traceback.format_exc())


def load_pickle(path, joblib=None):
    """joblib.load when joblib is at hand (it reads plain pickles too), else pickle.load."""
    if joblib is not None:
        return joblib.load(path)
    import pickle
    with open(path, "rb") as f:
        return pickle.load(f)


def matrix(np, batch, framework):
    """The batch as a 2-D numeric array (one row per input), or ValueError saying why it is not one."""
    if isinstance(batch, np.ndarray):
        if batch.ndim == 2:
            return batch
        raise ValueError("the %s default predict needs a 2-D batch, got %d dimensions" % (framework, batch.ndim))
    if batch and isinstance(batch[0], str):
        raise ValueError("the %s default predict needs numeric inputs, not strings; write a predict(inputs, model) "
                         "that turns the strings into the model's inputs" % framework)
    lengths = sorted(set(len(x) for x in batch))
    raise ValueError("the %s default predict needs inputs of one length to form a 2-D batch, got lengths %s"
                     % (framework, ", ".join(str(n) for n in lengths[:5])))


def reshape_rows(np, x, shape):
    """Reshapes flat rows to a model's declared input shape ([batch, d1, d2, ...] with static dims),
    when the sizes agree; otherwise returns x unchanged (the model then says what it expected)."""
    if shape is None:
        return x
    dims = list(shape)
    if len(dims) == 1 and x.ndim == 2 and x.shape[1] == 1:
        return x.reshape(x.shape[0])
    if len(dims) <= 2:
        return x
    rest = dims[1:]
    if not all(isinstance(d, int) and d > 0 for d in rest):
        return x
    size = 1
    for d in rest:
        size *= d
    if x.ndim == 2 and x.shape[1] == size:
        return x.reshape([x.shape[0]] + rest)
    return x


def jsonable(np, value):
    """Turns a model output into plain Python values: arrays to lists, numpy scalars to numbers,
    bytes to str (UTF-8, undecodable bytes replaced)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [jsonable(np, v) for v in value]
    if isinstance(value, dict):
        return {(jsonable(np, k) if isinstance(k, (bytes, np.generic)) else k): jsonable(np, v) for k, v in value.items()}
    return value


def rows(np, result, framework):
    """The outputs of a default predict: one JSON-able value per row of `result`."""
    if isinstance(result, np.ndarray) and result.ndim == 0:
        raise ValueError("the %s model returned a scalar, not one output per input" % framework)
    return jsonable(np, result)
