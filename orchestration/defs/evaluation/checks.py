"""Guards on the walk-forward evaluation: a full season that looks too good is a leak (MODELING.md trap 8)."""

import dagster as dg
import pandas as pd

from training.metrics import LEAK_ACCURACY, LEAK_LOG_LOSS, leak_suspect


@dg.asset_check(asset="walkforward_evaluation")
def no_season_suspiciously_good(walkforward_evaluation: pd.DataFrame) -> dg.AssetCheckResult:
    """Every forecaster's score over every full season of out-of-sample rows: accuracy <= 75% and
    log-loss >= 0.50; better is a leak until proven otherwise."""
    rows = walkforward_evaluation.to_dict("records")
    suspects = [
        {
            "season": int(r["group"]),
            "forecaster": r["forecaster"],
            "accuracy": round(r["accuracy"], 4),
            "log_loss": round(r["log_loss"], 4),
        }
        for r in rows
        if leak_suspect(r)
    ]
    return dg.AssetCheckResult(
        passed=not suspects,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "suspects": dg.MetadataValue.json(suspects),
            "seasons_checked": len({r["group"] for r in rows}),
            "thresholds": f"accuracy > {LEAK_ACCURACY:.0%} or log-loss < {LEAK_LOG_LOSS}",
        },
    )
