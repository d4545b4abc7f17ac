"""The in-play lane of the whole pipeline on the real shared data (session fixture ``runs``): the point
table built from the point-by-point matches with the walk-forward pre-match probabilities, the three
models scored by stage on every test point, the best one registered as ``tennis-inplay`` and promoted
by the champion/challenger rule, nothing new registered by the second run, and ``/predict_live`` of a
real ``bentoml serve`` answering from that champion."""

import json
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.inplay_state import FEATURE_INDEX, inplay_features, sigmoid
from features.scoring import Score, match_format
from tests.services import prediction_service
from training import tracking
from training.inplay_evaluation import choose_inplay_challenger
from training.inplay_models import predict_rows

STAGES = {"0%", "0-25%", "25-50%", "50-75%", "75-100%", "set 1", "set 2", "set 3", "all points"}
MODELS = {"markov", "markov_updated", "learned"}


def _checks(result):
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


@pytest.mark.slow
@pytest.mark.postgres
def test_inplay_assets_materialize_with_their_checks_green(runs):
    _, _, first, _ = runs
    assert first.success
    done = {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in first.get_asset_materialization_events()
    }
    assert {"inplay_points", "inplay_candidates", "inplay_evaluation", "inplay_challenger", "inplay_champion"} <= done
    checks = _checks(first)
    assert checks[("inplay_candidates", "starts_at_prematch_probability")].passed
    assert checks[("inplay_challenger", "challenger_beats_champion")].passed


@pytest.mark.slow
@pytest.mark.postgres
def test_points_carry_the_walk_forward_prematch_probability(runs):
    settings, _, first, _ = runs
    rows = first.output_for_node("inplay_points")
    assert rows.groupby("match_id")["split"].nunique().max() == 1
    seasons = rows.groupby("split")["season"].agg(["min", "max"])
    assert seasons.loc["test", "min"] > seasons.loc["validation", "max"] >= seasons.loc["train", "max"]
    test = rows[rows["split"] == "test"]
    assert (test.groupby("match_id")["point"].size() == test.groupby("match_id")["n_points"].first()).all()
    assert test["match_id"].nunique() > 2000 and len(test) > 300_000

    wf = pd.read_parquet(settings.warehouse_dir / "walkforward_predictions.parquet").set_index("match_id")
    pbp = pd.read_parquet(settings.warehouse_dir / "pbp_matched.parquet").dropna(subset=["match_id"])
    pbp = pbp.drop_duplicates("match_id").set_index("match_id")
    start = rows[rows["point"] == 0].set_index("match_id")
    a_is_first_server = wf.loc[start.index, "player_a_id"].to_numpy() == pbp.loc[start.index, "server1_id"].to_numpy()
    p_model = wf.loc[start.index, "p_model"].to_numpy()
    expected = np.where(a_is_first_server, p_model, 1 - p_model)
    np.testing.assert_allclose(sigmoid(start["prematch_logit"].to_numpy()), expected, rtol=0, atol=1e-12)
    a_won = wf.loc[start.index, "a_won"].to_numpy()
    assert (start["a_won"].to_numpy() == np.where(a_is_first_server, a_won, 1 - a_won)).all()


@pytest.mark.slow
@pytest.mark.postgres
def test_every_model_scored_by_stage_on_the_test_points(runs):
    settings, _, first, _ = runs
    table = first.output_for_node("inplay_evaluation")
    assert set(table["model"]) == MODELS and set(table["stage"]) >= STAGES
    pivot = table.pivot(index="stage", columns="model", values="log_loss")
    assert pivot.loc["0%"].max() - pivot.loc["0%"].min() < 1e-9  # the pre-match probability, for all three
    # honest bounds: better than a coin flip at every stage, no better than near-certainty late in matches
    assert ((pivot > 0.05) & (pivot < 0.693)).all().all(), pivot
    assert (pivot.loc["75-100%"] < pivot.loc["0-25%"]).all()  # the later the state, the more it knows
    meta = first.asset_materializations_for_node("inplay_evaluation")[0].metadata
    assert set(meta["beats_constant_chain_at_every_stage"].value) == {"markov_updated", "learned"}
    reports = settings.home / "reports"
    for name in ("inplay_evaluation.md", "inplay_calibration.png", "inplay_log_loss_by_stage.png"):
        assert (reports / name).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.postgres
def test_best_model_registered_as_champion_with_runs_in_mlflow(runs):
    settings, _, first, _ = runs
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    champion = client.get_model_version_by_alias(tracking.INPLAY_MODEL, tracking.CHAMPION)
    challenger = client.get_model_version_by_alias(tracking.INPLAY_MODEL, tracking.CHALLENGER)
    assert str(champion.version) == str(challenger.version) == "1"
    candidates = first.output_for_node("inplay_candidates")
    points = first.output_for_node("inplay_points")
    validation = points[points["split"] == "validation"].reset_index(drop=True)
    best, _ = choose_inplay_challenger(candidates, validation, predict_rows)  # the stage bins decide, then log-loss
    assert client.get_run(champion.run_id).data.tags["model_family"] == best.name
    assert "/predict_live" in client.get_registered_model(tracking.INPLAY_MODEL).description
    experiment = client.get_experiment_by_name(tracking.INPLAY_EXPERIMENT)
    found = client.search_runs([experiment.experiment_id])
    families = {r.data.tags.get("model_family") for r in found}
    assert families >= MODELS
    for r in found:
        if r.data.tags.get("model_family") in MODELS:
            assert {"validation_log_loss", "test_0-25pct_log_loss", "test_all_points_log_loss"} <= set(r.data.metrics)
    model, features = tracking.load_model(f"models:/{tracking.INPLAY_MODEL}@{tracking.CHAMPION}")
    assert model.kind == best.name and features == list(best.model.features)


@pytest.mark.slow
@pytest.mark.postgres
def test_second_run_registers_no_new_inplay_version(runs):
    settings, _, _, second = runs
    assert second.success
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    versions = MlflowClient().search_model_versions(f"name='{tracking.INPLAY_MODEL}'")
    assert [str(v.version) for v in versions] == ["1"]
    reason = _checks(second)[("inplay_challenger", "challenger_beats_champion")].metadata["reason"].value
    assert "already the champion" in reason


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
@pytest.mark.postgres
def test_predict_live_serves_the_inplay_champion(runs):
    settings, _, first, _ = runs
    env = {
        "COURTSIDE_DATA_DIR": settings.data_dir,
        "COURTSIDE_DATABASE_URL": settings.database_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    champion = MlflowClient().get_model_version_by_alias(tracking.INPLAY_MODEL, tracking.CHAMPION)
    model, _ = tracking.load_model(f"models:/{tracking.INPLAY_MODEL}/{champion.version}")
    states = [
        {
            "match_id": "start",
            "best_of": 3,
            "tournament": "Miami",
            "season": 2015,
            "server": 1,
            "prematch_probability": 0.64,
        },
        {
            "match_id": "late",
            "best_of": 5,
            "tournament": "Wimbledon",
            "season": 2015,
            "sets": [[6, 4], [3, 6]],
            "games": [5, 4],
            "points": [2, 3],
            "server": 2,
            "prematch_probability": 0.55,
            "serve_stats": {"won_one": 60, "served_one": 90, "won_two": 58, "served_two": 88},
        },
        {"match_id": "over", "best_of": 3, "sets": [[6, 4], [6, 3]], "server": 1, "prematch_probability": 0.4},
    ]
    with prediction_service(settings.home, env, ready=True) as url:
        answers = _post(f"{url}/predict_live", {"states": states})["predictions"]
        with urllib.request.urlopen(f"{url}/health", timeout=10) as resp:
            health = json.loads(resp.read())
    assert health["inplay_model_name"] == tracking.INPLAY_MODEL
    assert health["inplay_model_version"] == str(champion.version) and health["inplay_model_family"] == model.kind
    for a in answers:
        assert a["model_name"] == tracking.INPLAY_MODEL and a["model_version"].startswith(f"{champion.version} ")
    start, late, over = answers
    assert start["probability"] == pytest.approx(0.64, abs=1e-9)
    assert over["probability"] == 1.0
    fmt = match_format("Wimbledon", 2015, 5)
    score = Score.at(fmt, [(6, 4), (3, 6)], (5, 4), (2, 3), 1)
    x = inplay_features([0.55], [score], [60], [90], [58], [88], model.serve_prior_strength)
    assert late["probability"] == pytest.approx(float(model.predict_features(x)[0]), abs=1e-12)
    assert late["serve_one"] == pytest.approx(float(x[0, FEATURE_INDEX["serve_a"]]))
