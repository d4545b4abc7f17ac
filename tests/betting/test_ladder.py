"""The Betfair price ladder: 350 ticks, increments by band, invalid odds, conservative rounding."""

import pytest

from betting.ladder import (
    MAX_PRICE,
    MIN_PRICE,
    TICKS,
    InvalidPrice,
    canonical_price,
    is_valid_price,
    round_to_tick,
    tick_index,
    tick_offset,
    ticks_between,
)
from betting.records import Side


def test_ladder_has_350_ascending_ticks_from_1_01_to_1000():
    assert len(TICKS) == 350
    assert (MIN_PRICE, MAX_PRICE) == (1.01, 1000.0)
    assert all(a < b for a, b in zip(TICKS, TICKS[1:], strict=False))


@pytest.mark.parametrize(
    ("low", "high", "step", "count"),
    [
        (1.0, 2.0, 0.01, 100),
        (2.0, 3.0, 0.02, 50),
        (3.0, 4.0, 0.05, 20),
        (4.0, 6.0, 0.1, 20),
        (6.0, 10.0, 0.2, 20),
        (10.0, 20.0, 0.5, 20),
        (20.0, 30.0, 1.0, 10),
        (30.0, 50.0, 2.0, 10),
        (50.0, 100.0, 5.0, 10),
        (100.0, 1000.0, 10.0, 90),
    ],
)
def test_increments_by_band(low, high, step, count):
    band = [t for t in TICKS if low < t <= high]
    assert len(band) == count
    gaps = {round(b - a, 6) for a, b in zip([low, *band], band, strict=False)}
    assert gaps == {step}


@pytest.mark.parametrize("price", [1.01, 1.5, 2.0, 2.02, 2.98, 3.05, 4.1, 6.2, 10.5, 21, 32, 55, 110, 1000])
def test_valid_prices(price):
    assert is_valid_price(price)
    assert TICKS[tick_index(price)] == price


@pytest.mark.parametrize(
    "price", [1.0, 1.005, 2.01, 2.03, 3.02, 4.05, 6.1, 10.2, 20.5, 31, 52, 105, 1010, 0, -2, float("nan"), float("inf")]
)
def test_off_ladder_prices_are_invalid_odds(price):
    assert not is_valid_price(price)
    with pytest.raises(InvalidPrice):
        tick_index(price)


def test_float_noise_on_a_tick_is_still_that_tick():
    assert is_valid_price(0.1 + 0.2 + 1.7)  # 2.0000000000000004
    assert canonical_price(1.1 * 3) == 3.3


@pytest.mark.parametrize(
    ("price", "back", "lay"),
    [
        (2.01, 2.0, 2.02),
        (1.855, 1.85, 1.86),
        (3.33, 3.3, 3.35),
        (5.55, 5.5, 5.6),
        (17.7, 17.5, 18.0),
        (2.0, 2.0, 2.0),
        (1.0, None, 1.01),
        (1200.0, 1000.0, None),
        (999.0, 990.0, 1000.0),
    ],
)
def test_round_to_tick_is_conservative_down_for_back_up_for_lay(price, back, lay):
    if back is None:
        with pytest.raises(InvalidPrice):
            round_to_tick(price, Side.BACK)
    else:
        assert round_to_tick(price, Side.BACK) == back
        assert round_to_tick(price, Side.BACK) <= price
    if lay is None:
        with pytest.raises(InvalidPrice):
            round_to_tick(price, Side.LAY)
    else:
        assert round_to_tick(price, Side.LAY) == lay
        assert round_to_tick(price, Side.LAY) >= price


def test_ticks_between_counts_ticks_across_bands():
    assert ticks_between(2.0, 2.02) == 1
    assert ticks_between(1.01, 1000) == 349
    assert ticks_between(3.0, 2.0) == -50
    assert ticks_between(1.98, 2.04) == 4  # 1.99, 2.00, 2.02, 2.04
    with pytest.raises(InvalidPrice):
        ticks_between(2.0, 2.01)


def test_tick_offset_clamps_at_the_ends():
    assert tick_offset(2.0, 1) == 2.02
    assert tick_offset(2.0, -1) == 1.99
    assert tick_offset(1.01, -5) == 1.01
    assert tick_offset(990, 3) == 1000
