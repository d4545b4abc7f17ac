"""Betfair historical stream files through betfairlightweight's own parser: the real files of the shared data
(a horse-racing BASIC file, an order stream, a cricket score stream: none is tennis), plain and compressed;
then a tennis match-odds market written in the same format from a real Grand Slam match's prices, paired
with its match, read back to the same market messages, and backtested through the trading core."""

from __future__ import annotations

import bz2
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from adapters.betfair.historical import (
    BASIC_SOURCE,
    HistoricalFileError,
    feed_update,
    pair_markets,
    publish_time,
    read_books,
    stream_messages,
    tennis_market,
    write_stream_file,
)
from feeds.live.protocol import MarketUpdate
from feeds.live.replay import match_messages
from tests.engine.fixtures import slam_rows
from tests.real_data import data_dir
from training import inplay_backtest as ib
from training.betfair_backtest import LABEL, run_betfair


def _historical(name: str) -> Path:
    return data_dir() / "betfair" / "historicaldata" / name


def test_a_real_basic_file_parses_to_every_book_plain_or_compressed(tmp_path):
    books = list(read_books(_historical("BASIC-1.132153978")))
    assert len(books) == 480 and {b.market_id for b in books} == {"1.132153978"}
    first, last = books[0], books[-1]
    d = first.market_definition
    assert d.market_type == "WIN" and str(d.event_type_id) == "7" and len(d.runners) == 14
    assert str(first.status) == "OPEN" and not first.inplay
    assert str(last.status) == "CLOSED" and last.inplay
    # the sixth line says runner 12115648 last traded at 3.9
    assert books[5].runners[[r.selection_id for r in books[5].runners].index(12115648)].last_price_traded == 3.9
    assert tennis_market(first) is None  # not tennis: never paired
    raw = _historical("BASIC-1.132153978").read_bytes()
    (tmp_path / "f.bz2").write_bytes(bz2.compress(raw))
    (tmp_path / "f.gz").write_bytes(gzip.compress(raw))
    for path in (tmp_path / "f.bz2", tmp_path / "f.gz"):
        again = list(read_books(path))
        assert [(b.publish_time, str(b.status)) for b in again] == [(b.publish_time, str(b.status)) for b in books]


@pytest.mark.parametrize("name", ["ORDER-1.177596575", "CRICKET-1.179676557"])
def test_a_file_that_is_not_a_market_stream_is_refused_with_why(name):
    with pytest.raises(HistoricalFileError, match="not a market stream"):
        list(read_books(_historical(name)))


def test_a_truncated_compressed_file_is_refused_with_why(tmp_path):
    raw = bz2.compress(_historical("BASIC-1.132153978").read_bytes())
    path = tmp_path / "cut.bz2"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(HistoricalFileError, match="cannot read"):
        list(read_books(path))


# --- a tennis market in the same format ---------------------------------------------------------------
MARKET_ID = "1.200000001"


def _tennis_file(tmp_path: Path, row: dict, swap: bool = False) -> tuple[Path, list[tuple[datetime, MarketUpdate]]]:
    """The row's pre-match closing odds and in-play prices (the feed's market messages) as a Betfair file."""
    start = datetime.fromisoformat(str(row["event_date"])).replace(tzinfo=UTC) + timedelta(hours=12)
    messages = [m for m in match_messages(row, 0.0) if m.channel == "market"]
    updates = []
    for m in messages:
        update = m.payload.model_copy(update={"market_id": f"bf-{row['event_key']}"})
        if update.status == "CLOSED" and not update.in_play:
            continue  # one Betfair market: it turns in-play instead of closing
        updates.append((start + timedelta(seconds=m.at), update))
    runners = {"First Player": (101, str(row["player1"])), "Second Player": (202, str(row["player2"]))}
    if swap:  # Betfair lists the runners in its own order
        runners = dict(reversed(list(runners.items())))
    lines = stream_messages(updates, MARKET_ID, f"{row['player1']} v {row['player2']}", runners, start)
    return write_stream_file(tmp_path / f"{MARKET_ID}.bz2", lines), updates


def test_a_tennis_market_reads_back_to_the_same_market_messages_and_pairs_with_its_match(tmp_path):
    rows = list(slam_rows("2012-wimbledon", 3))
    row = rows[1]
    path, updates = _tennis_file(tmp_path, row, swap=True)
    books = list(read_books(path))
    market = tennis_market(books[0])
    assert market is not None and market.market_id == MARKET_ID
    paired, unpaired = pair_markets([market], rows)
    assert unpaired == {} and paired[MARKET_ID][0]["event_key"] == row["event_key"]
    labels = paired[MARKET_ID][1]
    assert labels == {101: "First Player", 202: "Second Player"}
    back = [feed_update(b, str(row["event_key"]), labels) for b in books]
    assert [publish_time(b) for b in books] == [t for t, _ in updates]
    for got, (_, sent) in zip(back, updates, strict=True):
        assert (got.status, got.in_play) == (sent.status, sent.in_play)
        assert [(r.back_price, r.lay_price, r.back_size, r.lay_size) for r in got.runners] == [
            (r.back_price, r.lay_price, r.back_size, r.lay_size) for r in sent.runners
        ]
    # another day, or other players: not paired, nothing guessed
    moved = [dict(r, event_date="2013-01-01") for r in rows]
    assert pair_markets([market], moved)[0] == {}


def test_the_backtest_on_a_betfair_file_trades_the_match_through_the_core(tmp_path):
    rows = list(slam_rows("2012-wimbledon", 3))
    path, _ = _tennis_file(tmp_path, rows[0])
    catalog = pd.DataFrame(rows)
    result = run_betfair([path, _historical("BASIC-1.132153978"), _historical("ORDER-1.177596575")], catalog)
    assert result.label == LABEL and result.matches == 1
    # the same points through the same core as the simulated-market replay: the same predictions
    reference = ib.run_inplay(catalog.iloc[[0]], config=ib.InplayBacktestConfig(messages=True))
    assert result.points == reference.points and result.predictions == reference.predictions > 0
    assert result.orders > 0 and len(result.ledger.markets) == 1
    assert result.ledger.markets["market_id"].iloc[0] == f"bf-{rows[0]['event_key']}"
    counts = result.ledger.counts
    assert counts["skipped: not a two-runner tennis MATCH_ODDS market"] == 1  # the horse race
    assert any(k.startswith("skipped: file ORDER-1.177596575") for k in counts)


def test_a_basic_book_without_a_ladder_is_priced_at_its_last_trade_and_says_so(tmp_path):
    rows = list(slam_rows("2012-wimbledon", 1))
    path, _ = _tennis_file(tmp_path, rows[0])
    book = next(iter(read_books(path)))
    for r in book.runners:  # a BASIC file: last traded prices only
        r.ex.available_to_back.clear()
        r.ex.available_to_lay.clear()
        r.last_price_traded = 2.5
    update = feed_update(book, str(rows[0]["event_key"]), {101: "First Player", 202: "Second Player"})
    assert update.source == BASIC_SOURCE
    assert [(r.back_price, r.lay_price) for r in update.runners] == [(2.5, 2.52), (2.5, 2.52)]
