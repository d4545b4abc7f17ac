"""Edge after commission and fractional Kelly, against hand-computed numbers."""

import math

import numpy as np
import pytest

from betting.records import Side
from betting.staking import StakingConfig, kelly_fraction, kelly_stake
from betting.value import Opportunity, ValueConfig, detect_value, edge, fair_price, prediction_confidence


def test_back_edge_after_commission_by_hand():
    # p=0.55 at 2.0 with 5% commission: 0.55 * 1.0 * 0.95 - 0.45 = 0.0725
    assert edge(Side.BACK, 0.55, 2.0, 0.05) == pytest.approx(0.0725)
    # the seed's example: p=0.65 at 1.85: 0.65 * 0.85 * 0.95 - 0.35 = 0.174875
    assert edge(Side.BACK, 0.65, 1.85, 0.05) == pytest.approx(0.174875)
    # commission turns a fair coin at evens into a loser
    assert edge(Side.BACK, 0.5, 2.0, 0.0) == pytest.approx(0.0)
    assert edge(Side.BACK, 0.5, 2.0, 0.05) == pytest.approx(-0.025)


def test_lay_edge_per_unit_of_liability_by_hand():
    # p=0.4 laid at 2.2: win 0.95 per unit stake w.p. 0.6, lose 1.2 w.p. 0.4 -> (0.57 - 0.48) / 1.2
    assert edge(Side.LAY, 0.4, 2.2, 0.05) == pytest.approx(0.075)
    assert edge(Side.LAY, 0.5, 2.0, 0.0) == pytest.approx(0.0)


def test_edge_rejects_impossible_inputs():
    with pytest.raises(ValueError):
        edge(Side.BACK, 1.0, 2.0, 0.05)
    with pytest.raises(ValueError):
        edge(Side.BACK, 0.5, 1.0, 0.05)


def test_back_kelly_fraction_by_hand():
    # b = (2.0 - 1) * 0.95 = 0.95; f* = (0.55 * 0.95 - 0.45) / 0.95 = 0.0763157...
    assert kelly_fraction(Side.BACK, 0.55, 2.0, 0.05) == pytest.approx(0.0725 / 0.95)


def test_lay_kelly_fraction_by_hand():
    # b = 0.95 / 1.2; f* (of bankroll as liability) = (0.6 * b - 0.4) / b = 0.075 / 0.791666...
    assert kelly_fraction(Side.LAY, 0.4, 2.2, 0.05) == pytest.approx(0.075 / (0.95 / 1.2))


@pytest.mark.parametrize(("side", "p", "price"), [(Side.BACK, 0.55, 2.0), (Side.BACK, 0.3, 4.5), (Side.LAY, 0.4, 2.2)])
def test_kelly_fraction_maximises_expected_log_growth(side, p, price):
    c = 0.05
    f_star = kelly_fraction(side, p, price, c)
    if side is Side.BACK:
        win_prob, b = p, (price - 1) * (1 - c)
    else:
        win_prob, b = 1 - p, (1 - c) / (price - 1)
    grid = np.linspace(0, 0.99, 99001)
    growth = win_prob * np.log1p(b * grid) + (1 - win_prob) * np.log1p(-grid)
    assert grid[int(np.argmax(growth))] == pytest.approx(f_star, abs=1e-4)


def test_fractional_kelly_stakes_rounded_down_by_hand():
    config = StakingConfig(kelly_fraction=0.25, commission=0.05)
    # back: 0.25 * 0.0763157 * 1000 = 19.0789 -> 19.07 (down, never up)
    assert kelly_stake(Side.BACK, 0.55, 2.0, 1000.0, config) == 19.07
    # lay: liability 0.25 * 0.0947368 * 1000 = 23.684 -> stake 23.684 / 1.2 = 19.736 -> 19.73
    assert kelly_stake(Side.LAY, 0.4, 2.2, 1000.0, config) == 19.73


def test_no_edge_no_stake():
    config = StakingConfig()
    assert kelly_fraction(Side.BACK, 0.5, 2.0, 0.05) == 0.0
    assert kelly_stake(Side.BACK, 0.5, 2.0, 1000.0, config) == 0.0
    assert kelly_stake(Side.LAY, 0.6, 1.7, 1000.0, config) == 0.0
    assert kelly_stake(Side.BACK, 0.55, 2.0, 0.0, config) == 0.0


def test_stake_below_exchange_minimum_is_zero_not_the_minimum():
    config = StakingConfig(kelly_fraction=0.25, min_stake=1.0)
    # 0.25 * 0.0763 * 52 = 0.99 -> below 1.00 -> no bet
    assert kelly_stake(Side.BACK, 0.55, 2.0, 52.0, config) == 0.0
    assert kelly_stake(Side.BACK, 0.55, 2.0, 53.0, config) == 1.01


def test_stake_cap_applies_before_rounding():
    config = StakingConfig(kelly_fraction=1.0)
    assert kelly_stake(Side.BACK, 0.55, 2.0, 1000.0, config, cap=25.555) == 25.55


def test_confidence_is_supplied_or_decisiveness():
    assert prediction_confidence(0.3) == pytest.approx(0.7)
    assert prediction_confidence(0.3, 0.9) == 0.9
    assert fair_price(0.65) == pytest.approx(1 / 0.65)


def test_detect_value_backs_when_the_price_beats_the_model():
    config = ValueConfig(commission=0.05, min_edge=0.05, min_confidence=0.6)
    found = detect_value("m1", "A", 0.65, back_price=1.85, lay_price=1.87, config=config)
    assert len(found) == 1
    opp = found[0]
    assert isinstance(opp, Opportunity)
    assert (opp.side, opp.price) == (Side.BACK, 1.85)
    assert opp.edge == pytest.approx(0.174875)
    assert opp.fair_price == pytest.approx(1.5384615)
    assert opp.confidence == pytest.approx(0.65)
    assert "edge +0.175" in opp.reason


def test_detect_value_lays_when_the_market_overrates_the_selection():
    config = ValueConfig(commission=0.05, min_edge=0.05)
    found = detect_value("m1", "A", 0.40, back_price=2.1, lay_price=2.2, config=config)
    assert [(o.side, o.price) for o in found] == [(Side.LAY, 2.2)]
    assert found[0].edge == pytest.approx(0.075)
    assert (
        detect_value("m1", "A", 0.40, back_price=2.1, lay_price=2.2, config=ValueConfig(min_edge=0.05, allow_lay=False))
        == ()
    )


def test_detect_value_thresholds_on_edge_and_confidence():
    just = edge(Side.BACK, 0.55, 2.0, 0.05)
    assert detect_value("m", "A", 0.55, back_price=2.0, lay_price=None, config=ValueConfig(min_edge=just - 1e-9))
    assert not detect_value("m", "A", 0.55, back_price=2.0, lay_price=None, config=ValueConfig(min_edge=just + 1e-9))
    assert not detect_value(
        "m", "A", 0.55, back_price=2.0, lay_price=None, config=ValueConfig(min_edge=0.0, min_confidence=0.56)
    )
    assert detect_value(
        "m",
        "A",
        0.55,
        back_price=2.0,
        lay_price=None,
        config=ValueConfig(min_edge=0.0, min_confidence=0.5),
        confidence=0.9,
    )


def test_detect_value_rounds_off_ladder_market_prices_conservatively():
    # a simulated market at 2.013 cannot be backed at more than 2.0 (down) nor laid at less than 2.02 (up)
    config = ValueConfig(min_edge=-1.0)
    found = {o.side: o.price for o in detect_value("m", "A", 0.5, back_price=2.013, lay_price=2.013, config=config)}
    assert found == {Side.BACK: 2.0, Side.LAY: 2.02}
    assert math.isclose(edge(Side.BACK, 0.5, 2.0, 0.05), -0.025)


def test_opportunity_becomes_an_order_request_with_its_risk_context():
    opp = detect_value("m", "A", 0.65, back_price=1.85, lay_price=None, config=ValueConfig())[0]
    request = opp.to_order_request(market_id="mkt", size=10.0, customer_order_ref="r1")
    assert (request.price, request.side, request.size, request.edge, request.confidence) == (
        1.85,
        Side.BACK,
        10.0,
        opp.edge,
        opp.confidence,
    )
