"""Scores of probability forecasts: log-loss, Brier, accuracy and calibration error."""

from __future__ import annotations

import numpy as np
import pandas as pd

EPS = 1e-15


def log_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each outcome ``y`` (0/1) under its probability ``p`` (clipped to
    [EPS, 1 - EPS])."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    y = np.asarray(y, dtype=float)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of the outcomes ``y`` (0/1) under probabilities ``p``."""
    return float(np.mean(log_losses(y, p)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probabilities."""
    return float(np.mean((np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Share of matches where the favoured player (p > 0.5) won; a coin-flip 0.5 counts as half."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    hit = np.where(p > 0.5, y, np.where(p < 0.5, 1 - y, 0.5))
    return float(hit.mean())


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Forecasts in equal-width probability bins: mean forecast, observed frequency and count."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": idx, "p": p, "y": y})
    g = frame.groupby("bin").agg(mean_forecast=("p", "mean"), observed=("y", "mean"), n=("y", "size"))
    return g.reset_index()


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: count-weighted mean |observed - forecast| over equal-width bins."""
    t = calibration_table(y, p, bins)
    if t.empty:
        return float("nan")
    return float(np.sum(t["n"] * (t["observed"] - t["mean_forecast"]).abs()) / t["n"].sum())


def score(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """All headline scores of one forecaster on one set of rows."""
    return {
        "log_loss": log_loss(y, p),
        "brier": brier(y, p),
        "accuracy": accuracy(y, p),
        "calibration_error": calibration_error(y, p),
        "n": float(len(y)),
    }


LEAK_ACCURACY, LEAK_LOG_LOSS = 0.75, 0.50
"""A full-season pre-match result beyond these is a leak until proven otherwise (MODELING.md trap 8)."""


def leak_suspect(scores: dict[str, float]) -> bool:
    """Whether one forecaster's scores on a full season are too good to be true."""
    return scores["accuracy"] > LEAK_ACCURACY or scores["log_loss"] < LEAK_LOG_LOSS
