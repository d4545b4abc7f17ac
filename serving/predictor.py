"""Fast single-row prediction: the champion model compiled to plain numpy where its type allows.

The registered models are scikit-learn style estimators fed a DataFrame. On the live path a
DataFrame per request costs far more than the model itself, so known model types are compiled:
a logistic-regression pipeline to a dot product, XGBoost to ``inplace_predict`` on one thread.
Anything else falls back to ``predict_proba`` on a one-row DataFrame. The compiled function is
tested against the model's own ``predict_proba`` (tests/serving/test_predictor.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

PredictArray = Callable[[np.ndarray], np.ndarray]
"""Rows of features (2-D array, columns in the model's feature order) -> P(player A wins)."""


def _logistic_pipeline(model: Pipeline) -> PredictArray | None:
    steps = dict(model.named_steps)
    impute, scale, logit = steps.get("impute"), steps.get("scale"), steps.get("logit")
    if logit is None or impute is None or getattr(impute, "add_indicator", False):
        return None
    fill = np.asarray(impute.statistics_, dtype=float)
    mean = np.asarray(scale.mean_, dtype=float) if scale is not None else np.zeros_like(fill)
    scl = np.asarray(scale.scale_, dtype=float) if scale is not None else np.ones_like(fill)
    coef = np.asarray(logit.coef_[0], dtype=float) / scl
    intercept = float(logit.intercept_[0]) - float(np.dot(coef, mean))

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.where(np.isnan(x), fill, x)
        return 1.0 / (1.0 + np.exp(-(x @ coef + intercept)))

    return predict


def _xgboost(model: XGBClassifier) -> PredictArray:
    booster = model.get_booster()
    booster.set_param({"nthread": 1})  # thread oversubscription turns 8 ms into 200 ms (PERFORMANCE.md)
    best = getattr(model, "best_iteration", None)
    rng = (0, best + 1) if best is not None else (0, 0)

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(booster.inplace_predict(x, iteration_range=rng), dtype=float).reshape(-1)

    return predict


def compile_predictor(model: Any, features: list[str]) -> tuple[PredictArray, str]:
    """A fast predict function for ``model`` and how it was compiled ('numpy', 'xgboost', 'generic')."""
    if isinstance(model, Pipeline):
        fast = _logistic_pipeline(model)
        if fast is not None:
            return fast, "numpy"
    if isinstance(model, XGBClassifier):
        return _xgboost(model), "xgboost"

    def generic(x: np.ndarray) -> np.ndarray:
        return model.predict_proba(pd.DataFrame(x, columns=features))[:, 1]

    return generic, "generic"


def compile_inplay_predictor(model: Any, features: list[str]) -> tuple[PredictArray, str]:
    """A fast predict function for an in-play model (rows of ``features.inplay_state.INPLAY_FEATURES``)
    and its family ('markov', 'markov_updated', 'learned'); single-threaded XGBoost for the live path."""
    from features.inplay_state import INPLAY_FEATURES

    if list(features) != list(INPLAY_FEATURES):
        raise ValueError(
            f"the in-play model expects features {list(features)[:5]}..., this code computes "
            f"{list(INPLAY_FEATURES)[:5]}..."
        )
    predict = getattr(model, "predict_features", None)
    if predict is None:

        def generic(x: np.ndarray) -> np.ndarray:
            return model.predict_proba(pd.DataFrame(x, columns=features))[:, 1]

        return generic, "generic"
    if hasattr(model, "single_threaded"):
        model.single_threaded()
    return predict, str(getattr(model, "kind", "generic"))
