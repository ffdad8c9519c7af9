"""ONNX: a model.onnx file served with onnxruntime.

Artifact: model.onnx (or CLIPPER_MODEL_FILE). The session uses ["CUDAExecutionProvider",
"CPUExecutionProvider"] when onnxruntime.get_available_providers() lists the CUDA provider (the
onnxruntime-gpu build), else the CPU provider. Default predict:
`session.run(None, {first_input: X})[0]`, X cast to the first input's element type (and reshaped to
its declared shape when that is static and the sizes agree), one row per input.
"""

from .common import find_artifact, import_library, jsonable, load_failed, matrix, reshape_rows
from . import LoadedModel

FRAMEWORK = "onnx"
ARTIFACTS = ("model.onnx",)
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

# ONNX tensor element types and the numpy dtypes that feed them.
_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
    "tensor(uint64)": "uint64", "tensor(uint32)": "uint32", "tensor(uint16)": "uint16", "tensor(uint8)": "uint8",
    "tensor(bool)": "bool", "tensor(string)": "object",
}


def providers_for(available):
    return [CUDA, CPU] if CUDA in available else [CPU]


def load(model_path, model_file):
    ort = import_library(FRAMEWORK, "onnxruntime", "pip install onnxruntime, or onnxruntime-gpu for CUDA")
    import numpy as np
    path = find_artifact(FRAMEWORK, model_path, model_file, ARTIFACTS)
    try:
        available = list(ort.get_available_providers())
        session = ort.InferenceSession(path, providers=providers_for(available))
        first = session.get_inputs()[0]
    except Exception as e:
        raise load_failed(FRAMEWORK, path, e)
    # The providers the session really got: CUDA falls back to CPU when its libraries are missing.
    try:
        used = list(session.get_providers())
    except Exception:
        used = providers_for(available)
    input_name = first.name
    element_type = getattr(first, "type", None)
    dtype = _DTYPES.get(element_type)
    shape = getattr(first, "shape", None)

    def predict(batch):
        if dtype == "object" or (isinstance(batch, list) and batch and isinstance(batch[0], str)):
            if not (isinstance(batch, list) and all(isinstance(s, str) for s in batch)):
                raise ValueError("the model's input %r takes strings; serve it with input type strings" % input_name)
            x = np.array(batch, dtype=object)
            if shape is not None and len(shape) == 2:
                x = x.reshape(len(batch), 1)
        else:
            x = matrix(np, batch, FRAMEWORK)
            if dtype is not None:
                x = x.astype(dtype)
            x = reshape_rows(np, x, shape)
        result = session.run(None, {input_name: x})[0]
        return jsonable(np, result)

    device = "cuda" if CUDA in used else "cpu"
    return LoadedModel(FRAMEWORK, session, path, device, predict, device_detail="providers %s" % ", ".join(used),
                       kind="InferenceSession (input %r, %s)" % (input_name, element_type),
                       default_description="session.run(None, {%r: X})[0]" % input_name)
