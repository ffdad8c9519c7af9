"""scikit-learn: a fitted estimator or pipeline saved with joblib.dump or pickle.

Artifacts: model.joblib, then model.pkl (or CLIPPER_MODEL_FILE). Default predict:
`model.predict(X)` with X the 2-D batch (a list of str for string inputs, as text pipelines take),
each row's prediction as a plain Python value (a str label is sent as is, numbers as JSON).
"""

from .common import find_artifact, import_library, load_failed, load_pickle, matrix, rows, use_model_dir
from . import LoadedModel

FRAMEWORK = "sklearn"
ARTIFACTS = ("model.joblib", "model.pkl")


def load_estimator(framework, model_path, model_file, artifacts=ARTIFACTS):
    """Finds and unpickles the artifact; returns (model, path)."""
    path = find_artifact(framework, model_path, model_file, artifacts)
    try:
        import joblib
    except ImportError:
        joblib = None
        if path.endswith(".joblib"):
            import_library(framework, "joblib", "apt install python3-joblib, or pip install joblib")
    use_model_dir(model_path)
    try:
        return load_pickle(path, joblib), path
    except Exception as e:
        raise load_failed(framework, path, e)


def default_predict(np, model, framework):
    method = getattr(model, "predict", None)
    if not callable(method):
        return None, "a %s has no predict method; write a predict(inputs, model) for it" % type(model).__name__

    def predict(batch):
        if isinstance(batch, list) and batch and isinstance(batch[0], str):
            x = batch  # text pipelines (a vectorizer first) take a list of str
        else:
            x = matrix(np, batch, framework)
        return rows(np, method(x), framework)

    return predict, None


def load(model_path, model_file):
    import_library(FRAMEWORK, "sklearn", "apt install python3-sklearn, or pip install scikit-learn")
    import numpy as np
    model, path = load_estimator(FRAMEWORK, model_path, model_file)
    predict, problem = default_predict(np, model, FRAMEWORK)
    return LoadedModel(FRAMEWORK, model, path, "cpu", predict, default_error=problem,
                       default_description="model.predict(X)")
