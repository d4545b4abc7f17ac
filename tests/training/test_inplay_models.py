"""In-play models on real ATP point-by-point matches: the point table (orientation, splits, what is
left out and why), every model equal to the pre-match probability before the first point, scores by
stage, the champion/challenger rule, and the same predictions after an MLflow round trip and compiled
for serving as in training.

The pre-match probabilities here are a stand-in (seeded, one per match): the pipeline test
(tests/orchestration/test_inplay_pipeline.py) runs the same code on the walk-forward model's."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from features.inplay_state import FEATURE_INDEX, INPLAY_FEATURES, inplay_features, sigmoid
from features.scoring import Score, match_format
from serving.predictor import compile_inplay_predictor
from tests.real_data import data_dir
from training import tracking
from training.inplay_data import InplayTrainingConfig, build_points, match_states, pbp_sequences, point_rows
from training.inplay_evaluation import beats_at_every_stage, beats_in_every_bin, stage_masks, stage_table
from training.inplay_models import InplayEstimator, decide_inplay_promotion, fit_models, predict_rows
from training.splits import Windows

pytestmark = pytest.mark.slow  # real point-by-point data, models fitted and logged (make test-fast leaves them out)

WINDOWS = Windows(2012, 2012, 2013, 2013, 2014, 2014)
PER_SEASON = 60


@pytest.fixture(scope="module")
def inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Real pbp records of 2012-2014 shaped as ``pbp_matched`` rows, and stand-in pre-match predictions
    (player A is server2 for every third match, so the orientation is exercised)."""
    raw = pd.read_csv(data_dir() / "pbp" / "pbp_matches_atp_main_archive.csv.gz")
    raw["season"] = pd.to_datetime(raw["date"], format="%d %b %y").dt.year
    raw = raw[
        ~raw["tny_name"].str.contains("Davis|Open.html|Open\\.$|Wimbledon|French|Australian|USOpen", regex=True)
    ]  # best-of-3 events: the format is known without Sackmann
    raw = raw.groupby("season").head(PER_SEASON)
    raw = raw[raw["season"].between(2012, 2014)].reset_index(drop=True)
    pbp = raw.assign(
        match_id=[f"m{i}" for i in range(len(raw))],
        server1_id=np.arange(len(raw)) * 2 + 1,
        server2_id=np.arange(len(raw)) * 2 + 2,
    )
    rng = np.random.default_rng(11)
    flip = np.arange(len(raw)) % 3 == 0
    server1_won = (raw["winner"] == 1).to_numpy()
    preds = pd.DataFrame(
        {
            "match_id": pbp["match_id"],
            "season": raw["season"],
            "tourney_name": raw["tny_name"],
            "best_of": 3,
            "player_a_id": np.where(flip, pbp["server2_id"], pbp["server1_id"]),
            "player_b_id": np.where(flip, pbp["server1_id"], pbp["server2_id"]),
            "a_won": np.where(flip, ~server1_won, server1_won).astype(int),
            "p_model": rng.uniform(0.2, 0.8, len(raw)),
        }
    )
    return pbp, preds


@pytest.fixture(scope="module")
def built(inputs):
    pbp, preds = inputs
    sequences, left_out = pbp_sequences(pbp, preds, WINDOWS)
    points, config = build_points(sequences, InplayTrainingConfig(windows=WINDOWS, sample_share=0.5))
    return sequences, left_out, points, config


@pytest.fixture(scope="module")
def models(built):
    rows = built[2].rows
    return fit_models(
        rows[rows["split"] == "train"], rows[rows["split"] == "validation"], built[3].serve_prior_strength
    )


def _counts_before_each_point(states: list[Score], held: list[bool]) -> np.ndarray:
    """Points won on serve / served by A, then by B, before each point (counted here independently)."""
    counts = np.zeros((len(states), 4), dtype=int)
    for k in range(1, len(states)):
        counts[k] = counts[k - 1]
        server = states[k - 1].server
        counts[k, 2 * server] += held[k - 1]
        counts[k, 2 * server + 1] += 1
    return counts


def test_prematch_probability_and_result_are_oriented_to_the_first_server(inputs, built):
    pbp, preds = inputs
    sequences = built[0]
    merged = sequences.merge(preds, on="match_id", suffixes=("", "_pred"))
    flipped = merged["player_a_id"] != pbp.set_index("match_id").loc[merged["match_id"], "server1_id"].to_numpy()
    assert flipped.any() and (~flipped).any()
    np.testing.assert_allclose(merged["prematch_p"], np.where(flipped, 1 - merged["p_model"], merged["p_model"]))
    winners = pbp.set_index("match_id").loc[merged["match_id"], "winner"].to_numpy()
    assert (merged["a_won"].to_numpy() == (winners == 1)).all()  # A = the first server, whoever the table's A is


def test_no_match_is_in_two_splits_and_splits_are_the_seasons(built):
    rows = built[2].rows
    assert rows.groupby("match_id")["split"].nunique().max() == 1
    assert set(rows["split"]) == {"train", "validation", "test"}
    for split, season in (("train", 2012), ("validation", 2013), ("test", 2014)):
        assert set(rows.loc[rows["split"] == split, "season"]) == {season}


def test_test_matches_keep_every_point_and_the_others_a_share(built):
    rows = built[2].rows
    per_match = rows.groupby("match_id").agg(kept=("point", "size"), n=("n_points", "first"), split=("split", "first"))
    test = per_match[per_match["split"] == "test"]
    assert (test["kept"] == test["n"]).all()
    other = per_match[per_match["split"] != "test"]
    share = other["kept"].sum() / other["n"].sum()
    assert 0.4 < share < 0.6


def test_bad_and_missing_input_is_counted_and_good_input_kept(inputs):
    pbp, preds = inputs
    pbp = pbp.copy()
    pbp.loc[0, "pbp"] = "SSSS;RRRRX"  # an unknown point code
    pbp.loc[1, "pbp"] = pbp.loc[1, "pbp"].replace(";", "", 1)  # a game end without its mark
    pbp.loc[2, "match_id"] = None  # identity found no Sackmann match
    preds = preds[preds["match_id"] != "m3"].copy()  # no out-of-sample pre-match probability
    preds.loc[preds["match_id"] == "m4", "player_a_id"] = 999_999  # the players disagree
    sequences, left_out = pbp_sequences(pbp, preds, WINDOWS)
    assert left_out["no_sackmann_match"] == 1 and left_out["no_out_of_sample_prematch"] == 1
    assert left_out["players_disagree"] == 1
    table = point_rows(sequences, InplayTrainingConfig(windows=WINDOWS, sample_share=0.2))
    assert table.counts["replay_error"] == 2 and len(table.errors) == 2 and "position" in table.errors[0]
    assert table.counts["matches"] == len(pbp) - 5
    assert set(table.rows["match_id"]) == set(sequences["match_id"]) - {"m0", "m1"}


def test_the_record_must_crown_the_winner(inputs):
    pbp, preds = inputs
    preds = preds.copy()
    preds.loc[preds["match_id"] == "m5", "a_won"] = 1 - preds.loc[preds["match_id"] == "m5", "a_won"]
    sequences, _ = pbp_sequences(pbp, preds, WINDOWS)
    table = point_rows(sequences, InplayTrainingConfig(windows=WINDOWS, sample_share=0.2))
    assert table.counts["replay_winner_disagrees"] == 1 and "m5" not in set(table.rows["match_id"])


def test_point_rows_are_the_feature_function_of_the_replayed_states(inputs, built):
    sequences, _, points, config = built
    match = sequences[sequences["split"] == "test"].iloc[0]
    states, held, _ = match_states(match["pbp"], match_format(match["tourney_name"], int(match["season"]), 3))
    counts = _counts_before_each_point(states, held)
    expected = inplay_features([match["prematch_p"]] * len(states), states, *counts.T, config.serve_prior_strength)
    got = points.rows[points.rows["match_id"] == match["match_id"]].sort_values("point")
    np.testing.assert_allclose(got[list(INPLAY_FEATURES)].to_numpy(), expected, rtol=0, atol=1e-12, equal_nan=True)


def test_serve_prior_strength_is_chosen_on_validation(built):
    points, config = built[2], built[3]
    table = points.strength_scores
    assert table["validation_points"].iloc[0] == (points.rows["split"] == "validation").sum()
    assert config.serve_prior_strength == table.loc[table["log_loss"].idxmin(), "serve_prior_strength"]
    assert (points.rows["serve_prior_strength"] == config.serve_prior_strength).all()


def test_every_model_is_the_prematch_probability_before_the_first_point(built, models):
    rows = built[2].rows
    start = rows[rows["point"] == 0]
    assert len(start) == built[2].counts["test_matches"] + (rows[rows["split"] != "test"]["point"] == 0).sum()
    prematch = sigmoid(start["prematch_logit"].to_numpy())
    for name, model in models.items():
        np.testing.assert_allclose(predict_rows(model, start), prematch, rtol=0, atol=1e-9, err_msg=name)
    later = rows[rows["point"] > 0]
    learned, base = predict_rows(models["learned"], later), predict_rows(models["markov_updated"], later)
    assert np.abs(learned - base).max() > 1e-4  # the trees do correct the chain after the first point


def test_scores_by_stage_on_every_test_match(built, models):
    rows = built[2].rows
    test = rows[rows["split"] == "test"]
    masks = stage_masks(test)
    n_matches = test["match_id"].nunique()
    assert masks["0%"].sum() == n_matches
    quarters = [masks[q] for q in ("0-25%", "25-50%", "50-75%", "75-100%")]
    assert (np.sum(quarters, axis=0) + masks["0%"] == 1).all(), "every point in exactly one stage"
    assert all(q.sum() > n_matches for q in quarters)  # bins of points, not one point a match
    assert masks["set 1"].sum() + masks["set 2"].sum() + masks.get("set 3", np.zeros(1, bool)).sum() == len(test)
    table = stage_table(test, {n: predict_rows(m, test) for n, m in models.items()})
    start = table[table["stage"] == "0%"]
    assert start["log_loss"].max() - start["log_loss"].min() < 1e-9  # identical before the first point
    assert set(beats_at_every_stage(table, "learned")) == set(table["stage"]) - {"0%"}
    validation = rows[rows["split"] == "validation"]  # a sample of each match's points: the bins still work
    bins = beats_in_every_bin(
        validation, predict_rows(models["markov_updated"], validation), predict_rows(models["markov"], validation)
    )
    assert set(bins) == set(beats_at_every_stage(table, "learned")) - {"all points"}
    assert all(b["beats"] == (b["model"] < b["reference"]) for b in bins.values())


def test_promotion_rule_is_the_prematch_rule_and_needs_comparable_features(built, models):
    validation = built[2].rows[built[2].rows["split"] == "validation"]
    strength = built[3].serve_prior_strength

    def registered(model: InplayEstimator, version: str) -> tracking.RegisteredModel:
        return tracking.RegisteredModel("tennis-inplay", version, None, model, list(INPLAY_FEATURES))

    learned, chain = registered(models["learned"], "2"), registered(models["markov"], "1")
    first = decide_inplay_promotion(validation, learned, None, [])
    assert first.promote and first.reason == "no champion yet"
    failed = decide_inplay_promotion(validation, learned, chain, ["pbp_matched:check (failed)"])
    assert not failed.promote and "upstream data checks failed" in failed.reason
    decided = decide_inplay_promotion(validation, learned, chain, [])
    assert decided.promote == (decided.challenger_log_loss < decided.champion_log_loss)
    other = registered(InplayEstimator("markov_updated", strength * 2).fit(), "1")
    moved = decide_inplay_promotion(validation, learned, other, [])
    assert moved.promote and "serve prior strength" in moved.reason


def test_mlflow_round_trip_and_serving_compilation_predict_the_same(tmp_path, built, models):
    rows = built[2].rows
    sample = rows.sample(500, random_state=0)
    tracking.configure(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", tracking.INPLAY_EXPERIMENT)
    for name, model in models.items():
        with mlflow.start_run(run_name=name):
            uri = tracking.log_model(model, list(INPLAY_FEATURES), sample[list(INPLAY_FEATURES)].head(3))
        loaded, features = tracking.load_model(uri)
        assert features == list(INPLAY_FEATURES) and loaded.serve_prior_strength == model.serve_prior_strength
        predict, family = compile_inplay_predictor(loaded, features)
        assert family == name
        np.testing.assert_allclose(
            predict(sample[list(INPLAY_FEATURES)].to_numpy()), predict_rows(model, sample), rtol=0, atol=1e-12
        )
    with pytest.raises(ValueError, match="expects features"):
        compile_inplay_predictor(models["markov"], list(INPLAY_FEATURES)[:-1])


def test_service_states_give_the_training_rows(built):
    """/predict_live rebuilds a state from what a feed reports (completed sets, games, points, server) and
    the serve counts; its features equal the training row of the same point."""
    sequences, _, points, config = built
    match = sequences[sequences["split"] == "test"].iloc[1]
    fmt = match_format(match["tourney_name"], int(match["season"]), 3)
    states, held, _ = match_states(match["pbp"], fmt)
    counts = _counts_before_each_point(states, held)
    picks = [0, 1, len(states) // 2, len(states) - 1]
    reported = [
        Score.at(fmt, [s.games for s in states[k].sets], states[k].games, states[k].points, states[k].server)
        for k in picks
    ]
    got = inplay_features(
        [match["prematch_p"]] * len(picks), reported, *counts[picks].T, strength=config.serve_prior_strength
    )
    rows = points.rows[points.rows["match_id"] == match["match_id"]].set_index("point").loc[picks]
    np.testing.assert_allclose(got, rows[list(INPLAY_FEATURES)].to_numpy(), rtol=0, atol=1e-12, equal_nan=True)
    assert got[0, FEATURE_INDEX["points_played"]] == 0 and got[-1, FEATURE_INDEX["points_played"]] == len(states) - 1
