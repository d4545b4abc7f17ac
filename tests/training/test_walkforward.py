"""Walk-forward evaluation: strictly out of sample, choices made on validation only, honest reports."""

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from features.prematch import FEATURES
from features.ratings import win_probability
from training.calibration import fit_calibrator
from training.evaluation import paired_bootstrap, rank_band
from training.metrics import leak_suspect, log_loss
from training.models import BlendedElo
from training.walkforward import OUTPUT_COLUMNS, WalkForward, report, walk_forward


def _rows(seed: int = 0, first: int = 2000, last: int = 2021, per_season: int = 300) -> pd.DataFrame:
    """Synthetic modelling rows: the label depends on the Elo differences through a known model."""
    rng = np.random.default_rng(seed)
    n = (last - first + 1) * per_season
    X = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=list(FEATURES))
    X["elo_diff"] = rng.normal(0, 150, n)
    X["surface_elo_diff"] = X["elo_diff"] + rng.normal(0, 100, n)
    X["elo_prob"] = win_probability(X["elo_diff"])
    X["log_rank_a"], X["log_rank_b"] = np.log(rng.integers(1, 300, n)), np.log(rng.integers(1, 300, n))
    X["unranked_a"] = X["unranked_b"] = 0.0
    true = win_probability(0.7 * X["elo_diff"] + 0.3 * X["surface_elo_diff"])
    seasons = np.repeat(np.arange(first, last + 1), per_season)
    meta = pd.DataFrame(
        {
            "match_id": [f"{s}-x:{i}" for i, s in enumerate(seasons)],
            "player_a_id": rng.integers(1, 500, n),
            "player_b_id": rng.integers(500, 1000, n),
            "a_won": (rng.random(n) < true).astype(int),
            "season": seasons,
            "match_date": pd.to_datetime(seasons.astype(str)) + pd.to_timedelta(np.arange(n) % 300, unit="D"),
            "tourney_level": "A",
            "tourney_name": "X",
            "surface": "Hard",
            "round": "R32",
            "best_of": 3,
            "series": "ATP250",
        }
    )
    fair = np.clip(true + rng.normal(0, 0.03, n), 0.02, 0.98)
    meta["b365_a"], meta["b365_b"] = 1 / (fair * 1.03), 1 / ((1 - fair) * 1.03)
    meta["ps_a"] = meta["ps_b"] = meta["slam_b365_a"] = meta["slam_b365_b"] = np.nan
    return pd.concat([meta, X], axis=1)


def _logit() -> Pipeline:
    cols = ["elo_diff", "surface_elo_diff"]

    class Cols(Pipeline):
        def fit(self, X, y):
            return super().fit(X[cols], y)

        def predict_proba(self, X):
            return super().predict_proba(X[cols])

    return Cols([("impute", SimpleImputer()), ("logit", LogisticRegression())])


CONFIG = WalkForward(train_start=2000, first_season=2010, last_season=2021, test_start=2019)


@pytest.fixture(scope="module")
def walked():
    rows = _rows()
    return rows, *walk_forward(rows, CONFIG, _logit)


def test_every_reported_row_is_predicted_out_of_sample(walked):
    rows, table, summary = walked
    assert list(table.columns) == list(OUTPUT_COLUMNS)
    assert table["season"].min() == 2010 and table["season"].max() == 2021
    assert set(table.loc[table["season"] >= 2019, "split"]) == {"test"}
    assert set(table.loc[table["season"] < 2019, "split"]) == {"validation"}
    assert table["p_model"].between(0, 1).all() and table["p_blend_elo"].between(0, 1).all()
    assert [f["first_season"] for f in summary["folds"]] == list(range(2008, 2022))
    for fold in summary["folds"]:
        assert fold["train_rows"] == int((rows["season"] < fold["first_season"]).sum())


def test_predictions_ignore_every_later_season(walked):
    """Flipping every label from 2016 on changes nothing before 2016: no fold, calibration map or blend
    weight looks ahead."""
    rows, table, _ = walked
    altered = rows.copy()
    later = altered["season"] >= 2016
    altered.loc[later, "a_won"] = 1 - altered.loc[later, "a_won"]
    again, _ = walk_forward(altered, CONFIG, _logit)
    before = table["season"] < 2016
    for col in ("p_model_raw", "p_model_platt", "p_model_isotonic", "p_blend_elo", "blend_weight"):
        np.testing.assert_array_equal(again.loc[before, col].to_numpy(), table.loc[before, col].to_numpy())
    assert not np.allclose(again.loc[~before, "p_model_raw"], table.loc[~before, "p_model_raw"])


def test_calibration_choice_never_looks_at_the_test_window(walked):
    rows, table, _ = walked
    scrambled = rows.copy()
    test = scrambled["season"] >= 2019
    scrambled.loc[test, "a_won"] = 1 - scrambled.loc[test, "a_won"]
    again, _ = walk_forward(scrambled, CONFIG, _logit)
    assert again["calibration_method"].iloc[0] == table["calibration_method"].iloc[0]


def test_report_scores_model_and_market_on_the_same_rows(walked):
    _, table, _ = walked
    rep = report(table, n_boot=200)
    bet365 = rep.overall[rep.overall["market"] == "bet365"]
    assert bet365["n"].nunique() == 1 and bet365["n"].iloc[0] == int((table["split"] == "test").sum())
    assert set(rep.by_season["group"]) == set(range(2010, 2022))
    for heading in ("Targets", "Log-loss by season", "Log-loss by tier", "ranking band", "bootstrap CI"):
        assert heading in rep.markdown
    # the synthetic market knows the true probability: the model cannot beat it by much
    assert rep.targets["xgboost_minus_market"] > -0.01
    assert "none" in rep.markdown.split("Leak guard")[1]


def test_a_planted_leak_is_flagged(walked):
    _, table, _ = walked
    leaky = table.copy()
    leaky["p_model"] = np.where(leaky["a_won"] == 1, 0.9, 0.1)  # a feature that saw the result
    rep = report(leaky, n_boot=50)
    flagged = rep.season_all_rows[[leak_suspect(r) for r in rep.season_all_rows.to_dict("records")]]
    assert set(flagged["forecaster"]) == {"xgboost (walk-forward)"}
    assert len(flagged) == table["season"].nunique()
    assert "none" not in rep.markdown.split("Leak guard")[1]


@pytest.mark.parametrize(
    "scores,suspect",
    [
        ({"accuracy": 0.70, "log_loss": 0.58}, False),
        ({"accuracy": 0.751, "log_loss": 0.58}, True),
        ({"accuracy": 0.70, "log_loss": 0.499}, True),
        ({"accuracy": 0.75, "log_loss": 0.50}, False),
    ],
)
def test_leak_thresholds(scores, suspect):
    assert leak_suspect(scores) is suspect


def test_calibration_maps_repair_an_overconfident_forecast():
    rng = np.random.default_rng(3)
    true = rng.uniform(0.2, 0.8, 20000)
    y = (rng.random(20000) < true).astype(int)
    logit = np.log(true / (1 - true))
    over = 1 / (1 + np.exp(-2.0 * logit))  # twice too confident
    fit, apply = slice(0, 10000), slice(10000, None)
    raw_ll = log_loss(y[apply], over[apply])
    for method in ("platt", "isotonic"):
        mapped = fit_calibrator(method, over[fit], y[fit])(over[apply])
        assert log_loss(y[apply], mapped) < raw_ll - 0.01
    assert fit_calibrator("none", over[fit], y[fit])(over[apply]) is not None
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit_calibrator("beta", over, y)


def test_blended_elo_finds_the_weight_that_generated_the_data():
    rows = _rows(seed=5, per_season=2000)
    model = BlendedElo().fit(rows, rows["a_won"].to_numpy())
    assert abs(model.weight_ - 0.7) <= 0.1
    # with an eval set the weight is fitted there, not on the training rows
    flipped = rows.assign(a_won=1 - rows["a_won"])
    on_eval = BlendedElo().fit(flipped, flipped["a_won"].to_numpy(), eval_set=[(rows, rows["a_won"].to_numpy())])
    assert on_eval.weight_ == model.weight_


def test_paired_bootstrap_interval_brackets_the_mean_and_has_the_right_sign():
    rng = np.random.default_rng(1)
    true = rng.uniform(0.2, 0.8, 3000)
    y = (rng.random(3000) < true).astype(int)
    out = paired_bootstrap(y, np.full(3000, 0.5), true, n_boot=500)
    assert out["ci_low"] <= out["mean_diff"] <= out["ci_high"]
    assert out["ci_low"] > 0  # a coin flip is worse than the truth
    same = paired_bootstrap(y, true, true, n_boot=100)
    assert same["mean_diff"] == same["ci_low"] == same["ci_high"] == 0


def test_rank_band_uses_the_better_ranked_player():
    rows = pd.DataFrame({"rank_a": [3, 40, np.nan, 250, np.nan], "rank_b": [80, 12, 70, 400, np.nan]})
    assert rank_band(rows).tolist() == ["top 10", "11-50", "51-100", "101+", "unranked"]


def test_served_probabilities_are_symmetric_in_the_players():
    from xgboost import XGBClassifier

    from features.prematch import mirror_rows, mirror_spec
    from training.models import predict, symmetric

    rows = _rows(seed=9, per_season=100)
    model = XGBClassifier(n_estimators=30, max_depth=3).fit(rows[list(FEATURES)], rows["a_won"])
    x = rows[list(FEATURES)].to_numpy()
    raw = model.predict_proba(x)[:, 1] + model.predict_proba(mirror_rows(x, mirror_spec(FEATURES)))[:, 1]
    assert np.abs(raw - 1).max() > 0.01  # trees alone are not symmetric ...
    p = predict(model, rows)
    mirrored = pd.DataFrame(mirror_rows(x, mirror_spec(FEATURES)), columns=list(FEATURES))
    np.testing.assert_allclose(p + predict(model, mirrored), 1.0, atol=1e-12)  # ... the served answer is
    fast = symmetric(lambda a: model.predict_proba(a)[:, 1], FEATURES)
    np.testing.assert_allclose(fast(x), p, atol=1e-7)


def _validation_table(raw_shift: float, n: int = 4000, seed: int = 3) -> pd.DataFrame:
    """Validation rows whose raw forecasts are calibrated (``raw_shift`` 0) or skewed; the maps are fitted on the
    truth, so Platt is as good as calibration gets."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(0.1, 0.9, n)
    y = (rng.random(n) < true).astype(int)
    logit = np.log(true / (1 - true))
    raw = 1 / (1 + np.exp(-(logit + raw_shift)))
    return pd.DataFrame(
        {
            "split": "validation",
            "a_won": y,
            "p_model_raw": raw,
            "p_model_platt": fit_calibrator("platt", raw, y)(raw),
            "p_model_isotonic": fit_calibrator("isotonic", raw, y)(raw),
        }
    )


def test_the_calibration_map_is_kept_unless_none_is_better_beyond_the_bootstrap_noise():
    from training.walkforward import choose_calibration

    # calibrated raw forecasts: "none" may win by a hair, which is noise: the calibrated map is kept
    method, rule = choose_calibration(_validation_table(0.0), n_boot=500)
    assert method in ("platt", "isotonic") and rule["ci"][1] >= 0
    # badly skewed raw forecasts: the map is far better, and kept
    method, rule = choose_calibration(_validation_table(1.0), n_boot=500)
    assert method in ("platt", "isotonic") and rule["none_minus_calibrated"] > 0
    # a map that hurts beyond the noise (fitted on other data): uncalibrated wins
    table = _validation_table(0.0)
    table["p_model_platt"] = table["p_model_isotonic"] = np.clip(table["p_model_raw"] + 0.15, 0.01, 0.99)
    method, rule = choose_calibration(table, n_boot=500)
    assert method == "none" and rule["ci"][1] < 0
