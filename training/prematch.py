"""Fit every pre-match candidate, log each as an MLflow run, pick and register the challenger,
and decide whether it replaces the champion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from features.prematch import FEATURES
from training import plots, tracking
from training.metrics import score
from training.models import CANDIDATES, Candidate, fit_candidate, predict
from training.splits import Windows


@dataclass(frozen=True)
class CandidateResult:
    """A fitted candidate, its MLflow run and logged model, and its scores."""

    name: str
    description: str
    run_id: str
    model_uri: str
    train_scores: dict[str, float]
    validation_scores: dict[str, float]
    model: Any
    features: tuple[str, ...] = FEATURES
    """The columns the model predicts from (``predict(r.model, rows, r.features)``)."""


def _importance(model: Any) -> np.ndarray | None:
    if hasattr(model, "feature_importances_"):
        return np.asarray(model.feature_importances_, dtype=float)
    logit = getattr(model, "named_steps", {}).get("logit")
    if logit is not None:  # standardised inputs: |coefficient| is comparable across features
        return np.abs(logit.coef_[0])
    return None


def fit_and_log(
    candidate: Candidate,
    rows: pd.DataFrame,
    windows: Windows,
    data_version: str,
    batch_id: str,
    scored_on: pd.DataFrame | None = None,
    tags: dict[str, str] | None = None,
) -> CandidateResult:
    """Fit one candidate and record it as one MLflow run (params, scores, plots, model).

    ``scored_on``: the validation rows its ``validation_*`` scores are measured on, when they are not all of the
    rows it was early-stopped on (a model of both tours judged on one tour's rows)."""
    train, validation = rows[rows["split"] == "train"], rows[rows["split"] == "validation"]
    judged = validation if scored_on is None else scored_on
    features = list(candidate.features)
    with mlflow.start_run(run_name=candidate.name) as run:
        mlflow.set_tags(
            {
                "model_family": candidate.name,
                "data_version": data_version,
                "training_batch": batch_id,
                "description": candidate.description,
                **(tags or {}),
            }
        )
        params = {k: (",".join(v) if isinstance(v, tuple) else v) for k, v in candidate.params.items()}
        mlflow.log_params(
            {
                **params,
                "train_seasons": f"{windows.train_start}-{windows.train_end}",
                "validation_seasons": f"{windows.validation_start}-{windows.validation_end}",
                "train_rows": len(train),
                "validation_rows": len(judged),
                "n_features": len(features),
            }
        )
        tracking.log_datasets(
            {"training": train[[*features, "a_won"]], "validation": judged[[*features, "a_won"]]},
            "model_dataset",
            data_version,
            "a_won",
        )
        model = fit_candidate(candidate, train, validation)
        p_train, p_val = predict(model, train, features), predict(model, judged, features)
        train_scores = score(train["a_won"].to_numpy(), p_train)
        val_scores = score(judged["a_won"].to_numpy(), p_val)
        mlflow.log_metrics({f"train_{k}": v for k, v in train_scores.items()})
        mlflow.log_metrics({f"validation_{k}": v for k, v in val_scores.items()})
        if hasattr(model, "best_iteration"):
            mlflow.log_metric("best_iteration", float(model.best_iteration))
        fig = plots.reliability_diagram(
            {candidate.name: p_val}, judged["a_won"].to_numpy(), f"{candidate.name}: validation calibration"
        )
        mlflow.log_figure(fig, "calibration_validation.png")
        plots.png_bytes(fig)
        imp = _importance(model)
        if imp is not None:
            names = features if len(imp) == len(features) else list(getattr(model, "columns", []))
            fig = plots.feature_importance(names, imp, f"{candidate.name}: feature importance")
            mlflow.log_figure(fig, "feature_importance.png")
            plots.png_bytes(fig)
        model_uri = tracking.log_model(model, features, judged[features].head(3))
    return CandidateResult(
        candidate.name,
        candidate.description,
        run.info.run_id,
        model_uri,
        train_scores,
        val_scores,
        model,
        tuple(features),
    )


def train_all(
    rows: pd.DataFrame,
    windows: Windows,
    data_version: str,
    batch_id: str,
    progress: Callable[[int, int], None] | None = None,
    tags: dict[str, str] | None = None,
) -> list[CandidateResult]:
    """Fit and log every candidate of ``training.models.CANDIDATES``."""
    results = []
    for i, candidate in enumerate(CANDIDATES):
        if progress:
            progress(i, len(CANDIDATES))
        results.append(fit_and_log(candidate, rows, windows, data_version, batch_id, tags=tags))
    if progress:
        progress(len(CANDIDATES), len(CANDIDATES))
    return results


def best_by_validation(results: list[CandidateResult]) -> CandidateResult:
    """The candidate with the lowest validation log-loss."""
    return min(results, key=lambda r: r.validation_scores["log_loss"])


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the challenger becomes champion, and why."""

    promote: bool
    reason: str
    challenger_log_loss: float
    champion_log_loss: float | None
    champion_version: str | None


def decide_promotion(
    validation: pd.DataFrame,
    challenger: tracking.RegisteredModel,
    champion: tracking.RegisteredModel | None,
    failed_checks: list[str],
    predictor: Callable[[Any, pd.DataFrame, list[str]], np.ndarray] = predict,
) -> PromotionDecision:
    """The champion/challenger rule: promote only if every upstream data check passed and the
    challenger's log-loss is lower than the champion's on exactly the same validation rows.
    ``predictor(model, rows, features)`` gives P(A wins) (default: the symmetric pre-match predict)."""
    y = validation["a_won"].to_numpy()
    ch_ll = score(y, predictor(challenger.model, validation, challenger.features))["log_loss"]
    if failed_checks:
        return PromotionDecision(
            False,
            f"upstream data checks failed: {', '.join(failed_checks)}",
            ch_ll,
            None,
            champion.version if champion else None,
        )
    if champion is None:
        return PromotionDecision(True, "no champion yet", ch_ll, None, None)
    missing = [f for f in champion.features if f not in validation.columns]
    if missing:
        return PromotionDecision(
            True,
            f"champion v{champion.version} needs features no longer produced: {missing[:5]}",
            ch_ll,
            None,
            champion.version,
        )
    champ_ll = score(y, predictor(champion.model, validation, champion.features))["log_loss"]
    if ch_ll < champ_ll:
        return PromotionDecision(
            True,
            f"log-loss {ch_ll:.5f} < champion v{champion.version} {champ_ll:.5f}",
            ch_ll,
            champ_ll,
            champion.version,
        )
    return PromotionDecision(
        False,
        f"log-loss {ch_ll:.5f} does not beat champion v{champion.version} {champ_ll:.5f}",
        ch_ll,
        champ_ll,
        champion.version,
    )
