"""Scores, margin removal, windows and the champion/challenger rule."""

import math

import numpy as np
import pandas as pd
import pytest

from training.evaluation import attach_market_prices, evaluate, fair_probability
from training.metrics import accuracy, brier, calibration_error, log_loss
from training.models import ProbabilityColumn
from training.prematch import decide_promotion
from training.splits import Windows, model_rows
from training.tracking import RegisteredModel


def test_scores_against_hand_computed_values():
    y = np.array([1, 0, 1, 1])
    p = np.array([0.8, 0.3, 0.5, 0.1])
    assert log_loss(y, p) == pytest.approx(-(math.log(0.8) + math.log(0.7) + math.log(0.5) + math.log(0.1)) / 4)
    assert brier(y, p) == pytest.approx((0.04 + 0.09 + 0.25 + 0.81) / 4)
    assert accuracy(y, p) == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    # perfectly calibrated bins give zero error; a constant 0.9 on a 50% outcome gives 0.4
    assert calibration_error(np.array([1, 0] * 50), np.full(100, 0.5)) == pytest.approx(0.0)
    assert calibration_error(np.array([1, 0] * 50), np.full(100, 0.9)) == pytest.approx(0.4)


def test_fair_probability_removes_the_margin():
    p = fair_probability(np.array([1.80]), np.array([2.00]))
    assert p[0] == pytest.approx((1 / 1.8) / (1 / 1.8 + 1 / 2.0))
    assert fair_probability(np.array([2.0]), np.array([2.0]))[0] == pytest.approx(0.5)


def test_windows_must_be_ordered_and_split_rows():
    with pytest.raises(ValueError):
        Windows(train_end=2018, validation_start=2018)
    f = pd.DataFrame(
        {"season": [2016, 2017, 2018, 2019, 2022], "is_tour_main": True, "settles": [True, True, True, False, True]}
    )
    rows = model_rows(f, Windows(test_end=2021))
    assert rows["split"].tolist() == ["train", "train", "validation"]


def test_evaluation_uses_the_same_rows_for_every_forecaster():
    rows = pd.DataFrame(
        {"match_id": ["m1", "m2", "m3"], "player_a_id": [1, 3, 5], "a_won": [1, 0, 1], "tourney_level": ["A", "A", "G"]}
    )
    tour_odds = pd.DataFrame(
        {
            "match_id": ["m1", "m2"],
            "p1_id": [2, 3],
            "b365_p1": [3.0, 1.5],
            "b365_p2": [1.4, 2.6],
            "series": ["ATP250", "ATP250"],
        }
    )
    slam_odds = pd.DataFrame(columns=["match_id", "p1_id", "b365_p1", "b365_p2", "ps_p1", "ps_p2"])
    priced = attach_market_prices(rows, tour_odds, slam_odds)
    assert priced["b365_a"].tolist()[:2] == [1.4, 1.5] and np.isnan(priced["b365_a"].iloc[2])
    table = evaluate(priced, {"model": np.array([0.6, 0.4, 0.9])})
    overall = table[(table["comparison"] == "tour_bet365") & (table["tier"] == "all")]
    assert set(overall["forecaster"]) == {"model", "market_bet365"}
    assert (overall["n"] == 2).all()  # m3 has no price: scored for nobody
    market = overall.set_index("forecaster").loc["market_bet365"]
    # m1: player A (id 1) is p2 at 1.4 -> favourite; m2: A is p1 at 1.5 -> favourite who lost
    assert market["accuracy"] == pytest.approx(0.5)


def _validation(n=400, seed=1):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 0.9, n)
    return pd.DataFrame({"good": p, "bad": np.full(n, 0.5), "a_won": (rng.uniform(size=n) < p).astype(int)})


def _raw(model, rows, features):
    """These toy forecasters read one probability column (not mirrorable pre-match features)."""
    return model.predict_proba(rows[features])[:, 1]


def test_champion_rule():
    val = _validation()
    good, bad = ProbabilityColumn("good").fit(val, None), ProbabilityColumn("bad").fit(val, None)
    champ_bad = RegisteredModel("m", "1", None, bad, ["bad"])
    champ_good = RegisteredModel("m", "2", None, good, ["good"])
    assert decide_promotion(val, champ_good, None, [], _raw).promote
    assert decide_promotion(val, champ_good, champ_bad, [], _raw).promote
    assert not decide_promotion(val, champ_bad, champ_good, [], _raw).promote
    assert not decide_promotion(val, champ_good, champ_good, [], _raw).promote  # a tie does not beat
    blocked = decide_promotion(val, champ_good, champ_bad, ["raw_odds_tour:gx_suite (failed)"], _raw)
    assert not blocked.promote and "raw_odds_tour" in blocked.reason
