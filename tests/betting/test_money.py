"""``round_money``'s fast path gives the very float of the decimal half-up rule it stands for."""

import math
import random
from decimal import ROUND_HALF_UP, Decimal

import pytest

from betting.money import round_money


def _decimal_rule(amount: float) -> float:
    return float(Decimal(repr(float(amount))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) + 0.0


def _amounts() -> list[float]:
    rng = random.Random(7)
    out = [0.0, -0.0, 0.005, -0.005, 2.675, -2.675, 1.005, 0.125, 1e-12, -1e-12, 9_999_999.995, 12_345_678.905]
    out += [rng.uniform(-1e4, 1e4) for _ in range(20_000)]  # arbitrary floats
    out += [rng.randint(-(10**6), 10**6) / 100 for _ in range(20_000)]  # pennies
    out += [rng.randint(-(10**6), 10**6) / 1000 for _ in range(20_000)]  # a tenth of a penny: half pennies among them
    out += [sum(rng.randint(1, 10**4) / 100 for _ in range(rng.randint(2, 9))) for _ in range(20_000)]  # penny sums
    out += [rng.randint(1, 10**4) / 100 * rng.choice([1.5, 2.02, 3.33, 0.97]) for _ in range(20_000)]  # stake x price
    return out


def test_round_money_is_the_decimal_half_up_rule_to_the_float():
    mismatches = [(a, round_money(a), _decimal_rule(a)) for a in _amounts() if round_money(a) != _decimal_rule(a)]
    assert mismatches == []
    assert all(math.copysign(1.0, round_money(a)) == 1.0 for a in (0.0, -0.0, -0.001, -0.004))  # never -0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_round_money_refuses_what_is_not_an_amount(bad):
    with pytest.raises(ValueError, match="not a finite amount"):
        round_money(bad)
