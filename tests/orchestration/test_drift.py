"""Drift -> retrain (issue 12): shifting the pre-match features the champion scores, or live outcomes that
disagree with the live predictions, fires the drift check; the ``drift_retrain`` sensor then requests the retrain
job, which retrains the in-play model too. Calibrated predictions and unshifted features request nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert

from features.prematch import FEATURES
from orchestration.definitions import build_definitions
from orchestration.defs.monitoring.assets import CALIBRATION_CHECK, live_calibration_drift, prematch_feature_drift
from orchestration.defs.monitoring.checks import features_within_drift_limits
from orchestration.defs.operations.sensors import drift_retrain
from orchestration.defs.shared.resources import CourtsideResource
from storage.db import make_engine, migrate
from storage.models import LiveEvent
from tests.orchestration.harness import settings_for
from training.drift import DRIFT_LIMITS, psi


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=5000), rng.normal(size=5000)
    assert psi(a, b) < 0.02
    assert psi(a, b + 1.0) > DRIFT_LIMITS.psi_alert
    with_missing = b.copy()
    with_missing[:1500] = np.nan  # values gone missing are a shift too
    assert psi(a, with_missing) > DRIFT_LIMITS.psi_alert


def _model_dataset(shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frames = []
    for split, n in (("validation", 3000), ("test", 3000)):
        frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=list(FEATURES))
        if split == "test":
            frame["elo_diff"] += shift
        frames.append(frame.assign(split=split))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize(("shift", "fires"), [(0.0, False), (1.0, True)])
def test_a_shifted_scored_feature_fires_the_drift_check(shift, fires):
    out = prematch_feature_drift(model_dataset=_model_dataset(shift))
    assert out.metadata["drifted"].value is fires
    check = features_within_drift_limits(out.value)
    assert check.passed is not fires
    if fires:
        assert out.metadata["drifted_features"].value == ["elo_diff"] and "elo_diff" in check.description


def _live_log(url: str, first_wins: float, matches: int = 40, p: float = 0.8, version: str = "1") -> None:
    """Finished matches with five in-play predictions each: the first player given ``p``, winning ``first_wins``."""
    db = make_engine(url)
    migrate(db)
    rows, at = [], datetime(2024, 1, 1, tzinfo=UTC)
    for m in range(matches):
        key = f"at-{m}"
        rows += [
            {
                "kind": "PREDICTION",
                "event_time": at,
                "match_id": key,
                "payload": json.dumps({"probability": p, "model": "tennis-inplay", "version": version}),
            }
            for _ in range(5)
        ]
        winner = "First Player" if m < first_wins * matches else "Second Player"
        rows.append(
            {"kind": "MATCH_FINISHED", "event_time": at, "match_id": key, "payload": json.dumps({"winner": winner})}
        )
    with db.begin() as conn:
        conn.execute(insert(LiveEvent), [dict(r, recorded_at=at, feed="live", seq=None) for r in rows])


@pytest.mark.parametrize(("first_wins", "fires"), [(0.8, False), (0.3, True)])
def test_miscalibrated_live_outcomes_fire_the_check_and_the_sensor_requests_a_retrain_with_the_inplay_model(
    tmp_path, first_wins, fires
):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    _live_log(url, first_wins)
    courtside = CourtsideResource(data_dir=str(tmp_path), database_url=url, reports_dir=str(tmp_path / "reports"))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([live_calibration_drift], resources={"courtside": courtside}, instance=instance)
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == CALIBRATION_CHECK and check.passed is not fires
    error = check.metadata["calibration_error"].value
    assert error == pytest.approx(abs(0.8 - first_wins), abs=1e-6)

    sensor = drift_retrain(dg.build_sensor_context(instance=instance))
    assert len(sensor.run_requests) == (1 if fires else 0)
    again = drift_retrain(dg.build_sensor_context(instance=instance, cursor=sensor.cursor))
    assert not again.run_requests, "one drift asks once"
    # measured again (after a retrain, say) on the same model's predictions: the same drift, not asked again
    dg.materialize([live_calibration_drift], resources={"courtside": courtside}, instance=instance)
    again = drift_retrain(dg.build_sensor_context(instance=instance, cursor=again.cursor))
    assert not again.run_requests, "the same model judged again: no retrain loop"
    if fires:
        defs = build_definitions(settings_for(tmp_path / "home", tmp_path))
        retrain = defs.resolve_job_def(drift_retrain.job_name).asset_layer.selected_asset_keys
        assert {dg.AssetKey("inplay_champion"), dg.AssetKey("prematch_champion")} <= retrain
        assert "live_calibration_drift" in sensor.run_requests[0].tags["courtside/reason"]


def test_a_new_in_play_model_is_judged_on_its_own_predictions_and_asks_again_if_it_drifts(tmp_path):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    _live_log(url, 0.3, version="1")
    courtside = CourtsideResource(data_dir=str(tmp_path), database_url=url, reports_dir=str(tmp_path / "reports"))
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([live_calibration_drift], resources={"courtside": courtside}, instance=instance)
    first = drift_retrain(dg.build_sensor_context(instance=instance))
    assert len(first.run_requests) == 1
    _live_log(url, 0.8, matches=40, version="2")  # the retrained model, calibrated: judged alone, no drift
    result = dg.materialize([live_calibration_drift], resources={"courtside": courtside}, instance=instance)
    assert result.get_asset_check_evaluations()[0].passed
    assert not drift_retrain(dg.build_sensor_context(instance=instance, cursor=first.cursor)).run_requests
