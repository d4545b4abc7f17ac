"""Value detection: the edge of a bet after commission, and the opportunities worth an order.

Edge is the expected profit after commission per unit of money *at risk*:

- back at decimal price o, model probability p, commission c on net winnings:
  ``edge = p (o - 1)(1 - c) - (1 - p)``  (per unit of stake, which is what a back risks);
- lay at o: the layer wins the stake (less commission) when the selection loses and pays
  ``(o - 1)`` x stake when it wins, so per unit of liability
  ``edge = ((1 - p)(1 - c) - p (o - 1)) / (o - 1)``.

Both are "return on money at risk", so one ``min_edge`` means the same for either side, and Kelly's
optimal fraction is ``edge / b`` for both (see ``betting.staking``). Commission is applied per bet
here; the exchange charges it per market on net winnings, which is the same thing for the usual
one-position-per-market bet and never less favourable for a hedged book.
"""

from __future__ import annotations

from dataclasses import dataclass

from betting.codec import JsonRecord
from betting.ladder import InvalidPrice, round_to_tick
from betting.records import OrderRequest, Persistence, Side


def _check_probability(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"model probability must be in (0, 1), got {p}")


def edge(side: Side, model_probability: float, price: float, commission: float) -> float:
    """Expected profit after commission per unit at risk (back: stake; lay: liability)."""
    _check_probability(model_probability)
    if price <= 1.0:
        raise ValueError(f"decimal price must exceed 1, got {price}")
    p, o, c = model_probability, price, commission
    if side is Side.BACK:
        return p * (o - 1.0) * (1.0 - c) - (1.0 - p)
    return ((1.0 - p) * (1.0 - c) - p * (o - 1.0)) / (o - 1.0)


def fair_probability(price_a, price_b):
    """P(A wins) implied by the two decimal prices of a two-way market with the margin removed
    proportionally: (1/o_A) / (1/o_A + 1/o_B). Floats or numpy arrays / pandas Series alike."""
    ia, ib = 1.0 / price_a, 1.0 / price_b
    return ia / (ia + ib)


def fair_price(model_probability: float) -> float:
    """The decimal price the model thinks is fair: 1 / p (no commission, no margin)."""
    _check_probability(model_probability)
    return 1.0 / model_probability


def prediction_confidence(model_probability: float, supplied: float | None = None) -> float:
    """Confidence of a prediction: the supplied one (e.g. the prediction service's), else max(p, 1 - p).

    max(p, 1 - p) is how decisive the model is about the match (0.5 = coin flip, 1 = certain);
    a minimum confidence keeps the engine out of matches the model cannot separate.
    """
    if supplied is not None:
        if not 0.0 <= supplied <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {supplied}")
        return supplied
    _check_probability(model_probability)
    return max(model_probability, 1.0 - model_probability)


@dataclass(frozen=True)
class ValueConfig:
    """What counts as value."""

    commission: float = 0.05
    """Exchange commission on net winnings (0.05 = 5%), included in every edge."""
    min_edge: float = 0.02
    """Least edge (expected profit per unit at risk, after commission) worth an opportunity."""
    min_confidence: float = 0.0
    """Least prediction confidence (see ``prediction_confidence``) worth an opportunity."""
    allow_lay: bool = True
    """Also look for value in laying (selling) the selection."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.commission < 1.0:
            raise ValueError(f"commission must be in [0, 1), got {self.commission}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")


@dataclass(frozen=True)
class Opportunity(JsonRecord):
    """A bet the model likes at a price the market shows."""

    match_id: str
    selection: str
    side: Side
    price: float
    """Market price on the ladder (rounded conservatively if the market showed an off-ladder price)."""
    model_probability: float
    """Model probability that the selection wins."""
    edge: float
    """Expected profit after commission per unit at risk (see module docstring)."""
    confidence: float
    fair_price: float
    """1 / model probability."""
    reason: str

    def to_order_request(
        self,
        *,
        market_id: str,
        size: float,
        customer_order_ref: str,
        persistence: Persistence = Persistence.LAPSE,
    ) -> OrderRequest:
        """A limit order at the opportunity's price, carrying its edge and confidence for the risk checks."""
        return OrderRequest(
            customer_order_ref=customer_order_ref,
            market_id=market_id,
            selection=self.selection,
            side=self.side,
            price=self.price,
            size=size,
            persistence=persistence,
            edge=self.edge,
            confidence=self.confidence,
        )


def detect_value(
    match_id: str,
    selection: str,
    model_probability: float,
    *,
    back_price: float | None,
    lay_price: float | None,
    config: ValueConfig,
    confidence: float | None = None,
) -> tuple[Opportunity, ...]:
    """Opportunities on one selection: back at the best price available to back, lay at the best
    price available to lay, each kept when its edge and the confidence reach the minimums."""
    conf = prediction_confidence(model_probability, confidence)
    fair = fair_price(model_probability)
    quotes = [(Side.BACK, back_price)]
    if config.allow_lay:
        quotes.append((Side.LAY, lay_price))
    found = []
    for side, quoted in quotes:
        if quoted is None:
            continue
        try:
            price = round_to_tick(quoted, side)
        except InvalidPrice:
            continue  # no orderable price in the conservative direction (a back quoted below 1.01)
        e = edge(side, model_probability, price, config.commission)
        if e < config.min_edge or conf < config.min_confidence:
            continue
        verb = "back" if side is Side.BACK else "lay"
        reason = (
            f"{verb} {selection} at {price:g} vs fair {fair:.2f} (p={model_probability:.3f}): "
            f"edge {e:+.3f} after {config.commission:.1%} commission, confidence {conf:.2f}"
        )
        found.append(
            Opportunity(
                match_id=match_id,
                selection=selection,
                side=side,
                price=price,
                model_probability=model_probability,
                edge=e,
                confidence=conf,
                fair_price=fair,
                reason=reason,
            )
        )
    return tuple(found)
