"""Drift monitoring (``training.drift``): the pre-match features of the rows the champion is now judged on against
the season it was chosen on, and the live in-play predictions against how the matches ended. Each asset says
``drifted`` in its metadata and what it ``judged`` (the data version; the in-play model); its check fails beyond
``DRIFT_LIMITS``; the ``drift_retrain`` sensor requests the retrain (pre-match and in-play models) once for each
thing judged to have drifted — a retrain cannot change the data it was measured on, so asking again would loop."""

import dagster as dg
import pandas as pd

from betting.policy import TradingPolicy
from features.prematch import FEATURES
from orchestration.defs.shared.resources import CourtsideResource
from serving import control
from training import tracking
from training.drift import DRIFT_LIMITS, calibration_drift, feature_drift

GROUP = "monitoring"


@dg.asset(group_name=GROUP, kinds={"pandas"})
def prematch_feature_drift(model_dataset: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Population stability index of every pre-match feature: the newest rows (the test window, what the champion
    scores now) against the validation window (the season it was chosen on)."""
    reference = model_dataset[model_dataset["split"] == "validation"]
    current = model_dataset[model_dataset["split"] == "test"]
    table = feature_drift(reference, current, FEATURES)
    drifted = table.loc[table["drifted"].fillna(False).astype(bool), "feature"].tolist()
    return dg.Output(
        table,
        metadata={
            "drifted": dg.MetadataValue.bool(bool(drifted)),
            "judged": tracking.frame_version(model_dataset),  # the sensor asks once per data version
            "data_version": tracking.frame_version(model_dataset),
            "drifted_features": dg.MetadataValue.json(drifted),
            "max_psi": float(table["psi"].max()) if len(table) else 0.0,
            "reference_rows": len(reference),
            "current_rows": len(current),
            "psi": dg.MetadataValue.md(table.head(15).to_markdown(index=False)),
            "limits": dg.MetadataValue.json(DRIFT_LIMITS.as_metadata()),
        },
    )


CALIBRATION_CHECK = "calibration_within_drift_limits"


@dg.asset(
    group_name="live",
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            CALIBRATION_CHECK,
            asset="live_calibration_drift",
            description="Live calibration error within DRIFT_LIMITS.calibration_error_alert",
        )
    ],
)
def live_calibration_drift(courtside: CourtsideResource) -> dg.MaterializeResult:
    """Calibration of the live in-play predictions on the matches that finished, of the newest in-play model that
    predicted (a retrained model is judged on its own predictions): drifted when its error is beyond the limit over
    enough matches."""
    calibration = control.live_pnl(courtside.engine, TradingPolicy(bankroll=courtside.bankroll)).calibration
    model = str(calibration["model"].iloc[-1]) if len(calibration) else "none"
    found = calibration_drift(calibration[calibration["model"] == model] if len(calibration) else calibration)
    return dg.MaterializeResult(
        metadata={
            "drifted": dg.MetadataValue.bool(bool(found.drifted)),
            "judged": model,  # the sensor asks once per model judged
            "model": model,
            "finished_matches": found.matches,
            "predictions": found.predictions,
            "calibration_error": found.calibration_error if found.calibration_error is not None else float("nan"),
            "limits": dg.MetadataValue.json(DRIFT_LIMITS.as_metadata()),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CALIBRATION_CHECK,
                passed=not found.drifted,
                severity=dg.AssetCheckSeverity.WARN,
                description=None
                if not found.drifted
                else f"calibration error {found.calibration_error} over {found.matches} finished matches",
                metadata={
                    "calibration_error": found.calibration_error if found.calibration_error is not None else -1.0,
                    "alert": DRIFT_LIMITS.calibration_error_alert,
                    "finished_matches": found.matches,
                },
            )
        ],
    )
