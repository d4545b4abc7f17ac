"""The in-play backtest on real Betfair prices: Betfair historical files instead of the simulated market.

Each tennis ``MATCH_ODDS`` market of the files (``adapters.betfair.historical``) is paired with its match in
the replay catalog; the match's points (real timings for the Grand Slam logs, ``POINT_SECONDS`` apart for
the ATP sequences) start when the market turns in-play, and every book of the market goes to the core as the
feed's market message, pre-match books first (the prior comes from them, as live). Then the same trading core
as the live engine and the other backtests — triggers, the model, value, Kelly, risk, the paper exchange on
those prices, settlement — through ``training.inplay_backtest``'s message replay, and the same ledger.

Markets are replayed one after another in the order they turn in-play, on one clock (a market that overlaps
the previous one in time keeps the clock where it is until its own messages are later). What is not paired
or cannot be replayed is counted with the reason in the ledger's counts (``skipped: ...``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from adapters.betfair.historical import (
    HistoricalFileError,
    TennisMarket,
    feed_update,
    pair_markets,
    publish_time,
    read_books,
    tennis_market,
)
from features.scoring import ScoringError
from feeds.live.replay import match_messages
from training import inplay_backtest as ib

LABEL = "REAL Betfair prices (historical files): the paper exchange fills against them"


def _books_by_market(files: Iterable[Path | str], skipped: dict[str, int]) -> dict[str, list[Any]]:
    books: dict[str, list[Any]] = defaultdict(list)
    for path in files:
        try:
            for book in read_books(path):
                books[book.market_id].append(book)
        except HistoricalFileError as exc:
            skipped[f"skipped: file {Path(path).name}: {str(exc).split(': ', 1)[-1][:120]}"] += 1
    return books


def _schedule(row: Mapping[str, Any], books: Sequence[Any], labels: Mapping[int, str]) -> ib._Prepared | str:
    key = str(row["event_key"])
    turn = next((publish_time(b) for b in books if b.inplay), None)
    if turn is None:
        return "skipped: the market never turned in-play"
    try:
        messages = [m for m in match_messages(dict(row), 0.0) if m.channel == "match"]
    except (ScoringError, ValueError, TypeError, KeyError) as exc:
        return ib._refused(key, exc) if isinstance(exc, ValueError) else f"skipped: {exc}"
    schedule: list[tuple[datetime, str, Any]] = [(turn + timedelta(seconds=m.at), "match", m.payload) for m in messages]
    points = sum(1 for _, _, p in schedule if p.kind == "point")
    for book in books:
        try:
            schedule.append((publish_time(book), "market", feed_update(book, key, labels)))
        except (HistoricalFileError, ValueError) as exc:
            return f"skipped: a book of market {book.market_id}: {str(exc)[:120]}"
    schedule.sort(key=lambda s: (s[0], s[1] != "market"))
    return ib._Prepared(key, points, schedule)


def run_betfair(
    files: Iterable[Path | str],
    catalog: pd.DataFrame,
    model: ib.InplayModel = ib.markov_serve_updates,
    name: str = "markov-serve-updates",
    config: ib.InplayBacktestConfig | None = None,
) -> ib.InplayBacktest:
    """The in-play backtest of ``model`` on the tennis markets of ``files`` paired with ``catalog``'s matches."""
    started = time.perf_counter()
    config = config or ib.InplayBacktestConfig()
    replay = ib._InplayReplay(model, config, name)
    books = _books_by_market(files, replay.skipped)
    markets: dict[str, TennisMarket] = {}
    for market_id, market_books in books.items():
        found = next((m for m in map(tennis_market, market_books) if m is not None), None)
        if found is None:
            replay.skipped["skipped: not a two-runner tennis MATCH_ODDS market"] += 1
        else:
            markets[market_id] = found
    paired, unpaired = pair_markets(markets.values(), catalog.to_dict("records"))
    for reason in unpaired.values():
        replay.skipped[f"skipped: {reason}"] += 1
    ready = []
    for market_id, (row, labels) in paired.items():
        prepared = _schedule(row, books[market_id], labels)
        if isinstance(prepared, str):
            replay.skipped[prepared] += 1
        else:
            ready.append((prepared.schedule[0][0], market_id, row, prepared))
    for _, _, row, prepared in sorted(ready, key=lambda r: (r[0], r[1])):
        replay.replay(dict(row), prepared)
    return ib.backtest_result(replay, config, time.perf_counter() - started, LABEL)
