"""The two tours side by side: every forecaster of a tour on the same Grand Slam rows, intervals that hold the
estimate, a paired difference that sees a real edge and not a tie."""

import numpy as np
import pandas as pd
import pytest

from training.tours import MODEL, compare_on_slams, comparison_markdown, slam_rows, with_tour_feature


def _rows(n: int, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.2, 0.8, n)
    y = (rng.uniform(size=n) < truth).astype(int)
    fair = np.clip(truth + rng.normal(0, 0.03, n), 0.05, 0.95)
    rows = pd.DataFrame(
        {
            "a_won": y,
            "season": 2019 + np.arange(n) % 3,
            "ps_a": 1.02 / fair,
            "ps_b": 1.02 / (1 - fair),
            "slam_b365_a": 1.05 / fair,
            "slam_b365_b": 1.05 / (1 - fair),
        }
    )
    return rows, truth


def test_every_forecaster_is_scored_on_the_rows_with_both_markets_prices():
    rows, truth = _rows(600)
    rows.loc[:49, "ps_a"] = np.nan  # no Pinnacle price
    rows.loc[50:59, "slam_b365_b"] = 1.0  # not a price
    table = compare_on_slams("WTA", rows, {MODEL: truth, "blend_elo": 0.1 + 0.8 * truth})
    assert slam_rows(rows).sum() == 540
    assert set(table["forecaster"]) == {MODEL, "blend_elo", "market_pinnacle", "market_bet365"}
    assert (table["n"] == 540).all() and (table["seasons"] == "2019-2021").all()
    assert ((table["log_loss_low"] < table["log_loss"]) & (table["log_loss"] < table["log_loss_high"])).all()


def test_the_paired_difference_sees_a_real_edge_and_calls_a_copy_a_tie():
    rows, truth = _rows(3000)
    coin = np.full(len(rows), 0.5)
    table = compare_on_slams("ATP", rows, {MODEL: truth, "coin": coin, "copy": truth.copy()}).set_index("forecaster")
    assert table.loc["coin", "model_minus_high"] < 0  # the truth beats a coin flip beyond the noise
    assert table.loc["copy", ["model_minus", "model_minus_low", "model_minus_high"]].abs().max() == 0
    assert table.loc[MODEL, "model_minus"] == 0
    text = comparison_markdown(table.reset_index())
    assert text.count("| ATP 2019-2021 |") == 5 and "—" in text


def test_the_model_is_required_and_rows_of_two_tours_need_their_tour_feature():
    rows, truth = _rows(50)
    with pytest.raises(ValueError, match="model"):
        compare_on_slams("ATP", rows, {"blend_elo": truth})
    with pytest.raises(ValueError, match="tour_wta"):
        with_tour_feature(rows.assign(tour_wta=0.0), rows.assign(tour_wta=np.nan))


def test_a_window_without_priced_slam_rows_gives_an_empty_table_with_its_columns():
    rows, truth = _rows(40)
    rows["ps_a"] = np.nan  # no Pinnacle prices (the WTA's before 2010)
    table = compare_on_slams("WTA", rows, {MODEL: truth})
    assert table.empty and "log_loss" in table.columns and "tour" in table.columns
