"""Loads the user's predict function from a Python file, or a pickled callable.

The spec is "file.py[:func]": the file is relative to the model directory (CLIPPER_MODEL_PATH) or
absolute, and the function defaults to `predict`. The file's own directory and the model directory
go on sys.path first, so the file can import sibling modules and helpers shipped with the model.

A spec naming a `.pkl` file loads a callable pickled with cloudpickle instead (any
":func" part is ignored): one written by `python3 -m clipper_runtime.save` (closure.py describes its
envelope, which records the cloudpickle and Python versions that wrote it), or a plain
`cloudpickle.dumps(fn)` as Clipper's deployers wrote it.
"""

import importlib.util
import os
import re
import sys

DEFAULT_FUNCTION = "predict"
# Predict files holding a pickled callable rather than Python source.
PICKLE_EXTENSIONS = (".pkl",)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LoadError(Exception):
    """The predict function could not be loaded; the message says why (and `detail` the traceback)."""

    def __init__(self, message, detail=None):
        Exception.__init__(self, message)
        self.detail = detail


def a_type(value):
    """"a dict", "an int": the type of `value` with its article, for messages."""
    name = type(value).__name__
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def parse_predict_spec(spec):
    """Splits "file.py[:func]" into (file, func). Raises ValueError for a malformed spec."""
    spec = spec.strip()
    if not spec:
        raise ValueError("must name a Python file, as file.py[:function]")
    path, func = spec, DEFAULT_FUNCTION
    # Split on the last colon only when what follows is an identifier, so that a path such as
    # C:\models\predict.py is not mistaken for file:function.
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if _IDENTIFIER.match(tail):
            path, func = head, tail
        elif "/" not in tail and "\\" not in tail:
            raise ValueError("'%s' is not a valid function name in '%s' (expected file.py[:function])" % (tail, spec))
    if not path:
        raise ValueError("must name a Python file before ':' in '%s'" % spec)
    return path, func


def resolve_predict_file(model_path, file_part):
    if os.path.isabs(file_part):
        return os.path.normpath(file_part)
    return os.path.normpath(os.path.join(model_path, file_part))


def _module_name(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    if _IDENTIFIER.match(stem) and stem not in sys.modules:
        return stem
    return "clipper_user_model"


def is_pickle_file(path):
    """Whether a predict file is a pickled callable (by its extension) rather than Python source."""
    return os.path.splitext(path)[1].lower() in PICKLE_EXTENSIONS


def load_predict_function(model_path, spec, warn=None):
    """Returns (callable, file path, function name). Raises LoadError or ValueError (bad spec).

    `warn(message)` is told when a pickled callable was written by another cloudpickle or Python
    version than this one (it may still load; when it does not, the LoadError names both)."""
    file_part, func_name = parse_predict_spec(spec)
    path = resolve_predict_file(model_path, file_part)
    if not os.path.isfile(path):
        raise LoadError("predict file %s does not exist (CLIPPER_PREDICT=%s, CLIPPER_MODEL_PATH=%s)"
                        % (path, spec, model_path))
    for directory in (os.path.abspath(model_path), os.path.dirname(os.path.abspath(path))):
        if os.path.isdir(directory) and directory not in sys.path:
            sys.path.insert(0, directory)
    if is_pickle_file(path):
        from .closure import load_closure
        func, name = load_closure(path, warn=warn)
        return func, path, name
    name = _module_name(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise LoadError("cannot import %s as a Python module (is it a .py file?)" % path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # a model file calling sys.exit() is a load error too
        sys.modules.pop(name, None)
        import traceback
        raise LoadError("importing %s failed: %s: %s" % (path, type(e).__name__, e), traceback.format_exc())
    func = getattr(module, func_name, None)
    if func is None:
        raise LoadError("%s defines no '%s'" % (path, func_name))
    if not callable(func):
        raise LoadError("'%s' in %s is %s, not a function" % (func_name, path, a_type(func)))
    return func, path, func_name


def model_parameter(func):
    """How `func` takes the framework's model: "required" when it has a second positional parameter
    without a default (predict(inputs, model)), "optional" when that parameter has a default and is
    named `model`, else None (predict(inputs) only; a default such as threshold=0.5 is left alone)."""
    import inspect
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    positional = [p for p in signature.parameters.values()
                  if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        return None
    second = positional[1]
    if second.default is inspect.Parameter.empty:
        return "required"
    return "optional" if second.name == "model" else None
