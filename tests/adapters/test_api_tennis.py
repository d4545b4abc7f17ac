"""API-Tennis snapshots -> the feed's match messages, on real ATP point-by-point matches pushed in the vendor's
snapshot format: every point followed; skipped snapshots resynchronise the exact score and never invent a
point; duplicates, doubles and other tours are skipped and counted; bad snapshots are refused with a reason
and the rest of the push kept; retirements and walkovers end the match with their outcome. Then the whole
path over real connections: a local API-Tennis stand-in (WebSocket push + REST ``get_livescore``), the
ingress, the feed server, and a subscriber, with a connection cut mid-match."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from websockets.asyncio.client import connect

from adapters.api_tennis.live import ApiTennisIngress, ApiTennisRefused, ApiTennisSettings, RawRecorder, replay_recorded
from adapters.api_tennis.snapshots import SnapshotTranslator, best_of
from adapters.api_tennis.standin import ApiTennisStandIn
from adapters.api_tennis.vendor import VendorMatch, snapshots, vendor_name
from betting.clock import ManualClock
from betting.market import MarketBook, MarketStatus, RunnerBook
from betting.paper import PaperExchange
from betting.policy import TradingPolicy
from betting.records import OrderRequest, OrderStatus, Persistence, Side
from betting.trading import TradingCore
from features.live_match import BadMessage
from features.replays import replay_pbp_points
from features.scoring import Score, ScoringError, match_format
from feeds.live.protocol import Envelope, MatchEvent, parse
from feeds.live.server import ReplayServer
from tests.real_data import data_dir


def _real_matches(n: int, seed: int) -> list[tuple[VendorMatch, Score, list[Score], list[int]]]:
    raw = pd.read_csv(data_dir() / "pbp" / "pbp_matches_atp_main_archive.csv.gz").sample(n * 2, random_state=seed)
    out = []
    for i, row in enumerate(raw.itertuples()):
        fmt = match_format(str(row.tny_name), 2015, 3)
        try:
            scores, winners = replay_pbp_points(str(row.pbp), fmt, first_server=0)
        except ScoringError:
            continue  # a five-set record: the tests take best-of-3 tour matches
        if scores[-1].winner is None:
            continue
        vm = VendorMatch(
            event_key=11_000_000 + i,
            event_date="2015-06-01",
            event_first_player=vendor_name(str(row.server1)),
            first_player_key=2000 + i,
            event_second_player=vendor_name(str(row.server2)),
            second_player_key=3000 + i,
            event_type_type="Atp Singles",
            tournament_name=str(row.tny_name),
            tournament_key=100 + i,
            tournament_season="2015",
        )
        out.append((vm, Score.start(fmt, 0), scores, winners))
        if len(out) == n:
            break
    assert len(out) == n
    return out


@pytest.fixture(scope="module")
def real() -> list[tuple[VendorMatch, Score, list[Score], list[int]]]:
    return _real_matches(12, seed=7)


def _core(log: list | None = None) -> TradingCore:
    clock = ManualClock(datetime(2015, 6, 1, tzinfo=UTC))
    policy = TradingPolicy()
    emit = (lambda kind, payload, key, ctx: log.append((str(kind), payload))) if log is not None else None
    exchange = PaperExchange(clock, policy.exchange, balance=policy.bankroll)
    return TradingCore(policy, clock, exchange, **({"emit": emit} if emit else {}))


def _seen(score: Score) -> tuple:
    """What a snapshot shows of a score: the sets' games, the games, the points, the server."""
    return [s.games for s in score.sets], score.games, score.points, score.server, score.winner


def _follow(core: TradingCore, messages: list[MatchEvent]) -> None:
    for message in messages:
        core.on_match(message)


def test_every_snapshot_of_a_real_match_is_one_point_and_the_end_says_who_won(real):
    for vm, start, scores, winners in real:
        translator = SnapshotTranslator()
        snaps = snapshots(vm, start, scores)
        core = _core()
        messages: list[MatchEvent] = []
        for i, snap in enumerate(snaps):
            out = translator.translate(json.dumps([snap]))
            messages += out
            for message in out:
                core.on_match(message)
            if i < len(snaps) - 1:  # the state is the real score after every snapshot
                assert core.matches[f"at-{vm.event_key}"].score == (scores[i - 1] if i else start)
        kinds = [m.kind for m in messages]
        assert kinds == ["match_start"] + ["point"] * (len(scores) - 1) + ["match_end"]
        # each point message says who won the point, as the real record does (the last point: the end)
        said = [m.pointbypoint[0].winner for m in messages if m.kind == "point"]
        assert said == [("First Player", "Second Player")[w] for w in winners[:-1]]
        assert [m.pointbypoint[0].point_number for m in messages if m.kind == "point"] == list(range(1, len(scores)))
        m = core.matches[f"at-{vm.event_key}"]
        assert m.finished and m.points_played == len(scores) - 1
        assert messages[-1].event_winner == ("First Player", "Second Player")[scores[-1].winner]
        assert translator.counts["points"] == len(scores) - 1 and translator.counts["resyncs"] == 0


def test_skipped_snapshots_resynchronise_the_exact_score_and_never_invent_points(real):
    rng = random.Random(3)
    total_resyncs = 0
    for vm, start, scores, _ in real:
        snaps = snapshots(vm, start, scores)
        kept = [0] + [i for i in range(1, len(snaps) - 1) if rng.random() > 0.15] + [len(snaps) - 1]
        gaps = sum(1 for a, b in zip(kept, kept[1:], strict=False) if b - a > 1 and b != len(snaps) - 1)
        translator = SnapshotTranslator()
        core = _core()
        for i in kept:
            for message in translator.translate([snaps[i]]):
                core.on_match(message)
                if message.kind != "match_end":
                    state = core.matches[message.event_key]
                    # after every message the state is the real score at that snapshot: never a guess (a
                    # snapshot gives a finished set's games, not its tie-break's points)
                    assert _seen(state.score) == _seen(scores[i - 1] if i else start)
        assert translator.counts["resyncs"] == gaps and core.counts.resyncs == gaps
        total_resyncs += gaps
        assert core.matches[f"at-{vm.event_key}"].finished
    assert total_resyncs > 20


def test_duplicates_doubles_other_tours_and_bad_snapshots_are_counted_and_the_rest_kept(real):
    vm, start, scores, _ = real[0]
    snaps = snapshots(vm, start, scores[:30])
    doubles = dict(snaps[3], event_key=1, event_type_type="Atp Doubles", event_first_player="A. B / C. D")
    itf = dict(snaps[3], event_key=2, event_type_type="Itf Men Singles")
    broken = dict(snaps[4], event_key=3, event_game_result="40 - 70")
    missing = {k: v for k, v in snaps[4].items() if k != "event_first_player"}
    translator = SnapshotTranslator()
    out = []
    for snap in snaps[:4]:
        out += translator.translate(json.dumps([snap, snap]))  # every snapshot twice
    out += translator.translate([doubles, itf, broken, missing, snaps[4]])
    out += translator.translate("{not json")
    assert [m.kind for m in out] == ["match_start", "point", "point", "point", "point"]
    c = translator.counts
    assert c["duplicates"] == 4 and c["skipped: doubles"] == 1 and c["skipped: tour itf"] == 1
    reasons = [reason for _, reason in translator.refused]
    assert (
        len(reasons) == 3 and any("40 - 70" in r for r in reasons) and any("event_first_player" in r for r in reasons)
    )
    assert any(r.startswith("not a snapshot") for r in reasons)
    # the ITF match is followed when its tour is asked for
    assert [m.kind for m in SnapshotTranslator(tours=frozenset({"itf"})).translate([itf])][:1] == ["match_start"]


def test_a_score_that_goes_back_is_refused_and_the_match_goes_on(real):
    vm, start, scores, _ = real[1]
    snaps = snapshots(vm, start, scores)
    translator = SnapshotTranslator()
    for snap in snaps[:40]:
        translator.translate([snap])
    before = translator.matches[f"at-{vm.event_key}"].score
    assert translator.translate([snaps[5]]) == []
    assert translator.matches[f"at-{vm.event_key}"].score == before
    assert any("went back" in reason for _, reason in translator.refused)
    assert [m.kind for m in translator.translate([snaps[40]])] == ["point"]


def test_joining_a_match_in_play_starts_it_then_resyncs_to_the_score(real):
    vm, start, scores, _ = real[2]
    snaps = snapshots(vm, start, scores)
    translator = SnapshotTranslator()
    out = translator.translate([snaps[50]])
    assert [m.kind for m in out] == ["match_start", "resync"]
    core = _core()
    _follow(core, out)
    m = core.matches[out[0].event_key]
    assert _seen(m.score) == _seen(scores[49]) and m.points_played == 50  # the vendor's own count of points played
    _follow(core, translator.translate([snaps[51]]))
    assert _seen(m.score) == _seen(scores[50]) and m.points_played == 51


def test_a_retirement_ends_the_match_with_its_outcome_and_a_walkover_voids_it(real):
    vm, start, scores, _ = real[3]
    cut = scores[: len(scores) // 2]
    snaps = snapshots(vm, start, cut, retired_by=1)
    translator = SnapshotTranslator()
    log: list = []
    core = _core(log)
    messages = [m for snap in snaps for m in translator.translate([snap])]
    _follow(core, messages)
    end = messages[-1]
    assert end.kind == "match_end" and end.event_status == "Retired" and end.event_winner == "First Player"
    finished = [payload for kind, payload in log if kind == "MATCH_FINISHED"]
    assert core.matches[end.event_key].finished and finished[0]["outcome"] == "retired"
    assert finished[0]["winner"] == "First Player" and finished[0]["score"].endswith("RET")
    walkover = dict(snapshots(vm, start, [])[0], event_key=9, event_status="Walk Over", event_winner="Second Player")
    messages = translator.translate([walkover])
    assert [m.kind for m in messages] == ["match_start", "match_end"]
    log.clear()
    core = _core(log)
    _follow(core, messages)
    finished = [payload for kind, payload in log if kind == "MATCH_FINISHED"]
    assert core.matches["at-9"].finished and finished[0]["outcome"] == "walkover"


def test_play_suspended_stops_trading_on_the_match_and_cancels_its_orders_until_play_resumes(real):
    """ "Suspended" at the same score is a ``status`` message: the core suspends the match from trading and cancels
    its live orders; nothing settles; "Set N" again resumes it, and the points go on from the same score."""
    vm, start, scores, _ = real[5]
    snaps = snapshots(vm, start, scores)
    k = len(snaps) // 2
    translator = SnapshotTranslator()
    log: list = []
    core = _core(log)
    for snap in snaps[: k + 1]:
        _follow(core, translator.translate([snap]))
    key = f"at-{vm.event_key}"
    m = core.matches[key]
    market = f"sim-{key}"
    runners = tuple(RunnerBook.top_of_book(s, 2.0, 100.0, 2.02, 100.0) for s in ("First Player", "Second Player"))
    core.on_book(key, MarketBook(market, core.clock.now(), MarketStatus.OPEN, True, runners))
    resting = core.exchange.place(
        OrderRequest(
            customer_order_ref="rest-1",
            market_id=market,
            selection="First Player",
            side=Side.BACK,
            price=50.0,
            size=2.0,
            persistence=Persistence.PERSIST,
        )
    )
    core.clock.set(core.clock.now() + timedelta(seconds=10))  # out of the bet delay: on the book
    core.poll()
    assert resting.is_live and core.exchange.order("rest-1").status is OrderStatus.EXECUTABLE
    stopped = translator.translate([dict(snaps[k], event_status="Suspended")])
    assert [x.kind for x in stopped] == ["status"] and translator.counts["status: Suspended"] == 1
    core.suspend(key, "market", "a market message it could not trust")  # already held by the market channel
    _follow(core, stopped)
    assert core.suspended[key][0] == "play", "play stopping outranks: a clean market book must not resume it"
    core.clean(key, "market")
    assert key in core.suspended and core.suspended[key][1].startswith("play suspended: Suspended")
    assert not core.exchange.order("rest-1").is_live, "its live orders are cancelled"
    assert not core.trade(m) and not m.finished and core.settled == set()
    delayed = core.exchange.place(  # placed just before play stopped: in its bet delay, it cannot be cancelled yet
        OrderRequest(
            customer_order_ref="rest-2",
            market_id=market,
            selection="Second Player",
            side=Side.BACK,
            price=50.0,
            size=2.0,
            persistence=Persistence.PERSIST,
        )
    )
    assert delayed.status is OrderStatus.PENDING
    core.clock.set(core.clock.now() + timedelta(seconds=10))
    core.poll()  # it reaches the book while play is suspended: cancelled then
    assert core.exchange.order("rest-2").size_cancelled == 2.0
    assert translator.translate([dict(snaps[k], event_status="Suspended")]) == []  # still suspended: a duplicate
    resumed = translator.translate([snaps[k]])
    assert [x.kind for x in resumed] == ["status"]
    _follow(core, resumed)
    assert key not in core.suspended and ("MATCH_RESUMED", {"after": core_reason(log), "channel": "play"}) in log
    _follow(core, translator.translate([snaps[k + 1]]))
    assert m.score == scores[k] and translator.counts["points"] == k + 1


def core_reason(log: list) -> str:
    return next(p["reason"] for kind, p in reversed(log) if kind == "MATCH_SUSPENDED" and p["channel"] == "play")


def test_a_resync_that_goes_back_is_refused_by_the_match_state(real):
    vm, start, scores, _ = real[4]
    snaps = snapshots(vm, start, scores)
    translator = SnapshotTranslator()
    messages = [m for snap in snaps[:60] for m in translator.translate([snap])]
    core = _core()
    _follow(core, messages)
    back = messages[20].model_copy(update={"kind": "resync"})
    with pytest.raises(BadMessage, match="back"):
        core.on_match(back)


def test_best_of_five_for_mens_grand_slam_singles_only():
    assert best_of("atp", "Wimbledon") == 5 and best_of("atp", "ATP Rome") == 3 and best_of("wta", "US Open") == 3


# --- over real connections ---------------------------------------------------------------------------
async def _collect(port: int, until: int, timeout_s: float) -> list[Envelope]:
    """The feed server's match channel, from the start, until ``until`` match ends arrive."""
    got: list[Envelope] = []
    ends = 0
    async with connect(f"ws://127.0.0.1:{port}/feeds/api-tennis/match?since=0") as ws:
        async with asyncio.timeout(timeout_s):
            async for raw in ws:
                message = parse(raw)
                if isinstance(message, Envelope):
                    got.append(message)
                    ends += message.data.kind == "match_end"
                    if ends == until:
                        return got
    return got


@pytest.mark.slow
def test_the_live_push_through_the_ingress_and_the_feed_server_survives_a_cut_and_replays_exactly(real, tmp_path):
    async def scenario() -> None:
        matches = real[6:9]
        standin = ApiTennisStandIn(
            [snapshots(vm, start, scores) for vm, start, scores, _ in matches], duplicate_every=7
        )
        port = await standin.start()
        feed = ReplayServer({"api-tennis": []}, heartbeat_s=0.2)
        feed_port = await feed.start(publish=False)
        recorder = RawRecorder(tmp_path / "api-tennis.jsonl")
        settings = ApiTennisSettings(
            key="test-key",
            ws_url=f"ws://127.0.0.1:{port}/live",
            rest_url=f"http://127.0.0.1:{port}/tennis/",
            backoff_base_s=0.05,
            backoff_cap_s=0.2,
        )
        ingress = ApiTennisIngress(
            settings, lambda m, t: feed.publish("api-tennis", "match", m, t), recorder, rng=random.Random(1)
        )
        runner = asyncio.create_task(ingress.run())
        subscriber = asyncio.create_task(_collect(feed_port, len(matches), timeout_s=60))
        try:
            while standin.clients == 0:
                await asyncio.sleep(0.01)
            for _ in range(40):
                await standin.tick()
                await asyncio.sleep(0.002)
            await standin.drop()  # the push is cut: what it sends meanwhile is lost to the ingress
            for _ in range(5):
                await standin.tick()
            while standin.clients == 0:
                await asyncio.sleep(0.01)
            while not standin.done:
                await standin.tick()
                await asyncio.sleep(0.002)
            envelopes = await subscriber
        finally:
            runner.cancel()
            recorder.close()
            await feed.stop()
            await standin.stop()
        assert ingress.reconnects >= 1 and standin.rest_calls >= 1
        assert [e.seq for e in envelopes] == list(range(1, len(envelopes) + 1))
        core = _core()
        for e in envelopes:
            core.on_match(e.data)
        assert core.counts.resyncs >= 1
        for vm, _, scores, _ in matches:
            m = core.matches[f"at-{vm.event_key}"]
            assert m.finished and _seen(m.score) == _seen(scores[-2])
        # the recorded raw pushes give exactly the messages published, in order
        replayed, _ = replay_recorded(tmp_path / "api-tennis.jsonl")
        assert [r.model_dump() for r in replayed] == [e.data.model_dump() for e in envelopes]

    asyncio.run(scenario())


def test_a_wrong_key_stops_the_ingress_with_the_vendor_refusal(real):
    async def scenario() -> None:
        standin = ApiTennisStandIn([snapshots(*real[0][:2], real[0][2][:3])])
        port = await standin.start()
        settings = ApiTennisSettings(key="wrong", ws_url=f"ws://127.0.0.1:{port}/live")
        try:
            with pytest.raises(ApiTennisRefused, match="403"):
                await ApiTennisIngress(settings, lambda m, t: None).run()
        finally:
            await standin.stop()

    asyncio.run(scenario())


def test_the_key_comes_from_the_environment_and_is_required():
    with pytest.raises(ApiTennisRefused, match="API_TENNIS_KEY"):
        ApiTennisSettings.from_env({})
    s = ApiTennisSettings.from_env({"API_TENNIS_KEY": "k", "API_TENNIS_TOURS": "ATP, Challenger"})
    assert s.key == "k" and s.tours == frozenset({"atp", "challenger"}) and s.ws_url.startswith("wss://")


def test_a_refused_snapshot_does_not_swallow_the_play_status_it_carried(real):
    vm, start, scores, _ = real[6]
    snaps = snapshots(vm, start, scores)
    k = len(snaps) // 2
    translator = SnapshotTranslator()
    for snap in snaps[: k + 1]:
        translator.translate([snap])
    back = dict(snaps[k - 8], event_status="Suspended")  # a score that goes back: refused, with its status
    assert translator.translate([back]) == [] and translator.refused
    stopped = translator.translate([dict(snaps[k], event_status="Suspended")])
    assert [m.kind for m in stopped] == ["status"], "the suspension is still news"
