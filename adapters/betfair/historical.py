"""Betfair's historical stream files -> market books, and tennis markets paired with our matches.

A historical file (BASIC, ADVANCED or PRO; plain, ``.bz2`` or ``.gz``) holds one Exchange Stream API message
a line (``{"op": "mcm", "clk": ..., "pt": ..., "mc": [...]}``). ``read_books`` feeds each line to
betfairlightweight's own ``StreamListener`` — the parser and cache its live stream uses — and yields the
market books it builds. A file with no market changes (an order or a score stream) is refused with why.

``feed_update`` turns a book of a two-runner tennis ``MATCH_ODDS`` market into the feed's market message
(``feeds.live.protocol.MarketUpdate``: top of book per player, the market's real status and turn in-play),
so a backtest replays real prices through the same trading core as the live engine. A BASIC file has no
ladder, only last traded prices: ``basic_spread_ticks`` then makes a book of the last traded price and the
price that many ticks above it, with ``basic_size`` on each side — an approximation, said as such in the
message's source (``betfair-basic-ltp``).

``pair_markets`` finds each tennis market's match in the replay catalog: the same day (within a day of the
market's start) and both runners' names matching the two players (folded, or surname and first initial).
A market with no match or more than one is not paired: nothing is guessed.
"""

from __future__ import annotations

import bz2
import gzip
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from betfairlightweight import StreamListener

from betting.ladder import TICKS, is_valid_price, round_to_tick, tick_index
from betting.records import Side
from features.names import normalize_name
from feeds.live.market import LABELS
from feeds.live.protocol import MarketUpdate, RunnerPrices

TENNIS = "2"
"""Betfair's event type id of tennis."""
MATCH_ODDS = "MATCH_ODDS"
SOURCE = "betfair-historical"
BASIC_SOURCE = "betfair-basic-ltp"


class HistoricalFileError(ValueError):
    """A historical file that cannot be read as a market stream (the reason says where and why)."""


def _lines(path: Path) -> Iterator[str]:
    opener = bz2.open if path.suffix == ".bz2" else gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        yield from f


def read_books(path: Path | str) -> Iterator[Any]:
    """Every market book betfairlightweight builds from the file, in order (its ``MarketBook`` resources)."""
    path = Path(path)
    listener = StreamListener(max_latency=None)  # historical: the publish times are old by design
    listener.register_stream(0, "marketSubscription")
    books = 0
    ops: set[str] = set()
    try:
        for n, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            head = line[:40]
            ops.add(head.split('"op":"', 1)[1].split('"', 1)[0] if '"op":"' in head else "?")
            try:
                taken = listener.on_data(line)
            except (TypeError, KeyError, ValueError, AttributeError) as exc:  # a message missing what Betfair sends
                raise HistoricalFileError(f"{path.name}:{n}: not a stream message Betfair sends: {exc}") from None
            if taken is False:
                raise HistoricalFileError(f"{path.name}:{n}: the stream parser refused the line")
            for book in listener.snap():
                books += 1
                yield book
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise HistoricalFileError(f"{path.name}: cannot read: {exc}") from None
    if not books:
        raise HistoricalFileError(
            f"{path.name}: no market changes (operations {sorted(ops)}): not a market stream file "
            "(an order or score stream?)"
        )


@dataclass(frozen=True)
class TennisMarket:
    """A tennis match-odds market as its definition names it."""

    market_id: str
    event_name: str
    market_time: datetime
    runners: tuple[tuple[int, str], ...]
    """(selection id, runner name), in the definition's order."""
    bet_delay: int


def tennis_market(book: Any) -> TennisMarket | None:
    """The book's market as a tennis ``MATCH_ODDS`` market of two runners, or None."""
    d = book.market_definition
    if d is None or str(d.event_type_id) != TENNIS or d.market_type != MATCH_ODDS or len(d.runners) != 2:
        return None
    when = d.market_time if d.market_time.tzinfo else d.market_time.replace(tzinfo=UTC)
    return TennisMarket(
        book.market_id,
        str(getattr(d, "event_name", "") or d.name or ""),
        when,
        tuple((int(r.selection_id), str(r.name)) for r in d.runners),
        int(d.bet_delay or 0),
    )


def _same_player(runner: str, player: str) -> bool:
    a, b = normalize_name(runner).split(), normalize_name(player).split()
    if not a or not b:
        return False
    return a == b or (a[-1] == b[-1] and a[0][:1] == b[0][:1])


def pair_markets(
    markets: Iterable[TennisMarket], rows: Sequence[Mapping[str, Any]], within: timedelta = timedelta(days=1)
) -> tuple[dict[str, tuple[Mapping[str, Any], dict[int, str]]], dict[str, str]]:
    """Each market's catalog row and its selections as the feed's labels ("First Player" = the row's
    ``player1``); and the markets not paired, with why."""
    paired: dict[str, tuple[Mapping[str, Any], dict[int, str]]] = {}
    unpaired: dict[str, str] = {}
    for market in markets:
        found = []
        for row in rows:
            day = datetime.fromisoformat(str(row["event_date"])[:10]).replace(tzinfo=UTC)
            if abs(market.market_time - day) > within + timedelta(days=1):
                continue
            (id_a, name_a), (id_b, name_b) = market.runners
            p1, p2 = str(row["player1"]), str(row["player2"])
            if _same_player(name_a, p1) and _same_player(name_b, p2):
                found.append((row, {id_a: LABELS[0], id_b: LABELS[1]}))
            elif _same_player(name_a, p2) and _same_player(name_b, p1):
                found.append((row, {id_a: LABELS[1], id_b: LABELS[0]}))
        if len(found) == 1:
            paired[market.market_id] = found[0]
        else:
            unpaired[market.market_id] = "no match of that day with both players" if not found else "several matches"
    return paired, unpaired


def _best(levels: Sequence[Any]) -> tuple[float | None, float]:
    for level in levels:
        if is_valid_price(level.price) and level.size > 0:
            return float(level.price), float(level.size)
    return None, 0.0


def feed_update(
    book: Any,
    event_key: str,
    labels: Mapping[int, str],
    basic_spread_ticks: int = 1,
    basic_size: float = 100.0,
) -> MarketUpdate:
    """The feed's market message of a book of a paired two-runner market (see the module docstring)."""
    runners = []
    basic = False
    for r in book.runners:
        label = labels.get(int(r.selection_id))
        if label is None:
            raise HistoricalFileError(f"market {book.market_id}: selection {r.selection_id} is not a paired runner")
        back_price, back_size = _best(r.ex.available_to_back)
        lay_price, lay_size = _best(r.ex.available_to_lay)
        if back_price is None and lay_price is None and r.last_price_traded and basic_spread_ticks > 0:
            ltp = round_to_tick(float(r.last_price_traded), Side.BACK)
            top = tick_index(ltp) + basic_spread_ticks
            if top < len(TICKS):
                back_price, back_size, lay_price, lay_size = ltp, basic_size, TICKS[top], basic_size
                basic = True
        runners.append(
            RunnerPrices(
                selection=label,  # type: ignore[arg-type]
                back_price=back_price,
                back_size=round(back_size, 2),
                lay_price=lay_price,
                lay_size=round(lay_size, 2),
                traded_volume=round(float(r.total_matched or 0.0), 2),
            )
        )
    status = str(book.status)
    return MarketUpdate(
        event_key=event_key,
        market_id=f"bf-{event_key}",
        status="OPEN" if status == "OPEN" else "CLOSED" if status == "CLOSED" else "SUSPENDED",
        in_play=bool(book.inplay),
        simulated=False,
        source=BASIC_SOURCE if basic else SOURCE,
        runners=sorted(runners, key=lambda r: LABELS.index(r.selection)),
    )


def publish_time(book: Any) -> datetime:
    t = book.publish_time
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def stream_messages(
    updates: Sequence[tuple[datetime, MarketUpdate]],
    market_id: str,
    event_name: str,
    runners: Mapping[str, tuple[int, str]],
    market_time: datetime,
    bet_delay: int = 5,
    winner: str | None = None,
) -> list[dict]:
    """The Exchange Stream messages (``mcm``) of a tennis match-odds market whose updates are ``updates`` (the
    feed's market messages of one match, pre-match then in-play) — what ``feed_update`` reads back: the
    market definition when the status or the turn in-play changes, the best price of each side as ladder
    deltas (the old level cleared, the new one set), the traded volume. ``runners``: label -> (selection id,
    name). ``winner``: the label whose runner the closing definition marks WINNER. For stand-ins and tests."""
    ids = {label: sel for label, (sel, _) in runners.items()}
    shown: dict[tuple[int, str], float | None] = {}
    last: tuple[str, bool] | None = None
    out: list[dict] = []

    def definition(status: str, in_play: bool, closed: bool = False) -> dict:
        return {
            "eventTypeId": TENNIS,
            "eventId": market_id.replace(".", ""),
            "eventName": event_name,
            "marketType": MATCH_ODDS,
            "bettingType": "ODDS",
            "name": "Match Odds",
            "marketTime": _iso(market_time),
            "suspendTime": _iso(market_time),
            "openDate": _iso(market_time),
            "numberOfWinners": 1,
            "numberOfActiveRunners": 2,
            "turnInPlayEnabled": True,
            "persistenceEnabled": True,
            "bspMarket": False,
            "bspReconciled": False,
            "discountAllowed": True,
            "regulators": ["MR_INT"],
            "timezone": "Europe/London",
            "countryCode": "GB",
            "marketBaseRate": 5.0,
            "inPlay": in_play,
            "betDelay": bet_delay if in_play else 0,
            "status": status,
            "complete": True,
            "crossMatching": True,
            "runnersVoidable": False,
            "version": len(out) + 1,
            "runners": [
                {
                    "id": sel,
                    "name": name,
                    "sortPriority": n,
                    "status": ("WINNER" if label == winner else "LOSER") if closed and winner else "ACTIVE",
                }
                for n, (label, (sel, name)) in enumerate(runners.items(), start=1)
            ],
        }

    for n, (at, update) in enumerate(updates):
        change: dict[str, Any] = {"id": market_id}
        if n == 0:
            change["img"] = True
        closed = update.status == "CLOSED"
        if (update.status, update.in_play) != last:
            change["marketDefinition"] = definition(update.status, update.in_play, closed)
            last = (update.status, update.in_play)
        rc = []
        for r in update.runners:
            sel = ids[r.selection]
            delta: dict[str, Any] = {"id": sel}
            for side, price, size in (("atb", r.back_price, r.back_size), ("atl", r.lay_price, r.lay_size)):
                before = shown.get((sel, side))
                levels = []
                if before is not None and before != price:
                    levels.append([before, 0])
                if price is not None and size > 0:
                    levels.append([price, size])
                    shown[(sel, side)] = price
                else:
                    shown[(sel, side)] = None
                if levels:
                    delta[side] = levels
            if r.traded_volume:
                delta["tv"] = r.traded_volume
            if len(delta) > 1:
                rc.append(delta)
        if rc:
            change["rc"] = rc
        out.append({"op": "mcm", "clk": str(n + 1), "pt": int(at.timestamp() * 1000), "mc": [change]})
    return out


def write_stream_file(path: Path, lines: Iterable[dict]) -> Path:
    """Stream messages written one a line, as Betfair's historical files are (``.bz2`` compressed by name)."""
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    if path.suffix == ".bz2":
        path.write_bytes(bz2.compress(text.encode()))
    else:
        path.write_text(text)
    return path
