"""PyTorch: a TorchScript module, or a pickled nn.Module with an optional state dict.

Artifacts: model.pt, model.pth, model.torchscript (read with torch.jit.load; a file that is not
TorchScript is read with torch.load as a whole pickled module), then model.pkl (a pickled nn.Module,
torch.save or pickle) with state_dict.pt applied to it when present. CLIPPER_MODEL_FILE overrides.
The model directory is on sys.path while unpickling, so the module's class may ship next to it.

The model is moved to "cuda" when torch.cuda.is_available(), and put in eval mode. Default predict:
`model(torch.from_numpy(X).float().to(device))` under torch.no_grad(), then `.cpu().tolist()`, one
row per input.
"""

import inspect
import os

from .common import find_artifact, import_library, load_failed, matrix, resolve, use_model_dir
from ..loader import LoadError
from . import LoadedModel

FRAMEWORK = "pytorch"
TORCHSCRIPT = ("model.pt", "model.pth", "model.torchscript")
PICKLED = "model.pkl"
STATE_DICT = "state_dict.pt"


def _torch_load(torch, path, device, whole_objects):
    """torch.load; whole pickled modules need weights_only=False on torch versions defaulting to True."""
    kwargs = {"map_location": device}
    if whole_objects:
        try:
            if "weights_only" in inspect.signature(torch.load).parameters:
                kwargs["weights_only"] = False
        except (TypeError, ValueError):
            pass
    return torch.load(path, **kwargs)


def _load_pickled_module(torch, path, device):
    """A whole nn.Module from torch.save (or a plain pickle); returns the module."""
    try:
        obj = _torch_load(torch, path, device, True)
    except Exception as torch_error:
        import pickle
        try:
            with open(path, "rb") as f:
                obj = pickle.load(f)
        except Exception:
            raise load_failed(FRAMEWORK, path, torch_error)
    if not isinstance(obj, torch.nn.Module):
        raise LoadError("CLIPPER_FRAMEWORK=pytorch: %s holds a %s, not a torch.nn.Module"
                        % (path, type(obj).__name__))
    return obj


def _apply_state_dict(torch, module, path, device):
    try:
        state = _torch_load(torch, path, device, False)
        module.load_state_dict(state)
    except Exception as e:
        raise load_failed(FRAMEWORK, path, e)


def _load_module(torch, model_path, path, device):
    """Returns (module, kind, artifact description)."""
    state_path = resolve(model_path, STATE_DICT)
    has_state = os.path.isfile(state_path) and os.path.abspath(state_path) != os.path.abspath(path)
    if path.endswith(".pkl"):
        module = _load_pickled_module(torch, path, device)
        if has_state:
            _apply_state_dict(torch, module, state_path, device)
            return module, "pickled %s" % type(module).__name__, "%s + %s" % (path, state_path)
        return module, "pickled %s" % type(module).__name__, path
    try:
        return torch.jit.load(path, map_location=device), "TorchScript module", path
    except Exception as jit_error:
        try:
            obj = _torch_load(torch, path, device, True)
        except Exception:
            raise load_failed(FRAMEWORK, path, jit_error)
    if isinstance(obj, torch.nn.Module):
        return obj, "pickled %s" % type(obj).__name__, path
    if isinstance(obj, dict):
        pickled = resolve(model_path, PICKLED)
        if os.path.isfile(pickled):
            module = _load_pickled_module(torch, pickled, device)
            _apply_state_dict(torch, module, path, device)
            return module, "pickled %s" % type(module).__name__, "%s + %s" % (pickled, path)
        raise LoadError("CLIPPER_FRAMEWORK=pytorch: %s holds a state dict, not a model; save TorchScript "
                        "(torch.jit.script(model).save), or ship the module pickled as %s next to it" % (path, PICKLED))
    raise LoadError("CLIPPER_FRAMEWORK=pytorch: %s holds a %s, not TorchScript or a torch.nn.Module"
                    % (path, type(obj).__name__))


def load(model_path, model_file):
    torch = import_library(FRAMEWORK, "torch", "apt install python3-torch, or pip install torch")
    import numpy as np
    path = find_artifact(FRAMEWORK, model_path, model_file, TORCHSCRIPT + (PICKLED,))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    use_model_dir(model_path)
    module, kind, artifact = _load_module(torch, model_path, path, device)
    try:
        module = module.to(device)
        module.eval()
    except Exception as e:
        raise load_failed(FRAMEWORK, path, e)

    def predict(batch):
        x = torch.from_numpy(np.ascontiguousarray(matrix(np, batch, FRAMEWORK))).float().to(device)
        with torch.no_grad():
            out = module(x)
        if not torch.is_tensor(out):
            raise ValueError("the model returned a %s, not a tensor; write a predict(inputs, model) to pick "
                             "the outputs" % type(out).__name__)
        if out.dim() == 0:
            raise ValueError("the model returned a scalar tensor, not one output per input")
        return out.cpu().tolist()

    detail = device
    if device == "cuda":
        try:
            detail = "cuda (%s)" % torch.cuda.get_device_name(0)
        except Exception:
            pass
    return LoadedModel(FRAMEWORK, module, artifact, device, predict, kind=kind, device_detail=detail,
                       default_description="model(torch.from_numpy(X).float().to(%r)) under torch.no_grad()" % device)
