"""Backtests through the betting code: exact P&L of a known bet sequence, no Max prices, thresholds
chosen blind to the test rows, retirements and walkovers settled as the exchange does, bootstrap
intervals, and the in-play replay on real point-by-point matches against the SIMULATED market."""

import dataclasses
import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from betting.records import Side
from betting.staking import StakingConfig, kelly_stake
from tests.engine.fixtures import slam_rows
from tests.real_data import data_dir
from training import backtest as bt
from training import inplay_backtest as ib

PIN = bt.BOOKS["pinnacle"]
FLAT_10 = bt.PrematchConfig(flat_stake=10.0)
EDGE_10 = bt.Thresholds(0.1, 10.0)


def _rows(spec: list[tuple]) -> pd.DataFrame:
    """(match_id, date, p_model, ps_a, ps_b, a_won) -> prediction rows (validation split)."""
    f = pd.DataFrame(spec, columns=["match_id", "match_date", "p_model", "ps_a", "ps_b", "a_won"])
    f["match_date"] = pd.to_datetime(f["match_date"])
    f["season"] = f["match_date"].dt.year
    f["split"] = "validation"
    return f


# Five bets at flat stakes of 10, each on the side with the larger edge (all edges >= 0.2):
KNOWN = _rows(
    [
        ("m1", "2016-01-04", 0.60, 2.00, 1.90, 1),  # back A at 2.00, wins  +10
        ("m2", "2016-01-04", 0.50, 3.00, 1.50, 0),  # back A at 3.00, loses -10
        ("m3", "2016-01-05", 0.50, 2.50, 1.60, 1),  # back A at 2.50, wins  +15
        ("m4", "2016-01-05", 0.30, 1.80, 2.20, 1),  # back B at 2.20, loses -10
        ("m5", "2016-01-05", 0.62, 2.00, 1.85, 0),  # back A at 2.00, loses -10
    ]
)


def _simulate(rows, staking=bt.Staking.FLAT, th=EDGE_10, config=FLAT_10, book=PIN, prob="p_model"):
    frame, _ = bt.prematch_frame(rows, book, prob)
    return bt.simulate_prematch(bt.PrematchMarkets(frame, book, config.commission), staking, th, config)


def test_known_bet_sequence_gives_exact_pnl_roi_and_drawdown():
    ledger = _simulate(KNOWN)
    bets = ledger.bets
    assert bets["selection"].tolist() == ["player_a", "player_a", "player_a", "player_b", "player_a"]
    assert bets["price"].tolist() == [2.0, 3.0, 2.5, 2.2, 2.0]
    assert bets["profit"].tolist() == [10.0, -10.0, 15.0, -10.0, -10.0]
    assert ledger.markets["bankroll_after"].tolist() == [1010.0, 1000.0, 1015.0, 1005.0, 995.0]
    s = bt.summarize(ledger)
    assert (s["bets"], s["staked"], s["pnl"]) == (5, 50.0, -5.0)
    assert s["roi"] == pytest.approx(-0.1)
    assert s["hit_rate"] == pytest.approx(0.4)
    assert s["max_drawdown"] == 20.0  # 1015 -> 995
    assert s["max_drawdown_pct"] == pytest.approx(20.0 / 1015.0)
    assert s["final_bankroll"] == 995.0
    seasons = bt.by_season(ledger)
    assert seasons["season"].tolist() == [2016] and seasons["pnl"].tolist() == [-5.0]


def test_kelly_stakes_come_from_betting_staking_on_the_bankroll_realised_before_the_day():
    rows = _rows(
        [
            ("k1", "2016-01-04", 0.55, 2.00, 1.90, 1),  # edge 0.10: quarter Kelly 2.5% of 1000
            ("k2", "2016-01-05", 0.50, 2.50, 1.60, 0),  # next day: on the bankroll after k1
            ("k3", "2016-01-05", 0.48, 2.50, 1.60, 1),
        ]
    )
    ledger = _simulate(rows, staking=bt.Staking.KELLY, config=bt.PrematchConfig())
    cfg = StakingConfig(kelly_fraction=0.25, commission=0.0)
    first = kelly_stake(Side.BACK, 0.55, 2.0, 1000.0, cfg, cap=50.0)
    assert first == 25.0 and ledger.bets["stake"].iloc[0] == first
    bankroll = 1000.0 + first
    assert ledger.bets["stake"].tolist()[1:] == [
        kelly_stake(Side.BACK, 0.50, 2.5, bankroll, cfg, cap=50.0),
        kelly_stake(Side.BACK, 0.48, 2.5, bankroll, cfg, cap=50.0),
    ]
    assert ledger.bets["stake"].iloc[1] == 42.7  # 0.25 x (0.25 / 1.5) x 1025, rounded down to the penny


def test_min_edge_and_price_band_filter_the_bets():
    assert _simulate(KNOWN, th=bt.Thresholds(0.30, 10.0)).bets["match_id"].tolist() == ["m2", "m4"]  # 0.5, 0.54
    assert _simulate(KNOWN, th=bt.Thresholds(0.1, 2.2)).bets["price"].tolist() == [2.0, 2.2, 2.0]


def test_max_prices_are_never_seen():
    with_max = KNOWN.assign(max_a=1000.0, max_b=1000.0, MaxW=1000.0, MaxL=1000.0)
    frame, _ = bt.prematch_frame(with_max, PIN, "p_model")
    assert not {c for c in frame.columns if "max" in c.lower()}
    assert set(frame.columns) == {
        "match_id",
        "season",
        "split",
        "match_date",
        "a_won",
        "price_a",
        "price_b",
        "outcome",
        "sets_completed",
        "probability",
    }
    pd.testing.assert_frame_equal(_simulate(with_max).bets, _simulate(KNOWN).bets)
    # a row with only Max prices is no bet at Pinnacle
    only_max = with_max.assign(ps_a=np.nan, ps_b=np.nan)
    ledger = _simulate(only_max)
    assert ledger.bets.empty
    assert bt.prematch_frame(only_max, PIN, "p_model")[1]["skipped: no pinnacle price"] == 5


def test_bet365_strategy_reads_only_bet365_columns():
    rows = KNOWN.rename(columns={"ps_a": "b365_a", "ps_b": "b365_b"}).assign(ps_a=5.0, ps_b=5.0)
    a = _simulate(rows, book=bt.BOOKS["bet365"])
    b = _simulate(KNOWN)
    assert a.bets["price"].tolist() == b.bets["price"].tolist()
    assert a.bets["market_id"].str.startswith("bet365:").all()


def test_retirements_and_walkovers_settle_as_the_exchange_does():
    rows = KNOWN.assign(
        outcome=["completed", "retired", "retired", "walkover", "defaulted"], sets_completed=[2, 0, 1, 0, 2]
    )
    ledger = _simulate(rows)
    by_match = ledger.markets.set_index("match_id")
    assert by_match.loc["m2", "void"] and by_match.loc["m2", "net_profit"] == 0.0  # retired in the first set
    assert not by_match.loc["m3", "void"] and by_match.loc["m3", "net_profit"] == 15.0  # after a set: stands
    assert by_match.loc["m4", "void"] and by_match.loc["m4", "net_profit"] == 0.0  # walkover
    assert by_match.loc["m5", "net_profit"] == -10.0  # defaulted after two sets: stands
    s = bt.summarize(ledger)
    assert s["void_markets"] == 2 and s["pnl"] == 15.0 and s["hit_rate"] == pytest.approx(2 / 3)
    # a void row needs no winner; a completed row without one is refused and counted
    no_result = KNOWN.assign(a_won=[1, np.nan, 1, 1, 0])
    frame, counts = bt.prematch_frame(no_result, PIN, "p_model")
    assert counts["skipped: no result"] == 1 and "m2" not in set(frame["match_id"])


def test_bad_rows_are_dropped_with_a_reason_and_good_rows_kept():
    bad = KNOWN.assign(p_model=[0.6, np.nan, 1.2, 0.3, 0.62], ps_a=[2.0, 3.0, 2.5, 1.0, 2.0])
    bad = pd.concat([bad, KNOWN.iloc[:1].assign(match_id="m6", match_date=pd.NaT)], ignore_index=True)
    frame, counts = bt.prematch_frame(bad, PIN, "p_model")
    assert counts["skipped: probability missing or outside (0, 1)"] == 2
    assert counts["skipped: price outside the ladder (1.01-1000)"] == 1
    assert counts["skipped: no match date"] == 1
    assert frame["match_id"].tolist() == ["m1", "m5"]
    with pytest.raises(ValueError, match="missing columns"):
        bt.prematch_frame(KNOWN.drop(columns=["ps_b"]), PIN, "p_model")


def test_the_books_own_probability_never_finds_value():
    with_margin = KNOWN[KNOWN["match_id"] != "m2"]  # m2 is priced without a margin (1/3 + 1/1.5 = 1)
    ledger = _simulate(with_margin, th=bt.Thresholds(0.0, 1000.0), prob=None)
    assert ledger.bets.empty


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(3)
    net = np.where(rng.random(400) < 0.5, 9.0, -10.0)
    staked = np.full(400, 10.0)
    lo, hi = bt.bootstrap_roi(net, staked, seed=1)
    roi = net.sum() / staked.sum()
    assert lo < roi < hi
    assert 0.05 < hi - lo < 0.25  # about +-9 points for 400 even-money bets
    assert bt.bootstrap_roi(net, staked, seed=1) == (lo, hi)
    small_lo, small_hi = bt.bootstrap_roi(net[:50], staked[:50], seed=1)
    assert small_hi - small_lo > hi - lo


def test_max_drawdown_counts_from_the_starting_bankroll():
    assert bt.max_drawdown(100.0, [90.0, 120.0, 60.0, 130.0]) == (60.0, 0.5)
    assert bt.max_drawdown(100.0, [110.0, 120.0]) == (0.0, 0.0)


def test_choose_thresholds_takes_the_best_eligible_validation_roi():
    grid = pd.DataFrame(
        {
            "min_edge": [0.0, 0.05, 0.10, 0.10],
            "max_price": [10.0, 10.0, 3.0, 10.0],
            "bets": [900, 400, 100, 200],
            "roi": [-0.05, 0.01, 0.30, 0.01],
        }
    )
    cfg = bt.PrematchConfig(min_validation_bets=150)
    assert bt.choose_thresholds(grid, cfg) == bt.Thresholds(min_edge=0.10, max_price=10.0)  # tie: larger edge
    assert bt.choose_thresholds(grid.iloc[:1].assign(bets=10), cfg) == bt.Thresholds(
        min_edge=max(cfg.edge_grid), max_price=min(cfg.max_price_grid)
    )


def _history(seed: int = 0) -> pd.DataFrame:
    """Four seasons of synthetic priced matches: 2015-2016 validation, 2017-2018 test."""
    rng = np.random.default_rng(seed)
    n = 1600
    days = pd.to_datetime("2015-01-05") + pd.to_timedelta(np.sort(rng.integers(0, 4 * 360, n)), unit="D")
    true_p = rng.uniform(0.2, 0.8, n)
    margin = 1.03
    noise = rng.normal(0, 0.05, n)
    ps_a = np.round(1 / (np.clip(true_p + noise, 0.05, 0.95) * margin), 2)
    ps_b = np.round(1 / ((1 - np.clip(true_p + noise, 0.05, 0.95)) * margin), 2)
    f = pd.DataFrame(
        {
            "match_id": [f"t{i}" for i in range(n)],
            "match_date": days,
            "p_model": np.clip(true_p + rng.normal(0, 0.03, n), 0.02, 0.98),
            "ps_a": ps_a,
            "ps_b": ps_b,
            "b365_a": ps_a * 0.97,
            "b365_b": ps_b * 0.97,
            "a_won": (rng.random(n) < true_p).astype(int),
        }
    )
    f["season"] = f["match_date"].dt.year
    f["split"] = np.where(f["season"] <= 2016, "validation", "test")
    return f


SMALL = bt.PrematchConfig(edge_grid=(0.0, 0.05), max_price_grid=(2.5, 10.0), min_validation_bets=20, bootstrap=200)


def test_thresholds_are_chosen_without_looking_at_test_rows():
    history = _history()
    first = bt.run_prematch(history, SMALL, books=("pinnacle",), market_baseline=False)
    test = history["split"] == "test"
    altered = history.copy()
    altered.loc[test, "a_won"] = 1 - altered.loc[test, "a_won"]
    altered.loc[test, "p_model"] = 1 - altered.loc[test, "p_model"]
    altered.loc[test, ["ps_a", "ps_b"]] = altered.loc[test, ["ps_b", "ps_a"]].to_numpy() * 1.5
    second = bt.run_prematch(altered, SMALL, books=("pinnacle",), market_baseline=False)
    pd.testing.assert_frame_equal(first.grids["pinnacle/p_model"], second.grids["pinnacle/p_model"])
    for a, b in zip(first.strategies, second.strategies, strict=True):
        assert a.thresholds == b.thresholds
        pd.testing.assert_frame_equal(a.ledgers["validation"].markets, b.ledgers["validation"].markets)
        assert not a.ledgers["test"].markets.equals(b.ledgers["test"].markets)  # the test rows did change


def test_run_prematch_reports_every_book_staking_and_split_with_the_baseline():
    result = bt.run_prematch(_history(), SMALL)
    table = bt.prematch_table(result, SMALL)
    names = set(table["strategy"])
    assert names == {
        "pinnacle-p_model-flat",
        "pinnacle-p_model-kelly",
        "bet365-p_model-flat",
        "bet365-p_model-kelly",
        "pinnacle-baseline-flat",
        "bet365-baseline-flat",
    }
    model = table[table["forecaster"] == "p_model"]
    assert set(model["split"]) == {"validation", "test"} and (model["bets"] > 0).all()
    assert ((model["roi_ci_low"] <= model["roi"]) & (model["roi"] <= model["roi_ci_high"])).all()
    baseline = table[table["strategy"] == "pinnacle-baseline-flat"].iloc[0]
    # every priced test match, player A, no information: loses about the margin (3% here, prices rounded down)
    assert baseline["split"] == "test" and baseline["bets"] > 600
    assert -0.15 < baseline["roi"] < 0.05
    seasons = bt.prematch_seasons(result, SMALL)
    assert set(seasons[seasons["split"] == "test"]["season"]) == {2017, 2018}


# --- in-play on real point-by-point data ---------------------------------------------------------


def _pbp_rows(n: int = 4) -> list[dict]:
    """The first ``n`` ATP point-by-point matches of the shared data as replay-catalog rows."""
    raw = pd.read_csv(data_dir() / "pbp" / "pbp_matches_atp_main_archive.csv.gz").head(n)
    return [
        {
            "source": "pbp",
            "event_key": f"pbp-{r.pbp_id}",
            "event_date": str(pd.to_datetime(r.date).date()),
            "tournament": r.tny_name,
            "season": pd.to_datetime(r.date).year,
            "round": None,
            "surface": None,
            "best_of": 3,
            "player1": r.server1,
            "player2": r.server2,
            "player1_id": None,
            "player2_id": None,
            "sackmann_match_id": None,
            "first_server": 1,
            "winner": int(r.winner),
            "status": "Retired" if "RET" in str(r.score) else "Complete",
            "prematch_p1": 0.55,
            "prematch_source": "test",
            "close_p1": 1.70,
            "close_p2": 2.20,
            "close_source": "bet365-close",
            "pbp": r.pbp,
            "point_winner": None,
            "point_server": None,
            "elapsed_s": None,
        }
        for r in raw.itertuples()
    ]


@pytest.fixture(scope="module")
def catalog() -> pd.DataFrame:
    return pd.DataFrame([*slam_rows("2012-wimbledon", 3), *_pbp_rows(4)])


def test_inplay_replays_real_matches_through_the_engine_rules(catalog):
    result = ib.run_inplay(catalog)
    assert result.label == ib.SIMULATED and "SIMULATED" in result.label
    assert result.matches == 7 and result.points > 7 * 100
    assert 0 < result.predictions <= result.points + result.matches  # triggers: not every point
    ledger = result.ledger
    assert len(ledger.markets) > 0 and ledger.markets["market_id"].str.startswith("sim-").all()
    limits = ib.InplayBacktestConfig().policy.risk
    assert (ledger.bets["stake"] <= limits.max_stake).all()
    assert set(ledger.bets["side"]) <= {"BACK", "LAY"}
    # the bankroll curve is the settlements' P&L, market after market
    curve = 1000.0 + ledger.markets["net_profit"].cumsum()
    np.testing.assert_allclose(ledger.markets["bankroll_after"], curve.round(2))
    # deterministic: the simulated market is seeded by the match
    again = ib.run_inplay(catalog)
    pd.testing.assert_frame_equal(ledger.bets, again.ledger.bets)


def test_inplay_probability_is_a_parameter_and_sees_consistent_states(catalog):
    seen: list[ib.InplayState] = []

    def spy(state: ib.InplayState) -> float:
        seen.append(state)
        return ib.markov_serve_updates(state)

    result = ib.run_inplay(catalog, spy, "spy", limit=2)
    assert len(seen) == result.predictions
    for s in seen:
        points = sum(s.served)
        assert 0 <= s.won_on_serve[0] <= s.served[0] and 0 <= s.won_on_serve[1] <= s.served[1]
        if points == 0:  # at point 0 the model answers the prior
            assert ib.markov_serve_updates(s) == pytest.approx(s.prematch_probability, abs=1e-6)
    baseline = ib.run_inplay(catalog, ib.markov_constant, "markov-constant", limit=2)
    assert not baseline.ledger.bets.equals(result.ledger.bets)


def test_inplay_prior_is_the_margin_free_closing_price(catalog):
    priors = []
    slams = catalog[catalog["source"] == "slam"]
    ib.run_inplay(slams, lambda s: priors.append(s.prematch_probability) or 0.5, "prior", limit=1)
    fair = (1 / 1.55) / (1 / 1.55 + 1 / 2.6)  # the fixture's closing prices (on the ladder)
    assert len(priors) > 10 and priors == pytest.approx([fair] * len(priors))


def test_inplay_skips_bad_matches_with_a_reason(catalog):
    bad = catalog.copy()
    bad.loc[0, "pbp"], bad.loc[0, "source"] = "SSSSXYZ", "pbp"
    bad.loc[0, ["point_winner", "point_server", "elapsed_s"]] = None
    result = ib.run_inplay(bad)
    assert result.matches == 6
    assert sum(v for k, v in result.ledger.counts.items() if k.startswith("skipped: point data")) == 1


def test_inplay_retirement_without_a_known_winner_is_not_settled(catalog):
    rows = catalog.copy()
    pbp = rows.loc[3, "pbp"]
    rows.loc[3, "pbp"] = pbp[: len(pbp) // 2].rstrip(";./")  # stopped mid-match
    rows.loc[3, "winner"] = None
    result = ib.run_inplay(rows)
    assert result.ledger.counts["skipped: retired without a known winner"] == 1
    rows.loc[3, "winner"] = 1
    settled = ib.run_inplay(rows)
    assert settled.matches == 7


def test_inplay_config_is_the_engines(catalog):
    engine = ib.InplayBacktestConfig().policy
    silent = dataclasses.replace(engine, value=dataclasses.replace(engine.value, min_confidence=1.0))
    result = ib.run_inplay(catalog, config=ib.InplayBacktestConfig(policy=silent), limit=3)
    assert result.decisions > 0 and result.orders == 0 and result.ledger.bets.empty
    stopped = dataclasses.replace(engine, risk=dataclasses.replace(engine.risk, kill_switch=True))
    killed = ib.run_inplay(catalog, config=ib.InplayBacktestConfig(policy=stopped), limit=3)
    assert killed.orders == 0 and killed.ledger.counts["risk: KILL_SWITCH"] > 0
    assert math.isnan(bt.summarize(result.ledger)["roi"])


def test_inplay_backtest_trades_exactly_as_the_engine(tmp_path, catalog):
    """The same matches through the backtest and through the live engine (deterministic mode, the backtest's
    messages as a feed, the same model in process): the same orders — references, prices, sizes, states,
    fills, times — and the same bankroll after settlement."""
    import asyncio

    from feeds.live.protocol import Envelope
    from serving.engine.engine import EngineConfig, TradingEngine
    from tests.engine.fixtures import live_db

    config = ib.InplayBacktestConfig()
    rows = ib.inplay_rows(catalog)
    replay = ib.replay_inplay(rows, ib.markov_serve_updates, config)
    assert replay.core.counts.orders > 5  # a sample that trades

    schedule, after = [], datetime(1970, 1, 1, tzinfo=UTC)
    for row in rows.to_dict("records"):
        try:
            messages = ib.match_schedule(row, after, config)
        except ValueError:
            continue
        schedule += messages
        after = messages[-1][0]
    epoch = schedule[0][0] - timedelta(seconds=1)
    seq = {"match": 0, "market": 0}
    envelopes = []
    for at, channel, payload in schedule:
        seq[channel] += 1
        envelopes.append(
            Envelope(
                feed="live", channel=channel, seq=seq[channel], event_time=(at - epoch).total_seconds(), data=payload
            )
        )

    async def run() -> TradingEngine:
        engine: TradingEngine

        async def predict(states: list[dict]) -> list[dict]:
            out = []
            for state in states:
                m = engine.matches[state["match_id"]]
                p = ib.markov_serve_updates(
                    ib.InplayState(
                        m.event_key,
                        m.score,
                        state["prematch_probability"],
                        tuple(m.won_on_serve),
                        tuple(m.served),
                        m.tournament,
                        m.season,
                    )
                )
                out.append({"probability": p})
            return out

        engine = TradingEngine(
            EngineConfig(policy=config.policy, deterministic=True, epoch=epoch), live_db(tmp_path), predict
        )
        await engine.process([(0.0, e) for e in envelopes])
        await engine.commit(wait=True)
        return engine

    engine = asyncio.run(run())
    assert engine.stats.quarantined == 0 and engine.stats.messages == len(envelopes)
    mine = [o.to_dict() for o in replay.exchange.orders()]
    theirs = [o.to_dict() for o in engine.exchange.orders()]
    assert len(mine) == replay.core.counts.orders and mine == theirs
    assert engine.stats.predictions == replay.core.counts.predictions
    assert engine.risk.bankroll == replay.risk.bankroll != config.policy.bankroll


def _same_trading(fast: ib._InplayReplay, reference: ib._InplayReplay) -> None:
    assert [o.to_dict() for o in fast.exchange.orders()] == [o.to_dict() for o in reference.exchange.orders()]
    assert fast.core.counts == reference.core.counts and fast.counts == reference.counts
    assert fast.risk.bankroll == reference.risk.bankroll
    pd.testing.assert_frame_equal(fast.recorder.ledger(0, Counter()).bets, reference.recorder.ledger(0, Counter()).bets)


@pytest.mark.parametrize("market", ["simulated", "simulated-fair"])
def test_inplay_fast_replay_trades_exactly_as_the_message_replay(catalog, market):
    """The default replay (the scorer's points given to the core, a market update shown only when it can change
    something) against the reference that sends every feed message through the core: the same orders, fills,
    counts, refusals and ledger, with two models — also when points come faster than the market reopens and
    the bet delay lasts (the Grand Slam rows' times squeezed twentyfold), so orders live across points, and when
    a row's times put points out of order."""
    slam = catalog["source"] == "slam"
    squeezed, shuffled = catalog.copy(), catalog.copy()
    squeezed.loc[slam, "elapsed_s"] = squeezed.loc[slam, "elapsed_s"].map(lambda ts: [3 + t / 20 for t in ts])
    # times out of order (points 10 and 11 swapped): the feed sends those points so; such a row is replayed
    # through its messages, which the engine reads as they come
    shuffled.loc[slam, "elapsed_s"] = shuffled.loc[slam, "elapsed_s"].map(lambda ts: [*ts[:9], ts[10], ts[9], *ts[11:]])
    # retirements after the first set, every match the same day: each next match starts a gap after the
    # previous one's last message (its market reopening after the last point, later than its end message)
    retired = catalog.assign(event_date=catalog["event_date"].min())
    pbp = retired["source"] == "pbp"
    retired.loc[pbp, "pbp"] = retired.loc[pbp, "pbp"].map(lambda text: text.split(".")[0] + ".")
    models = {"serve": ib.markov_serve_updates, "constant": ib.markov_constant}
    for rows in (catalog, squeezed, shuffled, retired):
        config = ib.InplayBacktestConfig(market=ib.INPLAY_MARKETS[market])
        fast, _ = ib.replay_inplay_models(ib.inplay_rows(rows), models, config)
        reference, _ = ib.replay_inplay_models(ib.inplay_rows(rows), models, dataclasses.replace(config, messages=True))
        assert reference["serve"].core.counts.orders > 5  # (the constant chain is the fair market's own model)
        for name in models:
            _same_trading(fast[name], reference[name])


class _Refusing:
    """An in-play model that fails (importable by module, so a preparing process can be sent it)."""

    def __call__(self, state: ib.InplayState) -> float:
        raise ValueError(f"no probability for {state.match_id}")


def test_inplay_parallel_preparation_trades_exactly_as_one_process(catalog):
    """A large replay prepares its matches in a second process (scores, simulated quotes, the models'
    probabilities worked out ahead) while the first trades: the same orders, counts and ledgers as one process,
    on the squeezed and reordered rows, a repeated key, and a model the other process cannot be sent (asked by
    the replay itself). Every state the replay asks a probability for was worked out ahead, the same."""
    slam = catalog["source"] == "slam"
    squeezed, shuffled = catalog.copy(), catalog.copy()
    squeezed.loc[slam, "elapsed_s"] = squeezed.loc[slam, "elapsed_s"].map(lambda ts: [3 + t / 20 for t in ts])
    shuffled.loc[slam, "elapsed_s"] = shuffled.loc[slam, "elapsed_s"].map(lambda ts: [*ts[:9], ts[10], ts[9], *ts[11:]])
    squeezed["event_key"] += "-squeezed"
    shuffled["event_key"] += "-shuffled"
    rows = ib.inplay_rows(pd.concat([catalog, squeezed, shuffled, catalog.iloc[[4]]], ignore_index=True))
    asked: dict[tuple[str, int], ib.InplayState] = {}

    def recording(state: ib.InplayState) -> float:  # a closure: it cannot be sent, the replay asks it
        asked[(state.match_id, sum(state.served))] = state
        return ib.markov_serve_updates(state)

    models = {"serve": ib.markov_serve_updates, "constant": ib.markov_constant, "recorded": recording}
    config = ib.InplayBacktestConfig(parallel_from=0)
    alone, _ = ib.replay_inplay_models(rows, models, config)
    parallel, _ = ib.replay_inplay_models(rows, models, dataclasses.replace(config, parallel_from=1))
    assert alone["serve"].core.counts.orders > 5 and alone["serve"].matches == 3 * len(catalog)
    for name in models:
        _same_trading(parallel[name], alone[name])
    _same_trading(parallel["recorded"], parallel["serve"])
    ahead = {}
    for _, prepared, _ in ib.prepared_matches(
        rows.to_dict("records"), config, models={"serve": ib.markov_serve_updates}
    ):
        if isinstance(prepared, ib._Points):
            ahead.update({(prepared.key, n): state for n, (state, _) in prepared.ahead["serve"].items()})
    asked_of_points = {k: v for k, v in asked.items() if k[0] in {key for key, _ in ahead}}
    assert asked_of_points and all(ahead[k] == state for k, state in asked_of_points.items())


def test_inplay_parallel_preparation_stops_with_the_other_process_error(catalog):
    """A failure in the preparing process stops the replay with its reason (never a silent, partial result)."""
    config = ib.InplayBacktestConfig(parallel_from=1)
    with pytest.raises(RuntimeError, match="preparing the in-play replay failed: ValueError: no probability for"):
        ib.replay_inplay_models(ib.inplay_rows(catalog), {"refusing": _Refusing()}, config)


def test_inplay_a_repeated_match_key_is_replayed_once(catalog):
    """The engine refuses a second start of a match; the backtest skips it with the reason."""
    twice = pd.concat([catalog, catalog.iloc[[4]]], ignore_index=True)
    result = ib.run_inplay(twice)
    assert result.matches == 7 and result.ledger.counts["skipped: match key replayed already"] == 1
    pd.testing.assert_frame_equal(result.ledger.bets, ib.run_inplay(catalog).ledger.bets)


def test_inplay_a_match_whose_feed_messages_are_refused_is_skipped_and_the_rest_replayed(catalog):
    """A row the scoring rules accept but whose messages the feed's protocol refuses (here: both players
    with one name) is counted and skipped; it does not stop the replay of every other match."""
    rows = catalog.copy()
    rows.loc[4, "player2"] = rows.loc[4, "player1"]
    result = ib.run_inplay(rows)
    assert result.matches == 6
    assert result.ledger.counts["skipped: feed message rejected (ValidationError)"] == 1


def test_inplay_models_side_by_side_trade_as_each_alone(catalog):
    """The pipeline replays its models match by match on one market with the feed messages built once: each
    model's orders, counts and skips are those of its replay alone (a repeated key among the rows too)."""
    rows = pd.concat([catalog, catalog.iloc[[4]]], ignore_index=True)
    together = ib.run_inplay_models(rows, ib.INPLAY_MODELS)
    assert set(together) == set(ib.INPLAY_MODELS)
    for name, model in ib.INPLAY_MODELS.items():
        alone = ib.run_inplay(rows, model, name)
        pd.testing.assert_frame_equal(together[name].ledger.bets, alone.ledger.bets)
        pd.testing.assert_frame_equal(together[name].ledger.markets, alone.ledger.markets)
        assert together[name].ledger.counts == alone.ledger.counts
        assert (together[name].orders, together[name].predictions, together[name].points) == (
            alone.orders,
            alone.predictions,
            alone.points,
        )
    assert together["markov-serve-updates"].orders != together["markov-constant"].orders  # not one model twice
