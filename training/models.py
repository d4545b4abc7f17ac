"""The pre-match model candidates. Every candidate is a scikit-learn style estimator that takes the
feature table (``features.prematch.FEATURES`` columns) and returns P(player A wins).

- ``higher_rank``: logistic regression on the log-rank difference alone (the ranking baseline).
- ``elo``: FiveThirtyEight Elo probability, no fitting (the rating baseline).
- ``logistic``: regularised logistic regression on all features.
- ``xgboost``: gradient-boosted trees, early-stopped on the validation window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from features.prematch import FEATURES, TOUR_FEATURE, mirror_rows, mirror_spec
from features.ratings import win_probability
from training.metrics import log_loss


class ColumnLogit(BaseEstimator, ClassifierMixin):
    """Logistic regression on a few named columns (missing values imputed by the training median)."""

    def __init__(self, columns: tuple[str, ...] = ("log_rank_diff",), C: float = 1.0):
        self.columns = columns
        self.C = C

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> ColumnLogit:
        self.pipeline_ = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median")),
                ("logit", LogisticRegression(C=self.C, max_iter=1000)),
            ]
        ).fit(X[list(self.columns)], y)
        self.classes_ = self.pipeline_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(X[list(self.columns)])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


class ProbabilityColumn(BaseEstimator, ClassifierMixin):
    """A forecaster that reads its probability from one feature column (e.g. the Elo probability)."""

    def __init__(self, column: str = "elo_prob"):
        self.column = column

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> ProbabilityColumn:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(X[self.column].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


class BlendedElo(BaseEstimator, ClassifierMixin):
    """Surface-blended Elo: P(A) = ``features.ratings.win_probability(w * elo_diff + (1 - w) * surface_elo_diff)``.

    The blend weight ``w`` is the grid value (0, 0.05, .., 1) with the lowest log-loss on the rows
    it is fitted on -- the validation rows (``eval_set``) when given, else the rows passed to ``fit``.
    Elo itself is computed before each match, so those rows are out of sample for the ratings.
    """

    GRID = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))

    def fit(self, X: pd.DataFrame, y: np.ndarray, eval_set: list | None = None, verbose: bool = False) -> BlendedElo:
        if eval_set:
            X, y = eval_set[0]
        y = np.asarray(y, dtype=float)
        overall = X["elo_diff"].to_numpy(dtype=float)
        surface = X["surface_elo_diff"].to_numpy(dtype=float)
        best, best_ll = 0.5, np.inf
        for w in self.GRID:
            p = np.clip(win_probability(w * overall + (1 - w) * surface), 1e-6, 1 - 1e-6)
            ll = log_loss(y, p)
            if ll < best_ll:
                best, best_ll = float(w), ll
        self.weight_ = best
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        d = self.weight_ * X["elo_diff"].to_numpy(dtype=float) + (1 - self.weight_) * X["surface_elo_diff"].to_numpy(
            dtype=float
        )
        p = np.clip(win_probability(d), 1e-6, 1 - 1e-6)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


@dataclass(frozen=True)
class Candidate:
    """A named model recipe: how to build and fit it, and its parameters for the record."""

    name: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    build: Callable[[dict[str, Any]], Any] = field(default=lambda params: None, repr=False)
    uses_validation: bool = False
    """True when fitting looks at the validation window (early stopping)."""
    features: tuple[str, ...] = FEATURES
    """The columns it is fitted on and predicts from."""


def _logistic(params: dict[str, Any]) -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("logit", LogisticRegression(C=params["C"], max_iter=2000)),
        ]
    )


def _xgboost(params: dict[str, Any]) -> XGBClassifier:
    return XGBClassifier(**params)


XGB_PARAMS: dict[str, Any] = {
    "n_estimators": 2000,
    "learning_rate": 0.1,
    "max_depth": 4,
    "min_child_weight": 20,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "early_stopping_rounds": 100,
    "eval_metric": "logloss",
    "tree_method": "hist",
    "n_jobs": 2,
    "random_state": 7,
}

CANDIDATES: tuple[Candidate, ...] = (
    Candidate(
        "higher_rank",
        "logistic regression on log-rank difference",
        {"columns": ("log_rank_diff",)},
        lambda p: ColumnLogit(columns=p["columns"]),
    ),
    Candidate(
        "elo",
        "FiveThirtyEight Elo probability (no fitting)",
        {"column": "elo_prob"},
        lambda p: ProbabilityColumn(p["column"]),
    ),
    Candidate(
        "blend_elo",
        "surface-blended Elo, blend weight fitted on the validation window",
        {},
        lambda p: BlendedElo(),
        uses_validation=True,
    ),
    Candidate("logistic", "L2 logistic regression on all features", {"C": 0.1}, _logistic),
    Candidate(
        "xgboost", "gradient-boosted trees, early-stopped on validation", XGB_PARAMS, _xgboost, uses_validation=True
    ),
)
"""Every candidate the training asset fits, in report order."""


BOTH_TOURS = Candidate(
    "xgboost_both_tours",
    "gradient-boosted trees on the men's and the women's rows together, with the tour as a feature",
    XGB_PARAMS,
    _xgboost,
    uses_validation=True,
    features=(*FEATURES, TOUR_FEATURE),
)
"""The one-model-for-both-tours candidate (``training.tours``): fitted on both tours' training rows, early-stopped on
both tours' validation rows, judged on each tour's own."""


def fit_candidate(candidate: Candidate, train: pd.DataFrame, validation: pd.DataFrame) -> Any:
    """Fit one candidate on the training rows (and the validation rows for early stopping only)."""
    model = candidate.build(candidate.params)
    cols = list(candidate.features)
    X, y = train[cols], train["a_won"].to_numpy()
    if candidate.uses_validation:
        model.fit(X, y, eval_set=[(validation[cols], validation["a_won"].to_numpy())], verbose=False)
    else:
        model.fit(X, y)
    return model


def symmetric(
    predict_rows: Callable[[np.ndarray], np.ndarray], features: list[str] | tuple[str, ...], stacked: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    """A predictor whose answers for (A, B) and (B, A) sum to exactly one: the mean of the model's
    P(A wins) and 1 - its P(B wins) on the mirrored rows. Trees are not symmetric in A and B by
    themselves; a trader must never be quoted two prices for one match.

    ``stacked``: one ``predict_rows`` call on the rows and their mirrors together instead of two, for a
    model whose answer for a row does not depend on the other rows to the last bit (XGBoost's
    ``inplace_predict``, whose fixed ~0.1 ms a call is most of a one-row answer on the live path; not a
    BLAS matrix product, whose rounding can change with the batch's shape)."""
    spec = mirror_spec(list(features))

    def predict_symmetric(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if stacked:
            both = predict_rows(np.concatenate([x, mirror_rows(x, spec)]))
            return 0.5 * (both[: len(x)] + 1.0 - both[len(x) :])
        return 0.5 * (predict_rows(x) + 1.0 - predict_rows(mirror_rows(x, spec)))

    return predict_symmetric


def predict(model: Any, frame: pd.DataFrame, features: list[str] | tuple[str, ...] = FEATURES) -> np.ndarray:
    """P(player A wins) for each row of ``frame``, symmetric in A and B (see ``symmetric``)."""
    cols = list(features)

    def raw(x: np.ndarray) -> np.ndarray:
        return model.predict_proba(pd.DataFrame(x, columns=cols))[:, 1]

    return symmetric(raw, cols)(frame[cols].to_numpy(dtype=float))


WALKFORWARD_THREADS = 1
"""Threads of each walk-forward refit. The fitted trees are the same for any thread count (the booster's bytes
were compared, 1 vs 2 threads); on this shared 2-core machine two OpenMP threads made a refit 2.5-4x slower than
one whenever the other core was busy (with another pipeline step or another job), and cost nearly 2x the CPU."""


def walkforward_xgboost(n_estimators: int) -> XGBClassifier:
    """The XGBoost candidate with its tree count fixed (the early-stopping point found on the
    validation window), for refits where no later season may be looked at; single-threaded
    (``WALKFORWARD_THREADS``)."""
    params = {k: v for k, v in XGB_PARAMS.items() if k != "early_stopping_rounds"}
    return XGBClassifier(**{**params, "n_estimators": int(n_estimators), "n_jobs": WALKFORWARD_THREADS})
