"""The three in-play models, each an ``InplayEstimator`` reading the feature vector of
``features.inplay_state``, and their MLflow runs:

- ``markov``: the Markov chain calibrated to the pre-match probability, serve probabilities constant;
- ``markov_updated``: the same, serve probabilities updated by the points seen (empirical Bayes);
- ``learned``: XGBoost predicting a correction to the logit of ``markov_updated`` from the score,
  the pre-match probability and the serve statistics of the match. Before the first point the
  correction is zero by construction, so every model equals the pre-match probability there.

The learned model is fitted on the training seasons and early-stopped on the validation seasons; the
registered model is chosen on validation (``training.inplay_evaluation`` scores the test seasons).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, ClassifierMixin

from features.inplay_state import FEATURE_INDEX, INPLAY_FEATURES, SERVE_PRIOR_STRENGTH, sigmoid
from training import plots, tracking
from training.inplay_data import strength_of
from training.metrics import score
from training.prematch import CandidateResult, PromotionDecision, decide_promotion

_MARKOV, _UPDATED, _PLAYED = (FEATURE_INDEX[n] for n in ("markov_logit", "markov_updated_logit", "points_played"))


class InplayEstimator(BaseEstimator, ClassifierMixin):
    """P(A wins the match) from the in-play feature vector: one of the two chains, or the chain
    corrected by boosted trees (a correction of zero before the first point).

    ``serve_prior_strength`` is the prior weight the features must be built with
    (``features.inplay_state.inplay_features(..., strength=model.serve_prior_strength)``).
    """

    KINDS = ("markov", "markov_updated", "learned")

    def __init__(
        self,
        kind: str = "markov_updated",
        serve_prior_strength: float = SERVE_PRIOR_STRENGTH,
        booster: xgb.Booster | None = None,
        best_iteration: int | None = None,
    ):
        self.kind = kind
        self.serve_prior_strength = serve_prior_strength
        self.booster = booster
        self.best_iteration = best_iteration

    @property
    def features(self) -> list[str]:
        return list(INPLAY_FEATURES)

    def fit(self, X: Any = None, y: Any = None) -> InplayEstimator:
        if self.kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, not {self.kind!r}")
        if self.kind == "learned" and self.booster is None:
            raise ValueError("a learned in-play model needs its booster (see fit_learned)")
        self.classes_ = np.array([0, 1])
        return self

    def single_threaded(self) -> InplayEstimator:
        """Predict on one thread (single-row serving: thread oversubscription costs far more than it buys)."""
        if self.booster is not None:
            self.booster.set_param({"nthread": 1})
        return self

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """P(A wins) for rows of features in ``INPLAY_FEATURES`` order (a 2-D float array)."""
        if self.kind == "markov":
            return sigmoid(x[:, _MARKOV])
        base = x[:, _UPDATED]
        if self.kind == "markov_updated":
            return sigmoid(base)
        rounds = (0, self.best_iteration + 1) if self.best_iteration is not None else (0, 0)
        margin = self.booster.inplace_predict(x, iteration_range=rounds, predict_type="margin", base_margin=base)
        margin = np.asarray(margin, dtype=float).reshape(-1)
        return sigmoid(np.where(x[:, _PLAYED] == 0, base, margin))  # no correction before the first point

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.predict_features(np.asarray(X[list(INPLAY_FEATURES)], dtype=float))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


LEARNED_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "base_score": 0.5,  # ignored with a base margin; stated so the margin is the chain's logit plus the trees
    "eta": 0.08,
    "max_depth": 4,
    "min_child_weight": 50,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 1.0,
    "tree_method": "hist",
    "nthread": 2,
    "seed": 7,
}
LEARNED_ROUNDS, LEARNED_EARLY_STOP = 600, 40


def _matrix(rows: pd.DataFrame) -> xgb.DMatrix:
    x = rows[list(INPLAY_FEATURES)].to_numpy(dtype=float)
    return xgb.DMatrix(x, label=rows["a_won"].to_numpy(), base_margin=x[:, _UPDATED])


def fit_learned(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    strength: float = SERVE_PRIOR_STRENGTH,
    params: dict[str, Any] | None = None,
) -> InplayEstimator:
    """Boosted trees on the training points (after the first point), early-stopped on the validation points."""
    params = {**LEARNED_PARAMS, **(params or {})}
    train = train[train["points_played"] > 0]
    validation = validation[validation["points_played"] > 0]
    booster = xgb.train(
        params,
        _matrix(train),
        num_boost_round=LEARNED_ROUNDS,
        evals=[(_matrix(validation), "validation")],
        early_stopping_rounds=LEARNED_EARLY_STOP,
        verbose_eval=False,
    )
    return InplayEstimator("learned", strength, booster, int(booster.best_iteration)).fit()


MODEL_DESCRIPTIONS = {
    "markov": "Markov chain calibrated to the pre-match probability, constant serve probabilities",
    "markov_updated": "the same chain, serve probabilities updated by the points seen (Beta prior of the "
    "serve prior strength, chosen on validation)",
    "learned": "XGBoost correction to the logit of markov_updated (score, pre-match probability, serve "
    "statistics); zero correction before the first point",
}


def decide_inplay_promotion(
    validation: pd.DataFrame,
    challenger: tracking.RegisteredModel,
    champion: tracking.RegisteredModel | None,
    failed_checks: list[str],
) -> PromotionDecision:
    """The pre-match champion/challenger rule (``training.prematch.decide_promotion``) on the validation
    points. A champion whose features were built with another serve prior strength cannot be scored on
    these rows: like a champion needing features no longer produced, it gives way (checks permitting)."""
    strength = strength_of(validation)
    if (
        champion is not None
        and not failed_checks
        and float(getattr(champion.model, "serve_prior_strength", strength)) != strength
    ):
        decision = decide_promotion(validation, challenger, None, failed_checks, _predictor)
        return replace(
            decision,
            reason=f"champion v{champion.version} uses serve prior strength "
            f"{champion.model.serve_prior_strength:g}, these features {strength:g}: "
            "not comparable on the same rows",
            champion_version=champion.version,
        )
    return decide_promotion(validation, challenger, champion, failed_checks, _predictor)


def _predictor(model: Any, rows: pd.DataFrame, features: list[str]) -> np.ndarray:
    return predict_rows(model, rows)


def fit_models(
    train: pd.DataFrame, validation: pd.DataFrame, strength: float = SERVE_PRIOR_STRENGTH
) -> dict[str, InplayEstimator]:
    """The three in-play models (features built with serve prior ``strength``), in report order."""
    return {
        "markov": InplayEstimator("markov", strength).fit(),
        "markov_updated": InplayEstimator("markov_updated", strength).fit(),
        "learned": fit_learned(train, validation, strength),
    }


def predict_rows(model: Any, rows: pd.DataFrame) -> np.ndarray:
    """P(A wins) for each point row."""
    return model.predict_proba(rows[list(INPLAY_FEATURES)])[:, 1]


def fit_and_log(rows: pd.DataFrame, data_version: str, batch_id: str) -> list[CandidateResult]:
    """Fit the three models on the training points (early stopping on validation), score them on the
    validation points, and record each as one MLflow run with its model."""
    train, validation = rows[rows["split"] == "train"], rows[rows["split"] == "validation"]
    if train.empty or validation.empty:
        raise ValueError(f"no training ({len(train)}) or validation ({len(validation)}) points: check the windows")
    strength = strength_of(rows)
    models = fit_models(train, validation, strength)
    seasons = rows.groupby("split")["season"].agg(["min", "max"])
    y_train, y_val = train["a_won"].to_numpy(), validation["a_won"].to_numpy()
    results = []
    for name, model in models.items():
        with mlflow.start_run(run_name=f"inplay-{name}") as run:
            mlflow.set_tags(
                {
                    "model_family": name,
                    "data_version": data_version,
                    "training_batch": batch_id,
                    "description": MODEL_DESCRIPTIONS[name],
                }
            )
            mlflow.log_params(
                {
                    **{f"{split}_seasons": f"{r['min']}-{r['max']}" for split, r in seasons.iterrows()},
                    "serve_prior_strength": strength,
                    "train_points": len(train),
                    "validation_points": len(validation),
                    "train_matches": train["match_id"].nunique(),
                    "validation_matches": validation["match_id"].nunique(),
                    **({f"xgb_{k}": v for k, v in LEARNED_PARAMS.items()} if name == "learned" else {}),
                }
            )
            cols = [*INPLAY_FEATURES, "a_won"]
            tracking.log_datasets(
                {"training": train[cols], "validation": validation[cols]}, "inplay_points", data_version, "a_won"
            )
            p_train, p_val = predict_rows(model, train), predict_rows(model, validation)
            train_scores, val_scores = score(y_train, p_train), score(y_val, p_val)
            mlflow.log_metrics({f"train_{k}": v for k, v in train_scores.items()})
            mlflow.log_metrics({f"validation_{k}": v for k, v in val_scores.items()})
            if model.best_iteration is not None:
                mlflow.log_metric("best_iteration", float(model.best_iteration))
            fig = plots.reliability_diagram({name: p_val}, y_val, f"in-play {name}: validation calibration")
            mlflow.log_figure(fig, "calibration_validation.png")
            plots.png_bytes(fig)
            uri = tracking.log_model(model, list(INPLAY_FEATURES), validation[list(INPLAY_FEATURES)].head(3))
        results.append(
            CandidateResult(name, MODEL_DESCRIPTIONS[name], run.info.run_id, uri, train_scores, val_scores, model)
        )
    return results
