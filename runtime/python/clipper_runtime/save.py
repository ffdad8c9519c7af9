"""Saves a predict function, closures and all, as a .pkl the runtime serves (CLIPPER_PREDICT=func.pkl).

    python3 -m clipper_runtime.save predict.py[:function] out.pkl
    python3 -m clipper_runtime.save --inspect out.pkl

or from Python:

    from clipper_runtime.save import save
    save(predict, "out.pkl")

The function is pickled with cloudpickle, by value: its code, the globals it uses and the values its
closure captures (a numpy array of weights, a fitted model, ...) travel inside the file, and so do the
functions and classes of the user's own modules (the function's module and the other modules loaded
from files in its directory), so predict.py and its helpers are not needed where it is loaded.
Installed packages (numpy, sklearn, ...) and the standard library are pickled by reference: they must
be importable where the runtime loads the file. The file starts with a small header recording the
cloudpickle and Python versions that wrote it (closure.py describes the envelope).

Exit codes: 0 written (or inspected), 1 the function could not be loaded or pickled, 2 usage.
"""

import argparse
import json
import os
import sys
import sysconfig
import tempfile

from . import __version__
from .closure import FORMAT, FORMAT_VERSION, encode_header, inspect_file, python_version
from .loader import LoadError, a_type, is_pickle_file, load_predict_function

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class SaveError(Exception):
    """The function could not be saved; the message says why."""


def _library_dirs():
    """Directories whose modules are libraries (pickled by reference), never the user's own."""
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(os.path.realpath(path))
    dirs.add(os.path.realpath(os.path.dirname(os.__file__)))
    return dirs


def _inside(directory, path):
    try:
        return os.path.commonpath([directory, path]) == directory
    except ValueError:
        return False


def _is_library_file(path, library_dirs):
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return any(_inside(d, path) for d in library_dirs)


def _function_module(fn):
    name = getattr(fn, "__module__", None) or getattr(type(fn), "__module__", None)
    inner = getattr(fn, "func", None)  # functools.partial
    if name in (None, "functools") and inner is not None:
        name = getattr(inner, "__module__", None)
    return sys.modules.get(name) if name else None


def user_modules(fn):
    """The modules to pickle by value for `fn`: its own module, and every loaded module whose file lies
    in that module's directory (or below; the working directory for a function defined in a notebook),
    leaving out libraries, __main__ (cloudpickle pickles its functions by value anyway) and
    clipper_runtime itself."""
    module = _function_module(fn)
    source = getattr(module, "__file__", None) if module is not None else None
    library_dirs = _library_dirs()
    if source:
        if _is_library_file(os.path.realpath(source), library_dirs):
            return []
        root = os.path.dirname(os.path.realpath(source))
    elif module is not None and module.__name__ == "__main__":
        root = os.path.realpath(os.getcwd())  # a notebook or `python -c`: local modules come from here
    else:
        return []
    found = []
    for name, candidate in sorted(sys.modules.items()):
        path = getattr(candidate, "__file__", None)
        if not path or name == "__main__" or name.split(".")[0] == "clipper_runtime":
            continue
        path = os.path.realpath(path)
        if _inside(root, path) and not _is_library_file(path, library_dirs):
            found.append(candidate)
    return found


def save(fn, path, by_value=(), name=None):
    """Pickles the callable `fn` to `path` (written whole, then renamed into place) and returns the
    header recorded with it. `by_value`: more modules (objects or names) to pickle by value; `name`:
    the function's name in the header and the runtime's log (default its __qualname__)."""
    if not callable(fn):
        raise TypeError("save() needs the predict function (a callable), got %s" % a_type(fn))
    try:
        import cloudpickle
    except ImportError as e:
        raise SaveError("saving a predict function needs cloudpickle (%s): pip install cloudpickle, or apt-get install "
                        "python3-cloudpickle" % e)
    modules = user_modules(fn)
    for extra in by_value:
        module = sys.modules.get(extra) if isinstance(extra, str) else extra
        if module is None:
            raise SaveError("by_value names module '%s', which is not imported" % extra)
        if module not in modules:
            modules.append(module)
    register = getattr(cloudpickle, "register_pickle_by_value", None)
    registered = []
    if register is None and modules:
        raise SaveError("cloudpickle %s cannot pickle modules by value (cloudpickle 2.0 or later can); the function's "
                        "module %s would be needed where it is loaded" % (cloudpickle.__version__, modules[0].__name__))
    try:
        already = set(cloudpickle.list_registry_pickle_by_value()) if register else set()
        for module in modules:
            if module.__name__ not in already:
                register(module)
                registered.append(module)
        payload = cloudpickle.dumps(fn)
    except Exception as e:
        raise SaveError("cloudpickle could not pickle %s: %s: %s" % (_describe(fn), type(e).__name__, e))
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)
    module = _function_module(fn)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cloudpickle": cloudpickle.__version__,
        "python": python_version(),
        "function": name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__,
        "module": module.__name__ if module is not None else None,
        "by_value": sorted(m.__name__ for m in modules),
        "saved_by": "clipper_runtime %s" % __version__,
    }
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(encode_header(header))
            f.write(payload)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise
    return header


def _describe(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or "a %s" % type(fn).__name__


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(message)


def _parser():
    parser = _Parser(
        prog="python3 -m clipper_runtime.save",
        description="Pickle a predict function (closures and the user's own modules by value) for CLIPPER_PREDICT=FILE.pkl.",
        epilog="--inspect FILE.pkl prints the versions a saved file records, as JSON.")
    parser.add_argument("--inspect", metavar="FILE.pkl", help="print the header of a saved file (JSON) and exit")
    parser.add_argument("spec", nargs="?", metavar="FILE.py[:FUNCTION]", help="the predict function (default function: predict)")
    parser.add_argument("out", nargs="?", metavar="OUT.pkl", help="where to write it")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.inspect:
            if args.spec or args.out:
                raise _UsageError("--inspect takes one file and nothing else")
        elif not args.spec or not args.out:
            raise _UsageError("expected FILE.py[:FUNCTION] OUT.pkl")
    except _UsageError as e:
        sys.stderr.write("%s\nerror: %s\n" % (parser.format_usage().rstrip(), e))
        return EXIT_USAGE
    if args.inspect:
        try:
            header = inspect_file(args.inspect)
        except OSError as e:
            sys.stderr.write("error: cannot read %s: %s\n" % (args.inspect, e))
            return EXIT_FAILED
        print(json.dumps(header if header is not None else {"format": None}, sort_keys=True))
        return EXIT_OK
    spec_path = args.spec.rsplit(":", 1)[0] if ":" in args.spec else args.spec
    if is_pickle_file(spec_path):
        sys.stderr.write("error: %s is already a pickle; name the Python file that defines the function (FILE.py[:FUNCTION])\n"
                         % args.spec)
        return EXIT_USAGE
    try:
        fn, source, name = load_predict_function(os.getcwd(), args.spec)
        header = save(fn, args.out, name=name)
    except ValueError as e:  # a malformed FILE.py[:FUNCTION]
        sys.stderr.write("error: %s\n" % e)
        return EXIT_USAGE
    except LoadError as e:
        sys.stderr.write("error: %s\n" % e)
        if e.detail:
            sys.stderr.write(e.detail if e.detail.endswith("\n") else e.detail + "\n")
        return EXIT_FAILED
    except (SaveError, OSError) as e:
        sys.stderr.write("error: %s\n" % e)
        return EXIT_FAILED
    size = os.path.getsize(os.path.abspath(args.out))
    print("wrote %s (%d bytes): %s from %s, pickled with cloudpickle %s on Python %s; by value: %s"
          % (args.out, size, name, source, header["cloudpickle"], header["python"], ", ".join(header["by_value"]) or "none"))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
