"""Drift within its limits (warnings: drift does not stop a run; it requests a retrain through the sensor)."""

import dagster as dg
import pandas as pd

from training.drift import DRIFT_LIMITS


@dg.asset_check(asset="prematch_feature_drift", description="No pre-match feature's PSI beyond DRIFT_LIMITS.psi_alert")
def features_within_drift_limits(prematch_feature_drift: pd.DataFrame) -> dg.AssetCheckResult:
    drifted = prematch_feature_drift[prematch_feature_drift["drifted"].fillna(False).astype(bool)]
    return dg.AssetCheckResult(
        passed=drifted.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if drifted.empty else f"drifted: {', '.join(drifted['feature'])}",
        metadata={
            "drifted": dg.MetadataValue.json(drifted[["feature", "psi"]].to_dict("records")),
            "psi_alert": DRIFT_LIMITS.psi_alert,
        },
    )
