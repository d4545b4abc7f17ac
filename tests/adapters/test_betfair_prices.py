"""Live Betfair prices through betfairlightweight itself, pointed at the local Betfair stand-in (HTTPS identity and
API-NG, the Exchange Stream API over TLS): login, tennis market discovery, resolution to followed matches
(never a guess), the market stream as the feed's market messages — and a connection cut mid-match, after which
the subscription resumes from its clk and not one update is lost."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from adapters.betfair.historical import TennisMarket, pair_markets, stream_messages
from adapters.betfair.prices import (
    BetfairCredentials,
    BetfairEndpoints,
    BetfairPrices,
    BetfairRefused,
    api_client,
    login,
)
from adapters.betfair.standin import BetfairStandIn, StandInMarket
from feeds.live.protocol import MarketUpdate
from feeds.live.replay import match_messages
from tests.engine.fixtures import slam_rows


def _market(row: dict, market_id: str, sel: int) -> tuple[StandInMarket, list[MarketUpdate]]:
    start = datetime.fromisoformat(str(row["event_date"])).replace(tzinfo=UTC) + timedelta(hours=12)
    updates = []
    for m in match_messages(row, 0.0):
        if m.channel != "market":
            continue
        update = m.payload.model_copy(update={"market_id": f"bf-{row['event_key']}"})
        if (update.status == "CLOSED" and not update.in_play) or update.status == "SUSPENDED":
            continue  # one market that turns in-play; no suspensions, so most changes are bare price deltas
        updates.append((start + timedelta(seconds=m.at), update))
    updates = updates[:80]  # the first games are enough, and keep the test short
    runners = {"First Player": (sel, str(row["player1"])), "Second Player": (sel + 1, str(row["player2"]))}
    name = f"{row['player1']} v {row['player2']}"
    lines = stream_messages(updates, market_id, name, runners, start)
    return StandInMarket(market_id, name, list(runners.values()), start, lines), [u for _, u in updates]


@pytest.fixture(scope="module")
def world():
    rows = list(slam_rows("2012-wimbledon", 3))
    a, sent_a = _market(rows[0], "1.300000001", 1000)
    b, sent_b = _market(rows[1], "1.300000002", 2000)
    stranger = StandInMarket(
        "1.300000003",
        "Nobody Known v Someone Else",
        [(9, "Nobody Known"), (10, "Someone Else")],
        a.start,
        a.messages[:1],
    )
    standin = BetfairStandIn([a, b, stranger]).start()
    yield standin, rows, {a.market_id: sent_a, b.market_id: sent_b}
    standin.stop()


def _endpoints(standin: BetfairStandIn) -> BetfairEndpoints:
    base = f"https://127.0.0.1:{standin.https_port}"
    return BetfairEndpoints(
        identity=f"{base}/api/",
        api=f"{base}/exchange/",
        stream_host="127.0.0.1",
        stream_port=standin.stream_port,
        verify=str(standin.cert),
    )


def _resolver(rows: list[dict]):
    def resolve(market: TennisMarket):
        paired, unpaired = pair_markets([market], rows)
        if market.market_id in paired:
            row, labels = paired[market.market_id]
            return str(row["event_key"]), labels
        return unpaired[market.market_id]

    return resolve


def _seen(update: MarketUpdate) -> tuple:
    return update.status, update.in_play, [(r.back_price, r.back_size, r.lay_price, r.lay_size) for r in update.runners]


def test_prices_stream_through_betfairlightweight_and_a_cut_loses_no_update(world):
    standin, rows, sent = world
    creds = BetfairCredentials(standin.app_key, standin.username, standin.password)
    published: list[MarketUpdate] = []
    prices = BetfairPrices(
        creds, _resolver(rows), lambda update, _t: published.append(update), _endpoints(standin), backoff_base_s=0.05
    )

    async def scenario() -> None:
        followed = prices.discover()
        assert set(followed) == set(sent) and "1.300000003" in prices.unresolved
        task = asyncio.create_task(prices.run())
        loop = asyncio.get_running_loop()

        async def until(condition, timeout_s: float = 20.0) -> None:
            deadline = time.monotonic() + timeout_s
            while not condition():
                assert time.monotonic() < deadline, "timed out"
                await asyncio.sleep(0.02)

        await until(lambda: standin.subscriptions)
        await loop.run_in_executor(None, standin.advance, 30)
        await until(lambda: prices.published >= 30)
        await loop.run_in_executor(None, standin.drop)  # the network cut: what is played meanwhile is missed
        await loop.run_in_executor(None, standin.advance, 20)
        await until(lambda: prices.resubscriptions >= 1)
        while not standin.done:
            await loop.run_in_executor(None, standin.advance, 10)
        total = sum(len(v) for v in sent.values())
        await until(lambda: prices.published >= total)
        await asyncio.sleep(0.2)
        prices.stop()
        await task

    asyncio.run(scenario())
    resubscribed = [s for s in standin.subscriptions if s.get("clk")]
    assert resubscribed, "the second subscription gives the clk it stopped at"
    keys = {"1.300000001": f"bf-{rows[0]['event_key']}", "1.300000002": f"bf-{rows[1]['event_key']}"}
    for market_id, updates in sent.items():
        key = keys[market_id]
        got = [u for u in published if u.market_id == key]
        assert [_seen(u) for u in got] == [_seen(u) for u in updates]  # every update, in order, none twice
        assert all(u.source == "betfair-historical" and not u.simulated for u in got)


def test_wrong_credentials_are_refused_with_betfairs_answer(world):
    standin, rows, _ = world
    creds = BetfairCredentials(standin.app_key, standin.username, "wrong")
    prices = BetfairPrices(creds, _resolver(rows), lambda u, t: None, _endpoints(standin))
    with pytest.raises(BetfairRefused, match="login refused"):
        prices.discover()


def test_credentials_come_from_the_environment_only_and_never_show():
    with pytest.raises(BetfairRefused, match="BETFAIR_APP_KEY"):
        BetfairCredentials.from_env({})
    creds = BetfairCredentials.from_env(
        {"BETFAIR_APP_KEY": "abcdef", "BETFAIR_USERNAME": "u", "BETFAIR_PASSWORD": "pw"}
    )
    assert "pw" not in repr(creds) and creds.certs is None


def test_the_certificate_login_needs_the_certificate(world, tmp_path):
    standin, rows, _ = world
    certs = tmp_path / "certs"
    certs.mkdir()
    cert, key = standin.client_cert
    (certs / "client.crt").write_bytes(cert.read_bytes())
    (certs / "client.key").write_bytes(key.read_bytes())
    creds = BetfairCredentials(standin.app_key, standin.username, standin.password, certs=str(certs))
    client = api_client(creds, _endpoints(standin))
    login(client, creds)
    assert client.session_token in standin.sessions
    empty = tmp_path / "none"  # no key beside the certificate: refused before anything is sent
    empty.mkdir()
    (empty / "other.crt").write_bytes(b"")
    without = BetfairCredentials(standin.app_key, standin.username, standin.password, certs=str(empty))
    with pytest.raises(BetfairRefused):
        login(api_client(without, _endpoints(standin)), without)


def test_a_stream_whose_host_refuses_connections_keeps_trying_until_stopped():
    """A refused connection (an OSError, not a Betfair error) must not end the stream's thread."""
    import random
    import socket

    from adapters.betfair.streaming import ResubscribingStream

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = api_client(BetfairCredentials("key", "user", "pass"))
    client.session_token = "token"
    stream = ResubscribingStream(
        client,
        lambda st, initial_clk, clk: st.subscribe_to_markets(market_filter={}, market_data_filter={}),
        "prices",
        "127.0.0.1",
        port,
        random.Random(0),
        backoff_base_s=0.01,
        backoff_cap_s=0.05,
    ).start()
    deadline = time.monotonic() + 10
    while stream.connections < 4:
        assert time.monotonic() < deadline, f"the stream stopped trying: {stream.last_error}"
        time.sleep(0.02)
    stream.stop()
    assert "Error" in (stream.last_error or "") and not stream.subscribed.is_set()
    assert stream._thread is not None and not stream._thread.is_alive()
