"""A SIMULATED in-play match-odds market (no public in-play price history exists in the data).

EXCHANGE.md's recipe: the margin-free pre-match price becomes serve-point probabilities, the
Markov chain gives the fair probability at the current score, and the market shows it with a lag
of a point or two, some noise, and an overround (the back/lay spread on the exchange ladder).
The market suspends as each point is played and reopens with new prices. Every message says
``simulated: true``; a real exchange feed would sit behind the same protocol.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass

from betting.ladder import MAX_PRICE, MIN_PRICE, round_to_tick, tick_offset
from betting.records import Side
from features.markov.scalar import match_win_probability, serve_probabilities
from features.scoring import PLAYER_LABELS, Score
from feeds.live.protocol import MarketUpdate, RunnerPrices

LABELS = PLAYER_LABELS
BOOKMAKER_SIZE = 1000.0
"""Stake the bookmaker is assumed to accept at its closing price (the odds files carry no sizes)."""


@dataclass(frozen=True)
class MarketModel:
    """How the simulated market departs from the fair Markov probability."""

    lag_points: int = 1
    """The market prices the score as it was this many points ago."""
    noise_sd: float = 0.10
    """Standard deviation of the noise on the log-odds of the fair probability."""
    spread_ticks: int = 1
    """Lay price this many ticks above the back price (the overround of the book)."""
    min_size: float = 20.0
    max_size: float = 800.0


RunnerQuote = tuple[float, float, float, float, float]
"""One runner's prices as the simulated market quotes them: (back, back size, lay, lay size, traded volume)."""
Quotes = tuple[RunnerQuote, RunnerQuote]
"""Both runners' quotes (first player, second player)."""


def _quotes(p: float, model: MarketModel, rng: random.Random, traded: list[float]) -> Quotes:
    runners = []
    for i, pi in enumerate((p, 1 - p)):
        pi = min(max(pi, 1 / MAX_PRICE), 1 - 1 / MAX_PRICE)
        fair = min(max(1 / pi, MIN_PRICE), MAX_PRICE)
        back = round_to_tick(fair, Side.BACK)
        lay = tick_offset(back, model.spread_ticks)
        traded[i] += rng.uniform(0, model.max_size)
        back_size = round(rng.uniform(model.min_size, model.max_size), 2)
        lay_size = round(rng.uniform(model.min_size, model.max_size), 2)
        runners.append((back, back_size, lay, lay_size, round(traded[i], 2)))
    return runners[0], runners[1]


def runner_prices(quotes: Quotes | None) -> list[RunnerPrices]:
    """The feed protocol's runners of a quote (no prices: a suspended or closed market)."""
    if quotes is None:
        return [RunnerPrices(selection=label) for label in LABELS]
    return [
        RunnerPrices(selection=label, back_price=back, back_size=bs, lay_price=lay, lay_size=ls, traded_volume=traded)
        for label, (back, bs, lay, ls, traded) in zip(LABELS, quotes, strict=True)
    ]


class SimulatedMarket:
    """The in-play market of one match, updated point by point."""

    def __init__(
        self,
        event_key: str,
        prematch_p1: float,
        start: Score,
        model: MarketModel | None = None,
        seed: int | None = None,
    ):
        self.event_key = event_key
        self.market_id = f"sim-{event_key}"
        self.model = model or MarketModel()
        self.p_a, self.p_b = serve_probabilities(prematch_p1, start.fmt)
        self.history: list[Score] = [start]
        # a stable seed (never Python's per-process str hash): the same match replays with the same prices
        self.rng = random.Random(seed if seed is not None else zlib.crc32(event_key.encode()))
        self.traded = [0.0, 0.0]
        self._suspended: MarketUpdate | None = None

    def _update(self, status: str, point_number: int, quotes: Quotes | None = None) -> MarketUpdate:
        """The market's message: the quotes, or none (suspended, closed)."""
        return MarketUpdate(
            event_key=self.event_key,
            market_id=self.market_id,
            status=status,
            in_play=True,
            simulated=True,
            source="simulated",
            point_number=point_number,
            runners=runner_prices(quotes),
        )

    def fair_probability(self, score: Score) -> float:
        """P(player 1 wins) at ``score`` under constant serve probabilities."""
        return match_win_probability(score, self.p_a, self.p_b)

    def suspend(self, point_number: int) -> MarketUpdate:
        """The market as a point is being played: the same message every point but for its number (validated
        once a match, then copied: a replay sends one a point)."""
        if self._suspended is None:
            self._suspended = self._update("SUSPENDED", point_number)
            return self._suspended
        return self._suspended.model_copy(update={"point_number": point_number})

    def quotes_after(self, score: Score) -> Quotes | None:
        """The reopened market's quotes after a point (priced on the lagged score, with noise); None: the match
        is over (the market closes). What ``after_point`` sends, without the message (a fast replay)."""
        self.history.append(score)
        lagged = self.history[max(0, len(self.history) - 1 - self.model.lag_points)]
        if score.is_over:
            return None
        fair = self.fair_probability(lagged)
        logit = math.log(fair / (1 - fair)) if 0 < fair < 1 else (30.0 if fair >= 1 else -30.0)
        noisy = 1 / (1 + math.exp(-(logit + self.rng.gauss(0, self.model.noise_sd))))
        return _quotes(noisy, self.model, self.rng, self.traded)

    def after_point(self, score: Score, point_number: int) -> MarketUpdate:
        """The reopened market after a point (``quotes_after``), or the closed one when the match is over."""
        quotes = self.quotes_after(score)
        return self._update("CLOSED" if quotes is None else "OPEN", point_number, quotes)

    def opening_quotes(self) -> Quotes:
        """The quotes when play starts (fair price at 0-0)."""
        return _quotes(self.fair_probability(self.history[0]), self.model, self.rng, self.traded)

    def opening(self) -> MarketUpdate:
        """The market when play starts (``opening_quotes``)."""
        return self._update("OPEN", 0, self.opening_quotes())


def closing_odds(event_key: str, price_1: float, price_2: float, source: str) -> MarketUpdate:
    """The REAL pre-match closing prices (bookmaker odds, margin included) as a market message."""
    prices = [round_to_tick(max(p, MIN_PRICE), Side.BACK) for p in (price_1, price_2)]
    return MarketUpdate(
        event_key=event_key,
        market_id=f"pre-{event_key}",
        status="OPEN",
        in_play=False,
        simulated=False,
        source=source,
        runners=[
            RunnerPrices(selection=label, back_price=p, back_size=BOOKMAKER_SIZE)
            for label, p in zip(LABELS, prices, strict=True)
        ],
    )
