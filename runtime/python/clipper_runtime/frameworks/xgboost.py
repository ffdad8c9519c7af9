"""XGBoost: a model saved with joblib.dump or pickle (XGBClassifier, XGBRegressor, a Booster), or
in XGBoost's own format (Booster.save_model: model.json, model.ubj).

Artifacts: model.joblib, model.pkl, model.json, model.ubj (or CLIPPER_MODEL_FILE; a .json, .ubj or
.bst file is read with Booster.load_model). Default predict: `model.predict(X)` for the
scikit-learn API, `booster.predict(DMatrix(X))` for a Booster; one plain value (or list) per row.
"""

from .common import import_library, load_failed, matrix, rows
from .common import find_artifact
from .sklearn import load_estimator
from . import LoadedModel

FRAMEWORK = "xgboost"
PICKLES = ("model.joblib", "model.pkl")
NATIVE = ("model.json", "model.ubj")
NATIVE_SUFFIXES = (".json", ".ubj", ".bst")


def load(model_path, model_file):
    xgb = import_library(FRAMEWORK, "xgboost", "apt install python3-xgboost, or pip install xgboost")
    import numpy as np
    path = find_artifact(FRAMEWORK, model_path, model_file, PICKLES + NATIVE)
    if path.endswith(NATIVE_SUFFIXES):
        try:
            model = xgb.Booster()
            model.load_model(path)
        except Exception as e:
            raise load_failed(FRAMEWORK, path, e)
    else:
        model, path = load_estimator(FRAMEWORK, model_path, path)

    if isinstance(model, xgb.Booster):
        def predict(batch):
            return rows(np, model.predict(xgb.DMatrix(matrix(np, batch, FRAMEWORK))), FRAMEWORK)
        description, problem = "booster.predict(DMatrix(X))", None
    elif callable(getattr(model, "predict", None)):
        def predict(batch):
            return rows(np, model.predict(matrix(np, batch, FRAMEWORK)), FRAMEWORK)
        description, problem = "model.predict(X)", None
    else:
        predict, description = None, None
        problem = "a %s has no predict method; write a predict(inputs, model) for it" % type(model).__name__
    return LoadedModel(FRAMEWORK, model, path, None, predict, default_error=problem,
                       default_description=description, device_detail="as in the model's saved xgboost parameters")
