"""Backtests: history replayed through the betting code the live path uses.

Nothing here decides, stakes, risk-checks, matches or settles a bet by itself: every bet goes
through ``betting.decision.decide`` (value after commission -> best opportunity -> fractional
Kelly), ``betting.risk.check`` against a ``RiskBook``, the ``PaperExchange`` (ladder, minimum
stake, matching, bet delay, suspensions) and ``betting.settlement`` (walkover / retirement
rules of ``features.matches.settles_with_winner``). This module only sequences them in time and
reads the results.

**Pre-match** (:func:`run_prematch`): walk-forward predictions against real bookmaker *closing*
prices, Pinnacle (Grand Slams) and Bet365 (tour-level) separately. The price columns a strategy
reads are named by its ``Book`` and nothing else is passed on (:func:`prematch_frame`), so a Max
price cannot reach a bet. A bookmaker takes no commission (``commission=0``) and offers backs only;
its prices are rounded *down* to the exchange ladder (conservative: a bet never gets a better price
than the bookmaker's). Each day's bets are placed at the start of the day with the bankroll
realised so far and settled at its end. Thresholds (minimum edge, maximum price) are chosen on the
"validation" rows only by the rule of :func:`choose_thresholds`, then applied once to "test".

**In-play**: ``training.inplay_backtest`` (its rows go to the same :class:`Ledger`).

Reported per strategy and split: bets, staked, P&L, ROI with a bootstrap 95% interval
(markets resampled with replacement — one bet per market pre-match — so it ignores the path
dependence of Kelly stakes), hit rate, maximum drawdown, final bankroll, by season too.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np
import pandas as pd

from betting.clock import ManualClock
from betting.decision import Decision, decide
from betting.exchange import OrderUpdate
from betting.ladder import MAX_PRICE, MIN_PRICE, round_to_tick
from betting.market import MarketBook, MarketStatus, RunnerBook
from betting.paper import PaperExchange, PaperExchangeConfig
from betting.records import BetResult, OrderRequest, Settlement, Side, customer_order_ref
from betting.risk import RiskBook, RiskLimits, check
from betting.settlement import MatchResult
from betting.staking import StakingConfig
from betting.value import ValueConfig
from feeds.live.market import BOOKMAKER_SIZE
from training.evaluation import fair_probability

PLAYERS = ("player_a", "player_b")
"""Selections of a pre-match market: player A and player B of the predictions' rows."""


# --- results -----------------------------------------------------------------------------------

MARKET_COLUMNS = [
    "market_id",
    "match_id",
    "season",
    "split",
    "settled_at",
    "bets",
    "staked",
    "won",
    "lost",
    "void",
    "net_profit",
    "bankroll_after",
]
BET_COLUMNS = [
    "market_id",
    "match_id",
    "season",
    "split",
    "selection",
    "side",
    "price",
    "stake",
    "result",
    "profit",
    "edge",
    "model_probability",
]


@dataclass
class Ledger:
    """What one strategy did: a row per settled market (the bankroll curve) and per matched bet."""

    start_bankroll: float
    markets: pd.DataFrame
    bets: pd.DataFrame
    counts: Counter = field(default_factory=Counter)
    """Rows skipped and orders refused, by reason (``skipped: ...``, ``risk: ...``, ``exchange: ...``)."""


class LedgerRecorder:
    """Collects settlements into the ledger's rows (bets counted only when something matched)."""

    def __init__(self) -> None:
        self.markets: list[dict] = []
        self.bets: list[dict] = []

    def settled(
        self, s: Settlement, match_id: str, season: int, split: str, opportunities: dict[str, tuple[float, float]]
    ) -> None:
        matched = [b for b in s.bets if b.size_matched > 0]
        if not matched:
            return
        for b in matched:
            edge, prob = opportunities.get(b.customer_order_ref, (math.nan, math.nan))
            self.bets.append(
                {
                    "market_id": s.market_id,
                    "match_id": match_id,
                    "season": season,
                    "split": split,
                    "selection": b.selection,
                    "side": str(b.side),
                    "price": b.average_price_matched,
                    "stake": b.size_matched,
                    "result": str(b.result),
                    "profit": b.profit,
                    "edge": edge,
                    "model_probability": prob,
                }
            )
        self.markets.append(
            {
                "market_id": s.market_id,
                "match_id": match_id,
                "season": season,
                "split": split,
                "settled_at": s.pnl.settled_at,
                "bets": len(matched),
                "staked": round(sum(b.size_matched for b in matched), 2),
                "won": sum(b.result is BetResult.WON for b in matched),
                "lost": sum(b.result is BetResult.LOST for b in matched),
                "void": bool(s.void),
                "net_profit": s.pnl.net_profit,
                "bankroll_after": s.pnl.bankroll_after,
            }
        )

    def ledger(self, start: float, counts: Counter) -> Ledger:
        return Ledger(
            start,
            pd.DataFrame(self.markets, columns=MARKET_COLUMNS),
            pd.DataFrame(self.bets, columns=BET_COLUMNS),
            counts,
        )


def max_drawdown(start: float, bankroll: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Largest fall of the bankroll from a previous peak (starting bankroll included): in money and
    as a share of that peak."""
    curve = np.r_[start, np.asarray(bankroll, dtype=float)]
    peak = np.maximum.accumulate(curve)
    fall = peak - curve
    i = int(np.argmax(fall))
    return float(fall[i]), float(fall[i] / peak[i]) if peak[i] > 0 else 0.0


def bootstrap_roi(
    net: np.ndarray, staked: np.ndarray, n: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of ROI = sum(net) / sum(staked), resampling markets with replacement."""
    net, staked = np.asarray(net, dtype=float), np.asarray(staked, dtype=float)
    if n <= 0 or len(net) == 0 or staked.sum() <= 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(net), size=(n, len(net)))
    s = staked[idx].sum(axis=1)
    roi = np.where(s > 0, net[idx].sum(axis=1) / np.where(s > 0, s, 1.0), 0.0)
    lo, hi = np.quantile(roi, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


HEADLINE_FIGURES = (
    "bets",
    "staked",
    "pnl",
    "roi",
    "roi_ci_low",
    "roi_ci_high",
    "hit_rate",
    "max_drawdown",
    "final_bankroll",
)
"""The figures of ``summarize`` every backtest table and run shows first."""


def summarize(ledger: Ledger, markets: pd.DataFrame | None = None, n_boot: int = 2000, seed: int = 0) -> dict:
    """Headline figures of a ledger (or of a subset of its markets, e.g. one season)."""
    m = ledger.markets if markets is None else markets
    bets = ledger.bets[ledger.bets["market_id"].isin(m["market_id"])]
    staked = float(m["staked"].sum())
    net = float(m["net_profit"].sum())
    decided = int(m["won"].sum() + m["lost"].sum())
    start = (
        ledger.start_bankroll
        if markets is None or m.empty
        else float(m["bankroll_after"].iloc[0] - m["net_profit"].iloc[0])
    )
    dd, dd_share = max_drawdown(start, m["bankroll_after"].to_numpy()) if len(m) else (0.0, 0.0)
    lo, hi = bootstrap_roi(m["net_profit"].to_numpy(), m["staked"].to_numpy(), n_boot, seed)
    return {
        "markets": len(m),
        "bets": len(bets),
        "staked": round(staked, 2),
        "pnl": round(net, 2),
        "roi": net / staked if staked > 0 else math.nan,
        "roi_ci_low": lo,
        "roi_ci_high": hi,
        "hit_rate": float(m["won"].sum()) / decided if decided else math.nan,
        "void_markets": int(m["void"].sum()),
        "mean_price": float(bets["price"].mean()) if len(bets) else math.nan,
        "max_drawdown": round(dd, 2),
        "max_drawdown_pct": dd_share,
        "start_bankroll": round(start, 2),
        "final_bankroll": round(float(m["bankroll_after"].iloc[-1]), 2) if len(m) else round(start, 2),
    }


def by_season(ledger: Ledger, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """:func:`summarize` of each season's markets (bankroll and drawdown as that season saw them)."""
    rows = [
        {"season": int(season), **summarize(ledger, g, n_boot, seed)}
        for season, g in ledger.markets.groupby("season", sort=True)
    ]
    return pd.DataFrame(rows)


def _record(risk: RiskBook, updates: Iterable[OrderUpdate]) -> None:
    for u in updates:
        risk.record_order(u.order)


def utc_day(day: pd.Timestamp) -> datetime:
    ts = pd.Timestamp(day)
    return (ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)).to_pydatetime()


# --- pre-match ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Book:
    """A bookmaker's closing prices in the predictions' rows: the only price columns a strategy reads."""

    name: str
    price_a: str
    price_b: str
    description: str


BOOKS = {
    "pinnacle": Book("pinnacle", "ps_a", "ps_b", "Pinnacle closing prices (Grand Slams only)"),
    "bet365": Book("bet365", "b365_a", "b365_b", "Bet365 closing prices (tour-level)"),
}


class Staking(StrEnum):
    """How much a pre-match value bet stakes."""

    FLAT = "flat"
    """The same stake on every bet (``PrematchConfig.flat_stake``)."""
    KELLY = "kelly"
    """``betting.staking`` fractional Kelly on the realised bankroll, capped by the max stake."""


@dataclass(frozen=True)
class Thresholds:
    """What a pre-match bet must clear (applied by ``ValueConfig.min_edge`` and the risk limits)."""

    min_edge: float
    """Least expected profit per unit staked (``betting.value.edge``)."""
    max_price: float
    """Highest decimal price backed: the strategy's band (the risk limits' own bounds still apply)."""
    min_price: float = 1.01
    """Lowest decimal price backed."""


@dataclass(frozen=True)
class PrematchConfig:
    """Everything a pre-match backtest depends on; amounts in the account currency."""

    bankroll: float = 1000.0
    """Starting bankroll of each split (validation and test each start from it)."""
    flat_stake: float = 1.0
    """Stake of every flat bet: one unit (the exchange's minimum stake, 0.1% of the starting bankroll), so
    that a losing strategy's ROI is measured over all its bets, not cut short by ruin."""
    kelly_fraction: float = 0.25
    """Multiplier of full Kelly for Kelly staking."""
    commission: float = 0.0
    """A bookmaker charges none (the margin is in its prices)."""
    risk: RiskLimits = RiskLimits(max_orders_per_hour=100_000, max_open_orders=100_000)
    """The engine's default limits (max stake 50, exposure per market 150 / total 500, daily stop-loss
    200, weekly 500, prices 1.10-10) except order counts: a day's pre-match bets are placed together at
    its start. ``min_edge`` is the strategy's and ``min_confidence`` is off (the thresholds decide)."""
    edge_grid: tuple[float, ...] = (0.0, 0.05, 0.10)
    """Minimum edges tried on validation."""
    max_price_grid: tuple[float, ...] = (2.0, 3.0, 10.0)
    """Maximum prices tried on validation (10 is the risk limits' own bound)."""
    min_validation_bets: int = 150
    """A threshold pair with fewer validation bets than this is not eligible."""
    bootstrap: int = 2000
    seed: int = 0


REQUIRED = ("match_id", "season", "split", "match_date", "a_won")


def prematch_frame(predictions: pd.DataFrame, book: Book, probability: str | None) -> tuple[pd.DataFrame, Counter]:
    """The only columns a pre-match strategy sees: ids, dates, result, P(A wins) and the book's two prices.

    ``probability`` names the column of P(A wins); None means the book's own margin-free
    probability (the no-information baseline). Optional ``outcome`` / ``sets_completed`` columns
    give the settlement outcome (absent: the row is a completed match). Rows without both prices
    are not bets at this book (``skipped: no <book> price``); rows with a price off the ladder's
    range or an invalid probability are dropped and counted.
    """
    missing = [
        c
        for c in (*REQUIRED, book.price_a, book.price_b, *([probability] if probability else []))
        if c not in predictions.columns
    ]
    if missing:
        raise ValueError(f"pre-match backtest at {book.name}: missing columns {missing}")
    counts: Counter = Counter()
    out = pd.DataFrame(
        {
            "match_id": predictions["match_id"].astype(str),
            "season": predictions["season"].astype(int),
            "split": predictions["split"].astype(str),
            "match_date": pd.to_datetime(predictions["match_date"]),
            "a_won": predictions["a_won"],
            "price_a": predictions[book.price_a].astype(float),
            "price_b": predictions[book.price_b].astype(float),
            "outcome": predictions["outcome"].astype(str) if "outcome" in predictions else "completed",
            "sets_completed": (
                predictions["sets_completed"].fillna(0).astype(int) if "sets_completed" in predictions else 0
            ),
        }
    )
    priced = out["price_a"].notna() & out["price_b"].notna()
    counts[f"skipped: no {book.name} price"] += int((~priced).sum())
    out = out[priced]
    on_ladder = out["price_a"].between(MIN_PRICE, MAX_PRICE) & out["price_b"].between(MIN_PRICE, MAX_PRICE)
    counts["skipped: price outside the ladder (1.01-1000)"] += int((~on_ladder).sum())
    out = out[on_ladder].copy()
    if probability is None:
        out["probability"] = fair_probability(out["price_a"].to_numpy(), out["price_b"].to_numpy())
    else:
        out["probability"] = predictions.loc[out.index, probability].astype(float)
    valid = out["probability"].gt(0) & out["probability"].lt(1)
    counts["skipped: probability missing or outside (0, 1)"] += int((~valid).sum())
    result_ok = out["a_won"].isin([0, 1]) | ~out["outcome"].isin(["completed"])
    counts["skipped: no result"] += int((valid & ~result_ok).sum())
    dated = out["match_date"].notna()
    counts["skipped: no match date"] += int((valid & result_ok & ~dated).sum())
    out = out[valid & result_ok & dated]
    out = out.sort_values(["match_date", "match_id"], kind="mergesort").reset_index(drop=True)
    return out, counts


def _bookmaker_book(market_id: str, at: datetime, price_a: float, price_b: float | None) -> MarketBook:
    """The closing prices as a pre-match market: back only, rounded down to the ladder (as
    ``feeds.live.market.closing_odds`` publishes them), ``BOOKMAKER_SIZE`` available at each
    (no price for B: only A can be backed)."""
    runners = tuple(
        RunnerBook.top_of_book(
            sel, None if price is None else round_to_tick(price, Side.BACK), BOOKMAKER_SIZE, None, 0.0
        )
        for sel, price in zip(PLAYERS, (price_a, price_b), strict=True)
    )
    return MarketBook(market_id=market_id, publish_time=at, status=MarketStatus.OPEN, in_play=False, runners=runners)


@dataclass(frozen=True)
class _Match:
    match_id: str
    season: int
    split: str
    day: datetime
    """Start of the match's day (UTC): when its bet is placed."""
    market: MarketBook
    probability: float
    """P(player A wins)."""
    result: MatchResult


class PrematchMarkets:
    """The rows of one split as markets at one book, in date order, with each minimum edge's
    opportunities remembered: ``decide`` finds the same opportunity whatever the bankroll (only the
    Kelly size depends on it), so the threshold grid asks it once per row and minimum edge."""

    def __init__(self, rows: pd.DataFrame, book: Book, commission: float = 0.0, only_a: bool = False):
        self.book = book
        self.commission = commission
        self.matches: list[_Match] = []
        for r in rows.sort_values(["match_date", "match_id"], kind="mergesort").to_dict("records"):
            day = utc_day(r["match_date"])
            market_id = f"{book.name}:{r['match_id']}"
            winner = PLAYERS[0] if r["a_won"] == 1 else PLAYERS[1] if r["a_won"] == 0 else None
            self.matches.append(
                _Match(
                    r["match_id"],
                    int(r["season"]),
                    r["split"],
                    day,
                    _bookmaker_book(market_id, day, r["price_a"], None if only_a else r["price_b"]),
                    float(r["probability"]),
                    MatchResult(winner=winner, outcome=r["outcome"], sets_completed=int(r["sets_completed"])),
                )
            )
        self._found: dict[float, list[tuple[_Match, Decision]]] = {}

    def __len__(self) -> int:
        return len(self.matches)

    def value(self, min_edge: float) -> ValueConfig:
        """What counts as value at a bookmaker: backs only, no commission."""
        return ValueConfig(commission=self.commission, min_edge=min_edge, min_confidence=0.0, allow_lay=False)

    def opportunities(self, min_edge: float, kelly: StakingConfig, max_stake: float) -> list[tuple[_Match, Decision]]:
        """Matches where ``decide`` finds an opportunity at ``min_edge`` (with its decision at the
        starting bankroll), in date order."""
        if min_edge not in self._found:
            value = self.value(min_edge)
            found = []
            for m in self.matches:
                d = decide(
                    m.match_id,
                    m.market,
                    m.probability,
                    PLAYERS,
                    1000.0,
                    value,
                    kelly,
                    max_stake,
                    ("prematch", self.book.name),
                )
                if d.opportunity is not None:
                    found.append((m, d))
            self._found[min_edge] = found
        return self._found[min_edge]


def _flat_request(
    decision: Decision, match_id: str, market_id: str, ref_parts: tuple, stake: float
) -> OrderRequest | None:
    """The decision's best opportunity at a flat stake (the Kelly size replaced, nothing else)."""
    opp = decision.opportunity
    if opp is None:
        return None
    ref = customer_order_ref(match_id, *ref_parts, opp.selection, opp.side)
    return opp.to_order_request(market_id=market_id, size=stake, customer_order_ref=ref)


def simulate_prematch(
    markets: PrematchMarkets, staking: Staking, thresholds: Thresholds, config: PrematchConfig = PrematchConfig()
) -> Ledger:
    """One strategy over one split's markets, day by day in date order, from ``config.bankroll``:
    each day's bets placed at its start with the bankroll realised so far, settled at its end."""
    book = markets.book
    kelly = StakingConfig(kelly_fraction=config.kelly_fraction, commission=config.commission)
    limits = dataclasses.replace(config.risk, min_edge=thresholds.min_edge, min_confidence=0.0)
    value = markets.value(thresholds.min_edge)
    exchange_cfg = PaperExchangeConfig(commission=config.commission, pre_play_delay_seconds=0.0)
    risk = RiskBook(config.bankroll)
    counts: Counter = Counter()
    recorder = LedgerRecorder()
    found = markets.opportunities(thresholds.min_edge, kelly, limits.max_stake)
    if not found:
        return recorder.ledger(config.bankroll, counts)
    clock = ManualClock(found[0][0].day)
    i = 0
    while i < len(found):
        day = found[i][0].day
        clock.set(max(day, clock.now()))
        # one paper account per day (same balance), so its order book does not grow with history
        exchange = PaperExchange(clock, exchange_cfg, balance=risk.bankroll)
        placed: list[tuple[_Match, str]] = []
        opportunities: dict[str, tuple[float, float]] = {}
        while i < len(found) and found[i][0].day == day:
            m, decision = found[i]
            i += 1
            if not thresholds.min_price <= decision.opportunity.price <= thresholds.max_price:
                counts["outside the price band"] += 1
                continue
            if staking is Staking.KELLY:
                decision = decide(
                    m.match_id,
                    m.market,
                    m.probability,
                    PLAYERS,
                    risk.bankroll,
                    value,
                    kelly,
                    limits.max_stake,
                    ("prematch", book.name),
                )
                request = decision.request
            else:
                request = _flat_request(
                    decision, m.match_id, m.market.market_id, ("prematch", book.name), config.flat_stake
                )
            if request is None:
                counts["no stake (Kelly size below the minimum)"] += 1
                continue
            verdict = check(request, risk, clock.now(), limits)
            if not verdict.approved:
                counts[f"risk: {verdict.reason}"] += 1
                continue
            risk.register_market(m.market.market_id, PLAYERS)
            _record(risk, exchange.on_market_book(m.market))
            order = exchange.place(request)
            _record(risk, exchange.poll())
            risk.record_order(exchange.order(order.customer_order_ref) or order)
            if order.error_code is not None:
                counts[f"exchange: {order.error_code}"] += 1
                continue
            opportunities[request.customer_order_ref] = (
                decision.opportunity.edge,
                decision.opportunity.model_probability,
            )
            placed.append((m, m.market.market_id))
        clock.set(day + timedelta(hours=23, minutes=59))
        for m, market_id in placed:
            settlement = exchange.settle_market(market_id, m.result)
            risk.record_settlement(settlement)
            recorder.settled(settlement, m.match_id, m.season, m.split, opportunities)
    return recorder.ledger(config.bankroll, counts)


def grid_search(
    markets: PrematchMarkets, config: PrematchConfig = PrematchConfig(), ledgers: dict[Thresholds, Ledger] | None = None
) -> pd.DataFrame:
    """Flat-stake results of every threshold pair on ``markets`` (meant for the validation rows only);
    each pair's ledger is kept in ``ledgers`` when given."""
    out = []
    for min_edge in config.edge_grid:
        for max_price in config.max_price_grid:
            th = Thresholds(min_edge=min_edge, max_price=max_price)
            ledger = simulate_prematch(markets, Staking.FLAT, th, config)
            if ledgers is not None:
                ledgers[th] = ledger
            s = summarize(ledger, n_boot=0)
            out.append(
                {
                    "min_edge": min_edge,
                    "max_price": max_price,
                    "bets": s["bets"],
                    "pnl": s["pnl"],
                    "roi": s["roi"],
                    "hit_rate": s["hit_rate"],
                    "max_drawdown": s["max_drawdown"],
                    "final_bankroll": s["final_bankroll"],
                }
            )
    return pd.DataFrame(out)


def choose_thresholds(grid: pd.DataFrame, config: PrematchConfig = PrematchConfig()) -> Thresholds:
    """The rule: among threshold pairs with at least ``min_validation_bets`` validation bets, the
    highest validation ROI at flat stakes (ties: the larger minimum edge, then the lower maximum
    price). With no eligible pair, the strictest one (largest edge, lowest price cap)."""
    eligible = grid[grid["bets"] >= config.min_validation_bets]
    if eligible.empty:
        return Thresholds(min_edge=max(config.edge_grid), max_price=min(config.max_price_grid))
    best = eligible.sort_values(["roi", "min_edge", "max_price"], ascending=[False, False, True]).iloc[0]
    return Thresholds(min_edge=float(best["min_edge"]), max_price=float(best["max_price"]))


@dataclass
class StrategyResult:
    """One pre-match strategy: its definition, the thresholds it was given and its ledgers."""

    name: str
    book: Book
    staking: Staking
    forecaster: str
    """Column of P(A wins), or ``market`` for the book's own margin-free probability."""
    thresholds: Thresholds
    chosen_on: str
    """How the thresholds were fixed (``validation grid`` or a fixed rule for baselines)."""
    ledgers: dict[str, Ledger]
    """split -> ledger (``validation``, ``test``)."""
    counts: Counter


@dataclass
class PrematchBacktest:
    strategies: list[StrategyResult]
    grids: dict[str, pd.DataFrame]
    """``<book>/<forecaster>`` -> the validation grid the thresholds were chosen from."""
    seconds: float


def run_prematch(
    predictions: pd.DataFrame,
    config: PrematchConfig = PrematchConfig(),
    forecasters: Sequence[str] = ("p_model",),
    books: Sequence[str] = ("pinnacle", "bet365"),
    market_baseline: bool = True,
) -> PrematchBacktest:
    """Every book x forecaster x staking: thresholds from the validation grid (flat stakes), then
    validation and test each replayed once with them. With ``market_baseline``: player A (the rows'
    random side) backed on every priced test match at a flat stake, with the book's own margin-free
    probability and no minimum edge (at any minimum edge >= 0 the book's own probability never finds
    value): no information, so it should lose about the margin."""
    started = time.perf_counter()
    strategies, grids = [], {}
    for book_name in books:
        book = BOOKS[book_name]
        for forecaster in forecasters:
            rows, counts = prematch_frame(predictions, book, forecaster)
            splits = {
                split: PrematchMarkets(rows[rows["split"] == split], book, config.commission)
                for split in ("validation", "test")
            }
            tried: dict[Thresholds, Ledger] = {}
            grid = grid_search(splits["validation"], config, tried)
            grids[f"{book_name}/{forecaster}"] = grid
            th = choose_thresholds(grid, config)
            for staking in Staking:
                ledgers = {
                    split: tried[th]
                    if staking is Staking.FLAT and split == "validation"
                    else simulate_prematch(markets, staking, th, config)
                    for split, markets in splits.items()
                }
                strategies.append(
                    StrategyResult(
                        f"{book_name}-{forecaster}-{staking}",
                        book,
                        staking,
                        forecaster,
                        th,
                        "validation grid, flat stakes",
                        ledgers,
                        counts,
                    )
                )
        if market_baseline:
            rows, counts = prematch_frame(predictions, book, None)
            th = Thresholds(min_edge=-1.0, max_price=config.risk.max_price)
            test = PrematchMarkets(rows[rows["split"] == "test"], book, config.commission, only_a=True)
            strategies.append(
                StrategyResult(
                    f"{book_name}-baseline-flat",
                    book,
                    Staking.FLAT,
                    "market",
                    th,
                    "fixed: player A (a random side) at every price, no minimum edge",
                    {"test": simulate_prematch(test, Staking.FLAT, th, config)},
                    counts,
                )
            )
    return PrematchBacktest(strategies, grids, time.perf_counter() - started)


def prematch_table(result: PrematchBacktest, config: PrematchConfig = PrematchConfig()) -> pd.DataFrame:
    """One row per strategy and split with the headline figures and the thresholds."""
    rows = []
    for s in result.strategies:
        for split, ledger in s.ledgers.items():
            rows.append(
                {
                    "strategy": s.name,
                    "book": s.book.name,
                    "forecaster": s.forecaster,
                    "staking": str(s.staking),
                    "split": split,
                    "min_edge": s.thresholds.min_edge,
                    "max_price": s.thresholds.max_price,
                    **summarize(ledger, n_boot=config.bootstrap, seed=config.seed),
                }
            )
    return pd.DataFrame(rows)


def prematch_seasons(result: PrematchBacktest, config: PrematchConfig = PrematchConfig()) -> pd.DataFrame:
    """The same figures by season."""
    frames = []
    for s in result.strategies:
        for split, ledger in s.ledgers.items():
            t = by_season(ledger, config.bootstrap, config.seed)
            if len(t):
                t.insert(0, "split", split)
                t.insert(0, "strategy", s.name)
                frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
