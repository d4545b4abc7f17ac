"""Drift: has what the models now see moved away from what they learned on? Two measures, one set of limits.

- **Feature drift** of the pre-match rows being scored against the champion's training rows: the population
  stability index (PSI) of each feature, on the training rows' deciles (a missing value is its own bin).
  PSI < 0.1 is stable, 0.1-0.25 a moderate shift, > 0.25 a significant one (the usual reading).
- **Calibration drift** of the live in-play predictions against how the matches ended: the expected calibration
  error (``training.metrics.calibration_error``) over the predictions of finished matches, judged only once enough
  matches have finished.

``DRIFT_LIMITS`` is the one place the thresholds live; the monitoring assets report them, their checks fail beyond
them, and a failed check's drift requests the retrain (``orchestration.defs.operations.sensors.drift_retrain``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from training.metrics import calibration_error


@dataclass(frozen=True)
class DriftLimits:
    psi_alert: float = 0.25
    """A feature whose PSI is above this has drifted significantly."""
    min_rows: int = 500
    """Rows of each side needed before feature drift is judged."""
    calibration_error_alert: float = 0.08
    """Live predictions whose calibration error is above this have drifted (the models aim at <= 0.02 offline)."""
    min_matches: int = 30
    """Finished matches needed before calibration drift is judged."""

    def as_metadata(self) -> dict[str, float]:
        return asdict(self)


DRIFT_LIMITS = DriftLimits()
EPS = 1e-4
"""Floor of a bin's share (an empty bin would make the index infinite)."""


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``: sum((c - r) * ln(c / r)) over the
    reference's quantile bins, a missing value being a bin of its own."""
    reference, current = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    ref_ok, cur_ok = reference[~np.isnan(reference)], current[~np.isnan(current)]
    if len(ref_ok) == 0:
        return 0.0
    edges = np.unique(np.quantile(ref_ok, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(values: np.ndarray, ok: np.ndarray, n: int) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, ok, side="right"), minlength=len(edges) + 1)
        return np.maximum(np.r_[counts, n - len(ok)] / max(n, 1), EPS)

    r = shares(reference, ref_ok, len(reference))
    c = shares(current, cur_ok, len(current))
    return float(np.sum((c - r) * np.log(c / r)))


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], limits: DriftLimits = DRIFT_LIMITS
) -> pd.DataFrame:
    """One row a feature: its PSI and whether it drifted (None when too few rows to judge)."""
    judged = len(reference) >= limits.min_rows and len(current) >= limits.min_rows
    rows = []
    for f in features:
        value = psi(reference[f].to_numpy(dtype=float), current[f].to_numpy(dtype=float))
        rows.append({"feature": f, "psi": round(value, 4), "drifted": (value > limits.psi_alert) if judged else None})
    return pd.DataFrame(rows, columns=["feature", "psi", "drifted"]).sort_values("psi", ascending=False)


@dataclass(frozen=True)
class CalibrationDrift:
    matches: int
    predictions: int
    calibration_error: float | None
    drifted: bool | None
    """None: too few finished matches to judge."""


def calibration_drift(calibration: pd.DataFrame, limits: DriftLimits = DRIFT_LIMITS) -> CalibrationDrift:
    """``calibration``: the live predictions of finished matches (``match_id``, ``probability``, ``first_won``)."""
    matches = int(calibration["match_id"].nunique()) if len(calibration) else 0
    if not len(calibration):
        return CalibrationDrift(0, 0, None, None)
    error = calibration_error(calibration["first_won"].to_numpy(), calibration["probability"].to_numpy(dtype=float))
    judged = matches >= limits.min_matches
    return CalibrationDrift(
        matches, len(calibration), round(error, 4), (error > limits.calibration_error_alert) if judged else None
    )
