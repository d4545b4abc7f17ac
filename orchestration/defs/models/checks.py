"""The champion/challenger gate: a blocking check on the challenger."""

from collections.abc import Callable

import dagster as dg
import pandas as pd

from orchestration.defs.models.assets import prematch_challenger as challenger_asset
from orchestration.defs.models.assets import wta_prematch_challenger as wta_challenger_asset
from orchestration.defs.shared.execution import LONGEST_CHAIN
from orchestration.defs.shared.resources import MlflowResource
from training import tracking
from training.metrics import leak_suspect
from training.prematch import PromotionDecision, decide_promotion


def upstream_check_failures(context: dg.AssetCheckExecutionContext, asset: dg.AssetKey) -> list[str]:
    """Names of the checks on assets upstream of ``asset`` whose latest evaluation did not pass (a warning — a
    check of severity WARN, such as a source's timeliness — informs, and does not count)."""
    graph = context.job_def.asset_layer.asset_graph
    upstream = dg.AssetSelection.assets(asset).upstream().resolve(graph) - {asset}
    keys = [k for k in graph.asset_check_keys if k.asset_key in upstream]
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    failed = []
    for key in keys:
        record = latest.get(key)
        status = record.status.value if record else "never evaluated"
        if status == "FAILED" and _severity(record) == dg.AssetCheckSeverity.WARN:
            continue
        if status != "SUCCEEDED":
            failed.append(f"{key.asset_key.to_user_string()}:{key.name} ({status.lower()})")
    return sorted(failed)


def _severity(record: object) -> dg.AssetCheckSeverity | None:
    entry = getattr(record, "event", None)
    evaluation = getattr(getattr(entry, "dagster_event", None), "event_specific_data", None)
    return getattr(evaluation, "severity", None)


def champion_gate(
    context: dg.AssetCheckExecutionContext,
    challenger: dg.AssetKey,
    model_name: str,
    challenger_version: str,
    validation: pd.DataFrame,
    decide: Callable[..., PromotionDecision],
    rows_label: str = "validation_rows",
) -> dg.AssetCheckResult:
    """The champion/challenger gate of a registered model: passes when the challenger may become
    champion -- every check upstream of ``challenger`` passed, and ``decide`` (the rule on the same
    validation rows) promotes it, or it already is the champion."""
    failed = upstream_check_failures(context, challenger)
    champion = tracking.version_info(tracking.CHAMPION, model_name)
    if champion and champion.version == challenger_version and not failed:
        return dg.AssetCheckResult(
            passed=True,
            metadata={"reason": f"challenger v{champion.version} is already the champion", rows_label: len(validation)},
        )
    candidate = tracking.load_version(challenger_version, model_name)
    current = tracking.load_version(champion.version, model_name) if champion else None
    decision = decide(validation, candidate, current, failed)
    return dg.AssetCheckResult(
        passed=decision.promote,
        metadata={
            "reason": decision.reason,
            "challenger_version": challenger_version,
            "challenger_log_loss": decision.challenger_log_loss,
            "champion_version": decision.champion_version or "none",
            "champion_log_loss": decision.champion_log_loss if decision.champion_log_loss is not None else float("nan"),
            rows_label: len(validation),
            "upstream_checks_failed": dg.MetadataValue.json(failed),
        },
    )


@dg.asset_check(asset=challenger_asset, blocking=True, additional_ins={"model_dataset": dg.AssetIn()})
def challenger_beats_champion(
    context: dg.AssetCheckExecutionContext,
    mlflow: MlflowResource,
    prematch_challenger: dict,
    model_dataset: pd.DataFrame,
) -> dg.AssetCheckResult:
    """Passes when the challenger may become champion: every upstream data check passed, and its
    log-loss on the validation rows is lower than the current champion's on the same rows."""
    mlflow.configure(tracking.PREMATCH_EXPERIMENT)
    return champion_gate(
        context,
        challenger_asset.key,
        tracking.PREMATCH_MODEL,
        prematch_challenger["version"],
        model_dataset[model_dataset["split"] == "validation"],
        decide_promotion,
    )


@dg.asset_check(
    asset=wta_challenger_asset,
    name="challenger_beats_champion",
    blocking=True,
    additional_ins={"wta_model_dataset": dg.AssetIn()},
)
def wta_challenger_beats_champion(
    context: dg.AssetCheckExecutionContext,
    mlflow: MlflowResource,
    wta_prematch_challenger: dict,
    wta_model_dataset: pd.DataFrame,
) -> dg.AssetCheckResult:
    """The men's gate for ``tennis-prematch-wta``, on the WTA validation rows."""
    mlflow.configure(tracking.WTA_PREMATCH_EXPERIMENT)
    return champion_gate(
        context,
        wta_challenger_asset.key,
        tracking.WTA_PREMATCH_MODEL,
        wta_prematch_challenger["version"],
        wta_model_dataset[wta_model_dataset["split"] == "validation"],
        decide_promotion,
    )


@dg.asset_check(asset="prematch_candidates", blocking=True, op_tags=LONGEST_CHAIN)
def no_candidate_suspiciously_good(prematch_candidates: list) -> dg.AssetCheckResult:
    """Every candidate's validation accuracy <= 75% and log-loss >= 0.50; better is a leak."""
    return _leak_guard(prematch_candidates)


def _leak_guard(candidates: list) -> dg.AssetCheckResult:
    scores = {r.name: r.validation_scores for r in candidates}
    suspects = [n for n, s in scores.items() if leak_suspect(s)]
    return dg.AssetCheckResult(
        passed=not suspects,
        metadata={
            "suspects": dg.MetadataValue.json(suspects),
            "validation": dg.MetadataValue.json({n: {k: round(v, 4) for k, v in s.items()} for n, s in scores.items()}),
        },
    )


@dg.asset_check(asset="wta_prematch_candidates", name="no_candidate_suspiciously_good", blocking=True)
def wta_no_candidate_suspiciously_good(wta_prematch_candidates: list) -> dg.AssetCheckResult:
    """The men's leak guard on the WTA candidates' validation scores."""
    return _leak_guard(wta_prematch_candidates)


def _served(champion: dict, model_name: str) -> dg.AssetCheckResult:
    """The registry's ``champion`` alias points at the version this asset promoted, which carries its validation
    scores: what the prediction service loads is what the gate passed (an alias moved by hand fails it)."""
    info = tracking.version_info(tracking.CHAMPION, model_name)
    served = info.version if info else "none"
    loss = float(champion.get("validation_log_loss", float("nan")))
    return dg.AssetCheckResult(
        passed=served == str(champion["version"]),
        description=None if served == str(champion["version"]) else f"{model_name}@champion is v{served}",
        metadata={
            "promoted_version": str(champion["version"]),
            "registry_champion": served,
            "model_family": str(champion.get("model_family", "")),
            **({"validation_log_loss": loss} if loss == loss else {}),
        },
    )


@dg.asset_check(asset="prematch_champion", name="champion_alias_is_this_version")
def champion_alias_is_this_version(mlflow: MlflowResource, prematch_champion: dict) -> dg.AssetCheckResult:
    """``tennis-prematch@champion`` is the version this materialization promoted (what /predict serves)."""
    mlflow.configure(tracking.PREMATCH_EXPERIMENT)
    return _served(prematch_champion, tracking.PREMATCH_MODEL)


@dg.asset_check(asset="wta_prematch_champion", name="champion_alias_is_this_version")
def wta_champion_alias_is_this_version(mlflow: MlflowResource, wta_prematch_champion: dict) -> dg.AssetCheckResult:
    """``tennis-prematch-wta@champion`` is the version this materialization promoted (what /predict serves for
    the WTA)."""
    mlflow.configure(tracking.WTA_PREMATCH_EXPERIMENT)
    return _served(wta_prematch_champion, tracking.WTA_PREMATCH_MODEL)
