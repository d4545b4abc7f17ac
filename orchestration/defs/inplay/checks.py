"""Gates of the in-play models: every model starts from the pre-match probability, and the
champion/challenger rule of the pre-match model, applied to ``tennis-inplay``."""

import dagster as dg
import numpy as np
import pandas as pd

from features.inplay_state import sigmoid
from orchestration.defs.inplay.assets import inplay_challenger as challenger_asset
from orchestration.defs.models.checks import champion_gate
from orchestration.defs.shared.execution import CRITICAL_PATH
from orchestration.defs.shared.resources import MlflowResource
from training import tracking
from training.inplay_evaluation import CONSTANT_CHAIN, beats_in_every_bin
from training.inplay_models import decide_inplay_promotion, predict_rows
from training.prematch import CandidateResult

POINT_ZERO_TOLERANCE = 1e-9
"""Before the first point every model must give the pre-match probability (to rounding error)."""


@dg.asset_check(
    asset="inplay_candidates", blocking=True, additional_ins={"inplay_points": dg.AssetIn()}, op_tags=CRITICAL_PATH
)
def starts_at_prematch_probability(inplay_candidates: list, inplay_points: pd.DataFrame) -> dg.AssetCheckResult:
    """Every model, on every match of every split, gives exactly the pre-match probability before the first point."""
    start = inplay_points[inplay_points["point"] == 0]
    prematch = sigmoid(start["prematch_logit"].to_numpy())
    worst = {
        r.name: float(np.max(np.abs(predict_rows(r.model, start) - prematch))) if len(start) else 0.0
        for r in inplay_candidates
    }
    return dg.AssetCheckResult(
        passed=bool(len(start)) and all(v <= POINT_ZERO_TOLERANCE for v in worst.values()),
        metadata={
            "matches_checked": len(start),
            "max_abs_difference": dg.MetadataValue.json(worst),
            "tolerance": POINT_ZERO_TOLERANCE,
        },
    )


@dg.asset_check(
    asset=challenger_asset,
    blocking=True,
    name="challenger_beats_champion",
    additional_ins={"inplay_points": dg.AssetIn()},
    op_tags=CRITICAL_PATH,
)
def inplay_challenger_beats_champion(
    context: dg.AssetCheckExecutionContext, mlflow: MlflowResource, inplay_challenger: dict, inplay_points: pd.DataFrame
) -> dg.AssetCheckResult:
    """Passes when the in-play challenger may become champion: every upstream data check passed, and its
    log-loss on the validation points is lower than the current champion's on the same points."""
    mlflow.configure(tracking.INPLAY_EXPERIMENT)
    return champion_gate(
        context,
        challenger_asset.key,
        tracking.INPLAY_MODEL,
        inplay_challenger["version"],
        inplay_points[inplay_points["split"] == "validation"],
        decide_inplay_promotion,
        rows_label="validation_points",
    )


@dg.asset_check(
    asset=challenger_asset,
    blocking=True,
    name="challenger_beats_constant_chain_in_every_bin",
    additional_ins={"inplay_points": dg.AssetIn(), "inplay_candidates": dg.AssetIn()},
    op_tags=CRITICAL_PATH,
)
def challenger_beats_constant_chain_in_every_bin(
    inplay_challenger: dict, inplay_points: pd.DataFrame, inplay_candidates: list[CandidateResult]
) -> dg.AssetCheckResult:
    """The in-play challenger beats the constant-serve chain on the validation points in every stage bin after the
    first point (each quarter of the match's points, each set), or is that chain. The challenger is chosen by the
    same rule (``choose_inplay_challenger``), so this check guards the rule against a change in the choice; it is
    the blocking half of the champion rule."""
    family = inplay_challenger["model_family"]
    by_name = {r.name: r.model for r in inplay_candidates}
    if family == CONSTANT_CHAIN or CONSTANT_CHAIN not in by_name:
        note = "the challenger is the constant-serve chain" if family == CONSTANT_CHAIN else "no constant chain"
        return dg.AssetCheckResult(passed=family == CONSTANT_CHAIN, metadata={"note": note})
    validation = inplay_points[inplay_points["split"] == "validation"].reset_index(drop=True)
    bins = beats_in_every_bin(
        validation, predict_rows(by_name[family], validation), predict_rows(by_name[CONSTANT_CHAIN], validation)
    )
    lost = [stage for stage, b in bins.items() if not b["beats"]]
    return dg.AssetCheckResult(
        passed=not lost,
        description=None if not lost else f"{family} does not beat the constant chain in: {', '.join(lost)}",
        metadata={"challenger": family, "bins": dg.MetadataValue.json(bins), "validation_points": len(validation)},
    )
