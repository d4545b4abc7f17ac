"""The backtest assets on the real pipeline run: every strategy at both books with both stakings,
thresholds fixed on validation and the same on test, intervals around the estimates, one MLflow run per
strategy in ``tennis-backtests``, the in-play backtest labelled SIMULATED, reports written."""

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from training import backtest as bt
from training import inplay_backtest as ib


@pytest.mark.slow
@pytest.mark.postgres
def test_prematch_backtest_on_the_walk_forward_predictions(runs):
    settings, _, first, second = runs
    assert first.success and second.success
    table = first.output_for_node("prematch_backtest")
    model = table[table["forecaster"] == "p_model"]
    assert set(zip(model["book"], model["staking"], model["split"], strict=True)) == {
        (b, s, split) for b in ("pinnacle", "bet365") for s in ("flat", "kelly") for split in ("validation", "test")
    }
    # one threshold pair per book, chosen on validation, applied unchanged to test
    per_book = model.groupby("book")[["min_edge", "max_price"]].nunique()
    assert (per_book == 1).all().all()
    cfg = bt.PrematchConfig()
    assert set(model["min_edge"]) <= set(cfg.edge_grid) and set(model["max_price"]) <= set(cfg.max_price_grid)
    bets = table[table["bets"] > 0]
    assert ((bets["roi_ci_low"] <= bets["roi"]) & (bets["roi"] <= bets["roi_ci_high"])).all()
    assert (model.loc[model["split"] == "validation", "bets"] >= cfg.min_validation_bets).any()
    # the test window has real prices at both books (2019-2021)
    test = model[model["split"] == "test"]
    assert (test.groupby("book")["bets"].max() > 50).all()
    # trap 8: a large, significant profit on closing prices is a leak until proven otherwise
    assert (test["roi_ci_low"] < 0.05).all(), test[["strategy", "roi", "roi_ci_low"]]
    # no information at the book's own prices: about the margin lost, certainly no profit
    baseline = table[table["forecaster"] == "market"].set_index("book")
    assert set(baseline.index) == {"pinnacle", "bet365"} and (baseline["split"] == "test").all()
    assert (baseline["bets"] > 500).all() and (baseline["roi"] < 0.0).all() and (baseline["roi"] > -0.15).all()

    seen = {(r["strategy"], r["split"]): r for r in second.output_for_node("prematch_backtest").to_dict("records")}
    assert set(seen) == set(zip(table["strategy"], table["split"], strict=True))

    reports = Path(settings.home) / "reports"
    assert (reports / "prematch_backtest.md").read_text().count("|") > 20
    assert (reports / "prematch_backtest_bet365-p_model-kelly_test.png").stat().st_size > 5_000

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    exp = MlflowClient().get_experiment_by_name("tennis-backtests")
    runs_ = MlflowClient().search_runs([exp.experiment_id], "tags.backtest = 'prematch'")
    assert len(runs_) == 2 * len(table["strategy"].unique())  # one per strategy per pipeline run
    params = runs_[0].data.params
    assert {"book", "staking", "min_edge", "max_price", "validation_seasons", "test_seasons"} <= set(params)
    assert "max" not in params["price_columns"].lower()
    assert "test_roi" in runs_[0].data.metrics or "validation_roi" in runs_[0].data.metrics


@pytest.mark.slow
@pytest.mark.postgres
def test_inplay_backtest_is_labelled_simulated(runs):
    settings, _, first, _ = runs
    table = first.output_for_node("inplay_backtest")
    assert set(zip(table["model"], table["market"], strict=True)) == {
        (m, k) for m in ib.INPLAY_MODELS for k in ib.INPLAY_MARKETS
    }
    assert (table["prices"] == "SIMULATED").all()
    # on the fair simulated market the simulator's own model never finds value
    fair = table.set_index(["model", "market"]).loc[("markov-constant", "simulated-fair")]
    assert fair["bets"] == 0
    assert (table["matches"] > 50).all() and (table["points"] > 5_000).all()
    meta = first.asset_materializations_for_node("inplay_backtest")[0].metadata
    assert "SIMULATED" in meta["label"].value and "SIMULATED" in meta["summary"].value
    assert "SIMULATED" in (Path(settings.home) / "reports" / "inplay_backtest.md").read_text()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    exp = MlflowClient().get_experiment_by_name("tennis-backtests")
    runs_ = MlflowClient().search_runs([exp.experiment_id], "tags.backtest = 'inplay'")
    assert runs_ and all(r.data.tags["market"] == "SIMULATED" for r in runs_)
    assert all(r.info.run_name.endswith("SIMULATED") for r in runs_)
