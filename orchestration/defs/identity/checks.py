"""Checks on player identity: measured precision/recall and match rates."""

import dagster as dg

from orchestration.defs.identity.assets import odds_slams_matched, odds_tour_matched, wta_odds_slams_matched
from orchestration.defs.shared.execution import CRITICAL_PATH

MIN_PRECISION, MIN_RECALL = 0.99, 0.97
MIN_MATCH_RATE = 0.99


def _latest_metadata(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> dict:
    event = context.instance.get_latest_materialization_event(key)
    return dict(event.asset_materialization.metadata) if event and event.asset_materialization else {}


def _value(meta: dict, name: str) -> float | None:
    v = meta.get(name)
    v = getattr(v, "value", v)
    return float(v) if isinstance(v, int | float) else None


def _precision_recall(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> dg.AssetCheckResult:
    meta = _latest_metadata(context, key)
    precision, recall = _value(meta, "identity_precision"), _value(meta, "identity_recall")
    if precision is None or recall is None:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"note": "no reference mapping in this data source"},
        )
    return dg.AssetCheckResult(
        passed=precision >= MIN_PRECISION and recall >= MIN_RECALL,
        metadata={"precision": precision, "recall": recall, "min_precision": MIN_PRECISION, "min_recall": MIN_RECALL},
    )


@dg.asset_check(asset=odds_slams_matched, blocking=True, op_tags=CRITICAL_PATH)
def name_matching_precision_recall(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Player-level precision >= 99% and recall >= 97% of "Surname I." -> Sackmann id matching,
    measured against reference_name_mapping.csv.gz (when the data source has it)."""
    return _precision_recall(context, odds_slams_matched.key)


@dg.asset_check(asset=wta_odds_slams_matched, name="name_matching_precision_recall", blocking=True)
def wta_name_matching_precision_recall(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """The same targets for the women's Grand Slam odds, measured against wta_reference_name_mapping.csv.gz."""
    return _precision_recall(context, wta_odds_slams_matched.key)


@dg.asset_check(asset=odds_tour_matched, blocking=True, op_tags=CRITICAL_PATH)
def odds_rows_matched(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """At least 99% of tour-level odds rows are linked to a Sackmann match (else the evaluation
    against the market would silently lose rows)."""
    meta = _latest_metadata(context, odds_tour_matched.key)
    rate = _value(meta, "match_rate") or 0.0
    return dg.AssetCheckResult(
        passed=rate >= MIN_MATCH_RATE, metadata={"match_rate": rate, "min_match_rate": MIN_MATCH_RATE}
    )
