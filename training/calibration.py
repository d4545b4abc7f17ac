"""Probability calibration maps: none, Platt (logistic on the logit) and isotonic regression.

A map is fitted on out-of-sample forecasts and outcomes of an earlier period and applied to the
forecasts of a later one; which map to use is chosen on the validation window (see
``training.walkforward``), never on the test window.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

METHODS = ("none", "platt", "isotonic")
EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def fit_calibrator(method: str, p: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping forecasts to calibrated forecasts, fitted on (``p``, ``y``)."""
    if method == "none":
        return lambda q: np.asarray(q, dtype=float)
    if method == "platt":
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p).reshape(-1, 1), y)
        return lambda q: lr.predict_proba(_logit(q).reshape(-1, 1))[:, 1]
    if method == "isotonic":
        iso = IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip").fit(p, y)
        return lambda q: iso.predict(np.asarray(q, dtype=float))
    raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
